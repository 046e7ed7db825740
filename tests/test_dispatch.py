"""Kernel dispatch: which kernel runs a call and why, and fused == generic loop.

The generic loop is the oracle (``use_cudnn=False``); the fused ``_VF`` kernel
(``use_cudnn="auto"``) must agree with it within 1e-5 (float32) for outputs, final states and
the gradients of inputs, initial states and weights, for every configuration it accepts.
"""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.kernels import choose, dispatch

RNG = np.random.default_rng(1)
X = RNG.standard_normal((3, 5, 4)).astype("float32")
MASKS = {
    None: None,
    "right": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool),
    "left": np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]], bool),
    "empty_row": np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool),
}
HOLES = np.array([[1, 0, 1, 0, 1], [1, 1, 0, 1, 1], [0, 1, 1, 0, 1]], bool)
KINDS = {
    "lstm": (layers.LSTM, {}),
    "gru": (layers.GRU, {}),
    "simple_rnn": (layers.SimpleRNN, {}),
    "simple_rnn_relu": (layers.SimpleRNN, {"activation": "relu"}),
}


def choice_of(layer, x=X, mask=None, training=False):
    layer(x, mask=mask, training=training)
    return layer.last_kernel_choice


# ------------------------------------------------------------------ decisions and reasons
@pytest.mark.parametrize(
    "make, mask, training, name, reason",
    [
        (lambda: layers.LSTM(3), None, False, "fused", "fused"),
        (lambda: layers.GRU(3), None, False, "manual_backward", "a GRU on CPU"),
        (lambda: layers.GRU(3, use_cudnn=True), None, False, "fused", "fused"),
        (lambda: layers.SimpleRNN(3), None, False, "fused", "fused"),
        (lambda: layers.SimpleRNN(3, activation="relu"), None, False, "fused", "fused"),
        (lambda: layers.LSTM(3, use_bias=False), None, False, "fused", "fused"),
        (lambda: layers.LSTM(3, dropout=0.3), None, True, "fused", "fused"),
        (lambda: layers.LSTM(3, go_backwards=True, stateful=True), None, False, "fused", ""),
        (lambda: layers.LSTM(3), MASKS["right"], False, "fused", "fused"),
        (lambda: layers.GRU(3, use_cudnn=True), MASKS["left"], False, "fused", "fused"),
        # recurrent dropout only changes the recurrence while training
        (lambda: layers.LSTM(3, recurrent_dropout=0.2), None, False, "fused", "fused"),
        (
            lambda: layers.LSTM(3, recurrent_dropout=0.2),
            None,
            True,
            "manual_backward",
            "recurrent_dropout > 0 in training",
        ),
        (lambda: layers.LSTM(3), HOLES, False, "manual_backward", "the mask has holes"),
        (
            lambda: layers.LSTM(3, activation="relu"),
            None,
            False,
            "manual_backward",
            "'relu' is not tanh",
        ),
        (
            lambda: layers.GRU(3, recurrent_activation="hard_sigmoid"),
            None,
            False,
            "manual_backward",
            "recurrent_activation 'hard_sigmoid' is not sigmoid",
        ),
        (
            lambda: layers.SimpleRNN(3, activation="sigmoid"),
            None,
            False,
            "manual_backward",
            "not tanh or relu",
        ),
        (
            lambda: layers.GRU(3, reset_after=False),
            None,
            False,
            "manual_backward",
            "reset_after=False",
        ),
        (lambda: layers.LSTM(3, unroll=True), None, False, "generic", "unroll=True"),
        (lambda: layers.LSTM(3, use_cudnn=False), None, False, "generic", "use_cudnn=False"),
        (
            lambda: layers.RNN(layers.LSTMCell(3)),
            None,
            False,
            "manual_backward",
            "a plain RNN(cell) runs no fused kernel",
        ),
        (
            lambda: layers.RNN(layers.LSTMCell(3), unroll=True),
            None,
            False,
            "generic",
            "unroll=True",
        ),
        (
            lambda: layers.RNN([layers.LSTMCell(3), layers.LSTMCell(3)]),
            None,
            False,
            "generic",
            "a plain RNN(cell) runs the generic loop",
        ),
    ],
)
def test_decision_grid(make, mask, training, name, reason):
    choice = choice_of(make(), mask=mask, training=training)
    assert choice.name == name
    assert reason in choice.reason
    if name == "manual_backward":
        # The reason also says where the time loop runs (kernels.native's check).
        assert "(its time loop in C, kernels.native)" in choice.reason or (
            "(its time loop in Python: the native loop runs LSTM and GRU only" in choice.reason
        )
        if not reason.startswith("a plain RNN(cell)"):
            assert choice.reason.startswith("use_cudnn='auto': ")
            assert " runs it (its time loop in" in choice.reason


