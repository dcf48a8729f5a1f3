"""Cross-phase transfer (the paper's Fig. 5 and Fig. 18 on ice polymorphs): one fine-tune per
single-phase training set, each evaluated on every phase's test set. One heat-map matrix per
setting (the other grid axes that vary: E0 mode, foundation, ...), rows the training phase,
columns the test phase, cells the force (or energy) RMSE, mean over seeds; one colour scale for
all matrices, in-phase cells outlined."""

from __future__ import annotations

import numpy as np

from .common import (PANELS, STYLE, collect_errors, convergence_note, error_inputs, pyplot, save, settings, span)

DESCRIPTION = ("RMSE of forces (meV/Å; or energies, meV/atom, with cross_phase_metric) of single-phase "
               "fine-tunes on every phase's test set, a training x test phase matrix per setting, mean "
               "over seeds, one colour scale, in-phase cells outlined.")
TABLES = ("errors", "trainable")
#: Metrics a matrix may show (figure entry ``cross_phase_metric``) and their colour-bar labels.
METRICS = dict(PANELS)
DEFAULT_METRIC = "force_rmse"
#: Prefixes stripped from set names to give the phase: ``train_Ih`` and ``test_Ih`` are phase Ih.
PREFIXES = ("train_", "test_")
#: A colour scale spanning more than this ratio of largest to smallest cell is logarithmic.
LOG_RATIO = 10.0


def phase(name: str) -> str:
    """The phase a training or evaluation set stands for: its name without a ``train_`` or
    ``test_`` prefix (``train_Ih`` -> ``Ih``, ``test_VIII`` -> ``VIII``). A name without one of
    these prefixes (``train``, ``heldout_Ih``) is its own phase, and so is a bare prefix."""
    name = str(name)
    for prefix in PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def metric(spec: dict) -> str:
    """The metric of the matrices: the figure entry's ``cross_phase_metric`` (force_rmse when unset)."""
    return (spec.get("entry") or {}).get("cross_phase_metric") or DEFAULT_METRIC


def check(config, name, fig, axes):
    from ..config import evalsets

    if len(axes["trainset"]) < 2:
        return (f".trainset: a cross_phase figure fine-tunes on each single-phase training set and evaluates "
                f"every run on every phase, so it needs at least two training sets (e.g. [train_Ih, train_II, "
                f"train_VI, train_VIII]), got {axes['trainset']}")
    sets = evalsets(config, name)
    if len(sets) < 2:
        return (f".evalsets: a cross_phase figure evaluates every run on each phase's test set, so it needs at "
                f"least two evaluation sets (e.g. [test_Ih, test_II, test_VI, test_VIII]), got {sets}")
    if len(axes["fraction"]) > 1:
        return (".fractions: a cross_phase figure compares training phases at one training-set size; for "
                "several fractions use kind: learning_curve")
    chosen = fig.get("cross_phase_metric", DEFAULT_METRIC)
    if chosen not in METRICS:
        return f".cross_phase_metric: {chosen!r} is not one of {sorted(METRICS)}"
    return None


def inputs(config, name, runs, paths):
    return error_inputs(config, name, runs, paths)


def collect(inputs, spec):
    return collect_errors(inputs)


def panel_settings(frame, spec):
    """A label per row naming its matrix: the grid axes that vary besides the training set (which
    is the rows of every matrix), led by the strategy when several are in the grid; empty when
    there is one matrix."""
    axes = {a: v for a, v in spec["axes"].items() if a != "trainset"}
    labels = settings(frame, {**spec, "axes": axes})
    if len(spec["axes"].get("strategy", [])) > 1:
        names = frame.strategy.astype(str).map(lambda s: spec["labels"].get(s, s))
        labels = names.where(labels == "", names + ", " + labels)
    return labels


def matrices(errors, spec, metric_name=None):
    """Per setting (panel label, in the table's order: the runs'), a DataFrame of the metric with the training sets
    of the grid as rows and the figure's evaluation sets as columns (set names, not phases), each
    cell the mean over seeds; NaN where no run or evaluation gave a value."""
    metric_name = metric_name or metric(spec)
    data = errors[errors.metric == metric_name]
    data = data.assign(setting=panel_settings(data, spec)).astype({"trainset": str, "evalset": str})
    rows, cols = [str(t) for t in spec["axes"]["trainset"]], [str(e) for e in spec["evalsets"]]
    out = {}
    for setting, sub in data.groupby("setting", sort=False):
        mean = sub.groupby(["trainset", "evalset"])["value"].mean().unstack("evalset")
        out[setting] = mean.reindex(index=rows, columns=cols)
    return out


