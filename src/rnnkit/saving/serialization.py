"""Registration of custom classes by name, and (de)serialisation of config objects.

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
