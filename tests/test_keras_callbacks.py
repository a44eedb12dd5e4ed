"""Keras' callback suite against Keras 3's own callbacks, driven side by side with the same epoch logs.

Each parity test feeds one scripted (or hypothesis-drawn, derandomized) sequence of epoch logs to a
Keras 3 callback attached to a tiny Keras model and to ours attached to a stub exposing what a Trainer
exposes (`model`, `optimizer`, `stop_training`, `metrics`, `metrics_names`); weights are set to the
epoch number before each epoch, so a restored or saved state tells which epoch it came from.
Then: an end-to-end `Trainer.fit` with the callbacks together, atomic writes under injected failures,
TerminateOnNaN without per-batch reads, TensorBoard's event files, and rank != 0 writing nothing.
"""

from __future__ import annotations

import math
import os
import re
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import torch_keras_metrics as tkm
from torch_keras_metrics import Trainer
from torch_keras_metrics import io as tio
from torch_keras_metrics import keras_callbacks as ours

keras = pytest.importorskip("keras")
assert keras.backend.backend() == "torch"

# Keras' own get_weights/learning_rate reads on numpy 2 (not ours)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

PARITY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

# values with ties, float32-level near-ties and a NaN: the corners where the rules can differ
VALUES = [0.5, 0.4, 0.45, 0.3, 0.3 + 1e-9, 0.30001, 0.6, 0.2, 0.2 - 1e-3, float("nan")]
LR0 = 0.1


class Stub:
    """What a callback may see of a Trainer: model, optimizer, stop_training, metrics and their names."""

    def __init__(self, lr: float = LR0, groups: int = 1) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
        params = list(self.model.parameters())
        split = [{"params": params[:2]}, {"params": params[2:]}] if groups == 2 else params
        self.optimizer = torch.optim.SGD(split, lr=lr)
        self.stop_training = False
        self.metrics: list = [tkm.Accuracy()]  # as the Keras model's compile(metrics=["accuracy"])
        self.metrics_names = ["loss", "accuracy"]

    def mark(self, epoch: int) -> None:
        with torch.no_grad():
            for t in self.model.state_dict().values():
                if t.is_floating_point():
                    t.fill_(epoch)

    def marked(self) -> float:
        return float(self.model[0].weight[0, 0].detach())

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


@pytest.fixture(scope="module")
def kmodel():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    model.compile(keras.optimizers.SGD(learning_rate=LR0), "mse", metrics=["accuracy"])
    model.evaluate(np.zeros((2, 3)), np.zeros((2, 2)), verbose=0)  # builds the compiled metrics (auto mode)
    return model


def fresh(kmodel):
    kmodel.stop_training = False
    kmodel.optimizer.learning_rate = LR0
    return kmodel


def kmark(kmodel, epoch: int) -> None:
    kmodel.set_weights([np.full_like(w, epoch) for w in kmodel.get_weights()])


def kmarked(kmodel) -> float:
    return float(kmodel.get_weights()[0].flat[0])


def klr(kmodel) -> float:
    return float(keras.ops.convert_to_numpy(kmodel.optimizer.learning_rate))


def drive(cb, host, sequence, mark, lr=None):
    """Run the epoch hooks over `sequence`; returns (stopped at, per-epoch learning rates, logs after each epoch)."""
    cb.set_model(host)
    cb.on_train_begin()
    stopped, lrs, seen = None, [], []
    for epoch, values in enumerate(sequence):
        mark(host, epoch)
        cb.on_epoch_begin(epoch)
        logs = dict(values)
        cb.on_epoch_end(epoch, logs)
        seen.append(logs)
        if lr is not None:
            lrs.append(lr(host))
        if host.stop_training:
            stopped = epoch
            break
    cb.on_train_end()
    return stopped, lrs, seen


def same_text(ours_text: str, keras_text: str) -> bool:
    """The same message, numbers equal to float32 precision: Keras prints its float32 learning rate, torch's is a
    double (and a compounding schedule compounds float32 roundings in Keras)."""
    number = r"\d+\.\d+(?:e-?\d+)?"
    if re.sub(number, "#", ours_text) != re.sub(number, "#", keras_text):
        return False
    a, b = (np.array(re.findall(number, t), dtype=float) for t in (ours_text, keras_text))
    return bool(np.allclose(a, b, rtol=1e-6, atol=0))


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def ours_drive(cb, stub, sequence, lr=None):
    return drive(cb, stub, sequence, lambda h, e: h.mark(e), lr)


