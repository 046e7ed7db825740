"""rnnkit.ops against keras.ops (torch backend): every op on several shapes and dtypes, with
broadcasting, negative axes and keepdims; dtypes must match too. Then bad input, gradients,
and a custom cell written with ops trained by fit.

Where Keras' torch backend departs from Keras' own documented (numpy) semantics, the docs
win and the test says so (``dot`` of two inputs of rank >= 3).
"""

import keras
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers, ops

kops = keras.ops
RNG = np.random.default_rng(0)


def _array(shape, dtype, low=-3.0, high=3.0):
    if dtype == "bool":
        return RNG.random(shape) > 0.5
    if dtype.startswith("int"):
        return RNG.integers(int(low), int(high) + 1, size=shape).astype(dtype)
    return RNG.uniform(low, high, size=shape).astype(dtype)


def _compare(ours, theirs, name):
    if isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)), name
        assert len(ours) == len(theirs), name
        for a, b in zip(ours, theirs):
            _compare(a, b, name)
        return
    if not isinstance(theirs, torch.Tensor):  # shape(), python scalars
        assert ours == theirs, name
        return
    assert isinstance(ours, torch.Tensor), f"{name}: returned {type(ours).__name__}"
    assert ours.dtype == theirs.dtype, f"{name}: dtype {ours.dtype}, keras {theirs.dtype}"
    assert tuple(ours.shape) == tuple(theirs.shape), f"{name}: shape {ours.shape} vs {theirs.shape}"
    a, b = ours.detach().cpu(), theirs.detach().cpu()
    if a.dtype == torch.bfloat16:
        a, b = a.float(), b.float()
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-6, atol=2e-6, err_msg=name)


def check(name, *args, **kwargs):
    """Run ``ops.<name>`` and ``keras.ops.<name>`` on the same arguments and compare."""
    ours = getattr(ops, name)(*args, **kwargs)
    theirs = getattr(kops, name)(*args, **kwargs)
    _compare(ours, theirs, name)
    return ours


