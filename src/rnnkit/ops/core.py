"""Core ops: converting to and from tensors, dtypes, shapes, gradients, ``slice``.

Every op in :mod:`rnnkit.ops` accepts tensors, numpy arrays, Python scalars and (nested)
lists and returns torch tensors, as ``keras.ops`` does on its torch backend. Conversion
follows Keras: a Python ``float`` becomes ``float32``, an ``int`` ``int32`` (``int64`` when it
does not fit), a ``bool`` ``bool``; numpy arrays keep their dtype; tensors are used as they
are (same device, graph kept, so gradients flow through every op). Arrays and scalars that
meet a tensor go to that tensor's device; tensors made from a shape (``zeros``, ``arange``,
...) go on torch's default device (``torch.set_default_device``), as rnnkit's layers do.

>>> from rnnkit import ops
>>> ops.convert_to_tensor([1.0, 2.0]).dtype
torch.float32
>>> ops.shape(ops.zeros((2, 3)))
(2, 3)
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rnnkit import tree
from rnnkit.ops._dtypes import FLOATX, dtype_name, result_type, to_torch_dtype
from rnnkit.symbolic import KerasTensor

__all__ = [
    "cast",
    "convert_to_numpy",
    "convert_to_tensor",
    "dtype",
    "is_tensor",
    "ndim",
    "shape",
    "size",
    "slice",
    "slice_update",
    "stop_gradient",
]


def _scalar_dtype(value: Any) -> torch.dtype:
    if isinstance(value, bool):
        return torch.bool
    if isinstance(value, int):
        return torch.int32 if -(2**31) <= value < 2**31 else torch.int64
    if isinstance(value, float):
        return FLOATX
    return torch.complex64


def convert_to_tensor(
    x: Any,
    dtype: Any = None,
    sparse: bool | None = None,
    ragged: bool | None = None,
    *,
    device: Any = None,
) -> torch.Tensor:
    """``x`` as a torch tensor (see the module docstring for the dtype rules).

    Args:
        x: a tensor, numpy array, Python scalar or (nested) list of these.
        dtype: the dtype to cast to, or None to keep/infer it.
        sparse, ragged: Keras' flags; only dense tensors exist here (True is a ValueError).
        device: where a new tensor is made (torch's default device when None); a tensor
            already elsewhere is moved.
    """
    for flag, value in (("sparse", sparse), ("ragged", ragged)):
        if value:
            raise ValueError(
                f"convert_to_tensor: {flag}=True is not supported (dense tensors only)"
            )
    target = None if dtype is None else to_torch_dtype(dtype)
    if any(isinstance(leaf, KerasTensor) for leaf in tree.flatten(x)):
        raise TypeError(
            "convert_to_tensor: received a symbolic KerasTensor (from rnnkit.Input); rnnkit.ops "
            "run on real tensors: call them inside a layer's call(), for example in a custom "
            "Layer placed in the functional model"
        )
    if isinstance(x, torch.Tensor):
        if device is not None and x.device != torch.device(device):
            x = x.to(device)
        return x if target is None else x.to(target)
    if isinstance(x, (bool, int, float, complex)):
        return torch.as_tensor(x, dtype=target or _scalar_dtype(x), device=device)
    if isinstance(x, (list, tuple)):
        leaves = tree.flatten(x)
        if any(isinstance(leaf, torch.Tensor) for leaf in leaves):
            return torch.stack([convert_to_tensor(item, target, device=device) for item in x])
        if (
            target is None
            and leaves
            and all(isinstance(leaf, (bool, int, float)) for leaf in leaves)
        ):
            target = result_type(*leaves)
        elif target is None and not leaves:
            target = FLOATX
    if isinstance(x, str) or (isinstance(x, np.ndarray) and x.dtype.kind in "USO"):
        raise TypeError(f"convert_to_tensor: x must be numeric, received {x!r:.60}")
    array = np.asarray(x)
    if array.dtype.kind in "USO":
        raise TypeError(
            f"convert_to_tensor: x must be numeric, received an array of dtype {array.dtype}"
        )
    if array.dtype == np.uint32:
        array = array.astype(np.int64)  # as Keras' torch backend: torch lacks uint32 maths
    tensor = torch.as_tensor(array, device=device)
    return tensor if target is None else tensor.to(target)


def tensors(*values: Any) -> list[torch.Tensor]:
    """Each value as a tensor, arrays and scalars on the device of the first tensor."""
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), None)
    return [convert_to_tensor(v, device=device) for v in values]


def promoted(*values: Any) -> list[torch.Tensor]:
    """Each value as a tensor of the values' common dtype (Keras' promotion)."""
    common = result_type(*values)
    return [t.to(common) for t in tensors(*values)]


def convert_to_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array (detached, on the CPU; bfloat16 as float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def is_tensor(x: Any) -> bool:
    """True for a torch tensor."""
    return isinstance(x, torch.Tensor)


def standardize_dtype(dtype: Any) -> str:
    """Keras' name for a dtype: ``standardize_dtype(torch.float32) == "float32"``."""
    return dtype_name(to_torch_dtype(dtype))


