"""``return_state`` and ``initial_state``: an encoder LSTM's final states start a decoder LSTM.

An LSTM has two state tensors (``h`` and ``c``, each (batch_size, units)), a GRU one. With
``return_state=True`` the layer returns ``[output, *states]``; calling a layer with
``initial_state=states`` starts its loop from them instead of zeros.
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
    encoder_vocab, decoder_vocab = 1000, 2000

    encoder_input = layers.Input(shape=(None,))
    encoder_embedded = layers.Embedding(
        input_dim=encoder_vocab, output_dim=64, name="encoder_embedding"
    )(encoder_input)
    # Return states in addition to output.
    output, state_h, state_c = layers.LSTM(64, return_state=True, name="encoder")(encoder_embedded)
    encoder_state = [state_h, state_c]

    decoder_input = layers.Input(shape=(None,))
    decoder_embedded = layers.Embedding(
        input_dim=decoder_vocab, output_dim=64, name="decoder_embedding"
    )(decoder_input)
    # Pass the 2 states to a new LSTM layer, as initial state.
    decoder_output = layers.LSTM(64, name="decoder")(decoder_embedded, initial_state=encoder_state)
    output = layers.Dense(10)(decoder_output)

    model = rnnkit.Model([encoder_input, decoder_input], output)
    model.summary()

    rng = np.random.default_rng(0)
    batch = 2 if args.small else 16
    source = rng.integers(0, encoder_vocab, size=(batch, 9))
    target = rng.integers(0, decoder_vocab, size=(batch, 5))
    print(
        f"([{source.shape}, {target.shape}]) -> {model.predict([source, target], verbose=0).shape}"
    )

    # The decoder really starts from the encoder's states: zero states give other outputs.
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    embedded = model.get_layer("decoder_embedding")(torch.as_tensor(target))
    _, h, c = encoder(model.get_layer("encoder_embedding")(torch.as_tensor(source)))
    from_states = decoder(embedded, initial_state=[h, c])
    from_zeros = decoder(embedded)
    gap = (from_states - from_zeros).abs().max().item()
    print(f"states returned: h {tuple(h.shape)}, c {tuple(c.shape)}; initial_state changes the")
    print(f"decoder's output by up to {gap:.3f}")
    assert gap > 0


if __name__ == "__main__":
    main()
