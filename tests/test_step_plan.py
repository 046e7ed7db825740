"""``train_on_batch``'s step plan (rnnkit.training.step_plan) runs exactly the Trainer's step.

Each test trains two models built alike from the same seed, one through the plan and one
through the general path (the plan switched off for it), on the same batches, and compares
what ``train_on_batch`` returns, the weights, the optimizer's state and the nan policy's
errors. Other tests check which calls the plan takes and which it leaves to the general
path.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.training import step_plan
from rnnkit.training.step_plan import StepPlan


class _Runs:
    """Counts the plan's runs, and switches the plan off for the models in ``general``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.general: list[object] = []
        lookup, run = step_plan.lookup, StepPlan.run

        def counted_run(plan, model, x, y):
            self.count += 1
            return run(plan, model, x, y)

        def maybe_lookup(model, *args):
            return None if any(model is m for m in self.general) else lookup(model, *args)

        monkeypatch.setattr(StepPlan, "run", counted_run)
        monkeypatch.setattr(step_plan, "lookup", maybe_lookup)


def _lstm_model(seed: int = 0, **compile_args: object) -> rnnkit.Model:
    torch.manual_seed(seed)
    model = rnnkit.Sequential(
        [
            layers.Input((None, 6)),
            layers.LSTM(8),
            layers.BatchNormalization(),
            layers.Dropout(0.3),
            layers.Dense(4),
        ]
    )
    args = {
        "optimizer": "sgd",
        "loss": rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
        "metrics": ["accuracy"],
        **compile_args,
    }
    model.compile(**args)
    return model


def _dense_model(seed: int = 0, **compile_args: object) -> rnnkit.Model:
    torch.manual_seed(seed)
    model = rnnkit.Sequential(
        [
            layers.Input((5,)),
            layers.Dense(7, activation="tanh", kernel_regularizer="l2"),
            layers.Dense(3),
        ]
    )
    model.compile(**{"optimizer": "adam", "loss": "mse", "metrics": ["mae"], **compile_args})
    return model


def _batches(kind: str, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    if kind == "lstm":
        return [
            (torch.randn(9, 5, 6, generator=g), torch.randint(0, 4, (9,), generator=g))
            for _ in range(steps)
        ]
    return [(torch.randn(9, 5, generator=g), torch.randn(9, 3, generator=g)) for _ in range(steps)]


def _train_both(
    runs: _Runs, make: Callable[[], rnnkit.Model], kind: str, steps: int = 6
) -> tuple[rnnkit.Model, rnnkit.Model, list[object], list[object]]:
    planned, general = make(), make()
    runs.general.append(general)
    logs_p, logs_g = [], []
    for i, (x, y) in enumerate(_batches(kind, steps)):
        torch.manual_seed(100 + i)  # the same dropout masks on both paths
        logs_p.append(planned.train_on_batch(x, y, return_dict=True))
        torch.manual_seed(100 + i)
        logs_g.append(general.train_on_batch(x, y, return_dict=True))
    return planned, general, logs_p, logs_g


def _assert_same_state(planned: rnnkit.Model, general: rnnkit.Model) -> None:
    for a, b in zip(planned.state_dict().values(), general.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert planned.optimizer.iterations == general.optimizer.iterations
    state_p = planned.optimizer.torch_optimizer.state_dict()["state"]
    state_g = general.optimizer.torch_optimizer.state_dict()["state"]
    assert state_p.keys() == state_g.keys()
    for index in state_p:
        for name, value in state_p[index].items():
            torch.testing.assert_close(value, state_g[index][name], rtol=0, atol=0)
    assert planned.get_metrics_result() == general.get_metrics_result()


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_lstm_model, "lstm"),  # plain SGD: the update skips itself on the device
        (lambda: _lstm_model(optimizer="adam"), "lstm"),  # the guard backs up and restores
        (lambda: _lstm_model(metrics=[], weighted_metrics=["accuracy"]), "lstm"),
        (_dense_model, "dense"),  # Adam, a regularizer's loss, mae
        (lambda: _dense_model(optimizer="sgd", metrics=[]), "dense"),
    ],
)
def test_the_plan_trains_exactly_as_the_general_step(monkeypatch, make, kind):
    runs = _Runs(monkeypatch)
    planned, general, logs_p, logs_g = _train_both(runs, make, kind)
    assert runs.count == 5  # every call of the planned model but the first (it builds)
    assert logs_p == logs_g
    _assert_same_state(planned, general)
    assert isinstance(planned.__dict__["_step_plan"][1], StepPlan)
    assert "_step_plan" not in general.__dict__


