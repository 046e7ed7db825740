"""What a symbolic call of a recurrent layer gives, told from shapes (no placeholder run).

A recurrent layer called on one ``(N, T, F)`` KerasTensor gives ``(N, T, H)`` with
``return_sequences`` (carrying the input's ``(N, T)`` mask, if any) or ``(N, H)``, where ``H``
is the size of one step's output of its cell, then with ``return_state`` one ``(N, *s)`` per
state shape ``s`` of the cell, in the structure of the cell's states. Both follow from the cell's
weights when the cell is one whose step is known here:

* ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``: ``H = units``; the kernel is ``(F, k * units)``.
* ``StackedRNNCells``: each cell steps on the previous one's output; ``H`` is the last one's.
* ``DropoutCell``: the wrapped cell's step (dropout only acts in training; symbolic calls infer).
* ``OutputProjectionCell``: ``H = output_size``, its ``(H_cell, output_size)`` projection kernel
  applied to the wrapped cell's output.

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
from rnnkit.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.layers.stacked_cells import StackedRNNCells
from rnnkit.symbolic import KerasTensor

_BUILT_IN_CELLS = (SimpleRNNCell, LSTMCell, GRUCell)


def knows_step(cell: Any) -> bool:
    """Whether ``cell`` is one whose step this module knows (its docstring lists them)."""
    kind = type(cell)
    if kind is StackedRNNCells:
        return all(knows_step(inner) for inner in cell.cells)
    if kind in (DropoutCell, OutputProjectionCell):
        return knows_step(cell.cell)
    return kind in _BUILT_IN_CELLS


def step_output_size(cell: Any, features: int, dtype: torch.dtype) -> int | None:
    """``H``, the size of one step's output of the built ``cell`` on ``(N, features)`` inputs
    in ``dtype``, told from its weights; None for a cell not listed in this module's
    docstring, or when a weight does not take ``features`` inputs or is not in ``dtype``."""
    kind = type(cell)
    if kind in _BUILT_IN_CELLS:
        kernel = cell.kernel
        fits = kernel.shape[0] == features and kernel.dtype == dtype
        return cell.units if fits else None
    if kind is StackedRNNCells:
        size: int | None = features
        for inner in cell.cells:
            size = step_output_size(inner, size, dtype)
            if size is None:
                return None
        return size
    if kind is DropoutCell:
        return step_output_size(cell.cell, features, dtype)
    if kind is OutputProjectionCell:
        inner = step_output_size(cell.cell, features, dtype)
        kernel = cell.projection.kernel
        if inner is None or kernel.shape[0] != inner or kernel.dtype != dtype:
            return None
        return cell.output_size
    return None


def recurrent_outputs(
    inputs: KerasTensor,
    units: int,
    state_specs: Any,
    dtype: torch.dtype,
    return_sequences: bool,
    return_state: bool,
) -> Any:
    """The outputs of a recurrent layer on ``inputs`` ``(N, T, F)`` whose cell steps to
    ``units`` outputs and carries states shaped by ``state_specs`` (a structure of
    :class:`StateSpec`): the output (with the input's mask when it is a sequence), then with
    ``return_state`` the final states in that structure, all in ``dtype``."""
    batch, timesteps = inputs.shape[0], inputs.shape[1]
    mask = inputs._keras_mask
    if return_sequences:
        output = KerasTensor((batch, timesteps, units), dtype)
        if mask is not None:
            output._keras_mask = KerasTensor(mask.shape, mask.dtype)
    else:
        output = KerasTensor((batch, units), dtype)
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
