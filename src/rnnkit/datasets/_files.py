"""Where datasets are cached, and a checked, atomic download."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path


def cache_dir() -> Path:
    """``$RNNKIT_HOME/datasets`` (default ``~/.rnnkit/datasets``)."""
    home = os.environ.get("RNNKIT_HOME") or os.path.join(os.path.expanduser("~"), ".rnnkit")
    return Path(home) / "datasets"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(path: Path, origin: str, file_hash: str) -> Path:
    """Download ``origin`` to ``path`` unless it is there; check its SHA-256.

    The file is written to a temporary file in the same folder and renamed, so an interrupted
    download never leaves a partial file behind. Offline (or with ``RNNKIT_OFFLINE=1``) a
    missing file raises ``FileNotFoundError`` saying where to put it.
    """
    if path.exists():
        return path
    hint = f"put the file at {path} (or pass its path)"
    if os.environ.get("RNNKIT_OFFLINE"):
        raise FileNotFoundError(f"{path.name} is not cached and RNNKIT_OFFLINE is set: {hint}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(origin, timeout=30) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
            except OSError as err:
                raise FileNotFoundError(
                    f"{path.name} is not cached and downloading {origin} failed ({err}): {hint}"
                ) from err
        found = sha256(Path(tmp))
        if found != file_hash:
            raise ValueError(
                f"{path.name}: the download from {origin} has SHA-256 {found}, expected {file_hash}"
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
