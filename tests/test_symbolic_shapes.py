"""Symbolic calls (on ``rnnkit.Input``) infer shapes on fake tensors: no arithmetic runs, weights
are still real, ``None`` sizes stay ``None``, and a layer whose valid output needs a minimum
length builds on an unknown length (issue 12, item 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import is_fake

import rnnkit
from rnnkit import layers
from rnnkit.symbolic import in_symbolic_call


class _Recorder(rnnkit.layers.Layer):
    """Records whether each call saw fake inputs, and counts them."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: list[bool] = []

    def build(self, input_shape) -> None:
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, inputs):
        self.seen.append(is_fake(inputs))
        return inputs * self.scale


class _ValidWindow(rnnkit.layers.Layer):
    """A 'valid' 1-D convolution with a window of 5 steps: the length shrinks by 4, and a
    length under 5 is an error (as for Conv1D(kernel_size=5, padding="valid"))."""

    def build(self, input_shape) -> None:
        self.kernel = self.add_weight(shape=(3, input_shape[-1], 5), name="kernel")

    def call(self, inputs):
        if inputs.shape[1] < 5:
            raise ValueError(f"needs at least 5 steps, received {inputs.shape[1]}")
        return torch.nn.functional.conv1d(inputs.transpose(1, 2), self.kernel).transpose(1, 2)


def test_a_symbolic_call_sees_only_fake_tensors_and_builds_real_weights():
    layer = _Recorder()
    x = rnnkit.Input((None, 4))
    y = layer(x)
    assert y.shape == (None, None, 4)
    assert layer.seen and all(layer.seen), "the symbolic call ran on real tensors"
    assert not is_fake(layer.scale) and torch.equal(layer.scale.detach(), torch.ones(4))
    layer.seen.clear()
    layer(torch.ones(2, 3, 4))
    assert layer.seen == [False]


