"""The objective: Keras' per-sample losses, Keras' reduction, and the loss as the Trainer calls it.

The per-sample functions return the numbers `keras.losses.<name>` returns, one value per sample (the
class or last axis reduced). They serve as metrics (`get("mae")`, `get("binary_crossentropy")`, ...)
and as the Trainer's Keras-named losses. Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does.
`KerasLoss` is one by name reduced as Keras reduces (`keras_reduce`); `Objective` is whatever loss the
Trainer was given, called the same way.

>>> import torch
>>> mean_absolute_error(torch.tensor([[0., 1.], [0., 0.]]), torch.tensor([[1., 1.], [1., 0.]]))
tensor([0.5000, 0.5000])
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Mapping
from typing import Any, Callable

import torch
import torch.nn.functional as tnn

from ._checks import as_tensor, squeeze_or_expand_to_same_rank
from .structure import Outputs

__all__ = [
    "mean_absolute_error",
    "mean_squared_error",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "CompileLoss",
    "KerasLoss",
    "Objective",
    "keras_reduce",
]

EPSILON = 1e-7  # keras.backend.epsilon()


def _pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = as_tensor(y_pred, "y_pred")
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    return y_true.to(y_pred.dtype), y_pred


def _same_shape(y_true: torch.Tensor, y_pred: torch.Tensor, loss: str) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{loss}: `y_true` and `y_pred` must have the same shape, got y_true {tuple(y_true.shape)} "
            f"and y_pred {tuple(y_pred.shape)}."
        )


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(|y_true - y_pred|, axis=-1)`."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    return (y_true - y_pred).abs().mean(-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean((y_true - y_pred) ** 2, axis=-1)`."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    return (y_true - y_pred).square().mean(-1)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> torch.Tensor:
    """Element-wise binary cross-entropy, averaged over the last axis.

    >>> binary_crossentropy(torch.tensor([[0., 1.]]), torch.tensor([[0.4, 0.6]]))
    tensor([0.5108])
    """
    y_true, y_pred = _pair(y_true, y_pred)
    _same_shape(y_true, y_pred, "binary_crossentropy")
    if from_logits:
        values = tnn.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        values = tnn.binary_cross_entropy(y_pred.clamp(EPSILON, 1.0 - EPSILON), y_true, reduction="none")
    return values.mean(-1)


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> torch.Tensor:
    """Cross-entropy against one-hot (or soft) labels; probabilities are renormalised first.

    >>> categorical_crossentropy(torch.tensor([[0., 1., 0.]]), torch.tensor([[0.05, 0.95, 0.]]))
    tensor([0.0513])
    """
    y_true, y_pred = _pair(y_true, y_pred)
    _same_shape(y_true, y_pred, "categorical_crossentropy")
    if from_logits:
        log_prob = tnn.log_softmax(y_pred, dim=-1)
    else:
        probs = y_pred / y_pred.sum(-1, keepdim=True)
        log_prob = probs.clamp(EPSILON, 1.0 - EPSILON).log()
    return -(y_true * log_prob).sum(-1)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> torch.Tensor:
    """Cross-entropy against integer labels (a trailing size-1 label axis is dropped).

    >>> sparse_categorical_crossentropy(torch.tensor([1]), torch.tensor([[0.05, 0.95, 0.]]))
    tensor([0.0513])
    """
    y_pred = as_tensor(y_pred, "y_pred")
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = as_tensor(y_true, "y_true", y_pred.device)
    if y_true.dim() == y_pred.dim() and y_true.dim() > 0 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_pred.dim() < 1 or tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(
            f"sparse_categorical_crossentropy: `y_true` must have y_pred's shape without its class axis, "
            f"got y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}."
        )
    target = y_true.to(torch.int64)
    if from_logits:
        log_prob = tnn.log_softmax(y_pred, dim=-1)
    else:
        log_prob = (y_pred / y_pred.sum(-1, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON).log()
    return -log_prob.gather(-1, target.unsqueeze(-1)).squeeze(-1)


# Keras' names for these losses (as `compile(loss=...)` and `metrics=[...]` accept them).
BY_NAME = {
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "bce": binary_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


_FROM_LOGITS = {sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy}


class KerasLoss:
    """A Keras loss by name: per-sample values, reduced as Keras' `"sum_over_batch_size"`.

    Per batch `sum(loss_i * w_i) / batch_size`, so sample weights scale the loss but do not
    renormalise it. Call it as `(y_pred, y_true, sample_weight=None)` like a torch loss.

    >>> KerasLoss("categorical_crossentropy", from_logits=True)
    KerasLoss('categorical_crossentropy', from_logits=True)
    """

    def __init__(self, name: str, from_logits: bool = False) -> None:
        if name not in BY_NAME:
            raise ValueError(f"Unknown loss {name!r}. Keras names accepted: {', '.join(sorted(BY_NAME))}.")
        self.name, self.from_logits = name, bool(from_logits)
        self.fn = BY_NAME[name]
        if from_logits and self.fn not in _FROM_LOGITS:
            raise ValueError(f"{name!r} takes no `from_logits`.")
        self._kwargs = {"from_logits": True} if from_logits else {}

    def __call__(self, y_pred: torch.Tensor, y_true: torch.Tensor, sample_weight: Any = None) -> torch.Tensor:
        if isinstance(y_true, torch.Tensor):
            # Keras' LossFunctionWrapper first: (N,) targets meet an (N, 1) output as (N, 1).
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        values = self.fn(y_true, y_pred, **self._kwargs)
        return keras_reduce(values, sample_weight)

    def __repr__(self) -> str:
        return f"KerasLoss({self.name!r}" + (", from_logits=True)" if self.from_logits else ")")


def keras_reduce(values: torch.Tensor, sample_weight: Any = None) -> torch.Tensor:
    """Keras' `"sum_over_batch_size"`: `sum(values * sample_weight) / values.numel()`.

    >>> keras_reduce(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0]))
    tensor(0.5000)
    """
    if sample_weight is None:
        return values.mean()
    weight = sample_weight.to(values.dtype)
    values, weight = squeeze_or_expand_to_same_rank(values, weight)
    weighted = values * weight
    return weighted.sum() / weighted.numel()


class Objective:
    """The loss as the Trainer calls it: `(y_pred, y_true, sample_weight) -> scalar`, Keras' reduction.

    `loss` is a Keras name, a `KerasLoss`, a torch loss module or a callable `(y_pred, y_true)`. Sample
    weights need per-sample values: a torch loss module is copied with `reduction="none"` for them.
    `checked` is the call for a first batch, turning a shape mismatch into an error that names both shapes.

    >>> Objective("mse")(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]]), None)
    tensor(5.)
    """

    def __init__(self, loss: Any) -> None:
        self.identity = loss  # what `get("accuracy", loss=...)` looks at
        self.per_sample: Callable | None = None
        if isinstance(loss, str):
            loss = KerasLoss(loss)
        if isinstance(loss, KerasLoss):
            self.fn: Callable = loss
            self.keras = True
            self.name = loss.name
            return
        if not callable(loss):
            raise TypeError(f"`loss` must be a Keras loss name, a torch loss module or a callable, got {loss!r}.")
        self.fn, self.keras = loss, False
        self.name = getattr(loss, "__name__", type(loss).__name__)
        if isinstance(loss, torch.nn.Module) and getattr(loss, "reduction", None) in ("mean", "sum"):
            self.per_sample = copy.copy(loss)
            self.per_sample.reduction = "none"

    def __call__(self, y_pred: torch.Tensor, y_true: Any, sample_weight: Any) -> torch.Tensor:
        if self.keras:
            return self.fn(y_pred, y_true, sample_weight)
        if sample_weight is None:
            out = self.fn(y_pred, y_true)
            return out if out.dim() == 0 else out.mean()
        out = (self.per_sample or self.fn)(y_pred, y_true)
        if out.dim() == 0:
            raise ValueError(
                f"Sample weights need one loss value per sample, but the loss {self.name} returned a scalar. "
                "Use a torch loss module (its reduction is switched to 'none') or a function returning "
                "per-sample values."
            )
        if out.dim() > 1:
            out = out.reshape(out.shape[0], -1).mean(1)
        return keras_reduce(out, sample_weight)

    def checked(self, y_pred: Any, y: Any, w: Any) -> torch.Tensor:
        """The loss of a first batch: a model output or targets that do not fit the loss raise, naming both."""
        if not isinstance(y_pred, torch.Tensor):
            raise TypeError(f"The model must return one tensor, got {type(y_pred).__name__}.")
        if y is None:
            raise ValueError("No targets: pass `y`, or a Dataset/DataLoader yielding (x, y).")
        y_shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        try:
            with warnings.catch_warnings():
                # torch's losses only warn when targets broadcast against the output: refuse instead
                warnings.filterwarnings("error", message="Using a target size", category=UserWarning)
                loss = self(y_pred, y, w)
        except (ValueError, RuntimeError, IndexError, UserWarning) as err:
            raise ValueError(
                f"The model's output of shape {tuple(y_pred.shape)} does not fit the loss {self.name} "
                f"with targets of shape {y_shape}: {err}"
            ) from err
        if loss.dim() != 0:
            raise ValueError(f"The loss must be a scalar, got shape {tuple(loss.shape)}.")
        return loss


def _log_name(loss: Any) -> str:
    """How Keras names a loss in the logs of unnamed outputs: its given name, else its class's in snake case."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, KerasLoss):
        return loss.name
    name = getattr(loss, "__name__", None) or type(loss).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _is_spec(loss: Any) -> bool:
    return isinstance(loss, (str, KerasLoss)) or callable(loss)


