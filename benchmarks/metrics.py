"""Update throughput of torch_keras_metrics against torchmetrics, Keras 3 and a memory-read floor.

Run from the repository root:

    python benchmarks/metrics.py                          # full run: a few minutes on a 2-core CPU
    python benchmarks/metrics.py --quick                  # small sizes, few repeats
    python benchmarks/metrics.py --sizes 16x10,256x1000   # chosen sizes (rows x classes)
    python benchmarks/metrics.py --metrics SparseCategoricalAccuracy --threads 1 --devices cpu
    python benchmarks/metrics.py --compiled-step --threads 1   # only the metrics inside a compiled step

Per (device, threads) it prints one table. Each row is one metric at one size, timed per
`update_state` (torchmetrics: `update`) for:

* ours      - the torch_keras_metrics metric, kernels compiled from 2**16 elements (the default);
* eager     - the same with `functional.set_compile(False)`;
* tm        - torchmetrics: `MulticlassAccuracy(num_classes=C, average="micro", top_k=k)`, given
              `y_true.argmax(-1)` (inside the timing) for the one-hot metrics as it takes no one-hot;
              `BinaryAccuracy` for the binary metric; `MulticlassAccuracy(average="micro")` on the
              same-shape class ids of `Accuracy`;
* keras     - `keras.metrics.<same name>().update_state` on Keras' torch backend;
* floor     - reading the inputs once: `y_pred.sum()`, and `y_true.sum()` too for the one-hot metrics,
              whose labels are a second (N, C) tensor.

After the table, `metric(y_true, y_pred)` at 16x10 is timed against the bare expression it replaces,
and (the compiled-step mode) `update_state` and `metric(y_true, y_pred)` inside a
`torch.compile(fullgraph=True)`d step at 16x10 and 256x1000 against the bare kernel,
`(y_pred.argmax(-1) == y_true).sum()` accumulated in a tensor, compiled the same way.

Contenders run round-robin within a case (median of the repeats), after warm-up calls, so
compile time is excluded. The first call of ours at the largest size is reported separately:
it compiles after `torch._dynamo.reset()`, though Inductor's on-disk cache can make it shorter
than on a machine's very first run. CUDA is added when available, timed with CUDA events.
Other work on the machine shows up as noise, the more so with all threads: rerun to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Callable

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torchmetrics  # noqa: E402

import torch_keras_metrics as tkm  # noqa: E402
from torch_keras_metrics import functional as F  # noqa: E402

METRICS = (
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "CategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "BinaryAccuracy",
    "Accuracy",
)
SHORT = {
    "SparseCategoricalAccuracy": "sparse_cat",
    "SparseTopKCategoricalAccuracy": "sparse_top5",
    "CategoricalAccuracy": "cat",
    "TopKCategoricalAccuracy": "top5",
    "BinaryAccuracy": "binary",
    "Accuracy": "accuracy",
}
DEFAULT_SIZES = "16x10,256x1000,2048x32000,4096x32000"
COMPILED_STEP_SIZES = ((16, 10), (256, 1000))
K = 5
SLOW_S = 1.0  # calls slower than this get fewer warm-ups and repeats


@dataclass
class Settings:
    sample_s: float  # aim for timed samples about this long (many calls per sample for small inputs)
    budget_s: float  # per contender and case: repeats stop at about this much timed work...
    min_reps: int  # ...but never fewer repeats than this
    max_reps: int
    max_warm_s: float  # warm-up calls after the first stop after this long (at most 4, at least 1 unless slow)


FULL = Settings(sample_s=0.01, budget_s=0.4, min_reps=3, max_reps=15, max_warm_s=0.5)
QUICK = Settings(sample_s=0.003, budget_s=0.05, min_reps=3, max_reps=5, max_warm_s=0.1)


@dataclass
class Result:
    per_call: dict[str, float] = field(default_factory=dict)  # contender -> median seconds per call
    first_call: dict[str, float] = field(default_factory=dict)
    noisy: bool = False  # some contender's median is over twice its fastest repeat: rerun to compare


# --------------------------------------------------------------------------- timing


def _sample(fn: Callable[[], Any], calls: int, device: torch.device) -> float:
    """Seconds per call over `calls` back-to-back calls."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3 / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


@dataclass
class Contender:
    fn: Callable[[], Any]  # one update
    scope: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext  # entered around each timed sample
    compiles: bool = False  # its first call may compile: always warm up past it


def _compile_mode(mode: str | bool) -> Callable[[], AbstractContextManager[None]]:
    """Our compile setting is global: set it around each sample (not each call) and restore the default."""

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        F.set_compile(mode)
        try:
            yield
        finally:
            F.set_compile("auto")

    return scope