# ------------------------------------------------------------------ elementwise, unary
UNARY = {
    "abs": ["float32", "int32", "int64"],
    "negative": ["float32", "int32"],
    "sign": ["float32", "int32"],
    "square": ["float32", "int32", "bool"],
    "exp": ["float32", "int32", "float64"],
    "expm1": ["float32", "int32"],
    "sin": ["float32", "int32"],
    "cos": ["float32"],
    "tanh": ["float32", "int32"],
    "floor": ["float32"],
    "ceil": ["float32"],
    "round": ["float32"],
    "isnan": ["float32"],
    "isinf": ["float32"],
    "isfinite": ["float32"],
    "logical_not": ["float32", "int32", "bool"],
    "sigmoid": ["float32", "int32", "float64"],
    "relu": ["float32", "int32"],
    "relu6": ["float32"],
    "gelu": ["float32"],
    "softplus": ["float32"],
    "softsign": ["float32"],
    "silu": ["float32"],
    "swish": ["float32"],
    "elu": ["float32"],
    "selu": ["float32"],
    "leaky_relu": ["float32"],
    "hard_sigmoid": ["float32"],
    "hard_silu": ["float32"],
    "log_sigmoid": ["float32"],
    "erf": ["float32"],
    "ravel": ["float32", "int32"],
}
POSITIVE = {
    "log": ["float32", "int32"],
    "log1p": ["float32"],
    "log2": ["float32"],
    "log10": ["float32"],
    "sqrt": ["float32", "int32", "int64"],
    "rsqrt": ["float32"],
    "reciprocal": ["float32"],
}
SHAPES = [(), (5,), (2, 3), (2, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(
    ("name", "dtype"), [(n, d) for n, ds in UNARY.items() for d in ds]
)
def test_unary(name, dtype, shape):
    check(name, _array(shape, dtype))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(
    ("name", "dtype"), [(n, d) for n, ds in POSITIVE.items() for d in ds]
)
def test_unary_positive(name, dtype, shape):
    check(name, _array(shape, dtype, low=1, high=9))


def test_unary_keyword_arguments():
    x = _array((3, 4), "float32")
    check("gelu", x, approximate=False)
    check("leaky_relu", x, negative_slope=0.1)
    check("elu", x, alpha=0.5)
    check("round", x, decimals=1)


# ------------------------------------------------------------------ elementwise, binary
BINARY = [
    "add", "subtract", "multiply", "divide", "true_divide", "power", "maximum", "minimum",
    "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
    "logical_and", "logical_or", "logical_xor", "floor_divide", "mod",
]  # fmt: skip
BROADCAST = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((4,), ())]
DTYPE_PAIRS = [
    ("float32", "float32"),
    ("int32", "int32"),
    ("int32", "float32"),
    ("int64", "float32"),
    ("int8", "uint8"),
    ("float64", "float32"),
    ("int32", "int64"),
    ("bool", "int32"),
]


def _binary_inputs(name, shapes, dtypes):
    a = _array(shapes[0], dtypes[0], low=1 if name == "power" else -3)
    b = _array(shapes[1], dtypes[1], low=1, high=3)  # nonzero: divide, floor_divide, mod
    if name == "power" and dtypes[1].startswith("int"):
        b = np.abs(b)
    return a, b


@pytest.mark.parametrize("dtypes", DTYPE_PAIRS)
@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary(name, shapes, dtypes):
    if "bool" in dtypes and name in ("subtract", "power", "floor_divide", "mod", "divide", "true_divide"):
        pytest.skip("Keras' torch backend itself fails on bool for this op")
    check(name, *_binary_inputs(name, shapes, dtypes))


@pytest.mark.parametrize("scalar", [2, 1.5, True], ids=["int", "float", "bool"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "int8", "bool"])
@pytest.mark.parametrize("name", ["add", "multiply", "maximum", "minimum", "greater", "divide"])
def test_binary_with_python_scalar(name, dtype, scalar):
    """Python scalars are weak: they do not widen a tensor's dtype."""
    if dtype == "bool" and isinstance(scalar, bool) and name in ("divide",):
        pytest.skip("Keras' torch backend fails on bool / bool")
    x = _array((2, 3), dtype, low=1)
    check(name, x, scalar)
    check(name, scalar, x)


def test_binary_tensor_inputs_keep_the_graph():
    a = torch.randn(2, 3, requires_grad=True)
    out = ops.add(a, np.ones(3, dtype="float32"))
    assert out.requires_grad
    _compare(out, kops.add(a, np.ones(3, dtype="float32")), "add")


# ------------------------------------------------------------------ reductions
REDUCTIONS = {
    "sum": ["float32", "int32", "bool", "int8"],
    "mean": ["float32", "int32", "bool"],
    "max": ["float32", "int32"],
    "min": ["float32", "int32"],
    "prod": ["float32", "int32"],
    "std": ["float32", "int32"],
    "var": ["float32", "int32"],
    "any": ["float32", "bool"],
    "all": ["float32", "bool"],
    "logsumexp": ["float32"],
}
AXES = [None, 0, -1, 1, (0, -1), (-2,)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize(
    ("name", "dtype"), [(n, d) for n, ds in REDUCTIONS.items() for d in ds]
)
def test_reduction(name, dtype, axis, keepdims):
    x = _array((2, 3, 4), dtype)
    if axis is None and keepdims and name in ("sum", "max", "min", "prod"):
        # Keras' torch backend drops keepdims when axis=None (its numpy, jax and tf
        # backends and its docs keep the axes): same values, numpy's shape.
        ours = getattr(ops, name)(x, axis=None, keepdims=True)
        theirs = getattr(kops, name)(x, axis=None, keepdims=False)
        assert tuple(ours.shape) == (1, 1, 1)
        _compare(ours.reshape(()), theirs, name)
        return
    check(name, x, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, 1])
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name, dtype, axis, keepdims):
    check(name, _array((3, 4), dtype), axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("axis", [None, 0, -1])
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_cumulative(name, dtype, axis):
    check(name, _array((3, 4), dtype), axis=axis)


def test_max_min_initial():
    x = _array((2, 3), "float32")
    check("max", x, axis=1, initial=2.0)
    check("min", x, initial=-1.0)


@pytest.mark.parametrize(
    ("ord", "axis"),
    [(None, None), (None, -1), (1, 0), (np.inf, -1), ("fro", (0, 1)), (2, (-2, -1)), (1, (0, 1))],
    ids=str,
)
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm(ord, axis, keepdims):
    check("norm", _array((3, 4), "float32"), ord=ord, axis=axis, keepdims=keepdims)
