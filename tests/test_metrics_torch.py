"""The metrics as torch modules: no host sync, compile once, interop, exact counts, refusals."""

import copy
import io
import pickle

import numpy as np
import pytest
import torch
import torchmetrics
from torch._dynamo.utils import counters

import torch_keras_metrics as tkm
from torch_keras_metrics import functional as F

CLASSES = [
    (tkm.Accuracy, {}),
    (tkm.BinaryAccuracy, {"threshold": 0.3}),
    (tkm.CategoricalAccuracy, {}),
    (tkm.SparseCategoricalAccuracy, {}),
    (tkm.TopKCategoricalAccuracy, {"k": 2}),
    (tkm.SparseTopKCategoricalAccuracy, {"k": 2}),
    (tkm.SparseTopKCategoricalAccuracy, {"k": 2, "from_sorted_ids": True}),
]


def batch_for(cls, kwargs, n=8, c=5, device="cpu", seed=0):
    """A (y_true, y_pred) batch of the kind each metric expects."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    scores = torch.rand(n, c, generator=g)
    if cls is tkm.Accuracy:
        y_true, y_pred = labels, torch.randint(0, c, (n,), generator=g)
    elif cls is tkm.BinaryAccuracy:
        y_true, y_pred = (labels > 2).float()[:, None], scores[:, :1]
    elif cls in (tkm.CategoricalAccuracy, tkm.TopKCategoricalAccuracy):
        y_true, y_pred = torch.nn.functional.one_hot(labels, c).float(), scores
    elif kwargs.get("from_sorted_ids"):
        y_true, y_pred = labels, scores.argsort(-1, descending=True)
    else:
        y_true, y_pred = labels, scores
    return y_true.to(device), y_pred.to(device)


def states(metric):
    return metric.total.clone(), metric.count.clone()


# ------------------------------------------------------------------ no host sync: meta tensors


@pytest.mark.parametrize("cls,kwargs", CLASSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_update_and_forward_run_on_meta_tensors(cls, kwargs, weighted):
    """Meta tensors have no values: any `.item()`, `bool(t)` or `.cpu()` on the update path raises."""
    metric = cls(**kwargs).to("meta")
    y_true, y_pred = batch_for(cls, kwargs, device="meta")
    weight = torch.ones(8, device="meta") if weighted else None
    metric.update_state(y_true, y_pred, sample_weight=weight)
    value = metric(y_true, y_pred, sample_weight=weight)
    assert value.device.type == "meta" and value.shape == ()
    assert metric.result().device.type == "meta"
    assert metric.total.dtype == torch.float64


def test_functions_and_mean_run_on_meta_tensors():
    scores = torch.empty(6, 3, 5, device="meta")
    labels = torch.empty(6, 3, dtype=torch.long, device="meta")
    assert F.sparse_categorical_accuracy(labels, scores).shape == (6, 3)
    assert F.sparse_top_k_categorical_accuracy(labels, scores, k=2).shape == (6, 3)
    mean = tkm.Mean().to("meta")
    mean.update_state(torch.empty(6, device="meta"), sample_weight=torch.empty(6, 1, device="meta"))
    assert mean.result().device.type == "meta"


# ------------------------------------------------------------------ torch.compile


@pytest.mark.parametrize(
    "fn,kwargs",
    [
        (F.accuracy, {}),
        (F.binary_accuracy, {"threshold": 0.4}),
        (F.categorical_accuracy, {}),
        (F.sparse_categorical_accuracy, {}),
        (F.top_k_categorical_accuracy, {"k": 2}),
        (F.sparse_top_k_categorical_accuracy, {"k": 2}),
    ],
)
def test_functions_compile_fullgraph_and_agree(fn, kwargs):
    cls = {
        F.accuracy: tkm.Accuracy,
        F.binary_accuracy: tkm.BinaryAccuracy,
        F.categorical_accuracy: tkm.CategoricalAccuracy,
        F.sparse_categorical_accuracy: tkm.SparseCategoricalAccuracy,
        F.top_k_categorical_accuracy: tkm.TopKCategoricalAccuracy,
        F.sparse_top_k_categorical_accuracy: tkm.SparseTopKCategoricalAccuracy,
    }[fn]
    y_true, y_pred = batch_for(cls, kwargs, n=12)
    compiled = torch.compile(lambda t, p: fn(t, p, **kwargs), fullgraph=True)
    assert torch.equal(compiled(y_true, y_pred), fn(y_true, y_pred, **kwargs))


def test_compiled_training_step_compiles_once_and_counts_like_eager():
    torch._dynamo.reset()
    counters.clear()
    compiled_metrics = [tkm.SparseCategoricalAccuracy(), tkm.SparseTopKCategoricalAccuracy(k=3), tkm.Mean("loss")]
    eager_metrics = copy.deepcopy(compiled_metrics)

    def step(metrics, logits, labels, weight):
        acc, top3, loss = metrics
        acc.update_state(labels, logits, sample_weight=weight)
        batch_top3 = top3(labels, logits)
        loss.update_state(torch.nn.functional.cross_entropy(logits, labels, reduction="none"))
        return batch_top3

    compiled_step = torch.compile(step, fullgraph=True)
    g = torch.Generator().manual_seed(1)
    for _ in range(25):
        logits = torch.randn(16, 10, generator=g)
        labels = torch.randint(0, 10, (16,), generator=g)
        weight = torch.rand(16, generator=g)
        assert torch.equal(
            compiled_step(compiled_metrics, logits, labels, weight), step(eager_metrics, logits, labels, weight)
        )
    assert counters["stats"]["unique_graphs"] == 1
    assert sum(counters["recompiles"].values()) == 0
    for ours, eager in zip(compiled_metrics, eager_metrics):
        assert torch.allclose(ours.total, eager.total) and torch.equal(ours.count, eager.count)
        assert eager.count > 0
    assert compiled_metrics[2].count == 25 * 16


def _both_rules(labels, scores, compile_mode):
    with F.compile_mode(compile_mode):
        return F.sparse_categorical_accuracy(labels, scores), F.sparse_top_k_categorical_accuracy(labels, scores, k=5)


def test_large_inputs_take_the_compiled_kernels_and_agree_with_eager():
    """Above the size threshold the counting kernels run compiled; ties, NaNs and bad labels included."""
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 3, (600, 500), generator=g).float()
    scores[torch.rand(600, 500, generator=g) < 0.01] = float("nan")
    labels = torch.randint(-2, 503, (600,), generator=g)
    failed_before = F.compile_failures()
    compiled = _both_rules(labels, scores, compile_mode=True)
    assert F.compile_failures() == failed_before, "a kernel fell back to eager"
    eager = _both_rules(labels, scores, compile_mode=False)
    in_range = (labels >= 0) & (labels < 500)
    assert torch.equal(compiled[0], eager[0]) and torch.equal(compiled[1], eager[1])
    assert torch.equal(eager[0], ((scores.argmax(-1) == labels) & in_range).float())
    assert eager[1][~in_range].sum() == 0 and eager[1][in_range].sum() > 0


# ------------------------------------------------------------------ exact accumulation


def test_counts_past_float32_exactness():
    """2**25 + 1 samples: float32 states (Keras') stop counting at 2**24; ours count every one."""
    n = 1 << 25
    metric = tkm.BinaryAccuracy()
    y_pred = torch.ones(n)
    metric.update_state(torch.ones(n, dtype=torch.bool), y_pred)
    metric.update_state(torch.zeros(1), torch.ones(1))
    assert metric.count.item() == n + 1 and metric.total.item() == n
    assert (metric.total / metric.count).item() == n / (n + 1)
    assert np.float32(n) + np.float32(1) == np.float32(n)  # what a float32 count would have held


# ------------------------------------------------------------------ torch and torchmetrics interop


def test_state_dict_round_trip_and_buffers():
    metric = tkm.SparseCategoricalAccuracy()
    metric.update_state(*batch_for(tkm.SparseCategoricalAccuracy, {}, n=10))
    state = metric.state_dict()
    assert set(state) == {"total", "count"} and state["count"].item() == 10
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = tkm.SparseCategoricalAccuracy()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(fresh.result(), metric.result())


def test_half_and_float_keep_float64_states_and_to_moves():
    metric = tkm.Mean()
    metric.update_state(torch.tensor([1.0, 2.0, 4.0]) / 3)
    before = metric.total.clone()
    metric.half()
    metric.float()
    assert metric.total.dtype == torch.float64 and torch.equal(metric.total, before)
    moved = metric.to("meta")
    assert moved.total.device.type == "meta" and moved.total.dtype == torch.float64


def test_deepcopy_and_pickle_keep_state():
    metric = tkm.SparseTopKCategoricalAccuracy(k=2)
    metric.update_state(*batch_for(tkm.SparseTopKCategoricalAccuracy, {"k": 2}))
    for clone in (copy.deepcopy(metric), pickle.loads(pickle.dumps(metric))):
        assert torch.equal(clone.result(), metric.result()) and clone.k == 2


def test_metric_collection_keeps_different_definitions_apart():
    """torchmetrics merges metrics whose states look equal after the first batch; ours must not be merged."""
    y_true = torch.tensor([0, 1, 2, 0])
    y_pred = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.1, 0.7, 0.2]])
    collection = torchmetrics.MetricCollection(
        {"acc": tkm.SparseCategoricalAccuracy(), "top2": tkm.SparseTopKCategoricalAccuracy(k=2)}
    )
    collection.update(y_true, y_pred)  # both 2/4 here: equal states
    y_true2 = torch.tensor([2, 2])
    y_pred2 = torch.tensor([[0.5, 0.4, 0.1], [0.5, 0.4, 0.1]])
    batch = collection(y_true2, y_pred2)
    assert batch["acc"].item() == 0.0 and batch["top2"].item() == 0.0
    collection.update(torch.tensor([1]), torch.tensor([[0.5, 0.4, 0.1]]))
    result = collection.compute()
    assert result["acc"].item() == pytest.approx(2 / 7) and result["top2"].item() == pytest.approx(3 / 7)
    collection.reset()
    assert all(m.count.item() == 0 for m in collection.values())


