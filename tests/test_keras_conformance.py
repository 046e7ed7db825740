"""What a Keras program expects of the model API (issue 12, item 3), each with bad input:
integer and boolean inputs to recurrent layers, binary_crossentropy on ``(N,)`` labels,
``Layer.input``/``output`` and ``Model.input``/``output``, ``Embedding(input_length=,
weights=)``, ``LSTM/GRU(implementation=)``, ``fit`` without trainable weights,
``Masking.compute_mask`` on numpy, ``Dense.activation = None``, ``metrics.get("accuracy")``,
and ``summary()`` of a subclassed model after a call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers, losses, metrics

RNG = np.random.default_rng(12)


# ------------------------------------------------------------ integer and boolean inputs
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "uint8"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.SimpleRNN(3),
        lambda: layers.LSTM(3, return_sequences=True),
        lambda: layers.GRU(3, use_cudnn=False),
        lambda: layers.Bidirectional(layers.LSTM(3)),
        lambda: layers.RNN(layers.LSTMCell(3)),
    ],
    ids=["simple_rnn", "lstm", "gru_loop", "bidirectional", "rnn_cell"],
)
def test_non_floating_inputs_are_cast_to_the_compute_dtype(make, dtype):
    """A one-hot ``np.bool`` array (or integers) runs as its float32 copy does."""
    x = RNG.integers(0, 2, size=(2, 4, 5)).astype(dtype)
    layer = make()
    out = layer(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(
        out.detach().numpy(), layer(x.astype("float32")).detach().numpy(), atol=1e-6
    )


def test_non_floating_inputs_follow_a_float64_layer_and_a_cell():
    layer = layers.LSTM(2, dtype="float64")
    assert layer(np.ones((1, 3, 2), dtype=bool)).dtype == torch.float64
    cell = layers.GRUCell(2)
    out, _ = cell(np.ones((1, 2), dtype="int32"), [torch.zeros(1, 2)])
    assert out.dtype == torch.float32


def test_symbolic_bool_input_gives_float_output():
    x = rnnkit.Input((4, 5), dtype="bool")
    y = layers.LSTM(3)(x)
    assert y.dtype == torch.float32 and y.shape == (None, 3)
    model = rnnkit.Model(x, y)
    assert model.predict(np.ones((2, 4, 5), dtype=bool), verbose=0).shape == (2, 3)


def test_boolean_input_of_the_wrong_rank_is_refused():
    with pytest.raises(ValueError, match=r"LSTM 'lstm': inputs must have rank 3"):
        layers.LSTM(3)(np.ones((2, 5), dtype=bool))


# --------------------------------------------------------------- binary_crossentropy
def test_binary_crossentropy_accepts_labels_without_the_last_axis():
    import keras

    y_true = np.array([0.0, 1.0, 1.0, 0.0], dtype="float32")
    y_pred = np.array([[0.1], [0.8], [0.6], [0.3]], dtype="float32")
    ours = losses.BinaryCrossentropy()(y_true, y_pred)
    theirs = keras.losses.BinaryCrossentropy()(y_true, y_pred)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-6)
    per_sample = losses.binary_crossentropy(y_true, y_pred)
    assert tuple(per_sample.shape) == (4,)
    np.testing.assert_allclose(
        per_sample.numpy(), losses.binary_crossentropy(y_true[:, None], y_pred).numpy()
    )
    # ... and fit trains a (N, 1)-output model on (N,) labels.
    model = rnnkit.Sequential([rnnkit.Input((3,)), layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(RNG.normal(size=(8, 3)), RNG.integers(0, 2, 8), verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "y_true_shape, y_pred_shape", [((4, 2), (4, 3)), ((4,), (4, 2)), ((4, 1, 2), (4,))]
)
def test_binary_crossentropy_refuses_shapes_that_do_not_align(y_true_shape, y_pred_shape):
    with pytest.raises(ValueError, match=r"binary_crossentropy: y_true and y_pred must have"):
        losses.binary_crossentropy(np.zeros(y_true_shape), np.full(y_pred_shape, 0.5))


# ------------------------------------------------------------- input / output properties
def test_layer_and_model_input_output_for_the_inference_recipe():
    """The encoder-decoder recipe: rebuild an encoder model from a trained model's layers."""
    encoder_inputs = rnnkit.Input((None, 4))
    encoder = layers.LSTM(6, return_state=True)
    _, h, c = encoder(encoder_inputs)
    decoder_inputs = rnnkit.Input((None, 3))
    decoder_outputs = layers.LSTM(6, return_sequences=True)(decoder_inputs, initial_state=[h, c])
    outputs = layers.Dense(3, activation="softmax")(decoder_outputs)
    model = rnnkit.Model([encoder_inputs, decoder_inputs], outputs)

    assert model.input == [encoder_inputs, decoder_inputs]
    assert model.output is outputs
    lstm = model.layers[2]
    assert lstm is encoder and lstm.input is encoder_inputs
    assert lstm.output == [lstm.output[0], h, c] and lstm.output[1] is h
    encoder_model = rnnkit.Model(model.input[0], lstm.output[1:])
    x = RNG.normal(size=(2, 5, 4)).astype("float32")
    states = encoder_model.predict(x, verbose=0)
    _, h_eager, c_eager = encoder(torch.as_tensor(x))
    np.testing.assert_allclose(states[0], h_eager.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(states[1], c_eager.detach().numpy(), atol=1e-6)


def test_input_output_of_a_reused_layer_are_its_first_call():
    dense = layers.Dense(2)
    a, b = rnnkit.Input((3,)), rnnkit.Input((3,))
    first, _ = dense(a), dense(b)
    assert dense.input is a and dense.output is first


def test_sequential_input_output():
    model = rnnkit.Sequential([rnnkit.Input((5, 2)), layers.GRU(3)])
    assert model.input.shape == (None, 5, 2)
    assert model.output.shape == (None, 3)
    assert model.layers[0].output is model.output


def test_input_output_of_a_layer_never_called_symbolically():
    layer = layers.Dense(2)
    layer(np.ones((1, 3), dtype="float32"))
    with pytest.raises(AttributeError, match="input"):
        layer.input
    with pytest.raises(AttributeError, match="output"):
        layer.output
    assert not hasattr(layer, "output")  # as in Keras


# ------------------------------------------------------------------------ Embedding
def test_embedding_input_length_is_accepted_with_keras_warning():
    with pytest.warns(UserWarning, match="input_length is deprecated"):
        layer = layers.Embedding(10, 3, input_length=5)
    assert layer(np.array([[1, 2, 3]])).shape == (1, 3, 3)
    assert "input_length" not in layer.get_config()
    with pytest.raises(TypeError, match="input_length must be an int"):
        layers.Embedding(10, 3, input_length="5")


@pytest.mark.parametrize("wrap", [lambda w: w, lambda w: [w]], ids=["array", "list"])
def test_embedding_weights_argument(wrap):
    table = RNG.normal(size=(6, 2)).astype("float32")
    layer = layers.Embedding(6, 2, weights=wrap(table))
    assert layer.built
    np.testing.assert_array_equal(layer(np.array([[5, 0]])).detach().numpy()[0], table[[5, 0]])


def test_embedding_weights_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"weight 'embedding/embeddings' has shape \(6, 2\)"):
        layers.Embedding(6, 2, weights=np.zeros((5, 2)))


