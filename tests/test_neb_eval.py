"""NEB (batched MACE vs ASE's one-image-at-a-time), SN2 geometry, per-structure errors and NEB barriers."""

import numpy as np
import pandas as pd
import pytest

from mlipft.analysis import errors, neb
from mlipft.figures import neb_profiles
from mlipft.io import read_configs, write_atomic
from mlipft.keys import ENERGY_KEY, FORCES_KEY, PRED_PREFIX
from mlipft.mini import sn2


def test_reaction_names():
    assert sn2.parse_reaction("Cl_Br") == ("Cl", "Br")
    with pytest.raises(ValueError, match="'I' is not one of"):
        sn2.parse_reaction("Cl_I")
    with pytest.raises(ValueError, match="not of the form X_Y"):
        sn2.parse_reaction("ClBr")


def test_complex_geometry_is_collinear_c3v():
    atoms = sn2.complex_geometry("F", "Cl")
    assert atoms.get_chemical_formula() == "CH3ClF" and atoms.info["charge"] == -1
    pos = atoms.positions
    assert np.allclose(pos[[0, 4, 5], :2], 0.0)  # X ... C - Y on the z axis
    dists = [atoms.get_distance(0, i) for i in (1, 2, 3)]
    assert np.allclose(dists, sn2.C_H)


def test_reaction_coordinate_is_normalised():
    images = [sn2.complex_geometry("Cl", "Cl") for _ in range(3)]
    images[1].positions[5, 2] += 1.0
    images[2].positions[5, 2] += 3.0
    assert neb.reaction_coordinate(images) == pytest.approx([0.0, 1 / 3, 1.0])


@pytest.mark.slow
def test_batched_calculator_matches_mace_calculator(tiny_foundation, tiny_data):
    from mace.calculators import MACECalculator

    configs = read_configs(tiny_data["test"])
    batched = neb.BatchedMACE(tiny_foundation)
    proxies = [batched.calculator(a) for a in configs]
    reference = MACECalculator(model_paths=tiny_foundation, device="cpu", default_dtype="float64")
    for atoms, proxy in zip(configs, proxies):
        e = proxy.get_potential_energy(atoms)
        f = proxy.get_forces(atoms)
        assert e == pytest.approx(reference.get_potential_energy(atoms), abs=1e-8)
        assert f == pytest.approx(reference.get_forces(atoms), abs=1e-8)
    assert batched.n_batches == 1  # every image evaluated in one forward pass


def _predictions(tmp_path):
    rng = np.random.default_rng(0)
    configs = read_configs_from(rng)
    for a in configs:
        a.info[PRED_PREFIX + "energy"] = a.info[ENERGY_KEY] + 0.006 * len(a)  # +6 meV/atom
        a.arrays[PRED_PREFIX + "forces"] = a.arrays[FORCES_KEY] - 0.01  # -10 meV/A
    path = tmp_path / "pred.xyz"
    write_atomic(path, configs)
    return path


def read_configs_from(rng):
    out = []
    for _ in range(4):
        a = sn2.complex_geometry("Cl", "Br")
        a.info[ENERGY_KEY] = float(rng.normal())
        a.arrays[FORCES_KEY] = rng.normal(size=(len(a), 3))
        out.append(a)
    return out


def test_errors_in_mev(tmp_path):
    frame = errors.per_structure(_predictions(tmp_path))
    table = errors.summary(frame.assign(strategy="naive"), ["strategy"])
    values = dict(zip(table.metric, table.value))
    assert values["energy_rmse"] == pytest.approx(6.0) and values["energy_mae"] == pytest.approx(6.0)
    assert values["force_rmse"] == pytest.approx(10.0) and values["force_mae"] == pytest.approx(10.0)
    assert list(table.metric) == list(errors.METRICS) and (table.strategy == "naive").all()


def test_errors_without_predictions_name_the_file(tmp_path):
    path = tmp_path / "plain.xyz"
    write_atomic(path, read_configs_from(np.random.default_rng(1)))
    with pytest.raises(ValueError, match="plain.xyz: frame 0: no"):
        errors.per_structure(path)