def test_metric_collection_mixing_ours_and_torchmetrics_routes_keywords():
    """Ours take (y_true, y_pred), torchmetrics' (preds, target): keywords reach each metric by name."""
    collection = torchmetrics.MetricCollection(
        {
            "ours": tkm.SparseCategoricalAccuracy(),
            "theirs": torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro"),
        }
    )
    labels = torch.tensor([0, 1, 2, 2])
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7]])
    batch = collection(y_true=labels, y_pred=scores, preds=scores, target=labels)
    assert batch["ours"].item() == batch["theirs"].item() == 0.75
    collection.update(y_true=labels[:2], y_pred=scores[:2], preds=scores[:2], target=labels[:2])
    result = collection.compute()
    assert result["ours"].item() == pytest.approx(5 / 6) and result["theirs"].item() == pytest.approx(5 / 6)


def test_lightning_logs_the_metric_object():
    lightning = pytest.importorskip("lightning")

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 3)
            self.acc = tkm.SparseCategoricalAccuracy()

        def training_step(self, batch, _):
            x, y = batch
            logits = self.layer(x)
            self.acc(y, logits)
            self.log("train_acc", self.acc, on_step=True, on_epoch=True)
            return torch.nn.functional.cross_entropy(logits, y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)  # frozen weights: a known epoch value

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g)
    module = Module()
    expected = F.sparse_categorical_accuracy(y, module.layer(x).detach()).mean().item()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=6)
    trainer = lightning.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, loader)
    assert trainer.callback_metrics["train_acc_epoch"].item() == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------ bad input leaves the state alone


