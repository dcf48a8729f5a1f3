"""Your own system in one config file (world: own, mlipft.own): the example config, the conversion
of files with other keys and units, the refusals of bad input (naming the config entry, the file
and the frame), the dry run of the example, and (slow) one of its figures built for real."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlipft.config import ConfigError, check, load_world
from mlipft.keys import BOHR_TO_ANGSTROM, ENERGY_KEY, FORCES_KEY, HARTREE_TO_EV
from test_paper_world import job_stats

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "examples" / "own_system.yaml"
SN2 = ROOT / "data" / "mini" / "mini" / "benchmarks" / "sn2"
FOUNDATION = ROOT / "data" / "mini" / "mini" / "foundations" / "omat_medium" / "model.model"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture()
def example(monkeypatch):
    monkeypatch.chdir(ROOT)  # the example's relative paths: from the working directory
    return copy.deepcopy(load_world(EXAMPLE))


# ---- the example config ----

def test_example_config_validates_and_holds_only_its_own_figures(example):
    check(example)
    assert set(example["figures"]) == {"mysystem_test_errors", "mysystem_learning_curve", "mysystem_e0s",
                                       "mysystem_loss_curves"}
    from mlipft.config import grid, merge, resolve

    smoke = resolve(merge(load_world(EXAMPLE), {"scale": "smoke"}))
    assert grid(smoke, "mysystem_test_errors")["strategy"] == ["naive", "lora"]
    assert grid(example, "mysystem_e0s")["e0s"] == ["estimated", "average", "foundation", "isolated"]


def test_a_shared_figure_named_by_the_own_file_is_kept(tmp_path, monkeypatch):
    """The shared grids are dropped in world own, unless the own file names one: its keys go over it."""
    monkeypatch.chdir(ROOT)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("figures:\n  sn2_test_errors: {benchmark: mysystem, strategies: [naive]}\n")
    config = load_world(EXAMPLE, overlay)
    assert config["figures"]["sn2_test_errors"]["benchmark"] == "mysystem"
    assert config["figures"]["sn2_test_errors"]["kind"] == "test_errors"  # the shared entry's
    check(config)


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["benchmarks"]["mysystem"]["files"].update(train="nowhere/train.xyz"),
     r"config entry benchmarks\.mysystem\.files\.train: file not found: nowhere/train\.xyz"),
    (lambda c: c["benchmarks"]["mysystem"].update(test="tset"),
     r"config entry benchmarks\.mysystem\.test: 'tset' is not a file of config entry benchmarks\.mysystem\.files"),
    (lambda c: c["benchmarks"]["mysystem"]["units"].update(energy="Hartree"),
     r"config entry benchmarks\.mysystem\.units\.energy: 'Hartree' is not one of"),
    (lambda c: c["benchmarks"]["mysystem"]["keys"].update(energie="E"),
     r"config entry benchmarks\.mysystem\.keys: unknown key\(s\) \['energie'\].*did you mean 'energy'"),
    (lambda c: c["benchmarks"]["mysystem"].update(generator="sn2"),
     r"config entry benchmarks\.mysystem: \['generator'\] belong to the mini or paper world"),
    (lambda c: c["foundations"]["omat_medium"].update(path="nowhere.model"),
     r"config entry foundations\.omat_medium\.path: file not found: nowhere\.model"),
    (lambda c: c["foundations"]["omat_medium"].update(kind="download", source="x"),
     r"config entry foundations\.omat_medium\.kind: world own takes foundations by their model files"),
    (lambda c: c["replay"].clear(),
     (r"config entry figures\.mysystem_test_errors: strategy pseudolabel \(variant base\) replays the set "
      r"'omat_matched', which replay does not define")),
    (lambda c: c["foundations"]["omat_medium"].pop("model"),
     r"config entry foundations\.omat_medium\.model: strategy scratch \(figure mysystem_test_errors\) trains"),
    (lambda c: (c["benchmarks"]["mysystem"].update(md={"start": "test"}),
                c["figures"]["mysystem_loss_curves"].update(kind="md_stability")),
     r"config entry scales\.default\.stability: figure mysystem_loss_curves \(kind md_stability\) needs it"),
])
def test_own_config_errors_name_the_entry(example, mutate, message):
    mutate(example)
    with pytest.raises(ConfigError, match=message):
        check(example)


def test_own_world_keys_are_refused_in_the_mini_world(config):
    config["foundations"]["mp0"] = {"kind": "file", "path": str(FOUNDATION), "description": "x"}
    with pytest.raises(ConfigError, match=r"foundations\.mp0\.kind: a foundation given by its file \(kind: file\) "
                                          r"belongs to world own"):
        check(config)


# ---- the conversion ----

def test_units_are_the_codata_and_si_values():
    from mlipft.convert import ENERGY_UNITS, LENGTH_UNITS

    assert ENERGY_UNITS["hartree"] == HARTREE_TO_EV and LENGTH_UNITS["bohr"] == BOHR_TO_ANGSTROM
    assert ENERGY_UNITS["kcal/mol"] == pytest.approx(0.04336410424, rel=1e-9)
    assert ENERGY_UNITS["kJ/mol"] == pytest.approx(0.01036426966, rel=1e-9)
    assert ENERGY_UNITS["hartree"] / ENERGY_UNITS["kcal/mol"] == pytest.approx(627.5095, rel=1e-6)


def _original_test_frames():
    from ase.io import read

    frames = read(SN2 / "test.xyz", ":")  # the first two of each config_type (tests/data/own_system/README.md)
    return [a for ct in ("r", "p", "path", "ts") for a in [f for f in frames if f.info["config_type"] == ct][:2]]


def test_renamed_keys_in_hartree_and_bohr_come_back_as_the_original_frames():
    """tests/data/own_system/test.xyz (keys gfn2_*, Hartree and Bohr) read with the example's keys
    and units is the committed SN2 test frames it was made from (REF_*, eV, Angstrom)."""
    from mlipft.convert import read_keyed

    frames = read_keyed(ROOT / "tests" / "data" / "own_system" / "test.xyz", "gfn2_energy", "gfn2_forces",
                        energy_unit="hartree", length_unit="bohr")
    original = _original_test_frames()
    assert len(frames) == len(original) == 8
    for got, want in zip(frames, original):
        assert got.get_chemical_symbols() == want.get_chemical_symbols()
        np.testing.assert_allclose(got.positions, want.positions, atol=1e-7)
        assert got.info[ENERGY_KEY] == pytest.approx(want.info[ENERGY_KEY], rel=1e-12)
        np.testing.assert_allclose(got.arrays[FORCES_KEY], want.arrays[FORCES_KEY], atol=1e-6)
        assert "gfn2_energy" not in got.info and "gfn2_forces" not in got.arrays


def test_stress_and_cell_are_converted_with_the_length_unit(tmp_path):
    from ase import Atoms
    from ase.io import write
    from mlipft.convert import read_keyed

    a = Atoms("H2", positions=[[0, 0, 0], [1.0, 0, 0]], cell=np.eye(3) * 10.0, pbc=True)
    a.info["E"] = -1.0
    a.info["S"] = np.arange(1.0, 7.0)  # Voigt
    a.arrays["F"] = np.full((2, 3), 0.1)
    path = tmp_path / "cell.xyz"
    write(path, [a], format="extxyz")
    (got,) = read_keyed(path, "E", "F", "S", energy_unit="hartree", length_unit="bohr", require_stress=True)
    np.testing.assert_allclose(got.cell.array, np.eye(3) * 10.0 * BOHR_TO_ANGSTROM)
    assert got.info[ENERGY_KEY] == pytest.approx(-HARTREE_TO_EV)
    np.testing.assert_allclose(got.arrays[FORCES_KEY], 0.1 * HARTREE_TO_EV / BOHR_TO_ANGSTROM)
    assert got.info["REF_stress"][0, 0] == pytest.approx(HARTREE_TO_EV / BOHR_TO_ANGSTROM**3)


# ---- the import job: conversion, checks against the foundation, refusals ----

def _spec(example, tmp_path, **files):
    """The example's import spec into tmp_path, with some files replaced (name -> entry dict)."""
    from mlipft import own
    from mlipft.paths import Paths

    if files:
        example["benchmarks"]["mysystem"]["files"].update(files)
    return json.loads(own.import_spec(example, Paths(tmp_path / "results", tmp_path / "data"), "mysystem"))


