"""A custom cell with nested inputs, states and outputs, run by ``RNN``.

Each time step carries two features: a vector (``feature1``, size ``input_1``) and a matrix
(``feature2``, ``input_2 x input_3``), like audio and video of a frame. The cell keeps one state
per feature and returns two outputs; ``RNN`` loops it over time and keeps the structure.

    output_1 = x1_t @ kernel_1                       (batch, unit_1)
    output_2 = einsum("bij,ijkl->bkl", x2_t, kernel_2_3)   (batch, unit_2, unit_3)
    state_1' = state_1 + output_1;  state_2' = state_2 + output_2
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

import rnnkit
from rnnkit import layers

NestedInput = collections.namedtuple("NestedInput", ["feature1", "feature2"])
NestedState = collections.namedtuple("NestedState", ["state1", "state2"])


class NestedCell(layers.Layer):
    def __init__(self, unit_1: int, unit_2: int, unit_3: int, **kwargs: object) -> None:
        self.unit_1 = unit_1
        self.unit_2 = unit_2
        self.unit_3 = unit_3
        self.state_size = [unit_1, (unit_2, unit_3)]
        self.output_size = [unit_1, (unit_2, unit_3)]
        super().__init__(**kwargs)

    def build(self, input_shapes: object) -> None:
        # Expect input_shapes to contain 2 items, [(batch, i1), (batch, i2, i3)]
        i1 = input_shapes[0][1]
        i2 = input_shapes[1][1]
        i3 = input_shapes[1][2]
        self.kernel_1 = self.add_weight(
            shape=(i1, self.unit_1), initializer="uniform", name="kernel_1"
        )
        self.kernel_2_3 = self.add_weight(
            shape=(i2, i3, self.unit_2, self.unit_3), initializer="uniform", name="kernel_2_3"
        )

    def call(self, inputs: object, states: object) -> tuple[list, list]:
        # inputs should be in [(batch, input_1), (batch, input_2, input_3)]
        # state should be in shape [(batch, unit_1), (batch, unit_2, unit_3)]
        input_1, input_2 = inputs
        s1, s2 = states
        output_1 = input_1 @ self.kernel_1
        output_2_3 = torch.einsum("bij,ijkl->bkl", input_2, self.kernel_2_3)
        state_1 = s1 + output_1
        state_2_3 = s2 + output_2_3
        output = (output_1, output_2_3)
        new_states = (state_1, state_2_3)
        return output, new_states

    def get_config(self) -> dict:
        return {"unit_1": self.unit_1, "unit_2": self.unit_2, "unit_3": self.unit_3}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smaller sizes (for the tests)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    unit_1, unit_2, unit_3 = 10, 20, 30
    i1, i2, i3 = 32, 64, 32
    batch_size, num_batches, timestep = 64, 10, 50
    if args.small:
        i2, i3, batch_size, num_batches, timestep = 8, 4, 8, 2, 5

    cell = NestedCell(unit_1, unit_2, unit_3)
    rnn = layers.RNN(cell)
    input_1 = layers.Input((None, i1))
    input_2 = layers.Input((None, i2, i3))
    outputs = rnn(NestedInput(feature1=input_1, feature2=input_2))
    model = rnnkit.Model([input_1, input_2], outputs)
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy"])
    model.summary()

    rng = np.random.default_rng(0)
    n = batch_size * num_batches
    input_1_data = rng.random((n, timestep, i1)).astype("float32")
    input_2_data = rng.random((n, timestep, i2, i3)).astype("float32")
    target_1_data = rng.random((n, unit_1)).astype("float32")
    target_2_data = rng.random((n, unit_2, unit_3)).astype("float32")
    input_data = [input_1_data, input_2_data]
    target_data = [target_1_data, target_2_data]
    model.fit(input_data, target_data, batch_size=batch_size, verbose=2)

    # The RNN layer against a hand-written loop over the same cell.
    x1, x2 = torch.as_tensor(input_1_data[:3]), torch.as_tensor(input_2_data[:3])
    states = (torch.zeros(3, unit_1), torch.zeros(3, unit_2, unit_3))
    for t in range(timestep):
        out, states = cell((x1[:, t], x2[:, t]), states)
    y1, y2 = rnn(NestedInput(feature1=x1, feature2=x2))
    diff = max((y1 - out[0]).abs().max().item(), (y2 - out[1]).abs().max().item())
    print(f"outputs {tuple(y1.shape)} and {tuple(y2.shape)}; max |RNN - hand loop| = {diff:.1e}")
    assert diff < 1e-3 * max(1.0, out[1].abs().max().item())


if __name__ == "__main__":
    main()
