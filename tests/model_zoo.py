"""A catalogue of the model architectures used across the test suite and the examples.

Each builder returns a :class:`ZooModel`: a fresh model (built, random weights), sample inputs
it accepts and the ``custom_objects`` that loading it needs. Calling a builder twice gives two
models of the same architecture with different weights (a "twin"), so weights can be moved
between them. ``ZOO`` maps a short name to each builder; ``tests/test_round_trip.py`` saves and
reloads every one of them.

The custom classes the guide's examples define (``NestedCell``, a cell with constants, a
subclassed model) live here too, registered under the package ``"model_zoo"``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit import layers
from rnnkit.saving import register_keras_serializable


@dataclasses.dataclass
class ZooModel:
    """A model, inputs it accepts, and what :func:`rnnkit.saving.load_model` needs for it."""

    model: rnnkit.Model
    inputs: Any
    custom_objects: dict[str, Any] | None = None


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _floats(*shape: int, seed: int = 0) -> np.ndarray:
    return _rng(seed).standard_normal(shape).astype("float32")


def _perturb_batch_norm(model: rnnkit.Model) -> None:
    """Give every BatchNormalization non-trivial weights and moving statistics, so that a
    lost or swapped non-trainable weight changes the predictions."""
    for layer in model._flatten_layers():
        if isinstance(layer, layers.BatchNormalization):
            with torch.no_grad():
                for w in layer.weights:
                    w.copy_(w + 0.5 + torch.rand(w.shape, dtype=w.dtype))


# ----------------------------------------------------------------------------- custom classes
@register_keras_serializable(package="model_zoo")
class NestedCell(layers.Layer):
    """The guide's cell with nested inputs, outputs and states:
    inputs ``[(batch, i1), (batch, i2, i3)]``, states ``[(batch, unit_1),
    (batch, unit_2, unit_3)]``; each state is the running sum of its outputs."""

    def __init__(self, unit_1: int, unit_2: int, unit_3: int, **kwargs: Any) -> None:
        self.unit_1 = unit_1
        self.unit_2 = unit_2
        self.unit_3 = unit_3
        self.state_size = [(unit_1,), (unit_2, unit_3)]
        self.output_size = [(unit_1,), (unit_2, unit_3)]
        super().__init__(**kwargs)

    def build(self, input_shapes: Any) -> None:
        i1 = input_shapes[0][1]
        i2, i3 = input_shapes[1][1], input_shapes[1][2]
        self.kernel_1 = self.add_weight(
            shape=(i1, self.unit_1), initializer="uniform", name="kernel_1"
        )
        self.kernel_2_3 = self.add_weight(
            shape=(i2, i3, self.unit_2, self.unit_3), initializer="uniform", name="kernel_2_3"
        )

    def call(self, inputs: Any, states: Any) -> Any:
        input_1, input_2 = rnnkit.tree.flatten(inputs)
        s1, s2 = states
        output_1 = input_1 @ self.kernel_1
        output_2_3 = torch.einsum("bij,ijkl->bkl", input_2, self.kernel_2_3)
        return (output_1, output_2_3), (s1 + output_1, s2 + output_2_3)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "unit_1": self.unit_1,
            "unit_2": self.unit_2,
            "unit_3": self.unit_3,
        }


@register_keras_serializable(package="model_zoo")
class ConstantsCell(layers.Layer):
    """``h_t = tanh(x_t W + c V + h_{t-1})`` with a per-sequence constant ``c``; ``build``
    receives ``[step_shape, constant_shape]`` (tf.keras' convention)."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape: Any) -> None:
        step_shape, constant_shape = input_shape
        self.kernel = self.add_weight(shape=(step_shape[-1], self.units), name="kernel")
        self.constant_kernel = self.add_weight(
            shape=(constant_shape[-1], self.units), name="constant_kernel"
        )

    def call(self, inputs: Any, states: Any, constants: Any) -> Any:
        h = torch.tanh(inputs @ self.kernel + constants[0] @ self.constant_kernel + states[0])
        return h, [h]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


class Scale(layers.Layer):
    """``y = x * factor`` with a trainable scalar; deliberately not registered, so loading a
    model that uses it needs ``custom_objects``."""

    def __init__(self, init: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape: Any) -> None:
        self.factor = self.add_weight(shape=(), initializer="ones", name="factor")
        with torch.no_grad():
            self.factor.fill_(self.init + float(torch.rand(())))

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "init": self.init}


