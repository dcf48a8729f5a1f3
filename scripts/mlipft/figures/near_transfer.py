"""Near transfer within a chemical family (the paper's Fig. 7): models fine-tuned on some
reactions of a family (a derived training set, mlipft.derive), tested on the seen reactions'
test configurations and on held-out reactions of the same family. Three panels: energy RMSE,
force RMSE (seen against held-out test sets) and the absolute NEB forward-barrier error on
seen against held-out reactions, one pair of bars per strategy. A reaction is held out when its
reference NEB frames match the held-out evaluation set's derived-set ``match`` (the same rule
that removed it from training)."""

from __future__ import annotations

import numpy as np

from ..derive import matches
from .common import PANELS, STYLE, collect_errors, convergence_note, error_inputs, pyplot, save
from .neb_profiles import barriers

DESCRIPTION = ("Energy (meV/atom) and force (meV/Å) RMSE on the test configurations of seen and of held-out "
               "reactions, and the mean absolute NEB forward-barrier error (meV) on seen and held-out "
               "reactions, per strategy (mean over seeds).")
TABLES = ("errors", "trainable", "neb_barriers")
SEEN, HELDOUT = "seen", "held-out"


def heldout_evalset(spec_or_fig: dict) -> str:
    entry = spec_or_fig.get("entry", spec_or_fig)
    return str(entry["heldout_evalset"])


def check(config, name, fig, axes):
    from ..config import evalsets

    if len(axes["benchmark"]) != 1:
        return ".benchmark: a near_transfer figure tests one benchmark's family"
    bench = config["benchmarks"][axes["benchmark"][0]]
    derived = bench.get("derived") or {}
    sets = evalsets(config, name)
    held = fig.get("heldout_evalset")
    if held not in sets:
        return f".heldout_evalset: {held!r} is not one of the figure's evalsets {sets}"
    evalset = (bench.get("evalsets") or {}).get(held)
    if evalset not in derived:
        return (f".heldout_evalset: {held!r} must be a derived set of {axes['benchmark'][0]} "
                f"(benchmarks.{axes['benchmark'][0]}.derived), whose match says which reactions are held out")
    if len(sets) != 2:
        return f".evalsets: a near_transfer figure compares two test sets, seen and held out, got {sets}"
    for trainset in axes["trainset"]:
        if trainset not in derived:
            return (f".trainset: {trainset!r} is not a derived set of {axes['benchmark'][0]}: the held-out "
                    "reactions must be removed from training")
    if not fig.get("neb_reactions"):
        return ".neb_reactions: a near_transfer figure compares barriers on seen and held-out reactions"
    for axis in ("foundation", "e0s", "variant", "fraction", "trainset"):
        if len(axes[axis]) > 1:
            return f".{axis}: a near_transfer figure varies the strategy only, got several {axis} values"
    return None


def inputs(config, name, runs, paths):
    from ..workflow import set_file

    bench = runs[0].benchmark
    files = error_inputs(config, name, runs, paths)
    files["neb"] = [paths.run_file(r, "neb") for r in runs]
    files["reference_neb"] = [set_file(config, paths, bench, "reference_neb")]
    return files


def heldout_reactions(reference_file: str, match: dict) -> dict[str, bool]:
    """Reaction name -> held out, from the reference NEB frames (``info['reaction']``)."""
    from ..io import read_configs

    out: dict[str, bool] = {}
    for n, atoms in enumerate(read_configs(reference_file)):
        if "reaction" not in atoms.info:
            raise ValueError(f"{reference_file}: frame {n} has no info['reaction']")
        name = str(atoms.info["reaction"])
        out[name] = out.get(name, False) or matches(atoms, match)
    return out


