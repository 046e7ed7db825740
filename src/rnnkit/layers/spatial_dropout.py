"""``SpatialDropout1D``: dropout of whole feature channels of a sequence."""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.layers.core import Dropout
from rnnkit.layers.shapes import check_input_shape


class SpatialDropout1D(Dropout):
    """Drops whole feature maps: in training, each feature ``c`` of each sample is either
    zeroed at every time step or kept and scaled by ``1 / (1 - rate)``, i.e. ``Dropout`` with
    the noise shape ``(B, 1, F)`` for inputs ``(B, T, F)``. The identity in inference.

    Neighbouring steps of a feature are strongly correlated (after a convolution, say), so
    dropping single values would barely regularize; dropping the channel does.

    Args:
        rate: the fraction of channels to drop, in ``[0, 1)``.
        seed: an int for reproducible patterns, or None.

    Masks pass through.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(rate, seed=seed, **kwargs)

    def _noise_shape(self, inputs: torch.Tensor) -> tuple[int, ...]:
        check_input_shape(self, inputs.shape, rank=3, legend="(batch, steps, features)")
        return (inputs.shape[0], 1, inputs.shape[2])

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        check_input_shape(self, inputs.shape, rank=3, legend="(batch, steps, features)")
        return super().call(inputs, training=training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["noise_shape"]
        return config