def test_select_is_a_pure_function_of_config_inputs_and_mask():
    layer = layers.LSTM(3, recurrent_dropout=0.5)
    layer(X)
    x = torch.as_tensor(X)

    def select(layer, inputs, mask, training=False):
        return choose(layer.kernel_spec(), layer.kernel_request(), inputs, mask, training)

    assert select(layer, x, None, training=False).name == "fused"
    assert select(layer, x, None, training=True).name == "manual_backward"
    assert select(layer, x, torch.as_tensor(HOLES), training=False).name == "manual_backward"
    assert select(layer, x, torch.as_tensor(MASKS["right"]), training=False).name == "fused"
    assert select(layer, x.double(), None).reason.endswith(
        "inputs of dtype torch.float64 with weights of dtype torch.float32"
    )
    assert select(layer, x.long(), None).name == "generic"


@pytest.mark.parametrize(
    "make, mask, message",
    [
        (lambda: layers.LSTM(3, activation="relu", use_cudnn=True), None, "'relu' is not tanh"),
        (lambda: layers.GRU(3, reset_after=False, use_cudnn=True), None, "reset_after=False"),
        (lambda: layers.LSTM(3, use_cudnn=True), HOLES, "holes"),
        (lambda: layers.LSTM(3, unroll=True, use_cudnn=True), None, "unroll=True"),
    ],
)
def test_use_cudnn_true_raises_with_the_reason(make, mask, message):
    layer = make()
    with pytest.raises(ValueError, match="use_cudnn=True was requested") as info:
        layer(X, mask=mask)
    assert message in str(info.value)
    assert f"'{layer.name}'" in str(info.value)


def test_use_cudnn_true_runs_fused_when_it_can():
    layer = layers.GRU(3, use_cudnn=True)
    layer(X, mask=MASKS["right"])
    assert layer.last_kernel == "fused"


def test_overridden_cell_step_is_never_fused_nor_projected():
    class DoubledLSTMCell(layers.LSTMCell):
        def call(self, inputs, states, training=None):
            h, new_states = super().call(inputs, states, training=training)
            return 2 * h, new_states

    layer = layers.RNN(DoubledLSTMCell(3), return_sequences=True)
    out = layer(X)
    plain = layers.RNN(layers.LSTMCell(3), return_sequences=True)
    plain(X)
    plain.set_weights(layer.get_weights())
    torch.testing.assert_close(out, 2 * plain(X))
    assert layer.cell.kernel_spec() is None


# ------------------------------------------------------------------ fused == generic loop
def _pair(kind, fused=True, **kwargs):
    """A layer on the default kernel and one on the generic loop, same weights. ``fused``: a
    GRU asks for the fused kernel (with "auto" a GRU on CPU runs the native loop)."""
    cls, extra = KINDS[kind]
    ask = {"use_cudnn": True} if fused and kind == "gru" else {}
    fused_layer = cls(3, **extra, **ask, **kwargs)
    generic_layer = cls(3, **extra, use_cudnn=False, **kwargs)
    fused_layer(X)
    generic_layer(X)
    generic_layer.set_weights(fused_layer.get_weights())
    return fused_layer, generic_layer


