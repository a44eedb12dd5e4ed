"""`CallbackList`: the callbacks of one `fit`, `evaluate` or `predict`, with Keras' default ones added.

As Keras 3's `CallbackList`, it adds the callbacks every run has (here `BaseLogger`, `History` and the
progress bar) unless the user passed one of that kind, and calls each hook on every callback in
order. Batch hooks go only to the callbacks that override them, so an unused hook costs nothing per
batch: `batch_hooks(name)` gives those bound methods, and every batch hook goes through them.

>>> from torch_keras_metrics.callbacks import Callback
>>> class Seen(Callback):
...     def on_train_batch_end(self, batch, logs=None):
...         print("batch", batch)
>>> cbs = CallbackList([Seen()], add_history=True, epochs=1, steps=1, verbose=0)
>>> [type(c).__name__ for c in cbs], len(cbs.batch_hooks("on_train_batch_end"))
(['Seen', 'History'], 2)
>>> cbs.on_train_batch_end(0, {})
batch 0
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .callbacks import BaseLogger, Callback, ProgbarLogger
from .history import History

__all__ = ["CallbackList", "check_callbacks"]

_BATCH_HOOKS = tuple(f"on_{mode}_batch_{when}" for mode in ("train", "test", "predict") for when in ("begin", "end"))


def _overrides(cb: Callback, hook: str) -> bool:
    own = getattr(cb, "__dict__", {})  # hooks set on the instance, as LambdaCallback sets them
    if hook.startswith("on_train_batch_"):
        alias = hook.replace("on_train_batch_", "on_batch_")
        if alias in own or getattr(type(cb), alias, None) is not getattr(Callback, alias):
            return True
    return hook in own or getattr(type(cb), hook, None) is not getattr(Callback, hook)


def check_callbacks(callbacks: Any) -> list[Callback]:
    """`callbacks` as a list: None, one callback (as Keras flattens it) or a list/tuple of `Callback`s.

    >>> check_callbacks(None), len(check_callbacks(Callback()))
    ([], 1)
    """
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            f"`callbacks` must be a list of Callback instances (or one), got {type(callbacks).__name__}: {callbacks!r}."
        )
    for i, c in enumerate(callbacks):
        if not isinstance(c, Callback):
            raise TypeError(
                f"`callbacks[{i}]` must be a torch_keras_metrics Callback (subclass `Callback` and override its "
                f"`on_*` hooks), got {type(c).__name__}: {c!r}."
            )
    return list(callbacks)


class CallbackList(Callback):
    """Calls every hook on each of its callbacks, in order; adds the default callbacks asked for.

    `add_base_logger` puts a `BaseLogger` first (always a new one: it is the Trainer's record of Keras
    2's averages); `add_history` and `add_progbar` append a `History` and a `ProgbarLogger` unless the
    callbacks hold one already, as Keras does. They are then `base_logger`, `history` and `progbar`.
    """

    def __init__(
        self,
        callbacks: Iterable[Callback] | None = None,
        add_history: bool = False,
        add_progbar: bool = False,
        add_base_logger: bool = False,
        trainer: Any = None,
        **params: Any,
    ) -> None:
        super().__init__()
        self.callbacks: list[Callback] = check_callbacks(callbacks)
        self.base_logger = BaseLogger() if add_base_logger else None
        if self.base_logger is not None:
            self.callbacks.insert(0, self.base_logger)
        self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        self.progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self.progbar is None and add_progbar:
            self.progbar = ProgbarLogger()
            self.callbacks.append(self.progbar)
        self._batch_calls: dict[str, list] = {}
        self._index()
        if trainer is not None:
            self.set_model(trainer)
        if params:
            self.set_params(params)

    def _index(self) -> None:
        self._batch_calls = {h: [getattr(c, h) for c in self.callbacks if _overrides(c, h)] for h in _BATCH_HOOKS}

    def batch_hooks(self, hook: str) -> list:
        """The bound `hook` methods of the callbacks that override it (e.g. `"on_train_batch_end"`)."""
        return self._batch_calls[hook]

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)
        self._index()
        if self.trainer is not None:
            callback.set_model(self.trainer)
        if self.params:
            callback.set_params(self.params)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params
        for c in self.callbacks:
            c.set_params(params)

    def set_model(self, trainer: Any) -> None:
        self.trainer = trainer
        for c in self.callbacks:
            c.set_model(trainer)

    def _call(self, hook: str, *args: Any) -> None:
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def _batch(self, hook: str, batch: int, logs: Mapping | None) -> None:
        for f in self._batch_calls[hook]:
            f(batch, logs)

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Mapping | None = None) -> None:
        self._batch("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self._batch("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch: int, logs: Mapping | None = None) -> None:
        self._batch("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self._batch("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch: int, logs: Mapping | None = None) -> None:
        self._batch("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self._batch("on_predict_batch_end", batch, logs)

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self._call("on_train_begin", logs)

    def on_train_end(self, logs: Mapping | None = None) -> None:
        self._call("on_train_end", logs)

    def on_test_begin(self, logs: Mapping | None = None) -> None:
        self._call("on_test_begin", logs)

    def on_test_end(self, logs: Mapping | None = None) -> None:
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs: Mapping | None = None) -> None:
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs: Mapping | None = None) -> None:
        self._call("on_predict_end", logs)
