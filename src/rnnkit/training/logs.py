"""Logs whose values stay on the device until something reads them.

A training step's logs (the running loss and metrics) are 0-d tensors on the model's device.
Turning them into Python floats copies them to the host, which on a GPU waits for every queued
kernel: doing it every step would stall the device. :class:`StepLogs` holds the tensors and
reads all of them back in one transfer the first time a value is asked for (the progress bar
when it refreshes, a callback that looks, the end of an epoch).

>>> logs = StepLogs(["loss"], [torch.tensor(0.5)], lambda values: [float(v) for v in values])
>>> logs["loss"]
0.5
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import torch


class StepLogs(MutableMapping[str, Any]):
    """``{name: value}`` read back lazily.

    Args:
        names: the keys, in order.
        values: their values (tensors are read back; anything else is kept as it is).
        read_back: turns a list of tensors into floats in one transfer (the trainer's, which
            also applies the nan policy to the steps run since the last read-back).
    """

    def __init__(
        self,
        names: Sequence[str],
        values: Sequence[Any],
        read_back: Callable[[list[Any]], list[float]],
    ) -> None:
        self._names = list(names)
        self._pending: list[Any] | None = list(values)
        self._read_back = read_back
        self._values: dict[str, Any] = {}

    def _materialize(self) -> dict[str, Any]:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            tensors = [v for v in pending if isinstance(v, torch.Tensor)]
            if len(tensors) == len(pending):  # the common logs: all tensors
                values = self._read_back(tensors)
            else:
                floats = iter(self._read_back(tensors) if tensors else [])
                values = [next(floats) if isinstance(v, torch.Tensor) else v for v in pending]
            read = dict(zip(self._names, values))
            self._values = {**read, **self._values} if self._values else read
        return self._values

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the values (read back first if not yet): ``dict(logs)`` without the
        mapping protocol's call per key."""
        return dict(self._materialize())

    @property
    def on_host(self) -> bool:
        """True once the values were read back."""
        return self._pending is None

    def __getitem__(self, key: str) -> Any:
        return self._materialize()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._materialize()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._materialize()[key]

    def __iter__(self) -> Iterator[str]:  # the keys are known without a read-back
        return iter(self._names if self._pending is not None else self._values)

    def __len__(self) -> int:
        return len(self._names) if self._pending is not None else len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in (self._names if self._pending is not None else self._values)

    def __repr__(self) -> str:
        return repr(dict(self._materialize()))
