"""``Model``: a layer made of layers, with the training methods of :class:`Trainer`.

Two ways to make one, as in Keras:

- functional: ``Model(inputs, outputs)`` where ``outputs`` were computed from ``inputs``
  (KerasTensors from :func:`rnnkit.Input`, possibly lists, dicts or nested structures).
  Calling the model on real tensors replays the recorded layer calls
  (:class:`rnnkit.models.functional.Graph`); calling it on KerasTensors nests it in a bigger
  model.
- subclassing: ``class M(rnnkit.Model)`` creates layers as attributes in ``__init__`` and
  computes in ``call(self, inputs, training=None)``.

Layers are child modules, so ``parameters()``, ``state_dict()``, ``.to(device)`` and
``train()``/``eval()`` work as for any ``torch.nn.Module``. A functional model registers its
layers in ``model.layers`` order, under their layer names (``"dense"``, ``"encoder"``; a name
that is not a Python identifier or clashes with a Model attribute gets ``_`` for the odd
characters and a ``_1`` suffix), so ``state_dict`` keys read like ``"encoder.cell.kernel"``.
``model.weights`` follows ``model.layers`` order, as in Keras, so ``get_weights`` moves
between a Keras model and the same rnnkit architecture unchanged.

>>> import rnnkit
>>> from rnnkit.layers import Dense
>>> x = rnnkit.Input(shape=(3,))
>>> model = rnnkit.Model(x, Dense(2)(x))
>>> model.output_shape
(None, 2)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from rnnkit import tree
from rnnkit.layers.base import Layer
from rnnkit.layers.input_layer import InputLayer
from rnnkit.layers.serialization import deserialize, serialize
from rnnkit.models import call_plan
from rnnkit.models.functional import Graph, graph_config, graph_from_config
from rnnkit.models.summary import print_summary
from rnnkit.saving.keras_export import export_keras
from rnnkit.saving.model_file import save_model
from rnnkit.saving.serialization import builtin_model, register_builtin_model
from rnnkit.saving.weights_file import load_weights, save_weights
from rnnkit.symbolic import KerasTensor, call_input_dtype, infer_outputs
from rnnkit.training.trainer import Trainer


def _unpack_singleton(x: Any) -> Any:
    if isinstance(x, (list, tuple)) and len(x) == 1:
        return x[0]
    return x


def _input_shapes(inputs: Any) -> Any:
    """The shapes of (nested) inputs, as tuples with None for unknown sizes; None when an
    input has no shape."""
    if inputs is None or not all(hasattr(x, "shape") for x in tree.flatten(inputs)):
        return None
    return tree.map_structure(
        lambda x: tuple(None if d is None else int(d) for d in x.shape), inputs
    )


def _shape_of(x: Any) -> tuple[int, ...] | None:
    shape = getattr(x, "shape", None)
    # SymInts (torch.export) stay symbolic: int() would pin a dynamic size.
    return (
        None
        if shape is None
        else tuple(d if isinstance(d, torch.SymInt) else int(d) for d in shape)
    )


class Model(Trainer, Layer):
    """A functional (``Model(inputs, outputs)``) or subclassed model.

    Args:
        inputs: the model's inputs: one KerasTensor from :func:`rnnkit.Input`, or a list,
            tuple, dict or nested structure of them. Real inputs must be passed with the same
            structure (a dict may also be passed to a list-structured model, keyed by the
            Input names).
        outputs: KerasTensors computed from ``inputs``, in any structure; calling the model
            returns real tensors in that structure (a one-element list is unpacked, as Keras).
        name: the model's name (default ``"model"``, numbered).
        trainable: whether the weights are trained.

    Shapes: each real input must have the rank of its Input and the same sizes where the
    Input's are not None, else ``ValueError`` names the input.
    """

    def __init__(
        self,
        inputs: Any = None,
        outputs: Any = None,
        name: str | None = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._graph: Graph | None = None
        self._strict_input_shapes = True
        # lean calls of a functional model, by input signature (rnnkit.models.call_plan)
        self._call_plans: dict[tuple[Any, ...], call_plan.CallPlan] = {}
        # subclassed models: the input shapes of the first call or build(), for saving
        self._build_input_shape: Any = None
        if inputs is None and outputs is None:
            return
        if inputs is None or outputs is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': a functional model needs both inputs and outputs; "
                f"received inputs={inputs!r}, outputs={outputs!r}"
            )
        self._set_graph(Graph(inputs, outputs, self.name))

    # ------------------------------------------------------------------ layers
    def _set_graph(self, graph: Graph | None) -> None:
        self._graph = graph
        if graph is not None:
            for layer in graph.layers:
                self._track_layer(layer)
            self.built = True

    def _track_layer(self, layer: Layer) -> None:
        """Register ``layer`` as a child module under a key derived from its name."""
        if isinstance(layer, InputLayer) or any(m is layer for m in self._modules.values()):
            return
        base = re.sub(r"\W", "_", layer.name)
        if not base or base[0].isdigit():
            base = f"layer_{base}"
        key, i = base, 0
        while (
            hasattr(type(self), key)
            or key in self.__dict__
            or key in self._modules
            or key in self._parameters
            or key in self._buffers
        ):
            i += 1
            key = f"{base}_{i}"
        self.add_module(key, layer)

    @property
    def layers(self) -> list[Layer]:
        """The model's layers: for a functional model in graph order, InputLayers included
        (as Keras); for a subclassed model the layers assigned as attributes, in order."""
        if self._graph is not None:
            return list(self._graph.layers)
        return list(self._sublayers())

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called ``name``, or at position ``index`` of :attr:`layers`."""
        if name is not None and index is not None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': get_layer takes name or index, not both; received "
                f"name={name!r}, index={index!r}"
            )
        layers = self.layers
        if index is not None:
            if not isinstance(index, int) or not -len(layers) <= index < len(layers):
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': get_layer index {index!r} is out of range: the "
                    f"model has {len(layers)} layers"
                )
            return layers[index]
        if name is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': get_layer needs a name or an index"
            )
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"{type(self).__name__} '{self.name}': no layer named {name!r}; the layers are "
            f"{[layer.name for layer in layers]}"
        )

    def reset_states(self) -> None:
        """Reset the states of every stateful layer in the model (nested models included)."""
        for layer in self._flatten_layers():
            if layer is not self and getattr(layer, "stateful", False):
                reset = getattr(layer, "reset_states", None)
                if reset is None:
                    raise TypeError(
                        f"layer '{layer.name}' is stateful but has no reset_states() method"
                    )
                reset()

    @property
    def _config_node_offset(self) -> int:
        """1 for a functional model: Keras 3 counts its own node first in configs."""
        return 1 if self._graph is not None else 0

    # ------------------------------------------------------------ graph props
    def _require_graph(self, what: str) -> Graph:
        if self._graph is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' has no {what}: it is not a functional "
                "model (or a Sequential model that is built)"
            )
        return self._graph

    def get_build_config(self) -> dict[str, Any] | None:
        """``{"input_shape": ...}``: the shapes a subclassed model was first built or called
        with, from which a loader rebuilds it; None for a functional model (its graph says
        it) or a model not built yet."""
        if self._graph is not None or self._build_input_shape is None:
            return None
        return {"input_shape": self._build_input_shape}

    @property
    def inputs(self) -> list[KerasTensor] | None:
        """The flat list of input KerasTensors (None for a subclassed model)."""
        return None if self._graph is None else list(self._graph.inputs)

    @property
    def outputs(self) -> list[KerasTensor] | None:
        """The flat list of output KerasTensors (None for a subclassed model)."""
        return None if self._graph is None else list(self._graph.outputs)

    @property
    def input(self) -> Any:
        """The model's symbolic input(s), nested as given (one KerasTensor for a single input);
        a subclassed model has them only after a symbolic call (then as any layer)."""
        if self._graph is None:
            return super().input
        return _unpack_singleton(self._graph.inputs_struct)

    @property
    def output(self) -> Any:
        """The model's symbolic output(s), nested as given (one KerasTensor for one output)."""
        if self._graph is None:
            return super().output
        return _unpack_singleton(self._graph.outputs_struct)

    @property
    def input_shape(self) -> Any:
        """Shapes of the inputs, nested like them (one shape for a single input)."""
        graph = self._require_graph("input shape")
        return _unpack_singleton(tree.map_structure(lambda x: x.shape, graph.inputs_struct))

    @property
    def output_shape(self) -> Any:
        """Shapes of the outputs, nested like them (one shape for a single output)."""
        graph = self._require_graph("output shape")
        return _unpack_singleton(tree.map_structure(lambda x: x.shape, graph.outputs_struct))

    @property
    def input_names(self) -> list[str]:
        return [] if self._graph is None else [x.name for x in self._graph.inputs]

    @property
    def output_names(self) -> list[str]:
        """One name per flat output: the producing layer's name, ``_1``, ``_2`` appended when
        a layer gives several outputs (Keras 2's names, e.g. ``rnn_1``, ``rnn_1_1``)."""
        if self._graph is None:
            return []
        names: list[str] = []
        for x in self._graph.outputs:
            base, name, i = x._keras_history[0].name, x._keras_history[0].name, 0
            while name in names:
                i += 1
                name = f"{base}_{i}"
            names.append(name)
        return names

    # -------------------------------------------------------------------- call
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._graph is not None and len(args) == 1:
            # The lean call of a chain graph (rnnkit.models.call_plan), when one is recorded.
            plan = call_plan.lookup(self, args[0], kwargs)
            if plan is not None:
                return plan.run(self, args[0], kwargs.get("training"))
            outputs = super().__call__(*args, **kwargs)
            call_plan.record(self, args[0], kwargs)
            return outputs
        if self._graph is None and self._build_input_shape is None:
            # A subclassed model remembers the shapes of its first inputs (KerasTensors keep
            # their None sizes), so that a saved model can be rebuilt before its weights load.
            inputs = args[0] if args else kwargs.get("inputs")
            self._build_input_shape = _input_shapes(inputs)
        return super().__call__(*args, **kwargs)

    def _call_replays_graph(self) -> bool:
        """Whether calling this model replays its graph as ``Model.call`` does (neither
        ``call`` nor ``forward`` overridden), so that a call plan may run it instead."""
        return type(self).call is Model.call and type(self).forward is Layer.forward

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> Any:
        """A model that replays its graph (functional or ``Sequential``), called as a layer on
        its one input: the graph replayed on KerasTensors, each layer's outputs inferred from
        its inputs (told from shapes where the layer can, else a placeholder run of that layer
        alone) instead of the whole model running on placeholders. None for other calls
        (other arguments, several inputs, a mixed policy, an input shape the model does not
        expect): they run on placeholders, which raises the errors."""
        graph = self._graph
        if (
            kwargs
            or graph is None
            or not self.built
            or not self._call_replays_graph()
            or self._autocast_dtype is not None
            or len(graph.inputs) != 1
            or tree.is_nested(graph.inputs_struct)
        ):
            return None
        expected = graph.inputs[0].shape
        if len(inputs.shape) != len(expected) or any(
            r is not None and r != s for r, s in zip(expected, inputs.shape)
        ):
            return None  # the placeholder run checks the shape (or adapts a trailing axis)
        x = KerasTensor(inputs.shape, call_input_dtype(self, inputs))
        mask = inputs._keras_mask
        if mask is not None:
            x._keras_mask = KerasTensor(mask.shape, mask.dtype)
        outputs = graph.infer([x])
        return None if outputs is None else _unpack_singleton(outputs)

    def _maybe_build(self, inputs: Any) -> None:
        # Sublayers of a subclassed model build themselves on their first call.
        self.built = True

    def build(self, input_shape: Any = None) -> None:
        """Build a subclassed model's layers for inputs of ``input_shape`` (shapes with the
        batch axis, nested like the inputs) by running ``call`` on placeholders."""
        if self._graph is not None or input_shape is None:
            return
        if self._build_input_shape is None:
            self._build_input_shape = input_shape
        symbolic = tree.map_shape_structure(
            lambda s: KerasTensor(tuple(s), self._dtype), input_shape
        )
        infer_outputs(self, (symbolic,), {})

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        """Replay the functional graph on ``inputs`` (subclassed models override this).

        ``training`` reaches every layer (through the calling context) and ``mask``, one
        boolean tensor per input, is attached to the inputs before replaying.
        """
        if self._graph is None:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': a subclassed Model must define "
                "call(self, inputs, training=None)"
            )
        return _unpack_singleton(self._run_graph(inputs, mask))

    def _run_graph(self, inputs: Any, mask: Any = None) -> Any:
        graph = self._graph
        flat = self._flatten_inputs(inputs)
        if mask is not None:
            masks = tree.flatten(mask) if tree.is_nested(mask) else [mask]
            for x, m in zip(flat, masks):
                if m is not None and isinstance(x, torch.Tensor):
                    x._keras_mask = m
        return graph.run(flat)

    def _flatten_inputs(self, inputs: Any) -> list[Any]:
        graph = self._graph
        expected = graph.inputs
        struct = graph.inputs_struct
        if isinstance(inputs, Mapping) and not isinstance(struct, Mapping):
            names = [x.name for x in expected]
            missing = [name for name in names if name not in inputs]
            unknown = sorted(str(k) for k in inputs if k not in names)
            if missing or unknown:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': inputs given as a dict must have "
                    f"the keys {names} (the Input names); missing {missing}, unknown "
                    f"{unknown}, received keys {sorted(map(str, inputs))}"
                )
            flat = [inputs[x.name] for x in expected]
        elif isinstance(inputs, Mapping) and isinstance(struct, Mapping):
            if set(inputs) != set(struct):
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': expected inputs with the keys {sorted(struct)}, "
                    f"received keys {sorted(inputs)}"
                )
            flat = tree.flatten({k: inputs[k] for k in struct})
        elif len(expected) == 1 and not tree.is_nested(struct):
            flat = [_unpack_singleton(inputs)] if isinstance(inputs, (list, tuple)) else [inputs]
        else:
            flat = tree.flatten(inputs) if tree.is_nested(inputs) else [inputs]
        if len(flat) != len(expected):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': expected {len(expected)} inputs "
                f"({', '.join(repr(x.name) for x in expected)}), received {len(flat)}"
            )
        return [self._check_input(x, ref) for x, ref in zip(flat, expected)]

    def _check_input(self, x: Any, ref: KerasTensor) -> Any:
        if isinstance(x, KerasTensor):
            return x
        if not isinstance(x, torch.Tensor):
            if isinstance(x, (list, tuple, int, float, np.ndarray, np.generic)):
                x = self._convert_inputs(np.asarray(x))
            else:
                raise TypeError(
                    f"{type(self).__name__} '{self.name}': input {ref.name!r} must be a tensor or array, "
                    f"received {type(x).__name__}"
                )
        shape, ref_shape = _shape_of(x), ref.shape
        if len(shape) == len(ref_shape) - 1 and ref_shape[-1] == 1:
            x, shape = x.unsqueeze(-1), (*shape, 1)  # Keras adds a trailing axis of size 1
        elif len(shape) == len(ref_shape) + 1 and shape[-1] == 1:
            x, shape = x.squeeze(-1), shape[:-1]
        bad = len(shape) != len(ref_shape) or (
            self._strict_input_shapes
            and any(r is not None and r != s for r, s in zip(ref_shape, shape))
        )
        if bad:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': input {ref.name!r} expects shape {ref_shape} "
                f"(None: any size), received an input of shape {shape}"
            )
        return x

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """Functional models: ``name``, ``trainable``, ``layers`` (each serialized with
        ``inbound_nodes``), ``input_layers``, ``output_layers`` as in Keras 3."""
        if self._graph is None:
            return super().get_config()
        return {
            "name": self.name,
            "trainable": self.trainable,
            **graph_config(self._graph, serialize),
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: Mapping[str, Any] | None = None
    ) -> Model:
        if "layers" not in config or "output_layers" not in config:
            return cls(**config)
        inputs, outputs = graph_from_config(config, _layer_deserializer(custom_objects))
        return cls(
            inputs=inputs,
            outputs=outputs,
            name=config.get("name"),
            trainable=config.get("trainable", True),
        )

    # ----------------------------------------------------------------- summary
    def summary(
        self,
        line_length: int | None = None,
        positions: list[float] | None = None,
        print_fn: Callable[[str], Any] | None = None,
        expand_nested: bool = False,
        show_trainable: bool = False,
    ) -> None:
        """Print the layers, their output shapes and parameter counts as Keras does (see
        :func:`rnnkit.models.summary.print_summary`)."""
        print_summary(
            self,
            line_length=line_length,
            positions=positions,
            print_fn=print_fn,
            expand_nested=expand_nested,
            show_trainable=show_trainable,
        )

    # ------------------------------------------------------------------ saving
    def save(
        self,
        filepath: Any,
        overwrite: bool = True,
        include_optimizer: bool = True,
        format: str = "rnnkit",
    ) -> None:
        """Save to a ``.keras`` file: ``format="rnnkit"`` writes rnnkit's own file (any model,
        with the optimizer state; see :func:`rnnkit.saving.save_model`), ``format="keras"``
        a file in Keras 3's layout that ``keras.saving.load_model`` reads (Keras' layers
        only; see :func:`rnnkit.saving.export_keras`)."""
        if format == "keras":
            export_keras(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)
        elif format == "rnnkit":
            save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)
        else:
            raise ValueError(f'save: format must be "rnnkit" or "keras", received {format!r}')

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        """Save the weights to a ``.weights.safetensors`` file (rnnkit's) or a
        ``.weights.h5`` file (Keras 3's layout); see :func:`rnnkit.saving.save_weights`."""
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: Any, limits: Any = None) -> None:
        """Load a ``.weights.safetensors`` file or a Keras 3 ``.weights.h5`` file (see
        :func:`rnnkit.saving.load_weights`; ``limits``: a :class:`rnnkit.saving.LoadLimits`)."""
        load_weights(self, filepath, limits=limits)


def _layer_deserializer(custom_objects: Mapping[str, Any] | None) -> Callable[[Any], Layer]:
    # Sequential (a subclass of Model, in a module that imports this one) is found through
    # the registry it joins when rnnkit.models is imported.
    objects = {"Model": Model, "Functional": Model, "Sequential": builtin_model("Sequential")}
    objects.update(custom_objects or {})

    def load(layer_config: Any) -> Layer:
        cls = objects.get(layer_config.get("class_name"))
        if isinstance(cls, type) and issubclass(cls, Model):
            return cls.from_config(dict(layer_config.get("config") or {}), objects)
        return deserialize(layer_config, objects)

    return load


register_builtin_model("Functional", Model)
register_builtin_model("Model", Model)
