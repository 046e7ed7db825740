"""The opt-in compiled loop (``RNN(cell, compile_loop=...)``, rnnkit.kernels.compiled_loop) against
the generic loop: outputs, final states and gradients, with masks, ``go_backwards``, nested
inputs and states, constants; the dispatch's report; config; what it refuses.

Most tests compile with ``backend="aot_eager"`` (dynamo's graph capture and AOTAutograd's
joint graph, run eagerly; under a second per layer): the capture and the chunked, padded,
masked loop are what rnnkit adds, and they are the same for every backend. Inductor on CPU
compiles C++ (tens of seconds per graph on the project's 2-core VM, more for a cold cache), so
only one test uses it, on the smallest cell.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers
from rnnkit.kernels import compiled_loop
from rnnkit.layers import Layer

AOT = {"backend": "aot_eager"}
B, T, D, U = 3, 11, 4, 5  # T = 11: chunks of 6 steps, the last padded by one masked step
HOLES = torch.tensor(
    [[1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1] + [0] * 8],
    dtype=torch.bool,
)


class MinimalRNNCell(Layer):
    """The guide's MinimalRNNCell, with torch ops."""

    def __init__(self, units, **kwargs):
        self.units = units
        self.state_size = units
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel"
        )

    def call(self, inputs, states):
        output = inputs @ self.kernel + torch.tanh(states[0]) @ self.recurrent_kernel
        return output, [output]


class NestedCell(Layer):
    """Nested inputs ``(a, b)``, states ``[{"h": (N, u)}, (N, 2, u)]``, a dict output,
    ``training`` and ``constants``."""

    def __init__(self, units, **kwargs):
        self.units = units
        self.state_size = [{"h": units}, torch.Size([2, units])]
        super().__init__(**kwargs)

    def build(self, input_shape):
        (a, b), k = input_shape[0], input_shape[1]
        self.wa = self.add_weight(shape=(a[-1], self.units), name="wa")
        self.wb = self.add_weight(shape=(b[-1], self.units), name="wb")
        self.wk = self.add_weight(shape=(k[-1], self.units), name="wk")

    def call(self, inputs, states, training=None, constants=None):
        a, b = inputs
        h = torch.tanh(a @ self.wa + b @ self.wb + states[0]["h"] + constants[0] @ self.wk)
        if training:
            h = h * 0.5
        c = states[1] * 0.9 + h.unsqueeze(1)
        return {"out": h, "sum": c.sum(1)}, [{"h": h}, c]


class UntraceableCell(MinimalRNNCell):
    def call(self, inputs, states):
        if states[0].abs().sum() > 1.0:  # data-dependent Python control flow
            return inputs @ self.kernel, [inputs @ self.kernel]
        return super().call(inputs, states)


def _pair(make_cell, compile_loop=AOT, **kwargs):
    """A generic and a compiled layer with the same weights."""
    generic = layers.RNN(make_cell(), **kwargs)
    compiled = layers.RNN(make_cell(), compile_loop=compile_loop, **kwargs)
    return generic, compiled


def _build_same(generic, compiled, *args, **kwargs):
    with torch.no_grad():
        generic(*args, **kwargs)
        compiled(*args, **kwargs)
    compiled.set_weights(generic.get_weights())


def _grads(layer, inputs, call_kwargs):
    leaves = [x for x in _flat(inputs)] + list(layer.parameters())
    result = layer(inputs, **call_kwargs)
    flat = _flat(result)
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in flat)
    return flat, torch.autograd.grad(loss, leaves)


def _flat(x):
    from rnnkit import tree

    return tree.flatten(x)


def _assert_same(generic, compiled, inputs, **call_kwargs):
    out_g, grads_g = _grads(generic, inputs, call_kwargs)
    out_c, grads_c = _grads(compiled, inputs, call_kwargs)
    # A plain RNN over a built-in cell runs the manual-backward kernel (itself checked against
    # the generic loop in test_kernels_manual_backward.py and test_native.py).
    assert compiled.last_kernel == "compiled"
    assert generic.last_kernel in ("generic", "manual_backward")
    assert len(out_g) == len(out_c)
    for a, b in zip([*out_g, *grads_g], [*out_c, *grads_c]):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)


