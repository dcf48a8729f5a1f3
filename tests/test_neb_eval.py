"""NEB (batched MACE vs ASE's one-image-at-a-time), SN2 geometry, evaluation and tables."""

import numpy as np
import pandas as pd
import pytest

from mlipft import evaluate, neb, tables
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
    values = evaluate.errors(_predictions(tmp_path))
    assert values["energy_rmse"] == pytest.approx(6.0) and values["energy_mae"] == pytest.approx(6.0)
    assert values["force_rmse"] == pytest.approx(10.0) and values["force_mae"] == pytest.approx(10.0)
    frame = evaluate.tidy(values, {"strategy": "naive"}, "test")
    assert list(frame.metric) == list(evaluate.METRICS) and (frame.strategy == "naive").all()


def test_errors_without_predictions_name_the_file(tmp_path):
    path = tmp_path / "plain.xyz"
    write_atomic(path, read_configs_from(np.random.default_rng(1)))
    with pytest.raises(ValueError, match="plain.xyz: configuration without"):
        evaluate.errors(path)


def test_tables_attach_run_keys_and_barriers(tmp_path):
    run = tmp_path / "runs/sn2/train_rp/f1/mini/naive/e0-estimated/seed0"
    run.mkdir(parents=True)
    rows = []
    for source, peak in (("reference", 0.4), ("model", 0.5)):
        for i, e in enumerate([0.0, peak, 0.1]):
            rows.append({"reaction": "Cl_Cl", "source": source, "image": i, "reaction_coordinate": i / 2,
                         "energy_ev": e, "converged": True})
    pd.DataFrame(rows).to_csv(run / "neb.csv", index=False)
    table = tables.collect([run / "neb.csv"])
    assert (table.strategy == "naive").all() and (table.e0s == "estimated").all() and (table.seed == "0").all()
    barriers = tables.neb_barriers(table)
    assert barriers.error_ev.iloc[0] == pytest.approx(0.1)


@pytest.mark.slow
def test_evaluate_run_matches_mace_eval_configs(tiny_foundation, tiny_data, tmp_path):
    """`python -m mlipft.evaluate run` (mace's eval_configs in process, device auto) writes the
    predictions mace_eval_configs writes and the same table as the two-step pipeline."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    run = json.dumps({"strategy": "naive", "seed": "0"})
    exe = Path(sys.executable).with_name("mace_eval_configs")
    subprocess.run([str(exe), "--configs", tiny_data["test"], "--model", tiny_foundation,
                    "--output", str(tmp_path / "ref.xyz"), "--default_dtype", "float64", "--device", "cpu",
                    "--batch_size", "32", "--head", "Default"], check=True, capture_output=True)
    evaluate.main(["--predictions", str(tmp_path / "ref.xyz"), "--run", run, "--testset", "test",
                   "--output", str(tmp_path / "ref.csv")])
    evaluate.main(["run", "--configs", tiny_data["test"], "--model", tiny_foundation,
                   "--predictions", str(tmp_path / "pred.xyz"), "--default-dtype", "float64", "--device", "auto",
                   "--batch-size", "32", "--head", "Default", "--run", run, "--testset", "test",
                   "--output", str(tmp_path / "errors.csv")])
    assert (tmp_path / "pred.xyz").read_text() == (tmp_path / "ref.xyz").read_text()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "errors.csv"), pd.read_csv(tmp_path / "ref.csv"))
    assert not list(tmp_path.glob(".*.tmp*"))


def test_neb_window_follows_the_reference_not_a_blown_up_model(tmp_path):
    import pandas as pd

    from mlipft.plots import neb_window, plot_neb_profiles

    rows = []
    for i, (ref, model) in enumerate([(0.0, 0.0), (0.4, 3000.0), (0.1, -2.0)]):
        for source, e in (("reference", ref), ("model", model)):
            rows.append({"strategy": "naive", "reaction": "Cl_Cl", "source": source, "image": i,
                         "reaction_coordinate": i / 2, "energy_ev": e})
    profiles = pd.DataFrame(rows)
    lo, hi = neb_window(profiles)
    assert lo == pytest.approx(-0.6) and hi == pytest.approx(1.2)
    barriers = pd.DataFrame([{"strategy": "naive", "reaction": "Cl_Cl", "error_ev": 2999.6}])
    out = [str(tmp_path / "f.png")]
    plot_neb_profiles(profiles, barriers, {"naive": "Naive"}, out, "t", "ref")
    assert (tmp_path / "f.png").stat().st_size > 5000
