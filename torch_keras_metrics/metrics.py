"""Stateful Keras metrics as torch modules.

Every metric holds two float64 buffers, `total` and `count`, and follows Keras 3's
`Mean`/`MeanMetricWrapper` rules for reducing per-element values and sample weights
(docs/semantics.md §4; float64 states §5). They speak three dialects:

* Keras: `update_state(y_true, y_pred, sample_weight=None)`, `result()`, `reset_state()`, `name`;
* torch: `metric(y_true, y_pred)` adds the batch and returns that batch's own value,
  `.to(device)`, `state_dict()` (holding `total` and `count`);
* torchmetrics: they are `torchmetrics.Metric`s, so `MetricCollection`, Lightning's
  `self.log(name, metric)`, `compute()` and `reset()` work, and `compute()` sums the
  states across `torch.distributed` ranks.

The update path reads metadata only: no `.item()`, no host synchronisation, and a
`torch.compile`d step that calls `update_state` or `forward` compiles once.

>>> import torch
>>> m = SparseCategoricalAccuracy()
>>> m.update_state(torch.tensor([2, 1]), torch.tensor([[0.1, 0.6, 0.3], [0.05, 0.95, 0.0]]))
>>> m.result()
tensor(0.5000)
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Mapping
from typing import Any, Callable

import torch
import torchmetrics

from . import functional as F
from . import losses as L
from ._checks import (
    as_tensor,
    broadcasts_to,
    check_k,
    check_threshold,
    refuse_meta,
    squeeze_or_expand_to_same_rank,
)

__all__ = [
    "Mean",
    "MeanMetricWrapper",
    "StatefulMetric",
    "KerasMetric",
    "register",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "get",
]

_STATES = ("total", "count")


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _sum_per_sample(values: torch.Tensor) -> torch.Tensor:
    """Sum over samples of each sample's mean over its non-batch axes.

    Right/wrong flags are counted exactly in int64 (`count_nonzero` is the cheapest reduction
    torch has); anything else is summed in float64.
    """
    per_sample = values.shape[1:].numel()
    if values.dtype == torch.bool:
        total = torch.count_nonzero(values)
        return total.to(torch.float64) / per_sample if per_sample > 1 else total
    total = values.sum(dtype=torch.float64)
    return total / per_sample if per_sample > 1 else total


def _samples_in(values: torch.Tensor) -> float:
    """Unweighted count: the batch size, or 1 for a scalar (a function that already averaged).

    A float, since adding a Python float to a float64 tensor is the cheaper kernel call."""
    return float(values.shape[0]) if values.dim() > 0 else 1.0


def _weighted_sums(values: torch.Tensor, sample_weight: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras' `reduce_to_samplewise_values` with mean reduction, summed: (total, count)."""
    weight = as_tensor(sample_weight, "sample_weight", values.device).to(torch.float64)
    values = values.to(torch.float64)
    values, weight = squeeze_or_expand_to_same_rank(values, weight)
    w_dim = weight.dim()
    if values.dim() > w_dim:
        values = values.mean(dim=tuple(range(w_dim, values.dim())))
    if not broadcasts_to(weight.shape, values.shape):
        raise ValueError(
            f"`sample_weight` of shape {tuple(torch.as_tensor(sample_weight).shape)} does not broadcast to the "
            f"metric values of shape {tuple(values.shape)} (one weight per sample, or per element)."
        )
    weight = weight.expand(values.shape)
    values = values * weight
    if w_dim > 1:
        weight = weight.mean(dim=tuple(range(1, w_dim)))
    if values.dim() > 1:
        values = values.mean(dim=tuple(range(1, values.dim())))
    return values.sum(), weight.sum()


def _result_dtype(dtype: Any) -> torch.dtype:
    if dtype is None:
        return torch.float32
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise TypeError(f"`dtype` must be a floating torch dtype or its name, got {dtype!r}.")
    return resolved


