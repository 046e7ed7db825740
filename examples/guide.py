"""Placeholder demo (to be replaced by the full "Working with RNNs" guide demo).

Builds a tiny model from rnnkit layers (Dense -> Dense), trains it with a plain PyTorch loop on
synthetic regression data, and prints the loss going down. Runs in a few seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import torch

import rnnkit
from rnnkit import layers


class TinyModel(layers.Layer):
    """``Dense(16, relu) -> Dense(1)``: a Keras-style layer made of two sublayers."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.hidden = layers.Dense(16, activation="relu")
        self.out = layers.Dense(1)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(inputs))


def main() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype("float32")
    true_w = rng.standard_normal((8, 1)).astype("float32")
    y = np.tanh(x @ true_w) + 0.05 * rng.standard_normal((256, 1)).astype("float32")
    x_t, y_t = torch.as_tensor(x), torch.as_tensor(y)

    model = TinyModel()
    model(x_t[:1])  # build lazily so that parameters() exist
    print(f"rnnkit {rnnkit.__version__}: model with {model.count_params()} parameters")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    first = last = 0.0
    for epoch in range(30):
        optimizer.zero_grad()
        loss = torch.mean((model(x_t, training=True) - y_t) ** 2)
        loss.backward()
        optimizer.step()
        if epoch == 0:
            first = loss.item()
        last = loss.item()
        if epoch % 5 == 0 or epoch == 29:
            print(f"epoch {epoch:2d}  mse {last:.4f}")
    if not last < first:
        raise SystemExit(f"the loss did not go down: {first:.4f} -> {last:.4f}")
    print(f"loss went down: {first:.4f} -> {last:.4f}")


if __name__ == "__main__":
    main()