def _refused(metric, exc, match, *args, **kwargs):
    if isinstance(metric, tkm.MeanMetricWrapper):
        metric.update_state(*batch_for(type(metric), metric._fn_kwargs))
    else:
        metric.update_state(torch.rand(5))
    before = states(metric)
    with pytest.raises(exc, match=match):
        metric.update_state(*args, **kwargs)
    with pytest.raises(exc, match=match):
        metric(*args, **kwargs)
    after = states(metric)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])


def test_batch_sizes_that_differ():
    _refused(
        tkm.SparseCategoricalAccuracy(),
        ValueError,
        r"y_true.*\(5,\).*y_pred.*\(4, 3\)",
        torch.zeros(5),
        torch.rand(4, 3),
    )
    _refused(tkm.BinaryAccuracy(), ValueError, r"y_true.*\(6,\).*y_pred.*\(4,\)", torch.zeros(6), torch.rand(4))


def test_one_hot_width_that_differs_from_classes():
    _refused(
        tkm.CategoricalAccuracy(),
        ValueError,
        r"y_true has shape \(4, 3\).*\(4, 5\)",
        torch.zeros(4, 3),
        torch.rand(4, 5),
    )
    _refused(tkm.TopKCategoricalAccuracy(k=2), ValueError, r"one column per class", torch.zeros(4, 3), torch.rand(4, 5))


