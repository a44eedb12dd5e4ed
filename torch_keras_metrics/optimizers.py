"""Keras 3's optimizers as `torch.optim.Optimizer`s: a torch model trained with them follows Keras' weights.

Each class takes the parameters first (as torch's optimizers do), then Keras' arguments with Keras'
names and defaults, and updates the weights with the equations Keras 3 runs on its torch backend, in
the same order and in the same float32 arithmetic: the update of `keras/src/backend/torch/optimizers/`
where Keras has one (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion), Keras' generic
`update_step` otherwise (Ftrl, Adafactor, Lamb). Around the update, `step()` does what Keras'
`Optimizer.apply` does, in Keras' order: unscale by `loss_scale_factor`, accumulate gradients
(`gradient_accumulation_steps`), clip (`clipnorm` per tensor, `global_clipnorm` over all gradients,
`clipvalue`), decay the weights (`var *= 1 - weight_decay * lr`, before the update, in every
optimizer; AdamW is Adam with a default `weight_decay`), update, move the weights' moving average
(`use_ema`), and count the iteration.

Torch conventions kept: the learning rate is each param group's `"lr"`, read at every step (so
`param_groups[i]["lr"] = ...`, torch's schedulers and the LearningRateScheduler/ReduceLROnPlateau
callbacks change it, as `optimizer.learning_rate = ...` does in Keras); the hyperparameters live in the
param groups too (a group may override them, e.g. `weight_decay=None` for biases); per-parameter slots
are `self.state[p]`, and Keras' `iterations` is each group's `"iterations"`, so `state_dict()` /
`load_state_dict()` resume exactly. Keras keeps its learning rate as a float32 variable, and computes
its bias corrections as float32 0-d tensors on the device: so do these (filled from Python numbers,
never read back: a step waits for the device no more than torch's own optimizers do). On CPU the
weights are Keras' to the bit, given Keras' gradients; on a GPU, Nadam's momentum cache, which is kept
on the host, may differ from Keras' in the last bit.

`get(identifier, params)` builds one from a Keras name (`"adam"`, `"RMSprop"`, ...) or a Keras config
dict; `get_config()` / `from_config(config, params)` round-trip.

Not here: Keras' learning-rate schedule objects (schedule the group's `"lr"` instead), `Muon`,
`ScheduleFreeAdamW` (on Keras' torch backend its "old" momentum aliases the updated one, unlike its
other backends), `LossScaleOptimizer` (torch's `GradScaler`), `MultiOptimizer` (param groups), and
`exclude_from_weight_decay` (a param group with `weight_decay=None`).

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> opt = get("adam", model.parameters())
>>> opt
Adam(learning_rate=0.001)
>>> model(torch.ones(4, 2)).pow(2).mean().backward()
>>> opt.step(); opt.iterations
1
>>> sorted(opt.state[model.weight])
['momentum', 'velocity']
"""

from __future__ import annotations

import numbers
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Callable, ClassVar

import numpy as np
import torch

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Lion",
    "Ftrl",
    "Adafactor",
    "Lamb",
    "get",
    "get_for",
    "serialize",
    "deserialize",
    "valid_names",
]


def _to_snake_case(name: str) -> str:
    """Keras' `naming.to_snake_case`: the default optimizer name (`RMSprop` -> `rm_sprop`)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _np_dtype(dtype: torch.dtype) -> type:
    """The numpy scalar type Keras' `ops.cast(x, variable.dtype)` computes in, for host-side scalars."""
    return {torch.float64: np.float64, torch.float16: np.float16}.get(dtype, np.float32)


def _lr_value(group: Mapping[str, Any]) -> float:
    lr = group["lr"]
    if isinstance(lr, torch.Tensor):  # a tensor rate someone put there: read it (the only sync, theirs)
        lr = float(lr)
    return lr