def _x(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).requires_grad_(True)


@pytest.mark.parametrize(
    "options",
    [
        dict(return_sequences=True),
        dict(return_sequences=True, mask=HOLES),
        dict(return_sequences=True, mask=HOLES, zero_output_for_mask=True),
        dict(return_state=True, mask=HOLES, go_backwards=True),
        dict(return_sequences=True, return_state=True, go_backwards=True),
    ],
    ids=["plain", "holes", "holes-zero-output", "holes-backwards", "backwards"],
)
def test_minimal_cell_matches_generic(options):
    mask = options.pop("mask", None)
    generic, compiled = _pair(lambda: MinimalRNNCell(U), **options)
    x = _x(B, T, D)
    _build_same(generic, compiled, x)
    _assert_same(generic, compiled, x, mask=mask)


@pytest.mark.parametrize("mask", [None, HOLES], ids=["no-mask", "holes"])
def test_lstm_cell_matches_generic(mask):
    generic, compiled = _pair(lambda: layers.LSTMCell(U), return_sequences=True, return_state=True)
    x = _x(B, T, D)
    _build_same(generic, compiled, x)
    _assert_same(generic, compiled, x, mask=mask, training=True)
    assert "compile_loop=True" in compiled.last_kernel_choice.reason
    # initial states, and a second call with the graphs already compiled
    states = [_x(B, U, seed=1), _x(B, U, seed=2)]
    _assert_same(generic, compiled, x, mask=mask, initial_state=states)


def test_stacked_cells_match_generic():
    generic, compiled = _pair(
        lambda: [layers.GRUCell(U), MinimalRNNCell(3)], return_sequences=True, return_state=True
    )
    x = _x(B, 7, D)
    _build_same(generic, compiled, x)
    _assert_same(generic, compiled, x, mask=HOLES[:, :7])


def test_nested_inputs_states_and_constants_match_generic():
    a, b, k = _x(B, 9, 2), _x(B, 9, 3, seed=1), _x(B, 4, seed=2)
    generic, compiled = _pair(lambda: NestedCell(U), return_sequences=True, return_state=True)
    _build_same(generic, compiled, (a, b), constants=[k])
    _assert_same(generic, compiled, (a, b), constants=[k], mask=HOLES[:, :9], training=True)


def test_time_major_and_single_step():
    generic, compiled = _pair(lambda: MinimalRNNCell(U), time_major=True, return_sequences=True)
    x = _x(1, B, D)
    _build_same(generic, compiled, x)
    _assert_same(generic, compiled, x)


def test_inductor_backend_matches_generic():
    generic, compiled = _pair(lambda: MinimalRNNCell(2), compile_loop=True, return_sequences=True)
    x = _x(2, 3, 2)
    _build_same(generic, compiled, x)
    _assert_same(generic, compiled, x)
    assert "'inductor'" in compiled.last_kernel_choice.reason


def test_chunking_pads_with_masked_steps(monkeypatch):
    monkeypatch.setattr(compiled_loop, "MAX_CHUNK", 4)  # T = 11: 3 chunks of 4, one padded
    generic, compiled = _pair(lambda: MinimalRNNCell(U), return_sequences=True)
    x = _x(B, T, D)
    _build_same(generic, compiled, x)
    _assert_same(generic, compiled, x, mask=HOLES)


def test_config_round_trip():
    layer = layers.RNN(MinimalRNNCell(U), compile_loop=AOT, return_sequences=True)
    config = layer.get_config()
    assert config["compile_loop"] == AOT
    assert layers.RNN(MinimalRNNCell(U)).get_config()["compile_loop"] is False
    clone = layers.RNN.from_config(config, custom_objects={"MinimalRNNCell": MinimalRNNCell})
    assert clone.compile_options == AOT and clone.get_config()["compile_loop"] == AOT
    lstm = layers.LSTM(U, compile_loop=True)
    assert lstm.get_config()["compile_loop"] is True
    assert layers.LSTM.from_config(lstm.get_config()).compile_options == {}


