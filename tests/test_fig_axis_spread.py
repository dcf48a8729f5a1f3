"""The axis_spread kind: the spread of the errors across each grid axis against the spread across
strategies, from the error files of real run paths (hand-computed on a 2 foundations x 3
strategies x 2 seeds grid), its check, and its table figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlipft import config as cfg
from mlipft import figures
from mlipft.figures import axis_spread, common
from mlipft.paths import RUN_KEYS, Paths, Run
from conftest import write_errors

STRATEGIES = {"naive": "Naive", "lora": "LoRA", "frozen": "Frozen"}
#: Energy RMSE (meV/atom) of each run: foundation -> strategy -> (seed 0, seed 1). Seed means:
#: mpa 11, 14, 23; omat 30, 33, 41. Forces are 3x the energies (meV/Å).
ENERGY = {"mpa": {"naive": (10.0, 12.0), "lora": (14.0, 14.0), "frozen": (20.0, 26.0)},
          "omat": {"naive": (30.0, 30.0), "lora": (31.0, 35.0), "frozen": (38.0, 44.0)}}


def _spec(axes=None, evalsets=("test",), description="Which axis moves the LPSC errors most?"):
    base = {"benchmark": ["lpsc"], "trainset": ["train"], "foundation": ["mpa", "omat"], "strategy": list(STRATEGIES),
            "e0s": ["estimated"], "fraction": ["1"], "variant": ["base"], "seed": [0, 1]}
    return {"figure": "x", "kind": "axis_spread", "description": description, "entry": {},
            "axes": {**base, **(axes or {})}, "labels": STRATEGIES, "evalsets": list(evalsets), "world": "mini",
            "scale": "smoke", "variant_labels": {"base": "as registered", "lr_low": "low learning rate"},
            "reference_label": "reference"}


def _error_file(p: Paths, run: Run, evalset: str, energy: float, force: float) -> str:
    """A per-structure error file (mlipft.analysis.errors' columns) of one structure, whose
    energy and force RMSE are ``energy`` and ``force``; the keys in the file are wrong on purpose
    (the path is the truth)."""
    return write_errors(p.errors(run, evalset), pd.DataFrame(
        {**dict.fromkeys(run.keys(), "wrong"), "evalset": evalset, "index": [0], "config_type": "bulk",
         "n_atoms": 6, "energy_ref_ev": -357.5, "energy_pred_ev": -357.4, "energy_error": [-energy],
         "force_sq_sum": [18 * force**2], "force_abs_sum": [18 * force], "force_max": force,
         "n_force_components": [18]}))


def _run_files(p: Paths, run: Run):
    Path(p.run_dir(run)).mkdir(parents=True, exist_ok=True)
    fraction = {"naive": 1.0, "lora": 0.1, "frozen": 0.3}[run.strategy]
    Path(p.run_file(run, "trainable")).write_text(json.dumps(
        {"trainable": int(1000 * fraction), "total": 1000, "fraction": fraction, "heads": ["Default"]}))
    improving = run.strategy == "lora"  # one strategy still improving: the figure's footnote
    curve = [1.0 - 0.04 * e for e in range(20)] if improving else [1.0 / (1 + e) ** 3 + 0.5 for e in range(20)]
    pd.DataFrame({"epoch": range(20), "head": "Default", "split": "valid", "loss": curve}).to_csv(
        p.run_file(run, "loss_curves"), index=False)


def _collected(tmp_path, evalsets=("test",)):
    """The kind's tables from the run files of the grid of ENERGY, through CSV as the workflow
    passes them to plot."""
    p = Paths(tmp_path / "results")
    runs, files = [], []
    for found, by_strategy in ENERGY.items():
        for strategy, seeds in by_strategy.items():
            for seed, energy in enumerate(seeds):
                run = Run("lpsc", "train", 1.0, found, strategy, "estimated", "base", seed)
                runs.append(run)
                _run_files(p, run)
                files += [_error_file(p, run, e, energy * (1 + j), 3 * energy * (1 + j)) for j, e in enumerate(evalsets)]
    tables = axis_spread.collect({"errors": files, "trainable": [p.run_file(r, "trainable") for r in runs],
                                  "loss_curves": [p.run_file(r, "loss_curves") for r in runs]}, _spec(evalsets=evalsets))
    out = {}
    for name, table in tables.items():
        table.to_csv(tmp_path / f"{name}.csv", index=False)
        out[name] = pd.read_csv(tmp_path / f"{name}.csv")
    return tables, out


def _row(table, axis, metric="energy_rmse", evalset="test"):
    rows = table[(table.axis == axis) & (table.metric == metric) & (table.evalset == evalset)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_is_a_registered_kind_reading_the_error_files():
    assert figures.kind("axis_spread") is axis_spread
    assert set(axis_spread.TABLES) == {"errors", "spreads"}
    config = {"figures": {"x": {"evalsets": ["test", "heldout"]}}}
    p = Paths("results")
    runs = [Run("lpsc", "train", 1.0, "mpa", s, "estimated", "base", 0) for s in STRATEGIES]
    assert axis_spread.inputs(config, "x", runs, p) == common.error_inputs(config, "x", runs, p)


def test_spreads_by_hand(tmp_path):
    """Strategy: ranges of the seed means 23-11 (mpa) and 41-30 (omat); foundation: 19, 19, 18
    over the three strategies; seed: the single seeds' ranges 2, 0, 6, 0, 4, 6 of the six models."""
    tables, _ = _collected(tmp_path)
    s = tables["spreads"]
    assert list(s.columns) == list(axis_spread.COLUMNS)
    assert set(s.metric) == {"energy_rmse", "energy_mae", "force_rmse", "force_mae"}
    assert list(dict.fromkeys(s.axis)) == ["foundation", "strategy", "seed"]  # only the axes that vary
    strategy, foundation, seed = (_row(s, a) for a in ("strategy", "foundation", "seed"))
    assert strategy.spread_mean == pytest.approx(11.5) and strategy.spread_max == pytest.approx(12.0)
    assert strategy.n_groups == 2 and strategy.ratio_to_strategy == pytest.approx(1.0)
    assert foundation.spread_mean == pytest.approx(56 / 3) and foundation.spread_max == pytest.approx(19.0)
    assert foundation.n_groups == 3 and foundation.ratio_to_strategy == pytest.approx(56 / 3 / 11.5)
    assert seed.spread_mean == pytest.approx(3.0) and seed.spread_max == pytest.approx(6.0)
    assert seed.n_groups == 6 and seed.ratio_to_strategy == pytest.approx(3.0 / 11.5)
    assert strategy["values"] == "naive;lora;frozen" and foundation["values"] == "mpa;omat"
    assert seed["values"] == "0;1" and seed.n_values == 2
    assert strategy.unit == "meV/atom" and _row(s, "seed", "force_rmse").unit == "meV/Å"
    # best / worst: the labels of the lowest / highest mean over the other axes
    assert (strategy.best, strategy.worst) == ("Naive", "Frozen")  # 20.5, 23.5, 32
    assert strategy.best_value == pytest.approx(20.5) and strategy.worst_value == pytest.approx(32.0)
    assert (foundation.best, foundation.worst) == ("mpa", "omat")
    assert foundation.best_value == pytest.approx(16.0) and foundation.worst_value == pytest.approx(104 / 3)
    assert (str(seed.best), str(seed.worst)) == ("0", "1")  # 143/6 against 161/6
    # forces are 3x the energies: 3x the spreads, the same ratios
    force = _row(s, "foundation", "force_rmse")
    assert force.spread_mean == pytest.approx(3 * 56 / 3) and force.ratio_to_strategy == pytest.approx(56 / 3 / 11.5)
    # one structure: the MAE is the RMSE
    assert _row(s, "seed", "energy_mae").spread_mean == pytest.approx(3.0)


def test_errors_table_is_collect_errors_with_convergence(tmp_path):
    tables, read = _collected(tmp_path)
    e = tables["errors"]
    assert list(e.columns[:8]) == list(RUN_KEYS)
    assert {"evalset", "metric", "unit", "value", "n_configs", "convergence", "trained_epochs"} <= set(e.columns)
    assert len(e) == 12 * 4  # runs x metrics
    assert set(e[e.strategy == "lora"].convergence) == {"improving"}
    # a table read back from CSV (seeds and fractions as numbers) gives the same spreads
    again = axis_spread.spreads(read["errors"], _spec())
    pd.testing.assert_frame_equal(again, tables["spreads"], check_dtype=False)


def _table(drop=()):
    """The errors table of the ENERGY grid, without the runs of the (foundation, strategy) in ``drop``."""
    rows = []
    for found, by_strategy in ENERGY.items():
        for strategy, seeds in by_strategy.items():
            if (found, strategy) in drop:
                continue
            for seed, energy in enumerate(seeds):
                rows.append({"benchmark": "lpsc", "trainset": "train", "fraction": "1", "foundation": found,
                             "strategy": strategy, "e0s": "estimated", "variant": "base", "seed": str(seed),
                             "evalset": "test", "metric": "energy_rmse", "unit": "meV/atom", "value": energy})
    return pd.DataFrame(rows)


def test_only_combinations_with_two_values_count():
    """Without omat's frozen runs: strategy ranges 12 (mpa, three strategies) and 3 (omat, two);
    foundation ranges 19 and 19 (frozen has one foundation left: no range)."""
    s = axis_spread.spreads(_table(drop={("omat", "frozen")}), _spec())
    strategy, foundation = _row(s, "strategy"), _row(s, "foundation")
    assert strategy.spread_mean == pytest.approx(7.5) and strategy.n_groups == 2
    assert foundation.spread_mean == pytest.approx(19.0) and foundation.n_groups == 2
    assert foundation.ratio_to_strategy == pytest.approx(19 / 7.5)
    assert _row(s, "seed").n_groups == 5
    assert _row(s, "foundation").best_value == pytest.approx(12.5)  # naive and lora: frozen has no omat to compare


def test_no_ratio_without_several_strategies():
    s = axis_spread.spreads(_table()[lambda t: t.strategy == "naive"], _spec({"strategy": ["naive"]}))
    assert list(s.axis) == ["foundation", "seed"]
    assert s.ratio_to_strategy.isna().all()
    assert _row(s, "foundation").spread_mean == pytest.approx(19.0)  # 30 - 11
    assert _row(s, "seed").spread_mean == pytest.approx(1.0)  # ranges 2 and 0


def test_an_axis_never_varying_alone_has_no_spread():
    """Conditions that tie the fraction to the variant (Fig. 20: "10 %", "10 %, 10x epochs",
    "100 %"): neither varies with the other held fixed, so neither has a range (n_groups 0)."""
    rows = []
    for fraction, variant, value in (("0.1", "base", 40.0), ("0.1", "epochs10", 25.0), ("1", "base", 20.0)):
        for strategy, offset in (("naive", 0.0), ("lora", 5.0)):
            rows.append({"benchmark": "lpsc", "trainset": "train", "fraction": fraction, "foundation": "mpa",
                         "strategy": strategy, "e0s": "estimated", "variant": variant, "seed": "0",
                         "evalset": "test", "metric": "energy_rmse", "unit": "meV/atom", "value": value + offset})
    s = axis_spread.spreads(pd.DataFrame(rows), _spec({"fraction": ["0.1", "1"], "variant": ["base", "epochs10"],
                                                       "foundation": ["mpa"], "seed": [0]}))
    assert list(s.axis) == ["strategy", "variant", "fraction"]
    assert _row(s, "strategy").spread_mean == pytest.approx(5.0) and _row(s, "strategy").n_groups == 3
    assert _row(s, "variant").spread_mean == pytest.approx(15.0)  # at fraction 0.1 only
    assert _row(s, "fraction").spread_mean == pytest.approx(20.0)  # with the base variant only
    assert _row(s, "variant").best == "epochs10" and _row(s, "fraction").best == "1"
    # best / worst compare where both exist: base at fraction 0.1 (42.5), not with its fraction-1 runs (32.5)
    assert _row(s, "variant").best_value == pytest.approx(27.5) and _row(s, "variant").worst_value == pytest.approx(42.5)


def test_an_axis_tied_to_another_has_no_range_and_no_best(tmp_path):
    """Conditions that tie the fraction to the variant completely ("10 %" and "100 %, 10x epochs"):
    neither varies with the other held fixed, so neither has a range (n_groups 0), a ratio or a
    best value (which of the two moved the errors is not to be told)."""
    rows = []
    for fraction, variant, value in (("0.1", "base", 40.0), ("1", "epochs10", 25.0)):
        for strategy, offset in (("naive", 0.0), ("lora", 5.0)):
            rows.append({"benchmark": "lpsc", "trainset": "train", "fraction": fraction, "foundation": "mpa",
                         "strategy": strategy, "e0s": "estimated", "variant": variant, "seed": "0",
                         "evalset": "test", "metric": "energy_rmse", "unit": "meV/atom", "value": value + offset})
    errors = pd.DataFrame(rows)
    spec = _spec({"fraction": ["0.1", "1"], "variant": ["base", "epochs10"], "foundation": ["mpa"], "seed": [0],
                  "strategy": ["naive", "lora"]})
    s = axis_spread.spreads(errors, spec)
    for axis in ("variant", "fraction"):
        row = _row(s, axis)
        assert row.n_groups == 0 and np.isnan(row.spread_mean) and np.isnan(row.ratio_to_strategy)
        assert row.best == "" and np.isnan(row.best_value)
    assert _row(s, "strategy").spread_mean == pytest.approx(5.0)
    out = [str(tmp_path / "tied.png"), str(tmp_path / "tied.pdf")]
    axis_spread.plot({"errors": errors, "spreads": s}, spec, out)  # "never varies alone" cells
    assert Path(out[0]).stat().st_size > 10_000


def _config(**fig):
    entry = {"kind": "axis_spread", "description": "d", "benchmark": "lpsc", "strategies": ["naive", "lora"],
             "e0s": "estimated", "fractions": [1.0], "seeds": [0], **fig}
    return {"main_foundation": "mpa", "foundations": {"mpa": {}, "omat": {}},
            "strategies": {"naive": {}, "lora": {}}, "figures": {"x": entry}}


def _check(config):
    return axis_spread.check(config, "x", config["figures"]["x"], cfg.grid(config, "x"))


def test_check_needs_two_varying_axes():
    message = _check(_config())
    assert message.startswith(".foundation: an axis_spread figure") and "only strategies varies" in message
    assert _check(_config(seeds=[0, 1])) is None
    assert _check(_config(foundation=["mpa", "omat"], e0s=["estimated", "average"], strategies=["naive"])) is None
    message = _check(_config(strategies=["naive"]))
    assert message.startswith(".strategies:") and "none varies" in message
    # the axes of the runs: the union over the conditions
    tied = _config(seeds=[0, 1], conditions=[{"label": "a", "strategies": ["naive"], "seeds": [0]},
                                             {"label": "b", "strategies": ["naive"], "seeds": [0]}])
    assert _check(tied).startswith(".strategies:")
    spread = _config(conditions=[{"label": "a", "seeds": [0]}, {"label": "b", "seeds": [1]}])
    assert _check(spread) is None
    assert axis_spread.varying_axes(spread, "x", spread["figures"]["x"], cfg.grid(spread, "x")) == ["strategy", "seed"]


def test_plot_writes_png_and_pdf(tmp_path):
    _, tables = _collected(tmp_path)
    out = [str(tmp_path / "s.png"), str(tmp_path / "s.pdf")]
    axis_spread.plot(tables, _spec(), out)
    assert Path(out[0]).stat().st_size > 10_000 and Path(out[1]).stat().st_size > 5_000


def test_plot_with_three_evalsets_and_four_axes(tmp_path):
    """A wider grid: four varying axes, three evaluation sets (6 columns); and one strategy only
    (no reference, no colour)."""
    rng = np.random.default_rng(1)
    rows = []
    found_scale = {"mpa": 1.0, "omat": 1.6, "matpes": 2.4}
    e0_scale = {"estimated": 1.0, "average": 4.0}
    for found, f_scale in found_scale.items():
        for e0, e_scale in e0_scale.items():
            for k, strategy in enumerate(STRATEGIES):
                for seed in (0, 1, 2):
                    for j, evalset in enumerate(("test", "other_argyrodites", "non_argyrodites")):
                        base = 5.0 * f_scale * e_scale * (1 + 0.15 * k) * (1 + j)
                        for metric, unit, scale in (("energy_rmse", "meV/atom", 1.0), ("force_rmse", "meV/Å", 20.0)):
                            rows.append({"benchmark": "lpsc", "trainset": "train", "fraction": "1", "foundation": found,
                                         "strategy": strategy, "e0s": e0, "variant": "base", "seed": str(seed),
                                         "evalset": evalset, "metric": metric, "unit": unit,
                                         "value": scale * base * rng.uniform(0.95, 1.05)})
    errors = pd.DataFrame(rows)
    spec = _spec({"foundation": list(found_scale), "e0s": list(e0_scale), "seed": [0, 1, 2]},
                 ("test", "other_argyrodites", "non_argyrodites"),
                 description="LPSC: how much foundation, E0 mode, strategy and training noise move the errors")
    table = axis_spread.spreads(errors, spec)
    assert _row(table, "e0s").ratio_to_strategy > 3  # a fourfold E0 effect against ~30 % between strategies
    out = [str(tmp_path / "w.png"), str(tmp_path / "w.pdf")]
    axis_spread.plot({"errors": errors, "spreads": table}, spec, out)
    assert Path(out[0]).stat().st_size > 20_000
    # one strategy: no reference, no colour, no ratio column
    one = errors[(errors.strategy == "naive") & (errors.evalset == "test")]
    spec_one = _spec({"foundation": list(found_scale), "e0s": list(e0_scale), "seed": [0, 1, 2],
                      "strategy": ["naive"]}, ("test",))
    out = [str(tmp_path / "n.png"), str(tmp_path / "n.pdf")]
    axis_spread.plot({"errors": one, "spreads": axis_spread.spreads(one, spec_one)}, spec_one, out)
    assert Path(out[0]).stat().st_size > 10_000
    # two axes (foundation and strategy) on two evaluation sets
    two = errors[(errors.seed == "0") & (errors.e0s == "estimated") & (errors.evalset != "non_argyrodites")]
    spec_two = _spec({"foundation": list(found_scale), "seed": [0]}, ("test", "other_argyrodites"))
    table = axis_spread.spreads(two, spec_two)
    assert list(dict.fromkeys(table.axis)) == ["foundation", "strategy"]
    out = [str(tmp_path / "t.png"), str(tmp_path / "t.pdf")]
    axis_spread.plot({"errors": two, "spreads": table}, spec_two, out)
    assert Path(out[0]).stat().st_size > 10_000
