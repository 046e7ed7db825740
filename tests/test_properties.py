"""Property tests (hypothesis): random shapes, masks and layer options for every recurrent layer.

For SimpleRNN / LSTM / GRU (``reset_after`` True and False, a few activations), ``RNN`` over each
built-in cell and ``Bidirectional`` with each ``merge_mode``, over random shapes (batch 1..4,
time 1..6, features 1..5, units 1..5), random masks (right / left padded, one run per row, any
pattern with holes, rows with no valid step) and ``go_backwards`` / ``return_sequences`` /
``return_state`` / ``stateful`` / ``zero_output_for_mask``:

- the call does not crash and the outputs have Keras' shapes;
- the kernel the dispatcher picks (fused or manual-backward) equals the generic loop (``use_cudnn=False``)
  on outputs and states within 1e-5 (float32), and on the gradients of inputs, initial states
  and weights for a smaller sample;
- a stateful layer fed a sequence in random chunks equals one pass over the whole sequence;
- masked steps carry the state over: the output at a masked step repeats the previous output
  (zeros with ``zero_output_for_mask``), and each row equals a run over its valid steps only.

Every example seeds torch and numpy from a drawn seed, and the settings are derandomized, so a
run (and CI) always tests the same examples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit import layers

ATOL = 1e-5


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Layer kinds: (layer class, cell class, extra cell options, number of states). The defaults
# run the fused kernel (unless the mask has holes); the others run the manual-backward kernel.
KINDS = {
    "lstm": (layers.LSTM, layers.LSTMCell, {}, 2),
    "lstm_hard_sigmoid": (
        layers.LSTM,
        layers.LSTMCell,
        {"recurrent_activation": "hard_sigmoid"},
        2,
    ),
    "gru": (layers.GRU, layers.GRUCell, {}, 1),
    "gru_reset_before": (layers.GRU, layers.GRUCell, {"reset_after": False}, 1),
    "simple_rnn": (layers.SimpleRNN, layers.SimpleRNNCell, {}, 1),
    "simple_rnn_relu": (layers.SimpleRNN, layers.SimpleRNNCell, {"activation": "relu"}, 1),
    "simple_rnn_sigmoid": (layers.SimpleRNN, layers.SimpleRNNCell, {"activation": "sigmoid"}, 1),
}
# The kinds "auto" runs on the fused kernel on CPU (a GRU on CPU runs the native loop instead).
FUSED_KINDS = {"lstm", "simple_rnn", "simple_rnn_relu"}
CELL_KINDS = ["lstm", "gru", "gru_reset_before", "simple_rnn"]  # each built-in cell, GRU both ways
MERGE_MODES = ["concat", "sum", "mul", "ave", None]


# ------------------------------------------------------------------ strategies
@st.composite
def shapes(draw):
    return (
        draw(st.integers(1, 4)),  # batch
        draw(st.integers(1, 6)),  # time
        draw(st.integers(1, 5)),  # features
        draw(st.integers(1, 5)),  # units
    )


@st.composite
def masks(draw, batch: int, time: int, allow_none: bool = True):
    """None or a (batch, time) bool mask of one family: right padded, left padded, one run per
    row anywhere, or any pattern (with a forced hole when time >= 3); sometimes with one row
    that has no valid step at all."""
    families = ["right", "left", "run", "holes"] + (["none"] if allow_none else [])
    family = draw(st.sampled_from(families))
    if family == "none":
        return None
    rows = []
    for _ in range(batch):
        if family == "holes":
            bits = draw(st.integers(0, 2**time - 1))
            row = [bool(bits >> t & 1) for t in range(time)]
        else:
            start = 0 if family == "right" else draw(st.integers(0, time))
            length = draw(st.integers(0, time - start))
            if family == "left":
                start = time - length
            row = [start <= t < start + length for t in range(time)]
        rows.append(row)
    mask = np.array(rows, dtype=bool)
    if family == "holes" and time >= 3:
        b, t = draw(st.integers(0, batch - 1)), draw(st.integers(0, time - 3))
        mask[b, t : t + 3] = [True, False, True]
    if draw(st.integers(0, 3)) == 0:
        mask[draw(st.integers(0, batch - 1))] = False  # a row with no valid step
    return torch.as_tensor(mask)


def has_holes(mask: torch.Tensor | None) -> bool:
    """Whether some row's valid steps form two or more runs."""
    if mask is None:
        return False
    m = mask.to(torch.int64)
    rises = m[:, 0] + (m[:, 1:] > m[:, :-1]).sum(dim=1)
    return bool((rises > 1).any())


