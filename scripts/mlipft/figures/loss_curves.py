"""Training and validation curves against epoch, one colour per model (the grid's varying axes:
mostly hyperparameter variants such as a learning rate or a Stage-Two loss-weight schedule), seeds
as thin lines under their bold mean: the paper's Figs. 12-14 (loss-weight schedules on ice Ih;
multihead replay's learning-rate sensitivity on LPSC and SN2).

What mace 0.3.16 logs (``loss_curves.csv``, :func:`mlipft.train.parse_loss_curves`): one
training loss per epoch for all heads together (head ``all``, split ``train``: in a multihead
fine-tune the batches mix target and replay data) and, per head, the validation loss, RMSEs and
MAEs (``Default``: the fine-tuned target head; ``pt_head``: the replay head of a multihead
fine-tune, on the replay set's validation part). mace writes the errors in eV (per atom) and
eV/Å (its console log multiplies by 1000); this kind plots and tabulates them in meV. The loss
is mace's weighted loss (no unit); it changes definition where Stage Two's loss weights start
(:func:`mlipft.convergence.reweightings`), so its best value is taken after the last change.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from ..paths import RUN_KEYS
from .common import (STYLE, collect_runs, convergence, convergence_note, pyplot, save, settings, trainable,
                     with_convergence)

if TYPE_CHECKING:
    import pandas as pd

DESCRIPTION = ("Training loss (all heads) and validation loss of the target head (and of the replay head "
               "pt_head of multihead runs) against epoch, with the target head's validation energy (meV/atom) "
               "and force (meV/Å) RMSE; log y, one colour per model, thin lines single seeds, bold their mean; "
               "dotted verticals where Stage Two's loss weights start.")
TABLES = ("curves", "final", "trainable")

TARGET_HEAD = "Default"
REPLAY_HEAD = "pt_head"
TRAIN_HEAD = "all"
#: Metrics of the final table: name, loss_curves column, unit, factor from mace's log.
METRICS = (("loss", "loss", "-", 1.0),
           ("energy_rmse", "rmse_e_per_atom", "meV/atom", 1000.0),
           ("force_rmse", "rmse_f", "meV/Å", 1000.0),
           ("energy_mae", "mae_e_per_atom", "meV/atom", 1000.0),
           ("force_mae", "mae_f", "meV/Å", 1000.0))
#: Columns of the final table after the run's keys.
FINAL_COLUMNS = ("head", "role", "split", "metric", "unit", "final", "best", "best_epoch", "last_epoch", "n_epochs",
                 "from_epoch", "stage_two_epochs")


def check(config, name, fig, axes):
    # one model (nothing varies) is a legitimate loss-curve figure: its curves and final values
    return None


def inputs(config, name, runs, paths):
    return {"loss_curves": [paths.run_file(r, "loss_curves") for r in runs],
            "trainable": [paths.run_file(r, "trainable") for r in runs]}


def role(head: str) -> str:
    """What a head is: ``target`` (``Default``, the fine-tuned head), ``replay`` (``pt_head``,
    multihead replay), ``all heads`` (the training loss) or ``other``."""
    return {TARGET_HEAD: "target", REPLAY_HEAD: "replay", TRAIN_HEAD: "all heads"}.get(head, "other")


def per_epoch(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per epoch (the mean of repeated epochs: a resumed run logs some twice), sorted."""
    rows = rows[rows["epoch"].notna()]
    return rows.groupby("epoch", as_index=False)[columns].mean().sort_values("epoch", ignore_index=True)


def stage_two(run: pd.DataFrame) -> list[float]:
    """Epochs of one run's curves where the validation loss jumps beyond what its RMSEs explain
    (Stage Two's new loss weights, :func:`mlipft.convergence.reweightings`), found on the target
    head (else on every validation head)."""
    from ..convergence import ERROR_COLUMNS, reweightings

    valid = run[run["split"] == "valid"]
    heads = [TARGET_HEAD] if (valid["head"] == TARGET_HEAD).any() else sorted(valid["head"].astype(str).unique())
    epochs: set[float] = set()
    for head in heads:
        columns = ["loss"] + [c for c in ERROR_COLUMNS if c in valid.columns]
        curve = per_epoch(valid[valid["head"] == head], columns).dropna(subset=["loss"])
        epochs.update(reweightings(curve))
    return sorted(epochs)