def run_case(
    contenders: dict[str, Contender], device: torch.device, s: Settings, fresh_compile: bool = False
) -> Result:
    """Warm up and calibrate each contender, then time them round-robin; medians per call.

    With `fresh_compile`, torch.compile's in-memory caches are dropped before ours' first call,
    so that call shows this metric's own compile time (Inductor's on-disk cache may still help).
    """

    def sample(name: str, calls: int) -> float:
        with contenders[name].scope():
            return _sample(contenders[name].fn, calls, device)

    result, calls, reps = Result(), {}, {}
    for name in contenders:
        if fresh_compile and name == "ours":
            torch._dynamo.reset()
        result.first_call[name] = t = sample(name, 1)
        # A call of a second or more is warm after one call, unless that call compiled.
        min_warm = 1 if contenders[name].compiles or t < SLOW_S else 0
        warm, n = 0.0, 0
        while n < min_warm or (n < 4 and warm < s.max_warm_s):
            t = sample(name, 1)
            warm, n = warm + t, n + 1
        calls[name] = 1
        while t * calls[name] < s.sample_s / 4:  # calibrate: enough calls per sample to beat timer noise
            calls[name] *= 4
            t = sample(name, calls[name])
        calls[name] = max(1, round(s.sample_s / t)) if t < s.sample_s else 1
        least = s.min_reps if t < SLOW_S else min(s.min_reps, 2)  # torchmetrics' top-k takes seconds per call
        reps[name] = min(s.max_reps, max(least, round(s.budget_s / (t * calls[name]))))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(max(reps.values())):
        for name in contenders:
            if r < reps[name]:
                times[name].append(sample(name, calls[name]))
    result.per_call = {name: statistics.median(ts) for name, ts in times.items()}
    result.noisy = any(statistics.median(ts) > 2 * min(ts) for ts in times.values())
    return result


# --------------------------------------------------------------------------- the contenders


