"""Does the science survive a change of the mini world's settings? Four signals, before and after.

A performance lever (float32, fewer epochs, smaller cells, another replay sample) is kept only
if the conclusions the figures carry stay. This script reads two finished workflow runs' tables
(``results/<scale>/tables`` of each, or any two directories of the same tables) and prints, for
each, the four signals, then what changed:

1. the foundations' quality order on the common held-out test set (energy and force RMSE;
   the paper's order MP-0 > MPA-0 > OMat-0 small > OMat-0 medium in error), from each world's
   ``foundation_quality.csv``;
2. every strategy's test errors on each test-error figure present in both runs (mean and
   standard deviation over seeds), their ranking and the Spearman correlation of the rankings;
3. the learning curves: does every strategy's error fall with more training data?
4. fine-tuning against from-scratch training at full data (the best fine-tune, and naive);

plus, per figure, how many runs met the convergence criterion (``mlipft.convergence``) in each.
Nothing is judged against the paper: the script reports, the closing note interprets.

    .venv/bin/python benchmarks/science_check.py --before OLD/tables --after results/mini/tables \\
        [--quality-before data/mini/mini/foundation_quality.csv] [--quality-after ...] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

METRICS = (("energy_rmse", "E RMSE (meV/atom)"), ("force_rmse", "F RMSE (meV/Å)"))


def figures_of(tables: Path) -> dict[str, pd.DataFrame]:
    """Every ``<figure>_errors.csv`` of a tables directory, by figure name."""
    # tables of versions before the evaluation-set axis name the column testset
    return {p.name[: -len("_errors.csv")]: pd.read_csv(p).rename(columns={"testset": "evalset"})
            for p in sorted(tables.glob("*_errors.csv"))}


def strategy_errors(errors: pd.DataFrame, evalset: str = "test") -> pd.DataFrame:
    """Mean, standard deviation and number of seeds of each strategy's energy and force RMSE
    at the table's largest training fraction (one row per strategy)."""
    data = errors[(errors.evalset == evalset) & errors.metric.isin([m for m, _ in METRICS])]
    data = data[data.fraction == data.fraction.max()]
    stats = data.groupby(["strategy", "metric"])["value"].agg(["mean", "std", "count"]).unstack("metric")
    stats.columns = [f"{m}_{s}" for s, m in stats.columns]
    return stats


def quality_order(path: Path, testset: str = "test") -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame = frame[frame.dataset == testset].set_index("foundation")
    return frame[["energy_rmse_mev_per_atom", "force_rmse_mev_per_A"]]


def spearman(a: pd.Series, b: pd.Series) -> float:
    common = a.index.intersection(b.index)
    if len(common) < 3:
        return float("nan")
    return float(a[common].rank().corr(b[common].rank()))


def learning_curve_falls(errors: pd.DataFrame, evalset: str = "test") -> pd.DataFrame:
    """Per strategy and metric: the seed-mean error at each fraction, and whether it falls
    monotonically with more data."""
    data = errors[(errors.evalset == evalset) & errors.metric.isin([m for m, _ in METRICS])]
    means = data.groupby(["strategy", "metric", "fraction"])["value"].mean().unstack("fraction")
    means["falls"] = [bool(np.all(np.diff(row.dropna().to_numpy()) < 0)) for _, row in means.iterrows()]
    return means


def convergence_counts(tables: Path, figure: str) -> str:
    path = tables / f"{figure}_trainable.csv"
    if not path.exists():
        return "no trainable table"
    frame = pd.read_csv(path)
    if "converged" not in frame:
        return "no convergence column"
    conv = frame.converged.astype(str).str.lower()
    n_yes, n_no = int((conv == "true").sum()), int((conv == "false").sum())
    improving = frame.loc[conv == "false", "improvement"] if "improvement" in frame else pd.Series(dtype=float)
    extra = (f"; still improving by {100 * improving.min():.0f}-{100 * improving.max():.0f} % over their last "
             f"20 % of epochs" if len(improving) else "")
    return f"{n_yes} of {len(frame)} runs converged ({n_no} not{extra})"


def fmt(mean: float, std: float, n: int) -> str:
    if not np.isfinite(mean):
        return "-"
    digits = 0 if mean >= 100 else 1
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 and np.isfinite(std) else f"{mean:.{digits}f}"


