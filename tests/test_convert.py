"""Tests for mlipft.convert: real paper-data samples (skipped when absent) and synthetic files."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlipft.convert import (
    FORMATS,
    ConversionError,
    check_units,
    convert,
    main,
    read_ice,
    read_lpsc,
    read_runner,
    read_sn2,
    read_spice,
)
from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY

PAPER_DATA = Path(__file__).resolve().parents[2] / "shared" / "paper-data"
RUNNER_SAMPLE = PAPER_DATA / "nacl-water-mp2" / "gen2_first24.data"
ICE_SAMPLES = {"Ih": 384, "II": 288, "VI": 240, "VIII": 240}
SN2_SAMPLES = ["r-mp2_first30.xyz", "p-mp2_first30.xyz", "ts-mp2_first30.xyz", "test-mp2_first30.xyz"]

# Independent of mlipft.keys, so that a wrong constant there fails these tests.
HARTREE = 27.211386245988
BOHR = 0.529177210903


def paperdata(test):
    """Mark a test as needing ../shared/paper-data and skip it when that is absent."""
    skip = pytest.mark.skipif(not PAPER_DATA.is_dir(), reason=f"{PAPER_DATA} not present")
    return pytest.mark.paperdata(skip(test))


def assert_canonical(frames: list[Atoms]) -> None:
    for atoms in frames:
        assert atoms.calc is None
        assert isinstance(atoms.info[ENERGY_KEY], float)
        assert atoms.arrays[FORCES_KEY].shape == (len(atoms), 3)
        if STRESS_KEY in atoms.info:
            assert atoms.info[STRESS_KEY].shape == (3, 3)


def assert_round_trip(frames: list[Atoms], path: Path) -> None:
    """Written and read back with plain ase.io.read, the REF_* labels are unchanged."""
    back = ase.io.read(path, index=":")
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        assert b.calc is None  # no energy=/forces= keys that ASE would turn into a calculator
        assert b.get_chemical_symbols() == a.get_chemical_symbols()
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-8)
        np.testing.assert_allclose(b.cell[:], a.cell[:], atol=1e-8)
        assert b.info[ENERGY_KEY] == pytest.approx(a.info[ENERGY_KEY], abs=1e-8)
        np.testing.assert_allclose(b.arrays[FORCES_KEY], a.arrays[FORCES_KEY], atol=1e-8)
        if STRESS_KEY in a.info:
            np.testing.assert_allclose(np.reshape(b.info[STRESS_KEY], (3, 3)), a.info[STRESS_KEY], atol=1e-12)
        assert {k: v for k, v in b.info.items() if k not in (ENERGY_KEY, STRESS_KEY)} == {
            k: v for k, v in a.info.items() if k not in (ENERGY_KEY, STRESS_KEY)
        }


# --------------------------------------------------------------------------------------------
# real samples


@paperdata
def test_runner_sample_counts_and_units():
    frames = read_runner(RUNNER_SAMPLE)
    assert_canonical(frames)
    assert len(frames) == 24
    for atoms in frames:
        assert len(atoms) == 184
        assert atoms.pbc.all()
        assert atoms.info["charge"] == 0
        assert 11.5 < atoms.cell.lengths().min() <= atoms.cell.lengths().max() < 13.0
        assert -200.0 < atoms.info[ENERGY_KEY] / len(atoms) < -150.0
        assert np.abs(atoms.arrays[FORCES_KEY]).max() < 10.0
    assert frames[0].cell.lengths() == pytest.approx([23.742275 * BOHR] * 3)
    assert frames[0].cell.lengths()[0] == pytest.approx(12.564, abs=1e-3)
    assert sorted(set(frames[0].get_chemical_symbols())) == ["Cl", "H", "Na", "O"]


@paperdata
def test_runner_sample_values_match_raw_text():
    lines = RUNNER_SAMPLE.read_text().splitlines()
    energy_hartree = float(next(line for line in lines if line.startswith("energy")).split()[1])
    atom = next(line for line in lines if line.startswith("atom")).split()
    first = read_runner(RUNNER_SAMPLE)[0]
    assert first.info[ENERGY_KEY] == pytest.approx(energy_hartree * HARTREE, abs=1e-9)
    assert first.get_chemical_symbols()[0] == atom[4]
    np.testing.assert_allclose(first.positions[0], [float(v) * BOHR for v in atom[1:4]], atol=1e-12)
    forces = [float(v) * HARTREE / BOHR for v in atom[7:10]]
    np.testing.assert_allclose(first.arrays[FORCES_KEY][0], forces, atol=1e-12)


@paperdata
@pytest.mark.parametrize("phase", sorted(ICE_SAMPLES))
def test_ice_sample(phase):
    path = PAPER_DATA / "ice-polymorphs" / f"{phase}_train025_first6.extxyz"
    frames = read_ice(path, phase=phase)
    assert_canonical(frames)
    assert len(frames) == 6
    for atoms in frames:
        assert len(atoms) == ICE_SAMPLES[phase]
        assert atoms.info["phase"] == phase
        assert atoms.pbc.all()
        assert -5.5 < atoms.info[ENERGY_KEY] / len(atoms) < -4.5
        assert "REF_free_energy" in atoms.info
        np.testing.assert_allclose(atoms.info[STRESS_KEY], atoms.info[STRESS_KEY].T)
        assert np.abs(atoms.info[STRESS_KEY]).max() < 0.1  # eV/A^3, i.e. below 16 GPa
    raw_header = path.read_text().splitlines()[1]
    raw_energy = float(raw_header.split("REF_energy=")[1].split()[0])
    assert frames[0].info[ENERGY_KEY] == raw_energy


@paperdata
@pytest.mark.parametrize("name", SN2_SAMPLES)
def test_sn2_sample(name):
    path = PAPER_DATA / "sn2-mp2" / name
    frames = read_sn2(path)
    assert_canonical(frames)
    assert len(frames) == 30
    for atoms in frames:
        assert not atoms.pbc.any()
        assert {"R1", "R2", "R3", "R4", "lg", "nu"} <= set(atoms.info)
        assert not {"mp2_energy", "mp2_forces", "forces", "energy"} & (set(atoms.info) | set(atoms.arrays))
        assert -20000.0 < atoms.info[ENERGY_KEY] / len(atoms) < -500.0
    # the labels are the mp2_* columns, not the other model's energy/forces in test-mp2
    lines = path.read_text().splitlines()
    assert frames[0].info[ENERGY_KEY] == float(lines[1].split("mp2_energy=")[1].split()[0])
    np.testing.assert_allclose(frames[0].arrays[FORCES_KEY][0], [float(v) for v in lines[2].split()[4:7]])


@paperdata
def test_sn2_sample_isolated_atoms():
    frames = read_sn2(PAPER_DATA / "sn2-mp2" / "e0s.xyz")
    assert_canonical(frames)
    assert [a.get_chemical_symbols()[0] for a in frames] == ["H", "C", "N", "O", "F", "Cl", "Br"]
    for atoms in frames:
        assert len(atoms) == 1
        assert atoms.info[CONFIG_TYPE_KEY] == ISOLATED_ATOM
        assert not atoms.arrays[FORCES_KEY].any()
    assert frames[0].info[ENERGY_KEY] == pytest.approx(-13.600517821508213)  # H atom, eV


@paperdata
@pytest.mark.parametrize(
    "fmt, files, kwargs",
    [
        ("runner", ["nacl-water-mp2/gen2_first24.data"], {}),
        ("ice", ["ice-polymorphs/II_train025_first6.extxyz"], {"phase": "II"}),
        ("sn2", ["sn2-mp2/e0s.xyz", "sn2-mp2/r-mp2_first30.xyz", "sn2-mp2/test-mp2_first30.xyz"], {}),
    ],
)
def test_real_round_trip(tmp_path, fmt, files, kwargs):
    inputs = [PAPER_DATA / name for name in files]
    output = tmp_path / "out.extxyz"
    frames = [atoms for path in inputs for atoms in FORMATS[fmt](path, **kwargs)]
    assert convert(fmt, inputs, output, **kwargs) == len(frames)
    assert_round_trip(frames, output)  # also checks that ASE attaches no calculator on reading
    assert "mp2_" not in output.read_text()


# --------------------------------------------------------------------------------------------
# synthetic files in each format

RUNNER_TEXT = """\
begin
comment synthetic periodic block
lattice 10.0 0.0 0.0
lattice 0.0 10.0 0.0
lattice 0.0 0.0 10.0
atom 0.0 0.0 0.0 O 0.0 0.0 0.01 -0.02 0.03
atom 1.8 0.0 0.0 H 0.0 0.0 -0.01 0.02 -0.03
energy -17.25
charge 0.0
end
begin
atom 0.0 0.0 0.0 Cl 0.0 0.0 0.0 0.0 0.0
energy -15.0
charge -1.0
end
"""


def test_runner_synthetic(tmp_path):
    path = tmp_path / "input.data"
    path.write_text(RUNNER_TEXT)
    periodic, molecule = read_runner(path)
    assert_canonical([periodic, molecule])
    assert periodic.pbc.all() and not molecule.pbc.any()
    np.testing.assert_allclose(periodic.cell[:], np.eye(3) * 10.0 * BOHR)
    assert periodic.positions[1, 0] == pytest.approx(1.8 * BOHR)
    assert periodic.info[ENERGY_KEY] == pytest.approx(-17.25 * HARTREE)
    np.testing.assert_allclose(periodic.arrays[FORCES_KEY][0], np.array([0.01, -0.02, 0.03]) * HARTREE / BOHR)
    assert periodic.info["comment"] == "synthetic periodic block"
    assert molecule.info["charge"] == -1 and "comment" not in molecule.info
    output = tmp_path / "out.extxyz"
    convert("runner", [path], output)
    assert_round_trip([periodic, molecule], output)


def test_ice_synthetic_voigt_stress_and_phase(tmp_path):
    path = tmp_path / "ice.extxyz"
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], cell=[5, 5, 5], pbc=True)
    voigt = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) * 1e-3
    atoms.info.update(REF_energy=-14.0, REF_stress=voigt, REF_free_energy=-14.0)
    atoms.arrays["REF_forces"] = np.full((3, 3), 0.1)
    ase.io.write(path, atoms, format="extxyz")
    (frame,) = read_ice(path, phase="Ih")
    assert frame.info["phase"] == "Ih"
    assert frame.info["REF_free_energy"] == -14.0
    np.testing.assert_allclose(frame.info[STRESS_KEY], np.array([[1, 6, 5], [6, 2, 4], [5, 4, 3]]) * 1e-3)
    assert "phase" not in read_ice(path)[0].info


def test_sn2_synthetic_keeps_info(tmp_path):
    path = tmp_path / "r-mp2.xyz"
    path.write_text(
        "2\n"
        "Properties=species:S:1:pos:R:3:mp2_forces:R:3 "
        'R1=H lg=F nu=Cl rxn-id=7 mp2_energy=-100.5 pbc="F F F"\n'
        "C 0 0 0 0.1 0.2 0.3\n"
        "F 1.4 0 0 -0.1 -0.2 -0.3\n"
        "1\n"
        "Properties=species:S:1:pos:R:3 "
        'mp2_energy=-13.6 config_type=IsolatedAtom free_energy=-13.6 pbc="F F F"\n'
        "H 0 0 0\n"
    )
    molecule, hydrogen = read_sn2(path)
    assert_canonical([molecule, hydrogen])
    # ASE's extxyz reader parses a bare F (fluorine) as False, in the raw file as in any file written from it
    assert molecule.info == {"R1": "H", "lg": False, "nu": "Cl", "rxn-id": 7, ENERGY_KEY: -100.5}
    np.testing.assert_allclose(molecule.arrays[FORCES_KEY], [[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]])
    assert hydrogen.info == {CONFIG_TYPE_KEY: ISOLATED_ATOM, ENERGY_KEY: -13.6}
    assert not hydrogen.arrays[FORCES_KEY].any()


def test_spice_synthetic_from_ase_calculator(tmp_path):
    """ASE writes energy=/forces, which its reader turns back into a calculator."""
    path = tmp_path / "spice.xyz"
    molecule = Atoms("NH4", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]])
    molecule.info.update(total_charge=1, config_type="SPICE PubChem")
    forces = np.arange(15.0).reshape(5, 3) * 0.01
    molecule.calc = SinglePointCalculator(molecule, energy=-1530.25, forces=forces)
    ase.io.write(path, molecule, format="extxyz")
    assert ase.io.read(path).calc is not None  # the case the converter must handle
    (frame,) = read_spice(path)
    assert_canonical([frame])
    assert frame.info == {"total_charge": 1, "config_type": "SPICE PubChem", ENERGY_KEY: -1530.25}
    np.testing.assert_allclose(frame.arrays[FORCES_KEY], forces)
    output = tmp_path / "out.extxyz"
    convert("spice", [path], output)
    assert_round_trip([frame], output)


LPSC_HEADER = (
    'Lattice="10 0 0 0 10 0 0 0 10" Properties=species:S:1:pos:R:3:ref_forces:R:3 '
    'ref_energy=-20 stress="{stress}" config_type=md600K pbc="T T T"\n'
)


@pytest.mark.parametrize(
    "stress", ["0.001 0.002 0.003 0.004 0.005 0.006", "0.001 0.006 0.005 0.006 0.002 0.004 0.005 0.004 0.003"]
)
def test_lpsc_synthetic_stress_layouts(tmp_path, stress):
    path = tmp_path / "LPSC_600.extxyz"
    path.write_text("2\n" + LPSC_HEADER.format(stress=stress) + "Li 0 0 0 0.5 0 0\nS 2 2 2 -0.5 0 0\n")
    (frame,) = read_lpsc(path)
    assert_canonical([frame])
    assert frame.info[CONFIG_TYPE_KEY] == "md600K" and "stress" not in frame.info
    np.testing.assert_allclose(frame.info[STRESS_KEY], np.array([[1, 6, 5], [6, 2, 4], [5, 4, 3]]) * 1e-3)
    output = tmp_path / "out.extxyz"
    convert("lpsc", [path], output)
    assert_round_trip([frame], output)


# --------------------------------------------------------------------------------------------
# errors


def runner_error(tmp_path, text: str) -> str:
    path = tmp_path / "bad.data"
    path.write_text(text)
    with pytest.raises(ConversionError) as info:
        read_runner(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_runner_truncated_block(tmp_path):
    message = runner_error(tmp_path, RUNNER_TEXT + "begin\natom 0 0 0 Na 0 0 0 0 0\n")
    assert "line 16" in message and "truncated" in message


def test_runner_missing_energy(tmp_path):
    message = runner_error(tmp_path, RUNNER_TEXT.replace("energy -15.0\n", ""))
    assert "line 11" in message and "missing 'energy' line" in message


def test_runner_atom_line_wrong_field_count(tmp_path):
    message = runner_error(tmp_path, RUNNER_TEXT.replace("0.0 -0.01 0.02 -0.03", "-0.01 0.02"))
    assert "line 7" in message and "has 8 fields, expected 10" in message


def test_runner_unknown_keyword_and_bad_number(tmp_path):
    assert "line 2: unknown keyword 'energi'" in runner_error(tmp_path, "begin\nenergi 1.0\nend\n")
    assert "line 2" in runner_error(tmp_path, "begin\nenergy one\nend\n")


def test_missing_key_lists_found_keys(tmp_path):
    path = tmp_path / "r-mp2.xyz"
    path.write_text(
        '1\nProperties=species:S:1:pos:R:3:mp2_forces:R:3 mp2_energy=-1.0 pbc="F F F"\nC 0 0 0 0 0 0\n'
        '1\nProperties=species:S:1:pos:R:3:mp2_forces:R:3 energy=-1.0 R1=H pbc="F F F"\nC 0 0 0 0 0 0\n'
    )
    with pytest.raises(ConversionError, match="frame 1: missing energy key 'mp2_energy'") as info:
        read_sn2(path)
    message = str(info.value)
    assert str(path) in message and "'R1'" in message and "'mp2_forces'" in message and "'energy'" in message


def test_wrong_force_shape(tmp_path):
    path = tmp_path / "spice.xyz"
    header = 'Properties=species:S:1:pos:R:3:forces:R:2 energy=-3.0 pbc="F F F"'
    path.write_text(f"2\n{header}\nH 0 0 0 1 1\nH 0 0 1 1 1\n")
    with pytest.raises(ConversionError, match=r"frame 0: forces 'forces' have shape \(2, 2\)") as info:
        read_spice(path)
    assert str(path) in str(info.value)


def test_refuses_to_overwrite_existing_label(tmp_path):
    path = tmp_path / "spice.xyz"
    header = 'Properties=species:S:1:pos:R:3:forces:R:3 energy=-3.0 REF_energy=-2.0 pbc="F F F"'
    path.write_text(f"1\n{header}\nH 0 0 0 0 0 0\n")
    with pytest.raises(ConversionError, match="frame 0: has both 'energy' and 'REF_energy'") as info:
        read_spice(path)
    assert str(path) in str(info.value)


def test_lpsc_periodic_frame_without_stress(tmp_path):
    path = tmp_path / "LPSC_600.extxyz"
    path.write_text("1\n" + LPSC_HEADER.replace(' stress="{stress}"', "") + "Li 0 0 0 0 0 0\n")
    with pytest.raises(ConversionError, match="frame 0: periodic frame without stress key 'stress'"):
        read_lpsc(path)


def test_ice_rejects_non_periodic_frame(tmp_path):
    path = tmp_path / "ice.extxyz"
    header = 'Properties=species:S:1:pos:R:3:REF_forces:R:3 REF_energy=-1.0 pbc="F F F"'
    path.write_text(f"1\n{header}\nO 0 0 0 0 0 0\n")
    with pytest.raises(ConversionError, match="frame 0: ice frames must be periodic"):
        read_ice(path)


def test_unreadable_and_empty_extxyz(tmp_path):
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("3\nnot enough lines\n")
    with pytest.raises(ConversionError, match="not a readable extxyz file") as info:
        read_sn2(garbage)
    assert str(garbage) in str(info.value)
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(ConversionError, match="no frames"):
        read_sn2(empty)


def test_check_units_catches_missed_conversions(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    atoms.info[ENERGY_KEY] = -31.0
    atoms.arrays[FORCES_KEY] = np.zeros((2, 3))
    check_units([atoms], tmp_path / "ok.xyz")
    good = atoms.copy()
    atoms.arrays[FORCES_KEY][1, 2] = 80.0  # e.g. kcal/mol/A
    with pytest.raises(ConversionError, match="frame 1: force component 80 eV/A on atom 1"):
        check_units([good, atoms], tmp_path / "bad.xyz")
    atoms.arrays[FORCES_KEY][:] = 0.0
    atoms.info[ENERGY_KEY] = -4.0e5  # e.g. meV
    with pytest.raises(ConversionError, match=r"bad\.xyz: frame 0: energy .* eV/atom"):
        check_units([atoms], tmp_path / "bad.xyz")


def test_runner_unit_check_applies(tmp_path):
    """Forces of 3 Hartree/Bohr (about 150 eV/A) are rejected after conversion."""
    message = runner_error(tmp_path, RUNNER_TEXT.replace("0.01 -0.02 0.03", "3.0 -0.02 0.03"))
    assert "frame 0: force component" in message


# --------------------------------------------------------------------------------------------
# driver and command line


def test_convert_is_atomic(tmp_path):
    good = tmp_path / "good.data"
    good.write_text(RUNNER_TEXT)
    bad = tmp_path / "bad.data"
    bad.write_text("begin\n")
    output = tmp_path / "out" / "data.extxyz"
    assert convert("runner", [good], output) == 2
    before = output.read_text()
    with pytest.raises(ConversionError):
        convert("runner", [good, bad], output)
    assert output.read_text() == before
    assert sorted(p.name for p in output.parent.iterdir()) == ["data.extxyz"]
    with pytest.raises(ValueError, match="unknown format 'xyz'"):
        convert("xyz", [good], output)


def test_cli(tmp_path, capsys):
    path = tmp_path / "ice.extxyz"
    atoms = Atoms("O", positions=[[0, 0, 0]], cell=[3, 3, 3], pbc=True)
    atoms.info.update(REF_energy=-2.0, REF_stress=np.zeros(9))
    atoms.arrays["REF_forces"] = np.zeros((1, 3))
    ase.io.write(path, [atoms, atoms], format="extxyz")
    output = tmp_path / "ice_VI.extxyz"
    main(["ice", str(output), str(path), str(path), "--phase", "VI"])
    frames = ase.io.read(output, index=":")
    assert len(frames) == 4 and {a.info["phase"] for a in frames} == {"VI"}
    with pytest.raises(SystemExit):
        main(["sn2", str(output), str(path), "--phase", "VI"])
    assert "--phase applies only to the ice format" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=f"{path}: frame 0: missing energy key 'mp2_energy'"):
        main(["sn2", str(tmp_path / "sn2.extxyz"), str(path)])
    assert not (tmp_path / "sn2.extxyz").exists()