@register_keras_serializable(package="model_zoo")
class TextClassifier(rnnkit.Model):
    """A subclassed model: Embedding (mask_zero) -> LSTM -> Dropout -> Dense."""

    def __init__(self, vocabulary: int = 50, units: int = 6, classes: int = 3, **kwargs: Any):
        super().__init__(**kwargs)
        self.vocabulary, self.units, self.classes = vocabulary, units, classes
        self.embedding = layers.Embedding(vocabulary, 4, mask_zero=True)
        self.lstm = layers.LSTM(units)
        self.dropout = layers.Dropout(0.5)
        self.head = layers.Dense(classes)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self.lstm(self.embedding(inputs))
        return self.head(self.dropout(x, training=training))

    def get_config(self) -> dict[str, Any]:
        return {
            "vocabulary": self.vocabulary,
            "units": self.units,
            "classes": self.classes,
            "name": self.name,
        }


@register_keras_serializable(package="model_zoo")
class TwoTowers(rnnkit.Model):
    """A subclassed model with two inputs ``[sequence, side]``, a Bidirectional GRU, a nested
    Sequential and two outputs."""

    def __init__(self, units: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.rnn = layers.Bidirectional(layers.GRU(units), merge_mode="sum")
        self.side = rnnkit.Sequential([layers.Dense(units, activation="relu"), layers.Dense(units)])
        self.norm = layers.BatchNormalization()
        self.head = layers.Dense(2)

    def call(self, inputs: Any) -> Any:
        sequence, side = inputs
        merged = self.norm(self.rnn(sequence) + self.side(side))
        return [self.head(merged), merged]

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units, "name": self.name}


@register_keras_serializable(package="model_zoo")
class SequenceEncoder(rnnkit.Model):
    """A subclassed model used as a layer: GRU(return_sequences) -> LSTM -> Dense(tanh)."""

    def __init__(self, units: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.gru = layers.GRU(units, return_sequences=True)
        self.lstm = layers.LSTM(units)
        self.dense = layers.Dense(units, activation="tanh")

    def call(self, inputs: Any) -> Any:
        return self.dense(self.lstm(self.gru(inputs)))

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units, "name": self.name}


# ------------------------------------------------------------------------- the guide's models
def guide_embedding_lstm() -> ZooModel:
    """The guide's first model: Embedding(1000, 64) -> LSTM(128) -> Dense(10), built by
    ``add`` after an Input."""
    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(None,)))
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.LSTM(128))
    model.add(layers.Dense(10))
    return ZooModel(model, _rng().integers(0, 1000, (3, 7)))


def guide_gru_simple_rnn() -> ZooModel:
    """The guide's second model: Embedding -> GRU(256, return_sequences) -> SimpleRNN(128)."""
    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(None,)))
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.GRU(256, return_sequences=True))
    model.add(layers.SimpleRNN(128))
    model.add(layers.Dense(10))
    return ZooModel(model, _rng().integers(0, 1000, (3, 7)))


def guide_encoder_decoder() -> ZooModel:
    """The guide's encoder-decoder: the encoder LSTM's states start the decoder LSTM."""
    encoder_input = layers.Input(shape=(None,))
    encoder_embedded = layers.Embedding(input_dim=1000, output_dim=64)(encoder_input)
    _, state_h, state_c = layers.LSTM(64, return_state=True, name="encoder")(encoder_embedded)
    decoder_input = layers.Input(shape=(None,))
    decoder_embedded = layers.Embedding(input_dim=2000, output_dim=64)(decoder_input)
    decoder_output = layers.LSTM(64, name="decoder")(
        decoder_embedded, initial_state=[state_h, state_c]
    )
    output = layers.Dense(10)(decoder_output)
    model = rnnkit.Model([encoder_input, decoder_input], output)
    rng = _rng()
    return ZooModel(model, [rng.integers(0, 1000, (3, 6)), rng.integers(0, 2000, (3, 4))])


