"""Batches for the Trainer: in-memory arrays by slicing tensors, or a torch `Dataset`/`DataLoader`.

In-memory data is never routed through a `DataLoader` (its per-batch collation costs about as much
as a small training step): a shuffled epoch gathers the whole array once in the new order, then
every batch is a slice (a view). A batch is a tuple `(x, y, sample_weight)` with `y` and
`sample_weight` possibly None. Under `torch.distributed`, `shard_for_training` and `shard_for_eval` give
each rank its share (training: a part of every global batch; evaluation: a contiguous, unpadded slice).

>>> import torch
>>> data = ArrayData(torch.arange(5.0), torch.arange(5))
>>> [tuple(b[1].tolist()) for b in data.batches(2, shuffle=False)]
[(0, 1), (2, 3), (4,)]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler, Subset

from .distributed import shard_bounds

Batch = tuple[Any, Any, Any]


def to_tensor(x: Any, name: str) -> Any:
    """A numpy array, list or tensor as a tensor (numpy memory shared); tuples/lists of arrays and dicts
    of arrays (multi-input models) keep their structure."""
    if x is None or isinstance(x, torch.Tensor):
        return x
    if isinstance(x, dict):
        return {k: to_tensor(v, f"{name}[{k!r}]") for k, v in x.items()}
    if isinstance(x, tuple) or (isinstance(x, list) and x and isinstance(x[0], (np.ndarray, torch.Tensor))):
        return tuple(to_tensor(v, f"{name}[{i}]") for i, v in enumerate(x))
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold numbers, got dtype {arr.dtype}.")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)  # Keras' floatx
    return torch.from_numpy(np.ascontiguousarray(arr))


def leaves(x: Any) -> list[torch.Tensor]:
    """Every tensor in a tensor, tuple/list or dict."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for v in x.values() for t in leaves(v)]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in leaves(v)]
    return []


