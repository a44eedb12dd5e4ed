"""Batch logs that keep their values on the device until somebody reads them.

`on_train_batch_end(batch, logs)` receives a `Logs`: a mutable mapping whose tensor values turn into
Python floats (one `.item()` each, cached) only when a key is read. A run whose callbacks read nothing
never waits for the device per batch. Callbacks that aggregate without reading (BaseLogger, History)
take the tensors themselves from `logs.tensors()`; the progress bar asks `logs.running()` for the
running (Keras 3) values only when it redraws.

>>> import torch
>>> logs = Logs({"loss": torch.tensor(0.25)}, size=16)
>>> logs["loss"], logs["size"]
(0.25, 16)
>>> sorted(logs)
['loss', 'size']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Callable

import torch

_NO_RUNNING: Callable[[], Mapping] = dict


class Logs(MutableMapping):
    """Per-batch logs: `values` (name -> tensor or number) plus `size`, read lazily as floats."""

    __slots__ = ("_values", "_cache", "size", "_running")

    def __init__(self, values: dict[str, Any], size: int, running: Callable[[], Mapping] | None = None) -> None:
        self._values = values
        self._cache: dict[str, Any] | None = None  # created on the first read
        self.size = size
        self._running = running or _NO_RUNNING

    def __getitem__(self, key: str) -> Any:
        if key == "size":
            return self.size
        if self._cache is None:
            self._cache = {}
        elif key in self._cache:
            return self._cache[key]
        value = self._values[key]
        if isinstance(value, torch.Tensor):
            value = value.item()
        self._cache[key] = value
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "size":
            self.size = value
            return
        self._values[key] = value
        if self._cache:
            self._cache.pop(key, None)

    def __delitem__(self, key: str) -> None:
        del self._values[key]
        if self._cache:
            self._cache.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        yield from sorted(self._values)  # Keras 3 sorts its logs
        yield "size"

    def __len__(self) -> int:
        return len(self._values) + 1

    def __contains__(self, key: object) -> bool:
        return key == "size" or key in self._values

    def tensors(self) -> dict[str, Any]:
        """The values as they are (tensors stay tensors), without `size`; reads nothing."""
        return self._values

    def running(self) -> Mapping:
        """The running values of the epoch so far, as Keras 3 logs them per batch (read when called)."""
        return self._running()

    def __repr__(self) -> str:
        return f"Logs({dict(self)!r})"


def raw_values(logs: Mapping | None) -> dict[str, Any]:
    """Tensors from a `Logs`, or the numeric values of a plain dict (without `size`)."""
    if logs is None:
        return {}
    if isinstance(logs, Logs):
        return logs.tensors()
    return {k: v for k, v in logs.items() if k not in ("size", "batch")}
