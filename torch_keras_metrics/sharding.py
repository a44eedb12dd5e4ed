"""Each rank's share of the data under `torch.distributed`: training batches and evaluation slices.

Training: every global batch of `batch_size` samples is cut into one part per rank (`shard_plan`), so
DDP's mean of the ranks' gradients, with each rank's loss scaled by its share, is the gradient of the
whole global batch. Evaluation: each rank takes a contiguous slice, every sample counted once, nothing
padded. A user's own `DataLoader` is used as given (it must shard itself, e.g. with a `DistributedSampler`).

>>> shard_plan(10, 4, rank=0, world=2)
[(0, 2, 1.0), (4, 6, 1.0), (8, 9, 1.0)]
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler, Subset

from .data import ArrayData, LoaderData, gather_rows, map_tensors, take_rows, unpack
from .distributed import shard_bounds

__all__ = [
    "shard_plan",
    "shard_for_fit",
    "shard_for_evaluate",
    "shard_for_training",
    "shard_for_eval",
    "local_batch_size",
    "warn_unsharded",
]


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


class ShardedArrayData:
    """One rank's training batches from in-memory arrays: `(x, y, sample_weight, loss_scale)`.

    Every rank draws the same permutation (the generators hold the same state) and takes its part of
    each global batch (`shard_plan`); a shuffled epoch gathers only this rank's rows, once.
    """

    def __init__(self, data: ArrayData, rank: int, world: int) -> None:
        self.data, self.rank, self.world, self.n = data, rank, world, data.n

    def __len__(self) -> int:
        return self.n

    @property
    def arrays(self) -> tuple[Any, Any, Any]:
        """The whole data's arrays (every rank holds them; each serves its rows)."""
        return self.data.arrays

    def steps(self, batch_size: int) -> int:
        return len(shard_plan(self.n, batch_size, self.rank, self.world))

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Any, Any, Any, float]]:
        plan = shard_plan(self.n, batch_size, self.rank, self.world)
        arrays = self.data.arrays
        if not shuffle:
            for lo, hi, scale in plan:
                yield (*take_rows(arrays, lo, hi), scale)
            return
        perm = torch.randperm(self.n, generator=generator)  # the same draw as a single process makes
        index = torch.cat([perm[lo:hi] for lo, hi, _ in plan]) if plan else perm[:0]
        arrays = map_tensors(lambda t: gather_rows(t, index), arrays)
        at = 0
        for lo, hi, scale in plan:
            yield (*take_rows(arrays, at, at + hi - lo), scale)
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
        self,
        dataset: Dataset,
        batch_size: int,
        rank: int,
        world: int,
        shuffle: bool,
        pin_memory: bool,
        generator: Any,
        target_keys: Any = None,
    ) -> None:
        super().__init__(dataset, pin_memory, target_keys)
        self.sampler = _PlanBatchSampler(len(dataset), batch_size, rank, world, shuffle, generator)  # type: ignore[arg-type]
        self.loader = DataLoader(dataset, batch_sampler=self.sampler, pin_memory=pin_memory)

    def steps(self, batch_size: int) -> int:
        return len(self.sampler)

    def batches(self, batch_size: int = 0, shuffle: bool = False, generator: Any = None) -> Iterator[Any]:
        for item, (_, _, scale) in zip(self.loader, self.sampler.plan):
            yield (*unpack(item, self.target_keys), scale)


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
    return ShardedLoaderData(
        data.dataset, batch_size, rank, world, shuffle, data.pin_memory, generator, data.target_keys
    )


def shard_for_eval(data: ArrayData | LoaderData, rank: int, world: int) -> ArrayData | LoaderData:
    """Evaluation data for one rank: a contiguous share, every sample counted once over all ranks.

    A user's `DataLoader` with a `DistributedSampler` is rebuilt over the rank's contiguous share, since
    that sampler repeats samples (or drops them with `drop_last`) when `world` does not divide the dataset.
    Other loaders are used as given: one that every rank reads whole still gives the exact means.
    """
    if isinstance(data, ArrayData):
        return data.part(*shard_bounds(data.n, rank, world))
    if data.dataset is not None and not isinstance(data.dataset, IterableDataset):
        part = Subset(data.dataset, range(*shard_bounds(len(data.dataset), rank, world)))  # type: ignore[arg-type]
        return LoaderData(part, data.pin_memory, data.target_keys)
    loader = data.loader
    if isinstance(loader.sampler, DistributedSampler) and loader.batch_size is not None:
        n = len(loader.dataset)  # type: ignore[arg-type]
        if n % world:
            return LoaderData(
                _rebuilt(loader, Subset(loader.dataset, range(*shard_bounds(n, rank, world)))),
                target_keys=data.target_keys,
            )
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


def local_batch_size(batch_size: int, world: int) -> int:
    """A rank's share of a global batch, rounded up (evaluation batches)."""
    return -(-batch_size // world)


def warn_unsharded(data: Any) -> None:
    """A user's DataLoader without a DistributedSampler feeds every rank the whole dataset: say so."""
    if not isinstance(data, LoaderData) or data.dataset is not None:
        return
    loader = data.loader
    samplers = (loader.sampler, getattr(loader.batch_sampler, "sampler", None), loader.batch_sampler)
    if isinstance(loader.dataset, torch.utils.data.IterableDataset):
        return  # it may shard itself by rank: nothing to tell
    if not any(isinstance(s, torch.utils.data.DistributedSampler) for s in samplers):
        warnings.warn(
            "Distributed training with a DataLoader without a DistributedSampler: every rank trains on the "
            "whole dataset. Pass the Dataset itself (the Trainer shards it) or use a DistributedSampler.",
            stacklevel=4,
        )


def shard_for_fit(
    train: Any, val: Any, batch_size: int, val_batch_size: int, shuffle: bool, generator: Any, dist: Any
) -> tuple[Any, Any, int]:
    """A fit's training and validation data for this rank, and this rank's validation batch size.

    Without a group (`dist` None) they are returned as they are. The ranks' generators must hold the same
    state (the Trainer broadcasts rank 0's), so that they draw the same shuffle.
    """
    if dist is None:
        return train, val, val_batch_size
    warn_unsharded(train)
    train = shard_for_training(train, batch_size, dist.rank, dist.world, shuffle, generator)
    val_batch_size = local_batch_size(val_batch_size, dist.world)
    return train, None if val is None else shard_for_eval(val, dist.rank, dist.world), val_batch_size


def shard_for_evaluate(data: Any, batch_size: int, dist: Any, built: bool = True) -> tuple[Any, int]:
    """`evaluate`'s data for this rank and its batch size (`ceil(batch_size / world)`); as given without a group.

    Unless the metrics are `built` already, each rank needs one sample to start: fewer samples than ranks raise.
    """
    if dist is None:
        return data, batch_size
    if isinstance(data, ArrayData) and data.n < dist.world and not built:
        raise ValueError(f"{data.n} samples for {dist.world} ranks: each rank needs one to start.")
    batch_size = local_batch_size(batch_size, dist.world)
    return shard_for_eval(data, dist.rank, dist.world), batch_size
