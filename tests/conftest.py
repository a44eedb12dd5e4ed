"""Keras is the oracle: it must run on its torch backend, chosen before anything imports it."""

import os
import signal

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


@pytest.fixture
def ctrl_c():
    """Python's own Ctrl-C handler for one test, whatever this process inherited (a background job starts with
    SIGINT ignored, and Python then installs no handler); the one before comes back after."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield signal.default_int_handler
    signal.signal(signal.SIGINT, before)


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
