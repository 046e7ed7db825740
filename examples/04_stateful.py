"""Cross-batch statefulness: ``LSTM(64, stateful=True)`` reads a long sequence in chunks.

A stateful layer keeps its final states and starts the next call from them, so three chunks of
10 steps give the same output as one pass over the 30 steps. ``layer.states`` holds the states,
``reset_states()`` zeroes them, and the states can start another layer (``initial_state``).
Sample ``i`` of each batch must continue sample ``i`` of the previous batch.
"""

from __future__ import annotations

import argparse

import numpy as np

from rnnkit import layers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smaller inputs (for the tests)")
    args = parser.parse_args(argv)
    batch = 4 if args.small else 20
    rng = np.random.default_rng(0)
    paragraph1 = rng.random((batch, 10, 50)).astype(np.float32)
    paragraph2 = rng.random((batch, 10, 50)).astype(np.float32)
    paragraph3 = rng.random((batch, 10, 50)).astype(np.float32)

    lstm_layer = layers.LSTM(64, stateful=True)
    output = lstm_layer(paragraph1)
    output = lstm_layer(paragraph2)
    output = lstm_layer(paragraph3)

    # The same weights over the whole 30-step sequence at once.
    one_pass = layers.LSTM(64)
    one_pass(paragraph1)
    one_pass.set_weights(lstm_layer.get_weights())
    whole = np.concatenate([paragraph1, paragraph2, paragraph3], axis=1)
    diff = (output - one_pass(whole)).abs().max().item()
    print(f"max |three stateful chunks - one pass| = {diff:.1e}")
    assert diff < 1e-5

    # The states of one layer can start another one.
    existing_state = lstm_layer.states
    new_lstm_layer = layers.LSTM(64)
    new_output = new_lstm_layer(paragraph3, initial_state=existing_state)
    print(
        f"states: {[tuple(s.shape) for s in existing_state]}; new layer {tuple(new_output.shape)}"
    )

    # reset_states() clears the cached state.
    lstm_layer.reset_states()
    print(
        f"after reset_states(): sum |states| = {sum(s.abs().sum().item() for s in lstm_layer.states)}"
    )
    fresh = layers.LSTM(64)
    fresh(paragraph1)
    fresh.set_weights(lstm_layer.get_weights())
    restart = (lstm_layer(paragraph1) - fresh(paragraph1)).abs().max().item()
    print(f"after a reset the layer starts from zeros again: max diff {restart:.1e}")
    assert restart < 1e-6


if __name__ == "__main__":
    main()
