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

This module also holds the cell protocol helpers the RNN layer uses for any cell:
:func:`state_spec` (a cell's ``state_size`` as a structure of :class:`StateSpec` shapes),
:func:`cell_initial_state` (``get_initial_state`` in its Keras 3 or tf.keras form),
:func:`cell_output_shape` and :func:`reset_dropout_masks`.

>>> import torch
>>> cell = LSTMCell(4)
>>> h, (h2, c) = cell(torch.ones(2, 3), [torch.zeros(2, 4), torch.zeros(2, 4)])
>>> tuple(h.shape), [tuple(w.shape) for w in cell.weights]
((2, 4), [(3, 16), (4, 16), (16,)])
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from rnnkit import activations, constraints, initializers, regularizers, tree
from rnnkit.layers.base import Layer

Tensor = torch.Tensor


def _check_units(units: Any, owner: str) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"{owner}: units must be a positive integer, received units={units!r}")
    return units


def _check_rate(rate: Any, argument: str, owner: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"{owner}: {argument} must be a float in [0, 1), received {argument}={rate!r}"
        )
    return float(rate)


class DropoutRNNCell:
    """Variational dropout masks for a cell (a mixin, as Keras' ``DropoutRNNCell``).

    The mixing class sets ``dropout``, ``recurrent_dropout`` and ``seed``. A mask is drawn on
    the first request after a reset and then reused, so every time step of one sequence sees
    the same mask. Masks are scaled by ``1 / (1 - rate)`` (inverted dropout).
    """

    dropout: float
    recurrent_dropout: float
    seed: int | None

    def _draw_mask(self, like: Tensor, rate: float) -> Tensor:
        keep = 1.0 - rate
        generator = getattr(self, "_dropout_generator", None)
        if generator is None and self.seed is not None:
            generator = torch.Generator().manual_seed(int(self.seed))
            self._dropout_generator = generator
        if generator is not None:  # seeded: draw on the CPU generator, then move
            probs = torch.full(like.shape, keep, dtype=like.dtype)
            mask = torch.bernoulli(probs, generator=generator).to(like.device)
        else:
            mask = torch.bernoulli(torch.full_like(like, keep))
        return mask / keep

    def get_dropout_mask(self, step_input: Tensor) -> Tensor | None:
        """The input mask shaped like ``step_input`` (``None`` when ``dropout == 0``)."""
        if getattr(self, "_dropout_mask", None) is None and self.dropout > 0:
            self._dropout_mask = self._draw_mask(step_input, self.dropout)
        return getattr(self, "_dropout_mask", None)

    def get_recurrent_dropout_mask(self, step_state: Tensor) -> Tensor | None:
        """The recurrent mask shaped like ``step_state`` (``None`` when the rate is 0)."""
        if getattr(self, "_recurrent_dropout_mask", None) is None and self.recurrent_dropout > 0:
            self._recurrent_dropout_mask = self._draw_mask(step_state, self.recurrent_dropout)
        return getattr(self, "_recurrent_dropout_mask", None)

    def reset_dropout_mask(self) -> None:
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self) -> None:
        self._recurrent_dropout_mask = None


def reset_dropout_masks(cell: Any) -> None:
    """Clear the cached dropout masks of ``cell`` and of any cells it wraps or stacks."""
    if isinstance(cell, DropoutRNNCell):
        cell.reset_dropout_mask()
        cell.reset_recurrent_dropout_mask()
    for inner in getattr(cell, "cells", None) or ():
        reset_dropout_masks(inner)
    inner = getattr(cell, "cell", None)
    if inner is not None and inner is not cell:
        reset_dropout_masks(inner)


