"""The compiled loop: the generic time loop of any cell, compiled with ``torch.compile``.

Opt-in, with ``RNN(cell, compile_loop=True)`` (or ``compile_loop={"backend": ...}``, the
options of ``torch.compile``); on ``LSTM``/``GRU``/``SimpleRNN`` it applies to the calls that
would run the generic loop. It runs exactly the semantics of
:func:`rnnkit.kernels.loop.run_loop` (masks, ``go_backwards``, ``zero_output_for_mask``,
nested inputs and states, ``constants``, ``training``) and gives its results up to float
rounding, gradients included. Legend: ``N`` batch, ``T`` timesteps, ``K`` steps per chunk.

How. The loop is unrolled in chunks of ``K <= MAX_CHUNK`` steps; one chunk (``K`` calls of
``cell.call``) is one ``torch.compile`` graph with ``fullgraph=True``, so inductor fuses each
step's elementwise maths and the backward of a chunk is one compiled graph too.
``K = ceil(T / ceil(T / MAX_CHUNK))``; when ``K`` does not divide ``T`` the sequence is padded
at the end with copies of its last step, masked off (the states are carried unchanged through
them, their outputs dropped). Masks are applied inside the chunk with ``torch.where`` on the
states; the output sequence's carry-over of masked steps is computed after the loop (one
gather), so every chunk is the same graph. The cell is an argument of the graph (its weights
are inputs), so layers with cells of one type and shape can share compiled code.

Compiling chunks keeps the compile time bounded for most of the whole loop's speed; the gain is
in the elementwise maths inductor fuses (~10% for an LSTM-like cell written with torch ops,
none for matmul-bound cells or the built-in cells). The first call compiles (tens of seconds
with an empty inductor cache), and a new batch size or ``T``, grad mode or ``training`` value
compiles once more. Each layer owns its compiled function; past
``torch._dynamo.config.recompile_limit`` (8) variants a layer raises instead of running
uncompiled. The measurements (per-step, chunked and whole-loop compilation, compile times)
are in ``benchmarks/RESULTS_generic_loop.md``, section "The compiled loop: design
measurements".

What it cannot run raises ``ValueError`` from :func:`can_compile`, called by
:func:`rnnkit.kernels.dispatch.choose` (no silent fallback): a built-in cell's dropout while
training (its masks are cached on the cell between steps, state that one graph cannot carry),
``torch.compile`` not supported by this Python, and inductor on CPU without a C++ compiler.
A cell ``torch.compile`` cannot trace as one graph raises ``ValueError`` at its first call.
"""

from __future__ import annotations

import math
import shutil
import types
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rnnkit import tree

Tensor = torch.Tensor

MAX_CHUNK = 8
"""The most time steps unrolled into one compiled graph."""


def compile_options(value: Any, where: str = "RNN") -> dict[str, Any] | None:
    """The ``torch.compile`` options of a layer's ``compile_loop`` argument: None when False, ``{}``
    when True, a copy of a dict (keys ``backend``, ``mode``, ``options``, ``dynamic``)."""
    if value is False or value is None:
        return None
    if value is True:
        return {}
    allowed = ("backend", "mode", "options", "dynamic")
    if isinstance(value, Mapping) and all(k in allowed for k in value):
        return dict(value)
    raise ValueError(
        f"{where}: compile_loop must be True, False or a dict of torch.compile options with "
        f"keys among {allowed}, received compile_loop={value!r}"
    )


def _has_cxx_compiler() -> bool:
    from torch._inductor import config

    candidates = [config.cpp.cxx[1]] if isinstance(config.cpp.cxx, tuple) else []
    return any(shutil.which(c) for c in [*candidates, "g++", "c++", "clang++"] if c)


