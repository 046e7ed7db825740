"""Data adapters: turn what ``fit``/``evaluate``/``predict`` receive into batches.

Accepted data:

- arrays: numpy arrays or torch tensors, or lists/tuples/dicts of them (multiple inputs or
  outputs, nested as the model's inputs/outputs). Every array's first axis is the sample axis
  and all must agree. Batches are slices of ``batch_size`` samples (the last may be smaller),
  in a new random order each epoch when ``shuffle`` (``torch.randperm``, so
  ``torch.manual_seed`` makes it reproducible), in order otherwise.
- a ``torch.utils.data.DataLoader`` or any iterable of batches; each batch is ``(x, y)``,
  ``(x, y, sample_weight)`` or ``x`` alone (a list counts as a tuple, as DataLoader's
  ``TensorDataset`` batches are lists). A one-shot iterator (a generator) can be consumed once.
  A Python list of ``(x, y)`` tuples passed as ``x`` without ``y`` is such an iterable.

Batches become tensors on the model's device: float64 numpy arrays as float32 (Keras' floatx).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from rnnkit import tree
from rnnkit.training import rng


def _is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, torch.Tensor)) or hasattr(x, "__array__")


def is_array_data(x: Any) -> bool:
    """True for an array or a (nested) list/tuple/dict whose leaves are arrays (or None)."""
    if x is None:
        return False
    leaves = [v for v in tree.flatten(x) if v is not None]
    return bool(leaves) and all(_is_array(v) and not isinstance(v, (str, bytes)) for v in leaves)


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` from a batch: a 1-, 2- or 3-tuple (or list), or ``x``."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(
        "data: a batch must be x, (x,), (x, y) or (x, y, sample_weight), received a tuple of "
        f"{len(data)} elements"
    )


def _as_array(x: Any) -> Any:
    if x is None or isinstance(x, (np.ndarray, torch.Tensor)):
        return x
    return np.asarray(x)


def num_samples(x: Any, y: Any = None, sample_weight: Any = None) -> int:
    """The common first dimension of every array; ValueError naming the sizes otherwise."""
    if (
        sample_weight is None
        and isinstance(x, torch.Tensor)
        and isinstance(y, torch.Tensor)
        and x.ndim
        and y.ndim
        and x.shape[0] == y.shape[0]
    ):  # the common batch, without the walk below
        return int(x.shape[0])
    sizes: dict[str, set[int]] = {}
    for label, part in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        for leaf in tree.flatten(part):
            if leaf is None:
                continue
            shape = tuple(leaf.shape)
            if not shape:
                raise ValueError(
                    f"{label}: arrays need a sample (first) axis, received a scalar array"
                )
            sizes.setdefault(label, set()).add(int(shape[0]))
    for label, found in sizes.items():
        if len(found) > 1:
            raise ValueError(
                f"{label}: all arrays must have the same number of samples (first dimension), "
                f"received sizes {sorted(found)}"
            )
    distinct = {label: next(iter(found)) for label, found in sizes.items()}
    if len(set(distinct.values())) > 1:
        described = ", ".join(f"{label} has {n} samples" for label, n in distinct.items())
        raise ValueError(
            f"Data cardinality is ambiguous: {described}. Make sure all arrays contain the same "
            "number of samples."
        )
    if not distinct:
        raise ValueError("x: no input data was given")
    return next(iter(distinct.values()))


def _take(structure: Any, index: np.ndarray | slice) -> Any:
    def take(a: Any) -> Any:
        if a is None:
            return None
        if isinstance(a, torch.Tensor) and not isinstance(index, slice):
            return a[torch.as_tensor(index, device=a.device)]
        return a[index]

    return tree.map_structure(take, structure)


def split_validation(
    x: Any, y: Any, sample_weight: Any, validation_split: float
) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any]]:
    """The first ``1 - validation_split`` of the samples for training, the last for validation
    (before any shuffling, as Keras)."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split: must be in [0, 1), received {validation_split}")
    n = num_samples(x, y, sample_weight)
    split_at = int(np.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"validation_split={validation_split} leaves no samples for training or validation "
            f"with {n} samples"
        )
    train = tuple(_take(part, slice(0, split_at)) for part in (x, y, sample_weight))
    val = tuple(_take(part, slice(split_at, n)) for part in (x, y, sample_weight))
    return train, val  # type: ignore[return-value]


