"""The shared layer test harness (in the spirit of Keras' ``run_layer_test``).

``run_layer_test(cls, init_kwargs, input_shape=...)`` checks, for one layer configuration:
output shape (eager and symbolic), weight counts, config round trip, ``get_weights`` /
``set_weights`` round trip, ``state_dict`` round trip, numpy vs tensor inputs, and a backward
pass that reaches every trainable weight. Every layer's tests call it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit import tree


def _random_input(shape: Any, dtype: str, rng: np.random.Generator) -> Any:
    def make(s: tuple[int, ...]) -> np.ndarray:
        if dtype.startswith("int"):
            return rng.integers(0, 5, size=s).astype(dtype)
        return rng.standard_normal(s).astype(dtype)

    return tree.map_shape_structure(make, shape)


def _to_torch(x: Any) -> Any:
    return tree.map_structure(lambda a: torch.as_tensor(a), x)


def _shapes(x: Any) -> Any:
    return tree.map_structure(lambda t: tuple(t.shape), x)


def _flat_shapes(structure: Any) -> list[tuple[int | None, ...]]:
    found: list[tuple[int | None, ...]] = []
    tree.map_shape_structure(lambda s: found.append(tuple(s)), structure)
    return found


def _assert_close(a: Any, b: Any, atol: float = 1e-6) -> None:
    for x, y in zip(tree.flatten(a), tree.flatten(b)):
        np.testing.assert_allclose(
            x.detach().cpu().numpy(), y.detach().cpu().numpy(), atol=atol, rtol=1e-6
        )


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict[str, Any] | None = None,
    input_shape: Any = None,
    input_dtype: str = "float32",
    input_data: Any = None,
    call_kwargs: dict[str, Any] | None = None,
    expected_output_shape: Any = None,
    expected_num_trainable_weights: int | None = None,
    expected_num_non_trainable_weights: int | None = None,
    supports_masking: bool | None = None,
    check_symbolic: bool = True,
    check_backward: bool = True,
) -> rnnkit.layers.Layer:
    """Run the standard checks on ``layer_cls(**init_kwargs)``; returns the built layer."""
    init_kwargs = dict(init_kwargs or {})
    call_kwargs = dict(call_kwargs or {})
    rng = np.random.default_rng(0)
    if input_data is None:
        input_data = _random_input(input_shape, input_dtype, rng)
    input_shape = tree.map_structure(lambda a: tuple(a.shape), input_data)

    layer = layer_cls(**init_kwargs)
    assert isinstance(layer, torch.nn.Module)
    if supports_masking is not None:
        assert layer.supports_masking == supports_masking

    # Config round trip before and after building.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, "from_config(get_config()) changed the config"

    # Eager call on numpy, then on tensors: same result.
    out_np = layer(input_data, **call_kwargs)
    assert layer.built
    out_t = layer(_to_torch(input_data), **call_kwargs)
    _assert_close(out_np, out_t)
    if expected_output_shape is not None:
        assert _shapes(out_np) == expected_output_shape, (
            f"output shape {_shapes(out_np)}, expected {expected_output_shape}"
        )

    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    assert len(layer.weights) == len(layer.trainable_weights) + len(layer.non_trainable_weights)
    assert layer.count_params() == sum(int(np.prod(w.shape)) for w in layer.get_weights())

    # get_weights / set_weights into a fresh layer from the built layer's config.
    config = layer.get_config()
    fresh = layer_cls.from_config(config)
    fresh(input_data, **call_kwargs)
    fresh.set_weights(layer.get_weights())
    _assert_close(fresh(input_data, **call_kwargs), out_np)
    assert fresh.get_config() == config

    # state_dict round trip.
    other = layer_cls.from_config(config)
    other(input_data, **call_kwargs)
    other.load_state_dict(layer.state_dict())
    _assert_close(other(input_data, **call_kwargs), out_np)

    # A backward pass reaches every trainable weight.
    if check_backward and layer.trainable_weights:
        layer.zero_grad()
        inputs = _to_torch(input_data)
        out = layer(inputs, training=True, **call_kwargs)
        total = sum(o.float().sum() for o in tree.flatten(out) if isinstance(o, torch.Tensor))
        total.backward()
        trainable_ids = {id(w) for w in layer.trainable_weights}
        for w, path in zip(layer.weights, layer.weight_paths()):
            if id(w) in trainable_ids:
                assert w.grad is not None, f"no gradient reached {path}"

    # Symbolic call: shapes with None batch.
    if check_symbolic:
        sym_in = tree.map_shape_structure(
            lambda s: rnnkit.Input(batch_shape=(None, *s[1:]), dtype=input_dtype), input_shape
        )
        sym_out = layer(sym_in, **call_kwargs)
        flat_eager = _flat_shapes(_shapes(out_np))
        flat_sym = _flat_shapes(tree.map_structure(lambda t: t.shape, sym_out))
        assert len(flat_eager) == len(flat_sym)
        for se, ss in zip(flat_eager, flat_sym):
            assert len(se) == len(ss), f"symbolic shape {ss} vs eager {se}"
            assert ss[0] is None, f"symbolic batch size should be None, got {ss}"
            for de, ds in zip(se[1:], ss[1:]):
                assert ds is None or ds == de, f"symbolic shape {ss} vs eager {se}"
    return layer