def _run_with_grads(layer, x, states, mask, training=False):
    x = torch.tensor(x, requires_grad=True)
    states = [torch.tensor(s, requires_grad=True) for s in states]
    result = rnnkit.tree.flatten(layer(x, initial_state=states, mask=mask, training=training))
    gen = torch.Generator().manual_seed(3)
    loss = sum((r * torch.randn(r.shape, generator=gen)).sum() for r in result)
    weights = list(layer.trainable_weights)
    grads = torch.autograd.grad(loss, [x, *states, *weights])
    return [r.detach() for r in result], list(grads)


def _assert_close_lists(a, b, atol=1e-5):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        np.testing.assert_allclose(u.numpy(), v.numpy(), atol=atol, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_equals_generic_with_gradients(kind, mask_name, go_backwards, return_sequences):
    fused_layer, generic_layer = _pair(
        kind, go_backwards=go_backwards, return_sequences=return_sequences, return_state=True
    )
    n_states = 2 if kind == "lstm" else 1
    states = [RNG.standard_normal((3, 3)).astype("float32") for _ in range(n_states)]
    mask = MASKS[mask_name]
    out_f, grads_f = _run_with_grads(fused_layer, X, states, mask)
    out_g, grads_g = _run_with_grads(generic_layer, X, states, mask)
    assert fused_layer.last_kernel == "fused" and generic_layer.last_kernel == "generic"
    _assert_close_lists(out_f, out_g)
    _assert_close_lists(grads_f, grads_g)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fused_equals_generic_zero_output_for_mask_and_time_major(kind):
    fused_layer, generic_layer = _pair(kind, return_sequences=True, zero_output_for_mask=True)
    states = [np.zeros((3, 3), "float32")] * (2 if kind == "lstm" else 1)
    for mask in (MASKS["right"], MASKS["left"]):
        out_f, grads_f = _run_with_grads(fused_layer, X, states, mask)
        out_g, grads_g = _run_with_grads(generic_layer, X, states, mask)
        assert fused_layer.last_kernel == "fused"
        _assert_close_lists(out_f, out_g)
        _assert_close_lists(grads_f, grads_g)
        masked = ~torch.as_tensor(mask)
        assert float(out_f[0][masked].abs().sum()) == 0.0  # masked steps: zeros

    fused_tm, generic_tm = _pair(kind, return_sequences=True, time_major=True)
    x_tm = np.ascontiguousarray(X.transpose(1, 0, 2))
    mask_tm = MASKS["right"].T
    out_f, grads_f = _run_with_grads(fused_tm, x_tm, states, mask_tm)
    out_g, grads_g = _run_with_grads(generic_tm, x_tm, states, mask_tm)
    assert fused_tm.last_kernel == "fused"
    _assert_close_lists(out_f, out_g)
    _assert_close_lists(grads_f, grads_g)


def test_fused_equals_generic_use_bias_false():
    fused_layer, generic_layer = _pair("gru", use_bias=False, return_sequences=True)
    out_f, grads_f = _run_with_grads(fused_layer, X, [np.ones((3, 3), "float32")], None)
    out_g, grads_g = _run_with_grads(generic_layer, X, [np.ones((3, 3), "float32")], None)
    _assert_close_lists(out_f, out_g)
    _assert_close_lists(grads_f, grads_g)


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
def test_fused_equals_generic_stateful(kind):
    fused_layer, generic_layer = _pair(kind, stateful=True, return_sequences=True)
    fused_layer.reset_states()
    generic_layer.reset_states()
    for mask in (None, MASKS["right"], None):
        a = fused_layer(X, mask=mask)
        b = generic_layer(X, mask=mask)
        assert fused_layer.last_kernel == "fused"
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5, rtol=0)
        for s, t in zip(fused_layer.states, generic_layer.states):
            np.testing.assert_allclose(s.numpy(), t.numpy(), atol=1e-5, rtol=0)


