"""An epoch's per-batch values held compactly: the same numbers as the plain lists they replace, and a
number of live tensors that does not grow with the batches."""

import gc
import random

import torch

import torch_keras_metrics as tkm
from torch_keras_metrics.batch_values import CHUNK
from torch_keras_metrics.callbacks import BaseLogger
from torch_keras_metrics.compile_utils import LossTracker
from torch_keras_metrics.history import History
from torch_keras_metrics.logs import Logs, raw_values

# ----------------------------------------------------------------- the straightforward reference


def ref_floats(values):
    if all(isinstance(v, torch.Tensor) for v in values):
        if any(v.dtype != values[0].dtype for v in values):
            values = [v.float() for v in values]
        return torch.stack(values).reshape(len(values)).tolist()
    return [float(v) for v in values]


def ref_epoch(batches):
    """(per-key floats with sizes, Keras 2 means) of a list of (values dict, size), as plain lists do it."""
    keys = sorted({k for values, _ in batches for k in values})
    record = {k: ref_floats([v[k] for v, _ in batches if k in v]) for k in keys}
    record["size"] = [n for _, n in batches]
    seen = sum(n for _, n in batches)
    means = {}
    for k in keys:
        pairs = [(v[k], n) for v, n in batches if k in v]
        floats = ref_floats([p[0] for p in pairs])
        means[k] = sum(f * n for f, (_, n) in zip(floats, pairs)) / seen if seen else 0.0
    return record, means


def ref_loss_sums(losses, sizes, reads):
    """LossTracker's sums, folding the batches added since the last read at each read."""
    total, seen, folded = torch.zeros((), dtype=torch.float64), 0, 0
    for end in [*reads, len(losses)]:
        fresh, fresh_sizes = losses[folded:end], sizes[folded:end]
        if fresh:
            w = torch.tensor(fresh_sizes, dtype=torch.float64)
            total = total + (torch.stack(fresh).double() * w).sum()
            seen += sum(fresh_sizes)
            folded = end
    return torch.stack([total, total.new_tensor(float(seen))])


def epoch_of(n, seed):
    """Batch logs of a realistic epoch, and some that are not: keys that come and go, plain floats a
    callback puts in, a float64 metric, a last batch that is shorter."""
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        loss, acc = torch.rand(2, generator=g).unbind()
        values = {"loss": loss.clone() * 3, "accuracy": acc.clone(), "auc64": torch.rand((), dtype=torch.float64)}
        if 700 <= i < 1300 or i in (5, 1400):  # a key logged by some batches only
            values["sometimes"] = torch.rand((), generator=g)
        if i % 3 == 0:  # what a callback writes into the logs: a Python float
            values["lr"] = rng.random() / 7
        out.append((values, 32 if i < n - 1 else 17))
    return out


def test_history_base_logger_and_loss_tracker_give_the_plain_lists_numbers_bit_for_bit():
    n, reads = 3 * CHUNK + 77, [100, 777, 1200]
    batches = epoch_of(n, seed=1)
    history, base, tracker = History(), BaseLogger(), LossTracker()
    history.on_train_begin()
    for epoch in range(2):  # a second epoch starts clean
        history.on_epoch_begin(epoch)
        base.on_epoch_begin(epoch)
        tracker.reset()
        running = []
        for i, (values, size) in enumerate(batches):
            tracker.add(values["loss"], size)
            logs = Logs(dict(values), size)
            base.on_train_batch_end(i, logs)
            history.on_train_batch_end(i, logs)
            if i + 1 in reads:  # a progress bar's read mid-epoch
                running.append(tracker.sums())
        sums = tracker.sums()
        base.on_epoch_end(epoch, {})
        history.on_epoch_end(epoch, {"loss": float(sums[0] / sums[1])})
    record, means = ref_epoch(batches)
    assert history.batches == [record, record]
    assert history.keras2_history == {k: [v, v] for k, v in means.items()}
    assert base.averages == means and base.history == {k: [v, v] for k, v in means.items()}
    losses, sizes = [v["loss"] for v, _ in batches], [n for _, n in batches]
    assert torch.equal(sums, ref_loss_sums(losses, sizes, reads))
    assert [torch.equal(r, ref_loss_sums(losses[:end], sizes[:end], reads[:j])) for j, (r, end) in
            enumerate(zip(running, reads))] == [True] * len(reads)  # fmt: skip
    assert len(tracker) == n and record["sometimes"] and isinstance(record["lr"][0], float)


def test_plain_dict_logs_and_mixed_dtypes_give_the_plain_lists_numbers():
    """Logs that are plain dicts (a user's loop), a key whose dtype changes mid-epoch, a key mixing tensors
    and floats: the straightforward reduction's numbers, quirks included (mixed tensors go through float32)."""
    batches = epoch_of(CHUNK + 40, seed=2)
    for i, (values, _) in enumerate(batches):
        values["mixed"] = torch.tensor(i / 7, dtype=torch.float64 if i > CHUNK // 2 else torch.float32)
        values["some_floats"] = torch.tensor(i / 3) if i % 2 else i / 3
    history, base = History(), BaseLogger()
    history.on_epoch_begin(0)
    base.on_epoch_begin(0)
    for i, (values, size) in enumerate(batches):
        logs = {**values, "size": size}
        base.on_train_batch_end(i, logs)
        history.on_train_batch_end(i, logs)
    base.on_epoch_end(0, {})
    history.on_epoch_end(0, {})
    record, means = ref_epoch([(raw_values({**v, "size": n}), n) for v, n in batches])
    assert (
        history.batches == [record]
        and base.averages == means
        and history.keras2_history == {k: [v] for k, v in means.items()}
    )
    assert record["mixed"][-1] == float(torch.tensor(len(batches) - 1) / 7)  # rounded to float32, as before


def live_tensors():
    gc.collect()
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())


def test_live_tensors_held_do_not_grow_with_the_batches():
    history, base, tracker = History(), BaseLogger(), LossTracker()
    history.on_epoch_begin(0)
    base.on_epoch_begin(0)
    g = torch.Generator().manual_seed(0)
    counts = []
    for n in (2_000, 20_000):
        before = live_tensors()
        for i in range(n):
            loss, acc, top = torch.rand(3, generator=g).unbind()
            values = {"loss": loss.clone(), "accuracy": acc.clone(), "top_k": top.clone()}
            tracker.add(values["loss"], 32)
            logs = Logs(values, 32)
            base.on_train_batch_end(i, logs)
            history.on_train_batch_end(i, logs)
        del loss, acc, top, values, logs
        counts.append(live_tensors() - before)
    # the latest chunk's values per key and consumer plus one stacked tensor per chunk and key
    assert max(counts) < 8 * CHUNK, counts
    history.on_epoch_end(0, {})
    base.on_epoch_end(0, {})
    assert len(history.batches[0]["loss"]) == len(tracker) == 22_000


def test_history_without_batches_replaces_the_default_and_keeps_the_same_epoch_values():
    def run(callbacks):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        trainer = tkm.Trainer(
            model, torch.optim.SGD(model.parameters(), lr=0.1), "sparse_categorical_crossentropy",
            metrics=["accuracy"], device="cpu",
        )  # fmt: skip
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(100, 4, generator=g), torch.randint(0, 3, (100,), generator=g)
        return trainer.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)

    lean = History(batches=False)
    full = run([])
    assert run([lean]) is lean
    assert lean.batches == [] and len(full.batches) == 2
    assert lean.history == full.history and lean.keras2_history == full.keras2_history
    assert lean.state_dict()["batches"] == [] and lean.get_config() == {"batches": False}
