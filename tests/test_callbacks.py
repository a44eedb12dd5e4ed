"""Callbacks, the lazy logs mapping and the progress bar (byte for byte against Keras 3's Progbar)."""

from __future__ import annotations

import io
import re

import pytest
import torch

from torch_keras_metrics import BaseLogger, Callback, CallbackList, ProgbarLogger, Trainer
from torch_keras_metrics import progbar as ours
from torch_keras_metrics.logs import Logs


class Clock:
    """A wall clock that moves only when told (`now += seconds`)."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now


class Tick(Callback):
    """Moves `clock` on by `seconds` as each batch of `mode` begins: steps of a known duration."""

    def __init__(self, clock, seconds, mode="train"):
        super().__init__()
        self.clock, self.seconds = clock, seconds
        setattr(self, f"on_{mode}_batch_begin", self.tick)

    def tick(self, batch, logs=None):
        self.clock.now += self.seconds


def _timed_bar(seconds, mode="train"):
    clock = Clock()
    return [ProgbarLogger(clock=clock.time), Tick(clock, seconds, mode)]


STEPS = [
    (1, {"accuracy": 0.5, "loss": 1.23456}),
    (2, {"accuracy": 0.0, "loss": 0.0004}),
    (3, {"accuracy": 0.75, "loss": -0.5}),
    (4, {"accuracy": 0.8, "loss": 1e-5}),
    (5, {"accuracy": 0.81, "loss": 0.3121}),
]


@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("target", [5, None])
def test_progbar_prints_what_keras_prints(keras, monkeypatch, capsys, verbose, target):
    from keras.src.utils import progbar as theirs

    outputs = []
    for module, make in (
        (theirs, lambda clock: theirs.Progbar(target, verbose=verbose, stateless_metrics=set())),
        (ours, lambda clock: ours.Progbar(target, verbose=verbose, interval=0.05, dynamic=True, clock=clock.time)),
    ):
        clock = Clock()
        monkeypatch.setattr(theirs.time, "time", clock.time)  # Keras' bar reads time.time itself
        bar = make(clock)
        for current, values in STEPS:
            clock.now += 0.03 if current < 3 else 0.7
            bar.update(current, list(values.items()) if module is theirs else values, finalize=False)
        clock.now += 0.01
        if target is None:
            bar.target = 5
        bar.update(5, list(STEPS[-1][1].items()) if module is theirs else STEPS[-1][1], finalize=True)
        outputs.append(capsys.readouterr().out)
        monkeypatch.undo()
    assert outputs[0] == outputs[1]
    assert outputs[1]


def test_keras_number_format():
    assert ours._number(0.3121, 1) == " 0.3121" and ours._number(0.0004, 1) == " 4.0000e-04"
    assert ours._number(-0.5, 1) == " -0.5000" and ours._number(-0.5, 2) == " -5.0000e-01"  # Keras' quirk
    assert ours.format_time(2.4) == " 2s/step" and ours.format_time(0.0008) == " 800us/step"


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(70, 4, generator=g), torch.randint(0, 3, (70,), generator=g)


def _trainer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    return Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.nn.CrossEntropyLoss(),
        metrics=["accuracy"],
        device="cpu",
    )


def test_verbose_2_prints_one_keras_line_per_epoch(capsys):
    x, y = _data()
    timed = _timed_bar(0.01)
    _trainer().fit(x, y, batch_size=16, epochs=2, verbose="auto", validation_data=(x, y), callbacks=timed)
    lines = capsys.readouterr().out.splitlines()  # not a TTY: verbose 2
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    number = r"\d\.\d{4}"
    pattern = (
        rf"5/5 - 0s - 10ms/step - accuracy: {number} - loss: {number} - val_accuracy: {number} - val_loss: {number}"
    )
    assert re.fullmatch(pattern, lines[1]), lines[1]


def test_evaluate_and_predict_bars(capsys):
    x, y = _data()
    t = _trainer()
    t.evaluate(x, y, verbose=2, callbacks=_timed_bar(0.002, "test"))
    t.predict(x, verbose=2, callbacks=_timed_bar(1.0, "predict"))
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"3/3 - 0s - 2ms/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}", lines[0]), lines
    assert lines[1] == "3/3 - 3s - 1s/step", lines


def test_a_progbar_in_callbacks_replaces_the_default_one(capsys):
    x, y = _data()
    stream = io.StringIO()
    _trainer().fit(x, y, batch_size=16, verbose=2, callbacks=[ProgbarLogger(stream=stream)])
    assert capsys.readouterr().out == "" and stream.getvalue().startswith("5/5 - ")


def test_live_bar_shows_running_values_and_finishes_the_line():
    stream = io.StringIO()
    clock = Clock()
    logger = ProgbarLogger(stream=stream, clock=clock.time)
    logger.set_params({"epochs": 1, "steps": 2, "verbose": 1})
    logger.on_epoch_begin(0)
    logs = Logs({"loss": torch.tensor(9.0)}, size=4, running=lambda: {"loss": 0.25})
    clock.now += 0.25
    logger.on_train_batch_end(0, logs)
    clock.now += 0.5
    logger.on_epoch_end(0, {"loss": 0.5})
    bold, green, grey, end = "\x1b[1m", "\33[32m", "\33[37m", "\x1b[0m"
    first = f"{bold}1/2{end} {green}{'━' * 10}{end}{grey}{'━' * 10}{end} {bold}0s{end} 250ms/step - loss: 0.2500"
    last = f"{bold}2/2{end} {green}{'━' * 20}{end}{grey}{end} {bold}1s{end} 500ms/step - loss: 0.5000\n"
    assert stream.getvalue() == "\n" + first + "\n" + last


# --------------------------------------------------------------------------- logs and callback lists


def test_logs_mapping_reads_each_value_once_and_accepts_writes():
    t = torch.tensor(0.5)
    logs = Logs({"loss": t, "acc": 1.0}, size=3)
    assert dict(logs) == {"loss": 0.5, "acc": 1.0, "size": 3} and len(logs) == 3 and "size" in logs
    logs["loss"] = 2.0
    logs["extra"] = torch.tensor(4.0)
    assert logs["loss"] == 2.0 and logs["extra"] == 4.0
    del logs["extra"]
    assert "extra" not in logs and logs.get("missing", 7) == 7


def test_callback_list_calls_only_overriding_callbacks_per_batch():
    class A(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_batch_end(self, batch, logs=None):  # Keras' alias of on_train_batch_end
            self.seen.append(batch)

    a, b = A(), Callback()
    cbs = CallbackList([a, b], epochs=1, steps=1, verbose=0)
    assert cbs.batch_hooks("on_train_batch_end") == [a.on_train_batch_end]
    assert cbs.batch_hooks("on_test_batch_end") == []
    cbs.on_train_batch_end(3, {})
    assert a.seen == [3] and a.params == {"epochs": 1, "steps": 1, "verbose": 0}


def test_base_logger_accepts_plain_float_logs_like_keras2():
    base = BaseLogger(overwrite=True)
    base.on_epoch_begin(0)
    for size, acc in ((16, 1.0), (16, 0.5), (6, 0.0)):
        base.on_batch_end(0, {"size": size, "acc": acc})
    logs = {"acc": 123.0}
    base.on_epoch_end(0, logs)
    assert logs["acc"] == pytest.approx(24 / 38) and base.history == {"acc": [pytest.approx(24 / 38)]}
