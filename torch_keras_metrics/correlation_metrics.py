"""Keras' correlation metrics: the mean Pearson and concordance correlation along an axis.

Each sample's coefficient is computed along `axis` (default the last) and averaged over samples like any
`MeanMetricWrapper`: 1-D inputs of shape (N,) give one coefficient for the whole batch, counted once.
The functions are Keras' formulas as Keras 3.15 writes them, including the concordance's covariance term
`(y_true - mean(y_pred)) * (y_pred - mean(y_pred))`, and population (not sample) variances.

>>> import torch
>>> pearson_correlation(torch.tensor([[0, 1, 0.5], [1, 1, 0.2]]), torch.tensor([[0.1, 0.9, 0.5], [1, 0.9, 0.2]]))
tensor([1.0000, 0.9934])
"""

from __future__ import annotations

from typing import Any

import torch

from . import losses as L
from ._checks import squeeze_or_expand_to_same_rank
from .metrics import register
from .reduction_metrics import KerasFunctionMetric, check_axis

__all__ = ["PearsonCorrelation", "ConcordanceCorrelation", "pearson_correlation", "concordance_correlation"]

_HALF = (torch.float16, torch.bfloat16)


def _dims(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


def _mean(x: torch.Tensor, axis: Any) -> torch.Tensor:
    """`ops.mean(x, axis, keepdims=True)`: half precision averaged in float32 and rounded once."""
    if x.dtype in _HALF:
        return x.float().mean(_dims(axis), keepdim=True).to(x.dtype)
    return x.mean(_dims(axis), keepdim=True)


def _var(x: torch.Tensor, axis: Any) -> torch.Tensor:
    """`ops.var(x, axis, keepdims=True)`: the population variance (computed in float32 for half precision)."""
    wide = x.float() if x.dtype in _HALF else x
    return torch.var(wide, dim=_dims(axis), keepdim=True, correction=0).to(x.dtype)


def _inputs(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_true, y_pred = L.pair(y_true, y_pred)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def pearson_correlation(y_true: Any, y_pred: Any, axis: Any = -1) -> torch.Tensor:
    """`mean(z(y_true) * z(y_pred), axis)`, `z` the values centred and divided by their population std along `axis`
    (`keras.metrics.pearson_correlation`)."""
    y_true, y_pred = _inputs(y_true, y_pred)
    y_true_norm = y_true - _mean(y_true, axis)
    y_pred_norm = y_pred - _mean(y_pred, axis)
    y_true_norm = y_true_norm / torch.std(y_true_norm, dim=_dims(axis), keepdim=True, correction=0)
    y_pred_norm = y_pred_norm / torch.std(y_pred_norm, dim=_dims(axis), keepdim=True, correction=0)
    return L.axis_mean(y_true_norm * y_pred_norm, axis)


def concordance_correlation(y_true: Any, y_pred: Any, axis: Any = -1) -> torch.Tensor:
    """`mean(2 * (y_true - mean(y_pred)) * (y_pred - mean(y_pred)) / (var(y_true) + var(y_pred)
    + (mean(y_true) - mean(y_pred)) ** 2 + 1e-7), axis)` (`keras.metrics.concordance_correlation`).

    >>> y_true, y_pred = torch.tensor([[0, 1, 0.5], [1, 1, 0.2]]), torch.tensor([[0.1, 0.9, 0.5], [1, 0.9, 0.2]])
    >>> concordance_correlation(y_true, y_pred)
    tensor([0.9756, 0.9877])
    """
    y_true, y_pred = _inputs(y_true, y_pred)
    y_true_mean = _mean(y_true, axis)
    y_pred_mean = _mean(y_pred, axis)
    y_true_var = _var(y_true - y_true_mean, axis)
    y_pred_var = _var(y_pred - y_pred_mean, axis)
    covar = (y_true - y_pred_mean) * (y_pred - y_pred_mean)
    norm = y_true_var + y_pred_var + (y_true_mean - y_pred_mean).square()
    return L.axis_mean(2 * covar / (norm + L.EPSILON), axis)


class PearsonCorrelation(KerasFunctionMetric):
    """The mean Pearson correlation coefficient along `axis` (`keras.metrics.PearsonCorrelation`).

    >>> m = PearsonCorrelation(axis=-1)
    >>> m.update_state([[0, 1, 0.5], [1, 1, 0.2]], [[0.1, 0.9, 0.5], [1, 0.9, 0.2]])
    >>> round(m.result().item(), 6)
    0.9967
    """

    higher_is_better = True
    _kernel = staticmethod(pearson_correlation)

    def __init__(self, name: str = "pearson_correlation", dtype: Any = None, axis: Any = -1, **kwargs: Any) -> None:
        super().__init__(name, dtype, {"axis": check_axis(axis, tuples=True)}, **kwargs)


class ConcordanceCorrelation(KerasFunctionMetric):
    """The mean concordance correlation coefficient along `axis` (`keras.metrics.ConcordanceCorrelation`).

    >>> m = ConcordanceCorrelation(axis=-1)
    >>> m.update_state([[0, 1, 0.5], [1, 1, 0.2]], [[0.1, 0.9, 0.5], [1, 0.9, 0.2]])
    >>> round(m.result().item(), 6)
    0.981632
    """

    higher_is_better = True
    _kernel = staticmethod(concordance_correlation)

    def __init__(self, name: str = "concordance_correlation", dtype: Any = None, axis: Any = -1, **kwargs: Any) -> None:
        super().__init__(name, dtype, {"axis": check_axis(axis, tuples=True)}, **kwargs)


register(PearsonCorrelation)
register(ConcordanceCorrelation)