def map_tensors(fn: Any, x: Any) -> Any:
    """Apply `fn` to every tensor in a tensor, tuple/list or dict."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, dict):
        return {k: map_tensors(fn, v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(map_tensors(fn, v) for v in x)
    return x


def num_samples(x: Any, name: str = "x") -> int:
    """Length of the first axis, the same for every tensor in `x`."""
    tensors = leaves(x)
    if not tensors:
        raise TypeError(f"`{name}` must be a tensor or array (or a tuple/dict of them), got {type(x).__name__}.")
    lengths = {t.shape[0] if t.dim() else None for t in tensors}
    if None in lengths:
        raise ValueError(f"`{name}` must have a batch axis, got a scalar.")
    if len(lengths) > 1:
        raise ValueError(f"The arrays in `{name}` have different numbers of samples: {sorted(lengths)}.")
    return lengths.pop()


class ArrayData:
    """In-memory `(x, y, sample_weight)` served in batches by slicing."""

    def __init__(self, x: Any, y: Any = None, sample_weight: Any = None, pin_memory: bool = False) -> None:
        self.x = to_tensor(x, "x")
        self.y = to_tensor(y, "y")
        self.sample_weight = to_tensor(sample_weight, "sample_weight")
        self.n = num_samples(self.x, "x")
        for name, arr in (("y", self.y), ("sample_weight", self.sample_weight)):
            if arr is not None and num_samples(arr, name) != self.n:
                raise ValueError(
                    f"`x` and `{name}` must have the same number of samples, got x: {self.n} and "
                    f"{name}: {num_samples(arr, name)}."
                )
        self.pin_memory = pin_memory
        if pin_memory:
            self.x, self.y, self.sample_weight = map_tensors(_pinned, (self.x, self.y, self.sample_weight))

    def __len__(self) -> int:
        return self.n

    def steps(self, batch_size: int) -> int:
        return math.ceil(self.n / batch_size)

    def split(self, validation_split: float) -> tuple[ArrayData, ArrayData]:
        """The first `floor(n * (1 - validation_split))` samples for training, the rest for validation (Keras)."""
        split_at = int(math.floor(self.n * (1.0 - validation_split)))
        if split_at == 0 or split_at == self.n:
            raise ValueError(
                f"validation_split={validation_split} leaves no samples for "
                f"{'training' if split_at == 0 else 'validation'} out of {self.n}."
            )
        return self.part(0, split_at), self.part(split_at, self.n)

    def part(self, lo: int, hi: int) -> ArrayData:
        """Samples `[lo, hi)` as views."""
        part = ArrayData.__new__(ArrayData)
        part.x, part.y, part.sample_weight = map_tensors(lambda t: t[lo:hi], self.arrays)
        part.n, part.pin_memory = hi - lo, self.pin_memory
        return part

    @property
    def arrays(self) -> tuple[Any, Any, Any]:
        return self.x, self.y, self.sample_weight

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """One pass over the data; shuffled by one gather of every array, then sliced into views."""
        arrays = self.arrays
        if shuffle:
            perm = torch.randperm(self.n, generator=generator)
            arrays = map_tensors(lambda t: _gather(t, perm), arrays)
        x, y, w = arrays
        if isinstance(x, torch.Tensor) and (y is None or isinstance(y, torch.Tensor)):
            for start in range(0, self.n, batch_size):  # the common case, without per-batch helpers
                end = start + batch_size
                yield x[start:end], None if y is None else y[start:end], None if w is None else w[start:end]
            return
        for start in range(0, self.n, batch_size):
            yield _rows(arrays, start, start + batch_size)


def _pinned(t: torch.Tensor) -> torch.Tensor:
    return t if t.device.type != "cpu" or t.is_pinned() else t.pin_memory()


def _gather(t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    out = t.index_select(0, perm.to(t.device))
    return out.pin_memory() if t.is_pinned() else out


class LoaderData:
    """A `DataLoader` (or a `Dataset` wrapped in one) yielding `(x, y)` or `(x, y, sample_weight)` (or `x`)."""

    def __init__(
        self,
        source: Dataset | DataLoader,
        batch_size: int,
        shuffle: bool,
        pin_memory: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.dataset = None if isinstance(source, DataLoader) else source  # None: the user's own loader
        if isinstance(source, DataLoader):
            self.loader = source
        elif isinstance(source, IterableDataset):  # it orders itself: no shuffling, no sampler
            self.loader = DataLoader(source, batch_size=batch_size, pin_memory=pin_memory)
        else:
            self.loader = DataLoader(
                source, batch_size=batch_size, shuffle=shuffle, pin_memory=pin_memory, generator=generator
            )

    def steps(self, batch_size: int) -> int | None:
        try:
            return len(self.loader)
        except TypeError:  # an IterableDataset without __len__
            return None

    def set_epoch(self, epoch: int) -> None:
        """Tell a `DistributedSampler` (or any sampler with `set_epoch`) which epoch starts, as torch asks."""
        for sampler in (self.loader.sampler, getattr(self.loader.batch_sampler, "sampler", None)):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
                return
        if hasattr(self.loader.batch_sampler, "set_epoch"):
            self.loader.batch_sampler.set_epoch(epoch)

    def batches(self, batch_size: int = 0, shuffle: bool = False, generator: Any = None) -> Iterator[Batch]:
        for item in self.loader:
            yield unpack(item)


def unpack(item: Any) -> Batch:
    """`(x, y, sample_weight)` from what a loader yields: `(x,)`, `(x, y)`, `(x, y, w)` or a bare `x`."""
    if isinstance(item, (tuple, list)):
        if len(item) == 1:
            return item[0], None, None
        if len(item) == 2:
            return item[0], item[1], None
        if len(item) == 3:
            return item[0], item[1], item[2]
        raise ValueError(
            f"A batch must be x, (x, y) or (x, y, sample_weight); got a {type(item).__name__} of {len(item)} items."
        )
    return item, None, None


def make_data(
    x: Any,
    y: Any,
    sample_weight: Any,
    batch_size: int,
    shuffle: bool,
    pin_memory: bool = False,
    generator: torch.Generator | None = None,
) -> ArrayData | LoaderData:
    """ArrayData for arrays and tensors; LoaderData for a Dataset or DataLoader (then `y` must be None)."""
    if isinstance(x, (Dataset, DataLoader)):
        if y is not None or sample_weight is not None:
            raise ValueError(
                f"`x` is a {type(x).__name__}: it must yield the targets itself, so pass no `y` or `sample_weight`."
            )
        return LoaderData(x, batch_size, shuffle, pin_memory, generator)
    if x is None:
        raise ValueError("`x` is required: a tensor, an array, a Dataset or a DataLoader.")
    return ArrayData(x, y, sample_weight, pin_memory=pin_memory)


def unpack_validation(validation_data: Any) -> tuple[Any, Any, Any]:
    """`validation_data` as (x, y, sample_weight); a Dataset/DataLoader goes through as x."""
    if isinstance(validation_data, (Dataset, DataLoader)):
        return validation_data, None, None
    if isinstance(validation_data, Sequence) and len(validation_data) in (2, 3):
        return tuple(validation_data) + (None,) * (3 - len(validation_data))  # type: ignore[return-value]
    raise ValueError(
        "`validation_data` must be (x_val, y_val), (x_val, y_val, val_sample_weight), a Dataset or a DataLoader; "
        f"got {type(validation_data).__name__}."
    )


# --------------------------------------------------------------------------- sharding over ranks
def shard_plan(n: int, batch_size: int, rank: int, world: int) -> list[tuple[int, int, float]]:
    """This rank's part of each global batch of an epoch: `(lo, hi, loss_scale)`, positions in the epoch's order.

    Every global batch of `batch_size` samples (the last one may be smaller) is cut into `world` parts whose
    sizes differ by one at most. A last batch with fewer samples than ranks is dropped (fewer than `world`
    samples an epoch). `loss_scale = world * (hi - lo) / b` makes DDP's average of the ranks' gradients of
    their batch-mean losses the gradient of the mean over the whole global batch of `b` samples.

    >>> shard_plan(10, 4, rank=1, world=2)
    [(2, 4, 1.0), (6, 8, 1.0), (9, 10, 1.0)]
    >>> shard_plan(11, 4, rank=0, world=3)
    [(0, 1, 0.75), (4, 5, 0.75), (8, 9, 1.0)]
    """
    plan = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        if b < world:
            break
        lo, hi = shard_bounds(b, rank, world)
        plan.append((start + lo, start + hi, world * (hi - lo) / b))
    return plan


def _rows(arrays: tuple[Any, Any, Any], lo: int, hi: int) -> Batch:
    x, y, w = arrays
    return (
        map_tensors(lambda t: t[lo:hi], x),
        None if y is None else map_tensors(lambda t: t[lo:hi], y),
        None if w is None else w[lo:hi],
    )


class ShardedArrayData:
    """One rank's training batches from in-memory arrays: `(x, y, sample_weight, loss_scale)`.

    Every rank draws the same permutation (the generators hold the same state) and takes its part of
    each global batch (`shard_plan`); a shuffled epoch gathers only this rank's rows, once.
    """

    def __init__(self, data: ArrayData, rank: int, world: int) -> None:
        self.data, self.rank, self.world, self.n = data, rank, world, data.n

    def __len__(self) -> int:
        return self.n

    def steps(self, batch_size: int) -> int:
        return len(shard_plan(self.n, batch_size, self.rank, self.world))

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Any, Any, Any, float]]:
        plan = shard_plan(self.n, batch_size, self.rank, self.world)
        arrays = self.data.arrays
        if not shuffle:
            for lo, hi, scale in plan:
                yield (*_rows(arrays, lo, hi), scale)
            return
        perm = torch.randperm(self.n, generator=generator)  # the same draw as a single process makes
        index = torch.cat([perm[lo:hi] for lo, hi, _ in plan]) if plan else perm[:0]
        arrays = map_tensors(lambda t: _gather(t, index), arrays)
        at = 0
        for lo, hi, scale in plan:
            yield (*_rows(arrays, at, at + hi - lo), scale)
            at += hi - lo


class _PlanBatchSampler(Sampler):
    """Index lists of one rank's part of each global batch (see `shard_plan`)."""

    def __init__(self, n: int, batch_size: int, rank: int, world: int, shuffle: bool, generator: Any) -> None:
        self.n, self.shuffle, self.generator = n, shuffle, generator
        self.plan = shard_plan(n, batch_size, rank, world)

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for lo, hi, _ in self.plan:
            yield order[lo:hi].tolist()


