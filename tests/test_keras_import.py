"""Keras 3 .keras and .weights.h5 files load into rnnkit with the same predictions.

Each model is built and saved with Keras 3 (torch backend) inside the test, with random
weights (so that no weight can be silently left at its initial value), then loaded with
``rnnkit.saving.load_model`` / ``load_weights`` and compared to Keras' predictions.
"""

import json
import zipfile

import keras
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.saving import load_model, load_weights
from rnnkit.saving.keras_import import _KerasOp, keras_weight_groups

L = keras.layers
RNG = np.random.default_rng(0)


def randomize(model):
    """Random weights; variances (BatchNormalization) positive."""
    weights = []
    for w, var in zip(model.get_weights(), model.weights):
        value = RNG.uniform(-0.6, 0.6, w.shape)
        if "variance" in var.path:
            value = RNG.uniform(0.5, 1.5, w.shape)
        weights.append(value.astype(w.dtype))
    model.set_weights(weights)
    return model


def seq_input():
    return RNG.normal(size=(3, 6, 4)).astype("float32")


def lstm_model():
    return keras.Sequential([keras.Input((6, 4)), L.LSTM(5), L.Dense(2)]), seq_input()


def gru_model(reset_after):
    model = keras.Sequential(
        [keras.Input((6, 4)), L.GRU(5, reset_after=reset_after, return_sequences=True), L.GRU(3)]
    )
    return model, seq_input()


def simple_rnn_time_distributed_bn():
    model = keras.Sequential(
        [
            keras.Input((6, 4)),
            L.SimpleRNN(5, return_sequences=True),
            L.TimeDistributed(L.Dense(3, activation="relu")),
            L.BatchNormalization(),
            L.Dropout(0.5),
            L.Dense(2),
        ]
    )
    return model, seq_input()


def embedding_mask_zero():
    model = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            L.Embedding(20, 4, mask_zero=True),
            L.LSTM(4, return_sequences=True),
            L.GRU(3),
            L.Dense(2, activation="softmax"),
        ]
    )
    x = np.array([[3, 5, 7, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7], [9, 0, 0, 0, 0, 0, 0]])
    return model, x


def functional_bidirectional_stacked():
    seq = keras.Input((6, 4), name="seq")
    side = keras.Input((3,), name="side")
    x = L.Masking(0.0)(seq)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    x = L.RNN([L.GRUCell(3), L.SimpleRNNCell(2), L.LSTMCell(3)], return_sequences=True)(x)
    x = L.Bidirectional(L.GRU(2), merge_mode="sum")(x)
    out = L.Dense(2)(L.Concatenate()([x, L.Dense(3)(side)]))
    x_seq = seq_input()
    x_seq[0, 4:] = 0.0  # masked steps
    return keras.Model([seq, side], out), [x_seq, RNG.normal(size=(3, 3)).astype("float32")]


def lazy_sequential():
    """No Input: Keras records build_input_shape; Masking and Dropout on the way."""
    model = keras.Sequential([L.Masking(0.0), L.Dropout(0.2), L.SimpleRNN(3), L.Dense(1)])
    x = seq_input()
    x[1, 2:] = 0.0
    model(x)
    return model, x


CASES = {
    "lazy_sequential": lazy_sequential,
    "lstm": lstm_model,
    "gru_reset_after": lambda: gru_model(True),
    "gru_reset_before": lambda: gru_model(False),
    "simple_rnn_time_distributed_bn": simple_rnn_time_distributed_bn,
    "embedding_mask_zero": embedding_mask_zero,
    "functional_bidirectional_stacked": functional_bidirectional_stacked,
}


