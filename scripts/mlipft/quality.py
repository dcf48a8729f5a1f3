"""Zero-shot quality of a foundation model on labelled datasets (one row per dataset).

The model is evaluated in batches by :func:`mlipft.analysis.predict.predict` (mace-torch's own
data pipeline, as ``mace_eval_configs`` does; through the model's ``Default`` head, else its
last); this module only compares the predictions with the reference labels (``REF_energy``,
``REF_forces``). Rows with ``config_type=IsolatedAtom`` are skipped.

Columns of :func:`evaluate`:

- ``dataset``, ``n_configs`` (configurations evaluated), ``n_atoms`` (their atoms, in total);
- ``energy_rmse_mev_per_atom``: per-atom energy RMSE with the model as it is (its own E0s);
- ``energy_rmse_refit_mev_per_atom``: the same after a per-element least-squares refit of the
  energy offsets, i.e. the error left when the E0s are refitted to the dataset. When the dataset
  is at another level of theory than the foundation (GFN2-xTB vs GFN1-xTB), the raw error is
  dominated by the different atomic reference energies, and this is the meaningful number. The
  fit minimises exactly the reported metric, so it is never larger than the raw one (equal when
  the model's offsets are already optimal);
- ``refit_rank`` and ``n_elements``: rank of the least-squares problem (element fractions per
  configuration) and the number of elements. When ``refit_rank < n_elements`` the compositions
  are linearly dependent (e.g. every configuration has the same stoichiometry); the individual
  offsets are then not determined (numpy returns the minimum-norm solution), but the refitted
  RMSE still is: it is the residual of a projection, unique whatever the solution chosen;
- ``force_rmse_mev_per_A``, ``force_mae_mev_per_A``: over all force components (NaN when the
  dataset has no ``REF_forces``).

CLI::

    python -m mlipft.quality evaluate --model M --name FOUNDATION --dataset NAME=PATH ...
        [--level-of NAME=LEVEL ...] [--device auto|cpu|cuda (auto)] [--default-dtype float64]
        [--batch-size 32] [--threads N] --output out.csv
    python -m mlipft.quality table --inputs a.csv b.csv ... --output quality.csv

``evaluate`` adds the columns ``foundation`` (``--name``) and ``level`` (``--level-of``, empty when
not given); ``table`` concatenates such CSVs sorted by (foundation, dataset). The data card
(:mod:`mlipft.datacard`) expects the common test set as dataset ``test`` and each benchmark's
test file as the dataset named after the benchmark (e.g. ``--dataset sn2=.../sn2/test.xyz``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from ase.data import chemical_symbols

from .analysis.predict import load_model, predict
from .io import atomic_path, named_values, read_configs
from .keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM

log = logging.getLogger(__name__)

COLUMNS = [
    "dataset", "n_configs", "n_atoms", "energy_rmse_mev_per_atom", "energy_rmse_refit_mev_per_atom",
    "refit_rank", "n_elements", "force_rmse_mev_per_A", "force_mae_mev_per_A",
]
TABLE_KEYS = ["foundation", "dataset"]


def labelled_configs(path: str | Path) -> list:
    """Non-isolated-atom configurations of an extxyz file; each needs ``REF_energy``."""
    configs = [a for a in read_configs(path) if a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM]
    if not configs:
        raise ValueError(f"{path}: no configuration to evaluate (only IsolatedAtom rows, or empty)")
    missing = [i for i, a in enumerate(configs) if ENERGY_KEY not in a.info]
    if missing:
        raise ValueError(f"{path}: {len(missing)} configuration(s) without {ENERGY_KEY} "
                         f"(first: index {missing[0]} among the non-isolated ones)")
    return configs


def check_elements(model, atoms_list, path) -> None:
    known = {int(z) for z in model.atomic_numbers}
    seen = {int(z) for a in atoms_list for z in a.numbers}
    unknown = sorted(seen - known)
    if unknown:
        raise ValueError(f"{path}: elements {[chemical_symbols[z] for z in unknown]} are unknown to the "
                         f"model (it knows {[chemical_symbols[z] for z in sorted(known)]})")


def refit_offsets(de_per_atom: np.ndarray, atoms_list) -> tuple[np.ndarray, np.ndarray, int, list[int]]:
    """Per-element least-squares offsets of per-atom energy residuals.

    Solves ``min_c sum_i (d_i - sum_z x_iz c_z)^2`` with ``x_iz`` the fraction of element ``z`` in
    configuration ``i`` and ``d_i`` its per-atom residual, i.e. it minimises the per-atom RMSE
    itself. Returns (residuals after the fit, offsets c per element, rank, element list).
    """
    zs = sorted({int(z) for a in atoms_list for z in a.numbers})
    fractions = np.array([[np.count_nonzero(a.numbers == z) / len(a) for z in zs] for a in atoms_list])
    offsets, _, rank, _ = np.linalg.lstsq(fractions, de_per_atom, rcond=None)
    return de_per_atom - fractions @ offsets, offsets, int(rank), zs


def errors(atoms_list, energies: np.ndarray, forces: list[np.ndarray]) -> dict:
    """The metric columns (meV units) of predictions against the REF_ labels."""
    n_atoms = np.array([len(a) for a in atoms_list])
    ref = np.array([float(a.info[ENERGY_KEY]) for a in atoms_list])
    de = (energies - ref) / n_atoms
    resid, _, rank, zs = refit_offsets(de, atoms_list)
    with_forces = [i for i, a in enumerate(atoms_list) if FORCES_KEY in a.arrays]
    if with_forces:
        df = np.concatenate([(forces[i] - atoms_list[i].arrays[FORCES_KEY]).ravel() for i in with_forces])
        f_rmse, f_mae = float(1000.0 * np.sqrt(np.mean(df**2))), float(1000.0 * np.mean(np.abs(df)))
    else:
        f_rmse = f_mae = float("nan")
    return {
        "n_configs": len(atoms_list), "n_atoms": int(n_atoms.sum()),
        "energy_rmse_mev_per_atom": float(1000.0 * np.sqrt(np.mean(de**2))),
        "energy_rmse_refit_mev_per_atom": float(1000.0 * np.sqrt(np.mean(resid**2))),
        "refit_rank": rank, "n_elements": len(zs),
        "force_rmse_mev_per_A": f_rmse, "force_mae_mev_per_A": f_mae,
    }


def evaluate(model_path: str | Path, datasets: dict[str, str | Path], device: str = "cpu",
             default_dtype: str = "float64", batch_size: int = 32,
             filters: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per dataset (columns :data:`COLUMNS`) of the model's zero-shot errors.
    ``filters`` maps a dataset to a corpus filter (``learnable``: only the structures
    :func:`mlipft.mini.corpus.learnable` keeps, as the foundations were trained on)."""
    from .train import resolve_device  # the one place that turns `device: auto` into a device

    device = resolve_device(device)
    model = load_model(model_path, device, default_dtype)
    loaded = {}
    for name, path in datasets.items():  # every file is checked before the first evaluation
        loaded[name] = labelled_configs(path)
        corpus_filter = (filters or {}).get(name)
        if corpus_filter is not None:
            from .mini.corpus import CORPUS_FILTERS, apply_filter

            if corpus_filter not in CORPUS_FILTERS:
                raise ValueError(f"unknown filter {corpus_filter!r} for dataset {name} "
                                 f"(known: {', '.join(CORPUS_FILTERS)})")
            loaded[name] = apply_filter(loaded[name], corpus_filter)
            if not loaded[name]:
                raise ValueError(f"{path}: the {corpus_filter} filter leaves no configuration of dataset {name}")
        check_elements(model, loaded[name], path)
    rows = []
    for name, atoms_list in loaded.items():
        pred = predict(model, atoms_list, device, batch_size)
        rows.append({"dataset": name, **errors(atoms_list, pred.energy, pred.forces)})
        log.info("%s on %s: %s", model_path, name, rows[-1])
    return pd.DataFrame(rows, columns=COLUMNS)


