"""A pytest plugin for ``compare_suites.py``: per test (setup, call and teardown together) the
wall clock, the process CPU time and the main thread's CPU time, written as JSON to the file
named by ``$SUITE_TIMING_OUT`` when the session ends. Skipped tests are left out."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

_TIMES: dict[str, list[float]] = {}
_SKIPPED: set[str] = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Iterator[None]:
    wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
    yield
    _TIMES[item.nodeid] = [
        time.perf_counter() - wall,
        time.process_time() - cpu,
        time.thread_time() - thread,
    ]


def pytest_runtest_logreport(report: Any) -> None:
    if report.skipped:
        _SKIPPED.add(report.nodeid)


def pytest_sessionfinish(session: Any) -> None:
    kept = {k: v for k, v in _TIMES.items() if k not in _SKIPPED}
    with open(os.environ["SUITE_TIMING_OUT"], "w", encoding="utf-8") as out:
        json.dump(kept, out)
