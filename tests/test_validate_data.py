"""Dataset validation (mlipft.validate_data): one test per data defect, each asserting that the
message names the file, the frame and the problem; the committed mini data pass, cheaply."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from mlipft import validate_data as vd
from mlipft.io import write_atomic
from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "data" / "mini" / "mini"
ISO = {1: -10.707211383283003, 8: -102.5218071447532}  # GFN2-xTB isolated H and O, eV (as in ice)
KCAL_PER_EV = 23.0605
HARTREE = 27.211386245988


def _water(n: int = 6, seed: int = 0, stress: bool = True) -> list[Atoms]:
    """Periodic rattled water, binding -4.7 eV/atom (like the committed ice), forces ~1 eV/A."""
    rng = np.random.default_rng(seed)
    base = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]) + 1.5
    frames = []
    for _ in range(n):
        a = Atoms("OH2", positions=base + rng.normal(0, 0.05, (3, 3)), cell=np.eye(3) * 6.0, pbc=True)
        a.info[ENERGY_KEY] = ISO[8] + 2 * ISO[1] + 3 * (-4.7 + rng.normal(0, 0.01))
        a.arrays[FORCES_KEY] = rng.normal(0, 1.0, (3, 3))
        if stress:
            a.info[STRESS_KEY] = rng.normal(0, 0.01, 6)
        frames.append(a)
    return frames


def _isolated(energies: dict = ISO) -> list[Atoms]:
    out = []
    for z, e in energies.items():
        a = Atoms(numbers=[z])
        a.info[ENERGY_KEY] = e
        a.info[CONFIG_TYPE_KEY] = ISOLATED_ATOM
        out.append(a)
    return out


def _problem(excinfo, path: Path, frame: int | None, *words: str) -> str:
    """The message starts with the file, and one of its lines is ``frame <frame>: ...words...``."""
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert msg.startswith(str(path)), msg
    lines = [line.strip() for line in msg.splitlines()]
    prefix = f"frame {frame}: " if frame is not None else ""
    assert any(line.startswith(prefix) and all(w in line for w in words) for line in lines), msg
    return msg


# --- defects: (name, role, check_file kwargs, mutate(frames) -> frames, frame, words) --------------

def _set(i, fn):
    def mutate(frames):
        fn(frames[i])
        return frames
    return mutate


def _del_array(key):
    return lambda a: a.arrays.pop(key)


def _wrong_forces(a):
    a.arrays[FORCES_KEY] = np.zeros((len(a), 2))


def _inf_force(a):
    a.arrays[FORCES_KEY][1, 2] = np.inf


def _info(key, value):
    return lambda a: a.info.__setitem__(key, value)


def _element(z):
    return lambda a: a.numbers.__setitem__(0, z)


def _hartree(frames):
    for a in frames:
        a.info[ENERGY_KEY] /= HARTREE
    return frames


def _kcal_energies(frames):  # data and (in kwargs) isolated atoms both in kcal/mol
    for a in frames:
        a.info[ENERGY_KEY] *= KCAL_PER_EV
    return frames


def _kcal_forces(frames):
    frames[3].arrays[FORCES_KEY][1] = [3.0, 0.0, 0.0]  # 3 eV/A: a thermal frame's largest force
    for a in frames:
        a.arrays[FORCES_KEY] = a.arrays[FORCES_KEY] * KCAL_PER_EV
    return frames


def _kbar_stress(frames):
    frames[4].info[STRESS_KEY] = np.array([0.01, 0.01, 0.01, 0.0, 0.0, 0.0])  # 1.6 GPa
    for a in frames:
        a.info[STRESS_KEY] = a.info[STRESS_KEY] * 1602.18
    return frames


def _only_isolated(frames):
    return _isolated()


def _two_atom_isolated(frames):
    iso = _isolated()
    pair = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    pair.info.update({ENERGY_KEY: -31.0, CONFIG_TYPE_KEY: ISOLATED_ATOM})
    return iso + [pair]


def _isolated_nan(frames):
    iso = _isolated()
    iso[1].info[ENERGY_KEY] = np.nan
    return iso


def _isolated_twice(frames):
    return _isolated() + _isolated({1: -10.6})


def _configuration_in_isolated(frames):
    return _isolated() + frames[:1]


def _position(i, value):
    def mutate(a):
        a.positions[i] = value(a)
    return mutate


def _nan_position(a):
    a.positions[2, 1] = np.nan


def _cell(value):
    def mutate(a):
        a.cell = value(a.cell.array.copy())
    return mutate


def _nan_entry(cell):
    cell[0, 1] = np.nan
    return cell


def _coplanar(cell):
    cell[2] = cell[0] - 2 * cell[1]
    return cell


def _short_vector(cell):  # 0.05 A: every atom 0.05 A from its own image (ase's search, not one image layer)
    cell[0] = [0.05, 0.0, 0.0]
    return cell


def _slab_parallel(a):  # periodic in x and y only, the two periodic vectors parallel
    a.pbc = [True, True, False]
    a.cell = [[6.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 6.0]]


DEFECTS = [
    ("missing forces", "train", {}, _set(3, _del_array(FORCES_KEY)), 3, ["no REF_forces"]),
    ("forces (n, 2)", "train", {}, _set(2, _wrong_forces), 2, ["REF_forces has shape (3, 2)", "expected (3, 3)"]),
    ("NaN energy", "train", {}, _set(4, _info(ENERGY_KEY, np.nan)), 4, ["REF_energy is not finite (nan)"]),
    ("inf force", "valid", {}, _set(1, _inf_force), 1, ["REF_forces has 1 non-finite value(s) (inf)"]),
    ("missing energy", "test", {}, _set(5, lambda a: a.info.pop(ENERGY_KEY)), 5, ["no REF_energy"]),
    ("non-numeric energy", "train", {}, _set(0, _info(ENERGY_KEY, "abc")), 0, ["REF_energy is not a number", "abc"]),
    ("missing stress (required)", "train", {"require_stress": True}, _set(2, lambda a: a.info.pop(STRESS_KEY)), 2,
     ["no REF_stress (required for this file)"]),
    ("stress of 5", "train", {}, _set(3, _info(STRESS_KEY, np.arange(5.0))), 3,
     ["REF_stress has 5 components", "6 (Voigt) or 9 (3x3)"]),
    ("NaN stress", "valid", {"require_stress": True}, _set(1, _info(STRESS_KEY, np.array([0, 0, np.nan, 0, 0, 0]))),
     1, ["REF_stress has 1 non-finite value(s) (nan)"]),
    ("empty file", "train", {}, lambda frames: [], None, ["no configurations (empty file)"]),
    ("only isolated atoms in train", "train", {}, _only_isolated, None, ["only isolated-atom rows (2)"]),
    ("isolated atom of two atoms", "isolated", {}, _two_atom_isolated, 2, ["isolated atom has 2 atoms (H2)"]),
    ("isolated atom NaN energy", "isolated", {}, _isolated_nan, 1, ["isolated atom O", "not finite (nan)"]),
    ("isolated element twice", "isolated", {}, _isolated_twice, 2, ["second isolated-atom row for H (first: frame 0)"]),
    ("configuration in isolated file", "isolated", {}, _configuration_in_isolated, 2, ["not an isolated-atom row"]),
    ("element not in foundation", "train", {"elements": [1, 8]}, _set(3, _element(7)), 3,
     ["element N is not among the foundation model's elements", "1 frame has it"]),
    ("element without isolated energy", "train", {"isolated_elements": ISO}, _set(4, _element(6)), 4,
     ["element C has no isolated-atom energy"]),
    ("energies in Hartree", "train", {"isolated_elements": ISO}, _hartree, 0,
     ["binding energy 39", "outside [-20, 5]", "not in eV"]),
    ("energies in kcal/mol", "train", {"isolated_elements": {z: e * KCAL_PER_EV for z, e in ISO.items()}},
     _kcal_energies, 0, ["binding energy -108", "outside [-20, 5]", "kcal/mol"]),
    ("forces in kcal/mol/A", "train", {}, _kcal_forces, 3, ["largest force 69.", "(atom 1) above 50 eV/A", "kcal/mol/A"]),
    ("stress in kbar", "train", {}, _kbar_stress, 4, ["largest REF_stress component 16.", "above 5 eV/A^3 (801 GPa)", "kbar"]),
    # geometry (rule 6)
    ("NaN position", "train", {}, _set(3, _nan_position), 3, ["positions have 1 non-finite value(s) (nan)"]),
    ("NaN cell", "valid", {}, _set(1, _cell(_nan_entry)), 1, ["cell has 1 non-finite value(s) (nan)"]),
    ("two atoms at one position", "train", {}, _set(2, _position(2, lambda a: a.positions[0])), 2,
     ["atoms 0 and 2 are 0 A apart (below 0.1 A)"]),
    ("two atoms 0.05 A apart", "test", {}, _set(0, _position(1, lambda a: a.positions[0] + [0.0, 0.05, 0.0])), 0,
     ["atoms 0 and 1 are 0.05 A apart (below 0.1 A)"]),
    ("an atom next to another's periodic image", "train", {},
     _set(5, _position(2, lambda a: a.positions[1] - a.cell.array[2] + [0.03, 0.0, 0.0])), 5,
     ["atoms 1 and 2 are 0.03 A apart (below 0.1 A)"]),
    ("an atom next to its own periodic image", "train", {}, _set(4, _cell(_short_vector)), 4,
     ["atom 0 is 0.05 A from its own periodic image (below 0.1 A) and "]),
    ("zero cell with pbc", "train", {}, _set(1, _cell(np.zeros_like)), 1,
     ["singular periodic cell: periodic directions 0, 1, 2 with a cell vector shorter than 1e-06 A (length 0, 0, 0 A"]),
    ("one zero cell vector with pbc", "valid", {}, _set(0, _cell(lambda c: c * [[1], [0], [1]])), 0,
     ["singular periodic cell: periodic direction 1 with a cell vector shorter than 1e-06 A"]),
    ("coplanar cell", "train", {}, _set(3, _cell(_coplanar)), 3, ["singular periodic cell: volume ", "coplanar"]),
    ("parallel vectors of a slab", "test", {}, _set(2, _slab_parallel), 2,
     ["singular periodic cell: the cell vectors of periodic directions 0 and 1 are parallel (zero area)"]),
]


@pytest.mark.parametrize("name,role,kwargs,mutate,frame,words", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_defect_is_named_with_file_frame_and_problem(tmp_path, name, role, kwargs, mutate, frame, words):
    path = tmp_path / f"{role}.xyz"
    frames = mutate(_water())
    if frames:
        write_atomic(path, frames)
    else:
        path.write_text("")
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_file(path, role, **kwargs)
    msg = _problem(excinfo, path, frame, *words)
    assert f"in this {role} file" in msg.splitlines()[0]
    print(f"{name}: {msg}")


def test_the_clean_water_passes_and_reports_ranges(tmp_path):
    path = tmp_path / "train.xyz"
    write_atomic(path, _water() + _isolated())  # isolated rows in a training file are allowed
    report = vd.check_file(path, "train", require_stress=True, elements=["H", "O"], isolated_elements=ISO)
    assert report.frames == 8 and report.isolated_frames == 2 and report.elements == ["H", "O"]
    assert report.problems == [] and report.n_problems == 0 and report.stress_frames == 6
    assert -4.75 < report.binding_energy_per_atom[0] < report.binding_energy_per_atom[1] < -4.65
    assert report.force_norm[1] < vd.MAX_FORCE and report.isolated_energies == {"H": ISO[1], "O": ISO[8]}
    # the file's own isolated rows suffice for the binding-energy bounds
    assert vd.check_file(path, "train").binding_energy_per_atom == report.binding_energy_per_atom
    write_atomic(path, _water())
    assert vd.check_file(path, "train").skipped == ["binding-energy bounds: no isolated-atom energies"]


def test_a_molecule_without_a_cell_passes(tmp_path):
    """Not periodic: a zero cell is no cell, and only the atoms' own distances count."""
    frames = _water(3, stress=False)
    for a in frames:
        a.pbc, a.cell = False, np.zeros((3, 3))
    frames[1].positions[2] = frames[1].positions[0] + [0.0, 0.0, 0.11]  # above 0.1 A
    write_atomic(tmp_path / "train.xyz", frames)
    assert vd.check_file(tmp_path / "train.xyz", "train").n_problems == 0


