"""The one place that decides which kernel runs a recurrent layer's call.

:func:`select` is a pure function of the layer's configuration, the inputs, the mask, the
training flag and the device. It returns a :class:`KernelChoice`; the layer records it as
``layer.last_kernel`` (the name) and ``layer.last_kernel_choice`` (name and reason) so that tests
can ask which path ran.

Kernels:

- ``"fused"``: :mod:`rnnkit.kernels.fused`, the ``torch._VF`` LSTM / GRU / RNN kernels (cuDNN
  on CUDA, oneDNN or ATen's C++ loop on CPU). Default activations only (SimpleRNN tanh or
  relu), GRU ``reset_after=True``, no recurrent dropout while training, masks whose valid
  steps form one run per row (right or left padding). Which calls qualify is answered by
  :func:`rnnkit.kernels.fused.can_fuse`; this module adds the layer-level conditions
  (``unroll``, a built-in cell whose step is not overridden, matching float dtypes).
- ``"noclift"``: :mod:`rnnkit.kernels.noclift`, a custom ``torch.autograd.Function`` for what
  the fused kernel cannot express (other built-in activations, masks with holes, recurrent
  dropout, GRU ``reset_after=False``) on a built-in cell; answered by
  :func:`rnnkit.kernels.noclift.can_run`. Custom activation callables stay on the loop.
- ``"generic"``: :mod:`rnnkit.kernels.loop`, any cell, any configuration; the oracle.
- ``"compiled"``: :mod:`rnnkit.kernels.compiled_loop`, the generic loop compiled with
  ``torch.compile``; opt-in with the layer's ``compile`` argument, it replaces the generic loop
  wherever that would run (placeholder calls that only infer shapes stay uncompiled). What it
  cannot run (:func:`rnnkit.kernels.compiled_loop.can_compile`) raises ``ValueError``.

The user's request is the layer's ``use_cudnn``: ``"auto"`` takes the fused kernel when the
call qualifies, else the no-cliff kernel when it does, else the generic loop (the reason says
why a faster kernel was not allowed). One exception, by measurement: a training call on CPU
with a padded batch (a mask the fused kernel would run as a packed sequence, which has no
oneDNN kernel; 3.6x ``nn.LSTM`` at 100 steps, 17x at 500) takes the no-cliff kernel.
``True`` raises ``ValueError`` with the reason when the fused kernel cannot run the call;
``False`` forces the generic loop. A plain ``RNN(cell)`` has no ``use_cudnn`` and always runs
the generic loop, as in Keras. There is no try/except fallback: a call either qualifies here or
runs the loop.

>>> from rnnkit.layers.rnn_cells import LSTMCell
>>> from rnnkit.layers.rnn import RNN
>>> select(RNN(LSTMCell(2)), None, None).name
'generic'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

GENERIC = "generic"
FUSED = "fused"
NOCLIFT = "noclift"
COMPILED = "compiled"

_FLOAT_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class KernelChoice:
    """Which kernel runs a call (``name``: ``"fused"``, ``"noclift"`` or ``"generic"``) and why
    (``reason``)."""

    name: str
    reason: str


def _activation_id(fn: Any) -> Any:
    """A built-in activation's name (readable reasons), else the callable itself."""
    from rnnkit import activations

    return next((name for name, f in activations._TABLE.items() if f is fn), fn)


def fused_config(cell: Any, training: bool) -> dict[str, Any] | None:
    """The :func:`rnnkit.kernels.fused.can_fuse` configuration of a built-in cell, or None for
    any other cell (including a subclass of a built-in cell that overrides ``call``)."""
    from rnnkit.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell, supports_projection

    if not supports_projection(cell):
        return None
    config: dict[str, Any] = {
        "activation": _activation_id(cell.activation),
        "recurrent_dropout": cell.recurrent_dropout,
        "training": bool(training),
    }
    if isinstance(cell, LSTMCell):
        config.update(cell="lstm", recurrent_activation=_activation_id(cell.recurrent_activation))
    elif isinstance(cell, GRUCell):
        config.update(
            cell="gru",
            recurrent_activation=_activation_id(cell.recurrent_activation),
            reset_after=cell.reset_after,
        )
    elif isinstance(cell, SimpleRNNCell):
        config.update(cell="simple_rnn")
    else:
        return None
    return config


