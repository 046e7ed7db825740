"""A weight budget: how many elements layers may allocate while a file is being loaded.

Building a model from an untrusted config must not allocate what the file's author asks for
(``Dense(units=10**9)``) before anything is checked. The loaders know how many weight elements
the file really holds (from the safetensors header or the HDF5 dataset shapes, read before any
data), so they open a budget of that size with :func:`weight_budget`; every
:meth:`Layer.add_weight <rnnkit.layers.Layer.add_weight>` inside calls :func:`reserve` before it
allocates, and a weight that does not fit raises ``ValueError`` naming the layer and the shape.
Outside a budget (models built in code) :func:`reserve` does nothing.

>>> with weight_budget(100, "m.keras"):
...     reserve((10, 10), "layer 'dense': kernel")  # fits
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class _Budget:
    left: int
    total: int
    source: str


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "rnnkit_weight_budget", default=None
)


# Headroom over the file's own count, so that a small mismatch is reported by the shape check
# that follows (which names both shapes) rather than here; 4 MiB of float32 is harmless.
SLACK = 2**20


@contextlib.contextmanager
def weight_budget(elements: int, source: str) -> Iterator[None]:
    """Allow at most ``elements`` (plus :data:`SLACK`) weight elements to be allocated inside
    the block."""
    token = _BUDGET.set(_Budget(int(elements) + SLACK, int(elements), source))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def reserve(shape: tuple[int, ...], where: str) -> None:
    """Take ``prod(shape)`` elements from the open budget; ``ValueError`` if they do not fit."""
    budget = _BUDGET.get()
    if budget is None:
        return
    count = math.prod(shape)
    if count > budget.left:
        raise ValueError(
            f"{budget.source}: {where} would allocate a weight of shape {tuple(shape)} "
            f"({count} elements), but the file holds only {budget.total} weight elements in "
            "all; the architecture does not match its weights"
        )
    budget.left -= count
