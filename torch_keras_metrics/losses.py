"""The objective: Keras' per-sample losses, Keras' reduction, and the loss as the Trainer calls it.

The per-sample functions are every loss `keras.losses` has (Keras 3.15), with its Keras arguments and
defaults. Each returns the numbers `keras.losses.<name>` returns: one value per sample (the class or last
axis reduced), in the inputs' float dtype, probabilities clipped to [1e-7, 1 - 1e-7] as Keras clips them.
They serve as metrics (`get("mae")`, `get("binary_crossentropy")`, ...) and as the Trainer's Keras-named
losses. `LOSSES` maps every name `keras.losses.get` accepts (function names, class names, short names) to
its function. `KerasLoss` is one by name with its Keras arguments, reduced as Keras reduces (`keras_reduce`);
`Objective` is whatever loss the Trainer was given, called the same way.

>>> import torch
>>> mean_absolute_error(torch.tensor([[0., 1.], [0., 0.]]), torch.tensor([[1., 1.], [1., 0.]]))
tensor([0.5000, 0.5000])
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as tnn

from ._checks import as_tensor, squeeze_or_expand_to_same_rank
from .structure import Outputs

__all__ = [
    "mean_absolute_error",
    "mean_squared_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "cosine_similarity",
    "huber",
    "log_cosh",
    "kl_divergence",
    "poisson",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "sparse_categorical_crossentropy",
    "ctc",
    "dice",
    "tversky",
    "circle",
    "categorical_generalized_cross_entropy",
    "LOSSES",
    "CompileLoss",
    "KerasLoss",
    "Objective",
    "keras_reduce",
]

EPSILON = 1e-7  # keras.backend.epsilon()
# Where Keras makes a float32 tensor of a constant (`ops.clip`'s bounds, `ops.power`'s exponent, `log(2)`),
# the constant is that float32 number whatever the inputs' dtype.
_EPS_F32 = float(np.float32(EPSILON))
_ONE_MINUS_EPS_F32 = float(np.float32(1.0 - EPSILON))
_LOG2_F32 = float(torch.log(torch.tensor(2.0)))
_HALF = (torch.float16, torch.bfloat16)
_CTC_NEG = -1e30  # "log 0" of the CTC recursion: finite, so that unreachable states get zero gradients


# --------------------------------------------------------------------------- helpers


def _float(y_pred: Any) -> torch.Tensor:
    y_pred = as_tensor(y_pred, "y_pred")
    return y_pred if y_pred.is_floating_point() else y_pred.to(torch.float32)


def pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """`(y_true, y_pred)` as tensors on `y_pred`'s device, in `y_pred`'s floating dtype (Keras' casting)."""
    y_pred = _float(y_pred)
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    return y_true.to(y_pred.dtype), y_pred


def _same_shape(y_true: torch.Tensor, y_pred: torch.Tensor, loss: str) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{loss}: `y_true` and `y_pred` must have the same shape, got y_true {tuple(y_true.shape)} "
            f"and y_pred {tuple(y_pred.shape)}."
        )


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def axis_mean(x: torch.Tensor, axis: Any = -1) -> torch.Tensor:
    """`ops.mean`: half precision is averaged in float32 and rounded once."""
    axis = _axis(axis)
    if x.dtype in _HALF:
        return (x.float().mean() if axis is None else x.float().mean(axis)).to(x.dtype)
    return x.mean() if axis is None else x.mean(axis)


def _sum(x: torch.Tensor, axis: Any) -> torch.Tensor:
    axis = _axis(axis)
    return x.sum() if axis is None else x.sum(axis)


def _const(like: torch.Tensor, value: Any) -> torch.Tensor:
    """A 0-d tensor of `like`'s dtype and device (filled on the device: no copy from the host)."""
    if isinstance(value, torch.Tensor):
        return value.to(like.device, like.dtype)
    return torch.full((), value, dtype=like.dtype, device=like.device)


def _f32(value: Any, like: torch.Tensor) -> torch.Tensor:
    """`ops.convert_to_tensor(value)` of a Python number or list: float32, on `like`'s device."""
    if isinstance(value, torch.Tensor):
        return value.to(like.device)
    if isinstance(value, (int, float)):
        return torch.full((), value, dtype=torch.float32, device=like.device)
    return torch.tensor(value, dtype=torch.float32).to(like.device, non_blocking=True)


def _softmax(x: torch.Tensor, axis: int) -> torch.Tensor:
    if x.dtype == torch.float16:  # as Keras' torch backend: float16 softmax in float32
        return tnn.softmax(x.float(), dim=axis).to(x.dtype)
    return tnn.softmax(x, dim=axis)


def _check_axis(axis: Any, loss: str) -> None:
    if isinstance(axis, bool):
        raise ValueError(f"{loss}: `axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")


def _warn_one_class(y_pred: torch.Tensor, loss: str) -> None:
    if y_pred.dim() > 0 and y_pred.shape[-1] == 1:
        warnings.warn(
            f"In loss {loss}, expected y_pred.shape to be (batch_size, num_classes) with num_classes > 1. "
            f"Received: y_pred.shape={tuple(y_pred.shape)}. Consider using 'binary_crossentropy' if you only "
            "have 2 classes.",
            SyntaxWarning,
            stacklevel=3,
        )


def _smooth_categorical(y_true: torch.Tensor, label_smoothing: float, y_pred: torch.Tensor) -> torch.Tensor:
    # Keras divides by the size of the LAST axis whatever `axis` is, and `ls / tensor` is `reciprocal * ls`.
    num_classes = _const(y_pred, y_true.shape[-1])
    return y_true * (1.0 - label_smoothing) + label_smoothing / num_classes


