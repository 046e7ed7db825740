"""``train_on_batch``'s common step with its decisions made once per configuration.

:meth:`Trainer.train_step` decides at every step how it can run: whether the nan policy's
guard stays on the device, whether the optimizer's update skips itself there, whether every
metric tells its state, whether the weights have constraints; ``train_on_batch`` around it
checks and converts its arguments, switches the modules' modes and wraps the logs. For the
common call those answers do not change from one step to the next, and asking them costs
Python calls: 29 of the 172 of a ``train_on_batch`` of the guide's model, about 2% of its
step on a 2-core CPU (``benchmarks/bench_fit.py``; a Python call inside a training step
costs several times what it costs alone, see ``benchmarks/step_parts.py``).

A :class:`StepPlan` asks them once and then runs the same step:

1. the nan policy's check of ``x`` and ``y`` (a bad batch goes to the general path, which
   raises or warns naming the array);
2. ``model.reset_metrics()``; every module in training mode (the Trainer's own switch, each
   module back in its own mode afterwards);
3. the metrics' states kept for the guard, ``y_pred = model(x, training=True)``,
   ``loss = model.compute_loss(x, y, y_pred, None, training=True)``, the gradients set to
   None, ``loss.backward()``;
4. the guard's flag and the optimizer's update that skips itself on it (when the gradients
   allow it at this step; otherwise the general ``_guarded_update``), then the Trainer's
   metrics update;
5. the Trainer's logs, read back at once with the guard's flags (:meth:`Trainer._read_back`).

It applies (:func:`lookup`) to a compiled model whose ``train_step`` is the Trainer's (marked
with :func:`runs`), not
compiled (``jit_compile``), without data parallelism or float16 loss scaling, with the nan
guard on (``nan_policy`` "raise" or "warn"), a built Keras optimizer, built metrics that tell
their state, no weight constraint and trainable weights; called with one input tensor and one
target tensor on the weights' device with the same number of samples, no ``sample_weight``
or ``class_weight``. Kept per model while its key is the same (the compiled objects, the
optimizer, the structure version, the built flags); any other call takes the general path.
``tests/test_step_plan.py`` compares both paths step by step: weights, optimizer state,
logs, metrics, the nan policy's errors and skipped steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from rnnkit.layers.base import structure_version
from rnnkit.training import nan_policy as nan_policy_module
from rnnkit.training import optimizers as optimizers_module

_LABEL = "train_on_batch"  # how the nan policy names the step


class StepPlan:
    """The decisions of one configuration (see the module docstring)."""

    def __init__(self, model: Any) -> None:
        self.metrics = model.metrics
        self.parameters = model._parameters_list()
        # the Trainer's own mode switch, made once and entered at every step (the modules
        # it walks change only with the structure, which is in the plan's key)
        self.training_mode = model._mode(training=True)
        self.device = model._device()

    def run(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> dict[str, float] | None:
        """``model.train_on_batch(x, y, return_dict=True)``; None, with nothing done, for a
        batch with non-finite values (the general path applies the nan policy to it)."""
        if not (nan_policy_module._is_finite(x) and nan_policy_module._is_finite(y)):
            return None
        model.reset_metrics()
        model.__dict__["_batch_label"] = _LABEL  # past Module.__setattr__
        with self.training_mode:
            self._step(model, x, y)
        names, values, divisors = model._log_parts()
        floats = model._read_back(values, as_of=model._guard.steps, divisors=divisors)
        return dict(zip(names, floats))  # read back at once, as train_on_batch's logs are

    def _step(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> None:
        guard = model._guard
        states = {id(m): m.state_tensors() for m in self.metrics}
        y_pred = model(x, training=True)
        loss = model.compute_loss(x, y, y_pred, None, training=True)
        for p in self.parameters:
            p.grad = None
        if loss.requires_grad:  # (not when no weight contributes to the loss)
            loss.backward()
        value = loss.detach()
        update = functools.partial(self._update, model, x, y, y_pred, value)
        if model.optimizer.torch_optimizer.can_skip_on_device():  # this step's gradients
            update(guard.check(value, _LABEL, states))
        else:  # the guard backs the weights up and restores them (one copy each)
            model._guarded_update(guard, value, states, y, update)

    def _update(
        self,
        model: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        y_pred: Any,
        loss: torch.Tensor,
        skip_if: torch.Tensor | None = None,
    ) -> None:
        """The optimizer's update (skipped on the device where ``skip_if`` holds 1), then
        the Trainer's metrics update, as ``Trainer.train_step`` does for this configuration
        (a built optimizer and no constraint to apply: ``Trainer._apply_gradients`` would
        only step)."""
        if skip_if is None:
            model.optimizer.step()
        else:
            model.optimizer.step(skip_if=skip_if)
        model._update_metrics(x, y, y_pred, loss, None)


def runs(train_step: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``train_step`` as the one a plan runs (``Trainer.train_step``): a class that
    overrides it with its own has no mark and takes the general path."""
    train_step._step_plan_runs_it = True  # type: ignore[attr-defined]
    return train_step


