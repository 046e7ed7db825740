"""Saving and loading: registration of custom classes (model files come with the saving issue)."""

from rnnkit.saving.serialization import get_registered_name as get_registered_name
from rnnkit.saving.serialization import get_registered_object as get_registered_object
from rnnkit.saving.serialization import register_keras_serializable as register_keras_serializable
from rnnkit.saving.serialization import register_serializable as register_serializable
from rnnkit.saving.serialization import serialize_keras_object as serialize_keras_object
