"""Keras-style progress output for ``fit``/``evaluate``/``predict``.

``verbose=1``: a live ``rich`` progress bar per epoch, ending as
``938/938 ━━━━━━━━━━ 7s 5ms/step - loss: 0.9965 - accuracy: 0.6845``.
``verbose=2``: one line per epoch, ``938/938 - 7s - 5ms/step - loss: 0.9965 - ...``.
``verbose="auto"`` is 1 when standard output is a terminal and 2 otherwise.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Column

REFRESH_SECONDS = 0.05  # as Keras' progress bar: at most 20 redraws a second


def resolve_verbose(verbose: Any, argument: str = "verbose") -> int:
    """``"auto"`` as 1 on a terminal and 2 otherwise; 0, 1 and 2 as themselves."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f'{argument}: expected "auto", 0, 1 or 2, received {verbose!r}')
    return int(verbose)


def format_logs(logs: Mapping[str, Any]) -> str:
    """``loss: 0.1234 - accuracy: 0.5000`` (4 decimals, as Keras)."""
    parts = []
    for key, value in logs.items():
        if isinstance(value, (int, float)):
            parts.append(f"{key}: {value:.4f}")
    return " - ".join(parts)


def _format_time(seconds: float, steps: int) -> str:
    per_step = seconds / max(steps, 1)
    if per_step >= 1:
        unit = f"{per_step:.0f}s/step"
    elif per_step >= 1e-3:
        unit = f"{per_step * 1e3:.0f}ms/step"
    else:
        unit = f"{per_step * 1e6:.0f}us/step"
    return f"{seconds:.0f}s", unit


class ProgressBar:
    """One epoch's (or one evaluation's) progress.

    Args:
        target: the number of steps, or None when unknown.
        verbose: 1 for a live bar, 2 for one final line, 0 for nothing.
    """

    def __init__(self, target: int | None, verbose: int = 1) -> None:
        self.target = target
        self.verbose = verbose
        self.start = time.perf_counter()
        self._shown = float("-inf")  # when the live bar was last redrawn
        self.current = 0
        self._progress: Progress | None = None
        self._task: Any = None
        if verbose == 1:
            console = Console(file=sys.stdout, highlight=False)
            self._progress = Progress(
                MofNCompleteColumn(table_column=Column(no_wrap=True)),
                BarColumn(bar_width=20, table_column=Column(no_wrap=True)),
                TextColumn("{task.fields[timing]}", table_column=Column(no_wrap=True)),
                TextColumn("{task.fields[logs]}", table_column=Column(overflow="fold")),
                console=console,
                transient=False,
                auto_refresh=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=target, timing="", logs="")

    def update(self, current: int, logs: Mapping[str, Any] | None = None, finalize: bool = False):
        """Show ``current`` steps done with the running ``logs``; ``finalize`` ends the bar.

        The live bar redraws at most every :data:`REFRESH_SECONDS`; between redraws the logs
        are not read (reading them copies the metrics from the device).
        """
        self.current = current
        now = time.perf_counter()
        if not finalize and (self._progress is None or now - self._shown < REFRESH_SECONDS):
            return
        self._shown = now
        elapsed = now - self.start
        total, per_step = _format_time(elapsed, current)
        text = format_logs(logs or {})
        if self._progress is not None:
            timing = f"{total} {per_step}" if finalize else f"{total}"
            self._progress.update(
                self._task,
                completed=current,
                total=self.target if self.target is not None else (current if finalize else None),
                timing=timing,
                logs=f"- {text}" if text else "",
            )
            self._progress.refresh()
            if finalize:
                self._progress.stop()
                self._progress = None
        elif self.verbose == 2 and finalize:
            target = self.target if self.target is not None else current
            line = f"{current}/{target} - {total} - {per_step}"
            print(f"{line} - {text}" if text else line, flush=True)

    def close(self) -> None:
        """Stop a live bar without finalising (e.g. after an exception)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
