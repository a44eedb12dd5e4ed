"""Keras' callbacks that write files: on rank 0 only, atomically where a file is replaced.

`ModelCheckpoint`, `CSVLogger` and `TensorBoard`, with Keras' arguments and file names (see
`keras_callbacks` for what they share and where they differ).

>>> ckpt = ModelCheckpoint("checkpoints/best.pt", save_best_only=True, save_weights_only=True)
"""

from __future__ import annotations

import collections
import csv
import os
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .callbacks import Callback, stack_floats
from .checkpoint import checkpoint_state, save_checkpoint
from .distributed import is_main_process, unwrap_model
from .io import atomic_save
from .logs import Logs
from .monitor import MonitorCallback, as_float, current_lr, print_main

__all__ = ["CSVLogger", "ModelCheckpoint", "TensorBoard"]


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
                    print_main(f"\nEpoch {epoch + 1}: interrupted; saved the trainer to {path}")
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
                print_main(f"\nEpoch {epoch + 1}: saving model to {filepath}")
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
                print_main(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                    f"saving model to {filepath}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            print_main(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
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
            print_main(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _payload(self, epoch: int, batch: int | None) -> Any:
        if self.save_weights_only:
            return unwrap_model(self.model).state_dict()
        return checkpoint_state(self.trainer, epoch=epoch, batch=batch)

    def _get_file_path(self, epoch: int, batch: int | None, logs: Mapping) -> str:
        values = {k: as_float(logs[k]) for k in logs if k != "size"}
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
        if self.keys is None:
            self.keys = sorted(logs.keys())
            if not any(key.startswith("val_") for key in self.keys) and self.keys:
                self.keys.extend([f"val_{k}" for k in self.keys])
        if not self.writer:
            fieldnames = ["epoch"] + (self.keys or [])
            self.writer = csv.DictWriter(self.csv_file, fieldnames=fieldnames, dialect="excel", delimiter=self.sep)
            if self.append_header:
                self.writer.writeheader()
        row_dict = collections.OrderedDict({"epoch": epoch})
        row_dict.update((key, _csv_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row_dict)
        self.csv_file.flush()

    def on_train_end(self, logs: Mapping | None = None) -> None:
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(k: Any) -> Any:
    """A log value as Keras' CSVLogger writes it: numbers as they are, sequences as a quoted list."""
    k = as_float(k)
    is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
    if isinstance(k, str):
        return k
    if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
        return f'"[{", ".join(map(str, k))}]"'
    return k


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
    `histogram_freq=N` writes each parameter's histogram every N epochs (non-finite values left out,
    with one warning); `write_steps_per_second` logs `epoch_steps_per_second` and, for every training
    batch, `batch_steps_per_second`, as Keras 3 does. Keras' arguments are all accepted, in Keras' order, but the graph
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
        self._rates: list[tuple[int, float]] = []
        self._batch_start = 0.0
        self._warned_non_finite = False
        if write_steps_per_second:  # an instance hook: without it, no per-batch call at all
            self.on_train_batch_begin = self._time_batch  # type: ignore[method-assign]

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

    def _time_batch(self, batch: int, logs: Mapping | None = None) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self._global_train_batch += 1
        self._iterations += 1
        self._epoch_batches += 1
        if self.write_steps_per_second and self._main:
            self._rates.append((self._global_train_batch, 1.0 / max(time.perf_counter() - self._batch_start, 1e-9)))
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq != 0 or logs is None:
            return
        if not self._main:
            return
        values = logs.tensors() if isinstance(logs, Logs) else {k: v for k, v in logs.items() if k != "size"}
        self._pending.append((self._global_train_batch, dict(values)))
        if len(self._pending) >= self.max_pending:
            self._flush_batches()

    def _flush_batches(self) -> None:
        rates, self._rates = self._rates, []
        if rates and is_main_process():
            writer = self._writer("train")
            for step, rate in rates:
                writer.add_scalar("batch_steps_per_second", rate, step)
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
                values = param.detach().float().cpu()
                finite = values[torch.isfinite(values)]
                if finite.numel() < values.numel() and not self._warned_non_finite:
                    self._warned_non_finite = True
                    warnings.warn(
                        f"TensorBoard: parameter {name!r} holds {values.numel() - finite.numel()} inf or NaN values at "
                        f"epoch {epoch}; histograms leave non-finite values out (warned once).",
                        stacklevel=2,
                    )
                if finite.numel():
                    writer.add_histogram(f"{name}/histogram", finite, epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_epoch_metrics(self, epoch: int, logs: Mapping | None) -> None:
        if not logs:
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k: v for k, v in logs.items() if k.startswith("val_")}
        if getattr(getattr(self.trainer, "optimizer", None), "param_groups", None):
            train_logs["learning_rate"] = current_lr(self.trainer)
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
