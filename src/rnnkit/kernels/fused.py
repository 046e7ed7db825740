"""Fused recurrent kernels: ``torch._VF.lstm/gru/rnn_tanh/rnn_relu`` with Keras semantics.

The same ``_VF`` entry points run cuDNN on CUDA and oneDNN (``nn.LSTM``'s CPU kernel) or
ATen's C++ loop on CPU. These functions take Keras-layout weights (mapped in
:mod:`rnnkit.kernels.weights`) and give exactly what the generic loop gives:

* inputs batch-major ``(batch, time, features)``; states ``(batch, units)``;
* ``go_backwards``: the sequence (and mask) is reversed first and the outputs come back in
  processing order, as in Keras;
* masks: every row's valid steps must form one run (right padding, left padding or both, see
  :mod:`rnnkit.kernels.masks`). The run is packed with its length; the output at a masked step
  is the previous output (zeros before the first valid step), or zeros everywhere masked with
  ``zero_output_for_mask``; the final states are those after each row's last valid step. (The
  raw cuDNN/packed kernel returns zeros at padded steps; we repeat the last output to match
  the generic loop.) A row with no valid step returns zero outputs and its initial states.

Which configurations qualify is answered by :func:`can_fuse`.

Example::

    >>> x = torch.randn(2, 5, 3)
    >>> k, rk, b = torch.randn(3, 16), torch.randn(4, 16), torch.zeros(16)
    >>> out, h, c = lstm(x, k, rk, b, torch.zeros(2, 4), torch.zeros(2, 4))
    >>> out.shape, h.shape
    (torch.Size([2, 5, 4]), torch.Size([2, 4]))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import activations
from rnnkit._eager import eager
from rnnkit.kernels import masks as _masks
from rnnkit.kernels import weights as _weights

Tensor = torch.Tensor

_KINDS = ("lstm", "gru", "simple_rnn")

# torch._VF resolves each attribute through a Python module __getattr__ (a few microseconds per
# call, which a one-step streaming call notices): the four kernels, looked up once.
_VF_KERNELS: dict[str, Callable[..., Any]] = {
    mode: getattr(_VF, mode) for mode in ("lstm", "gru", "rnn_tanh", "rnn_relu")
}
_VF_LSTM = _VF_KERNELS["lstm"]


def _check_inputs(inputs: Tensor, states: list[Tensor], units: int, where: str) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        raise ValueError(
            f"{where}: `inputs` must be a 3-D tensor (batch, time, features), received "
            f"{getattr(inputs, 'shape', type(inputs).__name__)}."
        )
    if not inputs.is_floating_point():
        raise TypeError(f"{where}: `inputs` must be floating point, received {inputs.dtype}.")
    if inputs.shape[1] == 0:
        raise ValueError(f"{where}: `inputs` must have at least one time step, received 0.")
    for i, s in enumerate(states):
        if tuple(s.shape) != (inputs.shape[0], units):
            raise ValueError(
                f"{where}: initial state {i} must have shape (batch, units) = "
                f"{(inputs.shape[0], units)}, received {tuple(s.shape)}."
            )


# cuDNN warns at every call whose weights are not views into one flat buffer laid out as
# ``nn.LSTM.flatten_parameters()`` makes it. Ours are mapped from the Keras-layout parameters
# at each call (transposed views; GRU gate blocks concatenated), so cuDNN copies them into its
# buffer, which is the cost this warning announces and which we accept (not measured: no GPU
# was available). Only that message is silenced, only around the cuDNN call.
_CUDNN_WEIGHT_WARNING = "RNN module weights are not part of single contiguous chunk of memory"


def _call_vf(fn: Callable[..., Any], inputs: Tensor, *args: Any) -> Any:
    """``fn(inputs, *args)``; on CUDA without cuDNN's per-call weight-layout warning.

    Under ``torch.compile`` the call is traced (torch decomposes it into its oneDNN layer op
    or a per-step loop), except an LSTM while autograd records: torch 2.13's decomposition
    picks ``mkldnn_rnn_layer`` for it, which has no autograd support there ("expected Tensor()
    for op: torch.ops.aten.mkldnn_rnn_layer.default"), so that call runs eagerly between two
    compiled graphs, as ``nn.LSTM``'s does (dynamo does not trace ``nn.LSTM``)."""
    if fn is _VF_LSTM and torch.compiler.is_compiling() and torch.is_grad_enabled():
        return _call_vf_eagerly(fn, inputs, *args)
    if inputs.device.type != "cuda":
        return fn(inputs, *args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CUDNN_WEIGHT_WARNING)
        return fn(inputs, *args)


@eager
def _call_vf_eagerly(fn: Callable[..., Any], inputs: Tensor, *args: Any) -> Any:
    return _call_vf(fn, inputs, *args)


def _run(
    mode: str,
    inputs: Tensor,
    params: list[Tensor],
    states: list[Tensor],
    mask: Tensor | None,
    go_backwards: bool,
    return_sequences: bool,
    zero_output_for_mask: bool,
    where: str,
    mask_info: _masks.MaskInfo | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Run one ``_VF`` kernel with Keras masking semantics; returns (outputs, final states).

    ``mask_info``: the analysis of ``mask`` in processing order, when the caller has it."""
    if mask is None and (mask_info is None or mask_info.kind == "none"):
        # The common call, straight to one _VF call (no mask analysis or packing): a few
        # microseconds less per call, which a one-step streaming call notices.
        if go_backwards:
            inputs = inputs.flip(1)
        hx: Any = states[0].unsqueeze(0)
        if mode == "lstm":
            hx = (hx, states[1].unsqueeze(0))
        result = _call_vf(
            _VF_KERNELS[mode], inputs, hx, params, len(params) == 4, 1, 0.0, False, False, True
        )
        y = result[0]
        return (y if return_sequences else y[:, -1]), [f.squeeze(0) for f in result[1:]]
    info = _given_info(mask_info, where) or _mask_info(mask, inputs, where, flip=go_backwards)
    if go_backwards:
        inputs = inputs.flip(1)
    y, finals = _run_vf(mode, inputs, info, params, [s.unsqueeze(0) for s in states], False)
    if info.kind != "none":
        assert info.starts is not None and info.lengths is not None
        y = _masks.from_front(y, info.starts, info.lengths, zero_output_for_mask)
    return (y if return_sequences else y[:, -1]), [f.squeeze(0) for f in finals]


def _given_info(info: _masks.MaskInfo | None, where: str) -> _masks.MaskInfo | None:
    """A caller's analysis of the mask, checked to be one the fused kernel runs."""
    if info is not None and not info.fusable:
        raise ValueError(
            f"{where}: the fused kernel needs each row's valid steps to form one run (right or "
            "left padding); received a mask with holes."
        )
    return info


def _mask_info(
    mask: Tensor | None, inputs: Tensor, where: str, flip: bool = False
) -> _masks.MaskInfo:
    """The analysis of the checked mask, reversed in time first with ``flip``; ``ValueError``
    for a mask the fused kernel cannot run."""
    if mask is not None:
        mask = _masks.check_mask(mask, inputs, where)
        mask = mask.flip(1) if flip else mask
    info = _masks.analyze_mask(mask)
    if not info.fusable:
        raise ValueError(
            f"{where}: the fused kernel needs each row's valid steps to form one run (right or "
            "left padding); received a mask with holes. Use the generic loop or the manual-backward "
            "kernel (rnnkit.kernels.manual_backward)."
        )
    return info


def _run_vf(
    mode: str,
    inputs: Tensor,
    info: _masks.MaskInfo,
    params: list[Tensor],
    hx_list: list[Tensor],
    bidirectional: bool,
) -> tuple[Tensor, list[Tensor]]:
    """One ``_VF`` call on ``inputs (B, T, d)`` from the states ``hx_list`` (``[h]`` or
    ``[h, c]``, each ``(D, B, u)``, ``D = 2`` when ``bidirectional``).

    Returns the outputs ``(B, T, D*u)`` and the final states ``(D, B, u)``. With a mask
    (``info``, one run of valid steps per row) the rows run packed: each row's outputs come
    back moved to the front (zeros after its run; :func:`rnnkit.kernels.masks.from_front`
    puts them back in place) and a row with no valid step keeps its initial states.
    """
    fn = _VF_KERNELS[mode]
    has_biases = len(params) == (8 if bidirectional else 4)

    def hx_of(states: list[Tensor]) -> Any:
        return tuple(states) if mode == "lstm" else states[0]

    if info.kind == "none":
        result = _call_vf(
            fn, inputs, hx_of(hx_list), params, has_biases, 1, 0.0, False, bidirectional, True
        )
        return result[0], list(result[1:])
    assert info.starts is not None and info.lengths is not None
    lengths = info.lengths
    x = inputs if info.kind == "right" else _masks.to_front(inputs, info.starts)
    packed = pack_padded_sequence(
        x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
    )
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    assert order is not None and unorder is not None  # enforce_sorted=False sets both
    hx = hx_of([s.index_select(1, order) for s in hx_list])
    result = _call_vf(
        fn, packed.data, packed.batch_sizes, hx, params, has_biases, 1, 0.0, False, bidirectional
    )
    y, _ = pad_packed_sequence(
        PackedSequence(result[0], packed.batch_sizes, order, unorder),
        batch_first=True,
        total_length=inputs.shape[1],
    )
    empty = (lengths == 0).view(1, -1, 1)
    finals = [
        torch.where(empty, s0, r.index_select(1, unorder)) for s0, r in zip(hx_list, result[1:])
    ]
    return y, finals


def lstm(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    mask: Tensor | None = None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    mask_info: _masks.MaskInfo | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fused Keras LSTM (tanh / sigmoid activations).

    ``inputs (B, T, d)``, ``kernel (d, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)`` or
    ``None``, ``h0``/``c0 (B, u)``, ``mask (B, T)`` bool or ``None``. Per step, with gates
    ``[i, f, g, o] = x_t W + h_{t-1} U + b``::

        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);  h_t = sigmoid(o) * tanh(c_t)

    Returns ``(outputs, h_n, c_n)``: outputs ``(B, T, u)`` (or ``(B, u)`` when not
    ``return_sequences``), final states ``(B, u)``. ``mask_info`` (all three kernels): the
    caller's analysis of ``mask`` in processing order (reversed with ``go_backwards``), so that
    the mask is not analysed again.
    """
    params = _weights.lstm_weights(kernel, recurrent_kernel, bias)
    _check_inputs(inputs, [h0, c0], recurrent_kernel.shape[0], "fused.lstm")
    out, (h, c) = _run(
        "lstm", inputs, params, [h0, c0], mask, go_backwards, return_sequences,
        zero_output_for_mask, "fused.lstm", mask_info,
    )  # fmt: skip
    return out, h, c


def gru(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    h0: Tensor,
    mask: Tensor | None = None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    mask_info: _masks.MaskInfo | None = None,
) -> tuple[Tensor, Tensor]:
    """Fused Keras GRU with ``reset_after=True`` (tanh / sigmoid activations).

    ``kernel (d, 3u)`` gates z,r,h; ``recurrent_kernel (u, 3u)``; ``bias (2, 3u)`` (input row,
    recurrent row) or ``None``. Per step::

        z = sigmoid(x W_z + b_z + h U_z + b'_z);  r = sigmoid(x W_r + b_r + h U_r + b'_r)
        hh = tanh(x W_h + b_h + r * (h U_h + b'_h));  h_t = z * h_{t-1} + (1 - z) * hh

    Returns ``(outputs, h_n)``.
    """
    params = _weights.gru_weights(kernel, recurrent_kernel, bias)
    _check_inputs(inputs, [h0], recurrent_kernel.shape[0], "fused.gru")
    out, (h,) = _run(
        "gru", inputs, params, [h0], mask, go_backwards, return_sequences,
        zero_output_for_mask, "fused.gru", mask_info,
    )  # fmt: skip
    return out, h


def simple_rnn(
    inputs: Tensor,
    kernel: Tensor,
    recurrent_kernel: Tensor,
    bias: Tensor | None,
    h0: Tensor,
    mask: Tensor | None = None,
    activation: str = "tanh",
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    mask_info: _masks.MaskInfo | None = None,
) -> tuple[Tensor, Tensor]:
    """Fused Keras SimpleRNN: ``h_t = activation(x_t W + h_{t-1} U + b)``, activation
    ``"tanh"`` or ``"relu"``. ``kernel (d, u)``, ``recurrent_kernel (u, u)``, ``bias (u,)``.

    Returns ``(outputs, h_n)``.
    """
    if activation not in ("tanh", "relu"):
        raise ValueError(
            f"fused.simple_rnn: `activation` must be 'tanh' or 'relu', received {activation!r}."
        )
    params = _weights.simple_rnn_weights(kernel, recurrent_kernel, bias)
    _check_inputs(inputs, [h0], recurrent_kernel.shape[0], "fused.simple_rnn")
    out, (h,) = _run(
        f"rnn_{activation}", inputs, params, [h0], mask, go_backwards, return_sequences,
        zero_output_for_mask, "fused.simple_rnn", mask_info,
    )  # fmt: skip
    return out, h


_WEIGHT_MAPS = {
    "lstm": _weights.lstm_weights,
    "gru": _weights.gru_weights,
    "simple_rnn": _weights.simple_rnn_weights,
}


def bidirectional(
    cell: str,
    inputs: Tensor,
    forward_weights: tuple[Tensor, Tensor, Tensor | None],
    backward_weights: tuple[Tensor, Tensor, Tensor | None],
    forward_states: list[Tensor],
    backward_states: list[Tensor],
    mask: Tensor | None = None,
    return_sequences: bool = True,
    activation: str = "tanh",
    mask_info: _masks.MaskInfo | None = None,
) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor]]:
    """Both directions of a Keras ``Bidirectional`` RNN in one ``_VF`` call.

    ``cell``: ``"lstm"``, ``"gru"`` (``reset_after=True``) or ``"simple_rnn"`` (``activation``
    ``"tanh"``/``"relu"``). ``forward_weights``/``backward_weights``: each layer's Keras
    ``(kernel, recurrent_kernel, bias or None)`` (both with or both without bias).
    ``*_states``: ``[h0]`` or ``[h0, c0]`` per direction, ``(B, u)`` each.

    Keras semantics: the backward layer runs on the reversed sequence and, with
    ``return_sequences``, its outputs are reversed back so that both align in time; the
    ``Bidirectional`` wrapper sets ``zero_output_for_mask = return_sequences``, so masked steps
    give zeros. Without ``return_sequences`` each direction's output is its last processed
    output (zeros for a row with no valid step). The outputs are returned unmerged.

    ``mask_info``: the caller's analysis of ``mask`` (in input order), not repeated here.

    Returns ``(forward_output, backward_output, forward_final_states, backward_final_states)``.
    """
    where = "fused.bidirectional"
    if cell not in _WEIGHT_MAPS:
        raise ValueError(f"{where}: `cell` must be one of {_KINDS}, received {cell!r}.")
    if cell == "simple_rnn" and activation not in ("tanh", "relu"):
        raise ValueError(
            f"{where}: `activation` must be 'tanh' or 'relu', received {activation!r}."
        )
    if (forward_weights[2] is None) != (backward_weights[2] is None):
        raise ValueError(f"{where}: both directions must have a bias, or neither.")
    params = _WEIGHT_MAPS[cell](*forward_weights) + _WEIGHT_MAPS[cell](*backward_weights)
    units = forward_weights[1].shape[0]
    _check_inputs(inputs, [*forward_states, *backward_states], units, where)
    mode = cell if cell != "simple_rnn" else f"rnn_{activation}"
    hx_list = [torch.stack([f, b]) for f, b in zip(forward_states, backward_states)]
    info = _given_info(mask_info, where) or _mask_info(mask, inputs, where)
    y, finals = _run_vf(mode, inputs, info, params, hx_list, True)
    if info.kind != "none":
        assert info.starts is not None and info.lengths is not None
        y = _masks.from_front(y, info.starts, info.lengths, zero_output_for_mask=True)
    f_states = [s[0] for s in finals]
    b_states = [s[1] for s in finals]
    if return_sequences:
        return y[..., :units], y[..., units:], f_states, b_states
    # Last processed output of each direction: its final hidden state, zeros for empty rows.
    alive = torch.ones(inputs.shape[0], 1, dtype=inputs.dtype, device=inputs.device)
    if info.lengths is not None:
        alive = (info.lengths > 0).to(inputs.dtype).unsqueeze(1)
    return f_states[0] * alive, b_states[0] * alive, f_states, b_states


_FUSED_ACTIVATIONS = ("tanh", "sigmoid", "relu")


def activation_name(identifier: Any) -> str | None:
    """``"tanh"``, ``"sigmoid"`` or ``"relu"`` when ``identifier`` is that activation (its
    name, rnnkit's function or the plain torch function, per :data:`rnnkit.activations.
    ACTIVATIONS`), else ``None``."""
    found = activations.info(identifier, torch_native=True)
    return found.name if found is not None and found.name in _FUSED_ACTIVATIONS else None


def can_fuse(
    config: Mapping[str, Any], mask: Tensor | _masks.MaskInfo | None, device: torch.device | str
) -> tuple[bool, str]:
    """Whether the fused ``_VF`` kernel can run a call, and why not.

    ``config`` keys: ``"cell"`` (``"lstm"``, ``"gru"`` or ``"simple_rnn"``), ``"activation"``,
    ``"recurrent_activation"`` (LSTM/GRU), ``"recurrent_dropout"`` and ``"training"`` (recurrent
    dropout only counts when training, default ``True``), ``"reset_after"`` (GRU). ``use_bias``
    and input ``dropout`` never block (zero biases; input dropout is one mask over time applied
    before the kernel), nor do ``go_backwards``, ``return_sequences``, statefulness.
    ``mask``: the ``(batch, time)`` mask (before or after a ``go_backwards`` reversal: reversing
    keeps one run one run), a :class:`~rnnkit.kernels.masks.MaskInfo`, or ``None``; reading a
    mask's values costs one device synchronisation on CUDA.
    ``device``: CPU (oneDNN / ATen) and CUDA (cuDNN) qualify.

    Returns ``(True, "")`` or ``(False, reason)``.
    """
    cell = config.get("cell")
    if cell not in _KINDS:
        return False, f"cell {cell!r} has no fused kernel (expected one of {_KINDS})"
    dev = torch.device(device)
    if dev.type not in ("cpu", "cuda"):
        return False, f"device type {dev.type!r} has no fused RNN kernel (cpu and cuda do)"
    act = activation_name(config.get("activation", "tanh"))
    if cell == "simple_rnn":
        if act not in ("tanh", "relu"):
            return False, f"SimpleRNN activation {config.get('activation')!r} is not tanh or relu"
    else:
        if act != "tanh":
            return False, f"activation {config.get('activation')!r} is not tanh"
        rec = activation_name(config.get("recurrent_activation", "sigmoid"))
        if rec != "sigmoid":
            return False, (
                f"recurrent_activation {config.get('recurrent_activation')!r} is not sigmoid"
            )
    if cell == "gru" and not config.get("reset_after", True):
        return False, "GRU reset_after=False has no fused kernel (cuDNN/oneDNN use reset_after)"
    if config.get("recurrent_dropout", 0.0) > 0.0 and config.get("training", True):
        return False, "recurrent_dropout > 0 in training changes the recurrence at every step"
    if isinstance(mask, torch.Tensor):
        mask = _masks.analyze_mask(mask if mask.dtype == torch.bool else mask != 0)
    if mask is not None and not mask.fusable:
        return False, "the mask has holes (a row's valid steps are not one contiguous run)"
    return True, ""
