"""Outputs and states: ``GRU(256, return_sequences=True)`` feeds a ``SimpleRNN(128)``.

With ``return_sequences=True`` a recurrent layer returns its output at every time step, shape
(batch_size, timesteps, units), which the next recurrent layer reads as its sequence.
"""

from __future__ import annotations

import argparse

import numpy as np

import rnnkit
from rnnkit import layers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smaller inputs (for the tests)")
    args = parser.parse_args(argv)

    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(None,)))
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.GRU(256, return_sequences=True))
    model.add(layers.SimpleRNN(128))
    model.add(layers.Dense(10))
    model.summary()
    assert model.count_params() == 361_866, model.count_params()

    tokens = np.random.default_rng(0).integers(0, 1000, size=(2 if args.small else 16, 7))
    gru = layers.GRU(256, return_sequences=True)
    sequence = gru(layers.Embedding(1000, 64)(tokens))
    print(f"GRU(return_sequences=True): {tuple(sequence.shape)} (batch, timesteps, units)")
    print(f"the whole model: {model.predict(tokens, verbose=0).shape}")


if __name__ == "__main__":
    main()
