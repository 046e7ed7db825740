"""The cell protocol: what the RNN layer needs from any cell, and the dropout-mask mixin.

A cell is any object with ``call(inputs, states[, training][, constants])`` returning
``(output, new_states)`` and a ``state_size``. The helpers here read a cell through that
protocol: :func:`state_spec` (its ``state_size`` as a structure of :class:`StateSpec` shapes),
:func:`cell_initial_state` (``get_initial_state`` in its Keras 3 or tf.keras form),
:func:`cell_output_shape`, :func:`check_cell`, :func:`accepts_argument` (cached signature
look-up, since it runs at every layer call) and :func:`reset_dropout_masks`.
:class:`DropoutRNNCell` is the variational dropout mixin of the built-in cells.

>>> state_spec(type("Cell", (), {"state_size": [3, 3], "call": None})())
[StateSpec((3,)), StateSpec((3,))]
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from rnnkit import tree

Tensor = torch.Tensor


class CellStack:
    """A cell made of ``cells`` run one after another at each step; its states are one entry
    per cell (:class:`rnnkit.layers.stacked_cells.StackedRNNCells`)."""

    cells: Any


class DropoutRNNCell:
    """Variational dropout masks for a cell (a mixin, as Keras' ``DropoutRNNCell``).

    The mixing class sets ``dropout``, ``recurrent_dropout`` and ``seed``. A mask is drawn on
    the first request after a reset and then reused, so every time step of one sequence sees
    the same mask. Masks are scaled by ``1 / (1 - rate)`` (inverted dropout).
    """

    dropout: float
    recurrent_dropout: float
    seed: int | None

    def _draw_mask(self, like: Tensor, rate: float) -> Tensor:
        keep = 1.0 - rate
        generator = getattr(self, "_dropout_generator", None)
        if generator is None and self.seed is not None:
            generator = torch.Generator().manual_seed(int(self.seed))
            self._dropout_generator = generator
        if generator is not None:  # seeded: draw on the CPU generator, then move
            probs = torch.full(like.shape, keep, dtype=like.dtype)
            mask = torch.bernoulli(probs, generator=generator).to(like.device)
        else:
            mask = torch.bernoulli(torch.full_like(like, keep))
        return mask / keep

    def get_dropout_mask(self, step_input: Tensor) -> Tensor | None:
        """The input mask shaped like ``step_input`` (``None`` when ``dropout == 0``)."""
        if self.__dict__.get("_dropout_mask") is None and self.dropout > 0:
            self._dropout_mask = self._draw_mask(step_input, self.dropout)
        return self.__dict__.get("_dropout_mask")

    def get_recurrent_dropout_mask(self, step_state: Tensor) -> Tensor | None:
        """The recurrent mask shaped like ``step_state`` (``None`` when the rate is 0)."""
        if self.__dict__.get("_recurrent_dropout_mask") is None and self.recurrent_dropout > 0:
            self._recurrent_dropout_mask = self._draw_mask(step_state, self.recurrent_dropout)
        return self.__dict__.get("_recurrent_dropout_mask")

    # Reset only what is set: the RNN layer resets twice per call, and an attribute write on
    # a torch Module goes through its slow __setattr__ (the masks live in the instance dict:
    # plain tensors, not parameters or buffers; reading them there skips Module.__getattr__).
    def reset_dropout_mask(self) -> None:
        if self.__dict__.get("_dropout_mask") is not None:
            self._dropout_mask = None

    def reset_recurrent_dropout_mask(self) -> None:
        if self.__dict__.get("_recurrent_dropout_mask") is not None:
            self._recurrent_dropout_mask = None


def _member(obj: Any, name: str) -> Any:
    """``obj.name`` or None, without raising and catching (torch's Module.__getattr__ raises
    for a missing name, which costs microseconds on a per-call path)."""
    members = getattr(obj, "__dict__", None)
    if members is None:
        return getattr(obj, name, None)
    if name in members:
        return members[name]
    modules = members.get("_modules")
    if modules is not None and name in modules:
        return modules[name]
    return getattr(obj, name, None) if hasattr(type(obj), name) else None


def has_dropout(cell: Any) -> bool:
    """Whether ``cell`` or a cell it wraps or stacks has a nonzero dropout rate, a mask drawn
    and not yet reset, or masks of its own (a cell that overrides the reset methods)."""
    if isinstance(cell, DropoutRNNCell) and (
        type(cell).reset_dropout_mask is not DropoutRNNCell.reset_dropout_mask  # its own masks
        or type(cell).reset_recurrent_dropout_mask
        is not DropoutRNNCell.reset_recurrent_dropout_mask
        or cell.dropout > 0
        or cell.recurrent_dropout > 0
        or cell.__dict__.get("_dropout_mask") is not None
        or cell.__dict__.get("_recurrent_dropout_mask") is not None
    ):
        return True
    cells = _member(cell, "cells")
    if cells and any(has_dropout(inner) for inner in cells):
        return True
    inner = _member(cell, "cell")
    return inner is not None and inner is not cell and has_dropout(inner)


def check_rate(rate: Any, argument: str, owner: str) -> float:
    """A dropout rate in ``[0, 1)`` as a float, else ``ValueError`` naming ``owner``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"{owner}: {argument} must be a float in [0, 1), received {argument}={rate!r}"
        )
    return float(rate)


