"""Keras 3's confusion metrics: the four counts, Precision, Recall, AUC and the four "X at Y" metrics.

Every class here shares one kernel, `confusion_counts`: each score falls in one bucket of the thresholds
(Keras' evenly spaced index `ceil(p * (n - 1)) - 1`, or a binary search among any other thresholds), one
weighted histogram counts the buckets of positives and negatives, and a reversed cumulative sum turns the
buckets into counts at every threshold. It is one pass over the inputs, never a (samples x thresholds)
comparison, and reads no value on the host (docs/semantics.md §22).

>>> import torch
>>> m = AUC(num_thresholds=3)
>>> m.update_state(torch.tensor([0, 0, 1, 1]), torch.tensor([0.0, 0.5, 0.3, 0.9]))
>>> m.result()
tensor(0.7500)
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np
import torch

from . import functional as _F
from ._checks import as_tensor, broadcast_shapes, broadcasts_to, squeeze_or_expand_to_same_rank
from .metrics import StatefulMetric, register

__all__ = [
    "AUC",
    "FalseNegatives",
    "FalsePositives",
    "Precision",
    "PrecisionAtRecall",
    "Recall",
    "RecallAtPrecision",
    "SensitivityAtSpecificity",
    "SpecificityAtSensitivity",
    "TrueNegatives",
    "TruePositives",
    "auc_from_counts",
    "confusion_counts",
    "is_evenly_distributed",
]

NEG_INF = -1e10  # Keras' threshold for top_k: every kept score is above it
EPSILON = 1e-7  # Keras' backend.epsilon(): AUC's end thresholds are -EPSILON and 1 + EPSILON


# --------------------------------------------------------------------------- thresholds


def _to_list(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return [x]


def _check_threshold_values(thresholds: list, name: str = "thresholds", in_unit: bool = True) -> list[float]:
    out = []
    for t in thresholds:
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"`{name}` must be real numbers, got {t!r} of type {type(t).__name__} in {thresholds!r}.")
        out.append(float(t))
    if in_unit:
        bad = [t for t in out if not 0.0 <= t <= 1.0]
        if bad:
            raise ValueError(f"`{name}` values must be in [0, 1]. Received: {bad}")
    return out


def is_evenly_distributed(thresholds: Any) -> bool:
    """Keras' test for its bucketed path: three or more thresholds close to `i / (n - 1)` (numpy's
    `allclose`, atol 1e-7, rtol 1e-5). Such thresholds are then used only through their number.

    >>> [is_evenly_distributed(t) for t in ([0.0, 0.5, 1.0], [0.0, 1.0], [0.1, 0.5, 1.0])]
    [True, False, False]
    """
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(np.asarray(thresholds, dtype=np.float64), even, atol=EPSILON))


class Thresholds:
    """How a metric's thresholds are applied: `n` evenly spaced ones through the bucket index (with or
    without AUC's epsilon ends), or any list through a binary search, in float32 as Keras compares."""

    def __init__(self, values: list[float], evenly: bool, with_epsilon: bool = False) -> None:
        self.values = [float(v) for v in values]
        self.evenly = bool(evenly)
        self.with_epsilon = bool(with_epsilon)
        self.n = len(self.values)
        v32 = np.asarray(self.values, dtype=np.float32)
        order = np.argsort(v32, kind="stable")
        self.sorted = torch.from_numpy(v32[order].copy())
        rank = np.empty(self.n, dtype=np.int64)
        rank[order] = np.arange(self.n)
        self.rank = torch.from_numpy(rank)  # position of each threshold among the sorted ones
        self.identity = bool(np.array_equal(order, np.arange(self.n)))


# --------------------------------------------------------------------------- the kernel


def _as_labels(y_true: torch.Tensor) -> torch.Tensor:
    if y_true.dtype == torch.bool:
        return y_true
    if y_true.is_floating_point():
        # Keras casts labels to float32 before bool: a float64 1e-50 is a negative.
        return (y_true if y_true.dtype == torch.float32 else y_true.to(torch.float32)) != 0
    return y_true != 0


