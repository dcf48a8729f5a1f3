"""Which grid axis moves the errors most? The spread of the test errors across each grid axis
(foundation, E0 mode, strategy, hyperparameter variant, training set, fraction, seed) with every
other axis held fixed, against the spread across strategies: the paper's first claim, that
foundation quality, the E0 initialisation and hyperparameters routinely matter more than the
fine-tuning strategy, as numbers rather than read off violin plots.

Inputs: the per-run error files of the error kinds (:func:`mlipft.figures.common.error_inputs`).

Tables:

- ``errors``: :func:`mlipft.figures.common.collect_errors`' errors table (one row per run,
  evaluation set and metric: RMSE/MAE of energies in meV/atom, of forces in meV/Å; ``n_train``)
  with the convergence columns of its run (``converged``, ``convergence``, ``improvement``,
  ``epochs``, ``trained_epochs``; :func:`mlipft.figures.common.convergence`), so that the figure
  is drawn from its tables alone;
- ``spreads``: per evaluation set, metric and grid axis that varies in the runs (:func:`spreads`).

Definition (:func:`spreads`): the spread of an axis is the range (max - min) of the metric across
that axis's values with every other run key held fixed (the benchmark included), averaged over
the combinations of the other axes where at least two of its values exist (``spread_mean``; the
largest: ``spread_max``; how many: ``n_groups``). For every axis but the seed the metric is
first averaged over seeds; the seed axis takes the single seeds' values, so its spread is the
training noise. ``ratio_to_strategy`` is the spread over the strategy axis's on the same
evaluation set and metric. ``best`` and ``worst``: the axis's value with the lowest and highest
metric averaged over everything else (over the combinations where it is compared: in a partial
grid a value is not credited with the easier runs only another lacks), ``best_value`` and
``worst_value`` those averages.

Plot: a table, one row per varying axis, one column per evaluation set x RMSE metric, each cell
"mean range (max range)" coloured by its ratio to the strategy row (diverging, centred at 1),
then the largest ratio of the row and its best / worst value.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np

from ..paths import RUN_KEYS
from .common import (
    PANELS,
    STYLE,
    collect_errors,
    convergence_note,
    error_inputs,
    pyplot,
    save,
)

if TYPE_CHECKING:
    import pandas as pd

DESCRIPTION = ("Spread of the energy (meV/atom) and force (meV/Å) errors across each grid axis that varies "
               "(foundation, E0 mode, strategy, variant, training set, fraction, seed), every other axis held "
               "fixed, against the spread across strategies.")
TABLES = ("errors", "spreads")
#: The grid axes compared, in the order of the figure's rows, and each row's name.
AXES = {"foundation": "foundation", "e0s": "E0 mode", "strategy": "strategy", "variant": "hyperparameter variant",
        "trainset": "training set", "fraction": "training-data fraction", "seed": "seed (training noise)"}
#: The reference axis of the ratios.
REFERENCE = "strategy"
#: Columns of the spreads table.
COLUMNS = ("evalset", "metric", "unit", "axis", "axis_label", "values", "n_values", "spread_mean", "spread_max",
           "n_groups", "ratio_to_strategy", "best", "best_value", "worst", "worst_value")
#: The convergence columns the errors table takes from its runs' loss curves.
CONVERGENCE = ("converged", "convergence", "improvement", "epochs", "trained_epochs")
#: The schema key of each axis in a figure entry (the ``.key`` of a check message).
KEYS = {"foundation": "foundation", "e0s": "e0s", "strategy": "strategies", "variant": "variants",
        "trainset": "trainset", "fraction": "fractions", "seed": "seeds"}


def varying_axes(config, name, fig, axes) -> list[str]:
    """The axes of :data:`AXES` with more than one value in the figure's runs: the union over its
    conditions (:func:`mlipft.config.conditions`) of strategies, fractions, variants and seeds;
    the figure's own foundations, E0 modes and training sets."""
    from ..config import conditions

    values = {axis: {str(v) for v in axes.get(axis) or []} for axis in AXES}
    if fig.get("conditions"):
        conds = conditions(config, name)
        for axis in ("strategy", "fraction", "variant", "seed"):
            values[axis] = {str(v) for cond in conds for v in cond[axis]}
    return [axis for axis in AXES if len(values[axis]) > 1]


