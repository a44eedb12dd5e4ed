"""Parity of the regression, probabilistic, hinge, correlation and reduction metrics with real Keras 3.

Every case feeds the same batches (two full ones, then a ragged one) to our metric and to `keras.metrics.<same
class>`, unweighted and with weights of every shape (Keras' errors included: where Keras refuses a weight shape,
ours must refuse it too and leave its state as it was), and compares `result()` after every batch within 1e-6
(relative for large values: we accumulate in float64, Keras in float32). `forward` must return the value of a
fresh Keras metric fed only that batch. Inputs come from a seeded generator, so every run sees the same numbers.
"""

from __future__ import annotations

import copy
import zlib

import numpy as np
import pytest
import torch
import torchmetrics
from torch._dynamo.utils import counters

import torch_keras_metrics as tkm
from tests.conftest import to_numpy  # also sets KERAS_BACKEND=torch before keras is imported

keras = pytest.importorskip("keras")
assert keras.backend.backend() == "torch"

TOL = 1e-6
N, D, T, C = 6, 3, 2, 4
SIZES = (N, N, 4)  # the last batch ragged


def close(ours, theirs, atol: float = TOL) -> None:
    a, b = to_numpy(ours).astype(np.float64), to_numpy(theirs).astype(np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=max(TOL, atol), atol=atol)


def state(metric) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in metric.state_dict().items()}


def same_state(before, metric) -> None:
    after = metric.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------------- inputs

SHAPES = {  # (y_true shape, y_pred shape) for n samples
    "n": lambda n: ((n,), (n,)),
    "n1": lambda n: ((n, 1), (n, 1)),
    "n_vs_n1": lambda n: ((n,), (n, 1)),
    "nd": lambda n: ((n, D), (n, D)),
    "ntd": lambda n: ((n, T, D), (n, T, D)),
}


def values(rng, kind, shape):
    if kind == "real":
        return rng.normal(size=shape).astype(np.float32)
    if kind == "positive":
        return rng.uniform(0.0, 3.0, size=shape).astype(np.float32)
    if kind == "away_from_zero":  # MAPE's denominators
        return (rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)).astype(np.float32)
    if kind == "prob":
        return rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    raise AssertionError(kind)


def batch(rng, kind, shape_kind, n):
    """One batch (y_true, y_pred) as numpy arrays."""
    if kind in ("real", "positive", "prob", "away_from_zero"):
        t_shape, p_shape = SHAPES[shape_kind](n)
        return values(rng, kind, t_shape), values(rng, "real" if kind == "away_from_zero" else kind, p_shape)
    if kind == "r2":  # predictions near the truth: R2 well away from the float32 cancellation Keras suffers
        t_shape, p_shape = SHAPES[shape_kind](n)
        y_true = rng.normal(size=t_shape).astype(np.float32)
        noise = rng.normal(size=p_shape).astype(np.float32)
        return y_true, (0.8 * y_true.reshape(p_shape) + 0.3 * noise).astype(np.float32)
    if kind in ("binary", "binary_logits"):
        t_shape, p_shape = SHAPES[shape_kind](n)
        y_true = rng.integers(0, 2, size=t_shape).astype(np.float32)
        if kind == "binary_logits":
            return y_true, rng.normal(size=p_shape).astype(np.float32) * 3
        # probabilities, with 0, 1 and values beyond float32's 1 - 1e-7 to exercise the clipping
        y_pred = rng.choice([0.0, 1.0, 1 - 1e-8, 0.5, 0.2, 0.999], size=p_shape).astype(np.float32)
        return y_true, np.where(rng.uniform(size=p_shape) < 0.5, y_pred, rng.uniform(size=p_shape)).astype(np.float32)
    if kind in ("onehot", "onehot_logits", "onehot_axis1"):
        lead = {"nd": (n,), "ntd": (n, T)}[shape_kind]
        y_true = np.eye(C, dtype=np.float32)[rng.integers(0, C, size=lead)]
        y_pred = rng.uniform(0.0, 1.0, size=y_true.shape).astype(np.float32)
        if kind == "onehot_logits":
            y_pred = rng.normal(size=y_true.shape).astype(np.float32)
        if kind == "onehot_axis1":  # classes on axis 1: (n, C, T)
            y_true, y_pred = np.moveaxis(y_true, -1, 1).copy(), np.moveaxis(y_pred, -1, 1).copy()
        return y_true, y_pred
    if kind in ("sparse", "sparse_logits"):
        lead = {"n": (n,), "n1": (n, 1), "nt": (n, T)}[shape_kind]
        y_true = rng.integers(0, C, size=lead)
        pred_lead = (n,) if shape_kind in ("n", "n1") else (n, T)
        y_pred = rng.uniform(0.0, 1.0, size=(*pred_lead, C)).astype(np.float32)
        if kind == "sparse_logits":
            y_pred = rng.normal(size=y_pred.shape).astype(np.float32)
        return y_true, y_pred
    if kind in ("hinge01", "hinge_pm", "hinge_mixed"):
        t_shape, p_shape = SHAPES[shape_kind](n)
        if kind == "hinge01" or (kind == "hinge_mixed" and n == N and rng.uniform() < 0.5):
            y_true = rng.integers(0, 2, size=t_shape).astype(np.float32)
        elif kind == "hinge_pm":
            y_true = rng.choice([-1.0, 1.0], size=t_shape).astype(np.float32)
        else:  # a batch that is not all 0/1: its labels are used as they are
            y_true = rng.choice([-1.0, 0.0, 1.0], size=t_shape).astype(np.float32)
        return y_true, rng.normal(size=p_shape).astype(np.float32)
    raise AssertionError(kind)