def test_close_pairs_are_ases_neighbour_list():
    """The k-d tree over one layer of images finds exactly ase's pairs (and ase's own search is
    used where one layer is not enough), for skewed, partly periodic and empty cells."""
    rng = np.random.default_rng(7)
    for trial in range(150):
        n = int(rng.integers(1, 9))
        pbc = rng.random(3) < 0.6
        cell = np.diag(rng.uniform(0.25 if trial % 5 == 0 else 0.8, 3.0, 3)) + rng.normal(0, 0.15, (3, 3))
        if trial % 3 == 0:
            cell[~pbc] = 0.0
        positions = rng.uniform(-2.0, 4.0, (n, 3))
        if n > 1:
            positions[1] = positions[0] + rng.normal(0, 0.05, 3)
        atoms = Atoms(numbers=[1] * n, positions=positions, cell=cell, pbc=pbc)
        cutoff = 0.3 if trial % 2 else vd.MIN_DISTANCE
        i, j, d, shift = neighbor_list("ijdS", atoms, cutoff)
        first = shift[np.arange(len(shift)), np.argmax(shift != 0, axis=1)]
        keep = (i < j) | ((i == j) & (first > 0))
        expected = sorted(zip(i[keep].tolist(), j[keep].tolist(), np.round(d[keep], 9).tolist()))
        got = vd._close_pairs(atoms, cutoff)
        assert sorted(zip(got[0].tolist(), got[1].tolist(), np.round(got[2], 9).tolist())) == expected, (trial, pbc)


