"""The programs of examples/keras_io/ run on rnnkit with the Keras imports swapped, nothing else.

Each program is written against ``keras`` (``import keras`` / ``from keras import ...``). Here
its source is read, the two import lines are rewritten to ``rnnkit`` and the result runs in a
fresh module namespace (one process: importing torch and Keras once keeps the file fast).

Where the program allows, the same source also runs on real Keras (torch backend): both builds
get rnnkit's initial weights (``get_weights``/``set_weights``), the same batches in the same
order (``shuffle=False``), and must agree on the parameter counts and on the loss after a few
steps of the program's own optimizer (within 1e-4). What is not compared, and why, is listed in
``NOT_COMPARED``.
"""

from __future__ import annotations

import math
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import rnnkit

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_DIR = ROOT / "examples" / "keras_io"
PROGRAMS = sorted(p.stem for p in PROGRAM_DIR.glob("*.py"))

# Parts of programs that cannot be compared with Keras step for step, and why.
NOT_COMPARED = {
    "cnn_lstm": "Dropout draws different masks in each framework: compared with rate 0",
    "lstm_seq2seq": "greedy decoding runs on rnnkit only (training is compared as written)",
    "text_generation": "the sampling loop draws from predicted probabilities (training is "
    "compared as written)",
    "weather_forecasting": "Keras' timeseries_dataset_from_array needs TensorFlow (tf.data): "
    "both models train on the arrays of rnnkit's windows",
    "stateful_lstm": "Keras 3.15's torch backend cannot train a stateful LSTM (the state is "
    "updated in place inside the autograd graph, keras-team/keras#20875): the stateful "
    "forward over consecutive batches is compared instead",
}

# Keyword arguments of build_model for the comparison (see NOT_COMPARED).
BUILD_KWARGS = {
    "cnn_lstm": {"dropout": 0.0},
}


def swap_imports(source: str) -> str:
    """The only change a user makes: ``keras`` -> ``rnnkit`` in the import lines."""
    swapped = re.sub(r"^import keras$", "import rnnkit as keras", source, flags=re.M)
    swapped = re.sub(r"^from keras import ", "from rnnkit import ", swapped, flags=re.M)
    assert "import keras" not in swapped and "from keras" not in swapped
    return swapped


def load_program(name: str, framework: str) -> types.ModuleType:
    """Executes examples/keras_io/<name>.py against ``framework`` ("rnnkit" or "keras")."""
    path = PROGRAM_DIR / f"{name}.py"
    source = path.read_text()
    if framework == "rnnkit":
        source = swap_imports(source)
    module = types.ModuleType(f"keras_io_{name}_{framework}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # classes defined there get a real home
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def test_there_are_twelve_programs_written_against_keras() -> None:
    assert len(PROGRAMS) >= 12, PROGRAMS
    for name in PROGRAMS:
        source = (PROGRAM_DIR / f"{name}.py").read_text()
        assert re.search(r"^import keras$", source, flags=re.M), name
        assert not re.search(r"^\s*(import|from) rnnkit", source, flags=re.M), name
        assert "def main():" in source, name


@pytest.mark.parametrize("name", PROGRAMS)
def test_runs_on_rnnkit_with_the_imports_swapped(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    program = load_program(name, "rnnkit")
    assert program.keras is rnnkit
    loss = program.main()
    out = capsys.readouterr().out
    assert re.search(r"final loss: [0-9.]+", out), out[-2000:]
    assert math.isfinite(loss)


def comparison_data(name: str, program: types.ModuleType):
    if name == "weather_forecasting":
        windows, _ = program.datasets(program.make_data())
        batches = list(windows)
        x = np.concatenate([np.asarray(b[0]) for b in batches])
        y = np.concatenate([np.asarray(b[1]) for b in batches])
        return x, y
    return program.make_data()


@pytest.mark.parametrize("name", PROGRAMS)
def test_same_losses_as_keras_from_the_same_weights(name: str) -> None:
    ours = load_program(name, "rnnkit")
    theirs = load_program(name, "keras")
    assert theirs.keras is keras
    kwargs = BUILD_KWARGS.get(name, {})
    rnnkit.utils.set_random_seed(0)
    our_model = ours.build_model(**kwargs)
    keras.utils.set_random_seed(0)
    their_model = theirs.build_model(**kwargs)
    assert our_model.count_params() == their_model.count_params()
    weights = our_model.get_weights()
    assert [w.shape for w in weights] == [tuple(w.shape) for w in their_model.get_weights()]
    their_model.set_weights(weights)

    data = comparison_data(name, ours)
    if name == "stateful_lstm":
        x, batch = data[0], ours.BATCH
        for start in range(0, len(x), batch):  # each batch continues the previous one
            chunk = x[start : start + batch]
            np.testing.assert_allclose(
                our_model.predict(chunk, batch_size=batch, verbose=0),
                their_model.predict(chunk, batch_size=batch, verbose=0),
                atol=1e-5,
            )
        return
    our_loss = ours.train(our_model, data)
    their_loss = theirs.train(their_model, data)
    assert abs(our_loss - their_loss) < 1e-4, (our_loss, their_loss)
