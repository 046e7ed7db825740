"""The one place that decides which kernel runs a recurrent call.

:func:`choose` is a pure function of a cell's :class:`~rnnkit.kernels.spec.CellSpec`, the
layer's :class:`~rnnkit.kernels.spec.KernelRequest`, the inputs, the mask, the training flag
and the inputs' device. It returns a :class:`~rnnkit.kernels.spec.KernelPlan` that
:func:`rnnkit.kernels.run.run` executes; the layer records its name and reason as
``layer.last_kernel`` and ``layer.last_kernel_choice`` so that tests can ask which path ran.

Kernels:

- ``"fused"``: :mod:`rnnkit.kernels.fused`, the ``torch._VF`` LSTM / GRU / RNN kernels (cuDNN
  on CUDA, oneDNN or ATen's C++ loop on CPU). Default activations only (SimpleRNN tanh or
  relu), GRU ``reset_after=True``, no recurrent dropout while training, masks whose valid
  steps form one run per row (right or left padding). Which calls qualify is answered by
  :func:`rnnkit.kernels.fused.can_fuse`; this module adds the call-level conditions
  (``unroll``, a built-in cell, matching float dtypes).
- ``"manual_backward"``: :mod:`rnnkit.kernels.manual_backward`, a per-step kernel with a
  hand-written backward for what the fused kernel cannot express (other built-in
  activations, masks with holes, recurrent dropout, GRU ``reset_after=False``); answered by
  :func:`rnnkit.kernels.manual_backward.can_run`. Custom activation callables stay on the loop.
- ``"generic"``: :mod:`rnnkit.kernels.loop`, any cell, any configuration; the oracle.
- ``"compiled"``: :mod:`rnnkit.kernels.compiled_loop`, the generic loop compiled with
  ``torch.compile``; opt-in with the layer's ``compile_loop`` argument, it replaces the
  generic loop wherever that would run (placeholder calls that only infer shapes stay
  uncompiled). What it cannot run (:func:`rnnkit.kernels.compiled_loop.can_compile`) raises
  ``ValueError``.

The request's ``use_cudnn``: ``"auto"`` takes the fused kernel when the call qualifies, else
the manual-backward kernel when it does, else the generic loop (the reason says why a faster
kernel was not allowed). Two exceptions, by measurement: a training call on CPU with a padded
batch (a mask the fused kernel would run as a packed sequence, which has no oneDNN kernel;
figures in ``benchmarks/RESULTS.md``) takes the manual-backward kernel. ``True`` raises
``ValueError`` with the reason when the fused kernel cannot run the call; ``False`` forces the
generic loop; ``None`` (a plain ``RNN(cell)``) never runs the fused kernel, as in Keras: a
built-in cell runs on the manual-backward kernel, any other cell on the generic loop. A GRU on
CPU that the fused kernel could run takes the manual-backward kernel's native loop with
``"auto"`` (torch has no oneDNN GRU; measured about 2x faster than its GRU). There
is no try/except fallback: a call either qualifies here or runs the loop.

>>> request = KernelRequest("RNN 'rnn'")
>>> choose(CellSpec("lstm", 2, "tanh", "sigmoid"), request, None, None).name
'generic'
"""

from __future__ import annotations

from typing import Any

import torch
from torch._subclasses.fake_tensor import is_fake

from rnnkit.kernels import compiled_loop, export, fused, manual_backward, native
from rnnkit.kernels.masks import MaskInfo, analyze_mask
from rnnkit.kernels.spec import (
    COMPILED,
    EXPORT,
    FUSED,
    GENERIC,
    MANUAL_BACKWARD,
    CellSpec,
    KernelPlan,
    KernelRequest,
)

_FLOAT_DTYPES = (torch.float32, torch.float64)


