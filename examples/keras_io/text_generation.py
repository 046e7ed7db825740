"""Character-level text generation with an LSTM and a temperature sampling loop.

As keras-io's lstm_character_level_text_generation: overlapping windows of one-hot
characters predict the next character; generation samples from `predict` with a temperature.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

TEXT = "the quick brown fox jumps over the lazy dog. " * 6
CHARS = sorted(set(TEXT))
CHAR_INDICES = {c: i for i, c in enumerate(CHARS)}
MAXLEN = 10
STEP = 3


def make_data():
    sentences = [TEXT[i : i + MAXLEN] for i in range(0, len(TEXT) - MAXLEN, STEP)]
    next_chars = [TEXT[i + MAXLEN] for i in range(0, len(TEXT) - MAXLEN, STEP)]
    x = np.zeros((len(sentences), MAXLEN, len(CHARS)), dtype="float32")
    y = np.zeros((len(sentences), len(CHARS)), dtype="float32")
    for i, sentence in enumerate(sentences):
        for t, char in enumerate(sentence):
            x[i, t, CHAR_INDICES[char]] = 1.0
        y[i, CHAR_INDICES[next_chars[i]]] = 1.0
    return x, y


def build_model(optimizer=None):
    model = keras.Sequential(
        [
            keras.Input(shape=(MAXLEN, len(CHARS))),
            layers.LSTM(32),
            layers.Dense(len(CHARS), activation="softmax"),
        ]
    )
    if optimizer is None:
        optimizer = keras.optimizers.RMSprop(learning_rate=0.01)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    return model


def train(model, data, epochs=3):
    x, y = data
    history = model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0)
    return float(history.history["loss"][-1])


def sample(preds, temperature, rng):
    preds = np.log(np.asarray(preds).astype("float64") + 1e-12) / temperature
    probs = np.exp(preds) / np.sum(np.exp(preds))
    return int(rng.choice(len(probs), p=probs))


def generate(model, seed_text, length, temperature, rng):
    generated = seed_text
    for _ in range(length):
        x_pred = np.zeros((1, MAXLEN, len(CHARS)), dtype="float32")
        for t, char in enumerate(generated[-MAXLEN:]):
            x_pred[0, t, CHAR_INDICES[char]] = 1.0
        preds = model.predict(x_pred, verbose=0)[0]
        generated += CHARS[sample(preds, temperature, rng)]
    return generated


def main():
    keras.utils.set_random_seed(0)
    model = build_model()
    loss = train(model, make_data())
    rng = np.random.default_rng(0)
    for temperature in (0.2, 1.0):
        print(temperature, repr(generate(model, TEXT[:MAXLEN], 20, temperature, rng)))
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
