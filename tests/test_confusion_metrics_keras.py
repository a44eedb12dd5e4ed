"""Parity of the confusion metrics (counts, Precision, Recall, AUC, the four "X at Y") with real Keras 3.

Each property feeds the same batches (several, the last one ragged) to one of our metrics and to the Keras
class of the same name, and compares `result()` after every batch within 1e-6; `forward` must equal a fresh
Keras metric fed that batch alone. Scores are drawn from a pool of ties (values exactly at thresholds,
0.15, 0.27, 0.3, 0.54, 0.6 among them, where Keras' bucket index and `p > t` disagree), from outside [0, 1],
and at random. Hypothesis runs derandomized.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torch_keras_metrics as tkm
from tests.conftest import to_numpy  # also sets KERAS_BACKEND=torch before keras is imported

keras = pytest.importorskip("keras")
assert keras.backend.backend() == "torch"

PARITY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOL = 1e-6
TIES = (0.0, 1.0, 0.5, 0.15, 0.27, 0.3, 0.54, 0.6, 0.25, 0.75, 0.01, 0.99, 0.33, 1 / 3)
WEIGHTS = (0.0, 0.5, 1.0, 2.0)
COUNTS = ["TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives"]
AT = {
    "SensitivityAtSpecificity": "specificity",
    "SpecificityAtSensitivity": "sensitivity",
    "PrecisionAtRecall": "recall",
    "RecallAtPrecision": "precision",
}


def arr(x) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=np.float64)


def close(got, want, tol=TOL) -> None:
    got, want = arr(got), arr(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, atol=tol, rtol=tol)


def scores(draw, shape, logits=False):
    n = int(np.prod(shape))
    kind = draw(st.sampled_from(["ties", "random", "wide"]))
    if kind == "ties":
        elem = st.sampled_from(TIES)
    elif kind == "random":
        elem = st.floats(0, 1, width=32)
    else:  # outside [0, 1] too: Keras clips on the bucketed path only
        elem = st.sampled_from((-0.5, -1e-8, 1.0000001, 1.5, 0.5, 0.0, 1.0, 0.3))
    if logits:
        elem = st.floats(-4, 4, width=32)
    return np.asarray(draw(st.lists(elem, min_size=n, max_size=n)), dtype=np.float32).reshape(shape)


def labels(draw, shape):
    n = int(np.prod(shape))
    kind = draw(st.sampled_from(["int", "float", "bool", "odd"]))
    if kind == "odd":  # any nonzero label is a positive
        vals = draw(st.lists(st.sampled_from((0.0, 1.0, 2.0, 0.5, -1.0)), min_size=n, max_size=n))
        return np.asarray(vals, np.float32).reshape(shape)
    vals = np.asarray(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))).reshape(shape)
    return vals.astype({"int": np.int64, "float": np.float32, "bool": bool}[kind])


def weight(draw, kind, n, c):
    shape = {"n": (n,), "scalar": (), "one": (1,), "nc": (n, c), "n1": (n, 1)}[kind]
    vals = draw(st.lists(st.sampled_from(WEIGHTS), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.asarray(vals, np.float32).reshape(shape)


@st.composite
def batch_sizes(draw):
    full = draw(st.integers(2, 6))
    return [full] * draw(st.integers(1, 2)) + [draw(st.integers(1, full - 1))]


def draw_batches(draw, layout, c, logits=False, per_class_weights=True):
    """Batches of (y_true, y_pred) with weights valid for Keras in this layout: (N,), (N, 1) or (N, C)."""
    weight_kinds = {"n": [None, "n", "scalar", "one"], "n1": [None, "n", "n1", "scalar"], "nc": [None, "n", "scalar"]}
    if per_class_weights:
        weight_kinds["nc"].append("nc")
    wkind = draw(st.sampled_from(weight_kinds[layout]))
    out = []
    for n in draw(batch_sizes()):
        shape = {"n": (n,), "n1": (n, 1), "nc": (n, c)}[layout]
        y_pred = scores(draw, shape, logits)
        y_true = labels(draw, shape)
        if layout == "n1" and draw(st.booleans()):
            y_true = y_true[:, 0]  # (N,) labels against (N, 1) scores
        kw = {} if wkind is None else {"sample_weight": weight(draw, wkind, n, c)}
        out.append(((y_true, y_pred), kw))
    return out


def as_torch(args, kwargs, container):
    if container == "numpy":
        return args, kwargs
    if container == "list":
        return tuple(a.tolist() for a in args), {k: v.tolist() for k, v in kwargs.items()}
    return tuple(torch.from_numpy(np.array(a)) for a in args), {
        k: torch.from_numpy(np.array(v)) for k, v in kwargs.items()
    }


def run_both(ours, make_keras, batches, container="torch", tol=TOL):
    """Feed both metrics; check forward (this batch) and result (running) after every batch, then after a reset."""
    theirs = make_keras()
    for args, kwargs in batches:
        alone = make_keras()
        alone.update_state(*args, **kwargs)
        theirs.update_state(*args, **kwargs)
        t_args, t_kwargs = as_torch(args, kwargs, container)
        got_batch = ours(*t_args, **t_kwargs)
        assert isinstance(got_batch, torch.Tensor) and got_batch.dtype == torch.float32
        close(got_batch, alone.result(), tol)
        close(ours.result(), theirs.result(), tol)
    ours.reset_state()
    theirs.reset_state()
    for args, kwargs in batches:
        ours.update_state(*as_torch(args, kwargs, container)[0], **as_torch(args, kwargs, container)[1])
        theirs.update_state(*args, **kwargs)
    close(ours.result(), theirs.result(), tol)


def threshold_choice(draw):
    return draw(
        st.sampled_from(
            [None, 0.5, 0.3, 0.0, 1.0, [0.5], [0.3, 0.5], [0.7, 0.15, 0.27], [0.0, 0.5, 1.0], "101", "5", [0.0, 1.0]]
        )
    )


def _thresholds(spec):
    if spec == "101":
        return [i / 100 for i in range(101)]
    if spec == "5":
        return [i / 4 for i in range(5)]
    return spec


# --------------------------------------------------------------------------- parity properties


@pytest.mark.parametrize("cls_name", COUNTS + ["Precision", "Recall"])
@settings(PARITY, max_examples=12)
@given(data=st.data())
def test_counts_precision_recall_match_keras(cls_name, data):
    layout = data.draw(st.sampled_from(["n", "n1", "nc"]), label="layout")
    c = data.draw(st.integers(2, 4))
    kwargs = {"thresholds": _thresholds(threshold_choice(data.draw))}
    if cls_name in ("Precision", "Recall") and layout == "nc":
        if data.draw(st.booleans()):
            kwargs["top_k"] = data.draw(st.integers(1, c))
            if data.draw(st.booleans()):
                kwargs["thresholds"] = None  # top_k's own threshold, -1e10
        if data.draw(st.booleans()):
            kwargs["class_id"] = data.draw(st.integers(0, c - 1))
    batches = draw_batches(data.draw, layout, c, per_class_weights="class_id" not in kwargs)
    container = data.draw(st.sampled_from(["torch", "numpy", "list"]))
    run_both(getattr(tkm, cls_name)(**kwargs), lambda: getattr(keras.metrics, cls_name)(**kwargs), batches, container)


@settings(PARITY, max_examples=25)
@given(data=st.data())
def test_auc_matches_keras(data):
    multi_label = data.draw(st.booleans(), label="multi_label")
    layout = "nc" if multi_label else data.draw(st.sampled_from(["n", "n1", "nc"]))
    c = data.draw(st.integers(1 if multi_label else 2, 4))
    kwargs = {
        "curve": data.draw(st.sampled_from(["ROC", "PR", "PRGAIN", "pr"])),
        "summation_method": data.draw(st.sampled_from(["interpolation", "minoring", "majoring"])),
        "from_logits": data.draw(st.booleans()),
        "multi_label": multi_label,
    }
    how = data.draw(st.sampled_from(["num", "even list", "list"]))
    if how == "num":
        kwargs["num_thresholds"] = data.draw(st.sampled_from([2, 3, 10, 101, 200]))
    elif how == "even list":
        kwargs["thresholds"] = [0.25, 0.5, 0.75]
    else:
        kwargs["thresholds"] = data.draw(st.sampled_from([[0.5], [0.3, 0.5, 0.15], [0.9, 0.1, 0.27, 0.6]]))
    if multi_label and data.draw(st.booleans()):
        kwargs["num_labels"] = c
    if layout == "nc" and data.draw(st.booleans()):
        kwargs["label_weights"] = data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=c, max_size=c))
    batches = draw_batches(data.draw, layout, c, logits=kwargs["from_logits"])
    run_both(tkm.AUC(**kwargs), lambda: keras.metrics.AUC(**kwargs), batches)


@pytest.mark.parametrize("cls_name", list(AT))
@settings(PARITY, max_examples=10)
@given(data=st.data())
def test_x_at_y_match_keras(cls_name, data):
    layout = data.draw(st.sampled_from(["n", "n1", "nc"]))
    c = data.draw(st.integers(2, 4))
    kwargs = {
        AT[cls_name]: data.draw(st.sampled_from([0.0, 0.3, 0.5, 0.8, 2 / 3, 1.0])),
        "num_thresholds": data.draw(st.sampled_from([1, 2, 3, 11, 101, 200])),
    }
    if layout == "nc" and data.draw(st.booleans()):
        kwargs["class_id"] = data.draw(st.integers(0, c - 1))
    batches = draw_batches(data.draw, layout, c, per_class_weights="class_id" not in kwargs)
    run_both(getattr(tkm, cls_name)(**kwargs), lambda: getattr(keras.metrics, cls_name)(**kwargs), batches)


# --------------------------------------------------------------------------- the subtle rules, one by one


def test_bucketed_thresholds_follow_keras_float32_ceil_not_p_greater_than_t():
    """At 101 evenly spaced thresholds Keras buckets with ceil(p * 100) - 1 in float32: a score of exactly
    0.15 lands above the threshold 0.15 (float32 0.15 * 100 = 15.000001), unlike `p > t`."""
    p = np.array([0.15, 0.27, 0.3, 0.54, 0.6, 0.5, 0.0, 1.0], np.float32)
    y = np.ones_like(p)
    thresholds = [i / 100 for i in range(101)]
    theirs = keras.metrics.TruePositives(thresholds=thresholds)
    theirs.update_state(y, p)
    ours = tkm.TruePositives(thresholds=thresholds)
    ours.update_state(torch.from_numpy(y), torch.from_numpy(p))
    close(ours.result(), theirs.result())
    naive = (p[:, None] > np.asarray(thresholds, np.float32)[None, :]).sum(0)
    assert not np.array_equal(arr(theirs.result()), naive)  # the bucketed rule really differs here
    # Two thresholds (fewer than three) compare p > t: 0.15 is not above 0.15
    two = tkm.TruePositives(thresholds=[0.15, 0.6])
    two.update_state(torch.from_numpy(y), torch.from_numpy(p))
    k2 = keras.metrics.TruePositives(thresholds=[0.15, 0.6])
    k2.update_state(y, p)
    close(two.result(), k2.result())
    close(two.result(), (p[:, None] > np.float32([0.15, 0.6])).sum(0))


def test_auc_thresholds_have_epsilon_ends_and_x_at_y_do_not():
    auc = tkm.AUC(num_thresholds=5)
    assert auc.thresholds == pytest.approx(keras.metrics.AUC(num_thresholds=5).thresholds)
    assert auc.thresholds[0] == -1e-7 and auc.thresholds[-1] == 1 + 1e-7
    sens = tkm.SensitivityAtSpecificity(0.5, num_thresholds=5)
    assert sens.thresholds == [0.0, 0.25, 0.5, 0.75, 1.0]
    # a score of exactly 0 counts at AUC's first threshold (-1e-7), never at 0 for the X-at-Y metrics
    y, p = torch.tensor([1, 0]), torch.tensor([0.0, 0.0])
    auc.update_state(y, p)
    assert arr(auc.true_positives)[0] == 1.0 and arr(auc.false_positives)[0] == 1.0
    sens.update_state(y, p)
    assert arr(sens.true_positives)[0] == 0.0
    k = keras.metrics.SensitivityAtSpecificity(0.5, num_thresholds=5)
    k.update_state(y.numpy(), p.numpy())
    close(sens.true_positives, k.true_positives)


def test_result_is_a_new_tensor_a_later_update_does_not_change():
    m = tkm.Precision(thresholds=[0.3, 0.6])
    m.update_state(torch.tensor([1, 0, 1]), torch.tensor([0.9, 0.8, 0.1]))
    first = m.result()
    kept = first.clone()
    m.update_state(torch.tensor([1, 1]), torch.tensor([0.9, 0.95]))
    assert torch.equal(first, kept)
    assert not torch.equal(m.result(), kept)
    c = tkm.TruePositives()
    c.update_state([1], [0.9])
    r = c.result()
    c.update_state([1], [0.9])
    assert float(r) == 1.0 and float(c.result()) == 2.0


def test_sample_weight_n_broadcasts_over_classes_and_zero_weights_mask():
    y = np.array([[1, 0, 1], [0, 1, 1]], np.float32)
    p = np.array([[0.9, 0.2, 0.4], [0.7, 0.6, 0.3]], np.float32)
    for sw in (np.array([2.0, 0.0], np.float32), np.array([[1.0, 0.0, 2.0], [0.0, 0.5, 1.0]], np.float32)):
        for cls in ("Precision", "Recall", "TruePositives"):
            ours, theirs = (
                getattr(tkm, cls)(thresholds=[0.35, 0.5]),
                getattr(keras.metrics, cls)(thresholds=[0.35, 0.5]),
            )
            ours.update_state(y, p, sample_weight=sw)
            theirs.update_state(y, p, sample_weight=sw)
            close(ours.result(), theirs.result())
    m = tkm.Recall()
    m.update_state([1, 1], [0.9, 0.1], sample_weight=[0, 0])
    assert float(m.result()) == 0.0  # divide_no_nan: 0 / 0 is 0


def test_multi_label_auc_averages_per_label_curves_with_label_weights():
    rng = np.random.default_rng(0)
    y = (rng.random((40, 3)) > 0.5).astype(np.float32)
    p = rng.random((40, 3)).astype(np.float32)
    for lw in (None, [1.0, 0.0, 3.0]):
        for curve in ("ROC", "PR"):
            kw = {"multi_label": True, "label_weights": lw, "curve": curve, "num_thresholds": 50}
            ours, theirs = tkm.AUC(**kw), keras.metrics.AUC(**kw)
            ours.update_state(y, p)
            theirs.update_state(y, p)
            close(ours.result(), theirs.result())
            assert tuple(ours.true_positives.shape) == (50, 3)
    flat = tkm.AUC(num_thresholds=50)
    flat.update_state(y, p)
    per = tkm.AUC(num_thresholds=50, multi_label=True)
    per.update_state(y, p)
    assert float(flat.result()) != pytest.approx(float(per.result()), abs=1e-6)


def test_from_logits_applies_a_sigmoid():
    logits = torch.tensor([-3.0, 0.5, 2.0, -0.2])
    y = torch.tensor([0, 1, 1, 0])
    a, b = tkm.AUC(from_logits=True), tkm.AUC()
    a.update_state(y, logits)
    b.update_state(y, torch.sigmoid(logits))
    assert torch.equal(a.result(), b.result())
    k = keras.metrics.AUC(from_logits=True)
    k.update_state(y.numpy(), logits.numpy())
    close(a.result(), k.result())


# --------------------------------------------------------------------------- Keras' docstring examples

DOC_EXAMPLES = [
    ("FalsePositives", {}, [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0], 2.0, 1.0),
    ("FalseNegatives", {}, [0, 1, 1, 1], [0, 1, 0, 0], [0, 0, 1, 0], 2.0, 1.0),
    ("TrueNegatives", {}, [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], 2.0, 1.0),
    ("TruePositives", {}, [0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], 2.0, 1.0),
    ("Precision", {}, [0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], 2 / 3, 1.0),
    ("Recall", {}, [0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], 2 / 3, 1.0),
    (
        "SensitivityAtSpecificity",
        {"specificity": 0.5},
        [0, 0, 0, 1, 1],
        [0, 0.3, 0.8, 0.3, 0.8],
        [1, 1, 2, 2, 1],
        0.5,
        1 / 3,
    ),
    (
        "SpecificityAtSensitivity",
        {"sensitivity": 0.5},
        [0, 0, 0, 1, 1],
        [0, 0.3, 0.8, 0.3, 0.8],
        [1, 1, 2, 2, 2],
        2 / 3,
        0.5,
    ),
    ("PrecisionAtRecall", {"recall": 0.5}, [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], [2, 2, 2, 1, 1], 0.5, 1 / 3),
    ("RecallAtPrecision", {"precision": 0.8}, [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 0, 0, 1], 0.5, 1.0),
    ("AUC", {"num_thresholds": 3}, [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 0, 0, 1], 0.75, 1.0),
]


@pytest.mark.parametrize(
    "cls_name, kwargs, y, p, sw, want, want_weighted", DOC_EXAMPLES, ids=[d[0] for d in DOC_EXAMPLES]
)
def test_keras_docstring_examples(cls_name, kwargs, y, p, sw, want, want_weighted):
    ours, theirs = getattr(tkm, cls_name)(**kwargs), getattr(keras.metrics, cls_name)(**kwargs)
    ours.update_state(y, p)
    theirs.update_state(y, p)
    assert float(ours.result()) == pytest.approx(want, abs=1e-6)
    close(ours.result(), theirs.result())
    ours.reset_state()
    theirs.reset_state()
    ours.update_state(y, p, sample_weight=sw)
    theirs.update_state(y, p, sample_weight=sw)
    assert float(ours.result()) == pytest.approx(want_weighted, abs=1e-6)
    close(ours.result(), theirs.result())


@pytest.mark.parametrize("k, want", [(2, None), (4, 0.5)])
def test_precision_top_k_docstring_examples(k, want):
    """top_k=4 gives Keras' documented 0.5; for top_k=2 with four tied scores the kept pair is torch.topk's
    choice, as in Keras on torch (its docstring's 0.0 is TensorFlow's tie order)."""
    ours, theirs = tkm.Precision(top_k=k), keras.metrics.Precision(top_k=k)
    ours.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    theirs.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    close(ours.result(), theirs.result())
    if want is not None:
        assert float(ours.result()) == want


# --------------------------------------------------------------------------- refusals, state unchanged


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


_FLAT = ([1, 0, 1], [0.7, 0.2, 0.6])
_ROWS = ([[1, 0], [0, 1]], [[0.7, 0.2], [0.1, 0.8]])
# (case, metric, a good batch first or None, the bad batch, its keywords, a word the error must hold)
BAD_UPDATES = [
    ("shapes differ", lambda: tkm.Precision(), _FLAT, ([1, 0, 1], [[0.2, 0.3], [0.1, 0.9], [0.5, 0.5]]), {}, "y_true"),
    ("weights do not broadcast", lambda: tkm.Recall(), _FLAT, _FLAT, {"sample_weight": [1.0, 2.0]}, "sample_weight"),
    ("class_id on 1-D", lambda: tkm.Precision(class_id=0), None, ([1, 0], [0.2, 0.9]), {}, "class_id"),
    (
        "class_id out of range",
        lambda: tkm.Recall(class_id=3),
        ([[1, 0, 0, 1]], [[0.2, 0.9, 0.1, 0.7]]),
        _ROWS,
        {},
        "class_id",
    ),
    ("top_k above classes", lambda: tkm.Precision(top_k=3), ([[1, 0, 1]], [[0.2, 0.9, 0.4]]), _ROWS, {}, "top_k"),
    ("multi_label rank 1", lambda: tkm.AUC(multi_label=True, num_labels=2), _ROWS, ([1, 0], [0.2, 0.9]), {}, "y_pred"),
    ("multi_label count", lambda: tkm.AUC(multi_label=True), _ROWS, ([[1, 0, 1]], [[0.2, 0.9, 0.1]]), {}, "labels"),
    (
        "label_weights size",
        lambda: tkm.AUC(label_weights=[1.0, 2.0]),
        _ROWS,
        ([[1, 0, 1]], [[0.2, 0.9, 0.1]]),
        {},
        "label_weights",
    ),
    ("string scores", lambda: tkm.TruePositives(), _FLAT, ([1], ["a"]), {}, "y_pred"),
]


@pytest.mark.parametrize("case, make, good, args, kwargs, word", BAD_UPDATES, ids=[b[0] for b in BAD_UPDATES])
def test_bad_inputs_raise_naming_the_argument_and_leave_the_state(case, make, good, args, kwargs, word):
    m = make()
    if good is not None:
        m.update_state(*good)
    before = _state(m)
    with pytest.raises((ValueError, TypeError), match=word):
        m.update_state(*args, **kwargs)
    with pytest.raises((ValueError, TypeError), match=word):
        m(*args, **kwargs)
    after = _state(m)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    if good is not None:
        assert any(v.abs().sum() > 0 for v in after.values())  # the good batch did count


BAD_ARGS = [
    (lambda: tkm.Precision(thresholds=1.5), "[0, 1]"),
    (lambda: tkm.TruePositives(thresholds=[0.2, -0.1]), "[0, 1]"),
    (lambda: tkm.Recall(top_k=0), "top_k"),
    (lambda: tkm.Precision(class_id=1.5), "class_id"),
    (lambda: tkm.AUC(num_thresholds=1), "num_thresholds"),
    (lambda: tkm.AUC(curve="XY"), "curve"),
    (lambda: tkm.AUC(summation_method="trapezoid"), "summation method"),
    (lambda: tkm.AUC(num_labels=3), "num_labels"),
    (lambda: tkm.SensitivityAtSpecificity(1.5), "specificity"),
    (lambda: tkm.RecallAtPrecision(0.5, num_thresholds=0), "num_thresholds"),
    (lambda: tkm.PrecisionAtRecall(-0.1), "recall"),
]


@pytest.mark.parametrize("make, word", BAD_ARGS)
def test_bad_arguments_raise_naming_the_argument(make, word):
    with pytest.raises((ValueError, TypeError), match=word.replace("[", r"\[").replace("]", r"\]")):
        make()


# --------------------------------------------------------------------------- the torch side


ALL = [
    ("TruePositives", {"thresholds": [0.3, 0.5]}),
    ("FalsePositives", {}),
    ("TrueNegatives", {}),
    ("FalseNegatives", {"thresholds": [0.0, 0.5, 1.0]}),
    ("Precision", {"thresholds": 0.4}),
    ("Recall", {"top_k": 1, "class_id": 1}),
    ("AUC", {"num_thresholds": 50, "curve": "PR"}),
    ("AUC", {"multi_label": True, "num_labels": 2, "thresholds": [0.3, 0.1]}),
    ("SensitivityAtSpecificity", {"specificity": 0.5}),
    ("SpecificityAtSensitivity", {"sensitivity": 0.5}),
    ("PrecisionAtRecall", {"recall": 0.5}),
    ("RecallAtPrecision", {"precision": 0.5}),
]


@pytest.mark.parametrize("cls_name, kwargs", ALL, ids=[f"{a[0]}-{i}" for i, a in enumerate(ALL)])
def test_config_round_trip_name_and_get(cls_name, kwargs):
    ours, theirs = getattr(tkm, cls_name)(**kwargs), getattr(keras.metrics, cls_name)(**kwargs)
    assert ours.name == getattr(keras.metrics, cls_name)(**kwargs, name=None).name.rstrip("_0123456789")
    config = ours.get_config()
    k_config = theirs.get_config()
    k_config["name"] = config["name"]
    assert config.keys() == k_config.keys()
    for key in config:
        assert (
            np.allclose(
                np.asarray(config[key], dtype=object).astype(float),
                np.asarray(k_config[key], dtype=object).astype(float),
            )
            if isinstance(config[key], list)
            else config[key] == k_config[key]
        )
    again = type(ours).from_config(config)
    assert again.get_config() == config
    assert isinstance(tkm.get({"class_name": cls_name, "config": config}), type(ours))


@pytest.mark.parametrize(
    "alias, cls",
    [
        ("auc", "AUC"),
        ("AUC", "AUC"),
        ("precision", "Precision"),
        ("recall", "Recall"),
        ("true_positives", "TruePositives"),
        ("FalseNegatives", "FalseNegatives"),
    ],
)
def test_get_resolves_keras_names(alias, cls):
    assert type(tkm.get(alias)) is getattr(tkm, cls)
    assert type(keras.metrics.get(alias)).__name__ == cls


def _batches(seed=0, n=8, c=2, count=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, 2, (n, c), generator=g), torch.rand(n, c, generator=g)) for _ in range(count)]


# Inductor (slow to compile on a small box) for one metric of each kernel path; the graph capture of the
# rest through the same tracer without code generation.
_INDUCTOR = {2, 4, 7}


@pytest.mark.parametrize("i", range(len(ALL)), ids=[f"{a[0]}-{i}" for i, a in enumerate(ALL)])
def test_compiles_once_and_equals_eager(i):
    cls_name, kwargs = ALL[i]
    eager, compiled = getattr(tkm, cls_name)(**kwargs), getattr(tkm, cls_name)(**kwargs)
    torch._dynamo.reset()

    def step(y, p, w):
        compiled.update_state(y, p, sample_weight=w)

    fn = torch.compile(step, backend="inductor" if i in _INDUCTOR else "aot_eager")
    torch._dynamo.utils.counters.clear()
    for i, (y, p) in enumerate(_batches()):
        w = torch.full((8,), 0.5 + i)
        eager.update_state(y, p, sample_weight=w)
        fn(y, p, w)
        if i == 0:
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs, "recompiled after the first step"
    close(compiled.result(), eager.result(), 1e-12)


def test_in_a_metric_collection():
    import torchmetrics

    coll = torchmetrics.MetricCollection({"auc": tkm.AUC(), "precision": tkm.Precision(), "recall": tkm.Recall()})
    ks = {"auc": keras.metrics.AUC(), "precision": keras.metrics.Precision(), "recall": keras.metrics.Recall()}
    for y, p in _batches(c=1):
        coll.update(y, p)
        for k in ks.values():
            k.update_state(y.numpy(), p.numpy())
    got = coll.compute()
    for name, k in ks.items():
        close(got[name], k.result())


def test_state_sums_over_ranks_as_one_vector():
    a, b, both = tkm.AUC(num_thresholds=20), tkm.AUC(num_thresholds=20), tkm.AUC(num_thresholds=20)
    (y1, p1), (y2, p2) = _batches(count=2, c=1)
    a.update_state(y1, p1)
    b.update_state(y2, p2)
    both.update_state(y1, p1)
    both.update_state(y2, p2)
    a.load_state(a.state() + b.state())
    assert torch.allclose(a.result(), both.result())


def test_one_bucketed_pass_allocates_no_samples_by_thresholds_matrix():
    """1e6 scores at 200 thresholds: no allocation near 1e6 x 200 (200 MB of bools), and Keras' numbers."""
    y, p = torch.randint(0, 2, (1_000_000,)), torch.rand(1_000_000)
    m = tkm.AUC()
    profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
    with tkm.functional.compile_mode(False), profile as prof:  # eager: every allocation is visible
        m.update_state(y, p)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert 0 < largest <= 16 * 1_000_000  # int64 bucket indices at most
    k = keras.metrics.AUC()
    k.update_state(y.numpy(), p.numpy())
    close(m.result(), k.result())
    # one threshold (weighted or not) and a threshold list at a large size (eager: compiling costs time here)
    y, p, w = y[:200_000], p[:200_000], torch.rand(200_000)
    for cls, kw in (("Precision", {}), ("Recall", {"thresholds": [0.3, 0.8]})):
        for sw in (None, w):
            ours, theirs = getattr(tkm, cls)(**kw), getattr(keras.metrics, cls)(**kw)
            with tkm.functional.compile_mode(False):
                ours.update_state(y, p, sample_weight=sw)
            theirs.update_state(y.numpy(), p.numpy(), sample_weight=None if sw is None else sw.numpy())
            close(ours.result(), theirs.result(), 1e-5)  # Keras sums 1e6 weights in float32


def test_trainer_epoch_log_equals_the_metric_over_the_epoch():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = (torch.rand(64, 1) > 0.5).float()
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    trainer = tkm.Trainer(
        model, opt, torch.nn.BCELoss(), metrics=[tkm.AUC(), tkm.Precision(), tkm.Recall(thresholds=0.4)]
    )
    history = trainer.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    with torch.no_grad():
        pred = model(x)
    for name, k in (
        ("auc", keras.metrics.AUC()),
        ("precision", keras.metrics.Precision()),
        ("recall", keras.metrics.Recall(thresholds=0.4)),
    ):
        k.update_state(y.numpy(), pred.numpy())
        assert history.history[name][0] == pytest.approx(float(k.result()), abs=1e-6)