def _call_blocker(spec: CellSpec | None, request: KernelRequest, inputs: Any) -> str | None:
    """Why no kernel but the generic loop can run this cell and input, or None."""
    if spec is None:
        return f"the cell {request.cell} is not a built-in cell with a fused kernel"
    if request.unroll:
        return "unroll=True asks for the step-by-step loop"
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        return "the fused kernel takes one 3-D input tensor"
    if inputs.dtype not in _FLOAT_DTYPES:
        return f"inputs of dtype {inputs.dtype} (the fused kernel runs float32 and float64)"
    if spec.dtype is not None and spec.dtype != inputs.dtype:
        return f"inputs of dtype {inputs.dtype} with weights of dtype {spec.dtype}"
    return _autocast_blocker(spec.kind, inputs.device)


def _autocast_blocker(kind: str, device: torch.device) -> str | None:
    """Why torch's fused LSTM cannot run under the autocast active on a CPU, or None. (On CPU
    autocast casts only the LSTM; oneDNN runs it in bfloat16 where the CPU supports that, and
    has no float16 LSTM.)"""
    if kind != "lstm" or device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return None
    dtype = torch.get_autocast_dtype("cpu")
    if dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return f"autocast to {dtype} on a CPU whose oneDNN has no {dtype} LSTM kernel"


def _manual_backward_blocker(config: dict[str, Any]) -> str | None:
    """Why the manual-backward kernel cannot run a configuration the fused kernel rejected."""
    for key in ("activation", "recurrent_activation"):
        if key in config and not isinstance(config[key], str):
            # A user's callable may act across units (the cell applies it gate by gate); the
            # manual-backward kernel needs a known elementwise activation.
            return f"the manual-backward kernel needs a built-in {key}, received a custom callable"
    ok, reason = manual_backward.can_run(config)
    return None if ok else reason


_GRU_ON_CPU = (
    "a GRU on CPU: torch has no oneDNN GRU kernel, and its fused GRU (ATen's step loop) "
    "measured about 2x slower than the manual-backward kernel's native loop, training and "
    "inference (benchmarks/RESULTS.md), so that runs it"
)


def _native_gru_on_cpu(spec: CellSpec, config: dict[str, Any], inputs: torch.Tensor) -> bool:
    """Whether a GRU call the fused kernel could run goes to the native loop instead: on CPU,
    outside ``torch.compile`` (which traces the fused kernel's ops into its graph but cannot
    look into C), when :func:`rnnkit.kernels.native.blocker` admits it."""
    if spec.kind != "gru" or inputs.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    return (
        _manual_backward_blocker(config) is None and _native_blocker(spec, config, inputs) is None
    )


def _native_blocker(spec: CellSpec, config: dict[str, Any], inputs: torch.Tensor) -> str | None:
    """:func:`rnnkit.kernels.native.blocker` for this call's cell and inputs."""
    return native.blocker(
        spec.kind, config.get("activation", "tanh"), config.get("recurrent_activation", "sigmoid"),
        inputs.device, inputs.dtype,
    )  # fmt: skip


def _analysis(mask: Any, go_backwards: bool) -> MaskInfo | None:
    """The analysis of a batch-major mask in processing order (a given analysis as is)."""
    if isinstance(mask, MaskInfo) or mask is None:
        return mask
    if not isinstance(mask, torch.Tensor):
        return None
    mask = mask if mask.dtype == torch.bool else mask != 0
    return analyze_mask(mask.flip(1) if go_backwards else mask)


