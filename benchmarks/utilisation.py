"""Utilisation and timing of a finished workflow run, from the jobs' ``benchmark:`` files.

Every rule writes a Snakemake benchmark TSV, ``<results>/benchmarks/<rule>/<key>.tsv`` (paths:
:class:`mlipft.paths.Paths`), with the columns ``s h:m:s max_rss ... mean_load cpu_time``. From
those files alone (no Snakemake call, no log parsing) this script reports, for a run that has
finished:

- a job: its **wall time** ``s`` and **CPU time** ``cpu_time`` (summed over the rows when a rule
  repeats its benchmark), its **end** = the modification time of its TSV (Snakemake writes the
  file when the job ends) and its **start** = end - ``s``;
- per figure target of the config: its **jobs** = the fine-tunes of its runs (``finetune``),
  their training subsets and E0 fits (``subsample_trainset``, ``fit_e0s``), the replay sets of
  its multihead runs (``select_replay``, ``replay_set``), the analyses whose outputs the figure
  reads (``evaluate_errors``, one job per run for every set its figures select, ``run_neb``, ``run_md`` and ``rdf``,
  ``run_stability``, ``run_torsions``, ``run_symmetry``, ``run_repulsion``, ``run_rss``: every per-run file in
  :func:`mlipft.workflow.figure_inputs`, mapped to the rule that writes it by
  :data:`RUN_FILE_RULES`) and its ``collect/<figure>`` and ``plot/<figure>`` jobs. Its
  **wall** = from the start of its earliest job to the end of its latest job; **sum wall** and
  **sum CPU** = the sums over its jobs; **concurrency** = sum wall / wall (jobs running at once,
  on average); jobs **found** vs **expected**, and every expected job without a benchmark file
  listed as missing. Jobs shared by figures (a run trained once for two figures) count in each;
- for the whole run (every benchmark file under the results): **wall** = first start to last
  end, **CPU** = the sum of CPU times, **utilisation** = CPU / (wall x cores), **packing** =
  sum of wall times / (wall x cores), i.e. how full the scheduler kept its ``--cores`` slots
  (a job counted for its whole duration, whether it computed or waited);
- the longest jobs (top N by wall time) and, per rule, the count and the total, median and
  maximum wall time (and total CPU time).

Caveats: CPU times are lower bounds: Snakemake polls a job's process tree every 0.5 s for its
first 15 s and every 30 s after (``snakemake.benchmark.BENCHMARK_INTERVAL``), so the
``cpu_time`` of a longer job misses up to its last 30 s (a 36 s fine-tune on a full core reads
15.5 s) and utilisation is understated; wall times are exact. Start times are estimated (mtime
resolution and the rounding of ``s``); the whole-run span assumes the files come from one
invocation (a job rerun later moves its end, and a job that did not run in this invocation keeps
its old file); the foundations and data of the mini world are committed data, not jobs of a
figure (their files count in the whole-run numbers when they were regenerated in the run).

    .venv/bin/python benchmarks/utilisation.py --config scale=smoke --cores 2
    .venv/bin/python benchmarks/utilisation.py --results /tmp/base/results/smoke --config scale=smoke
    .venv/bin/python benchmarks/utilisation.py --markdown --top 5      # for the README
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from mlipft import config as cfg  # noqa: E402
from mlipft import workflow as wf  # noqa: E402
from mlipft.paths import Paths, Run  # noqa: E402

#: The rule writing each per-run file (a name of :data:`mlipft.paths.RUN_FILES`), as the
#: ``benchmark:<rule>[@<file>]`` pattern of its benchmark file (``Paths.pattern``).
RUN_FILE_RULES = {
    "model": ("benchmark:finetune",),
    "loss_curves": ("benchmark:finetune",),
    "trainable": ("benchmark:finetune",),
    "errors": ("benchmark:evaluate_errors@errors",),
    "neb": ("benchmark:run_neb",),
    "torsions": ("benchmark:run_torsions",),
    "md": ("benchmark:run_md",),
    "rdf": ("benchmark:run_md", "benchmark:rdf"),
    "stability": ("benchmark:run_stability",),
    "symmetry": ("benchmark:run_symmetry",),
    "repulsion": ("benchmark:run_repulsion",),
    "rss": ("benchmark:run_rss",),
}
#: Columns of :func:`collect_benchmarks`.
COLUMNS = ["rule", "key", "path", "s", "cpu_time", "end", "start"]


class ReportError(ValueError):
    """Benchmark files or a configuration the report cannot use; the message says which."""


def _norm(path: str | Path) -> str:
    return os.path.normpath(str(path))


# ---- reading ----

def read_benchmark(path: str | Path) -> tuple[float, float]:
    """Wall seconds ``s`` and CPU seconds ``cpu_time`` of one Snakemake benchmark TSV (summed
    over its rows: ``benchmark: repeat(..., n)`` writes one row per repetition)."""
    try:
        table = pd.read_csv(path, sep="\t", na_values=["NA", "-", ""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: not a Snakemake benchmark TSV ({err})") from None
    missing = [c for c in ("s", "cpu_time") if c not in table.columns]
    if missing or table.empty:
        raise ReportError(f"{path}: not a Snakemake benchmark TSV "
                          f"({'no column ' + ', '.join(missing) if missing else 'no rows'}; "
                          f"columns: {list(table.columns)})")
    try:
        wall = pd.to_numeric(table["s"]).sum()
        cpu = pd.to_numeric(table["cpu_time"]).sum(min_count=1)  # NaN when psutil gave none
    except (ValueError, TypeError) as err:
        raise ReportError(f"{path}: non-numeric s or cpu_time ({err})") from None
    return float(wall), float(cpu)


def collect_benchmarks(results: str | Path) -> pd.DataFrame:
    """Every job of a results tree: one row per ``<results>/benchmarks/<rule>/<key>.tsv`` with
    ``rule``, ``key`` (the path under the rule's folder, without ``.tsv``: a run directory,
    ``.../errors``, a figure), ``path``, ``s``, ``cpu_time``, ``end`` (the file's
    mtime, epoch seconds) and ``start`` (= end - s), sorted by start."""
    root = Path(results) / "benchmarks"
    if not root.is_dir():
        raise ReportError(f"no benchmark folder {root} (is {results} the results of a finished run?)")
    rows = []
    for file in sorted(root.rglob("*.tsv")):
        rel = file.relative_to(root)
        wall, cpu = read_benchmark(file)
        end = file.stat().st_mtime
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        key = rel.relative_to(rule).with_suffix("").as_posix() if len(rel.parts) > 1 else ""
        rows.append({"rule": rule, "key": key, "path": _norm(file), "s": wall, "cpu_time": cpu,
                     "end": end, "start": end - wall})
    jobs = pd.DataFrame(rows, columns=COLUMNS)
    return jobs.sort_values(["start", "path"], ignore_index=True)


# ---- expected jobs ----

def _bench(paths: Paths, name: str, run: Run, **keys) -> str:
    return _norm(paths.pattern(name, **run.keys(), **keys))


def replay_jobs(config: dict, paths: Paths, benchmark: str, name: str) -> list[str]:
    """The benchmark files of the jobs that make replay set ``name``: a drawn set's
    ``select_replay`` and ``replay_set``; a union's (``combine``) parts' jobs and its own
    ``replay_set``."""
    parts = (config.get("replay") or {}).get(name, {}).get("combine")
    own = _norm(paths.bench("replay_set", f"{benchmark}/{name}"))
    if parts:
        return [job for part in parts for job in replay_jobs(config, paths, benchmark, part)] + [own]
    return [_norm(paths.bench("select_replay", f"{benchmark}/{name}")), own]


def figure_jobs(config: dict, paths: Paths, figure: str) -> list[str]:
    """The benchmark files of every job a figure target runs (see the module docstring), in
    order, each once: per run its subset, E0 fit, replay set (multihead) and fine-tune, then the
    analyses writing the per-run files the figure reads, then ``collect`` and ``plot``."""
    if figure not in config["figures"]:
        raise ReportError(f"no figure {figure!r} in the config (figures: {sorted(config['figures'])})")
    runs = cfg.runs_for_figure(config, figure)
    producer: dict[str, list[str]] = {}  # a file a job writes -> the benchmark files of its per-run jobs
    jobs: list[str] = []
    for run in runs:
        subsample, e0s = (_bench(paths, "benchmark:subsample_trainset@trainset", run),
                          _bench(paths, "benchmark:fit_e0s@e0s", run))
        jobs += [subsample, e0s]
        replay = wf.finetune_inputs(config, paths, run).get("replay")
        if replay is not None:
            jobs += replay_jobs(config, paths, run.benchmark, Path(replay).stem)
        jobs.append(_bench(paths, "benchmark:finetune", run))
        for name, bench in RUN_FILE_RULES.items():
            producer[_norm(paths.run_file(run, name))] = [_bench(paths, b, run) for b in bench]
        producer[_norm(paths.trainset(run))] = [subsample]
        producer[_norm(paths.e0s(run))] = [e0s]
    run_dirs = tuple(_norm(paths.run_dir(r)) + os.sep for r in runs)
    for files in wf.input_files(wf.figure_inputs(config, paths, figure)).values():
        for file in files:
            file = _norm(file)
            if file in producer:
                jobs += producer[file]
            elif file.startswith(run_dirs):
                print(f"warning: {figure} reads {file}, a run file no rule of RUN_FILE_RULES writes: "
                      f"its job is not counted", file=sys.stderr)
    jobs += [_norm(paths.bench("collect", figure)), _norm(paths.bench("plot", figure))]
    return list(dict.fromkeys(jobs))


# ---- tables ----

def span(jobs: pd.DataFrame) -> float:
    """Wall time of a set of jobs: from the earliest start to the latest end (NaN when empty)."""
    return float(jobs["end"].max() - jobs["start"].min()) if len(jobs) else math.nan


def figure_table(jobs: pd.DataFrame, config: dict, paths: Paths) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Per figure: kind, jobs found / expected / missing, wall, sum of wall and CPU times,
    concurrency; and the missing jobs' benchmark files, per figure."""
    by_path = jobs.set_index("path")
    rows, missing = [], {}
    for figure in config["figures"]:
        expected = figure_jobs(config, paths, figure)
        found = [p for p in expected if p in by_path.index]
        missing[figure] = [p for p in expected if p not in by_path.index]
        mine = by_path.loc[found]
        wall = span(mine)
        rows.append({"figure": figure, "kind": config["figures"][figure]["kind"], "found": len(found),
                     "expected": len(expected), "missing": len(missing[figure]), "wall_s": wall,
                     "sum_wall_s": float(mine["s"].sum()), "sum_cpu_s": float(mine["cpu_time"].sum()),
                     "concurrency": float(mine["s"].sum()) / wall if wall > 0 else math.nan})
    return pd.DataFrame(rows), missing


