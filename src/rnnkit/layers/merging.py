"""Merging layers: ``Add`` and ``Concatenate``, with Keras 3's mask rules.

Both are called on a list (or tuple) of tensors. Masks of the inputs (``tensor._keras_mask``)
combine as in Keras 3:

- ``Add``: the output mask is the logical OR of the input masks when every input has one,
  else there is none.
- ``Concatenate``: an input without a mask counts as all-True; each mask is broadcast to its
  input's shape, the masks are concatenated along ``axis``, and the output mask is ``any`` over
  the last axis. (For ``(B, T, F)`` inputs with ``(B, T)`` masks and ``axis=-1`` this is the
  OR of the masks; for ``axis=1`` it is the masks joined in time.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rnnkit.layers.base import Layer


def _check_list(layer: Layer, inputs: Any) -> list[torch.Tensor]:
    if not isinstance(inputs, (list, tuple)) or len(inputs) < 1:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': inputs must be a non-empty list of tensors, "
            f"received {type(inputs).__name__}"
        )
    return list(inputs)


def _check_shapes_list(layer: Layer, input_shape: Any) -> list[tuple[int | None, ...]]:
    if not isinstance(input_shape, (list, tuple)) or not all(
        isinstance(s, (list, tuple)) for s in input_shape
    ):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': expected a list of input shapes, "
            f"received {input_shape!r}"
        )
    shapes = [tuple(s) for s in input_shape]
    batch_sizes = {s[0] for s in shapes if s and s[0] is not None}
    if len(batch_sizes) > 1:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': inputs have different batch sizes, "
            f"received shapes {shapes}"
        )
    return shapes


class Add(Layer):
    """Elementwise sum of a list of tensors: ``outputs = inputs[0] + inputs[1] + ...``.

    The inputs have the same shape ``(B, ...)``, or shapes that broadcast; a lower-rank input is
    expanded on axis 1 first (Keras 3). Masks: OR when all inputs have one (module docstring).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape: Sequence[tuple[int | None, ...]]) -> None:
        _check_shapes_list(self, input_shape)

    def call(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        tensors = _check_list(self, inputs)
        rank = max(x.ndim for x in tensors)
        expanded = []
        for x in tensors:
            while x.ndim < rank:
                x = x.unsqueeze(1)
            expanded.append(x)
        try:
            shape = torch.broadcast_shapes(*(x.shape for x in expanded))
        except RuntimeError as error:
            raise ValueError(
                f"Add '{self.name}': inputs have incompatible shapes "
                f"{[tuple(x.shape) for x in tensors]}"
            ) from error
        if len({x.shape[0] for x in expanded}) > 1:
            raise ValueError(
                f"Add '{self.name}': inputs have different batch sizes, received shapes "
                f"{[tuple(x.shape) for x in tensors]}"
            )
        outputs = expanded[0].expand(shape)
        for x in expanded[1:]:
            outputs = outputs + x
        return outputs

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        if mask is None:
            return None
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask]
        if any(m is None for m in masks):
            return None
        out = masks[0]
        for m in masks[1:]:
            out = torch.logical_or(out, m)
        return out


class Concatenate(Layer):
    """Joins a list of tensors along ``axis``.

    Args:
        axis: the axis to concatenate on (default -1, the features).

    Shapes: inputs that agree on every axis but ``axis`` give an output whose ``axis`` size is
    the sum of theirs, e.g. ``(B, T, F1)`` and ``(B, T, F2)`` give ``(B, T, F1 + F2)``.
    Masks as described in the module docstring.
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Concatenate: axis must be an int, received {axis!r}")
        super().__init__(**kwargs)
        self.axis = axis
        self.supports_masking = True

    def _check(self, shapes: list[tuple[int | None, ...]]) -> None:
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(
                f"Concatenate '{self.name}': inputs must have the same rank, received shapes "
                f"{shapes}"
            )
        rank = ranks.pop()
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"Concatenate '{self.name}': axis {self.axis} is out of range for inputs of rank "
                f"{rank}"
            )
        axis = self.axis % rank
        for d in range(rank):
            if d == axis:
                continue
            sizes = {s[d] for s in shapes if s[d] is not None}
            if len(sizes) > 1:
                raise ValueError(
                    f"Concatenate '{self.name}': inputs must match on every axis except "
                    f"axis={self.axis}, received shapes {shapes}"
                )

    def build(self, input_shape: Sequence[tuple[int | None, ...]]) -> None:
        self._check(_check_shapes_list(self, input_shape))

    def call(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        tensors = _check_list(self, inputs)
        self._check([tuple(x.shape) for x in tensors])
        return torch.cat(tensors, dim=self.axis)

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        if mask is None:
            return None
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask]
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(masks) != len(tensors):
            raise ValueError(
                f"Concatenate '{self.name}': mask: expected {len(tensors)} masks (one per "
                f"input), received {len(masks)}"
            )
        if all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(tensors, masks):
            if m is None:
                m = torch.ones(x.shape, dtype=torch.bool, device=x.device)
            elif m.ndim < x.ndim:
                m = m.unsqueeze(-1).expand(x.shape)
            full.append(m.to(torch.bool))
        return torch.any(torch.cat(full, dim=self.axis), dim=-1)

    def compute_output_shape(
        self, input_shape: Sequence[tuple[int | None, ...]]
    ) -> tuple[int | None, ...]:
        shapes = _check_shapes_list(self, input_shape)
        self._check(shapes)
        axis = self.axis % len(shapes[0])
        out = list(shapes[0])
        sizes = [s[axis] for s in shapes]
        out[axis] = None if any(d is None for d in sizes) else sum(sizes)
        for d in range(len(out)):
            if d != axis and out[d] is None:
                out[d] = next((s[d] for s in shapes if s[d] is not None), None)
        return tuple(out)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


def add(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Add`: ``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def concatenate(inputs: Sequence[Any], axis: int = -1, **kwargs: Any) -> Any:
    """Functional form of :class:`Concatenate`: ``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