def can_compile(
    options: Mapping[str, Any], inputs: Any, training: bool, dropout_cells: Sequence[str] = ()
) -> tuple[bool, str]:
    """Whether the compiled loop can run a call on ``inputs``; the reason when it cannot.

    ``dropout_cells``: the names of the built-in cells inside the layer's cell that have a
    nonzero dropout rate (their masks are cached on the cell between steps, state that one
    graph cannot carry while training)."""
    flat = tree.flatten(inputs)
    if not flat or not all(isinstance(x, Tensor) for x in flat):
        return False, "the compiled loop takes tensor inputs"
    if training and dropout_cells:
        return False, (
            f"the compiled loop cannot run the dropout of the built-in cell(s) "
            f"{list(dropout_cells)} "
            "while training (the masks are cached on the cell between steps); use "
            "compile_loop=False, or LSTM/GRU/SimpleRNN layers, whose kernels handle dropout"
        )
    try:
        import torch._dynamo

        supported = hasattr(torch, "compile") and torch._dynamo.is_dynamo_supported()
    except (ImportError, RuntimeError):
        supported = False
    if not supported:
        return False, "torch.compile is not supported with this Python and torch"
    backend = options.get("backend", "inductor")
    if backend == "inductor" and flat[0].device.type == "cpu" and not _has_cxx_compiler():
        return False, (
            "torch.compile's inductor backend needs a C++ compiler on CPU and none was found "
            "(install g++, or pass compile_loop={'backend': 'aot_eager'})"
        )
    return True, ""


