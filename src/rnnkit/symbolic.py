"""Symbolic tensors and the graph they record.

Calling a layer on a :class:`KerasTensor` (from :func:`rnnkit.Input`) does no arithmetic: the
layer runs twice on *fake* placeholder tensors (``torch._subclasses.FakeTensor``: shapes, dtypes
and devices, no storage, no computation), with every ``None`` dimension set to 13, then to 17,
under ``torch.no_grad`` and in inference mode. Dimensions that change between the two runs are
reported as ``None``; the rest are static. The sizes are large enough for layers whose valid
output needs a minimum length (a ``valid`` convolution over an unknown length), and cost
nothing since nothing is computed. The call is recorded as a :class:`Node` so that a
functional model can replay it on real tensors.

Weights are real: a layer built during a placeholder run runs its ``build`` (and
``add_weight``, ``set_weights``) under :func:`real_tensors`, on the placeholder shapes, so a
``build`` that computes with torch (``fill_``, ``torch.rand``) works as in an eager call.

While the placeholder runs happen, :func:`in_symbolic_call` is true: stateful layers must not
update their states then, and checks that read tensor values (index ranges, mask layouts)
must be skipped, since fake tensors have no values.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
    is_fake,
    unset_fake_temporarily,
)

from rnnkit import tree

if TYPE_CHECKING:
    from rnnkit.layers.base import Layer

_PLACEHOLDERS = (13, 17)
# How many placeholder runs are in progress on this thread: a thread-local counter rather than
# a ContextVar, which torch.compile cannot trace.
_SYMBOLIC = threading.local()


def in_symbolic_call() -> bool:
    """True while a layer runs on placeholder tensors to infer output shapes."""
    return getattr(_SYMBOLIC, "depth", 0) > 0


@contextlib.contextmanager
def _symbolic_scope() -> Iterator[None]:
    _SYMBOLIC.depth = getattr(_SYMBOLIC, "depth", 0) + 1
    try:
        yield
    finally:
        _SYMBOLIC.depth -= 1


@contextlib.contextmanager
def _fake_tensors() -> Iterator[None]:
    """Tensors created inside are fake (no storage, no arithmetic); real tensors (weights)
    may take part. Nested symbolic calls share the active mode."""
    if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE) is not None:
        yield
        return
    with warnings.catch_warnings(), FakeTensorMode(allow_non_fake_inputs=True):
        # Describing a real non-leaf tensor (a state computed from weights) reads its .grad,
        # which torch warns about; the fake copy needs no gradient.
        warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not")
        yield


def real_tensors() -> contextlib.AbstractContextManager:
    """Inside, tensors are real even during a symbolic call (to create weights with storage)."""
    return unset_fake_temporarily()


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
        """A zero tensor of this shape with ``None`` dimensions set to ``size`` (a fake one
        during a symbolic call)."""
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
        # ``layer(x)`` on one symbolic tensor with no other argument: replayed directly
        single = len(call_args) == 1 and not call_kwargs and isinstance(call_args[0], KerasTensor)
        self.single_input: KerasTensor | None = call_args[0] if single else None

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


def call_input_dtype(layer: Layer, inputs: KerasTensor) -> torch.dtype:
    """The dtype ``inputs`` has inside a call of ``layer``, which casts floating inputs (every
    input when it says so) to its compute dtype when it has weights or an explicit dtype (as
    ``Layer._convert_inputs`` does)."""
    has_weights, _, compute_dtype = layer._call_facts()
    if not (has_weights or layer._dtype_explicit):
        return inputs.dtype
    if layer._casts_non_floating_inputs or inputs.dtype.is_floating_point:
        return compute_dtype
    return inputs.dtype


def outputs_from_shapes(layer: Layer, inputs: Any, kwargs: dict) -> Any:
    """The outputs of ``layer(inputs, **kwargs)`` (``kwargs`` without ``training``;
    ``inputs`` a KerasTensor, or a list of them) as KerasTensors when the layer tells them
    from shapes: its ``compute_output_shape`` is exact, or its ``_output_from_shapes`` gives
    them (on a list, for layers that take lists there); else None."""
    if not isinstance(inputs, KerasTensor):  # a list (merging layers)
        return (
            layer._output_from_shapes(inputs, **kwargs)
            if layer._output_from_shapes_takes_lists
            else None
        )
    if layer.output_shape_is_exact:
        return _infer_from_output_shape(layer, inputs)
    return layer._output_from_shapes(inputs, **kwargs)


def placeholder_call(layer: Layer, args: tuple, kwargs: dict) -> Any:
    """A call of ``layer`` made inside a placeholder run (by the layer that runs, on its
    placeholders): when the layer tells its outputs from shapes (:func:`outputs_from_shapes`
    on the placeholder's concrete shape, dtype and mask), new placeholders of those shapes
    (and masks) instead of running it; else ``layer.forward`` on the placeholders. So a
    custom layer or model that calls built-in layers runs only its own operations on fakes."""
    told = _told_placeholders(layer, args, kwargs)
    return layer.forward(*args, **kwargs) if told is None else told


def _told_placeholders(layer: Layer, args: tuple, kwargs: dict) -> Any:
    """The outputs of ``layer(*args, **kwargs)`` as fake placeholders told from shapes, for a
    call on one fake tensor (other arguments: ``training``, a tensor ``mask``, tensors);
    None when the layer cannot tell them or the call is another kind."""
    fake_mode = torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE)
    if fake_mode is None or len(args) != 1 or not is_fake(args[0]):
        return None
    x = args[0]
    given = {key: value for key, value in kwargs.items() if key != "training"}
    mask = given.pop("mask", None)
    if mask is None:
        mask = getattr(x, "_keras_mask", None)
    if not all(isinstance(v, torch.Tensor) for v in tree.flatten(given)) or not (
        mask is None or isinstance(mask, torch.Tensor)
    ):
        return None
    inputs = KerasTensor(tuple(x.shape), x.dtype)
    if mask is not None:
        inputs._keras_mask = KerasTensor(tuple(mask.shape), mask.dtype)
    told = outputs_from_shapes(
        layer, inputs, tree.map_structure(lambda v: KerasTensor(tuple(v.shape), v.dtype), given)
    )
    if told is None:
        return None
    flat = tree.flatten(told)
    described = flat + [t._keras_mask for t in flat if isinstance(t, KerasTensor)]
    if any(isinstance(t, KerasTensor) and None in t.shape for t in described):
        return None
    return _materialize(told, 0, x.device)  # every size known: the 0 replaces nothing


def _one_or_a_list(inputs: Any) -> bool:
    """A KerasTensor, or a non-empty list or tuple of KerasTensors."""
    if isinstance(inputs, KerasTensor):
        return True
    return (
        isinstance(inputs, (list, tuple))
        and bool(inputs)
        and all(isinstance(x, KerasTensor) for x in inputs)
    )


def _fake_weights(layer: Layer) -> list[torch.Tensor]:
    """Fake copies of ``layer``'s parameters and buffers, for the caller to hold during one
    placeholder run. The fake mode converts a real tensor at every op that meets it, and
    remembers the conversion only as long as the fake copy lives (a weak memo), so a weight
    used by an op on placeholders is otherwise converted again at each op (about 0.2 ms,
    which doubles the cost of such an op). Weights built during the first run are converted
    for the second."""
    mode = torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE)
    return [mode.from_tensor(t) for t in (*layer.parameters(), *layer.buffers())]


def infer_outputs(layer: Layer, args: tuple, kwargs: dict) -> Any:
    """Run ``layer`` on placeholders for the KerasTensors in ``args``/``kwargs`` and return the
    output structure as fresh KerasTensors (masks attached), without recording anything.

    Not run: layers with ``output_shape_is_exact`` (their ``compute_output_shape`` says), and a
    call on one KerasTensor (or a list of them, for merging and attention layers) whose output
    the layer's ``_output_from_shapes`` gives: ``Dense``, ``BatchNormalization``,
    ``LayerNormalization``, ``Embedding``, ``Dropout``, ``Masking``, recurrent layers over the
    built-in cells, ``ConvLSTMCell``, stacks and wrappers of them (:mod:`rnnkit.layers.rnn_shapes`),
    ``Bidirectional`` over those, ``TimeDistributed`` over a layer that tells its own, the
    merging layers but ``Dot``, ``Attention``, ``AdditiveAttention``, and a functional model or
    ``Sequential`` used as a layer (its graph replayed layer by layer, :meth:`Graph.infer`).
    Inside a placeholder run, a layer that can tell its outputs gives placeholders of those
    shapes instead of running (:func:`placeholder_call`). A fake-tensor op costs about 0.1 ms
    of Python, so running an LSTM layer on the two placeholders costs about 8 ms, against
    about 1.5 ms from the shapes (building included;
    ``benchmarks/bench_build.py``)."""
    if len(args) == 1 and _one_or_a_list(args[0]):
        given = {key: value for key, value in kwargs.items() if key != "training"}
        known = outputs_from_shapes(layer, args[0], given)
        if known is not None:
            return known
    kwargs = dict(kwargs)
    kwargs["training"] = False
    runs = []
    with _fake_tensors(), _symbolic_scope(), torch.no_grad():
        for size in _PLACEHOLDERS:
            device = _device_of(layer)
            fake_args = _materialize(args, size, device)
            fake_kwargs = _materialize(kwargs, size, device)
            weights = _fake_weights(layer)  # held during the run (see _fake_weights)
            try:
                runs.append(layer(*fake_args, **fake_kwargs))
            except (DataDependentOutputException, DynamicOutputShapeException) as e:
                raise ValueError(
                    f"{type(layer).__name__} '{layer.name}': its call() reads tensor values "
                    f"({e}), which a symbolic call (on rnnkit.Input) cannot give: it infers "
                    "shapes on placeholder tensors without values. Skip value checks while "
                    "rnnkit.symbolic.in_symbolic_call() is true."
                ) from e
            finally:
                del weights  # the run is over
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
