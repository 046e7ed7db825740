"""Metrics with Keras 3 semantics (Keras' ``keras.metrics``).

The public surface only: the metrics live in :mod:`rnnkit.training.metrics`, where ``compile``
and ``fit`` read them. A metric accumulates over batches (``update_state``) and reports
``result()`` until ``reset_state()``.

>>> import torch
>>> from rnnkit.metrics import MeanAbsoluteError
>>> metric = MeanAbsoluteError()
>>> metric.update_state(torch.zeros(2, 3), torch.ones(2, 3))
>>> float(metric.result())
1.0
"""

from rnnkit.training.metrics import Accuracy as Accuracy
from rnnkit.training.metrics import BinaryAccuracy as BinaryAccuracy
from rnnkit.training.metrics import BinaryCrossentropy as BinaryCrossentropy
from rnnkit.training.metrics import CategoricalAccuracy as CategoricalAccuracy
from rnnkit.training.metrics import CategoricalCrossentropy as CategoricalCrossentropy
from rnnkit.training.metrics import Mean as Mean
from rnnkit.training.metrics import MeanAbsoluteError as MeanAbsoluteError
from rnnkit.training.metrics import MeanMetricWrapper as MeanMetricWrapper
from rnnkit.training.metrics import MeanSquaredError as MeanSquaredError
from rnnkit.training.metrics import Metric as Metric
from rnnkit.training.metrics import RootMeanSquaredError as RootMeanSquaredError
from rnnkit.training.metrics import SparseCategoricalAccuracy as SparseCategoricalAccuracy
from rnnkit.training.metrics import SparseCategoricalCrossentropy as SparseCategoricalCrossentropy
from rnnkit.training.metrics import accuracy as accuracy
from rnnkit.training.metrics import binary_accuracy as binary_accuracy
from rnnkit.training.metrics import categorical_accuracy as categorical_accuracy
from rnnkit.training.metrics import clone_metric as clone_metric
from rnnkit.training.metrics import get as get
from rnnkit.training.metrics import get_metric as get_metric
from rnnkit.training.metrics import sparse_categorical_accuracy as sparse_categorical_accuracy
