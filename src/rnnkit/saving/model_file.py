"""Model files: ``model.save("m.keras")`` and :func:`load_model`.

A model file is a zip (written atomically, see :mod:`rnnkit.saving.files`) with:

- ``config.json``: ``{"class_name": "Functional" | "Sequential" | <registered name>,
  "config": model.get_config(), "compile_config": ... | null}``: the architecture as data
  (layer class names, their configs and, for functional models, the graph connections in
  Keras 3's ``inbound_nodes`` format); for a subclassed model also ``"build_config":
  {"input_shape": ...}``, the shapes of its first inputs, with which loading builds it;
- ``metadata.json``: ``{"format": "rnnkit.keras", "rnnkit_version", "torch_version",
  "date_saved", ...}``;
- ``model.weights.safetensors``: the weights (see :mod:`rnnkit.saving.weights_file`);
- when the model is compiled with an rnnkit optimizer that has taken a step:
  ``optimizer.json`` (its ``param_groups``, ``iterations`` and non-tensor state) and
  ``optimizer.safetensors`` (its state tensors, ``"state/<param index>/<name>"``).

There is no pickle and no code in a file. Loading is safe by default: classes resolve only
through rnnkit's own layers, classes registered with
:func:`rnnkit.saving.register_keras_serializable` and ``custom_objects``; ``module`` entries
are ignored (nothing is imported); a ``Lambda`` layer or serialized Python function is
refused unless ``safe_mode=False``; zip members are size-checked; weight shapes must match the
rebuilt model. Every refusal is a ``ValueError``.

:func:`load_model` also reads Keras 3 ``.keras`` files (``model.weights.h5`` inside), see
:mod:`rnnkit.saving.keras_import`.

>>> # model.save("m.keras"); again = rnnkit.saving.load_model("m.keras")
"""

from __future__ import annotations

import datetime
import inspect
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import torch
from safetensors.torch import save as st_save

from rnnkit._version import __version__
from rnnkit.layers.allocation import weight_budget
from rnnkit.layers.base import Layer
from rnnkit.saving import weights_file
from rnnkit.saving.config_check import check_config
from rnnkit.saving.files import SafeZipReader, _fspath, check_overwrite, write_zip
from rnnkit.saving.keras_import import KERAS_OPS, keras_model_from_zip
from rnnkit.saving.limits import LoadLimits, check_limits
from rnnkit.saving.serialization import (
    builtin_model,
    builtin_model_name,
    get_registered_name,
    get_registered_object,
    is_model,
    is_model_class,
)

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.safetensors"
OPTIMIZER_JSON = "optimizer.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
KERAS_WEIGHTS = "model.weights.h5"
_FORMAT = "rnnkit.keras"


class _Unserializable(Exception):
    """Internal: a compile argument that cannot be written to JSON."""


# --------------------------------------------------------------------------- save
def _model_class_name(model: Layer) -> str:
    builtin = builtin_model_name(type(model))
    if builtin == "Functional" and model.inputs is None:
        raise ValueError(
            f"save_model: the model '{model.name}' is a plain rnnkit.Model without inputs "
            "and outputs; subclass Model and register the class with "
            "rnnkit.saving.register_keras_serializable to save it"
        )
    if builtin is not None:
        return builtin
    name = get_registered_name(model)
    if get_registered_object(name) is not type(model):
        raise ValueError(
            f"save_model: the model class {type(model).__name__} is not registered, so the "
            "file could not be loaded; decorate it with "
            "@rnnkit.saving.register_keras_serializable()"
        )
    return name


