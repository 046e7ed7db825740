"""The layers around RNNs: clear errors for bad arguments and inputs, the behaviours Keras 3's
own unit tests expect, Keras configs that load, ``Lambda`` and its saving rules."""

import keras
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.saving import load_model, register_keras_serializable

RNG = np.random.default_rng(11)


def _ours(x):
    return x.detach().cpu().numpy()


def _x(*shape):
    return RNG.standard_normal(shape).astype("float32")


# ------------------------------------------------------------ constructor arguments
@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: layers.RepeatVector(2.5), TypeError, "n must be an int"),
        (lambda: layers.RepeatVector(0), ValueError, "n must be a positive integer"),
        (lambda: layers.Permute((0, 1)), ValueError, r"permutation of 1 \.\. n"),
        (lambda: layers.Permute((1, 3)), ValueError, r"permutation of 1 \.\. n"),
        (lambda: layers.UpSampling1D(0), ValueError, "size must be a positive integer"),
        (lambda: layers.UpSampling1D("2"), TypeError, "size must be an int"),
        (lambda: layers.ZeroPadding1D((1, 2, 3)), ValueError, "padding must be"),
        (lambda: layers.ZeroPadding1D(-1), ValueError, "non-negative"),
        (lambda: layers.Cropping1D((1,)), ValueError, "cropping must be"),
        (lambda: layers.Cropping1D("1"), ValueError, "cropping must be"),
        (lambda: layers.Conv1D(0, 3), ValueError, "filters must be a positive integer"),
        (lambda: layers.Conv1D(4, (3, 3)), ValueError, "kernel_size must be .* 1 positive"),
        (lambda: layers.Conv2D(4, 3, strides=(1, 0)), ValueError, "strides must be"),
        (lambda: layers.Conv1D(4, 3, strides=2, dilation_rate=2), ValueError, "strides above 1"),
        (lambda: layers.Conv1D(5, 3, groups=2), ValueError, "divisible by groups"),
        (lambda: layers.Conv1D(4, 3, groups=0), ValueError, "groups must be a positive"),
        (lambda: layers.Conv2D(4, 3, padding="causal"), ValueError, "padding must be one of"),
        (lambda: layers.Conv1D(4, 3, data_format="nhwc"), ValueError, "data_format"),
        (lambda: layers.Conv1D(4, 3, activation="nope"), ValueError, "unknown activation"),
        (lambda: layers.MaxPooling1D(0), ValueError, "pool_size must be"),
        (lambda: layers.AveragePooling1D(2, padding="full"), ValueError, "padding must be"),
        (lambda: layers.GlobalAveragePooling1D(data_format="x"), ValueError, "data_format"),
        (lambda: layers.SpatialDropout1D(1.0), ValueError, r"rate .*\[0, 1\)"),
        (lambda: layers.LayerNormalization(axis={"axis": -1}), TypeError, "int or a list"),
        (lambda: layers.LayerNormalization(epsilon=0), ValueError, "epsilon must be positive"),
        (lambda: layers.LayerNormalization(rms_scaling=True), ValueError, "rms_scaling"),
        (lambda: layers.Attention(score_mode="add"), ValueError, "score_mode must be"),
        (lambda: layers.Attention(dropout=1.5), ValueError, "dropout must be"),
        (lambda: layers.MultiHeadAttention(0, 2), ValueError, "num_heads must be a positive"),
        (lambda: layers.MultiHeadAttention(2, 2.0), ValueError, "key_dim must be a positive"),
        (lambda: layers.MultiHeadAttention(2, 2, value_dim=-1), ValueError, "value_dim"),
        (lambda: layers.MultiHeadAttention(2, 2, output_shape="x"), ValueError, "output_shape"),
        (lambda: layers.MultiHeadAttention(2, 2, attention_axes="x"), ValueError, "attention_"),
        (lambda: layers.Dot(axes=(1, 2, 3)), ValueError, "axes must be an int or two ints"),
        (lambda: layers.Dot(axes="x"), TypeError, "axes must be an int or two ints"),
        (lambda: layers.Lambda(3), TypeError, "function must be callable"),
    ],
)
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("layer", "inputs", "match"),
    [
        (layers.RepeatVector(2), _x(2, 3, 4), r"inputs has shape \(2, 3, 4\), expected rank 2"),
        (layers.Permute((2, 1)), _x(2, 3), r"expected rank 3"),
        (layers.Conv1D(2, 3), _x(2, 5), r"inputs has shape \(2, 5\), expected rank 3"),
        (layers.Conv1D(2, 4), _x(2, 3, 5), r"too small for kernel_size=\(4,\)"),
        (layers.Conv2D(2, 5), _x(3, 4, 4, 4), r"too small for kernel_size=\(5, 5\)"),
        (layers.Conv1D(2, 2, dilation_rate=3), _x(2, 3, 5), "dilation_rate=\\(3,\\)"),
        (layers.Conv1D(4, 2, groups=2), _x(2, 5, 3), r"input channels \(3\) must be divisible"),
        (layers.MaxPooling1D(4), _x(2, 3, 5), "shorter than pool_size=4"),
        (layers.GlobalMaxPooling1D(), _x(2, 3), "expected rank 3"),
        (layers.Cropping1D((3, 3)), _x(3, 5, 7), "removes every step"),
        (layers.UpSampling1D(2), _x(3, 5), "expected rank 3"),
        (layers.SpatialDropout1D(0.5), _x(3, 5), "expected rank 3"),
        (layers.LayerNormalization(axis=3), _x(2, 3), r"axis=3 is out of range"),
        (layers.Attention(), _x(1, 2, 2), "must be a list"),
        (layers.Attention(), [_x(1, 2, 2)] * 4, "length 4"),
        (layers.Attention(), [_x(1, 2, 2), _x(1, 2, 3)], "same number of features"),
        (layers.Attention(), [_x(2, 3), _x(2, 3)], r"query has shape \(2, 3\), expected rank 3"),
        (layers.Subtract(), [_x(2, 3)] * 3, "exactly 2 tensors"),
        (layers.Multiply(), [_x(2, 3), _x(2, 4)], "incompatible shapes"),
        (layers.Average(), _x(2, 3), "must be a list of tensors, received a single input"),
        (layers.Dot(axes=1), [_x(2, 3), _x(2, 4)], r"axis 1 of the first input \(3\)"),
        (layers.Dot(axes=0), [_x(2, 3), _x(2, 3)], "non-batch axis"),
        (layers.Dot(axes=1), [_x(2, 3)] * 3, "exactly 2 tensors"),
    ],
)
def test_bad_inputs(layer, inputs, match):
    with pytest.raises(ValueError, match=match):
        layer(inputs)