class ShardedLoaderData(LoaderData):
    """One rank's training batches from a map-style `Dataset`, with their loss scales."""

    def __init__(
        self, dataset: Dataset, batch_size: int, rank: int, world: int, shuffle: bool, pin_memory: bool, generator: Any
    ) -> None:
        self.dataset = dataset
        self.sampler = _PlanBatchSampler(len(dataset), batch_size, rank, world, shuffle, generator)  # type: ignore[arg-type]
        self.loader = DataLoader(dataset, batch_sampler=self.sampler, pin_memory=pin_memory)

    def batches(self, batch_size: int = 0, shuffle: bool = False, generator: Any = None) -> Iterator[Any]:
        for item, (_, _, scale) in zip(self.loader, self.sampler.plan):
            yield (*unpack(item), scale)


def shard_for_training(
    data: ArrayData | LoaderData, batch_size: int, rank: int, world: int, shuffle: bool, generator: Any
) -> ArrayData | LoaderData | ShardedArrayData:
    """Training data for one rank. A user's own `DataLoader` (or an `IterableDataset`) is used as given:
    it must shard itself, e.g. with a `DistributedSampler`."""
    if not isinstance(data, ArrayData) and (data.dataset is None or isinstance(data.dataset, IterableDataset)):
        return data
    if batch_size < world:
        raise ValueError(
            f"`batch_size` ({batch_size}) is the global batch: it must be at least the world size ({world})."
        )
    if isinstance(data, ArrayData):
        return ShardedArrayData(data, rank, world)
    pin = data.loader.pin_memory
    return ShardedLoaderData(data.dataset, batch_size, rank, world, shuffle, pin, generator)


