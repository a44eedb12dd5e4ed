"""The six Keras accuracy definitions as pure tensor functions.

Each returns float32 per-element values of 1.0 (right) or 0.0 (wrong), with the shape
`keras.metrics.<same name>` returns; the stateful metrics in `torch_keras_metrics.metrics`
reduce them. The code reads no tensor value on the host, so it runs unchanged on CPU,
CUDA and `meta` tensors and traces under `torch.compile(fullgraph=True)`.

Where Keras' torch backend misbehaves these kernels follow the rule instead
(docs/semantics.md §17, edge cases §3): labels are compared as integers, an out-of-range label is wrong
rather than an out-of-bounds read, and `k` larger than the number of classes means
every in-range label is in the top k.

>>> import torch
>>> from torch_keras_metrics import functional as F
>>> F.binary_accuracy(torch.tensor([0, 0, 0, 1, 1, 0]), torch.tensor([0.2, 0.3, 0.6, 0.7, 0.8, 0.1]))
tensor([1., 1., 0., 1., 1., 1.])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import torch

from ._checks import (
    as_tensor,
    broadcast_shape,
    broadcast_shapes,
    check_k,
    check_scores,
    check_threshold,
    squeeze_or_expand_to_same_rank,
)

__all__ = [
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
]

# --------------------------------------------------------------------------- inputs


def _pair(y_true: Any, y_pred: Any, true_as_pred: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as tensors on y_pred's device (or y_true's, if only it is a tensor).

    With `true_as_pred`, a `y_true` that is not yet a tensor is read straight into y_pred's dtype, as
    Keras' `convert_to_tensor(y_true, dtype=y_pred.dtype)` does (a list of floats meeting float64
    scores is not rounded to float32 on the way).
    """
    if not isinstance(y_pred, torch.Tensor) and isinstance(y_true, torch.Tensor):
        return y_true, as_tensor(y_pred, "y_pred", y_true.device)
    y_pred = as_tensor(y_pred, "y_pred")
    dtype = y_pred.dtype if true_as_pred and not isinstance(y_true, torch.Tensor) else None
    return as_tensor(y_true, "y_true", y_pred.device, dtype), y_pred


def _check_order(y_true: torch.Tensor, y_pred: torch.Tensor, name: str) -> None:
    """Refuse torchmetrics' argument order `(preds, target)` where dtypes and shapes leave no doubt:
    float "labels" with a class axis beside integer "scores" without one (metadata only, no sync)."""
    if (
        y_true.is_floating_point()
        and not (y_pred.is_floating_point() or y_pred.is_complex() or y_pred.dtype == torch.bool)
        and y_true.dim() == y_pred.dim() + 1
    ):
        raise ValueError(
            f"{name}: `y_true` of shape {tuple(y_true.shape)} holds {y_true.dtype} scores with a class axis and "
            f"`y_pred` of shape {tuple(y_pred.shape)} holds {y_pred.dtype} labels: that is torchmetrics' order "
            "(preds, target). These metrics take Keras' order: call metric(target, preds), or make the metric "
            "with torchmetrics_order=True to pass (preds, target)."
        )


def _argmax(x: torch.Tensor) -> torch.Tensor:
    # torch.argmax has no bool kernel; ties and NaNs resolve as torch (and so Keras) resolve them.
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    if _use_blocked(x):
        return _blocked_argmax(x.reshape(-1, x.shape[-1])).reshape(x.shape[:-1])
    return x.argmax(-1)


# On CPU torch's argmax reads about five times slower than amax, which runs at memory speed. A large
# argmax is therefore found in two steps: the first block of _ARGMAX_BLOCK classes that holds the row's
# maximum (one amax per block, then an argmax over the few block maxima), and the first maximum inside
# that one block. amax propagates NaN and argmax picks the first NaN, else the first maximum, at both
# steps, so ties and NaNs resolve exactly as in one torch.argmax (tests/test_kernels_large.py).
_ARGMAX_BLOCK = 128
_BLOCKED_MIN_CLASSES = 2048
_BLOCKED_MIN_ELEMENTS = 1 << 18