def guide_bidirectional() -> ZooModel:
    """The guide's Bidirectional(LSTM(64, return_sequences)) -> Bidirectional(LSTM(32))."""
    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(5, 10)))
    model.add(layers.Bidirectional(layers.LSTM(64, return_sequences=True)))
    model.add(layers.Bidirectional(layers.LSTM(32)))
    model.add(layers.Dense(10))
    return ZooModel(model, _floats(3, 5, 10))


def guide_bidirectional_custom_backward() -> ZooModel:
    """Bidirectional with its own backward layer (relu, go_backwards)."""
    forward_layer = layers.LSTM(16, return_sequences=True)
    backward_layer = layers.LSTM(16, activation="relu", return_sequences=True, go_backwards=True)
    model = rnnkit.Sequential()
    model.add(layers.Input(shape=(5, 10)))
    model.add(layers.Bidirectional(forward_layer, backward_layer=backward_layer))
    model.add(layers.Dense(10))
    return ZooModel(model, _floats(3, 5, 10))


def guide_nested_cell() -> ZooModel:
    """RNN(NestedCell): two inputs of different ranks, two outputs (the guide's last model)."""
    input_1 = rnnkit.Input((None, 6))
    input_2 = rnnkit.Input((None, 4, 3))
    outputs = layers.RNN(NestedCell(4, 3, 5))((input_1, input_2))
    model = rnnkit.Model([input_1, input_2], outputs)
    rng = _rng()
    return ZooModel(model, [rng.random((2, 5, 6)), rng.random((2, 5, 4, 3))])


def mnist_lstm() -> ZooModel:
    """The guide's MNIST classifier: LSTM(64, input_shape=(None, 28)) -> BN -> Dense(10)."""
    model = rnnkit.Sequential(
        [
            layers.LSTM(64, input_shape=(None, 28)),
            layers.BatchNormalization(),
            layers.Dense(10),
        ]
    )
    _perturb_batch_norm(model)
    return ZooModel(model, _rng().random((3, 28, 28)).astype("float32"))


def mnist_rnn_lstm_cell() -> ZooModel:
    """The MNIST classifier's generic twin: RNN(LSTMCell(64))."""
    model = rnnkit.Sequential(
        [
            layers.RNN(layers.LSTMCell(64), input_shape=(None, 28)),
            layers.BatchNormalization(),
            layers.Dense(10),
        ]
    )
    _perturb_batch_norm(model)
    return ZooModel(model, _rng().random((3, 28, 28)).astype("float32"))


def time_series() -> ZooModel:
    """Seed 004's regression: SimpleRNN(100, relu, return_sequences) -> TimeDistributed(Dense)."""
    model = rnnkit.Sequential(
        [
            layers.SimpleRNN(100, activation="relu", return_sequences=True, input_shape=(None, 1)),
            layers.TimeDistributed(layers.Dense(1)),
        ]
    )
    return ZooModel(model, _floats(2, 20, 1))


def stateful_lstm() -> ZooModel:
    """A stateful LSTM with a fixed batch size (call ``reset_states`` before comparing)."""
    model = rnnkit.Sequential(
        [layers.LSTM(4, stateful=True, batch_input_shape=(4, None, 3)), layers.Dense(1)]
    )
    return ZooModel(model, _floats(4, 5, 3))


# ------------------------------------------------------------------- recurrent configurations
def bidirectional(merge_mode: str | None) -> ZooModel:
    """Bidirectional(GRU(return_sequences)) with ``merge_mode``; None gives two outputs."""
    x = rnnkit.Input(shape=(5, 3))
    out = layers.Bidirectional(layers.GRU(4, return_sequences=True), merge_mode=merge_mode)(x)
    return ZooModel(rnnkit.Model(x, out), _floats(2, 5, 3))


def masked_embedding() -> ZooModel:
    """Embedding(mask_zero) -> LSTM(return_sequences) -> GRU -> Dense(softmax) on padded
    integer sequences."""
    model = rnnkit.Sequential(
        [
            rnnkit.Input(shape=(6,), dtype="int32"),
            layers.Embedding(12, 4, mask_zero=True),
            layers.LSTM(5, return_sequences=True),
            layers.GRU(3),
            layers.Dense(2, activation="softmax"),
        ]
    )
    return ZooModel(model, np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]]))


