"""Keras' reduction metrics beside `Mean`: `Sum`, and the base of the metrics that average a Keras function.

`Sum` adds up (weighted) values as `keras.metrics.Sum` does: values of a higher rank than the weights are
summed over their extra axes first (Keras' `reduce_to_samplewise_values` with `ops.sum`). The total is a
float64 state, so integer values stay exact up to 2**53.

>>> import torch
>>> m = Sum()
>>> m.update_state(torch.tensor([1.0, 3.0, 5.0, 7.0]), sample_weight=torch.tensor([1.0, 1.0, 0.0, 0.0]))
>>> m.result()
tensor(4.)
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import torch

from ._checks import as_tensor, broadcasts_to, squeeze_or_expand_to_same_rank
from .metrics import _TORCHMETRICS_KWARGS, MeanMetricWrapper, StatefulMetric, _snake_case, register

__all__ = ["Sum"]


def weighted_sum(values: torch.Tensor, sample_weight: Any = None) -> torch.Tensor:
    """The float64 sum of `values`, each sample's weighted by `sample_weight` as `keras.metrics.Sum` weighs it.

    >>> weighted_sum(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1.0, 0.5]))
    tensor(6.5000, dtype=torch.float64)
    """
    if sample_weight is None:
        return values.sum(dtype=torch.float64)
    weight = as_tensor(sample_weight, "sample_weight", values.device).to(torch.float64)
    wide, weight = squeeze_or_expand_to_same_rank(values.to(torch.float64), weight)
    if wide.dim() > weight.dim():
        wide = wide.sum(dim=tuple(range(weight.dim(), wide.dim())))
    if not broadcasts_to(weight.shape, wide.shape):
        raise ValueError(
            f"`sample_weight` of shape {tuple(torch.as_tensor(sample_weight).shape)} does not broadcast to the "
            f"values of shape {tuple(values.shape)} (one weight per sample, or per element)."
        )
    return (wide * weight).sum()


class Sum(StatefulMetric):
    """The (weighted) sum of the values seen (`keras.metrics.Sum`).

    `result()` is a new tensor, which a later update leaves as it was (Keras returns its state variable).

    >>> m = Sum()
    >>> m.update_state([1, 3, 5, 7])
    >>> m.result()
    tensor(16.)
    """

    def __init__(self, name: str = "sum", dtype: Any = None, **torchmetrics_kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, **torchmetrics_kwargs)
        self.add_sum_state("total")

    def batch_state(self, values: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        """This batch's weighted sum (float64), checked before anything changes."""
        values = as_tensor(values, "values", self._buffers["total"].device).detach()
        return (weighted_sum(values, sample_weight),)

    def compute_result(self, total: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return total.clone()

    def update_state(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        """Add a batch of values (and optional weights) to the sum."""
        self._add(self.batch_state(values, sample_weight))

    def update(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        """torchmetrics' name for `update_state`."""
        self.update_state(values, sample_weight)

    def forward(self, values: Any, sample_weight: Any = None) -> torch.Tensor:  # type: ignore[override]
        """Add the batch and return its own sum."""
        parts = self.batch_state(values, sample_weight)
        self._add(parts)
        value = self._value(parts)
        if torch.compiler.is_compiling():
            self._forward_cache = value
        else:
            self.__dict__["_forward_cache"] = value  # what Lightning logs with on_step=True
        return value


# --------------------------------------------------------------------------- the base of the function metrics


def check_bool(value: Any, name: str) -> bool:
    """A flag: a Python or numpy bool (or 0/1)."""
    if isinstance(value, (bool, numbers.Integral)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"`{name}` must be True or False, got {value!r} of type {type(value).__name__}.")


def check_axis(axis: Any, name: str = "axis", tuples: bool = False) -> Any:
    """An integer axis (or, with `tuples`, a tuple or list of them)."""
    if tuples and isinstance(axis, (tuple, list)) and axis:
        return type(axis)(check_axis(a, name) for a in axis)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        kind = "an integer or a tuple of integers" if tuples else "an integer"
        raise TypeError(f"`{name}` must be {kind}, got {axis!r} of type {type(axis).__name__}.")
    return int(axis)


def check_fraction(value: Any, name: str) -> float:
    """A real number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number in [0, 1], got {value!r} of type {type(value).__name__}.")
    if not 0 <= value <= 1:
        raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
    return value


class KerasFunctionMetric(MeanMetricWrapper):
    """The mean of one Keras function over every sample: the base of the classes that are a
    `MeanMetricWrapper` in Keras. A subclass names its kernel; the constructor's Keras arguments go to it."""

    higher_is_better: bool | None = False
    _kernel: Callable[..., torch.Tensor]

    def __init__(self, name: str | None, dtype: Any, fn_kwargs: dict[str, Any], **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - _TORCHMETRICS_KWARGS - {"torchmetrics_order"})
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s): {', '.join(unknown)}.")
        for key, value in fn_kwargs.items():
            setattr(self, key, value)
        name = name or _snake_case(type(self).__name__)
        super().__init__(type(self)._kernel, name=name, dtype=dtype, **fn_kwargs, **kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["fn"]  # the class is its definition
        return config


register(Sum)
