"""Keep non-finite training steps away from the weights without reading anything back.

``compile(nan_policy="raise" | "warn")`` promises that a step whose loss is NaN or infinite
does not change the weights. Asking ``bool(torch.isfinite(loss))`` every step would copy the
loss to the host every step (on a GPU, a synchronisation that stalls the queue of kernels).
The guard decides on the device instead. For each training step:

1. ``bad = max(~isfinite(loss), bad)`` (a 0-d float tensor holding 0 or 1; ``bad`` stays 1
   after a bad step until the host has seen it, so every later step is skipped too);
2. the tensors the update writes in place (weights, optimizer slots) are copied into spare
   buffers (one ``torch._foreach_copy_``), the update runs, and each tensor is put back to
   ``torch.where(bad != 0, old, new)``. A plain SGD update (no momentum, weight decay, EMA or
   weight constraint) needs no copy: torch's fused SGD kernel takes the flag and skips itself
   (``KerasRule.can_skip_on_device``).
3. The metrics are updated as usual. Their states are replaced at each update, not written in
   place, so the guard keeps the states each step started from (references, no copy); when
   the host finds a bad step, the metrics go back to the states before it and the logs are
   read again from them, so the running loss and metrics leave the bad step (and the steps
   after it) out. Until that read-back a metric's state includes them.

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
    bad: torch.Tensor  # after this step: 1.0 if a bad step since the last read-back, else 0
    loss: torch.Tensor
    label: str
    applied: bool  # the update ran (and was kept or undone on the device)
    step: int  # the guard's count of checked steps, this one included
    metric_states: dict[int, list[Any]]  # the metrics' states before this step, by ``id``


@dataclass(frozen=True)
class BadStep:
    """The first step with a non-finite loss since the last read-back."""

    label: str  # how the step is named in errors: "fit (epoch 1/3, batch 4/4)"
    loss: float
    skipped: int  # updates undone from it on (it included): the optimizer takes them back
    step: int  # the guard's count of checked steps when it ran (:attr:`StepGuard.steps`)
    metric_states: dict[int, list[Any]]  # the metrics' states before it, by ``id``


class StepGuard:
    """The device-side half of the nan policy (see the module docstring)."""

    def __init__(self) -> None:
        self._bad: torch.Tensor | None = None
        self._pending: list[_Pending] = []
        self._buffers: list[torch.Tensor] = []
        self.steps = 0  # steps checked so far

    def reset(self) -> None:
        """Forget pending steps (a new ``compile``, or after the policy was applied)."""
        self._bad = None
        self._pending = []

    def check(
        self,
        loss: torch.Tensor,
        label: str,
        metric_states: dict[int, list[Any]],
        applied: bool = True,
    ) -> torch.Tensor:
        """The device flag of this step, a 0-d float (1: skip it, 0: keep it): its loss is not
        finite or an earlier unread step was bad. A float because torch's fused SGD kernel
        takes its skip flag as one. ``metric_states``: the metrics' states before the step
        (:meth:`metric_states`). ``applied=False``: the caller reads the flag back before
        updating (no update to undo)."""
        if loss.requires_grad:  # kept until the read-back: without the step's graph (so
            loss = loss.detach()  # the ops below record none either)
        # ``loss * 0`` is NaN exactly for NaN and +-inf (else +-0): the flag in two ops
        bad = torch.nan_to_num(loss * 0, nan=1.0)
        if bad.ndim:
            bad = bad.amax()
        if self._bad is not None:
            bad = torch.maximum(bad, self._bad)
        self._bad = bad
        self.steps += 1
        self._pending.append(_Pending(bad, loss, label, applied, self.steps, metric_states))
        return bad

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

    @staticmethod
    def restore_metrics(metrics: Sequence[Any], states: dict[int, list[Any]]) -> None:
        """Put the ``metrics`` back to ``states`` (from :meth:`metric_states`)."""
        for m in metrics:
            if id(m) in states:
                m.set_state_tensors(states[id(m)])

    @torch.no_grad()
    def update(
        self, bad: torch.Tensor, tensors: Sequence[torch.Tensor], run: Callable[[], None]
    ) -> None:
        """Run ``run`` (the optimizer step), then keep its writes to ``tensors`` only where
        not ``bad`` (:meth:`check`'s flag)."""
        tensors = list(tensors)
        backup = self._backup_for(tensors)
        if tensors:
            torch._foreach_copy_(backup, tensors)
        run()
        skip = bad != 0
        for t, old in zip(tensors, backup):
            torch.where(skip, old, t, out=t)

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
        pending, self._pending, self._bad = self._pending, [], None
        parts = list(values)  # loops, not generators: every step
        for p in pending:
            parts.append(p.bad)
        for p in pending:
            parts.append(p.loss)
        if not parts:
            return [], None
        device = parts[0].device
        for i, t in enumerate(parts):
            if t.ndim != 0 or t.device != device:
                parts[i] = t.reshape(()).to(device)
        # one tensor in the dtype all parts promote to (the flags are 0.0 or 1.0)
        flat = torch.stack(parts).tolist()
        n, k = len(values), len(pending)
        floats, flags, losses = flat[:n], flat[n : n + k], flat[n + k :]
        for index, flag in enumerate(flags):
            if flag:
                first = pending[index]
                undone = sum(p.applied for p in pending[index:])
                return floats, BadStep(
                    first.label, losses[index], undone, first.step, first.metric_states
                )
        return floats, None
