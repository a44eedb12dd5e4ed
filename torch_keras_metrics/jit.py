"""Keras' `jit_compile` for the Trainer's steps: `torch.compile`, compiled once per input shape, eager on failure.

`Steps` holds the train, test and predict step functions of one Trainer (tensor work only: the Trainer keeps
its bookkeeping, and the optimizer step, outside), compiled (`jit_compile=True`, or a
dict of `torch.compile` options such as `{"mode": "reduce-overhead"}` for CUDA graphs) or eager. Each is
compiled at most once per input shape (`dynamic=False`: a ragged last batch adds one graph) and kept for
the Trainer's life, so nothing compiles again across epochs or fits. A step that fails to compile (no C++
compiler, an unsupported Python or operator) warns once and runs eager from then on; `undo` puts back what
the failed call changed first (the metric states), so no batch counts twice.

>>> steps = Steps(lambda x: x * 2, lambda x: x + 1, lambda x: -x, options=None)
>>> import torch; steps.train(torch.ones(1)), steps.compiled
(tensor([2.]), False)
"""

from __future__ import annotations

import types
import warnings
from typing import Any, Callable

import torch

__all__ = ["Steps", "resolve"]


def resolve(jit_compile: Any, device: torch.device) -> dict[str, Any] | None:
    """The `torch.compile` options for `jit_compile` on `device`, or None for eager.

    `"auto"` compiles on CUDA, where launch overhead makes compiling the usual win, and not on the CPU, where
    the compiled wrappers cost more than fusion saves at small sizes (Keras' torch backend never compiles on
    "auto").

    >>> resolve("auto", torch.device("cpu")), resolve(True, torch.device("cpu"))
    (None, {'dynamic': False})
    """
    if jit_compile is False or jit_compile is None:
        return None
    if jit_compile == "auto":
        return {"dynamic": False} if device.type == "cuda" else None
    if jit_compile is True:
        return {"dynamic": False}
    if isinstance(jit_compile, dict):
        unknown = set(jit_compile) - {"mode", "backend", "options", "dynamic", "fullgraph"}
        if unknown:
            raise ValueError(f"`jit_compile` options must be torch.compile's, got unknown {sorted(unknown)}.")
        return {"dynamic": False, **jit_compile}
    raise ValueError(
        f"`jit_compile` must be False, True, 'auto' or a dict of torch.compile options, got {jit_compile!r}."
    )


def _shape_key(args: tuple) -> tuple:
    return tuple(a.shape if isinstance(a, torch.Tensor) else type(a) for a in args)


def _own_code(fn: Callable) -> Callable:
    """`fn` (a bound method) over a copy of its code object. torch.compile caches graphs per code object and
    stops compiling one after `recompile_limit` entries: every Trainer of a process (a notebook makes many)
    would share the steps' entries, and the ninth would silently run eager."""
    func = getattr(fn, "__func__", fn)
    copy = types.FunctionType(
        func.__code__.replace(), func.__globals__, func.__name__, func.__defaults__, func.__closure__
    )
    copy.__kwdefaults__ = func.__kwdefaults__
    owner = getattr(fn, "__self__", None)
    return copy if owner is None else types.MethodType(copy, owner)


class _Step:
    def __init__(self, fn: Callable, options: dict[str, Any] | None, name: str, undo: Callable | None) -> None:
        self.eager, self.name, self._undo = fn, name, undo
        self.fn = fn if options is None else torch.compile(_own_code(fn), **options)
        self.compiled = options is not None
        self._last: tuple | None = None

    def __call__(self, *args: Any) -> Any:
        if not self.compiled:
            return self.eager(*args)
        key = _shape_key(args)
        if key == self._last:  # compiled for these shapes already: nothing can fail to compile
            return self.fn(*args)
        restore = self._undo() if self._undo is not None else None
        try:
            out = self.fn(*args)
        except Exception as err:
            if not _is_compile_failure(err):
                raise
            if restore is not None:
                restore()
            warnings.warn(
                f"jit_compile: the {self.name} step could not be compiled ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:300]}); it runs eager from now on.",
                RuntimeWarning,
                stacklevel=3,
            )
            self.fn, self.compiled = self.eager, False
            return self.eager(*args)
        self._last = key
        return out


def _is_compile_failure(err: BaseException) -> bool:
    dynamo_exc = getattr(getattr(torch, "_dynamo", None), "exc", None)
    names = ("TorchDynamoException", "BackendCompilerFailed")
    kinds = tuple(k for k in (getattr(dynamo_exc, n, None) for n in names) if isinstance(k, type))
    if kinds and isinstance(err, kinds):
        return True
    return type(err).__module__.startswith(("torch._dynamo", "torch._inductor"))


class Steps:
    """A Trainer's three step functions, compiled with `options` (None: eager). `undo()` returns a function
    that puts back what a failed first call changed."""

    def __init__(
        self,
        train: Callable,
        test: Callable,
        predict: Callable,
        options: dict[str, Any] | None,
        undo: Callable | None = None,
    ) -> None:
        self.options = options
        if options is None:  # eager: the functions themselves, without a wrapper's call per batch
            self.train, self.test, self.predict = train, test, predict
            return
        self.train = _Step(train, options, "train", undo)
        self.test = _Step(test, options, "test", undo)
        self.predict = _Step(predict, options, "predict", None)

    @property
    def compiled(self) -> bool:
        """Whether any step still runs compiled."""
        return any(getattr(step, "compiled", False) for step in (self.train, self.test, self.predict))
