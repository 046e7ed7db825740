"""The lean call of a functional model on one tensor: its chain of layers, without the walks.

``model(x)`` on a functional model (or a built ``Sequential``) goes through ``Layer.__call__``,
``nn.Module.__call__`` and ``Layer.forward`` (training flag, input mask, conversion), then
``call`` replays the graph (:meth:`Graph.run`: the input checked against the model's
``Input``, each node's arguments filled in, outputs flattened and packed), and each layer is
called through the same three steps. For a model whose graph is one chain
(:attr:`Graph.chain`, e.g. every ``Sequential``), a :class:`CallPlan` runs the same layers with
the same ``training`` flag and gives the same outputs, with less Python per call: the model's
own checks and conversion are done once per input signature, and each layer whose plain call
reaches ``Layer.forward`` unchanged (``Layer._plain_calls_reach_forward``) is run through
``forward`` directly (``Layer._forward_in_plan``: a recurrent layer goes straight to its lean
call when ``forward`` would only pass the tensor on); the others are called as usual.

What is kept: one plan per *key*: the structure version (``structure_version()``: parameters,
submodules, devices, dtypes, trainable flags), the graph, the input's shape, dtype and device
and whether the model checks sizes strictly. A plan is recorded after a call of the general
path succeeds with that key and the model's checks returned the input unchanged (no
conversion, no axis added or removed), and only for a model whose ``call`` and ``forward``
replay the graph (not overridden).

What is checked at every call, falling back to the general path: one tensor argument and at
most ``training=`` as keyword; no mask on the input; no forward/backward hooks, pre-hooks or
``nn.Module.compile`` on the model or the layers run through ``forward`` (and no global hooks);
not inside ``torch.compile``, a JIT trace or a symbolic (shape inference) call. Everything a
layer checks on its inputs (shapes, batch size of a stateful layer, ...) it still checks in
its ``forward``, with the same errors.

>>> import torch, rnnkit
>>> from rnnkit.layers import Dense
>>> model = rnnkit.Sequential([rnnkit.Input((3,)), Dense(2)])
>>> _ = model(torch.ones(1, 3))  # the general path; the plan is recorded
>>> lookup(model, torch.ones(1, 3), {}) is not None
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnkit.layers.base import Layer, _training_stack, current_training, structure_version
from rnnkit.models.functional import Graph, one_output
from rnnkit.symbolic import Node, in_symbolic_call

_FLAGS = (bool, type(None))
_MAX_PLANS = 8  # per model: a few input signatures (batch sizes, devices) at once


class CallPlan:
    """The layers of a chain graph, each with how it is called (see the module docstring)."""

    def __init__(self, chain: list[Node]) -> None:
        # (layer, whether it is run through ``forward`` directly, its node)
        self.steps = [
            (node.layer, type(node.layer)._plain_calls_reach_forward, node) for node in chain
        ]
        # the layers whose ``nn.Module.__call__`` (hooks, compiled call) the plan skips
        self.skipped_calls = [layer for layer, direct, _ in self.steps if direct]

    def runnable(self, model: nn.Module) -> bool:
        """Whether nothing that the plan skips would act now: hooks and ``nn.Module.compile``
        on the model or a layer run through ``forward``, a global hook, a ``forward``
        replaced on an instance. For each module, the test ``nn.Module.__call__`` makes
        itself, plus a compiled call or an instance's own ``forward``; one loop with no helper
        per module (asked at every call)."""
        hooks = nn.modules.module
        if (
            hooks._global_forward_hooks
            or hooks._global_forward_pre_hooks
            or hooks._global_backward_hooks
            or hooks._global_backward_pre_hooks
        ):
            return False
        for module in (model, *self.skipped_calls):
            if (
                module._forward_hooks
                or module._forward_pre_hooks
                or module._backward_hooks
                or module._backward_pre_hooks
                or module._compiled_call_impl is not None
                or "forward" in module.__dict__
            ):
                return False
        return True

    def run(self, model: Layer, x: torch.Tensor, training: Any) -> Any:
        """``model(x, training=training)``, as the general path computes it."""
        if training is None:
            training = current_training()
        if training is None:
            training = model.training
        training = bool(training)
        if model._call_losses:
            model._call_losses = []
        stack = _training_stack()
        stack.append(training)
        try:
            value: Any = x
            for layer, direct, node in self.steps:
                value = layer._forward_in_plan(value, training) if direct else layer(value)
                if not isinstance(value, torch.Tensor):
                    value = one_output(node, value)
        finally:
            stack.pop()
        model._attach_output_masks(x, None, value)
        return value


def _key(model: Any, x: torch.Tensor) -> tuple[Any, ...]:
    return (
        structure_version(),
        model._graph,
        x.shape,
        x.dtype,
        x.device,
        model._strict_input_shapes,
    )


def _plain_call(x: Any, kwargs: dict[str, Any]) -> bool:
    """A real tensor without a mask, at most ``training=`` (a bool or None), no tracing."""
    if kwargs and (list(kwargs) != ["training"] or type(kwargs["training"]) not in _FLAGS):
        return False
    return (
        isinstance(x, torch.Tensor)
        and getattr(x, "_keras_mask", None) is None
        and not in_symbolic_call()
        and not torch.compiler.is_compiling()
        and not torch._C._is_tracing()  # torch.jit.is_tracing() less its is_scripting()
    )


def _taken_as_is(model: Any, x: torch.Tensor, graph: Graph) -> bool:
    """Whether the model's own conversion and input check return ``x`` itself (dtype and
    device compared first, so that nothing is converted or moved just to compare)."""
    _, device, dtype = model._call_facts()
    if x.dtype != dtype or (device is not None and x.device != device):
        return False
    return model._convert_inputs(x) is x and model._check_input(x, graph.inputs[0]) is x


def lookup(model: Any, x: torch.Tensor, kwargs: dict[str, Any]) -> CallPlan | None:
    """The plan recorded for a call ``model(x, **kwargs)``, when one is and may run now."""
    plans = model._call_plans
    if not plans or not _plain_call(x, kwargs):
        return None
    plan = plans.get(_key(model, x))
    return plan if plan is not None and plan.runnable(model) else None


def record(model: Any, x: Any, kwargs: dict[str, Any]) -> None:
    """Keep a plan for calls like ``model(x, **kwargs)``, which the general path just ran,
    when the model qualifies (module docstring)."""
    graph: Graph | None = model._graph
    if (
        graph is None
        or graph.chain is None
        or not _plain_call(x, kwargs)
        or not model._call_replays_graph()
        or model._autocast_dtype is not None
        or not _taken_as_is(model, x, graph)
    ):
        return
    plans = model._call_plans
    if len(plans) >= _MAX_PLANS:
        plans.clear()
    plans[_key(model, x)] = CallPlan(graph.chain)
