"""Trainer behaviour: epoch reduction, lazy logs, names, inputs, bad input, Ctrl-C, precision."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

import torch_keras_metrics as tkm
from torch_keras_metrics import BaseLogger, Callback, Trainer
from torch_keras_metrics.logs import Logs


class Frozen(torch.nn.Module):
    """Outputs its input (plus 0 * a parameter): predictions are fixed, so batch values are known exactly."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x + 0.0 * self.p


def frozen_trainer(loss="sparse_categorical_crossentropy", **kwargs) -> Trainer:
    model = Frozen()
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), loss, device="cpu", **kwargs)


def scores_for(correct: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities over 2 classes and labels such that sample i is right iff correct[i]."""
    y = torch.zeros(len(correct), dtype=torch.int64)
    p = torch.tensor([[0.9, 0.1] if c else [0.2, 0.8] for c in correct])
    return p, y


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls, self.batch_logs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_logs.append(dict(logs))


def mlp(out=3, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, out))


def ce_trainer(model: torch.nn.Module, **kwargs) -> Trainer:
    """A Trainer with SGD(lr=0.1), CrossEntropyLoss and `metrics=["accuracy"]` on the CPU, unless told otherwise."""
    kwargs.setdefault("metrics", ["accuracy"])
    kwargs.setdefault("device", "cpu")
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), **kwargs)


def toy(n=70, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


# --------------------------------------------------------------------------- epoch reduction (docs/semantics.md §9)


def test_ragged_last_batch_gives_size_weighted_mean_not_max_last_or_plain_mean():
    # batches of 4, 4, 2 with accuracies 1, 0.5, 0: the epoch value is (4 + 2 + 0) / 10 = 0.6
    p, y = scores_for([True] * 4 + [True, True, False, False] + [False, False])
    rec = Recorder()
    hist = frozen_trainer(metrics=["accuracy"]).fit(p, y, batch_size=4, verbose=0, shuffle=False, callbacks=[rec])
    batch = [b["accuracy"] for b in rec.batch_logs]
    assert batch == [1.0, 0.5, 0.0] and [b["size"] for b in rec.batch_logs] == [4, 4, 2]
    epoch = hist.history["accuracy"][0]
    assert epoch == pytest.approx(0.6)
    assert epoch not in (max(batch), batch[-1]) and epoch != pytest.approx(np.mean(batch))
    assert hist.keras2_history["accuracy"][0] == pytest.approx(0.6)  # BaseLogger agrees without weights
    losses = [b["loss"] for b in rec.batch_logs]
    assert hist.history["loss"][0] == pytest.approx(np.dot(losses, [4, 4, 2]) / 10, abs=1e-6)


def test_sample_weights_reach_loss_and_weighted_metrics_only_and_keras2_differs():
    p, y = scores_for([True, False, True, True, False, False])
    w = torch.tensor([3.0, 1.0, 0.0, 1.0, 2.0, 1.0])
    t = frozen_trainer(metrics=["accuracy"], weighted_metrics=["accuracy"])
    rec = Recorder()
    hist = t.fit(p, y, batch_size=4, sample_weight=w, verbose=0, shuffle=False, callbacks=[rec])
    right = torch.tensor([1.0, 0, 1, 1, 0, 0])
    # metrics= ignore the weights, weighted_metrics= use them (Keras 3: one weighted mean over the epoch)
    assert hist.history["accuracy"][0] == pytest.approx(0.5)
    assert hist.history["weighted_accuracy"][0] == pytest.approx(float((right * w).sum() / w.sum()))  # 4/8
    # per batch: loss = sum(loss_i * w_i) / batch_size
    nll = -torch.log(torch.tensor([0.9, 0.2, 0.9, 0.9, 0.2, 0.2]))
    assert rec.batch_logs[0]["loss"] == pytest.approx(float((nll[:4] * w[:4]).sum() / 4), abs=1e-6)
    assert rec.batch_logs[1]["loss"] == pytest.approx(float((nll[4:] * w[4:]).sum() / 2), abs=1e-6)
    # Keras 2's BaseLogger weights batch ratios by batch size instead: (4 * 4/5 + 2 * 0/3) / 6
    b1, b2 = float((right[:4] * w[:4]).sum() / w[:4].sum()), float((right[4:] * w[4:]).sum() / w[4:].sum())
    assert hist.keras2_history["weighted_accuracy"][0] == pytest.approx((4 * b1 + 2 * b2) / 6)
    assert hist.keras2_history["weighted_accuracy"][0] != pytest.approx(hist.history["weighted_accuracy"][0])
    assert t.base_logger.averages["weighted_accuracy"] == pytest.approx((4 * b1 + 2 * b2) / 6)


def test_base_logger_overwrite_writes_keras2_values_into_epoch_logs():
    p, y = scores_for([True, False, True, True, False, False])
    w = torch.tensor([3.0, 1.0, 0.0, 1.0, 2.0, 1.0])
    base = BaseLogger(overwrite=True)
    hist = frozen_trainer(weighted_metrics=["accuracy"]).fit(
        p, y, batch_size=4, sample_weight=w, verbose=0, shuffle=False, callbacks=[base]
    )
    assert hist.history["accuracy"][0] == pytest.approx(base.averages["accuracy"])


def test_custom_scalar_metric_keras3_per_batch_keras2_per_sample():
    def mean_pred(y_true, y_pred):
        return y_pred[:, 0].mean()

    p, y = scores_for([True] * 4 + [False] * 2)  # batch means of column 0: 0.9 then 0.2
    hist = frozen_trainer(metrics=[mean_pred]).fit(p, y, batch_size=4, verbose=0, shuffle=False)
    assert hist.history["mean_pred"][0] == pytest.approx((0.9 + 0.2) / 2)  # Keras 3: one count per batch
    assert hist.keras2_history["mean_pred"][0] == pytest.approx((4 * 0.9 + 2 * 0.2) / 6)  # Keras 2: per sample


# --------------------------------------------------------------------------- lazy logs, no per-batch sync


def test_per_batch_path_never_reads_device_values(monkeypatch):
    calls = {"item": 0, "float": 0, "cpu": 0, "tolist": 0}
    for name, attr in (("item", "item"), ("float", "__float__"), ("cpu", "cpu"), ("tolist", "tolist")):
        original = getattr(torch.Tensor, attr)

        def counting(self, *a, _o=original, _n=name, **k):
            calls[_n] += 1
            return _o(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, attr, counting)
    x, y = toy(640)
    model = mlp()
    loss = tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True)
    t = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        loss,
        metrics=["accuracy"],
        weighted_metrics=["accuracy"],
        device="cpu",
    )
    counts = []
    for bs in (64, 8):  # 10 then 80 batches per epoch: reads must not grow with the number of batches
        for k in calls:
            calls[k] = 0
        t.fit(x, y, batch_size=bs, epochs=2, verbose=0, sample_weight=torch.ones(640))
        counts.append(dict(calls))
    assert counts[0]["item"] == counts[0]["float"] == counts[0]["cpu"] == 0
    assert counts[0] == counts[1]


def test_batch_logs_are_lazy_floats_of_the_batch_values():
    p, y = scores_for([True, False, True, True])
    seen = []

    class Peek(Callback):
        def on_train_batch_end(self, batch, logs=None):
            assert isinstance(logs, Logs) and isinstance(logs.tensors()["acc"], torch.Tensor)
            seen.append((logs["acc"], logs["size"], sorted(logs)))

    frozen_trainer(metrics=["acc"]).fit(p, y, batch_size=2, verbose=0, shuffle=False, callbacks=[Peek()])
    assert seen == [(0.5, 2, ["acc", "loss", "size"]), (1.0, 2, ["acc", "loss", "size"])]


def test_progress_bar_reads_running_values_only_when_it_redraws(capsys, monkeypatch):
    x, y = toy(640)
    model = mlp()
    t = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        device="cpu",
    )
    reads = []
    real = Logs.running
    monkeypatch.setattr(Logs, "running", lambda logs: reads.append(1) or real(logs))
    clock = [1000.0]

    class Step(Callback):  # every step takes 1/32 s, so the bar (interval 0.1 s) redraws every 4th
        def on_train_batch_begin(self, batch, logs=None):
            clock[0] += 1 / 32

    bar = tkm.ProgbarLogger(clock=lambda: clock[0])
    t.fit(x, y, batch_size=4, epochs=1, verbose=1, callbacks=[bar, Step()])  # 160 batches
    out = capsys.readouterr().out
    assert "160/160" in out and "accuracy:" in out
    assert len(reads) == 40  # batches 1, 5, ..., 157; the epoch end shows the epoch logs, read once


# --------------------------------------------------------------------------- names and resolution


def test_log_names_as_keras_logs_them():
    x, y = toy()
    model = mlp()
    t = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.nn.CrossEntropyLoss(),
        metrics=["acc", "accuracy", "sparse_top_k_categorical_accuracy"],
        weighted_metrics=["acc", "sparse_top_k_categorical_accuracy"],
        device="cpu",
    )
    hist = t.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x[:10], y[:10]))
    assert list(hist.history) == sorted(
        [
            "loss",
            "acc",
            "accuracy",
            "sparse_top_k_categorical_accuracy",
            "weighted_acc",
            "weighted_sparse_top_k_categorical_accuracy",
        ]
        + [
            "val_loss",
            "val_acc",
            "val_accuracy",
            "val_sparse_top_k_categorical_accuracy",
            "val_weighted_acc",
            "val_weighted_sparse_top_k_categorical_accuracy",
        ]
    )


def test_duplicate_metric_names_get_keras_suffixes():
    from torch_keras_metrics.compile_utils import keras_names

    ms = [tkm.get("accuracy", [0], [[0.1, 0.9]]) for _ in range(2)]
    ws = [tkm.get("accuracy", [0], [[0.1, 0.9]]) for _ in range(2)]
    assert keras_names(ms, ws) == ["accuracy", "accuracy_1", "weighted_accuracy", "weighted_accuracy_1"]


def test_bce_with_logits_resolves_binary_accuracy_at_threshold_zero():
    logits = torch.tensor([[-0.3], [0.2], [1.5], [-2.0]])
    y = torch.tensor([[0.0], [1.0], [0.0], [0.0]])
    t = frozen_trainer(loss=torch.nn.BCEWithLogitsLoss(), metrics=["accuracy"])
    hist = t.fit(logits, y, batch_size=4, verbose=0)
    assert isinstance(t.metrics[0], tkm.BinaryAccuracy) and t.metrics[0].threshold == 0.0
    assert hist.history["accuracy"][0] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("loss", "y", "kind"),
    [
        ("sparse_categorical_crossentropy", torch.tensor([0, 1]), tkm.SparseCategoricalAccuracy),
        ("categorical_crossentropy", torch.tensor([[1.0, 0.0], [0.0, 1.0]]), tkm.CategoricalAccuracy),
    ],
)
def test_accuracy_resolves_from_first_batch_shapes(loss, y, kind):
    t = frozen_trainer(loss=loss, metrics=["accuracy"])
    t.fit(torch.tensor([[0.7, 0.3], [0.4, 0.6]]), y, verbose=0)
    assert type(t.metrics[0]) is kind and t.metrics[0].name == "accuracy"


# --------------------------------------------------------------------------- inputs


def test_numpy_dataset_and_dataloader_inputs_give_the_same_numbers():
    x, y = toy()
    w = torch.rand(70, generator=torch.Generator().manual_seed(3))
    results = []
    for kind in ("tensor", "numpy", "dataset", "loader"):
        model = mlp()
        t = Trainer(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
            weighted_metrics=["accuracy"],
            device="cpu",
        )
        ds = torch.utils.data.TensorDataset(x, y, w)
        kw = dict(batch_size=16, epochs=2, verbose=0, shuffle=False)
        if kind == "tensor":
            h = t.fit(x, y, sample_weight=w, **kw)
        elif kind == "numpy":
            h = t.fit(x.numpy(), y.numpy(), sample_weight=w.numpy(), **kw)
        elif kind == "dataset":
            h = t.fit(ds, **kw)
        else:
            h = t.fit(torch.utils.data.DataLoader(ds, batch_size=16), **kw)
        results.append(h.history)
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for k in other:
            np.testing.assert_allclose(other[k], results[0][k], atol=1e-6)


def test_dataset_yielding_pairs_and_predict_on_dataset():
    x, y = toy()
    ds = torch.utils.data.TensorDataset(x, y)
    model = mlp()
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), device="cpu")
    h = t.fit(ds, batch_size=16, epochs=1, verbose=0, validation_data=ds)
    assert set(h.history) == {"loss", "val_loss"} and h.batches[0]["size"] == [16, 16, 16, 16, 6]
    assert t.predict(torch.utils.data.TensorDataset(x), verbose=0).shape == (70, 3)


class SeesInputs(torch.nn.Module):
    """Remembers the first feature of every sample it evaluates (not while training)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 2)
        self.eval_seen, self.train_seen = [], []

    def forward(self, x):
        (self.train_seen if self.training else self.eval_seen).append(x[:, 0].detach().clone())
        return self.lin(x)


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x = torch.arange(10.0).reshape(10, 1)
    y = torch.zeros(10, dtype=torch.int64)
    model = SeesInputs()
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), device="cpu")
    h = t.fit(x, y, batch_size=3, epochs=1, validation_split=0.25, shuffle=True, verbose=0)
    assert "val_loss" in h.history
    # Keras: the first floor(10 * 0.75) = 7 samples train (shuffled), the last 3 validate
    # (the first validation batch is also run once before training: bad validation data is refused up front)
    assert torch.cat(model.eval_seen).tolist() == [7.0, 8.0, 9.0] * 2
    assert sorted(torch.cat(model.train_seen).tolist()) == [float(i) for i in range(7)]