def marks(train, spec) -> tuple[dict[tuple[str, str], str], str]:
    """``†`` per (setting, training set) whose fine-tune (any seed) was still improving, and the
    figure's footnote (:func:`mlipft.figures.common.convergence_note`)."""
    if "convergence" not in train.columns:
        return {}, ""
    train = train.assign(setting=panel_settings(train, spec), trainset=train.trainset.astype(str))
    out = {}
    for (setting, trainset), sub in train.groupby(["setting", "trainset"], sort=False):
        if convergence_note(sub)[0]:
            out[(setting, trainset)] = " †"
    return out, convergence_note(train)[1]


def _sizes(errors) -> dict[str, str]:
    """Training configurations per training set (a range over seeds' subsets), when known."""
    if "n_train" not in errors.columns:
        return {}
    return {trainset: span(sub.n_train) for trainset, sub in errors.groupby(errors.trainset.astype(str))}


def _fixed(spec) -> str:
    """The grid axes that do not vary (the same in every matrix), for the subtitle."""
    axes, labels = spec["axes"], spec["labels"]
    one = {a: str(axes[a][0]) for a in ("strategy", "foundation", "e0s", "variant") if len(axes.get(a, [])) == 1}
    head = " ".join(filter(None, (f"{labels.get(one['strategy'], one['strategy'])} fine-tuning" if "strategy" in one
                                   else "", f"of {one['foundation']}" if "foundation" in one else "")))
    parts = [head, f"E0s {one['e0s']}" if "e0s" in one else ""]
    if one.get("variant", "base") != "base":
        parts.append(spec.get("variant_labels", {}).get(one["variant"], one["variant"]))
    return ", ".join(p for p in parts if p)


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def plot(tables, spec, outputs):
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, LogLocator

    errors, train = tables["errors"], tables["trainable"]
    plt = pyplot()
    name = metric(spec)
    mats = matrices(errors, spec, name)
    if not mats:
        raise ValueError(f"no {name} values in the errors table")
    conv_marks, note = marks(train, spec)
    sizes = _sizes(errors)
    chosen = errors[errors.metric == name]
    counts = (chosen.groupby(chosen.evalset.astype(str)).n_configs.max().to_dict()
              if "n_configs" in chosen.columns else {})
    values = np.concatenate([m.to_numpy(float).ravel() for m in mats.values()])
    values = values[np.isfinite(values)]
    lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    log = lo > 0 and hi / lo > LOG_RATIO
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 0.01
    norm = LogNorm(lo, hi) if log else Normalize(0.0 if lo >= 0 else lo, hi)  # linear from zero: ratios read
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.88")
    seeds = chosen.seed.nunique()
    n_rows, n_cols = len(spec["axes"]["trainset"]), len(spec["evalsets"])

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(mats), squeeze=False, layout="constrained",
                                 figsize=(len(mats) * (1.6 + 0.75 * n_cols) + 1.2, 2.6 + 0.6 * n_rows))
        for ax, (setting, mat) in zip(axes[0], mats.items()):
            grid = mat.to_numpy(float)
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="equal")
            for i, trainset in enumerate(mat.index):
                for j, evalset in enumerate(mat.columns):
                    v = grid[i, j]
                    if np.isfinite(v):
                        r, g, b, _ = cmap(norm(v))
                        dark = 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5
                        ax.text(j, i, _fmt(v), ha="center", va="center", fontsize=8,
                                color="white" if dark else "black")
                    else:
                        ax.text(j, i, "no data", ha="center", va="center", fontsize=6, color="0.3")
                    if phase(trainset) == phase(evalset):
                        # inset, so that neighbouring outlines and the frame stay apart
                        ax.add_patch(Rectangle((j - 0.44, i - 0.44), 0.88, 0.88, fill=False, edgecolor="#d62728",
                                               lw=2.0))
            xt = [phase(e) + (f"\nn={counts[e]}" if e in counts else "") for e in mat.columns]
            yt = [phase(t) + conv_marks.get((setting, t), "") + (f" (n={sizes[t]})" if t in sizes else "")
                  for t in mat.index]
            ax.set_xticks(range(len(mat.columns)), xt)
            ax.set_yticks(range(len(mat.index)), yt)
            ax.tick_params(length=0)
            ax.set_xlabel("test phase" + (" (n: test configurations)" if counts else ""))
            if ax is axes[0, 0]:
                ax.set_ylabel("training phase" + ("\n(n: training configurations)" if sizes else ""))
            if setting:
                ax.set_title(setting)
        bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.9, pad=0.02)
        bar.set_label(METRICS[name] + (", log scale" if log else "")
                      + (f"\nmean over {seeds} seeds" if seeds > 1 else ""))
        if log:
            bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            bar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
            bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        fixed = _fixed(spec)
        fig.suptitle(spec["description"] + f"\n({fixed + '; ' if fixed else ''}outlined: trained and tested on "
                     "the same phase)", fontsize=10)
        if note:
            fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=7, color="0.3", wrap=True)
        save(fig, outputs)
