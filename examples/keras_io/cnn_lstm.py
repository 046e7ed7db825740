"""Text classification with a convolution and pooling in front of an LSTM (CNN + LSTM).

As the Keras imdb_cnn_lstm example: Embedding, Dropout, Conv1D, MaxPooling1D, LSTM,
Dense and Activation("sigmoid"). Synthetic integer sequences.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

MAX_FEATURES = 100
MAXLEN = 40


def make_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, MAX_FEATURES, size=(n, MAXLEN))
    y = (x[:, :10].mean(axis=1) > MAX_FEATURES / 2).astype("float32")
    return x, y


def build_model(dropout=0.25):
    model = keras.Sequential(
        [
            keras.Input(shape=(MAXLEN,), dtype="int32"),
            layers.Embedding(MAX_FEATURES, 16),
            layers.Dropout(dropout),
            layers.Conv1D(16, 5, padding="valid", activation="relu", strides=1),
            layers.MaxPooling1D(pool_size=4),
            layers.LSTM(16),
            layers.Dense(1),
            layers.Activation("sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def train(model, data, epochs=3):
    x, y = data
    history = model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0)
    return float(history.history["loss"][-1])


def main():
    keras.utils.set_random_seed(0)
    model = build_model()
    data = make_data()
    loss = train(model, data)
    score, acc = model.evaluate(data[0], data[1], batch_size=32, verbose=0)
    print(f"evaluate: {score:.4f} {acc:.3f}")
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
