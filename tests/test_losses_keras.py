"""Every Keras loss against Keras 3 itself (its torch backend).

- The per-sample functions against `keras.losses.<function>`: seeded data of shapes (N,), (N, 1), (N, C),
  (N, T, C), ties, clipped probabilities, every argument that changes the numbers; float32 and float64
  (float16 and bfloat16 against Keras too, to half precision).
- `KerasLoss` against the Keras classes (`keras.losses.<Class>(...)(y_true, y_pred, sample_weight)`) under
  every reduction, with and without sample weights, masks included (`ignore_class`, circle's zeros), and
  their gradients.
- `LOSSES` against `keras.losses.get`, the arguments against the Keras classes' signatures, `get_config` /
  `from_config` round trips, the refusals, and no host reads (every loss runs on `meta` tensors).
"""

from __future__ import annotations

import inspect
import itertools
import warnings
import zlib

import numpy as np
import pytest
import torch

from tests.conftest import to_numpy  # also sets KERAS_BACKEND=torch before keras is imported
from torch_keras_metrics import losses as L
from torch_keras_metrics.losses import LOSSES, KerasLoss

N, C, T = 6, 4, 3
CLASS_NAMES = {fn.__name__: class_name for fn, (class_name, _) in L._CLASSES.items()}
REDUCTIONS = [
    ("sum_over_batch_size", False),
    ("sum_over_batch_size", True),
    ("mean", True),
    ("sum", True),
    ("mean_with_sample_weight", True),
    ("mean_with_sample_weight", False),
    ("none", True),
    (None, False),
]


# --------------------------------------------------------------------------- data


def _probs(rng, shape, zeros=True):
    p = rng.uniform(0.0, 1.0, shape)
    if zeros and p.size > 3:  # exact 0 and 1: the clipping matters
        p.flat[0], p.flat[1] = 0.0, 1.0
    return p


def _one_hot(rng, shape, axis=-1):
    labels = rng.integers(0, shape[axis], np.delete(shape, axis % len(shape)))
    return np.moveaxis(np.eye(shape[axis])[labels], -1, axis)


def make(kind, shape, seed):
    """(y_true, y_pred) as numpy arrays (labels as int64) for a kind of loss."""
    rng = np.random.default_rng(seed)
    if kind == "real":
        t, p = rng.normal(size=shape), rng.normal(size=shape)
        p.flat[0] = t.flat[0]  # a zero error
        return t, p
    if kind == "wide":  # large errors: huber's linear part, log_cosh past softplus' threshold
        return rng.normal(size=shape) * 15, rng.normal(size=shape) * 15
    if kind == "ties":  # errors exactly at huber's deltas (0.5, 1, 2)
        t = rng.integers(-2, 3, shape).astype(float)
        return t, t + rng.choice([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], shape)
    if kind == "positive":
        t, p = rng.uniform(0, 3, shape), rng.uniform(0, 3, shape)
        t.flat[0], p.flat[-1] = 0.0, 0.0
        return t, p
    if kind == "mape":
        t, p = rng.normal(size=shape), rng.normal(size=shape)
        t.flat[0] = 0.0
        return t, p
    if kind == "dist":
        t, p = _probs(rng, shape), _probs(rng, shape)
        return t / t.sum(-1, keepdims=True), p
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(float), _probs(rng, shape)
    if kind == "soft":
        return rng.uniform(0, 1, shape), _probs(rng, shape)
    if kind == "binary_logits":
        return rng.integers(0, 2, shape).astype(float), rng.normal(size=shape) * 4
    if kind == "hinge01":
        return rng.integers(0, 2, shape).astype(float), rng.normal(size=shape)
    if kind == "hinge_pm1":
        return rng.choice([-1.0, 1.0], shape), rng.normal(size=shape)
    if kind == "hinge_mixed":  # -1, 0 and 1: not binary, kept as they are
        t = rng.choice([-1.0, 0.0, 1.0], shape)
        t.flat[0] = -1.0
        return t, rng.normal(size=shape)
    if kind in ("onehot", "onehot_logits", "onehot_soft", "onehot_ties"):
        t = _one_hot(rng, shape)
        if kind == "onehot_soft":
            t = rng.uniform(0, 1, shape)
            t /= t.sum(-1, keepdims=True)
        if kind == "onehot_logits":
            return t, rng.normal(size=shape) * 3
        if kind == "onehot_ties":  # ties in the largest wrong score
            return t, rng.integers(0, 3, shape).astype(float)
        return t, rng.uniform(0.01, 1.0, shape) * (rng.uniform(size=shape) > 0.1)
    if kind in ("onehot_axis1", "onehot_axis1_logits"):
        t = _one_hot(rng, shape, axis=1)
        p = rng.normal(size=shape) * 3 if kind.endswith("logits") else rng.uniform(0.01, 1.0, shape)
        return t, p
    if kind in ("sparse", "sparse_logits", "sparse_1"):
        labels = rng.integers(0, shape[-1], shape[:-1])
        labels.flat[0] = 0
        if kind == "sparse_1":
            labels = labels[..., None]
        p = rng.normal(size=shape) * 3 if kind == "sparse_logits" else rng.uniform(0.01, 1.0, shape)
        return labels.astype(np.int64), p
    if kind in ("sparse_axis1", "sparse_axis1_logits"):  # classes on axis 1 of (N, C, T)
        labels = rng.integers(0, shape[1], (shape[0],) + shape[2:])
        p = rng.normal(size=shape) * 3 if kind.endswith("logits") else rng.uniform(0.01, 1.0, shape)
        return labels.astype(np.int64), p
    if kind == "segmentation":
        return rng.integers(0, 2, shape).astype(float), _probs(rng, shape)
    if kind == "embeddings":  # repeated labels, one unique label (no positive pair)
        e = rng.normal(size=shape)
        return np.array([0, 1, 0, 2, 1, 3][: shape[0]], np.int64), e / np.linalg.norm(e, axis=1, keepdims=True)
    if kind == "embeddings_one":  # one label: no negative pairs, every loss 0 (all masked)
        e = rng.normal(size=shape)
        return np.zeros(shape[0], np.int64), e / np.linalg.norm(e, axis=1, keepdims=True)
    if kind == "ctc":  # zero padding, a repeated label, an empty sequence, a zero inside one, an impossible one
        labels = np.array([[1, 2, 2, 0], [3, 0, 0, 0], [0, 0, 0, 0], [1, 0, 2, 0], [1, 1, 1, 1], [2, 3, 1, 3]])
        return labels[: shape[0]].astype(np.int64), rng.normal(size=shape) * 2
    raise AssertionError(kind)


