"""rnnkit.utils (and rnnkit.preprocessing): pad_sequences and to_categorical against
keras.utils; timeseries_dataset_from_array against Keras' documented examples and a
direct numpy reference (Keras' own needs TensorFlow or Grain, not in the test extra), then
end to end through fit/evaluate/predict; set_random_seed; bad input."""

import random as python_random

import keras
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.utils import (
    pad_sequences,
    set_random_seed,
    timeseries_dataset_from_array,
    to_categorical,
)

SEQUENCES = [[1, 2, 3, 4], [5], [], [6, 7]]

PAD_CASES = [
    (SEQUENCES, {}),
    (SEQUENCES, {"maxlen": 2}),
    (SEQUENCES, {"maxlen": 3, "padding": "post"}),
    (SEQUENCES, {"maxlen": 3, "truncating": "post"}),
    (SEQUENCES, {"maxlen": 6, "padding": "post", "truncating": "post", "value": -1}),
    (SEQUENCES, {"dtype": "float32", "value": 0.5}),
    ([[1.5, 2.5], [3.25]], {"dtype": "float32"}),
    ([[1.5, 2.5], [3.25]], {}),  # int32 by default: values truncated as Keras does
    ([np.ones((3, 2)), np.zeros((1, 2))], {"dtype": "float32"}),  # steps with features
    ([np.arange(5), np.arange(2)], {"maxlen": 4}),
    ([["a", "b"], ["c"]], {"dtype": object, "value": ""}),
    ([[1, 2]], {"maxlen": 1}),
]


