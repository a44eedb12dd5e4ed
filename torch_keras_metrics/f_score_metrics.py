"""Keras 3's F-scores (`keras.metrics.FBetaScore`, `keras.metrics.F1Score`) as stateful torch metrics.

Like Keras (`keras/src/metrics/f_score_metrics.py`), the states are four sums per class (or four scalars for
`average="micro"`): true positives, false positives, false negatives and the support (`intermediate_weights`,
the weighted sum of `y_true`). Keras creates them from the first batch's number of classes; so do these
metrics: before the first update a per-class metric has no states, and a refused first batch leaves it so.
The sums are float64.

>>> import torch
>>> m = F1Score(average="macro")
>>> m.update_state(torch.tensor([[1, 0], [0, 1]]), torch.tensor([[0.9, 0.1], [0.8, 0.2]]))
>>> m.result()
tensor(0.3333)
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from . import functional as _F
from ._checks import as_tensor
from .metrics import StatefulMetric, register

__all__ = ["FBetaScore", "F1Score", "fbeta_counts", "fbeta_from_counts"]

_EPSILON = 1e-7  # keras.backend.epsilon()
_AVERAGES = (None, "micro", "macro", "weighted")
_STATE_NAMES = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")


def _check_inputs(y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: Any) -> torch.Tensor | None:
    """Keras' 2-D `(batch_size, num_classes)` rule, one shape for both, and one weight per sample."""
    if y_pred.dim() != 2 or y_true.dim() != 2:
        raise ValueError(
            "FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
            f"`y_pred` {tuple(y_pred.shape)} and `y_true` {tuple(y_true.shape)}."
        )
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"`y_true` of shape {tuple(y_true.shape)} and `y_pred` of shape {tuple(y_pred.shape)} must have the "
            "same shape (batch_size, num_classes): y_true is one (multi-)hot row per sample."
        )
    if y_pred.shape[1] == 0:
        raise ValueError(f"`y_pred` has shape {tuple(y_pred.shape)}: its last axis (the classes) is empty.")
    if sample_weight is None:
        return None
    weight = as_tensor(sample_weight, "sample_weight", y_pred.device)
    if weight.dim() > 1 or (weight.dim() == 1 and weight.shape[0] not in (1, y_pred.shape[0])):
        raise ValueError(
            f"`sample_weight` of shape {tuple(weight.shape)} does not fit `y_pred` of shape {tuple(y_pred.shape)}: "
            f"the F-scores take one weight per sample, shape ({y_pred.shape[0]},), or one for the batch."
        )
    return weight.to(torch.float64)


