"""Dot-product (Luong) and additive (Bahdanau) attention: ``Attention`` and
``AdditiveAttention``.

Both are called on ``[query, value]`` or ``[query, value, key]`` (``key`` defaults to
``value``) with ``query (B, Tq, D)``, ``value (B, Tv, Dv)`` and ``key (B, Tv, D)``::

    scores[b, i, j]  = score(query[b, i], key[b, j])                  (B, Tq, Tv)
    weights[b, i, :] = softmax_j(scores[b, i, :])  (masked keys left out)
    outputs[b, i]    = sum_j weights[b, i, j] value[b, j]             (B, Tq, Dv)

Masks, as in Keras 3: ``mask=[query_mask, value_mask]`` (``(B, Tq)`` and ``(B, Tv)``, taken
from the inputs' masks by default). A masked key gets the score ``score - 1e9`` (so weight 0
unless every key is masked); ``use_causal_mask=True`` also masks keys ``j > i``; a masked query
step gives output 0, and the query mask is the output mask.

>>> import numpy as np
>>> q, v = np.ones((2, 3, 4), np.float32), np.ones((2, 5, 4), np.float32)
>>> tuple(Attention()([q, v]).shape)
(2, 3, 4)
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.layers.base import Layer
from rnnkit.layers.shapes import check_input_shape, layer_label
from rnnkit.symbolic import KerasTensor, call_input_dtype

_SCORE_MODES = ("dot", "concat")


def _check_rate(value: Any, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{owner}: dropout must be a float in [0, 1), received {value!r}")
    return float(value)


def causal_mask(queries: int, keys: int, device: torch.device) -> torch.Tensor:
    """``(1, queries, keys)`` bool: query step ``i`` may see key steps ``j <= i``."""
    rows = torch.arange(queries, device=device).unsqueeze(1)
    cols = torch.arange(keys, device=device).unsqueeze(0)
    return (rows >= cols).unsqueeze(0)


class Attention(Layer):
    """Dot-product attention (Luong style); see the module docstring for inputs and masks.

    ``score_mode="dot"``: ``scores = scale * query @ key^T``; ``"concat"``:
    ``scores[i, j] = concat_score_weight * sum_d tanh(scale * (query[i, d] + key[j, d]))``.

    Args:
        use_scale: learn the scalar ``scale`` (initialized to 1); without it ``scale = 1``.
        score_mode: ``"dot"`` or ``"concat"`` (which adds the scalar weight
            ``concat_score_weight``, initialized to 1).
        dropout: the fraction of attention weights dropped in training.
        seed: an int for reproducible dropout, or None.

    Call arguments: ``inputs`` (the list), ``mask``, ``training``,
    ``return_attention_scores`` (also return the ``(B, Tq, Tv)`` weights) and
    ``use_causal_mask``.
    """

    _output_from_shapes_takes_lists = True

    def __init__(
        self,
        use_scale: bool = False,
        score_mode: str = "dot",
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        if score_mode not in _SCORE_MODES:
            raise ValueError(
                f"{owner}: score_mode must be 'dot' or 'concat', received {score_mode!r}"
            )
        dropout = _check_rate(dropout, owner)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"{owner}: seed must be an int or None, received {seed!r}")
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = dropout
        self.seed = seed
        self.supports_masking = True
        self.scale: torch.nn.Parameter | None = None
        self.concat_score_weight: torch.nn.Parameter | None = None
        self._generator: torch.Generator | None = None

    # -------------------------------------------------------------- inputs
    def _split(self, items: Any, argument: str, shapes: bool = False) -> list[Any]:
        single = (
            shapes
            and isinstance(items, (list, tuple))
            and not all(isinstance(s, (list, tuple)) for s in items)
        )
        if single or not isinstance(items, (list, tuple)) or not 2 <= len(items) <= 3:
            if single:
                received = f"a single input of shape {tuple(items)}"
            elif isinstance(items, torch.Tensor):
                received = f"a single tensor of shape {tuple(items.shape)}"
            elif isinstance(items, (list, tuple)):
                received = f"a list of length {len(items)}"
            else:
                received = type(items).__name__
            raise ValueError(
                f"{layer_label(self)}: {argument} must be a list [query, value] or "
                f"[query, value, key], received {received}"
            )
        return list(items)

    def _check_shapes(self, shapes: list[tuple[int | None, ...]]) -> None:
        legend = "(batch, steps, features)"
        for name, shape in zip(("query", "value", "key"), shapes):
            check_input_shape(self, shape, rank=3, argument=name, legend=legend)
        query, value = shapes[0], shapes[1]
        key = shapes[2] if len(shapes) > 2 else value
        if query[-1] is not None and key[-1] is not None and query[-1] != key[-1]:
            raise ValueError(
                f"{layer_label(self)}: query and key must have the same number of features, "
                f"received query shape {query} and key shape {key}"
            )
        if value[1] is not None and key[1] is not None and value[1] != key[1]:
            raise ValueError(
                f"{layer_label(self)}: value and key must have the same number of steps, "
                f"received value shape {value} and key shape {key}"
            )

    def build(self, input_shape: Any) -> None:
        shapes = [tuple(s) for s in self._split(input_shape, "inputs", shapes=True)]
        self._check_shapes(shapes)
        self._build_scores(shapes[0][-1])

    def _build_scores(self, features: int | None) -> None:
        if self.use_scale:
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(
                shape=(), initializer="ones", name="concat_score_weight"
            )

    # -------------------------------------------------------------- maths
    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        if self.score_mode == "dot":
            scores = torch.matmul(query, key.transpose(-2, -1))
            return scores * self.scale if self.scale is not None else scores
        pairs = query.unsqueeze(-2) + key.unsqueeze(-3)
        if self.scale is not None:
            pairs = self.scale * pairs
        return self.concat_score_weight * torch.tanh(pairs).sum(dim=-1)

    def _dropout(self, weights: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.dropout
        if self.seed is None:
            pattern = torch.rand(weights.shape, device=weights.device) < keep
        else:
            if self._generator is None:
                self._generator = torch.Generator().manual_seed(self.seed)
            pattern = (torch.rand(weights.shape, generator=self._generator) < keep).to(
                weights.device
            )
        return torch.where(pattern, weights / keep, torch.zeros((), dtype=weights.dtype))

    def call(
        self,
        inputs: list[torch.Tensor],
        mask: list[Any] | None = None,
        training: bool = False,
        return_attention_scores: bool = False,
        use_causal_mask: bool = False,
    ) -> Any:
        tensors = self._split(inputs, "inputs")
        self._check_shapes([tuple(t.shape) for t in tensors])
        query, value = tensors[0], tensors[1]
        key = tensors[2] if len(tensors) > 2 else value
        masks = [None, None] if mask is None else self._split(mask, "mask")
        query_mask, value_mask = (
            None if m is None else torch.as_tensor(m, device=query.device) for m in masks[:2]
        )
        batch, steps_q, steps_v = query.shape[0], query.shape[1], value.shape[1]
        for name, m, steps in (("query", query_mask, steps_q), ("value", value_mask, steps_v)):
            if m is not None and tuple(m.shape) != (batch, steps):
                raise ValueError(
                    f"{layer_label(self)}: the {name} mask has shape {tuple(m.shape)}, expected "
                    f"{(batch, steps)} (batch, steps)"
                )
        scores = self._scores(query, key)
        keep = None if value_mask is None else value_mask.to(torch.bool).unsqueeze(-2)
        if use_causal_mask:
            causal = causal_mask(steps_q, steps_v, scores.device)
            keep = causal if keep is None else torch.logical_and(keep, causal)
        if keep is not None:
            large = 65504.0 if scores.dtype == torch.float16 else 1.0e9
            scores = torch.where(keep, scores, scores - large)
        weights = torch.softmax(scores, dim=-1)
        used = self._dropout(weights) if training and self.dropout > 0 else weights
        outputs = torch.matmul(used, value)
        if query_mask is not None:
            outputs = torch.where(
                query_mask.to(torch.bool).unsqueeze(-1),
                outputs,
                torch.zeros((), dtype=outputs.dtype),
            )
        return (outputs, weights) if return_attention_scores else outputs

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        if mask is None:
            return None
        masks = self._split(mask, "mask")
        return None if masks[0] is None else torch.as_tensor(masks[0])

    def _output_from_shapes(self, inputs: Any, **kwargs: Any) -> KerasTensor | None:
        """On ``[query, value]`` or ``[query, value, key]`` KerasTensors of rank 3 and one
        floating dtype, with no other argument: ``(B, Tq, Dv)``, with the query's mask. None
        when a size the call compares is unknown on one side and known on the other (a run
        compares the placeholder's), when a mask is not ``(B, T)`` of its input, for a
        subclass with its own ``call`` or scores, and under a mixed policy: the call then
        runs on placeholders, which raises the errors."""
        if (
            kwargs
            or not isinstance(inputs, (list, tuple))
            or not 2 <= len(inputs) <= 3
            or not all(isinstance(x, KerasTensor) and len(x.shape) == 3 for x in inputs)
            or type(self) not in (Attention, AdditiveAttention)
            or self._autocast_dtype is not None
        ):
            return None
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) > 2 else value
        if len({x.dtype for x in inputs}) != 1 or not query.dtype.is_floating_point:
            return None
        if len({x.shape[0] for x in inputs}) != 1:
            return None  # batch sizes that may differ in a run
        if query.shape[2] is None or query.shape[2] != key.shape[2]:
            return None  # the run builds on the placeholder's features and compares them
        if value.shape[1] != key.shape[1]:
            return None
        masks = [x._keras_mask for x in inputs]
        if any(m is not None and m.shape != x.shape[:2] for x, m in zip(inputs, masks)):
            return None
        self._maybe_build(list(inputs))
        dtype = call_input_dtype(self, query)  # once built: a layer with weights casts
        output = KerasTensor((*query.shape[:2], value.shape[2]), dtype)
        if masks[0] is not None:
            output._keras_mask = KerasTensor(masks[0].shape, torch.bool)
        return output

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        shapes = [tuple(s) for s in self._split(input_shape, "inputs", shapes=True)]
        self._check_shapes(shapes)
        return (*shapes[0][:-1], shapes[1][-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "use_scale": self.use_scale,
            "score_mode": self.score_mode,
            "dropout": self.dropout,
            "seed": self.seed,
        }


class AdditiveAttention(Attention):
    """Additive attention (Bahdanau style); see the module docstring for inputs and masks::

        scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])

    Args:
        use_scale: learn the ``(D,)`` vector ``scale`` (Glorot-uniform initialized, default
            True); without it ``scale = 1``.
        dropout, seed: as in :class:`Attention`.
    """

    def __init__(
        self,
        use_scale: bool = True,
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def _build_scores(self, features: int | None) -> None:
        if features is None:
            raise ValueError(f"{layer_label(self)}: the query's last axis (features) must be known")
        if self.use_scale:
            self.scale = self.add_weight(
                shape=(features,), initializer="glorot_uniform", name="scale"
            )

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        pairs = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))
        if self.scale is not None:
            pairs = pairs * self.scale
        return pairs.sum(dim=-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["score_mode"]
        return config
