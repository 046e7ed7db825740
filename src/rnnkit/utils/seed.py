"""``set_random_seed``: one call seeds every generator a Keras program draws from."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_random_seed(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every CUDA
    device), so that weight initialisation, dropout, shuffling and ``rnnkit.random`` draws
    with ``seed=None`` repeat from run to run.

    >>> set_random_seed(3); a = torch.rand(1); set_random_seed(3)
    >>> bool(torch.rand(1) == a)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"set_random_seed: seed must be an int, received {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"set_random_seed: seed must be in [0, 2**32), received {seed}")
    random.seed(int(seed))
    np.random.seed(int(seed))
    torch.manual_seed(int(seed))