def test_shuffle_uses_the_trainer_generator():
    x = torch.arange(12.0).reshape(12, 1)
    y = torch.zeros(12, dtype=torch.int64)
    orders = []
    for _ in range(2):
        model = SeesInputs()
        t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), device="cpu")
        t.generator.manual_seed(7)
        t.fit(x, y, batch_size=5, epochs=1, verbose=0)
        orders.append(torch.cat(model.train_seen).tolist())
    assert orders[0] == orders[1] and orders[0] != sorted(orders[0]) and sorted(orders[0]) == x.flatten().tolist()


@pytest.mark.filterwarnings("ignore:The data ran out")
def test_steps_per_epoch_initial_epoch_validation_freq_and_stop_training():
    x, y = toy()
    model = mlp()
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), device="cpu")
    h = t.fit(
        x,
        y,
        batch_size=16,
        epochs=4,
        initial_epoch=1,
        steps_per_epoch=3,
        validation_data=(x, y),
        validation_freq=2,
        verbose=0,
    )
    assert h.epoch == [1, 2, 3]
    # Keras 3's EpochIterator: an epoch continues the data, and ends early when the data runs out
    assert [b["size"] for b in h.batches] == [[16, 16, 16], [16, 6], [16, 16, 16]]
    assert "val_loss" in h.history and len(h.history["val_loss"]) == 2  # epochs 2 and 4 (1-based)

    class StopAt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.trainer.stop_training = True

    h = t.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[StopAt()])
    assert h.epoch == [0] and h.batches[0]["size"] == [16, 16]


