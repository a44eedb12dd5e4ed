"""Parity of the six per-element accuracy functions with real Keras 3 (torch backend).

Every property draws inputs with hypothesis (derandomized, so CI sees the same examples each run),
feeds the same values to `torch_keras_metrics.functional.<name>` and to
`keras.src.metrics.accuracy_metrics.<name>`, and asserts the two results have the same shape and
exactly the same float32 values. Where docs/semantics.md §17 names a deliberate departure from Keras
(out-of-range sparse labels, k > C, label comparison in integers) the test asserts our rule instead.
Cases once found to differ from Keras (and since fixed) are pinned as regular tests at the end.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import to_numpy  # also sets KERAS_BACKEND=torch before keras is imported
from torch_keras_metrics import functional as F

keras = pytest.importorskip("keras")
from keras.src.metrics import accuracy_metrics as KA  # noqa: E402

assert keras.backend.backend() == "torch"

PARITY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

QUANTA = (0.0, 0.25, 0.5, 0.75, 1.0)
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
CONTAINERS = ("torch", "numpy", "list")
NAMES = (
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
)


# --------------------------------------------------------------------------- helpers


def convert(arr: np.ndarray, dtype: str, container: str):
    """`arr` as a torch tensor, numpy array or nested list of `dtype` (bfloat16: torch only)."""
    if dtype == "bfloat16":
        return torch.from_numpy(np.asarray(arr, dtype=np.float32)).to(torch.bfloat16)
    a = np.asarray(arr).astype(dtype)
    if container == "torch":
        return torch.from_numpy(a.copy())
    if container == "numpy":
        return a.copy()
    return a.tolist()


def ours(name: str, *args, **kwargs) -> np.ndarray:
    out = getattr(F, name)(*args, **kwargs)
    assert isinstance(out, torch.Tensor), type(out)
    assert out.dtype == torch.float32, out.dtype
    return out.numpy()


def theirs(name: str, *args, **kwargs) -> np.ndarray:
    return to_numpy(getattr(KA, name)(*args, **kwargs))


def assert_parity(name: str, y_true, y_pred, keras_true=None, keras_pred=None, **kwargs) -> np.ndarray:
    """Call both libraries (Keras gets its own copies) and compare shape, dtype and values exactly."""
    got = ours(name, y_true, y_pred, **kwargs)
    want = theirs(
        name, y_true if keras_true is None else keras_true, y_pred if keras_pred is None else keras_pred, **kwargs
    )
    assert want.dtype == np.float32
    assert got.shape == want.shape, (name, kwargs, got.shape, want.shape)
    assert np.array_equal(got, want), (name, kwargs, got, want)
    return got


def pair(true_arr, pred_arr, true_dtype, pred_dtype, container):
    """Two independent copies of (y_true, y_pred): one for us, one for Keras."""
    if "bfloat16" in (true_dtype, pred_dtype):
        container = "torch"
    return (
        convert(true_arr, true_dtype, container),
        convert(pred_arr, pred_dtype, container),
        convert(true_arr, true_dtype, container),
        convert(pred_arr, pred_dtype, container),
    )


@st.composite
def scores(draw, shape, dtypes=FLOAT_DTYPES, allow_int=True):
    """(array, dtype): random floats in [0, 1] or quantised values (ties), in a float or int dtype."""
    n = int(np.prod(shape))
    quantised = draw(st.booleans())
    if quantised:
        vals = draw(st.lists(st.sampled_from(QUANTA), min_size=n, max_size=n))
    else:
        vals = draw(st.lists(st.floats(0, 1, width=32), min_size=n, max_size=n))
    arr = np.asarray(vals, dtype=np.float64).reshape(shape)
    choices = list(dtypes) + (["int64"] if quantised and allow_int else [])
    dtype = draw(st.sampled_from(choices))
    if dtype == "int64":
        arr = arr * 4  # exact quantised scores 0..4 as integers
    return arr, dtype


LABEL_DTYPES = ("int64", "int32", "float32", "float64", "bool")


@st.composite
def lead_shape(draw, with_time=True):
    n = draw(st.integers(1, 6))
    if with_time and draw(st.booleans()):
        return (n, draw(st.integers(1, 3)))
    return (n,)


# --------------------------------------------------------------------------- 1. parity properties


@settings(PARITY, max_examples=120)
@given(data=st.data())
def test_accuracy_matches_keras(data):
    lead = data.draw(lead_shape())
    last = data.draw(st.sampled_from([None, 1, 3]))
    pred_shape = lead if last is None else (*lead, last)
    y_pred, pred_dtype = data.draw(scores(pred_shape))
    # labels from the same grid as quantised scores (so many are equal), a trailing size-1 axis added or dropped.
    if pred_dtype == "int64":
        truth = data.draw(st.lists(st.integers(0, 4), min_size=y_pred.size, max_size=y_pred.size))
    else:
        truth = data.draw(st.lists(st.sampled_from(QUANTA), min_size=y_pred.size, max_size=y_pred.size))
    truth = np.asarray(truth, dtype=np.float64).reshape(pred_shape)
    true_dtype = data.draw(st.sampled_from(["int64", "float32", "float64", "bool"]))
    if true_dtype in ("int64", "bool"):
        truth = (truth > 0.5).astype(np.int64) if true_dtype == "bool" else np.round(truth).astype(np.int64)
    if pred_shape[-1] == 1 and len(pred_shape) > 1 and data.draw(st.booleans()):
        truth = truth[..., 0]
    elif data.draw(st.booleans()):
        truth = truth[..., None]
    container = data.draw(st.sampled_from(CONTAINERS))
    t, p, kt, kp = pair(truth, y_pred, true_dtype, pred_dtype, container)
    assert_parity("accuracy", t, p, kt, kp)


@settings(PARITY, max_examples=120)
@given(data=st.data())
def test_binary_accuracy_matches_keras(data):
    lead = data.draw(lead_shape())
    trailing_one = data.draw(st.booleans())
    pred_shape = (*lead, 1) if trailing_one else lead
    y_pred, pred_dtype = data.draw(scores(pred_shape, allow_int=False))
    true_dtype = data.draw(st.sampled_from(LABEL_DTYPES))
    truth = np.asarray(data.draw(st.lists(st.integers(0, 1), min_size=y_pred.size, max_size=y_pred.size)))
    truth = truth.reshape(pred_shape)
    mode = data.draw(st.sampled_from(["same", "squeeze", "expand"]))
    if mode == "squeeze" and trailing_one and len(pred_shape) > 1:
        truth = truth[..., 0]
    elif mode == "expand":
        truth = truth[..., None]
    # Thresholds on the quantisation grid make scores exactly equal to the threshold (predict 0).
    # They are exact in every float dtype, so Keras' float32 threshold tensor and our Python float agree.
    threshold = data.draw(st.sampled_from([0.5, 0.0, 0.25, 0.75, 1.0]))
    container = data.draw(st.sampled_from(CONTAINERS))
    t, p, kt, kp = pair(truth, y_pred, true_dtype, pred_dtype, container)
    assert_parity("binary_accuracy", t, p, kt, kp, threshold=threshold)


@settings(PARITY, max_examples=80)
@given(data=st.data())
def test_binary_accuracy_random_threshold_matches_keras(data):
    """Any float threshold, one score exactly on it (float64 scores: see the pinned case at the end)."""
    n = data.draw(st.integers(1, 8))
    threshold = data.draw(st.floats(-0.5, 1.5, width=32))
    y_pred, pred_dtype = data.draw(scores((n,), dtypes=("float32", "float16", "bfloat16"), allow_int=False))
    # put one score exactly on the threshold (as stored in the score dtype)
    y_pred[0] = threshold
    truth = np.asarray(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    t, p, kt, kp = pair(truth, y_pred, "float32", pred_dtype, data.draw(st.sampled_from(CONTAINERS)))
    assert_parity("binary_accuracy", t, p, kt, kp, threshold=float(threshold))


def one_hot_or_soft(draw, lead, num_classes, dtype):
    """Labels with one column per class: one-hot, multi-hot (ties) or soft quantised rows."""
    kind = draw(st.sampled_from(["one_hot", "multi_hot", "soft"]))
    size = int(np.prod(lead))
    if kind == "one_hot":
        idx = np.asarray(draw(st.lists(st.integers(0, num_classes - 1), min_size=size, max_size=size)))
        arr = np.eye(num_classes)[idx].reshape(*lead, num_classes)
    elif kind == "multi_hot":
        arr = np.asarray(draw(st.lists(st.integers(0, 1), min_size=size * num_classes, max_size=size * num_classes)))
        arr = arr.reshape(*lead, num_classes).astype(np.float64)
    else:
        arr = np.asarray(
            draw(st.lists(st.sampled_from(QUANTA), min_size=size * num_classes, max_size=size * num_classes))
        ).reshape(*lead, num_classes)
        if dtype in ("int64", "bool"):
            arr = arr > 0.5
    return arr


@settings(PARITY, max_examples=120)
@given(data=st.data())
def test_categorical_accuracy_matches_keras(data):
    lead = data.draw(lead_shape())
    num_classes = data.draw(st.integers(1, 6))
    y_pred, pred_dtype = data.draw(scores((*lead, num_classes)))
    true_dtype = data.draw(st.sampled_from(["int64", "float32", "float64", "bool"]))
    truth = one_hot_or_soft(data.draw, lead, num_classes, true_dtype)
    t, p, kt, kp = pair(truth, y_pred, true_dtype, pred_dtype, data.draw(st.sampled_from(CONTAINERS)))
    assert_parity("categorical_accuracy", t, p, kt, kp)


def sparse_labels(draw, lead, num_classes, dtype):
    """In-range integer labels of shape lead or (*lead, 1)."""
    size = int(np.prod(lead))
    top = 1 if dtype == "bool" else num_classes - 1
    arr = np.asarray(draw(st.lists(st.integers(0, min(top, num_classes - 1)), min_size=size, max_size=size)))
    arr = arr.reshape(lead)
    if draw(st.booleans()):
        arr = arr[..., None]
    return arr


@settings(PARITY, max_examples=120)
@given(data=st.data())
def test_sparse_categorical_accuracy_matches_keras(data):
    lead = data.draw(lead_shape())
    num_classes = data.draw(st.integers(1, 6))
    y_pred, pred_dtype = data.draw(scores((*lead, num_classes)))
    true_dtype = data.draw(st.sampled_from(LABEL_DTYPES))
    truth = sparse_labels(data.draw, lead, num_classes, true_dtype)
    t, p, kt, kp = pair(truth, y_pred, true_dtype, pred_dtype, data.draw(st.sampled_from(CONTAINERS)))
    assert_parity("sparse_categorical_accuracy", t, p, kt, kp)


@settings(PARITY, max_examples=120)
@given(data=st.data())
def test_top_k_categorical_accuracy_matches_keras(data):
    lead = data.draw(lead_shape())
    num_classes = data.draw(st.integers(1, 6))
    k = data.draw(st.integers(1, num_classes))
    y_pred, pred_dtype = data.draw(scores((*lead, num_classes)))
    true_dtype = data.draw(st.sampled_from(["int64", "float32", "float64", "bool"]))
    truth = one_hot_or_soft(data.draw, lead, num_classes, true_dtype)
    t, p, kt, kp = pair(truth, y_pred, true_dtype, pred_dtype, data.draw(st.sampled_from(CONTAINERS)))
    assert_parity("top_k_categorical_accuracy", t, p, kt, kp, k=k)


@settings(PARITY, max_examples=120)
@given(data=st.data())
def test_sparse_top_k_categorical_accuracy_matches_keras(data):
    lead = data.draw(lead_shape())
    num_classes = data.draw(st.integers(1, 6))
    k = data.draw(st.integers(1, num_classes))
    y_pred, pred_dtype = data.draw(scores((*lead, num_classes)))
    true_dtype = data.draw(st.sampled_from(LABEL_DTYPES))
    truth = sparse_labels(data.draw, lead, num_classes, true_dtype)
    t, p, kt, kp = pair(truth, y_pred, true_dtype, pred_dtype, data.draw(st.sampled_from(CONTAINERS)))
    assert_parity("sparse_top_k_categorical_accuracy", t, p, kt, kp, k=k)


@settings(PARITY, max_examples=80)
@given(data=st.data())
def test_sparse_top_k_from_sorted_ids_matches_keras(data):
    lead = data.draw(lead_shape())
    num_classes = data.draw(st.integers(1, 8))
    width = data.draw(st.integers(1, num_classes))  # y_pred may hold only the best `width` ids
    k = data.draw(st.integers(1, width + 2))  # slicing past the end is fine in Keras too
    size = int(np.prod(lead))
    perms = [data.draw(st.permutations(range(num_classes)))[:width] for _ in range(size)]
    ids = np.asarray(perms).reshape(*lead, width)
    ids_dtype = data.draw(st.sampled_from(["int64", "int32", "float32"]))
    true_dtype = data.draw(st.sampled_from(["int64", "int32", "float32"]))
    truth = sparse_labels(data.draw, lead, num_classes, true_dtype)
    t, p, kt, kp = pair(truth, ids, true_dtype, ids_dtype, data.draw(st.sampled_from(CONTAINERS)))
    assert_parity("sparse_top_k_categorical_accuracy", t, p, kt, kp, k=k, from_sorted_ids=True)


@settings(PARITY, max_examples=80)
@given(data=st.data())
def test_nan_scores_match_keras(data):
    """NaN scores: comparisons with NaN are false, argmax/topk treat NaN as torch does (in both libraries)."""
    n = data.draw(st.integers(1, 6))
    num_classes = data.draw(st.integers(1, 5))
    vals = data.draw(
        st.lists(st.sampled_from([0.0, 0.5, 1.0, float("nan")]), min_size=n * num_classes, max_size=n * num_classes)
    )
    y_pred = np.asarray(vals, dtype=np.float32).reshape(n, num_classes)
    labels = np.asarray(data.draw(st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n)))
    one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    k = data.draw(st.integers(1, num_classes))
    assert_parity("sparse_categorical_accuracy", labels, y_pred)
    assert_parity("categorical_accuracy", one_hot, y_pred)
    assert_parity("sparse_top_k_categorical_accuracy", labels, y_pred, k=k)
    assert_parity("top_k_categorical_accuracy", one_hot, y_pred, k=k)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_with_many_classes_matches_keras(dtype):
    """C = 256: every label is exact in float16/bfloat16, so Keras' float comparison is still right."""
    gen = torch.Generator().manual_seed(0)
    num_classes = 256
    y_pred = torch.rand(64, num_classes, generator=gen).to(getattr(torch, dtype))
    labels = torch.randint(0, num_classes, (64,), generator=gen)
    labels[::2] = y_pred[::2].float().argmax(-1)  # half of them right
    got = assert_parity("sparse_categorical_accuracy", labels, y_pred)
    assert got[::2].all()
    for k in (1, 2, 5, 255, 256):
        assert_parity("sparse_top_k_categorical_accuracy", labels, y_pred, k=k)
        assert_parity("top_k_categorical_accuracy", torch.nn.functional.one_hot(labels, num_classes), y_pred, k=k)
    assert_parity("categorical_accuracy", torch.nn.functional.one_hot(labels, num_classes), y_pred)


