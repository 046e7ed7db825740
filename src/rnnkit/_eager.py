"""``eager``: ``torch.compiler.disable`` without importing the compiler at ``import rnnkit``.

``torch.compiler.disable(fn)`` imports ``torch._dynamo`` (about a second on a small CPU), so
applying it to functions at module level made ``import rnnkit`` that much slower for every
program, including the many that never compile. Nothing can be compiling before
``torch._dynamo`` is imported (``torch.compile`` and ``torch.export`` import it), so until then
the wrapped function runs as it is; from then on it runs through ``torch.compiler.disable``
exactly as if it had been decorated with it:

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
        if not disabled:
            if not torch.compiler.is_compiling() and "torch._dynamo" not in sys.modules:
                return fn(*args, **kwargs)
            disabled.append(torch.compiler.disable(fn))
        return disabled[0](*args, **kwargs)

    if "torch._dynamo" in sys.modules:  # already imported: the wrapper is ready from the start
        disabled.append(torch.compiler.disable(fn))
    return call  # type: ignore[return-value]
