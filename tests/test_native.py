"""The native LSTM and GRU loops (rnnkit.kernels.native): the same outputs, states and
gradients as the Python step loops of the manual-backward kernel, float64 gradcheck, the
capability check, and what happens when they cannot be built."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit import layers
from rnnkit.kernels import manual_backward, manual_backward_cells, native

B, T, D, U = 5, 9, 4, 6
HOLES = torch.rand(B, T, generator=torch.Generator().manual_seed(3)) > 0.3
HOLES[1] = False  # a row with no valid step

pytestmark = pytest.mark.skipif(
    native.blocker("lstm", "tanh", "sigmoid", torch.device("cpu"), torch.float32) is not None,
    reason="the native loop cannot be built here (no C compiler or no BLAS in torch)",
)


def _weights(dtype=torch.float32, seed=0, batch=B, time=T, features=D, units=U):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.5):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()

    x = r(batch, time, features, scale=1.0)
    return [x, r(features, 4 * units), r(units, 4 * units), r(4 * units, scale=0.1),
            r(batch, units), r(batch, units)]  # fmt: skip


def _call(loop, cell_class, kernel, params, monkeypatch, **kwargs):
    """``kernel(*params, **kwargs)`` with the native loop allowed or not (RNNKIT_NATIVE),
    checking that ``cell_class`` (native.LSTM or native.GRU) ran exactly when allowed."""
    monkeypatch.setenv("RNNKIT_NATIVE", "1" if loop == "native" else "0")
    used = []
    original = cell_class.forward

    def spy(self, *a):
        used.append(True)
        return original(self, *a)

    monkeypatch.setattr(cell_class, "forward", spy)
    result = kernel(*params, **kwargs)
    assert bool(used) == (loop == "native")
    return result


def _run(loop, params, monkeypatch, **kwargs):
    """outputs, h, c and the gradients of a loss touching all three, with the native loop
    allowed or not (RNNKIT_NATIVE)."""
    out, h, c = _call(loop, native.LSTM, manual_backward.lstm, params, monkeypatch, **kwargs)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    loss = (out * w).sum() + h.square().sum() + c.sin().sum()
    grads = torch.autograd.grad(loss, params)
    return [out, h, c, *grads]


CASES = {
    "plain": dict(),
    "holes": dict(mask=HOLES),
    "holes, zero_output, backwards": dict(mask=HOLES, zero_output_for_mask=True, go_backwards=True),
    "recurrent dropout": dict(rd=True),
    "relu": dict(activation="relu"),
    "relu, holes, recurrent dropout": dict(activation="relu", mask=HOLES, rd=True),
    "hard_sigmoid": dict(recurrent_activation="hard_sigmoid", go_backwards=True),
    "linear": dict(activation="linear", return_sequences=False),
    "sigmoid/tanh swapped": dict(activation="sigmoid", recurrent_activation="tanh"),
    "input dropout": dict(dp=True, mask=HOLES),
}


def _kwargs(case, dtype, cases=None):
    kw = dict((CASES if cases is None else cases)[case])
    g = torch.Generator().manual_seed(5)
    if kw.pop("rd", False):
        kw["recurrent_dropout_mask"] = (torch.rand(B, U, generator=g) > 0.25).to(dtype) / 0.75
    if kw.pop("dp", False):
        kw["dropout_mask"] = (torch.rand(B, D, generator=g) > 0.25).to(dtype) / 0.75
    return kw


@pytest.mark.parametrize("case", list(CASES))
def test_native_equals_the_python_loop(case, monkeypatch):
    params = _weights()
    kw = _kwargs(case, torch.float32)
    ours = _run("native", params, monkeypatch, **kw)
    ref = _run("python", params, monkeypatch, **kw)
    for a, e in zip(ours, ref):
        np.testing.assert_allclose(a.detach().numpy(), e.detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_native_equals_the_python_loop_float64(case, monkeypatch):
    params = _weights(torch.float64)
    kw = _kwargs(case, torch.float64)
    ours = _run("native", params, monkeypatch, **kw)
    ref = _run("python", params, monkeypatch, **kw)
    for a, e in zip(ours, ref):
        np.testing.assert_allclose(a.detach().numpy(), e.detach().numpy(), rtol=1e-11, atol=1e-11)


def test_native_at_the_guide_size(monkeypatch):
    """Batch 64, 28 steps, 64 units: the BLAS gemm's blocking, not only tiny shapes."""
    params = _weights(batch=64, time=28, features=28, units=64, seed=1)
    mask = torch.rand(64, 28, generator=torch.Generator().manual_seed(2)) > 0.1
    rd = (torch.rand(64, 64, generator=torch.Generator().manual_seed(4)) > 0.2) / 0.8
    ours = _run("native", params, monkeypatch, mask=mask, recurrent_dropout_mask=rd)
    ref = _run("python", params, monkeypatch, mask=mask, recurrent_dropout_mask=rd)
    for a, e in zip(ours, ref):
        scale = e.abs().max().item()
        np.testing.assert_allclose(a.detach().numpy(), e.detach().numpy(), atol=1e-5 * scale)


