"""Has a fine-tune converged? A criterion on the validation curve of each head of a run.

Comparing fine-tuning strategies is fair only between converged runs: a low-learning-rate
strategy (multihead replay at lr 1e-4) may still be improving when naive fine-tuning has long
stopped. This module reads a run's ``loss_curves.csv`` (:func:`mlipft.train.parse_loss_curves`:
one row per epoch, head and split; validation rows carry ``loss`` and, when mace logged them,
``rmse_e_per_atom``, ``rmse_f``, ``mae_*``) and says, per head, whether the validation metric
is still improving.

Definition (:func:`assess`). Let ``v_1 .. v_n`` be the head's validation ``metric`` at its
``n`` epochs in order (rows of one epoch averaged, missing values dropped). The window is the
last ``k`` epochs, ``k = min(n - 1, max(2, ceil(window * n)))``; the epochs before it are
``v_1 .. v_{n-k}``. With

    reference = min(v_1 .. v_{n-k})            the best value before the window
    best      = min(v_{n-k+1} .. v_n)          the best value within the window
    improvement = (reference - best) / |reference|

the run is ``converged`` when ``improvement < tolerance`` (defaults: ``window=0.2``,
``tolerance=0.02``: the last fifth of the epochs improved on the best value before it by
less than 2 %). Bests, not single values, are compared, so noise is not progress: one lucky
low epoch inside the window is matched by the lucky epochs before it (of which there are
more), and a noisy plateau gives ``improvement <= ~0``. This is the question early stopping
asks (mace's ``--patience``: has the best validation loss improved lately?), as a fraction.

``improvement`` is negative when the window never reached the earlier best: the metric has
stopped improving (``converged``) and got worse. ``status`` tells the cases apart:
``improving`` (``improvement >= tolerance``), ``plateau`` (``|improvement| < tolerance``),
``worsening`` (``improvement <= -tolerance``: e.g. the replay head ``pt_head`` forgetting,
or over-fitting) and ``too_few_epochs``. ``converged`` means *no longer improving*, not
*at a good minimum*.

Too few epochs: with ``n < min_epochs`` (default 5; the workflow's smoke scale trains 2)
there is no trend to judge: :func:`assess` returns ``converged=None``, ``status
'too_few_epochs'`` and a ``reason`` instead of raising. A head with no validation rows, or a
metric mace did not log, is an error (:class:`ValueError` naming the file and the head).

Loss reweighting (Stage Two / SWA). mace's ``loss`` changes definition when Stage Two starts
(other energy and force weights): in the committed mini foundations the validation loss jumps
30-fold at epoch 20 while the RMSEs do not move. Values on either side of such a change are
not comparable, so for ``metric='loss'`` the curve is cut at every *reweighting* and only the
last segment is assessed (``first_epoch`` says where it starts, ``reason`` says why). An
epoch ``i`` is a reweighting when the loss ratio ``r = v_i / v_{i-1}`` is not explained by the
errors: ``|ln r| - max_j 2 |ln(e_{j,i} / e_{j,i-1})| > ln(reweight_factor)`` over the logged
RMSEs ``e_j`` (``rmse_e_per_atom``, ``rmse_f``; a squared-error loss scales as their square),
default factor 3. Without logged RMSEs no cut is made; ``reweight_factor=None`` disables it.
The RMSE metrics (``--metric rmse_f``) need no cut and are comparable across the whole run.

Result keys (:func:`assess`): ``head``, ``metric``, ``converged`` (bool or None), ``status``,
``improvement``, ``n_epochs`` (epochs assessed), ``window_epochs`` (k), ``first_epoch``,
``window_start_epoch``, ``last_epoch``, ``reference_value``, ``start_value`` (the value at the
window's first epoch), ``best_value`` (the best within the window), ``final_value`` (the last
epoch's), ``reason`` (why no verdict, or a note on a cut; empty otherwise). Values not
defined for a result (too few epochs) are NaN.

CLI (one row per file and head; the run's keys parsed from the path by
:func:`mlipft.paths.parse_run` when the file is in a run directory, else only ``path``)::

    python -m mlipft.convergence --loss-curves A.csv B.csv ... [--window 0.2]
        [--tolerance 0.02] [--metric loss] [--min-epochs 5] [--reweight-factor 3]
        --output table.csv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .paths import RUN_KEYS, parse_run

#: The error columns a squared-error loss scales with (reweighting detection).
ERROR_COLUMNS = ("rmse_e_per_atom", "rmse_f")
#: Order of the result keys (the table's columns after the path and run keys).
RESULT_KEYS = ("head", "metric", "converged", "status", "improvement", "n_epochs", "window_epochs",
               "first_epoch", "window_start_epoch", "last_epoch", "reference_value", "start_value",
               "best_value", "final_value", "reason")
NAN = float("nan")


def _where(source: str | Path | None) -> str:
    return f"{source}: " if source is not None else ""


def valid_curve(curves: pd.DataFrame, head: str = "Default", metric: str = "loss",
                source: str | Path | None = None) -> pd.DataFrame:
    """The head's validation rows, one per epoch (means), sorted; columns ``epoch``, ``metric``
    and the logged :data:`ERROR_COLUMNS`. Raises when the head has no validation rows or no
    value of ``metric``."""
    for column in ("epoch", "head", "split"):
        if column not in curves.columns:
            raise ValueError(f"{_where(source)}no {column!r} column: not a loss_curves table")
    valid = curves[curves["split"] == "valid"]
    if valid.empty:
        raise ValueError(f"{_where(source)}no validation rows (split == 'valid') at all")
    rows = valid[valid["head"] == head]
    if rows.empty:
        heads = sorted(valid["head"].astype(str).unique())
        raise ValueError(f"{_where(source)}no validation rows of head {head!r} (heads: {heads})")
    if metric not in rows.columns or rows[metric].notna().sum() == 0:
        raise ValueError(f"{_where(source)}head {head!r}: no validation values of {metric!r}")
    columns = [metric] + [c for c in ERROR_COLUMNS if c in rows.columns and c != metric]
    rows = rows[rows["epoch"].notna() & rows[metric].notna()]
    return rows.groupby("epoch", as_index=False)[columns].mean().sort_values("epoch", ignore_index=True)


def reweightings(curve: pd.DataFrame, metric: str = "loss", factor: float = 3.0) -> list[float]:
    """Epochs where the loss changed by more than ``factor`` beyond what the logged RMSEs
    explain (a squared-error loss scales as their square): Stage Two's new weights."""
    errors = [c for c in ERROR_COLUMNS if c in curve.columns and c != metric]
    if not errors or len(curve) < 2:
        return []
    epochs = []
    for i in range(1, len(curve)):
        prev, cur = curve.iloc[i - 1], curve.iloc[i]
        if not (prev[metric] > 0 and cur[metric] > 0):
            continue
        ratios = [cur[c] / prev[c] for c in errors
                  if pd.notna(prev[c]) and pd.notna(cur[c]) and prev[c] > 0 and cur[c] > 0]
        if not ratios:
            continue
        explained = max(2 * abs(math.log(r)) for r in ratios)
        if abs(math.log(cur[metric] / prev[metric])) - explained > math.log(factor):
            epochs.append(float(cur["epoch"]))
    return epochs


