"""Benchmark rnnkit's fast recurrent kernels against plain PyTorch, in one process.

Prints a table of milliseconds per training step (forward + backward + SGD step, through a
Dense(10) head and cross-entropy) and per inference call (forward, no grad). Every block's
variants run interleaved, round by round; the table gives the median time over rounds and
the median over rounds of the ratio to the block's first variant taken within each round,
so the ratios compare numbers taken under the same machine load.

Rows (``B`` batch, ``T`` steps, ``d`` features, ``u`` units):

* seed: the guide's MNIST model size, B=64, T=28, d=28, u=64;
* long: B=64, T=100, d=64, u=128.

Variants: ``fused`` (rnnkit.kernels.fused, Keras-layout weights), ``noclift``
(rnnkit.kernels.noclift: recurrent_dropout=0.2, a mask with holes, activation="relu",
GRU reset_after=False), and the references ``nn.LSTM``, ``nn.GRU`` and an ``nn.LSTMCell``
Python loop.

Run ``python benchmarks/bench_rnn.py`` (about 2 minutes on 2 cores) or ``--quick``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from rnnkit.kernels import fused, noclift

Tensor = torch.Tensor


class KerasRNN(nn.Module):
    """An RNN with Keras-layout Parameters run by one of rnnkit's kernels, plus a Dense head."""

    def __init__(self, cell: str, d: int, u: int, kernel: str, **options: object) -> None:
        super().__init__()
        gates = {"lstm": 4, "gru": 3}[cell]
        self.cell, self.u, self.kernel_name, self.options = cell, u, kernel, options
        self.kernel = nn.Parameter(torch.randn(d, gates * u) * d**-0.5)
        self.recurrent_kernel = nn.Parameter(torch.randn(u, gates * u) * u**-0.5)
        reset_after = options.get("reset_after", True)
        bias_shape = (2, 3 * u) if cell == "gru" and reset_after else (gates * u,)
        self.bias = nn.Parameter(torch.zeros(bias_shape))
        self.head = nn.Linear(u, 10)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        B = x.shape[0]
        h0 = x.new_zeros(B, self.u)
        opts = dict(self.options)
        rate = opts.pop("recurrent_dropout", 0.0)
        if rate and self.training:
            gates = 4 if self.cell == "lstm" else 3
            keep = torch.rand(gates, B, self.u) >= rate
            opts["recurrent_dropout_mask"] = keep.to(x.dtype) / (1.0 - rate)
        args = (x, self.kernel, self.recurrent_kernel, self.bias, h0)
        if self.cell == "lstm":
            args = (*args, h0)
        module = fused if self.kernel_name == "fused" else noclift
        fn = module.lstm if self.cell == "lstm" else module.gru
        out = fn(*args, mask=mask, return_sequences=False, **opts)[0]
        return self.head(out)


class TorchRNN(nn.Module):
    """``nn.LSTM`` / ``nn.GRU`` plus the same head."""

    def __init__(self, cell: str, d: int, u: int) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(d, u, batch_first=True)
        self.head = nn.Linear(u, 10)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.head(self.rnn(x)[0][:, -1])


class CellLoop(nn.Module):
    """An ``nn.LSTMCell`` stepped in a Python loop: what a hand-written PyTorch loop costs."""

    def __init__(self, d: int, u: int) -> None:
        super().__init__()
        self.cell, self.u = nn.LSTMCell(d, u), u
        self.head = nn.Linear(u, 10)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = c = x.new_zeros(x.shape[0], self.u)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.head(h)


def _holes(B: int, T: int) -> Tensor:
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(B, T, generator=g) > 0.1
    mask[:, 0] = True
    return mask


def _steps(model: nn.Module, x: Tensor, y: Tensor, mask: Tensor | None):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def train() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x, mask), y)
        loss.backward()
        opt.step()

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(x, mask)

    return train, infer


CLOCK: Callable[[], float] = time.perf_counter


def _time(fn: Callable[[], None], reps: int) -> float:
    start = CLOCK()
    for _ in range(reps):
        fn()
    return (CLOCK() - start) * 1000.0 / reps


def bench_row(variants: dict[str, nn.Module], B, T, d, mask, rounds, budget_s):  # noqa: ANN001, ANN201
    x, y = torch.randn(B, T, d), torch.randint(0, 10, (B,))
    fns = {name: _steps(m, x, y, mask) for name, m in variants.items()}
    reps = {}
    for name, (train, infer) in fns.items():  # warm-up and choose repetitions per round
        train()
        infer()
        reps[name] = max(1, int(budget_s / max(_time(train, 1), 1e-3) * 1000.0))
    times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in fns}
    for _ in range(rounds):
        for name, (train, infer) in fns.items():
            times[name][0].append(_time(train, reps[name]))
            times[name][1].append(_time(infer, reps[name]))
    # Ratios are taken within each round (same machine load) and then the median over rounds.
    base_tr, base_inf = next(iter(times.values()))
    result = {}
    for n, (tr, inf) in times.items():
        r_tr = statistics.median(a / b for a, b in zip(tr, base_tr))
        r_inf = statistics.median(a / b for a, b in zip(inf, base_inf))
        result[n] = (statistics.median(tr), r_tr, statistics.median(inf), r_inf)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 1 minute)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: CPU time of this thread (use with --threads 1 on a "
        "machine shared with other jobs: it does not count time spent preempted)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if torch.get_num_threads() != 1:
            parser.error("--clock cpu measures only this thread: use it with --threads 1")
        global CLOCK
        CLOCK = time.thread_time
    rounds, budget = (3, 0.03) if args.quick else (7, 0.04)
    torch.manual_seed(0)
    sizes = {"seed B64 T28 u64": (64, 28, 28, 64), "long B64 T100 u128": (64, 100, 64, 128)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
          f"oneDNN {torch.backends.mkldnn.is_available()}, median of {rounds} rounds")  # fmt: skip
    header = (
        f"{'size':<20} {'variant':<34} {'train ms':>9} {'ratio':>6} {'infer ms':>9} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for size, (B, T, d, u) in sizes.items():
        holes = _holes(B, T)
        rows = [
            ("lstm", None, {
                "nn.LSTM": TorchRNN("lstm", d, u),
                "fused LSTM": KerasRNN("lstm", d, u, "fused"),
                "nn.LSTMCell loop": CellLoop(d, u),
                "noclift LSTM (default config)": KerasRNN("lstm", d, u, "noclift"),
                "noclift LSTM recurrent_dropout=.2": KerasRNN(
                    "lstm", d, u, "noclift", recurrent_dropout=0.2
                ),
                "noclift LSTM activation=relu": KerasRNN(
                    "lstm", d, u, "noclift", activation="relu"
                ),
            }),
            ("lstm", holes, {
                "nn.LSTM (no mask)": TorchRNN("lstm", d, u),
                "noclift LSTM mask with holes": KerasRNN("lstm", d, u, "noclift"),
            }),
            ("gru", None, {
                "nn.GRU": TorchRNN("gru", d, u),
                "fused GRU": KerasRNN("gru", d, u, "fused"),
                "noclift GRU reset_after=False": KerasRNN(
                    "gru", d, u, "noclift", reset_after=False
                ),
            }),
        ]  # fmt: skip
        for _cell, mask, variants in rows:
            result = bench_row(variants, B, T, d, mask, rounds, budget)
            for name, (tr, r_tr, inf, r_inf) in result.items():
                print(f"{size:<20} {name:<34} {tr:>9.2f} {r_tr:>6.2f} {inf:>9.2f} {r_inf:>6.2f}")
            print()


if __name__ == "__main__":
    main()
