"""Keras 3's intersection-over-union metrics (`keras.metrics.IoU`, `MeanIoU`, `BinaryIoU`, `OneHotIoU`,
`OneHotMeanIoU`) as stateful torch metrics.

The state is Keras' `(num_classes, num_classes)` confusion matrix (rows: true class, columns: predicted class),
counted from one histogram of `y_true * num_classes + y_pred`, never from one-hot tensors. As in Keras
(`keras/src/metrics/iou_metrics.py`) the matrix is integer by default: labels, predictions and sample weights
are truncated to integers first (a float weight of 0.3 counts 0, with Keras' warning); with a float `dtype`
the weights count as they are. Out-of-range ids, and `ignore_class` in `y_true`, are left out.

>>> import torch
>>> m = MeanIoU(num_classes=2)
>>> m.update_state(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]))
>>> m.result()
tensor(0.3333)
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from ._checks import as_tensor
from .metrics import StatefulMetric, register

__all__ = [
    "IoU",
    "MeanIoU",
    "BinaryIoU",
    "OneHotIoU",
    "OneHotMeanIoU",
    "confusion_matrix",
    "iou_from_confusion_matrix",
]

_EPSILON = 1e-7  # keras.backend.epsilon()
_FLOAT_WEIGHT_WARNING = (
    "You are passing weight as `float`, but dtype is `int`. This may result in an incorrect weight due to type "
    "casting Consider using integer weights."
)


def confusion_matrix(
    y_true: Any,
    y_pred: Any,
    num_classes: int,
    sample_weight: Any = None,
    ignore_class: int | None = None,
    integer: bool = True,
) -> torch.Tensor:
    """The `(num_classes, num_classes)` confusion matrix of integer class ids, as Keras' IoU metrics add it.

    Both inputs are flattened (they need the same number of elements). With `integer`, ids and weights are
    truncated toward zero first and the matrix is int64; otherwise the weights are summed in float64. Pairs
    with an id outside `[0, num_classes)`, or with `y_true == ignore_class`, are left out. `sample_weight` is
    one number, or one per element (any shape of that size).

    >>> confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 0, 5]), 3)
    tensor([[1, 0, 0],
            [1, 1, 0],
            [0, 0, 0]])
    """
    y_true = as_tensor(y_true, "y_true")
    y_pred = as_tensor(y_pred, "y_pred", y_true.device)
    return _confusion_matrix(y_true, y_pred, num_classes, sample_weight, ignore_class, integer, None)


def _confusion_matrix(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    num_classes: int,
    sample_weight: Any,
    ignore_class: int | None,
    integer: bool,
    pred_classes: int | None,
) -> torch.Tensor:
    """`pred_classes`: y_pred came from an argmax over that many classes, so it is known to be >= 0."""
    t, p = y_true.reshape(-1), y_pred.reshape(-1)
    if t.shape[0] != p.shape[0]:
        raise ValueError(
            f"`y_true` of shape {tuple(y_true.shape)} and `y_pred` of shape {tuple(y_pred.shape)} must hold one "
            f"class id per element, the same number of elements ({t.shape[0]} != {p.shape[0]})."
        )
    weight = None
    if sample_weight is not None:
        if integer and hasattr(sample_weight, "dtype") and "float" in str(sample_weight.dtype):
            warnings.warn(_FLOAT_WEIGHT_WARNING, stacklevel=4)
        weight = as_tensor(sample_weight, "sample_weight", t.device).reshape(-1)
        if weight.shape[0] not in (1, t.shape[0]):
            raise ValueError(
                f"`sample_weight` of shape {tuple(as_tensor(sample_weight, 'sample_weight').shape)} does not fit "
                f"`y_true` of shape {tuple(y_true.shape)}: one weight, or one per element of y_true."
            )
        weight = weight.to(torch.float64)
        if integer:
            weight = weight.trunc()
        weight = weight.expand(t.shape[0])
    c = num_classes
    if integer:  # Keras converts ids to its integer dtype first: 1.7 is class 1, -0.5 is class 0
        if t.dtype != torch.int64:
            t = t.to(torch.int64)
        if p.dtype != torch.int64:
            p = p.to(torch.int64)
    valid = (t >= 0) & (t < c)
    if pred_classes is None or pred_classes > c:
        valid &= p < c
    if pred_classes is None:
        valid &= p >= 0
    if ignore_class is not None:
        valid &= t != ignore_class
    if not integer:
        t, p = t.to(torch.int64), p.to(torch.int64)
    index = torch.where(valid, t * c + p, c * c)  # one extra bin for what is left out
    bins = c * c + 1
    if t.device.type == "cpu" and not torch.compiler.is_compiling():
        counts = torch.bincount(index, weights=weight, minlength=bins)
    elif weight is None:  # CUDA's bincount reads the largest id back to the host: scatter instead
        counts = torch.zeros(bins, dtype=torch.int64, device=t.device)
        counts.scatter_add_(0, index, torch.ones((), dtype=torch.int64, device=t.device).expand(index.shape))
    else:
        counts = torch.zeros(bins, dtype=torch.float64, device=t.device).scatter_add_(0, index, weight)
    cm = counts[: c * c].reshape(c, c)
    if integer and cm.dtype != torch.int64:
        cm = cm.to(torch.int64)  # whole weights summed in float64: exact
    return cm


def iou_from_confusion_matrix(confusion: torch.Tensor, target_class_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Keras' IoU result: `tp / (tp + fp + fn + 1e-7)` per target class, averaged over the target classes whose
    denominator is not 0 (the mean divides by their number plus 1e-7). `None` targets every class. float64.

    >>> iou_from_confusion_matrix(torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 0]]))
    tensor(0.3333, dtype=torch.float64)
    """
    cm = confusion.to(torch.float64)
    tp = cm.diagonal()
    denominator = cm.sum(0) + cm.sum(1) - tp
    if target_class_ids is not None:
        tp, denominator = tp[target_class_ids], denominator[target_class_ids]
    valid = denominator > 1e-9
    iou = torch.where(valid, tp / (denominator + _EPSILON), 0.0)
    return iou.sum() / (valid.sum() + _EPSILON)


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an integer >= 1, got {num_classes!r}.")
    return int(num_classes)


