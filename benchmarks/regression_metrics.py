"""Update throughput of MeanSquaredError and KLDivergence against torchmetrics, Keras 3 and a memory-read floor.

Run from the repository root:

    python benchmarks/regression_metrics.py                 # 4096x1000 and 1000x1000 (1e6 elements)
    python benchmarks/regression_metrics.py --rounds 5 --sizes 256x1000

Per metric and size, one interleaved run: each round times every contender once (a few calls each, after
warm-up), the table shows the median over rounds of the time per `update_state` (torchmetrics: `update`):

* ours   - `tkm.MeanSquaredError` / `tkm.KLDivergence`;
* tm     - `torchmetrics.MeanSquaredError` / `torchmetrics.KLDivergence` (same definition: per-sample sums of
           `p * log(p / q)`, averaged; it does not clip as Keras does);
* keras  - `keras.metrics.<same name>().update_state` on Keras' torch backend;
* floor  - `y_pred.sum()`: one read of one input.
CUDA is used when available (timed with CUDA events), else the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torchmetrics  # noqa: E402

import torch_keras_metrics as tkm  # noqa: E402


def _time(fn: Callable[[], Any], calls: int, device: torch.device) -> float:
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


def contenders(metric: str, rows: int, cols: int, device: torch.device) -> dict[str, Callable[[], Any]]:
    import keras

    g = torch.Generator().manual_seed(0)
    if metric == "MeanSquaredError":
        y_true, y_pred = torch.randn(rows, cols, generator=g), torch.randn(rows, cols, generator=g)
        tm = torchmetrics.MeanSquaredError()
    else:
        y_true = torch.softmax(torch.randn(rows, cols, generator=g), -1)
        y_pred = torch.softmax(torch.randn(rows, cols, generator=g), -1)
        tm = torchmetrics.KLDivergence()
    y_true, y_pred = y_true.to(device), y_pred.to(device)
    ours, theirs, tm = getattr(tkm, metric)().to(device), getattr(keras.metrics, metric)(), tm.to(device)
    return {
        "ours": lambda: ours.update_state(y_true, y_pred),
        "tm": lambda: tm.update(y_pred, y_true) if metric == "MeanSquaredError" else tm.update(y_true, y_pred),
        "keras": lambda: theirs.update_state(y_true, y_pred),
        "floor": lambda: y_pred.sum(),
    }


def run(metric: str, rows: int, cols: int, device: torch.device, rounds: int, calls: int) -> dict[str, float]:
    fns = contenders(metric, rows, cols, device)
    for fn in fns.values():  # warm-up
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(_time(fn, calls, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4096x1000,1000x1000")
    parser.add_argument("--metrics", default="MeanSquaredError,KLDivergence")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device={device} threads={torch.get_num_threads()} rounds={args.rounds} calls/round={args.calls}")
    print(
        f"{'metric':<18}{'size':>11}{'ours us':>10}{'tm us':>10}{'keras us':>10}{'floor us':>10}"
        f"{'tm/ours':>9}{'keras/ours':>11}{'ours/floor':>11}"
    )
    for metric in args.metrics.split(","):
        for size in args.sizes.split(","):
            rows, cols = (int(x) for x in size.split("x"))
            t = run(metric, rows, cols, device, args.rounds, args.calls)
            us = {k: v * 1e6 for k, v in t.items()}
            print(
                f"{metric:<18}{size:>11}{us['ours']:>10.0f}{us['tm']:>10.0f}{us['keras']:>10.0f}{us['floor']:>10.0f}"
                f"{t['tm'] / t['ours']:>9.2f}{t['keras'] / t['ours']:>11.2f}{t['ours'] / t['floor']:>11.2f}"
            )


if __name__ == "__main__":
    main()