# --------------------------------------------------------------------------- cases

REGRESSION_SHAPES = [(N,), (N, 1), (N, C), (N, T, C)]


def _cases():
    cases = []

    def add(name, kinds, shapes, *kwargs_list):
        for kind, shape, kw in itertools.product(kinds, shapes, kwargs_list or [{}]):
            cases.append((name, kw, kind, shape))

    add("mean_squared_error", ["real", "wide"], REGRESSION_SHAPES)
    add("mean_absolute_error", ["real", "wide"], REGRESSION_SHAPES)
    add("mean_absolute_percentage_error", ["mape"], REGRESSION_SHAPES)
    add("mean_squared_logarithmic_error", ["positive", "real"], REGRESSION_SHAPES)
    add("cosine_similarity", ["real"], [(N, C), (N, T, C)], {}, {"axis": -1})
    add("cosine_similarity", ["real"], [(N, T, C)], {"axis": 1}, {"axis": (1, 2)})
    add("huber", ["real", "wide", "ties"], REGRESSION_SHAPES)
    add("huber", ["real", "ties"], [(N, C)], {"delta": 0.5}, {"delta": 2.0}, {"delta": 0.3})
    add("huber", ["wide"], [(N, T, C)], {"delta": 2.0})
    add("log_cosh", ["real", "wide"], REGRESSION_SHAPES)
    add("kl_divergence", ["dist"], [(N, C), (N, T, C)])
    add("poisson", ["positive"], REGRESSION_SHAPES)
    for name in ("hinge", "squared_hinge"):
        add(name, ["hinge01", "hinge_pm1", "hinge_mixed"], REGRESSION_SHAPES)
    add("categorical_hinge", ["onehot", "onehot_logits", "onehot_ties"], [(N, C), (N, T, C)])
    bce_kwargs = [{"from_logits": f, "label_smoothing": s} for f, s in itertools.product([False, True], [0.0, 0.1])]
    add("binary_crossentropy", ["binary", "soft"], REGRESSION_SHAPES, *[k for k in bce_kwargs if not k["from_logits"]])
    add("binary_crossentropy", ["binary_logits"], REGRESSION_SHAPES, *[k for k in bce_kwargs if k["from_logits"]])
    add("binary_crossentropy", ["binary"], [(N, T, C)], {"axis": 1}, {"axis": (1, 2), "label_smoothing": 0.2})
    focal = [  # every pair of values of two arguments
        {"apply_class_balancing": b, "alpha": a, "gamma": g, "label_smoothing": s}
        for b, a, g, s in [
            (False, 0.25, 2.0, 0.0),
            (True, 0.25, 2.0, 0.0),
            (True, 0.6, 0.5, 0.1),
            (False, 0.6, 0.5, 0.1),
            (True, 0.6, 2.0, 0.1),
            (False, 0.25, 0.5, 0.1),
            (True, 0.25, 0.5, 0.0),
            (False, 0.6, 2.0, 0.0),
        ]
    ]
    add("binary_focal_crossentropy", ["binary"], [(N,), (N, C), (N, T, C)], *focal)
    add("binary_focal_crossentropy", ["binary_logits"], [(N, 1), (N, C)], *[{**k, "from_logits": True} for k in focal])
    add("binary_focal_crossentropy", ["binary"], [(N, T, C)], {"axis": 1, "gamma": 3.0})
    cce = [{"label_smoothing": s} for s in (0.0, 0.2)]
    add("categorical_crossentropy", ["onehot", "onehot_soft"], [(N, C), (N, T, C)], *cce)
    add("categorical_crossentropy", ["onehot_logits"], [(N, C), (N, T, C)], *[{**k, "from_logits": True} for k in cce])
    add("categorical_crossentropy", ["onehot_axis1"], [(N, C, T)], {"axis": 1}, {"axis": 1, "label_smoothing": 0.1})
    add("categorical_crossentropy", ["onehot_axis1_logits"], [(N, C, T)], {"axis": 1, "from_logits": True})
    cfce = [
        {"alpha": a, "gamma": g, "label_smoothing": s}
        for a, g, s in [
            (0.25, 2.0, 0.0),
            ([0.1, 0.2, 0.3, 0.4], 2.0, 0.0),
            (0.25, 0.7, 0.1),
            ([0.1, 0.2, 0.3, 0.4], 0.7, 0.1),
        ]
    ]
    add("categorical_focal_crossentropy", ["onehot"], [(N, C), (N, T, C)], *cfce)
    add("categorical_focal_crossentropy", ["onehot_logits"], [(N, C)], *[{**k, "from_logits": True} for k in cfce])
    add("categorical_focal_crossentropy", ["onehot_axis1"], [(N, C, T)], {"axis": 1, "gamma": 1.5})
    add("categorical_focal_crossentropy", ["onehot_axis1_logits"], [(N, C, T)], {"axis": 1, "from_logits": True})
    scce = [{"ignore_class": i} for i in (None, 0, 2, -1)]
    add("sparse_categorical_crossentropy", ["sparse", "sparse_1"], [(N, C), (N, T, C)], *scce)
    add(
        "sparse_categorical_crossentropy",
        ["sparse_logits"],
        [(N, C), (N, T, C)],
        *[{**k, "from_logits": True} for k in scce],
    )
    add("sparse_categorical_crossentropy", ["sparse_axis1"], [(N, C, T)], {"axis": 1}, {"axis": 1, "ignore_class": 1})
    add(
        "sparse_categorical_crossentropy",
        ["sparse_axis1_logits"],
        [(N, C, T)],
        {"axis": 1, "from_logits": True, "ignore_class": 0},
    )
    add("dice", ["segmentation"], [(N, C), (N, 3, 3, 1)], {}, {"axis": None})
    add("dice", ["segmentation"], [(N, 3, 3, 1)], {"axis": (1, 2, 3)}, {"axis": (1, 2)}, {"axis": -1})
    tv = [{"alpha": a, "beta": b} for a, b in [(0.5, 0.5), (0.3, 0.7), (0.9, 0.1)]]
    add("tversky", ["segmentation"], [(N, C)], *tv)
    add("tversky", ["segmentation"], [(N, 3, 3, 1)], *[{**k, "axis": (1, 2, 3)} for k in tv], {"axis": (1, 2)})
    add(
        "circle",
        ["embeddings"],
        [(N, 5)],
        {},
        {"gamma": 10.0, "margin": 0.25},
        {"remove_diagonal": False},
        {"gamma": 2.0, "margin": 0.6, "remove_diagonal": False},
    )
    add("circle", ["embeddings_one"], [(N, 5)], {})
    add("ctc", ["ctc"], [(N, 5, C), (N, 9, C), (N, 1, C)])
    add("categorical_generalized_cross_entropy", ["sparse"], [(N, C), (N, T, C)], {"q": 0.5}, {"q": 0.2}, {"q": 0.9})
    return cases


