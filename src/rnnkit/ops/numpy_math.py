"""Numpy-like maths: elementwise ops, comparisons, logical ops, reductions, products.

Binary ops broadcast as numpy does and compute in the inputs' common dtype (Keras'
promotion, :mod:`rnnkit.ops._dtypes`); ops that only make sense on reals (``exp``,
``sqrt``, ``mean``, ``divide``, ...) compute ints and bools as ``float32``. Reductions take
``axis`` (None: all axes; an int or a tuple; negative counts from the end) and ``keepdims``.
Sums of ``bool`` and small ints give ``int32``; ``argmax``/``argmin`` give ``int32``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from rnnkit.ops._axes import canonical_axes, canonical_axis
from rnnkit.ops._dtypes import FLOATX, is_float, to_torch_dtype
from rnnkit.ops.core import convert_to_tensor, promoted, tensors

Axis = int | Sequence[int] | None

__all__ = [
    "abs", "absolute", "add", "all", "any", "argmax", "argmin", "ceil", "clip", "cos",
    "cumprod", "cumsum", "divide", "dot", "einsum", "equal", "exp", "expm1", "floor",
    "floor_divide", "greater", "greater_equal", "isfinite", "isinf", "isnan", "less",
    "less_equal", "log", "log1p", "log2", "log10", "logical_and", "logical_not", "logical_or",
    "logical_xor", "matmul", "max", "maximum", "mean", "min", "minimum", "mod", "multiply",
    "negative", "not_equal", "outer", "power", "prod", "reciprocal", "round", "sign", "sin",
    "sqrt", "square", "std", "subtract", "sum", "tanh", "tensordot", "true_divide", "var",
]  # fmt: skip


# ---------------------------------------------------------------- elementwise


def _binary(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Callable[..., torch.Tensor]:
    def op(x1: Any, x2: Any) -> torch.Tensor:
        a, b = promoted(x1, x2)
        return fn(a, b)

    return op


def _float_input(x: Any) -> torch.Tensor:
    x = convert_to_tensor(x)
    return x if is_float(x.dtype) or x.dtype.is_complex else x.to(FLOATX)


def add(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 + x2``."""
    a, b = promoted(x1, x2)
    return torch.logical_or(a, b) if a.dtype == torch.bool else a + b