def test_gradcheck_float64(monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE", "1")
    x, k, rk, b, h0, c0 = _weights(torch.float64, batch=3, time=4, features=2, units=3)
    M = torch.tensor([[2.0, 0.0, 2.0], [0.0, 2.0, 2.0], [2.0, 2.0, 0.0]], dtype=torch.float64)
    holes = HOLES[:3, :4]

    def fn(*args):
        return manual_backward.lstm(*args, mask=holes, recurrent_dropout_mask=M)

    assert torch.autograd.gradcheck(fn, (x, k, rk, b, h0, c0), eps=1e-6, atol=1e-7)


def test_nan_and_inf_propagate(monkeypatch):
    params = [p.detach() for p in _weights()]
    params[0][0, 2, 0] = float("nan")
    params[0][2, 3, 1] = float("inf")
    monkeypatch.setenv("RNNKIT_NATIVE", "1")
    out, h, c = manual_backward.lstm(*params)
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    ref, _, _ = manual_backward.lstm(*params)
    assert torch.isnan(out[0, 2:]).all() and not torch.isnan(out[3]).any()
    np.testing.assert_array_equal(torch.isnan(out).numpy(), torch.isnan(ref).numpy())


def _gru_weights(reset_after, dtype=torch.float32, seed=0, batch=B, time=T, units=U):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.5):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()

    bias = r(2, 3 * units, scale=0.1) if reset_after else r(3 * units, scale=0.1)
    return [r(batch, time, D, scale=1.0), r(D, 3 * units), r(units, 3 * units), bias,
            r(batch, units)]  # fmt: skip


def _run_gru(loop, params, monkeypatch, **kwargs):
    out, h = _call(loop, native.GRU, manual_backward.gru, params, monkeypatch, **kwargs)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * w).sum() + h.sin().sum(), params)
    return [out, h, *grads]


