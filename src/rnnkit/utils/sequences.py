"""``pad_sequences``: a list of variable-length sequences as one padded array."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_SIDES = ("pre", "post")


def pad_sequences(
    sequences: Sequence[Any],
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """The sequences padded (or truncated) to a common length, as Keras does.

    Shapes: ``n`` sequences of lengths ``l_i`` whose steps have shape ``s`` -> an array of
    shape ``(n, maxlen) + s`` (``maxlen`` defaults to ``max(l_i)``).

    Args:
        sequences: a list of sequences (lists or arrays, possibly empty).
        maxlen: the length of the result; longer sequences are truncated.
        dtype: the dtype of the result (``object`` or a string dtype for string values).
        padding: ``"pre"`` (pad at the start, the default) or ``"post"``.
        truncating: ``"pre"`` (drop the first steps, the default) or ``"post"``.
        value: the padding value.

    >>> pad_sequences([[1, 2], [3]]).tolist()
    [[1, 2], [0, 3]]
    """
    if padding not in _SIDES:
        raise ValueError(f"pad_sequences: padding must be 'pre' or 'post', received {padding!r}")
    if truncating not in _SIDES:
        raise ValueError(
            f"pad_sequences: truncating must be 'pre' or 'post', received {truncating!r}"
        )
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise ValueError(
            "pad_sequences: sequences must be a list of sequences, received "
            f"{type(sequences).__name__}"
        )
    lengths: list[int] = []
    step_shape: tuple[int, ...] | None = None
    for index, seq in enumerate(sequences):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
            raise ValueError(
                f"pad_sequences: sequences[{index}] is not a sequence, received {seq!r:.60}"
            )
        lengths.append(len(seq))
        if step_shape is None and len(seq):
            step_shape = np.asarray(seq).shape[1:]
    if maxlen is None:
        if not lengths:
            raise ValueError("pad_sequences: sequences is empty; give maxlen for an empty list")
        maxlen = max(lengths)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 1:
        raise ValueError(f"pad_sequences: maxlen must be a positive int, received {maxlen!r}")
    maxlen = int(maxlen)
    is_text = (
        dtype is object
        or np.issubdtype(np.dtype(dtype), np.str_)
        or np.issubdtype(np.dtype(dtype), np.bytes_)
    )
    if isinstance(value, str) and not is_text:
        raise ValueError(
            f"pad_sequences: value {value!r} is a string but dtype is {dtype!r}; use "
            "dtype=object for strings"
        )
    step_shape = step_shape or ()
    out = np.full((len(lengths), maxlen, *step_shape), value, dtype=dtype)
    for index, seq in enumerate(sequences):
        if not len(seq):
            continue
        kept = np.asarray(seq[-maxlen:] if truncating == "pre" else seq[:maxlen], dtype=dtype)
        if kept.shape[1:] != step_shape:
            raise ValueError(
                f"pad_sequences: the steps of sequences[{index}] have shape {kept.shape[1:]}, "
                f"expected {step_shape} (the shape of the first non-empty sequence's steps)"
            )
        if padding == "post":
            out[index, : len(kept)] = kept
        else:
            out[index, maxlen - len(kept) :] = kept
    return out
