"""One owner for an epoch's bookkeeping: the loss tracker and the compiled metrics (Keras' `compile_utils`).

`CompileMetrics` takes what `Trainer(metrics=..., weighted_metrics=...)` was given, builds the metric
modules on the first batch (`"accuracy"` resolves from that batch's shapes and the loss), names them as
Keras 3 logs them, updates them batch by batch (each batch's own values for the batch logs), rolls a
refused first batch back, and gives the running values a progress bar shows and the epoch logs, over
every rank when distributed (one all-reduce of the loss sums and the metric states).

>>> import torch
>>> cm = CompileMetrics(["accuracy"], compiled_loss=CompileLoss("sparse_categorical_crossentropy"))
>>> y, y_pred = torch.tensor([0, 1]), torch.tensor([[0.9, 0.1], [0.8, 0.2]])
>>> values = cm.first_update(torch.tensor(0.5), None, y, y_pred, None, torch.device("cpu"))
>>> cm.names, float(values["accuracy"]), cm.running()
(['accuracy'], 0.5, {'accuracy': 0.5, 'loss': 0.5})
"""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from .batch_values import Column
from .distributed import DistContext, reduce_epoch
from .losses import CompileLoss
from .metrics import Mean, MeanMetricWrapper, StatefulMetric, get
from .structure import Outputs

__all__ = ["CompileMetrics", "LossTracker", "keras_names"]


class LossTracker:
    """The epoch's batch losses and sizes; their mean weighted by batch size is the epoch's loss (Keras 3).

    The mean folds in only the batches added since it was last asked for, so a progress refresh late in
    a long epoch costs no more than an early one; the batches not folded in yet wait as stacked chunks
    on the losses' device (`batch_values.Column`), so a long epoch holds 12 bytes per batch, not a tensor.

    >>> import torch
    >>> tracker = LossTracker()
    >>> tracker.add(torch.tensor(0.5), 4); tracker.add(torch.tensor(0.25), 2)
    >>> len(tracker), tracker.last_size, float(tracker.result())
    (2, 2, 0.4166666666666667)
    """

    def __init__(self) -> None:
        self._losses = Column()
        self.reset()

    def reset(self) -> None:
        self._losses.clear()
        self._sizes = array("q")  # of the batches not folded in yet
        self._sum = torch.zeros((), dtype=torch.float64)
        self._seen = 0
        self._folded = 0
        self.last_size = 0

    def __len__(self) -> int:
        return self._folded + len(self._sizes)

    def add(self, loss: torch.Tensor, size: int) -> None:
        """Add one batch's loss (a 0-d tensor, not read) and its size."""
        self._losses.append(loss)
        self._sizes.append(size)
        self.last_size = size

    def drop_last(self) -> None:
        """Forget the last batch (a refused first batch); only batches not yet folded in can go."""
        if self._sizes:
            self._losses.pop()
            self._sizes.pop()

    def sums(self) -> torch.Tensor:
        """`[sum(loss_b * size_b), sum(size_b)]` in float64 (what a reduction over ranks adds up)."""
        if self._sizes:
            fresh, sizes = self._losses.tensor(), self._sizes
            weights = torch.frombuffer(sizes, dtype=torch.int64).to(fresh.device, torch.float64)
            self._sum = self._sum.to(fresh.device) + (fresh.double() * weights).sum()
            self._seen += sum(sizes)
            self._folded += len(sizes)
            self._losses.clear()
            self._sizes = array("q")
        return torch.stack([self._sum, self._sum.new_tensor(float(self._seen))])

    def result(self) -> torch.Tensor:
        total, seen = self.sums()
        return total / seen


def keras_names(
    plain: Sequence[Mean],
    weighted: Sequence[Mean],
    plain_outputs: Sequence[str | None] | None = None,
    weighted_outputs: Sequence[str | None] | None = None,
) -> list[str]:
    """Log names as Keras 3's `CompileMetrics.result()`: `<output>_` before a named output's metrics, `_1`,
    `_2` for repeats, `weighted_` on collisions.

    >>> from torch_keras_metrics import Accuracy
    >>> keras_names([Accuracy(), Accuracy()], [Accuracy()])
    ['accuracy', 'accuracy_1', 'weighted_accuracy']
    >>> keras_names([Accuracy()], [Accuracy(), Accuracy()], ["digit"], ["digit", "parity"])
    ['digit_accuracy', 'digit_weighted_accuracy', 'parity_accuracy']
    """

    def prefixed(output: str | None, name: str) -> str:
        return f"{output}_{name}" if output else name

    names: list[str] = []
    counters: dict[str, int] = {}

    def numbered(name: str) -> str:
        if name not in counters:
            counters[name] = 1
            return name
        counters[name] += 1
        return f"{name}_{counters[name] - 1}"

    for m, output in zip(plain, plain_outputs or [None] * len(plain)):
        names.append(numbered(prefixed(output, m.name)))
    for m, output in zip(weighted, weighted_outputs or [None] * len(weighted)):
        name = prefixed(output, m.name)
        names.append(numbered(name) if name not in counters else numbered(prefixed(output, f"weighted_{m.name}")))
    return names


