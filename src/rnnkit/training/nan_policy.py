"""What training does with NaN and infinite numbers: ``compile(nan_policy=...)``.

- ``"raise"`` (the default): a training batch whose inputs (``x``, ``y`` or
  ``sample_weight``) hold a NaN or an infinity raises ``ValueError`` naming the array, the
  epoch and the batch, before the batch is used; a non-finite loss raises
  ``FloatingPointError`` naming the epoch and the batch, before the optimizer step, so the
  weights stay those from after the last good batch.
- ``"warn"``: the same events issue a ``RuntimeWarning`` and stop training (like
  ``TerminateOnNaN``, but before the offending batch updates the weights); ``fit`` returns.
- ``"ignore"``: no checks (Keras' behaviour): non-finite values are trained on.

Epochs and batches are numbered from 1, as in the progress bar.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import optree
import torch

POLICIES = ("raise", "warn", "ignore")


def check_policy(policy: Any) -> str:
    """``policy`` if it is one of :data:`POLICIES`, else ``ValueError``."""
    if policy not in POLICIES:
        raise ValueError(
            f'compile: nan_policy must be "raise", "warn" or "ignore", received {policy!r}'
        )
    return policy


_ALL = np.logical_and.reduce  # ndarray.all() without its Python wrapper (every step)


def _is_finite(a: Any) -> bool:
    """No NaN or infinity in ``a``. Host arrays (numpy, CPU tensors) are checked by numpy,
    which reads nothing back from a device; a tensor on another device is checked there
    (one read-back)."""
    if isinstance(a, torch.Tensor):
        if not a.is_floating_point():
            return True
        if not a.is_cpu:
            return bool(torch.isfinite(a).all())
        if a.requires_grad:
            a = a.detach()
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.to(torch.float32)
        a = a.numpy()
    if isinstance(a, np.ndarray) and a.dtype.kind in "fc":
        if a.dtype.kind == "f":
            # The sum of squares is NaN or infinite when any value is (squares are >= 0, so
            # nothing cancels). One pass that writes nothing: in a training step it measured
            # about 2% of the step less than np.isfinite's (it also brings the batch into
            # the cache for the model). A sum that overflows from finite values (numpy's
            # warning about it silenced) is checked value by value below.
            flat = a.reshape(-1)
            with np.errstate(over="ignore", invalid="ignore"):
                squares = flat @ flat  # np.dot, less its Python dispatcher
            if math.isfinite(squares):
                return True
        return bool(_ALL(np.isfinite(a), axis=None))
    return True


def _count(a: Any) -> tuple[int, int]:
    t = torch.as_tensor(a)
    return int(torch.isnan(t).sum()), int(torch.isinf(t).sum())


def _path_name(label: str, path: tuple[Any, ...]) -> str:
    return label + "".join(f"[{p!r}]" for p in path)


def nonfinite_inputs(batch: tuple[Any, Any, Any], input_names: list[str] | None) -> list[str]:
    """Descriptions of the arrays of a batch ``(x, y, sample_weight)`` that hold NaN or
    infinite values, e.g. ``"x[1] (input 'tokens') holds 3 NaN and 0 infinite values"``."""
    found = []
    for label, part in zip(("x", "y", "sample_weight"), batch):
        paths, leaves, _ = optree.tree_flatten_with_path(part, none_is_leaf=True)
        for i, (path, leaf) in enumerate(zip(paths, leaves)):
            if leaf is None or _is_finite(leaf):
                continue
            name = _path_name(label, path)
            if label == "x" and input_names and len(input_names) == len(leaves):
                name += f" (input {input_names[i]!r})"
            nan, inf = _count(leaf)
            found.append(f"{name} holds {nan} NaN and {inf} infinite values")
    return found


def check_inputs(model: Any, batch: tuple[Any, Any, Any], input_names: Any) -> bool:
    """Apply the model's nan policy to a training batch; False when it stopped training.
    ``input_names``: the names, or a function giving them (asked only for a bad batch)."""
    leaves: Any = batch  # the common batch, tensors and None: no walk
    for part in batch:
        if part is not None and not isinstance(part, torch.Tensor):
            leaves = optree.tree_leaves(batch)  # none_is_leaf: no
            break
    for leaf in leaves:  # loops rather than all(generator): fewer Python calls per step
        if leaf is not None and not _is_finite(leaf):
            break
    else:
        return True
    found = nonfinite_inputs(batch, input_names() if callable(input_names) else input_names)
    if not found:
        return True
    _report(
        model,
        ValueError,
        f"{'; '.join(found)}. rnnkit does not train on non-finite inputs: clean the data (e.g. "
        'np.nan_to_num) or compile(nan_policy="ignore") to train on them',
    )
    return False


def check_loss(model: Any, loss: torch.Tensor | None) -> bool:
    """Apply the model's nan policy to a non-finite loss (``None``: another rank's); returns
    False (the step must be skipped) unless the policy raised."""
    local = None if loss is None else float(loss.detach())
    value = f"{local}" if local is not None and not math.isfinite(local) else "not finite"
    if value == "not finite":
        value += " on another rank"
    _report(
        model,
        FloatingPointError,
        f"the loss is {value}; the weights were not updated by this batch. Lower the learning "
        "rate, clip the gradients (e.g. clipnorm=1.0) or check the data; compile(nan_policy="
        '"ignore") trains on',
    )
    return False


def report_bad_step(model: Any, label: str, loss: float, undone: int) -> None:
    """Apply the model's nan policy to a step found bad by the step guard: the step named
    ``label`` had the non-finite ``loss``; ``undone`` updates (it and the ones after it, run
    before the host read the flag) were undone on the device."""
    later = undone - 1
    also = f" nor by the {later} batch(es) run after it before the check" if later > 0 else ""
    _report(
        model,
        FloatingPointError,
        f"the loss is {loss}; the weights were not updated by this batch{also}. Lower the "
        "learning rate, clip the gradients (e.g. clipnorm=1.0) or check the data; "
        'compile(nan_policy="ignore") trains on',
        label,
    )


def _report(model: Any, error: type[Exception], message: str, label: str | None = None) -> None:
    """Raise ``error`` ("raise") or warn and stop training ("warn"), naming the batch."""
    message = f"{label or model.batch_label}: {message}"
    if model.nan_policy == "raise":
        raise error(message)
    warnings.warn(message + "; training stops", RuntimeWarning, stacklevel=5)
    model.stop_training = True
