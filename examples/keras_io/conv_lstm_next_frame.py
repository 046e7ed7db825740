"""Next-frame video prediction with stacked ConvLSTM2D layers and a Conv3D head.

As keras-io's conv_lstm example: frames (batch, time, rows, cols, 1), the model sees frames
0..t-1 and predicts frames 1..t; then it extends a sequence frame by frame with `predict`.
Synthetic moving squares on 8x8 frames.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

FRAMES = 6
SIZE = 8


def make_data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    video = np.zeros((n, FRAMES, SIZE, SIZE, 1), dtype="float32")
    for i in range(n):
        row, col = rng.integers(0, SIZE - 2, size=2)
        for t in range(FRAMES):
            c = (col + t) % (SIZE - 1)
            video[i, t, row : row + 2, c : c + 2, 0] = 1.0
    return video[:, :-1], video[:, 1:]


def build_model():
    inp = layers.Input(shape=(None, SIZE, SIZE, 1))
    x = layers.ConvLSTM2D(
        8, kernel_size=(3, 3), padding="same", return_sequences=True, activation="relu"
    )(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ConvLSTM2D(
        8, kernel_size=(1, 1), padding="same", return_sequences=True, activation="relu"
    )(x)
    x = layers.Conv3D(1, kernel_size=(3, 3, 3), activation="sigmoid", padding="same")(x)
    model = keras.Model(inp, x)
    model.compile(loss=keras.losses.binary_crossentropy, optimizer=keras.optimizers.Adam())
    return model


def train(model, data, epochs=2):
    x, y = data
    history = model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0)
    return float(history.history["loss"][-1])


def main():
    keras.utils.set_random_seed(0)
    model = build_model()
    data = make_data()
    loss = train(model, data)
    frames = data[0][:1, :3]
    for _ in range(2):  # predict two new frames
        new_prediction = model.predict(frames, verbose=0)
        new_frame = new_prediction[:, -1:]
        frames = np.concatenate((frames, new_frame), axis=1)
    print("extended:", frames.shape)
    print(f"final loss: {loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
