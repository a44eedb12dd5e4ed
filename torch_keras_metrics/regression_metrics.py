"""Keras' regression metrics: the mean of a per-sample error, RMSE, cosine similarity and R2.

Each `MeanMetricWrapper` class here averages the Keras loss function of the same name (from
`torch_keras_metrics.losses`), which reduces the LAST axis: inputs of shape (N, D) give one value per sample,
and 1-D inputs of shape (N,) give one value for the whole batch, counted once, as in Keras.
`RootMeanSquaredError` is the square root of the (weighted) mean of the squared errors, element by element
(1-D inputs count N). `R2Score` keeps its own sums per output, built from the first batch's shape.

>>> import torch
>>> m = MeanSquaredError()
>>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
>>> m.result()
tensor(0.2500)
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from . import losses as L
from ._checks import as_tensor, broadcast_shape, broadcasts_to, squeeze_or_expand_to_same_rank
from .metrics import _TORCHMETRICS_KWARGS, StatefulMetric, register
from .reduction_metrics import KerasFunctionMetric, check_axis

__all__ = [
    "MeanSquaredError",
    "MeanAbsoluteError",
    "RootMeanSquaredError",
    "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError",
    "CosineSimilarity",
    "LogCoshError",
    "R2Score",
    "cosine_similarity",
]

_HALF = (torch.float16, torch.bfloat16)


# --------------------------------------------------------------------------- kernels


def _plain_pair(y_true: Any, y_pred: Any) -> bool:
    """Tensors of one floating dtype, shape and device, at least 1-d: the case the in-place kernels take."""
    return (
        isinstance(y_true, torch.Tensor)
        and isinstance(y_pred, torch.Tensor)
        and y_pred.is_floating_point()
        and y_pred.dtype not in _HALF
        and y_true.dtype == y_pred.dtype
        and y_true.shape == y_pred.shape
        and y_pred.dim() >= 1
        and y_true.device == y_pred.device
    )


def _squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`losses.mean_squared_error`'s numbers, with one temporary instead of two (a metric needs no gradient)."""
    if not _plain_pair(y_true, y_pred):
        return L.mean_squared_error(y_true, y_pred)
    with torch.no_grad():
        diff = torch.sub(y_true, y_pred)
        return diff.square_().mean(-1)


def _absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`losses.mean_absolute_error`'s numbers, with one temporary instead of two."""
    if not _plain_pair(y_true, y_pred):
        return L.mean_absolute_error(y_true, y_pred)
    with torch.no_grad():
        diff = torch.sub(y_true, y_pred)
        return diff.abs_().mean(-1)


def cosine_similarity(y_true: Any, y_pred: Any, axis: Any = -1) -> torch.Tensor:
    """`sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)`: 1 for the same direction, 0 for a zero vector
    (`keras.metrics.cosine_similarity`, the loss's value with the opposite sign).

    >>> cosine_similarity(torch.tensor([[0., 1.], [1., 1.], [1., 1.]]), torch.tensor([[1., 0.], [1., 1.], [-1., -1.]]))
    tensor([ 0.0000,  1.0000, -1.0000])
    """
    return -L.cosine_similarity(y_true, y_pred, axis)


# --------------------------------------------------------------------------- the means of a function


