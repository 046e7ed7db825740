"""Export for deployment: ``torch.export`` with a dynamic batch dimension, and ONNX (the
TorchScript exporter, ``torch.onnx.export(..., dynamo=False)``) with dynamic batch and time
dimensions; onnxruntime's outputs equal eager's (1e-5) on other batch and time sizes.

Not covered (see README, "Deploying a model"): a dynamic time dimension in ``torch.export``
(torch decomposes the fused RNN ops into one step per time step) and masks in ONNX (the kernel
choice reads the mask's values, which a trace records as constants).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.export import Dim

import rnnkit
from rnnkit import layers

sys.path.insert(0, str(Path(__file__).parent))
from model_zoo import ZOO  # noqa: E402

ort = pytest.importorskip("onnxruntime")


def _sequential(*body: layers.Layer, features: int = 3) -> rnnkit.Model:
    return rnnkit.Sequential([layers.Input((None, features)), *body])


ONNX_MODELS = {
    "lstm": lambda: _sequential(layers.LSTM(4), layers.Dense(2)),
    "gru": lambda: _sequential(layers.GRU(4, return_sequences=True), layers.Dense(2)),
    "simple_rnn": lambda: _sequential(layers.SimpleRNN(4, activation="relu"), layers.Dense(2)),
    "bidirectional": lambda: _sequential(
        layers.Bidirectional(layers.LSTM(4, return_sequences=True)), layers.Dense(2)
    ),
    "stacked": lambda: _sequential(
        layers.GRU(5, return_sequences=True), layers.LSTM(4), layers.Dense(2)
    ),
    "time_distributed": lambda: ZOO["time_series"]().model,
}


def _x(batch: int, time: int, features: int = 3, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.standard_normal((batch, time, features)), dtype=torch.float32)


@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
def test_onnx_runtime_equals_eager_on_other_batch_and_time_sizes(name, tmp_path):
    model = ONNX_MODELS[name]()
    features = model.input_shape[-1]
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        # The TorchScript exporter on purpose: the dynamo exporter goes through torch.export,
        # which cannot keep the time dimension dynamic (see the module docstring). torch 2.13
        # marks that exporter and its internals deprecated, warning at every export.
        warnings.simplefilter("ignore", DeprecationWarning)
        # The trace records the input checks' Python ints as constants, and says so; the
        # outputs on other batch and time sizes below show that nothing computed is pinned.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The exporter cannot see that the zero initial states take the input's batch size;
        # the checks on other batch sizes below show that they do.
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other")
        torch.onnx.export(
            model,
            (_x(2, 5, features),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch", 1: "time"}},
            dynamo=False,
        )
    session = ort.InferenceSession(str(path))
    for batch, time in [(2, 5), (3, 9), (1, 2)]:
        x = _x(batch, time, features, seed=batch)
        (got,) = session.run(None, {"x": x.numpy()})
        np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "bidirectional", "stacked", "time_distributed"])
def test_torch_export_with_a_dynamic_batch(name):
    model = ONNX_MODELS[name]()
    features = model.input_shape[-1]
    with torch.no_grad():
        program = torch.export.export(
            model, (_x(2, 5, features),), dynamic_shapes=(({0: Dim("batch")},),)
        )
    for batch in (1, 4):
        x = _x(batch, 5, features, seed=batch)
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)
