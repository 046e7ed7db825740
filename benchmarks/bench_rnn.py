"""Benchmark rnnkit's recurrent layers against plain PyTorch (and Keras 3), in one process.

Each variant is a whole model: a recurrent layer, then Dense(10) (``nn.Linear`` for the
PyTorch references), cross-entropy on the last output, and ``torch.optim.SGD``. The table
gives milliseconds per training step (forward + backward + SGD step) and per inference call
(forward, ``no_grad``). Every block's variants run interleaved, round by round; a ratio is the
median over rounds of ``time / time of the block's first variant`` taken within each round,
so it compares numbers taken under the same machine load. ``kernel`` is the kernel the
training step ran (``layer.last_kernel``: fused, manual_backward, generic).

Sizes (``--sizes``, comma-separated; ``B`` batch, ``T`` steps, ``d`` features, ``u`` units):

* ``seed``: the guide's MNIST model, B=64, T=28, d=28, u=64;
* ``long``: B=64, T=100, d=64, u=128 (the issue's second acceptance size);
* ``t500``: a long sequence, B=32, T=500, d=32, u=128;
* ``u512``: a large model, B=64, T=100, d=64, u=512.

Blocks: LSTM (``nn.LSTM``; rnnkit ``LSTM`` on the fused kernel; an ``nn.LSTMCell`` Python
loop; ``recurrent_dropout=0.2``, ``activation="relu"``, ``RNN(LSTMCell)``, which runs the
manual-backward kernel since 2026-12-05 and the generic loop before), masked batches
(``nn.LSTM`` without mask; a right-padded batch, which the fused kernel runs; a mask with holes,
10% of the steps at random), GRU (``nn.GRU``; ``GRU``; ``reset_after=False``). The ``u512`` and
``t500`` sizes skip the slowest rows (the cell loop and ``RNN(LSTMCell)``). The kernel column
says which kernel ran; ``RNNKIT_NATIVE=0`` in the environment runs the manual-backward kernel's
Python step loop instead of the native one (for comparison).

Keras 3 (``--keras``, when ``keras`` imports with ``KERAS_BACKEND=torch``): a column with the
same model built from ``keras.layers`` and trained the same way (its parameters are torch
Parameters). Keras' torch backend runs every recurrent layer as a Python loop on CPU, so it
is slow: it is timed with one repetition per round, on the sizes in ``--keras-sizes``
(default: ``seed`` only).

Run ``python benchmarks/bench_rnn.py --threads 1 --clock cpu`` on a shared machine (see
``RESULTS.md``), ``--sizes seed,long,t500,u512`` for everything (on the project's 2-core VM
about 1 minute for seed and long, the default, and 3.5 minutes more for t500 and u512 with
``--rounds 3``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rnnkit.layers import GRU, LSTM, RNN, Dense, LSTMCell

Tensor = torch.Tensor
CLASSES = 10
SIZES = {
    "seed": (64, 28, 28, 64),
    "long": (64, 100, 64, 128),
    "t500": (32, 500, 32, 128),
    "u512": (64, 100, 64, 512),
}
BIG = ("t500", "u512")


class TorchRNN(nn.Module):
    """``nn.LSTM`` / ``nn.GRU`` plus an ``nn.Linear`` head (the mask is ignored)."""

    def __init__(self, cell: str, d: int, u: int) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(d, u, batch_first=True)
        self.head = nn.Linear(u, CLASSES)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.head(self.rnn(x)[0][:, -1])


class CellLoop(nn.Module):
    """An ``nn.LSTMCell`` stepped in a Python loop: what a hand-written PyTorch loop costs."""

    def __init__(self, d: int, u: int) -> None:
        super().__init__()
        self.cell, self.u = nn.LSTMCell(d, u), u
        self.head = nn.Linear(u, CLASSES)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = c = x.new_zeros(x.shape[0], self.u)
        for x_t in x.unbind(1):
            h, c = self.cell(x_t, (h, c))
        return self.head(h)


class LayerModel(nn.Module):
    """A recurrent layer (rnnkit or Keras 3) and a Dense(10) head of the same library."""

    def __init__(self, rnn: Any, head: Any) -> None:
        super().__init__()
        self.rnn, self.head = rnn, head

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.head(self.rnn(x, mask=mask, training=self.training))


def _holes(B: int, T: int) -> Tensor:
    """About 10% of the steps masked at random (the first kept): a mask with holes."""
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(B, T, generator=g) > 0.1
    mask[:, 0] = True
    return mask


def _right_padded(B: int, T: int) -> Tensor:
    """Sequence lengths from T/2 to T, padded at the end (one run of valid steps per row)."""
    lengths = torch.linspace(T // 2, T, B).round().long()
    return torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    return keras if keras.backend.backend() == "torch" else None


# A row: (label, rnnkit layer factory, Keras layer factory or None); the first row of each
# block is the PyTorch reference.
Row = tuple[str, Callable[[int, int], nn.Module], Callable[[Any, int], Any] | None]


def _blocks(size: str) -> list[tuple[str, Tensor | None, list[Row]]]:
    B, T, d, u = SIZES[size]
    big = size in BIG

    def rnnkit(layer: Callable[[int], Any]) -> Callable[[int, int], nn.Module]:
        return lambda d, u: LayerModel(layer(u), Dense(CLASSES))

    lstm: list[Row] = [
        ("nn.LSTM", lambda d, u: TorchRNN("lstm", d, u), None),
        ("LSTM", rnnkit(lambda u: LSTM(u)), lambda k, u: k.layers.LSTM(u)),
        ("nn.LSTMCell loop", lambda d, u: CellLoop(d, u), None),
        (
            "LSTM(recurrent_dropout=0.2)",
            rnnkit(lambda u: LSTM(u, recurrent_dropout=0.2)),
            lambda k, u: k.layers.LSTM(u, recurrent_dropout=0.2),
        ),
        (
            'LSTM(activation="relu")',
            rnnkit(lambda u: LSTM(u, activation="relu")),
            lambda k, u: k.layers.LSTM(u, activation="relu"),
        ),
        ("RNN(LSTMCell)", rnnkit(lambda u: RNN(LSTMCell(u))), None),
    ]
    masked: list[Row] = [
        ("nn.LSTM (no mask)", lambda d, u: TorchRNN("lstm", d, u), None),
        ("LSTM right-padded mask", rnnkit(lambda u: LSTM(u)), lambda k, u: k.layers.LSTM(u)),
    ]
    holes: list[Row] = [
        ("nn.LSTM (no mask)", lambda d, u: TorchRNN("lstm", d, u), None),
        ("LSTM mask with holes", rnnkit(lambda u: LSTM(u)), lambda k, u: k.layers.LSTM(u)),
    ]
    gru: list[Row] = [
        ("nn.GRU", lambda d, u: TorchRNN("gru", d, u), None),
        ("GRU", rnnkit(lambda u: GRU(u)), lambda k, u: k.layers.GRU(u)),
        (
            "GRU(reset_after=False)",
            rnnkit(lambda u: GRU(u, reset_after=False)),
            lambda k, u: k.layers.GRU(u, reset_after=False),
        ),
    ]
    if big:
        lstm = [r for r in lstm if r[0] not in ("nn.LSTMCell loop", "RNN(LSTMCell)")]
    return [
        ("lstm", None, lstm),
        ("padded", _right_padded(B, T), masked),
        ("holes", _holes(B, T), holes),
        ("gru", None, gru),
    ]


def _steps(model: nn.Module, x: Tensor, y: Tensor, mask: Tensor | None):
    """The training-step and inference closures; ``model.train_kernel`` records the kernel
    of the last training step."""
    model.eval()
    with torch.no_grad():
        model(x, mask)  # build lazy layers before the optimizer sees the parameters
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def train() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x, mask), y).backward()
        opt.step()
        model.train_kernel = getattr(getattr(model, "rnn", None), "last_kernel", None)

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(x, mask)

    return train, infer


CLOCK: Callable[[], float] = time.perf_counter


def add_clock_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--clock``, shared by the benchmark scripts."""
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: CPU time of this thread (use with --threads 1 on a "
        "machine shared with other jobs: it does not count time spent preempted)",
    )


