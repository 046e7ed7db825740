"""torch.compile vs eager for the guide's MNIST model, LSTM(64) -> Dense(10).

Prints milliseconds per training step (forward, cross-entropy, backward, SGD step) and per
inference call (``no_grad``) at the seed size (batch 64, 28 steps x 28 features) and at
T=100, eager and ``torch.compile(model)`` (inductor), and which kernel the LSTM ran. The
compile time (first calls) is printed apart and not counted. Results: RESULTS_compile.md.

    python benchmarks/bench_compile.py --threads 1 --clock cpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_rnn  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit import layers  # noqa: E402

SIZES = {"seed": (64, 28, 28, 64), "T100": (64, 100, 28, 64)}


def _model(d: int, u: int) -> rnnkit.Model:
    return rnnkit.Sequential([layers.Input((None, d)), layers.LSTM(u), layers.Dense(10)])


def _timed(fn, rounds: int, reps: int) -> float:
    times = []
    for _ in range(rounds):
        start = bench_rnn.CLOCK()
        for _ in range(reps):
            fn()
        times.append((bench_rnn.CLOCK() - start) * 1000.0 / reps)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="seed,T100", help=f"among {','.join(SIZES)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--backend", default="inductor")
    bench_rnn.add_clock_arguments(parser)
    args = parser.parse_args()
    bench_rnn.CLOCK = bench_rnn.clock_from_arguments(parser, args)
    print("| size | mode | eager ms | compiled ms | ratio | compile s | kernel |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        _bench_size(size, args)


def _bench_size(size: str, args: argparse.Namespace) -> None:
    B, T, d, u = SIZES[size]
    torch.manual_seed(0)
    x, y = torch.randn(B, T, d), torch.randint(0, 10, (B,))
    model = _model(d, u)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=args.backend)

    def train(m: torch.nn.Module) -> None:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(x, training=True), y)
        loss.backward()
        optimizer.step()

    def infer(m: torch.nn.Module) -> None:
        with torch.no_grad():
            m(x)

    for mode, step in (("training", train), ("inference", infer)):
        start = time.perf_counter()
        step(compiled)
        step(compiled)
        compile_s = time.perf_counter() - start
        eager = _timed(lambda s=step: s(model), args.rounds, args.reps)
        fast = _timed(lambda s=step: s(compiled), args.rounds, args.reps)
        kernel = model.layers[0].last_kernel
        print(
            f"| B{B} T{T} d{d} u{u} | {mode} | {eager:.2f} | {fast:.2f} | "
            f"{fast / eager:.2f} | {compile_s:.1f} | {kernel} |"
        )


if __name__ == "__main__":
    main()
