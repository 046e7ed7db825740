"""Arguments and output sizes of sliding-window layers (convolutions, pooling).

One place for the arithmetic Keras uses, so that the layers, their ``compute_output_shape``
and their checks agree. For an input length ``L``, a window of ``k`` taps with dilation ``d``
(so it spans ``k_eff = (k - 1) * d + 1`` steps) and stride ``s``:

- ``"valid"``: no padding, ``out = floor((L - k_eff) / s) + 1`` (must be >= 1);
- ``"same"``: ``out = ceil(L / s)``, padded with ``pad = max((out - 1) * s + k_eff - L, 0)``
  zeros, ``pad // 2`` before and the rest after;
- ``"causal"`` (1-D convolutions): ``k_eff - 1`` zeros before, none after, then as
  ``"valid"``: ``out = floor((L - 1) / s) + 1``, and output step ``t`` sees inputs ``<= t * s``.
"""

from __future__ import annotations

from typing import Any

DATA_FORMATS = ("channels_last", "channels_first")


def normalize_tuple(
    value: Any, n: int, argument: str, owner: str, allow_zero: bool = False
) -> tuple[int, ...]:
    """``value`` (an int or ``n`` ints) as a tuple of ``n`` ints, each >= 1 (>= 0 with
    ``allow_zero``); ``ValueError`` naming ``owner`` and ``argument`` otherwise."""
    values = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else value
    low = 0 if allow_zero else 1
    if (
        not isinstance(values, (tuple, list))
        or len(values) != n
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values)
    ):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"{owner}: {argument} must be a {kind} int or a tuple of {n} {kind} int(s), "
            f"received {argument}={value!r}"
        )
    return tuple(values)


def normalize_padding(value: Any, allowed: tuple[str, ...], owner: str) -> str:
    """``value`` lower-cased if it is one of ``allowed``, else ``ValueError``."""
    padding = value.lower() if isinstance(value, str) else value
    if padding not in allowed:
        raise ValueError(
            f"{owner}: padding must be one of {', '.join(repr(a) for a in allowed)}, "
            f"received padding={value!r}"
        )
    return padding


def normalize_data_format(value: Any, owner: str) -> str:
    """``"channels_last"`` (also for ``None``) or ``"channels_first"`` (case-insensitive, as
    Keras), else ``ValueError``."""
    data_format = "channels_last" if value is None else value
    data_format = data_format.lower() if isinstance(data_format, str) else data_format
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"{owner}: data_format must be one of 'channels_last', 'channels_first', "
            f"received data_format={value!r}"
        )
    return data_format


def output_length(
    length: int | None, kernel: int, padding: str, stride: int, dilation: int = 1
) -> int | None:
    """The output length along one axis (``None`` for an unknown ``length``); may be <= 0
    for a ``"valid"`` window longer than the input (callers raise)."""
    if length is None:
        return None
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (length - span) // stride + 1 if length >= span else length - span + 1
    return (length + stride - 1) // stride


def same_padding(length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """``(before, after)`` zeros of ``"same"`` padding along one axis (module docstring)."""
    span = (kernel - 1) * dilation + 1
    out = (length + stride - 1) // stride
    total = max((out - 1) * stride + span - length, 0)
    return total // 2, total - total // 2
