"""Proof against Keras 3 (torch backend): the same network, weights and batches give the same numbers.

Every case trains a tiny MLP with plain SGD, `shuffle=False`, a ragged last batch (70 = 4 x 16 + 6)
and `validation_data`, in Keras and with `Trainer`, then checks every key Keras logs, every epoch,
every batch's running values (Keras 3's per-batch logs) and every batch's own loss.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from torch_keras_metrics import Trainer
from torch_keras_metrics.callbacks import Callback

# Keras' torch backend converts tensors with np.array(x, copy=False): numpy 2 deprecation noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOL = 1e-5
N, N_VAL, FEATURES, HIDDEN, BATCH, EPOCHS, LR = 70, 20, 4, 8, 16, 3, 0.1


@dataclasses.dataclass
class Case:
    name: str
    loss: str
    classes: int  # output units
    activation: str
    labels: str  # "sparse", "onehot" or "binary"
    metrics: list = dataclasses.field(default_factory=list)
    weighted_metrics: list = dataclasses.field(default_factory=list)
    sample_weight: bool = False


def mean_pred(y_true, y_pred):
    """A custom metric that already averages its batch (runs on torch tensors and in Keras' torch backend)."""
    return y_pred[:, 0].mean()


CASES = [
    Case("sparse", "sparse_categorical_crossentropy", 3, "softmax", "sparse", ["accuracy"]),
    Case("onehot", "categorical_crossentropy", 3, "softmax", "onehot", ["accuracy"]),
    Case("binary_acc", "binary_crossentropy", 1, "sigmoid", "binary", ["acc"]),
    Case(
        "sample_weight",
        "sparse_categorical_crossentropy",
        3,
        "softmax",
        "sparse",
        ["accuracy"],
        ["accuracy"],
        sample_weight=True,
    ),
    Case("custom_scalar_metric", "sparse_categorical_crossentropy", 3, "softmax", "sparse", ["accuracy", mean_pred]),
]


def make_data(case: Case, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N + N_VAL, FEATURES)).astype("float32")
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64") + (x[:, 2] > 0.8).astype("int64")
    if case.labels == "sparse":
        y = labels
    elif case.labels == "onehot":
        y = np.eye(3, dtype="float32")[labels]
    else:
        y = (labels > 0).astype("float32").reshape(-1, 1)
    w = rng.uniform(0.0, 2.0, size=N + N_VAL).astype("float32") if case.sample_weight else None
    split = lambda a: (None, None) if a is None else (a[:N], a[N:])  # noqa: E731
    return split(x), split(y), split(w)


class Recorder(Callback):
    """Keeps every batch's logs: Keras' (running values) or ours (own values, plus the running ones)."""

    def __init__(self):
        super().__init__()
        self.batches, self.running = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.append([])
        self.running.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.batches[-1].append(dict(logs))
        if hasattr(logs, "running"):
            self.running[-1].append(dict(logs.running()))


def keras_model(keras, case: Case):
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(case.classes, activation=case.activation),
        ]
    )


def torch_twin(kmodel, case: Case) -> torch.nn.Module:
    """The same network in torch with Keras' initial weights (a Dense kernel is (in, out): transposed)."""
    act = torch.nn.Softmax(-1) if case.activation == "softmax" else torch.nn.Sigmoid()
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, case.classes), act
    )
    with torch.no_grad():
        for linear, dense in zip([model[0], model[2]], kmodel.layers):
            kernel, bias = dense.get_weights()
            linear.weight.copy_(torch.from_numpy(np.asarray(kernel)).T)
            linear.bias.copy_(torch.from_numpy(np.asarray(bias)))
    return model


def run_both(keras, case: Case):
    (x, xv), (y, yv), (w, wv) = make_data(case)
    val = (xv, yv) if wv is None else (xv, yv, wv)

    kmodel = keras_model(keras, case)
    model = torch_twin(kmodel, case)
    kmodel.compile(
        keras.optimizers.SGD(learning_rate=LR),
        case.loss,
        metrics=list(case.metrics),
        weighted_metrics=list(case.weighted_metrics) or None,
    )
    krec = Recorder()
    khist = kmodel.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        verbose=0,
        shuffle=False,
        sample_weight=w,
        validation_data=val,
        callbacks=[krec],
    )

    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=LR),
        case.loss,
        metrics=list(case.metrics),
        weighted_metrics=list(case.weighted_metrics),
        device="cpu",
    )
    rec = Recorder()
    hist = trainer.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        verbose=0,
        shuffle=False,
        sample_weight=w,
        validation_data=val,
        callbacks=[rec],
    )
    return dict(kmodel=kmodel, khist=khist, krec=krec, trainer=trainer, hist=hist, rec=rec, data=(x, y, w, xv, yv, wv))


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def both(request, keras):
    return request.param, run_both(keras, request.param)


