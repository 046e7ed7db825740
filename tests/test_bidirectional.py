"""Bidirectional: Keras 3 parity in every merge mode, states, masks, config, errors."""

import keras
import numpy as np
import pytest
import torch
from harness import run_layer_test

import rnnkit
from rnnkit import tree
from rnnkit.layers import GRU, LSTM, RNN, Bidirectional, Dense, Layer, SimpleRNN

LAYERS = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}
NUM_STATES = {"LSTM": 2, "GRU": 1, "SimpleRNN": 1}
MERGE_MODES = ["concat", "sum", "mul", "ave", None]
# Right-padded, complete, left-padded and with a hole: every kind of mask at once.
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [1, 0, 1, 1, 0]], dtype=bool)


def _keras_flat(outputs):
    if isinstance(outputs, (list, tuple)):
        return [y for x in outputs for y in _keras_flat(x)]
    return [keras.ops.convert_to_numpy(outputs)]


def _randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    layer.set_weights([0.5 * rng.standard_normal(w.shape) for w in layer.get_weights()])


# ------------------------------------------------------------------------- Keras parity
@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_keras_parity(kind, merge_mode, return_sequences, return_state):
    """Same weights, same outputs: plain, then with a mask and initial states."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5, 3)).astype("float32")
    flags = {"return_sequences": return_sequences, "return_state": return_state}
    ours = Bidirectional(LAYERS[kind](4, **flags), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(
        getattr(keras.layers, kind)(4, **flags), merge_mode=merge_mode
    )
    ours(x)
    theirs(x)
    _randomize(ours)
    theirs.set_weights(ours.get_weights())
    states = [rng.standard_normal((4, 4)).astype("float32") for _ in range(2 * NUM_STATES[kind])]
    for kwargs in ({}, {"mask": MASK, "initial_state": states}):
        expected = _keras_flat(theirs(x, **kwargs))
        ours_kwargs = tree.map_structure(torch.as_tensor, kwargs)
        got = [t.detach().numpy() for t in tree.flatten(ours(x, **ours_kwargs))]
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-5)


# ------------------------------------------------------------------------------ harness
def test_harness_concat_sequences():
    run_layer_test(
        Bidirectional,
        {"layer": LSTM(4, return_sequences=True)},
        input_shape=(2, 5, 3),
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=6,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
    )


def test_harness_no_merge_with_states():
    run_layer_test(
        Bidirectional,
        {"layer": GRU(3, return_state=True), "merge_mode": None},
        input_shape=(2, 4, 5),
        expected_output_shape=((2, 3), (2, 3), (2, 3), (2, 3)),
        expected_num_trainable_weights=6,
    )


# ------------------------------------------------------------------------ construction
def test_copies_are_named_and_flipped_and_the_template_is_not_reused():
    template = LSTM(4, return_sequences=True, name="lstm")
    layer = Bidirectional(template)
    assert layer.forward_layer is not template
    assert layer.forward_layer.name == "forward_lstm"
    assert layer.backward_layer.name == "backward_lstm"
    assert not layer.forward_layer.go_backwards and layer.backward_layer.go_backwards
    # As Keras: with return_sequences both directions output zeros at masked steps.
    assert layer.forward_layer.zero_output_for_mask and layer.backward_layer.zero_output_for_mask
    assert not Bidirectional(LSTM(4)).forward_layer.zero_output_for_mask
    layer(np.zeros((1, 2, 3), np.float32))
    assert layer.weight_paths()[0].startswith("bidirectional/forward_lstm/")
    assert layer.weight_paths()[3].startswith("bidirectional/backward_lstm/")
    assert layer.count_params() == 2 * 4 * 4 * (3 + 4 + 1)


def test_backward_output_is_re_reversed_to_input_order():
    x = torch.randn(2, 6, 3)
    layer = Bidirectional(SimpleRNN(4, return_sequences=True), merge_mode=None)
    forward, backward = layer(x)
    # The backward direction run by hand: reverse time, run forwards, reverse back.
    by_hand = SimpleRNN(4, return_sequences=True)
    by_hand(x)
    by_hand.set_weights(layer.backward_layer.get_weights())
    torch.testing.assert_close(backward, by_hand(x.flip(1)).flip(1))
    torch.testing.assert_close(forward, layer.forward_layer(x))


def test_explicit_backward_layer():
    forward = LSTM(3, return_sequences=True)
    backward = LSTM(3, activation="relu", return_sequences=True, go_backwards=True)
    layer = Bidirectional(forward, backward_layer=backward)
    assert layer.backward_layer is backward
    out = layer(np.random.rand(2, 4, 5).astype(np.float32))
    assert out.shape == (2, 4, 6)
    clone = Bidirectional.from_config(layer.get_config())
    assert clone.backward_layer.get_config() == layer.backward_layer.get_config()
    assert clone.get_config() == layer.get_config()


def test_explicit_backward_layer_is_validated():
    with pytest.raises(ValueError, match="different go_backwards.*False.*False"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3))
    with pytest.raises(ValueError, match="same return_sequences.*True.*False"):
        Bidirectional(LSTM(3, return_sequences=True), backward_layer=LSTM(3, go_backwards=True))
    with pytest.raises(ValueError, match="same return_state"):
        Bidirectional(LSTM(3, return_state=True), backward_layer=LSTM(3, go_backwards=True))


def test_weights_argument_forward_then_backward():
    x = np.random.rand(2, 4, 3).astype(np.float32)
    source = Bidirectional(GRU(5, return_sequences=True))
    expected = source(x)
    layer = Bidirectional(GRU(5, return_sequences=True), weights=source.get_weights())
    torch.testing.assert_close(layer(x), expected)


def test_config_round_trip_through_serialize():
    layer = Bidirectional(LSTM(4, return_sequences=True, name="enc"), merge_mode="ave", name="bi")
    config = rnnkit.layers.serialize(layer)
    assert config["class_name"] == "Bidirectional"
    clone = rnnkit.layers.deserialize(config)
    assert clone.name == "bi" and clone.merge_mode == "ave"
    assert clone.forward_layer.name == "forward_enc"
    assert clone.backward_layer.name == "backward_enc"
    assert clone.get_config() == layer.get_config()


def test_time_major_layers_flip_the_time_axis():
    x = torch.randn(2, 5, 3)
    batch_major = Bidirectional(SimpleRNN(4, return_sequences=True))
    expected = batch_major(x)
    time_major = Bidirectional(
        RNN(rnnkit.layers.SimpleRNNCell(4), return_sequences=True, time_major=True)
    )
    time_major(x.transpose(0, 1))
    time_major.set_weights(batch_major.get_weights())
    torch.testing.assert_close(time_major(x.transpose(0, 1)).transpose(0, 1), expected)


# ------------------------------------------------------------------------------ masks
def test_masks_pass_to_both_directions_and_out():
    x = torch.randn(4, 5, 3)
    x._keras_mask = torch.as_tensor(MASK)
    out = Bidirectional(LSTM(2, return_sequences=True))(x)
    assert torch.equal(out._keras_mask, x._keras_mask)
    # Masked steps output zeros in both halves (zero_output_for_mask forced on).
    assert torch.count_nonzero(out[~x._keras_mask]) == 0
    forward, backward, h, c, h_rev, c_rev = Bidirectional(
        LSTM(2, return_sequences=True, return_state=True), merge_mode=None
    )(x)
    assert torch.equal(forward._keras_mask, x._keras_mask)
    assert torch.equal(backward._keras_mask, x._keras_mask)
    assert all(getattr(s, "_keras_mask", None) is None for s in (h, c, h_rev, c_rev))
    last = Bidirectional(LSTM(2))(x)
    assert getattr(last, "_keras_mask", None) is None


def test_symbolic_call():
    out = Bidirectional(LSTM(4, return_sequences=True))(rnnkit.Input(shape=(None, 3)))
    assert out.shape == (None, None, 8)
    outs = Bidirectional(GRU(4, return_state=True), merge_mode="sum")(rnnkit.Input(shape=(7, 3)))
    assert [o.shape for o in outs] == [(None, 4), (None, 4), (None, 4)]


# ----------------------------------------------------------------------------- states
def test_stateful_delegates_states_and_reset_states():
    x = np.random.rand(2, 3, 4).astype(np.float32)
    layer = Bidirectional(LSTM(5, stateful=True))
    assert layer.stateful
    first = layer(x)
    states = layer.states
    assert len(states) == 4 and all(s.shape == (2, 5) for s in states)
    assert not torch.allclose(layer(x), first)  # the states carried over
    layer.reset_states()
    assert all(torch.count_nonzero(s) == 0 for s in layer.states)
    torch.testing.assert_close(layer(x), first)
    given = [np.full((2, 5), 0.1 * i, np.float32) for i in range(4)]
    layer.reset_states(given)
    for s, g in zip(layer.states, given):
        np.testing.assert_allclose(s.numpy(), g)
    with pytest.raises(ValueError, match="needs a stateful layer"):
        Bidirectional(LSTM(5)).reset_states()


def test_initial_state_is_split_in_halves():
    x = torch.randn(2, 4, 3)
    states = [torch.randn(2, 5) for _ in range(4)]
    layer = Bidirectional(LSTM(5, return_state=True), merge_mode=None)
    forward, backward, *_ = layer(x, initial_state=states)
    torch.testing.assert_close(forward, layer.forward_layer(x, initial_state=states[:2])[0])
    torch.testing.assert_close(backward, layer.backward_layer(x, initial_state=states[2:])[0])


def test_constants_pass_to_both_directions():
    @rnnkit.saving.register_keras_serializable(package="test_bidirectional")
    class ConstantCell(Layer):
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
            h = torch.tanh(inputs @ self.kernel + constants[0] @ self.constant_kernel + states[0])
            return h, [h]

    x, constant = torch.randn(2, 4, 3), torch.randn(2, 6)
    layer = Bidirectional(RNN(ConstantCell(5), return_sequences=True), merge_mode=None)
    forward, backward = layer(x, constants=[constant])
    assert layer.forward_layer.cell.constant_kernel.shape == (6, 5)
    torch.testing.assert_close(forward, layer.forward_layer(x, constants=[constant]))
    expected_backward = layer.backward_layer(x, constants=[constant]).flip(1)
    torch.testing.assert_close(backward, expected_backward)
    other = layer(x, constants=[torch.zeros(2, 6)])[0]
    assert not torch.allclose(other, forward)


# ------------------------------------------------------------------------- bad inputs
def test_unknown_merge_mode():
    with pytest.raises(
        ValueError,
        match=r"merge_mode must be one of 'concat', 'sum', 'mul', 'ave' or None, received 'max'",
    ):
        Bidirectional(LSTM(3), merge_mode="max")


def test_non_rnn_layer():
    with pytest.raises(ValueError, match=r"layer must be an RNN layer.*received Dense 'dense'"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="layer must be an RNN layer"):
        Bidirectional(torch.nn.LSTM(3, 3))
    with pytest.raises(ValueError, match="backward_layer must be an RNN layer"):
        Bidirectional(LSTM(3), backward_layer=Dense(3))


def test_bad_initial_state():
    layer = Bidirectional(LSTM(3), name="bi")
    x = torch.zeros(2, 4, 5)
    with pytest.raises(ValueError, match=r"'bi'.*even count.*received 3 states"):
        layer(x, initial_state=[torch.zeros(2, 3)] * 3)
    with pytest.raises(ValueError, match="initial_state must be a list"):
        layer(x, initial_state=torch.zeros(2, 3))
    with pytest.raises(
        ValueError, match=r"'bi'.*initial_state\[1\] has shape \(2, 4\), expected \(2, 3\)"
    ):
        layer(x, initial_state=[torch.zeros(2, 3), torch.zeros(2, 4)] * 2)


# ------------------------------------------------------- both directions in one fused call
# One run of valid steps per row (right and left padding, an empty row): the fused kernel's masks.
PADDED = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
ONE_CALL_KINDS = {
    "LSTM": lambda **kw: LSTM(3, **kw),
    "GRU": lambda **kw: GRU(3, **kw),
    "SimpleRNN_relu": lambda **kw: SimpleRNN(3, activation="relu", **kw),
}


def _one_call_pair(kind, merge_mode, **kwargs):
    """The same Bidirectional twice: on the default kernels and on the generic loop."""
    x = np.random.default_rng(1).standard_normal((4, 5, 2)).astype("float32")
    # A GRU asks for the fused kernel: with "auto" a GRU on CPU runs the native loop.
    ask = {"use_cudnn": True} if kind == "GRU" else {}
    fast = Bidirectional(ONE_CALL_KINDS[kind](**ask, **kwargs), merge_mode=merge_mode)
    slow = Bidirectional(ONE_CALL_KINDS[kind](use_cudnn=False, **kwargs), merge_mode=merge_mode)
    fast(x), slow(x)
    _randomize(fast)
    slow.set_weights(fast.get_weights())
    return fast, slow, torch.as_tensor(x)


@pytest.mark.parametrize("kind", sorted(ONE_CALL_KINDS))
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_one_fused_call_equals_the_generic_loop(kind, merge_mode, return_sequences):
    fast, slow, x = _one_call_pair(
        kind, merge_mode, return_sequences=return_sequences, return_state=True
    )
    n = NUM_STATES[kind.split("_")[0]]
    h0 = [torch.randn(4, 3) for _ in range(2 * n)]
    for mask, initial_state in ((None, None), (PADDED, None), (PADDED, h0)):
        x_fast = x.clone().requires_grad_(True)
        x_slow = x.clone().requires_grad_(True)
        ours = fast(x_fast, mask=mask, initial_state=initial_state)
        assert fast.last_kernel == "fused", fast.last_kernel_choice
        assert fast.last_kernel_choice.one_call
        reference = slow(x_slow, mask=mask, initial_state=initial_state)
        assert slow.last_kernel == "generic" and not slow.last_kernel_choice.one_call
        flat_ours, flat_ref = tree.flatten(ours), tree.flatten(reference)
        assert len(flat_ours) == len(flat_ref)
        for a, b in zip(flat_ours, flat_ref):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        # gradients of inputs and of every weight
        weights = [
            (sum((o * o).sum() for o in f), m) for f, m in ((flat_ours, fast), (flat_ref, slow))
        ]
        grads = [torch.autograd.grad(loss, [xi, *m.trainable_weights]) for (loss, m), xi in
                 zip(weights, (x_fast, x_slow))]  # fmt: skip
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_one_fused_call_matches_keras_with_a_padded_mask():
    x = np.random.default_rng(2).standard_normal((4, 5, 2)).astype("float32")
    ours = Bidirectional(LSTM(3, return_sequences=True, return_state=True))
    theirs = keras.layers.Bidirectional(
        keras.layers.LSTM(3, return_sequences=True, return_state=True)
    )
    ours(x), theirs(x)
    _randomize(ours)
    theirs.set_weights(ours.get_weights())
    mask = np.array([*PADDED[:3].tolist(), [1, 1, 0, 0, 0]], bool)
    got = ours(x, mask=mask)
    assert ours.last_kernel == "fused" and ours.last_kernel_choice.one_call
    expected = theirs(x, mask=mask)
    for a, b in zip(tree.flatten(got), _keras_flat(expected)):
        np.testing.assert_allclose(a.detach().numpy(), b, atol=1e-5)


@pytest.mark.parametrize(
    "make, call, words",
    [
        (lambda: Bidirectional(LSTM(3, stateful=True)), {}, "stateful"),
        (lambda: Bidirectional(LSTM(3, dropout=0.5)), {"training": True}, "dropout"),
        (lambda: Bidirectional(LSTM(3)), {"mask": MASK}, "holes"),
        (lambda: Bidirectional(LSTM(3, activation="relu")), {}, "activation"),
        (lambda: Bidirectional(LSTM(3), backward_layer=GRU(3, go_backwards=True)), {}, "type"),
        (lambda: Bidirectional(LSTM(3, use_cudnn=False)), {}, "use_cudnn=False"),
    ],
)
def test_one_fused_call_is_refused_with_a_reason(make, call, words):
    layer = make()
    x = np.random.default_rng(3).standard_normal((4, 5, 2)).astype("float32")
    layer(x, **call)
    assert not layer.last_kernel_choice.one_call
    assert layer.last_kernel == "/".join(
        dict.fromkeys([layer.forward_layer.last_kernel, layer.backward_layer.last_kernel])
    )
    assert words in layer.last_kernel_choice.reason
