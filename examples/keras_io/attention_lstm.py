"""Attention over LSTM outputs for sequence classification.

As keras-io's text classifiers with attention: Embedding(mask_zero=True), a bidirectional
LSTM returning sequences, `layers.Attention` (query = value = the LSTM outputs) and
`layers.MultiHeadAttention` with a residual `Add` and `LayerNormalization`, then
GlobalAveragePooling1D over the unmasked steps. Synthetic padded token sequences.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

VOCAB = 50
MAXLEN = 12


def make_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [list(rng.integers(1, VOCAB, size=rng.integers(3, MAXLEN + 1))) for _ in range(n)]
    y = np.array([int(max(s) > 45) + int(min(s) < 5) for s in seqs])
    x = keras.utils.pad_sequences(seqs, maxlen=MAXLEN, padding="post")
    return x, keras.utils.to_categorical(y, num_classes=3)


def build_model():
    tokens = keras.Input(shape=(MAXLEN,), dtype="int32")
    x = layers.Embedding(VOCAB, 16, mask_zero=True)(tokens)
    h = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(x)
    context = layers.Attention()([h, h])
    x = layers.Concatenate()([h, context])
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
    x = layers.LayerNormalization()(layers.Add()([x, mha]))
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    model = keras.Model(tokens, outputs)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def train(model, data, epochs=3):
    x, y = data
    history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return float(history.history["loss"][-1])


def main():
    keras.utils.set_random_seed(0)
    model = build_model()
    loss = train(model, make_data())
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
