"""Core layers: the shared harness, Keras 3 parity with copied weights, masks and bad inputs."""

import keras
import numpy as np
import pytest
import torch
import torch.utils._python_dispatch
from harness import run_layer_test

import rnnkit
from rnnkit import layers

RNG = np.random.default_rng(1)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _ours(x):
    return x.detach().cpu().numpy()


# ------------------------------------------------------------------------------ harness
@pytest.mark.parametrize(
    ("cls", "kwargs", "input_shape", "expected", "n_trainable", "n_non_trainable"),
    [
        (layers.Dense, {"units": 4}, (3, 5), (3, 4), 2, 0),
        (
            layers.Dense,
            {"units": 4, "activation": "tanh", "use_bias": False},
            (2, 3, 5),
            (2, 3, 4),
            1,
            0,
        ),
        (
            layers.Dense,
            {"units": 2, "kernel_regularizer": "l2", "kernel_constraint": "max_norm"},
            (3, 5),
            (3, 2),
            2,
            0,
        ),
        (layers.Dropout, {"rate": 0.5}, (3, 4), (3, 4), 0, 0),
        (
            layers.Dropout,
            {"rate": 0.3, "noise_shape": (None, 1, 4), "seed": 3},
            (2, 3, 4),
            (2, 3, 4),
            0,
            0,
        ),
        (layers.Activation, {"activation": "relu"}, (3, 4), (3, 4), 0, 0),
        (layers.Masking, {"mask_value": 0.0}, (2, 3, 4), (2, 3, 4), 0, 0),
        (layers.Flatten, {}, (2, 3, 4), (2, 12), 0, 0),
        (layers.Reshape, {"target_shape": (-1, 2)}, (2, 3, 4), (2, 6, 2), 0, 0),
        (layers.BatchNormalization, {}, (4, 3), (4, 3), 2, 2),
        (layers.BatchNormalization, {"axis": 1, "center": False}, (4, 3, 2), (4, 3, 2), 1, 2),
    ],
)
def test_harness(cls, kwargs, input_shape, expected, n_trainable, n_non_trainable):
    run_layer_test(
        cls,
        kwargs,
        input_shape=input_shape,
        expected_output_shape=expected,
        expected_num_trainable_weights=n_trainable,
        expected_num_non_trainable_weights=n_non_trainable,
    )


@pytest.mark.parametrize("mask_zero", [False, True])
def test_harness_embedding(mask_zero):
    layer = run_layer_test(
        layers.Embedding,
        {"input_dim": 5, "output_dim": 3, "mask_zero": mask_zero},
        input_shape=(2, 4),
        input_dtype="int64",
        expected_output_shape=(2, 4, 3),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
        supports_masking=mask_zero,
    )
    assert layer.weight_paths() == [f"{layer.name}/embeddings"]


@pytest.mark.parametrize("cls", [layers.Add, layers.Concatenate])
def test_harness_merging(cls):
    run_layer_test(
        cls,
        {},
        input_shape=[(2, 3, 4), (2, 3, 4)],
        expected_output_shape=(2, 3, 8) if cls is layers.Concatenate else (2, 3, 4),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
    )


def test_harness_concatenate_on_time_axis():
    run_layer_test(
        layers.Concatenate,
        {"axis": 1},
        input_shape=[(2, 3, 4), (2, 5, 4)],
        expected_output_shape=(2, 8, 4),
    )


# ------------------------------------------------------------------------ Keras parity
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
@pytest.mark.parametrize("activation", [None, "tanh", "relu"])
def test_dense_matches_keras(shape, activation):
    x = RNG.standard_normal(shape).astype("float32")
    ours = layers.Dense(3, activation=activation)
    out = ours(x)
    theirs = keras.layers.Dense(3, activation=activation)
    theirs.build(shape)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(_ours(out), _np(theirs(x)), atol=1e-5)
    assert [tuple(w.shape) for w in ours.weights] == [(5, 3), (3,)]
    # A hand-written reference too, so a regression shows even if both drifted together.
    kernel, bias = ours.get_weights()
    expected = x @ kernel + bias
    expected = {None: expected, "tanh": np.tanh(expected), "relu": np.maximum(expected, 0)}[
        activation
    ]
    np.testing.assert_allclose(_ours(out), expected, atol=1e-5)


