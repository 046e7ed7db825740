"""``Lambda``: a Python function used as a layer.

``Lambda(fn)(inputs)`` computes ``fn(inputs, **arguments)`` (``fn`` also receives ``mask``
and ``training`` when its signature names them). It has no weights.

Saving: rnnkit files hold no code. A ``Lambda`` saves its function by name, so only a named
function (``def``, not ``lambda``) can be saved, and loading finds it by that name among
``custom_objects`` and functions registered with ``rnnkit.saving.register_keras_serializable``
only, never by importing a module. As for any file with a ``Lambda``, ``load_model`` refuses it
in safe mode (the default) and needs ``safe_mode=False``. Functions Keras saved as Python
bytecode (``"__lambda__"``) are never loaded, in either mode.

>>> import numpy as np
>>> double = Lambda(lambda x: 2 * x)
>>> double(np.ones((1, 2), np.float32)).tolist()
[[2.0, 2.0]]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from rnnkit import tree
from rnnkit.layers.base import Layer
from rnnkit.layers.shapes import layer_label
from rnnkit.registry import get_registered_object


def _function_name(fn: Callable[..., Any], argument: str, owner: str) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"{owner}: {argument} is a Python lambda, which cannot be saved (rnnkit files hold "
            "no code); use a named function (def), registered with "
            "rnnkit.saving.register_keras_serializable or passed in custom_objects when loading"
        )
    return getattr(fn, "_registered_name", None) or name


def _resolve_function(
    entry: Any, argument: str, custom_objects: Mapping[str, Any] | None
) -> Callable[..., Any]:
    """The function a config names (``"name"`` or ``{"class_name": "function", "config":
    "name"}``), from ``custom_objects`` or the registry only."""
    if isinstance(entry, Mapping):
        if entry.get("class_name") == "__lambda__":
            raise ValueError(
                f"Lambda: the {argument} was saved as Python bytecode ('__lambda__'), which "
                "rnnkit never loads; rebuild the layer with a named function and pass it in "
                "custom_objects"
            )
        if entry.get("class_name") != "function" or not isinstance(entry.get("config"), str):
            raise ValueError(f"Lambda: cannot read {argument}={dict(entry)!r}")
        entry = entry["config"]
    if not isinstance(entry, str):
        raise ValueError(f"Lambda: {argument} must name a function, received {entry!r}")
    found = get_registered_object(entry, custom_objects)
    if found is None:
        found = get_registered_object(entry.split(">")[-1], custom_objects)
    if not callable(found):
        raise ValueError(
            f"Lambda: the {argument} {entry!r} is not in custom_objects and not registered with "
            "rnnkit.saving.register_keras_serializable"
        )
    return found


class Lambda(Layer):
    """Wraps ``function`` as a layer: ``outputs = function(inputs, **arguments)``.

    Args:
        function: the computation, a callable of the inputs (a tensor or a list).
        output_shape: what ``compute_output_shape`` returns: a per-sample shape (without the
            batch axis), or a callable of the input shape; by default inferred by running
            ``function`` (symbolic calls always run it on placeholders).
        mask: the output mask: None (no mask), a callable ``(inputs, mask) -> mask``, or a
            fixed tensor.
        arguments: extra keyword arguments for ``function`` (plain values).
    """

    def __init__(
        self,
        function: Callable[..., Any],
        output_shape: Any = None,
        mask: Any = None,
        arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, received {function!r}")
        if arguments is not None and not isinstance(arguments, Mapping):
            raise TypeError(f"Lambda: arguments must be a dict or None, received {arguments!r}")
        super().__init__(**kwargs)
        self.function = function
        self.output_shape = output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})
        self.supports_masking = mask is not None
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):
            parameters = {}
        self._passes_mask = "mask" in parameters
        self._passes_training = "training" in parameters

    def call(self, inputs: Any, mask: Any = None, training: bool = False) -> Any:
        kwargs = dict(self.arguments)
        if self._passes_mask:
            kwargs["mask"] = mask
        if self._passes_training:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self.output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self.output_shape):
            return self.output_shape(input_shape)
        first = input_shape
        while isinstance(first, (list, tuple)) and first and isinstance(first[0], (list, tuple)):
            first = first[0]
        batch = first[0] if isinstance(first, (list, tuple)) and first else None
        return tree.map_shape_structure(lambda s: (batch, *tuple(s)), self.output_shape)

    def get_config(self) -> dict[str, Any]:
        owner = layer_label(self)
        config = {
            **super().get_config(),
            "function": {
                "class_name": "function",
                "config": _function_name(self.function, "function", owner),
            },
            "arguments": dict(self.arguments),
        }
        for key, value in (("output_shape", self.output_shape), ("mask", self.mask)):
            if callable(value):
                value = {"class_name": "function", "config": _function_name(value, key, owner)}
            elif key == "mask" and value is not None:
                raise ValueError(f"{owner}: a fixed mask tensor cannot be saved")
            elif value is not None:
                value = list(value)
            config[key] = value
        return config

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: Mapping[str, Any] | None = None
    ) -> Lambda:
        config = dict(config)
        config["function"] = _resolve_function(config.get("function"), "function", custom_objects)
        for key in ("output_shape", "mask"):
            value = config.get(key)
            if isinstance(value, (Mapping, str)):
                config[key] = _resolve_function(value, key, custom_objects)
            elif isinstance(value, list):
                config[key] = tuple(value)
        return cls(**config)