def test_epoch_logs_match_keras(both):
    case, r = both
    kh, h = r["khist"].history, r["hist"].history
    assert list(h) == list(kh)  # same keys, same (sorted) order
    for key in kh:
        np.testing.assert_allclose(h[key], kh[key], atol=TOL, rtol=0, err_msg=key)
    assert r["hist"].epoch == r["khist"].epoch


def test_running_batch_values_match_keras(both):
    """Keras 3's per-batch logs hold running values: ours are in `logs.running()`, for every key."""
    case, r = both
    for kepoch, epoch in zip(r["krec"].batches, r["rec"].running):
        assert len(kepoch) == len(epoch) == 5
        for kb, b in zip(kepoch, epoch):
            assert set(b) == set(kb)
            for key in kb:
                assert b[key] == pytest.approx(kb[key], abs=TOL), key


def test_each_batch_loss_matches_keras(both):
    """Our logs hold each batch's own loss; Keras' running means give the same values back."""
    case, r = both
    for kepoch, epoch in zip(r["krec"].batches, r["rec"].batches):
        sizes = [b["size"] for b in epoch]
        assert sizes == [16, 16, 16, 16, 6]
        seen, prev = 0, 0.0
        for kb, b, n in zip(kepoch, epoch, sizes):
            own = (kb["loss"] * (seen + n) - prev * seen) / n
            assert b["loss"] == pytest.approx(own, abs=TOL)
            seen, prev = seen + n, kb["loss"]


def test_evaluate_and_predict_match_keras(both):
    case, r = both
    x, y, w, xv, yv, wv = r["data"]
    kmodel, trainer = r["kmodel"], r["trainer"]
    kd = kmodel.evaluate(xv, yv, sample_weight=wv, batch_size=BATCH, verbose=0, return_dict=True)
    d = trainer.evaluate(xv, yv, sample_weight=wv, batch_size=BATCH, verbose=0, return_dict=True)
    assert list(d) == list(kd)
    for key in kd:
        assert d[key] == pytest.approx(kd[key], abs=TOL), key
    klist = kmodel.evaluate(xv, yv, sample_weight=wv, batch_size=BATCH, verbose=0)
    ours = trainer.evaluate(xv, yv, sample_weight=wv, batch_size=BATCH, verbose=0)
    np.testing.assert_allclose(np.atleast_1d(ours), np.atleast_1d(klist), atol=TOL, rtol=0)
    np.testing.assert_allclose(
        trainer.predict(x, batch_size=BATCH, verbose=0).numpy(),
        kmodel.predict(x, batch_size=BATCH, verbose=0),
        atol=TOL,
        rtol=0,
    )


def _size_weighted(values, sizes):
    return sum(v * n for v, n in zip(values, sizes)) / sum(sizes)


def test_base_logger_keras2_reduction(both):
    """Keras 2's BaseLogger (size-weighted mean of batch values) against Keras 3's stateful results.

    Loss: always equal (Keras 3 also weights batch losses by batch size). Unweighted accuracies:
    equal. Weighted metrics and the scalar custom metric: different, as docs/semantics.md §9 says.
    """
    case, r = both
    hist, base = r["hist"], r["trainer"].base_logger
    k2 = hist.keras2_history
    for epoch, record in enumerate(hist.batches):
        for key in k2:
            expected = _size_weighted(record[key], record["size"])
            assert k2[key][epoch] == pytest.approx(expected, abs=1e-12)
    assert list(base.history) == list(k2)  # the always-installed callback agrees with History
    for key in k2:
        np.testing.assert_allclose(base.history[key], k2[key], atol=1e-12, rtol=0)
    np.testing.assert_allclose(k2["loss"], hist.history["loss"], atol=TOL, rtol=0)
    if case.name in ("sparse", "onehot", "binary_acc"):
        key = case.metrics[0]
        np.testing.assert_allclose(k2[key], hist.history[key], atol=1e-6, rtol=0)
    if case.name == "sample_weight":
        # `accuracy` ignores the weights: both reductions agree; `weighted_accuracy` does not.
        np.testing.assert_allclose(k2["accuracy"], hist.history["accuracy"], atol=1e-6, rtol=0)
        assert all(abs(a - b) > 1e-4 for a, b in zip(k2["weighted_accuracy"], hist.history["weighted_accuracy"]))
        # Keras 3: sum(correct * w) / sum(w) over the epoch; Keras 2: batch ratios weighted by batch size.
    if case.name == "custom_scalar_metric":
        for epoch, record in enumerate(hist.batches):
            vals = record["mean_pred"]
            # Keras 3 (stateful, what Keras logs): the plain mean of the batch means
            assert hist.history["mean_pred"][epoch] == pytest.approx(np.mean(vals), abs=TOL)
            # Keras 2 (BaseLogger): weighted by batch size; the ragged last batch counts 6/70, not 1/5
            assert k2["mean_pred"][epoch] == pytest.approx(_size_weighted(vals, record["size"]), abs=1e-12)
            assert abs(k2["mean_pred"][epoch] - hist.history["mean_pred"][epoch]) > 1e-6
