"""Keras 3's callback suite for the Trainer, with Keras' arguments and Keras' decisions.

`EarlyStopping`, `ModelCheckpoint`, `CSVLogger`, `LambdaCallback`, `TerminateOnNaN`,
`LearningRateScheduler`, `ReduceLROnPlateau` and `TensorBoard` follow `keras.callbacks` line by line;
they see the run only through `self.trainer.stop_training`, `self.trainer.optimizer` (its
`param_groups`) and `self.model` (the torch module, unwrapped from `DistributedDataParallel`).
The differences a torch user meets are listed on each class; the shared ones:

* Improvements are compared as Keras 3 compares them, in float32 (`ops.less(current - min_delta, best)`
  converts both sides to float32), so a gain smaller than float32 resolution is no improvement.
* `mode="auto"`: `loss`/`val_loss` is minimised; a metric of the Trainer with that log name is
  followed in its own direction (`higher_is_better`, or Keras' `_direction`); otherwise a name
  containing `acc` or `auc` is maximised and anything else minimised (Keras 3 would raise instead).
* A monitored key missing from the logs warns once per `fit`, listing the keys there are; it never stops the run.
* Under `torch.distributed`, only rank 0 writes files (checkpoints, CSV, TensorBoard) and prints;
  decisions (stopping, learning rates) run on every rank from the same epoch logs.

>>> import torch
>>> from torch_keras_metrics import Trainer
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Linear(2, 1)
>>> trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "mse", device="cpu")
>>> x = torch.randn(32, 2); y = x.sum(1, keepdim=True)
>>> stop = EarlyStopping(monitor="loss", patience=1, min_delta=10.0)
>>> history = trainer.fit(x, y, epochs=10, verbose=0, callbacks=[stop, ReduceLROnPlateau("loss", patience=1)])
>>> stop.stopped_epoch, len(history.epoch), "learning_rate" in history.history
(1, 2, True)
"""

from __future__ import annotations

import collections
import csv
import math
import operator
import os
import struct
import time
import warnings
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch

from .callbacks import Callback, stack_floats
from .checkpoint import checkpoint_state, save_checkpoint
from .distributed import is_main_process, unwrap_model
from .io import atomic_save
from .logs import Logs

__all__ = [
    "CSVLogger",
    "EarlyStopping",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
    "is_main_process",
    "unwrap_model",
]


# ------------------------------------------------------------------ helpers


def _f32(x: float) -> float:
    """`x` rounded to float32, as Keras' ops see a Python float (overflow gives an infinity, as torch does)."""
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _print(message: str) -> None:
    if is_main_process():
        print(message, flush=True)


def _param_groups(trainer: Any) -> list[dict[str, Any]]:
    optimizer = getattr(trainer, "optimizer", None)
    groups = getattr(optimizer, "param_groups", None)
    if not groups or "lr" not in groups[0]:
        raise ValueError('The optimizer must be a torch optimizer whose param groups have an "lr".')
    return groups


def _get_lr(group: dict[str, Any]) -> float:
    return float(group["lr"])


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], torch.Tensor):  # tensor learning rates (e.g. for capturable optimizers) stay tensors
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def _current_lr(trainer: Any) -> float:
    """The learning rate Keras logs as `learning_rate`: the first param group's."""
    return _get_lr(_param_groups(trainer)[0])


def _as_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


# ------------------------------------------------------------------ monitoring


