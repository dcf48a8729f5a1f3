"""Random structure search for PES holes (mlipft.analysis.rss): the parameters and formula units,
deterministic PyXtal generation, the four criteria on hand-made tables and structures (each at
its threshold edges; the energy floors; the reference shift), relaxations with toy ASE
calculators (Lennard-Jones argon compresses at 50 GPa; an inverted Lennard-Jones with a hole at
short range, a calculator that fails and one that returns NaN give flagged rows, never an
exception), the ``model`` command line with an untrained MACE as model and reference, and a
tiny GFN2-xTB reference."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import CalculationFailed
from ase.calculators.lj import LennardJones
from ase.formula import Formula
from mlipft.analysis import rss

# ----------------------------------------------------------------------------- parameters and units


@pytest.mark.parametrize("params, key", [
    ({"bogus": 1}, "bogus"),
    ({"fmax": 0}, "fmax"),
    ({"cycles": 1.5}, "cycles"),
    ({"max_atoms": 3}, "max_atoms"),
    ({"pressures_gpa": []}, "pressures_gpa"),
    ({"pressures_gpa": [0.1, "high"]}, "pressures_gpa[1]"),
    ({"volume_ratio_max": 0.1}, "volume_ratio_max"),
    ({"pair_floors_angstrom": {"H-Xy": 0.5}}, "pair_floors_angstrom"),
    ({"pair_floors_angstrom": {"H-H": -1}}, "pair_floors_angstrom[H-H]"),
    ({"units": "NaCl"}, "units"),
    ({"xtb_electronic_temperature_k": 0}, "xtb_electronic_temperature_k"),
])
def test_bad_params_name_the_key(params, key):
    with pytest.raises(rss.ParamsError, match=re.escape(key)):
        rss.load_params(params)
    with pytest.raises(SystemExit, match=re.escape(key)):
        rss.main(["generate", "--params", json.dumps(params), "--output", "never.extxyz"])


@pytest.mark.parametrize("unit, elements, why", [
    ("OH", None, "9 electrons"),
    ("Na", None, "odd"),
    ("Xx2", None, "unknown element"),
    ("H2O!", None, "not a chemical formula"),
    ("NaCl", ["H", "O"], r"outside the elements"),
])
def test_bad_units_are_named(unit, elements, why):
    with pytest.raises(rss.ParamsError, match=re.escape(repr(unit)) + ".*" + why):
        rss.parse_unit(unit, elements)
    elements_option = ["--elements", *elements] if elements else []
    with pytest.raises(SystemExit, match=re.escape(repr(unit))):
        rss.main(["generate", "--params", json.dumps({"units": ["H2O", unit]}), *elements_option,
                  "--output", "never.extxyz"])


def test_compositions_combine_units_within_the_atom_bounds():
    """Distinct element counts of integer combinations of the units (NaOH + HCl is NaCl + H2O)."""
    found = rss.candidate_compositions({"units": ["NaCl", "H2O"], "min_atoms": 4, "max_atoms": 6})
    assert found == [{"Cl": 2, "Na": 2}, {"Cl": 3, "Na": 3}, {"H": 2, "O": 1, "Na": 1, "Cl": 1}, {"H": 4, "O": 2}]
    five = rss.candidate_compositions({"units": ["NaCl", "H2O", "NaOH", "HCl"], "min_atoms": 5, "max_atoms": 5})
    assert sorted(sorted(c.items()) for c in five) == sorted([
        sorted({"Na": 1, "Cl": 1, "H": 2, "O": 1}.items()), sorted({"H": 3, "Cl": 1, "O": 1}.items()),
        sorted({"Na": 2, "O": 1, "H": 1, "Cl": 1}.items())])
    with pytest.raises(rss.ParamsError, match="only 3 compositions"):
        rss.draw_compositions({"units": ["NaCl", "H2O", "NaOH", "HCl"], "min_atoms": 5, "max_atoms": 5,
                               "n_compositions": 4})


# ----------------------------------------------------------------------------- generation

SMALL = {"units": ["NaCl", "H2O", "HCl"], "n_compositions": 2, "structures_per_composition": 2, "min_atoms": 4,
         "max_atoms": 6}


def test_generation_is_deterministic_per_seed(tmp_path):
    """Same seed: the same crystals and a byte-identical file; the global random states are
    left as they were; another seed: other crystals."""
    before = np.random.get_state()[1].copy()
    one, two = rss.generate(SMALL, seed=3), rss.generate(SMALL, seed=3)
    assert np.array_equal(np.random.get_state()[1], before)
    assert len(one) == 4 and [a.info for a in one] == [a.info for a in two]
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell, b.cell)
        assert np.array_equal(a.numbers, b.numbers) and a.pbc.all()
    allowed = {Formula.from_dict(c).format("hill") for c in rss.candidate_compositions(SMALL)}
    assert [a.info["structure_id"] for a in one] == [0, 1, 2, 3]
    for a in one:
        assert a.info["composition"] == a.get_chemical_formula(mode="hill") and a.info["composition"] in allowed
        assert 4 <= len(a) <= 6 and 2 <= a.info["spacegroup"] <= 230 and a.info["seed"] == 3
    assert len({a.info["composition"] for a in one}) == 2
    other = rss.generate(SMALL, seed=4)
    assert any(len(a) != len(b) or not np.allclose(a.positions, b.positions) for a, b in zip(one, other, strict=True))
    files = [tmp_path / "a.extxyz", tmp_path / "b.extxyz"]
    for f in files:
        rss.main(["generate", "--elements", "Na", "Cl", "H", "O", "--params", json.dumps(SMALL), "--seed", "3",
                  "--output", str(f)])
    assert files[0].read_bytes() == files[1].read_bytes()
    back = rss.read_configs(files[0])
    assert [a.info["composition"] for a in back] == [a.info["composition"] for a in one]
    assert np.allclose(back[2].positions, one[2].positions)


# ----------------------------------------------------------------------------- the criteria


def _row(**changes) -> dict:
    row = {"structure_id": 0, "composition": "Cl2Na2", "n_atoms": 4, "pressure_gpa": 0.1, "cycle": 0,
           "status": "converged", "message": "", "steps": 10, "energy_ev": -10.0, "enthalpy_per_atom_ev": -2.5,
           "volume_per_atom_angstrom3": 10.0, "volume_ratio": 1.0, "min_distance_angstrom": 2.0,
           "min_distance_ratio": 1.5, "closest_pair": "Na-Cl", "reference_energy_ev": -10.0,
           "energy_diff_ev_per_atom": np.nan, "force_rmse_ev_per_angstrom": 0.1,
           "floor_enthalpy_per_atom_ev": np.nan, "source": "model"}
    row.update(changes)
    return row


def _flags(rows, floors=None, params=None) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    for c in rss.COLUMNS:
        if c not in table:
            table[c] = np.nan
    return rss.flags(table[list(rss.COLUMNS)], floors, params)


def test_distance_cell_and_disagreement_at_their_edges():
    params = {"disagreement_energy_ev_per_atom": 0.25}  # binary-exact edges
    t = _flags([_row(), _row(min_distance_ratio=1.0), _row(min_distance_ratio=0.999), _row(min_distance_ratio=np.nan),
                _row(volume_per_atom_angstrom3=3.0), _row(volume_per_atom_angstrom3=2.999),
                _row(volume_per_atom_angstrom3=80.0), _row(volume_per_atom_angstrom3=80.01),
                _row(volume_ratio=0.2), _row(volume_ratio=0.199), _row(volume_ratio=5.0), _row(volume_ratio=5.01),
                _row(reference_energy_ev=-11.0), _row(reference_energy_ev=-11.0625), _row(reference_energy_ev=-8.9375),
                _row(force_rmse_ev_per_angstrom=2.0), _row(force_rmse_ev_per_angstrom=2.001),
                _row(reference_energy_ev=np.nan)], params=params)
    assert t.flag_distance.tolist()[:3] == [0, 0, 1] and np.isnan(t.flag_distance[3])
    assert t.flag_cell.tolist()[4:12] == [0, 1, 0, 1, 0, 1, 0, 1] and t.flag_cell[0] == 0
    assert t.flag_disagreement.tolist()[12:17] == [0, 1, 1, 0, 1] and t.flag_disagreement[0] == 0
    assert t.energy_diff_ev_per_atom[12] == 0.25 and t.energy_diff_ev_per_atom[14] == -0.265625
    assert np.isnan(t.flag_disagreement[17]) and t.flagged[17] == 0
    assert t.flag_energy.isna().all()  # no floors: not evaluable
    expected = t[[f"flag_{c}" for c in rss.CRITERIA]].eq(1).any(axis=1).astype(float)
    assert t.flagged.tolist() == expected.tolist()


def test_failed_cycles_are_flagged_by_cell_only():
    t = _flags([_row(status="diverged", min_distance_ratio=0.1), _row(status="error", volume_per_atom_angstrom3=np.nan)],
               pd.DataFrame({"composition": ["Cl2Na2"], "pressure_gpa": [0.1], "floor_enthalpy_per_atom_ev": [0.0]}))
    assert t.flag_cell.tolist() == [1, 1] and t.flagged.tolist() == [1, 1]
    assert t.flag_distance.isna().all() and t.flag_energy.isna().all() and t.flag_disagreement.isna().all()


def test_energy_floor_from_converged_reference_rows_and_the_shift(caplog):
    """The floor: the lowest enthalpy per atom of the converged reference rows of the composition
    and pressure (unconverged and diverged ones ignored), plus the shift per atom; flagged strictly
    more than the margin below it; no floor: NaN, logged."""
    reference = pd.DataFrame([
        _row(enthalpy_per_atom_ev=-2.0), _row(enthalpy_per_atom_ev=-1.5, structure_id=1),
        _row(enthalpy_per_atom_ev=-5.0, status="unconverged"), _row(enthalpy_per_atom_ev=-9.0, status="diverged"),
        _row(enthalpy_per_atom_ev=-1.0, pressure_gpa=50.0, status="unconverged"),
        _row(composition="H2O", enthalpy_per_atom_ev=-4.0)])
    floors = rss.floors(reference)
    assert floors.to_dict("records") == [
        {"composition": "Cl2Na2", "pressure_gpa": 0.1, "floor_enthalpy_per_atom_ev": -2.0},
        {"composition": "H2O", "pressure_gpa": 0.1, "floor_enthalpy_per_atom_ev": -4.0}]
    shifted = rss.floors(reference, {"Na": 0.5, "Cl": -0.25, "O": 3.0})
    assert shifted.floor_enthalpy_per_atom_ev.tolist() == [-2.0 + 0.125, -4.0 + 1.0]
    model = [_row(enthalpy_per_atom_ev=-2.5), _row(enthalpy_per_atom_ev=-2.5001), _row(pressure_gpa=50.0),
             _row(composition="H2O", enthalpy_per_atom_ev=-4.4)]
    with caplog.at_level(logging.WARNING, logger="mlipft.analysis.rss"):
        t = _flags(model, floors)
    assert t.floor_enthalpy_per_atom_ev.tolist()[:2] == [-2.0, -2.0] and np.isnan(t.floor_enthalpy_per_atom_ev[2])
    assert t.flag_energy[0] == 0 and t.flag_energy[1] == 1 and np.isnan(t.flag_energy[2]) and t.flag_energy[3] == 0
    assert "Cl2Na2 at 50 GPa" in caplog.text
    assert _flags(model, floors, {"energy_margin_ev_per_atom": 1.0}).flag_energy.tolist()[:2] == [0, 0]
    # the shift puts the H2O floor at -4 + 3/3 = -3 eV/atom: -4.4 lies more than 0.5 below it
    assert _flags(model, shifted).flag_energy[3] == 1
    assert _flags(model, shifted, {"energy_margin_ev_per_atom": 2.0}).flag_energy[3] == 0


class _Constant(LennardJones):
    """A calculator whose energy is 1 eV per atom and forces zero."""

    def calculate(self, atoms=None, properties=None, system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.results["energy"] = float(len(self.atoms))
        self.results["forces"] = np.zeros((len(self.atoms), 3))


def test_reference_shift_and_single_points():
    atoms = Atoms("NaClNaCl", positions=np.eye(4, 3) * 2.5, cell=[6, 6, 6], pbc=True)
    energy, forces, message = rss.single_point(atoms, _Constant(), {"Na": 0.5, "Cl": -2.0})
    assert energy == 4.0 + 2 * 0.5 - 2 * 2.0 and np.all(forces == 0) and message == ""
    assert rss.single_point(atoms, _Constant())[0] == 4.0
    assert rss.load_shift('{"Na": 1.5}') == {"Na": 1.5} and rss.load_shift(None) == {}
    with pytest.raises(rss.ParamsError, match="'Qq'"):
        rss.load_shift({"Qq": 1.0})
    with pytest.raises(rss.ParamsError, match=r"shift\[Na\]"):
        rss.load_shift({"Na": "x"})


def test_distances_against_pair_floors():
    """The floor is floor_factor x the covalent radii sum or the pair's override (either order);
    an atom's own periodic image counts."""
    r_h = rss.covalent_radii[1]
    for factor in (1.001, 0.999):
        d = 2 * 0.5 * r_h * factor
        h2 = Atoms("H2", positions=[[0, 0, 0], [d, 0, 0]], cell=[8, 8, 8], pbc=True)
        distance, ratio, pair = rss.closest_contact(h2)
        assert distance == pytest.approx(d) and ratio == pytest.approx(factor) and pair == "H-H"
        assert (_flags([_row(min_distance_ratio=ratio)]).flag_distance[0] == 1) == (factor < 1)
    nacl = Atoms("ClNa", positions=[[0, 0, 0], [1.2, 0, 0]], cell=[8, 8, 8], pbc=True)
    assert rss.closest_contact(nacl, {"pair_floors_angstrom": {"Cl-Na": 1.5}})[1:] == (pytest.approx(0.8), "Na-Cl")
    lone = Atoms("H", positions=[[0, 0, 0]], cell=[0.5, 5, 5], pbc=True)
    assert rss.closest_contact(lone)[:2] == (pytest.approx(0.5), pytest.approx(0.5 / (2 * 0.5 * r_h)))