def test_bad_inputs_after_build():
    conv = layers.Conv1D(2, 2, name="c")
    conv(_x(2, 5, 3))
    with pytest.raises(ValueError, match=r"Conv1D 'c': inputs has shape \(2, 5, 4\), expected"):
        conv(_x(2, 5, 4))
    norm = layers.LayerNormalization(name="ln")
    norm(_x(2, 5, 3))
    with pytest.raises(ValueError, match=r"LayerNormalization 'ln': inputs has shape"):
        norm(_x(2, 5, 4))
    mha = layers.MultiHeadAttention(2, 3, name="mha")
    mha(_x(2, 4, 6), _x(2, 5, 3))
    with pytest.raises(ValueError, match=r"'mha': value has shape \(2, 5, 4\), expected"):
        mha(_x(2, 4, 6), _x(2, 5, 4))
    with pytest.raises(ValueError, match="value and key but the last must be equal"):
        mha(_x(2, 4, 6), _x(2, 5, 3), _x(2, 6, 3))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 4, 4\)"):
        mha(_x(2, 4, 6), _x(2, 5, 3), attention_mask=np.ones((2, 4, 4), bool))
    with pytest.raises(ValueError, match=r"value_mask has shape \(2, 4\), expected \(2, 5\)"):
        mha(_x(2, 4, 6), _x(2, 5, 3), value_mask=np.ones((2, 4), bool))
    attention = layers.Attention(name="att")
    x = _x(2, 3, 4)
    with pytest.raises(ValueError, match="mask must be a list"):
        attention([x, x], mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"the value mask has shape \(2, 4\), expected \(2, 3\)"):
        attention([x, x], mask=[None, torch.ones(2, 4, dtype=torch.bool)])
    pooling = layers.GlobalAveragePooling1D()
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\), expected \(2, 3\)"):
        pooling(x, mask=torch.ones(2, 4, dtype=torch.bool))


