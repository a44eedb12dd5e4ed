"""Keras' hinge metrics: the mean of the hinge, squared hinge and categorical hinge losses.

`Hinge` and `SquaredHinge` read labels of 0 and 1 as -1 and 1 when every label of the batch is 0 or 1 (as Keras
decides, per batch); the test runs on the device, so no update waits for it.

>>> import torch
>>> m = Hinge()
>>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
>>> round(m.result().item(), 6)
1.3
"""

from __future__ import annotations

from typing import Any

from . import losses as L
from .metrics import register
from .reduction_metrics import KerasFunctionMetric

__all__ = ["Hinge", "SquaredHinge", "CategoricalHinge"]


class Hinge(KerasFunctionMetric):
    """The mean of `mean(max(1 - y_true * y_pred, 0), axis=-1)` (`keras.metrics.Hinge`).

    >>> m = Hinge()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], sample_weight=[1, 0])
    >>> round(m.result().item(), 6)
    1.1
    """

    _kernel = staticmethod(L.hinge)

    def __init__(self, name: str = "hinge", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


class SquaredHinge(KerasFunctionMetric):
    """The mean of `mean(max(1 - y_true * y_pred, 0) ** 2, axis=-1)` (`keras.metrics.SquaredHinge`).

    >>> m = SquaredHinge()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    >>> round(m.result().item(), 6)
    1.86
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], sample_weight=[1, 0])
    >>> round(m.result().item(), 6)
    1.46
    """

    _kernel = staticmethod(L.squared_hinge)

    def __init__(self, name: str = "squared_hinge", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


class CategoricalHinge(KerasFunctionMetric):
    """The mean of `max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` over the last axis
    (`keras.metrics.CategoricalHinge`).

    >>> m = CategoricalHinge()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    >>> round(m.result().item(), 6)
    1.4
    >>> m.reset_state()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], sample_weight=[1, 0])
    >>> round(m.result().item(), 6)
    1.2
    """

    _kernel = staticmethod(L.categorical_hinge)

    def __init__(self, name: str = "categorical_hinge", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, {}, **kwargs)


register(Hinge)
register(SquaredHinge)
register(CategoricalHinge)
