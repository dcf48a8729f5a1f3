"""NEB energy profiles of each strategy's model against the reference paths (the paper's
Fig. 6c), with the forward-barrier error of each reaction."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..paths import RUN_KEYS
from .common import STYLE, collect_runs, convergence, convergence_note, pyplot, save, with_convergence

DESCRIPTION = ("NEB energy profiles (eV, relative to the reactant) of each model between the reference end "
               "points, against the reference path (dashed); legend: mean absolute forward-barrier error.")
TABLES = ("neb_profiles", "neb_barriers")


def check(config, name, fig, axes):
    from ..config import as_list

    if not fig.get("neb_reactions"):
        return ".neb_reactions: a neb_profiles figure needs the reactions to compare"
    for bench in axes["benchmark"]:
        if bench != "sn2":
            return f".neb_reactions: only the sn2 benchmark has reaction paths (got {bench})"
    if config["world"] == "mini":
        from ..mini.sn2 import parse_reaction

        for reaction in as_list(fig["neb_reactions"]):
            try:
                parse_reaction(reaction)
            except ValueError as err:
                return f".neb_reactions: {err}"
        generated = config["scales"][config["scale"]]["benchmarks"]["sn2"].get("reactions", [])
        missing = [r for r in fig["neb_reactions"] if generated and r not in generated]
        if missing:
            return (f".neb_reactions: {missing} are not generated at scale {config['scale']!r} "
                    f"(scales.{config['scale']}.benchmarks.sn2.reactions)")
    return None


def inputs(config, name, runs, paths):
    return {"neb": [paths.run_file(r, "neb") for r in runs],
            "loss_curves": [paths.run_file(r, "loss_curves") for r in runs]}


def barriers(profiles: pd.DataFrame) -> pd.DataFrame:
    """Forward barrier (max relative energy along the path) of model and reference, per run and reaction."""
    keys = [k for k in RUN_KEYS if k in profiles.columns] + ["reaction"]
    barrier = profiles.groupby(keys + ["source"])["energy_ev"].max().unstack("source").reset_index()
    barrier["error_ev"] = barrier["model"] - barrier["reference"]
    return barrier.rename(columns={"model": "barrier_model_ev", "reference": "barrier_reference_ev"})


def collect(inputs, spec):
    profiles = collect_runs(inputs["neb"])
    wanted = set(spec["entry"]["neb_reactions"])
    profiles = profiles[profiles.reaction.isin(wanted)].reset_index(drop=True)  # a run computes every figure's reactions
    return {"neb_profiles": profiles,
            "neb_barriers": with_convergence(barriers(profiles), convergence(inputs.get("loss_curves")))}


def reaction_label(reaction: str) -> str:
    """``Cl_Br`` -> ``Cl⁻ + CH₃Br`` (mini world); other names as they are."""
    if "_" not in reaction:
        return reaction
    x, y = reaction.split("_", 1)
    return f"{x}$^-$ + CH$_3${y}"


def window(profiles: pd.DataFrame) -> tuple[float, float]:
    """Energy window of the panels, set by the *reference* profiles (span = highest reference
    energy above the lowest of reactant, product and 0): a model that blows up in the
    transition-state region must not squash every other curve flat; it is clipped and marked."""
    ref = profiles[profiles.source == "reference"].energy_ev
    lo, hi = min(float(ref.min()), 0.0), max(float(ref.max()), 0.05)
    span = hi - lo
    return lo - 1.5 * span, hi + 2.0 * span


def plot(tables, spec, outputs):
    """One panel per strategy (and setting): model NEB profiles (solid) against the reference (dashed)."""
    from .common import settings

    profiles, barrier = tables["neb_profiles"], tables["neb_barriers"]
    plt = pyplot()
    import seaborn as sns

    labels = spec["labels"]
    profiles = profiles.assign(setting=settings(profiles, spec))
    barrier = barrier.assign(setting=settings(barrier, spec))
    panels = [(s, h) for s in labels if s in set(profiles.strategy) for h in dict.fromkeys(profiles.setting)]
    reactions = sorted(profiles.reaction.unique())
    marks, note = convergence_note(barrier)
    colours = dict(zip(reactions, sns.color_palette("colorblind", len(reactions))))
    ncols = min(4, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.3 * nrows + 0.6),
                                 sharex=True, sharey=True, squeeze=False)
        y_lo, y_hi = window(profiles)
        for ax, (strategy, setting) in zip(axes.flat, panels):
            sub = profiles[(profiles.strategy == strategy) & (profiles.setting == setting)]
            off_scale = []
            for reaction in reactions:
                for source, style in (("reference", dict(ls="--", lw=1.2)), ("model", dict(ls="-", lw=1.5, marker="o", ms=2.5))):
                    line = (sub[(sub.reaction == reaction) & (sub.source == source)]
                            .groupby("image")[["reaction_coordinate", "energy_ev"]].mean())
                    energy = line.energy_ev.to_numpy()
                    ax.plot(line.reaction_coordinate, np.clip(energy, y_lo, y_hi), color=colours[reaction], **style)
                    out = (energy > y_hi) | (energy < y_lo)
                    if out.any():  # a model blowing up in the TS region: mark it at the edge, say how far
                        for beyond, edge, marker in ((energy > y_hi, y_hi, "^"), (energy < y_lo, y_lo, "v")):
                            if beyond.any():
                                ax.plot(line.reaction_coordinate[beyond], np.full(beyond.sum(), edge), ls="none",
                                        marker=marker, ms=6, color=colours[reaction], clip_on=False)
                        off_scale.append(energy[out][np.argmax(np.abs(energy[out]))])
            err = barrier[(barrier.strategy == strategy) & (barrier.setting == setting)]["error_ev"].abs().mean()
            text = f"barrier MAE {err * 1000:.0f} meV" if err < 10 else f"barrier MAE {err:.3g} eV"
            if off_scale:
                worst = max(off_scale, key=abs)
                text += f"\n▲▼ off scale (as far as {worst:.3g} eV)"
            ax.set_title(labels[strategy] + marks.get(strategy, "") + (f"\n{setting}" if setting else ""))
            ax.text(0.03, 0.95, text, transform=ax.transAxes, va="top", fontsize=7.5)
            ax.axhline(0, color="0.8", lw=0.6, zorder=0)
            ax.set_ylim(y_lo, y_hi)
        for ax in axes.flat[len(panels):]:
            ax.axis("off")
        for ax in axes[-1]:
            ax.set_xlabel("Reaction coordinate\n(normalised path length)")
        for ax in axes[:, 0]:
            ax.set_ylabel("Relative energy (eV)")
        handles = [plt.Line2D([], [], color=colours[r], lw=2) for r in reactions]
        handles += [plt.Line2D([], [], color="k", ls="--"), plt.Line2D([], [], color="k", marker="o", ms=3)]
        names = [reaction_label(r) for r in reactions] + [spec["reference_label"], "fine-tuned model"]
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.03 * (len(names) > 6)))
        fig.suptitle(spec["description"])
        if note:
            fig.text(0.5, -0.06, note, ha="center", va="bottom", fontsize=7, color="0.3")
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        save(fig, outputs)
