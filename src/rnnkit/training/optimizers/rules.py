"""Keras 3's update rules as ``torch.optim.Optimizer`` subclasses.

Each rule does, in one ``step()``, what a Keras 3 optimizer's ``apply`` does on the torch
backend, in the same order:

1. keep the weights that have a gradient (Keras filters out missing gradients);
2. clip the gradients, with at most one of ``clipnorm`` (each gradient ``g`` becomes
   ``g * c / max(||g||, c)``), ``global_clipnorm`` (all gradients scaled by
   ``c * min(1 / ||G||, 1 / c)``, ``||G||`` their joint norm) or ``clipvalue`` (each element
   clipped to ``[-c, c]``);
3. decoupled weight decay: ``w *= 1 - weight_decay * lr``;
4. the rule's own update (``_update``);
5. with ``use_ema``, the moving average of every weight:
   ``average = m * average + (1 - m) * w`` with ``m = ema_momentum`` (``m = 0`` at the first
   step), copied into the weights every ``ema_overwrite_frequency`` steps and by
   :meth:`KerasRule.finalize_variable_values`;
6. ``iterations += 1`` (a count per parameter group, in ``param_groups[i]["iterations"]``).

The per-weight state uses Keras' variable names (``momentum``, ``velocity``, ...), listed in
each rule's ``slots`` in the order Keras creates them, so that a Keras optimizer's variables
map one to one onto a rule's state. The rules are plain torch optimizers: they also work in a
hand-written loop (``rule = AdamRule(model.parameters(), lr=1e-3); ...; rule.step()``) and
with ``torch.optim.lr_scheduler`` (the step size is ``param_groups[i]["lr"]``).

>>> w = torch.nn.Parameter(torch.ones(2))
>>> rule = SGDRule([w], lr=0.1)
>>> w.grad = torch.tensor([1.0, -1.0])
>>> rule.step()
>>> w.detach().tolist()
[0.8999999761581421, 1.100000023841858]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

_COMMON = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema")


class KerasRule(torch.optim.Optimizer):
    """Base class: clipping, weight decay, EMA and the step count around ``_update``.

    Args:
        params: the weights (or parameter groups) to optimize.
        lr: the step size (Keras' ``learning_rate``).
        weight_decay: decoupled weight decay (``None`` or 0: none).
        clipnorm / clipvalue / global_clipnorm: gradient clipping (at most one).
        use_ema / ema_momentum / ema_overwrite_frequency: a moving average of the weights.
        **hyper: the rule's own hyperparameters (Keras' names), stored in each group.
    """

    slots: tuple[str, ...] = ()

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        *,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        **hyper: Any,
    ) -> None:
        defaults = {"lr": float(lr), "weight_decay": float(weight_decay or 0.0), "iterations": 0}
        defaults.update(hyper)
        super().__init__(params, defaults)
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = bool(use_ema)
        self.ema_momentum = float(ema_momentum)
        self.ema_overwrite_frequency = ema_overwrite_frequency

    # The rule's own settings, which torch.optim.Optimizer.__getstate__ (its pickle and
    # copy.deepcopy state: defaults, state, param_groups) leaves out.
    _SETTINGS = (
        "clipnorm",
        "clipvalue",
        "global_clipnorm",
        "use_ema",
        "ema_momentum",
        "ema_overwrite_frequency",
        "slots",
    )

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in self._SETTINGS:
            if name in self.__dict__:
                state[name] = self.__dict__[name]
        return state

    # ------------------------------------------------------------------- the state
    def expected_state(self) -> set[str]:
        """The per-weight state names this rule reads (its slots, plus ``average`` with EMA)."""
        return set(self.slots) | ({"average"} if self.use_ema else set())

    def _initial_slot(self, name: str, param: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        return torch.zeros_like(param, memory_format=torch.preserve_format)

    def _state_of(self, param: torch.Tensor, group: dict[str, Any]) -> dict[str, torch.Tensor]:
        state = self.state[param]
        for name in self.slots:
            if name not in state:
                state[name] = self._initial_slot(name, param, group)
        return state

    def state_tensors(self, params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
        """The state tensors of ``params`` that a step writes in place (created now when
        missing, as the first step would create them)."""
        group_of = {p: g for g in self.param_groups for p in g["params"]}
        out = []
        for p in params:
            group = group_of.get(p)
            if group is None:
                continue
            state = self._state_of(p, group)
            out += [state[name] for name in self.slots]
            if self.use_ema:
                if "average" not in state:
                    state["average"] = torch.zeros_like(p)
                out.append(state["average"])
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``, refusing state names this rule does not use (a file
        written by another optimizer) with a ``ValueError`` that names them."""
        expected = self.expected_state()
        for index, values in dict(state_dict.get("state") or {}).items():
            unknown = sorted(set(values) - expected)
            if unknown:
                raise ValueError(
                    f"{type(self).__name__}: unknown state {unknown} for parameter {index}; "
                    f"this optimizer keeps {sorted(expected) or 'no state'}"
                )
        super().load_state_dict(state_dict)

    # -------------------------------------------------------------------- clipping
    def _clip(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.clipnorm:
            c = self.clipnorm
            return [g * c / torch.clamp(torch.linalg.vector_norm(g), min=c) for g in grads]
        if self.global_clipnorm and grads:
            c = self.global_clipnorm
            norm = torch.sqrt(sum(torch.sum(g.to(torch.float32) ** 2) for g in grads))
            scale = c * torch.minimum(1.0 / norm, torch.tensor(1.0 / c))
            return [g * scale.to(g.dtype) for g in grads]
        if self.clipvalue:
            return [torch.clamp(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    # ------------------------------------------------------------------------ step
    def can_skip_on_device(self) -> bool:
        """Whether :meth:`step` can take ``skip_if``: a 0-d float tensor that, when it holds 1,
        leaves every weight and slot as it was, decided on the device without reading the
        flag back. Only the plain SGD update can (torch's fused SGD kernel takes such a flag);
        the nan policy's step guard backs up and restores the tensors of the others."""
        return False

    def step(  # type: ignore[override]
        self, closure: Callable[[], Any] | None = None, *, skip_if: torch.Tensor | None = None
    ) -> Any:
        """One Keras update of every weight that has a gradient (see the module docstring);
        none where ``skip_if`` (see :meth:`can_skip_on_device`) holds 1. Runs without
        autograd, as under ``torch.no_grad()``."""
        if skip_if is not None and not self.can_skip_on_device():
            raise ValueError(
                f"{type(self).__name__}.step: skip_if needs an update that can skip on the "
                "device (plain SGD: no momentum, weight decay or EMA; dense gradients in the "
                "weights' dtypes and devices); check can_skip_on_device() first"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # the grad mode switched by torch's C function: the decorator of torch.no_grad()
        # makes nine Python calls per step (a new context object, its enter and exit)
        enabled = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            self._step_without_grad(skip_if)
        finally:
            torch._C._set_grad_enabled(enabled)
        return loss

    def _step_without_grad(self, skip_if: torch.Tensor | None) -> None:
        chosen = []  # (group, its weights with a gradient); loops, not nested comprehensions
        all_grads: list[torch.Tensor] = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            chosen.append((group, params))
            all_grads += [p.grad for p in params]
        if self.clipnorm or self.global_clipnorm or self.clipvalue:
            all_grads = self._clip(all_grads)
        position = 0
        for group, params in chosen:
            grads = all_grads[position : position + len(params)]
            position += len(params)
            lr, decay = group["lr"], group["weight_decay"]
            if params and decay:
                for p in params:
                    p.mul_(1.0 - decay * lr)
            step = group["iterations"] + 1
            self._begin_step(group, step)
            if skip_if is not None:
                _skippable_sgd(params, grads, group["lr"], skip_if)
            elif not self._update_all(params, grads, group):
                for p, g in zip(params, grads):
                    self._update(p, g.to(p.dtype), self._state_of(p, group), group, step)
            if self.use_ema:
                self._moving_average(group, first=group["iterations"] == 0)
            group["iterations"] = step

    def _begin_step(self, group: dict[str, Any], step: int) -> None:
        """Per-group work done once before the weights' updates (Nadam's product)."""

    def _update_all(
        self, params: list[torch.Tensor], grads: list[torch.Tensor], group: dict[str, Any]
    ) -> bool:
        """Update every weight of ``group`` at once (one ``torch._foreach_*`` call) when the
        rule can; False: update them one by one with ``_update``."""
        return False

    def rewind(self, steps: int) -> None:
        """Take back the host-side count of the last ``steps`` steps, whose writes to the
        weights and slots were undone (the nan policy's step guard skipped them)."""
        for group in self.param_groups:
            for _ in range(steps):
                self._end_of_step_undone(group, group["iterations"])
                group["iterations"] -= 1

    def _end_of_step_undone(self, group: dict[str, Any], step: int) -> None:
        """Undo ``_begin_step(group, step)``'s host-side work."""

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------------- EMA
    def _moving_average(self, group: dict[str, Any], first: bool) -> None:
        m = 0.0 if first else self.ema_momentum
        for p in group["params"]:
            state = self.state[p]
            if "average" not in state:
                state["average"] = torch.zeros_like(p)
            state["average"].mul_(m).add_(p.detach(), alpha=1.0 - m)
        frequency = self.ema_overwrite_frequency
        if frequency and (group["iterations"] + 1) % frequency == 0:
            self._overwrite_with_average(group)

    def _overwrite_with_average(self, group: dict[str, Any]) -> None:
        for p in group["params"]:
            average = self.state[p].get("average")
            if average is not None:
                p.copy_(average)

    @torch.no_grad()
    def finalize_variable_values(self) -> None:
        """With ``use_ema``, copy each weight's moving average into the weight (Keras does
        this at the end of ``fit``); otherwise nothing."""
        if self.use_ema:
            for group in self.param_groups:
                self._overwrite_with_average(group)


class SGDRule(KerasRule):
    """``m = momentum * m - lr * g``; ``w += m`` (Nesterov: ``w += momentum * m - lr * g``);
    without momentum ``w -= lr * g``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(params, lr, momentum=float(momentum), nesterov=bool(nesterov), **common)
        self.slots = ("momentum",) if momentum else ()

    def can_skip_on_device(self) -> bool:
        if self.use_ema:  # the moving average would take in the skipped step's weights
            return False
        # A gradient always has its weight's dtype and device (torch refuses any other,
        # from backward or assigned): only a sparse one (an Embedding(sparse=True)) cannot.
        for group in self.param_groups:
            if group["momentum"] or group["weight_decay"]:
                return False
            for p in group["params"]:
                g = p.grad
                if g is not None and g.layout != torch.strided:
                    return False
        return True

    def _update_all(
        self, params: list[torch.Tensor], grads: list[torch.Tensor], group: dict[str, Any]
    ) -> bool:
        if group["momentum"] or any(g.dtype != p.dtype for p, g in zip(params, grads)):
            return False
        if params:  # w -= lr * g for all weights in one call (the same arithmetic)
            torch._foreach_add_(params, grads, alpha=-group["lr"])
        return True

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        lr, momentum = group["lr"], group["momentum"]
        if not momentum:
            p.add_(g, alpha=-lr)
            return
        m = state["momentum"]
        m.mul_(momentum).add_(g, alpha=-lr)
        if group["nesterov"]:
            p.add_(g, alpha=-lr).add_(m, alpha=momentum)
        else:
            p.add_(m)


def _skippable_sgd(
    params: list[torch.Tensor], grads: list[torch.Tensor], lr: float, skip_if: torch.Tensor
) -> None:
    """``w -= lr * g`` for every weight, unless ``skip_if`` holds 1: torch's fused SGD kernel
    (its ``found_inf`` flag, which torch's own GradScaler uses), with nothing read back. The
    kernel walks a weight and its gradient as one flat block, so a gradient laid out unlike
    its weight is copied into the weight's layout first."""
    if not params:
        return
    grads = [
        g if g.stride() == p.stride() else torch.empty_like(p).copy_(g)
        for p, g in zip(params, grads)
    ]
    if skip_if.dtype != torch.float32:  # the kernel reads its flag as a float32
        skip_if = skip_if.to(torch.float32)
    torch._fused_sgd_(
        params,
        grads,
        [],
        weight_decay=0.0,
        momentum=0.0,
        lr=lr,
        dampening=0.0,
        nesterov=False,
        maximize=False,
        is_first_step=False,
        grad_scale=None,
        found_inf=skip_if,
    )


class AdamRule(KerasRule):
    """``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)`` (AMSGrad: ``v_hat = max(v_hat, v)``
    replaces ``v``), ``w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)``.
    AdamW is this rule with a ``weight_decay``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            beta_1=float(beta_1),
            beta_2=float(beta_2),
            epsilon=float(epsilon),
            amsgrad=bool(amsgrad),
            **common,
        )
        self.slots = ("momentum", "velocity") + (("velocity_hat",) if amsgrad else ())

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        b1, b2 = group["beta_1"], group["beta_2"]
        alpha = group["lr"] * math.sqrt(1 - b2**step) / (1 - b1**step)
        m, v = state["momentum"], state["velocity"]
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).add_(g * g, alpha=1 - b2)
        if group["amsgrad"]:
            v = torch.maximum(state["velocity_hat"], v, out=state["velocity_hat"])
        p.sub_(m * alpha / (torch.sqrt(v) + group["epsilon"]))


class RMSpropRule(KerasRule):
    """``v = rho v + (1 - rho) g^2``; centered: ``a = rho a + (1 - rho) g`` and
    ``d = v - a^2 + epsilon``, else ``d = v + epsilon``; ``inc = lr g / sqrt(d)``; with
    momentum ``m = momentum m + inc; w -= m``, else ``w -= inc``. (torch's RMSprop divides by
    ``sqrt(v) + eps`` instead: much larger steps while ``v`` is tiny.)"""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            rho=float(rho),
            momentum=float(momentum),
            epsilon=float(epsilon),
            centered=bool(centered),
            **common,
        )
        self.slots = (
            ("velocity",)
            + (("momentum",) if momentum > 0 else ())
            + (("average_gradient",) if centered else ())
        )

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        rho = group["rho"]
        v = state["velocity"]
        v.mul_(rho).add_(g * g, alpha=1 - rho)
        denominator = v + group["epsilon"]
        if group["centered"]:
            a = state["average_gradient"]
            a.mul_(rho).add_(g, alpha=1 - rho)
            denominator = denominator - a * a
        increment = g * group["lr"] / torch.sqrt(denominator)
        if group["momentum"] > 0:
            m = state["momentum"]
            m.mul_(group["momentum"]).add_(increment)
            p.sub_(m)
        else:
            p.sub_(increment)


class AdagradRule(KerasRule):
    """``a += g^2`` (``a`` starts at ``initial_accumulator_value``);
    ``w -= lr g / sqrt(a + epsilon)``. (torch's Adagrad divides by ``sqrt(a) + eps``.)"""

    slots = ("accumulator",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **common: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            initial_accumulator_value=float(initial_accumulator_value),
            epsilon=float(epsilon),
            **common,
        )

    def _initial_slot(self, name: str, param: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        return torch.full_like(param, group["initial_accumulator_value"])

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        a = state["accumulator"]
        a.add_(g * g)
        p.sub_(g * group["lr"] / torch.sqrt(a + group["epsilon"]))


class AdadeltaRule(KerasRule):
    """``G = rho G + (1 - rho) g^2``; ``d = -sqrt(D + eps) g / sqrt(G + eps)``;
    ``D = rho D + (1 - rho) d^2``; ``w += lr d``."""

    slots = ("accumulated_grad", "accumulated_delta_var")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-7,
        **common: Any,
    ) -> None:
        super().__init__(params, lr, rho=float(rho), epsilon=float(epsilon), **common)

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        rho, eps = group["rho"], group["epsilon"]
        big_g, big_d = state["accumulated_grad"], state["accumulated_delta_var"]
        big_g.mul_(rho).add_(g * g, alpha=1 - rho)
        delta = -(torch.sqrt(big_d + eps) * g) / torch.sqrt(big_g + eps)
        big_d.mul_(rho).add_(delta * delta, alpha=1 - rho)
        p.add_(delta, alpha=group["lr"])


class AdamaxRule(KerasRule):
    """``m += (g - m)(1 - b1)``; ``u = max(b2 u, |g|)``;
    ``w -= lr m / ((1 - b1^t)(u + epsilon))``."""

    slots = ("momentum", "norm")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **common: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            beta_1=float(beta_1),
            beta_2=float(beta_2),
            epsilon=float(epsilon),
            **common,
        )

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        b1 = group["beta_1"]
        m, u = state["momentum"], state["norm"]
        m.mul_(b1).add_(g, alpha=1 - b1)
        torch.maximum(u.mul_(group["beta_2"]), g.abs(), out=u)
        p.sub_(m * group["lr"] / ((u + group["epsilon"]) * (1 - b1**step)))


class NadamRule(KerasRule):
    """Adam with Nesterov momentum (Keras' schedule): ``u_t = b1 (1 - 0.5 * 0.96^t)``,
    ``P_t = P_{t-1} u_t`` (``param_groups[i]["u_product"]``),
    ``m_hat = u_{t+1} m / (1 - P_t u_{t+1}) + (1 - u_t) g / (1 - P_t)``,
    ``v_hat = v / (1 - b2^t)``, ``w -= lr m_hat / (sqrt(v_hat) + epsilon)``."""

    slots = ("momentum", "velocity")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **common: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            beta_1=float(beta_1),
            beta_2=float(beta_2),
            epsilon=float(epsilon),
            u_product=1.0,
            **common,
        )

    @staticmethod
    def _u(beta_1: float, step: int) -> float:
        return beta_1 * (1.0 - 0.5 * 0.96**step)

    def _begin_step(self, group: dict[str, Any], step: int) -> None:
        group["u_product"] = group["u_product"] * self._u(group["beta_1"], step)

    def _end_of_step_undone(self, group: dict[str, Any], step: int) -> None:
        group["u_product"] = group["u_product"] / self._u(group["beta_1"], step)

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        b1, b2 = group["beta_1"], group["beta_2"]
        u_t, u_next = self._u(b1, step), self._u(b1, step + 1)
        product = group["u_product"]
        m, v = state["momentum"], state["velocity"]
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).add_(g * g, alpha=1 - b2)
        m_hat = m * u_next / (1 - product * u_next) + g * (1 - u_t) / (1 - product)
        v_hat = v / (1 - b2**step)
        p.sub_(m_hat * group["lr"] / (torch.sqrt(v_hat) + group["epsilon"]))


class LionRule(KerasRule):
    """``w -= lr sign(b1 m + (1 - b1) g)``; then ``m = b2 m + (1 - b2) g``."""

    slots = ("momentum",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        **common: Any,
    ) -> None:
        super().__init__(params, lr, beta_1=float(beta_1), beta_2=float(beta_2), **common)

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        state: dict[str, torch.Tensor],
        group: dict[str, Any],
        step: int,
    ) -> None:
        b1, b2 = group["beta_1"], group["beta_2"]
        m = state["momentum"]
        p.sub_(torch.sign(m * b1 + g * (1 - b1)) * group["lr"])
        m.mul_(b2).add_(g, alpha=1 - b2)
