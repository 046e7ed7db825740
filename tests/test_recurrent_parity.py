"""SimpleRNN / LSTM / GRU against Keras 3 (torch backend) with identical weights.

Every comparison copies our weights into the Keras layer with ``set_weights`` and asserts a max
abs error <= 1e-5 on every output (sequence, last output, states).

Where Keras 3 itself fails: its torch backend crashes on ``unroll=True`` + ``go_backwards=True``
+ a mask (``torch.flip`` called on a tuple in ``keras/src/backend/torch/rnn.py``). Unrolling
cannot change the maths, so for that case the reference is the same Keras layer with
``unroll=False``.
"""

import numpy as np
import pytest

import rnnkit
from rnnkit import layers

keras = pytest.importorskip("keras")

ATOL = 1e-5
RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 5, 4)).astype("float32")
MASKS = {
    None: None,
    "right": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool),
    "left": np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]], bool),
    "holes": np.array([[1, 0, 1, 0, 1], [1, 1, 0, 1, 1], [0, 1, 1, 0, 1]], bool),
}
PAIRS = {
    "simple_rnn": (layers.SimpleRNN, keras.layers.SimpleRNN, {}),
    "lstm": (layers.LSTM, keras.layers.LSTM, {}),
    "gru": (layers.GRU, keras.layers.GRU, {}),
    "gru_reset_before": (layers.GRU, keras.layers.GRU, {"reset_after": False}),
}


def assert_same(ours, theirs, atol=ATOL):
    flat_ours = [o.detach().cpu().numpy() for o in rnnkit.tree.flatten(ours)]
    flat_theirs = [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(theirs)]
    assert len(flat_ours) == len(flat_theirs)
    for a, b in zip(flat_ours, flat_theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def paired(kind, **kwargs):
    ours_cls, keras_cls, extra = PAIRS[kind]
    ours = ours_cls(3, **extra, **kwargs)
    theirs = keras_cls(3, **extra, **kwargs)
    ours(X)
    theirs(X)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_grid_with_masks(kind, return_sequences, return_state, go_backwards):
    for zero_output in (False, True):
        ours, theirs = paired(
            kind,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output,
        )
        for mask in MASKS.values():
            assert_same(ours(X, mask=mask), theirs(X, mask=mask))


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_unroll(kind, go_backwards):
    ours, theirs = paired(kind, return_sequences=True, return_state=True, go_backwards=go_backwards)
    unrolled, theirs_unrolled = paired(
        kind, return_sequences=True, return_state=True, go_backwards=go_backwards, unroll=True
    )
    unrolled.set_weights(ours.get_weights())
    theirs_unrolled.set_weights(ours.get_weights())
    for name, mask in MASKS.items():
        reference = theirs if (go_backwards and name is not None) else theirs_unrolled
        assert_same(unrolled(X, mask=mask), reference(X, mask=mask))
        # ``ours`` may run the fused kernel (use_cudnn="auto"), ``unrolled`` the loop: equal
        # up to float rounding.
        assert_same(unrolled(X, mask=mask), ours(X, mask=mask), atol=1e-6)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_initial_state(kind):
    ours, theirs = paired(kind, return_sequences=True, return_state=True)
    n_states = 2 if kind == "lstm" else 1
    states = [RNG.standard_normal((3, 3)).astype("float32") for _ in range(n_states)]
    assert_same(ours(X, initial_state=states), theirs(X, initial_state=states))
    mask = MASKS["holes"]
    assert_same(
        ours(X, initial_state=states, mask=mask), theirs(X, initial_state=states, mask=mask)
    )


@pytest.mark.parametrize("kind", list(PAIRS))
def test_stateful_three_batches(kind):
    ours, theirs = paired(kind, stateful=True, return_state=True)
    ours.reset_states()
    theirs.reset_state()
    for i in range(3):
        chunk = RNG.standard_normal((3, 4, 4)).astype("float32") + i
        assert_same(ours(chunk), theirs(chunk))
    ours.reset_states()
    theirs.reset_state()
    assert_same(ours(X), theirs(X))


@pytest.mark.parametrize("kind", list(PAIRS))
def test_no_bias_and_other_activations(kind):
    kwargs = {"use_bias": False, "activation": "relu"}
    if kind != "simple_rnn":
        kwargs["recurrent_activation"] = "hard_sigmoid"
    ours, theirs = paired(kind, return_sequences=True, return_state=True, **kwargs)
    assert len(ours.weights) == 2
    for mask in (None, MASKS["left"]):
        assert_same(ours(X, mask=mask), theirs(X, mask=mask))


def test_lstm_without_unit_forget_bias_and_custom_bias_initializer():
    ours, theirs = paired("lstm", unit_forget_bias=False, bias_initializer="ones")
    np.testing.assert_array_equal(ours.get_weights()[2], np.ones(12, "float32"))
    assert_same(ours(X), theirs(X))


@pytest.mark.parametrize(
    "ours_cell, keras_cell",
    [
        (layers.LSTMCell, keras.layers.LSTMCell),
        (layers.GRUCell, keras.layers.GRUCell),
        (layers.SimpleRNNCell, keras.layers.SimpleRNNCell),
    ],
)
def test_stacked_cells(ours_cell, keras_cell):
    ours = layers.RNN([ours_cell(3), ours_cell(2)], return_sequences=True, return_state=True)
    theirs = keras.layers.RNN(
        [keras_cell(3), keras_cell(2)], return_sequences=True, return_state=True
    )
    ours(X)
    theirs(X)
    theirs.set_weights(ours.get_weights())
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
    for mask in (None, MASKS["holes"]):
        assert_same(ours(X, mask=mask), theirs(X, mask=mask))


def test_layer_level_parameter_counts_of_the_guide():
    """Seed 000's summaries: LSTM(128) on 64 features, GRU(256) on 64, SimpleRNN(128) on 256."""
    for cls, keras_cls, units, features, expected in [
        (layers.LSTM, keras.layers.LSTM, 128, 64, 98_816),
        (layers.GRU, keras.layers.GRU, 256, 64, 247_296),
        (layers.SimpleRNN, keras.layers.SimpleRNN, 128, 256, 49_280),
        (layers.LSTM, keras.layers.LSTM, 64, 64, 33_024),
    ]:
        ours = cls(units)
        ours.build((None, None, features))
        theirs = keras_cls(units)
        theirs.build((None, None, features))
        assert ours.count_params() == theirs.count_params() == expected