def window_size(n: int, window: float) -> int:
    """Epochs in the window: ``min(n - 1, max(2, ceil(window * n)))``."""
    return min(n - 1, max(2, math.ceil(window * n - 1e-9)))


def assess(curves: pd.DataFrame, head: str = "Default", window: float = 0.2, tolerance: float = 0.02,
           metric: str = "loss", min_epochs: int = 5, reweight_factor: float | None = 3.0,
           source: str | Path | None = None) -> dict[str, Any]:
    """Whether ``head``'s validation ``metric`` has stopped improving (module docstring: the
    definition). ``source`` (a file name) only labels the errors."""
    if not 0 < window < 1:
        raise ValueError(f"window must be a fraction in (0, 1), not {window}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, not {tolerance}")
    if min_epochs < 3:
        raise ValueError(f"min_epochs must be >= 3 (a 2-epoch window and one before), not {min_epochs}")
    curve = valid_curve(curves, head, metric, source)
    notes = []
    if metric == "loss" and reweight_factor is not None:
        cuts = reweightings(curve, metric, reweight_factor)
        if cuts:
            curve = curve[curve["epoch"] >= cuts[-1]].reset_index(drop=True)
            notes.append(f"loss reweighted at epoch {', '.join(f'{e:g}' for e in cuts)} "
                         f"(Stage Two?): epochs from {cuts[-1]:g} assessed")
    values = curve[metric].to_numpy(dtype=float)
    epochs = curve["epoch"].to_numpy(dtype=float)
    n = len(values)
    result: dict[str, Any] = {
        "head": head, "metric": metric, "converged": None, "status": "too_few_epochs",
        "improvement": NAN, "n_epochs": n, "window_epochs": 0,
        "first_epoch": float(epochs[0]), "window_start_epoch": NAN, "last_epoch": float(epochs[-1]),
        "reference_value": NAN, "start_value": NAN, "best_value": NAN, "final_value": float(values[-1]),
    }
    if n < min_epochs:
        notes.insert(0, f"too few epochs to judge convergence ({n} < {min_epochs})")
        result["reason"] = "; ".join(notes)
        return result
    k = window_size(n, window)
    reference = float(values[: n - k].min())
    best = float(values[n - k:].min())
    if reference == 0:
        improvement = 0.0 if best >= 0 else math.inf
    else:
        improvement = (reference - best) / abs(reference)
    if improvement >= tolerance:
        status = "improving"
    elif improvement <= -tolerance:
        status = "worsening"
    else:
        status = "plateau"
    result.update({
        "converged": bool(improvement < tolerance), "status": status, "improvement": float(improvement),
        "window_epochs": k, "window_start_epoch": float(epochs[n - k]), "reference_value": reference,
        "start_value": float(values[n - k]), "best_value": best, "reason": "; ".join(notes),
    })
    return result


