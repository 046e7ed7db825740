"""``TimeDistributed``: apply one layer to every time step of a sequence.

The wrapped layer sees the time steps as extra samples: inputs of shape ``(N, T, *F)`` are
reshaped (a view, no copy and no Python loop over time) into ``(N * T, *F)``, the layer runs
once, and its output ``(N * T, *G)`` is reshaped back into ``(N, T, *G)``. Every step uses the
same weights.

Shapes (legend: ``N`` batch, ``T`` time steps, ``F``/``G`` the per-step feature shapes):

- inputs: ``(N, T, *F)``, a tensor or a nested structure of tensors sharing ``N`` and ``T``;
- mask: ``(N, T)`` (or ``(N, T, ...)``), passed to the wrapped layer as ``(N * T, ...)``;
- outputs: ``(N, T, *G)``.

>>> import torch
>>> from rnnkit.layers import Layer
>>> class Double(Layer):
...     def call(self, inputs):
...         return 2 * inputs
>>> TimeDistributed(Double())(torch.ones(2, 3, 4)).shape
torch.Size([2, 3, 4])
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import tree
from rnnkit.layers.base import Layer, check_input_shape
from rnnkit.layers.serialization import deserialize, serialize
from rnnkit.symbolic import KerasTensor, call_input_dtype, outputs_from_shapes


def _describe(layer: Layer) -> str:
    return f"TimeDistributed '{layer.name}'"


class TimeDistributed(Layer):
    """Apply ``layer`` to every temporal slice of the inputs (axis 1 is time).

    Args:
        layer: the :class:`~rnnkit.layers.Layer` to apply at every step; its weights are
            shared by all steps.
        **kwargs: base :class:`~rnnkit.layers.Layer` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(N, T, *F)`` (or a nested structure of such tensors).
        training: passed to the wrapped layer.
        mask: ``(N, T)`` boolean; reshaped to ``(N * T,)`` for the wrapped layer.

    The output mask (Keras semantics) is the wrapped layer's ``compute_mask`` on the flattened
    steps, reshaped back to ``(N, T, ...)``; when the wrapped layer produces no mask, it is the
    input mask (reduced to ``(N, T)`` with ``any`` over extra axes).
    """

    supports_masking = True

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        if not isinstance(layer, Layer):
            raise ValueError(
                "TimeDistributed: layer must be an rnnkit Layer instance, received "
                f"{layer!r} of type {type(layer).__name__}"
            )
        super().__init__(**kwargs)
        self.layer = layer
        self._step_shapes: list[tuple[int | None, ...]] | None = None

    # ------------------------------------------------------------------ shapes
    def _leaf_shapes(self, input_shape: Any) -> list[tuple[int | None, ...]]:
        found: list[tuple[int | None, ...]] = []
        tree.map_shape_structure(lambda s: found.append(tuple(s)), input_shape)
        for shape in found:
            if len(shape) < 3:
                raise ValueError(
                    f"{_describe(self)}: inputs must have at least 3 dimensions "
                    f"(batch, time, features...), received shape {shape}"
                )
        n, t = found[0][:2]
        for shape in found[1:]:
            if shape[:2] != (n, t):
                raise ValueError(
                    f"{_describe(self)}: all inputs must share batch and time sizes; "
                    f"expected ({n}, {t}, ...), received {shape}"
                )
        return found

    def _child_shape(self, input_shape: Any) -> Any:
        self._leaf_shapes(input_shape)

        def child(shape: Any) -> tuple[int | None, ...]:
            n, t = shape[0], shape[1]
            flat = None if n is None or t is None else n * t
            return (flat, *tuple(shape[2:]))

        return tree.map_shape_structure(child, input_shape)

    def build(self, input_shape: Any) -> None:
        """Build the wrapped layer for one step: ``(N * T, *F)``."""
        child_shape = self._child_shape(input_shape)
        self._step_shapes = [shape[2:] for shape in self._leaf_shapes(input_shape)]
        if not self.layer.built:
            self.layer.build(child_shape)
            self.layer.built = True

    # -------------------------------------------------------------------- call
    def _batch_and_time(self, inputs: Any) -> tuple[int, int]:
        leaves = [x for x in tree.flatten(inputs) if isinstance(x, torch.Tensor)]
        if not leaves:
            raise TypeError(f"{_describe(self)}: inputs must be tensors, received {inputs!r}")
        shapes = self._leaf_shapes([tuple(x.shape) for x in leaves])
        if self._step_shapes is not None and any(True for _ in self.layer.parameters()):
            # The wrapped layer's weights were built for these per-step shapes: say so here,
            # with the caller's shape, rather than from inside with the (N * T, ...) shape.
            for i, (shape, step) in enumerate(zip(shapes, self._step_shapes)):
                check_input_shape(
                    self,
                    shape,
                    rank=len(step) + 2,
                    axes={axis + 2: size for axis, size in enumerate(step)},
                    argument="inputs" if len(shapes) == 1 else f"inputs[{i}]",
                    legend="(batch, timesteps, *features), as built",
                )
        n, t = shapes[0][:2]
        return n, t

    def _flatten_mask(self, mask: Any, n: int, t: int) -> torch.Tensor | None:
        if mask is None:
            return None
        if tree.is_nested(mask):
            masks = [m for m in tree.flatten(mask) if m is not None]
            if not masks:
                return None
            mask = masks[0]
        mask = torch.as_tensor(mask)
        if mask.dim() < 2 or tuple(mask.shape[:2]) != (n, t):
            raise ValueError(
                f"{_describe(self)}: mask must have shape ({n}, {t}, ...) to match the inputs' "
                f"batch and time sizes, received {tuple(mask.shape)}"
            )
        return mask.reshape(n * t, *mask.shape[2:])

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        n, t = self._batch_and_time(inputs)
        flat_mask = self._flatten_mask(mask, n, t)
        flat_inputs = tree.map_structure(lambda x: x.reshape(n * t, *x.shape[2:]), inputs)
        outputs = self.layer(flat_inputs, training=training, mask=flat_mask)
        return tree.map_structure(lambda y: y.reshape(n, t, *y.shape[1:]), outputs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        n, t = self._batch_and_time(inputs)
        flat_mask = self._flatten_mask(mask, n, t)
        flat_inputs = tree.map_structure(lambda x: x.reshape(n * t, *x.shape[2:]), inputs)
        inner = self.layer.compute_mask(flat_inputs, flat_mask)
        if tree.is_nested(inner):
            inner = next((m for m in tree.flatten(inner) if m is not None), None)
        if inner is None:
            if flat_mask is None:
                return None
            output_mask = flat_mask.reshape(n, t, *flat_mask.shape[1:])
            while output_mask.dim() > 2:
                output_mask = output_mask.any(dim=-1)
            return output_mask
        return inner.reshape(n, t, *inner.shape[1:])

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> Any:
        """``(N, T, *G)`` from the wrapped layer's own shapes-only output ``(N * T, *G)`` on
        ``(N * T, *F)`` (``None`` for ``N * T`` when either size is unknown), with the mask
        :meth:`compute_mask` gives: none without an input mask; the input's ``(N, T, ...)`` mask
        when the wrapped layer passes masks on, else that mask reduced to ``(N, T)``. None when
        the wrapped layer cannot tell its output from shapes, computes masks of its own or
        returns a structure, and for inputs the call rejects: the call then runs on
        placeholders."""
        shape, mask, inner = inputs.shape, inputs._keras_mask, self.layer
        if (
            kwargs
            or len(shape) < 3
            or self._autocast_dtype is not None
            or type(self).call is not TimeDistributed.call
            or type(self).compute_mask is not TimeDistributed.compute_mask
            or type(inner).compute_mask is not Layer.compute_mask
            or (mask is not None and (len(mask.shape) < 2 or mask.shape[:2] != shape[:2]))
        ):
            return None
        self._maybe_build(inputs)
        step = self._step_shapes[0] if self._step_shapes else None
        built_for_other = step is not None and (
            len(step) != len(shape) - 2
            or any(s is not None and s != d for s, d in zip(step, shape[2:]))
        )
        if built_for_other and any(True for _ in inner.parameters()):
            return None  # the placeholder run names the shape the layer was built for
        n, t = shape[0], shape[1]
        dtype = call_input_dtype(self, inputs)  # as the call converts its inputs
        flat = KerasTensor((None if n is None or t is None else n * t, *shape[2:]), dtype)
        output = outputs_from_shapes(inner, flat, {})
        if not isinstance(output, KerasTensor) or output.shape[:1] != flat.shape[:1]:
            return None
        result = KerasTensor((n, t, *output.shape[1:]), output.dtype)
        if mask is not None:
            mask_shape = mask.shape if inner.supports_masking else mask.shape[:2]
            result._keras_mask = KerasTensor(mask_shape, torch.bool)
        return result

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> TimeDistributed:
        config = dict(config)
        layer = deserialize(config.pop("layer"), custom_objects)
        return cls(layer, **config)
