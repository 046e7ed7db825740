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

Two entry points:

- :func:`run_loop` steps any cell (any nested inputs, states and outputs);
- :func:`run_projected_loop` is the lean loop for the built-in cells: their input projection
  ``x W + b`` is computed for all steps in one matmul before the loop (``cell.input_projection``)
  and each step only does the recurrent half (``cell.step_from_projection``), with flat state
  lists and no per-step structure handling. It gives the results of :func:`run_loop` over
  ``cell.call`` up to float rounding (one large matmul instead of ``T`` small ones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit import tree

Tensor = torch.Tensor
Step = Callable[[Any, Any], tuple[Any, Any]]
FlatStep = Callable[[Tensor, list[Tensor]], tuple[Tensor, list[Tensor]]]


def _expand(mask_t: Tensor, like: Tensor) -> Tensor:
    """``(N,)`` bool mask viewed as ``(N, 1, ..., 1)`` to broadcast against ``like``."""
    return mask_t.view(mask_t.shape[0], *([1] * (like.dim() - 1)))


def _is_flat_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(s, Tensor) for s in x)


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
    # A flat list of tensors needs no repacking at every step.
    flat_list = _is_flat_list(initial_states)
    collected: list[list[Tensor]] | None = None
    flat_output: list[Tensor] = []
    output: Any = None
    for t in order:
        if nested_inputs:
            x_t = tree.pack_sequence_as(inputs, [s[t] for s in per_step])
        else:
            x_t = per_step[0][t]
        output, new_states = step(x_t, states)
        flat_new = new_states if _is_flat_list(new_states) else tree.flatten(new_states)
        if len(flat_new) != len(flat_states):
            raise ValueError(
                f"the cell returned {len(flat_new)} state tensor(s), expected "
                f"{len(flat_states)} (one per entry of its state_size)"
            )
        new_flat_output = [output] if isinstance(output, Tensor) else tree.flatten(output)
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
        states = flat_states if flat_list else tree.pack_sequence_as(initial_states, flat_states)
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


def run_projected_loop(
    step: FlatStep,
    projected: Tensor,
    initial_states: list[Tensor],
    mask: Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_sequences: bool = True,
) -> tuple[Tensor, Tensor | None, list[Tensor]]:
    """The lean loop: step ``step(projected_t, states) -> (output_t, new_states)`` over time.

    Args:
        step: the recurrent half of a cell step (e.g. ``cell.step_from_projection``);
            ``projected_t`` is ``(N, G u)``, ``states`` and ``new_states`` are flat lists of
            ``(N, u)`` tensors, ``output_t`` one ``(N, u)`` tensor.
        projected: ``(T, N, G u)``, the input projections of every step, time-major (each
            step's slice is contiguous).
        initial_states: flat list of ``(N, u)`` tensors.
        mask, go_backwards, zero_output_for_mask, return_sequences: as :func:`run_loop`
            (``mask`` is batch-major ``(N, T)``).

    Returns:
        ``(last_output (N, u), outputs (N, T, u) in processing order or None, final_states)``.
    """
    steps = projected.unbind(0)
    order = range(len(steps) - 1, -1, -1) if go_backwards else range(len(steps))
    states = list(initial_states)
    collected: list[Tensor] = []
    output: Tensor | None = None
    if mask is None:
        for t in order:
            output, states = step(steps[t], states)
            if return_sequences:
                collected.append(output)
    else:
        keep_steps = mask.t().unsqueeze(-1).unbind(0)  # each (N, 1)
        for t in order:
            new_output, new_states = step(steps[t], states)
            keep = keep_steps[t]
            if output is None or zero_output_for_mask:
                output = torch.where(keep, new_output, new_output.new_zeros(()))
            else:
                output = torch.where(keep, new_output, output)
            states = [torch.where(keep, s, p) for s, p in zip(new_states, states)]
            if return_sequences:
                collected.append(output)
    assert output is not None  # T >= 1
    outputs = torch.stack(collected, dim=1) if return_sequences else None
    return output, outputs, states