def collect(inputs, spec):
    from .common import collect_runs

    tables = collect_errors(inputs)
    held = heldout_evalset(spec)
    errors = tables["errors"]
    errors["split"] = np.where(errors.evalset.astype(str) == held, HELDOUT, SEEN)
    derived = spec["derived"][spec["evalset_files"][held]]
    which = heldout_reactions(inputs["reference_neb"][0], derived["match"])
    wanted = [str(r) for r in spec["entry"]["neb_reactions"]]
    missing = sorted(set(wanted) - set(which))
    if missing:
        raise ValueError(f"{inputs['reference_neb'][0]}: no reference path for the NEB reactions {missing}")
    profiles = collect_runs(inputs["neb"])
    profiles = profiles[profiles.reaction.astype(str).isin(wanted)].reset_index(drop=True)
    barrier = barriers(profiles)
    barrier["split"] = [HELDOUT if which[str(r)] else SEEN for r in barrier.reaction]
    barrier["abs_error_mev"] = 1000.0 * barrier.error_ev.abs()
    tables["errors"] = errors
    tables["neb_barriers"] = barrier
    return tables


def bars(errors, barrier, metric: str):
    """Per strategy and split (seen, held-out): the value of a panel, mean over seeds (RMSE) or
    over reactions and seeds (barrier MAE), with ``n`` the values averaged."""
    if metric == "barrier_mae":
        data = barrier.assign(value=barrier.abs_error_mev)
    else:
        data = errors[errors.metric == metric]
    return (data.astype({"strategy": str}).groupby(["strategy", "split"], sort=False)["value"]
            .agg(mean="mean", n="count").reset_index())


def plot(tables, spec, outputs):
    errors, train, barrier = tables["errors"], tables["trainable"], tables["neb_barriers"]
    plt = pyplot()
    marks, note = convergence_note(train) if "convergence" in train.columns else ({}, "")
    strategies = [s for s in spec["labels"] if s in set(errors.strategy.astype(str))]
    reactions = {split: sorted(set(barrier[barrier.split == split].reaction.astype(str))) for split in (SEEN, HELDOUT)}
    counts = (errors.groupby("split").n_configs.max().to_dict() if "n_configs" in errors.columns else {})
    panels = [*PANELS, ("barrier_mae", "NEB forward-barrier error (meV),\nmean absolute over reactions")]
    x = np.arange(len(strategies))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, layout="constrained", figsize=(14.0, 4.4))
        for ax, (metric, label) in zip(axes, panels):
            table = bars(errors, barrier, metric)
            for k, (split, style) in enumerate(((SEEN, {"color": "#4c72b0"}),
                                                (HELDOUT, {"color": "#dd8452", "hatch": "//", "edgecolor": "white"}))):
                sub = table[table.split == split].set_index("strategy").reindex(strategies)
                if metric == "barrier_mae":
                    what = f"{split} reactions ({', '.join(reactions[split]) or 'none'})"
                else:
                    n = counts.get(split)
                    what = f"{split} reactions' test configurations" + (f" (n={n})" if n else "")
                ax.bar(x + (k - 0.5) * 0.38, sub["mean"], width=0.36, label=what, **style)
            values = table["mean"].to_numpy(float)
            values = values[np.isfinite(values) & (values > 0)]
            if len(values) and values.max() / values.min() > 30:
                ax.set_yscale("log")
                label += ", log scale"
            ax.set_xticks(x, [spec["labels"].get(s, s) + marks.get(s, "") for s in strategies], rotation=35,
                          ha="right")
            ax.set_ylabel(label)
            ax.grid(axis="y", color="0.9", lw=0.6)
            ax.set_axisbelow(True)
            ax.legend(loc="upper left", fontsize=7, frameon=False)
        one = {a: spec["axes"][a][0] for a in ("benchmark", "trainset", "foundation", "e0s")}
        seeds = errors.seed.nunique()
        fig.suptitle(spec["description"] + f"\n({one['benchmark']}: trained on {one['trainset']}, the held-out "
                     f"reactions removed; foundation {one['foundation']}, E0s {one['e0s']}"
                     + (f"; mean over {seeds} seeds" if seeds > 1 else "") + ")", fontsize=10)
        if note:
            fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=7, color="0.3", wrap=True)
        save(fig, outputs)