def masking_lazy_sequential() -> ZooModel:
    """No Input: Masking -> Bidirectional(LSTM) -> Dropout -> SimpleRNN, built by a call."""
    model = rnnkit.Sequential(
        [
            layers.Masking(0.0),
            layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
            layers.Dropout(0.3),
            layers.SimpleRNN(2),
        ]
    )
    x = _floats(2, 5, 3)
    x[0, 3:] = 0.0
    model(x)
    return ZooModel(model, x)


def lazy_sequential_add() -> ZooModel:
    """``Sequential()`` + ``add`` without any shape: built by its first call."""
    model = rnnkit.Sequential(name="lazy")
    model.add(layers.GRU(5, return_sequences=True, reset_after=False))
    model.add(layers.SimpleRNN(3, go_backwards=True))
    model.add(layers.Dense(2, activation="tanh"))
    x = _floats(2, 4, 3)
    model(x)
    return ZooModel(model, x)


def embedding_first_sequential() -> ZooModel:
    """Keras 2 style: a first Embedding builds the Sequential model without an Input."""
    model = rnnkit.Sequential()
    model.add(layers.Embedding(input_dim=100, output_dim=8))
    model.add(layers.LSTM(4, return_sequences=True))
    model.add(layers.Dense(3))
    return ZooModel(model, _rng().integers(0, 100, (2, 5)))


def mixed_functional() -> ZooModel:
    """Two inputs: Bidirectional(GRU(reset_after=False)) -> RNN([GRUCell, SimpleRNNCell]) ->
    TimeDistributed(Dense) -> BN -> SimpleRNN, concatenated with a Dense side branch."""
    a = rnnkit.Input(shape=(5, 3), name="seq")
    b = rnnkit.Input(shape=(4,), name="side")
    x = layers.Bidirectional(layers.GRU(4, return_sequences=True, reset_after=False))(a)
    x = layers.RNN([layers.GRUCell(3), layers.SimpleRNNCell(2)], return_sequences=True)(x)
    x = layers.TimeDistributed(layers.Dense(3))(x)
    x = layers.BatchNormalization()(x)
    x = layers.SimpleRNN(3)(x)
    out = layers.Dense(2)(layers.concatenate([x, layers.Dense(3)(b)]))
    model = rnnkit.Model([a, b], out)
    _perturb_batch_norm(model)
    return ZooModel(model, [_floats(2, 5, 3), _floats(2, 4, seed=1)])


def multi_input_multi_output() -> ZooModel:
    """Named inputs, an Add merge, an LSTM branch, two heads."""
    a = rnnkit.Input(shape=(3,), name="a")
    b = rnnkit.Input(shape=(5,), name="b")
    seq = rnnkit.Input(shape=(None, 2), name="seq")
    merged = layers.Add()([layers.Dense(4)(a), layers.Dense(4)(b), layers.LSTM(4)(seq)])
    outputs = [layers.Dense(2, name="first")(merged), layers.Dense(1, name="second")(merged)]
    model = rnnkit.Model([a, b, seq], outputs)
    return ZooModel(model, [_floats(3, 3), _floats(3, 5, seed=1), _floats(3, 4, 2, seed=2)])


def dict_inputs_outputs() -> ZooModel:
    """Inputs and outputs given as dicts."""
    tokens = rnnkit.Input(shape=(None,), name="tokens", dtype="int64")
    side = rnnkit.Input(shape=(2,), name="side")
    h = layers.GRU(4)(layers.Embedding(20, 3)(tokens))
    both = layers.Concatenate()([h, side])
    outputs = {"score": layers.Dense(1)(both), "label": layers.Dense(3, activation="softmax")(h)}
    model = rnnkit.Model({"tokens": tokens, "side": side}, outputs)
    inputs = {"tokens": _rng().integers(0, 20, (2, 6)), "side": _floats(2, 2)}
    return ZooModel(model, inputs)


def stacked_cells() -> ZooModel:
    """RNN(StackedRNNCells([LSTMCell, GRUCell, SimpleRNNCell])) returning sequences and every
    cell's states."""
    x = rnnkit.Input(shape=(6, 3))
    cells = layers.StackedRNNCells(
        [layers.LSTMCell(4), layers.GRUCell(3, reset_after=False), layers.SimpleRNNCell(2)]
    )
    outputs = layers.RNN(cells, return_sequences=True, return_state=True)(x)
    return ZooModel(rnnkit.Model(x, outputs), _floats(2, 6, 3))


