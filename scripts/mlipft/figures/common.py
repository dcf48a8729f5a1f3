"""What the figure kinds share: reading per-run files into tidy tables (the run's keys read
back from its path by :mod:`mlipft.paths`), summary errors, the plot style and saving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where it is used: the workflow imports the kinds at parse time
    import pandas as pd

from ..io import atomic_path, xyz_frame_sizes
from ..paths import RUN_KEYS, parse_run, parse_trainset, split_selection

STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8}
#: The two error panels of the error figures: metric and axis label.
PANELS = (("energy_rmse", "Energy RMSE (meV/atom)"), ("force_rmse", "Force RMSE (meV/Å)"))
#: Grid axes a figure may vary besides the strategy (the hue of its panels when they do).
SETTING_AXES = ("benchmark", "trainset", "foundation", "e0s", "variant")


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    first = [k for k in RUN_KEYS if k in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def read_selection(path: str | Path, cache: dict | None = None) -> pd.DataFrame:
    """A per-run CSV, or the rows of one evaluation set of it (``<file>::<evalset>``,
    :meth:`mlipft.paths.Paths.errors`); an error naming the file when it holds no such row.
    ``cache`` keeps files already read (a run's errors table serves several selections)."""
    import pandas as pd

    file, evalset = split_selection(path)
    cache = {} if cache is None else cache
    if file not in cache:
        cache[file] = pd.read_csv(file)
    frame = cache[file]
    if evalset is None:
        return frame.copy()
    if "evalset" not in frame.columns:
        raise ValueError(f"{file}: no evalset column (not a per-structure errors table of mlipft.analysis.errors)")
    rows = frame[frame["evalset"].astype(str) == evalset]
    if rows.empty:
        raise ValueError(f"{file}: no rows of evaluation set {evalset!r} (it holds "
                         f"{sorted(frame['evalset'].astype(str).unique())}); the figures now ask for more sets "
                         f"than when it was written: re-run its evaluation (snakemake --forcerun evaluate_errors "
                         f"{file}, or without --rerun-triggers mtime)")
    return rows.reset_index(drop=True)


def collect_runs(files: list[str | Path]) -> pd.DataFrame:
    """Per-run CSVs (or selections of them, :func:`read_selection`) concatenated, in the given
    order, with the run's keys (read from each file's path) as the first columns."""
    import pandas as pd

    frames, cache = [], {}
    for path in files:
        keys = parse_run(split_selection(path)[0]).keys()
        frame = read_selection(path, cache)
        for k, v in keys.items():  # the path is the truth (a file's own key columns are replaced)
            frame[k] = v
        frames.append(frame)
    if not frames:
        raise ValueError("no result files to collect")
    return _ordered(pd.concat(frames, ignore_index=True))


def trainable(files: list[str | Path]) -> pd.DataFrame:
    """One row per run from its ``trainable.json``: parameters trained, total, share, heads."""
    import pandas as pd

    rows = []
    for path in files:
        info = json.loads(Path(path).read_text())
        rows.append({**parse_run(path).keys(), "trainable": info["trainable"], "total_parameters": info["total"],
                     "trainable_fraction": info["fraction"], "heads": "+".join(info["heads"])})
    if not rows:
        raise ValueError("no trainable.json files to collect")
    return _ordered(pd.DataFrame(rows))


def convergence(files: list[str | Path] | None) -> pd.DataFrame | None:
    """Per run: has the target head's validation loss stopped improving (mlipft.convergence:
    the best value of the last 20 % of epochs against the best before, 2 % tolerance)?
    Columns: the run's keys, ``converged`` (True, False, or empty when too few epochs to
    judge), ``convergence`` (improving, plateau, worsening, too_few_epochs), ``improvement``
    ``epochs`` (assessed: after a loss reweighting only the last segment) and ``trained_epochs``.
    None without loss curves (an input role a figure may lack)."""
    import pandas as pd

    if not files:
        return None
    from ..convergence import assess_file

    rows = []
    for path in files:
        result = assess_file(path, head="Default")
        rows.append({**parse_run(path).keys(), "converged": result["converged"], "convergence": result["status"],
                     "improvement": result["improvement"], "epochs": result["n_epochs"],
                     "trained_epochs": int(result["last_epoch"]) + 1})  # mace counts epochs from 0
    return _ordered(pd.DataFrame(rows))


def with_convergence(frame: pd.DataFrame, conv: pd.DataFrame | None) -> pd.DataFrame:
    """``frame`` with the convergence columns of its runs (unchanged when there are none)."""
    if conv is None:
        return frame
    keys = [k for k in RUN_KEYS if k in frame.columns and k in conv.columns]
    left = frame.astype({k: str for k in keys})
    return left.merge(conv.astype({k: str for k in keys}), on=keys, how="left", validate="many_to_one")


def span(values) -> str:
    """``"a"`` or ``"a-b"``: the range of some numbers, for a note ("?" when there are none)."""
    values = sorted({int(v) for v in values})
    if not values:
        return "?"
    return f"{values[0]}" if len(values) == 1 else f"{values[0]}-{values[-1]}"


def convergence_note(frame: pd.DataFrame) -> tuple[dict[str, str], str]:
    """A mark per strategy whose runs are still improving (``†``) and the figure's footnote."""
    if "convergence" not in frame.columns:
        return {}, ""
    improving = frame[frame.convergence == "improving"]
    marks = {s: " †" for s in improving.strategy.unique()}
    notes = []
    if marks:
        # the reason: the epoch budget of these runs (the paper trains ~1,000 epochs), and by how much
        column = "trained_epochs" if "trained_epochs" in improving.columns else "epochs"
        budget = span(improving[column].dropna().astype(int))
        gain = span((100 * improving.improvement.astype(float)).round())
        notes.append(f"† not converged within its {budget}-epoch budget: the validation loss of the last 20 % of "
                     f"epochs still improved on the best before by {gain} % (>= 2 %, mlipft.convergence)")
    if (frame.convergence == "too_few_epochs").any():
        notes.append(f"convergence not judged: too few epochs ({int(frame.epochs.max())}) for a trend")
    return marks, "; ".join(notes)


def error_summary(files: list[str | Path]) -> pd.DataFrame:
    """RMSE/MAE per run and evaluation set from per-structure error files (mlipft.analysis.errors)."""
    from ..analysis.errors import summary

    structures = collect_runs(files)
    keys = [k for k in RUN_KEYS if k in structures.columns] + ["evalset"]
    return summary(structures.astype({k: str for k in keys}), keys)


def training_set_sizes(files: list[str | Path]) -> pd.DataFrame:
    """Configurations in each training subset (the subsample rule's output, isolated atoms
    already removed), one row per file."""
    import pandas as pd

    rows = [{**parse_trainset(path), "n_train": len(xyz_frame_sizes(path))} for path in files]
    return pd.DataFrame(rows, columns=["benchmark", "trainset", "fraction", "seed", "n_train"])


def with_sizes(errors: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """The errors table with ``n_train``, the number of training configurations of each run."""
    keys = ["benchmark", "trainset", "fraction", "seed"]
    errors, sizes = errors.astype({k: str for k in keys}), sizes.astype({k: str for k in keys})
    out = errors.merge(sizes.drop_duplicates(keys), on=keys, how="left", validate="many_to_one")
    missing = out[out.n_train.isna()][keys].drop_duplicates()
    if len(missing):
        raise ValueError(f"no training subset file for runs {missing.to_dict('records')}")
    return out.astype({"n_train": int})


def error_inputs(config, name, runs, paths, trainsets: bool = True) -> dict[str, list[str]]:
    """The per-run files of the error kinds: per-structure errors of every run on each of the
    figure's evaluation sets, trainable counts, loss curves and (``trainsets``) the training
    subsets, whose sizes the figures print."""
    from ..config import evalsets

    files = {"errors": [paths.errors(r, e) for r in runs for e in evalsets(config, name)],
             "trainable": [paths.run_file(r, "trainable") for r in runs],
             "loss_curves": [paths.run_file(r, "loss_curves") for r in runs]}
    if trainsets:
        files["trainsets"] = sorted({paths.trainset(r) for r in runs})
    return files


def collect_errors(inputs) -> dict[str, pd.DataFrame]:
    """The ``errors`` (summary per run and evaluation set, with ``n_train`` when the training
    subsets are given) and ``trainable`` (with convergence) tables of the error kinds."""
    errors = error_summary(inputs["errors"])
    if inputs.get("trainsets"):
        errors = with_sizes(errors, training_set_sizes(inputs["trainsets"]))
    return {"errors": errors, "trainable": with_convergence(trainable(inputs["trainable"]),
                                                            convergence(inputs.get("loss_curves")))}


def settings(frame: pd.DataFrame, spec: dict) -> pd.Series:
    """A label per row naming the grid axes that vary in the figure besides the strategy
    (foundation, E0s, variant, ...); empty when only strategies vary."""
    import pandas as pd

    varying = [a for a in SETTING_AXES if len(spec["axes"].get(a, [])) > 1]
    if not varying:
        return pd.Series([""] * len(frame), index=frame.index)
    names = {"variant": spec.get("variant_labels", {})}

    def label(row):
        return ", ".join(names.get(a, {}).get(str(row[a]), f"E0s {row[a]}" if a == "e0s" else str(row[a]))
                         for a in varying)

    return frame.apply(label, axis=1)


def title_legend_note(fig, title: str, handles, labels, column_inches: float, note: str = "",
                      wrap: int = 100) -> None:
    """A figure's wrapped title, one legend below the panels (as many columns of
    ``column_inches`` as its width holds, the panels laid out above it) and the convergence note
    under it."""
    import textwrap

    import numpy as np

    width, height = fig.get_size_inches()
    ncol = max(1, min(len(labels), int(width // column_inches)))
    fig.suptitle(textwrap.fill(title, wrap))
    fig.tight_layout(rect=(0, (0.1 + 0.19 * int(np.ceil(len(labels) / ncol))) / height, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
    if note:
        fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=7, color="0.3", wrap=True)


def save(fig, outputs: list[str]) -> None:
    import matplotlib.pyplot as plt

    for out in outputs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=200, bbox_inches="tight", format=Path(out).suffix[1:])
    plt.close(fig)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
