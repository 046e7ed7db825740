"""Random tensors with Keras' ``keras.random`` API: ``normal``, ``uniform``, ``randint``,
``truncated_normal``, ``dropout``, ``shuffle``, ``categorical`` and ``SeedGenerator``.

``seed`` works as in Keras:

- an int: the draw is a pure function of the seed: the same int gives the same tensor
  every time;
- a :class:`SeedGenerator`: each draw takes the generator's next seed, so successive draws
  differ, and two generators made with the same seed give the same sequence (use one in a
  layer that draws at every call, such as dropout);
- None: torch's global generator (``torch.manual_seed`` or
  ``rnnkit.utils.set_random_seed`` makes it reproducible).

The numbers come from torch's generators, not from Keras': the same seed gives the same
distribution as Keras, not the same values (nor the same values on CPU and CUDA). Tensors
made from a shape go on torch's default device (``torch.set_default_device``); ``dropout``,
``shuffle`` and ``categorical`` draw on their input's device.

>>> from rnnkit import random
>>> bool((random.normal((2,), seed=1) == random.normal((2,), seed=1)).all())
True
"""

from __future__ import annotations

import random as python_random
from typing import Any

import torch

from rnnkit.ops._axes import canonical_axis, check_int
from rnnkit.ops._dtypes import FLOATX, to_torch_dtype
from rnnkit.ops.core import convert_to_tensor

__all__ = [
    "SeedGenerator",
    "categorical",
    "dropout",
    "normal",
    "randint",
    "shuffle",
    "truncated_normal",
    "uniform",
]

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: successive seeds far apart
_MASK = (1 << 63) - 1


class SeedGenerator:
    """A seed that advances at each draw: ``normal(shape, seed=gen)`` twice gives two
    different tensors; a new ``SeedGenerator(seed)`` with the same int repeats them.

    Args:
        seed: an int, or None for a seed drawn from Python's ``random`` (which
            ``set_random_seed`` seeds).
    """

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"SeedGenerator: unknown arguments {sorted(kwargs)}")
        if seed is None:
            seed = python_random.randint(1, 2**31 - 1)
        self.seed = check_int("SeedGenerator", "seed", seed)
        self.name = name
        self.state = 0  # draws taken so far

    def next(self) -> int:
        """The seed for the next draw (advances the generator)."""
        value = ((self.seed * _MIX) ^ (self.state * 0x2545F4914F6CDD1D + 1)) & _MASK
        self.state += 1
        return value

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SeedGenerator:
        return cls(**config)

    def __repr__(self) -> str:
        return f"SeedGenerator(seed={self.seed}, state={self.state})"


