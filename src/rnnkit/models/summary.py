"""``model.summary()``: Keras' text table of layers, output shapes and parameter counts.

The layout is Keras 2's (the guide's printed summaries), with Keras 3's thousands separators
and byte units::

    Model: "sequential"
    _________________________________________________________________
     Layer (type)                Output Shape              Param #
    =================================================================
     embedding (Embedding)       (None, None, 64)          64000
    ...
    =================================================================
    Total params: 164,106 (641.04 KB)
    Trainable params: 164,106 (641.04 KB)
    Non-trainable params: 0 (0.00 B)
    _________________________________________________________________

Sequential-like models (a chain of single-input calls) get three columns and a line length
of 65; other functional models add "Connected to" (``'encoder[0][1]'`` is output 1 of the
first call of layer ``encoder``) and a line length of 98. Text too long for its column wraps
onto the next lines, breaking after ``),`` or ``',`` where it can, as Keras does. A layer with
several outputs shows a list of shapes; an ``InputLayer`` shows its shape in a list, as the
guide's Keras 2 output does (``[(None, None)]``). Sizes count each weight's element size
(4 bytes for float32) in binary units: 164,106 float32 parameters are 641.04 KB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rnnkit import tree
from rnnkit.layers.base import Layer
from rnnkit.layers.input_layer import InputLayer
from rnnkit.saving.serialization import builtin_model
from rnnkit.symbolic import KerasTensor

if TYPE_CHECKING:
    from rnnkit.models.functional import Graph
    from rnnkit.models.model import Model

_BREAKS = ("),", "},", "],", "',")


def readable_memory_size(size: float) -> str:
    """``656424`` -> ``"641.04 KB"`` (binary units B, KB, MB, GB, TB, PB), as Keras prints it."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _format_shapes(shapes: list[tuple[int | None, ...]], as_list: bool = False) -> str:
    if len(shapes) == 1 and not as_list:
        return str(tuple(shapes[0]))
    return "[" + ", ".join(str(tuple(s)) for s in shapes) + "]"


def _layer_output_shape(layer: Layer, graph: Graph | None) -> str:
    if graph is None:  # a subclassed model: the shapes of the call that built the layer
        shapes = layer._built_output_shapes
        return _format_shapes(shapes) if shapes else "multiple"
    nodes = graph.layer_nodes(layer)
    shapes = {
        tuple(tuple(x.shape) for x in tree.flatten(node.outputs) if isinstance(x, KerasTensor))
        for _, node in nodes
    }
    if len(shapes) != 1:
        return "multiple" if shapes else "?"
    (flat,) = shapes
    return _format_shapes(list(flat), as_list=isinstance(layer, InputLayer))


def _connections(layer: Layer, graph: Graph) -> list[str]:
    found = []
    for _, node in graph.layer_nodes(layer):
        for x in node.input_tensors:
            inbound, node_index, tensor_index = x._keras_history
            found.append(f"{inbound.name}[{node_index}][{tensor_index}]")
    return found


def _is_sequential(model: Model) -> bool:
    # Sequential is found through the registry it joins when rnnkit.models is imported
    # (rnnkit.models.sequential imports rnnkit.models.model, which imports this module).
    sequential = builtin_model("Sequential")
    return sequential is not None and isinstance(model, sequential)


def _is_sequential_like(model: Model) -> bool:
    graph = model._graph
    if _is_sequential(model) or graph is None:
        return True
    for depth_nodes in graph.nodes_by_depth.values():
        if len(depth_nodes) > 1 or (depth_nodes and len(depth_nodes[0].input_tensors) > 1):
            return False
    return all(len(graph.layer_nodes(layer)) <= 1 for layer in graph.layers)


def _count(weights: list[Any]) -> tuple[int, int]:
    return (
        sum(int(w.numel()) for w in weights),
        sum(int(w.numel()) * w.element_size() for w in weights),
    )


