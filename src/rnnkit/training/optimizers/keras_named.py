"""The Keras-named optimizers (``rnnkit.optimizers.Adam`` and the others).

As in Keras, an optimizer is created without weights, with Keras' argument names and
defaults; ``compile``/``fit`` calls :meth:`Optimizer.build` with the model's trainable
weights, which creates the ``torch.optim.Optimizer`` that does the maths
(``optimizer.torch_optimizer``, one of :mod:`rnnkit.training.optimizers.rules`). The update
rules are Keras 3's, step for step (``RMSprop`` and ``Adagrad`` divide by
``sqrt(v + epsilon)``, Adam adds ``epsilon`` to ``sqrt(v)`` before the bias correction is
applied to the step size), so training from the same weights and batches follows Keras.

Every optimizer takes Keras' common arguments: ``learning_rate``, ``weight_decay``, one of
``clipnorm`` / ``clipvalue`` / ``global_clipnorm``, and ``use_ema`` / ``ema_momentum`` /
``ema_overwrite_frequency`` (see :mod:`rules` for what each does).

>>> opt = Adam(learning_rate=1e-3)
>>> opt.learning_rate
0.001
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.optim.optimizer as torch_optimizer_module

from rnnkit.training.optimizers import rules


def _check_number(owner: str, arg: str, value: Any, low: float, high: float | None) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value >= low and (high is None or value <= high)
    if not ok:
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{owner}: {arg} must be a number {bounds}, received {value!r}")


def _unwrapped_step(optimizer: torch.optim.Optimizer) -> Any:
    """The optimizer's ``step`` without the wrapper ``torch.optim.Optimizer`` puts around it,
    when that wrapper would do nothing: no step hook (global or the optimizer's), no profiler
    recording its named range, and no ``step`` set on the instance (a torch LR scheduler wraps
    it there to see that it ran); None otherwise (then ``step`` is called as it is).

    The wrapper's profiler range and hook walks cost 40-100 us per step in a training step on
    the 2-core CPU (measured in context; about 6 us alone), as much as the update itself."""
    if (
        "step" in optimizer.__dict__
        or optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or torch_optimizer_module._global_optimizer_pre_hooks
        or torch_optimizer_module._global_optimizer_post_hooks
        or torch._C._autograd._profiler_enabled()
    ):
        return None
    return getattr(type(optimizer).step, "__wrapped__", None)


class Optimizer:
    """Base class of the Keras-named optimizers (see the module docstring).

    Args:
        learning_rate: the step size.
        weight_decay: decoupled weight decay, ``w *= 1 - learning_rate * weight_decay`` before
            each update (Keras' rule, for every optimizer).
        clipnorm / clipvalue / global_clipnorm: gradient clipping (at most one of them).
        use_ema: keep a moving average of the weights, with ``ema_momentum``; it replaces
            the weights every ``ema_overwrite_frequency`` steps and at the end of ``fit``.
        name: the optimizer's name.
    """

    _rule: type[rules.KerasRule] = rules.SGDRule
    _hyper: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        for unused in ("loss_scale_factor", "gradient_accumulation_steps"):
            if unused in kwargs and kwargs[unused] is None:  # Keras' defaults: accepted
                del kwargs[unused]
        if kwargs:
            raise TypeError(f"{owner}: unexpected keyword argument(s) {sorted(kwargs)}")
        _check_number(owner, "learning_rate", learning_rate, 0.0, None)
        given = [
            f"{n}={v}"
            for n, v in (
                ("clipnorm", clipnorm),
                ("clipvalue", clipvalue),
                ("global_clipnorm", global_clipnorm),
            )
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"{owner}: pass at most one of clipnorm, clipvalue and global_clipnorm, "
                f"received {', '.join(given)}"
            )
        for arg, value in (
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
        ):
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{owner}: {arg} must be > 0, received {value!r}")
        if weight_decay is not None:
            _check_number(owner, "weight_decay", weight_decay, 0.0, None)
        _check_number(owner, "ema_momentum", ema_momentum, 0.0, 1.0)
        if ema_overwrite_frequency is not None and (
            not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1
        ):
            raise ValueError(
                f"{owner}: ema_overwrite_frequency must be an integer >= 1 or None, "
                f"received {ema_overwrite_frequency!r}"
            )
        self._learning_rate = float(learning_rate)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = bool(use_ema)
        self.ema_momentum = float(ema_momentum)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.name = name or type(self).__name__.lower()
        self.torch_optimizer: rules.KerasRule | None = None
        self._iterations = 0
        self._placement: list[tuple[torch.device, torch.dtype]] = []

    # ---------------------------------------------------------------- torch plumbing
    @property
    def built(self) -> bool:
        return self.torch_optimizer is not None

    def build(self, variables: Iterable[torch.nn.Parameter]) -> None:
        """Create the update rule (a ``torch.optim.Optimizer``) over ``variables``."""
        variables = [v for v in variables if v.requires_grad]
        if not variables:
            raise ValueError(
                f"{type(self).__name__}: the model has no trainable weights to optimize"
            )
        self.torch_optimizer = self._rule(
            variables,
            lr=self._learning_rate,
            weight_decay=self.weight_decay,
            clipnorm=self.clipnorm,
            clipvalue=self.clipvalue,
            global_clipnorm=self.global_clipnorm,
            use_ema=self.use_ema,
            ema_momentum=self.ema_momentum,
            ema_overwrite_frequency=self.ema_overwrite_frequency,
            **{k: getattr(self, k) for k in self._hyper},
        )
        self.iterations = self._iterations
        self._placement = self._param_placement()

    def _param_placement(self) -> list[tuple[torch.device, torch.dtype]]:
        return [(p.device, p.dtype) for p in self._params()]

    def _follow_params(self) -> None:
        """After ``model.to(device or dtype)`` (say a loaded model moved to the GPU), move the
        state tensors (moments, accumulators) to their weights' device and dtype, with torch's
        own rules (``load_state_dict``), before the next update."""
        groups = self.torch_optimizer.param_groups  # the placement, in one comprehension
        placement = [(p.device, p.dtype) for g in groups for p in g["params"]]
        if placement != self._placement:
            if self.torch_optimizer.state:
                self.torch_optimizer.load_state_dict(self.torch_optimizer.state_dict())
            self._placement = placement

    @property
    def iterations(self) -> int:
        """The number of updates applied (Keras' ``optimizer.iterations``)."""
        if self.torch_optimizer is not None:
            return int(self.torch_optimizer.param_groups[0]["iterations"])
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        self._iterations = int(value)
        if self.torch_optimizer is not None:
            for group in self.torch_optimizer.param_groups:
                group["iterations"] = int(value)

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

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.torch_optimizer is not None:
            self.torch_optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, skip_if: torch.Tensor | None = None) -> None:
        """Apply one update with the weights' current gradients (clipping, weight decay, the
        rule, EMA: see :mod:`rnnkit.training.optimizers.rules`); none where ``skip_if`` holds
        1 (:meth:`~rnnkit.training.optimizers.rules.KerasRule.can_skip_on_device`)."""
        if self.torch_optimizer is None:
            raise ValueError(f"{type(self).__name__}: call build(variables) before step()")
        self._follow_params()
        optimizer = self.torch_optimizer
        unwrapped = _unwrapped_step(optimizer)
        if unwrapped is None:
            optimizer.step(skip_if=skip_if)
        else:
            unwrapped(optimizer, skip_if=skip_if)

    def finalize_variable_values(self) -> None:
        """With ``use_ema``, replace the weights by their moving averages (end of ``fit``)."""
        if self.torch_optimizer is not None:
            self.torch_optimizer.finalize_variable_values()

    def keras_slots(self) -> list[tuple[str, ...]]:
        """The blocks of Keras 3 optimizer variables after ``iterations`` and
        ``learning_rate``, in Keras' order (one block per ``add_optimizer_variables`` call):
        in a block, every trainable weight in turn has one variable per name (which is also
        the name of the rule's state)."""
        return ([("average",)] if self.use_ema else []) + self._slot_blocks()

    def _slot_blocks(self) -> list[tuple[str, ...]]:
        return [self._rule.slots] if self._rule.slots else []

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
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            **{k: getattr(self, k) for k in self._hyper},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum (:class:`rules.SGDRule`)."""

    _rule = rules.SGDRule
    _hyper = ("momentum", "nesterov")

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False, **kw: Any
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        _check_number("SGD", "momentum", momentum, 0.0, 1.0)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _slot_blocks(self) -> list[tuple[str, ...]]:
        return [("momentum",)] if self.momentum else []


class Adam(Optimizer):
    """Adam, with AMSGrad as an option (:class:`rules.AdamRule`)."""

    _rule = rules.AdamRule
    _hyper = ("beta_1", "beta_2", "epsilon", "amsgrad")

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
        _check_betas(type(self).__name__, beta_1, beta_2)
        _check_number(type(self).__name__, "epsilon", epsilon, 0.0, None)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)

    def _slot_blocks(self) -> list[tuple[str, ...]]:
        return [("momentum", "velocity")] + ([("velocity_hat",)] if self.amsgrad else [])


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004): Keras' ``AdamW``."""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kw: Any):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number, received None")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kw)


class RMSprop(Optimizer):
    """RMSprop with optional momentum and centering (:class:`rules.RMSpropRule`)."""

    _rule = rules.RMSpropRule
    _hyper = ("rho", "momentum", "epsilon", "centered")

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
        _check_number("RMSprop", "rho", rho, 0.0, 1.0)
        _check_number("RMSprop", "momentum", momentum, 0.0, 1.0)
        _check_number("RMSprop", "epsilon", epsilon, 0.0, None)
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon, self.centered = float(epsilon), bool(centered)

    def _slot_blocks(self) -> list[tuple[str, ...]]:
        return (
            [("velocity",)]
            + ([("momentum",)] if self.momentum > 0 else [])
            + ([("average_gradient",)] if self.centered else [])
        )


class Adagrad(Optimizer):
    """Adagrad (:class:`rules.AdagradRule`)."""

    _rule = rules.AdagradRule
    _hyper = ("initial_accumulator_value", "epsilon")

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kw: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        _check_number("Adagrad", "initial_accumulator_value", initial_accumulator_value, 0, None)
        _check_number("Adagrad", "epsilon", epsilon, 0.0, None)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)


