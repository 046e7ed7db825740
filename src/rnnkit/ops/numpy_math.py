"""Numpy-like maths: elementwise ops, comparisons, logical ops, reductions, products.

Binary ops broadcast as numpy does. Dtypes follow ``keras.ops`` on its torch backend, op by
op (see :mod:`rnnkit.ops._dtypes`): ``add``/``multiply``/comparisons use torch's promotion,
``maximum``/``minimum``/``floor_divide``/``matmul``/``dot`` Keras' result type. Maths that
only make sense on reals (``exp``, ``sqrt``, ``mean``, ``divide``) give ints and bools as
``float32``. Reductions take ``axis`` (None: all axes; an int or a tuple; negative counts
from the end) and ``keepdims`` (numpy's meaning, also for ``axis=None``). Sums of bools and
8/16-bit ints give ``int32``; ``argmax``/``argmin`` give ``int32``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rnnkit.ops._axes import canonical_axes, canonical_axis
from rnnkit.ops._dtypes import FLOATX, is_float, result_type, to_torch_dtype
from rnnkit.ops.core import convert_to_tensor, promoted, tensors

Axis = int | Sequence[int] | None

__all__ = [
    "abs", "absolute", "add", "all", "amax", "amin", "any", "argmax", "argmin", "ceil", "clip", "cos", "count_nonzero",
    "cumprod", "cumsum", "divide", "dot", "einsum", "equal", "exp", "expm1", "floor",
    "floor_divide", "greater", "greater_equal", "isfinite", "isinf", "isnan", "less",
    "less_equal", "log", "log1p", "log2", "log10", "logical_and", "logical_not", "logical_or",
    "logical_xor", "matmul", "max", "maximum", "mean", "min", "minimum", "mod", "multiply",
    "negative", "not_equal", "outer", "power", "prod", "reciprocal", "round", "sign", "sin",
    "sqrt", "square", "std", "subtract", "sum", "tanh", "tensordot", "true_divide", "var",
]  # fmt: skip


# ---------------------------------------------------------------- elementwise


def _torch_binary(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], doc: str
) -> Callable[..., torch.Tensor]:
    """A binary op computed in torch's promotion of the two inputs."""

    def op(x1: Any, x2: Any) -> torch.Tensor:
        a, b = tensors(x1, x2)
        return fn(a, b)

    op.__doc__ = doc
    return op


def _keras_binary(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], doc: str
) -> Callable[..., torch.Tensor]:
    """A binary op computed in Keras' result type of the two inputs."""

    def op(x1: Any, x2: Any) -> torch.Tensor:
        a, b = promoted(x1, x2)
        return fn(a, b)

    op.__doc__ = doc
    return op


def _float_input(x: Any) -> torch.Tensor:
    """``x`` as a tensor, ints and bools as float32."""
    x = convert_to_tensor(x)
    return x if is_float(x.dtype) or x.dtype.is_complex else x.to(FLOATX)


def _typed(value: Any, tensor: torch.Tensor) -> Any:
    """A Python scalar stays weak in :func:`result_type`; anything else is its tensor."""
    return value if isinstance(value, (bool, int, float)) else tensor


add = _torch_binary(torch.add, "``x1 + x2`` (bool + bool is ``or``).")
multiply = _torch_binary(torch.multiply, "``x1 * x2`` (bool * bool is ``and``).")
power = _torch_binary(torch.pow, "``x1 ** x2``.")
divide = _torch_binary(torch.divide, "``x1 / x2`` (true division: ints give float32).")
true_divide = divide
maximum = _keras_binary(torch.maximum, "The elementwise larger of ``x1`` and ``x2``.")
minimum = _keras_binary(torch.minimum, "The elementwise smaller of ``x1`` and ``x2``.")
equal = _torch_binary(torch.eq, "``x1 == x2`` (bool).")
not_equal = _torch_binary(torch.ne, "``x1 != x2`` (bool).")
greater = _torch_binary(torch.gt, "``x1 > x2`` (bool).")
greater_equal = _torch_binary(torch.ge, "``x1 >= x2`` (bool).")
less = _torch_binary(torch.lt, "``x1 < x2`` (bool).")
less_equal = _torch_binary(torch.le, "``x1 <= x2`` (bool).")
logical_and = _torch_binary(torch.logical_and, "``x1 and x2`` elementwise (nonzero is true).")
logical_or = _torch_binary(torch.logical_or, "``x1 or x2`` elementwise (nonzero is true).")
logical_xor = _torch_binary(torch.logical_xor, "``x1 xor x2`` elementwise (nonzero is true).")


