"""``SimpleRNN``, ``LSTM`` and ``GRU``: :class:`RNN` over the matching built-in cell.

Each takes its cell's arguments flattened into the layer (``LSTM(64, dropout=0.1,
return_sequences=True)``), exposes them as read-only properties (``layer.units``) and lists them
all in ``get_config``. ``use_cudnn`` (``"auto"``, True, False) asks for a fused kernel;
:func:`rnnkit.kernels.dispatch.choose` decides per call and ``layer.last_kernel`` says which
ran: ``"fused"`` (``torch._VF``: cuDNN on CUDA, oneDNN/ATen on CPU), ``"manual_backward"`` (a
per-step kernel with a hand-written backward, for other activations, masks with holes,
recurrent dropout, GRU ``reset_after=False``) or ``"generic"`` (the time loop). ``"auto"`` picks the fastest allowed,
``True`` raises ``ValueError`` when the fused kernel cannot run a call, ``False`` forces the
loop. Input ``(N, T, H_in)`` (``(T, N, H_in)`` with ``time_major``); output ``(N, u)``, or
``(N, T, u)`` with ``return_sequences``.
``LSTM``/``GRU`` accept Keras' ``implementation`` (0, 1 or 2): the maths are the same, so it
is checked and not stored. Integer and boolean inputs are cast to the layer's dtype.

>>> import torch
>>> layer = LSTM(8, return_state=True)
>>> out, h, c = layer(torch.zeros(2, 5, 3))
>>> tuple(out.shape), layer.count_params()
((2, 8), 384)
"""

from __future__ import annotations

from typing import Any

from rnnkit import regularizers
from rnnkit.kernels.masks import MaskInfo
from rnnkit.kernels.spec import KernelRequest
from rnnkit.layers.rnn import RNN, hands_on_to_rnn_call, renamed_compile_key
from rnnkit.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell

_COMMON = (
    "units",
    "activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
)
_USE_CUDNN = ("auto", True, False)


def _cell_property(name: str) -> property:
    def getter(self: RNN) -> Any:
        return getattr(self.cell, name)

    getter.__doc__ = f"The cell's ``{name}``."
    return property(getter)


class _CellLayer(RNN):
    """The shared part of SimpleRNN / LSTM / GRU: cell construction, properties, config."""

    _input_rank = 3
    _cell_class: type = SimpleRNNCell
    _cell_name = "simple_rnn_cell"

    def __init__(
        self,
        cell_kwargs: dict[str, Any],
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        use_cudnn: Any = "auto",
        activity_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        if use_cudnn not in _USE_CUDNN or not isinstance(use_cudnn, (str, bool)):
            raise ValueError(
                f"{type(self).__name__}: use_cudnn must be one of 'auto', True, False, "
                f"received use_cudnn={use_cudnn!r}"
            )
        cell = self._cell_class(
            **cell_kwargs,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=self._cell_name,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.use_cudnn = use_cudnn

    @hands_on_to_rnn_call  # Keras' signature, without constants
    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: bool | None = None,
        *,
        mask_info: MaskInfo | None = None,
    ) -> Any:
        return super().call(
            sequences,
            initial_state=initial_state,
            mask=mask,
            training=training,
            mask_info=mask_info,
        )

    def get_config(self) -> dict[str, Any]:
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config = super().get_config()
        config.update(cell_config)
        config.pop("implementation", None)  # accepted, not stored (Keras 3)
        config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        config["use_cudnn"] = self.use_cudnn
        return config

    def kernel_request(self) -> KernelRequest:
        """What this layer asks of the kernels: its ``use_cudnn``, ``unroll``, ..."""
        return self._kernel_request(self.use_cudnn)

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> RNN:
        return cls(**renamed_compile_key(config))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, units={self.units}"


# The three constructors below repeat Keras' signatures argument by argument on purpose (the
# signature is the documentation, and inspect/IDEs show it); they only collect the cell's
# arguments, so the repetition carries no logic (`duplicates` reports them as one pair).
for _name in (*_COMMON, "seed"):
    setattr(_CellLayer, _name, _cell_property(_name))


class SimpleRNN(_CellLayer):
    """Fully-connected RNN whose output is fed back: ``RNN(SimpleRNNCell(units, ...))``.

    ``h_t = activation(x_t W + b + h_{t-1} U)``; one state ``h``. See
    :class:`rnnkit.layers.SimpleRNNCell` for the cell arguments and :class:`RNN` for the rest.
    """

    _cell_class = SimpleRNNCell
    _cell_name = "simple_rnn_cell"

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        use_cudnn: Any = "auto",
        **kwargs: Any,
    ) -> None:
        cell_kwargs = dict(
            units=units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
        )
        super().__init__(
            cell_kwargs,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            use_cudnn=use_cudnn,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )


class LSTM(_CellLayer):
    """Long Short-Term Memory layer (Hochreiter 1997): ``RNN(LSTMCell(units, ...))``.

    States ``[h, c]``, each ``(N, units)``; gates i, f, c, o in Keras' weight layout. See
    :class:`rnnkit.layers.LSTMCell` for the equations and cell arguments.
    """

    _cell_class = LSTMCell
    _cell_name = "lstm_cell"

    def __init__(
        self,
        units: int,
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
        unroll: bool = False,
        use_cudnn: Any = "auto",
        implementation: int = 2,
        **kwargs: Any,
    ) -> None:
        cell_kwargs = dict(
            units=units,
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
            implementation=implementation,
        )
        super().__init__(
            cell_kwargs,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            use_cudnn=use_cudnn,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    recurrent_activation = _cell_property("recurrent_activation")
    unit_forget_bias = _cell_property("unit_forget_bias")


class GRU(_CellLayer):
    """Gated Recurrent Unit layer (Cho et al. 2014): ``RNN(GRUCell(units, ...))``.

    One state ``h`` ``(N, units)``; gates z, r, h in Keras' weight layout; ``reset_after=True``
    (default, cuDNN-compatible) applies the reset gate after the recurrent matmul. See
    :class:`rnnkit.layers.GRUCell`.
    """

    _cell_class = GRUCell
    _cell_name = "gru_cell"

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
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
        unroll: bool = False,
        reset_after: bool = True,
        use_cudnn: Any = "auto",
        implementation: int = 2,
        **kwargs: Any,
    ) -> None:
        cell_kwargs = dict(
            units=units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            implementation=implementation,
        )
        super().__init__(
            cell_kwargs,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            use_cudnn=use_cudnn,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    recurrent_activation = _cell_property("recurrent_activation")
    reset_after = _cell_property("reset_after")
