"""The guide's training examples on small data: the MNIST-shaped LSTM classifier (and its
RNN(LSTMCell) twin), the NestedCell model with two inputs and two targets, and seed 004's
time-series regression against the persistence baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_zoo import NestedCell

import rnnkit
from rnnkit import layers


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these small models run much faster on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_model(allow_cudnn_kernel: bool = True) -> rnnkit.Sequential:
    """The guide's ``build_model``: LSTM(64) -> BatchNormalization -> Dense(10)."""
    if allow_cudnn_kernel:
        lstm_layer = layers.LSTM(64, input_shape=(None, 28))
    else:
        lstm_layer = layers.RNN(layers.LSTMCell(64), input_shape=(None, 28))
    return rnnkit.Sequential([lstm_layer, layers.BatchNormalization(), layers.Dense(10)])


def _compile(model: rnnkit.Model) -> None:
    model.compile(
        loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer="sgd",
        metrics=["accuracy"],
    )


def test_mnist_shaped_lstm_trains_and_rnn_lstmcell_predicts_identically():
    rng = np.random.default_rng(0)
    # MNIST-shaped random data: 28 rows of 28 pixels in [0, 1], labels 0..9.
    x_train, y_train = rng.random((96, 28, 28)), rng.integers(0, 10, 96)
    x_test, y_test = rng.random((32, 28, 28)), rng.integers(0, 10, 32)
    sample = x_train[0]

    model = build_model(allow_cudnn_kernel=True)
    _compile(model)
    before = model.get_weights()
    history = model.fit(
        x_train, y_train, validation_data=(x_test, y_test), batch_size=32, epochs=1, verbose=0
    )
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(np.isfinite(v[0]) for v in history.history.values())
    assert 0.0 <= history.history["accuracy"][0] <= 1.0
    assert not np.allclose(before[0], model.get_weights()[0])  # SGD moved the LSTM kernel
    # BatchNormalization's moving statistics were updated in training mode.
    assert not np.allclose(before[-3], model.get_weights()[-3])

    # val_ metrics are evaluate() on the validation data with the trained weights.
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(loss, rel=1e-5)
    logits = model.predict(x_test, verbose=0)
    assert accuracy == pytest.approx(float(np.mean(logits.argmax(-1) == y_test)))

    noncudnn_model = build_model(allow_cudnn_kernel=False)
    noncudnn_model.set_weights(model.get_weights())
    _compile(noncudnn_model)
    np.testing.assert_allclose(noncudnn_model.predict(x_test, verbose=0), logits, atol=1e-5)
    noncudnn_model.fit(
        x_train, y_train, validation_data=(x_test, y_test), batch_size=32, epochs=1, verbose=0
    )

    cpu_model = build_model(allow_cudnn_kernel=True)
    cpu_model.set_weights(model.get_weights())
    result = np.argmax(cpu_model.predict_on_batch(np.expand_dims(sample, 0)), axis=1)
    assert result.shape == (1,)
    assert result[0] == model.predict(x_train[:1], verbose=0).argmax()


def test_nested_cell_model_fits_two_inputs_and_two_targets():
    unit_1, unit_2, unit_3 = 4, 3, 5
    i1, i2, i3 = 6, 4, 3
    batch_size, num_batches, timestep = 8, 3, 5

    cell = NestedCell(unit_1, unit_2, unit_3)
    rnn = layers.RNN(cell)
    input_1 = rnnkit.Input((None, i1))
    input_2 = rnnkit.Input((None, i2, i3))
    outputs = rnn((input_1, input_2))
    model = rnnkit.Model([input_1, input_2], outputs)
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy"])

    rng = np.random.default_rng(0)
    n = batch_size * num_batches
    input_1_data = rng.random((n, timestep, i1))
    input_2_data = rng.random((n, timestep, i2, i3))
    target_1_data = rng.random((n, unit_1))
    target_2_data = rng.random((n, unit_2, unit_3))
    input_data = [input_1_data, input_2_data]
    target_data = [target_1_data, target_2_data]

    history = model.fit(input_data, target_data, batch_size=batch_size, verbose=0)
    # The guide's log line: loss - rnn_1_loss - rnn_1_1_loss - rnn_1_accuracy - rnn_1_1_accuracy
    # (its RNN layer is named rnn_1; ours is the first RNN of the session, so "rnn").
    name = rnn.name
    assert list(history.history) == [
        "loss",
        f"{name}_loss",
        f"{name}_1_loss",
        f"{name}_accuracy",
        f"{name}_1_accuracy",
    ]
    logs = model.evaluate(input_data, target_data, batch_size=n, verbose=0, return_dict=True)
    out_1, out_2 = model.predict(input_data, verbose=0)
    l1 = float(np.mean((out_1 - target_1_data) ** 2))
    l2 = float(np.mean((out_2 - target_2_data) ** 2))
    assert logs[f"{name}_loss"] == pytest.approx(l1, rel=1e-5)
    assert logs[f"{name}_1_loss"] == pytest.approx(l2, rel=1e-5)
    assert logs["loss"] == pytest.approx(l1 + l2, rel=1e-5)

    with pytest.raises(ValueError, match=r"expects 2 input\(s\)"):
        model.fit(input_1_data, target_data, verbose=0)