def _use_blocked(x: torch.Tensor) -> bool:
    return (
        x.dim() > 0
        and x.shape[-1] >= _BLOCKED_MIN_CLASSES
        and x.numel() >= _BLOCKED_MIN_ELEMENTS
        and x.device.type == "cpu"
        and x.stride(-1) == 1
        and not torch.compiler.is_compiling()
    )


def _blocked_argmax(x: torch.Tensor) -> torch.Tensor:
    """`x.argmax(-1)` for rows `x` (R, C) with C >= _ARGMAX_BLOCK and a contiguous last axis.

    >>> x = torch.zeros(2, 300); x[0, 7] = x[0, 200] = 1.0; x[1, 299] = float("nan")
    >>> _blocked_argmax(x)
    tensor([  7, 299])
    """
    rows, classes = x.shape
    k = _ARGMAX_BLOCK
    full = classes // k
    blocks = x[:, : full * k].reshape(rows, full, k)  # a view: rows keep their stride
    block_max = blocks.amax(-1)
    tail = x[:, full * k :]
    if full * k < classes:
        block_max = torch.cat([block_max, tail.amax(-1, keepdim=True)], -1)
    first = block_max.argmax(-1, keepdim=True)
    inside = blocks.gather(1, first.clamp(max=full - 1).unsqueeze(-1).expand(rows, 1, k)).squeeze(1).argmax(-1)
    first = first.squeeze(-1)
    index = first * k + inside
    if full * k < classes:  # the tail's first maximum, where the tail holds the row's
        index = torch.where(first == full, tail.argmax(-1) + full * k, index)
    return index