def _check_ids(target_class_ids: Any, num_classes: int) -> list[int]:
    try:
        ids = list(target_class_ids)
    except TypeError:
        raise TypeError(f"`target_class_ids` must be a list or tuple of class ids, got {target_class_ids!r}.") from None
    if not ids:
        raise ValueError("`target_class_ids` is empty: give at least one class id.")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"`target_class_ids` must hold integers, got {i!r} in {ids!r}.")
    if max(ids) >= num_classes or min(ids) < -num_classes:
        raise ValueError(f"Target class id {max(ids, key=abs)} is out of range, which is [0, {num_classes}).")
    return [int(i) for i in ids]


def _check_optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer class id or None, got {value!r}.")
    return int(value)


def _check_axis(axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`axis` must be an integer, got {axis!r}.")
    return int(axis)


def _cm_dtype(dtype: Any) -> tuple[str, bool]:
    """Keras' dtype name for the confusion matrix (int32 when None) and whether it is an integer type."""
    if dtype is None:
        return "int32", True
    name = str(dtype).removeprefix("torch.")
    name = {"int": "int32", "float": "float32"}.get(name, name)
    kind = getattr(torch, name, None)
    if not isinstance(kind, torch.dtype) or kind.is_complex or kind == torch.bool:
        raise TypeError(f"`dtype` must be an integer or floating dtype or its name, got {dtype!r}.")
    return name, not kind.is_floating_point


class _IoUBase(StatefulMetric):
    """The confusion matrix of the IoU metrics (Keras' `_IoUBase`), and their result over `target_class_ids`."""

    higher_is_better = True
    plot_lower_bound, plot_upper_bound = 0.0, 1.0

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int] | None = None,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
        **torchmetrics_kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=None, **torchmetrics_kwargs)  # the result is float32, as Keras'
        self.num_classes = _check_num_classes(num_classes)
        self._dtype_name, self._integer = _cm_dtype(dtype)
        self.ignore_class = _check_optional_int(ignore_class, "ignore_class")
        self.sparse_y_true = bool(sparse_y_true)
        self.sparse_y_pred = bool(sparse_y_pred)
        self.axis = _check_axis(axis)
        ids = _check_ids(range(self.num_classes) if target_class_ids is None else target_class_ids, self.num_classes)
        self.target_class_ids = ids
        every = [i % self.num_classes for i in ids] == list(range(self.num_classes))
        self.register_buffer("_target_ids", None if every else torch.tensor(ids, dtype=torch.int64), persistent=False)
        self.add_sum_state(
            "total_cm", (self.num_classes, self.num_classes), torch.int64 if self._integer else torch.float64
        )

    def _ids(self, x: Any, sparse: bool, name: str) -> tuple[torch.Tensor, int | None]:
        x = as_tensor(x, name, self._buffers["total_cm"].device)
        if sparse:
            return x, None
        if x.dim() == 0 or not -x.dim() <= self.axis < x.dim():
            raise ValueError(
                f"`{name}` of shape {tuple(x.shape)} has no axis {self.axis} to take the argmax over "
                f"(sparse_{name}=False)."
            )
        classes = x.shape[self.axis]
        if classes == 0:
            raise ValueError(f"`{name}` of shape {tuple(x.shape)}: its class axis {self.axis} is empty.")
        if x.dtype == torch.bool:
            x = x.to(torch.uint8)
        return x.argmax(self.axis), classes

    def _preprocess(self, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        t, _ = self._ids(y_true, self.sparse_y_true, "y_true")
        p, classes = self._ids(y_pred, self.sparse_y_pred, "y_pred")
        return t, p, classes

    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:
        """This batch's confusion matrix."""
        t, p, classes = self._preprocess(y_true, y_pred)
        cm = _confusion_matrix(t, p, self.num_classes, sample_weight, self.ignore_class, self._integer, classes)
        return (cm,)

    def compute_result(self, total_cm: torch.Tensor) -> torch.Tensor:
        return iou_from_confusion_matrix(total_cm, self._target_ids)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self._dtype_name}