def check(config, name, fig, axes):
    varying = varying_axes(config, name, fig, axes)
    if len(varying) >= 2:
        return None
    fixed = [a for a in ("strategy", "foundation", "e0s", "seed", "variant", "fraction") if a not in varying]
    return (f".{KEYS[fixed[0]]}: an axis_spread figure compares how much each grid axis moves the errors and needs "
            f"at least two axes with several values among {', '.join(KEYS[a] for a in AXES)} (over its "
            f"conditions); {'only ' + KEYS[varying[0]] + ' varies' if varying else 'none varies'}")


def inputs(config, name, runs, paths):
    return error_inputs(config, name, runs, paths)


def collect(inputs, spec):
    tables = collect_errors(inputs)
    errors, train = tables["errors"], tables["trainable"]
    keys = [k for k in RUN_KEYS if k in errors.columns and k in train.columns]
    conv = [c for c in CONVERGENCE if c in train.columns]
    if conv:
        errors = errors.merge(train[keys + conv].astype({k: str for k in keys}), on=keys, how="left",
                              validate="many_to_one")
    return {"errors": errors, "spreads": spreads(errors, spec)}


def _keyed(errors: pd.DataFrame) -> pd.DataFrame:
    """The errors with their run keys as strings (a CSV read back makes seeds and fractions numbers)."""
    keys = [k for k in RUN_KEYS if k in errors.columns]
    out = errors.astype({k: str for k in keys})
    if "fraction" in out.columns:  # "1.0" read back from a CSV is the run directory's "1"
        from ..paths import format_fraction

        out["fraction"] = out.fraction.map(format_fraction)
    return out


def _order(values, spec: dict, axis: str) -> list[str]:
    """An axis's values in the order of the figure's grid, then any others in order of appearance."""
    present = list(dict.fromkeys(str(v) for v in values))
    grid = [str(v) for v in (spec.get("axes") or {}).get(axis) or []]
    if axis == "fraction":
        from ..paths import format_fraction

        grid = [format_fraction(v) for v in grid]
    return [v for v in grid if v in present] + [v for v in present if v not in grid]


def label(axis: str, value, spec: dict) -> str:
    """How a figure names an axis's value: a strategy's or variant's label, else the value."""
    value = str(value)
    names = {"strategy": spec.get("labels") or {}, "variant": spec.get("variant_labels") or {}}.get(axis, {})
    return str(names.get(value, value))


