"""rnnkit models written as Keras 3 files load in real Keras 3 with the same predictions.

Each zoo model (tests/model_zoo.py) whose layers Keras has is given random weights (biases
too), written with ``model.save(path, format="keras")`` and loaded with
``keras.saving.load_model``; Keras' predictions must equal rnnkit's (1e-5), the file's HDF5
layout must equal the one Keras writes when it saves the loaded model, and Keras'
``load_weights`` must read rnnkit's ``.weights.h5``. The same files load back into rnnkit.
Models Keras 3 cannot express are refused with an error that names what is missing, before
any file is written.
"""

import inspect
import io
import json
import os
import re
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest
import torch
from model_zoo import ZOO

import rnnkit
from rnnkit import layers
from rnnkit.callbacks import LambdaCallback, ModelCheckpoint
from rnnkit.saving import export_keras, load_model, load_weights, save_weights
from rnnkit.saving import files as saving_files
from rnnkit.saving.keras_export import (
    KERAS_LAYERS,
    REFUSED_LAYERS,
    RNNKIT_ONLY_ARGUMENTS,
    layer_entry,
)

# Zoo models Keras 3 cannot express, and the class or argument the refusal names.
NOT_EXPORTABLE: dict[str, str] = {
    "guide_nested_cell": "custom layer (NestedCell)",
    "constants_from_input": "custom layer (ConstantsCell)",
    "cell_wrappers": "rnnkit layer that Keras 3 does not have (DropoutCell)",
    "custom_unregistered_layer": "custom layer (Scale)",
    "subclassed_classifier": "subclassed model (TextClassifier)",
    "subclassed_two_towers": "subclassed model (TwoTowers)",
    "subclassed_inside_functional": "subclassed model (SequenceEncoder)",
    "subclassed_inside_sequential": "subclassed model (SequenceEncoder)",
}
# Keras loads it, but on padded inputs Keras' own predictions depend on which tensors the
# Keras model outputs (see test_attention_merges_in_keras): compared without padding.
KERAS_INCONSISTENT = ("attention_merges",)
EXPORTABLE = sorted(name for name in ZOO if name not in {*NOT_EXPORTABLE, *KERAS_INCONSISTENT})
# Warnings Keras gives about the zoo model itself (rnnkit's Flatten drops the mask as Keras'
# does, without a warning).
KERAS_WARNINGS = {"core_layers": "(?s).*Layer 'flatten' .* does not support masking"}


