"""Keras' probabilistic metrics: the mean of a cross-entropy, the KL divergence or the Poisson loss.

Each class averages the Keras loss function of the same name (`torch_keras_metrics.losses`) over samples,
with Keras' sample-weight rules. Probabilities are clipped as Keras clips them (to [1e-7, 1 - 1e-7]; in
float32 the upper bound is 0.99999988). `SparseCategoricalCrossentropy(ignore_class=c)` gives the labels
equal to `c` the value 0: without weights they still count as samples, with weights of any shape they are
left out (their weight becomes 0), exactly as Keras 3.15 counts them.

>>> import torch
>>> m = BinaryCrossentropy()
>>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
>>> round(m.result().item(), 6)
0.814924
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from . import losses as L
from ._checks import as_tensor, broadcast_shapes, squeeze_or_expand_to_same_rank
from .metrics import register
from .reduction_metrics import KerasFunctionMetric, check_axis, check_bool, check_fraction

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "KLDivergence",
    "Poisson",
]


class KLDivergence(KerasFunctionMetric):
    """The mean of `sum(y_true * log(y_true / y_pred), axis=-1)`, both clipped to [1e-7, 1]
    (`keras.metrics.KLDivergence`).

    >>> m = KLDivergence()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    >>> round(m.result().item(), 6)
    0.458143
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], sample_weight=[1, 0])
    >>> round(m.result().item(), 6)
    0.916289
    """

    _kernel = staticmethod(L.kl_divergence)

    def __init__(self, name: str = "kl_divergence", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


class Poisson(KerasFunctionMetric):
    """The mean of `mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)` (`keras.metrics.Poisson`).

    >>> m = Poisson()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> round(m.result().item(), 6)
    0.5
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> round(m.result().item(), 6)
    1.0
    """

    _kernel = staticmethod(L.poisson)

    def __init__(self, name: str = "poisson", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


class BinaryCrossentropy(KerasFunctionMetric):
    """The mean binary cross-entropy over the last axis (`keras.metrics.BinaryCrossentropy`).

    `y_true` and `y_pred` must have the same shape (Keras' metric does not squeeze a size-1 axis).

    >>> m = BinaryCrossentropy()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], sample_weight=[1, 0])
    >>> round(m.result().item(), 6)
    0.916291
    """

    _kernel = staticmethod(L.binary_crossentropy)

    def __init__(
        self,
        name: str = "binary_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        label_smoothing: float = 0,
        **kwargs: Any,
    ) -> None:
        fn_kwargs = {
            "from_logits": check_bool(from_logits, "from_logits"),
            "label_smoothing": check_fraction(label_smoothing, "label_smoothing"),
        }
        super().__init__(name, dtype, fn_kwargs, **kwargs)


class CategoricalCrossentropy(KerasFunctionMetric):
    """The mean cross-entropy against one-hot (or soft) labels along `axis`
    (`keras.metrics.CategoricalCrossentropy`).

    >>> m = CategoricalCrossentropy()
    >>> m.update_state([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    >>> round(m.result().item(), 6)
    1.176939
    >>> m.reset_state()
    >>> m.update_state([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]],
    ...                sample_weight=torch.tensor([0.3, 0.7]))
    >>> round(m.result().item(), 6)
    1.627198
    """

    _kernel = staticmethod(L.categorical_crossentropy)

    def __init__(
        self,
        name: str = "categorical_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        label_smoothing: float = 0,
        axis: int = -1,
        **kwargs: Any,
    ) -> None:
        fn_kwargs = {
            "from_logits": check_bool(from_logits, "from_logits"),
            "label_smoothing": check_fraction(label_smoothing, "label_smoothing"),
            "axis": check_axis(axis),
        }
        super().__init__(name, dtype, fn_kwargs, **kwargs)


class SparseCategoricalCrossentropy(KerasFunctionMetric):
    """The mean cross-entropy against integer labels (`keras.metrics.SparseCategoricalCrossentropy`).

    Labels equal to `ignore_class` give 0; unweighted they still count, weighted they are left out.

    >>> m = SparseCategoricalCrossentropy()
    >>> m.update_state([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    >>> round(m.result().item(), 6)
    1.176939
    >>> m.reset_state()
    >>> m.update_state([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], sample_weight=torch.tensor([0.3, 0.7]))
    >>> round(m.result().item(), 6)
    1.627198
    """

    _kernel = staticmethod(L.sparse_categorical_crossentropy)

    def __init__(
        self,
        name: str = "sparse_categorical_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        ignore_class: int | None = None,
        axis: int = -1,
        **kwargs: Any,
    ) -> None:
        if ignore_class is not None and (
            isinstance(ignore_class, bool) or not isinstance(ignore_class, numbers.Integral)
        ):
            raise TypeError(f"`ignore_class` must be an integer or None, got {ignore_class!r}.")
        fn_kwargs = {
            "from_logits": check_bool(from_logits, "from_logits"),
            "ignore_class": None if ignore_class is None else int(ignore_class),
            "axis": check_axis(axis),
        }
        super().__init__(name, dtype, fn_kwargs, **kwargs)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        """Add a batch; with `ignore_class` and weights, the ignored labels' weights become 0."""
        self._add(*self._batch_sums(*self._values_and_weight(y_true, y_pred, sample_weight)))

    def _forward_inputs(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, Any]:
        if self.torchmetrics_order:
            y_true, y_pred = y_pred, y_true
        return self._values_and_weight(y_true, y_pred, sample_weight)

    def _values_and_weight(self, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[torch.Tensor, Any]:
        if self.ignore_class is None:
            return self._matches(y_true, y_pred), sample_weight
        device = self._buffers["total"].device
        values, valid = L.sparse_categorical_crossentropy_values(
            y_true, as_tensor(y_pred, "y_pred", device), self.from_logits, self.ignore_class, self.axis
        )
        values = values.detach()
        if sample_weight is None:  # Keras reads the mask only to mask weights: without any, ignored labels count
            return values, None
        # Keras' `apply_mask(sample_weight, mask, reduction="sum")`: the weights times the mask
        weight = as_tensor(sample_weight, "sample_weight", device).to(torch.float64)
        mask, weight = squeeze_or_expand_to_same_rank(valid.to(torch.float64), weight)
        if broadcast_shapes(mask.shape, weight.shape) is None:
            raise ValueError(
                f"`sample_weight` of shape {tuple(torch.as_tensor(sample_weight).shape)} does not fit the labels' "
                f"mask of shape {tuple(valid.shape)} (`ignore_class` masks the weights)."
            )
        return values, weight * mask


register(KLDivergence, "kl_divergence", snake_case=False)  # Keras does not take "k_l_divergence"
register(Poisson)
register(BinaryCrossentropy)
register(CategoricalCrossentropy)
register(SparseCategoricalCrossentropy)
