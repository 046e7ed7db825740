"""The registry of custom classes and built-in model classes, as the saving code names it.

The registry itself is :mod:`rnnkit.registry` (a leaf module: the layers reach it without
importing the saving package); this module gives the same objects under their old path.
"""

from rnnkit.registry import builtin_model as builtin_model
from rnnkit.registry import builtin_model_name as builtin_model_name
from rnnkit.registry import get_registered_name as get_registered_name
from rnnkit.registry import get_registered_object as get_registered_object
from rnnkit.registry import is_model as is_model
from rnnkit.registry import is_model_class as is_model_class
from rnnkit.registry import register_builtin_model as register_builtin_model
from rnnkit.registry import register_keras_serializable as register_keras_serializable
from rnnkit.registry import register_serializable as register_serializable
from rnnkit.registry import serialize_keras_object as serialize_keras_object
