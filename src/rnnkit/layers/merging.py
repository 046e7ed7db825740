"""Merging layers: ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Concatenate`` and
``Dot``, with Keras 3's mask rules.

All are called on a list (or tuple) of tensors. Masks of the inputs (``tensor._keras_mask``)
combine as in Keras 3:

- ``Add``, ``Subtract``, ``Multiply``, ``Average``: the output mask is the logical OR of the
  input masks when every input has one, else there is none. ``Multiply`` also uses the masks
  in its values: a masked position of an input counts as 1 (it does not zero the product),
  and where the output mask is False the output is 0.
- ``Dot``: no output mask.
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
from rnnkit.symbolic import KerasTensor, call_input_dtype


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
            f"{type(layer).__name__} '{layer.name}': inputs must be a list of tensors, "
            f"received a single input (shape {input_shape!r})"
        )
    shapes = [tuple(s) for s in input_shape]
    # lists, not sets, here and below: under torch.export the sizes are symbolic (unhashable)
    batch_sizes = [s[0] for s in shapes if s and s[0] is not None]
    if any(size != batch_sizes[0] for size in batch_sizes[1:]):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': inputs have different batch sizes, "
            f"received shapes {shapes}"
        )
    return shapes


def _symbolic_list(layer: Layer, inputs: Any) -> list[KerasTensor] | None:
    """``inputs`` as a list when it is a non-empty list or tuple of KerasTensors that share
    one floating dtype inside ``layer``'s call (merges of several dtypes promote, and are
    left to the placeholder run); else None."""
    if not isinstance(inputs, (list, tuple)) or not inputs:
        return None
    if not all(isinstance(x, KerasTensor) for x in inputs):
        return None
    dtypes = {call_input_dtype(layer, x) for x in inputs}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
        return None
    return list(inputs)


def _broadcast_axis(sizes: list[int | None]) -> tuple[bool, int | None]:
    """One axis of a broadcast as a placeholder run finds it (an unknown size is 13, then
    17): ``(True, size)`` (``None`` when unknown), or ``(False, None)`` when the sizes do not
    broadcast in a run (an unknown size against a known one other than 1)."""
    known = {s for s in sizes if s is not None and s != 1}
    if None in sizes:
        return (not known, None)
    if len(known) > 1:
        return (False, None)
    return (True, known.pop() if known else 1)


def _broadcast(shapes: list[tuple[int | None, ...]]) -> tuple[int | None, ...] | None:
    """The broadcast of ``shapes`` aligned on their last axes (``torch.broadcast_shapes``),
    with :func:`_broadcast_axis` per axis; None when they do not broadcast."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for sizes in zip(*padded):
        fits, size = _broadcast_axis(list(sizes))
        if not fits:
            return None
        out.append(size)
    return tuple(out)


def _expands_to(mask: tuple[int | None, ...], shape: tuple[int | None, ...]) -> bool:
    """Whether a mask of shape ``mask``, with 1s added on the right up to the rank of
    ``shape``, expands to ``shape`` in a run (each axis the same size, or 1)."""
    if len(mask) > len(shape):
        return False
    padded = tuple(mask) + (1,) * (len(shape) - len(mask))
    return all(m == 1 or m == s for m, s in zip(padded, shape))


