"""Trainer checkpoints: a SIGKILLed run resumes bit-identically; bad files fail clearly and change nothing.

The kill-and-resume test runs three child processes (uninterrupted, killed after epoch 2 of 4, resumed)
on the CPU with deterministic algorithms and one thread, and compares weights and History bit for bit.
"""

from __future__ import annotations

import copy
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

import torch_keras_metrics as tkm
from torch_keras_metrics import checkpoint as ckpt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ shared pieces


def _data(n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return x, y


def _trainer(hidden: int = 16, seed: int = 0, **kwargs) -> tkm.Trainer:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(hidden, 3)
    )
    return tkm.Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=0.02),
        tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True),
        metrics=["accuracy"],
        device="cpu",
        **kwargs,
    )


def _snapshot(trainer: tkm.Trainer) -> dict:
    """Everything a failed load must leave as it was."""
    return {
        "model": copy.deepcopy(trainer.model.state_dict()),
        "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
        "history": copy.deepcopy(trainer.history.state_dict()) if trainer.history else None,
        "metrics": [copy.deepcopy(m.state_dict()) for m in trainer.metrics],
        "generator": trainer.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture
def trained(tmp_path):
    """A trainer after 2 epochs, and its checkpoint."""
    trainer = _trainer()
    x, y = _data()
    trainer.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25)
    path = tmp_path / "good.pt"
    trainer.save_checkpoint(path)
    return trainer, path


