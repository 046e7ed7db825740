"""``Sequential``: a stack of single-input layers, each called on the previous one's output.

The model builds its graph (a functional model from an ``InputLayer`` to the last layer) as
soon as it knows the input shape:

- immediately, when the first item is ``rnnkit.Input(...)``/an ``InputLayer``, or the first
  layer was given ``input_shape=``/``batch_input_shape=``/``input_dim=`` (Keras), or the first
  layer is an ``Embedding`` (Keras 2 gave it the input shape ``(None, input_length)``, which
  is why the guide can print the summary of an Embedding model before calling it);
- otherwise lazily, on the first call, from the input's shape with the batch size left
  ``None``; sizes other than the rank are then not enforced on later calls;
- or by ``model.build(batch_input_shape)``.

An InputLayer the model makes itself is named after the first layer (``"embedding_input"``,
as Keras 2), so that it does not use up the names of the user's ``Input`` tensors.
``model.layers`` excludes the ``InputLayer``, as in Keras. Each call passes ``training`` to
every layer (through the calling context), and masks travel on the tensors.

>>> import rnnkit
>>> from rnnkit.layers import Dense
>>> model = rnnkit.Sequential([Dense(4, input_shape=(3,)), Dense(2)])
>>> model.output_shape
(None, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from rnnkit.layers import core
from rnnkit.layers.base import Layer
from rnnkit.layers.input_layer import InputLayer
from rnnkit.layers.serialization import serialize
from rnnkit.models.functional import Graph
from rnnkit.models.model import Model, _layer_deserializer
from rnnkit.saving.serialization import register_builtin_model
from rnnkit.symbolic import KerasTensor


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in value
    )


def _declared_batch_shape(layer: Layer) -> tuple[int | None, ...] | None:
    shape = getattr(layer, "_batch_input_shape", None)
    if shape is not None:
        return tuple(shape)
    if isinstance(layer, core.Embedding):
        return (None, getattr(layer, "input_length", None))
    return None


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: the layers to add, in order (the first may be ``rnnkit.Input(...)``).
        name: the model's name (default ``"sequential"``, numbered).
        trainable: whether the weights are trained.

    Shapes: the input of layer ``k + 1`` is the output of layer ``k``; the model's input is
    the first layer's input and its output is the last layer's output.
    """

    def __init__(
        self,
        layers: Iterable[Any] | None = None,
        name: str | None = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._stack: list[Layer] = []
        if layers is None:
            return
        if isinstance(layers, (Layer, KerasTensor)) or not isinstance(layers, Iterable):
            raise TypeError(
                f"Sequential '{self.name}': layers must be a list of layers, received "
                f"{type(layers).__name__}"
            )
        for layer in layers:
            self.add(layer, rebuild=False)
        self._maybe_rebuild()

    # ------------------------------------------------------------------ stack
    def add(self, layer: Any, rebuild: bool = True) -> None:
        """Put ``layer`` (a Layer, or ``rnnkit.Input(...)``) on top of the stack."""
        if isinstance(layer, KerasTensor):
            origin = layer._keras_history[0] if layer._keras_history else None
            if not isinstance(origin, InputLayer):
                raise ValueError(
                    f"Sequential '{self.name}': add() accepts a symbolic tensor only when it "
                    f"comes from rnnkit.Input; received {layer!r}"
                )
            layer = origin
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential '{self.name}': add() expects an rnnkit Layer, received "
                f"{layer!r} of type {type(layer).__name__}"
            )
        if isinstance(layer, InputLayer) and self._stack:
            if isinstance(self._stack[0], InputLayer):
                raise ValueError(
                    f"Sequential '{self.name}' already has the input shape "
                    f"{self._stack[0].batch_shape}; it cannot take a second Input"
                )
            raise ValueError(
                f"Sequential '{self.name}': an Input can only be added first, before any layer"
            )
        if any(other.name == layer.name and other is not layer for other in self._stack):
            raise ValueError(
                f"Sequential '{self.name}': a layer named {layer.name!r} is already in the "
                "model; layer names must be unique (pass name=...)"
            )
        if not self._stack and not isinstance(layer, InputLayer):
            batch_shape = _declared_batch_shape(layer)
            if batch_shape is not None:
                self._stack.append(InputLayer(batch_shape=batch_shape, name=f"{layer.name}_input"))
        self._stack.append(layer)
        self._track_layer(layer)
        if rebuild:
            self._maybe_rebuild()
        else:
            self._reset_graph()

    def pop(self, rebuild: bool = True) -> Layer:
        """Remove and return the top layer."""
        if not self.layers:
            raise ValueError(f"Sequential '{self.name}': pop() on a model with no layers")
        layer = self._stack.pop()
        for key, module in list(self._modules.items()):
            if module is layer:
                del self._modules[key]
        if rebuild:
            self._maybe_rebuild()
        else:
            self._reset_graph()
        return layer

    def _reset_graph(self) -> None:
        self._graph = None
        self.built = False

    def _maybe_rebuild(self) -> None:
        self._reset_graph()
        if self._stack and isinstance(self._stack[0], InputLayer) and len(self._stack) > 1:
            self.build(self._stack[0].batch_shape)

    @property
    def _config_node_offset(self) -> int:
        return 0  # Keras 3's Sequential is not a functional model: no node of its own

    @property
    def layers(self) -> list[Layer]:
        """The layers added, without the InputLayer (as Keras)."""
        return [layer for layer in self._stack if not isinstance(layer, InputLayer)]

    # ------------------------------------------------------------------ build
    def build(self, input_shape: Any = None) -> None:
        """Build every layer and the graph for inputs of ``input_shape`` (with the batch
        axis); a nested ``input_shape`` builds the layers without a graph."""
        if not self.layers:
            raise ValueError(
                f"Sequential '{self.name}' cannot be built: it has no layers; call add() first"
            )
        if input_shape is None or not _is_shape(input_shape):
            if input_shape is not None:
                Model.build(self, input_shape)
            self.built = True
            return
        input_shape = tuple(input_shape)
        first = self._stack[0]
        if isinstance(first, InputLayer):
            if tuple(first.batch_shape) != input_shape:
                raise ValueError(
                    f"Sequential '{self.name}' has the input shape {first.batch_shape}; it "
                    f"cannot be built with input_shape {input_shape}"
                )
        else:
            dtype = first._dtype if first._dtype_explicit else None
            first = InputLayer(batch_shape=input_shape, dtype=dtype, name=f"{first.name}_input")
            self._stack.insert(0, first)
        x = first.output
        for layer in self.layers:
            x = layer(x)
            if not isinstance(x, KerasTensor):
                raise ValueError(
                    f"Sequential '{self.name}': layer '{layer.name}' returned "
                    f"{type(x).__name__}, but a Sequential layer must return one tensor; use "
                    "a functional Model for layers with several outputs"
                )
        self._set_graph(Graph(first.output, x, self.name))

    def _maybe_build(self, inputs: Any) -> None:
        if self.built:
            return
        if isinstance(inputs, torch.Tensor):
            self.build((None, *tuple(inputs.shape)[1:]))
            self._strict_input_shapes = False
            if inputs.device.type != "cpu":
                self.to(inputs.device)
        else:
            self.built = True

    def _call_replays_graph(self) -> bool:
        return type(self).call is Sequential.call and type(self).forward is Layer.forward

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        """Run the layers in order (``training`` and masks reach each layer)."""
        if self._graph is not None:
            return self._run_graph(inputs, mask)
        if mask is not None and isinstance(inputs, torch.Tensor):
            inputs._keras_mask = mask
        for layer in self.layers:
            inputs = layer(inputs)
        return inputs

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """``name``, ``trainable``, ``layers`` (the InputLayer first when there is one) and
        ``build_input_shape``, as in Keras 3."""
        config: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [serialize(layer) for layer in self._stack],
        }
        if self._graph is not None:
            config["build_input_shape"] = list(self._stack[0].batch_shape)
        return config

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: Mapping[str, Any] | None = None
    ) -> Sequential:
        if "layers" not in config:
            raise ValueError(f"Sequential.from_config: the config has no 'layers': {config!r}")
        load = _layer_deserializer(custom_objects)
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config["layers"]:
            model.add(load(layer_config), rebuild=False)
        build_shape = config.get("build_input_shape")
        if model._stack and isinstance(model._stack[0], InputLayer):
            model._maybe_rebuild()
        elif build_shape is not None:
            model.build(tuple(build_shape))
        return model


register_builtin_model("Sequential", Sequential)