def _inputs(metric: str, n: int, c: int, device: torch.device) -> dict[str, torch.Tensor]:
    """y_true and y_pred, the same for every contender."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, c, (n,), generator=g)
    scores = torch.rand(n, c, generator=g)
    if metric.startswith("Sparse"):
        x = {"y_true": labels, "y_pred": scores}
    elif metric in ("CategoricalAccuracy", "TopKCategoricalAccuracy"):
        one_hot = torch.nn.functional.one_hot(labels, c).to(torch.float32)
        x = {"y_true": one_hot, "y_pred": scores}
    elif metric == "BinaryAccuracy":
        truth = (torch.rand(n, c, generator=g) > 0.5).to(torch.float32)
        x = {"y_true": truth, "y_pred": scores}
    else:  # Accuracy: exact equality of class ids, held as floats as a model would emit them
        ids = torch.randint(0, 4, (n, c), generator=g)
        x = {"y_true": ids, "y_pred": torch.randint(0, 4, (n, c), generator=g).to(torch.float32)}
    return {k: v.to(device) for k, v in x.items()}


def _torchmetrics(metric: str, c: int, device: torch.device) -> torchmetrics.Metric:
    from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

    if metric == "BinaryAccuracy":
        return BinaryAccuracy().to(device)
    if metric == "Accuracy":
        return MulticlassAccuracy(num_classes=4, average="micro").to(device)
    top_k = K if "TopK" in metric else 1
    return MulticlassAccuracy(num_classes=c, average="micro", top_k=min(top_k, c)).to(device)


def contenders(metric: str, x: dict[str, torch.Tensor], c: int, device: torch.device) -> dict[str, Contender]:
    import keras

    kwargs = {"k": K} if "TopK" in metric else {}
    ours, eager = getattr(tkm, metric)(**kwargs).to(device), getattr(tkm, metric)(**kwargs).to(device)
    tm = _torchmetrics(metric, c, device)
    keras_scope = lambda: keras.device(device.type)  # noqa: E731 - Keras' torch backend moves inputs to its device
    with keras_scope():
        keras_metric = getattr(keras.metrics, metric)(**kwargs)
    y_true, y_pred = x["y_true"], x["y_pred"]
    if metric in ("CategoricalAccuracy", "TopKCategoricalAccuracy"):
        tm_update = lambda: tm.update(y_pred, y_true.argmax(-1))  # noqa: E731 - it takes class ids, not one-hot
        floor = lambda: (y_true.sum(), y_pred.sum())  # noqa: E731 - two (N, C) inputs to read
    else:
        tm_update = lambda: tm.update(y_pred, y_true)  # noqa: E731
        floor = lambda: y_pred.sum()  # noqa: E731
    return {
        "ours": Contender(lambda: ours.update_state(y_true, y_pred), _compile_mode("auto"), compiles=True),
        "eager": Contender(lambda: eager.update_state(y_true, y_pred), _compile_mode(False)),
        "tm": Contender(tm_update),
        "keras": Contender(lambda: keras_metric.update_state(y_true, y_pred), keras_scope),
        "floor": Contender(floor),
    }


def forward_case(device: torch.device, s: Settings) -> Result:
    """`metric(y_true, y_pred)` at 16x10 against the bare expression it replaces."""
    x = _inputs("SparseCategoricalAccuracy", 16, 10, device)
    y_true, y_pred = x["y_true"], x["y_pred"]
    ours, tm = tkm.SparseCategoricalAccuracy().to(device), _torchmetrics("SparseCategoricalAccuracy", 10, device)
    return run_case(
        {
            "ours": Contender(lambda: ours(y_true, y_pred)),
            "tm": Contender(lambda: tm(y_pred, y_true)),
            "bare": Contender(lambda: (y_pred.argmax(-1) == y_true).sum()),
        },
        device,
        s,
    )


def compiled_step_case(n: int, c: int, device: torch.device, s: Settings) -> Result:
    """`update_state` and `metric(y_true, y_pred)` inside a compiled step against the bare kernel in one.

    Each step is `torch.compile(fullgraph=True)`d and warmed past its compile; the bare step adds
    `(y_pred.argmax(-1) == y_true).sum()` to a tensor, as a hand-written loop would count.
    """
    x = _inputs("SparseCategoricalAccuracy", n, c, device)
    y_true, y_pred = x["y_true"], x["y_pred"]
    updated, called = tkm.SparseCategoricalAccuracy().to(device), tkm.SparseCategoricalAccuracy().to(device)
    hits = torch.zeros(1, dtype=torch.int64, device=device)

    def bare(y: torch.Tensor, p: torch.Tensor) -> None:
        hits.add_((p.argmax(-1) == y).sum())

    def update(y: torch.Tensor, p: torch.Tensor) -> None:
        updated.update_state(y, p)

    def forward(y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return called(y, p)

    steps = {
        name: torch.compile(fn, fullgraph=True)
        for name, fn in (("bare", bare), ("update", update), ("forward", forward))
    }
    return run_case(
        {name: Contender(lambda step=step: step(y_true, y_pred), compiles=True) for name, step in steps.items()},
        device,
        s,
    )


# --------------------------------------------------------------------------- reporting


def _us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def _targets(metric: str, n: int, c: int, device: torch.device, res: Result) -> str:
    """Which of the issue's targets this row meets (ok) or misses (MISS)."""
    r = res.per_call
    notes = ["NOISY"] if res.noisy else []
    beats = r["ours"] < r["tm"] and r["ours"] < r["keras"]
    notes.append("faster" if beats else "MISS:not-fastest")
    if device.type == "cpu":
        limits = {
            "SparseCategoricalAccuracy": {(4096, 32000): 1.5, (2048, 32000): 2.0, (256, 1000): 2.0},
            "SparseTopKCategoricalAccuracy": {(4096, 32000): 1.5, (256, 1000): 2.0},
            "CategoricalAccuracy": {(2048, 32000): 2.0},  # its floor reads both inputs
        }
        limit = limits.get(metric, {}).get((n, c))
        if limit is not None:
            ok = r["ours"] <= limit * r["floor"]
            notes.append(f"{'ok' if ok else 'MISS'}:<={limit}x floor")
    return " ".join(notes)


def print_table(title: str, rows: list[tuple[str, int, int, Result]], device: torch.device) -> None:
    head = (
        f"{'metric':<12}{'size':>11}{'ours':>12}{'eager':>12}{'tm':>14}{'keras':>12}{'floor':>11}"
        f"{'ours/flr':>9}{'tm/ours':>9}{'ker/ours':>9}  targets"
    )
    print(f"\n== {title}  (microseconds per update, median)")
    print(head)
    print("-" * len(head))
    for metric, n, c, res in rows:
        r = res.per_call
        print(
            f"{SHORT[metric]:<12}{f'{n}x{c}':>11}{_us(r['ours']):>12}{_us(r['eager']):>12}{_us(r['tm']):>14}"
            f"{_us(r['keras']):>12}{_us(r['floor']):>11}{_ratio(r['ours'], r['floor']):>9}"
            f"{_ratio(r['tm'], r['ours']):>9}{_ratio(r['keras'], r['ours']):>9}  {_targets(metric, n, c, device, res)}"
        )


