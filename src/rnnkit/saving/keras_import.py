"""Reading Keras 3 model files (``.keras``) and weight files (``.weights.h5``).

Needs ``h5py`` (``pip install rnnkit[keras-import]``).

Architecture: Keras 3's ``config.json`` has the layout rnnkit's configs follow, with extra
wrapping: ``module``, ``registered_name``, ``build_config`` and ``shared_object_id`` entries,
dtype policies as ``{"class_name": "DTypePolicy", "config": {"name": ...}}``, and arguments
rnnkit does not have (``quantization_config``, ``optional``, ``ragged``, ...). They are
dropped when they hold Keras' default (``None``/``False``); any other unknown argument, and any
class rnnkit does not have, raises ``ValueError`` naming the layer. Classes resolve through the
same allowlist as rnnkit files; ``module`` entries are never imported.

Weights: Keras 3 stores each layer's own variables in the HDF5 group
``<path>/vars/<i>`` (``i`` in the layer's variable order: trainable first, then
non-trainable, as rnnkit's). ``<path>`` follows the object tree: a model's layers are
``layers/<snake_case(class name)>`` (``dense``, ``dense_1`` for the second Dense, by position,
not by layer name), sublayers are named by attribute (``cell``, ``forward_layer``,
``backward_layer``, ``layer``), and lists by class again (``cells/gru_cell``). rnnkit layers
use the same attribute names, so :func:`keras_weight_groups` walks an rnnkit model and yields
the group of each layer. Every group's count and shapes must match, and the file must hold
no layer weights the model lacks. The optimizer's variables (``optimizer/vars``) are read
only by :func:`load_model` of a ``.keras`` file, with ``compile=True``.

Keras 3 functional graphs record the masks of ``Masking`` and ``Embedding(mask_zero=True)`` as
``keras.ops`` nodes (``NotEqual``, ``Any``) passed to the next layer as ``mask=``; these four
ops (``NotEqual``, ``Equal``, ``Any``, ``All``), and those Keras records where masks merge
after attention layers (``ConvertToTensor``, ``ExpandDims``, ``ZerosLike``, ``LogicalOr``,
``LogicalAnd``), are imported as small weightless layers (:data:`KERAS_OPS`); other ops raise
the "not supported" error. The ``training`` argument
Keras records in a graph is dropped (as Keras' own replay does). With ``compile=True`` the
model is compiled with the file's optimizer hyperparameters, loss and metrics
(:func:`translate_compile_config`) and, for Adam/AdamW, SGD, RMSprop and Adagrad, the
optimizer's state (moments, accumulators, step count; see :func:`import_optimizer_state`), so
training resumes where Keras stopped.

>>> # model = rnnkit.saving.load_model("trained_in_keras.keras")
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.layers.allocation import weight_budget
from rnnkit.layers.base import _ALLOWED_KWARGS, Layer, to_snake_case
from rnnkit.layers.serialization import get_layer_class
from rnnkit.saving.files import SafeZipReader, _fspath
from rnnkit.saving.hdf5 import Hdf5Contents, open_hdf5, read_dataset
from rnnkit.saving.limits import LoadLimits, check_limits
from rnnkit.saving.serialization import builtin_model_name, is_model

_WRAPPER_KEYS = ("module", "registered_name", "build_config", "shared_object_id", "compile_config")
_MODEL_CLASSES = ("Functional", "Sequential", "Model")
# Keras-only arguments rnnkit drops when they hold these (Keras' default) values.
_KERAS_DEFAULTS: dict[str, Any] = {"renorm_momentum": 0.99, "lora_alpha": None, "lora_rank": None}


# ---------------------------------------------------------------------- configs
def _accepted_arguments(cls: type) -> set[str]:
    """The keyword arguments ``cls(**config)`` accepts: the named ``__init__`` parameters
    along the class hierarchy while each passes ``**kwargs`` on (to Layer's, finally)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return names - {"self"}
        if klass is Layer:
            return (names | set(_ALLOWED_KWARGS)) - {"self"}
    return names - {"self"}


# ------------------------------------------------------------------ Keras ops
class _KerasOp(Layer):
    """A ``keras.ops`` call recorded in a Keras 3 functional graph (Keras records the masks
    that ``Masking`` and ``Embedding(mask_zero=True)`` pass on as ``NotEqual``/``Any``
    nodes). Only these mask ops are imported; they have no weights."""

    def __init__(
        self, name: str | None = None, axis: int | None = None, keepdims: bool = False
    ) -> None:
        super().__init__(name=name)
        self.axis, self.keepdims = axis, bool(keepdims)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "axis": self.axis, "keepdims": self.keepdims}


