"""``eager``: ``torch.compiler.disable``, paid for only while something compiles.

``torch.compiler.disable(fn)`` imports ``torch._dynamo`` (about a second on a small CPU), so
applying it to functions at module level made ``import rnnkit`` that much slower for every
program, including the many that never compile; and once applied, every call pays for its
wrapper (it swaps dynamo's frame hook out and back, a few microseconds), compiled or not.
``eager(fn)`` runs ``fn`` as it is unless dynamo is tracing (``torch.compiler.is_compiling()``)
or has its frame hook installed (a compiled function is running and would compile the frames
``fn`` enters); then it runs ``fn`` through ``torch.compiler.disable(fn)``, exactly as if it
had been decorated with it:

* while dynamo traces a caller, the call is a graph break and ``fn`` runs eagerly;
* when it runs eagerly inside a compiled program, dynamo compiles none of its frames.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def eager(fn: F) -> F:
    """``fn``, never compiled (see the module docstring)."""
    disabled: list[Callable[..., Any]] = []

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not torch.compiler.is_compiling() and _frame_hook() is None:
            return fn(*args, **kwargs)
        if not disabled:
            disabled.append(torch.compiler.disable(fn))
        return disabled[0](*args, **kwargs)

    if "torch._dynamo" in sys.modules:  # already imported: the wrapper is ready from the start
        disabled.append(torch.compiler.disable(fn))
    return call  # type: ignore[return-value]


# The frame-evaluation hook dynamo installs while a compiled function runs (None otherwise);
# a C function of torch's own extension, which exists whether or not dynamo was imported.
_frame_hook: Callable[[], Any] = torch._C._dynamo.eval_frame.get_eval_frame_callback
