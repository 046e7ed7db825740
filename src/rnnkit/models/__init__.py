"""Models: the functional ``Model``, subclassed models, ``Sequential`` and ``summary``."""

from rnnkit.layers.input_layer import Input as Input
from rnnkit.layers.input_layer import InputLayer as InputLayer
from rnnkit.models.model import Model as Model
from rnnkit.models.sequential import Sequential as Sequential
from rnnkit.saving.model_file import load_model as load_model
