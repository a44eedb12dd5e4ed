"""Batches for the Trainer: in-memory arrays by slicing tensors, or a torch `Dataset`/`DataLoader`.

In-memory data is never routed through a `DataLoader` (its per-batch collation costs about as much
as a small training step): a shuffled epoch gathers the whole array once in the new order, then
every batch is a slice (a view). A source yields tuples `(x, y, sample_weight)` with `y` and
`sample_weight` possibly None; `EpochIterator` serves one call's batches as `Batch`es on the device.
Each rank's share under `torch.distributed` is `sharding`'s job.

>>> import torch
>>> data = ArrayData(torch.arange(5.0), torch.arange(5))
>>> [tuple(b[1].tolist()) for b in data.batches(2, shuffle=False)]
[(0, 1), (2, 3), (4,)]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

Rows = tuple[Any, Any, Any]  # (x, y, sample_weight) as a source yields them


class Batch(NamedTuple):
    """One step's data: `x`, `y` and `sample_weight` (either may be None), and the step's `loss_scale`
    (a rank's share of a global batch, see `sharding.shard_plan`; 1.0 otherwise)."""

    x: Any
    y: Any
    sample_weight: Any
    loss_scale: float = 1.0


def to_tensor(x: Any, name: str) -> Any:
    """A numpy array, list or tensor as a tensor (numpy memory shared); tuples/lists of arrays and dicts
    of arrays (multi-input models) keep their structure."""
    if x is None or isinstance(x, torch.Tensor):
        return x
    if isinstance(x, dict):
        return {k: to_tensor(v, f"{name}[{k!r}]") for k, v in x.items()}
    if isinstance(x, tuple) or (isinstance(x, list) and x and isinstance(x[0], (np.ndarray, torch.Tensor))):
        return tuple(to_tensor(v, f"{name}[{i}]") for i, v in enumerate(x))
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged lists
        raise TypeError(f"`{name}` could not be read as an array of numbers: {err}") from None
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
    ) -> Iterator[Rows]:
        """One pass over the data; shuffled by one gather of every array, then sliced into views."""
        arrays = self.arrays
        if shuffle:
            perm = torch.randperm(self.n, generator=generator)
            arrays = map_tensors(lambda t: gather_rows(t, perm), arrays)
        x, y, w = arrays
        if isinstance(x, torch.Tensor) and (y is None or isinstance(y, torch.Tensor)):
            for start in range(0, self.n, batch_size):  # the common case, without per-batch helpers
                end = start + batch_size
                yield x[start:end], None if y is None else y[start:end], None if w is None else w[start:end]
            return
        for start in range(0, self.n, batch_size):
            yield take_rows(arrays, start, start + batch_size)


def _pinned(t: torch.Tensor) -> torch.Tensor:
    return t if t.device.type != "cpu" or t.is_pinned() else t.pin_memory()


