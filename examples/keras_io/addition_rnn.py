"""Seq2seq number addition ("123+45" -> "168") with an LSTM encoder, RepeatVector, LSTM decoder.

Same layers and calls as keras-io's addition RNN example; synthetic sums, tiny sizes.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

DIGITS = 2
MAXLEN = DIGITS + 1 + DIGITS
CHARS = "0123456789+ "


def encode(text, length):
    """One-hot (length, len(CHARS)) for `text` padded with spaces."""
    out = np.zeros((length, len(CHARS)), dtype="float32")
    for i, ch in enumerate(text.ljust(length)):
        out[i, CHARS.index(ch)] = 1.0
    return out


def make_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10**DIGITS, size=n)
    b = rng.integers(0, 10**DIGITS, size=n)
    # questions are reversed, as in the example
    x = np.stack([encode(f"{i}+{j}", MAXLEN)[::-1] for i, j in zip(a, b)])
    y = np.stack([encode(str(i + j), DIGITS + 1) for i, j in zip(a, b)])
    return x, y


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(MAXLEN, len(CHARS))),
            layers.LSTM(32),
            layers.RepeatVector(DIGITS + 1),
            layers.LSTM(32, return_sequences=True),
            layers.Dense(len(CHARS), activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
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
    guess = model.predict(data[0][:3], verbose=0).argmax(axis=-1)
    print("answers:", ["".join(CHARS[i] for i in row) for row in guess])
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
