"""The manual-backward kernel (rnnkit.kernels.manual_backward) against a per-step autograd reference, float64
gradcheck, and Keras 3 layers with identical weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import activations
from rnnkit.kernels import manual_backward

B, T, D, U = 3, 6, 4, 5
HOLES = torch.tensor([[1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)


def _split(w: torch.Tensor, n: int) -> list[torch.Tensor]:
    return list(torch.chunk(w, n, dim=-1))


def _gate_masks(M: torch.Tensor | None, n: int) -> list[torch.Tensor | None]:
    if M is None:
        return [None] * n
    return [M] * n if M.dim() == 2 else list(M)


def _drop(h: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    return h if m is None else h * m


def _loop(step, x, states, mask, go_backwards, zero_output):
    """Keras' generic loop (backend/torch/rnn.py semantics), written plainly."""
    if go_backwards:
        x = x.flip(1)
        mask = mask.flip(1) if mask is not None else None
    outs, prev = [], torch.zeros_like(states[0])
    for t in range(x.shape[1]):
        out, new = step(x[:, t], states)
        if mask is not None:
            mt = mask[:, t, None]
            out = torch.where(mt, out, prev)
            new = [torch.where(mt, n, s) for n, s in zip(new, states)]
        states, prev = new, out
        outs.append(out)
    outputs = torch.stack(outs, 1)
    if mask is not None and zero_output:
        outputs = outputs * mask[..., None]
    return outputs, states


def ref_lstm(x, k, rk, b, h0, c0, mask=None, M=None, act=torch.tanh, ra=torch.sigmoid,
             go_backwards=False, zero_output=False, Mx=None):  # fmt: skip
    ks, rks, Ms, Mxs = _split(k, 4), _split(rk, 4), _gate_masks(M, 4), _gate_masks(Mx, 4)
    bs = _split(b, 4) if b is not None else [0.0] * 4

    def step(xt, states):
        h, c = states
        z = [_drop(xt, Mxs[g]) @ ks[g] + _drop(h, Ms[g]) @ rks[g] + bs[g] for g in range(4)]
        cn = ra(z[1]) * c + ra(z[0]) * act(z[2])
        hn = ra(z[3]) * act(cn)
        return hn, [hn, cn]

    out, (h, c) = _loop(step, x, [h0, c0], mask, go_backwards, zero_output)
    return out, h, c


def ref_gru(x, k, rk, b, h0, mask=None, M=None, act=torch.tanh, ra=torch.sigmoid,
            reset_after=True, go_backwards=False, zero_output=False, Mx=None):  # fmt: skip
    ks, rks, Ms, Mxs = _split(k, 3), _split(rk, 3), _gate_masks(M, 3), _gate_masks(Mx, 3)
    if b is None:
        bi, br = [0.0] * 3, [0.0] * 3
    elif reset_after:
        bi, br = _split(b[0], 3), _split(b[1], 3)
    else:
        bi, br = _split(b, 3), [0.0] * 3

    def step(xt, states):
        (h,) = states
        z = ra(_drop(xt, Mxs[0]) @ ks[0] + bi[0] + _drop(h, Ms[0]) @ rks[0] + br[0])
        r = ra(_drop(xt, Mxs[1]) @ ks[1] + bi[1] + _drop(h, Ms[1]) @ rks[1] + br[1])
        if reset_after:
            hh = act(_drop(xt, Mxs[2]) @ ks[2] + bi[2] + r * (_drop(h, Ms[2]) @ rks[2] + br[2]))
        else:
            hh = act(_drop(xt, Mxs[2]) @ ks[2] + bi[2] + (r * _drop(h, Ms[2])) @ rks[2])
        hn = z * h + (1 - z) * hh
        return hn, [hn]

    out, (h,) = _loop(step, x, [h0], mask, go_backwards, zero_output)
    return out, h


def ref_simple(x, k, rk, b, h0, mask=None, M=None, act=torch.tanh, go_backwards=False,
               zero_output=False, Mx=None):  # fmt: skip
    def step(xt, states):
        hn = act(_drop(xt, Mx) @ k + _drop(states[0], M) @ rk + (b if b is not None else 0.0))
        return hn, [hn]

    out, (h,) = _loop(step, x, [h0], mask, go_backwards, zero_output)
    return out, h


