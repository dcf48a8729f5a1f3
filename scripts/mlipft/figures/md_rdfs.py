"""Liquid structure from model MD against the reference (the paper's Fig. 6a/b and Fig. 20, aqueous
NaCl): the radial distribution functions of some atom pairs (Cl-O, Na-O) of each strategy's model
beside the reference RDF, and the earth mover's distance (EMD, Å) of each model RDF from the
reference's, against two noise floors.

Per run, ``rdf.csv`` (columns ``part,pair,r_angstrom,g_r``; the run's keys come from its path):
``part`` is ``all`` (every production frame of every replica pooled), ``half1``/``half2`` (the first
and second half of each replica's production frames, pooled over replicas) and ``replica<i>`` (one
replica alone). The reference RDF of the benchmark (``benchmarks.<b>.md.reference_rdf``) has the
same columns. The EMD is :func:`mlipft.analysis.rdf.earth_movers_distance` (g(r) as weights on the
bin centres, so shapes are compared, not heights):

- ``emd_angstrom``: the run's ``all`` against the reference's ``all``;
- ``noise_floor_angstrom``: the run's ``half1`` against its ``half2`` (how far two halves of the same
  sampling are apart: a smaller model-reference EMD is not resolved by this much MD);
- ``reference_floor_angstrom``: the same for the reference;
- ``replica_emd_min/max``: each replica alone against the reference's ``all``;
- ``resolved``: ``emd_angstrom`` above the larger of the two floors.

The figure's runs fall into ``conditions`` (e.g. training-set sizes, or a 10x-epochs variant): a
run belongs to the first condition whose fractions, variants and seeds contain its own. Panels:
one row per RDF pair (and a row of EMDs with ``emd_panels``), one column per condition.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd

from ..paths import RUN_KEYS, format_fraction, parse_run
from .common import (
    STYLE,
    convergence,
    convergence_note,
    pyplot,
    save,
    settings,
    title_legend_note,
    with_convergence,
)

DESCRIPTION = ("Radial distribution functions g(r) of model MD (mean over seeds, min-max shaded) against the "
               "reference (dashed), one column per condition; and the earth mover's distance (Å) of each "
               "model RDF from the reference's, with the noise floors of the sampling (first against second "
               "half of the frames) of the run and of the reference.")
TABLES = ("rdfs", "emd")
#: Parts of an RDF file: every frame, the two halves (noise floor), and one replica each (``replica0``...).
ALL, HALVES = "all", ("half1", "half2")
REPLICA = re.compile(r"replica(\d+)$")
#: Grid axes that may vary inside a condition, besides the strategy: one colour per combination.
HUE_AXES = ("trainset", "foundation", "e0s")
#: Tolerance (Å) of two r grids being the same (the CSVs carry 6 decimals).
R_TOL = 1e-4
PAIR = re.compile(r"^[A-Z][a-z]?-[A-Z][a-z]?$")


# ---- conditions ----

def conditions(spec: dict) -> list[dict]:
    """The figure's conditions (``spec["conditions"]``, :func:`mlipft.config.conditions`: per
    condition its label and the fractions, variants and seeds it takes, the figure's own where it
    names none), normalised: fractions in directory form, variants as strings, seeds as ints."""
    return [{"label": str(c["label"]), "fraction": [format_fraction(f) for f in c["fraction"]],
             "variant": [str(v) for v in c["variant"]], "seed": [int(s) for s in c["seed"]]}
            for c in spec["conditions"]]


def condition_of(keys, conds: list[dict]) -> str | None:
    """Label of the first condition containing a run (a :class:`Run` or a mapping of its keys), or
    None when none does."""
    get = keys.get if isinstance(keys, dict) else (lambda k: getattr(keys, k))
    fraction, variant, seed = format_fraction(get("fraction")), str(get("variant")), int(get("seed"))
    for cond in conds:
        if fraction in cond["fraction"] and variant in cond["variant"] and seed in cond["seed"]:
            return cond["label"]
    return None


# ---- the kind's interface ----

def _pairs(fig) -> list[str]:
    from ..config import as_list

    return [str(p) for p in as_list(fig.get("rdf_pairs") or [])]


def check(config, name, fig, axes):
    from ..config import as_list

    if len(axes["benchmark"]) != 1:
        return f".benchmark: an md_rdfs figure compares MD of one benchmark against its reference RDF (got {axes['benchmark']})"
    bench = axes["benchmark"][0]
    md = ((config.get("benchmarks") or {}).get(bench) or {}).get("md") or {}
    if not md.get("reference_rdf"):
        return (f".benchmark: benchmark {bench!r} declares no reference RDF (benchmarks.{bench}.md.reference_rdf, "
                f"a CSV file of the benchmark's folder with columns part,pair,r_angstrom,g_r)")
    pairs = _pairs(fig)
    if not pairs:
        return ".rdf_pairs: an md_rdfs figure needs the atom pairs whose RDFs it compares (e.g. [Cl-O, Na-O])"
    bad = [p for p in pairs if not PAIR.match(p)]
    if bad:
        return f".rdf_pairs: {bad} are not of the form A-B with element symbols (e.g. Cl-O)"
    if len(set(pairs)) != len(pairs):
        return f".rdf_pairs: listed twice: {sorted({p for p in pairs if pairs.count(p) > 1})}"
    conds = fig.get("conditions") or []
    if not conds:
        return (".conditions: an md_rdfs figure needs at least one condition (a panel column: {label, fractions?, "
                "variants?, seeds?})")
    labels = [str(c.get("label", "")) for c in conds]
    if "" in labels or len(set(labels)) != len(labels):
        return f".conditions: every condition needs its own non-empty label (got {labels})"
    for i, cond in enumerate(conds):
        for key in ("fractions", "variants", "seeds"):
            if key in cond and not as_list(cond[key]):
                return f".conditions[{i}].{key}: empty (leave it out for the figure's own {key})"
    declared = md.get("pairs")
    if declared:
        absent = [p for p in pairs if p not in declared]
        if absent:
            return (f".rdf_pairs: {absent} are not among the RDF pairs of benchmark {bench!r} "
                    f"(benchmarks.{bench}.md.pairs: {declared}), which its MD computes")
    if fig.get("emd_panels") not in (None, True, False):
        return ".emd_panels: true or false"
    return None


def reference_file(config: dict, benchmark: str, paths) -> str:
    """The benchmark's reference RDF (``benchmarks.<b>.md.reference_rdf`` in its data folder)."""
    return paths.bench_file(benchmark, config["benchmarks"][benchmark]["md"]["reference_rdf"])