def test_no_arithmetic_on_real_tensors_while_building_a_model():
    """Count the aten calls on real tensors during the symbolic calls of a recurrent model:
    views of the weights (transposes, slices) are free; no other op may touch real storage."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.real_compute: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            flat = [
                a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if torch.is_tensor(a)
            ]
            real = flat and not any(is_fake(a) for a in flat)
            if in_symbolic_call() and real and not func.is_view:
                self.real_compute.append(str(func))
            return out

    inputs = rnnkit.Input((None, 6))
    x = layers.Masking()(inputs)
    x = layers.LSTM(8, return_sequences=True)(x)  # already built below: no initializers
    layers_built = [layers.GRU(5), layers.Dense(3)]
    for layer in layers_built:
        layer.build((None, None, 8) if isinstance(layer, layers.GRU) else (None, 5))
    with Count() as counter:
        y = layers_built[1](layers_built[0](x))
    assert y.shape == (None, 3)
    assert counter.real_compute == [], counter.real_compute[:5]


def test_a_size_dependent_layer_builds_on_an_unknown_length():
    tokens = rnnkit.Input((None,), dtype="int64")
    x = layers.Embedding(50, 8)(tokens)
    x = _ValidWindow()(x)
    x = layers.LSTM(4)(x)
    model = rnnkit.Model(tokens, x)
    assert model.layers[2].output.shape == (None, None, 3)
    assert model.output_shape == (None, 4)
    out = model.predict(np.ones((2, 9), dtype="int64"), verbose=0)
    assert out.shape == (2, 4)


def test_static_sizes_stay_static_and_unknown_sizes_stay_unknown():
    x = rnnkit.Input((7, 4), batch_size=None)
    y = _ValidWindow()(x)
    assert y.shape == (None, 3, 3)
    z = layers.Bidirectional(layers.GRU(2, return_sequences=True))(rnnkit.Input((None, 4)))
    assert z.shape == (None, None, 4)
    w = layers.TimeDistributed(layers.Dense(3))(rnnkit.Input((5, 2), batch_size=4))
    assert w.shape == (4, 5, 3)


def test_a_call_that_reads_values_gets_a_clear_error():
    class ReadsValues(rnnkit.layers.Layer):
        def call(self, inputs):
            if float(inputs.max()) > 1.0:
                return inputs
            return -inputs

    with pytest.raises(ValueError, match=r"ReadsValues 'reads_values': its call\(\) reads tensor"):
        ReadsValues()(rnnkit.Input((3,)))


def test_embedding_range_check_is_skipped_symbolically_but_runs_eagerly():
    emb = layers.Embedding(5, 2)
    assert emb(rnnkit.Input((None,), dtype="int64")).shape == (None, None, 2)
    with pytest.raises(ValueError, match=r"indices must be in \[0, input_dim\)"):
        emb(np.array([[7]]))


def test_fused_kernel_after_a_symbolic_call_runs_on_real_tensors():
    """A tensor cached during a symbolic call (a kernel's zero bias) must stay real."""
    x = rnnkit.Input((None, 3))
    gru = layers.GRU(4, return_sequences=True, use_cudnn=True)  # the fused kernel on CPU too
    model = rnnkit.Model(x, gru(x))
    data = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    out = model(data)
    assert not is_fake(out) and torch.isfinite(out).all()
    assert gru.last_kernel == "fused"


def test_a_build_that_computes_with_torch_works_in_a_symbolic_call():
    """build() runs on real tensors, also when the layer is first called symbolically."""

    class RandomScale(rnnkit.layers.Layer):
        def build(self, input_shape):
            self.factor = self.add_weight(shape=(), initializer="ones", name="factor")
            with torch.no_grad():
                self.factor.fill_(0.5 + float(torch.rand(())))

        def call(self, inputs):
            return inputs * self.factor

    layer = RandomScale()
    assert layer(rnnkit.Input((3,))).shape == (None, 3)
    assert not is_fake(layer.factor) and 0.5 <= float(layer.factor.detach()) <= 1.5


# Layers that tell a symbolic call's output from the input's shape (`_output_from_shapes`),
# without a placeholder run, and what the placeholder run gives for the same call.
_FROM_SHAPES = {
    "dense": lambda: layers.Dense(5),
    "dense_float64": lambda: layers.Dense(5, dtype="float64"),
    "batch_norm": lambda: layers.BatchNormalization(),
    "lstm": lambda: layers.LSTM(4),
    "lstm_sequences_states": lambda: layers.LSTM(4, return_sequences=True, return_state=True),
    "gru_states": lambda: layers.GRU(3, return_state=True),
    "gru_v1_backwards": lambda: layers.GRU(3, reset_after=False, go_backwards=True),
    "simple_rnn_sequences": lambda: layers.SimpleRNN(2, return_sequences=True),
    "rnn_lstm_cell_float64": lambda: layers.RNN(layers.LSTMCell(3), dtype="float64"),
    "rnn_stacked_cells_states": lambda: layers.RNN(
        layers.StackedRNNCells(
            [layers.LSTMCell(4), layers.GRUCell(3, reset_after=False), layers.SimpleRNNCell(2)]
        ),
        return_sequences=True,
        return_state=True,
    ),
    "rnn_one_stacked_gru_backwards": lambda: layers.RNN(
        layers.StackedRNNCells([layers.GRUCell(3)]), go_backwards=True, return_state=True
    ),
    "rnn_wrapped_cells_states": lambda: layers.RNN(
        layers.DropoutCell(
            layers.OutputProjectionCell(layers.LSTMCell(5), 3, activation="tanh"),
            input_keep_prob=0.8,
            state_keep_prob=0.9,
        ),
        return_sequences=True,
        return_state=True,
    ),
    "rnn_stacked_wrapped_float64": lambda: layers.RNN(
        layers.StackedRNNCells(
            [
                layers.DropoutCell(layers.SimpleRNNCell(4)),
                layers.OutputProjectionCell(layers.GRUCell(3), 2),
            ]
        ),
        dtype="float64",
    ),
    "dropout": lambda: layers.Dropout(0.5),
    "layer_norm": lambda: layers.LayerNormalization(),
    "layer_norm_float64_no_scale": lambda: layers.LayerNormalization(
        dtype="float64", center=False, scale=False
    ),
    "lstm_stateful_sequences": lambda: layers.LSTM(4, stateful=True, return_sequences=True),
    "time_distributed_dense": lambda: layers.TimeDistributed(layers.Dense(3)),
    "time_distributed_dense_float64": lambda: layers.TimeDistributed(
        layers.Dense(3, dtype="float64")
    ),
    "time_distributed_float64_over_dense": lambda: layers.TimeDistributed(
        layers.Dense(3), dtype="float64"
    ),
    "time_distributed_dropout": lambda: layers.TimeDistributed(layers.Dropout(0.3)),
    "time_distributed_batch_norm": lambda: layers.TimeDistributed(layers.BatchNormalization()),
    "masking": lambda: layers.Masking(),
    **{
        f"bidirectional_{mode}": lambda mode=mode: layers.Bidirectional(
            layers.LSTM(3, return_sequences=True), merge_mode=mode
        )
        for mode in ("concat", "sum", "ave", "mul", None)
    },
    "bidirectional_states_none": lambda: layers.Bidirectional(
        layers.GRU(3, return_sequences=True, return_state=True), merge_mode=None
    ),
    "bidirectional_states_concat": lambda: layers.Bidirectional(layers.LSTM(3, return_state=True)),
    "bidirectional_other_backward": lambda: layers.Bidirectional(
        layers.LSTM(3, return_sequences=True),
        backward_layer=layers.GRU(2, return_sequences=True, go_backwards=True),
    ),
}


def _functional(outputs):
    def make():
        x = rnnkit.Input((None, 6))
        return rnnkit.Model(x, outputs(x))

    return make


_FROM_SHAPES.update(
    {
        "model_lstm_dense": _functional(
            lambda x: layers.Dense(2)(layers.LSTM(3, return_sequences=True)(x))
        ),
        "model_outputs_list_states": _functional(
            lambda x: [layers.GRU(3, return_state=True)(x)[1], layers.Dense(2)(x)]
        ),
        "model_one_output_in_a_list": _functional(lambda x: [layers.SimpleRNN(2)(x)]),
        "model_custom_layer_inside": _functional(lambda x: _Recorder()(layers.Dense(4)(x))),
        "model_float64": lambda: rnnkit.Model(
            (x := rnnkit.Input((None, 6), dtype="float64")),
            layers.Dense(2, dtype="float64")(x),
        ),
        "sequential": lambda: rnnkit.Sequential(
            [rnnkit.Input((None, 6)), layers.Dense(4), layers.Dropout(0.1), layers.LSTM(2)]
        ),
        "sequential_in_sequential": lambda: rnnkit.Sequential(
            [
                rnnkit.Input((None, 6)),
                rnnkit.Sequential([rnnkit.Input((None, 6)), layers.Dense(3)]),
                layers.TimeDistributed(layers.Dense(2)),
            ]
        ),
    }
)
_SYMBOLIC_INPUTS = {
    "unknown_time": lambda: rnnkit.Input((None, 6)),
    "static": lambda: rnnkit.Input((7, 6), batch_size=3),
    "float64_input": lambda: rnnkit.Input((None, 6), dtype="float64"),
    "masked": lambda: layers.Masking()(rnnkit.Input((None, 6))),
    "embedded": lambda: layers.Embedding(10, 6, mask_zero=True)(rnnkit.Input((None,))),
}


@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("dtype", ["int64", "int32", "float32"])
def test_embedding_outputs_from_shapes_equal_the_placeholder_run(mask_zero, dtype):
    for shape in [(None,), (5,), (None, 3)]:
        x = rnnkit.Input(shape, dtype=dtype)
        told = layers.Embedding(10, 4, mask_zero=mask_zero)(x)
        run = layers.Embedding(10, 4, mask_zero=mask_zero)
        run._output_from_shapes = lambda inputs, **kwargs: None
        assert _describe(told) == _describe(run(x))


def _describe(outputs):
    """Structure (container types included), shapes, dtypes and masks of symbolic outputs."""
    if isinstance(outputs, (list, tuple)):
        return (type(outputs), [_describe(t) for t in outputs])
    mask = outputs._keras_mask
    return (outputs.shape, outputs.dtype, None if mask is None else (mask.shape, mask.dtype))


@pytest.mark.parametrize("make_input", sorted(_SYMBOLIC_INPUTS))
@pytest.mark.parametrize("make_layer", sorted(_FROM_SHAPES))
def test_outputs_from_shapes_equal_the_placeholder_run(make_layer, make_input, monkeypatch):
    from rnnkit import symbolic

    entered = []
    fake_tensors = symbolic._fake_tensors

    def counting():
        entered.append(True)
        return fake_tensors()

    x = _SYMBOLIC_INPUTS[make_input]()
    layer = _FROM_SHAPES[make_layer]()  # a model's construction calls its layers symbolically
    monkeypatch.setattr(symbolic, "_fake_tensors", counting)
    told = layer(x)
    # a model replays its layers: one that cannot tell its output runs alone on placeholders
    assert len(entered) == make_layer.endswith("custom_layer_inside"), "ran on placeholders"
    run = _FROM_SHAPES[make_layer]()
    run._output_from_shapes = lambda inputs, **kwargs: None  # force the placeholder run
    assert _describe(told) == _describe(run(x))


# ConvLSTM layers and the per-step shape of their inputs (time and batch axes left out).
_CONV_LSTM = {
    "conv_lstm1d_sequences": (lambda: layers.ConvLSTM1D(3, 2, return_sequences=True), (7, 2)),
    "conv_lstm2d_states": (lambda: layers.ConvLSTM2D(4, 3, return_state=True), (6, 6, 2)),
    "conv_lstm2d_same_strided_backwards": (
        lambda: layers.ConvLSTM2D(
            2, 3, padding="same", strides=2, go_backwards=True, return_sequences=True
        ),
        (7, 6, 2),
    ),
    "conv_lstm2d_channels_first": (
        lambda: layers.ConvLSTM2D(
            2, (3, 2), data_format="channels_first", return_sequences=True, return_state=True
        ),
        (2, 6, 5),
    ),
    "conv_lstm3d_dilated": (lambda: layers.ConvLSTM3D(2, 2, dilation_rate=2), (5, 5, 5, 1)),
    "conv_lstm2d_float64": (lambda: layers.ConvLSTM2D(2, 3, dtype="float64"), (5, 5, 1)),
}


@pytest.mark.parametrize("sizes", ["unknown", "static"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make_layer", sorted(_CONV_LSTM))
def test_conv_lstm_outputs_from_shapes_equal_the_placeholder_run(
    make_layer, dtype, sizes, monkeypatch
):
    from rnnkit import symbolic

    entered = []
    fake_tensors = symbolic._fake_tensors
    monkeypatch.setattr(symbolic, "_fake_tensors", lambda: entered.append(1) or fake_tensors())
    make, step = _CONV_LSTM[make_layer]
    if sizes == "unknown":
        x = rnnkit.Input((None, *step), dtype=dtype)
    else:
        x = rnnkit.Input((4, *step), batch_size=3, dtype=dtype)
    told = make()(x)
    assert not entered, "the call ran on placeholders"
    run = make()
    run._output_from_shapes = lambda inputs, **kwargs: None
    assert _describe(told) == _describe(run(x))


def test_layer_norm_over_two_axes_from_shapes(monkeypatch):
    from rnnkit import symbolic

    x = rnnkit.Input((7, 6), batch_size=3)
    run = layers.LayerNormalization(axis=[1, 2])
    run._output_from_shapes = lambda inputs, **kwargs: None
    expected = _describe(run(x))
    entered = []
    fake_tensors = symbolic._fake_tensors
    monkeypatch.setattr(symbolic, "_fake_tensors", lambda: entered.append(1) or fake_tensors())
    assert _describe(layers.LayerNormalization(axis=[1, 2])(x)) == expected
    assert not entered
    with pytest.raises(ValueError, match=r"expected \(None, 13, 6\) \(axis=\[1, 2\] as built"):
        layers.LayerNormalization(axis=[1, 2])(rnnkit.Input((None, 6)))


def test_outputs_from_shapes_keep_the_errors_of_the_run():
    for layer in (
        layers.Dense(5),
        layers.LSTM(4),
        layers.BatchNormalization(),
        layers.LayerNormalization(),
    ):
        layer(rnnkit.Input((None, 6)))
        with pytest.raises(ValueError, match="6"):
            layer(rnnkit.Input((None, 7)))
    with pytest.raises(ValueError, match="rank"):
        layers.GRU(3)(rnnkit.Input((6,)))
    stacked = layers.RNN(layers.StackedRNNCells([layers.LSTMCell(4), layers.GRUCell(3)]))
    wrapped = layers.RNN(layers.DropoutCell(layers.OutputProjectionCell(layers.LSTMCell(5), 3)))
    for layer in (stacked, wrapped):
        layer(rnnkit.Input((None, 6)))
        with pytest.raises(ValueError, match=r"built for per-step feature shape\(s\) \[\(6,\)\]"):
            layer(rnnkit.Input((None, 7)))
    conv = layers.ConvLSTM2D(2, 3)
    conv(rnnkit.Input((None, 5, 5, 2)))
    with pytest.raises(ValueError, match=r"built for per-step feature shape\(s\) \[\(5, 5, 2\)\]"):
        conv(rnnkit.Input((None, 5, 5, 3)))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        layers.ConvLSTM2D(2, 3)(rnnkit.Input((None, 2, 2, 1)))
    head = _functional(lambda x: layers.Dense(2)(x))()
    with pytest.raises(ValueError, match=r"expects shape \(None, None, 6\)"):
        head(rnnkit.Input((None, 7)))
    dense_steps = layers.TimeDistributed(layers.Dense(3))
    dense_steps(rnnkit.Input((None, 6)))
    with pytest.raises(ValueError, match=r"expected \(None, None, 6\) \(batch, timesteps"):
        dense_steps(rnnkit.Input((None, 7)))


@pytest.mark.parametrize("return_state", [False, True])
def test_initial_states_keep_the_outputs_from_shapes(return_state, monkeypatch):
    from rnnkit import symbolic

    entered = []
    fake_tensors = symbolic._fake_tensors
    monkeypatch.setattr(symbolic, "_fake_tensors", lambda: entered.append(1) or fake_tensors())
    x = rnnkit.Input((None, 6))
    h, c = rnnkit.Input((4,)), rnnkit.Input((4,))
    for make, state in [
        (lambda: layers.LSTM(4, return_sequences=True, return_state=return_state), [h, c]),
        (lambda: layers.GRU(4, return_state=return_state), h),
        (lambda: layers.SimpleRNN(4, return_state=return_state), [h]),
        (
            lambda: layers.RNN(
                layers.StackedRNNCells([layers.LSTMCell(4), layers.GRUCell(3)]),
                return_state=return_state,
            ),
            [[h, c], [rnnkit.Input((3,))]],
        ),
        (
            lambda: layers.Bidirectional(
                layers.LSTM(4, return_sequences=True, return_state=return_state)
            ),
            [h, c, rnnkit.Input((4,)), rnnkit.Input((4,))],
        ),
        (
            lambda: layers.Bidirectional(layers.GRU(4, return_state=return_state), merge_mode=None),
            [h, rnnkit.Input((4,))],
        ),
    ]:
        entered.clear()
        told = make()(x, initial_state=state)
        assert not entered, "the call ran on placeholders"
        run = make()
        run._output_from_shapes = lambda inputs, **kwargs: None
        assert _describe(told) == _describe(run(x, initial_state=state))
    with pytest.raises(ValueError, match="initial_state"):  # wrong sizes: the run says so
        layers.LSTM(4)(x, initial_state=[rnnkit.Input((3,)), rnnkit.Input((3,))])
    with pytest.raises(ValueError, match="an even count"):
        layers.Bidirectional(layers.GRU(4))(x, initial_state=[h, c, h])
    with pytest.raises(ValueError, match="initial_state"):
        layers.Bidirectional(layers.GRU(4))(x, initial_state=[h, rnnkit.Input((3,))])
    stacked = layers.RNN(layers.StackedRNNCells([layers.LSTMCell(4), layers.GRUCell(3)]))
    with pytest.raises(ValueError, match=r"initial_state\[2\] has shape \(13, 4\), expected"):
        stacked(x, initial_state=[[h, c], [rnnkit.Input((4,))]])


def test_layers_with_an_activity_regularizer_still_run_on_placeholders(monkeypatch):
    # The run adds the regularizer's loss (as it did before the shapes-only path), so these
    # layers keep running.
    from rnnkit import symbolic

    entered = []
    fake_tensors = symbolic._fake_tensors
    monkeypatch.setattr(symbolic, "_fake_tensors", lambda: entered.append(1) or fake_tensors())
    for layer in (
        layers.Dense(3, activity_regularizer="l2"),
        layers.LSTM(3, activity_regularizer="l2"),
        layers.Embedding(10, 3, activity_regularizer="l2"),
    ):
        entered.clear()
        x = rnnkit.Input((None,), dtype="int64") if isinstance(layer, layers.Embedding) else None
        layer(x if x is not None else rnnkit.Input((None, 4)))
        assert entered, type(layer).__name__


class _Encoder(rnnkit.layers.Layer):
    """A custom layer around built-in layers (tokens -> masked embedding -> LSTM states ->
    Dense), plus an op of its own."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.embed = layers.Embedding(20, 4, mask_zero=True)
        self.lstm = layers.LSTM(3, return_sequences=True, return_state=True)
        self.dense = layers.TimeDistributed(layers.Dense(2))

    def call(self, inputs):
        sequence, h, c = self.lstm(self.embed(inputs))
        return self.dense(sequence) * 2.0, h + c


@pytest.mark.parametrize("shape", [(None,), (5,)])
def test_layers_called_inside_a_placeholder_run_tell_their_outputs(shape, monkeypatch):
    """A custom layer runs on placeholders; the built-in layers it calls give placeholders of
    the shapes they tell (never running their call), equal to running them."""
    from rnnkit import symbolic

    x = rnnkit.Input(shape, dtype="int64")
    told_layer, run_layer = _Encoder(), _Encoder()
    ran = []
    for inner in (told_layer.embed, told_layer.lstm, told_layer.dense.layer):
        inner.call = lambda *args, inner=inner, **kwargs: ran.append(inner.name)
    told = told_layer(x)
    assert ran == []
    monkeypatch.setattr(symbolic, "_told_placeholders", lambda layer, args, kwargs: None)
    assert _describe(told) == _describe(run_layer(x))


_MERGES = {
    "add": layers.Add,
    "subtract": layers.Subtract,
    "average": layers.Average,
    "multiply": layers.Multiply,
    "concatenate": layers.Concatenate,
    "concatenate_time": lambda: layers.Concatenate(axis=1),
    "add_float64": lambda: layers.Add(dtype="float64"),
}
_LISTS = {
    "unknown": lambda: [rnnkit.Input((None, 4)), rnnkit.Input((None, 4))],
    "static": lambda: [rnnkit.Input((5, 4), batch_size=3), rnnkit.Input((5, 4), batch_size=3)],
    "lower_rank": lambda: [rnnkit.Input((None, 4)), rnnkit.Input((4,))],
    "broadcast_one": lambda: [rnnkit.Input((5, 4)), rnnkit.Input((1, 4))],
    "unknown_against_known": lambda: [rnnkit.Input((None, 4)), rnnkit.Input((5, 4))],
    "masked_both": lambda: [
        layers.Masking()(rnnkit.Input((None, 4))),
        layers.Masking()(rnnkit.Input((None, 4))),
    ],
    "masked_one": lambda: [layers.Masking()(rnnkit.Input((None, 4))), rnnkit.Input((None, 4))],
    "three_float64": lambda: [rnnkit.Input((None, 4), dtype="float64") for _ in range(3)],
    "mixed_dtypes": lambda: [rnnkit.Input((None, 4)), rnnkit.Input((None, 4), dtype="float64")],
}


def _outcome(layer, inputs):
    try:
        return _describe(layer(inputs))
    except ValueError as error:
        return ("raises", str(error).replace(layer.name, "<layer>"))


@pytest.mark.parametrize("make_inputs", sorted(_LISTS))
@pytest.mark.parametrize("make_layer", sorted(_MERGES))
def test_merges_from_shapes_equal_the_placeholder_run(make_layer, make_inputs, monkeypatch):
    """Merging layers on lists: the same outputs (or the same error) as the placeholder run;
    told from shapes (no fake mode) wherever the run succeeds on inputs of one dtype."""
    _assert_told_as_run(
        _MERGES[make_layer], _LISTS[make_inputs](), monkeypatch, make_inputs != "mixed_dtypes"
    )


def _assert_told_as_run(make, inputs, monkeypatch, told: bool) -> None:
    """A layer from ``make()`` on the list ``inputs`` gives the outcome of a twin whose
    shapes-only path is off (the placeholder run); when ``told`` and that run succeeds, it
    gives it without entering fake mode."""
    from rnnkit import symbolic

    run = make()
    run._output_from_shapes = lambda inputs, **kwargs: None
    expected = _outcome(run, inputs)
    entered = []
    fake_tensors = symbolic._fake_tensors
    monkeypatch.setattr(symbolic, "_fake_tensors", lambda: entered.append(1) or fake_tensors())
    assert _outcome(make(), inputs) == expected
    if expected[0] != "raises" and told:
        assert not entered, "the call ran on placeholders"


_ATTENTION = {
    "attention": layers.Attention,
    "attention_scaled_concat": lambda: layers.Attention(use_scale=True, score_mode="concat"),
    "additive_attention": layers.AdditiveAttention,
    "additive_attention_float64": lambda: layers.AdditiveAttention(dtype="float64"),
}
_ATTENTION_INPUTS = {
    "query_value": lambda: [rnnkit.Input((None, 4)), rnnkit.Input((None, 3))],
    "query_value_key": lambda: [
        rnnkit.Input((5, 4)),
        rnnkit.Input((None, 3)),
        rnnkit.Input((None, 4)),
    ],
    "static": lambda: [rnnkit.Input((5, 4), batch_size=2), rnnkit.Input((6, 4), batch_size=2)],
    "masked": lambda: [
        layers.Masking()(rnnkit.Input((None, 4))),
        layers.Masking()(rnnkit.Input((None, 4))),
    ],
    "masked_value_only": lambda: [
        rnnkit.Input((None, 4)),
        layers.Masking()(rnnkit.Input((None, 4))),
    ],
    "float64": lambda: [rnnkit.Input((None, 4), dtype="float64") for _ in range(2)],
    "key_features_differ": lambda: [
        rnnkit.Input((None, 4)),
        rnnkit.Input((None, 3)),
        rnnkit.Input((None, 5)),
    ],
    "unknown_features": lambda: [rnnkit.Input((None, None)), rnnkit.Input((None, 3))],
}


@pytest.mark.parametrize("make_inputs", sorted(_ATTENTION_INPUTS))
@pytest.mark.parametrize("make_layer", sorted(_ATTENTION))
def test_attention_from_shapes_equals_the_placeholder_run(make_layer, make_inputs, monkeypatch):
    _assert_told_as_run(
        _ATTENTION[make_layer],
        _ATTENTION_INPUTS[make_inputs](),
        monkeypatch,
        make_inputs != "unknown_features",
    )


def test_a_placeholder_run_converts_each_weight_once(monkeypatch):
    """The fake mode remembers a real tensor's fake copy only while that copy lives: the
    placeholder run holds its layer's fake weights, so that a weight used by many ops is
    converted once per run (two runs), not once per op."""
    from torch._subclasses.fake_tensor import FakeTensorConverter

    class ManyUses(layers.Layer):  # a custom layer: it runs on placeholders
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], input_shape[-1]), name="k")

        def call(self, inputs):
            for _ in range(6):
                inputs = torch.tanh(inputs @ self.kernel)
            return inputs

    layer = ManyUses()
    layer.build((None, 4))
    conversions = []
    original = FakeTensorConverter.from_real_tensor

    def counted(self, fake_mode, t, *args, **kwargs):
        if self._get_memo(t) is None:
            conversions.append(tuple(t.shape))
        return original(self, fake_mode, t, *args, **kwargs)

    monkeypatch.setattr(FakeTensorConverter, "from_real_tensor", counted)
    out = layer(rnnkit.Input((4,)))
    assert out.shape == (None, 4)
    assert conversions == [(4, 4), (4, 4)]
