"""Seed 004's time-series model: predict ``t sin(t) / 3 + 2 sin(5t)`` one step ahead.

``SimpleRNN(100, activation="relu", return_sequences=True)`` reads 20 values and returns 100
features per step; ``TimeDistributed(Dense(1))`` maps each step's features to the predicted
next value (the book's ``OutputProjectionWrapper``). Trained with Adam(0.001) on mse for 1500
iterations of 50 random windows; then it predicts a window starting at t = 12.2 and, with
matplotlib installed, plots prediction vs target to ``time_series_pred_plot.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import rnnkit
from rnnkit import layers
from rnnkit.datasets.time_series import next_batch, time_series

n_steps = 20
n_inputs = 1
n_neurons = 100
n_outputs = 1
learning_rate = 0.001
batch_size = 50
resolution = 0.1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="100 iterations (for the tests)")
    parser.add_argument("--out", default="build/examples", help="folder for the plot")
    args = parser.parse_args(argv)
    n_iterations = 100 if args.small else 1500
    torch.manual_seed(42)
    rng = np.random.default_rng(42)

    model = rnnkit.Sequential(
        [
            layers.Input(shape=(n_steps, n_inputs)),
            layers.SimpleRNN(n_neurons, activation="relu", return_sequences=True),
            layers.TimeDistributed(layers.Dense(n_outputs)),
        ]
    )
    model.compile(optimizer=rnnkit.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    first = None
    for iteration in range(n_iterations):
        x_batch, y_batch = next_batch(batch_size, n_steps, rng)
        mse = model.train_on_batch(x_batch, y_batch)
        mse = mse[0] if isinstance(mse, list | tuple) else float(mse)
        first = mse if first is None else first
        if iteration % 100 == 0:
            print(iteration, "\tMSE:", round(mse, 4))
    print(f"training mse {first:.3f} -> {mse:.4f}")
    assert mse < first

    t_instance = np.linspace(12.2, 12.2 + resolution * (n_steps + 1), n_steps + 1)
    x_new = time_series(t_instance[:-1]).reshape(-1, n_steps, n_inputs).astype("float32")
    y_pred = model.predict(x_new, verbose=0)
    target = time_series(t_instance[1:])
    print(f"test window mse: {np.mean((y_pred[0, :, 0] - target) ** 2):.4f}")

    try:
        import matplotlib
    except ImportError:
        print("matplotlib is missing: no plot (pip install -e '.[demo]' to get one)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plt.title("Testing the model", fontsize=14)
    plt.plot(t_instance[:-1], time_series(t_instance[:-1]), "bo", markersize=10, label="instance")
    plt.plot(t_instance[1:], target, "w*", markeredgecolor="k", markersize=10, label="target")
    plt.plot(t_instance[1:], y_pred[0, :, 0], "r.", markersize=10, label="prediction")
    plt.legend(loc="upper left")
    plt.xlabel("Time")
    path = out / "time_series_pred_plot.png"
    plt.savefig(path)
    plt.close()
    print(f"plot written to {path}")


if __name__ == "__main__":
    main()