@pytest.mark.parametrize("name", NAMES)
def test_public_keras_function_is_the_same_function(keras, name):
    """The five public `keras.metrics.<name>` are the functions we compare against (plain accuracy is private)."""
    if name == "accuracy":
        assert not hasattr(keras.metrics, "accuracy")
    else:
        assert getattr(keras.metrics, name) is getattr(KA, name)


# ----------------------------------------------------------- 2. worked examples of docs/semantics.md §2


def test_worked_example_binary():
    y_true, y_pred = [0, 0, 0, 1, 1, 0], [0.2, 0.3, 0.6, 0.7, 0.8, 0.1]
    got = assert_parity("binary_accuracy", y_true, y_pred)
    assert np.array_equal(got, [1, 1, 0, 1, 1, 1])
    assert got.mean() == pytest.approx(5 / 6)
    assert round(float(got.mean()), 4) == 0.8333


def test_worked_example_categorical():
    y_true = np.eye(3)[[2, 1, 1, 0]]
    y_pred = [[0.1, 0.6, 0.3], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.9, 0.0, 0.1]]
    got = assert_parity("categorical_accuracy", y_true, y_pred)
    assert got.mean() == 0.75


def test_worked_example_top_k():
    labels = [2, 1, 1, 0]
    y_pred = [[0.3, 0.6, 0.1], [0.5, 0.4, 0.1], [0.3, 0.6, 0.1], [0.9, 0.0, 0.1]]
    top1 = assert_parity("sparse_top_k_categorical_accuracy", labels, y_pred, k=1)
    top2 = assert_parity("sparse_top_k_categorical_accuracy", labels, y_pred, k=2)
    assert top1.mean() == 0.5
    assert top2.mean() == 0.75
    assert assert_parity("sparse_categorical_accuracy", labels, y_pred).mean() == 0.5
    one_hot = np.eye(3)[labels]
    assert assert_parity("top_k_categorical_accuracy", one_hot, y_pred, k=1).mean() == 0.5
    assert assert_parity("top_k_categorical_accuracy", one_hot, y_pred, k=2).mean() == 0.75


