"""Keras' callbacks that decide: they run on every rank, from the same epoch logs, and change the run.

`EarlyStopping`, `ReduceLROnPlateau`, `LearningRateScheduler`, `TerminateOnNaN` and `LambdaCallback`,
with Keras' arguments and decisions (see `keras_callbacks` for what they share and where they differ).

>>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch

from .callbacks import Callback, stack_floats
from .distributed import unwrap_model
from .logs import Logs
from .monitor import MonitorCallback, current_lr, float32, get_lr, param_groups, print_main, set_lr

__all__ = ["EarlyStopping", "LambdaCallback", "LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN"]


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
            print_main(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print_main(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
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
        print_main(f"Batch {batch}: Invalid loss, terminating training")
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
        groups = param_groups(self.trainer)
        for i, group in enumerate(groups):
            learning_rate = self._new_lr(epoch, get_lr(group))
            set_lr(group, learning_rate)
            if self.verbose > 0:
                which = f" of param group {i}" if len(groups) > 1 else ""
                print_main(
                    f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate{which} to {learning_rate}."
                )

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        logs = logs or {}  # as Keras: an empty dict is replaced, not filled
        logs["learning_rate"] = current_lr(self.trainer)  # type: ignore[index]


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
        groups = param_groups(self.trainer)
        reduced = False
        for i, group in enumerate(groups):
            old_lr = get_lr(group)
            if float32(old_lr) > float32(self.min_lr):
                new_lr = max(old_lr * self.factor, self.min_lr)
                set_lr(group, new_lr)
                reduced = True
                if self.verbose > 0:
                    which = f" param group {i}" if len(groups) > 1 else ""
                    print_main(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing{which} learning rate to {new_lr}.")
        return reduced

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}  # as Keras: an empty dict is replaced, not filled
        logs["learning_rate"] = current_lr(self.trainer)  # type: ignore[index]
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
