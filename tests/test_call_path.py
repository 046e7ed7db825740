"""The lean call path caches what does not change between calls; these tests change it.

Cached: a layer's target device and dtype and the model's parameter lists (against
``rnnkit.layers.base.structure_version()``), a recurrent layer's kernel plan (against its
spec, request, training flag and the inputs' device and dtype) and a cell's kernel spec
(against the attributes it is made of). Each test changes one of those between two calls and
checks the second call sees it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers


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
