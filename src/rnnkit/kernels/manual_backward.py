"""The manual-backward kernel: a per-step recurrence with a hand-written backward, for every
configuration the fused ``_VF`` kernels cannot run.

Covers any (elementwise) activation and recurrent activation, masks with holes (carry-over
semantics), ``recurrent_dropout`` masks and GRU ``reset_after=False``, for LSTM, GRU and
SimpleRNN, with Keras weight layouts and Keras semantics (see :mod:`rnnkit.kernels.fused` for
the conventions on masks, ``go_backwards`` and outputs).

How it is fast. Recording a per-step autograd graph costs hundreds of small nodes per sequence;
instead:

1. the input projection ``x_t W + b`` for all steps is one matmul, left to autograd;
2. one ``torch.autograd.Function`` runs the recurrence: per step one matmul with the recurrent
   kernel (``addmm``) and the gate maths, every result written in place into preallocated
   buffers (no ``stack``), no graph recorded. When a gradient is needed, each step also
   writes the few factors its backward needs (activation derivatives from the activation
   outputs, products with the gates, the mask folded in) while its values are in cache;
3. the hand-written backward is then about six kernel calls per step (LSTM), and the
   recurrent-kernel gradient one matmul over all steps: ``dU = H_{prev}^T dZ`` with
   ``(T*B, u)`` and ``(T*B, G u)`` operands. Without a gradient (inference) nothing is saved
   and the buffers are one step long.

On the CPU the LSTM and GRU time loops run in C (:mod:`rnnkit.kernels.native`: the same maths,
layouts and backward, one BLAS call and one fused pass of gate maths per step) whenever
:func:`rnnkit.kernels.native.blocker` admits the call; the Python loop below runs the rest
(other devices, SimpleRNN, per-gate masks, other activations, autocast, tracing).

The measurements behind these choices (and the alternatives measured and rejected: factors
computed over the whole sequence, ``torch.compile``, a C++ extension) are in
``benchmarks/RESULTS.md``, section "The manual-backward kernel: design measurements".

Recurrent dropout masks (constant over time, as in Keras) come in two shapes: ``(batch, units)``
shared by every gate, or ``(gates, batch, units)`` with one mask per gate (Keras 3's
``implementation=1`` that ``recurrent_dropout`` forces: 4 masks for LSTM i,f,c,o, 3 for GRU
z,r,h); the per-gate form uses one batched matmul per step.

Input dropout masks (``dropout_mask``) likewise: ``(batch, features)`` for every gate or
``(gates, batch, features)``; they are applied in the input projection.

Activations must be elementwise (:func:`rnnkit.activations.is_elementwise`; ``softmax`` is
rejected). Known ones have closed-form derivatives; any other callable is differentiated with
autograd, step by step in the forward when a gradient is needed (LSTM, GRU; SimpleRNN's
backward takes its one derivative over all steps at once, a single pass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from rnnkit import activations
from rnnkit.kernels import manual_backward_cells as _cells
from rnnkit.kernels import native

Tensor = torch.Tensor
Activation = Callable[[Tensor], Tensor]


def _check(
    where: str, inputs: Tensor, kernel: Tensor, recurrent_kernel: Tensor, gates: int,
    states: list[Tensor], mask: Tensor | None, recurrent_dropout_mask: Tensor | None,
) -> None:  # fmt: skip
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3 or inputs.shape[1] == 0:
        raise ValueError(
            f"{where}: `inputs` must be a 3-D tensor (batch, time >= 1, features), received "
            f"{getattr(inputs, 'shape', type(inputs).__name__)}."
        )
    B, _, d = inputs.shape
    u = recurrent_kernel.shape[0]
    if tuple(recurrent_kernel.shape) != (u, gates * u):
        raise ValueError(
            f"{where}: `recurrent_kernel` must have shape (units, {gates} * units), received "
            f"{tuple(recurrent_kernel.shape)}."
        )
    if tuple(kernel.shape) != (d, gates * u):
        raise ValueError(
            f"{where}: `kernel` must have shape {(d, gates * u)}, received {tuple(kernel.shape)}."
        )
    for i, s in enumerate(states):
        if tuple(s.shape) != (B, u):
            raise ValueError(
                f"{where}: initial state {i} must have shape {(B, u)}, received {tuple(s.shape)}."
            )
    if mask is not None and tuple(mask.shape) != (B, inputs.shape[1]):
        raise ValueError(
            f"{where}: `mask` must have shape (batch, time) = {(B, inputs.shape[1])}, received "
            f"{tuple(mask.shape)}."
        )
    if recurrent_dropout_mask is not None and tuple(recurrent_dropout_mask.shape) not in (
        (B, u), (gates, B, u),
    ):  # fmt: skip
        raise ValueError(
            f"{where}: `recurrent_dropout_mask` must have shape {(B, u)} or {(gates, B, u)}, "
            f"received {tuple(recurrent_dropout_mask.shape)}."
        )


def _check_dropout(where: str, inputs: Tensor, gates: int, dropout_mask: Tensor | None) -> None:
    if dropout_mask is None:
        return
    B, d = inputs.shape[0], inputs.shape[2]
    allowed = [(B, d)] + ([(gates, B, d)] if gates > 1 else [])
    if tuple(dropout_mask.shape) not in allowed:
        raise ValueError(
            f"{where}: `dropout_mask` must have shape {' or '.join(map(str, allowed))}, "
            f"received {tuple(dropout_mask.shape)}."
        )


def _act(identifier: Any, argument: str, where: str) -> Activation:
    fn = activations.get(identifier, argument)
    found = activations.info(fn)
    if found is not None and not found.elementwise:
        raise ValueError(
            f"{where}: `{argument}` must be an elementwise activation, received {identifier!r}."
        )
    return fn


def _project(x: Tensor, kernel: Tensor, bias: Tensor | None, dropout_mask: Tensor | None) -> Tensor:
    """Input projection for all steps: ``(T, B, d) -> (T, B, G u)``, one (batched) matmul.

    ``dropout_mask`` ``(B, d)`` multiplies every step's input; ``(G, B, d)`` gives each gate
    its own masked input (Keras' ``implementation=1``), one batched matmul over the gates.
    """
    T, B, d = x.shape
    if dropout_mask is not None and dropout_mask.dim() == 3:
        G = dropout_mask.shape[0]
        xg = (x.unsqueeze(0) * dropout_mask.unsqueeze(1)).reshape(G, T * B, d)
        xp = torch.bmm(xg, kernel.view(d, G, -1).transpose(0, 1)).permute(1, 0, 2)
        xp = xp.reshape(T, B, -1)
        return xp if bias is None else xp + bias
    if dropout_mask is not None:
        x = x * dropout_mask
    flat = x.reshape(T * B, d)
    xp = flat @ kernel if bias is None else torch.addmm(bias, flat, kernel)
    return xp.view(T, B, -1)


def _run(
    cell: Any, inputs: Tensor, kernel: Tensor, input_bias: Tensor | None, U: Tensor,
    b_rec: Tensor | None, states: list[Tensor], mask: Tensor | None, rd_mask: Tensor | None,
    go_backwards: bool, return_sequences: bool, zero_output_for_mask: bool,
    dropout_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, list[Tensor]]:  # fmt: skip
    x = inputs.transpose(0, 1)
    if go_backwards:
        x = x.flip(0)
    if dropout_mask is not None:
        dropout_mask = dropout_mask.to(x.dtype)
    xp = _project(x, kernel, input_bias, dropout_mask)
    m = None
    if mask is not None:
        mask = mask if mask.dtype == torch.bool else mask != 0
        m = (mask.flip(1) if go_backwards else mask).t().unsqueeze(-1)
        if rd_mask is not None:
            rd_mask = rd_mask.to(xp.dtype)
    elif rd_mask is not None:
        rd_mask = rd_mask.to(xp.dtype)
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (xp, U, b_rec, *states)
    )
    Hs, *finals = _cells.Recurrence.apply(cell, need_grad, xp, U, b_rec, m, rd_mask, *states)
    out = Hs if return_sequences else Hs[-1]
    if m is not None:  # zeros at masked steps, or before the first valid step
        if zero_output_for_mask:
            keep = m if return_sequences else m[-1]
        else:
            keep = m.any(0) if not return_sequences else m.to(torch.int32).cumsum(0) > 0
        out = out * keep.to(Hs.dtype)
    outputs = out.transpose(0, 1) if return_sequences else out
    return outputs, Hs[-1], finals


def lstm(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    mask: Tensor | None = None,
    recurrent_dropout_mask: Tensor | None = None,
    dropout_mask: Tensor | None = None,
    activation: Any = "tanh",
    recurrent_activation: Any = "sigmoid",
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Keras LSTM with any activations, masks with holes and recurrent dropout.

    ``inputs (B, T, d)``, ``kernel (d, 4u)`` (gates i,f,c,o), ``recurrent_kernel (u, 4u)``,
    ``bias (4u,)`` or ``None``, ``h0``/``c0 (B, u)``, ``mask (B, T)`` bool (any pattern),
    ``recurrent_dropout_mask`` ``(B, u)`` or ``(4, B, u)`` (already scaled by ``1/(1-rate)``),
    ``dropout_mask`` ``(B, d)`` or ``(4, B, d)`` on the inputs (``x_g = x * dropout_mask_g``).
    With ``h'_g = h_{t-1} * mask_g`` and ``a``/``σ`` the activation / recurrent activation::

        i = σ(x W_i + h'_i U_i + b_i)   f = σ(...)   o = σ(...)   g = a(x W_c + h'_c U_c + b_c)
        c_t = f c_{t-1} + i g          h_t = o a(c_t)

    Returns ``(outputs, h_n, c_n)``; outputs ``(B, T, u)`` or ``(B, u)``.
    """
    where = "manual_backward.lstm"
    _check(where, inputs, kernel, recurrent_kernel, 4, [h0, c0], mask, recurrent_dropout_mask)
    _check_dropout(where, inputs, 4, dropout_mask)
    act = _act(activation, "activation", where)
    rec_act = _act(recurrent_activation, "recurrent_activation", where)
    native_blocker = native.blocker(
        "lstm", act, rec_act, inputs.device, inputs.dtype, recurrent_dropout_mask,
        (inputs, kernel, recurrent_kernel, bias, h0, c0, recurrent_dropout_mask, dropout_mask),
    )  # fmt: skip
    cell = _cells.LSTM(act, rec_act) if native_blocker else native.LSTM(act, rec_act)
    out, h, (c,) = _run(
        cell, inputs, kernel, bias, recurrent_kernel, None, [h0, c0], mask,
        recurrent_dropout_mask, go_backwards, return_sequences, zero_output_for_mask, dropout_mask,
    )  # fmt: skip
    return out, h, c


def gru(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    h0: Tensor,
    mask: Tensor | None = None,
    recurrent_dropout_mask: Tensor | None = None,
    dropout_mask: Tensor | None = None,
    activation: Any = "tanh",
    recurrent_activation: Any = "sigmoid",
    reset_after: bool = True,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
) -> tuple[Tensor, Tensor]:
    """Keras GRU with any activations, masks with holes, recurrent dropout, both conventions.

    ``kernel (d, 3u)`` gates z,r,h; ``recurrent_kernel (u, 3u)``; ``bias (2, 3u)`` (input row,
    recurrent row) when ``reset_after`` else ``(3u,)``; ``recurrent_dropout_mask`` ``(B, u)``
    or ``(3, B, u)``; ``dropout_mask`` ``(B, d)`` or ``(3, B, d)``. With
    ``h'_g = h_{t-1} * mask_g`` (and ``x`` likewise masked per gate)::

        z = σ(x W_z + b_z + h'_z U_z (+ b'_z))      r = σ(x W_r + b_r + h'_r U_r (+ b'_r))
        reset_after:      hh = a(x W_h + b_h + r * (h'_h U_h + b'_h))
        not reset_after:  hh = a(x W_h + b_h + (r * h'_h) U_h)
        h_t = z h_{t-1} + (1 - z) hh

    Returns ``(outputs, h_n)``.
    """
    where = "manual_backward.gru"
    _check(where, inputs, kernel, recurrent_kernel, 3, [h0], mask, recurrent_dropout_mask)
    _check_dropout(where, inputs, 3, dropout_mask)
    u = recurrent_kernel.shape[0]
    input_bias = rec_bias = None
    if bias is not None:
        expected = (2, 3 * u) if reset_after else (3 * u,)
        if tuple(bias.shape) != expected:
            raise ValueError(
                f"{where}: `bias` must have shape {expected} with reset_after={reset_after}, "
                f"received {tuple(bias.shape)}."
            )
        input_bias, rec_bias = (bias[0], bias[1]) if reset_after else (bias, None)
    act = _act(activation, "activation", where)
    rec_act = _act(recurrent_activation, "recurrent_activation", where)
    native_blocker = native.blocker(
        "gru", act, rec_act, inputs.device, inputs.dtype, recurrent_dropout_mask,
        (inputs, kernel, recurrent_kernel, bias, h0, recurrent_dropout_mask, dropout_mask),
    )  # fmt: skip
    maths = _cells.GRU if native_blocker else native.GRU
    cell = maths(act, rec_act, reset_after)
    out, h, _ = _run(
        cell, inputs, kernel, input_bias, recurrent_kernel, rec_bias, [h0], mask,
        recurrent_dropout_mask, go_backwards, return_sequences, zero_output_for_mask, dropout_mask,
    )  # fmt: skip
    return out, h


def simple_rnn(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    h0: Tensor,
    mask: Tensor | None = None,
    recurrent_dropout_mask: Tensor | None = None,
    dropout_mask: Tensor | None = None,
    activation: Any = "tanh",
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
) -> tuple[Tensor, Tensor]:
    """Keras SimpleRNN ``h_t = a(x_t W + b + (h_{t-1} * mask) U)`` with any activation.

    ``kernel (d, u)``, ``recurrent_kernel (u, u)``, ``bias (u,)``, ``recurrent_dropout_mask
    (B, u)``, ``dropout_mask (B, d)``. Returns ``(outputs, h_n)``.
    """
    where = "manual_backward.simple_rnn"
    _check(where, inputs, kernel, recurrent_kernel, 1, [h0], mask, recurrent_dropout_mask)
    _check_dropout(where, inputs, 1, dropout_mask)
    cell = _cells.SimpleRNN(_act(activation, "activation", where))
    out, h, _ = _run(
        cell, inputs, kernel, bias, recurrent_kernel, None, [h0], mask, recurrent_dropout_mask,
        go_backwards, return_sequences, zero_output_for_mask, dropout_mask,
    )  # fmt: skip
    return out, h


def can_run(config: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the manual-backward kernel runs a configuration (same ``config`` keys as
    :func:`rnnkit.kernels.fused.can_fuse`); it takes any mask and device."""
    cell = config.get("cell")
    if cell not in ("lstm", "gru", "simple_rnn"):
        return False, f"cell {cell!r} has no manual-backward kernel"
    for key in ("activation", "recurrent_activation"):
        ident = config.get(key)
        if ident is None:
            continue
        found = activations.info(ident)
        if found is not None and not found.elementwise:
            return False, f"{key} {ident!r} is not elementwise"
    return True, ""
