"""The built-in cells: Keras weight layout, one-step parity with Keras, dropout masks."""

import numpy as np
import pytest
import torch

from rnnkit import layers

keras = pytest.importorskip("keras")

RNG = np.random.default_rng(2)
X = RNG.standard_normal((3, 4)).astype("float32")


@pytest.mark.parametrize(
    "cell, shapes",
    [
        (lambda: layers.SimpleRNNCell(5), [(4, 5), (5, 5), (5,)]),
        (lambda: layers.LSTMCell(5), [(4, 20), (5, 20), (20,)]),
        (lambda: layers.GRUCell(5), [(4, 15), (5, 15), (2, 15)]),
        (lambda: layers.GRUCell(5, reset_after=False), [(4, 15), (5, 15), (15,)]),
        (lambda: layers.LSTMCell(5, use_bias=False), [(4, 20), (5, 20)]),
    ],
)
def test_weight_names_and_shapes(cell, shapes):
    cell = cell()
    cell.build((None, 4))
    assert [tuple(w.shape) for w in cell.weights] == shapes
    names = ["kernel", "recurrent_kernel", "bias"][: len(shapes)]
    assert [p.split("/")[-1] for p in cell.weight_paths()] == names
    assert cell.output_size == 5


def test_lstm_unit_forget_bias_initialisation():
    cell = layers.LSTMCell(3)
    cell.build((None, 4))
    np.testing.assert_array_equal(cell.bias.detach().numpy(), [0] * 3 + [1] * 3 + [0] * 6)
    cell = layers.LSTMCell(3, unit_forget_bias=False)
    cell.build((None, 4))
    np.testing.assert_array_equal(cell.bias.detach().numpy(), np.zeros(12))


@pytest.mark.parametrize(
    "ours, theirs, kwargs",
    [
        (layers.SimpleRNNCell, keras.layers.SimpleRNNCell, {}),
        (layers.LSTMCell, keras.layers.LSTMCell, {}),
        (layers.GRUCell, keras.layers.GRUCell, {}),
        (layers.GRUCell, keras.layers.GRUCell, {"reset_after": False}),
        (layers.LSTMCell, keras.layers.LSTMCell, {"activation": "relu", "use_bias": False}),
    ],
)
def test_one_step_matches_keras(ours, theirs, kwargs):
    cell, reference = ours(5, **kwargs), theirs(5, **kwargs)
    n_states = 2 if ours is layers.LSTMCell else 1
    states = [RNG.standard_normal((3, 5)).astype("float32") for _ in range(n_states)]
    cell(X, [torch.as_tensor(s) for s in states])
    reference(X, states)
    reference.set_weights(cell.get_weights())
    out, new = cell(X, [torch.as_tensor(s) for s in states])
    k_out, k_new = reference(X, states)
    np.testing.assert_allclose(out.detach().numpy(), keras.ops.convert_to_numpy(k_out), atol=1e-5)
    for a, b in zip(new, k_new):
        np.testing.assert_allclose(a.detach().numpy(), keras.ops.convert_to_numpy(b), atol=1e-5)


def test_gru_and_simple_rnn_return_a_bare_state_for_a_bare_state():
    for cell in (layers.GRUCell(2), layers.SimpleRNNCell(2)):
        out, state = cell(X, torch.zeros(3, 2))
        assert isinstance(state, torch.Tensor) and torch.equal(out, state)
        _, states = cell(X, [torch.zeros(3, 2)])
        assert isinstance(states, list) and len(states) == 1


def test_get_initial_state():
    cell = layers.LSTMCell(4, dtype="float64")
    h, c = cell.get_initial_state(batch_size=3)
    assert h.shape == c.shape == (3, 4) and h.dtype == torch.float64 and not h.any()
    (g,) = layers.GRUCell(2).get_initial_state(batch_size=1, dtype=torch.float64)
    assert g.dtype == torch.float64


def test_dropout_masks_cached_until_reset_and_seeded():
    cell = layers.GRUCell(3, dropout=0.5, recurrent_dropout=0.25, seed=7)
    h = torch.zeros(3, 3)
    x = torch.as_tensor(X)
    m1 = cell.get_dropout_mask(x)
    assert cell.get_dropout_mask(x) is m1
    assert set(torch.unique(m1).tolist()) <= {0.0, 2.0}
    r1 = cell.get_recurrent_dropout_mask(h)
    assert set(torch.unique(r1).tolist()) <= {0.0, np.float32(4.0 / 3.0).item()}
    cell.reset_dropout_mask()
    cell.reset_recurrent_dropout_mask()
    assert cell.get_dropout_mask(x) is not m1
    same_seed = layers.GRUCell(3, dropout=0.5, seed=7)
    torch.testing.assert_close(same_seed.get_dropout_mask(x), m1)
    assert layers.GRUCell(3).get_dropout_mask(x) is None


def test_dropout_only_in_training():
    cell = layers.SimpleRNNCell(4, dropout=0.5)
    states = [torch.zeros(3, 4)]
    a, _ = cell(X, states)
    torch.testing.assert_close(a, cell(X, states, training=False)[0])
    cell.reset_dropout_mask()
    b, _ = cell(X, states, training=True)
    mask = cell._dropout_mask
    torch.testing.assert_close(b, torch.tanh((torch.as_tensor(X) * mask) @ cell.kernel + cell.bias))


@pytest.mark.parametrize("cls", [layers.SimpleRNNCell, layers.LSTMCell, layers.GRUCell])
def test_cell_config_round_trip(cls):
    cell = cls(3, dropout=0.1, kernel_regularizer="l2", bias_constraint="non_neg", seed=3)
    config = cell.get_config()
    assert config["dropout"] == 0.1 and config["seed"] == 3
    assert cls.from_config(config).get_config() == config
    cell.build((None, 2))
    assert len(cell.losses) == 1
