"""Trainer checkpoints: everything a run needs to continue exactly, in one atomically written file.

A checkpoint holds the (unwrapped) model's weights, the optimizer, the gradient scaler, an LR scheduler
(a `lr_scheduler` or `scheduler` attribute of the Trainer, if any), the epoch, the `History`, the
callbacks' states (`EarlyStopping`'s best and wait, `ReduceLROnPlateau`'s, `ModelCheckpoint`'s best,
any callback with `state_dict`/`load_state_dict`), the metric states and the random states (torch CPU,
CUDA, numpy, Python's `random` and the Trainer's shuffling `generator`). It is a plain dict of tensors,
numbers, strings, lists and dicts, so it loads with `torch.load(path, weights_only=True)` and nothing
needs registering; it is written as `io.atomic_save` writes (temporary file, fsync, `os.replace`), so a
crash while saving leaves the previous file in place.

Loading reads and checks the whole file (format, model keys and shapes, optimizer groups, random states)
before it changes anything: a truncated, corrupted or foreign file raises `CheckpointError` naming the
file, and the trainer is left as it was. The History and callback states wait for the next `fit` whose
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
import os
import pickle
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .callbacks import BaseLogger, Callback, ProgbarLogger
from .distributed import is_main_process, unwrap_model
from .history import History
from .io import atomic_save
from .version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "EpochEndSaver",
    "RunState",
    "checkpoint_state",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
]

FORMAT = "torch_keras_metrics.trainer_checkpoint"
FORMAT_VERSION = 1
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
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError) as err:
        fail(f"its random states do not load ({err})")


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
    (1, 0, ['bias', 'weight'])
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
    return {
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
    """The checkpoint in `path`, loaded with `torch.load(weights_only=True)` on the CPU and its format checked.

    Raises `CheckpointError` (naming the file) for a truncated, corrupted or foreign file.

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
    except Exception as err:  # whatever a damaged file makes the reader raise (struct.error, EOFError, ...)
        raise CheckpointError(
            f"{path!r} cannot be read as a checkpoint: the file is truncated, corrupted or not a torch file "
            f"({type(err).__name__}: {_reason(err)})."
        ) from err
    if not isinstance(state, Mapping) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a torch_keras_metrics checkpoint: {_describe(state)}")
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path!r} has checkpoint format version {version!r}, newer than this torch_keras_metrics reads "
            f"({FORMAT_VERSION}); it was written by torch_keras_metrics {state.get('library_version')!r}."
        )
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


def _check_history(history: Any, fail: Any) -> None:
    if history is None:
        return
    ok = (
        isinstance(history, Mapping)
        and all(isinstance(history.get(k), list) for k in ("epoch", "batches"))
        and isinstance(history.get("history"), Mapping)
    )
    if not ok:
        fail("its History is malformed")


