"""The limits every loader checks before it allocates, and a JSON reader that keeps them.

Every file a user loads is untrusted (see ``SECURITY.md``). Each loader (``load_model``,
``load_weights``, the Keras import, ``BackupAndRestore``) takes a :class:`LoadLimits` and
refuses, with a ``ValueError`` naming the file and the limit, anything beyond it before
reading or allocating it. The defaults fit every model of the test suite with room to spare
and keep a malicious file's cost to a fraction of a second and a few hundred MB; pass
``limits=LoadLimits(max_total_bytes=8 * 1024**3)`` (or ``dataclasses.replace`` of
:data:`DEFAULT_LIMITS`) to load a genuinely larger model.

>>> LoadLimits().max_json_bytes
16777216
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoadLimits:
    """Upper bounds for what a file may make a loader read or allocate.

    Attributes:
        max_file_bytes: the size of the file on disk.
        max_total_bytes: all zip members together, uncompressed (and so all weights).
        max_members: members of a zip archive.
        max_ratio: uncompressed/compressed size of a zip member larger than 1 MiB.
        max_json_bytes: one JSON document (``config.json``, a safetensors header, ...).
        max_json_depth: nesting of lists and objects in a JSON document.
        max_int_digits: digits of an integer in a JSON document.
        max_tensors: tensors (weights, optimizer slots) in one file.
        max_rank: dimensions of one tensor or of one input shape.
        max_input_elements: elements of one sample of a model input (``Input(shape)``), with
            unknown (``None``) sizes not counted.
    """

    max_file_bytes: int = 4 * 1024**3
    max_total_bytes: int = 1024**3
    max_members: int = 1000
    max_ratio: float = 100.0
    max_json_bytes: int = 16 * 1024**2
    max_json_depth: int = 64
    max_int_digits: int = 20
    max_tensors: int = 100_000
    max_rank: int = 8
    max_input_elements: int = 2**24

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(
                    f"LoadLimits: {name} must be a positive number, received {value!r}"
                )


DEFAULT_LIMITS = LoadLimits()


def check_limits(limits: Any, where: str) -> LoadLimits:
    """``limits`` itself, or :data:`DEFAULT_LIMITS` for None; ``TypeError`` otherwise."""
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, LoadLimits):
        raise TypeError(
            f"{where}: limits must be an rnnkit.saving.LoadLimits, received {type(limits).__name__}"
        )
    return limits


def parse_json(data: bytes, source: str, limits: LoadLimits = DEFAULT_LIMITS) -> Any:
    """Parse an untrusted JSON document within ``limits``.

    Refused with ``ValueError`` naming ``source``: more than ``max_json_bytes``, invalid UTF-8
    or JSON, a duplicated key, ``NaN``/``Infinity`` or a number that overflows to them, an
    integer longer than ``max_int_digits``, nesting deeper than ``max_json_depth``.
    """
    if len(data) > limits.max_json_bytes:
        raise ValueError(
            f"{source}: {len(data)} bytes of JSON, more than the limit of "
            f"{limits.max_json_bytes} (LoadLimits.max_json_bytes)"
        )

    def parse_int(text: str) -> int:
        if len(text.lstrip("-")) > limits.max_int_digits:
            raise ValueError(
                f"{source}: an integer of {len(text)} digits, more than the limit of "
                f"{limits.max_int_digits} (LoadLimits.max_int_digits)"
            )
        return int(text)

    def parse_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{source}: the number {text[:40]!r} is out of range")
        return value

    def parse_constant(text: str) -> Any:
        raise ValueError(f"{source}: {text} is not a JSON value")

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"{source}: the key {key[:80]!r} appears twice in one object")
            out[key] = value
        return out

    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            parse_int=parse_int,
            parse_float=parse_float,
            parse_constant=parse_constant,
            object_pairs_hook=unique_keys,
        )
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not valid UTF-8 text ({e})") from e
    except RecursionError as e:
        raise ValueError(
            f"{source}: nested deeper than the limit of {limits.max_json_depth} "
            "(LoadLimits.max_json_depth)"
        ) from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not valid JSON ({e})") from e
    check_depth(value, source, limits.max_json_depth)
    return value


def check_depth(value: Any, source: str, max_depth: int) -> None:
    """``ValueError`` if lists/dicts in ``value`` nest deeper than ``max_depth`` (no recursion,
    so any depth is measured safely)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > max_depth:
            raise ValueError(
                f"{source}: nested deeper than the limit of {max_depth} (LoadLimits.max_json_depth)"
            )
        stack.extend((child, depth + 1) for child in children)