WEIGHT_KINDS = (None, "n", "n1", "scalar", "zeros", "nt", "full")


def weight(rng, kind, y_true, n, choices=(0.0, 0.5, 1.0, 2.0)):
    if kind is None:
        return None
    shape = {
        "n": (n,),
        "n1": (n, 1),
        "scalar": (),
        "one": (1,),
        "zeros": (n,),
        "nt": (n, T),
        "full": y_true.shape,
    }[kind]
    if kind == "zeros":
        return np.zeros(shape, np.float32)
    return rng.choice(choices, size=shape).astype(np.float32)


# --------------------------------------------------------------------------- the cases


CASES = [
    ("MeanSquaredError", {}, "real", ["n", "n1", "n_vs_n1", "nd", "ntd"]),
    ("MeanAbsoluteError", {}, "real", ["n", "n_vs_n1", "ntd"]),
    ("RootMeanSquaredError", {}, "real", ["n", "n1", "n_vs_n1", "nd", "ntd"]),
    ("MeanAbsolutePercentageError", {}, "away_from_zero", ["n", "nd", "ntd"]),
    ("MeanSquaredLogarithmicError", {}, "positive", ["n_vs_n1", "ntd"]),
    ("LogCoshError", {}, "real", ["n", "ntd"]),
    ("CosineSimilarity", {}, "real", ["n", "nd"]),
    ("CosineSimilarity", {"axis": 1}, "real", ["nd", "ntd"]),
    ("PearsonCorrelation", {}, "real", ["n", "nd", "ntd"]),
    ("PearsonCorrelation", {"axis": (1, 2)}, "real", ["ntd"]),
    ("ConcordanceCorrelation", {}, "real", ["n", "nd", "ntd"]),
    ("ConcordanceCorrelation", {"axis": 1}, "real", ["ntd"]),
    ("BinaryCrossentropy", {}, "binary", ["n", "n1", "nd", "ntd"]),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, "binary", ["nd"]),
    ("BinaryCrossentropy", {"from_logits": True}, "binary_logits", ["n1"]),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary_logits", ["ntd"]),
    ("CategoricalCrossentropy", {}, "onehot", ["nd", "ntd"]),
    ("CategoricalCrossentropy", {"label_smoothing": 0.3}, "onehot", ["nd"]),
    ("CategoricalCrossentropy", {"from_logits": True}, "onehot_logits", ["nd", "ntd"]),
    ("CategoricalCrossentropy", {"axis": 1}, "onehot_axis1", ["ntd"]),
    ("SparseCategoricalCrossentropy", {}, "sparse", ["n", "n1"]),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits", ["nt"]),
    ("SparseCategoricalCrossentropy", {"ignore_class": 0}, "sparse", ["n", "n1", "nt"]),
    ("SparseCategoricalCrossentropy", {"ignore_class": 2, "from_logits": True}, "sparse_logits", ["nt"]),
    ("KLDivergence", {}, "prob", ["n", "ntd"]),
    ("Poisson", {}, "positive", ["n", "ntd"]),
    ("Hinge", {}, "hinge01", ["n", "n1", "ntd"]),
    ("Hinge", {}, "hinge_pm", ["nd"]),
    ("Hinge", {}, "hinge_mixed", ["nd", "ntd"]),
    ("SquaredHinge", {}, "hinge01", ["n", "ntd"]),
    ("SquaredHinge", {}, "hinge_mixed", ["nd"]),
    ("CategoricalHinge", {}, "onehot", ["nd", "ntd"]),
]
PARAMS = [
    pytest.param(cls_name, kwargs, kind, shape_kind, id=f"{cls_name}-{kwargs}-{kind}-{shape_kind}")
    for cls_name, kwargs, kind, shapes in CASES
    for shape_kind in shapes
]