def _serialize_compile_arg(value: Any) -> Any:
    """A loss, metric or weight spec as JSON: names and numbers as they are, rnnkit loss and
    metric objects and instances of registered classes as ``{"class_name", "config"}``,
    registered functions by their registered name."""
    # Lazy: rnnkit.training imports rnnkit.saving (weight files, backups).
    from rnnkit.training import losses as losses_module
    from rnnkit.training import metrics as metrics_module

    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_serialize_compile_arg(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _serialize_compile_arg(v) for k, v in value.items()}
    cls, cls_name = type(value), type(value).__name__
    registered = getattr(value, "_registered_name", None)
    if registered is not None and get_registered_object(registered) is value:
        return registered
    class_name = get_registered_name(cls)
    known = (losses_module._CLASSES.get(cls_name), metrics_module._CLASSES.get(cls_name))
    if cls in known or (get_registered_object(class_name) is cls and hasattr(value, "get_config")):
        config = value.get_config()
        if hasattr(value, "_compile_base_name"):  # a metric named "<output>_<name>" by compile
            config["name"] = value._compile_base_name
        return {"class_name": class_name, "config": config}
    raise _Unserializable(
        f"{value!r} is neither a name, an rnnkit loss or metric nor a registered object"
    )


def _compile_config(model: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``(compile_config, reason)``: the config, or None and why it was not saved."""
    # Lazy: rnnkit.training imports rnnkit.saving (weight files, backups).
    from rnnkit.training.optimizers import Optimizer

    if not getattr(model, "compiled", False):
        return None, None
    optimizer = model.optimizer
    if not isinstance(optimizer, Optimizer):
        return None, (
            f"the optimizer is a {type(optimizer).__name__}, not an rnnkit optimizer; "
            "recompile after loading"
        )
    compiled_loss = getattr(model, "_compiled_loss", None)
    try:
        config = {
            "optimizer": {"class_name": type(optimizer).__name__, "config": optimizer.get_config()},
            "loss": _serialize_compile_arg(model.loss),
            "loss_weights": _serialize_compile_arg(
                None if compiled_loss is None else compiled_loss.loss_weights
            ),
            "metrics": _serialize_compile_arg(model._compiled_metrics.spec),
            "weighted_metrics": _serialize_compile_arg(model._compiled_weighted_metrics.spec),
            # rnnkit's own compile argument (not in Keras files; absent means the default)
            "nan_policy": getattr(model, "_nan_policy", "raise"),
        }
    except _Unserializable as e:
        return None, f"a compile argument cannot be saved: {e}; recompile after loading"
    return config, None


def _optimizer_payload(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    # Lazy: rnnkit.training imports rnnkit.saving (weight files, backups).
    from rnnkit.training.optimizers import Optimizer

    optimizer = getattr(model, "optimizer", None)
    if not isinstance(optimizer, Optimizer) or not optimizer.built:
        return None
    state = optimizer.torch_optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{index}/{key}"] = value.detach().to("cpu").contiguous().clone()
            elif value is None or isinstance(value, (int, float, bool)):
                extra.setdefault(str(index), {})[key] = value
            else:
                raise ValueError(
                    f"save_model: the optimizer state '{key}' of parameter {index} has type "
                    f"{type(value).__name__}, which cannot be saved without pickle"
                )
    groups = json.loads(json.dumps(state["param_groups"], default=_json_default))
    info = {"param_groups": groups, "extra_state": extra, "iterations": optimizer.iterations}
    return info, tensors


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise ValueError(
        f"save_model: the optimizer setting {value!r} of type {type(value).__name__} cannot "
        "be written to JSON"
    )


def _plain_shape(shape: Any) -> Any:
    """A (nested) shape as JSON lists."""
    if isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, int) for d in shape):
        return list(shape)
    if isinstance(shape, Mapping):
        return {str(k): _plain_shape(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)):
        return [_plain_shape(s) for s in shape]
    raise ValueError(f"save_model: cannot write the build input shape {shape!r} to JSON")


def save_model(
    model: Any,
    filepath: str | os.PathLike,
    overwrite: bool = True,
    include_optimizer: bool = True,
) -> None:
    """Save ``model`` (architecture, weights, compile settings and optimizer state) to a
    ``.keras`` zip, atomically.

    Args:
        model: a built functional or Sequential rnnkit model, or a registered subclass.
        filepath: the file, ending in ``.keras``.
        overwrite: when False, an existing file raises ``ValueError``.
        include_optimizer: also save the compile settings and the optimizer state.
    """
    if not is_model(model):
        raise TypeError(f"save_model: expected an rnnkit Model, received {type(model).__name__}")
    path = _fspath(filepath)
    if not path.endswith(".keras"):
        raise ValueError(f"save_model: filepath must end in '.keras', received {path!r}")
    check_overwrite(path, overwrite)
    compile_config, reason = _compile_config(model) if include_optimizer else (None, None)
    config = {
        "class_name": _model_class_name(model),
        "config": model.get_config(),
        "compile_config": compile_config,
    }
    build_config = model.get_build_config()
    if build_config is not None:
        # a subclassed model is rebuilt with model.build(input_shape) before its weights load
        config["build_config"] = {"input_shape": _plain_shape(build_config["input_shape"])}
    metadata: dict[str, Any] = {
        "format": _FORMAT,
        "rnnkit_version": __version__,
        "torch_version": torch.__version__,
        "date_saved": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if reason is not None:
        metadata["compile_config_not_saved"] = reason
    members: dict[str, tuple[bytes, bool]] = {
        METADATA: (json.dumps(metadata, indent=1).encode(), True),
        CONFIG: (json.dumps(config, indent=1).encode(), True),
        WEIGHTS: (weights_file.weights_to_bytes(model), False),
    }
    payload = _optimizer_payload(model) if compile_config is not None else None
    if payload is not None:
        info, tensors = payload
        members[OPTIMIZER_JSON] = (json.dumps(info).encode(), True)
        members[OPTIMIZER_TENSORS] = (st_save(tensors, metadata={"format": _FORMAT}), False)
    write_zip(path, members)


# --------------------------------------------------------------------------- load
def model_class(class_name: Any, custom_objects: Mapping[str, Any] | None, source: str) -> type:
    """The Model class for a config's ``class_name`` (allowlist only)."""
    if not isinstance(class_name, str):
        raise ValueError(f"{source}: config.json has no model class_name (received {class_name!r})")
    cls = get_registered_object(class_name, custom_objects) or builtin_model(class_name)
    if not is_model_class(cls):
        raise ValueError(
            f"{source}: unknown model class {class_name[:60]!r}: rnnkit has no such model "
            "class and custom_objects does not name it"
        )
    return cls


def model_from_config(
    config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None, source: str
) -> Any:
    """Rebuild the model of a ``config.json`` (``{"class_name", "config"}``)."""
    if not isinstance(config, Mapping) or not isinstance(config.get("config"), Mapping):
        raise ValueError(f"{source}: config.json must hold {{'class_name', 'config'}} objects")
    cls = model_class(config.get("class_name"), custom_objects, source)
    inner = dict(config["config"])
    if "custom_objects" in inspect.signature(cls.from_config).parameters:
        model = cls.from_config(inner, custom_objects=custom_objects)
    else:
        model = cls.from_config(inner)
    build_config = config.get("build_config")
    if isinstance(build_config, Mapping) and not model.weights:
        model.build(_shape_from_json(build_config.get("input_shape"), source))
    return model


def _shape_from_json(shape: Any, source: str) -> Any:
    if isinstance(shape, list) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape
    ):
        return tuple(shape)
    if isinstance(shape, list):
        return [_shape_from_json(s, source) for s in shape]
    if isinstance(shape, Mapping):
        return {k: _shape_from_json(v, source) for k, v in shape.items()}
    raise ValueError(f"{source}: build_config has an invalid input_shape {shape!r}")


def _deserialize_compile_arg(
    value: Any, custom_objects: Mapping[str, Any] | None, classes: Mapping[str, type], source: str
) -> Any:
    """Undo :func:`_serialize_compile_arg`; ``classes`` are rnnkit's loss or metric classes."""
    if isinstance(value, str):
        found = get_registered_object(value, custom_objects)
        return found if found is not None else value
    if isinstance(value, list):
        return [_deserialize_compile_arg(v, custom_objects, classes, source) for v in value]
    if isinstance(value, Mapping) and "class_name" in value:
        name = value["class_name"]
        cls = None
        if isinstance(name, str):  # custom_objects, then rnnkit's classes, then the registry
            cls = (custom_objects or {}).get(name) or classes.get(name)
            cls = cls or get_registered_object(name)
        config = value.get("config") or {}
        if not (isinstance(cls, type) and hasattr(cls, "from_config")):
            raise ValueError(
                f"{source}: unknown loss or metric class {str(name)[:60]!r} in compile_config: "
                "rnnkit has no such class and custom_objects does not name it; load with "
                "compile=False to skip the compile settings"
            )
        if not isinstance(config, Mapping):
            raise ValueError(f"{source}: the config of {name!r} in compile_config is not a dict")
        return cls.from_config(dict(config))
    if isinstance(value, Mapping):
        return {
            k: _deserialize_compile_arg(v, custom_objects, classes, source)
            for k, v in value.items()
        }
    return value