def _flatten(structure: Any) -> list[Any]:
    """:func:`rnnkit.tree.flatten` in plain Python (lists, tuples, namedtuples, dicts by sorted
    key), which the graph capture traces (optree's dict metadata it cannot)."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in _flatten(structure[key])]
    return [structure]


def _pack(template: Any, leaves: Any) -> Any:
    """:func:`rnnkit.tree.pack_sequence_as` in plain Python: ``template``'s structure with
    its leaves (any non-container) replaced, in order, by the items of iterator ``leaves``."""
    if isinstance(template, dict):
        packed = {key: _pack(template[key], leaves) for key in sorted(template)}
        return {key: packed[key] for key in template}
    if isinstance(template, list):
        return [_pack(item, leaves) for item in template]
    if isinstance(template, tuple):
        items = [_pack(item, leaves) for item in template]
        return type(template)(*items) if hasattr(template, "_fields") else tuple(items)
    return next(leaves)


def _chunk(
    cell: Any, input_template: Any, state_template: Any, kwargs: dict,
    xs: list[Tensor], states: list[Tensor], keep: Tensor,
) -> tuple[Any, list[Tensor]]:  # fmt: skip
    """``K`` steps of the loop (``K = xs[0].shape[0]``): the body of every compiled graph.

    ``xs``: flat time-major inputs, each ``(K, N, ...)``; ``states``: flat ``(N, ...)``;
    ``keep``: ``(K, N)`` bool, False where a step is masked (states carried). Returns the raw
    outputs stacked over the chunk (nested like the cell's output, each ``(K, N, ...)``) and
    the flat states after the chunk.
    """
    outs = []
    for t in range(xs[0].shape[0]):
        x_t = (
            xs[0][t] if input_template is None else _pack(input_template, iter([x[t] for x in xs]))
        )
        packed = states if state_template is None else _pack(state_template, iter(states))
        output, new = cell.call(x_t, packed, **kwargs)
        flat_new = _flatten(new)
        k = keep[t]
        states = [
            torch.where(k.view(k.shape[0], *([1] * (s.dim() - 1))), n, s)
            for n, s in zip(flat_new, states)
        ]
        outs.append(output)
    stacked = [torch.stack(leaves) for leaves in zip(*[_flatten(o) for o in outs])]
    return _pack(outs[0], iter(stacked)), states


class CompiledLoop:
    """One layer's compiled loop (its own compiled function, so its own recompile budget).

    ``options``: the ``torch.compile`` keyword arguments (``backend``, ``mode``, ``options``,
    ``dynamic``; ``fullgraph`` is always True, ``dynamic`` defaults to False).
    """

    def __init__(self, options: Mapping[str, Any], owner: str = "RNN") -> None:
        self.options = {"dynamic": False, **options, "fullgraph": True}
        self.owner = owner
        # A fresh code object per layer: torch.compile's cache (and its recompile limit) lives
        # on the code object, so layers do not share (and exhaust) one budget.
        code = _chunk.__code__.replace()
        fn = types.FunctionType(code, _chunk.__globals__, "_chunk", _chunk.__defaults__)
        self._compiled = torch.compile(fn, **self.options)

    # Copies and pickles (of the layer) carry the options, not the compiled code.
    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "owner": self.owner}

    def __setstate__(self, state: dict[str, Any]) -> None:
        CompiledLoop.__init__(self, state["options"], state["owner"])

    def _call(self, *args: Any) -> tuple[Any, list[Tensor]]:
        import torch._dynamo
        from torch._dynamo import exc

        try:  # with fullgraph=True a recompile past the limit raises (not runs eagerly)
            with warnings.catch_warnings():
                # Dynamo's graph capture reads `.grad` of the non-leaf inputs (time-major views
                # of the sequences), which warns; nothing of ours reads it.
                warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor")
                # rnnkit's cached signature look-ups (accepts_argument) are pure.
                warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools")
                # Inductor's own imports.
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")
                return self._compiled(*args)
        except exc.Unsupported as e:
            raise ValueError(
                f"{self.owner}: compile_loop=True: torch.compile cannot trace the cell's step as one "
                f"graph: {str(e).splitlines()[0]} (use compile=False for this cell)"
            ) from e
        except exc.FailOnRecompileLimitHit as e:
            raise RuntimeError(
                f"{self.owner}: compile_loop=True: the compiled loop was recompiled for more than "
                f"{torch._dynamo.config.recompile_limit} input shapes or modes; use fixed batch "
                "sizes and sequence lengths, or compile=False"
            ) from e

    def __call__(
        self,
        cell: Any,
        sequences: Any,
        initial_states: Any,
        mask: Tensor | None = None,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        return_sequences: bool = True,
        cell_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Any, Any]:
        """Run ``cell`` over ``sequences`` with ``cell.call(x_t, states, **cell_kwargs)``;
        arguments and result as :func:`rnnkit.kernels.loop.run_loop` (``sequences``
        batch-major ``(N, T, ...)``)."""
        kwargs = dict(cell_kwargs or {})
        xs = [x.transpose(0, 1) for x in tree.flatten(sequences)]
        nested = tree.is_nested(sequences)
        input_template = tree.map_structure(lambda _: None, sequences) if nested else None
        flat_states = tree.flatten(initial_states)
        flat_list = isinstance(initial_states, list) and all(
            isinstance(s, Tensor) for s in initial_states
        )
        state_template = None if flat_list else tree.map_structure(lambda _: None, initial_states)
        T, N = xs[0].shape[0], xs[0].shape[1]
        keep = torch.ones(T, N, dtype=torch.bool, device=xs[0].device) if mask is None else mask.t()
        if go_backwards:
            xs = [x.flip(0) for x in xs]
            keep = keep.flip(0)
        n_chunks = math.ceil(T / MAX_CHUNK)
        K = math.ceil(T / n_chunks)
        pad = n_chunks * K - T
        if pad:
            xs = [torch.cat([x, x[-1:].expand(pad, *x.shape[1:])]) for x in xs]
            keep = torch.cat([keep, keep.new_zeros(pad, N)])
        chunk_outputs = []
        states = flat_states
        for start in range(0, T + pad, K):
            stop = start + K
            out, states = self._call(
                cell, input_template, state_template, kwargs,
                [x[start:stop] for x in xs], states, keep[start:stop],
            )  # fmt: skip
            chunk_outputs.append(out)
        raw = tree.map_structure(lambda *o: torch.cat(o)[:T], *chunk_outputs)
        if mask is not None:
            raw = tree.map_structure(
                lambda o: _carry_masked(o, keep[:T], zero_output_for_mask), raw
            )
        last = tree.map_structure(lambda o: o[-1], raw)
        outputs = tree.map_structure(lambda o: o.transpose(0, 1), raw) if return_sequences else None
        final = states if flat_list else tree.pack_sequence_as(initial_states, states)
        return last, outputs, final


def _carry_masked(raw: Tensor, keep: Tensor, zero_output_for_mask: bool) -> Tensor:
    """Outputs ``(T, N, ...)`` of the masked loop from the raw per-step outputs: a masked step
    outputs zeros (``zero_output_for_mask``) or the output of the last unmasked step before it
    (zeros when there is none), as :func:`rnnkit.kernels.loop.run_loop`."""
    shape = (*keep.shape, *([1] * (raw.dim() - 2)))
    if zero_output_for_mask:
        return torch.where(keep.view(shape), raw, raw.new_zeros(()))
    T = keep.shape[0]
    steps = torch.arange(T, device=keep.device).unsqueeze(1).expand_as(keep)
    last = torch.where(keep, steps, -1).cummax(0).values  # (T, N): last unmasked step <= t
    index = last.clamp(min=0).view(shape).expand_as(raw)
    return torch.where((last >= 0).view(shape), raw.gather(0, index), raw.new_zeros(()))
