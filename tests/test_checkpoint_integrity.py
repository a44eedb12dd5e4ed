"""Checkpoints that cannot lie: a checksum over the whole payload, a schema for every field, loads that are all
or nothing, `resume_from` falling back past files that do not fit, no temporary files left by killed writers,
and a second Ctrl-C that waits for the checkpoint being written.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch

import torch_keras_metrics as tkm
from torch_keras_metrics import checkpoint as ckpt
from torch_keras_metrics import io as tio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def _trainer(hidden: int = 8, seed: int = 0) -> tkm.Trainer:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3))
    loss = tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True)
    return tkm.Trainer(model, torch.optim.Adam(model.parameters(), lr=0.01), loss, metrics=["accuracy"], device="cpu")


def _snapshot(trainer: tkm.Trainer) -> dict:
    """Everything a refused load must leave as it was."""
    run = trainer.run_state
    return {
        "model": copy.deepcopy(trainer.model.state_dict()),
        "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
        "history": copy.deepcopy(trainer.history.state_dict()) if trainer.history else None,
        "run": (run.epochs_done, copy.deepcopy(run.pending), run.history.state_dict() if run.history else None),
        "metrics": [copy.deepcopy(m.state_dict()) for m in trainer.metrics],
        "generator": trainer.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


def _unchanged(trainer: tkm.Trainer, before: dict) -> bool:
    after = _snapshot(trainer)
    return all(_same(after[k], before[k]) for k in before)


@pytest.fixture
def trained(tmp_path):
    """A trainer after 2 epochs with EarlyStopping, and its checkpoint; another trainer, trained apart."""
    trainer = _trainer()
    x, y = _data()
    stop = tkm.EarlyStopping("val_loss", patience=5, restore_best_weights=True)
    trainer.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25, callbacks=[stop])
    path = tmp_path / "good.pt"
    trainer.save_checkpoint(path)
    other = _trainer(seed=3)
    other.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return trainer, path, other


def _members(data: bytes) -> dict[str, tuple[int, int]]:
    """`{name: (offset, size)}` of each stored member of a torch zip file."""
    found = {}
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as z:
        for info in z.infolist():
            name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            found[info.filename] = (start, info.compress_size)
    return found


def _flipped(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ------------------------------------------------------------------ the checksum


def test_every_sampled_bit_flip_is_refused_or_reads_the_same_content(trained, tmp_path):
    """Flipped bits in the pickle, in every tensor's data and in the zip structure: never different content."""
    _, path, _ = trained
    good = path.read_bytes()
    expected = ckpt.read_checkpoint(path)
    members = _members(good)
    pickle_at, pickle_size = next(v for k, v in members.items() if k.endswith("/data.pkl"))
    tensors = [v for k, v in members.items() if "/data/" in k]
    rng = random.Random(14)
    bits = rng.sample(range(pickle_at * 8, (pickle_at + pickle_size) * 8), 160)
    for start, size in tensors:  # one flip in every tensor's bytes
        bits.append(rng.randrange(start * 8, (start + size) * 8))
    bits += rng.sample(range(len(good) * 8), 40)  # anywhere: headers, names, the other records
    refused, same, different = 0, 0, []
    flipped = tmp_path / "flipped.pt"
    for bit in bits:
        flipped.write_bytes(_flipped(good, bit))
        try:
            state = ckpt.read_checkpoint(flipped)
        except tkm.CheckpointError as err:
            assert str(flipped) in str(err)
            refused += 1
            continue
        if _same(state, expected):
            same += 1  # a bit nothing reads (a zip timestamp, padding)
        else:
            different.append(bit)
    assert different == [], f"{len(different)} of {len(bits)} flips read different content"
    assert refused >= 160 + len(tensors)  # every flip in the pickle and in the tensors' data is refused
    assert len(tensors) >= 10


def test_flipped_files_change_nothing_in_the_trainer(trained, tmp_path):
    _, path, other = trained
    good = path.read_bytes()
    members = _members(good)
    pickle_at, pickle_size = next(v for k, v in members.items() if k.endswith("/data.pkl"))
    weights_at, weights_size = next(v for k, v in members.items() if k.endswith("/data/0"))
    rng = random.Random(3)
    before, refused = _snapshot(other), 0
    flipped = tmp_path / "flipped.pt"
    for bit in [rng.randrange(weights_at * 8, (weights_at + weights_size) * 8)] + rng.sample(
        range(pickle_at * 8, (pickle_at + pickle_size) * 8), 12
    ):
        flipped.write_bytes(_flipped(good, bit))
        try:
            other.load_checkpoint(flipped)
        except tkm.CheckpointError as err:
            assert str(flipped) in str(err)
            refused += 1
        else:  # a bit nothing reads: the very same checkpoint loaded
            assert _same(ckpt.read_checkpoint(flipped), ckpt.read_checkpoint(path))
            before = _snapshot(other)
        assert _unchanged(other, before), bit
    assert refused >= 10


