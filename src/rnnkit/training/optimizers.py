"""Keras-named optimizers over ``torch.optim`` (``rnnkit.optimizers``).

Each optimizer takes Keras' argument names and defaults and is created without parameters,
as in Keras; ``compile``/``fit`` calls :meth:`Optimizer.build` with the model's trainable
weights, which creates the underlying ``torch.optim`` optimizer (``optimizer.torch_optimizer``).
``step()`` first applies the gradient clipping options:

- ``clipvalue``: every gradient element clipped to ``[-clipvalue, clipvalue]``;
- ``clipnorm``: every weight's gradient rescaled to norm at most ``clipnorm``;
- ``global_clipnorm``: all gradients rescaled so that their joint norm is at most that.

Update rules are torch's. They equal Keras' for SGD (with momentum and Nesterov, at a constant
learning rate). Elsewhere ``epsilon`` sits in a different place: for Adam/AdamW torch adds it
to the bias-corrected ``sqrt(v)`` where Keras adds it before the bias correction (a difference
of order ``epsilon``, 1e-7, in the denominator); for RMSprop and Adagrad torch divides by
``sqrt(v) + epsilon`` where Keras divides by ``sqrt(v + epsilon)``, which differs noticeably
while ``v`` is no larger than ``epsilon`` (the first steps with small gradients): from the same
weights, RMSprop training drifts from Keras' by about 1e-2 within ten steps.

Any ``torch.optim.Optimizer`` instance is also accepted by ``compile``.

>>> opt = Adam(learning_rate=1e-3)
>>> opt.learning_rate
0.001
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class Optimizer:
    """Base class of the Keras-named optimizers (see the module docstring).

    Args:
        learning_rate: the step size.
        weight_decay: decoupled weight decay, ``w -= learning_rate * weight_decay * w`` before
            each update (Keras' rule, for every optimizer).
        clipnorm / clipvalue / global_clipnorm: gradient clipping, applied in :meth:`step`.
        name: the optimizer's name.
    """

    _torch_class: type[torch.optim.Optimizer] = torch.optim.SGD

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}"
            )
        if not isinstance(learning_rate, (int, float)) or learning_rate < 0:
            raise ValueError(
                f"{type(self).__name__}: learning_rate must be a non-negative number, "
                f"received {learning_rate!r}"
            )
        given = [n for n, v in (("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm)) if v]
        if len(given) > 1:
            raise ValueError(
                f"{type(self).__name__}: pass at most one of clipnorm and global_clipnorm, "
                f"received both"
            )
        for arg, value in (
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{type(self).__name__}: {arg} must be > 0, received {value}")
        self._learning_rate = float(learning_rate)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.torch_optimizer: torch.optim.Optimizer | None = None
        self.iterations = 0

    # ---------------------------------------------------------------- torch plumbing
    def _torch_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def built(self) -> bool:
        return self.torch_optimizer is not None

    def build(self, variables: Iterable[torch.nn.Parameter]) -> None:
        """Create the ``torch.optim`` optimizer over ``variables``."""
        variables = [v for v in variables if v.requires_grad]
        if not variables:
            raise ValueError(
                f"{type(self).__name__}: the model has no trainable weights to optimize"
            )
        self.torch_optimizer = self._torch_class(
            variables, lr=self._learning_rate, **self._torch_kwargs()
        )
        self._placement = self._param_placement()

    def _param_placement(self) -> list[tuple[torch.device, torch.dtype]]:
        return [(p.device, p.dtype) for p in self._params()]

    def _follow_params(self) -> None:
        """After ``model.to(device or dtype)`` (say a loaded model moved to the GPU), move the
        state tensors (moments, accumulators) to their weights' device and dtype, with torch's
        own rules (``load_state_dict``), before the next update."""
        placement = self._param_placement()
        if placement != self._placement:
            if self.torch_optimizer.state:
                self.torch_optimizer.load_state_dict(self.torch_optimizer.state_dict())
            self._placement = placement

    @property
    def learning_rate(self) -> float:
        if self.torch_optimizer is not None:
            return float(self.torch_optimizer.param_groups[0]["lr"])
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(value)
        if self.torch_optimizer is not None:
            for group in self.torch_optimizer.param_groups:
                group["lr"] = float(value)

    lr = learning_rate

    def _params(self) -> list[torch.Tensor]:
        if self.torch_optimizer is None:
            return []
        return [p for g in self.torch_optimizer.param_groups for p in g["params"]]

    def clip_gradients(self) -> None:
        grads = [p.grad for p in self._params() if p.grad is not None]
        if self.clipnorm:
            for g in grads:
                norm = torch.linalg.vector_norm(g)
                g.mul_(torch.clamp(self.clipnorm / torch.clamp(norm, min=1e-12), max=1.0))
        if self.global_clipnorm:
            torch.nn.utils.clip_grad_norm_(self._params(), self.global_clipnorm)
        if self.clipvalue:
            for g in grads:
                g.clamp_(-self.clipvalue, self.clipvalue)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.torch_optimizer is not None:
            self.torch_optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """Clip the gradients, then apply one update."""
        if self.torch_optimizer is None:
            raise ValueError(f"{type(self).__name__}: call build(variables) before step()")
        self._follow_params()
        self.clip_gradients()
        if self.weight_decay and not isinstance(self, AdamW):
            # Keras' decoupled decay for every optimizer: w -= learning_rate * weight_decay * w
            with torch.no_grad():
                for p in self._params():
                    if p.grad is not None:
                        p.mul_(1.0 - self.learning_rate * self.weight_decay)
        self.torch_optimizer.step()
        self.iterations += 1

    def state_dict(self) -> dict[str, Any]:
        if self.torch_optimizer is None:
            return {}
        return self.torch_optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.torch_optimizer is None:
            raise ValueError(f"{type(self).__name__}: build the optimizer before loading state")
        self.torch_optimizer.load_state_dict(state)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "learning_rate": self._learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    ``v = momentum * v - learning_rate * g; w = w + v`` (Nesterov:
    ``w = w + momentum * v - learning_rate * g``).
    """

    _torch_class = torch.optim.SGD

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False, **kw: Any
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1], received {momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {
            "momentum": self.momentum,
            "nesterov": self.nesterov,
        }

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
    ``w -= lr * m_hat / (sqrt(v_hat) + epsilon)``."""

    _torch_class = torch.optim.Adam

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {
            "betas": (self.beta_1, self.beta_2),
            "eps": self.epsilon,
            "amsgrad": self.amsgrad,
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w -= lr * weight_decay * w`` before each update."""

    _torch_class = torch.optim.AdamW

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kw: Any):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kw)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {**super()._torch_kwargs(), "weight_decay": self.weight_decay or 0.0}


class RMSprop(Optimizer):
    """RMSprop: ``v = rho v + (1 - rho) g**2``, ``w -= lr * g / (sqrt(v) + epsilon)`` (torch's
    rule; Keras uses ``sqrt(v + epsilon)``, see the module docstring)."""

    _torch_class = torch.optim.RMSprop

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon, self.centered = float(epsilon), bool(centered)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {
            "alpha": self.rho,
            "momentum": self.momentum,
            "eps": self.epsilon,
            "centered": self.centered,
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class Adagrad(Optimizer):
    """Adagrad: ``a += g**2``, ``w -= lr * g / (sqrt(a) + epsilon)`` (torch's rule; Keras uses
    ``sqrt(a + epsilon)``, see the module docstring)."""

    _torch_class = torch.optim.Adagrad

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kw: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.epsilon,
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


_BY_NAME: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier: Any) -> Optimizer | torch.optim.Optimizer:
    """An optimizer from a name (``"sgd"``, ``"adam"``, ``"rmsprop"``, ``"adagrad"``,
    ``"adamw"``, or a class name), a config dict, an :class:`Optimizer`, or a
    ``torch.optim.Optimizer`` (returned as is)."""
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
