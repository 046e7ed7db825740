"""``ConvLSTM1D``, ``ConvLSTM2D``, ``ConvLSTM3D``: :class:`RNN` over a :class:`ConvLSTMCell`.

Legend: ``N`` batch, ``T`` timesteps, ``C`` channels, ``F`` filters, ``S...`` the 1, 2 or 3
spatial sizes of the input, ``S'...`` those of the output (changed by ``strides``, ``padding``
and ``dilation_rate`` of the input convolution).

- ``data_format="channels_last"`` (default): inputs ``(N, T, *S, C)``, output ``(N, *S', F)``,
  or ``(N, T, *S', F)`` with ``return_sequences``;
- ``data_format="channels_first"``: inputs ``(N, T, C, *S)``, output ``(N, F, *S')``, or
  ``(N, T, F, *S')`` with ``return_sequences``.

With ``return_state`` the call returns ``(output, h, c)``, each state shaped like one step's
output. Everything about time (masks ``(N, T)``, ``go_backwards``, ``stateful``,
``initial_state``) is the :class:`RNN` layer's; the maths of one step is
:class:`rnnkit.layers.conv_lstm_cell.ConvLSTMCell`'s. Each layer takes its cell's arguments
flattened into the layer and exposes them as read-only properties (``layer.filters``), as
Keras' ``ConvLSTM2D`` does.

Departure from Keras 3, on purpose: like every rnnkit ``RNN``, these layers report
``supports_masking = True`` (Keras 3's ``RNN`` reports False while accepting ``mask=``); the
masking maths is Keras'.

>>> import torch
>>> layer = ConvLSTM2D(4, 3, padding="same", return_state=True)
>>> out, h, c = layer(torch.zeros(2, 5, 8, 8, 3))
>>> tuple(out.shape), layer.count_params()
((2, 8, 8, 4), 1024)
"""

from __future__ import annotations

from typing import Any

from rnnkit import regularizers, tree
from rnnkit.layers.base import passes_plain_calls
from rnnkit.layers.conv_lstm_cell import ConvLSTMCell, check_arguments
from rnnkit.layers.rnn import RNN, hands_on_to_rnn_call
from rnnkit.layers.shapes import layer_label
from rnnkit.symbolic import KerasTensor

_CELL_ARGUMENTS = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "unit_forget_bias",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
)


def _cell_property(name: str) -> property:
    def getter(self: RNN) -> Any:
        return getattr(self.cell, name)

    getter.__doc__ = f"The cell's ``{name}``."
    return property(getter)


class ConvLSTM(RNN):
    """The shared part of ``ConvLSTM1D/2D/3D``: ``RNN(ConvLSTMCell(rank, ...))`` with the
    cell's arguments flattened into the layer. Inputs must have rank ``rank + 3``.

    Args:
        rank: 1, 2 or 3.
        filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
        recurrent_activation, use_bias, initializers, unit_forget_bias, regularizers,
        constraints, dropout, recurrent_dropout, seed: the cell's
            (:class:`rnnkit.layers.conv_lstm_cell.ConvLSTMCell`).
        activity_regularizer: applied to the layer's output.
        return_sequences, return_state, go_backwards, stateful, unroll: :class:`RNN`'s.
    """

    # Keras' signature, argument by argument on purpose (as LSTM's in recurrent.py and the
    # cell's): the signature is the documentation; the body only hands the arguments on, so
    # the repetition `duplicates` reports here carries no logic.
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
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        **kwargs: Any,
    ) -> None:
        # Checked here first so that errors name this layer rather than its cell.
        check_arguments(
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
        cell = ConvLSTMCell(
            rank=rank,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name="conv_lstm_cell",
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self._input_rank = rank + 3

    @passes_plain_calls  # it checks symbolic inputs only
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A symbolic input is run on placeholders whose unknown sizes are made up (2, then 3);
        # the states' shape follows the spatial sizes, so they must be known (as in Keras).
        inputs = args[0] if args else kwargs.get("inputs")
        for x in tree.flatten(inputs):
            if isinstance(x, KerasTensor) and None in x.shape[2:]:
                raise ValueError(
                    f"{layer_label(self)}: ConvLSTM layers need static spatial and channel "
                    f"sizes; inputs has shape {x.shape} (batch, timesteps, ...), with None "
                    "after the time axis"
                )
        return super().__call__(*args, **kwargs)

    def reset_states(self, states: Any = None) -> None:
        """:meth:`RNN.reset_states`; setting ``states`` needs the layer built (their shape
        follows the input's spatial shape)."""
        if states is not None and not self.built:
            raise ValueError(
                f"{layer_label(self)}: reset_states(states=...) needs the state shape, which "
                "depends on the input's spatial shape; call the layer once (or build it) first"
            )
        super().reset_states(states)

    reset_state = reset_states

    @hands_on_to_rnn_call
    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: bool | None = None,
    ) -> Any:
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self) -> dict[str, Any]:
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype", "rank"):
            cell_config.pop(key)
        config = super().get_config()
        config.update(cell_config)
        config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        if type(self) is ConvLSTM:
            config["rank"] = self.cell.rank
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> RNN:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, filters={self.filters}, kernel_size={self.kernel_size}"


for _name in _CELL_ARGUMENTS:
    setattr(ConvLSTM, _name, _cell_property(_name))


class ConvLSTM1D(ConvLSTM):
    """1D convolutional LSTM: ``RNN(ConvLSTMCell(1, filters, kernel_size, ...))``.

    Inputs ``(N, T, steps, C)`` (``channels_last``) or ``(N, T, C, steps)``
    (``channels_first``); every argument of :class:`ConvLSTM` except ``rank``.
    """

    def __init__(self, filters: int, kernel_size: Any, **kwargs: Any) -> None:
        super().__init__(1, filters, kernel_size, **kwargs)


class ConvLSTM2D(ConvLSTM):
    """2D convolutional LSTM: ``RNN(ConvLSTMCell(2, filters, kernel_size, ...))``.

    Inputs ``(N, T, rows, cols, C)`` (``channels_last``) or ``(N, T, C, rows, cols)``
    (``channels_first``); every argument of :class:`ConvLSTM` except ``rank``.
    """

    def __init__(self, filters: int, kernel_size: Any, **kwargs: Any) -> None:
        super().__init__(2, filters, kernel_size, **kwargs)


class ConvLSTM3D(ConvLSTM):
    """3D convolutional LSTM: ``RNN(ConvLSTMCell(3, filters, kernel_size, ...))``.

    Inputs ``(N, T, dim1, dim2, dim3, C)`` (``channels_last``) or
    ``(N, T, C, dim1, dim2, dim3)`` (``channels_first``); every argument of :class:`ConvLSTM`
    except ``rank``.
    """

    def __init__(self, filters: int, kernel_size: Any, **kwargs: Any) -> None:
        super().__init__(3, filters, kernel_size, **kwargs)
