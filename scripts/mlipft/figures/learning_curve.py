"""Test-set errors against the number of training configurations (log-log), one line per
strategy: "how much data"."""

from __future__ import annotations

import numpy as np

from .common import (PANELS, STYLE, convergence, convergence_note, error_inputs, error_summary, pyplot, save,
                     settings, trainable, training_set_sizes, with_convergence, with_sizes)

DESCRIPTION = ("RMSE of energies (meV/atom) and forces (meV/Å) on the evaluation set against the number of "
               "training configurations, log-log, one line per strategy through the mean over seeds.")
TABLES = ("errors", "trainable")
MARKERS = "osD^vP*X<>"


def check(config, name, fig, axes):
    if len(set(map(float, axes["fraction"]))) < 2:
        return ".fractions: a learning_curve figure needs at least two different fractions"
    return None


def inputs(config, name, runs, paths):
    return error_inputs(config, name, runs, paths)


def collect(inputs, spec):
    errors = with_sizes(error_summary(inputs["errors"]), training_set_sizes(inputs["trainsets"]))
    conv = convergence(inputs.get("loss_curves"))
    return {"errors": errors, "trainable": with_convergence(trainable(inputs["trainable"]), conv)}


def plot(tables, spec, outputs):
    from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

    errors, train = tables["errors"], tables["trainable"]
    plt = pyplot()
    import seaborn as sns

    labels = spec["labels"]
    errors = errors.assign(setting=settings(errors, spec))
    lines = [(s, h) for s in labels if s in set(errors.strategy) for h in dict.fromkeys(errors.setting)]
    colours = dict(zip(lines, sns.color_palette("tab10", len(lines))))
    frac = train.groupby("strategy")["trainable_fraction"].mean()
    marks, note = convergence_note(train)
    sizes = sorted(errors.n_train.unique())
    evalsets = [e for e in spec["evalsets"] if e in set(errors.evalset)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(evalsets), 2, figsize=(10, 4.2 * len(evalsets)), squeeze=False)
        for row, evalset in enumerate(evalsets):
            for ax, (metric, ylabel) in zip(axes[row], PANELS):
                data = errors[(errors.metric == metric) & (errors.evalset == evalset)]
                for i, (s, h) in enumerate(lines):
                    runs = data[(data.strategy == s) & (data.setting == h)]
                    mean = runs.groupby("n_train")["value"].mean()
                    name = (f"{labels[s]}{marks.get(s, '')} ({100 * frac.get(s, np.nan):.1f} % trained)"
                            + (f", {h}" if h else ""))
                    ax.plot(mean.index, mean.values, marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.3,
                            color=colours[(s, h)], label=name)
                    if runs.seed.nunique() > 1:
                        ax.scatter(runs.n_train, runs.value, s=6, alpha=0.35, color=colours[(s, h)], linewidths=0)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xticks(sizes)
                ax.xaxis.set_major_formatter(ScalarFormatter())
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                if np.log10(data.value.max() / data.value.min()) < 1.5:  # within ~a decade: label 2 and 5 too
                    ax.yaxis.set_minor_formatter(FuncFormatter(
                        lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else ""))
                ax.set_xlabel("Training configurations")
                ax.set_ylabel(ylabel + ", log scale" + (f"\non {evalset}" if len(evalsets) > 1 else ""))
                ax.grid(which="major", alpha=0.3)
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(4, len(lines)), frameon=False,
                   bbox_to_anchor=(0.5, 0.03 if note else 0.0))  # above the footnote
        fig.suptitle(spec["description"])
        if note:
            fig.text(0.5, 0.0, note, ha="center", va="bottom", fontsize=7, color="0.3")
        fig.tight_layout(rect=(0, (0.04 + 0.045 * ((len(lines) + 3) // 4) + 0.03 * bool(note)) / len(evalsets), 1, 1))
        save(fig, outputs)
