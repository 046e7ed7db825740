"""MNIST with Keras' signature: ``(x_train, y_train), (x_test, y_test) = load_data()``.

Reads Keras' ``mnist.npz`` (arrays ``x_train`` (60000, 28, 28) uint8, ``y_train`` (60000,)
uint8, ``x_test``, ``y_test``) from ``~/.rnnkit/datasets/`` or the path given; downloads it
once, with a checksum check, when the machine is online.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.datasets._files import cache_dir, fetch

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
FILE_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_data(
    path: str = "mnist.npz",
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as numpy arrays.

    Args:
        path: a file name inside the cache folder, or a path to an existing ``mnist.npz``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape (n, 28, 28) and uint8
        labels of shape (n,).
    """
    candidate = Path(path).expanduser()
    if not candidate.exists():
        candidate = fetch(cache_dir() / path, ORIGIN, FILE_HASH)
    with np.load(candidate, allow_pickle=False) as f:
        missing = [k for k in _KEYS if k not in f.files]
        if missing:
            raise ValueError(f"mnist.load_data: {candidate} lacks the arrays {missing}")
        x_train, y_train, x_test, y_test = (f[k] for k in _KEYS)
    return (x_train, y_train), (x_test, y_test)
