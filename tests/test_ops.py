"""rnnkit.ops against keras.ops (torch backend): every op on several shapes and dtypes, with
broadcasting, negative axes and keepdims; dtypes must match too. Then bad input, gradients,
and a custom cell written with ops trained by fit.

Where Keras' torch backend departs from Keras' own documented (numpy) semantics, the docs
win and the test says so (``dot`` of two inputs of rank >= 3).
"""

import warnings

import keras
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import ops

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
    with warnings.catch_warnings():  # Keras' own warnings (x.T on 3-D) are not ours
        warnings.simplefilter("ignore")
        theirs = getattr(kops, name)(*args, **kwargs)
    _compare(ours, theirs, name)
    return ours


# ------------------------------------------------------------------ elementwise, unary
UNARY = {
    "abs": ["float32", "int32", "int64"],
    "absolute": ["float32", "int32"],
    "hard_swish": ["float32"],
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
@pytest.mark.parametrize(("name", "dtype"), [(n, d) for n, ds in UNARY.items() for d in ds])
def test_unary(name, dtype, shape):
    check(name, _array(shape, dtype))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("name", "dtype"), [(n, d) for n, ds in POSITIVE.items() for d in ds])
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


# Keras' torch backend itself fails on these with bool operands: not compared.
NOT_FOR_BOOL = ("subtract", "power", "floor_divide", "mod", "divide", "true_divide")


@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize(
    ("name", "dtypes"),
    [(n, d) for n in BINARY for d in DTYPE_PAIRS if not ("bool" in d and n in NOT_FOR_BOOL)],
)
def test_binary(name, dtypes, shapes):
    check(name, *_binary_inputs(name, shapes, dtypes))


SCALAR_OPS = ["add", "multiply", "maximum", "minimum", "greater", "divide", "floor_divide"]


