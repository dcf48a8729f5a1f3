"""Errors of a model on one or more evaluation sets, per structure (kept, so that violins,
per-phase breakdowns and held-out comparisons never re-evaluate a model).

Predictions come from mace-torch's batched ``mace_eval_configs`` (mace's own ``eval_configs.run``
in this interpreter: ``MACE_energy``, ``MACE_forces``, ``MACE_stress``); this module compares
them with the reference labels. One call evaluates every set of a model: importing mace is most
of an evaluation's cost (~4 s of ~6 s on a CPU), so it is paid once per model.

    python -m mlipft.analysis.errors --model model.model --evalset test=test.xyz \
        --evalset pretraining_pt=pretraining.xyz --head pretraining_pt=pt_head \
        --device auto --run '{...}' --output errors.csv

One row per structure and set (isolated atoms excluded): the run's keys, ``evalset``, ``index``
(frame of the file), ``config_type``, ``n_atoms``, the energy error per atom (meV/atom), the sums
of squared and absolute force-component errors and their count (meV/Å), and the stress error
when both sides carry one. :func:`summary` turns them into RMSE/MAE rows (what the figures plot).
``--predictions`` tabulates predictions already written (one set, no model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path, named_values, read_configs
from ..keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, PRED_PREFIX, STRESS_KEY

#: Summary metrics and their units.
METRICS = {
    "energy_rmse": "meV/atom", "energy_mae": "meV/atom",
    "force_rmse": "meV/Å", "force_mae": "meV/Å",
}


def _stress(atoms, key: str, where: str):
    value = atoms.info.get(key)
    if value is None:
        return None
    value = np.asarray(value, float)
    if value.size == 6:  # Voigt (xx, yy, zz, yz, xz, xy)
        xx, yy, zz, yz, xz, xy = value
        value = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if value.size != 9:
        raise ValueError(f"{where}: {key} has {value.size} components (expected 6 or 9)")
    return value.reshape(3, 3)


def per_structure(pred_file: str | Path) -> pd.DataFrame:
    """One row per non-isolated structure of a ``mace_eval_configs`` output (units: meV)."""
    rows = []
    for index, atoms in enumerate(read_configs(pred_file)):
        if atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM:
            continue
        where = f"{pred_file}: frame {index}"
        try:
            e_pred, f_pred = atoms.info[PRED_PREFIX + "energy"], atoms.arrays[PRED_PREFIX + "forces"]
            e_ref, f_ref = atoms.info[ENERGY_KEY], atoms.arrays[FORCES_KEY]
        except KeyError as err:
            raise ValueError(f"{where}: no {err} (not a mace_eval_configs output of labelled data?)") from None
        df = 1000.0 * (f_pred - f_ref).ravel()
        row = {
            "index": index, "config_type": atoms.info.get(CONFIG_TYPE_KEY, ""), "n_atoms": len(atoms),
            "energy_ref_ev": float(e_ref), "energy_pred_ev": float(e_pred),
            "energy_error": 1000.0 * ((e_pred - e_ref) / len(atoms)),  # the order of the previous tables
            "force_sq_sum": float(np.sum(df**2)), "force_abs_sum": float(np.sum(np.abs(df))),
            "force_max": float(np.max(np.abs(df))) if df.size else 0.0, "n_force_components": int(df.size),
        }
        s_pred, s_ref = _stress(atoms, PRED_PREFIX + "stress", where), _stress(atoms, STRESS_KEY, where)
        if s_pred is not None and s_ref is not None:
            row["stress_rmse"] = float(1000.0 * np.sqrt(np.mean((s_pred - s_ref) ** 2)))  # meV/Å^3
        rows.append(row)
    if not rows:
        raise ValueError(f"{pred_file}: no configuration to evaluate")
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """RMSE and MAE rows (``metric``, ``unit``, ``value``, ``n_configs``) per group of ``keys``
    from per-structure rows: energies over structures, forces over all force components."""
    out = []
    for group, sub in frame.groupby(keys, sort=False, dropna=False):
        group = group if isinstance(group, tuple) else (group,)
        de = sub["energy_error"].to_numpy()
        n = sub["n_force_components"].sum()
        values = {
            "energy_rmse": float(np.sqrt(np.mean(de**2))), "energy_mae": float(np.mean(np.abs(de))),
            "force_rmse": float(np.sqrt(sub["force_sq_sum"].sum() / n)), "force_mae": float(sub["force_abs_sum"].sum() / n),
        }
        base = dict(zip(keys, group))
        out += [{**base, "metric": m, "unit": u, "value": values[m], "n_configs": len(sub)} for m, u in METRICS.items()]
    return pd.DataFrame(out)


def predict(configs: str | Path, model: str | Path, output: str | Path, device: str = "auto",
            default_dtype: str = "float64", batch_size: int = 32, head: str | None = None,
            compute_stress: bool = False) -> None:
    """``mace_eval_configs`` (mace's own ``eval_configs.run``) in this interpreter; ``device``
    may be ``auto``. The predictions file appears only when the evaluation succeeded."""
    from mace.cli import eval_configs

    from ..train import resolve_device

    argv = ["--configs", str(configs), "--model", str(model), "--output", str(output),
            "--device", resolve_device(device), "--default_dtype", default_dtype, "--batch_size", str(batch_size)]
    if head is not None:
        argv += ["--head", head]
    if compute_stress:
        argv += ["--compute_stress"]
    saved, sys.argv = sys.argv, ["mace_eval_configs", *argv]
    try:
        args = eval_configs.parse_args()  # mace's own parser: its defaults for every other option
    finally:
        sys.argv = saved
    with atomic_path(output) as tmp:
        args.output = str(tmp)
        eval_configs.run(args)


def table_of(predictions: str | Path, run: dict[str, str], evalset: str) -> pd.DataFrame:
    """The per-structure table of a run on one evaluation set, keys first."""
    frame = per_structure(predictions)
    keys = {**run, "evalset": evalset}
    for i, (k, v) in enumerate(keys.items()):
        frame.insert(i, k, v)
    return frame


def write_table(predictions: str | Path, run: dict[str, str], evalset: str, output: str | Path) -> pd.DataFrame:
    """The per-structure table of a run on one evaluation set, keys first, written to ``output``."""
    frame = table_of(predictions, run, evalset)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def evaluate(model: str | Path, evalsets: dict[str, str | Path], run: dict[str, str], output: str | Path,
             heads: dict[str, str] | None = None, device: str = "auto", default_dtype: str = "float64",
             batch_size: int = 32, compute_stress: bool = False) -> pd.DataFrame:
    """Errors of ``model`` on every set of ``evalsets`` (name -> extxyz), in that order, as one
    per-structure table written to ``output`` (nothing is written unless every set succeeds);
    ``heads`` names the head of a set (mace's default when absent). The predictions go to a
    temporary folder beside ``output``, removed afterwards."""
    import tempfile

    heads = heads or {}
    unknown = sorted(set(heads) - set(evalsets))
    if unknown:
        raise ValueError(f"--head for evaluation sets not evaluated: {unknown} (sets: {list(evalsets)})")
    if not evalsets:
        raise ValueError("no evaluation set (--evalset NAME=FILE)")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    frames = []
    with tempfile.TemporaryDirectory(prefix=".predictions-", dir=Path(output).parent) as tmp:
        for name, configs in evalsets.items():
            pred = Path(tmp) / f"{name}.xyz"
            predict(configs, model, pred, device, default_dtype, batch_size, heads.get(name), compute_stress)
            frames.append(table_of(pred, run, name))
    frame = pd.concat(frames, ignore_index=True)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def main(argv=None) -> None:
    from .. import allocator

    allocator.tune()  # no page faults on every batch (mlipft.allocator)
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.errors", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the model to evaluate")
    parser.add_argument("--evalset", action="append", metavar="NAME=FILE",
                        help="an evaluation set and its extxyz with reference labels (repeat for several)")
    parser.add_argument("--head", action="append", metavar="NAME=HEAD",
                        help="the model head evaluation set NAME reads (mace's default when absent)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--default-dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--compute-stress", action="store_true", help="predict stresses too (periodic sets)")
    parser.add_argument("--predictions", help="tabulate these mace_eval_configs predictions instead of evaluating "
                        "(one --evalset NAME, no file)")
    parser.add_argument("--run", required=True, help="JSON of the run's keys (columns of the table)")
    parser.add_argument("--output", required=True, help="per-structure CSV")
    args = parser.parse_args(argv)
    run = json.loads(args.run)
    if args.predictions:
        if not args.evalset or len(args.evalset) != 1 or "=" in args.evalset[0]:
            parser.error("--predictions needs exactly one --evalset NAME (no file)")
        write_table(args.predictions, run, args.evalset[0], args.output)
        return
    if not args.model:
        parser.error("--model is required (or --predictions to tabulate existing predictions)")
    evaluate(args.model, named_values(args.evalset, "--evalset"), run, args.output, named_values(args.head, "--head"),
             args.device, args.default_dtype, args.batch_size, args.compute_stress)


if __name__ == "__main__":
    main()