def final_values(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run, head and metric: the last epoch's value, the best (lowest) and its epoch.

    The errors in meV (mace logs eV); the loss as mace logs it. The best loss is taken from
    ``from_epoch`` on, the last Stage-Two reweighting (``stage_two_epochs``, ``;``-separated),
    as losses under other weights do not compare; the errors over every epoch."""
    import pandas as pd

    keys = [k for k in RUN_KEYS if k in curves.columns]
    rows = []
    for run_keys, run in curves.groupby(keys, sort=False):
        run_keys = dict(zip(keys, run_keys if isinstance(run_keys, tuple) else (run_keys,)))
        cuts = stage_two(run)
        for (head, split), part in run.groupby(["head", "split"], sort=False):
            for metric, column, unit, factor in METRICS:
                if column not in part.columns or part[column].notna().sum() == 0:
                    continue
                curve = per_epoch(part, [column]).dropna(subset=[column])
                start = cuts[-1] if (metric == "loss" and cuts) else float(curve["epoch"].iloc[0])
                scored = curve[curve["epoch"] >= start]
                best = scored.loc[scored[column].idxmin()]
                rows.append({**run_keys, "head": head, "role": role(str(head)), "split": split, "metric": metric,
                             "unit": unit, "final": factor * float(curve[column].iloc[-1]),
                             "best": factor * float(best[column]), "best_epoch": float(best["epoch"]),
                             "last_epoch": float(curve["epoch"].iloc[-1]), "n_epochs": len(curve),
                             "from_epoch": float(start), "stage_two_epochs": ";".join(f"{e:g}" for e in cuts)})
    if not rows:
        raise ValueError("no loss curve values to summarise")
    return pd.DataFrame(rows, columns=[*keys, *FINAL_COLUMNS])


def collect(inputs, spec):
    curves = collect_runs(inputs["loss_curves"])
    return {"curves": curves, "final": final_values(curves),
            "trainable": with_convergence(trainable(inputs["trainable"]), convergence(inputs["loss_curves"]))}


def _varying(spec: dict, frame: pd.DataFrame) -> list[str]:
    return [a for a in RUN_KEYS if a != "seed" and len(spec["axes"].get(a, [])) > 1 and a in frame.columns]


def models(frame: pd.DataFrame, spec: dict) -> pd.Series:
    """The model of each row, as its legend names it: the strategy's label when several
    strategies are drawn, the varying settings (:func:`common.settings`: variant labels,
    foundation, E0s, ...), the fraction when several; the strategy's label when nothing varies."""
    import pandas as pd

    labels = spec["labels"]
    several = len(spec["axes"].get("strategy", [])) > 1
    fractions = len(spec["axes"].get("fraction", [])) > 1
    keys = [k for k in RUN_KEYS if k in frame.columns and k != "seed"]
    runs = frame[keys].astype(str).drop_duplicates()  # label each run once (a curves table has many rows)
    setting = settings(runs, spec)

    def name(i):
        row = runs.loc[i]
        strategy = labels.get(row["strategy"], row["strategy"])
        parts = [strategy] if several else []
        parts += [setting[i]] if setting[i] else []
        parts += [f"fraction {float(row['fraction']):g}"] if fractions else []
        return ", ".join(parts) or strategy

    runs = runs.assign(model=[name(i) for i in runs.index])
    named = frame[keys].astype(str).merge(runs, on=keys, how="left")
    return pd.Series(named["model"].to_numpy(), index=frame.index, dtype=object)


def _order(frame: pd.DataFrame, spec: dict) -> list[str]:
    """Models in grid order (strategy registry, then each varying axis as configured)."""
    axes = list(dict.fromkeys(a for a in ("strategy", *_varying(spec, frame)) if a in frame.columns))
    position = {a: {str(v): i for i, v in enumerate(spec["axes"].get(a, []))} for a in axes}

    def rank(row):
        return tuple(position[a].get(str(row[a]), len(position[a])) for a in axes)

    first = frame.drop_duplicates("model")
    return list(first.assign(_rank=first.apply(rank, axis=1)).sort_values("_rank", kind="stable").model)


def _number(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.3g}"


def _segments(ax, line, breaks: list[float], **style) -> None:
    """``line`` (values by epoch) drawn in pieces that start at each of ``breaks``."""
    edges = [-float("inf"), *breaks, float("inf")]
    for lo, hi in zip(edges[:-1], edges[1:]):
        piece = line[(line.index >= lo) & (line.index < hi)]
        ax.plot(piece.index, piece.values, **style)


def _log_axis(ax) -> None:
    """Log y with plain numbers (0.02, 300): every decade, and 2 and 5 (or every minor tick)
    when the curves span little more than a decade, so a narrow panel still has numbers."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    span = np.log10(hi / lo)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if span < 2.2:
        keep = (2, 5) if span > 0.6 else (2, 3, 4, 5, 6, 7, 8, 9)
        ax.yaxis.set_minor_locator(LogLocator(subs=np.arange(2, 10)))
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v) + 1e-9)) in keep else ""))


def plot(tables, spec, outputs):
    import numpy as np
    import pandas as pd

    plt = pyplot()
    import seaborn as sns

    curves, final, train = tables["curves"], tables["final"], tables["trainable"]
    keys = [k for k in RUN_KEYS if k in curves.columns]
    curves = curves.astype({k: str for k in keys}).astype({"head": str, "split": str})
    final = final.astype({k: str for k in keys if k in final.columns})
    curves = curves.assign(model=models(curves, spec))
    final = final.assign(model=models(final, spec))
    order = _order(curves, spec)
    palette = sns.color_palette("colorblind" if len(order) <= 10 else "husl", len(order))
    colours = dict(zip(order, palette))
    # later models drawn thinner on top: where two coincide (a two-stage schedule's Stage One is the
    # constant-weight run's), the earlier shows as an outline around the later
    width = {m: 2.8 - 1.4 * i / max(1, len(order) - 1) if len(order) > 1 else 1.8 for i, m in enumerate(order)}
    has_replay = ((curves.split == "valid") & (curves["head"] == REPLAY_HEAD)).any()

    # convergence of the target head: † on a model with a run still improving (footnote: common)
    marks: dict[str, str] = {}
    _, conv_note = convergence_note(train)
    if "convergence" in train.columns:
        train = train.astype({k: str for k in keys if k in train.columns})
        improving = train[train.convergence == "improving"]
        marks = {m: " †" for m in models(improving, spec).unique()} if len(improving) else {}

    # Stage Two starts per model (from the final table: every run's reweighting epochs)
    cuts: dict[str, list[float]] = {}
    for model, runs in final.groupby("model"):
        found = {float(e) for text in runs.stage_two_epochs.dropna().astype(str) for e in text.split(";") if e}
        cuts[model] = sorted(found)

    n_seeds = final.groupby("model").seed.nunique()
    same_seeds = n_seeds.nunique() == 1

    # legend: the target head's final validation errors, mean over seeds
    def legend(model):
        sub = final[(final.model == model) & (final["head"] == TARGET_HEAD) & (final.split == "valid")]
        values = {m: sub[sub.metric == m].final.mean() for m in ("energy_rmse", "force_rmse")}
        seeds = final[final.model == model].seed.nunique()
        seeds = 1 if same_seeds else seeds  # the same number for every model: said once, in the note
        text = f"{model}{marks.get(model, '')}"
        if not any(np.isnan(v) for v in values.values()):
            text += (f": final E {_number(values['energy_rmse'])} meV/atom, "
                     f"F {_number(values['force_rmse'])} meV/Å")
        return text + (f" ({seeds} seeds)" if seeds > 1 else "")

    train_title = "Training loss, all heads (target + replay data)" if has_replay else "Training loss"
    panels = [("train", TRAIN_HEAD, "loss", train_title, "Loss (mace's, weighted)"),
              ("valid", TARGET_HEAD, "loss", f"Validation loss, target head ({TARGET_HEAD})",
               "Loss (mace's, weighted)")]
    if has_replay:
        panels.append(("valid", REPLAY_HEAD, "loss", f"Validation loss, replay head ({REPLAY_HEAD})",
                       "Loss (mace's, weighted)"))
    panels += [("valid", TARGET_HEAD, "rmse_e_per_atom", f"Target head ({TARGET_HEAD}): validation energy RMSE",
                "Energy RMSE (meV/atom)"),
               ("valid", TARGET_HEAD, "rmse_f", f"Target head ({TARGET_HEAD}): validation force RMSE",
                "Force RMSE (meV/Å)")]
    if has_replay:  # the replay head's forces: forgetting, in meV/Å
        panels.append(("valid", REPLAY_HEAD, "rmse_f", f"Replay head ({REPLAY_HEAD}): validation force RMSE",
                       "Force RMSE (meV/Å)"))
    ncols = 3 if has_replay else 2
    seeds_drawn = curves.groupby("model").seed.nunique().max() > 1

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, ncols, figsize=(4.2 * ncols, 7.0), sharex=True, squeeze=False)
        for ax, (split, head, column, title, ylabel) in zip(axes.flat, panels):
            factor = 1.0 if column == "loss" else 1000.0
            rows = curves[(curves.split == split) & (curves["head"] == head)]
            drawn = False
            for model in order:
                runs = rows[rows.model == model]
                if column not in runs.columns or runs[column].notna().sum() == 0:
                    continue
                lines = [per_epoch(run, [column]).dropna(subset=[column]).set_index("epoch")[column] * factor
                         for _, run in runs.groupby(keys, sort=False)]
                # a loss is not joined across Stage Two's reweighting: other weights, another quantity
                breaks = cuts.get(model, []) if column == "loss" else []
                if len(lines) > 1:
                    for line in lines:
                        _segments(ax, line, breaks, color=colours[model], lw=0.7, alpha=0.45)
                    # the mean over the epochs every seed reached (no jump where one stops early)
                    mean = pd.concat(lines, axis=1, join="inner").mean(axis=1)
                else:
                    mean = lines[0]
                _segments(ax, mean, breaks, color=colours[model], lw=width[model])
                for epoch in cuts.get(model, []):
                    ax.axvline(epoch, color=colours[model], ls=":", lw=1.2)
                drawn = True
            if drawn:
                _log_axis(ax)
            else:
                ax.text(0.5, 0.5, f"no {column} logged", transform=ax.transAxes, ha="center", va="center",
                        color="0.4")
            ax.set_title(title)
            ax.set_ylabel(ylabel + ", log scale")
            ax.grid(which="major", alpha=0.3)
        for ax in axes.flat[len(panels):]:
            ax.axis("off")
        for ax in axes[-1]:
            ax.set_xlabel("Epoch")
            ax.xaxis.set_tick_params(labelbottom=True)

        handles, names = [], []
        for model in order:
            handles.append(plt.Line2D([], [], color=colours[model], lw=width[model]))
            names.append(legend(model))
        notes = []
        if seeds_drawn:
            notes.append(f"thin lines: single seeds; bold: their mean{f' ({n_seeds.iloc[0]} seeds)' if same_seeds else ''}"
                         " over the epochs every seed reached")
        if len(order) > 1:
            notes.append("bold lines thinner from the first model to the last, drawn on top: coinciding curves "
                         "show as a line inside an outline")
        if any(cuts.values()):
            epochs = sorted({e for v in cuts.values() for e in v})
            notes.append(f"dotted verticals: Stage Two's loss weights start (epoch {', '.join(f'{e:g}' for e in epochs)}: "
                         "the validation loss jumps beyond what the RMSEs explain); losses on either side do not compare")
        else:
            notes.append("no Stage-Two loss reweighting found in any run (no validation-loss jump beyond the RMSEs')")
        notes.append("mace logs one training loss for all heads (a multihead run's batches mix target and replay data) "
                     f"and validation metrics per head{f' ({REPLAY_HEAD}: on the replay data held out)' if has_replay else ''}"
                     "; final errors in the legend: the target head's last epoch, mean over seeds")
        if conv_note:
            notes.append(conv_note)
        ncol = 1 if max(len(n) for n in names) > 60 else 2
        legend_rows = int(np.ceil(len(names) / ncol))
        fig.legend(handles, names, loc="upper center", ncol=ncol, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        text = "\n".join(textwrap.fill(n, 70 * ncols) for n in notes)
        fig.text(0.5, -0.035 * legend_rows - 0.01, text, ha="center", va="top", fontsize=7, color="0.3")
        fig.suptitle(spec["description"])
        fig.tight_layout()
        save(fig, outputs)