def lookup(model: Any, x: Any, y: Any, sample_weight: Any, class_weight: Any) -> StepPlan | None:
    """The plan for ``model.train_on_batch(x, y, sample_weight, class_weight)``, made on the
    first call that qualifies and kept while the key is the same; None for a call the plan
    does not cover (see the module docstring)."""
    if (
        sample_weight is not None
        or class_weight is not None
        or not isinstance(x, torch.Tensor)
        or not isinstance(y, torch.Tensor)
        or x.ndim == 0
        or y.ndim == 0
        or x.shape[0] != y.shape[0]
    ):
        return None
    optimizer = model.optimizer
    loss, metrics, weighted = (
        model._compiled_loss,
        model._compiled_metrics,
        model._compiled_weighted_metrics,
    )
    key = (
        structure_version(),  # weights, sublayers (constraints), devices, dtypes
        loss,  # a new compile makes new ones of these
        metrics,
        weighted,
        model._loss_tracker,
        loss is None or loss.built,  # built by the first batch
        metrics is None or metrics.built,
        weighted is None or weighted.built,
        optimizer,
        getattr(optimizer, "torch_optimizer", None),  # built by the first step
        model._nan_policy,
        model.jit_compile,
        model._data_parallel,
        model._loss_scaler,
        type(model).train_step,
        model.__dict__.get("train_step"),  # one set on the instance
    )
    kept = model.__dict__.get("_step_plan")
    if kept is None or kept[0] != key:  # a configuration seen first: does the plan apply?
        kept = model.__dict__["_step_plan"] = (  # past Module.__setattr__
            key,
            StepPlan(model) if _qualifies(model) else None,
        )
    plan: StepPlan | None = kept[1]
    if plan is None or x.device != plan.device or y.device != plan.device:
        return None
    return plan


def _qualifies(model: Any) -> bool:
    """Whether the model's configuration is one the plan covers (asked once per key)."""
    optimizer = model.optimizer
    metrics, weighted = model._compiled_metrics, model._compiled_weighted_metrics
    inputs = model._symbolic_inputs()
    return (
        model.compiled
        and getattr(type(model).train_step, "_step_plan_runs_it", False)
        and "train_step" not in model.__dict__
        and not model.jit_compile
        and model._data_parallel is None
        and model._loss_scaler is None
        and model._nan_policy != "ignore"
        and isinstance(optimizer, optimizers_module.Optimizer)
        and optimizer.torch_optimizer is not None  # built: by an earlier step
        and (model._compiled_loss is None or model._compiled_loss.built)
        and (metrics.built or not metrics.spec)
        and (weighted.built or not weighted.spec)
        and model._guard.metric_states(model.metrics) is not None
        and not model._constrained_layers()
        and bool(model._parameters_list())
        and (inputs is None or len(inputs) == 1)
    )