def clock_from_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> Callable[[], float]:
    """Apply ``--threads``; the clock ``--clock`` asks for (``--clock cpu`` needs one thread)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "wall":
        return time.perf_counter
    if torch.get_num_threads() != 1:
        parser.error("--clock cpu measures only this thread: use it with --threads 1")
    return time.thread_time


def _time(fn: Callable[[], None], reps: int) -> float:
    start = CLOCK()
    for _ in range(reps):
        fn()
    return (CLOCK() - start) * 1000.0 / reps


def _median_ratio(values: list[float], base: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(values, base))


def bench_block(size: str, mask: Tensor | None, rows: list[Row], args: Any, keras: Any) -> None:
    B, T, d, u = SIZES[size]
    torch.manual_seed(0)
    x, y = torch.randn(B, T, d), torch.randint(0, CLASSES, (B,))
    fns: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}
    models: dict[str, nn.Module] = {}
    keras_fns: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}
    for label, make, make_keras in rows:
        models[label] = make(d, u)
        fns[label] = _steps(models[label], x, y, mask)
        if keras is not None and make_keras is not None and size in args.keras_sizes:
            model = LayerModel(make_keras(keras, u), keras.layers.Dense(CLASSES))
            keras_fns[label] = _steps(model, x, y, mask)
    reps = {}
    for label, (train, infer) in [*fns.items(), *(("k " + k, v) for k, v in keras_fns.items())]:
        train()  # warm-up, and the repetitions per round from one step's time
        infer()
        one = max(_time(train, 1), 1e-3)
        reps[label] = 1 if label.startswith("k ") else max(1, int(args.budget / one * 1000.0))
    times: dict[str, list[list[float]]] = {k: [[], []] for k in fns}
    keras_times: dict[str, list[list[float]]] = {k: [[], []] for k in keras_fns}
    for _ in range(args.rounds):
        for label, (train, infer) in fns.items():
            times[label][0].append(_time(train, reps[label]))
            times[label][1].append(_time(infer, reps[label]))
        for label, (train, infer) in keras_fns.items():
            keras_times[label][0].append(_time(train, 1))
            keras_times[label][1].append(_time(infer, 1))
    base_train, base_infer = times[rows[0][0]]
    for label in fns:
        tr, inf = times[label]
        kernel = getattr(models[label], "train_kernel", None) or "-"
        line = (
            f"{size:5s} {label:28s} {kernel:8s} {statistics.median(tr):9.2f} "
            f"{_median_ratio(tr, base_train):6.2f} {statistics.median(inf):9.2f} "
            f"{_median_ratio(inf, base_infer):6.2f}"
        )
        if label in keras_times:
            ktr, kinf = keras_times[label]
            line += (
                f" {statistics.median(ktr):10.2f} {_median_ratio(ktr, base_train):6.2f}"
                f" {statistics.median(kinf):9.2f} {_median_ratio(kinf, base_infer):6.2f}"
            )
        print(line, flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="seed,long", help=f"among {','.join(SIZES)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.04, help="seconds per variant/round")
    parser.add_argument("--keras", action="store_true", help="add the Keras 3 column")
    parser.add_argument("--keras-sizes", default="seed", help="sizes with the Keras column")
    add_clock_arguments(parser)
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose among {list(SIZES)}")
    args.keras_sizes = args.keras_sizes.split(",")
    global CLOCK
    CLOCK = clock_from_arguments(parser, args)
    keras = _keras() if args.keras else None
    if args.keras and keras is None:
        print("keras (torch backend) is not importable: no Keras column")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
        f"median of {args.rounds} rounds"
        + (f"; Keras {keras.__version__} on {args.keras_sizes}, 1 rep/round" if keras else "")
    )
    header = (
        f"{'size':5s} {'variant':28s} {'kernel':8s} {'train ms':>9s} {'ratio':>6s} "
        f"{'infer ms':>9s} {'ratio':>6s}"
    )
    if keras:
        header += f" {'keras train':>10s} {'ratio':>6s} {'infer ms':>9s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    for size in sizes:
        B, T, d, u = SIZES[size]
        print(f"{size}: B={B} T={T} d={d} u={u}")
        for _name, mask, rows in _blocks(size):
            bench_block(size, mask, rows, args, keras)


if __name__ == "__main__":
    main()
