"""``StackedRNNCells``: a list of cells run one after another at each step, acting as one cell.

>>> import torch
>>> from rnnkit.layers.rnn_cells import GRUCell, LSTMCell
>>> cells = StackedRNNCells([LSTMCell(4), GRUCell(2)])
>>> out, states = cells(torch.ones(3, 5), cells.get_initial_state(3))
>>> tuple(out.shape), [len(s) for s in states]
((3, 2), [2, 1])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnkit import tree
from rnnkit.layers.base import Layer
from rnnkit.layers.cell_protocol import (
    CellStack,
    accepts_argument,
    cell_initial_state,
    cell_output_shape,
    check_cell,
    state_spec,
)
from rnnkit.layers.serialization import deserialize, serialize


class StackedRNNCells(CellStack, Layer):
    """A list of cells run one after another at each step, acting as a single cell.

    The output of cell ``k`` is the input of cell ``k + 1``; the states are one entry per cell
    (``[[h1, c1], [h2, c2]]`` for two LSTM cells). ``RNN([cell1, cell2])`` builds one.

    Args:
        cells: the cells, bottom first.
    """

    def __init__(self, cells: list[Any], **kwargs: Any) -> None:
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(
                f"StackedRNNCells: cells must be a non-empty list of cells, received {cells!r}"
            )
        for cell in cells:
            check_cell(cell, "StackedRNNCells", "every cell in cells")
        super().__init__(**kwargs)
        if all(isinstance(c, nn.Module) for c in cells):
            self.cells = nn.ModuleList(cells)
        else:
            self.cells = list(cells)
            for i, c in enumerate(cells):
                if isinstance(c, nn.Module):
                    self.add_module(f"cell_{i}", c)

    @property
    def state_size(self) -> list[Any]:
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> Any:
        last = self.cells[-1]
        return getattr(last, "output_size", None) or cell_output_shape(last)

    def build(self, input_shape: Any) -> None:
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell.build(input_shape)
            batch = tree.flatten(input_shape)[0] if tree.is_nested(input_shape) else None
            batch = input_shape[0] if batch is None and input_shape else batch
            input_shape = (batch, *cell_output_shape(cell))

    def get_initial_state(self, batch_size: int | None = None, dtype: Any = None) -> list[Any]:
        dtype = dtype if isinstance(dtype, torch.dtype) else self.compute_dtype
        device = next((p.device for p in self.parameters()), None)
        states = []
        for cell in self.cells:
            state = cell_initial_state(cell, batch_size, dtype)
            if state is None:
                state = tree.map_structure(
                    lambda s: torch.zeros((batch_size, *s.shape), dtype=dtype, device=device),
                    state_spec(cell),
                )
            states.append(state)
        return states

    def call(
        self, inputs: Any, states: Any, training: bool | None = None, constants: Any = None
    ) -> tuple[Any, list[Any]]:
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            kwargs: dict[str, Any] = {}
            if accepts_argument(cell.call, "training"):
                kwargs["training"] = training
            if constants is not None and accepts_argument(cell.call, "constants"):
                kwargs["constants"] = constants
            inputs, cell_states = cell.call(inputs, cell_states, **kwargs)
            new_states.append(cell_states)
        return inputs, new_states

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cells": [serialize(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> StackedRNNCells:
        config = dict(config)
        cells = [deserialize(c, custom_objects) for c in config.pop("cells")]
        return cls(cells, **config)
