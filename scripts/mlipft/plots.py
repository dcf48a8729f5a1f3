"""Figures from the collected tables (cheap: re-plotting never re-runs training)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402

STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8}


def _save(fig, outputs: list[str]) -> None:
    for out in outputs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=200, bbox_inches="tight", format=Path(out).suffix[1:])
    plt.close(fig)


def reaction_label(reaction: str) -> str:
    """``Cl_Br`` -> ``Cl⁻ + CH₃Br``."""
    x, y = reaction.split("_")
    return f"{x}$^-$ + CH$_3${y}"


def neb_window(profiles: pd.DataFrame) -> tuple[float, float]:
    """Energy window of the NEB panels, set by the *reference* profiles (span = highest
    reference energy above the lowest of reactant, product and 0): a model that blows up in the
    transition-state region must not squash every other curve flat; it is clipped and marked."""
    ref = profiles[profiles.source == "reference"].energy_ev
    lo, hi = min(float(ref.min()), 0.0), max(float(ref.max()), 0.05)
    span = hi - lo
    return lo - 1.5 * span, hi + 2.0 * span


def plot_neb_profiles(profiles: pd.DataFrame, barriers: pd.DataFrame, labels: dict[str, str],
                      outputs: list[str], title: str, reference_label: str) -> None:
    """One panel per strategy: model NEB profiles (solid) against the reference (dashed)."""
    strategies = [s for s in labels if s in set(profiles.strategy)]
    reactions = sorted(profiles.reaction.unique())
    colours = dict(zip(reactions, sns.color_palette("colorblind", len(reactions))))
    ncols = min(4, len(strategies))
    nrows = int(np.ceil(len(strategies) / ncols))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.3 * nrows + 0.6),
                                 sharex=True, sharey=True, squeeze=False)
        y_lo, y_hi = neb_window(profiles)
        for ax, strategy in zip(axes.flat, strategies):
            sub = profiles[profiles.strategy == strategy]
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
            err = barriers[barriers.strategy == strategy]["error_ev"].abs().mean()
            text = f"barrier MAE {err * 1000:.0f} meV" if err < 10 else f"barrier MAE {err:.3g} eV"
            if off_scale:
                worst = max(off_scale, key=abs)
                text += f"\n▲▼ off scale (as far as {worst:.3g} eV)"
            ax.set_title(labels[strategy])
            ax.text(0.03, 0.95, text, transform=ax.transAxes, va="top", fontsize=7.5)
            ax.axhline(0, color="0.8", lw=0.6, zorder=0)
            ax.set_ylim(y_lo, y_hi)
        for ax in axes.flat[len(strategies):]:
            ax.axis("off")
        for ax in axes[-1]:
            ax.set_xlabel("Reaction coordinate\n(normalised path length)")
        for ax in axes[:, 0]:
            ax.set_ylabel("Relative energy (eV)")
        handles = [plt.Line2D([], [], color=colours[r], lw=2) for r in reactions]
        handles += [plt.Line2D([], [], color="k", ls="--"), plt.Line2D([], [], color="k", marker="o", ms=3)]
        names = [reaction_label(r) for r in reactions] + [reference_label, "fine-tuned model"]
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.03 * (len(names) > 6)))
        fig.suptitle(title)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        _save(fig, outputs)


def plot_test_errors(errors: pd.DataFrame, trainable: pd.DataFrame, labels: dict[str, str],
                     outputs: list[str], title: str) -> None:
    """Energy and force RMSE on the test set per strategy (bars: mean over seeds; dots: seeds)."""
    order = [s for s in labels if s in set(errors.strategy)]
    frac = trainable.groupby("strategy")["trainable_fraction"].mean()
    ticks = [f"{labels[s]}\n({100 * frac.get(s, np.nan):.1f} % trained)" for s in order]
    panels = (("energy_rmse", "Energy RMSE (meV/atom)"), ("force_rmse", "Force RMSE (meV/Å)"))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        for ax, (metric, ylabel) in zip(axes, panels):
            data = errors[errors.metric == metric]
            sns.barplot(data=data, x="strategy", y="value", order=order, ax=ax, color="#8fb3d9",
                        errorbar=None)
            sns.stripplot(data=data, x="strategy", y="value", order=order, ax=ax, color="k", size=3)
            ax.set_xticks(range(len(order)), ticks, rotation=45, ha="right")
            ax.set_xlabel("")
            ax.set_ylabel(ylabel)
            values = data.value[data.value > 0]
            if len(values) and values.max() / values.min() > 30:  # decades apart: log, bars from the floor
                ax.set_yscale("log")
                ax.set_ylabel(ylabel + ", log scale")
            else:  # linear from zero, so bar lengths compare as ratios
                ax.set_ylim(0, 1.12 * values.max())
            for i, s in enumerate(order):
                v = data[data.strategy == s]["value"].mean()
                ax.annotate(f"{v:.0f}" if v >= 100 else f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                            textcoords="offset points")
        fig.suptitle(title)
        fig.tight_layout()
        _save(fig, outputs)


MARKERS = "osD^vP*X<>"


def plot_learning_curve(errors: pd.DataFrame, trainable: pd.DataFrame, labels: dict[str, str],
                        outputs: list[str], title: str) -> None:
    """Test-set energy and force RMSE against the number of training configurations (log-log),
    one line per strategy through the mean over seeds (each seed a faint dot)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

    order = [s for s in labels if s in set(errors.strategy)]
    colours = dict(zip(order, sns.color_palette("tab10", len(order))))
    frac = trainable.groupby("strategy")["trainable_fraction"].mean()
    panels = (("energy_rmse", "Energy RMSE (meV/atom)"), ("force_rmse", "Force RMSE (meV/Å)"))
    sizes = sorted(errors.n_train.unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
        for ax, (metric, ylabel) in zip(axes, panels):
            data = errors[errors.metric == metric]
            for i, s in enumerate(order):
                runs = data[data.strategy == s]
                mean = runs.groupby("n_train")["value"].mean()
                ax.plot(mean.index, mean.values, marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.3,
                        color=colours[s], label=f"{labels[s]} ({100 * frac.get(s, np.nan):.1f} % trained)")
                if runs.seed.nunique() > 1:
                    ax.scatter(runs.n_train, runs.value, s=6, alpha=0.35, color=colours[s], linewidths=0)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(sizes)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            if np.log10(data.value.max() / data.value.min()) < 1.5:  # within ~a decade: label 2 and 5 too
                ax.yaxis.set_minor_formatter(FuncFormatter(
                    lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else ""))
            ax.set_xlabel("Training configurations")
            ax.set_ylabel(ylabel + ", log scale")
            ax.grid(which="major", alpha=0.3)
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(4, len(order)), frameon=False)
        fig.suptitle(title)
        fig.tight_layout(rect=(0, 0.02 + 0.045 * ((len(order) + 3) // 4), 1, 1))
        _save(fig, outputs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["neb_profiles", "test_errors", "learning_curve"])
    parser.add_argument("--table", required=True, help="profiles (neb) or errors (test_errors, learning_curve) table")
    parser.add_argument("--extra", required=True, help="barriers (neb) or trainable (test_errors, learning_curve) table")
    parser.add_argument("--labels", required=True, help="JSON {strategy: label}, in plotting order")
    parser.add_argument("--title", required=True)
    parser.add_argument("--reference-label", default="reference")
    parser.add_argument("--outputs", nargs="+", required=True)
    args = parser.parse_args(argv)
    labels = json.loads(args.labels)
    table, extra = pd.read_csv(args.table), pd.read_csv(args.extra)
    if args.kind == "neb_profiles":
        plot_neb_profiles(table, extra, labels, args.outputs, args.title, args.reference_label)
    elif args.kind == "learning_curve":
        plot_learning_curve(table, extra, labels, args.outputs, args.title)
    else:
        plot_test_errors(table, extra, labels, args.outputs, args.title)


if __name__ == "__main__":
    main()
