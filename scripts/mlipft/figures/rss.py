"""Holes in the potential energy surface found by random structure search (the paper's Fig. 11 and
Fig. 16): random crystals over several compositions of a benchmark's elements, relaxed with each
model at several pressures with relax-rattle cycles, and flagged by four criteria (distance,
energy, cell, disagreement; :mod:`mlipft.analysis.rss`). The figure reports the fraction of flagged
structures of every fine-tuned model against the foundation before fine-tuning.

Inputs by role: ``rss``, each run's ``rss.csv`` (one row per structure x pressure x relax-rattle
cycle: ``structure_id, composition, n_atoms, pressure_gpa, cycle, status, ..., flag_distance,
flag_energy, flag_cell, flag_disagreement, flagged, source``, the flags 0/1 or empty where not
evaluable; the run's keys come from its path); ``foundation``, the same table of each foundation of
the grid before fine-tuning on each benchmark (:func:`foundation_file`); ``loss_curves`` for the
convergence marks.

Tables:

- ``structures``: one row per run (and foundation) x structure x pressure, ``role`` model or
  foundation (a foundation's row carries only its benchmark and foundation among the run keys):
  ``composition``, ``n_atoms``, ``n_cycles``, ``status`` (the worst over the cycles: converged <
  unconverged < diverged < error) and each flag of :data:`FLAGS`, the maximum over the cycles (a
  structure is flagged when any of its cycles is; empty only when no cycle could be judged);
- ``fractions``: one row per run (and foundation) x pressure: ``n_structures`` (at that pressure),
  ``n_flagged``, ``n_diverged``, the fraction of the structures flagged by each criterion
  (:data:`CRITERIA`, a structure not judged counting as not flagged, as
  :func:`mlipft.analysis.rss.flagged_fractions` does; but empty when no structure could be judged
  by it) and by any (``flagged``), ``n_evaluated_<criterion>`` (and ``n_evaluated_flagged``),
  ``delta_flagged`` (``flagged`` minus the foundation's on the same benchmark and pressure; empty
  for the foundation rows) and the runs' convergence columns.

Plot: rows are the foundation before fine-tuning (the baseline, first) and every model, a strategy
(registry order) and, where the strategy comes in several variants, the variant (its label, or the
entry's ``variant_labels``); each cell the flagged fraction, mean over seeds, and under it in
parentheses the change from the foundation; one colour scale 0..1. With one training-data fraction
(Fig. 16) one heat map with the pressures as columns; with several (Fig. 11) one heat map per
pressure with the fractions as columns. Beside (one fraction) or below (several) the flagged
fraction per criterion at each pressure, for the largest fraction: why structures are flagged.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import RUN_KEYS
from .common import (
    STYLE,
    collect_runs,
    convergence,
    convergence_note,
    pyplot,
    save,
    settings,
    with_convergence,
)

DESCRIPTION = ("Random structure search for holes in the potential energy surface: the fraction of random crystals "
               "of the benchmark's elements, relaxed with each model at each pressure, flagged by any criterion "
               "(distance, energy, cell, disagreement), mean over seeds, with the change from the foundation before "
               "fine-tuning; and the flagged fraction per criterion.")
TABLES = ("structures", "fractions")
#: The flagging criteria, each a column ``flag_<criterion>`` of the per-run table.
CRITERIA = ("distance", "energy", "cell", "disagreement")
FLAGS = tuple(f"flag_{c}" for c in CRITERIA) + ("flagged",)
#: A structure's status over its cycles: the worst one.
STATUSES = ("converged", "unconverged", "diverged", "error")
FOUNDATION_ROLE = "foundation"
#: Grid axes besides the strategy and the variant whose values join a row's label when they vary.
LABEL_AXES = ("benchmark", "trainset", "foundation", "e0s")
#: Keys of a heat-map row (a model: every run key but the fraction and the seed).
ROW_KEYS = ("benchmark", "trainset", "foundation", "strategy", "e0s", "variant")


def foundation_file(config, benchmark: str, foundation: str, paths) -> str:
    """The RSS table of a foundation before fine-tuning on a benchmark's elements (the baseline)."""
    return f"{paths.results}/rss/{benchmark}/foundation-{foundation}.csv"


def check(config, name, fig, axes):
    benches = config.get("benchmarks") or {}
    missing = [b for b in axes["benchmark"] if "units" not in ((benches.get(b) or {}).get("rss") or {})]
    if missing:
        return (f".benchmark: {missing} declare no random structure search (benchmarks.<b>.rss: its compositions "
                f"in formula units, units)")
    scale = (config.get("scales") or {}).get(config.get("scale"), {})
    if "rss" not in scale:
        return (f".kind: an rss figure needs the search's parameters of scale {config.get('scale')!r} "
                f"(scales.{config.get('scale')}.rss, {{}} for the defaults)")
    return None


