"""Keras' other metrics summed across torch.distributed ranks (gloo, local processes, uneven shards): each
`result()` (one collective of the flat state) and torchmetrics' `compute()` equal one process fed every batch."""

from __future__ import annotations

import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import torch_keras_metrics as tkm

N = 101  # uneven shards for 2 and 3 ranks


def _data():
    g = torch.Generator().manual_seed(11)
    probs = torch.rand(N, 4, generator=g)
    one_hot = torch.nn.functional.one_hot(torch.randint(0, 4, (N,), generator=g), 4).float()
    regression = torch.randn(N, 3, generator=g)
    target = regression + 0.3 * torch.randn(N, 3, generator=g)
    weights = torch.rand(N, generator=g)
    return probs, one_hot, regression, target, weights


def _metrics():
    return [
        tkm.AUC(num_thresholds=50),
        tkm.AUC(multi_label=True, num_labels=4, curve="PR"),
        tkm.Precision(thresholds=[0.3, 0.6]),
        tkm.Recall(top_k=2),
        tkm.F1Score(average="macro"),
        tkm.FBetaScore(average=None, beta=2.0, threshold=0.5),
        tkm.OneHotMeanIoU(num_classes=4),
        tkm.R2Score(),
        tkm.MeanSquaredError(),
        tkm.PearsonCorrelation(),
        tkm.CategoricalCrossentropy(),
        tkm.Sum(),
    ]


def _feed(metrics, rows):
    probs, one_hot, regression, target, weights = (t[rows] for t in _data())
    for lo in range(0, len(weights), 8):
        b = slice(lo, lo + 8)
        for m in metrics:
            if isinstance(m, (tkm.R2Score, tkm.MeanSquaredError, tkm.PearsonCorrelation)):
                m.update_state(target[b], regression[b], sample_weight=weights[b])
            elif isinstance(m, tkm.Sum):
                m.update_state(probs[b], sample_weight=weights[b])
            else:  # the confusion family, F-scores, IoU, cross-entropy: one-hot labels and probabilities
                m.update_state(one_hot[b], probs[b], sample_weight=weights[b])


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=datetime.timedelta(minutes=5)
    )
    try:
        metrics = _metrics()
        _feed(metrics, slice(rank * N // world, (rank + 1) * N // world))
        local = [m.state() for m in metrics]
        result = [m.result() for m in metrics]
        computed = [m.compute() for m in metrics]
        after = [m.state() for m in metrics]
        torch.save({"result": result, "computed": computed, "kept": [torch.equal(a, b) for a, b in zip(local, after)]},
                   os.path.join(out_dir, f"{rank}.pt"))  # fmt: skip
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [3])  # 101 samples: shares of 33, 34 and 34
def test_every_family_over_uneven_gloo_shards_equals_one_process(world, tmp_path):
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    single = _metrics()
    _feed(single, slice(0, N))
    want = [m.result() for m in single]
    for rank in range(world):
        out = torch.load(tmp_path / f"{rank}.pt", weights_only=False)
        for m, expected, got, computed in zip(single, want, out["result"], out["computed"]):
            torch.testing.assert_close(got.double(), expected.double(), rtol=1e-6, atol=1e-6, msg=m.name)
            torch.testing.assert_close(computed.double(), expected.double(), rtol=1e-6, atol=1e-6, msg=m.name)
        assert all(out["kept"])  # a sync leaves each rank's own state as it was