def _zeros(p: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(p, memory_format=torch.preserve_format)


def _slot(state: dict[str, Any], key: str, p: torch.Tensor) -> torch.Tensor:
    """`state[key]`, created as zeros if missing (a hyperparameter switched on mid-training)."""
    value = state.get(key)
    if value is None:
        value = state[key] = _zeros(p)
    return value


def _full(value: Any, ref: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A 0-d tensor on `ref`'s device, as Keras' `convert_to_tensor(value)` makes one (a fill, no copy)."""
    return torch.full((), value, dtype=dtype or ref.dtype, device=ref.device)


class Optimizer(torch.optim.Optimizer):
    """What every Keras optimizer shares (Keras' `BaseOptimizer`): see the module docstring.

    Subclasses define `_hyperparameters` (their own config keys, in Keras' order), `_slots` (the
    per-parameter state they create) and `_update` (Keras' `_parallel_update_step` / `update_step`).
    The arguments common to all, with Keras' meaning: `weight_decay` (`var *= 1 - weight_decay * lr`
    before each update), `clipnorm` (each gradient's norm at most this), `clipvalue` (each gradient
    element in [-clipvalue, clipvalue]), `global_clipnorm` (the norm of all gradients together at most
    this; one of the three at most), `use_ema` / `ema_momentum` / `ema_overwrite_frequency` (an
    exponential moving average of the weights, copied into them every `ema_overwrite_frequency`
    iterations and by `finalize_variable_values()`, which Keras' `fit` calls when it ends),
    `loss_scale_factor` (gradients are divided by it; scale the loss with `scale_loss(loss)` before
    `backward()`, as Keras' trainer does), `gradient_accumulation_steps` (update every that many steps,
    with the mean gradient) and `name`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
    >>> opt = SGD([w], learning_rate=0.5, global_clipnorm=1.0)
    >>> w.grad = torch.tensor([3.0, -4.0])  # norm 5, clipped to 1
    >>> opt.step(); w.detach()
    tensor([ 2.7000, -3.6000])
    """

    _hyperparameters: ClassVar[tuple[str, ...]] = ()
    _group_scalars: ClassVar[dict[str, float]] = {}  # optimizer-wide scalars kept in every group (Nadam's)

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=3)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
            raise ValueError(
                "Argument `learning_rate` should be a float (the rate lives in each param group's "
                '"lr"; to schedule it, change `param_groups[i]["lr"]`, e.g. with the LearningRateScheduler '
                f"callback or a torch scheduler). Received instead: learning_rate={learning_rate!r}"
            )
        if gradient_accumulation_steps and not gradient_accumulation_steps >= 2:
            raise ValueError(
                "`gradient_accumulation_steps` must be an integer >= 2. "
                f"Received: gradient_accumulation_steps={gradient_accumulation_steps}"
            )
        if use_ema:
            if ema_momentum > 1 or ema_momentum < 0:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
            if ema_overwrite_frequency and (
                not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1
            ):
                raise ValueError(
                    "`ema_overwrite_frequency` must be an integer >= 1 or None. "
                    f"Received: ema_overwrite_frequency={ema_overwrite_frequency}"
                )
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        self.name = name if name is not None else _to_snake_case(type(self).__name__)
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        defaults = {"lr": float(learning_rate), "weight_decay": weight_decay, **(hyperparameters or {})}
        defaults.update({"iterations": 0, **self._group_scalars})
        super().__init__(params, defaults)

    # -- torch machinery ------------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's `add_param_group`; a group added mid-training joins the optimizer's iteration count."""
        if self.param_groups:
            for key in ("iterations", *self._group_scalars):
                param_group.setdefault(key, self.param_groups[0][key])
        super().add_param_group(param_group)

    _options = (
        "name",
        "clipnorm",
        "clipvalue",
        "global_clipnorm",
        "use_ema",
        "ema_momentum",
        "ema_overwrite_frequency",
        "loss_scale_factor",
        "gradient_accumulation_steps",
    )

    def __getstate__(self) -> dict[str, Any]:  # torch's keeps only defaults, state and groups: copies keep ours
        state = super().__getstate__()
        state.update({key: getattr(self, key) for key in self._options})
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.param_groups[0]['lr']!r})"

    # -- Keras' properties ----------------------------------------------------------------------------

    @property
    def iterations(self) -> int:
        """Keras' `optimizer.iterations`: updates applied (steps // gradient_accumulation_steps)."""
        its = self.param_groups[0]["iterations"]
        return its // self.gradient_accumulation_steps if self.gradient_accumulation_steps else its

    @property
    def learning_rate(self) -> float:
        """The first param group's rate, as Keras' float32 variable holds it; setting it sets every group's."""
        return float(np.float32(_lr_value(self.param_groups[0])))

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for group in self.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = float(value)

    def scale_loss(self, loss: Any) -> Any:
        """Keras' `scale_loss`: `loss * loss_scale_factor` when one is set (call it before `backward()`)."""
        return loss * self.loss_scale_factor if self.loss_scale_factor is not None else loss

    @torch.no_grad()
    def finalize_variable_values(self) -> None:
        """With `use_ema`, copy the moving averages into the weights (Keras' `fit` does this when it ends)."""
        if not self.use_ema:
            return
        for p, average in self._averages():
            p.copy_(average)

    # -- config ---------------------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Keras' config of this optimizer (the first param group's hyperparameters), keys in Keras' order."""
        group = self.param_groups[0]
        config = {
            "name": self.name,
            "learning_rate": self.learning_rate,
            "weight_decay": group["weight_decay"],
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }
        config.update({key: group[key] for key in self._hyperparameters})
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any], params: Iterable[Any]) -> Optimizer:
        """A new optimizer of `params` from `get_config()`'s dict (a Keras optimizer's config works too)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), Mapping):
            raise ValueError(
                "Keras learning-rate schedules are not supported: the rate is each param group's "
                '"lr"; schedule it with the LearningRateScheduler callback or a torch scheduler.'
            )
        return cls(params, **config)

    # -- the step -------------------------------------------------------------------------------------

    def _slots(self, group: Mapping[str, Any], p: torch.Tensor) -> dict[str, Any]:
        """The per-parameter state Keras' `build` creates for `p` (name -> initial tensor)."""
        return {}

    def _build(self, group: Mapping[str, Any], p: torch.Tensor, state: dict[str, Any]) -> None:
        """Create `p`'s slots, once (a state restored by `load_state_dict` is kept)."""
        if state and not (self.use_ema and "average" not in state):
            if not (self.gradient_accumulation_steps and "gradient_accumulator" not in state):
                return
        for key, value in self._slots(group, p).items():
            state.setdefault(key, value)
        if self.use_ema:
            _slot(state, "average", p)
        if self.gradient_accumulation_steps:
            _slot(state, "gradient_accumulator", p)

    def _update(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        states: list[dict[str, Any]],
        lr: float,
        iterations: int,
    ) -> None:
        """Keras' update of `params` (all of one group; possibly none) by `grads`.

        `lr` is the group's rate, `iterations` Keras' `optimizer.iterations` before this update.
        """
        raise NotImplementedError

    def _trainable(self) -> Iterable[tuple[dict[str, Any], torch.Tensor]]:
        for group in self.param_groups:
            for p in group["params"]:
                if p.requires_grad:
                    yield group, p

    def _averages(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(p, self.state[p]["average"]) for _, p in self._trainable() if "average" in self.state[p]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Keras `optimizer.apply(grads)` with the parameters' `.grad` (those without one are skipped).

        When no parameter has a gradient nothing happens and nothing is counted (torch's way; Keras raises).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients.")
            work.append((group, params))
        if not any(params for _, params in work):
            return loss
        for group, p in self._trainable():  # Keras builds the slots of every trainable weight at once
            self._build(group, p, self.state[p])
        for group, params in work:
            for p in params:
                self._build(group, p, self.state[p])
        count = self.param_groups[0]["iterations"]
        flat = [p for _, params in work for p in params]
        grads = [p.grad for p in flat]
        if self.loss_scale_factor is not None:
            grads = [g / self.loss_scale_factor for g in grads]
        steps = self.gradient_accumulation_steps
        if steps:
            accumulators = [self.state[p]["gradient_accumulator"] for p in flat]
            if (count + 1) % steps == 0:
                grads = [(g + a) / steps for g, a in zip(grads, accumulators)]
                self._apply(work, grads, count // steps)
                torch._foreach_mul_([self.state[p]["gradient_accumulator"] for _, p in self._trainable()], 0.0)
            else:
                torch._foreach_add_(accumulators, grads, alpha=1.0)
        else:
            self._apply(work, grads, count)
        if self.use_ema:
            self._update_ema(count // steps if steps else count)
        for group in self.param_groups:
            group["iterations"] = count + 1
        return loss

    def _apply(self, work: list[tuple[dict[str, Any], list[torch.Tensor]]], grads: list[Any], its: int) -> None:
        """Keras' `_backend_apply_gradients` without the accumulation: clip, decay the weights, update."""
        grads = self._clip_gradients(grads)
        by_group, start = [], 0
        for _, params in work:
            by_group.append(grads[start : start + len(params)])
            start += len(params)
        for group, params in work:
            wd = group["weight_decay"]
            if wd is not None and params:
                # Keras' torch backend: `_foreach_mul_(vars, 1 - weight_decay * lr)`, lr a float32 variable
                lr32 = np.float32(_lr_value(group))
                torch._foreach_mul_(params, float(np.float32(1) - np.float32(wd) * lr32))
        for (group, params), group_grads in zip(work, by_group):
            lr = _lr_value(group)
            dt = _np_dtype(params[0].dtype) if params else np.float32
            self._update(group, params, group_grads, [self.state[p] for p in params], dt(np.float32(lr)), its)

    def _clip_gradients(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Keras' `_clip_gradients`, with Keras' ops in Keras' order."""
        if self.clipnorm and self.clipnorm > 0:
            out = []
            for g in grads:
                l2norm = torch.sqrt(torch.sum(torch.square(g)))  # Keras' two-tap `where` gives these values
                clip = _full(self.clipnorm, g)
                out.append(torch.multiply(g, clip) / torch.maximum(l2norm, clip))
            return out
        if self.global_clipnorm and self.global_clipnorm > 0:
            use_norm = torch.sqrt(torch.sum(torch.stack([torch.sum(torch.square(g)) for g in grads])))
            # `clip * minimum(1.0 / norm, 1.0 / clip)`, then + (norm - norm) to turn inf/nan norms into nan
            scale = self.global_clipnorm * torch.minimum(1.0 / use_norm, _full(1.0 / self.global_clipnorm, use_norm))
            scale = scale + (use_norm - use_norm)
            return [g * scale for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            return [torch.clip(g, min=_full(-self.clipvalue, g), max=_full(self.clipvalue, g)) for g in grads]
        return grads

    def _update_ema(self, its: int) -> None:
        """Keras' `_update_model_variables_moving_average`, then the overwrite every `ema_overwrite_frequency`."""
        pairs = self._averages()
        if not pairs:
            return
        params, averages = [p for p, _ in pairs], [a for _, a in pairs]
        momentum = np.float32(1.0 if its != 0 else 0.0) * np.float32(self.ema_momentum)
        new = torch._foreach_add(
            torch._foreach_mul(averages, float(momentum)),
            torch._foreach_mul(params, float(np.float32(1) - momentum)),
        )
        for average, value in zip(averages, new):
            average.copy_(value)
        if self.ema_overwrite_frequency and (its + 1) % self.ema_overwrite_frequency == 0:
            for p, average in pairs:
                p.copy_(average)


class SGD(Optimizer):
    """Keras' `SGD`: gradient descent, with (Nesterov) momentum when `momentum > 0`.

    `m = momentum * m - lr * g`; `w += m`, or with `nesterov`, `w += momentum * m - lr * g`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = SGD([w], learning_rate=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
    >>> w.detach()  # 1 -> 0.8 -> 0.8 - 0.16 - 0.9 * 0.2
    tensor([ 0.4600, -0.9200])
    """

    _hyperparameters = ("momentum", "nesterov")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"momentum": float(momentum), "nesterov": nesterov},
            **kwargs,
        )

    def _slots(self, group, p):
        return {"momentum": _zeros(p)} if group["momentum"] != 0 else {}

    def _update(self, group, params, grads, states, lr, iterations):
        if not params:
            return
        momentum = group["momentum"]
        if momentum != 0:
            bufs = [_slot(s, "momentum", p) for s, p in zip(states, params)]
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, grads, alpha=-float(lr))
            if group["nesterov"]:
                torch._foreach_add_(params, grads, alpha=-float(lr))
                torch._foreach_add_(params, bufs, alpha=momentum)
            else:
                torch._foreach_add_(params, bufs)
        else:
            torch._foreach_add_(params, grads, alpha=-float(lr))


class Adam(Optimizer):
    """Keras' `Adam` (and AMSGrad with `amsgrad=True`).

    `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2` (AMSGrad: `v_hat = max(v_hat, v)`),
    `w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)` with `t = iterations + 1`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = Adam([w], learning_rate=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()  # the first step moves each weight by the rate, against its gradient's sign
    tensor([ 0.9000, -1.9000])
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon, "amsgrad": amsgrad},
            **kwargs,
        )

    def _slots(self, group, p):
        slots = {"momentum": _zeros(p), "velocity": _zeros(p)}
        if group["amsgrad"]:
            slots["velocity_hat"] = _zeros(p)
        return slots

    def _update(self, group, params, grads, states, lr, iterations):
        if not params:
            return
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        # Keras computes these on the device, as 0-d tensors (no sync; torch's CPU sqrt differs from numpy's)
        ref = params[0]
        local_step = _full(float(iterations + 1), ref)
        beta_1_power = torch.pow(_full(beta_1, ref), local_step)
        beta_2_power = torch.pow(_full(beta_2, ref), local_step)
        alpha = _full(float(lr), ref) * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m_list = [s["momentum"] for s in states]
        v_list = [s["velocity"] for s in states]
        torch._foreach_mul_(m_list, beta_1)
        torch._foreach_add_(m_list, grads, alpha=1 - beta_1)
        torch._foreach_mul_(v_list, beta_2)
        torch._foreach_add_(v_list, torch._foreach_mul(grads, grads), alpha=1 - beta_2)
        if group["amsgrad"]:
            v_hat_list = [_slot(s, "velocity_hat", p) for s, p in zip(states, params)]
            torch._foreach_maximum_(v_hat_list, v_list)
            v_list = v_hat_list
        torch._foreach_add_(
            params,
            torch._foreach_div(
                torch._foreach_mul(m_list, alpha),
                torch._foreach_add(torch._foreach_sqrt(v_list), group["epsilon"]),
            ),
            alpha=-1,
        )


class AdamW(Adam):
    """Keras' `AdamW`: Adam with decoupled weight decay, `w *= 1 - weight_decay * lr` before each update.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = AdamW([w], learning_rate=0.1, weight_decay=0.5)
    >>> w.grad = torch.zeros(2); opt.step()
    >>> w.detach()  # no gradient: only the decay, by 1 - 0.5 * 0.1
    tensor([ 0.9500, -1.9000])
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(
            params,
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )


class RMSprop(Optimizer):
    """Keras' `RMSprop`, optionally `centered` and with `momentum`.

    `v = rho v + (1 - rho) g^2`; centered: `a = rho a + (1 - rho) g`, denominator `v + epsilon - a^2`
    (else `v + epsilon`); `inc = lr g / sqrt(denominator)`; with momentum `m = momentum m + inc`,
    `w -= m`, else `w -= inc`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = RMSprop([w], learning_rate=0.01)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()  # first step: lr * g / sqrt(0.1 g^2) = lr * sqrt(10) * sign(g)
    tensor([ 0.9684, -1.9684])
    """

    _hyperparameters = ("rho", "momentum", "epsilon", "centered")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"rho": rho, "momentum": momentum, "epsilon": epsilon, "centered": centered},
            **kwargs,
        )

    def _slots(self, group, p):
        slots = {"velocity": _zeros(p)}
        if group["momentum"] > 0:
            slots["momentum"] = _zeros(p)
        if group["centered"]:
            slots["average_gradient"] = _zeros(p)
        return slots

    def _update(self, group, params, grads, states, lr, iterations):
        if not params:
            return
        rho = group["rho"]
        velocities = [s["velocity"] for s in states]
        torch._foreach_mul_(velocities, rho)
        torch._foreach_add_(velocities, torch._foreach_mul(grads, grads), alpha=1 - rho)
        denominators = torch._foreach_add(velocities, group["epsilon"])
        if group["centered"]:
            average_grads = [_slot(s, "average_gradient", p) for s, p in zip(states, params)]
            torch._foreach_mul_(average_grads, rho)
            torch._foreach_add_(average_grads, grads, alpha=1 - rho)
            torch._foreach_add_(denominators, torch._foreach_mul(average_grads, average_grads), alpha=-1)
        torch._foreach_sqrt_(denominators)
        increments = torch._foreach_div(torch._foreach_mul(grads, float(lr)), denominators)
        if group["momentum"] > 0:
            momentum_list = [_slot(s, "momentum", p) for s, p in zip(states, params)]
            torch._foreach_mul_(momentum_list, group["momentum"])
            torch._foreach_add_(momentum_list, increments)
            torch._foreach_add_(params, momentum_list, alpha=-1)
        else:
            torch._foreach_add_(params, increments, alpha=-1)


class Adagrad(Optimizer):
    """Keras' `Adagrad`: `acc += g^2` (from `initial_accumulator_value`), `w -= lr g / sqrt(acc + epsilon)`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = Adagrad([w], learning_rate=0.1, initial_accumulator_value=0.0)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()
    tensor([ 0.9000, -1.9000])
    """

    _hyperparameters = ("initial_accumulator_value", "epsilon")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"initial_accumulator_value": initial_accumulator_value, "epsilon": epsilon},
            **kwargs,
        )

    def _slots(self, group, p):
        return {"accumulator": torch.full_like(p, group["initial_accumulator_value"])}

    def _update(self, group, params, grads, states, lr, iterations):
        if not params:
            return
        accumulators = [s["accumulator"] for s in states]
        torch._foreach_add_(accumulators, torch._foreach_mul(grads, grads))
        torch._foreach_add_(
            params,
            torch._foreach_div(
                torch._foreach_mul(grads, float(lr)),
                torch._foreach_sqrt(torch._foreach_add(accumulators, group["epsilon"])),
            ),
            alpha=-1,
        )