class IoU(_IoUBase):
    """The mean intersection-over-union of the classes in `target_class_ids` (`keras.metrics.IoU`).

    `iou = tp / (tp + fp + fn)` per class from the confusion matrix; classes with no true or predicted
    element are left out of the mean. By default the matrix is integer, as Keras': float weights truncate.

    >>> m = IoU(num_classes=2, target_class_ids=[0])
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> m.result()
    tensor(0.3333)
    >>> m = IoU(num_classes=2, target_class_ids=[0], dtype="float32")
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1], sample_weight=[0.3, 0.3, 0.3, 0.1])
    >>> m.result()
    tensor(0.3333)
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
        **torchmetrics_kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes,
            target_class_ids,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
            **torchmetrics_kwargs,
        )

    def get_config(self) -> dict[str, Any]:
        """Keras' config.

        >>> IoU(num_classes=3, target_class_ids=[1]).get_config()["target_class_ids"]
        [1]
        """
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "target_class_ids": self.target_class_ids,
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


class MeanIoU(_IoUBase):
    """The mean intersection-over-union over every class (`keras.metrics.MeanIoU`).

    >>> m = MeanIoU(num_classes=2)
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> m.result()
    tensor(0.3333)
    >>> m = MeanIoU(num_classes=2, dtype="float32")
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1], sample_weight=[0.3, 0.3, 0.3, 0.1])
    >>> m.result()
    tensor(0.2381)
    """

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
        **torchmetrics_kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes,
            None,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
            **torchmetrics_kwargs,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


class BinaryIoU(_IoUBase):
    """IoU of a binary task (`keras.metrics.BinaryIoU`): `y_pred >= threshold` is class 1, and the result is
    the mean IoU of the classes in `target_class_ids` (`(0, 1)`, `[0]` or `[1]`).

    >>> m = BinaryIoU(target_class_ids=[0, 1], threshold=0.3)
    >>> m.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7])
    >>> m.result()
    tensor(0.3333)
    >>> m = BinaryIoU(target_class_ids=[0, 1], threshold=0.3, dtype="float32")
    >>> m.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7], sample_weight=[0.2, 0.3, 0.4, 0.1])
    >>> m.result()
    tensor(0.1736)
    """

    def __init__(
        self,
        target_class_ids: Sequence[int] = (0, 1),
        threshold: float = 0.5,
        name: str | None = None,
        dtype: Any = None,
        **torchmetrics_kwargs: Any,
    ) -> None:
        super().__init__(2, target_class_ids, name=name, dtype=dtype, **torchmetrics_kwargs)
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise TypeError(f"`threshold` must be a real number, got {threshold!r}.")
        self.threshold = float(threshold)

    def _preprocess(self, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        device = self._buffers["total_cm"].device
        t = as_tensor(y_true, "y_true", device)
        p = as_tensor(y_pred, "y_pred", device)
        if p.dtype != torch.float32:  # Keras compares in float32
            p = p.to(torch.float32)
        return t, p >= self.threshold, 2  # 0/1 predictions: never out of range

    def get_config(self) -> dict[str, Any]:
        return {
            "target_class_ids": self.target_class_ids,
            "threshold": self.threshold,
            "name": self.name,
            "dtype": self._dtype_name,
        }


class OneHotIoU(IoU):
    """`IoU` of one-hot labels (`keras.metrics.OneHotIoU`): the class of `y_true` is its argmax over `axis`
    (the first of tied ones), and so is `y_pred`'s unless `sparse_y_pred=True`.

    >>> y_true = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    >>> y_pred = torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]])
    >>> m = OneHotIoU(num_classes=3, target_class_ids=[0, 2], dtype="float32")
    >>> m.update_state(y_true, y_pred, sample_weight=[0.1, 0.2, 0.3, 0.4])
    >>> m.result()
    tensor(0.0714)
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
        **torchmetrics_kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes,
            target_class_ids,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
            **torchmetrics_kwargs,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(MeanIoU):
    """`MeanIoU` of one-hot labels (`keras.metrics.OneHotMeanIoU`): argmax over `axis` as `OneHotIoU`.

    >>> y_true = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    >>> y_pred = torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]])
    >>> m = OneHotMeanIoU(num_classes=3, dtype="float32")
    >>> m.update_state(y_true, y_pred, sample_weight=[0.1, 0.2, 0.3, 0.4])
    >>> m.result()
    tensor(0.0476)
    """

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
        **torchmetrics_kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
            **torchmetrics_kwargs,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["sparse_y_true"]
        return config


for _cls in (IoU, MeanIoU, BinaryIoU, OneHotIoU, OneHotMeanIoU):
    register(_cls)
