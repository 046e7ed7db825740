"""Benchmark the generic time loop against plain PyTorch's ``nn.LSTMCell`` loop.

The acceptance criterion of issue 8: ``RNN(LSTMCell)`` with the default generic loop must be
no slower than plain PyTorch's own ``nn.LSTMCell`` Python loop, for a whole training step of
the guide's MNIST model (batch 64, 28 steps x 28 features, LSTM(64), then Dense(10), SGD,
cross-entropy).

Variants, all measured in one process, interleaved round by round; the table gives the median
over rounds and the ratio to the ``nn.LSTMCell`` loop (``nn.GRUCell`` loop for the GRU rows)
measured in the same rounds:

* ``torch LSTMCell loop``: ``nn.LSTMCell`` stepped in a Python loop, ``nn.Linear`` head;
* ``torch nn.LSTM``: the fused oneDNN kernel (for reference);
* ``rnnkit RNN(LSTMCell)``: the generic loop (``layer.last_kernel == "generic"``);
* ``rnnkit LSTM``: the default ``use_cudnn="auto"`` (the fused kernel when it qualifies);
* ``rnnkit LSTM(use_cudnn=False)``: the layer forced onto the generic loop;
* ``torch GRUCell loop`` and ``rnnkit RNN(GRUCell)``: the same pair for GRU.

With ``--dispatch`` it measures instead the configurations the fused kernel cannot run
(``recurrent_dropout=0.2`` in training, a mask with holes, ``activation="relu"``, GRU
``reset_after=False``) through the layers: ``use_cudnn="auto"`` (the dispatch's choice, the
manual-backward kernel) and ``use_cudnn=False`` (the generic loop), as ratios to plain ``nn.LSTM`` /
``nn.GRU`` (the issue's bar: <= 2.0x at this size). The kernel column is the training step's.

With ``--compiled`` it measures the opt-in compiled loop (``RNN(cell, compile_loop=True)``,
:mod:`rnnkit.kernels.compiled_loop`) against the generic loop and the ``nn.LSTMCell`` loop, for
``RNN(LSTMCell)``, the guide's ``MinimalRNNCell`` and a user-written LSTM cell (torch ops),
and prints the compile cost: the seconds of the first training step and of the first
inference call (each compiles its graphs), wall clock and CPU time (this process and its
compiler subprocesses). ``--chunk K`` sets the steps unrolled per compiled graph (1: the
per-step function compiled; 28: the whole loop), ``--fresh-cache`` compiles with an empty
inductor cache (a first run on a machine) instead of the on-disk cache of earlier runs.

``--threads 1 --clock cpu`` times the CPU time of the one torch thread, for a shared machine
(see ``RESULTS.md``).

Run ``python benchmarks/bench_generic_loop.py [--rounds 15] [--steps 10] [--dispatch |
--compiled [--chunk 8] [--fresh-cache]] [--threads 1 --clock cpu]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

import bench_rnn  # --threads/--clock, shared by the benchmarks (this folder)
import torch
from torch import nn

from rnnkit.kernels import compiled_loop
from rnnkit.layers import GRU, LSTM, RNN, Dense, GRUCell, Layer, LSTMCell

Tensor = torch.Tensor
B, T, D, U, CLASSES = 64, 28, 28, 64, 10


class TorchCellLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(D, U)
        self.head = nn.Linear(U, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[0], U)
        c = x.new_zeros(x.shape[0], U)
        for x_t in x.unbind(1):
            h, c = self.cell(x_t, (h, c))
        return self.head(h)


class TorchGRUCellLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(D, U)
        self.head = nn.Linear(U, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[0], U)
        for x_t in x.unbind(1):
            h = self.cell(x_t, h)
        return self.head(h)


class TorchLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(D, U, batch_first=True)
        self.head = nn.Linear(U, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[0])


class TorchGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(D, U, batch_first=True)
        self.head = nn.Linear(U, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        _, h = self.gru(x)
        return self.head(h[0])


class RnnkitModel(nn.Module):
    def __init__(self, rnn: nn.Module, mask: Tensor | None = None) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = Dense(CLASSES)
        self.mask = mask

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x, mask=self.mask))


def holes_mask() -> Tensor:
    """About 10% of the steps masked at random (first step kept): a mask with holes."""
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(B, T, generator=g) > 0.1
    mask[:, 0] = True
    return mask


def make_dispatch_variants() -> dict[str, nn.Module]:
    """The configurations the fused kernel cannot run, on the layer's chosen kernel ("auto")
    and on the generic loop, next to plain nn.LSTM / nn.GRU."""
    variants: dict[str, nn.Module] = {"torch nn.LSTM": TorchLSTM(), "torch nn.GRU": TorchGRU()}
    configs = {
        "LSTM(recurrent_dropout=0.2)": (LSTM, {"recurrent_dropout": 0.2}, None),
        "LSTM, mask with holes": (LSTM, {}, holes_mask()),
        'LSTM(activation="relu")': (LSTM, {"activation": "relu"}, None),
        "GRU(reset_after=False)": (GRU, {"reset_after": False}, None),
    }
    for label, (cls, kwargs, mask) in configs.items():
        variants[f"{label} auto"] = RnnkitModel(cls(U, **kwargs), mask)
        variants[f"{label} generic"] = RnnkitModel(cls(U, use_cudnn=False, **kwargs), mask)
    return variants


class MinimalRNNCell(Layer):
    """The guide's MinimalRNNCell, written with torch ops."""

    def __init__(self, units: int, **kwargs: object) -> None:
        self.units = units
        self.state_size = units
        super().__init__(**kwargs)

    def build(self, input_shape: tuple) -> None:
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel"
        )

    def call(self, inputs: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]


