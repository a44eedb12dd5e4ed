"""Keras' callback base class and its two loggers: `Callback`, `BaseLogger` and `ProgbarLogger`.

A callback sees the trainer only through `self.trainer` (its `stop_training` flag and its `model`),
`self.model` (the torch module) and `self.params` (`epochs`, `steps`, `verbose`), plus the logs:
nothing here needs the Trainer's internals, so Keras' other callbacks port as they are.

Batch logs are `Logs` mappings holding the batch's own values (Keras 2's convention), read lazily;
epoch logs are plain dicts of floats holding the stateful epoch results (Keras 3's numbers).

>>> import torch
>>> from torch_keras_metrics.logs import Logs
>>> base = BaseLogger()
>>> base.on_epoch_begin(0)
>>> base.on_train_batch_end(0, Logs({"acc": torch.tensor(1.0)}, size=3))
>>> base.on_train_batch_end(1, Logs({"acc": torch.tensor(0.0)}, size=1))
>>> base.on_epoch_end(0, {})
>>> base.averages
{'acc': 0.75}
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Mapping
from typing import Any, Callable

from .batch_values import BatchValues, stack_floats
from .logs import Logs, raw_values
from .progbar import Progbar, write

__all__ = ["Callback", "BaseLogger", "ProgbarLogger", "stack_floats"]


class Callback:
    """Base class of callbacks; every hook Keras defines, each a no-op here.

    `get_config()` gives the arguments a callback was made with (recorded by its constructor), and
    `from_config(config)` makes an equal one: `type(cb).from_config(cb.get_config())`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Callback, *args: Any, **kw: Any) -> None:
            if "_config" not in self.__dict__:  # the outermost constructor records the arguments
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                config: dict[str, Any] = {}
                for name, value in list(bound.arguments.items())[1:]:
                    kind = signature.parameters[name].kind
                    if kind is inspect.Parameter.VAR_KEYWORD:
                        config.update(value)
                    elif kind is not inspect.Parameter.VAR_POSITIONAL:
                        config[name] = os.fspath(value) if isinstance(value, os.PathLike) else value
                self.__dict__["_config"] = config
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.trainer: Any = None

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (paths as strings), as Keras' configs hold them.

        >>> ProgbarLogger(interval=0.5).get_config()["interval"]
        0.5
        """
        return dict(self.__dict__.get("_config", {}))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Callback:
        """A new callback made with `config`'s arguments."""
        return cls(**config)

    @property
    def model(self) -> Any:
        """The torch module being trained (`self.trainer.model`)."""
        return getattr(self.trainer, "model", None)

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def set_model(self, trainer: Any) -> None:
        """Called with the Trainer; `self.model` is then its torch module."""
        self.trainer = trainer

    def on_batch_begin(self, batch: int, logs: Mapping | None = None) -> None:
        """Keras' alias of `on_train_batch_begin`."""

    def on_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        """Keras' alias of `on_train_batch_end`."""

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: Mapping | None = None) -> None:
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Mapping | None = None) -> None: ...

    def on_test_batch_end(self, batch: int, logs: Mapping | None = None) -> None: ...

    def on_predict_batch_begin(self, batch: int, logs: Mapping | None = None) -> None: ...

    def on_predict_batch_end(self, batch: int, logs: Mapping | None = None) -> None: ...

    def on_train_begin(self, logs: Mapping | None = None) -> None: ...

    def on_train_end(self, logs: Mapping | None = None) -> None: ...

    def on_test_begin(self, logs: Mapping | None = None) -> None: ...

    def on_test_end(self, logs: Mapping | None = None) -> None: ...

    def on_predict_begin(self, logs: Mapping | None = None) -> None: ...

    def on_predict_end(self, logs: Mapping | None = None) -> None: ...


def batch_size_of(logs: Mapping | None) -> int:
    if isinstance(logs, Logs):
        return logs.size
    return (logs or {}).get("size", 0)


