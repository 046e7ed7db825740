"""The RNN layer: harness, RNN(cell) == layer, gradients, statefulness, nesting, constants."""

import collections

import numpy as np
import pytest
import torch
from harness import run_layer_test

import rnnkit
from rnnkit import layers
from rnnkit.saving import register_keras_serializable

RNG = np.random.default_rng(1)
X = RNG.standard_normal((2, 4, 3)).astype("float32")


# ----------------------------------------------------------------------- the harness
@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (layers.SimpleRNN, {"units": 3}),
        (layers.LSTM, {"units": 3, "return_sequences": True}),
        (layers.GRU, {"units": 3, "return_state": True}),
        (layers.GRU, {"units": 3, "reset_after": False, "go_backwards": True}),
        (layers.LSTM, {"units": 2, "dropout": 0.2, "recurrent_dropout": 0.3, "seed": 1}),
    ],
)
def test_harness_layers(cls, kwargs):
    n_weights = 2 if kwargs.get("use_bias") is False else 3
    run_layer_test(
        cls,
        kwargs,
        input_shape=(2, 4, 3),
        expected_num_trainable_weights=n_weights,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
    )


@pytest.mark.parametrize("cell_cls", [layers.SimpleRNNCell, layers.LSTMCell, layers.GRUCell])
def test_harness_cells_through_rnn(cell_cls):
    run_layer_test(
        layers.RNN,
        {"cell": cell_cls(3), "return_sequences": True},
        input_shape=(2, 4, 3),
        expected_output_shape=(2, 4, 3),
        expected_num_trainable_weights=3,
    )


def test_harness_stacked_cells():
    run_layer_test(
        layers.RNN,
        {"cell": [layers.LSTMCell(3), layers.GRUCell(2)], "return_state": True},
        input_shape=(2, 4, 3),
        expected_output_shape=((2, 2), [(2, 3), (2, 3)], [(2, 2)]),
        expected_num_trainable_weights=6,
    )


# ---------------------------------------------------------------- RNN(cell) == layer
@pytest.mark.parametrize(
    "cell_cls, layer_cls",
    [
        (layers.LSTMCell, layers.LSTM),
        (layers.GRUCell, layers.GRU),
        (layers.SimpleRNNCell, layers.SimpleRNN),
    ],
)
def test_rnn_of_cell_equals_layer(cell_cls, layer_cls):
    generic = layers.RNN(cell_cls(4), return_sequences=True, return_state=True)
    builtin = layer_cls(4, return_sequences=True, return_state=True, use_cudnn=False)
    auto = layer_cls(4, return_sequences=True, return_state=True)
    generic(X)
    builtin(X)
    auto(X)
    builtin.set_weights(generic.get_weights())
    auto.set_weights(generic.get_weights())
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], bool)
    for m in (None, mask):
        for a, b, c in zip(
            rnnkit.tree.flatten(generic(X, mask=m)),
            rnnkit.tree.flatten(builtin(X, mask=m)),
            rnnkit.tree.flatten(auto(X, mask=m)),
        ):
            # RNN(cell) runs the manual-backward kernel, the layer with use_cudnn=False the
            # generic loop, `auto` the fused or manual-backward kernel: equal up to rounding.
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
            torch.testing.assert_close(a, c, rtol=0, atol=1e-6)
    assert builtin.last_kernel == "generic" and generic.last_kernel == "manual_backward"
    # The last call had a mask with a hole: the fused kernel cannot run it (the reason says
    # so); the manual-backward kernel did. (A GRU on CPU always runs the native loop.)
    gru = layer_cls is layers.GRU
    assert auto.last_kernel == "manual_backward" and "holes" in auto.last_kernel_choice.reason
    auto(X)
    assert auto.last_kernel == ("manual_backward" if gru else "fused")


def test_hand_written_loop_reference():
    """The RNN layer equals a per-step loop over the same cell (Flax-style oracle test)."""
    cell = layers.LSTMCell(3)
    layer = layers.RNN(cell, return_sequences=True)
    out = layer(X)
    h = c = torch.zeros(2, 3)
    xs = torch.as_tensor(X)
    for t in range(4):
        step_out, (h, c) = cell(xs[:, t], [h, c])
        torch.testing.assert_close(out[:, t], step_out)


