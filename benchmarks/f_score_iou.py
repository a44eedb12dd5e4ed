"""Update time of F1Score and MeanIoU against torchmetrics, Keras 3 and a memory-read floor.

Run from the repository root: `python benchmarks/f_score_iou.py [--rounds 7] [--threads 2]`.

Cases: F1 micro and macro on 4096x1000 scores with one-hot labels (torchmetrics' `MulticlassF1Score` takes
class ids: it is given the labels' argmax, inside its time, as benchmarks/metrics.py does for the one-hot
accuracies); MeanIoU of 4096x1000 scores (argmax) against class ids, and of 1,048,576 predicted
ids against true ids (16x256x256 segmentation maps, 21 classes), against `MulticlassJaccardIndex`. Each
round calls every contender in turn (interleaved; the median of rounds is printed); `floor` is one `.sum()`
of the inputs each contender reads. Keras' torch-backend confusion matrix adds one element per Python step,
so Keras' MeanIoU is timed on the first 4096 elements and scaled to the full size (marked `~`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torchmetrics  # noqa: E402

import torch_keras_metrics as tkm  # noqa: E402


def timer(fn: Callable[[], object], calls: int) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import keras

    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(0)
    n, c = 4096, 1000
    scores = torch.rand(n, c, generator=g).to(device)
    labels = torch.randint(0, c, (n,), generator=g).to(device)
    one_hot = torch.nn.functional.one_hot(labels, c).float()
    seg_true = torch.randint(0, 21, (16, 256, 256), generator=g).to(device)
    seg_pred = torch.randint(0, 21, (16, 256, 256), generator=g).to(device)
    small = 4096  # Keras' IoU scatter is a Python loop: time it on this many elements, then scale

    cases: list[tuple[str, dict[str, tuple[Callable[[], object], float]]]] = []
    for average in ("micro", "macro"):
        ours = tkm.F1Score(average=average).to(device)
        tm = torchmetrics.classification.MulticlassF1Score(c, average=average).to(device)
        theirs = keras.metrics.F1Score(average=average)
        cases.append(
            (
                f"F1 {average} 4096x1000",
                {
                    "ours": (lambda o=ours: o.update_state(one_hot, scores), 1.0),
                    # the same inputs for all: torchmetrics takes class ids, so their argmax is in its time
                    "torchmetrics": (lambda t=tm: t.update(scores, one_hot.argmax(-1)), 1.0),
                    "keras": (lambda k=theirs: (k.update_state(one_hot, scores), k.result()), 1.0),
                    "floor": (lambda: (scores.sum(), one_hot.sum()), 1.0),
                },
            )
        )
    ours = tkm.MeanIoU(c, sparse_y_pred=False).to(device)
    tm = torchmetrics.classification.MulticlassJaccardIndex(c).to(device)
    theirs = keras.metrics.MeanIoU(c, sparse_y_pred=False)
    cases.append(
        (
            "MeanIoU 4096x1000 scores",
            {
                "ours": (lambda: ours.update_state(labels, scores), 1.0),
                "torchmetrics": (lambda: tm.update(scores, labels), 1.0),
                "keras": (lambda: (theirs.update_state(labels, scores), theirs.result()), 1.0),
                "floor": (lambda: scores.sum(), 1.0),
            },
        )
    )
    seg_ours = tkm.MeanIoU(21)
    seg_tm = torchmetrics.classification.MulticlassJaccardIndex(21).to(device)
    seg_keras = keras.metrics.MeanIoU(21)
    flat_true, flat_pred = seg_true.reshape(-1)[:small], seg_pred.reshape(-1)[:small]
    cases.append(
        (
            "MeanIoU 16x256x256 ids",
            {
                "ours": (lambda: seg_ours.update_state(seg_true, seg_pred), 1.0),
                "torchmetrics": (lambda: seg_tm.update(seg_pred, seg_true), 1.0),
                "keras": (
                    lambda: (seg_keras.update_state(flat_true, flat_pred), seg_keras.result()),
                    seg_true.numel() / small,
                ),
                "floor": (lambda: (seg_true.sum(), seg_pred.sum()), 1.0),
            },
        )
    )

    print(f"device={device} threads={args.threads} rounds={args.rounds}; ms per update, median of rounds")
    print(f"{'case':26} {'ours':>8} {'torchmetrics':>13} {'keras':>10} {'floor':>7}  tm/ours keras/ours ours/floor")
    for name, contenders in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fn, _ in contenders.values():  # warm-up (compiles ours' fused kernels)
                fn()
                fn()
            times: dict[str, list[float]] = {k: [] for k in contenders}
            for _ in range(args.rounds):
                for key, (fn, scale) in contenders.items():
                    calls = 1 if key == "keras" else 5
                    times[key].append(timer(fn, calls) * scale * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        keras_cell = ("~" if contenders["keras"][1] != 1.0 else "") + f"{med['keras']:.1f}"
        print(
            f"{name:26} {med['ours']:8.2f} {med['torchmetrics']:13.2f} {keras_cell:>10} {med['floor']:7.2f}"
            f"  {med['torchmetrics'] / med['ours']:7.2f} {med['keras'] / med['ours']:10.1f}"
            f" {med['ours'] / med['floor']:10.2f}"
        )


if __name__ == "__main__":
    main()