class Adadelta(Optimizer):
    """Keras' `Adadelta`: `Eg = rho Eg + (1 - rho) g^2`, `d = -sqrt(Ed + eps) g / sqrt(Eg + eps)`,
    `Ed = rho Ed + (1 - rho) d^2`, `w += lr d`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = Adadelta([w], learning_rate=1.0, epsilon=1e-2)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()
    tensor([ 0.5636, -1.5556])
    """

    _hyperparameters = ("rho", "epsilon")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"rho": rho, "epsilon": epsilon},
            **kwargs,
        )

    def _slots(self, group, p):
        return {"accumulated_grad": _zeros(p), "accumulated_delta_var": _zeros(p)}

    def _update(self, group, params, grads, states, lr, iterations):
        if not params:
            return
        rho, epsilon = group["rho"], group["epsilon"]
        accumulated_grads = [s["accumulated_grad"] for s in states]
        accumulated_delta_vars = [s["accumulated_delta_var"] for s in states]
        torch._foreach_mul_(accumulated_grads, rho)
        torch._foreach_add_(accumulated_grads, torch._foreach_mul(grads, grads), alpha=1 - rho)

        def rms(x):
            return torch._foreach_sqrt(torch._foreach_add(x, epsilon))

        delta_vars = torch._foreach_mul(
            torch._foreach_div(torch._foreach_mul(rms(accumulated_delta_vars), grads), rms(accumulated_grads)), -1
        )
        torch._foreach_mul_(accumulated_delta_vars, rho)
        torch._foreach_add_(accumulated_delta_vars, torch._foreach_mul(delta_vars, delta_vars), alpha=1 - rho)
        torch._foreach_add_(params, delta_vars, alpha=float(lr))