class ArrayAdapter:
    """Batches of ``batch_size`` samples from in-memory arrays."""

    def __init__(self, x: Any, y: Any, sample_weight: Any, batch_size: int, shuffle: bool) -> None:
        self.x = tree.map_structure(_as_array, x)
        self.y = tree.map_structure(_as_array, y)
        self.sample_weight = tree.map_structure(_as_array, sample_weight)
        self.size = num_samples(self.x, self.y, self.sample_weight)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.num_batches: int | None = -(-self.size // batch_size)
        self.reiterable = True
        # set by fit under data parallelism: every rank takes rank 0's shuffled order
        self.share_order: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        order = None
        if self.shuffle:
            permutation = torch.randperm(self.size)
            if self.share_order is not None:
                permutation = self.share_order(permutation)
            order = permutation.numpy()
        for start in range(0, self.size, self.batch_size):
            stop = min(start + self.batch_size, self.size)
            index: np.ndarray | slice = (
                order[start:stop] if order is not None else slice(start, stop)
            )
            yield tuple(_take(part, index) for part in (self.x, self.y, self.sample_weight))


class IterableAdapter:
    """Batches from a DataLoader or any iterable of batches."""

    def __init__(self, data: Any) -> None:
        self.data = data
        try:
            self.num_batches: int | None = len(data)
        except TypeError:
            self.num_batches = None
        self.reiterable = iter(data) is not data

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        for batch in self.data:
            yield unpack_x_y_sample_weight(batch)


def is_list_of_batches(x: Any, y: Any, caller: str) -> bool:
    """A list of ``(x, y)`` tuples given without ``y`` to fit/evaluate is a list of batches
    (several inputs are given as a list of arrays, not of tuples)."""
    return (
        caller != "predict"
        and y is None
        and isinstance(x, list)
        and bool(x)
        and all(isinstance(b, tuple) and len(b) in (2, 3) for b in x)
    )


def get_adapter(
    x: Any, y: Any, sample_weight: Any, batch_size: int | None, shuffle: bool, caller: str
) -> ArrayAdapter | IterableAdapter:
    """The adapter for ``x`` (arrays or an iterable of batches); see the module docstring."""
    if x is None:
        raise ValueError(f"{caller}: x is required")
    if is_list_of_batches(x, y, caller):
        return IterableAdapter(x)
    if is_array_data(x):
        if batch_size is None:
            batch_size = 32
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(
                f"{caller}: batch_size must be a positive int, received {batch_size!r}"
            )
        return ArrayAdapter(x, y, sample_weight, batch_size, bool(shuffle))
    if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
        raise TypeError(
            f"{caller}: x must be arrays (numpy/torch, or lists/dicts of them), a DataLoader or "
            f"an iterable of batches, received {type(x).__name__}"
        )
    if y is not None or sample_weight is not None:
        raise ValueError(
            f"{caller}: when x is a DataLoader or an iterable of batches, pass y inside the "
            f"batches, not as y= (received y of type {type(y).__name__})"
        )
    return IterableAdapter(x)


class EpochIterator:
    """Per-epoch step iteration with Keras' ``steps_per_epoch`` semantics.

    Without ``steps_per_epoch`` each epoch is one pass over the data. With it, each epoch
    takes that many batches, continuing where the previous epoch stopped; when data of known
    length runs out the epoch ends early and the next epoch starts a new pass. When a one-shot
    iterable runs out, a warning is issued and training stops (``exhausted`` becomes True).

    :meth:`state` and :meth:`restore` let an interrupted fit continue a pass over the data
    exactly: each pass records the random generators' states from just before it began (the
    shuffled order, a DataLoader's sampler and its workers' seeds are drawn from them), and
    :meth:`restore` replays them and skips the batches the pass had already given.
    """

    def __init__(
        self,
        adapter: ArrayAdapter | IterableAdapter,
        steps: int | None,
        record_rng: bool = True,
    ) -> None:
        """``record_rng=False``: the passes cannot be resumed (``evaluate``, ``predict``), so
        the generators' states are not recorded."""
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ValueError(f"steps_per_epoch: must be a positive int, received {steps!r}")
        self.adapter = adapter
        self.steps = steps
        self._record_rng = record_rng
        self._iterator: Iterator[Any] | None = None
        self._used_once = False
        self.exhausted = False
        self._pass_rng: dict[str, Any] | None = None  # generators' states as the pass began
        self._pass_batches = 0  # batches taken from the current pass
        self._resumed = False

    @property
    def num_steps(self) -> int | None:
        return self.steps or self.adapter.num_batches

    def _fresh(self) -> Iterator[Any] | None:
        if self._used_once and not self.adapter.reiterable:
            return None
        self._used_once = True
        return self._begin_pass()

    def _begin_pass(self) -> Iterator[Any]:
        self._pass_rng = rng.get_state() if self._record_rng else None
        self._pass_batches = 0
        return iter(self.adapter)

    def epoch(self, first_step: int = 0) -> Iterator[tuple[int, Any]]:
        """``(step, batch)`` pairs of one epoch; ``first_step`` > 0 resumes an epoch (after
        :meth:`restore`), numbering its remaining steps from there."""
        if self._resumed:
            self._resumed = False
        elif self.steps is None or self._iterator is None:
            self._iterator = self._fresh()
        if self._iterator is None:
            self._warn_exhausted()
            return
        step, restarted = first_step, False
        while self.steps is None or step < self.steps:
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if step == 0 and not restarted and self.steps and self.adapter.reiterable:
                    restarted = True
                    self._iterator = self._begin_pass()  # the last epoch ended the pass
                    continue
                if self.steps is not None and not self.adapter.reiterable:
                    self._warn_exhausted()
                return
            self._pass_batches += 1
            yield step, batch
            step += 1

    def state(self) -> dict[str, Any] | None:
        """Where the iteration stands: None between passes, else the generators' states from
        just before the current pass began and the number of batches taken from it."""
        if self._iterator is None:
            return None
        return {"rng": self._pass_rng, "batches": self._pass_batches}

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue the pass described by ``state`` (from :meth:`state` on an iterator over the
        same data): the pass is started again under its recorded generator states and its
        first ``state["batches"]`` batches are skipped; the generators are then put back as
        they were. The next :meth:`epoch` continues this pass."""
        if state is None:
            return
        current = rng.get_state()
        rng.set_state(state["rng"])
        self._used_once = True
        self._iterator = self._begin_pass()
        for taken in range(state["batches"]):
            try:
                next(self._iterator)
            except StopIteration:
                raise ValueError(
                    f"cannot resume: the data gave {taken} batches where the interrupted run "
                    f"had taken {state['batches']}; resume with the same data and batch_size"
                ) from None
        self._pass_batches = state["batches"]
        rng.set_state(current)
        self._resumed = True

    def _warn_exhausted(self) -> None:
        self.exhausted = True
        warnings.warn(
            "Your input ran out of data; interrupting training. Make sure that your iterable can "
            "generate at least steps_per_epoch * epochs batches (a generator can only be "
            "iterated once; pass a DataLoader or a list of batches to train several epochs).",
            UserWarning,
            stacklevel=4,
        )


def to_device(structure: Any, device: torch.device) -> Any:
    """numpy arrays (float64 as float32) and tensors, moved to ``device``; None stays None."""
    if type(structure) is tuple:  # the common batch: tensors already there, returned as is
        for a in structure:
            if a is not None and not (isinstance(a, torch.Tensor) and a.device == device):
                break
        else:
            return structure

    def convert(a: Any) -> Any:
        if a is None:
            return None
        if not isinstance(a, torch.Tensor):
            a = torch.as_tensor(np.asarray(a))
            if a.dtype == torch.float64:
                a = a.to(torch.float32)
        if a.device != device:
            a = a.to(device, non_blocking=True)
        return a

    return tree.map_structure(convert, structure)
