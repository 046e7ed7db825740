"""rnnkit.random: shapes, dtypes, distributions, reproducibility and bad input.

The numbers come from torch's generators, not Keras' (which derives them with its own
stateless scheme), so nothing here asks for the same values as Keras: Keras is the oracle
for shapes and dtypes, and the distributions are checked with statistics on large samples.
"""

import keras
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import random

N = 200_000

CALLS = [
    ("normal", ((3, 4),), {}),
    ("normal", ((2, 3),), {"mean": 1.0, "stddev": 2.0, "dtype": "float64"}),
    ("uniform", ((5,),), {}),
    ("uniform", ((2, 2),), {"minval": -1.0, "maxval": 3.0, "dtype": "float16"}),
    ("truncated_normal", ((3, 2),), {}),
    ("randint", ((4, 3),), {"minval": 0, "maxval": 10}),
    ("randint", ((4,),), {"minval": -5, "maxval": 5, "dtype": "int64"}),
    ("dropout", (torch.ones(3, 4), 0.5), {}),
    ("shuffle", (torch.arange(12).reshape(4, 3),), {}),
    ("shuffle", (torch.arange(12).reshape(4, 3),), {"axis": 1}),
    ("categorical", (torch.zeros(2, 5), 7), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), CALLS, ids=lambda v: "")
def test_shape_and_dtype_match_keras(name, args, kwargs):
    ours = getattr(random, name)(*args, seed=1, **kwargs)
    theirs = getattr(keras.random, name)(*args, seed=1, **kwargs)
    assert isinstance(ours, torch.Tensor)
    assert ours.dtype == theirs.dtype
    assert tuple(ours.shape) == tuple(theirs.shape)


@pytest.mark.parametrize(("name", "args", "kwargs"), CALLS, ids=lambda v: "")
def test_an_int_seed_repeats_and_different_seeds_differ(name, args, kwargs):
    fn = getattr(random, name)
    first, again = fn(*args, seed=7, **kwargs), fn(*args, seed=7, **kwargs)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    draws = [fn(*args, seed=s, **kwargs) for s in range(8)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


@pytest.mark.parametrize(("name", "args", "kwargs"), CALLS, ids=lambda v: "")
def test_a_seed_generator_advances_and_repeats_from_its_seed(name, args, kwargs):
    fn = getattr(random, name)
    gen = random.SeedGenerator(3)
    sequence = [fn(*args, seed=gen, **kwargs) for _ in range(6)]
    assert gen.state == 6
    assert any(not torch.equal(sequence[0], d) for d in sequence[1:])
    replay = random.SeedGenerator(3)
    for old in sequence:
        torch.testing.assert_close(fn(*args, seed=replay, **kwargs), old, rtol=0, atol=0)


def test_seed_none_draws_from_torch_global_generator():
    torch.manual_seed(5)
    a = random.normal((4,))
    torch.manual_seed(5)
    torch.testing.assert_close(random.normal((4,)), a)
    assert not torch.equal(random.normal((4,)), a)


def test_set_random_seed_fixes_unseeded_seed_generators():
    rnnkit.utils.set_random_seed(11)
    a = random.uniform((3,), seed=random.SeedGenerator())
    rnnkit.utils.set_random_seed(11)
    torch.testing.assert_close(random.uniform((3,), seed=random.SeedGenerator()), a)


def test_signatures_are_keras():
    import inspect

    for name in random.__all__:
        ours = list(inspect.signature(getattr(random, name)).parameters)
        assert ours == list(inspect.signature(getattr(keras.random, name)).parameters), name


def test_seed_generator_config_round_trip():
    gen = random.SeedGenerator(42, name="gen")
    assert gen.get_config() == {"seed": 42, "name": "gen"}
    assert random.SeedGenerator.from_config(gen.get_config()).seed == 42


# ------------------------------------------------------------------ distributions
def test_normal_distribution():
    x = random.normal((N,), mean=2.0, stddev=3.0, seed=0).double()
    assert abs(x.mean().item() - 2.0) < 0.03
    assert abs(x.std().item() - 3.0) < 0.03
    assert abs(((x - 2.0) / 3.0).abs().lt(1.0).double().mean().item() - 0.6827) < 0.005


def test_uniform_distribution():
    x = random.uniform((N,), minval=-2.0, maxval=6.0, seed=0).double()
    assert x.min() >= -2.0 and x.max() < 6.0
    assert abs(x.mean().item() - 2.0) < 0.03
    assert abs(x.var().item() - 64.0 / 12.0) < 0.06
    counts = torch.histc(x, bins=8, min=-2.0, max=6.0)
    assert (counts / N - 1 / 8).abs().max() < 0.005


def test_randint_distribution():
    x = random.randint((N,), minval=-3, maxval=4, seed=0)
    assert x.dtype == torch.int32
    values, counts = torch.unique(x, return_counts=True)
    assert values.tolist() == list(range(-3, 4))
    assert (counts / N - 1 / 7).abs().max() < 0.005


def test_truncated_normal_distribution():
    x = random.truncated_normal((N,), mean=1.0, stddev=0.5, seed=0).double()
    assert x.min() >= 0.0 and x.max() <= 2.0  # within two stddev of the mean
    assert abs(x.mean().item() - 1.0) < 0.01
    assert abs(x.std().item() - 0.5 * 0.87962566) < 0.005  # std of N(0,1) cut at +-2


def test_dropout_zeroes_the_rate_and_keeps_the_expectation():
    x = torch.full((N,), 2.0)
    y = random.dropout(x, 0.3, seed=0)
    kept = y != 0
    assert abs(1 - kept.double().mean().item() - 0.3) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 / 0.7))
    assert abs(y.double().mean().item() - 2.0) < 0.02


