"""Figure kinds as a registry, their tables from per-structure errors, and their plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from mlipft import figures
from mlipft.figures import common, learning_curve
from mlipft.io import write_atomic
from mlipft.paths import Paths, Run, split_selection
from conftest import write_errors

STRATEGIES = {"naive": "Naive", "lora": "LoRA"}


def test_every_kind_is_a_module_and_a_schema_branch(root):
    """A kind is one module of mlipft.figures plus one branch of the schema's figures oneOf."""
    import yaml

    schema = yaml.safe_load((root / "config" / "schemas" / "config.schema.yaml").read_text())
    branches = {schema["$defs"][ref["$ref"].rsplit("/", 1)[-1]]["properties"]["kind"]["const"]
                for ref in schema["properties"]["figures"]["additionalProperties"]["oneOf"]}
    assert set(figures.kinds()) == branches == {"test_errors", "learning_curve", "neb_profiles", "violins", "cross_phase",
                                                         "loss_curves", "phase_blocks", "near_transfer",
                                                         "strategy_blocks", "benchmarks_overview",
                                                         "torsion_scans", "preservation", "md_rdfs", "md_stability", "symmetry_table", "repulsion",
                                                         "rss", "axis_spread"}
    with pytest.raises(KeyError, match="no figure kind 'violin'"):
        figures.kind("violin")  # violins is one


def test_rules_have_no_branch_on_kind(root):
    import re

    code = [line.split("#")[0] for line in (root / "rules" / "figures.smk").read_text().splitlines()]
    assert not [line for line in code if re.search(r"\b(if|elif)\b", line)], "a branch in rules/figures.smk"
    assert not [line for line in code if "kind" in line and "figure_kinds" not in line and "subcategory" not in line]


def _structures(tmp_path, run: Run, evalset: str, de, sq):
    p = Paths(tmp_path / "results")
    frame = pd.DataFrame({"evalset": evalset, "index": range(len(de)), "n_atoms": 3, "energy_error": de,
                          "force_sq_sum": sq, "force_abs_sum": np.sqrt(sq), "n_force_components": 9})
    return write_errors(p.errors(run, evalset), frame)


def test_summary_from_per_structure_errors(tmp_path):
    """RMSE over structures for energies, over every force component for forces."""
    run = Run("sn2", "train", 1.0, "f", "naive", "estimated", "base", 0)
    path = _structures(tmp_path, run, "test", [3.0, -4.0], [9 * 4.0, 9 * 16.0])
    table = common.error_summary([path])
    values = dict(zip(table.metric, table.value))
    assert values["energy_rmse"] == pytest.approx(np.sqrt(12.5))
    assert values["energy_mae"] == pytest.approx(3.5)
    assert values["force_rmse"] == pytest.approx(np.sqrt(10.0))
    assert set(table.columns) >= {"benchmark", "variant", "evalset", "metric", "unit", "value", "n_configs"}
    assert (table.n_configs == 2).all() and (table.variant == "base").all()


def test_collect_reads_keys_from_the_path(tmp_path):
    """The run's keys come from its directory (mlipft.paths), whatever the file says."""
    run = Run("lpsc", "train", 0.1, "mpa", "lora", "average", "lr_low", 2)
    path = _structures(tmp_path, run, "other", [1.0], [9.0])
    file, _ = split_selection(path)
    frame = pd.read_csv(file).assign(strategy="wrong")
    frame.to_csv(file, index=False)
    table = common.collect_runs([path])
    assert table.strategy.tolist() == ["lora"] and table.fraction.tolist() == ["0.1"]
    assert list(table.columns[:8]) == ["benchmark", "trainset", "fraction", "foundation", "strategy", "e0s",
                                        "variant", "seed"]