def test_score_equal_to_threshold_predicts_zero():
    got = assert_parity("binary_accuracy", [0, 1, 0, 1], np.array([0.5, 0.5, 0.25, 0.75], np.float32))
    assert np.array_equal(got, [1, 0, 1, 1])
    got = assert_parity("binary_accuracy", [0, 1], torch.tensor([0.25, 0.25], dtype=torch.float16), threshold=0.25)
    assert np.array_equal(got, [1, 0])


def test_ties_are_generous_in_top_k_and_first_in_argmax():
    y_pred = [[0.5, 0.5, 0.5]]
    for label in range(3):
        assert assert_parity("sparse_top_k_categorical_accuracy", [label], y_pred, k=1).tolist() == [1.0]
        assert assert_parity("sparse_categorical_accuracy", [label], y_pred).tolist() == [float(label == 0)]


# --------------------------------------------------------------------------- 3. deliberate fixes (our rule, not Keras)


@pytest.mark.parametrize("label_dtype", [torch.int64, torch.int32, torch.float32])
@pytest.mark.parametrize("bad", [-1, -3, 4, 5, 100])
def test_out_of_range_sparse_labels_are_wrong(bad, label_dtype):
    num_classes = 4
    y_pred = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    labels = torch.tensor([bad, bad, bad], dtype=label_dtype)
    assert F.sparse_categorical_accuracy(labels, y_pred).tolist() == [0.0, 0.0, 0.0]
    for k in (1, 2, num_classes, num_classes + 3):
        assert F.sparse_top_k_categorical_accuracy(labels, y_pred, k=k).tolist() == [0.0, 0.0, 0.0]
        assert F.sparse_top_k_categorical_accuracy(labels[:, None], y_pred, k=k).tolist() == [[0.0]] * 3
    # mixed with valid labels, the valid ones are still scored
    mixed = torch.tensor([3, bad, 0], dtype=label_dtype)
    assert F.sparse_categorical_accuracy(mixed, y_pred).tolist() == [1.0, 0.0, 1.0]
    assert F.sparse_top_k_categorical_accuracy(mixed, y_pred, k=1).tolist() == [1.0, 0.0, 1.0]
    assert F.sparse_top_k_categorical_accuracy(mixed, y_pred, k=9).tolist() == [1.0, 0.0, 1.0]


