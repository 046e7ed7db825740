"""``timeseries_dataset_from_array``: sliding windows over a series, in batches that
``fit``, ``evaluate`` and ``predict`` iterate.

Window ``i`` starts at step ``start_index + p_i`` with ``p_i = i * sequence_stride`` and
takes ``sequence_length`` steps ``sampling_rate`` apart:

    x_i = data[start_index + p_i + j * sampling_rate],  j = 0 .. sequence_length - 1
    y_i = targets[start_index + p_i]

Windows must end before ``end_index`` (exclusive, default ``len(data)``). Keras returns a
``tf.data`` or Grain dataset; this returns a plain re-iterable object with ``len()`` (the
number of batches), whose batches are numpy arrays ``(x, y)`` (or ``x`` without targets).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"timeseries_dataset_from_array: {name} must be a positive int, received {value!r}"
        )
    return int(value)


class TimeseriesDataset:
    """The windows of a series in batches (see the module docstring). Iterating again
    starts a new pass; with ``shuffle`` each pass takes a new order of the windows (the
    same sequence of orders for the same ``seed``; from torch's global generator when
    ``seed`` is None)."""

    def __init__(
        self,
        data: np.ndarray,
        targets: np.ndarray | None,
        starts: np.ndarray,
        sequence_length: int,
        sampling_rate: int,
        batch_size: int | None,
        shuffle: bool,
        seed: int | None,
    ) -> None:
        self.data = data
        self.targets = targets
        self.starts = starts
        self.offsets = np.arange(sequence_length) * sampling_rate
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._generator: torch.Generator | None = None
        if shuffle and seed is not None:
            self._generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        if self.batch_size is None:
            return len(self.starts)
        return -(-len(self.starts) // self.batch_size)

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.starts
        permutation = torch.randperm(len(self.starts), generator=self._generator).numpy()
        return self.starts[permutation]

    def _batch(self, starts: np.ndarray) -> Any:
        x = self.data[starts[:, None] + self.offsets]
        if self.targets is None:
            return x
        return x, self.targets[starts]

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        if self.batch_size is None:
            for start in order:
                window = self._batch(np.array([start]))
                yield tuple(part[0] for part in window) if isinstance(window, tuple) else window[0]
            return
        for first in range(0, len(order), self.batch_size):
            yield self._batch(order[first : first + self.batch_size])


def timeseries_dataset_from_array(
    data: Any,
    targets: Any,
    sequence_length: int,
    sequence_stride: int = 1,
    sampling_rate: int = 1,
    batch_size: int | None = 128,
    shuffle: bool = False,
    seed: int | None = None,
    start_index: int | None = None,
    end_index: int | None = None,
    format: str = "tf",
) -> TimeseriesDataset:
    """Batches of sliding windows over ``data`` (axis 0 is time) with Keras' arguments.

    Shapes: ``data`` ``(T, *features)`` -> batches ``x`` of ``(batch_size, sequence_length,
    *features)`` and, when ``targets`` (``(T, *target_shape)``) is given, ``y`` of
    ``(batch_size, *target_shape)``; the last batch may be smaller; ``batch_size=None``
    gives single windows. ``format`` (Keras' choice between a ``tf.data`` and a Grain
    dataset) is accepted as ``"tf"`` or ``"grain"``; either way the result is this module's
    :class:`TimeseriesDataset`, which iterates as both do (numpy batches here).

    >>> ds = timeseries_dataset_from_array(np.arange(10), None, sequence_length=3, batch_size=4)
    >>> next(iter(ds)).tolist()
    [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    """
    if format not in ("tf", "grain"):
        raise ValueError(
            f"timeseries_dataset_from_array: format must be 'tf' or 'grain', received {format!r}"
        )
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError(
            "timeseries_dataset_from_array: data must have a time axis, received a scalar"
        )
    if targets is not None:
        if isinstance(targets, torch.Tensor):
            targets = targets.detach().cpu().numpy()
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError(
                "timeseries_dataset_from_array: targets must have a time axis, received a scalar"
            )
    length = len(data)
    sequence_length = _positive_int("sequence_length", sequence_length)
    sequence_stride = _positive_int("sequence_stride", sequence_stride)
    sampling_rate = _positive_int("sampling_rate", sampling_rate)
    if batch_size is not None:
        batch_size = _positive_int("batch_size", batch_size)
    if sampling_rate >= length:
        raise ValueError(
            f"timeseries_dataset_from_array: sampling_rate must be lower than the length of the "
            f"data ({length}), received sampling_rate={sampling_rate}"
        )
    if sequence_stride >= length:
        raise ValueError(
            f"timeseries_dataset_from_array: sequence_stride must be lower than the length of "
            f"the data ({length}), received sequence_stride={sequence_stride}"
        )
    start = 0 if start_index is None else int(start_index)
    end = length if end_index is None else int(end_index)
    if not 0 <= start < length:
        raise ValueError(
            f"timeseries_dataset_from_array: start_index must be in [0, {length}) (the length "
            f"of the data), received start_index={start_index}"
        )
    if end_index is not None and not start < end < length:
        raise ValueError(
            f"timeseries_dataset_from_array: end_index must be higher than start_index "
            f"({start}) and lower than the length of the data ({length}), received "
            f"end_index={end_index}"
        )
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        count = min(count, len(targets) - start)
    if count <= 0:
        raise ValueError(
            f"timeseries_dataset_from_array: no window fits: a window spans "
            f"{(sequence_length - 1) * sampling_rate + 1} steps (sequence_length="
            f"{sequence_length}, sampling_rate={sampling_rate}) but steps {start} to {end} of "
            f"the data (and targets) hold fewer"
        )
    starts = start + np.arange(0, count, sequence_stride)
    return TimeseriesDataset(
        data, targets, starts, sequence_length, sampling_rate, batch_size, bool(shuffle), seed
    )
