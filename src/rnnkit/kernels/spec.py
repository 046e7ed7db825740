"""What the kernels know of a layer: a cell's spec, the layer's request, and the plan of a call.

The kernels never see a layer. A built-in cell describes itself with a :class:`CellSpec`
(``cell.kernel_spec()``), the recurrent layer states what it asks for with a
:class:`KernelRequest`, and :func:`rnnkit.kernels.dispatch.choose` turns those, the inputs, the
mask and the training flag into a :class:`KernelPlan`: which kernel runs the call, why, and
the mask's analysis, so that the mask is analysed once per call.

Kernel names (``layer.last_kernel``, the same vocabulary for ``RNN`` and ``Bidirectional``):

- ``"fused"``: :mod:`rnnkit.kernels.fused`, ``torch._VF`` (cuDNN, oneDNN or ATen's loop);
- ``"manual_backward"``: :mod:`rnnkit.kernels.manual_backward`, a per-step kernel with a
  hand-written backward, for what the fused kernel cannot express;
- ``"generic"``: :mod:`rnnkit.kernels.loop`, any cell, the oracle;
- ``"compiled"``: :mod:`rnnkit.kernels.compiled_loop`, the generic loop compiled;
- ``"export"``: :mod:`rnnkit.kernels.export`, the recurrence as one graph node while
  ``torch.export`` or ``torch.jit.trace`` records the call (time stays symbolic, any mask).

>>> spec = CellSpec("lstm", units=4, activation="tanh", recurrent_activation="sigmoid")
>>> spec.config(training=False)["cell"], spec.gates
('lstm', 4)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from rnnkit.kernels.masks import MaskInfo

GENERIC = "generic"
FUSED = "fused"
MANUAL_BACKWARD = "manual_backward"
COMPILED = "compiled"
EXPORT = "export"
KERNEL_NAMES = (FUSED, MANUAL_BACKWARD, GENERIC, COMPILED, EXPORT)

CellKind = Literal["lstm", "gru", "simple_rnn"]
ActivationId = str | Callable[..., Any]
_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


@dataclass(frozen=True)
class CellSpec:
    """A built-in cell as the kernels see it (weights excluded: they come with the call).

    ``kind``: ``"lstm"``, ``"gru"`` or ``"simple_rnn"``; ``units``: ``u``; ``activation`` and
    ``recurrent_activation`` (None for SimpleRNN): a built-in activation's name, or the cell's
    callable when it is not a built-in function (``torch.tanh``, a user's function);
    ``reset_after``: GRU's convention (True for the other kinds); ``use_bias``; ``dropout`` and
    ``recurrent_dropout``: the rates; ``dtype``: the weights' dtype (None before build).
    """

    kind: CellKind
    units: int
    activation: ActivationId = "tanh"
    recurrent_activation: ActivationId | None = None
    reset_after: bool = True
    use_bias: bool = True
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    dtype: torch.dtype | None = None

    @property
    def gates(self) -> int:
        """Gate blocks in the kernel's columns: 4 (LSTM), 3 (GRU), 1 (SimpleRNN)."""
        return _GATES[self.kind]

    def config(self, training: bool) -> dict[str, Any]:
        """The configuration :func:`rnnkit.kernels.fused.can_fuse` and
        :func:`rnnkit.kernels.manual_backward.can_run` read."""
        config: dict[str, Any] = {
            "cell": self.kind,
            "activation": self.activation,
            "recurrent_dropout": self.recurrent_dropout,
            "training": bool(training),
        }
        if self.kind != "simple_rnn":
            config["recurrent_activation"] = self.recurrent_activation
        if self.kind == "gru":
            config["reset_after"] = self.reset_after
        return config

    def same_recurrence(self, other: CellSpec) -> bool:
        """Whether ``other`` runs the same recurrence (input ``dropout`` may differ: it is
        applied before the kernel)."""
        return self == replace(other, dropout=self.dropout)


@dataclass(frozen=True)
class KernelRequest:
    """What a recurrent layer asks of the kernels for its calls.

    ``owner``: how errors name the layer (``"LSTM 'encoder'"``); ``cell``: the cell's class
    name (for the reasons); ``use_cudnn``: ``"auto"``,
    True, False, or None for a plain ``RNN(cell)`` (always the generic loop, as in Keras);
    ``unroll``: keeps the call on the step-by-step loop; ``go_backwards``: the sequence runs
    reversed (the plan's mask analysis is in processing order); ``compile_options``: the
    ``torch.compile`` options of ``compile_loop``, or None; ``dropout_cells``: names of the
    built-in cells inside the layer's cell with a nonzero dropout rate (the compiled loop
    cannot run their cached masks while training).
    """

    owner: str
    cell: str = "cell"
    use_cudnn: bool | str | None = None
    unroll: bool = False
    go_backwards: bool = False
    compile_options: Mapping[str, Any] | None = None
    dropout_cells: tuple[str, ...] = ()


@dataclass(frozen=True)
class KernelPlan:
    """How one call runs: ``name`` (one of :data:`KERNEL_NAMES`), ``reason`` (why that kernel
    and not a faster one), the ``spec`` it runs (None for the loops of a non-built-in cell),
    and ``mask_info``, the analysis of the call's mask in processing order (None when the
    mask was not analysed: no mask, or a kernel that does not need it). ``one_call``: a
    ``Bidirectional`` plan that runs both directions in one fused call."""

    name: str
    reason: str
    spec: CellSpec | None = None
    mask_info: MaskInfo | None = field(default=None, compare=False)
    one_call: bool = False


KernelChoice = KernelPlan
"""The former name of :class:`KernelPlan` (``layer.last_kernel_choice``)."""
