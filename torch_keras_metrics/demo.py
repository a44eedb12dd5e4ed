"""`python -m torch_keras_metrics.demo`: train an MLP on scikit-learn's digits, the Keras way, and answer
the classic question "how is the accuracy Keras prints for an epoch computed?" for this very run.

It prints Keras-style logs (one line per epoch when the output is not a terminal), then, per epoch,
the printed accuracy beside the mean, max and last of that epoch's batch accuracies and beside the
accuracy of the weights at the end of the epoch on the training set; and saves a plot (batch values,
running mean, epoch values) to a PNG. Options: `--epochs`, `--out PATH`, `--seed`.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

from .callbacks import Callback
from .history import plot_history, running_mean
from .losses import KerasLoss
from .trainer import Trainer


class TrainSetAccuracy(Callback):
    """At each epoch's end: the accuracy of the weights as they are now, on the whole training set."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.values: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            pred = self.model(self.x.to(self.trainer.device)).argmax(-1).cpu()
        self.model.train(was_training)
        self.values.append((pred == self.y).double().mean().item())


def _default_out() -> str:
    name = "torch_keras_metrics_demo.png"
    return os.path.abspath(name) if os.access(os.getcwd(), os.W_OK) else os.path.join(tempfile.gettempdir(), name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default=None, help="where to save the PNG (default: ./torch_keras_metrics_demo.png)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    torch.manual_seed(args.seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        KerasLoss("sparse_categorical_crossentropy", from_logits=True),
        metrics=["accuracy"],
    )
    trainer.generator.manual_seed(args.seed)
    split = int(len(x) * 0.8)  # validation_split=0.2 holds out the last 20%, as Keras does
    train_acc = TrainSetAccuracy(x[:split], y[:split])
    print(f"Digits: {len(x)} images of 8x8 pixels, 10 classes; MLP 64-64-10, SGD, batch 32, validation_split=0.2")
    history = trainer.fit(
        x, y, batch_size=32, epochs=args.epochs, validation_split=0.2, callbacks=[train_acc], verbose="auto"
    )

    print("\nWhat is the 'accuracy' printed for an epoch? For this run:")
    header = ("epoch", "printed", "mean of batches", "max batch", "last batch", "end weights, train set")
    print("  ".join(f"{h:>{max(len(h), 7)}}" for h in header))
    for i, record in enumerate(history.batches):
        accs = record["accuracy"]
        row = [
            history.epoch[i] + 1,
            history.history["accuracy"][i],
            sum(accs) / len(accs),
            max(accs),
            accs[-1],
            train_acc.values[i],
        ]
        print(
            "  ".join(f"{v:>{max(len(h), 7)}.4f}" if isinstance(v, float) else f"{v:>7}" for v, h in zip(row, header))
        )
    last = history.batches[-1]
    run = running_mean(last["accuracy"], last["size"])
    end = train_acc.values[-1]
    relation = "trails" if history.history["accuracy"][-1] < end else "differs from"
    print(
        f"\nThe printed value is the running mean of the epoch's batch accuracies, each batch weighted by its size "
        f"(last epoch: {run[-1]:.4f}, the bar's final running value). It is taken while the weights change, so it is "
        f"neither the best batch ({max(last['accuracy']):.4f}) nor the last one ({last['accuracy'][-1]:.4f}), and it "
        f"{relation} the accuracy of the epoch's final weights on the same training data ({end:.4f}).\n"
        f"Keras 2's BaseLogger gives the same number here (no sample weights): "
        f"{history.keras2_history['accuracy'][-1]:.4f}."
    )

    out = args.out or _default_out()
    import matplotlib

    matplotlib.use("Agg")
    plot_history(history, batches=True, path=out)
    print(f"\nPlot of batch values, running mean and epoch values saved to {out}")


if __name__ == "__main__":
    main()
