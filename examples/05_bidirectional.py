"""``Bidirectional``: one copy of a recurrent layer reads forward, one backward.

The backward copy runs with ``go_backwards=True``; its outputs are flipped back in time and
merged with the forward ones (``merge_mode="concat"`` by default; also "sum", "mul", "ave",
None). ``backward_layer=`` gives the backward layer explicitly.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import rnnkit
from rnnkit import layers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smaller inputs (for the tests)")
    args = parser.parse_args(argv)

    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(5, 10)))
    model.add(layers.Bidirectional(layers.LSTM(64, return_sequences=True)))
    model.add(layers.Bidirectional(layers.LSTM(32)))
    model.add(layers.Dense(10))
    model.summary()
    assert model.count_params() == 80_266, model.count_params()

    # With a custom backward layer.
    forward_layer = layers.LSTM(64, return_sequences=True)
    backward_layer = layers.LSTM(64, activation="relu", return_sequences=True, go_backwards=True)
    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(5, 10)))
    model.add(layers.Bidirectional(forward_layer, backward_layer=backward_layer))
    model.add(layers.Dense(10))
    model.summary()

    x = np.random.default_rng(0).random((2 if args.small else 16, 5, 10)).astype("float32")
    bi = layers.Bidirectional(layers.GRU(8, return_sequences=True), merge_mode="sum")
    y = bi(x)
    fwd = layers.GRU(8, return_sequences=True)
    bwd = layers.GRU(8, return_sequences=True, go_backwards=True)
    fwd(x), bwd(x)
    fwd.set_weights(bi.forward_layer.get_weights())
    bwd.set_weights(bi.backward_layer.get_weights())
    expected = fwd(x) + torch.flip(bwd(x), dims=[1])
    diff = (y - expected).abs().max().item()
    print(f"merge_mode='sum': max |bi(x) - (fwd(x) + flip(bwd(x)))| = {diff:.1e}")
    assert diff < 1e-5


if __name__ == "__main__":
    main()