def test_sample_weight_that_does_not_broadcast():
    metric = tkm.SparseCategoricalAccuracy()
    _refused(
        metric,
        ValueError,
        r"sample_weight.*\(3,\).*\(8,\)",
        torch.zeros(8, dtype=torch.long),
        torch.rand(8, 5),
        torch.ones(3),
    )
    _refused(tkm.Mean(), ValueError, r"sample_weight.*\(2, 2\)", torch.ones(4), torch.ones(2, 2))


@pytest.mark.parametrize(
    "y_true,y_pred,exc,match",
    [
        (None, torch.rand(4, 3), TypeError, "y_true.*None"),
        (torch.zeros(4), None, TypeError, "y_pred.*None"),
        ("labels", torch.rand(4, 3), TypeError, "y_true.*string"),
        (torch.zeros(4), [["a", "b", "c"]] * 4, TypeError, "y_pred.*real numbers"),
        (torch.zeros(4), [[1, 2], [3]], TypeError, "y_pred"),
        (torch.zeros(4), torch.rand(4, 0), ValueError, "last axis"),
    ],
)
def test_inputs_that_are_not_numbers(y_true, y_pred, exc, match):
    _refused(tkm.SparseCategoricalAccuracy(), exc, match, y_true, y_pred)


@pytest.mark.parametrize(
    "k,exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("5", TypeError)]
)
def test_bad_k(k, exc):
    with pytest.raises(exc, match="`k` must be an integer >= 1"):
        tkm.SparseTopKCategoricalAccuracy(k=k)
    with pytest.raises(exc, match="`k`"):
        F.top_k_categorical_accuracy(torch.eye(3), torch.rand(3, 3), k=k)


@pytest.mark.parametrize("threshold", ["0.5", None, [0.5], torch.ones(2)])
def test_bad_threshold(threshold):
    with pytest.raises(TypeError, match="`threshold` must be a real number"):
        tkm.BinaryAccuracy(threshold=threshold)
    with pytest.raises(TypeError, match="`threshold`"):
        F.binary_accuracy([0, 1], [0.2, 0.8], threshold=threshold)


def test_out_of_range_labels_are_wrong_never_a_crash():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    for labels in (torch.tensor([-1, 2, 5, -7]), torch.tensor([-1.0, 2.0, 9.0, float("nan")])):
        assert F.sparse_categorical_accuracy(labels, scores).sum() == 0
        assert F.sparse_top_k_categorical_accuracy(labels, scores, k=5).sum() == 0
    # a fractional label is wrong against float scores, as in Keras (which cuts it to 0 in the top-k metrics)
    assert F.sparse_categorical_accuracy(torch.tensor([0.5]), scores[1:2]).item() == 0


