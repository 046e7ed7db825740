"""The layers sequence models put around their RNNs (issue 13, item 1), checked against Keras 3.

For every configuration in ``CASES``: the shared harness (shapes, config and weight round
trips, backward), Keras parity with the same weights (to 1e-5), ``compute_output_shape`` and
the symbolic shape, weight names and shapes, and ``count_params`` equal to Keras'.
"""

import keras
import numpy as np
import pytest
import torch
from harness import run_layer_test

import rnnkit
from rnnkit import layers

RNG = np.random.default_rng(13)
RANDOM_BIAS = {"bias_initializer": "random_normal"}


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _ours(x):
    return x.detach().cpu().numpy()


# (id, class name, constructor kwargs, input shape(s), call kwargs)
CASES = [
    ("repeat_vector", "RepeatVector", {"n": 3}, (2, 5), {}),
    ("permute", "Permute", {"dims": (2, 1)}, (2, 3, 4), {}),
    ("permute_3d", "Permute", {"dims": (3, 1, 2)}, (2, 3, 4, 5), {}),
    ("zero_padding", "ZeroPadding1D", {"padding": (1, 2)}, (2, 3, 4), {}),
    (
        "zero_padding_cf",
        "ZeroPadding1D",
        {"padding": 2, "data_format": "channels_first"},
        (2, 3, 4),
        {},
    ),
    ("cropping", "Cropping1D", {"cropping": (1, 2)}, (2, 6, 3), {}),
    ("up_sampling", "UpSampling1D", {"size": 3}, (2, 4, 3), {}),
    ("conv1d", "Conv1D", {"filters": 4, "kernel_size": 3, **RANDOM_BIAS}, (2, 9, 5), {}),
    (
        "conv1d_same_strided",
        "Conv1D",
        {"filters": 4, "kernel_size": 4, "strides": 3, "padding": "same", **RANDOM_BIAS},
        (2, 10, 5),
        {},
    ),
    (
        "conv1d_causal_dilated",
        "Conv1D",
        {"filters": 6, "kernel_size": 3, "padding": "causal", "dilation_rate": 2, "groups": 2},
        (2, 9, 4),
        {},
    ),
    (
        "conv1d_cf_relu",
        "Conv1D",
        {
            "filters": 3,
            "kernel_size": 2,
            "strides": 2,
            "data_format": "channels_first",
            "activation": "relu",
            **RANDOM_BIAS,
        },
        (2, 4, 9),
        {},
    ),
    (
        "conv1d_no_bias",
        "Conv1D",
        {"filters": 3, "kernel_size": 1, "use_bias": False},
        (2, 5, 4),
        {},
    ),
    (
        "conv1d_causal_cf_strided",
        "Conv1D",
        {
            "filters": 3,
            "kernel_size": 3,
            "strides": 2,
            "padding": "causal",
            "data_format": "channels_first",
            **RANDOM_BIAS,
        },
        (2, 4, 9),
        {},
    ),
    (
        "conv3d_cf_same",
        "Conv3D",
        {"filters": 2, "kernel_size": 2, "padding": "same", "data_format": "channels_first"},
        (1, 2, 3, 4, 5),
        {},
    ),
    (
        "conv2d",
        "Conv2D",
        {"filters": 4, "kernel_size": (3, 2), "strides": (2, 1), "padding": "same", **RANDOM_BIAS},
        (2, 7, 6, 3),
        {},
    ),
    (
        "conv2d_cf_dilated_groups",
        "Conv2D",
        {
            "filters": 4,
            "kernel_size": 2,
            "dilation_rate": (2, 1),
            "groups": 2,
            "data_format": "channels_first",
            "activation": "tanh",
        },
        (2, 4, 6, 5),
        {},
    ),
    (
        "conv3d",
        "Conv3D",
        {"filters": 2, "kernel_size": (2, 3, 2), "padding": "same", "strides": 2, **RANDOM_BIAS},
        (2, 5, 6, 4, 3),
        {},
    ),
    ("conv3d_valid", "Conv3D", {"filters": 3, "kernel_size": 2}, (1, 3, 4, 5, 2), {}),
    ("max_pool", "MaxPooling1D", {"pool_size": 2}, (2, 7, 3), {}),
    (
        "max_pool_same",
        "MaxPooling1D",
        {"pool_size": 3, "strides": 2, "padding": "same"},
        (2, 8, 3),
        {},
    ),
    (
        "max_pool_cf",
        "MaxPooling1D",
        {"pool_size": 2, "strides": 1, "data_format": "channels_first"},
        (2, 3, 6),
        {},
    ),
    ("avg_pool", "AveragePooling1D", {"pool_size": 3, "strides": 2}, (2, 9, 3), {}),
    (
        "avg_pool_same_even",
        "AveragePooling1D",
        {"pool_size": 3, "strides": 1, "padding": "same"},
        (2, 6, 3),
        {},
    ),
    ("global_max", "GlobalMaxPooling1D", {}, (2, 5, 3), {}),
    (
        "global_max_keepdims_cf",
        "GlobalMaxPooling1D",
        {"keepdims": True, "data_format": "channels_first"},
        (2, 5, 3),
        {},
    ),
    ("global_avg", "GlobalAveragePooling1D", {}, (2, 5, 3), {}),
    ("global_avg_keepdims", "GlobalAveragePooling1D", {"keepdims": True}, (2, 5, 3), {}),
    ("spatial_dropout", "SpatialDropout1D", {"rate": 0.5}, (2, 5, 3), {}),
    (
        "layer_norm",
        "LayerNormalization",
        {"gamma_initializer": "random_normal", "beta_initializer": "random_normal"},
        (2, 5, 6),
        {},
    ),
    ("layer_norm_axes", "LayerNormalization", {"axis": [1, 2], "epsilon": 1e-5}, (2, 3, 4), {}),
    ("layer_norm_no_center", "LayerNormalization", {"center": False}, (2, 3, 4), {}),
    ("attention", "Attention", {}, [(2, 4, 3), (2, 5, 3)], {}),
    ("attention_scaled", "Attention", {"use_scale": True}, [(2, 4, 3), (2, 5, 6), (2, 5, 3)], {}),
    (
        "attention_concat",
        "Attention",
        {"score_mode": "concat", "use_scale": True},
        [(2, 4, 3), (2, 5, 3)],
        {},
    ),
    ("attention_causal", "Attention", {}, [(2, 4, 3), (2, 4, 3)], {"use_causal_mask": True}),
    ("additive_attention", "AdditiveAttention", {}, [(2, 4, 3), (2, 5, 3)], {}),
    (
        "additive_attention_no_scale",
        "AdditiveAttention",
        {"use_scale": False},
        [(2, 4, 3), (2, 5, 2), (2, 5, 3)],
        {},
    ),
    ("multiply", "Multiply", {}, [(2, 3, 4), (2, 3, 4), (2, 3, 4)], {}),
    ("subtract", "Subtract", {}, [(2, 3, 4), (2, 3, 4)], {}),
    ("average", "Average", {}, [(2, 3, 4), (2, 3, 4)], {}),
    ("dot_2d", "Dot", {"axes": 1}, [(3, 4), (3, 4)], {}),
    ("dot_scores", "Dot", {"axes": (2, 2)}, [(2, 3, 4), (2, 5, 4)], {}),
    ("dot_normalize", "Dot", {"axes": (1, 1), "normalize": True}, [(2, 3, 4), (2, 3, 5)], {}),
    ("dot_negative", "Dot", {"axes": -1}, [(2, 4), (2, 3, 4)], {}),
]
MHA_CASES = [
    ("mha", {"num_heads": 2, "key_dim": 3, **RANDOM_BIAS}, [(2, 4, 6), (2, 5, 3)], {}),
    ("mha_self", {"num_heads": 3, "key_dim": 2, "value_dim": 4}, [(2, 5, 6), (2, 5, 6)], {}),
    (
        "mha_key_output_shape",
        {"num_heads": 2, "key_dim": 4, "output_shape": 5, **RANDOM_BIAS},
        [(2, 4, 6), (2, 5, 3), (2, 5, 7)],
        {},
    ),
    (
        "mha_no_bias_causal",
        {"num_heads": 2, "key_dim": 3, "use_bias": False},
        [(2, 4, 6), (2, 4, 6)],
        {"use_causal_mask": True},
    ),
    (
        "mha_scores",
        {"num_heads": 2, "key_dim": 3},
        [(2, 4, 6), (2, 5, 3)],
        {"return_attention_scores": True},
    ),
    (
        "mha_rank4",
        {"num_heads": 2, "key_dim": 2},
        [(2, 3, 4, 5), (2, 3, 2, 5)],
        {"return_attention_scores": True},
    ),
    (
        "mha_rank4_axis2",
        {"num_heads": 2, "key_dim": 2, "attention_axes": 2},
        [(2, 3, 4, 5), (2, 3, 2, 5)],
        {},
    ),
]


