"""The "Understanding masking & padding" guide: padding, mask-generating layers, custom layers.

Padding with `pad_sequences`, `Embedding(mask_zero=True)` and `Masking` producing masks
(`compute_mask`, `_keras_mask`), masks flowing to an LSTM in Sequential and functional models,
a layer that changes the sequence length and its mask (`compute_mask`), a layer that passes the
mask on (`supports_masking`) and a layer that uses it (`call(..., mask=None)`).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers, ops

VOCAB = 30


class TemporalSplit(keras.layers.Layer):
    """Splits the sequence in two halves along time, and the mask with it."""

    def call(self, inputs):
        return ops.split(inputs, 2, axis=1)

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return ops.split(mask, 2, axis=1)


class MyActivation(keras.layers.Layer):
    """Elementwise: keeps the input mask for the next layer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.relu(inputs)


class TemporalSoftmax(keras.layers.Layer):
    """Softmax over the time axis (axis 1) that gives masked steps zero weight."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        assert mask is not None
        broadcast_float_mask = ops.expand_dims(ops.cast(mask, "float32"), -1)
        inputs_exp = ops.exp(inputs) * broadcast_float_mask
        inputs_sum = ops.sum(inputs_exp, axis=1, keepdims=True)
        return inputs_exp / inputs_sum


def show_masks():
    raw_inputs = [[711, 632, 71], [73, 8, 3215, 55, 927], [83, 91, 1, 645, 1253, 927]]
    padded_inputs = keras.utils.pad_sequences(raw_inputs, padding="post")
    print(padded_inputs)
    embedding = layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True)
    print(embedding.compute_mask(padded_inputs))
    masking_layer = layers.Masking()
    unmasked_embedding = ops.cast(
        ops.tile(ops.expand_dims(padded_inputs, axis=-1), [1, 1, 10]), "float32"
    )
    masked_embedding = masking_layer(unmasked_embedding)
    print(masked_embedding._keras_mask)
    first_half, second_half = TemporalSplit()(embedding(padded_inputs))
    print(first_half._keras_mask)
    y = MyActivation()(embedding(padded_inputs))
    print(y._keras_mask)


def make_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [list(rng.integers(1, VOCAB, size=rng.integers(2, 9))) for _ in range(n)]
    x = keras.utils.pad_sequences(seqs, maxlen=8, padding="post")
    y = np.array([[float(s[-1] > VOCAB / 2)] for s in seqs], dtype="float32")
    return x, y


def build_model():
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=VOCAB, output_dim=8, mask_zero=True)(inputs)
    x = MyActivation()(x)
    x = layers.LSTM(8, return_sequences=True)(x)
    weights = TemporalSoftmax()(layers.Dense(1)(x))
    x = layers.Dot(axes=1)([weights, x])
    x = layers.Flatten()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def sequential_with_masking():
    model = keras.Sequential(
        [keras.Input((None, 3)), layers.Masking(mask_value=0.0), layers.LSTM(4)]
    )
    samples = np.ones((2, 5, 3), dtype="float32")
    samples[0, 3:] = 0.0  # padded: the LSTM stops at step 3 and keeps its state
    out = model.predict(samples, verbose=0)
    short = model.predict(samples[:1, :3], verbose=0)
    print("masked == truncated:", np.allclose(out[0], short[0], atol=1e-6))


def train(model, data, epochs=3):
    x, y = data
    history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return float(history.history["loss"][-1])


def main():
    keras.utils.set_random_seed(0)
    show_masks()
    sequential_with_masking()
    model = build_model()
    loss = train(model, make_data())
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
