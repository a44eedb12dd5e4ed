"""The `torch.distributed` side of the Trainer: the process group, the rank's device, one collective per epoch.

Nothing here is a distribution layer of its own: the process group is torch's (initialised by the user,
or here from `torchrun`'s environment), the model is wrapped in torch's `DistributedDataParallel`, and
metric states are summed with one `all_reduce`. Without an initialised group every helper answers as a
single process does, so callbacks may call `is_main_process()` unconditionally.

>>> rank(), world_size(), is_main_process()
(0, 1, True)
>>> shard_bounds(1001, rank=2, world=3)
(667, 1001)
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistContext",
    "place",
    "setup",
    "rank",
    "world_size",
    "is_main_process",
    "unwrap_model",
    "shard_bounds",
    "reduce_epoch",
    "agree",
]

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
STALL_GRACE_S = 5.0  # how long a rank that timed out waits for the others to say they timed out too


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process' rank in the default group, 0 without one."""
    return dist.get_rank() if _active() else 0


def world_size() -> int:
    """The number of processes in the default group, 1 without one."""
    return dist.get_world_size() if _active() else 1


def is_main_process() -> bool:
    """Whether this process is rank 0: the one that prints and writes files."""
    return rank() == 0


def unwrap_model(model: Any) -> Any:
    """The module itself, out of `DistributedDataParallel`, `DataParallel` and `torch.compile` wrappers.

    >>> net = torch.nn.Linear(1, 1)
    >>> unwrap_model(torch.nn.DataParallel(net)) is net
    True
    """
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while True:
        if isinstance(model, parallel):
            model = model.module
        elif isinstance(model, torch.nn.Module) and isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rank `rank`'s contiguous share `[lo, hi)` of `n` samples: sizes differ by one at most, nothing repeated.

    >>> [shard_bounds(5, r, 3) for r in range(3)]
    [(0, 1), (1, 3), (3, 5)]
    """
    return n * rank // world, n * (rank + 1) // world


class DistContext:
    """The group the Trainer runs in: `rank`, `world`, `local_rank`, the rank's `device` and the `backend`."""

    def __init__(self, device: torch.device, local_rank: int, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s  # the group's timeout when the Trainer initialised it, else unknown (None)
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.local_rank = local_rank
        self.device = device
        self.backend = str(dist.get_backend())
        self.main = self.rank == 0
        self._runs = 0

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Around a collective run (`fit`, `evaluate`): an error here is told to the other ranks.

        A rank that raises records `rank R raised Type: message` in the group's store before the error
        leaves it. The others are then stuck in a collective until that process exits (gloo reports the
        closed connection at once) or the group's timeout; the error they get then names the rank that
        failed and why, instead of only gloo's "Connection closed by peer".

        A rank that stalls (asleep in a callback, waiting on input) raises nothing: the others time out in
        a collective after the group's timeout. Each of them then records that it timed out, waits a few
        seconds for the others' records, and raises an error naming the ranks that never arrived.
        """
        self._runs += 1  # the same count on every rank: a record from an earlier run is never read
        key = f"torch_keras_metrics/failed/{self._runs}"
        try:
            yield
        except Exception as err:
            other = _read(key)
            if other is None and _is_timeout(err):
                stalled = self._stalled(key, min(STALL_GRACE_S, self.timeout_s or STALL_GRACE_S))
                if stalled:
                    after = f" of {self.timeout_s:g} s" if self.timeout_s else ""
                    raise RuntimeError(
                        f"Stopped on rank {self.rank} of {self.world}: rank(s) {stalled} did not reach the collective "
                        f"within the process group's timeout{after} (stalled: asleep in a callback, waiting on "
                        f"input, or much slower).  (here: {type(err).__name__}: {err})"
                    ) from err
            if other is not None and not other.startswith(f"rank {self.rank} "):
                raise RuntimeError(
                    f"Stopped on rank {self.rank} of {self.world} because {other}  (here: {type(err).__name__}: {err})"
                ) from err
            _write(key, f"rank {self.rank} raised {type(err).__name__}: {err}")
            raise

    def _stalled(self, key: str, grace_s: float = STALL_GRACE_S) -> list[int]:
        """The ranks that did not record a timeout of their own within `grace_s` of this rank's."""
        _write(f"{key}/timed_out/{self.rank}", "1")
        deadline = time.monotonic() + grace_s
        while True:
            missing = [r for r in range(self.world) if _read(f"{key}/timed_out/{r}") is None]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)

    def __repr__(self) -> str:
        return f"DistContext(rank={self.rank}, world={self.world}, device={self.device}, backend={self.backend!r})"