def _randomize(model):
    """Perturb every weight (biases and BatchNormalization statistics too; variances stay
    positive), so that a misplaced or dropped weight changes the predictions."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for w in model.weights:
            w.add_(torch.rand(w.shape, generator=generator, dtype=w.dtype) * 0.4 - 0.2)
    return model


def _rnnkit_outputs(model, inputs):
    model.reset_states()
    with torch.no_grad():
        outputs = model(inputs, training=False)
    return [o.detach().cpu().numpy() for o in rnnkit.tree.flatten(outputs)]


def _keras_outputs(model, inputs):
    for layer in model._flatten_layers():
        if getattr(layer, "stateful", False):
            layer.reset_states()
    outputs = model(inputs, training=False)
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)]


def _assert_close(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def _h5_datasets(data):
    """``{path: array}`` of every dataset in HDF5 bytes (the ``name`` attributes aside)."""
    found = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(
            lambda name, obj: (
                found.__setitem__(name, np.asarray(obj[()]))
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    return found


def _member(path, name):
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def test_zoo_is_classified():
    """Every zoo model is either exported (and tested below) or refused on purpose."""
    assert set(NOT_EXPORTABLE) <= set(ZOO)
    assert set(EXPORTABLE) | set(NOT_EXPORTABLE) | set(KERAS_INCONSISTENT) == set(ZOO)
    assert len(EXPORTABLE) >= 25


@pytest.mark.parametrize("name", EXPORTABLE)
def test_keras_loads_exported_zoo_model(name, tmp_path):
    entry = ZOO[name]()
    model = _randomize(entry.model)
    expected = _rnnkit_outputs(model, entry.inputs)
    model.save(tmp_path / "m.keras", format="keras")
    model.save_weights(tmp_path / "m.weights.h5")
    with warnings.catch_warnings():
        if name in KERAS_WARNINGS:
            warnings.filterwarnings("ignore", KERAS_WARNINGS[name], UserWarning)
        _check_in_keras(model, entry.inputs, expected, tmp_path)

    # and back: Keras' own .weights.h5 of that model into an rnnkit twin with other weights
    twin = ZOO[name]().model
    load_weights(twin, tmp_path / "k.weights.h5")
    _assert_close(_rnnkit_outputs(twin, entry.inputs), expected)


def _check_in_keras(model, inputs, expected, tmp_path):
    keras_model = keras.saving.load_model(tmp_path / "m.keras")
    _assert_close(_keras_outputs(keras_model, inputs), expected)
    assert [w.shape for w in keras_model.get_weights()] == [w.shape for w in model.get_weights()]
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)

    # the weight layout is Keras' own: Keras saving the loaded model writes the same datasets
    keras_model.save(tmp_path / "k.keras")
    ours = _h5_datasets(_member(tmp_path / "m.keras", "model.weights.h5"))
    theirs = _h5_datasets(_member(tmp_path / "k.keras", "model.weights.h5"))
    assert sorted(ours) == sorted(theirs)
    for path, array in theirs.items():
        np.testing.assert_array_equal(ours[path], array)

    # rnnkit's .weights.h5 into the Keras model, after Keras' weights were changed
    keras_model.set_weights([np.zeros_like(w) + 0.1 for w in keras_model.get_weights()])
    keras_model.load_weights(tmp_path / "m.weights.h5")
    _assert_close(_keras_outputs(keras_model, inputs), expected)
    keras_model.save_weights(tmp_path / "k.weights.h5")


@pytest.mark.parametrize("name", EXPORTABLE)
def test_exported_zoo_model_loads_back_into_rnnkit(name, tmp_path):
    """rnnkit -> Keras file -> rnnkit (read by the Keras importer), and the .weights.h5 file
    into a twin with other weights."""
    entry = ZOO[name]()
    model = _randomize(entry.model)
    expected = _rnnkit_outputs(model, entry.inputs)
    export_keras(model, tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    _assert_close(_rnnkit_outputs(again, entry.inputs), expected)

    save_weights(model, tmp_path / "m.weights.h5")
    twin = ZOO[name]().model
    assert not all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), model.get_weights()))
    load_weights(twin, tmp_path / "m.weights.h5")
    _assert_close(_rnnkit_outputs(twin, entry.inputs), expected)


def test_keras_file_moves_both_ways(tmp_path):
    """Keras -> rnnkit -> Keras: a Keras graph with the mask ops it records (NotEqual) is
    imported, exported again and loaded by Keras with Keras' predictions."""
    L = keras.layers
    tokens = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 4, mask_zero=True)(tokens)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True))(x)
    x = L.GRU(2)(x)
    keras_model = keras.Model(tokens, L.Dense(2)(x))
    rng = np.random.default_rng(0)
    keras_model.set_weights([rng.uniform(-0.5, 0.5, w.shape) for w in keras_model.get_weights()])
    inputs = np.array([[3, 5, 7, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    expected = [keras.ops.convert_to_numpy(keras_model(inputs))]
    keras_model.save(tmp_path / "k.keras")

    model = load_model(tmp_path / "k.keras")
    _assert_close(_rnnkit_outputs(model, inputs), expected)
    model.save(tmp_path / "r.keras", format="keras")
    again = keras.saving.load_model(tmp_path / "r.keras")
    _assert_close([keras.ops.convert_to_numpy(again(inputs))], expected)
    config = json.loads(_member(tmp_path / "r.keras", "config.json"))
    assert "NotEqual" in [entry["class_name"] for entry in config["config"]["layers"]]


def test_file_layout_and_serialization_format(tmp_path):
    """config.json uses Keras 3's object format everywhere; metadata.json names the Keras
    version whose layout is written."""
    entry = ZOO["mixed_functional"]()
    export_keras(entry.model, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    metadata = json.loads(_member(tmp_path / "m.keras", "metadata.json"))
    assert metadata["keras_version"].startswith("3.")
    config = json.loads(_member(tmp_path / "m.keras", "config.json"))
    assert config["module"] == "keras.src.models.functional"
    assert config["class_name"] == "Functional"
    assert config["compile_config"] is None

    objects = []

    def walk(value):
        if isinstance(value, dict):
            if "class_name" in value and value["class_name"] != "__keras_tensor__":
                objects.append(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(config["config"])
    kinds = {obj["module"] for obj in objects}
    assert kinds == {"keras", "keras.layers", "keras.initializers"}
    for obj in objects:
        assert {"module", "class_name", "config", "registered_name"} <= set(obj)
    for obj in objects:
        if obj["module"] == "keras.layers":
            assert obj["class_name"] in KERAS_LAYERS
            assert not set(obj["config"]) & {"time_major", "compile_loop", "batch_input_shape"}


def _keras_arguments(cls):
    """The keyword arguments Keras' layer class takes: the ``__init__`` parameters along its
    class hierarchy, as long as each ``__init__`` passes ``**kwargs`` on."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or klass is object:
            continue
        parameters = inspect.signature(klass.__dict__["__init__"]).parameters.values()
        names |= {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return names - {"self"}


# One instance of each layer class written to Keras files, with its required arguments.
LAYER_EXAMPLES = {
    "InputLayer": lambda: layers.InputLayer(shape=(3,)),
    "Dense": lambda: layers.Dense(2),
    "Dropout": lambda: layers.Dropout(0.1),
    "Embedding": lambda: layers.Embedding(3, 2),
    "Flatten": layers.Flatten,
    "Masking": layers.Masking,
    "Reshape": lambda: layers.Reshape((2,)),
    "Activation": lambda: layers.Activation("relu"),
    "Add": layers.Add,
    "Concatenate": layers.Concatenate,
    "BatchNormalization": layers.BatchNormalization,
    "LSTM": lambda: layers.LSTM(2),
    "GRU": lambda: layers.GRU(2),
    "SimpleRNN": lambda: layers.SimpleRNN(2),
    "RNN": lambda: layers.RNN(layers.LSTMCell(2)),
    "StackedRNNCells": lambda: layers.StackedRNNCells([layers.LSTMCell(2)]),
    "LSTMCell": lambda: layers.LSTMCell(2),
    "GRUCell": lambda: layers.GRUCell(2),
    "SimpleRNNCell": lambda: layers.SimpleRNNCell(2),
    "Bidirectional": lambda: layers.Bidirectional(layers.LSTM(2)),
    "TimeDistributed": lambda: layers.TimeDistributed(layers.Dense(2)),
    "ConvLSTM1D": lambda: layers.ConvLSTM1D(2, 3),
    "ConvLSTM2D": lambda: layers.ConvLSTM2D(2, 3),
    "ConvLSTM3D": lambda: layers.ConvLSTM3D(2, 3),
    "Conv1D": lambda: layers.Conv1D(2, 3),
    "Conv2D": lambda: layers.Conv2D(2, 3),
    "Conv3D": lambda: layers.Conv3D(2, 3),
    "MaxPooling1D": layers.MaxPooling1D,
    "AveragePooling1D": layers.AveragePooling1D,
    "GlobalMaxPooling1D": layers.GlobalMaxPooling1D,
    "GlobalAveragePooling1D": layers.GlobalAveragePooling1D,
    "Cropping1D": layers.Cropping1D,
    "ZeroPadding1D": layers.ZeroPadding1D,
    "UpSampling1D": layers.UpSampling1D,
    "RepeatVector": lambda: layers.RepeatVector(2),
    "Permute": lambda: layers.Permute((2, 1)),
    "SpatialDropout1D": lambda: layers.SpatialDropout1D(0.1),
    "LayerNormalization": layers.LayerNormalization,
    "Attention": layers.Attention,
    "AdditiveAttention": layers.AdditiveAttention,
    "MultiHeadAttention": lambda: layers.MultiHeadAttention(2, 3),
    "Average": layers.Average,
    "Multiply": layers.Multiply,
    "Subtract": layers.Subtract,
    "Dot": lambda: layers.Dot(axes=1),
}


def _tokens_and_lstm(units=4, vocabulary=20):
    """Integer inputs with a mask (Embedding(mask_zero)) and an LSTM's sequences over them."""
    tokens = rnnkit.Input((None,), dtype="int64")
    embedded = layers.Embedding(vocabulary, 5, mask_zero=True)(tokens)
    return tokens, layers.LSTM(units, return_sequences=True)(embedded)


def _around_rnn_model(name):
    """A small model for each layer around RNNs that the export writes; returns (model,
    inputs). Integer inputs carry padding (masks) where the layer uses masks."""
    rng = np.random.default_rng(0)
    floats = rng.standard_normal((2, 8, 3)).astype("float32")
    tokens = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    if name == "conv1d":
        x = rnnkit.Input((None, 3))
        h = layers.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu")(x)
        h = layers.Conv1D(3, 2, strides=2, padding="same", use_bias=False)(h)
        return rnnkit.Model(x, layers.LSTM(3)(h)), floats
    if name == "conv2d_conv3d":
        x = rnnkit.Input((4, 6, 6, 1))
        h = layers.Conv3D(2, (2, 3, 3), padding="same", activation="tanh")(x)
        h = layers.Reshape((4, 6, 12))(h)
        h = layers.Conv2D(3, (1, 3), strides=(1, 2))(h)
        h = layers.LSTM(2)(layers.Reshape((4, 6))(h))
        return rnnkit.Model(x, h), rng.standard_normal((2, 4, 6, 6, 1)).astype("float32")
    if name == "pooling_and_reshaping":
        x = rnnkit.Input((8, 3))
        h = layers.MaxPooling1D(2, strides=1, padding="same")(x)
        h = layers.AveragePooling1D(3, padding="valid")(layers.ZeroPadding1D((1, 2))(h))
        h = layers.UpSampling1D(2)(layers.Cropping1D((1, 0))(h))
        h = layers.GRU(4, return_sequences=True)(layers.SpatialDropout1D(0.3)(h))
        h = layers.Permute((2, 1))(h)
        out = layers.Concatenate()(
            [layers.GlobalMaxPooling1D()(h), layers.GlobalAveragePooling1D()(h)]
        )
        out = layers.SimpleRNN(2)(layers.RepeatVector(3)(out))
        return rnnkit.Model(x, out), floats
    if name == "masked_pooling_and_layer_normalization":
        inputs, h = _tokens_and_lstm()
        h = layers.LayerNormalization(epsilon=1e-4)(h)
        h = layers.LayerNormalization(center=False, scale=False)(h)
        return rnnkit.Model(inputs, layers.GlobalAveragePooling1D()(h)), tokens
    if name == "attention":
        inputs, h = _tokens_and_lstm()
        a = layers.Attention(use_scale=True, score_mode="concat")([h, h])
        b = layers.Attention()([h, h, h])
        return rnnkit.Model(inputs, layers.Add()([a, b])), tokens
    if name == "additive_attention":
        inputs, h = _tokens_and_lstm()
        out = layers.AdditiveAttention(use_scale=False)([h, h])
        return rnnkit.Model(inputs, out), tokens
    if name == "multi_head_attention":
        inputs, h = _tokens_and_lstm(units=6)
        out = layers.MultiHeadAttention(2, 3, value_dim=2, output_shape=4)(h, h, h)
        # At a padded query step every key is masked: Keras gives it uniform weights (its
        # -1e9 adder), rnnkit all-zero weights (layers/multi_head_attention.py); the output
        # there is masked, so the comparison is after a masked pooling.
        return rnnkit.Model(inputs, layers.GlobalAveragePooling1D()(out)), tokens
    if name == "merges":
        inputs, h = _tokens_and_lstm()
        g = layers.GRU(4, return_sequences=True)(h)
        merged = layers.Average()([layers.Multiply()([h, g]), layers.Subtract()([g, h])])
        pooled = layers.GlobalAveragePooling1D()(merged)
        scores = layers.Dot(axes=1, normalize=True)([pooled, layers.GlobalAveragePooling1D()(h)])
        dots = layers.Dot(axes=(2, 2))([h, g])
        return rnnkit.Model(inputs, [scores, dots]), tokens
    raise KeyError(name)


AROUND_RNN = [
    "conv1d",
    "conv2d_conv3d",
    "pooling_and_reshaping",
    "masked_pooling_and_layer_normalization",
    "attention",
    "additive_attention",
    "multi_head_attention",
    "merges",
]


@pytest.mark.parametrize("name", AROUND_RNN)
def test_keras_loads_the_layers_around_rnns(name, tmp_path):
    """Each layer around RNNs, in a small model with an RNN (and masks where the layer uses
    them): Keras 3 loads the file and predicts what rnnkit predicts, its own re-save writes
    the same weight datasets, and the file loads back into rnnkit."""
    model, inputs = _around_rnn_model(name)
    model = _randomize(model)
    expected = _rnnkit_outputs(model, inputs)
    model.save(tmp_path / "m.keras", format="keras")
    model.save_weights(tmp_path / "m.weights.h5")
    _check_in_keras(model, inputs, expected, tmp_path)
    again = load_model(tmp_path / "m.keras")
    _assert_close(_rnnkit_outputs(again, inputs), expected)


def test_every_written_layer_class_has_an_example():
    assert set(LAYER_EXAMPLES) == set(KERAS_LAYERS)


def test_every_public_layer_is_written_or_refused_with_a_reason():
    """Each public rnnkit layer class is either written (KERAS_LAYERS, with the same class
    name in keras.layers) or refused with its reason (REFUSED_LAYERS, absent from
    keras.layers), so no layer falls through to "not written yet"."""
    public = {
        name
        for name, value in vars(layers).items()
        if isinstance(value, type) and issubclass(value, layers.Layer) and value is not layers.Layer
    }
    public = {getattr(layers, name).__name__ for name in public}
    assert public == set(KERAS_LAYERS) | set(REFUSED_LAYERS)
    assert not set(KERAS_LAYERS) & set(REFUSED_LAYERS)
    assert all(hasattr(keras.layers, name) for name in KERAS_LAYERS)
    assert not any(hasattr(keras.layers, name) for name in REFUSED_LAYERS if name != "Lambda")


@pytest.mark.parametrize("class_name", sorted(KERAS_LAYERS))
def test_written_arguments_are_keras_arguments(class_name):
    """Every argument written for a layer is one Keras' class of that name takes (a new
    rnnkit argument must be added to RNNKIT_ONLY_ARGUMENTS), and the ones left out are not
    Keras 3's."""
    keras_arguments = _keras_arguments(getattr(keras.layers, class_name))
    assert not set(RNNKIT_ONLY_ARGUMENTS.get(class_name, {})) & keras_arguments
    layer = LAYER_EXAMPLES[class_name]()
    assert type(layer).__name__ == class_name
    ours = layer_entry({"class_name": class_name, "config": layer.get_config()})
    assert set(ours["config"]) <= keras_arguments


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.LSTM(3, time_major=True), "time_major=True, an rnnkit-only argument"),
        (lambda: layers.GRU(3, compile_loop=True), "compile_loop=True, an rnnkit-only argument"),
        (lambda: layers.SimpleRNN(3, use_cudnn=False), "use_cudnn=False, an rnnkit-only"),
        (lambda: layers.LSTM(3, activation=lambda t: t), "activation=.*built-in activations"),
        (
            lambda: layers.RNN(layers.DropoutCell(layers.GRUCell(3), input_keep_prob=0.5)),
            r"rnnkit layer that Keras 3 does not have \(DropoutCell\)",
        ),
        (
            # Keras has Lambda, but would need its Python code: refused, with the reason.
            lambda: layers.Lambda(lambda t: 2 * t),
            r"is a layer of Python code \(Lambda\): rnnkit never writes code into a file, "
            r"and Keras 3 would need it: .* marshalled bytecode, which it loads only with "
            r"safe_mode=False",
        ),
    ],
)
def test_what_keras_does_not_have_is_refused(make, message, tmp_path):
    inputs = rnnkit.Input((5, 2))
    model = rnnkit.Model(inputs, make()(inputs))
    with pytest.raises(ValueError, match=message):
        model.save(tmp_path / "m.keras", format="keras")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", sorted(NOT_EXPORTABLE))
def test_weights_h5_of_any_model_round_trips(name, tmp_path):
    """A .weights.h5 file can hold any rnnkit model (custom layers, subclassed models: what a
    ModelCheckpoint needs); it loads into a twin with other weights."""
    entry = ZOO[name]()
    model = _randomize(entry.model)
    expected = _rnnkit_outputs(model, entry.inputs)
    model.save_weights(tmp_path / "m.weights.h5")
    twin = ZOO[name]().model
    load_weights(twin, tmp_path / "m.weights.h5")
    _assert_close(_rnnkit_outputs(twin, entry.inputs), expected)


@pytest.mark.parametrize("name", sorted(NOT_EXPORTABLE))
def test_zoo_models_keras_lacks_are_refused(name, tmp_path):
    model = ZOO[name]().model
    with pytest.raises(ValueError, match=re.escape(f" {NOT_EXPORTABLE[name]}; the Keras export")):
        export_keras(model, tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []


def test_constants_call_argument_is_refused():
    entry = {
        "class_name": "RNN",
        "name": "rnn",
        "config": layers.RNN(layers.GRUCell(2)).get_config(),
        "inbound_nodes": [{"args": [], "kwargs": {"constants": [1.0]}}],
    }
    with pytest.raises(ValueError, match="constants=..., an rnnkit-only call argument"):
        layer_entry(entry)


def test_bad_arguments_are_refused(tmp_path):
    model = ZOO["time_series"]().model
    with pytest.raises(ValueError, match='format must be "rnnkit" or "keras"'):
        model.save(tmp_path / "m.keras", format="tf")
    with pytest.raises(ValueError, match="must end in '.keras'"):
        export_keras(model, tmp_path / "m.h5")
    with pytest.raises(TypeError, match="expected an rnnkit Model"):
        export_keras(layers.Dense(2), tmp_path / "m.keras")
    with pytest.raises(ValueError, match="not built"):
        export_keras(rnnkit.Sequential([layers.Dense(2)]), tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"'.weights.safetensors' \(rnnkit\) or '.weights.h5'"):
        save_weights(model, tmp_path / "m.h5")
    export_keras(model, tmp_path / "m.keras")
    with pytest.raises(ValueError, match="overwrite=False"):
        export_keras(model, tmp_path / "m.keras", overwrite=False)


def test_compile_settings_and_optimizer_state_are_exported(tmp_path):
    """A compiled model opens compiled in Keras; after two SGD-with-momentum steps in rnnkit,
    Keras' next step equals rnnkit's (the momentum is carried over)."""
    entry = ZOO["masked_embedding"]()
    model = _randomize(entry.model)
    x, y = entry.inputs, np.array([0, 1])
    model.compile(rnnkit.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras", format="keras")
    keras_model = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(keras_model.optimizer, keras.optimizers.SGD)
    assert int(keras_model.optimizer.iterations) == 2
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    keras_model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)

    model.compile("adam", "sparse_categorical_crossentropy", nan_policy="warn")
    with pytest.raises(ValueError, match="nan_policy='warn', an rnnkit-only compile argument"):
        model.save(tmp_path / "n.keras", format="keras")
    model.save(tmp_path / "n.keras", format="keras", include_optimizer=False)
    assert json.loads(_member(tmp_path / "n.keras", "config.json"))["compile_config"] is None
    model.compile(torch.optim.SGD(model.parameters(), lr=0.1), "mse")
    with pytest.raises(ValueError, match="not one of rnnkit's Keras optimizers"):
        model.save(tmp_path / "t.keras", format="keras")


def test_model_checkpoint_writes_keras_weights(tmp_path):
    entry = ZOO["time_series"]()
    model = entry.model
    model.compile("adam", "mse")
    x, y = entry.inputs, np.zeros((2, 20, 1), dtype="float32")
    pattern = str(tmp_path / "w-{epoch:02d}.weights.h5")
    model.fit(
        x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(pattern, save_weights_only=True)]
    )
    assert sorted(os.listdir(tmp_path)) == ["w-01.weights.h5", "w-02.weights.h5"]
    expected = _rnnkit_outputs(model, x)
    keras_model = keras.Sequential(
        [
            keras.Input((None, 1)),
            keras.layers.SimpleRNN(100, activation="relu", return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(1)),
        ]
    )
    keras_model.load_weights(tmp_path / "w-02.weights.h5")
    _assert_close(_keras_outputs(keras_model, x), expected)


@pytest.mark.parametrize(
    "filepath, weights_only, message",
    [
        ("w.h5", True, r"'.weights.safetensors' \(rnnkit\) or '.weights.h5' \(Keras 3\)"),
        ("w.weights.pt", True, r"must end in '.weights.safetensors'"),
        ("m.h5", False, r"must end in '.keras' to save the full model"),
    ],
)
def test_model_checkpoint_refuses_unknown_suffix_before_training(
    filepath, weights_only, message, tmp_path
):
    entry = ZOO["time_series"]()
    model = entry.model
    model.compile("adam", "mse")
    before = model.get_weights()
    epochs = []
    spy = LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))
    checkpoint = ModelCheckpoint(str(tmp_path / filepath), save_weights_only=weights_only)
    with pytest.raises(ValueError, match=message):
        model.fit(
            entry.inputs, np.zeros((2, 20, 1)), epochs=2, verbose=0, callbacks=[spy, checkpoint]
        )
    assert epochs == [] and os.listdir(tmp_path) == []
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_failed_save_leaves_the_old_file(tmp_path, monkeypatch):
    """A save that fails while writing (the disk fills up, the process is interrupted) leaves
    the previous file as it was and no temporary file behind."""
    entry = ZOO["guide_bidirectional"]()
    model = entry.model
    model.save(tmp_path / "m.keras", format="keras")
    model.save_weights(tmp_path / "m.weights.h5")
    old = {name: (tmp_path / name).read_bytes() for name in ("m.keras", "m.weights.h5")}
    _randomize(model)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(zipfile.ZipFile, "writestr", disk_full)
        with pytest.raises(OSError, match="No space left"):
            model.save(tmp_path / "m.keras", format="keras")
    with monkeypatch.context() as patch:
        patch.setattr(saving_files.os, "fsync", disk_full)
        with pytest.raises(OSError, match="No space left"):
            model.save_weights(tmp_path / "m.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "m.weights.h5"]
    for name, data in old.items():
        assert (tmp_path / name).read_bytes() == data
    # and the old files still load
    keras.saving.load_model(tmp_path / "m.keras")


def test_losses_metrics_and_loss_weights_are_exported(tmp_path):
    """Loss and metric objects, names, loss weights and weighted metrics per output: Keras'
    training logs the same keys as rnnkit's."""
    entry = ZOO["multi_input_multi_output"]()
    model = entry.model
    model.compile(
        rnnkit.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        loss=[rnnkit.losses.MeanSquaredError(), "mae"],
        loss_weights=[1.0, 0.5],
        metrics=[["mae", rnnkit.metrics.MeanAbsoluteError(name="abs")], ["mse"]],
        weighted_metrics=[["mse"], []],
    )
    y = [np.zeros((3, 2), "float32"), np.zeros((3, 1), "float32")]
    model.fit(entry.inputs, y, verbose=0)
    model.save(tmp_path / "m.keras", format="keras")
    compile_config = json.loads(_member(tmp_path / "m.keras", "config.json"))["compile_config"]
    assert compile_config["loss"][0]["module"] == "keras.losses"
    assert compile_config["loss_weights"] == [1.0, 0.5]
    keras_model = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(keras_model.optimizer, keras.optimizers.RMSprop)
    assert keras_model.optimizer.centered and keras_model.optimizer.momentum == 0.5
    keras_logs = keras_model.fit(entry.inputs, y, verbose=0).history
    assert set(keras_logs) == set(model.fit(entry.inputs, y, verbose=0).history)


def test_nested_functional_model_called_twice(tmp_path):
    """Keras 3 numbers a nested functional model's calls from 0 in call arguments (rnnkit's
    configs count the model's own node first): both calls keep their own inputs in Keras."""
    inner = rnnkit.Input((None, 3))
    encoder = rnnkit.Model(inner, layers.LSTM(4)(inner), name="encoder")
    a, b = rnnkit.Input((None, 3)), rnnkit.Input((None, 3))
    model = rnnkit.Model([a, b], layers.Dense(1)(layers.Concatenate()([encoder(a), encoder(b)])))
    rng = np.random.default_rng(0)
    inputs = [rng.random((2, 5, 3), dtype=np.float32), 3 * rng.random((2, 5, 3), dtype=np.float32)]
    expected = _rnnkit_outputs(_randomize(model), inputs)
    model.save(tmp_path / "m.keras", format="keras")
    _assert_close(_keras_outputs(keras.saving.load_model(tmp_path / "m.keras"), inputs), expected)


def test_attention_merges_in_keras(tmp_path):
    """The zoo's attention model (Embedding(mask_zero) -> LSTM -> Attention, AdditiveAttention,
    MultiHeadAttention, merges, masked pooling) loads in Keras with rnnkit's weights in Keras'
    layout and predicts what rnnkit predicts on unpadded inputs. On padded inputs Keras 3.15
    (torch backend) is not self-consistent: its Attention layer's output changes when the
    model also computes the MultiHeadAttention over the same (masked) LSTM output; rnnkit
    equals Keras' Attention in a model without it (as do the per-layer tests above)."""
    entry = ZOO["attention_merges"]()
    model = _randomize(entry.model)
    unpadded = np.array([[3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6]])
    expected = _rnnkit_outputs(model, unpadded)
    model.save(tmp_path / "m.keras", format="keras")
    model.save_weights(tmp_path / "m.weights.h5")
    _check_in_keras(model, unpadded, expected, tmp_path)

    padded = entry.inputs
    assert (padded == 0).any()
    keras_model = keras.saving.load_model(tmp_path / "m.keras")

    def keras_attention(*extra):
        names = ["attention", *extra]
        outputs = [keras_model.get_layer(n).output for n in names]
        found = keras.Model(keras_model.inputs, outputs)([padded])
        return keras.ops.convert_to_numpy(keras.tree.flatten(found)[0])

    alone = keras_attention()
    # Keras' inconsistency: the same Attention layer on the same inputs gives other values
    # in a model that also computes the MultiHeadAttention over the same LSTM output.
    assert np.abs(keras_attention("multi_head_attention") - alone).max() > 1e-3
    ours = rnnkit.Model(model.inputs, model.get_layer("attention").output)(padded)
    np.testing.assert_allclose(ours.detach().numpy(), alone, atol=1e-5, rtol=0)