def return_state_outputs() -> ZooModel:
    """LSTM(return_sequences, return_state): the sequence and both states as outputs."""
    x = rnnkit.Input(shape=(None, 3))
    seq, h, c = layers.LSTM(4, return_sequences=True, return_state=True)(x)
    return ZooModel(rnnkit.Model(x, [seq, h, c]), _floats(2, 5, 3))


def initial_state_from_inputs() -> ZooModel:
    """States given as model inputs: LSTM(x, initial_state=[h, c]) and GRU(y, initial_state)."""
    x = rnnkit.Input(shape=(None, 3))
    h = rnnkit.Input(shape=(4,))
    c = rnnkit.Input(shape=(4,))
    seq = layers.LSTM(4, return_sequences=True)(x, initial_state=[h, c])
    out = layers.GRU(4)(seq, initial_state=[h])
    model = rnnkit.Model([x, h, c], out)
    return ZooModel(model, [_floats(2, 5, 3), _floats(2, 4, seed=1), _floats(2, 4, seed=2)])


def constants_from_input() -> ZooModel:
    """A registered custom cell that reads ``constants`` given by a model Input."""
    x = rnnkit.Input(shape=(None, 3))
    constant = rnnkit.Input(shape=(6,))
    out = layers.RNN(ConstantsCell(5), return_sequences=True)(x, constants=[constant])
    out = layers.Bidirectional(layers.RNN(ConstantsCell(2)), merge_mode="ave")(
        out, constants=[constant]
    )
    model = rnnkit.Model([x, constant], out)
    return ZooModel(model, [_floats(2, 4, 3), _floats(2, 6, seed=1)])


def cell_wrappers() -> ZooModel:
    """RNN over DropoutCell(OutputProjectionCell(LSTMCell)) (dropout only in training)."""
    cell = layers.DropoutCell(
        layers.OutputProjectionCell(layers.LSTMCell(6), 3, activation="tanh"),
        input_keep_prob=0.8,
        state_keep_prob=0.9,
    )
    x = rnnkit.Input(shape=(5, 3))
    model = rnnkit.Model(x, layers.RNN(cell, return_sequences=True)(x))
    return ZooModel(model, _floats(2, 5, 3))


def regularized_and_constrained() -> ZooModel:
    """Regularizers, constraints, initializers, unroll and use_cudnn=False in the config."""
    model = rnnkit.Sequential(
        [
            rnnkit.Input(shape=(4, 3)),
            layers.LSTM(
                5,
                return_sequences=True,
                unit_forget_bias=False,
                kernel_regularizer="l2",
                recurrent_constraint="max_norm",
                bias_initializer="ones",
                dropout=0.2,
                recurrent_dropout=0.1,
                use_cudnn=False,
            ),
            layers.GRU(3, unroll=True, activity_regularizer="l1", go_backwards=True),
            layers.Dense(2, kernel_constraint="non_neg", bias_regularizer="l1_l2"),
        ]
    )
    return ZooModel(model, _floats(2, 4, 3))


def core_layers() -> ZooModel:
    """Reshape, Flatten, Activation, Masking and Dropout around a SimpleRNN."""
    model = rnnkit.Sequential(
        [
            rnnkit.Input(shape=(12,)),
            layers.Reshape((4, 3)),
            layers.Masking(0.0),
            layers.SimpleRNN(3, return_sequences=True),
            layers.Flatten(),
            layers.Dropout(0.1),
            layers.Dense(2),
            layers.Activation("softmax"),
        ]
    )
    return ZooModel(model, _floats(2, 12))


def float64_model() -> ZooModel:
    """A model whose layers compute in float64."""
    x = rnnkit.Input(shape=(4, 3), dtype="float64")
    h = layers.GRU(3, dtype="float64")(x)
    model = rnnkit.Model(x, layers.Dense(2, dtype="float64")(h))
    return ZooModel(model, _rng().standard_normal((2, 4, 3)))


