"""ConvLSTM1D/2D/3D and ConvLSTMCell: shapes, maths, RNN features, wrappers, saving, errors.

Keras parity with copied weights is in ``tests/test_conv_lstm_parity.py``. Here: the shared
layer harness on the configurations Keras' own tests use, Keras' golden values from constant
initialisers, an independent reference for the gates and the per-gate dropout, float64
gradcheck, masks against truncated sequences, stateful chunks against one pass, stacked cells,
Bidirectional / TimeDistributed, config and ``.keras`` round trips, and the error messages.
"""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import run_layer_test

import rnnkit
from rnnkit import layers
from rnnkit.layers.conv_lstm import ConvLSTM
from rnnkit.layers.conv_lstm_cell import ConvLSTMCell, same_padding
from rnnkit.saving import load_model, save_model

RNG = np.random.default_rng(7)
LAYERS = {1: layers.ConvLSTM1D, 2: layers.ConvLSTM2D, 3: layers.ConvLSTM3D}


def floats(*shape):
    return RNG.standard_normal(shape).astype("float32")


def channels_first(shape, time_axis=True):
    """``(N, T, *S, C)`` as ``(N, T, C, *S)`` (or ``(N, *S, C)`` as ``(N, C, *S)``)."""
    lead = 2 if time_axis else 1
    return (*shape[:lead], shape[-1], *shape[lead:-1])


def to_channels_first(x, time_axis=True):
    return np.moveaxis(x, -1, 2 if time_axis else 1)


def randomize(layer, scale=0.5):
    layer.set_weights(
        [RNG.uniform(-scale, scale, w.shape).astype("float32") for w in layer.get_weights()]
    )
    return layer


# ------------------------------------------------------------------ the harness
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(
    "case, size, kwargs, call_kwargs, out_size, sequences",
    [
        ("same", 4, {"padding": "same"}, {}, 4, False),
        # The harness compares two calls, so training (fresh masks) runs only in its backward
        # pass here; test_layer_draws_fresh_masks_per_call_and_none_in_inference covers it.
        ("valid_recurrent_dropout", 6, {"recurrent_dropout": 0.5}, {}, 4, False),
        ("valid_sequences", 6, {"return_sequences": True}, {}, 4, True),
    ],
)
def test_harness(rank, data_format, case, size, kwargs, call_kwargs, out_size, sequences):
    """Keras' test_basics configurations: 5 filters, kernel 3, batch 3, 2 steps, 3 channels."""
    shape = (3, 2, *([size] * rank), 3)
    out = (3, 2) if sequences else (3,)
    out = (*out, *([out_size] * rank), 5)
    if data_format == "channels_first":
        shape, out = channels_first(shape), channels_first(out, time_axis=sequences)
    run_layer_test(
        LAYERS[rank],
        init_kwargs={"filters": 5, "kernel_size": 3, "data_format": data_format, **kwargs},
        input_shape=shape,
        call_kwargs=call_kwargs,
        expected_output_shape=out,
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=0,
        supports_masking=True,  # as every rnnkit RNN (Keras 3's RNN says False)
    )