def _nan_loss_model(policy: str) -> rnnkit.Model:
    torch.manual_seed(0)
    model = rnnkit.Sequential([layers.Input((5,)), layers.Dense(3)])

    def log_loss(y_true, y_pred):  # -inf where y_pred - y_true is 0
        return torch.log(torch.abs(y_pred - y_true)).mean(dim=-1)

    model.compile(optimizer="sgd", loss=log_loss, metrics=["mae"], nan_policy=policy)
    return model


@pytest.mark.parametrize("policy", ["raise", "warn"])
def test_a_non_finite_loss_is_handled_as_on_the_general_path(monkeypatch, policy):
    runs = _Runs(monkeypatch)
    models = [_nan_loss_model(policy), _nan_loss_model(policy)]
    runs.general.append(models[1])
    x, y = torch.randn(4, 5), torch.randn(4, 3)
    outcomes = []
    for model in models:
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
        before = copy.deepcopy(model.state_dict())
        bad_y = model(x).detach()  # the loss is -inf
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.train_on_batch(x, bad_y)
                error = None
            except FloatingPointError as e:
                error = str(e)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, before[key], rtol=0, atol=0)
        outcomes.append(
            (
                error,
                [str(w.message) for w in caught],
                model.stop_training,
                model.optimizer.iterations,
            )
        )
    assert runs.count >= 2  # the planned model's calls after the first
    assert outcomes[0] == outcomes[1]
    assert "train_on_batch: the loss is -inf" in (outcomes[0][0] or outcomes[0][1][0])


def test_non_finite_inputs_go_to_the_general_path_and_its_error(monkeypatch):
    runs = _Runs(monkeypatch)
    model = _lstm_model()
    x, y = _batches("lstm", 1)[0]
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    weights = copy.deepcopy(model.state_dict())
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"train_on_batch: x \(input '\w+'\) holds 1 NaN"):
        model.train_on_batch(bad, y)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
    assert runs.count == 2  # the plan ran for the good calls, and declined the bad one


class _OwnStep(rnnkit.Sequential):
    def train_step(self, data):
        self.own_steps = getattr(self, "own_steps", 0) + 1
        return super().train_step(data)


def test_calls_the_plan_does_not_cover_take_the_general_path(monkeypatch):
    runs = _Runs(monkeypatch)
    model = _dense_model(optimizer="sgd")
    x, y = _batches("dense", 1)[0]
    model.train_on_batch(x, y)  # builds the optimizer and metrics
    model.train_on_batch(x, y)
    assert runs.count == 1
    model.train_on_batch(x, y, sample_weight=torch.ones(9))
    model.train_on_batch(x.numpy(), y.numpy())
    with pytest.raises(ValueError, match="x has 4 samples, y has 9"):
        model.train_on_batch(x[:4], y)  # the general path says what is wrong
    assert runs.count == 1
    for args in (
        {"nan_policy": "ignore"},
        {"jit_compile": True},
        {"optimizer": torch.optim.SGD(model.parameters(), lr=0.1)},
    ):
        model.compile(**{"optimizer": "sgd", "loss": "mse", **args})
        for _ in range(2):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.train_on_batch(x, y)
    assert runs.count == 1
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    assert runs.count == 2  # a new plan for the new compile
    own = _OwnStep([layers.Input((5,)), layers.Dense(3)])
    own.compile(optimizer="sgd", loss="mse")
    own.train_on_batch(x, y)
    own.train_on_batch(x, y)
    assert own.own_steps == 2 and runs.count == 2


