"""Opening an untrusted HDF5 file (a Keras 3 ``.weights.h5``) without following it anywhere.

HDF5 can point outside the file: external links, soft links, datasets whose bytes live in
another file (external storage) and virtual datasets stitched from other files. h5py follows
all of them, so a crafted weights file could read ``/etc/hostname`` into a model's weights.
:func:`open_hdf5` walks the whole file once before anything is read and refuses, with a
``ValueError`` naming the file and the entry:

- any link that is not a plain hard link (soft and external links, user-defined links);
- datasets with external storage or a virtual layout;
- datasets of a type other than a real float or an integer (strings, complex, compound, ...);
- more than ``max_tensors`` entries (which also ends hard-link cycles), tensors of rank above
  ``max_rank`` and datasets declaring more than ``max_total_bytes`` in all.

Reading then goes through :func:`read_dataset`, which checks the shape (and for float weights
the dtype) against what the model expects before a byte of data is read.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.saving.files import HDF5_SIGNATURE
from rnnkit.saving.limits import LoadLimits

_ZIP_SIGNATURE = b"PK\x03\x04"


def h5py_module() -> Any:
    """The ``h5py`` module, or ``ImportError`` saying how to install it."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "reading Keras .keras/.weights.h5 files needs h5py: pip install 'rnnkit[keras-import]'"
        ) from e
    return h5py


@dataclass(frozen=True)
class Hdf5Contents:
    """What :func:`open_hdf5` found: the open file and its datasets by path."""

    file: Any
    datasets: dict[str, Any]

    def elements(self, prefix_excluded: str = "optimizer/") -> int:
        """Elements of all datasets outside ``prefix_excluded``."""
        return sum(
            math.prod(ds.shape)
            for path, ds in self.datasets.items()
            if not path.startswith(prefix_excluded)
        )


def open_hdf5(data: bytes | str, source: str, limits: LoadLimits) -> Hdf5Contents:
    """Open ``data`` (bytes, or a path) as HDF5 after checking what it is, then walk it."""
    h5py = h5py_module()
    if isinstance(data, bytes):
        head = data[:8]
        target: Any = io.BytesIO(data)
    else:
        with open(data, "rb") as f:
            head = f.read(8)
        target = data
    if head.startswith(_ZIP_SIGNATURE):
        raise ValueError(
            f"{source}: is a zip archive (a '.keras' model file?), not an HDF5 weights file; "
            "load it with rnnkit.saving.load_model"
        )
    if head != HDF5_SIGNATURE:
        raise ValueError(f"{source}: not an HDF5 file (it does not start with the HDF5 signature)")
    try:
        f = h5py.File(target, "r")
    except (OSError, ValueError) as e:
        raise ValueError(f"{source}: not a valid HDF5 file; it may be truncated ({e})") from e
    try:
        if "model_config" in f.attrs or "layer_names" in f.attrs:
            raise ValueError(
                f"{source}: a legacy Keras 2 HDF5 file (model or weights in the old layout), "
                "which rnnkit does not read; re-save it with Keras 3 ('.keras' or "
                "'.weights.h5')"
            )
        datasets = _walk(f, h5py, source, limits)
    except BaseException:
        f.close()
        raise
    return Hdf5Contents(f, datasets)


def _walk(f: Any, h5py: Any, source: str, limits: LoadLimits) -> dict[str, Any]:
    datasets: dict[str, Any] = {}
    stack: list[tuple[str, Any]] = [("", f)]
    entries, total_bytes = 0, 0
    while stack:
        prefix, group = stack.pop()
        for name in group:
            path = f"{prefix}{name}"
            entries += 1
            if entries > limits.max_tensors:
                raise ValueError(
                    f"{source}: more than {limits.max_tensors} entries (LoadLimits.max_tensors; "
                    "or a cycle of links)"
                )
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise ValueError(
                    f"{source}: the entry '{path}' is a {type(link).__name__}; weights files "
                    "may hold only plain (hard-linked) groups and datasets"
                )
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((path + "/", obj))
                continue
            if not isinstance(obj, h5py.Dataset):
                raise ValueError(f"{source}: the entry '{path}' is neither a group nor a dataset")
            if obj.is_virtual or obj.external:
                kind = "virtual" if obj.is_virtual else "external storage"
                raise ValueError(
                    f"{source}: the dataset '{path}' has a {kind} layout (its bytes live "
                    "outside the file), which weights files may not use"
                )
            if obj.dtype.kind not in "fiu" or obj.dtype.itemsize not in (1, 2, 4, 8):
                raise ValueError(
                    f"{source}: the dataset '{path}' has dtype {obj.dtype}; weights must be "
                    "real numbers"
                )
            if obj.ndim > limits.max_rank:
                raise ValueError(
                    f"{source}: the dataset '{path}' has {obj.ndim} dimensions, more than "
                    f"{limits.max_rank} (LoadLimits.max_rank)"
                )
            total_bytes += math.prod(obj.shape) * obj.dtype.itemsize
            if total_bytes > limits.max_total_bytes:
                raise ValueError(
                    f"{source}: the datasets declare more than {limits.max_total_bytes} bytes "
                    "in all (LoadLimits.max_total_bytes)"
                )
            datasets[path] = obj
    return datasets


def read_dataset(
    dataset: Any, shape: tuple[int, ...], floating: bool, source: str, what: str
) -> np.ndarray:
    """The data of ``dataset`` once its shape is ``shape`` and, for ``floating``, its dtype is
    a real float; else ``ValueError`` naming ``what``, before anything is read."""
    if tuple(dataset.shape) != tuple(shape):
        raise ValueError(
            f"{source}: {what} has shape {tuple(dataset.shape)} at '{dataset.name}', but the "
            f"model expects {tuple(shape)}"
        )
    if floating and dataset.dtype.kind != "f":
        raise ValueError(
            f"{source}: {what} has dtype {dataset.dtype} at '{dataset.name}'; float weights "
            "must be stored as floats"
        )
    try:
        return np.asarray(dataset[()])
    except (OSError, ValueError) as e:
        raise ValueError(f"{source}: {what} cannot be read at '{dataset.name}' ({e})") from e
