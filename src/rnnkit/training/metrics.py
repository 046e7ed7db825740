"""Metrics with Keras 3 semantics (``rnnkit.metrics``).

A metric accumulates over batches: ``update_state(y_true, y_pred, sample_weight=None)``,
``result()`` (a Python float) and ``reset_state()``. Mean-based metrics average per-sample
values, each sample weighted by ``sample_weight`` (and by the mask on ``y_pred``):

    result = sum_i(w_i * v_i) / sum_i(w_i)

where ``v_i`` is the sample's value averaged over its non-batch axes.

``"accuracy"`` in ``compile(metrics=...)`` is resolved from the shapes like Keras 3 does
(:func:`get_metric`): binary when ``y_pred`` has one unit, sparse categorical when ``y_true``
has one axis fewer (or a trailing 1), categorical otherwise.

>>> m = MeanAbsoluteError()
>>> m.update_state([[0.0, 1.0]], [[1.0, 1.0]])
>>> m.result()
0.5
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from rnnkit.training import losses as losses_module
from rnnkit.training.losses import _as_tensor, squeeze_or_expand_to_same_rank


class Metric:
    """Base class: subclasses implement ``update_state``, ``result`` and ``reset_state``."""

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        # Lazy: importing rnnkit.layers loads rnnkit.saving, which imports the training modules.
        from rnnkit.layers.naming import to_snake_case

        self.name = name or to_snake_case(type(self).__name__)
        self.dtype = dtype

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def result_tensor(self) -> torch.Tensor:
        """The result as a 0-d tensor, left on the device (``fit`` reads the logs back only
        when it shows them). Metrics that only implement ``result()`` give a host tensor."""
        return torch.as_tensor(self.result(), dtype=torch.float32)

    def result_parts(self) -> tuple[torch.Tensor, float | None]:
        """``(value, None)``: the result as :meth:`result_tensor` gives it; a mean may give
        ``(total, count)`` instead, to be divided once read back (``0.0`` when ``count`` is
        0)."""
        return self.result_tensor(), None

    def state_tensors(self) -> list[Any] | None:
        """The values the metric accumulates, or None when it does not say (then the nan
        policy's step guard reads the step's flag back before updating it)."""
        return None

    def set_state_tensors(self, values: list[Any]) -> None:
        """Put back values given by :meth:`state_tensors`."""
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        """Update with one batch and return the running result (as Keras' ``Metric.__call__``)."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class Mean(Metric):
    """The weighted mean of the values passed to ``update_state(values, sample_weight)``."""

    def __init__(self, name: str = "mean", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self) -> None:
        self._total = 0.0
        self._count = 0.0

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        if (
            isinstance(values, torch.Tensor)
            and values.ndim == 0
            and isinstance(sample_weight, (int, float))
            and values.is_floating_point()
        ):  # a batch's loss weighted by its size: the trainer's loss tracker, every step
            values = values.detach() if values.requires_grad else values
            total = self._total
            if isinstance(total, torch.Tensor):  # total + weight * value in one op
                self._total = torch.add(total, values, alpha=sample_weight)
            elif total == 0:  # the first update since a reset: no addition op
                self._total = values * sample_weight
            else:
                self._total = total + values * sample_weight
            self._count = self._count + sample_weight
            return
        values = _as_tensor(values).detach()
        if not values.is_floating_point():
            values = values.to(torch.float32)
        if sample_weight is not None:
            weight = _as_tensor(sample_weight, values.dtype, values.device).detach()
            values, weight = squeeze_or_expand_to_same_rank(values, weight)
            if values.ndim > weight.ndim:  # average the axes the weight does not cover
                values = values.mean(dim=tuple(range(weight.ndim, values.ndim)))
            weight = torch.broadcast_to(weight, values.shape)
            values = values * weight
            if weight.ndim > 1:
                weight = weight.mean(dim=tuple(range(1, weight.ndim)))
            count = weight.sum()
        else:
            count = values.shape[0] if values.ndim >= 1 else 1
        if values.ndim > 1:
            values = values.mean(dim=tuple(range(1, values.ndim)))
        self._total = self._total + values.sum()
        self._count = self._count + count

    def result(self) -> float:
        total = float(self._total.item() if isinstance(self._total, torch.Tensor) else self._total)
        count = float(self._count.item() if isinstance(self._count, torch.Tensor) else self._count)
        return total / count if count else 0.0

    def result_tensor(self) -> torch.Tensor:
        """``total / count`` (0 while nothing was counted) on the device of the state."""
        if type(self).result is not Mean.result:  # a subclass's own result(): ask it
            return torch.as_tensor(self.result(), dtype=torch.float32)
        return self._mean_tensor()

    def result_parts(self) -> tuple[torch.Tensor, float | None]:
        count = self._count
        if (
            type(self).result is Mean.result
            and isinstance(self._total, torch.Tensor)
            and self._total.ndim == 0
            and isinstance(count, (int, float))
        ):  # the total, divided by the host count once read back
            return self._total, float(count)
        return self.result_tensor(), None

    def _mean_tensor(self) -> torch.Tensor:
        if not isinstance(self._total, torch.Tensor):
            return torch.as_tensor(self.result(), dtype=torch.float32)
        count = self._count
        if not isinstance(count, torch.Tensor):
            return self._total / count if count else torch.zeros_like(self._total)
        return torch.where(count != 0, self._total / count, 0.0)

    def state_tensors(self) -> list[Any]:
        return [self._total, self._count]

    def set_state_tensors(self, values: list[Any]) -> None:
        self._total, self._count = values


class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred, **kwargs)`` (per-sample values) over all samples seen."""

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        name: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        mask = getattr(y_pred, "_keras_mask", None)
        batch_sum = _batch_sum_of(self._fn)
        if mask is None and sample_weight is None and batch_sum is not None:
            counted = batch_sum(y_true, y_pred, **self._fn_kwargs)  # records no graph
            if counted is not None:  # the sum of the batch's values, and their number
                total = self._total
                # the first update since a reset takes the sum as it is (no addition op)
                is_zero = not isinstance(total, torch.Tensor) and total == 0
                self._total = counted[0] if is_zero else total + counted[0]
                self._count = self._count + counted[1]
                return
        with torch.no_grad():
            values = self._fn(y_true, y_pred, **self._fn_kwargs)
        if mask is not None:
            mask = _as_tensor(mask, values.dtype, values.device)
            mask, _ = squeeze_or_expand_to_same_rank(mask, values)
            if sample_weight is not None:
                weight = _as_tensor(sample_weight, values.dtype, values.device)
                while weight.ndim < mask.ndim:
                    weight = weight.unsqueeze(-1)
                mask = mask * weight
            sample_weight = mask
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self._fn_kwargs}


# ------------------------------------------------------------------------ value functions
def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor:
    """1.0 where ``(y_pred > threshold) == y_true``, elementwise."""
    y_pred = _as_tensor(y_pred)
    y_true = _as_tensor(y_true, device=y_pred.device)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    predicted = (y_pred > threshold).to(y_true.dtype)
    return (predicted == y_true).to(torch.float32)


def categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where ``argmax(y_true) == argmax(y_pred)`` (one-hot targets)."""
    y_true = torch.argmax(_as_tensor(y_true), dim=-1)
    return sparse_categorical_accuracy(y_true, y_pred)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where ``y_true == argmax(y_pred)`` (integer targets)."""
    y_pred = _as_tensor(y_pred)
    y_true = _as_tensor(y_true, device=y_pred.device)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    predicted = torch.argmax(y_pred, dim=-1)
    return (predicted == y_true.to(predicted.dtype)).to(torch.float32)


def _sparse_categorical_accuracy_sum(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, int] | None:
    """``(number of rows where y_true == argmax(y_pred), rows)`` for ``y_pred`` of shape
    ``(batch, classes)`` and int64 targets ``(batch,)`` or ``(batch, 1)`` on its device: the
    sum :func:`sparse_categorical_accuracy`'s values would give, in three ops instead of five.
    None for any other call."""
    if not (
        isinstance(y_true, torch.Tensor)
        and isinstance(y_pred, torch.Tensor)
        and y_pred.ndim == 2
        and y_true.dtype == torch.int64
        and y_true.device == y_pred.device
    ):
        return None
    rows = y_pred.shape[0]
    if y_true.shape not in ((rows,), (rows, 1)):
        return None
    if y_true.ndim == 2:
        y_true = y_true.squeeze(-1)
    return (torch.argmax(y_pred, dim=-1) == y_true).sum(), rows


# The value functions whose batch sum has a shorter form (MeanMetricWrapper, unweighted and
# unmasked): (fn, fn_sum) with fn_sum(y_true, y_pred, **kwargs) giving (sum, number of values)
# or None. Found by identity, as losses' _BATCH_MEANS: a user's callable need not be hashable.
# A fn_sum's ops are not differentiable (argmax, comparisons, integer sums), so autograd
# records nothing for them: it runs without ``torch.no_grad()`` (whose context costs more
# Python than the sum).
_BATCH_SUMS: tuple[tuple[Callable[..., torch.Tensor], Callable[..., Any]], ...] = (
    (sparse_categorical_accuracy, _sparse_categorical_accuracy_sum),
)


def _batch_sum_of(fn: Any) -> Callable[..., Any] | None:
    for f, batch_sum in _BATCH_SUMS:
        if f is fn:
            return batch_sum
    return None


# ---------------------------------------------------------------------------------- classes
class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` equals the 0/1 target."""

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of ``y_pred`` equals the argmax of the one-hot target."""

    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of ``y_pred`` equals the integer target."""

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


def accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where ``y_pred == y_true`` exactly, elementwise (Keras' ``Accuracy``: for labels
    already decided, e.g. ``argmax`` outputs; compile's ``"accuracy"`` picks by shapes)."""
    y_pred = _as_tensor(y_pred)
    y_true = _as_tensor(y_true, device=y_pred.device)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true.to(y_pred.dtype) == y_pred).to(torch.float32)


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels exactly (``metrics.get("accuracy")``, as Keras)."""

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(accuracy, name=name, dtype=dtype)


class MeanSquaredError(MeanMetricWrapper):
    """The mean of ``mean((y_true - y_pred) ** 2, axis=-1)`` over samples."""

    def __init__(self, name: str = "mean_squared_error", dtype: Any = None):
        super().__init__(losses_module.mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """The mean of ``mean(|y_true - y_pred|, axis=-1)`` over samples."""

    def __init__(self, name: str = "mean_absolute_error", dtype: Any = None):
        super().__init__(losses_module.mean_absolute_error, name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """``sqrt(mean((y_true - y_pred) ** 2))`` over all elements seen."""

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true, y_pred = losses_module._prepare(y_true, y_pred, self.name)
        super().update_state(torch.square(y_true - y_pred), sample_weight=sample_weight)

    def result(self) -> float:
        return super().result() ** 0.5

    def result_tensor(self) -> torch.Tensor:
        return self._mean_tensor().sqrt()


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    def __init__(
        self, name: str = "sparse_categorical_crossentropy", dtype: Any = None, **kwargs: Any
    ):
        super().__init__(
            losses_module.sparse_categorical_crossentropy, name=name, dtype=dtype, **kwargs
        )


class CategoricalCrossentropy(MeanMetricWrapper):
    def __init__(self, name: str = "categorical_crossentropy", dtype: Any = None, **kwargs: Any):
        super().__init__(losses_module.categorical_crossentropy, name=name, dtype=dtype, **kwargs)


class BinaryCrossentropy(MeanMetricWrapper):
    def __init__(self, name: str = "binary_crossentropy", dtype: Any = None, **kwargs: Any):
        super().__init__(losses_module.binary_crossentropy, name=name, dtype=dtype, **kwargs)


_BY_NAME: dict[str, Callable[[], Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "rmse": RootMeanSquaredError,
    "root_mean_squared_error": RootMeanSquaredError,
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_CLASSES = {
    cls.__name__: cls
    for cls in (
        Mean,
        Accuracy,
        MeanAbsoluteError,
        MeanSquaredError,
        RootMeanSquaredError,
        BinaryAccuracy,
        CategoricalAccuracy,
        SparseCategoricalAccuracy,
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
    )
}


def get(identifier: Any) -> Metric:
    """A metric from a name (``"mae"``, ``"mse"``, ``"binary_accuracy"``, a class name), a
    :class:`Metric`, or a function ``fn(y_true, y_pred) -> per-sample values`` (wrapped in
    :class:`MeanMetricWrapper`). ``"accuracy"`` is Keras' exact-match :class:`Accuracy`;
    ``compile`` instead picks binary/categorical/sparse accuracy by shapes
    (:func:`get_metric`)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            return _BY_NAME[identifier]()
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        valid = [*sorted(_BY_NAME), *sorted(_CLASSES)]
        raise ValueError(f"metrics: unknown metric {identifier!r}. Valid names: {', '.join(valid)}")
    if all(hasattr(identifier, a) for a in ("update_state", "result", "reset_state")):
        return identifier
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(
        f"metrics: expected a metric name, Metric object or callable, received {identifier!r} "
        f"of type {type(identifier).__name__}"
    )


def get_metric(identifier: Any, y_true: torch.Tensor, y_pred: torch.Tensor) -> Any:
    """Resolve ``identifier`` for one output, ``"accuracy"``/``"acc"`` by the shapes of
    ``y_true`` and ``y_pred`` (Keras 3). String identifiers name the metric in the logs."""
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
        if pred_shape[-1:] == (1,):
            metric: Any = BinaryAccuracy(name=identifier)
        elif len(true_shape) < len(pred_shape) or (
            true_shape[-1:] == (1,) and pred_shape[-1:] != (1,)
        ):
            metric = SparseCategoricalAccuracy(name=identifier)
        else:
            metric = CategoricalAccuracy(name=identifier)
        return metric
    metric = get(identifier)
    if isinstance(identifier, str):
        metric.name = identifier
    return metric


def clone_metric(metric: Any) -> Any:
    """A fresh copy of a metric object (for applying one metric list to several outputs)."""
    fresh = copy.deepcopy(metric)
    fresh.reset_state()
    return fresh
