"""The large-input kernels give torch's (and so Keras') exact answers, and the metrics compile once in a user's step."""

import copy

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

import torch_keras_metrics as tkm
from torch_keras_metrics import functional as F

from .conftest import to_numpy


def _adversarial(rows, classes, dtype=torch.float32, seed=0):
    """Quantised scores (many ties, across and inside blocks), NaNs, infinities and signed zeros."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 4, (rows, classes), generator=g).to(torch.float64)
    x[torch.rand(rows, classes, generator=g) < 0.002] = float("nan")
    x[torch.rand(rows, classes, generator=g) < 0.001] = float("inf")
    x[0] = float("-inf")  # every class ties
    x[1] = 0.0
    x[1, ::2] = -0.0  # -0.0 == 0.0: the first wins
    x[2] = 0.0
    x[2, -1] = float("nan")  # the only NaN is in the last class (the tail)
    x[3] = 1.0
    x[3, -1] = 2.0  # the maximum is in the tail
    x[4] = 1.0
    x[4, min(F._ARGMAX_BLOCK * 3 + 5, classes - 2)] = float("nan")  # a NaN inside a block
    x[5] = float("inf")  # infinities tie
    return x.to(dtype)


@pytest.mark.parametrize("classes", [128, 130, 2048, 2100, 5000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_blocked_argmax_is_torch_argmax(classes, dtype):
    x = _adversarial(40, classes, dtype, seed=classes)
    assert torch.equal(F._blocked_argmax(x), x.argmax(-1))


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8])
def test_blocked_argmax_on_integer_scores(dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 3, (30, 2300), generator=g).to(dtype)
    assert torch.equal(F._blocked_argmax(x), x.argmax(-1))


def test_large_inputs_take_the_blocked_kernel():
    x = torch.zeros(128, 2048)
    assert F._use_blocked(x) and not F._use_blocked(x[:, :100]) and not F._use_blocked(x.t())
    assert not F._use_blocked(torch.zeros(16, 2048))  # too few elements to pay


# Above the blocked kernels' thresholds: 130 rows of 2050 classes (the last block is a 2-class tail).
LARGE = (130, 2050)


def _labels(rows, classes, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (rows,), generator=g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_large_sparse_categorical_matches_keras(keras, dtype):
    scores = _adversarial(*LARGE, dtype=dtype, seed=2)
    labels = _labels(*LARGE, seed=3)
    labels[:6] = torch.tensor([0, 5, LARGE[1] - 1, LARGE[1] - 1, F._ARGMAX_BLOCK * 3 + 5, 0])
    assert F._use_blocked(scores)
    ours = F.sparse_categorical_accuracy(labels, scores)
    expected = keras.metrics.sparse_categorical_accuracy(labels, scores)
    np.testing.assert_array_equal(to_numpy(ours), to_numpy(expected).reshape(ours.shape))
    metric = tkm.SparseCategoricalAccuracy()
    metric.update_state(labels, scores)
    reference = keras.metrics.SparseCategoricalAccuracy()
    reference.update_state(labels, scores)
    assert metric.result().item() == pytest.approx(float(to_numpy(reference.result())), abs=1e-7)


def test_large_categorical_matches_keras_with_ties_in_the_labels(keras):
    scores = _adversarial(*LARGE, seed=4)
    labels = _labels(*LARGE, seed=5)
    one_hot = torch.nn.functional.one_hot(labels, LARGE[1]).float()
    one_hot[:10, 7] = 1.0  # multi-hot rows: argmax of y_true is the first 1
    one_hot[10, :] = 0.0  # an empty row: argmax 0
    one_hot[11, -1] = float("nan")  # a NaN label wins its row's argmax
    ours = F.categorical_accuracy(one_hot, scores)
    expected = keras.metrics.categorical_accuracy(one_hot, scores)
    np.testing.assert_array_equal(to_numpy(ours), to_numpy(expected))
    metric = tkm.CategoricalAccuracy()
    metric.update_state(one_hot, scores)
    assert metric.total.item() == float(to_numpy(expected).sum())


def test_large_sparse_labels_out_of_range_and_fractional_are_wrong():
    scores = _adversarial(*LARGE, seed=6)
    labels = scores.argmax(-1).to(torch.float32)
    labels[:3] = torch.tensor([-1.0, float(LARGE[1]), float("nan")])
    labels[3] += 0.5
    hits = F.sparse_categorical_accuracy(labels, scores)
    assert hits[:4].sum() == 0 and hits[4:].sum() == LARGE[0] - 4


def test_large_sequence_scores_match_torch_argmax():
    g = torch.Generator().manual_seed(7)
    scores = torch.randint(0, 3, (20, 7, 2100), generator=g).float()
    labels = scores.argmax(-1)
    labels[::3] = 0
    assert F._use_blocked(scores)
    expected = (scores.argmax(-1) == labels).float()
    assert torch.equal(F.sparse_categorical_accuracy(labels, scores), expected)


# --------------------------------------------------------------- inside a user's torch.compile'd step


@pytest.mark.parametrize("rows,classes", [(16, 10), (256, 1000)])
def test_metrics_in_a_compiled_step_compile_once_and_match_eager(rows, classes):
    compiled_metrics = [
        tkm.SparseCategoricalAccuracy(),
        tkm.CategoricalAccuracy(),
        tkm.SparseTopKCategoricalAccuracy(k=5),
        tkm.TopKCategoricalAccuracy(k=5),
    ]
    eager_metrics = copy.deepcopy(compiled_metrics)

    def step(metrics, labels, scores):
        sparse, onehot, sparse_top5, top5 = metrics
        y_onehot = torch.nn.functional.one_hot(labels, scores.shape[-1]).float()
        sparse.update_state(labels, scores)
        onehot.update_state(y_onehot, scores)
        return sparse(labels, scores), onehot(y_onehot, scores), sparse_top5(labels, scores), top5(y_onehot, scores)

    g = torch.Generator().manual_seed(8)
    batches = [
        (torch.randint(0, classes, (rows,), generator=g), torch.randint(0, 4, (rows, classes), generator=g).float())
        for _ in range(6)
    ]  # quantised scores: ties
    expected = [step(eager_metrics, *batch) for batch in batches]  # eager first: its own kernels may compile
    torch._dynamo.reset()
    counters.clear()
    compiled_step = torch.compile(step, fullgraph=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for batch, values in zip(batches, expected):
            for ours, eager in zip(compiled_step(compiled_metrics, *batch), values):
                assert torch.equal(ours, eager)
    assert counters["stats"]["unique_graphs"] == 1
    assert sum(counters["recompiles"].values()) == 0
    for ours, eager in zip(compiled_metrics, eager_metrics):
        assert torch.equal(ours.total, eager.total) and torch.equal(ours.count, eager.count)
        assert eager.count == 6 * rows * (2 if eager.name.startswith(("sparse_c", "categorical")) else 1)
