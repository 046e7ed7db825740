"""Layers to and from ``{"class_name": ..., "config": ...}`` dicts.

Classes resolve through an allowlist: ``custom_objects``, classes registered with
``rnnkit.saving.register_keras_serializable``, and rnnkit's own public layers. Nothing is
imported by a module name found in a config.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from rnnkit.layers.base import Layer
from rnnkit.registry import get_registered_name, get_registered_object


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": "LSTM", "config": layer.get_config()}``."""
    if not isinstance(layer, Layer):
        raise TypeError(f"serialize: expected an rnnkit Layer, received {type(layer).__name__}")
    return {"class_name": get_registered_name(layer), "config": layer.get_config()}


def get_layer_class(class_name: str, custom_objects: Mapping[str, Any] | None = None) -> type:
    """The Layer class named ``class_name`` from the allowlist, or ``ValueError``."""
    # Lazy: the allowlist is the rnnkit.layers package, which imports this module.
    import rnnkit.layers as public_layers

    found = get_registered_object(class_name, custom_objects)
    if found is None:
        candidate = getattr(public_layers, class_name, None)
        if isinstance(candidate, type) and issubclass(candidate, Layer):
            found = candidate
    if not (isinstance(found, type) and issubclass(found, Layer)):
        raise ValueError(
            f"unknown layer class {str(class_name)[:60]!r}: rnnkit has no such layer and "
            "custom_objects does not name it"
        )
    return found


def deserialize(
    config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None
) -> Layer:
    """Rebuild a layer from :func:`serialize`'s output."""
    if not isinstance(config, Mapping) or "class_name" not in config:
        raise ValueError(
            f"deserialize: expected a dict with 'class_name' and 'config', received {config!r}"
        )
    cls = get_layer_class(config["class_name"], custom_objects)
    inner = config.get("config") or {}
    if not isinstance(inner, Mapping):
        raise ValueError(
            f"deserialize: the config of a {cls.__name__} must be a dict, received "
            f"{type(inner).__name__}"
        )
    inner = dict(inner)
    try:
        if custom_objects and "custom_objects" in inspect.signature(cls.from_config).parameters:
            return cls.from_config(inner, custom_objects=custom_objects)
        return cls.from_config(inner)
    except (ValueError, TypeError) as e:
        if type(e) not in (ValueError, TypeError) or str(e).startswith("layer '"):
            raise
        # name the layer at fault (the innermost one, for layers inside wrappers)
        raise type(e)(f"layer {str(inner.get('name', '?'))[:100]!r}: {e}") from e
