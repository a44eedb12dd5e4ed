"""`python -m torch_keras_metrics.demo`: the six accuracies on SEMANTICS' worked examples, beside Keras."""

from __future__ import annotations

import os

import torch

from . import functional as F

EXAMPLES = [
    ("binary_accuracy", [0, 0, 0, 1, 1, 0], [0.2, 0.3, 0.6, 0.7, 0.8, 0.1], {}),
    (
        "categorical_accuracy",
        [[0, 0, 1], [0, 1, 0], [0, 1, 0], [1, 0, 0]],
        [[0.1, 0.6, 0.3], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.9, 0, 0.1]],
        {},
    ),
    (
        "sparse_categorical_accuracy",
        [2, 1, 1, 0],
        [[0.3, 0.6, 0.1], [0.5, 0.4, 0.1], [0.3, 0.6, 0.1], [0.9, 0, 0.1]],
        {},
    ),
    (
        "sparse_top_k_categorical_accuracy",
        [2, 1, 1, 0],
        [[0.3, 0.6, 0.1], [0.5, 0.4, 0.1], [0.3, 0.6, 0.1], [0.9, 0, 0.1]],
        {"k": 2},
    ),
    (
        "top_k_categorical_accuracy",
        [[0, 0, 1], [0, 1, 0], [0, 1, 0], [1, 0, 0]],
        [[0.3, 0.6, 0.1], [0.5, 0.4, 0.1], [0.3, 0.6, 0.1], [0.9, 0, 0.1]],
        {"k": 2},
    ),
    ("accuracy", [0, 1, 3, 3, 4, 2], [0, 1, 3, 4, 4, 4], {}),
]


def _keras_value(name: str, y_true, y_pred, kwargs) -> float | None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        from keras.src.metrics import accuracy_metrics
    except Exception:
        return None
    values = getattr(accuracy_metrics, name)(y_true, y_pred, **kwargs)
    return float(torch.as_tensor(values).float().mean())


def main() -> None:
    print(f"{'metric':<36}{'torch_keras_metrics':>20}{'keras':>10}")
    for name, y_true, y_pred, kwargs in EXAMPLES:
        ours = float(getattr(F, name)(y_true, y_pred, **kwargs).mean())
        theirs = _keras_value(name, y_true, y_pred, kwargs)
        label = name + (f"(k={kwargs['k']})" if kwargs else "")
        print(f"{label:<36}{ours:>20.4f}{'n/a' if theirs is None else f'{theirs:.4f}':>10}")


if __name__ == "__main__":
    main()
