"""Training: ``Trainer`` (compile/fit/evaluate/predict), losses, metrics, optimizers,
callbacks.

The public modules are :mod:`rnnkit.losses`, :mod:`rnnkit.metrics`, :mod:`rnnkit.optimizers`
and :mod:`rnnkit.callbacks` (``from rnnkit.callbacks import EarlyStopping``); they re-export
what lives here.
"""

from rnnkit.training import callbacks as callbacks
from rnnkit.training import losses as losses
from rnnkit.training import metrics as metrics
from rnnkit.training import optimizers as optimizers
from rnnkit.training.trainer import Trainer as Trainer
