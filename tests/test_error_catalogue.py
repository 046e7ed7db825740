"""A catalogue of bad calls: each raises the right error type, before any torch op, with a
message that names the layer (or model, or method), the argument, and the expected and
received values; none lets a torch internal message through."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit import Input, Model, Sequential, layers

X = np.zeros((2, 4, 3), "float32")
X2 = np.zeros((2, 3), "float32")
TORCH_PHRASES = (
    "mat1 and mat2",
    "size of tensor a",
    "index out of range in self",
    "shape '[",
    "Expected 3D",
)


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Path], object]
    error: type[Exception]
    words: tuple[str, ...]


def zeros(*shape, dtype="float32"):
    return np.zeros(shape, dtype)


def built(layer, *args, **kwargs):
    layer(*args, **kwargs)
    return layer


class Cell(layers.Layer):
    """A one-state cell with a kernel built on the step's features."""

    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

    def call(self, inputs, states):
        h = inputs @ self.kernel + states[0]
        return h, [h]


class ConstantsCell(Cell):
    """A cell with one constant, whose weights depend on the constant's features."""

    def build(self, input_shape):
        step, constant = input_shape
        self.kernel = self.add_weight(shape=(step[-1], self.units), name="kernel")
        self.constant_kernel = self.add_weight(shape=(constant[-1], self.units), name="ck")

    def call(self, inputs, states, constants):
        h = inputs @ self.kernel + states[0] + constants[0] @ self.constant_kernel
        return h, [h]


def constants_rnn():
    return built(layers.RNN(ConstantsCell(), name="r"), X, constants=[zeros(2, 5)])


def two_input_model():
    a, b = Input((3,), name="a"), Input((2,), name="b")
    out = layers.Dense(1, name="out")(layers.Concatenate()([a, b]))
    model = Model([a, b], out, name="two")
    model.compile("sgd", "mse")
    return model


def lstm_model(compile=True):
    x = Input((4, 3), name="x")
    out = layers.Dense(1, name="head")(layers.LSTM(2, name="enc")(x))
    model = Model(x, out, name="fm")
    if compile:
        model.compile("sgd", "mse")
    return model


def sequential_model():
    model = Sequential([Input((4, 3)), layers.LSTM(2, name="enc"), layers.Dense(1)], name="seq")
    model.compile("sgd", "mse")
    return model


def two_output_model(**compile_args):
    x = Input((3,), name="x")
    outputs = [layers.Dense(1, name="o1")(x), layers.Dense(2, name="o2")(x)]
    model = Model(x, outputs, name="two_out")
    model.compile("sgd", **{"loss": "mse", **compile_args})
    return model


def fit_two_outputs(model, y=None):
    y = [zeros(2, 1), zeros(2, 2)] if y is None else y
    return model.fit(X2, y, verbose=0)


def fit(model, x=X, y=None, **kwargs):
    return model.fit(x, zeros(2, 1) if y is None else y, verbose=0, **kwargs)


def load_weights_of_wrong_shape(tmp):
    path = tmp / "w.weights.safetensors"
    lstm_model().save_weights(path)
    x = Input((4, 3))
    other = Model(x, layers.Dense(1)(layers.LSTM(5)(x)))
    other.load_weights(path)


def load_a_text_file_as_model(tmp):
    path = tmp / "bad.keras"
    path.write_text("hello")
    rnnkit.saving.load_model(path)


def compile_sparse(model):
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