def case_id(case):
    name, kw, kind, shape = case
    return f"{name}-{kind}-{'x'.join(map(str, shape))}-{kw}"


CASES = _cases()
CASE_IDS = [case_id(case) for case in CASES]


def inputs(case, dtype, device="cpu"):
    name, kw, kind, shape = case
    y_true, y_pred = make(kind, shape, seed=zlib.crc32(case_id(case).encode()))
    yt = torch.tensor(y_true, device=device)
    yt = yt.to(dtype) if yt.is_floating_point() else yt
    return yt, torch.tensor(y_pred, dtype=dtype, device=device)


def keras_function(keras, name, y_true, y_pred, kw):
    if name == "categorical_generalized_cross_entropy" and kw == {}:
        kw = {"q": 0.5}  # Keras' function has no default
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return getattr(keras.losses, name)(y_true.clone(), y_pred.clone(), **kw)


def as_np(x):
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)


def close(ours, theirs, dtype):
    ours, theirs = as_np(ours), as_np(theirs)
    assert ours.shape == theirs.shape
    if dtype in (torch.float16, torch.bfloat16):
        tol = 1e-3 if dtype == torch.float16 else 8e-3  # one unit in the last place
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


# Keras 3.15 gives float32 for some float64 inputs (its `result_type` of float64 and float32 or a Python float
# is float32, so msle, the hinges, circle and ctc come back float32, and `ops.mean` rounds through float32):
# these give float64, computed in float64.
def expected_dtype(theirs, dtype):
    return torch.float64 if dtype == torch.float64 else theirs.dtype