def _layer_blocker(layer: Any, inputs: Any, config: dict[str, Any] | None) -> str | None:
    """Why no kernel but the generic loop can run this layer and input, or None."""
    if config is None:
        return f"the cell {type(layer.cell).__name__} is not a built-in cell with a fused kernel"
    if getattr(layer, "unroll", False):
        return "unroll=True asks for the step-by-step loop"
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        return "the fused kernel takes one 3-D input tensor"
    if inputs.dtype not in _FLOAT_DTYPES:
        return f"inputs of dtype {inputs.dtype} (the fused kernel runs float32 and float64)"
    kernel = getattr(layer.cell, "kernel", None)
    if kernel is not None and kernel.dtype != inputs.dtype:
        return f"inputs of dtype {inputs.dtype} with weights of dtype {kernel.dtype}"
    return _autocast_blocker(config["cell"], inputs.device)


def _autocast_blocker(cell: str, device: torch.device) -> str | None:
    """Why torch's fused LSTM cannot run under the autocast active on a CPU, or None. (On CPU
    autocast casts only the LSTM; oneDNN runs it in bfloat16 where the CPU supports that, and
    has no float16 LSTM.)"""
    if cell != "lstm" or device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return None
    dtype = torch.get_autocast_dtype("cpu")
    if dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return f"autocast to {dtype} on a CPU whose oneDNN has no {dtype} LSTM kernel"


def _noclift_blocker(config: dict[str, Any]) -> str | None:
    """Why the no-cliff kernel cannot run a configuration the fused kernel rejected."""
    from rnnkit.kernels.noclift import can_run

    for key in ("activation", "recurrent_activation"):
        if key in config and not isinstance(config[key], str):
            # A user's callable may act across units (the cell applies it gate by gate); the
            # no-cliff kernel needs a known elementwise activation.
            return f"the no-cliff kernel needs a built-in {key}, received a custom callable"
    ok, reason = can_run(config)
    return None if ok else reason


# Measured on CPU (benchmarks/RESULTS.md, training step of LSTM with a right-padded batch,
# ratio to nn.LSTM without mask): fused 2.2x at T=28, 3.6x at T=100, 17x at T=500; the
# no-cliff kernel 1.1-1.4x on a mask with holes. Inference stays fused (1.05-1.5x).
_PACKED_ON_CPU = (
    "training on CPU with a padded batch: the fused kernel would run it as a packed sequence, "
    "whose backward has no oneDNN kernel on CPU (its cost grows faster than the sequence: "
    "3.6x nn.LSTM at 100 steps, 17x at 500), so the no-cliff kernel runs it"
)


def _packed_training_on_cpu(info: Any, inputs: Any, training: bool) -> bool:
    """A training call on CPU whose mask makes the fused kernel pack the sequence."""
    return (
        bool(training)
        and inputs.device.type == "cpu"
        and info is not None
        and (info.kind != "none")
    )


def select(layer: Any, inputs: Any, mask: Any, training: bool = False) -> KernelChoice:
    """Choose the kernel for ``layer(inputs, mask=mask, training=training)``.

    Args:
        layer: the recurrent layer (its ``cell``, ``use_cudnn``, ``unroll`` are read).
        inputs: the batch-major ``(N, T, H_in)`` input tensor (nested inputs run the loop).
        mask: ``(N, T)`` bool tensor or None (batch-major).
        training: whether dropout is active in this call.

    Returns:
        A :class:`KernelChoice`. Raises ``ValueError`` (naming the layer and the reason) when
        ``use_cudnn=True`` and the fused kernel cannot run the call, or when the layer's
        ``compile`` was requested and the compiled loop cannot run it.
    """
    choice = _select_uncompiled(layer, inputs, mask, training)
    options = getattr(layer, "compile_options", None)
    if options is None or choice.name != GENERIC:
        return choice
    from rnnkit.symbolic import in_symbolic_call

    if in_symbolic_call():
        return KernelChoice(
            GENERIC, f"{choice.reason}; shape inference on placeholders is not compiled"
        )
    from rnnkit.kernels.compiled_loop import can_compile

    ok, reason = can_compile(options, layer.cell, inputs, training)
    if not ok:
        raise ValueError(
            f"{type(layer).__name__} '{getattr(layer, 'name', '?')}': compile was requested, "
            f"but the compiled loop cannot run this call: {reason}."
        )
    backend = options.get("backend", "inductor")
    return KernelChoice(
        COMPILED, f"{choice.reason}; compile=True: the loop runs compiled (backend {backend!r})"
    )


