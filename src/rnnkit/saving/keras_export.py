"""Writing Keras 3 files: ``.keras`` models and ``.weights.h5`` weights that Keras 3 loads.

Needs ``h5py`` (``pip install rnnkit[keras-import]``).

- :func:`export_keras` (also ``model.save(path, format="keras")``) writes a ``.keras`` zip in
  Keras 3's own layout: ``metadata.json`` (``keras_version``, ``date_saved``),
  ``config.json`` (Keras 3's serialization format: every object as ``{"module",
  "class_name", "config", "registered_name"}``, dtypes as ``DTypePolicy`` objects, the graph
  of a functional model in the ``inbound_nodes`` format rnnkit already uses) and
  ``model.weights.h5``; ``keras.saving.load_model`` rebuilds the model and predicts what
  rnnkit predicts.
- :func:`save_keras_weights` (also ``model.save_weights("m.weights.h5")``) writes the HDF5
  weight file alone, for Keras' ``model.load_weights`` (and rnnkit's).

Weight layout (the mirror of :mod:`rnnkit.saving.keras_import`): each layer's own variables
(trainable first, then non-trainable) are datasets ``<path>/vars/0``, ``<path>/vars/1``, ...
of a group whose ``name`` attribute is the layer's name; ``<path>`` is Keras' object path
(``layers/lstm/cell``, ``layers/bidirectional/forward_layer/cell``, ``layers/dense_1``),
computed by :func:`rnnkit.saving.keras_import.keras_weight_groups`.

``ConvLSTM1D/2D/3D`` are written as Keras 3 serializes them: the cell's arguments flattened
into the layer's config (``filters``, ``kernel_size``, ``strides``, ``padding``,
``data_format``, ``dilation_rate``, the activations, initializers, regularizers, constraints,
``unit_forget_bias``, ``dropout``, ``recurrent_dropout``, ``seed``) next to the RNN layer's
(``return_sequences``, ``return_state``, ``go_backwards``, ``stateful``, ``unroll``,
``zero_output_for_mask``), and no ``cell`` entry: Keras' layer builds its cell itself, at the
object path ``<layer>/cell``, whose three variables are ``kernel`` ``(*kernel_size, C, 4F)``,
``recurrent_kernel`` ``(*kernel_size, F, 4F)`` and ``bias`` ``(4F,)``, the gates in the order
i, f, c, o along the last axis: rnnkit's own layout, so the weights go as they are.

What Keras 3 cannot express is refused with a ``ValueError`` that names it, before anything
is written (:data:`REFUSED_LAYERS` says why for each rnnkit layer):

- layers Keras 3 does not have (``DropoutCell``, ``OutputProjectionCell``, and
  ``ConvLSTMCell``, which Keras keeps inside its ConvLSTM layers), custom layer classes and
  subclassed models (Keras would need their code);
- ``Lambda``: its function is Python code, which rnnkit never writes into a file. Keras 3
  writes a Python ``lambda`` as marshalled bytecode and loads that only with
  ``safe_mode=False`` (the file then runs arbitrary code), and a named function only when it is
  registered with Keras;
- arguments Keras 3 dropped or never had, when they differ from the value that behaves as
  Keras does (:data:`RNNKIT_ONLY_ARGUMENTS`: ``time_major``, ``compile_loop`` of the RNN and
  ConvLSTM layers, ``use_cudnn`` of ``SimpleRNN``); and the ``constants`` call argument of
  ``RNN``;
- custom initializers, regularizers, constraints and activations.

A compiled model's compile settings go to ``compile_config`` (the optimizer's
hyperparameters, the loss, loss weights and metrics, by name or as Keras objects) and its
optimizer state to ``optimizer/vars`` of ``model.weights.h5`` in Keras' variable order (the
inverse of the importer's, for Adam/AdamW, SGD, RMSprop and Adagrad), so training continues in
Keras where rnnkit stopped. rnnkit's ``nan_policy`` (other than ``"raise"``) and
``torch.optim`` optimizers are refused; ``include_optimizer=False`` leaves the settings out.
A ``.weights.h5`` file holds the layers' weights only, of any model (custom layers too).

>>> # rnnkit.saving.export_keras(model, "m.keras"); keras.saving.load_model("m.keras")
"""

from __future__ import annotations

import datetime
import io
import json
import os
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