def print_first_calls(rows: list[tuple[str, int, int, Result]]) -> None:
    n, c = max(((n, c) for _, n, c, _ in rows), key=lambda nc: nc[0] * nc[1])
    print(f"first call of ours at {n}x{c} (includes torch.compile where it compiles; steady state after):")
    for metric, rn, rc, res in rows:
        if (rn, rc) == (n, c):
            first, steady = res.first_call["ours"], res.per_call["ours"]
            print(f"  {SHORT[metric]:<12} first {first * 1e3:9.1f} ms   steady {steady * 1e3:8.2f} ms")


def print_forward(res: Result) -> None:
    r = res.per_call
    ok = ("ok" if r["ours"] <= 3 * r["bare"] else "MISS") + (", NOISY" if res.noisy else "")
    print(
        f"forward at 16x10 (sparse_cat): ours {_us(r['ours'])} us, torchmetrics {_us(r['tm'])} us, "
        f"bare (y_pred.argmax(-1) == y_true).sum() {_us(r['bare'])} us -> ours/bare {_ratio(r['ours'], r['bare'])} "
        f"({ok}: <= 3x)"
    )


def print_compiled_steps(rows: list[tuple[int, int, Result]]) -> None:
    print("inside a torch.compile'd step (sparse_cat; bare: (y_pred.argmax(-1) == y_true).sum() added to a tensor):")
    for n, c, res in rows:
        r = res.per_call
        notes = [
            f"{name}/bare {_ratio(r[name], r['bare'])} ({'ok' if r[name] <= 1.2 * r['bare'] else 'MISS'}: <= 1.2x)"
            for name in ("update", "forward")
        ]
        noisy = ", NOISY" if res.noisy else ""
        print(
            f"  {f'{n}x{c}':>9}: update {_us(r['update'])} us, forward {_us(r['forward'])} us, "
            f"bare {_us(r['bare'])} us -> {', '.join(notes)}{noisy}"
        )


# --------------------------------------------------------------------------- main


def _size(text: str) -> tuple[int, int]:
    rows, _, classes = text.lower().partition("x")
    return int(rows), int(classes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only, few repeats")
    parser.add_argument(
        "--sizes", help=f"comma-separated ROWSxCLASSES (default {DEFAULT_SIZES}; --quick: 16x10,256x1000)"
    )
    parser.add_argument("--metrics", help=f"comma-separated subset of {','.join(METRICS)}")
    parser.add_argument("--devices", default="cpu,cuda", help="cpu and/or cuda (cuda only where available)")
    parser.add_argument("--threads", default="1,all", help="CPU thread counts, e.g. 1,all (CUDA runs with all)")
    parser.add_argument(
        "--compiled-step", action="store_true", help="only the metrics inside a compiled step (16x10, 256x1000)"
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    sizes = [_size(s) for s in (args.sizes or ("16x10,256x1000" if args.quick else DEFAULT_SIZES)).split(",")]
    metrics = args.metrics.split(",") if args.metrics else list(METRICS)
    devices = [torch.device(d) for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]

    import keras  # after KERAS_BACKEND is set

    all_threads = torch.get_num_threads()
    largest = max(sizes, key=lambda nc: nc[0] * nc[1])
    print(
        f"torch {torch.__version__}, torchmetrics {torchmetrics.__version__}, keras {keras.__version__} "
        f"({keras.config.backend()} backend), torch_keras_metrics {tkm.__version__}, {os.cpu_count()} CPUs"
    )
    for device in devices:
        # CUDA work does not depend on the host thread count: one table for it.
        thread_counts = [all_threads if t == "all" else int(t) for t in args.threads.split(",")]
        if device.type == "cuda":
            thread_counts = [all_threads]
        for threads in dict.fromkeys(thread_counts):
            torch.set_num_threads(threads)
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
            title = f"{name}, {threads} thread{'s' * (threads > 1)}"
            if not args.compiled_step:
                rows = []
                for n, c in sizes:
                    for metric in metrics:
                        x = _inputs(metric, n, c, device)
                        fresh = (n, c) == largest and n * c >= 1 << 16
                        rows.append((metric, n, c, run_case(contenders(metric, x, c, device), device, settings, fresh)))
                        del x
                print_table(title, rows, device)
                print_first_calls(rows)
                print_forward(forward_case(device, settings))
            else:
                print(f"\n== {title}")
            print_compiled_steps([(n, c, compiled_step_case(n, c, device, settings)) for n, c in COMPILED_STEP_SIZES])
            sys.stdout.flush()
    torch.set_num_threads(all_threads)


if __name__ == "__main__":
    main()
