"""benchmarks/science_check.py: the four signals read from two runs' tables."""

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def science(benchmark_script):
    return benchmark_script("science_check")


def _errors(values: dict, fractions=(1.0,), seeds=(0,)) -> pd.DataFrame:
    """values: strategy -> (energy, force) at full data; smaller fractions get 2x, 4x ... the error."""
    rows = []
    for strategy, (energy, force) in values.items():
        for i, fraction in enumerate(sorted(fractions, reverse=True)):
            for seed in seeds:
                for metric, value in (("energy_rmse", energy), ("force_rmse", force)):
                    rows.append({"benchmark": "sn2", "fraction": fraction, "strategy": strategy, "seed": seed,
                                 "evalset": "test", "metric": metric, "value": value * 2 ** i + seed})
    return pd.DataFrame(rows)


def test_four_signals(tmp_path, science):
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir(), after.mkdir()
    _errors({"scratch": (10, 70), "naive": (4, 50), "lora": (2, 30)}, seeds=(0, 1, 2)).to_csv(
        before / "sn2_test_errors_errors.csv", index=False)
    # after: naive and lora swap on energy, scratch now beats every fine-tune on forces
    _errors({"scratch": (10, 20), "naive": (2, 50), "lora": (4, 30)}).to_csv(after / "sn2_test_errors_errors.csv", index=False)
    _errors({"naive": (4, 50)}, fractions=(0.1, 1.0)).to_csv(before / "sn2_lc_errors.csv", index=False)
    falling = _errors({"naive": (4, 50)}, fractions=(0.1, 1.0))
    falling.loc[(falling.fraction == 1.0) & (falling.metric == "force_rmse"), "value"] = 500  # rises with data
    falling.to_csv(after / "sn2_lc_errors.csv", index=False)
    pd.DataFrame({"strategy": ["naive", "lora"], "converged": [True, False], "improvement": [0.0, 0.1]}).to_csv(
        after / "sn2_test_errors_trainable.csv", index=False)
    quality = tmp_path / "quality.csv"
    pd.DataFrame({"foundation": ["mp0", "omat", "mp0"], "dataset": ["test", "test", "sn2"],
                  "energy_rmse_mev_per_atom": [500, 300, 1], "force_rmse_mev_per_A": [1600, 700, 1]}).to_csv(quality, index=False)
    budget = pd.concat([_errors({"naive": (4, 50), "replay": (40, 230), "lora": (2, 30)}).assign(variant="base"),
                        _errors({"naive": (2, 25), "replay": (1, 120), "lora": (1.5, 20)}).assign(variant="x4")])
    budget.to_csv(after / "sn2_budget_errors.csv", index=False)
    lines = []
    summary = science.report(before, after, (quality, quality), out=lines.append)
    text = "\n".join(lines)
    assert summary["quality"]["after"] == {"energy": ["mp0", "omat"], "force": ["mp0", "omat"]}
    assert summary["ranking"]["sn2_test_errors:energy_rmse"] == pytest.approx(0.5)
    assert "naive 2->1" in text and "lora 1->2" in text
    assert "| scratch | 11.0 ± 1.0 | 71.0 ± 1.0 | 10.0 | 20.0 |" in text  # mean ± std over three seeds
    assert summary["beats_scratch"]["sn2_test_errors:before:force_rmse"] is True
    assert summary["beats_scratch"]["sn2_test_errors:after:force_rmse"] is False
    assert summary["learning_curve"] == {"sn2_lc:before": True, "sn2_lc:after": False}
    assert summary["budget"]["sn2_budget:force_rmse"] == pytest.approx(1.0)
    assert summary["budget"]["sn2_budget:energy_rmse"] == pytest.approx(-0.5)  # replay 3 -> 1 with 4x epochs
    assert "replay 3->1" in text
    assert "1 of 2 runs converged (1 not; still improving by 10-10 %" in text
