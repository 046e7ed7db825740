"""The recurrence of a built-in cell as one graph node, for ``torch.export`` and tracing.

``torch.export`` traces the fused ``torch._VF`` kernels through their decomposition, which is
one step per time step: the time dimension would be fixed to the example's. And the choice
between the fused and the manual-backward kernel reads the mask's values, which a trace
records as constants (``torch.jit.trace``) or cannot read at all (``torch.export``'s fake
tensors). This module gives both tracers a form that keeps time symbolic and stays correct for
every mask:

* under ``torch.export`` (:func:`torch.compiler.is_exporting`) the whole recurrence is one
  custom op, ``rnnkit::recurrence`` (:func:`recurrence`). Its shape function says only
  ``outputs (N, T, u)`` and ``final_states (S, N, u)``, so ``N`` and ``T`` stay symbolic; when
  the exported program runs, the op analyses the mask and runs the fused kernel (no mask, or
  one run of valid steps per row) or the manual-backward kernel (holes), as an eager call
  would. Its backward recomputes the forward under autograd (exported programs are usually
  for inference; training through one stays correct).
* under the dynamo ONNX exporter (``torch.onnx.export(..., dynamo=True)``, which runs
  ``torch.export`` and then translates each op to ONNX: a custom op has no translation) the
  recurrence is torch's ``while_loop`` over the time steps with the mask applied at each step
  (:func:`masked_loop` with ``while_loop=True``), which becomes an ONNX ``Loop``.
* under ``torch.jit.trace`` (the TorchScript ONNX exporter) with a mask, or with a
  configuration the fused kernel cannot run, the recurrence is a scripted loop
  (:func:`masked_loop`), which the trace keeps as a loop over the symbolic time dimension (an
  ONNX ``Loop``) with the mask applied at each step. Without a mask a fusable call keeps the
  fused kernel, which the ONNX exporter writes as its ``LSTM``/``GRU``/``RNN`` operator.

Both follow the generic loop's Keras semantics (:mod:`rnnkit.kernels.loop`): at a masked step
the states are kept and the output repeats the previous output (zeros before the first valid
step, or zeros everywhere masked with ``zero_output_for_mask``); with ``go_backwards`` the
steps run from last to first and the outputs come back in processing order.

Only built-in activations by name run here (the scripted loop: ``tanh``, ``sigmoid``,
``relu``, ``linear``, ``hard_sigmoid``); a cell with a callable activation, ``unroll=True`` or
``use_cudnn=False`` runs the generic Python loop, which a tracer unrolls over the example's
time steps (``torch.export`` then refuses a dynamic time dimension, naming it).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch._higher_order_ops.while_loop import while_loop

from rnnkit.kernels import fused, manual_backward
from rnnkit.kernels.masks import analyze_mask

Tensor = torch.Tensor

EXPORTING = "torch.export"
TRACING = "torch.jit.trace"
ONNX_DYNAMO = "torch.onnx.export(dynamo=True)"

# The activations the scripted loop knows, by name (rnnkit.activations' names and maths, which
# tests/test_export.py checks against the generic loop); its code for each in `_activate`.
_SCRIPTED_ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2, "linear": 3, "hard_sigmoid": 4}


def tracer() -> str | None:
    """:data:`ONNX_DYNAMO` while the dynamo ONNX exporter runs ``torch.export``,
    :data:`EXPORTING` under ``torch.export`` otherwise, :data:`TRACING` under
    ``torch.jit.trace`` (also the TorchScript ONNX exporter), else None."""
    if torch.compiler.is_exporting():
        return ONNX_DYNAMO if torch.onnx.is_in_onnx_export() else EXPORTING
    if torch.jit.is_tracing():
        return TRACING
    return None


def scripted_activation(identifier: Any) -> bool:
    """Whether the scripted loop runs this activation (a built-in activation's name)."""
    return isinstance(identifier, str) and identifier in _SCRIPTED_ACTIVATIONS


# ----------------------------------------------------------------------- torch.export: one op
def _eager(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    states: list[Tensor],
    mask: Tensor | None,
    recurrent_dropout_mask: Tensor | None,
    kind: str,
    activation: str,
    recurrent_activation: str,
    reset_after: bool,
    go_backwards: bool,
    zero_output_for_mask: bool,
) -> tuple[Tensor, Tensor]:
    """The kernel an eager call would run, chosen on the mask's values; outputs in processing
    order ``(N, T, u)`` and the final states stacked ``(S, N, u)``."""
    config: dict[str, Any] = {"cell": kind, "activation": activation, "training": False}
    if kind != "simple_rnn":
        config["recurrent_activation"] = recurrent_activation
    if kind == "gru":
        config["reset_after"] = reset_after
    options: dict[str, Any] = dict(
        mask=mask,
        go_backwards=go_backwards,
        return_sequences=True,
        zero_output_for_mask=zero_output_for_mask,
    )
    weights = (inputs, kernel, recurrent_kernel, bias)
    info = None if mask is None else analyze_mask(mask.flip(1) if go_backwards else mask)
    ok, _ = fused.can_fuse(config, info, inputs.device)
    if ok and recurrent_dropout_mask is None:
        options["mask_info"] = info
        if kind == "lstm":
            out, h, c = fused.lstm(*weights, states[0], states[1], **options)
            return out, torch.stack([h, c])
        if kind == "gru":
            out, h = fused.gru(*weights, states[0], **options)
        else:
            out, h = fused.simple_rnn(*weights, states[0], activation=activation, **options)
        return out, h.unsqueeze(0)
    options.update(recurrent_dropout_mask=recurrent_dropout_mask, activation=activation)
    if kind == "lstm":
        out, h, c = manual_backward.lstm(
            *weights, states[0], states[1], recurrent_activation=recurrent_activation, **options
        )
        return out, torch.stack([h, c])
    if kind == "gru":
        out, h = manual_backward.gru(
            *weights, states[0], recurrent_activation=recurrent_activation,
            reset_after=reset_after, **options,
        )  # fmt: skip
    else:
        out, h = manual_backward.simple_rnn(*weights, states[0], **options)
    return out, h.unsqueeze(0)


@torch.library.custom_op("rnnkit::recurrence", mutates_args=())
def recurrence(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    states: list[Tensor],
    mask: Tensor | None,
    recurrent_dropout_mask: Tensor | None,
    kind: str,
    activation: str,
    recurrent_activation: str,
    reset_after: bool,
    go_backwards: bool,
    zero_output_for_mask: bool,
) -> tuple[Tensor, Tensor]:
    """One built-in cell's recurrence over ``inputs (N, T, H_in)`` from ``states`` (``[h]`` or
    ``[h, c]``, each ``(N, u)``), Keras-layout weights, an optional ``(N, T)`` bool ``mask``
    (input order) and an optional ``(N, u)`` recurrent dropout mask.

    Returns ``(outputs (N, T, u) in processing order, final states (S, N, u))``."""
    out, finals = _eager(
        inputs, kernel, recurrent_kernel, bias, states, mask, recurrent_dropout_mask, kind,
        activation, recurrent_activation, reset_after, go_backwards, zero_output_for_mask,
    )  # fmt: skip
    # A custom op's outputs may not alias its inputs (a row with no valid step keeps its
    # initial states, which the kernels may return as they are).
    return out.clone(), finals.clone()


@recurrence.register_fake
def _recurrence_shapes(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    states: list[Tensor],
    mask: Tensor | None,
    recurrent_dropout_mask: Tensor | None,
    kind: str,
    activation: str,
    recurrent_activation: str,
    reset_after: bool,
    go_backwards: bool,
    zero_output_for_mask: bool,
) -> tuple[Tensor, Tensor]:
    batch, steps = inputs.shape[0], inputs.shape[1]
    units = recurrent_kernel.shape[0]
    return (
        inputs.new_empty(batch, steps, units),
        inputs.new_empty(len(states), batch, units),
    )


_DIFFERENTIABLE = ("inputs", "kernel", "recurrent_kernel", "bias", "states")


def _save_for_backward(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    ctx.arguments = inputs


def _backward(ctx: Any, grad_outputs: Tensor, grad_finals: Tensor) -> tuple[Any, ...]:
    """Recompute the forward under autograd and differentiate it."""
    arguments = list(ctx.arguments)
    leaves: list[Tensor] = []
    with torch.enable_grad():
        for i in range(len(_DIFFERENTIABLE)):
            value = arguments[i]
            if isinstance(value, list):
                value = [s.detach().requires_grad_() for s in value]
                leaves.extend(value)
            elif value is not None:
                value = value.detach().requires_grad_()
                leaves.append(value)
            arguments[i] = value
        out, finals = _eager(*arguments)
        grads = list(
            torch.autograd.grad(
                (out, finals), leaves, (grad_outputs, grad_finals), allow_unused=True
            )
        )
    result: list[Any] = []
    for i in range(len(_DIFFERENTIABLE)):
        value = ctx.arguments[i]
        if isinstance(value, list):
            result.append([grads.pop(0) for _ in value])
        else:
            result.append(None if value is None else grads.pop(0))
    return (*result, *([None] * (len(ctx.arguments) - len(_DIFFERENTIABLE))))


recurrence.register_autograd(_backward, setup_context=_save_for_backward)


# ------------------------------------------------------- torch.jit.trace: a scripted loop
def _activate(x: Tensor, code: int) -> Tensor:
    if code == 0:
        return torch.tanh(x)
    if code == 1:
        return torch.sigmoid(x)
    if code == 2:
        return torch.relu(x)
    if code == 3:
        return x
    return torch.clamp(x + 3.0, 0.0, 6.0) / 6.0  # Keras 3's hard_sigmoid: relu6(x + 3) / 6


def _step(
    x_t: Tensor,
    h: Tensor,
    c: Tensor,
    recurrent_kernel: Tensor,
    recurrent_bias: Tensor,
    kind: int,
    activation: int,
    recurrent_activation: int,
    reset_after: bool,
) -> tuple[Tensor, Tensor]:
    """One step from the projected input ``x_t = x W + b_in`` ``(N, G*u)``: ``(h_new, c_new)``
    (``c`` passes through but for the LSTM). ``kind``: 0 LSTM, 1 GRU, 2 SimpleRNN."""
    units = recurrent_kernel.shape[0]
    if kind == 0:
        z = x_t + torch.matmul(h, recurrent_kernel)
        i = _activate(z[:, :units], recurrent_activation)
        f = _activate(z[:, units : 2 * units], recurrent_activation)
        g = _activate(z[:, 2 * units : 3 * units], activation)
        o = _activate(z[:, 3 * units :], recurrent_activation)
        c_new = f * c + i * g
        return o * _activate(c_new, activation), c_new
    if kind == 1:
        if reset_after:
            inner = torch.matmul(h, recurrent_kernel) + recurrent_bias
            zr = _activate(x_t[:, : 2 * units] + inner[:, : 2 * units], recurrent_activation)
            hh = _activate(x_t[:, 2 * units :] + zr[:, units:] * inner[:, 2 * units :], activation)
        else:
            inner = torch.matmul(h, recurrent_kernel[:, : 2 * units])
            zr = _activate(x_t[:, : 2 * units] + inner, recurrent_activation)
            rh = torch.matmul(zr[:, units:] * h, recurrent_kernel[:, 2 * units :])
            hh = _activate(x_t[:, 2 * units :] + rh, activation)
        z = zr[:, :units]
        return z * h + (1.0 - z) * hh, c
    return _activate(x_t + torch.matmul(h, recurrent_kernel), activation), c


def _biases(kernel: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(input bias, recurrent bias)``, each ``(G*u,)``: GRU ``reset_after``'s two rows, one
    bias and zeros, or zeros."""
    zeros = torch.zeros(kernel.shape[1], dtype=kernel.dtype, device=kernel.device)
    if bias is None:
        return zeros, zeros
    if bias.dim() == 2:
        return bias[0], bias[1]
    return bias, zeros


def _loop(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    h: Tensor,
    c: Tensor,
    mask: Tensor,
    kind: int,
    activation: int,
    recurrent_activation: int,
    reset_after: bool,
    zero_output_for_mask: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Keras' masked recurrence, step by step (scripted by :func:`_scripted_loop`).
    ``inputs``/``mask`` already in processing order."""
    input_bias, recurrent_bias = _biases(kernel, bias)
    projected = torch.matmul(inputs, kernel) + input_bias
    previous = torch.zeros_like(h)
    outputs: list[Tensor] = []
    for t in range(inputs.shape[1]):
        keep = mask[:, t].unsqueeze(1)
        h_new, c_new = _step(
            projected[:, t], h, c, recurrent_kernel, recurrent_bias, kind, activation,
            recurrent_activation, reset_after,
        )  # fmt: skip
        h = torch.where(keep, h_new, h)
        c = torch.where(keep, c_new, c)
        if zero_output_for_mask:
            outputs.append(torch.where(keep, h_new, torch.zeros_like(h_new)))
        else:
            outputs.append(torch.where(keep, h_new, previous))
        previous = torch.where(keep, h_new, previous)
    return torch.stack(outputs, 1), h, c


def _while_loop(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    h: Tensor,
    c: Tensor,
    mask: Tensor,
    kind: int,
    activation: int,
    recurrent_activation: int,
    reset_after: bool,
    zero_output_for_mask: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_loop` as ``torch``'s ``while_loop`` (a higher-order op that ``torch.export``
    keeps over a symbolic number of steps and the dynamo ONNX exporter writes as an ONNX
    ``Loop``); it has no autograd in torch 2.13, so it serves the ONNX export only."""
    input_bias, recurrent_bias = _biases(kernel, bias)
    projected = (torch.matmul(inputs, kernel) + input_bias).transpose(0, 1)  # (T, N, G*u)
    keep_all = mask.transpose(0, 1).unsqueeze(2)  # (T, N, 1)
    steps = projected.shape[0]
    # while_loop refuses closure tensors that share storage: each gets its own.
    recurrent_kernel, recurrent_bias = recurrent_kernel.clone(), recurrent_bias.clone()

    def more(i: Tensor, *carried: Tensor) -> Tensor:
        return i < steps

    def body(
        index: Tensor, out: Tensor, h: Tensor, c: Tensor, previous: Tensor
    ) -> tuple[Tensor, ...]:
        t = int(index.item())  # an unbacked symbolic int while exporting
        torch._check(t >= 0)
        torch._check(t < steps)
        keep = keep_all[t]
        h_new, c_new = _step(
            projected[t], h, c, recurrent_kernel, recurrent_bias, kind, activation,
            recurrent_activation, reset_after,
        )  # fmt: skip
        shown = torch.zeros_like(h_new) if zero_output_for_mask else previous
        out = out.clone()
        out[t] = torch.where(keep, h_new, shown)
        return (
            index + 1,
            out,
            torch.where(keep, h_new, h),
            torch.where(keep, c_new, c),
            torch.where(keep, h_new, previous),
        )

    out = h.new_zeros(steps, *h.shape)
    start = torch.tensor(0, dtype=torch.int64)
    _, out, h, c, _ = while_loop(more, body, [start, out, h, c, torch.zeros_like(h)])
    return out.transpose(0, 1), h, c


_KIND_CODES = {"lstm": 0, "gru": 1, "simple_rnn": 2}
_SCRIPTED: dict[str, Any] = {}


def _scripted_loop() -> Any:
    """:func:`_loop` compiled by TorchScript, once, on the first traced call (not at import:
    torch 2.13 deprecates ``torch.jit.script`` and warns when it runs; the TorchScript ONNX
    exporter, deprecated with it, is what needs the loop)."""
    if "loop" not in _SCRIPTED:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated")
            _SCRIPTED["loop"] = torch.jit.script(_loop)
    return _SCRIPTED["loop"]


def masked_loop(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    states: list[Tensor],
    mask: Tensor | None,
    kind: str,
    activation: str,
    recurrent_activation: str | None,
    reset_after: bool,
    go_backwards: bool,
    zero_output_for_mask: bool,
    while_loop: bool = False,
) -> tuple[Tensor, list[Tensor]]:
    """The scripted loop (:func:`_loop`), or with ``while_loop`` torch's ``while_loop``
    (:func:`_while_loop`), with Keras' conventions: ``inputs (N, T, H_in)``, ``states``
    ``[h]`` or ``[h, c]`` each ``(N, u)``, ``mask (N, T)`` bool or None (every step valid), in
    input order. Returns ``(outputs (N, T, u) in processing order, final states)``."""
    for name, value in (("activation", activation), ("recurrent_activation", recurrent_activation)):
        if value is not None and not scripted_activation(value):
            raise ValueError(
                f"masked_loop: `{name}` must be one of {sorted(_SCRIPTED_ACTIVATIONS)} for a "
                f"traced call, received {value!r}."
            )
    if mask is None:
        mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=inputs.device)
    if go_backwards:
        inputs, mask = inputs.flip(1), mask.flip(1)
    h = states[0]
    c = states[1] if kind == "lstm" else torch.zeros_like(h)
    loop = _while_loop if while_loop else _scripted_loop()
    out, h, c = loop(
        inputs, kernel, recurrent_kernel, bias, h, c, mask, _KIND_CODES[kind],
        _SCRIPTED_ACTIVATIONS[activation],
        _SCRIPTED_ACTIVATIONS[recurrent_activation or "sigmoid"], reset_after,
        zero_output_for_mask,
    )  # fmt: skip
    return out, ([h, c] if kind == "lstm" else [h])
