"""Every layer is a real ``torch.nn.Module``: a call goes through ``nn.Module.__call__`` to
``forward``, so hooks, ``nn.Module.compile``, ``torch.func.functional_call``, ``deepcopy`` and
``state_dict`` work; Keras' training semantics stay (see README, "PyTorch interoperability")."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers


def _classifier() -> rnnkit.Model:
    return rnnkit.Sequential(
        [
            layers.Input(shape=(None, 3)),
            layers.LSTM(4, return_sequences=True),
            layers.GRU(5),
            layers.Dropout(0.5),
            layers.Dense(2),
        ]
    )


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).standard_normal(shape), dtype=torch.float32)


def test_forward_is_the_call():
    layer = layers.Dense(3)
    x = _x(2, 4)
    assert torch.equal(layer.forward(x), layer(x))
    model = _classifier()
    assert torch.equal(model.forward(_x(2, 5, 3)), model(_x(2, 5, 3)))


def test_forward_hooks_see_the_inputs_and_outputs_of_each_layer():
    model = _classifier()
    lstm, gru = model.layers[0], model.layers[1]
    seen: dict[str, tuple] = {}

    def record(module, args, output):
        seen[module.name] = (args, output)

    handles = [layer.register_forward_hook(record) for layer in (lstm, gru)]
    handles.append(model.register_forward_hook(record))
    x = _x(2, 5, 3)
    out = model(x)
    assert set(seen) == {lstm.name, gru.name, model.name}
    assert torch.equal(seen[lstm.name][0][0], x)
    assert seen[lstm.name][1].shape == (2, 5, 4)
    assert seen[gru.name][0][0] is seen[lstm.name][1]  # the GRU receives the LSTM's output
    assert torch.equal(seen[gru.name][1], gru(lstm(x)))
    assert seen[model.name][1] is out
    for handle in handles:
        handle.remove()
    seen.clear()
    model(x)
    assert seen == {}


def test_forward_hook_with_kwargs_sees_training_and_can_replace_the_output():
    layer = layers.Dropout(0.5)
    calls = []

    def hook(module, args, kwargs, output):
        calls.append(kwargs.get("training"))
        return output * 0 + 7

    layer.register_forward_hook(hook, with_kwargs=True)
    out = layer(_x(3, 4), training=True)
    assert calls == [True]
    assert torch.all(out == 7)


def test_forward_pre_hook_can_change_the_inputs():
    layer = layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")
    layer.register_forward_pre_hook(lambda module, args: (args[0] * 2,))
    x = _x(3, 4)
    assert torch.allclose(layer(x), 2 * x.sum(dim=1, keepdim=True).expand(3, 2))


def test_full_backward_hook_sees_the_gradients():
    layer = layers.LSTM(4)
    x = _x(2, 5, 3).requires_grad_(True)
    grads = {}

    def hook(module, grad_input, grad_output):
        grads["in"], grads["out"] = grad_input, grad_output

    layer.register_full_backward_hook(hook)
    out = layer(x)
    (out * 3).sum().backward()
    assert torch.allclose(grads["out"][0], torch.full((2, 4), 3.0))
    assert torch.allclose(grads["in"][0], x.grad)


def test_masks_survive_a_full_backward_hook():
    masking = layers.Masking(0.0)
    masking.register_full_backward_hook(lambda module, gi, go: None)
    lstm = layers.LSTM(4, return_sequences=True)
    x = _x(2, 4, 3)
    x[0, 2:] = 0.0
    x.requires_grad_(True)
    hidden = masking(x)
    assert torch.equal(hidden._keras_mask, torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]).bool())
    out = lstm(hidden)
    assert torch.equal(out[0, 2], out[0, 1])  # masked steps repeat the last output
    out.sum().backward()
    assert x.grad is not None


def test_symbolic_calls_build_models_without_firing_hooks():
    layer = layers.Dense(2)
    calls = []
    layer.register_forward_hook(lambda *args: calls.append(1))
    x = rnnkit.Input(shape=(3,))
    model = rnnkit.Model(x, layer(x))
    assert calls == [] and model.output_shape == (None, 2)
    model(_x(4, 3))
    assert calls == [1]


def test_nn_module_compile_compiles_the_forward():
    layer = layers.GRU(4)
    x = _x(2, 5, 3)
    expected = layer(x)
    torch._dynamo.reset()
    layer.compile(backend="eager")  # nn.Module.compile on a layer
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    model = _classifier()
    expected = model(x)
    torch.nn.Module.compile(model, backend="eager")  # a Model's compile() is Keras'
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()


def test_functional_call_swaps_the_weights():
    model = _classifier()
    x = _x(2, 5, 3)
    rnnkit.clear_session()
    twin = _classifier()
    params = {k: v.detach().clone() for k, v in twin.state_dict().items()}
    out = torch.func.functional_call(model, params, (x,))
    torch.testing.assert_close(out, twin(x))
    assert not torch.allclose(out, model(x))
    # gradients with respect to the swapped-in weights
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    torch.func.functional_call(model, params, (x,)).sum().backward()
    assert params["lstm.cell.kernel"].grad is not None


def test_deepcopy_gives_an_independent_model():
    model = _classifier()
    x = _x(2, 5, 3)
    clone = copy.deepcopy(model)
    torch.testing.assert_close(clone(x), model(x))
    with torch.no_grad():
        clone.layers[-1].kernel.add_(1.0)
    assert not torch.allclose(clone(x), model(x))
    clone.compile(optimizer="adam", loss="mse")
    clone.fit(x.numpy(), np.zeros((2, 2), "float32"), epochs=1, verbose=0)


def test_state_dict_keys_follow_the_layer_names_and_load_into_a_twin():
    model = _classifier()
    assert list(model.state_dict()) == [
        "lstm.cell.kernel",
        "lstm.cell.recurrent_kernel",
        "lstm.cell.bias",
        "gru.cell.kernel",
        "gru.cell.recurrent_kernel",
        "gru.cell.bias",
        "dense.kernel",
        "dense.bias",
    ]
    rnnkit.clear_session()  # the twin gets the same automatic names
    twin = _classifier()
    assert list(twin.state_dict()) == list(model.state_dict())
    twin.load_state_dict(model.state_dict())
    x = _x(2, 5, 3)
    torch.testing.assert_close(twin(x), model(x))


# One table (README, "PyTorch interoperability"): which mode a call runs in.
@pytest.mark.parametrize(
    ("module_mode", "training", "expect_dropout"),
    [
        ("fresh", None, False),  # a plain call is inference, as in Keras
        ("train", None, True),  # model.train(): PyTorch's training mode
        ("eval", None, False),
        ("train", False, False),  # an explicit training= wins
        ("eval", True, True),
        ("fresh", True, True),
    ],
)
def test_training_mode_table(module_mode, training, expect_dropout):
    model = _classifier()
    if module_mode == "train":
        model.train()
    elif module_mode == "eval":
        model.eval()
    x = _x(64, 5, 3)
    a, b = model(x, training=training), model(x, training=training)
    assert (not torch.equal(a, b)) == expect_dropout


def test_fit_trains_in_training_mode_and_restores_the_modes():
    model = _classifier()
    modes = []
    model.layers[2].register_forward_hook(lambda m, args, out: modes.append(m.training))
    model.compile(optimizer="sgd", loss="mse")
    x, y = _x(4, 5, 3).numpy(), np.zeros((4, 2), "float32")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.predict(x, verbose=0)
    assert modes == [True, False]
    assert not any(m.training for m in model.modules())


def test_train_on_batch_sets_and_restores_each_module_mode_and_calls_an_overridden_train():
    # Modules that keep nn.Module.train get their flags written directly; a model holding
    # one that overrides train() goes through train() (the override sees the switch).
    class Frozen(layers.Dense):
        def train(self, mode=True):
            self.switches.append(mode)
            return super().train(mode)

    for frozen in (False, True):
        model = _classifier()
        if frozen:
            head = Frozen(2)
            head.switches = []
            model = rnnkit.Sequential([*model.layers, head])
        modes: list[bool] = []
        model.layers[2].register_forward_hook(
            lambda m, args, out, modes=modes: modes.append(m.training)
        )
        model.compile(optimizer="sgd", loss="mse")
        model.layers[0].train()  # a mixed state, given back as it was
        before = [m.training for m in model.modules()]
        model.train_on_batch(_x(4, 5, 3).numpy(), np.zeros((4, 2), "float32"))
        assert modes == [True]
        assert [m.training for m in model.modules()] == before
        if frozen:
            assert head.switches == [True]