def _levels(sub: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """One evaluation set and metric: the metric per run (``per_seed``), averaged over seeds
    (``averaged``), and the run keys present."""
    keys = [k for k in RUN_KEYS if k in sub.columns]
    per_seed = sub.groupby(keys, sort=False, dropna=False)["value"].mean().reset_index()
    seedless = [k for k in keys if k != "seed"]
    averaged = per_seed.groupby(seedless, sort=False, dropna=False)["value"].mean().reset_index()
    return per_seed, averaged, keys


def _axis_data(sub: pd.DataFrame, axis: str) -> tuple[pd.DataFrame, list[str]]:
    """One evaluation set and metric: the values ``axis`` is compared on (single seeds for the
    seed axis, else means over seeds) and the keys held fixed when it is."""
    per_seed, averaged, keys = _levels(sub)
    data = per_seed if axis == "seed" else averaged
    return data, [k for k in keys if k != axis and k in data.columns]


def axis_means(sub: pd.DataFrame, axis: str) -> pd.Series:
    """The metric of one evaluation set per value of ``axis``, averaged over the other axes (over
    seeds first, but for the seed axis itself), on the combinations of the other axes where two
    or more of its values exist (all of them in a full grid; in a partial one, e.g. conditions
    tying fractions to variants, a value is not credited with another's easier runs). Empty when
    the axis never varies alone."""
    data, others = _axis_data(sub, axis)
    data = data.dropna(subset=["value"])
    counts = data.groupby(others, sort=False, dropna=False)["value"].transform("count")
    return data[counts >= 2].groupby(axis, sort=False)["value"].mean()


def spreads(errors: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The spreads table (:data:`COLUMNS`): per evaluation set (in the figure's order), metric and
    grid axis of :data:`AXES` with more than one value in ``errors`` (see the module's doc)."""
    import pandas as pd

    errors = _keyed(errors)
    varying = [a for a in AXES if a in errors.columns and errors[a].nunique() > 1]
    evalsets = _order(errors.evalset, {"axes": {"evalset": spec.get("evalsets") or []}}, "evalset")
    from ..analysis.errors import METRICS

    metrics = [m for m in METRICS if m in set(errors.metric)] + \
        [m for m in dict.fromkeys(errors.metric) if m not in METRICS]
    rows = []
    for evalset in evalsets:
        for metric in metrics:
            sub = errors[(errors.evalset == evalset) & (errors.metric == metric)]
            if sub.empty:
                continue
            unit = str(sub.unit.iloc[0]) if "unit" in sub.columns else METRICS.get(metric, "")
            for axis in varying:
                data, others = _axis_data(sub, axis)
                groups = data.groupby(others, sort=False, dropna=False)["value"].agg(["max", "min", "count"])
                ranges = (groups["max"] - groups["min"])[groups["count"] >= 2]
                means = axis_means(sub, axis).dropna()
                values = _order(data[axis], spec, axis)
                rows.append({
                    "evalset": evalset, "metric": metric, "unit": unit, "axis": axis, "axis_label": AXES[axis],
                    "values": ";".join(values), "n_values": len(values),
                    "spread_mean": float(ranges.mean()) if len(ranges) else np.nan,
                    "spread_max": float(ranges.max()) if len(ranges) else np.nan, "n_groups": len(ranges),
                    "best": label(axis, means.idxmin(), spec) if len(means) else "",
                    "best_value": float(means.min()) if len(means) else np.nan,
                    "worst": label(axis, means.idxmax(), spec) if len(means) else "",
                    "worst_value": float(means.max()) if len(means) else np.nan})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "ratio_to_strategy"])
    reference = table[table.axis == REFERENCE].set_index(["evalset", "metric"])["spread_mean"]
    denominators = [reference.get((e, m), np.nan) for e, m in zip(table.evalset, table.metric)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = table.spread_mean.to_numpy(float) / np.asarray(denominators, float)
    table["ratio_to_strategy"] = np.where(np.isfinite(ratio), ratio, np.nan)
    return table[list(COLUMNS)]


def _num(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.1e}"


def _times(ratio: float) -> str:
    return "–" if not np.isfinite(ratio) else (f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×" if ratio >= 0.1
                                              else f"{ratio:.2f}×")


def consensus(errors: pd.DataFrame, axis: str, columns: list[tuple[str, str]]) -> tuple[str, str, bool]:
    """The best and worst value (key) of ``axis`` over the plotted (evaluation set, metric)
    columns: by mean rank of :func:`axis_means` over the columns; and whether the columns agree
    on both."""
    import pandas as pd

    errors = _keyed(errors)
    ranks, bests, worsts = [], set(), set()
    for evalset, metric in columns:
        means = axis_means(errors[(errors.evalset == evalset) & (errors.metric == metric)], axis).dropna()
        if len(means):
            ranks.append(means.rank())
            bests.add(means.idxmin())
            worsts.add(means.idxmax())
    if not ranks:
        return "", "", True
    mean_rank = pd.concat(ranks, axis=1).mean(axis=1)
    return str(mean_rank.idxmin()), str(mean_rank.idxmax()), len(bests) == 1 and len(worsts) == 1


def _ink(colour) -> tuple[str, str]:
    """Text colours (main, secondary) legible on a cell of ``colour``."""
    r, g, b = colour[:3]
    dark = 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5
    return ("white", "0.92") if dark else ("black", "0.3")


def plot(tables, spec, outputs):
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    errors, table = _keyed(tables["errors"]), tables["spreads"].copy()
    table["evalset"], table["axis"] = table.evalset.astype(str), table.axis.astype(str)
    evalsets = _order(table.evalset, {"axes": {"evalset": spec.get("evalsets") or []}}, "evalset")
    panels = [m for m, _ in PANELS if m in set(table.metric)]
    columns = [(e, m) for e in evalsets for m in panels]
    tied = [a for a in AXES if a in set(table.axis) and a != REFERENCE
            and not (table[table.axis == a].n_groups > 0).any()]  # e.g. scratch's isolated E0s: no row
    rows = [a for a in AXES if a in set(table.axis) and a not in tied]
    cell = table.set_index(["axis", "evalset", "metric"])
    has_reference = REFERENCE in rows
    ratios = table[table.metric.isin(panels)].ratio_to_strategy.to_numpy(float)
    finite = np.abs(np.log10(ratios[np.isfinite(ratios) & (ratios > 0)]))
    limit = float(np.clip(finite.max() if finite.size else 0.0, np.log10(4), 2))  # 4x at least, 100x at most
    norm, cmap = Normalize(-limit, limit), colormaps["RdBu_r"]
    blank = (0.94, 0.94, 0.94, 1.0)
    multi = len(evalsets) > 1
    short = {"energy_rmse": "energy", "force_rmse": "force"}
    units = dict(zip(table.metric, table.unit.astype(str)))
    marks, conv = convergence_note(errors) if "strategy" in errors.columns else ({}, "")

    def name(axis, value):
        return label(axis, value, spec) + (marks.get(value, "") if axis == "strategy" else "")

    def colour(ratio):
        return cmap(norm(np.log10(ratio))) if np.isfinite(ratio) and ratio > 0 else blank

    # the table's geometry, in inches
    w_label, w_cell, w_ratio, w_best = 2.1, 1.25, (1.45 if has_reference else 0.0), 1.9
    h_group, h_head, h_row = (0.32 if multi else 0.0), 0.62, 0.52
    widths = [w_label] + [w_cell] * len(columns) + [w_ratio, w_best]
    lefts = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
    width, height = float(sum(widths)), h_group + h_head + h_row * len(rows)
    title = textwrap.fill(spec.get("description") or "", max(60, int(width * 11)))
    n_runs = len(errors.drop_duplicates([k for k in RUN_KEYS if k in errors.columns]))
    benchmarks = ", ".join(dict.fromkeys(errors.benchmark)) if "benchmark" in errors.columns else ""
    subtitle = (f"{n_runs} runs" + (f" of {benchmarks}" if benchmarks else "")
                + (f" on {evalsets[0]}" if len(evalsets) == 1 else "")
                + ": how far each grid axis moves the errors with the other axes held fixed")
    note = ("Range of an axis: max − min of the error over its values with every other grid axis held fixed "
            "(errors averaged over seeds first, except for the seed axis, whose range is over single seeds), "
            "averaged over the combinations of the other axes where two or more of its values exist; in brackets "
            "the largest such range" + ("" if has_reference else ", n: the number of such combinations") + ". "
            + ("Colour and ×: that mean range over the strategy axis's in the same column. " if has_reference
               else "One strategy only: no reference axis, no ratios. ")
            + "Best / worst: the value with the lowest / highest error averaged over the other axes "
              "(* the columns disagree: by mean rank over them)."
            + (f" Not a row: {', '.join(AXES[a] for a in tied)}, which varies only together with another axis "
               "(e.g. from-scratch training's isolated E0s)." if tied else "")
            + (f"\n{conv}" if conv else ""))
    note = "\n".join(textwrap.fill(part, max(80, int(width * 17))) for part in note.split("\n"))
    title_lines, note_lines = title.count("\n") + 1, note.count("\n") + 1
    top = 0.2 * title_lines + 0.42
    bar_h = 0.62 if has_reference else 0.0
    bottom = bar_h + 0.13 * note_lines + 0.2
    fig_w, fig_h = width + 0.2, height + top + bottom
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(fig_w, fig_h))
        ax = fig.add_axes((0.1 / fig_w, bottom / fig_h, width / fig_w, height / fig_h))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)  # y downwards: the header first
        ax.axis("off")
        # header: the evaluation sets over their metric columns, then the columns
        for i, evalset in enumerate(evalsets if multi else []):
            x0, span_w = lefts[1 + i * len(panels)], w_cell * len(panels)
            ax.text(x0 + span_w / 2, h_group / 2, textwrap.shorten(evalset, int(span_w * 11), placeholder="…"),
                    ha="center", va="center", fontweight="bold")
            ax.plot([x0 + 0.08, x0 + span_w - 0.08], [h_group - 0.04] * 2, color="0.3", lw=0.8)
        y = h_group + h_head / 2
        ax.text(w_label / 2, y, "grid axis\n(its values)", ha="center", va="center", fontsize=8, fontweight="bold")
        for c, (_, metric) in enumerate(columns):
            x = lefts[1 + c] + w_cell / 2
            ax.text(x, y - 0.17, f"{short.get(metric, metric)} RMSE", ha="center", va="center", fontsize=8,
                    fontweight="bold")
            ax.text(x, y + 0.01, f"({units.get(metric, '')})", ha="center", va="center", fontsize=7.5)
            ax.text(x, y + 0.19, "mean (max) range", ha="center", va="center", fontsize=6.5, color="0.35")
        if has_reference:
            ax.text(lefts[1 + len(columns)] + w_ratio / 2, y, "largest effect\nvs strategy", ha="center",
                    va="center", fontsize=8, fontweight="bold")
        ax.text(lefts[2 + len(columns)] + w_best / 2, y, "best / worst", ha="center", va="center", fontsize=8,
                fontweight="bold")
        ax.plot([0, width], [h_group + h_head] * 2, color="black", lw=1.0)
        # one row per varying axis
        for r, axis in enumerate(rows):
            y = h_group + h_head + r * h_row
            first = cell.loc[axis].iloc[0]
            values = [v for v in str(first["values"]).split(";") if v]
            listed = textwrap.shorten(", ".join(name(axis, v) for v in values), 38, placeholder=" …")
            ax.text(0.06, y + 0.17, AXES[axis] + (" (reference)" if axis == REFERENCE else ""), ha="left",
                    va="center", fontweight="bold", fontsize=8.5)
            ax.text(0.06, y + 0.37, f"{len(values)}: {listed}", ha="left", va="center", fontsize=6.5, color="0.35")
            largest = (np.nan, "")
            for c, (evalset, metric) in enumerate(columns):
                x = lefts[1 + c]
                if (axis, evalset, metric) not in cell.index:
                    ax.text(x + w_cell / 2, y + h_row / 2, "n/a", ha="center", va="center", color="0.4", fontsize=7)
                    continue
                entry = cell.loc[(axis, evalset, metric)]
                ratio = float(entry["ratio_to_strategy"])
                face = colour(ratio)
                ink, ink2 = _ink(face)
                ax.add_patch(Rectangle((x + 0.03, y + 0.03), w_cell - 0.06, h_row - 0.06, facecolor=face,
                                       edgecolor="none"))
                mean, high = float(entry["spread_mean"]), float(entry["spread_max"])
                if not np.isfinite(mean):  # tied to another axis (conditions): no range of its own
                    ax.text(x + w_cell / 2, y + h_row / 2, "never varies\nalone", ha="center", va="center",
                            color=ink2, fontsize=7)
                    continue
                ax.text(x + w_cell / 2, y + 0.2, f"{_num(mean)} ({_num(high)})", ha="center", va="center", color=ink,
                        fontsize=8.5)
                sub = ("reference" if axis == REFERENCE else f"{_times(ratio)} strategy" if np.isfinite(ratio)
                       else f"n = {int(entry['n_groups'])}")
                ax.text(x + w_cell / 2, y + 0.39, sub, ha="center", va="center", fontsize=6.5, color=ink2)
                if axis != REFERENCE and np.isfinite(ratio) and not ratio <= largest[0]:
                    largest = (ratio, short.get(metric, metric) + (f", {evalset}" if multi else ""))
            # the row's largest ratio, and its best / worst value
            x = lefts[1 + len(columns)]
            if not has_reference:
                pass
            elif axis == REFERENCE:
                ax.text(x + w_ratio / 2, y + h_row / 2, "1× (reference)", ha="center", va="center", fontsize=8)
            elif np.isfinite(largest[0]):
                face = colour(largest[0])
                ink, ink2 = _ink(face)
                ax.add_patch(Rectangle((x + 0.03, y + 0.03), w_ratio - 0.06, h_row - 0.06, edgecolor="none",
                                       facecolor=face))
                ax.text(x + w_ratio / 2, y + 0.2, _times(largest[0]), ha="center", va="center", fontsize=9,
                        fontweight="bold", color=ink)
                ax.text(x + w_ratio / 2, y + 0.39, textwrap.shorten(largest[1], 26, placeholder="…"), ha="center",
                        va="center", fontsize=6.5, color=ink2)
            else:
                ax.text(x + w_ratio / 2, y + h_row / 2, "–", ha="center", va="center", fontsize=8, color="0.4")
            x = lefts[2 + len(columns)] + w_best / 2
            best, worst, agree = consensus(errors, axis, columns)
            if axis == "seed" or not best:
                ax.text(x, y + h_row / 2, "– (noise)" if axis == "seed" else "– (never varies alone)", ha="center",
                        va="center", fontsize=8, color="0.4")
            else:
                best, worst = (textwrap.shorten(name(axis, v), 24, placeholder="…") for v in (best, worst))
                ax.text(x, y + 0.17, f"best: {best}", ha="center", va="center", fontsize=7.5, color="#1b6e3a")
                ax.text(x, y + 0.37, f"worst: {worst}" + ("" if agree else " *"), ha="center", va="center",
                        fontsize=7.5, color="#a4262c")
            ax.plot([0, width], [y + h_row] * 2, color="0.8", lw=0.6)
        for c in range(len(evalsets) + 1):  # rules between the evaluation sets, and around the numbers
            x = lefts[1 + c * len(panels)]
            ax.plot([x, x], [h_group if c in (0, len(evalsets)) else 0, height], color="0.55", lw=0.8)
        if has_reference:
            y = h_group + h_head + rows.index(REFERENCE) * h_row
            ax.add_patch(Rectangle((0.0, y), width, h_row, fill=False, edgecolor="black", lw=1.2))
            bar_w = min(4.5, 0.8 * width)
            cax = fig.add_axes(((fig_w - bar_w) / 2 / fig_w, (bottom - 0.47) / fig_h, bar_w / fig_w, 0.12 / fig_h))
            bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
            ticks = [t for t in (0.01, 0.03, 0.1, 0.25, 0.5, 1, 2, 4, 10, 30, 100) if abs(np.log10(t)) <= limit + 1e-9]
            bar.set_ticks([np.log10(t) for t in ticks], labels=[f"{t:g}×" for t in ticks])
            bar.ax.tick_params(labelsize=7, length=2, pad=1)
            bar.ax.xaxis.set_label_position("top")
            bar.set_label("range relative to the strategy axis (same column): blue smaller, red larger",
                          fontsize=7.5, labelpad=3)
        fig.text(0.5, 1 - 0.1 / fig_h, title, ha="center", va="top", fontsize=10, fontweight="bold")
        fig.text(0.5, 1 - (0.14 + 0.2 * title_lines) / fig_h, subtitle, ha="center", va="top", fontsize=8.5,
                 color="0.25")
        fig.text(0.1 / fig_w, 0.05 / fig_h, note, ha="left", va="bottom", fontsize=6.8, color="0.3",
                 linespacing=1.3)
        save(fig, outputs)


__all__ = ["AXES", "COLUMNS", "DESCRIPTION", "TABLES", "axis_means", "check", "collect", "consensus", "inputs",
           "label", "plot", "spreads", "varying_axes"]
