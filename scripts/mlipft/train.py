"""Run one ``mace_run_train`` job (pretraining or fine-tune) and collect its artifacts.

The command line comes from :mod:`mlipft.registry`; this module only runs it and turns what mace
leaves behind into the workflow's artifacts, each written atomically:

- ``model.model``: the final model (LoRA already merged by mace);
- ``loss_curves.csv``: one row per (epoch, head, split) with loss and RMSEs, for every head;
- ``trainable.json``: how many parameters the optimiser really trained, counted from the Adam
  state of the last checkpoint (mace's own "trainable parameters" log line counts LoRA's frozen
  base weights too), the total, and the heads of the final model.

mace's working files live in ``<out>/mace/``, wiped before each attempt so that a stale
checkpoint is never silently resumed; with ``--resume`` (config ``resume_finetunes``) a killed
run continues from its last checkpoint instead, but only when the work directory holds the very
same run (spec and E0s, recorded in ``run_spec.json``): :func:`prepare`.

The command line (``python -m mlipft.train``, what the workflow's rules run) calls mace's own
``mace_run_train`` entry point (:func:`mace.cli.run_train.main`) inside its own interpreter
(:func:`run` with ``in_process=True``): one Python start and one torch/mace import serve the
training and the artifact collection, so the job costs what a bare ``mace_run_train`` costs plus
the collection (well under a second). The bare-equivalent command is still written to the log
(``$ mace_run_train ...``). Called as a library (``run(..., in_process=False)``, the default),
mace runs in a child process and leaves the caller's torch and logging state alone. Either way
mace runs with :mod:`mlipft.mace_fixes` (0.3.16 bugs that change results, e.g. ``--patience``
ignored off a cluster); the bare command in the log is mace's own, without them.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from . import allocator, mace_fixes
from .e0s import e0s_for_mode
from .io import atomic_path, path_list, read_json, write_json, xyz_frame_sizes
from .registry import RunSpec, build_args, strategy_from_config

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


#: The modules cuEquivariance needs on a GPU: the library and its CUDA kernels (pip packages
#: cuequivariance-torch and cuequivariance-ops-torch-cu12 or -cu13: envs/requirements-cuda*.txt,
#: ``make install CUDA=1``).
CUEQ_MODULES = ("cuequivariance_torch", "cuequivariance_ops_torch")


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def cueq_choice(device: str, mace_args: dict, requested: bool | None = None,
                installed=None) -> tuple[bool, str]:
    """Whether ``mace_run_train`` runs with ``--enable_cueq True``, and why (one line of the run's
    log). On when the run trains on CUDA and both :data:`CUEQ_MODULES` are installed, except:

    - the strategy's ``mace_args`` or the common block set ``enable_cueq`` (that value is used);
    - the run spec says ``enable_cueq: false``;
    - the strategy uses LoRA: mace-torch 0.3.16 converts the model to cuEquivariance after
      injecting the LoRA layers by building a fresh model from its configuration
      (``mace.cli.convert_e3nn_cueq.run``), which drops them and the weights they wrap (checked
      on CPU: the converted model's energy changes and every parameter becomes trainable).
    """
    if "enable_cueq" in mace_args:
        value = mace_args["enable_cueq"]
        on = value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")
        return on, "enable_cueq set in the mace arguments"
    if requested is False:
        return False, "enable_cueq: false in the run spec"
    if device != "cuda":
        return False, f"device {device}"
    if mace_args.get("lora") in (True, "True", "true"):
        return False, "LoRA: mace-torch 0.3.16 drops LoRA layers when converting a model to cuEquivariance"
    missing = [m for m in CUEQ_MODULES if not (installed or _importable)(m)]
    if missing:
        return False, f"not installed: {', '.join(missing)} (make install CUDA=1)"
    return True, "CUDA with cuequivariance-torch and its CUDA kernels"


def mace_command(args: list[str]) -> list[str]:
    """``mace_run_train`` from the running interpreter's environment."""
    exe = Path(sys.executable).with_name("mace_run_train")
    return [str(exe) if exe.exists() else "mace_run_train", *args]


def parse_loss_curves(results_dir: Path) -> pd.DataFrame:
    """Loss curves of every head from mace's ``*_train.txt`` JSON lines."""
    import pandas as pd  # already loaded by mace when training ran in this process

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
    """Parameters the optimiser updated (Adam state present) vs the final model's total.

    Cheap after an in-process training (torch and mace already imported: two small loads)."""
    import torch

    state = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    opt_state = state["optimizer"]["state"]
    trainable = int(sum(s["exp_avg"].numel() for s in opt_state.values() if "exp_avg" in s))
    model = torch.load(str(model_path), map_location="cpu", weights_only=False)
    total = int(sum(p.numel() for p in model.parameters()))
    heads = list(getattr(model, "heads", ["Default"]))
    return {"trainable": trainable, "total": total, "fraction": trainable / total, "heads": heads}


def corpus_prefix(train_file: str | list[str], fraction: float, out: Path, corpus_filter: str | None = None) -> Path:
    """The first ``fraction`` of a corpus file (at least one structure), after dropping the
    structures ``corpus_filter`` rejects (``learnable``: :func:`mlipft.mini.corpus.learnable`).
    The corpora's structures are i.i.d. in file order, so a prefix is a random subsample and a
    smaller foundation corpus (mp0 vs mpa) is nested in the larger one. A list of files is
    their union, in order."""
    from ase.io import read, write

    configs = [a for f in path_list(train_file) for a in read(f, index=":", format="extxyz")]
    if corpus_filter is not None:
        from .mini.corpus import apply_filter

        kept = apply_filter(configs, corpus_filter)
        log.info("corpus filter %s: %d of %d structures of %s", corpus_filter, len(kept), len(configs), train_file)
        configs = kept
    n = max(1, int(round(fraction * len(configs))))
    write(out, configs[:n], format="extxyz")
    log.info("training on the first %d of %d structures of %s", n, len(configs), train_file)
    return out


def foundation_in_dtype(path: str, dtype: str, work: Path) -> str:
    """The foundation model file to fine-tune in ``dtype``: ``path`` itself when the model already
    has that dtype, else a cast copy in the work directory. mace-torch 0.3.16 cannot fine-tune a
    model of another dtype than ``--default_dtype`` and does not cast a model loaded from a path
    (facts.md section 2); mace's own calculators cast a foundation to the dtype asked for, and so
    does this (float64 -> float32 rounds the weights; float32 -> float64 is exact)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"foundation model not found: {path}")
    import torch

    model = torch.load(path, map_location="cpu", weights_only=False)
    params = list(model.parameters())
    target = {"float32": torch.float32, "float64": torch.float64}[dtype]
    if not params or params[0].dtype == target:
        return path
    out = work / f"foundation.{dtype}.model"
    torch.save(model.to(target), out)
    log.info("foundation %s is %s: cast to %s for fine-tuning (%s)", path, str(params[0].dtype).replace("torch.", ""),
             dtype, out)
    return str(out)


def _absolute(path):
    """mace runs inside its work directory: every path it gets is made absolute (a list of
    corpus files stays a list)."""
    if isinstance(path, (list, tuple)):
        return [_absolute(p) for p in path]
    return None if path is None else str(Path(path).resolve())


def run_mace_in_process(args: list[str], log_handle, cwd: Path) -> int:
    """``mace_run_train <args>`` through mace's own entry point, in this interpreter.

    Output goes to ``log_handle`` (``sys.stdout``/``sys.stderr`` and file descriptors 1 and 2,
    so C-level output too) and the working directory is ``cwd``, as for the bare command; the
    root logger's handlers are swapped out meanwhile (mace installs its own) and restored after.
    Returns the exit status the bare command would have had."""
    root = logging.getLogger()
    saved_logging = root.handlers[:], root.filters[:], root.level
    saved_streams, saved_argv, saved_cwd = (sys.stdout, sys.stderr), sys.argv, os.getcwd()
    for stream in saved_streams:
        stream.flush()
    saved_fds = os.dup(1), os.dup(2)
    root.handlers, root.filters = [], []
    os.dup2(log_handle.fileno(), 1)
    os.dup2(log_handle.fileno(), 2)
    sys.stdout = sys.stderr = log_handle
    os.chdir(cwd)
    sys.argv = ["mace_run_train", *args]
    try:
        from mace.cli.run_train import main as mace_main

        for fix in mace_fixes.apply():  # mace-torch 0.3.16 bugs that change results (mlipft.mace_fixes)
            log.info("mace fix applied: %s", fix)
        mace_main()
        code = 0
    except SystemExit as exc:  # argparse errors and explicit exits, as the bare command would
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except Exception:  # as the bare command: the traceback goes to the log, the status to the caller
        traceback.print_exc()
        code = 1
    finally:
        log_handle.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for handler in root.handlers:
            handler.close()
        root.handlers, root.filters = saved_logging[0], saved_logging[1]
        root.setLevel(saved_logging[2])
    return code


#: The run's fingerprint in mace's work directory: a resumed run must be the very same run.
FINGERPRINT = "run_spec.json"
_CHECKPOINT_EPOCH = re.compile(r"_epoch-(\d+)(?:_swa)?\.pt$")


def checkpoint_error(path: Path) -> str | None:
    """Why ``torch.load`` cannot read the checkpoint (a job killed while mace was writing it
    leaves a truncated file), or None when it reads."""
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 -- any failure to read is an unusable checkpoint
        return f"{type(err).__name__}: {err}"
    return None


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch in a mace checkpoint's file name (``..._epoch-<n>[_swa].pt``), else None."""
    m = _CHECKPOINT_EPOCH.search(Path(path).name)
    return int(m.group(1)) if m else None


def resumable_epoch(work: Path, fingerprint: str) -> int | None:
    """The epoch of the latest readable mace checkpoint in ``work`` when the run there is the same
    run (its fingerprint file equals ``fingerprint``: spec and E0s), else None.

    An unreadable checkpoint is removed: mace's ``--restart_latest`` would swallow its load error
    and silently start again from epoch 0, appending a second copy of every epoch to the log
    (mace deletes the previous checkpoint before writing the next, so a kill during the write
    often leaves no other one: then the run starts afresh, cleanly)."""
    stored = work / FINGERPRINT
    if not stored.is_file() or stored.read_text() != fingerprint:
        return None
    found = sorted(((epoch, p) for p in (work / "checkpoints").glob("*.pt")
                    if (epoch := checkpoint_epoch(p)) is not None), reverse=True)
    for epoch, path in found:
        error = checkpoint_error(path)
        if error is None:
            return epoch
        log.warning("checkpoint %s cannot be read (%s), a write cut short by the kill: removed", path, error)
        path.unlink()
    return None


def truncate_log(results_dir: Path, epoch: int) -> int:
    """Drop the entries of epoch ``epoch`` and later from mace's ``*_train.txt`` (a resumed mace
    trains from its checkpoint's epoch again and appends): the loss curves then hold every epoch
    once. Returns the number of lines dropped."""
    dropped = 0
    for path in Path(results_dir).glob("*_train.txt"):
        kept = []
        for line in path.read_text().splitlines():
            entry = json.loads(line) if line.strip() else {}
            if entry.get("epoch") is not None and entry["epoch"] >= epoch:
                dropped += 1
                continue
            kept.append(line)
        with atomic_path(path) as tmp:
            Path(tmp).write_text("".join(line + "\n" for line in kept))
    return dropped


def prepare(spec: dict, e0_file: str | None, work: str | Path, resume: bool = False) -> list[str]:
    """The ``mace_run_train`` command of a run spec, with ``work`` as mace's work directory and
    the files mace reads put there (a corpus prefix, a foundation cast to the run's dtype).

    ``work`` is emptied first, unless ``resume`` and it holds a checkpoint of the very same run
    (same spec and E0s, :func:`resumable_epoch`) that did not finish (:func:`run` removes the
    fingerprint of a finished run): then mace continues from that checkpoint
    (``--restart_latest``), e.g. when SLURM requeues a fine-tune that was killed. mace saves a
    checkpoint only when the validation loss improves, with the EMA-averaged weights and
    without the EMA state, so a resumed run retrains from its best epoch so far: it reaches the
    same final epoch, not bit-identical weights."""
    strategy = strategy_from_config(spec["strategy_name"], spec["strategy"])
    e0s_json = read_json(e0_file) if e0_file else spec["e0s_json"]
    e0s = e0s_for_mode(e0s_json, spec["e0_mode"], where=str(e0_file))
    work = Path(work).resolve()
    fingerprint = json.dumps({"spec": spec, "e0s": e0s_json}, sort_keys=True)
    start = resumable_epoch(work, fingerprint) if resume else None
    if start is None:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / FINGERPRINT).write_text(fingerprint)
    else:
        dropped = truncate_log(work / "results", start)
        log.info("resuming %s from its checkpoint of epoch %d (%d log entries of later epochs dropped)",
                 work, start, dropped)
    train_file = _absolute(spec["train_file"])
    valid_file = _absolute(spec["valid_file"])
    if spec.get("corpus_fraction") is not None or spec.get("corpus_filter") or isinstance(train_file, list):
        train_file = str(corpus_prefix(train_file, float(spec.get("corpus_fraction") or 1.0),
                                       work / "train_corpus.xyz", spec.get("corpus_filter")))
    if spec.get("corpus_filter") or isinstance(valid_file, list):
        valid_file = str(corpus_prefix(valid_file, 1.0, work / "valid_corpus.xyz", spec.get("corpus_filter")))
    foundation = _absolute(spec.get("foundation_model"))
    if foundation is not None:
        foundation = foundation_in_dtype(foundation, spec["default_dtype"], work)
    # mace refuses a batch size larger than the training set, which a small fraction makes
    batch_size = min(int(spec["batch_size"]), len(xyz_frame_sizes(train_file)))
    if batch_size < int(spec["batch_size"]):
        log.warning("batch size %s > %d training configurations: using %d", spec["batch_size"], batch_size, batch_size)
    run_spec = RunSpec(
        name=spec["name"], seed=int(spec["seed"]), train_file=train_file,
        valid_file=valid_file, e0s=e0s, out_dir=str(work),
        max_num_epochs=int(spec["max_num_epochs"]), batch_size=batch_size,
        device=resolve_device(spec.get("device", "auto")), default_dtype=spec["default_dtype"],
        foundation_model=foundation, replay_file=_absolute(spec.get("replay_file")),
        num_samples_pt=spec.get("num_samples_pt"), compute_stress=bool(spec.get("compute_stress", False)),
        common=spec.get("common", {}), scratch_model=spec.get("scratch_model", {}),
    )
    use_cueq, why = cueq_choice(run_spec.device, {**run_spec.common, **strategy.mace_args}, spec.get("enable_cueq"))
    log.info("cuEquivariance: %s (%s)", "on" if use_cueq else "off", why)
    if use_cueq and "enable_cueq" not in {**run_spec.common, **strategy.mace_args}:
        run_spec = dataclasses.replace(run_spec, common={**run_spec.common, "enable_cueq": True})
    return mace_command(build_args(strategy, run_spec) + (["--restart_latest"] if start is not None else []))


