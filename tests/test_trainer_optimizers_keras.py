"""`Trainer(model, "adam", ...)` trains as `model.compile(optimizer="adam")` does: every optimizer by name,
2 epochs of an MLP beside Keras `fit`, weights and History compared; and the learning rate a callback sets
reaches the optimizer as in Keras."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torch_keras_metrics as tkm
from torch_keras_metrics import optimizers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# float32 across 10 steps of nn.Linear against Keras' matmul-then-add: the last bit of each product
# differs, and the optimizers' normalised steps (Adam's m / sqrt(v)) carry it; 1e-5 holds with room.
TOL = 1e-5
N, BATCH, EPOCHS = 70, 16, 2
KERAS_CLASSES = {name: cls.__name__ for name, cls in ((n, type(optimizers.get(n, [torch.zeros(1, requires_grad=True)])))
                                                      for n in optimizers.valid_names())}  # fmt: skip


def _pair(keras):
    from keras import layers

    keras.utils.set_random_seed(11)
    kmodel = keras.Sequential(
        [keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")]
    )
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3), torch.nn.Softmax(-1))
    with torch.no_grad():
        for linear, dense in zip([model[0], model[2]], kmodel.layers):
            kernel, bias = dense.get_weights()
            linear.weight.copy_(torch.from_numpy(np.asarray(kernel)).T)
            linear.bias.copy_(torch.from_numpy(np.asarray(bias)))
    return kmodel, model


def _data():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(N, 4)).astype("float32")
    return x, ((x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.7)).astype("int64")


def _weights_close(kmodel, model):
    kweights = [np.asarray(w) for w in kmodel.get_weights()]
    ours = [model[0].weight.detach().T, model[0].bias.detach(), model[2].weight.detach().T, model[2].bias.detach()]
    return max(float(np.abs(k - o.numpy()).max()) for k, o in zip(kweights, ours))


@pytest.mark.parametrize("name", optimizers.valid_names())
def test_each_optimizer_name_trains_as_keras_fit(keras, name):
    x, y = _data()
    kmodel, model = _pair(keras)
    kw = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Keras' get() has no "lamb"; its class is the same optimizer with the same defaults
    kmodel.compile(optimizer=getattr(keras.optimizers, KERAS_CLASSES[name])(), **kw)
    fit = dict(batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=False)
    khist = kmodel.fit(x, y, **fit).history
    trainer = tkm.Trainer(model, name, device="cpu", **kw)
    assert type(trainer.optimizer).__name__ == KERAS_CLASSES[name]
    hist = trainer.fit(x, y, **fit).history
    assert _weights_close(kmodel, model) < TOL
    assert sorted(hist) == sorted(khist)
    for key in khist:
        assert np.allclose(hist[key], khist[key], atol=TOL), (key, hist[key], khist[key])


def test_the_learning_rate_a_callback_sets_reaches_the_optimizer_as_in_keras(keras):
    x, y = _data()
    kmodel, model = _pair(keras)
    kw = dict(loss="sparse_categorical_crossentropy")
    kmodel.compile(optimizer="adam", **kw)

    def schedule(epoch, lr):
        return lr * 0.5 if epoch else lr

    fit = dict(batch_size=BATCH, epochs=3, verbose=0, shuffle=False)
    khist = kmodel.fit(x, y, callbacks=[keras.callbacks.LearningRateScheduler(schedule)], **fit).history
    trainer = tkm.Trainer(model, "adam", device="cpu", **kw)
    hist = trainer.fit(x, y, callbacks=[tkm.LearningRateScheduler(schedule)], **fit).history
    assert _weights_close(kmodel, model) < TOL
    assert np.allclose(hist["learning_rate"], khist["learning_rate"], rtol=1e-6)
    assert np.allclose(hist["loss"], khist["loss"], atol=TOL)


def test_a_name_or_config_builds_keras_defaults_and_nothing_else_is_an_optimizer():
    model = torch.nn.Linear(4, 3)
    trainer = tkm.Trainer(model, {"class_name": "Adam", "config": {"learning_rate": 0.01}}, "mse", device="cpu")
    assert trainer.optimizer.get_config()["learning_rate"] == pytest.approx(0.01)
    assert tkm.Trainer(model, "RMSprop", "mse", device="cpu").optimizer.get_config()["rho"] == 0.9
    with pytest.raises(ValueError, match="adam"):
        tkm.Trainer(model, "adamm", "mse", device="cpu")
    with pytest.raises(TypeError, match="`optimizer` must be a torch.optim.Optimizer"):
        tkm.Trainer(model, None, "mse", device="cpu")