def test_a_frame_with_nan_positions_is_left_out_of_the_duplicate_check(tmp_path):
    train, test = _water(4, seed=0), _water(3, seed=1)
    train[1].positions[0, 0] = np.nan
    test[2] = train[1].copy()  # the same NaN frame: rule 6 names it in each file, it is no duplicate
    write_atomic(tmp_path / "train.xyz", train)
    write_atomic(tmp_path / "test.xyz", test)
    assert vd.check_duplicates({"train": tmp_path / "train.xyz", "test": tmp_path / "test.xyz"}) == 7
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_file(tmp_path / "test.xyz", "test")
    _problem(excinfo, tmp_path / "test.xyz", 2, "positions have 1 non-finite value(s) (nan)")


def test_some_frames_of_a_file_are_named_by_their_index_there(tmp_path):
    """check_frames on frames drawn from a file (a replay set): problems carry the file's frame
    indices."""
    frames = _water(6, stress=False)
    frames[4].info[ENERGY_KEY] = np.nan
    frames[5].positions[1] = frames[5].positions[0]
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_frames(tmp_path / "corpus.xyz", "replay", [frames[1], frames[4], frames[5]], frame_numbers=[1, 4, 5])
    assert str(excinfo.value) == (f"{tmp_path / 'corpus.xyz'}: 2 problems in this replay file:\n"
                                  "  frame 4: REF_energy is not finite (nan)\n"
                                  "  frame 5: atoms 0 and 1 are 0 A apart (below 0.1 A)")


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "valid.xyz"
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_file(path, "valid")
    _problem(excinfo, path, None, "valid file not found")


