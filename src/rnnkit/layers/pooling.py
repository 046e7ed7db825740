"""Pooling over time: ``MaxPooling1D``, ``AveragePooling1D``, ``GlobalMaxPooling1D`` and
``GlobalAveragePooling1D``.

Inputs are ``(B, T, C)`` with ``data_format="channels_last"`` (the default) or ``(B, C, T)``
with ``"channels_first"``. Windowed pooling takes windows of ``pool_size`` steps every
``strides`` steps (default ``pool_size``); the output length follows
:mod:`rnnkit.layers.conv_utils` (``"valid"``: ``floor((T - pool_size) / strides) + 1``;
``"same"``: ``ceil(T / strides)``, the padded positions never count: a max is taken and an
average divided over the window's real steps only, as in Keras' definition).

Masks, as in Keras 3: windowed pooling and ``GlobalMaxPooling1D`` ignore the input mask
(``GlobalMaxPooling1D`` takes the max over every step, masked or not);
``GlobalAveragePooling1D`` averages over the unmasked steps only:
``outputs[b, c] = sum_t mask[b, t] x[b, t, c] / sum_t mask[b, t]``. No output mask.

>>> import numpy as np
>>> tuple(MaxPooling1D(2)(np.ones((2, 7, 3), np.float32)).shape)
(2, 3, 3)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.layers.base import Layer
from rnnkit.layers.conv_utils import (
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    output_length,
    same_padding,
)
from rnnkit.layers.shapes import check_input_shape, layer_label


def _legend(data_format: str) -> str:
    return (
        "(batch, steps, features)" if data_format == "channels_last" else "(batch, features, steps)"
    )


class _Pooling1D(Layer):
    """Windowed pooling over the time axis; ``_reduce`` says how a window is summarized."""

    output_shape_is_exact = True
    _mode = ""

    def __init__(
        self,
        pool_size: Any = 2,
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        (pool,) = normalize_tuple(pool_size, 1, "pool_size", owner)
        (stride,) = normalize_tuple(pool if strides is None else strides, 1, "strides", owner)
        padding = normalize_padding(padding, ("valid", "same"), owner)
        data_format = normalize_data_format(data_format, owner)
        super().__init__(**kwargs)
        self.pool_size = (pool,)
        self.strides = (stride,)
        self.padding = padding
        self.data_format = data_format

    def _steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def _check_shape(self, shape: tuple[int | None, ...]) -> int | None:
        check_input_shape(self, shape, rank=3, legend=_legend(self.data_format))
        steps = output_length(
            shape[self._steps_axis()], self.pool_size[0], self.padding, self.strides[0]
        )
        if steps is not None and steps <= 0:
            raise ValueError(
                f"{layer_label(self)}: inputs has shape {tuple(shape)}, shorter than "
                f"pool_size={self.pool_size[0]} with padding='valid' "
                f"{_legend(self.data_format)}"
            )
        return steps

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        shape = list(input_shape)
        shape[self._steps_axis()] = self._check_shape(tuple(input_shape))
        return tuple(shape)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check_shape(tuple(inputs.shape))
        x = inputs if self.data_format == "channels_first" else inputs.transpose(1, 2)
        (k,), (s,) = self.pool_size, self.strides
        before, after = 0, 0
        if self.padding == "same":
            before, after = same_padding(x.shape[2], k, s)
        outputs = self._reduce(x, k, s, before, after)
        return outputs if self.data_format == "channels_first" else outputs.transpose(1, 2)

    def _reduce(self, x: torch.Tensor, k: int, s: int, before: int, after: int) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
        }


class MaxPooling1D(_Pooling1D):
    """The max of each window of ``pool_size`` steps: ``(B, T, C)`` to ``(B, T_out, C)``.

    Args:
        pool_size: the window length (default 2).
        strides: the step between windows (default ``pool_size``).
        padding: ``"valid"`` or ``"same"`` (module docstring).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
    """

    def _reduce(self, x: torch.Tensor, k: int, s: int, before: int, after: int) -> torch.Tensor:
        if before or after:
            x = F.pad(x, (before, after), value=float("-inf"))
        return F.max_pool1d(x, k, s)


class AveragePooling1D(_Pooling1D):
    """The mean of each window of ``pool_size`` steps: ``(B, T, C)`` to ``(B, T_out, C)``;
    with ``padding="same"`` a window that overlaps the padding averages its real steps only.
    Arguments as :class:`MaxPooling1D`."""

    def _reduce(self, x: torch.Tensor, k: int, s: int, before: int, after: int) -> torch.Tensor:
        if not (before or after):
            return F.avg_pool1d(x, k, s)
        sums = F.avg_pool1d(F.pad(x, (before, after)), k, s) * k
        ones = torch.ones((1, 1, x.shape[2]), dtype=x.dtype, device=x.device)
        counts = F.avg_pool1d(F.pad(ones, (before, after)), k, s) * k
        return sums / counts


class _GlobalPooling1D(Layer):
    """Pooling over every time step: ``(B, T, C)`` to ``(B, C)`` (``(B, 1, C)`` with
    ``keepdims``)."""

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        data_format = normalize_data_format(data_format, type(self).__name__)
        super().__init__(**kwargs)
        self.data_format = data_format
        self.keepdims = bool(keepdims)

    def _steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        check_input_shape(self, input_shape, rank=3, legend=_legend(self.data_format))
        shape = list(input_shape)
        if self.keepdims:
            shape[self._steps_axis()] = 1
        else:
            del shape[self._steps_axis()]
        return tuple(shape)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def _kept_steps(self, inputs: torch.Tensor, mask: Any) -> torch.Tensor:
        """The ``(B, T)`` mask as a bool tensor broadcastable against ``inputs``."""
        steps = inputs.shape[self._steps_axis()]
        mask = torch.as_tensor(mask, device=inputs.device)
        if tuple(mask.shape) != (inputs.shape[0], steps):
            raise ValueError(
                f"{layer_label(self)}: mask has shape {tuple(mask.shape)}, expected "
                f"{(inputs.shape[0], steps)} (batch, steps) for inputs of shape "
                f"{tuple(inputs.shape)}"
            )
        return mask.to(torch.bool).unsqueeze(2 if self._steps_axis() == 1 else 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalMaxPooling1D(_GlobalPooling1D):
    """The max over time of each feature: ``outputs[b, c] = max_t inputs[b, t, c]``.

    Args:
        data_format: ``"channels_last"`` (default, ``(B, T, C)``) or ``"channels_first"``.
        keepdims: keep the time axis with size 1.

    With a ``(B, T)`` mask the max runs over the unmasked steps only (a sample with every
    step masked gives ``-inf``, the max of nothing). Keras 3 ignores the mask here and takes
    padded steps into the max; rnnkit does what the mask says.
    """

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input_shape(self, inputs.shape, rank=3, legend=_legend(self.data_format))
        if mask is not None:
            lowest = torch.tensor(float("-inf"), dtype=inputs.dtype, device=inputs.device)
            inputs = torch.where(self._kept_steps(inputs, mask), inputs, lowest)
        return torch.amax(inputs, dim=self._steps_axis(), keepdim=self.keepdims)


class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over time of each feature; with a ``(B, T)`` mask, over the unmasked steps
    only (a sample with every step masked gives NaN, as in Keras). Arguments as
    :class:`GlobalMaxPooling1D`."""

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input_shape(self, inputs.shape, rank=3, legend=_legend(self.data_format))
        axis = self._steps_axis()
        if mask is None:
            return inputs.mean(dim=axis, keepdim=self.keepdims)
        keep = self._kept_steps(inputs, mask)
        total = torch.where(keep, inputs, torch.zeros((), dtype=inputs.dtype)).sum(
            dim=axis, keepdim=self.keepdims
        )
        return total / keep.to(inputs.dtype).sum(dim=axis, keepdim=self.keepdims)
