"""Single-phase against combined fine-tuning (the paper's Fig. 19 on ice polymorphs): each
single-phase fine-tune evaluated on its own phase's test set, beside one model fine-tuned on all
phases together evaluated on each phase. Two panels, energy RMSE (left) and force RMSE (right);
on the x axis the single-phase block (one group per phase) and, after a dashed line, the
combined block (the same phases); one bar per strategy in each group, mean over seeds (the
spread over seeds as error bars when there are several)."""

from __future__ import annotations

import numpy as np

from .common import PANELS, STYLE, collect_errors, convergence_note, error_inputs, pyplot, save, span
from .cross_phase import phase

DESCRIPTION = ("Energy (meV/atom) and force (meV/Å) RMSE on each phase's test set: single-phase fine-tunes "
               "on their own phase against one fine-tune on all phases together (combined_trainset), one bar "
               "per strategy, mean over seeds; a dashed line separates the two blocks.")
TABLES = ("errors", "trainable")
SINGLE, COMBINED = "single-phase", "combined"
#: A panel whose largest bar exceeds the smallest by more than this ratio gets a log axis.
LOG_RATIO = 30.0


def combined_trainset(spec: dict) -> str:
    return str((spec.get("entry") or {})["combined_trainset"])


def check(config, name, fig, axes):
    from ..config import evalsets

    combined = fig.get("combined_trainset")
    if combined is None:
        return (".combined_trainset: a phase_blocks figure needs the training set of all phases together "
                "(e.g. train), also listed in trainset")
    if combined not in axes["trainset"]:
        return f".combined_trainset: {combined!r} is not in the figure's trainset list {axes['trainset']}"
    singles = [t for t in axes["trainset"] if t != combined]
    if not singles:
        return ".trainset: a phase_blocks figure needs single-phase training sets besides the combined one"
    sets = evalsets(config, name)
    phases = {phase(e) for e in sets}
    unmatched = [t for t in singles if phase(t) not in phases]
    if unmatched:
        return (f".evalsets: the single-phase training sets {unmatched} have no test set of their phase among "
                f"{sets} (train_Ih is evaluated on test_Ih)")
    if len(axes["fraction"]) > 1:
        return ".fractions: a phase_blocks figure compares training sets at one fraction"
    for axis in ("foundation", "e0s", "variant", "benchmark"):
        if len(axes[axis]) > 1:
            return (f".{axis}: a phase_blocks figure varies the strategy only (bars), got several "
                    f"{axis} values {axes[axis]}")
    return None


def inputs(config, name, runs, paths):
    return error_inputs(config, name, runs, paths)


def collect(inputs, spec):
    return collect_errors(inputs)


def bars(errors, spec, metric: str):
    """The bars of one panel: a row per (block, phase, strategy) with ``mean``, ``std`` (over
    seeds; 0 for one seed) and ``n_seeds``. The single-phase block pairs each single-phase
    training set with the test set of its phase; the combined block is the combined run on
    every evaluation set. Phases in the order of the figure's evaluation sets, strategies in
    registry order."""
    import pandas as pd

    combined = combined_trainset(spec)
    data = errors[errors.metric == metric].astype({"trainset": str, "evalset": str, "strategy": str})
    data = data.assign(train_phase=data.trainset.map(phase), test_phase=data.evalset.map(phase))
    single = data[(data.trainset != combined) & (data.train_phase == data.test_phase)].assign(block=SINGLE)
    joint = data[data.trainset == combined].assign(block=COMBINED)
    both = pd.concat([single, joint], ignore_index=True)
    out = (both.groupby(["block", "test_phase", "strategy"], sort=False)["value"]
           .agg(mean="mean", std="std", n_seeds="count").reset_index().rename(columns={"test_phase": "phase"}))
    out["std"] = out["std"].fillna(0.0)
    phases = list(dict.fromkeys(phase(e) for e in spec["evalsets"]))
    strategies = [s for s in spec["labels"] if s in set(out.strategy)] + sorted(set(out.strategy) - set(spec["labels"]))
    out["_b"] = out.block.map({SINGLE: 0, COMBINED: 1})
    out["_p"] = out.phase.map({p: i for i, p in enumerate(phases)}).fillna(len(phases))
    out["_s"] = out.strategy.map({s: i for i, s in enumerate(strategies)})
    return out.sort_values(["_b", "_p", "_s"]).drop(columns=["_b", "_p", "_s"]).reset_index(drop=True)


