"""What a symbolic call of a recurrent layer gives, told from shapes (no placeholder run).

A recurrent layer called on one ``(N, T, *F)`` KerasTensor gives ``(N, T, *H)`` with
``return_sequences`` (carrying the input's ``(N, T)`` mask, if any) or ``(N, *H)``, where ``H``
is the per-sample shape of one step's output of its cell, then with ``return_state`` one
``(N, *s)`` per state shape ``s`` of the cell, in the structure of the cell's states. Both follow
from the cell's weights when the cell is one whose step is known here:

* ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``: ``H = (units,)``; the kernel is
  ``(F, k * units)``.
* ``ConvLSTMCell``: ``H`` is its state shape, ``(*S', filters)`` or ``(filters, *S')``, fixed
  when it was built for the step shape ``F``.
* ``StackedRNNCells``: each cell steps on the previous one's output; ``H`` is the last one's.
* ``DropoutCell``: the wrapped cell's step (dropout only acts in training; symbolic calls infer).
* ``OutputProjectionCell``: ``H = (output_size,)``, its ``(H_cell, output_size)`` projection
  kernel applied to the wrapped cell's output.

Any other cell (a user's cell may return other shapes than it declares) is run on placeholders
(:func:`rnnkit.symbolic.infer_outputs`), as is any weight that does not fit the input, so that
the run raises the layer's own error.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import tree
from rnnkit.layers.cell_protocol import StateSpec
from rnnkit.layers.cell_wrappers import DropoutCell, OutputProjectionCell
from rnnkit.layers.conv_lstm_cell import ConvLSTMCell
from rnnkit.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.layers.stacked_cells import StackedRNNCells
from rnnkit.symbolic import KerasTensor

_BUILT_IN_CELLS = (SimpleRNNCell, LSTMCell, GRUCell)


def step_rank(cell: Any) -> int | None:
    """The rank of the per-sample input of one step of ``cell`` (1 for ``(N, F)``) when it is
    a cell whose step this module knows (its docstring lists them), else None."""
    kind = type(cell)
    if kind is StackedRNNCells:
        ranks = [step_rank(inner) for inner in cell.cells]
        return None if not ranks or None in ranks else ranks[0]
    if kind in (DropoutCell, OutputProjectionCell):
        return step_rank(cell.cell)
    if kind in _BUILT_IN_CELLS:
        return 1
    if kind is ConvLSTMCell:
        return cell.rank + 1
    return None


def step_output_shape(
    cell: Any, features: tuple[int, ...], dtype: torch.dtype
) -> tuple[int, ...] | None:
    """``H``, the per-sample shape of one step's output of the built ``cell`` on
    ``(N, *features)`` inputs in ``dtype``, told from its weights; None for a cell not listed
    in this module's docstring, or when a weight does not take ``features`` or is not in
    ``dtype``."""
    kind = type(cell)
    if kind in _BUILT_IN_CELLS:
        kernel = cell.kernel
        fits = features == (kernel.shape[0],) and kernel.dtype == dtype
        return (cell.units,) if fits else None
    if kind is ConvLSTMCell:
        channels_last = cell.data_format == "channels_last"
        built = (
            (*cell.spatial_dims, cell.input_dim)
            if channels_last
            else (cell.input_dim, *cell.spatial_dims)
        )
        fits = features == built and cell.kernel.dtype == dtype
        return tuple(cell._state_shape) if fits else None
    if kind is StackedRNNCells:
        shape: tuple[int, ...] | None = features
        for inner in cell.cells:
            shape = step_output_shape(inner, shape, dtype)
            if shape is None:
                return None
        return shape
    if kind is DropoutCell:
        return step_output_shape(cell.cell, features, dtype)
    if kind is OutputProjectionCell:
        inner = step_output_shape(cell.cell, features, dtype)
        kernel = cell.projection.kernel
        if inner != (kernel.shape[0],) or kernel.dtype != dtype:
            return None
        return (cell.output_size,)
    return None


def recurrent_outputs(
    inputs: KerasTensor,
    step_shape: tuple[int, ...],
    state_specs: Any,
    dtype: torch.dtype,
    return_sequences: bool,
    return_state: bool,
) -> Any:
    """The outputs of a recurrent layer on ``inputs`` ``(N, T, *F)`` whose cell steps to
    ``step_shape`` outputs and carries states shaped by ``state_specs`` (a structure of
    :class:`StateSpec`): the output (with the input's mask when it is a sequence), then with
    ``return_state`` the final states in that structure, all in ``dtype``."""
    batch, timesteps = inputs.shape[0], inputs.shape[1]
    mask = inputs._keras_mask
    if return_sequences:
        output = KerasTensor((batch, timesteps, *step_shape), dtype)
        if mask is not None:
            output._keras_mask = KerasTensor(mask.shape, mask.dtype)
    else:
        output = KerasTensor((batch, *step_shape), dtype)
    if not return_state:
        return output
    states = tree.map_structure(lambda spec: KerasTensor((batch, *spec.shape), dtype), state_specs)
    return (output, *states)


def fits_initial_state(initial_state: Any, state_specs: Any, batch: int | None) -> bool:
    """Whether ``initial_state`` is KerasTensors of floating dtype, one ``(N, *s)`` per state
    shape ``s`` in ``state_specs`` (flattened, in order)."""
    given = tree.flatten(initial_state)
    specs: list[StateSpec] = tree.flatten(state_specs)
    return len(given) == len(specs) and all(
        isinstance(s, KerasTensor) and s.shape == (batch, *spec.shape) and s.dtype.is_floating_point
        for s, spec in zip(given, specs)
    )