class MonitorCallback(Callback):
    """Keras 3's `MonitorCallback`: the `monitor`, its direction and `_is_improvement`.

    >>> m = MonitorCallback("val_accuracy", min_delta=0.01)
    >>> m._is_improvement(0.5, None), m._is_improvement(0.505, 0.5), m._is_improvement(0.52, 0.5)
    (True, False, True)
    """

    _subject = "Monitoring"

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline: float | None = None, min_delta=0):
        super().__init__()
        if mode not in ["auto", "min", "max"]:
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op: Callable[[float, float], bool] | None = None
        self._warned = False

    def _auto_direction(self) -> Callable[[float, float], bool]:
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        if name == "loss":
            return operator.lt
        trainer = self.trainer
        names = list(getattr(trainer, "metrics_names", ["loss"]) or ["loss"])[1:]
        for log_name, metric in zip(names, getattr(trainer, "metrics", []) or []):
            if name not in (log_name, getattr(metric, "name", None)):
                continue
            direction = getattr(metric, "_direction", None)
            if direction in ("up", "down"):
                return operator.gt if direction == "up" else operator.lt
            higher = getattr(metric, "higher_is_better", None)
            if higher is not None:
                return operator.gt if higher else operator.lt
        return operator.gt if ("acc" in name or "auc" in name) else operator.lt

    def _set_monitor_op(self) -> None:
        if self.mode == "min":
            self.monitor_op = operator.lt
        elif self.mode == "max":
            self.monitor_op = operator.gt
        else:
            self.monitor_op = self._auto_direction()
        if self.monitor_op is operator.lt:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value: float, reference_value: float | None) -> bool:
        if reference_value is None:
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        # Keras 3: ops.less/ops.greater on Python floats, i.e. on float32 tensors
        return bool(self.monitor_op(_f32(monitor_value - self.min_delta), _f32(reference_value)))

    def _monitor_value(self, logs: Mapping | None) -> float | None:
        """The monitored value, or None after a warning (once per fit) listing the keys there are."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            self._warn_missing(logs)
            return None
        return _as_float(value)

    def _warn_missing(self, logs: Mapping, message: str | None = None) -> None:
        if self._warned:
            return
        self._warned = True
        available = ",".join(k for k in logs.keys() if k != "size")
        message = message or f"{self._subject} conditioned on metric `{self.monitor}` which is not available."
        warnings.warn(f"{message} Available metrics are: {available}", stacklevel=3)


# ------------------------------------------------------------------ EarlyStopping


class EarlyStopping(MonitorCallback):
    """Stop training when `monitor` has stopped improving (`keras.callbacks.EarlyStopping`).

    Keras 3's rules: `wait` counts epochs since the last improvement (an improvement that does not beat
    `baseline` still counts as waiting); training stops when `wait >= patience` at an epoch > 0;
    `restore_best_weights` restores the best epoch's weights at the end of training, whether or not
    training stopped early. The weights are kept as a CPU copy of the unwrapped model's `state_dict()`.
    After `fit`: `stopped_epoch` (0 if it never stopped), `best`, `best_epoch`, `wait`.

    >>> stop = EarlyStopping(monitor="val_loss", patience=2)
    """

    _subject = "Early stopping"

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights: dict[str, Any] | None = None
        self.best_epoch = 0
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0
        self._warned = False

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self._get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs: Mapping | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            unwrap_model(self.model).load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        """What a Trainer checkpoint keeps of this callback: `wait`, `best`, `best_epoch`, the best weights.

        >>> EarlyStopping().state_dict()["wait"]
        0
        """
        return {
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
        self.best, self.best_epoch, self.best_weights = state["best"], state["best_epoch"], state["best_weights"]

    def _get_weights(self) -> dict[str, Any]:
        state = unwrap_model(self.model).state_dict()
        return {k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v for k, v in state.items()}


# ------------------------------------------------------------------ ModelCheckpoint


class ModelCheckpoint(MonitorCallback):
    """Save the model every epoch, every `save_freq` batches, or when `monitor` improves (`save_best_only`).

    `filepath` is formatted with `epoch` (1-based, as Keras) and the log keys, e.g.
    `"ckpt/{epoch:02d}-{val_loss:.4f}.pt"`; with an integer `save_freq` also `batch` (1-based).
    With `save_weights_only=True` the file holds the unwrapped model's `state_dict()`; otherwise the full
    Trainer checkpoint of `torch_keras_metrics.checkpoint` (model, optimizer, History, callback, metric and
    random states; `"epoch"` 1-based, `"batch"` None for an end-of-epoch save, `"initial_epoch"` the epoch to
    continue from): `trainer.load_checkpoint(path)` or `fit(resume_from=folder)` resume from it.
    Inside `Trainer.fit` the end-of-epoch save runs after every callback's `on_epoch_end`, so the file holds
    the whole epoch's state whatever the callbacks' order; on Ctrl-C the interrupted epoch is not saved
    under `filepath` (its logs are partial) but as a full checkpoint `interrupted.pt` in the same folder.
    Every file is written atomically
    (temporary file in the same folder, fsync, `os.replace`) and loads with `torch.load(path, weights_only=True)`.
    Keras' file-extension checks (`.keras`, `.weights.h5`) do not apply: any name works.

    >>> ckpt = ModelCheckpoint("checkpoints/best.pt", save_best_only=True, save_weights_only=True)
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen: int | None = None
        self._current_epoch = 0
        self._deferred = False  # inside Trainer.fit: the epoch-end save waits for save_at_epoch_end
        self._pending: tuple[int, Mapping] | None = None
        if self.save_freq != "epoch" and not isinstance(self.save_freq, int):
            raise ValueError(
                f"Unrecognized save_freq: {self.save_freq}. Expected save_freq are 'epoch' or integer values"
            )

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self._warned = False

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._current_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            if self._deferred:
                self._pending = (epoch, logs if logs is not None else {})
            else:
                self._save_model(epoch=epoch, batch=None, logs=logs)

    def on_train_end(self, logs: Mapping | None = None) -> None:
        self._deferred, self._pending = False, None

    def defer_epoch_end_saves(self) -> None:
        """`checkpoint.EpochEndSaver`: inside `Trainer.fit`, `on_epoch_end` leaves the save to `save_at_epoch_end`."""
        self._deferred = True

    def save_at_epoch_end(self, epoch: int, logs: Mapping, interrupted: bool, skip: set[str]) -> str | None:
        """`checkpoint.EpochEndSaver`: called by `Trainer.fit` after every callback's `on_epoch_end`; returns
        the path of a Ctrl-C save."""
        pending, self._pending = self._pending, None
        if interrupted:
            try:
                folder = os.path.dirname(self._get_file_path(epoch, None, logs))
            except KeyError:  # the partial epoch lacks keys the name uses (e.g. val_loss)
                folder = os.path.dirname(self.filepath)
            path = os.path.join(folder, "interrupted.pt")
            if path not in skip and is_main_process():
                save_checkpoint(self.trainer, path, epoch=epoch, complete=False, logs=logs)
                if self.verbose > 0:
                    _print(f"\nEpoch {epoch + 1}: interrupted; saved the trainer to {path}")
            return path
        if pending is not None:
            self._save_model(epoch=pending[0], batch=None, logs=pending[1])
        return None

    def state_dict(self) -> dict[str, Any]:
        """What a Trainer checkpoint keeps of this callback: `best` and the batch counters."""
        return {
            "best": self.best,
            "batches_seen_since_last_saving": self._batches_seen_since_last_saving,
            "last_batch_seen": self._last_batch_seen,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = state["best"]
        self._batches_seen_since_last_saving = state["batches_seen_since_last_saving"]
        self._last_batch_seen = state["last_batch_seen"]

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            add_batches = batch + 1  # a new epoch
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch: int, batch: int | None, logs: Mapping | None, filepath: str) -> bool:
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            self._warn_missing(logs, f"Can save best model only with {self.monitor} available.")
            return True
        if isinstance(current, (torch.Tensor, np.ndarray)) and current.ndim > 0:
            warnings.warn(
                f"Can save best model only when `monitor` is a scalar value. Received: {current}. "
                "Falling back to `save_best_only=False`.",
                stacklevel=3,
            )
            return True
        current = float(current)
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                    f"saving model to {filepath}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch: int, batch: int | None, logs: Mapping | None) -> None:
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath) or not is_main_process():
            return
        try:
            dirname = os.path.dirname(filepath)
            if dirname:
                os.makedirs(dirname, exist_ok=True)
            atomic_save(self._payload(epoch, batch), filepath)
        except IsADirectoryError as err:
            raise OSError(
                f"Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an existing "
                f"directory: {filepath}"
            ) from err
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _payload(self, epoch: int, batch: int | None) -> Any:
        if self.save_weights_only:
            return unwrap_model(self.model).state_dict()
        return checkpoint_state(self.trainer, epoch=epoch, batch=batch)

    def _get_file_path(self, epoch: int, batch: int | None, logs: Mapping) -> str:
        values = {k: _as_float(logs[k]) for k in logs if k != "size"}
        try:
            if batch is None or "batch" in values:
                return self.filepath.format(epoch=epoch + 1, **values)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **values)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from e


