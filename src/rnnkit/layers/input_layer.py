"""``Input`` and ``InputLayer``: the entry points of a functional model."""

from __future__ import annotations

from typing import Any

from rnnkit.layers.base import Layer, standardize_dtype
from rnnkit.symbolic import KerasTensor, Node


class InputLayer(Layer):
    """Holds the symbolic tensor that a functional model starts from.

    Args:
        shape: the shape of one sample, without the batch axis; ``None`` for unknown sizes.
        batch_size: a fixed batch size (needed by stateful RNNs), or None.
        batch_shape: the full shape including the batch axis (instead of shape/batch_size).
    """

    def __init__(
        self,
        shape: tuple[int | None, ...] | None = None,
        batch_size: int | None = None,
        dtype: Any = None,
        batch_shape: tuple[int | None, ...] | None = None,
        name: str | None = None,
        sparse: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        super().__init__(name=name, dtype=dtype, **kwargs)
        if sparse:
            raise ValueError("InputLayer: sparse inputs are not supported by rnnkit")
        if shape is not None and batch_shape is not None:
            raise ValueError("InputLayer: pass shape or batch_shape, not both")
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer: shape (or batch_shape) is required")
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size, *tuple(shape))
        for d in batch_shape:
            if d is not None and (not isinstance(d, int) or d < 0):
                raise ValueError(
                    f"InputLayer: shape sizes must be non-negative ints or None, "
                    f"received {tuple(batch_shape)}"
                )
        self.batch_shape = tuple(batch_shape)
        self.built = True
        output = KerasTensor(self.batch_shape, standardize_dtype(dtype), name=self.name)
        node = Node(self, (), {}, output)
        self._inbound_nodes.append(node)
        output._keras_history = (self, 0, 0)
        self.output = output

    def get_config(self) -> dict[str, Any]:
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "name": self.name}


def Input(  # Keras' public name: a function named like a class
    shape: tuple[int | None, ...] | None = None,
    batch_size: int | None = None,
    dtype: Any = None,
    name: str | None = None,
    batch_shape: tuple[int | None, ...] | None = None,
    sparse: bool | None = None,
) -> KerasTensor:
    """A symbolic input of ``shape`` (per sample) to build a functional model with.

    >>> x = Input(shape=(None, 8))
    >>> x.shape
    (None, None, 8)
    """
    layer = InputLayer(
        shape=shape,
        batch_size=batch_size,
        dtype=dtype,
        batch_shape=batch_shape,
        name=name,
        sparse=sparse,
    )
    return layer.output
