"""`Trainer`: Keras' `fit`/`evaluate`/`predict` for a torch module, with Keras' exact numbers.

Per batch, the callbacks get that batch's own loss and metric values (Keras 2's convention) in a
lazy `Logs` mapping; per epoch, the logs hold what Keras 3 logs: the loss averaged over batches
weighted by their sizes, and the stateful metric results. Keys are named and ordered as Keras 3
names and orders them (`loss`, `accuracy`, `weighted_accuracy`, `val_loss`, ...; sorted).

Under `torch.distributed` (e.g. `torchrun`), the same code trains data-parallel: DDP for the gradients,
`batch_size` as the global batch, and one all-reduce per epoch for the logs (`torch_keras_metrics.distributed`).

>>> import torch
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(-1))
>>> trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
...                   "sparse_categorical_crossentropy", metrics=["accuracy"], device="cpu")
>>> history = trainer.fit(torch.randn(40, 4), torch.randint(0, 3, (40,)), batch_size=16, epochs=2, verbose=0)
>>> sorted(history.history), history.batches[0]["size"]
(['accuracy', 'loss'], [16, 16, 8])
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import signal
import sys
import threading
from collections.abc import Container, Sequence
from typing import Any

import torch

from . import checkpoint as _checkpoint
from . import optimizers
from .callback_list import CallbackList, check_callbacks
from .callbacks import Callback
from .compile_utils import CompileMetrics
from .data import Batch, EpochIterator, fit_data, make_data
from .distributed import DistContext, agree, broadcast_buffers, broadcast_generator, place, setup
from .history import History
from .jit import Steps, resolve
from .logs import Logs
from .losses import CompileLoss, KerasLoss
from .metrics import Mean
from .progbar import write
from .sharding import shard_for_evaluate, shard_for_fit
from .structure import call_model, concatenate, detach

__all__ = ["Trainer", "KerasLoss"]

_PRECISIONS = {None: None, "32": None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _resolve_verbose(verbose: Any) -> int:
    if verbose == "auto":
        tty = getattr(sys.stdout, "isatty", lambda: False)()
        return 1 if tty or "ipykernel" in sys.modules else 2
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1, 2 or 'auto', got {verbose!r}.")
    return int(verbose)


def _check_batch_size(batch_size: Any, name: str = "batch_size") -> Any:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"`{name}` must be None or an integer >= 1, got {batch_size!r}.")
    return batch_size


def _default_batch_size(batch_size: int | None, steps: int | None, data: Any) -> int:
    """Keras' default batch size: 32, or `ceil(samples / steps)` for in-memory data when `steps` is given."""
    if batch_size is not None:
        return batch_size
    n = getattr(data, "n", None)
    return math.ceil(n / steps) if steps and n else 32


def _check_steps(steps: Any, name: str) -> None:
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"`{name}` must be None or an integer >= 1, got {steps!r}.")


def _check_class_weight(class_weight: Any, y: Any, sample_weight: Any) -> None:
    """Keras 3's rules: a dict of class -> weight, for a single output, never with `sample_weight`."""
    if class_weight is None:
        return
    if not isinstance(class_weight, dict) or not all(
        isinstance(k, int) and not isinstance(k, bool) and isinstance(v, (int, float)) for k, v in class_weight.items()
    ):
        raise ValueError(f"`class_weight` must be a dict of integer class -> weight, got {class_weight!r}.")
    if sample_weight is not None:
        raise ValueError("You cannot use `class_weight` and `sample_weight` at the same time (as in Keras).")
    if isinstance(y, (dict, tuple)) or (isinstance(y, list) and y and not isinstance(y[0], (int, float))):
        raise ValueError("`class_weight` is only supported for models with a single output (as in Keras).")


