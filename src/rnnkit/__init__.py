"""rnnkit: the Keras RNN API on PyTorch."""

from rnnkit import activations as activations
from rnnkit import callbacks as callbacks
from rnnkit import constraints as constraints
from rnnkit import datasets as datasets
from rnnkit import distributed as distributed
from rnnkit import initializers as initializers
from rnnkit import layers as layers
from rnnkit import losses as losses
from rnnkit import metrics as metrics
from rnnkit import mixed_precision as mixed_precision
from rnnkit import models as models
from rnnkit import ops as ops
from rnnkit import optimizers as optimizers
from rnnkit import preprocessing as preprocessing
from rnnkit import random as random
from rnnkit import regularizers as regularizers
from rnnkit import saving as saving
from rnnkit import tree as tree
from rnnkit import utils as utils
from rnnkit._version import __version__ as __version__
from rnnkit.layers import Input as Input
from rnnkit.layers import Layer as Layer
from rnnkit.layers.base import clear_session as clear_session
from rnnkit.models import Model as Model
from rnnkit.models import Sequential as Sequential