def test_a_checkpoint_holds_a_checksum_of_its_payload_and_still_loads_weights_only(trained):
    _, path, _ = trained
    state = torch.load(path, weights_only=True)
    assert state["format_version"] == 2 and state["checksum"].startswith("sha256:")
    assert state["checksum"] == ckpt.checksum(state)
    edited = dict(state, epoch=state["epoch"] + 1)
    assert ckpt.checksum(edited) != state["checksum"]
    weights = dict(state["model_state_dict"])
    weights["0.weight"] = weights["0.weight"].clone()
    weights["0.weight"].view(-1)[3] = torch.nextafter(weights["0.weight"].view(-1)[3], torch.tensor(9.0))
    assert ckpt.checksum(dict(state, model_state_dict=weights)) != state["checksum"]  # one ulp of one weight


def test_an_edited_file_fails_its_checksum_naming_the_file(trained, tmp_path):
    trainer, path, other = trained
    state = torch.load(path, weights_only=True)
    state["model_state_dict"]["2.bias"] += 1.0
    torch.save(state, tmp_path / "edited.pt")
    before = _snapshot(other)
    with pytest.raises(tkm.CheckpointError, match=r"edited\.pt' fails its checksum"):
        other.load_checkpoint(tmp_path / "edited.pt")
    assert _unchanged(other, before)


# ------------------------------------------------------------------ the schema of every field


def _without_wait(state):
    del state["callbacks"]["EarlyStopping"][0]["wait"]


def _set(*keys, value):
    def edit(state):
        target = state
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit,field",
    [
        (_set("rng", value={"bogus": 1}), r"field 'rng': has unknown random states 'bogus'"),
        (_set("rng", "python", value=(3, (2**40,) * 625, None)), r"field 'rng'\['python'\]\[1\]"),
        (_set("history", "history", "loss", value="not a list"), r"field 'history'\['history'\]\['loss'\]: is a str"),
        (_set("history", "epoch", value=[0, "1"]), r"field 'history'\['epoch'\]\[1\]"),
        (_without_wait, r"field 'callbacks'\['EarlyStopping'\]\[0\]: lacks 'wait'"),
        (_set("callbacks", "EarlyStopping", 0, "best", value="low"), r"\['EarlyStopping'\]\[0\]\['best'\]"),
        (_set("initial_epoch", value=-1), r"field 'initial_epoch': -1 is not an integer >= 0"),
        (_set("complete", value=1), r"field 'complete': 1 is not True or False"),
        (_set("metrics", 0, "state", value={"total": 1.0}), r"field 'metrics'\[0\]\['state'\]\['total'\]"),
        (
            _set("optimizer_state_dict", "param_groups", 0, "params", value=[0.5]),
            r"\['param_groups'\]\[0\]\['params'\]",
        ),
        (_set("model_state_dict", "0.bias", value=[0.0] * 8), r"field 'model_state_dict'\['0.bias'\]: is a list"),
        (_set("surprise", value=1), r"field 'surprise': is not one this library writes"),
    ],
)
def test_a_malformed_field_is_refused_naming_the_file_and_the_field_and_changes_nothing(trained, tmp_path, edit, field):
    _, path, other = trained
    state = torch.load(path, weights_only=True)
    edit(state)
    state["checksum"] = ckpt.checksum(state)  # edited on purpose and sealed again: the schema must catch it
    torch.save(state, tmp_path / "edited.pt")
    before = _snapshot(other)
    with pytest.raises(tkm.CheckpointError, match=field) as info:
        other.load_checkpoint(tmp_path / "edited.pt")
    assert str(tmp_path / "edited.pt") in str(info.value)
    assert _unchanged(other, before)


def test_best_weights_of_another_model_are_refused_before_anything_changes(trained, tmp_path):
    _, path, other = trained
    state = torch.load(path, weights_only=True)
    best = state["callbacks"]["EarlyStopping"][0]["best_weights"]
    best["0.weight"] = torch.zeros(4, 5)
    state["checksum"] = ckpt.checksum(state)
    torch.save(state, tmp_path / "edited.pt")
    before = _snapshot(other)
    with pytest.raises(tkm.CheckpointError, match=r"EarlyStopping 0's best weights.*0\.weight: \(4, 5\)"):
        other.load_checkpoint(tmp_path / "edited.pt")
    assert _unchanged(other, before)


