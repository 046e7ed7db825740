"""Bad input raises ValueError naming the argument and the layer, before the loop runs."""

import numpy as np
import pytest
import torch

from rnnkit import layers

X = np.zeros((2, 4, 3), "float32")


class CountingCell(layers.Layer):
    """A minimal cell that counts its steps, to show errors come before any step runs."""

    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.steps = 0

    def call(self, inputs, states):
        self.steps += 1
        h = states[0] + inputs.sum(-1, keepdim=True)
        return h, [h]


def built_lstm():
    layer = layers.LSTM(2, name="enc")
    layer(X)
    return layer


@pytest.mark.parametrize("units", [0, -3, 2.5, None, True])
@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRUCell, layers.SimpleRNN])
def test_units_must_be_positive_int(cls, units):
    with pytest.raises(ValueError, match=rf"{cls.__name__.replace('Cell', '')}.*units.*{units}"):
        cls(units)


@pytest.mark.parametrize("argument", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.2"])
def test_dropout_rates_in_unit_interval(argument, rate):
    with pytest.raises(ValueError, match=rf"{argument} must be a float in \[0, 1\)"):
        layers.GRU(2, **{argument: rate})


def test_cell_without_state_size_or_call():
    class NoState(layers.Layer):
        def call(self, inputs, states):
            return inputs, states

    with pytest.raises(ValueError, match="RNN: cell must have a state_size"):
        layers.RNN(NoState())
    with pytest.raises(ValueError, match="call"):
        layers.RNN(object())
    with pytest.raises(ValueError, match="StackedRNNCells.*state_size"):
        layers.RNN([layers.LSTMCell(2), NoState()])


def test_bad_state_size_entry():
    cell = CountingCell()
    cell.state_size = ["a"]
    with pytest.raises(ValueError, match="state_size"):
        layers.RNN(cell)


@pytest.mark.parametrize("shape", [(2, 3), (2, 4, 3, 1), (4,)])
def test_wrong_input_rank(shape):
    with pytest.raises(ValueError, match=rf"LSTM 'enc': inputs must have rank 3.*{shape}"):
        layers.LSTM(2, name="enc")(np.zeros(shape, "float32"))


@pytest.mark.parametrize("shape", [(2, 3), (4,)])
def test_generic_rnn_needs_rank_at_least_3(shape):
    with pytest.raises(ValueError, match=r"RNN 'r': inputs must have rank >= 3"):
        layers.RNN(CountingCell(), name="r")(np.zeros(shape, "float32"))


def test_feature_size_different_from_built():
    layer = built_lstm()
    with pytest.raises(ValueError, match=r"LSTM 'enc': inputs.*built for.*\[\(3,\)\].*\[\(5,\)\]"):
        layer(np.zeros((2, 4, 5), "float32"))


def test_nested_inputs_must_share_batch_and_time():
    cell = CountingCell()
    with pytest.raises(ValueError, match="share the batch and time"):
        layers.RNN(cell)([np.zeros((2, 4, 3), "float32"), np.zeros((2, 5, 3), "float32")])


def test_wrong_number_of_initial_states():
    layer = built_lstm()
    with pytest.raises(
        ValueError, match=r"initial_state: expected 2 state tensor\(s\).*received 1"
    ):
        layer(X, initial_state=[torch.zeros(2, 2)])
    with pytest.raises(ValueError, match="initial_state: expected 2"):
        layer(X, initial_state=[torch.zeros(2, 2)] * 3)


def test_wrong_state_shape_names_expected_and_received():
    layer = built_lstm()
    with pytest.raises(
        ValueError, match=r"initial_state\[1\] has shape \(2, 3\), expected \(2, 2\)"
    ):
        layer(X, initial_state=[torch.zeros(2, 2), torch.zeros(2, 3)])
    with pytest.raises(
        ValueError, match=r"initial_state\[0\] has shape \(3, 2\), expected \(2, 2\)"
    ):
        layer(X, initial_state=[np.zeros((3, 2)), np.zeros((3, 2))])


@pytest.mark.parametrize("mask_shape", [(3, 4), (2, 5), (2,), (2, 4, 1)])
def test_mask_with_wrong_batch_or_time(mask_shape):
    cell = CountingCell()
    layer = layers.RNN(cell, name="r")
    with pytest.raises(ValueError, match=rf"RNN 'r': mask must have shape \(2, 4\).*{mask_shape}"):
        layer(X, mask=np.ones(mask_shape, bool))
    assert cell.steps == 0


def test_errors_come_before_any_step():
    cell = CountingCell()
    layer = layers.RNN(cell)
    layer(X)
    cell.steps = 0
    for bad in (
        lambda: layer(np.zeros((2, 4, 3, 1), "float32")),
        lambda: layer(X, initial_state=[torch.zeros(2, 7)]),
        lambda: layer(X, mask=np.ones((2, 3), bool)),
        lambda: layer(X, constants=[torch.zeros(2, 1)]),
    ):
        with pytest.raises(ValueError):
            bad()
    assert cell.steps == 0


def test_use_cudnn_values():
    with pytest.raises(ValueError, match="use_cudnn must be one of"):
        layers.LSTM(2, use_cudnn="yes")
    with pytest.raises(ValueError, match="use_cudnn=True.*activation 'relu' is not tanh"):
        layers.LSTM(2, use_cudnn=True, activation="relu")(X)


def test_stateful_batch_change_and_reset_validation():
    layer = layers.SimpleRNN(2, stateful=True, name="s")
    layer(X)
    with pytest.raises(ValueError, match=r"SimpleRNN 's'.*expected batch size 2, received 3"):
        layer(np.zeros((3, 4, 3), "float32"))
    with pytest.raises(ValueError, match=r"states: expected 1 state tensor\(s\).*received 2"):
        layer.reset_states(states=[np.zeros((2, 2))] * 2)
    with pytest.raises(ValueError, match="stateful=True"):
        layers.SimpleRNN(2).reset_states(states=[np.zeros((2, 2))])


def test_unknown_activation_names_the_argument():
    with pytest.raises(ValueError, match="recurrent_activation"):
        layers.LSTM(2, recurrent_activation="nope")