class KerasMetric(torchmetrics.Metric):
    """What every metric here shares: Keras' `name`, `dtype`, `get_config`/`from_config`, and torchmetrics'
    `compute`/`reset`/`plot` over Keras' `result`/`reset_state`. `Mean` and `StatefulMetric` build on it."""

    is_differentiable = False
    higher_is_better: bool | None = None
    full_state_update = False

    def __init__(self, name: str | None = None, dtype: Any = None, **torchmetrics_kwargs: Any) -> None:
        torchmetrics_kwargs.setdefault("compute_with_cache", False)
        super().__init__(**torchmetrics_kwargs)
        self.name = name or _snake_case(type(self).__name__)
        self._result_dtype = _result_dtype(dtype)

    def result(self, sync: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def compute(self) -> torch.Tensor:
        """torchmetrics' name for `result`; under torch.distributed it sums the states of all ranks first."""
        return self.result(sync=False)  # torchmetrics has summed the states already

    def reset(self) -> None:
        """torchmetrics' name for `reset_state` (also clears torchmetrics' bookkeeping)."""
        super().reset()
        self.reset_state()

    @property
    def update_called(self) -> bool:
        # Our fast paths skip torchmetrics' update counter (a Python int that would make
        # torch.compile recompile every step); an empty metric's result is Keras' value for no data.
        return True

    def get_config(self) -> dict[str, Any]:
        """Keras' config: the constructor's arguments as plain values (`name`, `dtype`, and the metric's own).

        >>> BinaryAccuracy(threshold=0.7).get_config()
        {'name': 'binary_accuracy', 'dtype': 'float32', 'threshold': 0.7}
        """
        return {"name": self.name, "dtype": str(self._result_dtype).removeprefix("torch.")}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KerasMetric:
        """The metric `get_config()` describes (a fresh state)."""
        return cls(**config)

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """torchmetrics' plot: the current result (or `val`, one value or a list of them) drawn with
        matplotlib; returns `(figure, axes)`.

        >>> import matplotlib; matplotlib.use("Agg")
        >>> fig, ax = Accuracy().plot([torch.tensor(0.5), torch.tensor(0.75)])
        """
        return self._plot(val, ax)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(KerasMetric):
    """The (weighted) mean of the values seen, as `keras.metrics.Mean` computes it.

    `total` and `count` are float64, so unweighted counts stay exact up to 2**53 samples.

    >>> m = Mean()
    >>> m.update_state(torch.tensor([1.0, 3.0, 5.0, 7.0]))
    >>> m.result()
    tensor(4.)
    >>> m.update_state(torch.tensor([1.0, 3.0]), sample_weight=torch.tensor([0.0, 4.0]))
    >>> m.result()
    tensor(3.5000)
    """

    total: torch.Tensor
    count: torch.Tensor

    def __init__(self, name: str | None = None, dtype: Any = None, **torchmetrics_kwargs: Any) -> None:
        super().__init__(name, dtype, **torchmetrics_kwargs)
        for state in _STATES:
            self.register_buffer(state, torch.zeros((), dtype=torch.float64))

    # ---------------------------------------------------------------- the Keras API
    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Add a batch of values (and optional weights) to the running mean."""
        self._add(*self._batch_sums(self._values(values), sample_weight))

    def result(self, sync: bool = True) -> torch.Tensor:
        """`total / count`, or 0 before any sample (never NaN). Stays on the device.

        Under an initialised `torch.distributed` group of more than one rank it is the value over every
        rank, as Keras' under a distribution strategy and torchmetrics' `compute()`: one `all_reduce` of
        `(total, count)`, so every rank must call it. `sync=False` gives this rank's own value.
        """
        if sync and _distributed():
            state = self.state()
            torch.distributed.all_reduce(state)
            return _ratio(state[0], state[1]).to(self._result_dtype)
        return _ratio(self.total, self.count).to(self._result_dtype)

    def reset_state(self) -> None:
        """Zero `total` and `count` in place."""
        self.total.zero_()
        self.count.zero_()

    def state(self) -> torch.Tensor:
        """`(total, count)` as one new float64 tensor of shape (2,): what a sum over ranks adds up.

        >>> m = Mean(); m.update_state(torch.tensor([1.0, 2.0])); m.state()
        tensor([3., 2.], dtype=torch.float64)
        """
        return torch.stack([self.total, self.count])

    def load_state(self, state: torch.Tensor) -> None:
        """Set `(total, count)` in place from a tensor like `state()`'s (e.g. summed over ranks)."""
        self.total.copy_(state[0])
        self.count.copy_(state[1])

    def snapshot(self) -> Any:
        """Everything `restore` needs to put this metric back as it is now (a refused batch changes nothing)."""
        return self.state()

    def restore(self, snapshot: Any) -> None:
        """Put back what `snapshot()` saw."""
        self.load_state(snapshot)

    # ---------------------------------------------------------------- the torch / torchmetrics API
    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Add the batch to the state and return the value of that batch alone."""
        values, sample_weight = self._forward_inputs(*args, **kwargs)
        if sample_weight is None and values.dtype == torch.bool and values.dim() == 1:
            if not torch.compiler.is_compiling():  # the common case, in the fewest calls
                n = float(values.shape[0])
                hits = torch.count_nonzero(values)
                buffers = self._buffers
                buffers["total"].add_(hits)
                buffers["count"].add_(n)
                value = hits.div(n) if n else torch.zeros((), device=hits.device)
                if value.dtype != self._result_dtype:
                    value = value.to(self._result_dtype)
                self.__dict__["_forward_cache"] = value
                return value
        total, count = self._batch_sums(values, sample_weight)
        self._add(total, count)
        value = _ratio(total, count)
        if value.dtype != self._result_dtype:
            value = value.to(self._result_dtype)
        # What Lightning logs for `self.log(name, metric, on_step=True)`; set past nn.Module's
        # __setattr__ (a plain attribute, and the slow path costs a microsecond per batch).
        if torch.compiler.is_compiling():
            self._forward_cache = value
        else:
            self.__dict__["_forward_cache"] = value
        return value

    def update(self, values: Any, sample_weight: Any = None) -> None:
        """torchmetrics' name for `update_state` (named arguments, so `MetricCollection` can route keywords)."""
        self.update_state(values, sample_weight)

    # ---------------------------------------------------------------- internals
    def _forward_inputs(self, values: Any, sample_weight: Any = None) -> tuple[torch.Tensor, Any]:
        return self._values(values), sample_weight

    def _values(self, values: Any) -> torch.Tensor:
        values = as_tensor(values, "values", self.total.device).detach()
        return values if values.is_floating_point() else values.to(torch.float32)

    def _batch_sums(self, values: torch.Tensor, sample_weight: Any) -> tuple[torch.Tensor, torch.Tensor | float]:
        """This batch's (total, count), computed before any state changes."""
        if sample_weight is None:
            return _sum_per_sample(values), _samples_in(values)
        return _weighted_sums(values, sample_weight)

    def _add(self, total: torch.Tensor, count: torch.Tensor | float) -> None:
        if torch.compiler.is_compiling():
            # Through a 1-element view: torch.compile (2.13, CPU) silently drops in-place updates
            # of 0-dim float64 tensors, while updates through a view land.
            self.total.view(1).add_(total)
            self.count.view(1).add_(count)
        else:
            self.total.add_(total)
            self.count.add_(count)

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> torch.nn.Module:
        # `.half()`/`.float()` on a model must not round the float64 states: keep their dtype,
        # follow only device moves.
        before = {s: self._buffers[s] for s in _STATES}
        this = super()._apply(fn, *args, **kwargs)
        for state, old in before.items():
            new = self._buffers[state]
            if new.dtype != torch.float64:
                self._buffers[state] = old.to(new.device)
        return this

    def _copy_state_dict(self) -> dict[str, torch.Tensor]:
        return {s: self._buffers[s].detach().clone() for s in _STATES}

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any = None) -> None:
        # One collective for both states: gather the stacked pair from every rank and sum.
        stacked = torch.stack([self.total, self.count])
        gathered = (dist_sync_fn or torchmetrics.utilities.distributed.gather_all_tensors)(
            stacked, group=process_group or self.process_group
        )
        summed = torch.stack(list(gathered)).sum(0)
        self.total, self.count = summed[0].clone(), summed[1].clone()


