"""The lean call path caches what does not change between calls; these tests change it.

Cached: a layer's target device and dtype and the model's parameter lists (against
``rnnkit.layers.base.structure_version()``), a recurrent layer's kernel plan (against its
spec, request, training flag and the inputs' device and dtype) and a cell's kernel spec
(against the attributes it is made of). Each test changes one of those between two calls and
checks the second call sees it.

The second half: a chain model's call plan (``rnnkit.models.call_plan``, per structure
version and input signature), on the streaming model of ``benchmarks/bench_fit.py``: the
planned call against a twin run through the general path and the generic loop, after each
change (weights, dtype, states, batch size, training flag, hooks, overrides). Last, the
column-major storage of the built-in cells' kernels (``rnnkit.layers.kernel_layout``), which
the fused kernel relies on for its speed, kept through what users do to weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.models import call_plan


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_a_dtype_change_reaches_the_input_conversion():
    layer = layers.LSTM(4)
    x = _x(2, 3, 5)
    assert layer(x).dtype == torch.float32
    layer.double()
    out = layer(x)  # float32 inputs are cast to the weights' new dtype
    assert out.dtype == torch.float64
    assert layer.last_kernel == "fused"


def test_new_weights_reach_the_parameter_lists_the_trainer_keeps():
    model = rnnkit.Sequential([layers.Input((3,)), layers.Dense(2), layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((4, 3), "float32"), np.ones((4, 1), "float32")
    model.train_on_batch(x, y)
    model.layers[0].trainable = False  # frozen after the lists were cached
    frozen = [w.detach().clone() for w in model.layers[0].weights]
    model.compile("sgd", "mse")
    model.train_on_batch(x, y)
    assert all(torch.equal(a, b) for a, b in zip(model.layers[0].weights, frozen))
    assert len(model._trainable_parameters()) == 2


def test_a_configuration_change_reaches_the_kernel_choice():
    layer = layers.LSTM(4)
    x = _x(2, 3, 5)
    layer(x, training=True)
    assert layer.last_kernel == "fused"
    layer.cell.recurrent_dropout = 0.5  # the spec changes: no fused kernel for it
    layer(x, training=True)
    assert layer.last_kernel == "manual_backward"
    layer.use_cudnn = False  # the request changes
    layer(x, training=True)
    assert layer.last_kernel == "generic"
    layer.use_cudnn = "auto"
    layer.cell.recurrent_dropout = 0.0
    layer(x, training=True)
    assert layer.last_kernel == "fused"


@pytest.mark.parametrize("stateful", [False, True])
def test_the_lean_path_gives_what_the_general_path_gives(stateful):
    """A masked call takes the general path; an all-true mask must give the unmasked result
    (the lean path), for outputs, returned states and stored states."""
    kwargs = dict(return_sequences=True, return_state=True, stateful=stateful)
    lean, general = layers.LSTM(4, **kwargs), layers.LSTM(4, **kwargs)
    x = _x(2, 3, 5)
    lean(x)
    general(x)
    general.set_weights(lean.get_weights())
    if stateful:
        lean.reset_states()
        general.reset_states()
    for step in range(2):
        a = lean(x[:, :, :] * (step + 1))
        b = general(x * (step + 1), mask=torch.ones(2, 3, dtype=torch.bool))
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-6)
    if stateful:
        for u, v in zip(lean.states, general.states):
            torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-6)


def test_the_lean_path_still_refuses_bad_inputs():
    layer = layers.LSTM(4)
    layer(_x(2, 3, 5))
    with pytest.raises(
        ValueError, match=r"built for per-step feature shape\(s\) \[\(5,\)\], received \[\(6,\)\]"
    ):
        layer(_x(2, 3, 6))  # the general path names the feature size it was built for
    stateful = layers.LSTM(4, stateful=True)
    stateful(_x(2, 3, 5))
    with pytest.raises(ValueError, match="stateful=True needs the same batch size"):
        stateful(_x(3, 3, 5))


def test_the_fused_lean_call_keeps_its_zero_states_per_batch_dtype_and_inference_mode():
    layer = layers.LSTM(4, return_state=True)
    x = _x(2, 3, 5)
    layer(x)  # the general path (the lean one runs from the second call)
    first = layer(x)
    zeros = layer.__dict__["_zero_states"][1]
    assert layer.last_kernel == "fused" and all(not z.any() for z in zeros)
    layer(x)
    assert layer.__dict__["_zero_states"][1][0] is zeros[0]  # kept, not made again
    with torch.inference_mode():  # inference tensors cannot be saved for a backward
        layer(x)
    assert layer.__dict__["_zero_states"][1][0] is not zeros[0]
    out, h, c = layer(x.requires_grad_(), training=True)
    (out.sum() + c.sum()).backward()  # zeros made outside inference mode again
    assert x.grad is not None and all(not z.any() for z in layer.__dict__["_zero_states"][1])
    for a, b in zip(first, layer(x.detach())):
        torch.testing.assert_close(a, b)
    layer(_x(3, 3, 5))
    assert layer.__dict__["_zero_states"][0][0] == 3  # a new batch size: new zeros


def test_batch_normalization_fused_path_matches_the_keras_formula():
    """Features on axis 1 without a mask go through torch's batch-norm op; a mask of ones
    goes through the written-out formula: the two agree, and so do the moving statistics."""
    x = _x(16, 6) * 3 + 1
    fused = layers.BatchNormalization(momentum=0.9)
    written = layers.BatchNormalization(momentum=0.9)
    fused(x)
    written(x)
    for training in (True, False):
        a = fused(x, training=training)
        b = written.call(x, training=training, mask=torch.ones(16, dtype=torch.bool))
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused.moving_mean, written.moving_mean)
    torch.testing.assert_close(fused.moving_variance, written.moving_variance)
    one = layers.BatchNormalization()
    assert one(_x(1, 6), training=True).shape == (1, 6)  # torch's op refuses one value


def test_model_to_float64_then_fit():
    model = rnnkit.Sequential([layers.Input((3, 2)), layers.GRU(4), layers.Dense(1)])
    model.compile("adam", "mse")
    x, y = np.ones((8, 3, 2), "float32"), np.ones((8, 1), "float32")
    model.fit(x, y, epochs=1, verbose=0)
    model.double()
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).dtype == np.float64


# ----------------------------------------------------------- the model's call plan (streaming)
def _streaming_model(kind: str = "LSTM") -> rnnkit.Model:
    """The streaming model of benchmarks/bench_fit.py, small."""
    recurrent = getattr(layers, kind)(8, stateful=True)
    return rnnkit.Sequential([layers.Input(batch_shape=(1, 1, 5)), recurrent, layers.Dense(3)])


def _twin(model: rnnkit.Model) -> rnnkit.Model:
    """A model with ``model``'s architecture whose calls run the general path (a no-op
    forward pre-hook) and the generic loop (``use_cudnn=False``): it shares no cache with
    ``model``. Made before the calls compared (a new layer bumps the structure version, which
    sends every model's next call to the general path); :func:`_sync` copies the weights."""
    config = model.get_config()
    for layer_config in config["layers"]:
        if layer_config["class_name"] in ("LSTM", "GRU", "SimpleRNN"):
            layer_config["config"]["use_cudnn"] = False
    twin = rnnkit.Sequential.from_config(config)
    twin.register_forward_pre_hook(lambda module, args: None)
    return _sync(twin, model)


def _sync(twin: rnnkit.Model, model: rnnkit.Model) -> rnnkit.Model:
    """Copy ``model``'s weights and stored states into ``twin`` (no structure change)."""
    twin.set_weights(model.get_weights())
    for mine, theirs in zip(model.layers, twin.layers):
        if getattr(mine, "stateful", False) and mine.states is not None:
            theirs.reset_states([s.detach().clone() for s in mine.states])
    return twin


class _PlanRuns:
    """Counts the calls that ran a recorded call plan."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        run = call_plan.CallPlan.run

        def counting(plan, *args, **kwargs):
            self.count += 1
            return run(plan, *args, **kwargs)

        monkeypatch.setattr(call_plan.CallPlan, "run", counting)


def _assert_same_step(model: rnnkit.Model, twin: rnnkit.Model, x: torch.Tensor) -> None:
    """``model(x)`` equals its twin's after :func:`_sync` (outputs and stored states)."""
    _sync(twin, model)
    expected = twin(x)
    got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(model.layers[0].states, twin.layers[0].states):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("grad", [False, True])
def test_the_call_plan_gives_what_the_general_path_gives(monkeypatch, grad, kind):
    model, runs = _streaming_model(kind), _PlanRuns(monkeypatch)
    twin = _twin(model)
    with torch.set_grad_enabled(grad):
        for step in range(4):
            x = _x(1, 1, 5, seed=step)
            torch.testing.assert_close(model(x), twin(x), rtol=1e-5, atol=1e-6)
            for mine, theirs in zip(model.layers[0].states, twin.layers[0].states):
                torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    assert runs.count == 3  # the first call ran the general path and recorded the plan
    # A GRU on CPU runs the manual-backward kernel's native loop (no kernel copies there).
    expected = "manual_backward" if kind == "GRU" else "fused"
    assert model.layers[0].last_kernel == expected and twin.layers[0].last_kernel == "generic"


def test_gradients_through_the_call_plan_reach_the_parameters(monkeypatch):
    model, runs = _streaming_model(), _PlanRuns(monkeypatch)
    twin = _twin(model)
    x = _x(1, 1, 5)
    model(x)
    twin(x)
    model(x).square().sum().backward()  # through the plan
    twin(x).square().sum().backward()
    for mine, theirs in zip(model.weights, twin.weights):
        assert mine.grad is not None
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-6)
    assert runs.count == 1


