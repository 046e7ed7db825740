"""How a sequence is run: the generic time loop, the fused and manual-backward kernels, the choice.

Nothing here knows a layer: a built-in cell describes itself with a
:class:`~rnnkit.kernels.spec.CellSpec`, the layer states its
:class:`~rnnkit.kernels.spec.KernelRequest`, :func:`~rnnkit.kernels.dispatch.choose` returns a
:class:`~rnnkit.kernels.spec.KernelPlan` and :func:`~rnnkit.kernels.run.run` executes it on
:mod:`rnnkit.kernels.fused` (``torch._VF``: cuDNN / oneDNN) or
:mod:`rnnkit.kernels.manual_backward` (a per-step kernel with a hand-written backward, for what
the fused kernels cannot express). :func:`rnnkit.kernels.loop.run_loop` steps any cell over
time (masks, ``go_backwards``, nested structures) and
:func:`rnnkit.kernels.loop.run_projected_loop` is its lean form for the built-in cells;
:mod:`rnnkit.kernels.compiled_loop` is the generic loop compiled with ``torch.compile``
(opt-in: ``RNN(cell, compile_loop=True)``).
"""

from rnnkit.kernels.dispatch import choose as choose
from rnnkit.kernels.dispatch import choose_bidirectional as choose_bidirectional
from rnnkit.kernels.loop import run_loop as run_loop
from rnnkit.kernels.loop import run_projected_loop as run_projected_loop
from rnnkit.kernels.run import run as run
from rnnkit.kernels.spec import CellSpec as CellSpec
from rnnkit.kernels.spec import KernelChoice as KernelChoice
from rnnkit.kernels.spec import KernelPlan as KernelPlan
from rnnkit.kernels.spec import KernelRequest as KernelRequest