def _distributed() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _ratio(total: torch.Tensor, count: torch.Tensor | float) -> torch.Tensor:
    if isinstance(count, float):  # unweighted: the count is known on the host, no division by zero
        return total.div(count) if count else torch.zeros((), dtype=torch.float32, device=total.device)
    return torch.where(count != 0, total / count, torch.zeros_like(total))


class MeanMetricWrapper(Mean):
    """The mean of `fn(y_true, y_pred, **kwargs)` over all samples, as Keras' `MeanMetricWrapper`.

    `fn` returns per-element values; a scalar (a function that already averaged its batch)
    counts as one sample per update, as in Keras 3.

    >>> def mean_pred(y_true, y_pred):
    ...     return y_pred.mean()
    >>> m = MeanMetricWrapper(mean_pred, name="mean_pred")
    >>> m.update_state(torch.tensor([0, 1]), torch.tensor([0.2, 0.6]))
    >>> m.result()
    tensor(0.4000)
    """

    def __init__(
        self, fn: Callable, name: str | None = None, dtype: Any = None, torchmetrics_order: bool = False, **kwargs: Any
    ) -> None:
        if not callable(fn):
            raise TypeError(f"`fn` must be a callable (y_true, y_pred) -> values, got {fn!r}.")
        tm_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _TORCHMETRICS_KWARGS}
        super().__init__(name=name, dtype=dtype, **tm_kwargs)
        self._fn = fn
        self._fn_kwargs = kwargs
        # torchmetrics' order for `update`/`forward`, (preds, target): to mix with its metrics positionally
        self.torchmetrics_order = bool(torchmetrics_order)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "fn": self._fn, **self._fn_kwargs}
        if self.torchmetrics_order:
            config["torchmetrics_order"] = True
        return config

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        """Add a batch: per-element values of `fn`, reduced per sample, weighted by `sample_weight`."""
        self._add(*self._batch_sums(self._matches(y_true, y_pred), sample_weight))

    def update(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        """torchmetrics' name for `update_state`; with `torchmetrics_order=True` it takes `(preds, target)`."""
        if self.torchmetrics_order:
            y_true, y_pred = y_pred, y_true
        self.update_state(y_true, y_pred, sample_weight)

    def _forward_inputs(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, Any]:
        if self.torchmetrics_order:
            y_true, y_pred = y_pred, y_true
        return self._matches(y_true, y_pred), sample_weight

    def _matches(self, y_true: Any, y_pred: Any) -> torch.Tensor:
        """Per-element values on the state's device (bool for the accuracies: cheapest to sum)."""
        device = self._buffers["total"].device
        if not isinstance(y_pred, torch.Tensor):
            y_pred = as_tensor(y_pred, "y_pred", device)
        if not isinstance(y_true, torch.Tensor):
            y_true = as_tensor(y_true, "y_true", y_pred.device)
        try:
            values = self._fn(y_true, y_pred, **self._fn_kwargs)
        except RuntimeError as err:  # torch's own shape errors, from inside the function
            differ = y_true.dim() and y_pred.dim() and y_true.shape[0] != y_pred.shape[0]
            raise ValueError(
                f"`y_true` of shape {tuple(y_true.shape)} and `y_pred` of shape {tuple(y_pred.shape)} do not "
                f"fit together{': their batch dimensions differ' if differ else ''} ({self.name}: {err})."
            ) from err
        if not isinstance(values, torch.Tensor):
            values = as_tensor(values, f"the value returned by {getattr(self._fn, '__name__', self._fn)!r}")
        if values.requires_grad:  # a differentiable metric function: never keep its graph alive
            values = values.detach()
        return as_tensor(values, "y_pred" if values.is_meta else "the metric's values", device)


_TORCHMETRICS_KWARGS = frozenset(
    [
        "compute_on_cpu",
        "dist_sync_on_step",
        "process_group",
        "dist_sync_fn",
        "distributed_available_fn",
        "sync_on_compute",
        "compute_with_cache",
    ]
)


class _Accuracy(MeanMetricWrapper):
    """Shared base: an accuracy is maximised, and its kernel returns bools."""

    higher_is_better = True
    plot_lower_bound, plot_upper_bound = 0.0, 1.0
    _kernel: Callable[..., torch.Tensor]
    # Optional: the number of matches straight from the inputs (None: take the elementwise path).
    _counter: Callable[..., torch.Tensor | None] | None = None
    # Optional: (N,) bools for the common shapes in the fewest calls (None: take the general path).
    _hits: Callable[[Any, Any], torch.Tensor | None] | None = None

    def _fast_hits(self, y_true: Any, y_pred: Any) -> torch.Tensor | None:
        hits = type(self)._hits(y_true, y_pred)  # type: ignore[misc]
        return hits if hits is not None and hits.device == self._buffers["total"].device else None

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        if sample_weight is None and self._hits is not None and not torch.compiler.is_compiling():
            hits = self._fast_hits(y_true, y_pred)
            if hits is not None:
                buffers = self._buffers
                buffers["total"].add_(torch.count_nonzero(hits))
                buffers["count"].add_(float(hits.shape[0]))
                return
        if sample_weight is None and self._counter is not None:
            hits = self._counter(y_true, y_pred, **self._fn_kwargs)
            if hits is not None and hits.device == self._buffers["total"].device:
                shape = y_pred.shape  # the counters only count inputs of one shape, at least 1-d
                self._add(hits.to(torch.float64) / shape[1:].numel(), float(shape[0]))
                return
        super().update_state(y_true, y_pred, sample_weight)

    def forward(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:  # type: ignore[override]
        """Add the batch to the state and return the accuracy of that batch alone."""
        if sample_weight is None and self._hits is not None and not torch.compiler.is_compiling():
            hits = self._fast_hits(y_pred, y_true) if self.torchmetrics_order else self._fast_hits(y_true, y_pred)
            if hits is not None:
                n = float(hits.shape[0])
                right = torch.count_nonzero(hits)
                buffers = self._buffers
                buffers["total"].add_(right)
                buffers["count"].add_(n)
                value = right.div(n) if n else torch.zeros((), device=right.device)
                if value.dtype != self._result_dtype:
                    value = value.to(self._result_dtype)
                self.__dict__["_forward_cache"] = value  # what Lightning logs with on_step=True
                return value
        return super().forward(y_true, y_pred, sample_weight)

    def __init__(self, name: str | None, dtype: Any, **kwargs: Any) -> None:
        super().__init__(type(self)._kernel, name=name or _snake_case(type(self).__name__), dtype=dtype, **kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["fn"]  # the class is its definition
        return config


class Accuracy(_Accuracy):
    """How often `y_pred` equals `y_true` exactly (`keras.metrics.Accuracy`).

    >>> m = Accuracy()
    >>> m.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]])
    >>> m.result()
    tensor(0.7500)
    """

    _kernel = staticmethod(F._accuracy)
    _counter = staticmethod(F._accuracy_count)

    def __init__(self, name: str = "accuracy", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, **kwargs)


class BinaryAccuracy(_Accuracy):
    """How often `(y_pred > threshold)` equals the binary label (`keras.metrics.BinaryAccuracy`).

    >>> m = BinaryAccuracy()
    >>> m.update_state([0, 0, 0, 1, 1, 0], [0.2, 0.3, 0.6, 0.7, 0.8, 0.1])
    >>> round(m.result().item(), 4)
    0.8333
    """

    _kernel = staticmethod(F._binary_accuracy)
    _counter = staticmethod(F._binary_accuracy_count)

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5, **kwargs: Any):
        self.threshold = check_threshold(threshold)
        super().__init__(name, dtype, threshold=self.threshold, **kwargs)


class CategoricalAccuracy(_Accuracy):
    """How often the argmax of one-hot `y_true` is the argmax of `y_pred` (`keras.metrics.CategoricalAccuracy`).

    >>> m = CategoricalAccuracy()
    >>> m.update_state([[0, 0, 1], [0, 1, 0], [0, 1, 0], [1, 0, 0]],
    ...                [[.1, .6, .3], [.2, .7, .1], [.3, .6, .1], [.9, 0, .1]])
    >>> m.result()
    tensor(0.7500)
    """

    _kernel = staticmethod(F._categorical_accuracy)
    _hits = staticmethod(F._categorical_hits)

    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, **kwargs)


class SparseCategoricalAccuracy(_Accuracy):
    """How often the integer label is the argmax of `y_pred` (`keras.metrics.SparseCategoricalAccuracy`).

    >>> m = SparseCategoricalAccuracy()
    >>> m.update_state([2, 1, 1, 0], [[.3, .6, .1], [.5, .4, .1], [.3, .6, .1], [.9, 0, .1]])
    >>> m.result()
    tensor(0.5000)
    """

    _kernel = staticmethod(F._sparse_categorical_accuracy)
    _hits = staticmethod(F._sparse_categorical_hits)

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, **kwargs)