# ------------------------------------------------------------------ SIGKILL, then resume

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    import torch_keras_metrics as tkm

    import random
    import numpy as np

    mode, folder, out = sys.argv[1:4]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    seed = 123 if mode == "resume" else 0  # the checkpoint must bring back the weights and every random state
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 3)
    )
    trainer = tkm.Trainer(
        model, torch.optim.Adam(model.parameters(), lr=0.02),
        tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True),
        metrics=["accuracy"], weighted_metrics=["accuracy"], device="cpu",
    )
    # with min_delta=10 nothing improves after epoch 0: their wait counters and the lr depend on restored states
    stop = tkm.EarlyStopping("val_loss", patience=10, min_delta=10.0)
    callbacks = [
        tkm.ReduceLROnPlateau("val_loss", factor=0.5, patience=1, min_delta=10.0),
        tkm.ModelCheckpoint(os.path.join(folder, "ckpt-{epoch}.pt"), save_weights_only=False),
        stop,  # after the checkpoint in the list: its epoch-end state is saved all the same
    ]
    if mode == "kill":
        die = lambda epoch, logs: os.kill(os.getpid(), signal.SIGKILL) if epoch == 2 else None
        callbacks.append(tkm.LambdaCallback(on_epoch_begin=die))
    w = torch.rand(96, generator=g) + 0.5
    history = trainer.fit(
        x, y, batch_size=16, epochs=4, verbose=0, validation_split=0.25, sample_weight=w,
        callbacks=callbacks, resume_from=folder if mode == "resume" else None,
    )
    torch.save(
        {
            "weights": model.state_dict(),
            "history": history.state_dict(),
            "stop": stop.state_dict(),
            "lr": trainer.optimizer.param_groups[0]["lr"],
            "optimizer": trainer.optimizer.state_dict(),
        },
        out,
    )
    """
)


def _child(script, mode, folder, out):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:  # a deadline for a real hang only: a busy machine takes a minute where an idle one takes seconds
        return subprocess.run(
            [sys.executable, str(script), mode, str(folder), str(out)], env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise AssertionError(f"the {mode!r} child did not finish in 600 s; its stderr:\n{err.stderr}") from err


def test_a_run_killed_after_epoch_2_of_4_resumes_to_the_same_weights_and_history(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    full = _child(script, "full", tmp_path / "full", tmp_path / "full.pt")
    assert full.returncode == 0, full.stderr
    killed = _child(script, "kill", tmp_path / "run", tmp_path / "never.pt")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sorted(os.listdir(tmp_path / "run")) == ["ckpt-1.pt", "ckpt-2.pt"]
    assert not (tmp_path / "never.pt").exists()
    resumed = _child(script, "resume", tmp_path / "run", tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(os.listdir(tmp_path / "run")) == [f"ckpt-{e}.pt" for e in (1, 2, 3, 4)]

    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a["weights"].keys() == b["weights"].keys()
    for k in a["weights"]:
        assert torch.equal(a["weights"][k], b["weights"][k]), k
    assert a["history"] == b["history"]  # per-epoch logs, epochs, every batch's values, Keras 2 averages
    assert a["history"]["epoch"] == [0, 1, 2, 3] and len(a["history"]["history"]["learning_rate"]) == 4
    assert _same(a["stop"], b["stop"]) and a["stop"]["wait"] == 3
    assert a["lr"] == b["lr"] == 0.02 * 0.5**3 and a["history"]["history"]["learning_rate"] == [0.02, 0.02, 0.01, 0.005]
    assert _same(a["optimizer"], b["optimizer"])
    # the last checkpoint of each run is the same too (its RNG states included)
    last_a = torch.load(tmp_path / "full" / "ckpt-4.pt", weights_only=True)
    last_b = torch.load(tmp_path / "run" / "ckpt-4.pt", weights_only=True)
    assert _same(last_a["rng"], last_b["rng"]) and _same(last_a["callbacks"], last_b["callbacks"])


# ------------------------------------------------------------------ what a checkpoint holds


def test_a_checkpoint_is_plain_data_holding_the_whole_trainer(trained):
    trainer, path = trained
    state = torch.load(path, weights_only=True)  # nothing to register
    assert state["format"] == ckpt.FORMAT and state["format_version"] == ckpt.FORMAT_VERSION
    assert state["library_version"] == tkm.__version__
    assert (state["epoch"], state["batch"], state["initial_epoch"], state["complete"]) == (2, None, 2, True)
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python", "trainer"}
    assert state["history"]["epoch"] == [0, 1] and set(state["history"]["history"]) == {
        "accuracy",
        "loss",
        "val_accuracy",
        "val_loss",
    }
    assert [m["name"] for m in state["metrics"]] == ["accuracy"]
    assert _same(state["model_state_dict"], trainer.model.state_dict())


def test_load_restores_model_optimizer_history_metrics_and_random_states(trained):
    trainer, path = trained
    expected = _snapshot(trainer)
    random.seed(5)
    np.random.seed(5)
    trainer.save_checkpoint(path)
    after = (random.random(), np.random.rand(), torch.rand(3), torch.randint(0, 9, (4,), generator=trainer.generator))

    other = _trainer(seed=1)
    x, y = _data()
    other.fit(x, y, batch_size=16, epochs=1, verbose=0)  # built, with other weights and metric states
    random.seed(9)
    np.random.seed(9)
    assert other.load_checkpoint(path) == 2
    got = _snapshot(other)
    for key in ("model", "optimizer", "history", "metrics", "generator"):
        assert _same(got[key], expected[key]), key
    again = (random.random(), np.random.rand(), torch.rand(3), torch.randint(0, 9, (4,), generator=other.generator))
    assert again[:2] == after[:2] and torch.equal(again[2], after[2]) and torch.equal(again[3], after[3])


def test_grad_scaler_and_lr_scheduler_states_travel_too(tmp_path):
    x, y = _data()

    def make(seed):
        trainer = _trainer(seed=seed, precision="fp16")
        trainer.lr_scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
        return trainer

    trainer = make(0)
    step = tkm.LambdaCallback(on_epoch_end=lambda epoch, logs: trainer.lr_scheduler.step())
    trainer.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[step])
    trainer.save_checkpoint(tmp_path / "amp.pt")
    other = make(1)
    assert other.load_checkpoint(tmp_path / "amp.pt") == 3
    assert other.grad_scaler.state_dict() == trainer.grad_scaler.state_dict()
    assert other.lr_scheduler.state_dict() == trainer.lr_scheduler.state_dict()
    assert other.optimizer.param_groups[0]["lr"] == trainer.optimizer.param_groups[0]["lr"] == 0.02 * 0.5**3


def _callbacks(folder):
    return [
        tkm.EarlyStopping("val_loss", patience=50, min_delta=10.0, restore_best_weights=True),
        tkm.ReduceLROnPlateau("val_loss", patience=5, factor=0.5, min_delta=10.0),
        tkm.ModelCheckpoint(folder / "last.pt", monitor="val_loss"),
    ]


def test_callback_states_are_restored_after_their_on_train_begin(tmp_path):
    x, y = _data()
    callbacks = _callbacks(tmp_path)
    _trainer().fit(x, y, batch_size=16, epochs=3, verbose=0, validation_split=0.25, callbacks=callbacks)
    states = [cb.state_dict() for cb in callbacks]
    assert states[0]["wait"] == states[1]["wait"] == 2 and states[0]["best_weights"] is not None

    fresh, again = _trainer(seed=3), _callbacks(tmp_path / "again")
    seen = []
    probe = tkm.LambdaCallback(on_train_begin=lambda logs: seen.append([cb.state_dict() for cb in again]))
    start = fresh.load_checkpoint(tmp_path / "last.pt")
    history = fresh.fit(x, y, batch_size=16, epochs=3, initial_epoch=start, verbose=0, validation_split=0.25,
                        callbacks=[*again, probe])  # fmt: skip
    assert start == 3 and history.epoch == [0, 1, 2]
    assert seen[0][0]["wait"] == 0 and seen[0][0]["best"] is None  # reset by on_train_begin, then restored:
    assert _same([cb.state_dict() for cb in again], states)


def test_fit_with_another_initial_epoch_warns_and_keeps_a_fresh_history(trained):
    trainer, path = trained
    x, y = _data()
    trainer.load_checkpoint(path)
    with pytest.warns(UserWarning, match="History and callback states are not restored"):
        history = trainer.fit(x, y, batch_size=16, epochs=4, initial_epoch=3, verbose=0)
    assert history.epoch == [3]


# ------------------------------------------------------------------ bad files: clear errors, nothing changed


def _corrupt_files(folder, good: bytes) -> dict:
    files = {
        "truncated.pt": good[: len(good) // 2],
        "random.pt": random.Random(0).randbytes(4096),
        "empty.pt": b"",
        "tail-cut.pt": good[:-100],
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    torch.save({"weight": torch.ones(2), "bias": torch.zeros(1)}, folder / "plain_state_dict.pt")
    torch.save({"epoch": 3, "model_state_dict": {"w": torch.ones(1)}}, folder / "no_marker.pt")
    with open(folder / "pickle.pt", "wb") as f:
        pickle.dump(warnings.WarningMessage("m", UserWarning, "f", 1), f)  # some other pickle
    return files


@pytest.mark.parametrize(
    "name,match",
    [
        ("truncated.pt", "truncated, corrupted or not a torch file"),
        ("tail-cut.pt", "truncated, corrupted or not a torch file"),
        ("random.pt", "(truncated, corrupted or not a torch file|refused it)"),
        ("empty.pt", "truncated, corrupted or not a torch file"),
        ("plain_state_dict.pt", r"plain state_dict of 2 tensors \('weight', 'bias'\)"),
        ("no_marker.pt", "no 'torch_keras_metrics.trainer_checkpoint' format marker"),
        ("pickle.pt", "refused it"),
    ],
)
def test_a_bad_file_raises_a_clear_error_naming_it_and_changes_nothing(trained, tmp_path, name, match):
    trainer, path = trained
    _corrupt_files(tmp_path, path.read_bytes())
    before = _snapshot(trainer)
    with pytest.raises(tkm.CheckpointError, match=match) as info:
        trainer.load_checkpoint(tmp_path / name)
    assert str(tmp_path / name) in str(info.value)
    after = _snapshot(trainer)
    assert all(_same(after[k], before[k]) for k in before)
    assert trainer.load_checkpoint(path) == 2  # and the good one still loads


def test_a_checkpoint_of_another_architecture_names_the_mismatched_keys(trained, tmp_path):
    _, path = trained
    other = _trainer(hidden=8)
    other.model.append(torch.nn.Softmax(-1))
    other.model.append(torch.nn.Linear(3, 3))
    before = _snapshot(other)
    with pytest.raises(tkm.CheckpointError) as info:
        other.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "different model architecture" in message
    assert "missing from the file: '5.weight', '5.bias'" in message
    assert "0.weight: (16, 6) in the file, (8, 6) in the model" in message
    assert "3.weight: (3, 16) in the file, (3, 8) in the model" in message
    assert "The trainer was not changed" in message
    after = _snapshot(other)
    assert all(_same(after[k], before[k]) for k in before)


def test_an_optimizer_of_another_layout_is_refused_before_anything_changes(trained):
    _, path = trained
    other = _trainer()
    params = list(other.model.parameters())
    other.optimizer = torch.optim.Adam([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    before = _snapshot(other)
    with pytest.raises(tkm.CheckpointError, match="optimizer has 1 param groups, this one 2"):
        other.load_checkpoint(path)
    assert all(_same(_snapshot(other)[k], before[k]) for k in before)


def test_another_optimizer_class_is_refused(trained):
    _, path = trained
    other = _trainer()
    other.optimizer = torch.optim.SGD(other.model.parameters(), lr=0.1, momentum=0.9)
    before = _snapshot(other)
    with pytest.raises(tkm.CheckpointError, match="its optimizer is Adam, this trainer's is SGD"):
        other.load_checkpoint(path)
    assert all(_same(_snapshot(other)[k], before[k]) for k in before)


def test_a_newer_format_version_is_refused(trained, tmp_path):
    _, path = trained
    state = torch.load(path, weights_only=True)
    state["format_version"] = ckpt.FORMAT_VERSION + 1
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(tkm.CheckpointError, match="newer than this torch_keras_metrics reads"):
        ckpt.read_checkpoint(tmp_path / "future.pt")


# ------------------------------------------------------------------ atomic writes


def test_a_save_that_fails_half_way_leaves_the_previous_checkpoint(trained, monkeypatch):
    trainer, path = trained
    good = path.read_bytes()
    real_save = torch.save

    def half_then_crash(obj, f, *args, **kwargs):
        import io

        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        raise OSError("disk full")

    x, y = _data()
    trainer.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0)
    monkeypatch.setattr(torch, "save", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == good and sorted(os.listdir(path.parent)) == ["good.pt"]
    assert ckpt.read_checkpoint(path)["initial_epoch"] == 2


def test_a_value_that_would_not_load_fails_at_save_time(trained, tmp_path):
    trainer, _ = trained

    class Opaque(tkm.Callback):
        def state_dict(self):
            return {"thing": object()}

        def load_state_dict(self, state):
            pass

    trainer.fit(*_data(), batch_size=16, epochs=1, verbose=0, callbacks=[Opaque()])
    with pytest.raises(TypeError, match=r"callback Opaque\['thing'\]: a value of type object would not load"):
        trainer.save_checkpoint(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


# ------------------------------------------------------------------ resume_from


def test_resume_from_a_folder_picks_the_newest_checkpoint_that_loads(tmp_path):
    x, y = _data()
    run = tmp_path / "run"
    trainer = _trainer()
    trainer.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[tkm.ModelCheckpoint(run / "ckpt-{epoch}.pt")])
    (run / "ckpt-4.pt").write_bytes((run / "ckpt-3.pt").read_bytes()[:1000])  # newest, but broken
    (run / "notes.txt").write_text("not a checkpoint")
    (run / ".ckpt-5.pt.123.tmp").write_bytes(b"a leftover temporary file")
    for i, name in enumerate(["ckpt-1.pt", "ckpt-3.pt", "ckpt-2.pt", "ckpt-4.pt"]):
        os.utime(run / name, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))  # ckpt-2 is newer than ckpt-3
    assert ckpt.latest_checkpoint(run / "ckpt-1.pt") == str(run / "ckpt-1.pt")
    with pytest.warns(UserWarning, match=r"Skipping a checkpoint that does not load: .*ckpt-4\.pt"):
        assert ckpt.latest_checkpoint(run) == str(run / "ckpt-2.pt")

    resumed = _trainer(seed=7)
    with pytest.warns(UserWarning, match="ckpt-4.pt"):
        history = resumed.fit(x, y, batch_size=16, epochs=3, verbose=0, resume_from=run)
    assert history.epoch == [0, 1, 2] and len(history.history["loss"]) == 3
    assert history.history["loss"][:2] == trainer.history.history["loss"][:2]


def test_resume_from_nothing_trains_from_scratch_and_only_bad_files_raise(tmp_path):
    x, y = _data()
    trainer = _trainer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert trainer.fit(x, y, epochs=1, verbose=0, resume_from=tmp_path / "missing").epoch == [0]
        (tmp_path / "empty").mkdir()
        assert trainer.fit(x, y, epochs=1, verbose=0, resume_from=tmp_path / "empty").epoch == [0]
    with pytest.warns(UserWarning, match="No checkpoint at"):
        trainer.fit(x, y, epochs=1, verbose=0, resume_from=tmp_path / "typo.pt")
    (tmp_path / "empty" / "bad.pt").write_bytes(b"junk")
    with pytest.warns(UserWarning, match="Skipping"), pytest.raises(tkm.CheckpointError, match="No checkpoint in"):
        trainer.fit(x, y, epochs=1, verbose=0, resume_from=tmp_path / "empty")
    with pytest.raises(tkm.CheckpointError, match="bad.pt"):
        trainer.fit(x, y, epochs=1, verbose=0, resume_from=tmp_path / "empty" / "bad.pt")


def test_a_finished_run_resumed_trains_no_more_and_returns_its_history(tmp_path):
    x, y = _data()
    trainer = _trainer()
    trainer.fit(x, y, epochs=2, verbose=0, callbacks=[tkm.ModelCheckpoint(tmp_path / "last.pt")])
    again = _trainer(seed=4)
    history = again.fit(x, y, epochs=2, verbose=0, resume_from=tmp_path)
    assert history.history == trainer.history.history
    assert _same(again.model.state_dict(), trainer.model.state_dict())


# ------------------------------------------------------------------ Ctrl-C and NaN


def test_ctrl_c_saves_the_interrupted_epoch_apart_runs_on_train_end_and_returns(tmp_path, ctrl_c):
    x, y = _data()
    trainer = _trainer()
    ended = []

    def press_ctrl_c(batch, logs):
        if len(trainer.history.epoch if trainer.history else []) == 1 and batch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    every = tkm.ModelCheckpoint(tmp_path / "ckpt" / "e{epoch}-{val_loss:.3f}.pt")
    best = tkm.ModelCheckpoint(tmp_path / "ckpt" / "best.pt", save_best_only=True, save_weights_only=True)
    callbacks = [every, best, tkm.LambdaCallback(on_train_batch_end=press_ctrl_c, on_train_end=ended.append)]
    history = trainer.fit(x, y, batch_size=8, epochs=5, verbose=0, validation_split=0.25, callbacks=callbacks)
    assert len(ended) == 1 and history.epoch == [0, 1]  # the interrupted epoch's partial logs are in the History
    names = sorted(os.listdir(tmp_path / "ckpt"))
    assert names == ["best.pt", f"e1-{history.history['val_loss'][0]:.3f}.pt", "interrupted.pt"]
    state = ckpt.read_checkpoint(tmp_path / "ckpt" / "interrupted.pt")
    assert (state["epoch"], state["complete"], state["initial_epoch"]) == (2, False, 1)
    assert state["history"]["epoch"] == [0] and len(state["history"]["history"]["loss"]) == 1
    assert _same(state["model_state_dict"], trainer.model.state_dict())  # the weights when it stopped
    assert trainer.predict(x, verbose=0).isfinite().all()  # the model is usable
    assert signal.getsignal(signal.SIGINT) is ctrl_c  # the handler before fit is back
    resumed = _trainer(seed=2)
    history = resumed.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.25,
                          resume_from=tmp_path / "ckpt" / "interrupted.pt")  # fmt: skip
    assert history.epoch == [0, 1, 2] and history.history["loss"][0] == trainer.history.history["loss"][0]


class _Poison(torch.nn.Module):
    on = False

    def forward(self, x):
        return x * float("nan") if self.on else x


def test_a_nan_loss_stops_with_the_best_weights_restored(tmp_path):
    x, y = _data()
    trainer = _trainer()
    poison = _Poison()
    trainer.model.append(poison)
    kept = {}

    def remember(epoch, logs):
        kept[epoch] = copy.deepcopy(trainer.model.state_dict())

    callbacks = [
        tkm.LambdaCallback(on_epoch_begin=lambda epoch, logs: setattr(poison, "on", epoch == 3)),
        tkm.TerminateOnNaN(),
        tkm.EarlyStopping("val_loss", patience=10, restore_best_weights=True),
        tkm.LambdaCallback(on_epoch_end=remember),
    ]
    history = trainer.fit(x, y, batch_size=16, epochs=8, verbose=0, validation_split=0.25, callbacks=callbacks)
    assert history.epoch == [0, 1, 2, 3] and trainer.stop_training
    assert np.isnan(history.history["loss"][3]) and all(np.isfinite(history.history["loss"][:3]))
    losses = history.history["val_loss"][:3]
    best = int(np.argmin(losses))
    assert callbacks[2].best_epoch == best
    state = trainer.model.state_dict()
    assert all(t.isfinite().all() for t in state.values())
    assert _same(state, kept[best])


def test_random_states_that_would_not_load_are_refused_before_anything_changes(tmp_path):
    """A state that passes the type checks but not numpy's own (a hand-edited file) fails before any load."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(-1))
    trainer = tkm.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "sparse_categorical_crossentropy")
    trainer.fit(torch.randn(20, 4), torch.randint(0, 3, (20,)), epochs=1, verbose=0)
    path = tmp_path / "edited.pt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=True)
    state["rng"]["numpy"]["bit_generator"] = "NotAGenerator"
    state["checksum"] = ckpt.checksum(state)  # edited on purpose: sealed again, so that the checks behind run
    torch.save(state, path)
    other = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(-1))
    fresh = tkm.Trainer(other, torch.optim.SGD(other.parameters(), lr=0.1), "sparse_categorical_crossentropy")
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(tkm.CheckpointError, match=r"edited\.pt.*random states do not load"):
        fresh.load_checkpoint(path)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
