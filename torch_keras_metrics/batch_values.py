"""An epoch's per-batch values, kept compact on their device and read once at the epoch's end.

A step makes a few 0-d tensors per batch (the loss, each metric's batch value). Kept as they come, an
epoch of a million batches holds millions of tensor objects (about 600 B each on the host; on CUDA each
is an allocation rounded up to 512 B). Here the latest batches' values wait in a list, and every `CHUNK`
batches they are stacked into one 1-d tensor per key, on their own device (no device read), so a value
costs its dtype's bytes and the live 0-d tensors stay under `CHUNK` per key. The epoch's end reads each
key from the device once. A stacked write per batch (`buffer[i] = value`) would cost a few microseconds
per value; one `torch.stack` of a chunk costs a fraction of a microsecond per value.

The numbers are those of the straightforward reduction (`stack_floats` and Keras 2's size-weighted mean
with Python's `sum`), bit for bit: values that are not tensors of one dtype (a float a callback puts in
the logs, a dtype that changes) keep what they are and take the same path.

>>> import torch
>>> record = BatchValues()
>>> record.append({"loss": torch.tensor(0.5), "acc": torch.tensor(1.0)}, 4)
>>> record.append({"loss": torch.tensor(0.25)}, 2)
>>> record.floats("loss"), record.sizes("acc"), record.sizes()
([0.5, 0.25], [4], [4, 2])
>>> record.means()
{'acc': 0.6666666666666666, 'loss': 0.4166666666666667}
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, Union

import torch

__all__ = ["CHUNK", "BatchValues", "Column", "stack_floats"]

CHUNK = 512  # values stacked at once: bounds the live 0-d tensors per key

_Part = Union[torch.Tensor, array, list]


def stack_floats(values: Sequence[Any]) -> list[float]:
    """Many scalars (tensors or numbers) as Python floats, with one device read for all tensors.

    >>> import torch
    >>> stack_floats([torch.tensor(0.5), torch.tensor(0.25)]), stack_floats([torch.tensor(0.5), 2])
    ([0.5, 0.25], [0.5, 2.0])
    """
    if not values:
        return []
    if all(isinstance(v, torch.Tensor) for v in values):
        dtype = values[0].dtype
        if any(v.dtype != dtype for v in values):
            values = [v.float() for v in values]
        stacked = torch.stack(list(values))
        return (stacked.reshape(len(values)) if stacked.numel() == len(values) else stacked).tolist()
    return [float(v) for v in values]


def _plain(values: Sequence[Any]) -> array | list:
    """Numbers that are not tensors: Python floats (or ints) in an array, anything else as it is."""
    kinds = set(map(type, values))
    if kinds == {float}:
        return array("d", values)
    if kinds == {int}:
        try:
            return array("q", values)
        except OverflowError:
            pass
    return list(values)


# The last few stacked runs and their sources: the loss tracker, `BaseLogger` and `History` each stack the
# same tensors of the same batches, so the second and third get the first one's chunk (never written to).
_RECENT: list[tuple[Sequence[Any], torch.Tensor]] = []


def _compact(values: Sequence[Any]) -> _Part:
    """A run of values as one 1-d tensor when they are tensors of one dtype (on one device), else as `_plain`."""
    for source, done in _RECENT:
        if len(source) == len(values) and all(map(operator.is_, source, values)):
            return done
    try:
        stacked = torch.stack(values if isinstance(values, list) else list(values))
    except (TypeError, RuntimeError):  # not all tensors, or shapes or devices that do not stack
        return _plain(values)
    # torch.stack promotes mixed dtypes; a float32 result holds each value as `.float()` gives it, which
    # is what `stack_floats` makes of mixed tensors, so only other results need the check.
    if stacked.dtype is not torch.float32 and len({v.dtype for v in values}) > 1:
        return list(values)
    if stacked.requires_grad:
        stacked = stacked.detach()
    _RECENT.append((values, stacked))
    if len(_RECENT) > 8:
        del _RECENT[0]
    return stacked


def _values_of(parts: Iterable[_Part]) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        out.extend(part.unbind(0) if isinstance(part, torch.Tensor) else part)
    return out


class Column:
    """One key's values in batch order: stacked chunks of `CHUNK` values plus the latest ones.

    >>> import torch
    >>> column = Column()
    >>> for v in (0.5, 0.25, 1.0):
    ...     column.append(torch.tensor(v))
    >>> len(column), column.tensor(), column.floats()
    (3, tensor([0.5000, 0.2500, 1.0000]), [0.5, 0.25, 1.0])
    """

    __slots__ = ("_parts", "_pending", "_stacked")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """No values."""
        self._parts: list[_Part] = []
        self._pending: list[Any] = []
        self._stacked = 0

    def __len__(self) -> int:
        return self._stacked + len(self._pending)

    def append(self, value: Any) -> None:
        """Add one value (no device read; every `CHUNK` values, one stack on their device)."""
        pending = self._pending
        if len(pending) >= CHUNK:
            pending = self._flush()
        pending.append(value)

    def extend(self, values: Sequence[Any]) -> None:
        """Add a run of values at once (stacked now)."""
        if self._pending:
            self._flush()
        if values:
            self._parts.append(_compact(values))
            self._stacked += len(values)

    def pop(self) -> None:
        """Forget the last value."""
        if not self._pending and self._parts:
            self._pending = _values_of([self._parts.pop()])
            self._stacked -= len(self._pending)
        if self._pending:
            self._pending.pop()

    def _flush(self) -> list[Any]:
        self._parts.append(_compact(self._pending))
        self._stacked += len(self._pending)
        self._pending = []
        return self._pending

    def parts(self) -> list[_Part]:
        """The values as stacked tensors and plain runs, in order (the latest ones stacked now)."""
        if self._pending:
            self._flush()
        return self._parts

    def tensor(self) -> torch.Tensor:
        """All values as one tensor (on their device; `torch.stack` of them, without a device read)."""
        parts = [p if isinstance(p, torch.Tensor) else torch.stack(list(p)) for p in self.parts()]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def floats(self) -> list[float]:
        """The values as `stack_floats(values)` gives them (one device read when they are tensors)."""
        t = self.stacked()
        return t.tolist() if t is not None else stack_floats(_values_of(self.parts()))

    def stacked(self) -> torch.Tensor | None:
        """All values as `stack_floats` stacks them, when they all are tensors (else None); no device read."""
        parts = self.parts()
        if not parts or not all(isinstance(p, torch.Tensor) for p in parts):
            return None
        if len({p.dtype for p in parts}) > 1:
            parts = [p.float() for p in parts]
        t = parts[0] if len(parts) == 1 else torch.cat(parts)
        return t.reshape(len(self)) if t.numel() == len(self) else t  # a metric of several values keeps its axes


class _Key:
    """A key's column and the batches that logged it: a contiguous run from `start`, or `positions`."""

    __slots__ = ("column", "start", "positions")

    def __init__(self) -> None:
        self.column = Column()
        self.start = 0
        self.positions: array | None = None

    def extend(self, values: Sequence[Any], first: int, positions: Sequence[int] | None = None) -> None:
        m = len(values)
        count = len(self.column)
        contiguous = positions is None or positions[-1] - positions[0] == m - 1
        if count == 0 and contiguous:
            self.start = first
        elif self.positions is None and contiguous and self.start + count == first:
            pass
        else:
            if self.positions is None:
                self.positions = array("q", range(self.start, self.start + count))
            self.positions.extend(range(first, first + m) if positions is None else positions)
        self.column.extend(values)

    def sizes(self, all_sizes: Any) -> Any:
        """This key's batches' sizes out of every batch's (a list or a tensor)."""
        if self.positions is None:
            return all_sizes[self.start : self.start + len(self.column)]
        if isinstance(all_sizes, torch.Tensor):
            return all_sizes[torch.frombuffer(self.positions, dtype=torch.int64)]
        return [all_sizes[i] for i in self.positions]


