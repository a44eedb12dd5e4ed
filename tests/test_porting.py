"""The traps a Keras or torchmetrics user falls into when porting, each refused or fixed, and small frictions."""

from __future__ import annotations

import io
import os
import signal

import numpy as np
import pytest
import torch
import torchmetrics

import torch_keras_metrics as tkm

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _scores(n=64, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, c, (n,), generator=g), torch.rand(n, c, generator=g).softmax(-1)


# --------------------------------------------------------------------------- torchmetrics' argument order
@pytest.mark.parametrize(
    "metric",
    [
        tkm.SparseCategoricalAccuracy(),
        tkm.SparseTopKCategoricalAccuracy(k=2),
        tkm.CategoricalAccuracy(),
        tkm.TopKCategoricalAccuracy(k=2),
    ],  # fmt: skip
    ids=lambda m: type(m).__name__,
)
def test_torchmetrics_order_is_refused_with_how_to_call_it(metric):
    labels, scores = _scores()
    with pytest.raises(ValueError, match=r"torchmetrics' order \(preds, target\).*metric\(target, preds\)"):
        metric(scores, labels)
    assert metric.count == 0  # nothing was added


def test_mixing_ours_and_torchmetrics_positionally_in_one_collection():
    labels, scores = _scores()
    collection = torchmetrics.MetricCollection(
        {
            "keras_acc": tkm.SparseCategoricalAccuracy(torchmetrics_order=True),
            "tm_acc": torchmetrics.classification.MulticlassAccuracy(num_classes=5, average="micro"),
        }
    )
    collection.update(scores, labels)  # torchmetrics' (preds, target), for both
    got = collection.compute()
    want = (scores.argmax(-1) == labels).float().mean()
    assert torch.allclose(got["keras_acc"], want) and torch.allclose(got["tm_acc"], want)
    model = torch.nn.Linear(4, 5)
    with pytest.raises(TypeError, match="torchmetrics' order"):
        tkm.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "sparse_categorical_crossentropy",
                    metrics=[tkm.SparseCategoricalAccuracy(torchmetrics_order=True)])  # fmt: skip


# --------------------------------------------------------------------------- accuracy on logits
def test_keras_binary_crossentropy_on_logits_resolves_accuracy_at_threshold_zero():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 1, generator=g) * 3
    y = (logits + 0.3 * torch.randn(256, 1, generator=g) > 0).float()

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return x + 0.0 * self.p

    model = Fixed()
    loss = tkm.KerasLoss("binary_crossentropy", from_logits=True)
    trainer = tkm.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), loss, metrics=["accuracy"], device="cpu")
    history = trainer.fit(logits, y, batch_size=64, verbose=0, shuffle=False)
    assert trainer.metrics[0].threshold == 0.0
    assert history.history["accuracy"][0] == pytest.approx(((logits > 0).float() == y).float().mean().item())


# --------------------------------------------------------------------------- top-k shapes
@pytest.mark.parametrize("label_shape", [(4,), (4, 1), (4, 1, 1)])
def test_top_k_with_a_middle_axis_matches_keras(keras, label_shape):
    rng = np.random.default_rng(1)
    scores = rng.random((4, 1, 3)).astype("float32")
    labels = np.array([0, 1, 2, 1]).reshape(label_shape)
    want = np.asarray(keras.metrics.sparse_top_k_categorical_accuracy(labels, scores, k=2))
    got = tkm.functional.sparse_top_k_categorical_accuracy(torch.tensor(labels), torch.tensor(scores), k=2)
    assert got.shape == want.shape and np.array_equal(got.numpy(), want)
    km, ours = keras.metrics.SparseTopKCategoricalAccuracy(k=2), tkm.SparseTopKCategoricalAccuracy(k=2)
    km.update_state(labels, scores)
    ours.update_state(torch.tensor(labels), torch.tensor(scores))
    assert float(ours.result()) == pytest.approx(float(km.result()))
    onehot = np.eye(3, dtype="float32")[np.array([0, 1, 2, 1])]
    want = np.asarray(keras.metrics.top_k_categorical_accuracy(onehot, scores, k=2))
    got = tkm.functional.top_k_categorical_accuracy(torch.tensor(onehot), torch.tensor(scores), k=2)
    assert got.shape == want.shape and np.array_equal(got.numpy(), want)


# --------------------------------------------------------------------------- weights, resuming, Ctrl-C
def _trainer(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    loss = tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True)
    return tkm.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss, metrics=["accuracy"], device="cpu")


def _xy(n=720):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


