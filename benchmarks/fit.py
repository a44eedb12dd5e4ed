"""What users see: a whole `fit`, set-up included, against the leanest hand loop, Keras and compiled steps.

Every contender computes the same numbers per epoch: the batch-size-weighted mean loss and the accuracy.
The hand loop is the leanest that does so: `loss.detach() * len(y)` and `(out.argmax(-1) == y).sum()`
accumulated in two tensors, read once per epoch. Models: an MLP 64-128-10 on 8192 samples at batch 16, 32
and 256, and a small CNN on the 8x8 digits (sklearn's bundled copy; synthetic 8x8 images without sklearn)
at batch 32; 2 epochs, SGD, cross-entropy on logits, one CPU thread (or CUDA when present).

Columns (median over interleaved rounds of a fresh model and trainer each; the ratio is the median of each
round's ratio to that round's hand loop, in wall time and in process CPU time):
  hand loop | Trainer | Trainer(jit_compile=True) | keras.Model.fit | Keras(jit_compile=True)
The compiled contenders are timed on a trainer that has compiled already; the time of the first fit (the
compile) is reported on its own.

    python benchmarks/fit.py [--rounds 5] [--cases mlp16,mlp32,mlp256,cnn32] [--no-keras] [--no-jit]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import torch_keras_metrics as tkm  # noqa: E402

EPOCHS = 2


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    except ImportError:
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(1797, 64, generator=g), torch.randint(0, 10, (1797,), generator=g)
    return x.reshape(-1, 1, 8, 8), y


def _torch_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "mlp":
        return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(32 * 6 * 6, 10),
    )  # fmt: skip


def _keras_model(kind: str, jit: bool) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    if kind == "mlp":
        layers = [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)]
    else:
        layers = [
            keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dense(10),
        ]  # fmt: skip
    model = keras.Sequential(layers)
    model.compile(
        keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], jit_compile=jit,
    )  # fmt: skip
    return model


def hand_loop(kind: str, x: torch.Tensor, y: torch.Tensor, bs: int, device: str) -> Callable[[], Any]:
    def run() -> Any:
        model = _torch_model(kind).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loss_fn = torch.nn.CrossEntropyLoss()
        xs_all, ys_all = x.to(device), y.to(device)
        gen = torch.Generator().manual_seed(0)
        out = []
        for _ in range(EPOCHS):
            model.train()
            perm = torch.randperm(len(y), generator=gen).to(device)
            xs, ys = xs_all[perm], ys_all[perm]
            total = torch.zeros((), dtype=torch.float64, device=device)
            hits = torch.zeros((), dtype=torch.int64, device=device)
            for i in range(0, len(y), bs):
                xb, yb = xs[i : i + bs], ys[i : i + bs]
                logits = model(xb)
                loss = loss_fn(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * yb.shape[0]
                hits += (logits.detach().argmax(-1) == yb).sum()
            out.append((total / len(y)).item())
            out.append(hits.item() / len(y))
        return out

    return run


def trainer(kind: str, x: torch.Tensor, y: torch.Tensor, bs: int, device: str, jit: bool = False) -> Callable:
    def run(t: Any = None) -> Any:
        if t is None:
            model = _torch_model(kind)
            t = tkm.Trainer(
                model, torch.optim.SGD(model.parameters(), lr=0.01), torch.nn.CrossEntropyLoss(),
                metrics=["accuracy"], device=device, jit_compile=jit,
            )  # fmt: skip
        t.fit(x, y, batch_size=bs, epochs=EPOCHS, verbose=0)
        return t

    return run


def keras_fit(kind: str, x: torch.Tensor, y: torch.Tensor, bs: int, device: str, jit: bool = False) -> Callable:
    xn = x.permute(0, 2, 3, 1).numpy() if kind == "cnn" else x.numpy()
    yn = y.numpy()

    def run(model: Any = None) -> Any:
        model = model if model is not None else _keras_model(kind, jit)
        model.fit(xn, yn, batch_size=bs, epochs=EPOCHS, verbose=0, shuffle=True)
        return model

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", default="mlp16,mlp32,mlp256,cnn32")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-jit", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    mlp_data = (torch.randn(8192, 64, generator=g), torch.randint(0, 10, (8192,), generator=g))
    print(
        f"device {args.device}, threads {torch.get_num_threads()}, torch {torch.__version__}, {args.rounds} rounds, "
        f"{EPOCHS} epochs per fit, whole fit (set-up included), median wall seconds and ratio to the hand loop"
    )
    for case in args.cases.split(","):
        kind, bs = case[:3], int(case[3:])
        x, y = mlp_data if kind == "mlp" else _digits()
        runs: dict[str, Callable] = {"hand loop": hand_loop(kind, x, y, bs, args.device)}
        runs["Trainer"] = trainer(kind, x, y, bs, args.device)
        warm: dict[str, Any] = {}
        compile_s: dict[str, float] = {}
        if not args.no_jit:
            make = trainer(kind, x, y, bs, args.device, jit=True)
            t0 = time.perf_counter()
            warm["Trainer jit"] = make()  # the first fit compiles
            compile_s["Trainer jit"] = time.perf_counter() - t0
            runs["Trainer jit"] = make
        if not args.no_keras:
            runs["Keras"] = keras_fit(kind, x, y, bs, args.device)
            if not args.no_jit:
                make = keras_fit(kind, x, y, bs, args.device, jit=True)
                t0 = time.perf_counter()
                try:
                    warm["Keras jit"] = make()
                except Exception as err:  # Keras' own compile can fail (an Inductor error on the CNN, torch 2.13)
                    print(f"{case:>7}: Keras(jit_compile=True) failed: {type(err).__name__}: {str(err)[:120]}")
                else:
                    compile_s["Keras jit"] = time.perf_counter() - t0
                    runs["Keras jit"] = make
        for name, run in runs.items():  # warm-up (imports, allocator)
            run(warm[name]) if name in warm else run()
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                c0, t0 = time.process_time(), time.perf_counter()
                run(warm[name]) if name in warm else run()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        # each round's ratio to that round's hand loop, then the median: robust to a machine that drifts
        for label, table in (("wall", times), ("cpu", cpu)):
            cells = []
            for name, t in table.items():
                ratio = statistics.median(a / b for a, b in zip(t, table["hand loop"]))
                cells.append(f"{name} {statistics.median(t):.3f}s {ratio:.2f}x")
            print(f"{case:>7} {label:>4}: " + " | ".join(cells), flush=True)
        for name, first in compile_s.items():
            steady = statistics.median(times[name])
            print(f"{'':>7}  {name}: first fit {first:.1f}s, of which compiling about {first - steady:.1f}s")
    _ = np


if __name__ == "__main__":
    main()