def _labels_as_index(
    labels: torch.Tensor, num_classes: int, truncate: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer class index (clamped in range, safe to gather with) and a mask of valid labels.

    A label is valid when it is an integer in [0, num_classes): negative, too large or NaN labels
    are wrong, never right and never an out-of-bounds read. A fractional float label is wrong,
    unless `truncate`, where it is first cut to an integer as Keras' int cast cuts it (1.5 -> 1).
    """
    if labels.is_floating_point():
        wide = labels.to(torch.float64)  # exact for every float label, even bfloat16
        whole = wide.trunc()
        valid = (whole >= 0) & (whole < num_classes)  # NaN fails both comparisons
        if not truncate:
            valid &= wide == whole
        index = torch.where(valid, whole, 0).to(torch.int64)
    else:
        labels = labels.to(torch.int64)
        index = labels.clamp(0, num_classes - 1)
        valid = index == labels
    return index, valid


# --------------------------------------------------------------------------- counting kernels
#
# The rule that decides both argmax and top-k without sorting: a class *beats* the target
# when it scores strictly higher (NaN counting as the highest score, as torch's argmax and
# topk treat it), and *beats it for argmax* also when it scores equal at a lower index.
# The target is the argmax when nothing beats it, and in the top k when fewer than k classes
# score strictly higher. A NaN target score is never in the top k (Keras: NaN >= x is false).

_BLOCK = 1 << 20  # elements per block in the eager kernels: bounds the temporaries at 1 MiB of bools


def _count_at_most(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Classes scoring <= the target; the rest score higher or are NaN (NaN ranks above every
    # number). A NaN target has none, so with k < C it is never in the top k: no NaN test needed.
    return (scores <= target).sum(-1)


def _in_top_k_eager(scores: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """Rows of `scores` (R, C), targets `index` (R,): is the target in the top k? Bool (R,)."""
    target = scores.gather(-1, index.unsqueeze(-1))
    rows = max(1, _BLOCK // scores.shape[-1])
    if scores.shape[0] <= rows:
        at_most = _count_at_most(scores, target)
    else:
        at_most = torch.cat([_count_at_most(s, t) for s, t in zip(scores.split(rows), target.split(rows))])
    return at_most > scores.shape[-1] - k


def _is_argmax_fused(scores: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Argmax-free `scores.argmax(-1) == index`, written for the compiler to fuse into one pass."""
    target = scores.gather(-1, index.unsqueeze(-1))
    before = torch.arange(scores.shape[-1], device=scores.device) < index.unsqueeze(-1)
    beats = torch.where(
        target != target,
        (scores != scores) & before,  # a NaN target is the argmax when no NaN precedes it
        torch.where(before, ~(scores < target), ~(scores <= target)),  # NaN scores beat a number
    )
    return beats.sum(-1) == 0  # an integer count vectorises better than a bool all()


def _in_top_k_fused(scores: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    target = scores.gather(-1, index.unsqueeze(-1))
    return _count_at_most(scores, target) > scores.shape[-1] - k


# Large inputs go through torch.compile'd versions of the fused kernels: one pass over the
# scores, no (N, C) temporary. Small ones stay eager, where compiling would not pay.
# TORCH_KERAS_METRICS_COMPILE=0 turns compilation off; =1 compiles at every size.
_COMPILE_MIN_ELEMENTS = 1 << 16
_compiled: dict[str, Callable] = {}
_compile_failed: set[str] = set()
_compile_min_elements = _COMPILE_MIN_ELEMENTS


def set_compile(mode: str | bool) -> None:
    """Choose when the counting kernels run compiled: "auto" (large inputs), True (always), False (never).

    The environment variable TORCH_KERAS_METRICS_COMPILE (auto, 1 or 0) sets the same at import.
    """
    global _compile_min_elements
    mode = str(mode).lower()
    if mode in ("0", "false", "off", "never"):
        _compile_min_elements = -1
    elif mode in ("1", "true", "on", "always"):
        _compile_min_elements = 0
    elif mode == "auto":
        _compile_min_elements = _COMPILE_MIN_ELEMENTS
    else:
        raise ValueError(f"`mode` must be 'auto', True or False, got {mode!r}.")


set_compile(os.environ.get("TORCH_KERAS_METRICS_COMPILE", "auto"))


@contextlib.contextmanager
def compile_mode(mode: str | bool) -> Iterator[None]:
    """`set_compile(mode)` inside a `with` block; the mode before it comes back after.

    >>> with compile_mode(False):
    ...     sparse_categorical_accuracy(torch.tensor([1]), torch.tensor([[0.2, 0.8]]))
    tensor([1.])
    """
    before = _compile_min_elements
    set_compile(mode)
    try:
        yield
    finally:
        globals()["_compile_min_elements"] = before


def compile_failures() -> frozenset[str]:
    """The kernels whose compilation failed in this process (they run eager from then on)."""
    return frozenset(_compile_failed)


def use_compiled(scores: torch.Tensor, name: str) -> bool:
    return (
        0 <= _compile_min_elements <= scores.numel()
        and name not in _compile_failed
        and scores.device.type in ("cpu", "cuda")
        and not torch.compiler.is_compiling()
    )


def run_compiled(name: str, fn: Callable, eager: Callable, *args: Any) -> torch.Tensor:
    if name not in _compiled:
        _compiled[name] = torch.compile(fn, dynamic=True, fullgraph=True)
    try:
        return _compiled[name](*args)
    except Exception:  # no working compiler on this machine: remember, and stay eager
        _compile_failed.add(name)
        return eager(*args)


def _is_argmax(scores: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    if _use_blocked(scores):
        return _blocked_argmax(scores) == index
    if use_compiled(scores, "argmax"):
        return run_compiled("argmax", _is_argmax_fused, _is_argmax_eager, scores, index)
    return _is_argmax_eager(scores, index)


def _is_argmax_eager(scores: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return _argmax(scores) == index


def _in_top_k(scores: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    if k >= scores.shape[-1]:  # every class is in the top k; only a NaN target score is not
        target = scores.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        return target == target
    if use_compiled(scores, "top_k"):
        return run_compiled("top_k", _in_top_k_fused, _in_top_k_eager, scores, index, k)
    return _in_top_k_eager(scores, index, k)


def _sparse_match(
    labels: torch.Tensor,
    scores: torch.Tensor,
    rule: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    truncate: bool = False,
) -> torch.Tensor:
    """Apply `rule(scores_2d, index_1d)` to labels broadcast against the leading axes of scores."""
    num_classes = scores.shape[-1]
    if rule is _is_argmax and not labels.is_floating_point() and labels.shape == scores.shape[:-1]:
        # The common case, kept to three kernels: argmax is always in range, so a label outside
        # [0, C) can never equal it and needs no mask.
        if _use_blocked(scores) or not use_compiled(scores, "argmax"):
            return _argmax(scores) == labels
    lead = _lead_shape(labels, scores)
    index, valid = _labels_as_index(labels, num_classes, truncate)
    scores = scores.expand(*lead, num_classes).reshape(-1, num_classes)
    index = index.expand(lead).reshape(-1)
    hit = rule(scores, index).reshape(lead) & valid
    return hit


def _lead_shape(labels: torch.Tensor, scores: torch.Tensor) -> torch.Size:
    """Broadcast shape of the labels and the scores' leading axes, or a ValueError with both full shapes."""
    lead = broadcast_shapes(labels.shape, scores.shape[:-1])
    if lead is None:
        raise ValueError(
            f"`y_true` of shape {tuple(labels.shape)} does not fit `y_pred` of shape {tuple(scores.shape)}: "
            f"expected one label per row of scores, i.e. y_true of shape {tuple(scores.shape[:-1])}."
        )
    return lead


def _floats(matches: torch.Tensor) -> torch.Tensor:
    return matches.to(torch.float32)


# ------------------------------------------------------------- bool kernels (the metrics sum these directly)


def _accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    y_true, y_pred = _pair(y_true, y_pred, true_as_pred=True)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true.to(y_pred.dtype), y_pred)
    broadcast_shape(y_true, y_pred, "y_true", "y_pred")
    return y_true == y_pred


def _threshold(threshold: Any) -> Any:
    threshold = check_threshold(threshold)
    if isinstance(threshold, float):
        # Keras holds the threshold in a float32 tensor: 0.7 is 0.699999988, also against float64 scores.
        threshold = float(np.float32(threshold))
    return threshold


# Counting kernels for the elementwise accuracies: the stateful metrics need only the number of
# matches, and compiled that is one pass over both inputs with no full-size temporary (eagerly,
# `y_pred > t`, its cast and `==` each write one: 10-20x slower at 4096x32000).


def _equal_count(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return (y_true.to(y_pred.dtype) == y_pred).sum()


def _binary_count(y_true: torch.Tensor, y_pred: torch.Tensor, threshold: Any) -> torch.Tensor:
    return (y_true == (y_pred > threshold).to(y_true.dtype)).sum()


def _count_matches(name: str, fn: Callable, y_true: Any, y_pred: Any, *args: Any) -> torch.Tensor | None:
    """The int64 number of matches, compiled, for large tensors of one shape on one device;
    None where the caller should take the elementwise path."""
    if not (isinstance(y_true, torch.Tensor) and isinstance(y_pred, torch.Tensor)):
        return None
    if y_true.shape != y_pred.shape or y_true.device != y_pred.device or not use_compiled(y_pred, name):
        return None
    if y_true.is_complex() or y_pred.is_complex():
        return None
    return run_compiled(name, fn, fn, y_true, y_pred, *args)


def _accuracy_count(y_true: Any, y_pred: Any) -> torch.Tensor | None:
    return _count_matches("equal_count", _equal_count, y_true, y_pred)


def _binary_accuracy_count(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor | None:
    return _count_matches("binary_count", _binary_count, y_true, y_pred, _threshold(threshold))


def _binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor:
    threshold = _threshold(threshold)
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    broadcast_shape(y_true, y_pred, "y_true", "y_pred")
    return y_true == (y_pred > threshold).to(y_true.dtype)


def _categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    hits = _categorical_hits(y_true, y_pred)
    if hits is not None:
        return hits
    y_true, y_pred = _pair(y_true, y_pred)  # Keras takes argmax(y_true) before any cast
    _check_order(y_true, y_pred, "categorical_accuracy")
    _check_one_hot(y_true, y_pred)
    return _sparse_match(_argmax(y_true), y_pred, _is_argmax)  # large: blocked on CPU, else one compiled pass


_INTEGER_DTYPES = frozenset(
    [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64]
)


def _plain_argmax_pays(scores: torch.Tensor) -> bool:
    """Small scores: torch's argmax, neither blocked nor compiled (the cheapest test of the hot path)."""
    n = scores.numel()
    return n < _BLOCKED_MIN_ELEMENTS and not 0 <= _compile_min_elements <= n


def _sparse_categorical_hits(y_true: Any, y_pred: Any) -> torch.Tensor | None:
    """The common case, (N,) integer labels and (N, C) float scores on one device, in the fewest calls:
    (N,) bools, or None where the general path must decide (metadata only).

    >>> _sparse_categorical_hits(torch.tensor([1, 0]), torch.tensor([[0.2, 0.8], [0.6, 0.4]]))
    tensor([True, True])
    """
    if (
        type(y_true) is torch.Tensor
        and type(y_pred) is torch.Tensor
        and y_true.dtype in _INTEGER_DTYPES
        and y_true.dim() == 1
        and y_pred.dim() == 2
        and y_true.shape[0] == y_pred.shape[0]
        and y_pred.shape[1] > 0
        and y_pred.is_floating_point()
        and y_true.device == y_pred.device
    ):
        if _plain_argmax_pays(y_pred):
            return y_pred.argmax(-1) == y_true
        if _use_blocked(y_pred) or not use_compiled(y_pred, "argmax"):
            return _argmax(y_pred) == y_true
    return None


def _categorical_hits(y_true: Any, y_pred: Any) -> torch.Tensor | None:
    """The common case of categorical accuracy, (N, C) labels and (N, C) float scores on one device:
    (N,) bools, or None where the general path must decide (metadata only)."""
    if (
        type(y_true) is torch.Tensor
        and type(y_pred) is torch.Tensor
        and y_pred.dim() == 2
        and y_true.shape == y_pred.shape
        and y_pred.shape[1] > 0
        and y_pred.is_floating_point()
        and (y_true.is_floating_point() or y_true.dtype in _INTEGER_DTYPES)
        and y_true.device == y_pred.device
    ):
        if _plain_argmax_pays(y_pred):
            return y_true.argmax(-1) == y_pred.argmax(-1)
        if _use_blocked(y_pred) or not use_compiled(y_pred, "argmax"):
            return _argmax(y_true) == _argmax(y_pred)
    return None


def _sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    hits = _sparse_categorical_hits(y_true, y_pred)
    if hits is not None:
        return hits
    y_true, y_pred = _pair(y_true, y_pred)  # labels keep their own dtype: 2049 stays 2049 beside float16
    _check_order(y_true, y_pred, "sparse_categorical_accuracy")
    check_scores(y_pred)
    label_axis = y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1
    if label_axis:
        y_true = y_true.squeeze(-1)
    # Keras compares labels in y_pred's dtype: against integer scores a label 1.5 is cast to 1.
    matches = _sparse_match(y_true, y_pred, _is_argmax, truncate=not y_pred.is_floating_point())
    if not label_axis and matches.dim() > 1 and matches.shape[-1] == 1:
        matches = matches.squeeze(-1)  # only one trailing size-1 axis goes: (N, 1, 1) labels give (N, 1)
    return matches


def _rows_of(labels: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Labels laid over the rows of the scores, as Keras' top-k flattens both: labels (N,) meet scores
    (N, 1, C) row by row, not broadcast N by N (only when the counts agree and the shapes do not)."""
    rows = scores.shape[:-1]
    if labels.shape != rows and labels.numel() == rows.numel() and broadcast_shapes(labels.shape, rows) != rows:
        return labels.reshape(rows)
    return labels


def _top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> torch.Tensor:
    k = check_k(k)
    y_true, y_pred = _pair(y_true, y_pred, true_as_pred=True)
    _check_order(y_true, y_pred, "top_k_categorical_accuracy")
    _check_one_hot(y_true, y_pred)
    # As Keras: y_true is cast to y_pred's dtype before its argmax (soft labels meet integer scores as 0s).
    labels = _argmax(y_true.to(y_pred.dtype))
    matches = _sparse_match(_rows_of(labels, y_pred), y_pred, lambda s, i: _in_top_k(s, i, k))
    return matches.reshape(labels.shape) if matches.shape != labels.shape else matches


def _sparse_top_k_categorical_accuracy(
    y_true: Any, y_pred: Any, k: int = 5, from_sorted_ids: bool = False
) -> torch.Tensor:
    k = check_k(k)
    y_true, y_pred = _pair(y_true, y_pred)
    _check_order(y_true, y_pred, "sparse_top_k_categorical_accuracy")
    check_scores(y_pred, "y_pred")
    shape = y_true.shape
    labels = y_true.squeeze(-1) if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1 else y_true
    if from_sorted_ids:
        lead = _lead_shape(labels, y_pred)
        ids = y_pred[..., :k]
        if not ids.is_floating_point() and labels.is_floating_point():
            # Keras casts labels to the ids' dtype: 1.5 becomes 1; a NaN label matches nothing.
            labels = torch.where(labels == labels, labels.to(torch.float64).trunc(), -1).to(torch.int64)
        matches = (labels.unsqueeze(-1) == ids).any(-1).expand(lead)
    else:
        # Keras converts the labels to int32 here, cutting fractions (1.5 -> 1).
        matches = _sparse_match(_rows_of(labels, y_pred), y_pred, lambda s, i: _in_top_k(s, i, k), truncate=True)
    if matches.shape != shape and matches.numel() == shape.numel():
        matches = matches.reshape(shape)
    return matches


# --------------------------------------------------------------------------- the six definitions


def accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where `y_true == y_pred` exactly, after casting `y_true` to `y_pred`'s dtype.

    Ranks are first made equal by squeezing or expanding a trailing size-1 axis, then the
    two broadcast, as in Keras.

    >>> accuracy([[1], [2], [3], [4]], [[0], [2], [3], [4]])
    tensor([[0.],
            [1.],
            [1.],
            [1.]])
    """
    return _floats(_accuracy(y_true, y_pred))


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor:
    """1.0 where `(y_pred > threshold) == y_true`, one value per element (no mean over the last axis).

    The comparison is strict: a score equal to the threshold predicts 0.

    >>> binary_accuracy([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    tensor([[1.],
            [1.],
            [1.],
            [0.]])
    """
    return _floats(_binary_accuracy(y_true, y_pred, threshold=threshold))


def categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where `argmax(y_true) == argmax(y_pred)` over the last axis (ties: the first maximum).

    `y_true` is one-hot or soft; the result has shape `y_pred.shape[:-1]`.

    >>> categorical_accuracy([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    tensor([0., 1.])
    """
    return _floats(_categorical_accuracy(y_true, y_pred))


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where the integer label `y_true` is `argmax(y_pred)` (ties: the first maximum).

    A trailing size-1 axis of `y_true` is dropped; labels outside `[0, C)` are wrong.

    >>> sparse_categorical_accuracy([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
    tensor([0., 1.])
    """
    return _floats(_sparse_categorical_accuracy(y_true, y_pred))


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> torch.Tensor:
    """1.0 where `argmax(y_true)` is among the `k` highest scores of `y_pred`.

    Ties are generous: the target is in when fewer than `k` classes score strictly higher.
    With `k` >= the number of classes every target is in.

    >>> top_k_categorical_accuracy([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], k=1)
    tensor([0., 1.])
    """
    return _floats(_top_k_categorical_accuracy(y_true, y_pred, k=k))


def sparse_top_k_categorical_accuracy(
    y_true: Any, y_pred: Any, k: int = 5, from_sorted_ids: bool = False
) -> torch.Tensor:
    """1.0 where the integer label `y_true` is among the `k` highest scores of `y_pred`.

    With `from_sorted_ids=True`, `y_pred` holds class ids sorted by score (best first) and a
    label is right when it is among the first `k`. The result has `y_true`'s shape.

    >>> sparse_top_k_categorical_accuracy([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], k=1)
    tensor([0., 1.])
    """
    return _floats(_sparse_top_k_categorical_accuracy(y_true, y_pred, k=k, from_sorted_ids=from_sorted_ids))


def _check_one_hot(y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
    check_scores(y_pred)
    if y_true.dim() == 0 or y_true.shape[-1] != y_pred.shape[-1]:
        raise ValueError(
            f"`y_true` must be one-hot (or soft) labels with one column per class: y_true has shape "
            f"{tuple(y_true.shape)} but y_pred has shape {tuple(y_pred.shape)} "
            f"({y_pred.shape[-1]} classes). For integer labels use the sparse_ variant."
        )
    broadcast_shape(y_true[..., 0], y_pred[..., 0], "y_true", "y_pred", " (without their class axes)")
