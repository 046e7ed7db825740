"""``ConvLSTMCell``: one step of a convolutional LSTM (Shi et al., 2015), Keras' layout.

Legend: ``N`` batch, ``C`` input channels, ``F`` filters, ``S...`` the ``rank`` spatial sizes
of the input (``rows, cols`` for rank 2), ``S'...`` those of the output and states.

The step is an :class:`rnnkit.layers.LSTMCell` whose matmuls are convolutions::

    [z_i, z_f, z_c, z_o] = conv(x_t, W, strides, padding, dilation_rate) + b
                           + conv(h_{t-1}, U, strides=1, padding="same")
    c_t = σ(z_f) ⊙ c_{t-1} + σ(z_i) ⊙ act(z_c),    h_t = σ(z_o) ⊙ act(c_t)

with ``σ`` = ``recurrent_activation`` (sigmoid), ``act`` = ``activation`` (tanh), the gates in
Keras' order i, f, c, o along the channel axis. The recurrent convolution is always stride 1,
dilation 1 and ``"same"``, so the states keep the output's spatial shape ``S'``.

========================= ========================================== ==================
weight                    shape                                      as in Keras
========================= ========================================== ==================
``kernel``                ``(*kernel_size, C, 4F)``                  yes
``recurrent_kernel``      ``(*kernel_size, F, 4F)``                  yes
``bias``                  ``(4F,)``                                  yes
========================= ========================================== ==================

Inputs of one step: ``(N, *S, C)`` (``channels_last``) or ``(N, C, *S)`` (``channels_first``);
output and both states ``(N, *S', F)`` or ``(N, F, *S')``. The state shape depends on the input
shape, so :attr:`ConvLSTMCell.state_size` is known once the cell is built (``-1`` before, as
in Keras). ``padding="same"`` with an even effective kernel pads one more element after than
before (TensorFlow's and Keras' rule).

Dropout is variational and, as in Keras, drawn per gate: four input masks and four recurrent
masks, each shaped like the step's input or state, drawn on the first step of a call and reused
at every step. The four masked copies run as one grouped convolution (``groups=4``).

>>> import torch
>>> cell = ConvLSTMCell(2, filters=4, kernel_size=3, padding="same")
>>> h, (h2, c) = cell(torch.ones(2, 5, 5, 3), [torch.zeros(2, 5, 5, 4)] * 2)
>>> tuple(h.shape), [tuple(w.shape) for w in cell.weights]
((2, 5, 5, 4), [(3, 3, 3, 16), (3, 3, 4, 16), (16,)])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from rnnkit import activations, constraints, initializers, regularizers, tree
from rnnkit.layers.base import Layer
from rnnkit.layers.cell_protocol import DropoutRNNCell, check_rate
from rnnkit.layers.conv_utils import (
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    output_length,
    same_padding,
)
from rnnkit.layers.shapes import layer_label

Tensor = torch.Tensor

_CONV: dict[int, Callable[..., Tensor]] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
PADDINGS = ("valid", "same")
_GATES = 4


# ------------------------------------------------------------------ argument checks
def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_arguments(
    owner: str,
    rank: Any,
    filters: Any,
    kernel_size: Any,
    strides: Any,
    padding: Any,
    data_format: Any,
    dilation_rate: Any,
    dropout: Any,
    recurrent_dropout: Any,
) -> tuple[Any, ...]:
    """Validate a ConvLSTM's arguments (``ValueError`` naming ``owner`` and the argument);
    returns ``(kernel_size, strides, padding, data_format, dilation_rate, dropout,
    recurrent_dropout)`` standardized."""
    if rank not in _CONV or not _is_int(rank):
        raise ValueError(f"{owner}: rank must be 1, 2 or 3, received rank={rank!r}")
    if not _is_int(filters) or filters <= 0:
        raise ValueError(
            f"{owner}: filters must be a positive integer, received filters={filters!r}"
        )
    kernel_size = normalize_tuple(kernel_size, rank, "kernel_size", owner)
    strides = normalize_tuple(strides, rank, "strides", owner)
    dilation_rate = normalize_tuple(dilation_rate, rank, "dilation_rate", owner)
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(
            f"{owner}: Specifying `strides > 1` is not compatible with `dilation_rate > 1`; "
            f"received strides={strides} and dilation_rate={dilation_rate}"
        )
    return (
        kernel_size,
        strides,
        normalize_padding(padding, PADDINGS, owner),
        normalize_data_format(data_format, owner),
        dilation_rate,
        check_rate(dropout, "dropout", owner),
        check_rate(recurrent_dropout, "recurrent_dropout", owner),
    )


# ------------------------------------------------------------------ convolution maths
def convolve(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    strides: tuple[int, ...],
    padding: str,
    dilation: tuple[int, ...],
    groups: int = 1,
) -> Tensor:
    """Keras' convolution on a channels-first ``x`` ``(N, C, *S)`` with a torch-layout
    ``weight`` ``(F, C / groups, *k)``; ``"same"`` padding may be asymmetric."""
    rank = x.dim() - 2
    pad: Any = 0
    if padding == "same":
        pairs = [
            same_padding(x.shape[2 + i], weight.shape[2 + i], strides[i], dilation[i])
            for i in range(rank)
        ]
        # The symmetric part goes to the convolution (no padded copy, however large the
        # dilated kernel); only an odd total's extra element after is padded explicitly.
        pad = tuple(before for before, _ in pairs)
        extra = [after - before for before, after in pairs]
        if any(extra):  # F.pad lists the last axis first
            x = F.pad(x, [p for e in reversed(extra) for p in (0, e)])
    return _CONV[rank](x, weight, bias, strides, pad, dilation, groups)


def torch_kernel(kernel: Tensor) -> Tensor:
    """A Keras kernel ``(*k, C, F)`` in torch's layout ``(F, C, *k)``."""
    rank = kernel.dim() - 2
    return kernel.permute(rank + 1, rank, *range(rank))


