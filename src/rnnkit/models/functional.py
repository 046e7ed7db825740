"""The graph of a functional model: collect, order, replay and (de)serialise layer calls.

Calling layers on symbolic tensors (:func:`rnnkit.Input`) records one
:class:`~rnnkit.symbolic.Node` per call. :class:`Graph` walks back from the output
KerasTensors along ``_keras_history`` to the ``Input`` tensors and keeps:

- ``nodes_by_depth``: every node between the inputs and the outputs, by depth (0 for the
  nodes that produce outputs, growing towards the inputs), as in Keras;
- ``layers``: the layers in Keras' order (deepest first; at equal depth, in the order a
  depth-first walk from the outputs meets them). A model's weights follow this order.

:meth:`Graph.run` replays the calls on real tensors, depth by depth: each node's recorded
arguments (positional, keyword, nested, ``initial_state=[...]``) are filled in with the real
tensors computed so far. Masks need no bookkeeping: layers carry them on tensors.
``chain`` lists the nodes of a graph that is one chain of single-tensor calls (a built
``Sequential``'s, for one), which a model may replay leaner (:mod:`rnnkit.models.call_plan`).

:func:`graph_config` / :func:`graph_from_config` write and read Keras 3's functional config
(``layers`` with ``inbound_nodes`` of ``{"args", "kwargs"}``, KerasTensors as
``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history"}}``,
``input_layers``/``output_layers`` as ``[layer_name, node_index, tensor_index]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rnnkit import tree
from rnnkit.layers.base import Layer, dtype_name
from rnnkit.layers.input_layer import InputLayer
from rnnkit.symbolic import KerasTensor, Node, infer_outputs

_PLAIN = (int, float, str, bool, type(None))


def _is_input_node(node: Node) -> bool:
    return isinstance(node.layer, InputLayer) and not node.input_tensors


def _node_of(x: KerasTensor) -> Node:
    layer, node_index, _ = x._keras_history
    return layer._inbound_nodes[node_index]


def _check_keras_tensors(structure: Any, argument: str, model_name: str) -> list[KerasTensor]:
    flat = tree.flatten(structure)
    if not flat:
        raise ValueError(f"Model '{model_name}': {argument} must not be empty")
    for x in flat:
        if not isinstance(x, KerasTensor) or x._keras_history is None:
            raise ValueError(
                f"Model '{model_name}': every value of {argument} must be a symbolic tensor "
                f"made by rnnkit.Input or by calling a layer on one; received {x!r} of type "
                f"{type(x).__name__}"
            )
    return flat


class Graph:
    """The layer calls between ``inputs`` and ``outputs`` (nested structures of KerasTensors).

    Raises ``ValueError`` when an input does not come from ``Input``, when an output cannot be
    computed from the inputs ("graph disconnected"), or when two layers share a name.
    """

    def __init__(self, inputs: Any, outputs: Any, model_name: str = "model") -> None:
        self.inputs_struct = inputs
        self.outputs_struct = outputs
        self.inputs = _check_keras_tensors(inputs, "inputs", model_name)
        self.outputs = _check_keras_tensors(outputs, "outputs", model_name)
        for x in self.inputs:
            if not _is_input_node(_node_of(x)):
                raise ValueError(
                    f"Model '{model_name}': inputs must be tensors returned by rnnkit.Input; "
                    f"{x.name!r} is the output of layer '{x._keras_history[0].name}'"
                )
        if len({id(x) for x in self.inputs}) != len(self.inputs):
            raise ValueError(f"Model '{model_name}': the same Input is passed twice in inputs")

        ordered, first_seen = self._depth_first(model_name)
        depths: dict[Node, int] = {}
        layer_depths: dict[Layer, int] = {}
        in_graph = set(ordered)
        for node in reversed(ordered):
            depth = max(depths.setdefault(node, 0), layer_depths.get(node.layer, 0))
            layer_depths[node.layer] = depth
            depths[node] = depth
            for parent in node.parent_nodes:
                if parent in in_graph:
                    depths[parent] = max(depth + 1, depths.get(parent, 0))
        for x in self.inputs:  # an Input that no output depends on still belongs to the model
            node = _node_of(x)
            if node not in depths:
                depths[node] = 0
                layer_depths[node.layer] = 0
                first_seen[node.layer] = -1

        self.nodes_by_depth: dict[int, list[Node]] = {}
        for node, depth in depths.items():
            self.nodes_by_depth.setdefault(depth, []).append(node)
        self.nodes: set[Node] = set(depths)
        by_depth: dict[int, list[Layer]] = {}
        for layer, depth in layer_depths.items():
            by_depth.setdefault(depth, []).append(layer)
        self.layers: list[Layer] = []
        for depth in sorted(by_depth, reverse=True):
            self.layers.extend(sorted(by_depth[depth], key=lambda layer: first_seen[layer]))
        self.execution_order = [
            node
            for depth in sorted(self.nodes_by_depth, reverse=True)
            for node in self.nodes_by_depth[depth]
            if not _is_input_node(node)
        ]
        self._check_connected(model_name)
        self.chain: list[Node] | None = self._as_chain()
        names = [layer.name for layer in self.layers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(
                    f"Model '{model_name}': the layer name {name!r} is used {names.count(name)} "
                    "times; all layer names in a model must be unique"
                )

    def _depth_first(self, model_name: str) -> tuple[list[Node], dict[Layer, int]]:
        finished: set[Node] = set()
        in_progress: set[Node] = set()
        ordered: list[Node] = []
        first_seen: dict[Layer, int] = {}

        def visit(x: KerasTensor) -> None:
            node = _node_of(x)
            if node in finished:
                return
            if node in in_progress:
                raise ValueError(f"Model '{model_name}': tensor {x.name!r} is part of a cycle")
            first_seen.setdefault(node.layer, len(first_seen))
            in_progress.add(node)
            for parent in node.input_tensors:
                visit(parent)
            in_progress.discard(node)
            finished.add(node)
            ordered.append(node)

        for x in self.outputs:
            visit(x)
        return ordered, first_seen

    def _check_connected(self, model_name: str) -> None:
        computable = {id(x) for x in self.inputs}
        for node in self.execution_order:
            for x in node.input_tensors:
                if id(x) not in computable:
                    raise ValueError(
                        f"Model '{model_name}': graph disconnected: layer '{node.layer.name}' "
                        f"needs tensor {x.name!r}, which does not depend only on the model's "
                        f"inputs ({', '.join(repr(t.name) for t in self.inputs)})"
                    )
            computable.update(id(x) for x in node.output_tensors)

    def _as_chain(self) -> list[Node] | None:
        """The execution order when the graph is one chain: one input and one output tensor,
        each node calling its layer on the previous node's one output tensor (the first on
        the input) with no other argument, the last node's output being the graph's; else
        None."""
        if len(self.inputs) != 1 or len(self.outputs) != 1 or not self.execution_order:
            return None
        current = self.inputs[0]
        for node in self.execution_order:
            if node.single_input is not current or not isinstance(node.outputs, KerasTensor):
                return None
            current = node.outputs
        return self.execution_order if current is self.outputs[0] else None

    # ------------------------------------------------------------------ queries
    def layer_nodes(self, layer: Layer) -> list[tuple[int, Node]]:
        """``(node_index, node)`` for each call of ``layer`` that belongs to this graph."""
        return [(i, n) for i, n in enumerate(layer._inbound_nodes) if n in self.nodes]

    # -------------------------------------------------------------------- replay
    def run(self, flat_inputs: list[Any]) -> Any:
        """Replay every call on ``flat_inputs`` (aligned with :attr:`inputs`); returns the
        outputs nested like ``outputs_struct``."""
        values: dict[int, Any] = {id(x): v for x, v in zip(self.inputs, flat_inputs)}

        def fill(structure: Any) -> Any:
            return tree.map_structure(
                lambda a: values[id(a)] if isinstance(a, KerasTensor) else a, structure
            )

        for node in self.execution_order:
            single = node.single_input
            if single is not None:  # layer(x): the common case, without walking structures
                outputs = node.layer(values[id(single)])
            else:
                outputs = node.layer(*fill(node.call_args), **fill(node.call_kwargs))
            recorded, produced = tree.flatten(node.outputs), tree.flatten(outputs)
            _check_replayed(node, recorded, produced)
            for sym, real in zip(recorded, produced):
                if isinstance(sym, KerasTensor):
                    values[id(sym)] = real
        return tree.pack_sequence_as(self.outputs_struct, [values[id(x)] for x in self.outputs])

    def infer(self, flat_inputs: list[KerasTensor]) -> Any | None:
        """The outputs of :meth:`run` on the KerasTensors ``flat_inputs``, each call's outputs
        inferred from its inputs' shapes (:func:`rnnkit.symbolic.infer_outputs`: told from
        shapes, or a placeholder run of that one layer) and recorded nowhere; None when a
        call gives another number of outputs than it recorded (:meth:`run` says so)."""
        values: dict[int, Any] = {id(x): v for x, v in zip(self.inputs, flat_inputs)}

        def fill(structure: Any) -> Any:
            return tree.map_structure(
                lambda a: values[id(a)] if isinstance(a, KerasTensor) else a, structure
            )

        for node in self.execution_order:
            outputs = infer_outputs(node.layer, fill(node.call_args), fill(node.call_kwargs))
            recorded, produced = tree.flatten(node.outputs), tree.flatten(outputs)
            if len(recorded) != len(produced):
                return None
            for sym, inferred in zip(recorded, produced):
                if isinstance(sym, KerasTensor):
                    values[id(sym)] = inferred
        return tree.pack_sequence_as(self.outputs_struct, [values[id(x)] for x in self.outputs])


def _check_replayed(node: Node, recorded: list[Any], produced: list[Any]) -> None:
    if len(recorded) != len(produced):
        raise ValueError(
            f"layer '{node.layer.name}' returned {len(produced)} values when replayed, "
            f"but {len(recorded)} when the model was built"
        )


def one_output(node: Node, outputs: Any) -> Any:
    """The one value of ``outputs``, a replayed call of ``node`` that recorded one output
    tensor (``ValueError`` as :meth:`Graph.run` when the call returned another count)."""
    produced = tree.flatten(outputs)
    _check_replayed(node, [node.outputs], produced)
    return produced[0]


# ---------------------------------------------------------------------- config
def _node_offset(layer: Layer) -> int:
    # Keras 3's functional models (not Sequential ones) own one node from their construction:
    # their node indices in a config start at 1.
    return int(getattr(layer, "_config_node_offset", 0))


def graph_config(graph: Graph, serialize: Any) -> dict[str, Any]:
    """``{"layers": [...], "input_layers": ..., "output_layers": ...}`` (Keras 3's format);
    ``serialize(layer)`` gives each layer's ``{"class_name", "config"}``."""
    reindex: dict[tuple[int, int], int] = {}
    for layer in graph.layers:
        for new_index, (old_index, _) in enumerate(graph.layer_nodes(layer)):
            reindex[(id(layer), old_index)] = new_index + _node_offset(layer)

    def history(x: KerasTensor) -> list[Any]:
        layer, node_index, tensor_index = x._keras_history
        return [layer.name, reindex[(id(layer), node_index)], tensor_index]

    def to_config(value: Any, where: str) -> Any:
        if isinstance(value, KerasTensor):
            return {
                "class_name": "__keras_tensor__",
                "config": {
                    "shape": list(value.shape),
                    "dtype": dtype_name(value.dtype),
                    "keras_history": history(value),
                },
            }
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, (list, tuple)):
            items = [to_config(v, where) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, Mapping):
            return {k: to_config(v, where) for k, v in value.items()}
        raise TypeError(
            f"get_config: {where} was called with an argument of type {type(value).__name__}, "
            "which cannot be written to a config (only symbolic tensors and plain values can)"
        )

    layer_configs = []
    for layer in graph.layers:
        config = dict(serialize(layer))
        config["name"] = layer.name
        config["inbound_nodes"] = [
            {
                "args": to_config(list(node.call_args), f"layer '{layer.name}'"),
                "kwargs": to_config(dict(node.call_kwargs), f"layer '{layer.name}'"),
            }
            for _, node in graph.layer_nodes(layer)
            if node.input_tensors
        ]
        layer_configs.append(config)
    return {
        "layers": layer_configs,
        "input_layers": tree.map_structure(history, graph.inputs_struct),
        "output_layers": tree.map_structure(history, graph.outputs_struct),
    }


