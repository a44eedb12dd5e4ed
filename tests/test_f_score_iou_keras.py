"""Parity of the F-scores and the IoU metrics with real Keras 3 (torch backend), and their torch behaviour.

Each parity case feeds the same seeded random batches (several, the last one ragged) to one of our metrics
and to the Keras class of the same name, and compares `result()` after every batch within 1e-6; calling our
metric must give the value of a fresh Keras metric fed only that batch. The cases are an explicit product of
the arguments (class, average or dtype, threshold, kind of sample weight) so every combination runs.
"""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest
import torch
import torchmetrics
from torch._dynamo.utils import counters

import torch_keras_metrics as tkm
from tests.conftest import to_numpy  # also sets KERAS_BACKEND=torch before keras is imported

keras = pytest.importorskip("keras")
from keras.src.metrics import ALL_OBJECTS_DICT as KERAS_NAMES  # noqa: E402

TOL = 1e-6
QUANTA = (0.0, 0.25, 0.5, 0.75, 1.0)  # few values: many ties, scores on the threshold
WEIGHTS = (0.0, 0.5, 1.0, 2.0)


def close(ours, theirs, what=""):
    a, b = to_numpy(ours).astype(np.float64), to_numpy(theirs).astype(np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, atol=TOL, rtol=0, err_msg=what)


def keras_result(metric):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric.result()