class BatchValues:
    """An epoch's batch logs by key (a key holds the batches that logged it) and every batch's size.

    `append` keeps a reference to the values and reads them when their chunk is stacked, after their batch:
    a callback later in the same batch may still add to them, as with a list of the logs.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """No batches."""
        self._pending: list[Mapping[str, Any]] = []
        self._pending_sizes: list[Any] = []
        self._keys: dict[str, _Key] = {}
        self._size_parts: list[array | list] = []
        self._folded = 0

    def __len__(self) -> int:
        return self._folded + len(self._pending)

    def append(self, values: Mapping[str, Any], size: Any) -> None:
        """Add one batch's values (tensors or numbers, by key) and its size; reads nothing."""
        pending = self._pending
        if len(pending) >= CHUNK:
            pending = self._fold()
        pending.append(values)
        self._pending_sizes.append(size)

    def _key(self, key: str) -> _Key:
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = _Key()
        return entry

    def _fold(self) -> list[Mapping[str, Any]]:
        pending, first, m = self._pending, self._folded, len(self._pending)
        self._size_parts.append(_plain(self._pending_sizes))
        keys = tuple(pending[0])
        rows: list[Any] | None = None
        if keys:  # the common case: every batch logged the same keys
            try:
                rows = list(map(operator.itemgetter(*keys), pending))
            except KeyError:
                rows = None
            if rows is not None and sum(map(len, pending)) != len(keys) * m:
                rows = None
        elif not any(pending):
            rows = []
        if rows is not None:
            columns = zip(*rows) if len(keys) > 1 else (rows,)
            for key, column in zip(keys, columns):
                self._key(key).extend(column, first)
        else:
            by_key: dict[str, tuple[list[Any], list[int]]] = {}
            for i, values in enumerate(pending, first):
                for key, v in values.items():
                    entry = by_key.setdefault(key, ([], []))
                    entry[0].append(v)
                    entry[1].append(i)
            for key, (column, positions) in by_key.items():
                self._key(key).extend(column, positions[0], positions)
        self._folded += m
        self._pending, self._pending_sizes = [], []
        return self._pending

    def keys(self) -> list[str]:
        """The keys logged so far, sorted (as Keras sorts its logs)."""
        return sorted(set(self._keys).union(*self._pending))

    def floats(self, key: str) -> list[float]:
        """The values of `key`, one per batch that logged it, as `stack_floats` gives them."""
        return self.read()[0][key]

    def sizes(self, key: str | None = None) -> list[Any]:
        """Every batch's size, or those of the batches that logged `key`."""
        if self._pending:
            self._fold()
        all_sizes = list(chain.from_iterable(self._size_parts))
        return all_sizes if key is None else self._keys[key].sizes(all_sizes)

    def means(self) -> dict[str, float]:
        """Keras 2's reduction per key: `sum(value_b * size_b) / sum(size_b)` over every batch, in float64."""
        return self.read(values=False)[2]

    def read(self, values: bool = True) -> tuple[dict[str, list[Any]], list[Any], dict[str, float]]:
        """`(floats by key, sizes, means)`, with one device read per key; with `values=False`, the means only.

        The means are those of `sum(f * n for f, n in zip(floats, sizes)) / sum(sizes)`, bit for bit: the
        products are the same IEEE float64 multiplications when torch makes them, and the sum stays
        Python's `sum` (whose rounding differs between Python versions).
        """
        if self._pending:
            self._fold()
        ints = all(isinstance(p, array) and p.typecode == "q" for p in self._size_parts)
        floats: dict[str, list[Any]] = {}
        means: dict[str, float] = {}
        if ints:
            packed = array("q")
            for part in self._size_parts:
                packed.extend(part)  # type: ignore[arg-type]
            seen = sum(packed)
            all_sizes: Any = packed.tolist() if values else None
            weights = torch.frombuffer(packed, dtype=torch.int64).double() if packed else None
        else:
            all_sizes = list(chain.from_iterable(self._size_parts))
            seen, weights = sum(all_sizes), None
        for key in sorted(self._keys):
            entry = self._keys[key]
            t = entry.column.stacked()
            if t is not None and t.dim() > 1:  # several values per batch (per class, per threshold)
                floats[key] = t.tolist()
                w = entry.sizes(weights if weights is not None else torch.tensor(all_sizes, dtype=torch.float64))
                products = (t.double() * w.to(t.device).reshape(-1, *[1] * (t.dim() - 1))).reshape(t.shape[0], -1)
                sums = [sum(column) for column in zip(*products.tolist())]
                means[key] = [v / seen for v in sums] if seen else [0.0] * len(sums)
                continue
            if t is not None and t.is_floating_point() and weights is not None and seen:
                products = t.double() * entry.sizes(weights).to(t.device)
                if values:
                    floats[key], products_list = torch.stack([t.double(), products]).tolist()
                else:
                    products_list = products.tolist()
                means[key] = sum(products_list) / seen
                continue
            floats[key] = t.tolist() if t is not None else stack_floats(_values_of(entry.column.parts()))
            if seen:
                sizes = entry.sizes(all_sizes if all_sizes is not None else packed.tolist())
                means[key] = sum(map(operator.mul, floats[key], sizes)) / seen
            else:
                means[key] = 0.0
        return floats, (all_sizes if all_sizes is not None else []), means
