"""Distributions of per-structure errors, one violin per model, on one or more evaluation sets
(rows of panels; the paper's Fig. 3a, 4a and 17): the energy error of each structure and the
force error over its force components. The x axis is the strategy, coloured by the other grid
axes that vary (foundation, E0 mode, ...); with a single strategy, those settings are the x axis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..paths import RUN_KEYS
from .common import (SETTING_AXES, STYLE, collect_runs, convergence, convergence_note, error_inputs, pyplot, save,
                     settings, trainable, with_convergence)

if TYPE_CHECKING:  # pandas is imported where it is used: the workflow imports the kinds at parse time
    import pandas as pd

DESCRIPTION = ("Distributions of per-structure errors, one violin per model (its structures of all seeds pooled; "
               "dashed line: median, dotted: quartiles): absolute energy error (meV/atom) and force RMSE, or MAE with "
               "violin_metrics: mae, over each structure's force components (meV/Å).")
TABLES = ("structures", "trainable")

#: The per-structure columns of the ``structures`` table (units in the names).
COLUMNS = ("energy_error_mev_atom", "energy_abs_error_mev_atom", "force_rmse_mev_a", "force_mae_mev_a")
#: The two panels per ``violin_metrics`` (default rmse): column and axis label. The energy of one
#: structure is one number, so its RMSE and MAE are both its absolute error.
METRICS = {
    "rmse": (("energy_abs_error_mev_atom", "|Energy error| per structure (meV/atom)"),
             ("force_rmse_mev_a", "Force RMSE per structure (meV/Å)")),
    "mae": (("energy_abs_error_mev_atom", "|Energy error| per structure (meV/atom)"),
            ("force_mae_mev_a", "Force MAE per structure (meV/Å)")),
}
DEFAULT_METRICS = "rmse"
#: Log scale when the highest 99th percentile of a panel's models is this many times the
#: lowest median (the models, or a model's tail, decades apart).
LOG_SPAN = 30.0
#: Single structures are drawn over the violins up to this many per violin.
MAX_POINTS = 300
SINGLE = "#8fb3d9"


def metrics(spec: dict) -> tuple[tuple[str, str], tuple[str, str]]:
    """The (column, axis label) of the energy and force panels of a figure."""
    return METRICS[spec.get("entry", {}).get("violin_metrics", DEFAULT_METRICS)]


def check(config, name, fig, axes):
    if fig.get("zeroshot") and ZEROSHOT in config["strategies"]:
        return f".zeroshot: a strategy is named {ZEROSHOT!r}, the name of the foundation before fine-tuning"
    if fig.get("violin_metrics", DEFAULT_METRICS) not in METRICS:
        return f".violin_metrics: one of {sorted(METRICS)} (got {fig['violin_metrics']!r})"
    if len(set(map(float, axes["fraction"]))) > 1:
        return (".fractions: a violins figure pools the structures of its runs per model, at one training-set size; "
                "for several fractions use kind: learning_curve")
    return None


#: The model name and label of a foundation before fine-tuning (figure entry ``zeroshot: true``).
ZEROSHOT, ZEROSHOT_LABEL = "zeroshot", "Foundation (not fine-tuned)"


def inputs(config, name, runs, paths):
    from ..config import evalsets, grid

    files = error_inputs(config, name, runs, paths, trainsets=False)
    if config["figures"][name].get("zeroshot"):
        axes = grid(config, name)
        files["zeroshot"] = [paths.zeroshot(b, f, e) for b in axes["benchmark"] for f in axes["foundation"]
                             for e in evalsets(config, name)]
    return files


def zeroshot_structures(files, spec) -> pd.DataFrame:
    """The per-structure rows of the foundations before fine-tuning (the zero-shot error files of
    rule evaluate_zeroshot), as a model ``zeroshot`` of the grid: strategy ``zeroshot``, the
    other run keys the figure's own single values (E0s, variant, seed: the foundation has none)."""
    import pandas as pd

    frames = []
    for path in files:
        frame = pd.read_csv(path)
        for key in RUN_KEYS:
            if key not in ("benchmark", "foundation"):
                frame[key] = ZEROSHOT if key == "strategy" else spec["axes"][key][0]
        frames.append(frame)
    return structures_of(pd.concat(frames, ignore_index=True))


