"""Cell wrappers from TF1 (seed 004) in Keras form: ``DropoutCell`` and ``OutputProjectionCell``.

A wrapper is itself a cell (``state_size``, ``output_size``, ``call(inputs, states,
training=None)``, ``build``), so it goes anywhere a cell goes: ``RNN(DropoutCell(LSTMCell(8)))``
or inside a list of stacked cells.

- :class:`DropoutCell` is ``tf.nn.rnn_cell.DropoutWrapper``: dropout on the cell's inputs, its
  outputs and its new states, with *keep* probabilities; only in training.
- :class:`OutputProjectionCell` is ``tf.contrib.rnn.OutputProjectionWrapper``: a dense layer
  applied to the cell's output at every step (the states are not projected).

>>> import torch
>>> from rnnkit.layers import Layer
>>> class Accumulate(Layer):
...     state_size = 3
...     def call(self, inputs, states):
...         new = states[0] + inputs
...         return new, [new]
>>> cell = OutputProjectionCell(Accumulate(), output_size=1)
>>> out, states = cell(torch.ones(2, 3), [torch.zeros(2, 3)])
>>> tuple(out.shape), tuple(states[0].shape)
((2, 1), (2, 3))
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from rnnkit import activations, initializers, tree
from rnnkit.layers.base import Layer
from rnnkit.layers.cell_protocol import cell_initial_state, cell_output_shape, state_spec
from rnnkit.layers.rnn_cells import DropoutRNNCell, LSTMCell
from rnnkit.layers.serialization import deserialize, serialize


def _check_cell(cell: Any, wrapper: str) -> None:
    if not isinstance(cell, Layer):
        raise TypeError(
            f"{wrapper}: cell must be an rnnkit Layer (a cell with call(inputs, states) and "
            f"state_size), received {cell!r} of type {type(cell).__name__}"
        )
    if getattr(cell, "state_size", None) is None:
        raise ValueError(
            f"{wrapper}: cell {type(cell).__name__} '{cell.name}' has no state_size; "
            "a cell must define state_size (an int, a shape tuple, or a list of them)"
        )


def _accepts(fn: Any, argument: str) -> bool:
    params = inspect.signature(fn).parameters
    return argument in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def _call_cell(
    cell: Layer, inputs: Any, states: Any, training: bool | None, constants: Any
) -> tuple[Any, Any]:
    """One step of the wrapped cell: ``cell.call`` directly, as the ``RNN`` loop calls cells
    (the wrapper's ``build`` has built it)."""
    kwargs: dict[str, Any] = {}
    if _accepts(cell.call, "training"):
        kwargs["training"] = training
    if constants is not None:
        if not _accepts(cell.call, "constants"):
            raise ValueError(
                f"cell {type(cell).__name__} '{cell.name}' does not accept constants, but "
                "constants were given"
            )
        kwargs["constants"] = constants
    return cell.call(inputs, states, **kwargs)


class _CellWrapper(Layer):
    """Shared plumbing: the wrapped cell is a sublayer; states and initial states are its own."""

    def __init__(self, cell: Layer, **kwargs: Any) -> None:
        _check_cell(cell, type(self).__name__)
        super().__init__(**kwargs)
        self.cell = cell

    @property
    def state_size(self) -> Any:
        return self.cell.state_size

    def build(self, input_shape: Any) -> None:
        if not self.cell.built:
            self.cell.build(input_shape)
            self.cell.built = True

    def get_initial_state(self, batch_size: int | None = None, dtype: Any = None) -> Any:
        """The wrapped cell's initial states (zeros shaped by ``state_size`` if it has none)."""
        dtype = dtype if isinstance(dtype, torch.dtype) else self.compute_dtype
        states = cell_initial_state(self.cell, batch_size, dtype)
        if states is not None:
            return states
        device = next((p.device for p in self.parameters()), None)
        return tree.map_structure(
            lambda spec: torch.zeros((batch_size, *spec.shape), dtype=dtype, device=device),
            state_spec(self.cell, type(self).__name__),
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cell": serialize(self.cell)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Layer:
        config = dict(config)
        cell = deserialize(config.pop("cell"), custom_objects)
        return cls(cell, **config)


def _check_keep_prob(value: Any, argument: str, wrapper: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{wrapper}: {argument} must be a float in (0, 1], received {value!r} of type "
            f"{type(value).__name__}"
        )
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{wrapper}: {argument} must be in (0, 1], received {value!r}")
    return float(value)


class DropoutCell(DropoutRNNCell, _CellWrapper):
    """Dropout around a cell, as TF1's ``DropoutWrapper``: on its inputs, outputs and new states.

    At each step, in training only::

        x_t' = x_t * m_in / p_in
        y_t, s_t = cell(x_t', s_{t-1})
        y_t' = y_t * m_out / p_out,   s_t' = s_t * m_state / p_state

    where ``m ~ Bernoulli(p)`` elementwise and ``p`` are the *keep* probabilities. In inference
    (or with all keep probabilities 1.0) the wrapper is the bare cell.

    Args:
        cell: the cell to wrap (``state_size``, ``call(inputs, states)``).
        input_keep_prob: keep probability for the cell's inputs, in (0, 1].
        output_keep_prob: keep probability for the cell's outputs, in (0, 1].
        state_keep_prob: keep probability for the cell's new states, in (0, 1].
        variational_recurrent: when True, the same dropout masks are used at every step of a
            sequence (Gal & Ghahramani); fresh masks are drawn for each new sequence, i.e. each
            call of the ``RNN`` layer (which calls :meth:`reset_dropout_mask`). When False, fresh
            masks are drawn at every step.
        seed: seed of this wrapper's own random generator (``None``: torch's global generator).
        state_dropout_indices: which flat states get state dropout. ``None`` drops every state
            except an ``LSTMCell``'s carry ``c`` (index 1), as TF's default state filter does;
            a list of indices into the flat list of states selects them explicitly.

    Shapes: inputs ``(N, F)``, states as the wrapped cell's; outputs as the wrapped cell's.

    Inside ``RNN``, masks are drawn once per sequence and per tensor position; the ``RNN``
    layer clears them after each call through :meth:`reset_dropout_mask` (the
    :class:`~rnnkit.layers.rnn_cells.DropoutRNNCell` protocol; this wrapper has no
    ``dropout``/``recurrent_dropout`` of its own, both are 0).
    """

    dropout = 0.0
    recurrent_dropout = 0.0

    def __init__(
        self,
        cell: Layer,
        input_keep_prob: float = 1.0,
        output_keep_prob: float = 1.0,
        state_keep_prob: float = 1.0,
        variational_recurrent: bool = False,
        seed: int | None = None,
        state_dropout_indices: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        name = type(self).__name__
        self.input_keep_prob = _check_keep_prob(input_keep_prob, "input_keep_prob", name)
        self.output_keep_prob = _check_keep_prob(output_keep_prob, "output_keep_prob", name)
        self.state_keep_prob = _check_keep_prob(state_keep_prob, "state_keep_prob", name)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"{name}: seed must be an int or None, received {seed!r}")
        if state_dropout_indices is not None and not all(
            isinstance(i, int) and not isinstance(i, bool) for i in state_dropout_indices
        ):
            raise TypeError(
                f"{name}: state_dropout_indices must be a list of ints or None, received "
                f"{state_dropout_indices!r}"
            )
        super().__init__(cell, **kwargs)
        if state_dropout_indices is not None:
            num_states = len(tree.flatten(state_spec(cell, name)))
            bad = [i for i in state_dropout_indices if not -num_states <= i < num_states]
            if bad:
                raise ValueError(
                    f"{name}: state_dropout_indices {bad} are out of range for cell "
                    f"{type(cell).__name__} '{cell.name}' with {num_states} state tensor(s)"
                )
        self.variational_recurrent = bool(variational_recurrent)
        self.seed = seed
        self.state_dropout_indices = (
            None if state_dropout_indices is None else [int(i) for i in state_dropout_indices]
        )
        self._generators: dict[torch.device, torch.Generator] = {}
        self._masks: dict[tuple[str, int], torch.Tensor] = {}

    @property
    def output_size(self) -> Any:
        return getattr(self.cell, "output_size", None)

    # --------------------------------------------------------------- masks
    def reset_dropout_mask(self) -> None:
        """Forget the cached (variational) masks: the next step draws new ones."""
        self._masks = {}

    def reset_recurrent_dropout_mask(self) -> None:
        """Same as :meth:`reset_dropout_mask` (Keras' ``DropoutRNNCell`` protocol)."""
        self._masks = {}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[device] = generator
        return self._generators[device]

    def _mask(self, kind: str, index: int, x: torch.Tensor, keep_prob: float) -> torch.Tensor:
        key = (kind, index)
        cached = self._masks.get(key) if self.variational_recurrent else None
        if cached is not None and cached.shape == x.shape and cached.device == x.device:
            return cached
        noise = torch.rand(x.shape, generator=self._generator(x.device), device=x.device)
        mask = (noise < keep_prob).to(x.dtype) / keep_prob
        if self.variational_recurrent:
            self._masks[key] = mask
        return mask

    def _dropout(
        self, structure: Any, kind: str, keep_prob: float, indices: list[int] | None = None
    ) -> Any:
        flat = tree.flatten(structure)
        out = []
        for i, x in enumerate(flat):
            selected = indices is None or i in indices
            if selected and isinstance(x, torch.Tensor) and x.is_floating_point():
                x = x * self._mask(kind, i, x, keep_prob)
            out.append(x)
        return tree.pack_sequence_as(structure, out)

    def _state_indices(self, num_states: int) -> list[int]:
        if self.state_dropout_indices is not None:
            return [i if i >= 0 else num_states + i for i in self.state_dropout_indices]
        inner = self.cell
        while isinstance(inner, _CellWrapper):
            inner = inner.cell
        if isinstance(inner, LSTMCell) and num_states == 2:
            return [0]
        return list(range(num_states))

    # ---------------------------------------------------------------- call
    def call(
        self, inputs: Any, states: Any, training: bool | None = None, constants: Any = None
    ) -> tuple[Any, Any]:
        if training and self.input_keep_prob < 1.0:
            inputs = self._dropout(inputs, "input", self.input_keep_prob)
        output, new_states = _call_cell(self.cell, inputs, states, training, constants)
        if training and self.state_keep_prob < 1.0:
            indices = self._state_indices(len(tree.flatten(new_states)))
            new_states = self._dropout(new_states, "state", self.state_keep_prob, indices)
        if training and self.output_keep_prob < 1.0:
            output = self._dropout(output, "output", self.output_keep_prob)
        return output, new_states

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "input_keep_prob": self.input_keep_prob,
            "output_keep_prob": self.output_keep_prob,
            "state_keep_prob": self.state_keep_prob,
            "variational_recurrent": self.variational_recurrent,
            "seed": self.seed,
            "state_dropout_indices": self.state_dropout_indices,
        }


class _Projection(Layer):
    """``activation(x @ kernel + bias)``: the dense map inside :class:`OutputProjectionCell`."""

    def __init__(
        self,
        units: int,
        activation: Any,
        use_bias: bool,
        kernel_initializer: Any,
        bias_initializer: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(
            shape=(int(input_shape[-1]), self.units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.bias = (
            self.add_weight(shape=(self.units,), initializer=self.bias_initializer, name="bias")
            if self.use_bias
            else None
        )

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        y = inputs @ self.kernel
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)


class OutputProjectionCell(_CellWrapper):
    """A dense projection of a cell's output, as ``tf.contrib.rnn.OutputProjectionWrapper``.

    At each step::

        y_t, s_t = cell(x_t, s_{t-1})
        y_t' = activation(y_t @ kernel + bias)

    The states are the wrapped cell's, unprojected. ``RNN(OutputProjectionCell(cell, k))``
    equals ``RNN(cell)`` followed by ``TimeDistributed(Dense(k))`` with the same weights.

    Args:
        cell: the cell to wrap; its per-step output must be ``(N, H)``.
        output_size: ``K``, the size of the projected output.
        activation: applied after the projection (``None``: linear, as TF).
        use_bias: whether the projection has a bias.
        kernel_initializer: initializer of the ``(H, K)`` kernel.
        bias_initializer: initializer of the ``(K,)`` bias.

    Weights, in order: the wrapped cell's, then ``projection/kernel`` ``(H, K)`` and
    ``projection/bias`` ``(K,)`` (the layout of a ``Dense(K)`` on ``H`` features).
    """

    def __init__(
        self,
        cell: Layer,
        output_size: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        name = type(self).__name__
        if isinstance(output_size, bool) or not isinstance(output_size, int):
            raise TypeError(f"{name}: output_size must be a positive int, received {output_size!r}")
        if output_size <= 0:
            raise ValueError(f"{name}: output_size must be positive, received {output_size}")
        super().__init__(cell, **kwargs)
        self._output_size = output_size
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.projection = _Projection(
            output_size,
            self.activation,
            self.use_bias,
            self.kernel_initializer,
            self.bias_initializer,
            name="projection",
            dtype=kwargs.get("dtype"),
        )

    @property
    def output_size(self) -> int:
        return self._output_size

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        if not self.projection.built:
            self.projection.build((None, *cell_output_shape(self.cell)))
            self.projection.built = True

    def call(
        self, inputs: Any, states: Any, training: bool | None = None, constants: Any = None
    ) -> tuple[Any, Any]:
        output, new_states = _call_cell(self.cell, inputs, states, training, constants)
        if not isinstance(output, torch.Tensor):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the wrapped cell must return one output "
                f"tensor per step, received {type(output).__name__}"
            )
        return self.projection.call(output), new_states

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "output_size": self._output_size,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }
