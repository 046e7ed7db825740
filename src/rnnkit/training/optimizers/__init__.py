"""Keras-named optimizers over ``torch.optim`` (``rnnkit.optimizers``).

Each optimizer (:mod:`.keras_named`) takes Keras' argument names and defaults and is created
without weights, as in Keras; its maths is a ``torch.optim.Optimizer`` subclass
(:mod:`.rules`) that applies Keras 3's update, so that training from the same weights and
batches stays within float rounding of Keras. Any ``torch.optim.Optimizer`` instance is also
accepted by ``compile``.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.training.optimizers import rules as rules
from rnnkit.training.optimizers.keras_named import SGD as SGD
from rnnkit.training.optimizers.keras_named import Adadelta as Adadelta
from rnnkit.training.optimizers.keras_named import Adagrad as Adagrad
from rnnkit.training.optimizers.keras_named import Adam as Adam
from rnnkit.training.optimizers.keras_named import Adamax as Adamax
from rnnkit.training.optimizers.keras_named import AdamW as AdamW
from rnnkit.training.optimizers.keras_named import Lion as Lion
from rnnkit.training.optimizers.keras_named import Nadam as Nadam
from rnnkit.training.optimizers.keras_named import Optimizer as Optimizer
from rnnkit.training.optimizers.keras_named import RMSprop as RMSprop

_BY_NAME: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "adamax": Adamax,
    "nadam": Nadam,
    "lion": Lion,
}
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier: Any) -> Optimizer | torch.optim.Optimizer:
    """An optimizer from a name (``"sgd"``, ``"adam"``, ``"rmsprop"``, ... or a class name),
    a config dict, an :class:`Optimizer`, or a ``torch.optim.Optimizer`` (returned as is)."""
    if isinstance(identifier, (Optimizer, torch.optim.Optimizer)):
        return identifier
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        if name not in _CLASSES:
            raise ValueError(
                f"optimizer: unknown optimizer class {name!r}; valid: {sorted(_CLASSES)}"
            )
        return _CLASSES[name].from_config(dict(identifier.get("config") or {}))
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(
                f"optimizer: unknown optimizer {identifier!r}. Valid names: "
                f"{', '.join(sorted(_BY_NAME))}"
            )
        return cls()
    raise TypeError(
        f"optimizer: expected an optimizer name, an rnnkit Optimizer or a torch.optim.Optimizer, "
        f"received {identifier!r} of type {type(identifier).__name__}"
    )


def get_learning_rate(optimizer: Any) -> float:
    """The learning rate of an rnnkit or torch optimizer (its first parameter group's)."""
    if isinstance(optimizer, Optimizer):
        return optimizer.learning_rate
    return float(optimizer.param_groups[0]["lr"])


def set_learning_rate(optimizer: Any, value: float) -> None:
    """Set the learning rate of an rnnkit or torch optimizer (every parameter group)."""
    if isinstance(optimizer, Optimizer):
        optimizer.learning_rate = value
        return
    for group in optimizer.param_groups:
        group["lr"] = float(value)