class _NotEqual(_KerasOp):
    """``x != y`` elementwise (a bool tensor)."""

    _registered_name = "NotEqual"

    def call(self, x: torch.Tensor, y: Any = 0) -> torch.Tensor:
        return torch.ne(x, y)


class _Equal(_KerasOp):
    """``x == y`` elementwise (a bool tensor)."""

    _registered_name = "Equal"

    def call(self, x: torch.Tensor, y: Any = 0) -> torch.Tensor:
        return torch.eq(x, y)


class _Any(_KerasOp):
    """``any(x, axis, keepdims)`` of a bool tensor."""

    _registered_name = "Any"

    def call(self, x: torch.Tensor) -> torch.Tensor:
        axis, keepdims = self.axis, self.keepdims
        x = x.bool()
        return x.any() if axis is None else torch.any(x, dim=axis, keepdim=keepdims)


class _All(_KerasOp):
    """``all(x, axis, keepdims)`` of a bool tensor."""

    _registered_name = "All"

    def call(self, x: torch.Tensor) -> torch.Tensor:
        axis, keepdims = self.axis, self.keepdims
        x = x.bool()
        return x.all() if axis is None else torch.all(x, dim=axis, keepdim=keepdims)


class _ExpandDims(_KerasOp):
    """``x`` with a new size-1 axis at ``axis`` (Keras records it when merging masks)."""

    _registered_name = "ExpandDims"

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return torch.unsqueeze(x, self.axis if self.axis is not None else 0)


class _LogicalOr(_KerasOp):
    """``x | y`` of bool tensors (broadcast)."""

    _registered_name = "LogicalOr"

    def call(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.logical_or(x.bool(), torch.as_tensor(y, device=x.device).bool())


class _LogicalAnd(_KerasOp):
    """``x & y`` of bool tensors (broadcast)."""

    _registered_name = "LogicalAnd"

    def call(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.logical_and(x.bool(), torch.as_tensor(y, device=x.device).bool())


class _ConvertToTensor(_KerasOp):
    """The identity on a tensor (Keras records it around the masks of attention layers);
    only Keras' defaults (no dtype, dense) are accepted."""

    _registered_name = "ConvertToTensor"

    def __init__(
        self,
        name: str | None = None,
        dtype: Any = None,
        sparse: bool | None = None,
        ragged: bool | None = None,
    ) -> None:
        if dtype is not None or sparse or ragged:
            raise ValueError(
                f"ConvertToTensor: only dtype=None, dense tensors are supported, received "
                f"dtype={dtype!r}, sparse={sparse!r}, ragged={ragged!r}"
            )
        super().__init__(name=name)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class _ZerosLike(_KerasOp):
    """Zeros of ``x``'s shape, as bool (Keras' mask merges) or ``x``'s dtype."""

    _registered_name = "ZerosLike"

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        if dtype not in (None, "bool"):
            raise ValueError(
                f"ZerosLike: only dtype None or 'bool' is supported, received {dtype!r}"
            )
        super().__init__(name=name)
        self.zeros_dtype = dtype

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x, dtype=torch.bool if self.zeros_dtype == "bool" else None)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.zeros_dtype}


KERAS_OPS: dict[str, type] = {
    "NotEqual": _NotEqual,
    "Equal": _Equal,
    "Any": _Any,
    "All": _All,
    "ExpandDims": _ExpandDims,
    "LogicalOr": _LogicalOr,
    "LogicalAnd": _LogicalAnd,
    "ConvertToTensor": _ConvertToTensor,
    "ZerosLike": _ZerosLike,
}


def _layer_class(class_name: str, custom_objects: Mapping[str, Any] | None) -> type | None:
    try:
        return get_layer_class(class_name, {**KERAS_OPS, **(custom_objects or {})})
    except ValueError:
        return None