def run(spec: dict, e0_file: str | None, out: dict[str, str], threads: int = 1, log_file: str | None = None,
        in_process: bool = False, work_dir: str | None = None, resume: bool = False) -> float:
    """Train one model. ``spec`` holds the strategy entry and the run context; returns seconds.

    ``in_process``: run mace's entry point in this interpreter (see the module docstring; the
    caller must have set ``OMP_NUM_THREADS`` before torch was first imported) rather than as a
    ``mace_run_train`` child process."""
    model_out = Path(out["model"]).resolve()
    work = Path(work_dir).resolve() if work_dir else model_out.parent / "mace"
    cmd = prepare(spec, e0_file, work, resume)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log.info("running: %s", shlex.join(cmd))
    start = time.perf_counter()
    with open(log_file or os.devnull, "a") as handle:
        handle.write("$ " + shlex.join(cmd) + "\n")
        handle.flush()
        if in_process:
            returncode = run_mace_in_process(cmd[1:], handle, work)
        else:
            # mace_run_train with mlipft.mace_fixes, as in process
            scripts = str(Path(__file__).resolve().parents[1])
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [scripts, env.get("PYTHONPATH")]))
            child = [sys.executable, "-m", "mlipft.mace_fixes", *cmd[1:]]
            returncode = subprocess.run(child, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=work).returncode
    seconds = time.perf_counter() - start
    if returncode != 0:
        raise RuntimeError(f"mace_run_train failed (exit {returncode}) for {spec['name']}; see {log_file}")
    collect(work, spec["name"], out)
    # a finished run is never resumed: a forced re-run of it starts afresh
    (work / FINGERPRINT).unlink(missing_ok=True)
    return seconds


def collect(work: Path, name: str, out: dict[str, str]) -> None:
    """Move mace's outputs to the workflow's artifact paths. With Stage Two (``--stage_two``/
    ``--swa``) mace saves both the stage-one model and ``<name>_stagetwo.model``, the final one."""
    candidates = [work / f"{name}_stagetwo.model", work / f"{name}.model", work / f"{name}_cpu.model"]
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
    parser.add_argument("--work-dir", help="mace's working directory (default: <model dir>/mace)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the work directory's checkpoint when it holds the same run (prepare)")
    args = parser.parse_args(argv)
    # mace runs in this interpreter: the thread count must be in the environment before torch loads
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    allocator.tune()  # freed tensors stay in the heap: no page faults on every step (mlipft.allocator)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = json.loads(Path(args.spec[1:]).read_text() if args.spec.startswith("@") else args.spec)
    out = {"model": args.model}
    if args.loss_curves:
        out["loss_curves"] = args.loss_curves
    if args.trainable:
        out["trainable"] = args.trainable
    seconds = run(spec, args.e0s, out, args.threads, args.log, in_process=True, work_dir=args.work_dir,
                  resume=args.resume)
    log.info("trained %s in %.1f s", spec["name"], seconds)


if __name__ == "__main__":
    main()
