"""Activation functions with Keras 3's definitions, and ``get`` to resolve them by name.

Each function maps a tensor to a tensor of the same shape. ``get("tanh")`` returns
:func:`tanh`; ``get(None)`` returns :func:`linear`; callables pass through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from rnnkit._resolve import resolve

Tensor = torch.Tensor


def linear(x: Tensor) -> Tensor:
    """The identity."""
    return x


def tanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


def sigmoid(x: Tensor) -> Tensor:
    return torch.sigmoid(x)


def hard_sigmoid(x: Tensor) -> Tensor:
    """``relu6(x + 3) / 6`` (Keras 3; Keras 2 used ``clip(0.2 x + 0.5, 0, 1)``)."""
    return F.relu6(x + 3.0) / 6.0


def relu(
    x: Tensor, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0
) -> Tensor:
    """Rectified linear unit with Keras' optional slope, cap and threshold.

    ``x`` above ``threshold`` (capped to ``[0, max_value]`` when ``max_value`` is given), 0
    below it, minus ``negative_slope * relu(threshold - x)``: Keras 3's exact definition.
    """
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return torch.relu(x)
    positive = x * (x > threshold).to(x.dtype) if threshold != 0.0 else torch.relu(x)
    if max_value is not None:
        positive = torch.clamp(positive, 0.0, max_value)
    if negative_slope != 0.0:
        positive = positive - negative_slope * torch.relu(threshold - x)
    return positive


def relu6(x: Tensor) -> Tensor:
    return F.relu6(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    return F.leaky_relu(x, negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return F.elu(x, alpha)


def selu(x: Tensor) -> Tensor:
    return F.selu(x)


def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    return F.gelu(x, approximate="tanh" if approximate else "none")


def swish(x: Tensor) -> Tensor:
    """``x * sigmoid(x)``, also called silu."""
    return F.silu(x)


def softplus(x: Tensor) -> Tensor:
    return F.softplus(x)


def softsign(x: Tensor) -> Tensor:
    return F.softsign(x)


def exponential(x: Tensor) -> Tensor:
    return torch.exp(x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return torch.softmax(x, dim=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return torch.log_softmax(x, dim=axis)


def mish(x: Tensor) -> Tensor:
    return F.mish(x)


_TABLE: dict[str, Callable[..., Tensor]] = {
    "linear": linear,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "relu": relu,
    "relu6": relu6,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "selu": selu,
    "gelu": gelu,
    "swish": swish,
    "silu": swish,
    "softplus": softplus,
    "softsign": softsign,
    "exponential": exponential,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "mish": mish,
}


def get(identifier: Any, argument: str = "activation") -> Callable[..., Tensor]:
    """Resolve an activation: a name from the table above, ``None`` (linear) or a callable."""
    if identifier is None:
        return linear
    return resolve(identifier, _TABLE, "activation", argument)


def serialize(activation: Callable[..., Tensor]) -> Any:
    """The name of a built-in activation (for ``get_config``); other callables by ``__name__``."""
    for name, fn in _TABLE.items():
        if fn is activation:
            return name
    from rnnkit.saving.serialization import serialize_keras_object

    return serialize_keras_object(activation)
