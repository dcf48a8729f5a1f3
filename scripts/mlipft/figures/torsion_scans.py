"""Relaxed torsion scans of each strategy's model against the reference scans (the paper's Fig. 9,
SPICE torsion accuracy): relative-energy profiles per torsion and the MAE of each.

Per run, ``torsions.csv`` of ``python -m mlipft.analysis.torsion --relax``: at every reference
angle the reference geometry relaxed with the model, the scanned dihedral fixed. Both profiles
are relative to their own minimum over the scan (the reference's minimum need not be the
model's); the error of a run on a torsion is the mean absolute difference of the two relative
profiles over the scan's angles (meV), and its ``overall`` error the mean of its torsions'.

A model with a hole shows as such, not smoothed over: a relaxation that falls into it (tens of eV
down, the molecule broken) becomes its profile's minimum, and that scan's MAE is then of the order
of the hole's depth. The ``mae`` table says why (``rmsd_mean_A``: how far the relaxed geometries
moved from the reference's; ``converged_fraction``: share of relaxations that reached fmax), and
the panels clip such values at their edge with a marker (the window is set by the reference).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..paths import RUN_KEYS
from .common import STYLE, collect_runs, pyplot, save, settings

DESCRIPTION = ("Relaxed torsion scans: relative energy (meV) of each model's constrained relaxations at the "
               "reference angles against the reference scans (dashed), and the MAE per torsion and overall.")
TABLES = ("profiles", "mae")
#: Benchmarks that come with torsion scans (mlipft.mini.spice writes ``torsions.xyz``).
BENCHMARKS = ("spice",)
OVERALL = "overall"


def check(config, name, fig, axes):
    from ..config import as_list

    if len(axes["benchmark"]) != 1 or axes["benchmark"][0] not in BENCHMARKS:
        return f".benchmark: a torsion_scans figure needs one benchmark with torsion scans {list(BENCHMARKS)} " \
               f"(got {axes['benchmark']})"
    wanted = as_list(fig.get("torsions") or [])
    if len(set(wanted)) != len(wanted):
        return f".torsions: listed twice: {sorted({t for t in wanted if wanted.count(t) > 1})}"
    if wanted and config.get("world") == "mini":
        bench = axes["benchmark"][0]
        generated = (((config.get("scales") or {}).get(config.get("scale")) or {}).get("benchmarks") or {}) \
            .get(bench, {}).get("torsions")
        missing = [t for t in wanted if generated and t not in generated]
        if missing:
            return (f".torsions: {missing} are not scanned at scale {config['scale']!r} "
                    f"(scales.{config['scale']}.benchmarks.{bench}.torsions: {generated})")
    return None


def inputs(config, name, runs, paths):
    return {"torsions": [paths.run_file(r, "torsions") for r in runs]}


def _keys(frame: pd.DataFrame) -> list[str]:
    return [k for k in RUN_KEYS if k in frame.columns]


def errors(profiles: pd.DataFrame) -> pd.DataFrame:
    """Per run and torsion: ``mae_mev`` and ``max_error_mev`` of the model's relative energies
    against the reference's at the same angles, ``n_angles``, and (where the profiles have them)
    ``rmsd_mean_A`` (mean aligned RMSD of the relaxed from the reference geometries) and
    ``converged_fraction`` (share of relaxations that reached fmax); then one ``overall`` row per
    run: the mean of its torsions' values (``n_angles`` summed). A model angle without a
    reference, or a scan without a reference, is an error."""
    keys = _keys(profiles)
    frame = profiles.astype({k: str for k in keys})
    model = frame[frame.source == "model"]
    reference = frame[frame.source == "reference"]
    on = keys + ["torsion", "angle_deg"]
    dup = model.duplicated(on) | model.angle_deg.isna()
    if dup.any():
        raise ValueError(f"torsion profiles: angles repeated or missing in {model[dup][on].head(3).to_dict('records')}")
    merged = model.merge(reference[on + ["relative_energy_ev"]], on=on, how="left", suffixes=("", "_reference"),
                         validate="one_to_one")
    lost = merged.relative_energy_ev_reference.isna()
    if lost.any():
        raise ValueError("torsion profiles: no reference energy for model angles "
                         f"{merged[lost][on].head(3).to_dict('records')} (a scan without REF_energy?)")
    merged["abs_error_mev"] = 1000.0 * (merged.relative_energy_ev - merged.relative_energy_ev_reference).abs()
    agg = {"mae_mev": ("abs_error_mev", "mean"), "max_error_mev": ("abs_error_mev", "max"),
           "n_angles": ("abs_error_mev", "size")}
    if "rmsd_to_reference_A" in merged.columns:
        agg["rmsd_mean_A"] = ("rmsd_to_reference_A", "mean")
    if "relax_status" in merged.columns:
        merged["converged"] = (merged.relax_status == "converged").astype(float)
        agg["converged_fraction"] = ("converged", "mean")
    per = merged.groupby(keys + ["torsion"], sort=False).agg(**agg).reset_index()
    overall = per.groupby(keys, sort=False).agg(
        {c: ("sum" if c == "n_angles" else "mean") for c in agg}).reset_index().assign(torsion=OVERALL)
    out = pd.concat([per, overall], ignore_index=True)
    runs = {run: i for i, run in enumerate(dict.fromkeys(per[keys].itertuples(index=False, name=None)))}
    out["_order"] = [runs[run] for run in out[keys].itertuples(index=False, name=None)]
    out = out.sort_values("_order", kind="stable").reset_index(drop=True)  # each run: its torsions, then overall
    return out[keys + ["torsion"] + list(agg)]


def collect(inputs, spec):
    profiles = collect_runs(inputs["torsions"])
    wanted = (spec.get("entry") or {}).get("torsions")
    if wanted:
        missing = sorted(set(wanted) - set(profiles.torsion))
        if missing:
            raise ValueError(f"torsion scans {missing} are in no run's torsions.csv (they have "
                             f"{sorted(set(profiles.torsion))})")
        profiles = profiles[profiles.torsion.isin(wanted)].reset_index(drop=True)  # a run computes every scan
    return {"profiles": profiles, "mae": errors(profiles)}


def torsion_label(name: str) -> str:
    """``butane_CCCC`` -> ``butane C-C-C-C``, ``alanine_dipeptide_phi`` -> ``alanine dipeptide φ``;
    other names with their underscores as spaces."""
    *molecule, last = str(name).split("_")
    greek = {"phi": "φ", "psi": "ψ", "omega": "ω", "chi": "χ"}
    if molecule and last.lower() in greek:
        last = greek[last.lower()]
    elif molecule and last.isalpha() and last.isupper() and len(last) > 1:
        last = "-".join(last)
    return " ".join(molecule + [last])


def _models(frame: pd.DataFrame, spec: dict) -> list[tuple[str, str]]:
    """(strategy, setting) pairs present, strategies in registry order."""
    present = set(zip(frame.strategy, frame.setting))
    return [(s, h) for s in spec["labels"] for h in dict.fromkeys(frame.setting) if (s, h) in present]


def window(profiles: pd.DataFrame) -> tuple[float, float]:
    """Energy window (meV) of a torsion's panel: the reference's span, widened to every model
    value within 3x of it; a model far off (a relaxation that fell into a hole of the model,
    tens of eV) is clipped at the edge and marked, not allowed to flatten the others."""
    ref = 1000.0 * profiles[profiles.source == "reference"].relative_energy_ev
    model = 1000.0 * profiles[profiles.source == "model"].relative_energy_ev
    top = max(float(ref.max()) if len(ref) else 0.0, 10.0)
    near = model[model <= 3.0 * top]
    hi = 1.08 * max(top, float(near.max()) if len(near) else top)
    return -0.06 * hi, hi


def plot(tables, spec, outputs):
    """One panel per torsion (reference dashed, one colour per strategy, seeds averaged, one line
    style per setting when the grid varies more than the strategy; open markers: a relaxation
    that did not converge; triangles at the edge: off scale) and a last panel of grouped MAE bars
    per torsion and overall (log scale when they span more than 30x)."""
    import seaborn as sns

    plt = pyplot()
    profiles = tables["profiles"].astype({"strategy": str})
    mae = tables["mae"].astype({"strategy": str})
    profiles = profiles.assign(setting=settings(profiles, spec))
    mae = mae.assign(setting=settings(mae, spec))
    if "relax_status" in profiles.columns:
        profiles["unconverged"] = (profiles.source == "model") & (profiles.relax_status != "converged")
    else:
        profiles["unconverged"] = False
    labels = spec["labels"]
    torsions = list(dict.fromkeys(profiles.torsion))
    models = _models(profiles[profiles.source == "model"], spec)
    strategies = list(dict.fromkeys(s for s, _ in models))
    colours = dict(zip(strategies, sns.color_palette("colorblind", max(len(strategies), 1))))
    setting_names = list(dict.fromkeys(h for _, h in models))
    dashes = dict(zip(setting_names, ["-", "-.", ":", (0, (5, 1, 1, 1))] * 4))
    markers = dict(zip(setting_names, ["o", "s", "D", "v"] * 4))

    def name(strategy, setting):
        return labels.get(strategy, strategy) + (f" ({setting})" if setting else "")

    n_panels = len(torsions) + 1
    ncols = min(4, n_panels)
    nrows = int(np.ceil(n_panels / ncols))
    any_open = any_off = False
    with plt.rc_context(STYLE):
        legend_rows = int(np.ceil((len(models) + 3) / 5))  # models, reference, and at most two marker notes
        height = 2.7 * nrows + 0.2 * legend_rows + 0.1
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.1 * ncols, height), squeeze=False)
        flat = list(axes.flat)
        for ax, torsion in zip(flat, torsions):
            sub = profiles[profiles.torsion == torsion]
            lo, hi = window(sub)
            ref = sub[sub.source == "reference"].groupby("angle_deg").relative_energy_ev.mean() * 1000.0
            worst = None
            for strategy, setting in models:
                line = (sub[(sub.source == "model") & (sub.strategy == strategy) & (sub.setting == setting)]
                        .groupby("angle_deg").agg(energy=("relative_energy_ev", "mean"), open=("unconverged", "any")))
                x, y = line.index.to_numpy(), 1000.0 * line.energy.to_numpy()
                colour, marker = colours[strategy], markers[setting]
                ax.plot(x, np.clip(y, lo, hi), color=colour, ls=dashes[setting], lw=1.2, label=name(strategy, setting))
                shut, open_ = ~line.open.to_numpy(), line.open.to_numpy()
                inside = (y >= lo) & (y <= hi)
                ax.plot(x[inside & shut], y[inside & shut], ls="none", marker=marker, ms=2.8, color=colour)
                ax.plot(x[inside & open_], y[inside & open_], ls="none", marker=marker, ms=3.2, mfc="white",
                        mec=colour, mew=0.8)
                any_open |= bool(open_.any())
                for beyond, edge, arrow in ((y > hi, hi, "^"), (y < lo, lo, "v")):
                    if beyond.any():
                        ax.plot(x[beyond], np.full(beyond.sum(), edge), ls="none", marker=arrow, ms=4.5,
                                color=colour, clip_on=False, zorder=6)
                        any_off = True
                        far = y[beyond][np.argmax(np.abs(y[beyond]))]
                        worst = far if worst is None or abs(far) > abs(worst) else worst
            ax.plot(ref.index, ref.to_numpy(), color="k", ls="--", lw=1.4, zorder=5, label=spec["reference_label"])
            ax.set_ylim(lo, hi)
            ax.set_xlim(-185, 185)
            ax.set_xticks(np.arange(-180, 181, 60))
            title = torsion_label(torsion)
            if worst is not None:
                title += f"\n({'▲' if worst > 0 else '▼'} off scale, as far as {worst / 1000:.3g} eV)"
            ax.set_title(title)
            ax.set_xlabel("Dihedral angle (°)")
            ax.set_ylabel("Relative energy (meV)")
            ax.grid(alpha=0.25, lw=0.5)
        ax = flat[len(torsions)]
        groups = torsions + [OVERALL]
        width = 0.8 / max(len(models), 1)
        for m, (strategy, setting) in enumerate(models):
            sel = mae[(mae.strategy == strategy) & (mae.setting == setting)].groupby("torsion").mae_mev.mean()
            values = [float(sel.get(t, np.nan)) for t in groups]
            x = np.arange(len(groups)) - 0.4 + width * (m + 0.5)
            k = setting_names.index(setting)
            ax.bar(x, values, width=width, color=colours[strategy], hatch=["", "//", "..", "xx"][k % 4],
                   edgecolor="white" if k else None, lw=0.3, label=name(strategy, setting))
        values = mae.mae_mev[mae.mae_mev > 0]
        if len(values) and values.max() / values.min() > 30:
            ax.set_yscale("log")
        ax.set_xticks(np.arange(len(groups)))
        ax.set_xticklabels([torsion_label(t).replace(" ", "\n", 1) if t != OVERALL else "overall" for t in groups],
                           fontsize=7)
        ax.axvline(len(torsions) - 0.5, color="0.6", lw=0.6, ls=":")
        ax.set_ylabel("MAE (meV)")
        ax.set_title("MAE of relative energies")
        ax.grid(axis="y", alpha=0.25, lw=0.5)
        for extra in flat[n_panels:]:
            extra.axis("off")
        handles, names = flat[0].get_legend_handles_labels()
        if any_open:
            handles.append(plt.Line2D([], [], ls="none", marker="o", mfc="white", mec="0.3", ms=4))
            names.append("relaxation not converged")
        if any_off:
            handles.append(plt.Line2D([], [], ls="none", marker="^", color="0.3", ms=4.5))
            names.append("off scale")
        ncol = min(len(names), 5)
        fig.suptitle(spec["description"])
        fig.tight_layout(rect=(0, (0.18 * legend_rows + 0.02) / height, 1, 1))
        fig.legend(handles, names, loc="lower center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
        save(fig, outputs)
