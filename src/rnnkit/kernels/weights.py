"""Keras weight layouts -> torch ``_VF`` (cuDNN / oneDNN) layouts, in one place.

Keras layouts (``u`` = units, ``d`` = input features):

=========  ==================  ==================  ===================================
cell       kernel              recurrent_kernel    bias
=========  ==================  ==================  ===================================
LSTM       ``(d, 4u)`` i,f,c,o  ``(u, 4u)``         ``(4u,)``
GRU        ``(d, 3u)`` z,r,h    ``(u, 3u)``         ``(2, 3u)`` rows input / recurrent
SimpleRNN  ``(d, u)``           ``(u, u)``          ``(u,)``
=========  ==================  ==================  ===================================

torch's ``_VF.lstm/gru/rnn_*`` take ``[w_ih (G u, d), w_hh (G u, u), b_ih (G u,), b_hh (G u,)]``
with gates ``i,f,g,o`` (LSTM) and ``r,z,n`` (GRU). The maps:

* LSTM: same gate order, ``w_ih = kernel.T`` and ``w_hh = recurrent_kernel.T`` (views, free),
  ``b_ih = bias`` (the same tensor) and ``b_hh = 0`` (a cached zero tensor);
* SimpleRNN: as LSTM with one gate;
* GRU (``reset_after=True`` only): the gate blocks are reordered z,r,h -> r,z,n, which needs
  one ``cat`` per weight (measured: ~60 us for all four at d=28, u=64 on the 2-core CPU,
  against ~8 ms for a training step of the guide's model, i.e. under 1%). We do not cache:
  a cache keyed on ``param._version`` would have to be bypassed whenever autograd is
  recording (a cached result carries a graph that one backward frees), which is exactly the
  training case, and in inference the saving is the same ~60 us.

Autograd flows through every map back to the Keras-layout parameters. Without a bias
(``use_bias=False``) the functions return two tensors and the kernels pass
``has_biases=False``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch._subclasses.fake_tensor import unset_fake_temporarily

Tensor = torch.Tensor


@lru_cache(maxsize=32)
def _zeros(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    # Always a real tensor, even when first asked for during symbolic shape inference (fake
    # tensors): a cached fake tensor would leak into later real calls.
    with unset_fake_temporarily():
        return torch.zeros(size, dtype=dtype, device=device)


def zero_bias(like: Tensor) -> Tensor:
    """A cached, read-only-by-convention zero vector shaped like the 1-D ``like`` (a fresh one
    under ``torch.compile``, where it is a constant of the graph)."""
    if torch.compiler.is_compiling():
        return torch.zeros_like(like)
    return _zeros(like.shape[0], like.dtype, like.device)


def _check_2d(name: str, w: Tensor, rows: int | None, cols: int, where: str) -> None:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{where}: `{name}` must be a torch.Tensor, received {type(w).__name__}.")
    if w.dim() != 2 or w.shape[1] != cols or (rows is not None and w.shape[0] != rows):
        expected = f"({rows if rows is not None else 'input_dim'}, {cols})"
        raise ValueError(
            f"{where}: `{name}` must have shape {expected}, received {tuple(w.shape)}."
        )


def _units(recurrent_kernel: Tensor, gates: int, where: str) -> int:
    if not isinstance(recurrent_kernel, torch.Tensor) or recurrent_kernel.dim() != 2:
        raise ValueError(
            f"{where}: `recurrent_kernel` must be a 2-D tensor (units, {gates} * units), "
            f"received {getattr(recurrent_kernel, 'shape', type(recurrent_kernel).__name__)}."
        )
    units = recurrent_kernel.shape[0]
    _check_2d("recurrent_kernel", recurrent_kernel, units, gates * units, where)
    return units


def _checked_units(kernel: Any, recurrent_kernel: Any, gates: int, where: str) -> int:
    """``u`` of ``kernel (d, G u)`` and ``recurrent_kernel (u, G u)``; ``ValueError`` naming
    the weight otherwise. The weights of every call pass one expression; :func:`_units` and
    :func:`_check_2d` say what is wrong."""
    if (
        isinstance(kernel, torch.Tensor)
        and isinstance(recurrent_kernel, torch.Tensor)
        and kernel.dim() == 2
        and recurrent_kernel.dim() == 2
        and recurrent_kernel.shape[1] == gates * recurrent_kernel.shape[0]
        and kernel.shape[1] == recurrent_kernel.shape[1]
    ):
        return int(recurrent_kernel.shape[0])
    units = _units(recurrent_kernel, gates, where)
    _check_2d("kernel", kernel, None, gates * units, where)
    return units


def lstm_weights(kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor | None) -> list[Tensor]:
    """Keras LSTM weights -> ``[w_ih, w_hh(, b_ih, b_hh)]`` for ``torch._VF.lstm``.

    ``kernel (d, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)`` or ``None``. Returns
    transposed views and the bias itself plus a cached zero ``b_hh``; no copies.
    """
    where = "lstm_weights"
    units = _checked_units(kernel, recurrent_kernel, 4, where)
    weights = [kernel.t(), recurrent_kernel.t()]
    if bias is not None:
        if tuple(bias.shape) != (4 * units,):
            raise ValueError(
                f"{where}: `bias` must have shape ({4 * units},), received {tuple(bias.shape)}."
            )
        weights += [bias, zero_bias(bias)]
    return weights


def simple_rnn_weights(
    kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor | None
) -> list[Tensor]:
    """Keras SimpleRNN weights -> ``[w_ih, w_hh(, b_ih, b_hh)]`` for ``torch._VF.rnn_tanh/relu``."""
    where = "simple_rnn_weights"
    units = _checked_units(kernel, recurrent_kernel, 1, where)
    weights = [kernel.t(), recurrent_kernel.t()]
    if bias is not None:
        if tuple(bias.shape) != (units,):
            raise ValueError(
                f"{where}: `bias` must have shape ({units},), received {tuple(bias.shape)}."
            )
        weights += [bias, zero_bias(bias)]
    return weights


def _zrh_to_rzn(w: Tensor, units: int) -> Tensor:
    """Reorder gate blocks along dim 0 (``(3u, ...)``): z,r,h -> r,z,n. One copy."""
    return torch.cat([w[units : 2 * units], w[:units], w[2 * units :]], dim=0)


def gru_weights(kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor | None) -> list[Tensor]:
    """Keras GRU (``reset_after=True``) weights -> ``[w_ih, w_hh(, b_ih, b_hh)]`` for
    ``torch._VF.gru``: transpose, gates z,r,h -> r,z,n, bias rows into ``b_ih`` / ``b_hh``."""
    where = "gru_weights"
    units = _checked_units(kernel, recurrent_kernel, 3, where)
    weights = [_zrh_to_rzn(kernel.t(), units), _zrh_to_rzn(recurrent_kernel.t(), units)]
    if bias is not None:
        if tuple(bias.shape) != (2, 3 * units):
            raise ValueError(
                f"{where}: `bias` must have shape (2, {3 * units}) (reset_after=True), "
                f"received {tuple(bias.shape)}."
            )
        weights += [_zrh_to_rzn(bias[0], units), _zrh_to_rzn(bias[1], units)]
    return weights


def _detach(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach()


def lstm_weights_from_torch(
    w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None, b_hh: Tensor | None = None
) -> list[Tensor]:
    """The inverse map, for importing ``nn.LSTM`` weights: ``[kernel, recurrent_kernel(, bias)]``
    with ``bias = b_ih + b_hh`` (Keras has one LSTM bias). New tensors, no autograd history."""
    w_ih, w_hh = w_ih.detach(), w_hh.detach()
    b_ih, b_hh = _detach(b_ih), _detach(b_hh)
    out = [w_ih.t().contiguous(), w_hh.t().contiguous()]
    if b_ih is not None and b_hh is not None:
        out.append(b_ih + b_hh)
    return out


def gru_weights_from_torch(
    w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None, b_hh: Tensor | None = None
) -> list[Tensor]:
    """The inverse map for ``nn.GRU``: ``[kernel, recurrent_kernel(, bias (2, 3u))]``. New
    tensors, no autograd history."""
    w_ih, w_hh = w_ih.detach(), w_hh.detach()
    b_ih, b_hh = _detach(b_ih), _detach(b_hh)
    units = w_hh.shape[1]
    # r,z,n -> z,r,h is the same swap of the first two blocks.
    out = [_zrh_to_rzn(w_ih, units).t().contiguous(), _zrh_to_rzn(w_hh, units).t().contiguous()]
    if b_ih is not None and b_hh is not None:
        out.append(torch.stack([_zrh_to_rzn(b_ih, units), _zrh_to_rzn(b_hh, units)]))
    return out