def test_import_of_the_example_writes_canonical_files_that_validate(example, tmp_path):
    from mlipft import own
    from mlipft import validate_data as vd

    spec = _spec(example, tmp_path)
    summary = own.import_benchmark(spec)
    out = tmp_path / "data" / "benchmarks" / "mysystem"
    assert sorted(p.name for p in out.iterdir()) == ["isolated_atoms.xyz", "reaction_paths.xyz", "test.xyz",
                                                     "train.xyz", "valid.xyz"]
    assert summary["isolated_atoms"] == "given"
    check = summary["files"]["test"]["foundation_check"]
    assert 1 / 3 < check["force_slope"] < 3 and 1 / 3 < check["energy_ratio"] < 3
    rc = vd.main([f"--file=train={out / 'train.xyz'}", f"--file=valid={out / 'valid.xyz'}",
                  f"--file=test={out / 'test.xyz'}", "--isolated", str(out / "isolated_atoms.xyz"),
                  "--disjoint", "train,valid,test", "--report", str(tmp_path / "report.json")])
    assert rc == 0


def _write(path, frames):
    from ase.io import write

    write(path, frames, format="extxyz")
    return str(path)


def _sn2_train(n=8):
    from ase.io import read

    return read(SN2 / "train.xyz", f":{n}")


