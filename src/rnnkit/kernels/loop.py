"""The generic time loop: run any cell step over a batch of sequences.

This is the oracle every fused kernel is compared with. Legend: ``N`` batch, ``T`` timesteps.

Semantics (Keras'):

- ``go_backwards`` processes steps ``T-1, ..., 0``; the output sequence is in processing
  order (so it comes out reversed).
- ``mask`` ``(N, T)`` bool: at a masked step every state keeps its previous value and the
  output repeats the previous (masked) output, or zeros when ``zero_output_for_mask``; before
  the first unmasked step the "previous output" is zeros. The last output is the last element
  of the output sequence, so it follows the same rules.

PyTorch runs eagerly, so there is no symbolic loop to unroll: ``unroll=True`` on a layer runs
this same loop and gives identical results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit import tree

Tensor = torch.Tensor
Step = Callable[[Any, Any], tuple[Any, Any]]


def _expand(mask_t: Tensor, like: Tensor) -> Tensor:
    """``(N,)`` bool mask viewed as ``(N, 1, ..., 1)`` to broadcast against ``like``."""
    return mask_t.view(mask_t.shape[0], *([1] * (like.dim() - 1)))


def run_loop(
    step: Step,
    inputs: Any,
    initial_states: Any,
    mask: Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_sequences: bool = True,
) -> tuple[Any, Any, Any]:
    """Step ``step(input_t, states) -> (output_t, new_states)`` over time.

    Args:
        step: one time step; ``input_t`` is nested like ``inputs`` with the time axis removed,
            ``states`` is nested like ``initial_states``.
        inputs: a tensor or nested structure of tensors, each ``(N, T, ...)`` (batch-major).
        initial_states: a nested structure of ``(N, ...)`` tensors; new states returned by
            ``step`` are repacked into this structure (their leaf count must match).
        mask: ``(N, T)`` bool tensor or None.
        go_backwards: process the steps in reverse order.
        zero_output_for_mask: masked steps output zeros instead of the previous output.
        return_sequences: also collect the output sequence.

    Returns:
        ``(last_output, outputs, final_states)``: the last output (nested like the cell's
        output, each ``(N, ...)``), the output sequence (each ``(N, T, ...)``, in processing
        order; None unless ``return_sequences``), and the final states.
    """
    flat_inputs = tree.flatten(inputs)
    nested_inputs = tree.is_nested(inputs)
    timesteps = flat_inputs[0].shape[1]
    per_step = [x.unbind(1) for x in flat_inputs]
    mask_steps = mask.unbind(1) if mask is not None else None
    order = range(timesteps - 1, -1, -1) if go_backwards else range(timesteps)

    states = initial_states
    flat_states = tree.flatten(states)
    collected: list[list[Tensor]] | None = None
    flat_output: list[Tensor] = []
    output: Any = None
    for t in order:
        if nested_inputs:
            x_t = tree.pack_sequence_as(inputs, [s[t] for s in per_step])
        else:
            x_t = per_step[0][t]
        output, new_states = step(x_t, states)
        flat_new = tree.flatten(new_states)
        if len(flat_new) != len(flat_states):
            raise ValueError(
                f"the cell returned {len(flat_new)} state tensor(s), expected "
                f"{len(flat_states)} (one per entry of its state_size)"
            )
        new_flat_output = tree.flatten(output)
        if mask_steps is not None:
            m = mask_steps[t]
            if zero_output_for_mask or not flat_output:
                fallback = [torch.zeros_like(o) for o in new_flat_output]
            else:
                fallback = flat_output
            new_flat_output = [
                torch.where(_expand(m, o), o, f) for o, f in zip(new_flat_output, fallback)
            ]
            flat_new = [torch.where(_expand(m, s), s, p) for s, p in zip(flat_new, flat_states)]
        flat_output = new_flat_output
        flat_states = flat_new
        states = tree.pack_sequence_as(initial_states, flat_states)
        if return_sequences:
            if collected is None:
                collected = [[] for _ in flat_output]
            for store, o in zip(collected, flat_output):
                store.append(o)

    last_output = tree.pack_sequence_as(output, flat_output)
    outputs = None
    if return_sequences and collected is not None:
        outputs = tree.pack_sequence_as(output, [torch.stack(c, dim=1) for c in collected])
    return last_output, outputs, states
