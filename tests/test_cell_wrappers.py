"""DropoutCell and OutputProjectionCell (seed 004's TF1 wrappers) and sequence_length as masks."""

import numpy as np
import pytest
import torch
from harness import run_layer_test

import rnnkit
from rnnkit.layers import Dense, DropoutCell, Layer, OutputProjectionCell
from rnnkit.layers.rnn import RNN
from rnnkit.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell


@rnnkit.saving.register_keras_serializable(package="test_cell_wrappers")
class PassThroughCell(Layer):
    """No weights: the output is the step input, the new state is the step input too."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def call(self, inputs, states):
        return inputs, [inputs]


def _rnn_pair(wrapper, bare, x, **rnn_kwargs):
    """Build RNN(wrapper) and RNN(bare) on x and give the wrapper the bare cell's weights."""
    ours, reference = RNN(wrapper, **rnn_kwargs), RNN(bare, **rnn_kwargs)
    ours(x)
    reference(x)
    ours.cell.cell.set_weights(reference.cell.get_weights())
    return ours, reference


# ----------------------------------------------------------------------------- harness
@pytest.mark.parametrize(
    "make_cell, out_size, num_weights",
    [
        (lambda: DropoutCell(LSTMCell(4), input_keep_prob=0.8, output_keep_prob=0.9, seed=1), 4, 3),
        (lambda: DropoutCell(GRUCell(3), state_keep_prob=0.7, variational_recurrent=True), 3, 3),
        (lambda: OutputProjectionCell(SimpleRNNCell(5), 2, activation="relu"), 2, 5),
    ],
)
def test_harness_rnn_of_wrapper(make_cell, out_size, num_weights):
    run_layer_test(
        RNN,
        {"cell": make_cell(), "return_sequences": True},
        input_shape=(2, 5, 3),
        expected_output_shape=(2, 5, out_size),
        expected_num_trainable_weights=num_weights,
        expected_num_non_trainable_weights=0,
    )


def test_wrappers_are_cells_with_config_round_trip():
    cell = DropoutCell(
        OutputProjectionCell(LSTMCell(6), 3, activation="tanh"),
        input_keep_prob=0.5,
        state_keep_prob=0.8,
        variational_recurrent=True,
        seed=7,
        state_dropout_indices=[0],
    )
    assert cell.state_size == [6, 6] and cell.output_size == 3
    clone = rnnkit.layers.deserialize(rnnkit.layers.serialize(cell))
    assert isinstance(clone, DropoutCell) and isinstance(clone.cell, OutputProjectionCell)
    assert clone.get_config() == cell.get_config()
    assert clone.cell.cell.units == 6 and clone.cell.output_size == 3
    initial = cell.get_initial_state(batch_size=2)
    assert [tuple(s.shape) for s in initial] == [(2, 6), (2, 6)]
    assert float(sum(s.abs().sum() for s in initial)) == 0.0


# ------------------------------------------------------------------------- DropoutCell
@pytest.mark.parametrize("cell_cls", [SimpleRNNCell, LSTMCell, GRUCell])
def test_dropout_cell_with_keep_probs_one_is_the_bare_cell(cell_cls):
    x = torch.randn(3, 6, 4)
    ours, reference = _rnn_pair(
        DropoutCell(cell_cls(5)), cell_cls(5), x, return_sequences=True, return_state=True
    )
    for a, b in zip(ours(x, training=True), reference(x, training=True)):
        torch.testing.assert_close(a, b)


def test_dropout_cell_is_the_bare_cell_in_inference():
    x = torch.randn(3, 6, 4)
    wrapper = DropoutCell(LSTMCell(5), input_keep_prob=0.5, output_keep_prob=0.5, seed=0)
    ours, reference = _rnn_pair(wrapper, LSTMCell(5), x, return_sequences=True)
    torch.testing.assert_close(ours(x), reference(x))
    torch.testing.assert_close(ours(x, training=False), reference(x))
    assert not torch.allclose(ours(x, training=True), reference(x))


@pytest.mark.parametrize("kind", ["input", "output", "state"])
def test_dropout_rate_and_scaling(kind):
    keep = 0.7
    wrapper = DropoutCell(PassThroughCell(50), **{f"{kind}_keep_prob": keep}, seed=0)
    layer = RNN(wrapper, return_sequences=True, return_state=True)
    x = torch.ones(40, 3, 50)
    seq, state = layer(x, training=True)
    # PassThroughCell: the output is the (maybe dropped) input; the state is the new state.
    dropped = seq if kind in ("input", "output") else state
    untouched = state if kind == "output" else None
    dropped_fraction = (dropped == 0).float().mean().item()
    assert abs(dropped_fraction - (1 - keep)) < 0.05
    kept = dropped[dropped != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / keep))
    if untouched is not None:
        torch.testing.assert_close(untouched, torch.ones_like(untouched))
    if kind == "state":
        torch.testing.assert_close(seq, x)  # state dropout leaves the outputs alone


