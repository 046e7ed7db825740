"""Training: ``Trainer`` (compile/fit/evaluate/predict), losses, metrics, optimizers,
callbacks.

The losses, metrics and optimizers modules are also importable as ``rnnkit.losses``,
``rnnkit.metrics`` and ``rnnkit.optimizers``; the callbacks' public module is the real module
:mod:`rnnkit.callbacks` (``from rnnkit.callbacks import EarlyStopping``).
"""

import sys

from rnnkit.training import callbacks as callbacks
from rnnkit.training import losses as losses
from rnnkit.training import metrics as metrics
from rnnkit.training import optimizers as optimizers
from rnnkit.training.trainer import Trainer as Trainer

for _module in (losses, metrics, optimizers):
    sys.modules.setdefault("rnnkit." + _module.__name__.rsplit(".", 1)[1], _module)