def test_out_of_range_labels_in_a_sequence_batch():
    y_pred = torch.zeros(2, 3, 5)
    y_pred[..., 2] = 1.0
    labels = torch.tensor([[2, 5, -1], [2, 7, 2]])
    assert F.sparse_categorical_accuracy(labels, y_pred).tolist() == [[1, 0, 0], [1, 0, 1]]
    assert F.sparse_top_k_categorical_accuracy(labels[..., None], y_pred, k=2).tolist() == [
        [[1], [0], [0]],
        [[1], [0], [1]],
    ]


@settings(PARITY, max_examples=30)
@given(data=st.data())
def test_k_larger_than_num_classes_counts_every_in_range_label(data):
    """Keras' torch backend raises here; we follow TensorFlow: every in-range label is in the top k."""
    lead = data.draw(lead_shape())
    num_classes = data.draw(st.integers(1, 6))
    k = data.draw(st.integers(num_classes + 1, num_classes + 10))
    y_pred, pred_dtype = data.draw(scores((*lead, num_classes)))
    truth = sparse_labels(data.draw, lead, num_classes, "int64")
    t, p, _, _ = pair(truth, y_pred, "int64", pred_dtype, data.draw(st.sampled_from(CONTAINERS)))
    got = ours("sparse_top_k_categorical_accuracy", t, p, k=k)
    assert got.shape == truth.shape
    assert (got == 1.0).all()
    one_hot = np.eye(num_classes)[truth.reshape(lead)]
    got = ours("top_k_categorical_accuracy", one_hot, p, k=k)
    assert got.shape == lead
    assert (got == 1.0).all()
    # ... and agrees with Keras at k == C, the largest k Keras accepts
    kt = convert(truth, "int64", "numpy")
    assert_parity("sparse_top_k_categorical_accuracy", kt, p, k=num_classes)