def reset_dropout_masks(cell: Any) -> None:
    """Clear the cached dropout masks of ``cell`` and of any cells it wraps or stacks."""
    if isinstance(cell, DropoutRNNCell):
        cell.reset_dropout_mask()
        cell.reset_recurrent_dropout_mask()
    for inner in _member(cell, "cells") or ():
        reset_dropout_masks(inner)
    inner = _member(cell, "cell")
    if inner is not None and inner is not cell:
        reset_dropout_masks(inner)


# ------------------------------------------------------------------ the cell protocol
class StateSpec:
    """The shape of one state without the batch axis (a leaf in a state structure)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(d) for d in shape)

    def __repr__(self) -> str:
        return f"StateSpec({self.shape})"


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _as_shape(x: Any) -> tuple[int, ...] | None:
    """``x`` as a shape when it is one (int, torch.Size, TensorShape-like), else None."""
    if _is_int(x):
        return (int(x),)
    if isinstance(x, torch.Size):
        return tuple(x)
    if hasattr(x, "as_list") and callable(x.as_list):
        return tuple(x.as_list())
    return None


def _inner_spec(x: Any, owner: str) -> Any:
    shape = _as_shape(x)
    if shape is not None:
        return StateSpec(shape)
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields") and all(_is_int(d) for d in x):
        return StateSpec(tuple(x))  # a tuple of ints inside a structure is one state's shape
    if isinstance(x, dict):
        return {k: _inner_spec(v, owner) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        items = [_inner_spec(v, owner) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
    raise ValueError(
        f"{owner}: the cell's state_size must be an int, a shape or a list/tuple/dict of them, "
        f"received an entry {x!r}"
    )


def state_spec(cell: Any, owner: str = "RNN") -> Any:
    """The canonical state structure of ``cell`` with :class:`StateSpec` leaves.

    An int or a shape gives ``[spec]``; a list, tuple or namedtuple gives a list (one entry
    per state); a dict stays a dict; a :class:`CellStack` gives one entry per cell.
    """
    if isinstance(cell, CellStack):
        return [state_spec(c, owner) for c in cell.cells]
    size = getattr(cell, "state_size", None)
    if size is None:
        raise ValueError(
            f"{owner}: the cell {type(cell).__name__} must define state_size (an int, a shape "
            "or a list of them), received state_size=None"
        )
    if _as_shape(size) is not None:
        return [StateSpec(_as_shape(size))]
    if isinstance(size, dict):
        return {k: _inner_spec(v, owner) for k, v in size.items()}
    if isinstance(size, (list, tuple)):
        return [_inner_spec(v, owner) for v in size]
    raise ValueError(
        f"{owner}: the cell's state_size must be an int, a shape or a list of them, "
        f"received {size!r}"
    )


def _signature_names(fn: Any) -> tuple[frozenset[str], bool] | None:
    """The parameter names of ``fn`` and whether it takes ``**kwargs`` (None when it has no
    signature)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return frozenset(params), var_keyword


# A plain dict rather than functools.lru_cache: torch.compile traces a dict lookup, and warns
# at every lru_cache-wrapped call it meets.
_SIGNATURES: dict[Any, tuple[frozenset[str], bool] | None] = {}


def _cached_signature_names(fn: Any) -> tuple[frozenset[str], bool] | None:
    if fn not in _SIGNATURES:
        _SIGNATURES[fn] = _signature_names(fn)
    return _SIGNATURES[fn]


def _parameters(fn: Any) -> tuple[frozenset[str], bool] | None:
    """:func:`_signature_names`, cached per plain function (a bound method is looked up through
    its function: this runs at every layer call, and ``inspect.signature`` is slow)."""
    target = fn.__func__ if inspect.ismethod(fn) else fn
    if inspect.isfunction(target):
        return _cached_signature_names(target)
    return _signature_names(fn)


def accepts_argument(fn: Any, argument: str) -> bool:
    """Whether ``fn`` takes a keyword argument named ``argument`` (by name or ``**kwargs``)."""
    found = _parameters(fn)
    return found is not None and (argument in found[0] or found[1])


def check_cell(cell: Any, owner: str, argument: str = "cell") -> None:
    if not callable(getattr(cell, "call", None)):
        raise ValueError(
            f"{owner}: {argument} must have a call(inputs, states) method, received "
            f"{type(cell).__name__}"
        )
    if getattr(cell, "state_size", None) is None:
        raise ValueError(
            f"{owner}: {argument} must have a state_size attribute (an int, a shape or a list "
            f"of them, one per state), received {type(cell).__name__} without one"
        )


def cell_output_shape(cell: Any) -> tuple[int, ...]:
    """The per-sample output shape of ``cell``: ``output_size``, else its first state's."""
    size = getattr(cell, "output_size", None)
    if size is not None and _as_shape(size) is not None:
        return _as_shape(size)
    if isinstance(size, (list, tuple)) and size and all(_is_int(d) for d in size):
        return tuple(int(d) for d in size)
    return tree.flatten(state_spec(cell))[0].shape


def cell_initial_state(cell: Any, batch_size: int, dtype: torch.dtype, inputs: Any = None) -> Any:
    """``cell.get_initial_state`` called in whichever form it has; None when it has none."""
    fn = getattr(cell, "get_initial_state", None)
    if fn is None:
        return None
    kwargs: dict[str, Any] = {}
    found = _parameters(fn)
    if found is not None and "inputs" in found[0]:
        kwargs["inputs"] = inputs
    if accepts_argument(fn, "batch_size"):
        kwargs["batch_size"] = batch_size
    if accepts_argument(fn, "dtype"):
        kwargs["dtype"] = dtype
    return fn(**kwargs)