def nested_models() -> ZooModel:
    """A functional encoder and a Sequential head inside a functional model."""
    inner_in = rnnkit.Input(shape=(None, 3))
    _, h, c = layers.LSTM(4, return_state=True)(inner_in)
    encoder = rnnkit.Model(inner_in, layers.concatenate([h, c]), name="encoder")
    head = rnnkit.Sequential(
        [rnnkit.Input(shape=(8,)), layers.Dense(4, activation="relu"), layers.Dense(2)],
        name="head",
    )
    x = rnnkit.Input(shape=(None, 3))
    model = rnnkit.Model(x, head(encoder(x)), name="outer")
    return ZooModel(model, _floats(2, 5, 3))


def shared_layer() -> ZooModel:
    """One GRU applied to two inputs (two nodes of the same layer)."""
    a = rnnkit.Input(shape=(None, 3))
    b = rnnkit.Input(shape=(None, 3))
    shared = layers.GRU(4, name="shared")
    out = layers.Dense(1)(layers.concatenate([shared(a), shared(b)]))
    return ZooModel(rnnkit.Model([a, b], out), [_floats(2, 5, 3), _floats(2, 3, 3, seed=1)])


def custom_unregistered_layer() -> ZooModel:
    """A custom layer that is not registered: loading needs ``custom_objects``."""
    x = rnnkit.Input(shape=(4, 3))
    out = Scale(0.5)(layers.SimpleRNN(3)(x))
    return ZooModel(rnnkit.Model(x, out), _floats(2, 4, 3), {"Scale": Scale})


def subclassed_classifier() -> ZooModel:
    """A registered subclassed model, built by its first call on integer sequences."""
    model = TextClassifier(50, 6, 3)
    x = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    model(x)
    return ZooModel(model, x)


def subclassed_two_towers() -> ZooModel:
    """A registered subclassed model with two inputs, a nested Sequential and BN, built with
    ``build([shape, shape])``."""
    model = TwoTowers(4)
    model.build([(None, 5, 3), (None, 2)])
    _perturb_batch_norm(model)
    return ZooModel(model, [_floats(2, 5, 3), _floats(2, 2, seed=1)])


def subclassed_inside_functional() -> ZooModel:
    """A registered subclassed model called on an Input inside a functional model."""
    x = rnnkit.Input(shape=(None, 3))
    out = layers.Dense(2)(SequenceEncoder(5)(x))
    return ZooModel(rnnkit.Model(x, out), _floats(2, 6, 3))


def subclassed_inside_sequential() -> ZooModel:
    """A registered subclassed model as a layer of a Sequential model."""
    model = rnnkit.Sequential([rnnkit.Input(shape=(6, 3)), SequenceEncoder(3), layers.Dense(1)])
    return ZooModel(model, _floats(2, 6, 3))


def bidirectional_states() -> ZooModel:
    """Bidirectional(LSTM(return_state)) whose four states are outputs, and whose hidden
    states start a second Bidirectional(GRU)."""
    x = rnnkit.Input(shape=(5, 3))
    seq, fh, fc, bh, bc = layers.Bidirectional(
        layers.LSTM(4, return_sequences=True, return_state=True)
    )(x)
    out = layers.Bidirectional(layers.GRU(4))(seq, initial_state=[fh, bh])
    return ZooModel(rnnkit.Model(x, [out, fh, fc, bh, bc]), _floats(2, 5, 3))


def conv_pooling_seq2seq() -> ZooModel:
    """Conv1D/Conv2D, pooling, padding, cropping, up-sampling and RepeatVector around LSTMs."""
    x = rnnkit.Input(shape=(None, 3))
    h = layers.Conv1D(4, 3, padding="causal", activation="relu")(x)
    h = layers.MaxPooling1D(2, padding="same")(layers.SpatialDropout1D(0.2)(h))
    h = layers.UpSampling1D(2)(layers.Cropping1D((0, 1))(layers.ZeroPadding1D(1)(h)))
    h = layers.LSTM(4)(layers.AveragePooling1D(2, strides=1, padding="same")(h))
    h = layers.LSTM(4, return_sequences=True)(layers.RepeatVector(3)(h))
    h = layers.Reshape((3, 4, 1))(layers.LayerNormalization()(h))
    h = layers.Permute((2, 1, 3))(layers.Conv2D(2, 2, padding="same")(h))
    out = layers.Dense(2)(layers.GlobalMaxPooling1D()(layers.Reshape((4, 6))(h)))
    return ZooModel(rnnkit.Model(x, out), _floats(2, 7, 3))