def _restore_optimizer(model: Any, reader: SafeZipReader) -> None:
    info = reader.read_json(OPTIMIZER_JSON)
    if not isinstance(info, Mapping) or not isinstance(info.get("param_groups"), list):
        raise ValueError(f"{reader.filepath!r}: {OPTIMIZER_JSON} has no 'param_groups' list")
    iterations = info.get("iterations", 0)
    if not (isinstance(iterations, int) and not isinstance(iterations, bool)) or not (
        0 <= iterations < 2**62
    ):
        raise ValueError(
            f"{reader.filepath!r}: {OPTIMIZER_JSON}: iterations must be an integer in "
            f"[0, 2**62), received {str(iterations)[:40]}"
        )
    extra_state = info.get("extra_state") or {}
    if not isinstance(extra_state, Mapping) or not all(
        isinstance(k, str) and k.isdigit() and isinstance(v, Mapping)
        for k, v in extra_state.items()
    ):
        raise ValueError(
            f"{reader.filepath!r}: {OPTIMIZER_JSON}: extra_state must map parameter indices to "
            "objects"
        )
    tensors = weights_file.bytes_to_tensors(
        reader.read(OPTIMIZER_TENSORS), f"{reader.filepath!r} ({OPTIMIZER_TENSORS})", reader.limits
    )
    optimizer = model.optimizer
    params = model._trainable_parameters()
    optimizer.build(params)
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit():
            raise ValueError(f"{reader.filepath!r}: unexpected optimizer tensor {key!r}")
        index = int(parts[1])
        if index >= len(params):
            raise ValueError(
                f"{reader.filepath!r}: optimizer state for parameter {index}, but the model has "
                f"{len(params)} trainable weights"
            )
        if value.dim() > 0 and tuple(value.shape) != tuple(params[index].shape):
            raise ValueError(
                f"{reader.filepath!r}: optimizer state {key!r} has shape {tuple(value.shape)}, "
                f"the weight it belongs to has {tuple(params[index].shape)}"
            )
        state.setdefault(index, {})[parts[2]] = value
    for index, values in extra_state.items():
        if int(index) >= len(params):
            raise ValueError(
                f"{reader.filepath!r}: optimizer state for parameter {index}, but the model has "
                f"{len(params)} trainable weights"
            )
        state.setdefault(int(index), {}).update(values)
    try:
        optimizer.torch_optimizer.load_state_dict(
            {"state": state, "param_groups": info["param_groups"]}
        )
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(
            f"{reader.filepath!r}: the optimizer state does not fit the model ({e})"
        ) from e
    optimizer.iterations = iterations


def _compile_from_config(
    model: Any, compile_config: Any, custom_objects: Mapping[str, Any] | None, source: str
) -> None:
    # Lazy: rnnkit.training imports rnnkit.saving (weight files, backups).
    from rnnkit.training import losses, metrics, optimizers

    opt = compile_config.get("optimizer") if isinstance(compile_config, Mapping) else None
    if not (isinstance(opt, Mapping) and isinstance(opt.get("config"), Mapping)):
        raise ValueError(
            f"{source}: config.json's compile_config must hold an optimizer "
            "{'class_name', 'config'}; load with compile=False to skip it"
        )
    model.compile(
        optimizer=optimizers.get({"class_name": opt.get("class_name"), "config": opt["config"]}),
        loss=_deserialize_compile_arg(
            compile_config.get("loss"), custom_objects, losses._CLASSES, source
        ),
        loss_weights=compile_config.get("loss_weights"),
        metrics=_deserialize_compile_arg(
            compile_config.get("metrics"), custom_objects, metrics._CLASSES, source
        ),
        weighted_metrics=_deserialize_compile_arg(
            compile_config.get("weighted_metrics"), custom_objects, metrics._CLASSES, source
        ),
        nan_policy=compile_config.get("nan_policy", "raise"),
    )


