"""Keras' dtype policies: which dtype a layer's variables have and which it computes in.

A policy is named like Keras': ``"float32"`` (default), ``"float64"``, ``"bfloat16"``,
``"float16"`` (variables and computation in that dtype), ``"mixed_float16"`` and
``"mixed_bfloat16"`` (variables float32, computation in the low precision). Set one for every
layer created afterwards with :func:`set_global_policy`, or per layer with ``dtype=``::

    rnnkit.mixed_precision.set_global_policy("mixed_bfloat16")
    layer = rnnkit.layers.LSTM(64)              # variables float32, compute bfloat16
    head = rnnkit.layers.Dense(10, dtype="float32")

A layer under a mixed policy runs its ``call`` inside ``torch.autocast(device, dtype)``:
matrix products (and torch's fused LSTM: oneDNN bfloat16 on CPU, cuDNN float16 on CUDA) run
in the low precision, while variables stay float32 and recurrent layers return their states in
float32, as Keras keeps them. What autocast does per op is torch's choice (on CPU torch runs
the fused GRU and SimpleRNN kernels in float32 under bfloat16 autocast). ``fit`` scales the
loss for ``mixed_float16`` models (``torch.amp.GradScaler``), whose gradients would otherwise
underflow.
"""

from __future__ import annotations

from typing import Any

import torch

_NAMES = ("float32", "float64", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16")


class DTypePolicy:
    """A named pair (variable dtype, compute dtype), as Keras' ``DTypePolicy``.

    Args:
        name: one of ``"float32"``, ``"float64"``, ``"float16"``, ``"bfloat16"``,
            ``"mixed_float16"``, ``"mixed_bfloat16"``.
    """

    def __init__(self, name: str = "float32") -> None:
        if name not in _NAMES:
            raise ValueError(f"DTypePolicy: name must be one of {_NAMES}, received {name!r}")
        self.name = name
        low = name.removeprefix("mixed_")
        self.compute_dtype: torch.dtype = getattr(torch, low)
        self.variable_dtype: torch.dtype = torch.float32 if self.is_mixed else self.compute_dtype

    @property
    def is_mixed(self) -> bool:
        return self.name.startswith("mixed_")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self.name}">'

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


_GLOBAL = [DTypePolicy("float32")]


def set_global_policy(policy: str | DTypePolicy | None) -> None:
    """The policy of every layer created afterwards without ``dtype=`` (None: float32)."""
    _GLOBAL[0] = DTypePolicy("float32") if policy is None else get_policy(policy)


def global_policy() -> DTypePolicy:
    """The current global policy (``"float32"`` unless :func:`set_global_policy` changed it)."""
    return _GLOBAL[0]


def get_policy(identifier: Any) -> DTypePolicy:
    """A :class:`DTypePolicy` from a policy, a policy name, a dtype name or ``torch.dtype``, or
    a Keras ``DTypePolicy`` config dict."""
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):  # Keras: {"class_name": "DTypePolicy", "config": {...}}
        identifier = identifier.get("config", {}).get("name", "float32")
    if isinstance(identifier, torch.dtype):
        identifier = str(identifier).removeprefix("torch.")
    name = getattr(identifier, "name", identifier)  # numpy dtypes
    if not isinstance(name, str) or name not in _NAMES:
        raise ValueError(
            f"dtype: expected a dtype or policy name {_NAMES}, received {identifier!r}"
        )
    return DTypePolicy(name)


def names_mixed_policy(identifier: Any) -> bool:
    """Whether ``identifier`` (a ``dtype=`` argument) names a mixed policy."""
    if isinstance(identifier, DTypePolicy):
        return identifier.is_mixed
    if isinstance(identifier, dict):
        identifier = identifier.get("config", {}).get("name")
    return isinstance(identifier, str) and identifier.startswith("mixed_")