def run_parity(cls_name, kwargs, make_batch, weight_kinds, seed, choices=(0.0, 0.5, 1.0, 2.0), tol=TOL):
    """Feed every weight kind's batches to ours (update_state and forward) and to Keras; compare each step."""
    rng = np.random.default_rng(seed)
    checked = 0
    for w_kind in weight_kinds:
        ours, ours_fwd = getattr(tkm, cls_name)(**kwargs), getattr(tkm, cls_name)(**kwargs)
        theirs = getattr(keras.metrics, cls_name)(**kwargs)
        for n in SIZES:
            y_true, y_pred = make_batch(rng, n)
            sw = weight(rng, w_kind, y_true, n, choices)
            kw = {} if sw is None else {"sample_weight": sw}
            theirs_kw = dict(kw)
            if kwargs.get("ignore_class") is not None and sw is not None:
                # Keras 3.15 masks the weights in place, which fails where they broadcast to the labels' mask
                # (one weight for the batch, (N, 1) against (N, T) labels); ours masks a copy: the same as Keras
                # given those weights broadcast to every label
                if sw.size == 1 or (sw.ndim == y_true.ndim and sw.shape[-1] == 1 and y_true.shape[-1] != 1):
                    theirs_kw["sample_weight"] = np.broadcast_to(
                        sw.reshape(sw.shape if sw.size > 1 else ()), y_true.shape
                    ).copy()
            alone = getattr(keras.metrics, cls_name)(**kwargs)
            try:
                alone.update_state(y_true, y_pred, **theirs_kw)
                theirs.update_state(y_true, y_pred, **theirs_kw)
            except Exception:  # Keras refuses this weight shape: so must we, changing nothing
                before = state(ours)
                with pytest.raises((ValueError, TypeError)):
                    ours.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred), **kw)
                same_state(before, ours)
                break
            ours.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred), **kw)
            got = ours_fwd(torch.from_numpy(y_true), torch.from_numpy(y_pred), **kw)
            close(ours.result(), theirs.result(), tol)
            close(ours_fwd.result(), theirs.result(), tol)
            close(got, alone.result(), tol)
            checked += 1
    return checked


@pytest.mark.parametrize("cls_name, kwargs, kind, shape_kind", PARAMS)
def test_function_metrics_match_keras(cls_name, kwargs, kind, shape_kind):
    seed = zlib.crc32(repr((cls_name, kwargs, kind, shape_kind)).encode())
    checked = run_parity(cls_name, kwargs, lambda rng, n: batch(rng, kind, shape_kind, n), WEIGHT_KINDS, seed)
    assert checked >= 2 * len(SIZES)  # at least unweighted and per-sample weights ran all the way


R2_CASES = [
    ({}, "nd"),
    ({}, "n1"),
    ({}, "n_vs_n1"),
    ({"class_aggregation": "variance_weighted_average"}, "nd"),
    ({"class_aggregation": None}, "nd"),
    ({"num_regressors": 2}, "nd"),  # 6 samples x 3 outputs: counted as 18 elements, so adjusted
    ({"num_regressors": 13}, "nd"),  # 16 samples in all, 48 elements: adjusted only because elements count
    ({"num_regressors": 100}, "nd"),  # more regressors than elements: the plain R2
]


@pytest.mark.parametrize("kwargs, shape_kind", R2_CASES)
def test_r2_score_matches_keras(kwargs, shape_kind):
    # Weights without zeros (but for the all-zero kind): a ragged batch whose weights leave two samples can have
    # sum(w * y**2) - sum(w * y) * mean(y) near 0, where Keras' float32 states keep only a few digits (ours are
    # float64), and R2 amplifies that rounding far past 1e-6; even without them it reaches ~1e-5 (ours match a
    # float64 evaluation of Keras' formula: test_r2_matches_keras_formula_in_float64)
    seed = zlib.crc32(repr((kwargs, shape_kind)).encode())
    make = lambda rng, n: batch(rng, "r2", shape_kind, n)  # noqa: E731
    checked = run_parity("R2Score", kwargs, make, WEIGHT_KINDS, seed, choices=(0.5, 1.0, 2.0), tol=3e-5)
    assert checked >= 2 * len(SIZES)


def keras_r2_in_float64(y_true, y_pred, sample_weight, class_aggregation, num_regressors):
    """Keras' R2Score update and result, line by line, in float64."""
    t, p = y_true.astype(np.float64), y_pred.astype(np.float64)
    w = np.ones(()) if sample_weight is None else sample_weight.astype(np.float64)
    w = np.broadcast_to(w[:, None] if w.ndim == 1 else w, t.shape)
    total, squared, residual, count = (w * t).sum(0), (t * w * t).sum(0), ((t - p) ** 2 * w).sum(0), w.sum(0)
    spread = squared - total * (total / count)
    raw = 1 - residual / spread
    raw = np.where(np.isinf(raw), 0.0, raw)
    score = {"uniform_average": raw.mean(), "variance_weighted_average": (spread * raw).sum() / spread.sum()}.get(
        class_aggregation, raw
    )
    n = t.size
    if num_regressors and num_regressors < n - 1:
        score = 1 - (1 - score) * (n - 1) / (n - num_regressors - 1)
    return score


