"""Energy and force errors of every strategy at one training-set size, on one or more
evaluation sets (rows of panels), with each strategy's share of trained parameters; several
foundations, E0 modes or variants in the grid are told apart by colour."""

from __future__ import annotations

import numpy as np

from .common import (PANELS, STYLE, collect_errors, convergence_note, error_inputs, pyplot, save, settings)

DESCRIPTION = ("RMSE of energies (meV/atom) and forces (meV/Å) per strategy on each evaluation set, "
               "from per-structure errors; bars are means over seeds, dots single seeds.")
TABLES = ("errors", "trainable")


def check(config, name, fig, axes):
    if len(axes["fraction"]) > 1:
        return (".fractions: a test_errors figure compares strategies at one training-set size; for several "
                "fractions use kind: learning_curve")
    return None


def inputs(config, name, runs, paths):
    return error_inputs(config, name, runs, paths)


def collect(inputs, spec):
    return collect_errors(inputs)


def size_note(errors) -> str:
    """How many configurations the runs trained on (the figure's subtitle): one number, or the
    range over seeds' subsets; with the fraction of the training file when it is not all of it."""
    if "n_train" not in errors.columns:
        return ""
    sizes = sorted(errors.n_train.unique())
    n = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    fractions = sorted({float(f) for f in errors.fraction})
    part = "" if fractions == [1.0] else f", a fraction {'/'.join(f'{f:g}' for f in fractions)} of the training set"
    return f"trained on {n} configurations{part}"


def plot(tables, spec, outputs):
    errors, train = tables["errors"], tables["trainable"]
    plt = pyplot()
    import seaborn as sns

    labels = spec["labels"]
    order = [s for s in labels if s in set(errors.strategy)]
    frac = train.groupby("strategy")["trainable_fraction"].mean()
    marks, note = convergence_note(train)
    ticks = [f"{labels[s]}{marks.get(s, '')}\n({100 * frac.get(s, np.nan):.1f} % trained)" for s in order]
    errors = errors.assign(setting=settings(errors, spec))
    hues = list(dict.fromkeys(errors.setting))
    evalsets = [e for e in spec["evalsets"] if e in set(errors.evalset)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(evalsets), 2, figsize=(11 + 0.8 * (len(hues) - 1), 3.6 * len(evalsets)),
                                 squeeze=False)
        for row, evalset in enumerate(evalsets):
            for ax, (metric, ylabel) in zip(axes[row], PANELS):
                data = errors[(errors.metric == metric) & (errors.evalset == evalset)]
                hue = dict(hue="setting", hue_order=hues, palette="colorblind") if len(hues) > 1 else dict(color="#8fb3d9")
                sns.barplot(data=data, x="strategy", y="value", order=order, ax=ax, errorbar=None, **hue)
                sns.stripplot(data=data, x="strategy", y="value", order=order, ax=ax, color="k", size=3,
                              **({"hue": "setting", "hue_order": hues, "dodge": True, "palette": ["k"] * len(hues),
                                  "legend": False} if len(hues) > 1 else {}))
                ax.set_xticks(range(len(order)), ticks, rotation=45, ha="right")
                ax.set_xlabel("")
                ax.set_ylabel(ylabel if len(evalsets) == 1 else f"{ylabel}\non {evalset}")
                values = data.value[data.value > 0]
                if len(values) and values.max() / values.min() > 30:  # decades apart: log, bars from the floor
                    ax.set_yscale("log")
                    ax.set_ylabel(ax.get_ylabel() + ", log scale")
                elif len(values):  # linear from zero, so bar lengths compare as ratios
                    ax.set_ylim(0, 1.12 * values.max())
                if len(hues) == 1:
                    for i, s in enumerate(order):
                        v = data[data.strategy == s]["value"].mean()  # the bar's value, above its highest seed
                        top = data[data.strategy == s]["value"].max()
                        ax.annotate(f"{v:.0f}" if v >= 100 else f"{v:.3g}", (i, top), ha="center", va="bottom",
                                    fontsize=7, xytext=(0, 2), textcoords="offset points")
                elif ax.get_legend() is not None:
                    ax.get_legend().remove()
        if len(hues) > 1:
            handles, names = axes[0, 0].get_legend_handles_labels()
            # above the footnote, when there is one
            fig.legend(handles[:len(hues)], names[:len(hues)], loc="lower center", ncol=min(4, len(hues)),
                       frameon=False, bbox_to_anchor=(0.5, 0.03 if note else 0.0))
        sizes = size_note(errors)
        fig.suptitle(spec["description"] + (f"\n({sizes})" if sizes else ""))
        if note:
            fig.text(0.5, 0.0, note, ha="center", va="bottom", fontsize=7, color="0.3")
        fig.tight_layout(rect=(0, 0.05 * (len(hues) > 1) * ((len(hues) + 3) // 4) + 0.03 * bool(note), 1, 1))
        save(fig, outputs)