def test_dense_config_matches_keras_keys():
    ours = set(layers.Dense(3).get_config())
    theirs = set(keras.layers.Dense(3).get_config())
    assert {k for k in theirs if k not in ("quantization_config",)} <= ours


@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_matches_keras(mask_zero):
    x = np.array([[1, 0, 4, 2], [0, 0, 3, 9]], dtype="int64")
    ours = layers.Embedding(10, 3, mask_zero=mask_zero)
    out = ours(x)
    theirs = keras.layers.Embedding(10, 3, mask_zero=mask_zero)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(_ours(out), _np(theirs(x)), atol=1e-6)
    np.testing.assert_allclose(_ours(out), ours.get_weights()[0][x], atol=0)
    if mask_zero:
        expected = _np(theirs.compute_mask(x))
        np.testing.assert_array_equal(_ours(out._keras_mask), expected)
        np.testing.assert_array_equal(_ours(out._keras_mask), x != 0)
    else:
        assert getattr(out, "_keras_mask", None) is None


def test_embedding_default_initializer_is_uniform_005():
    layer = layers.Embedding(200, 50)
    layer.build(None)
    (w,) = layer.get_weights()
    assert np.abs(w).max() <= 0.05 and w.std() > 0.02


def _bn_pair(x, **kwargs):
    ours = layers.BatchNormalization(
        gamma_initializer="random_normal", beta_initializer="random_normal", **kwargs
    )
    ours.build(x.shape)
    # Non-default moving statistics, so inference mode is a real test.
    c = ours.moving_mean.shape[0]
    weights = ours.get_weights()
    weights[2] = RNG.standard_normal(c).astype("float32")
    weights[3] = RNG.uniform(0.5, 2.0, c).astype("float32")
    ours.set_weights(weights)
    theirs = keras.layers.BatchNormalization(**kwargs)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


