"""Ops from ``keras.ops.math`` and ``keras.ops.linalg`` used by RNN and attention code:
``top_k``, ``logsumexp``, ``rsqrt``, ``erf``, ``norm``, ``sort``, ``argsort``."""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.ops._axes import canonical_axes, canonical_axis, check_int
from rnnkit.ops._dtypes import FLOATX, result_type
from rnnkit.ops.core import convert_to_tensor
from rnnkit.ops.numpy_math import Axis, _float_input

__all__ = ["argsort", "erf", "logsumexp", "norm", "rsqrt", "sort", "top_k"]


def top_k(x: Any, k: int, sorted: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of the last axis of ``x`` and their indices,
    ``(values, indices)``, largest first when ``sorted``.

    Shapes: ``x`` ``(..., n)`` -> values and indices ``(..., k)``, ``k <= n``.
    """
    x = convert_to_tensor(x)
    k = check_int("top_k", "k", k, minimum=0)
    if x.ndim == 0:
        raise ValueError("top_k: x must have rank >= 1, received a scalar")
    if k > x.shape[-1]:
        raise ValueError(f"top_k: k={k} is larger than the last axis of x (shape {tuple(x.shape)})")
    values, indices = torch.topk(x, k, dim=-1, largest=True, sorted=sorted)
    return values, indices


def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """``log(sum(exp(x)))`` over ``axis``, computed without overflow."""
    x = _float_input(x)
    axes = canonical_axes("logsumexp", axis, x.ndim)
    dims = tuple(range(x.ndim)) if axes is None else axes
    return torch.logsumexp(x, dim=dims, keepdim=keepdims)


def rsqrt(x: Any) -> torch.Tensor:
    """``1 / sqrt(x)``."""
    return torch.rsqrt(_float_input(x))


def erf(x: Any) -> torch.Tensor:
    """The error function."""
    return torch.erf(_float_input(x))


def norm(x: Any, ord: Any = None, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """numpy's ``linalg.norm``: the 2-norm of the flattened input by default; a vector norm
    over one axis, or a matrix norm (``"fro"``, ``"nuc"``, 1, 2, ...) over two. Computed in
    Keras' result type: float32 for ints and for float64."""
    x = convert_to_tensor(x)
    x = x.to(FLOATX if x.dtype == torch.int64 else result_type(x, float))  # as Keras
    axes = canonical_axes("norm", axis, x.ndim)
    if axes is not None and len(axes) not in (1, 2):
        raise ValueError(f"norm: axis must name one or two axes, received axis={axis}")
    if axes is None and ord is None:
        out = torch.linalg.vector_norm(x, dim=None)
        return out.reshape([1] * x.ndim) if keepdims else out
    if axes is None:
        axes = tuple(range(x.ndim))
    if len(axes) == 1:
        return torch.linalg.vector_norm(
            x, ord=2 if ord is None else ord, dim=axes[0], keepdim=keepdims
        )
    return torch.linalg.matrix_norm(
        x, ord="fro" if ord is None else ord, dim=axes, keepdim=keepdims
    )


def sort(x: Any, axis: int = -1) -> torch.Tensor:
    """``x`` sorted ascending along ``axis``."""
    x = convert_to_tensor(x)
    return torch.sort(x, dim=canonical_axis("sort", axis, x.ndim), stable=True).values


def argsort(x: Any, axis: int = -1) -> torch.Tensor:
    """The indices (int32) that sort ``x`` ascending along ``axis`` (stable)."""
    x = convert_to_tensor(x)
    order = torch.argsort(x, dim=canonical_axis("argsort", axis, x.ndim), stable=True)
    return order.to(torch.int32)