def test_load_weights_reads_every_file_the_library_writes(tmp_path):
    trainer = _trainer()
    x, y = _xy(64)
    callbacks = [tkm.ModelCheckpoint(tmp_path / "full-{epoch}.pt"),
                 tkm.ModelCheckpoint(tmp_path / "w-{epoch}.pt", save_weights_only=True)]  # fmt: skip
    trainer.fit(x, y, epochs=1, verbose=0, callbacks=callbacks)
    for name in ("full-1.pt", "w-1.pt"):
        fresh = _trainer(seed=1).model
        tkm.load_weights(fresh, tmp_path / name)
        assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), trainer.model.state_dict().values()))
    other = torch.nn.Linear(4, 3)
    before = [p.clone() for p in other.parameters()]
    with pytest.raises(tkm.CheckpointError, match="w-1.pt.*different model architecture.*The model was not changed"):
        tkm.load_weights(other, tmp_path / "w-1.pt")
    assert all(torch.equal(a, b) for a, b in zip(before, other.parameters()))


def test_resume_from_says_which_file_and_epoch(tmp_path, capsys):
    x, y = _xy(64)
    _trainer().fit(x, y, epochs=2, verbose=0, callbacks=[tkm.ModelCheckpoint(tmp_path / "ckpt-{epoch}.pt")])
    _trainer().fit(x, y, epochs=3, verbose=2, resume_from=tmp_path)
    out = capsys.readouterr().out
    assert f"Resuming from {str(tmp_path / 'ckpt-2.pt')!r}: 2 epoch(s) done, continuing with epoch 3." in out


def test_ctrl_c_keeps_the_history_aligned_and_the_bar_true(tmp_path, ctrl_c):
    x, y = _xy()

    class CtrlC(tkm.Callback):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 1 and batch == 10:
                os.kill(os.getpid(), signal.SIGINT)

    stream = io.StringIO()
    bar = tkm.ProgbarLogger(stream=stream)
    history = _trainer().fit(x, y, batch_size=16, epochs=3, verbose=1, validation_data=(x, y),
                             callbacks=[CtrlC(), bar])  # fmt: skip
    assert history.epoch == [0, 1]
    assert {k: len(v) for k, v in history.history.items()} == dict.fromkeys(history.history, 2)
    assert np.isnan(history.history["val_loss"][1]) and not np.isnan(history.history["loss"][1])
    last_epoch = stream.getvalue().split("Epoch 2/3")[1]
    assert "11/45" in last_epoch and "45/45" not in last_epoch


# --------------------------------------------------------------------------- small frictions
def test_an_unknown_metric_name_lists_each_valid_name_once_and_suggests_one():
    with pytest.raises(ValueError) as err:
        tkm.get("acuracy")
    message = str(err.value)
    assert "Did you mean 'accuracy'?" in message
    names = message.split("Valid names: ")[1].rstrip(".").split(", ")
    assert len(names) == len(set(names)) and "accuracy" in names


def test_plot_draws_the_result_as_torchmetrics_does():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    labels, scores = _scores()
    metric = tkm.SparseCategoricalAccuracy()
    metric.update_state(labels, scores)
    fig, ax = metric.plot()
    assert fig is not None and ax.get_ylabel() == "SparseCategoricalAccuracy"


# --------------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("Accuracy", {}),
        ("BinaryAccuracy", {"threshold": 0.7}),
        ("CategoricalAccuracy", {}),
        ("SparseCategoricalAccuracy", {"name": "acc"}),
        ("TopKCategoricalAccuracy", {"k": 3}),
        ("SparseTopKCategoricalAccuracy", {"k": 2, "from_sorted_ids": True}),
        ("Mean", {"name": "loss"}),
    ],  # fmt: skip
)
def test_metric_configs_round_trip_and_read_keras_configs(keras, name, kwargs):
    theirs = getattr(keras.metrics, name)(**kwargs)
    ours = getattr(tkm, name)(**kwargs)
    assert ours.get_config() == theirs.get_config()
    again = tkm.get(keras.metrics.serialize(theirs))  # as keras.metrics.deserialize reads it
    assert type(again) is type(ours) and again.get_config() == ours.get_config()
    assert type(ours).from_config(ours.get_config()).get_config() == ours.get_config()


def test_callback_configs_round_trip(tmp_path):
    callbacks = [
        tkm.EarlyStopping(monitor="val_accuracy", patience=3, mode="max", restore_best_weights=True),
        tkm.ReduceLROnPlateau(factor=0.2, min_lr=1e-4),
        tkm.ModelCheckpoint(tmp_path / "best.pt", save_best_only=True),
        tkm.CSVLogger(tmp_path / "log.csv", separator=";"),
        tkm.TerminateOnNaN(raise_error=True),
    ]
    for cb in callbacks:
        config = cb.get_config()
        again = type(cb).from_config(config)
        assert again.get_config() == config and all(not isinstance(v, os.PathLike) for v in config.values())
    assert callbacks[0].get_config()["patience"] == 3 and callbacks[2].get_config()["filepath"] == str(
        tmp_path / "best.pt"
    )
