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

import contextvars
import functools
import inspect
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit import constraints, initializers, regularizers, tree
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
from rnnkit.symbolic import KerasTensor, has_symbolic, infer_outputs, symbolic_call

_TRAINING = contextvars.ContextVar("rnnkit_training", default=None)
_ALLOWED_KWARGS = ("input_shape", "batch_input_shape", "batch_size", "input_dim", "autocast")
_PLAIN_TYPES = (int, float, str, bool, type(None))


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN_TYPES):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


@functools.cache
def _call_parameters(cls: type) -> frozenset[str]:
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
    # True where ``compute_output_shape`` is exact for every input shape (strided, pooling and
    # cropping layers): symbolic calls then take the output shape from it instead of running
    # the layer on small placeholder tensors, which such layers cannot take or would report
    # as static sizes. Such layers attach no output mask.
    output_shape_is_exact: bool = False
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
        self._dtype = standardize_dtype(dtype)
        self._dtype_explicit = dtype is not None
        self._trainable = bool(trainable)
        self._weight_keys: list[str] = []
        self._weight_names: dict[str, str] = {}
        self._weight_trainable: dict[str, bool] = {}
        self._regularizers: dict[str, Any] = {}
        self._constraints: dict[str, Any] = {}
        self._call_losses: list[torch.Tensor] = []
        self._inbound_nodes: list[Any] = []
        self._batch_input_shape = batch_input_shape(kwargs)
        if not hasattr(self, "built"):
            self.built = False

    # ----------------------------------------------------------------- properties
    @property
    def dtype(self) -> str:
        """The weights' dtype name, e.g. ``"float32"``."""
        return dtype_name(self.compute_dtype)

    @property
    def compute_dtype(self) -> torch.dtype:
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return self._dtype

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        self._sync_requires_grad(parent_trainable=True)

    def _sync_requires_grad(self, parent_trainable: bool) -> None:
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
        out: list[torch.Tensor] = []
        for layer in self._flatten_layers():
            out.extend(layer._call_losses)
            for key, reg in layer._regularizers.items():
                out.append(reg(layer._parameters[key]))
        return out

    def add_loss(self, loss: torch.Tensor) -> None:
        self._call_losses.append(loss)

    def apply_constraints(self) -> None:
        """Project every constrained weight (called by the trainer after each optimizer step)."""
        with torch.no_grad():
            for layer in self._flatten_layers():
                for key, constraint in layer._constraints.items():
                    param = layer._parameters[key]
                    param.copy_(constraint(param))

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

    def _call_accepts(self, argument: str) -> bool:
        return argument in _call_parameters(type(self))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args:
            if "inputs" not in kwargs:
                raise TypeError(f"{type(self).__name__} '{self.name}': call() needs inputs")
            args = (kwargs.pop("inputs"),)
        if has_symbolic((args, kwargs)):
            return symbolic_call(self, args, kwargs)
        inputs, rest = args[0], args[1:]
        training = kwargs.pop("training", None)
        mask = kwargs.pop("mask", None)
        if mask is None:
            mask = collect_masks(inputs)
        inputs = self._convert_inputs(inputs)
        if not self.built:
            self._maybe_build(inputs)
            inputs = self._convert_inputs(inputs)  # cast to the freshly built weights' dtype
        if training is None:
            training = _TRAINING.get()
        if training is None:
            training = self.training
        training = bool(training)
        if self._call_accepts("training"):
            kwargs["training"] = training
        if mask is not None and self._call_accepts("mask"):
            kwargs["mask"] = mask
        self._call_losses = []
        token = _TRAINING.set(training)
        try:
            outputs = self.call(inputs, *rest, **kwargs)
        finally:
            _TRAINING.reset(token)
        if self.supports_masking or type(self).compute_mask is not Layer.compute_mask:
            attach_masks(outputs, self.compute_mask(inputs, mask))
        return outputs

    def _convert_inputs(self, inputs: Any) -> Any:
        has_weights = any(True for _ in self.parameters())
        dtype = self.compute_dtype if (has_weights or self._dtype_explicit) else None
        device = next((p.device for p in self.parameters()), None)
        return tree.map_structure(lambda x: to_tensor(x, dtype, device), inputs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask of the outputs: the input mask when ``supports_masking``, else None."""
        return mask if self.supports_masking else None

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
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _wrap_build(build: Any) -> Any:
    @functools.wraps(build)
    def wrapped(self: Layer, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **kwargs)
        self.built = True

    return wrapped
