"""Weights files: ``model.save_weights("m.weights.safetensors")`` and ``load_weights``.

Format: a `safetensors <https://github.com/huggingface/safetensors>`_ file (no pickle) with
one tensor per weight, in :attr:`Layer.weights` order (Keras' order), keyed
``"{index:05d}/{path}"`` where ``path`` is the weight's Keras-style name
(``"lstm/lstm_cell/kernel"``). The header metadata says ``{"format": "rnnkit.weights",
"count": "<n>"}``.

Loading matches weights by position, so a model rebuilt with other automatic layer names
(``lstm_1``) loads the file; the number of weights and every shape must match the model, else
``ValueError`` names the first mismatch. Nothing is copied until every tensor is checked.

``load_weights`` also reads Keras 3's ``.weights.h5`` files (see
:mod:`rnnkit.saving.keras_import`; needs ``h5py``, the ``keras-import`` extra).

>>> # model.save_weights("m.weights.safetensors"); other.load_weights("m.weights.safetensors")
"""

from __future__ import annotations

import math
import os
from typing import IO, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rnnkit.layers.base import Layer
from rnnkit.saving.files import _fspath, atomic_write, check_overwrite
from rnnkit.saving.keras_export import save_keras_weights
from rnnkit.saving.keras_import import load_keras_weights
from rnnkit.saving.limits import DEFAULT_LIMITS, LoadLimits, check_limits, parse_json

WEIGHTS_SUFFIX = ".weights.safetensors"
KERAS_WEIGHTS_SUFFIX = ".weights.h5"
_FORMAT = "rnnkit.weights"


def _check_layer(model: Any, where: str) -> Layer:
    if not isinstance(model, Layer):
        raise TypeError(
            f"{where}: expected an rnnkit model or layer, received {type(model).__name__}"
        )
    return model


def weights_to_tensors(model: Layer) -> dict[str, torch.Tensor]:
    """The model's weights as ``{"00000/dense/kernel": tensor}`` (CPU, contiguous copies)."""
    weights = model.weights
    paths = model.weight_paths()
    return {
        f"{i:05d}/{path}": w.detach().to("cpu").contiguous().clone()
        for i, (path, w) in enumerate(zip(paths, weights))
    }


def weights_to_bytes(model: Layer) -> bytes:
    """The safetensors bytes of :func:`weights_to_tensors`."""
    tensors = weights_to_tensors(model)
    return st_save(tensors, metadata={"format": _FORMAT, "count": str(len(tensors))})


# safetensors dtype codes rnnkit files may hold: real floating point only.
_FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}