def test_keras_raises_for_k_larger_than_num_classes_and_we_do_not():
    """Documents why k > C has no Keras comparison: Keras' torch backend crashes."""
    y_pred = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
    with pytest.raises(RuntimeError):
        theirs("sparse_top_k_categorical_accuracy", np.array([0, 1]), y_pred, k=3)
    assert ours("sparse_top_k_categorical_accuracy", np.array([0, 1]), y_pred, k=3).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_large_labels_compared_as_integers_in_half_precision(dtype):
    """Label 2049 with C = 4096 float16 scores: Keras rounds the label to 2048 in float16; we compare integers."""
    num_classes = 4096
    y_pred = torch.zeros(2, num_classes, dtype=dtype)
    y_pred[0, 2049] = 1.0  # argmax 2049: label 2049 right
    y_pred[1, 2048] = 1.0  # argmax 2048: label 2049 wrong
    labels = torch.tensor([2049, 2049])
    assert F.sparse_categorical_accuracy(labels, y_pred).tolist() == [1.0, 0.0]
    assert F.sparse_categorical_accuracy(labels[:, None], y_pred).tolist() == [1.0, 0.0]
    assert F.sparse_top_k_categorical_accuracy(labels, y_pred, k=1).tolist() == [1.0, 0.0]
    one_hot = torch.nn.functional.one_hot(labels, num_classes)
    assert F.categorical_accuracy(one_hot, y_pred).tolist() == [1.0, 0.0]
    assert F.top_k_categorical_accuracy(one_hot, y_pred, k=1).tolist() == [1.0, 0.0]
    # the integer label 2048 is right on the second row only
    assert F.sparse_categorical_accuracy(torch.tensor([2048, 2048]), y_pred).tolist() == [0.0, 1.0]