def test_fused_equals_generic_with_input_dropout_in_training():
    """Both paths draw the cell's one (N, H_in) input mask from the seeded generator.
    (use_cudnn=True: with "auto", a padded batch in training on CPU runs the manual-backward kernel.)"""
    options = dict(dropout=0.5, seed=7, return_sequences=True)
    fused_layer, generic_layer = (
        layers.LSTM(3, use_cudnn=True, **options),
        layers.LSTM(3, use_cudnn=False, **options),
    )
    fused_layer(X)
    generic_layer(X)
    generic_layer.set_weights(fused_layer.get_weights())
    states = [np.zeros((3, 3), "float32")] * 2
    out_f, grads_f = _run_with_grads(fused_layer, X, states, MASKS["left"], training=True)
    out_g, grads_g = _run_with_grads(generic_layer, X, states, MASKS["left"], training=True)
    assert fused_layer.last_kernel == "fused"
    _assert_close_lists(out_f, out_g)
    _assert_close_lists(grads_f, grads_g)
    # dropout really was applied: inference differs
    inference = fused_layer(X, mask=MASKS["left"]).detach()
    assert not torch.allclose(inference, out_f[0], atol=1e-3)


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_fused_equals_generic_bidirectional(merge_mode):
    fused_bi = layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode=merge_mode)
    generic_bi = layers.Bidirectional(
        layers.LSTM(3, return_sequences=True, use_cudnn=False), merge_mode=merge_mode
    )
    fused_bi(X)
    generic_bi(X)
    generic_bi.set_weights(fused_bi.get_weights())
    for mask in (None, MASKS["right"], MASKS["left"]):
        results = []
        for layer in (fused_bi, generic_bi):
            x = torch.tensor(X, requires_grad=True)
            out = layer(x, mask=mask)
            grads = torch.autograd.grad((out * out).sum(), [x, *layer.trainable_weights])
            results.append([out.detach(), *grads])
        assert fused_bi.last_kernel == "fused"  # both directions' kernel
        assert generic_bi.last_kernel == "generic"
        _assert_close_lists(results[0], results[1])


# ------------------------------------------------------------------ manual-backward == generic loop
NOCLIFT_CASES = {
    "lstm_relu": (layers.LSTM, {"activation": "relu"}),
    "lstm_hard_sigmoid": (layers.LSTM, {"recurrent_activation": "hard_sigmoid"}),
    "lstm_holes": (layers.LSTM, {}),
    "gru_reset_before": (layers.GRU, {"reset_after": False}),
    "gru_holes": (layers.GRU, {}),
    "simple_rnn_sigmoid": (layers.SimpleRNN, {"activation": "sigmoid"}),
}