@pytest.mark.parametrize("scalar", [2, 1.5, True], ids=["int", "float", "bool"])
@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        (n, d)
        for n in SCALAR_OPS
        for d in ["float32", "float16", "int32", "int8", "bool"]
        if not (d == "bool" and n in NOT_FOR_BOOL)
    ],
)
def test_binary_with_python_scalar(name, dtype, scalar):
    """Python scalars are weak: they do not widen a tensor's dtype."""
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
    "sum": ["float32", "int32", "bool", "int8", "int64", "float64"],
    "mean": ["float32", "int32", "bool", "float64"],
    "max": ["float32", "int32"],
    "min": ["float32", "int32"],
    "prod": ["float32", "int32", "int64", "float64"],
    "std": ["float32", "int32", "float64"],
    "var": ["float32", "int32", "float64"],
    "any": ["float32", "bool"],
    "amax": ["float32", "int32"],
    "amin": ["float32", "int32"],
    "all": ["float32", "bool"],
    "logsumexp": ["float32"],
}
AXES = [None, 0, -1, 1, (0, -1), (-2,)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize(("name", "dtype"), [(n, d) for n, ds in REDUCTIONS.items() for d in ds])
def test_reduction(name, dtype, axis, keepdims):
    x = _array((2, 3, 4), dtype)
    if axis is None and keepdims and name in ("sum", "max", "min", "amax", "amin", "prod"):
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
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool", "int64", "float64"])
@pytest.mark.parametrize("name", ["cumsum", "cumprod", "count_nonzero"])
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
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_norm(ord, axis, keepdims, dtype):
    check("norm", _array((3, 4), dtype), ord=ord, axis=axis, keepdims=keepdims)


# ------------------------------------------------------------------ shapes and joins
X234 = _array((2, 3, 4), "float32")
I234 = _array((2, 3, 4), "int32")

SHAPE_CASES = [
    ("reshape", (X234, (4, 6)), {}),
    ("reshape", (I234, (-1, 4)), {}),
    ("reshape", (X234, -1), {}),
    ("transpose", (X234,), {}),
    ("transpose", (X234, (1, 0, 2)), {}),
    ("transpose", (I234, (-1, 0, -2)), {}),
    ("expand_dims", (X234, 0), {}),
    ("expand_dims", (X234, -1), {}),
    ("expand_dims", (I234, 2), {}),
    ("expand_dims", (X234, (0, 4)), {}),
    ("squeeze", (_array((1, 3, 1), "float32"),), {}),
    ("squeeze", (_array((1, 3, 1), "float32"),), {"axis": -1}),
    ("squeeze", (_array((1, 3, 1), "int32"),), {"axis": 0}),
    ("swapaxes", (X234, 0, -1), {}),
    ("moveaxis", (X234, 0, -1), {}),
    ("moveaxis", (X234, (0, 1), (-1, -2)), {}),
    ("broadcast_to", (_array((3, 1), "float32"), (2, 3, 4)), {}),
    ("ravel", (X234,), {}),
    ("flip", (X234,), {}),
    ("flip", (X234,), {"axis": -1}),
    ("flip", (I234,), {"axis": (0, 2)}),
    ("roll", (X234, 2), {}),
    ("roll", (X234, -1), {"axis": 1}),
    ("tile", (X234, 2), {}),
    ("tile", (I234, (2, 1, 3)), {}),
    ("tile", (_array((3,), "float32"), (2, 2)), {}),
    ("repeat", (X234, 2), {}),
    ("repeat", (X234, 3), {"axis": -1}),
    ("repeat", (I234, np.array([1, 0, 2])), {"axis": 1}),
    ("tril", (X234,), {}),
    ("triu", (_array((4, 4), "float32"),), {"k": 1}),
    ("concatenate", ([X234, X234],), {}),
    ("concatenate", ([X234, _array((2, 3, 1), "float32")],), {"axis": -1}),
    ("concatenate", ([I234, X234],), {"axis": 1}),
    ("stack", ([X234, X234],), {}),
    ("stack", ([I234, I234, I234],), {"axis": -1}),
    ("stack", ([X234, I234],), {"axis": 1}),
    ("split", (X234, 2), {}),
    ("split", (X234, 4), {"axis": -1}),
    ("split", (I234, [1, 2]), {"axis": 1}),
    ("split", (_array((7,), "float32"), [2, 5]), {}),
    ("pad", (X234, ((0, 1), (2, 0), (1, 1))), {}),
    ("pad", (I234, ((1, 1), (0, 0), (2, 3))), {"constant_values": 7}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), SHAPE_CASES, ids=lambda v: "")
def test_shape_ops(name, args, kwargs):
    check(name, *args, **kwargs)


# ------------------------------------------------------------------ creation
CREATION_CASES = [
    ("zeros", ((2, 3),), {}),
    ("zeros", (3,), {"dtype": "int32"}),
    ("ones", ((2, 3),), {"dtype": "bool"}),
    ("ones", ((0, 2),), {}),
    ("full", ((2, 3), 7), {}),
    ("full", ((2, 3), 1.5), {"dtype": "float64"}),
    ("full", ((2,), 4), {"dtype": "int32"}),
    ("zeros_like", (I234,), {}),
    ("zeros_like", (X234,), {"dtype": "int32"}),
    ("ones_like", (X234,), {}),
    ("full_like", (I234, 3), {}),
    ("full_like", (X234, 2), {"dtype": "float16"}),
    ("arange", (5,), {}),
    ("arange", (1, 7, 2), {}),
    ("arange", (0.0, 1.0, 0.25), {}),
    ("arange", (5,), {"dtype": "float32"}),
    ("arange", (6, 0, -2), {}),
    ("eye", (3,), {}),
    ("eye", (3, 4), {}),
    ("eye", (4, 3), {"k": -1}),
    ("eye", (3,), {"k": 1, "dtype": "int32"}),
    ("identity", (3,), {}),
    ("linspace", (0.0, 1.0, 5), {}),
    ("linspace", (0, 2, 4), {"endpoint": False}),
    ("linspace", (1.0, -1.0, 7), {"retstep": True}),
    ("linspace", (0.0, 1.0, 1), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), CREATION_CASES, ids=lambda v: "")
def test_creation_ops(name, args, kwargs):
    check(name, *args, **kwargs)


# ------------------------------------------------------------------ indexing
INDEX_CASES = [
    ("take", (X234, np.array([2, 0])), {"axis": 1}),
    ("take", (X234, np.array([[0, 1], [1, 1]])), {"axis": 0}),
    ("take", (X234, np.array([3, -1])), {"axis": -1}),
    ("take", (X234, np.array([5, 0, 23])), {}),
    ("take", (_array((5, 3), "float32"), np.array([4, 1, -2])), {"axis": 0}),  # embedding path
    ("take_along_axis", (X234, np.argsort(X234, axis=-1)), {"axis": -1}),
    ("take_along_axis", (X234, np.zeros((1, 3, 4), "int64")), {"axis": 0}),
    ("take_along_axis", (I234, np.array([[[0], [2], [1]], [[3], [3], [-1]]])), {"axis": 2}),
    ("where", (X234 > 0, X234, -X234), {}),
    ("where", (X234 > 0, I234, 0.5), {}),
    ("where", (X234 > 0, 1, 0), {}),
    ("where", (_array((3, 1), "bool"), _array((4,), "float32"), _array((3, 4), "float32")), {}),
    ("slice", (X234, (0, 1, 1), (2, 2, 3)), {}),
    ("slice", (I234, [1, 0, 0], [1, 3, 4]), {}),
    ("slice_update", (X234, (0, 1, 0), _array((1, 2, 4), "float32")), {}),
    ("top_k", (X234, 2), {}),
    ("top_k", (I234, 4), {}),
    ("top_k", (_array((6,), "float32"), 3), {"sorted": True}),
    ("sort", (X234,), {}),
    ("sort", (I234,), {"axis": 0}),
    ("argsort", (_array((3, 5), "float32"),), {"axis": -1}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), INDEX_CASES, ids=lambda v: "")
def test_indexing_ops(name, args, kwargs):
    check(name, *args, **kwargs)


@pytest.mark.parametrize(
    ("pad_width", "kwargs"),
    [
        (1, {}),
        ((1, 2), {"constant_values": 3.0}),
        (((1, 1), (2, 2), (0, 3)), {"mode": "reflect"}),
        (((1, 1), (2, 2), (0, 3)), {"mode": "symmetric"}),
        (((0, 1), (0, 2), (3, 0)), {"mode": "edge"}),
        (((0, 0), (4, 2), (0, 0)), {"mode": "wrap"}),
        (((0, 0), (5, 7), (0, 0)), {"mode": "reflect"}),
        (((0, 0), (5, 7), (0, 0)), {"mode": "symmetric"}),
    ],
    ids=str,
)
def test_pad_follows_numpy(pad_width, kwargs):
    """``pad`` against ``np.pad``: Keras' torch backend pads only the last axis for an int or
    a single pair (its docs say every axis) and lacks the copying modes; numpy wins."""
    ours = ops.pad(I234, pad_width, **kwargs)
    np.testing.assert_array_equal(ours.numpy(), np.pad(I234, pad_width, **kwargs))
    assert ours.dtype == torch.int32


def test_counts_may_be_numpy_ints_or_0d_tensors():
    """Keras' torch backend fails on these; rnnkit reads them as the ints they hold."""
    for sections in (np.int64(3), torch.tensor(3)):
        parts = ops.split(np.arange(6), sections)
        assert [p.tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    assert ops.tile(np.arange(2), torch.tensor(2)).tolist() == [0, 1, 0, 1]
    assert ops.tile(np.arange(2), np.array([2, 1])).shape == (2, 2)
    x = np.arange(7)
    for points in ([-3, 9], [5, 2], [0, 7]):  # numpy's split; Keras' torch backend fails
        ours = ops.split(x, points)
        assert [p.tolist() for p in ours] == [p.tolist() for p in np.split(x, points)]


def test_concatenate_with_axis_none_flattens():
    """numpy's meaning (Keras' docs); Keras' torch backend fails on axis=None."""
    ours = ops.concatenate([X234, I234], axis=None)
    np.testing.assert_allclose(ours.numpy(), np.concatenate([X234, I234], axis=None))
    assert ours.dtype == torch.float32


def test_where_with_condition_only_lists_the_true_indices():
    cond = np.array([[True, False], [False, True]])
    # Keras' torch backend stacks them into one (ndim, count) tensor, numpy (and Keras'
    # docs: "indices") give one tensor per axis; rnnkit gives numpy's.
    ours = ops.where(cond)
    theirs = kops.where(cond)
    assert len(ours) == 2
    _compare(torch.stack(ours), theirs, "where")


# ------------------------------------------------------------------ products
PRODUCT_CASES = [
    ("matmul", (_array((3, 4), "float32"), _array((4, 2), "float32")), {}),
    ("matmul", (_array((2, 3, 4), "float32"), _array((4, 5), "float32")), {}),
    ("matmul", (_array((2, 1, 3, 4), "float32"), _array((5, 4, 2), "float32")), {}),
    ("matmul", (_array((4,), "float32"), _array((4, 3), "float32")), {}),
    ("matmul", (_array((3, 4), "float32"), _array((4,), "float32")), {}),
    ("matmul", (_array((3, 4), "int32"), _array((4, 2), "int32")), {}),
    ("matmul", (_array((3, 4), "int8"), _array((4, 2), "int8")), {}),
    ("matmul", (_array((3, 4), "int32"), _array((4, 2), "float32")), {}),
    ("dot", (_array((4,), "float32"), _array((4,), "float32")), {}),
    ("dot", (_array((3, 4), "float32"), _array((4, 2), "float32")), {}),
    ("dot", (_array((2, 3, 4), "float32"), _array((4,), "float32")), {}),
    ("dot", (_array((2, 3, 4), "float32"), _array((4, 5), "float32")), {}),
    ("dot", (_array((3, 4), "int32"), _array((4,), "int32")), {}),
    ("dot", (_array((3, 4), "float32"), 2.0), {}),
    ("tensordot", (_array((2, 3, 4), "float32"), _array((3, 4, 5), "float32")), {}),
    ("tensordot", (_array((2, 3), "float32"), _array((3, 2), "float32")), {"axes": 1}),
    ("tensordot", (X234, _array((4, 3), "float32")), {"axes": ([1, 2], [1, 0])}),
    ("outer", (_array((3,), "float32"), _array((2, 2), "float32")), {}),
    ("einsum", ("bij,bjk->bik", X234, _array((2, 4, 5), "float32")), {}),
    ("einsum", ("ij->ji", _array((2, 3), "int32")), {}),
    ("einsum", ("i,i->", _array((4,), "int8"), _array((4,), "int8")), {}),
    ("einsum", ("btd,d->bt", X234, _array((4,), "float32")), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), PRODUCT_CASES, ids=lambda v: "")
def test_product_ops(name, args, kwargs):
    check(name, *args, **kwargs)


def test_dot_of_two_rank_3_inputs_follows_numpy():
    """Keras documents numpy's ``dot`` (sum over the last axis of x1 and the second-to-last
    of x2); its torch backend batches instead. The docs win."""
    a, b = _array((2, 3, 4), "float32"), _array((5, 4, 6), "float32")
    np.testing.assert_allclose(ops.dot(a, b).numpy(), np.dot(a, b), rtol=1e-5, atol=1e-5)
    assert tuple(ops.dot(a, b).shape) == (2, 3, 5, 6)


# ------------------------------------------------------------------ nn
NN_CASES = [
    ("softmax", (X234,), {}),
    ("softmax", (X234,), {"axis": 1}),
    ("softmax", (X234,), {"axis": -3}),
    ("softmax", (_array((2, 3), "float64"),), {}),
    ("log_softmax", (X234,), {}),
    ("log_softmax", (X234,), {"axis": 0}),
    ("one_hot", (np.array([0, 2, 1, 3]), 4), {}),
    ("one_hot", (np.array([[0, 2], [1, -1]]), 3), {}),
    ("one_hot", (np.array([[0, 2], [1, 1]]), 3), {"axis": 0}),
    ("one_hot", (np.array([[0, 2], [1, 1]]), 3), {"axis": 1, "dtype": "int32"}),
    ("multi_hot", (np.array([[0, 2], [1, 1]]), 4), {}),
    ("moments", (X234, (0, 1)), {}),
    ("moments", (X234, -1), {"keepdims": True}),
    ("normalize", (X234,), {}),
    ("normalize", (X234,), {"axis": 1, "order": 1}),
    ("categorical_crossentropy", (np.eye(4, dtype="float32")[[0, 2, 1]], _array((3, 4), "float32", 0.1, 1.0)), {}),
    ("categorical_crossentropy", (np.eye(4, dtype="float32")[[0, 2, 1]], _array((3, 4), "float32")), {"from_logits": True}),
    ("sparse_categorical_crossentropy", (np.array([0, 2, 1]), _array((3, 4), "float32", 0.1, 1.0)), {}),
    ("sparse_categorical_crossentropy", (np.array([[0, 2], [1, 3]]), _array((2, 2, 4), "float32")), {"from_logits": True}),
    ("binary_crossentropy", (_array((3, 4), "bool").astype("float32"), _array((3, 4), "float32", 0.05, 0.95)), {}),
    ("binary_crossentropy", (_array((3, 4), "bool").astype("float32"), _array((3, 4), "float32")), {"from_logits": True}),
    ("logsumexp", (X234,), {"axis": (0, -1), "keepdims": True}),
    ("clip", (X234, -1.0, 1.5), {}),
    ("clip", (I234, -1, 2), {}),
    ("clip", (I234, -1.5, 2.5), {}),
    ("clip", (_array((3,), "float16"), -1.0, 1.0), {}),
    ("clip", (_array((3,), "bool"), 0, 1), {}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "kwargs"), NN_CASES, ids=lambda v: "")
def test_nn_ops(name, args, kwargs):
    check(name, *args, **kwargs)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "softmax", "one_hot"])
