"""Saving and loading: model files (.keras), weight files, Keras 3 import and export, custom
classes."""

from rnnkit.saving.keras_export import export_keras as export_keras
from rnnkit.saving.limits import DEFAULT_LIMITS as DEFAULT_LIMITS
from rnnkit.saving.limits import LoadLimits as LoadLimits
from rnnkit.saving.model_file import load_model as load_model
from rnnkit.saving.model_file import save_model as save_model
from rnnkit.saving.serialization import get_registered_name as get_registered_name
from rnnkit.saving.serialization import get_registered_object as get_registered_object
from rnnkit.saving.serialization import register_keras_serializable as register_keras_serializable
from rnnkit.saving.serialization import register_serializable as register_serializable
from rnnkit.saving.serialization import serialize_keras_object as serialize_keras_object
from rnnkit.saving.weights_file import load_weights as load_weights
from rnnkit.saving.weights_file import save_weights as save_weights
