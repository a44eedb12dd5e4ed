"""Confusion metrics (AUC, Precision, Recall) against torchmetrics, Keras 3 and a memory-read floor.

Run from the repository root:

    python benchmarks/confusion_metrics.py               # 1e6 binary scores
    python benchmarks/confusion_metrics.py --n 100000 --rounds 7 --weighted

Each row times one `update_state` + `result()` (torchmetrics: `update` + `compute`) on N binary scores:

* ours   - torch_keras_metrics (`AUC(num_thresholds=200)`, `Precision()`, `Recall()`);
* tm     - torchmetrics' `BinaryAUROC(thresholds=200)`, `BinaryPrecision()`, `BinaryRecall()`;
* keras  - `keras.metrics.<same name>` on Keras' torch backend, eager;
* floor  - one `y_pred.sum()`: the cost of reading the scores once.

Rounds alternate the contenders (median of the rounds), after warm-up calls, so compile time is excluded.
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
import torchmetrics.classification as tmc  # noqa: E402

import torch_keras_metrics as tkm  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def cases(n: int, device: torch.device, weighted: bool) -> list[tuple[str, dict[str, Callable[[], Any]]]]:
    import keras

    g = torch.Generator(device="cpu").manual_seed(0)
    y_pred = torch.rand(n, generator=g).to(device)
    y_true = torch.randint(0, 2, (n,), generator=g).to(device)
    w = torch.rand(n, generator=g).to(device) if weighted else None
    kw = {} if w is None else {"sample_weight": w}
    out = []
    for label, ours, tm, ke in (
        (
            "AUC(200)",
            tkm.AUC(num_thresholds=200),
            tmc.BinaryAUROC(thresholds=200),
            keras.metrics.AUC(num_thresholds=200),
        ),
        ("Precision", tkm.Precision(), tmc.BinaryPrecision(), keras.metrics.Precision()),
        ("Recall", tkm.Recall(), tmc.BinaryRecall(), keras.metrics.Recall()),
    ):
        ours.to(device)
        tm.to(device)

        def run_ours(m=ours) -> Any:
            m.reset_state()
            m.update_state(y_true, y_pred, **kw)
            return m.result()

        def run_tm(m=tm) -> Any:  # torchmetrics takes no sample weights
            m.reset()
            m.update(y_pred, y_true)
            return m.compute()

        def run_keras(m=ke) -> Any:
            m.reset_state()
            m.update_state(y_true, y_pred, **kw)
            return m.result()

        contenders = {"ours": run_ours, "keras": run_keras, "floor": lambda: y_pred.sum()}
        if not weighted:
            contenders["tm"] = run_tm
        out.append((label, contenders))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weighted", action="store_true", help="with sample weights (torchmetrics takes none)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"{args.n:,} binary scores on {device} ({torch.get_num_threads()} threads), median of {args.rounds} rounds")
    head = ("metric", "ours ms", "tm ms", "keras ms", "floor ms", "tm/ours", "keras/ours", "ours/floor")
    print(f"{head[0]:<10} " + " ".join(f"{h:>10}" for h in head[1:]))
    for label, contenders in cases(args.n, device, args.weighted):
        for fn in contenders.values():  # warm-up (compiles ours once)
            fn()
            fn()
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                times[name].append(_time(fn, device))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        tm = med.get("tm", float("nan"))
        cells = (med["ours"], tm, med["keras"], med["floor"], tm / med["ours"], med["keras"] / med["ours"])
        print(f"{label:<10} " + " ".join(f"{c:10.2f}" for c in (*cells, med["ours"] / med["floor"])))


if __name__ == "__main__":
    main()