def test_structure_flags_and_fractions():
    rows = [_row(structure_id=0, cycle=0, min_distance_ratio=1.5), _row(structure_id=0, cycle=1, min_distance_ratio=0.5),
            _row(structure_id=1, cycle=0), _row(structure_id=1, cycle=1, status="diverged"),
            _row(structure_id=2, cycle=0, reference_energy_ev=np.nan, force_rmse_ev_per_angstrom=np.nan),
            _row(structure_id=0, cycle=0, pressure_gpa=50.0)]
    floors = pd.DataFrame({"composition": ["Cl2Na2"], "pressure_gpa": [0.1], "floor_enthalpy_per_atom_ev": [-2.5]})
    per = rss.structure_flags(_flags(rows, floors))
    assert per[["structure_id", "pressure_gpa", "n_cycles"]].values.tolist() == [[0, 0.1, 2], [0, 50.0, 1], [1, 0.1, 2],
                                                                                 [2, 0.1, 1]]
    assert per.distance.tolist() == [1, 0, 0, 0] and per.cell.tolist() == [0, 0, 1, 0]
    assert per.energy.tolist()[0] == 0 and np.isnan(per.energy[1])
    assert per.disagreement.tolist()[:3] == [0, 0, 0] and np.isnan(per.disagreement[3])
    assert per.flagged.tolist() == [1, 0, 1, 0]
    fr = rss.flagged_fractions(_flags(rows, floors)).set_index("pressure_gpa")
    assert fr.loc[0.1, "n_structures"] == 3 and fr.loc[0.1, "flagged"] == pytest.approx(2 / 3)
    assert fr.loc[0.1, "distance"] == pytest.approx(1 / 3) and fr.loc[0.1, "n_evaluated_disagreement"] == 2
    assert fr.loc[50.0, "energy"] == 0 and fr.loc[50.0, "n_evaluated_energy"] == 0