def test_symbolic_errors_before_any_data():
    """Keras' test: a kernel larger than a known input is refused at the symbolic call."""
    for cls, shape, kernel, dilation in [
        (layers.Conv1D, (10, 3), 2, 10),
        (layers.Conv2D, (10, 10, 3), (2, 2), (10, 10)),
        (layers.Conv3D, (10, 10, 10, 3), (2, 2, 2), (10, 10, 10)),
    ]:
        with pytest.raises(ValueError, match="too small"):
            cls(1, kernel, dilation_rate=dilation)(rnnkit.Input(shape))
    with pytest.raises(ValueError, match="removes every step"):
        layers.Cropping1D((2, 3))(rnnkit.Input(batch_shape=(3, 5, 7)))


def test_merge_compute_mask_errors():
    layer = layers.Add()
    a, b = torch.ones(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="mask should be a list"):
        layer.compute_mask([a, b], torch.ones(2, 3))
    with pytest.raises(ValueError, match="inputs should be a list"):
        layer.compute_mask(a, [None, None])
    with pytest.raises(ValueError, match="should have the same length"):
        layer.compute_mask([a, b], [None])


# -------------------------------------------------------- Keras unit-test behaviours
def test_dot_higher_rank_shapes():
    a, b = rnnkit.Input(batch_shape=(1, 3, 2)), rnnkit.Input(batch_shape=(1, 1, 2, 3))
    assert layers.Dot(axes=(-2, -1))([a, b]).shape == (1, 2, 1, 2)
    x, y = _x(1, 3, 2), _x(1, 1, 2, 3)
    out = layers.Dot(axes=(-2, -1))([x, y])
    np.testing.assert_allclose(_ours(out), np.einsum("bki,bjlk->bijl", x, y), atol=1e-5)
    theirs = keras.layers.Dot(axes=(-2, -1))([x, y])
    np.testing.assert_allclose(_ours(out), keras.ops.convert_to_numpy(theirs), atol=1e-5)


def test_layer_normalization_unsorted_axes_and_by_hand():
    x = _x(2, 3, 4)
    np.testing.assert_allclose(
        _ours(layers.LayerNormalization(axis=[-2, -1])(x)),
        _ours(layers.LayerNormalization(axis=[-1, -2])(x)),
        atol=1e-6,
    )
    # axis=1 (Keras' torch backend fails on it): by hand.
    layer = layers.LayerNormalization(
        axis=1, gamma_initializer="random_normal", beta_initializer="random_normal"
    )
    out = _ours(layer(x))
    gamma, beta = layer.get_weights()
    mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma[None, :, None] + beta[None, :, None]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_spatial_dropout_drops_whole_channels():
    x = torch.ones(4, 20, 50)
    layer = layers.SpatialDropout1D(0.5, seed=2)
    assert torch.equal(layer(x), x)
    out = layer(x, training=True)
    assert torch.equal(out, out[:, :1, :].expand_as(out))
    assert set(torch.unique(out).tolist()) == {0.0, 2.0}
    again = layers.SpatialDropout1D(0.5, seed=2)(x, training=True)
    assert torch.equal(out, again)
    assert "noise_shape" not in layer.get_config()


def test_average_pooling_same_excludes_the_padding():
    """Keras' definition (its TensorFlow and JAX backends): a window overlapping the padding
    averages its real steps. (Keras' torch backend replicates the edge value instead where
    the padding before the sequence is not empty, e.g. pool_size=4, strides=1.)"""
    x = np.arange(5, dtype="float32").reshape(1, 5, 1)
    out = _ours(layers.AveragePooling1D(4, strides=1, padding="same")(x))[0, :, 0]
    np.testing.assert_allclose(out, [1.0, 1.5, 2.5, 3.0, 3.5], atol=1e-6)


