"""Run a built-in recurrent layer's call on the fused or the no-cliff kernel.

:func:`rnnkit.kernels.dispatch.select` decides; these functions translate the layer (its
built-in cell's Keras-layout weights, ``go_backwards``, ``return_sequences``,
``zero_output_for_mask``) and the call (batch-major inputs ``(N, T, H_in)``, flat initial
states, each ``(N, u)``, a batch-major ``(N, T)`` mask, the training flag) into one call of
:mod:`rnnkit.kernels.fused` or :mod:`rnnkit.kernels.noclift`.

Dropout uses the cell's own masks, drawn in the generic loop's order (the input mask first,
shaped like one step's input ``(N, H_in)``, then the recurrent mask ``(N, u)``), so a seeded
layer gives the loop's results on every path. The input mask is shared over time, so it is
applied to the whole sequence before the kernel.

Both return ``(last_output (N, u), outputs (N, T, u) or None, final_states)``, the contract of
:func:`rnnkit.kernels.loop.run_loop`.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.kernels import fused, noclift

Tensor = torch.Tensor
Result = tuple[Tensor, Tensor | None, list[Tensor]]


def _dropped_inputs(cell: Any, sequences: Tensor, training: bool) -> Tensor:
    if training and cell.dropout > 0:
        return sequences * cell.get_dropout_mask(sequences[:, 0]).unsqueeze(1)
    return sequences


def _result(layer: Any, out: Tensor, final_states: list[Tensor]) -> Result:
    if layer.return_sequences:
        return out[:, -1], out, final_states
    return out, None, final_states


def run_fused(
    layer: Any, sequences: Tensor, states: list[Tensor], mask: Tensor | None, training: bool
) -> Result:
    """Run ``layer`` (LSTM / GRU ``reset_after=True`` / SimpleRNN tanh or relu, as accepted by
    :func:`rnnkit.kernels.fused.can_fuse`) on the fused ``torch._VF`` kernel."""
    from rnnkit.layers.rnn_cells import GRUCell, LSTMCell

    cell = layer.cell
    sequences = _dropped_inputs(cell, sequences, training)
    options = dict(
        mask=mask,
        go_backwards=layer.go_backwards,
        return_sequences=layer.return_sequences,
        zero_output_for_mask=layer.zero_output_for_mask,
    )
    weights = (sequences, cell.kernel, cell.recurrent_kernel, cell.bias)
    if isinstance(cell, LSTMCell):
        out, h, c = fused.lstm(*weights, states[0], states[1], **options)
        return _result(layer, out, [h, c])
    if isinstance(cell, GRUCell):
        out, h = fused.gru(*weights, states[0], **options)
        return _result(layer, out, [h])
    activation = fused.activation_name(cell.activation)
    out, h = fused.simple_rnn(*weights, states[0], activation=activation, **options)
    return _result(layer, out, [h])


# Under torch.compile the no-cliff kernel runs eagerly (one graph break): its autograd Function
# writes into preallocated step buffers (`out=`), which dynamo does not trace.
@torch.compiler.disable
def run_noclift(
    layer: Any, sequences: Tensor, states: list[Tensor], mask: Tensor | None, training: bool
) -> Result:
    """Run ``layer`` on the no-cliff kernel (any built-in elementwise activations, masks with
    holes, recurrent dropout, GRU ``reset_after=False``)."""
    device = sequences.device.type
    if torch.is_autocast_enabled(device):
        # Its step buffers and `out=` products need one dtype: compute in autocast's.
        with torch.autocast(device, enabled=False):
            low = torch.get_autocast_dtype(device)
            return _run_noclift_in(layer, sequences.to(low), [s.to(low) for s in states], mask,
                                   training, low)  # fmt: skip
    return _run_noclift_in(layer, sequences, states, mask, training, None)


def _run_noclift_in(
    layer: Any,
    sequences: Tensor,
    states: list[Tensor],
    mask: Tensor | None,
    training: bool,
    dtype: torch.dtype | None,
) -> Result:
    from rnnkit.layers.rnn_cells import GRUCell, LSTMCell

    cell = layer.cell
    sequences = _dropped_inputs(cell, sequences, training)
    recurrent_mask = None
    if training and cell.recurrent_dropout > 0:
        recurrent_mask = cell.get_recurrent_dropout_mask(states[0])
    options = dict(
        mask=mask,
        recurrent_dropout_mask=recurrent_mask,
        activation=cell.activation,
        go_backwards=layer.go_backwards,
        return_sequences=layer.return_sequences,
        zero_output_for_mask=layer.zero_output_for_mask,
    )
    weights = (sequences, cell.kernel, cell.recurrent_kernel, cell.bias)
    if dtype is not None:
        weights = tuple(w if w is None else w.to(dtype) for w in weights)
        if recurrent_mask is not None:
            options["recurrent_dropout_mask"] = recurrent_mask.to(dtype)
    if isinstance(cell, LSTMCell):
        out, h, c = noclift.lstm(
            *weights, states[0], states[1], recurrent_activation=cell.recurrent_activation,
            **options,
        )  # fmt: skip
        return _result(layer, out, [h, c])
    if isinstance(cell, GRUCell):
        out, h = noclift.gru(
            *weights, states[0], recurrent_activation=cell.recurrent_activation,
            reset_after=cell.reset_after, **options,
        )  # fmt: skip
        return _result(layer, out, [h])
    out, h = noclift.simple_rnn(*weights, states[0], **options)
    return _result(layer, out, [h])