class _Elementwise(Layer):
    """An elementwise merge of a list of tensors of the same shape ``(B, ...)`` or shapes that
    broadcast; a lower-rank input is expanded on axis 1 first (Keras 3). Subclasses give
    ``_merge``; masks: OR when all inputs have one (module docstring)."""

    _exactly: int | None = None  # the number of inputs, where the layer needs one
    _output_from_shapes_takes_lists = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape: Sequence[tuple[int | None, ...]]) -> None:
        self._check_count(_check_shapes_list(self, input_shape))

    def _check_count(self, items: Sequence[Any]) -> None:
        if self._exactly is not None and len(items) != self._exactly:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': inputs must be a list of exactly "
                f"{self._exactly} tensors, received {len(items)}"
            )

    def _expanded(self, inputs: Any) -> list[torch.Tensor]:
        tensors = _check_list(self, inputs)
        self._check_count(tensors)
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
                f"{type(self).__name__} '{self.name}': inputs have incompatible shapes "
                f"{[tuple(x.shape) for x in tensors]}"
            ) from error
        if any(x.shape[0] != expanded[0].shape[0] for x in expanded[1:]):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': inputs have different batch sizes, "
                f"received shapes {[tuple(x.shape) for x in tensors]}"
            )
        return [x.expand(shape) for x in expanded]

    def call(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self._merge(self._expanded(inputs))

    def _merge(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _output_from_shapes(self, inputs: Any, **kwargs: Any) -> KerasTensor | None:
        """For ``Add``, ``Subtract``, ``Average`` and ``Multiply`` on a list of KerasTensors
        of one floating dtype: the broadcast of the inputs' shapes (a lower-rank input
        expanded on axis 1 first), with the OR of the input masks broadcast together when
        every input has one. None for anything else, and for shapes that would not
        broadcast in a run (an unknown size against a known one): the call then runs on
        placeholders, which raises the errors."""
        tensors = _symbolic_list(self, inputs)
        if (
            kwargs
            or tensors is None
            or type(self) not in (Add, Subtract, Average, Multiply)
            or self._autocast_dtype is not None
            or (self._exactly is not None and len(tensors) != self._exactly)
        ):
            return None
        rank = max(len(x.shape) for x in tensors)
        expanded = [(*x.shape[:1], *(1,) * (rank - len(x.shape)), *x.shape[1:]) for x in tensors]
        if any(shape[0] != expanded[0][0] for shape in expanded[1:]):
            return None  # different (or unknown against known) batch sizes: the run says so
        shape = _broadcast(expanded)
        masks = [x._keras_mask for x in tensors]
        mask_shape = None
        if all(m is not None for m in masks):
            mask_shape = _broadcast([m.shape for m in masks])  # type: ignore[union-attr]
            if mask_shape is None:
                return None
        if shape is None:
            return None
        if isinstance(self, Multiply) and not all(
            _expands_to(m.shape, shape) for m in masks if m is not None
        ):
            return None  # Multiply expands each mask to the merged shape: the run says why not
        self._maybe_build(tensors)
        output = KerasTensor(shape, call_input_dtype(self, tensors[0]))
        if mask_shape is not None:
            output._keras_mask = KerasTensor(mask_shape, torch.bool)
        return output

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        if mask is None:
            return None
        owner = f"{type(self).__name__} '{self.name}'"
        if not isinstance(mask, (list, tuple)):
            raise ValueError(f"{owner}: mask should be a list (one per input), received {mask!r}")
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{owner}: inputs should be a list, received {type(inputs).__name__}")
        if len(mask) != len(inputs):
            raise ValueError(
                f"{owner}: inputs and mask should have the same length, received "
                f"{len(inputs)} inputs and {len(mask)} masks"
            )
        masks = list(mask)
        if any(m is None for m in masks):
            return None
        out = masks[0]
        for m in masks[1:]:
            out = torch.logical_or(out, m)
        return out


class Add(_Elementwise):
    """Elementwise sum of a list of tensors: ``outputs = inputs[0] + inputs[1] + ...``
    (shapes and masks: module docstring)."""

    def _merge(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        outputs = tensors[0]
        for x in tensors[1:]:
            outputs = outputs + x
        return outputs


class Subtract(_Elementwise):
    """Elementwise difference of exactly two tensors: ``outputs = inputs[0] - inputs[1]``."""

    _exactly = 2

    def _merge(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return tensors[0] - tensors[1]


class Average(_Elementwise):
    """Elementwise mean of a list of tensors: ``outputs = (inputs[0] + ... + inputs[n-1]) / n``."""

    def _merge(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        outputs = tensors[0]
        for x in tensors[1:]:
            outputs = outputs + x
        return outputs / len(tensors)


class Multiply(_Elementwise):
    """Elementwise product of a list of tensors: ``outputs = inputs[0] * inputs[1] * ...``.

    With masks (``(B, T)`` for ``(B, T, ...)`` inputs), as in Keras 3: each input counts as 1
    at its masked positions; when every input has a mask, the output is 0 where none of the
    masks is True, and its mask is their OR.
    """

    def call(
        self, inputs: Sequence[torch.Tensor], mask: Sequence[Any] | None = None
    ) -> torch.Tensor:
        tensors = self._expanded(inputs)
        masks = list(mask) if isinstance(mask, (list, tuple)) else [None] * len(tensors)
        if len(masks) != len(tensors):
            raise ValueError(
                f"Multiply '{self.name}': mask: expected {len(tensors)} masks (one per input), "
                f"received {len(masks)}"
            )
        union = None
        outputs = None
        for x, m in zip(tensors, masks):
            if m is not None:
                m = torch.as_tensor(m, device=x.device).to(torch.bool)
                while m.ndim < x.ndim:
                    m = m.unsqueeze(-1)
                m = m.expand(x.shape)
                x = torch.where(m, x, torch.ones((), dtype=x.dtype))
                union = m if union is None else torch.logical_or(union, m)
            outputs = x if outputs is None else outputs * x
        if union is not None and all(m is not None for m in masks):
            outputs = torch.where(union, outputs, torch.zeros((), dtype=outputs.dtype))
        return outputs


class Concatenate(Layer):
    """Joins a list of tensors along ``axis``.

    Args:
        axis: the axis to concatenate on (default -1, the features).

    Shapes: inputs that agree on every axis but ``axis`` give an output whose ``axis`` size is
    the sum of theirs, e.g. ``(B, T, F1)`` and ``(B, T, F2)`` give ``(B, T, F1 + F2)``.
    Masks as described in the module docstring.
    """

    _output_from_shapes_takes_lists = True

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
            sizes = [s[d] for s in shapes if s[d] is not None]
            if any(size != sizes[0] for size in sizes[1:]):
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

    def _output_from_shapes(self, inputs: Any, **kwargs: Any) -> KerasTensor | None:
        """On a list of KerasTensors of one floating dtype that agree on every axis but
        ``axis`` (each such axis all unknown or all the same size): the inputs joined along
        ``axis`` (its size unknown when one is), and when an input has a mask (each shaped
        as its input, or as its input without the last axis) the mask ``compute_mask``
        gives: ``any`` over the last axis of the joined masks. None otherwise: the call then
        runs on placeholders, which raises the errors."""
        tensors = _symbolic_list(self, inputs)
        if kwargs or tensors is None or type(self) is not Concatenate:
            return None
        shapes = [x.shape for x in tensors]
        rank = len(shapes[0])
        if self._autocast_dtype is not None or any(len(s) != rank for s in shapes):
            return None
        if not -rank <= self.axis < rank:
            return None
        axis = self.axis % rank
        for d in range(rank):
            if d != axis and len({s[d] for s in shapes}) != 1:
                return None  # an unknown size against a known one: a run may not join them
        masks = [x._keras_mask for x in tensors]
        if any(
            m is not None and m.shape not in (x.shape, x.shape[:-1]) for x, m in zip(tensors, masks)
        ):
            return None
        self._maybe_build(tensors)
        shape = self.compute_output_shape(shapes)
        output = KerasTensor(shape, call_input_dtype(self, tensors[0]))
        if any(m is not None for m in masks):
            output._keras_mask = KerasTensor(shape[:-1], torch.bool)
        return output

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


class Dot(Layer):
    """The dot product of two tensors along one axis of each, per sample.

    For ``x`` of shape ``(B, *X)`` and ``y`` of shape ``(B, *Y)`` with ``axes=(i, j)``
    (``x.shape[i] == y.shape[j] = K``)::

        outputs[b, x_rest..., y_rest...] = sum_k x[b, ..., k (at i), ...] y[b, ..., k (at j), ...]

    of shape ``(B, *X without i, *Y without j)``; a ``(B,)`` result becomes ``(B, 1)``. E.g.
    ``Dot(axes=(2, 2))`` on ``(B, T, F)`` and ``(B, S, F)`` gives the ``(B, T, S)`` scores
    of attention.

    Args:
        axes: an int (the same axis of both) or ``(i, j)``; never the batch axis 0; negative
            values count from the end.
        normalize: L2-normalize both inputs along their axis first, so that the output is the
            cosine similarity (Keras' ``x * min(1 / |x|, 1e7)``).

    No output mask.
    """

    def __init__(self, axes: Any, normalize: bool = False, **kwargs: Any) -> None:
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2 or not all(
                isinstance(a, int) and not isinstance(a, bool) for a in axes
            ):
                raise ValueError(f"Dot: axes must be an int or two ints, received axes={axes!r}")
            axes = tuple(axes)
        elif isinstance(axes, bool) or not isinstance(axes, int):
            raise TypeError(f"Dot: axes must be an int or two ints, received axes={axes!r}")
        super().__init__(**kwargs)
        self.axes = axes
        self.normalize = bool(normalize)

    def _axes(self, shapes: Sequence[tuple[int | None, ...]]) -> tuple[int, int]:
        pair = self.axes if isinstance(self.axes, tuple) else (self.axes, self.axes)
        out = []
        for axis, shape in zip(pair, shapes):
            rank = len(shape)
            if rank < 2:
                raise ValueError(
                    f"Dot '{self.name}': inputs must have rank >= 2, received shapes {list(shapes)}"
                )
            if not -rank <= axis < rank or axis % rank == 0:
                raise ValueError(
                    f"Dot '{self.name}': axes={self.axes} must name a non-batch axis of inputs "
                    f"of shapes {list(shapes)}"
                )
            out.append(axis % rank)
        a, b = out
        da, db = shapes[0][a], shapes[1][b]
        if da is not None and db is not None and da != db:
            raise ValueError(
                f"Dot '{self.name}': axes={self.axes}: axis {a} of the first input ({da}) and "
                f"axis {b} of the second ({db}) must have the same size, received shapes "
                f"{list(shapes)}"
            )
        return a, b

    def _pair(self, items: Any) -> list[Any]:
        if not isinstance(items, (list, tuple)) or len(items) != 2:
            raise ValueError(
                f"Dot '{self.name}': inputs must be a list of exactly 2 tensors, received "
                f"{type(items).__name__}"
                + (f" of length {len(items)}" if isinstance(items, (list, tuple)) else "")
            )
        return list(items)

    def build(self, input_shape: Sequence[tuple[int | None, ...]]) -> None:
        self._axes(_check_shapes_list(self, self._pair(input_shape)))

    def call(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        x, y = self._pair(inputs)
        shapes = _check_shapes_list(self, [tuple(x.shape), tuple(y.shape)])
        a, b = self._axes(shapes)
        if self.normalize:
            x, y = _l2_normalize(x, a), _l2_normalize(y, b)
        x = x.movedim(a, -1)
        y = y.movedim(b, 1)
        batch, size = x.shape[0], x.shape[-1]
        outputs = torch.matmul(x.reshape(batch, -1, size), y.reshape(batch, size, -1))
        outputs = outputs.reshape(batch, *x.shape[1:-1], *y.shape[2:])
        return outputs.reshape(batch, 1) if outputs.ndim == 1 else outputs

    def compute_output_shape(
        self, input_shape: Sequence[tuple[int | None, ...]]
    ) -> tuple[int | None, ...]:
        shapes = _check_shapes_list(self, self._pair(input_shape))
        a, b = self._axes(shapes)
        first = [d for i, d in enumerate(shapes[0]) if i != a]
        second = [d for i, d in enumerate(shapes[1]) if i not in (0, b)]
        out = tuple(first + second)
        return out + (1,) if len(out) == 1 else out

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def get_config(self) -> dict[str, Any]:
        axes = list(self.axes) if isinstance(self.axes, tuple) else self.axes
        return {**super().get_config(), "axes": axes, "normalize": self.normalize}


def _l2_normalize(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``x / |x|`` along ``axis``, with Keras' cap of ``1 / |x|`` at ``1e7``."""
    inverse = torch.rsqrt(torch.sum(x * x, dim=axis, keepdim=True))
    return x * torch.clamp(inverse, max=1e7)


def subtract(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Subtract`: ``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Multiply`: ``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Average`: ``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def dot(inputs: Sequence[Any], axes: Any = -1, normalize: bool = False, **kwargs: Any) -> Any:
    """Functional form of :class:`Dot`: ``Dot(axes, normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
