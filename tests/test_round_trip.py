"""Every architecture of the model zoo (tests/model_zoo.py) survives saving: a ``.keras`` file
reloads with the same class, config, weights and bit-identical predictions, and a weights file
loads into a freshly built twin. Compiled zoo models resume training from a file exactly as if
they had never stopped (optimizer state, compile settings, logs)."""

import json

import numpy as np
import pytest
import torch
from model_zoo import ZOO

import rnnkit
from rnnkit.saving import load_model, load_weights, save_model, save_weights


def _predict(model, inputs):
    """The model's outputs in inference mode, flattened to numpy arrays (stateful layers start
    from zero states)."""
    model.reset_states()
    with torch.no_grad():
        outputs = model(inputs, training=False)
    return [o.detach().cpu().numpy() for o in rnnkit.tree.flatten(outputs)]


def _holds_subclassed_model(model):
    return any(
        isinstance(layer, rnnkit.Model)
        and layer._graph is None
        and not isinstance(layer, rnnkit.Sequential)
        for layer in model._flatten_layers()
    )


def _as_json(config):
    return json.loads(json.dumps(config))


def _assert_same_arrays(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(ZOO, key=str))
def test_model_file_round_trip(name, tmp_path):
    entry = ZOO[name]()
    model = entry.model
    expected = _predict(model, entry.inputs)
    config = _as_json(model.get_config())
    path = tmp_path / "m.keras"
    save_model(model, path)
    rnnkit.clear_session()  # automatic names of the reloaded layers must come from the file
    again = load_model(path, custom_objects=entry.custom_objects)

    assert type(again) is type(model)
    assert _as_json(again.get_config()) == config
    if not _holds_subclassed_model(model):
        # layer names are in the config, except inside a subclassed model (as in Keras: its
        # layers are named afresh, in creation order); weights load by position either way
        assert again.weight_paths() == model.weight_paths()
    _assert_same_arrays(again.get_weights(), model.get_weights())
    _assert_same_arrays(_predict(again, entry.inputs), expected)

    # saving the reloaded model gives the same file contents (config and weights)
    save_model(again, tmp_path / "again.keras")
    twice = load_model(tmp_path / "again.keras", custom_objects=entry.custom_objects)
    assert _as_json(twice.get_config()) == config
    _assert_same_arrays(_predict(twice, entry.inputs), expected)


@pytest.mark.parametrize("name", sorted(ZOO, key=str))
def test_weights_file_loads_into_a_twin(name, tmp_path):
    entry = ZOO[name]()
    twin = ZOO[name]().model  # same architecture, other random weights, other layer names
    model = entry.model
    expected = _predict(model, entry.inputs)
    differ = [not np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights())]
    assert any(differ), "the twin starts with the same weights, so the test could not fail"
    path = tmp_path / "m.weights.safetensors"
    save_weights(model, path)
    load_weights(twin, path)
    _assert_same_arrays(twin.get_weights(), model.get_weights())
    _assert_same_arrays(_predict(twin, entry.inputs), expected)