def shard_for_eval(data: ArrayData | LoaderData, batch_size: int, rank: int, world: int) -> ArrayData | LoaderData:
    """Evaluation data for one rank: a contiguous share, every sample counted once over all ranks.

    A user's `DataLoader` with a `DistributedSampler` is rebuilt over the rank's contiguous share, since
    that sampler repeats samples (or drops them with `drop_last`) when `world` does not divide the dataset.
    Other loaders are used as given: one that every rank reads whole still gives the exact means.
    """
    if isinstance(data, ArrayData):
        return data.part(*shard_bounds(data.n, rank, world))
    if data.dataset is not None and not isinstance(data.dataset, IterableDataset):
        part = Subset(data.dataset, range(*shard_bounds(len(data.dataset), rank, world)))  # type: ignore[arg-type]
        return LoaderData(part, batch_size, False, data.loader.pin_memory)
    loader = data.loader
    if isinstance(loader.sampler, DistributedSampler) and loader.batch_size is not None:
        n = len(loader.dataset)  # type: ignore[arg-type]
        if n % world:
            return LoaderData(_rebuilt(loader, Subset(loader.dataset, range(*shard_bounds(n, rank, world)))), 0, False)
    return data


def _rebuilt(loader: DataLoader, dataset: Dataset) -> DataLoader:
    """`loader`'s settings over another dataset, in order, without its sampler."""
    kwargs: dict[str, Any] = dict(
        batch_size=loader.batch_size,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        persistent_workers=loader.persistent_workers,
    )
    if loader.num_workers:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(dataset, **kwargs)
