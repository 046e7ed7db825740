"""How a sequence is run: the generic time loop, the fused and no-cliff kernels, the choice.

:func:`rnnkit.kernels.loop.run_loop` steps any cell over time (masks, ``go_backwards``,
nested structures); :func:`rnnkit.kernels.loop.run_projected_loop` is its lean form for the
built-in cells; :mod:`rnnkit.kernels.fused` runs ``torch._VF`` (cuDNN / oneDNN) kernels and
:mod:`rnnkit.kernels.noclift` a custom autograd Function for what those cannot express;
:mod:`rnnkit.kernels.compiled_loop` is the generic loop compiled with ``torch.compile``
(opt-in: ``RNN(cell, compile=True)``); :func:`rnnkit.kernels.dispatch.select` decides which
kernel runs a call.
"""

from rnnkit.kernels.dispatch import KernelChoice as KernelChoice
from rnnkit.kernels.dispatch import select as select
from rnnkit.kernels.loop import run_loop as run_loop
from rnnkit.kernels.loop import run_projected_loop as run_projected_loop
