"""Shared test set-up: Keras (the reference oracle) runs on its torch backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
import torch  # noqa: E402

import rnnkit  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_names_and_seed():
    """Every test starts with fresh automatic layer names and a fixed torch seed."""
    rnnkit.clear_session()
    torch.manual_seed(0)
    yield