def gather_rows(t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """The rows `perm` of `t`, pinned if `t` is."""
    out = t.index_select(0, perm.to(t.device))
    return out.pin_memory() if t.is_pinned() else out


class LoaderData:
    """A `DataLoader`, or a `Dataset` batched by one, yielding `(x, y)` or `(x, y, sample_weight)` (or `x`).

    A user's own `DataLoader` is used as it is (`dataset` is then None). A `Dataset` gets a `DataLoader`
    made for the batch size, shuffling and generator `batches` is called with (an `IterableDataset`
    orders itself: it is never shuffled).
    """

    def __init__(
        self, source: Dataset | DataLoader, pin_memory: bool = False, target_keys: Sequence[str] | None = None
    ) -> None:
        self.dataset = None if isinstance(source, DataLoader) else source  # None: the user's own loader
        self.pin_memory, self.target_keys = pin_memory, target_keys
        self.loader: DataLoader | None = source if isinstance(source, DataLoader) else None
        self._made_for: tuple[int, bool, Any] | None = None

    def _loader(self, batch_size: int, shuffle: bool = False, generator: Any = None) -> DataLoader:
        if self.dataset is None:
            return self.loader  # type: ignore[return-value]
        if self.loader is None or self._made_for != (batch_size, shuffle, generator):
            if isinstance(self.dataset, IterableDataset):
                self.loader = DataLoader(self.dataset, batch_size=batch_size, pin_memory=self.pin_memory)
            else:
                self.loader = DataLoader(
                    self.dataset,
                    batch_size=batch_size,
                    shuffle=shuffle,
                    pin_memory=self.pin_memory,
                    generator=generator,
                )
            self._made_for = (batch_size, shuffle, generator)
        return self.loader

    def steps(self, batch_size: int) -> int | None:
        """Batches per pass: read from the length, without making a loader (that waits for `batches`)."""
        try:
            return len(self.loader) if self.dataset is None else math.ceil(len(self.dataset) / batch_size)  # type: ignore[arg-type]
        except TypeError:  # an IterableDataset without __len__
            return None

    def set_epoch(self, epoch: int) -> None:
        """Tell a `DistributedSampler` (or any sampler with `set_epoch`) which epoch starts, as torch asks."""
        if self.loader is None:
            return
        for sampler in (self.loader.sampler, getattr(self.loader.batch_sampler, "sampler", None)):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
                return
        if hasattr(self.loader.batch_sampler, "set_epoch"):
            self.loader.batch_sampler.set_epoch(epoch)

    def batches(self, batch_size: int, shuffle: bool = False, generator: Any = None) -> Iterator[Rows]:
        for item in self._loader(batch_size, shuffle, generator):
            yield unpack(item, self.target_keys)


def split_targets(item: Mapping, target_keys: Sequence[str]) -> tuple[dict, Any]:
    """A dict batch (as transformers' collators make) as `(x, y)`: `y` the value of the one target key, or
    a dict of several; `x` the other keys.

    >>> split_targets({"input_ids": 1, "attention_mask": 2, "labels": 3}, ["labels"])
    ({'input_ids': 1, 'attention_mask': 2}, 3)
    """
    missing = [k for k in target_keys if k not in item]
    if missing:
        raise ValueError(f"A batch has keys {list(item)}, without the target key(s) {missing} (`target_keys`).")
    x = {k: v for k, v in item.items() if k not in target_keys}
    y = item[target_keys[0]] if len(target_keys) == 1 else {k: item[k] for k in target_keys}
    return x, y


def unpack(item: Any, target_keys: Sequence[str] | None = None) -> Rows:
    """`(x, y, sample_weight)` from what a loader yields: `(x,)`, `(x, y)`, `(x, y, w)`, a bare `x`, or a dict
    holding the targets under `target_keys`."""
    if target_keys and isinstance(item, Mapping):
        return (*split_targets(item, target_keys), None)
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
    x: Any, y: Any, sample_weight: Any, pin_memory: bool = False, target_keys: Sequence[str] | None = None
) -> ArrayData | LoaderData:
    """ArrayData for arrays and tensors; LoaderData for a Dataset or DataLoader (then `y` must be None).

    With `target_keys`, a dict `x` (or each dict batch of a loader) holds its targets under those keys.
    """
    if isinstance(x, (Dataset, DataLoader)):
        if y is not None or sample_weight is not None:
            raise ValueError(
                f"`x` is a {type(x).__name__}: it must yield the targets itself, so pass no `y` or `sample_weight`."
            )
        return LoaderData(x, pin_memory, target_keys)
    if x is None:
        raise ValueError("`x` is required: a tensor, an array, a Dataset or a DataLoader.")
    if target_keys and isinstance(x, Mapping) and y is None and any(k in x for k in target_keys):
        x, y = split_targets(x, target_keys)
    return ArrayData(x, y, sample_weight, pin_memory=pin_memory)


def fit_data(
    x: Any,
    y: Any,
    sample_weight: Any,
    validation_split: float,
    validation_data: Any,
    pin_memory: bool = False,
    target_keys: Sequence[str] | None = None,
) -> tuple[ArrayData | LoaderData, ArrayData | LoaderData | None]:
    """A fit's training and validation data, checked, and split as Keras splits (the last fraction, before
    any shuffling) when `validation_split` is given without `validation_data`."""
    train = make_data(x, y, sample_weight, pin_memory, target_keys)
    if validation_split and validation_data is None:
        if not isinstance(train, ArrayData):
            raise ValueError("`validation_split` needs in-memory arrays; pass `validation_data` with a Dataset.")
        return train.split(validation_split)
    if validation_data is not None:
        vx, vy, vw = unpack_validation(validation_data)
        return train, make_data(vx, vy, vw, pin_memory, target_keys)
    return train, None


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


def take_rows(arrays: tuple[Any, Any, Any], lo: int, hi: int) -> Rows:
    """Samples `[lo, hi)` of `(x, y, sample_weight)` as views."""
    x, y, w = arrays
    return (
        map_tensors(lambda t: t[lo:hi], x),
        None if y is None else map_tensors(lambda t: t[lo:hi], y),
        None if w is None else map_tensors(lambda t: t[lo:hi], w),
    )


