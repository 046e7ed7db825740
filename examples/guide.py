"""The Keras "Working with RNNs" guide, end to end, on data available offline (`make demo`).

Steps, each timed and listed in a summary table at the end:

1. build and summarise the guide's four models (``summary()``);
2. train the digit-sequence classifier (8x8 digits read as 8 time steps of 8 features) with
   ``LSTM`` (fused kernel when one is available) and with ``RNN(LSTMCell)``: accuracy and
   milliseconds per training step of each;
3. copy the weights between the two models (``set_weights(get_weights())``) and compare their
   predictions;
4. the stateful example: three chunks through a stateful LSTM == one pass over the whole
   sequence; ``layer.states`` handed to another layer as ``initial_state``;
5. the bidirectional example: ``Bidirectional(LSTM)`` == forward LSTM and reversed backward LSTM,
   concatenated;
6. seed 004's time-series model ``SimpleRNN(100, relu, return_sequences) ->
   TimeDistributed(Dense(1))`` trained with Adam(0.001) on mse, and a PNG plot of prediction vs
   target (when matplotlib is installed: ``pip install -e ".[demo]"``);
7. save the trained classifier to a ``.keras`` file, load it back, compare predictions.

Runs in well under two minutes on a 2-core CPU. ``--small`` runs a shorter version (used by the
tests); ``--out DIR`` says where the plot and the model file go (default ``build/demo``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit import layers
from rnnkit.datasets import digits, time_series

# The guide's models are small: one thread per op beats thread hand-offs on a shared 2-core CPU.
torch.set_num_threads(1)

ROWS: list[tuple[str, str, float]] = []
MIN_ACCURACY = 0.8  # the full run checks that both kernels learn (chance is 0.1); --small: 0


def step(title: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: print a header, run the step, record (title, its result line, seconds).

    A step returns its result line, or a tuple whose first item is the line.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: object, **kwargs: object) -> Any:
            print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            line = result[0] if isinstance(result, tuple) else result
            ROWS.append((title, line, time.perf_counter() - start))
            print(f"--> {line}")
            return result

        return run

    return wrap


# --------------------------------------------------------------------------- 1. the four models
@step("1. the guide's four models")
def guide_models() -> str:
    counts = []

    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(None,)))
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.LSTM(128))
    model.add(layers.Dense(10))
    model.summary()
    counts.append(model.count_params())

    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(None,)))
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.GRU(256, return_sequences=True))
    model.add(layers.SimpleRNN(128))
    model.add(layers.Dense(10))
    model.summary()
    counts.append(model.count_params())

    encoder_input = layers.Input(shape=(None,))
    encoder_embedded = layers.Embedding(input_dim=1000, output_dim=64)(encoder_input)
    _, state_h, state_c = layers.LSTM(64, return_state=True, name="encoder")(encoder_embedded)
    decoder_input = layers.Input(shape=(None,))
    decoder_embedded = layers.Embedding(input_dim=2000, output_dim=64)(decoder_input)
    decoder_output = layers.LSTM(64, name="decoder")(
        decoder_embedded, initial_state=[state_h, state_c]
    )
    output = layers.Dense(10)(decoder_output)
    model = rnnkit.Model([encoder_input, decoder_input], output)
    model.summary()
    counts.append(model.count_params())

    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(5, 10)))
    model.add(layers.Bidirectional(layers.LSTM(64, return_sequences=True)))
    model.add(layers.Bidirectional(layers.LSTM(32)))
    model.add(layers.Dense(10))
    model.summary()
    counts.append(model.count_params())
    return "params " + " / ".join(f"{c:,}" for c in counts)


# --------------------------------------------------------------------------- 2-3. digits
class StepTimer(rnnkit.callbacks.Callback):
    """Wall-clock time of each training step (batch), in milliseconds."""

    def __init__(self) -> None:
        super().__init__()
        self.ms: list[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.ms.append((time.perf_counter() - self._start) * 1000)


def build_model(allow_cudnn_kernel: bool = True) -> rnnkit.Sequential:
    """The guide's MNIST classifier, for 8x8 digits: 8 time steps of 8 features."""
    if allow_cudnn_kernel:
        lstm_layer = layers.LSTM(64)  # the fused kernel runs when one fits
    else:
        lstm_layer = layers.RNN(layers.LSTMCell(64))  # the generic time loop
    return rnnkit.Sequential(
        [
            layers.Input(shape=(None, 8)),
            lstm_layer,
            layers.BatchNormalization(),
            layers.Dense(10),
        ]
    )


def compile_model(model: rnnkit.Sequential) -> None:
    # The guide uses optimizer="sgd" for 5 MNIST epochs (4,690 steps); on 1,438 digits Adam
    # reaches a good accuracy within a few hundred steps.
    model.compile(
        loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=rnnkit.optimizers.Adam(learning_rate=0.01),
        metrics=["accuracy"],
    )


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    return (
        x_train.astype("float32") / 16.0,
        y_train.astype("int64"),
        x_test.astype("float32") / 16.0,
        y_test.astype("int64"),
    )