def _check_fit_arguments(
    validation_split: Any, steps_per_epoch: Any, epochs: Any, initial_epoch: Any, validation_freq: Any
) -> float:
    if validation_split is None:  # Keras takes None for no split
        validation_split = 0.0
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)):
        raise TypeError(
            f"`validation_split` must be a number in [0, 1) or None, got {validation_split!r} of type "
            f"{type(validation_split).__name__}."
        )
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"`validation_split` must be in [0, 1), got {validation_split!r}.")
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise ValueError(f"`steps_per_epoch` must be None or an integer >= 1, got {steps_per_epoch!r}.")
    if not isinstance(epochs, int) or epochs < 0 or not isinstance(initial_epoch, int) or initial_epoch < 0:
        raise ValueError(f"`epochs` and `initial_epoch` must be integers >= 0, got {epochs!r}, {initial_epoch!r}.")
    if isinstance(validation_freq, bool) or not (
        (isinstance(validation_freq, int) and validation_freq >= 1)
        or (isinstance(validation_freq, Container) and not isinstance(validation_freq, (str, bytes)))
    ):
        raise ValueError(
            f"`validation_freq` must be an integer >= 1 or a collection of epochs (1-based), got {validation_freq!r}."
        )
    return float(validation_split)


def _check_resume_from(resume_from: Any) -> None:
    if resume_from is not None and not isinstance(resume_from, (str, os.PathLike)):
        raise TypeError(
            f"`resume_from` must be None or a path (str or os.PathLike) to a checkpoint file or folder, got "
            f"{resume_from!r} of type {type(resume_from).__name__}."
        )


def _check_not_empty(data: Any, batch_size: int, name: str) -> None:
    """Keras refuses data without a sample; data of unknown length is taken as it comes."""
    if data is not None and data.steps(batch_size) == 0:
        raise ValueError(f"`{name}` holds no samples: there is nothing to run on (as in Keras).")


def _timeout_s(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"`timeout` must be None, a number of seconds > 0 or a datetime.timedelta, got {timeout!r}.")
    return float(timeout)


def _call_checked(net: torch.nn.Module, x: Any, name: str) -> Any:
    """The model's output for a first batch; its own shape errors become a ValueError naming `name` and `x`."""
    try:
        return call_model(net, x)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"{name} ({_describe(x)}) does not fit the model: {err}") from err


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a batch of shape {tuple(x.shape)}, {x.dtype}"
    return f"a batch of {type(x).__name__}"


def _in_context(err: Exception, prefix: str) -> Exception:
    """The same kind of error with `prefix` before its message (the error itself if its type cannot be made so)."""
    try:
        return type(err)(f"{prefix}{err}")
    except Exception:
        return err


def _should_eval(epoch: int, validation_freq: int | Container) -> bool:
    if isinstance(validation_freq, int):
        return (epoch + 1) % validation_freq == 0
    return epoch + 1 in validation_freq


