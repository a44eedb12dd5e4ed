"""What Keras' monitoring callbacks share: `MonitorCallback` (the monitored key, its direction, Keras'
float32 comparison) and the learning-rate and printing helpers the callbacks use.

>>> float32(0.1)
0.10000000149011612
"""

from __future__ import annotations

import math
import operator
import struct
import warnings
from collections.abc import Mapping
from typing import Any, Callable

import torch

from .callbacks import Callback
from .distributed import is_main_process

__all__ = ["MonitorCallback", "as_float", "current_lr", "float32", "get_lr", "param_groups", "print_main", "set_lr"]


def float32(x: float) -> float:
    """`x` rounded to float32, as Keras' ops see a Python float (overflow gives an infinity, as torch does)."""
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def print_main(message: str) -> None:
    """Print on rank 0 only, flushed."""
    if is_main_process():
        print(message, flush=True)


def param_groups(trainer: Any) -> list[dict[str, Any]]:
    """The trainer's optimizer's param groups; a clear error when they have no learning rate."""
    optimizer = getattr(trainer, "optimizer", None)
    groups = getattr(optimizer, "param_groups", None)
    if not groups or "lr" not in groups[0]:
        raise ValueError('The optimizer must be a torch optimizer whose param groups have an "lr".')
    return groups


def get_lr(group: dict[str, Any]) -> float:
    """A param group's learning rate as a float."""
    return float(group["lr"])


def set_lr(group: dict[str, Any], lr: float) -> None:
    """Set a param group's learning rate (in place when it is a tensor)."""
    if isinstance(group["lr"], torch.Tensor):  # tensor learning rates (e.g. for capturable optimizers) stay tensors
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def current_lr(trainer: Any) -> float:
    """The learning rate Keras logs as `learning_rate`: the first param group's."""
    return get_lr(param_groups(trainer)[0])


def as_float(value: Any) -> Any:
    """A one-element tensor as a Python number; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


class MonitorCallback(Callback):
    """Keras 3's `MonitorCallback`: the `monitor`, its direction and `_is_improvement`.

    >>> m = MonitorCallback("val_accuracy", mode="max", min_delta=0.01)
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
        """Keras 3's `mode="auto"`: a loss is minimised, a metric of the Trainer follows its own direction
        (Keras' `_direction`, or torchmetrics' `higher_is_better`); anything else raises, as in Keras."""
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        trainer = self.trainer
        names = list(getattr(trainer, "metrics_names", ["loss"]) or ["loss"])
        if name == "loss" or (name.endswith("_loss") and name in names):  # each output's loss, too
            return operator.lt
        for log_name, metric in zip(names[1:], getattr(trainer, "metrics", []) or []):
            if name not in (log_name, getattr(metric, "name", None)):
                continue
            direction = getattr(metric, "_direction", None)
            if direction in ("up", "down"):
                return operator.gt if direction == "up" else operator.lt
            higher = getattr(metric, "higher_is_better", None)
            if higher is not None:
                return operator.gt if higher else operator.lt
        raise ValueError(
            f"{type(self).__name__} callback received monitor={self.monitor}, but the direction of that metric "
            f"is unknown (the logs' metrics are {names}). Pass `mode='max'` to monitor based on the highest "
            "value, or `mode='min'` for the lowest."
        )

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
        return bool(self.monitor_op(float32(monitor_value - self.min_delta), float32(reference_value)))

    def _monitor_value(self, logs: Mapping | None) -> float | None:
        """The monitored value, or None after a warning (once per fit) listing the keys there are."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            self._warn_missing(logs)
            return None
        return as_float(value)

    def _warn_missing(self, logs: Mapping, message: str | None = None) -> None:
        if self._warned:
            return
        self._warned = True
        available = ",".join(k for k in logs.keys() if k != "size")
        message = message or f"{self._subject} conditioned on metric `{self.monitor}` which is not available."
        warnings.warn(f"{message} Available metrics are: {available}", stacklevel=3)