def _check_metric(metric: Mean, spec: Any) -> None:
    """A bare `Mean` averages values, not (y_true, y_pred): called by the Trainer it would weigh y_true by y_pred."""
    if isinstance(metric, StatefulMetric):
        return
    if not isinstance(metric, MeanMetricWrapper):
        raise TypeError(
            f"{spec!r} gives a {type(metric).__name__}, which averages values rather than comparing y_true with "
            "y_pred; as a Trainer metric use MeanMetricWrapper(fn) or a function (y_true, y_pred) -> values."
        )
    if metric.torchmetrics_order:
        raise TypeError(
            f"{spec!r} takes torchmetrics' order (preds, target); the Trainer passes Keras' (y_true, y_pred)."
        )


def _as_list(entry: Any) -> list[Any]:
    if entry is None:
        return []
    return list(entry) if isinstance(entry, (list, tuple)) else [entry]


def _leaves(specs: Any) -> list[Any]:
    if isinstance(specs, Mapping):
        return [leaf for v in specs.values() for leaf in _leaves(v)]
    if isinstance(specs, (list, tuple)):
        return [leaf for v in specs for leaf in _leaves(v)]
    return [] if specs is None else [specs]


def _per_output(specs: Any, outputs: Outputs, what: str) -> list[list[Any]]:
    """Metric specs for each output, as Keras reads `metrics`: all of them for one output; else a dict keyed by
    output name (a subset is fine) or a list with one entry per output."""
    if outputs.single or not specs:
        return [_leaves(specs)] + [[] for _ in range(outputs.n - 1)]
    if isinstance(specs, Mapping):
        if outputs.keys is None:
            raise ValueError(
                f"`{what}` is a dict with keys {list(specs)}, but the model's {outputs.n} outputs are unnamed: "
                "give a list with one entry per output."
            )
        extra = [k for k in specs if k not in outputs.keys]
        if extra:
            raise ValueError(
                f"`{what}` has keys {list(specs)}; not an output of the model: {extra} "
                f"(its outputs are {outputs.keys})."
            )
        return [_as_list(specs.get(k)) for k in outputs.keys]
    if isinstance(specs, (list, tuple)) and len(specs) == outputs.n:
        return [_as_list(entry) for entry in specs]
    raise ValueError(
        f"`{what}` for a model with {outputs.describe()} must be a dict keyed by output name or a list with one "
        f"entry per output; got {specs!r}."
    )