def _trainsets(tmp_path, sizes):
    files = []
    for fraction, n in sizes.items():
        path = Paths(tmp_path / "results").trainset(benchmark="sn2", trainset="train", fraction=fraction, seed=0)
        write_atomic(path, [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74 + 0.01 * i]]) for i in range(n)])
        files.append(path)
    return files


def _errors(sizes):
    rows = []
    for fraction, n in sizes.items():
        for k, strategy in enumerate(STRATEGIES):
            for metric, scale in (("energy_rmse", 10.0 * (1 + k)), ("force_rmse", 100.0 * (1 + k))):
                rows.append({"benchmark": "sn2", "trainset": "train", "fraction": fraction, "foundation": "f",
                             "strategy": strategy, "e0s": "estimated", "variant": "base", "seed": 0,
                             "evalset": "test", "metric": metric, "value": scale / np.sqrt(n)})
    return pd.DataFrame(rows)


def test_learning_curve_counts_each_training_subset(tmp_path):
    sizes = {"0.01": 2, "0.1": 18, "1": 179}
    counted = common.training_set_sizes(_trainsets(tmp_path, sizes))
    assert dict(zip(counted.fraction, counted.n_train)) == sizes
    table = learning_curve.with_sizes(_errors(sizes), counted)
    assert len(table) == len(_errors(sizes))
    assert (table.groupby("fraction").n_train.first() == pd.Series(sizes)).all()


def test_learning_curve_without_its_training_subset_names_the_run(tmp_path):
    counted = common.training_set_sizes(_trainsets(tmp_path, {"1": 179}))
    with pytest.raises(ValueError, match=r"no training subset file for runs .*'fraction': '0.1'"):
        learning_curve.with_sizes(_errors({"0.1": 18, "1": 179}), counted)
    bad = tmp_path / "trainsets" / "sn2" / "train" / "x.xyz"
    bad.parent.mkdir(parents=True)
    bad.write_text("")
    with pytest.raises(ValueError, match="does not match"):
        common.training_set_sizes([bad])


def _spec(kind, axes=None, evalsets=("test",)):
    base = {"benchmark": ["sn2"], "trainset": ["train"], "foundation": ["f"], "strategy": list(STRATEGIES),
            "e0s": ["estimated"], "fraction": ["1"], "variant": ["base"], "seed": ["0"]}
    return {"figure": "x", "kind": kind, "description": "SN2 figure", "entry": {}, "axes": {**base, **(axes or {})},
            "labels": STRATEGIES, "evalsets": list(evalsets), "world": "mini", "scale": "smoke",
            "variant_labels": {"base": "as registered"}, "reference_label": "reference"}


def test_learning_curve_figure(tmp_path):
    sizes = {"0.01": 2, "0.1": 18, "1": 179}
    table = learning_curve.with_sizes(_errors(sizes), common.training_set_sizes(_trainsets(tmp_path, sizes)))
    trainable = pd.DataFrame({"strategy": ["naive", "lora"], "trainable_fraction": [1.0, 0.15]})
    out = [str(tmp_path / "lc.png"), str(tmp_path / "lc.pdf")]
    learning_curve.plot({"errors": table, "trainable": trainable}, _spec("learning_curve"), out)
    assert (tmp_path / "lc.png").stat().st_size > 10_000 and (tmp_path / "lc.pdf").stat().st_size > 5_000