def _bce(y_true: torch.Tensor, y_pred: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """Keras' `ops.binary_crossentropy` (torch backend), element-wise."""
    if from_logits:
        return tnn.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    return tnn.binary_cross_entropy(y_pred.clamp(EPSILON, 1.0 - EPSILON), y_true, reduction="none")


def _hinge_labels(y_true: torch.Tensor) -> torch.Tensor:
    """0/1 labels become -1/1; any other labels are kept (decided on the device, without a host sync)."""
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def _l2_normalize(x: torch.Tensor, axis: Any) -> torch.Tensor:
    """`ops.normalize(x, axis)`: `x * min(rsqrt(sum(x**2)), 1 / epsilon)`."""
    if x.dim() == 0:
        x = x.unsqueeze(0)
    inv_norm = torch.rsqrt(x.square().sum(_axis(axis), keepdim=True))
    bound = _f32(1.0 / EPSILON, inv_norm).to(inv_norm.dtype)  # inf in float16, as Keras has it
    return x * torch.minimum(inv_norm, bound)


# --------------------------------------------------------------------------- regression


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(|y_true - y_pred|, axis=-1)`."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*pair(y_true, y_pred))
    return axis_mean((y_true - y_pred).abs())


def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean((y_true - y_pred) ** 2, axis=-1)`."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*pair(y_true, y_pred))
    return axis_mean((y_true - y_pred).square())


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`100 * mean(|(y_true - y_pred) / max(|y_true|, 1e-7)|, axis=-1)`.

    >>> mean_absolute_percentage_error(torch.tensor([[100., 200.]]), torch.tensor([[90., 210.]]))
    tensor([7.5000])
    """
    y_true, y_pred = squeeze_or_expand_to_same_rank(*pair(y_true, y_pred))
    diff = ((y_true - y_pred) / torch.maximum(y_true.abs(), _const(y_pred, EPSILON))).abs()
    return 100.0 * axis_mean(diff)


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1)) ** 2, axis=-1)`.

    Half precision inputs give float32 values, as in Keras (its float32 epsilon lifts them).
    """
    y_true, y_pred = squeeze_or_expand_to_same_rank(*pair(y_true, y_pred))
    if y_pred.dtype in _HALF:
        y_true, y_pred = y_true.float(), y_pred.float()
    first_log = torch.log(y_pred.clamp_min(EPSILON) + 1.0)
    second_log = torch.log(y_true.clamp_min(EPSILON) + 1.0)
    return axis_mean((first_log - second_log).square())


def cosine_similarity(y_true: Any, y_pred: Any, axis: Any = -1) -> torch.Tensor:
    """`-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)`: -1 for the same direction, 0 for a zero vector.

    >>> cosine_similarity(torch.tensor([[0., 1.], [1., 1.]]), torch.tensor([[1., 0.], [2., 2.]]))
    tensor([-0.0000, -1.0000])
    """
    y_true, y_pred = squeeze_or_expand_to_same_rank(*pair(y_true, y_pred))
    y_pred = _l2_normalize(y_pred, axis)
    y_true = _l2_normalize(y_true, axis)
    return -(y_true * y_pred).sum(_axis(axis))


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> torch.Tensor:
    """Mean over the last axis of `0.5 * e**2` where `|e| <= delta`, else `delta * |e| - 0.5 * delta**2`.

    >>> huber(torch.tensor([[0., 1.], [0., 0.]]), torch.tensor([[0.6, 0.4], [0.4, 0.6]]))
    tensor([0.1800, 0.1300])
    """
    y_true, y_pred = squeeze_or_expand_to_same_rank(*pair(y_true, y_pred))
    delta = _const(y_pred, delta)
    half = _const(y_pred, 0.5)
    error = y_pred - y_true
    abs_error = error.abs()
    return axis_mean(torch.where(abs_error <= delta, half * error.square(), delta * abs_error - half * delta.square()))


def log_cosh(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(log(cosh(y_pred - y_true)), axis=-1)`, as Keras computes it: `x + softplus(-2x) - log(2)`."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*pair(y_true, y_pred))
    x = y_pred - y_true
    return axis_mean(x + tnn.softplus(x * -2.0) - _const(y_pred, _LOG2_F32))


# --------------------------------------------------------------------------- probabilistic


def kl_divergence(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`sum(y_true * log(y_true / y_pred), axis=-1)`, both clipped to [1e-7, 1]."""
    y_true, y_pred = pair(y_true, y_pred)
    y_true = y_true.clamp(_EPS_F32, 1.0)
    y_pred = y_pred.clamp(_EPS_F32, 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(-1)


def poisson(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)`."""
    y_true, y_pred = pair(y_true, y_pred)
    return axis_mean(y_pred - y_true * torch.log(y_pred + _const(y_pred, EPSILON)))


def binary_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: Any = -1
) -> torch.Tensor:
    """Element-wise binary cross-entropy, averaged over `axis`; labels smoothed towards 0.5 by `label_smoothing`.

    >>> binary_crossentropy(torch.tensor([[0., 1.]]), torch.tensor([[0.4, 0.6]]))
    tensor([0.5108])
    """
    y_true, y_pred = pair(y_true, y_pred)
    _same_shape(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return axis_mean(_bce(y_true, y_pred, from_logits), axis)


def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: Any = -1,
) -> torch.Tensor:
    """Binary cross-entropy times the focal factor `(1 - p_t) ** gamma`, weighted `alpha`/`1 - alpha` for
    classes 1/0 when `apply_class_balancing`, averaged over `axis`."""
    y_true, y_pred = pair(y_true, y_pred)
    _same_shape(y_true, y_pred, "binary_focal_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = torch.sigmoid(y_pred)
    bce = _bce(y_true, y_pred, False)
    p_t = y_true * y_pred + (1 - y_true) * (1 - y_pred)
    focal_bce = torch.pow(1.0 - p_t, _f32(gamma, p_t)) * bce
    if apply_class_balancing:
        weight = y_true * alpha + (1 - y_true) * (1 - alpha)
        focal_bce = weight * focal_bce
    return axis_mean(focal_bce, axis)


def categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> torch.Tensor:
    """Cross-entropy against one-hot (or soft) labels; probabilities are renormalised over `axis` first.
    `label_smoothing` mixes the labels with the uniform distribution.

    >>> categorical_crossentropy(torch.tensor([[0., 1., 0.]]), torch.tensor([[0.05, 0.95, 0.]]))
    tensor([0.0513])
    """
    _check_axis(axis, "categorical_crossentropy")
    y_true, y_pred = pair(y_true, y_pred)
    _same_shape(y_true, y_pred, "categorical_crossentropy")
    if y_pred.dim() < 1:
        raise ValueError("categorical_crossentropy: `y_true` and `y_pred` must be at least rank 1, got scalars.")
    _warn_one_class(y_pred, "categorical_crossentropy")
    if label_smoothing:
        y_true = _smooth_categorical(y_true, label_smoothing, y_pred)
    if from_logits:
        log_prob = tnn.log_softmax(y_pred, dim=axis)
    else:
        probs = y_pred / y_pred.sum(axis, keepdim=True)
        log_prob = probs.clamp(EPSILON, 1.0 - EPSILON).log()
    return -(y_true * log_prob).sum(axis)


def categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    alpha: Any = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Categorical cross-entropy with each class's term weighted by `alpha * (1 - p) ** gamma`; `alpha` is a
    number or one weight per class (a list of floats: the values are then float32 at least, as in Keras)."""
    _check_axis(axis, "categorical_focal_crossentropy")
    y_true, y_pred = pair(y_true, y_pred)
    _same_shape(y_true, y_pred, "categorical_focal_crossentropy")
    _warn_one_class(y_pred, "categorical_focal_crossentropy")
    if label_smoothing:
        y_true = _smooth_categorical(y_true, label_smoothing, y_pred)
    if from_logits:
        y_pred = _softmax(y_pred, axis)
    output = y_pred / y_pred.sum(axis, keepdim=True)
    output = output.clamp(_EPS_F32, _ONE_MINUS_EPS_F32)
    cce = -y_true * torch.log(output)
    modulating_factor = torch.pow(1.0 - output, _f32(gamma, output))
    weighting_factor = modulating_factor * _f32(alpha, output)
    return (weighting_factor * cce).sum(axis)


def sparse_categorical_crossentropy_values(
    y_true: Any, y_pred: Any, from_logits: bool, ignore_class: int | None, axis: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The values, and the mask of the labels not ignored (None without `ignore_class`)."""
    y_pred = _float(y_pred)
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    if y_pred.dim() < 1:
        raise ValueError("sparse_categorical_crossentropy: `y_pred` must be at least rank 1, got a scalar.")
    _check_axis(axis, "sparse_categorical_crossentropy")
    class_axis = axis % y_pred.dim() if -y_pred.dim() <= axis < y_pred.dim() else None
    if class_axis is None:
        raise ValueError(
            f"sparse_categorical_crossentropy: `axis`={axis} is out of range for y_pred of shape {tuple(y_pred.shape)}."
        )
    if y_true.dim() == y_pred.dim() and y_true.shape[class_axis] == 1:
        y_true = y_true.squeeze(class_axis)
    if tuple(y_true.shape) != tuple(y_pred.shape[:class_axis] + y_pred.shape[class_axis + 1 :]):
        raise ValueError(
            f"sparse_categorical_crossentropy: `y_true` must have y_pred's shape without its class axis, "
            f"got y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}."
        )
    valid = None
    if ignore_class is not None:
        valid = y_true != ignore_class
        y_true = torch.where(valid, y_true, 0)
        y_pred = torch.where(valid.unsqueeze(class_axis), y_pred, 0.0)
    # the classes on axis 1, as Keras' torch backend lays them out for torch's cross_entropy / nll_loss
    scores = y_pred.unsqueeze(0) if y_pred.dim() == 1 else y_pred.movedim(class_axis, 1)
    labels = y_true.to(torch.int64).reshape(scores.shape[:1] + scores.shape[2:])
    if from_logits:
        log_prob = tnn.log_softmax(scores, dim=1)
    else:
        log_prob = (scores / scores.sum(1, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON).log()
    values = -log_prob.gather(1, labels.unsqueeze(1)).squeeze(1).reshape(y_true.shape)
    if valid is not None:
        values = torch.where(valid, values, 0.0)
    return values, valid


def sparse_categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, ignore_class: int | None = None, axis: int = -1
) -> torch.Tensor:
    """Cross-entropy against integer labels (a size-1 label axis is dropped). Labels equal to
    `ignore_class` give 0 (and `KerasLoss` leaves them out of the mean, as Keras does).

    >>> sparse_categorical_crossentropy(torch.tensor([1]), torch.tensor([[0.05, 0.95, 0.]]))
    tensor([0.0513])
    """
    return sparse_categorical_crossentropy_values(y_true, y_pred, from_logits, ignore_class, axis)[0]


def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float = 0.5) -> torch.Tensor:
    """`(1 - p ** q) / q`, `p` the probability of the integer label (negative labels: `p = 0`).

    Labels of shape `(N, 1)` are read as `(N,)`, as Keras documents (Keras 3.15 itself broadcasts them to
    `(N, N)`).

    >>> categorical_generalized_cross_entropy(torch.tensor([0, 1]), torch.tensor([[0.75, 0.25], [0.36, 0.64]]))
    tensor([0.2679, 0.4000])
    """
    y_pred = _float(y_pred)
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    if y_pred.dim() < 1:
        raise ValueError("categorical_generalized_cross_entropy: `y_pred` must be at least rank 1, got a scalar.")
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(
            f"categorical_generalized_cross_entropy: `y_true` must have y_pred's shape without its class axis, "
            f"got y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}."
        )
    labels = y_true.to(torch.int64)
    p = y_pred.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    p = torch.where(labels >= 0, p, 0.0)
    return (1 - torch.pow(p, _f32(q, p))) / q


# --------------------------------------------------------------------------- hinge


def hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(max(1 - y_true * y_pred, 0), axis=-1)`; 0/1 labels are read as -1/1."""
    y_true, y_pred = pair(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    return axis_mean((1.0 - y_true * y_pred).clamp_min(0.0))


def squared_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(max(1 - y_true * y_pred, 0) ** 2, axis=-1)`; 0/1 labels are read as -1/1."""
    y_true, y_pred = pair(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    return axis_mean((1.0 - y_true * y_pred).clamp_min(0.0).square())


def categorical_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` over the last axis."""
    y_true, y_pred = pair(y_true, y_pred)
    for name, t in (("y_pred", y_pred), ("y_true", y_true)):
        if t.dim() and not t.shape[-1]:
            raise ValueError(f"`{name}` of shape {tuple(t.shape)} has no classes: its last axis is empty.")
    pos = (y_true * y_pred).sum(-1)
    neg = ((1.0 - y_true) * y_pred).amax(-1)
    return (neg - pos + 1.0).clamp_min(0.0)


# --------------------------------------------------------------------------- sequences, segmentation, similarity


def ctc(y_true: Any, y_pred: Any) -> torch.Tensor:
    """CTC loss of integer label sequences `(N, S)` (0 is the blank and the padding; the label length is the
    number of non-zero labels) against logits `(N, T, C)`, every input of full length `T`.

    Computed in float32 (float64 for float64 logits). On the CPU this is torch's `ctc_loss`, as in Keras;
    elsewhere the same recursion in plain tensor ops, since torch's `ctc_loss` reads the lengths on the host.
    An impossible alignment gives `inf`, as in torch.
    """
    y_pred = _float(y_pred)
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    if y_true.dim() != 2:
        raise ValueError(
            "Targets `y_true` are expected to be a tensor of shape `(batch_size, max_length)` in integer format. "
            f"Received: y_true.shape={tuple(y_true.shape)}"
        )
    if y_pred.dim() != 3:
        raise ValueError(
            "Logits `y_pred` are expected to be a tensor of shape `(batch_size, max_length, num_classes)`. "
            f"Received: y_pred.shape={tuple(y_pred.shape)}"
        )
    dtype = torch.float64 if y_pred.dtype == torch.float64 else torch.float32
    log_probs = tnn.log_softmax(y_pred.to(dtype), dim=-1)
    targets = y_true.to(torch.int64)
    target_length = (y_true != 0).sum(-1)
    if y_pred.device.type == "cpu":
        input_length = torch.full((y_pred.shape[0],), y_pred.shape[1], dtype=torch.int64)
        return tnn.ctc_loss(log_probs.transpose(0, 1), targets, input_length, target_length, blank=0, reduction="none")
    return _ctc_recursion(log_probs, targets, target_length)


def _ctc_recursion(log_probs: torch.Tensor, targets: torch.Tensor, target_length: torch.Tensor) -> torch.Tensor:
    """CTC's forward recursion over the blank-interleaved labels, in log space, one step per time step."""
    batch, steps, _ = log_probs.shape
    size = 2 * targets.shape[1] + 1
    extended = targets.new_zeros(batch, size)
    extended[:, 1::2] = targets
    emit = log_probs.gather(2, extended.unsqueeze(1).expand(batch, steps, size))
    skip = torch.zeros(batch, size, dtype=torch.bool, device=targets.device)
    skip[:, 2:] = extended[:, 2:] != extended[:, :-2]
    unreachable = torch.full((batch, size), _CTC_NEG, dtype=log_probs.dtype, device=log_probs.device)
    alpha = torch.cat([emit[:, 0, :2], unreachable], 1)[:, :size]  # a path starts with a blank or the first label
    pad = torch.full((batch, 2), _CTC_NEG, dtype=log_probs.dtype, device=log_probs.device)
    for t in range(1, steps):
        shifted = torch.cat([pad, alpha], 1)
        one = shifted[:, 1 : size + 1]
        two = torch.where(skip, shifted[:, :size], _CTC_NEG)
        alpha = torch.logsumexp(torch.stack([alpha, one, two]), 0) + emit[:, t]
    end = 2 * target_length
    last = alpha.gather(1, end.unsqueeze(1)).squeeze(1)
    before = alpha.gather(1, (end - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
    before = torch.where(target_length > 0, before, _CTC_NEG)
    nll = -torch.logsumexp(torch.stack([last, before]), 0)
    return torch.where(nll > -_CTC_NEG / 2, math.inf, nll)


def dice(y_true: Any, y_pred: Any, axis: Any = None) -> torch.Tensor:
    """`1 - 2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred) + 1e-7)` over `axis` (None: everything)."""
    y_true, y_pred = pair(y_true, y_pred)
    intersection = _sum(y_true * y_pred, axis)
    return 1 - (2.0 * intersection) / (_sum(y_true, axis) + _sum(y_pred, axis) + EPSILON)


def tversky(y_true: Any, y_pred: Any, alpha: float = 0.5, beta: float = 0.5, axis: Any = None) -> torch.Tensor:
    """`1 - TP / (TP + alpha * sum((1 - y_pred) * y_true) + beta * sum(y_pred * (1 - y_true)) + 1e-7)` over `axis`,
    `TP = sum(y_true * y_pred)` (Keras' terms: its `fp` weighs `(1 - y_pred) * y_true`)."""
    y_true, y_pred = pair(y_true, y_pred)
    intersection = _sum(y_true * y_pred, axis)
    fp = _sum((1 - y_pred) * y_true, axis)
    fn = _sum(y_pred * (1 - y_true), axis)
    return 1 - intersection / (intersection + fp * alpha + fn * beta + EPSILON)


def circle(
    y_true: Any,
    y_pred: Any,
    ref_labels: Any = None,
    ref_embeddings: Any = None,
    remove_diagonal: bool = True,
    gamma: float = 80.0,
    margin: float = 0.4,
) -> torch.Tensor:
    """Circle loss of L2-normalised embeddings `(N, D)` with integer labels `(N,)`, against the references
    (default: the batch itself). A sample with no positive or no negative pair gives 0 (and `KerasLoss` leaves
    the zeros out of the mean, as Keras does)."""
    y_pred = _float(y_pred)
    y_true = as_tensor(y_true, "y_true", y_pred.device).to(torch.int64)
    ref_embeddings = y_pred if ref_embeddings is None else as_tensor(ref_embeddings, "ref_embeddings", y_pred.device)
    ref_labels = y_true if ref_labels is None else as_tensor(ref_labels, "ref_labels", y_pred.device).to(torch.int64)
    optim_pos, optim_neg, delta_pos, delta_neg = margin, 1 + margin, margin, 1 - margin
    ref = ref_embeddings.to(y_pred.dtype).t()
    if y_pred.dtype == torch.float16:  # as Keras' torch backend: float16 matmul in float32
        similarity = torch.matmul(y_pred.float(), ref.float()).to(y_pred.dtype)
    else:
        similarity = torch.matmul(y_pred, ref)
    distances = (1 - similarity).clamp_min(0.0)
    query = y_true.reshape(-1, 1) if y_true.dim() == 1 else y_true
    keys = ref_labels.reshape(-1, 1) if ref_labels.dim() == 1 else ref_labels
    positive = query == keys.t()
    negative = ~positive
    if remove_diagonal:
        eye = torch.eye(query.numel(), keys.numel(), dtype=torch.bool, device=positive.device)
        positive = positive & ~eye
    pos_weights = ((optim_pos + distances) * positive.to(distances.dtype)).clamp_min(0.0)
    neg_weights = ((optim_neg - distances) * negative.to(distances.dtype)).clamp_min(0.0)
    pos_wdists = -1 * gamma * pos_weights * (delta_pos - distances)
    neg_wdists = gamma * neg_weights * (delta_neg - distances)
    p_loss = torch.logsumexp(torch.where(positive, pos_wdists, -math.inf), 1)
    n_loss = torch.logsumexp(torch.where(negative, neg_wdists, -math.inf), 1)
    return tnn.softplus(p_loss + n_loss)


# --------------------------------------------------------------------------- names

# Keras' names for the losses metrics.py also resolves (as `compile(loss=...)` and `metrics=[...]` accept them).
BY_NAME = {
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "bce": binary_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}

# Each loss's Keras class and that class's arguments, in its order, with its defaults.
_CLASSES: dict[Callable, tuple[str, dict[str, Any]]] = {
    mean_squared_error: ("MeanSquaredError", {}),
    mean_absolute_error: ("MeanAbsoluteError", {}),
    mean_absolute_percentage_error: ("MeanAbsolutePercentageError", {}),
    mean_squared_logarithmic_error: ("MeanSquaredLogarithmicError", {}),
    cosine_similarity: ("CosineSimilarity", {"axis": -1}),
    huber: ("Huber", {"delta": 1.0}),
    log_cosh: ("LogCosh", {}),
    kl_divergence: ("KLDivergence", {}),
    poisson: ("Poisson", {}),
    binary_crossentropy: ("BinaryCrossentropy", {"from_logits": False, "label_smoothing": 0.0, "axis": -1}),
    binary_focal_crossentropy: (
        "BinaryFocalCrossentropy",
        {
            "apply_class_balancing": False,
            "alpha": 0.25,
            "gamma": 2.0,
            "from_logits": False,
            "label_smoothing": 0.0,
            "axis": -1,
        },
    ),
    categorical_crossentropy: (
        "CategoricalCrossentropy",
        {"from_logits": False, "label_smoothing": 0.0, "axis": -1},
    ),
    categorical_focal_crossentropy: (
        "CategoricalFocalCrossentropy",
        {"alpha": 0.25, "gamma": 2.0, "from_logits": False, "label_smoothing": 0.0, "axis": -1},
    ),
    sparse_categorical_crossentropy: (
        "SparseCategoricalCrossentropy",
        {"from_logits": False, "ignore_class": None, "axis": -1},
    ),
    hinge: ("Hinge", {}),
    squared_hinge: ("SquaredHinge", {}),
    categorical_hinge: ("CategoricalHinge", {}),
    dice: ("Dice", {"axis": None}),
    tversky: ("Tversky", {"alpha": 0.5, "beta": 0.5, "axis": None}),
    circle: ("Circle", {"gamma": 80.0, "margin": 0.4, "remove_diagonal": True}),
    ctc: ("CTC", {}),
    categorical_generalized_cross_entropy: ("CategoricalGeneralizedCrossEntropy", {"q": 0.5}),
}

# Every name `keras.losses.get` accepts: each function's, each class's, and Keras' short names. Keras 3.15
# exports `categorical_generalized_cross_entropy` and its class but leaves them out of `get`; they are here.
LOSSES: dict[str, Callable] = {
    **{fn.__name__: fn for fn in _CLASSES},
    **{class_name: fn for fn, (class_name, _) in _CLASSES.items()},
    "bce": binary_crossentropy,
    "BCE": binary_crossentropy,
    "kld": kl_divergence,
    "KLD": kl_divergence,
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mape": mean_absolute_percentage_error,
    "MAPE": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error,
    "MSLE": mean_squared_logarithmic_error,
}

_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def _is_default(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default) and value == default)


class KerasLoss:
    """A Keras loss by name, with that loss's Keras arguments, reduced as Keras reduces.

    `name` is any name in `LOSSES` (`"mse"`, `"huber"`, `"Huber"`, `"binary_focal_crossentropy"`, ...);
    the keyword arguments are those of the loss's Keras class (`from_logits`, `label_smoothing`, `axis`,
    `delta`, `alpha`, `gamma`, `ignore_class`, ...), with Keras' defaults; any other raises a TypeError.
    `reduction` is Keras': `"sum_over_batch_size"` (the default, `keras_reduce`: `sum(loss_i * w_i) / N`, so
    sample weights scale the loss but do not renormalise it), `"mean"` (the same), `"sum"`,
    `"mean_with_sample_weight"` (divided by the sum of the weights) or `"none"`/None (the weighted values).
    Labels equal to `ignore_class`, and circle's zero losses, are left out of the mean, as Keras masks them.
    The loss is computed in float32, or float64 for float64 predictions, or in `dtype` (Keras: float32
    unless given `dtype`); under autocast too.
    Call it as `(y_pred, y_true, sample_weight=None)` like a torch loss.

    >>> KerasLoss("categorical_crossentropy", from_logits=True)
    KerasLoss('categorical_crossentropy', from_logits=True)
    >>> loss = KerasLoss("huber", delta=0.5)
    >>> loss(torch.tensor([[1.0], [0.25]]), torch.tensor([[0.0], [0.0]]))
    tensor(0.2031)
    >>> KerasLoss.from_config(loss.get_config()) == loss
    True
    """

    def __init__(
        self, name: str, *, reduction: str | None = "sum_over_batch_size", dtype: Any = None, **kwargs: Any
    ) -> None:
        if not isinstance(name, str) or name not in LOSSES:
            raise ValueError(f"Unknown loss {name!r}. Keras names accepted: {', '.join(sorted(LOSSES))}.")
        fn = LOSSES[name]
        accepted = _CLASSES[fn][1]
        unknown = [k for k in kwargs if k not in accepted]
        if unknown:
            takes = ", ".join(f"{k}={v!r}" for k, v in accepted.items()) or "no arguments of its own"
            raise TypeError(
                f"KerasLoss({name!r}) got unexpected argument(s) {', '.join(unknown)}: {fn.__name__} takes "
                f"{takes} (and every loss `reduction` and `dtype`)."
            )
        if reduction not in _REDUCTIONS:
            raise ValueError(f"Invalid `reduction` {reduction!r}: expected one of {', '.join(map(repr, _REDUCTIONS))}.")
        arguments = {**accepted, **kwargs}
        if fn is categorical_generalized_cross_entropy and not 0 < arguments["q"] < 1:
            raise ValueError(f"`q` must be in the interval (0, 1), got {arguments['q']!r}.")
        if dtype is not None and _DTYPES.get(str(dtype).removeprefix("torch.")) is None:
            raise ValueError(f"`dtype` must be None or a float dtype ({', '.join(_DTYPES)}), got {dtype!r}.")
        self.name, self.fn, self.reduction, self.arguments = name, fn, reduction, arguments
        self.dtype: torch.dtype | None = None if dtype is None else _DTYPES[str(dtype).removeprefix("torch.")]

    @property
    def from_logits(self) -> bool:
        """Whether the predictions are logits (False for the losses that take no `from_logits`)."""
        return bool(self.arguments.get("from_logits", False))

    def __call__(self, y_pred: Any, y_true: Any, sample_weight: Any = None) -> torch.Tensor:
        y_pred = as_tensor(y_pred, "y_pred")
        y_true = as_tensor(y_true, "y_true", y_pred.device)
        dtype = self.dtype or (torch.float64 if y_pred.dtype == torch.float64 else torch.float32)
        if y_pred.dtype != dtype:
            y_pred = y_pred.to(dtype)
        # Keras' LossFunctionWrapper first: (N,) targets meet an (N, 1) output as (N, 1).
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        device = y_pred.device.type
        if device in ("cpu", "cuda") and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):  # the loss in its own dtype, as Keras computes it
                values, mask = self._values(y_true, y_pred)
        else:
            values, mask = self._values(y_true, y_pred)
        if sample_weight is not None:
            sample_weight = as_tensor(sample_weight, "sample_weight", values.device)
        if mask is None and self.reduction == "sum_over_batch_size":
            return keras_reduce(values, sample_weight)
        return _reduce_weighted(values, sample_weight, mask, self.reduction)

    def _values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-sample values and Keras' mask of them (None: every value counts)."""
        if self.fn is sparse_categorical_crossentropy:
            return sparse_categorical_crossentropy_values(y_true, y_pred, **self.arguments)
        values = self.fn(y_true, y_pred, **self.arguments)
        return values, (values > 0 if self.fn is circle else None)

    def get_config(self) -> dict[str, Any]:
        """Keras' config: `name`, `reduction` and the loss's arguments (and `dtype` when one was given)."""
        config: dict[str, Any] = {"name": self.name, "reduction": self.reduction}
        if self.dtype is not None:
            config["dtype"] = str(self.dtype).removeprefix("torch.")
        config.update(self.arguments)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> KerasLoss:
        """The loss `get_config` describes."""
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KerasLoss):
            return NotImplemented
        return self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((self.name, self.reduction))

    def __repr__(self) -> str:
        defaults = _CLASSES[self.fn][1]
        parts = [repr(self.name)]
        parts += [f"{k}={v!r}" for k, v in self.arguments.items() if not _is_default(v, defaults[k])]
        if self.reduction != "sum_over_batch_size":
            parts.append(f"reduction={self.reduction!r}")
        if self.dtype is not None:
            parts.append(f"dtype={str(self.dtype).removeprefix('torch.')!r}")
        return f"KerasLoss({', '.join(parts)})"


def _divide_no_nan(x: torch.Tensor, y: Any) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return torch.where(y != 0, x / torch.where(y != 0, y, 1), 0.0)
    return x / y if y else torch.zeros_like(x)


def _reduce_weighted(
    values: torch.Tensor, sample_weight: torch.Tensor | None, mask: torch.Tensor | None, reduction: str | None
) -> torch.Tensor:
    """Keras' `reduce_weighted_values`: the mask folded into the weights, then the reduction."""
    if mask is not None:
        if reduction in ("mean", "sum_over_batch_size"):
            # valid entries weigh total / valid: the mean is over the valid entries
            valid = mask.to(values.dtype).sum()
            mask_weight = _divide_no_nan(torch.full((), mask.numel(), dtype=values.dtype, device=values.device), valid)
            float_mask = torch.where(mask, mask_weight, 0.0)
        else:
            float_mask = mask.to(values.dtype)
        if sample_weight is not None:
            float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight.to(values.dtype))
            sample_weight = sample_weight * float_mask
        else:
            sample_weight = float_mask
    if sample_weight is not None:
        sample_weight = sample_weight.to(values.dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * sample_weight
    if reduction in (None, "none") or values.dim() == 0 or tuple(values.shape) == (0,):
        return values
    loss = values.sum()
    if reduction == "sum":
        return loss
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return _divide_no_nan(loss, sample_weight.sum())
    return _divide_no_nan(loss, values.numel())


def keras_reduce(values: torch.Tensor, sample_weight: Any = None) -> torch.Tensor:
    """Keras' `"sum_over_batch_size"`: `sum(values * sample_weight) / values.numel()`.

    >>> keras_reduce(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0]))
    tensor(0.5000)
    """
    if sample_weight is None:
        return values.mean()
    weight = sample_weight.to(values.dtype)
    values, weight = squeeze_or_expand_to_same_rank(values, weight)
    weighted = values * weight
    return weighted.sum() / weighted.numel()


class Objective:
    """The loss as the Trainer calls it: `(y_pred, y_true, sample_weight) -> scalar`, Keras' reduction.

    `loss` is a Keras name, a `KerasLoss`, a torch loss module or a callable `(y_pred, y_true)`. Sample
    weights need per-sample values: a torch loss module is copied with `reduction="none"` for them.
    `checked` is the call for a first batch, turning a shape mismatch into an error that names both shapes.

    >>> Objective("mse")(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]]), None)
    tensor(5.)
    """

    def __init__(self, loss: Any) -> None:
        self.identity = loss  # what `get("accuracy", loss=...)` looks at
        self.per_sample: Callable | None = None
        if isinstance(loss, str):
            loss = KerasLoss(loss)
        if isinstance(loss, KerasLoss):
            self.fn: Callable = loss
            self.keras = True
            self.name = loss.name
            return
        if not callable(loss):
            raise TypeError(f"`loss` must be a Keras loss name, a torch loss module or a callable, got {loss!r}.")
        self.fn, self.keras = loss, False
        self.name = getattr(loss, "__name__", type(loss).__name__)
        if isinstance(loss, torch.nn.Module) and getattr(loss, "reduction", None) in ("mean", "sum"):
            self.per_sample = copy.copy(loss)
            self.per_sample.reduction = "none"

    def __call__(self, y_pred: torch.Tensor, y_true: Any, sample_weight: Any) -> torch.Tensor:
        if self.keras:
            return self.fn(y_pred, y_true, sample_weight)
        if sample_weight is None:
            out = self.fn(y_pred, y_true)
            return out if out.dim() == 0 else out.mean()
        out = (self.per_sample or self.fn)(y_pred, y_true)
        if out.dim() == 0:
            raise ValueError(
                f"Sample weights need one loss value per sample, but the loss {self.name} returned a scalar. "
                "Use a torch loss module (its reduction is switched to 'none') or a function returning "
                "per-sample values."
            )
        if out.dim() > 1:
            out = out.reshape(out.shape[0], -1).mean(1)
        return keras_reduce(out, sample_weight)

    def checked(self, y_pred: Any, y: Any, w: Any) -> torch.Tensor:
        """The loss of a first batch: a model output or targets that do not fit the loss raise, naming both."""
        if not isinstance(y_pred, torch.Tensor):
            raise TypeError(f"The model must return one tensor, got {type(y_pred).__name__}.")
        if y is None:
            raise ValueError("No targets: pass `y`, or a Dataset/DataLoader yielding (x, y).")
        y_shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        try:
            with warnings.catch_warnings():
                # torch's losses only warn when targets broadcast against the output: refuse instead
                warnings.filterwarnings("error", message="Using a target size", category=UserWarning)
                loss = self(y_pred, y, w)
        except (ValueError, RuntimeError, IndexError, UserWarning) as err:
            raise ValueError(
                f"The model's output of shape {tuple(y_pred.shape)} does not fit the loss {self.name} "
                f"with targets of shape {y_shape}: {err}"
            ) from err
        if loss.dim() != 0:
            raise ValueError(f"The loss must be a scalar, got shape {tuple(loss.shape)}.")
        return loss


def _log_name(loss: Any) -> str:
    """How Keras names a loss in the logs of unnamed outputs: its given name, else its class's in snake case."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, KerasLoss):
        return loss.name
    name = getattr(loss, "__name__", None) or type(loss).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _is_spec(loss: Any) -> bool:
    return isinstance(loss, (str, KerasLoss)) or callable(loss)


class CompileLoss:
    """The Trainer's whole loss over every output: Keras' weighted sum of one loss per output.

    `loss` is one loss for every output, a dict keyed by output name, or a list in output order;
    `loss_weights` a number (one output), a dict or a list. Built on the first batch from the model's
    outputs (`structure.Outputs`). Calling it gives `(total, parts)`: the weighted sum, and the unweighted
    loss of each output (None for one output). `names` are the parts' log names (`<output>_loss`), as
    Keras 3 logs them when there are two or more.

    >>> cl = CompileLoss({"a": "mse", "b": "mae"}, loss_weights={"a": 1.0, "b": 0.5})
    >>> y_pred = {"a": torch.tensor([[1.0]]), "b": torch.tensor([[2.0]])}
    >>> total, parts = cl.checked(y_pred, {"a": torch.tensor([[0.0]]), "b": torch.tensor([[0.0]])}, None)
    >>> float(total), [float(p) for p in parts], cl.names
    (2.0, [1.0, 2.0], ['a_loss', 'b_loss'])
    """

    def __init__(self, loss: Any, loss_weights: Any = None) -> None:
        if isinstance(loss, Mapping):
            self._specs: Any = {k: Objective(v) for k, v in loss.items()}
        elif isinstance(loss, (list, tuple)):
            self._specs = [Objective(v) for v in loss]
        else:
            self._specs = Objective(loss)
        if loss_weights is not None and not isinstance(loss_weights, (int, float, Mapping, list, tuple)):
            raise ValueError(
                "`loss_weights` must be a number (one output), a list or a dict (several outputs); "
                f"got {type(loss_weights).__name__}."
            )
        self.loss, self.loss_weights = loss, loss_weights
        self.outputs: Outputs | None = None
        self.objectives: list[Objective] = []
        self.weights: list[float | None] = []
        self.names: list[str] = []
        self._fast: Objective | None = None

    @property
    def built(self) -> bool:
        return self.outputs is not None

    @property
    def identity(self) -> Any:
        """What `"accuracy"` looks at for a single-output model (the loss as given)."""
        return self.loss

    def build(self, y_pred: Any) -> None:
        """Lay the losses and their weights over the model's outputs; a mismatch raises naming both sides."""
        outputs = Outputs(y_pred)
        objectives = self._per_output(self._specs, outputs, "loss")
        if any(o is None for o in objectives):
            missing = [outputs.label(i) for i, o in enumerate(objectives) if o is None]
            raise ValueError(f"No loss for output(s) {', '.join(missing)}: `loss` names {self._keys()}.")
        weights = self._weights(outputs)
        names = [
            f"{name}_loss" if name is not None else f"{_log_name(o.identity)}_loss"
            for name, o in zip(outputs.names, objectives)
        ]
        self.outputs, self.objectives, self.weights, self.names = outputs, objectives, weights, names
        plain = outputs.kind == "tensor" and weights[0] is None
        self._fast = objectives[0] if plain else None

    def _keys(self) -> str:
        return repr(list(self._specs)) if isinstance(self._specs, Mapping) else f"a list of {len(self._specs)}"

    def _per_output(self, specs: Any, outputs: Outputs, what: str) -> list[Any]:
        if not isinstance(specs, (Mapping, list, tuple)):
            return [specs] * outputs.n
        if isinstance(specs, Mapping):
            if outputs.keys is None or (outputs.single and len(specs) != 1):
                raise ValueError(
                    f"`{what}` is a dict with keys {list(specs)}, but the model has {outputs.describe()}"
                    + ("; give a list in output order." if outputs.keys is None else ".")
                )
            extra = [k for k in specs if k not in outputs.keys]
            if extra:
                raise ValueError(
                    f"`{what}` has keys {list(specs)}; not an output of the model: {extra} "
                    f"(its outputs are {outputs.keys})."
                )
            return [specs.get(k) for k in outputs.keys]
        if len(specs) != outputs.n:
            raise ValueError(f"`{what}` is a list of {len(specs)}, but the model has {outputs.describe()}.")
        return list(specs)

    def _weights(self, outputs: Outputs) -> list[float | None]:
        w = self.loss_weights
        if w is None:
            return [None] * outputs.n
        if isinstance(w, (int, float)) and not isinstance(w, bool):
            if not outputs.single:
                raise ValueError(f"`loss_weights` is one number, but the model has {outputs.describe()}.")
            return [float(w)]
        weights = self._per_output(w, outputs, "loss_weights")
        return [1.0 if v is None else float(v) for v in weights]

    def __call__(self, y_pred: Any, y: Any, sample_weight: Any) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        if self._fast is not None:
            return self._fast(y_pred, y, sample_weight), None
        out = self.outputs
        parts = [
            o(p, t, w)
            for o, p, t, w in zip(self.objectives, out.predictions(y_pred), out.targets(y), out.weights(sample_weight))
        ]
        return self._total(parts), (parts if out.n > 1 else None)

    def _total(self, parts: list[torch.Tensor]) -> torch.Tensor:
        total = None
        for part, weight in zip(parts, self.weights):
            value = part if weight is None else part * weight
            total = value if total is None else total + value
        return total  # type: ignore[return-value]

    def checked(self, y_pred: Any, y: Any, sample_weight: Any) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """The loss of a first batch: the layout built (once), each output checked against its target."""
        if y is None:
            raise ValueError("No targets: pass `y`, or a Dataset/DataLoader yielding (x, y).")
        if not self.built:
            self.build(y_pred)
        out = self.outputs
        preds, targets, weights = out.predictions(y_pred), out.targets(y), out.weights(sample_weight)
        parts = []
        for i, (o, p, t, w) in enumerate(zip(self.objectives, preds, targets, weights)):
            try:
                parts.append(o.checked(p, t, w))
            except ValueError as err:
                if out.single:
                    raise
                raise ValueError(f"Output {out.label(i)}: {err}") from err
        return self._total(parts), (parts if out.n > 1 else None)
