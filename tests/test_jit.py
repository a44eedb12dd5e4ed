"""`Trainer(jit_compile=...)`: the steps under torch.compile give the eager numbers and compile once per shape.

Most cases compile with the `aot_eager` backend (dynamo's graph capture and AOT autograd, without
generating C++), which proves the capture and the recompiles in seconds; one case runs the default
inductor backend end to end.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch._dynamo.utils as dynamo_utils

import torch_keras_metrics as tkm
from torch_keras_metrics.jit import resolve

FAST = {"backend": "aot_eager"}
_g = torch.Generator().manual_seed(3)
X, Y, W = torch.randn(100, 8, generator=_g), torch.randint(0, 3, (100,), generator=_g), torch.rand(100, generator=_g)


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _trainer(optimizer="sgd", **kwargs):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd" else optimizer
    return tkm.Trainer(
        model, opt, "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"],
        device="cpu", **kwargs,
    )  # fmt: skip


def _close(a, b, tol=1e-5):
    assert sorted(a) == sorted(b)
    for k in a:
        assert all(math.isclose(u, v, rel_tol=tol, abs_tol=tol) for u, v in zip(a[k], b[k], strict=True)), k


def _graphs():
    return dynamo_utils.counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_compiled_fit_gives_the_eager_numbers_and_compiles_once_per_shape(optimizer):
    fit = dict(sample_weight=W, batch_size=16, verbose=0, validation_split=0.2)  # 80 + a ragged 16x5, 4
    eager = _trainer(optimizer)
    eager_history = eager.fit(X, Y, epochs=3, **fit)
    compiled = _trainer(optimizer, jit_compile=FAST)
    assert compiled.jit_compile is True
    compiled.fit(X, Y, epochs=1, **fit)
    after_one_epoch = _graphs()
    history = compiled.fit(X, Y, epochs=3, initial_epoch=1, **fit)
    assert _graphs() == after_one_epoch  # nothing compiles again, across epochs or fits
    compiled.evaluate(X, Y, batch_size=16, verbose=0)  # a test batch of 16 (validation compiled only its 4)
    after_evaluate = _graphs()
    compiled.evaluate(X, Y, batch_size=16, verbose=0)
    assert _graphs() == after_evaluate
    _close({k: v for k, v in history.history.items()}, {k: v[1:] for k, v in eager_history.history.items()})
    torch.testing.assert_close(compiled.predict(X, verbose=0), eager.predict(X, verbose=0))
    for a, b in zip(compiled.model.parameters(), eager.model.parameters()):
        torch.testing.assert_close(a, b)


def test_a_structured_model_compiles_with_the_eager_numbers():
    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body, self.digit, self.parity = torch.nn.Linear(8, 16), torch.nn.Linear(16, 3), torch.nn.Linear(16, 1)

        def forward(self, x):
            h = torch.relu(self.body(x))
            return {"digit": self.digit(h), "parity": torch.sigmoid(self.parity(h))}

    y = {"digit": Y, "parity": (Y % 2).float().unsqueeze(-1)}
    histories = []
    for jit in (False, FAST):
        model = TwoHeads()
        digit_loss = tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True)
        trainer = tkm.Trainer(
            model, torch.optim.SGD(model.parameters(), lr=0.1), {"digit": digit_loss, "parity": "binary_crossentropy"},
            metrics={"digit": ["accuracy"], "parity": ["accuracy"]}, loss_weights={"digit": 1.0, "parity": 0.5},
            device="cpu", jit_compile=jit,
        )  # fmt: skip
        histories.append(trainer.fit(X, y, batch_size=16, epochs=2, verbose=0).history)
    _close(*histories)


def test_the_default_backend_compiles_the_whole_step_with_the_eager_numbers():
    eager, compiled = _trainer(), _trainer(jit_compile=True)
    a = eager.fit(X, Y, batch_size=32, epochs=2, verbose=0, shuffle=False).history
    b = compiled.fit(X, Y, batch_size=32, epochs=2, verbose=0, shuffle=False).history
    _close(a, b)


def test_a_step_that_cannot_compile_warns_once_and_runs_eager_with_the_same_numbers():
    def no_compiler(graph, example_inputs):
        raise RuntimeError("no C++ compiler here")

    eager = _trainer().fit(X, Y, batch_size=16, epochs=2, verbose=0).history
    trainer = _trainer(jit_compile={"backend": no_compiler})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(X, Y, batch_size=16, epochs=2, verbose=0).history
    messages = [str(w.message) for w in caught if "jit_compile" in str(w.message)]
    assert len(messages) == 1 and "the train step could not be compiled" in messages[0], messages
    _close(history, eager, tol=1e-6)  # the failed first compiled call counted nothing twice


def test_auto_compiles_on_cuda_only_and_bad_values_are_named():
    assert resolve("auto", torch.device("cpu")) is None
    assert resolve("auto", torch.device("cuda")) == {"dynamic": False}
    assert resolve({"mode": "reduce-overhead"}, torch.device("cuda")) == {"dynamic": False, "mode": "reduce-overhead"}
    assert _trainer(jit_compile="auto").jit_compile is False
    for bad in ("yes", 1.5, {"modes": "max-autotune"}):
        with pytest.raises(ValueError, match="`jit_compile`"):
            _trainer(jit_compile=bad)