def load_model(
    filepath: str | os.PathLike,
    custom_objects: Mapping[str, Any] | None = None,
    safe_mode: bool = True,
    compile: bool = True,
    limits: LoadLimits | None = None,
) -> Any:
    """Load a model saved by :func:`save_model` or by Keras 3 (``model.save("m.keras")``).

    The file is untrusted (see ``SECURITY.md``): the archive, its JSON and its tensors are
    checked against ``limits`` before they are read, the config before anything is built
    (:func:`rnnkit.saving.config_check.check_config`), and the model may allocate no more
    weight elements than the file holds. No code from the file runs in safe mode and no
    forward pass runs while loading.

    Args:
        filepath: a ``.keras`` file.
        custom_objects: ``{name: class or function}`` for custom layers, models and losses.
        safe_mode: refuse Python code in the file (``Lambda`` layers) and loop-compilation
            options beyond on/off; keep True unless you trust the file's author.
        compile: compile the model with the saved settings and restore the optimizer state
            (for a Keras file: its optimizer hyperparameters, loss and metrics, no state).
        limits: a :class:`rnnkit.saving.LoadLimits`; None for the defaults.

    Returns:
        The model, with the saved weights.

    Raises:
        ValueError: the file is not a valid model file, is truncated, has unsafe or oversized
            members, names a class outside the allowlist, or its weights do not fit; the
            message names the file (and the layer, where one is at fault).
    """
    path = _fspath(filepath)
    limits = check_limits(limits, "load_model")
    if custom_objects is not None and not isinstance(custom_objects, Mapping):
        raise TypeError(
            f"load_model: custom_objects must be a dict, received {type(custom_objects).__name__}"
        )
    source = repr(path)
    with SafeZipReader(path, limits) as reader:
        config = reader.read_json(CONFIG)
        check_config(config, source, safe_mode, limits)
        try:
            return _load_from_reader(reader, config, custom_objects, compile, source)
        except (TypeError, KeyError, IndexError, AttributeError, OverflowError, RuntimeError) as e:
            # a config that passed the checks above but that a from_config cannot take
            raise ValueError(f"{source}: the model cannot be rebuilt from its config ({e})") from e
        except ValueError as e:
            if str(e).startswith(source):
                raise
            raise ValueError(f"{source}: {e}") from e


def _load_from_reader(
    reader: SafeZipReader,
    config: Any,
    custom_objects: Mapping[str, Any] | None,
    compile: bool,
    source: str,
) -> Any:
    if not isinstance(config, Mapping):
        raise ValueError(f"{source}: config.json must hold a JSON object")
    if WEIGHTS not in reader and KERAS_WEIGHTS in reader:
        return keras_model_from_zip(reader, config, custom_objects, compile=compile)
    metadata = reader.read_json(METADATA)
    if not isinstance(metadata, Mapping) or metadata.get("format") != _FORMAT:
        raise ValueError(
            f"{source}: metadata.json does not describe an rnnkit model file "
            f"(format {str(metadata.get('format') if isinstance(metadata, Mapping) else None)[:40]!r})"
        )
    where = f"{source} ({WEIGHTS})"
    data = reader.read(WEIGHTS)
    header = weights_file.read_header(data, where, reader.limits)
    # the mask ops of imported Keras graphs are rnnkit classes too (no code, no weights)
    with weight_budget(sum(math.prod(shape) for _, shape in header.values()), where):
        model = model_from_config(config, {**KERAS_OPS, **(custom_objects or {})}, source)
    weights_file.assign_tensors(
        model, weights_file.bytes_to_tensors(data, where, reader.limits), where
    )
    compile_config = config.get("compile_config")
    if compile and compile_config:
        _compile_from_config(model, compile_config, custom_objects, source)
        if OPTIMIZER_JSON in reader:
            _restore_optimizer(model, reader)
    return model
