"""How many epochs does each strategy need? One long run per strategy, every shorter budget read
off its prefix.

A fine-tune's first ``m`` epochs do not depend on its epoch budget (mace's plateau scheduler
and EMA look back, not ahead; fine-tunes have no Stage Two), so the first ``m`` epochs of a long
run are the run a budget of ``m`` epochs would have given (:func:`mlipft.convergence.converged_at`).
For each finished run (its ``loss_curves.csv``; its wall time from the ``finetune`` rule's
``benchmark:`` file) this prints:

- ``epochs``: the epochs it ran, and ``s/epoch``: its wall time over them (start-up included);
- ``converged_at``: the fewest epochs from which the target head's validation loss meets the
  criterion for good (:mod:`mlipft.convergence`: the last fifth of the epochs improves on the best
  before it by less than 2 %; this budget and every longer one within the run; at least
  ``--min-epochs``), empty when no budget within the run does, and the wall time such a budget
  costs (epochs x s/epoch); ``first_converged``: the first budget with a converged verdict (a
  slow start can give one that a longer budget takes back);
- ``patience P``: where mace's ``--patience P`` (working in serial runs with
  :mod:`mlipft.mace_fixes`) would have stopped it;
- the validation energy and force RMSE (meV/atom, meV/A) at ``--budget`` epochs (the scale's
  budget), at the convergence budget and at the end, with the ranking of the strategies at each.

    .venv/bin/python benchmarks/convergence_budget.py \\
        results/mini/runs/sn2/train/f1/omat_medium/*/e0-*/v-epochs_x10/seed0/loss_curves.csv --budget 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlipft.convergence import converged_at, patience_stop, read_curves, valid_curve  # noqa: E402
from mlipft.paths import Paths, parse_run  # noqa: E402
from utilisation import read_benchmark  # noqa: E402


def benchmark_file(loss_curves: Path) -> Path:
    """The finetune job's benchmark TSV (:class:`mlipft.paths.Paths`, under the results root
    that holds the run)."""
    parts = loss_curves.parts
    results = Path(*parts[:parts.index("runs")])
    return Path(Paths(results).pattern("benchmark:finetune", **parse_run(loss_curves).keys()))


def at_epochs(curve: pd.DataFrame, m: int | None) -> tuple[float, float]:
    """Validation (E, F) RMSE in meV after ``m`` epochs: the best checkpoint's (mace keeps the
    lowest validation loss) among the first ``m``."""
    part = curve.iloc[: m if m else len(curve)]
    best = part.loc[part["loss"].idxmin()]
    return 1000 * float(best.get("rmse_e_per_atom", float("nan"))), 1000 * float(best.get("rmse_f", float("nan")))


def study(paths: list[Path], budget: int, min_epochs: int, patience: int) -> pd.DataFrame:
    rows = []
    for path in paths:
        run = parse_run(path)
        curves = read_curves(path)
        curve = valid_curve(curves, "Default", "loss")
        n = len(curve)
        tsv = benchmark_file(path)
        wall = read_benchmark(tsv)[0] if tsv.exists() else float("nan")
        found = converged_at(curves, min_epochs=min_epochs)
        m = found["epochs"]
        e_budget, f_budget = at_epochs(curve, budget)
        e_conv, f_conv = at_epochs(curve, m) if m else (float("nan"), float("nan"))
        e_end, f_end = at_epochs(curve, None)
        rows.append({
            "strategy": run.strategy, "variant": run.variant, "seed": run.seed, "epochs": n,
            "s_per_epoch": wall / n, "first_converged": found["first"], "converged_at": m,
            "cost_to_converge_s": (wall / n * m) if m else float("nan"),
            f"patience_{patience}_stops_at": patience_stop(curves, patience),
            f"E_at_{budget}": e_budget, f"F_at_{budget}": f_budget, "E_at_converged": e_conv,
            "F_at_converged": f_conv, "E_end": e_end, "F_end": f_end,
        })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("loss_curves", nargs="+", type=Path, help="loss_curves.csv of long runs")
    parser.add_argument("--budget", type=int, default=30, help="the scale's epoch budget (30: mini)")
    parser.add_argument("--min-epochs", type=int, default=10,
                        help="no verdict on fewer epochs (a 2-epoch window says little) (10)")
    parser.add_argument("--patience", type=int, default=20, help="mace --patience to simulate (20)")
    parser.add_argument("--output", type=Path, help="also write the table as CSV")
    args = parser.parse_args(argv)
    frame = study(args.loss_curves, args.budget, args.min_epochs, args.patience)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.1f}".format):
        print(frame.to_string(index=False))
    for column in (f"F_at_{args.budget}", "F_at_converged", "F_end", f"E_at_{args.budget}", "E_at_converged", "E_end"):
        order = frame.dropna(subset=[column]).sort_values(column)["strategy"].tolist()
        print(f"ranking by {column}: {' < '.join(order)}")
    if args.output:
        frame.to_csv(args.output, index=False)


if __name__ == "__main__":
    main()
