"""Numpy-like ops that make, reshape, join, split and index tensors.

Each takes Keras' (numpy's) arguments in Keras' order and returns a torch tensor (or a list
of them). Axes may be negative; an out-of-range axis is a ValueError naming the op and the
argument. Creation ops default to ``float32`` (Keras' floatx).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rnnkit.ops._axes import canonical_axes, canonical_axis, check_int
from rnnkit.ops._dtypes import FLOATX, result_type, to_torch_dtype
from rnnkit.ops.core import convert_to_numpy, convert_to_tensor, tensors

__all__ = [
    "arange",
    "broadcast_to",
    "concatenate",
    "expand_dims",
    "eye",
    "flip",
    "full",
    "full_like",
    "identity",
    "linspace",
    "moveaxis",
    "ones",
    "ones_like",
    "pad",
    "ravel",
    "repeat",
    "reshape",
    "roll",
    "split",
    "squeeze",
    "stack",
    "swapaxes",
    "take",
    "take_along_axis",
    "tile",
    "transpose",
    "tril",
    "triu",
    "where",
    "zeros",
    "zeros_like",
]


def _shape_arg(op: str, shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    for d in dims:
        check_int(op, "shape", d, minimum=0)
    return tuple(int(d) for d in dims)


def _dtype_or(dtype: Any, default: torch.dtype) -> torch.dtype:
    return default if dtype is None else to_torch_dtype(dtype)


# ---------------------------------------------------------------- creation


def zeros(shape: Any, dtype: Any = None) -> torch.Tensor:
    """A tensor of zeros of ``shape`` (float32 unless ``dtype``)."""
    return torch.zeros(_shape_arg("zeros", shape), dtype=_dtype_or(dtype, FLOATX))


def ones(shape: Any, dtype: Any = None) -> torch.Tensor:
    """A tensor of ones of ``shape`` (float32 unless ``dtype``)."""
    return torch.ones(_shape_arg("ones", shape), dtype=_dtype_or(dtype, FLOATX))


def full(shape: Any, fill_value: Any, dtype: Any = None) -> torch.Tensor:
    """A tensor of ``shape`` filled with ``fill_value`` (float32 unless ``dtype``); a
    tensor ``fill_value`` is broadcast to ``shape``."""
    dims = _shape_arg("full", shape)
    value = convert_to_tensor(fill_value, dtype=_dtype_or(dtype, FLOATX))
    return torch.broadcast_to(value, dims).clone()


def zeros_like(x: Any, dtype: Any = None) -> torch.Tensor:
    """Zeros with the shape (and, unless ``dtype``, the dtype) of ``x``."""
    x = convert_to_tensor(x)
    return torch.zeros_like(x, dtype=_dtype_or(dtype, x.dtype))


def ones_like(x: Any, dtype: Any = None) -> torch.Tensor:
    """Ones with the shape (and, unless ``dtype``, the dtype) of ``x``."""
    x = convert_to_tensor(x)
    return torch.ones_like(x, dtype=_dtype_or(dtype, x.dtype))


def full_like(x: Any, fill_value: Any, dtype: Any = None) -> torch.Tensor:
    """``fill_value`` with the shape (and, unless ``dtype``, the dtype) of ``x``."""
    x = convert_to_tensor(x)
    value = convert_to_tensor(fill_value, dtype=_dtype_or(dtype, x.dtype), device=x.device)
    return torch.broadcast_to(value, x.shape).clone()


def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> torch.Tensor:
    """Evenly spaced values in ``[start, stop)`` (``[0, start)`` when ``stop`` is None);
    int32 for int arguments, float32 when any is a float, unless ``dtype``."""
    if step is None:
        step = 1
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must not be 0")
    target = _dtype_or(dtype, result_type(*(v for v in (start, stop, step))))
    values = [v.item() if isinstance(v, torch.Tensor) else v for v in (start, stop, step)]
    return torch.arange(*values, dtype=target)


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> torch.Tensor:
    """An ``(N, M)`` matrix with ones on diagonal ``k`` (above the main one for k > 0)."""
    n = check_int("eye", "N", N, minimum=0)
    m = n if M is None else check_int("eye", "M", M, minimum=0)
    k = check_int("eye", "k", k)
    rows = torch.arange(n).unsqueeze(1)
    cols = torch.arange(m).unsqueeze(0)
    return (cols - rows == k).to(_dtype_or(dtype, FLOATX))


def identity(n: int, dtype: Any = None) -> torch.Tensor:
    """The ``(n, n)`` identity matrix."""
    return eye(n, dtype=dtype)


def linspace(
    start: float,
    stop: float,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: Any = None,
    axis: int = 0,
) -> torch.Tensor | tuple[torch.Tensor, float]:
    """``num`` evenly spaced values from ``start`` to ``stop`` (included when ``endpoint``);
    with ``retstep``, ``(values, step)``. ``start`` and ``stop`` are scalars here."""
    num = check_int("linspace", "num", num, minimum=0)
    canonical_axis("linspace", axis, 1)
    target = _dtype_or(dtype, FLOATX)
    start, stop = float(start), float(stop)
    divisions = (num - 1 if endpoint else num) or 1
    step = (stop - start) / divisions
    values = start + torch.arange(num, dtype=torch.float64) * step
    if endpoint and num > 1:
        values[-1] = stop
    values = values.to(target)
    return (values, step) if retstep else values


def tril(x: Any, k: int = 0) -> torch.Tensor:
    """``x`` with the elements above diagonal ``k`` of its last two axes zeroed."""
    return torch.tril(convert_to_tensor(x), diagonal=k)


def triu(x: Any, k: int = 0) -> torch.Tensor:
    """``x`` with the elements below diagonal ``k`` of its last two axes zeroed."""
    return torch.triu(convert_to_tensor(x), diagonal=k)


# ---------------------------------------------------------------- shapes


def reshape(x: Any, newshape: Any) -> torch.Tensor:
    """``x`` with shape ``newshape`` (one entry may be -1: inferred)."""
    x = convert_to_tensor(x)
    dims = (newshape,) if isinstance(newshape, int) else tuple(int(d) for d in newshape)
    known = math.prod(d for d in dims if d != -1)
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise ValueError(f"reshape: newshape may hold one -1 and sizes >= 0, received {dims}")
    size = x.numel()
    fits = size % known == 0 if -1 in dims and known else size == known
    if not fits:
        raise ValueError(
            f"reshape: cannot reshape an input of shape {tuple(x.shape)} ({size} elements) "
            f"into newshape={dims}"
        )
    return torch.reshape(x, dims)


def ravel(x: Any) -> torch.Tensor:
    """``x`` flattened to one axis."""
    return torch.flatten(convert_to_tensor(x))


def transpose(x: Any, axes: Sequence[int] | None = None) -> torch.Tensor:
    """``x`` with its axes permuted to ``axes`` (reversed when None)."""
    x = convert_to_tensor(x)
    if axes is None:
        return x.permute(*reversed(range(x.ndim)))
    order = canonical_axes("transpose", axes, x.ndim, "axes")
    if order is None or len(order) != x.ndim:
        raise ValueError(
            f"transpose: axes must list each of the {x.ndim} axes of the input once, "
            f"received axes={axes}"
        )
    return x.permute(*order)


def swapaxes(x: Any, axis1: int, axis2: int) -> torch.Tensor:
    """``x`` with ``axis1`` and ``axis2`` exchanged."""
    x = convert_to_tensor(x)
    a = canonical_axis("swapaxes", axis1, x.ndim, "axis1")
    b = canonical_axis("swapaxes", axis2, x.ndim, "axis2")
    return torch.transpose(x, a, b)


def moveaxis(x: Any, source: Any, destination: Any) -> torch.Tensor:
    """``x`` with the axes ``source`` moved to positions ``destination``."""
    x = convert_to_tensor(x)
    src = canonical_axes("moveaxis", source, x.ndim, "source") or ()
    dst = canonical_axes("moveaxis", destination, x.ndim, "destination") or ()
    if len(src) != len(dst):
        raise ValueError(
            f"moveaxis: source and destination need as many axes, received {source} and "
            f"{destination}"
        )
    return torch.movedim(x, src, dst)


def expand_dims(x: Any, axis: int | Sequence[int]) -> torch.Tensor:
    """``x`` with new axes of size 1 at ``axis`` (positions in the result)."""
    x = convert_to_tensor(x)
    axes = canonical_axes("expand_dims", axis, x.ndim + (1 if isinstance(axis, int) else len(axis)))
    for a in sorted(axes or ()):
        x = x.unsqueeze(a)
    return x


def squeeze(x: Any, axis: int | Sequence[int] | None = None) -> torch.Tensor:
    """``x`` without its axes of size 1 (only ``axis``, which must have size 1, if given)."""
    x = convert_to_tensor(x)
    axes = canonical_axes("squeeze", axis, x.ndim)
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(
                f"squeeze: axis {axis} has size {x.shape[a]} in an input of shape "
                f"{tuple(x.shape)}; only axes of size 1 can be squeezed"
            )
    return x.reshape([d for i, d in enumerate(x.shape) if i not in axes])


def broadcast_to(x: Any, shape: Any) -> torch.Tensor:
    """``x`` broadcast (numpy rules) to ``shape``."""
    x = convert_to_tensor(x)
    dims = _shape_arg("broadcast_to", shape)
    try:
        torch.broadcast_shapes(tuple(x.shape), dims)
    except RuntimeError:
        raise ValueError(
            f"broadcast_to: cannot broadcast an input of shape {tuple(x.shape)} to shape {dims}"
        ) from None
    return torch.broadcast_to(x, dims)


def _same_rank(op: str, xs: Sequence[torch.Tensor]) -> None:
    ranks = {t.ndim for t in xs}
    if len(ranks) > 1:
        raise ValueError(
            f"{op}: every input must have the same rank, received shapes "
            f"{[tuple(t.shape) for t in xs]}"
        )


def concatenate(xs: Sequence[Any], axis: int | None = 0) -> torch.Tensor:
    """The tensors ``xs`` joined along the existing ``axis`` (flattened first when None)."""
    if not isinstance(xs, (list, tuple)) or not xs:
        raise ValueError(
            f"concatenate: xs must be a non-empty list of tensors, received {xs!r:.80}"
        )
    parts = tensors(*xs)
    if axis is None:
        return torch.cat([p.reshape(-1) for p in parts])
    _same_rank("concatenate", parts)
    a = canonical_axis("concatenate", axis, parts[0].ndim)
    for p in parts[1:]:
        if [d for i, d in enumerate(p.shape) if i != a] != [
            d for i, d in enumerate(parts[0].shape) if i != a
        ]:
            raise ValueError(
                f"concatenate: shapes must agree except on axis {axis}, received "
                f"{[tuple(t.shape) for t in parts]}"
            )
    return torch.cat(parts, dim=a)


def stack(x: Sequence[Any], axis: int = 0) -> torch.Tensor:
    """The tensors ``x`` (all of one shape) stacked along a new ``axis``."""
    if not isinstance(x, (list, tuple)) or not x:
        raise ValueError(f"stack: x must be a non-empty list of tensors, received {x!r:.80}")
    parts = tensors(*x)
    if len({tuple(p.shape) for p in parts}) > 1:
        raise ValueError(
            f"stack: every input must have the same shape, received {[tuple(p.shape) for p in parts]}"
        )
    return torch.stack(parts, dim=canonical_axis("stack", axis, parts[0].ndim + 1))


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[torch.Tensor]:
    """``x`` cut along ``axis`` into ``indices_or_sections`` equal parts (an int, which must
    divide the axis) or at the given indices."""
    x = convert_to_tensor(x)
    a = canonical_axis("split", axis, x.ndim)
    size = x.shape[a]
    points = np.asarray(convert_to_numpy(indices_or_sections))
    if points.ndim == 0:
        n = check_int("split", "indices_or_sections", points.item(), minimum=1)
        if size % n:
            raise ValueError(
                f"split: axis {axis} of size {size} cannot be split into {n} equal sections"
            )
        return list(torch.split(x, size // n, dim=a))
    cuts = [min(max(int(i) + (size if int(i) < 0 else 0), 0), size) for i in points.reshape(-1)]
    bounds = [0, *cuts, size]
    return [x.narrow(a, lo, max(hi - lo, 0)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def tile(x: Any, repeats: int | Sequence[int]) -> torch.Tensor:
    """``x`` repeated ``repeats[i]`` times along axis i (numpy's ``tile``)."""
    reps = tuple(int(r) for r in np.asarray(convert_to_numpy(repeats)).reshape(-1))
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: repeats must be >= 0, received {repeats}")
    return torch.tile(convert_to_tensor(x), reps)


def repeat(x: Any, repeats: Any, axis: int | None = None) -> torch.Tensor:
    """Each element of ``x`` repeated ``repeats`` times along ``axis`` (of the flattened
    input when None); ``repeats`` is an int or one count per element."""
    x = convert_to_tensor(x)
    if axis is None:
        x, a = x.reshape(-1), 0
    else:
        a = canonical_axis("repeat", axis, x.ndim)
    counts = convert_to_tensor(repeats, device=x.device).to(torch.int64)
    if bool((counts < 0).any()):
        raise ValueError(f"repeat: repeats must be >= 0, received {repeats}")
    if counts.ndim == 1 and counts.numel() == 1:
        counts = counts[0]
    if counts.ndim == 1 and counts.numel() != x.shape[a]:
        raise ValueError(
            f"repeat: repeats has {counts.numel()} counts for an axis of size {x.shape[a]}"
        )
    return torch.repeat_interleave(x, counts, dim=a)


def flip(x: Any, axis: int | Sequence[int] | None = None) -> torch.Tensor:
    """``x`` reversed along ``axis`` (all axes when None)."""
    x = convert_to_tensor(x)
    axes = canonical_axes("flip", axis, x.ndim)
    return torch.flip(x, tuple(range(x.ndim)) if axes is None else axes)


def roll(
    x: Any, shift: int | Sequence[int], axis: int | Sequence[int] | None = None
) -> torch.Tensor:
    """``x`` shifted cyclically by ``shift`` along ``axis`` (flattened when None)."""
    x = convert_to_tensor(x)
    if axis is None:
        return torch.roll(x.reshape(-1), shift).reshape(x.shape)
    axes = canonical_axes("roll", axis, x.ndim) or ()
    return torch.roll(x, shift, axes)


def _pad_index(mode: str, before: int, after: int, size: int) -> torch.Tensor:
    """The source index of each position of one padded axis, for the copying modes."""
    positions = torch.arange(-before, size + after)
    if mode == "edge":
        return positions.clamp(0, size - 1)
    if mode == "wrap":
        return positions % size
    if mode == "symmetric":
        folded = positions % (2 * size)
        return torch.where(folded >= size, 2 * size - 1 - folded, folded)
    if size == 1:  # reflect
        return torch.zeros_like(positions)
    period = 2 * (size - 1)
    folded = positions % period
    return torch.where(folded >= size, period - folded, folded)


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad(
    x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = None
) -> torch.Tensor:
    """``x`` padded by ``pad_width`` (numpy's: ``((before, after), ...)`` per axis, one pair
    for all axes, or one int). ``mode`` is ``"constant"`` (with ``constant_values``, default
    0), ``"edge"``, ``"reflect"``, ``"symmetric"`` or ``"wrap"``."""
    x = convert_to_tensor(x)
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {_PAD_MODES}, received {mode!r}")
    if constant_values is not None and mode != "constant":
        raise ValueError(
            f"pad: constant_values is only for mode='constant', received mode={mode!r}"
        )
    widths = np.asarray(convert_to_numpy(pad_width), dtype=np.int64)
    try:
        widths = np.broadcast_to(widths.reshape(-1, 2) if widths.size == 2 else widths, (x.ndim, 2))
    except ValueError:
        raise ValueError(
            f"pad: pad_width must give (before, after) for each of the {x.ndim} axes, received "
            f"{pad_width}"
        ) from None
    if (widths < 0).any():
        raise ValueError(f"pad: pad_width must be >= 0, received {pad_width}")
    if mode == "constant":
        value = 0 if constant_values is None else constant_values
        flat = [int(w) for pair in reversed(widths.tolist()) for w in pair]
        if x.dtype == torch.bool:
            return torch.nn.functional.pad(x.to(torch.uint8), flat, value=int(value)).bool()
        return torch.nn.functional.pad(x, flat, value=value)
    for axis, (before, after) in enumerate(widths.tolist()):
        if before or after:
            if x.shape[axis] == 0:
                raise ValueError(f"pad: mode={mode!r} cannot pad the empty axis {axis}")
            index = _pad_index(mode, before, after, x.shape[axis]).to(x.device)
            x = torch.index_select(x, axis, index)
    return x


# ---------------------------------------------------------------- indexing


def _check_indices(op: str, indices: torch.Tensor, size: int) -> torch.Tensor:
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise TypeError(f"{op}: indices must be integers, received dtype {indices.dtype}")
    if indices.numel() and (int(indices.min()) < -size or int(indices.max()) >= size):
        raise ValueError(
            f"{op}: indices must be in [{-size}, {size}) for an axis of size {size}, received "
            f"values from {int(indices.min())} to {int(indices.max())}"
        )
    return torch.where(indices < 0, indices + size, indices).to(torch.int64)


def take(x: Any, indices: Any, axis: int | None = None) -> torch.Tensor:
    """The elements of ``x`` at ``indices`` along ``axis`` (of the flattened input when
    None); the result has ``indices``' shape in place of that axis. Negative indices count
    from the end."""
    x, idx = tensors(x, indices)
    if axis is None:
        x, a = x.reshape(-1), 0
    else:
        a = canonical_axis("take", axis, x.ndim)
    idx = _check_indices("take", idx, x.shape[a])
    out = torch.index_select(x, a, idx.reshape(-1))
    return out.reshape((*x.shape[:a], *idx.shape, *x.shape[a + 1 :]))


def take_along_axis(x: Any, indices: Any, axis: int | None = None) -> torch.Tensor:
    """The elements of ``x`` at ``indices`` along ``axis``, matched position by position on
    the other axes (which broadcast, numpy's ``take_along_axis``)."""
    x, idx = tensors(x, indices)
    if axis is None:
        x, a = x.reshape(-1), 0
        idx = idx.reshape(-1)
    else:
        a = canonical_axis("take_along_axis", axis, x.ndim)
    if idx.ndim != x.ndim:
        raise ValueError(
            f"take_along_axis: indices must have the rank of x ({x.ndim}), received indices of "
            f"shape {tuple(idx.shape)}"
        )
    idx = _check_indices("take_along_axis", idx, x.shape[a])
    x_shape, idx_shape = list(x.shape), list(idx.shape)
    x_shape[a], idx_shape[a] = 1, 1
    try:
        common = list(torch.broadcast_shapes(tuple(x_shape), tuple(idx_shape)))
    except RuntimeError:
        raise ValueError(
            f"take_along_axis: x of shape {tuple(x.shape)} and indices of shape "
            f"{tuple(idx.shape)} do not broadcast outside axis {axis}"
        ) from None
    x_target, idx_target = list(common), list(common)
    x_target[a], idx_target[a] = x.shape[a], idx.shape[a]
    return torch.gather(x.expand(x_target), a, idx.expand(idx_target))


def where(
    condition: Any, x1: Any = None, x2: Any = None
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``x1`` where ``condition`` holds, else ``x2`` (all three broadcast). With only
    ``condition``: the indices of its true elements, one tensor per axis."""
    if (x1 is None) != (x2 is None):
        raise ValueError("where: give both x1 and x2, or neither")
    if x1 is None:
        return torch.nonzero(convert_to_tensor(condition), as_tuple=True)
    cond, a, b = tensors(condition, x1, x2)
    return torch.where(cond.to(torch.bool), a, b)
