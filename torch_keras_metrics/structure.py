"""Several inputs and outputs: how a model is called on a structure, and how its outputs are named, as Keras does.

Inputs follow torch's calling conventions: `x` a tensor is `model(x)`, a tuple or list `model(*x)`, a dict
`model(**x)`. Outputs may be a tensor, a tuple or list, or any mapping (a dict, transformers' `ModelOutput`).
`Outputs` records their layout on the first batch and takes targets, sample weights and predictions apart
in the same order:

- a mapping's outputs are named by its keys, in its own order for an `OrderedDict` (`ModelOutput` is one)
  and sorted otherwise, as Keras orders a dict; a mapping with one key is one output, unnamed;
- a tuple's or list's outputs are unnamed (Keras' subclassed models name them after their losses).

>>> import torch
>>> out = Outputs({"parity": torch.zeros(2, 1), "digit": torch.zeros(2, 3)})
>>> out.names, out.targets({"digit": 1, "parity": 2}), out.weights(None)
(['digit', 'parity'], [1, 2], [None, None])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["Outputs", "call_model", "concatenate", "detach"]


def call_model(model: Any, x: Any) -> Any:
    """`model(x)`, `model(*x)` for a tuple or list, `model(**x)` for a mapping."""
    if isinstance(x, Mapping):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def detach(y_pred: Any) -> Any:
    """The outputs without their autograd history, in their structure."""
    if isinstance(y_pred, torch.Tensor):
        return y_pred.detach()
    if isinstance(y_pred, Mapping):
        return {k: detach(v) for k, v in y_pred.items()}
    if isinstance(y_pred, (tuple, list)):
        return [detach(v) for v in y_pred]
    return y_pred


def concatenate(batches: list[Any]) -> Any:
    """Per-batch outputs joined along the batch axis, in their structure, as float CPU tensors (`predict`)."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(batches).float().cpu()
    if isinstance(first, Mapping):
        return {k: concatenate([b[k] for b in batches]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(concatenate([b[i] for b in batches]) for i in range(len(first)))
    raise TypeError(
        f"The model must return tensors, a tuple or list of them, or a mapping; got {type(first).__name__}."
    )


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a mapping with keys {list(value)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


class Outputs:
    """The layout of a model's outputs: how many, their `names` (None when unnamed), and their order."""

    def __init__(self, y_pred: Any) -> None:
        if isinstance(y_pred, torch.Tensor):
            self.kind, self.keys = "tensor", None
            self.names: list[str | None] = [None]
        elif isinstance(y_pred, Mapping):
            keys = list(y_pred) if isinstance(y_pred, OrderedDict) else sorted(y_pred)
            if not keys:
                raise ValueError("The model returned an empty mapping: there is no output to train.")
            self.kind, self.keys = "mapping", keys
            self.names = list(keys) if len(keys) > 1 else [None]
        elif isinstance(y_pred, (tuple, list)) and y_pred:
            self.kind, self.keys = "sequence", None
            self.names = [None] * len(y_pred)
        else:
            raise TypeError(
                "The model must return a tensor, a tuple or list of tensors, or a mapping; "
                f"it returned {_describe(y_pred)}."
            )
        self.n = len(self.names)
        self.single = self.n == 1
        for i, p in enumerate(self.predictions(y_pred)):
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"Output {self.label(i)} of the model is {_describe(p)}, not a tensor.")

    def label(self, i: int) -> str:
        """How an error names output `i`."""
        if self.keys is not None:
            return repr(self.keys[i])
        return str(i)

    def describe(self) -> str:
        if self.keys is not None:
            return f"outputs {self.keys}"
        return f"{self.n} unnamed output{'s' if self.n > 1 else ''}"

    def predictions(self, y_pred: Any) -> list[Any]:
        if self.kind == "tensor":
            return [y_pred]
        if self.kind == "mapping":
            return [y_pred[k] for k in self.keys]  # type: ignore[union-attr]
        return list(y_pred)

    def targets(self, y: Any, what: str = "y") -> list[Any]:
        """`y` (or a per-output structure like it) in output order; a missing or extra part raises."""
        if self.single:
            if isinstance(y, Mapping):
                key = self.keys[0] if self.keys else None
                if key is None or set(y) != {key}:
                    raise ValueError(f"`{what}` has keys {list(y)}, but the model has {self.describe()}.")
                return [y[key]]
            if isinstance(y, (tuple, list)) and len(y) == 1 and isinstance(y[0], torch.Tensor):
                return [y[0]]
            return [y]
        if isinstance(y, Mapping):
            if self.keys is None:
                raise ValueError(
                    f"`{what}` is a mapping with keys {list(y)}, but the model's {self.n} outputs are unnamed "
                    f"(it returns a sequence): give `{what}` as a list of {self.n}, in output order."
                )
            missing = [k for k in self.keys if k not in y]
            extra = [k for k in y if k not in self.keys]
            if missing or extra:
                raise ValueError(
                    f"`{what}` has keys {list(y)}, the model's outputs are {self.keys}"
                    + (f"; missing: {missing}" if missing else "")
                    + (f"; not an output: {extra}" if extra else "")
                    + "."
                )
            return [y[k] for k in self.keys]
        if isinstance(y, (tuple, list)) and len(y) == self.n:
            return list(y)
        raise ValueError(
            f"`{what}` is {_describe(y)}, but the model has {self.describe()}: give one {what} per output"
            + (" (a dict keyed by output name, or a list in output order)." if self.keys else " (a list).")
        )

    def weights(self, sample_weight: Any) -> list[Any]:
        """Sample weights per output: None, one array for every output, or one per output (dict or list)."""
        if sample_weight is None or isinstance(sample_weight, torch.Tensor):
            return [sample_weight] * self.n
        if isinstance(sample_weight, Mapping):
            known = self.keys if self.keys is not None else []
            extra = [k for k in sample_weight if k not in known]
            if extra:
                raise ValueError(
                    f"`sample_weight` has keys {list(sample_weight)}, but the model has {self.describe()}; "
                    f"not an output: {extra}."
                )
            if self.single:
                return [sample_weight.get(known[0])]
            return [sample_weight.get(k) for k in known]
        if isinstance(sample_weight, Sequence) and len(sample_weight) == self.n:
            return list(sample_weight)
        raise ValueError(
            f"`sample_weight` is {_describe(sample_weight)}, but the model has {self.describe()}: give one array "
            "for every output, or one per output."
        )
