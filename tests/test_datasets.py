"""Datasets: Keras' MNIST file format, the shipped digits, seed 004's series."""

import numpy as np
import pytest

from rnnkit import datasets


def _write_small_mnist(path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, (6,), dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, (3,), dtype=np.uint8),
    }
    np.savez(path, **arrays)
    return arrays


def test_mnist_reads_a_given_path(tmp_path):
    arrays = _write_small_mnist(tmp_path / "mnist.npz")
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data(str(tmp_path / "mnist.npz"))
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    assert x_test.shape == (3, 28, 28) and y_train.dtype == np.uint8


def test_mnist_reads_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    arrays = _write_small_mnist(tmp_path / "datasets" / "mnist.npz")
    (x_train, _), _ = datasets.mnist.load_data()
    np.testing.assert_array_equal(x_train, arrays["x_train"])


def test_mnist_offline_and_absent_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    monkeypatch.setenv("RNNKIT_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"put the file at .*datasets/mnist\.npz"):
        datasets.mnist.load_data()
    assert not any((tmp_path / "datasets").glob("*.part"))


def test_mnist_rejects_a_file_without_the_arrays(tmp_path):
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((1, 28, 28)))
    with pytest.raises(ValueError, match="lacks the arrays"):
        datasets.mnist.load_data(str(tmp_path / "bad.npz"))


def test_fetch_checks_the_checksum(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"hello")
    target = tmp_path / "cache" / "file.bin"
    with pytest.raises(ValueError, match="SHA-256"):
        datasets._files.fetch(target, source.as_uri(), "0" * 64)
    assert not target.exists() and not list(target.parent.glob("*.part"))
    good = datasets._files.sha256(source)
    assert datasets._files.fetch(target, source.as_uri(), good).read_bytes() == b"hello"


def test_digits_ship_with_the_package():
    (x_train, y_train), (x_test, y_test) = datasets.digits.load_data()
    assert x_train.shape[1:] == (8, 8) and len(x_train) + len(x_test) == 1797
    assert x_train.max() == 16 and set(np.unique(y_train)) == set(range(10))
    again = datasets.digits.load_data()
    np.testing.assert_array_equal(again[1][1], y_test)


def test_time_series_batches_are_shifted_windows():
    x, y = datasets.time_series.next_batch(4, 20, rng=np.random.default_rng(1))
    assert x.shape == y.shape == (4, 20, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 1:], y[:, :-1])
    t = np.array([1.0, 2.0])
    np.testing.assert_allclose(
        datasets.time_series.time_series(t), t * np.sin(t) / 3 + 2 * np.sin(5 * t)
    )