def keras_update(metric, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric.update_state(*args, **kwargs)


def run_both(make_ours, make_keras, batches):
    """Every batch to both; forward = a fresh Keras metric on that batch, result = Keras' running value."""
    ours, theirs = make_ours(), make_keras()
    for i, (args, kwargs) in enumerate(batches):
        alone = make_keras()
        keras_update(alone, *args, **kwargs)
        keras_update(theirs, *args, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = ours(*[torch.from_numpy(np.asarray(a)) for a in args], **kwargs)
        assert got.dtype == torch.float32
        close(got, keras_result(alone), f"forward of batch {i}")
        close(ours.result(), keras_result(theirs), f"result after batch {i}")
    ours.reset_state()
    theirs.reset_state()
    for args, kwargs in batches:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours.update_state(*args, **kwargs)
        keras_update(theirs, *args, **kwargs)
    close(ours.result(), keras_result(theirs), "after reset")
    return ours


# --------------------------------------------------------------------------- F-scores


FSCORE_CASES = [
    (cls_name, average, threshold, weight_kind)
    for cls_name in ("F1Score", "FBetaScore")
    for average in (None, "micro", "macro", "weighted")
    for threshold in (None, 0.5)
    for weight_kind in (None, "n", "one", "zeros")
]


def scores(rng, shape, quantised):
    return (rng.choice(QUANTA, shape) if quantised else rng.random(shape)).astype(np.float32)


def batches_of(rng):
    """Full batches of one size, then a ragged (smaller) last batch."""
    full = int(rng.integers(2, 7))
    return [full] * int(rng.integers(1, 4)) + [int(rng.integers(1, full))]


@pytest.mark.parametrize("index, case", list(enumerate(FSCORE_CASES)))
def test_f_scores_match_keras(index, case):
    cls_name, average, threshold, weight_kind = case
    rng = np.random.default_rng(index)
    kwargs = {"average": average, "threshold": threshold if index % 3 else (threshold and 0.25)}
    if cls_name == "FBetaScore":
        kwargs["beta"] = (0.5, 1.0, 2.0)[index % 3]
    c = 1 + index % 5
    label_kind = ("one_hot_int", "one_hot_float", "multi_hot", "bool", "soft")[(index // 2) % 5]
    batches = []
    for n in batches_of(rng):
        y_pred = scores(rng, (n, c), quantised=index % 4 != 3)  # few values: ties, scores on the threshold
        y_pred[: int(rng.integers(0, n))] = 0.0  # all-zero rows: nothing predicted at threshold=None
        if label_kind.startswith("one_hot"):
            y_true = np.eye(c, dtype=np.int64 if label_kind == "one_hot_int" else np.float32)[rng.integers(0, c, n)]
        elif label_kind == "soft":
            y_true = scores(rng, (n, c), quantised=True)
        else:
            y_true = rng.integers(0, 2, (n, c)).astype(bool if label_kind == "bool" else np.int32)
        kw = {}
        if weight_kind == "n":
            kw["sample_weight"] = rng.choice(WEIGHTS, n).astype(np.float32)
        elif weight_kind == "one":
            kw["sample_weight"] = rng.choice(WEIGHTS[1:], 1).astype(np.float32)
        elif weight_kind == "zeros":
            kw["sample_weight"] = np.zeros(n, np.float32)
        batches.append(((y_true, y_pred), kw))
    run_both(lambda: getattr(tkm, cls_name)(**kwargs), lambda: getattr(keras.metrics, cls_name)(**kwargs), batches)


def test_f_score_threshold_none_predicts_every_tied_maximum_unless_zero():
    y_true = np.array([[1, 0, 1], [0, 1, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    y_pred = np.array([[0.5, 0.5, 0.1], [0, 0, 0], [5e-10, 5e-10, 0], [-1.0, -0.5, -0.5]], np.float32)
    for average in (None, "micro"):
        ours, theirs = tkm.F1Score(average=average), keras.metrics.F1Score(average=average)
        ours.update_state(y_true, y_pred)
        theirs.update_state(y_true, y_pred)
        close(ours.result(), theirs.result())
        for ours_state, keras_variable in zip(ours.state().reshape(4, -1), theirs.variables):
            close(ours_state.reshape(keras_variable.shape), keras_variable.numpy())
    ours = tkm.F1Score()
    ours.update_state(y_true, y_pred)
    # row 0 predicts classes 0 and 1 (tied maximum); rows 1 and 2 nothing (maximum within 1e-9 of 0);
    # row 3 classes 1 and 2 (the tied maximum -0.5 is not near 0)
    assert ours.true_positives.tolist() == [1.0, 0.0, 1.0]
    assert ours.false_positives.tolist() == [0.0, 2.0, 0.0]


def test_f_score_threshold_is_strict():
    y_true, y_pred = np.array([[1, 0], [0, 1]]), np.array([[0.5, 0.25], [0.5, 0.75]], np.float32)
    ours, theirs = tkm.F1Score(threshold=0.5), keras.metrics.F1Score(threshold=0.5)
    ours.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    close(ours.result(), theirs.result())
    assert ours.true_positives.tolist() == [0.0, 1.0]  # 0.5 is not > 0.5


def test_f_score_docstring_examples():
    y_true = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], np.int32)
    y_pred = np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]], np.float32)
    for cls_name, kwargs, documented in [
        ("FBetaScore", {"beta": 2.0, "threshold": 0.5}, [0.3846154, 0.90909094, 0.8333334]),
        ("F1Score", {"threshold": 0.5}, [0.5, 0.8, 0.6666667]),
    ]:
        ours, theirs = getattr(tkm, cls_name)(**kwargs), getattr(keras.metrics, cls_name)(**kwargs)
        ours.update_state(y_true, y_pred)
        theirs.update_state(y_true, y_pred)
        close(ours.result(), theirs.result())
        close(ours.result(), np.array(documented, np.float32))


def test_f_score_states_are_built_by_the_first_batch():
    m = tkm.F1Score(average="macro")
    assert not m.built and m.state_dict() == {} and m.state().numel() == 0
    assert m.result().shape == () and tkm.F1Score().result().shape == (0,)
    m.reset_state()  # nothing to reset: stays unbuilt
    with pytest.raises(ValueError, match="2D inputs"):
        m.update_state(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="sample_weight"):
        m.update_state(np.eye(3), np.eye(3), sample_weight=np.ones((3, 1)))
    assert not m.built and m.state_dict() == {}, "a refused first batch builds nothing"
    m.update_state(np.eye(3)[[0, 1]], np.eye(3)[[0, 2]])
    assert m.built and m.true_positives.shape == (3,) and m.true_positives.dtype == torch.float64
    assert sorted(m.state_dict()) == ["false_negatives", "false_positives", "intermediate_weights", "true_positives"]
    assert m.state().shape == (12,)
    before = copy.deepcopy(m.state_dict())
    with pytest.raises(ValueError, match="built for 3"):
        m.update_state(np.eye(4), np.eye(4))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items()), "a refused batch changes nothing"
    # state()/load_state() and state_dict() into fresh (unbuilt) metrics
    again = tkm.F1Score(average="macro")
    again.load_state(m.state())
    assert torch.equal(again.result(), m.result()) and again.true_positives.shape == (3,)
    loaded = tkm.F1Score(average="macro")
    loaded.load_state_dict(m.state_dict())
    assert torch.equal(loaded.result(), m.result())
    # reset keeps the shape; .half() keeps float64; a micro metric is built from the start
    m.reset_state()
    assert m.true_positives.shape == (3,) and m.true_positives.sum() == 0
    assert m.half().true_positives.dtype == torch.float64
    micro = tkm.F1Score(average="micro")
    assert micro.built and micro.true_positives.shape == ()
    micro.update_state(np.eye(3), np.eye(3))
    micro.update_state(np.eye(4), np.eye(4))  # as Keras: micro states do not depend on the classes
    assert micro.result() == pytest.approx(1.0, abs=1e-6)


def test_f_score_built_after_to_lives_on_that_device():
    m = tkm.F1Score().to("meta")
    value = m(torch.eye(3, device="meta"), torch.rand(3, 3, device="meta"), sample_weight=torch.ones(3, device="meta"))
    assert m.true_positives.device.type == "meta" and value.device.type == "meta"


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"average": "samples"}, ValueError, "average"),
        ({"beta": 0.0}, ValueError, "beta"),
        ({"beta": "2"}, ValueError, "beta"),
        ({"threshold": 0.0}, ValueError, "threshold"),
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"threshold": True}, ValueError, "threshold"),
    ],
)
def test_f_score_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        tkm.FBetaScore(**kwargs)