def test_lstm_golden_values_from_constant_initialisers():
    layer = layers.LSTM(
        2,
        kernel_initializer="ones",
        recurrent_initializer="zeros",
        bias_initializer="zeros",
        unit_forget_bias=False,
    )
    out = layer(np.ones((1, 2, 1), "float32")).detach().numpy()
    sig, tanh = (lambda v: 1 / (1 + np.exp(-v))), np.tanh
    c1 = sig(1) * tanh(1)
    h1 = sig(1) * tanh(c1)
    c2 = sig(1) * c1 + sig(1) * tanh(1)
    h2 = sig(1) * tanh(c2)
    assert h1 != h2
    np.testing.assert_allclose(out, [[h2, h2]], atol=1e-6)


# ------------------------------------------------------------------------ gradients
@pytest.mark.parametrize(
    "cell",
    [
        lambda: layers.SimpleRNNCell(3, dtype="float64"),
        lambda: layers.LSTMCell(3, dtype="float64"),
        lambda: layers.GRUCell(3, dtype="float64"),
        lambda: layers.GRUCell(3, reset_after=False, dtype="float64"),
    ],
)
def test_gradcheck_through_rnn_with_mask(cell):
    layer = layers.RNN(cell(), return_sequences=True, return_state=True, dtype="float64")
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 0, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    layer(x, mask=mask)
    names = _param_names(layer)
    weights = [p.detach().clone().requires_grad_(True) for p in layer.weights]

    def run(inp, *ws):
        outputs = torch.func.functional_call(layer, dict(zip(names, ws)), (inp,), {"mask": mask})
        return tuple(rnnkit.tree.flatten(outputs))

    assert torch.autograd.gradcheck(run, (x, *weights), eps=1e-6, atol=1e-5)


def _param_names(layer):
    ids = {id(p): n for n, p in layer.named_parameters()}
    return [ids[id(p)] for p in layer.weights]


# ------------------------------------------------------------------------- stateful
def test_stateful_chunks_equal_one_pass_and_reset():
    x = RNG.standard_normal((4, 9, 5)).astype("float32")
    full = layers.LSTM(64, return_sequences=True)
    stateful = layers.LSTM(64, stateful=True, return_sequences=True)
    full(x)
    stateful(x[:, :3])
    stateful.set_weights(full.get_weights())
    stateful.reset_states()
    chunks = [stateful(x[:, i : i + 3]) for i in (0, 3, 6)]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full(x))
    assert all(not s.requires_grad for s in stateful.states)
    assert stateful.states[0].shape == (4, 64) and len(stateful.states) == 2
    assert stateful.weights == list(stateful.parameters())  # states are not weights
    stateful.reset_states()
    torch.testing.assert_close(stateful(x[:, :3]), full(x[:, :3]))


def test_states_continue_in_another_layer():
    x = RNG.standard_normal((3, 6, 5)).astype("float32")
    stateful = layers.LSTM(64, stateful=True)
    stateful(x[:, :3])
    follower = layers.LSTM(64)
    follower(x[:, 3:])
    follower.set_weights(stateful.get_weights())
    continued = follower(x[:, 3:], initial_state=stateful.states)
    torch.testing.assert_close(continued, stateful(x[:, 3:]))


def test_reset_states_with_arrays_and_validation():
    layer = layers.GRU(2, stateful=True)
    layer(X)
    value = np.full((2, 2), 0.5, "float32")
    layer.reset_states(states=[value])
    np.testing.assert_array_equal(layer.states[0].numpy(), value)
    reference = layers.GRU(2)
    reference(X)
    reference.set_weights(layer.get_weights())
    torch.testing.assert_close(layer(X), reference(X, initial_state=[value]))
    with pytest.raises(ValueError, match=r"states\[0\] has shape \(3, 2\), expected \(2, 2\)"):
        layer.reset_states(states=[np.zeros((3, 2))])
    with pytest.raises(ValueError, match="batch size"):
        layer(np.zeros((5, 4, 3), "float32"))


def test_symbolic_call_leaves_stored_states_alone():
    layer = layers.LSTM(3, stateful=True)
    layer(X)
    before = [s.clone() for s in layer.states]
    sym = layer(rnnkit.Input(batch_shape=(None, 4, 3)))
    assert sym.shape == (None, 3)
    for a, b in zip(before, layer.states):
        torch.testing.assert_close(a, b)


# -------------------------------------------------------------------- masks & layout
def test_keras_mask_on_inputs_is_used_and_compute_mask():
    x = torch.as_tensor(X)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    x._keras_mask = mask
    layer = layers.GRU(2, return_sequences=True, return_state=True)
    out, h = layer(x)
    explicit, h2 = layer(torch.as_tensor(X), mask=mask)
    torch.testing.assert_close(out, explicit)
    assert out._keras_mask is mask and getattr(h, "_keras_mask", None) is None
    torch.testing.assert_close(out[0, 2], out[0, 1])  # masked steps repeat the last output
    assert layer.compute_mask(x, mask) == [mask, None]
    assert layers.LSTM(2, return_state=True).compute_mask(x, mask) == [None, None, None]