def _new_values(model: rnnkit.Model, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in model.get_weights()]


def _optimizer_step(model: rnnkit.Model) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(_x(1, 1, 5, seed=3)).square().sum().backward()
    optimizer.step()


def _set_weights(model: rnnkit.Model) -> None:
    model.set_weights(_new_values(model))


def _load_state_dict(model: rnnkit.Model) -> None:
    names = {id(p): name for name, p in model.named_parameters()}
    state = model.state_dict()
    for weight, value in zip(model.weights, _new_values(model)):
        state[names[id(weight)]] = torch.as_tensor(value)
    model.load_state_dict(state)


def _in_place_under_no_grad(model: rnnkit.Model) -> None:
    with torch.no_grad():
        model.layers[0].cell.kernel.mul_(-2.0)
        model.layers[0].cell.recurrent_kernel.add_(0.25)


def _data_replaced(model: rnnkit.Model) -> None:
    cell = model.layers[0].cell
    cell.kernel.data = cell.kernel.detach() * -2.0
    cell.recurrent_kernel.data = torch.flip(cell.recurrent_kernel.detach(), [0])


@pytest.mark.parametrize(
    "change",
    [_optimizer_step, _set_weights, _load_state_dict, _in_place_under_no_grad, _data_replaced],
)
def test_a_weight_change_reaches_the_next_planned_call(monkeypatch, change):
    """The call plan of a no_grad call sees new weights, however they were written."""
    model, runs = _streaming_model(), _PlanRuns(monkeypatch)
    twin = _twin(model)
    x = _x(1, 1, 5)
    with torch.no_grad():
        model(x)
        _assert_same_step(model, twin, x)
    assert runs.count == 1
    before = [w.detach().clone() for w in model.weights]
    change(model)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.weights))
    runs_before = runs.count
    with torch.no_grad():
        _assert_same_step(model, twin, x)
    assert runs.count == runs_before + 1  # new weights need no new plan