def _generator(
    op: str, seed: int | SeedGenerator | None, device: torch.device
) -> torch.Generator | None:
    """A private generator on ``device`` for an int seed or a SeedGenerator's next seed; None
    (torch's global generator for that device) for seed None."""
    if seed is None:
        return None
    if isinstance(seed, SeedGenerator):
        value = seed.next()
    else:
        value = check_int(op, "seed", seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(value & _MASK)
    return generator


def _shape(op: str, shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    return tuple(check_int(op, "shape", d, minimum=0) for d in dims)


def _float_dtype(op: str, dtype: Any) -> torch.dtype:
    target = FLOATX if dtype is None else to_torch_dtype(dtype)
    if not target.is_floating_point:
        raise ValueError(f"{op}: dtype must be a float dtype, received {dtype!r}")
    return target


def normal(
    shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None, seed: Any = None
) -> torch.Tensor:
    """Samples of a normal distribution of ``mean`` and ``stddev``."""
    dims = _shape("normal", shape)
    device = torch.get_default_device()
    out = torch.randn(
        dims, generator=_generator("normal", seed, device), dtype=torch.float32, device=device
    )
    return (out * stddev + mean).to(_float_dtype("normal", dtype))


def uniform(
    shape: Any, minval: float = 0.0, maxval: float = 1.0, dtype: Any = None, seed: Any = None
) -> torch.Tensor:
    """Samples of the uniform distribution on ``[minval, maxval)``."""
    dims = _shape("uniform", shape)
    target = _float_dtype("uniform", dtype)
    if not maxval > minval:
        raise ValueError(
            f"uniform: maxval must be > minval, received minval={minval}, maxval={maxval}"
        )
    device = torch.get_default_device()
    out = torch.rand(
        dims, generator=_generator("uniform", seed, device), dtype=torch.float32, device=device
    )
    return (out * (maxval - minval) + minval).to(target)


def randint(
    shape: Any, minval: int, maxval: int, dtype: Any = "int32", seed: Any = None
) -> torch.Tensor:
    """Integers drawn uniformly from ``[minval, maxval)``."""
    dims = _shape("randint", shape)
    low = check_int("randint", "minval", minval)
    high = check_int("randint", "maxval", maxval)
    if high <= low:
        raise ValueError(f"randint: maxval must be > minval, received minval={low}, maxval={high}")
    target = to_torch_dtype(dtype)
    device = torch.get_default_device()
    out = torch.randint(
        low, high, dims, generator=_generator("randint", seed, device), device=device
    )
    return out.to(target)


def truncated_normal(
    shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None, seed: Any = None
) -> torch.Tensor:
    """Samples of a normal distribution of ``mean`` and ``stddev`` redrawn until they lie
    within two standard deviations of the mean."""
    dims = _shape("truncated_normal", shape)
    device = torch.get_default_device()
    out = torch.empty(dims, dtype=torch.float32, device=device)
    torch.nn.init.trunc_normal_(
        out, 0.0, 1.0, -2.0, 2.0, generator=_generator("truncated_normal", seed, device)
    )
    return (out * stddev + mean).to(_float_dtype("truncated_normal", dtype))


def dropout(inputs: Any, rate: float, noise_shape: Any = None, seed: Any = None) -> torch.Tensor:
    """``inputs`` with each element zeroed with probability ``rate`` and the rest scaled by
    ``1 / (1 - rate)``; ``noise_shape`` (broadcast to the input's) shares one draw along
    axes of size 1."""
    x = convert_to_tensor(inputs)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1), received {rate}")
    if not x.is_floating_point():
        x = x.to(FLOATX)
    shape = (
        tuple(x.shape)
        if noise_shape is None
        else tuple(x.shape[i] if d is None else d for i, d in enumerate(noise_shape))
    )
    if noise_shape is not None and len(shape) != x.ndim:
        raise ValueError(f"dropout: noise_shape must have rank {x.ndim}, received {noise_shape}")
    try:
        torch.broadcast_shapes(shape, tuple(x.shape))
    except RuntimeError:
        raise ValueError(
            f"dropout: noise_shape {noise_shape} does not broadcast to the input's shape {tuple(x.shape)}"
        ) from None
    keep = (
        torch.rand(shape, generator=_generator("dropout", seed, x.device), device=x.device) >= rate
    )
    return x * keep.to(x.dtype) / (1.0 - rate)


def shuffle(x: Any, axis: int = 0, seed: Any = None) -> torch.Tensor:
    """``x`` with its entries along ``axis`` in a random order."""
    x = convert_to_tensor(x)
    a = canonical_axis("shuffle", axis, x.ndim)
    order = torch.randperm(
        x.shape[a], generator=_generator("shuffle", seed, x.device), device=x.device
    )
    return torch.index_select(x, a, order)


def categorical(
    logits: Any, num_samples: int, dtype: Any = "int32", seed: Any = None
) -> torch.Tensor:
    """``num_samples`` class ids per row of ``logits`` (shape ``(batch, classes)``, unnormalised
    log-probabilities), drawn with replacement; returns ``(batch, num_samples)``."""
    logits = convert_to_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(
            f"categorical: logits must have shape (batch, classes), received {tuple(logits.shape)}"
        )
    num_samples = check_int("categorical", "num_samples", num_samples, minimum=1)
    probabilities = torch.softmax(logits.to(torch.float64), dim=-1)
    out = torch.multinomial(
        probabilities,
        num_samples,
        replacement=True,
        generator=_generator("categorical", seed, logits.device),
    )
    return out.to(to_torch_dtype(dtype))