def _filter_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keras' `_filter_top_k`: the top k scores of each row kept, the others set to NEG_INF."""
    if k > scores.shape[-1]:
        raise ValueError(f"`top_k`={k} is larger than the last axis of `y_pred` of shape {tuple(scores.shape)}.")
    idx = torch.topk(scores, k).indices
    mask = torch.zeros_like(scores).scatter_(-1, idx, 1.0)
    return scores * mask + NEG_INF * (1 - mask)


def _prepare(
    y_true: Any,
    y_pred: Any,
    sample_weight: Any,
    top_k: int | None,
    class_id: int | None,
    label_weights: torch.Tensor | None,
    from_logits: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(bool labels, float32 scores, float32 weights or None), all of one shape, as Keras shapes them."""
    y_pred = as_tensor(y_pred, "y_pred").detach()
    y_true = as_tensor(y_true, "y_true", y_pred.device).detach()
    if from_logits:  # Keras' sigmoid runs in the scores' own dtype, then they are cast to float32
        y_pred = torch.sigmoid(y_pred if y_pred.is_floating_point() else y_pred.to(torch.float32))
    scores = y_pred if y_pred.dtype == torch.float32 else y_pred.to(torch.float32)
    labels = _as_labels(y_true)
    scores, labels = squeeze_or_expand_to_same_rank(scores, labels)
    if scores.shape != labels.shape:
        raise ValueError(
            f"`y_true` of shape {tuple(y_true.shape)} and `y_pred` of shape {tuple(y_pred.shape)} must have the "
            "same shape (up to a trailing axis of size 1)."
        )
    weight = None
    if sample_weight is not None:
        weight = as_tensor(sample_weight, "sample_weight", scores.device).detach().to(torch.float32).unsqueeze(-1)
        _, weight = squeeze_or_expand_to_same_rank(labels, weight, expand_rank_1=False)
    if top_k is not None:
        if scores.dim() == 0:
            raise ValueError("`top_k` needs `y_pred` with at least one axis, got a scalar.")
        scores = _filter_top_k(scores, top_k)
    if class_id is not None:
        if scores.dim() < 2:
            raise ValueError(
                "When class_id is provided, y_pred must be a 2D array with shape (num_samples, num_classes), "
                f"found shape: {tuple(scores.shape)}"
            )
        c = scores.shape[-1]
        if not -c <= class_id < c:
            raise ValueError(f"`class_id`={class_id} is out of range for `y_pred` of shape {tuple(y_pred.shape)}.")
        scores = scores[..., class_id, None]
        labels = labels[..., class_id, None]
    if weight is not None:
        if not broadcasts_to(weight.shape, scores.shape):
            raise ValueError(
                f"`sample_weight` of shape {tuple(torch.as_tensor(sample_weight).shape)} does not broadcast to "
                f"`y_pred` of shape {tuple(scores.shape)} (after Keras' squeeze/expand and `class_id`)."
            )
    if label_weights is not None:
        lw = label_weights.to(scores.device).unsqueeze(0)
        if broadcast_shapes(lw.shape, scores.shape) != scores.shape:
            raise ValueError(
                f"`label_weights` of shape {tuple(label_weights.shape)} does not broadcast to `y_pred` of shape "
                f"{tuple(scores.shape)}."
            )
        weight = lw if weight is None else weight * lw
    if weight is not None and weight.shape != scores.shape:
        weight = weight.expand(scores.shape)
    return labels, scores, weight


def _bucket_even(scores: torch.Tensor, n: int, with_epsilon: bool) -> torch.Tensor:
    """Keras' bucket `ceil(p * (n - 1)) - 1` of the clipped float32 score, shifted by one: 0 holds the
    scores below every threshold (and NaN, which Keras' segment sum drops), i + 1 those above i thresholds."""
    p = scores.clamp(0.0, 1.0)
    bucket = torch.ceil(p * float(n - 1))  # = Keras' bucket + 1
    if with_epsilon:
        bucket = bucket.clamp_min(1.0)
    bucket = torch.where(p == p, bucket, 0.0)
    return bucket.to(torch.int64)


def _bucket_sorted(scores: torch.Tensor, sorted_thresholds: torch.Tensor) -> torch.Tensor:
    """How many thresholds each score is strictly above (`p > t`, no clipping); NaN is above none."""
    if sorted_thresholds.numel() == 1:
        return (scores > sorted_thresholds[0]).to(torch.int64)
    idx = torch.searchsorted(sorted_thresholds, scores.reshape(-1).contiguous(), right=False).reshape(scores.shape)
    return torch.where(scores == scores, idx, 0)


def _histogram(index: torch.Tensor, weight: torch.Tensor | None, size: int) -> torch.Tensor:
    index = index.reshape(-1)
    if torch.compiler.is_compiling():  # bincount's size depends on values; index_add_ traces
        src = torch.ones_like(index) if weight is None else weight.reshape(-1).to(torch.float64)
        out_dtype = torch.int64 if weight is None else torch.float64
        return torch.zeros(size, dtype=out_dtype, device=index.device).index_add_(0, index, src)
    if weight is None:
        return torch.bincount(index, minlength=size)
    return torch.bincount(index, weights=weight.reshape(-1).to(torch.float64), minlength=size)


def _index_even(labels: torch.Tensor, scores: torch.Tensor, n: int, with_epsilon: bool, width: int) -> torch.Tensor:
    return _bucket_even(scores, n, with_epsilon) + labels.to(torch.int64) * width


def _index_sorted(
    labels: torch.Tensor, scores: torch.Tensor, sorted_thresholds: torch.Tensor, width: int
) -> torch.Tensor:
    return _bucket_sorted(scores, sorted_thresholds) + labels.to(torch.int64) * width


def _sums_one(labels: torch.Tensor, scores: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """One threshold, unweighted: (tp, predicted positive, positive). Eager `count_nonzero` of the three masks
    reads them at memory speed; a compiled bool reduction measured twice as slow on CPU (torch 2.13)."""
    pos = scores > threshold
    return torch.stack([torch.count_nonzero(pos & labels), torch.count_nonzero(pos), torch.count_nonzero(labels)])


def _sums_one_weighted(labels: torch.Tensor, scores: torch.Tensor, threshold: torch.Tensor, weight: torch.Tensor):
    w = weight.to(torch.float64)
    pos = scores > threshold
    return torch.stack(
        [
            torch.where(pos & labels, w, 0.0).sum(),
            torch.where(pos, w, 0.0).sum(),
            torch.where(labels, w, 0.0).sum(),
            w.sum(),
        ]
    )


def _one_threshold(labels, scores, weight, threshold):
    """`(tp, fp, tn, fn)` of shape (1,) at a single threshold: a reduction, no histogram needed."""
    if weight is None:
        sums = _sums_one(labels, scores, threshold).to(torch.float64)
        tp, pp, pos = sums[0:1], sums[1:2], sums[2:3]
        fp = pp - tp
        return tp, fp, (float(scores.numel()) - pos) - fp, pos - tp
    fn, name, args = _sums_one_weighted, "confusion_one_w", (labels, scores, threshold, weight)
    if _F.use_compiled(scores, name) and scores.dim() > 0:
        sums = _F.run_compiled(name, fn, fn, *args)
    else:
        sums = fn(*args)
    sums = sums.to(torch.float64)
    total = sums[3] if weight is not None else float(scores.numel())
    tp, pp, pos = sums[0:1], sums[1:2], sums[2:3]
    fp = pp - tp
    return tp, fp, (total - pos) - fp, pos - tp


def confusion_counts(
    y_true: Any,
    y_pred: Any,
    thresholds: Thresholds | Any = 0.5,
    sample_weight: Any = None,
    top_k: int | None = None,
    class_id: int | None = None,
    multi_label: bool = False,
    label_weights: Any = None,
    from_logits: bool = False,
    sorted_thresholds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(tp, fp, tn, fn)` at each threshold, float64 of shape (T,) (or (T, L) with `multi_label`), as Keras'
    `update_confusion_matrix_variables` counts them: a score counts as positive at `t` when `p > t`, any
    nonzero label is positive, three or more evenly spaced thresholds take Keras' bucketed rule.

    >>> tp, fp, tn, fn = confusion_counts(torch.tensor([0, 1, 1, 1]), torch.tensor([1.0, 0.0, 1.0, 1.0]))
    >>> torch.stack([tp, fp, tn, fn]).T
    tensor([[2., 1., 0., 1.]], dtype=torch.float64)
    """
    if not isinstance(thresholds, Thresholds):
        values = _check_threshold_values(_to_list(thresholds), in_unit=False)
        thresholds = Thresholds(values, is_evenly_distributed(values), values[0] < 0.0 or values[-1] > 1.0)
    lw = None
    if label_weights is not None and not multi_label:
        lw = as_tensor(label_weights, "label_weights", dtype=torch.float32)
    labels, scores, weight = _prepare(y_true, y_pred, sample_weight, top_k, class_id, lw, from_logits)
    n = thresholds.n
    if n == 1 and not thresholds.evenly and not multi_label:
        st = sorted_thresholds if sorted_thresholds is not None else thresholds.sorted.to(scores.device)
        return _one_threshold(labels, scores, weight, st[0])
    width = n + 1  # buckets per label value: 0..n
    if thresholds.evenly:
        args: tuple = (labels, scores, n, thresholds.with_epsilon, width)
        fn: Callable = _index_even
        name = f"confusion_even_{int(thresholds.with_epsilon)}"
    else:
        st = sorted_thresholds if sorted_thresholds is not None else thresholds.sorted.to(scores.device)
        args, fn, name = (labels, scores, st, width), _index_sorted, "confusion_sorted"
    if _F.use_compiled(scores, name) and scores.dim() > 0:
        index = _F.run_compiled(name, fn, fn, *args)
    else:
        index = fn(*args)
    if multi_label:
        num_labels = scores.shape[-1]
        index = index + torch.arange(num_labels, device=index.device) * (2 * width)
        hist = _histogram(index, weight, 2 * width * num_labels).reshape(num_labels, 2, width)
    else:
        hist = _histogram(index, weight, 2 * width).reshape(1, 2, width)
    hist = hist.to(torch.float64)
    above = hist.flip(-1).cumsum(-1).flip(-1)  # above[..., j] = weight in buckets >= j
    totals = above[..., 0]  # (L, 2): negatives, positives
    counts = above[..., 1:]  # (L, 2, n): weight above each sorted threshold
    if not thresholds.evenly and not thresholds.identity:
        counts = counts.index_select(-1, thresholds.rank.to(counts.device))
    fp, tp = counts[:, 0], counts[:, 1]
    tn, fn_ = totals[:, 0, None] - fp, totals[:, 1, None] - tp
    if multi_label:
        return tp.T, fp.T, tn.T, fn_.T
    return tp[0], fp[0], tn[0], fn_[0]


def _divide_no_nan(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.where(y == 0, torch.zeros_like(x), x / torch.where(y == 0, torch.ones_like(y), y))


# --------------------------------------------------------------------------- the classes


def _check_int(x: Any, name: str, low: int | None = None) -> int | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer or None, got {x!r} of type {type(x).__name__}.")
    if low is not None and x < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {x}.")
    return int(x)


class _ConfusionBase(StatefulMetric):
    """Shared by every class here: its thresholds, the kernel call, the states it keeps."""

    _kept: tuple[str, ...] = ("true_positives", "false_positives", "true_negatives", "false_negatives")
    _ALL = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def _setup(self, thresholds: Thresholds, shape: tuple[int, ...] | None = None) -> None:
        self._thr = thresholds
        # the sorted float32 thresholds on the metric's device (not a state: `.to()` moves it, nothing sums it)
        self.register_buffer("_sorted_thresholds", thresholds.sorted.clone(), persistent=False)
        shape = (thresholds.n,) if shape is None else shape
        for s in self._kept:
            self.add_sum_state(s, shape)

    def _counts(self, y_true: Any, y_pred: Any, sample_weight: Any, **kw: Any) -> tuple[torch.Tensor, ...]:
        counts = dict(
            zip(
                self._ALL,
                confusion_counts(
                    y_true,
                    y_pred,
                    self._thr,
                    sample_weight,
                    sorted_thresholds=self._sorted_thresholds,
                    **kw,
                ),
            )
        )
        return tuple(counts[s] for s in self._kept)

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> torch.nn.Module:
        # `.half()` must not round the thresholds either
        before = self._buffers["_sorted_thresholds"]
        this = super()._apply(fn, *args, **kwargs)
        new = self._buffers["_sorted_thresholds"]
        if new.dtype != torch.float32:
            self._buffers["_sorted_thresholds"] = before.to(new.device)
        return this

    @property
    def thresholds(self) -> list[float]:
        """The thresholds, as Keras lists them."""
        return list(self._thr.values)


def _init_thresholds(thresholds: Any, default: float) -> Thresholds:
    if thresholds is not None:
        values = _check_threshold_values(_to_list(thresholds))
    else:
        values = [default]
    return Thresholds(values, is_evenly_distributed(values))


class _ConfusionMatrixConditionCount(_ConfusionBase):
    _cond = "true_positives"

    def __init__(self, thresholds: Any = None, name: str | None = None, dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self._kept = ("accumulator",)
        self._setup(_init_thresholds(thresholds, 0.5))

    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:
        counts = dict(
            zip(
                self._ALL,
                confusion_counts(y_true, y_pred, self._thr, sample_weight, sorted_thresholds=self._sorted_thresholds),
            )
        )
        return (counts[self._cond],)

    def compute_result(self, accumulator: torch.Tensor) -> torch.Tensor:
        return accumulator[0].clone() if self._thr.n == 1 else accumulator.clone()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of positives scored above the threshold(s), as `keras.metrics.TruePositives`.

    >>> m = TruePositives()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> m.result()
    tensor(2.)
    >>> m.reset_state()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    >>> m.result()
    tensor(1.)
    """

    _cond = "true_positives"


class FalsePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of negatives scored above the threshold(s), as `keras.metrics.FalsePositives`.

    >>> m = FalsePositives()
    >>> m.update_state([0, 1, 0, 0], [0, 0, 1, 1])
    >>> m.result()
    tensor(2.)
    >>> m.reset_state()
    >>> m.update_state([0, 1, 0, 0], [0, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    >>> m.result()
    tensor(1.)
    """

    _cond = "false_positives"


class TrueNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of negatives scored at or below the threshold(s), as `keras.metrics.TrueNegatives`.

    >>> m = TrueNegatives()
    >>> m.update_state([0, 1, 0, 0], [1, 1, 0, 0])
    >>> m.result()
    tensor(2.)
    >>> m.reset_state()
    >>> m.update_state([0, 1, 0, 0], [1, 1, 0, 0], sample_weight=[0, 0, 1, 0])
    >>> m.result()
    tensor(1.)
    """

    _cond = "true_negatives"


class FalseNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of positives scored at or below the threshold(s), as `keras.metrics.FalseNegatives`.

    >>> m = FalseNegatives()
    >>> m.update_state([0, 1, 1, 1], [0, 1, 0, 0])
    >>> m.result()
    tensor(2.)
    >>> m.reset_state()
    >>> m.update_state([0, 1, 1, 1], [0, 1, 0, 0], sample_weight=[0, 0, 1, 0])
    >>> m.result()
    tensor(1.)
    """

    _cond = "false_negatives"


class _PrecisionRecall(_ConfusionBase):
    def __init__(
        self,
        thresholds: Any = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.top_k = _check_int(top_k, "top_k", 1)
        self.class_id = _check_int(class_id, "class_id")
        self._setup(_init_thresholds(thresholds, 0.5 if top_k is None else NEG_INF))

    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:
        return self._counts(y_true, y_pred, sample_weight, top_k=self.top_k, class_id=self.class_id)

    def compute_result(self, tp: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        value = _divide_no_nan(tp, tp + other)
        return value[0] if self._thr.n == 1 else value

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "thresholds": self.init_thresholds,
            "top_k": self.top_k,
            "class_id": self.class_id,
        }


class Precision(_PrecisionRecall):
    """`tp / (tp + fp)` at each threshold (0 when nothing is predicted positive), as `keras.metrics.Precision`.

    `top_k` keeps only the k highest scores of each row (threshold -1e10 unless told); `class_id` takes
    one class of `(N, C)` inputs. Among tied scores `torch.topk` picks which to keep, as Keras on torch
    does (Keras' own docstring, written for TensorFlow's order, shows 0.0 for the `top_k=2` example).

    >>> m = Precision()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> m.result()
    tensor(0.6667)
    >>> m.reset_state()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    >>> m.result()
    tensor(1.)
    >>> m = Precision(top_k=2)
    >>> m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    >>> m.result()
    tensor(1.)
    >>> m = Precision(top_k=4)
    >>> m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    >>> m.result()
    tensor(0.5000)
    """

    _kept = ("true_positives", "false_positives")
    higher_is_better = True


class Recall(_PrecisionRecall):
    """`tp / (tp + fn)` at each threshold (0 with no positives), as `keras.metrics.Recall`.

    >>> m = Recall()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> m.result()
    tensor(0.6667)
    >>> m.reset_state()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    >>> m.result()
    tensor(1.)
    """

    _kept = ("true_positives", "false_negatives")
    higher_is_better = True


class _SensitivitySpecificityBase(_ConfusionBase):
    """The four counts at `num_thresholds` evenly spaced thresholds in [0, 1] (no epsilon at the ends), and
    the best value of one rate among the thresholds where another reaches `value`."""

    higher_is_better = True
    _value_name = "value"

    def __init__(
        self,
        value: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(
                f"Argument `{self._value_name}` must be in the range [0, 1]. Received: {self._value_name}={value!r}"
            )
        num_thresholds = _check_int(num_thresholds, "num_thresholds")
        if num_thresholds <= 0:
            raise ValueError(
                f"Argument `num_thresholds` must be an integer > 0. Received: num_thresholds={num_thresholds}"
            )
        super().__init__(name=name, dtype=dtype)
        self.value = float(value)
        setattr(self, self._value_name, value)
        self.num_thresholds = num_thresholds
        self.class_id = _check_int(class_id, "class_id")
        if num_thresholds == 1:
            thr = Thresholds([0.5], evenly=False)
        else:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            thr = Thresholds([0.0, *inner, 1.0], evenly=True)  # Keras takes the bucketed path even for 2
        self._setup(thr)

    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:
        return self._counts(y_true, y_pred, sample_weight, class_id=self.class_id)

    def _max_under_constraint(self, constrained: torch.Tensor, dependent: torch.Tensor) -> torch.Tensor:
        # Keras compares float32 rates with the value rounded to float32
        feasible = constrained.to(torch.float32) >= torch.tensor(
            self.value, dtype=torch.float32, device=constrained.device
        )
        return torch.where(feasible, dependent, torch.zeros_like(dependent)).amax().clamp_min(0.0)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_id": self.class_id,
            "num_thresholds": self.num_thresholds,
            self._value_name: getattr(self, self._value_name),
        }


class SensitivityAtSpecificity(_SensitivitySpecificityBase):
    """The best sensitivity (recall) at a threshold where specificity is >= `specificity`, as
    `keras.metrics.SensitivityAtSpecificity`.

    >>> m = SensitivityAtSpecificity(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> m.result()
    tensor(0.5000)
    >>> m.reset_state()
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], sample_weight=[1, 1, 2, 2, 1])
    >>> m.result()
    tensor(0.3333)
    """

    _value_name = "specificity"

    def __init__(
        self,
        specificity: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def compute_result(self, tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        return self._max_under_constraint(_divide_no_nan(tn, tn + fp), _divide_no_nan(tp, tp + fn))


class SpecificityAtSensitivity(_SensitivitySpecificityBase):
    """The best specificity at a threshold where sensitivity is >= `sensitivity`, as
    `keras.metrics.SpecificityAtSensitivity`.

    >>> m = SpecificityAtSensitivity(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> m.result()
    tensor(0.6667)
    >>> m.reset_state()
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], sample_weight=[1, 1, 2, 2, 2])
    >>> m.result()
    tensor(0.5000)
    """

    _value_name = "sensitivity"

    def __init__(
        self,
        sensitivity: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def compute_result(self, tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        return self._max_under_constraint(_divide_no_nan(tp, tp + fn), _divide_no_nan(tn, tn + fp))


class PrecisionAtRecall(_SensitivitySpecificityBase):
    """The best precision at a threshold where recall is >= `recall`, as `keras.metrics.PrecisionAtRecall`.

    >>> m = PrecisionAtRecall(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> m.result()
    tensor(0.5000)
    >>> m.reset_state()
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], sample_weight=[2, 2, 2, 1, 1])
    >>> m.result()
    tensor(0.3333)
    """

    _value_name = "recall"

    def __init__(
        self,
        recall: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def compute_result(self, tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        return self._max_under_constraint(_divide_no_nan(tp, tp + fn), _divide_no_nan(tp, tp + fp))


class RecallAtPrecision(_SensitivitySpecificityBase):
    """The best recall at a threshold where precision is >= `precision`, as `keras.metrics.RecallAtPrecision`.

    >>> m = RecallAtPrecision(0.8)
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    >>> m.result()
    tensor(0.5000)
    >>> m.reset_state()
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    >>> m.result()
    tensor(1.)
    """

    _value_name = "precision"

    def __init__(
        self,
        precision: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def compute_result(self, tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        return self._max_under_constraint(_divide_no_nan(tp, tp + fp), _divide_no_nan(tp, tp + fn))


_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = {"interpolation": "interpolation", "majoring": "majoring", "minoring": "minoring"}


def _curve_name(curve: Any) -> str:
    key = getattr(curve, "value", curve)
    if key not in ("pr", "PR", "roc", "ROC", "prgain", "PRGAIN"):
        raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
    return _CURVES[key.lower()]


def _summation_name(method: Any) -> str:
    key = getattr(method, "value", method)
    if key not in ("interpolation", "Interpolation", "majoring", "Majoring", "minoring", "Minoring"):
        raise ValueError(
            f'Invalid AUC summation method value: "{method}". '
            'Expected values are ["interpolation", "majoring", "minoring"]'
        )
    return key.lower()


def auc_from_counts(
    tp: torch.Tensor,
    fp: torch.Tensor,
    tn: torch.Tensor,
    fn: torch.Tensor,
    curve: str = "ROC",
    summation_method: str = "interpolation",
    label_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Keras' AUC of the counts at each threshold (thresholds on axis 0; a second axis of labels is
    averaged, weighted by `label_weights` when given).

    >>> c = torch.tensor
    >>> auc_from_counts(c([2.0, 1, 0]), c([2.0, 0, 0]), c([0.0, 2, 2]), c([0.0, 1, 2]))
    tensor(0.7500)
    """
    if curve == "PR" and summation_method == "interpolation":
        # Davis & Goadrich: interpolate tp and tp + fp between thresholds, integrate precision over recall
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, dp.clamp_min(0))
        intercept = tp[1:] - slope * p[1:]
        ratio = torch.where(
            (p[:-1] > 0) & (p[1:] > 0), _divide_no_nan(p[:-1], p[1:].clamp_min(0)), torch.ones_like(p[1:])
        )
        terms = _divide_no_nan(slope * (dtp + intercept * torch.log(ratio)), (tp[1:] + fn[1:]).clamp_min(0))
    else:
        recall = _divide_no_nan(tp, tp + fn)
        if curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scale * _divide_no_nan(fn, tp)
            precision_gain = 1.0 - scale * _divide_no_nan(fp, tp)
            none = tp == 0
            x = torch.where(none, torch.zeros_like(recall_gain), recall_gain).clamp_min(0.0)
            y = torch.where(none, torch.ones_like(precision_gain), precision_gain)
        if summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        terms = (x[:-1] - x[1:]) * heights
    if terms.dim() == 1:
        return terms.sum()
    by_label = terms.sum(0)
    if label_weights is None:
        return by_label.mean()
    lw = label_weights.to(by_label.dtype)
    return _divide_no_nan((by_label * lw).sum(), lw.sum())


class AUC(_ConfusionBase):
    """Area under the ROC or PR curve from counts at `num_thresholds` thresholds, as `keras.metrics.AUC`.

    The thresholds are `[-1e-7, 1/(n-1), ..., (n-2)/(n-1), 1 + 1e-7]` (or `thresholds` between the two
    epsilon ends); `multi_label=True` keeps one curve per label of `(N, L)` inputs and averages the areas
    (weighted by `label_weights`), `multi_label=False` flattens them (`label_weights` then weight the
    counts); `from_logits=True` applies a sigmoid to the scores first.

    >>> m = AUC(num_thresholds=3)
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    >>> m.result()
    tensor(0.7500)
    >>> m.reset_state()
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    >>> m.result()
    tensor(1.)
    """

    higher_is_better = True

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        thresholds: Any = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Any = None,
        from_logits: bool = False,
    ) -> None:
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_check_threshold_values(_to_list(thresholds), in_unit=False))
            num_thresholds = len(inner) + 2
            evenly = is_evenly_distributed([0.0, *inner, 1.0])
        else:
            num_thresholds = _check_int(num_thresholds, "num_thresholds")
            if num_thresholds <= 1:
                raise ValueError(
                    f"Argument `num_thresholds` must be an integer > 1. Received: num_thresholds={num_thresholds}"
                )
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            evenly = True
        self.curve = _curve_name(curve)
        self.summation_method = _summation_name(summation_method)
        num_labels = _check_int(num_labels, "num_labels", 1)
        if num_labels and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        super().__init__(name=name or "auc", dtype=dtype)
        self.num_thresholds = num_thresholds
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.from_logits = bool(from_logits)
        if label_weights is not None:
            lw = as_tensor(label_weights, "label_weights", dtype=torch.float32).reshape(-1)
            self.register_buffer("label_weights", lw, persistent=False)
        else:
            self.label_weights = None
        thr = Thresholds([-EPSILON, *inner, 1.0 + EPSILON], evenly, with_epsilon=True)
        self._built = not self.multi_label or bool(num_labels)
        self._setup(thr, (num_thresholds, num_labels or 0) if self.multi_label else (num_thresholds,))

    def _build(self, num_labels: int) -> None:
        for s in self._kept:
            old = self._buffers[s]
            self._buffers[s] = torch.zeros((self.num_thresholds, num_labels), dtype=old.dtype, device=old.device)
        self._built = True

    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:
        if self.multi_label:
            shape = tuple(y_pred.shape) if hasattr(y_pred, "shape") else tuple(np.shape(y_pred))
            if len(shape) != 2:
                raise ValueError(
                    f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {len(shape)}. "
                    f"Full shape received for `y_pred`: {shape}"
                )
            have = self._buffers["true_positives"].shape[1]
            if self._built and shape[1] != have:
                raise ValueError(f"`y_pred` of shape {shape} has {shape[1]} labels; this AUC counts {have} labels.")
        lw = None if self.multi_label else self.label_weights
        return self._counts(
            y_true, y_pred, sample_weight, multi_label=self.multi_label, label_weights=lw, from_logits=self.from_logits
        )

    def _add(self, parts: tuple[torch.Tensor, ...]) -> None:
        if not self._built:
            self._build(parts[0].shape[1])
        super()._add(parts)

    def compute_result(self, tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        if tp.numel() == 0:  # a multi-label AUC before its first batch
            return torch.zeros((), dtype=torch.float64, device=tp.device)
        lw = self.label_weights if self.multi_label else None
        return auc_from_counts(tp, fp, tn, fn, self.curve, self.summation_method, lw)

    def get_config(self) -> dict[str, Any]:
        lw = self.label_weights
        config = {
            **super().get_config(),
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if lw is None else [float(v) for v in lw.cpu().tolist()],
            "from_logits": self.from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


for _cls in (TruePositives, FalsePositives, TrueNegatives, FalseNegatives, Precision, Recall):
    register(_cls)
for _cls in (SensitivityAtSpecificity, SpecificityAtSensitivity, PrecisionAtRecall, RecallAtPrecision):
    register(_cls)
register(AUC, "auc")