def _tensors(gates, bias_shape, n_states, dtype=torch.float32, seed=0, sizes=(B, T, D, U)):
    b_, t_, d_, u_ = sizes
    g = torch.Generator().manual_seed(seed)

    def r(*s, scale=0.5):
        return (torch.randn(*s, generator=g, dtype=dtype) * scale).requires_grad_(True)

    x = r(b_, t_, d_, scale=1.0)
    k, rk = r(d_, gates * u_), r(u_, gates * u_)
    b = r(*bias_shape) if bias_shape is not None else None
    states = [r(b_, u_) for _ in range(n_states)]
    return x, k, rk, b, states


def _dropout_mask(kind, gates, dtype=torch.float32, b_=B, u_=U, seed=7):
    if kind is None:
        return None
    g = torch.Generator().manual_seed(seed)
    shape = (b_, u_) if kind == "shared" else (gates, b_, u_)
    return (torch.rand(shape, generator=g) > 0.3).to(dtype) / 0.7


def _compare(ours, ref, leaves, atol=1e-5):
    for a, e in zip(ours, ref):
        np.testing.assert_allclose(a.detach().numpy(), e.detach().numpy(), atol=atol, rtol=1e-5)
    g = torch.Generator().manual_seed(3)
    weights = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in ours]
    live = [t for t in leaves if t is not None]
    ga = torch.autograd.grad(sum((o * w).sum() for o, w in zip(ours, weights)), live)
    ge = torch.autograd.grad(sum((o * w).sum() for o, w in zip(ref, weights)), live)
    for a, e in zip(ga, ge):
        np.testing.assert_allclose(a.numpy(), e.numpy(), atol=atol, rtol=1e-5)


def _custom_act(x):
    return x * torch.sigmoid(2.0 * x)  # not in the closed-form table: autograd derivative