@pytest.mark.parametrize("class_aggregation", [None, "uniform_average", "variance_weighted_average"])
@pytest.mark.parametrize("num_regressors", [0, 3, 11])
def test_r2_matches_keras_formula_in_float64(class_aggregation, num_regressors):
    rng = np.random.default_rng(num_regressors)
    y_true, y_pred = batch(rng, "real", "nd", 4)  # 12 elements: 11 regressors fall back to the plain R2
    for sw in (None, weight(rng, "n", y_true, 4), weight(rng, "full", y_true, 4)):
        m = tkm.R2Score(class_aggregation, num_regressors, dtype="float64")
        m.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred), sample_weight=sw)
        expected = keras_r2_in_float64(y_true, y_pred, sw, class_aggregation, num_regressors)
        np.testing.assert_allclose(to_numpy(m.result()), expected, rtol=1e-12)


@pytest.mark.parametrize("shape", [(N,), (N, 1), (N, D), (N, T, D)])
def test_sum_matches_keras(shape):
    rng = np.random.default_rng(len(shape))
    for w_kind in (None, "n", "n1", "scalar", "one", "zeros", "nt", "full"):
        ours, ours_fwd, theirs = tkm.Sum(), tkm.Sum(), keras.metrics.Sum()
        for n in SIZES:
            vals = rng.normal(size=(n, *shape[1:])).astype(np.float32)
            sw = weight(rng, w_kind, vals, n)
            kw = {} if sw is None else {"sample_weight": sw}
            alone = keras.metrics.Sum()
            try:
                alone.update_state(vals, **kw)
                theirs.update_state(vals, **kw)
            except Exception:
                before = state(ours)
                with pytest.raises(ValueError, match="sample_weight"):
                    ours.update_state(torch.from_numpy(vals), **kw)
                same_state(before, ours)
                break
            ours.update_state(torch.from_numpy(vals), **kw)
            got = ours_fwd(torch.from_numpy(vals), **kw)
            scale = TOL * max(1.0, float(ours_fwd.result()) ** 2) ** 0.5 * vals.size  # Keras sums in float32
            close(ours.result(), theirs.result(), atol=scale)
            close(ours_fwd.result(), theirs.result(), atol=scale)
            close(got, alone.result(), atol=scale)


# --------------------------------------------------------------------------- Keras' own examples

# (class, kwargs, y_true, y_pred, sample_weight, the value Keras' docstring prints)
A, B = [[0, 1], [0, 0]], [[1, 1], [0, 0]]
P = [[0.6, 0.4], [0.4, 0.6]]
CT, CP = [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
RT, RP = [[0, 1, 0.5], [1, 1, 0.2]], [[0.1, 0.9, 0.5], [1, 0.9, 0.2]]
DOC_EXAMPLES = [
    ("MeanSquaredError", {}, A, B, None, 0.25),
    ("MeanAbsoluteError", {}, A, B, None, 0.25),
    ("MeanAbsoluteError", {}, A, B, [1, 0], 0.5),
    ("MeanAbsolutePercentageError", {}, A, B, None, 250000000.0),
    ("MeanAbsolutePercentageError", {}, A, B, [1, 0], 500000000.0),
    ("MeanSquaredLogarithmicError", {}, A, B, None, 0.12011322),
    ("MeanSquaredLogarithmicError", {}, A, B, [1, 0], 0.24022643),
    ("RootMeanSquaredError", {}, A, B, None, 0.5),
    ("RootMeanSquaredError", {}, A, B, [1, 0], 0.70710677),
    ("CosineSimilarity", {"axis": 1}, [[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]], None, 0.49999997),
    ("CosineSimilarity", {"axis": 1}, [[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]], [0.3, 0.7], 0.6999999),
    ("LogCoshError", {}, A, B, None, 0.10844523),
    ("LogCoshError", {}, A, B, [1, 0], 0.21689045),
    ("R2Score", {}, [[1.0], [4.0], [3.0]], [[2.0], [4.0], [4.0]], None, 0.57142854),
    ("KLDivergence", {}, A, P, None, 0.45814306),
    ("KLDivergence", {}, A, P, [1, 0], 0.9162892),
    ("Poisson", {}, A, B, None, 0.49999997),
    ("Poisson", {}, A, B, [1, 0], 0.99999994),
    ("BinaryCrossentropy", {}, A, P, None, 0.81492424),
    ("BinaryCrossentropy", {}, A, P, [1, 0], 0.9162905),
    ("CategoricalCrossentropy", {}, CT, CP, None, 1.1769392),
    ("CategoricalCrossentropy", {}, CT, CP, [0.3, 0.7], 1.6271976),
    ("SparseCategoricalCrossentropy", {}, [1, 2], CP, None, 1.1769392),
    ("SparseCategoricalCrossentropy", {}, [1, 2], CP, [0.3, 0.7], 1.6271976),
    ("Hinge", {}, A, P, None, 1.3),
    ("Hinge", {}, A, P, [1, 0], 1.1),
    ("SquaredHinge", {}, A, P, None, 1.86),
    ("SquaredHinge", {}, A, P, [1, 0], 1.46),
    ("CategoricalHinge", {}, A, P, None, 1.4000001),
    ("CategoricalHinge", {}, A, P, [1, 0], 1.2),
    ("PearsonCorrelation", {"axis": -1}, RT, RP, None, 0.9966996338993913),
    ("ConcordanceCorrelation", {"axis": -1}, RT, RP, None, 0.9816320385426076),
]


@pytest.mark.parametrize("cls_name, kwargs, y_true, y_pred, sw, expected", DOC_EXAMPLES)
def test_keras_docstring_examples(cls_name, kwargs, y_true, y_pred, sw, expected):
    ours, theirs = getattr(tkm, cls_name)(**kwargs), getattr(keras.metrics, cls_name)(**kwargs)
    kw = {} if sw is None else {"sample_weight": np.asarray(sw, np.float32)}
    ours.update_state(y_true, y_pred, **kw)
    theirs.update_state(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32), **kw)
    assert float(ours.result()) == pytest.approx(expected, rel=1e-6)
    close(ours.result(), theirs.result())


