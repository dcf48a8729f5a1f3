"""Short-range repulsion of each strategy's model: dimer curves and compression curves against the
reference, and their metrics (the paper: only multihead replay keeps the foundation's many-body
short-range repulsion; naive fine-tuning, freezing and LoRA lose it).

Inputs by role: ``repulsion``, each run's ``repulsion.csv`` (:mod:`mlipft.analysis.repulsion`,
``model`` subcommand; the run's keys come from its path); ``reference``, one curves file per
benchmark (:func:`reference_file`: GFN2-xTB in the mini world, the main foundation in the paper
world; the benchmark is its folder's name); ``loss_curves`` for the convergence marks; with the
entry's ``repulsion_foundation: true`` also ``foundation``, each foundation's own curves before
fine-tuning (:func:`foundation_file`, rule repulsion_foundation): what "keeps the foundation's
repulsion" is measured against where the reference is not the foundation (the mini world).

Tables: ``curves`` (tidy: every point of every run and of each reference, ``role`` model or
reference, the reference rows with only their benchmark among the run keys) and ``metrics`` (one
row per run and system, and per reference (and foundation) and system, ``role`` likewise: the analysis module's
:func:`~mlipft.analysis.repulsion.metrics_table` with its default thresholds, MLIP Arena's and
matbench-discovery's; the runs' convergence columns).

Plot: one row per benchmark: its most relevant dimer pairs (the entry's ``repulsion_pairs`` present
in the benchmark, else the :data:`N_PAIRS` pairs the models miss most: mean \\|wall-radius error\\|
at 5 eV, a lost wall counted as the reference's radius), then the compression curve (mean over the
compressed frames), each strategy a colour (mean over seeds), the reference dashed black (the
foundations before fine-tuning, when given, dotted grey); energies
on a symlog axis (linear within ±1 eV, or ±0.1 eV/atom), clipped to the reference's range with the
points beyond drawn as triangles on the edge; and a heat map of the metrics per strategy (colour:
how far from ideal, relative to the worst row of each column; the number printed).
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

DESCRIPTION = ("Short-range repulsion: dimer energy curves (eV, zero at the largest distance) of the most relevant "
               "element pairs and isotropic compression curves (eV/atom relative to the unscaled structure) of each "
               "model against the reference (dashed), on a symlog energy axis; a heat map of the curve metrics "
               "(force flips, energy jumps, Spearman rho of the repulsive branch, wall-radius errors at 1/5/10 eV, "
               "walls lost, compression energy rise relative to the reference, monotonic compressions).")
TABLES = ("curves", "metrics")
N_PAIRS = 3
#: Grid axes that may vary besides the strategy and the benchmark: their labels join the strategy's.
HUE_AXES = ("trainset", "foundation", "e0s", "variant")
#: The heat map's columns: (label, metric column, aggregation over systems, ideal, kind, the
#: distance from the ideal that is full colour at least: a column whose rows all lie close to the
#: ideal stays pale instead of spreading tiny differences over the whole colour scale).
HEAT = (
    ("force\nflips", "force_flips", "mean", "min", "dimer", 3.0),
    ("energy\njump (eV)", "energy_jump_ev", "mean", 0.0, "dimer", 0.5),
    ("Spearman ρ\nrepulsive", "spearman_repulsion", "mean", -1.0, "dimer", 0.5),
    ("|Δr wall|\n1 eV (Å)", "wall_error_1ev", "absmean", 0.0, "dimer", 0.3),
    ("|Δr wall|\n5 eV (Å)", "wall_error_5ev", "absmean", 0.0, "dimer", 0.3),
    ("|Δr wall|\n10 eV (Å)", "wall_error_10ev", "absmean", 0.0, "dimer", 0.3),
    ("walls\nlost", "walls_missing", "sum", 0.0, "dimer", 3.0),
    ("compression\nrise / ref.", "rise_ratio", "mean", 1.0, "compression", 1.0),
    ("monotonic\ncompressions", "monotonic", "mean", 1.0, "compression", 1.0),
)


def reference_file(config, benchmark: str, paths) -> str:
    """The reference curves of a benchmark (rule repulsion_reference)."""
    return f"{paths.results}/repulsion/{benchmark}/reference.csv"


def foundation_file(config, benchmark: str, foundation: str, paths) -> str:
    """The curves of a foundation before fine-tuning on a benchmark's elements and structures
    (rule repulsion_foundation; figure entries with ``repulsion_foundation: true``)."""
    return f"{paths.results}/repulsion/{benchmark}/foundation-{foundation}.csv"


def _pairs(fig) -> list[str]:
    from ..config import as_list

    return [str(p) for p in as_list(fig.get("repulsion_pairs") or [])]


def check(config, name, fig, axes):
    from ..analysis.repulsion import ParamsError, load_params, pair_name, parse_pair

    benches = config.get("benchmarks") or {}
    missing = [b for b in axes["benchmark"] if not (benches.get(b) or {}).get("test")]
    if missing:
        return f".benchmark: {missing} name no test file (benchmarks.<b>.test: its elements and compressed structures)"
    pairs = []
    for pair in _pairs(fig):
        try:
            pairs.append(pair_name(*parse_pair(pair, "repulsion_pairs")))
        except ParamsError:
            return f".repulsion_pairs: {pair!r} is not a pair of element symbols A-B (e.g. Na-Cl)"
    if len(set(pairs)) != len(pairs):  # Na-Cl and Cl-Na are one pair
        return f".repulsion_pairs: listed twice: {sorted({p for p in pairs if pairs.count(p) > 1})}"
    scale = (config.get("scales") or {}).get(config.get("scale"), {})
    if "repulsion" not in scale:
        return (f".kind: a repulsion figure needs the curves' parameters of scale {config.get('scale')!r} "
                f"(scales.{config.get('scale')}.repulsion, {{}} for the defaults)")
    try:
        load_params(scale["repulsion"] or {})
    except ParamsError as err:
        return f".kind: scales.{config.get('scale')}.repulsion: {err}"
    return None


def inputs(config, name, runs, paths):
    from ..config import grid

    axes = grid(config, name)
    files = {"repulsion": [paths.run_file(r, "repulsion") for r in runs],
             "reference": [reference_file(config, b, paths) for b in axes["benchmark"]],
             "loss_curves": [paths.run_file(r, "loss_curves") for r in runs]}
    if config["figures"][name].get("repulsion_foundation"):
        files["foundation"] = [foundation_file(config, b, f, paths) for b in axes["benchmark"] for f in axes["foundation"]]
    return files


def _references(files) -> dict[str, pd.DataFrame]:
    from ..analysis.repulsion import read_curves

    out = {}
    for path in files or []:
        bench = Path(path).parent.name
        if bench in out:
            raise ValueError(f"two reference files for benchmark {bench!r}: {path}")
        out[bench] = read_curves(path)
    return out


def _foundations(files) -> dict[tuple[str, str], pd.DataFrame]:
    from ..analysis.repulsion import read_curves

    out = {}
    for path in files or []:
        stem = Path(path).stem
        if not stem.startswith("foundation-"):
            raise ValueError(f"{path}: a foundation's curves are named foundation-<name>.csv")
        out[(Path(path).parent.name, stem[len("foundation-"):])] = read_curves(path)
    return out


def collect(inputs, spec):
    from ..analysis.repulsion import load_params, metrics_table

    params = load_params({})
    refs = _references(inputs.get("reference"))
    models = collect_runs(inputs["repulsion"])
    keys = [k for k in RUN_KEYS if k in models.columns]
    models = models.astype({k: str for k in keys})
    found = _foundations(inputs.get("foundation"))
    missing = sorted(set(models.benchmark) - set(refs))
    if missing:
        raise ValueError(f"no reference curves for benchmark(s) {missing} (role reference: "
                         f"<results>/repulsion/<benchmark>/reference.csv)")
    rows, metrics = [models.assign(role="model")], []
    for bench, ref in refs.items():
        rows.append(ref.assign(role="reference", benchmark=bench))
        metrics.append(metrics_table(ref, None, params).assign(role="reference", benchmark=bench,
                                                                source=ref.source.iloc[0] if len(ref) else ""))
    for (bench, name), curves in found.items():
        rows.append(curves.assign(role="foundation", benchmark=bench, foundation=name))
        metrics.append(metrics_table(curves, refs.get(bench), params).assign(
            role="foundation", benchmark=bench, foundation=name, source=curves.source.iloc[0] if len(curves) else ""))
    for run, sub in models.groupby(keys, sort=False):
        run_keys = dict(zip(keys, run))
        curves = read_curves_frame(sub)
        table = metrics_table(curves, refs[run_keys["benchmark"]], params)
        metrics.append(table.assign(role="model", source=curves.source.iloc[0], **run_keys))
    metrics = pd.concat(metrics, ignore_index=True)
    first = keys + ["role", "source", "kind", "system"]
    metrics = metrics[first + [c for c in metrics.columns if c not in first]]
    model_metrics = with_convergence(metrics[metrics.role == "model"].reset_index(drop=True),
                                     convergence(inputs.get("loss_curves")))
    metrics = pd.concat([metrics[metrics.role != "model"], model_metrics], ignore_index=True)
    curves = pd.concat(rows, ignore_index=True)
    first = keys + ["role"]
    return {"curves": curves[first + [c for c in curves.columns if c not in first]], "metrics": metrics}


def read_curves_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One run's rows of the model curves as :func:`~mlipft.analysis.repulsion.read_curves` gives them."""
    from ..analysis.repulsion import COLUMNS

    out = frame[[c for c in COLUMNS if c in frame.columns]].copy()
    if "source" not in out.columns:
        out["source"] = "model"
    return out.astype({"kind": str, "system": str, "source": str})


