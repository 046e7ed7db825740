"""The RNN guide's custom cell: a minimal RNN cell written with `keras.ops`, run by `layers.RNN`.

The cell has `state_size`, creates its weights in `build` and returns (output, new states);
`layers.RNN` runs one cell or a stacked list of cells over the time axis.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers, ops


class MinimalRNNCell(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer="uniform", name="recurrent_kernel"
        )

    def call(self, inputs, states):
        prev_output = states[0]
        h = ops.matmul(inputs, self.kernel)
        output = ops.tanh(h + ops.matmul(prev_output, self.recurrent_kernel))
        return output, [output]


def make_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 5)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None] / 10
    return x, y


def build_model():
    inputs = keras.Input((None, 5))
    x = layers.RNN(MinimalRNNCell(16), return_sequences=True)(inputs)
    x = layers.RNN([MinimalRNNCell(8), MinimalRNNCell(8)])(x)
    outputs = layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
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