class UserLSTMCell(Layer):
    """An LSTM cell as a user would write it: one matmul per step, gates by chunk."""

    def __init__(self, units: int, **kwargs: object) -> None:
        self.units = units
        self.state_size = [units, units]
        super().__init__(**kwargs)

    def build(self, input_shape: tuple) -> None:
        u = self.units
        self.kernel = self.add_weight(shape=(input_shape[-1], 4 * u), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(u, 4 * u), name="recurrent_kernel")
        self.bias = self.add_weight(shape=(4 * u,), initializer="zeros", name="bias")

    def call(self, inputs: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        h, c = states
        z = torch.addmm(self.bias, inputs, self.kernel) + h @ self.recurrent_kernel
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, [h, c]


def make_compiled_variants() -> dict[str, nn.Module]:
    """Generic loop vs compiled loop for a built-in cell and two user cells."""
    return {
        "torch LSTMCell loop": TorchCellLoop(),
        "rnnkit RNN(LSTMCell)": RnnkitModel(RNN(LSTMCell(U))),
        "rnnkit RNN(LSTMCell) compiled": RnnkitModel(RNN(LSTMCell(U), compile_loop=True)),
        "RNN(UserLSTMCell)": RnnkitModel(RNN(UserLSTMCell(U))),
        "RNN(UserLSTMCell) compiled": RnnkitModel(RNN(UserLSTMCell(U), compile_loop=True)),
        "RNN(MinimalRNNCell)": RnnkitModel(RNN(MinimalRNNCell(U))),
        "RNN(MinimalRNNCell) compiled": RnnkitModel(RNN(MinimalRNNCell(U), compile_loop=True)),
    }


def make_variants() -> dict[str, nn.Module]:
    variants: dict[str, nn.Module] = {
        "torch LSTMCell loop": TorchCellLoop(),
        "torch nn.LSTM": TorchLSTM(),
        "rnnkit RNN(LSTMCell)": RnnkitModel(RNN(LSTMCell(U))),
        "rnnkit LSTM": RnnkitModel(LSTM(U)),
        "rnnkit LSTM(use_cudnn=False)": RnnkitModel(LSTM(U, use_cudnn=False)),
        "torch GRUCell loop": TorchGRUCellLoop(),
        "rnnkit RNN(GRUCell)": RnnkitModel(RNN(GRUCell(U))),
    }
    return variants


def training_step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


CLOCK: Callable[[], float] = time.perf_counter


def time_it(fn: Callable[[], None], steps: int) -> float:
    start = CLOCK()
    for _ in range(steps):
        fn()
    return (CLOCK() - start) * 1000.0 / steps


def cpu_seconds() -> float:
    """CPU time of this process and of its finished subprocesses (inductor's C++ compiles)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def first_call_cost(fn: Callable[[], None]) -> tuple[float, float]:
    """Wall and CPU seconds of one call (a compiled variant's first call compiles)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument(
        "--dispatch",
        action="store_true",
        help="instead: the manual-backward configurations, auto vs generic loop vs nn.LSTM / nn.GRU",
    )
    parser.add_argument(
        "--compiled", action="store_true", help="instead: the compiled loop vs the generic loop"
    )
    parser.add_argument("--chunk", type=int, default=None, help="steps per compiled graph")
    parser.add_argument("--fresh-cache", action="store_true", help="empty inductor cache")
    bench_rnn.add_clock_arguments(parser)
    args = parser.parse_args()
    global CLOCK
    CLOCK = bench_rnn.clock_from_arguments(parser, args)
    if args.chunk:
        compiled_loop.MAX_CHUNK = args.chunk
    if args.fresh_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")

    torch.manual_seed(0)
    x = torch.randn(B, T, D)
    y = torch.randint(0, CLASSES, (B,))
    if args.compiled:
        variants = make_compiled_variants()
    else:
        variants = make_dispatch_variants() if args.dispatch else make_variants()
    train_fns: dict[str, Callable[[], None]] = {}
    infer_fns: dict[str, Callable[[], None]] = {}
    compile_cost: dict[str, tuple[float, float, float, float]] = {}
    for name, model in variants.items():

        def infer(m: nn.Module = model) -> None:
            m.eval()
            with torch.no_grad():
                m(x)
            m.train()

        infer_fns[name] = infer
        # The first inference call builds the lazy layers (and compiles the no-grad graphs).
        infer_cost = first_call_cost(infer)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        train_fns[name] = lambda m=model, o=opt: training_step(m, o, x, y)
        compile_cost[name] = (*first_call_cost(train_fns[name]), *infer_cost)
        for _ in range(3):  # warm-up
            train_fns[name]()
            infer_fns[name]()

    train: dict[str, list[float]] = {n: [] for n in variants}
    infer_t: dict[str, list[float]] = {n: [] for n in variants}
    kernels: dict[str, str] = {}
    for _ in range(args.rounds):
        for name, model in variants.items():
            train[name].append(time_it(train_fns[name], args.steps))
            if hasattr(model, "rnn"):  # the kernel of the training step
                kernels[name] = model.rnn.last_kernel
            infer_t[name].append(time_it(infer_fns[name], args.steps))

    def reference(name: str) -> str:
        if args.compiled:
            return "torch LSTMCell loop"
        if args.dispatch:
            return "torch nn.GRU" if "GRU" in name else "torch nn.LSTM"
        return "torch GRUCell loop" if "GRU" in name else "torch LSTMCell loop"

    print(
        f"B={B} T={T} d={D} u={U}, Dense({CLASSES}), SGD; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.clock} clock; median of {args.rounds} rounds "
        f"x {args.steps} steps" + (f"; chunk {compiled_loop.MAX_CHUNK}" if args.compiled else "")
    )
    header = f"{'variant':36s} {'kernel':8s} {'train ms':>9s} {'ratio':>6s} {'infer ms':>9s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    for name in variants:
        tr, inf = statistics.median(train[name]), statistics.median(infer_t[name])
        ref_train = statistics.median(train[reference(name)])
        ref_infer = statistics.median(infer_t[reference(name)])
        print(
            f"{name:36s} {kernels.get(name, '-'):8s} {tr:9.2f} {tr / ref_train:6.2f} "
            f"{inf:9.2f} {inf / ref_infer:6.2f}"
        )
    if args.compiled:
        print("\nfirst calls (s)                      train wall  train cpu  infer wall  infer cpu")
        for name, (tw, tc, iw, ic) in compile_cost.items():
            if "compiled" in name:
                print(f"{name:36s} {tw:10.1f} {tc:10.1f} {iw:11.1f} {ic:10.1f}")


if __name__ == "__main__":
    main()