def test_a_dtype_change_reaches_the_planned_call(monkeypatch):
    model, runs = _streaming_model(), _PlanRuns(monkeypatch)
    twin = _twin(model)
    x = _x(1, 1, 5)
    with torch.no_grad():
        model(x)
        model.double()
        twin.double()
        model(x.double())  # the general path: the structure changed
        _assert_same_step(model, twin, x.double())
        assert model(x.double()).dtype == torch.float64
        _assert_same_step(model, twin, x)  # float32 inputs: cast by the general path
    assert runs.count == 2


def test_reset_states_reaches_the_planned_call(monkeypatch):
    model, runs = _streaming_model(), _PlanRuns(monkeypatch)
    twin = _twin(model)
    x = _x(1, 1, 5)
    with torch.no_grad():
        first = model(x)
        assert not torch.allclose(model(x), first)
        model.reset_states()
        torch.testing.assert_close(model(x), first)
        model.layers[0].reset_states([np.ones((1, 8), "float32")] * 2)
        _assert_same_step(model, twin, x)
    assert runs.count == 3


def test_the_planned_call_keeps_the_general_errors():
    model = _streaming_model()
    with torch.no_grad():
        model(_x(1, 1, 5))
        model(_x(1, 1, 5))
        with pytest.raises(ValueError, match=r"expects shape \(1, 1, 5\) .* received an input"):
            model(_x(2, 1, 5))  # the model's Input names the batch size
        with pytest.raises(ValueError, match=r"expects shape \(1, 1, 5\) .* received an input"):
            model(_x(1, 1, 6))
    lazy = rnnkit.Sequential([layers.LSTM(4, stateful=True), layers.Dense(2)])
    lazy(_x(2, 1, 5))
    lazy(_x(2, 1, 5))
    with pytest.raises(ValueError, match="stateful=True needs the same batch size"):
        lazy(_x(3, 1, 5))  # a new batch size: no plan; the layer's own check