# Seed 004: the series t*sin(t)/3 + 2*sin(5t) sampled every 0.1 on [0, 30].
T_MIN, T_MAX, RESOLUTION, N_STEPS = 0, 30, 0.1, 20


def time_series(t):
    return t * np.sin(t) / 3 + 2 * np.sin(t * 5)


def next_batch(rng, batch_size, n_steps):
    """Seed 004's generator: random windows; targets are the inputs shifted by one step."""
    t0 = rng.random((batch_size, 1)) * (T_MAX - T_MIN - n_steps * RESOLUTION)
    ts = t0 + np.arange(0.0, n_steps + 1) * RESOLUTION
    ys = time_series(ts)
    return ys[:, :-1].reshape(-1, n_steps, 1), ys[:, 1:].reshape(-1, n_steps, 1)


def test_time_series_model_beats_persistence_baseline():
    rng = np.random.default_rng(42)

    def batches():
        while True:
            yield next_batch(rng, 50, N_STEPS)

    model = rnnkit.Sequential(
        [
            layers.SimpleRNN(100, activation="relu", return_sequences=True, input_shape=(None, 1)),
            layers.TimeDistributed(layers.Dense(1)),
        ]
    )
    model.compile(optimizer=rnnkit.optimizers.Adam(learning_rate=0.001), loss="mse")
    history = model.fit(batches(), steps_per_epoch=100, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    x_test, y_test = next_batch(rng, 300, N_STEPS)
    persistence_mse = float(np.mean((y_test - x_test) ** 2))  # predict y[t+1] = y[t]
    model_mse = model.evaluate(x_test, y_test, verbose=0)
    assert model_mse < persistence_mse / 3, (model_mse, persistence_mse)
    prediction = model.predict(x_test[:1], verbose=0)
    assert prediction.shape == (1, N_STEPS, 1)


def test_stateful_lstm_fits_in_order_and_carries_states():
    rng = np.random.default_rng(0)
    model = rnnkit.Sequential(
        [layers.LSTM(4, stateful=True, batch_input_shape=(8, None, 3)), layers.Dense(1)]
    )
    model.compile("sgd", "mse")
    x, y = rng.random((32, 5, 3)), rng.random((32, 1))
    # Two epochs of 4 batches: states carry from batch to batch with no gradient between them
    # (a second backward through an earlier batch's graph would raise).
    history = model.fit(x, y, batch_size=8, shuffle=False, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2

    model.reset_states()
    first = model.predict(x, batch_size=8, verbose=0)
    second = model.predict(x, batch_size=8, verbose=0)  # starts from the carried states
    model.reset_states()
    again = model.predict(x, batch_size=8, verbose=0)
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert not np.allclose(second, first)
    # Batch k's predictions depend on batches 0..k-1: predicting batch 1 alone differs.
    model.reset_states()
    alone = model.predict(x[8:16], batch_size=8, verbose=0)
    assert not np.allclose(alone, first[8:16])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_and_predict_on_the_model_device():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28)), rng.integers(0, 10, 64)
    model = build_model()
    model(x[:2])
    model.to("cuda")
    _compile(model)
    model.fit(x, y, batch_size=32, verbose=0, validation_split=0.25)
    assert next(model.parameters()).device.type == "cuda"
    predictions = model.predict(x, verbose=0)
    assert isinstance(predictions, np.ndarray)
    cpu_model = build_model()
    cpu_model.set_weights(model.get_weights())
    np.testing.assert_allclose(cpu_model.predict(x, verbose=0), predictions, atol=1e-4)


def test_masked_sequence_training_matches_keras():
    """Masking -> LSTM(return_sequences) -> Dense: evaluate, and the weights after one epoch of
    SGD with shuffle=False, equal Keras 3's fit with the same weights (masked steps excluded
    from the loss and the metrics)."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 5, 3)).astype("float32")
    for i, length in enumerate(rng.integers(1, 6, 12)):
        x[i, length:] = 0.0  # right padding, masked
    y = rng.standard_normal((12, 5, 2)).astype("float32")

    ours = rnnkit.Sequential(
        [
            layers.Masking(0.0, input_shape=(5, 3)),
            layers.LSTM(4, return_sequences=True),
            layers.Dense(2),
        ]
    )
    theirs = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Masking(0.0),
            keras.layers.LSTM(4, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )
    ours(x[:1])
    theirs.set_weights(ours.get_weights())
    ours.compile(rnnkit.optimizers.SGD(learning_rate=0.1), "mse", metrics=["mae"])
    theirs.compile(keras.optimizers.SGD(learning_rate=0.1), "mse", metrics=["mae"])

    ours_logs = ours.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    theirs_logs = theirs.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    for key in ("loss", "mae"):
        assert ours_logs[key] == pytest.approx(theirs_logs[key], rel=1e-5), key

    ours_history = ours.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    theirs_history = theirs.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for key in ("loss", "mae"):
        assert ours_history.history[key][0] == pytest.approx(
            theirs_history.history[key][0], rel=1e-5
        )
