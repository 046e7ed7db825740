"""Mask analysis for the fused kernels: which masks a packed-sequence kernel can express.

A Keras mask is a boolean tensor of shape ``(batch, time)``; ``True`` marks a step that runs.
The generic loop (Keras semantics) handles any mask: at a masked step the states are carried
over unchanged and the output repeats the previous output (zeros before the first valid step).
A fused kernel runs each row on one contiguous block of valid steps, so a mask it can express
is one where every row's valid steps form a single run ``[start, start + length)``:

* right padding ``[1, 1, 1, 0, 0]``: ``start == 0``, run packed with ``lengths``;
* left padding ``[0, 0, 1, 1, 1]``: the block is moved to the front (``to_front``), run packed,
  and moved back (``from_front``), which puts zeros at the leading steps, as the generic loop
  does (no valid step has run yet, so the previous output is the initial zeros);
* both, ``[0, 1, 1, 0]``: the same two moves.

Masks with holes (``[1, 0, 1]``) need the generic loop or the manual-backward kernel.

The analysis reads the mask's values, so on CUDA it costs one device synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch._subclasses.fake_tensor import is_fake

Tensor = torch.Tensor
MaskKind = Literal["none", "right", "left", "contiguous", "holes"]


@dataclass(frozen=True)
class MaskInfo:
    """What a mask looks like to a fused kernel.

    ``kind``: ``"none"`` (no mask, or every step valid), ``"right"`` (each row a prefix),
    ``"left"`` (each row a suffix), ``"contiguous"`` (one run per row, neither of the above),
    ``"holes"`` (some row has two or more runs). ``starts`` and ``lengths`` (int64, shape
    ``(batch,)``) give each row's run; they are ``None`` for ``"none"`` and ``"holes"``.
    """

    kind: MaskKind
    starts: Tensor | None = None
    lengths: Tensor | None = None

    @property
    def fusable(self) -> bool:
        """Whether a packed-sequence kernel can run this mask."""
        return self.kind != "holes"


def check_mask(mask: Tensor, inputs: Tensor, where: str) -> Tensor:
    """Validate a ``(batch, time)`` mask against ``(batch, time, features)`` inputs.

    Returns the mask as a bool tensor. Raises ``TypeError``/``ValueError`` naming ``where``.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{where}: `mask` must be a torch.Tensor, received {type(mask).__name__}.")
    if mask.dim() != 2 or tuple(mask.shape) != tuple(inputs.shape[:2]):
        raise ValueError(
            f"{where}: `mask` must have shape (batch, time) = {tuple(inputs.shape[:2])}, "
            f"received {tuple(mask.shape)}."
        )
    return mask if mask.dtype == torch.bool else mask != 0


def analyze_mask(mask: Tensor | None) -> MaskInfo:
    """Classify a ``(batch, time)`` boolean mask (see :class:`MaskInfo`).

    Example::

        >>> analyze_mask(torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)).kind
        'right'
    """
    if mask is None or is_fake(mask):
        # A fake tensor (symbolic shape inference) has no values; its placeholder masks keep
        # every step, so it is classified as no mask.
        return MaskInfo("none")
    m = mask.to(torch.int64)
    steps = m.shape[1]
    # Number of runs per row = number of 0 -> 1 rises, counting a valid first step as a rise.
    rises = m[:, 0] + (m[:, 1:] > m[:, :-1]).sum(dim=1)
    if bool((rises > 1).any()):
        return MaskInfo("holes")
    lengths = m.sum(dim=1)
    if bool((lengths == steps).all()):
        return MaskInfo("none")
    starts = torch.where(lengths > 0, m.argmax(dim=1), torch.zeros_like(lengths))
    ends = starts + lengths
    if bool((starts == 0).all()):
        return MaskInfo("right", starts, lengths)
    if bool(((ends == steps) | (lengths == 0)).all()):
        return MaskInfo("left", starts, lengths)
    return MaskInfo("contiguous", starts, lengths)


def reversed_info(info: MaskInfo, steps: int) -> MaskInfo:
    """The analysis of the time-reversed mask (``mask.flip(1)``), from ``info``, the analysis
    of a mask with ``steps`` time steps, without reading the mask again.

    Reversing keeps the number of runs per row: ``"none"`` and ``"holes"`` stay, a
    ``"contiguous"`` mask stays ``"contiguous"``, ``"left"`` becomes ``"right"`` and
    ``"right"`` becomes ``"left"``, except where every row is full or empty (then it stays
    ``"right"``: telling this case apart reads the ``(batch,)`` lengths, one device
    synchronisation on CUDA). Row ``b``'s run ``[start, start + length)`` becomes
    ``[steps - start - length, steps - start)``; an empty row keeps ``start == 0``.

        >>> m = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
        >>> reversed_info(analyze_mask(m), 3).kind, analyze_mask(m.flip(1)).kind
        ('left', 'left')
    """
    if info.starts is None or info.lengths is None:  # "none", "holes"
        return info
    lengths = info.lengths
    starts = torch.where(lengths > 0, steps - (info.starts + lengths), torch.zeros_like(lengths))
    kind: MaskKind = info.kind
    if kind == "left":
        kind = "right"
    elif kind == "right" and not bool(((lengths == 0) | (lengths == steps)).all()):
        kind = "left"
    return MaskInfo(kind, starts, lengths)


def _time_index(starts: Tensor, steps: int) -> Tensor:
    return torch.arange(steps, device=starts.device).unsqueeze(0) + starts.unsqueeze(1)


def to_front(x: Tensor, starts: Tensor) -> Tensor:
    """Shift each row's valid block to the front: ``y[b, t] = x[b, min(t + starts[b], T - 1)]``.

    ``x``: ``(batch, time, features)``; ``starts``: ``(batch,)`` int64. Steps past the block
    hold arbitrary valid data (the packed kernel never reads them). Differentiable.
    """
    steps = x.shape[1]
    index = _time_index(starts, steps).clamp_(max=steps - 1)
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def from_front(
    y: Tensor, starts: Tensor, lengths: Tensor, zero_output_for_mask: bool = False
) -> Tensor:
    """Undo :func:`to_front` on packed outputs and apply the generic loop's masked outputs.

    ``y``: ``(batch, time, units)``, row ``b`` valid on ``[0, lengths[b])``. Returns ``out``
    with ``out[b, t] = 0`` for ``t < starts[b]`` (no valid step yet), ``y[b, t - starts[b]]``
    inside the block, and ``y[b, lengths[b] - 1]`` after it (the last output repeated), or
    zeros after it when ``zero_output_for_mask``. Differentiable.
    """
    steps = y.shape[1]
    rel = torch.arange(steps, device=y.device).unsqueeze(0) - starts.unsqueeze(1)
    last = (lengths - 1).clamp(min=0).unsqueeze(1)
    index = torch.minimum(rel.clamp(min=0), last)
    out = torch.gather(y, 1, index.unsqueeze(-1).expand(-1, -1, y.shape[2]))
    keep = rel >= 0
    if zero_output_for_mask:
        keep = keep & (rel < lengths.unsqueeze(1))
    keep = keep & (lengths > 0).unsqueeze(1)
    return out * keep.unsqueeze(-1).to(out.dtype)
