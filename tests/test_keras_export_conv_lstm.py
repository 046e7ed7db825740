"""ConvLSTM1D/2D/3D written as Keras 3 files load in real Keras 3 with the same predictions.

The harness of ``tests/test_keras_export.py`` on models of ConvLSTM layers: random weights,
``model.save(path, format="keras")``, ``keras.saving.load_model``, Keras' predictions equal to
rnnkit's (1e-5), the same weights in Keras, Keras' re-save writing the same weight datasets,
the ``.weights.h5`` files read both ways, and the files (rnnkit's and Keras' re-saved one)
loading back into rnnkit. The models cover each rank, both data formats, ``"same"`` and
``"valid"`` padding, strides and dilation, ``go_backwards``, masks, ``return_sequences`` and
``return_state`` (with the states fed to a second layer as ``initial_state``), Bidirectional,
TimeDistributed, a stateful Sequential model, ``unroll`` and the non-default initializers,
regularizers, constraints and dropout rates. Each ConvLSTM layer's config must equal the one
Keras writes for it. The zoo's ConvLSTM model (``conv_lstm_next_frame``) runs with the other
zoo models in ``tests/test_keras_export.py``.
"""

import json
import os

import keras
import numpy as np
import pytest
from test_keras_export import (
    _assert_close,
    _check_in_keras,
    _member,
    _randomize,
    _rnnkit_outputs,
)

import rnnkit
from rnnkit import layers
from rnnkit.saving import load_model, load_weights
from rnnkit.saving.keras_export import RNNKIT_ONLY_ARGUMENTS, layer_entry