def test_variational_masks_are_reused_at_every_step_and_fresh_per_call():
    wrapper = DropoutCell(PassThroughCell(30), input_keep_prob=0.5, variational_recurrent=True)
    layer = RNN(wrapper, return_sequences=True)
    x = torch.ones(8, 6, 30)
    first = layer(x, training=True)
    for t in range(1, 6):
        torch.testing.assert_close(first[:, t], first[:, 0])
    second = layer(x, training=True)
    torch.testing.assert_close(second[:, 5], second[:, 0])
    assert not torch.equal(first[:, 0], second[:, 0])
    assert wrapper._masks == {}, "the RNN layer clears the masks after each call"


def test_non_variational_masks_change_every_step():
    layer = RNN(DropoutCell(PassThroughCell(30), input_keep_prob=0.5), return_sequences=True)
    out = layer(torch.ones(8, 4, 30), training=True)
    assert not torch.equal(out[:, 0], out[:, 1])


def test_seed_makes_dropout_reproducible():
    x = torch.ones(4, 3, 10)

    def run():
        cell = DropoutCell(PassThroughCell(10), input_keep_prob=0.5, seed=42)
        return RNN(cell, return_sequences=True)(x, training=True)

    torch.testing.assert_close(run(), run())


def test_state_dropout_spares_the_lstm_carry_by_default():
    # TF's DropoutWrapper drops h but not the memory cell c of an LSTM state.
    x = torch.randn(64, 1, 3)
    wrapper = DropoutCell(LSTMCell(8), state_keep_prob=0.5, seed=0)
    ours, reference = _rnn_pair(wrapper, LSTMCell(8), x, return_state=True)
    out, h, c = ours(x, training=True)
    ref_out, ref_h, ref_c = reference(x)
    torch.testing.assert_close(out, ref_out)  # outputs are not state-dropped
    torch.testing.assert_close(c, ref_c)
    assert ((h == 0) | torch.isclose(h, 2 * ref_h)).all()
    assert (h == 0).float().mean().item() > 0.3
    # Explicit indices: drop the carry too.
    explicit = DropoutCell(LSTMCell(8), state_keep_prob=0.5, seed=0, state_dropout_indices=[0, 1])
    ours2, _ = _rnn_pair(explicit, LSTMCell(8), x, return_state=True)
    ours2.cell.cell.set_weights(reference.cell.get_weights())
    _, _, c2 = ours2(x, training=True)
    assert (c2 == 0).float().mean().item() > 0.3


def test_dropout_cells_stack():
    x = torch.randn(2, 5, 3)
    stacked = RNN([DropoutCell(LSTMCell(4)), DropoutCell(GRUCell(3))], return_state=True)
    bare = RNN([LSTMCell(4), GRUCell(3)], return_state=True)
    stacked(x)
    bare(x)
    stacked.set_weights(bare.get_weights())
    for a, b in zip(stacked(x, training=True), bare(x, training=True)):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- OutputProjectionCell
@pytest.mark.parametrize("cell_cls", [SimpleRNNCell, LSTMCell, GRUCell])
def test_output_projection_equals_rnn_then_dense(cell_cls):
    x = torch.randn(3, 6, 4)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6, [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    projected = RNN(
        OutputProjectionCell(cell_cls(5), 2, activation="tanh"),
        return_sequences=True,
        return_state=True,
    )
    bare = RNN(cell_cls(5), return_sequences=True, return_state=True)
    dense = Dense(2, activation="tanh", bias_initializer="uniform")
    ref_seq, *ref_states = bare(x, mask=mask)
    expected = dense(ref_seq)
    projected(x, mask=mask)
    projected.set_weights(bare.get_weights() + dense.get_weights())
    seq, *states = projected(x, mask=mask)
    assert seq.shape == (3, 6, 2)
    # Masked steps repeat the previous (projected) output, as Dense applied to the repeated
    # cell output gives.
    torch.testing.assert_close(seq, expected)
    for a, b in zip(states, ref_states):  # the states are not projected
        torch.testing.assert_close(a, b)


def test_output_projection_weights_and_shapes():
    cell = OutputProjectionCell(LSTMCell(6), 3, name="proj_cell")
    layer = RNN(cell)
    out = layer(np.zeros((2, 4, 5), np.float32))
    assert out.shape == (2, 3)
    assert cell.weight_paths() == [
        "proj_cell/lstm_cell/kernel",
        "proj_cell/lstm_cell/recurrent_kernel",
        "proj_cell/lstm_cell/bias",
        "proj_cell/projection/kernel",
        "proj_cell/projection/bias",
    ]
    assert [tuple(w.shape) for w in cell.weights[-2:]] == [(6, 3), (3,)]
    assert cell.count_params() == 4 * 6 * (5 + 6 + 1) + 6 * 3 + 3
    no_bias = OutputProjectionCell(SimpleRNNCell(4), 2, use_bias=False)
    RNN(no_bias)(np.zeros((1, 2, 3), np.float32))
    assert [tuple(w.shape) for w in no_bias.projection.weights] == [(4, 2)]


def test_seed_004_time_series_shapes():
    # Seed 004: OutputProjectionWrapper(BasicRNNCell(100, relu), output_size=1) over 20 steps.
    cell = OutputProjectionCell(SimpleRNNCell(100, activation="relu"), output_size=1)
    outputs = RNN(cell, return_sequences=True)(np.random.rand(50, 20, 1).astype(np.float32))
    assert outputs.shape == (50, 20, 1)


# ------------------------------------------------------------------------- bad inputs
def test_bad_arguments():
    with pytest.raises(ValueError, match=r"input_keep_prob must be in \(0, 1\], received 0"):
        DropoutCell(LSTMCell(2), input_keep_prob=0)
    with pytest.raises(ValueError, match=r"state_keep_prob must be in \(0, 1\], received 1.5"):
        DropoutCell(LSTMCell(2), state_keep_prob=1.5)
    with pytest.raises(TypeError, match="output_keep_prob must be a float"):
        DropoutCell(LSTMCell(2), output_keep_prob="0.5")
    with pytest.raises(ValueError, match=r"state_dropout_indices \[2\] are out of range.*2 state"):
        DropoutCell(LSTMCell(2), state_keep_prob=0.5, state_dropout_indices=[0, 2])
    with pytest.raises(TypeError, match="cell must be an rnnkit Layer"):
        DropoutCell(torch.nn.LSTMCell(2, 2))
    with pytest.raises(ValueError, match="has no state_size"):
        OutputProjectionCell(Dense(3), 2)
    with pytest.raises(ValueError, match="output_size must be positive, received 0"):
        OutputProjectionCell(LSTMCell(2), 0)
    with pytest.raises(TypeError, match="output_size must be a positive int"):
        OutputProjectionCell(LSTMCell(2), 2.5)


# ------------------------------------------------------- sequence_length through masks
def test_sequence_length_as_a_mask_matches_running_each_sequence_unpadded():
    """TF1's ``dynamic_rnn(cell, X, sequence_length=seq_length)`` in Keras form (seed 004).

    ``sequence_length`` becomes a right-padded mask ``mask[i, t] = t < length[i]``::

        mask = torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]
        outputs, state = RNN(cell, return_sequences=True, return_state=True,
                             zero_output_for_mask=True)(X, mask=mask)

    As with ``dynamic_rnn``, the outputs past a sequence's length are zeros
    (``zero_output_for_mask=True``; with the default False they repeat the last valid
    output), and the final state of each sequence is its state at its last valid step.
    """
    x_batch = np.array(
        [
            [[0, 1, 2], [9, 8, 7]],  # instance 1
            [[3, 4, 5], [0, 0, 0]],  # instance 2 (padded with a zero vector)
            [[6, 7, 8], [6, 5, 4]],  # instance 3
            [[9, 0, 1], [3, 2, 1]],  # instance 4
        ],
        dtype=np.float32,
    )
    lengths = np.array([2, 1, 2, 2])
    mask = torch.arange(x_batch.shape[1])[None, :] < torch.as_tensor(lengths)[:, None]
    assert mask.tolist() == [[True, True], [True, False], [True, True], [True, True]]

    layer = RNN(
        SimpleRNNCell(5), return_sequences=True, return_state=True, zero_output_for_mask=True
    )
    outputs, state = layer(x_batch, mask=mask)
    assert outputs.shape == (4, 2, 5) and state.shape == (4, 5)
    for i, length in enumerate(lengths):
        alone, alone_state = layer(x_batch[i : i + 1, :length])
        torch.testing.assert_close(outputs[i, :length], alone[0])
        torch.testing.assert_close(state[i], alone_state[0])
        assert torch.count_nonzero(outputs[i, length:]) == 0
    # Instance 2's final state is its output at step 0, as dynamic_rnn's.
    torch.testing.assert_close(state[1], outputs[1, 0])
