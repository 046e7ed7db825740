"""Shared test set-up: Keras (the reference oracle) runs on its torch backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import random  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnkit  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_names_and_seed():
    """Every test starts with fresh automatic layer names and fixed seeds: torch's, numpy's
    global generator (``np.random.rand`` in tests) and Python's (Keras draws its default seeds
    from it), so that no test depends on the tests run before it or on the run."""
    rnnkit.clear_session()
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield
