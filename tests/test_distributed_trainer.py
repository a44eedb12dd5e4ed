"""The Trainer under torch.distributed: gloo, 2 and 3 local CPU processes, compared with one process.

One spawn per world size runs every scenario in the same process group (process start-up dominates);
the reference numbers come from a single process in the test itself.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import io
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import torch_keras_metrics as tkm
from torch_keras_metrics.distributed import reduce_epoch, setup, shard_bounds
from torch_keras_metrics.sharding import shard_plan

N_EVAL = 1001  # a multiple of neither 2 nor 3
N_TRAIN = 240  # with batch 32: a ragged last batch of 16 (5/5/6 over 3 ranks)
BATCH = 32
EPOCHS = 3
# Only a real hang reaches these: a slow, busy machine never should (gloo's own default is 30 minutes).
TIMEOUT = datetime.timedelta(minutes=5)
DEADLINE_S = 300


# --------------------------------------------------------------------------- shared pieces
def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = ((x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()).clamp(max=2)
    w = torch.rand(n, generator=g) + 0.5
    return x, y, w


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3), torch.nn.Softmax(-1))


def _trainer(**kwargs):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    return tkm.Trainer(
        model,
        opt,
        "sparse_categorical_crossentropy",
        metrics=["accuracy", tkm.SparseTopKCategoricalAccuracy(k=2)],
        weighted_metrics=["accuracy"],
        device="cpu",
        **kwargs,
    )


def _fit(trainer, shuffle=True, x=None):
    tx, ty, tw = _data(N_TRAIN, 1)
    vx, vy, vw = _data(N_EVAL, 2)
    history = trainer.fit(
        tx if x is None else x,
        None if x is not None else ty,
        batch_size=BATCH,
        epochs=EPOCHS,
        sample_weight=None if x is not None else tw,
        validation_data=(vx, vy, vw),
        shuffle=shuffle,
        verbose=0,
    )
    return history.history


class _TwoHeads(torch.nn.Module):
    """Dict inputs a, b; dict outputs: 3 classes and one regression value."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.cls, self.reg = torch.nn.Linear(6, 16), torch.nn.Linear(16, 3), torch.nn.Linear(16, 1)

    def forward(self, a, b):
        h = torch.tanh(self.body(torch.cat([a, b], -1)))
        return {"cls": self.cls(h).softmax(-1), "reg": self.reg(h)}


def _structured_fit():
    """A dict-input, two-output model, per-output losses, weights, metrics and sample weights."""
    model = _TwoHeads()
    trainer = tkm.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9),
        {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
        loss_weights={"cls": 1.0, "reg": 0.5},
        metrics={"cls": ["accuracy"], "reg": ["mae"]},
        weighted_metrics={"cls": ["accuracy"]},
        device="cpu",
    )
    tx, ty, tw = _data(N_TRAIN, 1)
    vx, vy, vw = _data(N_EVAL, 2)

    def structured(x, y, w):
        return {"a": x[:, :4], "b": x[:, 4:]}, {"cls": y, "reg": x[:, :1] * 2}, {"cls": w, "reg": w.flip(0)}

    x, y, w = structured(tx, ty, tw)
    history = trainer.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=EPOCHS, verbose=0,
                          validation_data=structured(vx, vy, vw))  # fmt: skip
    return history.history


def _metric_suite():
    def mean_pred(y_true, y_pred):
        return y_pred.max(-1).values

    return [
        tkm.Accuracy(),
        tkm.BinaryAccuracy(),
        tkm.CategoricalAccuracy(),
        tkm.SparseCategoricalAccuracy(),
        tkm.TopKCategoricalAccuracy(k=2),
        tkm.SparseTopKCategoricalAccuracy(k=2),
        tkm.MeanMetricWrapper(mean_pred),
        tkm.Mean(),
    ]


def _feed_metrics(metrics, lo, hi):
    x, y, w = _data(N_EVAL, 3)
    probs = x[:, :3].softmax(-1)
    onehot = torch.nn.functional.one_hot(y, 3).float()
    for start in range(lo, hi, 40):
        s = slice(start, min(start + 40, hi))
        acc, binary, cat, sparse, topk, sparse_topk, wrapper, mean = metrics
        acc.update_state(y[s], probs[s].argmax(-1), sample_weight=w[s])
        binary.update_state((y[s] > 0).float(), probs[s, 0])
        cat.update_state(onehot[s], probs[s], sample_weight=w[s])
        sparse.update_state(y[s], probs[s])
        topk.update_state(onehot[s], probs[s])
        sparse_topk.update_state(y[s], probs[s], sample_weight=w[s])
        wrapper.update_state(y[s], probs[s])
        mean.update_state(x[s, 3], sample_weight=w[s])


