"""``Bidirectional``: run an RNN forwards and backwards over a sequence and merge the two.

Under the hood (as the guide says) the wrapped RNN layer is copied from its config twice: a
forward copy named ``forward_<name>`` and a backward copy named ``backward_<name>`` whose
``go_backwards`` is flipped, so that it reads the input in reverse order. The backward copy
returns its sequence in processing order; it is reversed back before merging, so that step
``t`` of the result combines what both directions computed at input step ``t``.

Shapes (legend: ``N`` batch, ``T`` time steps, ``F`` features, ``H`` the RNN's units):

- inputs: ``(N, T, F)``;
- output with ``return_sequences``: ``(N, T, 2H)`` for ``"concat"``, ``(N, T, H)`` for
  ``"sum"``, ``"mul"``, ``"ave"``; without it ``(N, 2H)`` or ``(N, H)``;
- ``merge_mode=None``: ``[forward_output, backward_output]``, each ``(N, [T,] H)``;
- ``return_state``: the output(s), then the forward states, then the backward states.

>>> import torch
>>> from rnnkit.layers import LSTM
>>> layer = Bidirectional(LSTM(4, return_sequences=True))
>>> layer(torch.zeros(2, 5, 3)).shape
torch.Size([2, 5, 8])
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import kernels, tree
from rnnkit.kernels import fused, masks
from rnnkit.kernels.masks import MaskInfo
from rnnkit.kernels.spec import KernelPlan
from rnnkit.layers.base import Layer
from rnnkit.layers.cell_protocol import accepts_argument
from rnnkit.layers.rnn import RNN
from rnnkit.layers.serialization import deserialize, serialize
from rnnkit.layers.shapes import layer_label
from rnnkit.symbolic import KerasTensor, in_symbolic_call

MERGE_MODES = ("concat", "sum", "mul", "ave", None)
_RNN_ATTRIBUTES = ("go_backwards", "return_sequences", "return_state")


def _check_rnn_layer(layer: Any, argument: str) -> None:
    missing = [a for a in _RNN_ATTRIBUTES if not hasattr(layer, a)]
    if not isinstance(layer, Layer) or missing:
        kind = f"{type(layer).__name__} '{layer.name}'" if isinstance(layer, Layer) else repr(layer)
        raise ValueError(
            f"Bidirectional: {argument} must be an RNN layer (RNN, SimpleRNN, LSTM, GRU, or a "
            f"Layer with the attributes {', '.join(_RNN_ATTRIBUTES)}), received {kind}"
        )


def _remove_prefix(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


def _clone(layer: Layer, name: str, flip_go_backwards: bool) -> Layer:
    """A fresh (unbuilt) layer from ``layer``'s config, renamed, optionally going the other way."""
    config = serialize(layer)
    inner = dict(config["config"])
    if flip_go_backwards:
        if "go_backwards" not in inner:
            raise ValueError(
                f"Bidirectional: layer {type(layer).__name__} '{layer.name}' has no "
                "'go_backwards' in its get_config(), so its backward copy cannot be made; "
                "pass backward_layer explicitly"
            )
        inner["go_backwards"] = not inner["go_backwards"]
    inner["name"] = name
    return deserialize({**config, "config": inner})