CASES = [
    dict(),
    dict(mask=HOLES),
    dict(mask=HOLES, zero_output=True),
    dict(mask=HOLES, go_backwards=True),
    dict(rd="shared"),
    dict(rd="per_gate", mask=HOLES),
    dict(act="relu"),
    dict(act=_custom_act, ra="hard_sigmoid", mask=HOLES),
    dict(ra="hard_sigmoid", go_backwards=True),
    dict(act="relu", ra="hard_sigmoid", mask=HOLES),
    dict(no_bias=True, go_backwards=True, rd="per_gate"),
    dict(dp="per_gate", rd="per_gate", mask=HOLES),
    dict(dp="shared", go_backwards=True),
    dict(return_sequences=False, mask=HOLES),
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_lstm_matches_reference(case):
    x, k, rk, b, (h0, c0) = _tensors(4, None if case.get("no_bias") else (4 * U,), 2)
    M = _dropout_mask(case.get("rd"), 4)
    Mx = _dropout_mask(case.get("dp"), 4, u_=D, seed=8)
    act = activations.get(case.get("act", "tanh"))
    ra = activations.get(case.get("ra", "sigmoid"))
    rs = case.get("return_sequences", True)
    kw = dict(mask=case.get("mask"), go_backwards=case.get("go_backwards", False))
    out, h, c = manual_backward.lstm(
        x, k, rk, b, h0, c0, recurrent_dropout_mask=M, dropout_mask=Mx, activation=act,
        recurrent_activation=ra,
        return_sequences=rs, zero_output_for_mask=case.get("zero_output", False), **kw,
    )  # fmt: skip
    r_out, r_h, r_c = ref_lstm(
        x,
        k,
        rk,
        b,
        h0,
        c0,
        M=M,
        Mx=Mx,
        act=act,
        ra=ra,
        zero_output=case.get("zero_output", False),
        **kw,
    )
    if not rs:
        r_out = r_out[:, -1]
    _compare([out, h, c], [r_out, r_h, r_c], [x, k, rk, b, h0, c0])


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_gru_matches_reference(case, reset_after):
    bias_shape = (2, 3 * U) if reset_after else (3 * U,)
    x, k, rk, b, (h0,) = _tensors(3, None if case.get("no_bias") else bias_shape, 1)
    M = _dropout_mask(case.get("rd"), 3)
    Mx = _dropout_mask(case.get("dp"), 3, u_=D, seed=8)
    act = activations.get(case.get("act", "tanh"))
    ra = activations.get(case.get("ra", "sigmoid"))
    rs = case.get("return_sequences", True)
    kw = dict(mask=case.get("mask"), go_backwards=case.get("go_backwards", False))
    zo = case.get("zero_output", False)
    out, h = manual_backward.gru(
        x, k, rk, b, h0, recurrent_dropout_mask=M, dropout_mask=Mx, activation=act,
        recurrent_activation=ra, reset_after=reset_after, return_sequences=rs, zero_output_for_mask=zo, **kw,
    )  # fmt: skip
    r_out, r_h = ref_gru(
        x,
        k,
        rk,
        b,
        h0,
        M=M,
        Mx=Mx,
        act=act,
        ra=ra,
        reset_after=reset_after,
        zero_output=zo,
        **kw,
    )
    if not rs:
        r_out = r_out[:, -1]
    _compare([out, h], [r_out, r_h], [x, k, rk, b, h0])


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_simple_rnn_matches_reference(case):
    x, k, rk, b, (h0,) = _tensors(1, None if case.get("no_bias") else (U,), 1)
    M = _dropout_mask("shared" if case.get("rd") else None, 1)
    Mx = _dropout_mask("shared" if case.get("dp") else None, 1, u_=D, seed=8)
    act = activations.get(case.get("act", "tanh"))
    rs = case.get("return_sequences", True)
    kw = dict(mask=case.get("mask"), go_backwards=case.get("go_backwards", False))
    zo = case.get("zero_output", False)
    out, h = manual_backward.simple_rnn(
        x, k, rk, b, h0, recurrent_dropout_mask=M, dropout_mask=Mx, activation=act,
        return_sequences=rs,
        zero_output_for_mask=zo, **kw,
    )  # fmt: skip
    r_out, r_h = ref_simple(x, k, rk, b, h0, M=M, Mx=Mx, act=act, zero_output=zo, **kw)
    if not rs:
        r_out = r_out[:, -1]
    _compare([out, h], [r_out, r_h], [x, k, rk, b, h0])


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_v1", "simple"])
def test_gradcheck_float64(cell):
    """gradcheck the custom Function (holes, per-gate recurrent dropout, relu-free smooth
    activations so finite differences are valid)."""
    gates = {"lstm": 4, "gru": 3, "gru_v1": 3, "simple": 1}[cell]
    b_, t_, d_, u_ = 2, 4, 2, 3  # small: gradcheck perturbs every input element
    bias_shape = {"lstm": (4 * u_,), "gru": (2, 3 * u_), "gru_v1": (3 * u_,), "simple": (u_,)}
    n_states = 2 if cell == "lstm" else 1
    x, k, rk, b, states = _tensors(
        gates, bias_shape[cell], n_states, torch.float64, sizes=(b_, t_, d_, u_)
    )
    kind = "per_gate" if gates > 1 else "shared"
    M = _dropout_mask(kind, gates, torch.float64, b_, u_)
    holes = HOLES[:b_, :t_]  # a row with holes and a row with no valid step

    def fn(x, k, rk, b, *states):
        if cell == "lstm":
            return manual_backward.lstm(x, k, rk, b, *states, mask=holes, recurrent_dropout_mask=M)
        if cell == "simple":
            return manual_backward.simple_rnn(
                x, k, rk, b, *states, mask=holes, recurrent_dropout_mask=M
            )
        return manual_backward.gru(
            x, k, rk, b, *states, mask=holes, recurrent_dropout_mask=M,
            reset_after=cell == "gru", activation="softsign",
        )  # fmt: skip

    assert torch.autograd.gradcheck(fn, (x, k, rk, b, *states), eps=1e-6, atol=1e-6)


def _keras_compare(layer, ours_fn, x, mask, n_states):
    import keras

    out_k = layer(torch.as_tensor(x), mask=torch.as_tensor(mask))
    out_k = [keras.ops.convert_to_numpy(o) for o in out_k]
    k, rk, b = (torch.tensor(w) for w in layer.get_weights())
    zeros = [torch.zeros(x.shape[0], k.shape[1] // (rk.shape[1] // rk.shape[0]))] * n_states
    ours = ours_fn(torch.tensor(x), k, rk, b, *zeros, mask=torch.tensor(mask))
    for a, e in zip(ours, out_k):
        np.testing.assert_allclose(a.detach().numpy(), e, atol=1e-5)


def test_keras_parity_lstm_relu_with_holes():
    import keras

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D)).astype("float32")
    layer = keras.layers.LSTM(
        U, activation="relu", recurrent_activation="hard_sigmoid", return_sequences=True,
        return_state=True, bias_initializer="random_normal",
    )  # fmt: skip
    _keras_compare(
        layer,
        lambda *a, **kw: manual_backward.lstm(
            *a, activation="relu", recurrent_activation="hard_sigmoid", **kw
        ),
        x,
        HOLES.numpy(),
        2,
    )


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_parity_gru_with_holes(reset_after):
    import keras

    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, D)).astype("float32")
    layer = keras.layers.GRU(
        U, reset_after=reset_after, return_sequences=True, return_state=True,
        bias_initializer="random_normal", go_backwards=True,
    )  # fmt: skip
    _keras_compare(
        layer,
        lambda *a, **kw: manual_backward.gru(*a, reset_after=reset_after, go_backwards=True, **kw),
        x,
        HOLES.numpy(),
        1,
    )