# ------------------------------------------------------------------ CSVLogger


class CSVLogger(Callback):
    """Stream epoch results to a CSV file, as Keras writes it (`keras.callbacks.CSVLogger`).

    Columns: `epoch` (0-based), then the first epoch's log keys sorted (plus `val_` twins when the
    first epoch had no validation); missing values are written `NA`; floats as Python's `repr`;
    rows end with `\\r\\n` (the csv module's excel dialect). The file is flushed after every epoch.

    >>> logger = CSVLogger("training.csv", append=True)
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer: Any = None
        self.keys: list[str] | None = None
        self.append_header = True
        self.csv_file: Any = None

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        if not is_main_process():
            return
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")  # closed in on_train_end
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        if self.csv_file is None or self.csv_file.closed:
            return
        logs = logs or {}

        def handle_value(k: Any) -> Any:
            k = _as_float(k)
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
            if not any(key.startswith("val_") for key in self.keys) and self.keys:
                self.keys.extend([f"val_{k}" for k in self.keys])
        if not self.writer:

            class CustomDialect(csv.excel):
                delimiter = self.sep

            fieldnames = ["epoch"] + (self.keys or [])
            self.writer = csv.DictWriter(self.csv_file, fieldnames=fieldnames, dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()
        row_dict = collections.OrderedDict({"epoch": epoch})
        row_dict.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row_dict)
        self.csv_file.flush()

    def on_train_end(self, logs: Mapping | None = None) -> None:
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


# ------------------------------------------------------------------ LambdaCallback


class LambdaCallback(Callback):
    """A callback from plain functions (`keras.callbacks.LambdaCallback`).

    `on_epoch_begin`/`on_epoch_end` take `(epoch, logs)`, `on_train_batch_begin`/`on_train_batch_end`
    take `(batch, logs)`, `on_train_begin`/`on_train_end` take `(logs)`; any other keyword (e.g.
    `on_test_end=...`) is set on the instance as Keras does.

    >>> seen = []
    >>> cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> cb.on_epoch_end(3, {}); seen
    [3]
    """

    def __init__(
        self,
        on_epoch_begin: Callable | None = None,
        on_epoch_end: Callable | None = None,
        on_train_begin: Callable | None = None,
        on_train_end: Callable | None = None,
        on_train_batch_begin: Callable | None = None,
        on_train_batch_end: Callable | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.__dict__.update(kwargs)
        if on_epoch_begin is not None:
            self.on_epoch_begin = on_epoch_begin
        if on_epoch_end is not None:
            self.on_epoch_end = on_epoch_end
        if on_train_begin is not None:
            self.on_train_begin = on_train_begin
        if on_train_end is not None:
            self.on_train_end = on_train_end
        if on_train_batch_begin is not None:
            self.on_train_batch_begin = on_train_batch_begin
        if on_train_batch_end is not None:
            self.on_train_batch_end = on_train_batch_end


# ------------------------------------------------------------------ TerminateOnNaN


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite (`keras.callbacks.TerminateOnNaN`).

    Without a host sync per batch: each batch's loss tensor is taken from the lazy `Logs` as it is
    (`logs.tensors()["loss"]`, which reads nothing) and folded into a flag that stays on the loss's
    device: `bad |= ~isfinite(loss)`, plus the index and value of the first bad batch
    (`torch.where`, a few tiny kernels, no transfer). The flag is read (one device read) at most once
    every `interval` seconds while the epoch runs (the progress bar's cadence by default), and once
    at the end of each epoch; `interval=None` reads it only at epoch ends. When it is set, training
    stops (`trainer.stop_training = True`, Keras' message "Batch {b}: Invalid loss, terminating
    training" printed) or, with `raise_error=True`, a `RuntimeError` is raised. Unlike Keras, which
    reads every batch's loss, the stop can therefore come up to `interval` seconds (or, with
    `interval=None`, the rest of the epoch) after the bad batch. Plain-float losses are checked at once.

    >>> cb = TerminateOnNaN(interval=None)
    """

    def __init__(self, raise_error: bool = False, interval: float | None = 0.1) -> None:
        super().__init__()
        self.raise_error = raise_error
        self.interval = interval
        self._reset()

    def _reset(self) -> None:
        self._bad: torch.Tensor | None = None
        self._first: torch.Tensor | None = None
        self._value: torch.Tensor | None = None
        self._last_check = time.monotonic()
        self._done = False  # stopped already: the rest of the epoch (distributed, stops wait for it) says nothing

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self._reset()

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._reset()

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        if logs is None or self._done:
            return
        loss = logs.tensors().get("loss") if isinstance(logs, Logs) else logs.get("loss")
        if loss is None:
            return
        if not isinstance(loss, torch.Tensor):
            if not math.isfinite(float(loss)):
                self._terminate(batch, float(loss))
            return
        loss = loss.detach().reshape(())
        bad = ~torch.isfinite(loss)
        if self._bad is None:
            self._bad = bad
            self._first = torch.where(bad, batch, -1)
            self._value = loss.float()
        else:
            new = bad & ~self._bad
            self._first = torch.where(new, batch, self._first)
            self._value = torch.where(new, loss.float(), self._value)
            self._bad = self._bad | bad
        if self.interval is not None and time.monotonic() - self._last_check >= self.interval:
            self._check()

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self._check()

    def _check(self) -> None:
        self._last_check = time.monotonic()
        if self._bad is None:
            return
        bad, first, value = stack_floats([self._bad.double(), self._first.double(), self._value.double()])
        if bad:
            self._bad = None
            self._terminate(int(first), value)

    def _terminate(self, batch: int, loss: float) -> None:
        self._done = True
        if self.raise_error:
            raise RuntimeError(
                f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. Terminating training immediately."
            )
        _print(f"Batch {batch}: Invalid loss, terminating training")
        self.trainer.stop_training = True


