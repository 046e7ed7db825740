"""Where a ``train_on_batch`` of the guide's model spends its time, measured inside the step.

Timing a piece of the training step on its own understates it: the step's LSTM and its
backward push the Python code and data of the framework out of the caches, so the same
function costs two to five times more inside the step than in a loop by itself (the
optimizer's step wrapper: about 6 us alone, 40-100 us in the step). This script wraps the
named functions with a timer, runs ``train_on_batch`` (the guide's MNIST model with
``LSTM(64)``, as ``bench_fit.py``) ``--steps`` times, and prints the median time of each piece
per call, inclusive of what it calls (the timers add about 1 us each). Then the same for the
hand-written PyTorch step of ``bench_fit.py``, cut into its statements.

Wall clock, torch's default threads. A diagnostic: the ratios to report come from
``bench_fit.py``.

``--headroom`` instead times, interleaved as ``bench_fit.py`` does (median of the per-round
ratios to the hand-written step), ``train_on_batch`` against a sketch of the same step with
as little Python as it can have: the same rnnkit model call, ``F.cross_entropy``, the guard's
flag, the rule's update that skips on it, the loss and accuracy totals and one read-back, but
none of the trainer's objects (metrics, step guard, logs). Its ratio bounds what slimming the
trainer's Python could still gain.

    python benchmarks/step_parts.py [--steps 1500] [--headroom --rounds 30]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_fit as bf  # noqa: E402

import rnnkit as keras  # noqa: E402

# (module, attribute path, label): the pieces timed, in the order the step runs them
PIECES = [
    ("rnnkit.training.trainer", "Trainer.train_on_batch", "train_on_batch"),
    ("rnnkit.training.nan_policy", "_is_finite", "  input nan check (x, y)"),
    ("rnnkit.training.step_plan", "StepPlan._step", "  the step (its plan)"),
    ("rnnkit.models.model", "Model.__call__", "    model call"),
    ("rnnkit.kernels.fused", "_call_vf", "      torch LSTM op"),
    ("rnnkit.layers.normalization", "BatchNormalization.call", "      BatchNormalization"),
    ("rnnkit.layers.core", "Dense.call", "      Dense"),
    ("rnnkit.training.trainer", "Trainer.compute_loss", "    compute_loss"),
    ("torch", "Tensor.backward", "    backward"),
    ("rnnkit.training.step_guard", "StepGuard.check", "    guard flag"),
    ("rnnkit.training.step_plan", "StepPlan._update", "    update"),
    ("rnnkit.training.optimizers.keras_named", "Optimizer.step", "      optimizer step"),
    ("rnnkit.training.compiled", "CompiledMetrics.update_state", "      metrics"),
    ("rnnkit.training.trainer", "Trainer._read_back", "  read-back"),
]


_RESTORE: list[tuple[Any, str, Any]] = []


def _wrap(times: dict[str, list[float]], module: str, path: str, label: str) -> None:
    owner: Any = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    record = times.setdefault(label, [])

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            record.append(time.perf_counter() - start)

    setattr(owner, name, timed)
    _RESTORE.append((owner, name, original))


def _table(title: str, times: dict[str, list[float]], steps: int) -> None:
    print(f"\n{title}")
    print(f"{'piece':34s} {'median us':>10s} {'calls/step':>11s}")
    for label, values in times.items():
        kept = values[len(values) // 7 :] or [0.0]  # the first seventh is warm-up
        print(f"{label:34s} {statistics.median(kept) * 1e6:10.1f} {len(values) / steps:11.1f}")


def _headroom(x: torch.Tensor, y: torch.Tensor, rounds: int) -> None:
    model = bf.guide_model(keras.layers.LSTM(bf.U))
    lean_model = bf.guide_model(keras.layers.LSTM(bf.U))
    for m in (model, lean_model):
        m.train_on_batch(x, y)  # builds the model, the optimizer and the metrics
    params = lean_model._parameters_list()
    rule = lean_model.optimizer.torch_optimizer
    rule_step = type(rule).step.__wrapped__  # torch.optim's wrapper is skipped as rnnkit does
    totals = [torch.zeros(()), torch.zeros(())]

    def sketch() -> tuple[float, float]:
        if not np.isfinite(x.numpy()).all():
            raise ValueError("x holds NaN or infinite values")
        for p in params:
            p.grad = None
        logits = lean_model(x, training=True)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        value = loss.detach()
        bad = torch.nan_to_num(value * 0, nan=1.0)
        rule_step(rule, skip_if=bad)
        loss_total = torch.add(totals[0], value, alpha=len(y))
        correct = totals[1] + (logits.detach().argmax(-1) == y).sum()
        values = torch.stack([loss_total, correct, bad, value]).tolist()
        return values[0] / len(y), values[1] / len(y)

    rows = {
        "hand-written PyTorch step": bf.plain_step(bf.PlainGuide("lstm"), x, y),
        "train_on_batch": lambda: model.train_on_batch(x, y),
        "the same work, least Python": sketch,
    }
    for fn in rows.values():
        for _ in range(10):
            fn()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(rounds):
        items = list(rows.items())
        for name, fn in items if r % 2 == 0 else items[::-1]:
            start = time.perf_counter()
            for _ in range(20):
                fn()
            times[name].append(time.perf_counter() - start)
    base = times["hand-written PyTorch step"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, wall clock, {rounds} "
          "interleaved rounds of 20 calls; ratio: median over rounds of the time / the "
          "hand-written step's in the same round")  # fmt: skip
    print(f"{'what':32s} {'ms per call':>12s} {'ratio':>7s}")
    for name, values in times.items():
        ratio = statistics.median(a / b for a, b in zip(values, base))
        print(f"{name:32s} {statistics.median(values) / 20 * 1e3:12.3f} {ratio:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--headroom", action="store_true")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    x, y = torch.randn(bf.B, bf.T, bf.D), torch.randint(0, bf.CLASSES, (bf.B,))
    if args.headroom:
        _headroom(x, y, args.rounds)
        return

    times: dict[str, list[float]] = {}
    model = bf.guide_model(keras.layers.LSTM(bf.U))
    for piece in PIECES:
        _wrap(times, *piece)
    for _ in range(args.steps):
        model.train_on_batch(x, y)

    for owner, name, original in reversed(_RESTORE):
        setattr(owner, name, original)

    net = bf.PlainGuide("lstm")
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    plain: dict[str, list[float]] = {}
    clock = time.perf_counter
    for _ in range(args.steps):
        t0 = t = clock()
        parts = []
        opt.zero_grad(set_to_none=True)
        parts.append(("  zero_grad", clock()))
        logits = net(x)
        parts.append(("  model call", clock()))
        loss = F.cross_entropy(logits, y)
        parts.append(("  loss", clock()))
        loss.backward()
        parts.append(("  backward", clock()))
        opt.step()
        parts.append(("  optimizer step", clock()))
        loss.item()
        parts.append(("  read-back", clock()))
        plain.setdefault("step", []).append(clock() - t0)
        for label, end in parts:
            plain.setdefault(label, []).append(end - t)
            t = end
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, wall clock, medians")
    _table("rnnkit train_on_batch (pieces inclusive)", times, args.steps)
    _table("hand-written PyTorch step", plain, args.steps)


if __name__ == "__main__":
    main()