class MeanSquaredError(KerasFunctionMetric):
    """The mean of `mean((y_true - y_pred) ** 2, axis=-1)` (`keras.metrics.MeanSquaredError`).

    >>> m = MeanSquaredError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> m.result()
    tensor(0.5000)
    """

    _kernel = staticmethod(_squared_error)

    def __init__(self, name: str = "mean_squared_error", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


class MeanAbsoluteError(KerasFunctionMetric):
    """The mean of `mean(|y_true - y_pred|, axis=-1)` (`keras.metrics.MeanAbsoluteError`).

    >>> m = MeanAbsoluteError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> m.result()
    tensor(0.2500)
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> m.result()
    tensor(0.5000)
    """

    _kernel = staticmethod(_absolute_error)

    def __init__(self, name: str = "mean_absolute_error", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


class MeanAbsolutePercentageError(KerasFunctionMetric):
    """The mean of `100 * mean(|(y_true - y_pred) / max(|y_true|, 1e-7)|, axis=-1)`
    (`keras.metrics.MeanAbsolutePercentageError`).

    >>> m = MeanAbsolutePercentageError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> m.result()
    tensor(2.5000e+08)
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> m.result()
    tensor(5.0000e+08)
    """

    _kernel = staticmethod(L.mean_absolute_percentage_error)

    def __init__(self, name: str = "mean_absolute_percentage_error", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


class MeanSquaredLogarithmicError(KerasFunctionMetric):
    """The mean of `mean((log(y_pred + 1) - log(y_true + 1)) ** 2, axis=-1)`, both clipped at 1e-7 first
    (`keras.metrics.MeanSquaredLogarithmicError`).

    >>> m = MeanSquaredLogarithmicError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> round(m.result().item(), 6)
    0.120113
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> round(m.result().item(), 6)
    0.240226
    """

    _kernel = staticmethod(L.mean_squared_logarithmic_error)

    def __init__(self, name: str = "mean_squared_logarithmic_error", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


class CosineSimilarity(KerasFunctionMetric):
    """The mean cosine similarity along `axis` (`keras.metrics.CosineSimilarity`).

    >>> m = CosineSimilarity(axis=1)
    >>> m.update_state([[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]])
    >>> round(m.result().item(), 6)
    0.5
    >>> m.reset_state()
    >>> m.update_state([[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]], sample_weight=[0.3, 0.7])
    >>> round(m.result().item(), 6)
    0.7
    """

    higher_is_better = True
    _kernel = staticmethod(cosine_similarity)

    def __init__(self, name: str = "cosine_similarity", dtype: Any = None, axis: Any = -1, **kwargs: Any) -> None:
        super().__init__(name, dtype, {"axis": check_axis(axis, tuples=True)}, **kwargs)


class LogCoshError(KerasFunctionMetric):
    """The mean of `mean(log(cosh(y_pred - y_true)), axis=-1)` (`keras.metrics.LogCoshError`, named `logcosh`).

    >>> m = LogCoshError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> round(m.result().item(), 6)
    0.108445
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> round(m.result().item(), 6)
    0.21689
    """

    _kernel = staticmethod(L.log_cosh)

    def __init__(self, name: str = "logcosh", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


# --------------------------------------------------------------------------- RMSE


def _squared_errors(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`(y_pred - y_true) ** 2` element by element, after Keras' squeeze-or-expand of a size-1 last axis."""
    y_pred = as_tensor(y_pred, "y_pred")
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = as_tensor(y_true, "y_true", y_pred.device).to(y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    broadcast_shape(y_true, y_pred, "y_true", "y_pred")
    with torch.no_grad():
        return torch.sub(y_pred, y_true).square_()


class RootMeanSquaredError(KerasFunctionMetric):
    """`sqrt` of the (weighted) mean of the squared errors, element by element (`keras.metrics.RootMeanSquaredError`).

    Keras' `Mean` of the squared errors: unlike `MeanSquaredError`, 1-D inputs count one sample per element,
    and weights may have the inputs' shape.

    >>> m = RootMeanSquaredError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> m.result()
    tensor(0.5000)
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> m.result()
    tensor(0.7071)
    """

    _kernel = staticmethod(_squared_errors)

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)

    def result(self, sync: bool = True) -> torch.Tensor:
        """`sqrt(total / count)`, or 0 before any sample."""
        return super().result(sync).sqrt()

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Add the batch and return its own RMSE."""
        value = super().forward(*args, **kwargs).sqrt()
        if torch.compiler.is_compiling():
            self._forward_cache = value
        else:
            self.__dict__["_forward_cache"] = value
        return value


# --------------------------------------------------------------------------- R2


_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")
_R2_STATES = ("squared_sum", "sum", "total_mse", "count")


class R2Score(StatefulMetric):
    """The coefficient of determination per output, aggregated over outputs (`keras.metrics.R2Score`).

    Inputs are 2-D `(batch_size, outputs)`; the states (weighted sums of `y_true`, `y_true**2` and the squared
    residuals, the weights' sum per output, and the number of ELEMENTS seen) are sized from the first batch.
    `class_aggregation` is `"uniform_average"`, `"variance_weighted_average"` or None (one score per output);
    `num_regressors > 0` gives the adjusted R2, falling back to the plain one when it is at least the
    number of elements minus one (as Keras does, without Keras' warning, which would need a host read).

    >>> m = R2Score()
    >>> m.update_state([[1.0], [4.0], [3.0]], [[2.0], [4.0], [4.0]])
    >>> round(m.result().item(), 6)
    0.571429
    """

    higher_is_better = True

    def __init__(
        self,
        class_aggregation: str | None = "uniform_average",
        num_regressors: int = 0,
        name: str = "r2_score",
        dtype: Any = None,
        **torchmetrics_kwargs: Any,
    ) -> None:
        if class_aggregation not in _AGGREGATIONS:
            raise ValueError(
                f"Invalid value for argument `class_aggregation`. Expected one of {_AGGREGATIONS}. "
                f"Received: class_aggregation={class_aggregation!r}"
            )
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, numbers.Integral):
            raise TypeError(f"`num_regressors` must be an integer >= 0, got {num_regressors!r}.")
        if num_regressors < 0:
            raise ValueError(
                f"Invalid value for argument `num_regressors`. Expected a value >= 0. Received: "
                f"num_regressors={num_regressors}"
            )
        unknown = sorted(set(torchmetrics_kwargs) - _TORCHMETRICS_KWARGS)
        if unknown:
            raise TypeError(f"R2Score got unexpected keyword argument(s): {', '.join(unknown)}.")
        super().__init__(name=name, dtype=dtype, **torchmetrics_kwargs)
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)
        self.add_sum_state("num_samples", dtype=torch.int64)

    @property
    def built(self) -> bool:
        """Whether the per-output states exist (after the first batch)."""
        return "sum" in self._buffers

    def _build(self, outputs: int) -> None:
        device = self._buffers["num_samples"].device
        for state in _R2_STATES:
            self.add_sum_state(state, (outputs,))
            self._buffers[state] = self._buffers[state].to(device)

    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:
        """This batch's element count and per-output sums; builds the states on the first batch."""
        device = self._buffers["num_samples"].device
        y_pred = as_tensor(y_pred, "y_pred", device).detach()
        if not y_pred.is_floating_point():
            y_pred = y_pred.to(torch.float32)
        y_true = as_tensor(y_true, "y_true", device).detach().to(y_pred.dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if y_pred.dim() != 2 or y_true.dim() != 2:
            raise ValueError(
                "R2Score expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
                f"`y_pred` {tuple(y_pred.shape)} and `y_true` {tuple(y_true.shape)}."
            )
        if y_true.shape != y_pred.shape:
            raise ValueError(
                f"R2Score: `y_true` of shape {tuple(y_true.shape)} and `y_pred` of shape {tuple(y_pred.shape)} "
                "must have the same shape."
            )
        outputs = y_pred.shape[-1]
        if self.built and self._buffers["sum"].shape[0] != outputs:
            raise ValueError(
                f"R2Score was built for {self._buffers['sum'].shape[0]} outputs, but `y_pred` of shape "
                f"{tuple(y_pred.shape)} has {outputs}."
            )
        t = y_true.to(torch.float64)
        residual = (t - y_pred.to(torch.float64)).square_()
        if sample_weight is None:
            total, squared = t.sum(0), t.square().sum(0)
            residual = residual.sum(0)
            count = torch.full((outputs,), float(t.shape[0]), dtype=torch.float64, device=t.device)
        else:
            weight = as_tensor(sample_weight, "sample_weight", device).to(torch.float64)
            if weight.dim() == 1:
                weight = weight.unsqueeze(1)
            if not broadcasts_to(weight.shape, t.shape):
                raise ValueError(
                    f"`sample_weight` of shape {tuple(torch.as_tensor(sample_weight).shape)} does not broadcast to "
                    f"`y_true` of shape {tuple(y_true.shape)}."
                )
            weight = weight.expand(t.shape)
            weighted = t * weight
            total, squared = weighted.sum(0), (t * weighted).sum(0)
            residual = (residual * weight).sum(0)
            count = weight.sum(0)
        if not self.built:
            self._build(outputs)
        num_samples = torch.full((), y_true.numel(), dtype=torch.int64, device=t.device)
        return num_samples, squared, total, residual, count

    def compute_result(self, num_samples: torch.Tensor, *sums: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not sums:  # nothing seen yet: Keras has no states to read; no data gives NaN, as after its reset
            return torch.full((), float("nan"), dtype=torch.float64, device=num_samples.device)
        squared, total, residual, count = sums
        mean = total / count
        spread = squared - total * mean
        raw = 1 - residual / spread
        raw = torch.where(torch.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (spread * raw).sum() / spread.sum()
        else:
            score = raw
        if self.num_regressors:
            n, p = num_samples.to(torch.float64), self.num_regressors
            adjusted = 1 - (1 - score) * (n - 1) / (n - p - 1)
            score = torch.where(p < n - 1, adjusted, score)
        return score

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # A checkpoint of a built metric builds this one, so that its states have somewhere to go.
        if not self.built and prefix + "sum" in state_dict:
            self._build(state_dict[prefix + "sum"].shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_aggregation": self.class_aggregation,
            "num_regressors": self.num_regressors,
        }


register(MeanSquaredError)
register(MeanAbsoluteError)
register(MeanAbsolutePercentageError, "mape", "MAPE")
register(MeanSquaredLogarithmicError, "msle", "MSLE")
register(RootMeanSquaredError)
register(CosineSimilarity)
register(LogCoshError)
register(R2Score)