def fbeta_counts(
    y_true: Any,
    y_pred: Any,
    sample_weight: Any = None,
    threshold: float | None = None,
    micro: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch's float64 `(true_positives, false_positives, false_negatives, support)`, per class (or summed
    over classes when `micro`), as `keras.metrics.FBetaScore.update_state` adds them.

    `y_pred` is read in `dtype` (Keras' metric dtype). A class is predicted when its score is `> threshold`;
    with `threshold=None`, when it equals the row's maximum (every tied class) unless that maximum is within
    1e-9 of 0. `y_true` may hold soft labels: the counts are sums of products, as in Keras.

    >>> fbeta_counts(torch.tensor([[1, 0, 1]]), torch.tensor([[0.7, 0.7, 0.1]]))
    (tensor([1., 0., 0.], dtype=torch.float64), tensor([0., 1., 0.], dtype=torch.float64), \
tensor([0., 0., 1.], dtype=torch.float64), tensor([1., 0., 1.], dtype=torch.float64))
    """
    y_pred = as_tensor(y_pred, "y_pred")
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    weight = _check_inputs(y_true, y_pred, sample_weight)
    return _counts(y_true, y_pred, weight, threshold, micro, dtype)


def _counts(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    weight: torch.Tensor | None,
    threshold: float | None,
    micro: bool,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if y_pred.dtype != dtype:
        y_pred = y_pred.to(dtype)
    if (weight is None or weight.shape == y_pred.shape[:1]) and _F.use_compiled(y_pred, "fbeta_counts"):
        # Large inputs: one compiled pass for the row maxima and one for the sums, no (N, C) temporaries.
        return _F.run_compiled("fbeta_counts", _counts_fused, _counts_eager, y_true, y_pred, weight, threshold, micro)
    return _counts_eager(y_true, y_pred, weight, threshold, micro)


def _counts_fused(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    weight: torch.Tensor | None,
    threshold: float | None,
    micro: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`_counts_eager` written for the compiler: elementwise float64 products it fuses into its sums."""
    if threshold is None:
        top = y_pred.amax(-1, keepdim=True)
        predicted = (y_pred >= top) & (top.abs() > 1e-9)
    else:
        predicted = y_pred > threshold
    # Per-class sums over the batch in float32 (float64 inputs stay float64): a column sum in float64 costs
    # several times more here, and Keras itself sums in float32. 0/1 predictions and one-hot labels stay exact
    # (up to 2**24 rows in one batch); the float64 states then add the batches up.
    wide = torch.float64 if micro or y_pred.dtype == torch.float64 else torch.float32
    p = predicted.to(wide)
    t = y_true.to(wide)
    if weight is not None:
        t = t * weight[:, None]
        p = p * weight[:, None]
    hits = torch.where(predicted, t, 0.0)
    if micro:
        tp, pp, support = hits.sum(), p.sum(), t.sum()
    else:
        tp, pp, support = hits.sum(0).double(), p.sum(0).double(), t.sum(0).double()
    return tp, pp - tp, support - tp, support


def _counts_eager(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    weight: torch.Tensor | None,
    threshold: float | None,
    micro: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if threshold is None:
        top = y_pred.amax(-1, keepdim=True)
        # A predicted class equals the row's maximum, so Keras' `abs(y_pred) > 1e-9` is a test of that maximum:
        # done on (N, 1) instead of (N, C).
        predicted = (y_pred >= top) & (top.abs() > 1e-9)
    else:
        predicted = y_pred > threshold
    if y_true.dtype == torch.bool:
        hits = predicted & y_true
    else:
        hits = torch.where(predicted, y_true, 0)
    if weight is None or weight.dim() == 0 or weight.shape[0] == 1 != y_pred.shape[0]:
        dims = None if micro else 0
        tp = _sum(hits, dims)
        pp = _sum(predicted, dims)
        support = _sum(y_true, dims)
        if weight is not None:  # one weight for the batch
            w = weight.reshape(())
            tp, pp, support = tp * w, pp * w, support * w
    elif micro:
        tp = weight @ _sum(hits, 1)
        pp = weight @ _sum(predicted, 1)
        support = weight @ _sum(y_true, 1)
    else:
        tp = weight @ hits.to(torch.float64)
        pp = weight @ predicted.to(torch.float64)
        support = weight @ y_true.to(torch.float64)
    return tp, pp - tp, support - tp, support


def _sum(x: torch.Tensor, dim: int | None) -> torch.Tensor:
    """A float64 sum (bools counted exactly in int64 first)."""
    if x.dtype == torch.bool:
        counted = torch.count_nonzero(x) if dim is None else torch.count_nonzero(x, dim=dim)
        return counted.to(torch.float64)
    return x.sum(dtype=torch.float64) if dim is None else x.sum(dim, dtype=torch.float64)


def fbeta_from_counts(
    true_positives: torch.Tensor,
    false_positives: torch.Tensor,
    false_negatives: torch.Tensor,
    support: torch.Tensor,
    beta: float = 1.0,
    average: str | None = None,
) -> torch.Tensor:
    """Keras' F-beta score from the counts, with its 1e-7 in every denominator: one value per class for
    `average=None`, their mean for `"macro"` (and `"micro"`, whose counts are already summed), their mean
    weighted by support for `"weighted"`.

    >>> tp, fp, fn, sup = (torch.tensor(x, dtype=torch.float64) for x in ([1., 2.], [1., 0.], [0., 2.], [1., 4.]))
    >>> fbeta_from_counts(tp, fp, fn, sup), fbeta_from_counts(tp, fp, fn, sup, average="weighted")
    (tensor([0.6667, 0.6667], dtype=torch.float64), tensor(0.6667, dtype=torch.float64))
    """
    precision = true_positives / (true_positives + false_positives + _EPSILON)
    recall = true_positives / (true_positives + false_negatives + _EPSILON)
    b2 = beta**2
    score = precision * recall / (b2 * precision + recall + _EPSILON) * (1 + b2)
    if average == "weighted":
        return (score * (support / (support.sum() + _EPSILON))).sum()
    if average is not None:
        return score.mean()
    return score


def _check_average(average: Any) -> str | None:
    if average not in _AVERAGES:
        raise ValueError(
            f"Invalid `average` argument value. Expected one of: {{None, 'micro', 'macro', 'weighted'}}. "
            f"Received: average={average!r}"
        )
    return average


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"Invalid `{name}` argument value: a real number, got {value!r} of type {type(value).__name__}."
        )
    return float(value)


class FBetaScore(StatefulMetric):
    """The F-beta score, `(1 + beta**2) * precision * recall / (beta**2 * precision + recall)`, per class or
    averaged (`keras.metrics.FBetaScore`).

    `y_true` and `y_pred` are `(batch_size, num_classes)`; `sample_weight` is one weight per sample.
    `threshold=None` predicts each row's maximum (all tied classes), a float `t` in (0, 1] predicts
    `y_pred > t`. `average`: None (one score per class), "micro", "macro" or "weighted" (by support).

    >>> m = FBetaScore(beta=2.0, threshold=0.5)
    >>> m.update_state(torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
    ...                torch.tensor([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]))
    >>> m.result()
    tensor([0.3846, 0.9091, 0.8333])
    """

    higher_is_better = True
    plot_lower_bound, plot_upper_bound = 0.0, 1.0

    def __init__(
        self,
        average: str | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str = "fbeta_score",
        dtype: Any = None,
        **torchmetrics_kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, **torchmetrics_kwargs)
        self.average = _check_average(average)
        self.beta = _check_real(beta, "beta")
        if not self.beta > 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}")
        if threshold is not None:
            threshold = _check_real(threshold, "threshold")
            if not 0.0 < threshold <= 1.0:
                raise ValueError(
                    f"Invalid `threshold` argument value. It should verify 0 < threshold <= 1. Received: "
                    f"threshold={threshold}"
                )
        self.threshold = threshold
        if self.average == "micro":  # scalar states: their shape does not wait for the first batch
            self._build(())

    @property
    def built(self) -> bool:
        """Whether the states exist (after the first batch, or from the start for `average="micro"`)."""
        return bool(self._sum_states)

    def _build(self, shape: tuple[int, ...] | torch.Size) -> None:
        for state in _STATE_NAMES:
            self.add_sum_state(state, tuple(shape))
            self._buffers[state] = self._buffers[state].to(self.device)

    # ---------------------------------------------------------------- the two definitions
    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:
        """This batch's `(true_positives, false_positives, false_negatives, intermediate_weights)`."""
        device = self.device
        y_pred = as_tensor(y_pred, "y_pred", device)
        y_true = as_tensor(y_true, "y_true", device)
        weight = _check_inputs(y_true, y_pred, sample_weight)
        if self.built and self.average != "micro":
            classes = self._buffers[_STATE_NAMES[0]].shape[0]
            if y_pred.shape[1] != classes:
                raise ValueError(
                    f"`y_pred` of shape {tuple(y_pred.shape)} has {y_pred.shape[1]} classes, but this metric's "
                    f"states were built for {classes} by its first batch."
                )
        return _counts(y_true, y_pred, weight, self.threshold, self.average == "micro", self._result_dtype)

    def compute_result(self, *states: torch.Tensor) -> torch.Tensor:
        return fbeta_from_counts(*states, beta=self.beta, average=self.average)

    # ---------------------------------------------------------------- states built by the first batch
    def _add(self, parts: tuple[torch.Tensor, ...]) -> None:
        if not self.built:
            self._build(parts[0].shape)
        super()._add(parts)

    def result(self, sync: bool = True) -> torch.Tensor:
        """The score over every batch so far (see `StatefulMetric.result`); before any batch, 0 (an empty
        vector for `average=None`, whose number of classes is not known yet)."""
        if not self.built:
            return torch.zeros((0,) if self.average is None else (), dtype=self._result_dtype, device=self.device)
        return super().result(sync)

    def state(self) -> torch.Tensor:
        if not self.built:
            return torch.zeros(0, dtype=torch.float64, device=self.device)
        return super().state()

    def load_state(self, state: torch.Tensor) -> None:
        if not self.built and state.numel():
            if state.numel() % len(_STATE_NAMES):
                raise ValueError(f"`state` of {state.numel()} values is not four states of one number of classes.")
            self._build((state.numel() // len(_STATE_NAMES),))
        super().load_state(state)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        first = state_dict.get(prefix + _STATE_NAMES[0])
        if not self.built and first is not None:
            self._build(first.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """Keras' config.

        >>> FBetaScore(average="macro", beta=0.5).get_config()
        {'name': 'fbeta_score', 'dtype': 'float32', 'average': 'macro', 'beta': 0.5, 'threshold': None}
        """
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """The F-1 score, `2 * precision * recall / (precision + recall)` (`keras.metrics.F1Score`): `FBetaScore`
    with `beta=1`.

    >>> m = F1Score(threshold=0.5)
    >>> m.update_state(torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
    ...                torch.tensor([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]))
    >>> m.result()
    tensor([0.5000, 0.8000, 0.6667])
    """

    def __init__(
        self,
        average: str | None = None,
        threshold: float | None = None,
        name: str = "f1_score",
        dtype: Any = None,
        **torchmetrics_kwargs: Any,
    ) -> None:
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype, **torchmetrics_kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["beta"]
        return config


register(FBetaScore)
register(F1Score)