class EpochIterator:
    """The batches of one `fit`, `evaluate` or `predict`: the data and how to serve it, given once.

    `epoch()` gives one epoch's `Batch`es, moved to `device` (unless the data lives there already).
    With `steps_per_epoch`, an epoch is at most that many batches, as Keras 3's `EpochIterator` counts
    them: training (`continues=True`) goes on where the last epoch stopped, and an epoch ends early when
    the data runs out (the next one starts the data again); otherwise (validation, `evaluate`, `predict`)
    every epoch takes the first batches. `steps` is the number of steps an epoch has (None for data of
    unknown length). `class_weight` turns each batch's labels into sample weights, as Keras does.

    >>> it = EpochIterator(ArrayData(torch.arange(5.0), torch.arange(5)), batch_size=2, steps_per_epoch=2)
    >>> [[b.y.tolist() for b in it.epoch()] for _ in range(3)]
    [[[0, 1], [2, 3]], [[4]], [[0, 1], [2, 3]]]
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        shuffle: bool = False,
        steps_per_epoch: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
        continues: bool = True,
        class_weight: dict[int, float] | None = None,
        input_dtype: torch.dtype | None = None,
    ) -> None:
        self.data, self.batch_size, self.shuffle, self.generator = data, batch_size, shuffle, generator
        self.steps_per_epoch, self.continues = steps_per_epoch, continues
        self._per_pass = data.steps(batch_size)  # batches in one pass over the data (None: unknown)
        self.steps = steps_per_epoch or self._per_pass
        self.device = device
        self.class_weight = class_weight
        self._move = device is not None and _needs_move(data, device)
        self.input_dtype = input_dtype
        self._cast = input_dtype is not None and _needs_cast(data, input_dtype)
        self._pass: Iterator | None = None
        self._seen = 0

    def set_epoch(self, epoch: int) -> None:
        """Tell the data's sampler which epoch starts (a `DistributedSampler` reshuffles by it)."""
        set_epoch = getattr(self.data, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)

    def epoch(self) -> Iterator[Batch]:
        """One epoch's batches."""
        batches = self._one_pass() if self.steps_per_epoch is None else self._take(self.steps_per_epoch)
        if self.class_weight is not None:
            batches = (self._weighted(rows) for rows in batches)
        if not self._move and not self._cast:
            return (Batch(*rows) for rows in batches)
        move, cast = self._to_device, self._cast_x
        return (Batch(cast(rows[0]), move(rows[1]), move(rows[2]), *rows[3:]) for rows in batches)

    def _one_pass(self) -> Iterator:
        return self.data.batches(self.batch_size, self.shuffle, self.generator)

    def _take(self, steps: int) -> Iterator:
        if self._pass is None or not self.continues:
            self._pass, self._seen = iter(self._one_pass()), 0
        known = self._per_pass
        ran_out = False
        for _ in range(steps):
            if known is not None and self._seen >= known:
                ran_out = True
                break
            try:
                rows = next(self._pass)
            except StopIteration:
                ran_out = True
                break
            self._seen += 1
            yield rows
        if ran_out:
            warnings.warn(
                f"The data ran out after {self._seen} batches, before steps_per_epoch={steps}: the epoch ends "
                "early (the next one starts the data again), as in Keras.",
                stacklevel=2,
            )
        if ran_out or (known is not None and self._seen >= known):
            self._pass = None

    def _weighted(self, rows: Any) -> Any:
        x, y, w, *rest = rows
        if not isinstance(y, torch.Tensor):
            raise ValueError("`class_weight` is only supported for models with a single output (as in Keras).")
        if w is not None:
            raise ValueError("You cannot use `class_weight` and `sample_weight` at the same time (as in Keras).")
        return (x, y, class_weight_to_sample_weight(y, self.class_weight), *rest)

    def _to_device(self, t: Any) -> Any:
        device = self.device
        if device is None:
            return t
        if isinstance(t, torch.Tensor):  # the common case, without the generic walk
            return t if t.device == device else t.to(device, non_blocking=True)
        return map_tensors(lambda v: v if v.device == device else v.to(device, non_blocking=True), t)

    def _cast_x(self, x: Any) -> Any:
        """The inputs on the device, floating ones in the model's dtype (as Keras casts to its Input's dtype)."""
        if not self._cast:
            return self._to_device(x)
        device, dtype = self.device, self.input_dtype

        def cast(v: torch.Tensor) -> torch.Tensor:
            to_dtype = dtype if v.is_floating_point() and v.dtype != dtype else None
            if to_dtype is None and (device is None or v.device == device):
                return v
            return v.to(device=device, dtype=to_dtype, non_blocking=True)

        return map_tensors(cast, x)


def class_weight_to_sample_weight(y: torch.Tensor, class_weight: dict[int, float]) -> torch.Tensor:
    """Each sample's weight is its class's (1.0 for a class not in `class_weight`), as Keras 3 reads labels:
    one-hot targets by their argmax, `(N, 1)` labels squeezed, float labels rounded.

    >>> class_weight_to_sample_weight(torch.tensor([0, 1, 2, 1]), {1: 9.0})
    tensor([1., 9., 1., 9.])
    """
    if y.dim() > 1:
        y = y.argmax(-1) if y.shape[-1] != 1 else y.squeeze(-1)
    labels = y.round().to(torch.int64) if y.is_floating_point() else y.to(torch.int64)
    weight = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    for cls, value in class_weight.items():
        weight = torch.where(labels == cls, torch.tensor(float(value), device=labels.device), weight)
    return weight


def _needs_cast(data: Any, dtype: torch.dtype) -> bool:
    """Whether some floating input may differ from `dtype` (always possible for data read batch by batch)."""
    arrays = getattr(data, "arrays", None)
    if arrays is None:
        return True
    return any(t.is_floating_point() and t.dtype != dtype for t in leaves(arrays[0]))


def _needs_move(data: Any, device: torch.device) -> bool:
    """Whether batches must be copied to `device` (not when in-memory data already lives there)."""
    arrays = getattr(data, "arrays", None)  # in-memory data: an ArrayData, or one rank's share of one
    if arrays is None:
        return True
    return any(t.device != device for part in arrays if part is not None for t in leaves(part))