def test_builtin_layer_compiles_only_what_would_run_the_loop():
    x = _x(B, T, D)
    fused = layers.LSTM(U, compile_loop=AOT)
    fused(x)
    assert fused.last_kernel == "fused"
    looped = layers.LSTM(U, compile_loop=AOT, use_cudnn=False)
    looped(x)
    assert looped.last_kernel == "compiled"


def test_shape_inference_is_not_compiled():
    layer = layers.RNN(MinimalRNNCell(U), compile_loop=AOT)
    out = layer(layers.Input((None, D)))
    assert tuple(out.shape) == (None, U)
    assert layer.last_kernel == "generic" and "not compiled" in layer.last_kernel_choice.reason


def test_refuses_builtin_dropout_in_training():
    layer = layers.RNN(layers.LSTMCell(U, recurrent_dropout=0.2), compile_loop=AOT)
    x = _x(B, T, D)
    layer(x)  # inference: no dropout, compiles
    assert layer.last_kernel == "compiled"
    with pytest.raises(ValueError, match="dropout.*while training"):
        layer(x, training=True)


def test_untraceable_cell_raises_value_error():
    layer = layers.RNN(UntraceableCell(U), compile_loop=AOT)
    with pytest.raises(ValueError, match="cannot trace the cell"):
        layer(_x(B, T, D))


@pytest.mark.parametrize("bad", ["yes", {"fullgraph": False}, 1.0])
def test_invalid_compile_argument(bad):
    with pytest.raises(ValueError, match="compile_loop must be True, False or a dict"):
        layers.RNN(MinimalRNNCell(U), compile_loop=bad)


def test_missing_compiler_is_reported(monkeypatch):
    monkeypatch.setattr(compiled_loop, "_has_cxx_compiler", lambda: False)
    layer = layers.RNN(MinimalRNNCell(U), compile_loop=True)
    with pytest.raises(ValueError, match="needs a C\\+\\+ compiler"):
        layer(_x(B, T, D))
    ok = layers.RNN(MinimalRNNCell(U), compile_loop=AOT)  # other backends need none
    ok(_x(B, T, D))
    assert ok.last_kernel == "compiled"


def test_copies_recompile():
    import copy

    layer = layers.RNN(MinimalRNNCell(U), compile_loop=AOT, return_sequences=True)
    x = _x(B, 5, D)
    expected = layer(x)
    clone = copy.deepcopy(layer)
    np.testing.assert_allclose(clone(x).detach().numpy(), expected.detach().numpy(), atol=1e-6)
    assert clone.last_kernel == "compiled" and clone._compiled_loop is not layer._compiled_loop


def test_former_compile_argument_is_deprecated_and_old_configs_still_load():
    with pytest.warns(DeprecationWarning, match="compile= is renamed compile_loop="):
        layer = layers.RNN(MinimalRNNCell(U), compile=AOT, return_sequences=True)
    assert layer.compile_options == AOT
    layer(_x(B, T, D))
    assert layer.last_kernel == "compiled"
    with pytest.raises(TypeError, match="compile_loop= only"):
        layers.RNN(MinimalRNNCell(U), compile=AOT, compile_loop=True)
    # A config saved before the rename: its "compile" key is read as compile_loop, silently.
    old = {**layer.get_config(), "compile": AOT}
    del old["compile_loop"]
    clone = layers.RNN.from_config(old, custom_objects={"MinimalRNNCell": MinimalRNNCell})
    assert clone.compile_options == AOT and "compile" not in clone.get_config()
    old_lstm = {**layers.LSTM(U).get_config(), "compile": True}
    del old_lstm["compile_loop"]
    assert layers.LSTM.from_config(old_lstm).compile_options == {}
