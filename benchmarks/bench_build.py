"""What building a model costs: ``import rnnkit``, and one layer call on ``rnnkit.Input``.

Rows:

* ``import``: ``python -c "import torch"`` and ``python -c "import rnnkit"`` in fresh
  processes (wall clock, median of ``--imports`` runs each, alternating), and whether the
  second leaves ``torch._dynamo`` unloaded.
* one row per layer: a new layer called on a new ``rnnkit.Input`` (the symbolic call that
  builds it and records the node), in milliseconds: ``shapes`` as rnnkit runs it (layers that
  tell their output from the input's shape, ``Layer._output_from_shapes``, are not run; a
  model replays its graph layer by layer; layers called inside a placeholder run give
  placeholders of the shapes they tell) and ``placeholders`` with all of that switched off
  (``rnnkit.symbolic.outputs_from_shapes`` and the placeholder-run shortcut give nothing: the
  layer runs twice on fake tensors, everything inside it too, as every layer did before).
  Medians over ``--rounds`` interleaved rounds, wall clock, torch's default threads.

Run ``python benchmarks/bench_build.py`` on an idle machine. See ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import rnnkit
from rnnkit import layers as L
from rnnkit import symbolic


class _Encoder(rnnkit.Model):
    """A subclassed model used as a layer (GRU -> LSTM -> Dense): its call runs on
    placeholders, the built-in layers inside it tell their outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = L.GRU(32, return_sequences=True)
        self.lstm = L.LSTM(32)
        self.dense = L.Dense(10)

    def call(self, inputs: Any) -> Any:
        return self.dense(self.lstm(self.gru(inputs)))


def _functional() -> rnnkit.Model:
    x = rnnkit.Input((None, 28))
    y = L.TimeDistributed(L.Dense(8))(L.LSTM(32, return_sequences=True)(x))
    return rnnkit.Model(x, L.GRU(16)(y))


def _with_states() -> dict[str, Any]:
    x = rnnkit.Input((None, 28))
    return {"inputs": x, "initial_state": [rnnkit.Input((32,)) for _ in range(4)]}


LAYERS: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "Dense(10)": (lambda: L.Dense(10), lambda: rnnkit.Input((None, 28))),
    "BatchNormalization()": (L.BatchNormalization, lambda: rnnkit.Input((64,))),
    "Embedding(1000, 64, mask_zero)": (
        lambda: L.Embedding(1000, 64, mask_zero=True),
        lambda: rnnkit.Input((None,), dtype="int64"),
    ),
    "LSTM(64)": (lambda: L.LSTM(64), lambda: rnnkit.Input((None, 28))),
    "LSTM(64) on a mask": (
        lambda: L.LSTM(64),
        lambda: L.Masking()(rnnkit.Input((None, 28))),
    ),
    "GRU(64, return_sequences)": (
        lambda: L.GRU(64, return_sequences=True),
        lambda: rnnkit.Input((None, 28)),
    ),
    "SimpleRNN(64)": (lambda: L.SimpleRNN(64), lambda: rnnkit.Input((None, 28))),
    "RNN(LSTMCell(64))": (lambda: L.RNN(L.LSTMCell(64)), lambda: rnnkit.Input((None, 28))),
    "Bidirectional(LSTM(32))": (
        lambda: L.Bidirectional(L.LSTM(32)),
        lambda: rnnkit.Input((None, 28)),
    ),
    "Bidirectional(LSTM(32)), initial_state": (
        lambda: L.Bidirectional(L.LSTM(32)),
        _with_states,
    ),
    "RNN(StackedRNNCells([LSTM, GRU]))": (
        lambda: L.RNN(L.StackedRNNCells([L.LSTMCell(32), L.GRUCell(32)])),
        lambda: rnnkit.Input((None, 28)),
    ),
    "RNN(DropoutCell(OutputProjection))": (
        lambda: L.RNN(L.DropoutCell(L.OutputProjectionCell(L.LSTMCell(32), 10))),
        lambda: rnnkit.Input((None, 28)),
    ),
    "ConvLSTM2D(8, 3)": (
        lambda: L.ConvLSTM2D(8, 3, return_sequences=True),
        lambda: rnnkit.Input((None, 16, 16, 3)),
    ),
    "TimeDistributed(Dense(10))": (
        lambda: L.TimeDistributed(L.Dense(10)),
        lambda: rnnkit.Input((None, 28)),
    ),
    "functional Model as a layer": (_functional, lambda: rnnkit.Input((None, 28))),
    "Sequential as a layer": (
        lambda: rnnkit.Sequential([rnnkit.Input((None, 28)), L.LSTM(32), L.Dense(10)]),
        lambda: rnnkit.Input((None, 28)),
    ),
    "subclassed Model (GRU, LSTM, Dense)": (_Encoder, lambda: rnnkit.Input((None, 28))),
}


@contextlib.contextmanager
def _placeholders_only() -> Iterator[None]:
    """Every layer runs on placeholders, as before the shapes-only paths."""
    told, shortcut = symbolic.outputs_from_shapes, symbolic._told_placeholders
    symbolic.outputs_from_shapes = lambda *args, **kwargs: None
    symbolic._told_placeholders = lambda *args, **kwargs: None
    try:
        yield
    finally:
        symbolic.outputs_from_shapes, symbolic._told_placeholders = told, shortcut


def _symbolic_call(make: Callable[[], Any], make_input: Callable[[], Any], run: bool) -> float:
    layer, x = make(), make_input()
    with _placeholders_only() if run else contextlib.nullcontext():
        start = time.perf_counter()
        layer(**x) if isinstance(x, dict) else layer(x)
        return (time.perf_counter() - start) * 1000.0


def _import_seconds(module: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--imports", type=int, default=5)
    args = parser.parse_args()

    times: dict[str, list[float]] = {"torch": [], "rnnkit": []}
    for _ in range(args.imports):
        for module in times:
            times[module].append(_import_seconds(module))
    code = "import sys, rnnkit; print('torch._dynamo' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    print(f"import (wall clock, median of {args.imports} fresh processes each):")
    for module, values in times.items():
        print(f"  import {module:7s} {statistics.median(values):6.2f} s")
    print(f"  torch._dynamo loaded by import rnnkit: {loaded.stdout.strip()}")
    print()

    header = f"{'layer called on rnnkit.Input':40s} {'shapes ms':>10s} {'placeholders ms':>16s}"
    print(f"symbolic calls, median of {args.rounds} interleaved rounds, wall clock")
    print(header)
    print("-" * len(header))
    for label, (make, make_input) in LAYERS.items():
        for run in (False, True):  # warm-up: first builds, fake-tensor caches
            _symbolic_call(make, make_input, run)
        shapes, runs = [], []
        for _ in range(args.rounds):
            shapes.append(_symbolic_call(make, make_input, False))
            runs.append(_symbolic_call(make, make_input, True))
        print(f"{label:40s} {statistics.median(shapes):10.2f} {statistics.median(runs):16.2f}")


if __name__ == "__main__":
    main()
