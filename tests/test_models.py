"""Functional, subclassed and Sequential models: graphs, replay, weights, config, errors."""

import json
import warnings

import keras
import numpy as np
import pytest
import torch
from harness import run_layer_test
from model_zoo import NestedCell

import rnnkit
from rnnkit.layers import Layer
from rnnkit.layers.core import Dense, Dropout, Embedding, Masking
from rnnkit.layers.normalization import BatchNormalization

RNG = np.random.default_rng(0)
HAS_LSTM = hasattr(rnnkit.layers, "LSTM")


# ------------------------------------------------------------------ test layers
class Add(Layer):
    """Sum of a list of tensors (Keras' Add, without weights)."""

    supports_masking = True

    def call(self, inputs):
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total


class ToyRNN(Layer):
    """A tiny recurrent layer with two states, ``initial_state=`` and ``return_state``:
    ``h_t = tanh(x_t W + h_{t-1} U + c_{t-1} / 2)``, ``c_t = c_{t-1} + h_t``."""

    def __init__(self, units, return_state=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.return_state = return_state

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel"
        )

    def call(self, inputs, initial_state=None):
        batch = inputs.shape[0]
        if initial_state is None:
            h = c = torch.zeros(batch, self.units, dtype=inputs.dtype, device=inputs.device)
        else:
            h, c = initial_state
        for t in range(inputs.shape[1]):
            h_new = torch.tanh(inputs[:, t] @ self.kernel + h @ self.recurrent_kernel + c / 2)
            h, c = h_new, c + h_new
        return (h, h, c) if self.return_state else h

    def get_config(self):
        return {**super().get_config(), "units": self.units, "return_state": self.return_state}


class PairLayer(Layer):
    """Takes a nested ``(a, (b, c))`` and returns ``{"sum": a + b, "prod": b * c}``."""

    def call(self, inputs):
        a, (b, c) = inputs
        return {"sum": a + b, "prod": b * c}