CONV_LSTM = ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def _floats(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _conv_lstm_model(name):
    """A fresh model (rnnkit's random initial weights) and inputs, for each case."""
    if name == "1d_stacked_same_valid_strides":
        x = rnnkit.Input((4, 9, 3))
        h = layers.ConvLSTM1D(3, 4, padding="same", return_sequences=True)(x)
        h = layers.ConvLSTM1D(2, 3, strides=2, go_backwards=True)(h)
        return rnnkit.Model(x, layers.Dense(2)(layers.Flatten()(h))), _floats(2, 4, 9, 3)
    if name == "1d_channels_first_dilation_bidirectional_states":
        x = rnnkit.Input((4, 3, 10))
        h = layers.ConvLSTM1D(
            3,
            3,
            dilation_rate=2,
            data_format="channels_first",
            return_sequences=True,
            go_backwards=True,
            activation="relu",
            recurrent_activation="hard_sigmoid",
            use_bias=False,
        )(x)
        outputs = layers.Bidirectional(
            layers.ConvLSTM1D(2, 2, padding="same", data_format="channels_first", return_state=True)
        )(h)
        return rnnkit.Model(x, outputs), _floats(2, 4, 3, 10)
    if name == "1d_masked_by_an_input":
        # the mask (with a hole) reaches the second layer through the first's return_sequences
        x, mask = rnnkit.Input((4, 9, 3)), rnnkit.Input((4,), dtype="bool")
        h = layers.ConvLSTM1D(3, 3, padding="same", return_sequences=True)(x, mask=mask)
        out = layers.ConvLSTM1D(2, 2, go_backwards=True, zero_output_for_mask=True)(h)
        masks = np.array([[1, 1, 0, 0], [1, 0, 1, 1]], bool)
        return rnnkit.Model([x, mask], [h, out]), [_floats(2, 4, 9, 3), masks]
    if name == "2d_strides_bidirectional_sum":
        x = rnnkit.Input((4, 6, 5, 2))
        h = layers.ConvLSTM2D(
            3, (2, 3), padding="same", strides=(1, 2), return_sequences=True, unit_forget_bias=False
        )(x)
        h = layers.Bidirectional(layers.ConvLSTM2D(2, 3, return_sequences=True), merge_mode="sum")(
            h
        )
        return rnnkit.Model(x, h), _floats(2, 4, 6, 5, 2)
    if name == "2d_channels_first_states_to_initial_state":
        x = rnnkit.Input((4, 2, 6, 5))
        seq, h, c = layers.ConvLSTM2D(
            3,
            3,
            padding="same",
            data_format="channels_first",
            return_sequences=True,
            return_state=True,
        )(x)
        y = layers.ConvLSTM2D(3, (3, 2), padding="same", data_format="channels_first")(
            seq, initial_state=[h, c]
        )
        return rnnkit.Model(x, [y, h, c]), _floats(2, 4, 2, 6, 5)
    if name == "3d_same_strides_then_valid_dilation":
        x = rnnkit.Input((3, 4, 5, 3, 2))
        h = layers.ConvLSTM3D(
            2, (2, 3, 2), padding="same", strides=(1, 2, 1), return_sequences=True
        )(x)
        h = layers.ConvLSTM3D(2, 2, dilation_rate=(1, 2, 1), go_backwards=True)(h)
        return rnnkit.Model(x, h), _floats(2, 3, 4, 5, 3, 2)
    if name == "3d_channels_first_bidirectional":
        x = rnnkit.Input((3, 2, 4, 3, 4))
        h = layers.Bidirectional(
            layers.ConvLSTM3D(2, 2, strides=(2, 1, 2), data_format="channels_first"),
            merge_mode="concat",
        )(x)
        return rnnkit.Model(x, h), _floats(2, 3, 2, 4, 3, 4)
    if name == "time_distributed":
        x = rnnkit.Input((2, 3, 6, 2))
        h = layers.TimeDistributed(layers.ConvLSTM1D(3, 2, return_sequences=True))(x)
        return rnnkit.Model(x, h), _floats(2, 2, 3, 6, 2)
    if name == "stateful_sequential":
        model = rnnkit.Sequential(
            [
                layers.ConvLSTM2D(
                    2, 3, padding="same", stateful=True, batch_input_shape=(2, 3, 5, 5, 1)
                ),
                layers.Flatten(),
                layers.Dense(1),
            ]
        )
        return model, _floats(2, 3, 5, 5, 1)
    if name == "unroll_dropout_and_objects":
        x = rnnkit.Input((3, 5, 4, 2))
        h = layers.ConvLSTM2D(
            2,
            2,
            unroll=True,
            dropout=0.3,
            recurrent_dropout=0.2,
            seed=3,
            kernel_initializer="he_normal",
            recurrent_initializer=rnnkit.initializers.Orthogonal(gain=0.5, seed=1),
            bias_initializer="ones",
            kernel_regularizer=rnnkit.regularizers.L2(1e-3),
            recurrent_regularizer="l1",
            bias_regularizer=rnnkit.regularizers.L1L2(1e-4, 1e-3),
            activity_regularizer="l2",
            kernel_constraint=rnnkit.constraints.MaxNorm(2.0),
            recurrent_constraint="unit_norm",
            bias_constraint="non_neg",
        )(x)
        return rnnkit.Model(x, h), _floats(2, 3, 5, 4, 2)
    raise KeyError(name)


CASES = [
    "1d_stacked_same_valid_strides",
    "1d_channels_first_dilation_bidirectional_states",
    "1d_masked_by_an_input",
    "2d_strides_bidirectional_sum",
    "2d_channels_first_states_to_initial_state",
    "3d_same_strides_then_valid_dilation",
    "3d_channels_first_bidirectional",
    "time_distributed",
    "stateful_sequential",
    "unroll_dropout_and_objects",
]


def _conv_lstm_configs(config):
    """``{name: config}`` of every ConvLSTM layer in a ``config.json`` object (nested in
    Bidirectional and TimeDistributed too), without Keras' ``shared_object_id`` entries."""
    found = {}

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k != "shared_object_id"}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    def walk(value):
        if isinstance(value, dict):
            if value.get("class_name") in CONV_LSTM:
                found[value["config"]["name"]] = clean(value["config"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(config)
    return found


def _as_keras_rewrites_l1(value):
    """``value`` with the factor of each L1 regularizer rounded to float32: Keras 3.15's L1
    keeps ``l1`` as a float32 tensor and so writes 0.01 back as 0.009999999776482582, while
    its L2 and L1L2 keep the float they were given (Keras disagrees with itself)."""
    if isinstance(value, dict):
        if value.get("class_name") == "L1" and value.get("module") == "keras.regularizers":
            l1 = float(np.float32(value["config"]["l1"]))
            return {**value, "config": {**value["config"], "l1": l1}}
        return {k: _as_keras_rewrites_l1(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_keras_rewrites_l1(v) for v in value]
    return value


@pytest.mark.parametrize("name", CASES)
def test_keras_loads_exported_conv_lstm_model(name, tmp_path):
    model, inputs = _conv_lstm_model(name)
    model = _randomize(model)
    expected = _rnnkit_outputs(model, inputs)
    model.save(tmp_path / "m.keras", format="keras")
    model.save_weights(tmp_path / "m.weights.h5")
    _check_in_keras(model, inputs, expected, tmp_path)  # writes k.keras and k.weights.h5

    # each ConvLSTM's config is the one Keras writes for the layer it loaded
    ours = _conv_lstm_configs(json.loads(_member(tmp_path / "m.keras", "config.json")))
    theirs = _conv_lstm_configs(json.loads(_member(tmp_path / "k.keras", "config.json")))
    assert ours and _as_keras_rewrites_l1(ours) == theirs

    # back into rnnkit: our file, Keras' re-saved file, and Keras' weights into a twin
    for path in ("m.keras", "k.keras"):
        _assert_close(_rnnkit_outputs(load_model(tmp_path / path), inputs), expected)
    twin, _ = _conv_lstm_model(name)
    assert not all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), model.get_weights()))
    load_weights(twin, tmp_path / "k.weights.h5")
    _assert_close(_rnnkit_outputs(twin, inputs), expected)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_written_config_is_what_keras_serializes(rank):
    """A ConvLSTM with every argument away from its default: the written entry is the one
    Keras 3 serializes for the layer it rebuilds from it (same keys, same values)."""
    class_name = CONV_LSTM[rank - 1]
    arguments = dict(
        filters=3,
        kernel_size=(2, 3, 2)[:rank],
        strides=2,
        padding="same",
        data_format="channels_first",
        activation="relu",
        recurrent_activation="hard_sigmoid",
        use_bias=False,
        kernel_initializer="he_uniform",
        unit_forget_bias=False,
        kernel_regularizer="l2",
        recurrent_constraint="non_neg",
        dropout=0.25,
        recurrent_dropout=0.5,
        seed=7,
        return_sequences=True,
        return_state=True,
        go_backwards=True,
        stateful=True,
        unroll=True,
        zero_output_for_mask=True,
        name="conv",
    )
    ours = layer_entry(
        {"class_name": class_name, "config": getattr(layers, class_name)(**arguments).get_config()}
    )
    assert ours["module"] == "keras.layers" and ours["registered_name"] is None
    rebuilt = keras.saving.deserialize_keras_object(ours)
    assert type(rebuilt) is getattr(keras.layers, class_name)
    assert ours == json.loads(json.dumps(keras.saving.serialize_keras_object(rebuilt)))
    assert not set(ours["config"]) & set(RNNKIT_ONLY_ARGUMENTS[class_name])


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: layers.ConvLSTM1D(2, 2, time_major=True),
            "time_major=True, an rnnkit-only argument that Keras 3's ConvLSTM1D",
        ),
        (
            lambda: layers.ConvLSTM1D(2, 2, compile_loop=True),
            "compile_loop=True, an rnnkit-only argument that Keras 3's ConvLSTM1D",
        ),
        (
            lambda: layers.Bidirectional(layers.ConvLSTM1D(2, 2, compile_loop=True)),
            "compile_loop=True, an rnnkit-only argument that Keras 3's ConvLSTM1D",
        ),
        (
            lambda: layers.RNN(layers.ConvLSTMCell(1, 2, 2)),
            r"Keras 3 does not have \(ConvLSTMCell\): keras.layers has no ConvLSTMCell .*"
            r"use ConvLSTM1D/2D/3D instead of RNN\(ConvLSTMCell\(...\)\)",
        ),
    ],
)
def test_what_keras_does_not_have_is_refused(make, message, tmp_path):
    inputs = rnnkit.Input((5, 6, 2))
    model = rnnkit.Model(inputs, make()(inputs))
    with pytest.raises(ValueError, match=message):
        model.save(tmp_path / "m.keras", format="keras")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("class_name", CONV_LSTM)
def test_rnnkit_only_arguments_at_keras_behaviour_are_left_out(class_name):
    rank = CONV_LSTM.index(class_name) + 1
    layer = getattr(layers, class_name)(2, 2, time_major=False, compile_loop=False)
    assert {"time_major", "compile_loop"} <= set(layer.get_config())
    entry = layer_entry({"class_name": class_name, "config": layer.get_config()})
    assert not {"time_major", "compile_loop"} & set(entry["config"])
    assert entry["config"]["kernel_size"] == [2] * rank


def test_training_continues_in_keras_where_rnnkit_stopped(tmp_path):
    """A compiled ConvLSTM model after two Adam steps in rnnkit: Keras opens it compiled
    with Adam's moments in its own variable order, and its next step equals rnnkit's."""
    model, x = _conv_lstm_model("2d_strides_bidirectional_sum")
    model = _randomize(model)
    y = _floats(2, 4, 4, 1, 2, seed=1)
    model.compile(rnnkit.optimizers.Adam(0.01), "mse")
    model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras", format="keras")
    keras_model = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(keras_model.optimizer, keras.optimizers.Adam)
    assert int(keras_model.optimizer.iterations) == 2
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    keras_model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