def _sizes(errors, spec) -> str:
    if "n_train" not in errors.columns:
        return ""
    combined = combined_trainset(spec)
    first = errors.drop_duplicates(["trainset"])
    sizes = dict(zip(first.trainset.astype(str), first.n_train.astype(int)))
    joint = sizes.pop(combined, "?")
    return f"training configurations: {span(sizes.values())} per single phase, {joint} combined"


def plot(tables, spec, outputs):
    import matplotlib.ticker as mticker

    errors, train = tables["errors"], tables["trainable"]
    plt = pyplot()
    marks, note = convergence_note(train) if "convergence" in train.columns else ({}, "")
    strategies = [s for s in spec["labels"] if s in set(errors.strategy.astype(str))]
    colours = dict(zip(strategies, plt.get_cmap("tab10").colors))
    seeds = int(errors.seed.nunique())
    phases = list(dict.fromkeys(phase(e) for e in spec["evalsets"]))
    width = 0.8 / max(len(strategies), 1)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, layout="constrained", figsize=(12.0, 4.2))
        for ax, (metric, label) in zip(axes, PANELS):
            table = bars(errors, spec, metric)
            if table.empty:
                raise ValueError(f"no {metric} values for the single-phase or combined runs")
            slots = {(b, p): i + (len(phases) + 0.6 if b == COMBINED else 0.0)
                     for b in (SINGLE, COMBINED) for i, p in enumerate(phases)}
            for k, strategy in enumerate(strategies):
                sub = table[table.strategy == strategy]
                x = np.array([slots[(b, p)] for b, p in zip(sub.block, sub.phase)]) + (k - (len(strategies) - 1) / 2) * width
                ax.bar(x, sub["mean"], width=width * 0.95, color=colours[strategy],
                       yerr=sub["std"] if seeds > 1 else None, capsize=2,
                       label=spec["labels"].get(strategy, strategy) + marks.get(strategy, ""))
            values = table["mean"].to_numpy(float)
            values = values[np.isfinite(values) & (values > 0)]
            if len(values) and values.max() / values.min() > LOG_RATIO:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
                label += ", log scale"
            ax.axvline(len(phases) - 0.2, color="0.3", ls="--", lw=1.0)
            centres = [slots[(b, p)] for b in (SINGLE, COMBINED) for p in phases]
            ax.set_xticks(centres, phases * 2)
            ax.set_xlabel("test phase")
            top = ax.get_ylim()[1]
            for block, centre in ((f"{SINGLE} fine-tunes\n(trained on the test phase)", (len(phases) - 1) / 2),
                                  (f"{COMBINED} fine-tune\n(trained on all phases)", len(phases) + 0.6 + (len(phases) - 1) / 2)):
                ax.text(centre, 1.02, block, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                        fontsize=8, color="0.25")
            ax.set_ylim(top=top)
            ax.set_ylabel(label + (f"\nmean ± std over {seeds} seeds" if seeds > 1 else ""))
            ax.grid(axis="y", color="0.9", lw=0.6)
            ax.set_axisbelow(True)
        axes[1].legend(title="strategy", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fixed = []
        for axis, name in (("foundation", "foundation"), ("e0s", "E0s"), ("variant", "variant")):
            values = spec["axes"].get(axis, [])
            if len(values) == 1 and not (axis == "variant" and values[0] == "base"):
                fixed.append(f"{name} {values[0]}")
        sizes = _sizes(errors, spec)
        fig.suptitle(spec["description"] + "\n(" + "; ".join(filter(None, [", ".join(fixed), sizes])) + ")",
                     fontsize=10)
        if note:
            fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=7, color="0.3", wrap=True)
        save(fig, outputs)
