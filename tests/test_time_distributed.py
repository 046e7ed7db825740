"""TimeDistributed: one layer at every time step, by reshaping into the batch."""

import keras
import numpy as np
import pytest
import torch
from harness import run_layer_test

import rnnkit
from rnnkit.layers import LSTM, Concatenate, Dense, Dropout, Embedding, Layer, TimeDistributed


class CountingDense(Layer):
    """A linear map that counts how often its ``call`` runs (to show there is no time loop)."""

    supports_masking = True

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.calls = 0

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

    def call(self, inputs):
        self.calls += 1
        return inputs @ self.kernel


class NoMasking(Layer):
    """A layer that neither supports nor computes masks."""

    def call(self, inputs):
        return inputs * 2.0


def test_harness_time_distributed_dense():
    run_layer_test(
        TimeDistributed,
        {"layer": Dense(3, activation="tanh")},
        input_shape=(2, 4, 5),
        expected_output_shape=(2, 4, 3),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
    )


@pytest.mark.parametrize("shape", [(2, 4, 5), (3, 2, 3, 5)])
def test_keras_parity_dense(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype("float32")
    ours = TimeDistributed(Dense(3, activation="tanh", bias_initializer="uniform"))
    expected_out = ours(x)
    theirs = keras.layers.TimeDistributed(keras.layers.Dense(3, activation="tanh"))
    theirs(x)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        expected_out.detach().numpy(), keras.ops.convert_to_numpy(theirs(x)), atol=1e-5
    )
    assert expected_out.shape == (*shape[:-1], 3)


def test_keras_parity_lstm_over_subsequences():
    # (N, T, T2, F): an LSTM runs over the inner sequence of every outer step.
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype("float32")
    ours = TimeDistributed(LSTM(3, return_sequences=True))
    expected = ours(x)
    theirs = keras.layers.TimeDistributed(keras.layers.LSTM(3, return_sequences=True))
    theirs(x)
    theirs.set_weights(ours.get_weights())
    assert expected.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(
        expected.detach().numpy(), keras.ops.convert_to_numpy(theirs(x)), atol=1e-5
    )


def test_every_step_equals_the_layer_on_that_step():
    dense = Dense(4)
    layer = TimeDistributed(dense)
    x = torch.randn(3, 5, 2)
    y = layer(x)
    for t in range(5):
        torch.testing.assert_close(y[:, t], dense(x[:, t]))


def test_inner_layer_runs_once_per_call_not_once_per_step():
    inner = CountingDense(2)
    layer = TimeDistributed(inner)
    layer(torch.randn(2, 7, 3))
    assert inner.calls == 1


def test_mask_passes_through_dense():
    x = torch.randn(2, 4, 3)
    x._keras_mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    y = TimeDistributed(Dense(2))(x)
    assert torch.equal(y._keras_mask, x._keras_mask)


def test_mask_kept_when_inner_layer_computes_none():
    # Keras semantics: a wrapped layer without masking support keeps the input mask.
    x = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    y = TimeDistributed(NoMasking())(x, mask=mask)
    assert torch.equal(y._keras_mask, mask)
    torch.testing.assert_close(y, 2 * x)


def test_inner_mask_is_reshaped_back():
    # Embedding(mask_zero=True) on (N, T, L) token ids: the mask it computes for (N*T, L)
    # comes back as (N, T, L) (tf.keras' TimeDistributed.compute_mask; Keras 3 drops it).
    tokens = np.array([[[1, 2, 0], [3, 0, 0]], [[0, 0, 0], [4, 5, 6]]])
    y = TimeDistributed(Embedding(10, 4, mask_zero=True))(tokens)
    assert y.shape == (2, 2, 3, 4)
    np.testing.assert_array_equal(y._keras_mask.numpy(), tokens != 0)


def test_training_flag_is_passed():
    layer = TimeDistributed(Dropout(0.5, seed=3))
    x = torch.ones(4, 50, 20)
    torch.testing.assert_close(layer(x), x)
    y = layer(x, training=True)
    dropped = (y == 0).float().mean().item()
    assert 0.4 < dropped < 0.6
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 2.0))


def test_symbolic_call_and_config_round_trip():
    layer = TimeDistributed(Dense(3), name="td")
    out = layer(rnnkit.Input(shape=(None, 5)))
    assert out.shape == (None, None, 3)
    config = rnnkit.layers.serialize(layer)
    clone = rnnkit.layers.deserialize(config)
    assert isinstance(clone, TimeDistributed) and isinstance(clone.layer, Dense)
    assert clone.name == "td" and clone.layer.units == 3
    assert clone.get_config() == layer.get_config()


def test_gradient_reaches_inner_weights():
    layer = TimeDistributed(Dense(2))
    layer(torch.randn(2, 3, 4)).sum().backward()
    assert all(w.grad is not None for w in layer.weights)


def test_nested_inputs():
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 5)
    y = TimeDistributed(Concatenate())([a, b])
    torch.testing.assert_close(y, torch.cat([a, b], dim=-1))
    with pytest.raises(
        ValueError, match=r"share batch and time sizes.*\(2, 3, \.\.\.\).*\(2, 4, 5\)"
    ):
        TimeDistributed(Concatenate())([a, torch.randn(2, 4, 5)])


def test_bad_inputs():
    with pytest.raises(ValueError, match="layer must be an rnnkit Layer"):
        TimeDistributed(torch.nn.Linear(2, 2))
    layer = TimeDistributed(Dense(2), name="td")
    with pytest.raises(ValueError, match=r"TimeDistributed 'td'.*at least 3 dimensions.*\(4, 5\)"):
        layer(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3, \.\.\.\).*\(2, 4\)"):
        layer(torch.zeros(2, 3, 5), mask=torch.ones(2, 4, dtype=torch.bool))
