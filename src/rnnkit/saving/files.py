"""File plumbing for model and weight files: atomic writes and a defensive zip reader.

Atomic writes (:func:`atomic_write`): the bytes go to a temporary file in the target's folder,
are flushed and ``fsync``-ed, and only then replace the target with ``os.replace`` (atomic on
POSIX and Windows). If anything fails before the rename, the temporary file is removed and the
old target, if any, is untouched: a crash or a full disk never leaves a half-written or
destroyed file.

Zip reading (:class:`SafeZipReader`): model files are zips that may come from anyone, so every
member is checked before a byte is used:

- names must be relative paths without ``..``, drive letters or backslashes (nothing is ever
  extracted to disk, but a file with such names is refused as crafted);
- names must be unique;
- the archive must hold at most ``LoadLimits.max_members`` members, expanding to at most
  ``LoadLimits.max_total_bytes`` in all; no member may be encrypted or use a compression
  method other than stored or deflate;
- a member's declared size must be at most ``max_member_bytes`` and, for members above
  1 MiB, at most ``LoadLimits.max_ratio`` (100) times its compressed size (zip bombs);
- reading stops at the declared size: a member that inflates past it is refused;
- an HDF5 file (a legacy Keras ``.h5`` model) is named as such.

Every refusal is a ``ValueError`` that names the file and the member.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import IO, Any

from rnnkit.saving.limits import DEFAULT_LIMITS, LoadLimits, parse_json

MAX_MEMBER_BYTES = 4 * 1024**3  # 4 GiB: one weights file
RATIO_FLOOR_BYTES = 1024**2  # members up to 1 MiB are too small to be bombs
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CHUNK = 1024**2


def _fspath(filepath: Any, argument: str = "filepath") -> str:
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(
            f"{argument}: expected a path (str or os.PathLike), received {filepath!r} of type "
            f"{type(filepath).__name__}"
        )
    return os.fspath(filepath)


def check_overwrite(filepath: Any, overwrite: bool) -> str:
    """The path as a string; ``ValueError`` if it exists and ``overwrite`` is False."""
    path = _fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise ValueError(f"{path!r} already exists and overwrite=False; pass overwrite=True")
    return path


def atomic_write(filepath: Any, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file next to ``filepath``,
    which then replaces ``filepath``. On any error the target is left as it was."""
    path = _fspath(filepath)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0o600); give it the mode a plain open() would
        os.chmod(tmp, _target_mode(path))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _target_mode(path: str) -> int:
    """The existing file's permissions, else ``0o666`` less the process umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: str) -> None:
    """Make the rename durable (POSIX); folders cannot be opened for fsync on Windows."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_zip(filepath: Any, members: dict[str, tuple[bytes, bool]]) -> None:
    """Atomically write a zip with ``members``: name -> (data, compress)."""

    def write(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, "w") as zf:
            for name, (data, compress) in members.items():
                method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
                zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, method)

    atomic_write(filepath, write)


def check_member_name(name: str, filepath: str) -> None:
    """``ValueError`` unless ``name`` is a plain relative path inside the archive."""
    bad = (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
        or any(part in ("..", "") for part in PurePosixPath(name).parts[:-1])
        or ".." in PurePosixPath(name).parts
    )
    if bad:
        raise ValueError(
            f"{filepath!r}: refusing the zip member {name!r}: member names must be relative "
            "paths inside the archive (no '..', no leading '/', no drive or backslash)"
        )