def dtype(x: Any) -> str:
    """The Keras name of ``x``'s dtype."""
    return dtype_name(convert_to_tensor(x).dtype)


def cast(x: Any, dtype: Any) -> torch.Tensor:
    """``x`` as a tensor of ``dtype`` (floats to ints truncate toward zero)."""
    return convert_to_tensor(x).to(to_torch_dtype(dtype))


def shape(x: Any) -> tuple[int, ...]:
    """The shape of ``x`` as a tuple of ints."""
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    return tuple(np.shape(x))


def ndim(x: Any) -> int:
    """The number of axes of ``x``."""
    return len(shape(x))


def size(x: Any) -> torch.Tensor:
    """The number of elements of ``x`` (a 0-d int64 tensor, as Keras on torch)."""
    return torch.tensor(int(np.prod(shape(x), dtype=np.int64)))


def stop_gradient(variable: Any) -> torch.Tensor:
    """``variable`` with no gradient flowing back through it."""
    return convert_to_tensor(variable).detach()


def _check_window(
    op: str, x: torch.Tensor, start_indices: Sequence[int], sizes: Sequence[int], what: str
) -> tuple[list[int], list[int]]:
    starts = [int(s) for s in convert_to_numpy(start_indices).reshape(-1)]
    lengths = [int(s) for s in convert_to_numpy(sizes).reshape(-1)]
    if len(starts) != x.ndim or len(lengths) != x.ndim:
        raise ValueError(
            f"{op}: start_indices and {what} need one entry per axis of inputs (rank "
            f"{x.ndim}), received {len(starts)} start indices and {len(lengths)} sizes"
        )
    for axis, (start, length, size) in enumerate(zip(starts, lengths, x.shape)):
        if start < 0 or length < 0 or start + length > size:
            raise ValueError(
                f"{op}: axis {axis} has size {size}; start_indices[{axis}]={start} with "
                f"{what}[{axis}]={length} does not fit in it"
            )
    return starts, lengths


def slice(inputs: Any, start_indices: Sequence[int], shape: Sequence[int]) -> torch.Tensor:
    """The block of ``inputs`` of ``shape`` starting at ``start_indices`` (one per axis).

    ``slice(x, (0, 1), (2, 3))`` of ``x`` of shape ``(2, 5)`` is ``x[0:2, 1:4]``.
    """
    x = convert_to_tensor(inputs)
    starts, lengths = _check_window("slice", x, start_indices, shape, "shape")
    index = tuple(builtins.slice(s, s + n) for s, n in zip(starts, lengths))
    return x[index]


def slice_update(inputs: Any, start_indices: Sequence[int], updates: Any) -> torch.Tensor:
    """A copy of ``inputs`` with the block at ``start_indices`` replaced by ``updates``."""
    x, new = tensors(inputs, updates)
    starts, lengths = _check_window("slice_update", x, start_indices, new.shape, "updates.shape")
    index = tuple(builtins.slice(s, s + n) for s, n in zip(starts, lengths))
    out = x.clone()
    out[index] = new.to(x.dtype)
    return out
