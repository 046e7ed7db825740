"""Keras-named optimizers over ``torch.optim`` (Keras' ``keras.optimizers``).

The public surface only: the optimizers live in :mod:`rnnkit.training.optimizers` (Keras'
argument names and defaults in ``keras_named``, the update rules as ``torch.optim.Optimizer``
subclasses in ``rules``, usable in a plain PyTorch loop too).

>>> from rnnkit.optimizers import Adam
>>> Adam(learning_rate=0.01).learning_rate
0.01
"""

from rnnkit.training.optimizers import SGD as SGD
from rnnkit.training.optimizers import Adadelta as Adadelta
from rnnkit.training.optimizers import Adagrad as Adagrad
from rnnkit.training.optimizers import Adam as Adam
from rnnkit.training.optimizers import Adamax as Adamax
from rnnkit.training.optimizers import AdamW as AdamW
from rnnkit.training.optimizers import Lion as Lion
from rnnkit.training.optimizers import Nadam as Nadam
from rnnkit.training.optimizers import Optimizer as Optimizer
from rnnkit.training.optimizers import RMSprop as RMSprop
from rnnkit.training.optimizers import get as get
from rnnkit.training.optimizers import get_learning_rate as get_learning_rate
from rnnkit.training.optimizers import keras_named as keras_named
from rnnkit.training.optimizers import rules as rules
from rnnkit.training.optimizers import set_learning_rate as set_learning_rate