def train(model: rnnkit.Sequential, data: tuple, epochs: int) -> tuple[float, float]:
    """Fit; return (test accuracy, median ms per training step)."""
    x_train, y_train, x_test, y_test = data
    timer = StepTimer()
    model.fit(
        x_train,
        y_train,
        validation_data=(x_test, y_test),
        batch_size=32,
        epochs=epochs,
        callbacks=[timer],
        verbose=2,
    )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    if MIN_ACCURACY and accuracy < MIN_ACCURACY:
        raise SystemExit(f"test accuracy {accuracy:.3f} is below {MIN_ACCURACY} (chance is 0.1)")
    return accuracy, float(np.median(timer.ms))


@step("2a. digits: LSTM (fused when available)")
def train_fast(data: tuple, epochs: int) -> tuple[str, rnnkit.Sequential]:
    model = build_model(allow_cudnn_kernel=True)
    compile_model(model)
    accuracy, ms = train(model, data, epochs)
    lstm = model.layers[0]
    choice = lstm.last_kernel_choice
    print(f"kernel of the last call: {lstm.last_kernel!r} ({choice.reason})")
    return f"test accuracy {accuracy:.3f}, {ms:.1f} ms/step, kernel {lstm.last_kernel}", model


@step("2b. digits: RNN(LSTMCell), no fused kernel")
def train_slow(data: tuple, fast_model: rnnkit.Sequential) -> tuple[str, rnnkit.Sequential]:
    slow_model = build_model(allow_cudnn_kernel=False)
    slow_model.set_weights(fast_model.get_weights())
    compile_model(slow_model)
    accuracy, ms = train(slow_model, data, epochs=1)
    kernel = slow_model.layers[0].last_kernel
    return f"test accuracy {accuracy:.3f} (+1 epoch), {ms:.1f} ms/step, kernel {kernel}", slow_model


@step("3. same weights, same predictions")
def compare_kernels(data: tuple, fast_model: rnnkit.Sequential) -> str:
    x_test, y_test = data[2], data[3]
    generic = build_model(allow_cudnn_kernel=False)
    generic.set_weights(fast_model.get_weights())
    a = fast_model.predict(x_test, verbose=0)
    b = generic.predict(x_test, verbose=0)
    diff = float(np.max(np.abs(a - b)))
    sample, label = x_test[:1], y_test[0]
    predicted = int(np.argmax(generic.predict_on_batch(sample), axis=1)[0])
    print(f"Predicted result is: {predicted}, target result is: {label}")
    if diff > 1e-4:
        raise SystemExit(f"LSTM and RNN(LSTMCell) disagree with the same weights: {diff:.2e}")
    return f"max |LSTM - RNN(LSTMCell)| = {diff:.1e} on {len(x_test)} digits"


# --------------------------------------------------------------------------- 4. stateful
@step("4. stateful LSTM: three chunks == one pass")
def stateful() -> str:
    rng = np.random.default_rng(0)
    paragraph1, paragraph2, paragraph3 = (
        rng.random((20, 10, 50)).astype("float32") for _ in range(3)
    )
    lstm_layer = layers.LSTM(64, stateful=True)
    lstm_layer(paragraph1)
    lstm_layer(paragraph2)
    output = lstm_layer(paragraph3)

    one_pass = layers.LSTM(64)
    one_pass(paragraph1)  # builds it
    one_pass.set_weights(lstm_layer.get_weights())
    whole = np.concatenate([paragraph1, paragraph2, paragraph3], axis=1)
    diff = (output - one_pass(whole)).abs().max().item()

    # The states of a stateful layer can start another layer.
    existing_state = lstm_layer.states
    new_lstm_layer = layers.LSTM(64)
    new_output = new_lstm_layer(paragraph3, initial_state=existing_state)
    lstm_layer.reset_states()  # clears the stored states
    cleared = float(sum(s.abs().sum().item() for s in lstm_layer.states))
    print(f"new layer output {tuple(new_output.shape)}; after reset_states |states| = {cleared}")
    if diff > 1e-5 or cleared != 0.0:
        raise SystemExit(f"stateful LSTM: chunks vs one pass {diff:.2e}, reset {cleared}")
    return f"max |chunks - one pass| = {diff:.1e}; reset_states() zeroes the states"


# --------------------------------------------------------------------------- 5. bidirectional
@step("5. Bidirectional(LSTM)")
def bidirectional() -> str:
    x = np.random.default_rng(1).random((4, 5, 10)).astype("float32")
    bi = layers.Bidirectional(layers.LSTM(8, return_sequences=True), merge_mode="concat")
    y = bi(x)
    forward = layers.LSTM(8, return_sequences=True)
    backward = layers.LSTM(8, return_sequences=True, go_backwards=True)
    forward(x), backward(x)
    forward.set_weights(bi.forward_layer.get_weights())
    backward.set_weights(bi.backward_layer.get_weights())
    # The backward layer reads the sequence from the end; its outputs are flipped back in time.
    expected = torch.cat([forward(x), torch.flip(backward(x), dims=[1])], dim=-1)
    diff = (y - expected).abs().max().item()
    print(f"input {x.shape} -> output {tuple(y.shape)} (8 forward + 8 backward units)")
    if diff > 1e-5:
        raise SystemExit(f"Bidirectional differs from forward + reversed backward: {diff:.2e}")
    return f"output {tuple(y.shape)}; max |bi - [fwd, flip(bwd)]| = {diff:.1e}"


