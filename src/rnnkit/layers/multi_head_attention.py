"""``MultiHeadAttention`` (Vaswani et al., 2017) with Keras 3's weight layout and masks.

For ``query (B, T, Fq)``, ``value (B, S, Fv)`` and ``key (B, S, Fk)`` (``key`` defaults to
``value``), with ``N = num_heads``, ``K = key_dim``, ``V = value_dim``::

    q = query @ Wq + bq            (B, T, N, K)     Wq: query/kernel (Fq, N, K), bq (N, K)
    k = key   @ Wk + bk            (B, S, N, K)     Wk: key/kernel   (Fk, N, K), bk (N, K)
    v = value @ Wv + bv            (B, S, N, V)     Wv: value/kernel (Fv, N, V), bv (N, V)
    scores[b, n, t, s] = softmax_s(q[b, t, n] . k[b, s, n] / sqrt(K))   (masked: weight 0)
    heads[b, t, n] = sum_s scores[b, n, t, s] v[b, s, n]               (B, T, N, V)
    outputs = heads @ Wo + bo      (B, T, *O)       Wo: attention_output/kernel (N, V, *O)

where ``O`` is ``output_shape`` (default ``Fq``). The four projections are sublayers named
``query``, ``key``, ``value`` and ``attention_output`` (attributes ``query_dense``,
``key_dense``, ``value_dense``, ``output_dense``), in that weight order, as in Keras.

Inputs of higher rank ``(B, *D, F)`` attend over ``attention_axes`` (by default every axis of
``D``, jointly); the other axes of ``D`` act as batch axes.

Masks: the query's mask ``(B, T)`` and the value's (and key's, when ``key`` is another
tensor) ``(B, S)`` are read from the inputs (or passed as ``query_mask``/``value_mask``/
``key_mask``), combined with ``attention_mask`` ``(B, T, S)`` and, with
``use_causal_mask=True``, the causal mask ``s <= t``, by logical AND. A masked pair gets weight
0; a query step with every key masked gets all-zero weights (so the output there is the output
bias). The output mask is the query's mask.

>>> import numpy as np
>>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
>>> x = np.ones((3, 5, 8), np.float32)
>>> tuple(mha(x, x).shape)
(3, 5, 8)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rnnkit import constraints, initializers, regularizers
from rnnkit.layers.attention import causal_mask
from rnnkit.layers.base import Layer
from rnnkit.layers.core import add_activity_loss, drop_keras_only_keys
from rnnkit.layers.shapes import check_input_shape, layer_label


class _Projection(Layer):
    """The projections of multi-head attention (Keras' ``EinsumDense`` layout): contracts the
    last ``len(input_dims)`` axes of the inputs with the kernel ``(*input_dims,
    *output_dims)`` and adds the bias ``(*output_dims,)``."""

    def __init__(
        self,
        input_dims: tuple[int, ...],
        output_dims: tuple[int, ...],
        use_bias: bool,
        kernel_initializer: Any,
        bias_initializer: Any,
        kernel_regularizer: Any,
        bias_regularizer: Any,
        activity_regularizer: Any,
        kernel_constraint: Any,
        bias_constraint: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_dims = tuple(input_dims)
        self.output_dims = tuple(output_dims)
        self.activity_regularizer = activity_regularizer
        self.kernel = self.add_weight(
            shape=(*self.input_dims, *self.output_dims),
            initializer=initializers.get(kernel_initializer),
            regularizer=kernel_regularizer,
            constraint=kernel_constraint,
            name="kernel",
        )
        self.bias = None
        if use_bias:
            self.bias = self.add_weight(
                shape=self.output_dims,
                initializer=initializers.get(bias_initializer),
                regularizer=bias_regularizer,
                constraint=bias_constraint,
                name="bias",
            )
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs = torch.tensordot(inputs, self.kernel, dims=len(self.input_dims))
        if self.bias is not None:
            outputs = outputs + self.bias
        add_activity_loss(self, self.activity_regularizer, outputs)
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class MultiHeadAttention(Layer):
    """Multi-head attention; see the module docstring for the maths, weights and masks.

    Args:
        num_heads: the number of heads ``N``.
        key_dim: the size ``K`` of each head's query and key.
        value_dim: the size ``V`` of each head's value (default ``key_dim``).
        dropout: the fraction of attention weights dropped in training.
        use_bias: whether the projections have biases.
        output_shape: the per-position output shape (an int or a tuple); default the query's
            last axis.
        attention_axes: the axes of ``(B, *D, F)`` inputs attended over (default all of
            ``D``); an int or a tuple of ints, negative values counting from the end.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: for every projection.
        seed: an int for reproducible dropout, or None.

    Call: ``mha(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
    attention_mask=None, return_attention_scores=False, training=None,
    use_causal_mask=False)``; with ``return_attention_scores`` it returns ``(outputs,
    scores)``, scores of shape ``(B, N, T, S)`` for rank-3 inputs.
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: Any = None,
        attention_axes: Any = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        for argument, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"MultiHeadAttention: {argument} must be a positive integer, "
                    f"received {argument}={value!r}"
                )
        if value_dim is not None and (
            isinstance(value_dim, bool) or not isinstance(value_dim, int) or value_dim <= 0
        ):
            raise ValueError(
                "MultiHeadAttention: value_dim must be a positive integer or None, "
                f"received value_dim={value_dim!r}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ValueError(f"MultiHeadAttention: dropout must be a float, received {dropout!r}")
        if not 0 <= dropout < 1:
            raise ValueError(
                f"MultiHeadAttention: dropout must be in [0, 1), received dropout={dropout!r}"
            )
        if output_shape is not None:
            output_shape = (output_shape,) if isinstance(output_shape, int) else output_shape
            if not isinstance(output_shape, (list, tuple)) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in output_shape
            ):
                raise ValueError(
                    "MultiHeadAttention: output_shape must be a positive int or a tuple of "
                    f"positive ints, received output_shape={output_shape!r}"
                )
            output_shape = tuple(output_shape)
        if attention_axes is not None:
            attention_axes = (
                (attention_axes,) if isinstance(attention_axes, int) else attention_axes
            )
            if not isinstance(attention_axes, (list, tuple)) or not all(
                isinstance(a, int) and not isinstance(a, bool) for a in attention_axes
            ):
                raise ValueError(
                    "MultiHeadAttention: attention_axes must be an int or a tuple of ints, "
                    f"received attention_axes={attention_axes!r}"
                )
            attention_axes = tuple(attention_axes)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"MultiHeadAttention: seed must be an int or None, received {seed!r}")
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.output_shape = output_shape
        self.attention_axes = attention_axes
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "bias_regularizer")
        self.activity_regularizer = regularizers.get(activity_regularizer, "activity_regularizer")
        self.kernel_constraint = constraints.get(kernel_constraint, "kernel_constraint")
        self.bias_constraint = constraints.get(bias_constraint, "bias_constraint")
        self.seed = seed
        self.supports_masking = True
        self.query_dense: _Projection | None = None
        self.key_dense: _Projection | None = None
        self.value_dense: _Projection | None = None
        self.output_dense: _Projection | None = None
        self._generator: torch.Generator | None = None

    # ------------------------------------------------------------------ build
    def _attention_axes(self, rank: int) -> tuple[int, ...]:
        """The attended axes of rank-``rank`` inputs, as non-negative axes in ``1 .. rank-2``."""
        if self.attention_axes is None:
            return tuple(range(1, rank - 1))
        axes = []
        for a in self.attention_axes:
            resolved = a % rank if -rank <= a < rank else -1
            if not 1 <= resolved <= rank - 2:
                raise ValueError(
                    f"{layer_label(self)}: attention_axes={self.attention_axes} must name axes "
                    f"between the batch and the features of rank-{rank} inputs"
                )
            axes.append(resolved)
        return tuple(sorted(set(axes)))

    def _check_shapes(
        self,
        query: tuple[int | None, ...],
        value: tuple[int | None, ...],
        key: tuple[int | None, ...],
    ) -> None:
        legend = "(batch, ..., features)"
        check_input_shape(self, query, min_rank=3, argument="query", legend=legend)
        check_input_shape(self, value, rank=len(query), argument="value", legend=legend)
        check_input_shape(self, key, rank=len(query), argument="key", legend=legend)
        if any(a is not None and b is not None and a != b for a, b in zip(value[1:-1], key[1:-1])):
            raise ValueError(
                f"{layer_label(self)}: all axes of value and key but the last must be equal, "
                f"received value shape {value} and key shape {key}"
            )
        if self.query_dense is not None:
            for name, shape, projection in (
                ("query", query, self.query_dense),
                ("value", value, self.value_dense),
                ("key", key, self.key_dense),
            ):
                check_input_shape(
                    self,
                    shape,
                    axes={-1: projection.input_dims[0]},
                    argument=name,
                    legend="(features as built)",
                )

    def build(
        self,
        query_shape: Any,
        value_shape: Any = None,
        key_shape: Any = None,
    ) -> None:
        """Create the four projections; without ``value_shape`` (the first call's automatic
        build sees only the query) they are created on the first call."""
        if value_shape is None:
            return
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        self._check_shapes(query_shape, value_shape, key_shape)
        self._attention_axes(len(query_shape))
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if shape[-1] is None:
                raise ValueError(f"{layer_label(self)}: the {name}'s last axis must be known")
        common = {
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "kernel_regularizer": self.kernel_regularizer,
            "bias_regularizer": self.bias_regularizer,
            "activity_regularizer": self.activity_regularizer,
            "kernel_constraint": self.kernel_constraint,
            "bias_constraint": self.bias_constraint,
            "dtype": self._dtype,
        }
        heads = self.num_heads
        self.query_dense = _Projection(
            (query_shape[-1],), (heads, self.key_dim), name="query", **common
        )
        self.key_dense = _Projection((key_shape[-1],), (heads, self.key_dim), name="key", **common)
        self.value_dense = _Projection(
            (value_shape[-1],), (heads, self.value_dim), name="value", **common
        )
        out = self.output_shape or (query_shape[-1],)
        self.output_dense = _Projection(
            (heads, self.value_dim), out, name="attention_output", **common
        )

    # ------------------------------------------------------------------- call
    def _masks(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        query_mask: Any,
        value_mask: Any,
        key_mask: Any,
        attention_mask: Any,
        use_causal_mask: bool,
    ) -> torch.Tensor | None:
        """The combined bool mask over (query, key) pairs, broadcastable to the scores'
        ``(B, *other axes, N, *Tq, *S)``, or None."""
        axes = self._attention_axes(query.ndim)
        others = [a for a in range(1, query.ndim - 1) if a not in axes]
        q_steps = tuple(query.shape[a] for a in axes)
        s_steps = tuple(value.shape[a] for a in axes)
        lead = (query.shape[0], *(query.shape[a] for a in others), self.num_heads)
        n = len(axes)
        combined = None

        def merge(mask: torch.Tensor) -> None:
            nonlocal combined
            combined = mask if combined is None else torch.logical_and(combined, mask)

        def per_step(mask: Any, name: str, tensor: torch.Tensor, side: str) -> torch.Tensor:
            mask = torch.as_tensor(mask, device=query.device)
            if tuple(mask.shape) != tuple(tensor.shape[:-1]):
                raise ValueError(
                    f"{layer_label(self)}: {name} has shape {tuple(mask.shape)}, expected "
                    f"{tuple(tensor.shape[:-1])} (the {side}'s shape without the features)"
                )
            m = mask.to(torch.bool).permute(0, *others, *axes)
            steps = m.shape[1 + len(others) :]
            if side == "query":
                return m.reshape(*m.shape[: 1 + len(others)], 1, *steps, *([1] * n))
            return m.reshape(*m.shape[: 1 + len(others)], 1, *([1] * n), *steps)

        if query_mask is not None:
            merge(per_step(query_mask, "query_mask", query, "query"))
        for name, mask in (("value_mask", value_mask), ("key_mask", key_mask)):
            if mask is not None:
                merge(per_step(mask, name, value, "value"))
        if use_causal_mask:
            if n != 1:
                raise ValueError(
                    f"{layer_label(self)}: use_causal_mask needs a single attention axis, "
                    f"received attention_axes={axes}"
                )
            causal = causal_mask(q_steps[0], s_steps[0], query.device)
            merge(causal.reshape((1,) * len(lead) + (q_steps[0], s_steps[0])))
        if attention_mask is not None:
            m = torch.as_tensor(attention_mask, device=query.device).to(torch.bool)
            target = lead + q_steps + s_steps
            while m.ndim < len(target):
                m = m.unsqueeze(-2 * n - 1)  # Keras inserts missing axes before the steps
            try:
                torch.broadcast_shapes(tuple(m.shape), target)
            except RuntimeError as error:
                raise ValueError(
                    f"{layer_label(self)}: attention_mask has shape "
                    f"{tuple(torch.as_tensor(attention_mask).shape)}, expected {target} "
                    "(batch, ..., heads, query steps, key steps; size-1 or missing leading "
                    "axes broadcast)"
                ) from error
            merge(m)
        return combined

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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Keras' keyword form mha(query=q, value=v): the query is the layer's first input.
        if not args and "query" in kwargs:
            args = (kwargs.pop("query"),)
        return super().__call__(*args, **kwargs)

    def call(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        key: torch.Tensor | None = None,
        query_mask: Any = None,
        value_mask: Any = None,
        key_mask: Any = None,
        attention_mask: Any = None,
        return_attention_scores: bool = False,
        training: bool = False,
        use_causal_mask: bool = False,
        mask: Any = None,
    ) -> Any:
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value)
        separate_key = key is not None and key is not value
        if key is not None and not isinstance(key, torch.Tensor):
            key = torch.as_tensor(key)
        if query_mask is None:
            query_mask = mask
        if value_mask is None:
            value_mask = getattr(value, "_keras_mask", None)
        if key_mask is None and separate_key:
            key_mask = getattr(key, "_keras_mask", None)
        key = value if key is None else key
        self._check_shapes(tuple(query.shape), tuple(value.shape), tuple(key.shape))
        if self.query_dense is None:
            self.build(tuple(query.shape), tuple(value.shape), tuple(key.shape))
            self.to(query.device)
        dtype = self.query_dense.kernel.dtype
        query, value, key = (t.to(dtype) for t in (query, value, key))
        pair_mask = self._masks(
            query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask
        )
        q = self.query_dense(query)  # (B, *D, N, K)
        k = self.key_dense(key)
        v = self.value_dense(value)
        heads, scores = self._attend(q, k, v, pair_mask, training)
        outputs = self.output_dense(heads)
        return (outputs, scores) if return_attention_scores else outputs

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        pair_mask: torch.Tensor | None,
        training: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled dot-product attention per head over the attention axes (jointly)."""
        rank = q.ndim - 1  # the inputs' rank
        axes = self._attention_axes(rank)
        others = [a for a in range(1, rank - 1) if a not in axes]
        head_axis = rank - 1
        # (B, *others, N, *attended, channels)
        order = [0, *others, head_axis, *axes, rank]
        qp, kp, vp = (t.permute(order) for t in (q, k, v))
        lead = qp.shape[: 2 + len(others)]
        q_steps, s_steps = qp.shape[len(lead) : -1], kp.shape[len(lead) : -1]
        qf = qp.reshape(*lead, -1, qp.shape[-1]) * (1.0 / math.sqrt(float(self.key_dim)))
        kf = kp.reshape(*lead, -1, kp.shape[-1])
        vf = vp.reshape(*lead, -1, vp.shape[-1])
        scores = torch.matmul(qf, kf.transpose(-2, -1))  # (B, *others, N, Tq, S) flat
        if pair_mask is not None:
            m = pair_mask.expand(*lead, *q_steps, *s_steps)
            m = m.reshape(*lead, math.prod(q_steps), math.prod(s_steps))
            large = 3.0e4 if scores.dtype == torch.float16 else 1.0e9
            scores = torch.where(m, scores, torch.full((), -large, dtype=scores.dtype))
        weights = torch.softmax(scores, dim=-1)
        if pair_mask is not None:
            weights = torch.where(m, weights, torch.zeros((), dtype=weights.dtype))
        used = self._dropout(weights) if training and self.dropout > 0 else weights
        heads = torch.matmul(used, vf)  # (B, *others, N, Tq, V) flat
        heads = heads.reshape(*lead, *q_steps, heads.shape[-1])
        inverse = [0] * len(order)
        for position, axis in enumerate(order):
            inverse[axis] = position
        heads = heads.permute(inverse)  # (B, *D, N, V)
        scores_out = weights.reshape(*lead, *q_steps, *s_steps)
        return heads, scores_out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask

    def compute_output_shape(
        self, query_shape: Any, value_shape: Any = None, key_shape: Any = None
    ) -> tuple[int | None, ...]:
        query_shape = tuple(query_shape)
        value_shape = query_shape if value_shape is None else tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        self._check_shapes(query_shape, value_shape, key_shape)
        return query_shape[:-1] + (self.output_shape or (query_shape[-1],))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "attention_axes": None if self.attention_axes is None else list(self.attention_axes),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MultiHeadAttention:
        """Also loads Keras configs (their gate, sliding-window and flash-attention keys must be
        off)."""
        defaults = {"use_gate": False, "sliding_window": None, "flash_attention": None}
        return cls(**drop_keras_only_keys(cls, config, defaults))
