"""Refusals that must leave the trainer as it was, and behaviours found in review."""

from __future__ import annotations

import pytest
import torch

import torch_keras_metrics as tkm


def _trainer(loss="sparse_categorical_crossentropy", metrics=("accuracy",), out=3, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, out), torch.nn.Softmax(-1) if out > 1 else torch.nn.Sigmoid())
    return tkm.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss, metrics=list(metrics), device="cpu")


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _first_batch_order(seed):
    """The first shuffled batch a trainer built after torch.manual_seed(seed) draws."""
    torch.manual_seed(seed)
    trainer = _trainer(seed=seed)
    seen = []
    original = trainer.train_step

    def spy(batch):
        seen.append(batch.x[:, 0].tolist())
        return original(batch)

    trainer.train_step = spy
    x = torch.arange(40, dtype=torch.float32)[:, None].repeat(1, 4)
    trainer.fit(x, torch.zeros(40, dtype=torch.long), batch_size=8, epochs=1, verbose=0)
    return seen[0]


def test_shuffle_order_follows_torch_manual_seed():
    torch.manual_seed(5)
    a = _trainer(seed=5).generator.initial_seed()
    torch.manual_seed(6)
    b = _trainer(seed=6).generator.initial_seed()
    assert a == 5 and b == 6
    assert _first_batch_order(1) == _first_batch_order(1) != _first_batch_order(2)


def test_resume_from_with_bad_data_changes_nothing(tmp_path):
    trainer = _trainer()
    x, y = _data()
    trainer.fit(x, y, epochs=1, verbose=0)
    trainer.save_checkpoint(tmp_path / "c.pt")
    other = _trainer(seed=1)
    before = _weights(other)
    with pytest.raises(ValueError):
        other.fit(x, y[:30], epochs=2, verbose=0, resume_from=tmp_path / "c.pt")
    assert _same(before, _weights(other)) and other.history is None


def test_every_fit_checks_its_first_batch_against_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    trainer = tkm.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.MSELoss(), device="cpu")
    x = torch.randn(32, 4)
    trainer.fit(x, torch.randn(32, 1), epochs=1, verbose=0)
    before = _weights(trainer)
    with pytest.raises(ValueError, match=r"output of shape \(32, 1\).*targets of shape \(32,\)"):
        trainer.fit(x, torch.randn(32), batch_size=32, epochs=1, verbose=0)
    assert _same(before, _weights(trainer))
    with pytest.raises(ValueError, match=r"targets of shape \(32,\)"):
        trainer.evaluate(x, torch.randn(32), batch_size=32, verbose=0)


def test_keras_binary_crossentropy_takes_n_targets_for_n_by_1_outputs(keras):
    """Keras' loss wrapper gives (N,) targets a trailing axis to meet an (N, 1) sigmoid output."""
    trainer = _trainer(loss="binary_crossentropy", metrics=("acc",), out=1)
    x = torch.randn(16, 4)
    y = (torch.rand(16) > 0.5).float()
    ours = trainer.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    with torch.no_grad():
        probs = trainer.model(x)
    theirs = float(keras.losses.BinaryCrossentropy()(y.numpy(), probs.numpy()))
    assert ours["loss"] == pytest.approx(theirs, abs=1e-6)
    assert ours["acc"] == pytest.approx(((probs[:, 0] > 0.5).float() == y).float().mean().item())


def test_a_bare_mean_is_refused_as_a_trainer_metric():
    with pytest.raises(TypeError, match="averages values rather than comparing y_true with y_pred"):
        _trainer(metrics=("mean",))
    with pytest.raises(TypeError, match="MeanMetricWrapper"):
        _trainer(metrics=(tkm.Mean(),))


def test_a_refused_first_batch_leaves_the_trainer_unbuilt():
    def picky(y_true, y_pred):
        raise ValueError("picky wants something else")

    trainer = _trainer(metrics=("accuracy", picky))
    x, y = _data()
    before = _weights(trainer)
    with pytest.raises(ValueError, match="picky"):
        trainer.fit(x, y, epochs=1, verbose=0)
    assert _same(before, _weights(trainer))
    assert not trainer.built and len(trainer.compiled_metrics.loss_tracker) == 0
    assert all(m.count.item() == 0 for m in trainer.metrics)


@pytest.mark.parametrize("freq", [0, -1, 1.5, "2", True])
def test_bad_validation_freq_is_refused_before_training(freq):
    trainer = _trainer()
    x, y = _data()
    before = _weights(trainer)
    with pytest.raises(ValueError, match="validation_freq"):
        trainer.fit(x, y, epochs=1, verbose=0, validation_split=0.25, validation_freq=freq)
    assert _same(before, _weights(trainer))


def test_validation_freq_as_epochs():
    trainer = _trainer()
    x, y = _data()
    history = trainer.fit(x, y, epochs=3, verbose=0, validation_split=0.25, validation_freq=[2])
    assert len(history.history["val_loss"]) == 1
