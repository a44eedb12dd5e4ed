"""One owner for an epoch's bookkeeping: the loss tracker and the compiled metrics (Keras' `compile_utils`).

`CompileMetrics` takes what `Trainer(metrics=..., weighted_metrics=...)` was given, builds the metric
modules on the first batch (`"accuracy"` resolves from that batch's shapes and the loss), names them as
Keras 3 logs them, updates them batch by batch (each batch's own values for the batch logs), rolls a
refused first batch back, and gives the running values a progress bar shows and the epoch logs, over
every rank when distributed (one all-reduce of the loss sums and the metric states).

>>> import torch
>>> cm = CompileMetrics(["accuracy"], loss="sparse_categorical_crossentropy")
>>> y, y_pred = torch.tensor([0, 1]), torch.tensor([[0.9, 0.1], [0.8, 0.2]])
>>> values = cm.first_update(torch.tensor(0.5), y, y_pred, None, torch.device("cpu"))
>>> cm.names, float(values["accuracy"]), cm.running()
(['accuracy'], 0.5, {'accuracy': 0.5, 'loss': 0.5})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .distributed import DistContext, reduce_epoch
from .metrics import Mean, MeanMetricWrapper, get

__all__ = ["CompileMetrics", "LossTracker", "keras_names"]


class LossTracker:
    """The epoch's batch losses and sizes; their mean weighted by batch size is the epoch's loss (Keras 3).

    The mean folds in only the batches added since it was last asked for, so a progress refresh late in
    a long epoch costs no more than an early one.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self._sum = torch.zeros((), dtype=torch.float64)
        self._seen = 0
        self._folded = 0

    def __len__(self) -> int:
        return len(self.losses)

    def add(self, loss: torch.Tensor, size: int) -> None:
        self.losses.append(loss)
        self.sizes.append(size)

    def drop_last(self) -> None:
        """Forget the last batch (a refused first batch); only batches not yet folded in can go."""
        del self.losses[len(self.losses) - 1 :], self.sizes[len(self.sizes) - 1 :]
        self._folded = min(self._folded, len(self.losses))

    def sums(self) -> torch.Tensor:
        """`[sum(loss_b * size_b), sum(size_b)]` in float64 (what a reduction over ranks adds up)."""
        fresh, sizes = self.losses[self._folded :], self.sizes[self._folded :]
        if fresh:
            weights = torch.tensor(sizes, dtype=torch.float64, device=fresh[0].device)
            self._sum = self._sum.to(fresh[0].device) + (torch.stack(fresh).double() * weights).sum()
            self._seen += sum(sizes)
            self._folded = len(self.losses)
        return torch.stack([self._sum, self._sum.new_tensor(float(self._seen))])

    def result(self) -> torch.Tensor:
        total, seen = self.sums()
        return total / seen


def keras_names(plain: Sequence[Mean], weighted: Sequence[Mean]) -> list[str]:
    """Log names as Keras 3's `CompileMetrics.result()`: `_1`, `_2` for repeats, `weighted_` on collisions.

    >>> from torch_keras_metrics import Accuracy
    >>> keras_names([Accuracy(), Accuracy()], [Accuracy()])
    ['accuracy', 'accuracy_1', 'weighted_accuracy']
    """
    names: list[str] = []
    counters: dict[str, int] = {}
    for m in plain:
        name = m.name
        if name in counters:
            counters[name] += 1
            name = f"{name}_{counters[name] - 1}"
        else:
            counters[name] = 1
        names.append(name)
    for m in weighted:
        name = m.name
        if name in counters:
            name = f"weighted_{m.name}"
            if name in counters:
                counters[name] += 1
                name = f"{name}_{counters[name] - 1}"
            else:
                counters[name] = 1
        else:
            counters[name] = 1
        names.append(name)
    return names


def _check_metric(metric: Mean, spec: Any) -> None:
    """A bare `Mean` averages values, not (y_true, y_pred): called by the Trainer it would weigh y_true by y_pred."""
    if not isinstance(metric, MeanMetricWrapper):
        raise TypeError(
            f"{spec!r} gives a {type(metric).__name__}, which averages values rather than comparing y_true with "
            "y_pred; as a Trainer metric use MeanMetricWrapper(fn) or a function (y_true, y_pred) -> values."
        )


