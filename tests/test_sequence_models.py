"""Models made of the layers around RNNs (issue 13, item 1): Keras 3 ``.keras`` files load
with the same predictions and weights, rnnkit's own ``.keras`` files round-trip, and
``summary()`` counts the parameters Keras counts."""

import keras
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.saving import load_model

L = keras.layers
RNG = np.random.default_rng(7)


def _randomize(model):
    model.set_weights(
        [RNG.uniform(-0.6, 0.6, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model


def conv_seq2seq(lib):
    """Conv1D + pooling + an encoder LSTM, RepeatVector, a decoder LSTM, LayerNormalization."""
    inputs = lib.Input((12, 5))
    x = lib.layers.Conv1D(6, 3, padding="causal", activation="relu")(inputs)
    x = lib.layers.MaxPooling1D(2)(x)
    x = lib.layers.Conv1D(6, 2, strides=2, padding="same")(x)
    x = lib.layers.AveragePooling1D(2, strides=1, padding="same")(x)
    x = lib.layers.SpatialDropout1D(0.3)(x)
    x = lib.layers.LSTM(4)(x)
    x = lib.layers.RepeatVector(3)(x)
    x = lib.layers.LSTM(4, return_sequences=True)(x)
    x = lib.layers.LayerNormalization()(x)
    return lib.Model(inputs, lib.layers.Dense(2)(x)), RNG.normal(size=(3, 12, 5)).astype("float32")


def attention_over_lstm(lib):
    """Embedding(mask_zero) -> LSTM -> Attention / AdditiveAttention / MultiHeadAttention with
    the masks, pooled with the masks."""
    tokens = lib.Input((7,), dtype="int32")
    embedded = lib.layers.Embedding(20, 6, mask_zero=True)(tokens)
    h = lib.layers.LSTM(6, return_sequences=True)(embedded)
    a = lib.layers.Attention(use_scale=True)([h, h])
    b = lib.layers.AdditiveAttention()([h, h])
    # Keras' MultiHeadAttention clears the mask of its input tensor (the tensor itself, so
    # for every other layer that reads it afterwards): it gets its own LSTM here.
    h2 = lib.layers.LSTM(6, return_sequences=True)(embedded)
    c = lib.layers.MultiHeadAttention(num_heads=2, key_dim=3)(h2, h2)
    x = lib.layers.Concatenate()([a, b, c])
    x = lib.layers.GlobalAveragePooling1D()(x)
    # (GlobalMaxPooling1D does not support masks in Keras 3: an unmasked branch.)
    y = lib.layers.GlobalMaxPooling1D()(
        lib.layers.Conv1D(3, 2)(lib.layers.Embedding(20, 3)(tokens))
    )
    out = lib.layers.Dense(3)(lib.layers.Concatenate()([x, y]))
    data = np.array([[3, 5, 7, 2, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7], [9, 4, 0, 0, 0, 0, 0]])
    return lib.Model(tokens, out), data.astype("int32")


def merges_and_reshaping(lib):
    """The merges, Dot, Permute, padding, cropping, up-sampling, Conv2D and Conv3D."""
    a_in, b_in = lib.Input((6, 4)), lib.Input((6, 4))
    a = lib.layers.Dense(4)(a_in)
    m = lib.layers.Multiply()([a, b_in])
    s = lib.layers.Subtract()([a, b_in])
    v = lib.layers.Average()([m, s])
    scores = lib.layers.Dot(axes=(2, 2), normalize=True)([v, a])  # (B, 6, 6)
    x = lib.layers.Permute((2, 1))(lib.layers.ZeroPadding1D((1, 2))(scores))  # (B, 6, 9)
    x = lib.layers.Cropping1D((1, 1))(lib.layers.UpSampling1D(2)(x))  # (B, 10, 9)
    x = lib.layers.Reshape((10, 9, 1))(x)
    x = lib.layers.Conv2D(2, (3, 3), strides=(2, 1), padding="same")(x)  # (B, 5, 9, 2)
    x = lib.layers.Reshape((5, 3, 3, 2))(x)
    x = lib.layers.Conv3D(2, 2, data_format="channels_first")(x)  # (B, 2, 2, 2, 1)
    x = lib.layers.Flatten()(x)
    d = lib.layers.Dot(axes=1)([lib.layers.Dense(8)(x), lib.layers.Dense(8)(x)])
    out = lib.layers.Dense(2)(lib.layers.Concatenate()([x, d]))
    data = [RNG.normal(size=(3, 6, 4)).astype("float32") for _ in range(2)]
    return lib.Model([a_in, b_in], out), data


def cnn_lstm_sequential(lib):
    """A Sequential CNN + LSTM over sequences of unknown length."""
    model = lib.Sequential(
        [
            lib.Input((None, 4)),
            lib.layers.Conv1D(8, 3, activation="relu"),
            lib.layers.MaxPooling1D(2),
            lib.layers.Conv1D(8, 3, strides=2, padding="same"),
            lib.layers.LSTM(4),
            lib.layers.Dense(1),
        ]
    )
    return model, RNG.normal(size=(3, 15, 4)).astype("float32")


MODELS = {
    "cnn_lstm_sequential": cnn_lstm_sequential,
    "conv_seq2seq": conv_seq2seq,
    "attention_over_lstm": attention_over_lstm,
    "merges_and_reshaping": merges_and_reshaping,
}


def _predict(model, x):
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_file_loads_with_same_predictions(name, tmp_path):
    keras_model, x = MODELS[name](keras)
    _randomize(keras_model)
    expected = np.asarray(keras_model.predict(x, verbose=0))
    keras_model.save(tmp_path / "k.keras")
    model = load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(_predict(model, x), expected, atol=1e-5)
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rnnkit_file_round_trip(name, tmp_path):
    model, x = MODELS[name](rnnkit)
    expected = _predict(model, x)
    model.save(tmp_path / "r.keras")
    again = load_model(tmp_path / "r.keras")
    np.testing.assert_array_equal(_predict(again, x), expected)
    assert [type(la).__name__ for la in again.layers] == [type(la).__name__ for la in model.layers]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_summary_counts_equal_keras(name):
    keras_model, _ = MODELS[name](keras)
    model, _ = MODELS[name](rnnkit)
    assert model.count_params() == keras_model.count_params()
    ours = {la.name: la.count_params() for la in model.layers if la.built}
    theirs = {la.name: la.count_params() for la in keras_model.layers}
    assert sorted(ours.values()) == sorted(theirs.values())
    lines = []
    model.summary(print_fn=lines.append)
    assert f"Total params: {keras_model.count_params():,}" in " ".join(lines)


def test_symbolic_shapes_of_the_models_equal_keras():
    for name, make in MODELS.items():
        keras_model, _ = make(keras)
        model, _ = make(rnnkit)
        assert [tuple(t.shape) for t in model.outputs] == [
            tuple(t.shape) for t in keras_model.outputs
        ], name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_run_on_cuda_with_the_same_outputs(name):
    model, x = MODELS[name](rnnkit)
    expected = _predict(model, x)
    model.to("cuda")
    inputs = (
        [torch.as_tensor(a).cuda() for a in x] if isinstance(x, list) else torch.as_tensor(x).cuda()
    )
    with torch.no_grad():
        out = model(inputs).cpu().numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_multi_head_attention_builds_on_the_inputs_device():
    layer = rnnkit.layers.MultiHeadAttention(2, 3)
    x = torch.randn(2, 4, 6, device="cuda")
    assert layer(x, x).device.type == "cuda"
    assert all(w.device.type == "cuda" for w in layer.weights)