def inputs(config, name, runs, paths):
    from .. import config as cfg

    axes = cfg.grid(config, name)
    conds = conditions({"conditions": cfg.conditions(config, name)})
    runs = [r for r in runs if condition_of(r, conds) is not None]  # runs of no condition have no panel
    return {"rdf": [paths.run_file(r, "rdf") for r in runs],
            "reference": [reference_file(config, axes["benchmark"][0], paths)],
            "loss_curves": [paths.run_file(r, "loss_curves") for r in runs]}


def read_rdf(path) -> pd.DataFrame:
    """An RDF file (``part,pair,r_angstrom,g_r``), each part and pair sorted by r."""
    frame = pd.read_csv(path)
    if "part" not in frame.columns:  # an RDF of mlipft.analysis.rdf.write_rdf_csv: every frame, no parts
        frame["part"] = ALL
    missing = {"pair", "r_angstrom", "g_r"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: RDF file lacks the columns {sorted(missing)} (has {list(frame.columns)})")
    frame = frame.astype({"part": str, "pair": str})
    return frame.sort_values(["part", "pair", "r_angstrom"], kind="stable").reset_index(drop=True)


def _curve(frame: pd.DataFrame, part: str, pair: str) -> tuple[np.ndarray, np.ndarray] | None:
    sub = frame[(frame.part == part) & (frame.pair == pair)]
    if sub.empty:
        return None
    return sub.r_angstrom.to_numpy(float), sub.g_r.to_numpy(float)


def _same_grid(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=R_TOL))


