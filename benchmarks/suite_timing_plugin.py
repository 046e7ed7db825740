"""A pytest plugin for ``compare_suites.py``: per test (setup, call and teardown together) the
wall clock, the process CPU time, the main thread's CPU time and the time spent in full
(generation 2) garbage collections, written as JSON to the file named by
``$SUITE_TIMING_OUT`` when the session ends. Skipped tests are left out.

A full collection walks every object the process holds (torch, Keras and rnnkit imported:
about 0.15 s here). It runs when enough objects have survived the younger collections, so
which test pays for it depends on everything allocated before, imports included.

``$SUITE_TIMING_IMPORT`` (comma-separated module names, optional) is imported when the plugin
loads, before any test: a module that one tree imports with rnnkit and another only at first
use (``torch._dynamo``, which entering torch's fake-tensor mode imports: about 0.7 s) then
costs no test anything in either tree."""

from __future__ import annotations

import gc
import importlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

_TIMES: dict[str, list[float]] = {}
_SKIPPED: set[str] = set()
_FULL_GC = [0.0, 0.0]  # seconds spent in full collections so far; the current one's start


def _time_full_collections(phase: str, info: dict[str, Any]) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _FULL_GC[1] = time.perf_counter()
    else:
        _FULL_GC[0] += time.perf_counter() - _FULL_GC[1]


gc.callbacks.append(_time_full_collections)
for _name in filter(None, os.environ.get("SUITE_TIMING_IMPORT", "").split(",")):
    importlib.import_module(_name.strip())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Iterator[None]:
    wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
    full_gc = _FULL_GC[0]
    yield
    _TIMES[item.nodeid] = [
        time.perf_counter() - wall,
        time.process_time() - cpu,
        time.thread_time() - thread,
        _FULL_GC[0] - full_gc,
    ]


def pytest_runtest_logreport(report: Any) -> None:
    if report.skipped:
        _SKIPPED.add(report.nodeid)


def pytest_sessionfinish(session: Any) -> None:
    kept = {k: v for k, v in _TIMES.items() if k not in _SKIPPED}
    with open(os.environ["SUITE_TIMING_OUT"], "w", encoding="utf-8") as out:
        json.dump(kept, out)
