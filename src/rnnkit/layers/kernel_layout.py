"""The memory layout of a built-in cell's kernels: Keras shapes, column-major storage.

Keras gives a cell ``kernel (H_in, G u)`` and ``recurrent_kernel (u, G u)`` (``G``: 4 gates
for LSTM, 3 for GRU, 1 for SimpleRNN); that is the shape users see, save and load. The fused
kernels hand ``torch._VF`` the transposes ``(G u, H_in)`` and ``(G u, u)``
(:mod:`rnnkit.kernels.weights`), and oneDNN gathers a strided transpose into its own layout at
every call, forward and backward. So ``SimpleRNNCell`` and ``LSTMCell`` store both kernels
column-major: the same shape and values, with strides ``(1, H_in)`` and ``(1, u)``, so that
their transposes are plain contiguous tensors, as ``nn.LSTM``'s ``weight_ih_l0`` is.
``GRUCell`` keeps them row-major: on a CPU a GRU runs the native loop of the manual-backward
kernel (:mod:`rnnkit.kernels.native`), which takes the kernels row-major (a one-step
streaming call: about 104 us row-major, 121 us column-major), and the fused GRU reorders the
gate blocks into new tensors anyway. (An LSTM that runs the native loop, under recurrent
dropout, another activation or a mask with holes, copies its recurrent kernel into row-major
order at each call: ``(u, 4 u)`` values, small against such a call.)

Measured on the 2-core CPU (``LSTM(64)``, 28 features): a one-step no-grad call runs
``_VF.lstm`` in about 63 us against about 90 us with row-major kernels; a training step of the
guide's model (batch 64, 28 steps) about 0.2 ms less per step (one thread, CPU time).

The layout is kept by everything that writes values into the parameters in place
(``set_weights``, ``load_state_dict``, optimizer steps, ``copy_``) and by everything that makes
new ones from them (``.to()``, ``.double()``, ``copy.deepcopy``, ``torch.save``), which
preserve strides. A tensor assigned through ``param.data = ...`` brings its own layout: the
results are the same, only the fused call is slower. A gradient comes back in the parameter's
layout (torch's ``AccumulateGrad`` makes it so). The layout is not part of the shape:
``kernel.is_contiguous()`` is False, so ``kernel.view(...)`` needs ``kernel.reshape(...)``.

>>> import torch
>>> kernel = torch.nn.Parameter(torch.randn(3, 8))
>>> store_column_major(kernel)
>>> kernel.shape, kernel.stride(), kernel.t().is_contiguous()
(torch.Size([3, 8]), (1, 3), True)
"""

from __future__ import annotations

import torch


def store_column_major(weight: torch.nn.Parameter) -> None:
    """Give ``weight`` (2-D) column-major storage in place: the same Parameter object, shape
    and values (for a build, before anything refers to its memory)."""
    with torch.no_grad():
        weight.data = weight.data.t().contiguous().t()