def converged_at(curves: pd.DataFrame, head: str = "Default", **kwargs) -> dict[str, Any]:
    """The fewest epochs from which ``head``'s curve meets the criterion for good: :func:`assess`
    of every prefix of the curve (epochs ``0 .. m``); the budget is the first ``m + 1`` whose
    verdict, and the verdict of every longer prefix within the run, is converged.

    "For good", because a slow start fools a fractional window: a curve that falls by 0.5 % per
    epoch for its first ten epochs and by 40 % over the next hundred meets the criterion at ten
    epochs (a 2-epoch window) and at no budget after. A fine-tune's first epochs do not depend on
    its epoch budget (mace's plateau scheduler and the EMA look back, not ahead; no Stage Two in a
    fine-tune), so the prefix of a long run is what a run with that budget would have logged: one
    long run tells the budget each strategy needs. Returns ``{"epochs": m + 1 or None,
    "first": the first budget with a converged verdict (or None), "assessed": n, "result":
    assess(prefix)}`` (``epochs`` None: not converged for good within the run's ``n`` epochs;
    ``result`` is then the whole curve's)."""
    epochs = valid_curve(curves, head, kwargs.get("metric", "loss"))["epoch"].to_numpy()
    valid = curves[(curves["split"] == "valid") & (curves["head"] == head)]  # all assess reads
    verdicts = [assess(valid[valid["epoch"] <= epoch], head=head, **kwargs) for epoch in epochs]
    first = next((i + 1 for i, r in enumerate(verdicts) if r["converged"]), None)
    stays = None
    for i in range(len(verdicts) - 1, -1, -1):
        if not verdicts[i]["converged"]:
            break
        stays = i + 1
    result = verdicts[stays - 1] if stays else verdicts[-1]
    return {"epochs": stays, "first": first, "assessed": len(epochs), "result": result}


