"""The built-in recurrent cells: ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``.

A cell is one step of a recurrent network, a pure function of the step input and the previous
states::

    output, new_states = cell.call(inputs, states, training=False)

with ``inputs`` of shape ``(N, H_in)`` and every state of shape ``(N, units)``. The
:class:`rnnkit.layers.RNN` layer runs the loop over time. Legend: ``N`` batch size, ``H_in``
input features, ``u`` units.

Weights use Keras' names, shapes and gate orders, so ``get_weights()`` moves unchanged between
Keras and rnnkit:

============== ==================== ====================== ===============================
cell           ``kernel``           ``recurrent_kernel``   ``bias``
============== ==================== ====================== ===============================
SimpleRNNCell  ``(H_in, u)``        ``(u, u)``             ``(u,)``
LSTMCell       ``(H_in, 4u)`` i,f,c,o ``(u, 4u)``          ``(4u,)``
GRUCell        ``(H_in, 3u)`` z,r,h ``(u, 3u)``            ``(2, 3u)`` if ``reset_after``
                                                           else ``(3u,)``
============== ==================== ====================== ===============================

Dropout is variational (Gal & Ghahramani): one mask for the inputs and one for the recurrent
state are drawn on the first step of a sequence and reused at every step, only when training.
The RNN layer clears the cached masks at the start and end of each call, so every call draws
fresh masks. Departure from Keras 3, on purpose: Keras draws one mask per gate when
``recurrent_dropout > 0`` (its "implementation 1"); rnnkit always shares one input mask and one
recurrent mask across the gates (Keras' default "implementation 2" behaviour), which keeps the
step a single fused matmul.

The cell protocol helpers the RNN layer uses for any cell live in
:mod:`rnnkit.layers.cell_protocol` (re-exported here).

>>> import torch
>>> cell = LSTMCell(4)
>>> h, (h2, c) = cell(torch.ones(2, 3), [torch.zeros(2, 4), torch.zeros(2, 4)])
>>> tuple(h.shape), [tuple(w.shape) for w in cell.weights]
((2, 4), [(3, 16), (4, 16), (16,)])
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import activations, constraints, initializers, regularizers, tree
from rnnkit.kernels.spec import CellSpec
from rnnkit.layers.base import Layer
from rnnkit.layers.cell_protocol import DropoutRNNCell as DropoutRNNCell
from rnnkit.layers.cell_protocol import StateSpec as StateSpec
from rnnkit.layers.cell_protocol import accepts_argument as accepts_argument
from rnnkit.layers.cell_protocol import cell_initial_state as cell_initial_state
from rnnkit.layers.cell_protocol import cell_output_shape as cell_output_shape
from rnnkit.layers.cell_protocol import check_cell as check_cell
from rnnkit.layers.cell_protocol import check_rate
from rnnkit.layers.cell_protocol import reset_dropout_masks as reset_dropout_masks
from rnnkit.layers.cell_protocol import state_spec as state_spec
from rnnkit.layers.kernel_layout import store_column_major

Tensor = torch.Tensor


def _check_units(units: Any, owner: str) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"{owner}: units must be a positive integer, received units={units!r}")
    return units


class _Cell(DropoutRNNCell, Layer):
    """What the three built-in cells share: arguments, validation, config, initial state."""

    _casts_non_floating_inputs = True

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
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        units = _check_units(units, owner)
        dropout = check_rate(dropout, "dropout", owner)
        recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout", owner)
        # Keras' implementation switch (1: several small matmuls, 2: one fused; 0: Keras 2's
        # legacy value, still in saved configs): the same
        # maths, and one path here. Accepted as Keras does, checked, not stored.
        implementation = kwargs.pop("implementation", 2)
        if implementation not in (0, 1, 2) or isinstance(implementation, bool):
            raise ValueError(
                f"{owner}: implementation must be 0, 1 or 2, received {implementation!r}"
            )
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation, argument="activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = initializers.get(
            recurrent_initializer, "recurrent_initializer"
        )
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
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
        self.output_size = units

    def _add_kernels(self, input_shape: Any, gates: int, column_major: bool = True) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the last input axis (features) must be "
                f"known to build, received input_shape={tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            shape=(input_dim, gates * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, gates * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if column_major:  # so that the fused kernels' transposes are contiguous (kernel_layout)
            store_column_major(self.kernel)
            store_column_major(self.recurrent_kernel)

    def _add_bias(self, shape: tuple[int, ...], initializer: Any) -> None:
        self.bias = self.add_weight(
            shape=shape,
            name="bias",
            initializer=initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    # The step is split in two so that the RNN layer can run the input half for all time
    # steps at once: ``call(x_t, states) == step_from_projection(input_projection(x_t),
    # states)``. Only the split differs from a per-step matmul (float rounding).
    def _input_bias(self) -> Tensor | None:
        """The bias added to the input projection (all of it, except GRU's recurrent row)."""
        return self.bias

    def input_projection(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        """The input half of the step, ``x W + b_in``, for one step or all steps at once.

        Args:
            inputs: ``(N, H_in)`` (one step) or ``(T, N, H_in)`` (every step, time-major).
            training: apply this sequence's input dropout mask (one ``(N, H_in)`` mask,
                shared by every step).

        Returns:
            ``(N, G u)`` or ``(T, N, G u)`` with ``G`` the number of gates (1, 4 or 3).
        """
        if training and self.dropout > 0:
            step = inputs if inputs.dim() == 2 else inputs.reshape(-1, *inputs.shape[-2:])[0]
            inputs = inputs * self.get_dropout_mask(step)
        bias = self._input_bias()
        flat = inputs.reshape(-1, inputs.shape[-1])
        projected = flat @ self.kernel if bias is None else torch.addmm(bias, flat, self.kernel)
        return projected.view(*inputs.shape[:-1], projected.shape[-1])

    def _recurrent_dropped(self, h_tm1: Tensor, training: bool | None) -> Tensor:
        """The previous output with this sequence's recurrent dropout mask applied."""
        if training and self.recurrent_dropout > 0:
            return h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        return h_tm1

    def step_from_projection(
        self, projected: Tensor, states: list[Tensor], training: bool | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """The recurrent half of the step: ``projected`` ``(N, G u)`` from
        :meth:`input_projection`, ``states`` a flat list of ``(N, u)`` tensors; returns
        ``(output, new_states)``."""
        raise NotImplementedError

    def call(self, inputs: Tensor, states: Any, training: bool | None = None) -> tuple:
        """One step: ``inputs`` ``(N, H_in)``, ``states`` a list of ``(N, u)`` tensors (or one
        tensor for the single-state cells); returns ``(output, new_states)`` with the new states
        in the same form."""
        nested = tree.is_nested(states)
        flat = list(states) if nested else [states]
        output, new_states = self.step_from_projection(
            self.input_projection(inputs, training), flat, training
        )
        return output, (new_states if nested else new_states[0])

    def get_initial_state(self, batch_size: int | None = None, dtype: Any = None) -> list[Tensor]:
        """Zero states, one ``(batch_size, units)`` tensor per entry of ``state_size``."""
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        kernel = self._parameters.get("kernel")  # None before build
        device = kernel.device if kernel is not None else None
        dtype = dtype if isinstance(dtype, torch.dtype) else self.compute_dtype
        return [torch.zeros((batch_size, d), dtype=dtype, device=device) for d in sizes]

    def get_config(self) -> dict[str, Any]:
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
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
        return f"name={self.name!r}, units={self.units}"

    def _spec_fields(self) -> dict[str, Any]:
        """The :class:`CellSpec` fields particular to the cell type (``kind``, ...)."""
        raise NotImplementedError

    def kernel_spec(self) -> CellSpec | None:
        """This cell as the kernels see it (:class:`rnnkit.kernels.spec.CellSpec`), or None
        for a subclass that overrides ``call`` (its step is then run as any cell's)."""
        if not supports_projection(self):
            return None
        kernel = self._parameters.get("kernel")  # None before build
        attributes = self.__dict__
        # Asked at every call: kept while the attributes it is made of are the same objects.
        key = (
            self.units,
            attributes.get("activation"),
            attributes.get("recurrent_activation"),
            attributes.get("reset_after"),
            self.use_bias,
            self.dropout,
            self.recurrent_dropout,
            None if kernel is None else kernel.dtype,
        )
        cached = attributes.get("_spec_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        spec = CellSpec(
            units=self.units,
            activation=_activation_id(self.activation),
            use_bias=self.use_bias,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            dtype=None if kernel is None else kernel.dtype,
            **self._spec_fields(),
        )
        attributes["_spec_cache"] = (key, spec)
        return spec


def _activation_id(fn: Any) -> Any:
    """A built-in activation's name, else the callable itself (``torch.tanh``, a user's)."""
    found = activations.info(fn)
    return fn if found is None else found.name


def supports_projection(cell: Any) -> bool:
    """Whether ``cell`` is a built-in cell whose step is ``input_projection`` followed by
    ``step_from_projection`` (a subclass that overrides ``call`` is stepped as any cell)."""
    return isinstance(cell, _Cell) and type(cell).call is _Cell.call


def has_zero_initial_state(cell: Any) -> bool:
    """Whether ``cell`` is a built-in cell whose ``get_initial_state`` is the zeros default."""
    return isinstance(cell, _Cell) and type(cell).get_initial_state is _Cell.get_initial_state


class SimpleRNNCell(_Cell):
    """The fully-connected RNN step (Elman network).

    .. math:: h_t = \\mathrm{activation}(x_t W + b + h_{t-1} U)

    with ``W = kernel (H_in, u)``, ``U = recurrent_kernel (u, u)``, ``b = bias (u,)``. The
    output is ``h_t``, shape ``(N, u)``; the single state is ``h_t`` as well.

    Args:
        units: positive int, the size of the output and state.
        activation: default ``"tanh"``; ``None`` means linear.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer, *_regularizer,
        *_constraint: as in Keras.
        dropout / recurrent_dropout: rates in ``[0, 1)`` for the input / recurrent
            connections, applied only in training.
        seed: int seed for the dropout masks.
    """

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.state_size = self.units

    def _spec_fields(self) -> dict[str, Any]:
        return {"kind": "simple_rnn"}

    def build(self, input_shape: Any) -> None:
        self._add_kernels(input_shape, gates=1)
        if self.use_bias:
            self._add_bias((self.units,), self.bias_initializer)
        else:
            self.bias = None

    def step_from_projection(
        self, projected: Tensor, states: list[Tensor], training: bool | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        h_tm1 = self._recurrent_dropped(states[0], training)
        output = self.activation(torch.addmm(projected, h_tm1, self.recurrent_kernel))
        return output, [output]


class LSTMCell(_Cell):
    """The Long Short-Term Memory step (Hochreiter & Schmidhuber, 1997), Keras' gate order.

    .. math::
        [i, f, \\tilde c, o] = x_t W + h_{t-1} U + b \\quad\\text{(split in 4 along the last axis)}

        c_t = \\sigma(f) \\odot c_{t-1} + \\sigma(i) \\odot \\mathrm{act}(\\tilde c), \\qquad
        h_t = \\sigma(o) \\odot \\mathrm{act}(c_t)

    where ``σ`` is ``recurrent_activation`` (sigmoid) and ``act`` is ``activation`` (tanh).
    States: ``[h, c]``, each ``(N, u)``; output ``h``.

    Args:
        units, activation, recurrent_activation, use_bias, initializers, regularizers,
        constraints, dropout, recurrent_dropout, seed: as in Keras.
        unit_forget_bias: add 1 to the forget-gate bias at initialisation (the rest of the bias
            uses ``bias_initializer``).
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        unit_forget_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(
            recurrent_activation, argument="recurrent_activation"
        )
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def _spec_fields(self) -> dict[str, Any]:
        return {"kind": "lstm", "recurrent_activation": _activation_id(self.recurrent_activation)}

    def build(self, input_shape: Any) -> None:
        self._add_kernels(input_shape, gates=4)
        if not self.use_bias:
            self.bias = None
            return
        if self.unit_forget_bias:
            units, base = self.units, self.bias_initializer

            def initializer(shape: Any, dtype: Any = None) -> Tensor:
                return torch.cat(
                    [
                        torch.as_tensor(base((units,), dtype=dtype)),
                        torch.ones((units,), dtype=dtype),
                        torch.as_tensor(base((2 * units,), dtype=dtype)),
                    ]
                )

            self._add_bias((4 * self.units,), initializer)
        else:
            self._add_bias((4 * self.units,), self.bias_initializer)

    def step_from_projection(
        self, projected: Tensor, states: list[Tensor], training: bool | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        h_tm1, c_tm1 = states[0], states[1]
        z = torch.addmm(projected, self._recurrent_dropped(h_tm1, training), self.recurrent_kernel)
        z_i, z_f, z_c, z_o = z.chunk(4, dim=-1)
        if activations.is_elementwise(self.recurrent_activation):
            # One call over the four gates (the candidate block is computed and unused): fewer,
            # larger ops are faster than four small ones.
            i, f, _, o = self.recurrent_activation(z).chunk(4, dim=-1)
        else:
            i = self.recurrent_activation(z_i)
            f = self.recurrent_activation(z_f)
            o = self.recurrent_activation(z_o)
        c = torch.addcmul(f * c_tm1, i, self.activation(z_c))
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }


class GRUCell(_Cell):
    """The Gated Recurrent Unit step (Cho et al., 2014), Keras' gate order z, r, h.

    With ``reset_after=True`` (default; the cuDNN-compatible variant, bias ``(2, 3u)``: row 0
    for the input projection, row 1 for the recurrent one)::

        x_z, x_r, x_h = split(x_t W + b_in, 3);  r_z, r_r, r_h = split(h_{t-1} U + b_rec, 3)
        z = σ(x_z + r_z);  r = σ(x_r + r_r);  hh = act(x_h + r ⊙ r_h)

    With ``reset_after=False`` (bias ``(3u,)``)::

        hh = act(x_h + (r ⊙ h_{t-1}) U_h)

    Then ``h_t = z ⊙ h_{t-1} + (1 - z) ⊙ hh``. One state ``h``, shape ``(N, u)``; output ``h``.
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        reset_after: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(
            recurrent_activation, argument="recurrent_activation"
        )
        self.reset_after = bool(reset_after)
        self.state_size = self.units

    def _spec_fields(self) -> dict[str, Any]:
        return {
            "kind": "gru",
            "recurrent_activation": _activation_id(self.recurrent_activation),
            "reset_after": self.reset_after,
        }

    def build(self, input_shape: Any) -> None:
        # Row-major: on a CPU a GRU runs the native loop, which takes the kernels as they are
        # stored; the fused GRU (cuDNN) reorders the gate blocks into new tensors anyway.
        self._add_kernels(input_shape, gates=3, column_major=False)
        if not self.use_bias:
            self.bias = None
        elif self.reset_after:
            self._add_bias((2, 3 * self.units), self.bias_initializer)
        else:
            self._add_bias((3 * self.units,), self.bias_initializer)

    def _input_bias(self) -> Tensor | None:
        if self.bias is not None and self.reset_after:
            return self.bias[0]
        return self.bias

    def step_from_projection(
        self, projected: Tensor, states: list[Tensor], training: bool | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        h_tm1 = states[0]
        h_dropped = self._recurrent_dropped(h_tm1, training)
        u = self.units
        if self.reset_after:
            if self.bias is not None:
                inner = torch.addmm(self.bias[1], h_dropped, self.recurrent_kernel)
            else:
                inner = h_dropped @ self.recurrent_kernel
        else:
            inner = h_dropped @ self.recurrent_kernel[:, : 2 * u]
        gates_zr = projected[:, : 2 * u] + inner[:, : 2 * u]
        if activations.is_elementwise(self.recurrent_activation):
            z, r = self.recurrent_activation(gates_zr).chunk(2, dim=-1)
        else:
            z_in, r_in = gates_zr.chunk(2, dim=-1)
            z, r = self.recurrent_activation(z_in), self.recurrent_activation(r_in)
        if self.reset_after:
            rec_h = r * inner[:, 2 * u :]
        else:
            rec_h = (r * h_dropped) @ self.recurrent_kernel[:, 2 * u :]
        hh = self.activation(projected[:, 2 * u :] + rec_h)
        h = torch.lerp(hh, h_tm1, z)  # z * h_tm1 + (1 - z) * hh
        return h, [h]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
        }
