"""Checkpoint and resume under torch.distributed: 2 gloo CPU processes, compared with an uninterrupted run.

Rank 0 writes the checkpoints; every rank resumes from the same file. A run that stopped after epoch 2
of 4 (what a killed run leaves behind: its checkpoints) is resumed by fresh trainers with `resume_from`
and must end, on every rank, with the uninterrupted run's weights and epoch logs, bit for bit (the
per-batch values of the restored epochs are rank 0's, on every rank).
"""

from __future__ import annotations

import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import torch_keras_metrics as tkm

WORLD = 2
pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def _trainer(seed: int = 0) -> tkm.Trainer:
    torch.manual_seed(seed)
    # dropout draws from each rank's own torch random state: the checkpoint must restore each
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 3))
    trainer = tkm.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9),
        tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True),
        metrics=["accuracy"],
        device="cpu",
    )
    torch.manual_seed(1000 * seed + dist.get_rank())  # each rank its own dropout masks (the weights: rank 0's)
    return trainer


def _fit(trainer: tkm.Trainer, folder: str, epochs: int, **kwargs) -> tkm.History:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(120, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    callbacks = [
        tkm.ReduceLROnPlateau("val_loss", factor=0.5, patience=0),
        tkm.ModelCheckpoint(os.path.join(folder, "ckpt-{epoch}.pt")),
        tkm.EarlyStopping("val_loss", patience=10),
    ]
    return trainer.fit(
        x, y, batch_size=32, epochs=epochs, verbose=0, validation_split=0.2, callbacks=callbacks, **kwargs
    )


def _worker(rank: int, init_file: str, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=datetime.timedelta(minutes=5)
    )
    try:
        full = _trainer()
        full_history = _fit(full, os.path.join(folder, "full"), 4)
        _fit(_trainer(), os.path.join(folder, "run"), 2)  # stops after epoch 2 of 4, as a killed run would
        listing = sorted(os.listdir(os.path.join(folder, "run")))
        dist.barrier()  # rank 0's files are written before the resume reads them
        resumed = _trainer(seed=5)
        history = _fit(resumed, os.path.join(folder, "run"), 4, resume_from=os.path.join(folder, "run"))
        torch.save(
            {
                "full": (full.model.state_dict(), full_history.state_dict()),
                "resumed": (resumed.model.state_dict(), history.state_dict()),
                "listing": listing,
            },
            os.path.join(folder, f"rank{rank}.pt"),
        )
        dist.barrier()  # nobody closes the group while a peer still talks to it (gloo aborts then)
    finally:
        dist.destroy_process_group()
    # Leave without interpreter teardown: gloo's and DDP's C++ threads can abort there at random
    # ("terminate called without an active exception"); an error above still exits through spawn.
    os._exit(0)


def test_resume_under_two_gloo_processes_matches_the_uninterrupted_run(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    outs = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert outs[0]["listing"] == ["ckpt-1.pt", "ckpt-2.pt"]
    assert sorted(os.listdir(tmp_path / "run")) == [f"ckpt-{e}.pt" for e in (1, 2, 3, 4)]
    for rank, out in enumerate(outs):
        (full_w, full_h), (res_w, res_h) = out["full"], out["resumed"]
        assert all(torch.equal(full_w[k], res_w[k]) for k in full_w)
        assert res_h["history"] == full_h["history"] and res_h["epoch"] == full_h["epoch"] == [0, 1, 2, 3]
        # per-batch values are each rank's own: the restored epochs' are rank 0's, who wrote the file
        restored = outs[0]["full"][1]["batches"][:2]
        assert res_h["batches"] == restored + full_h["batches"][2:]
        assert (res_h == full_h) == (rank == 0)
    assert outs[0]["resumed"][1]["history"] == outs[1]["resumed"][1]["history"]  # every rank logs the same
