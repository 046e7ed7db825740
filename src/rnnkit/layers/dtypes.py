"""Dtypes of layers and their inputs: names (``"float32"``) to ``torch.dtype`` and back, and the
conversion of a call's inputs (numpy arrays, tensors) to a layer's dtype and device.

>>> standardize_dtype("float64"), dtype_name(torch.float64)
(torch.float64, 'float64')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def standardize_dtype(dtype: Any) -> torch.dtype:
    """``"float32"``, ``torch.float32`` or ``None`` (float32) as a ``torch.dtype``."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        dtype = np.dtype(dtype).name
    if isinstance(dtype, dict):  # a Keras DTypePolicy config
        dtype = dtype.get("config", {}).get("name", "float32")
    found = getattr(torch, str(dtype), None)
    if not isinstance(found, torch.dtype):
        raise ValueError(f"dtype: unknown dtype {dtype!r}; expected e.g. 'float32' or 'float64'")
    return found


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).replace("torch.", "")


def to_tensor(x: Any, dtype: torch.dtype | None, device: torch.device | None) -> Any:
    """numpy arrays become tensors (float64 as float32, like Keras); floating tensors are cast to
    ``dtype`` when one is given; everything moves to ``device`` when one is given."""
    if isinstance(x, (np.ndarray, np.generic)):
        x = torch.as_tensor(np.asarray(x))
        if x.dtype == torch.float64 and dtype is None:
            x = x.to(torch.float32)
    if not isinstance(x, torch.Tensor):
        return x
    if dtype is not None and x.is_floating_point() and x.dtype != dtype:
        x = x.to(dtype)
    if device is not None and x.device != device:
        x = x.to(device)
    return x