def test_unparseable_file(tmp_path):
    path = tmp_path / "test.xyz"
    path.write_text("3\nProperties=species:S:1:pos:R:3\nH 0 0 0\nH 0 0\n")  # truncated frame
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_file(path, "test")
    msg = _problem(excinfo, path, None, "cannot be parsed as extxyz (test file)")
    assert msg.startswith(f"{path}: cannot be parsed as extxyz (test file): frame 0, line 4: 3 columns where the "
                          "frame's first atom line has 4; the file ends inside this frame (2 of 3 atom lines): ")
    assert "expected 3" in msg  # ase's own explanation follows


GOOD = "2\nProperties=species:S:1:pos:R:3\nH 0 0 0\nH 0 0 0.74\n"


@pytest.mark.parametrize("text,where", [
    (GOOD * 2 + "two\nProperties=species:S:1:pos:R:3\nH 0 0 0\n", "frame 2, line 9: not an atom count: 'two'"),
    (GOOD + "\n" + GOOD, "frame 1, line 5: a blank line where the frame's atom count is expected"),  # no ase error
    (GOOD + "3\nProperties=species:S:1:pos:R:3\nH 0 0 0\nH 0 0 0.74\n",
     "frame 1, line 8: the file ends inside this frame (2 of 3 atom lines)"),
    (GOOD * 3 + "2\nProperties=species:S:1:pos:R:3\nH 0 0 0\nH 0 x 0.74\n", "frame 3 (lines 13-16)"),
], ids=["count line", "blank line", "file ends", "bad value"])
def test_unparseable_file_names_frame_and_line(tmp_path, text, where):
    path = tmp_path / "valid.xyz"
    path.write_text(text)
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_file(path, "valid")
    assert str(excinfo.value).startswith(f"{path}: cannot be parsed as extxyz (valid file): {where}: "), excinfo.value


def test_trailing_blank_lines_are_no_defect(tmp_path):
    path = tmp_path / "train.xyz"
    write_atomic(path, _water(3))
    path.write_text(path.read_text() + "\n\n")
    assert vd.check_file(path, "train").frames == 3


