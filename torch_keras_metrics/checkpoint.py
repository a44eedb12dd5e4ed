"""Trainer checkpoints: everything a run needs to continue exactly, in one atomically written file.

A checkpoint holds the (unwrapped) model's weights, the optimizer, the gradient scaler, an LR scheduler
(a `lr_scheduler` or `scheduler` attribute of the Trainer, if any), the epoch, the `History`, the
callbacks' states (`EarlyStopping`'s best and wait, `ReduceLROnPlateau`'s, `ModelCheckpoint`'s best,
any callback with `state_dict`/`load_state_dict`), the metric states and the random states (torch CPU,
CUDA, numpy, Python's `random` and the Trainer's shuffling `generator`). It is a plain dict of tensors,
numbers, strings, lists and dicts, so it loads with `torch.load(path, weights_only=True)` and nothing
needs registering; it is written as `io.atomic_save` writes (temporary file, fsync, `os.replace`), so a
crash while saving leaves the previous file in place. Beside the payload, the file holds a sha256 over
all of it (`"checksum"`: every tensor's dtype, shape and bytes, and every other value; see `checksum`).

Loading verifies the checksum, then the schema of every field, then that everything fits this trainer
(model keys and shapes, optimizer class and layout, random states, metric and callback states), and only
then swaps the new state in; should a step of that swap fail, what it had changed is put back. Any
failure raises `CheckpointError` naming the file (and the field), with the trainer (weights, optimizer,
generator and random states, metrics, History, pending callback states) as it was. The History and
callback states wait for the next `fit` whose
`initial_epoch` is the checkpoint's (callbacks reset themselves in `on_train_begin`; the states are
applied right after it).

Resuming is exact (bit-identical on CPU with deterministic algorithms) from a checkpoint written at the
end of an epoch, with `steps_per_epoch=None`. A checkpoint written mid-epoch (`ModelCheckpoint` with an
integer `save_freq`, or on Ctrl-C) resumes by running its epoch again from the saved weights. Under
`torch.distributed`, rank 0 writes; `ModelCheckpoint`'s end-of-epoch files hold every rank's random states
(gathered then), which a resume with as many ranks restores rank by rank; other saves hold rank 0's. The
per-batch values in `History.batches` are each rank's own, so after a resume the restored epochs' are rank 0's.

>>> import os, tempfile, torch
>>> from torch_keras_metrics import Trainer
>>> model = torch.nn.Linear(2, 1)
>>> trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "mse", device="cpu")
>>> _ = trainer.fit(torch.randn(8, 2), torch.randn(8, 1), epochs=2, verbose=0)
>>> path = os.path.join(tempfile.mkdtemp(), "run.pt")
>>> trainer.save_checkpoint(path)
>>> trainer.load_checkpoint(path)  # the `initial_epoch` to continue from
2
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import random
import struct
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .callbacks import BaseLogger, Callback, ProgbarLogger
from .distributed import is_main_process, unwrap_model
from .history import History
from .io import atomic_save, remove_stale_temporaries
from .version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "EpochEndSaver",
    "RunState",
    "checkpoint_state",
    "checksum",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
]

FORMAT = "torch_keras_metrics.trainer_checkpoint"
FORMAT_VERSION = 2  # 2: the file holds a checksum of its payload; version 1 files (none) still load
EXTENSIONS = (".pt", ".pth", ".ckpt", ".tar")  # what `latest_checkpoint` looks at in a folder
_SHOWN = 8  # keys listed in an error before "..."


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint (for this trainer); the message names the file."""


# ------------------------------------------------------------------ plain data