def rnnkit_predict(model, x):
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_file_predictions_match(case, tmp_path):
    keras_model, x = CASES[case]()
    randomize(keras_model)
    expected = np.asarray(keras_model.predict(x, verbose=0))
    keras_model.save(tmp_path / "k.keras")
    keras_model.save_weights(tmp_path / "k.weights.h5")

    model = load_model(tmp_path / "k.keras")
    # Keras lists the mask ops it records (NotEqual, Any) as operations, not layers
    names = [la.name for la in model.layers if not isinstance(la, _KerasOp)]
    assert names == [la.name for la in keras_model.layers]
    np.testing.assert_allclose(rnnkit_predict(model, x), expected, atol=1e-5)
    # same order and layouts as Keras' get_weights
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)

    # .weights.h5 into a model of the same architecture with other weights
    with torch.no_grad():
        for w in model.weights:
            w.uniform_(-1, 1)
    assert not np.allclose(rnnkit_predict(model, x), expected, atol=1e-3)
    load_weights(model, tmp_path / "k.weights.h5")
    np.testing.assert_allclose(rnnkit_predict(model, x), expected, atol=1e-5)


def test_weight_groups_follow_keras_paths():
    """The groups Keras 3.x writes for this architecture (by class and attribute, not by the
    layers' names)."""
    seq = rnnkit.Input((6, 4))
    x = rnnkit.layers.Bidirectional(rnnkit.layers.LSTM(4))(seq)
    x = rnnkit.layers.Dense(2)(rnnkit.layers.Dense(3)(x))
    model = rnnkit.Model(seq, x)
    paths = [p for layer, p in keras_weight_groups(model) if layer._own_weights()]
    assert paths == [
        "layers/bidirectional/backward_layer/cell",
        "layers/bidirectional/forward_layer/cell",
        "layers/dense",
        "layers/dense_1",
    ]


def test_imported_model_saves_as_rnnkit_file(tmp_path):
    keras_model, x = functional_bidirectional_stacked()
    randomize(keras_model)
    keras_model.save(tmp_path / "k.keras")
    model = load_model(tmp_path / "k.keras")
    rnnkit.saving.save_model(model, tmp_path / "r.keras")
    again = load_model(tmp_path / "r.keras")
    np.testing.assert_array_equal(rnnkit_predict(again, x), rnnkit_predict(model, x))
    np.testing.assert_allclose(
        rnnkit_predict(again, x), keras_model.predict(x, verbose=0), atol=1e-5
    )


def test_compiled_keras_model_loads(tmp_path):
    keras_model, x = lstm_model()
    keras_model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.MeanSquaredError(),
        metrics=["mae", keras.metrics.MeanAbsoluteError(name="abs_err")],
        weighted_metrics=["mse"],
    )
    y = RNG.normal(size=(3, 2)).astype("float32")
    keras_model.fit(x, y, epochs=1, verbose=0)  # optimizer variables in the file
    keras_model.save(tmp_path / "k.keras")
    model = load_model(tmp_path / "k.keras")
    expected = keras_model.predict(x, verbose=0)
    np.testing.assert_allclose(rnnkit_predict(model, x), expected, atol=1e-5)
    assert isinstance(model.optimizer, rnnkit.optimizers.Adam)
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    history = model.fit(x, y, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "mae", "abs_err", "mse"}

    keras_model.compile(optimizer=keras.optimizers.Nadam(), loss="mse")
    keras_model.save(tmp_path / "n.keras")
    with pytest.raises(ValueError, match="'Nadam' has no rnnkit counterpart.*compile=False"):
        load_model(tmp_path / "n.keras")
    assert not getattr(load_model(tmp_path / "n.keras", compile=False), "compiled", False)


