"""Metric states summed across torch.distributed ranks (gloo, several local processes)."""

import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import torch_keras_metrics as tkm

N_SAMPLES = 101  # not a multiple of any world size used here: the shards are uneven


def _data():
    g = torch.Generator().manual_seed(7)
    scores = torch.rand(N_SAMPLES, 6, generator=g)
    labels = torch.randint(0, 6, (N_SAMPLES,), generator=g)
    weights = torch.rand(N_SAMPLES, generator=g)
    return labels, scores, weights


def _metrics():
    return [tkm.SparseCategoricalAccuracy(), tkm.SparseTopKCategoricalAccuracy(k=2), tkm.Mean("loss")]


def _feed(metrics, labels, scores, weights):
    acc, top2, loss = metrics
    for start in range(0, len(labels), 8):
        part = slice(start, start + 8)
        acc.update_state(labels[part], scores[part], sample_weight=weights[part])
        top2(labels[part], scores[part])
        loss.update_state(scores[part].max(-1).values, sample_weight=weights[part])


def _worker(rank, world_size, init_file, out_dir):
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(minutes=5),
    )
    try:
        labels, scores, weights = _data()
        # uneven contiguous shards: rank r takes rows [r * 101 // W, (r + 1) * 101 // W)
        shard = slice(rank * N_SAMPLES // world_size, (rank + 1) * N_SAMPLES // world_size)
        metrics = _metrics()
        _feed(metrics, labels[shard], scores[shard], weights[shard])
        local = [m.result(sync=False) for m in metrics]
        synced = [m.compute() for m in metrics]
        again = [m.compute() for m in metrics]  # unsync restored the local state: same answer twice
        result = [m.result() for m in metrics]  # under a group, result() is the global value too (one collective)
        after = [m.result(sync=False) for m in metrics]
        out = {"local": local, "synced": synced, "again": again, "result": result, "after": after}
        torch.save(out, os.path.join(out_dir, f"{rank}.pt"))
        dist.barrier()  # nobody closes the group while a peer still talks to it (gloo aborts then)
    finally:
        dist.destroy_process_group()
    # Leave without interpreter teardown: gloo's and DDP's C++ threads can abort there at random
    # ("terminate called without an active exception"); an error above still exits through spawn.
    os._exit(0)


@pytest.mark.parametrize("world_size", [2, 3])
def test_compute_sums_states_over_ranks(tmp_path, world_size):
    mp.spawn(_worker, args=(world_size, str(tmp_path / "init"), str(tmp_path)), nprocs=world_size, join=True)
    labels, scores, weights = _data()
    single = _metrics()
    _feed(single, labels, scores, weights)
    expected = [m.result() for m in single]
    results = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(world_size)]
    for rank, res in enumerate(results):
        for got, again, result, want in zip(res["synced"], res["again"], res["result"], expected):
            assert torch.allclose(got, want, atol=1e-6), (rank, got, want)
            assert torch.equal(got, again) and torch.allclose(result, want, atol=1e-6)
        for local, after in zip(res["local"], res["after"]):
            assert torch.equal(local, after)
    # the local results differ between ranks (each saw its own shard), the synced ones do not
    assert any(not torch.equal(results[0]["local"][i], results[1]["local"][i]) for i in range(3))