# ------------------------------------------------------------------ helpers
def _describe(case: dict) -> None:
    """Record the layer kind and mask family (``pytest --hypothesis-show-statistics``)."""
    mask = case["mask"]
    family = "no mask" if mask is None else "holes" if has_holes(mask) else "one run per row"
    event(f"kind={case['kind']}")
    event(f"mask: {family}")
    if mask is not None and bool((~mask).all(dim=1).any()):
        event("mask: a row with no valid step")
    if "merge_mode" in case:
        event(f"merge_mode={case['merge_mode']}")


def _seed(seed: int) -> np.random.Generator:
    rnnkit.clear_session()
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _randomize_weights(layer, rng: np.random.Generator) -> list[np.ndarray]:
    """Random weights (non-zero biases too), set on ``layer``; returns them."""
    weights = [(0.6 * rng.standard_normal(w.shape)).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


def _states(rng: np.random.Generator, n: int, batch: int, units: int) -> list[torch.Tensor]:
    return [
        torch.as_tensor(rng.standard_normal((batch, units)).astype("float32")) for _ in range(n)
    ]


def _make(kind: str, units: int, use_cudnn, **options):
    cls, _, extra, _ = KINDS[kind]
    return cls(units, use_cudnn=use_cudnn, **extra, **options)


def _pair(build, x: torch.Tensor, rng: np.random.Generator):
    """Two layers from ``build(use_cudnn)`` with identical random weights: auto and generic."""
    fast, generic = build("auto"), build(False)
    fast(x)
    generic(x)
    generic.set_weights(_randomize_weights(fast, rng))
    for layer in (fast, generic):
        if getattr(layer, "stateful", False):
            layer.reset_states()
    return fast, generic


def _flat(result) -> list[torch.Tensor]:
    return list(rnnkit.tree.flatten(result))


def _assert_close(a, b, atol: float = ATOL, what: str = "") -> None:
    a, b = _flat(a), _flat(b)
    assert len(a) == len(b), what
    for i, (u, v) in enumerate(zip(a, b)):
        assert u.shape == v.shape, (what, i, u.shape, v.shape)
        np.testing.assert_allclose(
            u.detach().numpy(), v.detach().numpy(), atol=atol, rtol=0, err_msg=f"{what} [{i}]"
        )


def _expected_shapes(batch, time, units, n_states, return_sequences, return_state):
    out = (batch, time, units) if return_sequences else (batch, units)
    return [out] + ([(batch, units)] * n_states if return_state else [])


def _check_shapes(result, expected, return_state: bool) -> None:
    if return_state:
        assert isinstance(result, (list, tuple))
    else:
        assert isinstance(result, torch.Tensor)
    assert [tuple(r.shape) for r in _flat(result)] == [tuple(s) for s in expected]


# ------------------------------------------------------------------ fused / manual-backward == generic
@st.composite
def layer_cases(draw, kind: str):
    batch, time, features, units = draw(shapes())
    return dict(
        kind=kind,
        batch=batch,
        time=time,
        features=features,
        units=units,
        mask=draw(masks(batch, time)),
        options=dict(
            go_backwards=draw(st.booleans()),
            return_sequences=draw(st.booleans()),
            return_state=draw(st.booleans()),
            stateful=draw(st.booleans()),
            zero_output_for_mask=draw(st.booleans()),
        ),
        initial_state=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
@_settings(15)
@given(data=st.data())
def test_layer_shapes_and_fast_kernel_equals_generic(kind, data):
    case = data.draw(layer_cases(kind))
    _describe(case)
    rng = _seed(case["seed"])
    kind, units, options, mask = case["kind"], case["units"], case["options"], case["mask"]
    batch, time = case["batch"], case["time"]
    n_states = KINDS[kind][3]
    x = torch.as_tensor(rng.standard_normal((batch, time, case["features"])).astype("float32"))
    fast, generic = _pair(lambda u: _make(kind, units, u, **options), x, rng)
    init = _states(rng, n_states, batch, units) if case["initial_state"] else None
    expected = _expected_shapes(
        batch, time, units, n_states, options["return_sequences"], options["return_state"]
    )
    # Stateful layers: a second call starts from the states the first one left.
    for call in range(2 if options["stateful"] else 1):
        state = init if call == 0 else None
        out_f = fast(x, initial_state=state, mask=mask)
        out_g = generic(x, initial_state=state, mask=mask)
        want = "fused" if kind in FUSED_KINDS and not has_holes(mask) else "manual_backward"
        assert fast.last_kernel == want, fast.last_kernel_choice
        assert generic.last_kernel == "generic"
        _check_shapes(out_f, expected, options["return_state"])
        _assert_close(out_f, out_g, what=f"call {call}")
        if options["stateful"]:
            assert [tuple(s.shape) for s in fast.states] == [(batch, units)] * n_states
            _assert_close(fast.states, generic.states, what="stored states")


@st.composite
def grad_cases(draw, kind: str):
    case = draw(layer_cases(kind))
    case["options"]["return_state"] = True
    case["options"]["stateful"] = False
    return case


@pytest.mark.parametrize("kind", sorted(KINDS))
@_settings(6)
@given(data=st.data())
def test_fast_kernel_gradients_equal_generic(kind, data):
    case = data.draw(grad_cases(kind))
    _describe(case)
    rng = _seed(case["seed"])
    kind, units, options, mask = case["kind"], case["units"], case["options"], case["mask"]
    batch, time = case["batch"], case["time"]
    x0 = torch.as_tensor(rng.standard_normal((batch, time, case["features"])).astype("float32"))
    fast, generic = _pair(lambda u: _make(kind, units, u, **options), x0, rng)
    init = _states(rng, KINDS[kind][3], batch, units)
    results = []
    for layer in (fast, generic):
        x = x0.clone().requires_grad_(True)
        states = [s.clone().requires_grad_(True) for s in init]
        outputs = _flat(layer(x, initial_state=states, mask=mask))
        gen = torch.Generator().manual_seed(case["seed"])
        loss = sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outputs)
        grads = torch.autograd.grad(loss, [x, *states, *layer.trainable_weights])
        results.append(([o.detach() for o in outputs], list(grads)))
    assert fast.last_kernel in ("fused", "manual_backward")
    _assert_close(results[0][0], results[1][0], what="outputs")
    _assert_close(results[0][1], results[1][1], what="gradients (inputs, states, weights)")


# ------------------------------------------------------------------ RNN(cell)
@pytest.mark.parametrize("kind", CELL_KINDS)
@_settings(10)
@given(data=st.data())
def test_rnn_over_builtin_cell_equals_the_layer(kind, data):
    """RNN(cell) (never the fused kernel: the manual-backward kernel for a built-in cell) has
    Keras' shapes and equals the dedicated layer (fused or manual-backward kernel) with the
    same weights."""
    case = data.draw(layer_cases(kind))
    _describe(case)
    rng = _seed(case["seed"])
    kind, units, options, mask = case["kind"], case["units"], case["options"], case["mask"]
    batch, time = case["batch"], case["time"]
    _, cell_cls, extra, n_states = KINDS[kind]
    x = torch.as_tensor(rng.standard_normal((batch, time, case["features"])).astype("float32"))
    rnn = layers.RNN(cell_cls(units, **extra), **options)
    layer = _make(kind, units, "auto", **options)
    rnn(x)
    layer(x)
    rnn.set_weights(_randomize_weights(layer, rng))
    if options["stateful"]:
        rnn.reset_states()
        layer.reset_states()
    init = _states(rng, n_states, batch, units) if case["initial_state"] else None
    expected = _expected_shapes(
        batch, time, units, n_states, options["return_sequences"], options["return_state"]
    )
    for call in range(2 if options["stateful"] else 1):
        state = init if call == 0 else None
        out_rnn = rnn(x, initial_state=state, mask=mask)
        out_layer = layer(x, initial_state=state, mask=mask)
        assert rnn.last_kernel == "manual_backward"
        assert layer.last_kernel in ("fused", "manual_backward")
        _check_shapes(out_rnn, expected, options["return_state"])
        _assert_close(out_rnn, out_layer, what=f"call {call}")


# ------------------------------------------------------------------ Bidirectional
@st.composite
def bidi_cases(draw, merge_mode: str | None):
    case = draw(layer_cases(draw(st.sampled_from(CELL_KINDS))))
    case["merge_mode"] = merge_mode
    case["options"].pop("go_backwards")
    case["options"].pop("zero_output_for_mask")  # Bidirectional sets it (return_sequences)
    case["grads"] = draw(st.booleans())
    return case


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@_settings(10)
@given(data=st.data())
def test_bidirectional_shapes_and_fast_kernel_equals_generic(merge_mode, data):
    case = data.draw(bidi_cases(merge_mode))
    _describe(case)
    rng = _seed(case["seed"])
    kind, units, options, mask = case["kind"], case["units"], case["options"], case["mask"]
    batch, time, merge_mode = case["batch"], case["time"], case["merge_mode"]
    n_states = KINDS[kind][3]
    x0 = torch.as_tensor(rng.standard_normal((batch, time, case["features"])).astype("float32"))

    def build(use_cudnn):
        return layers.Bidirectional(_make(kind, units, use_cudnn, **options), merge_mode=merge_mode)

    fast, generic = _pair(build, x0, rng)
    init = _states(rng, 2 * n_states, batch, units) if case["initial_state"] else None
    merged = 2 * units if merge_mode == "concat" else units
    out_shape = (batch, time, merged) if options["return_sequences"] else (batch, merged)
    half = out_shape[:-1] + (units,)
    expected = [out_shape] if merge_mode is not None else [half, half]
    if options["return_state"]:
        expected += [(batch, units)] * (2 * n_states)
    for call in range(2 if options["stateful"] else 1):
        results = []
        for layer in (fast, generic):
            x = x0.clone().requires_grad_(case["grads"])
            out = layer(x, initial_state=init if call == 0 else None, mask=mask)
            flat = _flat(out)
            grads = []
            if case["grads"]:
                loss = sum((o * o).sum() for o in flat)
                grads = torch.autograd.grad(loss, [x, *layer.trainable_weights])
            results.append(([o.detach() for o in flat], list(grads)))
            assert [tuple(o.shape) for o in flat] == expected
            if merge_mode is None or options["return_state"]:
                assert isinstance(out, (list, tuple))
        want = "fused" if kind in FUSED_KINDS and not has_holes(mask) else "manual_backward"
        assert fast.last_kernel == want, fast.last_kernel_choice  # both directions' kernel
        assert generic.last_kernel == "generic"
        _assert_close(results[0][0], results[1][0], what=f"outputs, call {call}")
        _assert_close(results[0][1], results[1][1], what=f"gradients, call {call}")
        if options["stateful"]:
            _assert_close(fast.states, generic.states, what="stored states")


# ------------------------------------------------------------------ stateful chunks
@st.composite
def chunk_cases(draw, kind: str):
    batch, time, features, units = draw(shapes())
    cuts = [t for t in range(1, time) if draw(st.booleans())]  # k = len(cuts) + 1 chunks
    return dict(
        kind=kind,
        use_cudnn=draw(st.sampled_from(["auto", False])),
        batch=batch,
        time=time,
        features=features,
        units=units,
        bounds=[0, *cuts, time],
        mask=draw(masks(batch, time)),
        zero_output_for_mask=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
@_settings(8)
@given(data=st.data())
def test_stateful_chunks_equal_one_pass(kind, data):
    """Feeding a stateful layer the sequence in k chunks gives the one-pass final states, and
    the one-pass outputs wherever the row has had a valid step in the current chunk. (Keras
    carries the states between calls, not the previous output: at the masked steps that open
    a chunk, before its first valid step, the output is zeros.)"""
    case = data.draw(chunk_cases(kind))
    _describe(case)
    rng = _seed(case["seed"])
    kind, units, batch, time = case["kind"], case["units"], case["batch"], case["time"]
    n_states = KINDS[kind][3]
    x = torch.as_tensor(rng.standard_normal((batch, time, case["features"])).astype("float32"))
    mask = case["mask"]
    options = dict(
        return_sequences=True, return_state=True, zero_output_for_mask=case["zero_output_for_mask"]
    )
    whole = _make(kind, units, case["use_cudnn"], **options)
    chunked = _make(kind, units, case["use_cudnn"], stateful=True, **options)
    whole(x)
    chunked(x)
    chunked.set_weights(_randomize_weights(whole, rng))
    init = _states(rng, n_states, batch, units)
    full_seq, *full_states = whole(x, initial_state=init, mask=mask)

    chunked.reset_states([s.numpy() for s in init])
    pieces = []
    for lo, hi in zip(case["bounds"][:-1], case["bounds"][1:]):
        piece_mask = None if mask is None else mask[:, lo:hi]
        seq, *states = chunked(x[:, lo:hi], mask=piece_mask)
        _assert_close(states, chunked.states, what="returned vs stored states")
        if piece_mask is None:
            seen = torch.ones(batch, hi - lo, dtype=torch.bool)
        else:
            seen = piece_mask.to(torch.int32).cumsum(dim=1) > 0
        expected = torch.where(seen.unsqueeze(-1), full_seq[:, lo:hi], torch.zeros(()))
        _assert_close(seq, expected, what=f"outputs of chunk [{lo}, {hi})")
        pieces.append(seq)
    _assert_close(states, full_states, what="final states")
    assert tuple(torch.cat(pieces, dim=1).shape) == (batch, time, units)


# ------------------------------------------------------------------ masked steps
@st.composite
def masked_cases(draw, kind: str):
    batch, time, features, units = draw(shapes())
    return dict(
        kind=kind,
        use_cudnn=draw(st.sampled_from(["auto", False])),
        batch=batch,
        time=time,
        features=features,
        units=units,
        mask=draw(masks(batch, time, allow_none=False)),
        go_backwards=draw(st.booleans()),
        zero_output_for_mask=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
@_settings(8)
@given(data=st.data())
def test_masked_steps_carry_the_state_over(kind, data):
    """At a masked step the states are carried over and the output repeats the previous one
    (zeros before the first valid step, or zeros with zero_output_for_mask); so each row equals
    a run, without a mask, over its valid steps only."""
    case = data.draw(masked_cases(kind))
    _describe(case)
    rng = _seed(case["seed"])
    kind, units, batch, time = case["kind"], case["units"], case["batch"], case["time"]
    mask, zero_output = case["mask"], case["zero_output_for_mask"]
    n_states = KINDS[kind][3]
    x = torch.as_tensor(rng.standard_normal((batch, time, case["features"])).astype("float32"))
    options = dict(
        return_sequences=True,
        return_state=True,
        go_backwards=case["go_backwards"],
        zero_output_for_mask=zero_output,
    )
    layer = _make(kind, units, case["use_cudnn"], **options)
    layer(x)
    _randomize_weights(layer, rng)
    init = _states(rng, n_states, batch, units)
    seq, *finals = (t.detach() for t in layer(x, initial_state=init, mask=mask))
    # The output sequence is in processing order (reversed with go_backwards), as in Keras.
    order = list(reversed(range(time))) if case["go_backwards"] else list(range(time))
    mask_p = mask[:, order]
    for b in range(batch):
        previous = torch.zeros(units)
        for t in range(time):
            if not mask_p[b, t]:
                want = torch.zeros(units) if zero_output else previous
                _assert_close(seq[b, t], want, atol=0, what=f"masked step ({b}, {t})")
            previous = seq[b, t]
        valid = mask[b]
        row_init = [s[b : b + 1] for s in init]
        if not bool(valid.any()):
            _assert_close(
                [s[b] for s in finals], [s[b] for s in init], atol=0, what=f"empty row {b}"
            )
            continue
        compact = layer(x[b : b + 1, valid], initial_state=row_init)
        _assert_close(compact[0][0], seq[b, mask_p[b]], what=f"row {b} valid outputs")
        _assert_close([s[0] for s in compact[1:]], [s[b] for s in finals], what=f"row {b} states")