class Adamax(Optimizer):
    """Keras' `Adamax`: `m = b1 m + (1 - b1) g`, `u = max(b2 u, |g|)`, `w -= lr m / ((u + eps)(1 - b1^t))`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = Adamax([w], learning_rate=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()
    tensor([ 0.9000, -1.9000])
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon},
            **kwargs,
        )

    def _slots(self, group, p):
        return {"momentum": _zeros(p), "norm": _zeros(p)}

    def _update(self, group, params, grads, states, lr, iterations):
        if not params:
            return
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        ref = params[0]
        beta_1_power = torch.pow(_full(beta_1, ref), _full(float(iterations + 1), ref))
        m_list = [s["momentum"] for s in states]
        u_list = [s["norm"] for s in states]
        torch._foreach_mul_(m_list, beta_1)
        torch._foreach_add_(m_list, grads, alpha=1 - beta_1)
        torch._foreach_mul_(u_list, beta_2)
        torch._foreach_maximum_(u_list, torch._foreach_abs(grads))
        torch._foreach_add_(
            params,
            torch._foreach_div(
                torch._foreach_mul(m_list, float(lr)),
                torch._foreach_mul(torch._foreach_add(u_list, group["epsilon"]), 1 - beta_1_power),
            ),
            alpha=-1,
        )


class Nadam(Optimizer):
    """Keras' `Nadam`: Adam with Nesterov momentum and Keras' momentum cache `u_t = b1 (1 - 0.5 * 0.96^t)`.

    The running product of the `u_t` (Keras' `_u_product`) is each group's `"u_product"`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = Nadam([w], learning_rate=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()  # further than Adam's 0.1: the Nesterov look-ahead
    tensor([ 0.8937, -1.8937])
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon")
    _group_scalars = {"u_product": 1.0}

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon},
            **kwargs,
        )

    def _slots(self, group, p):
        return {"momentum": _zeros(p), "velocity": _zeros(p)}

    def _update(self, group, params, grads, states, lr, iterations):
        dt = type(lr)
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        local_step, next_step = dt(iterations + 1), dt(iterations + 2)
        decay = dt(0.96)
        u_t = dt(beta_1) * (dt(1.0) - dt(0.5) * decay**local_step)
        u_t_1 = dt(beta_1) * (dt(1.0) - dt(0.5) * decay**next_step)
        u_product_t = dt(group["u_product"]) * u_t
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = dt(beta_2) ** local_step
        group["u_product"] = float(u_product_t)  # every group, even one without gradients this step
        if not params:
            return
        m_list = [s["momentum"] for s in states]
        v_list = [s["velocity"] for s in states]
        torch._foreach_mul_(m_list, beta_1)
        torch._foreach_add_(m_list, grads, alpha=1 - beta_1)
        torch._foreach_mul_(v_list, beta_2)
        torch._foreach_add_(v_list, torch._foreach_mul(grads, grads), alpha=1 - beta_2)
        m_hat_list = torch._foreach_add(
            torch._foreach_div(torch._foreach_mul(m_list, float(u_t_1)), float(1 - u_product_t_1)),
            torch._foreach_div(torch._foreach_mul(grads, float(dt(1) - u_t)), float(1 - u_product_t)),
        )
        v_hat_list = torch._foreach_div(v_list, float(dt(1) - beta_2_power))
        torch._foreach_add_(
            params,
            torch._foreach_div(
                torch._foreach_mul(m_hat_list, float(lr)),
                torch._foreach_add(torch._foreach_sqrt(v_hat_list), group["epsilon"]),
            ),
            alpha=-1,
        )


