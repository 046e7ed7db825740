"""How a sequence is run: the generic time loop and the kernel choice.

:func:`rnnkit.kernels.loop.run_loop` steps any cell over time (masks, ``go_backwards``,
nested structures); :func:`rnnkit.kernels.dispatch.select` decides which kernel runs a call.
"""

from rnnkit.kernels.dispatch import KernelChoice as KernelChoice
from rnnkit.kernels.dispatch import select as select
from rnnkit.kernels.loop import run_loop as run_loop
