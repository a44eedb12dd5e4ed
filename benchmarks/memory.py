"""Memory and epoch-end cost of an epoch's per-batch values: the loss tracker, `History` and `BaseLogger`.

Feeds one epoch of N batches of realistic batch logs (a loss and two metric values, each a fresh 0-d
tensor as a training step makes them, batch size 32) through the path every `fit` batch takes:
`LossTracker.add`, `BaseLogger.on_train_batch_end`, `History.on_train_batch_end`. It reports:

* RSS growth per 10k batches over the epoch, and the bytes per batch the three hold at its end
  (RSS; with `--device cuda` also the CUDA memory allocated);
* the epoch-end cost at 100k batches (`History` and `BaseLogger` `on_epoch_end`, the epoch loss read);
* the per-batch cost of those three calls (best of a few epochs of 20k prepared batches).

`--trainer` runs the real `Trainer.fit` instead (a tiny model, one epoch of N batches): RSS per 10k
batches and the time from the last batch to the end of `fit`.

    python benchmarks/memory.py [--batches 200000] [--device cpu|cuda] [--progress-every 0] [--trainer]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import torch  # noqa: E402

import torch_keras_metrics as tkm  # noqa: E402
from torch_keras_metrics.callbacks import BaseLogger  # noqa: E402
from torch_keras_metrics.compile_utils import LossTracker  # noqa: E402
from torch_keras_metrics.history import History  # noqa: E402
from torch_keras_metrics.logs import Logs  # noqa: E402

BATCH = 32
MiB = 2**20


def rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def device_bytes(device: str) -> int:
    return torch.cuda.memory_allocated() if device.startswith("cuda") else 0


class Path:
    """The three per-batch consumers of a `fit` batch, fed as the Trainer feeds them."""

    def __init__(self) -> None:
        self.tracker, self.base, self.history = LossTracker(), BaseLogger(), History()
        self.history.on_train_begin()

    def begin(self, epoch: int) -> None:
        self.tracker.reset()
        self.base.on_epoch_begin(epoch)
        self.history.on_epoch_begin(epoch)

    def batch(self, step: int, values: dict[str, Any], size: int) -> None:
        self.tracker.add(values["loss"], size)
        logs = Logs(values, size, self.running)
        self.base.on_train_batch_end(step, logs)
        self.history.on_train_batch_end(step, logs)

    def running(self) -> dict[str, float]:
        return {"loss": self.tracker.result().item()}

    def end(self, epoch: int) -> None:
        logs = {"loss": self.tracker.result().item()}
        self.base.on_epoch_end(epoch, logs)
        self.history.on_epoch_end(epoch, logs)


def values_maker(device: str, seed: int = 0) -> Callable[[], dict[str, Any]]:
    g = torch.Generator(device=device).manual_seed(seed)

    def make() -> dict[str, Any]:
        loss, acc, top = torch.rand(3, generator=g, device=device).unbind()
        # fresh 0-d tensors, each its own storage, as a step's loss and metric results are
        return {"loss": loss.clone(), "accuracy": acc.clone(), "top_k": top.clone()}

    return make


def size_of(step: int, n: int) -> int:
    return BATCH if step < n - 1 else BATCH // 2  # a shorter last batch


def epoch_rss(n: int, device: str, progress_every: int) -> None:
    path, make = Path(), values_maker(device)
    path.begin(0)  # warm-up: allocators and caches
    for i in range(2000):
        path.batch(i, make(), BATCH)
    path.end(0)
    path = Path()
    path.begin(0)
    gc.collect()
    r0, d0 = rss(), device_bytes(device)
    marks = []
    for i in range(n):
        path.batch(i, make(), size_of(i, n))
        if progress_every and (i + 1) % progress_every == 0:
            path.running()
        if (i + 1) % 10_000 == 0:
            marks.append(rss())
    gc.collect()
    r1, d1 = rss(), device_bytes(device)
    per_10k = (r1 - r0) / (n / 10_000)
    print(f"epoch of {n} batches: RSS {r0 / MiB:.0f} -> {r1 / MiB:.0f} MiB, {per_10k / MiB:.2f} MiB per 10k batches")
    if len(marks) > 2:
        half = len(marks) // 2
        slope = (marks[-1] - marks[half]) / (len(marks) - 1 - half)
        print(f"  second half of the epoch: {slope / MiB:.2f} MiB per 10k batches")
    print(f"  held: {(r1 - r0) / n:.1f} bytes per batch (RSS)", end="")
    if device.startswith("cuda"):
        print(f", {(d1 - d0) / n:.1f} bytes per batch of CUDA memory", end="")
    print()
    t0 = time.perf_counter()
    path.end(0)
    print(f"  epoch end at {n} batches: {(time.perf_counter() - t0) * 1e3:.1f} ms")


def epoch_end_cost(n: int, device: str) -> None:
    path, make = Path(), values_maker(device, seed=1)
    path.begin(0)
    for i in range(n):
        path.batch(i, make(), size_of(i, n))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    path.end(0)
    print(
        f"epoch end at {n} batches (History, BaseLogger, epoch loss): {(time.process_time() - c0) * 1e3:.1f} ms "
        f"CPU, {(time.perf_counter() - t0) * 1e3:.1f} ms wall"
    )


def per_batch_cost(n: int, device: str, repeats: int = 5) -> None:
    """Process CPU time per batch of the three calls, values made fresh each batch as a step makes them
    (cache-warm, as in a real loop), less the time of making them alone; best of `repeats` epochs."""
    make, path = values_maker(device, seed=2), Path()
    with_path, alone = float("inf"), float("inf")
    for epoch in range(repeats):
        path.begin(epoch)
        t0 = time.process_time()
        for i in range(n):
            path.batch(i, make(), size_of(i, n))
        with_path = min(with_path, time.process_time() - t0)
        path.end(epoch)
        t0 = time.process_time()
        for i in range(n):
            Logs(make(), size_of(i, n), path.running)
        alone = min(alone, time.process_time() - t0)
    print(
        f"per batch (LossTracker.add + BaseLogger + History hooks, best of {repeats} epochs of {n}): "
        f"{(with_path - alone) / n * 1e6:.2f} us CPU"
    )


class RssMarks(tkm.Callback):
    def __init__(self, every: int = 10_000) -> None:
        super().__init__()
        self.every, self.marks, self.last = every, [], 0.0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if (batch + 1) % self.every == 0:
            self.marks.append(rss())
        self.last = time.perf_counter()


def trainer_epoch(n: int, device: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 10)
    trainer = tkm.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        "sparse_categorical_crossentropy",
        metrics=["accuracy", "sparse_top_k_categorical_accuracy"],
        device=device,
    )
    x, y = torch.randn(n * 4, 4), torch.randint(0, 10, (n * 4,))
    trainer.fit(x[:400], y[:400], batch_size=4, epochs=1, verbose=0)  # warm-up
    marks = RssMarks()
    gc.collect()
    r0 = rss()
    trainer.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[marks])
    end = time.perf_counter() - marks.last
    gc.collect()
    r1 = rss()
    print(
        f"Trainer.fit, one epoch of {n} batches: RSS {r0 / MiB:.0f} -> {r1 / MiB:.0f} MiB, "
        f"{(r1 - r0) / (n / 10_000) / MiB:.2f} MiB per 10k batches; last batch to the end of fit: {end * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200_000)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--progress-every", type=int, default=0, help="read the running loss every k batches")
    parser.add_argument("--trainer", action="store_true", help="run the real Trainer.fit instead")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available")
    torch.set_num_threads(1)
    print(f"device {args.device}, torch {torch.__version__}, loss plus two metrics")
    if args.trainer:
        trainer_epoch(args.batches, args.device)
        return
    print(f"batch size {BATCH}")
    epoch_rss(args.batches, args.device, args.progress_every)
    epoch_end_cost(100_000, args.device)
    per_batch_cost(20_000, args.device)


if __name__ == "__main__":
    main()