class Lion(Optimizer):
    """Keras' `Lion`: `w -= lr sign(b1 m + (1 - b1) g)`, then `m = b2 m + (1 - b2) g`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = Lion([w], learning_rate=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()
    tensor([ 0.9000, -1.9000])
    """

    _hyperparameters = ("beta_1", "beta_2")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError(
                "Argument `beta_1` must be in the [0, 1] range. Otherwise, the "
                f"optimizer degenerates to SignSGD. Received: beta_1={beta_1}."
            )
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"beta_1": beta_1, "beta_2": beta_2},
            **kwargs,
        )

    def _slots(self, group, p):
        return {"momentum": _zeros(p)}

    def _update(self, group, params, grads, states, lr, iterations):
        if not params:
            return
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        m_list = [s["momentum"] for s in states]
        c_t = torch._foreach_mul(m_list, beta_1)
        torch._foreach_add_(c_t, grads, alpha=1 - beta_1)
        c_t = [c.sign() for c in c_t]
        torch._foreach_add_(params, torch._foreach_mul(c_t, float(lr)), alpha=-1)
        torch._foreach_mul_(m_list, beta_2)
        torch._foreach_add_(m_list, grads, alpha=1 - beta_2)


class Ftrl(Optimizer):
    """Keras' `Ftrl` (Follow The Regularized Leader), Keras' `update_step` op for op.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = Ftrl([w], learning_rate=0.1, l1_regularization_strength=0.5)
    >>> for _ in range(3):
    ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
    >>> w.detach()
    tensor([ 0.6153, -1.6117])
    """

    _hyperparameters = (
        "learning_rate_power",
        "initial_accumulator_value",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
        "beta",
    )

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        checks = (
            ("initial_accumulator_value", initial_accumulator_value, "positive or zero"),
            ("learning_rate_power", -learning_rate_power, "negative or zero"),
            ("l1_regularization_strength", l1_regularization_strength, "positive or zero"),
            ("l2_regularization_strength", l2_regularization_strength, "positive or zero"),
            ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength, "positive or zero"),
        )
        for arg, value, sign in checks:
            if value < 0.0:
                shown = -value if arg == "learning_rate_power" else value
                raise ValueError(f"`{arg}` needs to be {sign}. Received: {arg}={shown}.")
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {
                "learning_rate_power": learning_rate_power,
                "initial_accumulator_value": initial_accumulator_value,
                "l1_regularization_strength": l1_regularization_strength,
                "l2_regularization_strength": l2_regularization_strength,
                "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
                "beta": beta,
            },
            **kwargs,
        )

    def _slots(self, group, p):
        return {"accumulator": torch.full_like(p, group["initial_accumulator_value"]), "linear": _zeros(p)}

    def _update(self, group, params, grads, states, lr, iterations):
        l1 = group["l1_regularization_strength"]
        for variable, gradient, state in zip(params, grads, states):
            accum, linear = state["accumulator"], state["linear"]
            lr_t = _full(float(lr), variable)
            power = _full(-group["learning_rate_power"], variable)
            l2_reg = group["l2_regularization_strength"] + group["beta"] / (2.0 * lr_t)
            grad_to_use = gradient + _full(2 * group["l2_shrinkage_regularization_strength"], variable) * variable
            new_accum = accum + torch.square(gradient)
            new_power = torch.pow(new_accum, power)
            linear.copy_(linear + (grad_to_use - ((new_power - torch.pow(accum, power)) / lr_t) * variable))
            quadratic = new_power / lr_t + 2 * l2_reg
            linear_clipped = torch.clip(linear, min=_full(-l1, variable), max=_full(l1, variable))
            variable.copy_((linear_clipped - linear) / quadratic)
            accum.copy_(new_accum)