CASES = [
    # ----------------------------------------------------------------- core layers
    Case(
        "dense_wrong_feature_size",
        lambda tmp: built(layers.Dense(4, name="d"), X2)(zeros(2, 5)),
        ValueError,
        ("Dense 'd'", "inputs has shape (2, 5)", "expected (None, 3)"),
    ),
    Case(
        "dense_wrong_rank",
        lambda tmp: built(layers.Dense(4, name="d"), X2)(zeros(3)),
        ValueError,
        ("Dense 'd'", "inputs has shape (3,)", "rank >= 2"),
    ),
    Case("dense_bad_units", lambda tmp: layers.Dense(-1), ValueError, ("Dense", "units", "-1")),
    Case(
        "embedding_index_too_large",
        lambda tmp: layers.Embedding(10, 4, name="emb")(np.array([[1, 10]])),
        ValueError,
        ("Embedding 'emb'", "inputs", "input_dim=10", "received index 10"),
    ),
    Case(
        "embedding_negative_index",
        lambda tmp: layers.Embedding(10, 4, name="emb")(np.array([[1, -1]])),
        ValueError,
        ("Embedding 'emb'", "inputs", "[0, input_dim)", "received index -1"),
    ),
    Case(
        "masking_wrong_rank",
        lambda tmp: layers.Masking(name="m")(zeros(2)),
        ValueError,
        ("Masking 'm'", "inputs has shape (2,)", "rank >= 2"),
    ),
    Case(
        "batch_normalization_wrong_feature_size",
        lambda tmp: built(layers.BatchNormalization(name="bn"), X2)(zeros(2, 5), training=True),
        ValueError,
        ("BatchNormalization 'bn'", "inputs has shape (2, 5)", "expected (None, 3)"),
    ),
    Case(
        "batch_normalization_wrong_rank",
        lambda tmp: built(layers.BatchNormalization(name="bn"), X)(X2),
        ValueError,
        ("BatchNormalization 'bn'", "inputs has shape (2, 3)", "expected rank 3"),
    ),
    Case(
        "batch_normalization_axis_out_of_range",
        lambda tmp: layers.BatchNormalization(axis=3, name="bn")(X2),
        ValueError,
        ("BatchNormalization 'bn'", "axis 3", "rank 2"),
    ),
    Case(
        "batch_normalization_mask_shape",
        lambda tmp: layers.BatchNormalization(name="bn")(X, training=True, mask=np.ones((2, 5))),
        ValueError,
        ("BatchNormalization 'bn'", "mask has shape (2, 5)", "expected (2, 4)"),
    ),
    Case(
        "concatenate_batch_mismatch",
        lambda tmp: layers.Concatenate(name="c")([X2, zeros(3, 3)]),
        ValueError,
        ("Concatenate 'c'", "inputs", "batch", "(2, 3)", "(3, 3)"),
    ),
    Case(
        "concatenate_other_axis_mismatch",
        lambda tmp: layers.Concatenate(axis=1, name="c")([zeros(2, 3, 4), zeros(2, 3, 5)]),
        ValueError,
        ("Concatenate 'c'", "axis=1", "(2, 3, 4)", "(2, 3, 5)"),
    ),
    Case(
        "add_shape_mismatch",
        lambda tmp: layers.Add(name="a")([X2, zeros(2, 4)]),
        ValueError,
        ("Add 'a'", "inputs", "(2, 3)", "(2, 4)"),
    ),
    Case(
        "add_single_tensor",
        lambda tmp: layers.Add(name="a")(X2),
        ValueError,
        ("Add 'a'", "list", "(2, 3)"),
    ),
    Case(
        "reshape_wrong_size",
        lambda tmp: layers.Reshape((4,), name="r")(X2),
        ValueError,
        ("Reshape 'r'", "target_shape (4,)", "(3,)"),
    ),
    Case(
        "time_distributed_wrong_rank",
        lambda tmp: layers.TimeDistributed(layers.Dense(2), name="td")(X2),
        ValueError,
        ("TimeDistributed 'td'", "inputs", "(2, 3)", "3 dimensions"),
    ),
    Case(
        "time_distributed_wrong_feature_size",
        lambda tmp: built(layers.TimeDistributed(layers.Dense(2), name="td"), X)(zeros(2, 4, 5)),
        ValueError,
        ("TimeDistributed 'td'", "inputs has shape (2, 4, 5)", "expected (None, None, 3)"),
    ),
    Case(
        "time_distributed_mask_shape",
        lambda tmp: layers.TimeDistributed(layers.Dense(2), name="td")(X, mask=np.ones((2, 5))),
        ValueError,
        ("TimeDistributed 'td'", "mask", "(2, 4, ...)", "(2, 5)"),
    ),
    Case(
        "time_distributed_not_a_layer",
        lambda tmp: layers.TimeDistributed("dense"),
        ValueError,
        ("TimeDistributed", "layer", "'dense'", "str"),
    ),
    # ------------------------------------------------------------------ recurrent
    Case(
        "lstm_wrong_rank",
        lambda tmp: layers.LSTM(2, name="enc")(X2),
        ValueError,
        ("LSTM 'enc'", "inputs", "rank 3", "(2, 3)"),
    ),
    Case(
        "lstm_wrong_feature_size",
        lambda tmp: built(layers.LSTM(2, name="enc"), X)(zeros(2, 4, 5)),
        ValueError,
        ("LSTM 'enc'", "inputs", "[(3,)]", "[(5,)]"),
    ),
    Case(
        "lstm_initial_state_count",
        lambda tmp: layers.LSTM(4, name="encoder")(X, initial_state=[zeros(2, 4)]),
        ValueError,
        ("LSTM 'encoder'", "initial_state", "expected 2", "[(2, 4), (2, 4)]", "received 1"),
    ),
    Case(
        "lstm_initial_state_shape",
        lambda tmp: layers.LSTM(4, name="encoder")(X, initial_state=[zeros(2, 4), zeros(2, 7)]),
        ValueError,
        ("LSTM 'encoder': initial_state[1] has shape (2, 7), expected (2, 4)",),
    ),
    Case(
        "gru_initial_state_batch",
        lambda tmp: layers.GRU(4, name="g")(X, initial_state=zeros(3, 4)),
        ValueError,
        ("GRU 'g'", "initial_state[0] has shape (3, 4)", "expected (2, 4)"),
    ),
    Case(
        "simple_rnn_mask_batch",
        lambda tmp: layers.SimpleRNN(2, name="s")(X, mask=np.ones((3, 4), bool)),
        ValueError,
        ("SimpleRNN 's'", "mask", "(2, 4)", "(3, 4)"),
    ),
    Case(
        "lstm_mask_time",
        lambda tmp: layers.LSTM(2, name="enc")(X, mask=np.ones((2, 5), bool)),
        ValueError,
        ("LSTM 'enc'", "mask", "(2, 4)", "(2, 5)"),
    ),
    Case(
        "lstm_float_mask",
        lambda tmp: layers.LSTM(2, name="enc")(X, mask=np.ones((2, 4), "float32")),
        ValueError,
        ("LSTM 'enc'", "mask has dtype float32", "expected bool"),
    ),
    Case(
        "rnn_constants_for_a_cell_without_them",
        lambda tmp: layers.RNN(Cell(), name="r")(X, constants=[zeros(2, 2)]),
        ValueError,
        ("RNN 'r'", "constants", "call()"),
    ),
    Case(
        "rnn_constants_batch",
        lambda tmp: constants_rnn()(X, constants=[zeros(3, 5)]),
        ValueError,
        ("RNN 'r'", "constants[0] has shape (3, 5)", "expected (2, 5)"),
    ),
    Case(
        "rnn_constants_feature_size",
        lambda tmp: constants_rnn()(X, constants=[zeros(2, 6)]),
        ValueError,
        ("RNN 'r'", "constants[0] has shape (2, 6)", "expected (2, 5)"),
    ),
    Case(
        "rnn_constants_count",
        lambda tmp: constants_rnn()(X, constants=[zeros(2, 5), zeros(2, 5)]),
        ValueError,
        ("RNN 'r'", "constants", "expected 1", "received 2"),
    ),
    Case(
        "rnn_constants_missing",
        lambda tmp: constants_rnn()(X),
        ValueError,
        ("RNN 'r'", "constants", "[(2, 5)]", "received none"),
    ),
    Case(
        "rnn_custom_cell_wrong_feature_size",
        lambda tmp: built(layers.RNN(Cell(), name="r"), X)(zeros(2, 4, 5)),
        ValueError,
        ("RNN 'r'", "inputs", "[(3,)]", "[(5,)]"),
    ),
    Case(
        "rnn_custom_cell_initial_state_shape",
        lambda tmp: layers.RNN(Cell(), name="r")(X, initial_state=[zeros(2, 3)]),
        ValueError,
        ("RNN 'r'", "initial_state[0] has shape (2, 3)", "expected (2, 2)"),
    ),
    Case(
        "stateful_batch_size_change",
        lambda tmp: built(layers.SimpleRNN(2, stateful=True, name="s"), X)(zeros(3, 4, 3)),
        ValueError,
        ("SimpleRNN 's'", "stateful=True", "expected batch size 2", "received 3"),
    ),
    Case(
        "reset_states_wrong_count",
        lambda tmp: built(layers.LSTM(2, stateful=True, name="s"), X).reset_states([zeros(2, 2)]),
        ValueError,
        ("LSTM 's'", "states", "expected 2", "received 1"),
    ),
    Case(
        "reset_states_wrong_shape",
        lambda tmp: built(layers.GRU(2, stateful=True, name="s"), X).reset_states([zeros(2, 5)]),
        ValueError,
        ("GRU 's'", "states[0] has shape (2, 5)", "expected (2, 2)"),
    ),
    Case(
        "reset_states_not_stateful",
        lambda tmp: built(layers.GRU(2, name="s"), X).reset_states([zeros(2, 2)]),
        ValueError,
        ("GRU 's'", "reset_states", "stateful=True"),
    ),
    Case("lstm_bad_units", lambda tmp: layers.LSTM(0), ValueError, ("LSTM", "units", "0")),
    Case(
        "gru_bad_dropout",
        lambda tmp: layers.GRU(2, dropout=1.5),
        ValueError,
        ("GRU", "dropout", "[0, 1)", "1.5"),
    ),
    Case(
        "simple_rnn_unknown_activation",
        lambda tmp: layers.SimpleRNN(2, activation="nope"),
        ValueError,
        ("activation", "'nope'", "tanh"),
    ),
    Case(
        "rnn_cell_without_call",
        lambda tmp: layers.RNN(object()),
        ValueError,
        ("RNN", "cell", "call(inputs, states)", "object"),
    ),
    Case(
        "lstm_bad_use_cudnn",
        lambda tmp: layers.LSTM(2, use_cudnn="yes"),
        ValueError,
        ("LSTM", "use_cudnn", "'auto'", "'yes'"),
    ),
    Case(
        "lstm_unknown_keyword",
        lambda tmp: layers.LSTM(2, unitz=3),
        TypeError,
        ("LSTM", "'unitz'"),
    ),
    Case(
        "bidirectional_bad_merge_mode",
        lambda tmp: layers.Bidirectional(layers.LSTM(2), merge_mode="avg"),
        ValueError,
        ("Bidirectional", "merge_mode", "'concat'", "'avg'"),
    ),
    Case(
        "bidirectional_not_an_rnn",
        lambda tmp: layers.Bidirectional(layers.Dense(2, name="d")),
        ValueError,
        ("Bidirectional", "layer", "RNN", "Dense 'd'"),
    ),
    Case(
        "bidirectional_wrong_rank",
        lambda tmp: layers.Bidirectional(layers.LSTM(2), name="bi")(X2),
        ValueError,
        ("Bidirectional 'bi'", "inputs", "rank 3", "(2, 3)"),
    ),
    Case(
        "bidirectional_wrong_feature_size",
        lambda tmp: built(layers.Bidirectional(layers.LSTM(2), name="bi"), X)(zeros(2, 4, 5)),
        ValueError,
        ("Bidirectional 'bi'", "inputs", "[(3,)]", "[(5,)]"),
    ),
    Case(
        "bidirectional_initial_state_odd_count",
        lambda tmp: layers.Bidirectional(layers.LSTM(2), name="bi")(X, initial_state=[X2] * 3),
        ValueError,
        ("Bidirectional 'bi'", "initial_state", "even", "received 3"),
    ),
    Case(
        "bidirectional_initial_state_shape",
        lambda tmp: layers.Bidirectional(layers.GRU(2), name="bi")(
            X, initial_state=[zeros(2, 2), zeros(2, 5)]
        ),
        ValueError,
        ("Bidirectional 'bi'", "backward", "initial_state[0] has shape (2, 5)", "expected (2, 2)"),
    ),
    Case(
        "bidirectional_mask_time",
        lambda tmp: layers.Bidirectional(layers.GRU(2), name="bi")(X, mask=np.ones((2, 5), bool)),
        ValueError,
        ("Bidirectional 'bi'", "mask", "(2, 4)", "(2, 5)"),
    ),
    Case(
        "bidirectional_reset_states_shape",
        lambda tmp: built(
            layers.Bidirectional(layers.GRU(2, stateful=True), name="bi"), X
        ).reset_states([zeros(2, 2), zeros(2, 3)]),
        ValueError,
        ("Bidirectional 'bi'", "states[0] has shape (2, 3)", "expected (2, 2)"),
    ),
    # --------------------------------------------------------------------- models
    Case(
        "model_too_few_inputs",
        lambda tmp: two_input_model()(X2),
        ValueError,
        ("Model 'two'", "expected 2 inputs", "'a', 'b'", "received 1"),
    ),
    Case(
        "model_too_many_inputs",
        lambda tmp: two_input_model()([X2, zeros(2, 2), zeros(2, 2)]),
        ValueError,
        ("Model 'two'", "expected 2 inputs", "received 3"),
    ),
    Case(
        "model_input_shape_contradicts_input",
        lambda tmp: lstm_model()(zeros(2, 4, 5)),
        ValueError,
        ("Model 'fm'", "input 'x'", "(None, 4, 3)", "(2, 4, 5)"),
    ),
    Case(
        "model_unknown_dict_input_name",
        lambda tmp: two_input_model()({"a": X2, "c": zeros(2, 2)}),
        ValueError,
        ("Model 'two'", "dict", "['a', 'b']", "'c'"),
    ),
    Case(
        "model_extra_dict_input_name",
        lambda tmp: two_input_model()({"a": X2, "b": zeros(2, 2), "typo": zeros(2, 2)}),
        ValueError,
        ("Model 'two'", "unknown ['typo']", "['a', 'b']"),
    ),
    Case(
        "fit_extra_dict_input_name",
        lambda tmp: two_input_model().fit(
            {"a": X2, "b": zeros(2, 2), "typo": zeros(2, 2)}, zeros(2, 1), verbose=0
        ),
        ValueError,
        ("'two'", "unknown ['typo']"),
    ),
    Case(
        "sequential_wrong_shape_names_the_class",
        lambda tmp: sequential_model()(zeros(2, 4, 5)),
        ValueError,
        ("Sequential 'seq'", "(None, 4, 3)", "(2, 4, 5)"),
    ),
    Case(
        "model_get_layer_unknown_name",
        lambda tmp: lstm_model().get_layer("nope"),
        ValueError,
        ("Model 'fm'", "'nope'", "'enc'"),
    ),
    Case(
        "model_get_layer_bad_index",
        lambda tmp: lstm_model().get_layer(index=10),
        ValueError,
        ("Model 'fm'", "index 10", "3 layers"),
    ),
    Case(
        "sequential_input_shape_contradicts_input",
        lambda tmp: sequential_model()(zeros(2, 4, 5)),
        ValueError,
        ("'seq'", "(None, 4, 3)", "(2, 4, 5)"),
    ),
    Case(
        "sequential_without_input_wrong_feature_size",
        lambda tmp: built(Sequential([layers.LSTM(2, name="enc")]), X)(zeros(2, 4, 5)),
        ValueError,
        ("LSTM 'enc'", "inputs", "[(3,)]", "[(5,)]"),
    ),
    Case(
        "sequential_add_not_a_layer",
        lambda tmp: Sequential(name="s").add("dense"),
        TypeError,
        ("Sequential 's'", "add()", "'dense'", "str"),
    ),
    # -------------------------------------------------------------------- compile
    Case(
        "compile_unknown_loss",
        lambda tmp: lstm_model(compile=False).compile("sgd", "msee"),
        ValueError,
        ("loss", "'msee'", "mse"),
    ),
    Case(
        "compile_unknown_optimizer",
        lambda tmp: lstm_model(compile=False).compile("sgdd", "mse"),
        ValueError,
        ("optimizer", "'sgdd'", "sgd"),
    ),
    Case(
        "compile_unknown_metric",
        lambda tmp: lstm_model(compile=False).compile("sgd", "mse", metrics=["acuracy"]),
        ValueError,
        ("metrics", "'acuracy'", "accuracy"),
    ),
    Case(
        "loss_list_longer_than_outputs",
        lambda tmp: fit_two_outputs(two_output_model(loss=["mse"] * 3)),
        ValueError,
        ("loss", "3 entries", "2 output(s)", "['o1', 'o2']"),
    ),
    Case(
        "loss_dict_unknown_output_name",
        lambda tmp: fit_two_outputs(two_output_model(loss={"o1": "mse", "o9": "mse"})),
        ValueError,
        ("loss", "['o9']", "['o1', 'o2']"),
    ),
    Case(
        "metrics_dict_unknown_output_name",
        lambda tmp: fit_two_outputs(two_output_model(metrics={"o9": ["mae"]})),
        ValueError,
        ("metrics", "['o9']", "['o1', 'o2']"),
    ),
    # ------------------------------------------------------ fit / evaluate / predict
    Case(
        "fit_before_compile",
        lambda tmp: fit(lstm_model(compile=False)),
        ValueError,
        ("fit", "'fm'", "compile"),
    ),
    Case(
        "evaluate_before_compile",
        lambda tmp: lstm_model(compile=False).evaluate(X, zeros(2, 1), verbose=0),
        ValueError,
        ("evaluate", "'fm'", "compile"),
    ),
    Case(
        "fit_x_y_length_mismatch",
        lambda tmp: fit(lstm_model(), y=zeros(3, 1)),
        ValueError,
        ("x has 2 samples", "y has 3 samples"),
    ),
    Case(
        "evaluate_x_y_length_mismatch",
        lambda tmp: lstm_model().evaluate(X, zeros(3, 1), verbose=0),
        ValueError,
        ("x has 2 samples", "y has 3 samples"),
    ),
    Case(
        "fit_sample_weight_length",
        lambda tmp: fit(lstm_model(), sample_weight=np.ones(3)),
        ValueError,
        ("sample_weight has 3 samples", "x has 2 samples"),
    ),
    Case(
        "fit_sample_weight_shape",
        lambda tmp: fit(lstm_model(), sample_weight=np.ones((2, 3))),
        ValueError,
        ("sample_weight has shape (2, 3)", "expected (2,)"),
    ),
    Case(
        "fit_wrong_input_count",
        lambda tmp: fit(two_input_model(), x=X2),
        ValueError,
        ("fit", "'two'", "2 input(s)", "['a', 'b']", "received 1"),
    ),
    Case(
        "fit_wrong_input_shape",
        lambda tmp: fit(lstm_model(), x=zeros(2, 4, 5)),
        ValueError,
        ("'fm'", "input 'x'", "(None, 4, 3)", "(2, 4, 5)"),
    ),
    Case(
        "fit_validation_data_wrong_shape",
        lambda tmp: fit(lstm_model(), validation_data=(zeros(2, 4, 5), zeros(2, 1))),
        ValueError,
        ("'fm'", "input 'x'", "(None, 4, 3)", "(2, 4, 5)"),
    ),
    Case(
        "predict_wrong_input_shape",
        lambda tmp: sequential_model().predict(zeros(2, 4, 5), verbose=0),
        ValueError,
        ("'seq'", "(None, 4, 3)", "(2, 4, 5)"),
    ),
    Case(
        "predict_wrong_input_rank",
        lambda tmp: sequential_model().predict(X2, verbose=0),
        ValueError,
        ("'seq'", "(None, 4, 3)", "(2, 3)"),
    ),
    Case(
        "predict_unknown_dict_input_name",
        lambda tmp: two_input_model().predict({"a": X2, "c": zeros(2, 2)}, verbose=0),
        ValueError,
        ("'two'", "['a', 'b']", "'c'"),
    ),
    Case(
        "fit_unknown_output_name_in_y",
        lambda tmp: fit_two_outputs(two_output_model(), {"o1": zeros(2, 1), "o3": zeros(2, 2)}),
        ValueError,
        ("fit", "y", "['o3']", "['o1', 'o2']"),
    ),
    Case(
        "fit_fewer_targets_than_outputs",
        lambda tmp: fit_two_outputs(two_output_model(), [zeros(2, 1)]),
        ValueError,
        ("fit", "2 output(s)", "1 target"),
    ),
    Case(
        "fit_target_shape",
        lambda tmp: fit_two_outputs(two_output_model(), [zeros(2, 1), zeros(2, 3)]),
        ValueError,
        ("mean_squared_error", "y_true has shape (2, 3)", "expected (2, 2)"),
    ),
    Case(
        "fit_label_out_of_range",
        lambda tmp: fit(compile_sparse(lstm_model(compile=False)), y=np.array([0, 5])),
        ValueError,
        ("sparse_categorical_crossentropy", "label 5", "[0, 1)"),
    ),
    Case(
        "fit_zero_batch_size",
        lambda tmp: fit(lstm_model(), batch_size=0),
        ValueError,
        ("fit", "batch_size", "positive int", "0"),
    ),
    Case(
        "fit_float_batch_size",
        lambda tmp: fit(lstm_model(), batch_size=2.5),
        ValueError,
        ("fit", "batch_size", "2.5"),
    ),
    Case(
        "fit_negative_epochs",
        lambda tmp: fit(lstm_model(), epochs=-1),
        ValueError,
        ("fit", "epochs", "-1"),
    ),
    Case(
        "fit_bad_validation_split",
        lambda tmp: fit(lstm_model(), validation_split=1.5),
        ValueError,
        ("validation_split", "[0, 1)", "1.5"),
    ),
    Case(
        "predict_negative_batch_size",
        lambda tmp: lstm_model().predict(X, batch_size=-2, verbose=0),
        ValueError,
        ("predict", "batch_size", "-2"),
    ),
    Case(
        "fit_unknown_keyword",
        lambda tmp: fit(lstm_model(), epoch=2),
        TypeError,
        ("fit", "'epoch'"),
    ),
    Case(
        "fit_without_x",
        lambda tmp: fit(lstm_model(), x=None),
        ValueError,
        ("fit", "x is required"),
    ),
    # --------------------------------------------------------------------- saving
    Case(
        "save_unknown_extension",
        lambda tmp: lstm_model().save(tmp / "m.txt"),
        ValueError,
        ("save_model", "'.keras'", "m.txt"),
    ),
    Case(
        "load_model_missing_file",
        lambda tmp: rnnkit.saving.load_model(tmp / "missing.keras"),
        ValueError,
        ("missing.keras", "no such file"),
    ),
    Case(
        "load_model_not_a_model_file",
        load_a_text_file_as_model,
        ValueError,
        ("bad.keras", "not a valid model file"),
    ),
    Case(
        "save_weights_unknown_extension",
        lambda tmp: lstm_model().save_weights(tmp / "w.txt"),
        ValueError,
        ("save_weights", "'.weights.safetensors'", "w.txt"),
    ),
    Case(
        "load_weights_missing_file",
        lambda tmp: lstm_model().load_weights(tmp / "missing.weights.safetensors"),
        ValueError,
        ("load_weights", "missing.weights.safetensors"),
    ),
    Case(
        "load_weights_of_wrong_shape",
        load_weights_of_wrong_shape,
        ValueError,
        ("'fm/enc/lstm_cell/kernel'", "(3, 8)", "(3, 20)"),
    ),
    Case(
        "set_weights_wrong_count",
        lambda tmp: lstm_model().set_weights([zeros(3, 8)]),
        ValueError,
        ("Model 'fm'", "set_weights", "5 arrays", "received 1"),
    ),
    Case(
        "set_weights_wrong_shape",
        lambda tmp: built(layers.Dense(2, name="d"), X2).set_weights([zeros(4, 2), zeros(2)]),
        ValueError,
        ("Dense 'd'", "set_weights", "'d/kernel'", "(3, 2)", "(4, 2)"),
    ),
    Case(
        "lstm_set_weights_wrong_shape",
        lambda tmp: built(layers.LSTM(2, name="enc"), X).set_weights(
            [zeros(3, 9), zeros(2, 8), zeros(8)]
        ),
        ValueError,
        ("LSTM 'enc'", "set_weights", "(3, 8)", "(3, 9)"),
    ),
]
IDS = [case.name for case in CASES]


def test_catalogue_is_large_and_named_uniquely():
    assert len(CASES) >= 45
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_call_raises_a_named_error(case, tmp_path):
    with pytest.raises(case.error) as info:
        case.call(tmp_path)
    message = str(info.value)
    missing = [word for word in case.words if word not in message]
    assert not missing, f"{missing} not in the message: {message}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_no_torch_internal_message(case, tmp_path):
    with pytest.raises(Exception) as info:  # noqa: B017 - any error; its text matters
        case.call(tmp_path)
    leaked = [phrase for phrase in TORCH_PHRASES if phrase in str(info.value)]
    assert not leaked, f"torch's message leaked: {info.value}"