class TopKCategoricalAccuracy(_Accuracy):
    """How often the one-hot target is among the `k` highest scores (`keras.metrics.TopKCategoricalAccuracy`).

    >>> m = TopKCategoricalAccuracy(k=2)
    >>> m.update_state([[0, 0, 1], [0, 1, 0], [0, 1, 0], [1, 0, 0]],
    ...                [[.3, .6, .1], [.5, .4, .1], [.3, .6, .1], [.9, 0, .1]])
    >>> m.result()
    tensor(0.7500)
    """

    _kernel = staticmethod(F._top_k_categorical_accuracy)

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: Any = None, **kwargs: Any):
        self.k = check_k(k)
        super().__init__(name, dtype, k=self.k, **kwargs)


class SparseTopKCategoricalAccuracy(_Accuracy):
    """How often the integer label is among the `k` highest scores (`keras.metrics.SparseTopKCategoricalAccuracy`).

    >>> m = SparseTopKCategoricalAccuracy(k=2)
    >>> m.update_state([2, 1, 1, 0], [[.3, .6, .1], [.5, .4, .1], [.3, .6, .1], [.9, 0, .1]])
    >>> m.result()
    tensor(0.7500)
    """

    _kernel = staticmethod(F._sparse_top_k_categorical_accuracy)

    def __init__(
        self,
        k: int = 5,
        name: str = "sparse_top_k_categorical_accuracy",
        dtype: Any = None,
        from_sorted_ids: bool = False,
        **kwargs: Any,
    ) -> None:
        self.k = check_k(k)
        self.from_sorted_ids = bool(from_sorted_ids)
        super().__init__(name, dtype, k=self.k, from_sorted_ids=self.from_sorted_ids, **kwargs)


