"""Runs each script of examples/ in a subprocess with ``--small``, offline.

The scripts check their own numbers (assertions: parameter counts, stateful == one pass,
Bidirectional == forward + flipped backward, LSTM == RNN(LSTMCell) with the same weights, a
reloaded model predicts the same); these tests also read the printed values back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))


def run_script(name: str, *args: str, home: Path, timeout: float = 120) -> str:
    env = dict(os.environ)
    env.update(
        RNNKIT_OFFLINE="1",  # never download in the tests
        RNNKIT_HOME=str(home),  # an empty dataset cache unless the test fills it
        OMP_NUM_THREADS="1",  # small ops on a shared CPU: no thread oversubscription
        MPLBACKEND="Agg",
        PYTHONWARNINGS="error::UserWarning",
    )
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--small", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def number_after(pattern: str, text: str) -> float:
    match = re.search(pattern + r"\s*([-+0-9.e]+)", text)
    assert match is not None, f"{pattern!r} not found in the output:\n{text[-2000:]}"
    return float(match.group(1))


def test_every_guide_example_is_here() -> None:
    expected = {
        "01_sequential_lstm.py",
        "02_return_sequences_gru.py",
        "03_encoder_decoder_states.py",
        "04_stateful.py",
        "05_bidirectional.py",
        "06_cudnn_vs_generic_mnist.py",
        "07_nested_cell.py",
        "08_time_series.py",
    }
    assert expected <= set(SCRIPTS)


def test_guide_demo(tmp_path: Path) -> None:
    out = run_script("guide.py", "--out", str(tmp_path / "demo"), home=tmp_path)
    assert "params 164,106 / 361,866 / 258,698 / 80,266" in out
    assert number_after(r"max \|LSTM - RNN\(LSTMCell\)\| =", out) < 1e-4
    assert number_after(r"max \|chunks - one pass\| =", out) < 1e-5
    assert number_after(r"max \|bi - \[fwd, flip\(bwd\)\]\| =", out) < 1e-5
    assert number_after(r"max \|before - after\| =", out) == 0.0
    assert re.search(r"test accuracy [0-9.]+, [0-9.]+ ms/step, kernel \w+", out)
    first = number_after(r"train mse", out)
    last = number_after(r"train mse [0-9.]+ ->", out)
    assert last < first / 5, (first, last)
    assert (tmp_path / "demo" / "digits_lstm.keras").is_file()
    table = out.split("=== summary")[1]
    assert len(re.findall(r"^\d\w?\. ", table, flags=re.M)) == 8
    assert "total" in table


@pytest.mark.parametrize("name", [s for s in SCRIPTS if not s.startswith(("04", "06", "08"))])
def test_example_runs(name: str, tmp_path: Path) -> None:
    out = run_script(name, home=tmp_path)
    assert "Traceback" not in out


def test_stateful_numbers(tmp_path: Path) -> None:
    out = run_script("04_stateful.py", home=tmp_path)
    assert number_after(r"max \|three stateful chunks - one pass\| =", out) < 1e-5
    assert number_after(r"sum \|states\| =", out) == 0.0


def test_mnist_example_falls_back_to_digits(tmp_path: Path) -> None:
    out = run_script("06_cudnn_vs_generic_mnist.py", home=tmp_path)
    assert "MNIST is not available" in out
    assert "8x8 digits shipped with rnnkit" in out
    assert number_after(r"with the same weights:", out) < 1e-4


def test_mnist_example_uses_a_cached_mnist(tmp_path: Path) -> None:
    # A small file in Keras' mnist.npz format, where load_data() looks for it.
    rng = np.random.default_rng(0)
    cache = tmp_path / "datasets"
    cache.mkdir()
    np.savez(
        cache / "mnist.npz",
        x_train=rng.integers(0, 256, (128, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 128, dtype=np.uint8),
        x_test=rng.integers(0, 256, (32, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 32, dtype=np.uint8),
    )
    out = run_script("06_cudnn_vs_generic_mnist.py", home=tmp_path)
    assert "MNIST is not available" not in out
    assert "2/2" in out  # 128 samples in batches of 64
    assert number_after(r"with the same weights:", out) < 1e-4


def test_time_series_example(tmp_path: Path) -> None:
    out = run_script("08_time_series.py", "--out", str(tmp_path), home=tmp_path)
    first = number_after(r"training mse", out)
    last = number_after(r"training mse [0-9.]+ ->", out)
    assert last < first / 5, (first, last)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is missing" in out
    else:
        png = tmp_path / "time_series_pred_plot.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
