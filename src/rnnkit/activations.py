"""Activation functions with Keras 3's definitions, and ``get`` to resolve them by name.

Each function maps a tensor to a tensor of the same shape. ``get("tanh")`` returns
:func:`tanh`; ``get(None)`` returns :func:`linear`; callables pass through. :data:`ACTIVATIONS`
is the one table of what rnnkit knows about each (name, function, plain torch form,
elementwise); :func:`info` looks a row up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rnnkit._resolve import resolve
from rnnkit.registry import serialize_keras_object

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


@dataclass(frozen=True)
class ActivationInfo:
    """What rnnkit knows about one built-in activation: the one table everyone asks.

    ``name``: the Keras name; ``function``: rnnkit's function; ``torch_native``: the plain
    torch function computing the same values (``torch.tanh``), which the fused kernels and
    the manual-backward kernel recognise too, or None; ``elementwise``: whether each output
    element depends only on the same input element (a cell may then apply it to several
    gates in one call, and the manual-backward kernel may differentiate it elementwise).
    """

    name: str
    function: Callable[..., Tensor]
    torch_native: Callable[..., Tensor] | None = None
    elementwise: bool = True


ACTIVATIONS: tuple[ActivationInfo, ...] = (
    ActivationInfo("linear", linear),
    ActivationInfo("tanh", tanh, torch.tanh),
    ActivationInfo("sigmoid", sigmoid, torch.sigmoid),
    ActivationInfo("hard_sigmoid", hard_sigmoid),
    ActivationInfo("relu", relu, torch.relu),
    ActivationInfo("relu6", relu6),
    ActivationInfo("leaky_relu", leaky_relu),
    ActivationInfo("elu", elu),
    ActivationInfo("selu", selu),
    ActivationInfo("gelu", gelu),
    ActivationInfo("swish", swish),
    ActivationInfo("silu", swish),
    ActivationInfo("softplus", softplus),
    ActivationInfo("softsign", softsign),
    ActivationInfo("exponential", exponential),
    ActivationInfo("softmax", softmax, elementwise=False),
    ActivationInfo("log_softmax", log_softmax, elementwise=False),
    ActivationInfo("mish", mish),
)
"""Every built-in activation, one row each (``swish`` and ``silu`` are one function)."""

_TABLE: dict[str, Callable[..., Tensor]] = {info.name: info.function for info in ACTIVATIONS}
_BY_NAME: dict[str, ActivationInfo] = {info.name: info for info in ACTIVATIONS}
_BY_FUNCTION: dict[Any, ActivationInfo] = {}
for _info in reversed(ACTIVATIONS):  # the first name of a shared function wins
    _BY_FUNCTION[_info.function] = _info
_BY_NATIVE: dict[Any, ActivationInfo] = {
    info.torch_native: info for info in ACTIVATIONS if info.torch_native is not None
}


def info(identifier: Any, torch_native: bool = False) -> ActivationInfo | None:
    """The table row of ``identifier``: a built-in name, or a built-in function (with
    ``torch_native``, also the plain torch form, ``torch.tanh``); None for anything else
    (a user's callable, an unknown name).

    >>> info("tanh").torch_native is torch.tanh, info(torch.tanh), info(torch.tanh, True).name
    (True, None, 'tanh')
    """
    if isinstance(identifier, str):
        return _BY_NAME.get(identifier)
    try:
        found = _BY_FUNCTION.get(identifier)
        if found is None and torch_native:
            found = _BY_NATIVE.get(identifier)
    except TypeError:  # an unhashable callable object is no built-in activation
        return None
    return found


def is_elementwise(fn: Any) -> bool:
    """Whether ``fn`` is known to act elementwise: a built-in activation marked so, or its
    plain torch form. A user's callable is not known to (it may act across units)."""
    found = info(fn, torch_native=True)
    return found is not None and found.elementwise


def get(identifier: Any, argument: str = "activation") -> Callable[..., Tensor]:
    """Resolve an activation: a name from the table above, ``None`` (linear) or a callable."""
    if identifier is None:
        return linear
    return resolve(identifier, _TABLE, "activation", argument)


def serialize(activation: Callable[..., Tensor]) -> Any:
    """The name of a built-in activation (for ``get_config``); other callables by ``__name__``."""
    found = info(activation)
    if found is not None:
        return found.name
    return serialize_keras_object(activation)