def test_a_new_batch_size_or_dtype_gets_its_own_plan(monkeypatch):
    model = rnnkit.Sequential([layers.Input((3,)), layers.Dense(2), layers.Dense(1)])
    twin, runs = _twin(model), _PlanRuns(monkeypatch)
    for x in (_x(2, 3), _x(4, 3), _x(2, 3).double(), _x(4, 3), _x(2, 3).double(), _x(2, 3)):
        torch.testing.assert_close(model(x), twin(x))
    # planned: the second calls with batch 4 and batch 2; float64 inputs are cast by the
    # general path (a plan is kept only for inputs the model takes unchanged)
    assert runs.count == 2
    assert model(_x(2, 3).double()).dtype == torch.float32


def test_training_reaches_the_planned_call(monkeypatch):
    model = rnnkit.Sequential([layers.Input((6,)), layers.Dense(64), layers.Dropout(0.5)])
    twin, runs = _twin(model), _PlanRuns(monkeypatch)
    x = _x(4, 6)
    inference = model(x)
    torch.testing.assert_close(model(x), inference)  # planned, inference mode
    torch.manual_seed(0)
    dropped = model(x, training=True)  # the same plan: training is resolved at each call
    assert runs.count == 2 and (dropped == 0).any()
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], inference[kept] * 2)
    torch.manual_seed(0)
    torch.testing.assert_close(twin(x, training=True), dropped)
    model.train()  # the module's mode decides when nothing else does
    assert (model(x) == 0).any()
    with rnnkit.layers.base.training_scope(False):  # an enclosing call's flag wins over it
        torch.testing.assert_close(model(x), inference)
    assert runs.count == 4


def test_hooks_registered_after_the_plan_still_fire(monkeypatch):
    model, runs = _streaming_model(), _PlanRuns(monkeypatch)
    x = _x(1, 1, 5)
    model(x)
    model(x)
    assert runs.count == 1
    seen: list[str] = []
    for module in (model, *model.layers):
        handles = [
            module.register_forward_hook(lambda m, args, out: seen.append(f"{m.name} after")),
            module.register_forward_pre_hook(lambda m, args: seen.append(f"{m.name} before")),
        ]
        model(x)
        assert seen == [f"{module.name} before", f"{module.name} after"]
        seen.clear()
        for handle in handles:
            handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: seen.append(m.name)
    )
    try:
        model(x)
    finally:
        handle.remove()
    assert seen == [layer.name for layer in model.layers] + [model.name]
    runs_before = runs.count
    model(x)
    assert runs.count == runs_before + 1  # hooks gone: the plan runs again


def test_a_layer_that_overrides_call_is_called_through_it(monkeypatch):
    calls: list[int] = []

    class Counted(layers.Dense):
        def __call__(self, *args, **kwargs):
            calls.append(1)
            return super().__call__(*args, **kwargs)

    model = rnnkit.Sequential([layers.Input((3,)), Counted(2), layers.Dense(1)])
    runs = _PlanRuns(monkeypatch)
    model(_x(2, 3))
    before = len(calls)
    model(_x(2, 3))
    assert runs.count == 1 and len(calls) == before + 1
    assert not Counted._plain_calls_reach_forward
    assert layers.LSTM._plain_calls_reach_forward and layers.Dense._plain_calls_reach_forward
    assert not layers.Bidirectional._plain_calls_reach_forward


def test_only_chain_graphs_get_a_plan():
    a, b = layers.Input((3,)), layers.Input((3,))
    two_inputs = rnnkit.Model([a, b], layers.Dense(1)(layers.Concatenate()([a, b])))
    x = layers.Input((3,))
    h = layers.Dense(4)(x)
    two_outputs = rnnkit.Model(x, [layers.Dense(1)(h), layers.Dense(2)(h)])
    assert two_inputs._graph.chain is None and two_outputs._graph.chain is None
    two_outputs(_x(2, 3))
    assert not two_outputs._call_plans
    y = layers.Input((3,))
    chain = rnnkit.Model(y, [layers.Dense(2)(layers.Dense(4)(y))])
    assert [n.layer for n in chain._graph.chain] == chain.layers[1:]
    torch.testing.assert_close(chain(_x(2, 3)), chain(_x(2, 3)))
    assert chain._call_plans


