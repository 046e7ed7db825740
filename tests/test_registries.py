"""Registries (activations, initializers, regularizers, constraints) against Keras 3, and tree."""

import collections
import math

import keras
import numpy as np
import pytest
import torch

from rnnkit import activations, constraints, initializers, regularizers, tree

RNG = np.random.default_rng(0)
X = (RNG.standard_normal((4, 7)) * 3).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --------------------------------------------------------------------------- activations
ACTIVATIONS = [
    "linear",
    "tanh",
    "sigmoid",
    "hard_sigmoid",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "swish",
    "silu",
    "softplus",
    "softsign",
    "exponential",
    "softmax",
    "log_softmax",
    "mish",
]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_keras(name):
    ours = activations.get(name)(torch.as_tensor(X)).numpy()
    theirs = _np(keras.activations.get(name)(X))
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)


def test_hard_sigmoid_is_keras3_relu6_definition():
    x = torch.tensor([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0])
    expected = torch.clamp(x + 3.0, 0.0, 6.0) / 6.0
    torch.testing.assert_close(activations.hard_sigmoid(x), expected)
    assert activations.hard_sigmoid(torch.tensor(1.5)).item() == pytest.approx(0.75)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"negative_slope": 0.1},
        {"max_value": 2.0},
        {"max_value": 6.0},
        {"threshold": 1.0},
        {"negative_slope": 0.1, "threshold": 0.5, "max_value": 3.0},
        {"threshold": -1.0, "max_value": 3.0},
        {"negative_slope": 0.2, "threshold": -1.0, "max_value": 3.0},
    ],
)
def test_relu_options_match_keras(kwargs):
    ours = activations.relu(torch.as_tensor(X), **kwargs).numpy()
    theirs = _np(keras.activations.relu(X, **kwargs))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "kwargs"), [("elu", {"alpha": 0.5}), ("gelu", {"approximate": True})]
)
def test_activation_options_match_keras(name, kwargs):
    ours = getattr(activations, name)(torch.as_tensor(X), **kwargs).numpy()
    theirs = _np(getattr(keras.activations, name)(X, **kwargs))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_activation_get_and_serialize():
    assert activations.get(None) is activations.linear
    assert activations.get("tanh") is activations.tanh
    assert activations.get(torch.sin) is torch.sin
    assert activations.serialize(activations.get("relu")) == "relu"
    assert activations.get(activations.serialize(activations.swish)) is activations.swish


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match=r"activation: unknown activation 'tanhh'.*sigmoid.*tanh"):
        activations.get("tanhh")
    with pytest.raises(TypeError, match="activation"):
        activations.get(3)


# -------------------------------------------------------------------------- initializers
INITIALIZER_CLASSES = {
    "zeros": initializers.Zeros,
    "ones": initializers.Ones,
    "constant": initializers.Constant,
    "uniform": initializers.RandomUniform,
    "random_uniform": initializers.RandomUniform,
    "random_normal": initializers.RandomNormal,
    "truncated_normal": initializers.TruncatedNormal,
    "glorot_uniform": initializers.GlorotUniform,
    "glorot_normal": initializers.GlorotNormal,
    "he_uniform": initializers.HeUniform,
    "he_normal": initializers.HeNormal,
    "lecun_uniform": initializers.LecunUniform,
    "lecun_normal": initializers.LecunNormal,
    "orthogonal": initializers.Orthogonal,
    "identity": initializers.Identity,
}


@pytest.mark.parametrize(("name", "cls"), INITIALIZER_CLASSES.items())
def test_initializer_by_name_and_class(name, cls):
    init = initializers.get(name)
    assert type(init) is cls
    assert type(initializers.get(cls.__name__)) is cls
    value = init((6, 4), dtype="float64")
    assert tuple(value.shape) == (6, 4) and value.dtype == torch.float64
    # Config round trip through serialize/get gives the same class and config.
    again = initializers.get(initializers.serialize(init))
    assert type(again) is cls and again.get_config() == init.get_config()


@pytest.mark.parametrize(
    "name",
    [
        "random_uniform",
        "random_normal",
        "truncated_normal",
        "glorot_uniform",
        "glorot_normal",
        "he_uniform",
        "he_normal",
        "lecun_uniform",
        "lecun_normal",
        "orthogonal",
    ],
)
def test_seeded_initializers_are_deterministic(name):
    cls = INITIALIZER_CLASSES[name]
    a = cls(seed=3)((5, 6))
    b = cls(seed=3)((5, 6))
    c = cls(seed=4)((5, 6))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    # Like Keras 3, a seeded initializer gives the same values on every call.
    init = cls(seed=3)
    torch.testing.assert_close(init((5, 6)), init((5, 6)))
    # Unseeded ones follow torch's global generator.
    torch.manual_seed(1)
    d = cls()((5, 6))
    torch.manual_seed(1)
    torch.testing.assert_close(d, cls()((5, 6)))


