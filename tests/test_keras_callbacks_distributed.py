"""The Keras callbacks in a real two-rank gloo group: rank 0 writes, every rank decides.

Kept apart from test_keras_callbacks.py so the spawned ranks import neither Keras nor hypothesis.
"""

from __future__ import annotations

import os

import torch

import torch_keras_metrics as tkm
from torch_keras_metrics import keras_callbacks as ours


class Stub:
    """What a callback may see of a Trainer: model, optimizer and stop_training."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.stop_training = False
        self.metrics: list = []
        self.metrics_names = ["loss"]

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _rank_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import datetime

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(minutes=5))  # fmt: skip
    try:
        stub = Stub()
        stub.model = torch.nn.parallel.DistributedDataParallel(stub.model)
        run = os.path.join(out, "run")
        callbacks = [
            ours.ModelCheckpoint(os.path.join(run, "ckpt-{epoch}.pt"), monitor="loss", save_weights_only=True),
            ours.CSVLogger(os.path.join(out, "log.csv")),
            ours.EarlyStopping("loss", patience=1),
            ours.ReduceLROnPlateau("loss", patience=0, factor=0.5),
        ]
        if _has_tensorboard():
            callbacks.append(ours.TensorBoard(os.path.join(out, "tb"), update_freq="batch"))
        cbs = tkm.CallbackList(callbacks, trainer=stub)
        cbs.on_train_begin()
        for epoch, loss in enumerate([0.5, 0.6, 0.7, 0.8]):
            cbs.on_epoch_begin(epoch)
            cbs.on_train_batch_end(0, tkm.logs.Logs({"loss": torch.tensor(loss)}, size=2))
            cbs.on_epoch_end(epoch, {"loss": loss})
            if stub.stop_training:
                break
        cbs.on_train_end()
        torch.save({"stopped": callbacks[2].stopped_epoch, "lr": stub.lr()}, os.path.join(out, f"rank{rank}.pt"))
        dist.barrier()  # nobody closes the group while a peer still talks to it (gloo aborts then)
    finally:
        dist.destroy_process_group()
    # Leave without interpreter teardown: gloo's and DDP's C++ threads can abort there at random
    # ("terminate called without an active exception"); an error above still exits through spawn.
    os._exit(0)


def test_a_real_two_rank_group_writes_from_rank_zero_only(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_rank_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    decisions = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert decisions[0] == decisions[1] == {"stopped": 1, "lr": 0.05}
    assert sorted(os.listdir(tmp_path / "run")) == ["ckpt-1.pt", "ckpt-2.pt"]  # no temporaries left
    assert set(torch.load(tmp_path / "run" / "ckpt-1.pt", weights_only=True)) == {
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"
    }  # fmt: skip
    assert (tmp_path / "log.csv").read_bytes().count(b"\r\n") == 3  # one writer: header + 2 rows
