"""Registration of custom classes by name, and (de)serialisation of config objects (a leaf
module: it imports nothing of rnnkit, so layers, activations and initializers can use it).

Classes resolve only through this registry, rnnkit's own tables and ``custom_objects``:
nothing is imported by a module name found in a config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_REGISTRY: dict[str, Any] = {}


def register_keras_serializable(
    package: str = "Custom", name: str | None = None
) -> Callable[[T], T]:
    """Class or function decorator: make it loadable by name (``"package>Name"`` and ``"Name"``).

    >>> @register_keras_serializable()
    ... class MyCell: ...
    """

    def decorator(obj: T) -> T:
        registered = name or getattr(obj, "__name__", None)
        if registered is None:
            raise TypeError(f"register_keras_serializable: cannot find a name for {obj!r}")
        _REGISTRY[f"{package}>{registered}"] = obj
        _REGISTRY[registered] = obj
        obj._registered_name = f"{package}>{registered}"  # type: ignore[attr-defined]
        return obj

    return decorator


register_serializable = register_keras_serializable


def get_registered_object(
    name: str | None, custom_objects: Mapping[str, Any] | None = None
) -> Any | None:
    """The class or function registered under ``name`` (custom_objects first), else None."""
    if name is None:
        return None
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return _REGISTRY.get(name)


def get_registered_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    # only the class's own registration: a subclass of a registered class is not registered
    return cls.__dict__.get("_registered_name") or cls.__name__


def serialize_keras_object(obj: Any) -> Any:
    """``None`` and plain values pass; functions become their name; objects with ``get_config``
    become ``{"class_name": ..., "config": ...}``."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "get_config"):
        return {"class_name": get_registered_name(obj), "config": obj.get_config()}
    if callable(obj) and hasattr(obj, "__name__"):
        return getattr(obj, "_registered_name", obj.__name__)
    raise TypeError(f"cannot serialize {obj!r} of type {type(obj).__name__}")


# Model classes rnnkit itself defines, registered by rnnkit.models (so that saving, which
# reads and writes their files, imports no model class): name in a file -> class. The first
# name registered for a class is the one written for it ("Functional" for Model).
_BUILTIN_MODELS: dict[str, type] = {}


def register_builtin_model(name: str, cls: type) -> None:
    """Make ``cls`` loadable as ``name`` in model files (rnnkit's own model classes)."""
    _BUILTIN_MODELS[name] = cls


def builtin_model(name: Any) -> type | None:
    """The built-in model class saved as ``name``, else None."""
    return _BUILTIN_MODELS.get(name) if isinstance(name, str) else None


def builtin_model_name(cls: type) -> str | None:
    """The name files use for the built-in model class ``cls`` (exact class), else None."""
    return next((name for name, c in _BUILTIN_MODELS.items() if c is cls), None)


def is_model(obj: Any) -> bool:
    """Whether ``obj`` is a model (an instance of a built-in model class or a subclass)."""
    return isinstance(obj, tuple(_BUILTIN_MODELS.values()))


def is_model_class(cls: Any) -> bool:
    """Whether ``cls`` is a built-in model class or a subclass of one."""
    return isinstance(cls, type) and issubclass(cls, tuple(_BUILTIN_MODELS.values()))
