"""Keras' per-sample losses as pure tensor functions (the numbers `keras.losses.<name>` returns).

Each returns one value per sample (the class or last axis reduced). They serve as metrics
(`get("mae")`, `get("binary_crossentropy")`, ...) and as the Trainer's Keras-named losses.
Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does.

>>> import torch
>>> mean_absolute_error(torch.tensor([[0., 1.], [0., 0.]]), torch.tensor([[1., 1.], [1., 0.]]))
tensor([0.5000, 0.5000])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as tnn

from ._checks import as_tensor, squeeze_or_expand_to_same_rank

__all__ = [
    "mean_absolute_error",
    "mean_squared_error",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
]

EPSILON = 1e-7  # keras.backend.epsilon()


def _pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = as_tensor(y_pred, "y_pred")
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    return y_true.to(y_pred.dtype), y_pred


def _same_shape(y_true: torch.Tensor, y_pred: torch.Tensor, loss: str) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{loss}: `y_true` and `y_pred` must have the same shape, got y_true {tuple(y_true.shape)} "
            f"and y_pred {tuple(y_pred.shape)}."
        )


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(|y_true - y_pred|, axis=-1)`."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    return (y_true - y_pred).abs().mean(-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean((y_true - y_pred) ** 2, axis=-1)`."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    return (y_true - y_pred).square().mean(-1)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> torch.Tensor:
    """Element-wise binary cross-entropy, averaged over the last axis.

    >>> binary_crossentropy(torch.tensor([[0., 1.]]), torch.tensor([[0.4, 0.6]]))
    tensor([0.5108])
    """
    y_true, y_pred = _pair(y_true, y_pred)
    _same_shape(y_true, y_pred, "binary_crossentropy")
    if from_logits:
        values = tnn.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        values = tnn.binary_cross_entropy(y_pred.clamp(EPSILON, 1.0 - EPSILON), y_true, reduction="none")
    return values.mean(-1)


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> torch.Tensor:
    """Cross-entropy against one-hot (or soft) labels; probabilities are renormalised first.

    >>> categorical_crossentropy(torch.tensor([[0., 1., 0.]]), torch.tensor([[0.05, 0.95, 0.]]))
    tensor([0.0513])
    """
    y_true, y_pred = _pair(y_true, y_pred)
    _same_shape(y_true, y_pred, "categorical_crossentropy")
    if from_logits:
        log_prob = tnn.log_softmax(y_pred, dim=-1)
    else:
        probs = y_pred / y_pred.sum(-1, keepdim=True)
        log_prob = probs.clamp(EPSILON, 1.0 - EPSILON).log()
    return -(y_true * log_prob).sum(-1)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> torch.Tensor:
    """Cross-entropy against integer labels (a trailing size-1 label axis is dropped).

    >>> sparse_categorical_crossentropy(torch.tensor([1]), torch.tensor([[0.05, 0.95, 0.]]))
    tensor([0.0513])
    """
    y_pred = as_tensor(y_pred, "y_pred")
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    if y_true.dim() == y_pred.dim() and y_true.dim() > 0 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_pred.dim() < 1 or tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(
            f"sparse_categorical_crossentropy: `y_true` must have y_pred's shape without its class axis, "
            f"got y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}."
        )
    target = y_true.to(torch.int64)
    if from_logits:
        log_prob = tnn.log_softmax(y_pred, dim=-1)
    else:
        log_prob = (y_pred / y_pred.sum(-1, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON).log()
    return -log_prob.gather(-1, target.unsqueeze(-1)).squeeze(-1)


# Keras' names for these losses (as `compile(loss=...)` and `metrics=[...]` accept them).
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
