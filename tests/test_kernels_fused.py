"""The fused _VF kernels (rnnkit.kernels.fused), weight maps and mask analysis: against the
plain per-step reference loop (Keras semantics), torch's nn.LSTM/nn.GRU and Keras 3."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_kernels_manual_backward import _compare, ref_gru, ref_lstm, ref_simple

from rnnkit.kernels import fused, manual_backward, masks, weights

B, T, D, U = 4, 6, 3, 5


def _mask(rows):
    return torch.tensor(rows, dtype=torch.bool)


RIGHT = _mask([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
LEFT = _mask([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1], [0, 1, 1, 1, 1, 1]])
BOTH = _mask([[0, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
HOLES = _mask([[1, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])


def test_analyze_mask_kinds():
    assert masks.analyze_mask(None).kind == "none"
    assert masks.analyze_mask(torch.ones(2, 3, dtype=torch.bool)).kind == "none"
    info = masks.analyze_mask(RIGHT)
    assert info.kind == "right"
    assert info.lengths.tolist() == [6, 3, 1, 5]
    info = masks.analyze_mask(LEFT)
    assert info.kind == "left"
    assert info.starts.tolist() == [2, 0, 5, 1]
    info = masks.analyze_mask(BOTH)
    assert info.kind == "contiguous"
    assert info.starts.tolist() == [1, 0, 0, 0] and info.lengths.tolist() == [2, 6, 0, 2]
    assert masks.analyze_mask(HOLES).kind == "holes" and not masks.analyze_mask(HOLES).fusable
    # go_backwards turns right padding into left padding.
    assert masks.analyze_mask(RIGHT.flip(1)).kind == "left"


def test_to_front_and_from_front_values():
    y = torch.arange(1.0, 5.0).view(1, 4, 1)  # outputs 1, 2, 3, 4 at times 0..3
    starts, lengths = torch.tensor([1]), torch.tensor([2])
    np.testing.assert_array_equal(masks.to_front(y, starts).ravel().numpy(), [2, 3, 4, 4])
    # block of 2 moved back to start at t=1: zeros before, then 1, 2, then 2 repeated.
    np.testing.assert_array_equal(
        masks.from_front(y, starts, lengths).ravel().numpy(), [0, 1, 2, 2]
    )
    np.testing.assert_array_equal(
        masks.from_front(y, starts, lengths, zero_output_for_mask=True).ravel().numpy(),
        [0, 1, 2, 0],
    )
    empty = masks.from_front(y, torch.tensor([0]), torch.tensor([0]))
    np.testing.assert_array_equal(empty.ravel().numpy(), [0, 0, 0, 0])


def test_lstm_weight_map_is_views_and_matches_nn_lstm():
    torch.manual_seed(1)
    ref = torch.nn.LSTM(D, U, batch_first=True)
    k, rk, b = weights.lstm_weights_from_torch(
        ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0
    )
    params = weights.lstm_weights(k, rk, b)
    assert params[0].data_ptr() == k.data_ptr() and params[1].data_ptr() == rk.data_ptr()
    assert params[2] is b and not params[3].any()
    x = torch.randn(B, T, D)
    expected, (h, c) = ref(x)
    out, h2, c2 = fused.lstm(x, k, rk, b, torch.zeros(B, U), torch.zeros(B, U))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(c2.detach().numpy(), c[0].detach().numpy(), atol=1e-6)


def test_gru_weight_map_round_trip_and_matches_nn_gru():
    torch.manual_seed(2)
    ref = torch.nn.GRU(D, U, batch_first=True)
    k, rk, b = weights.gru_weights_from_torch(
        ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0
    )
    assert b.shape == (2, 3 * U)
    # Keras gate z is torch's second block.
    np.testing.assert_array_equal(k[:, :U].numpy(), ref.weight_ih_l0[U : 2 * U].t().detach())
    back = weights.gru_weights(k, rk, b)
    for a, e in zip(back, [ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0]):
        np.testing.assert_array_equal(a.detach().numpy(), e.detach().numpy())
    x = torch.randn(B, T, D)
    expected, _ = ref(x)
    out, _ = fused.gru(x, k, rk, b, torch.zeros(B, U))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-6)


def test_weight_map_errors_name_argument():
    with pytest.raises(ValueError, match=r"gru_weights: `bias` must have shape \(2, 15\)"):
        weights.gru_weights(torch.zeros(D, 3 * U), torch.zeros(U, 3 * U), torch.zeros(3 * U))
    with pytest.raises(ValueError, match="lstm_weights: `kernel` must have shape"):
        weights.lstm_weights(torch.zeros(D, 3 * U), torch.zeros(U, 4 * U), None)


def _leaves(gates, bias_shape, n_states, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return (torch.randn(*s, generator=g) * 0.5).requires_grad_(True)

    return (
        r(B, T, D),
        r(D, gates * U),
        r(U, gates * U),
        (r(*bias_shape) if bias_shape else None),
        [r(B, U) for _ in range(n_states)],
    )


CASES = [
    dict(),
    dict(mask=RIGHT),
    dict(mask=LEFT),
    dict(mask=BOTH),
    dict(mask=RIGHT, go_backwards=True),
    dict(mask=LEFT, zero_output=True),
    dict(mask=BOTH, return_sequences=False),
    dict(mask=RIGHT, no_bias=True),
    dict(go_backwards=True, return_sequences=False),
]
IDS = [str(i) for i in range(len(CASES))]


def _kw(case):
    return dict(mask=case.get("mask"), go_backwards=case.get("go_backwards", False))


def _finish(ref_out, case):
    return ref_out if case.get("return_sequences", True) else ref_out[:, -1]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fused_lstm_equals_reference_loop(case):
    x, k, rk, b, (h0, c0) = _leaves(4, None if case.get("no_bias") else (4 * U,), 2)
    zo, rs = case.get("zero_output", False), case.get("return_sequences", True)
    out, h, c = fused.lstm(
        x, k, rk, b, h0, c0, return_sequences=rs, zero_output_for_mask=zo, **_kw(case)
    )
    r_out, r_h, r_c = ref_lstm(x, k, rk, b, h0, c0, zero_output=zo, **_kw(case))
    _compare([out, h, c], [_finish(r_out, case), r_h, r_c], [x, k, rk, b, h0, c0])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fused_gru_equals_reference_loop(case):
    x, k, rk, b, (h0,) = _leaves(3, None if case.get("no_bias") else (2, 3 * U), 1)
    zo, rs = case.get("zero_output", False), case.get("return_sequences", True)
    out, h = fused.gru(x, k, rk, b, h0, return_sequences=rs, zero_output_for_mask=zo, **_kw(case))
    r_out, r_h = ref_gru(x, k, rk, b, h0, zero_output=zo, **_kw(case))
    _compare([out, h], [_finish(r_out, case), r_h], [x, k, rk, b, h0])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fused_simple_rnn_equals_reference_loop(case, activation):
    x, k, rk, b, (h0,) = _leaves(1, None if case.get("no_bias") else (U,), 1)
    zo, rs = case.get("zero_output", False), case.get("return_sequences", True)
    out, h = fused.simple_rnn(
        x, k, rk, b, h0, activation=activation, return_sequences=rs, zero_output_for_mask=zo,
        **_kw(case),
    )  # fmt: skip
    act = torch.tanh if activation == "tanh" else torch.relu
    r_out, r_h = ref_simple(x, k, rk, b, h0, act=act, zero_output=zo, **_kw(case))
    _compare([out, h], [_finish(r_out, case), r_h], [x, k, rk, b, h0])


def test_fused_equals_manual_backward_on_right_padding():
    """The two fast kernels agree where both apply."""
    x, k, rk, b, (h0, c0) = _leaves(4, (4 * U,), 2, seed=5)
    a = fused.lstm(x, k, rk, b, h0, c0, mask=RIGHT)
    e = manual_backward.lstm(x, k, rk, b, h0, c0, mask=RIGHT)
    _compare(list(a), list(e), [x, k, rk, b, h0, c0])


def test_fused_rejects_holes_and_bad_shapes():
    x, k, rk, b, (h0, c0) = _leaves(4, (4 * U,), 2)
    with pytest.raises(ValueError, match="fused.lstm: the fused kernel needs"):
        fused.lstm(x, k, rk, b, h0, c0, mask=HOLES)
    with pytest.raises(ValueError, match=r"fused.lstm: `mask` must have shape \(batch, time\)"):
        fused.lstm(x, k, rk, b, h0, c0, mask=HOLES[:, :3])
    with pytest.raises(ValueError, match="initial state 1 must have shape"):
        fused.lstm(x, k, rk, b, h0, c0[:2])
    with pytest.raises(ValueError, match="'tanh' or 'relu'"):
        fused.simple_rnn(x, k[:, :U], rk[:, :U], None, h0, activation="elu")


def test_can_fuse_reasons():
    ok = {"cell": "lstm", "activation": "tanh", "recurrent_activation": "sigmoid"}
    assert fused.can_fuse(ok, None, "cpu") == (True, "")
    assert fused.can_fuse(ok, RIGHT, "cuda")[0]
    assert fused.can_fuse(ok, LEFT, torch.device("cpu"))[0]
    assert fused.can_fuse(dict(ok, activation=torch.tanh, use_bias=False), None, "cpu")[0]
    ok_, why = fused.can_fuse(ok, HOLES, "cpu")
    assert not ok_ and "holes" in why
    ok_, why = fused.can_fuse(dict(ok, activation="relu"), None, "cpu")
    assert not ok_ and "activation 'relu'" in why
    ok_, why = fused.can_fuse(dict(ok, recurrent_activation="hard_sigmoid"), None, "cpu")
    assert not ok_ and "recurrent_activation" in why
    ok_, why = fused.can_fuse(dict(ok, recurrent_dropout=0.2), None, "cpu")
    assert not ok_ and "recurrent_dropout" in why
    assert fused.can_fuse(dict(ok, recurrent_dropout=0.2, training=False), None, "cpu")[0]
    ok_, why = fused.can_fuse({"cell": "gru", "reset_after": False}, None, "cpu")
    assert not ok_ and "reset_after=False" in why
    assert fused.can_fuse({"cell": "simple_rnn", "activation": "relu"}, None, "cpu")[0]
    assert not fused.can_fuse({"cell": "simple_rnn", "activation": "elu"}, None, "cpu")[0]
    assert not fused.can_fuse(ok, None, "meta")[0]
    assert not fused.can_fuse({"cell": "conv_lstm"}, None, "cpu")[0]


@pytest.mark.parametrize("go_backwards", [False, True])
def test_keras_parity_lstm_right_padded(go_backwards):
    import keras

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D)).astype("float32")
    layer = keras.layers.LSTM(
        U, return_sequences=True, return_state=True, bias_initializer="random_normal",
        go_backwards=go_backwards,
    )  # fmt: skip
    expected = layer(torch.as_tensor(x), mask=RIGHT)
    k, rk, b = (torch.tensor(w) for w in layer.get_weights())
    z = torch.zeros(B, U)
    ours = fused.lstm(torch.tensor(x), k, rk, b, z, z, mask=RIGHT, go_backwards=go_backwards)
    for a, e in zip(ours, expected):
        np.testing.assert_allclose(a.detach().numpy(), keras.ops.convert_to_numpy(e), atol=1e-5)


def _flip_if(t, flip):
    return t.flip(1) if flip else t


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("mask", [None, RIGHT, LEFT, BOTH], ids=["none", "right", "left", "both"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_equals_two_directions(cell, mask, return_sequences):
    """One _VF call for both directions == the forward layer + the go_backwards layer, with
    Keras Bidirectional's zero_output_for_mask = return_sequences and the backward sequence
    reversed back."""
    gates, bias_shape = (4, (4 * U,)) if cell == "lstm" else (3, (2, 3 * U))
    n = 2 if cell == "lstm" else 1
    x, k, rk, b, sf = _leaves(gates, bias_shape, n, seed=1)
    _, k2, rk2, b2, sb = _leaves(gates, bias_shape, n, seed=2)
    rs = return_sequences
    fo, bo, fs, bs = fused.bidirectional(
        cell, x, (k, rk, b), (k2, rk2, b2), sf, sb, mask=mask, return_sequences=rs
    )
    fn = fused.lstm if cell == "lstm" else fused.gru
    kw = dict(mask=mask, return_sequences=rs, zero_output_for_mask=rs)
    ref_f = fn(x, k, rk, b, *sf, **kw)
    ref_b = fn(x, k2, rk2, b2, *sb, go_backwards=True, **kw)
    ours = [fo, bo, *fs, *bs]
    ref = [ref_f[0], _flip_if(ref_b[0], rs), *ref_f[1:], *ref_b[1:]]
    _compare(ours, ref, [x, k, rk, b, k2, rk2, b2, *sf, *sb])


def test_bidirectional_rejects_mixed_bias():
    x, k, rk, b, (h0,) = _leaves(3, (2, 3 * U), 1)
    with pytest.raises(ValueError, match="both directions must have a bias"):
        fused.bidirectional("gru", x, (k, rk, b), (k, rk, None), [h0], [h0])


def test_keras_parity_gru_left_padded():
    """Keras' generic loop on a left-padded mask (zeros before the first valid step) equals
    the fused GRU's flip-to-the-front path."""
    import keras

    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, T, D)).astype("float32")
    layer = keras.layers.GRU(
        U, return_sequences=True, return_state=True, bias_initializer="random_normal"
    )
    expected = layer(torch.as_tensor(x), mask=LEFT)
    k, rk, b = (torch.tensor(w) for w in layer.get_weights())
    ours = fused.gru(torch.tensor(x), k, rk, b, torch.zeros(B, U), mask=LEFT)
    for a, e in zip(ours, expected):
        np.testing.assert_allclose(a.detach().numpy(), keras.ops.convert_to_numpy(e), atol=1e-5)


def test_cudnn_weight_layout_warning_is_the_only_one_silenced():
    """On CUDA, cuDNN warns at every call that our mapped weights are not one flat buffer; that
    message alone is silenced around the call (tested with a stand-in, no GPU needed)."""
    import warnings
    from types import SimpleNamespace

    from rnnkit.kernels.fused import _call_vf

    on_cuda = SimpleNamespace(device=SimpleNamespace(type="cuda"))

    def kernel(message):
        def fn(inputs):
            warnings.warn(message, UserWarning, stacklevel=1)
            return "ran"

        return fn

    layout = (
        "RNN module weights are not part of single contiguous chunk of memory. This means they "
        "need to be compacted at every call, possibly greatly increasing memory usage."
    )
    assert _call_vf(kernel(layout), on_cuda) == "ran"
    with pytest.warns(UserWarning, match="something else"):
        _call_vf(kernel("something else"), on_cuda)
    on_cpu = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    with pytest.warns(UserWarning, match="RNN module weights"):
        _call_vf(kernel(layout), on_cpu)
