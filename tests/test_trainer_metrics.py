"""Keras' other metrics inside the Trainer: the epoch logs equal the Keras metric fed the epoch's predictions,
for results of one value and of several (per class, per threshold), in History, BaseLogger and the bar."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import torch_keras_metrics as tkm
from tests.conftest import to_numpy  # noqa: F401  (sets KERAS_BACKEND=torch before keras is imported)

keras = pytest.importorskip("keras")

_g = torch.Generator().manual_seed(5)
X = torch.randn(50, 4, generator=_g)
Y = torch.nn.functional.one_hot(torch.randint(0, 3, (50,), generator=_g), 3).float()


def _frozen_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(-1))


def _keras_value(make, y_true, y_pred, batch=16):
    k = make()
    for lo in range(0, len(y_true), batch):
        k.update_state(y_true[lo : lo + batch], y_pred[lo : lo + batch])
    return np.asarray(k.result(), dtype=np.float64).tolist()


CASES = {
    "F1Score(average=None)": (lambda: tkm.F1Score(), lambda: keras.metrics.F1Score()),
    "Precision(thresholds=[0.3, 0.6])": (
        lambda: tkm.Precision(thresholds=[0.3, 0.6]),
        lambda: keras.metrics.Precision(thresholds=[0.3, 0.6]),
    ),
    "AUC": (lambda: tkm.AUC(), lambda: keras.metrics.AUC()),
    "MeanIoU": (
        lambda: tkm.OneHotMeanIoU(num_classes=3),
        lambda: keras.metrics.OneHotMeanIoU(num_classes=3),
    ),
    "R2Score": (lambda: tkm.R2Score(), lambda: keras.metrics.R2Score()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_epoch_logs_equal_keras_on_the_epochs_predictions(case, capsys):
    ours, theirs = CASES[case]
    model = _frozen_model()
    trainer = tkm.Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.0), "categorical_crossentropy", metrics=[ours()], device="cpu"
    )
    history = trainer.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=1, validation_data=(X[:20], Y[:20]))
    name = trainer.metrics_names[1]
    with torch.no_grad():
        y_pred = model(X).numpy()
    want = _keras_value(theirs, Y.numpy(), y_pred)
    want_val = _keras_value(theirs, Y[:20].numpy(), y_pred[:20])
    for got, expected in ((history.history[name][-1], want), (history.history[f"val_{name}"][-1], want_val)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)
    batches = history.batches[0][name]
    assert len(batches) == 4 and np.asarray(batches[0]).shape == np.asarray(want).shape
    assert name in capsys.readouterr().out  # the bar shows it (the mean of several values, as Keras' bar)
    averages = trainer.base_logger.averages[name]
    assert np.asarray(averages).shape == np.asarray(want).shape
    evaluated = trainer.evaluate(X, Y, batch_size=16, verbose=0, return_dict=True)[name]
    np.testing.assert_allclose(np.asarray(evaluated), np.asarray(want), atol=1e-6)
    assert all(math.isfinite(v) for v in np.asarray(evaluated).reshape(-1))


def test_a_refused_call_leaves_a_metric_built_by_its_first_batch_unbuilt():
    f1, r2 = tkm.F1Score(), tkm.R2Score()
    model = _frozen_model()
    trainer = tkm.Trainer(model, "sgd", "categorical_crossentropy", metrics=[f1, r2], device="cpu")
    bad_val = (X[:8], torch.zeros(8, 5))  # five columns of targets for three outputs
    with pytest.raises(ValueError, match="`validation_data`"):
        trainer.fit(X, Y, batch_size=16, verbose=0, validation_data=bad_val)
    assert not f1.built and not r2.built and trainer.metrics == []
    assert f1.state().numel() == 0
    trainer.fit(X, Y, batch_size=16, verbose=0)  # and the next call builds them from its own first batch
    assert f1.built and r2.built and f1.result().shape == (3,)
