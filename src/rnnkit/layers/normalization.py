"""``BatchNormalization`` and ``LayerNormalization`` with Keras 3 semantics, weight order and
defaults."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from rnnkit import constraints, initializers, regularizers
from rnnkit.layers.base import Layer
from rnnkit.layers.core import drop_keras_only_keys
from rnnkit.layers.shapes import check_input_shape, layer_label
from rnnkit.symbolic import KerasTensor, call_input_dtype, in_symbolic_call

# Keras' backend.epsilon(): keeps masked moments finite when every position is masked.
_MASK_EPSILON = 1e-7


def _add_gamma_and_beta(layer: Any, shape: tuple[int, ...]) -> None:
    """A normalization layer's ``gamma`` (with ``scale``) and ``beta`` (with ``center``) of
    ``shape``, from its initializers, regularizers and constraints."""
    if layer.scale:
        layer.gamma = layer.add_weight(
            shape=shape,
            initializer=layer.gamma_initializer,
            regularizer=layer.gamma_regularizer,
            constraint=layer.gamma_constraint,
            name="gamma",
        )
    if layer.center:
        layer.beta = layer.add_weight(
            shape=shape,
            initializer=layer.beta_initializer,
            regularizer=layer.beta_regularizer,
            constraint=layer.beta_constraint,
            name="beta",
        )


class BatchNormalization(Layer):
    """Normalizes the inputs over every axis except ``axis`` (the features ``C``).

    ``outputs = gamma * (inputs - mean) / sqrt(variance + epsilon) + beta``

    In training mode (``training=True`` and ``layer.trainable``), ``mean`` and ``variance`` are
    the batch's moments (biased variance) over all axes but ``axis``, and the moving
    statistics are updated without gradient::

        moving_mean     = moving_mean * momentum + mean * (1 - momentum)
        moving_variance = moving_variance * momentum + variance * (1 - momentum)

    In inference mode the moving statistics are used. As in Keras 3, ``trainable = False``
    means inference mode even when ``training=True``.

    With a mask of shape ``inputs.shape[:-1]`` (e.g. ``(B, T)`` for ``(B, T, C)`` inputs), the
    masked positions are left out of the batch moments; the mask passes through.

    Args:
        axis: the features axis (default -1).
        momentum: of the moving averages (default 0.99).
        epsilon: added to the variance (default 1e-3).
        center / scale: whether to use ``beta`` / ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers of the four weights.
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint: as in Dense.

    Weights, in Keras order: ``gamma (C,)``, ``beta (C,)`` (trainable), ``moving_mean (C,)``,
    ``moving_variance (C,)`` (non-trainable).
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"BatchNormalization: axis must be an int, received {axis!r}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], received {momentum}")
        if float(epsilon) <= 0.0:
            raise ValueError(f"BatchNormalization: epsilon must be positive, received {epsilon}")
        super().__init__(**kwargs)
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = initializers.get(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = initializers.get(
            moving_mean_initializer, "moving_mean_initializer"
        )
        self.moving_variance_initializer = initializers.get(
            moving_variance_initializer, "moving_variance_initializer"
        )
        self.beta_regularizer = regularizers.get(beta_regularizer, "beta_regularizer")
        self.gamma_regularizer = regularizers.get(gamma_regularizer, "gamma_regularizer")
        self.beta_constraint = constraints.get(beta_constraint, "beta_constraint")
        self.gamma_constraint = constraints.get(gamma_constraint, "gamma_constraint")
        self.supports_masking = True
        self.gamma: torch.nn.Parameter | None = None
        self.beta: torch.nn.Parameter | None = None
        self._input_rank: int | None = None

    def _check_axis(self, rank: int) -> int:
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"BatchNormalization '{self.name}': axis {self.axis} is out of range for inputs "
                f"of rank {rank}"
            )
        return self.axis % rank

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        axis = self._check_axis(len(input_shape))
        self._input_rank = len(input_shape)
        if input_shape[axis] is None:
            raise ValueError(
                f"BatchNormalization '{self.name}': the size of axis {self.axis} must be known, "
                f"received input shape {tuple(input_shape)}"
            )
        shape = (input_shape[axis],)
        _add_gamma_and_beta(self, shape)
        self.moving_mean = self.add_weight(
            shape=shape,
            initializer=self.moving_mean_initializer,
            trainable=False,
            name="moving_mean",
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            initializer=self.moving_variance_initializer,
            trainable=False,
            name="moving_variance",
        )

    def _moments(
        self, x: torch.Tensor, axis: int, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dims = [d for d in range(x.ndim) if d != axis]
        if mask is None:
            variance, mean = torch.var_mean(x, dim=dims, correction=0)
            return mean, variance
        weights = mask.unsqueeze(-1).expand(x.shape).to(x.dtype)
        total = weights.sum(dim=dims) + _MASK_EPSILON
        mean = (x * weights).sum(dim=dims) / total
        centered = (x - _broadcast(mean, x.ndim, axis)) * weights
        variance = centered.square().sum(dim=dims) / total
        return mean, variance

    def _tensors(self) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
        """``(gamma, beta, moving_mean, moving_variance)`` (gamma, beta: None without
        ``scale``, ``center``), read from torch's registry where they are there:
        ``Module.__getattr__`` costs a Python call per read, six per call otherwise."""
        registered = self._parameters
        gamma, beta = registered.get("gamma"), registered.get("beta")
        mean, variance = registered.get("moving_mean"), registered.get("moving_variance")
        return (
            self.gamma if gamma is None else gamma,
            self.beta if beta is None else beta,
            self.moving_mean if mean is None else mean,
            self.moving_variance if variance is None else variance,
        )

    def call(self, inputs: torch.Tensor, training: bool = False, mask: Any = None) -> torch.Tensor:
        tensors = self._tensors()
        moving_mean = tensors[2]
        features = moving_mean.shape[0]
        rank = inputs.ndim
        if rank != self._input_rank or not -rank <= self.axis < rank:
            check_input_shape(self, inputs.shape, rank=self._input_rank, legend="(as built)")
            axis = self._check_axis(rank)  # raises for an axis out of range
        else:
            axis = self.axis % rank
        if inputs.shape[axis] != features:
            legend = f"(axis {self.axis} holds the {features} features the layer was built for)"
            check_input_shape(self, inputs.shape, axes={axis: features}, legend=legend)
        if mask is not None:
            if not isinstance(mask, torch.Tensor):
                mask = torch.as_tensor(np.asarray(mask), device=inputs.device)
            check_input_shape(
                self,
                mask.shape,
                rank=inputs.ndim - 1,
                axes=dict(enumerate(inputs.shape[:-1])),
                argument="mask",
                legend="(the inputs' shape without the last axis)",
            )
        out_dtype = inputs.dtype
        # Statistics in at least float32, as Keras does for float16/bfloat16 inputs.
        x = inputs
        if inputs.dtype not in (torch.float32, torch.float64):
            x = inputs.to(torch.promote_types(inputs.dtype, torch.float32))
        train = bool(training and self.trainable)
        one_value = x.numel() == x.shape[1]  # torch's op refuses to train on that; Keras does
        if (
            mask is None
            and axis == 1
            and x.dtype == moving_mean.dtype
            and not (train and one_value)
        ):
            return self._fused(x, train, tensors).to(out_dtype)
        if training and self.trainable:
            mean, variance = self._moments(x, axis, mask)
            if not in_symbolic_call():
                self._update_moving_statistics(mean, variance)
        else:
            mean, variance = self.moving_mean.to(x.dtype), self.moving_variance.to(x.dtype)
        scale = torch.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            scale = scale * self.gamma.to(x.dtype)
        shift = -mean * scale
        if self.beta is not None:
            shift = shift + self.beta.to(x.dtype)
        outputs = x * _broadcast(scale, x.ndim, axis) + _broadcast(shift, x.ndim, axis)
        return outputs.to(out_dtype)

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> KerasTensor | None:
        """The input's shape in the compute dtype, with its mask, for floating inputs the
        built layer takes; None under a mixed policy or for inputs the call rejects."""
        shape = inputs.shape
        if kwargs or self._autocast_dtype is not None or not inputs.dtype.is_floating_point:
            return None
        if not -len(shape) <= self.axis < len(shape) or shape[self.axis] is None:
            return None
        if type(self).call is not BatchNormalization.call:
            return None
        self._maybe_build(inputs)
        if self._input_rank != len(shape) or shape[self.axis] != self.moving_mean.shape[0]:
            return None  # the placeholder run raises the error
        return self._with_input_mask(inputs, KerasTensor(shape, self.compute_dtype))

    @torch.no_grad()
    def _update_moving_statistics(self, mean: torch.Tensor, variance: torch.Tensor) -> None:
        """Keras' update, ``moving = moving * momentum + batch * (1 - momentum)``, written
        as one in-place ``lerp`` of both statistics (``moving + (1 - momentum) * (batch -
        moving)``: the same value up to rounding, one op instead of eight)."""
        moving = [self.moving_mean, self.moving_variance]
        batch = [
            s if s.dtype == m.dtype else s.to(m.dtype) for s, m in zip((mean, variance), moving)
        ]
        torch._foreach_lerp_(moving, batch, 1.0 - self.momentum)

    def _fused(
        self, x: torch.Tensor, training: bool, tensors: tuple[Any, Any, torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Features on axis 1, no mask: torch's batch-norm op (one node forward and backward)
        normalizes, with the batch's biased variance in training as Keras does; the moving
        statistics get Keras' update (torch's own would use the unbiased variance).

        In training on the CPU, ``torch.native_batch_norm`` updates the statistics itself,
        with momentum ``1 - self.momentum``: the moving mean as Keras does, and, for the
        variance, a spare copy of the moving variance scaled by ``n / (n - 1)`` (``n`` values
        per feature). torch's op adds the batch's unbiased variance, ``n / (n - 1)`` times the
        biased one Keras uses, so the copy stays ``n / (n - 1)`` times Keras' moving variance,
        and one division writes that into the layer's (:meth:`_scaled_variance`). One op after
        the kernel instead of three (a separate ``torch.var_mean`` would cost twice the
        kernel). Given no running statistics at all, torch's CPU kernel takes another path,
        which on small batches can wait tens of milliseconds for a second thread when the
        other cores are busy (a (8, 3) batch: 45 ms against 12 us). Other devices, and traced
        code (torch.compile, torch.export: nothing to mutate), take ``F.batch_norm`` and
        ``torch.var_mean``. ``tensors``: :meth:`_tensors`."""
        gamma, beta, moving_mean, moving_variance = tensors
        if not training:
            return F.batch_norm(
                x, moving_mean, moving_variance, gamma, beta, False, 0.0, self.epsilon
            )
        update = not in_symbolic_call()
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            if update:
                with torch.no_grad():
                    self._update_moving_statistics(*self._moments(x, 1, None))
            return F.batch_norm(x, None, None, gamma, beta, True, 0.0, self.epsilon)
        if not update:  # a placeholder run: statistics the op leaves as they are
            spare_mean, spare_variance = self._spare_statistics(x)
            return torch.native_batch_norm(
                x, gamma, beta, spare_mean, spare_variance, True, 0.0, self.epsilon
            )[0]
        values = x.numel() // x.shape[1]
        scale = values / (values - 1)
        scaled = self._scaled_variance(moving_variance, scale)
        out = torch.native_batch_norm(
            x, gamma, beta, moving_mean, scaled, True, 1.0 - self.momentum, self.epsilon
        )[0]
        torch.div(scaled, scale, out=moving_variance)
        inference = torch.is_inference_mode_enabled()
        # kept while nothing else writes the moving variance (its version says so)
        self.__dict__["_scaled"] = (
            moving_variance, moving_variance._version, scale, inference, scaled
        )  # fmt: skip
        return out

    def _scaled_variance(self, moving_variance: torch.Tensor, scale: float) -> torch.Tensor:
        """``scale`` times the moving variance, for torch's op to update (see :meth:`_fused`):
        the copy the last call left, unless the moving variance was written since (a
        ``set_weights``, a ``load_state_dict``, another buffer), the batch size changed, or
        inference mode did (tensors made in it cannot be written outside it)."""
        kept = self.__dict__.get("_scaled")
        if (
            kept is not None
            and kept[0] is moving_variance
            and kept[1] == moving_variance._version
            and kept[2] == scale
            and kept[3] == torch.is_inference_mode_enabled()
        ):
            return kept[4]
        return moving_variance * scale

    def _spare_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Running mean and variance for torch's batch-norm op to update with momentum 0
        (see :meth:`_fused`), kept from call to call; not weights, not saved."""
        spare = self.__dict__.get("_spare")
        features, dtype = x.shape[1], self.moving_mean.dtype  # the weights' dtype, as torch's
        wanted = (features, dtype, x.device)
        if spare is None or (spare[0].shape[0], spare[0].dtype, spare[0].device) != wanted:
            options = {"dtype": dtype, "device": x.device}
            spare = (torch.zeros(features, **options), torch.ones(features, **options))
            self.__dict__["_spare"] = spare
        return spare

    def compute_output_shape(self, input_shape: Any) -> Any:
        self._check_axis(len(input_shape))
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BatchNormalization:
        """Also loads Keras configs (their synchronized/renorm keys must be off)."""
        defaults = {"synchronized": False, "renorm": False, "renorm_clipping": None}
        return cls(**drop_keras_only_keys(cls, config, defaults, ignored=("renorm_momentum",)))


def _broadcast(vector: torch.Tensor, ndim: int, axis: int) -> torch.Tensor:
    """A ``(C,)`` vector shaped to broadcast along ``axis`` of a rank-``ndim`` tensor."""
    shape = [1] * ndim
    shape[axis] = vector.shape[0]
    return vector.reshape(shape)


class LayerNormalization(Layer):
    """Normalizes each sample over ``axis`` (by default the features ``F``), the same in
    training and inference::

        mean, variance = moments of inputs over `axis` (biased variance), per position
        outputs = gamma * (inputs - mean) / sqrt(variance + epsilon) + beta

    Args:
        axis: the axis or list of axes to normalize over (default -1).
        epsilon: added to the variance (default 1e-3).
        center / scale: whether to use ``beta`` / ``gamma``.
        beta_initializer, gamma_initializer (``"zeros"``, ``"ones"``), beta_regularizer,
        gamma_regularizer, beta_constraint, gamma_constraint: as in Dense.
        rms_scaling: only False (Keras deprecated it; use an RMS normalization layer).

    Weights, in Keras order: ``gamma`` then ``beta``, of the inputs' sizes on ``axis``
    (``(F,)`` by default). Masks pass through unchanged and do not enter the moments.

    >>> import numpy as np
    >>> out = LayerNormalization()(np.array([[1.0, 3.0]], np.float32))
    >>> [round(float(v), 3) for v in out[0]]
    [-0.999, 0.999]
    """

    def __init__(
        self,
        axis: int | list[int] | tuple[int, ...] = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        rms_scaling: bool = False,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
            raise TypeError(
                f"LayerNormalization: axis must be an int or a list of ints, received {axis!r}"
            )
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
            raise ValueError(f"LayerNormalization: epsilon must be positive, received {epsilon!r}")
        if rms_scaling:
            raise ValueError(
                "LayerNormalization: rms_scaling=True (deprecated in Keras, it scales by the "
                "variance) is not supported by rnnkit"
            )
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = initializers.get(gamma_initializer, "gamma_initializer")
        self.beta_regularizer = regularizers.get(beta_regularizer, "beta_regularizer")
        self.gamma_regularizer = regularizers.get(gamma_regularizer, "gamma_regularizer")
        self.beta_constraint = constraints.get(beta_constraint, "beta_constraint")
        self.gamma_constraint = constraints.get(gamma_constraint, "gamma_constraint")
        self.supports_masking = True
        self.gamma: torch.nn.Parameter | None = None
        self.beta: torch.nn.Parameter | None = None
        self._built_shape: tuple[int | None, ...] | None = None

    def _axes(self, shape: tuple[int | None, ...]) -> list[int]:
        rank = len(shape)
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -rank <= a < rank:
                raise ValueError(
                    f"{layer_label(self)}: axis={self.axis} is out of range for inputs of shape "
                    f"{tuple(shape)}"
                )
        resolved = sorted({a % rank for a in axes})
        if len(resolved) != len(axes):
            raise ValueError(f"{layer_label(self)}: axis={self.axis} repeats an axis")
        return resolved

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        axes = self._axes(tuple(input_shape))
        shape = tuple(input_shape[a] for a in axes)
        if any(d is None for d in shape):
            raise ValueError(
                f"{layer_label(self)}: the sizes of axis={self.axis} must be known, received "
                f"input shape {tuple(input_shape)}"
            )
        self._built_shape = tuple(input_shape)
        _add_gamma_and_beta(self, shape)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        shape = tuple(inputs.shape)
        assert self._built_shape is not None
        check_input_shape(self, shape, rank=len(self._built_shape), legend="(as built)")
        axes = self._axes(shape)
        expected = {a: self._built_shape[a] for a in axes}
        check_input_shape(self, shape, axes=expected, legend=f"(axis={self.axis} as built)")
        out_dtype = inputs.dtype
        x = inputs
        if inputs.dtype not in (torch.float32, torch.float64):
            x = inputs.to(torch.promote_types(inputs.dtype, torch.float32))
        variance, mean = torch.var_mean(x, dim=axes, keepdim=True, correction=0)
        factor = torch.rsqrt(variance + self.epsilon)
        broadcast = [shape[d] if d in axes else 1 for d in range(len(shape))]
        if self.gamma is not None:
            factor = factor * self.gamma.to(x.dtype).reshape(broadcast)
        shift = -mean * factor
        if self.beta is not None:
            shift = shift + self.beta.to(x.dtype).reshape(broadcast)
        return (x * factor + shift).to(out_dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        self._axes(tuple(input_shape))
        return input_shape

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> KerasTensor | None:
        """The input's shape and mask, in the dtype the call casts floating inputs to, for
        inputs the built layer takes (the sizes of ``axis`` as built); None under a mixed
        policy, for a subclass with its own ``call`` or for inputs the call rejects."""
        shape, rank = inputs.shape, len(inputs.shape)
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if (
            kwargs
            or self._autocast_dtype is not None
            or type(self).call is not LayerNormalization.call
            or not inputs.dtype.is_floating_point
            or not all(-rank <= a < rank for a in axes)
            or len({a % rank for a in axes}) != len(axes)
            or any(shape[a] is None for a in axes)
        ):
            return None
        self._maybe_build(inputs)
        built = self._built_shape
        if built is None or len(built) != rank or any(shape[a] != built[a] for a in axes):
            return None  # the placeholder run raises the error that names both shapes
        return self._with_input_mask(inputs, KerasTensor(shape, call_input_dtype(self, inputs)))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": False,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }
