"""Losses with Keras 3 semantics (``rnnkit.losses``).

A loss object is called as ``loss(y_true, y_pred, sample_weight=None)`` and returns a scalar.
Its ``call`` gives one value per sample and position (the last axis already averaged, e.g.
``mean((y_true - y_pred) ** 2, axis=-1)`` for MSE), and the default reduction
``"sum_over_batch_size"`` sums those values and divides by their number, as Keras does:

    loss = sum(values * sample_weight) / values.numel()

A mask on ``y_pred`` (``y_pred._keras_mask``, set by masking layers) weights valid positions
by ``total / valid`` so that masked positions do not count and the result is the mean over the
valid ones.

>>> import torch
>>> MeanSquaredError()(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])).item()
0.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

EPSILON = 1e-7
_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "none", None)
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")  # the same: sum / number of values


def _as_tensor(x: Any, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if dtype is not None and x.dtype != dtype:
        x = x.to(dtype)
    if device is not None and x.device != torch.device(device):
        x = x.to(device)
    return x


def squeeze_or_expand_to_same_rank(
    x1: torch.Tensor, x2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop a trailing axis of size 1 from the one of rank higher by exactly one (Keras)."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        x1 = x1.squeeze(-1) if x2.ndim != 1 else x1
        x2 = x2.unsqueeze(-1) if x2.ndim == 1 else x2
    elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        x2 = x2.squeeze(-1) if x1.ndim != 1 else x2
        x1 = x1.unsqueeze(-1) if x1.ndim == 1 else x1
    return x1, x2


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b)))


def _prepare(y_true: Any, y_pred: Any, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = _as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = _as_tensor(y_true, y_pred.dtype, y_pred.device)
    given = tuple(y_true.shape)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if not _broadcastable(tuple(y_true.shape), tuple(y_pred.shape)):
        raise ValueError(
            f"{loss}: y_true has shape {given}, expected {tuple(y_pred.shape)} (the shape of "
            "y_pred; axes of size 1 broadcast)"
        )
    return y_true, y_pred


# --------------------------------------------------------------------- functions (per sample)
def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """``mean((y_true - y_pred) ** 2, axis=-1)``: shape ``y_pred.shape[:-1]``."""
    y_true, y_pred = _prepare(y_true, y_pred, "mean_squared_error")
    return torch.mean(torch.square(y_true - y_pred), dim=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """``mean(|y_true - y_pred|, axis=-1)``."""
    y_true, y_pred = _prepare(y_true, y_pred, "mean_absolute_error")
    return torch.mean(torch.abs(y_true - y_pred), dim=-1)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> torch.Tensor:
    """``mean(0.5 e**2 if |e| <= delta else delta |e| - 0.5 delta**2, axis=-1)``, e = error."""
    y_true, y_pred = _prepare(y_true, y_pred, "huber")
    error = y_pred - y_true
    abs_error = torch.abs(error)
    quadratic = 0.5 * torch.square(error)
    linear = delta * abs_error - 0.5 * delta**2
    return torch.mean(torch.where(abs_error <= delta, quadratic, linear), dim=-1)


def binary_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0
) -> torch.Tensor:
    """``mean(-(y log p + (1 - y) log(1 - p)), axis=-1)``; ``p`` clipped to ``[1e-7, 1 - 1e-7]``
    unless ``from_logits`` (then ``p = sigmoid(y_pred)``, computed stably). Labels ``(N,)``
    against predictions ``(N, 1)`` (or the reverse) are aligned first, as in Keras."""
    y_pred = _as_tensor(y_pred)
    y_true = _as_tensor(y_true, y_pred.dtype, y_pred.device)
    given = tuple(y_true.shape)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"binary_crossentropy: y_true and y_pred must have the same shape (up to a "
            f"trailing axis of size 1), received y_true.shape={given} and "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        p = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
        values = -(y_true * torch.log(p) + (1.0 - y_true) * torch.log(1.0 - p))
    return torch.mean(values, dim=-1)


def categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0
) -> torch.Tensor:
    """``-sum(y_true * log softmax(y_pred))`` over the last axis (one-hot ``y_true``);
    probabilities are renormalised and clipped to ``[1e-7, 1 - 1e-7]`` as in Keras."""
    y_pred = _as_tensor(y_pred)
    y_true = _as_tensor(y_true, y_pred.dtype, y_pred.device)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"categorical_crossentropy: y_true (one-hot) and y_pred must have the same shape, "
            f"received y_true.shape={tuple(y_true.shape)} and y_pred.shape={tuple(y_pred.shape)}"
        )
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    return -torch.sum(y_true * _log_probs(y_pred, from_logits), dim=-1)


def sparse_categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, ignore_class: int | None = None
) -> torch.Tensor:
    """``-log p[y_true]`` with integer ``y_true`` of shape ``y_pred.shape[:-1]`` (or with a
    trailing axis of size 1)."""
    y_true, y_pred = _sparse_targets(y_true, y_pred)
    valid = None
    if ignore_class is not None:
        valid = y_true != ignore_class
        y_true = torch.where(valid, y_true, torch.zeros_like(y_true))
    classes = y_pred.shape[-1]
    _check_labels(y_true, classes)
    if from_logits:  # the same -log_softmax[label], in torch's one fused op
        if y_pred.ndim == 2:
            values = F.cross_entropy(y_pred, y_true, reduction="none")
        else:
            flat = F.cross_entropy(
                y_pred.reshape(-1, classes), y_true.reshape(-1), reduction="none"
            )
            values = flat.reshape(y_true.shape)
    else:
        log_probs = _log_probs(y_pred, from_logits)
        values = -torch.gather(log_probs, -1, y_true.unsqueeze(-1)).squeeze(-1)
    if valid is not None:
        values = values * valid.to(values.dtype)
    return values


def _sparse_targets(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``y_true`` as int64 labels of shape ``y_pred.shape[:-1]`` (a trailing axis of size 1
    dropped), both as tensors on ``y_pred``'s device."""
    y_pred = _as_tensor(y_pred)
    y_true = _as_tensor(y_true, device=y_pred.device)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(
            "sparse_categorical_crossentropy: y_true must have the shape of y_pred without its "
            f"last (class) axis, received y_true.shape={tuple(y_true.shape)} and "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    return y_true.long(), y_pred


def _sparse_categorical_crossentropy_mean(
    y_true: Any, y_pred: Any, from_logits: bool = False, ignore_class: int | None = None
) -> torch.Tensor | None:
    """The batch mean of :func:`sparse_categorical_crossentropy` for logits of shape
    ``(batch, classes)`` without ``ignore_class``, in torch's one fused op (the mean taken
    inside ``nll_loss``, forward and backward); None for any other call."""
    shape = tuple(getattr(y_pred, "shape", ()))
    if not from_logits or ignore_class is not None or len(shape) != 2 or not shape[0]:
        return None  # before any conversion: the general path converts the targets itself
    if not (  # the common targets, int64 labels (batch,) beside y_pred, need no conversion
        isinstance(y_true, torch.Tensor)
        and isinstance(y_pred, torch.Tensor)
        and y_true.dtype == torch.int64
        and y_true.shape == shape[:1]
        and y_true.device == y_pred.device
    ):
        y_true, y_pred = _sparse_targets(y_true, y_pred)
    _check_labels(y_true, shape[1])
    return F.cross_entropy(y_pred, y_true)


# numpy's unsigned integer of each size, and its reduction without ndarray.max()'s Python
# wrapper (the label check runs at every training step)
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_MAXIMUM = np.maximum.reduce


def _check_labels(y_true: torch.Tensor, classes: int) -> None:
    """Labels in ``[0, classes)``, checked before the gather (out of range, it is a device-side
    assert on CUDA). Host labels are checked by numpy with a ValueError naming the label;
    labels on another device with an asynchronous device assert (no read-back per step)."""
    if not y_true.numel():
        return
    if y_true.is_cpu and not torch.compiler.is_compiling():
        labels = (y_true.detach() if y_true.requires_grad else y_true).numpy()
        if labels.dtype.kind == "i":  # one reduction: as unsigned, a negative label is huge
            outside = _MAXIMUM(labels.view(_UNSIGNED[labels.itemsize])) >= classes
        else:
            outside = ((labels < 0) | (labels >= classes)).any()
        if outside:
            out = (labels < 0) | (labels >= classes)
            raise ValueError(
                f"sparse_categorical_crossentropy: y_true holds the label {labels[out][0]}, "
                f"expected labels in [0, {classes}) (y_pred has {classes} classes on its last "
                "axis)"
            )
        return
    in_range = ((y_true >= 0) & (y_true < classes)).all()
    torch._assert_async(
        in_range, f"sparse_categorical_crossentropy: y_true holds labels outside [0, {classes})"
    )


def _log_probs(y_pred: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        return F.log_softmax(y_pred, dim=-1)
    probs = y_pred / torch.sum(y_pred, dim=-1, keepdim=True)
    return torch.log(torch.clamp(probs, EPSILON, 1.0 - EPSILON))


# ----------------------------------------------------------------------------- reduction
def reduce_weighted_values(
    values: torch.Tensor,
    sample_weight: Any = None,
    mask: torch.Tensor | None = None,
    reduction: str | None = "sum_over_batch_size",
) -> torch.Tensor:
    """Weight ``values`` by ``sample_weight`` and ``mask`` and reduce them (see module doc).

    ``sample_weight`` of shape ``(batch,)`` weights whole samples of any rank.
    """
    weight = None
    if sample_weight is not None:
        weight = _as_tensor(sample_weight, values.dtype, values.device)
        if not _broadcastable(tuple(_broadcast_weight(weight, values).shape), tuple(values.shape)):
            raise ValueError(
                f"sample_weight has shape {tuple(weight.shape)}, expected "
                f"{tuple(values.shape[:1])} (one weight per sample) or a shape that broadcasts "
                f"to the per-sample loss values {tuple(values.shape)}"
            )
    if mask is not None:
        mask = _as_tensor(mask, device=values.device).bool()
        mask, _ = squeeze_or_expand_to_same_rank(mask, values)
        float_mask = mask.to(values.dtype)
        if reduction in _MEAN_REDUCTIONS:
            valid = float_mask.sum()
            scale = torch.where(valid > 0, float_mask.numel() / valid, torch.zeros_like(valid))
            float_mask = float_mask * scale
        weight = float_mask if weight is None else _broadcast_weight(weight, float_mask)
    if weight is not None:
        values = values * _broadcast_weight(weight, values)
    if reduction in (None, "none") or values.ndim == 0:
        return values
    total = torch.sum(values)
    if reduction == "sum":
        return total
    count = values.numel()
    return total / count if count else total * 0.0


def _broadcast_weight(weight: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    values, weight = squeeze_or_expand_to_same_rank(values, weight)
    while weight.ndim < values.ndim:
        weight = weight.unsqueeze(-1)
    return weight


# ------------------------------------------------------------------------------- classes
class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred)`` returning per-sample values.

    Args:
        name: the loss's name (used in logs).
        reduction: ``"sum_over_batch_size"`` (default, Keras), ``"mean"`` (the same),
            ``"sum"`` or ``"none"``/``None`` (no reduction).
    """

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size"):
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: reduction must be one of {list(_REDUCTIONS)}, "
                f"received {reduction!r}"
            )
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        mask = getattr(y_pred, "_keras_mask", None)
        if sample_weight is None and mask is None and self.reduction in _MEAN_REDUCTIONS:
            mean = self._batch_mean(y_true, y_pred)
            if mean is not None:
                return mean
        values = self.call(y_true, y_pred)
        if values.ndim == 0 and (sample_weight is not None or mask is not None):
            what = "sample_weight" if sample_weight is not None else "a mask on y_pred"
            raise ValueError(
                f"loss '{self.name}' returned one scalar for the batch, so {what} cannot be "
                "applied; use a loss that returns per-sample values (e.g. rnnkit.losses)"
            )
        return reduce_weighted_values(values, sample_weight, mask, self.reduction)

    def call(self, y_true: Any, y_pred: Any) -> torch.Tensor:
        raise NotImplementedError

    def _batch_mean(self, y_true: Any, y_pred: Any) -> torch.Tensor | None:
        """The unweighted, unmasked mean of ``call``'s values in fewer ops where the loss has
        such a form (the reduction is then the loss's own); else None."""
        return None

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class LossFunctionWrapper(Loss):
    """A loss from a function ``fn(y_true, y_pred, **kwargs) -> per-sample values``."""

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> torch.Tensor:
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def _batch_mean(self, y_true: Any, y_pred: Any) -> torch.Tensor | None:
        if type(self).call is not LossFunctionWrapper.call:  # a subclass computes its own
            return None
        for fn, mean in _BATCH_MEANS:
            if fn is self.fn:
                return mean(y_true, y_pred, **self.fn_kwargs)
        return None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.fn_kwargs}


class MeanSquaredError(LossFunctionWrapper):
    """Mean of squares of errors: ``mean((y_true - y_pred) ** 2)``."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = None):
        super().__init__(mean_squared_error, name or "mean_squared_error", reduction)

    def get_config(self) -> dict[str, Any]:
        return Loss.get_config(self)


class MeanAbsoluteError(LossFunctionWrapper):
    """Mean of absolute errors: ``mean(|y_true - y_pred|)``."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = None):
        super().__init__(mean_absolute_error, name or "mean_absolute_error", reduction)

    def get_config(self) -> dict[str, Any]:
        return Loss.get_config(self)


class Huber(LossFunctionWrapper):
    """Huber loss: quadratic for ``|error| <= delta``, linear beyond (see :func:`huber`)."""

    def __init__(
        self,
        delta: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(huber, name or "huber_loss", reduction, delta=float(delta))


class BinaryCrossentropy(LossFunctionWrapper):
    """Cross-entropy for 0/1 targets; ``from_logits=True`` when ``y_pred`` are logits."""

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(
            binary_crossentropy,
            name or "binary_crossentropy",
            reduction,
            from_logits=bool(from_logits),
            label_smoothing=float(label_smoothing),
        )


class CategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy for one-hot targets ``(batch, ..., classes)``."""

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(
            categorical_crossentropy,
            name or "categorical_crossentropy",
            reduction,
            from_logits=bool(from_logits),
            label_smoothing=float(label_smoothing),
        )


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy for integer targets ``(batch, ...)`` and scores ``(batch, ..., classes)``."""

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(
            sparse_categorical_crossentropy,
            name or "sparse_categorical_crossentropy",
            reduction,
            from_logits=bool(from_logits),
            ignore_class=ignore_class,
        )


def _snake(name: str) -> str:
    # Lazy: importing rnnkit.layers loads rnnkit.saving, which imports the training modules.
    from rnnkit.layers.naming import to_snake_case

    return to_snake_case(name)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "huber": huber,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}
# Loss functions with a fused form of their unweighted batch mean (Loss._batch_mean); found by
# identity, since a user's callable need not be hashable.
_BATCH_MEANS: tuple[tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor | None]], ...] = (
    (sparse_categorical_crossentropy, _sparse_categorical_crossentropy_mean),
)
_CLASSES: dict[str, type[Loss]] = {
    cls.__name__: cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
    )
}


class _TorchLoss:
    """A ``torch.nn`` loss module, called in its own order ``loss(y_pred, y_true)``."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __call__(self, y_true: Any, y_pred: Any) -> torch.Tensor:
        y_pred = _as_tensor(y_pred)
        y_true = _as_tensor(y_true, device=y_pred.device)
        if y_true.is_floating_point() and y_true.dtype != y_pred.dtype:
            y_true = y_true.to(y_pred.dtype)
        return self.module(y_pred, y_true)


def get(identifier: Any) -> Any:
    """A loss from a name (``"mse"``, ``"sparse_categorical_crossentropy"``, ``"Huber"``), a
    config dict, a :class:`Loss` or a callable ``fn(y_true, y_pred)``.

    Names of functions give :class:`LossFunctionWrapper` objects named by the string, as in
    Keras' ``compile``; class names give instances with default arguments. A ``torch.nn`` loss
    module (``nn.CrossEntropyLoss()``) is called as torch expects, ``loss(y_pred, y_true)``,
    and its own reduction is used.
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        if name not in _CLASSES:
            raise ValueError(f"loss: unknown loss class {name!r}; valid: {sorted(_CLASSES)}")
        return _CLASSES[name].from_config(dict(identifier.get("config") or {}))
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return LossFunctionWrapper(_FUNCTIONS[identifier], name=identifier)
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        valid = sorted(_FUNCTIONS) + sorted(_CLASSES)
        raise ValueError(f"loss: unknown loss {identifier!r}. Valid names: {', '.join(valid)}")
    if isinstance(identifier, torch.nn.modules.loss._Loss):
        return LossFunctionWrapper(_TorchLoss(identifier), name=_snake(type(identifier).__name__))
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise TypeError(
        f"loss: expected a loss name, Loss object or callable, received {identifier!r} "
        f"of type {type(identifier).__name__}"
    )
