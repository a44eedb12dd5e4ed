"""Input conversion and validation shared by the kernels and the metrics.

Everything here reads metadata only (shapes, dtypes, devices): nothing looks at
tensor values, so no check ever waits for the device.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

_NUMERIC_KINDS = frozenset("biuf")  # numpy kinds: bool, int, uint, float


def as_tensor(x: Any, name: str, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Turn a tensor, numpy array, list or number into a tensor, or raise naming `name`.

    Tensors are returned as they are unless `device` asks for a move. Anything else is read
    into `dtype` when one is given (straight from its numpy form, with no float32 step).
    """
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"`{name}` must hold real numbers, got a tensor of dtype {x.dtype}.")
        if device is None or x.device == device:
            return x
        refuse_meta(x, name, device)
        return x.to(device, non_blocking=True)
    if x is None:
        raise TypeError(f"`{name}` must be a tensor, array or list of numbers, got None.")
    if isinstance(x, (str, bytes)):
        raise TypeError(f"`{name}` must be a tensor, array or list of numbers, got the string {x!r}.")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged lists
        raise TypeError(f"`{name}` could not be read as an array of numbers: {err}") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"`{name}` must hold real numbers, got {type(x).__name__} of dtype {arr.dtype} "
            f"(for example {arr.flat[0]!r})."
            if arr.size
            else f"`{name}` must hold real numbers, got an empty {type(x).__name__} of dtype {arr.dtype}."
        )
    if dtype is None and arr.dtype == np.float64 and not isinstance(x, np.ndarray):
        # Python floats become float32, as Keras' convert_to_tensor does.
        arr = arr.astype(np.float32)
    t = torch.as_tensor(arr)
    if dtype is not None:
        t = t.to(dtype)
    return t if device is None else t.to(device)


def refuse_meta(x: Any, name: str, device: torch.device) -> None:
    """A meta tensor (a shape without data) cannot feed a metric whose state lives on a real `device`."""
    if isinstance(x, torch.Tensor) and x.is_meta and device.type != "meta":
        raise TypeError(
            f"`{name}` is a meta tensor (a shape without data), and the metric's state lives on {device}: "
            "a metric needs values. Move the metric to 'meta' too (`metric.to('meta')`) to follow shapes only."
        )


def check_k(k: Any) -> int:
    """`k` must be an integer >= 1 (numpy integers welcome, bools refused)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"`k` must be an integer >= 1, got {k!r} of type {type(k).__name__}.")
    if k < 1:
        raise ValueError(f"`k` must be an integer >= 1, got {k}.")
    return int(k)


def check_threshold(threshold: Any) -> float:
    """`threshold` must be a real number (a Python or numpy number, or a one-element tensor)."""
    if isinstance(threshold, torch.Tensor):
        if threshold.numel() != 1 or threshold.is_complex():
            raise TypeError(
                f"`threshold` must be a real number, got a tensor of shape {tuple(threshold.shape)} "
                f"and dtype {threshold.dtype}."
            )
        return threshold  # kept on its device: reading it would be a host sync
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"`threshold` must be a real number, got {threshold!r} of type {type(threshold).__name__}.")
    return float(threshold)


def broadcast_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str, what: str = "") -> torch.Size:
    """The broadcast shape of `a` and `b`, or a ValueError naming both arguments and their shapes."""
    if a.shape == b.shape:
        return a.shape
    shape = broadcast_shapes(a.shape, b.shape)
    if shape is None:
        raise ValueError(
            f"`{name_a}` of shape {tuple(a.shape)} and `{name_b}` of shape {tuple(b.shape)} do not fit "
            f"together{what}: their batch dimensions differ."
        )
    return shape


def broadcast_shapes(a: torch.Size, b: torch.Size) -> torch.Size | None:
    """numpy's broadcasting rule on two shapes (torch.broadcast_shapes is slow for a hot path)."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and x != 1 and y != 1:
            return None
        out.append(y if x == 1 else x)
    return torch.Size(out[::-1])


def broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    """Whether `shape` broadcasts to exactly `target`."""
    return broadcast_shapes(shape, target) == target


def squeeze_or_expand_to_same_rank(
    x1: torch.Tensor, x2: torch.Tensor, expand_rank_1: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras' rule: when ranks differ by one and the longer ends in a size-1 axis, drop it
    (or, when the shorter has rank 1, give that one a trailing axis instead)."""
    r1, r2 = x1.dim(), x2.dim()
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def check_scores(y_pred: torch.Tensor, name: str = "y_pred") -> int:
    """Class scores need a last axis with at least one class; returns the number of classes."""
    if y_pred.dim() == 0:
        raise ValueError(f"`{name}` must have a last axis of class scores, got a scalar.")
    if y_pred.shape[-1] == 0:
        raise ValueError(f"`{name}` has shape {tuple(y_pred.shape)}: its last axis (the classes) is empty.")
    return y_pred.shape[-1]
