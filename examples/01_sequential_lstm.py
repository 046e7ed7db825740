"""The guide's first model: ``Embedding(1000, 64) -> LSTM(128) -> Dense(10)`` in a Sequential.

Each integer of a sequence becomes a 64-dimensional vector; the LSTM reads the vectors and
returns its last output, shape (batch_size, 128); Dense maps it to 10 scores.
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
    model.add(layers.LSTM(128))
    model.add(layers.Dense(10))
    model.summary()

    # 1000*64 + 4*128*(64+128+1) + 128*10+10: the guide's 164,106 parameters.
    assert model.count_params() == 164_106, model.count_params()
    batch = 4 if args.small else 32
    tokens = np.random.default_rng(0).integers(0, 1000, size=(batch, 12))
    scores = model.predict(tokens, verbose=0)
    print(f"tokens {tokens.shape} -> scores {scores.shape}")


if __name__ == "__main__":
    main()
