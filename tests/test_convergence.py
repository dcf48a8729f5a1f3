"""The convergence criterion of a fine-tune: synthetic validation curves with a known answer,
a committed foundation's curves, and the CLI's table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlipft.convergence import (assess, assess_file, assess_run, converged_at, main, patience_stop, reweightings,
                                window_size)
from mlipft.paths import Run

ROOT = Path(__file__).resolve().parents[1]


def curves(*heads: tuple[str, np.ndarray], rmse: dict[str, np.ndarray] | None = None,
           train: bool = True) -> pd.DataFrame:
    """A loss_curves table (parse_loss_curves' layout): train rows of head 'all', then one
    valid row per epoch of each (head, values)."""
    n = len(heads[0][1])
    rows = [{"epoch": float(e), "head": "all", "split": "train", "loss": 2.0 / (e + 1)} for e in range(n)] if train else []
    for head, values in heads:
        for e, v in enumerate(values):
            row = {"epoch": float(e), "head": head, "split": "valid", "loss": float(v)}
            for column, errors in (rmse or {}).items():
                row[column] = float(errors[e])
            rows.append(row)
    return pd.DataFrame(rows)


EPOCHS = np.arange(30)


def test_flattened_exponential_decay_has_converged():
    loss = 0.1 + np.exp(-EPOCHS / 3.0)  # after 24 epochs: exp(-8) = 3e-4 left of 0.1
    result = assess(curves(("Default", loss)))
    assert result["converged"] is True and result["status"] == "plateau"
    assert result["n_epochs"] == 30 and result["window_epochs"] == 6 and result["window_start_epoch"] == 24
    assert 0 <= result["improvement"] < 0.02
    assert result["reference_value"] == pytest.approx(loss[23])
    assert result["best_value"] == result["final_value"] == pytest.approx(loss[29])
    assert result["start_value"] == pytest.approx(loss[24])
    assert result["reason"] == ""


def test_linear_decline_still_falling_has_not_converged():
    loss = 1.0 - 0.02 * EPOCHS  # 1.0 -> 0.42, 3 % of the value per epoch at the end
    result = assess(curves(("Default", loss)))
    assert result["converged"] is False and result["status"] == "improving"
    expected = (loss[23] - loss[29]) / loss[23]
    assert result["improvement"] == pytest.approx(expected)
    # a looser tolerance calls the same curve converged
    assert assess(curves(("Default", loss)), tolerance=0.5)["converged"] is True


def test_noisy_plateau_is_not_progress():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        loss = 0.5 * (1 + 0.01 * rng.standard_normal(40))  # 1 % noise on a flat curve
        result = assess(curves(("Default", loss)))
        assert result["converged"] is True, (seed, result)
        assert result["improvement"] < 0.02


def test_noise_on_a_still_falling_curve_is_still_falling():
    rng = np.random.default_rng(1)
    loss = np.exp(-EPOCHS / 15.0) * (1 + 0.01 * rng.standard_normal(30))
    assert assess(curves(("Default", loss)))["converged"] is False


def test_too_few_epochs_gives_no_verdict_and_a_reason():
    result = assess(curves(("Default", np.array([1.0, 0.5]))))  # the smoke scale: 2 epochs
    assert result["converged"] is None and result["status"] == "too_few_epochs"
    assert "too few epochs" in result["reason"] and "2 < 5" in result["reason"]
    assert math.isnan(result["improvement"]) and result["n_epochs"] == 2 and result["final_value"] == 0.5
    assert assess(curves(("Default", np.linspace(1, 0.5, 4))), min_epochs=3)["converged"] is not None


def test_window_size():
    assert window_size(30, 0.2) == 6 and window_size(10, 0.2) == 2 and window_size(5, 0.2) == 2
    assert window_size(5, 0.9) == 4  # at least one epoch before the window
    with pytest.raises(ValueError, match="window"):
        assess(curves(("Default", np.ones(10))), window=1.0)


def test_multihead_run_reports_the_replay_head_separately(tmp_path):
    default = 0.1 + np.exp(-EPOCHS / 3.0)           # converged
    pt_head = 0.01 * (1 + EPOCHS / 10.0)            # forgetting: rising all along
    frame = curves(("Default", default), ("pt_head", pt_head))
    run = Run("sn2", "train", 1.0, "omat_medium", "replay", "estimated", "base", 0)
    path = tmp_path / "results" / run.path / "loss_curves.csv"
    path.parent.mkdir(parents=True)
    frame.to_csv(path, index=False)

    results = assess_run(path)
    assert [r["head"] for r in results] == ["Default", "pt_head"]
    assert results[0]["status"] == "plateau"
    assert results[1]["status"] == "worsening" and results[1]["converged"] is True
    assert results[1]["improvement"] < -0.02
    assert assess_file(path, head="pt_head") == results[1]

    out = tmp_path / "table.csv"
    other = tmp_path / "elsewhere" / "loss_curves.csv"  # not a run directory: only its path
    other.parent.mkdir()
    curves(("Default", 1.0 - 0.02 * EPOCHS)).to_csv(other, index=False)
    main(["--loss-curves", str(path), str(other), "--output", str(out)])
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 3
    assert list(table.columns[:10]) == ["path", "benchmark", "trainset", "fraction", "foundation", "strategy",
                                        "e0s", "variant", "seed", "head"]
    assert table.loc[0, "strategy"] == "replay" and table.loc[1, "head"] == "pt_head"
    assert table.loc[2, "strategy"] == "" and not table.loc[2, "converged"]


def test_missing_validation_split_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "loss_curves.csv"
    frame = curves(("Default", np.ones(10)))
    frame[frame.split == "train"].to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"{path}.*no validation rows"):
        assess_file(path)
    with pytest.raises(ValueError, match=f"{path}.*no validation rows"):
        assess_run(path)
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"{path}.*head 'pt_head'"):
        assess_file(path, head="pt_head")
    with pytest.raises(ValueError, match="rmse_f"):
        assess_file(path, metric="rmse_f")


def test_stage_two_reweighting_cuts_the_loss_but_not_the_rmse():
    # Stage One converges; at epoch 20 the loss weights change: the loss jumps 30-fold while
    # the errors do not, then it falls steadily (still improving).
    rmse = 0.3 + 0.2 * np.exp(-EPOCHS / 4.0)
    loss = np.where(EPOCHS < 20, rmse ** 2, 30 * rmse ** 2 * (1 - 0.02 * (EPOCHS - 20)))
    frame = curves(("Default", loss), rmse={"rmse_f": rmse, "rmse_e_per_atom": rmse / 10})
    assert reweightings(frame[frame.split == "valid"].reset_index(drop=True)) == [20.0]
    result = assess(frame)
    assert result["first_epoch"] == 20 and result["n_epochs"] == 10 and "reweighted at epoch 20" in result["reason"]
    assert result["converged"] is False
    uncut = assess(frame, reweight_factor=None)  # the jump would otherwise read as "worse, converged"
    assert uncut["status"] == "worsening"
    assert assess(frame, metric="rmse_f")["n_epochs"] == 30
    # a real blow-up (errors rise with the loss) is not a reweighting
    blowup = rmse.copy()
    blowup[25:] *= 3
    frame = curves(("Default", blowup ** 2), rmse={"rmse_f": blowup})
    assert reweightings(frame[frame.split == "valid"].reset_index(drop=True)) == []


def test_committed_foundation_curves():
    path = ROOT / "data" / "mini" / "mini" / "foundations" / "omat_medium" / "loss_curves.csv"
    for metric in ("loss", "rmse_f", "rmse_e_per_atom"):
        results = assess_run(path, metric=metric)
        for r in results:
            print(metric, {k: r[k] for k in ("head", "status", "improvement", "first_epoch", "n_epochs",
                                             "reference_value", "best_value", "reason")})
        assert [r["head"] for r in results] == ["Default"]
        r = results[0]
        assert r["converged"] in (True, False) and r["status"] in ("improving", "plateau", "worsening")
        assert math.isfinite(r["improvement"]) and r["window_epochs"] >= 2
        assert r["last_epoch"] == r["window_start_epoch"] + r["window_epochs"] - 1


def test_converged_at_is_the_first_budget_the_criterion_accepts():
    """A flattening exponential (0.1 + exp(-t/10)): its last fifth improves on the best before
    it by less than 2 % only from some budget m on; converged_at finds the first such m, and
    assess agrees on every shorter prefix."""
    loss = 0.1 + np.exp(-np.arange(120) / 10.0)
    table = curves(("Default", loss))
    found = converged_at(table)
    m = found["epochs"]
    assert found["assessed"] == 120 and m is not None and 20 < m < 120
    assert found["result"]["converged"] is True and found["result"]["last_epoch"] == m - 1
    assert assess(curves(("Default", loss[:m])))["converged"] is True
    assert all(not assess(curves(("Default", loss[:j])))["converged"] for j in range(5, m))
    assert found["first"] == m  # converged from its first converged verdict on
    # still falling linearly: no budget within the run
    still = converged_at(curves(("Default", 1.0 - 0.015 * np.arange(60))))
    assert still["epochs"] is None and still["first"] is None and still["result"]["status"] == "improving"


def test_a_slow_start_is_not_a_budget():
    """0.5 % per epoch for ten epochs, then a fall of 40 % over a hundred: the 2-epoch window of
    the tenth epoch says converged, no longer prefix does; the budget is 'none within the run'."""
    slow = 1.0 - 0.005 * np.arange(10)
    fall = slow[-1] * (1.0 - 0.4 * (1 - np.exp(-np.arange(1, 101) / 30.0)))
    found = converged_at(curves(("Default", np.concatenate([slow, fall]))), min_epochs=5)
    assert found["first"] is not None and found["first"] <= 10
    assert found["epochs"] is None and found["result"]["converged"] is False


def test_patience_stop_counts_validations_without_a_new_lowest_loss():
    values = np.array([5.0, 4.0, 4.5, 4.6, 3.0, 3.1, 3.2, 3.3, 2.0])
    assert patience_stop(curves(("Default", values)), patience=3) == 8  # 3.0 at epoch 4, then 3 worse
    assert patience_stop(curves(("Default", values)), patience=4) is None
    assert patience_stop(curves(("Default", values)), patience=2) == 4  # 4.5 and 4.6 after 4.0