def test_nn_namespace_is_the_top_level_op(name):
    assert getattr(ops.nn, name) is getattr(ops, name)


# ------------------------------------------------------------------ core
def test_core_ops():
    check("convert_to_tensor", [1.0, 2.0])
    check("convert_to_tensor", [1, 2])
    check("convert_to_tensor", [True, False])
    check("convert_to_tensor", 3)
    check("convert_to_tensor", 2.5)
    check("convert_to_tensor", np.ones((2,), "float64"))
    check("convert_to_tensor", np.ones((2,), "float64"), dtype="float32")
    check("convert_to_tensor", [[1, 2], [3, 4]], dtype="int64")
    check("cast", X234, "int32")
    check("cast", I234, "float16")
    check("cast", X234 > 0, "float32")
    check("shape", X234)
    check("shape", torch.zeros(0, 3))
    check("size", X234)
    check("ndim", X234)
    check("ndim", 3.0)
    check("stop_gradient", torch.from_numpy(X234))
    check("dtype", X234)
    for name in ("convert_to_numpy", "is_tensor"):
        for value in (torch.ones(2, requires_grad=True), np.ones(2)):
            ours, theirs = getattr(ops, name)(value), getattr(kops, name)(value)
            assert type(ours) is type(theirs)
            np.testing.assert_array_equal(ours, theirs)