class CompileMetrics:
    """The loss trackers and the metrics of a Trainer: `metrics` ignore sample weights, `weighted_metrics` use them.

    Every spec but `"accuracy"`/`"acc"` resolves at construction, so a typo fails before any training.
    The metrics are built on the first batch, once `compiled_loss` knows the model's outputs: per output
    (`metrics` a dict keyed by output name or a list per output), `"accuracy"` resolved from that output's
    shapes and loss, logged `<output>_<name>` as Keras 3 logs them. With two or more losses, each output's
    unweighted loss is logged `<output>_loss` beside the total `loss`.
    """

    def __init__(
        self, metrics: Any = None, weighted_metrics: Any = None, compiled_loss: CompileLoss | None = None
    ) -> None:
        for what, specs in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if specs is not None and not isinstance(specs, (list, tuple, Mapping)):
                raise ValueError(
                    f"`{what}` must be a list, tuple or dict (as in Keras), got {specs!r} of type "
                    f"{type(specs).__name__}: write `{what}=[{specs!r}]`."
                )
        self.specs = (metrics, weighted_metrics)
        for spec in _leaves(metrics) + _leaves(weighted_metrics):
            if not (isinstance(spec, str) and spec.lower() in ("accuracy", "acc")):
                _check_metric(get(spec), spec)
        self.compiled_loss = compiled_loss if compiled_loss is not None else CompileLoss("mse")
        self.loss_tracker = LossTracker()
        self.output_loss_trackers: list[LossTracker] = []
        self.plain: list[Mean] = []
        self.weighted: list[Mean] = []
        self.names: list[str] = []
        self.built = False
        self._calls: list[tuple[str, Mean, bool, int]] = []
        self._forwards: list[tuple[str, Any, bool]] = []
        self._order: list[tuple[str, int]] = []
        self._loss_names: list[str] = []
        self._fast = False

    @property
    def metrics(self) -> list[Mean]:
        """The metric modules, plain then weighted (empty until built)."""
        return self.plain + self.weighted

    @property
    def trackers(self) -> list[LossTracker]:
        """The total loss's tracker, then each output's (two or more losses)."""
        return [self.loss_tracker, *self.output_loss_trackers]

    def build(self, y: Any, y_pred: Any, device: torch.device) -> None:
        """Make the metric modules for these outputs and shapes (`"accuracy"` resolved), on `device`."""
        cl = self.compiled_loss
        if not cl.built:
            cl.build(y_pred)
        outputs = cl.outputs
        ys, preds = outputs.targets(y), outputs.predictions(y_pred)
        identities = [cl.identity] if outputs.single else [o.identity for o in cl.objectives]
        built: list[list[tuple[int, Mean]]] = []
        for specs, what in ((self.specs[0], "metrics"), (self.specs[1], "weighted_metrics")):
            per_output = _per_output(specs, outputs, what)
            with torch.inference_mode(False):
                built.append(
                    [
                        (i, get(s, ys[i], preds[i], loss=identities[i]).to(device))
                        for i, output_specs in enumerate(per_output)
                        for s in output_specs
                    ]
                )
        plain, weighted = built
        self.plain, self.weighted = [m for _, m in plain], [m for _, m in weighted]
        self.names = keras_names(
            self.plain, self.weighted, [outputs.names[i] for i, _ in plain], [outputs.names[i] for i, _ in weighted]
        )
        flags = [(False, i) for i, _ in plain] + [(True, i) for i, _ in weighted]
        self._calls = [(k, m, w, i) for k, m, (w, i) in zip(self.names, self.metrics, flags)]
        # the metrics' own `forward`, past nn.Module's call machinery (hooks a metric never has): per batch
        self._forwards = [(k, m.forward, w) for k, m, w, _ in self._calls]
        self._loss_names = cl.names if outputs.n > 1 else []
        self.output_loss_trackers = [LossTracker() for _ in self._loss_names]
        keys = ["loss", *self._loss_names, *self.names]
        self._order = sorted(((k, i) for i, k in enumerate(keys)), key=lambda p: p[0])
        self._fast = outputs.kind == "tensor"
        self.built = True

    def update(
        self, loss: torch.Tensor, parts: list[torch.Tensor] | None, y: Any, y_pred: Any, sample_weight: Any
    ) -> dict[str, Any]:
        """Add one batch; returns its own values (`loss`, each output's loss, each metric's batch value)."""
        return self.track(loss, parts, self.batch_size(y_pred), self.metric_values(y, y_pred, sample_weight))

    def metric_values(self, y: Any, y_pred: Any, sample_weight: Any) -> dict[str, torch.Tensor]:
        """Update every metric with one batch; each one's value for that batch alone. Tensor work only (no
        Python bookkeeping), so a compiled step can hold it."""
        if self._fast:  # one tensor output: the common case, without taking structures apart
            return {
                key: forward(y, y_pred, sample_weight) if weighted else forward(y, y_pred)
                for key, forward, weighted in self._forwards
            }
        outputs = self.compiled_loss.outputs
        ys, preds, ws = outputs.targets(y), outputs.predictions(y_pred), outputs.weights(sample_weight)
        return {
            key: metric(ys[i], preds[i], ws[i]) if weighted else metric(ys[i], preds[i])
            for key, metric, weighted, i in self._calls
        }

    def batch_size(self, y_pred: Any) -> int:
        """The number of samples in a batch of model outputs."""
        if self._fast:
            return y_pred.shape[0]
        return self.compiled_loss.outputs.predictions(y_pred)[0].shape[0]

    def track(
        self, loss: torch.Tensor, parts: list[torch.Tensor] | None, size: int, metric_values: dict[str, Any]
    ) -> dict[str, Any]:
        """Add one batch's losses to the trackers; the batch logs' values (losses first, then `metric_values`)."""
        if loss.requires_grad:
            loss = loss.detach()
        if loss.dtype != torch.float32:
            loss = loss.float()
        values = {"loss": loss}
        self.loss_tracker.add(loss, size)
        for name, tracker, part in zip(self._loss_names, self.output_loss_trackers, parts or []):
            part = part.detach().float()
            tracker.add(part, size)
            values[name] = part
        values.update(metric_values)
        return values

    def first_update(
        self,
        loss: torch.Tensor,
        parts: list[torch.Tensor] | None,
        y: Any,
        y_pred: Any,
        sample_weight: Any,
        device: torch.device,
    ) -> dict[str, Any]:
        """`update` for the first batch of a `fit` or `evaluate`, building the metrics if needed; a batch
        a metric refuses leaves every state (and an unbuilt set) as it was."""
        with self._undone_on(Exception, y, y_pred, device):
            return self.update(loss, parts, y, y_pred, sample_weight)

    def check(
        self, loss: torch.Tensor, parts: Any, y: Any, y_pred: Any, sample_weight: Any, device: torch.device
    ) -> None:
        """Prove that a batch fits the metrics (building them if needed, as its `first_update` would) and
        keep nothing of it: every state, the loss trackers and an unbuilt set end as they were."""
        with self._undone_on(BaseException, y, y_pred, device, always=True):
            self.update(loss, parts, y, y_pred, sample_weight)

    @contextlib.contextmanager
    def _undone_on(
        self, kind: type[BaseException], y: Any, y_pred: Any, device: torch.device, always: bool = False
    ) -> Iterator[None]:
        """Build the metrics if needed; on an error of `kind` (or at the end, with `always`) put back every
        metric state, drop the batches the trackers gained and unbuild a set this call built."""
        built = self.built
        if not built:
            self.build(y, y_pred, device)
        states = [m.snapshot() for m in self.metrics]
        sizes = [len(t) for t in self.trackers]

        def undo() -> None:
            for m, state in zip(self.metrics, states):
                m.restore(state)
            for tracker, size in zip(self.trackers, sizes):
                if len(tracker) > size:
                    tracker.drop_last()
            if not built:
                self._unbuild()  # "accuracy" resolves again from the next first batch

        try:
            yield
        except kind:
            undo()
            raise
        if always:
            undo()

    def _unbuild(self) -> None:
        self.plain, self.weighted, self.names, self._calls, self._forwards = [], [], [], [], []
        self.output_loss_trackers = []
        self.built = False

    def states(self) -> list[Any]:
        """Every metric's `snapshot()` (to put back with `load_states` when a call is refused)."""
        return [m.snapshot() for m in self.metrics]

    def load_states(self, states: list[Any]) -> None:
        """Put back what `states()` gave (the same metrics)."""
        for m, state in zip(self.metrics, states):
            m.restore(state)

    def reset(self) -> None:
        """A new epoch (or evaluation): no batches, every metric reset."""
        for tracker in self.trackers:
            tracker.reset()
        for m in self.metrics:
            m.reset_state()

    def running(self) -> dict[str, float]:
        """The epoch's values so far, as Keras 3 logs them: one device read for all."""
        if not self.built or not len(self.loss_tracker):
            return {}
        return self._read([t.result() for t in self.trackers], [m.result(sync=False) for m in self.metrics])

    def epoch_logs(self, dist: DistContext | None, device: torch.device) -> dict[str, float]:
        """The epoch's values; distributed, over every rank with one all-reduce (the same on every rank)."""
        if dist is None:
            return self.running()
        if not self.built:  # this rank saw no batch yet; it still joins the collective the others wait in
            # (as a single-output model: the outputs of a model that never ran are unknown)
            reduce_epoch(None, [], device, pad=self._state_size())
            return {}
        loss_sums = torch.stack([t.sums().to(device) for t in self.trackers]) if len(self.loss_tracker) else None
        losses, results = reduce_epoch(loss_sums, self.metrics, device, losses=len(self.trackers))
        return self._read([*losses.reshape(-1)], results)

    def _read(self, losses: list[torch.Tensor], results: list[torch.Tensor]) -> dict[str, Any]:
        """Losses and metric results as Python numbers, in log order, with one device read: a scalar result
        is a float, a result with several values (per class, per threshold) a list, as Keras logs an array."""
        device = losses[0].device
        flat = torch.cat([torch.stack(losses).double(), *[r.double().reshape(-1).to(device) for r in results]])
        floats = flat.tolist()
        values: list[Any] = floats[: len(losses)]
        at = len(losses)
        for r in results:
            n = r.numel()
            values.append(floats[at] if r.dim() == 0 else floats[at : at + n])
            at += n
        return {k: values[i] for k, i in self._order}

    def _state_size(self) -> int:
        """How many float64 numbers this rank's metric states would add to the epoch's collective."""
        size = 0
        for spec in _leaves(self.specs[0]) + _leaves(self.specs[1]):
            auto = isinstance(spec, str) and spec.lower() in ("accuracy", "acc")
            size += 2 if auto else get(spec).state().numel()
        return size
