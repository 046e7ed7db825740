"""The global random number generators' states, captured and restored as one value.

:func:`get_state` covers every generator training may draw from: torch's CPU generator, the
CUDA generators (when CUDA is initialized), numpy's global generator (``np.random.seed``) and
Python's ``random``. The state holds only tensors, ints, floats, lists and tuples, so a backup
file stores it without pickle (:mod:`rnnkit.saving.state_file`).

>>> state = get_state()
>>> a = torch.rand(1)
>>> set_state(state)
>>> bool(torch.rand(1) == a)
True
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def get_state() -> dict[str, Any]:
    """The states of the torch (CPU and CUDA), numpy and Python global generators."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_state(state: dict[str, Any]) -> None:
    """Restore the generators to ``state`` (from :func:`get_state`)."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state(
        (kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached_gaussian))
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