def test_every_listed_op_exists_in_keras():
    """The names rnnkit exports are Keras' (none invented)."""
    from rnnkit.ops import core, math, nn, numpy_array, numpy_math

    names = [*core.__all__, *math.__all__, *nn.__all__, *numpy_array.__all__, *numpy_math.__all__]
    missing = [n for n in names if not hasattr(kops, n)]
    assert not missing


def test_signatures_are_keras():
    """Every op takes Keras' arguments, in Keras' order (rnnkit may add keyword-only ones)."""
    import inspect

    for name in dir(ops):
        fn = getattr(ops, name)
        if name.startswith("_") or inspect.ismodule(fn) or not callable(fn):
            continue
        ours = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind is not inspect.Parameter.KEYWORD_ONLY
        ]
        theirs = list(inspect.signature(getattr(kops, name)).parameters)
        theirs = [p for p in theirs if p != "kwargs"]
        assert ours == theirs, name


def test_every_op_is_compared_with_keras():
    """Each public op appears in at least one parity case above."""
    import inspect

    source = inspect.getsource(inspect.getmodule(test_every_op_is_compared_with_keras))
    names = [n for n in dir(ops) if not n.startswith("_") and callable(getattr(ops, n))]
    not_compared = [n for n in names if f'"{n}"' not in source]
    assert not not_compared, not_compared


