"""Keras-style training methods (compile/fit/evaluate/predict) as a mixin for models.

``class Model(Trainer, Layer)`` gets ``compile``, ``fit``, ``evaluate``, ``predict``,
``train_on_batch``, ``test_on_batch`` and ``predict_on_batch``. The mixin uses only the
layer's call (``self(x, training=True/False)``), ``trainable_weights``, ``parameters()``,
``losses`` and ``apply_constraints()``.

One training step on a batch ``(x, y, sample_weight)`` is exactly::

    y_pred = model(x, training=True)
    loss = sum_k loss_weights[k] * loss_k(y_k, y_pred_k, sample_weight) + sum(model.losses)
    loss.backward(); optimizer.step(); model.apply_constraints()

where each ``loss_k`` is reduced as Keras does (the mean over samples and positions, see
:mod:`rnnkit.training.losses`) and ``model.losses`` are the regularization penalties. Metrics
are updated with the ``y_pred`` of that forward pass. Nothing else touches the weights, so a
hand-written torch loop with the same optimizer gives the same weights.

Logged values are running means over the epoch, each batch weighted by its size. Batches move
to the device of the model's parameters.

Non-finite inputs and losses stop training by default (``compile(nan_policy=...)``, see
:mod:`rnnkit.training.nan_policy`). ``fit`` runs data-parallel while a ``torch.distributed``
process group exists (:mod:`rnnkit.distributed`), and resumes interrupted training with
:class:`~rnnkit.callbacks.BackupAndRestore`.

>>> # model.compile(optimizer="adam", loss="mse", metrics=["mae"])
>>> # history = model.fit(x, y, batch_size=32, epochs=3, validation_split=0.2)
>>> # history.history.keys()  ->  loss, mae, val_loss, val_mae
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rnnkit import distributed as distributed_module
from rnnkit import tree
from rnnkit._eager import eager
from rnnkit.symbolic import KerasTensor
from rnnkit.training import callbacks as callbacks_module
from rnnkit.training import data as data_module
from rnnkit.training import losses as losses_module
from rnnkit.training import metrics as metrics_module
from rnnkit.training import nan_policy as nan_policy_module
from rnnkit.training import optimizers as optimizers_module
from rnnkit.training import step_plan as step_plan_module
from rnnkit.training.compiled import CompiledLoss, CompiledMetrics, dedupe_names
from rnnkit.training.logs import StepLogs
from rnnkit.training.progress import ProgressBar, resolve_verbose
from rnnkit.training.step_guard import BadStep, StepGuard


class Trainer:
    """Mixin that gives a model ``compile``, ``fit``, ``evaluate`` and ``predict``.

    It comes before :class:`~rnnkit.layers.Layer` in the model's bases
    (``class Model(Trainer, Layer)``); its ``__init__`` passes the arguments on and then
    declares the training state. From the host it reads ``name`` and, when the model has them,
    the functional ``inputs``, ``outputs`` and ``output_names``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.compiled = False
        self.stop_training = False
        self.run_eagerly = False
        object.__setattr__(self, "optimizer", None)
        object.__setattr__(self, "loss", None)
        self._nan_policy = "raise"
        self._compiled_loss: CompiledLoss | None = None
        self._compiled_metrics: CompiledMetrics | None = None
        self._compiled_weighted_metrics: CompiledMetrics | None = None
        self._loss_tracker: metrics_module.Mean | None = None
        self._data_parallel: distributed_module.DataParallel | None = None
        # The running fit's batch iterator and where it resumes (see resume_at).
        self._train_iterator: Any = None
        self._initial_epoch: int | None = None
        self._initial_step = 0
        self._batch_label = "train_step"  # how nan-policy errors name the running step
        self._guard = StepGuard()  # the nan policy's device-side half
        self._loss_scaler: torch.amp.GradScaler | None = None  # float16 compute only
        self.jit_compile = False
        self._jit_steps: dict[str, Any] = {}

    # ------------------------------------------------------------ public seams
    @property
    def data_parallel(self) -> distributed_module.DataParallel | None:
        """The data parallelism batches run with (None: in one process)."""
        return self._data_parallel

    def attach_data_parallel(
        self, parallel: distributed_module.DataParallel | None
    ) -> distributed_module.DataParallel | None:
        """Run the following batches data-parallel with ``parallel`` (None: in one process);
        returns the one attached before. :func:`rnnkit.distributed.data_parallel` attaches one
        around each ``fit``/``evaluate`` call while a process group exists."""
        previous, self._data_parallel = self._data_parallel, parallel
        return previous

    @property
    def nan_policy(self) -> str:
        """``compile(nan_policy=...)``: ``"raise"``, ``"warn"`` or ``"ignore"``."""
        return self._nan_policy

    @property
    def batch_label(self) -> str:
        """How errors name the running step (``"train_step"``, ``"train_on_batch"``, ...)."""
        return self._batch_label

    @property
    def train_iterator(self) -> Any:
        """The running ``fit``'s batch iterator (its ``state()``/``restore(state)`` give and
        set its position), or None outside ``fit``."""
        return self._train_iterator

    def resume_at(self, epoch: int, step: int) -> None:
        """Called by a callback in ``on_train_begin`` (``BackupAndRestore``): the running
        ``fit`` starts at ``epoch``, batch ``step``, instead of its ``initial_epoch``."""
        self._initial_epoch, self._initial_step = int(epoch), int(step)

    # ------------------------------------------------------------------------ compile
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: Any = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
        run_eagerly: bool = False,
        steps_per_execution: int = 1,
        jit_compile: Any = "auto",
        nan_policy: str = "raise",
    ) -> None:
        """Configure training.

        Args:
            optimizer: a name (``"sgd"``, ``"adam"``, ``"rmsprop"``, ``"adagrad"``,
                ``"adamw"``), an :mod:`rnnkit.optimizers` object or a ``torch.optim``
                optimizer over this model's parameters.
            loss: a name (``"mse"``, ``"sparse_categorical_crossentropy"``, ...), a loss object
                or ``fn(y_true, y_pred)``; for several outputs also a list or a dict by output
                name. ``None`` trains on ``model.losses`` alone.
            loss_weights: per-output factors of the total loss (list or dict).
            metrics: names (``"accuracy"``, ``"mae"``, ``"mse"``, ...) or metric objects; see
                :mod:`rnnkit.training.compiled` for several outputs.
            weighted_metrics: metrics updated with the batches' ``sample_weight``.
            run_eagerly: accepted for Keras compatibility; rnnkit always runs eagerly.
            steps_per_execution: must be 1.
            jit_compile: True runs ``train_step``, ``test_step`` and ``predict_step`` through
                ``torch.compile``, as Keras does on its torch backend; ``"auto"`` and False
                run them eagerly.
            nan_policy: what training does with NaN/infinite inputs or losses (not a Keras
                argument): ``"raise"`` (default) raises naming the array, the epoch and the
                batch before the weights are touched; ``"warn"`` warns and stops training;
                ``"ignore"`` trains on, as Keras does. See
                :mod:`rnnkit.training.nan_policy`.
        """
        if steps_per_execution != 1:
            raise ValueError(
                f"compile: steps_per_execution must be 1 in rnnkit, received {steps_per_execution}"
            )
        if jit_compile not in ("auto", True, False, None):
            raise ValueError(
                f'compile: jit_compile must be True, False or "auto" (False on torch, as in '
                f"Keras), received {jit_compile!r}"
            )
        if isinstance(loss, str):
            losses_module.get(loss)  # unknown names fail here, not at the first batch
        for name in _metric_names([metrics, weighted_metrics]):
            if name.lower() not in ("accuracy", "acc"):
                metrics_module.get(name)
        self._nan_policy = nan_policy_module.check_policy(nan_policy)
        object.__setattr__(self, "optimizer", optimizers_module.get(optimizer))
        object.__setattr__(self, "loss", loss)
        self._compiled_loss = CompiledLoss(loss, loss_weights) if loss is not None else None
        self._compiled_metrics = CompiledMetrics(metrics)
        self._compiled_weighted_metrics = CompiledMetrics(weighted_metrics, weighted=True)
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.run_eagerly = run_eagerly
        self.jit_compile = jit_compile is True
        self._jit_steps: dict[str, Any] = {}
        # Loss scaling for float16 compute (mixed_float16 layers), as Keras' LossScaleOptimizer.
        float16 = any(
            getattr(layer, "_autocast_dtype", None) == torch.float16
            for layer in self._flatten_layers()
        )
        self._loss_scaler = torch.amp.GradScaler(self._device().type) if float16 else None
        self._guard.reset()
        self.compiled = True
        self.stop_training = False

    def _assert_compiled(self, method: str) -> None:
        if not self.compiled:
            raise ValueError(
                f"{method}: the model '{self.name}' must be "
                "compiled first; call model.compile(optimizer=..., loss=...) before "
                f"{method}()"
            )

    # ------------------------------------------------------------------- metrics
    @property
    def metrics(self) -> list[Any]:
        """The loss tracker, the per-output loss trackers, then the compiled metrics: the
        guide's log order (``loss - rnn_1_loss - rnn_1_1_loss - rnn_1_accuracy - ...``)."""
        if not self.compiled:
            return []
        loss, metrics, weighted = (
            self._compiled_loss,
            self._compiled_metrics,
            self._compiled_weighted_metrics,
        )
        # the list changes only with a new compile or when the containers are built (the
        # first batch): kept until then (asked several times per training step)
        key = (
            self._loss_tracker,
            loss,
            metrics,
            weighted,
            loss is not None and loss.built,
            metrics.built,
            weighted.built,
        )
        cached = self.__dict__.get("_metrics_list")
        if cached is None or cached[0] != key:
            out: list[Any] = [self._loss_tracker]
            if self._compiled_loss is not None:
                out += self._compiled_loss.metrics
            out += self._compiled_metrics.metrics
            out += self._compiled_weighted_metrics.metrics
            cached = self.__dict__["_metrics_list"] = (key, out)
        return list(cached[1])

    @property
    def metrics_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    @eager  # jit_compile compiles the model's computation, not this
    def get_metrics_result(self) -> dict[str, float]:
        """``{name: value}`` of every metric, in :attr:`metrics` order (one read-back)."""
        metrics = self.metrics
        return dict(zip([m.name for m in metrics], self._read_back(self._result_tensors())))

    def _result_tensors(self) -> list[torch.Tensor]:
        return [m.result_tensor() for m in self.metrics]

    def _step_logs(self) -> StepLogs:
        """The running logs, left on the device until something reads them. A mean whose
        count is a host number is read back as its total and divided on the host (no
        division op per metric and step)."""
        names, values, divisors = self._log_parts()
        read_back = functools.partial(self._read_back, as_of=self._guard.steps, divisors=divisors)
        return StepLogs(names, values, read_back)

    def _log_parts(self) -> tuple[list[str], list[Any], list[float | None]]:
        """The metrics' names, and their values as :meth:`_read_back` takes them: a total and
        its host count where a mean has one (:meth:`rnnkit.training.metrics.Mean.result_parts`),
        else the result and None."""
        names: list[str] = []
        values: list[Any] = []
        divisors: list[float | None] = []
        for m in self.metrics:  # one loop (not three comprehensions): every step
            value, count = m.result_parts()
            names.append(m.name)
            values.append(value)
            divisors.append(count)
        return names, values, divisors

    @eager  # jit_compile compiles the model's computation, not this
    def _read_back(
        self,
        values: list[Any],
        as_of: int | None = None,
        divisors: list[float | None] | None = None,
    ) -> list[float]:
        """``values`` (the metrics' results, or totals to divide by ``divisors`` where one is
        given, see :meth:`rnnkit.training.metrics.Mean.result_parts`; taken after the guard's
        step ``as_of``, None: now) as floats, read back with the step guard's pending flags
        in one transfer; a bad step among them gets the nan policy (raise, or warn and
        stop)."""
        floats, bad = self._guard.read_back(values)
        if bad is not None:
            self._apply_nan_policy(bad)
            if as_of is None or as_of >= bad.step:  # the values counted the bad step: again
                floats, _ = self._guard.read_back(self._result_tensors())
                return floats
        if divisors is not None:
            for i, count in enumerate(divisors):
                if count is not None:
                    floats[i] = floats[i] / count if count else 0.0
        return floats

    def _apply_nan_policy(self, bad: BadStep) -> None:
        """Put the metrics back to their states before the bad step, take back the
        optimizer's count of the undone steps, then raise or warn and stop."""
        self._guard.restore_metrics(self.metrics, bad.metric_states)
        optimizer = self.optimizer
        if bad.skipped and isinstance(optimizer, optimizers_module.Optimizer) and optimizer.built:
            optimizer.torch_optimizer.rewind(bad.skipped)
        nan_policy_module.report_bad_step(self, bad.label, bad.loss, bad.skipped)

    # ------------------------------------------------------------- steps (overridable)
    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> torch.Tensor:
        """The total loss of a batch: the weighted compiled losses plus ``self.losses``."""
        total = None
        # Low-precision outputs (mixed policies) are compared with the targets in float32.
        if isinstance(y_pred, torch.Tensor):
            if y_pred.dtype in _LOW_PRECISION:
                y_pred = y_pred.to(torch.float32)
        else:
            y_pred = tree.map_structure(_to_float32_if_low_precision, y_pred)
        if self._compiled_loss is not None:
            flat_true, flat_pred = self._match_targets(y, y_pred)
            if not self._compiled_loss.built:
                self._compiled_loss.build(self._output_names(y_pred))
            total = self._compiled_loss(flat_true, flat_pred, sample_weight)
        extra = self.losses
        if extra:  # filtered only when there are some (every step)
            extra = [loss for loss in extra if isinstance(loss, torch.Tensor)]
        if extra:
            reg = torch.stack([loss.reshape(()).to(extra[0].dtype) for loss in extra]).sum()
            total = reg if total is None else total + reg.to(total.device)
        if total is None:
            raise ValueError(
                "compute_loss: nothing to optimize; compile with a loss or add losses in call()"
            )
        return total

    @step_plan_module.runs  # train_on_batch's common call runs it as a StepPlan
    def train_step(self, data: tuple[Any, Any, Any]) -> Mapping[str, float]:
        """One optimizer step on a batch ``(x, y, sample_weight)``; returns the running logs
        (a mapping whose values stay on the device until read).

        A non-finite loss skips the step (see ``compile(nan_policy=...)``), decided on the
        device by the step guard (:mod:`rnnkit.training.step_guard`) where it can; under data
        parallelism the gradients are all-reduced before the step.
        """
        x, y, sample_weight = data
        guard = self._guard if self._guard_on_device() else None
        states = guard.metric_states(self.metrics) if guard is not None else None
        y_pred = self(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
        for p in self._parameters_list():
            p.grad = None
        scaler = self._loss_scaler
        if loss.requires_grad:  # no trainable weights: nothing to differentiate
            (loss if scaler is None else scaler.scale(loss)).backward()
            if scaler is not None and not self._unscale_gradients(scaler):
                return self._step_logs()

        value = loss.detach()  # for the guard and the loss tracker: one detach

        def update(skip_if: torch.Tensor | None = None) -> None:
            self._apply_gradients(skip_if)
            self._update_metrics(x, y, y_pred, value, sample_weight)

        if guard is not None and states is not None:
            self._guarded_update(guard, value, states, y, update)
        elif self._gradients_ready(value):
            update()
        if scaler is not None:
            scaler.update()
        return self._step_logs()

    @eager  # jit_compile compiles the model's computation, not this
    def _guarded_update(
        self,
        guard: StepGuard,
        loss: torch.Tensor,
        states: dict[int, list[Any]],
        y: Any,
        update: Any,
    ) -> None:
        """The update on the device's say-so: kept only where the loss is finite. A plain SGD
        update skips itself on the device (nothing of it to back up); the others are
        restored by the guard."""
        skips = self._optimizer_skips_on_device()
        tensors = [] if skips else self._optimizer_tensors()
        if tensors is None or not self._metrics_ready(states, y):
            # state the guard cannot copy yet (the first step): read the flag back now
            guard.check(loss, self._batch_label, states, applied=False)
            _, bad = guard.read_back([])
            if bad is None:
                update()
            else:  # this step is bad (an earlier bad one makes every later one bad)
                self._apply_nan_policy(bad)
            return
        bad = guard.check(loss, self._batch_label, states)
        if skips:
            update(bad)  # the guard's flag is the float the fused SGD kernel takes
        else:
            guard.update(bad, tensors, update)

    def _optimizer_skips_on_device(self) -> bool:
        """Whether the optimizer step can skip itself on the device
        (:meth:`~rnnkit.training.optimizers.rules.KerasRule.can_skip_on_device`): a built
        Keras optimizer whose rule can, in a model without weight constraints (they would
        project the weights of a skipped step again)."""
        optimizer = self.optimizer
        return (
            isinstance(optimizer, optimizers_module.Optimizer)
            and optimizer.torch_optimizer is not None  # built
            and not self._constrained_layers()
            and optimizer.torch_optimizer.can_skip_on_device()
        )

    def _guard_on_device(self) -> bool:
        """Whether this step's nan check can stay on the device (see step_guard): not with
        nan_policy="ignore" (no check), data parallelism (the ranks agree on the host) or
        float16 loss scaling (the scaler reads its own flag)."""
        return (
            self._nan_policy != "ignore"
            and self._data_parallel is None
            and self._loss_scaler is None
        )

    def _metrics_ready(self, states: dict[int, list[Any]], y: Any) -> bool:
        """Every metric exists and its state was taken (the compiled metrics are created
        by the first batch with targets)."""
        metrics, weighted = self._compiled_metrics, self._compiled_weighted_metrics
        assert metrics is not None and weighted is not None  # compiled
        built = y is None or (
            (metrics.built or not metrics.spec) and (weighted.built or not weighted.spec)
        )
        # metrics are only ever added to the list (a compiled container built, the per-output
        # loss trackers with the compiled loss): the same number means the same metrics
        return built and len(states) == len(self.metrics)

    def _optimizer_tensors(self) -> list[torch.Tensor] | None:
        """The tensors the optimizer step writes in place: the weights with a gradient and
        their optimizer state; None when that state does not exist yet (a torch.optim
        optimizer before its first step)."""
        optimizer = self.optimizer
        params = [p for p in self._trainable_parameters() if p.grad is not None]
        if isinstance(optimizer, optimizers_module.Optimizer):
            if not optimizer.built:
                return None
            return params + optimizer.torch_optimizer.state_tensors(params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            return None
        stateless = isinstance(optimizer, torch.optim.SGD) and not any(
            g.get("momentum") for g in optimizer.param_groups
        )
        if stateless:
            return params
        state = optimizer.state
        if any(not state.get(p) for p in params):
            return None
        extra = [v for p in params for v in state[p].values() if isinstance(v, torch.Tensor)]
        return params + extra

    def _parameters_list(self) -> list[torch.nn.Parameter]:
        return self._cached("parameters", lambda: list(self.parameters()))

    @eager
    def _unscale_gradients(self, scaler: torch.amp.GradScaler) -> bool:
        """Divide the gradients by the loss scale; on an overflow skip the step and lower the
        scale (False), as Keras' LossScaleOptimizer does."""
        optimizer = self.optimizer
        if isinstance(optimizer, optimizers_module.Optimizer) and not optimizer.built:
            optimizer.build(self._trainable_parameters())
        scaler.unscale_(getattr(optimizer, "torch_optimizer", optimizer))
        finite = all(
            bool(torch.isfinite(p.grad).all()) for p in self.parameters() if p.grad is not None
        )
        if not finite:
            scaler.update()
        return finite

    def _step(self, name: str) -> Any:
        """The step method ``name``, compiled with ``torch.compile`` once when ``jit_compile``."""
        step = getattr(self, name)
        if not self.jit_compile:
            return step
        if name not in self._jit_steps:
            self._jit_steps[name] = torch.compile(step)
        return self._jit_steps[name]

    @eager  # jit_compile compiles the model's computation, not this
    def _gradients_ready(self, loss: torch.Tensor | None) -> bool:
        """After backward: all-reduce the gradients under data parallelism, then apply the
        nan policy to a non-finite loss (on any rank). True when the step may go ahead."""
        check = self._nan_policy != "ignore"
        finite = loss is None or not check or bool(torch.isfinite(loss.detach()).all())
        parallel = self._data_parallel
        if parallel is not None:
            finite = parallel.reduce_gradients(self._trainable_parameters(), finite)
        return finite or nan_policy_module.check_loss(self, loss)

    @eager  # jit_compile compiles the model's computation, not this
    def _apply_gradients(self, skip_if: torch.Tensor | None = None) -> None:
        """The optimizer step, then the weight constraints; ``skip_if``: see
        :meth:`_optimizer_skips_on_device`."""
        optimizer = self.optimizer
        if isinstance(optimizer, optimizers_module.Optimizer) and optimizer.torch_optimizer is None:
            if not self._trainable_parameters():  # not built yet
                # Keras trains such a model without updates, with this warning.
                warnings.warn(
                    f"fit: the model '{self.name}' does not have any trainable weights; "
                    "the optimizer makes no update",
                    UserWarning,
                    stacklevel=2,
                )
                return
            optimizer.build(self._trainable_parameters())
        if skip_if is None:
            optimizer.step()
        else:
            optimizer.step(skip_if=skip_if)
        self.apply_constraints()

    def _inputs_finite(self, batch: tuple[Any, Any, Any]) -> bool:
        """Apply the nan policy to a training batch; False when it stopped training."""
        if self._nan_policy == "ignore":
            return True
        return nan_policy_module.check_inputs(self, batch, self._input_names)

    def _input_names(self) -> list[str]:
        return [t.name for t in self._symbolic_inputs() or []]

    def _fit_batch(self, batch: tuple[Any, Any, Any]) -> Mapping[str, float]:
        """Train on a batch, or under data parallelism on this rank's slice of it."""
        parallel = self._data_parallel
        if parallel is None:
            return self._step("train_step")(data_module.to_device(batch, self._device()))
        shard = parallel.shard(batch, data_module.num_samples(*batch))
        if shard is None:  # no samples for this rank: it adds zero gradients, and steps
            for p in self.parameters():
                p.grad = None
            if self._gradients_ready(None):
                self._apply_gradients()
        else:
            self._step("train_step")(data_module.to_device(shard, self._device()))
        return parallel.reduce_metrics(self.metrics, float(self._loss_tracker._count))

    def _test_batch(self, batch: tuple[Any, Any, Any]) -> Mapping[str, float]:
        parallel = self._data_parallel
        if parallel is None:
            return self._step("test_step")(data_module.to_device(batch, self._device()))
        shard = parallel.shard(batch, data_module.num_samples(*batch))
        if shard is not None:
            self._step("test_step")(data_module.to_device(shard, self._device()))
        return parallel.reduce_metrics(self.metrics, float(self._loss_tracker._count))

    def test_step(self, data: tuple[Any, Any, Any]) -> Mapping[str, float]:
        """Loss and metrics of a batch in inference mode; returns the running logs (read
        back when something reads them)."""
        x, y, sample_weight = data
        with torch.no_grad():
            y_pred = self(x, training=False)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
        self._update_metrics(x, y, y_pred, loss, sample_weight)
        return self._step_logs()

    def predict_step(self, data: Any) -> Any:
        """The model's outputs for a batch ``(x,)`` (or ``(x, y)``...) in inference mode."""
        x, _, _ = data_module.unpack_x_y_sample_weight(data)
        with torch.no_grad():
            return self(x, training=False)

    # ------------------------------------------------------------------------- fit
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: list[callbacks_module.Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: dict[int, float] | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
    ) -> callbacks_module.History:
        """Train for ``epochs`` epochs (Keras semantics; ``batch_size`` defaults to 32).

        ``x``/``y``: arrays (numpy or torch; lists/dicts for several inputs/outputs), or a
        DataLoader / iterable of ``(x, y)`` batches as ``x``. ``validation_split`` keeps the
        last fraction of the arrays for validation; ``validation_data`` is ``(x_val, y_val)``
        or an iterable of batches. ``shuffle=False`` keeps the sample order (needed for
        stateful RNNs). Returns the :class:`~rnnkit.callbacks.History`, whose ``history``
        holds ``loss``, the metrics and their ``val_`` versions per epoch.

        Training batches with NaN/infinite values and non-finite losses raise by default
        (``compile(nan_policy=...)``). A callback may move the start to a later epoch and
        batch in ``on_train_begin`` (:class:`~rnnkit.callbacks.BackupAndRestore` does, to
        resume). While a ``torch.distributed`` process group exists, training is
        data-parallel and ``batch_size`` is the global batch size (:mod:`rnnkit.distributed`).
        """
        self._assert_compiled("fit")
        verbose = resolve_verbose(verbose)
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, received {epochs!r}")
        if validation_split and validation_data is None:
            if not data_module.is_array_data(x):
                raise ValueError(
                    "fit: validation_split needs array data (numpy or torch); with a DataLoader "
                    "or iterable pass validation_data instead"
                )
            (x, y, sample_weight), validation_data = data_module.split_validation(
                x, y, sample_weight, validation_split
            )
        if class_weight is not None:
            sample_weight = _class_weight_to_sample_weight(y, sample_weight, class_weight)
        adapter = data_module.get_adapter(x, y, sample_weight, batch_size, shuffle, "fit")
        if isinstance(adapter, data_module.ArrayAdapter):
            self._check_inputs(adapter.x, "fit")
        iterator = data_module.EpochIterator(adapter, steps_per_epoch)
        val_iterator = None
        if validation_data is not None:
            val_iterator = data_module.EpochIterator(
                self._validation_adapter(validation_data, validation_batch_size or batch_size),
                validation_steps,
                record_rng=False,
            )
        with distributed_module.data_parallel(self) as parallel:
            if parallel is not None:
                if type(self).train_step is not Trainer.train_step:
                    warnings.warn(
                        "fit: train_step is overridden; under data parallelism only the built-in "
                        "train_step all-reduces the gradients (see rnnkit.distributed)",
                        UserWarning,
                        stacklevel=2,
                    )
                parallel.broadcast_weights(self)
                if isinstance(adapter, data_module.ArrayAdapter):
                    adapter.share_order = parallel.share_order
                verbose = verbose if parallel.rank == 0 else 0
            return self._run_fit(
                iterator, val_iterator, callbacks, verbose, initial_epoch, epochs, validation_freq
            )

    def _run_fit(
        self,
        iterator: data_module.EpochIterator,
        val_iterator: data_module.EpochIterator | None,
        callbacks: list[callbacks_module.Callback] | None,
        verbose: int,
        initial_epoch: int,
        epochs: int,
        validation_freq: int,
    ) -> callbacks_module.History:
        """The callbacks around the epochs; returns the History."""
        history = callbacks_module.History()
        cbs = [*(callbacks or [])]
        if verbose:
            cbs.insert(0, callbacks_module.ProgbarLogger())
        cbs.append(history)
        params = {"epochs": epochs, "steps": iterator.num_steps, "verbose": verbose}
        callback_list = callbacks_module.CallbackList(cbs, self, params)
        self.stop_training = False
        self._train_iterator = iterator  # BackupAndRestore saves and restores its position
        self._initial_epoch, self._initial_step = None, 0  # a resuming callback sets them
        try:
            callback_list.call("on_train_begin", None)
            if self._initial_epoch is not None:
                initial_epoch = self._initial_epoch
            start = (initial_epoch, self._initial_step)
            epoch_logs = self._fit_epochs(
                iterator, val_iterator, callback_list, start, epochs, validation_freq
            )
        except BaseException:
            for cb in cbs:  # release what callbacks hold: a progress bar, a signal handler
                cb._abort()
            raise
        finally:
            self._train_iterator = None
            self.__dict__["_batch_label"] = "train_step"
        if isinstance(self.optimizer, optimizers_module.Optimizer):
            self.optimizer.finalize_variable_values()  # use_ema: the averages replace weights
        callback_list.call("on_train_end", epoch_logs)
        return history

    def _fit_epochs(
        self,
        iterator: data_module.EpochIterator,
        val_iterator: data_module.EpochIterator | None,
        callback_list: callbacks_module.CallbackList,
        start: tuple[int, int],
        epochs: int,
        validation_freq: int,
    ) -> dict[str, float]:
        """The epochs from ``start`` = (epoch, batch): a resumed first epoch keeps the
        restored metric states and runs only its remaining batches."""
        epoch_logs: dict[str, float] = {}
        num_steps = iterator.num_steps or "?"
        with self._mode(training=True):
            for epoch in range(start[0], epochs):
                first_step = start[1] if epoch == start[0] else 0
                if not first_step:
                    self.reset_metrics()
                callback_list.call("on_epoch_begin", epoch, None)
                logs: dict[str, float] = self.get_metrics_result() if first_step else {}
                for step, batch in iterator.epoch(first_step):
                    # a plain value, set past Module.__setattr__ (per batch)
                    self.__dict__["_batch_label"] = (
                        f"fit (epoch {epoch + 1}/{epochs}, batch {step + 1}/{num_steps})"
                    )
                    if not self._inputs_finite(batch):
                        break  # nan_policy="warn" stopped training before this batch
                    callback_list.call("on_train_batch_begin", step, None)
                    logs = self._fit_batch(batch)
                    callback_list.call("on_train_batch_end", step, logs)
                    if self.stop_training:
                        break
                if not logs and (iterator.exhausted or self.stop_training):
                    break  # no batch ran: there is no epoch to report
                epoch_logs = dict(logs)
                if val_iterator is not None and (epoch + 1) % validation_freq == 0:
                    with self._mode(training=False):
                        val_logs = self._run_test(val_iterator, callback_list, 0)
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                callback_list.call("on_epoch_end", epoch, epoch_logs)
                if self.stop_training or iterator.exhausted:
                    break
        return epoch_logs

    def _validation_adapter(self, validation_data: Any, batch_size: int | None) -> Any:
        is_batches = data_module.is_list_of_batches(validation_data, None, "fit")
        if (
            not is_batches
            and isinstance(validation_data, (tuple, list))
            and data_module.is_array_data(validation_data[0])
        ):
            if len(validation_data) not in (2, 3):
                raise ValueError(
                    "fit: validation_data must be (x_val, y_val) or (x_val, y_val, "
                    f"sample_weight), received a sequence of {len(validation_data)} items"
                )
            vx, vy, vsw = data_module.unpack_x_y_sample_weight(tuple(validation_data))
            self._check_inputs(vx, "fit (validation_data)")
            return data_module.get_adapter(vx, vy, vsw, batch_size, False, "fit")
        return data_module.get_adapter(validation_data, None, None, batch_size, False, "fit")

    # -------------------------------------------------------------------- evaluate
    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: list[callbacks_module.Callback] | None = None,
        return_dict: bool = False,
    ) -> Any:
        """The loss and metrics over the data in inference mode: a float when there is only
        the loss, else ``[loss, *metrics]`` (or a dict with ``return_dict=True``)."""
        self._assert_compiled("evaluate")
        verbose = resolve_verbose(verbose)
        adapter = data_module.get_adapter(x, y, sample_weight, batch_size, False, "evaluate")
        if isinstance(adapter, data_module.ArrayAdapter):
            self._check_inputs(adapter.x, "evaluate")
        iterator = data_module.EpochIterator(adapter, steps, record_rng=False)
        with distributed_module.data_parallel(self) as parallel:
            verbose = 0 if parallel is not None and parallel.rank != 0 else verbose
            callback_list = callbacks_module.CallbackList(
                callbacks or [], self, {"steps": iterator.num_steps, "verbose": verbose}
            )
            with self._mode(training=False):
                logs = self._run_test(iterator, callback_list, verbose)
        logs = dict(logs)  # one read-back
        return logs if return_dict else _flatten_logs(logs)

    def _run_test(
        self, iterator: data_module.EpochIterator, callback_list: Any, verbose: int
    ) -> dict[str, float]:
        self.reset_metrics()
        bar = ProgressBar(iterator.num_steps, verbose) if verbose else None
        callback_list.call("on_test_begin", None)
        logs: dict[str, float] = {}
        seen = 0
        try:
            for step, batch in iterator.epoch():
                callback_list.call("on_test_batch_begin", step, None)
                logs = self._test_batch(batch)
                callback_list.call("on_test_batch_end", step, logs)
                seen = step + 1
                if bar is not None and verbose == 1:
                    bar.update(seen, logs)
        finally:
            if bar is not None:
                bar.update(seen, logs, finalize=True)
        callback_list.call("on_test_end", logs)
        return logs

    # --------------------------------------------------------------------- predict
    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: Any = "auto",
        steps: int | None = None,
        callbacks: list[callbacks_module.Callback] | None = None,
    ) -> Any:
        """The outputs for all samples as numpy arrays (batches concatenated), structured like
        the model's outputs."""
        verbose = resolve_verbose(verbose)
        adapter = data_module.get_adapter(x, None, None, batch_size, False, "predict")
        if isinstance(adapter, data_module.ArrayAdapter):
            self._check_inputs(adapter.x, "predict")
        iterator = data_module.EpochIterator(adapter, steps, record_rng=False)
        callback_list = callbacks_module.CallbackList(
            callbacks or [], self, {"steps": iterator.num_steps, "verbose": verbose}
        )
        bar = ProgressBar(iterator.num_steps, verbose) if verbose else None
        outputs = []
        callback_list.call("on_predict_begin", None)
        seen = 0
        try:
            with self._mode(training=False):
                for step, batch in iterator.epoch():
                    callback_list.call("on_predict_batch_begin", step, None)
                    x_batch = data_module.to_device(batch[0], self._device())
                    out = tree.map_structure(_to_numpy, self._step("predict_step")((x_batch,)))
                    outputs.append(out)
                    callback_list.call("on_predict_batch_end", step, {"outputs": out})
                    seen = step + 1
                    if bar is not None and verbose == 1:
                        bar.update(seen)
        finally:
            if bar is not None:
                bar.update(seen, finalize=True)
        callback_list.call("on_predict_end", None)
        if not outputs:
            raise ValueError("predict: the data produced no batches")
        return tree.map_structure(lambda *xs: np.concatenate(xs, axis=0), *outputs)

    # ---------------------------------------------------------------- on_batch API
    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        class_weight: dict[int, float] | None = None,
        return_dict: bool = False,
    ) -> Any:
        """One training step on one batch (metrics reset first); returns the logs."""
        if not self.compiled:
            self._assert_compiled("train_on_batch")
        plan = step_plan_module.lookup(self, x, y, sample_weight, class_weight)
        if plan is not None:  # the common call, its decisions made once (see step_plan)
            planned = plan.run(self, x, y)
            if planned is not None:
                return planned if return_dict else _flatten_logs(planned)
        if class_weight is not None:
            sample_weight = _class_weight_to_sample_weight(y, sample_weight, class_weight)
        data_module.num_samples(x, y, sample_weight)
        self._check_inputs(x, "train_on_batch")
        self.reset_metrics()
        self.__dict__["_batch_label"] = "train_on_batch"  # past Module.__setattr__
        with self._mode(training=True):
            if self._inputs_finite((x, y, sample_weight)):
                step = self._step("train_step") if self.jit_compile else self.train_step
                logs = step(data_module.to_device((x, y, sample_weight), self._device()))
            else:  # nan_policy="warn": the batch is not trained on
                logs = self.get_metrics_result()
        logs = logs.to_dict() if isinstance(logs, StepLogs) else dict(logs)  # one read-back
        return logs if return_dict else _flatten_logs(logs)

    def test_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
    ) -> Any:
        """Loss and metrics of one batch in inference mode (metrics reset first)."""
        self._assert_compiled("test_on_batch")
        data_module.num_samples(x, y, sample_weight)
        self._check_inputs(x, "test_on_batch")
        self.reset_metrics()
        with self._mode(training=False):
            logs = self._step("test_step")(
                data_module.to_device((x, y, sample_weight), self._device())
            )
        logs = dict(logs)  # one read-back
        return logs if return_dict else _flatten_logs(logs)

    def predict_on_batch(self, x: Any) -> Any:
        """The outputs for one batch as numpy arrays."""
        self._check_inputs(x, "predict_on_batch")
        with self._mode(training=False):
            out = self._step("predict_step")((data_module.to_device(x, self._device()),))
        return tree.map_structure(_to_numpy, out)

    # --------------------------------------------------------------------- helpers
    def _device(self) -> torch.device:
        device = self._call_facts()[1]
        return device if device is not None else torch.device("cpu")

    def _trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The trainable weights (Keras order), then any other parameter that requires a
        gradient (a torch module inside a layer)."""
        weights, others = self._cached("trainable", self._parameter_groups)
        return [*weights, *(p for p in others if p.requires_grad)]

    def _parameter_groups(self) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        weights = list(self.trainable_weights)
        seen = {id(p) for p in self.weights}
        return weights, [p for p in self.parameters() if id(p) not in seen]

    def _mode(self, training: bool) -> _TrainingModes:
        """A context that puts every submodule in train/eval mode and restores the previous
        modes afterwards (see :class:`_TrainingModes`)."""
        modules, plain = self._cached("modules", self._modules_and_plain_train)
        return _TrainingModes(self, modules, plain, training)

    def _modules_and_plain_train(self) -> tuple[list[torch.nn.Module], bool]:
        """Every submodule, and whether all of them keep ``nn.Module.train``."""
        modules = [*self.modules()]
        return modules, all(type(m).train is torch.nn.Module.train for m in modules)

    def _symbolic_inputs(self) -> list[Any] | None:
        inputs = getattr(self, "inputs", None)
        if inputs is None:
            return None
        flat = tree.flatten(inputs)
        return flat if flat and all(isinstance(t, KerasTensor) for t in flat) else None

    def _check_inputs(self, x: Any, method: str) -> None:
        """A functional model's inputs: the number of arrays must match."""
        if isinstance(x, torch.Tensor):  # one array: right for a model of one input
            inputs = getattr(self, "inputs", None)
            if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
                return
        expected = self._symbolic_inputs()
        if expected is None or isinstance(x, dict) or not data_module.is_array_data(x):
            return
        received = [a for a in tree.flatten(x) if a is not None]
        if len(received) != len(expected):
            names = [t.name for t in expected]
            raise ValueError(
                f"{method}: model '{self.name}' expects {len(expected)} input(s) "
                f"{names}, received {len(received)} array(s) with shapes "
                f"{[tuple(a.shape) for a in received]}"
            )

    def _output_names(self, y_pred: Any) -> list[str]:
        if isinstance(y_pred, torch.Tensor):  # one output: its name does not change
            return self._cached("output_name", lambda: self._find_output_names(y_pred))
        return self._find_output_names(y_pred)

    def _find_output_names(self, y_pred: Any) -> list[str]:
        flat = tree.flatten(y_pred)
        if isinstance(y_pred, dict):
            names = sorted(y_pred)
            if len(names) == len(flat):
                return names
        given = getattr(self, "output_names", None)
        if isinstance(given, (list, tuple)) and len(given) == len(flat):
            return dedupe_names([str(n) for n in given])
        outputs = getattr(self, "outputs", None)
        if outputs is not None:
            flat_sym = tree.flatten(outputs)
            history = [getattr(t, "_keras_history", None) for t in flat_sym]
            if len(flat_sym) == len(flat) and all(h is not None for h in history):
                return dedupe_names([h[0].name for h in history])
        if len(flat) == 1:
            return ["output"]
        return [f"output_{i}" for i in range(len(flat))]

    def _match_targets(self, y: Any, y_pred: Any) -> tuple[list[Any], list[Any]]:
        """Flat targets aligned with the flat outputs (dict targets matched by output name)."""
        if isinstance(y_pred, torch.Tensor) and isinstance(y, torch.Tensor):
            return [y], [y_pred]  # one output, one target array
        flat_pred = tree.flatten(y_pred)
        names = self._output_names(y_pred)
        if isinstance(y, dict):
            unknown = sorted(set(y) - set(names))
            if unknown:
                raise ValueError(
                    f"fit: y has keys {unknown} that are not output names; the model's outputs "
                    f"are {names}"
                )
            return [y.get(n) for n in names], flat_pred
        flat_true = [] if y is None else tree.flatten(y)
        if len(flat_true) != len(flat_pred):
            raise ValueError(
                f"fit: the model has {len(flat_pred)} output(s) {names} but y holds "
                f"{len(flat_true)} target array(s); pass one target per output"
            )
        return flat_true, flat_pred

    @eager  # jit_compile compiles the model's computation, not this
    def _update_metrics(
        self, x: Any, y: Any, y_pred: Any, loss: torch.Tensor, sample_weight: Any = None
    ) -> None:
        if isinstance(x, torch.Tensor) and x.ndim:
            batch = int(x.shape[0])
        else:
            batch = next(
                (int(a.shape[0]) for a in tree.flatten(x) if hasattr(a, "shape") and len(a.shape)),
                1,
            )
        self._loss_tracker.update_state(loss, sample_weight=batch)  # it detaches what needs it
        compiled = []  # the containers with metrics (no comprehension: every step)
        for container in (self._compiled_metrics, self._compiled_weighted_metrics):
            if container.spec:
                compiled.append(container)
        if not compiled or y is None:
            return
        flat_true, flat_pred = self._match_targets(y, y_pred)
        if isinstance(y_pred, torch.Tensor):  # one output: no walks
            mask = getattr(y_pred, "_keras_mask", None)
            flat_pred = [y_pred.detach()]
            if mask is not None:
                flat_pred[0]._keras_mask = mask
        else:
            originals = tree.flatten(y_pred)
            flat_pred = [p.detach() if isinstance(p, torch.Tensor) else p for p in flat_pred]
            for p, orig in zip(flat_pred, originals):
                mask = getattr(orig, "_keras_mask", None)
                if mask is not None:
                    p._keras_mask = mask
        for m in compiled:
            if not m.built:  # the first batch with targets builds them all
                taken = {metric.name for metric in self.metrics}
                for c in compiled:
                    c.build(self._output_names(y_pred), flat_true, flat_pred, taken)
                break
        for m in compiled:
            m.update_state(flat_true, flat_pred, sample_weight)