class Adadelta(Optimizer):
    """Adadelta (:class:`rules.AdadeltaRule`)."""

    _rule = rules.AdadeltaRule
    _hyper = ("rho", "epsilon")

    def __init__(
        self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **kw: Any
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        _check_number("Adadelta", "rho", rho, 0.0, 1.0)
        _check_number("Adadelta", "epsilon", epsilon, 0.0, None)
        self.rho, self.epsilon = float(rho), float(epsilon)


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm (:class:`rules.AdamaxRule`)."""

    _rule = rules.AdamaxRule
    _hyper = ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kw: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        _check_betas("Adamax", beta_1, beta_2)
        _check_number("Adamax", "epsilon", epsilon, 0.0, None)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)


class Nadam(Optimizer):
    """Nadam, Adam with Nesterov momentum (:class:`rules.NadamRule`). Its Keras state holds
    one more scalar (the momentum schedule's product), so a Keras Nadam's state is not
    imported."""

    _rule = rules.NadamRule
    _hyper = ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kw: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        _check_betas("Nadam", beta_1, beta_2)
        _check_number("Nadam", "epsilon", epsilon, 0.0, None)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _slot_blocks(self) -> list[tuple[str, ...]]:
        raise ValueError("importing the state of a Keras Nadam is not supported")


class Lion(Optimizer):
    """Lion, sign-of-momentum updates (:class:`rules.LionRule`)."""

    _rule = rules.LionRule
    _hyper = ("beta_1", "beta_2")

    def __init__(
        self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.99, **kw: Any
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kw)
        if not isinstance(beta_1, (int, float)) or not 0.0 < beta_1 <= 1.0:
            raise ValueError(f"Lion: beta_1 must be in (0, 1], received {beta_1!r}")
        _check_number("Lion", "beta_2", beta_2, 0.0, 1.0)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)


def _check_betas(owner: str, beta_1: Any, beta_2: Any) -> None:
    _check_number(owner, "beta_1", beta_1, 0.0, 1.0)
    _check_number(owner, "beta_2", beta_2, 0.0, 1.0)
