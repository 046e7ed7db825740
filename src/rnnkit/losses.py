"""Losses with Keras 3 semantics (Keras' ``keras.losses``).

The public surface only: the losses live in :mod:`rnnkit.training.losses`, where ``compile``
reads them. Each class computes the per-sample loss and reduces it (``"sum_over_batch_size"``
by default); the functions return per-sample values.

>>> import torch
>>> from rnnkit.losses import MeanSquaredError
>>> float(MeanSquaredError()(torch.zeros(2, 3), torch.ones(2, 3)))
1.0
"""

from rnnkit.training.losses import EPSILON as EPSILON
from rnnkit.training.losses import MAE as MAE
from rnnkit.training.losses import MSE as MSE
from rnnkit.training.losses import BinaryCrossentropy as BinaryCrossentropy
from rnnkit.training.losses import CategoricalCrossentropy as CategoricalCrossentropy
from rnnkit.training.losses import Huber as Huber
from rnnkit.training.losses import Loss as Loss
from rnnkit.training.losses import LossFunctionWrapper as LossFunctionWrapper
from rnnkit.training.losses import MeanAbsoluteError as MeanAbsoluteError
from rnnkit.training.losses import MeanSquaredError as MeanSquaredError
from rnnkit.training.losses import SparseCategoricalCrossentropy as SparseCategoricalCrossentropy
from rnnkit.training.losses import binary_crossentropy as binary_crossentropy
from rnnkit.training.losses import categorical_crossentropy as categorical_crossentropy
from rnnkit.training.losses import get as get
from rnnkit.training.losses import huber as huber
from rnnkit.training.losses import mae as mae
from rnnkit.training.losses import mean_absolute_error as mean_absolute_error
from rnnkit.training.losses import mean_squared_error as mean_squared_error
from rnnkit.training.losses import mse as mse
from rnnkit.training.losses import reduce_weighted_values as reduce_weighted_values
from rnnkit.training.losses import (
    sparse_categorical_crossentropy as sparse_categorical_crossentropy,
)
from rnnkit.training.losses import squeeze_or_expand_to_same_rank as squeeze_or_expand_to_same_rank