def _clean_object(value: Any) -> Any:
    """Strip Keras' wrapper keys from nested objects (initializers, regularizers, ...)."""
    if isinstance(value, Mapping):
        if value.get("class_name") == "DTypePolicy":
            return dict(value.get("config") or {}).get("name", "float32")
        return {k: _clean_object(v) for k, v in value.items() if k not in _WRAPPER_KEYS}
    if isinstance(value, list):
        return [_clean_object(v) for v in value]
    return value


def translate_layer(
    layer_config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None, where: str
) -> dict[str, Any]:
    """A Keras 3 ``{"class_name", "config", ...}`` layer entry as rnnkit's."""
    class_name = layer_config.get("class_name")
    inner = dict(layer_config.get("config") or {})
    name = inner.get("name", layer_config.get("name", "?"))
    if class_name in _MODEL_CLASSES:
        out = {"class_name": class_name, "config": translate_model_config(inner, custom_objects)}
    else:
        cls = _layer_class(class_name, custom_objects)
        if cls is None:
            raise ValueError(
                f"{where}: the Keras layer {class_name!r} (layer {name!r}) is not supported by "
                "rnnkit; pass an rnnkit implementation in custom_objects"
            )
        accepted = _accepted_arguments(cls)
        config: dict[str, Any] = {}
        for key, value in inner.items():
            if key not in accepted:
                if value is None or value is False or _KERAS_DEFAULTS.get(key, ...) == value:
                    continue  # a Keras-only argument at its default
                raise ValueError(
                    f"{where}: the Keras layer {class_name!r} (layer {name!r}) has the argument "
                    f"{key}={value!r}, which rnnkit's {cls.__name__} does not support"
                )
            if _is_layer_entry(value, custom_objects):
                value = translate_layer(value, custom_objects, where)
            elif (
                isinstance(value, list)
                and value
                and all(_is_layer_entry(v, custom_objects) for v in value)
            ):
                value = [translate_layer(v, custom_objects, where) for v in value]
            else:
                value = _clean_object(value)
            config[key] = value
        out = {"class_name": class_name, "config": config}
    if "name" in layer_config:
        out["name"] = layer_config["name"]
    if "inbound_nodes" in layer_config:
        out["inbound_nodes"] = [_clean_node(node) for node in layer_config["inbound_nodes"]]
    return out


def _clean_node(node: Any) -> Any:
    """A Keras 3 inbound node without the recorded ``training`` argument: as in Keras'
    functional replay, the model's own training mode reaches every layer."""
    if isinstance(node, Mapping) and isinstance(node.get("kwargs"), Mapping):
        kwargs = {k: v for k, v in node["kwargs"].items() if k != "training"}
        return {**node, "kwargs": kwargs}
    return node


def _is_layer_entry(value: Any, custom_objects: Mapping[str, Any] | None) -> bool:
    if not isinstance(value, Mapping) or "config" not in value:
        return False
    name = value.get("class_name")
    if name in _MODEL_CLASSES:
        return True
    module = str(value.get("module") or "")
    return module.startswith("keras.layers") or _layer_class(name, custom_objects) is not None