def _make_row_printer(
    positions: list[int], print_fn: Callable[[str], Any]
) -> Callable[[list[Any], int], None]:
    def print_row(fields: list[Any], nested_level: int = 0) -> None:
        left = [str(f) for f in fields]
        while any(left):
            line = ""
            for col, text in enumerate(left):
                start = positions[col - 1] if col > 0 else 0
                end = positions[col]
                last = col == len(positions) - 1
                space = 0 if last else 2
                cutoff = end - start - space - (0 if last else 1)
                if col == 0:
                    cutoff -= nested_level
                piece = text[:cutoff]
                breaks = [piece.find(b) + len(b) for b in _BREAKS if piece.find(b) >= 0]
                if breaks:
                    cutoff = min(breaks)
                    piece = piece[:cutoff]
                if col == 0:
                    line += "|" * nested_level + " "
                line += piece + " " * space
                left[col] = text[cutoff:]
                pad_to = end - nested_level if (nested_level and last) else end
                line += " " * (pad_to - len(line))
            print_fn(line + "|" * nested_level)

    return print_row


def print_summary(
    model: Model,
    line_length: int | None = None,
    positions: list[float] | None = None,
    print_fn: Callable[[str], Any] | None = None,
    expand_nested: bool = False,
    show_trainable: bool = False,
) -> None:
    """Print ``model``'s summary table, one line per ``print_fn`` call (default ``print``).

    Args:
        line_length: total width (default 65, or 98 with the "Connected to" column).
        positions: right edge of each column, as fractions of ``line_length`` (all <= 1) or
            absolute positions.
        print_fn: called with each line.
        expand_nested: also list the layers inside nested models, framed by ``|``.
        show_trainable: add a "Trainable" column (``Y``/``N``).
    """
    if print_fn is None:
        print_fn = print
    if _is_sequential(model) and model.layers and not model.built:
        raise ValueError(
            f"Sequential '{model.name}' has not been built yet: call it on data, call "
            "build(batch_input_shape), or give the first layer input_shape=..."
        )
    sequential_like = _is_sequential_like(model)
    if sequential_like:
        line_length = line_length or 65
        positions = list(positions or [0.45, 0.85, 1.0])
        headers = ["Layer (type)", "Output Shape", "Param #"]
    else:
        line_length = line_length or 98
        positions = list(positions or [0.33, 0.55, 0.67, 1.0])
        headers = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    if len(positions) != len(headers):
        raise ValueError(
            f"summary: positions must have {len(headers)} entries (one per column), "
            f"received {positions}"
        )
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    positions = [int(p) for p in positions]
    if show_trainable:
        line_length += 11
        positions.append(line_length)
        headers.append("Trainable")
    print_row = _make_row_printer(positions, print_fn)

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    print_row(headers, 0)
    print_fn("=" * line_length)

    def print_layer(layer: Layer, graph: Graph | None, level: int, nested_last: bool) -> None:
        params: Any = layer.count_params() if layer.built else "0 (unused)"
        fields: list[Any] = [
            f"{layer.name} ({type(layer).__name__})",
            _layer_output_shape(layer, graph),
            params,
        ]
        if not sequential_like:
            fields.append(_connections(layer, graph) if graph is not None else [])
        if show_trainable:
            fields.append("Y" if layer.trainable else "N")
        print_row(fields, level)
        inner = getattr(layer, "layers", None)
        if expand_nested and isinstance(inner, list) and inner:
            inner_graph = getattr(layer, "_graph", None)
            print_fn("|" * (level + 1) + "¯" * (line_length - 2 * level - 2) + "|" * (level + 1))
            for i, sub in enumerate(inner):
                print_layer(sub, inner_graph, level + 1, i == len(inner) - 1)
            print_fn("|" * level + "¯" * (line_length - 2 * level) + "|" * level)
        if not nested_last:
            print_fn("|" * level + " " * (line_length - 2 * level) + "|" * level)

    for layer in model.layers:
        print_layer(layer, model._graph, 0, False)
    print_fn("=" * line_length)

    trainable, trainable_bytes = _count(model.trainable_weights)
    frozen, frozen_bytes = _count(model.non_trainable_weights)
    total = trainable + frozen
    print_fn(f"Total params: {total:,} ({readable_memory_size(trainable_bytes + frozen_bytes)})")
    print_fn(f"Trainable params: {trainable:,} ({readable_memory_size(trainable_bytes)})")
    print_fn(f"Non-trainable params: {frozen:,} ({readable_memory_size(frozen_bytes)})")
    print_fn("_" * line_length)