def test_time_major_transposes():
    batch_major = layers.LSTM(3, return_sequences=True, return_state=True)
    time_major = layers.LSTM(3, return_sequences=True, return_state=True, time_major=True)
    xt = np.ascontiguousarray(X.transpose(1, 0, 2))
    batch_major(X)
    time_major(xt)
    time_major.set_weights(batch_major.get_weights())
    mask = np.array([[1, 0, 1, 1], [1, 1, 1, 0]], bool)
    seq_b, *states_b = batch_major(X, mask=mask)
    seq_t, *states_t = time_major(xt, mask=mask.T)
    torch.testing.assert_close(seq_t.transpose(0, 1), seq_b)
    for a, b in zip(states_t, states_b):
        torch.testing.assert_close(a, b)


# ----------------------------------------------------------------- dropout behaviour
class _Probe(layers.LSTMCell):
    """Records the dropout masks used at each step."""

    def call(self, inputs, states, training=None):
        self.seen.append(
            (self.get_dropout_mask(inputs), self.get_recurrent_dropout_mask(states[0]))
        )
        return super().call(inputs, states, training=training)


def test_dropout_masks_are_variational_fresh_and_training_only():
    cell = _Probe(3, dropout=0.5, recurrent_dropout=0.5)
    layer = layers.RNN(cell)
    cell.seen = []
    inference = layer(X)
    torch.testing.assert_close(inference, layer(X))  # no dropout without training
    cell.seen = []
    layer(X, training=True)
    first = cell.seen
    assert len(first) == 4
    assert all(m[0] is first[0][0] and m[1] is first[0][1] for m in first)
    assert set(torch.unique(first[0][0]).tolist()) <= {0.0, 2.0}
    cell.seen = []
    layer(X, training=True)
    assert not torch.equal(cell.seen[0][0], first[0][0])  # fresh masks per call
    assert cell._dropout_mask is None and cell._recurrent_dropout_mask is None


def test_module_train_mode_enables_dropout():
    layer = layers.SimpleRNN(8, dropout=0.5, return_sequences=True)
    a = layer(X)
    layer.train()
    assert not torch.allclose(a, layer(X))
    layer.eval()
    torch.testing.assert_close(a, layer(X))


# ------------------------------------------------------------- custom & nested cells
@register_keras_serializable(package="test_rnn")
class ConstantsCell(layers.Layer):
    """A tf.keras-style cell with constants: build gets [step_shape, constant_shape]."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        step_shape, constant_shape = input_shape
        self.kernel = self.add_weight(shape=(step_shape[-1], self.units), name="kernel")
        self.constant_kernel = self.add_weight(
            shape=(constant_shape[-1], self.units), name="constant_kernel"
        )

    def call(self, inputs, states, constants):
        h = inputs @ self.kernel + constants[0] @ self.constant_kernel + states[0]
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_constants_reach_the_cell():
    cell = ConstantsCell(2)
    layer = layers.RNN(cell)
    const = RNG.standard_normal((2, 6)).astype("float32")
    out = layer(X, constants=[const])
    expected = torch.zeros(2, 2)
    xs, cs = torch.as_tensor(X), torch.as_tensor(const)
    for t in range(4):
        expected = xs[:, t] @ cell.kernel + cs @ cell.constant_kernel + expected
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(layer(X, constants=[const * 2]), out)


@register_keras_serializable(package="test_rnn")
class NestedCell(layers.Layer):
    """Seed 000's NestedCell with torch ops."""

    def __init__(self, unit_1, unit_2, unit_3, **kwargs):
        self.unit_1, self.unit_2, self.unit_3 = unit_1, unit_2, unit_3
        self.state_size = [(unit_1,), (unit_2, unit_3)]
        self.output_size = [(unit_1,), (unit_2, unit_3)]
        super().__init__(**kwargs)

    def build(self, input_shapes):
        self.built_with = input_shapes
        i1 = input_shapes[0][1]
        i2, i3 = input_shapes[1][1], input_shapes[1][2]
        self.kernel_1 = self.add_weight(
            shape=(i1, self.unit_1), initializer="uniform", name="kernel_1"
        )
        self.kernel_2_3 = self.add_weight(
            shape=(i2, i3, self.unit_2, self.unit_3), initializer="uniform", name="kernel_2_3"
        )

    def call(self, inputs, states):
        input_1, input_2 = rnnkit.tree.flatten(inputs)
        s1, s2 = states
        output_1 = input_1 @ self.kernel_1
        output_2_3 = torch.einsum("bij,ijkl->bkl", input_2, self.kernel_2_3)
        return (output_1, output_2_3), (s1 + output_1, s2 + output_2_3)

    def get_config(self):
        return {"unit_1": self.unit_1, "unit_2": self.unit_2, "unit_3": self.unit_3}


