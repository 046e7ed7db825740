"""Loading time of every model in tests/model_zoo.py: ``rnnkit.saving.load_model`` wall clock.

Each zoo model is saved once to ``.keras``; then the rounds load every file in turn
(interleaved, torch's default threads) and the table prints the median per model and the
total of the medians. Run it with two source trees to compare two versions of the loader:

    .venv/bin/python benchmarks/bench_loading.py --rounds 15
    PYTHONPATH=/path/to/other/src .venv/bin/python benchmarks/bench_loading.py --rounds 15

What is timed: ``load_model(path, custom_objects=...)`` alone (file read, checks, rebuild,
weight copy), not the save.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from model_zoo import ZOO  # noqa: E402

import rnnkit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, build in ZOO.items():
            entry = build()
            path = os.path.join(tmp, f"{name}.keras")
            entry.model.save(path)
            files[name] = (path, entry.custom_objects)
        times: dict[str, list[float]] = {name: [] for name in files}
        for _ in range(args.rounds):
            for name, (path, custom_objects) in files.items():
                start = time.perf_counter()
                rnnkit.saving.load_model(path, custom_objects=custom_objects)
                times[name].append(time.perf_counter() - start)
    print(f"rnnkit from {os.path.dirname(rnnkit.__file__)}; {args.rounds} rounds; median ms")
    print(f"{'model':45s} {'load_model':>10s}")
    total = 0.0
    for name, values in times.items():
        median = statistics.median(values) * 1000
        total += median
        print(f"{name:45s} {median:10.2f}")
    print(f"{'total of the medians':45s} {total:10.2f}")


if __name__ == "__main__":
    main()
