"""`History` (Keras' record of a `fit`), with every batch's own values, and `plot_history`.

`history.history` maps each key Keras logs (`loss`, `accuracy`, `val_loss`, ...) to its per-epoch
values; `history.epoch` lists the epochs; `history.batches[i]` holds epoch i's per-batch values
(`{"loss": [...], "accuracy": [...], "size": [...]}`), read from the device once per epoch.
`History(batches=False)` keeps the epoch values only (docs/semantics.md §21).

>>> import torch
>>> from torch_keras_metrics.logs import Logs
>>> h = History()
>>> h.on_train_begin()
>>> h.on_epoch_begin(0)
>>> h.on_train_batch_end(0, Logs({"loss": torch.tensor(0.5)}, size=2))
>>> h.on_epoch_end(0, {"loss": 0.5})
>>> h.history, h.batches
({'loss': [0.5]}, [{'loss': [0.5], 'size': [2]}])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .batch_values import BatchValues
from .callbacks import Callback, batch_size_of
from .logs import Logs, raw_values

__all__ = ["History", "plot_history"]


class History(Callback):
    """Records epoch logs (`history`, `epoch`) and each epoch's batch values (`batches`).

    As in Keras, a key holds the epochs that logged it (`val_` keys only the validated ones, with
    `validation_freq`). The last epoch of a `fit` stopped by Ctrl-C is kept with its training values and
    NaN for the keys it lacks (its validation did not run), so that the lists stay aligned.

    During an epoch the batch values wait on their device, stacked into one tensor per key every
    `batch_values.CHUNK` batches (4 bytes per float32 value, 8 per batch size), and are read once at
    its end. `batches=False` keeps no per-batch record across epochs (`batches` stays empty), for runs
    of millions of steps; `history` and `keras2_history` are the same. Passed in `callbacks`, it replaces
    the History `fit` adds, as in Keras.

    >>> History(batches=False).batches
    []
    """

    def __init__(self, batches: bool = True) -> None:
        super().__init__()
        self.keep_batches = batches
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.batches: list[dict[str, list[float]]] = []
        self._epoch_batches = BatchValues()
        self._keras2: list[dict[str, float]] = []

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self.epoch = []

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._epoch_batches.clear()

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        if type(logs) is Logs:  # the common case, without the generic helpers
            self._epoch_batches.append(logs.tensors(), logs.size)
        else:
            self._epoch_batches.append(raw_values(logs), batch_size_of(logs))

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        if getattr(self.trainer, "interrupted", False):
            # An epoch stopped by Ctrl-C keeps its training values; the keys it lacks (its validation did
            # not run) are NaN there, so the lists stay aligned with `epoch`.
            for k, values in self.history.items():
                if k not in logs:
                    values.append(math.nan)
        values, sizes, means = self._epoch_batches.read(values=self.keep_batches)
        if self.keep_batches:
            self.batches.append({**values, "size": sizes})
        self._keras2.append(means)
        self._epoch_batches.clear()
        if self.trainer is not None:
            self.trainer.history = self

    def state_dict(self) -> dict[str, Any]:
        """The record as plain lists and dicts (what a checkpoint stores).

        >>> h = History(); h.on_epoch_end(0, {"loss": 0.5}); h.state_dict()["history"]
        {'loss': [0.5]}
        """
        return {
            "history": {k: list(v) for k, v in self.history.items()},
            "epoch": list(self.epoch),
            "batches": [{k: list(v) for k, v in record.items()} for record in self.batches],
            "keras2": [dict(means) for means in self._keras2],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the record with `state` (from `state_dict`); a `fit` continuing a run then appends to it."""
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.epoch = list(state["epoch"])
        if self.keep_batches:
            self.batches = [{k: list(v) for k, v in record.items()} for record in state["batches"]]
        self._keras2 = [dict(means) for means in state.get("keras2", [])]

    @property
    def keras2_history(self) -> dict[str, list[float]]:
        """Per-epoch values as Keras 2's BaseLogger reduced them: batch values weighted by batch size."""
        out: dict[str, list[float]] = {}
        for epoch in self._keras2:
            for k, v in epoch.items():
                out.setdefault(k, []).append(v)
        return out

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def running_mean(values: list[float], sizes: list[int]) -> list[float]:
    """Running size-weighted mean of batch values: what a Keras progress bar shows after each batch.

    >>> running_mean([1.0, 0.0, 1.0], [2, 2, 1])
    [1.0, 0.5, 0.6]
    """
    out, total, seen = [], 0.0, 0
    for v, n in zip(values, sizes):
        total += v * n
        seen += n
        out.append(total / seen if seen else 0.0)
    return out


def plot_history(
    history: History, keys: list[str] | None = None, batches: bool = False, path: str | None = None
) -> Any:
    """Plot epoch curves (one panel per metric, with its `val_` twin); with `batches=True` also every
    batch's value and its running mean against the epoch axis. Saves to `path` if given; returns the figure.

    matplotlib is imported only here.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = keys or [k for k in history.history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    epochs = [e + 1 for e in history.epoch]
    for ax, name in zip(axes[0], names):
        if batches and history.batches:
            xs: list[float] = []
            vals: list[float] = []
            runs: list[float] = []
            for e, record in zip(history.epoch, history.batches):
                if name not in record:
                    continue
                n = len(record[name])
                xs += [e + (i + 1) / n for i in range(n)] + [float("nan")]  # NaN: no line across epochs
                vals += record[name] + [float("nan")]
                runs += running_mean(record[name], record["size"]) + [float("nan")]
            ax.plot(xs, vals, ".", ms=2, alpha=0.35, label=f"{name} (batch)")
            ax.plot(xs, runs, "-", lw=1, label=f"{name} (running mean)")
        if name in history.history:
            ax.plot(epochs, history.history[name], "o-", label=f"{name} (epoch)")
        if f"val_{name}" in history.history:
            ax.plot(epochs, history.history[f"val_{name}"], "s--", label=f"val_{name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