def test_guide_nested_cell_eager_and_symbolic():
    cell = NestedCell(10, 20, 30)
    rnn = layers.RNN(cell, return_state=True)
    x1 = torch.rand(4, 3, 32)
    x2 = torch.rand(4, 3, 64, 32)
    (o1, o23), s1, s2 = rnn([x1, x2])
    assert o1.shape == (4, 10) and o23.shape == (4, 20, 30)
    assert s1.shape == (4, 10) and s2.shape == (4, 20, 30)
    assert cell.built_with == [(4, 32), (4, 64, 32)]
    # The states accumulate the outputs: after 3 steps s = sum of the per-step outputs.
    expected_s1 = (x1 @ cell.kernel_1).sum(dim=1)
    torch.testing.assert_close(s1, expected_s1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(o1, x1[:, -1] @ cell.kernel_1)
    in_1 = rnnkit.Input((None, 32))
    in_2 = rnnkit.Input((None, 64, 32))
    outputs = layers.RNN(NestedCell(10, 20, 30))((in_1, in_2))
    assert [t.shape for t in rnnkit.tree.flatten(outputs)] == [(None, 10), (None, 20, 30)]


NestedInput = collections.namedtuple("NestedInput", ["feature1", "feature2"])
NestedState = collections.namedtuple("NestedState", ["state1", "state2"])


class NamedNestedCell(layers.Layer):
    """Seed 001's namedtuple variant (build receives a NestedInput of shapes)."""

    def __init__(self, unit_1, unit_2, unit_3, **kwargs):
        self.unit_1, self.unit_2, self.unit_3 = unit_1, unit_2, unit_3
        self.state_size = NestedState(state1=unit_1, state2=torch.Size([unit_2, unit_3]))
        self.output_size = (unit_1, torch.Size([unit_2, unit_3]))
        super().__init__(**kwargs)

    def build(self, input_shapes):
        self.built_with = input_shapes
        self.kernel_1 = self.add_weight(shape=(input_shapes.feature1[1], self.unit_1), name="k1")
        i2, i3 = input_shapes.feature2[1:]
        self.kernel_2_3 = self.add_weight(shape=(i2, i3, self.unit_2, self.unit_3), name="k23")

    def call(self, inputs, states):
        input_1, input_2 = rnnkit.tree.flatten(inputs)
        s1, s2 = states
        output_1 = input_1 @ self.kernel_1
        output_2_3 = torch.einsum("bij,ijkl->bkl", input_2, self.kernel_2_3)
        return [output_1, output_2_3], NestedState(state1=s1 + output_1, state2=s2 + output_2_3)


def test_guide_namedtuple_cell():
    cell = NamedNestedCell(3, 4, 5)
    out = layers.RNN(cell, return_sequences=True)(
        NestedInput(feature1=torch.rand(2, 3, 6), feature2=torch.rand(2, 3, 7, 8))
    )
    assert isinstance(cell.built_with, NestedInput)
    assert cell.built_with.feature2 == (2, 7, 8)
    assert [tuple(o.shape) for o in out] == [(2, 3, 3), (2, 3, 4, 5)]


class TfKerasInitialStateCell(layers.Layer):
    """A cell with the tf.keras get_initial_state(inputs, batch_size, dtype) form."""

    state_size = 2

    def get_initial_state(self, inputs=None, batch_size=None, dtype=None):
        assert inputs is not None
        return [torch.ones(batch_size, 2, dtype=dtype)]

    def call(self, inputs, states):
        h = states[0] + inputs.sum(dim=-1, keepdim=True)
        return h, [h]


def test_tf_keras_get_initial_state_form():
    out = layers.RNN(TfKerasInitialStateCell())(X)
    expected = 1 + torch.as_tensor(X).sum(dim=(1, 2))[:, None].expand(2, 2)
    torch.testing.assert_close(out, expected)


def test_dispatch_records_the_kernel_and_use_cudnn_true_raises():
    layer = layers.LSTM(2)
    layer(X)
    assert layer.last_kernel == "fused"
    assert "auto" in layer.last_kernel_choice.reason
    assert layer.kernel_plan(torch.as_tensor(X)).name == "fused"
    assert layers.GRU(2, use_cudnn=True)(X).shape == (2, 2)
    with pytest.raises(ValueError, match="use_cudnn=True.*reset_after=False"):
        layers.GRU(2, use_cudnn=True, reset_after=False)(X)
    no_cudnn = layers.GRU(2, use_cudnn=False)
    assert no_cudnn(X).shape == (2, 2) and no_cudnn.last_kernel == "generic"


def test_config_round_trip_and_properties():
    layer = layers.GRU(5, reset_after=False, dropout=0.1, go_backwards=True, use_cudnn=False)
    config = layer.get_config()
    assert config["reset_after"] is False and config["units"] == 5
    assert config["use_cudnn"] is False and config["go_backwards"] is True
    clone = rnnkit.layers.deserialize(rnnkit.layers.serialize(layer))
    assert clone.get_config() == config
    assert (layer.units, layer.dropout, layer.reset_after) == (5, 0.1, False)
    rnn = layers.RNN(ConstantsCell(3), stateful=True, time_major=True)
    assert layers.RNN.from_config(rnn.get_config()).get_config() == rnn.get_config()


class MinimalRNNCell(layers.Layer):
    """Seed 003's MinimalRNNCell (no output_size, no get_initial_state)."""

    def __init__(self, units, **kwargs):
        self.units = units
        self.state_size = units
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer="uniform", name="recurrent_kernel"
        )

    def call(self, inputs, states):
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]