class Bidirectional(Layer):
    """Bidirectional wrapper for RNN layers.

    Args:
        layer: an RNN layer (``RNN``, ``SimpleRNN``, ``LSTM``, ``GRU`` or any layer with
            ``go_backwards``, ``return_sequences`` and ``return_state``, serializable through
            ``get_config``). It is used as a template only: the wrapper makes a fresh forward
            copy (named ``forward_<name>``), so weights of ``layer`` are not reused.
        merge_mode: how the two directions combine: ``"concat"`` (default, along the last
            axis), ``"sum"``, ``"mul"``, ``"ave"`` (the mean), or ``None`` (a list of both).
        weights: optional initial weights, the forward layer's then the backward layer's,
            applied when the wrapper is built.
        backward_layer: optional layer to process the input backwards instead of a copy of
            ``layer``; it must have a different ``go_backwards`` and the same ``stateful``,
            ``return_sequences`` and ``return_state`` as ``layer``. It is used as given.
        **kwargs: base :class:`~rnnkit.layers.Layer` arguments (``name``, ``input_shape``, ...).

    Call arguments:
        inputs: ``(N, T, F)``.
        initial_state: the forward layer's initial states followed by the backward layer's
            (the list is split in halves).
        mask: ``(N, T)`` boolean, passed to both directions.
        training: passed to both directions.
        constants: passed unchanged to both directions.

    As Keras, with ``return_sequences`` both directions output zeros at masked steps (their
    ``zero_output_for_mask`` is set to True), so that the merged output is defined at every
    step; without ``return_sequences`` it is False.

    Weights: the forward layer's, then the backward layer's.
    """

    _casts_non_floating_inputs = True

    def __init__(
        self,
        layer: Layer,
        merge_mode: str | None = "concat",
        weights: list[Any] | None = None,
        backward_layer: Layer | None = None,
        **kwargs: Any,
    ) -> None:
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                "Bidirectional: merge_mode must be one of 'concat', 'sum', 'mul', 'ave' or None, "
                f"received {merge_mode!r}"
            )
        _check_rnn_layer(layer, "layer")
        if backward_layer is not None:
            _check_rnn_layer(backward_layer, "backward_layer")
        super().__init__(**kwargs)
        forward = _clone(layer, f"forward_{_remove_prefix(layer.name, 'forward_')}", False)
        if backward_layer is None:
            backward_layer = _clone(
                layer, f"backward_{_remove_prefix(layer.name, 'backward_')}", True
            )
        self.forward_layer = forward
        self.backward_layer = backward_layer
        for role, sublayer in (("forward", forward), ("backward", backward_layer)):
            # The errors of each direction (wrong input shape, mask, state) name this layer.
            sublayer.error_label = (
                f"Bidirectional '{self.name}' ({role} layer {layer_label(sublayer)})"
            )
        self._verify_layer_config()
        for sublayer in (self.forward_layer, self.backward_layer):
            if hasattr(sublayer, "zero_output_for_mask"):
                sublayer.zero_output_for_mask = bool(sublayer.return_sequences)
        self.merge_mode = merge_mode
        self._initial_weights = list(weights) if weights else None
        self.stateful = bool(getattr(forward, "stateful", False))
        self.return_sequences = bool(forward.return_sequences)
        self.return_state = bool(forward.return_state)
        self.supports_masking = True
        self._num_states: int | None = None
        self._defer_sublayer_build = False
        self.last_kernel: str | None = None
        self.last_kernel_choice: KernelPlan | None = None

    def _verify_layer_config(self) -> None:
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "Bidirectional: the forward and backward layers must have different "
                f"go_backwards; received forward_layer.go_backwards={forward.go_backwards}, "
                f"backward_layer.go_backwards={backward.go_backwards}"
            )
        for attribute in ("stateful", "return_sequences", "return_state"):
            f, b = getattr(forward, attribute, False), getattr(backward, attribute, False)
            if f != b:
                raise ValueError(
                    f"Bidirectional: the forward and backward layers must have the same "
                    f"{attribute}; received {f} for the forward layer and {b} for the "
                    "backward layer"
                )

    # ------------------------------------------------------------------- build
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # With constants, the RNN layers must build themselves on their first call (their
        # cells are built on [step_shape, *constant_shapes]), so build() leaves them alone.
        self._defer_sublayer_build = kwargs.get("constants") is not None
        return super().__call__(*args, **kwargs)

    def build(self, input_shape: Any) -> None:
        """Build both directions for sequences of ``input_shape``, then apply ``weights``."""
        if self._defer_sublayer_build:
            return
        for sublayer in (self.forward_layer, self.backward_layer):
            if not sublayer.built:
                sublayer.build(input_shape)
                sublayer.built = True
        self._apply_initial_weights()

    def _apply_initial_weights(self) -> None:
        if self._initial_weights is None:
            return
        weights, self._initial_weights = self._initial_weights, None
        half = len(weights) // 2
        self.forward_layer.set_weights(weights[:half])
        self.backward_layer.set_weights(weights[half:])

    # -------------------------------------------------------------------- call
    def _split_initial_state(
        self, initial_state: Any, argument: str = "initial_state"
    ) -> tuple[Any, Any]:
        if initial_state is None:
            return None, None
        if isinstance(initial_state, torch.Tensor) or not isinstance(initial_state, (list, tuple)):
            raise ValueError(
                f"Bidirectional '{self.name}': {argument} must be a list of the forward "
                "states followed by the backward states, received a single "
                f"{type(initial_state).__name__}"
            )
        states = list(initial_state)
        if len(states) % 2:
            raise ValueError(
                f"Bidirectional '{self.name}': {argument} must hold as many backward states "
                f"as forward states (an even count), received {len(states)} states"
            )
        half = len(states) // 2
        return states[:half], states[half:]

    def _merge(self, y: Any, y_rev: Any) -> Any:
        if self.merge_mode == "concat":
            return tree.map_structure(lambda a, b: torch.cat([a, b], dim=-1), y, y_rev)
        if self.merge_mode == "sum":
            return tree.map_structure(lambda a, b: a + b, y, y_rev)
        if self.merge_mode == "ave":
            return tree.map_structure(lambda a, b: (a + b) / 2, y, y_rev)
        if self.merge_mode == "mul":
            return tree.map_structure(lambda a, b: a * b, y, y_rev)
        return [y, y_rev]

    def call(
        self,
        inputs: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: bool | None = None,
        constants: Any = None,
    ) -> Any:
        forward_state, backward_state = self._split_initial_state(initial_state)
        planned = self._plan(inputs, mask, training, constants)
        if planned is not None and planned[0].one_call:
            plan, checked_mask = planned
            self.last_kernel_choice, self.last_kernel = plan, plan.name
            return self._run_one_fused_call(
                inputs, forward_state, backward_state, plan, checked_mask
            )
        kwargs: dict[str, Any] = {"training": training, "mask": mask}
        if constants is not None:
            kwargs["constants"] = constants
        # The mask is analysed once per call: by the plan, else by the first direction's
        # kernel choice, and the other direction is given that analysis.
        info = None if planned is None else planned[0].mask_info
        y = self._call_direction(self.forward_layer, inputs, forward_state, kwargs, info)
        if planned is not None and info is None and planned[1] is not None:
            info = self._analysis_of(self.forward_layer, inputs.shape[1])
        y_rev = self._call_direction(self.backward_layer, inputs, backward_state, kwargs, info)
        if self._initial_weights is not None:
            # Built on this first call (constants): apply ``weights`` and run again.
            self._apply_initial_weights()
            if self.stateful:
                self.forward_layer.reset_states()
                self.backward_layer.reset_states()
            y = self.forward_layer(inputs, initial_state=forward_state, **kwargs)
            y_rev = self.backward_layer(inputs, initial_state=backward_state, **kwargs)
        if planned is not None:
            self._record_per_direction(planned[0])
        states: list[Any] = []
        if self.return_state:
            states = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        self._num_states = len(states)
        if self.return_sequences:
            time_axis = 0 if getattr(self.backward_layer, "time_major", False) else 1
            y_rev = tree.map_structure(lambda t: torch.flip(t, dims=[time_axis]), y_rev)
        output = self._merge(y, y_rev)
        if not self.return_state:
            return output
        if self.merge_mode is None:
            return (*output, *states)
        return (output, *states)

    @staticmethod
    def _call_direction(
        layer: Layer, inputs: Any, state: Any, kwargs: dict[str, Any], info: MaskInfo | None
    ) -> Any:
        """One direction's call, given the mask's analysis (input order) when there is one."""
        if info is not None and accepts_argument(layer.call, "mask_info"):
            return layer(inputs, initial_state=state, mask_info=info, **kwargs)
        return layer(inputs, initial_state=state, **kwargs)

    @staticmethod
    def _analysis_of(layer: RNN, timesteps: int) -> MaskInfo | None:
        """The mask analysis of ``layer``'s last call (its kernel plan's), in input order."""
        choice = layer.last_kernel_choice
        info = None if choice is None else choice.mask_info
        if info is None or not layer.go_backwards:
            return info
        return masks.reversed_info(info, timesteps)

    # ------------------------------------------------------- one fused call for both
    def _plan(
        self, inputs: Any, mask: Any, training: bool, constants: Any
    ) -> tuple[KernelPlan, torch.Tensor | None] | None:
        """The plan of a call on built ``RNN`` directions and the checked batch-major mask:
        one fused call for both directions when
        :func:`rnnkit.kernels.dispatch.choose_bidirectional` allows it (the mask is analysed
        there, once), else a plan whose reason says why each direction runs on its own kernel.
        None for calls that always run per direction (constants, placeholders, nested or
        time-major inputs, wrapped layers that are not ``RNN`` layers)."""
        forward, backward = self.forward_layer, self.backward_layer
        if (
            constants is not None
            or in_symbolic_call()
            or not isinstance(inputs, torch.Tensor)
            or inputs.dim() != 3
            or not (isinstance(forward, RNN) and isinstance(backward, RNN))
            or forward.time_major
            or not (forward.built and backward.built)
        ):
            return None
        forward.check_input_shapes([tuple(inputs.shape)])
        mask = forward.standardize_mask(mask, inputs.shape[0], inputs.shape[1])
        refused = None
        if type(forward) is not type(backward) or forward.kernel_request().use_cudnn is None:
            refused = "the two directions are not the same built-in recurrent layer type"
        elif forward.stateful:
            refused = "stateful layers keep their states per direction"
        elif forward.activity_regularizer is not None or backward.activity_regularizer is not None:
            refused = "an activity regularizer needs each direction's own output"
        if refused is not None:
            reason = f"each direction runs on its own kernel: {refused}"
            return KernelPlan("", reason, forward.kernel_spec()), mask
        plan = kernels.choose_bidirectional(
            (forward.kernel_spec(), forward.kernel_request()),
            (backward.kernel_spec(), backward.kernel_request()),
            inputs,
            mask,
            bool(training),
        )
        return plan, mask

    def _record_per_direction(self, plan: KernelPlan) -> None:
        """``last_kernel``: the kernel both directions ran, or ``"<forward>/<backward>"`` when
        they differ (the directions' own ``last_kernel`` values)."""
        names = (self.forward_layer.last_kernel, self.backward_layer.last_kernel)
        name = names[0] if names[0] == names[1] else f"{names[0]}/{names[1]}"
        self.last_kernel_choice = KernelPlan(str(name), plan.reason, plan.spec)
        self.last_kernel = self.last_kernel_choice.name

    def _run_one_fused_call(
        self,
        inputs: torch.Tensor,
        forward_state: Any,
        backward_state: Any,
        plan: KernelPlan,
        mask: torch.Tensor | None,
    ) -> Any:
        """Both directions in one ``_VF`` call; same results as the two layer calls. The
        directions' own ``last_kernel`` are left alone: this is not a call of theirs."""
        spec = plan.spec
        assert spec is not None
        forward, backward = self.forward_layer, self.backward_layer
        states = [forward.initial_states_for(inputs, forward_state),
                  backward.initial_states_for(inputs, backward_state)]  # fmt: skip
        y, y_rev, forward_final, backward_final = fused.bidirectional(
            spec.kind,
            inputs,
            *[(c.kernel, c.recurrent_kernel, c.bias) for c in (forward.cell, backward.cell)],
            *states,
            mask=mask,
            return_sequences=self.return_sequences,
            activation=fused.activation_name(spec.activation) or "tanh",
            mask_info=plan.mask_info,
        )
        self._num_states = len(forward_final) + len(backward_final) if self.return_state else 0
        output = self._merge(y, y_rev)  # the backward outputs come back in input order
        if not self.return_state:
            return output
        if self.merge_mode is None:
            return (*output, *forward_final, *backward_final)
        return (output, *forward_final, *backward_final)

    def _output_from_shapes(self, inputs: KerasTensor, **kwargs: Any) -> Any:
        """Both directions' outputs told from the input's shape (each an ``RNN`` that can:
        see :meth:`RNN._output_from_shapes`), merged as :meth:`call` merges them, with the
        masks :meth:`compute_mask` gives; an ``initial_state`` list is split in halves, the
        forward states then the backward ones, as :meth:`call` splits it. None when a
        direction cannot tell, when ``weights`` are still to be applied, for an
        ``initial_state`` that is not an even-length list, or when the two outputs cannot
        merge (the call raises)."""
        forward, backward = self.forward_layer, self.backward_layer
        initial_state = kwargs.pop("initial_state", None)
        if initial_state is not None and (
            not isinstance(initial_state, (list, tuple)) or len(initial_state) % 2
        ):
            return None  # the placeholder run says what is wrong
        half = 0 if initial_state is None else len(initial_state) // 2
        forward_state = None if initial_state is None else list(initial_state[:half])
        backward_state = None if initial_state is None else list(initial_state[half:])
        if (
            kwargs
            or self._initial_weights is not None
            or not (isinstance(forward, RNN) and isinstance(backward, RNN))
            or type(self).call is not Bidirectional.call
            or type(self).compute_mask is not Bidirectional.compute_mask
        ):
            return None
        self._maybe_build(inputs)
        y = forward._output_from_shapes(inputs, initial_state=forward_state)
        y_rev = backward._output_from_shapes(inputs, initial_state=backward_state)
        if y is None or y_rev is None:
            return None
        states: list[KerasTensor] = []
        if self.return_state:
            states = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        if y.dtype != y_rev.dtype or y.shape[:-1] != y_rev.shape[:-1]:
            return None
        if self.merge_mode == "concat":
            outputs = [KerasTensor((*y.shape[:-1], y.shape[-1] + y_rev.shape[-1]), y.dtype)]
        elif self.merge_mode is not None:
            if y.shape != y_rev.shape:
                return None
            outputs = [KerasTensor(y.shape, y.dtype)]
        else:
            outputs = [KerasTensor(y.shape, y.dtype), KerasTensor(y_rev.shape, y_rev.dtype)]
        mask = inputs._keras_mask
        if mask is not None and self.return_sequences:
            for output in outputs:
                output._keras_mask = KerasTensor(mask.shape, mask.dtype)
        self._num_states = len(states)
        if self.return_state:
            return (*outputs, *states)
        return outputs if self.merge_mode is None else outputs[0]

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The input mask for sequence outputs (both, with ``merge_mode=None``); ``None`` for
        last-step outputs and for states."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        output_mask: Any = mask if self.return_sequences else None
        masks = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            return [*masks, *([None] * (self._num_states or 0))]
        return masks if self.merge_mode is None else output_mask

    # ------------------------------------------------------------------ states
    @property
    def states(self) -> list[Any] | None:
        """The forward layer's states then the backward layer's (stateful layers only)."""
        forward = getattr(self.forward_layer, "states", None)
        backward = getattr(self.backward_layer, "states", None)
        if forward is None or backward is None:
            return None
        return [*forward, *backward]

    def reset_states(self, states: list[Any] | None = None) -> None:
        """Reset both directions' states to zeros, or to ``states`` (forward then backward)."""
        if not self.stateful:
            raise ValueError(
                f"Bidirectional '{self.name}': reset_states() needs a stateful layer "
                "(construct the wrapped RNN with stateful=True)"
            )
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        forward, backward = self._split_initial_state(states, "states")
        self.forward_layer.reset_states(forward)
        self.backward_layer.reset_states(backward)

    reset_state = reset_states

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "merge_mode": self.merge_mode,
            "layer": serialize(self.forward_layer),
            "backward_layer": serialize(self.backward_layer),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Bidirectional:
        config = dict(config)
        layer = deserialize(config.pop("layer"), custom_objects)
        backward = config.pop("backward_layer", None)
        backward_layer = deserialize(backward, custom_objects) if backward is not None else None
        return cls(layer, backward_layer=backward_layer, **config)
