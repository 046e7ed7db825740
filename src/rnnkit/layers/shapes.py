"""Shape checks at a layer's boundary and the names errors give layers.

>>> from rnnkit.layers.core import Dense
>>> check_input_shape(Dense(3, name="d"), (2, 5), axes={-1: 4})
Traceback (most recent call last):
...
ValueError: Dense 'd': inputs has shape (2, 5), expected (None, 4)
"""

from __future__ import annotations

from typing import Any


def layer_label(layer: Any) -> str:
    """How errors name ``layer``: ``LSTM 'encoder'``, or the label a wrapper gave it (a
    ``Bidirectional`` names its layers ``Bidirectional 'bi' (forward layer LSTM 'fw')``)."""
    return getattr(layer, "error_label", None) or f"{type(layer).__name__} '{layer.name}'"


def check_input_shape(
    layer: Any,
    shape: Any,
    *,
    rank: int | None = None,
    min_rank: int | None = None,
    axes: dict[int, int | None] | None = None,
    argument: str = "inputs",
    legend: str = "",
) -> None:
    """Check ``shape`` at ``layer``'s boundary, before any torch op.

    ``shape`` must have ``rank`` axes (or at least ``min_rank``) and the sizes ``axes`` gives
    (``{-1: 3}``: the last axis has size 3; ``None`` sizes in either are not checked).
    Raises ``ValueError("Dense 'd': inputs has shape (2, 5), expected (None, 3) (batch, ...,
    features)")``: the layer, the argument, the received and the expected shape, ``legend``.
    """
    shape = tuple(shape)
    n = len(shape)
    axes = axes or {}
    if rank is not None and n != rank:
        expected = f"rank {rank}"
    elif min_rank is not None and n < min_rank:
        expected = f"rank >= {min_rank}"
    elif any(
        size is not None and -n <= axis < n and shape[axis] is not None and shape[axis] != size
        for axis, size in axes.items()
    ):
        sizes = {axis % n: size for axis, size in axes.items() if -n <= axis < n}
        expected = str(tuple(sizes.get(i) for i in range(n)))
    else:
        return
    suffix = f" {legend}" if legend else ""
    raise ValueError(
        f"{layer_label(layer)}: {argument} has shape {shape}, expected {expected}{suffix}"
    )


def batch_input_shape(kwargs: dict[str, Any]) -> tuple[int | None, ...] | None:
    """The batch input shape a layer's ``batch_input_shape`` / ``input_shape`` (with
    ``batch_size``) / ``input_dim`` arguments describe, or None."""
    if kwargs.get("batch_input_shape") is not None:
        return tuple(kwargs["batch_input_shape"])
    if kwargs.get("input_shape") is not None:
        return (kwargs.get("batch_size"), *tuple(kwargs["input_shape"]))
    if kwargs.get("input_dim") is not None:
        return (kwargs.get("batch_size"), int(kwargs["input_dim"]))
    return None