def test_every_problem_of_a_file_is_collected(tmp_path):
    frames = _water()
    frames[1].arrays.pop(FORCES_KEY)
    frames[4].info[ENERGY_KEY] = np.nan
    frames[5].numbers[0] = 7
    path = tmp_path / "train.xyz"
    write_atomic(path, frames)
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_file(path, "train", elements=[1, 8])
    msg = str(excinfo.value)
    assert msg.splitlines()[0] == f"{path}: 3 problems in this train file:"
    assert [line.strip() for line in msg.splitlines()[1:]] == [
        "frame 5: element N is not among the foundation model's elements (1 frame has it)",
        "frame 1: no REF_forces", "frame 4: REF_energy is not finite (nan)"]
    assert excinfo.value.report.n_problems == 3


def test_problems_are_capped_with_the_total(tmp_path):
    frames = _water(30)
    for a in frames:
        a.arrays.pop(FORCES_KEY)
    path = tmp_path / "train.xyz"
    write_atomic(path, frames)
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_file(path, "train")
    msg = _problem(excinfo, path, 19, "no REF_forces")
    assert "frame 20:" not in msg and msg.endswith("... and 10 more (30 problems in total)")
    assert len(msg.splitlines()) == 1 + vd.MAX_LISTED + 1


def test_frame_in_train_and_test(tmp_path):
    train, test = _water(6, seed=0), _water(4, seed=1)
    test[1] = train[2].copy()
    test[1].positions += 3e-9  # written to 1e-8: still the same frame
    test[3] = train[4].copy()
    test[3].positions[0, 0] += 1e-6  # a different frame
    paths = {role: tmp_path / f"{role}.xyz" for role in ("train", "valid", "test")}
    for role, frames in (("train", train), ("valid", _water(3, seed=2)), ("test", test)):
        write_atomic(paths[role], frames + _isolated())  # isolated rows repeat legitimately
    with pytest.raises(vd.DataError) as excinfo:
        vd.check_duplicates(paths)
    msg = _problem(excinfo, paths["train"], None, "1 configuration in two of the train, valid, test files")
    assert f"{paths['train']} frame 2 (train) = {paths['test']} frame 1 (test)" in msg
    assert "frame 4" not in msg
    test[1].cell = np.eye(3) * 6.1  # another cell: another configuration
    write_atomic(paths["test"], test)
    assert vd.check_duplicates(paths) == 6 + 3 + 4


def test_two_files_of_one_role_may_share_frames(tmp_path):
    frames = _water(6)
    write_atomic(tmp_path / "train.xyz", frames)
    write_atomic(tmp_path / "train_part.xyz", frames[:3])
    write_atomic(tmp_path / "test.xyz", _water(2, seed=5))
    assert vd.check_duplicates([("train", tmp_path / "train.xyz"), ("train", tmp_path / "train_part.xyz"),
                                ("test", tmp_path / "test.xyz")]) == 11


# --- command line ------------------------------------------------------------------------------

def _cli_files(tmp_path, test_frames=None) -> list[str]:
    write_atomic(tmp_path / "iso.xyz", _isolated())
    write_atomic(tmp_path / "train.xyz", _water(6, seed=0))
    write_atomic(tmp_path / "valid.xyz", _water(3, seed=1))
    write_atomic(tmp_path / "test.xyz", test_frames or _water(3, seed=2))
    return [f"--file={r}={tmp_path / r}.xyz" for r in ("train", "valid", "test")] + [
        "--stress", "train,valid,test", "--isolated", str(tmp_path / "iso.xyz"), "--disjoint", "train,valid,test",
        "--report", str(tmp_path / "report.json")]


def test_cli_writes_the_report_when_everything_passes(tmp_path, capsys):
    assert vd.main(_cli_files(tmp_path)) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(f["role"], f["frames"], f["elements"], f["problems"]) for f in report["files"]] == [
        ("train", 6, ["H", "O"], []), ("valid", 3, ["H", "O"], []), ("test", 3, ["H", "O"], [])]
    assert report["isolated"]["isolated_energies"] == {"H": ISO[1], "O": ISO[8]}
    assert report["disjoint"] == ["test", "train", "valid"] and report["foundation"] is None
    for entry in report["files"]:
        assert -4.75 < entry["binding_energy_per_atom"][0] <= entry["binding_energy_per_atom"][1] < -4.65
        assert entry["force_norm"][1] < 50 and entry["stress_max_abs"] < 0.1
    assert "validated 3 file(s), 12 frames" in capsys.readouterr().out