def test_up_sampling_and_padding_values():
    x = np.arange(6, dtype="float32").reshape(1, 3, 2)
    np.testing.assert_array_equal(_ours(layers.UpSampling1D(2)(x)), np.repeat(x, 2, axis=1))
    padded = _ours(layers.ZeroPadding1D((1, 2))(x))
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (1, 2), (0, 0))))
    np.testing.assert_array_equal(_ours(layers.Cropping1D((1, 1))(x)), x[:, 1:2])
    np.testing.assert_array_equal(_ours(layers.RepeatVector(3)(x[:, 0])), np.repeat(x[:, :1], 3, 1))
    np.testing.assert_array_equal(_ours(layers.Permute((2, 1))(x)), x.transpose(0, 2, 1))


def test_conv1d_by_hand():
    """Causal dilated conv, one filter: out[t] = sum_k w[k] x[t - (K-1-k) d]."""
    x = _x(1, 6, 1)
    layer = layers.Conv1D(1, 2, padding="causal", dilation_rate=2, use_bias=False)
    out = _ours(layer(x))[0, :, 0]
    w = layer.get_weights()[0][:, 0, 0]
    padded = np.concatenate([np.zeros(2, "float32"), x[0, :, 0]])
    expected = [w[0] * padded[t] + w[1] * padded[t + 2] for t in range(6)]
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("RepeatVector", (3,)),
        ("Permute", ((2, 1),)),
        ("ZeroPadding1D", (2,)),
        ("Cropping1D", ((1, 2),)),
        ("UpSampling1D", (3,)),
        ("Conv1D", (4, 3)),
        ("Conv2D", (4, (3, 2))),
        ("Conv3D", (4, 2)),
        ("MaxPooling1D", (3,)),
        ("AveragePooling1D", (3,)),
        ("GlobalMaxPooling1D", ()),
        ("GlobalAveragePooling1D", ()),
        ("SpatialDropout1D", (0.3,)),
        ("LayerNormalization", ()),
        ("Attention", ()),
        ("AdditiveAttention", ()),
        ("MultiHeadAttention", (2, 4)),
        ("Multiply", ()),
        ("Subtract", ()),
        ("Average", ()),
        ("Dot", (1,)),
    ],
)
def test_keras_configs_load(name, args):
    keras_config = getattr(keras.layers, name)(*args).get_config()
    ours = getattr(layers, name).from_config(keras_config)
    config = ours.get_config()

    def plain(value):
        if isinstance(value, dict) and "class_name" in value:
            return {"class_name": value["class_name"], "config": value["config"]}
        return list(value) if isinstance(value, tuple) else value

    for key, value in config.items():
        if key in keras_config and key != "dtype":
            assert plain(value) == plain(keras_config[key]), key
    missing = set(keras_config) - set(config) - {"dtype", "use_gate", "sliding_window"}
    assert not missing


def test_serialize_round_trip_of_every_new_layer():
    made = [
        layers.Conv1D(3, 2, padding="causal", kernel_regularizer="l2", bias_constraint="non_neg"),
        layers.MultiHeadAttention(2, 3, value_dim=5, output_shape=(4,), attention_axes=(1,)),
        layers.Attention(use_scale=True, score_mode="concat", dropout=0.1, seed=4),
        layers.LayerNormalization(axis=[1, 2], center=False),
        layers.Dot(axes=(1, 2), normalize=True),
        layers.GlobalAveragePooling1D(data_format="channels_first", keepdims=True),
    ]
    for layer in made:
        clone = layers.deserialize(layers.serialize(layer))
        assert type(clone) is type(layer)
        assert clone.get_config() == layer.get_config()


# ---------------------------------------------------------------------- Lambda
@register_keras_serializable(package="tests")
def _scaled(x, factor=2.0):
    return x * factor


def test_lambda_calls_and_shapes():
    layer = layers.Lambda(lambda x, mask=None, training=False: (x + 1) if training else x)
    x = _x(2, 3)
    np.testing.assert_array_equal(_ours(layer(x)), x)
    np.testing.assert_array_equal(_ours(layer(x, training=True)), x + 1)
    assert layers.Lambda(_scaled, output_shape=(3,)).compute_output_shape((None, 3)) == (None, 3)
    assert layers.Lambda(_scaled).compute_output_shape((4, 3)) == (4, 3)
    symbolic = layers.Lambda(lambda x: x[:, :2])(rnnkit.Input((5, 3)))
    assert symbolic.shape == (None, 2, 3)
    np.testing.assert_allclose(
        _ours(layers.Lambda(_scaled, arguments={"factor": 3.0})(x)), 3 * x, atol=1e-6
    )
    masked = layers.Lambda(lambda x: x, mask=lambda inputs, mask: inputs[:, :, 0] > 0)(_x(2, 3, 2))
    assert masked._keras_mask.shape == (2, 3)