def test_f_score_bad_inputs_name_the_argument_and_change_nothing():
    m = tkm.FBetaScore(average="weighted")
    m.update_state(np.eye(3), np.eye(3))
    before = copy.deepcopy(m.state_dict())
    for args, kwargs, match in [
        ((np.eye(3), np.eye(3)[:2]), {}, "y_true"),
        ((np.eye(3)[:, :, None], np.eye(3)[:, :, None]), {}, "2D inputs"),
        ((np.eye(3), np.eye(3)), {"sample_weight": np.ones(2)}, "sample_weight"),
        ((np.eye(3), ["a", "b", "c"]), {}, "y_pred"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            m.update_state(*args, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


# --------------------------------------------------------------------------- IoU


IOU_CASES = [
    (cls_name, dtype, weight_kind)
    for cls_name in ("IoU", "MeanIoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU")
    for dtype in (None, "float32")
    for weight_kind in (None, "elements", "scalar", "float", "zeros")
]


@pytest.mark.parametrize("index, case", list(enumerate(IOU_CASES)))
def test_iou_metrics_match_keras(index, case):
    cls_name, dtype, weight_kind = case
    rng = np.random.default_rng(1000 + index)
    c = 2 if cls_name == "BinaryIoU" else 2 + index % 4
    kwargs = {} if dtype is None else {"dtype": dtype}
    if cls_name != "BinaryIoU":
        kwargs["num_classes"] = c
        if index % 3 == 0:
            kwargs["ignore_class"] = (0, c - 1, -1, 255)[(index // 3) % 4]
    if cls_name in ("IoU", "OneHotIoU"):
        kwargs["target_class_ids"] = sorted(rng.choice(c, int(rng.integers(1, c + 1)), replace=False).tolist())
    if cls_name == "BinaryIoU":
        kwargs["target_class_ids"] = ((0, 1), [0], [1])[index % 3]
        kwargs["threshold"] = (0.5, 0.25, 0.0, 1.0)[index % 4]
    one_hot = cls_name.startswith("OneHot")
    with_scores = one_hot or (cls_name in ("IoU", "MeanIoU") and index % 2 == 1)
    if with_scores and not one_hot:
        kwargs["sparse_y_pred"] = False
    if one_hot and index % 4 == 1:
        kwargs["sparse_y_pred"] = True
    lead_kind = ("n", "n1", "nhw")[index % 3]
    h, w = 1 + index % 3, 1 + (index // 3) % 3
    batches = []
    for n in batches_of(rng):
        lead = {"n": (n,), "n1": (n, 1), "nhw": (n, h, w)}[lead_kind]
        labels = rng.integers(-1 if cls_name != "BinaryIoU" else 0, c + 1, lead)  # -1 and c: out of range
        if cls_name == "BinaryIoU":
            y_true = labels.astype((np.int64, np.float32)[index % 2])
            y_pred = scores(rng, lead, quantised=True)
        elif one_hot:
            y_true = np.eye(c, dtype=np.float32)[np.clip(labels, 0, c - 1)]
            if index % 2:
                y_true[..., 0] = y_true.max(-1)  # ties: the first class wins
            y_pred = rng.integers(-1, c + 1, lead) if kwargs.get("sparse_y_pred") else scores(rng, (*lead, c), True)
        else:
            y_true = labels
            y_pred = scores(rng, (*lead, c), True) if with_scores else rng.integers(-1, c + 1, lead)
        kw = {}
        if weight_kind == "elements":
            kw["sample_weight"] = rng.integers(0, 4, lead)
        elif weight_kind == "scalar":
            kw["sample_weight"] = int(rng.integers(1, 4))
        elif weight_kind == "float":  # truncated to integers unless dtype is float
            kw["sample_weight"] = scores(rng, lead, quantised=True) * 3
        elif weight_kind == "zeros":
            kw["sample_weight"] = np.zeros(lead, np.float32)
        batches.append(((y_true, y_pred), kw))
    ours = run_both(
        lambda: getattr(tkm, cls_name)(**kwargs), lambda: getattr(keras.metrics, cls_name)(**kwargs), batches
    )
    theirs = getattr(keras.metrics, cls_name)(**kwargs)
    for args, kw in batches:
        keras_update(theirs, *args, **kw)
    np.testing.assert_array_equal(to_numpy(ours.total_cm), theirs.total_cm.numpy())


def test_iou_float_weights_truncate_in_the_integer_matrix_with_keras_warning():
    y_true, y_pred, weight = [0, 0, 1, 1, 2], [0, 1, 0, 1, 2], np.array([0.3, 1.7, 2.5, -1.5, 1.0], np.float32)
    ours, theirs = tkm.MeanIoU(num_classes=3), keras.metrics.MeanIoU(num_classes=3)
    with pytest.warns(UserWarning, match="weight as `float`"):
        ours.update_state(y_true, y_pred, sample_weight=weight)
    keras_update(theirs, y_true, y_pred, sample_weight=weight)
    assert ours.total_cm.dtype == torch.int64
    assert ours.total_cm.tolist() == theirs.total_cm.numpy().tolist() == [[0, 1, 0], [2, -1, 0], [0, 0, 1]]
    close(ours.result(), keras_result(theirs))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # integer weights: no warning
        ours.update_state(y_true, y_pred, sample_weight=np.array([1, 2, 3, 4, 5]))


def test_iou_mean_is_over_classes_with_a_nonzero_denominator():
    # class 2 never appears (denominator 0): the mean is over classes 0 and 1 only, with Keras' 1e-7
    ours, theirs = tkm.MeanIoU(num_classes=3), keras.metrics.MeanIoU(num_classes=3)
    ours.update_state([0, 0, 1, 1], [0, 1, 1, 1])
    theirs.update_state([0, 0, 1, 1], [0, 1, 1, 1])
    close(ours.result(), theirs.result())
    expected = (1 / (2 + 1e-7) + 2 / (3 + 1e-7)) / (2 + 1e-7)
    assert ours.result().item() == pytest.approx(expected, abs=1e-7)


def test_iou_ignore_class_is_read_on_y_true_only():
    y_true, y_pred = [0, 1, 2, 2], [0, 2, 2, 1]
    ours, theirs = tkm.MeanIoU(num_classes=3, ignore_class=2), keras.metrics.MeanIoU(num_classes=3, ignore_class=2)
    ours.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    assert ours.total_cm.tolist() == theirs.total_cm.numpy().tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    close(ours.result(), theirs.result())


def test_binary_iou_threshold_is_greater_or_equal():
    ours, theirs = tkm.BinaryIoU(threshold=0.5), keras.metrics.BinaryIoU(threshold=0.5)
    ours.update_state([1, 0, 1], [0.5, 0.5, 0.49])
    theirs.update_state([1, 0, 1], [0.5, 0.5, 0.49])
    assert ours.total_cm.tolist() == theirs.total_cm.numpy().tolist() == [[0, 1], [1, 1]]
    close(ours.result(), theirs.result())


def test_iou_segmentation_scores_over_another_axis():
    """sparse_y_pred=False takes the argmax over `axis`: channels-first scores equal Keras on channels-last."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, (3, 5, 6))
    scores = rng.random((3, 4, 5, 6)).astype(np.float32)
    ours = tkm.MeanIoU(num_classes=4, sparse_y_pred=False, axis=1)
    theirs = keras.metrics.MeanIoU(num_classes=4, sparse_y_pred=False)
    ours.update_state(y_true, scores)
    theirs.update_state(y_true, np.moveaxis(scores, 1, -1))
    np.testing.assert_array_equal(to_numpy(ours.total_cm), theirs.total_cm.numpy())
    close(ours.result(), theirs.result())
    one_hot = tkm.OneHotMeanIoU(num_classes=4, axis=1)
    one_hot.update_state(np.moveaxis(np.eye(4)[y_true], -1, 1), scores)
    close(one_hot.result(), theirs.result())


def test_iou_docstring_examples():
    """Keras' documented numbers hold with a float dtype; with the default integer matrix its float weights
    truncate to 0 (Keras 3.15 gives 0 there too, whatever its docstring says)."""
    y_oh = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    p_oh = np.array([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]])
    t4, p4, b4 = [0, 0, 1, 1], [0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7]
    binary = {"target_class_ids": [0, 1], "threshold": 0.3}
    cases = [
        ("IoU", {"num_classes": 2, "target_class_ids": [0]}, t4, p4, None, 0.33333334),
        ("IoU", {"num_classes": 2, "target_class_ids": [0]}, t4, p4, [0.3, 0.3, 0.3, 0.1], 0.33333334),
        ("BinaryIoU", binary, [0, 1, 0, 1], b4, None, 0.33333334),
        ("BinaryIoU", binary, [0, 1, 0, 1], b4, [0.2, 0.3, 0.4, 0.1], 0.17361112),
        ("MeanIoU", {"num_classes": 2}, t4, p4, None, 0.33333334),
        ("MeanIoU", {"num_classes": 2}, t4, p4, [0.3, 0.3, 0.3, 0.1], 0.23809525),
        ("OneHotIoU", {"num_classes": 3, "target_class_ids": [0, 2]}, y_oh, p_oh, [0.1, 0.2, 0.3, 0.4], 0.0714286),
        ("OneHotMeanIoU", {"num_classes": 3}, y_oh, p_oh, [0.1, 0.2, 0.3, 0.4], 0.0476190),
    ]  # fmt: skip
    for cls_name, kwargs, y_true, y_pred, weight, documented in cases:
        for dtype in (None, "float32"):
            ours = getattr(tkm, cls_name)(dtype=dtype, **kwargs)
            theirs = getattr(keras.metrics, cls_name)(dtype=dtype, **kwargs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours.update_state(y_true, y_pred, sample_weight=weight)
            keras_update(theirs, y_true, y_pred, sample_weight=weight)
            close(ours.result(), keras_result(theirs), f"{cls_name} {dtype}")
            if dtype == "float32" or weight is None:
                assert ours.result().item() == pytest.approx(documented, abs=1e-6), cls_name
            else:
                assert ours.result().item() == 0.0, "float weights truncated to 0"


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: tkm.MeanIoU(num_classes=0), ValueError, "num_classes"),
        (lambda: tkm.IoU(num_classes=3, target_class_ids=[3]), ValueError, "out of range"),
        (lambda: tkm.IoU(num_classes=3, target_class_ids=[]), ValueError, "target_class_ids"),
        (lambda: tkm.IoU(num_classes=3, target_class_ids=[0.5]), TypeError, "target_class_ids"),
        (lambda: tkm.BinaryIoU(target_class_ids=[2]), ValueError, "out of range"),
        (lambda: tkm.MeanIoU(num_classes=3, dtype="bool"), TypeError, "dtype"),
        (lambda: tkm.MeanIoU(num_classes=3, ignore_class=1.5), TypeError, "ignore_class"),
        (lambda: tkm.BinaryIoU(threshold="0.5"), TypeError, "threshold"),
    ],
)
def test_iou_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_iou_bad_inputs_name_the_argument_and_change_nothing():
    m = tkm.MeanIoU(num_classes=3, sparse_y_pred=False)
    m.update_state([0, 1], np.eye(3)[[0, 1]])
    before = copy.deepcopy(m.state_dict())
    for args, kwargs, match in [
        (([0, 1, 2], np.eye(3)[[0, 1]]), {}, "y_true"),
        (([0, 1], np.eye(3)[[0, 1]]), {"sample_weight": [1, 2, 3]}, "sample_weight"),
        (([0, 1], 3.0), {}, "y_pred"),
        (([0, 1], np.zeros((2, 0))), {}, "y_pred"),
    ]:
        with pytest.raises(ValueError, match=match):
            m.update_state(*args, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


# --------------------------------------------------------------------------- both families as torch metrics

ALL = [
    ("F1Score", {"average": "macro"}, "f1_score"),
    ("F1Score", {"average": "micro", "threshold": 0.5}, "F1Score"),
    ("FBetaScore", {"average": "weighted", "beta": 2.0}, "f_beta_score"),
    ("IoU", {"num_classes": 4, "target_class_ids": [0, 2]}, "io_u"),
    ("MeanIoU", {"num_classes": 4, "ignore_class": 0, "sparse_y_pred": False}, "mean_io_u"),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, "binary_io_u"),
    ("OneHotIoU", {"num_classes": 4, "target_class_ids": [1], "dtype": "float32"}, "one_hot_io_u"),
    ("OneHotMeanIoU", {"num_classes": 4, "sparse_y_pred": True}, "one_hot_mean_io_u"),
]


def batch_for(cls_name, kwargs, n=8, c=4, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    scores = torch.rand(n, c, generator=g)
    if cls_name.endswith("Score"):
        y_true, y_pred = torch.nn.functional.one_hot(labels, c).float(), scores
    elif cls_name == "BinaryIoU":
        y_true, y_pred = (labels > 1).long(), scores[:, 0]
    elif cls_name.startswith("OneHot"):
        y_true = torch.nn.functional.one_hot(labels, c)
        y_pred = scores.argmax(-1) if kwargs.get("sparse_y_pred") else scores
    else:
        y_true = labels
        y_pred = scores if kwargs.get("sparse_y_pred") is False else torch.randint(0, c, (n,), generator=g)
    return y_true.to(device), y_pred.to(device)


@pytest.mark.parametrize("cls_name, kwargs, alias", ALL)
def test_configs_match_keras_and_round_trip_and_get_knows_the_names(cls_name, kwargs, alias):
    ours = getattr(tkm, cls_name)(**kwargs)
    default = getattr(keras.metrics, cls_name)(**kwargs)  # Keras numbers unnamed metrics: io_u_3
    assert re.sub(r"_\d+$", "", default.name) == ours.name
    theirs = getattr(keras.metrics, cls_name)(name=ours.name, **kwargs)
    assert ours.get_config() == theirs.get_config()
    again = tkm.get(keras.metrics.serialize(theirs))
    assert type(again) is type(ours) and again.get_config() == ours.get_config()
    assert type(ours).from_config(ours.get_config()).get_config() == ours.get_config()
    if "num_classes" not in kwargs:  # get(name) builds with default arguments
        assert type(tkm.get(alias)) is type(ours)
    assert tkm.metrics._CLASSES[alias] is type(ours)
    assert KERAS_NAMES[alias].__name__ == cls_name  # the names keras.metrics.get reads


@pytest.mark.parametrize("cls_name, kwargs, alias", ALL)
def test_update_and_forward_run_on_meta_tensors_and_in_a_metric_collection(cls_name, kwargs, alias):
    """Meta tensors have no values: any host read on the update path would raise."""
    metric = getattr(tkm, cls_name)(**kwargs).to("meta")
    y_true, y_pred = batch_for(cls_name, kwargs, device="meta")
    weight = torch.ones(8, device="meta")
    metric.update_state(y_true, y_pred, sample_weight=weight)
    assert metric(y_true, y_pred).device.type == "meta"
    # MetricCollection, called in our (Keras') order, equals the metric alone
    collection = torchmetrics.MetricCollection({"m": getattr(tkm, cls_name)(**kwargs), "acc": tkm.Mean()})
    alone = getattr(tkm, cls_name)(**kwargs)
    for seed in range(3):
        y_true, y_pred = batch_for(cls_name, kwargs, seed=seed)
        collection["m"].update(y_true, y_pred)
        alone.update_state(y_true, y_pred)
    assert torch.equal(collection.compute()["m"], alone.result())


@pytest.mark.parametrize("cls_name, kwargs, alias", [ALL[0], ALL[1], ALL[4], ALL[5]])
def test_compiled_updates_compile_once_and_equal_eager(cls_name, kwargs, alias):
    compiled_metric, eager = getattr(tkm, cls_name)(**kwargs), getattr(tkm, cls_name)(**kwargs)
    y_true, y_pred = batch_for(cls_name, kwargs, seed=100)
    compiled_metric.update_state(y_true, y_pred)  # the first batch builds per-class states (eager, as Keras)
    eager.update_state(y_true, y_pred)

    def step(metric, y_true, y_pred):
        metric.update_state(y_true, y_pred)
        return metric.result()

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(step)
    for seed in range(4):
        y_true, y_pred = batch_for(cls_name, kwargs, seed=seed)
        got = compiled(compiled_metric, y_true, y_pred)
        assert torch.allclose(got, step(eager, y_true, y_pred), atol=1e-6)
    assert counters["stats"]["unique_graphs"] >= 1
    assert sum(counters["recompiles"].values()) == 0
    assert all(torch.equal(a, b) for a, b in zip(compiled_metric.state_dict().values(), eager.state_dict().values()))


@pytest.mark.parametrize("cls_name, kwargs, alias", [ALL[2], ALL[4]])
def test_states_move_with_to_and_sum_over_ranks_as_one_vector(cls_name, kwargs, alias):
    a, b, both = (getattr(tkm, cls_name)(**kwargs) for _ in range(3))
    for seed, m in ((0, a), (1, b)):
        y_true, y_pred = batch_for(cls_name, kwargs, seed=seed)
        m.update_state(y_true, y_pred)
        both.update_state(y_true, y_pred)
    summed = getattr(tkm, cls_name)(**kwargs)
    summed.load_state(a.state() + b.state())  # what an all_reduce of state() gives
    assert torch.allclose(summed.result(), both.result(), atol=1e-7)
    assert a.double().state().dtype == torch.float64 and all(
        v.dtype == w.dtype for v, w in zip(a.state_dict().values(), b.state_dict().values())
    )


def test_trainer_epoch_logs_equal_the_metric_over_the_epoch():
    torch.manual_seed(0)
    x = torch.randn(40, 5)
    labels = torch.randint(0, 3, (40,))
    y = torch.nn.functional.one_hot(labels, 3).float()
    model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Softmax(-1))
    trainer = tkm.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        "categorical_crossentropy",
        metrics=[tkm.F1Score(average="macro"), tkm.OneHotMeanIoU(num_classes=3)],
        device="cpu",
    )
    history = trainer.fit(x, y, epochs=1, batch_size=16, verbose=0)
    with torch.no_grad():
        y_pred = model(x)
    f1, iou = keras.metrics.F1Score(average="macro"), keras.metrics.OneHotMeanIoU(num_classes=3)
    f1.update_state(y.numpy(), y_pred.numpy())
    iou.update_state(y.numpy(), y_pred.numpy())
    assert history.history["f1_score"][0] == pytest.approx(float(f1.result()), abs=1e-6)
    assert history.history["one_hot_mean_io_u"][0] == pytest.approx(float(iou.result()), abs=1e-6)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("cls_name, kwargs, alias", ALL)
def test_cuda_updates_never_sync_and_match_cpu(cls_name, kwargs, alias):
    cpu_metric, gpu_metric = getattr(tkm, cls_name)(**kwargs), getattr(tkm, cls_name)(**kwargs).cuda()
    batches = [batch_for(cls_name, kwargs, seed=s) for s in range(3)]
    weights = [torch.randint(0, 3, (8,)).float() for _ in batches]
    cpu_metric.update_state(*batches[0])  # builds the F-scores' states
    gpu_metric.update_state(*(t.cuda() for t in batches[0]))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for (t, p), w in zip(batches, weights):
                gpu_metric.update_state(t.cuda(non_blocking=True), p.cuda(non_blocking=True), w.cuda(non_blocking=True))
                gpu_metric(t.cuda(non_blocking=True), p.cuda(non_blocking=True))
            result = gpu_metric.result()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for (t, p), w in zip(batches, weights):
            cpu_metric.update_state(t, p, w)
            cpu_metric(t, p)
    assert torch.allclose(result.cpu(), cpu_metric.result(), atol=1e-6)


@pytest.mark.parametrize("average, threshold, weighted", [("micro", None, False), ("macro", 0.5, True)])
def test_large_inputs_take_the_compiled_counts_and_agree_with_eager(average, threshold, weighted):
    from torch_keras_metrics import functional as F

    rng = np.random.default_rng(7)
    y_pred = torch.from_numpy(rng.choice(QUANTA, (64, 5)).astype(np.float32))
    y_pred[:3] = 0.0
    y_true = torch.from_numpy(rng.integers(0, 2, (64, 5)).astype(np.float32))
    weight = torch.from_numpy(rng.choice(WEIGHTS, 64).astype(np.float32)) if weighted else None
    results = []
    for mode in (True, False):
        with F.compile_mode(mode):
            m = tkm.F1Score(average=average, threshold=threshold)
            m.update_state(y_true, y_pred, sample_weight=weight)
            results.append(m.result())
    assert "fbeta_counts" not in F.compile_failures()
    theirs = keras.metrics.F1Score(average=average, threshold=threshold)
    theirs.update_state(y_true.numpy(), y_pred.numpy(), sample_weight=None if weight is None else weight.numpy())
    close(results[0], results[1])
    close(results[0], theirs.result())
