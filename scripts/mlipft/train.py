"""Run one ``mace_run_train`` job (pretraining or fine-tune) and collect its artifacts.

The command line comes from :mod:`mlipft.registry`; this module only runs it and turns what mace
leaves behind into the workflow's artifacts, each written atomically:

- ``model.model``: the final model (LoRA already merged by mace);
- ``loss_curves.csv``: one row per (epoch, head, split) with loss and RMSEs, for every head;
- ``trainable.json``: how many parameters the optimiser really trained, counted from the Adam
  state of the last checkpoint (mace's own "trainable parameters" log line counts LoRA's frozen
  base weights too), the total, and the heads of the final model.

mace's working files live in ``<out>/mace/``, wiped before each attempt so that a stale
checkpoint is never silently resumed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from .e0s import e0s_for_mode
from .io import atomic_path, read_json, write_json
from .registry import RunSpec, build_args, strategy_from_config

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def mace_command(args: list[str]) -> list[str]:
    """``mace_run_train`` from the running interpreter's environment."""
    exe = Path(sys.executable).with_name("mace_run_train")
    return [str(exe) if exe.exists() else "mace_run_train", *args]


def parse_loss_curves(results_dir: Path) -> pd.DataFrame:
    """Loss curves of every head from mace's ``*_train.txt`` JSON lines."""
    rows = []
    for path in sorted(Path(results_dir).glob("*_train.txt")):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry.get("mode") == "eval":
                row = {"epoch": entry.get("epoch"), "head": entry.get("head", "Default"), "split": "valid",
                       "loss": entry.get("loss")}
                for key in ("rmse_e_per_atom", "rmse_f", "mae_e_per_atom", "mae_f"):
                    if key in entry:
                        row[key] = entry[key]
                rows.append(row)
            elif entry.get("mode") == "opt":
                rows.append({"epoch": entry.get("epoch"), "head": "all", "split": "train", "loss": entry.get("loss")})
    if not rows:
        raise RuntimeError(f"no loss curves found under {results_dir}")
    frame = pd.DataFrame(rows)
    frame = frame[frame["epoch"].notna()]
    train = frame[frame.split == "train"].groupby(["epoch", "head", "split"], as_index=False)["loss"].mean()
    return pd.concat([train, frame[frame.split == "valid"]], ignore_index=True).sort_values(
        ["split", "head", "epoch"], ignore_index=True)


def count_trainable(checkpoint: Path, model_path: Path) -> dict:
    """Parameters the optimiser updated (Adam state present) vs the final model's total."""
    import torch

    state = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    opt_state = state["optimizer"]["state"]
    trainable = int(sum(s["exp_avg"].numel() for s in opt_state.values() if "exp_avg" in s))
    model = torch.load(str(model_path), map_location="cpu", weights_only=False)
    total = int(sum(p.numel() for p in model.parameters()))
    heads = list(getattr(model, "heads", ["Default"]))
    return {"trainable": trainable, "total": total, "fraction": trainable / total, "heads": heads}


def _absolute(path: str | None) -> str | None:
    """mace runs inside its work directory: every path it gets is made absolute."""
    return None if path is None else str(Path(path).resolve())


def run(spec: dict, e0_file: str | None, out: dict[str, str], threads: int = 1, log_file: str | None = None) -> float:
    """Train one model. ``spec`` holds the strategy entry and the run context; returns seconds."""
    strategy = strategy_from_config(spec["strategy_name"], spec["strategy"])
    e0s_json = read_json(e0_file) if e0_file else spec["e0s_json"]
    e0s = e0s_for_mode(e0s_json, spec["e0_mode"], where=str(e0_file))
    model_out = Path(out["model"]).resolve()
    work = model_out.parent / "mace"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run_spec = RunSpec(
        name=spec["name"], seed=int(spec["seed"]), train_file=_absolute(spec["train_file"]),
        valid_file=_absolute(spec["valid_file"]), e0s=e0s, out_dir=str(work),
        max_num_epochs=int(spec["max_num_epochs"]), batch_size=int(spec["batch_size"]),
        device=resolve_device(spec.get("device", "auto")), default_dtype=spec["default_dtype"],
        foundation_model=_absolute(spec.get("foundation_model")), replay_file=_absolute(spec.get("replay_file")),
        num_samples_pt=spec.get("num_samples_pt"), compute_stress=bool(spec.get("compute_stress", False)),
        common=spec.get("common", {}), scratch_model=spec.get("scratch_model", {}),
    )
    if run_spec.device == "cuda" and spec.get("enable_cueq", True):
        try:
            import cuequivariance_torch  # noqa: F401

            run_spec.common.setdefault("enable_cueq", True)
        except ImportError:
            log.info("cuequivariance-torch not installed: training without cuEquivariance")
    cmd = mace_command(build_args(strategy, run_spec))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log.info("running: %s", shlex.join(cmd))
    start = time.perf_counter()
    with open(log_file or os.devnull, "a") as handle:
        handle.write("$ " + shlex.join(cmd) + "\n")
        handle.flush()
        proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=work)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"mace_run_train failed (exit {proc.returncode}) for {spec['name']}; see {log_file}")
    collect(work, spec["name"], out)
    return seconds


def collect(work: Path, name: str, out: dict[str, str]) -> None:
    """Move mace's outputs to the workflow's artifact paths."""
    candidates = [work / f"{name}.model", work / f"{name}_cpu.model"]
    model = next((p for p in candidates if p.exists()), None)
    if model is None:
        raise RuntimeError(f"mace_run_train left no model in {work} (looked for {[p.name for p in candidates]})")
    checkpoints = sorted((work / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise RuntimeError(f"no checkpoint in {work / 'checkpoints'}")
    if "trainable" in out:
        write_json(out["trainable"], count_trainable(checkpoints[-1], model))
    if "loss_curves" in out:
        with atomic_path(out["loss_curves"]) as tmp:
            parse_loss_curves(work / "results").to_csv(tmp, index=False)
    with atomic_path(out["model"]) as tmp:
        shutil.copyfile(model, tmp)


def main(argv=None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--resolve-device"]:  # used by shell rules that call mace's own CLIs
        print(resolve_device(argv[1]))
        return
    parser = argparse.ArgumentParser(description="Run one mace_run_train job from a run spec (JSON)")
    parser.add_argument("--spec", required=True, help="JSON run spec (inline or @file)")
    parser.add_argument("--e0s", help="E0 JSON written by mlipft.e0s (else spec['e0s_json'])")
    parser.add_argument("--model", required=True)
    parser.add_argument("--loss-curves")
    parser.add_argument("--trainable")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = json.loads(Path(args.spec[1:]).read_text() if args.spec.startswith("@") else args.spec)
    out = {"model": args.model}
    if args.loss_curves:
        out["loss_curves"] = args.loss_curves
    if args.trainable:
        out["trainable"] = args.trainable
    seconds = run(spec, args.e0s, out, args.threads, args.log)
    log.info("trained %s in %.1f s", spec["name"], seconds)


if __name__ == "__main__":
    main()