def test_sum_docstring_examples():
    m = tkm.Sum()
    m.update_state([1, 3, 5, 7])
    assert float(m.result()) == 16.0
    m = tkm.Sum()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert float(m.result()) == 4.0


# --------------------------------------------------------------------------- the subtle rules, one by one


def test_one_dimensional_inputs_are_one_value_counted_once():
    """A loss metric on (N,) reduces the last axis: each batch is one value, counted once (Keras' count is 1)."""
    ours, theirs = tkm.MeanSquaredError(), keras.metrics.MeanSquaredError()
    for n in (8, 8, 2):
        y_true, y_pred = np.arange(n, dtype=np.float32), np.zeros(n, np.float32)
        ours.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred))
        theirs.update_state(y_true, y_pred)
    assert float(ours.count) == float(theirs.count) == 3.0
    close(ours.result(), theirs.result())
    rmse = tkm.RootMeanSquaredError()  # RMSE averages elements: (N,) counts N
    rmse.update_state(torch.ones(8), torch.zeros(8))
    assert float(rmse.count) == 8.0


def test_binary_crossentropy_clips_in_float32_like_keras():
    """1 - 1e-7 rounds to 0.99999988 in float32: a prediction of 1.0 against label 0 costs -log(1.19e-7)."""
    y_true, y_pred = np.array([[0.0, 1.0, 0.0]], np.float32), np.array([[1.0, 0.0, 1 - 1e-8]], np.float32)
    ours, theirs = tkm.BinaryCrossentropy(), keras.metrics.BinaryCrossentropy()
    ours.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred))
    theirs.update_state(y_true, y_pred)
    close(ours.result(), theirs.result())
    upper = float(np.float32(1 - 1e-7))
    assert upper == pytest.approx(0.99999988)
    expected = (-np.log(1 - upper) - np.log(1e-7) - np.log(1 - upper)) / 3
    assert float(ours.result()) == pytest.approx(expected, rel=1e-5)


def test_sparse_ignore_class_counts_unweighted_and_masks_weighted():
    y_true, y_pred = np.array([0, 1, 2, 0]), np.full((4, 3), 1 / 3, np.float32)
    unweighted, weighted = (
        tkm.SparseCategoricalCrossentropy(ignore_class=0),
        tkm.SparseCategoricalCrossentropy(ignore_class=0),
    )
    unweighted.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred))
    weighted.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred), sample_weight=np.ones(4, np.float32))
    assert float(unweighted.count) == 4.0 and float(weighted.count) == 2.0  # ignored labels: counted vs left out
    assert float(unweighted.result()) == pytest.approx(np.log(3) / 2, rel=1e-6)
    assert float(weighted.result()) == pytest.approx(np.log(3), rel=1e-6)
    for ours, kw in ((unweighted, {}), (weighted, {"sample_weight": np.ones(4, np.float32)})):
        theirs = keras.metrics.SparseCategoricalCrossentropy(ignore_class=0)
        theirs.update_state(y_true, y_pred, **kw)
        close(ours.result(), theirs.result())