def read_header(
    data: bytes,
    source: str,
    limits: LoadLimits = DEFAULT_LIMITS,
    dtypes: dict[str, int] = _FLOAT_DTYPES,
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Check the safetensors header of ``data`` before any tensor is made:
    ``{name: (dtype code, shape)}``.

    ``ValueError`` naming ``source`` unless the header is at most ``max_json_bytes`` of valid
    JSON, lists at most ``max_tensors`` tensors, each of a real floating dtype (or one of
    ``dtypes``: safetensors code -> bytes per element), of rank at most
    ``max_rank``, and the tensors' byte ranges tile the data exactly.
    """
    if len(data) < 8:
        raise ValueError(f"{source}: not a safetensors file ({len(data)} bytes; truncated?)")
    length = int.from_bytes(data[:8], "little")
    if length > min(limits.max_json_bytes, len(data) - 8):
        raise ValueError(
            f"{source}: the safetensors header declares {length} bytes, more than the file "
            f"holds or the limit of {limits.max_json_bytes} (truncated or crafted?)"
        )
    header = parse_json(data[8 : 8 + length], f"{source} (safetensors header)", limits)
    if not isinstance(header, dict):
        raise ValueError(f"{source}: the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    if len(header) > limits.max_tensors:
        raise ValueError(
            f"{source}: the file holds {len(header)} tensors, more than the limit of "
            f"{limits.max_tensors} (LoadLimits.max_tensors)"
        )
    body = len(data) - 8 - length
    spans, out = [], {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{source}: tensor {name[:80]!r} has a malformed header entry")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in dtypes:
            raise ValueError(
                f"{source}: tensor {name[:80]!r} has dtype {str(dtype)[:20]!r}; expected one of "
                f"{', '.join(dtypes)}"
            )
        if (
            not isinstance(shape, list)
            or len(shape) > limits.max_rank
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise ValueError(
                f"{source}: tensor {name[:80]!r} has an invalid shape {str(shape)[:80]} "
                f"(at most {limits.max_rank} non-negative sizes)"
            )
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= body
            and offsets[1] - offsets[0] == math.prod(shape) * dtypes[dtype]
        ):
            raise ValueError(
                f"{source}: tensor {name[:80]!r} has data offsets {str(offsets)[:80]} that do not "
                f"fit its shape {tuple(shape)} and dtype {dtype} within the file"
            )
        spans.append((offsets[0], offsets[1]))
        out[name] = (dtype, tuple(shape))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ValueError(f"{source}: the tensors' data overlap or leave gaps (crafted file?)")
        position = end
    if position != body:
        raise ValueError(f"{source}: {body - position} bytes after the last tensor's data")
    return out


def bytes_to_tensors(
    data: bytes,
    source: str,
    limits: LoadLimits = DEFAULT_LIMITS,
    dtypes: dict[str, int] = _FLOAT_DTYPES,
) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes after :func:`read_header` checked them; a truncated or
    corrupted file raises ``ValueError``."""
    read_header(data, source, limits, dtypes)
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ValueError(
            f"{source}: not a valid safetensors weights file; it may be truncated or "
            f"corrupted ({e})"
        ) from e


def assign_tensors(model: Layer, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``tensors`` (keyed ``"{index:05d}/{path}"``) into ``model.weights`` by position.

    Raises ``ValueError`` before copying anything when a key is malformed, the count differs or
    a shape differs.
    """
    params = model.weights
    paths = model.weight_paths()
    if not model.built and not params and tensors:
        raise ValueError(
            f"{source}: the model '{model.name}' is not built, so it has no weights to load "
            "into; call it on data or build(input_shape) first"
        )
    ordered: dict[int, tuple[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, sep, saved_path = key.partition("/")
        if not sep or not index.isdigit():
            raise ValueError(
                f"{source}: unexpected tensor name {key!r}; an rnnkit weights file names its "
                "tensors '<index>/<weight path>'"
            )
        ordered[int(index)] = (saved_path, value)
    if sorted(ordered) != list(range(len(ordered))) or len(ordered) != len(params):
        raise ValueError(
            f"{source}: the file holds {len(ordered)} weights, but the model '{model.name}' "
            f"has {len(params)} ({', '.join(paths) or 'none'})"
        )
    for i, (path, param) in enumerate(zip(paths, params)):
        saved_path, value = ordered[i]
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(
                f"{source}: weight {i} ('{saved_path}' in the file, '{path}' in the model) has "
                f"shape {tuple(value.shape)} in the file, but the model expects "
                f"{tuple(param.shape)}"
            )
        if value.dtype.is_floating_point != param.dtype.is_floating_point:
            raise ValueError(
                f"{source}: weight {i} ('{path}') has dtype {value.dtype} in the file, the "
                f"model's is {param.dtype}"
            )
    with torch.no_grad():
        for i, param in enumerate(params):
            param.copy_(ordered[i][1].to(dtype=param.dtype, device=param.device))


def check_weights_suffix(filepath: Any, where: str = "save_weights") -> str:
    """The path as a string; ``ValueError`` unless it ends in ``.weights.safetensors``
    (rnnkit's file) or ``.weights.h5`` (Keras 3's file)."""
    path = _fspath(filepath)
    if not path.endswith((WEIGHTS_SUFFIX, KERAS_WEIGHTS_SUFFIX)):
        raise ValueError(
            f"{where}: filepath must end in '{WEIGHTS_SUFFIX}' (rnnkit) or "
            f"'{KERAS_WEIGHTS_SUFFIX}' (Keras 3), received {path!r}"
        )
    return path


def save_weights(model: Any, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``model``'s weights to ``filepath``, atomically: rnnkit's safetensors file for
    ``.weights.safetensors``, Keras 3's HDF5 layout for ``.weights.h5`` (see
    :func:`rnnkit.saving.keras_export.save_keras_weights`).

    Args:
        model: an rnnkit model or layer (built).
        filepath: the file, ending in ``.weights.safetensors`` or ``.weights.h5``.
        overwrite: when False, an existing file raises ``ValueError``.
    """
    model = _check_layer(model, "save_weights")
    path = check_weights_suffix(filepath)
    if path.endswith(KERAS_WEIGHTS_SUFFIX):
        save_keras_weights(model, path, overwrite=overwrite)
        return
    if not model.weights:
        raise ValueError(
            f"save_weights: the model '{model.name}' has no weights (is it built?); call it on "
            "data or build(input_shape) first"
        )
    check_overwrite(path, overwrite)
    data = weights_to_bytes(model)

    def write(f: IO[bytes]) -> None:
        f.write(data)

    atomic_write(path, write)


def load_weights(model: Any, filepath: str | os.PathLike, limits: LoadLimits | None = None) -> None:
    """Load weights saved by :func:`save_weights` (``.weights.safetensors``) or by Keras 3
    (``.weights.h5``) into ``model``; shapes must match, else ``ValueError``.

    The file is untrusted: it may not be larger than the model's own weights plus their
    header, and is checked against ``limits`` (:class:`~rnnkit.saving.LoadLimits`) before its
    data is read.

    Args:
        model: an rnnkit model or layer, built with the same architecture.
        filepath: a ``.weights.safetensors`` or Keras ``.weights.h5`` file.
        limits: the loader's limits; None for the defaults.
    """
    model = _check_layer(model, "load_weights")
    limits = check_limits(limits, "load_weights")
    path = _fspath(filepath)
    if path.endswith(KERAS_WEIGHTS_SUFFIX):
        load_keras_weights(model, path, limits)
        return
    if not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(
            f"load_weights: filepath must end in '{WEIGHTS_SUFFIX}' (rnnkit) or "
            f"'{KERAS_WEIGHTS_SUFFIX}' (Keras 3), received {path!r}"
        )
    if not os.path.isfile(path):
        raise ValueError(f"load_weights: no such file {path!r}")
    size = os.path.getsize(path)
    # the weights' bytes plus a header of at most max_json_bytes: more can only be crafted
    expected = sum(w.numel() * w.element_size() for w in model.weights)
    allowed = min(limits.max_file_bytes, expected + 8 + limits.max_json_bytes)
    if size > allowed:
        raise ValueError(
            f"load_weights: {path!r} has {size} bytes, but the weights of the model "
            f"'{model.name}' take {expected} bytes (limit {allowed} with the header); the "
            "file does not belong to this model"
        )
    with open(path, "rb") as f:
        data = f.read()
    assign_tensors(model, bytes_to_tensors(data, repr(path), limits), repr(path))