# ------------------------------------------------------------------ bad input
BAD_INPUT = [
    ("sum", (X234,), {"axis": 3}, ValueError, r"sum: axis=3 is out of range for an input of rank 3"),
    ("mean", (X234,), {"axis": -4}, ValueError, r"mean: axis=-4 is out of range"),
    ("max", (X234,), {"axis": (0, 0)}, ValueError, r"max: axis has repeated axes"),
    ("argmax", (X234,), {"axis": 5}, ValueError, r"argmax: axis=5"),
    ("softmax", (X234,), {"axis": 3}, ValueError, r"softmax: axis=3"),
    ("expand_dims", (X234, 4), {}, ValueError, r"expand_dims: axis=4"),
    ("squeeze", (X234,), {"axis": 1}, ValueError, r"squeeze: axis 1 has size 3"),
    ("transpose", (X234, (0, 1)), {}, ValueError, r"transpose: axes must list each of the 3"),
    ("reshape", (X234, (5, 5)), {}, ValueError, r"reshape: cannot reshape .*\(2, 3, 4\)"),
    ("reshape", (X234, (-1, -1)), {}, ValueError, r"reshape: newshape may hold one -1"),
    ("concatenate", ([X234, _array((2, 3), "float32")],), {}, ValueError, r"concatenate: every input must have the same rank"),
    ("concatenate", ([X234, _array((2, 5, 4), "float32")],), {"axis": 0}, ValueError, r"concatenate: shapes must agree except on axis 0"),
    ("concatenate", ([],), {}, ValueError, r"concatenate: xs must be a non-empty list"),
    ("stack", ([X234, I234[:1]],), {}, ValueError, r"stack: every input must have the same shape"),
    ("split", (X234, 2), {"axis": 1}, ValueError, r"split: axis 1 of size 3 cannot be split into 2"),
    ("take", (X234, np.array([3])), {"axis": 1}, ValueError, r"take: indices must be in \[-3, 3\)"),
    ("take", (X234, np.array([0.5])), {"axis": 1}, TypeError, r"take: indices must be integers"),
    ("take_along_axis", (X234, np.zeros((2, 3), "int64")), {"axis": 1}, ValueError, r"take_along_axis: indices must have the rank of x \(3\)"),
    ("matmul", (X234, _array((3, 2), "float32")), {}, ValueError, r"matmul: the last axis of x1 \(4\) must equal the second-to-last axis of x2 \(3\)"),
    ("matmul", (np.float32(1.0), X234), {}, ValueError, r"matmul: inputs must have rank >= 1"),
    ("dot", (X234, _array((3,), "float32")), {}, ValueError, r"dot: the last axis of x1 \(4\)"),
    ("einsum", ("ij,jk->ik", X234, X234), {}, ValueError, r"einsum: subscripts 'ij,jk->ik' do not fit"),
    ("tensordot", (X234, X234), {"axes": 4}, ValueError, r"tensordot: axes=4"),
    ("slice", (X234, (0, 0), (1, 1)), {}, ValueError, r"slice: start_indices and shape need one entry per axis"),
    ("slice", (X234, (0, 2, 0), (1, 2, 4)), {}, ValueError, r"slice: axis 1 has size 3"),
    ("pad", (X234, ((1, 1), (1, 1))), {}, ValueError, r"pad: pad_width must give \(before, after\) for each of the 3"),
    ("pad", (X234, 1), {"mode": "mirror"}, ValueError, r"pad: mode must be one of"),
    ("pad", (X234, -1), {}, ValueError, r"pad: pad_width must be >= 0"),
    ("one_hot", (np.array([0, 3]), 3), {}, ValueError, r"one_hot: class ids must be < num_classes=3"),
    ("one_hot", (np.array([0.5]), 3), {}, ValueError, r"one_hot: x must hold integer class ids"),
    ("one_hot", (np.array([0]), 0), {}, ValueError, r"one_hot: num_classes must be >= 1"),
    ("top_k", (X234, 5), {}, ValueError, r"top_k: k=5 is larger than the last axis"),
    ("top_k", (np.float32(1.0), 1), {}, ValueError, r"top_k: x must have rank >= 1"),
    ("zeros", ((2, -1),), {}, ValueError, r"zeros: shape must be >= 0"),
    ("zeros", ((2,),), {"dtype": "float31"}, ValueError, r"dtype: unknown dtype 'float31'"),
    ("arange", (0, 5, 0), {}, ValueError, r"arange: step must not be 0"),
    ("eye", (-1,), {}, ValueError, r"eye: N must be >= 0"),
    ("max", (np.zeros((0, 3)),), {}, ValueError, r"max: cannot reduce an empty input"),
    ("categorical_crossentropy", (np.ones((2, 3)), np.ones((2, 4))), {}, ValueError, r"categorical_crossentropy: target and output must have the same shape"),
    ("sparse_categorical_crossentropy", (np.array([1, 2, 0]), np.ones((2, 4))), {}, ValueError, r"sparse_categorical_crossentropy: target must have shape \(2,\)"),
    ("normalize", (X234,), {"order": 0}, ValueError, r"normalize: order must be an int >= 1"),
    ("where", (X234 > 0, X234), {}, ValueError, r"where: give both x1 and x2"),
    ("sum", (X234,), {"axis": 1.5}, TypeError, r"sum: axis must be an int"),
    ("convert_to_tensor", ("abc",), {}, TypeError, r"convert_to_tensor: x must be numeric"),
    ("convert_to_tensor", (X234,), {"sparse": True}, ValueError, r"sparse=True is not supported"),
    ("one_hot", (np.array([0]), 2), {"sparse": True}, ValueError, r"one_hot: sparse=True is not"),
    ("moments", (X234, 0), {"synchronized": True}, ValueError, r"moments: synchronized=True"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "kwargs", "error", "match"), BAD_INPUT, ids=lambda v: "")