class MaskedMean(Layer):
    """Mean over time of the unmasked steps (reads the mask carried on the input)."""

    def call(self, inputs, mask=None):
        if mask is None:
            return inputs.mean(dim=1)
        weights = mask.to(inputs.dtype).unsqueeze(-1)
        return (inputs * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class Counter(Layer):
    """A stateful layer that counts its calls; reset_states() clears the count."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stateful = True
        self.calls = 0

    def call(self, inputs):
        self.calls += 1
        return inputs

    def reset_states(self):
        self.calls = 0


CUSTOM = {"ToyRNN": ToyRNN, "Add": Add, "PairLayer": PairLayer, "MaskedMean": MaskedMean}


def _np(x):
    return x.detach().cpu().numpy()


def _close(a, b, atol=1e-5):
    np.testing.assert_allclose(_np(a) if isinstance(a, torch.Tensor) else a, b, atol=atol)


# ------------------------------------------------------------- functional: Keras
def test_functional_weights_order_and_outputs_match_keras():
    x = rnnkit.Input(shape=(4,))
    h = Dense(8, activation="relu")(x)
    h = BatchNormalization()(h)
    model = rnnkit.Model(x, Dense(3)(h))

    kx = keras.Input(shape=(4,))
    kh = keras.layers.Dense(8, activation="relu")(kx)
    kh = keras.layers.BatchNormalization()(kh)
    kmodel = keras.Model(kx, keras.layers.Dense(3)(kh))

    assert [w.shape for w in model.get_weights()] == [w.shape for w in kmodel.get_weights()]
    weights = [RNG.standard_normal(w.shape).astype("float32") for w in model.get_weights()]
    weights[5] = np.abs(weights[5]) + 0.5  # moving variance
    model.set_weights(weights)
    kmodel.set_weights(model.get_weights())
    data = RNG.standard_normal((5, 4)).astype("float32")
    _close(model(data), np.asarray(kmodel(data).detach().cpu()))
    assert [layer.name for layer in model.layers] == [
        "input_layer",
        "dense",
        "batch_normalization",
        "dense_1",
    ]
    assert list(model.state_dict())[:2] == ["dense.kernel", "dense.bias"]
    assert model.count_params() == kmodel.count_params()
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)


def test_multi_input_multi_output_matches_keras_and_accepts_dicts():
    a, b = rnnkit.Input(shape=(3,), name="a"), rnnkit.Input(shape=(5,), name="b")
    merged = Add()([Dense(4)(a), Dense(4)(b)])
    model = rnnkit.Model([a, b], [Dense(2)(merged), Dense(1)(merged)])

    ka, kb = keras.Input(shape=(3,)), keras.Input(shape=(5,))
    kmerged = keras.layers.Add()([keras.layers.Dense(4)(ka), keras.layers.Dense(4)(kb)])
    kmodel = keras.Model([ka, kb], [keras.layers.Dense(2)(kmerged), keras.layers.Dense(1)(kmerged)])

    assert [w.shape for w in model.get_weights()] == [w.shape for w in kmodel.get_weights()]
    kmodel.set_weights(model.get_weights())
    xa, xb = RNG.standard_normal((6, 3)), RNG.standard_normal((6, 5))
    out, kout = model([xa, xb]), kmodel([xa, xb])
    assert isinstance(out, list) and len(out) == 2
    for o, k in zip(out, kout):
        _close(o, np.asarray(k.detach().cpu()))
    by_name = model({"a": xa, "b": xb})
    _close(by_name[1], _np(out[1]))
    assert model.output_shape == [(None, 2), (None, 1)]
    assert model.input_names == ["a", "b"]


def test_nested_input_structure_and_dict_outputs():
    a, b, c = (rnnkit.Input(shape=(2,)) for _ in range(3))
    outputs = PairLayer()((a, (b, c)))
    model = rnnkit.Model([a, (b, c)], outputs)
    xa, xb, xc = (RNG.standard_normal((3, 2)).astype("float32") for _ in range(3))
    result = model([xa, (xb, xc)])
    assert set(result) == {"sum", "prod"}
    _close(result["sum"], xa + xb)
    _close(result["prod"], xb * xc)
    assert model.output_shape == {"prod": (None, 2), "sum": (None, 2)}


def test_multiple_outputs_and_initial_state_from_another_layer():
    enc_in, dec_in = rnnkit.Input(shape=(None, 3)), rnnkit.Input(shape=(None, 3))
    encoder = ToyRNN(4, return_state=True, name="encoder")
    _, state_h, state_c = encoder(enc_in)
    decoder = ToyRNN(4, name="decoder")
    dense = Dense(2)
    output = dense(decoder(dec_in, initial_state=[state_h, state_c]))
    model = rnnkit.Model([enc_in, dec_in], output)

    xe = torch.as_tensor(RNG.standard_normal((2, 5, 3)), dtype=torch.float32)
    xd = torch.as_tensor(RNG.standard_normal((2, 4, 3)), dtype=torch.float32)
    _, h, c = encoder(xe)
    expected = dense(decoder(xd, initial_state=[h, c]))
    _close(model([xe, xd]), _np(expected))
    assert [layer.name for layer in model.layers] == [
        "input_layer",
        "input_layer_1",
        "encoder",
        "decoder",
        "dense",
    ]
    # Variable time steps: the Inputs say None.
    _close(
        model([xe[:, :2], xd[:, :3]]),
        _np(dense(decoder(xd[:, :3], initial_state=list(encoder(xe[:, :2])[1:])))),
    )


def test_model_inside_a_model():
    inner_in = rnnkit.Input(shape=(3,))
    inner = rnnkit.Model(inner_in, Dense(4, activation="tanh")(inner_in), name="inner")
    x = rnnkit.Input(shape=(3,))
    head = Dense(2)
    outer = rnnkit.Model(x, head(inner(x)))
    data = RNG.standard_normal((5, 3)).astype("float32")
    _close(outer(data), _np(head(inner(data))))
    assert [layer.name for layer in outer.layers] == ["input_layer_1", "inner", "dense_1"]
    assert len(outer.weights) == 4 and outer.weights[0] is inner.weights[0]
    assert list(outer.state_dict()) == [
        "inner.dense.kernel",
        "inner.dense.bias",
        "dense_1.kernel",
        "dense_1.bias",
    ]
    # Keras' nested model has the same weight order.
    kin = keras.Input(shape=(3,))
    kinner = keras.Model(kin, keras.layers.Dense(4, activation="tanh")(kin))
    kx = keras.Input(shape=(3,))
    kouter = keras.Model(kx, keras.layers.Dense(2)(kinner(kx)))
    kouter.set_weights(outer.get_weights())
    _close(outer(data), np.asarray(kouter(data).detach().cpu()))


def test_masks_flow_through_the_graph():
    x = rnnkit.Input(shape=(None, 2))
    model = rnnkit.Model(x, MaskedMean()(Masking(0.0)(x)))
    data = np.ones((2, 4, 2), np.float32)
    data[0, 2:] = 0.0  # two padded steps
    data[1, :, :] = 3.0
    _close(model(data), np.array([[1.0, 1.0], [3.0, 3.0]]))


def test_training_flag_reaches_layers():
    x = rnnkit.Input(shape=(50,))
    model = rnnkit.Model(x, Dropout(0.5)(x))
    data = np.ones((4, 50), np.float32)
    _close(model(data), data)  # inference by default, like Keras
    dropped = _np(model(data, training=True))
    assert (dropped == 0).any() and np.allclose(dropped[dropped != 0], 2.0)
    model.train()
    assert (_np(model(data)) == 0).any()


def test_functional_model_in_symbolic_mode_records_a_node():
    x = rnnkit.Input(shape=(3,))
    inner = rnnkit.Model(x, Dense(2)(x))
    y = rnnkit.Input(shape=(3,))
    out = inner(y)
    assert out.shape == (None, 2) and out._keras_history[0] is inner


# --------------------------------------------------------------------- layers API
def test_get_layer_by_name_and_index_and_errors():
    x = rnnkit.Input(shape=(3,))
    model = rnnkit.Model(x, Dense(2, name="head")(Dense(4, name="body")(x)))
    assert model.get_layer("head").units == 2
    assert model.get_layer(index=1).name == "body"
    assert model.get_layer(index=-1).name == "head"
    with pytest.raises(ValueError, match="no layer named 'tail'.*'head'"):
        model.get_layer("tail")
    with pytest.raises(ValueError, match="out of range"):
        model.get_layer(index=7)
    with pytest.raises(ValueError, match="not both"):
        model.get_layer("head", index=0)


def test_reset_states_resets_every_stateful_layer():
    x = rnnkit.Input(shape=(3,))
    counter = Counter()
    inner = rnnkit.Sequential([counter])
    model = rnnkit.Model(x, inner(x))
    model(np.ones((2, 3), np.float32))
    assert counter.calls >= 1
    model.reset_states()
    assert counter.calls == 0


# ------------------------------------------------------------------- subclassing
class TwoLayer(rnnkit.Model):
    def __init__(self, hidden=8, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(hidden, activation="relu")
        self.dropout = Dropout(0.5)
        self.out = Dense(3)

    def call(self, inputs, training=None):
        return self.out(self.dropout(self.hidden(inputs), training=training))


def test_subclassed_model():
    model = TwoLayer(name="two")
    assert model.name == "two" and not model.built
    data = RNG.standard_normal((4, 5)).astype("float32")
    out = model(data)
    expected = model.out(model.hidden(torch.as_tensor(data)))
    _close(out, _np(expected))
    assert [layer.name for layer in model.layers] == ["dense", "dropout", "dense_1"]
    assert list(model.state_dict()) == ["hidden.kernel", "hidden.bias", "out.kernel", "out.bias"]
    assert model.count_params() == 5 * 8 + 8 + 8 * 3 + 3
    assert not torch.allclose(model(data, training=True), out)
    assert TwoLayer().name == "two_layer"
    assert model.inputs is None


def test_subclassed_model_build_creates_weights():
    model = TwoLayer()
    model.build((None, 6))
    assert [tuple(w.shape) for w in model.weights] == [(6, 8), (8,), (8, 3), (3,)]


def test_subclass_without_call_raises():
    class Empty(rnnkit.Model):
        pass

    with pytest.raises(NotImplementedError, match="must define call"):
        Empty()(np.ones((1, 2)))


# --------------------------------------------------------------------- Sequential
def test_sequential_lazy_build_add_pop():
    model = rnnkit.Sequential(name="seq")
    model.add(Dense(4))
    model.add(Dense(2))
    assert not model.built and model.weights == []
    data = RNG.standard_normal((3, 5)).astype("float32")
    out = model(data)
    assert model.built and out.shape == (3, 2)
    assert model.input_shape == (None, 5) and model.output_shape == (None, 2)
    assert [layer.name for layer in model.layers] == ["dense", "dense_1"]
    popped = model.pop()
    assert popped.name == "dense_1" and model.output_shape == (None, 4)
    assert list(model.state_dict()) == ["dense.kernel", "dense.bias"]
    _close(model(data), _np(model.layers[0](data)))


def test_sequential_input_shape_builds_immediately_and_matches_keras():
    model = rnnkit.Sequential([Dense(8, activation="tanh", input_shape=(4,)), BatchNormalization()])
    model.add(Dense(3))
    assert model.built and model.output_shape == (None, 3)
    assert [layer.name for layer in model.layers] == ["dense", "batch_normalization", "dense_1"]
    kmodel = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
        ]
    )
    assert [w.shape for w in model.get_weights()] == [w.shape for w in kmodel.get_weights()]
    kmodel.set_weights(model.get_weights())
    data = RNG.standard_normal((5, 4)).astype("float32")
    _close(model(data), np.asarray(kmodel(data).detach().cpu()))
    _close(
        model(data, training=True),
        np.asarray(kmodel(data, training=True).detach().cpu()),
        atol=1e-4,
    )


def test_sequential_with_input_first_and_embedding():
    model = rnnkit.Sequential([rnnkit.Input(shape=(None,)), Embedding(10, 3), MaskedMean()])
    assert model.output_shape == (None, 3)
    assert len(model.layers) == 2
    data = np.array([[1, 2, 3], [4, 5, 6]])
    _close(model(data), _np(model.layers[0](data).mean(dim=1)))
    with pytest.raises(ValueError, match="second Input"):
        model.add(rnnkit.Input(shape=(3,)))


def test_sequential_first_embedding_builds_like_keras_2():
    model = rnnkit.Sequential()
    model.add(Embedding(input_dim=1000, output_dim=64))
    model.add(Dense(10))
    assert model.built and model.output_shape == (None, None, 10)
    assert model.count_params() == 64000 + 650


def test_sequential_errors():
    model = rnnkit.Sequential([Dense(2, name="same")])
    with pytest.raises(ValueError, match="'same' is already in the model"):
        model.add(Dense(3, name="same"))
    with pytest.raises(TypeError, match="expects an rnnkit Layer"):
        model.add(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no layers"):
        rnnkit.Sequential().pop()
    with pytest.raises(TypeError, match="must be a list of layers"):
        rnnkit.Sequential(Dense(2))


def test_sequential_config_round_trip():
    model = rnnkit.Sequential([Dense(4, input_shape=(3,)), Dense(2)])
    config = json.loads(json.dumps(model.get_config()))
    clone = rnnkit.Sequential.from_config(config)
    assert clone.built and [layer.name for layer in clone.layers] == ["dense", "dense_1"]
    clone.set_weights(model.get_weights())
    data = RNG.standard_normal((2, 3)).astype("float32")
    _close(clone(data), _np(model(data)))


# ------------------------------------------------------------------ config / state
def _encoder_decoder():
    enc_in, dec_in = rnnkit.Input(shape=(None, 3)), rnnkit.Input(shape=(None, 3))
    _, h, c = ToyRNN(4, return_state=True, name="encoder")(enc_in)
    inner_in = rnnkit.Input(shape=(4,))
    head = rnnkit.Model(inner_in, Dense(2)(inner_in), name="head")
    tail = rnnkit.Sequential([Dense(2, activation="tanh", input_shape=(2,))], name="tail")
    output = tail(head(ToyRNN(4, name="decoder")(dec_in, initial_state=[h, c])))
    return rnnkit.Model([enc_in, dec_in], output, name="seq2seq")


def test_functional_config_round_trip_through_json():
    model = _encoder_decoder()
    config = json.loads(json.dumps(model.get_config()))
    assert config["input_layers"] == [["input_layer", 0, 0], ["input_layer_1", 0, 0]]
    assert config["output_layers"] == ["tail", 0, 0]
    tail = next(layer for layer in config["layers"] if layer["name"] == "tail")
    head_output = tail["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
    assert head_output == ["head", 1, 0]  # Keras 3 counts a functional model's own node
    decoder = next(layer for layer in config["layers"] if layer["name"] == "decoder")
    state = decoder["inbound_nodes"][0]["kwargs"]["initial_state"][1]
    assert state["class_name"] == "__keras_tensor__"
    assert state["config"]["keras_history"] == ["encoder", 0, 2]
    clone = rnnkit.Model.from_config(config, custom_objects=CUSTOM)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    clone.set_weights(model.get_weights())
    xe, xd = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 3, 3))
    _close(clone([xe, xd]), _np(model([xe, xd])))


def test_state_dict_round_trip():
    # Keys are layer names: a model rebuilt with the same names (from its config, or by the
    # same code in a fresh session) loads the state_dict.
    model = _encoder_decoder()
    keys = list(model.state_dict())
    assert keys[:2] == ["encoder.kernel", "encoder.recurrent_kernel"]
    assert keys[-4:] == [
        "head.dense.kernel",
        "head.dense.bias",
        "tail.dense_1.kernel",
        "tail.dense_1.bias",
    ]
    clone = rnnkit.Model.from_config(model.get_config(), custom_objects=CUSTOM)
    clone.load_state_dict(model.state_dict())
    rnnkit.clear_session()
    rebuilt = _encoder_decoder()
    assert list(rebuilt.state_dict()) == keys
    rebuilt.load_state_dict(model.state_dict())
    xe, xd = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 3, 3))
    _close(clone([xe, xd]), _np(model([xe, xd])))
    _close(rebuilt([xe, xd]), _np(model([xe, xd])))


def test_copy_between_models_and_dtype_move():
    model, other = _encoder_decoder(), _encoder_decoder()
    other.set_weights(model.get_weights())
    model.to(torch.float64)
    xe, xd = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 3, 3))
    out = model([xe, xd])
    assert out.dtype == torch.float64
    _close(out, _np(other([xe, xd])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_on_cuda_and_copy_to_cpu():
    model = _encoder_decoder().to("cuda")
    xe, xd = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 3, 3))
    out = model([xe, xd])
    assert out.device.type == "cuda"
    cpu = _encoder_decoder()
    cpu.set_weights(model.get_weights())
    _close(cpu([xe, xd]), _np(out), atol=1e-4)
    lazy = rnnkit.Sequential([Dense(3), Dense(2)])
    assert lazy(torch.ones(2, 4, device="cuda")).device.type == "cuda"


# ------------------------------------------------------------------------- errors
def test_wrong_number_of_inputs():
    model = _encoder_decoder()
    with pytest.raises(
        ValueError, match=r"expected 2 inputs \('input_layer', 'input_layer_1'\), received 1"
    ):
        model(RNG.standard_normal((2, 5, 3)))
    with pytest.raises(ValueError, match="expected 2 inputs.*received 3"):
        model([np.ones((2, 5, 3))] * 3)


def test_input_shape_contradicting_the_input_names_it():
    x = rnnkit.Input(shape=(5, 3), name="frames")
    model = rnnkit.Model(x, Dense(2)(x))
    with pytest.raises(
        ValueError, match=r"input 'frames' expects shape \(None, 5, 3\).*\(2, 4, 3\)"
    ):
        model(np.ones((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"input 'frames'.*shape \(2, 3\)"):
        model(np.ones((2, 3), np.float32))


def test_bad_graphs():
    x = rnnkit.Input(shape=(3,))
    y = Dense(2)(x)
    with pytest.raises(ValueError, match="must be a symbolic tensor"):
        rnnkit.Model(x, torch.ones(2))
    with pytest.raises(ValueError, match="must be tensors returned by rnnkit.Input"):
        rnnkit.Model(y, Dense(1)(y))
    other = rnnkit.Input(shape=(3,))
    with pytest.raises(ValueError, match="graph disconnected"):
        rnnkit.Model(x, Add()([y, Dense(2)(other)]))
    with pytest.raises(ValueError, match="needs both inputs and outputs"):
        rnnkit.Model(inputs=x)
    with pytest.raises(ValueError, match="name 'twin' is used 2 times"):
        rnnkit.Model(x, Add()([Dense(2, name="twin")(x), Dense(2, name="twin")(x)]))


@pytest.mark.skipif(not HAS_LSTM, reason="needs rnnkit.layers.LSTM")
def test_guide_encoder_decoder_matches_keras():
    from rnnkit.layers import LSTM

    def build(lib, lstm_cls):
        enc_in, dec_in = lib.Input(shape=(None,)), lib.Input(shape=(None,))
        emb = lib.layers.Embedding(input_dim=100, output_dim=8)(enc_in)
        _, h, c = lstm_cls(6, return_state=True, name="encoder")(emb)
        dec = lib.layers.Embedding(input_dim=200, output_dim=8)(dec_in)
        dec = lstm_cls(6, name="decoder")(dec, initial_state=[h, c])
        return lib.Model([enc_in, dec_in], lib.layers.Dense(10)(dec))

    model = build(rnnkit, LSTM)
    kmodel = build(keras, keras.layers.LSTM)
    assert [w.shape for w in model.get_weights()] == [w.shape for w in kmodel.get_weights()]
    kmodel.set_weights(model.get_weights())
    xe, xd = RNG.integers(0, 100, (3, 7)), RNG.integers(0, 200, (3, 5))
    _close(model([xe, xd]), np.asarray(kmodel([xe, xd]).detach().cpu()))


def test_layer_output_and_model_input_rebuild_an_inference_model_like_keras():
    """keras-io's lstm_seq2seq: models rebuilt from ``model.input`` and ``layers[i].output``."""

    def build(lib):
        enc_in, dec_in = lib.Input(shape=(None, 3)), lib.Input(shape=(None, 2))
        _, h, c = lib.layers.LSTM(4, return_state=True)(enc_in)
        dec = lib.layers.LSTM(4, return_sequences=True, return_state=True)
        seq, _, _ = dec(dec_in, initial_state=[h, c])
        model = lib.Model([enc_in, dec_in], lib.layers.Dense(2)(seq))
        # rebuilt from the trained layers, as the example does
        encoder = lib.Model(model.input[0], model.layers[2].output[1:])
        h_in, c_in = lib.Input(shape=(4,)), lib.Input(shape=(4,))
        out, h2, c2 = model.layers[3](model.input[1], initial_state=[h_in, c_in])
        decoder = lib.Model([model.input[1], h_in, c_in], [model.layers[4](out), h2, c2])
        return model, encoder, decoder

    model, encoder, decoder = build(rnnkit)
    kmodel, kencoder, kdecoder = build(keras)
    assert [type(x).__name__ for x in model.layers] == [type(x).__name__ for x in kmodel.layers]
    assert model.layers[4].input is model.layers[3].output[0]
    assert model.output is model.outputs[0] and kmodel.output is kmodel.outputs[0]
    assert len(model.layers[2].output) == len(kmodel.layers[2].output) == 3
    kmodel.set_weights(model.get_weights())
    xe, xd = RNG.random((2, 5, 3), "float32"), RNG.random((2, 1, 2), "float32")
    states = encoder.predict(xe, verbose=0)
    kstates = kencoder.predict(xe, verbose=0)
    ours = decoder.predict([xd, *states], verbose=0)
    theirs = kdecoder.predict([xd, *kstates], verbose=0)
    for a, b in zip(ours, theirs):
        _close(a, b)
    assert not hasattr(rnnkit.layers.Dense(2), "output")  # AttributeError, as in Keras


# --------------------------------------------------------------- the guide's models
@pytest.mark.skipif(not HAS_LSTM, reason="needs rnnkit.layers.RNN")
def test_guide_nested_cell_model():
    input_1, input_2 = rnnkit.Input((None, 4)), rnnkit.Input((None, 3, 2))
    outputs = rnnkit.layers.RNN(NestedCell(5, 2, 3))((input_1, input_2))
    model = rnnkit.models.Model([input_1, input_2], outputs)
    assert model.output_shape == ((None, 5), (None, 2, 3))
    assert model.output_names == ["rnn", "rnn_1"]
    x1, x2 = RNG.random((2, 6, 4)), RNG.random((2, 6, 3, 2))
    out_1, out_2 = model([x1, x2])
    cell = model.layers[-1].cell
    # The states are running sums, so the outputs are the sums over time of each step.
    expected_1 = torch.as_tensor(x1[:, -1], dtype=torch.float32) @ cell.kernel_1
    _close(out_1, _np(expected_1))
    assert out_2.shape == (2, 2, 3)
    clone = rnnkit.Model.from_config(json.loads(json.dumps(model.get_config())))
    clone.set_weights(model.get_weights())
    for a, b in zip(clone([x1, x2]), (out_1, out_2)):
        _close(a, _np(b))


@pytest.mark.skipif(not HAS_LSTM, reason="needs rnnkit.layers.LSTM")
def test_guide_mnist_models_share_weights_and_match_keras():
    def build_model(lib, allow_cudnn_kernel=True):
        if allow_cudnn_kernel:
            lstm_layer = lib.layers.LSTM(8, input_shape=(None, 6))
        else:
            lstm_layer = lib.layers.RNN(lib.layers.LSTMCell(8), input_shape=(None, 6))
        return lib.models.Sequential(
            [lstm_layer, lib.layers.BatchNormalization(), lib.layers.Dense(10)]
        )

    model = build_model(rnnkit)
    cell_model = build_model(rnnkit, allow_cudnn_kernel=False)
    cell_model.set_weights(model.get_weights())
    with warnings.catch_warnings():  # Keras 3 warns about input_shape=; the guide uses it
        warnings.simplefilter("ignore", UserWarning)
        kmodel = build_model(keras)
    assert [w.shape for w in model.get_weights()] == [w.shape for w in kmodel.get_weights()]
    kmodel.set_weights(model.get_weights())
    sample = RNG.random((3, 7, 6)).astype("float32")
    expected = np.asarray(kmodel.predict_on_batch(sample))
    _close(model(sample), expected)
    _close(cell_model(sample), expected)
    assert model.input_shape == (None, None, 6)


# ------------------------------------------------------------------ shared harness
def test_harness_on_subclassed_model():
    run_layer_test(
        TwoLayer,
        {"hidden": 6},
        input_shape=(4, 5),
        expected_output_shape=(4, 3),
        expected_num_trainable_weights=4,
        expected_num_non_trainable_weights=0,
    )


def test_harness_on_sequential():
    run_layer_test(
        rnnkit.Sequential,
        {"layers": [Dense(4, activation="tanh"), BatchNormalization(), Dense(2)]},
        input_shape=(3, 5),
        expected_output_shape=(3, 2),
        expected_num_trainable_weights=6,
        expected_num_non_trainable_weights=2,
    )
