"""model.summary(): Keras' table, the guide's four summaries, options and sizes."""

import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.layers import Layer
from rnnkit.models.summary import readable_memory_size

HAS_RNN = all(hasattr(layers, n) for n in ("LSTM", "GRU", "SimpleRNN", "Bidirectional"))

# The guide's printed summaries (seed 000, Keras 2.15), whitespace collapsed as in the seed.
SEED_SUMMARIES = [
    'Model: "sequential" _________________________________________________________________ Layer (type) Output Shape Param # ================================================================= embedding (Embedding) (None, None, 64) 64000 lstm (LSTM) (None, 128) 98816 dense (Dense) (None, 10) 1290 ================================================================= Total params: 164106 (641.04 KB) Trainable params: 164106 (641.04 KB) Non-trainable params: 0 (0.00 Byte) _________________________________________________________________',
    'Model: "sequential_1" _________________________________________________________________ Layer (type) Output Shape Param # ================================================================= embedding_1 (Embedding) (None, None, 64) 64000 gru (GRU) (None, None, 256) 247296 simple_rnn (SimpleRNN) (None, 128) 49280 dense_1 (Dense) (None, 10) 1290 ================================================================= Total params: 361866 (1.38 MB) Trainable params: 361866 (1.38 MB) Non-trainable params: 0 (0.00 Byte) _________________________________________________________________',
    "Model: \"model\" __________________________________________________________________________________________________ Layer (type) Output Shape Param # Connected to ================================================================================================== input_1 (InputLayer) [(None, None)] 0 [] input_2 (InputLayer) [(None, None)] 0 [] embedding_2 (Embedding) (None, None, 64) 64000 ['input_1[0][0]'] embedding_3 (Embedding) (None, None, 64) 128000 ['input_2[0][0]'] encoder (LSTM) [(None, 64), 33024 ['embedding_2[0][0]'] (None, 64), (None, 64)] decoder (LSTM) (None, 64) 33024 ['embedding_3[0][0]', 'encoder[0][1]', 'encoder[0][2]'] dense_2 (Dense) (None, 10) 650 ['decoder[0][0]'] ================================================================================================== Total params: 258698 (1010.54 KB) Trainable params: 258698 (1010.54 KB) Non-trainable params: 0 (0.00 Byte) __________________________________________________________________________________________________",
    'Model: "sequential_2" _________________________________________________________________ Layer (type) Output Shape Param # ================================================================= bidirectional (Bidirection (None, 5, 128) 38400 al) bidirectional_1 (Bidirecti (None, 64) 41216 onal) dense_3 (Dense) (None, 10) 650 ================================================================= Total params: 80266 (313.54 KB) Trainable params: 80266 (313.54 KB) Non-trainable params: 0 (0.00 Byte) _________________________________________________________________',
]


def _keras3_style(text):
    """The seed's numbers as the issue asks for them: thousands separators (Keras 3), bytes
    as "B" (Keras 3), and Keras 3's names for the two functional Inputs (Keras 2 said
    input_1/input_2)."""
    for old, new in [
        ("164106", "164,106"),
        ("361866", "361,866"),
        ("258698", "258,698"),
        ("80266", "80,266"),
        ("0.00 Byte", "0.00 B"),
        ("input_1", "input_layer"),
        ("input_2", "input_layer_1"),
    ]:
        text = text.replace(old, new)
    return text


def _capture(model, **kwargs):
    lines = []
    model.summary(print_fn=lines.append, **kwargs)
    return lines


def _collapsed(lines):
    return " ".join(" ".join(lines).split())