class Adafactor(Optimizer):
    """Keras' `Adafactor`: second moments factored over the last two axes, Keras' `update_step` op for op.

    Factoring is symmetric in the two axes, so a torch weight `(out, in)` gets the update Keras gives
    its kernel `(in, out)`, transposed.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
    >>> opt = Adafactor([w], learning_rate=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()
    tensor([[ 0.7322, -1.8339],
            [ 0.4016,  2.8169]])
    """

    _hyperparameters = ("beta_2_decay", "epsilon_1", "epsilon_2", "clip_threshold", "relative_step")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        beta_2_decay: float = -0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float = 1.0,
        relative_step: bool = True,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {
                "beta_2_decay": beta_2_decay,
                "epsilon_1": epsilon_1,
                "epsilon_2": epsilon_2,
                "clip_threshold": clip_threshold,
                "relative_step": relative_step,
            },
            **kwargs,
        )

    def _slots(self, group, p):
        slots = {"velocity": _zeros(p)}
        if p.dim() >= 2:
            slots["r"] = p.new_zeros(p.shape[:-1])
            slots["c"] = p.new_zeros(p.shape[:-2] + p.shape[-1:])
        return slots

    @staticmethod
    def _rms(x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.mean(torch.square(x)))

    def _update(self, group, params, grads, states, lr, iterations):
        for variable, gradient, state in zip(params, grads, states):
            v = state["velocity"]
            lr_t = _full(float(lr), variable)
            epsilon_2 = _full(group["epsilon_2"], variable)
            one = _full(1.0, variable)
            local_step = _full(float(iterations + 1), variable)
            if group["relative_step"]:
                lr_t = torch.minimum(lr_t, 1 / torch.sqrt(local_step))
            rho_t = torch.minimum(lr_t, 1 / torch.sqrt(local_step))
            alpha_t = torch.maximum(epsilon_2, self._rms(variable)) * rho_t
            regulated_grad_square = torch.square(gradient) + _full(group["epsilon_1"], variable)
            beta_2_t = 1 - torch.pow(local_step, _full(group["beta_2_decay"], variable))
            if variable.dim() >= 2:
                r, c = state["r"], state["c"]
                r.copy_(beta_2_t * r + (1 - beta_2_t) * torch.mean(regulated_grad_square, -1))
                c.copy_(beta_2_t * c + (1 - beta_2_t) * torch.mean(regulated_grad_square, -2))
                v.copy_(torch.unsqueeze(r / torch.mean(r, -1, keepdim=True), -1) * torch.unsqueeze(c, -2))
            else:
                v.copy_(beta_2_t * v + (1 - beta_2_t) * regulated_grad_square)
            u_t = gradient / torch.sqrt(v)
            u_t_hat = u_t / torch.maximum(one, self._rms(u_t) / group["clip_threshold"])
            variable.copy_(variable - alpha_t * u_t_hat)


