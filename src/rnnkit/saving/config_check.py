"""Checks of an untrusted model config before anything is built from it.

:func:`check_config` walks a ``config.json`` (rnnkit's or Keras 3's) once, without recursion,
and refuses with a ``ValueError`` naming the file and the layer:

- Python code: ``Lambda`` layers and lambdas or functions saved as code, unless
  ``safe_mode=False``; a function saved by name (``{"class_name": "function", "config":
  "relu"}``) is only a name and resolves through the closed tables like any string;
- a ``class_name`` that is not a string;
- a recurrent layer's loop-compilation setting (``compile``/``compile_loop``) outside the closed
  set :data:`FILE_COMPILE_SETTINGS`: a file never chooses ``torch.compile`` options, which reach
  a compiler's command line and the file system;
- input shapes (``Input``/``InputLayer``, ``input_shape``/``batch_input_shape`` arguments, a
  subclassed model's ``build_config``) with negative or non-integer sizes, more than
  ``max_rank`` dimensions or more than ``max_input_elements`` per sample.

Layer arguments that name objects (activations, initializers, regularizers, constraints,
layer and model classes) resolve only through rnnkit's tables, the registry and
``custom_objects``; weights are bounded by :mod:`rnnkit.layers.allocation` while the model is
built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rnnkit.saving.limits import LoadLimits

# Keras' markers of Python code in a config: a Lambda layer, a lambda saved as bytecode.
CODE_CLASSES = ("Lambda", "__lambda__")
# The loop-compilation settings a file may hold (any others need safe_mode=False).
FILE_COMPILE_SETTINGS: dict[str, tuple[Any, ...]] = {
    "mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "dynamic": (None, True, False),
    "backend": ("inductor", "eager", "aot_eager"),
}
_COMPILE_KEYS = ("compile", "compile_loop")
_SHAPE_KEYS = ("input_shape", "batch_input_shape")
_INPUT_CLASSES = ("InputLayer",)


def _where(layer: str | None) -> str:
    return f"layer {layer!r}: " if layer else ""


def check_config(config: Any, source: str, safe_mode: bool, limits: LoadLimits) -> None:
    """Refuse what the module docstring lists; ``config`` is parsed JSON (depth-checked)."""
    stack: list[tuple[Any, str | None]] = [(config, None)]
    while stack:
        value, layer = stack.pop()
        if isinstance(value, list):
            stack.extend((item, layer) for item in value)
            continue
        if not isinstance(value, Mapping):
            continue
        if "class_name" in value:
            layer = _check_object(value, source, safe_mode, limits, layer)
        stack.extend((item, layer) for item in value.values())


def _check_object(
    value: Mapping[str, Any], source: str, safe_mode: bool, limits: LoadLimits, layer: str | None
) -> str | None:
    """Check one ``{"class_name", "config"}`` entry; the layer name for messages below it."""
    name = value["class_name"]
    if not isinstance(name, str):
        raise ValueError(
            f"{source}: {_where(layer)}class_name must be a string, received "
            f"{type(name).__name__} {str(name)[:60]}"
        )
    inner = value.get("config")
    if isinstance(inner, Mapping) and isinstance(inner.get("name"), str):
        layer = inner["name"][:100]
    code = name in CODE_CLASSES or (name == "function" and not isinstance(inner, str))
    if code and safe_mode:
        raise ValueError(
            f"{source}: {_where(layer)}the config holds a {name!r} object, i.e. Python code, "
            "which is not loaded in safe mode because it could run arbitrary code; pass "
            "safe_mode=False only if you trust the file's author"
        )
    if not isinstance(inner, Mapping):
        return layer
    if safe_mode:
        for key in _COMPILE_KEYS:
            if key in inner:
                _check_compile_setting(inner[key], key, source, layer)
    shapes = [inner[k] for k in _SHAPE_KEYS if inner.get(k) is not None]
    if name in _INPUT_CLASSES:
        shapes += [inner[k] for k in ("batch_shape", "shape") if inner.get(k) is not None]
    for shape in shapes:
        check_shape(shape, f"{source}: {_where(layer)}input shape", limits)
    build = value.get("build_config")
    if isinstance(build, Mapping) and build.get("input_shape") is not None:
        check_shape(build["input_shape"], f"{source}: {_where(layer)}build_config", limits)
    return layer


def _check_compile_setting(setting: Any, key: str, source: str, layer: str | None) -> None:
    if isinstance(setting, bool):
        return
    allowed = ", ".join(f"{k} in {list(v)}" for k, v in FILE_COMPILE_SETTINGS.items())
    if isinstance(setting, Mapping):
        bad = {
            k: v
            for k, v in setting.items()
            if k not in FILE_COMPILE_SETTINGS or v not in FILE_COMPILE_SETTINGS[k]
        }
        if not bad:
            return
        detail = f"{sorted(bad)}"
    else:
        detail = f"a {type(setting).__name__}"
    raise ValueError(
        f"{source}: {_where(layer)}{key}: a file may only switch loop compilation on or off "
        f"(true/false, or {{{allowed}}}), received {detail}; torch.compile options from a file "
        "could run a compiler with the file's arguments. Pass safe_mode=False only if you "
        "trust the file's author"
    )


def check_shape(shape: Any, where: str, limits: LoadLimits) -> None:
    """``ValueError`` unless ``shape`` is a (nested) list of sizes within ``limits``: each
    size None or an int >= 0, at most ``max_rank`` of them, their product (None counted as 1)
    at most ``max_input_elements``."""
    stack = [shape]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.values())
            continue
        if not isinstance(item, (list, tuple)):
            raise ValueError(f"{where}: expected a list of sizes, received {str(item)[:60]}")
        if item and all(isinstance(d, (list, tuple, Mapping)) for d in item):
            stack.extend(item)
            continue
        sizes = [d for d in item if d is not None]
        if len(item) > limits.max_rank or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in sizes
        ):
            raise ValueError(
                f"{where}: invalid shape {str(item)[:80]}: at most {limits.max_rank} sizes, "
                "each a non-negative integer or null"
            )
        if math.prod(sizes) > limits.max_input_elements:
            raise ValueError(
                f"{where}: the shape {str(item)[:80]} has {math.prod(sizes)} elements per "
                f"sample, more than the limit of {limits.max_input_elements} "
                "(LoadLimits.max_input_elements)"
            )