def keras_drive(cb, kmodel, sequence, lr=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return drive(cb, fresh(kmodel), sequence, kmark, lr)


# ------------------------------------------------------------------ EarlyStopping


def test_early_stopping_scripted_matches_keras(kmodel):
    seq = [{"val_loss": v, "loss": 1.0} for v in (0.9, 0.8, 0.85, 0.7, 0.71, 0.72, 0.73, 0.5)]
    kw = {"patience": 2, "restore_best_weights": True}
    k, o, stub = keras.callbacks.EarlyStopping(**kw), ours.EarlyStopping(**kw), Stub()
    assert keras_drive(k, kmodel, seq)[0] == ours_drive(o, stub, seq)[0] == 5
    assert (o.stopped_epoch, o.best, o.wait, o.best_epoch) == (k.stopped_epoch, k.best, k.wait, k.best_epoch)
    assert stub.marked() == kmarked(kmodel) == 3  # the best epoch's weights, BatchNorm buffers included
    assert float(stub.model[1].running_mean[0]) == 3


@PARITY
@given(
    values=st.lists(st.sampled_from(VALUES), min_size=1, max_size=10),
    monitor=st.sampled_from(["val_loss", "val_accuracy"]),
    mode=st.sampled_from(["auto", "min", "max"]),
    patience=st.integers(0, 3),
    min_delta=st.sampled_from([0, 0.01, -0.05, 1e-10]),
    baseline=st.sampled_from([None, 0.35, 0.5]),
    restore=st.booleans(),
    start_from_epoch=st.sampled_from([0, 1, 3]),
)
def test_early_stopping_matches_keras_on_any_sequence(
    kmodel, values, monitor, mode, patience, min_delta, baseline, restore, start_from_epoch
):
    seq = [{"loss": 1.0, monitor: v} for v in values]
    kw = dict(
        monitor=monitor,
        mode=mode,
        patience=patience,
        min_delta=min_delta,
        baseline=baseline,
        restore_best_weights=restore,
        start_from_epoch=start_from_epoch,
    )
    k, o, stub = keras.callbacks.EarlyStopping(**kw), ours.EarlyStopping(**kw), Stub()
    stopped = keras_drive(k, kmodel, seq)[0]
    assert stopped == ours_drive(o, stub, seq)[0]
    event(f"stopped={stopped is not None}, restored={stub.marked() != len(seq) - 1}")
    assert (o.stopped_epoch, o.wait, o.best_epoch) == (k.stopped_epoch, k.wait, k.best_epoch)
    assert same(o.best, None if k.best is None else float(k.best))
    assert stub.marked() == kmarked(kmodel)


def test_early_stopping_missing_key_warns_once_with_the_keys_and_never_stops(kmodel):
    seq = [{"loss": 1.0 - i / 10} for i in range(5)]
    k, o = keras.callbacks.EarlyStopping("val_auc", mode="min"), ours.EarlyStopping("val_auc", mode="min")
    with pytest.warns(UserWarning) as caught:
        stopped, _, _ = ours_drive(o, Stub(), seq)
    messages = [str(w.message) for w in caught if "val_auc" in str(w.message)]
    assert stopped is None and len(messages) == 1
    assert "Available metrics are: loss" in messages[0] and messages[0].startswith("Early stopping conditioned")
    assert keras_drive(k, kmodel, seq)[0] is None


def test_early_stopping_verbose_messages_match_keras(kmodel, capsys):
    seq = [{"val_loss": v} for v in (0.5, 0.4, 0.6, 0.7)]
    kw = {"patience": 1, "verbose": 1, "restore_best_weights": True}
    keras_drive(keras.callbacks.EarlyStopping(**kw), kmodel, seq)
    theirs = capsys.readouterr().out
    ours_drive(ours.EarlyStopping(**kw), Stub(), seq)
    assert (
        capsys.readouterr().out
        == theirs
        == ("Epoch 3: early stopping\nRestoring model weights from the end of the best epoch: 2.\n")
    )


def test_auto_mode_follows_the_trainer_metric_direction():
    stub = Stub()

    class Score(tkm.Mean):
        higher_is_better = True

    stub.metrics, stub.metrics_names = [Score(name="error")], ["loss", "error"]
    cb = ours.EarlyStopping("val_error")
    cb.set_model(stub)
    cb._set_monitor_op()
    assert cb._is_improvement(0.6, 0.5)
    stub.metrics_names = ["loss", "digit_loss"]  # each output's loss is minimised
    cb = ours.EarlyStopping("val_digit_loss")
    cb.set_model(stub)
    cb._set_monitor_op()
    assert not cb._is_improvement(0.6, 0.5)
    for name, bigger_is_better in [("val_accuracy", True), ("accuracy", True), ("val_loss", False)]:
        cb = ours.EarlyStopping(name)
        cb.set_model(Stub())
        cb._set_monitor_op()
        assert cb._is_improvement(0.6, 0.5) is bigger_is_better


@pytest.mark.parametrize("callback", ["EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint"])
@pytest.mark.parametrize("monitor", ["val_acuracy", "auc", "val_mae"])
def test_auto_mode_refuses_a_monitor_of_unknown_direction_as_keras(kmodel, tmp_path, callback, monitor):
    """A typo in `monitor` raises at the first epoch end (where Keras raises), not a run that never stops."""
    args = (str(tmp_path / "k.weights.h5"),) if callback == "ModelCheckpoint" else ()
    k = getattr(keras.callbacks, callback)(*args, monitor=monitor)
    with pytest.raises(ValueError, match=f"monitor={monitor}"):
        keras_drive(k, kmodel, [{"loss": 1.0, monitor: 0.5}])
    args = (str(tmp_path / "o.pt"),) if callback == "ModelCheckpoint" else ()
    o = getattr(ours, callback)(*args, monitor=monitor)
    with pytest.raises(ValueError, match=f"monitor={monitor}, but the direction of that metric is unknown"):
        ours_drive(o, Stub(), [{"loss": 1.0, monitor: 0.5}])


# ------------------------------------------------------------------ ReduceLROnPlateau, LearningRateScheduler


@PARITY
@given(
    values=st.lists(st.sampled_from(VALUES), min_size=1, max_size=12),
    mode=st.sampled_from(["min", "max"]),
    factor=st.sampled_from([0.1, 0.5, 0.3]),
    patience=st.integers(0, 3),
    cooldown=st.integers(0, 2),
    min_lr=st.sampled_from([0.0, 1e-3, 0.02]),
    min_delta=st.sampled_from([0.0, 1e-4, 0.05]),
)
def test_reduce_lr_on_plateau_matches_keras(kmodel, values, mode, factor, patience, cooldown, min_lr, min_delta):
    seq = [{"loss": 1.0, "val_loss": v} for v in values]
    kw = dict(mode=mode, factor=factor, patience=patience, cooldown=cooldown, min_lr=min_lr, min_delta=min_delta)
    k, o, stub = keras.callbacks.ReduceLROnPlateau(**kw), ours.ReduceLROnPlateau(**kw), Stub()
    _, klrs, klogs = keras_drive(k, kmodel, seq, lr=klr)
    _, olrs, ologs = ours_drive(o, stub, seq, lr=Stub.lr)
    np.testing.assert_allclose(olrs, klrs, rtol=1e-6)
    np.testing.assert_allclose([g["learning_rate"] for g in ologs], [g["learning_rate"] for g in klogs], rtol=1e-6)
    event(f"reductions={len(set(olrs)) - 1}")
    assert (o.wait, o.cooldown_counter) == (k.wait, k.cooldown_counter)
    assert same(o.best, None if k.best is None else float(k.best))
    assert list(ologs[0]) == list(klogs[0])  # learning_rate appended last, as Keras does


def test_reduce_lr_on_plateau_scripted_every_group_and_message(kmodel, capsys):
    seq = [{"val_loss": v} for v in (1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5)]
    kw = {"factor": 0.5, "patience": 1, "cooldown": 1, "min_lr": 0.02, "verbose": 1}
    _, klrs, _ = keras_drive(keras.callbacks.ReduceLROnPlateau(**kw), kmodel, seq, lr=klr)
    theirs = capsys.readouterr().out
    stub = Stub()
    _, olrs, _ = ours_drive(ours.ReduceLROnPlateau(**kw), stub, seq, lr=Stub.lr)
    assert same_text(capsys.readouterr().out, theirs) and theirs.count("reducing learning rate") == 3
    np.testing.assert_allclose(olrs, [0.1, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02])
    np.testing.assert_allclose(olrs, klrs, rtol=1e-6)
    two = Stub(groups=2)
    two.optimizer.param_groups[1]["lr"] = 0.2
    ours_drive(ours.ReduceLROnPlateau(factor=0.5, patience=0), two, [{"val_loss": 1.0}] * 2)
    assert [g["lr"] for g in two.optimizer.param_groups] == [0.05, 0.1]


def test_reduce_lr_refuses_factor_one_and_missing_monitor_warns_once():
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ours.ReduceLROnPlateau(factor=1.0)
    o = ours.ReduceLROnPlateau("val_acc", patience=0, mode="max")
    with pytest.warns(UserWarning, match="Learning rate reduction is conditioned on metric `val_acc`") as caught:
        _, lrs, logs = ours_drive(o, Stub(), [{"loss": 1.0}] * 3, lr=Stub.lr)
    assert len([w for w in caught if "val_acc" in str(w.message)]) == 1
    assert lrs == [LR0] * 3 and "learning_rate" in str(caught[0].message)


SCHEDULES = {
    "halve_odd": lambda epoch, lr: lr * 0.5 if epoch % 2 else lr,
    "old_api": lambda epoch: 0.1 / (epoch + 1),
    "numpy_float32": lambda epoch, lr: np.float32(0.05 * (epoch + 1)),
    "exp": lambda epoch, lr: float(lr * np.exp(-0.1)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_learning_rate_scheduler_matches_keras(kmodel, name, capsys):
    seq = [{"loss": 1.0}] * 5
    schedule = SCHEDULES[name]
    k = keras.callbacks.LearningRateScheduler(schedule, verbose=1)
    _, klrs, klogs = keras_drive(k, kmodel, seq, lr=klr)
    theirs = capsys.readouterr().out
    stub = Stub(groups=2)
    _, olrs, ologs = ours_drive(ours.LearningRateScheduler(schedule), stub, seq, lr=Stub.lr)
    np.testing.assert_allclose(olrs, klrs, rtol=1e-6)
    np.testing.assert_allclose([g["learning_rate"] for g in ologs], [g["learning_rate"] for g in klogs], rtol=1e-6)
    assert stub.optimizer.param_groups[0]["lr"] == stub.optimizer.param_groups[1]["lr"]
    ours_drive(ours.LearningRateScheduler(schedule, verbose=1), Stub(), seq)
    assert same_text(capsys.readouterr().out, theirs)


def test_learning_rate_scheduler_refuses_non_floats_as_keras(kmodel):
    with pytest.raises(ValueError, match="should be a float"):
        keras_drive(keras.callbacks.LearningRateScheduler(lambda e: 1), kmodel, [{}])
    with pytest.raises(ValueError, match="should be a float"):
        ours_drive(ours.LearningRateScheduler(lambda e: 1), Stub(), [{}])


# ------------------------------------------------------------------ CSVLogger


CSV_RUNS = {
    "plain": [{"loss": 0.5, "accuracy": 0.25, "val_loss": 0.75, "val_accuracy": 1 / 3}, {"loss": 1e-7}],
    "no_val_first": [{"loss": 0.5, "accuracy": 0.1}, {"loss": 0.25, "accuracy": 0.2, "val_loss": 0.3}],
    "odd_values": [{"loss": float("nan"), "b": float("inf"), "a": 3, "c": "text", "d": [1.0, 2.5]}],
    "empty": [{}, {}],
}


@pytest.mark.parametrize("name", sorted(CSV_RUNS))
@pytest.mark.parametrize("separator", [",", ";"])
def test_csv_logger_writes_the_bytes_keras_writes(kmodel, tmp_path, name, separator):
    files = []
    for side in ("keras", "ours"):
        path = tmp_path / f"{side}.csv"
        for append in (False, True):  # a second fit appending under the same header
            if side == "keras":
                keras_drive(keras.callbacks.CSVLogger(path, separator, append), kmodel, CSV_RUNS[name])
            else:
                ours_drive(ours.CSVLogger(path, separator, append), Stub(), CSV_RUNS[name])
        files.append(path.read_bytes())
    assert files[0] == files[1]
    assert files[1].startswith(b"epoch")


def test_csv_logger_flushes_every_epoch(tmp_path):
    path = tmp_path / "log.csv"
    cb = ours.CSVLogger(path)
    cb.set_model(Stub())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.5})
    assert path.read_bytes() == b"epoch,loss,val_loss\r\n0,0.5,NA\r\n"
    cb.on_train_end()


# ------------------------------------------------------------------ ModelCheckpoint


def _listing(folder) -> list[str]:
    return sorted(f.removesuffix(".weights.h5").removesuffix(".pt") for f in os.listdir(folder))


@pytest.mark.parametrize("mode,monitor", [("auto", "val_loss"), ("max", "val_accuracy"), ("auto", "val_accuracy")])
@pytest.mark.parametrize("threshold", [None, 0.6])
def test_model_checkpoint_save_best_only_writes_the_files_keras_writes(kmodel, tmp_path, mode, monitor, threshold):
    values = [0.7, 0.5, 0.55, 0.5, 0.3, 0.9, 0.3]
    seq = [{"loss": 1.0, monitor: v} for v in values]
    listings: dict[str, list] = {"keras": [], "ours": []}
    bests = {}
    stub = Stub()
    for side in listings:
        folder = tmp_path / side
        pattern = "{epoch:02d}-{" + monitor + ":.4f}"
        kw = dict(monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True)
        kw["initial_value_threshold"] = threshold
        if side == "keras":
            cb = keras.callbacks.ModelCheckpoint(str(folder / (pattern + ".weights.h5")), **kw)
            host, mark = fresh(kmodel), kmark
        else:
            cb = ours.ModelCheckpoint(str(folder / (pattern + ".pt")), **kw)
            host, mark = stub, lambda h, e: h.mark(e)
        cb.set_model(host)
        cb.on_train_begin()
        for epoch, logs in enumerate(seq):
            mark(host, epoch)
            cb.on_epoch_begin(epoch)
            cb.on_epoch_end(epoch, dict(logs))
            listings[side].append(_listing(folder) if folder.exists() else [])
        bests[side] = None if cb.best is None else float(cb.best)
    assert listings["ours"] == listings["keras"] and bests["ours"] == bests["keras"]
    for name in os.listdir(tmp_path / "ours"):  # each file holds the weights of the epoch in its name
        state = torch.load(tmp_path / "ours" / name, weights_only=True)
        assert float(state["0.weight"][0, 0]) == int(name[:2]) - 1


def test_model_checkpoint_batch_frequency_matches_keras(kmodel, tmp_path):
    written = {}
    for side in ("keras", "ours"):
        folder = tmp_path / side
        if side == "keras":
            cb = keras.callbacks.ModelCheckpoint(str(folder / "e{epoch}-b{batch}.weights.h5"), save_freq=3,
                                                 save_weights_only=True)  # fmt: skip
            cb.set_model(fresh(kmodel))
        else:
            cb = ours.ModelCheckpoint(str(folder / "e{epoch}-b{batch}.pt"), save_freq=3)
            cb.set_model(Stub())
        cb.on_train_begin()
        for epoch, steps in enumerate([4, 4, 5]):
            cb.on_epoch_begin(epoch)
            for b in range(steps):
                cb.on_train_batch_end(b, {"loss": 0.5})
        written[side] = _listing(folder)
    assert written["ours"] == written["keras"] == ["e1-b3", "e2-b2", "e3-b1", "e3-b4"]
    full = torch.load(tmp_path / "ours" / "e3-b4.pt", weights_only=True)
    assert (full["epoch"], full["batch"]) == (3, 4) and set(full["optimizer_state_dict"]) == {"state", "param_groups"}


def test_model_checkpoint_full_checkpoint_resumes_model_and_optimizer(tmp_path):
    stub = Stub()
    stub.optimizer = torch.optim.Adam(stub.model.parameters(), lr=0.01)
    stub.model(torch.randn(4, 3)).sum().backward()
    stub.optimizer.step()
    cb = ours.ModelCheckpoint(tmp_path / "ckpt-{epoch}.pt", monitor="loss")
    cb.set_model(stub)
    cb.on_epoch_end(4, {"loss": 0.1})
    ckpt = torch.load(tmp_path / "ckpt-5.pt", weights_only=True)
    assert ckpt["epoch"] == 5 and ckpt["batch"] is None
    fresh_opt = torch.optim.Adam(stub.model.parameters(), lr=0.5)
    fresh_opt.load_state_dict(ckpt["optimizer_state_dict"])
    assert fresh_opt.param_groups[0]["lr"] == 0.01
    assert torch.equal(ckpt["model_state_dict"]["0.weight"], stub.model[0].weight)


def test_model_checkpoint_saves_the_unwrapped_module(tmp_path):
    stub = Stub()
    inner = stub.model
    stub.model = torch.nn.DataParallel(inner)
    cb = ours.ModelCheckpoint(tmp_path / "w.pt", save_weights_only=True)
    cb.set_model(stub)
    cb.on_epoch_end(0, {"val_loss": 1.0})
    assert set(torch.load(tmp_path / "w.pt", weights_only=True)) == set(inner.state_dict())


def test_model_checkpoint_missing_monitor_warns_once_and_saves_as_keras(kmodel, tmp_path):
    seq = [{"loss": 0.5}] * 3
    for side in ("keras", "ours"):
        make = keras.callbacks.ModelCheckpoint if side == "keras" else ours.ModelCheckpoint
        cb = make(str(tmp_path / side / ("{epoch}.weights.h5" if side == "keras" else "{epoch}.pt")),
                  monitor="val_loss", save_best_only=True, save_weights_only=True)  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            drive(cb, fresh(kmodel) if side == "keras" else Stub(), seq, kmark if side == "keras" else Stub.mark)
        messages = [str(w.message) for w in caught if "val_loss" in str(w.message)]
        assert len(_listing(tmp_path / side)) == 3
        assert len(messages) == (3 if side == "keras" else 1)
    assert messages[0] == "Can save best model only with val_loss available. Available metrics are: loss"


def test_model_checkpoint_format_errors_and_directories(tmp_path):
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        ours.ModelCheckpoint("x.pt", save_freq="step")
    cb = ours.ModelCheckpoint(tmp_path / "{val_los}.pt")
    cb.set_model(Stub())
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        cb.on_epoch_end(0, {"val_loss": 1.0})
    (tmp_path / "dir").mkdir()
    cb = ours.ModelCheckpoint(tmp_path / "dir")
    cb.set_model(Stub())
    with pytest.raises(OSError, match="non-directory filepath"):
        cb.on_epoch_end(0, {"val_loss": 1.0})
    assert os.listdir(tmp_path / "dir") == []


# ------------------------------------------------------------------ atomic writes


def test_failure_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    stub = Stub()
    path = tmp_path / "best.pt"
    cb = ours.ModelCheckpoint(path, save_weights_only=True)
    cb.set_model(stub)
    stub.mark(1)
    cb.on_epoch_end(0, {"val_loss": 1.0})
    before = path.read_bytes()
    real_save = torch.save

    def half_then_crash(obj, f, *args, **kwargs):
        import io

        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])  # half a file on disk, then the crash
        f.flush()
        raise OSError("disk full")

    stub.mark(2)
    monkeypatch.setattr(tio.torch, "save", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        cb.on_epoch_end(1, {"val_loss": 0.5})
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["best.pt"]
    assert float(torch.load(path, weights_only=True)["0.weight"][0, 0]) == 1

    monkeypatch.setattr(tio.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError, match="rename failed"):
        cb.on_epoch_end(2, {"val_loss": 0.4})
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["best.pt"]
    cb.on_epoch_end(3, {"val_loss": 0.3})  # and the next save goes through
    assert float(torch.load(path, weights_only=True)["0.weight"][0, 0]) == 2


def test_atomic_save_fsyncs_the_file_and_the_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(tio.os, "fsync", lambda fd: synced.append(os.path.isdir(f"/proc/self/fd/{fd}")) or real(fd))
    tio.atomic_save({"a": torch.zeros(1)}, tmp_path / "a.pt")
    assert synced == ([False, True] if os.name != "nt" else [False])
    assert oct(os.stat(tmp_path / "a.pt").st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ TerminateOnNaN, LambdaCallback


@pytest.mark.parametrize("raise_error", [False, True])
def test_terminate_on_nan_matches_keras_on_batch_logs(kmodel, capsys, raise_error):
    losses = [0.5, 0.4, float("inf"), 0.3]
    outcomes = []
    for side in ("keras", "ours"):
        host = fresh(kmodel) if side == "keras" else Stub()
        cb = (keras.callbacks.TerminateOnNaN if side == "keras" else ours.TerminateOnNaN)(raise_error=raise_error)
        cb.set_model(host)
        cb.on_train_begin()
        cb.on_epoch_begin(0)
        try:
            for b, loss in enumerate(losses):
                cb.on_train_batch_end(b, {"loss": loss})
                if host.stop_training:
                    break
            error = None
        except RuntimeError as err:
            error = str(err)
        outcomes.append((b, host.stop_training, error, capsys.readouterr().out))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0] == 2


class NaNAfter(torch.nn.Module):
    """Linear model whose output turns NaN from the `bad`-th call on."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.lin, self.calls, self.bad = torch.nn.Linear(3, 1), 0, bad

    def forward(self, x):
        self.calls += 1
        out = self.lin(x)
        return out * float("nan") if self.calls > self.bad else out


def _xy(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x.sum(1, keepdim=True)


def test_terminate_on_nan_reads_the_device_only_at_epoch_end(monkeypatch, capsys):
    x, y = _xy()
    model = NaNAfter(bad=3)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), "mse", device="cpu")
    reads = []

    class Spy(tkm.Callback):
        def on_train_batch_end(self, batch, logs=None):
            reads.append(counter[0])

    counter = [0]
    for attr in ("item", "tolist", "__bool__", "__float__", "cpu"):
        original = getattr(torch.Tensor, attr)

        def counting(self, *a, _o=original, **k):
            counter[0] += 1
            return _o(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, attr, counting)
    history = trainer.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False,
                          callbacks=[ours.TerminateOnNaN(interval=None), Spy()])  # fmt: skip
    monkeypatch.undo()
    assert len(set(reads)) == 1  # no read from the first batch to the last one
    assert len(history.epoch) == 1 and model.calls == 8  # the whole epoch ran, then training stopped
    assert capsys.readouterr().out == "Batch 3: Invalid loss, terminating training\n"


def test_terminate_on_nan_with_an_interval_stops_right_after_the_bad_batch(capsys):
    x, y = _xy()
    model = NaNAfter(bad=3)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), "mse", device="cpu")
    trainer.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False, callbacks=[ours.TerminateOnNaN(interval=0)])
    assert model.calls == 4 and "Batch 3: Invalid loss" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 0. Loss value: nan"):
        trainer.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[ours.TerminateOnNaN(raise_error=True)])


def test_lambda_callback_hooks_as_keras_including_batch_hooks_and_extra_kwargs():
    x, y = _xy(32)
    model = torch.nn.Linear(3, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), "mse", device="cpu")
    calls = []
    cb = ours.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, sorted(logs))),
        on_train_begin=lambda logs: calls.append(("train_begin",)),
        on_train_end=lambda logs: calls.append(("train_end",)),
        on_train_batch_end=lambda batch, logs: calls.append(("batch_end", batch, round(logs["loss"], 3) >= 0)),
        on_test_end=lambda logs: calls.append(("test_end", sorted(logs))),
    )
    trainer.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x, y), callbacks=[cb])
    assert calls == [
        ("train_begin",),
        ("epoch_begin", 0),
        ("batch_end", 0, True),
        ("batch_end", 1, True),
        ("test_end", ["loss"]),
        ("epoch_end", 0, ["loss", "val_loss"]),
        ("train_end",),
    ]
    k = keras.callbacks.LambdaCallback(on_epoch_end=print, extra=1)
    o = ours.LambdaCallback(on_epoch_end=print, extra=1)
    assert (k.on_epoch_end, k.extra) == (o.on_epoch_end, o.extra)


# ------------------------------------------------------------------ TensorBoard


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_writes_keras_tags_and_steps(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _xy(40)
    model = torch.nn.Linear(3, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), "mse", metrics=["mae"], device="cpu")
    board = ours.TensorBoard(tmp_path, update_freq="batch", histogram_freq=1)
    history = trainer.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y), callbacks=[board])
    train, val = _scalars(tmp_path / "train"), _scalars(tmp_path / "validation")
    assert set(train) == {
        "epoch_loss",
        "epoch_mae",
        "epoch_learning_rate",
        "batch_loss",
        "batch_mae",
    }
    assert [s for s, _ in train["epoch_loss"]] == [0, 1]
    np.testing.assert_allclose([v for _, v in train["epoch_loss"]], history.history["loss"], rtol=1e-6)
    assert [s for s, _ in train["batch_loss"]] == [1, 2, 3, 4, 5, 6]  # global batch step, 1-based
    batch_losses = [v for epoch in history.batches for v in epoch["loss"]]  # each batch's own loss
    np.testing.assert_allclose([v for _, v in train["batch_loss"]], batch_losses, rtol=1e-6)
    assert set(val) == {"epoch_loss", "epoch_mae", "evaluation_loss_vs_iterations",
                        "evaluation_mae_vs_iterations"}  # fmt: skip
    np.testing.assert_allclose([v for _, v in val["epoch_loss"]], history.history["val_loss"], rtol=1e-6)
    assert [s for s, _ in val["evaluation_loss_vs_iterations"]] == [3, 6]


def test_tensorboard_every_n_batches_and_missing_package(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    board = ours.TensorBoard(tmp_path, update_freq=2)
    board.set_model(Stub())
    board.on_train_begin()
    for epoch in range(2):
        board.on_epoch_begin(epoch)
        for b in range(3):
            board.on_train_batch_end(b, tkm.logs.Logs({"loss": torch.tensor(float(b))}, size=4))
        board.on_epoch_end(epoch, {"loss": 1.0})
    board.on_train_end()
    assert _scalars(tmp_path / "train")["batch_loss"] == [(2, 1.0), (4, 0.0), (6, 2.0)]
    with pytest.raises(ValueError, match="Profiling is not yet available"):
        ours.TensorBoard(tmp_path, profile_batch=2)
    with pytest.warns(UserWarning, match="not supported"):
        ours.TensorBoard(tmp_path, 0, True, True)  # Keras' positional order: histogram_freq, write_graph, images
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"`tensorboard` package: pip install tensorboard"):
        ours.TensorBoard(tmp_path)


# ------------------------------------------------------------------ torch.distributed: rank != 0 writes nothing


def test_ranks_other_than_zero_write_nothing_but_still_decide(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    assert not ours.is_main_process()
    callbacks = [
        ours.ModelCheckpoint(tmp_path / "ckpt-{epoch}.pt", monitor="loss", verbose=1),
        ours.CSVLogger(tmp_path / "log.csv"),
        ours.EarlyStopping("loss", patience=0, verbose=1),
        ours.ReduceLROnPlateau("loss", patience=0, factor=0.5),
    ]
    if "tensorboard" in sys.modules or _has_tensorboard():
        callbacks.append(ours.TensorBoard(tmp_path / "tb", update_freq="batch"))
    stub = Stub()
    cbs = tkm.CallbackList(callbacks, trainer=stub)
    cbs.on_train_begin()
    for epoch, loss in enumerate([0.5, 0.6]):
        cbs.on_epoch_begin(epoch)
        cbs.on_train_batch_end(0, tkm.logs.Logs({"loss": torch.tensor(loss)}, size=2))
        cbs.on_epoch_end(epoch, {"loss": loss})
        if stub.stop_training:
            break
    cbs.on_train_end()
    assert os.listdir(tmp_path) == [] and capsys.readouterr().out == ""
    assert stub.stop_training and callbacks[2].stopped_epoch == 1 and stub.lr() == 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_never_synchronise_with_nan_guard_and_batch_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _xy(640)
    model = torch.nn.Linear(3, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), "mse", device="cuda")
    trainer.fit(x, y, batch_size=64, verbose=0)  # warm-up: builds the metrics
    seen = []

    class Strict(tkm.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            torch.cuda.set_sync_debug_mode("error")
            seen.append(batch)

    class Relax(tkm.Callback):
        def on_train_batch_end(self, batch, logs=None):
            torch.cuda.set_sync_debug_mode("default")

    watched = [ours.TerminateOnNaN(interval=None), ours.TensorBoard(tmp_path, update_freq="batch")]
    try:
        trainer.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[Strict(), *watched, Relax()])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(seen) == 20 and len(_scalars(tmp_path / "train")["batch_loss"]) == 20


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ end to end


def test_fit_with_early_stopping_checkpoint_csv_and_plateau_together(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(240, 8, generator=g)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
    xv, yv = x[:60] + 0.5 * torch.randn(60, 8, generator=g), y[:60]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=0.05),
        tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True),
        metrics=["accuracy"],
        device="cpu",
    )
    stop = tkm.EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True)
    best = tkm.ModelCheckpoint(tmp_path / "best.pt", monitor="val_loss", save_best_only=True, save_weights_only=True)
    every = tkm.ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}-{val_accuracy:.3f}.pt")
    csv_path = tmp_path / "log.csv"
    plateau = tkm.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-3)
    history = trainer.fit(
        x, y, batch_size=32, epochs=40, verbose=0, validation_data=(xv, yv),
        callbacks=[plateau, stop, best, every, tkm.CSVLogger(csv_path), tkm.TerminateOnNaN()],
    )  # fmt: skip
    ran = len(history.epoch)
    assert 1 < ran < 40 and stop.stopped_epoch == ran - 1
    assert stop.best == min(history.history["val_loss"]) and stop.wait == 4
    # The best checkpoint is the restored model: both are the best epoch's weights.
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    lrs = history.history["learning_rate"]
    assert lrs[0] == 0.05 and lrs[-1] < 0.05 and all(a >= b for a, b in zip(lrs, lrs[1:]))
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss" and len(rows) == ran + 1
    assert rows[1].split(",")[2] == "0.05"
    names = sorted(os.listdir(tmp_path))
    assert len([n for n in names if n.startswith("ckpt-")]) == ran
    assert f"ckpt-01-{history.history['val_accuracy'][0]:.3f}.pt" in names
    last = torch.load(tmp_path / sorted(n for n in names if n.startswith("ckpt-"))[-1], weights_only=True)
    # ReduceLROnPlateau runs before the checkpoint in the list: the file holds the lr after this epoch's decision
    assert (
        last["epoch"] == ran
        and last["optimizer_state_dict"]["param_groups"][0]["lr"] == trainer.optimizer.param_groups[0]["lr"]
    )
    resumed = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    resumed.load_state_dict(last["model_state_dict"])


def test_tensorboard_writes_batch_steps_per_second_and_survives_non_finite_weights(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _xy(40)
    model = torch.nn.Linear(3, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), "mse", device="cpu")

    class Poison(tkm.Callback):  # a weight becomes inf after the first epoch: the histogram must not crash fit
        def on_epoch_end(self, epoch, logs=None):
            with torch.no_grad():
                model.weight[0, 0] = float("inf")

    board = ours.TensorBoard(tmp_path, histogram_freq=1, write_steps_per_second=True)
    with pytest.warns(UserWarning, match="non-finite values out") as caught:
        history = trainer.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[Poison(), board])
    assert len(history.epoch) == 3 and len([w for w in caught if "non-finite" in str(w.message)]) == 1
    train = _scalars(tmp_path / "train")
    assert [s for s, _ in train["batch_steps_per_second"]] == list(range(1, 10))  # every batch, 1-based
    assert all(v > 0 for _, v in train["batch_steps_per_second"]) and "epoch_steps_per_second" in train
