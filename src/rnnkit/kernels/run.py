"""Run a :class:`~rnnkit.kernels.spec.KernelPlan` on the fused or the manual-backward kernel.

:func:`run` takes only tensors and the plan's :class:`~rnnkit.kernels.spec.CellSpec`: the
cell's Keras-layout weights, batch-major inputs ``(N, T, H_in)``, the flat initial states
(each ``(N, u)``), the batch-major ``(N, T)`` bool mask, the dropout masks the layer drew, and
the layer's ``go_backwards``, ``return_sequences`` and ``zero_output_for_mask``. The generic
and compiled loops step the cell itself and are run by the layer.

Dropout: the layer draws the cell's masks in the generic loop's order (the input mask first,
shaped like one step's input ``(N, H_in)``, then the recurrent mask ``(N, u)``), so a seeded
layer gives the loop's results on every path. The input mask is shared over time, so it is
applied to the whole sequence before the kernel.

Returns ``(last_output (N, u), outputs (N, T, u) or None, final_states)``, the contract of
:func:`rnnkit.kernels.loop.run_loop`.

>>> import torch
>>> from rnnkit.kernels.spec import CellSpec, KernelPlan
>>> plan = KernelPlan("fused", "", CellSpec("simple_rnn", 2))
>>> w = (torch.ones(3, 2), torch.eye(2), torch.zeros(2))
>>> last, seq, (h,) = run(plan, torch.zeros(1, 4, 3), w, [torch.zeros(1, 2)])
>>> tuple(last.shape), seq
((1, 2), None)
"""

from __future__ import annotations

import torch

from rnnkit._eager import eager
from rnnkit.kernels import export, fused, manual_backward
from rnnkit.kernels.spec import EXPORT, FUSED, MANUAL_BACKWARD, KernelPlan

Tensor = torch.Tensor
Weights = tuple[Tensor, Tensor, Tensor | None]
Result = tuple[Tensor, Tensor | None, list[Tensor]]


def run(
    plan: KernelPlan,
    inputs: Tensor,
    weights: Weights,
    states: list[Tensor],
    mask: Tensor | None = None,
    *,
    input_dropout_mask: Tensor | None = None,
    recurrent_dropout_mask: Tensor | None = None,
    go_backwards: bool = False,
    return_sequences: bool = False,
    zero_output_for_mask: bool = False,
) -> Result:
    """Run ``plan`` (name ``"fused"`` or ``"manual_backward"``) on one call.

    Args:
        plan: from :func:`rnnkit.kernels.dispatch.choose`; its ``mask_info`` (the mask's
            analysis in processing order) spares the fused kernel a second analysis.
        inputs: ``(N, T, H_in)``.
        weights: ``(kernel, recurrent_kernel, bias or None)`` in Keras' layout.
        states: ``[h]`` or ``[h, c]``, each ``(N, u)``.
        mask: ``(N, T)`` bool, in input order, or None.
        input_dropout_mask: ``(N, H_in)``, already scaled, or None.
        recurrent_dropout_mask: ``(N, u)``, already scaled, or None (manual-backward only).
        go_backwards, return_sequences, zero_output_for_mask: the layer's.
    """
    spec = plan.spec
    if spec is None or plan.name not in (FUSED, MANUAL_BACKWARD, EXPORT):
        raise ValueError(
            f"run: plan {plan.name!r} is not a fused, manual-backward or export plan of a "
            "built-in cell"
        )
    if input_dropout_mask is not None:
        inputs = inputs * input_dropout_mask.unsqueeze(1)
    options = dict(
        mask=mask,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        zero_output_for_mask=zero_output_for_mask,
    )
    if plan.name == FUSED:
        out, finals = _run_fused(plan, inputs, weights, states, options)
    elif plan.name == EXPORT:
        out, finals = _run_export(plan, inputs, weights, states, options)
    else:
        out, finals = _run_manual_backward(plan, inputs, weights, states, options,
                                           recurrent_dropout_mask)  # fmt: skip
    if return_sequences:
        return out[:, -1], out, finals
    return out, None, finals