def subtract(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 - x2``."""
    a, b = promoted(x1, x2)
    return torch.logical_xor(a, b) if a.dtype == torch.bool else a - b


def multiply(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 * x2``."""
    a, b = promoted(x1, x2)
    return torch.logical_and(a, b) if a.dtype == torch.bool else a * b


def divide(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 / x2`` (true division: ints and bools give float32)."""
    a, b = promoted(x1, x2)
    if not is_float(a.dtype) and not a.dtype.is_complex:
        a, b = a.to(FLOATX), b.to(FLOATX)
    return a / b


true_divide = divide


def floor_divide(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 // x2`` (rounded toward minus infinity)."""
    a, b = promoted(x1, x2)
    return torch.floor_divide(a, b)


def mod(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 % x2`` with the sign of ``x2`` (numpy's ``mod``)."""
    a, b = promoted(x1, x2)
    if a.dtype == torch.bool:
        a, b = a.to(torch.int32), b.to(torch.int32)
    return torch.remainder(a, b)


def power(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 ** x2``."""
    a, b = promoted(x1, x2)
    return torch.pow(a, b)


maximum = _binary(torch.maximum)
maximum.__doc__ = "The elementwise larger of ``x1`` and ``x2``."
minimum = _binary(torch.minimum)
minimum.__doc__ = "The elementwise smaller of ``x1`` and ``x2``."


def negative(x: Any) -> torch.Tensor:
    """``-x``."""
    return torch.negative(convert_to_tensor(x))


def abs(x: Any) -> torch.Tensor:
    """``|x|``."""
    x = convert_to_tensor(x)
    return x if x.dtype == torch.bool else torch.abs(x)


absolute = abs


def sign(x: Any) -> torch.Tensor:
    """-1, 0 or 1 by the sign of each element."""
    return torch.sign(convert_to_tensor(x))


def square(x: Any) -> torch.Tensor:
    """``x * x`` (bools as int32)."""
    x = convert_to_tensor(x)
    return torch.square(x.to(torch.int32) if x.dtype == torch.bool else x)


def reciprocal(x: Any) -> torch.Tensor:
    """``1 / x``."""
    return torch.reciprocal(_float_input(x))


def _unary_float(
    fn: Callable[[torch.Tensor], torch.Tensor], doc: str
) -> Callable[..., torch.Tensor]:
    def op(x: Any) -> torch.Tensor:
        return fn(_float_input(x))

    op.__doc__ = doc
    return op


exp = _unary_float(torch.exp, "``e ** x``.")
expm1 = _unary_float(torch.expm1, "``e ** x - 1``, exact for small x.")
log = _unary_float(torch.log, "The natural logarithm.")
log1p = _unary_float(torch.log1p, "``log(1 + x)``, exact for small x.")
log2 = _unary_float(torch.log2, "The base-2 logarithm.")
log10 = _unary_float(torch.log10, "The base-10 logarithm.")
sqrt = _unary_float(torch.sqrt, "The square root.")
sin = _unary_float(torch.sin, "The sine.")
cos = _unary_float(torch.cos, "The cosine.")
tanh = _unary_float(torch.tanh, "The hyperbolic tangent.")


def _rounding(fn: Callable[[torch.Tensor], torch.Tensor], doc: str) -> Callable[..., torch.Tensor]:
    def op(x: Any) -> torch.Tensor:
        return fn(_float_input(x))

    op.__doc__ = doc
    return op


floor = _rounding(torch.floor, "The largest integer <= x (as a float).")
ceil = _rounding(torch.ceil, "The smallest integer >= x (as a float).")


def round(x: Any, decimals: int = 0) -> torch.Tensor:
    """``x`` rounded to ``decimals`` places, halves to even."""
    x = convert_to_tensor(x)
    if not is_float(x.dtype):
        return x
    return torch.round(x, decimals=decimals)


def clip(x: Any, x_min: Any, x_max: Any) -> torch.Tensor:
    """``x`` limited to ``[x_min, x_max]`` (bools as int32)."""
    x = convert_to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    low, high = (convert_to_tensor(v, device=x.device) for v in (x_min, x_max))
    if not is_float(x.dtype) and (is_float(low.dtype) or is_float(high.dtype)):
        x = x.to(FLOATX)
    return torch.clamp(x, min=low.to(x.dtype), max=high.to(x.dtype))


def isnan(x: Any) -> torch.Tensor:
    """True where ``x`` is NaN."""
    return torch.isnan(convert_to_tensor(x))


def isinf(x: Any) -> torch.Tensor:
    """True where ``x`` is +-infinity."""
    return torch.isinf(convert_to_tensor(x))


def isfinite(x: Any) -> torch.Tensor:
    """True where ``x`` is neither NaN nor infinite."""
    return torch.isfinite(convert_to_tensor(x))


# ---------------------------------------------------------------- comparisons and logic

equal = _binary(torch.eq)
equal.__doc__ = "``x1 == x2`` (bool)."
not_equal = _binary(torch.ne)
not_equal.__doc__ = "``x1 != x2`` (bool)."
greater = _binary(torch.gt)
greater.__doc__ = "``x1 > x2`` (bool)."
greater_equal = _binary(torch.ge)
greater_equal.__doc__ = "``x1 >= x2`` (bool)."
less = _binary(torch.lt)
less.__doc__ = "``x1 < x2`` (bool)."
less_equal = _binary(torch.le)
less_equal.__doc__ = "``x1 <= x2`` (bool)."


def _logical(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], doc: str
) -> Callable[..., torch.Tensor]:
    def op(x1: Any, x2: Any) -> torch.Tensor:
        a, b = tensors(x1, x2)
        return fn(a.to(torch.bool), b.to(torch.bool))

    op.__doc__ = doc
    return op


logical_and = _logical(torch.logical_and, "``x1 and x2``, elementwise (nonzero is true).")
logical_or = _logical(torch.logical_or, "``x1 or x2``, elementwise (nonzero is true).")
logical_xor = _logical(torch.logical_xor, "``x1 xor x2``, elementwise (nonzero is true).")


def logical_not(x: Any) -> torch.Tensor:
    """``not x``, elementwise (nonzero is true)."""
    return torch.logical_not(convert_to_tensor(x).to(torch.bool))


# ---------------------------------------------------------------- reductions


def _dims(op: str, x: torch.Tensor, axis: Axis) -> tuple[int, ...]:
    axes = canonical_axes(op, axis, x.ndim)
    return tuple(range(x.ndim)) if axes is None else axes


def _sum_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.bool, torch.uint8, torch.int8, torch.int16):
        return torch.int32
    return dtype


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The sum over ``axis``."""
    x = convert_to_tensor(x)
    dims = _dims("sum", x, axis)
    if not dims:
        return x.to(_sum_dtype(x.dtype))
    return torch.sum(x, dim=dims, keepdim=keepdims).to(_sum_dtype(x.dtype))


def prod(x: Any, axis: Axis = None, keepdims: bool = False, dtype: Any = None) -> torch.Tensor:
    """The product over ``axis``."""
    x = convert_to_tensor(x)
    dims = _dims("prod", x, axis)
    target = _sum_dtype(x.dtype) if dtype is None else to_torch_dtype(dtype)
    out = x.to(target)
    for d in sorted(dims, reverse=True):
        out = torch.prod(out, dim=d, keepdim=keepdims)
    return out


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The mean over ``axis`` (ints and bools as float32)."""
    x = _float_input(x)
    dims = _dims("mean", x, axis)
    return torch.mean(x, dim=dims, keepdim=keepdims) if dims else x


def var(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The (population) variance over ``axis``."""
    x = _float_input(x)
    dims = _dims("var", x, axis)
    return torch.var(x, dim=dims, keepdim=keepdims, correction=0) if dims else x * 0


def std(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The (population) standard deviation over ``axis``."""
    x = _float_input(x)
    dims = _dims("std", x, axis)
    return torch.std(x, dim=dims, keepdim=keepdims, correction=0) if dims else x * 0


def _extreme(
    op: str, fn: Callable[..., torch.Tensor], x: Any, axis: Axis, keepdims: bool, initial: Any
) -> torch.Tensor:
    x = convert_to_tensor(x)
    dims = _dims(op, x, axis)
    if x.numel() == 0 and initial is None:
        raise ValueError(
            f"{op}: cannot reduce an empty input of shape {tuple(x.shape)} without initial"
        )
    out = fn(x, dim=dims, keepdim=keepdims) if dims else x
    if initial is not None:
        bound = torch.as_tensor(initial, dtype=x.dtype, device=x.device)
        out = torch.maximum(out, bound) if op == "max" else torch.minimum(out, bound)
    return out


def max(x: Any, axis: Axis = None, keepdims: bool = False, initial: Any = None) -> torch.Tensor:
    """The largest element over ``axis`` (and ``initial``, when given)."""
    return _extreme("max", torch.amax, x, axis, keepdims, initial)


def min(x: Any, axis: Axis = None, keepdims: bool = False, initial: Any = None) -> torch.Tensor:
    """The smallest element over ``axis`` (and ``initial``, when given)."""
    return _extreme("min", torch.amin, x, axis, keepdims, initial)


def _arg(
    op: str, fn: Callable[..., torch.Tensor], x: Any, axis: int | None, keepdims: bool
) -> torch.Tensor:
    x = convert_to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    if x.numel() == 0:
        raise ValueError(f"{op}: the input of shape {tuple(x.shape)} is empty")
    if axis is None:
        out = fn(x.reshape(-1))
        if keepdims:
            out = out.reshape([1] * x.ndim)
        return out.to(torch.int32)
    a = canonical_axis(op, axis, x.ndim)
    return fn(x, dim=a, keepdim=keepdims).to(torch.int32)


def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> torch.Tensor:
    """The index of the (first) largest element along ``axis`` (of the flattened input when
    None), as int32."""
    return _arg("argmax", torch.argmax, x, axis, keepdims)


def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> torch.Tensor:
    """The index of the (first) smallest element along ``axis``, as int32."""
    return _arg("argmin", torch.argmin, x, axis, keepdims)


def any(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """True where any element over ``axis`` is nonzero."""
    x = convert_to_tensor(x).to(torch.bool)
    dims = _dims("any", x, axis)
    return torch.any(x, dim=dims, keepdim=keepdims) if dims else x


def all(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """True where every element over ``axis`` is nonzero."""
    x = convert_to_tensor(x).to(torch.bool)
    dims = _dims("all", x, axis)
    return torch.all(x, dim=dims, keepdim=keepdims) if dims else x


def _cumulative(
    op: str, fn: Callable[..., torch.Tensor], x: Any, axis: int | None, dtype: Any
) -> torch.Tensor:
    x = convert_to_tensor(x)
    target = _sum_dtype(x.dtype) if dtype is None else to_torch_dtype(dtype)
    if axis is None:
        return (
            fn(x.reshape(-1), dim=0).to(target) if target != x.dtype else fn(x.reshape(-1), dim=0)
        )
    a = canonical_axis(op, axis, x.ndim)
    return fn(x.to(target), dim=a)


def cumsum(x: Any, axis: int | None = None, dtype: Any = None) -> torch.Tensor:
    """Running sums along ``axis`` (of the flattened input when None)."""
    return _cumulative("cumsum", torch.cumsum, x, axis, dtype)


def cumprod(x: Any, axis: int | None = None, dtype: Any = None) -> torch.Tensor:
    """Running products along ``axis`` (of the flattened input when None)."""
    return _cumulative("cumprod", torch.cumprod, x, axis, dtype)


# ---------------------------------------------------------------- products


def _product_inputs(op: str, x1: Any, x2: Any) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    a, b = promoted(x1, x2)
    result = a.dtype
    if result == torch.int8:
        result = torch.int32
    if result == torch.bool:
        a, b, result = a.to(torch.int32), b.to(torch.int32), torch.int32
    return a.to(result), b.to(result), result


def matmul(x1: Any, x2: Any) -> torch.Tensor:
    """The matrix product of the last two axes, leading axes broadcast (numpy's ``matmul``;
    a 1-D operand is a vector)."""
    a, b, _ = _product_inputs("matmul", x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: inputs must have rank >= 1, received shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    inner_a = a.shape[-1]
    inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if inner_a != inner_b:
        raise ValueError(
            f"matmul: the last axis of x1 ({inner_a}) must equal the "
            f"{'second-to-last' if b.ndim > 1 else 'only'} axis of x2 ({inner_b}); received "
            f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return torch.matmul(a, b)


def dot(x1: Any, x2: Any) -> torch.Tensor:
    """numpy's ``dot``: a product for scalars, ``matmul`` for vectors and matrices, and for an
    N-D ``x1`` a sum over its last axis and the second-to-last axis of ``x2`` (the last
    when ``x2`` is 1-D)."""
    a, b, _ = _product_inputs("dot", x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if b.ndim <= 2:
        return matmul(a, b)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"dot: the last axis of x1 ({a.shape[-1]}) must equal the second-to-last axis of "
            f"x2 ({b.shape[-2]}); received shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return torch.tensordot(a, b, dims=([a.ndim - 1], [b.ndim - 2]))


def tensordot(x1: Any, x2: Any, axes: Any = 2) -> torch.Tensor:
    """The sum of products over ``axes`` (an int: the last ``axes`` of x1 with the first of
    x2; or two lists of axes)."""
    a, b, _ = _product_inputs("tensordot", x1, x2)
    if isinstance(axes, int):
        return torch.tensordot(a, b, dims=axes)
    first, second = axes
    return torch.tensordot(
        a,
        b,
        dims=(
            list(canonical_axes("tensordot", first, a.ndim, "axes") or ()),
            list(canonical_axes("tensordot", second, b.ndim, "axes") or ()),
        ),
    )


def outer(x1: Any, x2: Any) -> torch.Tensor:
    """The outer product of the flattened inputs."""
    a, b, _ = _product_inputs("outer", x1, x2)
    return torch.outer(a.reshape(-1), b.reshape(-1))


def einsum(subscripts: str, *operands: Any) -> torch.Tensor:
    """Einstein summation over ``operands`` as written in ``subscripts``
    (``einsum("bij,bjk->bik", a, b)``)."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a str, received {subscripts!r}")
    parts = promoted(*operands)
    target = parts[0].dtype
    if target in (torch.int8, torch.bool):
        parts = [p.to(torch.int32) for p in parts]
    try:
        return torch.einsum(subscripts, *parts)
    except RuntimeError as error:
        shapes = [tuple(p.shape) for p in parts]
        raise ValueError(
            f"einsum: subscripts {subscripts!r} do not fit operands of shapes {shapes}: {error}"
        ) from None