@pytest.mark.parametrize("case", list(NOCLIFT_CASES))
@pytest.mark.parametrize("mask", [None, HOLES, MASKS["left"]])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_manual_backward_equals_generic_with_gradients(case, mask, go_backwards):
    cls, extra = NOCLIFT_CASES[case]
    if case.endswith("holes"):
        mask = HOLES  # default activations: only a mask with holes keeps them off "fused"
    options = dict(return_sequences=True, return_state=True, go_backwards=go_backwards, **extra)
    fast, generic = cls(3, **options), cls(3, use_cudnn=False, **options)
    fast(X)
    generic(X)
    generic.set_weights(fast.get_weights())
    states = [
        RNG.standard_normal((3, 3)).astype("float32") for _ in range(2 if cls is layers.LSTM else 1)
    ]
    out_f, grads_f = _run_with_grads(fast, X, states, mask)
    out_g, grads_g = _run_with_grads(generic, X, states, mask)
    assert fast.last_kernel == "manual_backward" and generic.last_kernel == "generic"
    _assert_close_lists(out_f, out_g)
    _assert_close_lists(grads_f, grads_g)


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_manual_backward_equals_generic_with_recurrent_dropout_in_training(cls):
    """Seeded cells draw the same input and recurrent masks on both paths."""
    options = dict(dropout=0.3, recurrent_dropout=0.4, seed=5, return_sequences=True)
    fast, generic = cls(3, **options), cls(3, use_cudnn=False, **options)
    fast(X)
    generic(X)
    generic.set_weights(fast.get_weights())
    states = [np.zeros((3, 3), "float32")] * (2 if cls is layers.LSTM else 1)
    out_f, grads_f = _run_with_grads(fast, X, states, MASKS["right"], training=True)
    out_g, grads_g = _run_with_grads(generic, X, states, MASKS["right"], training=True)
    assert fast.last_kernel == "manual_backward"
    _assert_close_lists(out_f, out_g)
    _assert_close_lists(grads_f, grads_g)
    with pytest.raises(ValueError, match="recurrent_dropout > 0 in training"):
        cls(3, use_cudnn=True, **options)(X, training=True)


def test_custom_activation_callable_stays_on_the_generic_loop():
    layer = layers.LSTM(3, activation=lambda x: torch.tanh(x) * 0.5)
    layer(X)
    assert layer.last_kernel == "generic"
    assert "custom callable" in layer.last_kernel_choice.reason
    assert "is not tanh" in layer.last_kernel_choice.reason


# ------------------------------------------------------------------ the lean generic loop
@pytest.mark.parametrize("cell_cls", [layers.LSTMCell, layers.GRUCell, layers.SimpleRNNCell])
@pytest.mark.parametrize("mask", [None, HOLES])
def test_lean_loop_equals_per_step_cell_calls(cell_cls, mask):
    """RNN(cell) projects every input at once; a hand-written loop over cell.call agrees."""
    extra = {"reset_after": False} if cell_cls is layers.GRUCell else {}
    layer = layers.RNN(
        cell_cls(3, **extra), return_sequences=True, return_state=True, go_backwards=True
    )
    seq, *finals = layer(X, mask=mask)
    cell = layer.cell
    x = torch.as_tensor(X)
    states = [torch.zeros(3, 3) for _ in finals]
    output = torch.zeros(3, 3)
    outputs = []
    for t in reversed(range(X.shape[1])):
        new_output, new_states = cell.call(x[:, t], list(states))
        keep = (
            torch.ones(3, 1, dtype=torch.bool)
            if mask is None
            else torch.as_tensor(mask[:, t : t + 1])
        )
        output = torch.where(keep, new_output, output)
        states = [torch.where(keep, s, p) for s, p in zip(new_states, states)]
        outputs.append(output)
    torch.testing.assert_close(seq, torch.stack(outputs, 1), atol=1e-6, rtol=0)
    for a, b in zip(finals, states):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell_cls", [layers.LSTMCell, layers.GRUCell, layers.SimpleRNNCell])
def test_lean_loop_gradcheck_float64(cell_cls):
    layer = layers.RNN(cell_cls(2, dtype="float64"), return_sequences=True, dtype="float64")
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    layer(x)
    assert torch.autograd.gradcheck(lambda inp: layer(inp, mask=mask), (x,))


def test_overridden_initial_state_of_a_builtin_cell_is_used():
    class OnesLSTMCell(layers.LSTMCell):
        def get_initial_state(self, batch_size=None, dtype=None):
            return [torch.ones(batch_size, self.units), torch.ones(batch_size, self.units)]

    layer = layers.RNN(OnesLSTMCell(3), return_state=True)
    _, h, c = layer(X)
    reference = layers.RNN(layers.LSTMCell(3), return_state=True)
    reference(X)
    reference.set_weights(layer.get_weights())
    _, h_ref, c_ref = reference(X, initial_state=[torch.ones(3, 3), torch.ones(3, 3)])
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
    _, h_zero, _ = reference(X)
    assert not torch.allclose(h, h_zero)