def setup(distributed: Any, device: str | torch.device | None, timeout_s: float | None = None) -> DistContext | None:
    """The group for `Trainer(distributed=...)`, or None to run as a single process.

    `None`: use the default group if one is initialised. `"auto"`: that, else initialise one from
    `torchrun`'s variables when they are set. `True`: the same, but fail without either. `False`: never.
    `timeout_s` is the timeout of a group initialised here (torch's default, 30 minutes for gloo, without
    it); a group the user initialised keeps its own (`init_process_group(timeout=timedelta(...))`).
    The device defaults to `cuda:LOCAL_RANK` when CUDA is available (and is made current), else the CPU.
    """
    if distributed not in (None, False, True, "auto"):
        raise ValueError(f"`distributed` must be None, False, True or 'auto', got {distributed!r}.")
    if distributed is False or (distributed is None and not _active()):
        return None
    if not _active():
        missing = [v for v in _TORCHRUN_VARS if v not in os.environ]
        if missing:
            if distributed == "auto":
                return None
            raise RuntimeError(
                "distributed=True needs an initialised torch.distributed process group or torchrun's "
                f"environment; {', '.join(missing)} not set. Launch with `torchrun --nproc_per_node=N script.py`."
            )
        if not dist.is_available():
            raise RuntimeError("This torch build has no torch.distributed.")
        on_cuda = device is None or torch.device(device).type == "cuda"
        backend = "nccl" if torch.cuda.is_available() and on_cuda else "gloo"
        kwargs = {"timeout": datetime.timedelta(seconds=timeout_s)} if timeout_s else {}
        dist.init_process_group(backend, **kwargs)
    else:
        timeout_s = None  # the user's group keeps the timeout it was initialised with
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank() % max(1, torch.cuda.device_count() or 1)))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return DistContext(device, local_rank, timeout_s)


def place(
    model: torch.nn.Module, ctx: DistContext | None, device: str | torch.device | None
) -> tuple[torch.device, torch.nn.Module, torch.nn.Module]:
    """`(device, module, net)` for a Trainer: the module on its device (the rank's when distributed, else
    `device` or CUDA when available), and what the training step calls: the module, or
    `DistributedDataParallel` around it when distributed (a user's own DDP is used as given)."""
    if ctx is not None:
        device = ctx.device
    else:
        device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    ddp = model if isinstance(model, torch.nn.parallel.DistributedDataParallel) else None
    module = (model if ddp is None else ddp.module).to(device)
    net: torch.nn.Module = ddp or module
    if ctx is not None and ddp is None:
        net = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    return device, module, net


def reduce_epoch(
    loss_sums: torch.Tensor | None,
    metrics: Sequence[Any],
    device: torch.device,
    pad: int = 0,
    losses: int = 1,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The epoch's losses and metric results over every rank, from ONE `all_reduce` of a float64 vector.

    The vector holds `loss_sums` (`[sum(loss_b * size_b), sum(size_b)]` per loss, shape (2,) or
    (`losses`, 2); zeros for None) and each metric's `state()`. Each result is the metric's own `result()`
    on the summed state, after which its local state is put back. Returns `(loss, [result, ...])`, `loss`
    of shape () for one loss, else (`losses`,). A rank without its metrics yet passes `pad` (the number
    of elements their states hold) and contributes zeros.
    """
    if loss_sums is None:
        loss_sums = torch.zeros(losses, 2, dtype=torch.float64, device=device)
    loss_sums = loss_sums.to(device).reshape(-1, 2)
    states = [m.state().to(device, torch.float64) for m in metrics]
    parts = [loss_sums.reshape(-1), *states]
    if pad:
        parts.append(torch.zeros(pad, dtype=torch.float64, device=device))
    vector = torch.cat(parts)
    dist.all_reduce(vector)
    summed = vector[: loss_sums.numel()].reshape(-1, 2)
    loss = torch.where(summed[:, 1] != 0, summed[:, 0] / summed[:, 1], torch.zeros_like(summed[:, 0]))
    at = loss_sums.numel()
    results = []
    for m, local in zip(metrics, states):
        m.load_state(vector[at : at + local.numel()])
        at += local.numel()
        try:
            results.append(m.result(sync=False))
        finally:
            m.load_state(local)
    return (loss[0] if loss.shape[0] == 1 else loss), results


def agree(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any rank (one tiny `all_reduce`)."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _is_timeout(err: BaseException) -> bool:
    """A collective that gave up waiting (gloo: "Timed out waiting ...ms", NCCL's watchdog: "timeout")."""
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("timed out" in text or "timeout" in text)


def _store() -> Any:
    return dist.distributed_c10d._get_default_store()  # torch keeps the default group's store here


def _read(key: str) -> str | None:
    """A failure record, or None (also when the store went away with the rank that hosted it)."""
    try:
        store = _store()
        return store.get(key).decode() if store.check([key]) else None
    except Exception:
        return None


def _write(key: str, message: str) -> None:
    with contextlib.suppress(Exception):
        _store().set(key, message[:2000])


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm's running statistics, ...) on every rank: one broadcast per dtype.

    DDP broadcasts them before each training forward, so after the last step each rank holds its own
    update; evaluating with rank 0's makes every rank evaluate the same model.
    """
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for b in module.buffers():
        by_dtype.setdefault(b.dtype, []).append(b)
    for buffers in by_dtype.values():
        flat = torch.cat([b.detach().reshape(-1) for b in buffers])
        dist.broadcast(flat, src=0)
        at = 0
        for b in buffers:
            b.data.copy_(flat[at : at + b.numel()].view_as(b))
            at += b.numel()


def broadcast_generator(generator: torch.Generator, device: torch.device) -> None:
    """Give every rank rank 0's generator state, so shuffles draw the same permutation everywhere."""
    state = generator.get_state().to(device)
    dist.broadcast(state, src=0)
    generator.set_state(state.cpu())