# ----------------------------------------------------------------------------- plot
def hues(frame: pd.DataFrame, spec: dict) -> pd.Series:
    """A colour per row: the strategy's label, with the settings that vary besides it (and the
    fraction when several)."""
    setting = settings(frame, {**spec, "axes": {a: spec["axes"].get(a, []) for a in HUE_AXES}})
    if len(spec["axes"].get("fraction", [])) > 1:
        frac = "fraction " + frame.fraction.astype(str)
        setting = frac.where(setting == "", setting + ", " + frac)
    name = frame.strategy.astype(str).map(lambda s: spec["labels"].get(s, s))
    return name.where(setting == "", name + ", " + setting)


def relevant_pairs(metrics: pd.DataFrame, bench: str, wanted: list[str], n: int = N_PAIRS) -> list[str]:
    """The dimer pairs shown for a benchmark: ``wanted`` (those it has), else the ``n`` pairs whose
    5 eV wall the models miss most (mean \\|error\\|, a lost wall counted as the reference radius)."""
    dimers = metrics[(metrics.benchmark.astype(str) == bench) & (metrics.kind == "dimer")]
    have = list(dict.fromkeys(dimers.system.astype(str)))
    if wanted:
        from ..analysis.repulsion import pair_name, parse_pair

        chosen = [p for p in (pair_name(*parse_pair(w)) for w in wanted) if p in have]
        if chosen:
            return chosen
    models = dimers[dimers.role == "model"]
    if models.empty or "wall_error_5ev" not in models.columns:
        return have[:n]
    err = models.wall_error_5ev.astype(float).abs()
    lost = models.get("wall_radius_reference_5ev", pd.Series(np.nan, index=models.index)).astype(float)
    miss = err.isna() & lost.notna()
    score = err.where(~miss, lost).groupby(models.system.astype(str)).mean().fillna(-1.0)
    return sorted(have, key=lambda p: (-score.get(p, -1.0), have.index(p)))[:n]