class CompileMetrics:
    """The loss tracker and the metrics of a Trainer: `metrics` ignore sample weights, `weighted_metrics` use them.

    Every spec but `"accuracy"`/`"acc"` resolves at construction, so a typo fails before any training;
    `loss` is what `"accuracy"` looks at (with the first batch's shapes) to choose its definition.
    """

    def __init__(self, metrics: Sequence[Any] | None = None, weighted_metrics: Sequence[Any] | None = None,
                 loss: Any = None) -> None:  # fmt: skip
        self.specs = (list(metrics or []), list(weighted_metrics or []))
        for spec in self.specs[0] + self.specs[1]:
            if not (isinstance(spec, str) and spec.lower() in ("accuracy", "acc")):
                _check_metric(get(spec), spec)
        self.loss = loss
        self.loss_tracker = LossTracker()
        self.plain: list[Mean] = []
        self.weighted: list[Mean] = []
        self.names: list[str] = []
        self.built = False
        self._calls: list[tuple[str, Mean, bool]] = []
        self._order: list[tuple[str, int]] = []

    @property
    def metrics(self) -> list[Mean]:
        """The metric modules, plain then weighted (empty until built)."""
        return self.plain + self.weighted

    def build(self, y: Any, y_pred: torch.Tensor, device: torch.device) -> None:
        """Make the metric modules for these shapes (`"accuracy"` resolved), on `device`."""
        with torch.inference_mode(False):
            self.plain = [get(s, y, y_pred, loss=self.loss).to(device) for s in self.specs[0]]
            self.weighted = [get(s, y, y_pred, loss=self.loss).to(device) for s in self.specs[1]]
        self.names = keras_names(self.plain, self.weighted)
        flags = [False] * len(self.plain) + [True] * len(self.weighted)
        self._calls = list(zip(self.names, self.metrics, flags))
        keys = ["loss", *self.names]
        self._order = sorted(((k, i) for i, k in enumerate(keys)), key=lambda p: p[0])
        self.built = True

    def update(self, loss: torch.Tensor, y: Any, y_pred: torch.Tensor, sample_weight: Any) -> dict[str, Any]:
        """Add one batch; returns its own values (`loss` and each metric's batch value) for the batch logs."""
        loss = loss.detach()
        if loss.dtype != torch.float32:
            loss = loss.float()
        self.loss_tracker.add(loss, y_pred.shape[0])
        values = {"loss": loss}
        for key, metric, weighted in self._calls:
            values[key] = metric(y, y_pred, sample_weight) if weighted else metric(y, y_pred)
        return values

    def first_update(
        self, loss: torch.Tensor, y: Any, y_pred: torch.Tensor, sample_weight: Any, device: torch.device
    ) -> dict[str, Any]:
        """`update` for the first batch of a `fit` or `evaluate`, building the metrics if needed; a batch
        a metric refuses leaves every state (and an unbuilt set) as it was."""
        built = self.built
        if not built:
            self.build(y, y_pred, device)
        states = [m.state() for m in self.metrics]
        try:
            return self.update(loss, y, y_pred, sample_weight)
        except Exception:
            for m, state in zip(self.metrics, states):
                m.load_state(state)
            self.loss_tracker.drop_last()
            if not built:
                self.built = False  # "accuracy" resolves again from the next first batch
            raise

    def reset(self) -> None:
        """A new epoch (or evaluation): no batches, every metric reset."""
        self.loss_tracker.reset()
        for m in self.metrics:
            m.reset_state()

    def running(self) -> dict[str, float]:
        """The epoch's values so far, as Keras 3 logs them: one device read for all."""
        if not self.built or not len(self.loss_tracker):
            return {}
        loss = self.loss_tracker.result()
        floats = torch.stack([loss, *[m.result().double().to(loss.device) for m in self.metrics]]).tolist()
        return {k: floats[i] for k, i in self._order}

    def epoch_logs(self, dist: DistContext | None, device: torch.device) -> dict[str, float]:
        """The epoch's values; distributed, over every rank with one all-reduce (the same on every rank)."""
        if dist is None:
            return self.running()
        if not self.built:  # this rank saw no batch yet; it still joins the collective the others wait in
            reduce_epoch(None, [], device, pad=len(self.specs[0]) + len(self.specs[1]))
            return {}
        loss_sums = self.loss_tracker.sums() if len(self.loss_tracker) else None
        loss, results = reduce_epoch(loss_sums, self.metrics, device)
        floats = torch.stack([loss, *[r.double().to(loss.device) for r in results]]).tolist()
        return {k: floats[i] for k, i in self._order}
