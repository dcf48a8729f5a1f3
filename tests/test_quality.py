"""mlipft.quality: batched zero-shot errors of a foundation, raw and after an E0 refit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from mlipft import quality
from mlipft.analysis.predict import load_model, predict
from mlipft.io import read_configs, write_atomic
from mlipft.keys import ENERGY_KEY, FORCES_KEY

pytestmark = pytest.mark.slow  # every test evaluates the trained tiny_foundation


@pytest.fixture(scope="module")
def calc(tiny_foundation):
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=tiny_foundation, device="cpu", default_dtype="float64")


@pytest.fixture(scope="module")
def model(tiny_foundation):
    return load_model(tiny_foundation)


def _predict(calc, atoms_list):
    energies, forces = [], []
    for atoms in atoms_list:
        a = atoms.copy()
        a.calc = calc
        energies.append(a.get_potential_energy())
        forces.append(a.get_forces())
    return np.array(energies), forces


def test_batched_errors_match_a_calculator_loop(tiny_data, tiny_foundation, calc):
    frame = quality.evaluate(tiny_foundation, {"test": tiny_data["test"], "corpus": tiny_data["corpus_valid"]},
                             batch_size=2)
    assert list(frame.columns) == quality.COLUMNS
    assert list(frame["dataset"]) == ["test", "corpus"]
    for name, path in (("test", tiny_data["test"]), ("corpus", tiny_data["corpus_valid"])):
        atoms_list = read_configs(path)
        e, f = _predict(calc, atoms_list)
        n = np.array([len(a) for a in atoms_list])
        de = 1000 * (e - [a.info[ENERGY_KEY] for a in atoms_list]) / n
        df = 1000 * np.concatenate([(fi - a.arrays[FORCES_KEY]).ravel() for fi, a in zip(f, atoms_list)])
        row = frame.set_index("dataset").loc[name]
        assert row["n_configs"] == len(atoms_list) and row["n_atoms"] == n.sum()
        assert row["energy_rmse_mev_per_atom"] == pytest.approx(np.sqrt(np.mean(de**2)), rel=1e-6)
        assert row["force_rmse_mev_per_A"] == pytest.approx(np.sqrt(np.mean(df**2)), rel=1e-6)
        assert row["force_mae_mev_per_A"] == pytest.approx(np.mean(np.abs(df)), rel=1e-6)
        assert row["energy_rmse_refit_mev_per_atom"] <= row["energy_rmse_mev_per_atom"] + 1e-9
    # GFN2 labels against a GFN1 foundation: the raw error is dominated by the E0 shift.
    test = frame.set_index("dataset").loc["test"]
    assert test["energy_rmse_refit_mev_per_atom"] < 0.5 * test["energy_rmse_mev_per_atom"]


def test_refit_equals_raw_when_offsets_are_optimal(tmp_path, tiny_data, tiny_foundation, model):
    """Same composition everywhere: the refit only removes the mean per-atom residual."""
    atoms_list = read_configs(tiny_data["test"]) + read_configs(tiny_data["valid"])
    e = predict(model, atoms_list).energy  # checked against a calculator above
    n = np.array([len(a) for a in atoms_list])
    eps = np.linspace(-0.02, 0.02, len(atoms_list))  # eV/atom, zero mean
    eps -= eps.mean()
    for shift, name in ((0.0, "optimal"), (0.5, "shifted")):
        for a, ei, ni, xi in zip(atoms_list, e, n, eps):
            a.info[ENERGY_KEY] = float(ei + ni * (xi + shift))
        write_atomic(tmp_path / f"{name}.xyz", atoms_list)
    frame = quality.evaluate(tiny_foundation, {k: tmp_path / f"{k}.xyz" for k in ("optimal", "shifted")})
    rows = frame.set_index("dataset")
    expected = 1000 * np.sqrt(np.mean(eps**2))
    assert rows.loc["optimal", "energy_rmse_mev_per_atom"] == pytest.approx(expected, rel=1e-8)
    assert rows.loc["optimal", "energy_rmse_refit_mev_per_atom"] == pytest.approx(expected, rel=1e-8)
    assert rows.loc["shifted", "energy_rmse_mev_per_atom"] == pytest.approx(
        1000 * np.sqrt(np.mean((eps + 0.5) ** 2)), rel=1e-8)
    assert rows.loc["shifted", "energy_rmse_refit_mev_per_atom"] == pytest.approx(expected, rel=1e-8)
    # H C Cl Br in one stoichiometry: rank 1 of 4 (offsets undetermined, the residual is not).
    assert list(rows["refit_rank"]) == [1, 1] and list(rows["n_elements"]) == [4, 4]


def _fragments(atoms: Atoms) -> list[Atoms]:
    """CH3ClBr-, CH3Cl, CH3Br, CH3 and H2 cut from one frame: four independent compositions."""
    sym = atoms.get_chemical_symbols()
    keep = {
        "all": range(len(atoms)),
        "no_br": [i for i, s in enumerate(sym) if s != "Br"],
        "no_cl": [i for i, s in enumerate(sym) if s != "Cl"],
        "ch3": [i for i, s in enumerate(sym) if s in ("C", "H")],
        "h2": [i for i, s in enumerate(sym) if s == "H"][:2],
    }
    return [atoms[list(idx)] for idx in keep.values()]


def test_refit_recovers_per_element_offsets(tmp_path, tiny_data, tiny_foundation, model):
    atoms_list = [f for a in read_configs(tiny_data["test"]) for f in _fragments(a)]
    e = predict(model, atoms_list).energy
    true = {1: -0.3, 6: 1.2, 17: 0.7, 35: -2.0}  # eV per atom of each element
    for a, ei in zip(atoms_list, e):
        a.info[ENERGY_KEY] = float(ei - sum(true[z] for z in a.numbers))
    write_atomic(tmp_path / "offsets.xyz", atoms_list)
    row = quality.evaluate(tiny_foundation, {"offsets": tmp_path / "offsets.xyz"}).iloc[0]
    assert row["energy_rmse_mev_per_atom"] > 100
    assert row["energy_rmse_refit_mev_per_atom"] < 1e-6
    assert row["refit_rank"] == 4 and row["n_elements"] == 4
    n = np.array([len(a) for a in atoms_list])
    de = (e - np.array([a.info[ENERGY_KEY] for a in atoms_list])) / n
    _, offsets, rank, zs = quality.refit_offsets(de, atoms_list)
    assert zs == [1, 6, 17, 35] and rank == 4
    np.testing.assert_allclose(offsets, [true[z] for z in zs], atol=1e-9)


def test_isolated_atoms_are_skipped(tmp_path, tiny_data, tiny_foundation):
    mixed = read_configs(tiny_data["iso_target"]) + read_configs(tiny_data["test"])
    write_atomic(tmp_path / "mixed.xyz", mixed)
    both = quality.evaluate(tiny_foundation, {"mixed": tmp_path / "mixed.xyz", "test": tiny_data["test"]})
    assert list(both["n_configs"]) == [len(read_configs(tiny_data["test"]))] * 2
    cols = [c for c in quality.COLUMNS if c != "dataset"]
    np.testing.assert_allclose(both[cols].iloc[0].to_numpy(float), both[cols].iloc[1].to_numpy(float))
    write_atomic(tmp_path / "only_iso.xyz", read_configs(tiny_data["iso_target"]))
    with pytest.raises(ValueError, match="only_iso.xyz"):
        quality.evaluate(tiny_foundation, {"iso": tmp_path / "only_iso.xyz"})


def test_unknown_elements_are_a_clear_error(tmp_path, tiny_foundation):
    nacl = Atoms("NaClH", positions=[[0, 0, 0], [2.4, 0, 0], [0, 0, 1.2]])
    nacl.info[ENERGY_KEY] = -1.0
    write_atomic(tmp_path / "salty.xyz", [nacl])
    with pytest.raises(ValueError, match=r"salty\.xyz.*\['Na'\]"):
        quality.evaluate(tiny_foundation, {"salty": tmp_path / "salty.xyz"})


def test_cli_evaluate_and_table(tmp_path, tiny_data, tiny_foundation):
    for name in ("zeta", "alpha"):
        quality.main(["evaluate", "--model", tiny_foundation, "--name", name,
                      "--dataset", f"test={tiny_data['test']}", "--dataset", f"corpus={tiny_data['corpus_valid']}",
                      "--level-of", "test=GFN2-xTB", "--device", "auto", "--output", str(tmp_path / f"{name}.csv")])
    one = pd.read_csv(tmp_path / "zeta.csv", keep_default_na=False)
    assert list(one.columns[:3]) == ["foundation", "dataset", "level"]
    assert list(one["level"]) == ["GFN2-xTB", ""]
    quality.main(["table", "--inputs", str(tmp_path / "zeta.csv"), str(tmp_path / "alpha.csv"),
                  "--output", str(tmp_path / "quality.csv")])
    table = pd.read_csv(tmp_path / "quality.csv")
    assert list(zip(table["foundation"], table["dataset"])) == [
        ("alpha", "corpus"), ("alpha", "test"), ("zeta", "corpus"), ("zeta", "test")]
    np.testing.assert_allclose(table["energy_rmse_mev_per_atom"].iloc[:2], table["energy_rmse_mev_per_atom"].iloc[2:])
    with pytest.raises(SystemExit):
        quality.main(["evaluate", "--model", tiny_foundation, "--name", "x", "--dataset", f"t={tiny_data['test']}",
                      "--level-of", "other=GFN2", "--output", str(tmp_path / "x.csv")])
    assert not (tmp_path / "x.csv").exists()


def test_learnable_filter_applies_per_dataset(tiny_data, tiny_foundation):
    """The tiny data are anions: the learnable filter (neutral, closed shell) drops them all."""
    from mlipft.quality import evaluate

    frame = evaluate(tiny_foundation, {"a": tiny_data["test"]}, filters={})
    assert frame.n_configs.tolist() == [3]
    with pytest.raises(ValueError, match="learnable filter leaves no configuration of dataset a"):
        evaluate(tiny_foundation, {"a": tiny_data["test"]}, filters={"a": "learnable"})
    with pytest.raises(ValueError, match="unknown filter 'neutral' for dataset a"):
        evaluate(tiny_foundation, {"a": tiny_data["test"]}, filters={"a": "neutral"})