def _data(shape):
    if isinstance(shape, list):
        return [RNG.standard_normal(s).astype("float32") for s in shape]
    return RNG.standard_normal(shape).astype("float32")


def _call(layer, x, call_kwargs, mha=False):
    if mha:
        return layer(*x, **call_kwargs)
    return layer(x, **call_kwargs)


def _pair(name, kwargs, x, call_kwargs, mha=False):
    """Our layer and Keras' with the same weights (ours initialized, copied into Keras)."""
    ours = getattr(layers, name)(**kwargs)
    out = _call(ours, x, call_kwargs, mha)
    theirs = getattr(keras.layers, name)(**kwargs)
    _call(theirs, x, call_kwargs, mha)
    assert len(theirs.weights) == len(ours.weights)
    theirs.set_weights(ours.get_weights())
    return ours, theirs, out


def _assert_same(ours_out, theirs_out):
    ours_out = ours_out if isinstance(ours_out, tuple) else (ours_out,)
    theirs_out = theirs_out if isinstance(theirs_out, tuple) else (theirs_out,)
    assert len(ours_out) == len(theirs_out)
    for a, b in zip(ours_out, theirs_out):
        np.testing.assert_allclose(_ours(a), _np(b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("case", "name", "kwargs", "shape", "call_kwargs"), CASES, ids=[c[0] for c in CASES]
)
def test_matches_keras(case, name, kwargs, shape, call_kwargs):
    x = _data(shape)
    ours, theirs, out = _pair(name, kwargs, x, call_kwargs)
    _assert_same(out, theirs(x, **call_kwargs))
    # Weight names, shapes and counts as Keras'.
    assert [w.path.split("/", 1)[1] for w in theirs.weights] == [
        p.split("/", 1)[1] for p in ours.weight_paths()
    ]
    assert [tuple(w.shape) for w in theirs.weights] == [tuple(w.shape) for w in ours.weights]
    assert ours.count_params() == theirs.count_params()
    # compute_output_shape, with the batch unknown too.
    if not call_kwargs:
        in_shape = [tuple(s) for s in shape] if isinstance(shape, list) else tuple(shape)
        assert tuple(ours.compute_output_shape(in_shape)) == tuple(
            theirs.compute_output_shape(in_shape)
        )


@pytest.mark.parametrize(
    ("case", "kwargs", "shapes", "call_kwargs"), MHA_CASES, ids=[c[0] for c in MHA_CASES]
)
def test_multi_head_attention_matches_keras(case, kwargs, shapes, call_kwargs):
    x = _data(shapes)
    ours, theirs, out = _pair("MultiHeadAttention", kwargs, x, call_kwargs, mha=True)
    _assert_same(out, theirs(*x, **call_kwargs))
    assert [w.path.split("/", 1)[1] for w in theirs.weights] == [
        p.split("/", 1)[1] for p in ours.weight_paths()
    ]
    assert [tuple(w.shape) for w in theirs.weights] == [tuple(w.shape) for w in ours.weights]
    assert ours.count_params() == theirs.count_params()
    assert ours.compute_output_shape(*[s for s in shapes]) == theirs.compute_output_shape(
        *[s for s in shapes]
    )


@pytest.mark.parametrize(
    ("case", "name", "kwargs", "shape", "call_kwargs"), CASES, ids=[c[0] for c in CASES]
)
def test_harness(case, name, kwargs, shape, call_kwargs):
    x = _data(shape)
    run_layer_test(getattr(layers, name), kwargs, input_data=x, call_kwargs=call_kwargs)


@pytest.mark.parametrize(
    ("case", "name", "kwargs", "shape", "call_kwargs"), CASES, ids=[c[0] for c in CASES]
)
def test_symbolic_shapes_match_keras(case, name, kwargs, shape, call_kwargs):
    """Functional use with unknown batch (and time) sizes gives Keras' symbolic shapes."""
    shapes = shape if isinstance(shape, list) else [shape]
    same_steps = ("Attention", "AdditiveAttention", "Multiply", "Subtract", "Average")
    fixed = ("Dot", "LayerNormalization", "Permute", *same_steps)
    steps_axis = 2 if kwargs.get("data_format") == "channels_first" else 1
    for unknown_time in (False, True):

        def batch_shape(s, unknown_time=unknown_time):
            s = [None, *s[1:]]
            if unknown_time and len(s) >= 3 and name not in fixed:
                s[steps_axis] = None
            return tuple(s)

        ours_in = [rnnkit.Input(batch_shape=batch_shape(s)) for s in shapes]
        theirs_in = [keras.Input(batch_shape=batch_shape(s)) for s in shapes]
        ours_in = ours_in if isinstance(shape, list) else ours_in[0]
        theirs_in = theirs_in if isinstance(shape, list) else theirs_in[0]
        ours = getattr(layers, name)(**kwargs)(ours_in, **call_kwargs)
        theirs = getattr(keras.layers, name)(**kwargs)(theirs_in, **call_kwargs)
        assert tuple(ours.shape) == tuple(theirs.shape), (unknown_time, ours.shape, theirs.shape)


GRADCHECK = [
    (
        "Conv1D",
        {"filters": 2, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
        (2, 6, 3),
    ),
    ("Conv2D", {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same"}, (1, 5, 4, 2)),
    ("AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, (2, 5, 2)),
    ("MaxPooling1D", {"pool_size": 2}, (2, 6, 2)),
    ("LayerNormalization", {"axis": [1, 2]}, (2, 3, 4)),
    ("Attention", {"use_scale": True, "score_mode": "concat"}, [(2, 3, 4), (2, 5, 4)]),
    ("AdditiveAttention", {}, [(2, 3, 4), (2, 5, 4)]),
    ("Dot", {"axes": (2, 2), "normalize": True}, [(2, 3, 4), (2, 5, 4)]),
]


@pytest.mark.parametrize(("name", "kwargs", "shape"), GRADCHECK, ids=[g[0] for g in GRADCHECK])
def test_float64_gradcheck(name, kwargs, shape):
    """Gradients with respect to the inputs and every weight, against finite differences."""
    layer = getattr(layers, name)(dtype="float64", **kwargs)
    shapes = shape if isinstance(shape, list) else [shape]
    inputs = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    layer(inputs if isinstance(shape, list) else inputs[0])
    names = [n for n, p in layer.named_parameters() if p.requires_grad]
    assert len(names) == len(layer.trainable_weights)
    values = [layer.get_parameter(n).detach().clone().requires_grad_(True) for n in names]

    def run(*tensors):
        xs = list(tensors[: len(inputs)])
        params = dict(zip(names, tensors[len(inputs) :]))
        return torch.func.functional_call(
            layer, params, (xs if isinstance(shape, list) else xs[0],)
        )

    assert torch.autograd.gradcheck(run, (*inputs, *values), eps=1e-6, atol=1e-5, fast_mode=True)


def test_float64_gradcheck_multi_head_attention():
    layer = layers.MultiHeadAttention(2, 3, dtype="float64")
    q = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    layer(q, v)
    names = [n for n, _ in layer.named_parameters()]
    values = [layer.get_parameter(n).detach().clone().requires_grad_(True) for n in names]

    def run(a, b, *weights):
        params = dict(zip(names, weights))
        return torch.func.functional_call(layer, params, (a, b), {"value_mask": mask})

    assert torch.autograd.gradcheck(run, (q, v, *values), eps=1e-6, atol=1e-5, fast_mode=True)