# ------------------------------------------------------------------ the cell protocol
class StateSpec:
    """The shape of one state without the batch axis (a leaf in a state structure)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(d) for d in shape)

    def __repr__(self) -> str:
        return f"StateSpec({self.shape})"


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _as_shape(x: Any) -> tuple[int, ...] | None:
    """``x`` as a shape when it is one (int, torch.Size, TensorShape-like), else None."""
    if _is_int(x):
        return (int(x),)
    if isinstance(x, torch.Size):
        return tuple(x)
    if hasattr(x, "as_list") and callable(x.as_list):
        return tuple(x.as_list())
    return None


def _inner_spec(x: Any, owner: str) -> Any:
    shape = _as_shape(x)
    if shape is not None:
        return StateSpec(shape)
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields") and all(_is_int(d) for d in x):
        return StateSpec(tuple(x))  # a tuple of ints inside a structure is one state's shape
    if isinstance(x, dict):
        return {k: _inner_spec(v, owner) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        items = [_inner_spec(v, owner) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
    raise ValueError(
        f"{owner}: the cell's state_size must be an int, a shape or a list/tuple/dict of them, "
        f"received an entry {x!r}"
    )


def state_spec(cell: Any, owner: str = "RNN") -> Any:
    """The canonical state structure of ``cell`` with :class:`StateSpec` leaves.

    An int or a shape gives ``[spec]``; a list, tuple or namedtuple gives a list (one entry
    per state); a dict stays a dict; a :class:`StackedRNNCells` gives one entry per cell.
    """
    from rnnkit.layers.rnn import StackedRNNCells

    if isinstance(cell, StackedRNNCells):
        return [state_spec(c, owner) for c in cell.cells]
    size = getattr(cell, "state_size", None)
    if size is None:
        raise ValueError(
            f"{owner}: the cell {type(cell).__name__} must define state_size (an int, a shape "
            "or a list of them), received state_size=None"
        )
    if _as_shape(size) is not None:
        return [StateSpec(_as_shape(size))]
    if isinstance(size, dict):
        return {k: _inner_spec(v, owner) for k, v in size.items()}
    if isinstance(size, (list, tuple)):
        return [_inner_spec(v, owner) for v in size]
    raise ValueError(
        f"{owner}: the cell's state_size must be an int, a shape or a list of them, "
        f"received {size!r}"
    )


def accepts_argument(fn: Any, argument: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return argument in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def check_cell(cell: Any, owner: str, argument: str = "cell") -> None:
    if not callable(getattr(cell, "call", None)):
        raise ValueError(
            f"{owner}: {argument} must have a call(inputs, states) method, received "
            f"{type(cell).__name__}"
        )
    if getattr(cell, "state_size", None) is None:
        raise ValueError(
            f"{owner}: {argument} must have a state_size attribute (an int, a shape or a list "
            f"of them, one per state), received {type(cell).__name__} without one"
        )


def cell_output_shape(cell: Any) -> tuple[int, ...]:
    """The per-sample output shape of ``cell``: ``output_size``, else its first state's."""
    size = getattr(cell, "output_size", None)
    if size is not None and _as_shape(size) is not None:
        return _as_shape(size)
    if isinstance(size, (list, tuple)) and size and all(_is_int(d) for d in size):
        return tuple(int(d) for d in size)
    return tree.flatten(state_spec(cell))[0].shape


def cell_initial_state(cell: Any, batch_size: int, dtype: torch.dtype, inputs: Any = None) -> Any:
    """``cell.get_initial_state`` called in whichever form it has; None when it has none."""
    fn = getattr(cell, "get_initial_state", None)
    if fn is None:
        return None
    kwargs: dict[str, Any] = {}
    if accepts_argument(fn, "inputs") and "inputs" in inspect.signature(fn).parameters:
        kwargs["inputs"] = inputs
    if accepts_argument(fn, "batch_size"):
        kwargs["batch_size"] = batch_size
    if accepts_argument(fn, "dtype"):
        kwargs["dtype"] = dtype
    return fn(**kwargs)


