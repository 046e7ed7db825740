"""A subclassed GRU model (`keras.Model` subclass with layers created in `__init__`).

As the keras-io/guide subclassing pattern for RNNs: Embedding, GRU returning sequences and
state, a second GRU started from that state, Dense; trained with compile/fit. Synthetic data.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

VOCAB = 40
STEPS = 10


class GRUClassifier(keras.Model):
    def __init__(self, vocab_size, units, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.embedding = layers.Embedding(vocab_size, 16)
        self.gru = layers.GRU(units, return_sequences=True, return_state=True)
        self.gru2 = layers.GRU(units)
        self.classifier = layers.Dense(num_classes, activation="softmax")

    def call(self, inputs, training=False):
        x = self.embedding(inputs)
        sequences, state = self.gru(x, training=training)
        x = self.gru2(sequences, initial_state=state, training=training)
        return self.classifier(x)


def make_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, VOCAB, size=(n, STEPS))
    y = x[:, -1] % 4
    return x, y


def build_model():
    model = GRUClassifier(VOCAB, 16, 4)
    model(np.zeros((1, STEPS), dtype="int32"))  # build the weights
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(model, data, epochs=3):
    x, y = data
    history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
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