def table(inputs: list[str | Path]) -> pd.DataFrame:
    """Concatenate per-foundation CSVs, sorted by foundation and dataset."""
    frames = [pd.read_csv(p) for p in inputs]
    frame = pd.concat(frames, ignore_index=True)
    missing = [k for k in TABLE_KEYS if k not in frame.columns]
    if missing:
        raise ValueError(f"quality tables without columns {missing}: {[str(p) for p in inputs]}")
    dup = frame.duplicated(TABLE_KEYS)
    if dup.any():
        raise ValueError(f"duplicated (foundation, dataset) rows: {frame.loc[dup, TABLE_KEYS].values.tolist()}")
    return frame.sort_values(TABLE_KEYS, kind="stable").reset_index(drop=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="errors of one model on labelled datasets")
    ev.add_argument("--model", required=True, help="MACE model (.model)")
    ev.add_argument("--name", required=True, help="foundation name (the 'foundation' column)")
    ev.add_argument("--dataset", action="append", required=True, metavar="NAME=PATH",
                    help="labelled extxyz; repeat for several")
    ev.add_argument("--level-of", action="append", metavar="NAME=LEVEL",
                    help="level of theory of a dataset (the 'level' column); repeat")
    ev.add_argument("--filter", action="append", metavar="NAME=FILTER",
                    help="evaluate only the structures of dataset NAME that FILTER keeps (learnable)")
    ev.add_argument("--device", default="auto", help="auto (cuda when torch sees a GPU), cpu or cuda")
    ev.add_argument("--default-dtype", default="float64")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ev.add_argument("--output", required=True, help="CSV to write")
    tb = sub.add_parser("table", help="concatenate per-foundation CSVs")
    tb.add_argument("--inputs", nargs="+", required=True)
    tb.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "evaluate":
        import torch

        torch.set_num_threads(args.threads)
        datasets = named_values(args.dataset, "--dataset")
        levels = named_values(args.level_of, "--level-of")
        unknown = sorted(set(levels) - set(datasets))
        if unknown:
            raise SystemExit(f"--level-of names datasets that were not given: {unknown}")
        filters = named_values(args.filter, "--filter")
        frame = evaluate(args.model, datasets, args.device, args.default_dtype, args.batch_size, filters)
        frame.insert(0, "foundation", args.name)
        frame.insert(2, "level", [levels.get(d, "") for d in frame["dataset"]])
    else:
        frame = table(args.inputs)
    with atomic_path(args.output) as tmp:
        frame.to_csv(tmp, index=False)


if __name__ == "__main__":
    main()
