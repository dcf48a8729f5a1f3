"""Test-set errors of a model as a tidy table (one row per run, test set and metric).

Predictions come from mace-torch's batched ``mace_eval_configs`` (``MACE_energy``,
``MACE_forces``); this module only compares them with the reference labels.

    python -m mlipft.evaluate run --configs test.xyz --model model.model --predictions pred.xyz \
        --device auto --run '{...}' --testset test --output errors.csv

resolves the device, predicts with mace's own ``eval_configs.run`` in this interpreter (no
second Python start, no re-implementation of mace's evaluation) and writes the table;
``python -m mlipft.evaluate --predictions pred.xyz ...`` only tabulates existing predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_path, read_configs
from .keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, PRED_PREFIX

METRICS = {
    "energy_rmse": "meV/atom", "energy_mae": "meV/atom",
    "force_rmse": "meV/Å", "force_mae": "meV/Å",
}


def errors(pred_file: str | Path) -> dict[str, float]:
    """Energy (per atom) and force-component errors, in meV units; isolated atoms excluded."""
    de, df = [], []
    for atoms in read_configs(pred_file):
        if atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM:
            continue
        try:
            e_pred, f_pred = atoms.info[PRED_PREFIX + "energy"], atoms.arrays[PRED_PREFIX + "forces"]
            e_ref, f_ref = atoms.info[ENERGY_KEY], atoms.arrays[FORCES_KEY]
        except KeyError as err:
            raise ValueError(f"{pred_file}: configuration without {err} (not a mace_eval_configs output?)") from err
        de.append((e_pred - e_ref) / len(atoms))
        df.append((f_pred - f_ref).ravel())
    if not de:
        raise ValueError(f"{pred_file}: no configuration to evaluate")
    de, df = 1000.0 * np.asarray(de), 1000.0 * np.concatenate(df)
    return {
        "energy_rmse": float(np.sqrt(np.mean(de**2))), "energy_mae": float(np.mean(np.abs(de))),
        "force_rmse": float(np.sqrt(np.mean(df**2))), "force_mae": float(np.mean(np.abs(df))),
        "n_configs": len(de),
    }


def tidy(values: dict[str, float], run: dict[str, str], testset: str) -> pd.DataFrame:
    n = values["n_configs"]
    rows = [{**run, "testset": testset, "metric": m, "unit": u, "value": values[m], "n_configs": n}
            for m, u in METRICS.items()]
    return pd.DataFrame(rows)


def predict(configs: str | Path, model: str | Path, output: str | Path, device: str = "auto",
            default_dtype: str = "float64", batch_size: int = 32, head: str | None = None) -> None:
    """``mace_eval_configs`` (mace's own ``eval_configs.run``) in this interpreter; ``device``
    may be ``auto``. The predictions file appears only when the evaluation succeeded."""
    from mace.cli import eval_configs

    from .train import resolve_device

    argv = ["--configs", str(configs), "--model", str(model), "--output", str(output),
            "--device", resolve_device(device), "--default_dtype", default_dtype, "--batch_size", str(batch_size)]
    if head is not None:
        argv += ["--head", head]
    saved, sys.argv = sys.argv, ["mace_eval_configs", *argv]
    try:
        args = eval_configs.parse_args()  # mace's own parser: its defaults for every other option
    finally:
        sys.argv = saved
    with atomic_path(output) as tmp:
        args.output = str(tmp)
        eval_configs.run(args)


def write_table(predictions: str | Path, run: dict[str, str], testset: str, output: str | Path) -> None:
    frame = tidy(errors(predictions), run, testset)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False)


def _table_arguments(parser: argparse.ArgumentParser, predictions_help: str) -> None:
    parser.add_argument("--predictions", required=True, help=predictions_help)
    parser.add_argument("--run", required=True, help="JSON of the run's identifiers (columns of the table)")
    parser.add_argument("--testset", required=True)
    parser.add_argument("--output", required=True)


def main(argv=None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["run"]:
        parser = argparse.ArgumentParser(prog="python -m mlipft.evaluate run",
                                         description="Predict with mace_eval_configs (in process), then tabulate")
        parser.add_argument("--configs", required=True, help="extxyz with reference labels")
        parser.add_argument("--model", required=True)
        parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
        parser.add_argument("--default-dtype", default="float64", choices=["float32", "float64"])
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--head", help="model head to evaluate (mace's default when absent)")
        _table_arguments(parser, "where to write mace_eval_configs' predictions (extxyz)")
        args = parser.parse_args(argv[1:])
        predict(args.configs, args.model, args.predictions, args.device, args.default_dtype, args.batch_size,
                args.head)
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        _table_arguments(parser, "extxyz written by mace_eval_configs")
        args = parser.parse_args(argv)
    write_table(args.predictions, json.loads(args.run), args.testset, args.output)


if __name__ == "__main__":
    main()