class BaseLogger(Callback):
    """Keras 2's `BaseLogger`: each epoch value is `sum(value_b * size_b) / sum(size_b)` over the batch logs.

    Always installed by `Trainer.fit`. It keeps the batch values compactly on their device (one stacked
    tensor per key every `batch_values.CHUNK` batches) and reduces them once per epoch, so it never reads a
    device value per batch; it holds one epoch's values (4 bytes per key and batch for float32, 8 per
    batch for the size), not more, since Keras 2's reduction is Python's `sum` over the whole epoch in
    batch order, which a running total on the device (or one folded per chunk) would round differently
    (docs/semantics.md §21). Its numbers are in `averages` (the last epoch) and `history` (every epoch).
    With `overwrite=True` it also writes them into the epoch logs, as Keras 2 did; by default the epoch
    logs keep the stateful (Keras 3) results. Without sample weights both agree; with sample weights, or
    a metric function that returns a batch mean, they differ (docs/semantics.md §9).
    """

    def __init__(self, overwrite: bool = False) -> None:
        super().__init__()
        self.overwrite = overwrite
        self.averages: dict[str, float] = {}
        self.history: dict[str, list[float]] = {}
        self._batches = BatchValues()

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._batches.clear()

    def on_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        if type(logs) is Logs:
            self._batches.append(logs.tensors(), logs.size)
        else:
            self._batches.append(raw_values(logs), batch_size_of(logs))

    on_train_batch_end = on_batch_end

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self.averages = self._batches.means()
        self._batches.clear()
        for k, v in self.averages.items():
            self.history.setdefault(k, []).append(v)
        if self.overwrite and logs is not None:
            logs.update(self.averages)  # type: ignore[attr-defined]


def size_weighted_means(batches: list[tuple[Mapping, int]]) -> dict[str, float]:
    """Keras 2's reduction, `sum(v_b * n_b) / sum(n_b)` per key, computed in float64.

    >>> import torch
    >>> size_weighted_means([({"acc": torch.tensor(1.0)}, 3), ({"acc": 0.0}, 1)])
    {'acc': 0.75}
    """
    record = BatchValues()
    for values, n in batches:
        record.append(values, n)
    return record.means()


class ProgbarLogger(Callback):
    """Prints Keras 3's progress bar: a live bar (verbose=1) or one line per epoch (verbose=2).

    The live bar shows running epoch values, read from the device only when it redraws (every
    `interval` seconds at most). Validation inside `fit` is silent, as in Keras. `clock` is the bars'
    time source (`time.time`). Passed in `callbacks`, it replaces the one `fit`, `evaluate` and
    `predict` add by themselves, as in Keras.
    """

    def __init__(self, interval: float = 0.1, stream: Any = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.interval = interval
        self.stream = stream
        self.clock = clock
        self.progbar: Progbar | None = None
        self.verbose = 1
        self.epochs = 1
        self.target: int | None = None
        self.seen = 0
        self._called_in_fit = False

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self._called_in_fit = True

    def on_train_end(self, logs: Mapping | None = None) -> None:
        self._called_in_fit = False

    def on_test_begin(self, logs: Mapping | None = None) -> None:
        if not self._called_in_fit:
            self._reset()

    def on_predict_begin(self, logs: Mapping | None = None) -> None:
        self._reset()

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._reset()
        if self.verbose and self.epochs > 1:
            self._print(f"Epoch {epoch + 1}/{self.epochs}\n")

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self._update(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self._update(batch, None)

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self._finalize(logs)

    def on_test_end(self, logs: Mapping | None = None) -> None:
        if not self._called_in_fit:
            self._finalize(logs)

    def on_predict_end(self, logs: Mapping | None = None) -> None:
        self._finalize(None)

    def _print(self, message: str) -> None:
        write(message, self.stream)

    def _reset(self) -> None:
        self.seen = 0
        self.progbar = Progbar(
            self.target, verbose=self.verbose, interval=self.interval, stream=self.stream, clock=self.clock
        )

    def _update(self, batch: int, logs: Mapping | None) -> None:
        if self.progbar is None:
            self._reset()
        self.seen = batch + 1
        if self.verbose == 1 and self.progbar.will_draw(self.seen):
            values = logs.running() if isinstance(logs, Logs) else logs
            self.progbar.update(self.seen, values, finalize=False)
        elif self.verbose == 1:
            self.progbar.update(self.seen, None, finalize=False)

    def _finalize(self, logs: Mapping | None) -> None:
        if self.progbar is None:
            self._reset()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        # After Ctrl-C the bar ends where the epoch stopped (11/45), not at its target.
        current = self.seen if getattr(self.trainer, "interrupted", False) and self.seen else self.target
        self.progbar.update(current, logs or {}, finalize=True)
