"""Pretraining-distribution preservation (the paper's Fig. 10): every fine-tuned model scored on
the foundation-level test structures made of its benchmark's elements (a derived set
``{corpus: test, elements_of: train}``), against the foundation before fine-tuning on the same
structures. Multihead models are scored through both heads: the target head (``Default``) and
the replay head (``pt_head``, the figure's second evaluation set, whose entry names
``head: pt_head``). One heat map per metric (force RMSE, energy RMSE): rows the foundation, each
strategy, and each multihead strategy's replay head; columns the benchmarks; each cell the RMSE
(mean over seeds) and its ratio to the foundation's, coloured by that ratio on a log scale (blue:
better than the foundation, red: worse)."""

from __future__ import annotations

import numpy as np

from .common import STYLE, convergence, convergence_note, pyplot, save, trainable, with_convergence

DESCRIPTION = ("RMSE of forces (meV/Å) and energies (meV/atom) on the foundation-level test structures made of "
               "each benchmark's elements, per strategy (target head; multihead runs also through the replay "
               "head) and benchmark, against the foundation before fine-tuning: value and ratio to the "
               "foundation, colour the ratio on a log scale.")
TABLES = ("errors", "trainable")
FOUNDATION, FOUNDATION_LABEL = "zeroshot", "Foundation (not fine-tuned)"
PANELS = (("force_rmse", "Force RMSE (meV/Å)"), ("energy_rmse", "Energy RMSE (meV/atom)"))
#: The colour scale spans ratios 1/CAP .. CAP (a model 16x worse than the foundation is as red as it gets).
CAP = 16.0


def check(config, name, fig, axes):
    from ..config import benchmark_evalsets, evalsets

    sets = evalsets(config, name)
    if len(sets) != 2:
        return (f".evalsets: a preservation figure names two evaluation sets, the foundation-level structures "
                f"through the target head and through the replay head (e.g. [pretraining, pretraining_pt]), got {sets}")
    for bench in axes["benchmark"]:
        spec = benchmark_evalsets(config, bench)
        if spec[sets[1]].get("head") != "pt_head" or spec[sets[1]].get("file") != spec[sets[0]].get("file"):
            return (f".evalsets: {sets[1]!r} of {bench} must be {sets[0]!r} through the replay head "
                    f"(benchmarks.{bench}.evalsets.{sets[1]}: {{file: {spec[sets[0]].get('file')}, head: pt_head}})")
    for axis in ("foundation", "e0s", "variant", "fraction", "trainset"):
        if len(axes[axis]) > 1:
            return f".{axis}: a preservation figure varies strategies and benchmarks only, got several {axis} values"
    return None


def inputs(config, name, runs, paths):
    from ..config import evalsets, grid
    from ..registry import variant_entry

    target, replay = evalsets(config, name)
    axes = grid(config, name)
    files = {"errors": [paths.errors(r, target) for r in runs]
             + [paths.errors(r, replay) for r in runs if variant_entry(config, r.strategy, r.variant).get("multihead")],
             "zeroshot": [paths.zeroshot(b, f, target) for b in axes["benchmark"] for f in axes["foundation"]],
             "trainable": [paths.run_file(r, "trainable") for r in runs],
             "loss_curves": [paths.run_file(r, "loss_curves") for r in runs]}
    return files


def collect(inputs, spec):
    import pandas as pd

    from ..analysis.errors import summary
    from .common import error_summary

    target, replay = spec["evalsets"]
    errors = error_summary(inputs["errors"])
    errors["head"] = np.where(errors.evalset.astype(str) == replay, "pt_head", "Default")
    errors["model"] = np.where(errors["head"] == "pt_head", errors.strategy.astype(str) + ":pt_head",
                               errors.strategy.astype(str))
    zs = pd.concat([pd.read_csv(f) for f in inputs["zeroshot"]], ignore_index=True)
    base = summary(zs.astype({"benchmark": str, "foundation": str, "evalset": str}), ["benchmark", "foundation", "evalset"])
    base = base.assign(strategy=FOUNDATION, head="foundation", model=FOUNDATION, seed=0)
    keep = ["benchmark", "foundation", "strategy", "head", "model", "seed", "evalset", "metric", "unit", "value",
            "n_configs"]
    table = pd.concat([base[keep], errors[keep]], ignore_index=True)
    conv = convergence(inputs.get("loss_curves"))
    return {"errors": table, "trainable": with_convergence(trainable(inputs["trainable"]), conv)}