def load_checkpoint(trainer: Any, path: str | os.PathLike, _state: dict[str, Any] | None = None) -> int:
    """Restore `trainer` from `path` and return the `initial_epoch` to continue from; see the module docstring.

    Everything is checked first: on any error (`CheckpointError`, naming the file) the trainer is untouched.

    >>> trainer.fit(x, y, epochs=10, initial_epoch=load_checkpoint(trainer, "run/last.pt"))  # doctest: +SKIP
    """
    path = os.fspath(path)
    state = _state if _state is not None else read_checkpoint(path)

    def fail(reason: str) -> None:
        raise CheckpointError(f"Cannot load {path!r}: {reason}. The trainer was not changed.")

    model = unwrap_model(trainer.model)
    _check_model(model, state.get("model_state_dict"), fail)
    optimizer = getattr(trainer, "optimizer", None)
    if optimizer is not None and state.get("optimizer_state_dict") is not None:
        _check_optimizer(optimizer, state["optimizer_state_dict"], state.get("optimizer_class"), fail)
    rng = state.get("rng") or {}
    per_rank = state.get("rng_per_rank")
    if per_rank is not None:
        if not isinstance(per_rank, list):
            fail("its per-rank random states are malformed")
        if len(per_rank) == getattr(trainer, "world_size", 1):
            rng = per_rank[getattr(trainer, "rank", 0)]
    _check_rng(rng, fail)
    _check_history(state.get("history"), fail)
    initial_epoch = state.get("initial_epoch")
    if not isinstance(initial_epoch, int) or initial_epoch < 0:
        fail(f"its initial_epoch {initial_epoch!r} is not an integer >= 0")
    callbacks = state.get("callbacks") or {}
    if not isinstance(callbacks, Mapping):
        fail("its callback states are malformed")
    metrics = _matching_metrics(trainer, state.get("metrics"))
    scheduler = _scheduler(trainer)

    # Everything checked: from here on, only loads that the checks above make safe.
    model.load_state_dict(state["model_state_dict"])
    if optimizer is not None and state.get("optimizer_state_dict") is not None:
        optimizer.load_state_dict(state["optimizer_state_dict"])
    scaler = trainer.grad_scaler
    if scaler is not None and state.get("scaler_state_dict"):
        scaler.load_state_dict(state["scaler_state_dict"])
    if scheduler is not None and state.get("scheduler_state_dict") is not None:
        scheduler.load_state_dict(state["scheduler_state_dict"])
    for metric, saved in metrics:
        metric.load_state_dict(saved, strict=False)
    _set_rng(trainer, rng)
    run = trainer.run_state
    if state.get("history") is not None:
        run.history = History()
        run.history.load_state_dict(state["history"])
        run.history.set_model(trainer)
    run.callbacks = None
    run.epochs_done = initial_epoch
    run.pending = {
        "path": path,
        "initial_epoch": initial_epoch,
        "history": state.get("history"),
        "callbacks": dict(callbacks),
    }
    return initial_epoch


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
    """The newest checkpoint in folder `path` that loads (`path` itself if it is a file); None if there is none.

    Files ending in `.pt`, `.pth`, `.ckpt` or `.tar` (not hidden ones: temporary files start with a dot)
    are tried newest first (modification time); a file that does not read as a checkpoint is skipped with
    a warning. Raises `CheckpointError` when there are candidates and none loads.

    >>> latest_checkpoint("run/")  # doctest: +SKIP
    'run/ckpt-03.pt'
    """
    found = _newest(path)
    return None if found is None else found[0]


def _newest(path: str | os.PathLike) -> tuple[str, dict[str, Any]] | None:
    """`latest_checkpoint`'s path with the checkpoint it read (so that resuming reads the file once)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path, read_checkpoint(path)
    if not os.path.isdir(path):
        return None
    candidates = []
    for entry in os.scandir(path):
        if entry.is_file() and not entry.name.startswith(".") and entry.name.endswith(EXTENSIONS):
            candidates.append((entry.stat().st_mtime_ns, entry.name, entry.path))
    candidates.sort(reverse=True)
    skipped = []
    for _, _, candidate in candidates:
        try:
            return candidate, read_checkpoint(candidate)
        except CheckpointError as err:
            warnings.warn(f"Skipping a checkpoint that does not load: {err}", stacklevel=3)
            skipped.append(candidate)
    if skipped:
        raise CheckpointError(f"No checkpoint in {path!r} loads; tried (newest first): {_listing(skipped)}.")
    return None


# ------------------------------------------------------------------ the hooks `Trainer.fit` calls


def resume(trainer: Any, resume_from: str | os.PathLike) -> int | None:
    """`fit(resume_from=...)`: load the newest good checkpoint there; its `initial_epoch`, or None if none.

    A missing path or a folder without checkpoints starts the run from scratch (a missing path that names
    a checkpoint file warns first).
    """
    resume_from = os.fspath(resume_from)
    found = _newest(resume_from)
    if found is None:
        if not os.path.exists(resume_from) and resume_from.endswith(EXTENSIONS):
            warnings.warn(f"No checkpoint at {resume_from!r}: training starts from scratch.", stacklevel=3)
        return None
    return load_checkpoint(trainer, *found)


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
        if pending["history"] is not None and self.history is not None:
            self.history.load_state_dict(pending["history"])
        seen: dict[str, int] = {}
        for cb in callbacks:
            if _is_run_bookkeeping(cb) or not callable(getattr(cb, "load_state_dict", None)):
                continue
            name = type(cb).__name__
            index = seen[name] = seen.get(name, -1) + 1
            states = pending["callbacks"].get(name) or []
            if index < len(states):
                cb.load_state_dict(states[index])

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
