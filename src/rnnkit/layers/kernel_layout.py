"""A recurrent cell's kernels stored column-major, kept between calls that do not record.

The fused kernels take the Keras-layout ``kernel (H_in, G u)`` and ``recurrent_kernel
(u, G u)`` (``G``: 4 gates for LSTM, 3 for GRU, 1 for SimpleRNN) and hand ``torch._VF`` their
transposes (:mod:`rnnkit.kernels.weights`). The transposes of row-major parameters are strided
views, which oneDNN gathers into its own layout at every call: on the 2-core CPU, a one-step
call of ``LSTM(64)`` on 28 features runs ``_VF.lstm`` in about 90 us with strided views and
about 63 us with contiguous ones. :class:`ColumnMajorKernels` keeps copies of the two kernels
with the same Keras shapes and values but column-major memory, so that the kernels' transposes
are contiguous; the layout map and the kernel call stay as they are.

What is cached: one copy of each kernel, made under ``torch.no_grad()``.
What invalidates it: a parameter that is another object, or whose version counter
(``param._version``, bumped by every in-place write: optimizer steps, ``set_weights``,
``load_state_dict``, ``copy_`` under ``torch.no_grad()``, ``torch.nn.init``) or data pointer
(``param.data = ...``, ``.to()``, ``.double()``) changed since the copy. In-place writes through
``param.data`` (``p.data.mul_(2)``) escape both, as they escape autograd: PyTorch gives
``.data`` a version counter of its own. They are seen at the next write that bumps the
version; write weights through ``set_weights`` or under ``torch.no_grad()`` instead.

Used only while autograd does not record a path to the kernels (``torch.no_grad()``,
``torch.inference_mode()``, frozen weights): a kept copy cannot carry the graph back to the
parameters, so a recording call gets the parameters themselves.

>>> import torch
>>> kernel, recurrent = torch.randn(3, 8), torch.randn(2, 8)
>>> k, r = ColumnMajorKernels().get(kernel, recurrent)
>>> torch.equal(k, kernel), k.t().is_contiguous()
(True, True)
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def _plain(weight: Tensor) -> bool:
    return type(weight) in (torch.Tensor, torch.nn.Parameter) and not (
        torch._C._functorch.is_functorch_wrapped_tensor(weight)
    )


def _stamp(weight: Tensor) -> tuple[int, int]:
    return weight._version, weight.data_ptr()


class ColumnMajorKernels:
    """Column-major copies of a cell's ``(kernel, recurrent_kernel)`` (module docstring)."""

    def __init__(self) -> None:
        self._sources: tuple[Tensor, ...] = ()
        self._stamps: tuple[tuple[int, int], ...] = ()
        self._copies: tuple[Tensor, Tensor] | None = None

    def get(self, kernel: Tensor, recurrent_kernel: Tensor) -> tuple[Tensor, Tensor]:
        """The copies, made again when either parameter changed; the parameters themselves
        while autograd records a path to them, for inference tensors (made under
        ``torch.inference_mode()``, they have no version counter), and for tensors with no
        memory of their own to stamp (fake tensors of a symbolic call, functorch wrappers of
        ``vmap``/``torch.func``, other subclasses)."""
        if (
            (torch.is_grad_enabled() and (kernel.requires_grad or recurrent_kernel.requires_grad))
            or kernel.is_inference()
            or recurrent_kernel.is_inference()
            or not (_plain(kernel) and _plain(recurrent_kernel))
        ):
            return kernel, recurrent_kernel
        stamps = (_stamp(kernel), _stamp(recurrent_kernel))
        sources = self._sources
        if (
            self._copies is not None
            and sources[0] is kernel
            and sources[1] is recurrent_kernel
            and self._stamps == stamps
        ):
            return self._copies
        # Normal tensors even inside inference_mode: a later call may record with frozen weights.
        with torch.inference_mode(False), torch.no_grad():
            copies = (kernel.t().contiguous().t(), recurrent_kernel.t().contiguous().t())
        self._sources, self._stamps, self._copies = (kernel, recurrent_kernel), stamps, copies
        return copies
