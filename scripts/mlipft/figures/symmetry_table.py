"""Symmetry check of every fine-tuned model (:mod:`mlipft.analysis.symmetry`) as a table: are
energies invariant and forces covariant under rotations, reflections, translations and atom
permutations, to float64 rounding?

Per run, ``symmetry.csv`` of ``python -m mlipft.analysis.symmetry`` (the run's keys come from its
path): one row per transformation kind with the largest energy deviation (eV/atom), the largest
and mean force deviation (eV/A), the tolerances and whether both were met. The ``symmetry``
table is every row with the run's keys.

Plot: two heat maps side by side, energy and force, one row per model (strategy, and the grid
axes that vary besides it, e.g. the benchmark) and one column per transformation kind, coloured
by log10 of the largest deviation (over the run's seeds: the worst one) on a diverging scale
centred on the tolerance (blue below, red above), each cell annotated with its value; a cell
above its tolerance is framed and marked with a cross. A deviation of exactly zero is drawn at
1e-16 and annotated ``0``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import STYLE, collect_runs, pyplot, save, settings

DESCRIPTION = ("Symmetry check of every model (float64): the largest energy (eV/atom) and force (eV/Å) deviation "
               "under random rotations, reflections, translations and atom permutations of test structures, "
               "strategies x transformations on a log scale centred on the tolerance; failures marked.")
TABLES = ("symmetry",)
#: Columns every per-run file must have (mlipft.analysis.symmetry.COLUMNS).
COLUMNS = ("transformation", "n_structures", "n_transforms", "max_energy_dev_ev_per_atom",
           "max_force_dev_ev_per_angstrom", "mean_force_dev_ev_per_angstrom", "tolerance_energy",
           "tolerance_force", "passed")
TRANSFORMATIONS = ("rotation", "reflection", "translation", "permutation")
#: The two panels: deviation column, tolerance column, colour-bar label, unit.
PANELS = (("max_energy_dev_ev_per_atom", "tolerance_energy", "energy", "eV/atom"),
          ("max_force_dev_ev_per_angstrom", "tolerance_force", "force", "eV/Å"))
#: A deviation of zero (exact cancellation) is drawn at this value.
FLOOR = 1e-16


def _shown(fig) -> list[str]:
    from ..config import as_list

    return [str(t) for t in as_list(fig.get("symmetry_transformations") or [])]


def check(config, name, fig, axes):
    shown = _shown(fig)
    unknown = [t for t in shown if t not in TRANSFORMATIONS]
    if unknown:
        return f".symmetry_transformations: {unknown} are not transformations of mlipft.analysis.symmetry " \
               f"{list(TRANSFORMATIONS)}"
    if len(set(shown)) != len(shown):
        return f".symmetry_transformations: listed twice: {sorted({t for t in shown if shown.count(t) > 1})}"
    return None


def inputs(config, name, runs, paths):
    return {"symmetry": [paths.run_file(r, "symmetry") for r in runs]}


def _bool(values: pd.Series, where: str) -> pd.Series:
    def one(v):
        if isinstance(v, str):
            if v.strip().lower() in ("true", "1"):
                return True
            if v.strip().lower() in ("false", "0"):
                return False
            raise ValueError(f"{where}: 'passed' is {v!r}, not true or false")
        return bool(v)

    return values.map(one).astype(bool)


def collect(inputs, spec):
    files = list(inputs.get("symmetry") or [])
    for path in files:  # an error names the file
        header = pd.read_csv(path, nrows=0).columns
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: no columns {missing} (a symmetry.csv of mlipft.analysis.symmetry has {list(COLUMNS)})")
    table = collect_runs(files)
    unknown = sorted(set(table.transformation) - set(TRANSFORMATIONS))
    if unknown:
        raise ValueError(f"symmetry files: unknown transformations {unknown} (known: {list(TRANSFORMATIONS)})")
    table["passed"] = _bool(table.passed, "symmetry files")
    shown = _shown(spec.get("entry") or {})
    if shown:
        absent = [t for t in shown if t not in set(table.transformation)]
        if absent:
            raise ValueError(f"symmetry_transformations {absent} are in no run's symmetry.csv")
        table = table[table.transformation.isin(shown)].reset_index(drop=True)
    return {"symmetry": table}


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def rows(table: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """One row per model and transformation: the worst over seeds (and over fractions, were they
    to vary) of the largest deviations, the strictest tolerance, ``failed`` (a seed above its
    tolerance), ``n_seeds``; the model's label (``row``) and its setting (the grid axes that vary
    besides the strategy), in the order of settings then strategies (registry order)."""
    frame = table.assign(setting=settings(table, spec).values, strategy=table.strategy.astype(str))
    for column, tolerance, _, _ in PANELS:
        frame[f"failed_{column}"] = frame[column] > frame[tolerance]
    grouped = frame.groupby(["setting", "strategy", "transformation"], sort=False)
    out = grouped.agg(**{c: (c, "max") for c, _, _, _ in PANELS}, **{t: (t, "min") for _, t, _, _ in PANELS},
                      **{f"failed_{c}": (f"failed_{c}", "any") for c, _, _, _ in PANELS},
                      n_seeds=("seed", "nunique"), n_structures=("n_structures", "max"),
                      n_transforms=("n_transforms", "max")).reset_index()
    labels = spec.get("labels") or {}
    order = {s: i for i, s in enumerate(labels)}
    settings_order = {s: i for i, s in enumerate(dict.fromkeys(frame.setting))}
    out["row"] = [labels.get(s, s) + (f" · {g}" if g else "") for s, g in zip(out.strategy, out.setting)]
    out = out.assign(_g=out.setting.map(settings_order), _s=out.strategy.map(lambda s: order.get(s, len(order))))
    return out.sort_values(["_g", "_s"], kind="stable").drop(columns=["_g", "_s"]).reset_index(drop=True)


def plot(tables, spec, outputs):
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    table = tables["symmetry"]
    data = rows(table, spec)
    shown = _shown(spec.get("entry") or {})
    columns = [t for t in (shown or TRANSFORMATIONS) if t in set(data.transformation)]
    models = list(dict.fromkeys(data.row))
    settings_of = dict(zip(data.row, data.setting))
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(2.0 + 2 * (1.15 * len(columns) + 1.6), max(3.4, 1.9 + 0.38 * len(models))),
                                 squeeze=False, layout="constrained")
        tolerance_notes = []
        for ax, (column, tolerance, what, unit) in zip(axes[0], PANELS):
            grid = data.pivot(index="row", columns="transformation", values=column).reindex(index=models, columns=columns)
            failed = data.pivot(index="row", columns="transformation",
                                values=f"failed_{column}").reindex(index=models, columns=columns)
            values = np.log10(np.maximum(grid.to_numpy(float), FLOOR))
            tolerances = sorted(data[tolerance].dropna().unique())
            centre = float(np.log10(tolerances[0])) if tolerances else -8.0
            finite = values[np.isfinite(values)]
            low = min(float(finite.min()) if finite.size else centre - 1, centre - 1)
            high = max(float(finite.max()) if finite.size else centre + 3, centre + 3)  # red: above the tolerance
            image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", aspect="auto",
                              norm=TwoSlopeNorm(vcenter=centre, vmin=low, vmax=high))
            for i in range(len(models)):
                for j in range(len(columns)):
                    raw = grid.iat[i, j]
                    if pd.isna(raw):
                        ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.4")
                        continue
                    bad = bool(failed.iat[i, j])
                    v = values[i, j]  # how deep the colour is, on its side of the tolerance
                    shade = (v - centre) / (high - centre) if v > centre else (centre - v) / (centre - low)
                    ax.text(j, i, ("✗ " if bad else "") + _fmt(float(raw)), ha="center", va="center", fontsize=7,
                            fontweight="bold" if bad else "normal", color="white" if shade > 0.6 else "black")
                    if bad:
                        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=2.0))
            ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
            ax.set_yticks(range(len(models)), models if ax is axes[0][0] else [""] * len(models))
            ax.tick_params(length=0)
            for i in range(1, len(models)):  # a line between settings (e.g. benchmarks)
                if settings_of[models[i]] != settings_of[models[i - 1]]:
                    ax.axhline(i - 0.5, color="black", lw=1.2)
            tol = ", ".join(_fmt(t) for t in tolerances)
            ax.set_title(f"largest |Δ{'E' if what == 'energy' else 'F'}| ({unit}), tolerance {tol}")
            bar = fig.colorbar(image, ax=ax, fraction=0.06, pad=0.03)
            bar.set_label(f"log10 |Δ{'E' if what == 'energy' else 'F'}| ({unit})")
            bar.ax.axhline(centre, color="black", lw=1.5)
            tolerance_notes.append(f"{what} {tol} {unit}")
        n_structures = "/".join(str(int(v)) for v in sorted(data.n_structures.unique()))
        n_transforms = "/".join(str(int(v)) for v in sorted(data.n_transforms.unique()))
        seeds = int(data.n_seeds.max())
        failures = int(data[[f"failed_{c}" for c, _, _, _ in PANELS]].any(axis=1).sum())
        note = (f"{n_structures} test structures x {n_transforms} random transformations of each kind per model"
                + (f", the worst of {seeds} seeds" if seeds > 1 else "")
                + f"\ntolerance: {' and '.join(tolerance_notes)}; "
                + (f"✗ framed: {failures} model x transformation cell{'s' if failures > 1 else ''} above it"
                   if failures else "every cell below it"))
        fig.suptitle("Symmetry check (float64): energy invariance and force covariance of every model\n" + note)
        save(fig, outputs)


__all__ = ["COLUMNS", "DESCRIPTION", "TABLES", "check", "collect", "inputs", "plot", "rows"]