# ------------------------------------------------------------------ all or nothing


class _Refusing(torch.optim.lr_scheduler.StepLR):
    """Refuses a state from before its first step, once it has half loaded it."""

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if state_dict["last_epoch"] == 0:
            raise RuntimeError("this scheduler refuses")


def test_a_part_that_fails_while_swapping_in_puts_back_every_part_before_it(trained):
    """The scheduler loads after the weights, the optimizer and the metrics: all of them come back."""
    trainer, path, other = trained
    trainer.lr_scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1)
    trainer.save_checkpoint(path)
    other.lr_scheduler = _Refusing(other.optimizer, step_size=1)
    other.optimizer.step()
    other.lr_scheduler.step()
    before, scheduler_before = _snapshot(other), copy.deepcopy(other.lr_scheduler.state_dict())
    with pytest.raises(tkm.CheckpointError, match=r"good\.pt.*the LR scheduler's state did not load.*refuses"):
        other.load_checkpoint(path)
    assert _unchanged(other, before)
    assert other.lr_scheduler.state_dict() == scheduler_before
    assert other.history is not trainer.history and other.run_state.pending is None


def test_a_callback_state_that_does_not_fit_restores_no_callback(trained, tmp_path):
    """A user callback's saved state with other keys: refused when fit restores it, and no callback changed."""

    class Counter(tkm.Callback):
        def __init__(self, count=0):
            self.count = count

        def state_dict(self):
            return {"count": self.count}

        def load_state_dict(self, state):
            self.count = state["count"]

    trainer, _, _ = trained
    x, y = _data()
    stop = tkm.EarlyStopping("val_loss", patience=5)
    trainer.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0, validation_split=0.25,
                callbacks=[stop, Counter(7)])  # fmt: skip
    trainer.save_checkpoint(tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    state["callbacks"]["Counter"] = [{"counted": 7}]
    state["checksum"] = ckpt.checksum(state)
    torch.save(state, tmp_path / "c.pt")
    fresh, stop_again, counter = _trainer(seed=5), tkm.EarlyStopping("val_loss", patience=5), Counter()
    start = fresh.load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(tkm.CheckpointError, match=r"callback Counter 0 from .*c\.pt.*'counted'"):
        fresh.fit(x, y, batch_size=16, epochs=4, initial_epoch=start, verbose=0, validation_split=0.25,
                  callbacks=[stop_again, counter])  # fmt: skip
    assert counter.count == 0 and stop_again.wait == 0 and stop_again.best is None


# ------------------------------------------------------------------ resume_from falls back


def test_resume_from_a_folder_skips_newer_files_that_read_but_do_not_fit(tmp_path):
    x, y = _data()
    run = tmp_path / "run"
    trainer = _trainer()
    trainer.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[tkm.ModelCheckpoint(run / "ckpt-{epoch}.pt")])
    wide = _trainer(hidden=12)
    wide.fit(x, y, batch_size=16, epochs=3, verbose=0)
    wide.save_checkpoint(run / "ckpt-3.pt")  # another architecture
    state = torch.load(run / "ckpt-2.pt", weights_only=True)
    state["rng"]["trainer"] = torch.zeros(3, dtype=torch.uint8)  # a generator state that does not load
    state["checksum"] = ckpt.checksum(state)
    torch.save(state, run / "ckpt-4.pt")
    for i, name in enumerate(["ckpt-1.pt", "ckpt-2.pt", "ckpt-3.pt", "ckpt-4.pt"]):
        os.utime(run / name, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    resumed = _trainer(seed=9)
    with pytest.warns(UserWarning) as caught:
        history = resumed.fit(x, y, batch_size=16, epochs=3, verbose=0, resume_from=run)
    messages = [str(w.message) for w in caught]
    assert any("ckpt-4.pt" in m and "random states do not load" in m for m in messages), messages
    assert any("ckpt-3.pt" in m and "different model architecture" in m for m in messages), messages
    assert history.epoch == [0, 1, 2] and history.history["loss"][:2] == trainer.history.history["loss"]

    lone = tmp_path / "lone"
    lone.mkdir()
    wide.save_checkpoint(lone / "only.pt")
    with pytest.warns(UserWarning, match="does not fit"):
        with pytest.raises(tkm.CheckpointError, match=r"No checkpoint in .*lone.*only\.pt \(does not fit\)"):
            _trainer().fit(x, y, epochs=1, verbose=0, resume_from=lone)


# ------------------------------------------------------------------ temporary files of killed writers

KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from torch_keras_metrics import io

    def half_then_die(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = half_then_die
    io.atomic_save({"w": torch.ones(2)}, os.path.join(sys.argv[1], "ckpt-01.pt"))
    """
)


def test_temporary_files_of_killed_writers_are_removed_and_no_others(tmp_path, trained):
    trainer, _, other = trained
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(run)], env=env, capture_output=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr
    (leftover,) = os.listdir(run)
    assert leftover.startswith(".ckpt-01.pt.") and leftover.endswith(".tmp")
    alive = f".ckpt-02.pt.{os.getppid()}.0123abcd.tmp"  # a writer that runs (this test's parent process)
    others = [alive, ".ckpt-03.pt.123.tmp", "notes.12345.0123abcd.tmp", ".ckpt-04.pt.99x.0123abcd.tmp"]
    for name in others:
        (run / name).write_bytes(b"kept")
    trainer.save_checkpoint(run / "ckpt-05.pt")
    assert sorted(os.listdir(run)) == sorted([*others, "ckpt-05.pt"])

    # resuming from a folder removes them too
    (run / leftover).write_bytes(b"half a checkpoint")
    assert other.fit(*_data(), epochs=3, verbose=0, resume_from=run).epoch == [0, 1, 2]
    assert sorted(os.listdir(run)) == sorted([*others, "ckpt-05.pt"])


# ------------------------------------------------------------------ Ctrl-C twice


@pytest.mark.parametrize("when", ["first at a batch, second while saving", "both while saving"])
def test_a_second_ctrl_c_while_a_checkpoint_is_written_waits_for_the_file_then_stops(tmp_path, ctrl_c, monkeypatch,
                                                                                     when):  # fmt: skip
    x, y = _data()
    trainer = _trainer()
    folder = tmp_path / "ckpt"
    ended, pressed = [], []
    real_save = torch.save

    class Writer:
        """The temporary file's writer, pressing Ctrl-C while torch.save writes (the file exists, half written)."""

        def __init__(self, f, presses):
            self.f, self.presses, self.calls = f, presses, 0

        def write(self, data):
            self.calls += 1
            n = self.f.write(data)
            if self.calls == 3:
                temporaries = [n for n in os.listdir(folder) if n.endswith(".tmp")]
                assert len(temporaries) == 1
                for _ in range(self.presses):
                    pressed.append(temporaries[0])
                    os.kill(os.getpid(), signal.SIGINT)
            return n

        def flush(self):
            self.f.flush()

    def save(obj, f, *args, **kwargs):
        interrupted = trainer.interrupted
        presses = 0
        if when == "both while saving" and not pressed:
            presses = 2
        elif when != "both while saving" and interrupted and not pressed:
            presses = 1
        return real_save(obj, Writer(f, presses) if presses else f, *args, **kwargs)

    def press_at_batch(batch, logs):
        if when != "both while saving" and len(trainer.history.epoch if trainer.history else []) == 1 and batch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(torch, "save", save)
    callbacks = [
        tkm.ModelCheckpoint(folder / "e{epoch}.pt"),
        tkm.LambdaCallback(on_train_batch_end=press_at_batch, on_train_end=ended.append),
    ]
    history = trainer.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=callbacks)

    assert len(ended) == 1 and trainer.history is history
    assert signal.getsignal(signal.SIGINT) is ctrl_c
    names = sorted(os.listdir(folder))
    assert not [n for n in names if n.endswith(".tmp")]
    if when == "both while saving":  # the first asked to stop, the second aborted after e1.pt was written
        assert len(pressed) == 2 and pressed[0].startswith(".e1.pt.") and names == ["e1.pt"]
        assert history.epoch == [0]
        assert ckpt.read_checkpoint(folder / "e1.pt")["initial_epoch"] == 1
    else:  # Ctrl-C at a batch of epoch 1, then again while interrupted.pt was written: the file is whole
        assert len(pressed) == 1 and pressed[0].startswith(".interrupted.pt.") and names == ["e1.pt", "interrupted.pt"]
        assert history.epoch == [0, 1]
        state = ckpt.read_checkpoint(folder / "interrupted.pt")
        assert (state["epoch"], state["complete"], state["initial_epoch"]) == (2, False, 1)
        assert _same(state["model_state_dict"], trainer.model.state_dict())


def test_atomic_save_delivers_a_held_ctrl_c_to_the_handler_before_it(tmp_path, ctrl_c, monkeypatch):
    seen = []
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        assert seen == []  # held while the file is written
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    tio.atomic_save({"w": torch.ones(2)}, tmp_path / "w.pt")
    assert seen == [signal.SIGINT] and os.listdir(tmp_path) == ["w.pt"]