def choose(
    spec: CellSpec | None,
    request: KernelRequest,
    inputs: Any,
    mask: torch.Tensor | MaskInfo | None,
    training: bool = False,
    shape_inference: bool = False,
) -> KernelPlan:
    """Choose the kernel for one call.

    Args:
        spec: the cell's spec, or None for a cell with no kernel of its own (any cell that is
            not a built-in one, or a built-in subclass that overrides ``call``).
        request: the layer's request (``use_cudnn``, ``unroll``, ``compile_loop``, ...).
        inputs: the ``(N, T, H_in)`` input tensor (nested inputs run the loop).
        mask: the batch-major ``(N, T)`` bool mask, its analysis, or None. A tensor is analysed
            (once, in processing order) only when the fused kernel could otherwise run.
        training: whether dropout is active in this call.
        shape_inference: a placeholder call that only infers shapes (never compiled).

    Returns:
        A :class:`KernelPlan`. Raises ``ValueError`` (naming the layer and the reason) when
        ``use_cudnn=True`` and the fused kernel cannot run the call, or when ``compile_loop``
        was requested and the compiled loop cannot run it.
    """
    plan = _choose_uncompiled(spec, request, inputs, mask, training)
    options = request.compile_options
    if options is None or plan.name != GENERIC:
        return plan
    if shape_inference:
        return KernelPlan(
            GENERIC, f"{plan.reason}; shape inference on placeholders is not compiled", spec
        )
    ok, reason = compiled_loop.can_compile(options, inputs, training, request.dropout_cells)
    if not ok:
        raise ValueError(
            f"{request.owner}: compile_loop was requested, but the compiled loop cannot run "
            f"this call: {reason}."
        )
    backend = options.get("backend", "inductor")
    return KernelPlan(
        COMPILED,
        f"{plan.reason}; compile_loop=True: the loop runs compiled (backend {backend!r})",
        spec,
    )


def _traced_plan(
    spec: CellSpec | None, request: KernelRequest, inputs: Any, mask: Any, training: bool
) -> KernelPlan | None:
    """The ``"export"`` plan while ``torch.export`` or ``torch.jit.trace`` records the call,
    or None for the usual choice (see :mod:`rnnkit.kernels.export`); under the dynamo ONNX
    exporter, a ``while_loop``.

    A built-in cell with built-in activations, not ``unroll`` nor ``use_cudnn=False``, and no
    recurrent dropout in training, runs as one graph node: under ``torch.export`` always (the
    fused kernel would be unrolled over the example's steps, and the mask cannot be read);
    under ``torch.jit.trace`` when the call has a mask (its values would be recorded as
    constants) or the fused kernel cannot run it (the loop would be unrolled). A plain
    ``RNN(cell)`` of a built-in cell qualifies too: it runs the same maths."""
    mode = export.tracer()
    if mode is None or request.use_cudnn is False:
        return None
    if _call_blocker(spec, request, inputs) is not None:
        return None
    assert spec is not None
    if training and spec.recurrent_dropout > 0:
        return None
    config = spec.config(training)
    named = [config[k] for k in ("activation", "recurrent_activation") if k in config]
    if mode == export.ONNX_DYNAMO:
        if not all(export.scripted_activation(a) for a in named):
            return None
        reason = (
            "torch.onnx.export(dynamo=True): the recurrence is a while_loop over the time "
            "steps (an ONNX Loop), with the mask applied at each step"
        )
        return KernelPlan(EXPORT, reason, spec)
    if mode == export.EXPORTING:
        if not all(isinstance(a, str) for a in named) or _manual_backward_blocker(config):
            return None
        reason = (
            "torch.export: the recurrence is one rnnkit::recurrence op (time stays symbolic; "
            "the op chooses the fused or manual-backward kernel from the mask when it runs)"
        )
        return KernelPlan(EXPORT, reason, spec)
    if not all(export.scripted_activation(a) for a in named):
        return None
    fusable, why = fused.can_fuse(config, None, inputs.device)
    if mask is None and fusable and request.use_cudnn is not None:
        return None
    reason = "a mask" if mask is not None else (why or "a plain RNN(cell) runs the loop")
    reason = (
        f"torch.jit.trace with {reason}: the recurrence is a scripted loop over the time "
        "steps (an ONNX Loop), with the mask applied at each step"
    )
    return KernelPlan(EXPORT, reason, spec)


