"""What Keras 3.15's own unit tests for the recurrent and core layers check (read from
keras/src/layers/rnn/*_test.py and core/*_test.py), rewritten here against rnnkit, with real
Keras as the oracle where values matter. Quantization, LoRA, TensorFlow, sparse tensors and
CUDA-only cases are left out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers


class _OneState(layers.Layer):
    """A minimal cell with one state; ``state_size`` as given (int, [int] or (int,))."""

    def __init__(self, units, state_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = state_size if state_size is not None else units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="ones")

    def call(self, inputs, states):
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]


class _TwoStates(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones")
        self.k1 = self.add_weight(shape=(self.units, self.units), initializer="ones")
        self.k2 = self.add_weight(shape=(self.units, self.units), initializer="ones")

    def call(self, inputs, states):
        h = inputs @ self.kernel
        first, second = h + states[0] @ self.k1, h + states[0] @ self.k2
        return first + second, [first, second]


# ----------------------------------------------------------------------------- RNN
@pytest.mark.parametrize("state_size", [5, [5], (5,)])
def test_rnn_accepts_every_state_size_spelling(state_size):
    layer = layers.RNN(_OneState(5, state_size=state_size))
    out = layer(np.ones((3, 2, 4), dtype="float32"))
    assert tuple(out.shape) == (3, 5) and len(layer.trainable_weights) == 2
    # all-ones weights: h1 = 4, h2 = 4 + 5 * 4 = 24
    np.testing.assert_allclose(out.detach().numpy(), np.full((3, 5), 24.0))


@pytest.mark.parametrize("cell", [_OneState, _TwoStates])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_rnn_compute_output_shape_keeps_unknown_sizes(cell, return_sequences, return_state):
    layer = layers.RNN(cell(8), return_sequences=return_sequences, return_state=return_state)
    shape = layer.compute_output_shape((None, None, 3))
    output = (None, None, 8) if return_sequences else (None, 8)
    states = [(None, 8)] * (2 if cell is _TwoStates else 1)
    assert shape == (tuple([output, *states]) if return_state else output)


def test_stateful_rnn_refuses_another_batch_size():
    inputs = rnnkit.Input((5, 3), batch_size=4)
    model = rnnkit.Model(inputs, layers.RNN(_TwoStates(2), stateful=True)(inputs))
    model(np.ones((4, 5, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"expects shape \(4, 5, 3\)"):
        model(np.ones((1, 5, 3), dtype="float32"))
    layer = layers.LSTM(2, stateful=True)
    layer(np.ones((4, 5, 3), dtype="float32"))
    with pytest.raises(ValueError, match="batch size"):
        layer(np.ones((1, 5, 3), dtype="float32"))


# --------------------------------------------------------------------- LSTM / GRU
def test_gru_config_with_keras2_implementation_matches_keras():
    import keras

    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    kwargs = dict(
        kernel_initializer=rnnkit.initializers.Constant(0.01),
        recurrent_initializer=rnnkit.initializers.Constant(0.02),
        bias_initializer=rnnkit.initializers.Constant(0.03),
    )
    config = layers.GRU(3, **kwargs).get_config()
    config["implementation"] = 0
    ours = layers.GRU.from_config(config)(sequence).detach().numpy()
    theirs = keras.layers.GRU(
        3,
        kernel_initializer=keras.initializers.Constant(0.01),
        recurrent_initializer=keras.initializers.Constant(0.02),
        bias_initializer=keras.initializers.Constant(0.03),
        implementation=1,
    )(sequence)
    np.testing.assert_allclose(ours, np.asarray(theirs.detach().cpu()), atol=1e-6)


# ------------------------------------------------------------------- Bidirectional
@pytest.mark.parametrize("merge_mode", ["ave", "concat", "mul", "sum", None])
@pytest.mark.parametrize("return_state", [False, True])
def test_bidirectional_compute_output_shape_matches_the_call(merge_mode, return_state):
    x = np.array([[[101, 202], [303, 404]]])  # integers, as in Keras' test
    layer = layers.Bidirectional(layers.LSTM(2, return_state=return_state), merge_mode=merge_mode)
    outputs = layer(x)
    shapes = layer.compute_output_shape(x.shape)
    if not isinstance(outputs, (list, tuple)):
        outputs, shapes = [outputs], [shapes]
    assert [tuple(o.shape) for o in outputs] == [tuple(s) for s in shapes]


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU])
@pytest.mark.parametrize("use_cudnn", [True, False, "auto"])
def test_bidirectional_keeps_use_cudnn(cls, use_cudnn):
    bidi = layers.Bidirectional(cls(1, use_cudnn=use_cudnn))
    assert bidi.forward_layer.use_cudnn == use_cudnn
    assert bidi.backward_layer.use_cudnn == use_cudnn


def test_bidirectional_with_explicit_backward_layer_and_sum():
    bidi = layers.Bidirectional(
        layers.SimpleRNN(4), backward_layer=layers.SimpleRNN(4, go_backwards=True), merge_mode="sum"
    )
    out = bidi(np.ones((3, 2, 4), dtype="float32"))
    assert tuple(out.shape) == (3, 4) and len(bidi.trainable_weights) == 6
    assert bidi.supports_masking


# ---------------------------------------------------------------- TimeDistributed
def test_time_distributed_matches_keras_golden_values():
    sequence = np.arange(24).reshape((3, 2, 4)).astype("float32")
    dense = layers.Dense(1, use_bias=False, kernel_initializer=rnnkit.initializers.Constant(0.01))
    out = layers.TimeDistributed(dense)(sequence)
    expected = [[[0.06], [0.22]], [[0.38], [0.54]], [[0.7], [0.86]]]
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-6)


@pytest.mark.parametrize(
    "mask_shape, ok",
    [((4, 5), True), ((4, 5, 2), True), ((4, 6), False), ((3, 5), False), ((3, 6), False)],
)
def test_time_distributed_checks_the_mask_shape(mask_shape, ok):
    td = layers.TimeDistributed(layers.Dense(5, activation="softmax"))
    x = np.zeros((4, 5, 3), dtype="float32")
    assert tuple(td(x, mask=None).shape) == (4, 5, 5)
    if ok:
        assert tuple(td(x, mask=np.ones(mask_shape, dtype=bool)).shape) == (4, 5, 5)
    else:
        with pytest.raises(ValueError, match=r"TimeDistributed 'time_distributed': mask must"):
            td(x, mask=np.ones(mask_shape, dtype=bool))


# ------------------------------------------------------------------- Dense / Masking
@pytest.mark.parametrize("activation, expected", [(None, [[5.0, -6.0]]), ("relu", [[5.0, 0.0]])])
def test_dense_golden_values_without_bias(activation, expected):
    layer = layers.Dense(2, use_bias=False, activation=activation)
    layer.build((1, 2))
    layer.set_weights([np.array([[1.0, -2.0], [3.0, -4.0]])])
    assert layer.bias is None
    np.testing.assert_allclose(layer(np.array([[-1.0, 2.0]])).detach().numpy(), expected)


@pytest.mark.parametrize("units", [0, -1, 2.5, "3", None])
def test_dense_units_must_be_a_positive_integer(units):
    with pytest.raises(ValueError, match="units must be a positive integer"):
        layers.Dense(units)


def test_masking_model_saves_and_reloads(tmp_path):
    x = np.array([[[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 1.0], [0.0, 0.0]]])
    model = rnnkit.Sequential([layers.Masking(mask_value=0.0), layers.LSTM(1)])
    expected = model(x).detach().numpy()
    model.save(tmp_path / "m.keras")
    reloaded = rnnkit.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(x).detach().numpy(), expected, atol=1e-6)


def test_masking_matches_keras_on_a_padded_batch():
    import keras

    x = np.array([[[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]]], dtype="float32")
    ours = layers.Masking(0.0)
    out = ours(x)
    theirs = keras.layers.Masking(0.0)(x)
    np.testing.assert_allclose(out.numpy(), np.asarray(theirs.cpu()))
    np.testing.assert_array_equal(out._keras_mask.numpy(), [[True, False, True]])
    assert torch.equal(ours.compute_mask(x), out._keras_mask)


# ------------------------------------------------------------------ StackedRNNCells
def test_stacked_cells_return_nested_states_and_their_shapes():
    layer = layers.RNN([layers.LSTMCell(10), layers.LSTMCell(10)], return_state=True)
    output, first, second = layer(np.zeros((2, 3, 5)))
    assert tuple(output.shape) == (2, 10)
    assert [tuple(s.shape) for s in (*first, *second)] == [(2, 10)] * 4
    shape = layer.compute_output_shape((2, 3, 5))
    assert shape[0] == (2, 10) and [tuple(s) for s in (*shape[1], *shape[2])] == [(2, 10)] * 4


def test_stacked_cells_with_a_mask_match_keras():
    import keras

    sequence, mask = np.ones((2, 3, 4)), np.array([[True, True, True], [True, True, False]])
    kwargs = dict(units=1, kernel_initializer="ones", recurrent_initializer="ones")
    ours = layers.RNN([layers.LSTMCell(**kwargs) for _ in range(2)])(sequence, mask=mask)
    theirs = keras.layers.RNN([keras.layers.LSTMCell(**kwargs) for _ in range(2)])(
        sequence, mask=mask
    )
    np.testing.assert_allclose(ours.detach().numpy(), np.asarray(theirs.detach().cpu()), atol=1e-6)
    np.testing.assert_allclose(ours.detach().numpy(), [[0.7793], [0.5998]], atol=1e-4)


@pytest.mark.parametrize(
    "go_backwards, expected",
    [
        (False, [[0.23774096, 0.33508456], [0.83659905, 1.0227708]]),
        (True, [[0.13486053, 0.23261218], [0.78257304, 0.9691353]]),
    ],
)
def test_gru_initial_state_as_one_array_and_return_state_golden(go_backwards, expected):
    """Keras' golden values from constant initialisers; the state equals the output."""
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = np.arange(4).reshape((2, 2)).astype("float32")
    layer = layers.GRU(
        2,
        kernel_initializer=rnnkit.initializers.Constant(0.01),
        recurrent_initializer=rnnkit.initializers.Constant(0.02),
        bias_initializer=rnnkit.initializers.Constant(0.03),
        return_state=True,
        go_backwards=go_backwards,
    )
    output, state = layer(sequence, initial_state=initial_state)
    np.testing.assert_allclose(output.detach().numpy(), expected, atol=1e-6)
    assert torch.equal(output, state)