def _plain(obj: Any, where: str) -> Any:
    """`obj` as what `torch.load(weights_only=True)` accepts: numpy and 1-element values become Python ones."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()  # no copy: torch.save reads it at once
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, Mapping):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(
        f"Cannot checkpoint {where}: a value of type {type(obj).__name__} would not load with "
        "torch.load(weights_only=True). Keep callback states and logs to numbers, strings, tensors, lists and dicts."
    )


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in list(keys)[:_SHOWN])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _SHOWN else "")


# ------------------------------------------------------------------ the checksum

CHECKSUM_KEY = "checksum"


def _digest(obj: Any, h: Any) -> None:
    """Feed `obj` to `h` in one unambiguous byte form: a type tag, lengths, then the content."""
    if obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"T" if obj else b"F")
    elif isinstance(obj, int):
        text = str(obj).encode()
        h.update(b"I%d:" % len(text) + text)
    elif isinstance(obj, float):
        h.update(b"D" + struct.pack("<d", obj))  # the exact bits (NaN's and -0.0 included)
    elif isinstance(obj, str):
        text = obj.encode("utf-8", "surrogatepass")
        h.update(b"S%d:" % len(text) + text)
    elif isinstance(obj, bytes):
        h.update(b"B%d:" % len(obj) + obj)
    elif isinstance(obj, torch.Tensor):
        t = obj.detach()
        t = (t.to_dense() if t.layout != torch.strided else t).cpu().contiguous()
        header = f"{t.dtype}{tuple(t.shape)}".encode()
        raw = t.reshape(-1).view(torch.uint8).numpy()
        h.update(b"X%d:" % len(header) + header + b"%d:" % raw.nbytes)
        h.update(memoryview(raw))
    elif isinstance(obj, torch.Size):
        h.update(b"Z%d:" % len(obj))
        for v in obj:
            _digest(v, h)
    elif isinstance(obj, (torch.dtype, torch.device)):
        text = str(obj).encode()
        h.update(b"Y%d:" % len(text) + text)
    elif isinstance(obj, Mapping):
        h.update(b"M%d:" % len(obj))
        for k, v in obj.items():
            _digest(k, h)
            _digest(v, h)
    elif isinstance(obj, (list, tuple)):
        h.update((b"L" if isinstance(obj, list) else b"U") + b"%d:" % len(obj))
        for v in obj:
            _digest(v, h)
    else:
        raise TypeError(f"a value of type {type(obj).__name__} has no checksum")


def checksum(state: Mapping[str, Any]) -> str:
    """The `"checksum"` a checkpoint file holds: sha256 over every field but the checksum itself.

    Every tensor counts by dtype, shape and bytes (not by storage or strides), every other value by
    type and content, dicts in their order. After editing a file on purpose, store the new value.

    >>> checksum({"a": torch.zeros(2), "b": [1, "x"]}) == checksum({"a": torch.zeros(2), "b": [1, "x"]})
    True
    >>> checksum({"a": torch.zeros(2)}) == checksum({"a": torch.zeros(2, dtype=torch.float64)})
    False
    """
    h = hashlib.sha256()
    _digest({k: v for k, v in state.items() if k != CHECKSUM_KEY}, h)
    return "sha256:" + h.hexdigest()


# ------------------------------------------------------------------ the schema of every field


class _Invalid(Exception):
    """A field of a checkpoint that is not what this library writes: `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field}: {reason}")
        self.field = field


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar(v: Any) -> bool:
    """A value a log can hold: a number, a string, None, or a one-element tensor."""
    return v is None or isinstance(v, (bool, int, float, str)) or (isinstance(v, torch.Tensor) and v.numel() == 1)


def _need(ok: bool, field: str, reason: str) -> None:
    if not ok:
        raise _Invalid(field, reason)


def _int_field(v: Any, field: str, low: int = 0, optional: bool = False) -> None:
    if optional and v is None:
        return
    _need(_is_int(v) and v >= low, field, f"{_shown(v)} is not an integer >= {low}")


def _shown(v: Any) -> str:
    text = repr(v) if not isinstance(v, torch.Tensor) else f"a tensor of shape {tuple(v.shape)}"
    return text if len(text) <= 60 else text[:57] + "..."


def _tensor_dict(v: Any, field: str, extra_ok: bool = False) -> None:
    _need(isinstance(v, Mapping), field, f"is a {type(v).__name__}, not a dict of tensors")
    for k, t in v.items():
        if extra_ok and isinstance(k, str) and k.endswith("_extra_state"):
            continue  # a module's get_extra_state(): any plain value
        _need(isinstance(k, str), field, f"has a key {k!r} that is not a string")
        _need(isinstance(t, torch.Tensor), f"{field}[{k!r}]", f"is a {type(t).__name__}, not a tensor")


def _rng_schema(rng: Any, field: str) -> None:
    _need(isinstance(rng, Mapping), field, f"is a {type(rng).__name__}, not a dict")
    expected = {"torch", "cuda", "numpy", "python", "trainer"}
    unknown, missing = [k for k in rng if k not in expected], sorted(expected - set(rng))
    _need(not unknown, field, f"has unknown random states {_listing([str(k) for k in unknown])}")
    _need(not missing, field, f"lacks the random states {_listing(missing)}")

    def uint8(v: Any, where: str) -> None:
        ok = isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and v.dim() == 1
        _need(ok, where, "is not a 1-D uint8 tensor")

    uint8(rng["torch"], f"{field}['torch']")
    if rng["trainer"] is not None:
        uint8(rng["trainer"], f"{field}['trainer']")
    cuda = rng["cuda"]
    if cuda is not None:
        _need(isinstance(cuda, (list, tuple)), f"{field}['cuda']", "is not a list")
        for i, v in enumerate(cuda):
            uint8(v, f"{field}['cuda'][{i}]")
    state = rng["numpy"]
    if state is not None:
        where = f"{field}['numpy']"
        _need(isinstance(state, Mapping), where, "is not a dict")
        _need(
            set(state) == {"bit_generator", "key", "pos", "has_gauss", "gauss"}, where, f"has the keys {sorted(state)}"
        )
        _need(isinstance(state["bit_generator"], str), f"{where}['bit_generator']", "is not a string")
        key = state["key"]
        ok = isinstance(key, torch.Tensor) and key.dtype == torch.int64 and key.shape == (624,)
        _need(ok and bool(((key >= 0) & (key < 2**32)).all()), f"{where}['key']", "is not 624 32-bit words")
        _int_field(state["pos"], f"{where}['pos']")
        _need(state["has_gauss"] in (0, 1) and _is_int(state["has_gauss"]), f"{where}['has_gauss']", "is not 0 or 1")
        _need(isinstance(state["gauss"], float), f"{where}['gauss']", "is not a float")
    python = rng["python"]
    if python is not None:
        where = f"{field}['python']"
        ok = isinstance(python, tuple) and len(python) == 3 and _is_int(python[0])
        _need(ok and isinstance(python[1], tuple), where, "is not (version, internal state, gauss)")
        _need(all(_is_int(v) and 0 <= v < 2**32 for v in python[1]), f"{where}[1]", "is not a tuple of 32-bit words")
        _need(python[2] is None or isinstance(python[2], float), f"{where}[2]", "is neither None nor a float")


def _history_schema(history: Any, field: str) -> None:
    if history is None:
        return
    _need(isinstance(history, Mapping), field, f"is a {type(history).__name__}, not a dict")
    allowed = {"history", "epoch", "batches", "keras2"}
    _need(set(history) - allowed == set(), field, f"has unknown keys {sorted(map(str, set(history) - allowed))}")
    for key in ("history", "epoch", "batches"):
        _need(key in history, field, f"lacks {key!r}")
    epochs = history["epoch"]
    _need(isinstance(epochs, list), f"{field}['epoch']", "is not a list")
    for i, e in enumerate(epochs):
        _int_field(e, f"{field}['epoch'][{i}]")
    logs = history["history"]
    _need(isinstance(logs, Mapping), f"{field}['history']", "is not a dict")
    for k, values in logs.items():
        where = f"{field}['history'][{k!r}]"
        _need(isinstance(k, str), where, "is not keyed by a string")
        _need(isinstance(values, list), where, f"is a {type(values).__name__}, not a list")
        _need(len(values) <= len(epochs), where, f"has {len(values)} values for {len(epochs)} epochs")
        _need(all(_scalar(v) for v in values), where, "holds a value that is not a number or a string")
    batches = history["batches"]
    _need(isinstance(batches, list) and len(batches) == len(epochs), f"{field}['batches']", "is not a list per epoch")
    for i, record in enumerate(batches):
        where = f"{field}['batches'][{i}]"
        _need(isinstance(record, Mapping), where, "is not a dict")
        for k, values in record.items():
            ok = isinstance(k, str) and isinstance(values, list) and all(_scalar(v) for v in values)
            _need(ok, f"{where}[{k!r}]", "is not a list of numbers")
    keras2 = history.get("keras2", [])
    _need(isinstance(keras2, list) and len(keras2) in (0, len(epochs)), f"{field}['keras2']", "is not a list per epoch")
    for i, means in enumerate(keras2):
        ok = isinstance(means, Mapping) and all(isinstance(k, str) and _scalar(v) for k, v in means.items())
        _need(ok, f"{field}['keras2'][{i}]", "is not a dict of numbers")


def _opt_number(v: Any, field: str) -> None:
    ok = v is None or _is_number(v) or (isinstance(v, torch.Tensor) and v.numel() == 1)
    _need(ok, field, f"{_shown(v)} is neither None nor a number")


def _opt_int(v: Any, field: str) -> None:
    _need(v is None or _is_int(v), field, f"{_shown(v)} is neither None nor an integer")


def _count(v: Any, field: str) -> None:
    _int_field(v, field)


def _opt_weights(v: Any, field: str) -> None:
    if v is not None:
        _tensor_dict(v, field, extra_ok=True)


# The states of this library's callbacks (their `state_dict()`), checked before anything loads.
_CALLBACK_FIELDS: dict[str, dict[str, Any]] = {
    "EarlyStopping": {
        "wait": _count,
        "stopped_epoch": _count,
        "best": _opt_number,
        "best_epoch": _count,
        "best_weights": _opt_weights,
    },
    "ReduceLROnPlateau": {"best": _opt_number, "wait": _count, "cooldown_counter": _count},
    "ModelCheckpoint": {"best": _opt_number, "batches_seen_since_last_saving": _count, "last_batch_seen": _opt_int},
    "TensorBoard": {"global_train_batch": _count, "iterations": _count},
}


def _callbacks_schema(callbacks: Any, field: str) -> None:
    _need(isinstance(callbacks, Mapping), field, f"is a {type(callbacks).__name__}, not a dict")
    for name, states in callbacks.items():
        where = f"{field}[{name!r}]"
        _need(isinstance(name, str), where, "is not keyed by a class name")
        _need(isinstance(states, list), where, "is not a list of states")
        schema = _CALLBACK_FIELDS.get(name)
        for i, state in enumerate(states if schema is not None else ()):
            at = f"{where}[{i}]"
            _need(isinstance(state, Mapping), at, "is not a dict")
            missing = [k for k in schema if k not in state]
            unknown = [str(k) for k in state if k not in schema]
            _need(not missing, at, f"lacks {_listing(missing)}")
            _need(not unknown, at, f"has unknown keys {_listing(unknown)}")
            for key, check in schema.items():
                check(state[key], f"{at}[{key!r}]")


def _optimizer_schema(saved: Any, field: str) -> None:
    _need(isinstance(saved, Mapping), field, f"is a {type(saved).__name__}, not a dict")
    _need(set(saved) == {"state", "param_groups"}, field, f"has the keys {sorted(map(str, saved))}")
    _need(isinstance(saved["state"], Mapping), f"{field}['state']", "is not a dict")
    for k, v in saved["state"].items():
        _need(isinstance(v, Mapping), f"{field}['state'][{k!r}]", "is not a dict")
    groups = saved["param_groups"]
    _need(isinstance(groups, list), f"{field}['param_groups']", "is not a list")
    for i, group in enumerate(groups):
        where = f"{field}['param_groups'][{i}]"
        _need(isinstance(group, Mapping) and "params" in group, where, "is not a dict with 'params'")
        ok = isinstance(group["params"], list) and all(_is_int(p) for p in group["params"])
        _need(ok, f"{where}['params']", "is not a list of parameter indices")


def _metrics_schema(metrics: Any, field: str) -> None:
    if metrics is None:
        return
    _need(isinstance(metrics, list), field, f"is a {type(metrics).__name__}, not a list")
    for i, entry in enumerate(metrics):
        where = f"{field}[{i}]"
        _need(isinstance(entry, Mapping) and set(entry) == {"name", "state"}, where, "is not {'name', 'state'}")
        _need(isinstance(entry["name"], str), f"{where}['name']", "is not a string")
        _tensor_dict(entry["state"], f"{where}['state']")


def _optional(check: Any) -> Any:
    def run(v: Any, field: str) -> None:
        if v is not None:
            check(v, field)

    return run


def _is_type(kind: Any, what: str) -> Any:
    def run(v: Any, field: str) -> None:
        _need(
            isinstance(v, kind) and not (kind is not bool and isinstance(v, bool)), field, f"{_shown(v)} is not {what}"
        )

    return run


def _rng_per_rank_schema(v: Any, field: str) -> None:
    _need(isinstance(v, list) and len(v) > 0, field, "is not a list of random states")
    for i, rng in enumerate(v):
        _rng_schema(rng, f"{field}[{i}]")


_FIELDS: dict[str, Any] = {
    "format": _is_type(str, "a string"),
    "format_version": lambda v, f: _int_field(v, f, low=1),
    "library_version": _is_type(str, "a string"),
    "torch_version": _is_type(str, "a string"),
    "epoch": _count,
    "batch": lambda v, f: _int_field(v, f, low=1, optional=True),
    "complete": _is_type(bool, "True or False"),
    "initial_epoch": _count,
    "model_state_dict": lambda v, f: _tensor_dict(v, f, extra_ok=True),
    "optimizer_state_dict": _optional(_optimizer_schema),
    "optimizer_class": _optional(_is_type(str, "a string")),
    "scaler_state_dict": _optional(_is_type(Mapping, "a dict")),
    "scheduler_state_dict": _optional(_is_type(Mapping, "a dict")),
    "history": _history_schema,
    "callbacks": _callbacks_schema,
    "metrics": _metrics_schema,
    "rng": _rng_schema,
    "rng_per_rank": _optional(_rng_per_rank_schema),
}


def _check_schema(state: Mapping[str, Any]) -> None:
    """Raise `_Invalid` for the first field of `state` that is not what `checkpoint_state` writes."""
    fields = dict(_FIELDS)
    if state["format_version"] >= 2:
        fields[CHECKSUM_KEY] = _is_type(str, "a string")
    missing = [k for k in fields if k not in state]
    unknown = [str(k) for k in state if k not in fields]
    if missing:
        raise _Invalid(repr(missing[0]), f"is missing (the file lacks {_listing(missing)})")
    if unknown:
        raise _Invalid(repr(unknown[0]), f"is not one this library writes ({_listing(unknown)})")
    for key, check in fields.items():
        check(state[key], repr(key))
    if state["epoch"] < state["initial_epoch"]:
        raise _Invalid("'initial_epoch'", f"{state['initial_epoch']} is after the saved epoch {state['epoch']}")


# ------------------------------------------------------------------ random states


def _rng_state(trainer: Any) -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    generator = getattr(trainer, "generator", None)
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda else None,
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": random.getstate(),
        "trainer": generator.get_state() if isinstance(generator, torch.Generator) else None,
    }


def _check_rng(rng: Any, fail: Any) -> None:
    if not isinstance(rng, Mapping):
        fail("its random states are not a dict")
    for key in ("torch", "trainer"):
        value = rng.get(key)
        if value is not None and not (isinstance(value, torch.Tensor) and value.dtype == torch.uint8):
            fail(f"its {key!r} random state is not a uint8 tensor")
    state = rng.get("numpy")
    if state is not None and not (isinstance(state, Mapping) and isinstance(state.get("key"), torch.Tensor)):
        fail("its numpy random state is malformed")
    python = rng.get("python")
    if python is not None and not (isinstance(python, tuple) and len(python) == 3):
        fail("its Python random state is malformed")
    try:  # set every state on a throwaway generator: a state that would not load fails here, not halfway
        for key in ("torch", "trainer"):
            if rng.get(key) is not None:
                torch.Generator().set_state(rng[key])
        if state is not None:
            np.random.RandomState().set_state(_numpy_state(state))
        if python is not None:
            random.Random().setstate(_python_state(python))
    except Exception as err:  # OverflowError too: a word too large for the generator
        fail(f"its random states do not load ({type(err).__name__}: {err})")


def _numpy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "bit_generator": state["bit_generator"],
        "state": {"key": state["key"].numpy().astype(np.uint32), "pos": state["pos"]},
        "has_gauss": state["has_gauss"],
        "gauss": state["gauss"],
    }


def _python_state(python: tuple) -> tuple:
    version, internal, gauss = python
    return version, tuple(internal), gauss


def _set_rng(trainer: Any, rng: Mapping[str, Any]) -> None:
    if rng.get("torch") is not None:
        torch.set_rng_state(rng["torch"])
    cuda = rng.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            warnings.warn(
                f"The checkpoint holds {len(cuda)} CUDA random states for {torch.cuda.device_count()} devices here: "
                "the CUDA random states are not restored.",
                stacklevel=3,
            )
    if rng.get("numpy") is not None:
        np.random.set_state(_numpy_state(rng["numpy"]))
    if rng.get("python") is not None:
        random.setstate(_python_state(rng["python"]))
    generator = getattr(trainer, "generator", None)
    if rng.get("trainer") is not None and isinstance(generator, torch.Generator):
        generator.set_state(rng["trainer"])


# ------------------------------------------------------------------ what goes in


def _is_run_bookkeeping(cb: Any) -> bool:
    return isinstance(cb, (History, BaseLogger, ProgbarLogger, RunState))


def _callback_states(callbacks: Sequence[Any]) -> dict[str, list[Any]]:
    """`{class name: [state of each instance, in order]}` for the callbacks that have a `state_dict`."""
    states: dict[str, list[Any]] = {}
    for cb in callbacks:
        if _is_run_bookkeeping(cb) or not callable(getattr(cb, "state_dict", None)):
            continue
        name = type(cb).__name__
        states.setdefault(name, []).append(_plain(cb.state_dict(), f"the state of callback {name}"))
    return states


def _scheduler(trainer: Any) -> Any:
    return getattr(trainer, "lr_scheduler", None) or getattr(trainer, "scheduler", None)


def _drop_last_epoch(history: dict[str, Any], logs: Mapping[str, Any]) -> dict[str, Any]:
    """A History state without its last epoch, whose logs were `logs` (an interrupted epoch)."""
    history = copy.deepcopy(history)
    if history["epoch"]:
        if len(history["batches"]) == len(history["epoch"]):  # none with History(batches=False)
            history["batches"].pop()
        history["epoch"].pop()
        if history.get("keras2"):
            history["keras2"].pop()
        for key in list(history["history"]):
            values = history["history"][key]
            # the epoch's own keys, and those History padded with NaN for it (the validation it lacked)
            if values and (key in logs or values[-1] != values[-1]):
                values.pop()
            if not values:
                del history["history"][key]
    return history


def checkpoint_state(
    trainer: Any,
    epoch: int | None = None,
    batch: int | None = None,
    complete: bool = True,
    logs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint of `trainer` as a plain dict (what `save_checkpoint` writes).

    `epoch` is the 0-based epoch being saved (default: the last one `fit` finished), `batch` the 0-based
    batch for a mid-epoch save; `complete=False` marks an interrupted epoch (whose `logs` are dropped from
    the History). `initial_epoch` in the result is the epoch to continue from.

    >>> model = torch.nn.Linear(2, 1)
    >>> from torch_keras_metrics import Trainer
    >>> state = checkpoint_state(Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "mse", device="cpu"))
    >>> state["format_version"], state["initial_epoch"], sorted(state["model_state_dict"])
    (2, 0, ['bias', 'weight'])
    >>> state["checksum"] == checksum(state)
    True
    """
    # Public attributes only, read with defaults: a callback's host may be a stand-in with a model and an optimizer.
    run = getattr(trainer, "run_state", None) or RunState()
    if epoch is None:
        epoch, batch, complete = run.epochs_done - 1, None, True
    finished = complete and batch is None
    model = unwrap_model(getattr(trainer, "model", None))
    optimizer = getattr(trainer, "optimizer", None)
    scaler = getattr(trainer, "grad_scaler", None)
    scheduler = _scheduler(trainer)
    history = run.history or getattr(trainer, "history", None)
    callbacks = run.callbacks
    pending = run.pending or {}  # loaded, not yet applied by a fit: kept as they are
    history_state = _plain(history.state_dict(), "the History") if isinstance(history, History) else None
    if history_state is not None and not complete:
        history_state = _drop_last_epoch(history_state, logs or {})
    metrics = None
    if getattr(trainer, "built", False):
        names = list(trainer.metrics_names)[1:]
        metrics = [
            {"name": name, "state": {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}}
            for name, m in zip(names, trainer.metrics)
        ]
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "torch_version": str(torch.__version__),  # TorchVersion would need registering
        "epoch": epoch + 1,  # 1-based, as ModelCheckpoint's file names count
        "batch": None if batch is None else batch + 1,
        "complete": bool(complete),
        "initial_epoch": epoch + 1 if finished else max(epoch, 0),
        "model_state_dict": model.state_dict() if model is not None else None,
        "optimizer_state_dict": optimizer.state_dict() if optimizer is not None else None,
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "scaler_state_dict": scaler.state_dict() if scaler is not None else None,
        "scheduler_state_dict": _plain(scheduler.state_dict(), "the LR scheduler") if scheduler else None,
        "history": history_state,
        "callbacks": _callback_states(callbacks) if callbacks is not None else pending.get("callbacks", {}),
        "metrics": metrics,
        "rng": _rng_state(trainer),
        # distributed, at an epoch end: every rank's random states, indexed by rank (see on_epoch_end)
        "rng_per_rank": run.rank_rng,
    }
    state[CHECKSUM_KEY] = checksum(state)
    return state


def save_checkpoint(trainer: Any, path: str | os.PathLike, **where: Any) -> None:
    """Write `checkpoint_state(trainer, **where)` to `path` atomically (only rank 0 writes when distributed).

    >>> save_checkpoint(trainer, "run/last.pt")  # doctest: +SKIP
    """
    if not is_main_process():
        return
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    atomic_save(checkpoint_state(trainer, **where), path)


# ------------------------------------------------------------------ reading and checking


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint in `path`, loaded with `torch.load(weights_only=True)` on the CPU, its checksum verified and
    the schema of every field checked.

    Raises `CheckpointError` (naming the file, and the field when one is wrong) for a truncated, corrupted,
    edited or foreign file, whatever the reader raised on it.

    >>> read_checkpoint("run/last.pt")["initial_epoch"]  # doctest: +SKIP
    3
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path!r} is not a torch_keras_metrics checkpoint: torch.load(weights_only=True) refused it "
            f"(corrupted, or holding arbitrary Python objects): {_reason(err)}"
        ) from err
    except Exception as err:  # whatever a damaged file makes the reader raise (OverflowError, EOFError, ...)
        raise CheckpointError(
            f"{path!r} cannot be read as a checkpoint: the file is truncated, corrupted or not a torch file "
            f"({type(err).__name__}: {_reason(err)})."
        ) from err
    if not isinstance(state, Mapping) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a torch_keras_metrics checkpoint: {_describe(state)}")
    version = state.get("format_version")
    if not _is_int(version) or version < 1:
        raise CheckpointError(
            f"{path!r} is not a valid checkpoint: field 'format_version': {_shown(version)} is not an integer "
            f"from 1 to {FORMAT_VERSION}."
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path!r} has checkpoint format version {version!r}, newer than this torch_keras_metrics reads "
            f"({FORMAT_VERSION}); it was written by torch_keras_metrics {state.get('library_version')!r}."
        )
    try:
        if version >= 2:  # version 1 files predate the checksum: only their schema is checked
            saved = state.get(CHECKSUM_KEY)
            if saved != checksum(state):
                raise CheckpointError(
                    f"{path!r} fails its checksum: its content is not what was written (the file is corrupted "
                    f"or was edited), so nothing of it is used. Stored {_shown(saved)}."
                )
        _check_schema(state)
    except _Invalid as err:
        raise CheckpointError(f"{path!r} is not a valid checkpoint: {err}.") from err
    except CheckpointError:
        raise
    except Exception as err:  # a value no check foresaw (the checksum walks every value)
        raise CheckpointError(f"{path!r} is not a valid checkpoint: {type(err).__name__}: {err}.") from err
    return dict(state)


def _reason(err: BaseException) -> str:
    """The informative line of torch.load's error (its weights-only errors start with generic advice)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip()
    return lines[0] if lines else type(err).__name__


def _describe(state: Any) -> str:
    if isinstance(state, Mapping):
        if state and all(isinstance(v, torch.Tensor) for v in state.values()):
            return (
                f"it is a plain state_dict of {len(state)} tensors ({_listing(list(state))}). Load it with "
                "`model.load_state_dict(torch.load(path, weights_only=True))`."
            )
        if "model_state_dict" in state:
            return (
                f"it has a 'model_state_dict' but no {FORMAT!r} format marker (keys: {_listing(list(state))}); "
                "load its parts yourself with `model.load_state_dict` and `optimizer.load_state_dict`."
            )
        return f"it is a dict with keys {_listing([str(k) for k in state])} and no {FORMAT!r} format marker."
    return f"it holds a {type(state).__name__}, not a dict."


def _check_model(model: torch.nn.Module, saved: Any, fail: Any) -> None:
    if not isinstance(saved, Mapping):
        fail("it holds no model state_dict")
    own = model.state_dict()
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    shapes = [
        f"{k}: {tuple(saved[k].shape)} in the file, {tuple(v.shape)} in the model"
        for k, v in own.items()
        if k in saved
        and isinstance(v, torch.Tensor)
        and isinstance(saved[k], torch.Tensor)
        and saved[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the file: {_listing(missing)}")
        if unexpected:
            parts.append(f"not in the model: {_listing(unexpected)}")
        if shapes:
            parts.append("shape mismatch: " + "; ".join(shapes[:_SHOWN]) + (" ..." if len(shapes) > _SHOWN else ""))
        fail(f"its weights are for a different model architecture ({'; '.join(parts)})")
    complex_ = [
        k
        for k, v in own.items()
        if isinstance(v, torch.Tensor)
        and isinstance(saved.get(k), torch.Tensor)
        and saved[k].is_complex() != v.is_complex()
    ]
    if complex_:
        fail(f"its weights {_listing(complex_)} are complex where the model's are real, or the other way round")


def _check_optimizer(optimizer: torch.optim.Optimizer, saved: Any, kind: Any, fail: Any) -> None:
    if not (isinstance(saved, Mapping) and "param_groups" in saved and "state" in saved):
        fail("its optimizer state is malformed")
    if kind is not None and kind != type(optimizer).__name__:
        # torch would load another optimizer's state silently, and fail (or worse, not) at the first step
        fail(f"its optimizer is {kind}, this trainer's is {type(optimizer).__name__}")
    groups = optimizer.param_groups
    if len(saved["param_groups"]) != len(groups):
        fail(f"its optimizer has {len(saved['param_groups'])} param groups, this one {len(groups)}")
    params = []
    for i, (mine, theirs) in enumerate(zip(groups, saved["param_groups"])):
        theirs_n, mine_n = len(theirs.get("params", ())), len(mine["params"])
        if theirs_n != mine_n:
            fail(f"its optimizer's param group {i} has {theirs_n} parameters, this one {mine_n}")
        params.extend(zip(theirs["params"], mine["params"]))
    for saved_id, param in params:
        for name, value in (saved["state"].get(saved_id) or {}).items():
            # per-parameter buffers (momentum, Adam's moments) have the parameter's shape
            if isinstance(value, torch.Tensor) and value.dim() == param.dim() > 0 and value.shape != param.shape:
                fail(
                    f"its optimizer state {name!r} has shape {tuple(value.shape)} for a parameter of shape "
                    f"{tuple(param.shape)}"
                )


def load_checkpoint(trainer: Any, path: str | os.PathLike, _state: dict[str, Any] | None = None) -> int:
    """Restore `trainer` from `path` and return the `initial_epoch` to continue from; see the module docstring.

    All or nothing: the file is verified and every part of the new state is checked (and, where a check
    cannot tell, loaded into a throwaway copy) before the trainer changes; on any error (`CheckpointError`,
    naming the file and the field) the trainer is as it was.

    >>> trainer.fit(x, y, epochs=10, initial_epoch=load_checkpoint(trainer, "run/last.pt"))  # doctest: +SKIP
    """
    path = os.fspath(path)
    state = _state if _state is not None else read_checkpoint(path)

    def fail(reason: str) -> None:
        raise CheckpointError(f"Cannot load {path!r}: {reason}. The trainer was not changed.")

    try:
        plan = _prepare(trainer, state, fail)
    except CheckpointError:
        raise
    except Exception as err:  # a check that met a value nothing foresaw
        fail(f"checking it against this trainer raised {type(err).__name__}: {err}")
    _apply(trainer, plan, path)
    return plan["initial_epoch"]


def _prepare(trainer: Any, state: Mapping[str, Any], fail: Any) -> dict[str, Any]:
    """Everything `_apply` swaps in, checked against `trainer` (built on throwaway copies where needed)."""
    model = unwrap_model(trainer.model)
    _check_model(model, state["model_state_dict"], fail)
    plan: dict[str, Any] = {
        "model": model,
        "weights": state["model_state_dict"],
        "initial_epoch": state["initial_epoch"],
    }

    optimizer = getattr(trainer, "optimizer", None)
    if optimizer is not None and state["optimizer_state_dict"] is not None:
        _check_optimizer(optimizer, state["optimizer_state_dict"], state["optimizer_class"], fail)
        probe = object.__new__(type(optimizer))  # a shallow copy: loading replaces its state, not the optimizer's
        probe.__dict__.update(optimizer.__dict__)
        try:
            probe.load_state_dict(state["optimizer_state_dict"])
        except Exception as err:
            fail(f"field 'optimizer_state_dict' does not load into the optimizer ({type(err).__name__}: {err})")
        plan["optimizer"] = (optimizer, {"state": probe.state, "param_groups": probe.param_groups})

    scaler, saved = getattr(trainer, "grad_scaler", None), state["scaler_state_dict"]
    if scaler is not None and saved:
        own = scaler.state_dict()
        if set(saved) != set(own) or not all(_is_number(v) for v in saved.values()):
            fail(f"field 'scaler_state_dict' is not a gradient scaler's state (keys {_listing(list(map(str, saved)))})")
        try:
            copy.deepcopy(scaler).load_state_dict(saved)
        except Exception as err:
            fail(f"field 'scaler_state_dict' does not load ({type(err).__name__}: {err})")
        plan["scaler"] = (scaler, saved)

    scheduler, saved = _scheduler(trainer), state["scheduler_state_dict"]
    if scheduler is not None and saved is not None:
        own = scheduler.state_dict()
        if set(saved) != set(own):
            fail(
                f"field 'scheduler_state_dict' has the keys {_listing(sorted(map(str, saved)))}; this trainer's "
                f"{type(scheduler).__name__} has {_listing(sorted(map(str, own)))}"
            )
        wrong = [k for k, v in own.items() if _is_number(v) and not _is_number(saved[k])]
        if wrong:
            fail(f"field 'scheduler_state_dict'[{wrong[0]!r}] is {_shown(saved[wrong[0]])}, not a number")
        plan["scheduler"] = (scheduler, saved)

    rng, per_rank = state["rng"], state["rng_per_rank"]
    if per_rank is not None and len(per_rank) == getattr(trainer, "world_size", 1):
        rng = per_rank[getattr(trainer, "rank", 0)]
    _check_rng(rng, fail)
    plan["rng"] = rng

    plan["metrics"] = _matching_metrics(trainer, state["metrics"])
    for i, entry in enumerate(state["callbacks"].get("EarlyStopping", [])):
        if entry["best_weights"] is not None:
            _check_model(model, entry["best_weights"], lambda r, i=i: fail(f"EarlyStopping {i}'s best weights: {r}"))
    if state["history"] is not None:
        history = History()
        history.load_state_dict(state["history"])
        plan["history"] = history
    plan["pending"] = {
        "path": None,
        "initial_epoch": state["initial_epoch"],
        "history": state["history"],
        "callbacks": dict(state["callbacks"]),
    }
    return plan


def _copy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else copy.deepcopy(v)
        for k, v in state.items()
    }


def _apply(trainer: Any, plan: dict[str, Any], path: str) -> None:
    """Swap `plan` into `trainer`; should a step fail, undo every step before it and raise `CheckpointError`."""
    undo: list[Any] = []
    step = "the model's weights"
    try:
        model = plan["model"]
        before_model = _copy_state(model.state_dict())  # kept only until the load has succeeded
        undo.append(lambda: model.load_state_dict(before_model))
        model.load_state_dict(plan["weights"])
        if "optimizer" in plan:
            step = "the optimizer state"
            optimizer, new = plan["optimizer"]
            old = {"state": optimizer.state, "param_groups": optimizer.param_groups}
            undo.append(lambda: optimizer.__dict__.update(old))
            optimizer.__dict__.update(new)
        if "scaler" in plan:
            step = "the gradient scaler's state"
            scaler, saved = plan["scaler"]
            before_scaler = copy.deepcopy(scaler.state_dict())
            undo.append(lambda: scaler.load_state_dict(before_scaler))
            scaler.load_state_dict(saved)
        if "scheduler" in plan:
            step = "the LR scheduler's state"
            scheduler, saved = plan["scheduler"]
            before_scheduler = copy.deepcopy(scheduler.state_dict())
            undo.append(lambda: scheduler.load_state_dict(before_scheduler))
            scheduler.load_state_dict(copy.deepcopy(saved))
        step = "the metric states"
        for metric, saved in plan["metrics"]:
            before_metric = {k: v.clone() for k, v in metric.state_dict().items()}
            undo.append(lambda metric=metric, before=before_metric: metric.load_state_dict(before, strict=False))
            metric.load_state_dict(saved, strict=False)
        step = "the random states"
        before_rng = _rng_state(trainer)
        undo.append(lambda: _set_rng(trainer, before_rng))
        _set_rng(trainer, plan["rng"])
        step = "the run's History and callback states"
        run = trainer.run_state
        before_run = (run.history, run.callbacks, run.epochs_done, run.pending)
        undo.append(lambda: _set_run(run, *before_run))
        history = plan.get("history")
        if history is not None:
            history.set_model(trainer)
        _set_run(run, history if history is not None else run.history, None, plan["initial_epoch"],
                 {**plan["pending"], "path": path})  # fmt: skip
    except BaseException as err:
        stuck = []
        for f in reversed(undo):
            try:
                f()
            except Exception as undo_err:  # keep putting the other parts back
                stuck.append(f"{type(undo_err).__name__}: {undo_err}")
        if not isinstance(err, Exception):
            raise
        outcome = (
            "what had changed was put back. The trainer was not changed."
            if not stuck
            else f"putting the trainer back failed too ({'; '.join(stuck)}): it is partly loaded."
        )
        raise CheckpointError(
            f"Cannot load {path!r}: {step} did not load ({type(err).__name__}: {err}); {outcome}"
        ) from err


def _set_run(run: Any, history: Any, callbacks: Any, epochs_done: int, pending: Any) -> None:
    run.history, run.callbacks, run.epochs_done, run.pending = history, callbacks, epochs_done, pending


def _matching_metrics(trainer: Any, saved: Any) -> list[tuple[Any, dict[str, torch.Tensor]]]:
    """(metric, state) pairs when the saved metrics are the trainer's (by log name); else none.

    A fresh trainer builds its metrics on the first batch and every epoch starts from reset states,
    so skipping them changes no result.
    """
    if not saved or not trainer.built:
        return []
    names = list(trainer.metrics_names)[1:]
    if [s.get("name") for s in saved] != names:
        return []
    pairs = []
    for metric, entry in zip(trainer.metrics, saved):
        own = metric.state_dict()
        theirs = entry.get("state") or {}
        if set(own) != set(theirs) or any(own[k].shape != theirs[k].shape for k in own):
            return []
        pairs.append((metric, dict(theirs)))
    return pairs


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load into `model` the weights of any file this library writes, for inference or fine-tuning.

    A full checkpoint (`ModelCheckpoint`'s default, `trainer.save_checkpoint`, `interrupted.pt`) holds them
    under `"model_state_dict"`; `ModelCheckpoint(save_weights_only=True)` writes the model's `state_dict()`
    itself. Either way they are the unwrapped module's (no `module.` prefix from DDP or `_orig_mod.` from
    `torch.compile`). Everything is checked before the model changes; a file that does not fit raises
    `CheckpointError` naming the file and the keys. Returns `model`.

    >>> import tempfile
    >>> net = torch.nn.Linear(2, 1)
    >>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
    >>> torch.save(net.state_dict(), path)
    >>> load_weights(torch.nn.Linear(2, 1), path).weight.equal(net.weight)
    True
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No weights file at {path!r}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path!r} cannot be read as weights ({type(err).__name__}: {_reason(err)}).") from err
    if isinstance(state, Mapping) and state.get("format") == FORMAT:
        state = state.get("model_state_dict")

    def fail(reason: str) -> None:
        raise CheckpointError(f"Cannot load {path!r} into the model: {reason}. The model was not changed.")

    target = unwrap_model(model)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        fail(f"it holds no weights ({_describe(state)})")
    _check_model(target, state, fail)
    target.load_state_dict(state)
    return model


def latest_checkpoint(path: str | os.PathLike) -> str | None:
    """The newest checkpoint in folder `path` that reads and verifies (`path` itself if it is a file); None if
    there is none.

    Files ending in `.pt`, `.pth`, `.ckpt` or `.tar` (not hidden ones: temporary files start with a dot)
    are tried newest first (modification time); a file that does not read as a checkpoint is skipped with
    a warning. Raises `CheckpointError` when there are candidates and none reads.

    >>> latest_checkpoint("run/")  # doctest: +SKIP
    'run/ckpt-03.pt'
    """
    for candidate, _ in _candidates(path):
        return candidate
    return None


def _candidates(path: str | os.PathLike, why: dict[str, str] | None = None) -> Any:
    """`(path, checkpoint)` for each file of `path` that reads and verifies, newest first; skipped files warn.

    Raises `CheckpointError` at the end when there were candidates and none was taken (`why` adds the
    reasons the caller had for not taking the ones that read).
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        yield path, read_checkpoint(path)
        return
    if not os.path.isdir(path):
        return
    remove_stale_temporaries(path)
    candidates = []
    for entry in os.scandir(path):
        if entry.is_file() and not entry.name.startswith(".") and entry.name.endswith(EXTENSIONS):
            candidates.append((entry.stat().st_mtime_ns, entry.name, entry.path))
    candidates.sort(reverse=True)
    why = {} if why is None else why
    for _, _, candidate in candidates:
        try:
            state = read_checkpoint(candidate)
        except CheckpointError as err:
            warnings.warn(f"Skipping a checkpoint that does not load: {err}", stacklevel=4)
            why[candidate] = "does not read"
            continue
        yield candidate, state
    if candidates:
        tried = [f"{os.path.basename(c)} ({why.get(c, 'not tried')})" for _, _, c in candidates]
        raise CheckpointError(f"No checkpoint in {path!r} loads; tried (newest first): {_listing(tried)}.")


# ------------------------------------------------------------------ the hooks `Trainer.fit` calls


def resume(trainer: Any, resume_from: str | os.PathLike) -> int | None:
    """`fit(resume_from=...)`: load the newest good checkpoint there; its `initial_epoch`, or None if none.

    In a folder, a file that does not read, or reads but does not fit this trainer (another architecture,
    a field that does not load), is skipped with a warning naming it and why, and the next newest is
    tried. A missing path or a folder without checkpoints starts the run from scratch (a missing path that
    names a checkpoint file warns first); a folder where no checkpoint loads raises `CheckpointError`.
    """
    resume_from = os.fspath(resume_from)
    folder = os.path.isdir(resume_from)
    why: dict[str, str] = {}
    for candidate, state in _candidates(resume_from, why):
        if not folder:
            return load_checkpoint(trainer, candidate, state)
        try:
            return load_checkpoint(trainer, candidate, state)
        except CheckpointError as err:  # the trainer is as it was: the next one may fit
            warnings.warn(f"Skipping a checkpoint that does not fit this trainer: {err}", stacklevel=3)
            why[candidate] = "does not fit"
    if not os.path.exists(resume_from) and resume_from.endswith(EXTENSIONS):
        warnings.warn(f"No checkpoint at {resume_from!r}: training starts from scratch.", stacklevel=3)
    return None


def _load_callback_states(pairs: list[tuple[Any, str, Any]], path: str) -> None:
    """Load each `(callback, label, state)`; should one refuse, put the others back and raise `CheckpointError`."""
    before = []
    for cb, label, state in pairs:
        own = cb.state_dict() if callable(getattr(cb, "state_dict", None)) else None
        if isinstance(own, Mapping) and isinstance(state, Mapping) and set(own) != set(state):
            raise CheckpointError(
                f"Cannot restore callback {label} from {path!r}: its saved state has the keys "
                f"{_listing(sorted(map(str, state)))}, the callback's {_listing(sorted(map(str, own)))}. "
                "No callback state was changed."
            )
        before.append(copy.deepcopy(own))
    done = []
    for (cb, label, state), own in zip(pairs, before):
        try:
            done.append((cb, own))
            cb.load_state_dict(copy.deepcopy(state))
        except Exception as err:
            for other, previous in reversed(done):
                if previous is not None:
                    other.load_state_dict(previous)
            raise CheckpointError(
                f"Cannot restore callback {label} from {path!r}: its load_state_dict raised "
                f"{type(err).__name__}: {err}. No callback state was changed."
            ) from err


@runtime_checkable
class EpochEndSaver(Protocol):
    """A callback whose end-of-epoch save waits, inside `Trainer.fit`, until every callback has seen the epoch end.

    `ModelCheckpoint` is one: its file then holds the whole epoch's state (EarlyStopping's wait, the
    learning rate a scheduler set), whatever the order of the callbacks.
    """

    def defer_epoch_end_saves(self) -> None:
        """From now until `on_train_end`, `on_epoch_end` leaves the save to `save_at_epoch_end`."""

    def save_at_epoch_end(self, epoch: int, logs: Mapping, interrupted: bool, skip: set[str]) -> str | None:
        """Save what `on_epoch_end` held back; on an interrupted epoch save the trainer instead, unless to a
        path in `skip`. Returns the path of an interrupted save, or None."""


class RunState(Callback):
    """What a checkpoint knows of a run beyond the trainer's public attributes; the last callback of every fit.

    It counts the finished epochs (`epochs_done`), keeps the fit's `History` and `callbacks`, holds what
    a loaded checkpoint restores when the next fit starts (`pending`), and runs the `EpochEndSaver`s'
    saves after every other callback's `on_epoch_end`. `Trainer` makes one (`trainer.run_state`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.epochs_done = 0
        self.history: History | None = None
        self.callbacks: list[Any] | None = None
        self.pending: dict[str, Any] | None = None
        self.rank_rng: list[Any] | None = None  # distributed, at an epoch end: every rank's random states
        self._initial_epoch = 0

    def start(self, callbacks: Sequence[Any], history: History, initial_epoch: int) -> None:
        """Called by `fit` before `on_train_begin`: this run's callbacks, History and first epoch."""
        self.callbacks, self.history, self._initial_epoch = list(callbacks), history, initial_epoch

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        """After every other callback's `on_train_begin`: restore the History and callback states a checkpoint left."""
        callbacks, initial_epoch = self.callbacks or [], self._initial_epoch
        for cb in callbacks:
            if isinstance(cb, EpochEndSaver):
                cb.defer_epoch_end_saves()
        pending, self.pending = self.pending, None
        if pending is None or initial_epoch == 0:
            return
        if initial_epoch != pending["initial_epoch"]:
            warnings.warn(
                f"fit(initial_epoch={initial_epoch}) after loading {pending['path']!r}, which continues from epoch "
                f"{pending['initial_epoch']}: the History and callback states are not restored.",
                stacklevel=3,
            )
            return
        pairs, seen = [], {}
        for cb in callbacks:
            if _is_run_bookkeeping(cb) or not callable(getattr(cb, "load_state_dict", None)):
                continue
            name = type(cb).__name__
            index = seen[name] = seen.get(name, -1) + 1
            states = pending["callbacks"].get(name) or []
            if index < len(states):
                pairs.append((cb, f"{name} {index}", states[index]))
        _load_callback_states(pairs, pending["path"])  # all of them, or none
        if pending["history"] is not None and self.history is not None:
            self.history.load_state_dict(pending["history"])

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        """After every other callback's `on_epoch_end`: the savers' saves, holding the whole epoch's state.

        On an interrupted epoch (Ctrl-C), each ModelCheckpoint writes `interrupted.pt` in its folder instead.
        """
        trainer, logs = self.trainer, logs if logs is not None else {}
        interrupted = trainer.interrupted
        if not interrupted:
            self.epochs_done = epoch + 1
        savers = [cb for cb in self.callbacks or [] if isinstance(cb, EpochEndSaver)]
        if savers and trainer.dist is not None:
            # every rank is here (same callbacks, same epoch): one small collective so rank 0 can save all ranks' states
            states: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(states, _rng_state(trainer))
            self.rank_rng = states
        written: set[str] = set()
        try:
            for cb in savers:
                path = cb.save_at_epoch_end(epoch, logs, interrupted, skip=written)
                if path:
                    written.add(path)
        finally:
            self.rank_rng = None  # mid-epoch saves hold rank 0's states only
