"""Wall-time overhead of the workflow around one fine-tune.

Runs one fine-tune job through Snakemake (``--forcerun finetune``: DAG building, the
``mlipft.train`` wrapper, artifact collection included) and the very same ``mace_run_train``
command bare, alternating, and prints the ratio workflow / bare (target: at most 1.05).

    .venv/bin/python benchmarks/finetune_overhead.py [--scale smoke] [--strategy naive] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--strategy", default="naive")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    run = f"results/{args.scale}/runs/sn2/train/f1/mini/{args.strategy}/e0-estimated/seed0"
    target = f"{run}/model.model"
    smk = [sys.executable, "-m", "snakemake", target, "--cores", "1", "--quiet", "all",
           "--config", f"scale={args.scale}"]
    subprocess.run(smk, cwd=ROOT, check=True)  # prerequisites, untimed
    log = ROOT / f"results/{args.scale}/logs/finetune/{run.split('/', 2)[2]}.log"
    workflow_s, bare_s = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run(smk + ["--forcerun", "finetune"], cwd=ROOT, check=True)
        workflow_s.append(time.perf_counter() - start)
        command = [line[2:] for line in log.read_text().splitlines() if line.startswith("$ ")][-1]
        with tempfile.TemporaryDirectory() as tmp:
            work = str(ROOT / run / "mace")
            bare = shlex.split(command.replace(work, tmp))
            start = time.perf_counter()
            subprocess.run(bare, cwd=tmp, check=True, capture_output=True,
                           env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent)})
            bare_s.append(time.perf_counter() - start)
    w, b = statistics.median(workflow_s), statistics.median(bare_s)
    print(f"fine-tune {args.strategy} at scale {args.scale}: workflow {w:.1f} s, bare mace_run_train {b:.1f} s, "
          f"ratio {w / b:.3f} (median of {args.repeats})")


if __name__ == "__main__":
    main()