def test_hinge_reads_zero_one_labels_per_batch_without_a_host_sync():
    """{0,1} labels become {-1,1} only when the whole batch is {0,1}; decided on the device (compiles in one graph)."""
    torch._dynamo.reset()
    counters.clear()
    ours = tkm.Hinge()
    step = torch.compile(lambda t, p: ours(t, p), fullgraph=True)
    zero_one = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    mixed = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    y_pred = torch.tensor([[0.3, -0.2], [0.5, 0.1]])
    for y_true in (zero_one, mixed, zero_one):
        theirs = keras.metrics.Hinge()
        theirs.update_state(y_true.numpy(), y_pred.numpy())
        close(step(y_true, y_pred), theirs.result())
    assert counters["stats"]["unique_graphs"] == 1


def test_r2_counts_elements_and_builds_from_the_first_batch():
    ours = tkm.R2Score(num_regressors=5)
    assert not ours.built and torch.isnan(ours.result())
    y_true, y_pred = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(4, 3)
    ours.update_state(y_true, y_pred)
    assert ours.built and ours.sum.shape == (3,) and int(ours.num_samples) == 12
    theirs = keras.metrics.R2Score(num_regressors=5)
    theirs.update_state(y_true.numpy(), y_pred.numpy())  # 12 elements - 1 > 5: adjusted (4 samples would not be)
    close(ours.result(), theirs.result())
    before = state(ours)
    with pytest.raises(ValueError, match="built for 3 outputs"):
        ours.update_state(torch.zeros(4, 2), torch.zeros(4, 2))
    same_state(before, ours)
    fresh = tkm.R2Score(num_regressors=5)
    fresh.load_state_dict(ours.state_dict())  # a checkpoint builds an unbuilt metric
    close(fresh.result(), ours.result())


def test_sum_result_is_not_changed_by_a_later_update():
    ours, theirs = tkm.Sum(dtype="float64"), keras.metrics.Sum()
    ours.update_state([1.0, 2.0])
    theirs.update_state([1.0, 2.0])
    r_ours, r_theirs = ours.result(), theirs.result()
    ours.update_state([10.0])
    theirs.update_state([10.0])
    assert float(r_ours) == 3.0  # ours: the value when asked
    assert float(r_theirs) == 13.0  # Keras: its state variable, which moved on


def test_rmse_is_sqrt_of_the_weighted_mean_of_squared_errors():
    y_true, y_pred = torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.zeros(2, 2)
    w = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    m = tkm.RootMeanSquaredError()
    m.update_state(y_true, y_pred, sample_weight=w)
    # Keras: per-sample weighted means of the squared errors ((0*1 + 1*0)/2, (4*2 + 0*1)/2) over the
    # per-sample mean weights (0.5, 1.5)
    assert float(m.result()) == pytest.approx(np.sqrt((0.0 + 4.0) / 2.0), rel=1e-6)
    theirs = keras.metrics.RootMeanSquaredError()
    theirs.update_state(y_true.numpy(), y_pred.numpy(), sample_weight=w.numpy())
    close(m.result(), theirs.result())


def test_fast_kernels_give_the_loss_kernels_numbers():
    from torch_keras_metrics import losses as L
    from torch_keras_metrics import regression_metrics as R

    g = torch.Generator().manual_seed(3)
    for shape in [(7,), (7, 5), (3, 4, 5)]:
        y_true, y_pred = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        assert torch.equal(R._squared_error(y_true, y_pred), L.mean_squared_error(y_true, y_pred))
        assert torch.equal(R._absolute_error(y_true, y_pred), L.mean_absolute_error(y_true, y_pred))
    leaf = torch.randn(4, 3, requires_grad=True)
    assert not R._squared_error(torch.zeros(4, 3), leaf).requires_grad


# --------------------------------------------------------------------------- torch, torchmetrics, get, configs

ALL = [
    ("MeanSquaredError", {}),
    ("MeanAbsoluteError", {}),
    ("RootMeanSquaredError", {}),
    ("MeanAbsolutePercentageError", {}),
    ("MeanSquaredLogarithmicError", {}),
    ("CosineSimilarity", {"axis": 0}),
    ("LogCoshError", {}),
    ("R2Score", {"class_aggregation": None, "num_regressors": 1}),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1, "axis": 1}),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 3, "axis": -1}),
    ("KLDivergence", {}),
    ("Poisson", {}),
    ("Hinge", {}),
    ("SquaredHinge", {}),
    ("CategoricalHinge", {}),
    ("PearsonCorrelation", {"axis": 0}),
    ("ConcordanceCorrelation", {"axis": 0}),
    ("Sum", {}),
]


@pytest.mark.parametrize("cls_name, kwargs", ALL)
def test_config_round_trip_and_keras_config(cls_name, kwargs):
    ours = getattr(tkm, cls_name)(name="m", **kwargs)
    config = ours.get_config()
    again = type(ours).from_config(config)
    assert again.get_config() == config
    theirs = getattr(keras.metrics, cls_name)(name="m", **kwargs).get_config()
    if cls_name == "CosineSimilarity":  # Keras' config leaves `axis` out (its round trip loses it); ours keeps it
        assert config == {**theirs, "axis": 0}
    else:
        assert config == theirs
    assert tkm.get({"class_name": cls_name, "config": config}).get_config() == config