import rnnkit.layers as public_layers
from rnnkit import activations, constraints, initializers, regularizers
from rnnkit.layers.base import Layer
from rnnkit.saving.files import _fspath, atomic_write, check_overwrite, write_zip
from rnnkit.saving.keras_import import KERAS_OPS, _keras_slot_blocks, keras_weight_groups
from rnnkit.saving.serialization import builtin_model_name, is_model

KERAS_SUFFIX = ".keras"
KERAS_WEIGHTS_SUFFIX = ".weights.h5"
# The Keras release whose file layout this writer follows (and is tested against).
KERAS_FORMAT_VERSION = "3.15.1"

# rnnkit's layer classes that Keras 3 has under the same name and arguments.
KERAS_LAYERS = (
    "InputLayer",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "Masking",
    "Reshape",
    "Activation",
    "Add",
    "Concatenate",
    "BatchNormalization",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "RNN",
    "StackedRNNCells",
    "LSTMCell",
    "GRUCell",
    "SimpleRNNCell",
    "Bidirectional",
    "TimeDistributed",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    # the layers around RNNs
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "MaxPooling1D",
    "AveragePooling1D",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling1D",
    "Cropping1D",
    "ZeroPadding1D",
    "UpSampling1D",
    "RepeatVector",
    "Permute",
    "SpatialDropout1D",
    "LayerNormalization",
    "Attention",
    "AdditiveAttention",
    "MultiHeadAttention",
    "Average",
    "Multiply",
    "Subtract",
    "Dot",
)
# rnnkit's public layers that are not written, as (what the layer is, why); every other
# public layer class is in KERAS_LAYERS (tests/test_keras_export.py checks that).
_NOT_KERAS = "an rnnkit layer that Keras 3 does not have"
REFUSED_LAYERS: dict[str, tuple[str, str]] = {
    "DropoutCell": (_NOT_KERAS, ""),
    "OutputProjectionCell": (_NOT_KERAS, ""),
    "ConvLSTMCell": (
        _NOT_KERAS,
        ": keras.layers has no ConvLSTMCell (Keras' ConvLSTM1D/2D/3D build their cell "
        "inside); use ConvLSTM1D/2D/3D instead of RNN(ConvLSTMCell(...))",
    ),
    "Lambda": (
        "a layer of Python code",
        ": rnnkit never writes code into a file, and Keras 3 would need it: Keras keeps a "
        "Python lambda as marshalled bytecode, which it loads only with safe_mode=False (the "
        "file then runs arbitrary code), and a named function only when that function is "
        "registered with Keras; express the step with Keras' layers, or rebuild the Lambda in "
        "Keras",
    ),
}
_RNN_ONLY = {"time_major": False, "compile_loop": False}
# Arguments rnnkit has and Keras 3 does not, with the value at which rnnkit behaves as Keras:
# at that value they are left out of the file, at any other the export is refused.
RNNKIT_ONLY_ARGUMENTS: dict[str, dict[str, Any]] = {
    "LSTM": _RNN_ONLY,
    "GRU": _RNN_ONLY,
    "RNN": _RNN_ONLY,
    "SimpleRNN": {**_RNN_ONLY, "use_cudnn": "auto"},
    "ConvLSTM1D": _RNN_ONLY,
    "ConvLSTM2D": _RNN_ONLY,
    "ConvLSTM3D": _RNN_ONLY,
    # Keras 3.15 dropped the deprecated argument; rnnkit keeps it in configs, only False.
    "LayerNormalization": {"rms_scaling": False},
}
# Base-layer arguments that Keras 3's class does not take (its __init__ has no **kwargs).
_NOT_TAKEN = {"SpatialDropout1D": ("trainable",)}
# Layers whose sublayers are internal (built by the layer, not in its config): Keras' layer
# builds the same ones, at the same weight paths.
_OWNS_SUBLAYERS = ("MultiHeadAttention", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
# The call arguments of a functional node that Keras' layers accept.
_KERAS_CALL_ARGUMENTS = ("mask", "initial_state", "training")
_MODELS = {
    "Functional": ("keras.src.models.functional", "Functional"),
    "Sequential": ("keras", None),
}
_OBJECT_TABLES = {
    "_initializer": ("keras.initializers", initializers._TABLE),
    "_regularizer": ("keras.regularizers", regularizers._TABLE),
    "_constraint": ("keras.constraints", constraints._TABLE),
}
_SUBLAYER_KEYS = ("layer", "backward_layer", "cell")
# Keras 2's input arguments of any layer: rnnkit keeps them in the layer's config, Keras 3
# refuses them; the input shape is already in the model (its InputLayer, or a Sequential
# model's ``build_input_shape``), so they are left out.
_INPUT_ARGUMENTS = ("input_shape", "batch_input_shape", "batch_size", "input_dim")


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "writing Keras .keras/.weights.h5 files needs h5py: pip install 'rnnkit[keras-import]'"
        ) from e
    return h5py


