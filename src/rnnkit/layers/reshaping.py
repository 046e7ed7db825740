"""Layers that move, repeat, pad or crop values without weights: ``RepeatVector``,
``Permute``, ``ZeroPadding1D``, ``Cropping1D`` and ``UpSampling1D``.

Shapes use ``B`` for the batch, ``T`` for time steps and ``F`` for features. None of these
layers passes a mask on (as in Keras).

>>> import numpy as np
>>> tuple(RepeatVector(3)(np.ones((2, 5), np.float32)).shape)
(2, 3, 5)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.layers.base import Layer
from rnnkit.layers.conv_utils import normalize_data_format, normalize_tuple
from rnnkit.layers.shapes import check_input_shape, layer_label


def _positive_int(value: Any, argument: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {argument} must be an int, received {value!r}")
    if value <= 0:
        raise ValueError(f"{owner}: {argument} must be a positive integer, received {value!r}")
    return value


def _add(size: int | None, extra: int) -> int | None:
    return None if size is None else size + extra


class RepeatVector(Layer):
    """Repeats each sample ``n`` times along a new time axis: ``(B, F)`` to ``(B, n, F)``,
    ``outputs[b, t, :] = inputs[b, :]`` (an encoder's summary fed to every decoder step).

    Args:
        n: the number of repetitions (a positive int).
    """

    def __init__(self, n: int, **kwargs: Any) -> None:
        n = _positive_int(n, "n", "RepeatVector")
        super().__init__(**kwargs)
        self.n = n

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        check_input_shape(self, inputs.shape, rank=2, legend="(batch, features)")
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        check_input_shape(self, input_shape, rank=2, legend="(batch, features)")
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Permutes the axes of each sample: ``dims`` lists, for each output axis after the batch,
    the input axis it comes from, counting from 1 (the batch axis 0 stays first).

    ``Permute((2, 1))`` turns ``(B, T, F)`` into ``(B, F, T)``.

    Args:
        dims: a permutation of ``1 .. n`` for inputs of rank ``n + 1``.
    """

    def __init__(self, dims: Any, **kwargs: Any) -> None:
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise ValueError(f"Permute: dims must be a tuple of ints, received dims={dims!r}")
        dims = tuple(dims)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims) or sorted(
            dims
        ) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Permute: dims must be a permutation of 1 .. n (the non-batch axes, counted from "
                f"1), received dims={dims}"
            )
        super().__init__(**kwargs)
        self.dims = dims

    def _check(self, shape: Any) -> None:
        check_input_shape(
            self, shape, rank=len(self.dims) + 1, legend=f"(batch, {len(self.dims)} axes)"
        )

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check(inputs.shape)
        return inputs.permute(0, *self.dims)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        self._check(input_shape)
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": self.dims}


class _Temporal(Layer):
    """A layer on ``(B, T, F)`` inputs (``(B, F, T)`` with ``channels_first``)."""

    data_format = "channels_last"

    def _steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def _legend(self) -> str:
        if self.data_format == "channels_last":
            return "(batch, steps, features)"
        return "(batch, features, steps)"

    def _check(self, shape: Any) -> None:
        check_input_shape(self, shape, rank=3, legend=self._legend())

    def _steps(self, steps: int | None) -> int | None:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        self._check(input_shape)
        shape = list(input_shape)
        axis = self._steps_axis()
        shape[axis] = self._steps(shape[axis])
        return tuple(shape)


class ZeroPadding1D(_Temporal):
    """Adds zero steps at the start and the end: ``(B, T, F)`` to ``(B, before + T + after,
    F)``.

    Args:
        padding: an int (the same on both sides) or ``(before, after)``; default 1.
        data_format: ``"channels_last"`` (default) or ``"channels_first"`` (``(B, F, T)``).
    """

    def __init__(self, padding: Any = 1, data_format: str | None = None, **kwargs: Any) -> None:
        padding = normalize_tuple(padding, 2, "padding", "ZeroPadding1D", allow_zero=True)
        data_format = normalize_data_format(data_format, "ZeroPadding1D")
        super().__init__(**kwargs)
        self.padding = padding
        self.data_format = data_format

    def _steps(self, steps: int | None) -> int | None:
        return _add(steps, sum(self.padding))

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check(inputs.shape)
        before, after = self.padding
        if self.data_format == "channels_first":
            return F.pad(inputs, (before, after))
        return F.pad(inputs, (0, 0, before, after))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


class Cropping1D(_Temporal):
    """Removes steps at the start and the end: ``(B, T, F)`` to ``(B, T - start - end, F)``.

    Args:
        cropping: an int (the same on both sides) or ``(start, end)``; default ``(1, 1)``.
            At least one step must remain.
    """

    output_shape_is_exact = True

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any) -> None:
        cropping = normalize_tuple(cropping, 2, "cropping", "Cropping1D", allow_zero=True)
        super().__init__(**kwargs)
        self.cropping = cropping

    def _steps(self, steps: int | None) -> int | None:
        if steps is None:
            return None
        left = steps - sum(self.cropping)
        if left <= 0:
            raise ValueError(
                f"{layer_label(self)}: cropping={self.cropping} removes every step of inputs "
                f"with {steps} steps; at least one step must remain"
            )
        return left

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check(inputs.shape)
        start = self.cropping[0]
        return inputs[:, start : start + self._steps(inputs.shape[1])]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cropping": self.cropping}


class UpSampling1D(_Temporal):
    """Repeats each step ``size`` times: ``(B, T, F)`` to ``(B, T * size, F)``, with
    ``outputs[b, t] = inputs[b, t // size]``.

    Args:
        size: the repetition factor (a positive int, default 2).
    """

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        size = _positive_int(size, "size", "UpSampling1D")
        super().__init__(**kwargs)
        self.size = size

    def _steps(self, steps: int | None) -> int | None:
        return None if steps is None else steps * self.size

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check(inputs.shape)
        return torch.repeat_interleave(inputs, self.size, dim=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size}