def test_seed_003_minimal_cell_single_and_stacked():
    x = rnnkit.Input((None, 5))
    assert layers.RNN(MinimalRNNCell(32))(x).shape == (None, 32)
    stacked = layers.RNN([MinimalRNNCell(32), MinimalRNNCell(64)])
    assert stacked(x).shape == (None, 64)
    assert [tuple(w.shape) for w in stacked.weights] == [(5, 32), (32, 32), (32, 64), (64, 64)]
    data = torch.rand(2, 3, 5)
    cells = stacked.cell.cells
    h1, h2 = torch.zeros(2, 32), torch.zeros(2, 64)
    for t in range(3):
        h1 = data[:, t] @ cells[0].kernel + h1 @ cells[0].recurrent_kernel
        h2 = h1 @ cells[1].kernel + h2 @ cells[1].recurrent_kernel
    torch.testing.assert_close(stacked(data), h2)


def test_guide_encoder_decoder_symbolic_initial_state():
    encoder_input = rnnkit.Input((None, 8))
    output, state_h, state_c = layers.LSTM(6, return_state=True, name="encoder")(encoder_input)
    assert output.shape == state_h.shape == state_c.shape == (None, 6)
    decoder = layers.LSTM(6, name="decoder")
    decoded = decoder(rnnkit.Input((None, 8)), initial_state=[state_h, state_c])
    assert decoded.shape == (None, 6)
    assert decoder.count_params() == 4 * (8 * 6 + 6 * 6 + 6)


def test_activity_regularizer_adds_a_loss():
    layer = layers.SimpleRNN(3, activity_regularizer="l2")
    out = layer(X)
    (loss,) = [v for v in layer.losses if v.dim() == 0]
    torch.testing.assert_close(loss, 0.01 * (out**2).sum())


def test_layer_get_initial_state():
    h, c = layers.LSTM(3).get_initial_state(batch_size=2)
    assert h.shape == c.shape == (2, 3) and not h.any()
    stacked = layers.RNN([layers.GRUCell(2), layers.LSTMCell(4)])
    assert [[tuple(t.shape) for t in s] for s in stacked.get_initial_state(5)] == [
        [(5, 2)],
        [(5, 4), (5, 4)],
    ]


class _PlainObjectCell:
    """A cell that is neither a Layer nor a torch Module: ``call`` and ``state_size`` only."""

    state_size = 3

    def __init__(self) -> None:
        self.weight = torch.nn.Parameter(torch.full((5, 3), 0.1))

    def call(self, inputs, states):
        h = torch.tanh(inputs @ self.weight + states[0])
        return h, [h]


def test_a_cell_that_is_not_a_module_runs_call_after_call():
    """The layer finds its cell in the instance dict when it is not a submodule (the
    kernel request, asked at every call, reads it past Module.__getattr__)."""
    cell = _PlainObjectCell()
    layer = layers.RNN(cell, return_sequences=True)
    x = torch.randn(2, 4, 5)
    first, second = layer(x), layer(x)
    torch.testing.assert_close(first, second)
    expected, h = [], torch.zeros(2, 3)
    for t in range(4):
        h = torch.tanh(x[:, t] @ cell.weight + h)
        expected.append(h)
    torch.testing.assert_close(first, torch.stack(expected, 1))
    assert layer.cell is cell