def test_dropout_noise_shape_shares_one_draw_along_axes_of_size_1():
    y = random.dropout(torch.ones(64, 5, 3), 0.5, noise_shape=(None, 1, 3), seed=0)
    assert torch.equal(y, y[:, :1, :].expand_as(y))
    assert 0 < (y == 0).sum() < y.numel()


def test_dropout_lets_gradients_through():
    x = torch.randn(4, 5, requires_grad=True)
    y = random.dropout(x, 0.5, seed=1)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, (y != 0).float() * 2.0)


def test_shuffle_is_a_permutation_along_the_axis():
    x = torch.arange(60).reshape(10, 6)
    rows = random.shuffle(x, seed=0)
    assert sorted(rows[:, 0].tolist()) == list(range(0, 60, 6))
    assert torch.equal(rows - rows[:, :1], x - x[:, :1])  # whole rows moved
    cols = random.shuffle(x, axis=-1, seed=0)
    assert torch.equal(cols.sort(dim=1).values, x)


def test_categorical_frequencies_follow_the_softmax():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]))
    draws = random.categorical(logits, 50_000, seed=0)
    assert draws.shape == (2, 50_000) and draws.dtype == torch.int32
    for row, p in enumerate(torch.softmax(logits, -1)):
        frequencies = torch.bincount(draws[row].long(), minlength=3) / 50_000
        assert (frequencies - p).abs().max() < 0.01


def test_a_layer_with_a_seed_generator_draws_new_masks_each_call():
    class NoisyLayer(rnnkit.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = random.SeedGenerator(1337)

        def call(self, x):
            return random.dropout(x, 0.5, seed=self.seed_generator)

    layer = NoisyLayer()
    x = torch.ones(8, 8)
    assert not torch.equal(layer(x), layer(x))
    again = NoisyLayer()
    first = again(x)
    torch.testing.assert_close(first, NoisyLayer()(x))


# ------------------------------------------------------------------ bad input
BAD = [
    ("normal", ((2, -1),), {}, ValueError, r"normal: shape must be >= 0"),
    ("normal", ((2,),), {"dtype": "int32"}, ValueError, r"normal: dtype must be a float dtype"),
    ("uniform", ((2,),), {"minval": 1.0, "maxval": 1.0}, ValueError, r"uniform: maxval must be > minval"),
    ("randint", ((2,),), {"minval": 3, "maxval": 1}, ValueError, r"randint: maxval must be > minval"),
    ("randint", ((2,),), {"minval": 0.5, "maxval": 3}, TypeError, r"randint: minval must be an int"),
    ("dropout", (np.ones(3), 1.0), {}, ValueError, r"dropout: rate must be in \[0, 1\)"),
    ("dropout", (np.ones((2, 3)), 0.5), {"noise_shape": (2, 2)}, ValueError, r"dropout: noise_shape \(2, 2\) does not broadcast"),
    ("dropout", (np.ones((2, 3)), 0.5), {"noise_shape": (3,)}, ValueError, r"dropout: noise_shape must have rank 2"),
    ("shuffle", (np.ones((2, 3)),), {"axis": 2}, ValueError, r"shuffle: axis=2 is out of range"),
    ("categorical", (np.ones(3), 2), {}, ValueError, r"categorical: logits must have shape \(batch, classes\)"),
    ("categorical", (np.ones((1, 3)), 0), {}, ValueError, r"categorical: num_samples must be >= 1"),
    ("normal", ((2,),), {"seed": "abc"}, TypeError, r"normal: seed must be an int"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "kwargs", "error", "match"), BAD, ids=lambda v: "")
def test_bad_input_is_a_clear_error(name, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(random, name)(*args, **kwargs)


def test_seed_generator_refuses_unknown_arguments_and_bad_seeds():
    with pytest.raises(TypeError, match="unknown arguments \\['sead'\\]"):
        random.SeedGenerator(sead=1)
    with pytest.raises(TypeError, match="SeedGenerator: seed must be an int"):
        random.SeedGenerator("1")