def run_summary(jobs: pd.DataFrame, cores: int) -> dict[str, float]:
    """The whole run: jobs, first start, last end, wall, total CPU, sum of wall times, cores,
    utilisation = CPU / (wall x cores) and packing = sum wall / (wall x cores)."""
    if cores < 1:
        raise ReportError(f"cores must be at least 1, got {cores}")
    if jobs.empty:
        raise ReportError("no jobs: no benchmark file found")
    wall = span(jobs)
    capacity = wall * cores
    cpu, sum_wall = float(jobs["cpu_time"].sum()), float(jobs["s"].sum())
    return {"jobs": len(jobs), "first_start": float(jobs["start"].min()), "last_end": float(jobs["end"].max()),
            "wall_s": wall, "cpu_s": cpu, "sum_wall_s": sum_wall, "cores": cores,
            "utilisation": cpu / capacity if capacity > 0 else math.nan,
            "packing": sum_wall / capacity if capacity > 0 else math.nan}


def top_jobs(jobs: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` longest jobs by wall time (ties by path): rule, key, wall and CPU seconds."""
    top = jobs.sort_values(["s", "path"], ascending=[False, True]).head(n)
    return top[["rule", "key", "s", "cpu_time"]].rename(columns={"s": "wall_s", "cpu_time": "cpu_s"}) \
        .reset_index(drop=True)


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule (longest total first): job count, total, median and maximum wall time, total CPU."""
    table = jobs.groupby("rule").agg(jobs=("s", "size"), total_wall_s=("s", "sum"), median_wall_s=("s", "median"),
                                     max_wall_s=("s", "max"), total_cpu_s=("cpu_time", "sum")).reset_index()
    return table.sort_values(["total_wall_s", "rule"], ascending=[False, True], ignore_index=True)


# ---- output ----

def _fmt_value(column: str, value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column in ("utilisation", "packing", "concurrency"):
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: [_fmt_value(c, v) for v in table[c]] for c in table.columns}, columns=table.columns)


def _numeric(table: pd.DataFrame) -> list[bool]:
    return [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]


def render(table: pd.DataFrame, markdown: bool = False) -> str:
    """A table as aligned plain text (pandas ``to_string``) or as a Markdown table (numbers
    right-aligned), values formatted alike (seconds to 0.1 s, ratios to 3 decimals)."""
    text = _formatted(table)
    if not markdown:
        return text.to_string(index=False)
    cells = [[str(c) for c in text.columns]] + [[str(v).replace("|", r"\|") for v in row] for row in text.values]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---:" if num else "---" for num in _numeric(table)) + "|")
    return "\n".join(lines)


def _time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).isoformat(sep=" ", timespec="seconds")


def report(config: dict, paths: Paths, cores: int = 2, top: int = 10, markdown: bool = False,
           max_missing: int = 20, jobs: pd.DataFrame | None = None) -> str:
    """The whole report as text: per figure, the whole run, the longest jobs, per rule, then
    the missing jobs of each figure (at most ``max_missing`` each; 0: all)."""
    jobs = collect_benchmarks(paths.results) if jobs is None else jobs
    if jobs.empty:
        raise ReportError(f"no benchmark files under {paths.results}/benchmarks")
    figures, missing = figure_table(jobs, config, paths)
    summary = run_summary(jobs, cores)
    whole = pd.DataFrame([
        ("jobs", str(summary["jobs"])),
        ("first start", _time(summary["first_start"])),
        ("last end", _time(summary["last_end"])),
        ("wall s (first start to last end)", _fmt_value("", summary["wall_s"])),
        ("CPU s (sum; polled, a lower bound)", _fmt_value("", summary["cpu_s"])),
        ("job wall s (sum)", _fmt_value("", summary["sum_wall_s"])),
        ("cores", str(cores)),
        ("utilisation = CPU / (wall x cores)", _fmt_value("utilisation", summary["utilisation"])),
        ("packing = job wall sum / (wall x cores)", _fmt_value("packing", summary["packing"])),
    ], columns=["quantity", "value"])

    def heading(title: str) -> str:
        return f"### {title}\n" if markdown else f"{title}\n{'-' * len(title)}"

    sections = [
        (f"Figures ({paths.results})", render(figures, markdown)),
        ("Whole run", render(whole, markdown)),
        (f"Longest jobs (top {top})", render(top_jobs(jobs, top), markdown)),
        ("Per rule", render(rule_table(jobs), markdown)),
    ]
    lost = {f: m for f, m in missing.items() if m}
    if lost:
        lines = []
        for figure, files in lost.items():
            shown = files if max_missing <= 0 else files[:max_missing]
            lines.append(f"{figure}: {len(files)} of {int(figures.set_index('figure').loc[figure, 'expected'])} "
                         f"expected jobs have no benchmark file")
            lines += [f"- `{os.path.relpath(f, paths.results)}`" if markdown else f"  {os.path.relpath(f, paths.results)}"
                      for f in shown]
            if len(shown) < len(files):
                lines.append(f"{'- ' if markdown else '  '}... and {len(files) - len(shown)} more "
                             f"(--max-missing 0 lists all)")
            if markdown:
                lines.append("")
        sections.append(("Missing jobs", "\n".join(lines).rstrip()))
    return "\n\n".join(f"{heading(title)}\n{body}" for title, body in sections) + "\n"


# ---- command line ----

def parse_overrides(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs as Snakemake's ``--config`` reads them (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ReportError(f"--config {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value) if value else ""
    return out


def load_config(configfiles: list[str], overrides: list[str]) -> dict:
    """The layered config (config/shared.yaml, the config files, then ``--config`` pairs)."""
    for file in configfiles:
        if not Path(file).is_file():
            raise ReportError(f"--configfile {file}: no such file")
    config = cfg.resolve(cfg.merge(cfg.load_world(*configfiles), parse_overrides(overrides)))
    if config.get("scale") not in config.get("scales", {}):
        raise ReportError(f"scale {config.get('scale')!r} is not one of {sorted(config.get('scales', {}))}")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", action="append", default=None,
                        help="config file(s) over config/shared.yaml, as for snakemake (default: config/config.yaml)")
    parser.add_argument("--config", nargs="*", default=[], action="extend", metavar="KEY=VALUE",
                        help="config overrides, as for snakemake (e.g. scale=smoke)")
    parser.add_argument("--results", help="results root (default: the config's, results/<scale>)")
    parser.add_argument("--cores", type=int, default=2, help="cores the run was given (default: 2, the Makefile's)")
    parser.add_argument("--top", type=int, default=10, help="number of longest jobs to list (default: 10)")
    parser.add_argument("--max-missing", type=int, default=20,
                        help="missing jobs listed per figure (default: 20; 0: all)")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables (README) instead of plain text")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.configfile or [str(ROOT / "config" / "config.yaml")], args.config)
        default = wf.paths(config)
        results = args.results or (default.results if Path(default.results).is_absolute()
                                   else str(ROOT / default.results))
        data = default.data if Path(default.data).is_absolute() else str(ROOT / default.data)
        print(report(config, Paths(results, data), cores=args.cores, top=args.top, markdown=args.markdown,
                     max_missing=args.max_missing), end="")
    except (ReportError, cfg.ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