class _Interrupt:
    """While active, the first Ctrl-C asks the Trainer to stop after the current batch; a second one raises
    `KeyboardInterrupt` (which `fit` catches: it returns the History). `io.atomic_save` holds either until the
    file it writes is in place."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.hit = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True
        self.trainer.stop_training = True
        sys.stderr.write("\nInterrupted: stopping after the current batch (Ctrl-C again to abort now).\n")

    def __enter__(self) -> _Interrupt:
        # Only in the main thread, and not where SIGINT is ignored (a background job, nohup): leave it so.
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        self.trainer._interrupt = self
        return self

    def __exit__(self, *exc: Any) -> None:
        self.trainer._interrupt = None
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Keras' training loop around a torch module (see the module docstring).

    Args:
        model: a `torch.nn.Module`. `x` a tensor calls `model(x)`, a tuple or list `model(*x)`, a dict
            `model(**x)`; it may return a tensor, a tuple or list, or a mapping (a dict, transformers'
            `ModelOutput`): several outputs, named by the mapping's keys (see `torch_keras_metrics.structure`).
        optimizer: a `torch.optim.Optimizer` over the model's parameters, or a Keras name (`"adam"`, `"sgd"`,
            ...) or config: Keras' optimizer with Keras' defaults and update rules (`torch_keras_metrics.optimizers`).
        loss: a Keras name (`"sparse_categorical_crossentropy"`, `"categorical_crossentropy"`,
            `"binary_crossentropy"`, `"mse"`, `"mae"`), a `KerasLoss` (for `from_logits=True`), a torch loss
            module, or a callable `(y_pred, y_true) -> loss`; for several outputs one of those for every
            output, a dict keyed by output name or a list in output order. Reduced as Keras reduces: mean
            over the batch, sample weights applied per sample (`sum(loss_i * w_i) / batch_size`).
        metrics: anything `torch_keras_metrics.get` accepts; they ignore sample weights. For several outputs,
            a dict keyed by output name or a list with one entry (a list of metrics) per output.
        weighted_metrics: the same, weighted by the sample weights (logged `weighted_<name>` on collisions).
        device: defaults to CUDA when available (`cuda:LOCAL_RANK` when distributed).
        precision: None (float32), `"bf16"` or `"fp16"` (autocast; fp16 adds a gradient scaler).
        distributed: None (the default) runs data-parallel when a `torch.distributed` process group is
            initialised; `"auto"` also initialises one from `torchrun`'s environment when it is set; `True`
            insists on one; `False` never distributes. Distributed, the model trains wrapped in
            `DistributedDataParallel` (`trainer.model` stays the unwrapped module), `batch_size` is the
            global batch, and every rank gets the same epoch logs (see `torch_keras_metrics.distributed`).
            To choose DDP's options, pass your own `DistributedDataParallel` as `model`.
        loss_weights: Keras' weights of the outputs' losses in the total: a number, a dict or a list.
        target_keys: for data whose batches are dicts holding their own targets (as transformers'
            collators make): the key (or keys) of the targets; the other keys are the model's inputs.
        timeout: seconds (or a `timedelta`) a collective waits for the other ranks, for the process group the
            Trainer initialises (`distributed="auto"`/`True` under `torchrun`); torch's default (30 minutes for
            gloo) without it. A group you initialise keeps its own: `init_process_group(timeout=...)`. A rank
            that stalls then ends the run on every other rank with an error naming it.
        jit_compile: Keras' name: `True` runs the train, test and predict steps under `torch.compile` (the
            forward, the loss and the metric updates in one graph, whose backward AOT autograd compiles; the
            optimizer step eager), once per input shape; a dict passes
            `torch.compile` options (`{"mode": "reduce-overhead"}`: CUDA graphs); `"auto"` compiles on CUDA
            only; `False` (the default) runs eager. The first batch of each call stays eager (it is checked).
            A step that cannot be compiled warns once and runs eager (see `torch_keras_metrics.jit`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | str | dict,
        loss: Any,
        metrics: Sequence[Any] | None = None,
        weighted_metrics: Sequence[Any] | None = None,
        device: str | torch.device | None = None,
        precision: str | None = None,
        distributed: bool | str | None = None,
        loss_weights: Any = None,
        target_keys: str | Sequence[str] | None = None,
        timeout: float | datetime.timedelta | None = None,
        jit_compile: bool | str | dict = False,
    ) -> None:
        if precision not in _PRECISIONS:
            raise ValueError(f"`precision` must be None, 'bf16' or 'fp16', got {precision!r}.")
        self.dist: DistContext | None = setup(distributed, device, _timeout_s(timeout))
        # `model` is the module itself; `_net` what the training step calls (DDP when distributed)
        self.device, self.model, self._net = place(model, self.dist, device)
        self.optimizer = optimizers.get_for(optimizer, self.model)
        self.loss, self.loss_weights = loss, loss_weights
        self.target_keys = [target_keys] if isinstance(target_keys, str) else list(target_keys or []) or None
        self.compiled_loss = CompileLoss(loss, loss_weights)
        self.compiled_metrics = CompileMetrics(metrics, weighted_metrics, self.compiled_loss)
        self.precision = precision
        amp_dtype = _PRECISIONS[precision]
        self._amp = contextlib.nullcontext() if amp_dtype is None else torch.autocast(self.device.type, amp_dtype)
        self.grad_scaler = torch.amp.GradScaler(self.device.type) if amp_dtype == torch.float16 else None
        self._check_next = True  # the next batch is checked against the loss (the first of each call)
        self.stop_training = False
        self.history: History | None = None
        self.run_state = _checkpoint.RunState()  # what a checkpoint keeps of the run; the last callback of a fit
        self._interrupt: _Interrupt | None = None
        self._trained = 0  # optimizer steps in the running fit (a refusal before the first changes nothing)
        self._pending_targets: Any = None  # in-memory data whose targets the next batch checks
        options = resolve(jit_compile, self.device)
        self.jit_compile = options is not None  # resolved, as Keras resolves "auto"
        # Keras' optimizers count `iterations` in a Python int: compiled, each step would compile again
        step = self.optimizer.step
        self._optimizer_step = (
            torch.compiler.disable(step) if isinstance(self.optimizer, optimizers.Optimizer) else step
        )
        self._steps = Steps(self._train_core, self._test_core, self._predict_core, options, self._undo)
        # The shuffle order follows `torch.manual_seed` (a bare Generator would start from one fixed seed).
        self.generator = torch.Generator()
        self.generator.manual_seed(torch.initial_seed())

    # ------------------------------------------------------------------ public API
    @property
    def rank(self) -> int:
        """This process' rank (0 when not distributed)."""
        return self.dist.rank if self.dist else 0

    @property
    def world_size(self) -> int:
        """The number of data-parallel processes (1 when not distributed)."""
        return self.dist.world if self.dist else 1

    @property
    def built(self) -> bool:
        """Whether the metrics are built (on the first batch a `fit` or `evaluate` sees), as Keras' `built`."""
        return self.compiled_metrics.built

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C asked the running `fit` to stop after the current batch."""
        return self._interrupt is not None and self._interrupt.hit

    @property
    def metrics(self) -> list[Mean]:
        """The metric modules, plain then weighted (built on the first batch)."""
        return self.compiled_metrics.metrics

    @property
    def metrics_names(self) -> list[str]:
        """The keys of the training logs: `loss`, then each metric's log name (after the first batch)."""
        return ["loss", *self.compiled_metrics.names]

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int | str = "auto",
        callbacks: Sequence[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_freq: int | Container = 1,
        resume_from: str | os.PathLike | None = None,
        class_weight: dict[int, float] | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
    ) -> History:
        """Train for `epochs` epochs; returns the `History`. Arguments as `keras.Model.fit`.

        `validation_split` holds out the last fraction of the arrays before any shuffling. With
        `steps_per_epoch`, each epoch draws that many batches, continuing where the last one stopped, and
        ends early when the data runs out (the next epoch starts it again), as Keras 3 does; each validation
        takes the first `validation_steps` batches of `validation_batch_size` (default `batch_size`).
        `class_weight` ({class: weight}) weighs each training sample by its class, as Keras does (single
        output only, never with `sample_weight`; validation is not class-weighted).
        Ctrl-C stops after the current batch and returns the History so far (each `ModelCheckpoint`
        then saves the trainer as `interrupted.pt` in its folder). A second Ctrl-C aborts at once, except
        that a checkpoint being written is finished first; `fit` then still runs `on_train_end`, sets
        `trainer.history` and returns the History (it does not raise `KeyboardInterrupt`).

        `resume_from` (a checkpoint file, or a folder: its newest checkpoint that loads) restores the
        trainer and continues from the checkpoint's epoch, overriding `initial_epoch`; a missing path or
        a folder without checkpoints trains from scratch. See `torch_keras_metrics.checkpoint`.

        Distributed, `batch_size` is the global batch: each rank trains on its share of every global
        batch (the ranks draw the same shuffle), validation counts every sample once, and
        `stop_training` takes effect at the end of the epoch on every rank, when any rank set it.
        """
        batch_size = _check_batch_size(batch_size)
        val_batch_size = _check_batch_size(validation_batch_size, "validation_batch_size") or batch_size
        verbose = self._verbose(verbose)
        validation_split = _check_fit_arguments(
            validation_split, steps_per_epoch, epochs, initial_epoch, validation_freq
        )
        _check_steps(validation_steps, "validation_steps")
        _check_class_weight(class_weight, y, sample_weight)
        _check_resume_from(resume_from)
        check_callbacks(callbacks)
        pin = self.device.type == "cuda"
        train, val = fit_data(x, y, sample_weight, validation_split, validation_data, pin, self.target_keys)
        batch_size = _default_batch_size(batch_size, steps_per_epoch, train)
        val_batch_size = _default_batch_size(val_batch_size, validation_steps, val)
        _check_not_empty(train, batch_size, "x")
        with self._collective():  # a refusal on one rank is told to the others
            self._check_validation_data(val, val_batch_size)
        if resume_from is not None:  # after every check of the arguments and data: a refused call changes nothing
            initial_epoch = self._resume(resume_from, initial_epoch, verbose)
        if self.dist is not None:
            broadcast_generator(self.generator, self.dist.device)  # one shuffle for all ranks
        train, val, val_batch_size = shard_for_fit(
            train, val, batch_size, val_batch_size, shuffle, self.generator, self.dist
        )
        dtype = self._input_dtype()
        train = EpochIterator(
            train, batch_size, shuffle, steps_per_epoch, self.generator, self.device, class_weight=class_weight,
            input_dtype=dtype,
        )  # fmt: skip
        if val is not None:
            val = EpochIterator(
                val, val_batch_size, steps_per_epoch=validation_steps, device=self.device, continues=False,
                input_dtype=dtype,
            )  # fmt: skip
        cblist = CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, add_base_logger=True, trainer=self,
            epochs=epochs, steps=train.steps, verbose=verbose,
        )  # fmt: skip
        cblist.append(self.run_state)  # last: it saves after every other callback's on_epoch_end
        history, self.base_logger = cblist.history, cblist.base_logger
        self.run_state.start(cblist.callbacks, history, initial_epoch)
        self.stop_training = False
        self._check_next = True  # this call's first batch is checked against the loss again
        self._pending_targets = train.data  # and every in-memory target against its output
        training_logs: dict[str, float] = {}
        with self._collective(), self._unchanged_if_refused(), _Interrupt(self) as interrupt:
            cblist.on_train_begin()
            try:
                for epoch in range(initial_epoch, epochs):
                    train.set_epoch(epoch)
                    epoch_logs = self._train_epoch(epoch, train, cblist)
                    skip = interrupt.hit and self.dist is None  # ranks must agree on validating: ignore Ctrl-C then
                    if val is not None and not skip and _should_eval(epoch, validation_freq):
                        epoch_logs.update({f"val_{k}": v for k, v in self._evaluate(val, cblist).items()})
                    epoch_logs = dict(sorted(epoch_logs.items()))
                    cblist.on_epoch_end(epoch, epoch_logs)
                    training_logs = epoch_logs
                    if self.dist is not None:
                        self.stop_training = agree(self.stop_training, self.dist.device)
                    if self.stop_training:
                        break
            except KeyboardInterrupt:
                sys.stderr.write("\nInterrupted: training stopped; returning the History so far.\n")
            if callable(getattr(self.optimizer, "finalize_variable_values", None)):
                self.optimizer.finalize_variable_values()  # Keras' use_ema: the averaged weights, as Keras' fit ends
            cblist.on_train_end(training_logs)
        self.history = history
        return history

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        sample_weight: Any = None,
        return_dict: bool = False,
        callbacks: Sequence[Callback] | None = None,
        steps: int | None = None,
    ) -> Any:
        """Loss and metrics on the data, under `torch.inference_mode`; a list as Keras orders it, or a dict.

        Distributed, each rank evaluates a contiguous share (every sample counted once, nothing padded)
        in batches of `ceil(batch_size / world_size)`, and every rank returns the same numbers. `steps`
        evaluates the first batches only.
        """
        batches, cblist = self._one_pass(x, y, sample_weight, batch_size, steps, verbose, callbacks, shard=True)
        with self._collective(), self._unchanged_if_refused():
            self._pending_targets = batches.data
            logs = self._evaluate(batches, cblist)
        if return_dict:
            return logs
        order = [n for n in ["loss", *(m.name for m in self.metrics)] if n in logs]  # Keras' list order
        results = [logs[n] for n in order] + [logs[k] for k in sorted(logs) if k not in order]
        return results[0] if len(results) == 1 else results

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        callbacks: Sequence[Callback] | None = None,
        steps: int | None = None,
    ) -> Any:
        """The model's outputs for every sample (the first `steps` batches' only, if given), concatenated as
        CPU tensors in the model's output structure (a tensor, a tuple or list, or a dict), under
        `torch.inference_mode`. Distributed, every rank predicts every sample (no sharding, no communication).
        """
        batches, cblist = self._one_pass(x, None, None, batch_size, steps, verbose, callbacks, shard=False)
        was_training = self.model.training
        self.model.eval()
        outputs = []
        cblist.on_predict_begin()
        try:
            with torch.inference_mode():
                for step, batch in enumerate(batches.epoch()):
                    cblist.on_predict_batch_begin(step)
                    out = self.predict_step(batch)
                    outputs.append(out)
                    cblist.on_predict_batch_end(step, {"outputs": out})
        finally:
            self.model.train(was_training)
        cblist.on_predict_end()
        return concatenate(outputs) if outputs else torch.empty(0)

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Save everything needed to continue this run to `path`, atomically (see `torch_keras_metrics.checkpoint`).

        Call it between `fit`s (inside one, `ModelCheckpoint(save_weights_only=False)` saves at the right
        moment); distributed, only rank 0 writes.

        >>> trainer.save_checkpoint("run/last.pt")  # doctest: +SKIP
        """
        _checkpoint.save_checkpoint(self, path)

    def load_checkpoint(self, path: str | os.PathLike) -> int:
        """Restore this trainer from `path`; returns the `initial_epoch` to pass to `fit`.

        Raises `CheckpointError` naming the file, with the trainer untouched, if the file does not fit.

        >>> trainer.fit(x, y, epochs=10, initial_epoch=trainer.load_checkpoint("run/last.pt"))  # doctest: +SKIP
        """
        initial_epoch = _checkpoint.load_checkpoint(self, path)
        self.history = self.run_state.history or self.history
        return initial_epoch

    # ------------------------------------------------------------------ the steps (Keras' names; override them)
    def train_step(self, batch: Batch) -> Logs:
        """One optimizer step on `batch`: forward, loss, this batch's metric values, backward, step.

        Returns the batch logs (`loss` and each metric's value for this batch, read lazily). With
        `jit_compile`, all of it but the first batch of a `fit` (checked eagerly) runs compiled.
        """
        if self._check_next:
            loss, values = self._checked_first_batch(self._net, batch)
            self._apply_gradients(loss, batch.loss_scale)
        else:
            loss, parts, metric_values, size = self._steps.train(batch.x, batch.y, batch.sample_weight)
            self._apply_gradients(loss, batch.loss_scale)
            values = self.compiled_metrics.track(loss, parts, size, metric_values)
        return Logs(values, self.compiled_metrics.loss_tracker.last_size, self.compiled_metrics.running)

    def test_step(self, batch: Batch) -> Logs:
        """One batch of evaluation (the model in eval mode, under the caller's inference mode); its batch logs."""
        if self._check_next:
            _, values = self._checked_first_batch(self.model, batch)
        else:
            loss, parts, metric_values, size = self._steps.test(batch.x, batch.y, batch.sample_weight)
            values = self.compiled_metrics.track(loss, parts, size, metric_values)
        return Logs(values, self.compiled_metrics.loss_tracker.last_size, self.compiled_metrics.running)

    def predict_step(self, batch: Batch) -> Any:
        """The model's output for one batch."""
        return self._steps.predict(batch.x)

    # what the steps run, compiled with `jit_compile` (tensor work only; the bookkeeping stays outside)
    def _train_core(self, x: Any, y: Any, w: Any) -> tuple[Any, Any, dict, int]:
        # Backward and the optimizer step run outside: compiled, the graph would break at `backward()` and the
        # resumed frames' guards cost more per step than they save; the backward is AOT autograd's compiled one.
        with self._amp:
            y_pred = self._net(x) if type(x) is torch.Tensor else call_model(self._net, x)
            loss, parts = self.compiled_loss(y_pred, y, w)
        metric_values = self.compiled_metrics.metric_values(
            y, y_pred.detach() if type(y_pred) is torch.Tensor else detach(y_pred), w
        )
        return loss, parts, metric_values, self.compiled_metrics.batch_size(y_pred)

    def _test_core(self, x: Any, y: Any, w: Any) -> tuple[Any, Any, dict, int]:
        with self._amp:
            y_pred = self.model(x) if type(x) is torch.Tensor else call_model(self.model, x)
            loss, parts = self.compiled_loss(y_pred, y, w)
        return loss, parts, self.compiled_metrics.metric_values(y, y_pred, w), self.compiled_metrics.batch_size(y_pred)

    def _predict_core(self, x: Any) -> Any:
        with self._amp:
            return call_model(self.model, x)

    def _apply_gradients(self, loss: torch.Tensor, loss_scale: float) -> None:
        if loss_scale != 1.0:  # a rank's uneven share of a global batch (see sharding.shard_plan)
            loss = loss * loss_scale
        if getattr(self.optimizer, "loss_scale_factor", None) is not None:  # Keras' optimizers unscale it
            loss = self.optimizer.scale_loss(loss)
        self.optimizer.zero_grad(set_to_none=True)
        if self.grad_scaler is None:
            loss.backward()
            self._optimizer_step()
        else:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()

    def _checked_first_batch(self, net: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        """The first batch of each `fit` or `evaluate`, eager: forward, loss and metric update, `(loss, values)`,
        checked (shapes against the loss, every in-memory label, the metrics built) before any state changes."""
        x, y, w = batch.x, batch.y, batch.sample_weight
        with self._amp:
            y_pred = _call_checked(net, x, "`x`")
            loss, parts = self.compiled_loss.checked(y_pred, y, w)
        if self._pending_targets is not None:
            data = self._pending_targets
            self._pending_targets = None
            self._check_targets(y_pred, y, data, "`y`")
        values = self.compiled_metrics.first_update(loss, parts, y, detach(y_pred), w, self.device)
        self._check_next = False
        return loss, values

    # ------------------------------------------------------------------ loops
    def _train_epoch(self, epoch: int, batches: EpochIterator, cblist: CallbackList) -> dict[str, float]:
        self.compiled_metrics.reset()
        self.model.train()
        cblist.on_epoch_begin(epoch)
        step_fn = self.train_step
        can_stop = self.dist is None  # distributed, every rank must run the same steps: stop at epoch end
        begin_calls, end_calls = cblist.batch_hooks("on_train_batch_begin"), cblist.batch_hooks("on_train_batch_end")
        for step, batch in enumerate(batches.epoch()):
            for f in begin_calls:
                f(step, None)
            logs = step_fn(batch)
            self._trained += 1
            for f in end_calls:
                f(step, logs)
            if self.stop_training and can_stop:
                break
        return self.compiled_metrics.epoch_logs(self.dist, self.device)

    def _evaluate(self, batches: EpochIterator, cblist: CallbackList) -> dict[str, float]:
        self.compiled_metrics.reset()
        self._check_next = True  # validation data gets its own first-batch check
        if self.dist is not None:
            broadcast_buffers(self.model)
        was_training = self.model.training
        self.model.eval()
        cblist.on_test_begin()
        begin_calls, end_calls = cblist.batch_hooks("on_test_batch_begin"), cblist.batch_hooks("on_test_batch_end")
        try:
            with torch.inference_mode():
                for step, batch in enumerate(batches.epoch()):
                    for f in begin_calls:
                        f(step, None)
                    logs = self.test_step(batch)
                    for f in end_calls:
                        f(step, logs)
        finally:
            self.model.train(was_training)
        logs = self.compiled_metrics.epoch_logs(self.dist, self.device)
        cblist.on_test_end(logs)
        return logs

    # ------------------------------------------------------------------ set-up of a call
    def _one_pass(
        self, x: Any, y: Any, w: Any, batch_size: Any, steps: Any, verbose: Any, callbacks: Any, shard: bool
    ) -> tuple[EpochIterator, CallbackList]:
        """The batches and callbacks of an `evaluate` (`shard`: this rank's share) or a `predict`."""
        batch_size = _check_batch_size(batch_size)
        verbose = self._verbose(verbose)
        _check_steps(steps, "steps")
        check_callbacks(callbacks)
        data = make_data(x, y, w, self.device.type == "cuda", self.target_keys)
        batch_size = _default_batch_size(batch_size, steps, data)
        if shard:  # evaluate (Keras refuses no data; predict returns an empty result)
            _check_not_empty(data, batch_size, "x")
        if shard:
            data, batch_size = shard_for_evaluate(data, batch_size, self.dist, built=self.built)
        batches = EpochIterator(
            data,
            batch_size,
            steps_per_epoch=steps,
            device=self.device,
            continues=False,
            input_dtype=self._input_dtype(),
        )
        cblist = CallbackList(
            callbacks, add_progbar=verbose != 0, trainer=self, steps=batches.steps, verbose=verbose, epochs=1
        )
        return batches, cblist

    def _check_validation_data(self, val: Any, batch_size: int) -> None:
        """Before training starts: the first validation batch through the model (eval mode, no gradients), the
        loss and the metrics, and every in-memory validation target against that output, so that bad validation
        data is refused before an epoch is spent. Nothing is kept (the metrics' states, an unbuilt set)."""
        if val is None:
            return
        batches = EpochIterator(val, batch_size, device=self.device, continues=False, input_dtype=self._input_dtype())
        first = next(iter(batches.epoch()), None)
        if first is None:
            return
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._amp:
                y_pred = _call_checked(self.model, first.x, "`validation_data`")
                try:
                    loss, parts = self.compiled_loss.checked(y_pred, first.y, first.sample_weight)
                    self.compiled_metrics.check(loss, parts, first.y, y_pred, first.sample_weight, self.device)
                except (ValueError, TypeError) as err:
                    raise _in_context(err, "`validation_data`, its first batch: ") from err
                self._check_targets(y_pred, first.y, val, "`validation_data`")
        finally:
            self.model.train(was_training)

    def _check_targets(self, y_pred: Any, y_first: Any, data: Any, name: str) -> None:
        """Every in-memory label against a first batch's output (`y_pred`, for the targets `y_first`), before it
        is used: an out-of-range label in a later batch is refused before the first optimizer step.

        Only integer targets can be wrong by value (class indices); float targets are checked by shape, which
        the first batch did. Each distinct label is put into a copy of the first batch's targets and goes
        through the loss with its output: one sort of the labels and a loss call per batch-full of them.
        """
        arrays = getattr(data, "arrays", None)
        if arrays is None or not isinstance(y_pred, torch.Tensor) or not isinstance(y_first, torch.Tensor):
            return
        y = arrays[1]
        if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool or not y_first.numel():
            return
        with torch.no_grad():
            labels = torch.unique(y).to(self.device)  # one host sync per call, never per batch
            template = y_first.detach().reshape(-1)
            y_pred = y_pred.detach()
            for lo in range(0, labels.numel(), template.numel()):
                piece = labels[lo : lo + template.numel()]
                targets = template.clone()
                targets[: piece.numel()] = piece.to(targets.dtype)
                try:
                    with self._amp:
                        self.compiled_loss.checked(y_pred, targets.reshape(y_first.shape), None)
                except ValueError as err:
                    bad = [v for v in piece.tolist() if not self._label_fits(y_pred, y_first, v)]
                    raise ValueError(
                        f"{name} holds the label(s) {bad[:10]}, which the loss cannot take: {err}"
                    ) from err

    def _label_fits(self, y_pred: torch.Tensor, y_first: torch.Tensor, label: int) -> bool:
        targets = y_first.detach().clone().reshape(-1)
        targets[0] = label
        try:
            with self._amp:
                self.compiled_loss.checked(y_pred, targets.reshape(y_first.shape), None)
        except ValueError:
            return False
        return True

    def _undo(self) -> Any:
        """What puts the metric states back as they are now (for a step that failed to compile)."""
        states = self.compiled_metrics.states()
        return lambda: self.compiled_metrics.load_states(states)

    @contextlib.contextmanager
    def _unchanged_if_refused(self) -> Any:
        """Around a `fit` or `evaluate`: an error before the first optimizer step puts back the metrics'
        states and the shuffle generator, so a refused call changes nothing."""
        states, generator = self.compiled_metrics.states(), self.generator.get_state()
        self._trained = 0
        try:
            yield
        except Exception:
            if self._trained == 0:
                if self.built and len(states) == len(self.metrics):
                    self.compiled_metrics.load_states(states)
                self.generator.set_state(generator)
            raise

    def _resume(self, resume_from: str | os.PathLike, initial_epoch: int, verbose: int) -> int:
        resumed = _checkpoint.resume(self, resume_from)
        if resumed is None:
            if verbose:
                write(f"Nothing to resume in {os.fspath(resume_from)!r}: training starts from epoch {initial_epoch}.\n")
            return initial_epoch
        self.history = self.run_state.history or self.history
        if verbose:
            path = (self.run_state.pending or {}).get("path", resume_from)
            write(f"Resuming from {path!r}: {resumed} epoch(s) done, continuing with epoch {resumed + 1}.\n")
        return resumed

    def _input_dtype(self) -> torch.dtype | None:
        """The dtype floating inputs are cast to: the model's first floating parameter's (None without one)."""
        for t in self.model.parameters():
            if t.is_floating_point():
                return t.dtype
        return None

    def _verbose(self, verbose: Any) -> int:
        """Keras' `verbose`, forced to 0 on every rank but 0 (one progress bar for the group)."""
        verbose = _resolve_verbose(verbose)
        return verbose if self.dist is None or self.dist.main else 0

    def _collective(self) -> contextlib.AbstractContextManager:
        """Around a run all ranks take part in: an error on one rank is told to the others."""
        return contextlib.nullcontext() if self.dist is None else self.dist.guard()