# -------------------------------------------------------------------- implementation=
@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU])
@pytest.mark.parametrize("implementation", [0, 1, 2])
def test_implementation_is_accepted_and_changes_nothing(cls, implementation):
    x = RNG.normal(size=(2, 3, 4)).astype("float32")
    reference = cls(3)
    layer = cls(3, implementation=implementation)
    reference(x)
    layer(x)
    layer.set_weights(reference.get_weights())
    np.testing.assert_allclose(layer(x).detach().numpy(), reference(x).detach().numpy())
    assert "implementation" not in layer.get_config()
    config = layer.get_config()
    config["implementation"] = implementation  # a config that carries it (Keras 2) loads
    assert type(layer).from_config(config).units == 3


@pytest.mark.parametrize("bad", [-1, 3, "fast", True])
def test_implementation_out_of_range(bad):
    with pytest.raises(ValueError, match=r"implementation must be 0, 1 or 2, received"):
        layers.LSTM(3, implementation=bad)
    with pytest.raises(TypeError, match="implementation"):
        layers.SimpleRNN(3, implementation=1)  # Keras' SimpleRNN has no such argument


# --------------------------------------------------------- fit without trainable weights
def test_fit_without_trainable_weights_warns_and_leaves_weights_alone():
    model = rnnkit.Sequential([rnnkit.Input((3,)), layers.Dense(2)])
    model.trainable = False
    model.compile("adam", "mse")
    before = model.get_weights()
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        history = model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_without_any_weight_warns():
    model = rnnkit.Sequential([rnnkit.Input((3,)), layers.Activation("relu")])
    model.compile("sgd", "mse")
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        model.fit(np.ones((4, 3)), np.ones((4, 3)), verbose=0)