def test_tensor_threshold_stays_on_device():
    scores = torch.tensor([0.2, 0.5, 0.7])
    assert torch.equal(F.binary_accuracy([0, 0, 1], scores, threshold=torch.tensor(0.5)), torch.ones(3))


# ------------------------------------------------------------------ get()


def test_get_names_classes_instances_and_functions():
    assert isinstance(tkm.get("sparse_top_k_categorical_accuracy"), tkm.SparseTopKCategoricalAccuracy)
    assert tkm.get("SparseCategoricalAccuracy").name == "sparse_categorical_accuracy"
    assert tkm.get("mae").name == "mae" and tkm.get("mean_squared_error").name == "mean_squared_error"
    assert isinstance(tkm.get(tkm.CategoricalAccuracy), tkm.CategoricalAccuracy)
    metric = tkm.BinaryAccuracy(threshold=0.2)
    assert tkm.get(metric) is metric

    def mean_pred(y_true, y_pred):
        return y_pred.mean()

    wrapped = tkm.get(mean_pred)
    assert isinstance(wrapped, tkm.MeanMetricWrapper) and wrapped.name == "mean_pred"
    wrapped.update_state(torch.zeros(2), torch.tensor([0.2, 0.6]))
    wrapped.update_state(torch.zeros(3), torch.tensor([1.0, 1.0, 1.0]))
    assert wrapped.result().item() == pytest.approx((0.4 + 1.0) / 2)  # one sample per update


def test_get_resolves_accuracy_by_shapes_and_torch_binary_losses():
    acc = tkm.get("acc", torch.zeros(4), torch.zeros(4, 3))
    assert isinstance(acc, tkm.SparseCategoricalAccuracy) and acc.name == "acc"
    assert isinstance(tkm.get("accuracy", torch.zeros(4, 3), torch.zeros(4, 3)), tkm.CategoricalAccuracy)
    assert isinstance(tkm.get("accuracy", torch.zeros(4, 1), torch.zeros(4, 3)), tkm.SparseCategoricalAccuracy)
    assert isinstance(tkm.get("accuracy", torch.zeros(4, 1), torch.zeros(4, 1)), tkm.BinaryAccuracy)
    logits = tkm.get("accuracy", torch.zeros(4, 3), torch.zeros(4, 3), loss=torch.nn.BCEWithLogitsLoss())
    assert isinstance(logits, tkm.BinaryAccuracy) and logits.threshold == 0.0
    probs = tkm.get("accuracy", loss=torch.nn.BCELoss)
    assert isinstance(probs, tkm.BinaryAccuracy) and probs.threshold == 0.5
    with pytest.raises(ValueError, match="pass both"):
        tkm.get("accuracy")


def test_get_refuses_unknown_names_listing_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'.*sparse_top_k_categorical_accuracy"):
        tkm.get("acuracy")
    with pytest.raises(TypeError, match="torchmetrics metric"):
        tkm.get(torchmetrics.classification.MulticlassAccuracy(num_classes=3))
    with pytest.raises(TypeError, match="A metric must be"):
        tkm.get(3)


# ------------------------------------------------------------------ CUDA (runs where a GPU is present)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("cls,kwargs", CLASSES)
def test_cuda_updates_never_sync_and_match_cpu(cls, kwargs):
    cpu_metric, gpu_metric = cls(**kwargs), cls(**kwargs).cuda()
    batches = [batch_for(cls, kwargs, n=n, seed=n) for n in (8, 8, 5)]
    gpu_batches = [(t.cuda(), p.cuda()) for t, p in batches]
    weights = [torch.rand(len(t)).cuda() for t, _ in batches]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for (t, p), w in zip(gpu_batches, weights):
            gpu_metric.update_state(t, p, sample_weight=w)
            gpu_metric(t, p)
        result = gpu_metric.result()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for (t, p), w in zip(batches, weights):
        cpu_metric.update_state(t, p, sample_weight=w.cpu())
        cpu_metric(t, p)
    assert result.device.type == "cuda"
    assert torch.allclose(result.cpu(), cpu_metric.result(), atol=1e-6)
