"""Where the time of a fine-tune goes: one fine-tune per benchmark and strategy family, split.

Each profiled fine-tune is the very ``mace_run_train`` command of its workflow job (built by
``mlipft.train.prepare`` from the job's spec, read from a dry run; the job's inputs are built
first, untimed, the job itself is not), run alone in a fresh work directory, in-process, with
timers wrapped around mace's own functions:

- start-up: interpreter, imports (torch, e3nn, mace), argument checks, model set-up: the rest;
- data loading: ``AtomicData.from_config`` for every configuration, of which neighbour lists
  (``get_neighborhood``); pseudolabelling of the replay set by the foundation (``pseudolabel``);
- training epochs: ``train_one_epoch``, of which the optimizer steps (``take_step``: forward,
  backward, clipping, EMA), and of those the replay head's share (the steps' time split by the
  share of ``pt_head`` edges in each batch);
- validation: ``evaluate`` inside the epoch loop (every ``--eval_interval`` epochs, every head);
- checkpointing: ``CheckpointHandler.save``;
- final: after the epoch loop (the best checkpoint reloaded, error tables, models written);

and the process's user and system CPU time (``getrusage``) with its minor page faults.

Families: naive (one head, all weights), LoRA (one head, adapters) and multihead replay
(``replay``: two heads), each from the first test-error figure of its benchmark. Run alone: the
numbers are wall seconds and the load average is printed with them.

    .venv/bin/python benchmarks/profile_finetune.py                      # mini, every benchmark
    .venv/bin/python benchmarks/profile_finetune.py --benchmarks sn2 --strategies naive replay
    .venv/bin/python benchmarks/profile_finetune.py --epochs 10 --set eval_interval=5   # a lever
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()  # the child's clock starts before torch is imported
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PARTS = ["start-up", "data loading", "  of which neighbour lists", "pseudolabelling", "training epochs",
         "  of which optimizer steps", "  of which replay head", "validation", "checkpointing", "final"]


# ---------------------------------------------------------------------------------------------
# Child: mace_run_train in this interpreter with timers around mace's functions.
def _timer(totals: dict, key: str, fn, split=None):
    def wrapped(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            totals[key] = totals.get(key, 0.0) + elapsed
            if split is not None:
                split(elapsed, args, kwargs)
    return wrapped


def _replay_share(totals: dict):
    """Adds the ``pt_head`` graphs' share of a ``take_step`` call's time to ``replay``: their share
    of the batch's edges (message passing, the bulk of a step, scales with the edges)."""
    def split(elapsed, args, kwargs):
        model = kwargs.get("model", args[0] if args else None)
        batch = kwargs.get("batch", args[2] if len(args) > 2 else None)
        heads = list(getattr(model, "heads", []) or [])
        if batch is None or "pt_head" not in heads:
            return
        edge_head = batch["head"][batch["batch"][batch["edge_index"][0]]]
        share = float((edge_head == heads.index("pt_head")).sum()) / max(1, int(edge_head.numel()))
        totals["replay"] = totals.get("replay", 0.0) + elapsed * share
    return split


def child(mace_args: list[str], out: str) -> None:
    if os.environ.get("PROFILE_MALLOC_TUNING", "1") == "1":  # as mlipft.train does
        from mlipft import allocator

        allocator.tune()
    import mace.cli.run_train as run_train
    import mace.data.atomic_data as atomic_data
    import mace.tools.checkpoint as checkpoint
    train_mod = sys.modules["mace.tools.train"]
    totals: dict[str, float] = {}
    original_from_config = atomic_data.AtomicData.from_config.__func__
    atomic_data.AtomicData.from_config = classmethod(_timer(totals, "data", original_from_config))
    atomic_data.get_neighborhood = _timer(totals, "neighbours", atomic_data.get_neighborhood)
    run_train.apply_pseudolabels_to_pt_head_configs = _timer(
        totals, "pseudolabel", run_train.apply_pseudolabels_to_pt_head_configs)
    train_mod.train_one_epoch = _timer(totals, "epochs", train_mod.train_one_epoch)
    train_mod.take_step = _timer(totals, "steps", train_mod.take_step, _replay_share(totals))
    train_mod.evaluate = _timer(totals, "validation", train_mod.evaluate)
    checkpoint.CheckpointHandler.save = _timer(totals, "checkpoint", checkpoint.CheckpointHandler.save)
    loop_end = {}
    original_train = train_mod.train

    def train(*args, **kwargs):
        try:
            return original_train(*args, **kwargs)
        finally:
            loop_end["t"] = time.perf_counter()
    run_train.tools.train = train
    sys.argv = ["mace_run_train", *mace_args]
    run_train.main()
    end = time.perf_counter()
    totals["final"] = end - loop_end.get("t", end)
    totals["total"] = end - START
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    totals["cpu_user"], totals["cpu_system"] = usage.ru_utime, usage.ru_stime
    totals["minor_page_faults"] = usage.ru_minflt
    Path(out).write_text(json.dumps(totals))


