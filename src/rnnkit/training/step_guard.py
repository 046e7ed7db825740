"""Keep non-finite training steps away from the weights without reading anything back.

``compile(nan_policy="raise" | "warn")`` promises that a step whose loss is NaN or infinite
does not change the weights. Asking ``bool(torch.isfinite(loss))`` every step would copy the
loss to the host every step (on a GPU, a synchronisation that stalls the queue of kernels).
The guard decides on the device instead. For each training step:

1. ``good = isfinite(loss) & good`` (a 0-d bool tensor; ``good`` stays False after a bad step
   until the host has seen it, so every later step is skipped too);
2. the tensors the update writes in place (weights, optimizer slots) are copied into spare
   buffers (one ``torch._foreach_copy_``), the update runs, and each tensor is put back to
   ``torch.where(good, new, old)``; metric states (replaced, not written in place) are kept
   the same way, so the running loss and metrics leave the bad step out. A plain SGD update
   (no momentum, weight decay, EMA or weight constraint) needs no copy: torch's fused SGD
   kernel takes the flag and skips itself (``KerasRule.can_skip_on_device``).

The spare buffers cost memory the size of the weights plus the optimizer's slots (they are
allocated once and reused); ``nan_policy="ignore"`` runs without the guard.

The host learns about it at the next read-back (:meth:`StepGuard.read_back`: the logs of
``train_on_batch``, a progress-bar refresh, a callback reading the logs, the end of an epoch),
which reads the flags with the logs in one transfer, names the first bad step and applies the
policy (:func:`rnnkit.training.nan_policy.report_bad_step`). Steps counted by the optimizer while
skipped are taken back (``iterations``).

What the guard cannot keep on the device, it checks at once (one read-back, as before): a
``torch.optim`` optimizer's first step (its slots do not exist yet), custom metrics that are
not :class:`~rnnkit.training.metrics.Mean` based, data parallelism and float16 loss scaling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class _Pending:
    good: torch.Tensor  # after this step: no bad step since the last read-back
    loss: torch.Tensor
    label: str
    applied: bool  # the update ran (and was kept or undone on the device)


@dataclass(frozen=True)
class BadStep:
    """The first step with a non-finite loss since the last read-back."""

    label: str  # how the step is named in errors: "fit (epoch 1/3, batch 4/4)"
    loss: float
    skipped: int  # updates undone from it on (it included): the optimizer takes them back


class StepGuard:
    """The device-side half of the nan policy (see the module docstring)."""

    def __init__(self) -> None:
        self._good: torch.Tensor | None = None
        self._pending: list[_Pending] = []
        self._buffers: list[torch.Tensor] = []

    def reset(self) -> None:
        """Forget pending steps (a new ``compile``, or after the policy was applied)."""
        self._good = None
        self._pending = []

    def check(self, loss: torch.Tensor, label: str, applied: bool = True) -> torch.Tensor:
        """The device flag of this step: its loss is finite and no earlier unread step was bad.
        ``applied=False``: the caller reads the flag back before updating (no update to undo)."""
        loss = loss.detach()
        # ``loss * 0 == 0`` is False exactly for NaN and +-inf: two ops where isfinite is five
        good = (loss * 0 == 0).all()
        if self._good is not None:
            good = good & self._good
        self._good = good
        self._pending.append(_Pending(good, loss, label, applied))
        return good

    @staticmethod
    def metric_states(metrics: Sequence[Any]) -> dict[int, list[Any]] | None:
        """The metrics' states before a step (by ``id``), or None when one does not tell its
        state (a custom metric): then the step's flag is read back before the update."""
        states = {}
        for m in metrics:
            state = m.state_tensors()
            if state is None:
                return None
            states[id(m)] = state
        return states

    @torch.no_grad()
    def update(
        self,
        good: torch.Tensor,
        tensors: Sequence[torch.Tensor],
        states: dict[int, list[Any]],
        metrics: Sequence[Any],
        run: Callable[[], None],
    ) -> None:
        """Run ``run`` (the optimizer step and metric updates), then keep its writes to
        ``tensors`` and the ``metrics``' states (as they were in ``states``) only where
        ``good``."""
        tensors = list(tensors)
        backup = self._backup_for(tensors)
        if tensors:
            torch._foreach_copy_(backup, tensors)
        run()
        for t, old in zip(tensors, backup):
            torch.where(good, t, old, out=t)
        for m in metrics:
            new_state = m.state_tensors()
            m.set_state_tensors(
                [torch.where(good, new, old) for new, old in zip(new_state, states[id(m)])]
            )

    def _backup_for(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Spare buffers shaped like ``tensors``, kept from step to step."""
        same = len(self._buffers) == len(tensors) and all(
            b.shape == t.shape and b.dtype == t.dtype and b.device == t.device
            for b, t in zip(self._buffers, tensors)
        )
        if not same:
            self._buffers = [torch.empty_like(t) for t in tensors]
        return self._buffers

    def read_back(self, values: Sequence[torch.Tensor]) -> tuple[list[float], BadStep | None]:
        """Copy ``values`` (0-d tensors) and the pending flags to the host in one transfer.

        Returns the values as floats and the first bad step since the last read-back (None
        when all were good); the pending steps are cleared either way.
        """
        pending, self._pending, self._good = self._pending, [], None
        parts = [v.detach().reshape(1).to(torch.float64) for v in values]
        if pending:
            parts.append(torch.stack([p.good for p in pending]).to(torch.float64))
            parts.append(torch.stack([p.loss.reshape(()) for p in pending]).to(torch.float64))
        if not parts:
            return [], None
        device = parts[0].device
        flat = torch.cat([p.to(device) for p in parts]).tolist()
        n, k = len(values), len(pending)
        floats, goods, losses = flat[:n], flat[n : n + k], flat[n + k :]
        for index, flag in enumerate(goods):
            if not flag:
                undone = sum(p.applied for p in pending[index:])
                return floats, BadStep(pending[index].label, losses[index], undone)
        return floats, None
