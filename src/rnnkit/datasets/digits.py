"""A small offline dataset: 1,797 handwritten digits of 8x8 pixels, shipped with rnnkit.

Read as sequences, each image is 8 time steps (rows) of 8 features (pixels), like the guide's
MNIST rows-as-time-steps example at a size that trains in seconds on a CPU.
"""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_data(
    test_split: float = 0.2, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)`` with ``x`` of shape (n, 8, 8), uint8 in 0..16.

    The split is a seeded shuffle, so it is the same on every machine.
    """
    if not 0.0 < test_split < 1.0:
        raise ValueError(f"digits.load_data: test_split must be in (0, 1), received {test_split}")
    source = resources.files("rnnkit.datasets").joinpath("data/digits.npz")
    with source.open("rb") as fh, np.load(fh, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"]
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_split))
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])
