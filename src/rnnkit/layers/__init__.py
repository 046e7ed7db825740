"""Keras-style layers."""

from rnnkit.layers.base import Layer as Layer
from rnnkit.layers.input_layer import Input as Input
from rnnkit.layers.input_layer import InputLayer as InputLayer
from rnnkit.layers.serialization import deserialize as deserialize
from rnnkit.layers.serialization import serialize as serialize