def test_golden_values_constant_weights():
    """Hand-computed: kernel = 0.1, recurrent_kernel = 0.2, bias = 0, x = 1, one step then a
    masked step: z = 0.1 for every gate, c = σ(.1) tanh(.1), h = σ(.1) tanh(c)."""
    x = torch.ones(1, 2, 1)
    k, rk = torch.full((1, 4), 0.1), torch.full((1, 4), 0.2)
    out, h, c = manual_backward.lstm(
        x, k, rk, torch.zeros(4), torch.zeros(1, 1), torch.zeros(1, 1),
        mask=torch.tensor([[True, False]]),
    )  # fmt: skip
    s = 1 / (1 + np.exp(-0.1))
    c1 = s * np.tanh(0.1)
    h1 = s * np.tanh(c1)
    np.testing.assert_allclose(out.detach().numpy().ravel(), [h1, h1], rtol=1e-6)
    np.testing.assert_allclose(c.detach().numpy().ravel(), [c1], rtol=1e-6)


def test_bad_arguments_raise_before_running():
    x, k, rk, b, (h0, c0) = _tensors(4, (4 * U,), 2)
    with pytest.raises(ValueError, match="manual_backward.lstm: `kernel` must have shape"):
        manual_backward.lstm(x, k[:, :-1], rk, b, h0, c0)
    with pytest.raises(ValueError, match="`recurrent_dropout_mask` must have shape"):
        manual_backward.lstm(x, k, rk, b, h0, c0, recurrent_dropout_mask=torch.ones(2, B, U))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        manual_backward.lstm(x, k, rk, b, h0, c0, mask=torch.ones(B, T + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"`dropout_mask` must have shape \(3, 4\) or \(4, 3, 4\)"):
        manual_backward.lstm(x, k, rk, b, h0, c0, dropout_mask=torch.ones(B, D + 1))
    with pytest.raises(ValueError, match="elementwise"):
        manual_backward.lstm(x, k, rk, b, h0, c0, activation="softmax")
    with pytest.raises(ValueError, match="reset_after=False"):
        manual_backward.gru(
            x, k[:, : 3 * U], rk[:, : 3 * U], torch.zeros(2, 3 * U), h0, reset_after=False
        )
    assert manual_backward.can_run({"cell": "lstm", "activation": "softmax"})[0] is False
    assert manual_backward.can_run({"cell": "gru", "activation": "relu"}) == (True, "")