GET_NAMES = [
    ("MeanSquaredError", "MeanSquaredError", "mean_squared_error"),
    ("mean_squared_error", "MeanSquaredError", "mean_squared_error"),
    ("mean_absolute_error", "MeanAbsoluteError", "mean_absolute_error"),
    ("root_mean_squared_error", "RootMeanSquaredError", "root_mean_squared_error"),
    ("RootMeanSquaredError", "RootMeanSquaredError", "root_mean_squared_error"),
    ("mape", "MeanAbsolutePercentageError", "mape"),
    ("MAPE", "MeanAbsolutePercentageError", "mean_absolute_percentage_error"),
    ("msle", "MeanSquaredLogarithmicError", "msle"),
    ("cosine_similarity", "CosineSimilarity", "cosine_similarity"),
    ("LogCoshError", "LogCoshError", "logcosh"),
    ("log_cosh_error", "LogCoshError", "log_cosh_error"),
    ("r2_score", "R2Score", "r2_score"),
    ("R2Score", "R2Score", "r2_score"),
    ("binary_crossentropy", "BinaryCrossentropy", "binary_crossentropy"),
    ("CategoricalCrossentropy", "CategoricalCrossentropy", "categorical_crossentropy"),
    ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy"),
    ("kl_divergence", "KLDivergence", "kl_divergence"),
    ("KLDivergence", "KLDivergence", "kl_divergence"),
    ("poisson", "Poisson", "poisson"),
    ("hinge", "Hinge", "hinge"),
    ("squared_hinge", "SquaredHinge", "squared_hinge"),
    ("categorical_hinge", "CategoricalHinge", "categorical_hinge"),
    ("pearson_correlation", "PearsonCorrelation", "pearson_correlation"),
    ("ConcordanceCorrelation", "ConcordanceCorrelation", "concordance_correlation"),
    ("sum", "Sum", "sum"),
    ("Sum", "Sum", "sum"),
]


@pytest.mark.parametrize("name, cls_name, metric_name", GET_NAMES)
def test_get_resolves_the_classes_as_keras(name, cls_name, metric_name):
    assert type(keras.metrics.get(name)).__name__ == cls_name
    ours = tkm.get(name)
    assert type(ours).__name__ == cls_name and ours.name == metric_name


def test_get_short_names_stay_function_metrics_and_unknown_names_stay_unknown():
    for name in ("mse", "MSE", "mae", "MAE", "bce"):
        metric = tkm.get(name)
        assert type(metric) is tkm.MeanMetricWrapper and metric.name == name
    for name in ("rmse", "k_l_divergence", "kld"):  # Keras' metrics.get refuses these too
        with pytest.raises(ValueError):
            keras.metrics.get(name)
        with pytest.raises(ValueError, match="Unknown metric"):
            tkm.get(name)


def test_metric_collection_takes_keras_order():
    collection = torchmetrics.MetricCollection(
        {"mse": tkm.MeanSquaredError(), "r2": tkm.R2Score(), "hinge": tkm.Hinge(), "rmse": tkm.RootMeanSquaredError()}
    )
    theirs = {
        "mse": keras.metrics.MeanSquaredError(),
        "r2": keras.metrics.R2Score(),
        "hinge": keras.metrics.Hinge(),
        "rmse": keras.metrics.RootMeanSquaredError(),
    }
    g = torch.Generator().manual_seed(5)
    for n in SIZES:
        y_true, y_pred = torch.randn(n, D, generator=g), torch.randn(n, D, generator=g)
        collection.update(y_true, y_pred)
        for m in theirs.values():
            m.update_state(y_true.numpy(), y_pred.numpy())
    results = collection.compute()
    for key, m in theirs.items():
        close(results[key], m.result())


COMPILED = [
    ("MeanSquaredError", {}, "real"),
    ("RootMeanSquaredError", {}, "real"),
    ("CosineSimilarity", {}, "real"),
    ("R2Score", {}, "real"),
    ("PearsonCorrelation", {}, "real"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, "binary"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}, "sparse"),
    ("SquaredHinge", {}, "hinge_mixed"),
    ("Sum", {}, "real"),
]