# Keras optimizer -> {Keras slot variable name: (torch state name, factor on Keras' value)}
KERAS_OPTIMIZERS = {
    "adam": (
        lambda: keras.optimizers.Adam(0.01),
        {"momentum": ("exp_avg", 1), "velocity": ("exp_avg_sq", 1)},
    ),
    "adam_amsgrad": (
        lambda: keras.optimizers.Adam(0.01, amsgrad=True),
        {
            "momentum": ("exp_avg", 1),
            "velocity": ("exp_avg_sq", 1),
            "velocity_hat": ("max_exp_avg_sq", 1),
        },
    ),
    "adamw": (
        lambda: keras.optimizers.AdamW(0.01, weight_decay=0.01),
        {"momentum": ("exp_avg", 1), "velocity": ("exp_avg_sq", 1)},
    ),
    "sgd": (lambda: keras.optimizers.SGD(0.05), {}),
    "sgd_momentum": (
        lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        {"momentum": ("momentum_buffer", -1 / 0.05)},
    ),
    "sgd_nesterov": (
        lambda: keras.optimizers.SGD(0.05, momentum=0.8, nesterov=True),
        {"momentum": ("momentum_buffer", -1 / 0.05)},
    ),
    "rmsprop_centered_momentum": (
        lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        {
            "velocity": ("square_avg", 1),
            "momentum": ("momentum_buffer", 1 / 0.01),
            "average_gradient": ("grad_avg", 1),
        },
    ),
    "adagrad": (lambda: keras.optimizers.Adagrad(0.05), {"accumulator": ("sum", 1)}),
}


@pytest.mark.parametrize("optimizer", sorted(KERAS_OPTIMIZERS))
def test_keras_optimizer_state_is_imported(optimizer, tmp_path):
    """Keras trains 2 epochs and saves; rnnkit's loaded optimizer holds Keras' slot variables
    (found by their Keras names) and step count, and continues as Keras does."""
    make, slots = KERAS_OPTIMIZERS[optimizer]
    keras_model, _ = lstm_model()
    randomize(keras_model)
    x = RNG.normal(size=(8, 6, 4)).astype("float32")
    y = RNG.normal(size=(8, 2)).astype("float32")
    keras_model.compile(optimizer=make(), loss="mse")
    keras_model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    keras_model.save(tmp_path / "k.keras")
    model = load_model(tmp_path / "k.keras")
    assert model.optimizer.iterations == 4

    keras_slots = {
        v.path.split("/", 1)[1]: np.asarray(v.numpy()) for v in keras_model.optimizer.variables
    }
    state = model.optimizer.torch_optimizer.state_dict()["state"]
    for i, variable in enumerate(keras_model.trainable_variables):
        prefix = variable.path.replace("/", "_")
        for keras_name, (torch_name, factor) in slots.items():
            expected = keras_slots[f"{prefix}_{keras_name}"] * factor
            np.testing.assert_allclose(state[i][torch_name].numpy(), expected, rtol=1e-6, atol=1e-7)
        if "step" in state.get(i, {}):
            assert float(state[i]["step"]) == 4

    keras_model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    error = max(np.abs(a - b).max() for a, b in zip(model.get_weights(), keras_model.get_weights()))
    if optimizer.startswith("sgd"):  # the same update rule as Keras
        assert error < 1e-5
    elif optimizer.startswith(("adam", "adagrad")):
        # epsilon sits elsewhere in torch's rule: compare with a fresh optimizer state
        fresh = load_model(tmp_path / "k.keras", compile=False)
        fresh.compile(optimizer=type(model.optimizer)(**model.optimizer.get_config()), loss="mse")
        fresh.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        gap = max(
            np.abs(a - b).max() for a, b in zip(fresh.get_weights(), keras_model.get_weights())
        )
        assert error < gap / 10, (error, gap)


def test_keras_optimizer_state_that_does_not_fit_is_refused(tmp_path):
    keras_model, x = lstm_model()
    keras_model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    keras_model.fit(x, RNG.normal(size=(3, 2)), epochs=1, verbose=0)
    keras_model.save(tmp_path / "k.keras")
    with zipfile.ZipFile(tmp_path / "k.keras") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    config["compile_config"]["optimizer"]["config"]["amsgrad"] = True  # a slot more per weight
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as zf:
        for name, data in {**members, "config.json": json.dumps(config)}.items():
            zf.writestr(name, data)
    with pytest.raises(ValueError, match=r"holds 10 variables, but 5 trainable weights need 15"):
        load_model(tmp_path / "bad.keras")
    assert len(load_model(tmp_path / "bad.keras", compile=False).weights) == 5