def _run_fused(
    plan: KernelPlan, inputs: Tensor, weights: Weights, states: list[Tensor], options: dict
) -> tuple[Tensor, list[Tensor]]:
    assert plan.spec is not None
    kind = plan.spec.kind
    info = plan.mask_info
    if kind == "lstm":
        out, h, c = fused.lstm(inputs, *weights, states[0], states[1], mask_info=info, **options)
        return out, [h, c]
    if kind == "gru":
        out, h = fused.gru(inputs, *weights, states[0], mask_info=info, **options)
        return out, [h]
    activation = fused.activation_name(plan.spec.activation)
    assert activation is not None  # the plan was chosen by can_fuse
    out, h = fused.simple_rnn(
        inputs, *weights, states[0], activation=activation, mask_info=info, **options
    )
    return out, [h]


def _run_export(
    plan: KernelPlan, inputs: Tensor, weights: Weights, states: list[Tensor], options: dict
) -> tuple[Tensor, list[Tensor]]:
    """The recurrence as one graph node: the ``rnnkit::recurrence`` op under ``torch.export``,
    the scripted loop under ``torch.jit.trace``, ``while_loop`` under the dynamo ONNX exporter
    (:mod:`rnnkit.kernels.export`)."""
    spec = plan.spec
    assert spec is not None and isinstance(spec.activation, str)
    recurrent_activation = spec.recurrent_activation
    assert recurrent_activation is None or isinstance(recurrent_activation, str)
    mode = export.tracer()
    if mode in (export.TRACING, export.ONNX_DYNAMO):
        out, finals = export.masked_loop(
            inputs, *weights, states, options["mask"], spec.kind, spec.activation,
            recurrent_activation, spec.reset_after, options["go_backwards"],
            options["zero_output_for_mask"], while_loop=mode == export.ONNX_DYNAMO,
        )  # fmt: skip
    else:
        out, stacked = torch.ops.rnnkit.recurrence(
            inputs, *weights, states, options["mask"], None, spec.kind, spec.activation,
            recurrent_activation or "sigmoid", spec.reset_after, options["go_backwards"],
            options["zero_output_for_mask"],
        )  # fmt: skip
        finals = list(stacked.unbind(0))
    return (out if options["return_sequences"] else out[:, -1]), finals


# Under torch.compile the manual-backward kernel runs eagerly (one graph break): its autograd
# Function writes into preallocated step buffers (`out=`), which dynamo does not trace.
@eager
def _run_manual_backward(
    plan: KernelPlan,
    inputs: Tensor,
    weights: Weights,
    states: list[Tensor],
    options: dict,
    recurrent_dropout_mask: Tensor | None,
) -> tuple[Tensor, list[Tensor]]:
    device = inputs.device.type
    if not torch.is_autocast_enabled(device):
        return _manual_backward(plan, inputs, weights, states, options, recurrent_dropout_mask)
    # Its step buffers and `out=` products need one dtype: compute in autocast's.
    low = torch.get_autocast_dtype(device)

    def cast(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(low)

    with torch.autocast(device, enabled=False):
        return _manual_backward(
            plan, inputs.to(low), tuple(cast(w) for w in weights),  # type: ignore[arg-type]
            [s.to(low) for s in states], options, cast(recurrent_dropout_mask),
        )  # fmt: skip


def _manual_backward(
    plan: KernelPlan,
    inputs: Tensor,
    weights: Weights,
    states: list[Tensor],
    options: dict,
    recurrent_dropout_mask: Tensor | None,
) -> tuple[Tensor, list[Tensor]]:
    spec = plan.spec
    assert spec is not None
    options = dict(options, recurrent_dropout_mask=recurrent_dropout_mask,
                   activation=spec.activation)  # fmt: skip
    if spec.kind == "lstm":
        out, h, c = manual_backward.lstm(
            inputs, *weights, states[0], states[1],
            recurrent_activation=spec.recurrent_activation, **options,
        )  # fmt: skip
        return out, [h, c]
    if spec.kind == "gru":
        out, h = manual_backward.gru(
            inputs, *weights, states[0], recurrent_activation=spec.recurrent_activation,
            reset_after=spec.reset_after, **options,
        )  # fmt: skip
        return out, [h]
    out, h = manual_backward.simple_rnn(inputs, *weights, states[0], **options)
    return out, [h]