def test_test_errors_figure_over_foundations_e0s_and_evalsets(tmp_path):
    """Several foundations x E0 modes become the colours, evaluation sets the rows of panels."""
    rows = []
    for found in ("mpa", "omat"):
        for e0 in ("estimated", "average"):
            for strategy in STRATEGIES:
                for evalset in ("test", "heldout"):
                    for metric in ("energy_rmse", "force_rmse"):
                        rows.append({"foundation": found, "e0s": e0, "strategy": strategy, "evalset": evalset,
                                     "benchmark": "lpsc", "trainset": "train", "variant": "base", "seed": 0,
                                     "metric": metric, "value": 1.0 + len(rows)})
    errors = pd.DataFrame(rows)
    spec = _spec("test_errors", {"foundation": ["mpa", "omat"], "e0s": ["estimated", "average"]}, ("test", "heldout"))
    assert set(common.settings(errors, spec)) == {"mpa, E0s estimated", "mpa, E0s average", "omat, E0s estimated",
                                                  "omat, E0s average"}
    trainable = pd.DataFrame({"strategy": list(STRATEGIES), "trainable_fraction": [1.0, 0.1]})
    out = [str(tmp_path / "te.png"), str(tmp_path / "te.pdf")]
    figures.kind("test_errors").plot({"errors": errors, "trainable": trainable}, spec, out)
    assert (tmp_path / "te.png").stat().st_size > 10_000


def test_caption_names_world_scale_grid_and_paper(config):
    config["scale"] = "smoke"
    text = figures.caption(config, "fig06c")
    assert "World:* mini, scale smoke" in text and "strategy: scratch, naive" in text
    assert "The paper's version:* Fig. 6c" in text
    json.dumps(figures.spec(config, "fig06c"))  # what the rules pass to collect and plot


def test_convergence_joins_the_trainable_table_and_marks_the_figure(tmp_path):
    """A run still improving is marked † in its figure; one with too few epochs is not judged."""
    p = Paths(tmp_path / "results")
    files = []
    for strategy, curve in (("naive", [1.0 / (1 + e) ** 3 + 0.5 for e in range(20)]),
                            ("lora", [1.0 - 0.04 * e for e in range(20)])):
        run = Run("sn2", "train", 1, "f", strategy, "estimated", "base", 0)
        path = Path(p.run_file(run, "loss_curves"))
        path.parent.mkdir(parents=True)
        pd.DataFrame({"epoch": range(20), "head": "Default", "split": "valid", "loss": curve}).to_csv(path, index=False)
        files.append(path)
    conv = common.convergence(files)
    assert dict(zip(conv.strategy, conv.convergence)) == {"naive": "plateau", "lora": "improving"}
    table = common.with_convergence(pd.DataFrame({"strategy": ["naive", "lora"], "benchmark": "sn2", "trainset": "train",
                                                  "fraction": "1", "foundation": "f", "e0s": "estimated",
                                                  "variant": "base", "seed": "0"}), conv)
    marks, note = common.convergence_note(table)
    assert marks == {"lora": " †"} and "not converged" in note
    assert common.convergence(None) is None


def test_a_run_errors_table_serves_each_selection_and_names_a_missing_set(tmp_path):
    """Figures read selections ``<run>/errors.csv::<evalset>`` of one table per run: each gives
    its set's rows only; a set the table lacks (written before a figure asked for it, and not
    re-run under --rerun-triggers mtime) is an error naming the file, its sets and the fix."""
    run = Run("sn2", "train", 1, "mpa", "naive", "estimated", "base", 0)
    test = _structures(tmp_path, run, "test", [1.0, 2.0], [9.0, 9.0])
    seen = _structures(tmp_path, run, "test_seen", [3.0], [9.0])
    assert split_selection(test)[0] == split_selection(seen)[0]
    table = common.collect_runs([seen, test])
    assert table.evalset.tolist() == ["test_seen", "test", "test"]
    assert table.energy_error.tolist() == [3.0, 1.0, 2.0]
    summary = common.error_summary([test])
    assert set(summary.evalset) == {"test"} and set(summary.n_configs) == {2}
    with pytest.raises(ValueError, match=r"errors.csv: no rows of evaluation set 'pretraining' \(it holds "
                                         r"\['test', 'test_seen'\]\).*--forcerun evaluate_errors"):
        common.collect_runs([Paths(tmp_path / "results").errors(run, "pretraining")])
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"x": [1]}).to_csv(plain, index=False)
    with pytest.raises(ValueError, match="no evalset column"):
        common.read_selection(f"{plain}::test")
