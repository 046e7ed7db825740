"""A stateful LSTM trained on consecutive chunks of long sequences.

As the stateful-RNN examples: a fixed batch size (`batch_shape`), `stateful=True`, each
batch continues the sequences of the previous one (`shuffle=False`), states reset between
epochs with `reset_states()`, and a final state inspected on the layer.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

BATCH = 4
CHUNK = 5
CHUNKS = 3


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    series = np.cumsum(rng.standard_normal((BATCH, CHUNK * CHUNKS + 1)), axis=1)
    series = series.astype("float32") / 4
    # chunk k of every sequence forms batch k: samples i, i + BATCH, ... continue each other
    x = np.concatenate([series[:, k * CHUNK : (k + 1) * CHUNK, None] for k in range(CHUNKS)])
    y = np.concatenate([series[:, (k + 1) * CHUNK, None] for k in range(CHUNKS)])
    return x, y


def build_model():
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(BATCH, CHUNK, 1)),
            layers.LSTM(16, stateful=True),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def train(model, data, epochs=3):
    x, y = data
    loss = None
    for _ in range(epochs):
        history = model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        model.layers[0].reset_states()
        loss = float(history.history["loss"][-1])
    return loss


def main():
    keras.utils.set_random_seed(0)
    model = build_model()
    data = make_data()
    loss = train(model, data)
    model.predict(data[0][:BATCH], batch_size=BATCH, verbose=0)
    state_h, state_c = model.layers[0].states
    print("state:", tuple(state_h.shape), tuple(state_c.shape))
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