def test_a_masked_or_overridden_recurrent_layer_in_a_plan_takes_forward(monkeypatch):
    """The recurrent layer's short way (its lean call) is taken only where forward would do
    nothing else: a mask from the layer before, or a subclass's own call, go through forward."""

    class Doubled(layers.LSTM):
        def call(self, *args, **kwargs):
            return super().call(*args, **kwargs) * 2

    assert layers.LSTM._runs_rnn_call and not Doubled._runs_rnn_call
    masked = rnnkit.Sequential(
        [layers.Input((4, 5)), layers.Masking(0.0), layers.LSTM(6), layers.Dense(2)]
    )
    doubled = rnnkit.Sequential([layers.Input((4, 5)), Doubled(6), layers.Dense(2)])
    runs = _PlanRuns(monkeypatch)
    x = _x(3, 4, 5)
    x[0, 2:] = 0.0  # masked steps
    masked.layers[1](x)  # an unmasked call: the layer keeps a plan for its lean call
    for model in (masked, doubled):
        model(x)
        planned = model(x)
        handle = model.register_forward_pre_hook(lambda module, args: None)
        general = model(x)  # a hook: the general path
        handle.remove()
        torch.testing.assert_close(planned, general)
    assert runs.count == 2
    plain = layers.LSTM(6)
    plain(x)
    plain.set_weights(doubled.layers[0].get_weights())
    torch.testing.assert_close(doubled.layers[0](x), plain(x) * 2)
    unmasked = layers.LSTM(6)
    unmasked(x)
    unmasked.set_weights(masked.layers[1].get_weights())
    assert not torch.allclose(masked.layers[1](masked.layers[0](x))[0], unmasked(x)[0])


# ------------------------------------------------------- column-major kernels (kernel_layout)
def _column_major(weight: torch.Tensor) -> bool:
    return weight.dim() == 2 and weight.t().is_contiguous() and not weight.is_contiguous()


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_built_in_cells_store_their_kernels_column_major(kind):
    """SimpleRNN and LSTM column-major; GRU row-major (its CPU kernel, the native loop, takes
    them so)."""
    layer = getattr(layers, kind)(6)
    layer(_x(2, 3, 5))
    cell = layer.cell
    gates = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    assert tuple(cell.kernel.shape) == (5, gates * 6)  # Keras' shapes
    assert tuple(cell.recurrent_kernel.shape) == (6, gates * 6)
    kernels = (cell.kernel, cell.recurrent_kernel)
    if kind == "GRU":
        assert all(k.is_contiguous() for k in kernels)
    else:
        assert all(_column_major(k) for k in kernels)
    assert all(w.flags["C_CONTIGUOUS"] for w in layer.get_weights())  # numpy as Keras gives


def _kernels(model: rnnkit.Model) -> list[torch.Tensor]:
    cell = model.layers[0].cell
    return [cell.kernel, cell.recurrent_kernel]


def test_the_column_major_layout_survives_what_users_do_to_weights(tmp_path):
    import copy

    model = _streaming_model()
    model(_x(1, 1, 5))
    _set_weights(model)
    _load_state_dict(model)
    _optimizer_step(model)  # the gradients come back in the parameters' layout
    assert all(k.grad.stride() == k.stride() for k in _kernels(model))
    twin = copy.deepcopy(model)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    twin.load_state_dict(torch.load(tmp_path / "state.pt"))
    model.double()
    for m in (model, twin):
        assert all(_column_major(k) for k in _kernels(m))
    assert model.layers[0].cell.kernel.dtype == torch.float64


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM"])
@pytest.mark.parametrize("grad", [False, True])
def test_the_fused_kernel_gets_contiguous_transposes(monkeypatch, grad, kind):
    """``_VF`` receives ``(G u, H_in)`` and ``(G u, u)`` weights that are contiguous, as
    ``nn.LSTM``'s are, in the general path's call and in the lean path's."""
    from rnnkit.kernels import fused

    seen = []
    for mode, kernel in list(fused._VF_KERNELS.items()):

        def spy(inputs, hx, params, *args, kernel=kernel):
            seen.append([p.is_contiguous() for p in params if p.dim() == 2])
            return kernel(inputs, hx, params, *args)

        monkeypatch.setitem(fused._VF_KERNELS, mode, spy)
    layer = getattr(layers, kind)(6)
    with torch.set_grad_enabled(grad):
        for step in range(3):
            layer(_x(2, 3, 5, seed=step))
    assert layer.last_kernel == "fused"
    assert len(seen) == 3 and all(flags == [True, True] for flags in seen)
