"""``to_categorical``: integer class labels as one-hot rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnnkit.ops.nn import one_hot


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray | torch.Tensor:
    """Class ids ``x`` as one-hot vectors (Keras' ``to_categorical``).

    Shapes: ``(...)`` -> ``(..., num_classes)``; a trailing axis of size 1 (``(n, 1)`` column
    labels) is dropped first. ``num_classes`` defaults to ``max(x) + 1``. A numpy array or
    list gives a float64 numpy array, a tensor an int64 tensor (as Keras on torch).

    >>> to_categorical([0, 2]).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if isinstance(x, torch.Tensor):
        if num_classes is None:
            num_classes = int(x.max()) + 1 if x.numel() else 0
        return one_hot(x, _check_classes(num_classes), dtype=torch.int64)
    labels = np.asarray(x)
    if labels.dtype.kind not in "iuf" or (
        labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels))
    ):
        raise ValueError(
            f"to_categorical: x must hold integer class ids, received dtype {labels.dtype}"
        )
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)
    if flat.size and flat.min() < 0:
        raise ValueError(f"to_categorical: class ids must be >= 0, received {flat.min()}")
    if num_classes is None:
        if not flat.size:
            raise ValueError("to_categorical: x is empty; give num_classes")
        num_classes = int(flat.max()) + 1
    num_classes = _check_classes(num_classes)
    if flat.size and flat.max() >= num_classes:
        raise ValueError(
            f"to_categorical: class ids must be < num_classes={num_classes}, received {flat.max()}"
        )
    out = np.zeros((flat.size, num_classes))
    out[np.arange(flat.size), flat] = 1.0
    return out.reshape((*shape, num_classes))


def _check_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"to_categorical: num_classes must be an int, received {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be >= 1, received {num_classes}")
    return int(num_classes)