def subtract(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 - x2`` (a bool operand takes the other's dtype)."""
    a, b = tensors(x1, x2)
    if a.dtype == torch.bool:
        a = a.to(b.dtype)
    if b.dtype == torch.bool:
        b = b.to(a.dtype)
    return torch.subtract(a, b)


def floor_divide(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 // x2`` (rounded toward minus infinity), in Keras' result type."""
    a, b = tensors(x1, x2)
    return torch.floor_divide(a, b).to(result_type(_typed(x1, a), _typed(x2, b)))


def mod(x1: Any, x2: Any) -> torch.Tensor:
    """``x1 % x2`` with the sign of ``x2`` (numpy's ``mod``)."""
    a, b = tensors(x1, x2)
    if torch.result_type(a, b) == torch.bool:
        a, b = a.to(torch.int32), b.to(torch.int32)
    return torch.remainder(a, b)


def logical_not(x: Any) -> torch.Tensor:
    """``not x`` elementwise (nonzero is true)."""
    return torch.logical_not(convert_to_tensor(x))


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


def _rounded_float(x: Any) -> torch.Tensor:
    x = convert_to_tensor(x)
    return x.to(FLOATX if x.dtype == torch.int64 else result_type(x, float))


def floor(x: Any) -> torch.Tensor:
    """The largest integer <= x, as a float."""
    return torch.floor(_rounded_float(x))


def ceil(x: Any) -> torch.Tensor:
    """The smallest integer >= x, as a float."""
    return torch.ceil(_rounded_float(x))


def round(x: Any, decimals: int = 0) -> torch.Tensor:
    """``x`` rounded to ``decimals`` places, halves to even (ints stay ints)."""
    x = convert_to_tensor(x)
    if not is_float(x.dtype):
        return torch.round(x.to(FLOATX), decimals=decimals).to(x.dtype)
    return torch.round(x, decimals=decimals)


def clip(x: Any, x_min: Any, x_max: Any) -> torch.Tensor:
    """``x`` limited to ``[x_min, x_max]`` (bools as int32; float bounds make an int ``x``
    float32, torch's promotion as in Keras)."""
    x = convert_to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    low, high = (convert_to_tensor(v, device=x.device) for v in (x_min, x_max))
    return torch.clamp(x, min=low, max=high)


def isnan(x: Any) -> torch.Tensor:
    """True where ``x`` is NaN."""
    return torch.isnan(convert_to_tensor(x))


def isinf(x: Any) -> torch.Tensor:
    """True where ``x`` is +-infinity."""
    return torch.isinf(convert_to_tensor(x))


def isfinite(x: Any) -> torch.Tensor:
    """True where ``x`` is neither NaN nor infinite."""
    return torch.isfinite(convert_to_tensor(x))


# ---------------------------------------------------------------- reductions


def _dims(op: str, x: torch.Tensor, axis: Axis) -> tuple[int, ...]:
    axes = canonical_axes(op, axis, x.ndim)
    return tuple(range(x.ndim)) if axes is None else axes


def _reduce(
    fn: Callable[..., torch.Tensor], x: torch.Tensor, dims: tuple[int, ...], keepdims: bool
) -> torch.Tensor:
    """``fn`` over ``dims`` (none: ``x`` itself), keeping them as size 1 when ``keepdims``."""
    if not dims:
        return x
    return fn(x, dim=dims, keepdim=keepdims)


def _small_int_to_int32(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.bool, torch.uint8, torch.int8, torch.int16):
        return torch.int32
    return dtype


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The sum over ``axis`` (bools and 8/16-bit ints give int32)."""
    x = convert_to_tensor(x)
    out = _reduce(torch.sum, x, _dims("sum", x, axis), keepdims)
    return out.to(_small_int_to_int32(x.dtype))


def prod(x: Any, axis: Axis = None, keepdims: bool = False, dtype: Any = None) -> torch.Tensor:
    """The product over ``axis`` (in Keras' result type: bools and small ints as int32)."""
    x = convert_to_tensor(x)
    target = _small_int_to_int32(result_type(x.dtype)) if dtype is None else to_torch_dtype(dtype)
    out = x.to(target)
    for d in sorted(_dims("prod", x, axis), reverse=True):
        out = torch.prod(out, dim=d, keepdim=keepdims)
    return out.to(target)


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The mean over ``axis`` (ints and bools give float32)."""
    x = convert_to_tensor(x)
    compute = result_type(x.dtype, torch.float32)
    target = compute if not is_float(x.dtype) else x.dtype
    return _reduce(torch.mean, x.to(compute), _dims("mean", x, axis), keepdims).to(target)


def var(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The (population) variance over ``axis``."""
    x = convert_to_tensor(x)
    dims = _dims("var", x, axis)
    target = result_type(x.dtype, float)
    if not dims:
        return torch.zeros_like(x, dtype=target)
    compute = x.to(result_type(x.dtype, torch.float32))
    return torch.var(compute, dim=dims, keepdim=keepdims, correction=0).to(target)


def std(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The (population) standard deviation over ``axis`` (ints and bools give float32)."""
    x = _float_input(x)
    dims = _dims("std", x, axis)
    if not dims:
        return torch.zeros_like(x)
    return torch.std(x, dim=dims, keepdim=keepdims, correction=0)


def _extreme(
    op: str, fn: Callable[..., torch.Tensor], x: Any, axis: Axis, keepdims: bool, initial: Any
) -> torch.Tensor:
    x = convert_to_tensor(x)
    dims = _dims(op, x, axis)
    if x.numel() == 0 and initial is None:
        raise ValueError(
            f"{op}: cannot reduce an empty input of shape {tuple(x.shape)} without initial"
        )
    out = _reduce(fn, x, dims, keepdims)
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


def amax(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The largest element over ``axis`` (``max`` without ``initial``)."""
    return _extreme("amax", torch.amax, x, axis, keepdims, None)


def amin(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """The smallest element over ``axis`` (``min`` without ``initial``)."""
    return _extreme("amin", torch.amin, x, axis, keepdims, None)


def count_nonzero(x: Any, axis: Axis = None) -> torch.Tensor:
    """The number of nonzero elements over ``axis``, as int32."""
    x = convert_to_tensor(x)
    dims = _dims("count_nonzero", x, axis)
    return torch.count_nonzero(x, dim=dims).to(torch.int32)


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
        return (out.reshape([1] * x.ndim) if keepdims else out).to(torch.int32)
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
    return _reduce(torch.any, x, _dims("any", x, axis), keepdims)


def all(x: Any, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
    """True where every element over ``axis`` is nonzero."""
    x = convert_to_tensor(x).to(torch.bool)
    return _reduce(torch.all, x, _dims("all", x, axis), keepdims)


def _cumulative(
    op: str, fn: Callable[..., torch.Tensor], x: Any, axis: int | None, dtype: Any
) -> torch.Tensor:
    x = convert_to_tensor(x)
    if axis is None:
        x, a = x.reshape(-1), 0
    else:
        a = canonical_axis(op, axis, x.ndim)
    target = result_type(x.dtype if dtype is None else to_torch_dtype(dtype))
    if target == torch.bool:
        target = torch.int32
    return fn(x, dim=a, dtype=target)


def cumsum(x: Any, axis: int | None = None, dtype: Any = None) -> torch.Tensor:
    """Running sums along ``axis`` (of the flattened input when None)."""
    return _cumulative("cumsum", torch.cumsum, x, axis, dtype)


def cumprod(x: Any, axis: int | None = None, dtype: Any = None) -> torch.Tensor:
    """Running products along ``axis`` (of the flattened input when None)."""
    return _cumulative("cumprod", torch.cumprod, x, axis, dtype)


# ---------------------------------------------------------------- products


def _product_inputs(x1: Any, x2: Any) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    """Both inputs in a float compute dtype, and the Keras result dtype to cast back to."""
    a, b = tensors(x1, x2)
    result = result_type(a, b)
    compute = result_type(result, float)
    return a.to(compute), b.to(compute), result


def matmul(x1: Any, x2: Any) -> torch.Tensor:
    """The matrix product of the last two axes, leading axes broadcast (numpy's ``matmul``;
    a 1-D operand is a vector). Two int8 inputs give int32.

    Shapes: ``(..., n, k)`` and ``(..., k, m)`` -> ``(..., n, m)``.
    """
    a, b = tensors(x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: inputs must have rank >= 1, received shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if a.shape[-1] != inner_b:
        raise ValueError(
            f"matmul: the last axis of x1 ({a.shape[-1]}) must equal the "
            f"{'second-to-last' if b.ndim > 1 else 'only'} axis of x2 ({inner_b}); received "
            f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    both_int8 = a.dtype == torch.int8 and b.dtype == torch.int8
    result = torch.int32 if both_int8 else result_type(a, b)
    compute = FLOATX if result == torch.bool else result
    return torch.matmul(a.to(compute), b.to(compute)).to(result)


def dot(x1: Any, x2: Any) -> torch.Tensor:
    """numpy's ``dot``: a product when either input is a scalar, ``matmul`` for vectors and
    matrices, and for an N-D ``x1`` and M-D ``x2`` (M >= 2) a sum over the last axis of
    ``x1`` and the second-to-last axis of ``x2``:
    ``dot(a, b)[i, j, k, m] = sum(a[i, j, :] * b[k, :, m])``.

    (Keras' torch backend batches the leading axes instead when both inputs have rank >= 3;
    this follows Keras' documentation and numpy.)
    """
    a, b, result = _product_inputs(x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        return (a * b).to(result)
    inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if a.shape[-1] != inner_b:
        raise ValueError(
            f"dot: the last axis of x1 ({a.shape[-1]}) must equal the "
            f"{'second-to-last' if b.ndim > 1 else 'only'} axis of x2 ({inner_b}); received "
            f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if b.ndim <= 2:
        return torch.matmul(a, b).to(result)
    return torch.tensordot(a, b, dims=([a.ndim - 1], [b.ndim - 2])).to(result)


def tensordot(x1: Any, x2: Any, axes: Any = 2) -> torch.Tensor:
    """The sum of products over ``axes``: an int n pairs the last n axes of ``x1`` with the
    first n of ``x2``; two lists name the paired axes."""
    a, b, result = _product_inputs(x1, x2)
    if isinstance(axes, int):
        if not 0 <= axes <= builtins.min(a.ndim, b.ndim):
            raise ValueError(
                f"tensordot: axes={axes} is more than the ranks of the inputs "
                f"({a.ndim} and {b.ndim})"
            )
        return torch.tensordot(a, b, dims=axes).to(result)
    first, second = axes
    dims_a = list(canonical_axes("tensordot", first, a.ndim, "axes") or ())
    dims_b = list(canonical_axes("tensordot", second, b.ndim, "axes") or ())
    if [a.shape[d] for d in dims_a] != [b.shape[d] for d in dims_b]:
        raise ValueError(
            f"tensordot: the paired axes {axes} have sizes {[a.shape[d] for d in dims_a]} and "
            f"{[b.shape[d] for d in dims_b]}, which differ"
        )
    return torch.tensordot(a, b, dims=(dims_a, dims_b)).to(result)


def outer(x1: Any, x2: Any) -> torch.Tensor:
    """The outer product of the flattened inputs."""
    a, b = tensors(x1, x2)
    return torch.outer(a.reshape(-1), b.reshape(-1))


def einsum(subscripts: str, *operands: Any) -> torch.Tensor:
    """Einstein summation over ``operands`` as written in ``subscripts``
    (``einsum("bij,bjk->bik", a, b)``); int8 operands give int32."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a str, received {subscripts!r}")
    parts = tensors(*operands)
    if parts and builtins.all(p.dtype == torch.int8 for p in parts):
        parts = [p.to(torch.int32) for p in parts]
    try:
        return torch.einsum(subscripts, *parts)
    except RuntimeError as error:
        shapes = [tuple(p.shape) for p in parts]
        raise ValueError(
            f"einsum: subscripts {subscripts!r} do not fit operands of shapes {shapes}: {error}"
        ) from None
