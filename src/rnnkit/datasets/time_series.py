"""Seed 004's synthetic time series ``t * sin(t) / 3 + 2 * sin(5 t)`` and its batch generator."""

from __future__ import annotations

import numpy as np

T_MIN, T_MAX, RESOLUTION = 0.0, 30.0, 0.1


def time_series(t: np.ndarray) -> np.ndarray:
    """The series' value at times ``t``."""
    return t * np.sin(t) / 3 + 2 * np.sin(t * 5)


def next_batch(
    batch_size: int, n_steps: int, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Random windows of ``n_steps`` values and the same windows shifted one step ahead.

    Returns ``(x, y)``, each of shape (batch_size, n_steps, 1), float32: ``y[:, t] = x[:, t+1]``
    extended by the next value, as seed 004's ``next_batch``.
    """
    rng = rng if rng is not None else np.random.default_rng()
    t0 = rng.random((batch_size, 1)) * (T_MAX - T_MIN - n_steps * RESOLUTION)
    ts = t0 + np.arange(0.0, n_steps + 1) * RESOLUTION
    ys = time_series(ts)
    x = ys[:, :-1].reshape(-1, n_steps, 1).astype(np.float32)
    y = ys[:, 1:].reshape(-1, n_steps, 1).astype(np.float32)
    return x, y