def test_a_frame_without_the_energy_key_is_named_with_the_key_to_set(example, tmp_path):
    from ase.io import read
    from mlipft import own

    frames = read(ROOT / "tests" / "data" / "own_system" / "test.xyz", ":")
    del frames[3].info["gfn2_energy"]
    bad = _write(tmp_path / "test.xyz", frames)
    entry = {"path": bad, "keys": {"energy": "gfn2_energy", "forces": "gfn2_forces"},
             "units": {"energy": "hartree", "length": "bohr"}}
    with pytest.raises(own.OwnDataError) as err:
        own.import_benchmark(_spec(example, tmp_path, test=entry))
    message = str(err.value)
    assert f"config entry benchmarks.mysystem.files.test ({bad})" in message
    assert "frame 3: missing energy key 'gfn2_energy'" in message
    assert "set benchmarks.mysystem.keys.energy, or benchmarks.mysystem.files.test.keys.energy" in message
    assert not (tmp_path / "data" / "benchmarks" / "mysystem" / "train.xyz").exists()  # nothing written


def test_an_element_the_foundation_lacks_is_named_with_file_frame_and_foundation(example, tmp_path):
    from mlipft import own

    frames = _sn2_train()
    symbols = frames[5].get_chemical_symbols()
    frames[5].set_chemical_symbols(["I" if s in ("Br", "Cl", "F") and i == 5 else s for i, s in enumerate(symbols)])
    bad = _write(tmp_path / "valid.xyz", frames)
    with pytest.raises(own.OwnDataError) as err:
        own.import_benchmark(_spec(example, tmp_path, valid=bad))
    message = str(err.value)
    assert message.startswith(f"config entry benchmarks.mysystem.files.valid ({bad}): frame 5 has element I (1 frames)")
    assert ("which foundation omat_medium (foundations.omat_medium.path: data/mini/mini/foundations/omat_medium/"
            "model.model) lacks (its elements: H, Li, C, N, O, F, Na, P, S, Cl, Br)") in message


def test_an_element_the_isolated_atoms_lack_is_named(example, tmp_path):
    from ase.io import read
    from mlipft import own

    isolated = [a for a in read(SN2 / "isolated_atoms.xyz", ":") if a.get_chemical_symbols() != ["Br"]]
    bad = _write(tmp_path / "isolated.xyz", isolated)
    with pytest.raises(own.OwnDataError, match=r"config entry benchmarks\.mysystem\.files\.\w+ "
                       r"\(.*\): frame \d+ has element Br \(\d+ frames\), which the isolated atoms lack \(config entry "
                       r"benchmarks\.mysystem\.files\.isolated_atoms \(.*isolated\.xyz\) has H, C, F, Cl\)"):
        own.import_benchmark(_spec(example, tmp_path, isolated_atoms=bad))


@pytest.mark.parametrize("true_units, declared, found, suggested", [
    ({"energy": "hartree", "length": "bohr"}, {}, "its interatomic distances are 1.9",
     "They look like bohr (1.89x): set units: {energy: hartree, length: bohr}"),
    ({"energy": "kcal/mol", "length": "angstrom"}, {}, "its forces are 1",
     "They look like kcal/mol/angstrom (23.06x): set units: {energy: kcal/mol}"),
    ({"energy": "hartree", "length": "angstrom"}, {"energy": "kcal/mol"}, "its forces are 0.001",
     "They look like hartree/angstrom (0.001594x): set units: {energy: hartree}"),
])
def test_units_that_disagree_with_the_data_stop_with_the_unit_to_set(example, tmp_path, true_units, declared, found,
                                                                     suggested):
    """Eight SN2 training frames written in other units and declared as eV/A (or kcal/mol): in Bohr
    the bonds are 1.89x the covalent radii; in kcal/mol the forces are 23.06x the foundation's; in
    Hartree read as kcal/mol 1/627.5. The message names the file, the factor and the units to set."""
    from mlipft import own
    from mlipft.convert import ENERGY_UNITS, LENGTH_UNITS

    e, length = ENERGY_UNITS[true_units["energy"]], LENGTH_UNITS[true_units["length"]]
    frames = []
    for a in _sn2_train():
        b = a.copy()
        b.positions = b.positions / length
        b.info[ENERGY_KEY] = a.info[ENERGY_KEY] / e
        b.arrays[FORCES_KEY] = a.arrays[FORCES_KEY] / (e / length)
        frames.append(b)
    bad = _write(tmp_path / "mine.xyz", frames)
    entry = {"path": bad, "units": declared} if declared else bad
    with pytest.raises(own.OwnDataError) as err:
        own.import_benchmark(_spec(example, tmp_path, valid=entry))
    message = str(err.value)
    assert message.startswith(f"config entry benchmarks.mysystem.files.valid ({bad}): read as energy "
                              f"{declared.get('energy', 'eV')}, length angstrom, {found}"), message
    assert suggested in message and "in benchmarks.mysystem (every file) or benchmarks.mysystem.files.valid " \
        "(this file)" in message, message
    assert "If the units are right, set benchmarks.mysystem.units.check: false." in message


