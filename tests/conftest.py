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


def _global_state() -> dict:
    return {
        "torch.get_num_threads()": torch.get_num_threads(),
        "torch.are_deterministic_algorithms_enabled()": (
            torch.are_deterministic_algorithms_enabled()
        ),
        "torch.get_default_dtype()": torch.get_default_dtype(),
        "torch.is_grad_enabled()": torch.is_grad_enabled(),
        "torch.is_autocast_enabled('cpu')": torch.is_autocast_enabled("cpu"),
        "rnnkit.mixed_precision.global_policy()": rnnkit.mixed_precision.global_policy().name,
    }


@pytest.fixture(autouse=True)
def _no_leaked_global_state(request):
    """A test that changes process-wide settings (threads, deterministic algorithms, default
    dtype, grad mode, autocast, the dtype policy) must restore them: otherwise the tests after
    it run under other settings, and the suite's results depend on its order. Fails the test
    that leaks, naming the setting (module- and session-scoped fixtures may change them for
    their own scope)."""
    before = _global_state()
    yield
    after = _global_state()
    leaked = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    if leaked:
        torch.set_num_threads(before["torch.get_num_threads()"])
        torch.use_deterministic_algorithms(before["torch.are_deterministic_algorithms_enabled()"])
        torch.set_default_dtype(before["torch.get_default_dtype()"])
        torch.set_grad_enabled(before["torch.is_grad_enabled()"])
        rnnkit.mixed_precision.set_global_policy(before["rnnkit.mixed_precision.global_policy()"])
        pytest.fail(f"{request.node.nodeid} left global settings changed: {leaked}")