def _mean_curve(rows: pd.DataFrame, x: str) -> tuple[np.ndarray, np.ndarray]:
    line = rows.groupby(x)["energy_ev"].mean(numeric_only=True).dropna()
    return line.index.to_numpy(dtype=float), line.to_numpy(dtype=float)


def _clipped(ax, x, y, lo, hi, **style):
    """A curve clipped to [lo, hi], its points beyond drawn as triangles on the edge; how far out."""
    ax.plot(x, np.clip(y, lo, hi), **style)
    colour = style.get("color", "k")
    worst = None
    for beyond, edge, marker in ((y > hi, hi, "^"), (y < lo, lo, "v")):
        if beyond.any():
            ax.plot(x[beyond][:: max(1, beyond.sum() // 6)], np.full(len(x[beyond][:: max(1, beyond.sum() // 6)]), edge),
                    ls="none", marker=marker, ms=4.5, color=colour, clip_on=False, zorder=5)
            far = y[beyond][np.argmax(np.abs(y[beyond]))]
            worst = far if worst is None or abs(far) > abs(worst) else worst
    return worst


def _window(ref_y: np.ndarray, floor: float) -> tuple[float, float]:
    """Energy window of a panel from the reference: its lowest point and its highest, with margin."""
    finite = ref_y[np.isfinite(ref_y)]
    if finite.size == 0:
        return -10 * floor, 100 * floor
    lo, hi = min(float(finite.min()), -floor), max(float(finite.max()), floor)
    return lo * 2.5, hi * 1.6


def heat_values(metrics: pd.DataFrame, bench: str, order: list[str], ref_name: str) -> pd.DataFrame:
    """The heat map of a benchmark: one row per reference and x category, one column per :data:`HEAT`."""
    table = {}
    for name, rows in _rows(metrics, bench, order):
        name = ref_name if name == "reference" else name
        values = []
        for _, col, how, _, kind, _ in HEAT:
            cells = rows[rows.kind == kind]
            if col not in cells.columns or cells.empty:
                values.append(np.nan)
                continue
            v = cells[col]
            v = v.map(lambda t: {"True": 1.0, "False": 0.0}.get(str(t), t)).astype(float)
            if name == ref_name and col.startswith(("wall_error", "walls_missing")):
                v = pd.Series(0.0, index=v.index)
            if name == ref_name and col == "rise_ratio":
                v = pd.Series(1.0, index=v.index)
            values.append(v.abs().mean() if how == "absmean" else v.sum() if how == "sum" and v.notna().any()
                          else v.mean())
        table[name] = values
    return pd.DataFrame.from_dict(table, orient="index", columns=[h[0] for h in HEAT])


def _rows(metrics: pd.DataFrame, bench: str, order: list[str]) -> list[tuple[str, pd.DataFrame]]:
    sub = metrics[metrics.benchmark.astype(str) == bench]
    rows = [("reference", sub[sub.role == "reference"])]
    found = sub[sub.role == "foundation"]
    rows += [(f"foundation {f}", found[found.foundation.astype(str) == f]) for f in dict.fromkeys(found.foundation.astype(str))]
    return rows + [(h, sub[(sub.role == "model") & (sub.hue == h)]) for h in order]


def badness(values: pd.DataFrame) -> pd.DataFrame:
    """0 (ideal) .. 1 per column of :func:`heat_values`: the distance from the ideal over the
    worst row's, or over the column's floor when that is larger (see :data:`HEAT`)."""
    out = values.copy()
    for label, _, _, ideal, _, floor in HEAT:
        col = values[label].astype(float)
        best = col.min() if ideal == "min" else ideal
        dist = (col - best).abs()
        top = dist.max()
        out[label] = dist / max(top, floor) if np.isfinite(top) else dist * 0.0
    return out


def _fmt(label: str, v: float) -> str:
    if not np.isfinite(v):
        return "–"
    if "monotonic" in label:
        return f"{100 * v:.0f}%"
    if "lost" in label:
        return f"{v:.0f}"
    if "flips" in label:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.3g}"


FOUNDATION_STYLE = {"color": "0.35", "ls": ":", "lw": 1.8, "zorder": 3.5}


def _foundation_lines(ax, rows: pd.DataFrame, x: str, lo: float, hi: float, style: dict) -> None:
    """The foundations' own curves (role foundation), grey dotted, clipped like the models'."""
    found = rows[rows.role == "foundation"]
    for _, sub in found.groupby("foundation", sort=True):
        fx, fy = _mean_curve(sub, x)
        if len(fx):
            _clipped(ax, fx, fy, lo, hi, **style)


def plot(tables, spec, outputs):
    plt = pyplot()
    import seaborn as sns
    from matplotlib.colors import LinearSegmentedColormap

    curves, metrics = tables["curves"].copy(), tables["metrics"].copy()
    for frame in (curves, metrics):
        frame["benchmark"] = frame.benchmark.astype(str)
    model_rows = curves.role == "model"
    curves.loc[model_rows, "hue"] = hues(curves[model_rows], spec)
    mrows = metrics.role == "model"
    metrics.loc[mrows, "hue"] = hues(metrics[mrows], spec)
    rank = {s: i for i, s in enumerate(spec["labels"])}
    ordered = curves[model_rows].assign(_r=curves[model_rows].strategy.astype(str).map(rank).fillna(len(rank)))
    order = list(dict.fromkeys(ordered.sort_values("_r", kind="stable").hue))
    colours = dict(zip(order, sns.color_palette("colorblind", max(len(order), 3))))
    marks, note = convergence_note(metrics[mrows])
    names = {h: h + (" †" if any(str(s) in marks for s in metrics[mrows & (metrics.hue == h)].strategy.unique())
                     else "") for h in order}
    benches = [str(b) for b in spec["axes"]["benchmark"] if str(b) in set(curves.benchmark)]
    wanted = _pairs(spec["entry"])
    shown = {b: relevant_pairs(metrics, b, wanted) for b in benches}
    n_dimer = max(len(p) for p in shown.values())
    ref_source = {b: str(curves[(curves.role == "reference") & (curves.benchmark == b)].source.dropna().iloc[0])
                  if ((curves.role == "reference") & (curves.benchmark == b)).any() else spec["reference_label"]
                  for b in benches}
    cmap = LinearSegmentedColormap.from_list("badness", ["#f7f7f7", "#fdd49e", "#d7301f"])
    widths = [1.0] * (n_dimer + 1) + [2.1]
    notes = []

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(benches), n_dimer + 2, squeeze=False, gridspec_kw={"width_ratios": widths},
                                 figsize=(2.45 * (n_dimer + 1) + 4.9, 2.9 * len(benches) + 1.4))
        for i, bench in enumerate(benches):
            sub = curves[curves.benchmark == bench]
            ref_label = f"reference ({ref_source[bench]})"
            for j in range(n_dimer):
                ax = axes[i, j]
                if j >= len(shown[bench]):
                    ax.axis("off")
                    continue
                pair = shown[bench][j]
                rows = sub[(sub.kind == "dimer") & (sub.system.astype(str) == pair)]
                rx, ry = _mean_curve(rows[rows.role == "reference"], "r_angstrom")
                lo, hi = _window(ry, 1.0)
                ax.plot(rx, np.clip(ry, lo, hi), color="k", ls="--", lw=1.4, zorder=4)
                _foundation_lines(ax, rows, "r_angstrom", lo, hi, FOUNDATION_STYLE)
                for hue in order:
                    x, y = _mean_curve(rows[(rows.role == "model") & (rows.hue == hue)], "r_angstrom")
                    if len(x):
                        far = _clipped(ax, x, y, lo, hi, color=colours[hue], lw=1.3)
                        if far is not None:
                            notes.append(f"{bench} {pair}: {hue} reaches {far:.3g} eV")
                ax.set_yscale("symlog", linthresh=1.0)
                ax.set_ylim(lo, hi)
                ax.axhline(0, color="0.8", lw=0.6, zorder=0)
                ax.set_title(f"{bench}: {pair} dimer")
                ax.set_xlabel("distance r (Å)")
                if j == 0:
                    ax.set_ylabel("E − E(r$_{max}$) (eV)")
            ax = axes[i, n_dimer]
            rows = sub[sub.kind == "compression"]
            rx, ry = _mean_curve(rows[rows.role == "reference"], "scale")
            lo, hi = _window(ry, 0.1)
            ax.plot(rx, np.clip(ry, lo, hi), color="k", ls="--", lw=1.4, marker="o", ms=2.5, zorder=4)
            _foundation_lines(ax, rows, "scale", lo, hi, {**FOUNDATION_STYLE, "marker": "s", "ms": 2.5})
            for hue in order:
                x, y = _mean_curve(rows[(rows.role == "model") & (rows.hue == hue)], "scale")
                if len(x):
                    far = _clipped(ax, x, y, lo, hi, color=colours[hue], lw=1.3, marker="o", ms=2.5)
                    if far is not None:
                        notes.append(f"{bench} compression: {hue} reaches {far:.3g} eV/atom")
            ax.set_yscale("symlog", linthresh=0.1)
            ax.set_ylim(lo, hi)
            ax.axhline(0, color="0.8", lw=0.6, zorder=0)
            if len(rx):
                ax.set_xlim(max(rx) + 0.02, min(rx) - 0.02)  # compression to the right
            n_frames = rows[rows.role == "reference"].system.nunique()
            ax.set_title(f"{bench}: compression\n(mean of {n_frames} test structures)")
            ax.set_xlabel("isotropic scale factor (→ compressed)")
            ax.set_ylabel("ΔE (eV/atom)")
            ax = axes[i, n_dimer + 1]
            values = heat_values(metrics, bench, order, "reference")
            colour = badness(values)
            ax.imshow(colour.to_numpy(dtype=float), cmap=cmap, vmin=0, vmax=1, aspect="auto")
            for (r, c), v in np.ndenumerate(values.to_numpy(dtype=float)):
                ax.text(c, r, _fmt(values.columns[c], v), ha="center", va="center", fontsize=6.5)
            ax.set_xticks(range(len(values.columns)), values.columns, rotation=90, fontsize=6.5)
            ax.set_yticks(range(len(values)), [ref_label if n == "reference" else names.get(n, n) for n in values.index],
                          fontsize=7)
            n_pairs = metrics[(metrics.benchmark == bench) & (metrics.kind == "dimer")].system.nunique()
            ax.set_title(f"{bench}: metrics over all {n_pairs} pairs and\n{n_frames} compressions (mean over seeds)")
            ax.tick_params(length=0)
        handles = [plt.Line2D([], [], color=colours[h], lw=2) for h in order]
        handles.append(plt.Line2D([], [], color="k", ls="--", lw=1.4))
        founds = sorted({str(f) for f in curves[curves.role == "foundation"].foundation.dropna()})
        if founds:
            handles.append(plt.Line2D([], [], **{k: v for k, v in FOUNDATION_STYLE.items() if k != "zorder"}))
        labels = [names[h] for h in order] + ["reference: " + ", ".join(sorted(set(ref_source.values())))]
        if founds:
            labels.append(f"foundation {', '.join(founds)} before fine-tuning")
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle("\n".join(textwrap.wrap(spec["description"], 150)))
        foot = ["▲▼ beyond the reference's energy range (clipped)" + (": " + "; ".join(notes[:4]) +
                                                                      (" ..." if len(notes) > 4 else "") if notes else "")]
        foot.append("heat map: colour = distance from the ideal value relative to the worst row of the column (or to a "
                    "floor, so that columns close to ideal stay pale) "
                    "(ideal: fewest flips, no jump, ρ = −1, no wall error, no wall lost, rise ratio 1, 100 % monotonic); "
                    "– = undefined (no wall crossing)")
        if note:
            foot.append(note)
        fig.text(0.5, -0.01, "\n".join(textwrap.fill(f, 180) for f in foot), ha="center", va="top", fontsize=6.5,
                 color="0.3")
        fig.tight_layout(rect=(0, 0.06, 1, 0.95))
        save(fig, outputs)