# --------------------------------------------------------------------------- checks
def _keras_class(layer: Layer) -> str:
    """The Keras 3 class name of ``layer``; ``ValueError`` if Keras 3 has no such class."""
    cls = type(layer)
    model_name = builtin_model_name(cls)  # "Sequential" or "Functional"
    if model_name is not None:
        if layer.inputs is None:
            raise ValueError(
                f"export_keras: the model '{layer.name}' ({cls.__name__}) has no inputs and "
                "outputs (a plain rnnkit.Model, or a Sequential model built without a graph); "
                "Keras loads functional models and Sequential models built on an input shape"
            )
        return model_name
    for op_name, op_class in KERAS_OPS.items():
        if cls is op_class:
            return op_name
    if cls.__name__ in KERAS_LAYERS and getattr(public_layers, cls.__name__, None) is cls:
        return cls.__name__
    why = ""
    if is_model(layer):
        what = "a subclassed model"
    elif getattr(public_layers, cls.__name__, None) is cls and cls.__name__ in REFUSED_LAYERS:
        what, why = REFUSED_LAYERS[cls.__name__]
    elif cls.__name__ in dir(public_layers):
        what = "an rnnkit layer the Keras export does not write yet"
    else:
        what = "a custom layer"
    raise ValueError(
        f"export_keras: layer '{layer.name}' is {what} ({cls.__name__}){why}; the Keras export "
        f"writes functional and Sequential models of {', '.join(KERAS_LAYERS)}"
    )


def check_exportable(model: Layer) -> None:
    """``ValueError`` naming the first layer of ``model`` that Keras 3 does not have."""
    internal: list[str] = []
    for layer, path in keras_weight_groups(model):
        if any(path.startswith(f"{owner}/") for owner in internal):
            continue
        if _keras_class(layer) in _OWNS_SUBLAYERS:
            internal.append(path)


# --------------------------------------------------------------------------- config
def _dtype_policy(name: Any, where: str) -> Any:
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError(f"export_keras: {where} has dtype {name!r}, expected a dtype name")
    return {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": name},
        "registered_name": None,
    }


def _object(key: str, value: Any, module: str, table: Mapping[str, type], where: str) -> Any:
    """An initializer, regularizer or constraint as a Keras object entry."""
    if value is None:
        return None
    if isinstance(value, str) and value in table:
        return value
    if (
        isinstance(value, Mapping)
        and isinstance(value.get("class_name"), str)
        and table.get(value["class_name"]) is not None
        and table[value["class_name"]].__name__ == value["class_name"]
    ):
        return {
            "module": module,
            "class_name": value["class_name"],
            "config": dict(value.get("config") or {}),
            "registered_name": None,
        }
    raise ValueError(
        f"export_keras: {where} has {key}={value!r}, which is not one of Keras' built-in "
        f"{module.split('.')[-1]}"
    )


def _activation(key: str, value: Any, where: str) -> Any:
    if value is None or (isinstance(value, str) and value in activations._TABLE):
        return value
    raise ValueError(
        f"export_keras: {where} has {key}={value!r}, which is not one of Keras' built-in "
        f"activations ({', '.join(sorted(activations._TABLE))})"
    )