def translate_model_config(
    config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A Keras 3 Functional/Sequential ``config`` as rnnkit's."""
    where = f"Keras model {config.get('name', '?')!r}"
    out = {k: _clean_object(v) for k, v in config.items() if k not in ("layers", "dtype")}
    out["layers"] = [translate_layer(c, custom_objects, where) for c in config.get("layers", [])]
    return out


# ---------------------------------------------------------------------- compile
_KERAS_OPTIMIZER_DEFAULTS: dict[str, Any] = {"ema_momentum": 0.99}


def _object_from_keras(entry: Any, table: Mapping[str, type], kind: str) -> Any:
    """An rnnkit object (optimizer, loss, metric) from a Keras ``{"class_name", "config"}``
    entry: Keras-only arguments at their defaults are dropped, others raise."""
    name = entry.get("class_name")
    cls = table.get(name)
    if cls is None:
        raise ValueError(f"the Keras {kind} {name!r} has no rnnkit counterpart")
    accepted = _accepted_arguments(cls)
    config = {}
    for key, value in dict(entry.get("config") or {}).items():
        if key in accepted:
            if isinstance(value, Mapping):
                raise ValueError(f"the Keras {kind} {name!r} has {key}={value!r} (a schedule?)")
            config[key] = value
        elif not (
            value is None
            or value is False
            or _KERAS_OPTIMIZER_DEFAULTS.get(key, ...) == value
            or (key == "dtype" and value == "float32")
        ):
            raise ValueError(f"the Keras {kind} {name!r} has {key}={value!r}, unknown to rnnkit")
    return cls(**config)


def translate_compile_config(compile_config: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``model.compile`` arguments from a Keras 3 ``compile_config``: the optimizer's
    hyperparameters (its state: :func:`import_optimizer_state`), the loss, loss weights,
    metrics and weighted metrics."""
    # Lazy: rnnkit.training imports rnnkit.saving (weight files, backups).
    from rnnkit.training import losses, metrics, optimizers

    def loss_or_metric(value: Any, table: Mapping[str, type], kind: str) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list):
            return [loss_or_metric(v, table, kind) for v in value]
        if isinstance(value, Mapping) and "class_name" in value and "config" in value:
            return _object_from_keras(value, table, kind)
        if isinstance(value, Mapping):
            return {k: loss_or_metric(v, table, kind) for k, v in value.items()}
        raise ValueError(f"the Keras {kind} {value!r} cannot be imported")

    try:
        optimizer = compile_config.get("optimizer")
        return {
            "optimizer": (
                _object_from_keras(optimizer, optimizers._CLASSES, "optimizer")
                if isinstance(optimizer, Mapping)
                else optimizer
            ),
            "loss": loss_or_metric(compile_config.get("loss"), losses._CLASSES, "loss"),
            "loss_weights": compile_config.get("loss_weights"),
            "metrics": loss_or_metric(compile_config.get("metrics"), metrics._CLASSES, "metric"),
            "weighted_metrics": loss_or_metric(
                compile_config.get("weighted_metrics"), metrics._CLASSES, "metric"
            ),
        }
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{source}: the Keras compile settings cannot be imported ({e}); load with "
            "compile=False and call model.compile(...) yourself"
        ) from e


def keras_model_from_zip(
    reader: SafeZipReader,
    config: Mapping[str, Any],
    custom_objects: Mapping[str, Any] | None,
    compile: bool = True,
) -> Any:
    """The rnnkit model of a Keras 3 ``.keras`` file (read by :func:`load_model`); with
    ``compile``, compiled with the file's settings (see :func:`translate_compile_config`).
    The weights file is opened and checked (:func:`rnnkit.saving.hdf5.open_hdf5`) before the
    model is built, and the model may allocate no more weight elements than it holds."""
    # Lazy: rnnkit.saving.model_file imports this module (Keras files inside .keras files).
    from rnnkit.saving.model_file import model_from_config

    source = repr(reader.filepath)
    class_name = config.get("class_name") if isinstance(config, Mapping) else None
    if class_name not in _MODEL_CLASSES and not (
        isinstance(class_name, str) and class_name in (custom_objects or {})
    ):
        raise ValueError(
            f"{source}: the Keras model class {str(class_name)[:60]!r} is not supported; rnnkit "
            "imports Keras Functional and Sequential models (or classes given in custom_objects)"
        )
    where = f"{source} (model.weights.h5)"
    contents = open_hdf5(reader.read("model.weights.h5"), where, reader.limits)
    with contents.file:
        translated = {
            "class_name": class_name,
            "config": translate_model_config(dict(config.get("config") or {}), custom_objects),
        }
        with weight_budget(contents.elements(), where):
            model = model_from_config(translated, {**KERAS_OPS, **(custom_objects or {})}, source)
        assign_from_h5(model, contents, where)
        compile_config = config.get("compile_config")
        if compile and isinstance(compile_config, Mapping) and compile_config.get("optimizer"):
            model.compile(**translate_compile_config(compile_config, source))
            import_optimizer_state(model, _optimizer_variables(contents, where), where)
    return model


# ------------------------------------------------------------------- optimizer state
def _optimizer_variables(contents: Hdf5Contents, source: str) -> list[Any]:
    """The datasets at ``optimizer/vars/<i>``, in order (none when the group is absent);
    nothing is read yet."""
    found = {
        path[len("optimizer/vars/") :]: ds
        for path, ds in contents.datasets.items()
        if path.startswith("optimizer/vars/")
    }
    keys = sorted(found, key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(len(keys))]:
        raise ValueError(f"{source}: unexpected entries in optimizer/vars: {keys[:8]}")
    return [found[k] for k in keys]


def _keras_slot_blocks(optimizer: Any) -> list[tuple[str, ...]]:
    """Keras 3's optimizer variables after ``iterations`` and ``learning_rate``: blocks in
    order; a block holds, for each trainable weight in turn, one variable per slot. The
    optimizer says which (``Optimizer.keras_slots``); its state uses Keras' names."""
    # Lazy: rnnkit.training imports rnnkit.saving (weight files, backups).
    from rnnkit.training import optimizers

    if not isinstance(optimizer, optimizers.Optimizer):
        raise ValueError(f"importing the state of a {type(optimizer).__name__} is not supported")
    return optimizer.keras_slots()


def import_optimizer_state(model: Any, variables: list[Any], source: str) -> None:
    """Give ``model``'s optimizer (compiled from the Keras file) the state of Keras'
    optimizer: ``variables`` are the file's ``optimizer/vars`` (``iterations``,
    ``learning_rate``, then the slots of each trainable weight, see
    :func:`_keras_slot_blocks`), as datasets or arrays. Nothing to do when Keras never took a
    step. The counts and every shape must fit the model's trainable weights, else
    ``ValueError``, before a slot is read."""
    if len(variables) < 2:
        return
    optimizer = model.optimizer
    params = model._trainable_parameters()
    try:
        blocks = _keras_slot_blocks(optimizer)
    except ValueError as e:
        first = variables[0]
        first = first if isinstance(first, np.ndarray) else _scalar(first, source)
        if np.ndim(first) == 0 and float(first) == 0:
            return  # Keras never took a step: a fresh state is the same
        raise ValueError(f"{source}: {e}; load with compile=False and compile yourself") from e
    slots = [slot for block in blocks for slot in block]
    if len(variables) == 2 and slots:  # Keras never took a step: a fresh state is the same
        return
    if len(variables) != 2 + len(slots) * len(params):
        raise ValueError(
            f"{source}: the Keras {type(optimizer).__name__} holds {len(variables) - 2} "
            f"variables, but {len(params)} trainable weights need {len(slots) * len(params)}; "
            "the file's optimizer does not fit this model (load with compile=False)"
        )
    iterations_value = np.asarray(
        variables[0] if isinstance(variables[0], np.ndarray) else _scalar(variables[0], source)
    )
    if iterations_value.shape != () or not 0 <= float(iterations_value) < 2**62:
        raise ValueError(
            f"{source}: the Keras optimizer's iteration count must be a non-negative scalar "
            f"below 2**62, received {str(iterations_value)[:40]}"
        )
    iterations = int(iterations_value)
    state: dict[int, dict[str, Any]] = {i: {} for i in range(len(params))}
    position = 2
    for block in blocks:
        for i, param in enumerate(params):
            for name in block:
                value = variables[position]
                position += 1
                what = f"the Keras optimizer variable {position - 1} ({name})"
                if not isinstance(value, np.ndarray):
                    value = read_dataset(value, tuple(param.shape), True, source, what)
                elif tuple(value.shape) != tuple(param.shape):
                    raise ValueError(
                        f"{source}: {what} has shape {tuple(value.shape)}, its weight "
                        f"{tuple(param.shape)}"
                    )
                tensor = torch.as_tensor(value)
                state[i][name] = tensor.to(dtype=param.dtype, device=param.device)
    optimizer.build(params)
    groups = optimizer.torch_optimizer.state_dict()["param_groups"]
    optimizer.torch_optimizer.load_state_dict({"state": state, "param_groups": groups})
    optimizer.iterations = iterations


# ---------------------------------------------------------------------- weights
def _keras_class_name(layer: Layer) -> str:
    return builtin_model_name(type(layer)) or type(layer).__name__


def keras_weight_groups(layer: Layer, path: str = "") -> Iterator[tuple[Layer, str]]:
    """``(layer, h5 path)`` for ``layer`` and every sublayer, with Keras 3's paths."""
    seen: set[int] = set()

    def join(*parts: str) -> str:
        return "/".join(p for p in parts if p)

    def container(items: list[Layer], base: str) -> Iterator[tuple[Layer, str]]:
        used: dict[str, int] = {}
        for item in items:
            name = to_snake_case(_keras_class_name(item))
            used[name] = used.get(name, -1) + 1
            yield from walk(item, join(base, name if used[name] == 0 else f"{name}_{used[name]}"))

    def walk(obj: Layer, at: str) -> Iterator[tuple[Layer, str]]:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        yield obj, at
        if is_model(obj):
            yield from container(list(obj.layers), join(at, "layers"))
            return
        for attr, child in sorted(obj.named_children()):
            if isinstance(child, Layer):
                yield from walk(child, join(at, attr))
            elif isinstance(child, (nn.ModuleList, nn.Sequential)):
                yield from container([c for c in child if isinstance(c, Layer)], join(at, attr))
            elif isinstance(child, nn.ModuleDict):
                yield from container(
                    [c for c in child.values() if isinstance(c, Layer)], join(at, attr)
                )

    yield from walk(layer, path)


def _scalar(dataset: Any, source: str) -> Any:
    return read_dataset(dataset, (), False, source, "a scalar optimizer variable")


def assign_from_h5(model: Layer, contents: Hdf5Contents, source: str) -> None:
    """Copy the weights of a checked Keras 3 weights file (:func:`open_hdf5`) into ``model``:
    every count, shape and dtype is checked before any data is read, and all of it before
    anything is copied."""
    if not model.weights:
        raise ValueError(
            f"{source}: the model '{model.name}' has no weights yet; build it before loading"
        )
    datasets = contents.datasets
    planned: list[tuple[nn.Parameter, Any, str]] = []
    used: set[str] = set()
    for layer, path in keras_weight_groups(model):
        own = layer._own_weights()
        group_path = f"{path}/vars" if path else "vars"
        stored = sorted(
            (p[len(group_path) + 1 :] for p in datasets if p.startswith(group_path + "/")),
            key=lambda k: int(k) if k.isdigit() else -1,
        )
        if not own and not stored:
            continue
        if len(stored) != len(own):
            raise ValueError(
                f"{source}: layer '{layer.name}' ({type(layer).__name__}) has {len(own)} "
                f"weights, but the file holds {len(stored)} at '{group_path}'"
            )
        for i, (param, key) in enumerate(zip(own, stored)):
            if key != str(i):
                raise ValueError(f"{source}: unexpected entry '{group_path}/{key}'")
            what = f"weight {i} of layer '{layer.name}' ({type(layer).__name__})"
            dataset = datasets[f"{group_path}/{key}"]
            if tuple(dataset.shape) != tuple(param.shape):
                raise ValueError(
                    f"{source}: {what} has shape {tuple(dataset.shape)} at "
                    f"'{group_path}/{key}', but the model expects {tuple(param.shape)}"
                )
            planned.append((param, dataset, what))
            used.add(f"{group_path}/{key}")
    extra = sorted(p for p in datasets if not p.startswith("optimizer/") and p not in used)
    if extra:
        raise ValueError(
            f"{source}: the file holds weights the model '{model.name}' has no place for: "
            f"{extra[:8]}{' ...' if len(extra) > 8 else ''}; the architectures differ"
        )
    arrays = [
        read_dataset(ds, tuple(param.shape), param.dtype.is_floating_point, source, what)
        for param, ds, what in planned
    ]
    with torch.no_grad():
        for (param, _, _), array in zip(planned, arrays):
            param.copy_(torch.as_tensor(array).to(dtype=param.dtype, device=param.device))


def load_keras_weights(
    model: Layer, filepath: str | os.PathLike, limits: LoadLimits | None = None
) -> None:
    """Load a Keras 3 ``.weights.h5`` file (``keras_model.save_weights(...)``) into the rnnkit
    ``model`` of the same architecture (the file checked as :func:`open_hdf5` says)."""
    limits = check_limits(limits, "load_weights")
    path = _fspath(filepath)
    if not os.path.isfile(path):
        raise ValueError(f"load_weights: no such file {path!r}")
    size = os.path.getsize(path)
    if size > limits.max_file_bytes:
        raise ValueError(
            f"load_weights: {path!r} has {size} bytes, more than the limit of "
            f"{limits.max_file_bytes} (LoadLimits.max_file_bytes)"
        )
    contents = open_hdf5(path, repr(path), limits)
    with contents.file:
        assign_from_h5(model, contents, repr(path))