def structures(files) -> pd.DataFrame:
    """One row per run, evaluation set and structure from per-structure error files
    (mlipft.analysis.errors): the run's keys, ``evalset``, ``index``, ``config_type``,
    ``n_atoms`` and the errors of :data:`COLUMNS` (meV/atom, meV/Å); a structure without force
    components has no force errors (NaN)."""
    return structures_of(collect_runs(files))


def structures_of(frame) -> pd.DataFrame:
    """The :data:`COLUMNS` of per-structure error rows (mlipft.analysis.errors' table)."""
    n = frame["n_force_components"].astype(float).where(frame["n_force_components"] > 0)
    if "config_type" not in frame.columns:
        frame["config_type"] = ""
    frame = frame.assign(
        energy_error_mev_atom=frame["energy_error"].astype(float),
        energy_abs_error_mev_atom=frame["energy_error"].astype(float).abs(),
        force_rmse_mev_a=np.sqrt(frame["force_sq_sum"].astype(float) / n),
        force_mae_mev_a=frame["force_abs_sum"].astype(float) / n,
    )
    keys = [k for k in RUN_KEYS if k in frame.columns]
    return frame[keys + ["evalset", "index", "config_type", "n_atoms", *COLUMNS]]


def collect(inputs, spec):
    conv = convergence(inputs.get("loss_curves"))
    table = structures(inputs["errors"])
    if inputs.get("zeroshot"):
        import pandas as pd

        table = pd.concat([zeroshot_structures(inputs["zeroshot"], spec), table], ignore_index=True)
    return {"structures": table, "trainable": with_convergence(trainable(inputs["trainable"]), conv)}


def _model_marks(train, spec, by: str) -> dict[str, str]:
    """``†`` per model (a strategy, or a setting of one strategy) with runs still improving."""
    if "convergence" not in train.columns:
        return {}
    if by == "strategy":
        return convergence_note(train)[0]
    train = train.assign(setting=settings(train, spec))
    return {setting: mark for setting, sub in train.groupby("setting", sort=False)
            for mark in convergence_note(sub)[0].values()}


def _log_scale(data, models: list[str], y: str) -> bool:
    values = data[data[y] > 0]
    if values.empty:
        return False
    by = values.groupby(models, observed=True)[y]
    return bool(by.quantile(0.99).max() / by.median().min() > LOG_SPAN)


