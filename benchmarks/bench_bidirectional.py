"""Bidirectional LSTM/GRU: rnnkit's layer against plain PyTorch's one-call bidirectional kernel.

rnnkit's ``Bidirectional(LSTM(...))`` runs both directions in one fused ``torch._VF`` call where
``rnnkit.kernels.dispatch.fuse_bidirectional`` allows it, as ``torch.nn.LSTM(bidirectional=True)``
does. This script prints ms per training step (forward + backward + SGD step through a
``Dense(10)`` head) and per inference call of

* ``nn.LSTM(bidirectional=True)`` (or ``nn.GRU``): one call for both directions;
* two ``nn.LSTM``s, the second on the reversed sequence: one call per direction (what the
  one-call form saves);
* rnnkit ``Bidirectional(LSTM(u))`` with a ``Dense(10)`` head: the whole layer API.

Variants run interleaved round by round; ratios are to the first row, taken within each round
(same machine load), median over rounds. Size: the guide's, batch 64, 28 steps x 28 features,
64 units. Run ``python benchmarks/bench_bidirectional.py --threads 1 --clock cpu`` on a shared
machine (see RESULTS.md for why).
"""

from __future__ import annotations

import argparse
import statistics

import bench_rnn  # the timing helpers shared by the benchmarks (this folder)
import torch
from torch import nn

import rnnkit
from rnnkit import layers

Tensor = torch.Tensor


class TorchBidirectional(nn.Module):
    """Plain PyTorch: both directions in one ``_VF`` call, or one call per direction."""

    def __init__(self, cell: str, d: int, u: int, one_call: bool) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.one_call = one_call
        if one_call:
            self.rnn = rnn(d, u, batch_first=True, bidirectional=True)
        else:
            self.forward_rnn = rnn(d, u, batch_first=True)
            self.backward_rnn = rnn(d, u, batch_first=True)
        self.head = nn.Linear(2 * u, 10)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.one_call:
            _, h = self.rnn(x)
            h = h[0] if isinstance(h, tuple) else h
            return self.head(torch.cat([h[0], h[1]], dim=-1))
        y_f = self.forward_rnn(x)[0][:, -1]
        y_b = self.backward_rnn(x.flip(1))[0][:, -1]
        return self.head(torch.cat([y_f, y_b], dim=-1))


class RnnkitBidirectional(nn.Module):
    """rnnkit's ``Bidirectional`` over ``LSTM``/``GRU`` and a ``Dense(10)`` head."""

    def __init__(self, cell: str, d: int, u: int) -> None:
        super().__init__()
        rnn = layers.LSTM(u) if cell == "lstm" else layers.GRU(u)
        self.model = rnnkit.Sequential(
            [rnnkit.Input((None, d)), layers.Bidirectional(rnn), layers.Dense(10)]
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.model(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    bench_rnn.add_clock_arguments(parser)
    args = parser.parse_args()
    bench_rnn.CLOCK = bench_rnn.clock_from_arguments(parser, args)
    torch.manual_seed(0)
    B, T, d, u = 64, 28, 28, 64
    x, y = torch.randn(B, T, d), torch.randint(0, 10, (B,))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
          f"median of {args.rounds} rounds, B{B} T{T} d{d} u{u}")  # fmt: skip
    header = f"{'variant':<46} {'train ms':>9} {'ratio':>6} {'infer ms':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for cell in ("lstm", "gru"):
        name = "LSTM" if cell == "lstm" else "GRU"
        variants = {
            f"nn.{name}(bidirectional=True), one call": TorchBidirectional(cell, d, u, True),
            f"two nn.{name}, one call per direction": TorchBidirectional(cell, d, u, False),
            f"rnnkit Bidirectional({name}) (one fused call)": RnnkitBidirectional(cell, d, u),
        }
        fns = {n: bench_rnn._steps(m, x, y, None) for n, m in variants.items()}
        for train, infer in fns.values():  # warm-up
            train()
            infer()
        times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in fns}
        for _ in range(args.rounds):
            for n, (train, infer) in fns.items():
                times[n][0].append(bench_rnn._time(train, 5))
                times[n][1].append(bench_rnn._time(infer, 5))
        base_tr, base_inf = next(iter(times.values()))
        for n, (tr, inf) in times.items():
            print(f"{n:<46} {statistics.median(tr):9.2f} "
                  f"{bench_rnn._median_ratio(tr, base_tr):6.2f} {statistics.median(inf):9.2f} "
                  f"{bench_rnn._median_ratio(inf, base_inf):6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