# ------------------------------------------------------------------ golden values
GOLDEN = {
    # Keras 3.15's expected outputs for kernel 0.01, recurrent kernel 0.02, bias 0.03 (filters 2,
    # kernel 3, valid padding) on arange inputs: 1D (2, 3, 4, 5) / 10, 2D (2, 3, 4, 4, 5) / 100.
    1: [[[0.40807986] * 2, [0.46421072] * 2], [[0.80933154] * 2, [0.8233646] * 2]],
    2: [
        [[[0.48694518] * 2, [0.50237733] * 2], [[0.5461202] * 2, [0.5598283] * 2]],
        [[[0.8661607] * 2, [0.86909103] * 2], [[0.8774414] * 2, [0.8800861] * 2]],
    ],
    3: [
        [
            [[[0.99149036] * 2, [0.99180907] * 2], [[0.99258363] * 2, [0.9927925] * 2]],
            [[[0.99413764] * 2, [0.99420583] * 2], [[0.9943788] * 2, [0.9944278] * 2]],
        ],
        [[[[0.9950547] * 2] * 2] * 2] * 2,
    ],
}
GOLDEN_INPUT = {1: ((2, 3, 4, 5), 10), 2: ((2, 3, 4, 4, 5), 100), 3: ((2, 3, 4, 4, 4, 5), 100)}


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_golden_values_from_constant_initialisers(rank, data_format):
    shape, scale = GOLDEN_INPUT[rank]
    x = np.arange(np.prod(shape)).reshape(shape).astype("float32") / scale
    expected = np.array(GOLDEN[rank], "float32")
    if data_format == "channels_first":
        x, expected = to_channels_first(x), to_channels_first(expected, time_axis=False)
    layer = LAYERS[rank](
        filters=2,
        kernel_size=3,
        data_format=data_format,
        kernel_initializer=rnnkit.initializers.Constant(0.01),
        recurrent_initializer=rnnkit.initializers.Constant(0.02),
        bias_initializer=rnnkit.initializers.Constant(0.03),
    )
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_golden_checksums_of_the_cell_and_the_layer(data_format):
    """Keras' sums for a rank-2 cell (one step) and layer (three steps from given states)."""
    constants = dict(
        kernel_initializer=rnnkit.initializers.Constant(0.01),
        recurrent_initializer=rnnkit.initializers.Constant(0.02),
    )
    x = np.arange(150).reshape((2, 5, 5, 3)).astype("float32") / 10
    s = np.arange(200).reshape((2, 5, 5, 4)).astype("float32") / 10
    seq = np.arange(450).reshape((2, 3, 5, 5, 3)).astype("float32") / 100
    if data_format == "channels_first":
        x, s, seq = to_channels_first(x, False), to_channels_first(s, False), to_channels_first(seq)
    cell = ConvLSTMCell(2, 4, 3, padding="same", data_format=data_format, **constants)
    h, (h2, c) = cell(x, [s, s])
    assert torch.equal(h, h2)
    np.testing.assert_allclose(float(h.detach().sum()), 188.89502, rtol=1e-6)
    np.testing.assert_allclose(float(c.detach().sum()), 2170.444, rtol=1e-6)
    layer = layers.ConvLSTM2D(4, 3, padding="same", data_format=data_format, **constants)
    out = layer(seq, initial_state=[s / 10, s / 10])
    np.testing.assert_allclose(float(out.detach().sum()), 119.812454, rtol=1e-5)


