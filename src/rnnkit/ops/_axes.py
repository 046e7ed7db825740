"""Axis arguments checked once: negative axes counted from the end, out-of-range axes and
repeated axes refused with a ValueError naming the op and the argument."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def canonical_axis(op: str, axis: Any, ndim: int, argument: str = "axis") -> int:
    """``axis`` as an int in ``[0, ndim)``; negative axes count from the end."""
    if isinstance(axis, bool) or not isinstance(axis, int):
        try:
            axis = int(axis.__index__())
        except AttributeError:
            raise TypeError(
                f"{op}: {argument} must be an int, received {type(axis).__name__} {axis!r}"
            ) from None
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{op}: {argument}={axis} is out of range for an input of rank {ndim} "
            f"(expected {-ndim} <= {argument} < {ndim})"
        )
    return axis % ndim


def canonical_axes(
    op: str, axis: int | Sequence[int] | None, ndim: int, argument: str = "axis"
) -> tuple[int, ...] | None:
    """None (all axes) or a tuple of distinct axes in ``[0, ndim)``."""
    if axis is None:
        return None
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    result = tuple(canonical_axis(op, a, ndim, argument) for a in axes)
    if len(set(result)) != len(result):
        raise ValueError(f"{op}: {argument} has repeated axes, received {argument}={axis}")
    return result


def check_rank(op: str, argument: str, ndim: int, minimum: int) -> None:
    """ValueError unless ``ndim >= minimum``."""
    if ndim < minimum:
        raise ValueError(f"{op}: {argument} must have rank >= {minimum}, received rank {ndim}")


def check_int(op: str, argument: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (not a bool), at least ``minimum`` when given."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{op}: {argument} must be an int, received {value!r}")
    value = int(value.__index__())
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {argument} must be >= {minimum}, received {value}")
    return value