def report(before: Path, after: Path, quality: tuple[Path | None, Path | None], out=print) -> dict:
    summary: dict = {}
    out("## 1. Foundation quality on the common test set (lower is better)")
    for label, path in zip(("before", "after"), quality):
        if path is None or not path.exists():
            out(f"- {label}: no foundation_quality.csv")
            continue
        q = quality_order(path)
        for col, name in (("energy_rmse_mev_per_atom", "energy"), ("force_rmse_mev_per_A", "force")):
            order = q[col].sort_values(ascending=False)
            out(f"- {label}, {name} RMSE, worst to best: "
                + " > ".join(f"{f} {v:.0f}" for f, v in order.items()))
            summary.setdefault("quality", {}).setdefault(label, {})[name] = list(order.index)
    figs_b, figs_a = figures_of(before), figures_of(after)
    common = [f for f in figs_a if f in figs_b]
    out(f"\nFigures in both runs: {', '.join(common) or 'none'}"
        + (f"; only after: {', '.join(f for f in figs_a if f not in figs_b)}" if set(figs_a) - set(figs_b) else ""))
    for fig in common:
        b, a = figs_b[fig], figs_a[fig]
        if b.fraction.nunique() > 1 or a.fraction.nunique() > 1:
            out(f"\n## 3. Learning curve {fig}: seed-mean test error per fraction, falls with data?")
            for label, frame in (("before", b), ("after", a)):
                lc = learning_curve_falls(frame)
                fractions = [c for c in lc.columns if c != "falls"]
                out(f"- {label} (fractions {', '.join(f'{x:g}' for x in fractions)}):")
                for (strategy, metric), row in lc.iterrows():
                    vals = " / ".join("-" if pd.isna(row[x]) else f"{row[x]:.3g}" for x in fractions)
                    out(f"    {strategy:12s} {metric:12s} {vals}  {'falls' if row['falls'] else 'DOES NOT FALL'}")
                summary.setdefault("learning_curve", {})[f"{fig}:{label}"] = bool(lc["falls"].all())
            continue
        out(f"\n## 2. Test errors {fig} (mean ± std over seeds; rank 1 = lowest error)")
        sb, sa = strategy_errors(b), strategy_errors(a)
        rows = []
        for strategy in sa.index.union(sb.index):
            row = [strategy]
            for stats in (sb, sa):
                for metric, _ in METRICS:
                    if strategy in stats.index:
                        row.append(fmt(stats.loc[strategy, f"{metric}_mean"], stats.loc[strategy, f"{metric}_std"],
                                       int(stats.loc[strategy, f"{metric}_count"])))
                    else:
                        row.append("-")
            rows.append(row)
        out("| strategy | E before | F before | E after | F after |")
        out("|---|---|---|---|---|")
        for row in sorted(rows, key=lambda r: sa.loc[r[0], "force_rmse_mean"] if r[0] in sa.index else np.inf):
            out("| " + " | ".join(row) + " |")
        for metric, name in METRICS:
            rb, ra = sb[f"{metric}_mean"].rank(), sa[f"{metric}_mean"].rank()
            rho = spearman(sb[f"{metric}_mean"], sa[f"{metric}_mean"])
            moved = [f"{s} {int(rb[s])}->{int(ra[s])}" for s in ra.index.intersection(rb.index) if rb[s] != ra[s]]
            out(f"- {name}: Spearman rank correlation before/after {rho:.2f}; "
                + (f"rank changes: {', '.join(moved)}" if moved else "same ranking"))
            summary.setdefault("ranking", {})[f"{fig}:{metric}"] = rho
        out(f"\n## 4. Fine-tuning vs from scratch, {fig} (full data)")
        for label, stats in (("before", sb), ("after", sa)):
            if "scratch" not in stats.index:
                out(f"- {label}: no scratch run")
                continue
            tuned = stats.drop(index="scratch")
            parts = []
            for metric, name in METRICS:
                best = tuned[f"{metric}_mean"].idxmin()
                s = stats.loc["scratch", f"{metric}_mean"]
                parts.append(f"{name}: scratch {s:.3g}, best fine-tune {best} {tuned.loc[best, f'{metric}_mean']:.3g}"
                             + (f", naive {stats.loc['naive', f'{metric}_mean']:.3g}" if "naive" in stats.index else ""))
                summary.setdefault("beats_scratch", {})[f"{fig}:{label}:{metric}"] = bool(
                    tuned[f"{metric}_mean"].min() < s)
            out(f"- {label}: " + "; ".join(parts))
        out(f"\nConvergence {fig}: before {convergence_counts(before, fig)}; after {convergence_counts(after, fig)}")
    for fig, frame in figs_a.items():
        variants = sorted(frame.variant.unique()) if "variant" in frame else []
        if len(variants) < 2 or frame.fraction.nunique() > 1:
            continue
        out(f"\n## Budget check {fig} (after): does the ranking depend on the variant (e.g. the epochs)?")
        stats = {v: strategy_errors(frame[frame.variant == v]) for v in variants}
        out("| strategy | " + " | ".join(f"E {v} | F {v}" for v in variants) + " |")
        out("|---|" + "---|---|" * len(variants))
        for strategy in stats[variants[0]].index:
            cells = []
            for v in variants:
                for metric, _ in METRICS:
                    st = stats[v]
                    cells.append(fmt(st.loc[strategy, f"{metric}_mean"], st.loc[strategy, f"{metric}_std"],
                                     int(st.loc[strategy, f"{metric}_count"])) if strategy in st.index else "-")
            out(f"| {strategy} | " + " | ".join(cells) + " |")
        for metric, name in METRICS:
            base, other = stats[variants[0]][f"{metric}_mean"], stats[variants[1]][f"{metric}_mean"]
            rho = spearman(base, other)
            moved = [f"{s} {int(base.rank()[s])}->{int(other.rank()[s])}" for s in base.index.intersection(other.index)
                     if base.rank()[s] != other.rank()[s]]
            out(f"- {name}, {variants[0]} vs {variants[1]}: Spearman {rho:.2f}; "
                + (f"rank changes: {', '.join(moved)}" if moved else "same ranking"))
            summary.setdefault("budget", {})[f"{fig}:{metric}"] = rho
        out(f"Convergence {fig}: {convergence_counts(after, fig)}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, type=Path, help="tables directory of the run before the change")
    parser.add_argument("--after", required=True, type=Path, help="tables directory of the run after the change")
    parser.add_argument("--quality-before", type=Path, default=ROOT / "data" / "mini" / "mini" / "foundation_quality.csv")
    parser.add_argument("--quality-after", type=Path, default=ROOT / "data" / "mini" / "mini" / "foundation_quality.csv")
    args = parser.parse_args()
    for path in (args.before, args.after):
        if not path.is_dir():
            raise SystemExit(f"{path}: not a tables directory")
    report(args.before, args.after, (args.quality_before, args.quality_after))


if __name__ == "__main__":
    main()