# ---------------------------------------------------------------------------------------------
# Parent: pick the runs, run each child alone, print the split.
def split_row(t: dict) -> list[float]:
    """Seconds per part of PARTS from a child's totals (disjoint parts sum to the total)."""
    data, epochs = t.get("data", 0.0), t.get("epochs", 0.0)
    validation, ckpt = t.get("validation", 0.0), t.get("checkpoint", 0.0)
    pseudo, final = t.get("pseudolabel", 0.0), t.get("final", 0.0)
    # from_config also runs inside pseudolabelling and nowhere in the loop; checkpoints are saved
    # inside the loop's validation branch, not inside evaluate
    startup = t["total"] - data - pseudo - epochs - validation - ckpt - final
    return [startup, data, t.get("neighbours", 0.0), pseudo, epochs, t.get("steps", 0.0),
            t.get("replay", 0.0), validation, ckpt, final]


def override(cmd: list[str], key: str, value: str) -> list[str]:
    flag = f"--{key}"
    kept = [w for w in cmd if not (w == flag or w.startswith(flag + "="))]
    return kept + [f"{flag}={value}"]


def profile(opts: dict[str, str], threads: int, epochs: int | None, overrides: list[str]) -> dict:
    """Profile the job's mace_run_train command (from its spec, as mlipft.train builds it)."""
    from mlipft.train import prepare

    spec = json.loads(opts["--spec"])
    with tempfile.TemporaryDirectory() as tmp:
        cmd = prepare(spec, opts.get("--e0s"), tmp)
        if epochs:
            cmd = override(cmd, "max_num_epochs", str(epochs))
        for item in overrides:
            key, _, value = item.partition("=")
            cmd = override(cmd, key, value)
        out = Path(tmp) / "profile.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, __file__, "--child", str(out), "--", *cmd[1:]], cwd=tmp,
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"profiled fine-tune failed (exit {proc.returncode}): {shlex.join(cmd[:3])} ...")
        return json.loads(out.read_text())


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sep = sys.argv.index("--")
        return child(sys.argv[sep + 1:], sys.argv[2])
    from finetune_overhead import job_options, load, snakemake
    from mlipft import config as cfg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--benchmarks", nargs="*", help="default: every benchmark with a test-error figure")
    parser.add_argument("--strategies", nargs="*", default=["naive", "lora", "replay"])
    parser.add_argument("--epochs", type=int, help="override max_num_epochs (default: the job's own)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FLAG=VALUE",
                        help="override mace_run_train flags of the profiled command (a lever to measure)")
    parser.add_argument("--configfile", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc's malloc thresholds alone (mlipft.allocator; to measure that lever)")
    args = parser.parse_args()
    for item in args.set:
        if item.partition("=")[0].lstrip("-") == "num_samples_pt":
            # measured: SN2 and NaCl replay, 3 epochs, 13.4 s and ~20 s with 100 or 25 (no change)
            parser.error("--set num_samples_pt measures nothing: mace 0.3.16 reads it only when it downloads "
                         "its own Materials Project replay data (mace/cli/run_train.py, tools/multihead_tools.py); "
                         "the replay set the job passes already holds scales.<scale>.finetune.num_samples_pt "
                         "structures (rule select_replay): change that in a --configfile overlay and rebuild the "
                         "replay set to measure a smaller replay sample")
    config = cfg.load_world(args.configfile)
    config["scale"] = args.scale
    common = ["--config", f"scale={args.scale}"]
    if Path(args.configfile).resolve() != (ROOT / "config" / "config.yaml").resolve():
        common = ["--configfile", args.configfile] + common
    figures = {}
    for name, fig in config["figures"].items():
        if fig.get("kind") == "test_errors":
            figures.setdefault(fig["benchmark"], name)
    benchmarks = args.benchmarks or list(figures)
    threads = int(config.get("threads", 1))
    os.environ["PROFILE_MALLOC_TUNING"] = "0" if args.no_malloc_tuning else "1"
    rows = []
    print(f"{os.cpu_count()} cores, {threads} thread(s) per fine-tune; load 1/5/15 min before: {load()}", flush=True)
    for bench in benchmarks:
        if bench not in figures:
            raise SystemExit(f"no test_errors figure trains on benchmark {bench!r}")
        runs = {r.strategy: r for r in cfg.runs_for_figure(config, figures[bench])}
        for strategy in args.strategies:
            if strategy not in runs:
                raise SystemExit(f"figure {figures[bench]} has no {strategy!r} run")
            opts = job_options(common, figures[bench], runs[strategy])
            # the job's inputs (training subset, E0s, replay set), not the job itself
            snakemake([opts["--model"], "--omit-from", "finetune", "--cores", str(os.cpu_count()), *common],
                      check=True)
            t = profile(opts, threads, args.epochs, args.set)
            row = {"benchmark": bench, "strategy": strategy, "total": t["total"],
                   **dict(zip(PARTS, split_row(t))), "load": load()}
            rows.append(row)
            row.update(cpu_user=t["cpu_user"], cpu_system=t["cpu_system"], minor_page_faults=t["minor_page_faults"])
            print(f"\n{bench} {strategy}: {t['total']:.1f} s wall, CPU {t['cpu_user']:.1f} s user + "
                  f"{t['cpu_system']:.1f} s system ({t['minor_page_faults']} minor page faults); "
                  f"load after: {row['load']}")
            for part in PARTS:
                print(f"  {part:28s} {row[part]:7.1f} s  {100 * row[part] / t['total']:5.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