def _choose_uncompiled(
    spec: CellSpec | None, request: KernelRequest, inputs: Any, mask: Any, training: bool
) -> KernelPlan:
    traced = _traced_plan(spec, request, inputs, mask, training)
    if traced is not None:
        return traced
    use_cudnn = request.use_cudnn
    if use_cudnn is None:
        return _plain_rnn_plan(spec, request, inputs, training)
    if use_cudnn is False:
        return KernelPlan(GENERIC, "use_cudnn=False", spec)
    blocker = _call_blocker(spec, request, inputs)
    if blocker is None:
        assert spec is not None
        config = spec.config(training)
        if _masked_training_on_cpu(config, use_cudnn, inputs, mask, training):
            given = mask if isinstance(mask, MaskInfo) else None
            return _manual_plan(f"use_cudnn='auto': {_MASKED_ON_CPU}", spec, config, inputs, given)
        info = _analysis(mask, request.go_backwards)
        ok, reason = fused.can_fuse(config, info, inputs.device)
        if ok and use_cudnn == "auto" and _native_gru_on_cpu(spec, config, inputs):
            return _manual_plan(f"use_cudnn='auto': {_GRU_ON_CPU}", spec, config, inputs, info)
        if ok:
            device = inputs.device.type
            backend = "cuDNN" if device == "cuda" else "oneDNN/ATen"
            reason = f"use_cudnn={use_cudnn!r}: fused {backend} kernel on {device}"
            return KernelPlan(FUSED, reason, spec, info)
        blocker = reason
        if use_cudnn == "auto":
            manual_blocker = _manual_backward_blocker(config)
            if manual_blocker is None:
                reason = f"use_cudnn='auto': {blocker}; the manual-backward kernel runs it"
                return _manual_plan(reason, spec, config, inputs, info)
            blocker = f"{blocker}; {manual_blocker}"
    if use_cudnn is True:
        raise ValueError(
            f"{request.owner}: use_cudnn=True was requested, but the fused (cuDNN/oneDNN) "
            f"kernel cannot run this call: {blocker}. Pass use_cudnn='auto' to fall back to "
            "the generic loop for such calls, or use_cudnn=False."
        )
    return KernelPlan(GENERIC, f"use_cudnn='auto': {blocker}", spec)


_MASKED_ON_CPU = (
    "training on CPU with masked steps: the manual-backward kernel runs it (the fused kernel "
    "cannot run a mask with holes, and would run a padded batch as a packed sequence, whose "
    "backward has no oneDNN kernel on CPU: its cost grows faster than the sequence, 3.6x "
    "nn.LSTM at 100 steps, 17x at 500)"
)


def _masked_training_on_cpu(
    config: dict[str, Any], use_cudnn: Any, inputs: Any, mask: Any, training: bool
) -> bool:
    """A training call on CPU, with ``"auto"``, of a configuration both kernels could run, and
    a mask (or a caller's analysis of it) with at least one masked step: whatever the mask's
    shape (one run per row or holes), the manual-backward kernel runs it, so one reduction of
    the mask decides instead of its analysis (nine ops). The one place that makes this
    choice."""
    if not (
        bool(training)
        and use_cudnn == "auto"
        and inputs.device.type == "cpu"
        and _manual_backward_blocker(config) is None
        and fused.can_fuse(config, None, inputs.device)[0]
    ):
        return False
    if isinstance(mask, MaskInfo):
        return mask.kind != "none"
    return isinstance(mask, torch.Tensor) and not is_fake(mask) and not bool(mask.all())


def _manual_plan(
    reason: str, spec: CellSpec, config: dict[str, Any], inputs: torch.Tensor,
    info: MaskInfo | None = None,
) -> KernelPlan:  # fmt: skip
    """The manual-backward plan, its reason saying whether the time loop runs in C
    (:func:`rnnkit.kernels.native.blocker`, the native loop's one capability check) or in
    Python, and why."""
    why_not = _native_blocker(spec, config, inputs)
    loop = (
        f"its time loop in C, kernels.native{native.threads_note()}"
        if why_not is None
        else f"its time loop in Python: {why_not}"
    )
    return KernelPlan(MANUAL_BACKWARD, f"{reason} ({loop})", spec, info)


