"""A nested training state as a file without pickle: JSON for the structure, safetensors for the
tensors (used by :class:`rnnkit.callbacks.BackupAndRestore`).

A state is built from dicts, lists, tuples, tensors, numpy arrays, ``str``, ``int``,
``float``, ``bool`` and ``None``. :func:`state_to_bytes` writes a zip with ``state.json`` (the
structure; a tensor is ``{"__tensor__": "<key>"}``, a tuple ``{"__tuple__": [...]}``, a dict
with non-string keys ``{"__dict__": [[key, value], ...]}``, a non-finite float
``{"__float__": "nan"}``) and ``tensors.safetensors``. :func:`read_state` reads it back through
the checked zip reader, JSON parser and safetensors header check of :mod:`rnnkit.saving`, so a
crafted file is refused within :class:`~rnnkit.saving.LoadLimits` and can run no code. What the
values mean is for the caller to check.

>>> import torch
>>> data = state_to_bytes({"step": 3, "w": [torch.ones(2)]})
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save

from rnnkit.saving import weights_file
from rnnkit.saving.files import SafeZipReader
from rnnkit.saving.limits import LoadLimits

STATE = "state.json"
TENSORS = "tensors.safetensors"
# dtypes a state may hold: floats, and the integer types of generator states
_TORCH_CODES = {
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.uint8: "U8",
    torch.int64: "I64",
}
_ITEMSIZE = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "U8": 1, "I64": 8}
_MARKERS = ("__tensor__", "__tuple__", "__dict__", "__float__", "__ndarray__")


def state_to_bytes(state: Any) -> bytes:
    """The zip bytes of ``state`` (see the module docstring)."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = str(len(tensors))
            tensors[key] = value.detach().to("cpu").contiguous().clone()
            if value.dtype not in _TORCH_CODES:
                raise ValueError(f"a state tensor of dtype {value.dtype} cannot be saved")
            return {"__tensor__": key}
        if isinstance(value, np.ndarray):
            return {"__ndarray__": encode(torch.from_numpy(np.array(value)))["__tensor__"]}
        if isinstance(value, tuple):
            return {"__tuple__": [encode(v) for v in value]}
        if isinstance(value, list):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and not any(k in _MARKERS for k in value):
                return {k: encode(v) for k, v in value.items()}
            return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
        if isinstance(value, float) and not math.isfinite(value):
            return {"__float__": repr(value)}
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            return encode(value.item())
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise ValueError(f"a state value of type {type(value).__name__} cannot be saved")

    structure = json.dumps(encode(state)).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(STATE, structure, zipfile.ZIP_DEFLATED)
        zf.writestr(TENSORS, st_save(tensors), zipfile.ZIP_STORED)
    return out.getvalue()


def read_state(path: str, limits: LoadLimits) -> Any:
    """The state in the file at ``path``, every part checked within ``limits``; ``ValueError``
    naming the file for anything malformed."""
    source = repr(path)
    with SafeZipReader(path, limits) as reader:
        structure = reader.read_json(STATE)
        data = reader.read(TENSORS)
    tensors = weights_file.bytes_to_tensors(data, f"{source} ({TENSORS})", limits, _ITEMSIZE)

    def tensor(key: Any) -> torch.Tensor:
        if not isinstance(key, str) or key not in tensors:
            raise ValueError(f"{source}: the state names a tensor {str(key)[:40]!r} it lacks")
        return tensors[key]

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1 and next(iter(value)) in _MARKERS:
            marker, inner = next(iter(value.items()))
            if marker == "__tensor__":
                return tensor(inner)
            if marker == "__ndarray__":
                return tensor(inner).numpy()
            if marker == "__float__" and inner in ("nan", "inf", "-inf"):
                return float(inner)
            if marker == "__tuple__" and isinstance(inner, list):
                return tuple(decode(v) for v in inner)
            if marker == "__dict__" and isinstance(inner, list):
                if not all(isinstance(p, list) and len(p) == 2 for p in inner):
                    raise ValueError(f"{source}: a malformed {marker} entry in the state")
                return {_key(decode(k), source): decode(v) for k, v in inner}
            raise ValueError(f"{source}: a malformed {marker} entry in the state")
        return {k: decode(v) for k, v in value.items()}

    return decode(structure)


def _key(key: Any, source: str) -> Any:
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key
    raise ValueError(f"{source}: a dict key of type {type(key).__name__} in the state")
