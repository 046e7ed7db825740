"""How long the same tests take in several source trees: per test file, the sum over the tests
that every tree has and none skips, of each test's fastest time over ``--runs`` runs.

Each tree is a checkout (a ``git worktree``) with its own ``src`` and ``tests``; all run with
this interpreter (its ``.venv``), ``PYTHONPATH`` set to the tree's ``src`` so that its rnnkit is
imported. Each test file (or folder) runs in its own pytest process per tree, the trees taking
turns in a rotating order; times come from ``suite_timing_plugin.py``: wall clock, process CPU
time and main-thread CPU time (setup, call and teardown of each test), the last also less the
full garbage collections that ran during the test (one costs about 0.15 s and lands on
whichever test crosses the collector's threshold, which shifts with every import), plus each
process's wall clock (collection and imports included; comparable only where the files hold
the same tests).
Run it on an otherwise idle machine: concurrent processes on few cores distort every column.

    python benchmarks/compare_suites.py ../pre16 ../main . --runs 3 --save times.json
    python benchmarks/compare_suites.py --report times.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FILES = [
    "tests/test_models.py",
    "tests/test_round_trip.py",
    "tests/test_conv_lstm.py",
    "tests/test_keras_import.py",
    "tests/test_saving.py",
    "tests/security",
    "tests/test_error_catalogue.py",
    "tests/test_core_layers.py",
    "tests/test_utils.py",
    "tests/test_readme.py",
]
# How each table reads a test's record [wall, process CPU, main-thread CPU, full GCs]; the
# last table leaves out full garbage collections (see suite_timing_plugin.py), which land on
# whichever test crosses the collector's threshold. Older records lack the fourth field.
METRICS: dict[str, Callable[[list[float]], float]] = {
    "wall clock": lambda r: r[0],
    "process CPU": lambda r: r[1],
    "main-thread CPU": lambda r: r[2],
    "main-thread CPU less full garbage collections": lambda r: r[2] - r[3],
}
_NEEDS_GC_FIELD = "main-thread CPU less full garbage collections"
_HERE = Path(__file__).resolve().parent


def _run(tree: str, target: str, out: str) -> tuple[float, dict[str, list[float]]]:
    env = dict(
        os.environ,
        KERAS_BACKEND="torch",
        PYTHONPATH=os.pathsep.join([str(Path(tree) / "src"), str(_HERE)]),
        SUITE_TIMING_OUT=out,
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "-p", "suite_timing_plugin", target],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(f"{tree} {target}: pytest failed\n{done.stdout[-3000:]}", file=sys.stderr)
    with open(out, encoding="utf-8") as f:
        return wall, json.load(f)


def report(results: dict[str, Any]) -> None:
    """Print one table per metric, the first tree as the baseline."""
    trees = list(results)
    base, others = trees[0], trees[1:]
    names = {t: Path(t).name or t for t in trees}
    records = [
        r for t in trees for runs in results[t].values() for _, d in runs for r in d.values()
    ]
    gc_timed = all(len(r) >= 4 for r in records)  # older files: before the plugin timed them
    for metric, value in METRICS.items():
        if metric == _NEEDS_GC_FIELD and not gc_timed:
            continue
        print(
            f"\n{metric}: seconds per file (fastest run of each test, summed), x = / {names[base]}"
        )
        head = f"{'file':30s} {'tests':>5s} {names[base]:>12s}"
        print(head + "".join(f" {names[t]:>12s} {'x':>5s}" for t in others) + "   sums per run")
        totals: collections.Counter = collections.Counter()
        for target in results[base]:
            runs = {t: results[t][target] for t in trees}
            common = set.intersection(*(set(d) for t in trees for _, d in runs[t]))
            best = {t: sum(min(value(d[k]) for _, d in runs[t]) for k in common) for t in trees}
            totals.update(best)
            spread = " | ".join(
                ",".join(f"{sum(value(d[k]) for k in common):.2f}" for _, d in runs[t])
                for t in trees
            )
            row = f"{target:30s} {len(common):5d} {best[base]:12.2f}"
            row += "".join(f" {best[t]:12.2f} {best[t] / best[base]:5.2f}" for t in others)
            print(f"{row}   {spread}")
        row = f"{'total':30s} {'':5s} {totals[base]:12.2f}"
        print(row + "".join(f" {totals[t]:12.2f} {totals[t] / totals[base]:5.2f}" for t in others))
    print(f"\nprocess wall clock per file (fastest run), x = / {names[base]}")
    for target in results[base]:
        best = {t: min(w for w, _ in results[t][target]) for t in trees}
        row = f"{target:30s} {best[base]:12.1f}"
        print(row + "".join(f" {best[t]:12.1f} {best[t] / best[base]:5.2f}" for t in others))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="source trees; the first is the baseline")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", nargs="*", default=FILES)
    parser.add_argument("--save", help="write the raw times here (JSON) after each run")
    parser.add_argument("--report", help="print the tables of a saved JSON file and exit")
    args = parser.parse_args()
    if args.report:
        with open(args.report, encoding="utf-8") as f:
            report(json.load(f))
        return
    if len(args.trees) < 2:
        parser.error("give at least two source trees")
    results: dict[str, Any] = {t: {f: [] for f in args.files} for t in args.trees}
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "times.json")
        for r in range(args.runs):
            for target in args.files:
                shift = r % len(args.trees)
                for tree in args.trees[shift:] + args.trees[:shift]:
                    results[tree][target].append(_run(tree, target, out))
            print(f"run {r + 1} of {args.runs} done", file=sys.stderr, flush=True)
            if args.save:
                with open(args.save, "w", encoding="utf-8") as f:
                    json.dump(results, f)
    report(results)


if __name__ == "__main__":
    main()