@pytest.mark.parametrize(("shape", "axis"), [((8, 3), -1), ((4, 5, 3), -1), ((4, 3, 5), 1)])
def test_batch_normalization_training_matches_keras(shape, axis):
    x = (RNG.standard_normal(shape) * 3 + 1).astype("float32")
    ours, theirs = _bn_pair(x, axis=axis, momentum=0.9)
    out = ours(x, training=True)
    expected = theirs(x, training=True)
    np.testing.assert_allclose(_ours(out), _np(expected), atol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Hand-written reference for the moving-mean update (axis -1, 2-D case).
    if len(shape) == 2:
        fresh, _ = _bn_pair(x, axis=axis, momentum=0.9)
        start = fresh.get_weights()
        fresh(x, training=True)
        np.testing.assert_allclose(
            fresh.get_weights()[2], start[2] * 0.9 + x.mean(0) * 0.1, atol=1e-5
        )
        np.testing.assert_allclose(
            fresh.get_weights()[3], start[3] * 0.9 + x.var(0) * 0.1, atol=1e-5
        )


def test_batch_normalization_training_on_the_cpu_takes_its_statistics_from_the_op(monkeypatch):
    """In training on the CPU, torch.native_batch_norm normalizes and updates the moving
    statistics itself (no separate var_mean): the layer's moving mean, and a copy of the moving
    variance scaled by n / (n - 1), which one division turns into Keras' moving variance. The
    copy is kept between calls while nothing else writes the moving variance and the batch
    size stays; the outputs, gradients and moving statistics are Keras' formulas, whatever
    happens between calls."""
    layer = layers.BatchNormalization(momentum=0.9)
    x = torch.tensor(RNG.standard_normal((8, 3)) * 2 + 1, dtype=torch.float32)
    x.requires_grad_(True)
    layer.build((None, 3))
    seen = []
    original = torch.native_batch_norm

    def spy(inputs, weight, bias, running_mean, running_var, *args):
        seen.append((running_mean, running_var))
        return original(inputs, weight, bias, running_mean, running_var, *args)

    monkeypatch.setattr(torch, "native_batch_norm", spy)
    monkeypatch.setattr(torch, "var_mean", None)  # not called

    def keras_update(weights, batch):
        data = batch.detach().numpy()
        mean = weights[2] * 0.9 + data.mean(0) * 0.1
        return mean, weights[3] * 0.9 + np.var(data, 0) * 0.1

    def check(batch):
        before = [w.copy() for w in layer.get_weights()]
        out = layer(batch, training=True)
        mean, variance = keras_update(before, batch)
        np.testing.assert_allclose(layer.get_weights()[2], mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(layer.get_weights()[3], variance, rtol=1e-6, atol=1e-6)
        return out

    out = check(x)
    assert seen[0][0] is layer.moving_mean  # the op updates the moving mean itself
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    reference = torch.nn.functional.batch_norm(
        x, None, None, layer.gamma, layer.beta, True, 0.0, layer.epsilon
    )
    (expected,) = torch.autograd.grad(reference.square().sum(), x)
    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(grad, expected)
    check(x * 2)
    assert seen[1][1] is seen[0][1]  # the scaled variance is kept between calls
    weights = layer.get_weights()
    weights[3] = weights[3] + 5.0
    layer.set_weights(weights)  # a write to the moving variance: a new scaled copy
    check(x)
    assert seen[2][1] is not seen[1][1]
    check(x[:5])  # another batch size: another scale
    assert seen[3][1] is not seen[2][1]
    assert set(layer.state_dict()) == {"gamma", "beta", "moving_mean", "moving_variance"}
    layer.double()  # another dtype: the buffers are new, so is the copy
    before = layer.get_weights()
    layer(x.double(), training=True)
    assert seen[-1][1].dtype == torch.float64
    np.testing.assert_allclose(layer.get_weights()[3], keras_update(before, x)[1], rtol=1e-6)
    with torch.inference_mode():  # a copy made in inference mode stays there
        layer(x.double().detach(), training=True)
    layer(x.double(), training=True)
    assert not seen[-1][1].is_inference()
    shared = layers.BatchNormalization()  # two calls, one backward (a shared layer)
    first, second = shared(x, training=True), shared(x * 2, training=True)
    (first.square().sum() + second.square().sum()).backward()


def test_batch_normalization_inference_matches_keras():
    x = RNG.standard_normal((4, 5, 3)).astype("float32")
    ours, theirs = _bn_pair(x)
    before = ours.get_weights()
    out = ours(x)  # inference by default
    np.testing.assert_allclose(_ours(out), _np(theirs(x, training=False)), atol=1e-5)
    gamma, beta, mean, var = before
    np.testing.assert_allclose(
        _ours(out), (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, atol=1e-5
    )
    for a, b in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_batch_normalization_frozen_runs_in_inference_mode():
    x = RNG.standard_normal((6, 3)).astype("float32")
    ours, theirs = _bn_pair(x)
    ours.trainable = False
    theirs.trainable = False
    before = ours.get_weights()
    np.testing.assert_allclose(
        _ours(ours(x, training=True)), _np(theirs(x, training=True)), atol=1e-5
    )
    for a, b in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_batch_normalization_masked_moments_match_keras():
    x = RNG.standard_normal((3, 4, 2)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    ours, theirs = _bn_pair(x, momentum=0.5)
    start = ours.get_weights()
    out = ours(x, training=True, mask=torch.as_tensor(mask))
    expected = theirs(x, training=True, mask=mask)
    np.testing.assert_allclose(_ours(out), _np(expected), atol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # By hand: only the unmasked steps count.
    kept = x[mask]
    np.testing.assert_allclose(
        ours.get_weights()[2], 0.5 * start[2] + 0.5 * kept.mean(0), atol=1e-5
    )
    np.testing.assert_allclose(ours.get_weights()[3], 0.5 * start[3] + 0.5 * kept.var(0), atol=1e-5)


def test_batch_normalization_weight_order_and_no_grad_on_moving_stats():
    layer = layers.BatchNormalization()
    out = layer(torch.randn(4, 3), training=True)
    assert layer.weight_paths() == [
        "batch_normalization/gamma",
        "batch_normalization/beta",
        "batch_normalization/moving_mean",
        "batch_normalization/moving_variance",
    ]
    out.sum().backward()
    assert layer.moving_mean.grad is None and not layer.moving_mean.requires_grad


def test_masking_matches_keras():
    x = RNG.standard_normal((2, 4, 3)).astype("float32")
    x[0, 1] = 0.0
    x[1, 3] = 0.0
    x[1, 0, 0] = 0.0  # one zero feature does not mask the step
    ours = layers.Masking(mask_value=0.0)
    out = ours(x)
    theirs = keras.layers.Masking(mask_value=0.0)
    np.testing.assert_allclose(_ours(out), _np(theirs(x)), atol=0)
    expected_mask = np.array([[True, False, True, True], [True, True, True, False]])
    np.testing.assert_array_equal(_ours(out._keras_mask), expected_mask)
    np.testing.assert_array_equal(_np(theirs.compute_mask(x)), expected_mask)


def test_masking_with_other_value_zeroes_masked_steps():
    x = np.full((1, 3, 2), 7.0, dtype="float32")
    x[0, 0] = [1.0, 7.0]
    out = layers.Masking(mask_value=7.0)(x)
    np.testing.assert_array_equal(_ours(out), [[[1.0, 7.0], [0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_array_equal(_ours(out._keras_mask), [[True, False, False]])


def test_masking_computes_its_mask_once_and_subclasses_keep_their_own():
    x = torch.ones(2, 3, 4)
    x[0, 1] = 0.0
    calls = []

    class Counted(layers.Masking):
        def compute_mask(self, inputs, mask=None):
            calls.append(1)
            return super().compute_mask(inputs, mask) & False  # their own mask

    out = Counted()(x)
    assert calls and not out._keras_mask.any()  # a subclass's compute_mask is used

    class Passthrough(layers.Masking):
        def call(self, inputs):
            return inputs  # carries the upstream mask below

    upstream = torch.ones(2, 3, 4)
    upstream._keras_mask = torch.zeros(2, 3, dtype=torch.bool)
    out = Passthrough()(upstream)
    np.testing.assert_array_equal(out._keras_mask.numpy(), [[True] * 3] * 2)  # recomputed

    layer = layers.Masking()
    ops = []
    with _CountOps(ops):
        out = layer(x)
    assert ops.count("ne") == 1 and ops.count("any") == 1  # the mask: one comparison
    np.testing.assert_array_equal(out._keras_mask.numpy(), [[True, False, True], [True] * 3])


class _CountOps(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self, names):
        super().__init__()
        self.names = names

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func._schema.name.split("::")[-1])
        return func(*args, **(kwargs or {}))


def test_dropout_training_only_and_scaling():
    x = torch.ones(200, 50)
    layer = layers.Dropout(0.25, seed=1)
    assert torch.equal(layer(x), x)
    y = layer(x, training=True)
    np.testing.assert_allclose(torch.unique(y).numpy(), [0.0, 1.0 / 0.75], rtol=1e-6)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.02
    # noise_shape shares the pattern across the broadcast axis.
    z = layers.Dropout(0.5, noise_shape=(None, 1, 4))(torch.ones(3, 5, 4), training=True)
    assert torch.equal(z, z[:, :1, :].expand_as(z))


def test_dropout_seed_is_reproducible():
    x = torch.ones(4, 10)
    a = layers.Dropout(0.5, seed=7)(x, training=True)
    b = layers.Dropout(0.5, seed=7)(x, training=True)
    assert torch.equal(a, b)


def test_flatten_reshape_activation_values():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    np.testing.assert_array_equal(_ours(layers.Flatten()(x)), x.reshape(2, 12))
    np.testing.assert_array_equal(_ours(layers.Reshape((4, 3))(x)), x.reshape(2, 4, 3))
    np.testing.assert_array_equal(
        _ours(layers.Flatten(data_format="channels_first")(x)),
        _np(keras.layers.Flatten(data_format="channels_first")(x)),
    )
    assert layers.Flatten()(np.ones(3, "float32")).shape == (3, 1)
    y = RNG.standard_normal((3, 4)).astype("float32")
    for name in ("relu", "tanh", "softmax", "hard_sigmoid"):
        np.testing.assert_allclose(
            _ours(layers.Activation(name)(y)), _np(keras.layers.Activation(name)(y)), atol=1e-6
        )


def test_merging_values_and_masks_match_keras():
    a = RNG.standard_normal((2, 3, 4)).astype("float32")
    b = RNG.standard_normal((2, 3, 2)).astype("float32")
    ma = torch.tensor([[True, True, False], [True, False, False]])
    mb = torch.tensor([[True, False, False], [True, True, True]])
    ta, tb = torch.as_tensor(a), torch.as_tensor(b)
    ta._keras_mask, tb._keras_mask = ma, mb
    cat = layers.Concatenate()([ta, tb])
    np.testing.assert_array_equal(_ours(cat), np.concatenate([a, b], -1))
    np.testing.assert_array_equal(_ours(cat._keras_mask), _ours(ma | mb))
    expected_mask = keras.layers.Concatenate().compute_mask([a, b], [ma.numpy(), mb.numpy()])
    np.testing.assert_array_equal(_ours(cat._keras_mask), _np(expected_mask))
    # One unmasked input: Keras counts it as all-True.
    tc = torch.as_tensor(b)
    partial = layers.Concatenate()([ta, tc])
    np.testing.assert_array_equal(_ours(partial._keras_mask), np.ones((2, 3), bool))
    # Along time: masks joined.
    tb3 = torch.as_tensor(RNG.standard_normal((2, 3, 4)).astype("float32"))
    tb3._keras_mask = mb
    joined = layers.Concatenate(axis=1)([ta, tb3])
    np.testing.assert_array_equal(_ours(joined._keras_mask), _ours(torch.cat([ma, mb], 1)))
    # Add: OR of the masks when all have one, none otherwise.
    tb4 = torch.as_tensor(a * 2)
    tb4._keras_mask = mb
    added = layers.Add()([ta, tb4])
    np.testing.assert_allclose(_ours(added), a * 3, atol=1e-6)
    np.testing.assert_array_equal(_ours(added._keras_mask), _ours(ma | mb))
    assert getattr(layers.Add()([ta, torch.as_tensor(a)]), "_keras_mask", None) is None


def test_functional_merge_helpers_on_symbolic_inputs():
    a, b = rnnkit.Input(shape=(5, 3)), rnnkit.Input(shape=(5, 2))
    assert layers.concatenate([a, b]).shape == (None, 5, 5)
    assert layers.concatenate([a, a], axis=1).shape == (None, 10, 3)
    assert layers.add([a, a]).shape == (None, 5, 3)
    x = torch.ones(2, 3)
    torch.testing.assert_close(layers.add([x, x, x]), 3 * x)


def test_symbolic_embedding_then_dense_keeps_mask():
    x = rnnkit.Input(shape=(None,), dtype="int64")
    y = layers.Embedding(10, 4, mask_zero=True)(x)
    z = layers.Dense(2)(y)
    assert z.shape == (None, None, 2)
    assert z._keras_mask is not None and z._keras_mask.shape == (None, None)


def test_regularizer_losses_and_activity_regularizer():
    layer = layers.Dense(
        2, kernel_regularizer=rnnkit.regularizers.L2(0.1), activity_regularizer="l1"
    )
    x = np.ones((4, 3), "float32")
    out = layer(x)
    kernel_loss = 0.1 * float((layer.get_weights()[0] ** 2).sum())
    activity_loss = 0.01 * float(np.abs(_ours(out)).sum()) / 4  # divided by the batch size
    losses = sorted(t.item() for t in layer.losses)
    assert losses == pytest.approx(sorted([kernel_loss, activity_loss]), rel=1e-5)
    assert len(layer.losses) == 2  # bias has no regularizer


def test_config_round_trip_through_serialize():
    layer = layers.BatchNormalization(
        momentum=0.5, gamma_regularizer="l2", beta_constraint="non_neg"
    )
    clone = layers.deserialize(layers.serialize(layer))
    assert isinstance(clone, layers.BatchNormalization)
    assert clone.momentum == 0.5 and isinstance(clone.gamma_regularizer, rnnkit.regularizers.L2)
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("Dense", (3,)),
        ("Embedding", (5, 3)),
        ("Dropout", (0.5,)),
        ("Activation", ("relu",)),
        ("Masking", ()),
        ("Flatten", ()),
        ("Reshape", ((2, 3),)),
        ("BatchNormalization", ()),
        ("Concatenate", ()),
        ("Add", ()),
    ],
)
def test_keras_configs_load(name, args):
    keras_config = getattr(keras.layers, name)(*args).get_config()
    ours = getattr(layers, name).from_config(keras_config)
    config = ours.get_config()

    def plain(value):
        if isinstance(value, dict) and "class_name" in value:  # drop Keras' module keys
            return {"class_name": value["class_name"], "config": value["config"]}
        return list(value) if isinstance(value, tuple) else value

    for key, value in config.items():
        if key in keras_config and key != "dtype":
            assert plain(value) == plain(keras_config[key]), key


def test_keras_only_features_are_refused():
    config = keras.layers.BatchNormalization(renorm=True).get_config()
    with pytest.raises(ValueError, match="renorm=True"):
        layers.BatchNormalization.from_config(config)
    with pytest.raises(ValueError, match="lora_rank=4"):
        layers.Dense.from_config({"units": 2, "lora_rank": 4})


# ---------------------------------------------------------------------------- bad inputs
def test_embedding_index_out_of_range():
    layer = layers.Embedding(5, 2)
    with pytest.raises(ValueError, match=r"input_dim=5.*received index 5"):
        layer(np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"input_dim=5.*received index -1"):
        layer(np.array([[-1, 2]]))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rate_out_of_range(rate):
    with pytest.raises(ValueError, match=r"rate.*\[0, 1\)"):
        layers.Dropout(rate)


def test_dense_wrong_feature_size_after_build():
    layer = layers.Dense(3, name="proj")
    layer(np.ones((2, 4), "float32"))
    with pytest.raises(
        ValueError, match=r"Dense 'proj': inputs has shape \(2, 5\), expected \(None, 4\)"
    ):
        layer(np.ones((2, 5), "float32"))
    with pytest.raises(
        ValueError, match=r"Dense 'proj': inputs has shape \(4,\), expected rank >= 2"
    ):
        layer(np.ones((4,), "float32"))
    with pytest.raises(ValueError, match=r"rank >= 2"):
        layers.Dense(2)(np.ones((4,), "float32"))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="units"):
        layers.Dense(0)
    with pytest.raises(ValueError, match="kernel_initializer: unknown initializer 'nope'"):
        layers.Dense(2, kernel_initializer="nope")
    with pytest.raises(ValueError, match="activation: unknown activation"):
        layers.Activation("nope")
    with pytest.raises(ValueError, match="output_dim"):
        layers.Embedding(3, -1)
    with pytest.raises(ValueError, match="target_shape"):
        layers.Reshape((-1, -1))
    with pytest.raises(TypeError, match="unexpected keyword argument.*'unitz'"):
        layers.Dense(2, unitz=3)


def test_bad_call_inputs():
    with pytest.raises(ValueError, match=r"Reshape '.*'.*target_shape \(5,\)"):
        layers.Reshape((5,))(np.ones((2, 6), "float32"))
    with pytest.raises(ValueError, match="same rank|match on every axis"):
        layers.Concatenate()([torch.ones(2, 3, 4), torch.ones(2, 4, 4)])
    with pytest.raises(ValueError, match="incompatible shapes"):
        layers.Add()([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(ValueError, match="list of"):
        layers.Add()(torch.ones(2, 3))
    bn = layers.BatchNormalization()
    bn(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"inputs has shape \(2, 4\), expected \(None, 3\)"):
        bn(torch.ones(2, 4))


class _WeightNormDense(layers.Dense):
    """A Dense whose kernel is computed (weight normalisation), not a registered weight."""

    def build(self, input_shape):
        self.v = self.add_weight(shape=(input_shape[-1], self.units), name="v")
        self.g = self.add_weight(shape=(self.units,), initializer="ones", name="g")
        self.bias = None

    @property
    def kernel(self):
        return self.v * (self.g / self.v.norm(dim=0))


def test_dense_subclass_with_a_computed_kernel_calls_with_it():
    """Dense.call reads its weights from torch's registry when they are registered there and
    falls back to the attributes otherwise (a subclass's computed kernel)."""
    layer = _WeightNormDense(2)
    x = torch.randn(3, 4)
    out = layer(x)
    kernel = layer.v * (layer.g / layer.v.norm(dim=0))
    torch.testing.assert_close(out, x @ kernel)
    dense = layers.Dense(2, activation="relu")
    out = dense(x)
    torch.testing.assert_close(out, torch.relu(x @ dense.kernel + dense.bias))