def test_a_constraint_or_a_recompile_changes_what_runs(monkeypatch):
    """A weight constraint added later (a structure change) takes the general path, which
    applies it; a recompile with another optimizer trains with that one."""
    runs = _Runs(monkeypatch)
    x, y = _batches("dense", 1)[0]
    model = _dense_model(optimizer="sgd")
    for _ in range(2):
        model.train_on_batch(x, y)
    model.layers[0].add_weight(
        shape=(2,), initializer="ones", name="capped", constraint=rnnkit.constraints.MaxNorm(0.5)
    )
    model.train_on_batch(x, y)
    assert runs.count == 1
    assert float(model.layers[0].capped.detach().norm()) == pytest.approx(0.5)
    planned, general = _dense_model(optimizer="sgd"), _dense_model(optimizer="sgd")
    runs.general.append(general)
    for model in (planned, general):
        for _ in range(2):
            model.train_on_batch(x, y)
        model.compile(optimizer=rnnkit.optimizers.RMSprop(0.01), loss="mse", metrics=["mae"])
        for _ in range(3):
            model.train_on_batch(x, y)
    _assert_same_state(planned, general)


def test_modes_and_hooks_on_the_planned_path(monkeypatch):
    runs = _Runs(monkeypatch)
    model = _lstm_model()
    x, y = _batches("lstm", 1)[0]
    model.train_on_batch(x, y)
    seen = []
    model.register_forward_hook(lambda module, args, out: seen.append(module.training))
    model.eval()
    model.layers[2].train()  # a mix of modes
    before = {name: m.training for name, m in model.named_modules()}
    model.train_on_batch(x, y)
    assert runs.count == 1
    assert seen == [True]  # the hook fired, in training mode
    assert {name: m.training for name, m in model.named_modules()} == before


def test_float64_and_numpy_free_labels_check(monkeypatch):
    """A float64 model and int32 labels (converted by the loss) on the plan, as general."""
    runs = _Runs(monkeypatch)

    def make() -> rnnkit.Model:
        model = _lstm_model()
        return model.to(torch.float64)

    planned, general = make(), make()
    runs.general.append(general)
    for i, (x, y) in enumerate(_batches("lstm", 4)):
        for model in (planned, general):
            torch.manual_seed(i)
            model.train_on_batch(x.double(), y.to(torch.int32))
    assert runs.count == 3
    _assert_same_state(planned, general)
    assert np.isfinite(planned.get_metrics_result()["loss"])


def test_the_decision_is_kept_for_configurations_the_plan_does_not_cover(monkeypatch):
    """A configuration the plan does not cover is recognised once per key, not per call
    (the general path pays nothing per step for the plan), and a train_step set on the
    instance is run."""
    asked = []
    qualifies = step_plan._qualifies
    monkeypatch.setattr(step_plan, "_qualifies", lambda model: asked.append(1) or qualifies(model))
    model = _dense_model()
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss="mse")
    x, y = _batches("dense", 1)[0]
    for _ in range(5):
        model.train_on_batch(x, y)
    assert len(asked) == 2  # before and after the first batch built the compiled loss
    own = _dense_model(optimizer="sgd")
    own.train_on_batch(x, y)
    calls = []
    general_step = own.train_step
    own.train_step = lambda data: calls.append(1) or general_step(data)
    own.train_on_batch(x, y)
    assert calls == [1]


class _TwoOutputs(rnnkit.Model):
    """A subclassed model with two outputs and its own compute_loss on the first."""

    def __init__(self) -> None:
        super().__init__()
        self.a = layers.Dense(3)
        self.b = layers.Dense(2)

    def call(self, x):
        return self.a(x), self.b(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return ((y_pred[0] - y) ** 2).mean()


def test_several_outputs_with_an_own_compute_loss(monkeypatch):
    """Outputs that are not one tensor are matched by the Trainer's own metrics update."""
    runs = _Runs(monkeypatch)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = _TwoOutputs()
        model(torch.zeros(1, 5))  # built (weights drawn) right after the seed
        model.compile(optimizer="sgd")
        models.append(model)
    runs.general.append(models[1])
    logs = [[], []]
    for x, y in _batches("dense", 4):
        for i, model in enumerate(models):
            logs[i].append(model.train_on_batch(x, y, return_dict=True))
    assert runs.count == 3
    assert logs[0] == logs[1]
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
