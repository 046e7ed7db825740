"""Mixed precision: Keras' dtype policies on torch.autocast, variables and recurrent states in
float32, the fused kernels still chosen, loss scaling for float16, bfloat16 training of the
seed model on the shipped digits. float16/cuDNN checks run only where CUDA is present."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.datasets import digits
from rnnkit.mixed_precision import DTypePolicy

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _float32_policy_afterwards():
    yield
    rnnkit.mixed_precision.set_global_policy("float32")


def test_policies_have_keras_names_and_dtypes():
    policy = DTypePolicy("mixed_bfloat16")
    assert (policy.variable_dtype, policy.compute_dtype) == (torch.float32, torch.bfloat16)
    assert DTypePolicy("float16").variable_dtype == torch.float16
    with pytest.raises(ValueError, match="mixed_half"):
        DTypePolicy("mixed_half")
    with pytest.raises(ValueError, match="mixed_float16"):
        rnnkit.mixed_precision.set_global_policy("float8")


def test_global_and_per_layer_policies():
    rnnkit.mixed_precision.set_global_policy("mixed_bfloat16")
    lstm = layers.LSTM(4)
    head = layers.Dense(2, dtype="float32")
    rnnkit.mixed_precision.set_global_policy("float32")
    assert lstm.dtype_policy.name == "mixed_bfloat16" and head.dtype_policy.name == "float32"
    assert layers.GRU(3).dtype_policy.name == "float32"
    config = lstm.get_config()
    assert config["dtype"] == "mixed_bfloat16"
    assert layers.LSTM.from_config(config).dtype_policy == lstm.dtype_policy
    keras_config = {"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}
    assert layers.Dense(2, dtype=keras_config).dtype_policy.name == "mixed_float16"


def test_mixed_bfloat16_lstm_keeps_float32_variables_and_states_and_runs_fused():
    x = torch.randn(4, 6, 3)
    layer = layers.LSTM(8, return_sequences=True, return_state=True, dtype="mixed_bfloat16")
    out, h, c = layer(x)
    assert layer.last_kernel == "fused"  # oneDNN's bfloat16 LSTM under autocast
    assert out.dtype == torch.bfloat16
    assert (h.dtype, c.dtype) == (torch.float32, torch.float32)
    assert all(w.dtype == torch.float32 for w in layer.weights)
    reference = layers.LSTM(8, return_sequences=True, return_state=True)
    reference(x)
    reference.set_weights(layer.get_weights())
    expected = reference(x)
    for got, want in zip((out, h, c), expected):
        torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)


def test_manual_backward_kernel_runs_under_autocast():
    """The issue's crash: 'self and mat2 must have the same dtype' in training."""
    layer = layers.LSTM(16, recurrent_dropout=0.2)
    x = torch.randn(4, 7, 3)
    with torch.autocast("cpu", torch.bfloat16):
        out = layer(x, training=True)
    assert layer.last_kernel == "manual_backward"
    out.float().sum().backward()
    assert all(w.grad is not None and w.grad.dtype == torch.float32 for w in layer.weights)
    torch.manual_seed(1)
    with torch.autocast("cpu", torch.bfloat16):
        low = layer(x, training=False)
    torch.testing.assert_close(low.float(), layer(x, training=False), rtol=0.05, atol=0.05)


def test_the_kernel_report_under_compile_and_autocast():
    lstm = layers.LSTM(4, dtype="mixed_bfloat16")
    model = rnnkit.Sequential([layers.Input((None, 3)), lstm, layers.Dense(1)])
    lstm.last_kernel = None
    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(model, backend="aot_eager")(torch.randn(2, 5, 3))
    torch._dynamo.reset()
    assert lstm.last_kernel == "fused"


def _seed_model(dtype: str | None) -> rnnkit.Model:
    rnnkit.clear_session()
    torch.manual_seed(0)
    model = rnnkit.Sequential(
        [
            layers.Input(shape=(None, 8)),
            layers.LSTM(64, dtype=dtype),
            # momentum 0.9 (Keras: 0.99): the moving statistics settle within this short run
            layers.BatchNormalization(momentum=0.9),
            layers.Dense(10, dtype="float32"),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.fixture
def one_thread():
    """One intra-op thread for this test only (it used to leave the process on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bfloat16_training_reaches_the_float32_accuracy_on_digits(one_thread):
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    x_train, x_test = x_train.astype("float32") / 16, x_test.astype("float32") / 16
    accuracy = {}
    for dtype in ("float32", "mixed_bfloat16"):
        model = _seed_model(dtype)
        model.fit(x_train, y_train, batch_size=64, epochs=6, verbose=0)
        accuracy[dtype] = model.evaluate(x_test, y_test, verbose=0)[1]
    assert accuracy["float32"] > 0.8
    assert accuracy["mixed_bfloat16"] >= accuracy["float32"] - 0.01, accuracy


def test_fit_scales_the_loss_for_float16_only():
    model = _seed_model("mixed_bfloat16")
    assert model._loss_scaler is None
    model = _seed_model("mixed_float16")
    assert isinstance(model._loss_scaler, torch.amp.GradScaler)


@CUDA
def test_mixed_float16_on_cuda_runs_cudnn_and_scales_the_loss():
    model = _seed_model("mixed_float16").to("cuda")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    (x, y), _ = digits.load_data()
    model.fit(x[:256].astype("float32") / 16, y[:256], batch_size=64, epochs=1, verbose=0)
    assert model.layers[0].last_kernel == "fused"
    assert model._loss_scaler.get_scale() > 0
    out = model.layers[0](torch.rand(2, 8, 8, device="cuda"))
    assert out.dtype == torch.float16