def test_callback_hooks_order_params_and_model():
    events = []

    class Spy(Callback):
        pass

    for hook in [h for h in dir(Callback) if h.startswith("on_") and not h.startswith("on_batch")]:
        setattr(Spy, hook, lambda self, *a, _h=hook, **k: events.append(_h))
    spy = Spy()
    x, y = toy(20)
    model = mlp()
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), device="cpu")
    t.fit(x, y, batch_size=10, epochs=1, verbose=0, validation_data=(x[:5], y[:5]), callbacks=[spy])
    assert events == [
        "on_train_begin",
        "on_epoch_begin",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_test_begin",
        "on_test_batch_begin",
        "on_test_batch_end",
        "on_test_end",
        "on_epoch_end",
        "on_train_end",
    ]
    assert spy.params == {"epochs": 1, "steps": 2, "verbose": 0}
    assert spy.model is model and spy.trainer is t


# --------------------------------------------------------------------------- bad input, before any weight changes


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(y=torch.zeros(69, dtype=torch.int64)), "same number of samples"),
        (dict(validation_split=1.0), "validation_split"),
        (dict(validation_split=-0.1), "validation_split"),
        (dict(batch_size=0), "batch_size"),
        (dict(y=torch.zeros(70, 5)), r"\(32, 3\).*\(32, 5\)"),  # output shape vs target shape
    ],
)
def test_bad_fit_input_is_refused_before_any_weight_changes(kwargs, match):
    x, y = toy()
    model = mlp()
    before = _weights(model)
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "categorical_crossentropy", device="cpu")
    args = dict(x=x, y=torch.nn.functional.one_hot(y, 3).float(), verbose=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        t.fit(**args)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model)))


