"""The Keras-style Layer base: building, weights, config, masks, training mode, errors."""

import numpy as np
import pytest
import torch
from harness import run_layer_test

import rnnkit
from rnnkit.layers import Layer


class MinimalRNNCell(Layer):
    """Seed 003's MinimalRNNCell, with torch ops instead of backend.dot."""

    def __init__(self, units, **kwargs):
        self.units = units
        self.state_size = units
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer="uniform", name="recurrent_kernel"
        )
        self.built = True

    def call(self, inputs, states):
        prev_output = states[0]
        h = inputs @ self.kernel
        output = h + prev_output @ self.recurrent_kernel
        return output, [output]


class Scale(Layer):
    """A tiny layer with a trainable and a non-trainable weight and a regularizer."""

    supports_masking = True

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1],), initializer="ones", name="w", regularizer="l2"
        )
        self.count = self.add_weight(shape=(), initializer="zeros", name="count", trainable=False)

    def call(self, inputs, training=None):
        return inputs * self.w * (self.factor if training else 1.0)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_minimal_cell_builds_lazily_and_round_trips():
    cell = MinimalRNNCell(32)
    assert not cell.built and cell.weights == []
    out, states = cell(np.ones((2, 5)), [torch.zeros(2, 32)])
    assert cell.built
    assert out.shape == (2, 32) and out.dtype == torch.float32
    assert [tuple(w.shape) for w in cell.weights] == [(5, 32), (32, 32)]
    assert cell.weight_paths() == ["minimal_rnn_cell/kernel", "minimal_rnn_cell/recurrent_kernel"]
    assert list(cell.state_dict()) == ["kernel", "recurrent_kernel"]
    assert all(isinstance(w, torch.nn.Parameter) for w in cell.weights)
    config = cell.get_config()
    assert config["units"] == 32
    clone = MinimalRNNCell.from_config(config)
    assert clone.units == 32 and clone.get_config() == config


def test_automatic_unique_names():
    assert MinimalRNNCell(1).name == "minimal_rnn_cell"
    assert MinimalRNNCell(1).name == "minimal_rnn_cell_1"
    assert Scale(name="mine").name == "mine"


def test_unknown_kwarg_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="unexpected keyword argument.*'unitz'"):
        MinimalRNNCell(3, unitz=4)


def test_harness_on_custom_layer():
    run_layer_test(
        Scale,
        {"factor": 3.0},
        input_shape=(4, 3),
        expected_output_shape=(4, 3),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=1,
        supports_masking=True,
    )


def test_weights_order_trainable_then_non_trainable_and_freezing():
    layer = Scale()
    layer(np.ones((2, 3), np.float32))
    assert [p for p in layer.weight_paths()] == ["scale/w", "scale/count"]
    assert layer.trainable_weights == [layer.w] and layer.non_trainable_weights == [layer.count]
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    assert not layer.w.requires_grad
    layer.trainable = True
    assert layer.w.requires_grad and not layer.count.requires_grad


def test_set_weights_errors_name_the_weight_and_shapes():
    layer = Scale()
    layer(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected 2 arrays.*received 1"):
        layer.set_weights([np.ones(3)])
    with pytest.raises(ValueError, match=r"'scale/w' has shape \(3,\), received .*\(4,\)"):
        layer.set_weights([np.ones(4), np.zeros(())])


def test_numpy_float64_becomes_float32_and_explicit_float64_layer():
    layer = Scale()
    out = layer(np.ones((2, 3)))
    assert out.dtype == torch.float32
    layer64 = Scale(dtype="float64")
    assert layer64(np.ones((2, 3))).dtype == torch.float64
    assert layer64.dtype == "float64"


def test_losses_from_regularizers():
    layer = Scale()
    layer(np.ones((2, 3), np.float32))
    (loss,) = layer.losses
    assert loss.item() == pytest.approx(0.01 * 3)


def test_losses_include_regularizers_of_weights_added_later():
    """The regularized weights are kept with the layer structure: a weight added after a
    ``losses`` read (a layer built later) has its penalty in the next read."""
    layer = Scale()
    layer(np.ones((2, 3), np.float32))
    assert len(layer.losses) == 1
    layer.extra = layer.add_weight(shape=(2,), initializer="ones", name="extra", regularizer="l1")
    assert [round(loss.item(), 6) for loss in layer.losses] == [0.03, 0.02]


def test_training_flag_resolution():
    layer = Scale(factor=10.0)
    x = np.ones((1, 3), np.float32)
    assert layer(x).sum().item() == 3.0  # inference by default, like Keras
    assert layer(x, training=True).sum().item() == 30.0
    layer.train()  # PyTorch-style loops opt in with .train()
    assert layer(x).sum().item() == 30.0
    assert layer(x, training=False).sum().item() == 3.0


def test_mask_propagates_through_supports_masking():
    layer = Scale()
    x = torch.ones(2, 3, 4)
    x._keras_mask = torch.tensor([[True, True, False], [True, False, False]])
    out = layer(x)
    assert torch.equal(out._keras_mask, x._keras_mask)


def test_symbolic_call_infers_shapes_with_none():
    layer = Scale()
    x = rnnkit.Input(shape=(None, 7))
    y = layer(x)
    assert y.shape == (None, None, 7)
    assert y._keras_history[0] is layer
    assert layer.compute_output_shape((None, 5, 7)) == (None, 5, 7)


def test_explicit_build_sets_built():
    layer = Scale()
    layer.build((None, 4))
    assert layer.built and layer.count_params() == 5


def test_count_params_before_build_is_an_error():
    with pytest.raises(ValueError, match="not built"):
        Scale().count_params()


def test_register_serializable():
    @rnnkit.saving.register_keras_serializable(package="test")
    class Registered(Layer):
        pass

    assert rnnkit.saving.get_registered_object("test>Registered") is Registered
    assert rnnkit.saving.register_serializable is rnnkit.saving.register_keras_serializable
