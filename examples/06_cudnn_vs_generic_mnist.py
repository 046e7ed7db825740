"""The guide's performance example: ``LSTM`` (fused kernel) vs ``RNN(LSTMCell)`` (generic loop).

Both models compute the same function; ``LSTM`` may run a fused kernel (cuDNN on a GPU, a fused
CPU kernel otherwise, see ``layer.last_kernel``) while ``RNN(LSTMCell)`` always runs the
generic time loop. Weights move between them with ``set_weights(get_weights())``.

Data: MNIST via ``rnnkit.datasets.mnist.load_data()`` (rows as time steps: 28 steps of 28
features) when ``mnist.npz`` is cached or can be downloaded; otherwise the 8x8 digits shipped
with rnnkit (8 steps of 8 features), saying so.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
from rnnkit import layers
from rnnkit.datasets import digits, mnist

batch_size = 64
units = 64
output_size = 10  # labels are from 0 to 9


def load() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], float]:
    """``(x_train, y_train), (x_test, y_test), pixel maximum``."""
    try:
        return (*mnist.load_data(), 255.0)
    except FileNotFoundError as err:
        print(f"MNIST is not available ({err});")
        print("using the 8x8 digits shipped with rnnkit instead (8 time steps of 8 features).")
        return (*digits.load_data(), 16.0)


def build_model(input_dim: int, allow_cudnn_kernel: bool = True) -> rnnkit.Sequential:
    # CuDNN is only available at the layer level, and not at the cell level.
    # This means `LSTM(units)` can use a fused kernel, while RNN(LSTMCell(units)) runs the loop.
    if allow_cudnn_kernel:
        lstm_layer = layers.LSTM(units)
    else:
        lstm_layer = layers.RNN(layers.LSTMCell(units))
    return rnnkit.Sequential(
        [
            layers.Input(shape=(None, input_dim)),
            lstm_layer,
            layers.BatchNormalization(),
            layers.Dense(output_size),
        ]
    )


class StepTimer(rnnkit.callbacks.Callback):
    """Wall-clock milliseconds of each training step."""

    def __init__(self) -> None:
        super().__init__()
        self.ms: list[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.ms.append((time.perf_counter() - self._start) * 1000)


def compile_model(model: rnnkit.Sequential) -> None:
    model.compile(
        loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer="adam",
        metrics=["accuracy"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a few hundred samples, 1 epoch")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    (x_train, y_train), (x_test, y_test), top = load()
    x_train, x_test = x_train.astype("float32") / top, x_test.astype("float32") / top
    epochs = args.epochs
    if args.small:
        x_train, y_train, x_test, y_test = x_train[:512], y_train[:512], x_test[:128], y_test[:128]
        epochs = 1
    input_dim = x_train.shape[-1]

    model = build_model(input_dim, allow_cudnn_kernel=True)
    compile_model(model)
    fast = StepTimer()
    model.fit(
        x_train,
        y_train,
        validation_data=(x_test, y_test),
        batch_size=batch_size,
        epochs=epochs,
        callbacks=[fast],
        verbose=2,
    )
    lstm = model.layers[0]
    print(f"LSTM ran the {lstm.last_kernel!r} kernel ({lstm.last_kernel_choice.reason})")

    slow_model = build_model(input_dim, allow_cudnn_kernel=False)
    slow_model.set_weights(model.get_weights())
    compile_model(slow_model)
    slow = StepTimer()
    slow_model.fit(
        x_train,
        y_train,
        validation_data=(x_test, y_test),
        batch_size=batch_size,
        epochs=1,
        callbacks=[slow],
        verbose=2,
    )
    print(
        f"median ms per training step: LSTM {np.median(fast.ms):.1f}, RNN(LSTMCell) {np.median(slow.ms):.1f}"
    )

    # The trained weights work in a model built for any device and either kernel.
    cpu_model = build_model(input_dim, allow_cudnn_kernel=True).to("cpu")
    cpu_model.set_weights(slow_model.get_weights())
    generic = build_model(input_dim, allow_cudnn_kernel=False)
    generic.set_weights(slow_model.get_weights())
    diff = np.abs(cpu_model.predict(x_test, verbose=0) - generic.predict(x_test, verbose=0)).max()
    print(f"max |LSTM - RNN(LSTMCell)| with the same weights: {diff:.1e}")
    assert diff < 1e-4
    sample, sample_label = x_test[0], y_test[0]
    result = np.argmax(cpu_model.predict_on_batch(sample[None]), axis=1)
    print(f"Predicted result is: {result}, target result is: {sample_label}")


if __name__ == "__main__":
    main()