def _layer_config(class_name: str, config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A layer's rnnkit config as Keras 3's: rnnkit-only arguments dropped at their Keras
    behaviour or refused, nested objects wrapped."""
    only = RNNKIT_ONLY_ARGUMENTS.get(class_name, {})
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in _INPUT_ARGUMENTS and not (class_name == "Embedding" and key == "input_dim"):
            continue
        if key in _NOT_TAKEN.get(class_name, ()):
            continue
        if key == "dtype" and class_name == "InputLayer":
            out[key] = value  # Keras writes an InputLayer's dtype as a name, not a policy
            continue
        if key in only:
            if value != only[key]:
                raise ValueError(
                    f"export_keras: {where} has {key}={value!r}, an rnnkit-only argument that "
                    f"Keras 3's {class_name} does not have; set {key}={only[key]!r} to export"
                )
            continue
        out[key] = _config_value(key, value, where)
    return out


def _config_value(key: str, value: Any, where: str) -> Any:
    if key == "dtype":
        return _dtype_policy(value, where)
    if key in _SUBLAYER_KEYS and isinstance(value, Mapping):
        return layer_entry(value, where)
    if key == "cells" and isinstance(value, list):
        return [layer_entry(v, where) for v in value]
    if key in ("activation", "recurrent_activation"):
        return _activation(key, value, where)
    for suffix, (module, table) in _OBJECT_TABLES.items():
        if key.endswith(suffix):
            return _object(key, value, module, table, where)
    return json.loads(json.dumps(value))  # tuples as lists; a non-JSON value fails here


def _keras_history(value: Any, functionals: frozenset[str]) -> Any:
    """``value`` with the node index of every tensor that a nested functional model outputs
    lowered by one: rnnkit (as Keras' loader) counts such a model's own node first, Keras 3's
    writer does not in call arguments."""
    if isinstance(value, Mapping):
        if value.get("class_name") == "__keras_tensor__":
            name, node_index, tensor_index = value["config"]["keras_history"]
            if name in functionals:
                node_index -= 1
            history = [name, node_index, tensor_index]
            return {**value, "config": {**value["config"], "keras_history": history}}
        return {k: _keras_history(v, functionals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_keras_history(v, functionals) for v in value]
    return value


def _node(node: Any, where: str, functionals: frozenset[str]) -> Any:
    if not isinstance(node, Mapping):
        raise ValueError(f"export_keras: {where} has an inbound node {node!r} Keras cannot read")
    kwargs = dict(node.get("kwargs") or {})
    unknown = sorted(k for k in kwargs if k not in _KERAS_CALL_ARGUMENTS)
    if unknown:
        raise ValueError(
            f"export_keras: {where} is called with {', '.join(unknown)}=..., an rnnkit-only "
            f"call argument that Keras 3's layers do not take (Keras takes "
            f"{', '.join(_KERAS_CALL_ARGUMENTS)})"
        )
    out = {"args": list(node.get("args") or []), "kwargs": kwargs}
    return json.loads(json.dumps(_keras_history(out, functionals)))


def layer_entry(
    entry: Mapping[str, Any],
    where: str = "the model",
    functionals: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """One ``{"class_name", "config", [name, inbound_nodes]}`` entry of an rnnkit config as
    Keras 3's ``{"module", "class_name", "config", "registered_name", ...}``."""
    class_name = entry.get("class_name")
    config = entry.get("config") or {}
    name = config.get("name", entry.get("name", "?"))
    here = f"layer '{name}' ({class_name})"
    if class_name in ("Functional", "Model", "Sequential"):
        kind = "Sequential" if class_name == "Sequential" else "Functional"
        module, registered = _MODELS[kind]
        out = {
            "module": module,
            "class_name": kind,
            "config": model_config(kind, config),
            "registered_name": registered,
        }
    elif class_name in KERAS_OPS:
        out = {
            "module": "keras.src.ops.numpy",
            "class_name": class_name,
            "config": {"name": name},
            "registered_name": class_name,
        }
    elif class_name in KERAS_LAYERS:
        out = {
            "module": "keras.layers",
            "class_name": class_name,
            "config": _layer_config(class_name, config, here),
            "registered_name": None,
        }
    else:
        raise ValueError(
            f"export_keras: {here} in {where} is not one of Keras 3's layers; a Keras file can "
            f"hold only {', '.join(KERAS_LAYERS)} and functional and Sequential models"
        )
    if "name" in entry:
        out["name"] = entry["name"]
    if "inbound_nodes" in entry:
        out["inbound_nodes"] = [_node(n, here, functionals) for n in entry["inbound_nodes"]]
    return out


def model_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A Functional or Sequential model's rnnkit config as Keras 3's."""
    where = f"model '{config.get('name', '?')}'"
    layers = list(config.get("layers") or [])
    functionals = frozenset(
        str(e.get("name")) for e in layers if e.get("class_name") in ("Functional", "Model")
    )
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key == "layers":
            out["layers"] = [layer_entry(v, where, functionals) for v in layers]
        elif key == "dtype":
            out["dtype"] = _dtype_policy(value, where)
        else:
            out[key] = json.loads(json.dumps(value))
    return out


def keras_config(model: Any, include_optimizer: bool = True) -> dict[str, Any]:
    """The ``config.json`` object of ``model`` in Keras 3's format (with its compile
    settings when ``include_optimizer``)."""
    kind = _keras_class(model)
    if kind not in _MODELS:
        raise ValueError(
            f"export_keras: expected a functional or Sequential model, received {kind} "
            f"'{model.name}'"
        )
    check_exportable(model)
    config = model_config(kind, model.get_config())
    module, registered = _MODELS[kind]
    build_shape = config.get("build_input_shape") if kind == "Sequential" else None
    return {
        "module": module,
        "class_name": kind,
        "config": config,
        "registered_name": registered,
        "build_config": {"input_shape": build_shape},
        "compile_config": compile_config(model) if include_optimizer else None,
    }


# --------------------------------------------------------------------------- compile
def _compile_argument(value: Any, module: str, classes: Mapping[str, type], kind: str) -> Any:
    """A loss or metric spec as Keras writes it: names as they are, rnnkit's loss and metric
    objects as ``{"module", "class_name", "config", "registered_name"}``; anything else (a
    Python function) ``ValueError``."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_compile_argument(v, module, classes, kind) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _compile_argument(v, module, classes, kind) for k, v in value.items()}
    cls = type(value)
    if classes.get(cls.__name__) is cls:
        config = value.get_config()
        if hasattr(value, "_compile_base_name"):  # a metric named "<output>_<name>" by compile
            config["name"] = value._compile_base_name
        return {
            "module": module,
            "class_name": cls.__name__,
            "config": config,
            "registered_name": None,
        }
    raise ValueError(
        f"export_keras: the compiled {kind} {value!r} is neither a name nor one of rnnkit's "
        f"{kind} classes, so Keras could not rebuild it; pass include_optimizer=False and "
        "compile again in Keras"
    )


def compile_config(model: Any) -> dict[str, Any] | None:
    """Keras 3's ``compile_config`` of a compiled ``model`` (optimizer hyperparameters, loss,
    loss weights, metrics), or None when it is not compiled. rnnkit's own ``nan_policy``
    is refused unless it holds the default ``"raise"``; a ``torch.optim`` optimizer is
    refused."""
    # Lazy: rnnkit.training imports rnnkit.saving (weight files, backups).
    from rnnkit.training import losses, metrics, optimizers

    if not getattr(model, "compiled", False):
        return None
    if model._nan_policy != "raise":
        raise ValueError(
            f"export_keras: the model is compiled with nan_policy={model._nan_policy!r}, an "
            "rnnkit-only compile argument that Keras 3 does not have; compile with "
            "nan_policy='raise' or pass include_optimizer=False"
        )
    optimizer = model.optimizer
    cls = type(optimizer)
    if optimizers._CLASSES.get(cls.__name__) is not cls:
        raise ValueError(
            f"export_keras: the optimizer is a {cls.__name__}, not one of rnnkit's Keras "
            f"optimizers ({', '.join(sorted(optimizers._CLASSES))}); pass "
            "include_optimizer=False"
        )
    compiled_loss = model._compiled_loss
    return {
        "optimizer": {
            "module": "keras.optimizers",
            "class_name": cls.__name__,
            "config": optimizer.get_config(),
            "registered_name": None,
        },
        "loss": _compile_argument(model.loss, "keras.losses", losses._CLASSES, "loss"),
        "loss_weights": None if compiled_loss is None else compiled_loss.loss_weights,
        "metrics": _compile_argument(
            model._compiled_metrics.spec, "keras.metrics", metrics._CLASSES, "metric"
        ),
        "weighted_metrics": _compile_argument(
            model._compiled_weighted_metrics.spec, "keras.metrics", metrics._CLASSES, "metric"
        ),
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def optimizer_variables(model: Any) -> list[np.ndarray]:
    """The variables of Keras 3's optimizer for ``model``'s compiled rnnkit optimizer, in
    Keras' order: ``iterations``, ``learning_rate``, then the slots of each trainable weight
    (:func:`rnnkit.saving.keras_import._keras_slot_blocks` gives the order; rnnkit's
    optimizers keep Keras' slots under Keras' names; a slot not created yet is zeros, as in a
    fresh Keras optimizer)."""
    optimizer = model.optimizer
    params = model._trainable_parameters()
    try:
        blocks = _keras_slot_blocks(optimizer)
    except ValueError as e:
        raise ValueError(f"export_keras: {e}; pass include_optimizer=False") from e
    state = optimizer.torch_optimizer.state if optimizer.built else {}
    arrays = [
        np.asarray(optimizer.iterations, dtype=np.int64),
        np.asarray(optimizer.learning_rate, dtype=np.float32),
    ]
    for block in blocks:
        for param in params:
            for name in block:
                value = state.get(param, {}).get(name)
                if value is None:
                    arrays.append(np.zeros(tuple(param.shape), dtype=np.float32))
                else:
                    arrays.append(value.detach().to("cpu").numpy().astype(np.float32))
    return arrays


# --------------------------------------------------------------------------- weights
def weights_to_h5_bytes(model: Layer, optimizer: list[np.ndarray] | None = None) -> bytes:
    """``model``'s weights as the bytes of a Keras 3 weights HDF5 file; ``optimizer`` (from
    :func:`optimizer_variables`) goes to ``optimizer/vars``."""
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for layer, path in keras_weight_groups(model):
            if layer.__class__ in KERAS_OPS.values():
                continue  # Keras' ops hold no state and have no group
            group = f.create_group(f"{path}/vars" if path else "vars")
            group.attrs["name"] = layer.name
            for i, weight in enumerate(layer._own_weights()):
                group[str(i)] = weight.detach().to("cpu").numpy()
        if optimizer is not None:
            group = f.create_group("optimizer/vars")
            group.attrs["name"] = str(model.optimizer.name)
            for i, array in enumerate(optimizer):
                group[str(i)] = array
    return buffer.getvalue()


def _check_built(model: Layer, where: str) -> None:
    if not model.weights and not model.built:
        raise ValueError(
            f"{where}: the model '{model.name}' is not built, so it has no weights to save; call "
            "it on data or build(input_shape) first"
        )


def save_keras_weights(model: Any, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``model``'s weights to a Keras 3 ``.weights.h5`` file, atomically; Keras'
    ``model.load_weights`` reads it into the same architecture built in Keras, and rnnkit's
    ``load_weights`` into the same rnnkit architecture.

    Any model can be written, also one with custom layers or a subclassed model (as
    ``ModelCheckpoint`` needs): every layer's variables go to its object path (see the module
    docstring). Keras' reading is tested for functional and Sequential models of Keras'
    own layers.

    Args:
        model: a built rnnkit model or layer.
        filepath: the file, ending in ``.weights.h5``.
        overwrite: when False, an existing file raises ``ValueError``.
    """
    if not isinstance(model, Layer):
        raise TypeError(
            f"save_weights: expected an rnnkit model or layer, received {type(model).__name__}"
        )
    path = _fspath(filepath)
    if not path.endswith(KERAS_WEIGHTS_SUFFIX):
        raise ValueError(
            f"save_weights: a Keras weights file must end in '{KERAS_WEIGHTS_SUFFIX}', "
            f"received {path!r}"
        )
    _check_built(model, "save_weights")
    check_overwrite(path, overwrite)
    data = weights_to_h5_bytes(model)

    def write(f: IO[bytes]) -> None:
        f.write(data)

    atomic_write(path, write)


# --------------------------------------------------------------------------- model
def export_keras(
    model: Any,
    filepath: str | os.PathLike,
    overwrite: bool = True,
    include_optimizer: bool = True,
) -> None:
    """Write ``model`` as a Keras 3 ``.keras`` file (architecture and weights), atomically.

    ``keras.saving.load_model(filepath)`` (Keras 3, any backend) rebuilds it with the same
    predictions; rnnkit's :func:`~rnnkit.saving.load_model` reads it too. The compile
    settings are not written: compile again after loading.

    Args:
        model: a built functional or Sequential rnnkit model made of layers Keras 3 has.
        filepath: the file, ending in ``.keras``.
        overwrite: when False, an existing file raises ``ValueError``.

    Raises:
        ValueError: a layer, argument or object Keras 3 does not have (named in the
            message), an unbuilt model, or a wrong suffix.
    """
    if not is_model(model):
        raise TypeError(f"export_keras: expected an rnnkit Model, received {type(model).__name__}")
    path = _fspath(filepath)
    if not path.endswith(KERAS_SUFFIX):
        raise ValueError(f"export_keras: filepath must end in '.keras', received {path!r}")
    _check_built(model, "export_keras")
    check_overwrite(path, overwrite)
    config = keras_config(model, include_optimizer)
    optimizer = optimizer_variables(model) if config["compile_config"] is not None else None
    metadata = {
        "keras_version": KERAS_FORMAT_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "exported_by": "rnnkit",
    }
    write_zip(
        path,
        {
            "metadata.json": (json.dumps(metadata).encode(), True),
            "config.json": (json.dumps(config).encode(), True),
            "model.weights.h5": (weights_to_h5_bytes(model, optimizer), False),
        },
    )