def test_a_masked_training_call_on_cpu_decides_without_analysing_the_mask(monkeypatch):
    """Padding or holes, a CPU training call with a masked step runs the manual-backward
    kernel: one reduction of the mask decides; the analysis (nine ops) is not run. A mask
    that keeps every step still runs the fused kernel."""
    fast, generic = _pair("lstm", fused=False, return_sequences=True)
    states = [np.zeros((3, 3), "float32")] * 2

    def no_analysis(*args, **kwargs):
        raise AssertionError("the mask was analysed")

    for mask in (MASKS["right"], HOLES):
        with monkeypatch.context() as patch:
            patch.setattr(dispatch, "analyze_mask", no_analysis)
            out_f, grads_f = _run_with_grads(fast, X, states, mask, training=True)
        assert fast.last_kernel == "manual_backward"
        assert "masked steps" in fast.last_kernel_choice.reason
        out_g, grads_g = _run_with_grads(generic, X, states, mask, training=True)
        _assert_close_lists(out_f, out_g)
        _assert_close_lists(grads_f, grads_g)
    _run_with_grads(fast, X, states, np.ones((3, 5), bool), training=True)
    assert fast.last_kernel == "fused"


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
def test_padded_batch_in_training_on_cpu_runs_manual_backward(kind):
    """The fused kernel would pack the sequence, whose CPU backward is slow (RESULTS.md):
    "auto" runs the manual-backward kernel for training calls; inference and use_cudnn=True stay
    fused; the results equal the generic loop's."""
    fast, generic = _pair(kind, fused=False, return_sequences=True)
    states = [np.zeros((3, 3), "float32")] * (2 if kind == "lstm" else 1)
    for mask in (MASKS["right"], MASKS["left"]):
        out_f, grads_f = _run_with_grads(fast, X, states, mask, training=True)
        assert fast.last_kernel == "manual_backward"
        assert "packed sequence" in fast.last_kernel_choice.reason  # and holes: one check
        out_g, grads_g = _run_with_grads(generic, X, states, mask, training=True)
        _assert_close_lists(out_f, out_g)
        _assert_close_lists(grads_f, grads_g)
    if kind == "gru":  # inference: the native loop (test_gru_on_cpu_runs_native)
        return
    fast(X, mask=MASKS["right"])
    assert fast.last_kernel == "fused"
    fast(X, mask=np.ones((3, 5), bool), training=True)  # nothing to pack
    assert fast.last_kernel == "fused"


def test_gru_on_cpu_runs_native():
    """A GRU the fused kernel could run takes the native loop on CPU with "auto" (measured
    about 2x faster than torch's GRU); use_cudnn=True keeps the fused kernel; both equal the
    generic loop."""
    auto, generic = _pair("gru", fused=False, return_sequences=True, return_state=True)
    fused_layer = layers.GRU(3, use_cudnn=True, return_sequences=True, return_state=True)
    fused_layer(X)
    fused_layer.set_weights(generic.get_weights())
    states = [RNG.standard_normal((3, 3)).astype("float32")]
    for mask in (None, MASKS["right"]):
        for training in (False, True):
            out_a, grads_a = _run_with_grads(auto, X, states, mask, training)
            out_f, grads_f = _run_with_grads(fused_layer, X, states, mask, training)
            out_g, grads_g = _run_with_grads(generic, X, states, mask, training)
            assert auto.last_kernel == "manual_backward" and fused_layer.last_kernel == "fused"
            assert "(its time loop in C, kernels.native)" in auto.last_kernel_choice.reason
            _assert_close_lists(out_a, out_g)
            _assert_close_lists(grads_a, grads_g)
            _assert_close_lists(out_f, out_g)