def test_table_round_trip_and_a_wrong_file(tmp_path):
    table = _flags([_row(), _row(status="error", message="SCF, not converged", min_distance_ratio=np.nan)])
    rss._write(table, tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text().splitlines()
    assert text[0] == ",".join(rss.COLUMNS) and text[1].endswith(",0,,0,0,0,model")
    back = rss.read_table(tmp_path / "t.csv")
    assert back.message.tolist() == ["", "SCF, not converged"] and np.isnan(back.flag_distance[1])
    pd.testing.assert_frame_equal(rss.flags(back), back, check_dtype=False)
    table.drop(columns=["volume_ratio", "flagged"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad\.csv.*\['volume_ratio', 'flagged'\]"):
        rss.read_table(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------- relaxations with toy calculators


def _argon():
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True)
    atoms.info.update(structure_id=7, seed=1, composition="Ar4")
    return atoms


def test_lennard_jones_argon_relaxes_and_compresses_at_50_gpa():
    lj = LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True)
    params = {"cycles": 2, "pressures_gpa": [0.1, 50.0]}
    table = rss.run_rss([_argon()], lj, params, source="lj")
    assert table.status.tolist() == ["converged"] * 4 and table.cycle.tolist() == [0, 1, 0, 1]
    assert (table.structure_id == 7).all() and set(table.source) == {"lj"}
    low, high = (table[table.pressure_gpa == p].volume_per_atom_angstrom3 for p in (0.1, 50.0))
    assert high.max() < 0.6 * low.min()
    assert table.flagged.tolist() == [0] * 4 and table.flag_energy.isna().all()
    enthalpy = table.energy_ev / 4 + table.pressure_gpa * rss.units.GPa * table.volume_per_atom_angstrom3
    assert np.allclose(table.enthalpy_per_atom_ev, enthalpy)
    assert table.steps[1] > 0  # the rattled cycle had to relax again
    again = rss.run_rss([_argon()], lj, params, source="lj")
    pd.testing.assert_frame_equal(table, again)
    # a start outside the volume bounds is relaxed (not aborted) and judged by its final volume
    dense = rss.run_rss([_argon()], lj, {"cycles": 1, "pressures_gpa": [0.1], "volume_min_angstrom3_per_atom": 40.0})
    assert dense.status.tolist() == ["converged"] and dense.flag_cell.tolist() == [1]


class _Failing(LennardJones):
    def calculate(self, atoms=None, properties=None, system_changes=()):
        raise CalculationFailed("SCF not converged in 250 cycles")


class _NaNBelow(LennardJones):
    """Lennard-Jones that returns NaN once two atoms are closer than 3 Å."""

    def calculate(self, atoms=None, properties=None, system_changes=()):
        super().calculate(atoms, properties, system_changes)
        if rss.closest_contact(self.atoms)[0] < 3.0:
            self.results["energy"] = np.nan


def test_holes_and_failures_are_flagged_rows_not_exceptions():
    """An inverted Lennard-Jones (attractive without bound at short range) collapses: a diverged
    cycle at 50 GPa stops that pressure; a failing calculator gives error rows with its message;
    NaN energies give diverged rows."""
    params = {"cycles": 3, "pressures_gpa": [0.1, 50.0], "max_steps": 150}
    hole = rss.run_rss([_argon()], LennardJones(sigma=3.4, epsilon=-0.0104, rc=8.0, smooth=True), params)
    high = hole[hole.pressure_gpa == 50.0]
    assert high.status.tolist() == ["diverged"] and "volume" in high.message.iloc[0]
    assert high.flag_cell.tolist() == [1] and high.flagged.tolist() == [1]
    low = hole[hole.pressure_gpa == 0.1]
    assert low.flagged.max() == 1  # rattled off the fcc saddle, atoms fall into each other
    failed = rss.run_rss([_argon()], _Failing(), params)
    assert failed.status.tolist() == ["error", "error"] and failed.cycle.tolist() == [0, 0]
    assert failed.message.str.contains("SCF not converged").all() and failed.flagged.tolist() == [1, 1]
    nan = rss.run_rss([_argon()], _NaNBelow(sigma=3.4, epsilon=-0.0104, rc=8.0, smooth=True),
                      {**params, "pressures_gpa": [50.0]})
    assert nan.status.tolist() == ["diverged"] and "non-finite energy" in nan.message[0] and nan.flagged[0] == 1


# ----------------------------------------------------------------------------- the command line, MACE and xTB

TINY_RUN = {"units": ["HCl"], "n_compositions": 1, "structures_per_composition": 1, "min_atoms": 4, "max_atoms": 4,
            "pressures_gpa": [0.1], "cycles": 1, "max_steps": 4}


@pytest.fixture(scope="module")
def hcl(tmp_path_factory):
    """One random H2Cl2 crystal (generated through the command line)."""
    path = tmp_path_factory.mktemp("rss") / "structures.extxyz"
    rss.main(["generate", "--elements", "H", "Cl", "--params", json.dumps(TINY_RUN), "--seed", "0",
              "--output", str(path)])
    return path


def test_model_command_line_with_a_tiny_mace(hcl, tmp_path):
    """An untrained MACE standing in for the reference (``reference --model``) and judged against
    itself (``model --reference-model``): the same relaxation, no disagreement; its rows (marked
    converged) give the floor; a shift of the reference moves its energies and the floors."""
    import torch
    from test_analysis import _mace

    model = tmp_path / "tiny.model"
    torch.save(_mace(None), model)
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(rss.COLUMNS) + "\n")
    assert rss.floors(rss.read_table(empty)).empty
    ref = tmp_path / "reference.csv"
    rss.main(["reference", "--model", str(model), "--label", "stand-in", "--structures", str(hcl), "--params",
              json.dumps(TINY_RUN), "--output", str(ref)])
    r = rss.read_table(ref)
    assert set(r.source) == {"stand-in"} and r.reference_energy_ev.isna().all() and r.flag_disagreement.isna().all()
    common = ["model", "--model", str(model), "--label", "tiny", "--structures", str(hcl), "--reference-model",
              str(model), "--params", json.dumps(TINY_RUN)]
    first = tmp_path / "first.csv"
    rss.main([*common, "--reference-table", str(ref), "--output", str(first)])
    t = rss.read_table(first)
    assert len(t) == 1 and t.composition[0] == "H2Cl2" and set(t.source) == {"tiny"}
    assert t.status[0] in ("converged", "unconverged") and np.isfinite(t.energy_ev[0])
    assert t.enthalpy_per_atom_ev[0] == pytest.approx(r.enthalpy_per_atom_ev[0], abs=1e-10)
    assert t.energy_diff_ev_per_atom[0] == pytest.approx(0, abs=1e-8) and t.force_rmse_ev_per_angstrom[0] < 1e-8
    assert t.flag_disagreement[0] == 0
    if r.status[0] != "converged":  # 4 steps: no converged reference row, no floor
        assert np.isnan(t.flag_energy[0]) and np.isnan(t.floor_enthalpy_per_atom_ev[0])
    r.assign(status="converged").to_csv(tmp_path / "converged.csv", index=False)
    second = tmp_path / "second.csv"
    rss.main([*common, "--reference-table", str(tmp_path / "converged.csv"), "--reference-shift", '{"H": 1.0}',
              "--params", json.dumps({**TINY_RUN, "energy_margin_ev_per_atom": 0.25}), "--output", str(second)])
    s = rss.read_table(second)
    assert s.floor_enthalpy_per_atom_ev[0] == pytest.approx(t.enthalpy_per_atom_ev[0] + 0.5)
    assert s.reference_energy_ev[0] == pytest.approx(t.energy_ev[0] + 2.0)
    assert s.energy_diff_ev_per_atom[0] == pytest.approx(-0.5) and s.flag_disagreement[0] == 1
    assert s.flag_energy[0] == 1 and s.flagged[0] == 1  # 0.5 eV/atom below the shifted floor, margin 0.25
    with pytest.raises(SystemExit, match="not found"):
        rss.main([*common, "--model", str(tmp_path / "none.model"), "--reference-table", str(empty), "--output",
                  str(tmp_path / "x.csv")])


def test_gfn2_reference_of_a_tiny_crystal(hcl, tmp_path):
    """The reference command: GFN2-xTB relaxes H2Cl2 with finite energies; only distance and
    cell are evaluated."""
    out = tmp_path / "reference.csv"
    rss.main(["reference", "--structures", str(hcl), "--level", "gfn2", "--params", json.dumps(TINY_RUN),
              "--output", str(out)])
    t = rss.read_table(out)
    assert len(t) == 1 and set(t.source) == {"GFN2-xTB"} and t.status[0] in ("converged", "unconverged")
    assert np.isfinite(t.energy_ev[0]) and np.isfinite(t.enthalpy_per_atom_ev[0]) and t.steps[0] <= 4
    assert t.reference_energy_ev.isna().all() and t.flag_energy.isna().all() and t.flag_disagreement.isna().all()
    assert t.flag_distance.notna().all() and t.flag_cell.notna().all()


@pytest.mark.slow
def test_model_command_line_with_the_tiny_foundation(tiny_foundation, tmp_path):
    """The trained tiny foundation (C H Cl Br) as model and reference on a CH4 + HBr crystal."""
    params = {"units": ["CH4", "HBr"], "n_compositions": 1, "structures_per_composition": 1, "min_atoms": 7,
              "max_atoms": 7, "pressures_gpa": [0.1, 50.0], "cycles": 2, "max_steps": 5}
    structures, empty, out = tmp_path / "s.extxyz", tmp_path / "empty.csv", tmp_path / "rss.csv"
    rss.main(["generate", "--elements", "C", "H", "Cl", "Br", "--params", json.dumps(params), "--output",
              str(structures)])
    empty.write_text(",".join(rss.COLUMNS) + "\n")
    rss.main(["model", "--model", tiny_foundation, "--structures", str(structures), "--reference-table", str(empty),
              "--reference-model", tiny_foundation, "--params", json.dumps(params), "--output", str(out)])
    t = rss.read_table(out)
    assert set(t.composition) == {"CH5Br"} and len(t) <= 4 and t.pressure_gpa.nunique() == 2
    ok = t[~t.status.isin(rss.FAILED)]
    assert np.allclose(ok.energy_diff_ev_per_atom, 0, atol=1e-8) and (ok.flag_disagreement == 0).all()


def test_e0_shift_puts_the_foundation_on_the_runs_scale(tmp_path):
    """The paper world's stand-in: the run's E0s (its mode) minus the foundation's, per element."""
    import json

    from mlipft.analysis.rss import ParamsError, e0_shift

    path = tmp_path / "e0s.json"
    path.write_text(json.dumps({"modes": {"estimated": {"1": -6.5, "8": -120.0}, "foundation": {"1": -14.0, "8": -127.5},
                                          "isolated": {"1": -10.0}}}))
    assert e0_shift(path, "estimated") == {"H": 7.5, "O": 7.5}
    assert e0_shift(path, "isolated") == {"H": 4.0}
    with pytest.raises(ParamsError, match="no E0 mode 'average'"):
        e0_shift(path, "average")