class SafeZipReader:
    """Read members of an untrusted zip with the checks listed in the module docstring.

    Args:
        filepath: the zip file.
        limits: the :class:`~rnnkit.saving.limits.LoadLimits` to keep (file size, member
            count, total uncompressed size, compression ratio).
        max_member_bytes: the largest uncompressed member accepted.
    """

    def __init__(
        self,
        filepath: Any,
        limits: LoadLimits = DEFAULT_LIMITS,
        max_member_bytes: int = MAX_MEMBER_BYTES,
    ) -> None:
        self.filepath = _fspath(filepath)
        if not os.path.isfile(self.filepath):
            raise ValueError(f"cannot load {self.filepath!r}: no such file")
        self.limits = limits
        self.max_member_bytes = max_member_bytes
        size = os.path.getsize(self.filepath)
        if size > limits.max_file_bytes:
            raise ValueError(
                f"{self.filepath!r}: the file has {size} bytes, more than the limit of "
                f"{limits.max_file_bytes} (LoadLimits.max_file_bytes)"
            )
        with open(self.filepath, "rb") as f:
            magic = f.read(8)
        if magic == HDF5_SIGNATURE:
            raise ValueError(
                f"cannot load {self.filepath!r}: it is an HDF5 file, not a zip archive: a legacy "
                "Keras 2 '.h5' model or a weights file. rnnkit reads Keras 3 '.keras' model "
                "files; load weights with model.load_weights(...) (Keras 3 '.weights.h5'), or "
                "re-save a legacy model with Keras 3 as '.keras'"
            )
        try:
            self._zip = zipfile.ZipFile(self.filepath, "r")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
            raise ValueError(
                f"cannot load {self.filepath!r}: it is not a valid model file (a zip archive); "
                f"it may be truncated or corrupted ({e})"
            ) from e
        self._infos: dict[str, zipfile.ZipInfo] = {}
        try:
            infos = self._zip.infolist()
            if len(infos) > limits.max_members:
                raise ValueError(
                    f"{self.filepath!r}: the archive has {len(infos)} members, more than the "
                    f"limit of {limits.max_members} (LoadLimits.max_members)"
                )
            total = 0
            for info in infos:
                check_member_name(info.filename, self.filepath)
                if info.filename in self._infos:
                    raise ValueError(
                        f"{self.filepath!r}: the zip member {info.filename!r} appears twice"
                    )
                self._check_member(info)
                total += info.file_size
                if total > limits.max_total_bytes:
                    raise ValueError(
                        f"{self.filepath!r}: the archive's members expand to more than "
                        f"{limits.max_total_bytes} bytes in all (LoadLimits.max_total_bytes); "
                        "raise the limit to load a larger model you trust"
                    )
                self._infos[info.filename] = info
        except BaseException:
            self._zip.close()
            raise

    def _check_member(self, info: zipfile.ZipInfo) -> None:
        if info.flag_bits & 0x1:
            raise ValueError(
                f"{self.filepath!r}: the zip member {info.filename!r} is encrypted; model files "
                "are never encrypted"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(
                f"{self.filepath!r}: the zip member {info.filename!r} uses compression method "
                f"{info.compress_type}; model files use only 0 (stored) and 8 (deflate)"
            )
        if info.file_size > self.max_member_bytes:
            raise ValueError(
                f"{self.filepath!r}: refusing the zip member {info.filename!r}: it expands to "
                f"{info.file_size} bytes, more than the limit of {self.max_member_bytes}"
            )
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > self.limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise ValueError(
                f"{self.filepath!r}: refusing the zip member {info.filename!r}: it expands "
                f"{info.file_size / max(info.compress_size, 1):.0f}x ({info.compress_size} -> "
                f"{info.file_size} bytes), more than the limit of {self.limits.max_ratio}x "
                "(LoadLimits.max_ratio; a zip bomb?)"
            )

    @property
    def names(self) -> list[str]:
        return list(self._infos)

    def __contains__(self, name: str) -> bool:
        return name in self._infos

    def size(self, name: str) -> int:
        """The declared uncompressed size of member ``name``."""
        return self._info(name).file_size

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = self._infos.get(name)
        if info is None:
            raise ValueError(
                f"{self.filepath!r}: the model file has no {name!r} member; members: "
                f"{sorted(self._infos)[:20]}"
            )
        return info

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        """The bytes of member ``name``, read in chunks and never past its declared size."""
        info = self._info(name)
        limit = info.file_size if max_bytes is None else min(info.file_size, max_bytes)
        if info.file_size > limit:
            raise ValueError(
                f"{self.filepath!r}: refusing the zip member {name!r}: {info.file_size} bytes, "
                f"more than the limit of {limit} for this member"
            )
        out = io.BytesIO()
        try:
            with self._zip.open(info) as f:
                while True:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    if out.tell() > limit:
                        raise ValueError(
                            f"{self.filepath!r}: refusing the zip member {name!r}: it "
                            f"inflates past its declared size of {info.file_size} bytes"
                        )
        except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as e:
            raise ValueError(
                f"{self.filepath!r}: the zip member {name!r} cannot be read; the file may be "
                f"truncated or corrupted ({e})"
            ) from e
        return out.getvalue()

    def read_json(self, name: str) -> Any:
        """Member ``name`` parsed as JSON within the limits (:func:`parse_json`)."""
        data = self.read(name, max_bytes=self.limits.max_json_bytes)
        return parse_json(data, f"{self.filepath!r} ({name})", self.limits)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeZipReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