def attention_merges() -> ZooModel:
    """Embedding(mask_zero) -> LSTM, then Attention, AdditiveAttention and MultiHeadAttention
    over it, merged (Multiply, Subtract, Average, Dot) and pooled with the mask."""
    tokens = rnnkit.Input(shape=(None,), dtype="int64")
    h = layers.LSTM(6, return_sequences=True)(layers.Embedding(20, 6, mask_zero=True)(tokens))
    a = layers.Attention(use_scale=True, score_mode="concat")([h, h])
    b = layers.AdditiveAttention()([h, h])
    c = layers.MultiHeadAttention(2, 3, value_dim=2, dropout=0.1)(h, h)
    merged = layers.Average()([layers.Multiply()([a, b]), layers.Subtract()([c, a])])
    pooled = layers.GlobalAveragePooling1D()(merged)
    scores = layers.Dot(axes=1, normalize=True)([pooled, layers.GlobalAveragePooling1D()(h)])
    out = layers.Dense(2)(layers.Concatenate()([pooled, scores]))
    return ZooModel(rnnkit.Model(tokens, out), np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]]))


def conv_lstm_next_frame() -> ZooModel:
    """keras.io's next-frame prediction, small: ConvLSTM2D -> BatchNormalization ->
    ConvLSTM2D(1x1) -> Conv3D(sigmoid), over frame sequences of any length."""
    x = rnnkit.Input(shape=(None, 6, 6, 1))
    h = layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True, activation="relu")(x)
    h = layers.BatchNormalization()(h)
    h = layers.ConvLSTM2D(3, 1, padding="same", return_sequences=True)(h)
    out = layers.Conv3D(1, 3, padding="same", activation="sigmoid")(h)
    model = rnnkit.Model(x, out)
    _perturb_batch_norm(model)
    return ZooModel(model, _floats(2, 4, 6, 6, 1))


ZOO: dict[str, Callable[[], ZooModel]] = {
    "guide_embedding_lstm": guide_embedding_lstm,
    "guide_gru_simple_rnn": guide_gru_simple_rnn,
    "guide_encoder_decoder": guide_encoder_decoder,
    "guide_bidirectional": guide_bidirectional,
    "guide_bidirectional_custom_backward": guide_bidirectional_custom_backward,
    "guide_nested_cell": guide_nested_cell,
    "mnist_lstm": mnist_lstm,
    "mnist_rnn_lstm_cell": mnist_rnn_lstm_cell,
    "time_series": time_series,
    "stateful_lstm": stateful_lstm,
    **{
        f"bidirectional_{mode}": functools.partial(bidirectional, mode)
        for mode in ("concat", "sum", "mul", "ave", None)
    },
    "masked_embedding": masked_embedding,
    "masking_lazy_sequential": masking_lazy_sequential,
    "lazy_sequential_add": lazy_sequential_add,
    "embedding_first_sequential": embedding_first_sequential,
    "mixed_functional": mixed_functional,
    "multi_input_multi_output": multi_input_multi_output,
    "dict_inputs_outputs": dict_inputs_outputs,
    "stacked_cells": stacked_cells,
    "return_state_outputs": return_state_outputs,
    "initial_state_from_inputs": initial_state_from_inputs,
    "constants_from_input": constants_from_input,
    "cell_wrappers": cell_wrappers,
    "regularized_and_constrained": regularized_and_constrained,
    "core_layers": core_layers,
    "float64_model": float64_model,
    "nested_models": nested_models,
    "shared_layer": shared_layer,
    "custom_unregistered_layer": custom_unregistered_layer,
    "subclassed_classifier": subclassed_classifier,
    "subclassed_two_towers": subclassed_two_towers,
    "subclassed_inside_functional": subclassed_inside_functional,
    "subclassed_inside_sequential": subclassed_inside_sequential,
    "bidirectional_states": bidirectional_states,
    "conv_pooling_seq2seq": conv_pooling_seq2seq,
    "attention_merges": attention_merges,
    "conv_lstm_next_frame": conv_lstm_next_frame,
}