# --------------------------------------------------------------------------- per-sample functions


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_functions_match_keras(keras, case):
    name, kw, kind, shape = case
    for dtype in (torch.float32, torch.float64):
        y_true, y_pred = inputs(case, dtype)
        if name == "categorical_generalized_cross_entropy" and kind == "sparse_1":
            continue
        theirs = keras_function(keras, name, y_true, y_pred, kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            ours = getattr(L, name)(y_true, y_pred, **kw)
        assert ours.dtype == expected_dtype(theirs, dtype), (ours.dtype, theirs.dtype)
        close(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_functions_match_keras_in_half_precision(keras, dtype):
    """The same dtype as Keras' (float32 where Keras lifts half precision), the values to half precision."""
    for case in CASES:
        name, kw, kind, shape = case
        if kind == "wide":  # errors of 15 or more: squares overflow float16 in both
            continue
        y_true, y_pred = inputs(case, dtype)
        theirs = keras_function(keras, name, y_true, y_pred, kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            ours = getattr(L, name)(y_true, y_pred, **kw)
        assert ours.dtype == theirs.dtype, (case_id(case), ours.dtype, theirs.dtype)
        close(ours, theirs, dtype)


def test_generalized_cross_entropy_reads_n_by_1_labels_as_n(keras):
    """Keras 3.15 broadcasts (N, 1) labels to (N, N) values; its docstring says (N,) or (N, 1): (N,) values."""
    labels, probs = torch.tensor([[0], [1], [1]]), torch.tensor([[0.75, 0.25], [0.36, 0.64], [0.5, 0.5]])
    theirs = keras.losses.categorical_generalized_cross_entropy(labels.squeeze(-1), probs, q=0.5)
    assert tuple(keras.losses.categorical_generalized_cross_entropy(labels, probs, q=0.5).shape) == (3, 3)
    close(L.categorical_generalized_cross_entropy(labels, probs, q=0.5), theirs, torch.float32)
    # negative labels have p = 0, as Keras' one_hot gives them
    close(
        L.categorical_generalized_cross_entropy(torch.tensor([-1, 0]), probs[:2], q=0.25),
        keras.losses.categorical_generalized_cross_entropy(torch.tensor([-1, 0]), probs[:2], q=0.25),
        torch.float32,
    )


def test_one_class_categorical_losses_warn_like_keras(keras):
    y_true, y_pred = torch.ones(4, 1), torch.full((4, 1), 0.7)
    for name in ("categorical_crossentropy", "categorical_focal_crossentropy"):
        with pytest.warns(SyntaxWarning, match="num_classes > 1"):
            theirs = getattr(keras.losses, name)(y_true, y_pred)
        with pytest.warns(SyntaxWarning, match="num_classes > 1"):
            ours = getattr(L, name)(y_true, y_pred)
        close(ours, theirs, torch.float32)


def test_ctc_recursion_matches_keras(keras):
    """Off the CPU, ctc runs its own recursion (torch's ctc_loss reads the lengths on the host): the same numbers."""
    for steps, dtype in itertools.product((1, 3, 5, 9), (torch.float32, torch.float64)):
        y_true, y_pred = inputs(("ctc", {}, "ctc", (N, steps, C)), dtype)
        ours = L._ctc_recursion(torch.log_softmax(y_pred, dim=-1), y_true, (y_true != 0).sum(-1))
        assert ours.dtype == dtype
        if dtype == torch.float32:
            close(ours, keras.losses.ctc(y_true, y_pred), dtype)
        close(ours, L.ctc(y_true, y_pred), dtype)  # torch's ctc_loss, in float64 too (Keras: float32)
    # Its gradient is the derivative of those numbers (finite differences), and torch's where torch's is right:
    # torch's ctc_loss backward is wrong for a label equal to the blank inside the label length (row 3).
    y_true, y_pred = inputs(("ctc", {}, "ctc", (N, 5, C)), torch.float64)
    y_pred.requires_grad_()
    recursion = L._ctc_recursion(torch.log_softmax(y_pred, -1), y_true, (y_true != 0).sum(-1))
    (mine,) = torch.autograd.grad(recursion[:4].sum(), y_pred)
    (native,) = torch.autograd.grad(L.ctc(y_true, y_pred)[:4].sum(), y_pred)
    numeric = torch.zeros_like(y_pred)
    with torch.no_grad():
        for i in range(numeric.numel()):
            step = torch.zeros(numeric.numel(), dtype=torch.float64)
            step[i] = 1e-6
            step = step.view_as(y_pred)
            plus, minus = (L.ctc(y_true, y_pred + d)[:4].sum() for d in (step, -step))
            numeric.view(-1)[i] = (plus - minus) / 2e-6
    np.testing.assert_allclose(as_np(mine), as_np(numeric), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(as_np(mine)[:3], as_np(native)[:3], rtol=1e-6, atol=1e-9)
    assert not np.allclose(as_np(mine)[3], as_np(native)[3], atol=1e-3)


# --------------------------------------------------------------------------- KerasLoss against the classes


def keras_class(keras, name, kw, reduction, dtype):
    cls = getattr(keras.losses, CLASS_NAMES[name])
    return cls(**kw, reduction=reduction, dtype="float64" if dtype == torch.float64 else "float32")


def masked(case):
    name, kw, kind, shape = case
    return name == "circle" or kw.get("ignore_class") is not None


def keep(w):
    """A copy for Keras: with a mask (`ignore_class`, circle) it multiplies the caller's weights in place."""
    return None if w is None else w.clone()


def sample_weight(values, seed, full=False):
    """Weights of shape (N,) for (N,) values, (N, 1) for (N, T) ones (`full`: (N, T): Keras multiplies
    masked values' weights in place, so they cannot broadcast)."""
    rng = np.random.default_rng(seed)
    shape = (N,) if values.dim() == 0 else values.shape[:1] + (1,) * (values.dim() - 1)
    shape = values.shape if full and values.dim() > 1 else shape
    w = rng.choice([0.0, 0.5, 1.0, 2.0], shape)
    return torch.tensor(w, dtype=torch.float32)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_keras_loss_matches_keras_classes(keras, case):
    """Every reduction, with and without sample weights, in float32 (for one shape of each loss and its
    masked cases; the others weighted and not); float64 weighted; half precision predictions (both compute
    those in float32)."""
    name, kw, kind, shape = case
    every = len(shape) == 2 or masked(case) or name == "ctc"
    runs = [(torch.float32, r) for r in (REDUCTIONS if every else REDUCTIONS[:2])]
    runs += [(torch.float64, ("sum_over_batch_size", True)), (torch.float64, ("mean_with_sample_weight", True))]
    runs += [] if kind == "wide" else [(torch.float16, ("sum_over_batch_size", False))]
    for dtype, (reduction, weighted) in runs:
        y_true, y_pred = inputs(case, dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            values = getattr(L, name)(y_true, y_pred, **kw)
            w = sample_weight(values, zlib.crc32(case_id(case).encode()), masked(case)) if weighted else None
            theirs = keras_class(keras, name, kw, reduction, dtype)(
                y_true.clone(), y_pred.clone(), sample_weight=keep(w)
            )
            ours = KerasLoss(name, reduction=reduction, **kw)(y_pred, y_true, w)
        assert ours.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        close(ours, theirs, torch.float32 if dtype == torch.float16 else dtype)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_keras_loss_gradients_match_keras(keras, case):
    name, kw, kind, shape = case
    y_true, y_pred = inputs(case, torch.float64)
    grads = []
    for call in (
        lambda p, w: keras_class(keras, name, kw, "sum_over_batch_size", torch.float64)(y_true.clone(), p, w),
        lambda p, w: KerasLoss(name, **kw)(p, y_true, w),
    ):
        p = y_pred.clone().requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            loss = call(p, sample_weight(getattr(L, name)(y_true, y_pred, **kw), 0, masked(case)).double())
        if not torch.isfinite(loss):
            return  # an impossible CTC alignment: inf, its gradient undefined
        loss.backward()
        grads.append(as_np(p.grad))
    ours, theirs = grads[1], grads[0]
    if name == "ctc":  # not row 3: torch's (Keras') ctc gradient is wrong there (test_ctc_recursion_matches_keras)
        ours, theirs = np.delete(ours, 3, 0), np.delete(theirs, 3, 0)
    # Keras computes these partly in float32 even for float64 inputs (its result_type(float64, float))
    rtol = 1e-4 if name in ("circle", "ctc", "mean_squared_logarithmic_error", "cosine_similarity") else 1e-6
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize(
    "name, y_true, y_pred",
    [
        ("binary_crossentropy", [0.0, 1.0, 1.0], [[0.2], [0.7], [0.9]]),  # (N,) targets meet an (N, 1) output
        ("mse", [1.0, 2.0, 0.0], [[0.5], [2.5], [0.0]]),
        ("Hinge", [[0.0], [1.0]], [0.3, -0.4]),
        ("sparse_categorical_crossentropy", [[1], [0]], [[0.2, 0.8], [0.6, 0.4]]),
    ],
)
def test_keras_loss_aligns_ranks_like_keras(keras, name, y_true, y_pred):
    theirs = keras.losses.get(CLASS_NAMES[LOSSES[name].__name__])(np.array(y_true), np.array(y_pred, np.float32))
    close(KerasLoss(name)(torch.tensor(y_pred), torch.tensor(y_true)), theirs, torch.float32)


def test_keras_loss_masks_ignored_labels_and_circle_zeros_like_keras(keras):
    """The mean is over the labels kept (and the non-zero circle losses), under the sample weights too."""
    y_true = torch.tensor([[1, 255, 0], [255, 255, 2]])
    y_pred = torch.tensor(np.random.default_rng(0).normal(size=(2, 3, 4)), dtype=torch.float32)
    w = torch.tensor([[1.0, 0.5, 2.0], [3.0, 1.0, 1.0]])
    for reduction, weight in itertools.product([r for r, _ in REDUCTIONS], (None, w)):
        kw = {"from_logits": True, "ignore_class": 255}
        theirs = keras.losses.SparseCategoricalCrossentropy(**kw, reduction=reduction)(y_true, y_pred, keep(weight))
        close(
            KerasLoss("sparse_categorical_crossentropy", reduction=reduction, **kw)(y_pred, y_true, weight),
            theirs,
            torch.float32,
        )
    assert torch.equal(
        w, torch.tensor([[1.0, 0.5, 2.0], [3.0, 1.0, 1.0]])
    )  # the caller's weights untouched (Keras scales them)
    everything_ignored = KerasLoss("sparse_categorical_crossentropy", ignore_class=7)(y_pred, torch.full((2, 3), 7))
    assert float(everything_ignored) == 0.0  # Keras' divide_no_nan
    labels, embeddings = (torch.tensor(a) for a in make("embeddings", (N, 5), 0))
    for reduction in ("sum_over_batch_size", "sum", "mean_with_sample_weight"):
        theirs = keras.losses.Circle(reduction=reduction)(labels, embeddings.float(), torch.arange(N) / N)
        close(
            KerasLoss("circle", reduction=reduction)(embeddings.float(), labels, torch.arange(N) / N),
            theirs,
            torch.float32,
        )


def test_keras_loss_computes_in_float32_under_autocast_and_in_its_dtype(keras):
    y_true, y_pred = (torch.tensor(a) for a in make("binary", (N, C), 0))
    theirs = keras.losses.BinaryCrossentropy(label_smoothing=0.1)(y_true, y_pred.float())
    with torch.autocast("cpu", torch.bfloat16):
        ours = KerasLoss("bce", label_smoothing=0.1)(y_pred.bfloat16(), y_true)
    assert ours.dtype == torch.float32
    close(ours, keras.losses.BinaryCrossentropy(label_smoothing=0.1)(y_true, y_pred.bfloat16().float()), 1)
    as_float64 = KerasLoss("bce", label_smoothing=0.1, dtype="float64")(y_pred.float(), y_true)
    assert as_float64.dtype == torch.float64
    close(
        as_float64,
        keras.losses.BinaryCrossentropy(label_smoothing=0.1, dtype="float64")(y_true, y_pred.float()),
        torch.float32,
    )
    close(KerasLoss("bce", label_smoothing=0.1)(y_pred.float(), y_true), theirs, torch.float32)


# --------------------------------------------------------------------------- names, arguments, configs


def test_losses_table_is_keras_get(keras):
    """Every name `keras.losses.get` accepts, each to the same loss; and the generalized cross-entropy Keras
    exports (`keras.losses.categorical_generalized_cross_entropy`) but leaves out of `get`."""
    from keras.src.losses import ALL_OBJECTS_DICT

    exported_only = {"categorical_generalized_cross_entropy", "CategoricalGeneralizedCrossEntropy"}
    assert set(LOSSES) == (set(ALL_OBJECTS_DICT) - {"Loss", "LossFunctionWrapper"}) | exported_only
    for name, fn in LOSSES.items():
        if name in exported_only:
            theirs = getattr(keras.losses, name)
            theirs = theirs() if inspect.isclass(theirs) else theirs
        else:
            theirs = keras.losses.get(name)
        theirs = getattr(theirs, "fn", theirs)  # a class name gives an instance wrapping the function
        assert theirs.__name__ == fn.__name__, name
        assert getattr(L, fn.__name__) is fn
    for name in ("logcosh", "huber_loss", "kullback_leibler_divergence"):
        with pytest.raises(ValueError):
            keras.losses.get(name)
        assert name not in LOSSES
    assert "Loss" not in LOSSES and "LossFunctionWrapper" not in LOSSES  # base classes
    assert set(L._CLASSES) == set(LOSSES.values())  # every loss Keras has


def test_arguments_are_the_keras_classes_and_functions(keras):
    for fn, (class_name, arguments) in L._CLASSES.items():
        theirs = inspect.signature(getattr(keras.losses, class_name).__init__).parameters
        theirs = {k: p.default for k, p in theirs.items() if k not in ("self", "reduction", "name", "dtype")}
        assert arguments == theirs, class_name
        assert list(arguments) == list(theirs), class_name  # in Keras' order
        ours_fn = inspect.signature(fn).parameters
        for k, p in inspect.signature(getattr(keras.losses, fn.__name__)).parameters.items():
            assert k in ours_fn, (fn.__name__, k)
            if p.default is not inspect.Parameter.empty:
                assert ours_fn[k].default == p.default, (fn.__name__, k)


NON_DEFAULT = {
    "cosine_similarity": {"axis": 1},
    "huber": {"delta": 0.3},
    "binary_crossentropy": {"from_logits": True, "label_smoothing": 0.1},
    "binary_focal_crossentropy": {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.0, "axis": 1},
    "categorical_crossentropy": {"from_logits": True, "label_smoothing": 0.2, "axis": 1},
    "categorical_focal_crossentropy": {"alpha": [0.1, 0.9], "gamma": 3.0, "from_logits": True},
    "sparse_categorical_crossentropy": {"from_logits": True, "ignore_class": -1},
    "dice": {"axis": (1, 2)},
    "tversky": {"alpha": 0.2, "beta": 0.8, "axis": (1, 2)},
    "circle": {"gamma": 10.0, "margin": 0.2, "remove_diagonal": False},
    "categorical_generalized_cross_entropy": {"q": 0.7},
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_config_round_trips_and_has_keras_keys(keras, name):
    fn = LOSSES[name]
    kw = NON_DEFAULT.get(fn.__name__, {})
    for loss in (KerasLoss(name), KerasLoss(name, reduction="sum", **kw), KerasLoss(name, dtype=torch.float64, **kw)):
        config = loss.get_config()
        again = KerasLoss.from_config(config)
        assert again == loss and again.get_config() == config and repr(again) == repr(loss)
        assert hash(again) == hash(loss)
        theirs = getattr(keras.losses, CLASS_NAMES[fn.__name__])(**loss.arguments, reduction=loss.reduction)
        theirs = theirs.get_config()
        for key, value in theirs.items():
            if key != "name":
                assert config[key] == value, (name, key)
        assert config["name"] == name and loss.name == name
    assert KerasLoss(name) != KerasLoss(name, reduction="sum")


def test_repr_shows_the_arguments_given():
    assert repr(KerasLoss("categorical_crossentropy", from_logits=True)) == (
        "KerasLoss('categorical_crossentropy', from_logits=True)"
    )
    assert repr(KerasLoss("mse")) == "KerasLoss('mse')"
    assert repr(KerasLoss("bce", from_logits=False, label_smoothing=0.1, reduction="sum", dtype="float64")) == (
        "KerasLoss('bce', label_smoothing=0.1, reduction='sum', dtype='float64')"
    )
    loss = KerasLoss("BinaryFocalCrossentropy", from_logits=True, gamma=3.0)
    assert (loss.name, loss.from_logits, loss.fn) == ("BinaryFocalCrossentropy", True, L.binary_focal_crossentropy)
    assert KerasLoss("huber").from_logits is False


def test_refusals_name_the_loss_and_its_arguments():
    with pytest.raises(TypeError, match=r"'mse'.*from_logits.*mean_squared_error takes no arguments"):
        KerasLoss("mse", from_logits=True)
    with pytest.raises(TypeError, match=r"delta.*huber takes delta=1.0"):
        KerasLoss("huber", delta=2.0, deltas=1.0)
    with pytest.raises(TypeError, match=r"ignore_class.*binary_crossentropy takes from_logits=False, label_smoothing"):
        KerasLoss("binary_crossentropy", from_logits=True, ignore_class=0)
    with pytest.raises(ValueError, match=r"Unknown loss 'logcosh'.*log_cosh"):
        KerasLoss("logcosh")
    with pytest.raises(ValueError, match="reduction"):
        KerasLoss("mse", reduction="auto")
    with pytest.raises(ValueError, match=r"q.*\(0, 1\)"):
        KerasLoss("categorical_generalized_cross_entropy", q=1.0)
    with pytest.raises(ValueError, match="dtype"):
        KerasLoss("mse", dtype="int32")
    with pytest.raises(TypeError):
        KerasLoss("mse", "sum")  # everything after the name is a keyword
    with pytest.raises(ValueError, match="same shape"):
        L.binary_crossentropy(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="without its class axis"):
        L.sparse_categorical_crossentropy(torch.zeros(3, 2), torch.zeros(3, 4), axis=-1)
    with pytest.raises(ValueError, match="axis"):
        L.categorical_crossentropy(torch.zeros(3, 2), torch.zeros(3, 2), axis=True)
    with pytest.raises(ValueError, match="max_length"):
        L.ctc(torch.zeros(3), torch.zeros(3, 2, 2))


# --------------------------------------------------------------------------- devices


def _all_on(device):
    """Every case's function values and KerasLoss (weighted), on `device`."""
    out = []
    for case in CASES:
        name, kw, kind, shape = case
        y_true, y_pred = inputs(case, torch.float32, device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            values = getattr(L, name)(y_true, y_pred, **kw)
            w = sample_weight(values, 0).to(device)
            for reduction in ("sum_over_batch_size", "mean_with_sample_weight"):
                out.append((values, KerasLoss(name, reduction=reduction, **kw)(y_pred, y_true, w)))
    return out


def test_no_host_reads_every_loss_runs_on_meta_tensors():
    """A meta tensor has no values: any `.item()`, `float(t)` or `bool(t)` would raise."""
    for values, loss in _all_on("meta"):
        assert values.device.type == loss.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_numbers_without_syncs():
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        on_cuda = _all_on("cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for (values, loss), (cpu_values, cpu_loss) in zip(on_cuda, _all_on("cpu")):
        np.testing.assert_allclose(to_numpy(values), to_numpy(cpu_values), rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(to_numpy(loss), to_numpy(cpu_loss), rtol=2e-5, atol=2e-5)
