"""Data-parallel training on ``torch.distributed`` (``rnnkit.distributed``).

Start one process per device (``torchrun``), call :func:`initialize` in each, then build,
compile and ``fit`` exactly as in one process. While the default process group has more than
one process, ``fit`` and ``evaluate`` run data-parallel:

- every rank iterates the same global batches (``batch_size`` is the global batch size; with
  ``shuffle=True`` every rank uses rank 0's order) and computes on its contiguous slice of
  each: of ``n`` samples, rank ``r`` of ``W`` takes ``n // W`` samples, plus one when
  ``r < n % W``. A DataLoader's batches count as global batches too (do not add a
  ``DistributedSampler``);
- after ``backward`` the gradients are all-reduced, each rank's weighted by its share
  ``n_r / n`` of the batch, so one step equals a single-process step on the whole batch, even
  when the batch does not split evenly or leaves a rank no samples;
- at the start of ``fit`` rank 0's weights are copied to every rank (as
  ``DistributedDataParallel`` does);
- metrics are reduced across ranks (metrics built on :class:`~rnnkit.metrics.Mean`, which
  includes the loss and every built-in metric, exactly; other metric objects as the mean of
  the ranks' results weighted by their samples), so every rank logs the same values and
  callbacks take the same decisions on every rank;
- only rank 0 prints progress and writes files (``ModelCheckpoint``, ``CSVLogger``,
  ``BackupAndRestore``); guard your own ``model.save`` with :func:`is_chief`.

The gradients are synchronised by the built-in ``train_step``; an overridden ``train_step``
runs per rank without synchronisation. ``predict``, ``train_on_batch``, ``test_on_batch`` and
``predict_on_batch`` are not data-parallel: each rank runs them on its own.

    # torchrun --nproc_per_node=2 train.py
    import rnnkit
    rnnkit.distributed.initialize()  # nccl on GPUs, gloo on CPUs; alone: nothing
    model.fit(x, y, batch_size=64)  # 32 samples per rank
    if rnnkit.distributed.is_chief():
        model.save("model.keras")
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from rnnkit import tree

__all__ = ["initialize", "is_active", "is_chief", "rank", "world_size"]


def initialize(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Join the process group that ``torchrun`` describes in the environment.

    Reads ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` and ``LOCAL_RANK``.
    With CUDA each process uses the GPU ``LOCAL_RANK`` (move the model there with
    ``model.to("cuda")`` after this call). Without those variables (a plain ``python
    train.py``) it does nothing, so one script serves both; it also does nothing if the group
    already exists. Returns whether a process group exists afterwards.

    Args:
        backend: ``"nccl"`` (the default when CUDA is available) or ``"gloo"`` (otherwise).
        timeout_s: how long collective operations wait for the other processes.
    """
    if dist.is_initialized():
        return True
    needed = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    missing = [v for v in needed if v not in os.environ]
    if len(missing) == len(needed):
        return False
    if missing:
        raise RuntimeError(
            f"rnnkit.distributed.initialize: the environment variables {missing} are not set; "
            "start the processes with torchrun (or set RANK, WORLD_SIZE, MASTER_ADDR and "
            "MASTER_PORT yourself)"
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def is_active() -> bool:
    """True while a process group of more than one process exists (fit is data-parallel)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_chief() -> bool:
    """True on rank 0, the process that prints and writes files (and without a group)."""
    return rank() == 0


def any_rank(flag: bool) -> bool:
    """True if ``flag`` is True on any rank (every rank must call this; no-op alone)."""
    if not is_active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _device() -> torch.device:
    """Where collective tensors live: the current GPU for nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextlib.contextmanager
def data_parallel(model: Any) -> Iterator[DataParallel | None]:
    """Data parallelism for one ``fit``/``evaluate`` call of ``model`` while a process group
    exists: a :class:`DataParallel` attached with the model's documented
    ``attach_data_parallel`` (None in one process), and the one before it restored after."""
    parallel = model.data_parallel
    if parallel is None and is_active():
        parallel = DataParallel()
    previous = model.attach_data_parallel(parallel)
    try:
        yield parallel
    finally:
        model.attach_data_parallel(previous)


class DataParallel:
    """The data-parallel plumbing of one ``fit``/``evaluate`` call (see the module docstring).

    :meth:`shard` remembers the shares of the last batch, which :meth:`reduce_gradients`
    uses as weights.
    """

    def __init__(self) -> None:
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = _device()
        self.local_count = 0
        self.global_count = 0

    def broadcast_weights(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                buf = t.detach().to(self.device)
                dist.broadcast(buf, src=0)
                t.copy_(buf)

    def share_order(self, order: torch.Tensor) -> torch.Tensor:
        """Rank 0's shuffled order, on every rank."""
        buf = order.to(self.device)
        dist.broadcast(buf, src=0)
        return buf.cpu()

    def shard(self, batch: tuple[Any, Any, Any], num_samples: int) -> tuple[Any, Any, Any] | None:
        """This rank's contiguous slice of a global batch of ``num_samples`` samples, or
        None when the slice is empty."""
        base, extra = divmod(num_samples, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        stop = start + base + (1 if self.rank < extra else 0)
        self.local_count, self.global_count = stop - start, num_samples
        if stop == start:
            return None
        return tree.map_structure(lambda a: None if a is None else a[start:stop], batch)

    def reduce_gradients(self, parameters: list[torch.nn.Parameter], finite: bool) -> bool:
        """Replace each gradient by the batch-weighted sum over ranks; True if the loss was
        finite on every rank. A gradient that is None on every rank stays None."""
        weight = self.local_count / self.global_count if self.global_count else 0.0
        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in parameters:
            by_dtype.setdefault(p.dtype, []).append(p)
        flags = torch.tensor(
            [0.0 if finite else 1.0] + [float(p.grad is not None) for p in parameters],
            device=self.device,
        )
        dist.all_reduce(flags)
        has_grad = {id(p): bool(f > 0) for p, f in zip(parameters, flags[1:].tolist())}
        for group in by_dtype.values():
            flat = torch.cat(
                [
                    (p.grad * weight if p.grad is not None else torch.zeros_like(p))
                    .reshape(-1)
                    .to(self.device)
                    for p in group
                ]
            )
            dist.all_reduce(flat)
            offset = 0
            for p in group:
                n = p.numel()
                p.grad = (
                    flat[offset : offset + n].view_as(p).to(p.device) if has_grad[id(p)] else None
                )
                offset += n
        return bool(flags[0].item() == 0)

    def reduce_metrics(self, metrics: list[Any], samples: float) -> dict[str, float]:
        """``{name: value}`` of the metrics over every rank's data; ``samples`` is the number
        of samples this rank has counted, the weight of metrics that are not Mean-based."""
        # Lazy: the training modules import this one (is_chief, data_parallel).
        from rnnkit.training.metrics import Mean

        values: list[float] = []
        for m in metrics:
            if isinstance(m, Mean):  # a Mean's state is its weighted total and count
                values += [float(m._total), float(m._count)]
            else:
                values += [float(m.result()) * samples, samples]
        buf = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(buf)
        reduced = buf.tolist()
        out = {}
        for i, m in enumerate(metrics):
            total, count = reduced[2 * i], reduced[2 * i + 1]
            if isinstance(m, Mean):
                merged = copy.copy(m)
                merged._total, merged._count = total, count
                out[m.name] = float(merged.result())
            else:
                out[m.name] = total / count if count else 0.0
        return out