def inputs(config, name, runs, paths):
    from ..config import grid

    axes = grid(config, name)
    return {"rss": [paths.run_file(r, "rss") for r in runs],
            "foundation": [foundation_file(config, b, f, paths) for b in axes["benchmark"] for f in axes["foundation"]],
            "loss_curves": [paths.run_file(r, "loss_curves") for r in runs]}


# ----------------------------------------------------------------------------- collect
def _foundations(files) -> pd.DataFrame | None:
    frames = []
    for path in files or []:
        stem = Path(path).stem
        if not stem.startswith("foundation-"):
            raise ValueError(f"{path}: a foundation's RSS table is named foundation-<name>.csv")
        frames.append(pd.read_csv(path).assign(benchmark=Path(path).parent.name, foundation=stem[len("foundation-"):]))
    return pd.concat(frames, ignore_index=True) if frames else None


def _flag(values: pd.Series) -> pd.Series:
    """0/1 flags as floats (True/False and empty cells too)."""
    return values.map(lambda v: {"true": 1.0, "false": 0.0}.get(str(v).strip().lower(), v)).astype(float)


def structures_table(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per ``keys`` x structure x pressure from the per-cycle rows: each flag the maximum
    over the cycles (empty only when every cycle's is), the worst status, the number of cycles."""
    rows = rows.copy()
    for flag in FLAGS:
        rows[flag] = _flag(rows[flag]) if flag in rows.columns else np.nan
    if rows["flagged"].isna().all():  # no flagged column: any criterion
        rows["flagged"] = rows[[f"flag_{c}" for c in CRITERIA]].max(axis=1, skipna=True)
    rank = {s: i for i, s in enumerate(STATUSES)}
    rows["_status"] = rows["status"].astype(str).map(rank).fillna(len(STATUSES) - 1) if "status" in rows.columns \
        else 0
    by = keys + ["structure_id", "pressure_gpa"]
    agg = {"composition": ("composition", "first"), "n_atoms": ("n_atoms", "first"),
           "n_cycles": ("structure_id", "size"), "_status": ("_status", "max"),
           **{flag: (flag, "max") for flag in FLAGS}}
    agg = {k: v for k, v in agg.items() if v[0] in rows.columns}
    out = rows.groupby(by, sort=False, dropna=False).agg(**agg).reset_index()
    out.insert(out.columns.get_loc("_status"), "status", out.pop("_status").map(dict(enumerate(STATUSES))))
    return out


def fractions_table(structures: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per ``keys`` x pressure: the structures, how many flagged and diverged, the fraction
    flagged by each criterion and by any (of all the structures at that pressure; empty when none
    could be judged)."""
    def one(group):
        n = group.structure_id.nunique()
        out = {"n_structures": n, "n_flagged": int((group.flagged == 1).sum()),
               "n_diverged": int(group.status.isin(["diverged", "error"]).sum())}
        for name, flag in zip(CRITERIA + ("flagged",), FLAGS):
            col = group[flag]
            out[name] = float((col == 1).sum()) / n if col.notna().any() and n else np.nan
        for name, flag in zip(CRITERIA + ("flagged",), FLAGS):
            out[f"n_evaluated_{name}"] = int(group[flag].notna().sum())
        return out

    rows = []
    for key, group in structures.groupby(keys + ["pressure_gpa"], sort=False, dropna=False):
        rows.append({**dict(zip(keys + ["pressure_gpa"], key)), **one(group)})
    out = pd.DataFrame(rows)
    counts = ["n_structures", "n_flagged", "n_diverged"] + [f"n_evaluated_{c}" for c in CRITERIA + ("flagged",)]
    return out.astype({c: int for c in counts})


def collect(inputs, spec):
    models = collect_runs(inputs["rss"])
    keys = [k for k in RUN_KEYS if k in models.columns]
    models = models.astype({k: str for k in keys}).assign(role="model")
    found = _foundations(inputs.get("foundation"))
    parts = [models] + ([found.assign(role=FOUNDATION_ROLE)] if found is not None else [])
    rows = pd.concat(parts, ignore_index=True)
    for k in keys:
        if k not in rows.columns:
            rows[k] = np.nan
    rows["pressure_gpa"] = rows.pressure_gpa.astype(float)
    structures = structures_table(rows, keys + ["role"])
    fractions = fractions_table(structures, keys + ["role"])
    # the change from the foundation before fine-tuning on the same benchmark and pressure
    base = fractions[fractions.role == FOUNDATION_ROLE][["benchmark", "foundation", "pressure_gpa", "flagged"]]
    base = base.rename(columns={"flagged": "_base"}).assign(pressure_gpa=lambda f: f.pressure_gpa.round(6))
    merged = fractions.assign(_p=fractions.pressure_gpa.round(6)).merge(
        base.rename(columns={"pressure_gpa": "_p"}), on=["benchmark", "foundation", "_p"], how="left",
        validate="many_to_one")
    fractions["delta_flagged"] = np.where(merged.role == "model", merged.flagged - merged._base, np.nan)
    model = with_convergence(fractions[fractions.role == "model"].reset_index(drop=True),
                             convergence(inputs.get("loss_curves")))
    fractions = pd.concat([fractions[fractions.role != "model"], model], ignore_index=True)
    first = keys + ["role"]
    return {"structures": structures[first + [c for c in structures.columns if c not in first]],
            "fractions": fractions[first + [c for c in fractions.columns if c not in first]]}


# ----------------------------------------------------------------------------- plot
def pressure_label(p) -> str:
    return f"{float(p):g} GPa"


def fraction_label(f) -> str:
    return f"{100 * float(f):g} %"


def _variant_names(spec: dict) -> dict[str, str]:
    return spec.get("variant_labels") or {}  # the entry's variant_labels over the variants' own


def rows(fractions: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The heat maps' rows: the foundations before fine-tuning first, then one per model (strategy
    in registry order, its variants in the figure's order, the other varying settings), with a
    label and a position ``row``; the table's rows with those two columns added."""
    frame = fractions.copy()
    for k in ROW_KEYS:
        frame[k] = frame[k].astype(str).where(frame[k].notna(), "") if k in frame.columns else ""
    is_found = frame.role == FOUNDATION_ROLE
    several = {a: len(spec["axes"].get(a, [])) > 1 for a in LABEL_AXES}
    extra = settings(frame, {**spec, "axes": {a: spec["axes"].get(a, []) for a in LABEL_AXES}})
    names = _variant_names(spec)
    variants_of = frame[~is_found].groupby("strategy").variant.nunique().to_dict()

    def label(i, row):
        if row.role == FOUNDATION_ROLE:
            name = f"foundation {row.foundation}" if several["foundation"] else "foundation"
            where = ", ".join(str(row[a]) for a in ("benchmark",) if several[a])
            return f"{name} (before fine-tuning)" + (f", {where}" if where else "")
        name = spec["labels"].get(row.strategy, row.strategy)
        if variants_of.get(row.strategy, 1) > 1 or row.variant != "base":
            name += f" ({names.get(row.variant, row.variant)})"
        return name + (f", {extra[i]}" if extra[i] else "")

    frame["label"] = [label(i, r) for i, r in frame.iterrows()]
    strat_rank = {s: i for i, s in enumerate(spec["labels"])}
    var_rank = {v: i for i, v in enumerate(dict.fromkeys(list(spec["axes"].get("variant", []))
                                                         + [v for c in spec.get("conditions") or [] for v in c["variant"]]))}
    order = frame.assign(_f=(~is_found).astype(int), _s=frame.strategy.map(strat_rank).fillna(len(strat_rank)),
                         _v=frame.variant.map(var_rank).fillna(len(var_rank)))
    order = order.sort_values(["_f", "benchmark", "foundation", "_s", "_v", "label"], kind="stable")
    rank = {lab: i for i, lab in enumerate(dict.fromkeys(order.label))}
    frame["row"] = frame.label.map(rank)
    return frame


def cells(fractions: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """Mean over seeds per row x fraction x pressure of every fraction and ``delta_flagged``, with
    ``n_seeds`` (a foundation row has fraction ``""``)."""
    frame = rows(fractions, spec)
    frame["fraction"] = frame.fraction.astype(str).where(frame.fraction.notna() & (frame.role == "model"), "") \
        if "fraction" in frame.columns else ""
    frame["fraction"] = frame.fraction.map(lambda f: f"{float(f):g}" if f else "")
    frame["pressure_gpa"] = frame.pressure_gpa.astype(float).round(6)
    values = list(CRITERIA) + ["flagged", "delta_flagged"]
    by = ["row", "label", "role", "fraction", "pressure_gpa"]
    out = frame.groupby(by, sort=True).agg(**{v: (v, "mean") for v in values}, n_seeds=("flagged", "size"),
                                           n_structures=("n_structures", "max"),
                                           n_diverged=("n_diverged", "sum")).reset_index()
    return out


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def _fmt_delta(d: float) -> str:
    if not np.isfinite(d):
        return ""
    return "(±0.00)" if round(d, 2) == 0 else f"({d:+.2f})".replace("-", "−")


def _heat(ax, values: np.ndarray, texts: list[list[str]], cmap, fontsize: float, band: int = 0):
    """A heat map with its numbers; the first ``band`` rows (the foundation, the same value in every
    column) drawn as one band with its text once, in the middle."""
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    n_rows, n_cols = values.shape
    for (i, j), v in np.ndenumerate(values):
        text = texts[i][j]
        if i < band:
            if j:
                continue
            v, j = values[i, 0], (n_cols - 1) / 2
        if text:
            dark = np.isfinite(v) and v > 0.55
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color="white" if dark else "black",
                    linespacing=1.1)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.hlines(np.arange(1, n_rows) - 0.5, -0.5, n_cols - 0.5, color="white", lw=1.0)
    ax.vlines(np.arange(1, n_cols) - 0.5, band - 0.5, n_rows - 0.5, color="white", lw=1.0)
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    return image


def plot(tables, spec, outputs):
    plt = pyplot()

    fractions = tables["fractions"].copy()
    table = cells(fractions, spec)
    models = table[table.role == "model"]
    labels = list(table.sort_values("row").drop_duplicates("row").label)
    n_found = table[table.role == FOUNDATION_ROLE].row.nunique()
    n_rows = len(labels)
    pressures = sorted(table.pressure_gpa.unique())
    fracs = sorted(models.fraction.unique(), key=float)
    largest = fracs[-1] if fracs else ""
    marks, note = convergence_note(fractions[fractions.role == "model"].astype({"strategy": str}))
    strategy_of = rows(fractions, spec).drop_duplicates("label").set_index("label").strategy.to_dict()
    ylabels = [lab + marks.get(strategy_of.get(lab, ""), "") for lab in labels]
    cmap = plt.get_cmap("YlOrRd").with_extremes(bad="0.9")
    fontsize = 8.0 if n_rows <= 7 else 7.5 if n_rows <= 10 else 6.5 if n_rows <= 14 else 5.5

    def lookup(row, fraction, pressure, column):
        hit = table[(table.row == row) & (table.pressure_gpa == pressure)
                    & ((table.fraction == fraction) | (table.role == FOUNDATION_ROLE))]
        return (float(hit[column].iloc[0]), hit) if len(hit) else (np.nan, hit)

    def flagged_grid(columns):
        """columns: (fraction, pressure) per heat-map column; the foundation's value in every one."""
        values = np.full((n_rows, len(columns)), np.nan)
        texts = [["" for _ in columns] for _ in range(n_rows)]
        for i in range(n_rows):
            for j, (frac, p) in enumerate(columns):
                v, hit = lookup(i, frac, p, "flagged")
                values[i, j] = v
                if not len(hit):
                    texts[i][j] = "no run"
                elif not np.isfinite(v):
                    texts[i][j] = "n/a"
                elif i < n_found:
                    texts[i][j] = _fmt(v) + "\n(baseline)"
                else:
                    texts[i][j] = _fmt(v) + "\n" + _fmt_delta(float(hit.delta_flagged.iloc[0]))
        return values, texts

    def criteria_grid(p):
        values = np.full((n_rows, len(CRITERIA)), np.nan)
        texts = [["" for _ in CRITERIA] for _ in range(n_rows)]
        for i in range(n_rows):
            for j, crit in enumerate(CRITERIA):
                v, hit = lookup(i, largest, p, crit)
                values[i, j] = v
                texts[i][j] = "no run" if not len(hit) else (_fmt(v) if np.isfinite(v) else "n/a")
        return values, texts

    one_fraction = len(fracs) <= 1
    crit_ticks = ["distance", "energy", "cell", "disagree-\nment"]
    width_label = 0.09 * max(len(y) for y in ylabels) + 0.4
    with plt.rc_context(STYLE):
        if one_fraction:
            # the flagged fractions' columns wider than the criteria's (the result; the criteria explain it)
            widths = [1.05 * len(pressures)] + [0.7 * len(CRITERIA)] * len(pressures)
            fig, axes = plt.subplots(1, 1 + len(pressures), squeeze=False, layout="constrained",
                                     gridspec_kw={"width_ratios": widths},
                                     figsize=(width_label + sum(widths) + 1.3, 0.42 * n_rows + 2.0))
            main = [(axes[0, 0], [(largest, p) for p in pressures], [pressure_label(p) for p in pressures],
                     "flagged fraction\n(change from the foundation)", "pressure")]
            crit_axes = list(axes[0, 1:])
        else:
            widths = [0.8 * max(len(fracs), len(CRITERIA))] * len(pressures)
            fig, axes = plt.subplots(2, len(pressures), squeeze=False, layout="constrained",
                                     gridspec_kw={"width_ratios": widths},
                                     figsize=(width_label + sum(widths) + 1.3, 2 * (0.42 * n_rows + 1.1) + 1.0))
            main = [(axes[0, k], [(f, p) for f in fracs], [fraction_label(f) for f in fracs],
                     f"{pressure_label(p)}: flagged fraction\n(change from the foundation)", "training data")
                    for k, p in enumerate(pressures)]
            crit_axes = list(axes[1])
        image = None
        for k, (ax, columns, ticks, title, xlabel) in enumerate(main):
            values, texts = flagged_grid(columns)
            # the foundation's value is one per pressure: one band across the fractions of a pressure
            band = n_found if len({p for _, p in columns}) == 1 and len(columns) > 1 else 0
            image = _heat(ax, values, texts, cmap, fontsize, band)
            ax.set_xticks(range(len(ticks)), ticks)
            ax.set_xlabel(xlabel)
            ax.set_title(title)
            ax.set_yticks(range(n_rows), ylabels if k == 0 else [""] * n_rows)
            ax.axhline(n_found - 0.5, color="k", lw=1.2)
        for k, (ax, p) in enumerate(zip(crit_axes, pressures)):
            values, texts = criteria_grid(p)
            _heat(ax, values, texts, cmap, fontsize)
            ax.set_xticks(range(len(CRITERIA)), crit_ticks)
            ax.set_xlabel("criterion")
            ax.set_title(f"{pressure_label(p)}: flagged by criterion"
                         + ("" if one_fraction else f"\n({fraction_label(largest)} of the training data)"))
            first = k == 0 and not one_fraction
            ax.set_yticks(range(n_rows), ylabels if first else [""] * n_rows)
            ax.axhline(n_found - 0.5, color="k", lw=1.2)
        bar = fig.colorbar(image, ax=list(axes.ravel()), shrink=0.8, pad=0.02, aspect=25)
        bar.set_label("flagged fraction")

        seeds = models.n_seeds
        if seeds.empty:
            seeds_note = ""
        elif seeds.nunique() == 1:
            seeds_note = "one seed" if seeds.iloc[0] == 1 else f"mean over {int(seeds.iloc[0])} seeds"
        else:
            per_fraction = models.groupby("fraction").n_seeds.agg(["min", "max"])
            per_fraction = per_fraction.loc[sorted(per_fraction.index, key=float)]
            seeds_note = "mean over " + ", ".join(
                f"{lo if lo == hi else f'{lo}-{hi}'} seed{'s' if hi > 1 else ''} at {fraction_label(f)}"
                for f, (lo, hi) in per_fraction.astype(int).iterrows())
        n_struct = sorted({int(n) for n in table.n_structures.dropna()})
        n_text = str(n_struct[0]) if len(n_struct) == 1 else f"{n_struct[0]}-{n_struct[-1]}"
        one_frac_text = f"; all on {fraction_label(largest)} of the training data" if one_fraction and largest else ""
        fig.suptitle("\n".join(textwrap.wrap(spec["description"] + one_frac_text, 130)))
        baseline = ("; in parentheses the change from the foundation before fine-tuning (first row, the baseline)"
                    if n_found else "; no foundation baseline given")
        foot = [(f"Each cell: the fraction of the {n_text} random structures at that pressure that are flagged "
                f"(a structure is flagged when any of its relax-rattle cycles is), {seeds_note}{baseline}. Criteria "
                f"(mlipft.analysis.rss; a structure may be flagged by several): distance, two atoms closer than their "
                f"pair's floor; energy, an enthalpy per atom below the reference's lowest for that composition and "
                f"pressure (by more than a margin); cell, a volume out of bounds, or the relaxation diverged or "
                f"failed; disagreement, the reference's single point on the relaxed structure disagrees in energy or "
                f"forces. n/a: no structure could be judged by it.")]
        diverged = table[table.n_diverged > 0]
        if len(diverged):
            per = diverged.groupby(["row", "label"]).n_diverged.sum().astype(int).droplevel("row")
            foot.append("Relaxations that diverged or failed (counted as cell; structures x pressures, summed over "
                        "seeds): "
                        + ", ".join(f"{lab} {n}" for lab, n in per.items()) + ".")
        if note:
            foot.append(note)
        fig.text(0.5, -0.01, "\n".join(textwrap.fill(f, 150) for f in foot), ha="center", va="top", fontsize=7,
                 color="0.3")
        save(fig, outputs)
