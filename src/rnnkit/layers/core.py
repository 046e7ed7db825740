"""Core layers with Keras 3 semantics and weight layouts.

``Dense``, ``Embedding``, ``Dropout``, ``Activation``, ``Masking``, ``Flatten`` and ``Reshape``.
Shapes use ``B`` for the batch size, ``F`` for the input features (the last axis) and ``...``
for any number of axes in between.

>>> import numpy as np
>>> layer = Dense(4, activation="relu")
>>> tuple(layer(np.ones((2, 3, 5), np.float32)).shape)
(2, 3, 4)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from rnnkit import activations, constraints, initializers, regularizers
from rnnkit.layers.base import Layer, check_input_shape
from rnnkit.symbolic import KerasTensor, in_symbolic_call


def _positive_int(value: Any, argument: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{layer}: {argument} must be a positive integer, received {value!r}")
    return value


def add_activity_loss(layer: Layer, regularizer: Any, outputs: torch.Tensor) -> None:
    """Keras 3's activity regularization: ``regularizer(outputs) / batch_size`` as a loss."""
    if regularizer is None:
        return
    loss = regularizer(outputs)
    if outputs.ndim > 0 and outputs.shape[0] > 0:
        loss = loss / outputs.shape[0]
    layer.add_loss(loss)


