"""`torch_keras_metrics.optimizers` against Keras 3 (torch backend): the same network, weights and batches,
trained by Keras' `fit` and by a plain torch loop with our optimizer, end with the same weights.

Every case trains Dense(8, relu) -> Dense(3, softmax) on 4 features, 70 samples in batches of 16 (the
last one ragged), two epochs, `shuffle=False`, sparse categorical crossentropy. Two torch twins start
from Keras' initial weights:

* `KernelTwin` computes Keras' Dense op for op (`matmul(x, kernel) + bias`, the kernel `(in, out)`), so
  its gradients are Keras' to the bit and the weights must come out *identical* on CPU: this is what
  catches an epsilon in the wrong place or a bias correction off by one step, whose effect on the
  weights is far below any tolerance.
* `LinearTwin` is the ordinary torch model (`nn.Linear`, weight `(out, in)` = Keras' kernel transposed).
  `F.linear` rounds differently from Keras' matmul-then-add in the last float32 bit, which the updates
  carry along: measured at most 9e-8 over these 10 steps, for every optimizer and option. `LINEAR_TOL`
  = 1e-6 leaves room for other BLAS builds and stays 1000x below how far the weights move.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch

from torch_keras_metrics import optimizers as tko

# Keras' torch backend converts tensors with np.array(x, copy=False): numpy 2 deprecation noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

N, FEATURES, HIDDEN, CLASSES, BATCH, EPOCHS = 70, 4, 8, 3, 16, 2
LINEAR_TOL = 1e-6
MOVED = 5e-4  # every case moves some weight at least this far, so agreement means something

_rng = np.random.default_rng(1234)
X = _rng.normal(size=(N, FEATURES)).astype(np.float32)
Y = _rng.integers(0, CLASSES, size=N)

CASES = [
    ("SGD", {}),
    ("SGD", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("Adam", {}),
    ("Adam", {"amsgrad": True}),
    ("AdamW", {}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.2, "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"momentum": 0.9}),
    ("RMSprop", {"centered": True, "momentum": 0.5}),
    ("Adagrad", {}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.01}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adamax", {}),
    ("Nadam", {}),
    ("Lion", {}),
    ("Ftrl", {}),
    (
        "Ftrl",
        {
            "learning_rate": 0.1,
            "learning_rate_power": -0.6,
            "l1_regularization_strength": 0.01,
            "l2_regularization_strength": 0.02,
            "l2_shrinkage_regularization_strength": 0.03,
            "beta": 0.1,
        },
    ),
    ("Adafactor", {}),
    ("Adafactor", {"learning_rate": 0.01, "relative_step": False, "clip_threshold": 0.5}),
    ("Lamb", {}),
    # Keras' weight decay (`var *= 1 - weight_decay * lr` before the update) in optimizers of each kind
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.1}),
    ("Adam", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("Lion", {"weight_decay": 0.5}),
    ("Ftrl", {"learning_rate": 0.1, "weight_decay": 0.1}),
    # clipping, small enough to bind (checked against an unclipped torch run)
    ("SGD", {"learning_rate": 0.1, "clipnorm": 0.05}),
    ("SGD", {"learning_rate": 0.1, "clipvalue": 0.01}),
    ("SGD", {"learning_rate": 0.1, "global_clipnorm": 0.05}),
    ("Adam", {"clipnorm": 0.01}),
    ("RMSprop", {"clipvalue": 0.002}),
    ("Adagrad", {"learning_rate": 0.1, "global_clipnorm": 0.05}),
    # the rest of Keras' BaseOptimizer
    ("Adam", {"use_ema": True}),
    (
        "SGD",
        {"learning_rate": 0.1, "momentum": 0.5, "use_ema": True, "ema_momentum": 0.8, "ema_overwrite_frequency": 3},
    ),
    ("Adam", {"loss_scale_factor": 128.0}),
    ("Adam", {"gradient_accumulation_steps": 2}),
    ("Nadam", {"gradient_accumulation_steps": 3, "use_ema": True, "ema_overwrite_frequency": 2}),
]
CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors of a few dozen floats gain nothing from threads; on a busy 2-core machine they only contend
    (a 16 x 3 softmax took 6 ms with 2 threads). Both sides run under the same setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def case_id(case):
    name, kwargs = case
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


# -- the two models ---------------------------------------------------------------------------------------


def keras_model(keras):
    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


class KernelTwin(torch.nn.Module):
    """Keras' two Dense layers op for op: `softmax(relu(x @ k1 + b1) @ k2 + b2)`, kernels `(in, out)`."""

    def __init__(self, weights, device):
        super().__init__()
        k1, b1, k2, b2 = (torch.nn.Parameter(torch.tensor(w, device=device)) for w in weights)
        self.k1, self.b1, self.k2, self.b2 = k1, b1, k2, b2  # registered in Keras' order

    def forward(self, x):
        h = torch.relu(torch.add(torch.matmul(x, self.k1), self.b1))
        return torch.softmax(torch.add(torch.matmul(h, self.k2), self.b2), dim=-1)

    def keras_weights(self):
        return [p.detach().cpu().numpy() for p in self.parameters()]