class ConvLSTMCell(DropoutRNNCell, Layer):
    """One convolutional LSTM step (see the module docstring for the equations and shapes).

    Args:
        rank: 1, 2 or 3, the number of spatial axes.
        filters: positive int ``F``, the channels of the output and of both states.
        kernel_size: int or ``rank`` ints, the convolution window (input and recurrent).
        strides: int or ``rank`` ints, the input convolution's strides; ``> 1`` excludes
            ``dilation_rate > 1``.
        padding: ``"valid"`` or ``"same"`` (case-insensitive), the input convolution's
            padding (the recurrent one is always ``"same"``).
        data_format: ``"channels_last"`` (default, also for None) or ``"channels_first"``.
        dilation_rate: int or ``rank`` ints, the input convolution's dilation.
        activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
        bias_initializer, *_regularizer, *_constraint, seed: as in Keras.
        unit_forget_bias: add 1 to the forget-gate bias at initialisation.
        dropout, recurrent_dropout: rates in ``[0, 1)`` for the inputs / the recurrent state,
            applied only in training.
    """

    def __init__(
        self,
        rank: int,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        (
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            dropout,
            recurrent_dropout,
        ) = check_arguments(
            type(self).__name__,
            rank,
            filters,
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            dropout,
            recurrent_dropout,
        )
        super().__init__(**kwargs)
        self.rank = rank
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = dilation_rate
        self.activation = activations.get(activation, argument="activation")
        self.recurrent_activation = activations.get(
            recurrent_activation, argument="recurrent_activation"
        )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = initializers.get(
            recurrent_initializer, "recurrent_initializer"
        )
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.recurrent_regularizer = regularizers.get(
            recurrent_regularizer, "recurrent_regularizer"
        )
        self.bias_regularizer = regularizers.get(bias_regularizer, "bias_regularizer")
        self.kernel_constraint = constraints.get(kernel_constraint, "kernel_constraint")
        self.recurrent_constraint = constraints.get(recurrent_constraint, "recurrent_constraint")
        self.bias_constraint = constraints.get(bias_constraint, "bias_constraint")
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        # Set by build: the spatial sizes S of the input, C, and the state shape (no batch).
        self.spatial_dims: tuple[int, ...] | None = None
        self.input_dim: int | None = None
        self._state_shape: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ shapes
    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _layout(self) -> str:
        names = {1: ("steps",), 2: ("rows", "cols"), 3: ("dim1", "dim2", "dim3")}[self.rank]
        axes = (*names, "channels") if self.data_format == "channels_last" else ("channels", *names)
        return f"(batch, {', '.join(axes)})"

    def output_spatial_shape(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """``S'`` for input spatial sizes ``S`` (``ValueError`` when the kernel does not fit)."""
        out = tuple(
            output_length(s, k, self.padding, st, d)
            for s, k, st, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)
        )
        if any(o <= 0 for o in out):
            effective = tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
            raise ValueError(
                f"{layer_label(self)}: the input's spatial shape {tuple(spatial)} is smaller than "
                f"the kernel (kernel_size={self.kernel_size}, dilation_rate="
                f"{self.dilation_rate}: effective size {effective}) with padding='valid'; the "
                f"output would have spatial shape {out}"
            )
        return out

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        """The output (and each state's) shape for one step's ``input_shape``."""
        input_shape = tuple(input_shape)
        if self.data_format == "channels_last":
            spatial = self.output_spatial_shape(input_shape[1:-1])
            return (input_shape[0], *spatial, self.filters)
        spatial = self.output_spatial_shape(input_shape[2:])
        return (input_shape[0], self.filters, *spatial)

    @property
    def state_size(self) -> Any:
        """``[shape, shape]`` (``h`` and ``c``, each ``(*S', F)`` or ``(F, *S')``) once built;
        ``-1`` before (the shape depends on the input's)."""
        if self._state_shape is None:
            return -1
        return [self._state_shape, self._state_shape]

    @property
    def output_size(self) -> Any:
        """The per-sample output shape (as a state's) once built, else None."""
        return self._state_shape

    def _check_step_shape(self, shape: tuple[Any, ...], argument: str) -> None:
        if len(shape) != self.rank + 2:
            raise ValueError(
                f"{layer_label(self)}: {argument} must have rank {self.rank + 2} "
                f"{self._layout()}, received shape {shape} of rank {len(shape)}"
            )

    def build(self, input_shape: Any) -> None:
        """Create the weights for one step's input shape ``(N, *S, C)`` or ``(N, C, *S)``."""
        shape = tuple(input_shape)
        self._check_step_shape(shape, "inputs (one step)")
        channels = shape[self._channel_axis]
        spatial = shape[1:-1] if self.data_format == "channels_last" else shape[2:]
        if channels is None or any(s is None for s in spatial):
            raise ValueError(
                f"{layer_label(self)}: ConvLSTM layers need static spatial and channel sizes "
                f"{self._layout()}, received input shape {shape}"
            )
        self.spatial_dims = tuple(int(s) for s in spatial)
        self.input_dim = int(channels)
        self._state_shape = self.compute_output_shape((None, *shape[1:]))[1:]
        k, f = self.kernel_size, self.filters
        self.kernel = self.add_weight(
            shape=(*k, self.input_dim, _GATES * f),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(*k, f, _GATES * f),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if not self.use_bias:
            self.bias = None
            return
        initializer: Any = self.bias_initializer
        if self.unit_forget_bias:
            base = self.bias_initializer

            def initializer(shape: Any, dtype: Any = None) -> Tensor:
                return torch.cat(
                    [
                        torch.as_tensor(base((f,), dtype=dtype)),
                        torch.ones((f,), dtype=dtype),
                        torch.as_tensor(base((2 * f,), dtype=dtype)),
                    ]
                )

        self.bias = self.add_weight(
            shape=(_GATES * f,),
            name="bias",
            initializer=initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    # -------------------------------------------------------------------- step
    def _channels_first(self, x: Tensor) -> Tensor:
        """``x`` ``(..., N, *S, C)`` as ``(..., N, C, *S)`` (unchanged for channels_first)."""
        if self.data_format == "channels_first":
            return x
        return x.movedim(-1, x.dim() - self.rank - 1)

    def _gate_convolution(
        self,
        x: Tensor,
        masks: Tensor | None,
        kernel: Tensor,
        bias: Tensor | None,
        strides: tuple[int, ...],
        padding: str,
        dilation: tuple[int, ...],
    ) -> Tensor:
        """``conv(x)`` with the four gates' outputs ``(N, 4F, *S')`` channels-first; with
        ``masks`` ``(4, *x.shape)`` gate ``g`` convolves ``x * masks[g]`` (one grouped conv)."""
        weight = torch_kernel(kernel)
        if masks is None:
            return convolve(self._channels_first(x), weight, bias, strides, padding, dilation)
        stacked = self._channels_first(x.unsqueeze(0) * masks)  # (4, N, C, *S)
        grouped = stacked.transpose(0, 1).flatten(1, 2)  # (N, 4C, *S), gate-major channels
        return convolve(grouped, weight, bias, strides, padding, dilation, groups=_GATES)

    def call(
        self, inputs: Tensor, states: Any, training: bool | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """One step: ``inputs`` ``(N, *S, C)`` / ``(N, C, *S)``, ``states`` ``[h, c]`` each
        ``(N, *S', F)`` / ``(N, F, *S')``; returns ``(h, [h, c])``."""
        self._check_step_shape(tuple(inputs.shape), "inputs (one step)")
        flat = tree.flatten(states)
        if len(flat) != 2:
            raise ValueError(
                f"{layer_label(self)}: states must be [h, c], two tensors shaped like one "
                f"step's output, received {len(flat)} tensor(s)"
            )
        h_tm1, c_tm1 = (torch.as_tensor(s, dtype=inputs.dtype, device=inputs.device) for s in flat)
        input_masks = recurrent_masks = None
        if training and self.dropout > 0:
            input_masks = self.get_dropout_mask(inputs.new_empty((_GATES, *inputs.shape)))
        if training and self.recurrent_dropout > 0:
            recurrent_masks = self.get_recurrent_dropout_mask(
                h_tm1.new_empty((_GATES, *h_tm1.shape))
            )
        ones = (1,) * self.rank
        z = self._gate_convolution(
            inputs,
            input_masks,
            self.kernel,
            self.bias,
            self.strides,
            self.padding,
            self.dilation_rate,
        ) + self._gate_convolution(
            h_tm1, recurrent_masks, self.recurrent_kernel, None, ones, "same", ones
        )
        if self.data_format == "channels_last":
            z = z.movedim(1, -1)
        z_i, z_f, z_c, z_o = z.chunk(_GATES, dim=self._channel_axis)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        o = self.recurrent_activation(z_o)
        c = f * c_tm1 + i * self.activation(z_c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_initial_state(self, batch_size: int | None = None, dtype: Any = None) -> list[Tensor]:
        """Zero ``h`` and ``c``, each ``(batch_size, *state_shape)``; the cell must be built."""
        if self._state_shape is None:
            raise ValueError(
                f"{layer_label(self)}: the state shape depends on the input shape; build the "
                "cell (call it once or call build(input_shape)) before get_initial_state"
            )
        kernel = self._parameters.get("kernel")
        device = kernel.device if kernel is not None else None
        dtype = dtype if isinstance(dtype, torch.dtype) else self.compute_dtype
        shape = (batch_size, *self._state_shape)
        return [torch.zeros(shape, dtype=dtype, device=device) for _ in range(2)]

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config = {
            "rank": self.rank,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, rank={self.rank}, filters={self.filters}"