def test_neb_barriers_per_run_and_reaction():
    rows = []
    for source, peak in (("reference", 0.4), ("model", 0.5)):
        for i, e in enumerate([0.0, peak, 0.1]):
            rows.append({"strategy": "naive", "seed": "0", "reaction": "Cl_Cl", "source": source, "image": i,
                         "reaction_coordinate": i / 2, "energy_ev": e, "converged": True})
    barriers = neb_profiles.barriers(pd.DataFrame(rows))
    assert barriers.strategy.tolist() == ["naive"] and barriers.seed.tolist() == ["0"]
    assert barriers.barrier_reference_ev.iloc[0] == pytest.approx(0.4)
    assert barriers.error_ev.iloc[0] == pytest.approx(0.1)


@pytest.mark.slow
def test_evaluate_run_matches_mace_eval_configs(tiny_foundation, tiny_data, tmp_path):
    """`python -m mlipft.analysis.errors --model ... --evalset NAME=FILE ...` (mace's eval_configs in
    process, device auto) writes the table of mace_eval_configs' own predictions, one block per
    set in the order given, and leaves no predictions behind."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    run = json.dumps({"strategy": "naive", "seed": "0"})
    exe = Path(sys.executable).with_name("mace_eval_configs")
    subprocess.run([str(exe), "--configs", tiny_data["test"], "--model", tiny_foundation,
                    "--output", str(tmp_path / "ref.xyz"), "--default_dtype", "float64", "--device", "cpu",
                    "--batch_size", "32", "--head", "Default"], check=True, capture_output=True)
    errors.main(["--predictions", str(tmp_path / "ref.xyz"), "--run", run, "--evalset", "test",
                 "--output", str(tmp_path / "ref.csv")])
    out = tmp_path / "run" / "errors.csv"
    errors.main(["--model", tiny_foundation, "--evalset", f"test={tiny_data['test']}",
                 "--evalset", f"again={tiny_data['test']}", "--head", "test=Default", "--default-dtype", "float64",
                 "--device", "auto", "--batch-size", "32", "--run", run, "--output", str(out)])
    ref = pd.read_csv(tmp_path / "ref.csv")
    table = pd.read_csv(out)
    assert table.evalset.tolist() == ["test"] * len(ref) + ["again"] * len(ref)
    pd.testing.assert_frame_equal(table[table.evalset == "test"].reset_index(drop=True), ref)
    pd.testing.assert_frame_equal(table[table.evalset == "again"].drop(columns="evalset").reset_index(drop=True),
                                  ref.drop(columns="evalset"))
    assert [p.name for p in out.parent.iterdir()] == ["errors.csv"]  # no predictions, no temporary file


def test_evaluation_arguments_are_checked_before_mace_is_imported(tmp_path):
    with pytest.raises(ValueError, match=r"--head for evaluation sets not evaluated: \['tset'\]"):
        errors.evaluate("m.model", {"test": "t.xyz"}, {}, tmp_path / "e.csv", heads={"tset": "pt_head"})
    with pytest.raises(ValueError, match="no evaluation set"):
        errors.evaluate("m.model", {}, {}, tmp_path / "e.csv")
    with pytest.raises(SystemExit, match="--evalset 'test' is not of the form NAME=VALUE"):
        errors.main(["--model", "m.model", "--evalset", "test", "--run", "{}", "--output", str(tmp_path / "e.csv")])
    with pytest.raises(SystemExit, match="--evalset 'test' given twice"):
        errors.main(["--model", "m.model", "--evalset", "test=a.xyz", "--evalset", "test=b.xyz", "--run", "{}",
                     "--output", str(tmp_path / "e.csv")])
    assert not list(tmp_path.iterdir())


def test_neb_window_follows_the_reference_not_a_blown_up_model():
    rows = []
    for i, (ref, model) in enumerate([(0.0, 0.0), (0.4, 3000.0), (0.1, -2.0)]):
        for source, e in (("reference", ref), ("model", model)):
            rows.append({"strategy": "naive", "reaction": "Cl_Cl", "source": source, "image": i,
                         "reaction_coordinate": i / 2, "energy_ev": e})
    lo, hi = neb_profiles.window(pd.DataFrame(rows))
    assert lo == pytest.approx(-0.6) and hi == pytest.approx(1.2)
