"""Several inputs and outputs against Keras 3 (torch backend): the same network, weights and batches.

A functional Keras model with inputs `a` and `b` and outputs `digit` (3 classes) and `parity` (binary)
is trained beside its torch twin, `forward(a, b)` returning a dict (or a list). Every History key and
value must match Keras, names included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torch_keras_metrics import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOL = 1e-5
N, BATCH, EPOCHS, LR = 70, 16, 2, 0.1


class Twin(torch.nn.Module):
    """The Keras model below in torch: `forward(a, b)` -> {"digit": softmax(3), "parity": sigmoid(1)}."""

    def __init__(self, as_list: bool = False) -> None:
        super().__init__()
        self.hidden, self.digit, self.parity = torch.nn.Linear(7, 8), torch.nn.Linear(8, 3), torch.nn.Linear(8, 1)
        self.as_list = as_list

    def forward(self, a, b):
        h = torch.relu(self.hidden(torch.cat([a, b], -1)))
        digit, parity = self.digit(h).softmax(-1), torch.sigmoid(self.parity(h))
        return [digit, parity] if self.as_list else {"digit": digit, "parity": parity}


def _keras_model(keras, dict_io=True):
    from keras import layers

    keras.utils.set_random_seed(3)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = layers.Dense(8, activation="relu", name="hidden")(layers.Concatenate()([a, b]))
    digit = layers.Dense(3, activation="softmax", name="digit")(h)
    parity = layers.Dense(1, activation="sigmoid", name="parity")(h)
    if dict_io:
        return keras.Model({"a": a, "b": b}, {"digit": digit, "parity": parity})
    return keras.Model([a, b], [digit, parity])


def _twin(kmodel, as_list=False):
    model = Twin(as_list)
    with torch.no_grad():
        for name in ("hidden", "digit", "parity"):
            kernel, bias = kmodel.get_layer(name).get_weights()
            getattr(model, name).weight.copy_(torch.from_numpy(np.asarray(kernel)).T)
            getattr(model, name).bias.copy_(torch.from_numpy(np.asarray(bias)))
    return model


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")
    digit = ((a[:, 0] > 0).astype("int64") + (b[:, 0] > 0.5)).astype("int64")
    parity = (a[:, 1] + b[:, 1] > 0).astype("float32")[:, None]
    return {"a": a, "b": b}, {"digit": digit, "parity": parity}, rng.uniform(0.5, 2.0, size=n).astype("float32")


def _close(got, want):
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k in want:
        assert np.allclose(got[k], want[k], atol=TOL), (k, got[k], want[k])


def test_dict_inputs_and_outputs_with_loss_weights_metrics_and_sample_weights_match_keras(keras):
    x, y, w = _data()
    xv, yv, wv = _data(1, 30)
    kw = dict(
        loss={"digit": "sparse_categorical_crossentropy", "parity": "binary_crossentropy"},
        loss_weights={"digit": 1.0, "parity": 0.5},
        metrics={"digit": ["accuracy"], "parity": ["accuracy", "mse"]},
        weighted_metrics={"digit": ["accuracy"], "parity": ["accuracy"]},
    )
    sample_weight = {"digit": w, "parity": np.ones_like(w)}
    val_weight = {"digit": wv, "parity": wv}
    kmodel = _keras_model(keras)
    model = _twin(kmodel)
    kmodel.compile(keras.optimizers.SGD(learning_rate=LR), **kw)
    fit = dict(batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=False)
    khist = kmodel.fit(x, y, sample_weight=sample_weight, validation_data=(xv, yv, val_weight), **fit).history
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=LR), device="cpu", **kw)
    hist = trainer.fit(x, y, sample_weight=sample_weight, validation_data=(xv, yv, val_weight), **fit).history
    assert "digit_weighted_accuracy" in hist and "val_parity_mse" in hist
    _close(hist, khist)
    keval = kmodel.evaluate(xv, yv, sample_weight=val_weight, verbose=0, return_dict=True)
    _close(trainer.evaluate(xv, yv, sample_weight=val_weight, verbose=0, return_dict=True), keval)
    kpred, pred = kmodel.predict(xv, verbose=0), trainer.predict(xv, verbose=0)
    assert sorted(pred) == ["digit", "parity"] and pred["digit"].shape == (30, 3)
    for k in kpred:
        assert np.allclose(pred[k].numpy(), kpred[k], atol=TOL)


def test_one_loss_for_every_output_and_one_sample_weight_array_match_keras(keras):
    x, y, w = _data()
    y = {"digit": y["digit"].astype("float32")[:, None], "parity": y["parity"]}
    kmodel = _keras_model(keras)
    model = _twin(kmodel)
    kmodel.compile(keras.optimizers.SGD(learning_rate=LR), loss="mse", weighted_metrics={"parity": ["mae"]})
    fit = dict(batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=False, sample_weight=w, validation_split=0.25)
    khist = kmodel.fit(x, y, **fit).history
    assert "val_parity_mae" in khist  # the dict arrays were split: the last quarter validates
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=LR), "mse", device="cpu",
                      weighted_metrics={"parity": ["mae"]})  # fmt: skip
    _close(trainer.fit(x, y, **fit).history, khist)


def test_list_inputs_and_outputs_match_keras(keras):
    x, y, _ = _data()
    xl, yl = [x["a"], x["b"]], [y["digit"], y["parity"]]
    kw = dict(loss=["sparse_categorical_crossentropy", "binary_crossentropy"], metrics=[["accuracy"], ["accuracy"]])
    kmodel = _keras_model(keras, dict_io=False)
    model = _twin(kmodel, as_list=True)
    kmodel.compile(keras.optimizers.SGD(learning_rate=LR), loss_weights=[0.3, 0.7], **kw)
    fit = dict(batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=False)
    khist = kmodel.fit(xl, yl, **fit).history
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=LR), loss_weights=[0.3, 0.7], device="cpu", **kw)
    hist = trainer.fit(xl, yl, **fit).history
    # Keras names a functional model's list outputs by their layers; an unnamed torch list is named
    # after its losses, as Keras names a subclassed model's (checked below).
    renamed = {
        "accuracy": "digit_accuracy",
        "accuracy_1": "parity_accuracy",
        "sparse_categorical_crossentropy_loss": "digit_loss",
        "binary_crossentropy_loss": "parity_loss",
        "loss": "loss",
    }
    _close({renamed[k]: v for k, v in hist.items()}, khist)


def test_unnamed_list_outputs_are_named_as_keras_names_a_subclassed_models(keras):
    from keras import layers

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.h, self.d, self.p = layers.Dense(8, "relu"), layers.Dense(3, "softmax"), layers.Dense(1, "sigmoid")

        def call(self, x):
            z = self.h(x)
            return [self.d(z), self.p(z)]

    class TorchSub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.h, self.d, self.p = torch.nn.Linear(4, 8), torch.nn.Linear(8, 3), torch.nn.Linear(8, 1)

        def forward(self, x):
            z = torch.relu(self.h(x))
            return self.d(z).softmax(-1), torch.sigmoid(self.p(z))

    x, y, _ = _data()
    yl = [y["digit"], y["parity"]]
    kw = dict(loss=["sparse_categorical_crossentropy", "binary_crossentropy"], metrics=[["accuracy"], ["accuracy"]])
    ksub = Sub()
    ksub.compile("sgd", **kw)
    keys = sorted(ksub.fit(x["a"], yl, batch_size=BATCH, epochs=1, verbose=0).history)
    model = TorchSub()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), device="cpu", **kw)
    assert sorted(trainer.fit(x["a"], yl, batch_size=BATCH, verbose=0).history) == keys


# --------------------------------------------------------------------------- steps and class weights
def _binary_pair(keras, classes):
    from keras import layers

    keras.utils.set_random_seed(5)
    kmodel = keras.Sequential(
        [keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(classes, activation=None)]
    )
    head = torch.nn.Sigmoid() if classes == 1 else torch.nn.Softmax(-1)
    kmodel.add(layers.Activation("sigmoid" if classes == 1 else "softmax"))
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, classes), head)
    with torch.no_grad():
        for linear, dense in zip([model[0], model[2]], kmodel.layers[:2]):
            kernel, bias = dense.get_weights()
            linear.weight.copy_(torch.from_numpy(np.asarray(kernel)).T)
            linear.bias.copy_(torch.from_numpy(np.asarray(bias)))
    return kmodel, model


@pytest.mark.filterwarnings("ignore:.*ran out")
@pytest.mark.parametrize("steps", [3, 7])
def test_steps_per_epoch_shorter_and_longer_than_the_data_match_keras(keras, steps):
    x, y, _ = _data()
    x, y = x["a"], y["digit"]  # 70 samples: 5 batches of 16 (the last of 6)
    kmodel, model = _binary_pair(keras, 3)
    kw = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    kmodel.compile(keras.optimizers.SGD(learning_rate=LR), **kw)
    fit = dict(batch_size=BATCH, epochs=3, verbose=0, shuffle=False, steps_per_epoch=steps)
    val = dict(validation_data=(x[:40], y[:40]), validation_steps=2, validation_batch_size=8)
    khist = kmodel.fit(x, y, **fit, **val).history
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=LR), device="cpu", **kw)
    hist = trainer.fit(x, y, **fit, **val)
    want = [[16, 16, 16], [16, 6], [16, 16, 16]] if steps == 3 else [[16, 16, 16, 16, 6]] * 3
    assert [b["size"] for b in hist.batches] == want
    _close(hist.history, khist)
    keval = kmodel.evaluate(x, y, batch_size=16, steps=2, verbose=0, return_dict=True)
    _close(trainer.evaluate(x, y, batch_size=16, steps=2, verbose=0, return_dict=True), keval)
    for batch_size in (16, None):  # without one, Keras batches ceil(samples / steps)
        got = trainer.predict(x, batch_size=batch_size, steps=2, verbose=0)
        assert np.allclose(got.numpy(), kmodel.predict(x, batch_size=batch_size, steps=2, verbose=0), atol=TOL)


@pytest.mark.parametrize("classes, onehot", [(1, False), (3, False), (3, True)])
def test_class_weight_matches_keras(keras, classes, onehot):
    x, y, _ = _data()
    x = x["a"]
    labels = y["parity"] if classes == 1 else y["digit"]
    loss = "binary_crossentropy" if classes == 1 else "sparse_categorical_crossentropy"
    if onehot:  # one-hot targets are read by their argmax
        labels, loss = np.eye(3, dtype="float32")[labels], "categorical_crossentropy"
    class_weight = {0: 0.5, 1: 3.0} if classes == 1 else {0: 2.0, 2: 0.25}  # class 1 missing: weighs 1.0
    kmodel, model = _binary_pair(keras, classes)
    kw = dict(loss=loss, metrics=["accuracy"], weighted_metrics=["accuracy"])
    kmodel.compile(keras.optimizers.SGD(learning_rate=LR), **kw)
    fit = dict(batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=False, class_weight=class_weight)
    khist = kmodel.fit(x, labels, validation_data=(x[:30], labels[:30]), **fit).history
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=LR), device="cpu", **kw)
    _close(trainer.fit(x, labels, validation_data=(x[:30], labels[:30]), **fit).history, khist)


def test_class_weight_refusals_match_keras(keras):
    x, y, w = _data()
    model = Twin()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=LR), loss="mse", device="cpu")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="single output"):
        trainer.fit(x, y, class_weight={0: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="sample_weight"):
        trainer.fit(x, y["digit"], sample_weight=w, class_weight={0: 2.0}, verbose=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# --------------------------------------------------------------------------- structure errors and dict batches
def _state(trainer, model):
    return [p.detach().clone() for p in model.parameters()], [m.state() for m in trainer.metrics]


@pytest.mark.parametrize(
    "kwargs, y_of, match",
    [
        (dict(loss={"digit": "sparse_categorical_crossentropy"}), None, r"No loss for output\(s\) 'parity'"),
        (
            dict(loss={"digit": "mse", "parity": "mse", "extra": "mse"}),
            None,
            r"not an output of the model: \['extra'\]",
        ),
        (dict(loss=["mse"]), None, r"`loss` is a list of 1, but the model has outputs \['digit', 'parity'\]"),
        (dict(loss="mse", metrics={"digits": ["mae"]}), None, r"not an output of the model: \['digits'\]"),
        (dict(loss="mse"), lambda y: {"digit": y["digit"]}, r"missing: \['parity'\]"),
        (dict(loss="mse", loss_weights=[1.0]), None, r"`loss_weights` is a list of 1"),
    ],
)
def test_structure_errors_name_both_sides_and_change_nothing(kwargs, y_of, match):
    x, y, _ = _data()
    y = {"digit": y["digit"].astype("float32")[:, None], "parity": y["parity"]}
    model = Twin()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=LR), device="cpu", **kwargs)
    before = _state(trainer, model)
    with pytest.raises(ValueError, match=match):
        trainer.fit(x, y if y_of is None else y_of(y), batch_size=BATCH, verbose=0)
    after = _state(trainer, model)
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0])) and after[1] == []


def test_a_loader_of_dict_batches_names_its_targets_with_target_keys():
    x, y, _ = _data()
    rows = [
        {"a": torch.from_numpy(x["a"][i]), "b": torch.from_numpy(x["b"][i]), "label": torch.tensor(y["digit"][i])}
        for i in range(N)
    ]
    loader = torch.utils.data.DataLoader(rows, batch_size=BATCH)

    class Digit(Twin):
        def forward(self, a, b):
            return super().forward(a, b)["digit"]

    torch.manual_seed(0)
    model = Digit()
    kw = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"], device="cpu")
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=LR), target_keys="label", **kw)
    got = trainer.fit(loader, epochs=EPOCHS, verbose=0).history
    torch.manual_seed(0)
    twin = Digit()
    arrays = Trainer(twin, torch.optim.SGD(twin.parameters(), lr=LR), **kw)
    want = arrays.fit(x, y["digit"], batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0).history
    assert sorted(got) == ["accuracy", "loss"]
    _close(got, want)
    _close(
        trainer.evaluate(loader, verbose=0, return_dict=True),
        trainer.evaluate({**x, "label": y["digit"]}, batch_size=BATCH, verbose=0, return_dict=True),
    )
    assert trainer.predict(loader, verbose=0).shape == (N, 3)