# -------------------------------------------------------------------------- Masking
def test_masking_compute_mask_on_numpy():
    import keras

    x = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]], dtype="float32")
    ours = layers.Masking(0.0).compute_mask(x)
    theirs = keras.layers.Masking(0.0).compute_mask(x)
    np.testing.assert_array_equal(ours.numpy(), np.asarray(theirs.cpu()))
    with pytest.raises(ValueError, match=r"Masking 'masking_\d+': inputs has shape \(3,\)"):
        layers.Masking().compute_mask(np.zeros(3))


# --------------------------------------------------------------------- Dense.activation
def test_dense_activation_can_be_replaced_after_building():
    layer = layers.Dense(3, activation="relu", kernel_initializer="ones")
    x = -np.ones((1, 2), dtype="float32")
    assert float(layer(x).detach().sum()) == 0.0
    layer.activation = None
    np.testing.assert_allclose(layer(x).detach().numpy(), [[-2.0, -2.0, -2.0]])
    assert layer.get_config()["activation"] == "linear"
    layer.activation = "tanh"
    assert layer.get_config()["activation"] == "tanh"
    with pytest.raises(ValueError, match="activation"):
        layer.activation = "no_such_activation"


# -------------------------------------------------------------------- metrics.get
def test_metrics_get_accuracy_is_keras_accuracy():
    import keras

    y_true = np.array([[1], [2], [3], [4]])
    y_pred = np.array([[1], [2], [0], [4]])
    ours = metrics.get("accuracy")
    theirs = keras.metrics.get("accuracy")
    assert type(ours).__name__ == type(theirs).__name__ == "Accuracy"
    ours.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    assert float(ours.result()) == pytest.approx(float(theirs.result())) == 0.75
    assert isinstance(metrics.get("Accuracy"), metrics.Accuracy)
    with pytest.raises(ValueError, match="unknown metric 'accuracyy'"):
        metrics.get("accuracyy")


# ------------------------------------------------------------ summary of a subclassed model
class _Subclassed(rnnkit.Model):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = layers.Embedding(10, 4)
        self.rnn = layers.GRU(5, return_sequences=True)
        self.head = layers.Dense(3)

    def call(self, x):
        return self.head(self.rnn(self.embedding(x)))


def test_summary_of_a_subclassed_model_shows_shapes_after_a_call():
    model = _Subclassed()
    lines: list[str] = []
    model(np.ones((2, 7), dtype="int64"))
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for row in ("(2, 7, 4)", "(2, 7, 5)", "(2, 7, 3)"):
        assert row in text, text
    assert "multiple" not in text


def test_summary_of_an_uncalled_subclassed_model_has_no_shapes_yet():
    lines: list[str] = []
    _Subclassed().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert text.count("multiple") == 3 and "0 (unused)" in text


# ------------------------------------------------------------ Keras' Dense/Embedding tests
def test_dense_weights_carry_their_constraint():
    layer = layers.Dense(2, kernel_constraint="non_neg", bias_constraint="non_neg")
    layer.build((None, 2))
    assert type(layer.kernel.constraint).__name__ == "NonNeg"
    assert type(layer.bias.constraint).__name__ == "NonNeg"
    plain = layers.Dense(2)
    plain.build((None, 2))
    assert plain.kernel.constraint is None


def test_dense_called_on_another_feature_size_is_incompatible():
    layer = layers.Dense(2, activation="relu")
    layer(rnnkit.Input(batch_shape=(1, 2)))
    with pytest.raises(ValueError, match=r"has shape \(1, 3\).*incompatible with the layer"):
        layer(rnnkit.Input(batch_shape=(1, 3)))


@pytest.mark.parametrize("bad", [3.7, 4.0, "3", None, True, False, -1, 0])
def test_embedding_sizes_must_be_positive_integers(bad):
    with pytest.raises(ValueError, match="input_dim must be a positive integer"):
        layers.Embedding(bad, 8)
    with pytest.raises(ValueError, match="output_dim must be a positive integer"):
        layers.Embedding(10, bad)