class LinearTwin(torch.nn.Sequential):
    """The ordinary torch MLP, `nn.Linear` weights being Keras' kernels transposed."""

    def __init__(self, weights, device):
        super().__init__(
            torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES), torch.nn.Softmax(-1)
        )
        k1, b1, k2, b2 = weights
        with torch.no_grad():
            for layer, k, b in ((self[0], k1, b1), (self[2], k2, b2)):
                layer.weight.copy_(torch.tensor(k.T))
                layer.bias.copy_(torch.tensor(b))
        self.to(device)

    def keras_weights(self):
        return [w.detach().cpu().numpy() for w in (self[0].weight.T, self[0].bias, self[2].weight.T, self[2].bias)]


def keras_device(model):
    return model.trainable_weights[0].value.device


def exact_tol(device):
    """Bitwise on CPU; elsewhere (Nadam's scalars are computed on the host, Keras' on the GPU) 1e-6."""
    return 0.0 if device.type == "cpu" else 1e-6


def sparse_categorical_crossentropy(probs, labels):
    """Keras' loss on probabilities: normalise, clip to [1e-7, 1 - 1e-7], -log, mean over the batch."""
    probs = probs / torch.sum(probs, dim=1, keepdim=True)
    probs = torch.clip(probs, 1e-7, 1.0 - 1e-7)
    losses = torch.nn.functional.nll_loss(torch.log(probs), labels, reduction="none")
    return torch.sum(losses) / losses.shape[0]


def batches(device):
    x, y = torch.tensor(X, device=device), torch.tensor(Y, device=device)
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, N, BATCH)]


def train(net, opt, device, epochs=EPOCHS, after_epoch=None, steps=None):
    """A plain torch loop over Keras' batches; `steps` stops early (a mid-training checkpoint)."""
    done = 0
    for epoch in range(epochs):
        for x, y in batches(device):
            if steps is not None and done == steps:
                return
            opt.zero_grad()
            loss = opt.scale_loss(sparse_categorical_crossentropy(net(x), y))
            loss.backward()
            opt.step()
            done += 1
        if after_epoch is not None:
            after_epoch(epoch)
    opt.finalize_variable_values()  # what Keras' fit does when it ends (copies the EMA weights in)


def max_diff(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


def keras_fit(keras, model, optimizer, **fit_kwargs):
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    fit_kwargs.setdefault("epochs", EPOCHS)
    model.fit(X, Y, batch_size=BATCH, shuffle=False, verbose=0, **fit_kwargs)
    return model.get_weights()


# -- every optimizer and option follows Keras ---------------------------------------------------------------


@pytest.mark.parametrize("name, kwargs", CASES, ids=[case_id(c) for c in CASES])
def test_training_follows_keras(keras, name, kwargs):
    model = keras_model(keras)
    initial, device = model.get_weights(), keras_device(model)
    expected = keras_fit(keras, model, getattr(keras.optimizers, name)(**kwargs))
    assert max_diff(expected, initial) > MOVED

    kernel_twin = KernelTwin(initial, device)
    train(kernel_twin, getattr(tko, name)(kernel_twin.parameters(), **kwargs), device)
    assert max_diff(kernel_twin.keras_weights(), expected) <= exact_tol(device)

    linear_twin = LinearTwin(initial, device)
    train(linear_twin, getattr(tko, name)(linear_twin.parameters(), **kwargs), device)
    assert max_diff(linear_twin.keras_weights(), expected) <= LINEAR_TOL

    if any(k in kwargs for k in CLIPS):  # the clip bound: without it the weights end elsewhere
        unclipped = KernelTwin(initial, device)
        rest = {k: v for k, v in kwargs.items() if k not in CLIPS}
        train(unclipped, getattr(tko, name)(unclipped.parameters(), **rest), device)
        assert max_diff(unclipped.keras_weights(), expected) > 1e-4


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_learning_rate_set_between_epochs_follows_keras(keras, name):
    """`param_groups[0]["lr"] = ...` (what our callbacks do) is Keras' `optimizer.learning_rate = ...`."""
    kwargs = {"learning_rate": 0.01, "momentum": 0.9} if name == "SGD" else {"learning_rate": 0.01}
    model = keras_model(keras)
    initial, device = model.get_weights(), keras_device(model)
    model.compile(optimizer=getattr(keras.optimizers, name)(**kwargs), loss="sparse_categorical_crossentropy")
    model.fit(X, Y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    model.optimizer.learning_rate = 0.1
    model.fit(X, Y, batch_size=BATCH, initial_epoch=1, epochs=2, shuffle=False, verbose=0)
    expected = model.get_weights()

    def set_lr(epoch):
        opt.param_groups[0]["lr"] = 0.1

    net = KernelTwin(initial, device)
    opt = getattr(tko, name)(net.parameters(), **kwargs)
    train(net, opt, device, after_epoch=set_lr)
    assert max_diff(net.keras_weights(), expected) <= exact_tol(device)
    assert opt.learning_rate == model.optimizer.get_config()["learning_rate"]

    unchanged = KernelTwin(initial, device)  # the change mattered
    train(unchanged, getattr(tko, name)(unchanged.parameters(), **kwargs), device)
    assert max_diff(unchanged.keras_weights(), expected) > 1e-3


def test_torch_scheduler_follows_keras_learning_rate_scheduler(keras):
    """A torch `StepLR` drives our Adam as Keras' `LearningRateScheduler` drives Keras' Adam."""
    model = keras_model(keras)
    initial, device = model.get_weights(), keras_device(model)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 * 0.2**epoch)
    expected = keras_fit(keras, model, keras.optimizers.Adam(0.01), callbacks=[schedule])

    net = KernelTwin(initial, device)
    opt = tko.Adam(net.parameters(), learning_rate=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.2)
    train(net, opt, device, after_epoch=lambda epoch: scheduler.step())
    assert max_diff(net.keras_weights(), expected) <= exact_tol(device)


def test_param_groups_replace_exclude_from_weight_decay(keras):
    """A group with `weight_decay=None` for the biases is Keras' `exclude_from_weight_decay(var_names=["bias"])`."""
    model = keras_model(keras)
    initial, device = model.get_weights(), keras_device(model)
    optimizer = keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.3)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    expected = keras_fit(keras, model, optimizer)

    net = KernelTwin(initial, device)
    groups = [{"params": [net.k1, net.k2]}, {"params": [net.b1, net.b2], "weight_decay": None}]
    train(net, tko.AdamW(groups, learning_rate=0.01, weight_decay=0.3), device)
    assert max_diff(net.keras_weights(), expected) <= exact_tol(device)


# -- checkpoints ----------------------------------------------------------------------------------------------