# ------------------------------------------------------------------ shapes and the step
@pytest.mark.parametrize(
    "rank, spatial, kwargs, expected",
    [
        (2, (7, 6), {"padding": "valid"}, (5, 4)),
        (2, (7, 6), {"padding": "same"}, (7, 6)),
        (2, (7, 6), {"padding": "same", "strides": 2}, (4, 3)),
        (2, (7, 6), {"padding": "valid", "strides": (2, 3)}, (3, 2)),
        (2, (9, 8), {"padding": "valid", "dilation_rate": (2, 3)}, (5, 2)),
        (2, (9, 8), {"padding": "same", "dilation_rate": 2, "kernel_size": 4}, (9, 8)),
        (1, (10,), {"padding": "valid", "kernel_size": 4, "strides": 3}, (3,)),
        (
            3,
            (5, 4, 6),
            {"padding": "same", "kernel_size": (2, 3, 4), "strides": (1, 2, 3)},
            (5, 2, 2),
        ),
    ],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_output_and_state_shapes_follow_the_input_convolution(
    rank, spatial, kwargs, expected, data_format
):
    kwargs = {"kernel_size": 3, **kwargs}
    shape = (2, 3, *spatial, 2)
    out = (2, *expected, 4)
    if data_format == "channels_first":
        shape, out = channels_first(shape), channels_first(out, time_axis=False)
    layer = LAYERS[rank](
        4, data_format=data_format, return_sequences=True, return_state=True, **kwargs
    )
    seq, h, c = layer(floats(*shape))
    assert tuple(seq.shape) == (2, 3, *out[1:])
    assert tuple(h.shape) == tuple(c.shape) == out
    assert layer.cell.state_size == [out[1:], out[1:]]
    symbolic = layer(rnnkit.Input(shape[1:]))
    assert [t.shape for t in symbolic] == [(None, 3, *out[1:]), (None, *out[1:]), (None, *out[1:])]


def reference_step(cell, x, h, c, input_masks=None, recurrent_masks=None):
    """Keras' step written out gate by gate, channels_last, stride 1 (torch's own 'same')."""
    rank = cell.rank
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    f = cell.filters

    def cf(t):
        return t.movedim(-1, 1)

    def weight(kernel, g):
        return kernel[..., g * f : (g + 1) * f].permute(rank + 1, rank, *range(rank))

    gates = []
    for g in range(4):
        xg = x if input_masks is None else x * input_masks[g]
        hg = h if recurrent_masks is None else h * recurrent_masks[g]
        z = conv(cf(xg), weight(cell.kernel, g), cell.bias[g * f : (g + 1) * f], padding="same")
        z = z + conv(cf(hg), weight(cell.recurrent_kernel, g), padding="same")
        gates.append(z.movedim(1, -1))
    i, fg, o = (torch.sigmoid(gates[k]) for k in (0, 1, 3))
    c_new = fg * c + i * torch.tanh(gates[2])
    return o * torch.tanh(c_new), c_new


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("rank, kernel_size", [(1, 4), (2, (2, 3)), (3, 2)])
def test_step_against_a_gate_by_gate_reference_even_kernels(rank, kernel_size):
    """Even kernels pad one more element after than before, as torch's padding='same'."""
    cell = ConvLSTMCell(rank, 3, kernel_size, padding="same")
    x = torch.as_tensor(floats(2, *([5] * rank), 2))
    h, c = (torch.as_tensor(floats(2, *([5] * rank), 3)) for _ in range(2))
    cell(x, [h, c])
    randomize(cell)
    out, (_, c_new) = cell(x, [h, c])
    ref_h, ref_c = reference_step(cell, x, h, c)
    torch.testing.assert_close(out, ref_h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c_new, ref_c, atol=1e-6, rtol=1e-5)
    assert same_padding(5, 4, 1) == (1, 2) and same_padding(7, 3, 2) == (1, 1)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_huge_dilation_with_same_padding_pads_no_copy(rank):
    """A file's ``dilation_rate=10**9`` with ``"same"`` padding must not allocate the padding
    (only the odd extra element is padded explicitly): every tap falls outside the 4-wide input,
    as with ``dilation_rate=9``, so both give the same output."""
    x = floats(1, 2, *([4] * rank), 1)
    small = LAYERS[rank](2, 2, padding="same", dilation_rate=9)
    huge = LAYERS[rank](2, 2, padding="same", dilation_rate=10**9)
    small(x)
    huge(x)
    huge.set_weights(randomize(small).get_weights())
    torch.testing.assert_close(huge(x), small(x))


def test_dropout_draws_one_mask_per_gate_and_reuses_it():
    cell = ConvLSTMCell(2, 3, 3, padding="same", dropout=0.4, recurrent_dropout=0.3, seed=1)
    x = torch.as_tensor(floats(2, 5, 5, 2))
    h, c = (torch.as_tensor(floats(2, 5, 5, 3)) for _ in range(2))
    cell(x, [h, c])
    randomize(cell)
    out, (_, c_new) = cell(x, [h, c], training=True)
    masks, recurrent = cell._dropout_mask, cell._recurrent_dropout_mask
    assert masks.shape == (4, *x.shape) and recurrent.shape == (4, *h.shape)
    assert not torch.equal(masks[0], masks[1])  # four independent masks
    assert set(masks.unique().tolist()) == {0.0, float(np.float32(1 / 0.6))}
    ref_h, ref_c = reference_step(cell, x, h, c, masks, recurrent)
    torch.testing.assert_close(out, ref_h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c_new, ref_c, atol=1e-6, rtol=1e-5)
    again, _ = cell(x, [h, c], training=True)  # the cached masks are reused within a sequence
    torch.testing.assert_close(again, out)
    inference, _ = cell(x, [h, c], training=False)
    torch.testing.assert_close(inference, reference_step(cell, x, h, c)[0], atol=1e-6, rtol=1e-5)


def test_layer_draws_fresh_masks_per_call_and_none_in_inference():
    layer = layers.ConvLSTM1D(3, 3, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    x = floats(2, 4, 6, 2)
    first, second = layer(x, training=True), layer(x, training=True)
    assert not torch.equal(first, second)
    assert layer.cell._dropout_mask is None  # cleared after the call
    torch.testing.assert_close(layer(x), layer(x))


def test_unit_forget_bias_and_weight_layout():
    layer = layers.ConvLSTM2D(3, (2, 4), use_bias=True)
    layer(floats(1, 2, 6, 6, 5))
    assert [tuple(w.shape) for w in layer.weights] == [(2, 4, 5, 12), (2, 4, 3, 12), (12,)]
    assert [p.split("/")[-1] for p in layer.weight_paths()] == [
        "kernel",
        "recurrent_kernel",
        "bias",
    ]
    np.testing.assert_array_equal(layer.cell.bias.detach().numpy(), [0] * 3 + [1] * 3 + [0] * 6)
    plain = layers.ConvLSTM2D(3, 2, unit_forget_bias=False, use_bias=False)
    plain(floats(1, 2, 4, 4, 5))
    assert len(plain.weights) == 2 and plain.count_params() == 2 * 2 * (5 + 3) * 12


# ------------------------------------------------------------------ gradients
def test_gradcheck_cell_float64_inputs_states_and_weights():
    cell = ConvLSTMCell(2, 2, (2, 3), padding="same", dtype="float64")
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64)
    h, c = torch.randn(2, 2, 4, 3, 2, dtype=torch.float64).unbind(0)
    cell(x, [h, c])
    names = [name for name, _ in cell.named_parameters()]

    def step(x, h, c, *weights):
        params = dict(zip(names, weights))
        out, (_, c_new) = torch.func.functional_call(cell, params, (x, [h, c]))
        return out, c_new

    inputs = [t.clone().requires_grad_() for t in (x, h, c, *cell.parameters())]
    assert torch.autograd.gradcheck(step, inputs)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_gradcheck_layer_float64_with_mask_strides_and_go_backwards(data_format):
    layer = layers.ConvLSTM1D(
        2,
        3,
        strides=2,
        data_format=data_format,
        go_backwards=True,
        return_sequences=True,
        dtype="float64",
    )
    shape = (2, 3, 7, 2) if data_format == "channels_last" else (2, 3, 2, 7)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, False, True]])
    layer(x)
    assert torch.autograd.gradcheck(lambda inp: layer(inp, mask=mask), (x,))


