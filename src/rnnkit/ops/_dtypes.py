"""Dtype names and Keras' type promotion, in one place for every op.

A dtype argument may be a Keras name (``"float32"``, ``"int32"``, ``"bool"``), a torch dtype,
a numpy dtype or the Python types ``float``/``int``/``bool`` (``float32``, ``int32``, ``bool``,
as Keras reads them).

Promotion follows Keras' lattice (the JAX one), which agrees with torch's for tensors of the
same kind and differs where torch would not decide as Keras does:

- ``bool`` < unsigned < signed ints < floats; two floats give the wider one and
  ``float16`` with ``bfloat16`` gives ``float32``; an int with a float gives the float
  (``int64`` with ``float16`` is ``float16``); ``uint8`` with ``int8`` gives ``int16``.
- Python scalars are *weak*: ``x + 1`` keeps ``x``'s dtype, ``int_tensor + 1.5`` is
  ``float32`` (Keras' floatx), ``bool_tensor + 1`` is ``int32``.
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


def result_type(*values: Any) -> torch.dtype:
    """The dtype an op on ``values`` computes in: tensors and arrays are strong, Python
    scalars weak (see the module docstring)."""
    strong: list[torch.dtype] = []
    weak: list[type] = []
    for value in values:
        if isinstance(value, torch.Tensor):
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
    elif float in weak:
        return FLOATX
    elif int in weak:
        return torch.int32
    else:
        return torch.bool
    if float in weak and not result.is_floating_point and not result.is_complex:
        return FLOATX
    if int in weak and result == torch.bool:
        return torch.int32
    return result
