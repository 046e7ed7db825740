"""Callbacks for ``fit``/``evaluate``/``predict`` (Keras' ``keras.callbacks``).

The public surface only: the callbacks live in :mod:`rnnkit.training.callbacks` and, with its
backup file, :mod:`rnnkit.training.backup`.

>>> from rnnkit.callbacks import EarlyStopping
>>> EarlyStopping(monitor="val_loss", patience=2).patience
2
"""

from rnnkit.training.backup import BackupAndRestore as BackupAndRestore
from rnnkit.training.callbacks import Callback as Callback
from rnnkit.training.callbacks import CallbackList as CallbackList
from rnnkit.training.callbacks import CSVLogger as CSVLogger
from rnnkit.training.callbacks import EarlyStopping as EarlyStopping
from rnnkit.training.callbacks import History as History
from rnnkit.training.callbacks import LambdaCallback as LambdaCallback
from rnnkit.training.callbacks import ModelCheckpoint as ModelCheckpoint
from rnnkit.training.callbacks import ProgbarLogger as ProgbarLogger
from rnnkit.training.callbacks import ReduceLROnPlateau as ReduceLROnPlateau
from rnnkit.training.callbacks import TerminateOnNaN as TerminateOnNaN