GRU_CASES = {
    "plain": dict(),
    "holes": dict(mask=HOLES),
    "holes, zero_output, backwards": dict(mask=HOLES, zero_output_for_mask=True, go_backwards=True),
    "recurrent dropout": dict(rd=True),
    "relu, holes, recurrent dropout": dict(activation="relu", mask=HOLES, rd=True),
    "hard_sigmoid, last output": dict(recurrent_activation="hard_sigmoid", return_sequences=False),
    "input dropout": dict(dp=True, mask=HOLES),
}


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(GRU_CASES))
def test_native_gru_equals_the_python_loop(case, dtype, reset_after, monkeypatch):
    params = _gru_weights(reset_after, dtype)
    kw = _kwargs(case, dtype, GRU_CASES)
    kw["reset_after"] = reset_after
    ours = _run_gru("native", params, monkeypatch, **kw)
    ref = _run_gru("python", params, monkeypatch, **kw)
    tol = 1e-5 if dtype == torch.float32 else 1e-11
    for a, e in zip(ours, ref):
        np.testing.assert_allclose(a.detach().numpy(), e.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gradcheck_float64(reset_after, monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE", "1")
    params = _gru_weights(reset_after, torch.float64, batch=3, time=4, units=3)
    params[0] = params[0][..., :2].detach().requires_grad_()
    params[1] = params[1][:2].detach().requires_grad_()
    M = torch.tensor([[2.0, 0.0, 2.0], [0.0, 2.0, 2.0], [2.0, 2.0, 0.0]], dtype=torch.float64)

    def fn(*args):
        return manual_backward.gru(
            *args, mask=HOLES[:3, :4], recurrent_dropout_mask=M, reset_after=reset_after
        )

    assert torch.autograd.gradcheck(fn, tuple(params), eps=1e-6, atol=1e-7)


def test_the_layers_report_and_use_it():
    x = torch.randn(4, 7, 3)
    for layer in (
        layers.LSTM(5, recurrent_dropout=0.3),
        layers.LSTM(5, activation="relu"),
        layers.RNN(layers.LSTMCell(5)),
        layers.GRU(5, reset_after=False),
        layers.RNN(layers.GRUCell(5)),
    ):
        layer(x, training=True)
        assert layer.last_kernel == "manual_backward"
        assert layer.last_kernel_choice.reason.endswith("(its time loop in C, kernels.native)")
    simple = layers.SimpleRNN(5, activation="sigmoid")
    simple(x)
    assert "its time loop in Python: the native loop runs LSTM and GRU only" in (
        simple.last_kernel_choice.reason
    )


def test_the_plain_rnn_of_lstm_cell_equals_the_generic_loop():
    x = torch.randn(4, 7, 3)
    mask = torch.rand(4, 7, generator=torch.Generator().manual_seed(0)) > 0.3
    fast, loop = layers.RNN(layers.LSTMCell(5)), layers.RNN(layers.LSTMCell(5), unroll=True)
    fast(x)
    loop(x)
    loop.set_weights(fast.get_weights())
    a, b = fast(x, mask=mask), loop(x, mask=mask)
    assert fast.last_kernel == "manual_backward" and loop.last_kernel == "generic"
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "args, expected",
    [
        (("simple_rnn", "tanh", "sigmoid", "cpu", torch.float32), "runs LSTM and GRU only"),
        (("lstm", "tanh", "sigmoid", "meta", torch.float32), "on the CPU"),
        (("lstm", "tanh", "sigmoid", "cpu", torch.float16), "float32 and float64"),
        (("lstm", "softsign", "sigmoid", "cpu", torch.float32), "no activation 'softsign'"),
        (("lstm", "tanh", torch.exp, "cpu", torch.float32), "no recurrent_activation"),
    ],
)
def test_blocker_reasons(args, expected):
    kind, act, rec, device, dtype = args
    assert expected in native.blocker(kind, act, rec, torch.device(device), dtype)


def test_blocker_refuses_what_has_no_plain_memory(monkeypatch):
    cpu, f32 = torch.device("cpu"), torch.float32
    per_gate = torch.ones(4, 2, 3)
    assert "shared by the gates" in native.blocker("lstm", "tanh", "sigmoid", cpu, f32, per_gate)
    with torch.autocast("cpu", torch.bfloat16):
        assert "autocast" in native.blocker("lstm", "tanh", "sigmoid", cpu, f32)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake = torch.empty(2, 3)
    why = native.blocker("lstm", "tanh", "sigmoid", cpu, f32, None, (fake,))
    assert "not a plain CPU tensor" in why
    double = torch.zeros(2, 3, dtype=torch.float64)
    assert "not a plain CPU tensor" in native.blocker(
        "lstm", "tanh", "sigmoid", cpu, f32, None, (double,)
    )
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    assert "RNNKIT_NATIVE=0" in native.blocker("lstm", "tanh", "sigmoid", cpu, f32)


def test_shape_inference_and_vmap_take_the_python_loop():
    """Fake tensors (the symbolic shape inference of a model) and functorch wrappers have no
    memory for C: the check sends them to the Python loop."""
    from rnnkit import Input, Sequential

    model = Sequential([Input((None, 3)), layers.RNN(layers.LSTMCell(4))])
    assert model.output_shape == (None, 4)
    seen = []

    def probe(t):
        seen.append(native.blocker("lstm", "tanh", "sigmoid", t.device, t.dtype, None, (t,)))
        return t

    torch.vmap(probe)(torch.zeros(2, 3))
    assert seen and "not a plain CPU tensor" in seen[0]


@pytest.fixture
def fresh_library(tmp_path, monkeypatch):
    """An empty cache and no loaded library; restored afterwards."""
    monkeypatch.setenv("RNNKIT_CACHE_DIR", str(tmp_path))
    native._forget()
    yield tmp_path
    native._forget()


def test_a_failed_build_warns_once_and_the_python_loop_runs(fresh_library, monkeypatch):
    broken = fresh_library / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(native, "_SOURCE", broken)
    with pytest.warns(RuntimeWarning, match="native LSTM/GRU loop is not available"):
        why = native.blocker("lstm", "tanh", "sigmoid", torch.device("cpu"), torch.float32)
    assert why.startswith("building it failed:") and "broken.c" in why
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked again: the same answer, no second warning
        assert native.blocker("lstm", "tanh", "sigmoid", torch.device("cpu"), torch.float32) == why
        layer = layers.LSTM(3, activation="relu")
        out = layer(torch.randn(2, 4, 3))
    assert out.shape == (2, 3) and "its time loop in Python: building it failed" in (
        layer.last_kernel_choice.reason
    )
    assert list(fresh_library.glob("*.so")) == []  # nothing half-written left behind


def test_a_compiler_without_openmp_builds_the_one_thread_loop_and_says_so(
    fresh_library, monkeypatch
):
    monkeypatch.setattr(native, "_OPENMP", "-fno-such-openmp-flag")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the loop runs, the report says how
        assert native.blocker("lstm", "tanh", "sigmoid", torch.device("cpu"), torch.float32) is None
        layer = layers.LSTM(3, recurrent_dropout=0.5)
        x = torch.randn(32, 4, 3)
        layer(x, training=True)
    reason = layer.last_kernel_choice.reason
    assert "its time loop in C, kernels.native; all its rows on one thread:" in reason
    assert "-fno-such-openmp-flag" in reason
    (built,) = fresh_library.glob("rnnkit_recurrence_*.so")  # the one-thread build only


def test_the_gate_maths_run_on_torch_openmp_threads():
    # Built with -fopenmp, the library uses torch's own libgomp (one OpenMP runtime), and a
    # batch of 64 gives the same results on one thread and on two (to float32 rounding: the
    # BLAS may split its products differently).
    lib, why = native._library()
    assert why is None and lib.one_thread is None
    if Path("/proc/self/maps").exists():  # Linux: which libgomp copies the process holds
        with open("/proc/self/maps") as maps:
            gomp = {line.split()[-1] for line in maps if "libgomp" in line}
        assert len(gomp) == 1 and next(iter(gomp)).startswith(str(Path(torch.__file__).parent))
    layer = layers.LSTM(16, activation="relu", return_sequences=True)
    x = torch.randn(64, 7, 5, requires_grad=True)
    holes = torch.rand(64, 7, generator=torch.Generator().manual_seed(0)) > 0.2
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = layer(x, mask=holes, training=True)
            (grad,) = torch.autograd.grad(out.square().sum(), x)
            results.append((out.detach(), grad))
    finally:
        torch.set_num_threads(threads)
    assert layer.last_kernel_choice.reason.endswith("(its time loop in C, kernels.native)")
    torch.testing.assert_close(results[0], results[1])  # a race between rows would not be


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("kind", ["lstm", "gru reset_after", "gru"])
def test_row_chunks_on_threads_equal_the_python_loop(kind, threads, monkeypatch):
    """A batch of 50 rows runs as one chunk per thread (25 + 25, or 16 + 17 + 17 rows: the
    per-chunk loops offset every array by the chunk's first row and keep the full batch's
    time strides); with holes, recurrent dropout and go_backwards, outputs, states and
    gradients equal the Python step loop's (float64)."""
    batch = 50
    g = torch.Generator().manual_seed(7)
    mask = torch.rand(batch, T, generator=g) > 0.3
    rd = (torch.rand(batch, U, generator=g) > 0.25).double() / 0.75
    kw = dict(mask=mask, recurrent_dropout_mask=rd, go_backwards=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if kind == "lstm":
            params = _weights(torch.float64, batch=batch)
            ours = _run("native", params, monkeypatch, **kw)
            ref = _run("python", params, monkeypatch, **kw)
        else:
            reset_after = kind == "gru reset_after"
            params = _gru_weights(reset_after, torch.float64, batch=batch)
            ours = _run_gru("native", params, monkeypatch, reset_after=reset_after, **kw)
            ref = _run_gru("python", params, monkeypatch, reset_after=reset_after, **kw)
    finally:
        torch.set_num_threads(before)
    for a, e in zip(ours, ref):
        np.testing.assert_allclose(a.detach().numpy(), e.detach().numpy(), rtol=1e-11, atol=1e-11)


def test_no_compiler_is_a_reason(fresh_library, monkeypatch):
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    why = native.blocker("lstm", "tanh", "sigmoid", torch.device("cpu"), torch.float32)
    assert why == "no C compiler (cc, gcc or clang) was found to build it"


def test_the_build_is_cached_by_source(fresh_library):
    assert native.blocker("lstm", "tanh", "sigmoid", torch.device("cpu"), torch.float32) is None
    (built,) = fresh_library.glob("rnnkit_recurrence_*.so")
    mtime = built.stat().st_mtime_ns
    native._forget()
    assert native.blocker("lstm", "tanh", "sigmoid", torch.device("cpu"), torch.float32) is None
    assert built.stat().st_mtime_ns == mtime  # loaded, not rebuilt


def test_the_python_cell_is_the_reference():
    """The two step loops share one interface (Recurrence runs either)."""
    assert native.LSTM.n_states == manual_backward_cells.LSTM.n_states == 2


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_the_c_activations_are_accurate(name):
    """Within 2 float32 ulps of torch (float64) everywhere, relative, also near 0 where
    tanh(x) ~ x; NaN stays NaN; the limits are exact."""
    lib, _ = native._library()
    grid = torch.logspace(-30, 1.9, 20001)
    x = torch.cat(
        [grid, -grid, torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan")])]
    )
    y = torch.empty_like(x)
    lib.activation[torch.float32](native.ACTIVATIONS[name], x.numel(), x.data_ptr(), y.data_ptr())
    ref = getattr(torch, name)(x.double())
    finite = ~torch.isnan(ref) & (x > -80) & (ref != 0)  # sigmoid below -80: < 2e-35
    rel = (y.double() - ref).abs()[finite] / ref.abs()[finite]
    assert rel.max().item() < 2.4e-7
    assert torch.isnan(y[-1]) and y[-5:-1].tolist() == ref[-5:-1].float().tolist()
    assert torch.equal(torch.signbit(y[-5:-3]), torch.signbit(ref[-5:-3]))
    assert ((y.double() - ref).abs()[~torch.isnan(ref)].max().item()) < 2e-7