# --------------------------------------------------------------------------- 6. time series
@step("6. seed 004: time series with SimpleRNN")
def time_series_model(iterations: int, out: Path) -> str:
    torch.manual_seed(42)
    rng = np.random.default_rng(42)
    n_steps = 20
    model = rnnkit.Sequential(
        [
            layers.Input(shape=(n_steps, 1)),
            layers.SimpleRNN(100, activation="relu", return_sequences=True),
            layers.TimeDistributed(layers.Dense(1)),
        ]
    )
    model.compile(optimizer=rnnkit.optimizers.Adam(learning_rate=0.001), loss="mse")
    first = mse = 0.0
    for iteration in range(iterations):
        x_batch, y_batch = time_series.next_batch(50, n_steps, rng)
        mse = model.train_on_batch(x_batch, y_batch)
        mse = mse[0] if isinstance(mse, list | tuple) else float(mse)
        first = first or mse
        if iteration % 100 == 0:
            print(f"{iteration}\tMSE: {mse:.4f}")

    t_instance = np.linspace(12.2, 12.2 + 0.1 * (n_steps + 1), n_steps + 1)
    x_new = time_series.time_series(t_instance[:-1]).reshape(1, n_steps, 1).astype("float32")
    y_pred = model.predict(x_new, verbose=0)[0, :, 0]
    target = time_series.time_series(t_instance[1:])
    test_mse = float(np.mean((y_pred - target) ** 2))
    print(f"test window t = 12.2 .. {t_instance[-1]:.1f}: mse {test_mse:.4f}")
    if not mse < first:
        raise SystemExit(f"the time-series model did not learn: mse {first:.3f} -> {mse:.3f}")
    return f"train mse {first:.2f} -> {mse:.3f}, test mse {test_mse:.3f}; {plot(t_instance, y_pred, out)}"


def plot(t_instance: np.ndarray, y_pred: np.ndarray, out: Path) -> str:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is missing: no plot (pip install -e '.[demo]' to get one)")
        return "no plot (matplotlib missing)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = time_series.time_series
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_title("Testing the model")
    ax.plot(t_instance[:-1], series(t_instance[:-1]), "bo", markersize=8, label="instance")
    ax.plot(t_instance[1:], series(t_instance[1:]), "w*", markersize=8, mec="k", label="target")
    ax.plot(t_instance[1:], y_pred, "r.", markersize=8, label="prediction")
    ax.legend(loc="upper left")
    ax.set_xlabel("Time")
    path = out / "time_series_pred_plot.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"plot written to {path}")
    return f"plot {path}"


# --------------------------------------------------------------------------- 7. saving
@step("7. save and reload the classifier")
def save_and_load(model: rnnkit.Sequential, data: tuple, out: Path) -> str:
    path = out / "digits_lstm.keras"
    model.save(path)  # architecture, weights, compile settings and optimizer state
    restored = rnnkit.saving.load_model(path)
    x_test = data[2]
    diff = float(
        np.max(np.abs(model.predict(x_test, verbose=0) - restored.predict(x_test, verbose=0)))
    )
    print(f"{path}: {path.stat().st_size / 1024:.0f} KB")
    if diff != 0.0:
        raise SystemExit(f"the reloaded model predicts differently: {diff:.2e}")
    return f"{path.name} reloaded, max |before - after| = {diff:.1e}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a shorter run (for the tests)")
    parser.add_argument("--out", default="build/demo", help="folder for the plot and model file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RNNKIT_OFFLINE", "1")
    torch.manual_seed(0)
    np.random.seed(0)
    total = time.perf_counter()
    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}")

    guide_models()
    data = load_digits()
    if args.small:
        global MIN_ACCURACY
        MIN_ACCURACY = 0.0  # 10 steps per epoch are too few for a meaningful accuracy
        data = (data[0][:320], data[1][:320], data[2][:200], data[3][:200])
    fast_model = train_fast(data, epochs=2 if args.small else 6)[1]
    train_slow(data, fast_model)
    compare_kernels(data, fast_model)
    stateful()
    bidirectional()
    time_series_model(100 if args.small else 1500, out)
    save_and_load(fast_model, data, out)

    print("\n=== summary " + "=" * 66)
    width = max(len(r[0]) for r in ROWS)
    print(f"{'step':<{width}}  {'time':>7}  result")
    for title, result, seconds in ROWS:
        print(f"{title:<{width}}  {seconds:6.1f}s  {result}")
    print(f"{'total':<{width}}  {time.perf_counter() - total:6.1f}s")


if __name__ == "__main__":
    main()
