"""IMDB-style sentiment classification with two stacked bidirectional LSTMs.

As keras-io's bidirectional_lstm_imdb: integer reviews of different lengths padded with
`pad_sequences`, Embedding, Bidirectional(LSTM) x 2, sigmoid output. Synthetic reviews.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

MAX_FEATURES = 200
MAXLEN = 20


def make_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    reviews = [list(rng.integers(1, MAX_FEATURES, size=rng.integers(5, 30))) for _ in range(n)]
    labels = np.array([float(np.mean(r) > MAX_FEATURES / 2) for r in reviews], dtype="float32")
    x = keras.utils.pad_sequences(reviews, maxlen=MAXLEN)
    return x, labels


def build_model():
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(MAX_FEATURES, 16)(inputs)
    x = layers.Bidirectional(layers.LSTM(16, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(16))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(model, data, epochs=3):
    x, y = data
    history = model.fit(
        x,
        y,
        batch_size=32,
        epochs=epochs,
        validation_data=(x[:16], y[:16]),
        shuffle=False,
        verbose=0,
    )
    return float(history.history["loss"][-1])


def main():
    keras.utils.set_random_seed(0)
    model = build_model()
    model.summary()
    loss = train(model, make_data())
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