# ------------------------------------------------------------------------ resumed training
def _compile_args(name):
    """Compile settings per zoo model: every optimizer, loss and metric form a file holds."""
    opt = rnnkit.optimizers
    losses = rnnkit.losses
    metrics = rnnkit.metrics
    return {
        "mixed_functional": dict(
            optimizer=opt.Adam(0.01, weight_decay=0.01, clipnorm=1.0),
            loss="mse",
            metrics=["mae"],
            weighted_metrics=["mse"],
        ),
        "multi_input_multi_output": dict(
            optimizer=opt.RMSprop(0.01, momentum=0.3),
            loss=["mse", losses.Huber(delta=0.5)],
            loss_weights=[1.0, 0.5],
            metrics=[["mae"], [metrics.RootMeanSquaredError(), metrics.MeanAbsoluteError("l1")]],
        ),
        "dict_inputs_outputs": dict(
            optimizer=opt.AdamW(0.01),
            loss={"score": "mse", "label": "categorical_crossentropy"},
            metrics={"label": ["accuracy"]},
        ),
        "subclassed_classifier": dict(
            optimizer=opt.Adam(0.01, amsgrad=True),
            loss=losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        ),
        "subclassed_two_towers": dict(
            optimizer=opt.SGD(0.02, momentum=0.9, nesterov=True), loss=["mse", "mae"]
        ),
        "guide_encoder_decoder": dict(optimizer=opt.Adagrad(0.05), loss="mse"),
        "mnist_lstm": dict(
            optimizer=opt.SGD(0.05, momentum=0.5),
            loss=losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        ),
        "cell_wrappers": dict(optimizer=opt.RMSprop(0.01, centered=True), loss="mse"),
        "stateful_lstm": dict(optimizer=opt.Adam(0.01), loss="mse", metrics=["mae"]),
        "regularized_and_constrained": dict(optimizer="adam", loss="mse"),
        "conv_pooling_seq2seq": dict(optimizer=opt.Adam(0.01), loss="mse", metrics=["mae"]),
        "attention_merges": dict(optimizer=opt.RMSprop(0.01), loss="mse"),
    }[name]


RESUME = [
    "mixed_functional",
    "multi_input_multi_output",
    "dict_inputs_outputs",
    "subclassed_classifier",
    "subclassed_two_towers",
    "guide_encoder_decoder",
    "mnist_lstm",
    "cell_wrappers",
    "stateful_lstm",
    "regularized_and_constrained",
    "conv_pooling_seq2seq",
    "attention_merges",
]


def _training_data(name, entry):
    """The sample inputs twice over, and targets shaped like the outputs."""
    rng = np.random.default_rng(1)
    x = rnnkit.tree.map_structure(lambda a: np.concatenate([a, a]), entry.inputs)
    with torch.no_grad():
        outputs = entry.model(entry.inputs, training=False)
    entry.model.reset_states()

    def target(out):
        shape = (2 * out.shape[0], *out.shape[1:])
        if name in ("subclassed_classifier", "mnist_lstm"):
            return rng.integers(0, shape[-1], shape[0])
        if name == "dict_inputs_outputs" and shape[-1] == 3:
            return np.eye(3, dtype="float32")[rng.integers(0, 3, shape[0])]
        return rng.standard_normal(shape).astype("float32")

    return x, rnnkit.tree.map_structure(target, outputs)


@pytest.mark.parametrize("name", RESUME)
def test_resumed_training_equals_uninterrupted_training(name, tmp_path):
    """Train 2 epochs, save, load, train 2 more == 4 epochs without the file, bit for bit,
    logs included. Both runs reseed torch before each fit, so dropout draws the same masks;
    a frozen layer checks that the optimizer state lines up with the trainable weights."""
    entry = ZOO[name]()
    initial = entry.model.get_weights()
    x, y = _training_data(name, entry)
    batch_size = 4 if name == "stateful_lstm" else 2

    def fresh():
        model = ZOO[name]().model
        model.set_weights(initial)
        if name == "guide_encoder_decoder":
            model.get_layer(index=2).trainable = False  # freeze the encoder's Embedding
        model.compile(**_compile_args(name))
        return model

    def fit(model, seed):
        torch.manual_seed(seed)
        model.reset_states()  # a stateful layer's states are not weights: files omit them
        return model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)

    uninterrupted = fresh()
    fit(uninterrupted, 1)
    expected = fit(uninterrupted, 2).history

    first = fresh()
    fit(first, 1)
    save_model(first, tmp_path / "m.keras")
    resumed = load_model(tmp_path / "m.keras", custom_objects=entry.custom_objects)
    assert resumed.optimizer.iterations == first.optimizer.iterations > 0
    history = fit(resumed, 2).history

    assert history == expected
    _assert_same_arrays(resumed.get_weights(), uninterrupted.get_weights())
    _assert_same_arrays(_predict(resumed, entry.inputs), _predict(uninterrupted, entry.inputs))
