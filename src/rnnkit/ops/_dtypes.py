"""Dtype names and Keras' type promotion, in one place for every op.

A dtype argument may be a Keras name (``"float32"``, ``"int32"``, ``"bool"``), a torch dtype,
a numpy dtype or the Python types ``float``/``int``/``bool`` (``float32``, ``int32``, ``bool``,
as Keras reads them).

Two promotion rules, as ``keras.ops`` on its torch backend uses them:

- ``result_type`` (Keras' lattice, the JAX one, then 64-bit folded to 32-bit as JAX does by
  default): ``bool`` < unsigned < signed ints < floats; ``float16`` with ``bfloat16`` is
  ``float32``; an int with a float is the float; ``uint8`` with ``int8`` is ``int16``;
  any ``int64`` result becomes ``int32`` and ``float64`` ``float32``. Python scalars are
  *weak*: ``x + 1`` keeps ``x``'s dtype, an int tensor with ``1.5`` is ``float32``. Used by
  ``maximum``, ``minimum``, ``floor_divide``, ``matmul``, ``dot``, ``prod``, ``cumsum``, ...
- torch's own promotion, after converting Python scalars to tensors (``add``, ``subtract``,
  ``multiply``, ``divide``, ``power``, comparisons, ``where``, ``concatenate``): 64-bit
  kept, and a 0-d tensor does not widen a tensor of the same kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

FLOATX = torch.float32

_BY_NAME: dict[str, torch.dtype] = {
    "bool": torch.bool,
    "uint8": torch.uint8,
    "uint16": torch.uint16,
    "uint32": torch.uint32,
    "uint64": torch.uint64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
_NAME_OF = {dtype: name for name, dtype in _BY_NAME.items()}
_BITS = {
    torch.uint8: 8,
    torch.uint16: 16,
    torch.uint32: 32,
    torch.uint64: 64,
    torch.int8: 8,
    torch.int16: 16,
    torch.int32: 32,
    torch.int64: 64,
    torch.float16: 16,
    torch.bfloat16: 16,
    torch.float32: 32,
    torch.float64: 64,
}
_UNSIGNED = (torch.uint8, torch.uint16, torch.uint32, torch.uint64)
_SIGNED_BY_BITS = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}


def to_torch_dtype(dtype: Any, argument: str = "dtype") -> torch.dtype:
    """The torch dtype for a Keras dtype name, torch/numpy dtype or Python type."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is float:
        return FLOATX
    if dtype is int:
        return torch.int32
    if dtype is bool:
        return torch.bool
    if isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise ValueError(
                f"{argument}: expected a dtype name such as 'float32', a torch or numpy dtype, "
                f"received {dtype!r}"
            ) from None
    if name not in _BY_NAME:
        raise ValueError(f"{argument}: unknown dtype {dtype!r}; expected one of {sorted(_BY_NAME)}")
    return _BY_NAME[name]


def dtype_name(dtype: torch.dtype) -> str:
    """Keras' name for a torch dtype (``torch.float32`` -> ``"float32"``)."""
    return _NAME_OF[dtype]


def is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point


def is_int(dtype: torch.dtype) -> bool:
    return dtype != torch.bool and not dtype.is_floating_point and not dtype.is_complex


def _join(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    """The least upper bound of two tensor dtypes on Keras' lattice."""
    if a == b:
        return a
    if a == torch.bool:
        return b
    if b == torch.bool:
        return a
    if a.is_complex or b.is_complex:
        return torch.promote_types(a, b)
    if a.is_floating_point and b.is_floating_point:
        if {a, b} == {torch.float16, torch.bfloat16}:
            return torch.float32
        return a if _BITS[a] > _BITS[b] else b
    if a.is_floating_point:
        return a
    if b.is_floating_point:
        return b
    a_unsigned, b_unsigned = a in _UNSIGNED, b in _UNSIGNED
    if a_unsigned == b_unsigned:
        return a if _BITS[a] > _BITS[b] else b
    unsigned, signed = (a, b) if a_unsigned else (b, a)
    if _BITS[signed] > _BITS[unsigned]:
        return signed
    if _BITS[unsigned] < 64:
        return _SIGNED_BY_BITS[2 * _BITS[unsigned]]
    return FLOATX  # uint64 with a signed int: no int holds both (Keras gives floatx)


_FOLD_64 = {torch.int64: torch.int32, torch.float64: torch.float32, torch.uint64: torch.uint32}


def result_type(*values: Any) -> torch.dtype:
    """Keras' result dtype for ``values`` (tensors, arrays and dtypes are strong, Python
    scalars and the types ``int``/``float``/``bool`` weak); see the module docstring."""
    strong: list[torch.dtype] = []
    weak: list[type] = []
    for value in values:
        if value is bool or value is int or value is float:
            weak.append(value)
        elif isinstance(value, torch.Tensor):
            strong.append(value.dtype)
        elif isinstance(value, bool):
            weak.append(bool)
        elif isinstance(value, int):
            weak.append(int)
        elif isinstance(value, float):
            weak.append(float)
        elif isinstance(value, complex):
            strong.append(torch.complex64)
        elif isinstance(value, (torch.dtype, str, np.dtype)):
            strong.append(to_torch_dtype(value))
        else:
            strong.append(to_torch_dtype(np.asarray(value).dtype))
    if strong:
        result = strong[0]
        for other in strong[1:]:
            result = _join(result, other)
        if float in weak and not result.is_floating_point and not result.is_complex:
            result = FLOATX
        elif int in weak and result == torch.bool:
            result = torch.int32
    elif float in weak:
        result = FLOATX
    elif int in weak:
        result = torch.int32
    else:
        result = torch.bool
    return _FOLD_64.get(result, result)