class _TrainingModes:
    """Every submodule of ``owner`` in train (``training=True``) or eval mode while the context
    runs, each back in its previous mode afterwards.

    Where every module keeps ``nn.Module``'s own ``train()`` (``plain``: it only sets the
    plain ``training`` attribute of each), the flags are written straight into the modules'
    dicts: ``Module.__setattr__`` and the recursive ``train()`` cost about as much as the rest
    of a small training step's Python. A class rather than a ``contextlib`` generator: half
    the Python calls, twice per ``train_on_batch``."""

    __slots__ = ("owner", "modules", "plain", "training", "previous")

    def __init__(
        self, owner: torch.nn.Module, modules: list[torch.nn.Module], plain: bool, training: bool
    ) -> None:
        self.owner, self.modules, self.plain, self.training = owner, modules, plain, training
        self.previous: list[bool] = []

    def __enter__(self) -> None:
        modules, training = self.modules, self.training
        self.previous = [m.training for m in modules]
        if (not training) in self.previous:
            if self.plain:
                for module in modules:
                    module.__dict__["training"] = training
            else:
                self.owner.train(training)

    def __exit__(self, *exc: object) -> None:
        plain = self.plain
        for module, mode in zip(self.modules, self.previous):
            if module.training != mode:
                if plain:
                    module.__dict__["training"] = mode
                else:
                    module.training = mode


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _to_float32_if_low_precision(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.dtype in _LOW_PRECISION:
        return x.float()
    return x


def _to_numpy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return _to_float32_if_low_precision(x.detach()).cpu().numpy()
    return x


def _flatten_logs(logs: dict[str, float]) -> Any:
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _metric_names(metrics: Any) -> list[str]:
    return [m for m in tree.flatten(metrics) if isinstance(m, str)]


def _class_weight_to_sample_weight(
    y: Any, sample_weight: Any, class_weight: dict[int, float]
) -> np.ndarray:
    """Per-sample weights ``class_weight[label]`` for one array of labels (or one-hot)."""
    if sample_weight is not None:
        raise ValueError("fit: pass class_weight or sample_weight, not both")
    if y is None or tree.is_nested(y) or not data_module.is_array_data(y):
        raise ValueError(
            "fit: class_weight needs y as a single array of labels (one output, array data)"
        )
    labels = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if labels.ndim > 1 and labels.shape[-1] > 1:
        labels = labels.argmax(axis=-1)
    labels = labels.reshape(labels.shape[0], -1)[:, 0].astype(np.int64)
    missing = sorted(set(labels.tolist()) - set(class_weight))
    if missing:
        raise ValueError(f"fit: class_weight has no weight for class(es) {missing}")
    return np.asarray([class_weight[int(c)] for c in labels], dtype=np.float32)