# --------------------------------------------------------------------------- cases once found to differ from Keras
# These assert Keras' value: each was a departure from Keras, fixed to follow it (docs/semantics.md §16).


@pytest.mark.parametrize("n", [1, 3])
def test_sparse_categorical_labels_n_1_1_keep_keras_shape(n):
    # Keras squeezes the label axis, reshapes the matches back to y_true's shape (N, 1, 1), then drops ONE
    # trailing size-1 axis: (N, 1), not (N,).
    labels = np.zeros((n, 1, 1), np.int64)
    y_pred = np.tile(np.array([0.7, 0.2, 0.1], np.float32), (n, 1, 1))
    got = assert_parity("sparse_categorical_accuracy", labels, y_pred)
    assert got.shape == (n, 1)


@pytest.mark.parametrize(
    "name, y_pred, kwargs",
    [
        # sparse top-k always converts labels to int32 (or to the ids' dtype with from_sorted_ids)
        ("sparse_top_k_categorical_accuracy", np.array([[0.1, 0.6, 0.3], [0.2, 0.7, 0.1]], np.float32), {"k": 1}),
        ("sparse_top_k_categorical_accuracy", np.array([[1, 0, 2], [1, 2, 0]]), {"k": 1, "from_sorted_ids": True}),
        # sparse categorical casts labels to y_pred's dtype: with integer scores 1.5 becomes 1
        ("sparse_categorical_accuracy", np.array([[1, 3, 2], [0, 4, 1]]), {}),
    ],
    ids=["top_k", "sorted_ids", "int_scores"],
)
def test_fractional_sparse_labels_match_keras(name, y_pred, kwargs):
    got = assert_parity(name, np.array([1.5, 1.2]), y_pred, **kwargs)
    assert got.tolist() == [1.0, 1.0]