def _emd(one, other, where: str) -> float:
    """EMD of two (r, g) curves, after checking that they share their r grid."""
    from ..analysis.rdf import earth_movers_distance

    if one is None or other is None:
        return float("nan")
    (r1, g1), (r2, g2) = one, other
    if not _same_grid(r1, r2):
        raise ValueError(f"{where}: not on the same r grid ({len(r1)} bins {r1.min():.3g}-{r1.max():.3g} Å against "
                         f"{len(r2)} bins {r2.min():.3g}-{r2.max():.3g} Å); compute both with the same r_max and nbins")
    return earth_movers_distance(r1, g1, g2)


def _replicas(frame: pd.DataFrame) -> list[str]:
    found = {p for p in frame.part.unique() if REPLICA.match(p)}
    return sorted(found, key=lambda p: int(REPLICA.match(p).group(1)))


def emd_rows(run_frame: pd.DataFrame, reference: pd.DataFrame, pair: str, run_file: str, reference_path: str) -> dict:
    """The EMD values of one run and pair against the reference (see the module's docstring)."""
    ref_all, model_all = _curve(reference, ALL, pair), _curve(run_frame, ALL, pair)
    if ref_all is None:
        raise ValueError(f"{reference_path}: no '{ALL}' RDF of pair {pair} (pairs: {sorted(reference.pair.unique())})")
    if model_all is None:
        raise ValueError(f"{run_file}: no '{ALL}' RDF of pair {pair} (pairs: {sorted(run_frame.pair.unique())})")
    both = f"{run_file} and reference {reference_path}, pair {pair}"
    emd = _emd(ref_all, model_all, f"model {both}")
    noise = _emd(_curve(run_frame, HALVES[0], pair), _curve(run_frame, HALVES[1], pair), f"{run_file}: halves of {pair}")
    ref_floor = _emd(_curve(reference, HALVES[0], pair), _curve(reference, HALVES[1], pair),
                     f"{reference_path}: halves of {pair}")
    replicas = [_emd(ref_all, _curve(run_frame, p, pair), f"{p} of {both}") for p in _replicas(run_frame)]
    replicas = [v for v in replicas if np.isfinite(v)]
    floors = [v for v in (noise, ref_floor) if np.isfinite(v)]
    floor = max(floors) if floors else 0.0
    return {"pair": pair, "emd_angstrom": emd, "noise_floor_angstrom": noise, "reference_floor_angstrom": ref_floor,
            "floor_angstrom": floor,
            "replica_emd_min": min(replicas) if replicas else np.nan,
            "replica_emd_max": max(replicas) if replicas else np.nan, "n_replicas": len(replicas),
            "resolved": bool(emd > floor)}


def collect(inputs, spec):
    conds = conditions(spec)
    pairs = _pairs(spec["entry"])
    (reference_path,) = inputs["reference"]
    reference = read_rdf(reference_path)
    bench = spec["axes"]["benchmark"][0]
    rdfs, emds = [], []
    for path in inputs["rdf"]:
        keys = parse_run(path).keys()
        cond = condition_of(keys, conds)
        if cond is None:
            continue  # a run of the grid that no condition shows
        frame = read_rdf(path)
        for pair in pairs:
            emds.append({**keys, "condition": cond, **emd_rows(frame, reference, pair, str(path), str(reference_path))})
        curves = frame[(frame.part == ALL) & frame.pair.isin(pairs)]
        rdfs.append(curves.assign(**keys, condition=cond, source="model")[
            list(RUN_KEYS) + ["condition", "source", "pair", "r_angstrom", "g_r"]])
    if not emds:
        raise ValueError(f"no RDF files of the conditions {[c['label'] for c in conds]} to collect")
    ref = reference[(reference.part == ALL) & reference.pair.isin(pairs)]
    rdfs.append(ref.assign(benchmark=bench, strategy="reference", source="reference")[
        ["benchmark", "strategy", "source", "pair", "r_angstrom", "g_r"]])
    rdf_table = pd.concat(rdfs, ignore_index=True)
    rdf_table = rdf_table[[c for c in list(RUN_KEYS) + ["condition", "source", "pair", "r_angstrom", "g_r"]]]
    emd_table = pd.DataFrame(emds)
    return {"rdfs": rdf_table, "emd": with_convergence(emd_table, convergence(inputs.get("loss_curves")))}