def _select_uncompiled(layer: Any, inputs: Any, mask: Any, training: bool) -> KernelChoice:
    use_cudnn = getattr(layer, "use_cudnn", None)
    if use_cudnn is None:
        return KernelChoice(GENERIC, "a generic RNN(cell) layer always runs the generic loop")
    if use_cudnn is False:
        return KernelChoice(GENERIC, "use_cudnn=False")
    from rnnkit.kernels.fused import can_fuse

    config = fused_config(layer.cell, training)
    blocker = _layer_blocker(layer, inputs, config)
    if blocker is None:
        assert config is not None
        info = None
        if isinstance(mask, torch.Tensor):
            from rnnkit.kernels.masks import analyze_mask

            info = analyze_mask(mask if mask.dtype == torch.bool else mask != 0)
        ok, reason = can_fuse(config, info, inputs.device)
        packed_training = ok and _packed_training_on_cpu(info, inputs, training)
        if packed_training and use_cudnn == "auto" and _noclift_blocker(config) is None:
            return KernelChoice(NOCLIFT, f"use_cudnn='auto': {_PACKED_ON_CPU}")
        if ok:
            device = inputs.device.type
            backend = "cuDNN" if device == "cuda" else "oneDNN/ATen"
            return KernelChoice(
                FUSED, f"use_cudnn={use_cudnn!r}: fused {backend} kernel on {device}"
            )
        blocker = reason
        if use_cudnn == "auto":
            noclift_blocker = _noclift_blocker(config)
            if noclift_blocker is None:
                return KernelChoice(
                    NOCLIFT, f"use_cudnn='auto': {blocker}; the no-cliff kernel runs it"
                )
            blocker = f"{blocker}; {noclift_blocker}"
    if use_cudnn is True:
        raise ValueError(
            f"{type(layer).__name__} '{getattr(layer, 'name', '?')}': use_cudnn=True was "
            f"requested, but the fused (cuDNN/oneDNN) kernel cannot run this call: {blocker}. "
            "Pass use_cudnn='auto' to fall back to the generic loop for such calls, or "
            "use_cudnn=False."
        )
    return KernelChoice(GENERIC, f"use_cudnn='auto': {blocker}")


def fuse_bidirectional(wrapper: Any, inputs: Any, mask: Any, training: bool) -> tuple[bool, str]:
    """Whether a ``Bidirectional`` call runs both directions in one fused ``_VF`` call
    (:func:`rnnkit.kernels.fused.bidirectional`), and why not.

    Both directions must be the same built-in layer type and cell configuration (kind,
    activation, units, ``use_bias``), each accepted by :func:`select` for the fused kernel on
    this call; not stateful (stored states stay per direction), no activity regularizer, no
    input dropout in training (each direction draws its own mask). ``mask``: the batch-major
    ``(N, T)`` bool mask or None. Otherwise each direction runs on its own kernel, chosen by
    :func:`select` (the fused kernel per direction where it qualifies): on CPU the one-call
    form measured no faster (``benchmarks/RESULTS_bidirectional.md``); on cuDNN it lets the
    library schedule both directions together.
    """
    forward, backward = wrapper.forward_layer, wrapper.backward_layer
    if type(forward) is not type(backward) or getattr(forward, "use_cudnn", None) is None:
        return False, "the two directions are not the same built-in recurrent layer type"
    configs = [fused_config(layer.cell, training) for layer in (forward, backward)]
    if configs[0] is None or configs[0] != configs[1]:
        return False, "the two directions' cells differ or are not built-in cells"
    cells = (forward.cell, backward.cell)
    if cells[0].units != cells[1].units or cells[0].use_bias != cells[1].use_bias:
        return False, "the two directions differ in units or use_bias"
    if forward.go_backwards or not backward.go_backwards:
        return False, "the forward layer must read forwards and the backward layer backwards"
    if forward.stateful:
        return False, "stateful layers keep their states per direction"
    if forward.activity_regularizer is not None or backward.activity_regularizer is not None:
        return False, "an activity regularizer needs each direction's own output"
    if training and (cells[0].dropout > 0 or cells[1].dropout > 0):
        return False, "input dropout in training draws a different mask per direction"
    for layer in (forward, backward):
        choice = select(layer, inputs, mask, training)
        if choice.name != FUSED:
            return False, f"{layer.name}: {choice.reason}"
    return True, "both directions qualify for the fused kernel: one bidirectional _VF call"