# ------------------------------------------------------------------ RNN features
def test_right_padded_mask_equals_the_truncated_sequence():
    layer = layers.ConvLSTM2D(3, 3, padding="same", return_state=True)
    x = floats(2, 5, 4, 4, 2)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    out, h, c = layer(x, mask=mask)
    short, h_short, c_short = layer(x[1:, :2])
    torch.testing.assert_close(out[1:], short)
    torch.testing.assert_close(c[1:], c_short)
    full = layer(x[:1])[0]
    torch.testing.assert_close(out[:1], full)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_stateful_chunks_equal_one_pass(go_backwards):
    kwargs = dict(padding="same", return_sequences=True, go_backwards=go_backwards)
    one_pass = layers.ConvLSTM2D(3, 3, **kwargs)
    stateful = layers.ConvLSTM2D(3, 3, stateful=True, **kwargs)
    x = floats(2, 6, 4, 4, 2)
    one_pass(x)
    stateful(x[:, :1])
    stateful.set_weights(randomize(one_pass).get_weights())
    stateful.reset_states()
    expected = one_pass(x).detach()
    chunks = (x[:, 3:], x[:, :3]) if go_backwards else (x[:, :3], x[:, 3:])
    got = torch.cat([stateful(chunk) for chunk in chunks], dim=1)
    torch.testing.assert_close(got, expected)
    assert [tuple(s.shape) for s in stateful.states] == [(2, 4, 4, 3)] * 2
    stateful.reset_states()
    torch.testing.assert_close(stateful(chunks[0]), expected[:, :3])


def test_reset_states_with_values_before_and_after_build():
    layer = layers.ConvLSTM1D(3, 3, padding="same", stateful=True, name="s")
    states = [np.full((2, 6, 3), 0.5, "float32")] * 2
    with pytest.raises(ValueError, match="'s': reset_states\\(states=...\\) needs the state shape"):
        layer.reset_states(states)
    x = floats(2, 4, 6, 2)
    layer(x)
    layer.reset_states(states)
    expected = layer(x, initial_state=states)
    layer.reset_states(states)
    torch.testing.assert_close(layer(x), expected)


def test_initial_state_and_time_major():
    layer = layers.ConvLSTM1D(3, 2, return_state=True)
    x = floats(2, 4, 6, 2)
    h0, c0 = floats(2, 5, 3), floats(2, 5, 3)
    out, h, c = layer(x, initial_state=[h0, c0])
    assert not torch.allclose(out, layer(x)[0])
    major = layers.ConvLSTM1D(3, 2, return_state=True, time_major=True)
    major(np.swapaxes(x, 0, 1))
    major.set_weights(layer.get_weights())
    for a, b in zip(major(np.swapaxes(x, 0, 1), initial_state=[h0, c0]), (out, h, c)):
        torch.testing.assert_close(a, b)


