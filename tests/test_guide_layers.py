"""The Keras "Working with RNNs" guide (seeds 000-002), layer by layer.

The model classes come with the model issue; here the guide's layers are called eagerly in
sequence on data, and the per-layer parameter counts of the guide's ``model.summary()`` tables
are checked with ``layer.count_params()``.
"""

import numpy as np
import pytest
import torch

from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Embedding, SimpleRNN


def _run(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def test_embedding_lstm_dense_counts():
    # Seed 000: Embedding(1000, 64) -> LSTM(128) -> Dense(10); total 164,106.
    layers = [Embedding(input_dim=1000, output_dim=64), LSTM(128), Dense(10)]
    out = _run(layers, np.random.randint(0, 1000, size=(3, 7)))
    assert out.shape == (3, 10)
    assert [layer.count_params() for layer in layers] == [64000, 98816, 1290]
    assert sum(layer.count_params() for layer in layers) == 164_106


def test_embedding_gru_simple_rnn_dense_counts():
    # Seed 000: Embedding -> GRU(256, return_sequences=True) -> SimpleRNN(128) -> Dense(10).
    layers = [
        Embedding(input_dim=1000, output_dim=64),
        GRU(256, return_sequences=True),
        SimpleRNN(128),
        Dense(10),
    ]
    x = np.random.randint(0, 1000, size=(2, 6))
    assert layers[1](layers[0](x)).shape == (2, 6, 256)
    out = _run(layers, x)
    assert out.shape == (2, 10)
    assert [layer.count_params() for layer in layers] == [64000, 247296, 49280, 1290]
    assert sum(layer.count_params() for layer in layers) == 361_866


def test_bidirectional_counts_and_default_concat():
    # Seed 000: Bidirectional(LSTM(64, return_sequences=True), input_shape=(5, 10)) ->
    # Bidirectional(LSTM(32)) -> Dense(10): 38,400 + 41,216 + 650 = 80,266. Seed 001 (an older
    # translation) says the default merge is the sum, but the counts need "concat": the second
    # layer's 41,216 = 2 * 4 * 32 * (128 + 32 + 1) sees 128 = 2 * 64 features.
    first = Bidirectional(LSTM(64, return_sequences=True), input_shape=(5, 10))
    layers = [first, Bidirectional(LSTM(32)), Dense(10)]
    assert first.merge_mode == "concat"
    assert first.get_config()["batch_input_shape"] == [None, 5, 10]
    x = np.random.random((4, 5, 10)).astype(np.float32)
    assert first(x).shape == (4, 5, 128)
    out = _run(layers, x)
    assert out.shape == (4, 10)
    assert [layer.count_params() for layer in layers] == [38400, 41216, 650]
    assert sum(layer.count_params() for layer in layers) == 80_266


def test_encoder_decoder_initial_state():
    # Seed 000: the encoder's final [state_h, state_c] start the decoder.
    encoder_embedded = Embedding(1000, 64)(np.random.randint(0, 1000, size=(2, 8)))
    output, state_h, state_c = LSTM(64, return_state=True, name="encoder")(encoder_embedded)
    assert output.shape == state_h.shape == state_c.shape == (2, 64)
    torch.testing.assert_close(output, state_h)  # an LSTM's output is its last h
    decoder_embedded = Embedding(2000, 64)(np.random.randint(0, 2000, size=(2, 5)))
    decoder = LSTM(64, name="decoder")
    decoder_output = decoder(decoder_embedded, initial_state=[state_h, state_c])
    assert Dense(10)(decoder_output).shape == (2, 10)
    assert not torch.allclose(decoder_output, decoder(decoder_embedded))


@pytest.fixture
def paragraphs():
    rng = np.random.default_rng(0)
    return [rng.random((20, 10, 50)).astype(np.float32) for _ in range(3)]


def test_stateful_paragraphs_and_reset_states(paragraphs):
    # Seed 000: three paragraphs through LSTM(64, stateful=True) continue one another.
    lstm_layer = LSTM(64, stateful=True)
    outputs = [lstm_layer(p) for p in paragraphs]
    whole = LSTM(64)
    whole(paragraphs[0])
    whole.set_weights(lstm_layer.get_weights())
    np.testing.assert_allclose(
        outputs[-1].detach().numpy(),
        whole(np.concatenate(paragraphs, axis=1)).detach().numpy(),
        atol=1e-5,
    )
    # reset_states() returns to the zero state: the first paragraph gives its first output.
    lstm_layer.reset_states()
    np.testing.assert_allclose(
        lstm_layer(paragraphs[0]).detach().numpy(), outputs[0].detach().numpy(), atol=1e-6
    )


def test_states_reuse_in_a_new_layer(paragraphs):
    # Seed 000: existing_state = lstm_layer.states; new_layer(p3, initial_state=existing_state).
    paragraph1, paragraph2, paragraph3 = paragraphs
    lstm_layer = LSTM(64, stateful=True)
    lstm_layer(paragraph1)
    lstm_layer(paragraph2)
    existing_state = lstm_layer.states
    assert [tuple(s.shape) for s in existing_state] == [(20, 64), (20, 64)]
    new_lstm_layer = LSTM(64)
    new_lstm_layer(paragraph3)
    new_lstm_layer.set_weights(lstm_layer.get_weights())
    new_output = new_lstm_layer(paragraph3, initial_state=existing_state)
    # The states are not weights (the guide): the new layer has only the kernels and bias.
    assert len(new_lstm_layer.weights) == 3
    np.testing.assert_allclose(
        new_output.detach().numpy(), lstm_layer(paragraph3).detach().numpy(), atol=1e-6
    )


def test_bad_inputs():
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        Bidirectional(LSTM(64), merge_mode="max")
    with pytest.raises(ValueError, match="must be an RNN layer"):
        Bidirectional(Dense(64))