def test_glorot_uniform_limit_and_spread():
    fan_in, fan_out = 300, 200
    w = initializers.GlorotUniform(seed=0)((fan_in, fan_out))
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    assert w.abs().max().item() <= limit
    assert w.abs().max().item() > 0.99 * limit
    assert w.std().item() == pytest.approx(limit / math.sqrt(3.0), rel=0.02)


@pytest.mark.parametrize(
    ("cls", "variance"),
    [
        (initializers.GlorotNormal, 2.0 / (300 + 200)),
        (initializers.HeNormal, 2.0 / 300),
        (initializers.HeUniform, 2.0 / 300),
        (initializers.LecunNormal, 1.0 / 300),
        (initializers.LecunUniform, 1.0 / 300),
    ],
)
def test_variance_scaling_statistics(cls, variance):
    w = cls(seed=0)((300, 200))
    assert w.mean().item() == pytest.approx(0.0, abs=0.01 * math.sqrt(variance) * 10)
    assert w.var().item() == pytest.approx(variance, rel=0.03)


def test_truncated_normals_stay_within_two_stddev():
    w = initializers.TruncatedNormal(mean=1.0, stddev=0.5, seed=0)((100, 100))
    assert w.min().item() >= 0.0 and w.max().item() <= 2.0
    w = initializers.HeNormal(seed=0)((100, 100))
    stddev = math.sqrt(2.0 / 100) / 0.87962566103423978
    assert w.abs().max().item() <= 2 * stddev + 1e-6


def test_variance_scaling_fans_for_kernels_of_rank_3():
    assert initializers.compute_fans((3, 4, 5)) == (12.0, 15.0)
    assert initializers.compute_fans((7,)) == (7.0, 7.0)
    assert initializers.compute_fans(()) == (1.0, 1.0)
    assert initializers.compute_fans((3, 4, 5), input_axes=[0], output_axes=[1, 2]) == (3.0, 20.0)


def test_variance_scaling_axes_match_keras():
    ours = initializers.GlorotUniform(seed=0, input_axes=[0], output_axes=[1, 2])
    theirs = keras.initializers.GlorotUniform(seed=0, input_axes=[0], output_axes=[1, 2])
    assert ours.get_config() == {k: v for k, v in theirs.get_config().items()}
    w = ours((40, 30, 20))
    limit = math.sqrt(6.0 / (40 + 600))
    assert limit * 0.98 < w.abs().max().item() <= limit


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5), (2, 3, 4)])
def test_orthogonal_gives_orthonormal_columns_or_rows(shape):
    w = initializers.Orthogonal(gain=1.0, seed=0)(shape, dtype="float64")
    flat = w.reshape(-1, shape[-1])
    rows, cols = flat.shape
    gram = flat.T @ flat if rows >= cols else flat @ flat.T
    torch.testing.assert_close(gram, torch.eye(min(rows, cols), dtype=torch.float64))
    w2 = initializers.Orthogonal(gain=2.0, seed=0)(shape, dtype="float64")
    torch.testing.assert_close(w2, 2.0 * w)
    with pytest.raises(ValueError, match="rank >= 2"):
        initializers.Orthogonal()((4,))


def test_constant_zeros_ones_identity():
    torch.testing.assert_close(initializers.get("zeros")((2, 3)), torch.zeros(2, 3))
    torch.testing.assert_close(initializers.get("ones")((2, 3)), torch.ones(2, 3))
    torch.testing.assert_close(initializers.Constant(2.5)((2,)), torch.full((2,), 2.5))
    init = initializers.get({"class_name": "Constant", "config": {"value": -1.0}})
    torch.testing.assert_close(init((3,)), -torch.ones(3))
    torch.testing.assert_close(initializers.Identity(gain=3.0)((2, 3)), 3.0 * torch.eye(2, 3))


def test_uniform_default_range_matches_keras():
    ours = initializers.get("uniform")
    theirs = keras.initializers.get("uniform")
    assert (ours.minval, ours.maxval) == (theirs.minval, theirs.maxval) == (-0.05, 0.05)
    w = ours((100, 100))
    assert w.min().item() >= -0.05 and w.max().item() < 0.05


def test_initializer_configs_match_keras():
    for name in ("GlorotUniform", "Orthogonal", "RandomNormal", "RandomUniform", "Constant"):
        ours = initializers.get(name).get_config()
        theirs = getattr(keras.initializers, name)().get_config()
        # Newer Keras versions add keys (e.g. input_axes); every key of ours must match.
        assert set(ours) <= set(theirs), name
        assert {k: v for k, v in ours.items() if k != "seed"} == {
            k: theirs[k] for k in ours if k != "seed"
        }


def test_unknown_initializer_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown initializer 'glorot'.*glorot_uniform"):
        initializers.get("glorot")
    with pytest.raises(ValueError, match="kernel_initializer"):
        initializers.get("nope", argument="kernel_initializer")