def test_unsupported_keras_layer_is_named(tmp_path):
    model = keras.Sequential([keras.Input((6, 4)), L.SeparableConv1D(2, 3), L.LSTM(2)])
    model.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="Keras layer 'SeparableConv1D' .*is not supported"):
        load_model(tmp_path / "k.keras")


def test_unsupported_keras_argument_is_named(tmp_path):
    model = keras.Sequential([keras.Input((6, 4)), L.LSTM(2, name="rec")])
    model.save(tmp_path / "k.keras")
    with zipfile.ZipFile(tmp_path / "k.keras") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["future_option"] = "on"  # a newer Keras' argument
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as zf:
        for name, data in {**members, "config.json": json.dumps(config)}.items():
            zf.writestr(name, data)
    with pytest.raises(ValueError, match="layer 'rec'.* argument future_option='on'"):
        load_model(tmp_path / "bad.keras")


def test_keras_lambda_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((3,)), L.Lambda(lambda t: t * 2), L.Dense(1)])
    model.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="safe_mode=False"):
        load_model(tmp_path / "k.keras")


def test_keras_weights_with_wrong_shapes_are_refused(tmp_path):
    keras_model, _ = lstm_model()
    keras_model.save_weights(tmp_path / "k.weights.h5")
    model = rnnkit.Sequential([rnnkit.Input((6, 4)), rnnkit.layers.LSTM(6), rnnkit.layers.Dense(2)])
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"has shape \(4, 20\) .* expects \(4, 24\)"):
        load_weights(model, tmp_path / "k.weights.h5")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    smaller = rnnkit.Sequential([rnnkit.Input((6, 4)), rnnkit.layers.LSTM(5)])
    with pytest.raises(ValueError, match="no place for"):
        load_weights(smaller, tmp_path / "k.weights.h5")
    (tmp_path / "t.weights.h5").write_bytes((tmp_path / "k.weights.h5").read_bytes()[:100])
    with pytest.raises(ValueError, match="not a valid HDF5 file"):
        load_weights(model, tmp_path / "t.weights.h5")


def test_weights_h5_into_model_built_in_rnnkit(tmp_path):
    """The usual workflow: the same architecture written in rnnkit (other layer names)."""
    keras_model, x = functional_bidirectional_stacked()
    randomize(keras_model)
    keras_model.save_weights(tmp_path / "k.weights.h5")
    R = rnnkit.layers
    seq, side = rnnkit.Input((6, 4)), rnnkit.Input((3,))
    h = R.Masking(0.0)(seq)
    h = R.Bidirectional(R.LSTM(4, return_sequences=True))(h)
    h = R.RNN([R.GRUCell(3), R.SimpleRNNCell(2), R.LSTMCell(3)], return_sequences=True)(h)
    h = R.Bidirectional(R.GRU(2), merge_mode="sum")(h)
    out = R.Dense(2)(R.Concatenate()([h, R.Dense(3)(side)]))
    model = rnnkit.Model([seq, side], out)
    model.load_weights(tmp_path / "k.weights.h5")
    expected = keras_model.predict(x, verbose=0)
    np.testing.assert_allclose(rnnkit_predict(model, x), expected, atol=1e-5)


def test_nested_keras_models(tmp_path):
    inner = keras.Sequential([keras.Input((6, 4)), L.GRU(3, return_sequences=True)])
    inp = keras.Input((6, 4))
    out = L.Dense(2)(L.LSTM(2)(inner(inp)))
    keras_model = randomize(keras.Model(inp, out))
    x = seq_input()
    keras_model.save(tmp_path / "k.keras")
    model = load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(
        rnnkit_predict(model, x), keras_model.predict(x, verbose=0), atol=1e-5
    )
