"""Parity of the stateful metrics and of `get` with real Keras 3 (torch backend).

Each property feeds the same batches (several, the last one ragged) to one of our metrics and to
`keras.metrics.<same class>`, with and without `sample_weight` in every shape Keras accepts, and
compares `result()` after every batch within 1e-6 (we accumulate in float64, Keras in float32).
Calling our metric (`forward`) must return the value of that batch alone, i.e. the result of a fresh
Keras metric fed only that batch. Hypothesis runs derandomized, so CI sees the same examples every run.
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
from keras.src.trainers.compile_utils import get_metric  # noqa: E402

assert keras.backend.backend() == "torch"

PARITY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOL = 1e-6
QUANTA = (0.0, 0.25, 0.5, 0.75, 1.0)
WEIGHTS = (0.0, 0.5, 1.0, 2.0)


# --------------------------------------------------------------------------- helpers


def value(x) -> float:
    out = to_numpy(x)
    assert out.shape == (), out.shape
    return float(out)


def as_input(arr: np.ndarray, container: str, dtype: str | None = None):
    """A fresh torch tensor, numpy array or (nested) list holding `arr`, optionally cast to `dtype`."""
    arr = np.array(arr)
    if dtype == "bfloat16":
        assert container == "torch"
        return torch.from_numpy(arr.astype(np.float32)).to(torch.bfloat16)
    if dtype is not None:
        arr = arr.astype(dtype)
    if container == "torch":
        return torch.from_numpy(arr)
    return arr if container == "numpy" else arr.tolist()


@st.composite
def batch_sizes(draw):
    """Full batches of one size, then a ragged (smaller) last batch."""
    full = draw(st.integers(2, 6))
    return [full] * draw(st.integers(1, 3)) + [draw(st.integers(1, full - 1))]


def floats(draw, shape, quantised=None):
    n = int(np.prod(shape))
    if quantised is None:
        quantised = draw(st.booleans())
    elem = st.sampled_from(QUANTA) if quantised else st.floats(0, 1, width=32)
    return np.asarray(draw(st.lists(elem, min_size=n, max_size=n)), dtype=np.float32).reshape(shape)


def ints(draw, shape, high):
    n = int(np.prod(shape))
    return np.asarray(draw(st.lists(st.integers(0, high), min_size=n, max_size=n)), dtype=np.int64).reshape(shape)


WEIGHT_KINDS_PER_SAMPLE = (None, "n", "n1", "scalar", "one")
WEIGHT_KINDS_PER_STEP = WEIGHT_KINDS_PER_SAMPLE + ("nt", "nt1")


def weight(draw, kind, n, t):
    shape = {"n": (n,), "n1": (n, 1), "scalar": (), "one": (1,), "nt": (n, t), "nt1": (n, t, 1)}[kind]
    n_el = int(np.prod(shape))
    vals = draw(st.lists(st.sampled_from(WEIGHTS), min_size=n_el, max_size=n_el))
    return np.asarray(vals, dtype=np.float32).reshape(shape)


# Each maker draws (constructor kwargs, per-batch function) for one class; the function draws one
# batch (y_true, y_pred) of n samples with `t` steps per sample when `seq` is true.


def make_accuracy(draw, seq):
    def batch(draw, n, t):
        shape = draw(st.sampled_from([(n, t)] if seq else [(n,), (n, 1)]))
        y_pred = floats(draw, shape, quantised=True)
        y_true = floats(draw, shape, quantised=True)
        if draw(st.booleans()) and shape[-1] == 1:
            y_true = y_true[..., 0]
        return y_true, y_pred

    return {}, batch


def make_binary(draw, seq):
    threshold = draw(st.sampled_from([0.5, 0.25, 0.7, 0.0]))

    def batch(draw, n, t):
        shape = draw(st.sampled_from([(n, t), (n, t, 1)] if seq else [(n,), (n, 1)]))
        y_pred = floats(draw, shape)
        y_true = ints(draw, shape, 1).astype(draw(st.sampled_from(["int64", "float32", "bool"])))
        if draw(st.booleans()) and shape[-1] == 1 and len(shape) > 1:
            y_true = y_true[..., 0]
        return y_true, y_pred

    return {"threshold": threshold}, batch


def make_categorical(draw, seq, top_k=False):
    num_classes = draw(st.integers(2, 5))
    kwargs = {"k": draw(st.integers(1, num_classes))} if top_k else {}

    def batch(draw, n, t):
        lead = (n, t) if seq else (n,)
        y_pred = floats(draw, (*lead, num_classes))
        y_true = np.eye(num_classes, dtype=np.float32)[ints(draw, lead, num_classes - 1)]
        return y_true, y_pred

    return kwargs, batch


def make_sparse(draw, seq, top_k=False):
    num_classes = draw(st.integers(2, 5))
    kwargs = {}
    from_sorted_ids = False
    if top_k:
        from_sorted_ids = draw(st.booleans())
        kwargs = {"k": draw(st.integers(1, num_classes))}
        if from_sorted_ids:
            kwargs["from_sorted_ids"] = True

    def batch(draw, n, t):
        lead = (n, t) if seq else (n,)
        if from_sorted_ids:
            rows = [draw(st.permutations(range(num_classes))) for _ in range(int(np.prod(lead)))]
            y_pred = np.asarray(rows, dtype=np.int64).reshape(*lead, num_classes)
        else:
            y_pred = floats(draw, (*lead, num_classes))
        y_true = ints(draw, lead, num_classes - 1)
        if draw(st.booleans()):
            y_true = y_true[..., None]
        return y_true, y_pred

    return kwargs, batch


MAKERS = {
    "Accuracy": make_accuracy,
    "BinaryAccuracy": make_binary,
    "CategoricalAccuracy": make_categorical,
    "SparseCategoricalAccuracy": make_sparse,
    "TopKCategoricalAccuracy": lambda draw, seq: make_categorical(draw, seq, top_k=True),
    "SparseTopKCategoricalAccuracy": lambda draw, seq: make_sparse(draw, seq, top_k=True),
}


def run_both(ours, theirs, batches, fresh_keras, call):
    """Feed the batches to both metrics; check forward (batch value) and result (running value) each time."""
    assert value(ours.result()) == 0.0
    assert value(theirs.result()) == 0.0
    for args, kwargs in batches:
        alone = fresh_keras()
        alone.update_state(*args, **kwargs)
        theirs.update_state(*args, **kwargs)
        got_batch = call(ours, args, kwargs)
        assert isinstance(got_batch, torch.Tensor)
        assert got_batch.dtype == torch.float32
        assert value(got_batch) == pytest.approx(value(alone.result()), abs=TOL), "forward = this batch alone"
        assert value(ours.result()) == pytest.approx(value(theirs.result()), abs=TOL), "result = running value"
    # update_state / result after a reset give the same running value
    ours.reset_state()
    theirs.reset_state()
    for args, kwargs in batches:
        ours.update_state(*args, **kwargs)
        theirs.update_state(*args, **kwargs)
    assert value(ours.result()) == pytest.approx(value(theirs.result()), abs=TOL)
    return value(ours.result())


def forward(metric, args, kwargs):
    return metric(*args, **kwargs)


# --------------------------------------------------------------------------- 4. stateful classes


@pytest.mark.parametrize("cls_name", list(MAKERS))
@settings(PARITY, max_examples=80)
@given(data=st.data())
def test_accuracy_class_matches_keras(cls_name, data):
    seq = data.draw(st.booleans(), label="sequence batch (N, T, ...)")
    t = data.draw(st.integers(2, 3)) if seq else 1
    kinds = WEIGHT_KINDS_PER_STEP if seq else WEIGHT_KINDS_PER_SAMPLE
    weight_kind = data.draw(st.sampled_from(kinds), label="sample_weight shape")
    container = data.draw(st.sampled_from(["torch", "numpy", "list"]))
    dtypes = ["float32", "float64", "float16"] + (["bfloat16"] if container == "torch" else [])
    score_dtype = data.draw(st.sampled_from(dtypes), label="score dtype") if container != "list" else None
    kwargs, make_batch = MAKERS[cls_name](data.draw, seq)
    batches = []
    for n in data.draw(batch_sizes()):
        y_true, y_pred = make_batch(data.draw, n, t)
        y_pred = as_input(y_pred, container, score_dtype if y_pred.dtype.kind == "f" else None)
        kw = {} if weight_kind is None else {"sample_weight": as_input(weight(data.draw, weight_kind, n, t), container)}
        batches.append(((as_input(y_true, container), y_pred), kw))
    ours = getattr(tkm, cls_name)(**kwargs)
    theirs = getattr(keras.metrics, cls_name)(**kwargs)
    run_both(ours, theirs, batches, lambda: getattr(keras.metrics, cls_name)(**kwargs), forward)


@pytest.mark.parametrize("cls_name", list(MAKERS))
def test_default_names_match_keras(cls_name):
    assert getattr(tkm, cls_name)().name == getattr(keras.metrics, cls_name)().name
    assert getattr(tkm, cls_name)(name="custom").name == "custom"


def value_layout(draw):
    """Per-sample (N,) or per-step (N, T) values for Mean-like metrics: (seq, T, weight kind, container)."""
    seq = draw(st.booleans())
    t = draw(st.integers(2, 3)) if seq else 1
    weight_kind = draw(st.sampled_from(WEIGHT_KINDS_PER_STEP if seq else WEIGHT_KINDS_PER_SAMPLE))
    return seq, t, weight_kind, draw(st.sampled_from(["torch", "numpy"]))


@settings(PARITY, max_examples=60)
@given(data=st.data())
def test_mean_matches_keras(data):
    seq, t, weight_kind, container = value_layout(data.draw)
    batches = []
    for n in data.draw(batch_sizes()):
        values = floats(data.draw, (n, t) if seq else (n,)) * 10 - 3
        kw = {} if weight_kind is None else {"sample_weight": as_input(weight(data.draw, weight_kind, n, t), container)}
        batches.append(((as_input(values, container),), kw))
    run_both(tkm.Mean(), keras.metrics.Mean(), batches, keras.metrics.Mean, forward)


def abs_error(y_true, y_pred):
    """A per-element custom metric, written with keras.ops so both libraries can call it."""
    return keras.ops.abs(keras.ops.convert_to_tensor(y_true, "float32") - keras.ops.convert_to_tensor(y_pred))


def mean_pred(y_true, y_pred):
    """The classic custom metric that already averaged its batch: one scalar per update."""
    return keras.ops.mean(keras.ops.convert_to_tensor(y_pred))


@settings(PARITY, max_examples=60)
@given(data=st.data())
def test_mean_metric_wrapper_per_element_fn_matches_keras(data):
    seq, t, weight_kind, container = value_layout(data.draw)
    batches = []
    for n in data.draw(batch_sizes()):
        shape = (n, t) if seq else (n,)
        args = (as_input(ints(data.draw, shape, 1), container), as_input(floats(data.draw, shape), container))
        kw = {} if weight_kind is None else {"sample_weight": as_input(weight(data.draw, weight_kind, n, t), container)}
        batches.append((args, kw))
    run_both(
        tkm.MeanMetricWrapper(abs_error),
        keras.metrics.MeanMetricWrapper(abs_error),
        batches,
        lambda: keras.metrics.MeanMetricWrapper(abs_error),
        forward,
    )


@settings(PARITY, max_examples=20)
@given(data=st.data())
def test_scalar_fn_counts_one_sample_per_update_like_keras(data):
    scalar_weight = data.draw(st.booleans())
    container = data.draw(st.sampled_from(["torch", "numpy"]))
    sizes = data.draw(batch_sizes())
    batches = []
    for n in sizes:
        y_pred = floats(data.draw, (n,))
        kw = {"sample_weight": np.float32(data.draw(st.sampled_from(WEIGHTS[1:])))} if scalar_weight else {}
        batches.append(((as_input(np.zeros(n), container), as_input(y_pred, container)), kw))
    got = run_both(
        tkm.MeanMetricWrapper(mean_pred, name="mean_pred"),
        keras.metrics.MeanMetricWrapper(mean_pred, name="mean_pred"),
        batches,
        lambda: keras.metrics.MeanMetricWrapper(mean_pred),
        forward,
    )
    if not scalar_weight:
        batch_means = [float(np.mean(np.asarray(args[1]))) for args, _ in batches]
        assert got == pytest.approx(np.mean(batch_means), abs=TOL)  # plain mean of batch means


def test_scalar_fn_ragged_last_batch_is_not_weighted_by_size():
    """Keras 3: batch means [1.0 (4 samples), 0.0 (1 sample)] give 0.5, not 0.8 (Keras 2 BaseLogger)."""
    ours = tkm.MeanMetricWrapper(mean_pred)
    theirs = keras.metrics.MeanMetricWrapper(mean_pred)
    for y_pred in (np.ones(4, np.float32), np.zeros(1, np.float32)):
        ours.update_state(np.zeros_like(y_pred), y_pred)
        theirs.update_state(np.zeros_like(y_pred), y_pred)
    assert value(theirs.result()) == pytest.approx(0.5)
    assert value(ours.result()) == pytest.approx(0.5)


@pytest.mark.parametrize("cls_name", ["SparseCategoricalAccuracy", "BinaryAccuracy", "Mean"])
def test_zero_weights_mask_samples_and_all_zero_gives_zero(cls_name):
    if cls_name == "SparseCategoricalAccuracy":
        args = (np.array([0, 1, 2, 0]), np.eye(3, dtype=np.float32)[[0, 0, 2, 1]])  # right, wrong, right, wrong
    elif cls_name == "BinaryAccuracy":
        args = (np.array([1, 1, 0, 0]), np.array([0.9, 0.1, 0.2, 0.8], np.float32))
    else:
        args = (np.array([1.0, 0.0, 1.0, 0.0], np.float32),)
    ours, theirs = getattr(tkm, cls_name)(), getattr(keras.metrics, cls_name)()
    masked = np.array([1.0, 0.0, 3.0, 0.0], np.float32)
    ours.update_state(*args, sample_weight=masked)
    theirs.update_state(*args, sample_weight=masked)
    assert value(theirs.result()) == pytest.approx(1.0)
    assert value(ours.result()) == pytest.approx(1.0)
    ours.reset_state()
    theirs.reset_state()
    assert value(ours(*args, sample_weight=np.zeros(4, np.float32))) == 0.0
    theirs.update_state(*args, sample_weight=np.zeros(4, np.float32))
    assert value(theirs.result()) == 0.0
    assert value(ours.result()) == 0.0


_P = np.array([[0.1, 0.6, 0.3], [0.2, 0.7, 0.1]], np.float32)
_EMPTY = (np.zeros(0, np.int64), np.zeros((0, 3), np.float32))
EDGE_CASES = [
    ("empty batch only", "SparseCategoricalAccuracy", {}, [(_EMPTY, {})]),
    ("empty batch after one", "SparseCategoricalAccuracy", {}, [((np.array([1, 0]), _P), {}), (_EMPTY, {})]),
    ("int weights", "SparseCategoricalAccuracy", {}, [((np.array([1, 0]), _P), {"sample_weight": np.array([2, 1])})]),
    (
        "bool weights",
        "SparseCategoricalAccuracy",
        {},
        [((np.array([1, 0]), _P), {"sample_weight": np.array([1, 0], bool)})],
    ),
    (
        "negative weight",
        "SparseCategoricalAccuracy",
        {},
        [((np.array([1, 0]), _P), {"sample_weight": np.array([-1.0, 3.0])})],
    ),
    ("python scalar weight", "SparseCategoricalAccuracy", {}, [((np.array([1, 0]), _P), {"sample_weight": 2})]),
    ("list weight", "SparseCategoricalAccuracy", {}, [((np.array([1, 0]), _P), {"sample_weight": [2.0, 0.0]})]),
    (
        "float labels, float16 scores",
        "SparseCategoricalAccuracy",
        {},
        [((np.array([1.0, 0.0]), _P.astype(np.float16)), {})],
    ),
    (
        "(1, T) weights",
        "BinaryAccuracy",
        {},
        [((np.array([[1, 0, 1]]), np.array([[0.7, 0.2, 0.4]])), {"sample_weight": np.array([[1.0, 0.0, 2.0]])})],
    ),
    (
        "(1, T, 1) weights",
        "BinaryAccuracy",
        {},
        [((np.array([[1, 0, 1]]), np.array([[0.7, 0.2, 0.4]])), {"sample_weight": np.array([[[1.0], [0.0], [2.0]]])})],
    ),
    (
        "(N, 1) weights",
        "CategoricalAccuracy",
        {},
        [((np.eye(3)[[1, 0]], _P), {"sample_weight": np.array([[1.0], [2.0]])})],
    ),
    ("int values", "Accuracy", {}, [((np.array([1, 2, 3]), np.array([1, 2, 4])), {})]),
    ("(1, 3) vs (3,)", "Accuracy", {}, [((np.array([[1, 2, 3]]), np.array([1, 2, 3])), {})]),
    ("scalar value then a batch", "Mean", {}, [((np.array(3.0),), {}), ((np.array([1.0, 2.0]),), {})]),
    ("python scalars", "Mean", {}, [((5.0,), {"sample_weight": 2.0}), ((np.array([1.0, 2.0]),), {})]),
    (
        "(N, T) weights",
        "Mean",
        {},
        [((np.array([[1.0, 2.0], [3.0, 5.0]]),), {"sample_weight": np.array([[1.0, 0.0], [0.0, 0.0]])})],
    ),
    (
        "all-zero (N, T) weights",
        "Mean",
        {},
        [((np.array([[1.0, 2.0], [3.0, 5.0]]),), {"sample_weight": np.zeros((2, 2))})],
    ),
    (
        "NaN with weight 0 stays NaN",
        "Mean",
        {},
        [((np.array([np.nan, 1.0]),), {"sample_weight": np.array([0.0, 1.0])})],
    ),
    (
        "rank-3 values, (N, T) weights",
        "Mean",
        {},
        [((np.array([[[1.0, 2.0], [3.0, 5.0]]]),), {"sample_weight": np.array([[1.0, 0.0]])})],
    ),
    (
        "rank-3 values, (1,) weights",
        "Mean",
        {},
        [((np.array([[[1.0, 2.0], [3.0, 5.0]]]),), {"sample_weight": np.array([2.0])})],
    ),
    (
        "sorted ids, (N, 1) weights",
        "SparseTopKCategoricalAccuracy",
        {"k": 1, "from_sorted_ids": True},
        [((np.array([[2], [1]]), np.array([[1, 0, 2], [1, 2, 0]])), {"sample_weight": np.array([[1.0], [3.0]])})],
    ),
]


@pytest.mark.parametrize("case, cls_name, kwargs, calls", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_edge_cases_match_keras(case, cls_name, kwargs, calls):
    ours, theirs = getattr(tkm, cls_name)(**kwargs), getattr(keras.metrics, cls_name)(**kwargs)
    for args, kw in calls:
        ours.update_state(*args, **kw)
        theirs.update_state(*args, **kw)
    want, got = value(theirs.result()), value(ours.result())
    if np.isnan(want):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(want, abs=TOL)


def test_sequence_of_one_step_with_per_step_weights_matches_keras():
    # T = 1: labels (N, T, 1), scores (N, T, C), weights (N, T, 1) -- the per-step weight shape that works for T > 1.
    y_true = np.array([[[0]], [[0]], [[1]]])
    y_pred = np.tile(np.array([0.7, 0.2, 0.1], np.float32), (3, 1, 1))
    sample_weight = np.array([1.0, 2.0, 0.0], np.float32).reshape(3, 1, 1)
    theirs = keras.metrics.SparseCategoricalAccuracy()
    theirs.update_state(y_true, y_pred, sample_weight=sample_weight)
    assert value(theirs.result()) == pytest.approx(1.0)
    ours = tkm.SparseCategoricalAccuracy()
    ours.update_state(y_true, y_pred, sample_weight=sample_weight)
    assert value(ours.result()) == pytest.approx(1.0)


def test_forward_returns_batch_value_while_result_is_running():
    ours = tkm.SparseCategoricalAccuracy()
    theirs = keras.metrics.SparseCategoricalAccuracy()
    y_pred = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    b1, b2 = (np.array([0, 1, 0]), y_pred), (np.array([1, 0, 0]), y_pred)  # 3/3 right, then 1/3 right
    assert value(ours(*b1)) == pytest.approx(1.0)
    assert value(theirs(*b1)) == pytest.approx(1.0)
    assert value(ours(*b2)) == pytest.approx(1 / 3)  # this batch alone
    assert value(theirs(*b2)) == pytest.approx(4 / 6)  # Keras' __call__ returns the running value
    assert value(ours.result()) == pytest.approx(value(theirs.result()))


# --------------------------------------------------------------------------- 5. get()


ACC_SHAPES = [
    ("binary, (N,) labels", (6,), (6, 1), "BinaryAccuracy"),
    ("binary, (N, 1) labels", (6, 1), (6, 1), "BinaryAccuracy"),
    ("sparse, (N,) labels", (6,), (6, 4), "SparseCategoricalAccuracy"),
    ("sparse, (N, 1) labels", (6, 1), (6, 4), "SparseCategoricalAccuracy"),
    ("sparse, sequence", (6, 3), (6, 3, 4), "SparseCategoricalAccuracy"),
    ("categorical", (6, 4), (6, 4), "CategoricalAccuracy"),
    ("categorical, sequence", (6, 3, 4), (6, 3, 4), "CategoricalAccuracy"),
]


@pytest.mark.parametrize("name", ["accuracy", "acc", "Accuracy", "ACC"])
@pytest.mark.parametrize("case, true_shape, pred_shape, expected", ACC_SHAPES, ids=[c[0] for c in ACC_SHAPES])
def test_get_accuracy_resolves_like_keras(name, case, true_shape, pred_shape, expected):
    y_true, y_pred = np.zeros(true_shape, np.float32), np.zeros(pred_shape, np.float32)
    theirs = get_metric(name, y_true, y_pred)
    ours = tkm.get(name, y_true, y_pred)
    assert type(theirs).__name__ == expected
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.name == theirs.name == name
    assert isinstance(ours, getattr(tkm, expected))


@settings(PARITY, max_examples=15)
@given(data=st.data())
@pytest.mark.parametrize("name", ["accuracy", "acc"])
def test_get_accuracy_values_match_keras(name, data):
    kind = data.draw(st.sampled_from(["binary", "sparse", "sparse1", "categorical"]))
    num_classes = data.draw(st.integers(2, 5))
    batches = []
    for n in data.draw(batch_sizes()):
        if kind == "binary":
            y_true, y_pred = ints(data.draw, (n,), 1), floats(data.draw, (n, 1))
        else:
            labels = ints(data.draw, (n,), num_classes - 1)
            y_pred = floats(data.draw, (n, num_classes))
            y_true = {"sparse": labels, "sparse1": labels[:, None]}.get(kind)
            if y_true is None:
                y_true = np.eye(num_classes, dtype=np.float32)[labels]
        batches.append((y_true, y_pred))
    ours = tkm.get(name, *batches[0])
    theirs = get_metric(name, *batches[0])
    for y_true, y_pred in batches:
        ours.update_state(y_true, y_pred)
        theirs.update_state(y_true, y_pred)
        assert value(ours.result()) == pytest.approx(value(theirs.result()), abs=TOL)


LOSS_CASES = [
    ("mae", (5, 3), (5, 3)),
    ("mae", (5,), (5, 1)),
    ("MAE", (5, 3), (5, 3)),
    ("mean_absolute_error", (5, 2, 3), (5, 2, 3)),
    ("mse", (5, 3), (5, 3)),
    ("mse", (5, 1), (5,)),
    ("mean_squared_error", (5, 3), (5, 3)),
    ("binary_crossentropy", (5, 3), (5, 3)),
    ("binary_crossentropy", (5, 1), (5, 1)),
    ("bce", (5, 3), (5, 3)),
    ("categorical_crossentropy", (5, 4), (5, 4)),
    ("categorical_crossentropy", (5, 2, 4), (5, 2, 4)),
    ("sparse_categorical_crossentropy", (5,), (5, 4)),
    ("sparse_categorical_crossentropy", (5, 1), (5, 4)),
    ("sparse_categorical_crossentropy", (5, 2), (5, 2, 4)),
]


def loss_batch(rng, name, true_shape, pred_shape, n):
    true_shape, pred_shape = (n, *true_shape[1:]), (n, *pred_shape[1:])
    y_pred = rng.uniform(0.02, 0.98, size=pred_shape).astype(np.float32)  # probabilities in (0, 1)
    if name.startswith("sparse"):
        y_true = rng.integers(0, pred_shape[-1], size=true_shape)
    elif name.startswith("categorical"):
        y_true = np.eye(pred_shape[-1], dtype=np.float32)[rng.integers(0, pred_shape[-1], size=true_shape[:-1])]
        y_pred = y_pred / y_pred.sum(-1, keepdims=True)
    elif name in ("binary_crossentropy", "bce"):
        y_true = rng.integers(0, 2, size=true_shape).astype(np.float32)
    else:
        y_true = rng.normal(size=true_shape).astype(np.float32)
    return y_true, y_pred


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name, true_shape, pred_shape", LOSS_CASES)
def test_get_loss_metrics_match_keras(name, true_shape, pred_shape, weighted):
    rng = np.random.default_rng(abs(hash((name, true_shape, pred_shape))) % 2**32)
    batches = [loss_batch(rng, name, true_shape, pred_shape, n) for n in (5, 5, 3)]
    ours = tkm.get(name, *batches[0])
    theirs = get_metric(name, *batches[0])
    assert ours.name == theirs.name == name
    for y_true, y_pred in batches:
        kw = {"sample_weight": rng.choice(WEIGHTS, size=len(y_true)).astype(np.float32)} if weighted else {}
        got_batch = ours(torch.from_numpy(y_true), torch.from_numpy(y_pred), **kw)
        alone = get_metric(name, y_true, y_pred)
        alone.update_state(y_true, y_pred, **kw)
        theirs.update_state(y_true, y_pred, **kw)
        assert value(got_batch) == pytest.approx(value(alone.result()), abs=1e-5, rel=1e-5)
        assert value(ours.result()) == pytest.approx(value(theirs.result()), abs=1e-5, rel=1e-5)


@pytest.mark.parametrize(
    "name, cls_name",
    [
        ("binary_accuracy", "BinaryAccuracy"),
        ("categorical_accuracy", "CategoricalAccuracy"),
        ("sparse_categorical_accuracy", "SparseCategoricalAccuracy"),
        ("top_k_categorical_accuracy", "TopKCategoricalAccuracy"),
        ("sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy"),
    ],
)
def test_get_full_accuracy_names_like_keras(name, cls_name):
    """Full names map to their class with default arguments, named as typed."""
    y_true, y_pred = np.zeros((4, 6), np.float32), np.zeros((4, 6), np.float32)
    theirs = get_metric(name, y_true, y_pred)
    ours = tkm.get(name, y_true, y_pred)
    assert type(ours).__name__ == cls_name
    assert ours.name == theirs.name == name
    if "top_k" in name:
        assert ours.k == theirs.k == 5
