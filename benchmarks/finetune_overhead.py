"""Wall-time overhead of the workflow around one fine-tune.

One fine-tune job of the config (``--forcerun finetune`` on its ``model.model``) runs through
Snakemake, and the very same ``mace_run_train`` command (the ``$ ...`` line of the job's log)
runs bare, alternating (ABBA), and the script prints two ratios over the bare wall time:

- job ratio: the job as Snakemake runs it, i.e. the ``s`` column of the rule's ``benchmark:``
  TSV (the whole shell command: our ``mlipft.train`` wrapper, mace, artifact collection);
- invocation ratio: the whole ``snakemake <target>`` call (start-up, DAG build, job, bookkeeping).

Target: both at most 1.05. Each ratio is the median over ``--repeats`` (at least 2) repetitions of
workflow / bare measured back to back; the load average is printed with the numbers (timings on
a loaded machine are not comparable).

The target is not hard-coded: the run comes from the config (``mlipft.config.runs_for_figure``),
its paths (model, log) from a Snakemake dry run, the TSV is the one file under the results'
``benchmarks/`` the timed invocation wrote. Prerequisites are built first, untimed.

    .venv/bin/python benchmarks/finetune_overhead.py --scale mini [--strategy naive] [--repeats 2]
    .venv/bin/python benchmarks/finetune_overhead.py --scale smoke     # quick check
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from mlipft import config as cfg  # noqa: E402
from mlipft.paths import Run  # noqa: E402


def pick_run(config: dict, strategy: str, figure: str | None) -> tuple[str, Run]:
    """The first fine-tune of ``strategy`` that a figure of the config needs; by default from the
    test-error figures first (they train on a benchmark's full training set, as the baseline did)."""
    figures = [figure] if figure else sorted(config["figures"],
                                             key=lambda name: config["figures"][name]["kind"] != "test_errors")
    for name in figures:
        for run in cfg.runs_for_figure(config, name):
            if run.strategy == strategy:
                return name, run
    raise SystemExit(f"no figure of the config ({', '.join(figures)}) fine-tunes strategy {strategy!r}")


def snakemake(args: list[str], quiet: bool = True, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """``snakemake <args>`` in the repository; output captured, shown only when it fails."""
    cmd = [sys.executable, "-m", "snakemake", *args] + (["--quiet", "all"] if quiet else [])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"failed (exit {proc.returncode}): {shlex.join(cmd)}")
    return proc


def job_options(common: list[str], figure: str, run: Run) -> dict[str, str]:
    """The options of ``run``'s finetune job (``--spec``, ``--e0s``, ``--model``, ``--log`` ...),
    read from the shell command of a dry run that forces it."""
    dry = snakemake([figure, "-n", "-p", "--forcerun", "finetune", *common], quiet=False)
    suffix = f"{run.path}/model.model"
    for line in (dry.stdout + dry.stderr).splitlines():
        if "mlipft.train" not in line or suffix not in line:
            continue
        words = shlex.split(line.split(":", 1)[1] if line.startswith("Shell command:") else line)
        opts = {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")}
        if opts.get("--model", "").endswith(suffix) and "--log" in opts:
            return opts
    raise SystemExit(f"the dry run of {figure} has no finetune job writing .../{suffix}:\n"
                     + (dry.stdout + dry.stderr)[-3000:])


def job_paths(common: list[str], figure: str, run: Run) -> tuple[str, Path]:
    """The model target and the log of ``run``'s finetune job (:func:`job_options`)."""
    opts = job_options(common, figure, run)
    return opts["--model"], ROOT / opts["--log"]


def bare_command(log: Path, model: str) -> tuple[list[str], str]:
    """The last ``$ mace_run_train ...`` line of the job's log and mace's work directory in it."""
    lines = [line[2:] for line in log.read_text().splitlines() if line.startswith("$ ")]
    if not lines:
        raise SystemExit(f"{log}: no '$ mace_run_train ...' line")
    work = re.search(r"--work_dir=(\S+)", lines[-1])
    if work is None:
        raise SystemExit(f"{log}: no --work_dir in {lines[-1]!r}")
    return shlex.split(lines[-1]), work.group(1)


def relocate(cmd: list[str], work: str, tmp: str) -> list[str]:
    """``cmd`` with mace's work directory moved to ``tmp``; the job's own files there that the
    command reads (a foundation cast to the run's dtype) are copied along."""
    for word in cmd:
        path = word.split("=", 1)[-1]
        if path.startswith(work + "/") and Path(path).is_file():
            target = Path(tmp) / Path(path).relative_to(work)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return [word.replace(work, tmp) for word in cmd]


def timed_bare(cmd: list[str], work: str, threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        bare = relocate(cmd, work, tmp)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run(bare, cwd=tmp, check=True, capture_output=True, env=env)
        return time.perf_counter() - start


def timed_workflow(smk: list[str], bench_dir: Path) -> tuple[float, float]:
    """Wall time of the whole invocation and the ``s`` of the one benchmark TSV it wrote."""
    before = {p: p.stat().st_mtime_ns for p in bench_dir.rglob("*.tsv")}
    start = time.perf_counter()
    snakemake(smk, check=True)
    wall = time.perf_counter() - start
    written = [p for p in bench_dir.rglob("*.tsv") if before.get(p) != p.stat().st_mtime_ns]
    if len(written) != 1:
        raise SystemExit(f"expected exactly one job (one benchmark TSV written), got {[str(p) for p in written]}")
    with open(written[0]) as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return wall, float(rows[-1]["s"])


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--strategy", default="naive")
    parser.add_argument("--figure", help="take the run from this figure (default: the first test_errors figure "
                                         "that has the strategy, else the first figure that has it)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configfile", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--nolock", action="store_true",
                        help="pass --nolock to Snakemake (another instance runs in this directory)")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")
    config = cfg.load_world(args.configfile)
    config["scale"] = args.scale
    figure, run = pick_run(config, args.strategy, args.figure)
    common = ["--config", f"scale={args.scale}"] + (["--nolock"] if args.nolock else [])
    if Path(args.configfile).resolve() != (ROOT / "config" / "config.yaml").resolve():
        common = ["--configfile", args.configfile] + common
    model, log = job_paths(common, figure, run)
    smk = [model, "--cores", "1", *common]
    print(f"run {run.path} (figure {figure}, scale {args.scale}); building prerequisites (untimed) ...", flush=True)
    snakemake(smk, check=True)
    res = Path(model).parents[len(Path(run.path).parts)]  # the results directory of the model
    bench_dir = ROOT / res / "benchmarks"
    timed = smk + ["--forcerun", "finetune"]
    threads = int(config.get("threads", 1))
    bare_s, job_s, wall_s, dag_s, loads = [], [], [], [], []
    for i in range(args.repeats):
        loads.append(load())
        start = time.perf_counter()
        snakemake([model, "-n", *common], check=True)
        dag_s.append(time.perf_counter() - start)
        order = ("workflow", "bare") if i % 2 == 0 else ("bare", "workflow")
        for what in order:
            if what == "workflow":
                wall, job = timed_workflow(timed, bench_dir)
                wall_s.append(wall)
                job_s.append(job)
            else:
                cmd, work = bare_command(log, model)
                bare_s.append(timed_bare(cmd, work, threads))
        loads[-1] += f" -> {load()}"
        print(f"  repetition {i + 1}: bare {bare_s[-1]:.1f} s, job {job_s[-1]:.1f} s, "
              f"snakemake {wall_s[-1]:.1f} s, dry run {dag_s[-1]:.1f} s; load 1/5/15 min {loads[-1]}", flush=True)
    b, j, w, d = (statistics.median(x) for x in (bare_s, job_s, wall_s, dag_s))
    # Headline: the median of the per-repetition ratios (workflow and bare run back to back, so
    # each pair shares the machine's load); the ratio of the medians is printed beside it.
    job_r = statistics.median(x / y for x, y in zip(job_s, bare_s))
    wall_r = statistics.median(x / y for x, y in zip(wall_s, bare_s))
    print(f"fine-tune {args.strategy} at scale {args.scale} ({os.cpu_count()} cores), median of {args.repeats}:\n"
          f"  bare mace_run_train            {b:6.1f} s\n"
          f"  job (benchmark TSV, s column)  {j:6.1f} s   job ratio        {job_r:.3f}"
          f"  (ratio of medians {j / b:.3f}, overhead {j - b:+.1f} s)\n"
          f"  snakemake invocation           {w:6.1f} s   invocation ratio {wall_r:.3f}"
          f"  (ratio of medians {w / b:.3f}, overhead {w - b:+.1f} s)\n"
          f"  snakemake dry run (start-up + DAG, for reference) {d:.1f} s\n"
          f"  load average (1/5/15 min, before -> after each repetition): {'; '.join(loads)}")

if __name__ == "__main__":
    main()