class Lamb(Optimizer):
    """Keras' `Lamb`: Adam's bias-corrected step scaled by the trust ratio `||w|| / ||step||`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
    >>> opt = Lamb([w], learning_rate=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.detach()  # the step (1, -1) is scaled to the weight's norm 5: 0.1 * 5 / sqrt(2)
    tensor([ 2.6464, -3.6464])
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
            name,
            {"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon},
            **kwargs,
        )

    def _slots(self, group, p):
        return {"momentum": _zeros(p), "velocity": _zeros(p)}

    def _update(self, group, params, grads, states, lr, iterations):
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        for variable, gradient, state in zip(params, grads, states):
            m, v = state["momentum"], state["velocity"]
            lr_t = _full(float(lr), variable)
            local_step = _full(float(iterations + 1), variable)
            beta_1_power = torch.pow(_full(beta_1, variable), local_step)
            beta_2_power = torch.pow(_full(beta_2, variable), local_step)
            m.copy_(m + (gradient - m) * _full(1 - beta_1, variable))
            v.copy_(v + (torch.square(gradient) - v) * _full(1 - beta_2, variable))
            m_t_hat = m / (1.0 - beta_1_power)
            v_sqrt = torch.sqrt(v / (1.0 - beta_2_power)) + _full(group["epsilon"], variable)
            update = m_t_hat / v_sqrt
            two = _full(2, variable, torch.int32)
            w_norm = torch.sqrt(torch.sum(torch.pow(variable, two)))
            g_norm = torch.sqrt(torch.sum(torch.pow(update, two)))
            one = _full(1.0, variable)
            ratio = torch.where(w_norm > 0, torch.where(g_norm > 0, w_norm / g_norm, one), one)
            variable.copy_(variable - ratio * lr_t * update)


_CLASSES: dict[str, type[Optimizer]] = {
    cls.__name__.lower(): cls
    for cls in (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl, Adafactor, Lamb)
}


def valid_names() -> list[str]:
    """The optimizer names `get` accepts (any case), as Keras spells them lower-cased."""
    return sorted(_CLASSES)


def _class(name: str) -> type[Optimizer]:
    cls = _CLASSES.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer {name!r}. Valid names (any case): {', '.join(valid_names())}.")
    return cls


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """Keras' `optimizers.serialize`: `{"module", "class_name", "config", "registered_name"}`."""
    return {
        "module": "keras.optimizers",
        "class_name": type(optimizer).__name__,
        "config": optimizer.get_config(),
        "registered_name": None,
    }


