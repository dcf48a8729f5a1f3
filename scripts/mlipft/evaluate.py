"""Test-set errors of a model as a tidy table (one row per run, test set and metric).

Predictions come from mace-torch's batched ``mace_eval_configs`` (``MACE_energy``,
``MACE_forces``); this module only compares them with the reference labels.
"""

from __future__ import annotations

import argparse
import json
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", required=True, help="extxyz written by mace_eval_configs")
    parser.add_argument("--run", required=True, help="JSON of the run's identifiers (columns of the table)")
    parser.add_argument("--testset", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    frame = tidy(errors(args.predictions), json.loads(args.run), args.testset)
    with atomic_path(args.output) as tmp:
        frame.to_csv(tmp, index=False)


if __name__ == "__main__":
    main()
