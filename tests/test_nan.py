"""compile(nan_policy=...): non-finite inputs and losses raise (default), warn or are ignored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.training import nan_policy


def _model(nan_policy: str = "raise", lr: float = 0.05) -> rnnkit.Model:
    model = rnnkit.Sequential([layers.Input(shape=(3,)), layers.Dense(2)])
    model.compile(rnnkit.optimizers.SGD(learning_rate=lr), "mse", nan_policy=nan_policy)
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype("float32")
    return x, x @ rng.standard_normal((3, 2)).astype("float32")


def _weights_after_clean_batches(model: rnnkit.Model, w0, x, y, n: int) -> list[np.ndarray]:
    """The weights after training a copy of the model from ``w0`` on the first ``n`` samples."""
    twin = _model()
    twin.set_weights(w0)
    twin.fit(x[:n], y[:n], batch_size=8, epochs=1, shuffle=False, verbose=0)
    return twin.get_weights()


def test_nan_input_raises_naming_the_array_epoch_and_batch_before_training_on_it():
    x, y = _data()
    x[20, 1] = np.nan  # epoch 1, batch 3 of 4 (batches of 8, in order)
    x[21, 0] = np.inf
    model = _model()
    w0 = model.get_weights()
    with pytest.raises(
        ValueError,
        match=r"fit \(epoch 1/2, batch 3/4\): x \(input 'input_layer'\) holds 1 NaN and 1 inf",
    ):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    expected = _weights_after_clean_batches(model, w0, x, y, 16)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), expected))


def test_nan_target_and_named_inputs_of_a_functional_model():
    a = layers.Input(shape=(3,), name="signal")
    b = layers.Input(shape=(2,), name="extra")
    out = layers.Dense(1)(layers.Concatenate()([a, b]))
    model = rnnkit.Model([a, b], out)
    model.compile("sgd", "mse")
    xa = np.ones((8, 3), "float32")
    xb = np.ones((8, 2), "float32")
    xb[3] = np.nan
    with pytest.raises(ValueError, match=r"x\[1\] \(input 'extra'\) holds 2 NaN"):
        model.fit([xa, xb], np.ones((8, 1), "float32"), epochs=1, verbose=0)
    y = np.ones((8, 1), "float32")
    y[0] = np.nan
    xb[3] = 0.0
    with pytest.raises(ValueError, match=r"y holds 1 NaN"):
        model.fit([xa, xb], y, epochs=1, verbose=0)


def test_nan_in_a_dataloader_batch_and_in_train_on_batch():
    x, y = _data()
    x[9] = np.nan
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=8
    )
    with pytest.raises(
        ValueError, match=r"epoch 1/1, batch 2/4\): x \(input 'input_layer'\) holds 3 NaN"
    ):
        _model().fit(loader, epochs=1, verbose=0)
    with pytest.raises(
        ValueError, match=r"train_on_batch: x \(input 'input_layer_1'\) holds 3 NaN"
    ):
        _model().train_on_batch(x[8:16], y[8:16])


def test_non_finite_loss_raises_before_the_optimizer_step():
    x, y = _data()
    y[26] = 1e30  # finite, but its squared error overflows float32: the loss is inf
    model = _model()
    w0 = model.get_weights()
    with pytest.raises(FloatingPointError, match=r"fit \(epoch 1/3, batch 4/4\): the loss is inf"):
        model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    expected = _weights_after_clean_batches(model, w0, x, y, 24)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), expected))


def test_float64_model_skips_a_non_finite_step_with_the_fused_sgd_kernel():
    """The guard's flag takes the loss's dtype; the SGD kernel that skips on it reads float32."""
    x, y = (a.astype("float64") for a in _data())
    y[26] = 1e300  # finite, but its squared error overflows float64: the loss is inf
    model = rnnkit.Sequential([layers.Input(shape=(3,)), layers.Dense(2, dtype="float64")])
    model.compile(rnnkit.optimizers.SGD(learning_rate=0.05), "mse")
    assert model.weights[0].dtype == torch.float64
    model.train_on_batch(x[:8], y[:8])
    w1 = model.get_weights()
    with pytest.raises(FloatingPointError, match="train_on_batch: the loss is inf"):
        model.train_on_batch(x[24:], y[24:])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), w1))


def test_warn_policy_warns_and_stops_training_with_finite_weights():
    x, y = _data()
    y[26] = 1e30
    model = _model("warn")
    with pytest.warns(RuntimeWarning, match=r"epoch 1/3, batch 4/4\): the loss is inf.*stops"):
        history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
    assert all(np.isfinite(w).all() for w in model.get_weights())

    x[0] = np.nan
    model = _model("warn")
    w0 = model.get_weights()
    with pytest.warns(RuntimeWarning, match=r"x \(input '.*'\) holds 3 NaN.*training stops"):
        history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), w0))
    assert history.epoch == [] and history.history == {}  # stopped before the first batch


def test_ignore_policy_trains_on_as_keras_does():
    x, y = _data()
    x[0] = np.nan
    model = _model("ignore")
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert np.isnan(history.history["loss"]).all()
    assert all(np.isnan(w).all() for w in model.get_weights())


def test_nan_policy_is_validated():
    with pytest.raises(ValueError, match=r'nan_policy must be "raise", "warn" or "ignore"'):
        _model("skip")


@pytest.mark.parametrize(
    ("values", "finite"),
    [
        (np.ones((4, 3), np.float32), True),
        (np.full((4, 3), 1e30, np.float32), True),  # the squares overflow; the values do not
        (np.array([1.0, np.nan], np.float32), False),
        (np.array([1.0, np.inf], np.float64), False),
        (np.array([np.inf, -np.inf], np.float32), False),
        (np.array([-np.inf, 1e30], np.float32), False),
        (np.ones((3, 4), np.float32).T, True),  # not contiguous
        (np.zeros((0, 3), np.float32), True),
        (np.array([1 + 1j, complex(np.inf, 0)]), False),
        (np.array([1, 2], np.int64), True),
        (torch.tensor([1.0, float("nan")], dtype=torch.float16), False),
        (torch.tensor([60000.0, 1.0], dtype=torch.float16), True),  # float16 squares overflow
        (torch.ones(2, 3, requires_grad=True), True),
        (torch.tensor([0.0, float("-inf")], dtype=torch.float64), False),
    ],
)
def test_the_finiteness_check_is_exact(values, finite):
    """The input check's sum-of-squares shortcut never calls a non-finite array finite, and
    an overflowing sum of finite values is checked value by value."""
    assert nan_policy._is_finite(values) is finite