def deserialize(config: Mapping[str, Any], params: Iterable[Any]) -> Optimizer:
    """Keras' `optimizers.deserialize`, with the parameters to optimize: `{"class_name": ..., "config": ...}`."""
    if not isinstance(config, Mapping) or "class_name" not in config:
        raise ValueError(f'An optimizer config is a dict with a "class_name" (and a "config"). Received: {config!r}')
    return _class(config["class_name"]).from_config(config.get("config") or {}, params)


def get(identifier: Any, params: Iterable[Any] | None = None) -> torch.optim.Optimizer | None:
    """An optimizer of `params` from a Keras identifier, as `keras.optimizers.get` reads one.

    A name (`"adam"`, `"RMSprop"`, any case) gives that optimizer with Keras' defaults; a dict
    `{"class_name": "Adam", "config": {...}}` (Keras' `serialize` format) one with that config; a Keras
    optimizer instance one with its `get_config()`; a torch optimizer (ours or not) is returned as it is;
    `None` gives `None`. Anything else raises `ValueError`, an unknown name listing the valid ones.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> get("RMSprop", [w]).get_config()["rho"]
    0.9
    >>> get({"class_name": "SGD", "config": {"learning_rate": 0.1, "momentum": 0.9}}, [w])
    SGD(learning_rate=0.1)
    >>> get("adamm", [w])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Unknown optimizer 'adamm'. Valid names (any case): adadelta, adafactor, adagrad, adam, ...
    """
    if identifier is None:
        return None
    if isinstance(identifier, torch.optim.Optimizer):
        return identifier
    if isinstance(identifier, (str, Mapping)) or (
        hasattr(identifier, "get_config") and type(identifier).__module__.split(".")[0] == "keras"
    ):
        if params is None:
            raise ValueError(f"`get({identifier!r}, params)` needs the parameters to optimize.")
        if isinstance(identifier, str):
            return _class(identifier)(params)
        if isinstance(identifier, Mapping):
            return deserialize(identifier, params)
        return _class(type(identifier).__name__).from_config(identifier.get_config(), params)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def get_for(optimizer: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The Trainer's optimizer: a torch optimizer as given, or a Keras name or config built over `model`'s
    parameters with Keras' defaults; anything else raises a TypeError naming it."""
    if isinstance(optimizer, (str, Mapping)):
        optimizer = get(optimizer, model.parameters())
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            "`optimizer` must be a torch.optim.Optimizer over the model's parameters, or a Keras optimizer "
            f"name such as 'adam' (see torch_keras_metrics.optimizers); got {optimizer!r}."
        )
    return optimizer
