"""What the user runs, against hand-written PyTorch: ``train_on_batch``, a ``fit`` epoch,
``predict`` and the streaming call, timed in one process, interleaved, medians.

Every row pairs an rnnkit call with the PyTorch code a user would write for the same work; in
each round both run ``reps`` times back to back (rnnkit first, then PyTorch, alternating the
order every round), and ``ratio`` is the median over rounds of rnnkit's time / PyTorch's time
taken in the same round. Times are milliseconds per call (per epoch for ``fit``).

Rows (the guide's MNIST model: ``Input((None, 28))``, a recurrent layer of 64 units,
``BatchNormalization()``, ``Dense(10)``, ``SparseCategoricalCrossentropy(from_logits=True)``,
``optimizer="sgd"``, ``metrics=["accuracy"]``; batch 64 of 28 x 28):

* ``train_on_batch``: ``model.train_on_batch(x, y)`` (returns the loss and the accuracy as
  Python floats) vs ``zero_grad(); cross_entropy(net(x), y).backward(); opt.step();
  loss.item()`` on ``nn.LSTM``/``nn.GRU``/an ``nn.LSTMCell`` Python loop with
  ``nn.BatchNorm1d`` and ``nn.Linear`` (Keras' batch-norm epsilon and momentum) and
  ``torch.optim.SGD(lr=0.01)``. The ``recurrent_dropout``, ``activation="relu"`` and
  mask-with-holes rows compare with the plain ``nn.LSTM`` step (it has no such option: the
  question is what the option costs). The mask row puts ``Masking()`` first and zeroes about
  10% of the steps at random.
* ``fit epoch``: ``model.fit(x, y, batch_size=64, epochs=1, verbose=0)`` on 3,200 samples
  (numpy arrays, shuffled) vs one epoch of the plain step over a shuffling
  ``DataLoader(TensorDataset(...), batch_size=64)`` that also sums the loss and the correct
  predictions on the device and reads both back once at the end (the same logs ``fit``
  returns).
* ``predict 1 sample``: ``model.predict(x[:1], verbose=0)`` vs the model call ``model(x[:1])``
  under ``torch.no_grad()``.
* ``streaming``: a stateful ``LSTM(64) -> Dense(10)`` model (``batch_shape=(1, 1, 28)``)
  called on one step of one sample, ``model(x_t)``, vs ``nn.LSTM`` + ``nn.Linear`` carrying
  ``(h, c)`` by hand; both under ``torch.no_grad()`` (the ``grad`` row: both without). The
  ``streaming GRU`` row: the same with ``GRU(64)`` against ``nn.GRU`` (no_grad).

Run ``python benchmarks/bench_fit.py`` on an idle machine (wall clock, torch's default
threads: the headline); on a loaded machine ``--threads 1 --clock cpu`` (CPU time of the
main thread, one intra-op thread) is the secondary mode. See ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rnn import add_clock_arguments, clock_from_arguments  # noqa: E402

import rnnkit as keras  # noqa: E402

B, T, D, U, CLASSES = 64, 28, 28, 64, 10
EPOCH_SAMPLES = 3200
CLOCK: Callable[[], float] = time.perf_counter


# ---------------------------------------------------------------- hand-written PyTorch models
class PlainGuide(nn.Module):
    """``nn.LSTM``/``nn.GRU`` (or an ``nn.LSTMCell`` loop), ``nn.BatchNorm1d``, ``nn.Linear``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "cell":
            self.rnn: nn.Module = nn.LSTMCell(D, U)
        else:
            self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(D, U, batch_first=True)
        self.bn = nn.BatchNorm1d(U, eps=1e-3, momentum=0.01)
        self.fc = nn.Linear(U, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "cell":
            h = c = x.new_zeros(x.shape[0], U)
            for x_t in x.unbind(1):
                h, c = self.rnn(x_t, (h, c))
        else:
            h = self.rnn(x)[0][:, -1]
        return self.fc(self.bn(h))


def plain_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def plain_epoch(net: nn.Module, x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(data, batch_size=B, shuffle=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def epoch() -> tuple[float, float]:
        net.train()
        total = torch.zeros(())
        correct = torch.zeros((), dtype=torch.long)
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            opt.step()
            total += loss.detach() * len(yb)
            correct += (logits.argmax(-1) == yb).sum()
        n = len(data)
        return total.item() / n, correct.item() / n

    return epoch


# ------------------------------------------------------------------------- rnnkit models
def guide_model(layer: Any, masking: bool = False) -> Any:
    layers = [keras.Input((None, D))]
    if masking:
        layers.append(keras.layers.Masking())
    layers += [layer, keras.layers.BatchNormalization(), keras.layers.Dense(CLASSES)]
    model = keras.Sequential(layers)
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer="sgd",
        metrics=["accuracy"],
    )
    return model


def _holes(x: torch.Tensor) -> torch.Tensor:
    """``x`` with about 10% of its steps zeroed at random (the first step kept)."""
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(x.shape[0], x.shape[1], generator=g) > 0.1
    keep[:, 0] = True
    return x * keep.unsqueeze(-1)


Pair = tuple[str, Callable[[], Any], Callable[[], Any]]


def train_rows(x: torch.Tensor, y: torch.Tensor) -> list[Pair]:
    L = keras.layers
    rows = [
        ("LSTM vs nn.LSTM", L.LSTM(U), "lstm", x),
        ("GRU vs nn.GRU", L.GRU(U), "gru", x),
        ("RNN(LSTMCell) vs nn.LSTMCell loop", L.RNN(L.LSTMCell(U)), "cell", x),
        ("LSTM(recurrent_dropout=0.2) vs nn.LSTM", L.LSTM(U, recurrent_dropout=0.2), "lstm", x),
        ('LSTM(activation="relu") vs nn.LSTM', L.LSTM(U, activation="relu"), "lstm", x),
        ("LSTM, mask with holes vs nn.LSTM", L.LSTM(U), "lstm", _holes(x)),
    ]
    pairs: list[Pair] = []
    for label, layer, kind, inputs in rows:
        model = guide_model(layer, masking=label.startswith("LSTM, mask"))

        def ours(model: Any = model, inputs: torch.Tensor = inputs) -> Any:
            return model.train_on_batch(inputs, y)

        pairs.append((f"train_on_batch  {label}", ours, plain_step(PlainGuide(kind), x, y)))
    return pairs


def epoch_row() -> Pair:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((EPOCH_SAMPLES, T, D)).astype("float32")
    y = rng.integers(0, CLASSES, EPOCH_SAMPLES)
    model = guide_model(keras.layers.LSTM(U))

    def ours() -> Any:
        return model.fit(x, y, batch_size=B, epochs=1, verbose=0)

    return (
        "fit epoch       LSTM, 50 batches vs DataLoader loop",
        ours,
        plain_epoch(PlainGuide("lstm"), x, y),
    )


def predict_row(x: torch.Tensor) -> Pair:
    model = guide_model(keras.layers.LSTM(U))
    one = x[:1].numpy()
    one_t = x[:1]

    def ours() -> Any:
        return model.predict(one, verbose=0)

    def call() -> Any:
        with torch.no_grad():
            return model(one_t)

    return ("predict 1 sample  LSTM model vs model(x) under no_grad", ours, call)


def streaming_rows(kind: str = "lstm") -> list[Pair]:
    L = keras.layers
    layer = L.LSTM(U, stateful=True) if kind == "lstm" else L.GRU(U, stateful=True)
    model = keras.Sequential([keras.Input(batch_shape=(1, 1, D)), layer, L.Dense(CLASSES)])
    rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(D, U, batch_first=True)
    head = nn.Linear(U, CLASSES)
    x_t = torch.randn(1, 1, D)
    state = [torch.zeros(1, 1, U), torch.zeros(1, 1, U)]

    def ours() -> Any:
        return model(x_t)

    def plain() -> Any:
        if kind == "lstm":
            out, (h, c) = rnn(x_t, (state[0], state[1]))
            state[0], state[1] = h, c
        else:
            out, state[0] = rnn(x_t, state[0])
        return head(out[:, -1])

    def no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                return fn()

        return run

    def grad(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            out = fn()
            state[0], state[1] = state[0].detach(), state[1].detach()
            return out

        return run

    if kind == "gru":
        return [("streaming GRU   1 step, 1 sample, no_grad vs nn.GRU+nn.Linear",
                 no_grad(ours), no_grad(plain))]  # fmt: skip
    return [
        (
            "streaming       1 step, 1 sample, no_grad vs nn.LSTM+nn.Linear",
            no_grad(ours),
            no_grad(plain),
        ),
        ("streaming       1 step, 1 sample, grad vs nn.LSTM+nn.Linear", ours, grad(plain)),
    ]


# ------------------------------------------------------------------------------- timing
def _time(fn: Callable[[], Any], reps: int) -> float:
    start = CLOCK()
    for _ in range(reps):
        fn()
    return (CLOCK() - start) * 1000.0 / reps


def bench(pair: Pair, rounds: int, budget: float) -> tuple[float, float, float]:
    """Median ms of rnnkit, of PyTorch and the median per-round ratio."""
    _label, ours, plain = pair
    for _ in range(3):  # warm-up: builds, optimizer slots, allocator caches
        ours()
        plain()
    one = max(_time(ours, 1), _time(plain, 1), 1e-3)
    reps = max(1, int(budget * 1000.0 / one))
    a, b = [], []
    for r in range(rounds):
        if r % 2:
            b.append(_time(plain, reps))
            a.append(_time(ours, reps))
        else:
            a.append(_time(ours, reps))
            b.append(_time(plain, reps))
    ratio = statistics.median(x / y for x, y in zip(a, b))
    return statistics.median(a), statistics.median(b), ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per side per round")
    parser.add_argument("--only", default="", help="run the rows whose label contains this")
    add_clock_arguments(parser)
    args = parser.parse_args()
    global CLOCK
    CLOCK = clock_from_arguments(parser, args)
    torch.manual_seed(0)
    x, y = torch.randn(B, T, D), torch.randint(0, CLASSES, (B,))
    pairs = [*train_rows(x, y), epoch_row(), predict_row(x), *streaming_rows(),
             *streaming_rows("gru")]  # fmt: skip
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
        f"median of {args.rounds} interleaved rounds, ~{args.budget}s per side per round"
    )
    header = f"{'what':72s} {'rnnkit ms':>10s} {'torch ms':>9s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    for pair in pairs:
        if args.only and args.only not in pair[0]:
            continue
        ours, plain, ratio = bench(pair, args.rounds, args.budget)
        print(f"{pair[0]:72s} {ours:10.3f} {plain:9.3f} {ratio:6.2f}", flush=True)


if __name__ == "__main__":
    main()