ROUND_TRIP = [
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("Adam", {"amsgrad": True, "use_ema": True, "ema_overwrite_frequency": 4, "gradient_accumulation_steps": 3}),
    ("RMSprop", {"centered": True, "momentum": 0.5}),
    ("Adagrad", {}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adamax", {}),
    ("Nadam", {}),
    ("Lion", {}),
    ("Ftrl", {"beta": 0.1}),
    ("Adafactor", {}),
    ("Lamb", {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("name, kwargs", ROUND_TRIP, ids=[case_id(c) for c in ROUND_TRIP])
def test_state_dict_round_trip_mid_training_resumes_exactly(keras, name, kwargs):
    """Stop after 7 of 10 steps (mid-epoch, mid-accumulation), save, load into fresh objects, finish: Keras' end."""
    model = keras_model(keras)
    initial, device = model.get_weights(), keras_device(model)
    expected = keras_fit(keras, model, getattr(keras.optimizers, name)(**kwargs))

    first = KernelTwin(initial, device)
    opt = getattr(tko, name)(first.parameters(), **kwargs)
    train(first, opt, device, steps=7)
    assert opt.iterations == (7 // 3 if "gradient_accumulation_steps" in kwargs else 7)
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed = KernelTwin([np.zeros_like(w) for w in initial], device)
    resumed.load_state_dict(saved["model"])
    opt = getattr(tko, name)(resumed.parameters(), **kwargs)
    opt.load_state_dict(saved["optimizer"])
    assert opt.param_groups[0]["iterations"] == 7
    done = 0
    for _ in range(EPOCHS):
        for x, y in batches(device):
            done += 1
            if done <= 7:
                continue
            opt.zero_grad()
            sparse_categorical_crossentropy(resumed(x), y).backward()
            opt.step()
    opt.finalize_variable_values()
    assert max_diff(resumed.keras_weights(), expected) <= exact_tol(device)


# -- get, configs ---------------------------------------------------------------------------------------------

CLASS_NAMES = [
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Lion",
    "Ftrl",
    "Adafactor",
    "Lamb",
]


def a_param():
    return torch.nn.Parameter(torch.zeros(2, 3))


def without_name(config):
    return {k: v for k, v in config.items() if k != "name"}


@pytest.mark.parametrize("cls_name", CLASS_NAMES)
def test_default_config_is_keras(keras, cls_name):
    ours = getattr(tko, cls_name)([a_param()]).get_config()
    theirs = getattr(keras.optimizers, cls_name)().get_config()
    assert list(ours) == list(theirs)  # Keras' keys, in Keras' order
    assert without_name(ours) == without_name(theirs)
    assert ours["name"] == re.sub(r"_\d+$", "", theirs["name"])  # Keras numbers its second "adam" "adam_1"


def test_config_with_every_argument_is_keras(keras):
    kwargs = {
        "learning_rate": 0.01,
        "beta_1": 0.8,
        "beta_2": 0.99,
        "epsilon": 1e-5,
        "amsgrad": True,
        "weight_decay": 0.01,
        "clipnorm": 1.0,
        "use_ema": True,
        "ema_momentum": 0.9,
        "ema_overwrite_frequency": 5,
        "loss_scale_factor": 2.0,
        "gradient_accumulation_steps": 2,
        "name": "my_adam",
    }
    assert tko.Adam([a_param()], **kwargs).get_config() == keras.optimizers.Adam(**kwargs).get_config()


@pytest.mark.parametrize("name, kwargs", CASES[::3], ids=[case_id(c) for c in CASES[::3]])
def test_from_config_round_trip_trains_identically(keras, name, kwargs):
    model = keras_model(keras)
    initial, device = model.get_weights(), keras_device(model)
    original = KernelTwin(initial, device)
    opt = getattr(tko, name)(original.parameters(), **kwargs)
    copy = KernelTwin(initial, device)
    rebuilt = type(opt).from_config(opt.get_config(), copy.parameters())
    assert type(rebuilt) is type(opt) and rebuilt.get_config() == opt.get_config()
    train(original, opt, device)
    train(copy, rebuilt, device)
    assert max_diff(copy.keras_weights(), original.keras_weights()) == 0.0
    # and from Keras' own optimizer: its config, its serialized form
    keras_opt = getattr(keras.optimizers, name)(**kwargs)
    from_keras = tko.get(keras_opt, [a_param()])
    assert type(from_keras) is type(opt) and without_name(from_keras.get_config()) == without_name(
        keras_opt.get_config()
    )
    serialized = tko.deserialize(keras.optimizers.serialize(keras_opt), [a_param()])
    assert serialized.get_config() == from_keras.get_config()


def test_get_names_as_keras(keras):
    names = tko.valid_names()
    assert names == sorted(cls.lower() for cls in CLASS_NAMES)
    for name in names:
        ours = tko.get(name, [a_param()])
        assert type(ours).__name__.lower() == name
        if name == "lamb":  # Keras ships Lamb but its `get` does not know it; ours does
            continue
        theirs = keras.optimizers.get(name)
        assert type(ours).__name__ == type(theirs).__name__
        assert without_name(ours.get_config()) == without_name(theirs.get_config())
    for spelling in ("ADAM", "Adam", "adam", "RMSprop", "rmsprop", "AdamW", "sgd", "SGD"):
        assert type(tko.get(spelling, [a_param()])).__name__ == type(keras.optimizers.get(spelling)).__name__


def test_get_configs_instances_and_refusals(keras):
    opt = tko.get({"class_name": "Adam", "config": {"learning_rate": 0.01, "amsgrad": True}}, [a_param()])
    assert isinstance(opt, tko.Adam) and opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["amsgrad"]
    assert tko.get({"class_name": "rmsprop"}, [a_param()]).get_config()["rho"] == 0.9
    assert tko.get(opt) is opt and tko.get(opt, [a_param()]) is opt
    plain = torch.optim.SGD([a_param()], lr=0.1)
    assert tko.get(plain) is plain
    assert tko.get(None) is None and keras.optimizers.get(None) is None
    with pytest.raises(ValueError, match="Valid names.*adadelta.*sgd"):
        tko.get("adamm", [a_param()])
    with pytest.raises(ValueError, match="Valid names"):
        tko.get("muon", [a_param()])  # Keras has it; we do not (yet)
    with pytest.raises(ValueError, match="Could not interpret"):
        tko.get(42, [a_param()])
    with pytest.raises(ValueError, match="needs the parameters"):
        tko.get("adam")


def test_arguments_are_checked_as_keras_checks_them(keras):
    refused = [
        ("SGD", {"clipnorm": 1.0, "clipvalue": 1.0}),
        ("AdamW", {"weight_decay": None}),
        ("SGD", {"momentum": 1.5}),
        ("Adam", {"gradient_accumulation_steps": 1}),
        ("Adam", {"use_ema": True, "ema_momentum": 2.0}),
        ("Lion", {"beta_1": 0.0}),
        ("Ftrl", {"learning_rate_power": 0.5}),
        ("Adam", {"betas": (0.9, 0.99)}),
        ("Adam", {"learning_rate": "fast"}),
    ]
    for name, kwargs in refused:
        with pytest.raises(ValueError):
            getattr(keras.optimizers, name)(**kwargs)
        with pytest.raises(ValueError):
            getattr(tko, name)([a_param()], **kwargs)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    with pytest.raises(ValueError, match="schedules are not supported"):
        tko.Adam.from_config(keras.optimizers.Adam(schedule).get_config(), [a_param()])


# -- torch conventions ----------------------------------------------------------------------------------------


def test_torch_conventions():
    w, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))
    opt = tko.Adam([w], learning_rate=0.1)
    opt.step()  # no gradients yet: nothing happens, nothing is counted (torch's way; Keras raises)
    assert opt.iterations == 0 and not opt.state[w]
    w.grad = torch.ones(2, 2)
    opt.step()
    opt.add_param_group({"params": [b], "lr": 0.5})  # joins at the optimizer's iteration
    assert [g["iterations"] for g in opt.param_groups] == [1, 1]
    opt.learning_rate = 0.25  # Keras' setter: every group
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
    assert opt.learning_rate == 0.25
    assert opt.step(lambda: torch.tensor(3.0)) == torch.tensor(3.0)  # a closure's loss comes back
    assert opt.iterations == 2
    assert "velocity_hat" not in opt.state[w]
    opt.param_groups[0]["amsgrad"] = True  # switched on mid-training: its slot appears
    opt.step()
    assert "velocity_hat" in opt.state[w]


NO_SYNC = [(name, {}) for name in CLASS_NAMES] + [
    ("Adam", {"clipnorm": 1.0, "weight_decay": 0.1}),
    ("Adam", {"global_clipnorm": 1.0, "use_ema": True, "ema_overwrite_frequency": 2}),
    ("Nadam", {"clipvalue": 0.1, "loss_scale_factor": 4.0, "gradient_accumulation_steps": 2}),
]


def test_step_reads_nothing_back_from_the_tensors(monkeypatch):
    """No `.item()`, `float()`, `bool()`, ... on a tensor in `step()`: on a GPU, nothing waits for the device."""
    net = LinearTwin([np.full(s, 0.1, np.float32) for s in ((4, 8), (8,), (8, 3), (3,))], torch.device("cpu"))
    x, y = torch.tensor(X[:BATCH]), torch.tensor(Y[:BATCH])
    opts = [getattr(tko, name)(net.parameters(), **kwargs) for name, kwargs in NO_SYNC]
    sparse_categorical_crossentropy(net(x), y).backward()

    def refuse(*args, **kwargs):
        raise AssertionError("step() read a tensor back to the host")

    for method in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, method, refuse)
    with pytest.raises(AssertionError, match="read a tensor back"):  # the trap works
        float(torch.ones(()))
    for _ in range(3):
        for opt in opts:
            opt.step()