# ------------------------------------------------------------------ learning rates


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from `schedule(epoch, lr)` (or `schedule(epoch)`).

    Applied to every param group of `trainer.optimizer`, each with its own current `lr` (a one-argument
    schedule gives them all the same value). The schedule must return a float, as Keras demands.
    `learning_rate` (the first param group's lr) is added to the epoch logs, as Keras 3 does, so
    `History`, `CSVLogger` and `TensorBoard` after this callback record it. Keras keeps its learning rate
    in a float32 variable and logs that rounding (0.1 -> 0.10000000149011612); torch's is a Python float,
    logged as it is.

    >>> sched = LearningRateScheduler(lambda epoch, lr: lr if epoch < 10 else lr * 0.9)
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def _new_lr(self, epoch: int, lr: float) -> float:
        try:  # new API
            learning_rate = self.schedule(epoch, lr)
        except TypeError:  # old API, as Keras
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        return float(learning_rate)

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        groups = _param_groups(self.trainer)
        for i, group in enumerate(groups):
            learning_rate = self._new_lr(epoch, _get_lr(group))
            _set_lr(group, learning_rate)
            if self.verbose > 0:
                which = f" of param group {i}" if len(groups) > 1 else ""
                _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate{which} to {learning_rate}.")

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        logs = logs or {}  # as Keras: an empty dict is replaced, not filled
        logs["learning_rate"] = _current_lr(self.trainer)  # type: ignore[index]


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` when `monitor` stops improving (`keras.callbacks.ReduceLROnPlateau`).

    Keras 3's rules: after `patience` epochs without an improvement larger than `min_delta`, each
    param group whose lr is above `min_lr` (compared in float32, as Keras) gets `max(lr * factor, min_lr)`;
    then `cooldown` epochs pass before `wait` counts again. Adds `learning_rate` (the lr used during the
    epoch, before any reduction) to the epoch logs, as Keras 3 does.

    >>> plateau = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-5)
    """

    _subject = "Learning rate reduction is"

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self._reset()
        self._warned = False

    def _reduce(self, epoch: int) -> bool:
        groups = _param_groups(self.trainer)
        reduced = False
        for i, group in enumerate(groups):
            old_lr = _get_lr(group)
            if _f32(old_lr) > _f32(self.min_lr):
                new_lr = max(old_lr * self.factor, self.min_lr)
                _set_lr(group, new_lr)
                reduced = True
                if self.verbose > 0:
                    which = f" param group {i}" if len(groups) > 1 else ""
                    _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing{which} learning rate to {new_lr}.")
        return reduced

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}  # as Keras: an empty dict is replaced, not filled
        logs["learning_rate"] = _current_lr(self.trainer)  # type: ignore[index]
        current = self._monitor_value(logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def state_dict(self) -> dict[str, Any]:
        """What a Trainer checkpoint keeps of this callback (the learning rates live in the optimizer's state).

        >>> ReduceLROnPlateau().state_dict()
        {'best': None, 'wait': 0, 'cooldown_counter': 0}
        """
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]


# ------------------------------------------------------------------ TensorBoard


def _summary_writer() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError(
            "The TensorBoard callback needs the `tensorboard` package: pip install tensorboard "
            "(or pip install 'torch-keras-metrics[tensorboard]')."
        ) from err
    return SummaryWriter


class TensorBoard(Callback):
    """Write Keras' TensorBoard scalars through `torch.utils.tensorboard` (needs the `tensorboard` package).

    As Keras 3: `log_dir/train` gets `epoch_<key>` for each training key plus `epoch_learning_rate`,
    `log_dir/validation` gets `epoch_<key>` for each `val_<key>`, both at step `epoch` (0-based);
    after each validation inside `fit`, `evaluation_<key>_vs_iterations` at the number of training
    batches so far. With `update_freq="batch"` (or an integer N), `batch_<key>` is written for every
    (every N-th) training batch at the global batch step (1-based). The batch values are each batch's
    own values (this package's batch logs), not Keras 3's running means; they are kept on the device
    and written at the end of the epoch (or every `max_pending` = 1000 records) with one device read,
    so no batch waits for the device.
    `histogram_freq=N` writes each parameter's histogram every N epochs; `write_steps_per_second`
    logs `epoch_steps_per_second`. Keras' arguments are all accepted, in Keras' order, but the graph
    (`write_graph`) is not written, `write_images`/`embeddings_freq` warn and do nothing, and
    `profile_batch` raises, as Keras 3 does on its torch backend.

    >>> board = TensorBoard("logs/run1", update_freq="batch")  # doctest: +SKIP
    """

    def __init__(
        self,
        log_dir: str | os.PathLike = "logs",
        histogram_freq: int = 0,
        write_graph: bool = True,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: str | int = "epoch",
        profile_batch: int = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: Any = None,
    ) -> None:
        super().__init__()
        self._writer_class = _summary_writer()  # fails here, not mid-training, without the package
        if profile_batch:  # as Keras 3 on its torch backend
            raise ValueError(
                "Profiling is not yet available with the torch backend. "
                f"Received: profile_batch={profile_batch} (must be 0)"
            )
        if write_images or embeddings_freq:
            warnings.warn("TensorBoard: `write_images` and `embeddings_freq` are not supported; ignored.", stacklevel=2)
        self.write_graph = write_graph
        self.write_images = write_images
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        if update_freq != "epoch" and update_freq != "batch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"`update_freq` must be 'epoch', 'batch' or an integer >= 1, got {update_freq!r}.")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers: dict[str, Any] = {}
        self._global_train_batch = 0
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._epoch_start = 0.0
        self._epoch_batches = 0
        self._main = True
        self._iterations = 0  # optimizer steps over every fit, Keras' `optimizer.iterations`
        self.max_pending = 1000  # batch records kept before a write (and its device read) mid-epoch

    def state_dict(self) -> dict[str, Any]:
        """The step counters, so a resumed run continues the curves where they stopped."""
        return {"global_train_batch": self._global_train_batch, "iterations": self._iterations}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._global_train_batch, self._iterations = state["global_train_batch"], state["iterations"]

    def _writer(self, which: str) -> Any:
        if which not in self._writers:
            self._writers[which] = self._writer_class(self._train_dir if which == "train" else self._val_dir)
        return self._writers[which]

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self._global_train_batch = 0
        self._pending = []
        self._main = is_main_process()

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._epoch_start = time.monotonic()
        self._epoch_batches = 0

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self._global_train_batch += 1
        self._iterations += 1
        self._epoch_batches += 1
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq != 0 or logs is None:
            return
        if not self._main:
            return
        values = logs.tensors() if isinstance(logs, Logs) else {k: v for k, v in logs.items() if k != "size"}
        self._pending.append((self._global_train_batch, dict(values)))
        if len(self._pending) >= self.max_pending:
            self._flush_batches()

    def _flush_batches(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not is_main_process():
            return
        flat = [
            (step, k, v)
            for step, values in pending
            for k, v in values.items()
            if not isinstance(v, torch.Tensor) or v.numel() == 1  # scalars only, as Keras' summary.scalar
        ]
        tensors = [v for _, _, v in flat if isinstance(v, torch.Tensor)]
        floats = iter(stack_floats([t.reshape(()).double() for t in tensors]))  # one device read
        writer = self._writer("train")
        for step, key, value in flat:
            value = next(floats) if isinstance(value, torch.Tensor) else float(value)
            writer.add_scalar(f"batch_{key}", value, step)

    def on_test_end(self, logs: Mapping | None = None) -> None:
        if not is_main_process() or not logs or getattr(self.trainer, "optimizer", None) is None:
            return
        writer = self._writer("validation")
        for name, value in logs.items():
            writer.add_scalar(f"evaluation_{name}_vs_iterations", float(value), self._iterations)

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self._flush_batches()
        if not is_main_process():
            return
        self._log_epoch_metrics(epoch, logs)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            writer = self._writer("train")
            for name, param in unwrap_model(self.model).named_parameters():
                writer.add_histogram(f"{name}/histogram", param.detach().float().cpu(), epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_epoch_metrics(self, epoch: int, logs: Mapping | None) -> None:
        if not logs:
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k: v for k, v in logs.items() if k.startswith("val_")}
        if getattr(getattr(self.trainer, "optimizer", None), "param_groups", None):
            train_logs["learning_rate"] = _current_lr(self.trainer)
        if self.write_steps_per_second:
            elapsed = time.monotonic() - self._epoch_start
            train_logs["steps_per_second"] = self._epoch_batches / elapsed if elapsed > 0 else 0.0
        if train_logs:
            writer = self._writer("train")
            for name, value in train_logs.items():
                writer.add_scalar(f"epoch_{name}", float(value), epoch)
        if val_logs:
            writer = self._writer("validation")
            for name, value in val_logs.items():
                writer.add_scalar(f"epoch_{name[4:]}", float(value), epoch)

    def on_train_end(self, logs: Mapping | None = None) -> None:
        self._flush_batches()
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
