"""Keras is the oracle: it must run on its torch backend, chosen before anything imports it."""

import os

os.environ["KERAS_BACKEND"] = "torch"
os.environ.setdefault("TORCH_KERAS_METRICS_COMPILE", "auto")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

# Every hypothesis test, including one that sets nothing itself: the same examples on every run
# (derandomized, no example database carried between runs) and no time limit per example.
settings.register_profile(
    "suite", deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def keras():
    import keras

    assert keras.backend.backend() == "torch"
    return keras


def to_numpy(x):
    """Keras or torch output as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