def test_the_import_cli_exits_1_with_the_message(example, tmp_path):
    from ase.io import read

    frames = read(SN2 / "valid.xyz", ":4")
    for a in frames:
        a.info["E"] = a.info.pop(ENERGY_KEY)
    bad = _write(tmp_path / "valid.xyz", frames)
    spec = _spec(example, tmp_path, valid=bad)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "scripts"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "mlipft.own", "import", "--spec", json.dumps(spec), "--summary",
                           str(tmp_path / "summary.json")], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 1 and not (tmp_path / "summary.json").exists()
    assert f"own benchmark not imported: config entry benchmarks.mysystem.files.valid ({bad}): {bad}: frame 0: " \
           "missing energy key 'REF_energy'" in proc.stderr


def test_judge_units_takes_energies_alone_only_when_forces_cannot_tell():
    from mlipft.own import judge_units

    declared = {"energy": "eV", "length": "angstrom"}
    base = {"frames": list(range(8)), "force_slope": 0.9, "force_correlation": 0.95, "force_rms": 1.0,
            "force_rms_foundation": 1.1, "energy_per_atom": -1000.0, "energy_per_atom_foundation": -5.0,
            "energy_ratio": 200.0}
    problem, notes = judge_units(base, declared, "benchmarks.b.files.train (x.xyz)", "f")
    assert problem is None and "another energy reference" in notes[0]  # all-electron energies, right forces
    relaxed = {**base, "force_correlation": 0.1, "energy_per_atom": -2.0, "energy_per_atom_foundation": -54.4,
               "energy_ratio": 2.0 / 54.4}
    problem, _ = judge_units(relaxed, declared, "benchmarks.b.files.train (x.xyz)", "f")
    assert "set units: {energy: hartree}" in problem


# ---- the workflow ----

def test_dry_run_of_the_example_resolves():
    """The README's command, dry: one import of your files, one foundation installed, the data
    validated before the two smoke strategies train."""
    cmd = SNAKEMAKE + ["-n", "--nolock", "mysystem_test_errors", "--configfile", str(EXAMPLE), "--config",
                       "scale=smoke", "--quiet", "rules"]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    stats = job_stats(out)
    assert stats["import_mysystem"] == 1 and stats["install_foundation"] == 1 and stats["validate_data"] == 1
    # one evaluation per model, on both evaluation sets
    assert stats["finetune"] == 2 and stats["evaluate_errors"] == 2 and stats["validate_evalset"] == 2


@pytest.mark.slow
def test_the_example_builds_its_test_errors_figure_at_smoke_scale(tmp_path):
    """mysystem_test_errors at smoke scale (naive and LoRA, two epochs) in a work directory of its
    own: your files converted (the test set from Hartree and Bohr), validated, fine-tuned, evaluated,
    plotted."""
    import pandas as pd

    work = tmp_path / "own"
    (work / "data").mkdir(parents=True)
    (work / "tests" / "data").mkdir(parents=True)
    (work / "config").symlink_to(ROOT / "config")
    (work / "data" / "mini").symlink_to(ROOT / "data" / "mini")
    (work / "tests" / "data" / "own_system").symlink_to(ROOT / "tests" / "data" / "own_system")
    cmd = SNAKEMAKE + ["-s", str(ROOT / "Snakefile"), "-d", str(work), "mysystem_test_errors", "--cores", "1",
                       "--configfile", "config/examples/own_system.yaml", "--config", "scale=smoke"]
    proc = subprocess.run(cmd, check=False, cwd=work, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    results = work / "results" / "smoke"
    table = pd.read_csv(results / "tables" / "mysystem_test_errors_errors.csv")
    assert set(table.strategy) == {"naive", "lora"} and set(table.evalset) == {"test", "reaction_paths"}
    energy = table[(table.metric == "energy_rmse") & (table.evalset == "test")]
    # a test set left in Hartree would be off by ~56 eV/atom: the conversion held
    assert (energy.value < 500).all(), energy
    assert (results / "figures" / "mysystem_test_errors.png").stat().st_size > 10_000
    summary = json.loads((work / "data" / "own" / "smoke" / "benchmarks" / "mysystem" / "summary.json").read_text())
    assert summary["files"]["test"]["units"]["energy"] == "hartree"
    assert json.loads((results / "validation" / "mysystem.json").read_text())["disjoint"] == ["test", "train", "valid"]
