"""Collect per-run results into one tidy table per figure (the plotting input)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from .io import atomic_path, xyz_frame_sizes

RUN_KEYS = ("benchmark", "trainset", "fraction", "foundation", "strategy", "e0s", "seed")


def run_keys_from_path(path: str | Path) -> dict[str, str]:
    """Identifiers of a run from its directory ``runs/<b>/<t>/f<x>/<found>/<strat>/e0-<m>/seed<s>``."""
    parts = Path(path).parent.parts
    i = len(parts) - 1 - parts[::-1].index("runs")
    b, t, f, found, strat, e0, seed = parts[i + 1 : i + 8]
    return {"benchmark": b, "trainset": t, "fraction": f[1:], "foundation": found, "strategy": strat,
            "e0s": e0[3:], "seed": seed[4:]}


def collect(files: list[str | Path]) -> pd.DataFrame:
    """Concatenate per-run CSVs, adding the run's identifiers; trainable.json files become columns."""
    frames = []
    for path in files:
        path = Path(path)
        keys = run_keys_from_path(path)
        if path.suffix == ".json":
            info = json.loads(path.read_text())
            frame = pd.DataFrame([{**keys, "trainable": info["trainable"], "total_parameters": info["total"],
                                   "trainable_fraction": info["fraction"], "heads": "+".join(info["heads"])}])
        else:
            frame = pd.read_csv(path)
            for k, v in keys.items():
                frame[k] = v
        frames.append(frame)
    if not frames:
        raise ValueError("no result files to collect")
    out = pd.concat(frames, ignore_index=True)
    first = [k for k in RUN_KEYS if k in out.columns]
    return out[first + [c for c in out.columns if c not in first]]


def training_set_sizes(files: list[str | Path]) -> pd.DataFrame:
    """Configurations in each training subset ``trainsets/<b>/<t>/f<x>/seed<s>.xyz`` (the
    subsample rule's output, isolated atoms already removed), one row per file."""
    rows = []
    for path in files:
        path = Path(path)
        parts = path.parts
        i = len(parts) - 1 - parts[::-1].index("trainsets")
        b, t, f = parts[i + 1 : i + 4]
        if not (f.startswith("f") and path.stem.startswith("seed")):
            raise ValueError(f"{path}: not a training subset trainsets/<benchmark>/<trainset>/f<x>/seed<s>.xyz")
        rows.append({"benchmark": b, "trainset": t, "fraction": f[1:], "seed": path.stem[4:],
                     "n_train": len(xyz_frame_sizes(path))})
    return pd.DataFrame(rows, columns=["benchmark", "trainset", "fraction", "seed", "n_train"])


def learning_curve(errors: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """The errors table with ``n_train``, the number of training configurations of each run."""
    keys = ["benchmark", "trainset", "fraction", "seed"]
    errors, sizes = errors.astype({k: str for k in keys}), sizes.astype({k: str for k in keys})
    out = errors.merge(sizes.drop_duplicates(keys), on=keys, how="left", validate="many_to_one")
    missing = out[out.n_train.isna()][keys].drop_duplicates()
    if len(missing):
        raise ValueError(f"no training subset file for runs {missing.to_dict('records')}")
    return out.astype({"n_train": int})


def neb_barriers(profiles: pd.DataFrame) -> pd.DataFrame:
    """Forward barrier (max relative energy along the path) of model and reference, per run and reaction."""
    keys = [k for k in RUN_KEYS if k in profiles.columns] + ["reaction"]
    barrier = profiles.groupby(keys + ["source"])["energy_ev"].max().unstack("source").reset_index()
    barrier["error_ev"] = barrier["model"] - barrier["reference"]
    return barrier.rename(columns={"model": "barrier_model_ev", "reference": "barrier_reference_ev"})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["neb_profiles", "test_errors", "learning_curve"])
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="neb.csv files (neb_profiles); errors_*.csv and trainable.json files (test_errors), "
                        "and the training subsets' .xyz files (learning_curve)")
    parser.add_argument("--output", required=True, help="profiles (neb_profiles) or errors (test_errors) table")
    parser.add_argument("--extra", required=True, help="barriers (neb_profiles) or trainable (test_errors) table")
    args = parser.parse_args(argv)
    if args.kind == "neb_profiles":
        table = collect(args.inputs)
        extra = neb_barriers(table)
    else:
        table = collect([p for p in args.inputs if p.endswith(".csv")])
        extra = collect([p for p in args.inputs if p.endswith(".json")])
        if args.kind == "learning_curve":
            table = learning_curve(table, training_set_sizes([p for p in args.inputs if p.endswith(".xyz")]))
    for path, frame in ((args.output, table), (args.extra, extra)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)


if __name__ == "__main__":
    main()