def test_lambda_saving_rules(tmp_path):
    inputs = rnnkit.Input((3,))
    model = rnnkit.Model(
        inputs, layers.Dense(2)(layers.Lambda(_scaled, arguments={"factor": 3.0})(inputs))
    )
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="safe_mode=False"):
        load_model(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras", safe_mode=False)
    x = _x(2, 3)
    np.testing.assert_array_equal(_ours(again(x)), _ours(model(x)))
    anonymous = rnnkit.Model(inputs, layers.Lambda(lambda t: t * 2)(inputs))
    with pytest.raises(ValueError, match="Python lambda, which cannot be saved"):
        anonymous.save(tmp_path / "a.keras")
    unknown = {"class_name": "Lambda", "config": {"name": "l", "function": "not_registered"}}
    with pytest.raises(ValueError, match="'not_registered' is not in custom_objects"):
        layers.deserialize(unknown)
    bytecode = {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}}
    with pytest.raises(ValueError, match="bytecode"):
        layers.Lambda.from_config({"function": bytecode})


def test_keras_lambda_with_named_function_imports_unsafe(tmp_path):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(_scaled), keras.layers.Dense(1)]
    )
    model.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="safe_mode=False"):
        load_model(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras", safe_mode=False, custom_objects={"_scaled": _scaled})
    x = _x(2, 3)
    np.testing.assert_allclose(_ours(ours(x)), model.predict(x, verbose=0), atol=1e-5)


# ------------------------------------------------------- MultiHeadAttention (Keras' tests)
def test_multi_head_attention_keyword_call_and_query_mask_propagation():
    layer = layers.MultiHeadAttention(num_heads=2, key_dim=2)
    tokens = np.array([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2], [1, 0, 0, 0, 0]])
    query = layers.Embedding(4, 8, mask_zero=True)(tokens)
    output = layer(query=query, value=_x(3, 3, 8))
    np.testing.assert_array_equal(_ours(output._keras_mask), tokens != 0)


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_masks_equal_the_manual_attention_mask(causal):
    layer = layers.MultiHeadAttention(num_heads=2, key_dim=2)
    q_tokens = np.array([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2], [1, 0, 0, 0, 0]])
    v_tokens = np.array([[5, 4, 0], [3, 0, 0], [2, 1, 1]])
    query = layers.Embedding(4, 8, mask_zero=True)(q_tokens)
    value = layers.Embedding(6, 8, mask_zero=True)(v_tokens)
    output = layer(query=query, value=value, use_causal_mask=causal)
    manual = (q_tokens != 0)[:, :, None] & (v_tokens != 0)[:, None, :]
    if causal:
        manual &= np.tril(np.ones((5, 3), bool))[None]
    plain_q, plain_v = query.detach().clone(), value.detach().clone()
    expected = layer(plain_q, plain_v, attention_mask=manual)
    np.testing.assert_allclose(_ours(output), _ours(expected), atol=1e-6)


def test_multi_head_attention_mask_ranks_broadcast():
    x = _x(2, 5, 8)
    layer = layers.MultiHeadAttention(num_heads=2, key_dim=4)
    mask = np.tril(np.ones((5, 5), bool))
    outputs = [
        layer(x, x, attention_mask=m)
        for m in (mask, np.tile(mask[None], (2, 1, 1)), np.tile(mask[None, None], (2, 2, 1, 1)))
    ]
    for out in outputs[1:]:
        np.testing.assert_allclose(_ours(out), _ours(outputs[0]), atol=1e-6)
    np.testing.assert_allclose(
        _ours(outputs[0]), _ours(layer(x, x, use_causal_mask=True)), atol=1e-6
    )


