"""ConvLSTM1D/2D/3D against Keras 3 (torch backend) with identical weights.

Every comparison builds both layers, copies random weights from rnnkit into Keras with
``set_weights`` and asserts a max abs error <= 1e-5 on every output (sequence or last output,
and the states with ``return_state``). Also: Bidirectional, stateful chunks, parameter counts
and summaries, and Keras-saved ``.keras`` / ``.weights.h5`` files loading into rnnkit.
"""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.saving import load_model, load_weights

keras = pytest.importorskip("keras")

ATOL = 1e-5
RNG = np.random.default_rng(11)
T = 4
MASKS = {
    "none": None,
    "right": np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool),
    "holes": np.array([[1, 0, 1, 1], [0, 1, 1, 0]], bool),
}
# (rank, per-step input shape channels_last (*S, C), layer arguments)
CONFIGS = {
    "1d_same_even_kernel": (1, (9, 3), {"kernel_size": 4, "padding": "same"}),
    "1d_valid_strides": (1, (9, 3), {"kernel_size": 3, "strides": 2}),
    "2d_same": (2, (6, 5, 3), {"kernel_size": 3, "padding": "same"}),
    "2d_same_strides_even": (
        2,
        (7, 6, 2),
        {"kernel_size": (2, 3), "padding": "same", "strides": 2},
    ),
    "2d_valid_dilation": (2, (8, 7, 2), {"kernel_size": 2, "dilation_rate": (2, 3)}),
    "2d_same_dilation_no_bias": (
        2,
        (6, 6, 2),
        {"kernel_size": 2, "padding": "same", "dilation_rate": 2, "use_bias": False},
    ),
    "2d_relu_hard_sigmoid": (
        2,
        (5, 5, 2),
        {"kernel_size": 3, "activation": "relu", "recurrent_activation": "hard_sigmoid"},
    ),
    "3d_same_even": (3, (4, 5, 3, 2), {"kernel_size": 2, "padding": "same"}),
    "3d_valid_strides": (3, (5, 5, 4, 2), {"kernel_size": 3, "strides": (1, 2, 1)}),
}
OURS = {1: layers.ConvLSTM1D, 2: layers.ConvLSTM2D, 3: layers.ConvLSTM3D}


def theirs_class(rank):
    return {1: keras.layers.ConvLSTM1D, 2: keras.layers.ConvLSTM2D, 3: keras.layers.ConvLSTM3D}[
        rank
    ]


def sequence(step_shape, data_format, batch=2):
    x = RNG.standard_normal((batch, T, *step_shape)).astype("float32")
    return np.moveaxis(x, -1, 2) if data_format == "channels_first" else x


def random_weights(layer):
    return [RNG.uniform(-0.5, 0.5, w.shape).astype("float32") for w in layer.get_weights()]


