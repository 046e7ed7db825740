"""Keras-named optimizers follow Keras 3's maths: from the same weights and batches, an rnnkit
model and a Keras model (torch backend) trained 20 steps end within 1e-5 of each other, for
every optimizer and the common options (weight decay, clipping, EMA). Also: state names, the
torch rules on their own, bad arguments, save/resume of the new state."""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

import rnnkit
from rnnkit import layers
from rnnkit.training import optimizers
from rnnkit.training.optimizers import keras_named, rules

STEPS = 20


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((STEPS * 4, 5, 3)).astype("float32")
    y = rng.standard_normal((STEPS * 4, 2)).astype("float32")
    return x, y


def _models():
    import keras

    ours = rnnkit.Sequential([rnnkit.Input((5, 3)), layers.LSTM(4), layers.Dense(2)])
    theirs = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _train_both(name: str, kwargs: dict) -> tuple[list[np.ndarray], list[np.ndarray], object]:
    import keras

    ours, theirs = _models()
    x, y = _data()
    ours.compile(optimizer=getattr(optimizers, name)(**kwargs), loss="mse")
    theirs.compile(optimizer=getattr(keras.optimizers, name)(**kwargs), loss="mse")
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return ours.get_weights(), theirs.get_weights(), ours


CASES = [
    ("SGD", {}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.1}),
    ("SGD", {"learning_rate": 0.5, "clipnorm": 0.05}),
    ("SGD", {"learning_rate": 0.5, "clipvalue": 0.01}),
    ("SGD", {"learning_rate": 0.5, "global_clipnorm": 0.05}),
    ("RMSprop", {}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("RMSprop", {"learning_rate": 0.01, "rho": 0.5, "epsilon": 1e-3}),
    ("Adagrad", {}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.01}),
    ("Adam", {}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("Adam", {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9}),
    ("Adam", {"learning_rate": 0.01, "use_ema": True, "ema_overwrite_frequency": 3}),
    ("AdamW", {}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adamax", {"learning_rate": 0.01}),
    ("Nadam", {"learning_rate": 0.01}),
    ("Lion", {"learning_rate": 0.001}),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{sorted(k)}" for n, k in CASES])
def test_twenty_steps_match_keras(name, kwargs):
    ours, theirs, model = _train_both(name, kwargs)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, _models()[0].get_weights()))
    assert moved > 0 or name == "Lion"  # the weights did change
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    assert model.optimizer.iterations == STEPS


def test_rmsprop_divides_by_sqrt_of_v_plus_epsilon():
    """One step from zero state with a tiny gradient: Keras' ``sqrt(v + eps)`` gives a much
    smaller step than torch's ``sqrt(v) + eps`` (the seq2seq divergence of issue 12)."""
    w = torch.nn.Parameter(torch.zeros(1))
    rule = rules.RMSpropRule([w], lr=0.001, rho=0.9, epsilon=1e-7)
    g = 1e-4
    w.grad = torch.tensor([g])
    rule.step()
    expected = -0.001 * g / np.sqrt(0.1 * g * g + 1e-7)
    assert w.item() == pytest.approx(expected, rel=1e-5)
    torch_w = torch.nn.Parameter(torch.zeros(1))
    torch_opt = torch.optim.RMSprop([torch_w], lr=0.001, alpha=0.9, eps=1e-7)
    torch_w.grad = torch.tensor([g])
    torch_opt.step()
    assert abs(torch_w.item()) > 5 * abs(w.item())


def test_adagrad_golden_values():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    rule = rules.AdagradRule([w], lr=0.5, initial_accumulator_value=0.1, epsilon=1e-7)
    w.grad = torch.tensor([1.0, -2.0])
    rule.step()
    a = np.array([1.1, 4.1])
    np.testing.assert_allclose(
        w.detach().numpy(), [1, 2] - 0.5 * np.array([1.0, -2.0]) / np.sqrt(a + 1e-7), rtol=1e-6
    )
    assert set(rule.state[w]) == {"accumulator"}


def test_rules_are_torch_optimizers_and_skip_missing_gradients():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    rule = rules.AdamRule([a, b], lr=0.1)
    assert isinstance(rule, torch.optim.Optimizer)
    scheduler = torch.optim.lr_scheduler.StepLR(rule, step_size=1, gamma=0.5)
    a.grad = torch.ones(2)
    rule.step()
    assert torch.equal(b.detach(), torch.ones(2)) and b not in rule.state
    assert rule.param_groups[0]["iterations"] == 1
    scheduler.step()
    assert rule.param_groups[0]["lr"] == pytest.approx(0.05)