class _Cell(DropoutRNNCell, Layer):
    """What the three built-in cells share: arguments, validation, config, initial state."""

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
        dropout = _check_rate(dropout, "dropout", owner)
        recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout", owner)
        kwargs.pop("implementation", None)  # Keras' implementation switch: one path here
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

    def _add_kernels(self, input_shape: Any, gates: int) -> None:
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

    def _add_bias(self, shape: tuple[int, ...], initializer: Any) -> None:
        self.bias = self.add_weight(
            shape=shape,
            name="bias",
            initializer=initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def _dropped(self, inputs: Tensor, h_tm1: Tensor, training: bool | None) -> tuple:
        """Inputs and previous output with this sequence's dropout masks applied."""
        if training:
            if self.dropout > 0:
                inputs = inputs * self.get_dropout_mask(inputs)
            if self.recurrent_dropout > 0:
                h_tm1 = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        return inputs, h_tm1

    def get_initial_state(self, batch_size: int | None = None, dtype: Any = None) -> list[Tensor]:
        """Zero states, one ``(batch_size, units)`` tensor per entry of ``state_size``."""
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        device = next((p.device for p in self.parameters()), None)
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


def _first_state(states: Any) -> Tensor:
    return states[0] if tree.is_nested(states) else states


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

    def build(self, input_shape: Any) -> None:
        self._add_kernels(input_shape, gates=1)
        if self.use_bias:
            self._add_bias((self.units,), self.bias_initializer)
        else:
            self.bias = None

    def call(self, inputs: Tensor, states: Any, training: bool | None = None) -> tuple:
        prev_output = _first_state(states)
        inputs, prev_output = self._dropped(inputs, prev_output, training)
        h = inputs @ self.kernel
        if self.bias is not None:
            h = h + self.bias
        output = self.activation(h + prev_output @ self.recurrent_kernel)
        return output, ([output] if tree.is_nested(states) else output)


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

    def call(self, inputs: Tensor, states: Any, training: bool | None = None) -> tuple:
        h_tm1, c_tm1 = states[0], states[1]
        inputs, h_dropped = self._dropped(inputs, h_tm1, training)
        z = inputs @ self.kernel + h_dropped @ self.recurrent_kernel
        if self.bias is not None:
            z = z + self.bias
        i, f, c, o = z.chunk(4, dim=-1)
        i = self.recurrent_activation(i)
        f = self.recurrent_activation(f)
        o = self.recurrent_activation(o)
        c = f * c_tm1 + i * self.activation(c)
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

    def build(self, input_shape: Any) -> None:
        self._add_kernels(input_shape, gates=3)
        if not self.use_bias:
            self.bias = None
        elif self.reset_after:
            self._add_bias((2, 3 * self.units), self.bias_initializer)
        else:
            self._add_bias((3 * self.units,), self.bias_initializer)

    def call(self, inputs: Tensor, states: Any, training: bool | None = None) -> tuple:
        h_tm1 = _first_state(states)
        inputs, h_dropped = self._dropped(inputs, h_tm1, training)
        u = self.units
        if self.bias is None:
            input_bias = recurrent_bias = None
        elif self.reset_after:
            input_bias, recurrent_bias = self.bias[0], self.bias[1]
        else:
            input_bias, recurrent_bias = self.bias, None
        matrix_x = inputs @ self.kernel
        if input_bias is not None:
            matrix_x = matrix_x + input_bias
        x_z, x_r, x_h = matrix_x.split(u, dim=-1)
        if self.reset_after:
            matrix_inner = h_dropped @ self.recurrent_kernel
            if recurrent_bias is not None:
                matrix_inner = matrix_inner + recurrent_bias
        else:
            matrix_inner = h_dropped @ self.recurrent_kernel[:, : 2 * u]
        rec_z, rec_r = matrix_inner[:, :u], matrix_inner[:, u : 2 * u]
        z = self.recurrent_activation(x_z + rec_z)
        r = self.recurrent_activation(x_r + rec_r)
        if self.reset_after:
            rec_h = r * matrix_inner[:, 2 * u :]
        else:
            rec_h = (r * h_dropped) @ self.recurrent_kernel[:, 2 * u :]
        hh = self.activation(x_h + rec_h)
        h = z * h_tm1 + (1 - z) * hh
        return h, ([h] if tree.is_nested(states) else h)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
        }