def drop_keras_only_keys(
    cls: type, config: dict[str, Any], defaults: dict[str, Any], ignored: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A copy of ``config`` without the Keras-only keys in ``defaults`` (features rnnkit does
    not implement, such as quantization), so that configs written by Keras load. A key set to
    anything but its default raises ``ValueError``; keys in ``ignored`` are dropped whatever
    their value."""
    config = dict(config)
    for key, default in defaults.items():
        if key in config:
            value = config.pop(key)
            if value != default:
                raise ValueError(
                    f"{cls.__name__}.from_config: {key}={value!r} is a Keras feature rnnkit does "
                    f"not support (expected {default!r})"
                )
    for key in ignored:
        config.pop(key, None)
    return config


_KERAS_QUANTIZATION = {"quantization_config": None, "lora_rank": None, "lora_alpha": None}


class Dense(Layer):
    """A densely connected layer on the last axis: ``outputs = activation(inputs @ kernel + bias)``.

    Args:
        units: the size ``U`` of the output's last axis (a positive int).
        activation: an activation name or callable; ``None`` is linear.
        use_bias: whether to add ``bias``.
        kernel_initializer / bias_initializer: initializers of ``kernel`` ``(F, U)`` and
            ``bias`` ``(U,)`` (defaults ``"glorot_uniform"`` and ``"zeros"``).
        kernel_regularizer / bias_regularizer: penalties on the weights, added to ``losses``.
        activity_regularizer: a penalty on the outputs (divided by the batch size, as Keras 3).
        kernel_constraint / bias_constraint: projections applied after optimizer steps.

    Shapes: inputs ``(B, ..., F)`` (rank >= 2) give outputs ``(B, ..., U)``. Masks pass through.
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        units = _positive_int(units, "units", "Dense")
        super().__init__(**kwargs)
        self.units = units
        self._activation = activations.get(activation, argument="activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "bias_regularizer")
        self.activity_regularizer = regularizers.get(activity_regularizer, "activity_regularizer")
        self.kernel_constraint = constraints.get(kernel_constraint, "kernel_constraint")
        self.bias_constraint = constraints.get(bias_constraint, "bias_constraint")
        self.supports_masking = True

    @property
    def activation(self) -> Any:
        """The activation function; assigning a name, a callable or ``None`` (linear) works
        before or after the layer is built, as in Keras."""
        return self._activation

    @activation.setter
    def activation(self, value: Any) -> None:
        self._activation = activations.get(value, argument="activation")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"Dense '{self.name}': inputs must have rank >= 2 and a known last dimension, "
                f"received input shape {tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            name="kernel",
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                name="bias",
            )
        else:
            self.bias = None

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        # from torch's registry where they are there (Module.__getattr__ is a Python call
        # per read); a subclass may keep them otherwise
        registered = self._parameters
        kernel, bias = registered.get("kernel"), registered.get("bias")
        if kernel is None:
            kernel = self.kernel
        if bias is None:
            bias = self.bias
        if inputs.ndim < 2 or inputs.shape[-1] != kernel.shape[0]:  # the check names both
            check_input_shape(
                self, inputs.shape, min_rank=2, axes={-1: kernel.shape[0]},
                legend="(batch, ..., features)",
            )  # fmt: skip
        if not inputs.is_floating_point():
            inputs = inputs.to(kernel.dtype)
        if bias is not None and inputs.ndim == 2:
            outputs = torch.addmm(bias, inputs, kernel)  # one op, one autograd node
        else:
            outputs = torch.matmul(inputs, kernel)
            if bias is not None:
                outputs = outputs + bias
        activation = self._activation
        if activation is not activations.linear:  # the identity: no call
            outputs = activation(outputs)
        if self.activity_regularizer is not None:
            add_activity_loss(self, self.activity_regularizer, outputs)
        return outputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*tuple(input_shape)[:-1], self.units)

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> KerasTensor | None:
        """``(..., units)`` in the kernel's dtype, with the input's mask; None under a mixed
        policy, for a subclass with its own ``call``, with an activity regularizer (the run
        adds its loss) or for inputs the call rejects."""
        shape = inputs.shape
        if kwargs or self._autocast_dtype is not None or len(shape) < 2 or shape[-1] is None:
            return None
        if type(self).call is not Dense.call or self.activity_regularizer is not None:
            return None
        self._maybe_build(inputs)
        if shape[-1] != self.kernel.shape[0]:
            return None  # the placeholder run raises the error that names both sizes
        return self._with_input_mask(
            inputs, KerasTensor((*shape[:-1], self.units), self.kernel.dtype)
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dense:
        return cls(**drop_keras_only_keys(cls, config, _KERAS_QUANTIZATION))


class Embedding(Layer):
    """Turns integer indices into dense vectors: ``outputs[..., :] = embeddings[inputs[...]]``.

    Args:
        input_dim: the vocabulary size ``V``; valid indices are ``0 .. V - 1``.
        output_dim: the size ``D`` of each vector.
        embeddings_initializer: initializer of ``embeddings`` ``(V, D)``; the default
            ``"uniform"`` is Keras' ``RandomUniform(-0.05, 0.05)``.
        embeddings_regularizer / activity_regularizer / embeddings_constraint: as in Dense.
        mask_zero: if True, index 0 is padding: the output mask is ``inputs != 0`` (so
            ``input_dim`` should count the padding index).
        weights: initial embeddings, an array ``(V, D)`` or a list holding one; the layer is
            built at once with them (Keras 3).
        input_length: Keras 2's argument, accepted with Keras 3's deprecation warning and
            ignored (the sequence length comes from the inputs).

    Shapes: inputs ``(B, ...)`` (cast to integers, like Keras) give outputs ``(B, ..., D)``.
    An index outside ``[0, input_dim)`` raises ``ValueError`` before the lookup.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        activity_regularizer: Any = None,
        weights: Any = None,
        **kwargs: Any,
    ) -> None:
        input_dim = _positive_int(input_dim, "input_dim", "Embedding")
        output_dim = _positive_int(output_dim, "output_dim", "Embedding")
        input_length = kwargs.pop("input_length", None)
        if input_length is not None:
            if isinstance(input_length, bool) or not isinstance(input_length, int):
                raise TypeError(
                    f"Embedding: input_length must be an int or None, received {input_length!r}"
                )
            warnings.warn(
                "Embedding: input_length is deprecated (as in Keras 3) and ignored; remove it",
                UserWarning,
                stacklevel=2,
            )
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = initializers.get(
            embeddings_initializer, "embeddings_initializer"
        )
        self.embeddings_regularizer = regularizers.get(
            embeddings_regularizer, "embeddings_regularizer"
        )
        self.embeddings_constraint = constraints.get(embeddings_constraint, "embeddings_constraint")
        self.activity_regularizer = regularizers.get(activity_regularizer, "activity_regularizer")
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        if weights is not None:
            self.build()
            if not (isinstance(weights, (list, tuple)) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def build(self, input_shape: Any = None) -> None:
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
            name="embeddings",
        )

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.is_floating_point() or inputs.dtype == torch.bool:
            inputs = inputs.to(torch.int64)
        # Eagerly, indices on the host are checked here (by numpy: nothing is read back from
        # a device) for a clear error; on another device an asynchronous device assert checks
        # them. torch.compile skips the check (reading the values would split the graph) and
        # torch's embedding op raises instead; symbolic calls skip it too (no values).
        if inputs.numel() > 0 and not torch.compiler.is_compiling() and not in_symbolic_call():
            if inputs.device.type != "cpu":
                in_range = ((inputs >= 0) & (inputs < self.input_dim)).all()
                torch._assert_async(
                    in_range, f"Embedding '{self.name}': indices outside [0, {self.input_dim})"
                )
                low, high = 0, 0
            else:
                values = inputs.detach().numpy()
                low, high = int(values.min()), int(values.max())
            if low < 0 or high >= self.input_dim:
                bad = low if low < 0 else high
                raise ValueError(
                    f"Embedding '{self.name}': inputs: indices must be in [0, input_dim) with "
                    f"input_dim={self.input_dim}, received index {bad}"
                )
        outputs = torch.nn.functional.embedding(inputs.long(), self.embeddings)
        add_activity_loss(self, self.activity_regularizer, outputs)
        return outputs

    def compute_mask(self, inputs: torch.Tensor, mask: Any = None) -> torch.Tensor | None:
        if not self.mask_zero:
            return None
        return inputs != 0

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*tuple(input_shape), self.output_dim)

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> KerasTensor | None:
        """``(*input_shape, output_dim)`` in the table's dtype, with the ``inputs != 0`` mask
        (the input's shape, bool) when ``mask_zero``; None under a mixed policy or for a
        subclass with its own ``call`` or ``compute_mask``."""
        if kwargs or self._autocast_dtype is not None or type(self).call is not Embedding.call:
            return None
        if type(self).compute_mask is not Embedding.compute_mask or self.activity_regularizer:
            return None
        self._maybe_build(inputs)
        output = KerasTensor((*inputs.shape, self.output_dim), self.embeddings.dtype)
        if self.mask_zero:
            output._keras_mask = KerasTensor(inputs.shape, torch.bool)
        return output

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for ignored in ("input_length", "weights"):  # constructor-only, as in Keras 3
            config.pop(ignored, None)
        return {
            **config,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Embedding:
        return cls(**drop_keras_only_keys(cls, config, _KERAS_QUANTIZATION))


class Dropout(Layer):
    """Sets a random fraction ``rate`` of the inputs to 0 in training, scaling the rest by
    ``1 / (1 - rate)`` so that the expected sum is unchanged; the identity in inference.

    Args:
        rate: the fraction to drop, in ``[0, 1)``.
        noise_shape: the shape of the keep/drop pattern, broadcast over the inputs; ``None``
            entries take the input's size (e.g. ``(None, 1, None)`` drops the same features at
            every time step).
        seed: an int for reproducible patterns (a private generator, advanced by each call);
            ``None`` uses torch's global generator.

    Shapes: outputs have the inputs' shape. Masks pass through.
    """

    def __init__(
        self,
        rate: float,
        noise_shape: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be a float in [0, 1), received rate={rate!r}")
        if noise_shape is not None:
            if isinstance(noise_shape, (str, bytes)) or not hasattr(noise_shape, "__iter__"):
                raise ValueError(
                    f"Dropout: noise_shape must be a tuple of ints or None, received {noise_shape!r}"
                )
            noise_shape = tuple(noise_shape)
            for d in noise_shape:
                if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d <= 0):
                    raise ValueError(
                        "Dropout: noise_shape entries must be positive ints or None, "
                        f"received noise_shape={noise_shape}"
                    )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"Dropout: seed must be an int or None, received {seed!r}")
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.noise_shape = noise_shape
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.supports_masking = True

    def _noise_shape(self, inputs: torch.Tensor) -> tuple[int, ...]:
        if self.noise_shape is None:
            return tuple(inputs.shape)
        if len(self.noise_shape) != inputs.ndim:
            raise ValueError(
                f"Dropout '{self.name}': noise_shape {self.noise_shape} must have the inputs' "
                f"rank {inputs.ndim}, received inputs of shape {tuple(inputs.shape)}"
            )
        shape = tuple(s if d is None else d for d, s in zip(self.noise_shape, inputs.shape))
        for d, s in zip(shape, inputs.shape):
            if d not in (1, s):
                raise ValueError(
                    f"Dropout '{self.name}': noise_shape {self.noise_shape} does not broadcast "
                    f"to inputs of shape {tuple(inputs.shape)}"
                )
        return shape

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = self._noise_shape(inputs)
        if self.seed is None:
            pattern = torch.rand(shape, device=inputs.device) < keep
        else:
            if self._generator is None:
                self._generator = torch.Generator().manual_seed(self.seed)
            pattern = (torch.rand(shape, generator=self._generator) < keep).to(inputs.device)
        return torch.where(pattern, inputs / keep, torch.zeros((), dtype=inputs.dtype))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> KerasTensor | None:
        """The input as it is (a symbolic call is inference, the identity), with its mask;
        None with other arguments, a dtype of its own, a mixed policy or its own ``call``."""
        if kwargs or self._dtype_explicit or self._autocast_dtype is not None:
            return None
        if type(self).call is not Dropout.call:
            return None
        return self._with_input_mask(inputs, KerasTensor(inputs.shape, inputs.dtype))

    def get_config(self) -> dict[str, Any]:
        noise_shape = None if self.noise_shape is None else list(self.noise_shape)
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": noise_shape,
            "seed": self.seed,
        }


class Activation(Layer):
    """Applies an activation elementwise: ``outputs = activation(inputs)``.

    Args:
        activation: a name from :mod:`rnnkit.activations` (e.g. ``"relu"``) or a callable.

    Shapes: outputs have the inputs' shape. Masks pass through.
    """

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        fn = activations.get(activation)
        super().__init__(**kwargs)
        self.activation = fn
        self.supports_masking = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.activation(inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Masking(Layer):
    """Masks time steps whose features all equal ``mask_value``.

    ``mask = any(inputs != mask_value, axis=-1)`` of shape ``(B, T)``; ``outputs = inputs``
    where the mask is True and 0 elsewhere, with ``mask`` attached for downstream layers
    (RNNs skip the masked steps).

    Args:
        mask_value: the padding value (default 0.0).

    Shapes: inputs ``(B, T, F)`` (any rank >= 2) give outputs of the same shape.
    """

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise TypeError(f"Masking: mask_value must be a number, received {mask_value!r}")
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.supports_masking = True

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        """``any(inputs != mask_value, axis=-1)``; ``inputs`` a tensor or an array."""
        if not isinstance(inputs, torch.Tensor):
            inputs = torch.as_tensor(inputs)
        if inputs.dim() < 2:
            raise ValueError(
                f"Masking '{self.name}': inputs has shape {tuple(inputs.shape)}, expected "
                "rank >= 2 (batch, ..., features)"
            )
        return torch.any(inputs != self.mask_value, dim=-1)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        check_input_shape(self, inputs.shape, min_rank=2, legend="(batch, ..., features)")
        keep = torch.any(inputs != self.mask_value, dim=-1, keepdim=True)
        outputs = torch.where(keep, inputs, torch.zeros((), dtype=inputs.dtype))
        outputs._keras_mask = keep.squeeze(-1)  # compute_mask's value, computed once
        return outputs

    def _attach_output_masks(self, inputs: Any, mask: Any, outputs: Any) -> None:
        """The mask ``call`` attached is ``compute_mask``'s (unless a subclass has its own
        ``call`` or ``compute_mask``); only other outputs get theirs computed."""
        if (
            type(self).call is Masking.call
            and type(self).compute_mask is Masking.compute_mask
            and getattr(outputs, "_keras_mask", None) is not None
        ):
            return
        super()._attach_output_masks(inputs, mask, outputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> KerasTensor | None:
        """The input's shape and dtype with a ``(B, ...)`` bool mask (the input's shape
        without its last axis); None with other arguments, a dtype of its own, a mixed
        policy, its own ``call``/``compute_mask``, or inputs of rank under 2 (the call
        raises)."""
        if kwargs or self._dtype_explicit or self._autocast_dtype is not None:
            return None
        if (
            type(self).call is not Masking.call
            or type(self).compute_mask is not Masking.compute_mask
        ):
            return None
        if len(inputs.shape) < 2:
            return None
        output = KerasTensor(inputs.shape, inputs.dtype)
        output._keras_mask = KerasTensor(inputs.shape[:-1], torch.bool)
        return output

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask_value": self.mask_value}


class Flatten(Layer):
    """Flattens all axes but the batch axis: ``(B, d1, ..., dn)`` to ``(B, d1 * ... * dn)``.

    Args:
        data_format: ``"channels_last"`` (default) or ``"channels_first"``; with
            ``"channels_first"`` the channel axis 1 is moved last before flattening, so the
            order of the features matches a channels-last model.

    A ``(B,)`` input becomes ``(B, 1)``. Masks do not pass through (as in Keras).
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        data_format = data_format or "channels_last"
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "Flatten: data_format must be 'channels_last' or 'channels_first', "
                f"received {data_format!r}"
            )
        super().__init__(**kwargs)
        self.data_format = data_format

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = inputs.permute(0, *range(2, inputs.ndim), 1)
        return inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:]))

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        rest = tuple(input_shape)[1:]
        size = None if any(d is None for d in rest) else math.prod(rest)
        return (input_shape[0], size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshapes each sample: ``(B, ...)`` to ``(B, *target_shape)``.

    Args:
        target_shape: the per-sample shape, without the batch axis; one entry may be ``-1``,
            inferred from the number of elements.

    A sample whose size does not fit ``target_shape`` raises ``ValueError``.
    """

    def __init__(self, target_shape: tuple[int, ...], **kwargs: Any) -> None:
        if isinstance(target_shape, int):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in target_shape
        ):
            raise ValueError(
                "Reshape: target_shape must be a tuple of non-negative ints and at most one -1, "
                f"received {target_shape!r}"
            )
        if sum(d == -1 for d in target_shape) > 1:
            raise ValueError(
                f"Reshape: target_shape may contain at most one -1, received {tuple(target_shape)}"
            )
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)

    def _resolve(self, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
        size = math.prod(sample_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if known == 0 or size % known:
                raise ValueError(
                    f"Reshape '{self.name}': target_shape {self.target_shape} does not fit "
                    f"samples of shape {sample_shape} ({size} elements)"
                )
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(
                f"Reshape '{self.name}': target_shape {self.target_shape} has {known} elements, "
                f"received samples of shape {sample_shape} ({size} elements)"
            )
        return self.target_shape

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.reshape(inputs.shape[0], *self._resolve(tuple(inputs.shape[1:])))

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        rest = tuple(input_shape)[1:]
        if any(d is None for d in rest):
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
        return (input_shape[0], *self._resolve(rest))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": self.target_shape}