def _guide_models():
    """The guide's four summary models, built in the guide's order (so names match)."""
    models = []
    model = rnnkit.Sequential()
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.LSTM(128))
    model.add(layers.Dense(10))
    models.append(model)

    model = rnnkit.Sequential()
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.GRU(256, return_sequences=True))
    model.add(layers.SimpleRNN(128))
    model.add(layers.Dense(10))
    models.append(model)

    encoder_input = layers.Input(shape=(None,))
    encoder_embedded = layers.Embedding(input_dim=1000, output_dim=64)(encoder_input)
    output, state_h, state_c = layers.LSTM(64, return_state=True, name="encoder")(encoder_embedded)
    decoder_input = layers.Input(shape=(None,))
    decoder_embedded = layers.Embedding(input_dim=2000, output_dim=64)(decoder_input)
    decoder_output = layers.LSTM(64, name="decoder")(
        decoder_embedded, initial_state=[state_h, state_c]
    )
    output = layers.Dense(10)(decoder_output)
    models.append(rnnkit.Model([encoder_input, decoder_input], output))

    model = rnnkit.models.Sequential()
    model.add(layers.Bidirectional(layers.LSTM(64, return_sequences=True), input_shape=(5, 10)))
    model.add(layers.Bidirectional(layers.LSTM(32)))
    model.add(layers.Dense(10))
    models.append(model)
    return models


@pytest.mark.skipif(not HAS_RNN, reason="needs the recurrent layers")
def test_the_guides_four_summaries():
    models = _guide_models()
    assert [m.count_params() for m in models] == [164106, 361866, 258698, 80266]
    for model, seed in zip(models, SEED_SUMMARIES):
        assert _collapsed(_capture(model)) == _keras3_style(seed)


@pytest.mark.skipif(not HAS_RNN, reason="needs the recurrent layers")
def test_first_guide_summary_exact_layout():
    model = _guide_models()[0]
    expected = [
        'Model: "sequential"',
        "_" * 65,
        " Layer (type)                Output Shape              Param #   ",
        "=" * 65,
        " embedding (Embedding)       (None, None, 64)          64000     ",
        " " * 65,
        " lstm (LSTM)                 (None, 128)               98816     ",
        " " * 65,
        " dense (Dense)               (None, 10)                1290      ",
        " " * 65,
        "=" * 65,
        "Total params: 164,106 (641.04 KB)",
        "Trainable params: 164,106 (641.04 KB)",
        "Non-trainable params: 0 (0.00 B)",
        "_" * 65,
    ]
    assert _capture(model) == expected


@pytest.mark.skipif(not HAS_RNN, reason="needs the recurrent layers")
def test_functional_summary_wraps_shapes_and_connections():
    lines = _capture(_guide_models()[2])
    assert all(len(line) == 98 for line in lines[1:4])
    start = next(i for i, line in enumerate(lines) if line.startswith(" encoder (LSTM)"))
    assert lines[start : start + 3] == [
        " encoder (LSTM)                 [(None, 64),         33024       ['embedding_2[0][0]']            ",
        "                                 (None, 64),                                                      ",
        "                                 (None, 64)]                                                      ",
    ]
    start = next(i for i, line in enumerate(lines) if line.startswith(" decoder (LSTM)"))
    assert [line.strip() for line in lines[start : start + 3]] == [
        "decoder (LSTM)                 (None, 64)           33024       ['embedding_3[0][0]',",
        "'encoder[0][1]',",
        "'encoder[0][2]']",
    ]


