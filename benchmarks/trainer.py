"""Per-step time of `Trainer.fit` against the leanest hand-written loop and the usual peers.

MLP 64-128-10 on 8192 samples, sparse labels, cross-entropy on logits, accuracy, SGD, shuffled,
batch sizes 16, 32 and 256, one CPU thread (or CUDA when present), contenders interleaved in
every repeat. Each contender computes the same numbers: every batch's loss and accuracy, and the
epoch's size-weighted loss and accuracy. Peers not installed are skipped with a note.

    python benchmarks/trainer.py [--repeats 5] [--epochs 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import torch_keras_metrics as tkm  # noqa: E402

N, IN, HIDDEN, OUT = 8192, 64, 128, 10


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT))


def hand_loop(x: torch.Tensor, y: torch.Tensor, bs: int, device: str) -> Callable[[int], None]:
    """The leanest loop that yields the same numbers: batch values kept as tensors, read once per epoch."""
    model = mlp().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    acc = tkm.SparseCategoricalAccuracy().to(device)
    x, y = x.to(device), y.to(device)

    def run(epochs: int) -> None:
        for _ in range(epochs):
            model.train()
            acc.reset_state()
            perm = torch.randperm(N)
            xs, ys = x[perm.to(device)], y[perm.to(device)]
            losses, accs, sizes = [], [], []
            for i in range(0, N, bs):
                xb, yb = xs[i : i + bs], ys[i : i + bs]
                out = model(xb)
                loss = loss_fn(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.detach())
                accs.append(acc(yb, out.detach()))
                sizes.append(yb.shape[0])
            w = torch.tensor(sizes, dtype=torch.float64, device=losses[0].device)
            epoch_loss = (torch.stack(losses).double() * w).sum() / w.sum()
            torch.stack([epoch_loss, acc.result().double()]).tolist()
            torch.stack(losses).tolist(), torch.stack(accs).tolist()

    return run


def trainer(x: torch.Tensor, y: torch.Tensor, bs: int, device: str) -> Callable[[int], None]:
    model = mlp()
    t = tkm.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        torch.nn.CrossEntropyLoss(),
        metrics=["accuracy"],
        device=device,
    )
    x, y = x.to(device), y.to(device)
    return lambda epochs: t.fit(x, y, batch_size=bs, epochs=epochs, verbose=0, shuffle=True)


def keras_fit(x: torch.Tensor, y: torch.Tensor, bs: int, device: str) -> Callable[[int], None]:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((IN,)), keras.layers.Dense(HIDDEN, activation="relu"), keras.layers.Dense(OUT)]
    )
    model.compile(
        keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    xn, yn = x.numpy(), y.numpy()
    return lambda epochs: model.fit(xn, yn, batch_size=bs, epochs=epochs, verbose=0, shuffle=True)


def poutyne_fit(x: torch.Tensor, y: torch.Tensor, bs: int, device: str) -> Callable[[int], None]:
    import poutyne

    model = mlp()
    pm = poutyne.Model(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        torch.nn.CrossEntropyLoss(),
        batch_metrics=["accuracy"],
        device=device,
    )
    return lambda epochs: pm.fit(x, y, batch_size=bs, epochs=epochs, verbose=False)


def ignite_fit(x: torch.Tensor, y: torch.Tensor, bs: int, device: str) -> Callable[[int], None]:
    from ignite.engine import create_supervised_trainer
    from ignite.metrics import Accuracy, Average

    model = mlp().to(device)
    engine = create_supervised_trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        torch.nn.CrossEntropyLoss(),
        device=device,
        output_transform=lambda x, y, y_pred, loss: (y_pred.detach(), y, loss.detach()),
    )
    Accuracy(output_transform=lambda o: (o[0], o[1])).attach(engine, "accuracy")
    Average(output_transform=lambda o: o[2]).attach(engine, "loss")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=bs, shuffle=True)
    return lambda epochs: engine.run(loader, max_epochs=engine.state.epoch + epochs if engine.state else epochs)


PEERS = {"keras": keras_fit, "poutyne": poutyne_fit, "ignite": ignite_fit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-sizes", default="16,32,256")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N, IN, generator=g), torch.randint(0, OUT, (N,), generator=g)
    contenders: dict[str, Callable] = {"hand loop": hand_loop, "Trainer.fit": trainer}
    for name, make in PEERS.items():
        try:
            __import__({"keras": "keras", "poutyne": "poutyne", "ignite": "ignite"}[name])
            contenders[name] = make
        except ImportError:
            print(f"note: {name} is not installed; skipped")
    print(
        f"device {args.device}, threads {torch.get_num_threads()}, torch {torch.__version__}, "
        f"{args.repeats} interleaved repeats of {args.epochs} epoch(s); median per step of process CPU time "
        "(robust to other load on the machine) and of wall time"
    )
    header = f"{'batch':>6} {'clock':>5} " + " ".join(f"{name:>20}" for name in contenders)
    print(header)
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        steps = -(-N // bs) * args.epochs
        runs = {name: make(x, y, bs, args.device) for name, make in contenders.items()}
        for run in runs.values():
            run(1)  # warm-up
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        wall: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                if args.device == "cuda":
                    torch.cuda.synchronize()
                c0, w0 = time.process_time(), time.perf_counter()
                run(args.epochs)
                if args.device == "cuda":
                    torch.cuda.synchronize()
                cpu[name].append((time.process_time() - c0) / steps)
                wall[name].append((time.perf_counter() - w0) / steps)
        for label, times in (("cpu", cpu), ("wall", wall)):
            base = statistics.median(times["hand loop"])
            cells = [
                f"{statistics.median(t) * 1e6:8.0f} us {statistics.median(t) / base:5.2f}x" for t in times.values()
            ]
            print(f"{bs:>6} {label:>5} " + " ".join(f"{c:>20}" for c in cells), flush=True)
    _ = np  # numpy is Keras' input type


if __name__ == "__main__":
    main()
