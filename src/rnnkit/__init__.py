"""rnnkit: the Keras RNN API on PyTorch."""

from rnnkit import activations as activations
from rnnkit import constraints as constraints
from rnnkit import initializers as initializers
from rnnkit import layers as layers
from rnnkit import regularizers as regularizers
from rnnkit import saving as saving
from rnnkit import tree as tree
from rnnkit.layers import Input as Input
from rnnkit.layers.base import clear_session as clear_session

__version__ = "0.1.0"