def test_cli_fails_with_every_message_and_no_report(tmp_path, capsys):
    test = _water(3, seed=2)
    test[0] = _water(6, seed=0)[5]  # a training frame
    test[2].info.pop(STRESS_KEY)
    args = _cli_files(tmp_path, test)
    valid = _water(3, seed=1)
    valid[1].info[ENERGY_KEY] = np.inf
    write_atomic(tmp_path / "valid.xyz", valid)
    (tmp_path / "report.json").write_text("{}")  # stale: must not survive a failing check
    assert vd.main(args) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'valid.xyz'}: 1 problem in this valid file:\n  frame 1: REF_energy is not finite (inf)" in err
    assert f"{tmp_path / 'test.xyz'}: 1 problem in this test file:\n  frame 2: no REF_stress" in err
    assert f"{tmp_path / 'train.xyz'} frame 5 (train) = {tmp_path / 'test.xyz'} frame 0 (test)" in err
    assert not (tmp_path / "report.json").exists()


def test_cli_rejects_an_unknown_role(tmp_path):
    with pytest.raises(SystemExit):
        vd.main(["--file", f"training={tmp_path / 'x.xyz'}", "--report", str(tmp_path / "r.json")])


# --- the committed mini data -------------------------------------------------------------------

BENCHMARKS = sorted(p.name for p in (MINI / "benchmarks").iterdir() if p.is_dir())
STRESS = {"ice", "lpsc", "nacl"}  # periodic benchmarks: every labelled frame has REF_stress
UNLABELLED = {"md_start.xyz"}  # nacl's MD starting structure, not a dataset
EVALSETS = {"reference_neb.xyz", "torsions.xyz"}


def _role(name: str) -> str:
    if name == "isolated_atoms.xyz":
        return "isolated"
    for role in ("train", "valid", "test"):
        if name.startswith(role):
            return role
    if name.startswith("heldout_") or name in EVALSETS:
        return "evalset"
    raise AssertionError(f"no role for {name}: give it one in this test")


@pytest.fixture(scope="module")
def omat_elements() -> list[int]:
    return vd.foundation_elements(MINI / "foundations" / "omat_medium" / "model.model")


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_committed_mini_data_pass(benchmark, omat_elements, capsys):
    folder = MINI / "benchmarks" / benchmark
    start = time.perf_counter()
    isolated = vd.check_file(folder / "isolated_atoms.xyz", "isolated", elements=omat_elements)
    files = sorted(p for p in folder.glob("*.xyz") if p.name not in UNLABELLED | {"isolated_atoms.xyz"})
    reports = [vd.check_file(p, _role(p.name), require_stress=benchmark in STRESS, elements=omat_elements,
                             isolated_elements=isolated.isolated_energies) for p in files]
    compared = vd.check_duplicates([(r.role, r.path) for r in reports if r.role in ("train", "valid", "test")])
    seconds = time.perf_counter() - start
    frames = sum(r.frames for r in reports)
    with capsys.disabled():
        print(f"\n{benchmark}: {len(reports) + 1} files, {frames} frames checked, {compared} compared for "
              f"duplicates in {seconds:.3f} s")
    assert all(r.frames > r.isolated_frames and r.binding_energy_per_atom for r in reports)
    assert all((r.stress_frames == r.frames) == (benchmark in STRESS) for r in reports)
    assert seconds < 30, "validation must stay cheap next to a training job"
    for name in UNLABELLED & {p.name for p in folder.glob("*.xyz")}:
        with pytest.raises(vd.DataError, match="frame 0: no REF_energy"):  # why it is not a dataset
            vd.check_file(folder / name, "evalset")


def test_cli_on_committed_ice_with_foundation(tmp_path):
    folder = MINI / "benchmarks" / "ice"
    files = [f"--file={_role(p.name)}={p}" for p in sorted(folder.glob("*.xyz")) if p.name != "isolated_atoms.xyz"]
    report = tmp_path / "report.json"
    assert vd.main(files + ["--stress", "train,valid,test", "--isolated", str(folder / "isolated_atoms.xyz"),
                            "--foundation", str(MINI / "foundations" / "omat_medium" / "model.model"),
                            "--disjoint", "train,valid,test", "--report", str(report)]) == 0
    result = json.loads(report.read_text())
    assert len(result["files"]) == 15 and result["foundation"]["elements"][:3] == ["H", "Li", "C"]
    assert all(f["elements"] == ["H", "O"] and f["problems"] == [] for f in result["files"])