def test_initializer_dtypes():
    assert initializers.get("ones")((2,), dtype=np.float64).dtype == torch.float64
    assert initializers.get("ones")((2,), dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ValueError, match="dtype: unknown dtype 'nope'"):
        initializers.get("ones")((2,), dtype="nope")


def test_variance_scaling_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_max")
    with pytest.raises(ValueError, match="scale"):
        initializers.VarianceScaling(scale=0.0)


# -------------------------------------------------------------- regularizers, constraints
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (regularizers.get("l1"), keras.regularizers.get("l1")),
        (regularizers.get("l2"), keras.regularizers.get("l2")),
        (regularizers.get("l1_l2"), keras.regularizers.l1_l2()),
        (regularizers.L1L2(l1=0.3, l2=0.2), keras.regularizers.L1L2(l1=0.3, l2=0.2)),
        (regularizers.L2(0.5), keras.regularizers.L2(0.5)),
    ],
)
def test_regularizers_match_keras(ours, theirs):
    value = ours(torch.as_tensor(X)).item()
    assert value == pytest.approx(float(_np(theirs(X))), rel=1e-5)
    assert ours.get_config() == pytest.approx(theirs.get_config())


def test_regularizer_hand_values_and_errors():
    w = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    assert regularizers.L1(0.1)(w).item() == pytest.approx(0.6)
    assert regularizers.L2(0.1)(w).item() == pytest.approx(1.4)
    assert regularizers.get(None) is None
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        regularizers.L2(-1.0)
    with pytest.raises(ValueError, match=r"unknown regularizer 'l3'.*l1, l1_l2, l2"):
        regularizers.get("l3")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (constraints.get("max_norm"), keras.constraints.get("max_norm")),
        (constraints.MaxNorm(1.5, axis=1), keras.constraints.MaxNorm(1.5, axis=1)),
        (constraints.get("non_neg"), keras.constraints.get("non_neg")),
        (constraints.get("unit_norm"), keras.constraints.get("unit_norm")),
        (constraints.UnitNorm(axis=1), keras.constraints.UnitNorm(axis=1)),
        (constraints.get("min_max_norm"), keras.constraints.get("min_max_norm")),
        (
            constraints.MinMaxNorm(0.5, 2.0, rate=0.5, axis=1),
            keras.constraints.MinMaxNorm(0.5, 2.0, rate=0.5, axis=1),
        ),
    ],
)
def test_constraints_match_keras(ours, theirs):
    np.testing.assert_allclose(
        ours(torch.as_tensor(X)).numpy(), _np(theirs(X)), atol=1e-6, rtol=1e-5
    )
    assert ours.get_config() == theirs.get_config()


def test_unknown_constraint_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown constraint 'maxnorm'.*max_norm.*non_neg"):
        constraints.get("maxnorm")
    assert constraints.get(None) is None


# ------------------------------------------------------------------------------------ tree
Point = collections.namedtuple("Point", ["x", "y"])


def test_tree_flatten_orders_leaves():
    structure = {"b": [1, (2, 3)], "a": Point(4, None)}
    assert tree.flatten(structure) == [4, None, 1, 2, 3]
    assert tree.flatten(5) == [5]
    t = torch.ones(2)
    assert tree.flatten([t, (t,)])[1] is t


def test_tree_map_structure_keeps_containers():
    structure = {"a": [1, 2], "b": (3, Point(4, 5))}
    out = tree.map_structure(lambda v: v * 10, structure)
    assert out == {"a": [10, 20], "b": (30, Point(40, 50))}
    assert isinstance(out["b"][1], Point) and isinstance(out["a"], list)
    summed = tree.map_structure(lambda u, v: u + v, [1, (2, 3)], [10, (20, 30)])
    assert summed == [11, (22, 33)]
    assert tree.map_structure(lambda v: v, [None, 1]) == [None, 1]


def test_tree_pack_sequence_as_round_trips():
    structure = [Point(1, 2), {"k": (3,), "j": 4}]
    flat = tree.flatten(structure)
    packed = tree.pack_sequence_as(structure, [v * 2 for v in flat])
    assert packed == [Point(2, 4), {"k": (6,), "j": 8}]
    assert isinstance(packed[0], Point)
    with pytest.raises(ValueError, match="4 leaves.*3"):
        tree.pack_sequence_as(structure, [1, 2, 3])


def test_tree_is_nested():
    for nested in ([], (), {}, [1], (1, 2), {"a": 1}, Point(1, 2)):
        assert tree.is_nested(nested)
    for leaf in (1, None, "ab", torch.ones(2), np.ones(2)):
        assert not tree.is_nested(leaf)


def test_tree_assert_same_structure_and_shapes():
    tree.assert_same_structure([1, (2, 3)], [4, (5, 6)])
    with pytest.raises(ValueError, match="structures differ"):
        tree.assert_same_structure([1, (2, 3)], [4, [5, 6]])
    shapes = tree.map_shape_structure(lambda s: len(s), [(2, 3), [(4,), (None, 5)]])
    assert shapes == [2, [1, 2]]