def test_soft_labels_against_integer_scores_in_top_k_match_keras():
    # Keras: [[0.3, 0.7, 0]] -> int [[0, 0, 0]] -> argmax 0 (score 1, not in the top 1);
    y_true = np.array([[0.3, 0.7, 0.0], [0.4, 0.6, 0.0]])
    y_pred = np.array([[1, 3, 2], [2, 1, 0]])
    got = assert_parity("top_k_categorical_accuracy", y_true, y_pred, k=1)
    assert got.tolist() == [0.0, 1.0]


def test_binary_threshold_with_float64_scores_matches_keras():
    # Keras: threshold 0.7 becomes float32 0.699999988, and 0.7 (float64) > 0.699999988 predicts 1.
    y_pred = np.array([0.7, 0.7000000000000001, 0.6999999999999999], dtype=np.float64)
    got = assert_parity("binary_accuracy", np.array([1, 1, 1]), y_pred, threshold=0.7)
    assert got.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "name, y_true, kwargs",
    [
        # Keras converts the list straight to y_pred's float64; we go list -> float32 -> float64 (0.1 != 0.1f).
        ("accuracy", [0.1, 2.0], {}),
        # soft labels that differ only beyond float32 precision: Keras' argmax is 1, ours sees a tie and picks 0.
        ("top_k_categorical_accuracy", [[0.3, 0.30000001], [0.1, 0.9]], {"k": 1}),
    ],
)
def test_list_labels_against_float64_scores_match_keras(name, y_true, kwargs):
    y_pred = np.array([0.1, 2.0]) if name == "accuracy" else np.array([[0.1, 0.9], [0.1, 0.9]])
    got = assert_parity(name, y_true, y_pred, **kwargs)
    assert got.tolist() == [1.0, 1.0]
