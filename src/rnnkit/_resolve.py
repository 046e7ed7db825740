"""One lookup used by the registries (initializers, activations, regularizers, constraints)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rnnkit.registry import get_registered_object


def resolve(identifier: Any, table: Mapping[str, Any], kind: str, argument: str) -> Any:
    """Turn a string name or ``{"class_name", "config"}`` dict into an object from ``table``.

    ``table`` maps names (snake_case aliases and class names) to classes or functions; a class
    found by name is instantiated with the dict's config (or no arguments). Anything callable
    passes through. Unknown names raise ``ValueError`` listing the valid ones.
    """
    if isinstance(identifier, Mapping):
        name = identifier.get("class_name")
        config = identifier.get("config") or {}
        if name == "function" and isinstance(config, str):
            name, config = config, {}  # Keras 3 saves a function by name: only a name here
        if not isinstance(name, str):
            raise ValueError(
                f"{argument}: a {kind} config needs a string class_name, received {str(name)[:60]}"
            )
        if not isinstance(config, Mapping):
            raise ValueError(
                f"{argument}: the config of the {kind} {name[:60]!r} must be a dict, received "
                f"{type(config).__name__}"
            )
        config = dict(config)
    elif isinstance(identifier, str):
        name, config = identifier, {}
    elif callable(identifier):
        return identifier
    else:
        raise TypeError(
            f"{argument}: expected a {kind} name, config dict or callable, "
            f"received {identifier!r} of type {type(identifier).__name__}"
        )
    if name not in table:
        found = get_registered_object(name)
        if found is None:
            valid = ", ".join(sorted(k for k in table if k[:1].islower()))
            raise ValueError(f"{argument}: unknown {kind} {name[:60]!r}. Valid names: {valid}")
        target = found
    else:
        target = table[name]
    if isinstance(target, type):
        try:
            return target(**config)
        except (TypeError, ValueError) as e:
            if type(e) not in (TypeError, ValueError):
                raise
            raise type(e)(f"{argument}: {e}") from e
    return target