class StatefulMetric(KerasMetric):
    """The base of Keras metrics whose state is a set of sums: confusion counts, a confusion matrix, moments.

    A subclass declares its states with `add_sum_state` and defines two functions:
    `batch_state(y_true, y_pred, sample_weight)` returns one batch's contribution to every state (in the
    order declared, checking its inputs before any state changes) and `compute_result(*states)` turns states
    into the result. The base gives Keras' API (`update_state`, `result`, `reset_state`), torch's
    (`forward` returns the batch's own value, `state_dict`, `.to`), torchmetrics' (`update`, `compute`,
    `reset`), and `state()`/`load_state()`: every state flattened into one float64 vector, so a sum over
    ranks is one collective. Integer states stay integers (float64 holds them exactly below 2**53).

    >>> class Hits(StatefulMetric):
    ...     def __init__(self, name="hits", dtype=None):
    ...         super().__init__(name=name, dtype=dtype)
    ...         self.add_sum_state("hits")
    ...     def batch_state(self, y_true, y_pred, sample_weight=None):
    ...         return ((torch.as_tensor(y_true) == torch.as_tensor(y_pred)).sum().double(),)
    ...     def compute_result(self, hits):
    ...         return hits
    >>> m = Hits()
    >>> m(torch.tensor([1, 2]), torch.tensor([1, 0])), m(torch.tensor([3]), torch.tensor([3]))
    (tensor(1.), tensor(1.))
    >>> m.result(), m.state()
    (tensor(2.), tensor([2.], dtype=torch.float64))
    """

    torchmetrics_order = False  # called as (y_true, y_pred), like Keras

    def __init__(self, name: str | None = None, dtype: Any = None, **torchmetrics_kwargs: Any) -> None:
        super().__init__(name, dtype, **torchmetrics_kwargs)
        self._sum_states: list[str] = []
        self._state_dtypes: dict[str, torch.dtype] = {}

    def add_sum_state(self, name: str, shape: tuple[int, ...] = (), dtype: torch.dtype = torch.float64) -> None:
        """Declare a state: a buffer of zeros that batches add to (float64 unless told)."""
        self.register_buffer(name, torch.zeros(shape, dtype=dtype))
        self._sum_states.append(name)
        self._state_dtypes[name] = dtype

    # ---------------------------------------------------------------- what a subclass defines
    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[torch.Tensor, ...]:
        """One batch's contribution to each state, in the order declared; changes nothing."""
        raise NotImplementedError

    def compute_result(self, *states: torch.Tensor) -> torch.Tensor:
        """The metric's value from its states (the running ones, or one batch's)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- the Keras API
    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add a batch to the states."""
        self._refuse_meta(y_true, y_pred, sample_weight)
        self._add(self.batch_state(y_true, y_pred, sample_weight))

    def result(self, sync: bool = True) -> torch.Tensor:
        """The value over every batch so far; under an initialised `torch.distributed` group of more than one
        rank, over every rank (one `all_reduce` of `state()`, so every rank must call it). `sync=False` gives
        this rank's own value. A new tensor: a later update does not change it."""
        if sync and _distributed():
            state = self.state()
            torch.distributed.all_reduce(state)
            return self._value(self._split(state))
        return self._value([self._buffers[s] for s in self._sum_states])

    def reset_state(self) -> None:
        """Zero every state in place."""
        for s in self._sum_states:
            self._buffers[s].zero_()

    def state(self) -> torch.Tensor:
        """Every state flattened into one new float64 vector (what a sum over ranks adds up)."""
        return torch.cat([self._buffers[s].reshape(-1).to(torch.float64) for s in self._sum_states])

    def load_state(self, state: torch.Tensor) -> None:
        """Set every state in place from a vector like `state()`'s (e.g. summed over ranks)."""
        for s, part in zip(self._sum_states, self._split(state)):
            self._buffers[s].copy_(part)

    def snapshot(self) -> Any:
        """Everything `restore` needs to put this metric back as it is now: its buffers, the states declared and
        its plain attributes, so that a metric whose states a first batch built goes back to unbuilt."""
        plain = (bool, int, float, str, tuple, type(None))
        return (
            {k: None if v is None else v.clone() for k, v in self._buffers.items()},
            list(self._sum_states),
            dict(self._state_dtypes),
            {k: v for k, v in self.__dict__.items() if isinstance(v, plain)},
        )

    def restore(self, snapshot: Any) -> None:
        """Put back what `snapshot()` saw."""
        buffers, sum_states, dtypes, attributes = snapshot
        for key in [k for k in self._buffers if k not in buffers]:
            del self._buffers[key]
        self._buffers.update(buffers)
        self._sum_states[:] = sum_states
        self._state_dtypes.clear()
        self._state_dtypes.update(dtypes)
        self.__dict__.update(attributes)

    # ---------------------------------------------------------------- the torch / torchmetrics API
    def forward(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        """Add the batch to the states and return the value of that batch alone."""
        self._refuse_meta(y_true, y_pred, sample_weight)
        parts = self.batch_state(y_true, y_pred, sample_weight)
        self._add(parts)
        value = self._value(parts)
        if torch.compiler.is_compiling():
            self._forward_cache = value
        else:
            self.__dict__["_forward_cache"] = value  # what Lightning logs with on_step=True
        return value

    def update(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """torchmetrics' name for `update_state`."""
        self.update_state(y_true, y_pred, sample_weight)

    # ---------------------------------------------------------------- internals
    def _refuse_meta(self, y_true: Any, y_pred: Any, sample_weight: Any) -> None:
        for name, x in (("y_true", y_true), ("y_pred", y_pred), ("sample_weight", sample_weight)):
            refuse_meta(x, name, self.device)

    def _value(self, states: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
        value = self.compute_result(*states)
        return value if value.dtype == self._result_dtype else value.to(self._result_dtype)

    def _split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        parts, at = [], 0
        for s in self._sum_states:
            buf = self._buffers[s]
            n = buf.numel()
            part = flat[at : at + n].reshape(buf.shape)
            parts.append(part.round().to(buf.dtype) if not buf.dtype.is_floating_point else part.to(buf.dtype))
            at += n
        return parts

    def _add(self, parts: tuple[torch.Tensor, ...]) -> None:
        compiling = torch.compiler.is_compiling()
        for s, part in zip(self._sum_states, parts):
            buf = self._buffers[s]
            if compiling:  # torch.compile (2.13, CPU) drops in-place updates of 0-dim float64 tensors
                buf.view(-1).add_(part.reshape(-1).to(buf.dtype))
            else:
                buf.add_(part.to(buf.dtype) if part.dtype != buf.dtype else part)

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> torch.nn.Module:
        # `.half()`/`.float()` on a model must not round the states: keep their dtypes, follow device moves.
        before = {s: self._buffers[s] for s in self._sum_states}
        this = super()._apply(fn, *args, **kwargs)
        for s, old in before.items():
            new = self._buffers[s]
            if new.dtype != self._state_dtypes[s]:
                self._buffers[s] = old.to(new.device)
        return this

    def _copy_state_dict(self) -> dict[str, torch.Tensor]:
        return {s: self._buffers[s].detach().clone() for s in self._sum_states}

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any = None) -> None:
        # One collective for every state: gather the flat vector from every rank and sum.
        gathered = (dist_sync_fn or torchmetrics.utilities.distributed.gather_all_tensors)(
            self.state(), group=process_group or self.process_group
        )
        for s, part in zip(self._sum_states, self._split(torch.stack(list(gathered)).sum(0))):
            self._buffers[s] = part.clone()


# --------------------------------------------------------------------------- get()

_CLASSES: dict[str, type[Mean] | type[StatefulMetric]] = {
    cls.__name__: cls
    for cls in (
        Accuracy,
        BinaryAccuracy,
        CategoricalAccuracy,
        SparseCategoricalAccuracy,
        TopKCategoricalAccuracy,
        SparseTopKCategoricalAccuracy,
        Mean,
    )
}
_CLASSES.update({_snake_case(name): cls for name, cls in list(_CLASSES.items())})

_FUNCTIONS: dict[str, Callable] = dict(L.BY_NAME)


def register(cls: type, *names: str, snake_case: bool = True) -> type:
    """Make a metric class known to `get` by its class name, its snake_case name (unless `snake_case=False`,
    where Keras does not accept it) and `names` (Keras' string aliases, such as `"auc"`); returns the class.
    The metric families' modules register their classes when the package is imported.
    """
    for name in (cls.__name__, *([_snake_case(cls.__name__)] if snake_case else []), *names):
        _CLASSES[name] = cls
    return cls


_AUTO = ("accuracy", "acc")


def _is_binary_loss(loss: Any) -> tuple[bool, bool]:
    """(is a binary loss that says whether it takes logits, takes logits): torch's BCE losses, and Keras'
    binary losses by name with `from_logits=True` (a deliberate fix: Keras would threshold logits at 0.5)."""
    if isinstance(loss, L.KerasLoss):
        binary = loss.fn in (L.binary_crossentropy, L.binary_focal_crossentropy)
        return binary and loss.from_logits, binary and loss.from_logits
    kind = loss if inspect.isclass(loss) else type(loss)
    if not inspect.isclass(kind):
        return False, False
    return issubclass(kind, (torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)), issubclass(
        kind, torch.nn.BCEWithLogitsLoss
    )


def resolve_accuracy(name: str, y_true: Any, y_pred: Any, loss: Any = None) -> Mean:
    """The accuracy that `"accuracy"`/`"acc"` means for these shapes and this loss (docs/semantics.md §6).

    Binary when the loss is torch's `BCELoss`/`BCEWithLogitsLoss` or a Keras binary loss with
    `from_logits=True` (threshold 0 on logits), or `y_pred`'s last axis has size 1; sparse categorical
    when `y_true` has lower rank than `y_pred`, or its last axis is 1 while `y_pred`'s is larger;
    categorical otherwise.
    The metric keeps the name typed.

    >>> resolve_accuracy("acc", torch.zeros(8), torch.zeros(8, 10))
    SparseCategoricalAccuracy(name='acc')
    """
    binary_loss, logits = _is_binary_loss(loss)
    if binary_loss:
        return BinaryAccuracy(name=name, threshold=0.0 if logits else 0.5)
    if y_true is None or y_pred is None:
        raise ValueError(
            f"{name!r} picks binary, categorical or sparse categorical accuracy from the shapes of "
            f"`y_true` and `y_pred`: pass both (a first batch), or name the metric you mean."
        )
    t_shape, p_shape = _shape(y_true, "y_true"), _shape(y_pred, "y_pred")
    t_last = t_shape[-1] if t_shape else 1
    p_last = p_shape[-1] if p_shape else 1
    if p_last == 1:
        return BinaryAccuracy(name=name)
    if len(t_shape) < len(p_shape) or (t_last == 1 and p_last > 1):
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def _shape(x: Any, name: str) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else tuple(as_tensor(x, name).shape)


def get(identifier: Any, y_true: Any = None, y_pred: Any = None, loss: Any = None) -> Mean:
    """A metric from a name, a class, an instance or a plain function, named as Keras names it.

    `"accuracy"` and `"acc"` resolve from the shapes of `y_true` and `y_pred` and from `loss`
    (see `resolve_accuracy`). Other names keep the spelling given (`"mae"` logs as `mae`);
    a function is wrapped in `MeanMetricWrapper` and named after itself.

    >>> get("sparse_top_k_categorical_accuracy")
    SparseTopKCategoricalAccuracy(name='sparse_top_k_categorical_accuracy')
    >>> get("mae")
    MeanMetricWrapper(name='mae')
    >>> get({"class_name": "BinaryAccuracy", "config": {"threshold": 0.7}}).threshold
    0.7
    """
    if isinstance(identifier, KerasMetric):
        return identifier
    if isinstance(identifier, Mapping) and "class_name" in identifier:  # a config, as keras.metrics.deserialize
        cls = _CLASSES.get(identifier["class_name"])
        if cls is None:
            raise ValueError(f"Unknown metric class {identifier['class_name']!r} in {identifier!r}.")
        return cls.from_config(dict(identifier.get("config") or {}))
    if isinstance(identifier, str):
        if identifier.lower() in _AUTO:
            return resolve_accuracy(identifier, y_true, y_pred, loss)
        if identifier in _CLASSES:
            metric = _CLASSES[identifier]()
            metric.name = identifier if identifier[0].islower() else metric.name
            return metric
        if identifier in _FUNCTIONS:
            return MeanMetricWrapper(_FUNCTIONS[identifier], name=identifier)
        close = difflib.get_close_matches(identifier, valid_names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown metric {identifier!r}.{hint} Valid names: {', '.join(valid_names())}.")
    if inspect.isclass(identifier) and issubclass(identifier, KerasMetric):
        return identifier()
    if isinstance(identifier, torchmetrics.Metric):
        raise TypeError(
            f"{type(identifier).__name__} is a torchmetrics metric, called as (preds, target); "
            "torch_keras_metrics metrics are called as (y_true, y_pred). Use one of ours, or a function."
        )
    if callable(identifier) and not inspect.isclass(identifier):
        name = getattr(identifier, "__name__", None) or getattr(getattr(identifier, "func", None), "__name__", None)
        return MeanMetricWrapper(identifier, name=name or _snake_case(type(identifier).__name__))
    raise TypeError(
        f"A metric must be a name, a torch_keras_metrics metric class or instance, or a function "
        f"(y_true, y_pred) -> values; got {identifier!r}."
    )


def valid_names() -> list[str]:
    """Every name `get` accepts."""
    return sorted({*_AUTO, *_CLASSES, *_FUNCTIONS})