class _Recording(rules.SGDRule):
    """SGD that records the grad mode of its update, and raises when asked to."""

    modes: list[bool] = []
    fail = False

    def _update_all(self, params, grads, group):
        self.modes.append(torch.is_grad_enabled())
        if self.fail:
            raise RuntimeError("the update failed")
        return super()._update_all(params, grads, group)


@pytest.mark.parametrize("grad_enabled", [True, False])
def test_a_rule_steps_without_autograd_and_gives_the_grad_mode_back(grad_enabled):
    """The rule's update runs with autograd off (in-place updates of leaf weights would raise
    in grad mode), and the caller's mode comes back, also when the update raises."""
    w = torch.nn.Parameter(torch.ones(3))
    rule = _Recording([w], lr=0.5)
    rule.modes = []
    w.grad = torch.ones(3)
    with torch.set_grad_enabled(grad_enabled):
        rule.step()
        assert torch.is_grad_enabled() is grad_enabled
        assert torch.equal(w.detach(), torch.full((3,), 0.5))
        rule.fail = True
        with pytest.raises(RuntimeError, match="the update failed"):
            rule.step()
        assert torch.is_grad_enabled() is grad_enabled
    assert rule.modes == [False, False]


def test_step_hooks_and_profiler_range_still_work_when_the_wrapper_is_skipped():
    """Optimizer.step calls the rule's step past torch's wrapper only when the wrapper would
    do nothing: a step hook (the optimizer's or a global one) and a profiler still see it."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = optimizers.SGD(learning_rate=0.5)
    opt.build([w])
    rule = opt.torch_optimizer
    w.grad = torch.ones(3)
    opt.step()  # no hook, no profiler: the unwrapped step, the same update
    assert torch.equal(w.detach(), torch.full((3,), 0.5))
    assert rule.param_groups[0]["iterations"] == 1

    assert keras_named._unwrapped_step(rule) is not None  # the wrapper is skipped

    seen = []
    pre = rule.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    post = rule.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    assert keras_named._unwrapped_step(rule) is None
    opt.step()
    assert seen == ["pre", "post"]
    pre.remove(), post.remove()

    glob = register_optimizer_step_pre_hook(lambda o, args, kwargs: seen.append("global"))
    try:
        opt.step()
    finally:
        glob.remove()
    assert seen == ["pre", "post", "global"]

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        opt.step()
    names = {e.key for e in prof.key_averages()}
    assert f"Optimizer.step#{type(rule).__name__}.step" in names
    opt.step()
    assert seen == ["pre", "post", "global"]  # removed hooks stay removed
    assert torch.allclose(w.detach(), torch.full((3,), 0.5 - 4 * 0.5))
    assert rule.param_groups[0]["iterations"] == 5

    # a torch LR scheduler wraps the instance's step to see that it ran: it is called
    scheduler = torch.optim.lr_scheduler.StepLR(rule, step_size=1, gamma=0.5)
    assert keras_named._unwrapped_step(rule) is None
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "lr_scheduler.step() before optimizer.step()"
        scheduler.step()
    assert rule.param_groups[0]["lr"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    "name, kwargs, slots",
    [
        ("SGD", {}, []),
        ("SGD", {"momentum": 0.5}, [("momentum",)]),
        ("Adam", {"amsgrad": True}, [("momentum", "velocity"), ("velocity_hat",)]),
        (
            "RMSprop",
            {"momentum": 0.1, "centered": True},
            [("velocity",), ("momentum",), ("average_gradient",)],
        ),
        ("Adagrad", {"use_ema": True}, [("average",), ("accumulator",)]),
        ("Adadelta", {}, [("accumulated_grad", "accumulated_delta_var")]),
        ("Adamax", {}, [("momentum", "norm")]),
        ("Lion", {}, [("momentum",)]),
    ],
)
def test_state_uses_keras_variable_names(name, kwargs, slots):
    opt = getattr(optimizers, name)(**kwargs)
    assert opt.keras_slots() == slots
    w = torch.nn.Parameter(torch.ones(3))
    opt.build([w])
    w.grad = torch.full((3,), 0.5)
    opt.step()
    assert set(opt.torch_optimizer.state.get(w, {})) == {n for block in slots for n in block}


def test_nadam_state_import_is_refused():
    with pytest.raises(ValueError, match="Nadam is not supported"):
        optimizers.Nadam().keras_slots()


def test_loading_state_of_another_optimizer_is_refused():
    w = torch.nn.Parameter(torch.ones(3))
    opt = optimizers.Adagrad()
    opt.build([w])
    state = {
        "state": {0: {"exp_avg": torch.zeros(3)}},
        "param_groups": opt.state_dict()["param_groups"],
    }
    with pytest.raises(ValueError, match=r"unknown state \['exp_avg'\].*\['accumulator'\]"):
        opt.load_state_dict(state)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: optimizers.SGD(learning_rate=-1.0), "learning_rate must be a number >= 0"),
        (lambda: optimizers.SGD(momentum=1.5), r"momentum must be a number in \[0.0, 1.0\]"),
        (lambda: optimizers.SGD(clipnorm=0.0), "clipnorm must be > 0"),
        (lambda: optimizers.Adam(clipnorm=1.0, clipvalue=1.0), "at most one of clipnorm"),
        (lambda: optimizers.Adam(ema_momentum=2.0), "ema_momentum"),
        (lambda: optimizers.Adam(use_ema=True, ema_overwrite_frequency=0), "ema_overwrite_freq"),
        (lambda: optimizers.Adam(beta_1=1.5), "beta_1"),
        (lambda: optimizers.RMSprop(rho=-0.1), "rho"),
        (lambda: optimizers.Lion(beta_1=0.0), r"beta_1 must be in \(0, 1\]"),
        (lambda: optimizers.AdamW(weight_decay=None), "weight_decay must be a number"),
        (lambda: optimizers.Adagrad(weight_decay=-1.0), "weight_decay"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unknown_argument_and_keras_defaults_accepted():
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        optimizers.Adam(beta3=0.1)
    with pytest.raises(TypeError, match="gradient_accumulation_steps"):
        optimizers.Adam(gradient_accumulation_steps=4)
    optimizers.Adam(loss_scale_factor=None, gradient_accumulation_steps=None)


@pytest.mark.parametrize("name", sorted(optimizers._CLASSES))
def test_config_round_trip_and_names(name):
    import keras

    opt = optimizers.get(name.lower())
    assert type(opt).__name__ == name
    config = opt.get_config()
    assert type(opt).from_config(config).get_config() == config
    keras_config = getattr(keras.optimizers, name)().get_config()
    for key, value in config.items():
        if key in keras_config and key != "name":
            assert keras_config[key] == pytest.approx(value), key


def test_ema_replaces_weights_at_the_end_of_fit():
    ours, theirs, model = _train_both("SGD", {"learning_rate": 0.1, "use_ema": True})
    averages = [
        model.optimizer.torch_optimizer.state[p]["average"] for p in model.trainable_weights
    ]
    for w, avg in zip(model.trainable_weights, averages):
        assert torch.equal(w.detach(), avg)


def test_save_and_resume_keeps_the_keras_state(tmp_path):
    model = rnnkit.Sequential([rnnkit.Input((5, 3)), layers.LSTM(4), layers.Dense(2)])
    x, y = _data()
    model.compile(optimizer=optimizers.Nadam(learning_rate=0.01), loss="mse")
    model.fit(x[:8], y[:8], batch_size=4, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = rnnkit.saving.load_model(path)
    assert loaded.optimizer.iterations == 2
    group = loaded.optimizer.torch_optimizer.param_groups[0]
    assert group["u_product"] == pytest.approx(
        model.optimizer.torch_optimizer.param_groups[0]["u_product"]
    )
    model.fit(x[8:16], y[8:16], batch_size=4, shuffle=False, verbose=0)
    loaded.fit(x[8:16], y[8:16], batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.optimizers.SGD(0.1),
        lambda: rnnkit.optimizers.SGD(0.1, momentum=0.9, use_ema=True),
        lambda: rnnkit.optimizers.Adam(0.01, amsgrad=True, clipnorm=1.0),
        lambda: rnnkit.optimizers.RMSprop(0.01, global_clipnorm=0.5),
    ],
)
def test_a_copied_or_pickled_model_trains_on_as_the_original(make):
    """copy.deepcopy and torch.save keep the rule's own settings (clipping, EMA, slots),
    which torch.optim.Optimizer's pickle state leaves out: the copy trains on exactly as the
    original does."""
    torch.manual_seed(0)
    model = rnnkit.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=make(), loss="mse")
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    for _ in range(2):
        model.train_on_batch(x, y)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    copies = [copy.deepcopy(model), torch.load(buffer, weights_only=False)]
    for m in [model, *copies]:
        for _ in range(3):
            m.train_on_batch(x, y)
    for m in copies:
        for a, b in zip(model.state_dict().values(), m.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert m.optimizer.iterations == model.optimizer.iterations == 5