class _StopOn(tkm.Callback):
    """Sets stop_training on one rank only: at an epoch's end, or after a batch."""

    def __init__(self, rank, epoch=None, batch=None):
        super().__init__()
        self.rank, self.epoch, self.batch_at = rank, epoch, batch
        self.epoch_now = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_now = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.batch_at is not None and self.trainer.rank == self.rank and (self.epoch_now, batch) == self.batch_at:
            self.trainer.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch and self.trainer.rank == self.rank:
            self.trainer.stop_training = True


class _RecordingSampler(DistributedSampler):
    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.seen = [*getattr(self, "seen", []), epoch]


def _init(rank, world, init_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=TIMEOUT)


# --------------------------------------------------------------------------- the workers
def _worker(rank, world, init_file, out_dir):
    _init(rank, world, init_file)
    try:
        out = {}
        # each metric's state, reduced by the Trainer's single all-reduce, on uneven contiguous shards
        metrics = _metric_suite()
        _feed_metrics(metrics, *shard_bounds(N_EVAL, rank, world))
        local = [(m.total.clone(), m.count.clone()) for m in metrics]
        _, out["metrics"] = reduce_epoch(None, metrics, torch.device("cpu"))
        out["untouched"] = all(torch.equal(m.total, t) and torch.equal(m.count, c) for m, (t, c) in zip(metrics, local))

        # evaluate on 1001 samples: arrays, a Dataset, a DataLoader with a (padding) DistributedSampler
        x, y, w = _data(N_EVAL, 2)
        trainer = _trainer()
        out["evaluate"] = trainer.evaluate(x, y, sample_weight=w, batch_size=64, verbose=0, return_dict=True)
        out["evaluate_dataset"] = trainer.evaluate(TensorDataset(x, y, w), batch_size=64, verbose=0, return_dict=True)
        loader = DataLoader(TensorDataset(x, y, w), batch_size=50, sampler=DistributedSampler(TensorDataset(x, y, w)))
        out["evaluate_sampler"] = trainer.evaluate(loader, verbose=0, return_dict=True)

        # fit: arrays with sample weights, shuffled (one permutation for all ranks); printing on rank 0 only
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            trainer = _trainer()
            hist = trainer.fit(*_data(N_TRAIN, 1)[:2], batch_size=BATCH, epochs=2, verbose=2)
        out["printed"] = printed.getvalue()
        out["fit"] = _fit(_trainer())
        out["fit_jit"] = _fit(_trainer(jit_compile={"backend": "aot_eager"}))  # compiled steps under DDP
        out["fit_dataset"] = _fit(_trainer(), shuffle=False, x=TensorDataset(*_data(N_TRAIN, 1)))
        out["fit_structured"] = _structured_fit()

        # BatchNorm: after a fit with validation, every rank holds rank 0's running statistics
        torch.manual_seed(0)
        bn = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
        loss = tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True)
        trainer = tkm.Trainer(bn, torch.optim.SGD(bn.parameters(), lr=0.1), loss, device="cpu")
        trainer.fit(*_data(N_TRAIN, 1)[:2], batch_size=BATCH, validation_data=_data(N_EVAL, 2)[:2], verbose=0)
        out["bn"] = [b.clone() for b in bn.buffers()]

        # the user's own DDP (its options) is used as given; trainer.model is the module inside
        model = _model()
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        trainer = tkm.Trainer(ddp, opt, "sparse_categorical_crossentropy", device="cpu")
        hist = trainer.fit(*_data(N_TRAIN, 1)[:2], batch_size=BATCH, epochs=1, verbose=0)
        out["own_ddp"] = (trainer.model is model, trainer._net is ddp, hist.history["loss"])

        # stop_training set on one rank stops every rank, at the end of the epoch
        trainer = _trainer()
        stop = _StopOn(rank=world - 1, epoch=0)
        hist = trainer.fit(*_data(N_TRAIN, 1)[:2], batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=[stop])
        out["stopped_epochs"] = list(hist.epoch)
        stop = _StopOn(rank=0, batch=(1, 2))
        hist = _trainer().fit(*_data(N_TRAIN, 1)[:2], batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=[stop])
        out["stopped_in_batch"] = (list(hist.epoch), [len(b["size"]) for b in hist.batches])

        # a user's DataLoader with a DistributedSampler: set_epoch each epoch
        data = TensorDataset(*_data(N_TRAIN, 1)[:2])
        sampler = _RecordingSampler(data, shuffle=True, seed=3)
        _trainer().fit(DataLoader(data, batch_size=BATCH // world, sampler=sampler), epochs=EPOCHS, verbose=0)
        out["set_epoch"] = sampler.seen
        torch.save(out, os.path.join(out_dir, f"{rank}.pt"))
        dist.barrier()  # nobody closes the group while a peer still talks to it (gloo aborts then)
    finally:
        dist.destroy_process_group()
    # Leave without interpreter teardown: gloo's and DDP's C++ threads can abort there at random
    # ("terminate called without an active exception"); an error above still exits through spawn.
    os._exit(0)


class _Boom(tkm.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if self.trainer.rank == 1:
            raise ValueError("boom from rank 1")


def _failing_worker(rank, world, port, out_dir):
    # as torchrun starts it: the Trainer initialises the group from the environment, and the store
    # is the launcher's (held by the test, so its port is never given up and taken by another program)
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True")
    try:
        trainer = _trainer(distributed="auto")
        trainer.fit(*_data(N_TRAIN, 1)[:2], batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=[_Boom()])
        outcome = "finished"
    except Exception as err:
        outcome = f"{type(err).__name__}: {err}"
    with open(os.path.join(out_dir, f"fail{rank}.txt"), "w") as f:
        f.write(outcome)
    # Ending the process is what tells the others (gloo sees the connection close); leave without
    # interpreter teardown, as _worker does.
    os._exit(0)


# --------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module", params=[2, 3])
def ranks(request, tmp_path_factory):
    world = request.param
    out = tmp_path_factory.mktemp(f"world{world}")
    mp.spawn(_worker, args=(world, str(out / "init"), str(out)), nprocs=world, join=True)
    return world, [torch.load(out / f"{r}.pt", weights_only=False) for r in range(world)]


def _close(got, want, tol=1e-5):
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=tol), (k, got[k], want[k])


def test_each_metric_reduced_equals_single_process(ranks):
    world, results = ranks
    single = _metric_suite()
    _feed_metrics(single, 0, N_EVAL)
    for res in results:
        assert res["untouched"]
        for m, got in zip(single, res["metrics"]):
            assert torch.allclose(got, m.result(), atol=1e-6), (m.name, got, m.result())


def test_evaluate_counts_every_sample_once(ranks):
    world, results = ranks
    x, y, w = _data(N_EVAL, 2)
    want = _trainer().evaluate(x, y, sample_weight=w, batch_size=64, verbose=0, return_dict=True)
    for res in results:
        for key in ("evaluate", "evaluate_dataset", "evaluate_sampler"):
            _close(res[key], want, tol=1e-6)


@functools.lru_cache
def _single_process_fits():
    return _fit(_trainer()), _fit(_trainer(), shuffle=False)


def test_fit_history_equals_single_process_with_the_global_batch(ranks):
    world, results = ranks
    want, want_unshuffled = _single_process_fits()
    for res in results:
        for epoch in range(EPOCHS):
            _close({k: v[epoch] for k, v in res["fit"].items()}, {k: v[epoch] for k, v in want.items()})
            got = {k: v[epoch] for k, v in res["fit_dataset"].items()}
            _close(got, {k: v[epoch] for k, v in want_unshuffled.items()})


def test_a_dict_input_two_output_model_equals_single_process(ranks):
    world, results = ranks
    want = _structured_fit()
    assert "val_cls_weighted_accuracy" in want and "reg_loss" in want
    for res in results:
        for epoch in range(EPOCHS):
            _close({k: v[epoch] for k, v in res["fit_structured"].items()}, {k: v[epoch] for k, v in want.items()})


def test_every_rank_logs_the_same_and_only_rank_0_prints(ranks):
    world, results = ranks
    for res in results[1:]:
        assert res["fit"] == results[0]["fit"]  # bitwise: one all-reduce, the same arithmetic everywhere
        assert res["evaluate"] == results[0]["evaluate"]
        assert res["printed"] == ""
        assert all(torch.equal(a, b) for a, b in zip(res["bn"], results[0]["bn"]))
        assert res["own_ddp"] == results[0]["own_ddp"] and res["own_ddp"][:2] == (True, True)
    assert "Epoch 2/2" in results[0]["printed"] and "loss:" in results[0]["printed"]


def test_stop_training_on_one_rank_stops_all_at_epoch_end(ranks):
    world, results = ranks
    steps = N_TRAIN // BATCH + 1
    for res in results:
        assert res["stopped_epochs"] == [0]
        assert res["stopped_in_batch"] == ([0, 1], [steps, steps])  # the batch-level stop waits for the epoch end


def test_user_distributed_sampler_gets_set_epoch(ranks):
    world, results = ranks
    for res in results:
        assert res["set_epoch"] == list(range(EPOCHS))


def test_one_rank_raising_stops_the_group_with_a_clear_error(tmp_path):
    store = dist.TCPStore("127.0.0.1", 0, world_size=2, is_master=True, wait_for_workers=False)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_failing_worker, args=(r, 2, store.port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(DEADLINE_S)  # far inside gloo's 30-minute timeout: exiting in time means the closed connection told
    hung = [rank for rank, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():  # never leave a hung worker behind
            p.kill()
            p.join()
    assert not hung, f"rank(s) {hung} did not exit within {DEADLINE_S} s"
    outcomes = [(tmp_path / f"fail{r}.txt").read_text() for r in range(2)]
    assert outcomes[1] == "ValueError: boom from rank 1"
    assert outcomes[0].startswith("RuntimeError: Stopped on rank 0 of 2 because rank 1 raised ValueError: boom")


def test_setup_without_a_group(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert setup(None, "cpu") is None and setup("auto", "cpu") is None and setup(False, "cpu") is None
    with pytest.raises(RuntimeError, match="torchrun --nproc_per_node"):
        setup(True, "cpu")
    with pytest.raises(ValueError, match="distributed"):
        _trainer(distributed="yes")
    assert _trainer(distributed="auto").world_size == 1


def test_shard_plan_covers_each_global_batch_once():
    for n, batch, world in [(240, 32, 3), (1001, 64, 2), (10, 4, 3), (7, 7, 7)]:
        plans = [shard_plan(n, batch, r, world) for r in range(world)]
        assert len({len(p) for p in plans}) == 1  # the same number of steps on every rank
        rows = sorted(i for p in plans for lo, hi, _ in p for i in range(lo, hi))
        dropped = n % batch if 0 < n % batch < world else 0
        assert rows == list(range(n - dropped))
        for step in zip(*plans):  # DDP's mean of rank gradients, scaled, is the global batch's mean
            assert sum(scale for _, _, scale in step) == pytest.approx(world)


class _Stall(tkm.Callback):
    """Rank 1 falls asleep in a callback (as a rank waiting on input would): it raises nothing."""

    def on_train_batch_end(self, batch, logs=None):
        if self.trainer.rank == 1 and batch == 1:
            time.sleep(DEADLINE_S)


def _stalling_worker(rank, world, port, out_dir):
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True")
    try:
        trainer = _trainer(distributed="auto", timeout=3)
        trainer.fit(*_data(N_TRAIN, 1)[:2], batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=[_Stall()])
        outcome = "finished"
    except Exception as err:
        outcome = f"{type(err).__name__}: {err}"
    with open(os.path.join(out_dir, f"stall{rank}.txt"), "w") as f:
        f.write(outcome)
    os._exit(0)


def test_a_stalled_rank_ends_the_group_with_an_error_naming_it(tmp_path):
    store = dist.TCPStore("127.0.0.1", 0, world_size=2, is_master=True, wait_for_workers=False)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_stalling_worker, args=(r, 2, store.port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    procs[0].join(DEADLINE_S)  # rank 1 sleeps for DEADLINE_S: rank 0 must give up long before, on its own
    alive = procs[0].is_alive()
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert not alive, "rank 0 waited on the stalled rank without end"
    outcome = (tmp_path / "stall0.txt").read_text()
    assert outcome.startswith("RuntimeError: Stopped on rank 0 of 2: rank(s) [1] did not reach the collective"), outcome
    assert "timeout of 3 s" in outcome
    assert not (tmp_path / "stall1.txt").exists()  # still asleep when rank 0 had reported


def test_timeout_is_checked():
    for bad in (0, -1, "10", True):
        with pytest.raises(ValueError, match="`timeout`"):
            _trainer(timeout=bad)


def test_compiled_steps_under_ddp_give_the_eager_distributed_numbers(ranks):
    world, results = ranks
    for res in results:
        _close(res["fit_jit"], res["fit"])
