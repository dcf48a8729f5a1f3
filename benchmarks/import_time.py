"""Start-up of a job process: importing mlipft and a mace entry point, with and without the
deferred imports of :mod:`mlipft.lazy_imports`.

Every evaluation-type job (errors, zero-shot, E0 fits, NEB, MD, stability, symmetry, repulsion,
random structure search, torsion scans, foundation quality) is a fresh interpreter that imports
mace before any work, so its start-up is paid a few hundred times per ``all_figures``. The script
starts ``python -c "import mlipft; import <module>"`` alternately with ``MLIPFT_EAGER_IMPORTS=1``
(eager) and without (deferred, the workflow's default), ABAB, and prints the median wall time of
each, their ratio, and whether ``torch._dynamo`` ran in each mode (it must not, deferred).

    .venv/bin/python benchmarks/import_time.py [--module mace.cli.eval_configs] [--repeats 5]

Measure alone: the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from mlipft.lazy_imports import ENV_OFF  # noqa: E402

PROBE = "import mlipft, {module}; from mlipft.lazy_imports import is_loaded; print(is_loaded('torch._dynamo'))"


def once(module: str, eager: bool) -> tuple[float, bool]:
    """Wall seconds of one interpreter importing mlipft and ``module``; whether dynamo ran."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "scripts"),
                                                                   os.environ.get("PYTHONPATH")]))}
    env.pop(ENV_OFF, None)
    if eager:
        env[ENV_OFF] = "1"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - start, proc.stdout.strip().splitlines()[-1] == "True"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", default="mace.cli.eval_configs",
                        help="what a job imports after mlipft (default: mace's evaluation entry point)")
    parser.add_argument("--repeats", type=int, default=5, help="pairs of runs (ABAB)")
    args = parser.parse_args(argv)
    once(args.module, eager=True)  # warm the file cache: the first import of torch reads ~1 GB
    times: dict[bool, list[float]] = {True: [], False: []}
    loaded: dict[bool, set[bool]] = {True: set(), False: set()}
    for _ in range(args.repeats):
        for eager in (True, False):
            seconds, dynamo = once(args.module, eager)
            times[eager].append(seconds)
            loaded[eager].add(dynamo)
    eager, lazy = statistics.median(times[True]), statistics.median(times[False])
    print(f"load average {os.getloadavg()[0]:.2f}; import mlipft, {args.module}; {args.repeats} pairs")
    print(f"eager    median {eager:.2f} s  (torch._dynamo ran: {sorted(loaded[True])})")
    print(f"deferred median {lazy:.2f} s  (torch._dynamo ran: {sorted(loaded[False])})")
    print(f"ratio deferred / eager {lazy / eager:.3f}; saved {eager - lazy:.2f} s per job start")


if __name__ == "__main__":
    main()