def patience_stop(curves: pd.DataFrame, patience: int, head: str = "Default", metric: str = "loss") -> int | None:
    """Epochs mace's ``--patience`` would have run (``mlipft.mace_fixes``): it stops after
    ``patience`` validations in a row without a new lowest loss. ``None``: it would not have
    stopped within the curve."""
    values = valid_curve(curves, head, metric)[metric].to_numpy(dtype=float)
    lowest, since = math.inf, 0
    for i, value in enumerate(values):
        if value >= lowest:
            since += 1
            if since >= patience:
                return i + 1
        else:
            lowest, since = value, 0
    return None


def read_curves(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


def heads_of(curves: pd.DataFrame, source: str | Path | None = None) -> list[str]:
    """Heads with validation rows, ``Default`` first (the fine-tuned head), then the others
    (``pt_head``, the replay head of a multihead fine-tune) in name order."""
    if "split" not in curves.columns or "head" not in curves.columns:
        raise ValueError(f"{_where(source)}not a loss_curves table (no 'split'/'head' column)")
    heads = sorted(curves.loc[curves["split"] == "valid", "head"].astype(str).unique())
    if not heads:
        raise ValueError(f"{_where(source)}no validation rows (split == 'valid') at all")
    return sorted(heads, key=lambda h: (h != "Default", h))


def assess_file(path: str | Path, head: str = "Default", **kwargs) -> dict[str, Any]:
    """:func:`assess` of one head of a ``loss_curves.csv``."""
    return assess(read_curves(path), head=head, source=path, **kwargs)


def assess_run(path: str | Path, **kwargs) -> list[dict[str, Any]]:
    """:func:`assess` of every head of a ``loss_curves.csv`` with validation rows: one dict per
    head, ``Default`` first (multihead runs: then ``pt_head``, the replay head)."""
    curves = read_curves(path)
    return [assess(curves, head=h, source=path, **kwargs) for h in heads_of(curves, path)]


def run_keys(path: str | Path) -> dict[str, str]:
    """The run's keys of a file in a run directory (:func:`mlipft.paths.parse_run`); empty
    strings when the path is not one (a foundation's curves, an older layout)."""
    try:
        return parse_run(path).keys()
    except ValueError:
        return {k: "" for k in RUN_KEYS}


def table(paths: list[str | Path], **kwargs) -> pd.DataFrame:
    """One row per file and head: ``path``, the run's keys, then :data:`RESULT_KEYS`."""
    rows = []
    for path in paths:
        keys = run_keys(path)
        for result in assess_run(path, **kwargs):
            rows.append({"path": str(path), **keys, **{k: result.get(k, "") for k in RESULT_KEYS}})
    return pd.DataFrame(rows, columns=["path", *RUN_KEYS, *RESULT_KEYS])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss-curves", nargs="+", required=True, help="loss_curves.csv files")
    parser.add_argument("--window", type=float, default=0.2, help="fraction of the epochs in the window (0.2)")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="converged when the window improved on the earlier best by less (0.02)")
    parser.add_argument("--metric", default="loss", help="validation column: loss (default), rmse_f, ...")
    parser.add_argument("--min-epochs", type=int, default=5, help="fewer epochs: no verdict (5)")
    parser.add_argument("--reweight-factor", type=float, default=3.0,
                        help="loss jump (beyond the RMSEs) taken as Stage Two's reweighting; 0: off (3)")
    parser.add_argument("--output", required=True, help="CSV table, one row per file and head")
    args = parser.parse_args(argv)
    frame = table(args.loss_curves, window=args.window, tolerance=args.tolerance, metric=args.metric,
                  min_epochs=args.min_epochs, reweight_factor=args.reweight_factor or None)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.output, index=False)


if __name__ == "__main__":
    main()