def matrix(errors, spec, metric: str):
    """Rows (model, label) and the values and ratios to the foundation, benchmarks as columns."""
    import pandas as pd

    data = errors[errors.metric == metric].astype({"benchmark": str, "model": str, "strategy": str})
    mean = data.groupby(["model", "benchmark"])["value"].mean().unstack("benchmark")
    benches = [str(b) for b in spec["axes"]["benchmark"]]
    labels = spec["labels"]
    rows = [(FOUNDATION, FOUNDATION_LABEL)]
    rows += [(s, labels[s]) for s in labels if s in mean.index]
    rows += [(f"{s}:pt_head", f"{labels[s]}, replay head") for s in labels if f"{s}:pt_head" in mean.index]
    values = mean.reindex(index=[r for r, _ in rows], columns=benches)
    ratio = values / values.loc[FOUNDATION]
    return rows, values, pd.DataFrame(ratio)


def plot(tables, spec, outputs):
    from matplotlib.colors import LogNorm

    errors, train = tables["errors"], tables["trainable"]
    plt = pyplot()
    marks, note = convergence_note(train) if "convergence" in train.columns else ({}, "")
    counts = (errors[errors.strategy == FOUNDATION].astype({"benchmark": str}).groupby("benchmark").n_configs.max()
              .to_dict())
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.88")
    norm = LogNorm(1 / CAP, CAP)
    with plt.rc_context(STYLE):
        panels = [(m, lab) for m, lab in PANELS if (errors.metric == m).any()]
        rows0, _, _ = matrix(errors, spec, panels[0][0])
        fig, axes = plt.subplots(1, len(panels), layout="constrained", squeeze=False,
                                 figsize=(4.2 * len(panels) + 3.0, 1.2 + 0.42 * len(rows0)))
        image = None
        for k, (ax, (metric, label)) in enumerate(zip(axes[0], panels)):
            rows, values, ratio = matrix(errors, spec, metric)
            grid = np.clip(ratio.to_numpy(float), 1 / CAP, CAP)
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
            for i in range(values.shape[0]):
                for j in range(values.shape[1]):
                    v, r = values.iat[i, j], ratio.iat[i, j]
                    text = "no data" if not np.isfinite(v) else (f"{v:.0f}" if v >= 10 else f"{v:.1f}")
                    if np.isfinite(v) and i > 0:
                        text += f"\n×{r:.2g}"
                    dark = np.isfinite(grid[i, j]) and abs(np.log(grid[i, j])) > 0.6 * np.log(CAP)
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
            ax.axhline(0.5, color="k", lw=1.2)
            ax.set_xticks(range(values.shape[1]), [f"{b}\n(n={counts.get(b, '?')})" for b in values.columns])
            ax.set_yticks(range(len(rows)), [lab + marks.get(r, "") for r, lab in rows] if k == 0 else [""] * len(rows))
            ax.tick_params(length=0)
            ax.set_title(label)
            ax.set_xlabel("benchmark (n: foundation-level test structures of its elements)")
        bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.9, pad=0.02)
        bar.set_label("ratio to the foundation before fine-tuning\n(blue: preserved or better, red: forgotten)")
        bar.set_ticks([1 / 16, 1 / 4, 1, 4, 16], labels=["1/16", "1/4", "1", "4", "16"])
        one = {a: spec["axes"][a][0] for a in ("foundation", "e0s") if spec["axes"].get(a)}
        seeds = errors[errors.strategy != FOUNDATION].seed.nunique()
        fig.suptitle(spec["description"] + f"\n(foundation {one.get('foundation')}, E0s {one.get('e0s')}"
                     + (f"; mean over {seeds} seeds" if seeds > 1 else "") + "; energies of the target head carry "
                     "its E0s, fitted to the target level, so forces are the level-independent measure)", fontsize=10)
        if note:
            fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=7, color="0.3", wrap=True)
        save(fig, outputs)