@pytest.mark.parametrize(("sequences", "kwargs"), PAD_CASES, ids=lambda v: "")
def test_pad_sequences_matches_keras(sequences, kwargs):
    ours = pad_sequences(sequences, **kwargs)
    theirs = keras.utils.pad_sequences(sequences, **kwargs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_pad_sequences_is_also_keras_preprocessing_sequence():
    assert rnnkit.preprocessing.sequence.pad_sequences is pad_sequences
    assert rnnkit.utils.pad_sequences is pad_sequences


PAD_ERRORS = [
    (5, {}, r"pad_sequences: sequences must be a list of sequences"),
    ([[1], 2], {}, r"pad_sequences: sequences\[1\] is not a sequence"),
    ([], {}, r"pad_sequences: sequences is empty; give maxlen"),
    ([[1]], {"maxlen": 0}, r"pad_sequences: maxlen must be a positive int"),
    ([[1]], {"padding": "middle"}, r"pad_sequences: padding must be 'pre' or 'post'"),
    ([[1]], {"truncating": "both"}, r"pad_sequences: truncating must be 'pre' or 'post'"),
    ([[1]], {"value": "x"}, r"pad_sequences: value 'x' is a string but dtype is 'int32'"),
    ([np.ones((2, 3)), np.ones((2, 4))], {}, r"the steps of sequences\[1\] have shape \(4,\)"),
]


@pytest.mark.parametrize(("sequences", "kwargs", "match"), PAD_ERRORS, ids=lambda v: "")
def test_pad_sequences_bad_input(sequences, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pad_sequences(sequences, **kwargs)


def test_pad_sequences_of_an_empty_list_with_maxlen():
    out = pad_sequences([], maxlen=3)
    assert out.shape == (0, 3) and out.dtype == np.int32


# ------------------------------------------------------------------ to_categorical
CATEGORICAL_CASES = [
    ([0, 2, 1], {}),
    ([0, 2, 1], {"num_classes": 5}),
    (np.array([[1], [3], [0]]), {}),  # a trailing axis of 1 is dropped
    (np.array([[1, 2], [0, 0]]), {"num_classes": 3}),
    (np.array([1.0, 0.0]), {}),
    (np.array([4], dtype="uint8"), {}),
]


@pytest.mark.parametrize(("labels", "kwargs"), CATEGORICAL_CASES, ids=lambda v: "")
def test_to_categorical_matches_keras(labels, kwargs):
    ours = to_categorical(labels, **kwargs)
    theirs = keras.utils.to_categorical(labels, **kwargs)
    assert isinstance(ours, np.ndarray) and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_to_categorical_of_a_tensor_is_a_tensor_like_keras():
    labels = torch.tensor([[0, 2], [1, 1]])
    ours = to_categorical(labels, num_classes=3)
    theirs = keras.utils.to_categorical(labels, num_classes=3)
    assert isinstance(ours, torch.Tensor) and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(to_categorical(labels), theirs)  # num_classes inferred


CATEGORICAL_ERRORS = [
    ([0, 3], {"num_classes": 3}, r"to_categorical: class ids must be < num_classes=3"),
    ([-1, 0], {}, r"to_categorical: class ids must be >= 0"),
    ([0.5], {}, r"to_categorical: x must hold integer class ids"),
    (["a"], {}, r"to_categorical: x must hold integer class ids"),
    ([], {}, r"to_categorical: x is empty; give num_classes"),
    ([0], {"num_classes": 0}, r"to_categorical: num_classes must be >= 1"),
    ([0], {"num_classes": 2.0}, r"to_categorical: num_classes must be an int"),
]


@pytest.mark.parametrize(("labels", "kwargs", "match"), CATEGORICAL_ERRORS, ids=lambda v: "")
def test_to_categorical_bad_input(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_categorical(labels, **kwargs)


# ------------------------------------------------------------------ timeseries
def _reference_windows(data, targets, length, stride, rate, start, end):
    """Keras' documented window rule, written directly."""
    end = len(data) if end is None else end
    starts = range(start, end - (length - 1) * rate, stride)
    xs = [data[s : s + length * rate : rate] for s in starts]
    ys = [targets[s] for s in starts if s < len(targets)] if targets is not None else None
    if ys is not None:
        xs = xs[: len(ys)]
    return np.array(xs), None if ys is None else np.array(ys)


def _collect(dataset):
    batches = list(dataset)
    if isinstance(batches[0], tuple):
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    return np.concatenate(batches), None


def test_timeseries_keras_docstring_example_1():
    """Indices 0..98, sequence_length=10, sampling_rate=2, sequence_stride=3."""
    ds = timeseries_dataset_from_array(
        np.arange(99), None, sequence_length=10, sampling_rate=2, sequence_stride=3
    )
    x, _ = _collect(ds)
    assert x[0].tolist() == list(range(0, 20, 2))
    assert x[1].tolist() == list(range(3, 23, 2))
    assert x[2].tolist() == list(range(6, 26, 2))
    assert x[-1].tolist() == list(range(78, 98, 2))


def test_timeseries_keras_docstring_example_2():
    """Predict the next step from the previous 10."""
    data = np.arange(100, dtype="float32")
    ds = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)
    inputs, targets = next(iter(ds))
    np.testing.assert_array_equal(inputs[0], data[:10])
    assert targets[0] == data[10]


@pytest.mark.parametrize(
    ("length", "stride", "rate", "start", "end", "batch_size"),
    [
        (5, 1, 1, None, None, 7),
        (4, 3, 2, None, None, 4),
        (3, 2, 1, 10, None, 5),
        (6, 1, 3, 4, 40, 3),
        (1, 5, 1, None, 30, 2),
        (5, 2, 1, None, None, 1000),
    ],
)
def test_timeseries_windows_follow_the_documented_rule(
    length, stride, rate, start, end, batch_size
):
    data = np.random.default_rng(0).normal(size=(50, 3)).astype("float32")
    targets = np.arange(50) * 10
    ds = timeseries_dataset_from_array(
        data, targets, length, stride, rate, batch_size, start_index=start, end_index=end
    )
    x, y = _collect(ds)
    want_x, want_y = _reference_windows(data, targets, length, stride, rate, start or 0, end)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    assert x.dtype == np.float32 and y.dtype == targets.dtype
    assert len(ds) == len(list(ds)) == -(-len(want_x) // batch_size)
    assert all(len(b[0]) == batch_size for b in list(ds)[:-1])


def test_timeseries_without_batching_gives_single_windows():
    ds = timeseries_dataset_from_array(np.arange(10), np.arange(10), 3, batch_size=None)
    windows = list(ds)
    assert len(ds) == len(windows) == 8
    x, y = windows[2]
    assert x.tolist() == [2, 3, 4] and y == 2


def test_timeseries_shuffle_is_a_permutation_reproducible_by_seed():
    data = np.arange(40)
    plain = _collect(timeseries_dataset_from_array(data, data, 4, batch_size=5))
    first = timeseries_dataset_from_array(data, data, 4, batch_size=5, shuffle=True, seed=3)
    epoch_1, epoch_2 = _collect(first), _collect(first)
    assert not np.array_equal(epoch_1[0], plain[0])
    assert not np.array_equal(epoch_1[0], epoch_2[0])  # a new order each pass
    order = np.argsort(epoch_1[1])
    np.testing.assert_array_equal(epoch_1[0][order], plain[0])  # same windows
    np.testing.assert_array_equal(epoch_1[1][order], plain[1])  # still paired
    again = timeseries_dataset_from_array(data, data, 4, batch_size=5, shuffle=True, seed=3)
    np.testing.assert_array_equal(_collect(again)[0], epoch_1[0])
    np.testing.assert_array_equal(_collect(again)[0], epoch_2[0])


def test_timeseries_signature_is_keras():
    import inspect

    ours = inspect.signature(timeseries_dataset_from_array).parameters
    assert list(ours) == list(
        inspect.signature(keras.utils.timeseries_dataset_from_array).parameters
    )
    for name in ("pad_sequences", "to_categorical", "set_random_seed"):
        ours = inspect.signature(getattr(rnnkit.utils, name)).parameters
        assert list(ours) == list(inspect.signature(getattr(keras.utils, name)).parameters)
    grain = timeseries_dataset_from_array(np.arange(10), None, 3, batch_size=4, format="grain")
    assert next(iter(grain)).tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]


def test_timeseries_accepts_tensors():
    data = torch.arange(20.0).reshape(10, 2)
    x, y = _collect(timeseries_dataset_from_array(data, torch.arange(10), 3, batch_size=4))
    np.testing.assert_array_equal(x[1], data[1:4].numpy())
    assert y.tolist() == list(range(8))


TIMESERIES_ERRORS = [
    ({"sequence_length": 0}, r"sequence_length must be a positive int, received 0"),
    ({"format": "torch"}, r"format must be 'tf' or 'grain', received 'torch'"),
    ({"sequence_length": 2.5}, r"sequence_length must be a positive int"),
    ({"sequence_stride": 0}, r"sequence_stride must be a positive int"),
    ({"sampling_rate": -1}, r"sampling_rate must be a positive int"),
    ({"batch_size": 0}, r"batch_size must be a positive int"),
    ({"sampling_rate": 20}, r"sampling_rate must be lower than the length of the data \(20\)"),
    ({"sequence_stride": 25}, r"sequence_stride must be lower than the length of the data"),
    ({"start_index": -1}, r"start_index must be in \[0, 20\)"),
    ({"start_index": 20}, r"start_index must be in \[0, 20\)"),
    ({"start_index": 5, "end_index": 5}, r"end_index must be higher than start_index \(5\)"),
    ({"end_index": 20}, r"end_index must be higher than start_index \(0\) and lower than"),
    ({"sequence_length": 21}, r"no window fits: a window spans 21 steps"),
    ({"sequence_length": 8, "sampling_rate": 3}, r"no window fits: a window spans 22 steps"),
]


@pytest.mark.parametrize(("kwargs", "match"), TIMESERIES_ERRORS, ids=lambda v: "")
def test_timeseries_bad_input(kwargs, match):
    arguments = {"sequence_length": 3, **kwargs}
    with pytest.raises(ValueError, match="timeseries_dataset_from_array: " + match):
        timeseries_dataset_from_array(np.arange(20), None, **arguments)


def test_timeseries_scalar_data_is_refused():
    with pytest.raises(ValueError, match="data must have a time axis"):
        timeseries_dataset_from_array(np.float32(1.0), None, 1)


def test_timeseries_dataset_trains_evaluates_and_predicts():
    """The weather-forecasting recipe: windows of a series in, the next value out."""
    set_random_seed(0)
    t = np.arange(300, dtype="float32")
    series = np.stack([np.sin(t / 8.0), np.cos(t / 8.0)], axis=-1).astype("float32")
    target = np.sin((t + 12) / 8.0)[:, None].astype("float32")
    train = timeseries_dataset_from_array(
        series, target, sequence_length=12, batch_size=32, end_index=220, shuffle=True, seed=1
    )
    val = timeseries_dataset_from_array(series, target, 12, batch_size=64, start_index=220)
    inputs = rnnkit.Input((12, 2))
    outputs = rnnkit.layers.Dense(1)(rnnkit.layers.LSTM(8)(inputs))
    model = rnnkit.Model(inputs, outputs)
    model.compile(optimizer=rnnkit.optimizers.Adam(learning_rate=0.03), loss="mse")
    history = model.fit(train, validation_data=val, epochs=5, verbose=0)
    assert len(history.history["loss"]) == 5
    assert history.history["val_loss"][-1] < 0.2 * history.history["val_loss"][0]
    loss = model.evaluate(val, verbose=0)
    assert loss == pytest.approx(history.history["val_loss"][-1], rel=1e-5)
    x_only = timeseries_dataset_from_array(series, None, 12, batch_size=50, start_index=220)
    predictions = model.predict(x_only, verbose=0)
    windows = _collect(x_only)[0]
    assert predictions.shape == (len(windows), 1)
    np.testing.assert_allclose(predictions, model.predict(windows, verbose=0), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ set_random_seed
def _draws():
    return python_random.random(), np.random.rand(), torch.rand(1).item()


def test_set_random_seed_seeds_python_numpy_and_torch():
    set_random_seed(123)
    first = _draws()
    set_random_seed(123)
    assert _draws() == first
    set_random_seed(124)
    assert _draws() != first


def test_set_random_seed_seeds_python_and_numpy_as_keras_does():
    keras.utils.set_random_seed(7)
    theirs = _draws()[:2]
    set_random_seed(7)
    assert _draws()[:2] == theirs


def test_set_random_seed_makes_initialisation_and_training_repeat():
    def train():
        set_random_seed(5)
        model = rnnkit.Sequential(
            [rnnkit.Input((4, 3)), rnnkit.layers.GRU(4), rnnkit.layers.Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse")
        x = np.random.rand(16, 4, 3).astype("float32")
        model.fit(x, x.sum(axis=(1, 2)), epochs=2, batch_size=4, verbose=0)
        return [w.detach().clone() for w in model.weights]

    for a, b in zip(train(), train()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [1.5, "3", -1, 2**32, True])
def test_set_random_seed_bad_input(seed):
    with pytest.raises(ValueError, match="set_random_seed: seed must be"):
        set_random_seed(seed)


# ------------------------------------------------------------------ the top-level surface
def test_keras_names_are_reachable_from_import_rnnkit_as_keras(tmp_path):
    import rnnkit as keras_like

    assert keras_like.Layer is keras_like.layers.Layer is rnnkit.layers.base.Layer
    assert keras_like.models.Model is keras_like.Model
    assert keras_like.models.Sequential is keras_like.Sequential
    assert keras_like.ops.softmax is rnnkit.ops.nn.softmax
    assert keras_like.random.SeedGenerator is rnnkit.random.SeedGenerator
    assert keras_like.utils.to_categorical is to_categorical
    assert keras_like.preprocessing.sequence.pad_sequences is pad_sequences
    model = keras_like.Sequential([keras_like.Input((3, 2)), keras_like.layers.SimpleRNN(4)])
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras_like.models.load_model(path)
    x = np.random.default_rng(0).random((2, 3, 2)).astype("float32")
    np.testing.assert_allclose(
        again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
