"""A fork server that runs one loader call per child process, under a memory limit and a timeout.

Started once per test module (``python sandbox.py``): it imports torch and rnnkit once, then
reads one JSON request per line on stdin, ``{"case": name, "folder": path, "memory_mb": n,
"timeout_s": s}``, forks a child that sets ``RLIMIT_AS`` to its current size plus ``memory_mb``
and an alarm of ``timeout_s``, runs :func:`crafted.run_case`, and writes one JSON line back:
the exception's type, module of the raising frame and message (or ``"loaded"``), the wall
and CPU time, the child's peak RSS growth and how it ended.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crafted  # noqa: E402
import torch  # noqa: E402

import rnnkit  # noqa: E402, F401

torch.set_num_threads(1)


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _child(request: dict, write_fd: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + request["memory_mb"] * 2**20,) * 2)
    signal.alarm(int(request["timeout_s"]))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result: dict = {}
    try:
        crafted.run_case(request["case"], request["folder"])
        result = {"outcome": "loaded"}
    except BaseException as e:  # report whatever happened; the test judges it
        frames = traceback.extract_tb(e.__traceback__)
        result = {
            "outcome": "raised",
            "type": type(e).__name__,
            "raised_in": frames[-1].filename if frames else "",
            "message": str(e)[:4000],
        }
    result["rss_growth_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    os.write(write_fd, json.dumps(result).encode())
    os._exit(0)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        read_fd, write_fd = os.pipe()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(request, write_fd)
        os.close(write_fd)
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        os.close(read_fd)
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - start
        if chunks:
            result = json.loads(b"".join(chunks))
        else:
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            result = {"outcome": "died", "signal": sig, "status": status}
        result["seconds"] = elapsed
        result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