def paired(rank, x, **kwargs):
    ours, theirs = OURS[rank](3, **kwargs), theirs_class(rank)(3, **kwargs)
    ours(x)
    theirs(x)
    ours.set_weights(random_weights(ours))
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def assert_same(ours, theirs, atol=ATOL):
    flat_ours = [o.detach().cpu().numpy() for o in rnnkit.tree.flatten(ours)]
    flat_theirs = [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(theirs)]
    assert len(flat_ours) == len(flat_theirs)
    for a, b in zip(flat_ours, flat_theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_matches_keras_with_masks(name, data_format):
    rank, step_shape, kwargs = CONFIGS[name]
    x = sequence(step_shape, data_format)
    for return_sequences, return_state, go_backwards in [(True, True, False), (False, False, True)]:
        ours, theirs = paired(
            rank,
            x,
            data_format=data_format,
            go_backwards=go_backwards,
            return_sequences=return_sequences,
            return_state=return_state,
            **kwargs,
        )
        for mask in MASKS.values():
            assert_same(ours(x, mask=mask), theirs(x, mask=mask))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_initial_state_and_zero_output_for_mask_match_keras(data_format):
    x = sequence((6, 5, 2), data_format)
    ours, theirs = paired(
        2,
        x,
        kernel_size=3,
        strides=(2, 1),
        padding="same",
        data_format=data_format,
        return_sequences=True,
        return_state=True,
        zero_output_for_mask=True,
    )
    state_shape = (2, 3, 5, 3) if data_format == "channels_last" else (2, 3, 3, 5)
    h0 = RNG.standard_normal(state_shape).astype("float32")
    c0 = RNG.standard_normal(state_shape).astype("float32")
    mask = MASKS["holes"]
    assert_same(
        ours(x, initial_state=[h0, c0], mask=mask),
        theirs(x, initial_state=[h0, c0], mask=mask),
    )


def test_stateful_chunks_match_keras():
    x = sequence((5, 5, 2), "channels_last")
    ours, theirs = paired(2, x[:, :2], kernel_size=3, padding="same", stateful=True)
    ours.reset_states()
    theirs.reset_states()
    for chunk in (x[:, :2], x[:, 2:]):
        assert_same(ours(chunk), theirs(chunk))


@pytest.mark.parametrize(
    "merge_mode, return_sequences, return_state",
    [("concat", True, False), ("sum", False, True), ("mul", True, True), (None, False, False)],
)
def test_bidirectional_matches_keras(merge_mode, return_sequences, return_state):
    x = sequence((6, 2), "channels_first")
    kwargs = dict(
        kernel_size=3,
        padding="same",
        data_format="channels_first",
        return_sequences=return_sequences,
        return_state=return_state,
    )
    ours = layers.Bidirectional(layers.ConvLSTM1D(3, **kwargs), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(keras.layers.ConvLSTM1D(3, **kwargs), merge_mode=merge_mode)
    ours(x)
    theirs(x)
    ours.set_weights(random_weights(ours))
    theirs.set_weights(ours.get_weights())
    mask = MASKS["right"]
    assert_same(ours(x, mask=mask), theirs(x, mask=mask))


def test_time_distributed_around_conv_lstm_matches_keras():
    x = RNG.standard_normal((2, 3, T, 6, 2)).astype("float32")
    ours = layers.TimeDistributed(layers.ConvLSTM1D(3, 2, return_sequences=True))
    theirs = keras.layers.TimeDistributed(keras.layers.ConvLSTM1D(3, 2, return_sequences=True))
    ours(x)
    theirs(x)
    ours.set_weights(random_weights(ours))
    theirs.set_weights(ours.get_weights())
    assert_same(ours(x), theirs(x))


def test_parameter_counts_and_summary_equal_keras():
    def build(lib, shape):
        L = lib.layers
        return lib.Sequential(
            [
                lib.Input(shape),
                L.ConvLSTM2D(4, (3, 2), padding="same", return_sequences=True),
                L.Bidirectional(
                    L.ConvLSTM2D(2, 3, strides=2, use_bias=False, return_sequences=True)
                ),
                L.TimeDistributed(L.Reshape((9, 4))),
                L.ConvLSTM1D(3, 2, unit_forget_bias=False),
            ]
        )

    shape = (T, 8, 8, 3)
    ours, theirs = build(rnnkit, shape), build(keras, shape)
    assert [layer.count_params() for layer in ours.layers] == [
        layer.count_params() for layer in theirs.layers
    ]
    assert ours.count_params() == theirs.count_params()
    lines = []
    ours.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for layer in theirs.layers:
        assert f"{layer.count_params():,}" in text
    assert f"Total params: {theirs.count_params():,}" in text


def test_training_steps_match_keras():
    """Same weights, three SGD steps: the losses agree, so the gradients do too."""

    def build(lib):
        L = lib.layers
        return lib.Sequential(
            [
                lib.Input((3, 6, 6, 2)),
                L.ConvLSTM2D(3, 3, padding="same", return_sequences=True),
                L.ConvLSTM2D(2, 2, strides=2, recurrent_activation="hard_sigmoid"),
                L.Flatten(),
                L.Dense(2),
            ]
        )

    ours, theirs = build(rnnkit), build(keras)
    ours.set_weights(random_weights(ours))
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=rnnkit.optimizers.SGD(0.1), loss="mse")
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = RNG.standard_normal((4, 3, 6, 6, 2)).astype("float32")
    y = RNG.standard_normal((4, 2)).astype("float32")
    for _ in range(3):
        np.testing.assert_allclose(
            ours.train_on_batch(x, y), theirs.train_on_batch(x, y), atol=1e-5, rtol=0
        )
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def keras_model():
    L = keras.layers
    inputs = keras.Input((T, 3, 7, 6))
    x = L.ConvLSTM2D(
        4,
        (3, 2),
        strides=2,
        padding="same",
        data_format="channels_first",
        return_sequences=True,
        go_backwards=True,
    )(inputs)
    x = L.Bidirectional(L.ConvLSTM2D(2, 2, data_format="channels_first"))(x)
    x = L.Flatten()(x)
    outputs = L.Dense(2)(x)
    model = keras.Model(inputs, outputs)
    model.set_weights(random_weights(model))
    return model


def test_keras_saved_model_file_loads_and_predicts_the_same(tmp_path):
    model = keras_model()
    path = tmp_path / "convlstm.keras"
    model.save(path)
    loaded = load_model(path)
    x = sequence((7, 6, 3), "channels_first")
    with torch.no_grad():
        ours = loaded(x)
    np.testing.assert_allclose(
        ours.numpy(), keras.ops.convert_to_numpy(model(x)), atol=ATOL, rtol=0
    )
    convlstm = loaded.layers[1]
    assert isinstance(convlstm, layers.ConvLSTM2D)
    assert convlstm.strides == (2, 2) and convlstm.data_format == "channels_first"


def test_keras_weights_file_loads_into_an_rnnkit_twin(tmp_path):
    model = keras_model()
    path = tmp_path / "convlstm.weights.h5"
    model.save_weights(path)
    twin = rnnkit.Model.from_config(load_model_config(model))
    load_weights(twin, path)
    x = sequence((7, 6, 3), "channels_first")
    np.testing.assert_allclose(
        twin(x).detach().numpy(), keras.ops.convert_to_numpy(model(x)), atol=ATOL, rtol=0
    )


def load_model_config(model):
    """rnnkit's config of a Keras functional model (through the Keras import translator)."""
    from rnnkit.saving.keras_import import translate_model_config

    return translate_model_config(model.get_config(), None)
