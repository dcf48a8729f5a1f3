"""The violins kind: per-structure errors from the error files of real run paths, and its figures
(strategies coloured by foundation on two evaluation sets; one strategy over E0 modes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlipft import figures
from mlipft.figures import violins
from mlipft.paths import Paths, Run
from conftest import write_errors

STRATEGIES = {"naive": "Naive", "lora": "LoRA"}


def _spec(axes=None, evalsets=("test",), entry=None):
    base = {"benchmark": ["lpsc"], "trainset": ["train"], "foundation": ["mpa"], "strategy": list(STRATEGIES),
            "e0s": ["estimated"], "fraction": ["1"], "variant": ["base"], "seed": ["0", "1"]}
    return {"figure": "x", "kind": "violins", "description": "LPSC per-structure errors", "entry": entry or {},
            "axes": {**base, **(axes or {})}, "labels": STRATEGIES, "evalsets": list(evalsets), "world": "mini",
            "scale": "smoke", "variant_labels": {"base": "as registered"}, "reference_label": "reference"}


def _errors(p: Paths, run: Run, evalset: str, de, sq, ab, nf):
    """A per-structure error file (mlipft.analysis.errors' columns) at the run's real path."""
    n = len(de)
    return write_errors(p.errors(run, evalset), pd.DataFrame(
        {**{k: "wrong" for k in run.keys()}, "evalset": evalset, "index": range(n),
         "config_type": [("ts", "reactant", "bulk", "slab")[i % 4] for i in range(n)],
         "n_atoms": 6, "energy_ref_ev": -357.5, "energy_pred_ev": -357.8, "energy_error": de,
         "force_sq_sum": sq, "force_abs_sum": ab, "force_max": 1.0, "n_force_components": nf}))


def _run_files(p: Paths, run: Run, improving: bool):
    """trainable.json and loss_curves.csv of a run (a curve still falling, or one at its plateau)."""
    Path(p.run_dir(run)).mkdir(parents=True, exist_ok=True)
    fraction = 1.0 if run.strategy == "naive" else 0.1
    Path(p.run_file(run, "trainable")).write_text(json.dumps(
        {"trainable": int(1000 * fraction), "total": 1000, "fraction": fraction, "heads": ["Default"]}))
    curve = [1.0 - 0.04 * e for e in range(20)] if improving else [1.0 / (1 + e) ** 3 + 0.5 for e in range(20)]
    pd.DataFrame({"epoch": range(20), "head": "Default", "split": "valid", "loss": curve}).to_csv(
        p.run_file(run, "loss_curves"), index=False)


def test_collect_per_structure_errors(tmp_path):
    """|energy error| per structure, force RMSE and MAE over each structure's components; the
    keys from the run's path; a structure without forces has no force error."""
    p = Paths(tmp_path / "results")
    run = Run("lpsc", "train", 1.0, "mpa", "lora", "estimated", "base", 1)
    other = Run("lpsc", "train", 1.0, "mpa", "naive", "estimated", "base", 0)
    files = [_errors(p, run, "other_argyrodites", [3.0, -4.0, 0.5], [9 * 4.0, 18 * 16.0, 0.0],
                     [9 * 1.5, 18 * 3.0, 0.0], [9, 18, 0]),
             _errors(p, other, "non_argyrodites", [-2.0], [12 * 25.0], [12 * 4.5], [12])]
    for r, improving in ((run, True), (other, False)):
        _run_files(p, r, improving)
    inputs = figures.kind("violins").inputs  # the module is a registered kind
    assert inputs is violins.inputs
    tables = violins.collect({"errors": files, "trainable": [p.run_file(r, "trainable") for r in (run, other)],
                              "loss_curves": [p.run_file(r, "loss_curves") for r in (run, other)]}, _spec())
    s = tables["structures"]
    assert list(s.columns) == ["benchmark", "trainset", "fraction", "foundation", "strategy", "e0s", "variant",
                               "seed", "evalset", "index", "config_type", "n_atoms", "energy_error_mev_atom",
                               "energy_abs_error_mev_atom", "force_rmse_mev_a", "force_mae_mev_a"]
    assert s.strategy.tolist() == ["lora"] * 3 + ["naive"] and s.seed.tolist() == ["1"] * 3 + ["0"]
    assert s.evalset.tolist() == ["other_argyrodites"] * 3 + ["non_argyrodites"]
    assert s.energy_abs_error_mev_atom.tolist() == pytest.approx([3.0, 4.0, 0.5, 2.0])
    assert s.energy_error_mev_atom.tolist() == pytest.approx([3.0, -4.0, 0.5, -2.0])
    assert s.force_rmse_mev_a.tolist()[:2] == pytest.approx([2.0, 4.0]) and s.force_rmse_mev_a[3] == pytest.approx(5.0)
    assert s.force_mae_mev_a.tolist()[:2] == pytest.approx([1.5, 3.0]) and s.force_mae_mev_a[3] == pytest.approx(4.5)
    assert np.isnan(s.force_rmse_mev_a[2]) and np.isnan(s.force_mae_mev_a[2])
    t = tables["trainable"]
    assert dict(zip(t.strategy, t.convergence)) == {"lora": "improving", "naive": "plateau"}
    assert set(violins.TABLES) == set(tables)


def test_metrics_and_check():
    """Force RMSE by default, MAE with violin_metrics: mae; one training-set size per figure."""
    assert violins.metrics(_spec())[1][0] == "force_rmse_mev_a"
    assert violins.metrics(_spec(entry={"violin_metrics": "mae"})) == (
        ("energy_abs_error_mev_atom", "|Energy error| per structure (meV/atom)"),
        ("force_mae_mev_a", "Force MAE per structure (meV/Å)"))
    axes = _spec()["axes"]
    assert violins.check({}, "x", {}, axes) is None
    assert violins.check({}, "x", {"violin_metrics": "mae"}, axes) is None
    assert "violin_metrics" in violins.check({}, "x", {"violin_metrics": "max"}, axes)
    assert ".fractions" in violins.check({}, "x", {}, {**axes, "fraction": ["0.1", "1"]})


def test_log_scale_when_models_are_decades_apart():
    """Linear for comparable models; log when a model's tail is 30x the best model's median."""
    near = pd.DataFrame({"strategy": ["a"] * 3 + ["b"] * 3, "e": [1.0, 2.0, 3.0, 2.0, 4.0, 6.0]})
    assert not violins._log_scale(near, ["strategy"], "e")
    far = near.assign(e=[1.0, 2.0, 3.0, 50.0, 80.0, 100.0])
    assert violins._log_scale(far, ["strategy"], "e")


def _grid_tables(tmp_path, foundations, strategies, e0s, evalsets, improving=()):
    """The figure's tables as the workflow passes them: collected from run files, through CSV."""
    p = Paths(tmp_path / "results")
    rng = np.random.default_rng(0)
    files, runs = [], []
    for k, (found, strategy, e0) in enumerate((f, s, e) for f in foundations for s in strategies for e in e0s):
        for seed in (0, 1):
            run = Run("lpsc", "train", 1.0, found, strategy, e0, "base", seed)
            runs.append(run)
            _run_files(p, run, (strategy, e0) in improving)
            for j, evalset in enumerate(evalsets):
                scale = 3**k * (1 + 4 * j)  # models apart (decades: log scale), the held-out set worse
                n = 25
                de = rng.normal(0, 2.0 * scale, n)
                rmse = np.abs(rng.lognormal(np.log(40 * scale), 0.4, n))
                files.append(_errors(p, run, evalset, de, 18 * rmse**2, 18 * 0.8 * rmse, [18] * n))
    tables = violins.collect({"errors": files, "trainable": [p.run_file(r, "trainable") for r in runs],
                              "loss_curves": [p.run_file(r, "loss_curves") for r in runs]}, {})
    out = {}
    for name, table in tables.items():
        table.to_csv(tmp_path / f"{name}.csv", index=False)
        out[name] = pd.read_csv(tmp_path / f"{name}.csv")
    return out


def test_violins_over_foundations_strategies_and_evalsets(tmp_path):
    """Fig. 17's layout: strategies along x, foundations as colours, one row per evaluation set."""
    evalsets = ("other_argyrodites", "non_argyrodites")
    tables = _grid_tables(tmp_path, ("mpa", "omat"), list(STRATEGIES), ("estimated",), evalsets,
                          improving={("lora", "estimated")})
    assert len(tables["structures"]) == 2 * 2 * 2 * 2 * 25
    out = [str(tmp_path / "v.png"), str(tmp_path / "v.pdf")]
    violins.plot(tables, _spec({"foundation": ["mpa", "omat"]}, evalsets, {"violin_metrics": "mae"}), out)
    assert Path(out[0]).stat().st_size > 20_000 and Path(out[1]).stat().st_size > 5_000


def test_violins_of_one_strategy_over_e0_modes(tmp_path):
    """Fig. 4a's layout with one strategy: its E0 modes along x, no legend."""
    tables = _grid_tables(tmp_path, ("mpa",), ["naive"], ("estimated", "average", "foundation"), ("test",),
                          improving={("naive", "average")})
    spec = _spec({"strategy": ["naive"], "e0s": ["estimated", "average", "foundation"]})
    marks = violins._model_marks(tables["trainable"], spec, "setting")
    assert marks == {"E0s average": " †"}
    out = [str(tmp_path / "e.png"), str(tmp_path / "e.pdf")]
    violins.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 10_000 and Path(out[1]).stat().st_size > 5_000


def test_the_foundation_before_fine_tuning_is_the_first_model(tmp_path):
    """zeroshot: true (Fig. 17): the zero-shot error file of each foundation (rule
    evaluate_zeroshot, keys benchmark/foundation/evalset) becomes a model `zeroshot` drawn first."""
    p = Paths(tmp_path / "results")
    run = Run("lpsc", "train", 1.0, "mpa", "naive", "estimated", "base", 0)
    files = [_errors(p, run, "test", [1.0, -1.0], [9.0, 9.0], [9.0, 9.0], [9, 9])]
    _run_files(p, run, False)
    zs = Path(p.zeroshot("lpsc", "mpa", "test"))
    zs.parent.mkdir(parents=True)
    pd.DataFrame({"benchmark": "lpsc", "foundation": "mpa", "evalset": "test", "index": [0, 1], "config_type": "bulk",
                  "n_atoms": 6, "energy_error": [200.0, -300.0], "force_sq_sum": [9 * 400.0, 9 * 900.0],
                  "force_abs_sum": [9 * 20.0, 9 * 30.0], "n_force_components": 9}).to_csv(zs, index=False)
    spec = _spec({"strategy": ["naive"], "seed": ["0"]}, entry={"zeroshot": True})
    tables = violins.collect({"errors": files, "zeroshot": [str(zs)], "trainable": [p.run_file(run, "trainable")],
                              "loss_curves": [p.run_file(run, "loss_curves")]}, spec)
    s = tables["structures"]
    assert s.strategy.tolist() == ["zeroshot"] * 2 + ["naive"] * 2
    assert s[s.strategy == "zeroshot"].force_rmse_mev_a.tolist() == pytest.approx([20.0, 30.0])
    assert set(s[s.strategy == "zeroshot"].seed.astype(str)) == {"0"}
    out = [str(tmp_path / "v.png"), str(tmp_path / "v.pdf")]
    import matplotlib.pyplot as plt

    captured = {}
    real_close = plt.close
    plt.close = lambda fig=None: captured.setdefault("fig", fig)  # keep the figure to read its ticks
    try:
        violins.plot(tables, spec, out)
    finally:
        plt.close = real_close
    assert Path(out[0]).stat().st_size > 10_000
    ticks = [t.get_text() for t in captured["fig"].axes[0].get_xticklabels()]
    assert ticks[0] == violins.ZEROSHOT_LABEL and ticks[1].startswith("Naive")
