"""The one place that decides which kernel runs a recurrent layer's call.

:func:`select` is a pure function of the layer's configuration, the inputs, the mask and the
device. It returns a :class:`KernelChoice`; the layer records it as ``layer.last_kernel`` (the
name) and ``layer.last_kernel_choice`` (name and reason) so that tests can ask which path ran.

Today only the generic time loop (:mod:`rnnkit.kernels.loop`) exists. Fused kernels (cuDNN on
CUDA, oneDNN on CPU) plug in here: ``select`` will return their name when the configuration
allows it, and the layer will run them instead of the loop.

>>> from rnnkit.layers.rnn_cells import LSTMCell
>>> from rnnkit.layers.rnn import RNN
>>> select(RNN(LSTMCell(2)), None, None).name
'generic'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GENERIC = "generic"


@dataclass(frozen=True)
class KernelChoice:
    """Which kernel runs a call (``name``, e.g. ``"generic"``) and why (``reason``)."""

    name: str
    reason: str


def select(layer: Any, inputs: Any, mask: Any, training: bool = False) -> KernelChoice:
    """Choose the kernel for ``layer(inputs, mask=mask, training=training)``.

    ``use_cudnn`` on the layer (``"auto"``, True or False; absent on a plain ``RNN``) is the
    user's request: ``"auto"`` takes a fused kernel when one fits and the generic loop
    otherwise; ``True`` raises ``ValueError`` when no fused kernel can run the call.
    """
    use_cudnn = getattr(layer, "use_cudnn", None)
    if use_cudnn is None:
        return KernelChoice(GENERIC, "a generic RNN(cell) layer always runs the generic loop")
    if use_cudnn is True:
        raise ValueError(
            f"{type(layer).__name__} '{getattr(layer, 'name', '?')}': use_cudnn=True was "
            "requested, but no fused cuDNN kernel is available in this version of rnnkit (only "
            "the generic time loop is implemented). Pass use_cudnn='auto' to run the generic "
            "loop, or use_cudnn=False."
        )
    if use_cudnn is False:
        return KernelChoice(GENERIC, "use_cudnn=False")
    return KernelChoice(GENERIC, "use_cudnn='auto': no fused kernel is implemented yet")
