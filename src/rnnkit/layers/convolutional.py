"""Convolutions over 1, 2 or 3 spatial axes: ``Conv1D``, ``Conv2D``, ``Conv3D``.

Shapes use ``B`` for the batch, ``S1 .. Sn`` for the ``n`` spatial axes (time for ``Conv1D``;
height and width for ``Conv2D``; depth, height and width for ``Conv3D``), ``C`` for the input
channels and ``F`` for ``filters``. With ``data_format="channels_last"`` (the default) inputs
are ``(B, S1, .., Sn, C)``; with ``"channels_first"`` they are ``(B, C, S1, .., Sn)``.

For each output position ``p`` and filter ``f`` (with ``G = groups`` groups, filter ``f``
belonging to group ``g`` that sees channels ``g * C/G .. (g + 1) * C/G - 1``)::

    outputs[b, p, f] = activation(bias[f]
        + sum_{taps k, c in group g} kernel[k, c - g * C/G, f] * inputs[b, p * s + k * d, c])

with strides ``s`` and dilation ``d``. The weights have Keras' layout: ``kernel`` is
``(*kernel_size, C / G, F)`` and ``bias`` is ``(F,)``. Output lengths and padding follow
:mod:`rnnkit.layers.conv_utils`. A convolution drops the input mask (as in Keras).

>>> import numpy as np
>>> layer = Conv1D(4, 3, padding="causal")
>>> tuple(layer(np.ones((2, 10, 5), np.float32)).shape)
(2, 10, 4)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rnnkit import activations, constraints, initializers, regularizers
from rnnkit.layers.base import Layer
from rnnkit.layers.conv_utils import (
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    output_length,
    same_padding,
)
from rnnkit.layers.core import _KERAS_QUANTIZATION, add_activity_loss, drop_keras_only_keys
from rnnkit.layers.shapes import check_input_shape, layer_label

_CONV_FUNCTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class BaseConv(Layer):
    """The shared implementation of ``Conv1D``/``Conv2D``/``Conv3D`` (``rank`` spatial axes).

    Args:
        filters: the number ``F`` of output channels (a positive int divisible by ``groups``).
        kernel_size: the window, an int or ``rank`` ints.
        strides: the step between windows, an int or ``rank`` ints (default 1).
        padding: ``"valid"`` (none), ``"same"`` (output length ``ceil(L / s)``) or, for
            ``Conv1D`` only, ``"causal"`` (zeros before the sequence only).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: the spacing between taps, an int or ``rank`` ints; cannot exceed 1
            together with strides above 1.
        groups: split the channels into this many groups convolved separately.
        activation: applied to the outputs; ``None`` is linear.
        use_bias: whether to add ``bias``.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: as in ``Dense``.
    """

    output_shape_is_exact = True
    rank: int = 0
    _paddings: tuple[str, ...] = ("valid", "same")

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"{owner}: filters must be a positive integer, received {filters!r}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"{owner}: groups must be a positive integer, received {groups!r}")
        if filters % groups:
            raise ValueError(
                f"{owner}: filters must be divisible by groups, received filters={filters}, "
                f"groups={groups}"
            )
        kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size", owner)
        strides = normalize_tuple(strides, self.rank, "strides", owner)
        dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate", owner)
        if max(strides) > 1 and max(dilation_rate) > 1:
            raise ValueError(
                f"{owner}: strides above 1 cannot be combined with dilation_rate above 1, "
                f"received strides={strides}, dilation_rate={dilation_rate}"
            )
        padding = normalize_padding(padding, self._paddings, owner)
        data_format = normalize_data_format(data_format, owner)
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = dilation_rate
        self.groups = groups
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "bias_regularizer")
        self.activity_regularizer = regularizers.get(activity_regularizer, "activity_regularizer")
        self.kernel_constraint = constraints.get(kernel_constraint, "kernel_constraint")
        self.bias_constraint = constraints.get(bias_constraint, "bias_constraint")

    # ---------------------------------------------------------------- shapes
    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _spatial(self, shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(shape[1:-1]) if self.data_format == "channels_last" else tuple(shape[2:])

    def _legend(self) -> str:
        axes = ", ".join(f"S{i + 1}" for i in range(self.rank))
        if self.data_format == "channels_last":
            return f"(batch, {axes}, channels)"
        return f"(batch, channels, {axes})"

    def _check_shape(self, shape: tuple[int | None, ...], channels: int | None) -> None:
        check_input_shape(
            self,
            shape,
            rank=self.rank + 2,
            axes={self._channel_axis: channels},
            legend=self._legend(),
        )
        lengths = self._output_lengths(self._spatial(shape))
        if any(n is not None and n <= 0 for n in lengths):
            raise ValueError(
                f"{layer_label(self)}: inputs has shape {tuple(shape)}, too small for "
                f"kernel_size={self.kernel_size} with dilation_rate={self.dilation_rate} and "
                f"padding={self.padding!r} (the output would have spatial shape {lengths})"
            )

    def _output_lengths(self, spatial: tuple[int | None, ...]) -> tuple[int | None, ...]:
        padding = "valid" if self.padding == "valid" else "same"
        return tuple(
            output_length(n, k, padding, s, d)
            for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        shape = tuple(input_shape)
        self._check_shape(shape, None)
        lengths = self._output_lengths(self._spatial(shape))
        if self.data_format == "channels_last":
            return (shape[0], *lengths, self.filters)
        return (shape[0], self.filters, *lengths)

    # ---------------------------------------------------------------- build/call
    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self._check_shape(tuple(input_shape), None)
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(
                f"{layer_label(self)}: the channel axis of the inputs must be known, received "
                f"input shape {tuple(input_shape)} {self._legend()}"
            )
        if channels % self.groups:
            raise ValueError(
                f"{layer_label(self)}: the input channels ({channels}) must be divisible by "
                f"groups={self.groups}, received input shape {tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            name="kernel",
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                name="bias",
            )
        else:
            self.bias = None

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (channels first) padded for ``"same"``/``"causal"`` along each spatial axis."""
        if self.padding == "valid":
            return x
        pads: list[int] = []
        for axis in reversed(range(self.rank)):  # F.pad takes the last axis first
            k, s, d = self.kernel_size[axis], self.strides[axis], self.dilation_rate[axis]
            if self.padding == "causal":
                pads += [(k - 1) * d, 0]
            else:
                pads += list(same_padding(x.shape[2 + axis], k, s, d))
        return F.pad(x, pads) if any(pads) else x

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        in_channels = self.kernel.shape[-2] * self.groups
        self._check_shape(tuple(inputs.shape), in_channels)
        if not inputs.is_floating_point():
            inputs = inputs.to(self.kernel.dtype)
        x = inputs if self.data_format == "channels_first" else inputs.movedim(-1, 1)
        # Keras (*kernel_size, C/G, F) -> torch (F, C/G, *kernel_size).
        weight = self.kernel.permute(self.rank + 1, self.rank, *range(self.rank))
        outputs = _CONV_FUNCTIONS[self.rank](
            self._pad(x),
            weight,
            self.bias,
            stride=self.strides,
            dilation=self.dilation_rate,
            groups=self.groups,
        )
        if self.data_format == "channels_last":
            outputs = outputs.movedim(1, -1)
        outputs = self.activation(outputs)
        add_activity_loss(self, self.activity_regularizer, outputs)
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BaseConv:
        return cls(**drop_keras_only_keys(cls, config, _KERAS_QUANTIZATION))


class Conv1D(BaseConv):
    """1-D convolution over time: inputs ``(B, T, C)`` give ``(B, T_out, F)`` (channels last).

    ``padding`` may also be ``"causal"``: output step ``t`` depends only on inputs up to
    ``t * strides``, as in WaveNet. See :class:`BaseConv` for the arguments.
    """

    rank = 1
    _paddings = ("valid", "same", "causal")


class Conv2D(BaseConv):
    """2-D convolution: inputs ``(B, H, W, C)`` give ``(B, H_out, W_out, F)`` (channels last).
    See :class:`BaseConv` for the arguments."""

    rank = 2


class Conv3D(BaseConv):
    """3-D convolution: inputs ``(B, D, H, W, C)`` give ``(B, D_out, H_out, W_out, F)``
    (channels last). See :class:`BaseConv` for the arguments."""

    rank = 3
