"""Neural-network ops (``keras.ops.nn``): activations, ``softmax``, ``one_hot``, losses,
``moments`` and ``normalize``.

Activations take any real input (ints as float32) and keep a float input's dtype. ``axis``
arguments may be negative. As in Keras, ``gelu`` defaults to the tanh approximation and
``leaky_relu`` to a slope of 0.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.ops._axes import canonical_axes, canonical_axis, check_int
from rnnkit.ops._dtypes import FLOATX, to_torch_dtype
from rnnkit.ops.core import convert_to_tensor, tensors
from rnnkit.ops.numpy_math import _float_input
from rnnkit.ops.numpy_math import tanh as tanh

__all__ = [
    "binary_crossentropy", "categorical_crossentropy", "elu", "gelu", "hard_sigmoid",
    "hard_silu", "hard_swish", "leaky_relu", "log_sigmoid", "log_softmax", "moments",
    "multi_hot", "normalize", "one_hot", "relu", "relu6", "selu", "sigmoid", "silu",
    "softmax", "softplus", "softsign", "sparse_categorical_crossentropy", "swish", "tanh",
]  # fmt: skip


def relu(x: Any) -> torch.Tensor:
    """``max(x, 0)`` (ints stay ints)."""
    return F.relu(convert_to_tensor(x))


def relu6(x: Any) -> torch.Tensor:
    """``min(max(x, 0), 6)``."""
    return F.relu6(_float_input(x))


def sigmoid(x: Any) -> torch.Tensor:
    """``1 / (1 + exp(-x))``."""
    return torch.sigmoid(_float_input(x))


def softplus(x: Any) -> torch.Tensor:
    """``log(1 + exp(x))``."""
    return F.softplus(_float_input(x))


def softsign(x: Any) -> torch.Tensor:
    """``x / (1 + |x|)``."""
    return F.softsign(_float_input(x))


def silu(x: Any) -> torch.Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    return F.silu(_float_input(x))


swish = silu


def log_sigmoid(x: Any) -> torch.Tensor:
    """``log(sigmoid(x))``, computed without overflow."""
    return F.logsigmoid(_float_input(x))


def leaky_relu(x: Any, negative_slope: float = 0.2) -> torch.Tensor:
    """``x`` for x >= 0, ``negative_slope * x`` otherwise."""
    return F.leaky_relu(_float_input(x), negative_slope)


def hard_sigmoid(x: Any) -> torch.Tensor:
    """``relu6(x + 3) / 6``, a piecewise linear sigmoid."""
    return F.hardsigmoid(_float_input(x))


def hard_silu(x: Any) -> torch.Tensor:
    """``x * hard_sigmoid(x)``."""
    return F.hardswish(_float_input(x))


hard_swish = hard_silu


def elu(x: Any, alpha: float = 1.0) -> torch.Tensor:
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    return F.elu(_float_input(x), alpha=alpha)


def selu(x: Any) -> torch.Tensor:
    """The scaled exponential linear unit."""
    return F.selu(_float_input(x))


def gelu(x: Any, approximate: bool = True) -> torch.Tensor:
    """``x * P(X <= x)`` for standard normal X; the tanh approximation when ``approximate``
    (Keras' default)."""
    return F.gelu(_float_input(x), approximate="tanh" if approximate else "none")


def _softmax_axes(op: str, x: torch.Tensor, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    axes = canonical_axes(op, axis, x.ndim)
    return tuple(range(x.ndim)) if axes is None else axes


def softmax(x: Any, axis: int | Sequence[int] | None = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x))`` over ``axis`` (an int, several axes, or all when None)."""
    x = _float_input(x)
    if x.ndim == 0:
        return torch.ones_like(x)
    axes = _softmax_axes("softmax", x, axis)
    if len(axes) == 1:
        return torch.softmax(x, dim=axes[0])
    return torch.exp(x - torch.logsumexp(x, dim=axes, keepdim=True))


def log_softmax(x: Any, axis: int | Sequence[int] | None = -1) -> torch.Tensor:
    """``x - log(sum(exp(x)))`` over ``axis``."""
    x = _float_input(x)
    if x.ndim == 0:
        return torch.zeros_like(x)
    axes = _softmax_axes("log_softmax", x, axis)
    if len(axes) == 1:
        return torch.log_softmax(x, dim=axes[0])
    return x - torch.logsumexp(x, dim=axes, keepdim=True)


def _class_ids(op: str, x: Any, num_classes: int) -> torch.Tensor:
    ids = convert_to_tensor(x)
    check_int(op, "num_classes", num_classes, minimum=1)
    if ids.dtype == torch.bool or ids.dtype.is_complex:
        raise TypeError(f"{op}: x must hold integer class ids, received dtype {ids.dtype}")
    if ids.dtype.is_floating_point and not bool((ids == torch.round(ids)).all()):
        raise ValueError(f"{op}: x must hold integer class ids, received non-integral floats")
    ids = ids.to(torch.int64)
    if ids.numel() and int(ids.max()) >= num_classes:
        raise ValueError(
            f"{op}: class ids must be < num_classes={num_classes}, received {int(ids.max())}"
        )
    return ids


def _dense_only(op: str, sparse: bool) -> None:
    if sparse:
        raise ValueError(f"{op}: sparse=True is not supported (dense tensors only)")


def one_hot(
    x: Any, num_classes: int, axis: int = -1, dtype: Any = None, sparse: bool = False
) -> torch.Tensor:
    """A vector of ``num_classes`` with a 1 at each class id of ``x``, on a new ``axis``.
    Negative ids give all zeros (as in Keras).

    Shapes: ``x`` ``(...)`` -> ``(..., num_classes)`` for ``axis=-1``.
    """
    _dense_only("one_hot", sparse)
    ids = _class_ids("one_hot", x, num_classes)
    position = canonical_axis("one_hot", axis, ids.ndim + 1)
    valid = ids >= 0
    encoded = F.one_hot(torch.where(valid, ids, 0), num_classes) * valid.unsqueeze(-1)
    target = FLOATX if dtype is None else to_torch_dtype(dtype)
    return torch.movedim(encoded.to(target), -1, position)


def multi_hot(
    inputs: Any, num_classes: int, axis: int = -1, dtype: Any = None, sparse: bool = False
) -> torch.Tensor:
    """The ``one_hot`` vectors of the last axis of ``inputs`` combined (1 where any id is)."""
    _dense_only("multi_hot", sparse)
    ids = _class_ids("multi_hot", inputs, num_classes)
    if ids.ndim == 0:
        raise ValueError("multi_hot: x must have rank >= 1, received a scalar")
    encoded = one_hot(ids, num_classes, axis=-1, dtype=torch.int32).amax(dim=-2)
    target = FLOATX if dtype is None else to_torch_dtype(dtype)
    return torch.movedim(encoded.to(target), -1, canonical_axis("multi_hot", axis, ids.ndim))


def _epsilon_clip(output: torch.Tensor) -> torch.Tensor:
    eps = 1e-7
    return output.clamp(eps, 1.0 - eps)


def _check_same_shape(op: str, target: torch.Tensor, output: torch.Tensor) -> None:
    if target.shape != output.shape:
        raise ValueError(
            f"{op}: target and output must have the same shape, received {tuple(target.shape)} "
            f"and {tuple(output.shape)}"
        )


def categorical_crossentropy(
    target: Any, output: Any, from_logits: bool = False, axis: int = -1
) -> torch.Tensor:
    """``-sum(target * log(p))`` over ``axis``, with ``p`` the softmax of ``output`` when
    ``from_logits``, else ``output`` rescaled to sum to 1 and clipped to ``[1e-7, 1-1e-7]``."""
    target, output = (
        t.to(FLOATX) if not t.is_floating_point() else t for t in tensors(target, output)
    )
    _check_same_shape("categorical_crossentropy", target, output)
    a = canonical_axis("categorical_crossentropy", axis, output.ndim)
    if from_logits:
        log_p = torch.log_softmax(output, dim=a)
    else:
        log_p = torch.log(_epsilon_clip(output / output.sum(dim=a, keepdim=True)))
    return -(target * log_p).sum(dim=a)


def sparse_categorical_crossentropy(
    target: Any, output: Any, from_logits: bool = False, axis: int = -1
) -> torch.Tensor:
    """``categorical_crossentropy`` with integer class ids as ``target`` (shape of
    ``output`` without ``axis``)."""
    output = _float_input(output)
    a = canonical_axis("sparse_categorical_crossentropy", axis, output.ndim)
    ids = convert_to_tensor(target, device=output.device)
    if ids.ndim == output.ndim and ids.shape[a] == 1:
        ids = ids.squeeze(a)
    expected = tuple(d for i, d in enumerate(output.shape) if i != a)
    if tuple(ids.shape) != expected:
        raise ValueError(
            f"sparse_categorical_crossentropy: target must have shape {expected} (output's "
            f"shape without axis {axis}), received {tuple(ids.shape)}"
        )
    one_hot_target = one_hot(ids.to(torch.int64), output.shape[a], axis=a, dtype=output.dtype)
    return categorical_crossentropy(one_hot_target, output, from_logits=from_logits, axis=a)


def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> torch.Tensor:
    """Elementwise ``-(t log p + (1 - t) log(1 - p))``, with ``p = sigmoid(output)`` when
    ``from_logits``, else ``output`` clipped to ``[1e-7, 1-1e-7]``."""
    target, output = (
        t.to(FLOATX) if not t.is_floating_point() else t for t in tensors(target, output)
    )
    _check_same_shape("binary_crossentropy", target, output)
    if from_logits:
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")
    p = _epsilon_clip(output)
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p))


def moments(
    x: Any, axes: int | Sequence[int], keepdims: bool = False, synchronized: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, variance)`` of ``x`` over ``axes`` (``synchronized=True``, Keras' cross-device
    statistics, is not supported)."""
    if synchronized:
        raise ValueError("moments: synchronized=True is not supported")
    x = _float_input(x)
    dims = canonical_axes("moments", axes, x.ndim, "axes") or ()
    mean = x.mean(dim=dims, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=dims, keepdim=keepdims)
    return (mean if keepdims else mean.squeeze(dims)), variance


def normalize(x: Any, axis: int = -1, order: int = 2, epsilon: float | None = None) -> torch.Tensor:
    """``x / max(norm(x), epsilon)`` with the ``order``-norm along ``axis`` (``epsilon``
    defaults to 1e-7; for order 2, ``x * min(1 / sqrt(sum(x**2)), 1 / epsilon)`` as Keras)."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"normalize: order must be an int >= 1, received {order!r}")
    x = _float_input(x)
    if x.ndim == 0:
        x = x.reshape(1)
    a = canonical_axis("normalize", axis, x.ndim)
    eps = 1e-7 if epsilon is None else epsilon
    if order == 2:
        inverse = torch.rsqrt((x * x).sum(dim=a, keepdim=True))
        return x * torch.clamp(inverse, max=1.0 / eps)
    norm = torch.linalg.vector_norm(x, ord=order, dim=a, keepdim=True)
    return x / torch.clamp(norm, min=eps)