class Scale(Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")
        self.count = self.add_weight(shape=(), initializer="zeros", name="count", trainable=False)

    def call(self, inputs):
        return inputs * self.w


def test_sequential_like_functional_model_has_three_columns_and_input_row():
    x = rnnkit.Input(shape=(3,))
    model = rnnkit.Model(x, layers.Dense(2)(Scale()(x)), name="chain")
    lines = _capture(model)
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    assert lines[4].split() == ["input_layer", "(InputLayer)", "[(None,", "3)]", "0"]
    assert lines[6].split() == ["scale", "(Scale)", "(None,", "3)", "4"]
    assert lines[-4:-1] == [
        "Total params: 12 (48.00 B)",
        "Trainable params: 11 (44.00 B)",
        "Non-trainable params: 1 (4.00 B)",
    ]


def test_shared_layer_gives_connected_to_with_node_indices():
    a, b = rnnkit.Input(shape=(3,)), rnnkit.Input(shape=(3,))
    shared = layers.Dense(2, name="shared")
    model = rnnkit.Model([a, b], [shared(a), shared(b)])
    text = _collapsed(_capture(model))
    assert "Connected to" in text
    assert "shared (Dense) multiple 8 ['input_layer[0][0]', 'input_layer_1[0][0]']" not in text
    assert "shared (Dense) (None, 2) 8 ['input_layer[0][0]', 'input_layer_1[0][0]']" in text


def test_multiple_shapes_shown_as_multiple():
    x = rnnkit.Input(shape=(3,))
    shared = layers.Activation("relu")
    y = layers.Dense(4)(x)
    model = rnnkit.Model(x, [shared(x), shared(y)])
    assert "activation (Activation) multiple 0" in _collapsed(_capture(model))


def test_show_trainable_expand_nested_and_frozen_layers():
    inner_in = rnnkit.Input(shape=(3,))
    inner = rnnkit.Model(inner_in, layers.Dense(4)(inner_in), name="inner")
    inner.trainable = False
    x = rnnkit.Input(shape=(3,))
    model = rnnkit.Model(x, layers.Dense(2)(inner(x)), name="outer")
    lines = _capture(model, expand_nested=True, show_trainable=True)
    assert len(lines[1]) == 65 + 11 and lines[2].rstrip().endswith("Trainable")
    row = next(line for line in lines if line.startswith(" inner (Model)"))
    assert row.split()[-1] == "N"
    assert any(line.startswith("|¯") for line in lines)
    nested = next(line for line in lines if line.startswith("| dense (Dense)"))
    assert nested.endswith("|") and len(nested) == 76
    assert "Trainable params: 10 (40.00 B)" in lines
    assert "Non-trainable params: 16 (64.00 B)" in lines


def test_line_length_positions_and_default_print(capsys):
    x = rnnkit.Input(shape=(3,))
    model = rnnkit.Model(x, layers.Dense(2)(x))
    lines = _capture(model, line_length=40, positions=[20, 32, 40])
    assert all(len(line) == 40 for line in lines[1:4])
    assert any(line.startswith(" input_layer (Inpu") for line in lines)
    model.summary()
    assert 'Model: "model"' in capsys.readouterr().out
    with pytest.raises(ValueError, match="positions must have 3 entries"):
        model.summary(positions=[0.5, 1.0])


def test_unbuilt_sequential_raises_and_subclassed_shows_its_call_shapes():
    model = rnnkit.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="has not been built yet"):
        model.summary()

    class Sub(rnnkit.Model):
        def __init__(self):
            super().__init__()
            self.used = layers.Dense(2)
            self.unused = layers.Dense(3)

        def call(self, inputs):
            return self.used(inputs)

    sub = Sub()
    sub(torch.ones(1, 4))
    text = _collapsed(_capture(sub))
    assert "dense_1 (Dense) (1, 2) 10" in text  # the shape of the call that built it (Keras)
    assert "dense_2 (Dense) multiple 0 (unused)" in text
    assert "Total params: 10 (40.00 B)" in text


def test_float64_weights_count_eight_bytes():
    x = rnnkit.Input(shape=(3,), dtype="float64")
    model = rnnkit.Model(x, layers.Dense(2, dtype="float64")(x))
    assert "Total params: 8 (64.00 B)" in _capture(model)


def test_readable_memory_size():
    assert readable_memory_size(0) == "0.00 B"
    assert readable_memory_size(1023) == "1023.00 B"
    assert readable_memory_size(164106 * 4) == "641.04 KB"
    assert readable_memory_size(361866 * 4) == "1.38 MB"
    assert readable_memory_size(258698 * 4) == "1010.54 KB"