def test_stacked_cells_equal_two_layers():
    first = layers.ConvLSTM1D(3, 3, padding="same", return_sequences=True)
    second = layers.ConvLSTM1D(2, 2, return_state=True)
    x = floats(2, 4, 6, 2)
    out, h, c = second(first(x))
    stacked = layers.RNN(
        [ConvLSTMCell(1, 3, 3, padding="same"), ConvLSTMCell(1, 2, 2)], return_state=True
    )
    stacked(x)
    stacked.set_weights(first.get_weights() + second.get_weights())
    got, (h1, c1), (h2, c2) = stacked(x)
    torch.testing.assert_close(got, out)
    torch.testing.assert_close(c2, c)
    assert tuple(h1.shape) == (2, 6, 3)


def test_trains_in_a_sequential_model_with_time_distributed_head():
    model = rnnkit.Sequential(
        [
            rnnkit.Input((3, 5, 5, 1)),
            layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True),
            layers.TimeDistributed(layers.Dense(1, activation="sigmoid")),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = floats(4, 3, 5, 5, 1)
    y = (x > 0).astype("float32")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_time_distributed_around_conv_lstm_runs_each_slice():
    layer = layers.ConvLSTM1D(3, 2, return_sequences=True)
    wrapped = layers.TimeDistributed(layer)
    x = floats(2, 3, 4, 5, 2)  # (batch, outer steps, inner steps, steps, channels)
    out = wrapped(x)
    assert tuple(out.shape) == (2, 3, 4, 4, 3)
    for k in range(3):
        torch.testing.assert_close(out[:, k], layer(x[:, k]))


def test_bidirectional_shapes_and_states():
    bi = layers.Bidirectional(layers.ConvLSTM2D(3, 3, padding="same", return_state=True))
    out, *states = bi(floats(2, 4, 5, 5, 2))
    assert tuple(out.shape) == (2, 5, 5, 6)
    assert [tuple(s.shape) for s in states] == [(2, 5, 5, 3)] * 4
    bi_sum = layers.Bidirectional(layers.ConvLSTM1D(3, 3, return_sequences=True), merge_mode="sum")
    assert tuple(bi_sum(floats(2, 4, 6, 2)).shape) == (2, 4, 4, 3)


# ------------------------------------------------------------------ saving
def test_config_round_trip_and_serialize():
    layer = layers.ConvLSTM3D(
        2,
        (1, 2, 3),
        strides=(1, 2, 1),
        padding="SAME",
        data_format="channels_first",
        activation="relu",
        recurrent_activation="hard_sigmoid",
        kernel_regularizer="l2",
        recurrent_constraint="non_neg",
        dropout=0.1,
        seed=3,
        return_sequences=True,
        go_backwards=True,
        name="clstm",
    )
    config = layer.get_config()
    assert config["padding"] == "same" and config["kernel_size"] == (1, 2, 3)
    assert "cell" not in config and "rank" not in config
    again = layers.deserialize(layers.serialize(layer))
    assert type(again) is layers.ConvLSTM3D and again.get_config() == config
    assert again.filters == 2 and again.strides == (1, 2, 1) and again.seed == 3
    base = ConvLSTM(2, 3, 2, padding="same")
    assert base.get_config()["rank"] == 2
    assert ConvLSTM.from_config(base.get_config()).get_config() == base.get_config()
    cell = ConvLSTMCell(1, 4, 3, strides=2, name="c")
    assert ConvLSTMCell.from_config(cell.get_config()).get_config() == cell.get_config()
    rnn = layers.RNN([cell, ConvLSTMCell(1, 2, 1)], return_sequences=True)
    x = floats(2, 3, 9, 2)
    expected = rnn(x)
    rebuilt = layers.deserialize(layers.serialize(rnn))
    rebuilt(x)
    rebuilt.set_weights(rnn.get_weights())
    torch.testing.assert_close(rebuilt(x), expected)
    assert rebuilt.get_config() == rnn.get_config()


def test_keras_file_round_trip(tmp_path):
    model = rnnkit.Sequential(
        [
            rnnkit.Input((3, 2, 6, 6)),
            layers.ConvLSTM2D(
                3, 3, padding="same", data_format="channels_first", return_sequences=True
            ),
            layers.Bidirectional(layers.ConvLSTM2D(2, 2, strides=2)),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    randomize(model)
    x = floats(2, 3, 2, 6, 6)
    expected = model(x).detach().numpy()
    save_model(model, tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again(x).detach().numpy(), expected)
    assert again.get_config() == model.get_config()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: layers.ConvLSTM2D(4, 3, padding="full"),
            "ConvLSTM2D: padding must be one of 'valid', 'same', received padding='full'",
        ),
        (
            lambda: layers.ConvLSTM2D(4, 3, data_format="NHWC"),
            "data_format must be one of 'channels_last', 'channels_first', received data_format='NHWC'",
        ),
        (
            lambda: layers.ConvLSTM2D(4, 3, strides=2, dilation_rate=2),
            "Specifying `strides > 1` is not compatible with `dilation_rate > 1`",
        ),
        (
            lambda: layers.ConvLSTM3D(4, 3, strides=2, dilation_rate=(1, 2, 2)),
            "Specifying `strides > 1`",
        ),
        (
            lambda: layers.ConvLSTM2D(4, (3, 3, 3)),
            "kernel_size must be a positive int or a tuple of 2 positive int(s), received kernel_size=(3, 3, 3)",
        ),
        (
            lambda: layers.ConvLSTM1D(4, 3, strides=0),
            "ConvLSTM1D: strides must be a positive int or a tuple of 1 positive int(s), received strides=0",
        ),
        (lambda: layers.ConvLSTM2D(0, 3), "filters must be a positive integer, received filters=0"),
        (
            lambda: layers.ConvLSTM2D(2.5, 3),
            "filters must be a positive integer, received filters=2.5",
        ),
        (
            lambda: layers.ConvLSTM2D(4, 3, dropout=1.5),
            "dropout must be a float in [0, 1), received dropout=1.5",
        ),
        (lambda: ConvLSTMCell(4, 4, 3), "rank must be 1, 2 or 3, received rank=4"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_bad_inputs_name_the_argument_and_shapes():
    layer = layers.ConvLSTM2D(4, 3, name="cl")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "ConvLSTM2D 'cl': inputs must have rank 5 (batch, timesteps, ...), received shape (2, 3, 6, 2) of rank 4"
        ),
    ):
        layer(floats(2, 3, 6, 2))
    with pytest.raises(
        ValueError, match=re.escape("input's spatial shape (2, 6) is smaller than the kernel")
    ):
        layers.ConvLSTM2D(4, 3)(floats(1, 2, 2, 6, 1))
    layer(floats(2, 3, 6, 6, 2))
    with pytest.raises(
        ValueError,
        match=re.escape("built for per-step feature shape(s) [(6, 6, 2)], received [(6, 6, 3)]"),
    ):
        layer(floats(2, 3, 6, 6, 3))
    with pytest.raises(
        ValueError,
        match=re.escape("initial_state[1] has shape (2, 6, 6, 4), expected (2, 4, 4, 4)"),
    ):
        layer(floats(2, 3, 6, 6, 2), initial_state=[floats(2, 4, 4, 4), floats(2, 6, 6, 4)])
    with pytest.raises(
        ValueError,
        match=re.escape("mask must have shape (2, 3) (batch, timesteps), received shape (2, 4)"),
    ):
        layer(floats(2, 3, 6, 6, 2), mask=np.ones((2, 4), bool))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "need static spatial and channel sizes; inputs has shape (None, 3, None, 6, 2)"
        ),
    ):
        layers.ConvLSTM2D(4, 3)(rnnkit.Input((3, None, 6, 2)))
    with pytest.raises(ValueError, match="build the cell .* before get_initial_state"):
        ConvLSTMCell(2, 4, 3).get_initial_state(2)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "inputs (one step) must have rank 4 (batch, channels, rows, cols), received shape (2, 5, 5) of rank 3"
        ),
    ):
        ConvLSTMCell(2, 4, 3, data_format="channels_first").build((2, 5, 5))
    cell = ConvLSTMCell(1, 2, 3, padding="same", name="cc")
    with pytest.raises(ValueError, match=re.escape("'cc': states must be [h, c], two tensors")):
        cell(floats(2, 5, 3), [floats(2, 5, 2)])
    with pytest.raises(ValueError, match=re.escape("'cc': inputs (one step) must have rank 3")):
        cell(floats(2, 5, 3, 1), [floats(2, 5, 2)] * 2)