@pytest.mark.parametrize(
    ("q_dims", "v_dims", "axes"),
    [((3, 4), (3, 2), (2,)), ((3, 4), (3, 2), (1, 2)), ((5, 3, 4), (5, 3, 2), (2, 3))],
)
def test_multi_head_attention_high_rank_matches_keras(q_dims, v_dims, axes):
    q, v = _x(3, *q_dims, 8), _x(3, *v_dims, 8)
    ours = layers.MultiHeadAttention(2, 2, attention_axes=axes)
    out = ours(q, v)
    assert tuple(out.shape) == q.shape
    theirs = keras.layers.MultiHeadAttention(2, 2, attention_axes=axes)
    theirs(q, v)
    theirs.set_weights(ours.get_weights())
    expected, expected_scores = theirs(q, v, return_attention_scores=True)
    _, scores = ours(q, v, return_attention_scores=True)
    np.testing.assert_allclose(_ours(out), keras.ops.convert_to_numpy(expected), atol=1e-5)
    np.testing.assert_allclose(
        _ours(scores), keras.ops.convert_to_numpy(expected_scores), atol=1e-5
    )
    negative = layers.MultiHeadAttention(
        2, 2, attention_axes=tuple(a - len(q_dims) - 2 for a in axes)
    )
    negative(q, v)
    negative.set_weights(ours.get_weights())
    np.testing.assert_allclose(_ours(negative(q, v)), _ours(out), atol=1e-6)


def test_multi_head_attention_symbolic_scores_and_output_shapes():
    mha = layers.MultiHeadAttention(num_heads=4, key_dim=2)
    x, y = rnnkit.Input(batch_shape=(2, 3, 5)), rnnkit.Input(batch_shape=(2, 3, 5))
    out, scores = mha(x, y, return_attention_scores=True)
    real_out, real_scores = mha(_x(2, 3, 5), _x(2, 3, 5), return_attention_scores=True)
    assert out.shape == tuple(real_out.shape) and scores.shape == tuple(real_scores.shape)
    assert layers.MultiHeadAttention(2, 16, output_shape=8)(_x(2, 4, 16), _x(2, 4, 16)).shape == (
        2,
        4,
        8,
    )
    assert layers.MultiHeadAttention(2, 16, output_shape=(8, 8))(
        _x(2, 4, 16), _x(2, 4, 16)
    ).shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="output_shape"):
        layers.MultiHeadAttention(num_heads=2, key_dim=16, output_shape=8.0)
    layer = layers.MultiHeadAttention(4, 2, value_dim=2)
    with pytest.raises(ValueError, match="must be equal"):
        layer.compute_output_shape((2, 4, 8), (2, 2, 8), (2, 1, 7))
    with pytest.raises(ValueError, match="must be equal"):
        layer(
            np.ones((2, 4, 8), "float32"),
            np.ones((2, 2, 8), "float32"),
            np.ones((2, 1, 7), "float32"),
        )


def test_multi_head_attention_sublayers_initialized_apart():
    layer = layers.MultiHeadAttention(num_heads=3, key_dim=4, kernel_initializer="truncated_normal")
    layer.build((2, 4, 8), (2, 4, 8))
    kernels = [layer.query_dense.kernel, layer.key_dense.kernel, layer.value_dense.kernel]
    assert not torch.allclose(kernels[0], kernels[1]) and not torch.allclose(kernels[0], kernels[2])


def test_keras_aliases():
    for alias, name in [
        ("MaxPool1D", "MaxPooling1D"),
        ("AvgPool1D", "AveragePooling1D"),
        ("GlobalMaxPool1D", "GlobalMaxPooling1D"),
        ("GlobalAvgPool1D", "GlobalAveragePooling1D"),
        ("Convolution1D", "Conv1D"),
        ("Convolution2D", "Conv2D"),
        ("Convolution3D", "Conv3D"),
    ]:
        assert getattr(layers, alias) is getattr(layers, name)
        assert getattr(keras.layers, alias) is getattr(keras.layers, name)


def test_sequential_with_input_shape_on_a_convolution():
    model = rnnkit.Sequential(
        [
            layers.Conv1D(8, 5, activation="relu", input_shape=(None, 4)),
            layers.MaxPool1D(2),
            layers.GlobalAvgPool1D(),
            layers.Dense(1),
        ]
    )
    assert model(_x(2, 12, 4)).shape == (2, 1)
    lines = []
    model.summary(print_fn=lines.append)
    text = " ".join(lines)
    assert "(None, None, 8)" in text and f"Total params: {model.count_params():,}" in text