def plot(tables, spec, outputs):
    table, train = tables["structures"], tables["trainable"]
    plt = pyplot()
    import seaborn as sns

    present = list(dict.fromkeys(table.strategy))
    labels = {**({ZEROSHOT: ZEROSHOT_LABEL} if ZEROSHOT in present else {}), **spec["labels"]}
    labels.update({s: s for s in present if s not in labels})
    table = table.assign(setting=settings(table, spec))
    order = [s for s in labels if s in present]  # registry order
    hues = list(dict.fromkeys(table.setting))
    if len(order) > 1:  # strategies along x, the other axes as colours
        x, xorder, hue = "strategy", order, (hues if len(hues) > 1 else None)
        marks = _model_marks(train, spec, "strategy")
        ticks = [f"{labels[s]}{marks.get(s, '')}" for s in order]
        xlabel = ""
    else:  # one strategy: its settings along x
        x, xorder, hue = "setting", hues, None
        marks = _model_marks(train, spec, "setting")
        ticks = [f"{h or labels[order[0]]}{marks.get(h, '')}" for h in hues]
        xlabel = f"{labels[order[0]]} fine-tunes" if hues != [""] else ""
    _, note = convergence_note(train)
    evalsets = [e for e in spec["evalsets"] if e in set(table.evalset)]
    panels = metrics(spec)
    models = list(dict.fromkeys([x, "setting"]))  # one violin each
    counts = table.groupby(["evalset", *models], observed=True).size()
    seeds = sorted({int(s) for s in table.seed})
    sizes = {e: f"{counts[e].min()}" if counts[e].min() == counts[e].max() else f"{counts[e].min()}-{counts[e].max()}"
             for e in evalsets}
    of = f"seeds {', '.join(map(str, seeds))} pooled" if len(seeds) > 1 else f"seed {seeds[0]}"
    pooled = (f"each violin: one model's {sizes[evalsets[0]]} structures, {of}" if len(evalsets) == 1 else
              f"each violin: one model's structures, {of} ({', '.join(f'{n} on {e}' for e, n in sizes.items())})")
    points = counts.max() <= MAX_POINTS
    n_slots = len(xorder) * (len(hue) if hue else 1)
    width = max(8.0, 2 * (1.2 + 0.45 * n_slots))
    dropped = 0
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(evalsets), 2, figsize=(width, 3.4 * len(evalsets) + 0.6), squeeze=False)
        for row, evalset in enumerate(evalsets):
            for ax, (column, ylabel) in zip(axes[row], panels):
                data = table[(table.evalset == evalset) & table[column].notna()]
                log = _log_scale(data, models, column)
                if log:  # log of a non-positive error is undefined: those structures are counted in the footnote
                    dropped += int((data[column] <= 0).sum())
                    data = data[data[column] > 0]
                colour = (dict(hue="setting", hue_order=hue, palette="colorblind") if hue
                          else dict(color=SINGLE))
                sns.violinplot(data=data, x=x, y=column, order=xorder, ax=ax, cut=0, inner="quart",
                               density_norm="width", linewidth=0.8, log_scale=log, legend=bool(hue), **colour)
                if points:
                    sns.stripplot(data=data, x=x, y=column, order=xorder, ax=ax, color="k", size=1.8, alpha=0.45,
                                  jitter=0.12, legend=False, log_scale=log,
                                  **({"hue": "setting", "hue_order": hue, "dodge": True, "palette": ["k"] * len(hue)}
                                     if hue else {}))
                ax.set_xticks(range(len(xorder)), ticks, rotation=30, ha="right", rotation_mode="anchor")
                ax.set_xlabel(xlabel if row == len(evalsets) - 1 else "")
                label = ylabel if len(evalsets) == 1 else f"{ylabel}\non {evalset}"
                ax.set_ylabel(label + (", log scale" if log else ""))
                if not log and len(data):  # linear from zero: the errors are magnitudes
                    ax.set_ylim(0, 1.05 * data[column].max())
                ax.grid(axis="y", lw=0.4, alpha=0.4)
                if ax.get_legend() is not None:
                    ax.get_legend().remove()
        footnotes = [n for n in (note, f"{dropped} structures with zero error left out of the log-scale panels"
                                 if dropped else "") if n]
        if hue:  # beside the panels, over no data
            handles, names = axes[0, 0].get_legend_handles_labels()
            title = ", ".join({"e0s": "E0s"}.get(a, a) for a in SETTING_AXES if len(spec["axes"].get(a, [])) > 1)
            fig.legend(handles[:len(hue)], names[:len(hue)], title=title, loc="center left", frameon=False,
                       bbox_to_anchor=(1.0, 0.5))
        fig.suptitle(f"{spec['description']}\n({pooled})")
        if footnotes:
            fig.text(0.5, 0.0, "\n".join(footnotes), ha="center", va="bottom", fontsize=7, color="0.3", wrap=True)
        fig.tight_layout(rect=(0, 0.035 * len(footnotes), 1, 1))
        save(fig, outputs)