def test_bad_input_is_a_clear_error(name, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(ops, name)(*args, **kwargs)


@pytest.mark.parametrize("name", ["sum", "softmax", "matmul", "one_hot", "pad"])
def test_unknown_argument_is_a_type_error_naming_it(name):
    """As for Python functions (and rnnkit's layers): a TypeError naming the argument."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'axes_'"):
        getattr(ops, name)(X234, axes_=1)


def test_a_symbolic_input_is_a_clear_error():
    with pytest.raises(TypeError, match="received a symbolic KerasTensor .* inside a layer's call"):
        ops.expand_dims(rnnkit.Input((3,)), -1)


# ------------------------------------------------------------------ gradients
# Ops whose result keeps float64 are checked with float64 gradcheck.
GRADCHECK = {
    "einsum": lambda a, b: ops.einsum("ij,kj->ik", a, b),
    "softmax": lambda a, b: ops.softmax(a, axis=0) * b,
    "log_softmax": lambda a, b: ops.log_softmax(a) + b,
    "sigmoid_tanh": lambda a, b: ops.sigmoid(a) * ops.tanh(b),
    "gelu_relu": lambda a, b: ops.gelu(a) + ops.relu(b + 0.1),
    "take_concat": lambda a, b: ops.concatenate([ops.take(a, [2, 0], axis=1), b], axis=-1),
    "take_along_axis": lambda a, b: ops.take_along_axis(a, ops.argsort(b, axis=1), axis=1),
    "where_clip": lambda a, b: ops.where(ops.greater(a, b), ops.clip(a, -0.5, 0.5), b),
    "split_stack": lambda a, b: ops.stack(ops.split(a, 3, axis=1), axis=0) * ops.sum(b),
    "pad_reflect": lambda a, b: ops.pad(a, ((1, 1), (2, 0)), mode="reflect") + ops.sum(b),
    "max_logsumexp_std": lambda a, b: (
        ops.max(a, axis=1) + ops.logsumexp(b, axis=-1) + ops.std(a, 1)
    ),
    "normalize": lambda a, b: ops.normalize(b)[:, 0] * ops.sum(a, axis=-1),
    "repeat_tile": lambda a, b: ops.repeat(a, 2, axis=0) + ops.tile(b, (2, 1)),
    "top_k": lambda a, b: ops.top_k(a * b, 2)[0],
    "slice_update": lambda a, b: ops.slice_update(a, (0, 1), ops.slice(b, (1, 0), (2, 2))),
    "divide_power": lambda a, b: ops.divide(a, ops.exp(b)) + ops.power(ops.square(b), 1.5),
}


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_gradients_flow_float64_gradcheck(name):
    inputs = tuple(torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in "ab")
    assert torch.autograd.gradcheck(GRADCHECK[name], inputs)


# Ops computed in Keras' result type, which folds float64 to float32 as Keras does (JAX's
# default): their gradients are compared with torch's in float32.
FOLDED = {
    "matmul": (lambda a, b: ops.matmul(a, ops.transpose(b)), lambda a, b: a @ b.T),
    "dot": (lambda a, b: ops.dot(a, ops.transpose(b)), lambda a, b: a @ b.T),
    "maximum": (lambda a, b: ops.maximum(a, b), torch.maximum),
    "var": (lambda a, b: ops.var(a * b, axis=0), lambda a, b: (a * b).var(0, correction=0)),
    "cumsum": (lambda a, b: ops.cumsum(a * b, axis=1), lambda a, b: (a * b).cumsum(1)),
    "norm": (lambda a, b: ops.norm(a - b, axis=-1), lambda a, b: (a - b).norm(dim=-1)),
    "prod": (lambda a, b: ops.prod(a + b, axis=1), lambda a, b: (a + b).prod(1)),
}


@pytest.mark.parametrize("name", list(FOLDED))
def test_gradients_flow_through_float32_ops(name):
    ours_fn, torch_fn = FOLDED[name]
    a, b = (torch.randn(4, 3, requires_grad=True) for _ in range(2))
    ours = torch.autograd.grad(ours_fn(a, b).sum(), (a, b))
    reference = torch.autograd.grad(torch_fn(a, b).sum(), (a, b))
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want)


def make_cell(keras_module):
    K = keras_module

    class MinimalRNNCell(K.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(
                shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel"
            )
            self.recurrent_kernel = self.add_weight(
                shape=(self.units, self.units), initializer="orthogonal", name="recurrent_kernel"
            )
            self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

        def call(self, inputs, states):
            prev_output = states[0]
            h = K.ops.matmul(inputs, self.kernel)
            z = h + K.ops.matmul(prev_output, self.recurrent_kernel) + self.bias
            output = K.ops.tanh(z) * K.ops.sigmoid(K.ops.mean(z, axis=-1, keepdims=True))
            return output, [output]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return MinimalRNNCell


def test_custom_cell_written_with_ops_matches_keras():
    x = _array((3, 5, 4), "float32")
    ours = rnnkit.layers.RNN(make_cell(rnnkit)(6), return_sequences=True)
    theirs = keras.layers.RNN(make_cell(keras)(6), return_sequences=True)
    ours_out = ours(x)
    theirs(x)
    theirs.set_weights([w.detach().numpy() for w in ours.weights])
    np.testing.assert_allclose(
        ours_out.detach().numpy(), kops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-5
    )


def test_custom_cell_written_with_ops_trains_with_fit():
    rnnkit.utils.set_random_seed(0)
    x = _array((64, 7, 3), "float32")
    y = x.mean(axis=(1, 2))[:, None].astype("float32")
    inputs = rnnkit.Input((7, 3))
    hidden = rnnkit.layers.RNN(make_cell(rnnkit)(8))(inputs)
    model = rnnkit.Model(inputs, rnnkit.layers.Dense(1)(hidden))
    model.compile(optimizer=rnnkit.optimizers.Adam(learning_rate=0.02), loss="mse")
    cell = model.layers[1].cell
    before = [w.detach().clone() for w in cell.weights]
    history = model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0]
    for old, new in zip(before, cell.weights):
        assert not torch.equal(old, new.detach())  # every weight of the cell received gradients


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ops_and_random_on_cuda():
    x = torch.randn(3, 4, device="cuda")
    assert ops.add(x, np.ones(4, "float32")).device.type == "cuda"
    assert ops.take(x, np.array([0, 2]), axis=1).device.type == "cuda"
    assert ops.where(x > 0, x, 0.0).device.type == "cuda"
    assert rnnkit.random.dropout(x, 0.5, seed=1).device.type == "cuda"
    torch.testing.assert_close(rnnkit.random.shuffle(x, seed=2), rnnkit.random.shuffle(x, seed=2))
    torch.set_default_device("cuda")
    try:
        assert ops.zeros((2,)).device.type == "cuda"
        a = rnnkit.random.normal((3,), seed=4)
        assert a.device.type == "cuda"
        torch.testing.assert_close(a, rnnkit.random.normal((3,), seed=4))
    finally:
        torch.set_default_device("cpu")
    cell_rnn = rnnkit.layers.RNN(make_cell(rnnkit)(4))
    cell_rnn(torch.randn(2, 5, 3))  # built on the CPU, then moved
    cell_rnn.to("cuda")
    out = cell_rnn(torch.randn(2, 5, 3, device="cuda"))
    out.sum().backward()
    assert all(w.grad is not None for w in cell_rnn.weights)


def make_attention(keras_module):
    """A keras-io style additive attention over LSTM outputs, written with ``keras.ops``."""
    K = keras_module

    class Attention(K.layers.Layer):
        def build(self, input_shape):
            self.W = self.add_weight(shape=(input_shape[-1], 1), initializer="normal", name="W")
            self.b = self.add_weight(shape=(input_shape[1], 1), initializer="normal", name="b")

        def call(self, x):
            e = K.ops.tanh(K.ops.dot(x, self.W) + self.b)
            alpha = K.ops.softmax(K.ops.squeeze(e, axis=-1))
            context = x * K.ops.expand_dims(alpha, axis=-1)
            return K.ops.sum(context, axis=1)

    return Attention


def test_attention_layer_written_with_ops_matches_keras():
    x = _array((4, 6, 5), "float32")
    ours, theirs = make_attention(rnnkit)(), make_attention(keras)()
    ours_out = ours(x)
    theirs(x)
    theirs.set_weights([w.detach().numpy() for w in ours.weights])
    np.testing.assert_allclose(
        ours_out.detach().numpy(), kops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6
    )
    ours_out.sum().backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in ours.weights)