# ---- plot ----

def pair_label(pair: str) -> str:
    """``Cl-O`` -> ``Cl–O`` (an en dash, as in print)."""
    return str(pair).replace("-", "–")


def hues(frame: pd.DataFrame, spec: dict) -> pd.Series:
    """The colour key of each row: the strategy's label, with the settings that vary inside a
    condition (training set, foundation, E0s) when they do."""
    setting = settings(frame, {**spec, "axes": {a: spec["axes"].get(a, []) for a in HUE_AXES}})
    name = frame.strategy.astype(str).map(lambda s: spec["labels"].get(s, s))
    return name.where(setting == "", name + ", " + setting)


def hue_order(frame: pd.DataFrame, spec: dict) -> list[str]:
    """Colour keys in the order of the strategy registry (then the table's)."""
    rank = {s: i for i, s in enumerate(spec["labels"])}
    keyed = frame.assign(_hue=hues(frame, spec), _rank=frame.strategy.astype(str).map(rank).fillna(len(rank)))
    return list(dict.fromkeys(keyed.sort_values("_rank", kind="stable")._hue))


def summary(emd: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """Per condition, colour key and pair: mean EMD over seeds, its min-max over seeds and
    replicas, the mean noise floor of the runs, the reference floor, ``resolved`` (mean EMD above
    the mean of the runs' floors) and the number of seeds."""
    frame = emd.assign(hue=hues(emd, spec), condition=emd.condition.astype(str))
    rows = []
    for (cond, hue, pair), sub in frame.groupby(["condition", "hue", "pair"], sort=False):
        values = sub.emd_angstrom.to_numpy(float)
        spread = np.concatenate([values, sub.replica_emd_min.to_numpy(float), sub.replica_emd_max.to_numpy(float)])
        spread = spread[np.isfinite(spread)]
        mean, floor = float(np.mean(values)), float(np.nanmean(sub.floor_angstrom.to_numpy(float)))
        rows.append({"condition": cond, "hue": hue, "pair": pair, "emd_mean": mean, "emd_lo": spread.min(),
                     "emd_hi": spread.max(), "noise_floor": float(np.nanmean(sub.noise_floor_angstrom.to_numpy(float)))
                     if sub.noise_floor_angstrom.notna().any() else np.nan,
                     "reference_floor": float(sub.reference_floor_angstrom.iloc[0]), "floor": floor,
                     "resolved": bool(mean > floor), "n_seeds": int(sub.seed.nunique())})
    return pd.DataFrame(rows)


def window(curves: pd.DataFrame) -> tuple[float, float]:
    """The r range of a row of RDF panels: from half an ångström (rounded down to 0.5 Å) before the
    first bin where any curve exceeds 1 % of its highest g(r) (the excluded core, g = 0, is no
    information) to the end of the grid."""
    r, g = curves.r_angstrom.to_numpy(float), curves.g_r.to_numpy(float)
    if not len(r):
        return 0.0, 1.0
    onset = r[g > 0.01 * g.max()].min() if (g > 0).any() else r.min()
    return max(float(r.min()) - 0.05, np.floor(2 * (onset - 0.5)) / 2), float(r.max()) + 0.05


LETTERS = "abcdefghijklmnopqrstuvwxyz"
PAIR_MARKERS = ("o", "s", "D", "^", "v", "P")
FLOOR_STYLES = (":", "-.", (0, (5, 2)), (0, (1, 3)))


def _letter(ax, i):
    ax.text(-0.02, 1.02, LETTERS[i % 26], transform=ax.transAxes, ha="right", va="bottom", fontsize=11,
            fontweight="bold")


def plot(tables, spec, outputs):
    plt = pyplot()
    import seaborn as sns
    from matplotlib.patches import Patch

    rdfs, emd = tables["rdfs"], tables["emd"]
    conds = [c["label"] for c in conditions(spec)]
    conds = [c for c in conds if c in set(emd.condition.astype(str))] or conds
    pairs = [p for p in _pairs(spec["entry"]) if p in set(rdfs.pair)]
    with_emd = bool(spec["entry"].get("emd_panels"))
    model = rdfs[rdfs.source == "model"].copy()
    model = model.assign(condition=model.condition.astype(str), hue=hues(model, spec))
    reference = rdfs[rdfs.source == "reference"]
    order = hue_order(emd, spec)
    colours = dict(zip(order, sns.color_palette("colorblind", max(len(order), 3))))
    marks, note = convergence_note(emd)
    hue_marks = {}
    for hue, sub in emd.assign(hue=hues(emd, spec)).groupby("hue"):
        if any(str(s) in marks for s in sub.strategy.unique()):
            hue_marks[hue] = " †"
    seeds = int(emd.seed.nunique())
    nrows, ncols = len(pairs) + with_emd, len(conds)
    # wide enough for a legend of several columns; tall enough for the panels above the legend
    # (the EMD panels' strategy names are rotated under them: 4 in per column and an inch below)
    width = max((4.0 if with_emd else 3.0) * ncols + 0.4, 7.5)
    n_labels = len(order) + 2 + (3 + 2 * len(pairs) if with_emd else 0)
    legend_rows = int(np.ceil(n_labels / max(1, int(width // (3.0 if with_emd else 2.0)))))
    height = 2.7 * nrows + (1.0 if with_emd else 0.0) + 1.1 + 0.19 * legend_rows

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
        letter = 0
        for i, pair in enumerate(pairs):
            ref = reference[reference.pair == pair].sort_values("r_angstrom")
            x_lo, x_hi = window(pd.concat([ref, model[model.pair == pair]]))
            for j, cond in enumerate(conds):
                ax = axes[i, j]
                sub = model[(model.pair == pair) & (model.condition == cond)]
                for hue in order:
                    curve = (sub[sub.hue == hue].groupby("r_angstrom").g_r.agg(["mean", "min", "max", "count"])
                             .sort_index())
                    if curve.empty:
                        continue
                    ax.plot(curve.index, curve["mean"], color=colours[hue], lw=1.4)
                    if (curve["count"] > 1).any():
                        ax.fill_between(curve.index, curve["min"], curve["max"], color=colours[hue], alpha=0.22,
                                        lw=0)
                ax.plot(ref.r_angstrom, ref.g_r, color="k", ls="--", lw=1.2, zorder=5)
                ax.axhline(1.0, color="0.85", lw=0.6, zorder=0)
                ax.text(0.97, 0.95, pair_label(pair), transform=ax.transAxes, ha="right", va="top", fontsize=9,
                        fontweight="bold")
                ax.set_title(cond)
                # a collapsed run (atoms on top of each other: g(r) of tens at r ~ 0) would flatten
                # every other curve: the axis ends at 2.5x the reference's peak, the runs beyond named
                top = max(2.5 * float(ref.g_r.max()) if len(ref) else 0.0, 3.0)
                beyond = [h for h in order if (sub[sub.hue == h].groupby("r_angstrom").g_r.mean() > top).any()]
                ax.set_ylim(0, top)
                if beyond:
                    ax.text(0.03, 0.95, textwrap.fill("off scale: " + ", ".join(beyond), 38), transform=ax.transAxes,
                            ha="left", va="top", fontsize=6.5, color="0.25")
                ax.set_xlim(x_lo, x_hi)
                if j == 0:
                    ax.set_ylabel(f"g(r), {pair_label(pair)}")
                ax.set_xlabel("r (Å)")
                _letter(ax, letter)
                letter += 1
        if with_emd:
            table = summary(emd, spec)
            width = 0.8 / max(len(pairs), 1)
            ymax = float(np.nanmax(np.r_[table.emd_hi, table.floor, table.reference_floor, 1e-3])) * 1.15
            for j, cond in enumerate(conds):
                ax = axes[-1, j]
                sub = table[table.condition == cond]
                for k, pair in enumerate(pairs):
                    offset = (k - (len(pairs) - 1) / 2) * width
                    ref_floor = sub[sub.pair == pair].reference_floor
                    if ref_floor.notna().any():
                        ax.axhspan(0, float(ref_floor.iloc[0]), color="0.6", alpha=0.15, lw=0, zorder=0)
                        ax.axhline(float(ref_floor.iloc[0]), color="0.35", lw=1.0, ls=FLOOR_STYLES[k % len(FLOOR_STYLES)],
                                   zorder=1)
                    for x, hue in enumerate(order):
                        row = sub[(sub.hue == hue) & (sub.pair == pair)]
                        if row.empty:
                            continue
                        row = row.iloc[0]
                        c = colours[hue]
                        ax.errorbar(x + offset, row.emd_mean, yerr=[[row.emd_mean - row.emd_lo],
                                                                    [row.emd_hi - row.emd_mean]],
                                    color=c, lw=1.1, capsize=2.5, zorder=3)
                        ax.plot(x + offset, row.emd_mean, marker=PAIR_MARKERS[k % len(PAIR_MARKERS)], ms=6.5,
                                color=c, mfc=c if row.resolved else "white", mec=c, mew=1.4, ls="none", zorder=4,
                                clip_on=False)
                        if np.isfinite(row.noise_floor):
                            ax.plot(x + offset, row.noise_floor, marker="_", ms=11, mew=2.0, color="0.15", ls="none",
                                    zorder=4, clip_on=False)
                ax.set_xticks(range(len(order)), [h + hue_marks.get(h, "") for h in order], rotation=30, ha="right")
                ax.set_xlim(-0.6, len(order) - 0.4)
                ax.set_ylim(0, ymax)
                ax.set_title(cond)
                if j == 0:
                    ax.set_ylabel("EMD to reference (Å)")
                _letter(ax, letter)
                letter += 1
        # one legend: strategies and the reference; the EMD panels' symbols
        handles = [plt.Line2D([], [], color=colours[h], lw=2) for h in order]
        names = [h + hue_marks.get(h, "") for h in order]
        handles.append(plt.Line2D([], [], color="k", ls="--", lw=1.2))
        names.append(f"reference MLIP, long MD ({spec.get('reference_label', 'reference')})")
        if seeds > 1:
            handles.append(Patch(color="0.5", alpha=0.3, lw=0))
            names.append(f"min–max over {seeds} seeds")
        if with_emd:
            for k, pair in enumerate(pairs):
                handles.append(plt.Line2D([], [], color="0.3", marker=PAIR_MARKERS[k % len(PAIR_MARKERS)], ls="none"))
                names.append(f"EMD {pair_label(pair)}: mean, bars min–max (seeds, replicas)")
            handles.append(plt.Line2D([], [], color="0.3", marker="o", mfc="white", ls="none"))
            names.append("hollow: within noise (EMD ≤ floor)")
            handles.append(plt.Line2D([], [], color="0.15", marker="_", ms=11, mew=2, ls="none"))
            names.append("run's noise floor (half vs half)")
            for k, pair in enumerate(pairs):
                handles.append(plt.Line2D([], [], color="0.35", ls=FLOOR_STYLES[k % len(FLOOR_STYLES)]))
                names.append(f"reference noise floor {pair_label(pair)}")
        title_legend_note(fig, spec["description"], handles, names, 3.0 if with_emd else 2.0, note, wrap=100)
        save(fig, outputs)