def test_torch_loss_shape_mismatch_names_both_shapes():
    x, y = toy()
    model = mlp(out=1)
    before = _weights(model)
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.MSELoss(), device="cpu")
    with pytest.raises(ValueError, match=r"\(16, 1\).*\(16,\)"):
        t.fit(x, y.float(), batch_size=16, verbose=0)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model)))


@pytest.mark.parametrize(("loss", "metrics"), [("sparse_crossentropy", []), ("mse", ["accuracyy"])])
def test_unknown_loss_or_metric_names_are_refused_at_construction(loss, metrics):
    model = mlp()
    with pytest.raises(ValueError, match="Unknown"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss, metrics=metrics)


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_stops_after_the_current_batch_and_returns_the_history(ctrl_c):
    x, y = toy()
    model = mlp()
    t = ce_trainer(model)

    class CtrlC(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    h = t.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[CtrlC()], validation_data=(x, y))
    assert h.epoch == [0] and h.batches[0]["size"] == [16, 16, 16]  # batch 2 finished, then stop
    assert "val_loss" not in h.history and set(h.history) == {"loss", "accuracy"}
    assert signal.getsignal(signal.SIGINT) is ctrl_c  # the handler before fit is back
    assert t.predict(x, verbose=0).shape == (70, 3)  # the model is usable


