"""Kind cross_phase: single-phase fine-tunes evaluated on every phase (the paper's Fig. 5 and 18),
its tables from per-structure errors at real run paths, its matrices, plot and checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlipft import figures
from mlipft.config import grid
from mlipft.figures import cross_phase
from mlipft.paths import Paths, Run
from conftest import write_errors

PHASES = ("Ih", "II", "VI", "VIII")
STRATEGIES = {"naive": "Naive"}


def _spec(axes=None, evalsets=("test_Ih", "test_VIII"), entry=None):
    base = {"benchmark": ["ice"], "trainset": ["train_Ih", "train_VIII"], "foundation": ["mpa"],
            "strategy": ["naive"], "e0s": ["estimated"], "fraction": ["1"], "variant": ["base"], "seed": ["0"]}
    return {"figure": "x", "kind": "cross_phase", "description": "Ice: naive fine-tuning on one phase, tested on each",
            "entry": entry or {}, "axes": {**base, **(axes or {})}, "labels": STRATEGIES, "evalsets": list(evalsets),
            "world": "mini", "scale": "smoke", "variant_labels": {"base": "as registered"},
            "reference_label": "reference"}


def test_phase_is_the_set_name_without_its_prefix():
    assert cross_phase.phase("train_Ih") == "Ih" and cross_phase.phase("test_VIII") == "VIII"
    assert cross_phase.phase("train_ice_II") == "ice_II"  # only the prefix goes
    assert cross_phase.phase("train") == "train" and cross_phase.phase("train_") == "train_"
    assert cross_phase.phase("heldout_Ih") == "heldout_Ih"
    assert cross_phase.phase("valid_Ih") == "valid_Ih"


def _run_files(tmp_path, run: Run, evalsets: dict[str, tuple[list, list]], improving=False):
    """Per-structure errors (energy errors, force squared sums of 9 components each), trainable.json
    and loss curves of one run, at its real paths."""
    p = Paths(tmp_path / "results")
    errors = []
    for evalset, (de, sq) in evalsets.items():
        errors.append(write_errors(p.errors(run, evalset), pd.DataFrame(
            {"evalset": evalset, "index": range(len(de)), "n_atoms": 3, "energy_error": de,
             "force_sq_sum": sq, "force_abs_sum": np.sqrt(sq), "n_force_components": 9})))
    trainable = Path(p.run_file(run, "trainable"))
    trainable.write_text(json.dumps({"trainable": 10, "total": 10, "fraction": 1.0, "heads": ["Default"]}))
    curve = [1.0 - 0.04 * e for e in range(20)] if improving else [1.0 / (1 + e) ** 3 + 0.5 for e in range(20)]
    loss = Path(p.run_file(run, "loss_curves"))
    pd.DataFrame({"epoch": range(20), "head": "Default", "split": "valid", "loss": curve}).to_csv(loss, index=False)
    return errors, str(trainable), str(loss)


def test_collect_from_run_paths_gives_the_matrix_of_seed_means(tmp_path, roundtrip):
    """Cell (train_Ih, test_VIII) is the mean over seeds of each seed's force RMSE over every
    force component of the test set; runs are told apart by their path only."""
    spec = _spec({"e0s": ["estimated", "average"], "seed": ["0", "1"]})
    inputs = {"errors": [], "trainable": [], "loss_curves": []}
    for trainset in spec["axes"]["trainset"]:
        for e0s in spec["axes"]["e0s"]:
            for seed in (0, 1):
                run = Run("ice", trainset, 1.0, "mpa", "naive", e0s, "base", seed)
                # seed 0 on test_VIII: force errors 2 and 4 meV/Å; seed 1: 1 meV/Å; test_Ih: 5 everywhere
                sq = [9 * 4.0, 9 * 16.0] if seed == 0 else [9 * 1.0, 9 * 1.0]
                sq = sq if e0s == "estimated" else [9 * 49.0] * 2  # E0s average: 7 meV/Å
                sets = {"test_Ih": ([1.0, -1.0], [9 * 25.0] * 2), "test_VIII": ([2.0, 0.0], sq)}
                files = _run_files(tmp_path, run, sets, improving=(trainset, e0s, seed) == ("train_VIII", "average", 1))
                for role, f in zip(("errors", "trainable", "loss_curves"), files):
                    inputs[role] += f if role == "errors" else [f]
    tables = roundtrip(cross_phase.collect(inputs, spec), tmp_path)
    errors = tables["errors"]
    assert set(cross_phase.TABLES) == set(tables)
    assert {"trainset", "evalset", "metric", "value", "n_configs", "e0s", "seed"} <= set(errors.columns)
    assert len(errors[errors.metric == "force_rmse"]) == 2 * 2 * 2 * 2  # trainsets x e0s x seeds x evalsets

    mats = cross_phase.matrices(errors, spec)
    assert list(mats) == ["E0s estimated", "E0s average"]
    m = mats["E0s estimated"]
    assert list(m.index) == ["train_Ih", "train_VIII"] and list(m.columns) == ["test_Ih", "test_VIII"]
    assert m.loc["train_Ih", "test_VIII"] == pytest.approx((np.sqrt((4.0 + 16.0) / 2) + 1.0) / 2)
    assert m.loc["train_VIII", "test_Ih"] == pytest.approx(5.0)
    assert mats["E0s average"].loc["train_Ih", "test_VIII"] == pytest.approx(7.0)
    energy = cross_phase.matrices(errors, spec, "energy_rmse")["E0s estimated"]
    assert energy.loc["train_Ih", "test_VIII"] == pytest.approx(np.sqrt(2.0))

    marks, note = cross_phase.marks(tables["trainable"], spec)
    assert marks == {("E0s average", "train_VIII"): " †"} and "not converged" in note

    out = [str(tmp_path / "cp.png"), str(tmp_path / "cp.pdf")]
    cross_phase.plot(tables, spec, out)
    assert (tmp_path / "cp.png").stat().st_size > 10_000


def _tables(settings_axis: str, values: list[str], seeds=(0, 1)):
    """Tidy errors of 4 training phases x 4 test phases x settings x seeds: in-phase cells about
    20 meV/Å, the others up to some hundreds (a log colour scale)."""
    rng = np.random.default_rng(0)
    rows, train = [], []
    for k, value in enumerate(values):
        for i, tp in enumerate(PHASES):
            for seed in seeds:
                keys = {"benchmark": "ice", "trainset": f"train_{tp}", "fraction": 1, "foundation": "omat_small",
                        "strategy": "naive", "e0s": "estimated", "variant": "base", "seed": seed,
                        settings_axis: value}
                train.append({**keys, "trainable_fraction": 1.0, "convergence": "improving" if (i, k) == (2, 1)
                              else "plateau", "improvement": 0.05, "epochs": 30})
                for j, ep in enumerate(PHASES):
                    base = 20.0 if i == j else 40.0 * (1 + abs(i - j)) ** 1.5
                    for metric, scale in (("force_rmse", 1.0), ("energy_rmse", 0.1)):
                        rows.append({**keys, "evalset": f"test_{ep}", "metric": metric, "n_configs": 40,
                                     "value": scale * base * (1 + 0.3 * k) * rng.uniform(0.9, 1.1), "n_train": 23})
    return {"errors": pd.DataFrame(rows), "trainable": pd.DataFrame(train)}


@pytest.mark.parametrize("axis,values,metric", [("e0s", ["estimated", "average"], None),
                                                ("foundation", ["omat_small", "omat_medium"], "energy_rmse")])
def test_plot_four_phases_two_settings(tmp_path, axis, values, metric, roundtrip):
    """Fig. 5 (E0 modes) and Fig. 18 (foundations): two 4x4 matrices side by side."""
    entry = {"cross_phase_metric": metric} if metric else {}
    spec = _spec({"trainset": [f"train_{p}" for p in PHASES], axis: values, "seed": ["0", "1"]},
                 [f"test_{p}" for p in PHASES], entry)
    tables = roundtrip(_tables(axis, values), tmp_path)
    mats = cross_phase.matrices(tables["errors"], spec)
    assert len(mats) == 2 and all(m.shape == (4, 4) and m.notna().all().all() for m in mats.values())
    out = [str(tmp_path / f"cp_{axis}.png"), str(tmp_path / f"cp_{axis}.pdf")]
    cross_phase.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 20_000 and Path(out[1]).stat().st_size > 5_000


def test_plot_marks_missing_cells(tmp_path):
    """A training/test pair without values is drawn as 'no data', not dropped."""
    spec = _spec({"trainset": [f"train_{p}" for p in PHASES]}, [f"test_{p}" for p in PHASES])
    tables = _tables("e0s", ["estimated"], seeds=(0,))
    errors = tables["errors"]
    tables["errors"] = errors[~((errors.trainset == "train_II") & (errors.evalset == "test_VI"))]
    m = cross_phase.matrices(tables["errors"], spec)[""]
    assert np.isnan(m.loc["train_II", "test_VI"]) and m.drop(index="train_II").notna().all().all()
    out = [str(tmp_path / "missing.png"), str(tmp_path / "missing.pdf")]
    cross_phase.plot(tables, spec, out)
    assert Path(out[0]).exists() and Path(out[1]).exists()


def _check(entry):
    config = {"figures": {"x": {"kind": "cross_phase", "description": "d", "benchmark": "ice", "strategies": "naive",
                                "e0s": "estimated", "fractions": [1.0], "seeds": [0], **entry}},
              "main_foundation": "mpa"}
    fig = config["figures"]["x"]
    return cross_phase.check(config, "x", fig, grid(config, "x"))


def test_check_needs_two_trainsets_and_two_evalsets():
    phases = {"trainset": [f"train_{p}" for p in PHASES], "evalsets": [f"test_{p}" for p in PHASES]}
    assert _check(phases) is None
    assert _check({**phases, "cross_phase_metric": "energy_rmse"}) is None
    assert _check({**phases, "trainset": "train_Ih"}).startswith(".trainset: ")
    assert _check({"evalsets": phases["evalsets"]}).startswith(".trainset: ")  # unset: the one set `train`
    assert _check({**phases, "evalsets": ["test_Ih"]}).startswith(".evalsets: ")
    assert _check({"trainset": phases["trainset"]}).startswith(".evalsets: ")  # unset: the one set `test`
    assert _check({**phases, "fractions": [0.5, 1.0]}).startswith(".fractions: ")
    assert _check({**phases, "cross_phase_metric": "stress"}).startswith(".cross_phase_metric: ")


def test_is_a_kind():
    assert figures.kind("cross_phase") is cross_phase
    assert set(cross_phase.TABLES) == {"errors", "trainable"}
