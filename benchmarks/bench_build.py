"""What building a model costs: ``import rnnkit``, and one layer call on ``rnnkit.Input``.

Rows:

* ``import``: ``python -c "import torch"`` and ``python -c "import rnnkit"`` in fresh
  processes (wall clock, median of ``--imports`` runs each, alternating), and whether the
  second leaves ``torch._dynamo`` unloaded.
* one row per layer: a new layer called on a new ``rnnkit.Input`` (the symbolic call that
  builds it and records the node), in milliseconds: ``shapes`` as rnnkit runs it (layers that
  tell their output from the input's shape, ``Layer._output_from_shapes``, are not run) and
  ``placeholders`` with that path switched off (the layer runs twice on fake tensors, as every
  layer did before). Medians over ``--rounds`` interleaved rounds, wall clock, torch's default
  threads.

Run ``python benchmarks/bench_build.py`` on an idle machine. See ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import rnnkit
from rnnkit import layers as L

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
}


def _no_shapes(inputs: Any, **kwargs: Any) -> None:
    return None


def _symbolic_call(make: Callable[[], Any], make_input: Callable[[], Any], run: bool) -> float:
    layer, x = make(), make_input()
    if run:
        layer._output_from_shapes = _no_shapes
        inner = getattr(layer, "forward_layer", None)
        if inner is not None:
            inner._output_from_shapes = layer.backward_layer._output_from_shapes = _no_shapes
    start = time.perf_counter()
    layer(x)
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

    header = f"{'layer called on rnnkit.Input':34s} {'shapes ms':>10s} {'placeholders ms':>16s}"
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
        print(f"{label:34s} {statistics.median(shapes):10.2f} {statistics.median(runs):16.2f}")


if __name__ == "__main__":
    main()
