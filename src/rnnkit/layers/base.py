"""The Keras-style ``Layer``: a ``torch.nn.Module`` with Keras semantics.

A layer stores its configuration in ``__init__``, creates its weights in ``build(input_shape)``
(called lazily on the first call, with the input shapes nested like the inputs), and computes
in ``call(inputs, ...)``. ``call`` receives ``training`` and ``mask`` only when its signature
names them.

Weights are ``torch.nn.Parameter`` objects registered on the module under their Keras name, so
``state_dict``, ``.to(device)`` and ``torch.optim`` see them. ``weights`` lists them in Keras'
order (own trainable, own non-trainable, then each sublayer's), which is the order of
``get_weights``/``set_weights``.

Masks travel on tensors as a ``_keras_mask`` attribute, as in Keras: a layer reads the masks of
its inputs, and when it ``supports_masking`` (or defines ``compute_mask``) attaches a mask to
its outputs.

Training mode: an explicit ``training=`` argument wins; inside another layer's call the outer
value is inherited; otherwise the module's ``self.training`` decides. Layers start in
inference mode (``self.training`` is False), as a Keras layer called without ``training``
does; ``module.train()`` switches a PyTorch-style loop to training mode.

>>> class MinimalRNNCell(Layer):
...     def __init__(self, units, **kwargs):
...         self.units = units
...         self.state_size = units
...         super().__init__(**kwargs)
...
...     def build(self, input_shape):
...         self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
...
...     def call(self, inputs, states):
...         output = inputs @ self.kernel + states[0]
...         return output, [output]
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit import constraints, initializers, mixed_precision, regularizers, tree
from rnnkit.layers import allocation
from rnnkit.layers.dtypes import dtype_name as dtype_name
from rnnkit.layers.dtypes import standardize_dtype as standardize_dtype
from rnnkit.layers.dtypes import to_tensor
from rnnkit.layers.mask_propagation import attach_masks, collect_masks
from rnnkit.layers.naming import clear_session as clear_session
from rnnkit.layers.naming import to_snake_case as to_snake_case
from rnnkit.layers.naming import unique_name as unique_name
from rnnkit.layers.shapes import batch_input_shape
from rnnkit.layers.shapes import check_input_shape as check_input_shape
from rnnkit.layers.shapes import layer_label as layer_label
from rnnkit.symbolic import (
    KerasTensor,
    has_symbolic,
    in_symbolic_call,
    infer_outputs,
    placeholder_call,
    real_tensors,
    symbolic_call,
)

# The training flag of the layer calls in progress on this thread, innermost last: a plain
# thread-local list (not a ContextVar) so that torch.compile traces through it.
_CALL_STATE = threading.local()
_ALLOWED_KWARGS = ("input_shape", "batch_input_shape", "batch_size", "input_dim", "autocast")
_PLAIN_TYPES = (int, float, str, bool, type(None))


# Bumped whenever any layer gains or loses a parameter, buffer or submodule, moves to another
# device or dtype, or changes what it trains: per-call facts cached against it (the inputs'
# target dtype and device, parameter lists) stay valid while it is unchanged. (A plain
# nn.Module moved on its own, outside any layer's `.to()`, does not bump it.)
_STRUCTURE_VERSION = [0]


def structure_changed() -> None:
    """Invalidate every cache of per-call facts (see ``_STRUCTURE_VERSION``)."""
    _STRUCTURE_VERSION[0] += 1


def structure_version() -> int:
    return _STRUCTURE_VERSION[0]


_REGISTRIES = ("_parameters", "_buffers", "_modules")


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN_TYPES):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def passes_plain_calls(method: Any) -> Any:
    """Mark a ``__call__`` override of a layer class that acts only on keyword arguments or
    symbolic inputs, so that a call on one real tensor without keywords goes on unchanged to
    ``Layer.__call__`` and ``forward`` (a model's lean call relies on it:
    :mod:`rnnkit.models.call_plan`)."""
    method._passes_plain_calls = True
    return method


def _plain_calls_reach_forward(cls: type) -> bool:
    """Whether ``layer(x)`` on one real tensor without keywords reaches ``Layer.__call__``
    and ``Layer.forward`` unchanged: no class before ``Layer`` in ``cls``' MRO defines
    ``forward``, or a ``__call__`` not marked with :func:`passes_plain_calls`."""
    for klass in cls.__mro__:
        if klass is Layer:
            return True
        if "forward" in klass.__dict__:
            return False
        if "__call__" in klass.__dict__ and not getattr(
            klass.__dict__["__call__"], "_passes_plain_calls", False
        ):
            return False
    return False


def _call_parameters(cls: type) -> frozenset[str]:
    """The argument names of ``cls.call`` (plus ``training`` and ``mask`` when it takes
    ``**kwargs``), computed once per class in ``__init_subclass__``."""
    params = inspect.signature(cls.call).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = frozenset(params)
    return names | {"training", "mask"} if accepts_any else names


class Layer(nn.Module):
    """Base class of every rnnkit layer (see the module docstring for the semantics).

    Args:
        name: unique name; by default the snake-cased class name, numbered (``lstm_1``).
        trainable: whether the weights are updated in training.
        dtype: the dtype of the weights and computation, e.g. ``"float32"`` (default) or
            ``"float64"``; floating inputs are cast to it.
        input_shape / batch_input_shape / batch_size / input_dim: the expected input, used by
            ``Sequential`` to build the model when this is its first layer.
    """

    supports_masking: bool = False
    _call_arguments: frozenset[str]  # set per class: see __init_subclass__
    _plain_calls_reach_forward: bool  # set per class: see __init_subclass__
    #: Cast integer and boolean inputs to the compute dtype too (recurrent layers and cells:
    #: a one-hot ``np.bool`` array is data for them, as Keras' type promotion makes it).
    _casts_non_floating_inputs: bool = False
    # True where ``compute_output_shape`` is exact for every input shape (strided, pooling and
    # cropping layers): symbolic calls then take the output shape from it instead of running
    # the layer on small placeholder tensors, which such layers cannot take or would report
    # as static sizes. Such layers attach no output mask.
    output_shape_is_exact: bool = False
    # True where ``_output_from_shapes`` also takes the list of KerasTensors that the layer
    # is called on (merging layers); a symbolic call on a list otherwise runs on placeholders.
    _output_from_shapes_takes_lists: bool = False
    error_label: str | None = None  # how errors name the layer, when a wrapper sets one

    def __new__(cls, *args: Any, **kwargs: Any) -> Layer:
        obj = super().__new__(cls)
        # Keras 3 captures the constructor's arguments, so that a custom layer that does not
        # define get_config still round-trips (when its arguments are plain values).
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(None, *args, **kwargs)
        except TypeError:
            bound = None
        auto: dict[str, Any] | None = None
        if bound is not None:
            auto = {}
            for key, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[key].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    auto.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    auto = None
                    break
                else:
                    auto[key] = value
            if auto is not None and not _is_plain(auto):
                auto = None
        object.__setattr__(obj, "_auto_config", auto)
        return obj

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _wrap_build(cls.__dict__["build"])
        cls._call_arguments = _call_parameters(cls)
        cls._plain_calls_reach_forward = _plain_calls_reach_forward(cls)

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - set(_ALLOWED_KWARGS))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected keyword argument(s) "
                f"{', '.join(repr(k) for k in unknown)}"
            )
        super().__init__()
        self.training = False
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"name: expected a non-empty string without '/', received {name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        policy = mixed_precision.global_policy() if dtype is None else None
        if dtype is not None and mixed_precision.names_mixed_policy(dtype):
            policy = mixed_precision.get_policy(dtype)
        self._dtype = policy.variable_dtype if policy is not None else standardize_dtype(dtype)
        # A mixed policy: `call` runs under torch.autocast in this dtype (see mixed_precision).
        self._autocast_dtype = policy.compute_dtype if policy and policy.is_mixed else None
        self._dtype_explicit = dtype is not None
        self._trainable = bool(trainable)
        self._weight_keys: list[str] = []
        self._weight_names: dict[str, str] = {}
        self._weight_trainable: dict[str, bool] = {}
        self._regularizers: dict[str, Any] = {}
        self._constraints: dict[str, Any] = {}
        self._call_losses: list[torch.Tensor] = []
        self._inbound_nodes: list[Any] = []
        # The output shapes of the eager call that built the layer (summary() of a
        # subclassed model shows them, as Keras shows its build shapes' outputs).
        self._built_output_shapes: list[tuple[int, ...]] | None = None
        self._batch_input_shape = batch_input_shape(kwargs)
        if not hasattr(self, "built"):
            self.built = False

    # ----------------------------------------------------------------- properties
    @property
    def dtype(self) -> str:
        """The weights' dtype name, e.g. ``"float32"``."""
        return dtype_name(self.compute_dtype)

    @property
    def dtype_policy(self) -> mixed_precision.DTypePolicy:
        """The layer's :class:`~rnnkit.mixed_precision.DTypePolicy` (variables, computation)."""
        if self._autocast_dtype is not None:
            return mixed_precision.get_policy(f"mixed_{dtype_name(self._autocast_dtype)}")
        return mixed_precision.get_policy(dtype_name(self._dtype))

    @property
    def compute_dtype(self) -> torch.dtype:
        return self._call_facts()[2]

    def _call_facts(self) -> tuple[bool, torch.device | None, torch.dtype]:
        """``(has_weights, device, compute_dtype)`` of the parameters (this layer's and its
        sublayers'), cached until the structure changes (``structure_changed``)."""
        cached = self.__dict__.get("_facts")
        if cached is not None and cached[0] == _STRUCTURE_VERSION[0]:
            return cached[1]
        params = list(self.parameters())
        dtype = next((p.dtype for p in params if p.is_floating_point()), self._dtype)
        facts = (bool(params), params[0].device if params else None, dtype)
        self.__dict__["_facts"] = (_STRUCTURE_VERSION[0], facts)
        return facts

    def _cached(self, key: str, compute: Any) -> Any:
        """``compute()``, kept until the structure changes (parameter lists, sublayers)."""
        cache = self.__dict__.setdefault("_structure_cache", {})
        hit = cache.get(key)
        if hit is not None and hit[0] == _STRUCTURE_VERSION[0]:
            return hit[1]
        value = compute()
        cache[key] = (_STRUCTURE_VERSION[0], value)
        return value

    def _all_layers(self) -> list[Layer]:
        """This layer and every sublayer, depth first (cached :meth:`_flatten_layers`)."""
        return self._cached("layers", lambda: list(self._flatten_layers()))

    # Every way the parameters, buffers or submodules change goes through one of these.
    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, (nn.Module, nn.Parameter)):
            structure_changed()
        elif (value is None or isinstance(value, torch.Tensor)) and any(
            name in self.__dict__.get(table, ()) for table in _REGISTRIES
        ):
            structure_changed()  # a buffer, or a registered entry set to None
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        structure_changed()
        super().__delattr__(name)

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        structure_changed()
        super().register_parameter(name, param)

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        structure_changed()
        super().register_buffer(name, tensor, persistent)

    def add_module(self, name: str, module: nn.Module | None) -> None:
        structure_changed()
        super().add_module(name, module)

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to(), .cuda(), .double(), ...
        structure_changed()
        result = super()._apply(fn, recurse)
        structure_changed()
        return result

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        self._sync_requires_grad(parent_trainable=True)

    def _sync_requires_grad(self, parent_trainable: bool) -> None:
        structure_changed()
        effective = parent_trainable and self._trainable
        for key in self._weight_keys:
            param = self._parameters[key]
            if param.is_floating_point():
                param.requires_grad_(effective and self._weight_trainable[key])
        for sub in self._sublayers():
            sub._sync_requires_grad(effective)

    @property
    def input_spec(self) -> Any:
        return None

    # ------------------------------------------------------- symbolic inputs/outputs
    def _first_node_tensors(self, which: str) -> Any:
        if not self._inbound_nodes:
            raise AttributeError(
                f"{layer_label(self)} has never been called on symbolic inputs (rnnkit.Input) "
                f"and thus has no defined {which}"
            )
        node = self._inbound_nodes[0]
        tensors = node.input_tensors if which == "input" else node.output_tensors
        return tensors[0] if len(tensors) == 1 else list(tensors)

    @property
    def input(self) -> Any:
        """The symbolic input(s) of this layer's first call on KerasTensors (Keras 3: a
        layer reused in a graph reports its first call). ``AttributeError`` if never called
        symbolically (so ``hasattr(layer, "input")`` is False, as in Keras)."""
        return self._first_node_tensors("input")

    @property
    def output(self) -> Any:
        """The symbolic output(s) of this layer's first call on KerasTensors, e.g.
        ``model.layers[2].output`` to rebuild an inference model from a trained one."""
        return self._first_node_tensors("output")

    # ------------------------------------------------------------------- weights
    def add_weight(
        self,
        shape: tuple[int, ...] | None = None,
        initializer: Any = None,
        dtype: Any = None,
        trainable: bool = True,
        regularizer: Any = None,
        constraint: Any = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> nn.Parameter:
        """Create a weight, register it on this module and return it.

        ``initializer`` is a name, an :mod:`rnnkit.initializers` object or a callable
        ``(shape, dtype) -> tensor``; the default is ``glorot_uniform`` for floating weights and
        ``zeros`` otherwise. ``trainable=False`` weights are updated by the layer itself (like
        BatchNormalization's moving statistics) and get no gradient.
        """
        unknown = sorted(
            set(kwargs) - {"aggregation", "autocast", "synchronization", "use_resource"}
        )
        if unknown:
            raise TypeError(f"add_weight() got unexpected keyword argument(s) {unknown}")
        shape = tuple(int(d) for d in (shape or ()))
        if any(d < 0 for d in shape):
            raise ValueError(f"add_weight: shape must have non-negative sizes, received {shape}")
        allocation.reserve(shape, f"layer '{self.name}': weight '{name or 'variable'}'")
        torch_dtype = standardize_dtype(dtype) if dtype is not None else self._dtype
        if initializer is None:
            initializer = "glorot_uniform" if torch_dtype.is_floating_point else "zeros"
        init = initializers.get(initializer, argument="initializer")
        with real_tensors():  # real storage, even when built during a symbolic call
            value = torch.as_tensor(init(shape, dtype=torch_dtype), dtype=torch_dtype)
        if tuple(value.shape) != shape:
            raise ValueError(
                f"add_weight '{name}': the initializer returned shape {tuple(value.shape)}, "
                f"expected {shape}"
            )
        name = name or "variable"
        key = self._free_key(name)
        param = nn.Parameter(
            value,
            requires_grad=bool(trainable) and self._trainable and torch_dtype.is_floating_point,
        )
        self.register_parameter(key, param)
        self._weight_keys.append(key)
        self._weight_names[key] = name
        self._weight_trainable[key] = bool(trainable)
        if regularizer is not None:
            self._regularizers[key] = regularizers.get(regularizer)
        if constraint is not None:
            self._constraints[key] = constraints.get(constraint)
        # Keras' variables carry their constraint (``layer.kernel.constraint``); read-only here,
        # apply_constraints uses the layer's table.
        param.constraint = self._constraints.get(key)
        return param

    def _free_key(self, name: str) -> str:
        key, i = re.sub(r"\W", "_", name), 0
        candidate = key
        while (
            candidate in self._parameters
            or (candidate in self.__dict__ and self.__dict__[candidate] is not None)
            or (candidate not in self.__dict__ and hasattr(type(self), candidate))
        ):
            i += 1
            candidate = f"{key}_{i}"
        if candidate in self.__dict__:  # a placeholder such as `self.bias = None`
            del self.__dict__[candidate]
        return candidate

    def _sublayers(self) -> Iterator[Layer]:
        """Direct sublayers in registration order (looking through ModuleList/ModuleDict)."""
        stack = list(self.children())
        while stack:
            child = stack.pop(0)
            if isinstance(child, Layer):
                yield child
            else:
                stack[:0] = list(child.children())

    def _flatten_layers(self) -> Iterator[Layer]:
        yield self
        for sub in self._sublayers():
            yield from sub._flatten_layers()

    def _own_weights(self, trainable: bool | None = None) -> list[nn.Parameter]:
        keys = [k for k in self._weight_keys if self._weight_trainable[k]]
        keys += [k for k in self._weight_keys if not self._weight_trainable[k]]
        if trainable is not None:
            keys = [k for k in keys if self._weight_trainable[k] == trainable]
        return [self._parameters[k] for k in keys]

    def _collect(self, pick: Any) -> list[nn.Parameter]:
        out, seen = [], set()
        for w in pick(self):
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        return out

    @property
    def weights(self) -> list[nn.Parameter]:
        """All weights: own trainable, own non-trainable, then each sublayer's (Keras order)."""
        return self._collect(
            lambda layer: [
                *layer._own_weights(),
                *(w for sub in layer._sublayers() for w in sub.weights),
            ]
        )

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        if not self.trainable:
            return []
        return self._collect(
            lambda layer: [
                *layer._own_weights(True),
                *(w for sub in layer._sublayers() for w in sub.trainable_weights),
            ]
        )

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        if not self.trainable:
            return self.weights
        return self._collect(
            lambda layer: [
                *layer._own_weights(False),
                *(w for sub in layer._sublayers() for w in sub.non_trainable_weights),
            ]
        )

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights
    variables = weights

    def weight_paths(self) -> list[str]:
        """Names like ``lstm/lstm_cell/kernel``, aligned with :attr:`weights`."""
        names: dict[int, str] = {}
        for layer, prefix in self._layers_with_prefix(self.name):
            for key in layer._weight_keys:
                names.setdefault(id(layer._parameters[key]), f"{prefix}/{layer._weight_names[key]}")
        return [names[id(w)] for w in self.weights]

    def _layers_with_prefix(self, prefix: str) -> Iterator[tuple[Layer, str]]:
        yield self, prefix
        for sub in self._sublayers():
            yield from sub._layers_with_prefix(f"{prefix}/{sub.name}")

    def get_weights(self) -> list[np.ndarray]:
        """The weights as numpy arrays, in :attr:`weights` order."""
        return [w.detach().cpu().numpy().copy() for w in self.weights]

    def set_weights(self, weights: list[Any]) -> None:
        """Copy numpy arrays (or tensors) into the weights, in :attr:`weights` order."""
        params = self.weights
        paths = self.weight_paths()
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': set_weights expected {len(params)} arrays "
                f"({', '.join(paths) or 'the layer has no weights yet; build it first'}), "
                f"received {len(weights)}"
            )
        with real_tensors():
            self._copy_weights(paths, params, weights)

    def _copy_weights(self, paths: list[str], params: list[nn.Parameter], weights: list) -> None:
        arrays = []
        for path, param, value in zip(paths, params, weights):
            value = torch.as_tensor(
                np.asarray(value) if not isinstance(value, torch.Tensor) else value
            )
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': set_weights: weight '{path}' has "
                    f"shape {tuple(param.shape)}, received an array of shape {tuple(value.shape)}"
                )
            arrays.append(value)
        with torch.no_grad():
            for param, value in zip(params, arrays):
                param.copy_(value.to(dtype=param.dtype, device=param.device))

    def count_params(self) -> int:
        """The number of scalars in all weights (the layer must be built)."""
        if not self.built:
            raise ValueError(
                f"count_params: layer '{self.name}' is not built yet; call it on data or "
                "call build(input_shape) first"
            )
        return int(sum(w.numel() for w in self.weights))

    # -------------------------------------------------------------------- losses
    @property
    def losses(self) -> list[torch.Tensor]:
        """Regularization penalties of all weights, plus losses added by the last call."""
        out = [loss for layer in self._all_layers() for loss in layer._call_losses]
        for layer, key, reg in self._cached("regularizers", self._weight_regularizers):
            out.append(reg(layer._parameters[key]))
        return out

    def _weight_regularizers(self) -> list[tuple[Layer, str, Any]]:
        """``(layer, weight name, regularizer)`` of every regularized weight (``add_weight``
        sets them, with the weight, so they change with the structure)."""
        return [
            (layer, key, reg)
            for layer in self._all_layers()
            for key, reg in layer._regularizers.items()
        ]

    def add_loss(self, loss: torch.Tensor) -> None:
        self._call_losses.append(loss)

    def apply_constraints(self) -> None:
        """Project every constrained weight (called by the trainer after each optimizer step)."""
        constrained = self._constrained_layers()
        if not constrained:
            return
        with torch.no_grad():
            for layer in constrained:
                for key, constraint in layer._constraints.items():
                    param = layer._parameters[key]
                    param.copy_(constraint(param))

    def _constrained_layers(self) -> list[Layer]:
        """This layer and its sublayers that have a weight constraint."""
        return self._cached(
            "constrained", lambda: [la for la in self._all_layers() if la._constraints]
        )

    # --------------------------------------------------------------------- build
    def build(self, input_shape: Any = None) -> None:
        """Create the weights for inputs of ``input_shape`` (override in subclasses)."""
        self.built = True

    def _maybe_build(self, inputs: Any) -> None:
        if self.built:
            return
        shapes = tree.map_structure(
            lambda x: tuple(x.shape) if hasattr(x, "shape") else None, inputs
        )
        self.build(shapes)
        self.built = True
        device = next((x.device for x in tree.flatten(inputs) if isinstance(x, torch.Tensor)), None)
        if device is not None and device.type != "cpu":
            self.to(device)

    # ---------------------------------------------------------------------- call
    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """The computation (override in subclasses)."""
        return inputs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the layer: symbolic inputs record a node of a functional model; real inputs go
        through ``nn.Module.__call__`` (hooks, ``nn.Module.compile``) to :meth:`forward`."""
        if not args:
            if "inputs" not in kwargs:
                raise TypeError(f"{type(self).__name__} '{self.name}': call() needs inputs")
            args = (kwargs.pop("inputs"),)
        if not _plain_tensor_call(args, kwargs) and has_symbolic((args, kwargs)):
            return symbolic_call(self, args, kwargs)
        if in_symbolic_call():  # placeholder runs that infer shapes are not calls hooks see
            return placeholder_call(self, args, kwargs)
        if not _has_full_backward_hooks(self):
            return super().__call__(*args, **kwargs)
        # A full backward hook wraps the outputs in new tensors, which lose their masks.
        mask = kwargs.get("mask")
        inputs = self._convert_inputs(args[0])
        mask = collect_masks(args[0]) if mask is None else mask
        outputs = super().__call__(*args, **kwargs)
        self._attach_output_masks(inputs, mask, outputs)
        return outputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the layer on real tensors with Keras semantics (what ``layer(x)`` does):
        ``forward(inputs, *args, training=None, mask=None, **kwargs)``.

        Converts numpy inputs, builds the layer on the first call, resolves ``training`` (an
        explicit value, else the enclosing layer's, else ``self.training``), reads the inputs'
        masks when ``mask`` is None, runs :meth:`call` and attaches the output masks. (The
        signature names no defaults: exporters that fill in a forward's defaults positionally,
        like the TorchScript ONNX exporter, would otherwise pass them as extra inputs.)
        """
        inputs, args = args[0], args[1:]
        training = kwargs.pop("training", None)
        mask = kwargs.pop("mask", None)
        if mask is None:
            mask = collect_masks(inputs)
        inputs = self._convert_inputs(inputs)
        building = not self.built
        if building:
            self._maybe_build(inputs)
            inputs = self._convert_inputs(inputs)  # cast to the freshly built weights' dtype
        if training is None:
            training = current_training()
        if training is None:
            training = self.training
        training = bool(training)
        call_arguments = type(self)._call_arguments
        if "training" in call_arguments:
            kwargs["training"] = training
        if mask is not None and "mask" in call_arguments:
            kwargs["mask"] = mask
        if self._call_losses:
            self._call_losses = []  # the losses of the previous call
        stack = _training_stack()
        stack.append(training)
        try:
            if self._autocast_dtype is None:
                outputs = self.call(inputs, *args, **kwargs)
            else:
                with torch.autocast(_device_type(self, inputs), dtype=self._autocast_dtype):
                    outputs = self.call(inputs, *args, **kwargs)
        finally:
            stack.pop()
        if building and not in_symbolic_call():
            self._built_output_shapes = [
                tuple(x.shape) for x in tree.flatten(outputs) if isinstance(x, torch.Tensor)
            ]
        self._attach_output_masks(inputs, mask, outputs)
        return outputs

    def _forward_in_plan(self, inputs: torch.Tensor, training: bool) -> Any:
        """``self.forward(inputs, training=training)`` as a model's call plan runs it, with
        ``training`` already on the call stack (:mod:`rnnkit.models.call_plan`); a layer
        with a shorter way to the same result overrides it (``RNN``).

        For a built layer without a mixed policy, called on a tensor without a mask, the
        steps of ``forward`` that change nothing there are left out: the mask lookup, the
        build, a second push of ``training`` on the stack."""
        if (
            not self.built
            or self._autocast_dtype is not None
            or getattr(inputs, "_keras_mask", None) is not None
            or type(self).forward is not Layer.forward
        ):
            return self.forward(inputs, training=training)
        inputs = self._convert_inputs(inputs)
        if self._call_losses:
            self._call_losses = []  # the losses of the previous call
        if "training" in type(self)._call_arguments:
            outputs = self.call(inputs, training=training)
        else:
            outputs = self.call(inputs)
        if type(self).compute_mask is not Layer.compute_mask:  # the default passes no mask on
            self._attach_output_masks(inputs, None, outputs)
        return outputs

    def _attach_output_masks(self, inputs: Any, mask: Any, outputs: Any) -> None:
        if self.supports_masking or type(self).compute_mask is not Layer.compute_mask:
            attach_masks(outputs, self.compute_mask(inputs, mask))

    def _convert_inputs(self, inputs: Any) -> Any:
        has_weights, device, compute_dtype = self._call_facts()
        if (
            isinstance(inputs, torch.Tensor)
            and inputs.dtype == compute_dtype
            and inputs.device == device
        ):  # already the dtype and on the device of the weights: nothing to convert
            return inputs
        dtype = compute_dtype if (has_weights or self._dtype_explicit) else None
        cast_all = self._casts_non_floating_inputs
        if isinstance(inputs, torch.Tensor):
            return to_tensor(inputs, dtype, device, cast_all)
        return tree.map_structure(lambda x: to_tensor(x, dtype, device, cast_all), inputs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask of the outputs: the input mask when ``supports_masking``, else None."""
        return mask if self.supports_masking else None

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> Any:
        """The output of a symbolic call on the one KerasTensor ``inputs`` (or the list of
        them, for a layer with ``_output_from_shapes_takes_lists``; ``kwargs``: the call's
        other keyword arguments but ``training``) as KerasTensors, told from shapes and
        dtypes without running the layer; None (the default) when the layer cannot tell, and
        the call then runs on placeholder tensors (:func:`rnnkit.symbolic.infer_outputs`),
        which also raises the layer's errors. An override builds the layer first and says
        exactly what the run would give: shapes, dtypes and output masks."""
        return None

    def _with_input_mask(self, inputs: KerasTensor, output: KerasTensor) -> KerasTensor | None:
        """``output`` with the mask a layer that passes its input mask on gives it (a copy of
        ``inputs``' mask, or none); None when this layer computes its own output mask."""
        mask = inputs._keras_mask
        if mask is None or not self.supports_masking:
            return output
        if type(self).compute_mask is not Layer.compute_mask:
            return None
        output._keras_mask = KerasTensor(mask.shape, mask.dtype)
        return output

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Output shape(s) for ``input_shape`` (``None`` for unknown sizes), inferred by running
        the layer on small placeholder tensors unless a subclass knows better."""

        def to_symbolic(shape: Any) -> Any:
            return KerasTensor(tuple(shape), self._dtype)

        outputs = infer_outputs(self, (tree.map_shape_structure(to_symbolic, input_shape),), {})
        return tree.map_structure(lambda x: x.shape, outputs)

    # -------------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, such that ``from_config(get_config())`` rebuilds the layer."""
        config = dict(self._auto_config or {})
        config.update(name=self.name, trainable=self.trainable, dtype=dtype_name(self._dtype))
        if self._autocast_dtype is not None:
            config["dtype"] = self.dtype_policy.name
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


Layer._call_arguments = _call_parameters(Layer)
Layer._plain_calls_reach_forward = True


def _wrap_build(build: Any) -> Any:
    @functools.wraps(build)
    def wrapped(self: Layer, *args: Any, **kwargs: Any) -> None:
        with real_tensors():  # real weights, even when built during a symbolic call
            build(self, *args, **kwargs)
        self.built = True

    return wrapped


def _device_type(layer: Layer, inputs: Any) -> str:
    device = layer._call_facts()[1]
    if device is not None:
        return device.type
    return next((x.device.type for x in tree.flatten(inputs) if isinstance(x, torch.Tensor)), "cpu")


def _plain_tensor_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """A call on one tensor with tensor/flag keywords (``training=``, ``mask=``): nothing in
    it can be symbolic, no need to look through a structure."""
    return (
        len(args) == 1
        and isinstance(args[0], torch.Tensor)
        and all(v is None or isinstance(v, (bool, torch.Tensor)) for v in kwargs.values())
    )


def _has_full_backward_hooks(module: nn.Module) -> bool:
    return bool(module._backward_hooks or module._backward_pre_hooks) or bool(
        nn.modules.module._global_backward_hooks or nn.modules.module._global_backward_pre_hooks
    )


def _training_stack() -> list[bool]:
    stack = getattr(_CALL_STATE, "training", None)
    if stack is None:
        stack = _CALL_STATE.training = []
    return stack


def current_training() -> bool | None:
    """The training flag of the innermost layer call in progress (None outside any call)."""
    stack = _training_stack()
    return stack[-1] if stack else None


@contextlib.contextmanager
def training_scope(training: bool) -> Iterator[None]:
    """Run calls inside as if ``training=training`` were passed to the outermost layer."""
    stack = _training_stack()
    stack.append(bool(training))
    try:
        yield
    finally:
        stack.pop()
