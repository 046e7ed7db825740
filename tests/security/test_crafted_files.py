"""Every crafted file in ``crafted.CASES`` is refused cleanly, in a sandboxed child process.

For each case the file is built in a fresh folder, then loaded in a child of the fork server
(``sandbox.py``) with an address-space limit and a timeout. The test asserts a ``ValueError``
raised by rnnkit's own code whose message names the file (its folder) and matches the cause,
no sentinel file (what code execution would create), nothing written outside the folder's
own files, a memory growth under the limit, and a time under a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crafted  # noqa: E402

MEMORY_MB = 400  # the child's address space may grow by this much
TIMEOUT_S = 20  # the child is killed after this (the assertion below is stricter)
MAX_SECONDS = 5.0


@pytest.fixture(scope="module")
def sandbox():
    server = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), "sandbox.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )

    def run(case: str, folder: Path) -> dict:
        request = {"case": case, "folder": str(folder), "memory_mb": MEMORY_MB}
        server.stdin.write(json.dumps({**request, "timeout_s": TIMEOUT_S}) + "\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())

    yield run
    server.stdin.close()
    server.wait(timeout=30)
    server.stdout.close()


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_the_catalogue_is_large_enough():
    assert len(crafted.CASES) >= 60


@pytest.mark.parametrize("case", sorted(crafted.CASES))
def test_crafted_file_is_refused(case: str, sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    crafted.build_case(case, folder)
    before = _files(tmp_path)
    result = sandbox(case, folder)
    assert result["outcome"] == "raised", result
    assert result["type"] == "ValueError", result
    assert f"{os.sep}rnnkit{os.sep}" in result["raised_in"], result  # rnnkit's own refusal
    message = result["message"]
    assert str(folder) in message, message  # names the file
    assert re.search(crafted.CASES[case].expect, message, re.S), message  # names the cause
    assert "register" not in message.lower(), message  # never suggests registering a name
    assert crafted.SECRET.decode() not in message
    assert _files(tmp_path) == before, "the load wrote files"  # no sentinel, no debug dir
    assert not list(tmp_path.rglob("SENTINEL*"))
    assert result["rss_growth_kb"] < MEMORY_MB * 1024, result
    # CPU time, not wall time: a refusal costs little whatever else loads the machine (the
    # child's alarm at TIMEOUT_S still catches a hang in wall time)
    assert result["cpu_seconds"] < MAX_SECONDS, result