@pytest.mark.parametrize("cls_name, kwargs, kind", COMPILED)
def test_compiled_updates_compile_once_and_match_eager(cls_name, kwargs, kind):
    torch._dynamo.reset()
    counters.clear()
    compiled, eager = getattr(tkm, cls_name)(**kwargs), getattr(tkm, cls_name)(**kwargs)
    rng = np.random.default_rng(11)
    batches = [batch(rng, kind, "n" if kind == "sparse" else "nd", N) for _ in range(4)]
    if cls_name == "Sum":
        batches = [(y_pred,) for _, y_pred in batches]
    batches = [tuple(torch.from_numpy(x) for x in b) for b in batches]
    weights = [torch.from_numpy(rng.uniform(size=N).astype(np.float32)) for _ in batches]
    if cls_name == "R2Score":  # R2Score builds its states from the first batch, eagerly
        for m in (compiled, eager):
            m.update_state(*batches[0])

    def step(metric, xs, w):
        metric.update_state(*xs, sample_weight=w)

    compiled_step = torch.compile(step, fullgraph=True)
    for xs, w in zip(batches, weights):
        compiled_step(compiled, xs, w)
        step(eager, xs, w)
        torch.testing.assert_close(compiled.result(), eager.result(), rtol=1e-6, atol=1e-6)
    assert counters["stats"]["unique_graphs"] == 1
    assert sum(counters["recompiles"].values()) == 0


BAD_ARGUMENTS = [
    ("BinaryCrossentropy", {"label_smoothing": 1.5}, ValueError, "label_smoothing"),
    ("BinaryCrossentropy", {"from_logits": "yes"}, TypeError, "from_logits"),
    ("CategoricalCrossentropy", {"axis": 1.5}, TypeError, "axis"),
    ("SparseCategoricalCrossentropy", {"ignore_class": "x"}, TypeError, "ignore_class"),
    ("CosineSimilarity", {"axis": None}, TypeError, "axis"),
    ("R2Score", {"class_aggregation": "mean"}, ValueError, "class_aggregation"),
    ("R2Score", {"num_regressors": -1}, ValueError, "num_regressors"),
    ("MeanSquaredError", {"axis": 1}, TypeError, "axis"),
    ("RootMeanSquaredError", {"threshold": 1}, TypeError, "threshold"),
]


@pytest.mark.parametrize("cls_name, kwargs, error, word", BAD_ARGUMENTS)
def test_bad_arguments_are_refused_by_name(cls_name, kwargs, error, word):
    with pytest.raises(error, match=word):
        getattr(tkm, cls_name)(**kwargs)


BAD_INPUTS = [
    ("BinaryCrossentropy", torch.zeros(4), torch.zeros(4, 1), {}, "same shape"),
    ("R2Score", torch.zeros(4), torch.zeros(4), {}, "2D inputs"),
    ("R2Score", torch.zeros(4, 2), torch.zeros(4, 2), {"sample_weight": torch.ones(3)}, "sample_weight"),
    ("RootMeanSquaredError", torch.zeros(4, 2), torch.zeros(4, 3), {}, "y_true"),
    ("MeanSquaredError", torch.zeros(4, 2), torch.zeros(4, 2), {"sample_weight": torch.ones(3)}, "sample_weight"),
    ("SparseCategoricalCrossentropy", torch.zeros(3), torch.zeros(4, 3), {}, "y_true"),
    ("Sum", torch.zeros(4, 2), None, {"sample_weight": torch.ones(3)}, "sample_weight"),
]


@pytest.mark.parametrize("cls_name, y_true, y_pred, kw, word", BAD_INPUTS)
def test_bad_inputs_raise_by_name_and_change_nothing(cls_name, y_true, y_pred, kw, word):
    metric = getattr(tkm, cls_name)()
    args = (y_true,) if y_pred is None else (y_true, y_pred)
    if cls_name == "R2Score":
        metric.update_state(torch.ones(4, 2), torch.zeros(4, 2))
    elif cls_name == "SparseCategoricalCrossentropy":
        metric.update_state(torch.ones(4), torch.ones(4, 3))
    else:
        metric.update_state(*((torch.ones(4),) if y_pred is None else (torch.ones(4, 3), torch.ones(4, 3))))
    before = state(metric)
    with pytest.raises(ValueError, match=word):
        metric.update_state(*args, **kw)
    with pytest.raises(ValueError, match=word):
        metric(*args, **kw)
    same_state(before, metric)


def test_trainer_epoch_log_equals_the_metric_on_the_epochs_predictions():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(40, 4), torch.randn(40, 3)
    metrics = [tkm.MeanSquaredError(), tkm.RootMeanSquaredError(), tkm.R2Score(), tkm.CosineSimilarity()]
    trainer = tkm.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), torch.nn.MSELoss(), metrics=metrics)
    history = trainer.fit(x, y, epochs=1, batch_size=16, verbose=0)
    with torch.no_grad():
        y_pred = model(x)
    for metric in copy.deepcopy(metrics):
        theirs = getattr(keras.metrics, type(metric).__name__)()
        for start in range(0, 40, 16):  # the Trainer's batches, the last one ragged
            theirs.update_state(y[start : start + 16].numpy(), y_pred[start : start + 16].numpy())
        assert history.history[metric.name][0] == pytest.approx(float(theirs.result()), rel=1e-5, abs=1e-6)
