"""Data-parallel training with the Keras-style `Trainer`: sklearn's digits, an MLP, Keras' logs on rank 0.

    torchrun --nproc_per_node=2 examples/ddp_train.py    # 2 processes: gloo on CPU, nccl with one GPU each
    python examples/ddp_train.py                         # the same script as one process

`batch_size` is the global batch, as in Keras: each of the N processes trains on batch_size / N samples
of every step, and the logs (identical on every rank) cover all of them.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import torch_keras_metrics as tkm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch, over all processes")
    parser.add_argument("--lr", type=float, default=1e-2)
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.25, random_state=0)

    torch.manual_seed(0)  # DDP copies rank 0's initial weights to every rank anyway
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    trainer = tkm.Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=args.lr),
        tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True),
        metrics=["accuracy"],
        distributed="auto",  # joins torchrun's group (initialising it from the environment), else one process
    )
    if trainer.rank == 0:
        per_rank = args.batch_size / trainer.world_size
        print(f"{trainer.world_size} process(es) on {trainer.device}, {per_rank:g} samples per process and step")
    trainer.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_test, y_test),
        verbose=2,  # forced to 0 on the other ranks
    )
    scores = trainer.evaluate(x_test, y_test, batch_size=args.batch_size, verbose=0, return_dict=True)
    print(f"rank {trainer.rank}: test {scores}")  # the same numbers on every rank
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # nobody closes the group while a peer still talks to it
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
