"""``RNN``: run any cell over time (a stack of cells: :mod:`rnnkit.layers.stacked_cells`).

Legend: ``N`` batch, ``T`` timesteps, ``...`` the per-step feature shape of one input.

A cell is any object with ``call(inputs, states[, training][, constants])`` returning
``(output, new_states)`` and a ``state_size``: an int (one state of shape ``(N, size)``), a
shape (``torch.Size``, or a tuple of ints inside a list), or a list / namedtuple / dict of those
(one entry per state). A top-level list or tuple of ints means one state per int, as in Keras
(``LSTMCell.state_size == [units, units]``). Optional: ``output_size`` and
``get_initial_state(batch_size=None, dtype=None)`` (the tf.keras form
``get_initial_state(inputs=None, batch_size=None, dtype=None)`` is accepted too).

>>> import torch
>>> from rnnkit.layers.rnn_cells import LSTMCell
>>> layer = RNN(LSTMCell(4), return_sequences=True, return_state=True)
>>> seq, h, c = layer(torch.ones(2, 5, 3))
>>> tuple(seq.shape), tuple(h.shape), tuple(c.shape)
((2, 5, 4), (2, 4), (2, 4))
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

import numpy as np
import torch

from rnnkit import kernels, regularizers, tree
from rnnkit.kernels.compiled_loop import CompiledLoop, compile_options
from rnnkit.kernels.loop import run_loop, run_projected_loop
from rnnkit.kernels.masks import MaskInfo, reversed_info
from rnnkit.kernels.spec import (
    COMPILED,
    EXPORT,
    FUSED,
    GENERIC,
    MANUAL_BACKWARD,
    CellSpec,
    KernelPlan,
    KernelRequest,
)
from rnnkit.layers import rnn_shapes
from rnnkit.layers.base import Layer, passes_plain_calls
from rnnkit.layers.cell_protocol import (
    CellStack,
    DropoutRNNCell,
    accepts_argument,
    check_cell,
    has_dropout,
    reset_dropout_masks,
    state_spec,
)
from rnnkit.layers.rnn_cells import (
    cell_initial_state,
    has_zero_initial_state,
)
from rnnkit.layers.serialization import deserialize, serialize
from rnnkit.layers.shapes import layer_label
from rnnkit.layers.stacked_cells import StackedRNNCells as StackedRNNCells
from rnnkit.symbolic import KerasTensor, in_symbolic_call

Tensor = torch.Tensor


def _requires_constants(cell: Any) -> bool:
    """Whether ``cell.call`` has a ``constants`` argument without a default."""
    try:
        parameter = inspect.signature(cell.call).parameters.get("constants")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is inspect.Parameter.empty


def hands_on_to_rnn_call(method: Any) -> Any:
    """Mark a ``call`` override of an ``RNN`` subclass that only narrows the signature and
    passes every argument on to ``RNN.call`` (see ``RNN._forward_in_plan``)."""
    method._hands_on_to_rnn_call = True
    return method


class RNN(Layer):
    """Run a cell over the time axis of a batch of sequences (Keras' ``RNN``).

    Args:
        cell: a cell (see the module docstring) or a list of cells, stacked with
            :class:`StackedRNNCells`.
        return_sequences: return the output of every step ``(N, T, ...)`` instead of only the
            last one ``(N, ...)``.
        return_state: also return the final states: ``(output, *states)``.
        go_backwards: process the sequence in reverse; the output sequence is returned in
            processing order (reversed), as in Keras.
        stateful: the final state of sample ``i`` is the initial state of sample ``i`` of the
            next call (same batch size required). The carried states are detached (truncated
            backpropagation through time). See :attr:`states` and :meth:`reset_states`.
        unroll: accepted for Keras compatibility; PyTorch runs eagerly, so the loop is the same
            and the results are identical (on ``LSTM``/``GRU``/``SimpleRNN`` it keeps the call
            off the fused kernels, as in Keras).
        time_major: inputs, mask and sequence outputs are ``(T, N, ...)`` instead of
            ``(N, T, ...)``.
        zero_output_for_mask: masked steps output zeros instead of repeating the previous
            output.
        compile_loop: opt-in: run the loop compiled with ``torch.compile``
            (:mod:`rnnkit.kernels.compiled_loop`) wherever it would run uncompiled; True, or a
            dict of ``torch.compile`` options (``backend``, ``mode``, ``options``, ``dynamic``).
            Same results up to float rounding. The first call compiles (15-35 s on a 2-core
            CPU, figures in ``benchmarks/RESULTS_generic_loop.md``) and each new batch size,
            sequence length or grad mode compiles again; what it cannot run raises
            ``ValueError``. Worth it for cells heavy in elementwise maths (~10% faster for an
            LSTM-like cell written with torch ops), not for matmul-bound ones. The former
            spelling ``compile=`` is accepted with a ``DeprecationWarning`` (and read silently
            from configs saved with it).

    Kernels: a plain ``RNN(cell)`` runs the generic loop (:mod:`rnnkit.kernels.loop`); with a
    built-in cell (``LSTMCell``, ``GRUCell``, ``SimpleRNNCell``, ``call`` not overridden) the
    lean form of it, which projects every step's input in one matmul
    (``cell.input_projection``) and steps only the recurrent half
    (``cell.step_from_projection``). ``SimpleRNN``/``LSTM``/``GRU`` may run a fused or
    manual-backward kernel instead (``use_cudnn``); ``layer.last_kernel`` and
    ``layer.last_kernel_choice`` say which kernel ran the last call and why (names in
    :mod:`rnnkit.kernels.spec`). :meth:`kernel_plan` asks the same question without running.

    Call arguments:
        inputs: a tensor ``(N, T, ...)`` or a nested structure of them (same ``N`` and ``T``).
        initial_state: the initial states (a list, flat or nested like the cell's states);
            zeros (or the cell's ``get_initial_state``) when None.
        mask: ``(N, T)`` bool (or integer 0/1), True for the steps to use (``(T, N)`` when
            ``time_major``); a float mask raises ``ValueError``.
            Masked steps keep the states and repeat the previous output.
        training: passed to the cell when its ``call`` accepts it (dropout).
        constants: tensors passed unchanged to ``cell.call(..., constants=...)`` at each step;
            the cell is then built with ``[step_input_shape, *constant_shapes]`` (tf.keras).
        mask_info: optional, keyword only: the caller's analysis of ``mask`` in input order
            (a :class:`~rnnkit.kernels.masks.MaskInfo`, as ``analyze_mask`` of the batch-major
            mask returns it, or a :class:`~rnnkit.kernels.spec.KernelPlan`'s ``mask_info``
            from ``choose_bidirectional``), so that a caller running several layers on one
            mask (``Bidirectional``) has it analysed once; the layer reverses it itself for
            ``go_backwards``. None: the mask is analysed here when a kernel needs it.
    """

    supports_masking = True
    _casts_non_floating_inputs = True
    _input_rank: int | None = None  # SimpleRNN / LSTM / GRU require exactly 3
    #: ``call`` and ``compute_mask`` are RNN's (or hand on to them): set per class
    _runs_rnn_call: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        before_rnn = cls.__mro__[: cls.__mro__.index(RNN)]
        cls._runs_rnn_call = cls.compute_mask is RNN.compute_mask and all(
            getattr(klass.__dict__["call"], "_hands_on_to_rnn_call", False)
            for klass in before_rnn
            if "call" in klass.__dict__
        )

    def __init__(
        self,
        cell: Any,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        time_major: bool = False,
        zero_output_for_mask: bool = False,
        compile_loop: bool | dict[str, Any] = False,
        **kwargs: Any,
    ) -> None:
        owner = f"{type(self).__name__}"
        compile_loop = _deprecated_compile(kwargs, compile_loop, owner)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(list(cell))
        check_cell(cell, owner)
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.time_major = bool(time_major)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.compile_options = compile_options(compile_loop, owner)
        self._compile_argument = (
            dict(compile_loop) if isinstance(compile_loop, dict) else bool(compile_loop)
        )
        self._compiled_loop: CompiledLoop | None = None
        self.activity_regularizer = regularizers.get(activity_regularizer, "activity_regularizer")
        self._state_spec = state_spec(cell, f"{owner} '{self.name}'")
        self._stored_states: list[Any] | None = None
        batch_shape = self._batch_input_shape
        self._expected_batch_size = batch_shape[0] if stateful and batch_shape else None
        self._feature_shapes: list[tuple[int | None, ...]] | None = None
        self._constant_shapes: list[tuple[int, ...]] | None = None
        self.last_kernel: str | None = None
        self.last_kernel_choice: KernelPlan | None = None

    # ------------------------------------------------------------------ helpers
    def _error(self, message: str) -> ValueError:
        return ValueError(f"{layer_label(self)}: {message}")

    def check_input_shapes(self, shapes: list[tuple[Any, ...]]) -> None:
        """Check the shapes of a call's (flattened) inputs: rank, shared batch and time axes,
        and the per-step feature shapes the layer was built for; ``ValueError`` otherwise."""
        layout = "(timesteps, batch, features)" if self.time_major else "(batch, timesteps, ...)"
        for shape in shapes:
            rank = len(shape)
            if self._input_rank is not None and rank != self._input_rank:
                raise self._error(
                    f"inputs must have rank {self._input_rank} {layout}, received shape "
                    f"{tuple(shape)} of rank {rank}"
                )
            if rank < 3:
                raise self._error(
                    f"inputs must have rank >= 3 {layout}, received shape {tuple(shape)} "
                    f"of rank {rank}"
                )
        first = shapes[0]
        for shape in shapes[1:]:
            if shape[0] != first[0] or shape[1] != first[1]:
                raise self._error(
                    "all nested inputs must share the batch and time axes, received shapes "
                    f"{[tuple(s) for s in shapes]}"
                )
        if self._feature_shapes is not None:
            received = [tuple(s[2:]) for s in shapes]
            for expected, got in zip(self._feature_shapes, received):
                if len(expected) != len(got) or any(
                    e is not None and e != g for e, g in zip(expected, got)
                ):
                    raise self._error(
                        f"inputs: the layer was built for per-step feature shape(s) "
                        f"{self._feature_shapes}, received {received}"
                    )

    @staticmethod
    def _flat_shapes(shapes: Any) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = []
        tree.map_shape_structure(lambda s: found.append(tuple(s)), shapes)
        return found

    # -------------------------------------------------------------------- build
    def build(self, sequences_shape: Any) -> None:
        """Check the input shapes and build the cell on one step's input shape(s)."""
        flat = self._flat_shapes(sequences_shape)
        self.check_input_shapes(flat)
        self._feature_shapes = [tuple(s[2:]) for s in flat]
        batch_axis = 1 if self.time_major else 0
        step_shape = tree.map_shape_structure(
            lambda s: (s[batch_axis], *tuple(s)[2:]), sequences_shape
        )
        if isinstance(self.cell, Layer) and not self.cell.built:
            if self._constant_shapes and not isinstance(self.cell, CellStack):
                self.cell.build([step_shape, *self._constant_shapes])
            else:
                self.cell.build(step_shape)
        # A cell may know its state shapes only once built (ConvLSTMCell's depend on the
        # input's spatial shape; its state_size is -1 before, as in Keras).
        self._state_spec = state_spec(self.cell, layer_label(self))

    @passes_plain_calls  # it acts on constants= only
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        constants = kwargs.get("constants")
        if constants is not None and not accepts_argument(self.cell.call, "constants"):
            raise self._error(
                "constants were passed, but the cell's call() has no constants argument"
            )
        if constants is not None and not self.built:
            flat = tree.flatten(constants)
            self._constant_shapes = [tuple(c.shape) for c in flat if hasattr(c, "shape")]
        return super().__call__(*args, **kwargs)

    # ------------------------------------------------------------------- states
    @property
    def states(self) -> list[Any] | None:
        """The stored states of a stateful layer (a list nested like the cell's states), or
        None before the first call. Usable as ``initial_state=`` of another layer."""
        return None if self._stored_states is None else list(self._stored_states)

    def _num_states(self) -> int:
        return len(tree.flatten(self._state_spec))

    def _to_state_tensor(self, value: Any, like: Tensor | None) -> Tensor:
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value))
        if like is not None:
            value = value.to(dtype=like.dtype, device=like.device)
        elif value.is_floating_point():
            value = value.to(self.compute_dtype)
        return value

    def _standardize_states(self, states: Any, batch: int | None, argument: str) -> list[Any]:
        """Validate a user's states (flat or nested) and pack them like the cell's states."""
        if not tree.is_nested(states):
            states = [states]
        flat = tree.flatten(states)
        specs = tree.flatten(self._state_spec)
        if len(flat) != len(specs):
            raise self._error(
                f"{argument}: expected {len(specs)} state tensor(s) with shapes "
                f"{[(batch, *s.shape) for s in specs]}, received {len(flat)}"
            )
        for i, (value, spec) in enumerate(zip(flat, specs)):
            shape = tuple(getattr(value, "shape", np.shape(value)))
            expected = (batch, *spec.shape)
            if len(shape) != len(expected) or any(
                e is not None and e != g for e, g in zip(expected, shape)
            ):
                raise self._error(
                    f"{argument}[{i}] has shape {shape}, expected {expected} (batch, *state_size)"
                )
        return tree.pack_sequence_as(self._state_spec, flat)

    def _initial_states(self, sequences: Any, batch: int, like: Tensor) -> list[Any]:
        if has_zero_initial_state(self.cell):  # a built-in cell: zeros, one per state
            return [
                torch.zeros((batch, *spec.shape), dtype=like.dtype, device=like.device)
                for spec in self._state_spec
            ]
        state = cell_initial_state(self.cell, batch, like.dtype, inputs=sequences)
        if state is None:
            return tree.map_structure(
                lambda s: torch.zeros((batch, *s.shape), dtype=like.dtype, device=like.device),
                self._state_spec,
            )
        if not tree.is_nested(state):
            state = [state]
        flat = [self._to_state_tensor(s, like) for s in tree.flatten(state)]
        return self._standardize_states(flat, batch, "cell.get_initial_state()")

    def initial_states_for(self, inputs: Tensor, initial_state: Any = None) -> list[Tensor]:
        """The flat list of states a call on the tensor ``inputs`` starts from:
        ``initial_state`` checked and cast like ``inputs``, or, when None, the cell's
        ``get_initial_state`` or zeros (stored states of a stateful layer are not used)."""
        batch = inputs.shape[1] if self.time_major else inputs.shape[0]
        if initial_state is None:
            return tree.flatten(self._initial_states(inputs, batch, inputs))
        flat = [self._to_state_tensor(s, inputs) for s in tree.flatten(initial_state)]
        return tree.flatten(self._standardize_states(flat, batch, "initial_state"))

    def get_initial_state(self, batch_size: int) -> list[Any]:
        """The states a call starts from without ``initial_state``: the cell's
        ``get_initial_state`` or zeros, each ``(batch_size, *state_size)`` (Keras 3's API)."""
        device = next((p.device for p in self.parameters()), None)
        like = torch.empty(0, dtype=self.compute_dtype, device=device)
        return self._initial_states(None, int(batch_size), like)

    def reset_states(self, states: Any = None) -> None:
        """Reset the stored states of a stateful layer to zeros, or to ``states`` (numpy arrays
        or tensors, flat or nested like the cell's states, each ``(batch, *state_size)``)."""
        if states is None:
            if self._stored_states is not None:
                self._stored_states = tree.map_structure(torch.zeros_like, self._stored_states)
            return
        if not self.stateful:
            raise self._error("reset_states(states=...) needs a stateful layer (stateful=True)")
        flat = tree.flatten(states if tree.is_nested(states) else [states])
        batch = self._expected_batch_size
        if batch is None and flat and len(np.shape(flat[0])) > 0:
            batch = int(np.shape(flat[0])[0])
        packed = self._standardize_states(flat, batch, "states")
        device = next((p.device for p in self.parameters()), None)
        like = torch.empty(0, dtype=self.compute_dtype, device=device)
        self._stored_states = tree.map_structure(
            lambda s: self._to_state_tensor(s, like).detach().clone(), packed
        )
        self._expected_batch_size = batch

    reset_state = reset_states

    # --------------------------------------------------------------------- call
    def standardize_mask(self, mask: Any, batch: int, timesteps: int) -> Tensor | None:
        """The call's ``mask`` checked against ``(batch, timesteps)`` (``(timesteps, batch)``
        with ``time_major``) and returned as a batch-major ``(N, T)`` bool tensor, or None."""
        if mask is None:
            return None
        if tree.is_nested(mask):
            found = [m for m in tree.flatten(mask) if m is not None]
            if not found:
                return None
            mask = found[0]
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(np.asarray(mask))
        expected = (timesteps, batch) if self.time_major else (batch, timesteps)
        if tuple(mask.shape) != expected:
            layout = "(timesteps, batch)" if self.time_major else "(batch, timesteps)"
            raise self._error(
                f"mask must have shape {expected} {layout}, received shape {tuple(mask.shape)}"
            )
        if mask.is_floating_point() or mask.is_complex():
            raise self._error(
                f"mask has dtype {str(mask.dtype).removeprefix('torch.')}, expected bool (True: "
                "process the step) or integer 0/1; convert it with mask != 0"
            )
        mask = mask.to(torch.bool)
        return mask.transpose(0, 1) if self.time_major else mask

    def _check_constants(self, constants: Any, batch: int) -> None:
        """``constants`` against the shapes the layer was built with (the cell's weights may
        depend on them) and the batch size of the inputs."""
        expected = self._constant_shapes or []
        if constants is None:
            if expected and _requires_constants(self.cell):
                raise self._error(
                    f"constants: the layer was built with {len(expected)} constant(s) of "
                    f"shape(s) {expected}, received none"
                )
            return
        flat = tree.flatten(constants)
        if expected and len(flat) != len(expected):
            raise self._error(
                f"constants: expected {len(expected)} tensor(s) with shape(s) {expected}, "
                f"received {len(flat)}"
            )
        for i, value in enumerate(flat):
            shape = tuple(value.shape) if hasattr(value, "shape") else tuple(np.shape(value))
            want = (batch, *(expected[i] if expected else shape)[1:])
            if len(shape) != len(want) or any(
                w is not None and g is not None and w != g for w, g in zip(want, shape)
            ):
                raise self._error(
                    f"constants[{i}] has shape {shape}, expected {want} (batch, *features as built)"
                )

    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: bool | None = None,
        constants: Any = None,
        *,
        mask_info: MaskInfo | None = None,
    ) -> Any:
        if mask is None and initial_state is None and constants is None and mask_info is None:
            lean = self._lean_call(sequences, bool(training))
            if lean is not None:
                return lean
        flat_inputs = tree.flatten(sequences)
        for x in flat_inputs:
            if not isinstance(x, torch.Tensor):
                raise TypeError(
                    f"{type(self).__name__} '{self.name}': inputs must be tensors or arrays, "
                    f"received {type(x).__name__}"
                )
        self.check_input_shapes([tuple(x.shape) for x in flat_inputs])
        first = flat_inputs[0]
        if self.time_major:
            timesteps, batch = first.shape[0], first.shape[1]
        else:
            batch, timesteps = first.shape[0], first.shape[1]
        if timesteps == 0:
            raise self._error(f"inputs must have at least one timestep, received {first.shape}")
        mask = self.standardize_mask(mask, batch, timesteps)
        symbolic = in_symbolic_call()

        if self.stateful and not symbolic:
            expected = self._expected_batch_size
            if expected is not None and expected != batch:
                raise self._error(
                    f"stateful=True needs the same batch size at every call: expected batch "
                    f"size {expected}, received {batch} (call reset_states(states) or build a "
                    "new layer to change it)"
                )
        if initial_state is not None:
            flat = [self._to_state_tensor(s, first) for s in tree.flatten(initial_state)]
            states = self._standardize_states(flat, batch, "initial_state")
        elif self.stateful and not symbolic and self._stored_states is not None:
            states = tree.map_structure(
                lambda s: s.to(dtype=first.dtype, device=first.device), self._stored_states
            )
        else:
            states = self._initial_states(sequences, batch, first)

        cell_kwargs: dict[str, Any] = {}
        if accepts_argument(self.cell.call, "training"):
            cell_kwargs["training"] = training
        self._check_constants(constants, batch)
        if constants is not None:
            if not tree.is_nested(constants):
                constants = [constants]
            cell_kwargs["constants"] = tree.map_structure(
                lambda c: (
                    self._to_state_tensor(c, first)
                    if not isinstance(c, torch.Tensor) or c.is_floating_point()
                    else c
                ),
                constants,
            )

        if self.time_major:
            sequences = tree.map_structure(lambda x: x.transpose(0, 1), sequences)
        if symbolic and timesteps > 1:
            # a symbolic call only needs the output's shape, which one step gives: the loop
            # does not run over a long fixed length (building a model stays cheap, also from
            # an untrusted file), and the outputs are expanded (a view) to every step
            sequences = tree.map_structure(lambda x: x[:, :1], sequences)
            mask = None if mask is None else mask[:, :1]
        # Chosen on what runs (the plan carries the analysis of this mask).
        analysis = None if symbolic else self._given_analysis(mask_info, mask, batch, timesteps)
        plan = self._plan(
            sequences, mask if analysis is None else analysis, bool(training), symbolic
        )
        last_output, outputs, final_states = self._run_planned(
            plan, self.cell, self._run, plan, sequences, states, mask, cell_kwargs
        )
        if torch.is_autocast_enabled(first.device.type):  # states stay in the inputs' dtype
            final_states = tree.map_structure(
                lambda s: s.to(first.dtype) if s.is_floating_point() else s, final_states
            )
        if symbolic and timesteps > 1 and outputs is not None:
            outputs = tree.map_structure(
                lambda x: x.expand(x.shape[0], timesteps, *x.shape[2:]), outputs
            )

        if self.stateful and not symbolic:
            self._stored_states = tree.map_structure(lambda s: s.detach(), final_states)
            self._expected_batch_size = batch
        if self.return_sequences:
            output = outputs
            if self.time_major:
                output = tree.map_structure(lambda x: x.transpose(0, 1), output)
        else:
            output = last_output
        if self.activity_regularizer is not None:
            for o in tree.flatten(output):
                self.add_loss(self.activity_regularizer(o))
        if self.return_state:
            return (output, *final_states)
        return output

    def _cell(self) -> Any:
        """``self.cell`` past ``Module.__getattr__`` (asked at every call): a module cell is
        in torch's registry of submodules, any other object (a cell need only have ``call``
        and ``state_size``) in the instance dict."""
        modules = self._modules
        return modules["cell"] if "cell" in modules else self.__dict__["cell"]

    def _run_planned(self, plan: KernelPlan, cell: Any, run: Any, *args: Any) -> Any:
        """Record ``plan`` as the last kernel and return ``run(*args)``, run between two
        resets of the cached dropout masks of ``cell`` (the masks are drawn once per call)."""
        # plain values: written to the instance dict, past Module.__setattr__ (per call)
        self.__dict__["last_kernel_choice"] = plan
        self.__dict__["last_kernel"] = plan.name
        dropout = has_dropout(cell)
        if dropout:
            reset_dropout_masks(cell)
        try:
            return run(*args)
        finally:
            if dropout:
                reset_dropout_masks(cell)

    def _forward_in_plan(self, inputs: Tensor, training: bool) -> Any:
        """In a model's call plan, the lean call straight away when ``forward`` would only pass
        ``inputs`` and ``training`` on to it: no mask on the inputs and none to attach (this
        class's ``compute_mask`` gives none without one), inputs already in the layer's dtype
        and on its device, no losses of an earlier call to clear, no autocast policy, the
        class's ``call`` RNN's own. Otherwise (or when the lean call declines) ``forward``."""
        if (
            type(self)._runs_rnn_call
            and self._autocast_dtype is None
            and not self._call_losses
            and getattr(inputs, "_keras_mask", None) is None
            and self._convert_inputs(inputs) is inputs
        ):
            outputs = self._lean_call(inputs, training, traced_checked=True)
            if outputs is not None:
                return outputs
        return super()._forward_in_plan(inputs, training)

    def _lean_call(self, sequences: Any, training: bool, traced_checked: bool = False) -> Any:
        """The common call, without the general path's walks: one batch-major 3-D tensor, no
        mask, initial state or constants, a fused or manual-backward plan kept from an
        earlier call with the same spec, request, training flag, device and dtype (see
        :meth:`_plan`), not in a symbolic call, ``torch.compile`` or a JIT trace
        (``traced_checked``: the caller, a model's call plan, found so already). Returns None
        when the call is not one of those (or its shapes are not as built): the general path
        then runs it, with its checks and errors."""
        cached = self.__dict__.get("_plan_cache")
        if (
            cached is None
            or not isinstance(sequences, Tensor)
            or sequences.dim() != 3
            or self.time_major
            or self.activity_regularizer is not None
            or self._feature_shapes is None
            or (sequences.shape[2],) != self._feature_shapes[0]
            or sequences.shape[1] == 0
        ):
            return None
        if not traced_checked and (
            in_symbolic_call() or torch.compiler.is_compiling() or torch._C._is_tracing()
        ):
            return None
        key, plan = cached
        device, dtype = sequences.device, sequences.dtype
        if torch.is_autocast_enabled(device.type):
            return None  # the general path keeps the states in the inputs' dtype
        if plan.name not in (FUSED, MANUAL_BACKWARD) or key[2:] != (
            training,
            device,
            dtype,
            3,
            False,
        ):
            return None
        # Weights are found by Module.__getattr__, a Python call per read: the cell's are
        # read from torch's registry instead
        cell = self._cell()
        if key[:2] != (_cell_spec(cell), self.kernel_request()):
            return None
        batch = sequences.shape[0]
        stored = self._stored_states if self.stateful else None
        if stored is not None:
            if self._expected_batch_size != batch:
                return None  # the general path says why
            for s in stored:
                if s.device != device or s.dtype != dtype:
                    return None  # the general path converts them
            states = list(stored)
        else:
            if self.stateful and self._expected_batch_size not in (None, batch):
                return None
            states = self._lean_initial_states(plan, cell, sequences, batch)
        registered = cell._parameters  # a built-in cell's (the plan's spec says so)
        weights = (
            registered["kernel"],
            registered["recurrent_kernel"],
            registered.get("bias"),  # None, or not registered, without a bias
        )
        last_output, outputs, final_states = self._run_planned(
            plan, cell, self._run_kernel, plan, cell, weights, sequences, states, None, training
        )
        if self.stateful:  # plain values: written past Module.__setattr__ (per call)
            # detached where autograd recorded them (no op under no_grad)
            kept = [s.detach() if s.requires_grad else s for s in final_states]
            self.__dict__["_stored_states"] = kept
            self.__dict__["_expected_batch_size"] = batch
        output = outputs if self.return_sequences else last_output
        if self.return_state:
            return (output, *final_states)
        return output

    def _lean_initial_states(
        self, plan: KernelPlan, cell: Any, sequences: Tensor, batch: int
    ) -> list[Any]:
        """The initial states of a lean call. The fused kernel only reads them: a built-in
        cell's zeros are kept from call to call for the same batch size, dtype, device and
        inference mode (two allocations less per call; tensors made under inference mode
        cannot be saved for a backward, hence the key)."""
        if plan.name != FUSED or not has_zero_initial_state(cell):
            return self._initial_states(sequences, batch, sequences)
        key = (batch, sequences.dtype, sequences.device, torch.is_inference_mode_enabled())
        cached = self.__dict__.get("_zero_states")
        if cached is None or cached[0] != key:
            zeros = self._initial_states(sequences, batch, sequences)
            cached = self.__dict__["_zero_states"] = (key, zeros)  # past Module.__setattr__
        return list(cached[1])

    def _given_analysis(
        self, mask_info: Any, mask: Tensor | None, batch: int, timesteps: int
    ) -> MaskInfo | None:
        """A caller's ``mask_info`` (input order) checked and put in processing order."""
        if mask_info is None:
            return None
        if not isinstance(mask_info, MaskInfo):
            raise TypeError(
                f"{layer_label(self)}: mask_info must be a rnnkit.kernels.masks.MaskInfo or "
                f"None, received {type(mask_info).__name__}"
            )
        lengths = mask_info.lengths
        if mask is None or (lengths is not None and tuple(lengths.shape) != (batch,)):
            received = None if mask is None else tuple(mask.shape)
            raise self._error(
                f"mask_info must analyse the call's mask of shape {(batch, timesteps)}, "
                f"received mask {received} and an analysis of "
                f"{None if lengths is None else tuple(lengths.shape)} rows"
            )
        return reversed_info(mask_info, timesteps) if self.go_backwards else mask_info

    # ------------------------------------------------------------- kernel seam
    def _plan(self, sequences: Any, mask: Any, training: bool, symbolic: bool) -> KernelPlan:
        """``kernels.choose`` for this call. Without a mask the choice depends only on the
        spec, the request, ``training`` and the inputs' device and dtype: it is kept for the
        next call with the same ones (the lean call path; the spec and request are rebuilt
        every call, so a changed configuration is seen)."""
        spec, request = self.kernel_spec(), self.kernel_request()
        key = None
        if (
            mask is None
            and not symbolic
            and request.compile_options is None
            and isinstance(sequences, Tensor)
            and not torch.compiler.is_compiling()  # compile and export choose their own
            and not torch.jit.is_tracing()
        ):
            device = sequences.device
            autocast = torch.is_autocast_enabled(device.type)
            key = (spec, request, training, device, sequences.dtype, sequences.dim(), autocast)
            cached = self.__dict__.get("_plan_cache")
            if cached is not None and cached[0] == key:
                return cached[1]
        plan = kernels.choose(
            spec, request, sequences, mask, training=training, shape_inference=symbolic
        )
        if key is not None:
            self.__dict__["_plan_cache"] = (key, plan)
        return plan

    def kernel_spec(self) -> CellSpec | None:
        """The cell as the kernels see it (its ``kernel_spec()``), or None for a cell with no
        kernel of its own (any cell but the built-in ones; a subclass overriding ``call``)."""
        return _cell_spec(self.cell)

    def kernel_request(self) -> KernelRequest:
        """What this layer asks of the kernels (a plain ``RNN(cell)``: the generic loop)."""
        return self._kernel_request(None)

    def _kernel_request(self, use_cudnn: bool | str | None) -> KernelRequest:
        """The request, kept while the attributes it is made of are the same (asked at every
        call; a compiled loop's request also names the cells with dropout, so is made anew)."""
        key = (use_cudnn, self.name, type(self._cell()), self.unroll, self.go_backwards)
        cached = self.__dict__.get("_request_cache")
        if cached is not None and cached[0] == key and self.compile_options is None:
            return cached[1]
        dropout_cells: tuple[str, ...] = ()
        if self.compile_options is not None:
            dropout_cells = tuple(_dropout_cells(self.cell))
        request = KernelRequest(
            owner=f"{type(self).__name__} '{self.name}'",
            cell=type(self.cell).__name__,
            use_cudnn=use_cudnn,
            unroll=self.unroll,
            go_backwards=self.go_backwards,
            compile_options=self.compile_options,
            dropout_cells=dropout_cells,
        )
        if self.compile_options is None:
            self.__dict__["_request_cache"] = (key, request)
        return request

    def kernel_plan(self, inputs: Any, mask: Any = None, training: bool = False) -> KernelPlan:
        """Which kernel a call ``layer(inputs, mask=mask, training=training)`` would run, and
        why, without running it (the layer must be built). ``inputs``: ``(N, T, ...)`` (or
        ``(T, N, ...)`` with ``time_major``); ``mask``: ``(N, T)`` bool or None. Raises the
        call's ``ValueError`` for bad shapes, and for ``use_cudnn=True`` the fused kernel
        cannot honour."""
        flat = tree.flatten(inputs)
        self.check_input_shapes([tuple(x.shape) for x in flat])
        batch, timesteps = (flat[0].shape[1], flat[0].shape[0]) if self.time_major else (
            flat[0].shape[0], flat[0].shape[1])  # fmt: skip
        mask = self.standardize_mask(mask, batch, timesteps)
        return kernels.choose(
            self.kernel_spec(), self.kernel_request(), inputs, mask, training=bool(training)
        )

    def _run(
        self, plan: KernelPlan, sequences: Any, states: Any, mask: Any, cell_kwargs: dict
    ) -> tuple[Any, Any, Any]:
        """Run the planned kernel on batch-major ``sequences``; returns (last, outputs, states)."""
        training = bool(cell_kwargs.get("training"))
        cell = self.cell
        if plan.name in (FUSED, MANUAL_BACKWARD, EXPORT):
            weights = (cell.kernel, cell.recurrent_kernel, cell.bias)
            return self._run_kernel(
                plan, cell, weights, sequences, tree.flatten(states), mask, training
            )
        if plan.name == COMPILED:
            return self._run_compiled(sequences, states, mask, cell_kwargs)
        if plan.name != GENERIC:
            raise self._error(f"kernel {plan.name!r} is not available")
        if (
            isinstance(sequences, Tensor)
            and sequences.dim() == 3
            and "constants" not in cell_kwargs
            and plan.spec is not None
        ):
            # The lean loop: one matmul projects every step's input, then only the recurrent
            # half runs per step (see rnnkit.kernels.loop.run_projected_loop).
            projected = cell.input_projection(sequences.transpose(0, 1), training)
            return run_projected_loop(
                functools.partial(cell.step_from_projection, training=training),
                projected,
                tree.flatten(states),
                mask=mask,
                go_backwards=self.go_backwards,
                zero_output_for_mask=self.zero_output_for_mask,
                return_sequences=self.return_sequences,
            )
        cell_call = cell.call

        def step(x_t: Any, states_t: Any) -> tuple[Any, Any]:
            return cell_call(x_t, states_t, **cell_kwargs)

        return run_loop(
            step,
            sequences,
            states,
            mask=mask,
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            return_sequences=self.return_sequences,
        )

    def _run_kernel(
        self,
        plan: KernelPlan,
        cell: Any,
        weights: tuple[Tensor, Tensor, Tensor | None],
        sequences: Tensor,
        states: list[Tensor],
        mask: Any,
        training: bool,
    ) -> tuple[Any, Any, Any]:
        """The fused or manual-backward kernel, with ``weights`` (the values of the cell's
        ``kernel``, ``recurrent_kernel``, ``bias``) and the cell's dropout masks (drawn in the
        generic loop's order: input mask, then recurrent mask)."""
        input_mask = recurrent_mask = None
        if training and cell.dropout > 0:
            input_mask = cell.get_dropout_mask(sequences[:, 0])
        if plan.name == MANUAL_BACKWARD and training and cell.recurrent_dropout > 0:
            recurrent_mask = cell.get_recurrent_dropout_mask(states[0])
        return kernels.run(
            plan,
            sequences,
            weights,
            states,
            mask,
            input_dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask,
            go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
        )

    def _run_compiled(
        self, sequences: Any, states: Any, mask: Any, cell_kwargs: dict
    ) -> tuple[Any, Any, Any]:
        # Built-in cells too are stepped through `cell.call`: compiling their lean loop
        # (projection outside, `step_from_projection` inside) measured slower (1.13x against
        # 1.03x of the nn.LSTMCell loop, benchmarks/RESULTS_generic_loop.md).
        if self._compiled_loop is None:
            assert self.compile_options is not None
            self._compiled_loop = CompiledLoop(self.compile_options, layer_label(self))
        return self._compiled_loop(
            self.cell,
            sequences,
            states,
            mask=mask,
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            return_sequences=self.return_sequences,
            cell_kwargs=cell_kwargs,
        )

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> Any:
        """The outputs of a symbolic call on one ``(batch, time, *features)`` input, for a cell
        whose step :mod:`rnnkit.layers.rnn_shapes` knows (the built-in cells, ``ConvLSTMCell``,
        stacks of them, ``DropoutCell``, ``OutputProjectionCell``): ``(batch, time, *H)``
        (with the input's ``(batch, time)`` mask, if any) or ``(batch, *H)``, then with
        ``return_state`` one ``(batch, *s)`` per state, in the compute dtype. An
        ``initial_state`` of KerasTensors shaped as the states does not change them. None for
        anything else (custom cells, other arguments, ``time_major``, ``unroll``, an activity
        regularizer, mixed policies, weights that do not fit the input): the call then runs on
        placeholders, which raises the errors. (A ``stateful`` layer's symbolic call neither
        reads nor stores states: its outputs are as without.)"""
        shape = inputs.shape
        mask = inputs._keras_mask
        initial_state = kwargs.pop("initial_state", None)
        if (
            kwargs
            or not self._runs_rnn_call
            or (mask is not None and mask.shape != shape[:2])
            or self.time_major
            or self.unroll
            or self.activity_regularizer is not None
            or self._autocast_dtype is not None
            or len(shape) - 2 != rnn_shapes.step_rank(self.cell)
            or shape[1] == 0
            or None in shape[2:]
        ):
            return None
        self._maybe_build(inputs)
        dtype = self.compute_dtype
        step = rnn_shapes.step_output_shape(self.cell, tuple(shape[2:]), dtype)
        if step is None:
            return None  # the placeholder run raises the error that names both sizes
        if initial_state is not None and not rnn_shapes.fits_initial_state(
            initial_state, self._state_spec, shape[0]
        ):
            return None  # the placeholder run checks them and says what is wrong
        return rnn_shapes.recurrent_outputs(
            inputs, step, self._state_spec, dtype, self.return_sequences, self.return_state
        )

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The output mask: the input mask with ``return_sequences``, else None; with
        ``return_state``, one more None per state tensor."""
        if mask is not None and tree.is_nested(mask):
            found = [m for m in tree.flatten(mask) if m is not None]
            mask = found[0] if found else None
        if mask is not None and not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(np.asarray(mask)).to(torch.bool)
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self._num_states()
        return output_mask

    # ------------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        config = {
            **super().get_config(),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "time_major": self.time_major,
            "zero_output_for_mask": self.zero_output_for_mask,
            "compile_loop": self._compile_argument,
        }
        if type(self) is RNN:
            config["cell"] = serialize(self.cell)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> RNN:
        config = renamed_compile_key(config)
        cell = deserialize(config.pop("cell"), custom_objects)
        return cls(cell, **config)

    def extra_repr(self) -> str:
        flags = [
            f
            for f in ("return_sequences", "return_state", "go_backwards", "stateful")
            if getattr(self, f)
        ]
        return ", ".join([f"name={self.name!r}", *flags])


def _cell_spec(cell: Any) -> CellSpec | None:
    """``cell.kernel_spec()``, or None for a cell without one (optional in the protocol)."""
    spec = getattr(cell, "kernel_spec", None)
    return spec() if callable(spec) else None


def _deprecated_compile(kwargs: dict[str, Any], compile_loop: Any, owner: str) -> Any:
    """``compile_loop``, or the value of the former spelling ``compile=`` (with a warning)."""
    if "compile" not in kwargs:
        return compile_loop
    value = kwargs.pop("compile")
    if compile_loop is not False:
        raise TypeError(f"{owner}: pass compile_loop= only (compile= is its former spelling)")
    warnings.warn(
        f"{owner}: the argument compile= is renamed compile_loop= (it compiles the time loop; "
        "Model.compile configures training)",
        DeprecationWarning,
        stacklevel=3,
    )
    return value


def renamed_compile_key(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a layer config with the former key ``compile`` read as ``compile_loop``
    (configs saved before the rename)."""
    config = dict(config)
    if "compile" in config:
        config.setdefault("compile_loop", config.pop("compile"))
    return config


def _dropout_cells(cell: Any) -> list[str]:
    """Names of the built-in dropout cells inside ``cell`` with a nonzero rate."""
    found = []
    if isinstance(cell, DropoutRNNCell) and (cell.dropout > 0 or cell.recurrent_dropout > 0):
        found.append(getattr(cell, "name", type(cell).__name__))
    for inner in cell.cells if isinstance(cell, CellStack) else ():
        found += _dropout_cells(inner)
    inner = getattr(cell, "cell", None)  # a cell wrapper (DropoutCell, ...)
    if inner is not None and inner is not cell:
        found += _dropout_cells(inner)
    return found