def graph_from_config(config: Mapping[str, Any], deserialize: Any) -> tuple[Any, Any]:
    """Rebuild the layers of :func:`graph_config`'s output, call them on each other again and
    return ``(inputs, outputs)`` for ``Model(inputs, outputs)``; ``deserialize(layer_config)``
    creates one layer."""
    for key in ("layers", "input_layers", "output_layers"):
        if key not in config:
            raise ValueError(f"Model.from_config: the config has no {key!r} entry")
    created: dict[str, Layer] = {}
    pending: list[tuple[Layer, list[Any]]] = []
    for layer_data in config["layers"]:
        layer = deserialize(layer_data)
        created[layer_data.get("name", layer.name)] = layer
        pending.append((layer, list(layer_data.get("inbound_nodes") or [])))

    def tensor(name: str, node_index: int, tensor_index: int) -> KerasTensor:
        if name not in created:
            raise ValueError(f"Model.from_config: unknown layer {name!r} in a connection")
        layer = created[name]
        node_index -= _node_offset(layer)
        if node_index >= len(layer._inbound_nodes):
            raise IndexError(node_index)  # not created yet: retried on a later pass
        return layer._inbound_nodes[node_index].output_tensors[tensor_index]

    def revive(value: Any) -> Any:
        if isinstance(value, Mapping):
            if value.get("class_name") == "__keras_tensor__":
                return tensor(*value["config"]["keras_history"])
            return {k: revive(v) for k, v in value.items()}
        if isinstance(value, list):
            return [revive(v) for v in value]
        if isinstance(value, tuple):
            return tuple(revive(v) for v in value)
        return value

    while any(nodes for _, nodes in pending):
        progressed = False
        for layer, nodes in pending:
            while nodes:
                try:
                    args, kwargs = revive(nodes[0].get("args", [])), revive(nodes[0].get("kwargs"))
                except IndexError:
                    break
                layer(*args, **(kwargs or {}))
                nodes.pop(0)
                progressed = True
        if not progressed:
            stuck = [layer.name for layer, nodes in pending if nodes]
            raise ValueError(
                f"Model.from_config: the connections of layers {stuck} cannot be resolved "
                "(the config has a cycle or refers to missing layers)"
            )

    def is_history(value: Any) -> bool:
        return (
            isinstance(value, (list, tuple))
            and len(value) == 3
            and isinstance(value[0], str)
            and all(isinstance(v, int) for v in value[1:])
        )

    def tensors(value: Any) -> Any:
        if is_history(value):
            return tensor(*value)
        if isinstance(value, Mapping):
            return {k: tensors(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return tuple(tensors(v) for v in value)
        return [tensors(v) for v in value]

    return tensors(config["input_layers"]), tensors(config["output_layers"])