class CompileLoss:
    """The Trainer's whole loss over every output: Keras' weighted sum of one loss per output.

    `loss` is one loss for every output, a dict keyed by output name, or a list in output order;
    `loss_weights` a number (one output), a dict or a list. Built on the first batch from the model's
    outputs (`structure.Outputs`). Calling it gives `(total, parts)`: the weighted sum, and the unweighted
    loss of each output (None for one output). `names` are the parts' log names (`<output>_loss`), as
    Keras 3 logs them when there are two or more.

    >>> cl = CompileLoss({"a": "mse", "b": "mae"}, loss_weights={"a": 1.0, "b": 0.5})
    >>> y_pred = {"a": torch.tensor([[1.0]]), "b": torch.tensor([[2.0]])}
    >>> total, parts = cl.checked(y_pred, {"a": torch.tensor([[0.0]]), "b": torch.tensor([[0.0]])}, None)
    >>> float(total), [float(p) for p in parts], cl.names
    (2.0, [1.0, 2.0], ['a_loss', 'b_loss'])
    """

    def __init__(self, loss: Any, loss_weights: Any = None) -> None:
        if isinstance(loss, Mapping):
            self._specs: Any = {k: Objective(v) for k, v in loss.items()}
        elif isinstance(loss, (list, tuple)):
            self._specs = [Objective(v) for v in loss]
        else:
            self._specs = Objective(loss)
        if loss_weights is not None and not isinstance(loss_weights, (int, float, Mapping, list, tuple)):
            raise ValueError(
                "`loss_weights` must be a number (one output), a list or a dict (several outputs); "
                f"got {type(loss_weights).__name__}."
            )
        self.loss, self.loss_weights = loss, loss_weights
        self.outputs: Outputs | None = None
        self.objectives: list[Objective] = []
        self.weights: list[float | None] = []
        self.names: list[str] = []
        self._fast: Objective | None = None

    @property
    def built(self) -> bool:
        return self.outputs is not None

    @property
    def identity(self) -> Any:
        """What `"accuracy"` looks at for a single-output model (the loss as given)."""
        return self.loss

    def build(self, y_pred: Any) -> None:
        """Lay the losses and their weights over the model's outputs; a mismatch raises naming both sides."""
        outputs = Outputs(y_pred)
        objectives = self._per_output(self._specs, outputs, "loss")
        if any(o is None for o in objectives):
            missing = [outputs.label(i) for i, o in enumerate(objectives) if o is None]
            raise ValueError(f"No loss for output(s) {', '.join(missing)}: `loss` names {self._keys()}.")
        weights = self._weights(outputs)
        names = [
            f"{name}_loss" if name is not None else f"{_log_name(o.identity)}_loss"
            for name, o in zip(outputs.names, objectives)
        ]
        self.outputs, self.objectives, self.weights, self.names = outputs, objectives, weights, names
        plain = outputs.kind == "tensor" and weights[0] is None
        self._fast = objectives[0] if plain else None

    def _keys(self) -> str:
        return repr(list(self._specs)) if isinstance(self._specs, Mapping) else f"a list of {len(self._specs)}"

    def _per_output(self, specs: Any, outputs: Outputs, what: str) -> list[Any]:
        if not isinstance(specs, (Mapping, list, tuple)):
            return [specs] * outputs.n
        if isinstance(specs, Mapping):
            if outputs.keys is None or (outputs.single and len(specs) != 1):
                raise ValueError(
                    f"`{what}` is a dict with keys {list(specs)}, but the model has {outputs.describe()}"
                    + ("; give a list in output order." if outputs.keys is None else ".")
                )
            extra = [k for k in specs if k not in outputs.keys]
            if extra:
                raise ValueError(
                    f"`{what}` has keys {list(specs)}; not an output of the model: {extra} "
                    f"(its outputs are {outputs.keys})."
                )
            return [specs.get(k) for k in outputs.keys]
        if len(specs) != outputs.n:
            raise ValueError(f"`{what}` is a list of {len(specs)}, but the model has {outputs.describe()}.")
        return list(specs)

    def _weights(self, outputs: Outputs) -> list[float | None]:
        w = self.loss_weights
        if w is None:
            return [None] * outputs.n
        if isinstance(w, (int, float)) and not isinstance(w, bool):
            if not outputs.single:
                raise ValueError(f"`loss_weights` is one number, but the model has {outputs.describe()}.")
            return [float(w)]
        weights = self._per_output(w, outputs, "loss_weights")
        return [1.0 if v is None else float(v) for v in weights]

    def __call__(self, y_pred: Any, y: Any, sample_weight: Any) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        if self._fast is not None:
            return self._fast(y_pred, y, sample_weight), None
        out = self.outputs
        parts = [
            o(p, t, w)
            for o, p, t, w in zip(self.objectives, out.predictions(y_pred), out.targets(y), out.weights(sample_weight))
        ]
        return self._total(parts), (parts if out.n > 1 else None)

    def _total(self, parts: list[torch.Tensor]) -> torch.Tensor:
        total = None
        for part, weight in zip(parts, self.weights):
            value = part if weight is None else part * weight
            total = value if total is None else total + value
        return total  # type: ignore[return-value]

    def checked(self, y_pred: Any, y: Any, sample_weight: Any) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """The loss of a first batch: the layout built (once), each output checked against its target."""
        if y is None:
            raise ValueError("No targets: pass `y`, or a Dataset/DataLoader yielding (x, y).")
        if not self.built:
            self.build(y_pred)
        out = self.outputs
        preds, targets, weights = out.predictions(y_pred), out.targets(y), out.weights(sample_weight)
        parts = []
        for i, (o, p, t, w) in enumerate(zip(self.objectives, preds, targets, weights)):
            try:
                parts.append(o.checked(p, t, w))
            except ValueError as err:
                if out.single:
                    raise
                raise ValueError(f"Output {out.label(i)}: {err}") from err
        return self._total(parts), (parts if out.n > 1 else None)
