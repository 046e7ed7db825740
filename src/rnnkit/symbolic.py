"""Symbolic tensors and the graph they record.

Calling a layer on a :class:`KerasTensor` (from :func:`rnnkit.Input`) runs no real data: the
layer is built and run twice on small placeholder tensors (every ``None`` dimension set to 2,
then to 3), under ``torch.no_grad`` and in inference mode. Dimensions that change between the
two runs are reported as ``None``; the rest are static. The call is recorded as a :class:`Node`
so that a functional model can replay it on real tensors.

While the placeholder runs happen, :func:`in_symbolic_call` is true: stateful layers must not
update their states then.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from rnnkit import tree

if TYPE_CHECKING:
    from rnnkit.layers.base import Layer

_PLACEHOLDERS = (2, 3)
_SYMBOLIC = contextvars.ContextVar("rnnkit_symbolic", default=False)


def in_symbolic_call() -> bool:
    """True while a layer runs on placeholder tensors to infer output shapes."""
    return _SYMBOLIC.get()


@contextlib.contextmanager
def _symbolic_scope() -> Iterator[None]:
    token = _SYMBOLIC.set(True)
    try:
        yield
    finally:
        _SYMBOLIC.reset(token)


class KerasTensor:
    """A symbolic tensor: a shape (``None`` for unknown sizes), a dtype and where it came from.

    ``_keras_history`` is ``(layer, node_index, tensor_index)``: the layer that produced it, the
    index of that call among the layer's calls, and the index among that call's flat outputs.
    """

    def __init__(
        self,
        shape: tuple[int | None, ...],
        dtype: torch.dtype = torch.float32,
        name: str | None = None,
    ) -> None:
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtype
        self.name = name
        self._keras_history: tuple[Layer, int, int] | None = None
        self._keras_mask: KerasTensor | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        return f"<KerasTensor shape={self.shape}, dtype={dtype}, name={self.name}>"

    def placeholder(self, size: int, device: torch.device) -> torch.Tensor:
        """A real zero tensor of this shape with ``None`` dimensions set to ``size``."""
        shape = tuple(size if d is None else d for d in self.shape)
        return torch.zeros(shape, dtype=self.dtype, device=device)


class Node:
    """One call of ``layer`` on symbolic inputs: its arguments and its outputs."""

    def __init__(self, layer: Layer, call_args: tuple, call_kwargs: dict, outputs: Any) -> None:
        self.layer = layer
        self.call_args = call_args
        self.call_kwargs = call_kwargs
        self.outputs = outputs
        self.input_tensors = [
            x for x in tree.flatten((call_args, call_kwargs)) if isinstance(x, KerasTensor)
        ]
        self.output_tensors = [x for x in tree.flatten(outputs) if isinstance(x, KerasTensor)]

    @property
    def parent_nodes(self) -> list[Node]:
        nodes = []
        for x in self.input_tensors:
            layer, node_index, _ = x._keras_history
            nodes.append(layer._inbound_nodes[node_index])
        return nodes


def has_symbolic(structure: Any) -> bool:
    return any(isinstance(x, KerasTensor) for x in tree.flatten(structure))


def _device_of(layer: Layer) -> torch.device:
    for p in layer.parameters():
        return p.device
    return torch.device("cpu")


def _materialize(structure: Any, size: int, device: torch.device) -> Any:
    def to_placeholder(x: Any) -> Any:
        if not isinstance(x, KerasTensor):
            return x
        value = x.placeholder(size, device)
        if x._keras_mask is not None:
            # Placeholder masks keep every step, so that no step is skipped while inferring.
            value._keras_mask = torch.ones(
                tuple(size if d is None else d for d in x._keras_mask.shape),
                dtype=torch.bool,
                device=device,
            )
        return value

    return tree.map_structure(to_placeholder, structure)


def _merge_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int | None, ...]:
    return tuple(da if da == db else None for da, db in zip(a, b))


def _infer_from_output_shape(layer: Layer, inputs: KerasTensor) -> KerasTensor:
    """The output of a layer whose ``compute_output_shape`` is exact (one tensor in, one out,
    no output mask): built on the symbolic shape, never run."""
    layer._maybe_build(inputs)
    dtype = next((p.dtype for p in layer.parameters() if p.is_floating_point()), inputs.dtype)
    return KerasTensor(tuple(layer.compute_output_shape(inputs.shape)), dtype)


def infer_outputs(layer: Layer, args: tuple, kwargs: dict) -> Any:
    """Run ``layer`` on placeholders for the KerasTensors in ``args``/``kwargs`` and return the
    output structure as fresh KerasTensors (masks attached), without recording anything.
    Layers with ``output_shape_is_exact`` are not run: their ``compute_output_shape`` says."""
    if layer.output_shape_is_exact and len(args) == 1 and isinstance(args[0], KerasTensor):
        return _infer_from_output_shape(layer, args[0])
    kwargs = dict(kwargs)
    kwargs["training"] = False
    runs = []
    with _symbolic_scope(), torch.no_grad():
        for size in _PLACEHOLDERS:
            device = _device_of(layer)
            real_args = _materialize(args, size, device)
            real_kwargs = _materialize(kwargs, size, device)
            runs.append(layer(*real_args, **real_kwargs))
    first, second = runs

    def to_symbolic(x: Any, y: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return x
        out = KerasTensor(_merge_shapes(tuple(x.shape), tuple(y.shape)), x.dtype)
        mask_x, mask_y = getattr(x, "_keras_mask", None), getattr(y, "_keras_mask", None)
        if mask_x is not None and mask_y is not None:
            out._keras_mask = KerasTensor(
                _merge_shapes(tuple(mask_x.shape), tuple(mask_y.shape)), mask_x.dtype
            )
        return out

    return tree.map_structure(to_symbolic, first, second)


def symbolic_call(layer: Layer, args: tuple, kwargs: dict) -> Any:
    """Infer the outputs of ``layer(*args, **kwargs)`` and record the call as a :class:`Node`."""
    outputs = infer_outputs(layer, args, kwargs)
    node = Node(layer, args, kwargs, outputs)
    node_index = len(layer._inbound_nodes)
    layer._inbound_nodes.append(node)
    for i, x in enumerate(node.output_tensors):
        x._keras_history = (layer, node_index, i)
        x.name = layer.name if len(node.output_tensors) == 1 else f"{layer.name}_{i}"
    return outputs