def _plain_rnn_plan(
    spec: CellSpec | None, request: KernelRequest, inputs: Any, training: bool
) -> KernelPlan:
    """A plain ``RNN(cell)`` never runs the fused (cuDNN/oneDNN) kernel, as in Keras. When its
    cell is a built-in one (its ``call`` not overridden), the manual-backward kernel runs the
    same step maths with the loop in one place (measured faster than the generic loop, and
    than a hand-written ``nn.LSTMCell`` loop); any other cell runs the generic loop."""
    blocker = _call_blocker(spec, request, inputs)
    if request.compile_options is not None:
        blocker = "compile_loop asks for the generic loop, compiled"
    if blocker is None:
        assert spec is not None
        config = spec.config(training)
        blocker = _manual_backward_blocker(config)
        if blocker is None:
            reason = (
                "a plain RNN(cell) runs no fused kernel (as in Keras); its built-in cell's "
                "maths run on the manual-backward kernel"
            )
            return _manual_plan(reason, spec, config, inputs)
    return KernelPlan(GENERIC, f"a plain RNN(cell) runs the generic loop: {blocker}", spec)


def choose_bidirectional(
    forward: tuple[CellSpec | None, KernelRequest],
    backward: tuple[CellSpec | None, KernelRequest],
    inputs: torch.Tensor,
    mask: torch.Tensor | None,
    training: bool,
) -> KernelPlan:
    """Whether a ``Bidirectional`` call runs both directions in one fused ``_VF`` call
    (:func:`rnnkit.kernels.fused.bidirectional`), and why not.

    ``forward`` and ``backward``: each direction's spec and request. Both directions must
    run the same recurrence (kind, activations, units, ``use_bias``, ...), the forward one
    reading forwards and the backward one backwards, without input dropout in training (each
    direction draws its own mask), and each must qualify for the fused kernel on this call.
    ``mask``: the batch-major ``(N, T)`` bool mask or None; it is analysed once (unless the
    directions are refused before their kernels are asked), and the plan carries that
    analysis in input order: for the one call (``one_call``), or for the directions' own calls
    (the ``mask_info`` argument of ``RNN.call``). Otherwise each direction runs on its own
    kernel: on CPU the one-call form measured no faster
    (``benchmarks/RESULTS_bidirectional.md``); on cuDNN it lets the library schedule both
    directions together.
    """
    (f_spec, f_request), (b_spec, b_request) = forward, backward
    refused = KernelPlan(GENERIC, "", f_spec)
    if f_spec is None or b_spec is None or not f_spec.same_recurrence(b_spec):
        return _per_direction(refused, "the two directions' cells differ or are not built-in cells")
    if f_request.go_backwards or not b_request.go_backwards:
        return _per_direction(
            refused, "the forward layer must read forwards and the backward layer backwards"
        )
    if training and (f_spec.dropout > 0 or b_spec.dropout > 0):
        return _per_direction(
            refused, "input dropout in training draws a different mask per direction"
        )
    mode = export.tracer()
    if mode in (export.EXPORTING, export.ONNX_DYNAMO) or (
        mode == export.TRACING and mask is not None
    ):
        return _per_direction(
            refused, f"{mode} records each direction as one graph node (kernels.export)"
        )
    info = _analysis(mask, go_backwards=False)  # one run per row stays one run reversed
    for spec, request in (forward, backward):
        plan = _choose_uncompiled(spec, request, inputs, info, training)
        if plan.name != FUSED:
            return _per_direction(refused, f"{request.owner}: {plan.reason}", info)
    reason = "both directions qualify for the fused kernel: one bidirectional _VF call"
    return KernelPlan(FUSED, reason, f_spec, info, one_call=True)


def _per_direction(plan: KernelPlan, reason: str, info: MaskInfo | None = None) -> KernelPlan:
    reason = f"each direction runs on its own kernel: {reason}"
    return KernelPlan(plan.name, reason, plan.spec, info)