def test_an_ignored_sigint_stays_ignored(ctrl_c):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job or nohup starts
    x, y = toy()
    seen = []

    class Look(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(signal.getsignal(signal.SIGINT))

    ce_trainer(mlp()).fit(x, y, batch_size=16, verbose=0, callbacks=[Look()])
    assert set(seen) == {signal.SIG_IGN} and signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_keyboard_interrupt_raised_inside_a_step_returns_the_history():
    x, y = toy()
    model = mlp()
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), device="cpu")

    class Raise(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:
                raise KeyboardInterrupt

    class Count(Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            Count.epochs += 1

    h = t.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[Raise(), Count()])
    assert isinstance(h, tkm.History) and h.epoch == [] and Count.epochs == 0


# --------------------------------------------------------------------------- evaluate / predict / precision


def test_evaluate_runs_in_inference_mode_and_restores_train_mode():
    modes = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x):
            modes.append((torch.is_inference_mode_enabled(), self.training))
            return self.lin(x)

    x, y = toy(20)
    model = Spy()
    t = ce_trainer(model)
    loss, acc = t.evaluate(x, y, batch_size=10, verbose=0)  # metrics built inside inference mode...
    assert modes == [(True, False), (True, False)] and model.training
    t.fit(x, y, batch_size=10, verbose=0)  # ...still update outside it
    assert modes[2:] == [(False, True), (False, True)]
    assert isinstance(loss, float) and 0 <= acc <= 1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_logs_float32(precision):
    x, y = toy()
    model = mlp()
    t = ce_trainer(model, precision=precision)
    h = t.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert all(np.isfinite(v) for v in h.history["loss"])
    assert t.predict(x, verbose=0).dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "mse", precision="int8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_step_never_synchronises():
    x, y = toy(640)
    model = mlp()
    t = ce_trainer(model, device="cuda")
    t.fit(x, y, batch_size=64, verbose=0)  # warm-up: builds metrics
    seen = []

    class Guard(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            torch.cuda.set_sync_debug_mode("error")
            seen.append(batch)

        def on_train_batch_end(self, batch, logs=None):
            torch.cuda.set_sync_debug_mode("default")

    t.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[Guard()])
    assert len(seen) == 10


def test_plot_history_writes_a_png(tmp_path):
    x, y = toy()
    model = mlp()
    t = ce_trainer(model)
    h = t.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.2)
    path = tmp_path / "h.png"
    tkm.plot_history(h, batches=True, path=str(path))
    assert path.stat().st_size > 1000


def test_iterable_dataset_of_unknown_length(capsys):
    x, y = toy()

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(zip(x, y))

    model = mlp()
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), device="cpu")
    h = t.fit(Stream(), batch_size=16, epochs=2, verbose=2)
    assert h.batches[1]["size"] == [16, 16, 16, 16, 6]
    assert "5/5 - " in capsys.readouterr().out  # the length is learnt after the first epoch, as in Keras


def test_multi_input_tuple_of_arrays():
    class TwoInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(2, 3)

        def forward(self, a, b):  # x as a tuple: model(*x), as torch calls a module
            return self.a(a) + self.b(b)

    x, y = toy()
    model = TwoInputs()
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), device="cpu")
    h = t.fit((x.numpy(), x[:, :2].numpy()), y, batch_size=16, verbose=0, shuffle=True)
    assert h.batches[0]["size"] == [16, 16, 16, 16, 6]
    assert t.predict((x, x[:, :2]), verbose=0).shape == (70, 3)
