"""The paper world's SPICE and LPSC benchmarks and its held-out pretraining-distribution sets:
mlipft.paper's recipes spice_maceoff and lpsc_archive on small synthetic files written here in the
converters' input formats (MACE-OFF extxyz in tarballs: ``energy`` / ``forces``; LPSC_600 extxyz:
``ref_energy`` / ``ref_forces`` / ``stress``; ../shared/paper-data holds no real sample of either),
the split of a replay file into a held-out test set and the pool its replay sets are drawn from,
refusals of bad inputs (naming the file and frame), the paper config's entries, the manual
download of the unconfirmed LPSC held-out files, and the offline dry runs of the SPICE, LPSC and
Fig. 10 figures."""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from mlipft import paper
from mlipft.config import ConfigError, check, load_world, strategy_names
from mlipft.convert import ConversionError, convert
from mlipft.io import read_configs, write_atomic
from mlipft.keys import (
    CONFIG_TYPE_KEY,
    ENERGY_KEY,
    FORCES_KEY,
    ISOLATED_ATOM,
    STRESS_KEY,
)
from mlipft.paths import Paths
from test_paper_world import job_stats

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIG = ROOT / "config" / "paper.yaml"
E0 = {"H": -13.6, "C": -1029.8, "N": -1485.3, "O": -2043.9, "F": -2715.6, "Li": -203.1, "P": -9287.5,
      "S": -10823.0, "Cl": -12522.4, "Br": -70045.3, "Na": -4421.2}


def keys_of(frames):
    return {paper.frame_key(a) for a in frames}


# ---------------------------------------------------------------------------------------------
# synthetic MACE-OFF files (energy / forces as ASE writes a calculator's results; info kept)

MOLECULES = {  # name: (species in atom order, smiles)
    "methane": ("CHHHH", "C"),
    "water": ("OHH", "O"),
    "ammonia": ("NHHH", "N"),
    "methanol": ("COHHHH", "CO"),
    "fluoromethane": ("CFHHH", "CF"),
}


def _species(spec: str) -> list[str]:
    return re.findall(r"[A-Z][a-z]?", spec)


def _molecule(rng, species, shift=0.0):
    n = len(species)
    pos = np.array([[1.1 * i, 0.3 * (i % 2), 0.2 * (i % 3)] for i in range(n)], float) + rng.normal(0, 0.05, (n, 3))
    return Atoms(species, positions=pos + shift)


def spice_frames(seed=0, n_conf=4, smiles=True, charge=None):
    """Conformers of the MOLECULES (n_conf each, interleaved as a file of several subsets would
    be) with calculator energies and forces, info config_type / total_charge (/ smiles)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_conf):
        for spec, smi in MOLECULES.values():
            a = _molecule(rng, _species(spec))
            energy = sum(E0[s] for s in a.get_chemical_symbols()) - 0.5 * len(a) + rng.normal(0, 0.05)
            a.calc = SinglePointCalculator(a, energy=energy, forces=rng.normal(0, 0.5, (len(a), 3)))
            a.info.update({"config_type": "PubChem", "total_charge": 0 if charge is None else charge})
            if smiles:
                a.info["smiles"] = smi
            frames.append(a)
    return frames


def isolated_rows(elements):
    rows = []
    for s in elements:
        a = Atoms(s)
        a.calc = SinglePointCalculator(a, energy=E0[s])
        a.info["config_type"] = ISOLATED_ATOM
        rows.append(a)
    return rows


def write_tarball(path: Path, members: dict[str, list[Atoms] | str]) -> Path:
    """A tar.gz whose members are extxyz files (frames) or text."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            if isinstance(content, str):
                data = content.encode()
            else:
                buf = io.StringIO()
                ase.io.write(buf, content, format="extxyz")
                data = buf.getvalue().encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def spice_inputs(tmp_path):
    """Tarballs as the MACE-OFF split's, extracted and converted: train (5 molecules x 4 conformers
    and isolated atoms of every element) and test (5 molecules x 2 further conformers, two members)."""
    train = isolated_rows(["H", "C", "N", "O", "F"]) + spice_frames(seed=0)
    test = spice_frames(seed=1, n_conf=2)
    raw = {"train": write_tarball(tmp_path / "train_large_neut_no_bad_clean.tar.gz",
                                  {"train_large_neut_no_bad_clean.xyz": train, "README.txt": "not data\n"}),
           "test": write_tarball(tmp_path / "test_large_neut_all.tar.gz",
                                 {"test/part1.xyz": test[:5], "test/part2.extxyz": test[5:]})}
    converted = {}
    for role, tarball in raw.items():
        extracted = tmp_path / f"{role}_extracted.xyz"
        paper.extract_xyz(tarball, extracted)
        converted[role] = str(tmp_path / f"{role}.xyz")
        convert("spice", [extracted], converted[role])
    return {"raw": raw, "converted": converted, "train": train, "test": test}


def build_spice(inputs, tmp_path, params=None, seed=0, name="spice"):
    out = tmp_path / name
    summary = paper.build_benchmark("spice_maceoff", inputs, {"n_valid": 4, **(params or {})}, seed, [], out)
    return summary, {n: read_configs(out / f"{n}.xyz") for n in paper.SPICE_FILES}


# ---------------------------------------------------------------------------------------------
# tarballs


def test_extract_concatenates_the_xyz_members(spice_inputs, tmp_path):
    out = tmp_path / "test.xyz"
    info = paper.extract_xyz(spice_inputs["raw"]["test"], out)
    assert [m["member"] for m in info["members"]] == ["test/part1.xyz", "test/part2.extxyz"]
    frames = ase.io.read(out, index=":")
    assert len(frames) == 10
    assert np.allclose(frames[7].positions, spice_inputs["test"][7].positions)
    # the README of the training tarball is skipped, not unpacked
    info = paper.extract_xyz(spice_inputs["raw"]["train"], tmp_path / "train.xyz")
    assert info["skipped"] == ["README.txt"] and len(ase.io.read(tmp_path / "train.xyz", index=":")) == 25
    # the CLI writes the member list
    paper.main(["extract", "--input", str(spice_inputs["raw"]["test"]), "--output", str(tmp_path / "cli.xyz"),
                "--summary", str(tmp_path / "cli.json")])
    assert json.loads((tmp_path / "cli.json").read_text())["members"][1]["member"] == "test/part2.extxyz"


def test_extract_names_bad_archives(tmp_path):
    not_tar = tmp_path / "broken.tar.gz"
    not_tar.write_text("this is not a tar archive\n")
    with pytest.raises(paper.PaperDataError, match=rf"{re.escape(str(not_tar))}: not a readable tar archive"):
        paper.extract_xyz(not_tar, tmp_path / "x.xyz")
    no_xyz = write_tarball(tmp_path / "docs.tar.gz", {"README.md": "x\n", "data.h5": "y\n"})
    with pytest.raises(paper.PaperDataError, match=r"docs\.tar\.gz: no \.xyz / \.extxyz member \(members: "
                                                   r"\['README\.md', 'data\.h5'\]"):
        paper.extract_xyz(no_xyz, tmp_path / "y.xyz")
    assert not (tmp_path / "y.xyz").exists()
    # a truncated download
    good = write_tarball(tmp_path / "good.tar.gz", {"a.xyz": spice_frames(n_conf=20)})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(paper.PaperDataError, match=r"cut\.tar\.gz: (corrupt or truncated|not a readable) tar archive"):
        paper.extract_xyz(cut, tmp_path / "z.xyz")
    assert not (tmp_path / "z.xyz").exists()


def test_extracted_dest():
    assert paper.extracted_dest("spice-maceoff/test_large_neut_all.tar.gz") == \
        "extracted/spice-maceoff/test_large_neut_all.xyz"
    assert paper.source_input_dest("supplementary/li/data/LPSC_600.extxyz") == "supplementary/li/data/LPSC_600.extxyz"
    assert not paper.is_tarball("a.xyz") and paper.is_tarball("a.tgz")


# ---------------------------------------------------------------------------------------------
# SPICE


def test_spice_recipe_one_configuration_per_molecule(spice_inputs, tmp_path):
    summary, files = build_spice(spice_inputs["converted"], tmp_path)
    assert summary["molecule_key"] == "smiles" and summary["molecules"] == len(MOLECULES)
    assert summary["files"] == {"train": 5, "train_all": 16, "valid": 4, "test": 10, "isolated_atoms": 5}
    # one configuration per molecule, every molecule
    assert sorted(a.info["molecule"] for a in files["train"]) == sorted(s for _, s in MOLECULES.values())
    # train is a subset of train_all; valid is disjoint from both; together they are every training frame
    train, train_all, valid, test = (keys_of(files[n]) for n in ("train", "train_all", "valid", "test"))
    assert train <= train_all and not (train_all & valid) and not (train_all & test) and not (valid & test)
    source = [a for a in read_configs(spice_inputs["converted"]["train"]) if a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM]
    assert train_all | valid == keys_of(source) and len(train_all) + len(valid) == 20
    assert test == keys_of(read_configs(spice_inputs["converted"]["test"]))
    # valid holds conformers of the training molecules, never the one trained on
    assert {a.info["molecule"] for a in files["valid"]} <= {a.info["molecule"] for a in files["train"]}
    # source_frame: the frame of the training file, IsolatedAtom rows counted (5 of them first)
    assert all(a.info["source_frame"] >= 5 for a in files["train_all"])
    assert summary["source_frames"]["train"] == sorted(a.info["source_frame"] for a in files["train"])
    # labels kept (REF_*), in eV
    for a in files["train"] + files["test"]:
        assert ENERGY_KEY in a.info and a.arrays[FORCES_KEY].shape == (len(a), 3)
    # isolated atoms: the source's own rows (they cover every element)
    iso = {a.get_chemical_symbols()[0]: a.info[ENERGY_KEY] for a in files["isolated_atoms"]}
    assert iso == pytest.approx({s: E0[s] for s in ("H", "C", "N", "O", "F")})
    assert summary["isolated_atoms"]["source"] == "isolated-atom rows of the source"
    assert "no torsion scans" in summary["torsions"]


def test_spice_split_is_seeded(spice_inputs, tmp_path):
    summary, _ = build_spice(spice_inputs["converted"], tmp_path, name="a")
    again, _ = build_spice(spice_inputs["converted"], tmp_path, name="b")
    other, _ = build_spice(spice_inputs["converted"], tmp_path, seed=3, name="c")
    assert again["source_frames"] == summary["source_frames"] != other["source_frames"]
    # a subset of molecules and of the test split, seeded
    sub, files = build_spice(spice_inputs["converted"], tmp_path, {"n_molecules": 2, "n_test": 3, "n_valid": 2},
                             name="d")
    assert sub["files"]["train"] == 2 and sub["files"]["train_all"] == 6 and sub["files"]["test"] == 3
    assert len({a.info["molecule"] for a in files["train_all"] + files["valid"]}) == 2


def test_spice_molecules_without_a_name_key(tmp_path):
    """No molecule / smiles key: molecules are told apart by their atom-ordered species."""
    train, test = tmp_path / "train.xyz", tmp_path / "test.xyz"
    ase.io.write(train, spice_frames(seed=0, smiles=False), format="extxyz")
    ase.io.write(test, spice_frames(seed=1, n_conf=1, smiles=False), format="extxyz")
    conv = {role: str(tmp_path / f"{role}_conv.xyz") for role in ("train", "test")}
    convert("spice", [train], conv["train"])
    convert("spice", [test], conv["test"])
    summary, files = build_spice(conv, tmp_path)
    assert summary["molecule_key"] == paper.SPECIES_SEQUENCE and summary["files"]["train"] == len(MOLECULES)
    assert len({a.info["molecule"] for a in files["train"]}) == len(MOLECULES)
    # no isolated-atom rows in the source: least-squares stand-ins, marked
    assert all(a.info["e0_source"] == "least_squares" for a in files["isolated_atoms"])
    assert summary["isolated_atoms"]["note"] == paper.E0_STANDIN_NOTE
    # an explicit key that a frame lacks is named with the frame
    with pytest.raises(paper.PaperDataError, match=r"train_conv\.xyz: frame 0: no info key 'smiles'"):
        build_spice(conv, tmp_path, {"molecule_key": "smiles"}, name="x")


def test_spice_bad_inputs_are_named(spice_inputs, tmp_path):
    conv = spice_inputs["converted"]
    frames = read_configs(conv["train"])
    # a charged configuration (frame 7 of the file: 5 isolated atoms first)
    charged = [a.copy() for a in frames]
    charged[7].info["total_charge"] = -1
    write_atomic(tmp_path / "charged.xyz", charged)
    with pytest.raises(paper.PaperDataError, match=r"charged\.xyz: frame 7: total_charge -1: a charged configuration"):
        build_spice({**conv, "train": str(tmp_path / "charged.xyz")}, tmp_path, name="a")
    # a test configuration that is a training one
    test = read_configs(conv["test"]) + [frames[9]]
    write_atomic(tmp_path / "leaky_test.xyz", test)
    with pytest.raises(paper.PaperDataError, match=r"leaky_test\.xyz: frame 10 repeats frame 9 of .*train\.xyz"):
        build_spice({**conv, "test": str(tmp_path / "leaky_test.xyz")}, tmp_path, name="b")
    # a repeated training frame
    write_atomic(tmp_path / "repeat.xyz", frames + [frames[6]])
    with pytest.raises(paper.PaperDataError, match=r"repeat\.xyz: frame 25 repeats frame 6"):
        build_spice({**conv, "train": str(tmp_path / "repeat.xyz")}, tmp_path, name="c")
    # too few conformers for the validation set
    with pytest.raises(paper.PaperDataError, match=r"15 conformers besides one per molecule .*n_valid 16"):
        build_spice(conv, tmp_path, {"n_valid": 16}, name="d")
    # two isolated-atom rows of one element that disagree
    dup = frames[:1] + [frames[0].copy()] + frames[1:]
    dup[1].info[ENERGY_KEY] += 1.0
    write_atomic(tmp_path / "iso.xyz", dup)
    with pytest.raises(paper.PaperDataError, match=r"iso\.xyz: frames 0 and 1: two IsolatedAtom rows of H"):
        build_spice({**conv, "train": str(tmp_path / "iso.xyz")}, tmp_path, name="e")
    # raw MACE-OFF frames without forces: the converter names the frame
    raw = spice_frames(seed=5, n_conf=1)
    raw[2].calc = SinglePointCalculator(raw[2], energy=raw[2].get_potential_energy())
    ase.io.write(tmp_path / "no_forces.xyz", raw, format="extxyz")
    with pytest.raises(ConversionError, match=r"no_forces\.xyz: frame 2: missing forces key 'forces'"):
        convert("spice", [tmp_path / "no_forces.xyz"], tmp_path / "never.xyz")


# ---------------------------------------------------------------------------------------------
# synthetic LPSC files (ref_energy / ref_forces / stress, as LPSC_600.extxyz)


def lpsc_cell(rng, formula: str, a: float = 7.0) -> Atoms:
    symbols = _species_counts(formula)
    n = len(symbols)
    grid = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(3)], float)[:n] / 3.0
    atoms = Atoms(symbols, scaled_positions=grid + rng.normal(0, 0.01, (n, 3)), cell=np.eye(3) * a, pbc=True)
    return atoms


def _species_counts(formula: str) -> list[str]:
    out = []
    for symbol, count in re.findall(r"([A-Z][a-z]?)(\d*)", formula):
        out += [symbol] * int(count or 1)
    return out


def lpsc_frames(formulas, seed=0, per_formula=1):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(per_formula):
        for formula in formulas:
            a = lpsc_cell(rng, formula)
            a.info["ref_energy"] = sum(E0[s] for s in a.get_chemical_symbols()) - 4.0 * len(a) + rng.normal(0, 0.1)
            a.arrays["ref_forces"] = rng.normal(0, 1.0, (len(a), 3))
            a.info["stress"] = rng.normal(0, 0.01, 6)  # Voigt-6, eV/A^3
            frames.append(a)
    return frames


@pytest.fixture()
def lpsc_inputs(tmp_path):
    """LPSC_600-like data (20 frames of Li6PS5Cl), 3 other argyrodites (one with Br, an element the
    training data lacks) and 3 non-argyrodites, converted with the lpsc converter."""
    raw = {"data": lpsc_frames(["Li6PS5Cl"], seed=0, per_formula=20),
           "other_argyrodites": lpsc_frames(["Li5PS4Cl2", "Li11P2S9Cl3", "Li6PS5Br"], seed=1),
           "non_argyrodites": lpsc_frames(["Li2S", "LiCl", "Li3PS4"], seed=2)}
    conv = {}
    for role, frames in raw.items():
        path = tmp_path / f"raw_{role}.extxyz"
        ase.io.write(path, frames, format="extxyz")
        conv[role] = str(tmp_path / f"{role}.xyz")
        convert("lpsc", [path], conv[role])
    return conv


def build_lpsc(inputs, tmp_path, params=None, seed=0, name="lpsc"):
    out = tmp_path / name
    summary = paper.build_benchmark("lpsc_archive", inputs, {"n_valid": 3, "n_test": 5, **(params or {})}, seed, [], out)
    return summary, {n: read_configs(out / f"{n}.xyz") for n in paper.LPSC_FILES}


def test_lpsc_recipe_splits_and_heldout_sets(lpsc_inputs, tmp_path):
    summary, files = build_lpsc(lpsc_inputs, tmp_path)
    assert summary["files"] == {"train": 12, "valid": 3, "test": 5, "heldout_other_argyrodites": 2,
                                "heldout_non_argyrodites": 3, "isolated_atoms": 4}
    # disjoint splits covering the data; held-out sets disjoint from them and from each other
    keys = {n: keys_of(files[n]) for n in paper.LPSC_FILES if n != "isolated_atoms"}
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not keys[a] & keys[b], (a, b)
    assert keys["train"] | keys["valid"] | keys["test"] == keys_of(read_configs(lpsc_inputs["data"]))
    assert sorted(summary["source_frames"]["train"] + summary["source_frames"]["valid"]
                  + summary["source_frames"]["test"]) == list(range(20))
    # every frame periodic, with energy, forces and 3x3 stress
    for name in names:
        for a in files[name]:
            assert a.pbc.all() and ENERGY_KEY in a.info and a.arrays[FORCES_KEY].shape == (len(a), 3)
            assert np.shape(a.info[STRESS_KEY]) == (3, 3)
    # the held-out frame with Br (not in the training data) is dropped and recorded
    assert summary["heldout"]["other_argyrodites"]["dropped_foreign_element_frames"] == [2]
    assert {a.info["heldout_set"] for a in files["heldout_non_argyrodites"]} == {"non_argyrodites"}
    assert summary["heldout"]["non_argyrodites"]["compositions"] == ["ClLi", "Li2S", "Li3PS4"]
    # isolated atoms: least-squares stand-ins of the one-composition training split (minimum norm)
    iso = files["isolated_atoms"]
    assert sorted(a.get_chemical_symbols()[0] for a in iso) == ["Cl", "Li", "P", "S"]
    assert all(a.info["e0_source"] == "least_squares" and a.info[CONFIG_TYPE_KEY] == ISOLATED_ATOM for a in iso)
    # seeded
    again, _ = build_lpsc(lpsc_inputs, tmp_path, name="again")
    other, _ = build_lpsc(lpsc_inputs, tmp_path, seed=1, name="other")
    assert again["source_frames"] == summary["source_frames"] != other["source_frames"]
    sized, _ = build_lpsc(lpsc_inputs, tmp_path, {"n_train": 4}, name="sized")
    assert sized["files"]["train"] == 4


def test_lpsc_bad_inputs_are_named(lpsc_inputs, tmp_path):
    # a held-out structure that is an LPSC_600 frame
    data = read_configs(lpsc_inputs["data"])
    held = read_configs(lpsc_inputs["non_argyrodites"]) + [data[4]]
    write_atomic(tmp_path / "leak.xyz", held)
    with pytest.raises(paper.PaperDataError, match=r"leak\.xyz: frame 3 repeats frame 4 of .*data\.xyz"):
        build_lpsc({**lpsc_inputs, "non_argyrodites": str(tmp_path / "leak.xyz")}, tmp_path, name="a")
    # the same structure in both held-out sets
    with pytest.raises(paper.PaperDataError, match=r"non_argyrodites\.xyz: frame 0 repeats frame 0 of .*non_argyrodites\.xyz"):
        build_lpsc({**lpsc_inputs, "other_argyrodites": lpsc_inputs["non_argyrodites"]}, tmp_path, name="b")
    # foreign elements: error when asked
    with pytest.raises(paper.PaperDataError, match=r"other_argyrodites\.xyz: frame 2: elements \['Br'\] are not in "
                                                   r"the training split"):
        build_lpsc(lpsc_inputs, tmp_path, {"foreign_elements": "error"}, name="c")
    with pytest.raises(paper.PaperDataError, match=r"foreign_elements must be drop or error"):
        build_lpsc(lpsc_inputs, tmp_path, {"foreign_elements": "keep"}, name="d")
    # a converted frame without stress (the recipe's own check names it)
    no_stress = [a.copy() for a in data]
    del no_stress[6].info[STRESS_KEY]
    write_atomic(tmp_path / "no_stress.xyz", no_stress)
    with pytest.raises(paper.PaperDataError, match=r"no_stress\.xyz: frame 6: no REF_stress"):
        build_lpsc({**lpsc_inputs, "data": str(tmp_path / "no_stress.xyz")}, tmp_path, name="e")
    # the raw file: the converter names the frame without ref_forces
    raw = lpsc_frames(["Li6PS5Cl"], seed=9, per_formula=3)
    del raw[1].arrays["ref_forces"]
    ase.io.write(tmp_path / "raw.extxyz", raw, format="extxyz")
    with pytest.raises(ConversionError, match=r"raw\.extxyz: frame 1: missing forces key 'ref_forces'"):
        convert("lpsc", [tmp_path / "raw.extxyz"], tmp_path / "never.xyz")
    # too many frames asked of the data
    with pytest.raises(paper.PaperDataError, match=r"data\.xyz: cannot split 20 frames"):
        build_lpsc(lpsc_inputs, tmp_path, {"n_test": 18}, name="f")


# ---------------------------------------------------------------------------------------------
# the held-out pretraining-distribution test set of a replay file


def replay_file(path: Path, seed=0, duplicates=True, groups=False) -> list[Atoms]:
    """A canonical (REF_*) replay file of periodic structures of several element sets, with a few
    exact repeats (a relaxation trajectory's frames can coincide)."""
    rng = np.random.default_rng(seed)
    formulas = ["Li2S", "LiCl", "Li3PS4", "NaCl", "H2O", "H4O2", "CH4", "NaClO4", "LiPS"]
    frames = []
    for k in range(16):
        for f in formulas:
            a = lpsc_cell(rng, f, a=6.0)
            a.info[ENERGY_KEY] = sum(E0[s] for s in a.get_chemical_symbols()) - 3.0 * len(a) + rng.normal(0, 0.2)
            a.arrays[FORCES_KEY] = rng.normal(0, 2.0, (len(a), 3))
            a.info[STRESS_KEY] = rng.normal(0, 0.01, (3, 3))
            if groups:
                a.info["mp_id"] = f"mp-{f}-{k // 4}"
            frames.append(a)
    if duplicates:
        frames += [frames[3].copy(), frames[40].copy()]
    write_atomic(path, frames)
    return frames


def split(tmp_path, source, params, seed=0, name="c"):
    out = {k: tmp_path / name / f"{k}.xyz" for k in ("pool", "test", "isolated")}
    info = paper.split_corpus(source, out["pool"], out["test"], out["isolated"], params, seed)
    return info, {k: read_configs(v) for k, v in out.items()}, out


def test_pretraining_split_is_disjoint_from_every_replay_set(tmp_path):
    from mlipft import replay

    source = tmp_path / "mp_traj_like.xyz"
    frames = replay_file(source)
    info, parts, out = split(tmp_path, source, {"test_fraction": 0.25})
    assert info["frames"] == len(frames) == len(parts["pool"]) + len(parts["test"])
    assert 0.1 < info["test"] / info["frames"] < 0.4
    test_keys = keys_of(parts["test"])
    assert not test_keys & keys_of(parts["pool"])  # repeats fall on one side
    # every replay set drawn from the file (its pool): element-matched to each benchmark, random,
    # full, any seed and size, as rule replay_set draws them; none shares a structure with the test set
    targets = {"lpsc": lpsc_frames(["Li6PS5Cl"]), "nacl": lpsc_frames(["NaClH2O"]), "ice": lpsc_frames(["H2O"])}
    for name, target in targets.items():
        write_atomic(tmp_path / f"{name}_train.xyz", target)
        for mode in ("element_matched", "random", "full"):
            for seed in (0, 1):
                dest = tmp_path / "replay" / f"{name}_{mode}_{seed}.xyz"
                replay.main(["--corpus", str(out["pool"]), "--target", str(tmp_path / f"{name}_train.xyz"),
                             "--mode", mode, "--n", "20", "--seed", str(seed), "--output", str(dest)])
                drawn = read_configs(dest)
                assert drawn and not keys_of(drawn) & test_keys, (name, mode, seed)
    # the benchmarks' pretraining sets (derived: the test structures made of their elements)
    from mlipft.derive import within_elements

    lpsc = within_elements(parts["test"], targets["lpsc"])
    assert lpsc and all(set(a.get_chemical_symbols()) <= {"Li", "P", "S", "Cl"} for a in lpsc)
    # isolated atoms: one least-squares row per element of the file, marked
    iso = parts["isolated"]
    assert sorted(a.get_chemical_symbols()[0] for a in iso) == sorted({s for a in frames for s in a.get_chemical_symbols()})
    assert all(a.info["e0_source"] == "least_squares" for a in iso)
    # the labels survive the split
    assert all(np.shape(a.info[STRESS_KEY]) == (3, 3) and ENERGY_KEY in a.info for a in parts["test"])


def test_pretraining_split_is_seeded_and_groups(tmp_path):
    source = tmp_path / "replay.xyz"
    replay_file(source, duplicates=False, groups=True)
    _, a, _ = split(tmp_path, source, {"test_fraction": 0.3}, seed=0, name="a")
    _, b, _ = split(tmp_path, source, {"test_fraction": 0.3}, seed=0, name="b")
    _, c, _ = split(tmp_path, source, {"test_fraction": 0.3}, seed=1, name="c")
    assert keys_of(a["test"]) == keys_of(b["test"]) != keys_of(c["test"])
    # the held-out decision is the structure's, not its position: a shuffled copy splits alike
    frames = read_configs(source)
    write_atomic(tmp_path / "shuffled.xyz", frames[::-1])
    _, d, _ = split(tmp_path, tmp_path / "shuffled.xyz", {"test_fraction": 0.3}, seed=0, name="d")
    assert keys_of(d["test"]) == keys_of(a["test"])
    # group_key: all frames of a material on one side
    _, g, _ = split(tmp_path, source, {"test_fraction": 0.3, "group_key": "mp_id"}, name="g")
    test_ids, pool_ids = ({x.info["mp_id"] for x in g[k]} for k in ("test", "pool"))
    assert test_ids and not test_ids & pool_ids


def test_pretraining_split_names_bad_frames(tmp_path):
    source = tmp_path / "replay.xyz"
    frames = replay_file(source, duplicates=False)
    bad = [a.copy() for a in frames]
    del bad[5].info[ENERGY_KEY]
    write_atomic(tmp_path / "no_energy.xyz", bad)
    with pytest.raises(paper.PaperDataError, match=r"no_energy\.xyz: frame 5: no finite REF_energy"):
        split(tmp_path, tmp_path / "no_energy.xyz", {}, name="a")
    bad = [a.copy() for a in frames]
    bad[7].arrays[FORCES_KEY] = bad[7].arrays[FORCES_KEY][:, :2]
    write_atomic(tmp_path / "bad_forces.xyz", bad)
    with pytest.raises(paper.PaperDataError, match=r"bad_forces\.xyz: frame 7: no REF_forces of shape"):
        split(tmp_path, tmp_path / "bad_forces.xyz", {}, name="b")
    with pytest.raises(paper.PaperDataError, match=r"replay\.xyz: frame 0: no info key 'mp_id'"):
        split(tmp_path, source, {"group_key": "mp_id"}, name="c")
    with pytest.raises(ValueError, match=r"test_fraction: 1\.5 is not a number in \(0, 1\)"):
        split(tmp_path, source, {"test_fraction": 1.5}, name="d")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['n_test'\]"):
        split(tmp_path, source, {"n_test": 3}, name="e")
    assert not (tmp_path / "a" / "pool.xyz").exists()  # nothing written on failure
    # the CLI
    paper.main(["split-corpus", "--input", str(source), "--params", '{"test_fraction": 0.2}', "--seed", "0",
                "--pool", str(tmp_path / "p.xyz"), "--test", str(tmp_path / "t.xyz"),
                "--isolated", str(tmp_path / "i.xyz"), "--summary", str(tmp_path / "s.json")])
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["pool"] + summary["test"] == len(frames) and summary["test_fraction"] == 0.2


def test_replay_sets_read_the_pool_of_a_split_corpus(paper_config):
    paths = Paths("results/paper", "data/paper/paper")
    assert set(paper_config["scales"]["paper"]["corpora"]) == {"mptrj_replay", "mptrj_replay_omat"}
    assert paper.replay_corpus_file(paper_config, paths, "mptrj_replay") == "data/paper/paper/corpora/mptrj_replay/train.xyz"
    assert paper.replay_corpus_file(paper_config, paths, "sn2_omat24_replay") == \
        "data/paper/paper/replay_sources/sn2_omat24_replay.xyz"


# ---------------------------------------------------------------------------------------------
# the paper config


@pytest.fixture()
def paper_config():
    return copy.deepcopy(load_world(PAPER_CONFIG))


def test_paper_config_declares_spice_and_lpsc(paper_config):
    check(paper_config)
    mini = load_world(ROOT / "config" / "config.yaml")["benchmarks"]
    spice, lpsc = paper_config["benchmarks"]["spice"], paper_config["benchmarks"]["lpsc"]
    assert (spice["recipe"], spice["format"], lpsc["recipe"], lpsc["format"]) == ("spice_maceoff", "spice", "lpsc_archive", "lpsc")
    # the mini world's names: the same figures work in both worlds
    for name in ("sn2", "nacl", "ice", "spice", "lpsc"):
        ours, theirs = paper_config["benchmarks"][name], mini[name]
        assert ours["trainsets"] == theirs["trainsets"] and ours["validsets"] == theirs["validsets"], name
        assert ours["test"] == theirs["test"] and ours["evalsets"] == theirs["evalsets"], name
        assert ours["derived"]["pretraining"] == {"corpus": "mptrj_replay_omat", "elements_of": "train"}, name
    assert lpsc["compute_stress"] is True and not spice.get("compute_stress")
    # the recipes write every file the entries name
    for name, recipe in (("spice", "spice_maceoff"), ("lpsc", "lpsc_archive")):
        entry = paper_config["benchmarks"][name]
        named = {*entry["trainsets"], *entry["validsets"].values(), entry["test"],
                 *(v for v in entry["evalsets"].values() if isinstance(v, str))} - set(entry["derived"])
        assert named <= set(paper.RECIPES[recipe]["files"]), name
    # the SPICE tarballs are manual downloads, the LPSC held-out files manual until their path is confirmed
    from mlipft.download import load_sources

    sources = load_sources(ROOT / paper_config["sources"])
    assert all(paper.is_tarball(sources[s].dest) and sources[s].manual for s in spice["sources"].values())
    for role in ("other_argyrodites", "non_argyrodites"):
        src = sources[lpsc["sources"][role]]
        assert src.manual and "path_confirmed: false" in src.instructions
    assert not sources["lpsc_600"].manual
    # every figure but fig09 (no SPICE torsion scans) is made in the paper world
    assert set(paper_config["unavailable_figures"]) == {"fig09"} and "torsion" in paper_config["unavailable_figures"]["fig09"]
    for name in ("fig08", "lpsc_test_errors", "fig03a", "fig04a", "fig13", "fig15", "fig17", "fig10", "fig02"):
        assert name in paper_config["figures"], name
    assert paper_config["figures"]["fig17"]["foundation"] == ["mace_mp_0_medium", "mace_omat_0_medium"]


@pytest.mark.parametrize("mutate,message", [
    # (a new mapping: the benchmarks share one `derived` mapping through a YAML alias)
    (lambda c: c["benchmarks"]["lpsc"].update(derived={"pretraining": {"corpus": "omat24", "elements_of": "train"}}),
     r"benchmarks\.lpsc\.derived\.pretraining\.corpus: 'omat24' is not a corpus of scale 'paper'"),
    (lambda c: c["scales"]["paper"]["corpora"].update(mptrj={"test_fraction": 0.1}),
     r"scales\.paper\.corpora\.mptrj: 'mptrj' is not a source id"),
    (lambda c: c["scales"]["paper"]["corpora"].update(nacl_mp2_gen2={"test_fraction": 0.1}),
     r"scales\.paper\.corpora\.nacl_mp2_gen2: source 'nacl_mp2_gen2' is of kind 'dataset', expected replay or archive"),
    (lambda c: c["scales"]["paper"]["corpora"]["mptrj_replay"].update(test_fraction=0.0),
     r"scales\.paper\.corpora\.mptrj_replay\.test_fraction: 0\.0 is not a number in \(0, 1\)"),
    (lambda c: c["benchmarks"]["spice"]["sources"].pop("test"), r"benchmarks\.spice\.sources: recipe spice_maceoff needs"),
    (lambda c: c["benchmarks"]["lpsc"]["validsets"].update(train="heldout"),
     r"benchmarks\.lpsc: recipe lpsc_archive writes no heldout\.xyz"),
])
def test_paper_config_errors_name_the_entry(paper_config, mutate, message):
    mutate(paper_config)
    with pytest.raises(ConfigError, match=message):
        check(paper_config)


def test_unconfirmed_heldout_download_stops_naming_the_entry(tmp_path):
    """The LPSC held-out files' archive paths are not confirmed: their download stops with a message
    naming the source id and what to check, and nothing is put in place."""
    from mlipft import download

    sources = download.load_sources(ROOT / "config" / "sources" / "paper.yaml")
    for sid in ("lpsc_other_argyrodites", "lpsc_non_argyrodites"):
        with pytest.raises(download.ManualDownloadRequired) as err:
            download.fetch(sources[sid], tmp_path / "raw", tmp_path / "lock.tsv", local_dirs=[tmp_path / "none"])
        message = str(err.value)
        assert f"source {sid!r} must be downloaded by hand" in message
        assert "path_confirmed: false" in message and "huggingface.co/datasets/ev-tlt/MACE_finetuning_supplementary/tree" in message
        assert not (tmp_path / "raw" / sources[sid].dest).exists()


# ---------------------------------------------------------------------------------------------
# offline dry runs of the SPICE, LPSC and Fig. 10 figures


def _dry_run(target: str) -> dict[str, int]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--nolock", target, "--configfile", str(PAPER_CONFIG),
           "--quiet", "rules"]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return job_stats(out)


def test_dry_run_resolves_fig08(paper_config):
    """SPICE: the two tarballs downloaded (manual), unpacked, converted; one fine-tune per strategy."""
    stats = _dry_run("fig08")
    n = len(strategy_names(paper_config, "fig08"))
    assert stats["extract_archive"] == 2 and stats["convert_source"] == 2 and stats["build_benchmark_spice"] == 1
    assert stats["finetune"] == stats["evaluate_errors"] == n
    # the two tarballs, the main foundation and the replay file of the strategies, and the test split
    # of the pretraining corpus: the runs are Fig. 10's too, and one evaluation job per run covers
    # every set a figure selects of it
    assert stats["download"] == 5 and stats["split_pretraining_corpus"] == 1


def test_dry_run_resolves_lpsc_figures(paper_config):
    stats = _dry_run("lpsc_test_errors")
    n = len(strategy_names(paper_config, "lpsc_test_errors"))
    assert stats["convert_source"] == 3 and stats["build_benchmark_lpsc"] == 1
    assert stats["finetune"] == stats["evaluate_errors"] == n and stats["download"] == 6  # + Fig. 10's set
    # fig15: its random and combined replay sets come from the MPtrj pool, split off its held-out part
    stats = _dry_run("fig15")
    # (and the OMat replay file's test split: Fig. 10's pretraining set, which it selects of the same runs)
    assert stats["split_pretraining_corpus"] == 2 and stats["replay_set"] == 3 and stats["finetune"] == 3
    assert stats["select_replay"] == 2  # the combined set is the union of the two drawn ones
    assert stats["evaluate_errors"] == 3  # one job per run: its three evaluation sets at once
    # fig17: every strategy from two foundations, and both foundations before fine-tuning
    stats = _dry_run("fig17")
    assert stats["finetune"] == 2 * n and stats["evaluate_zeroshot"] == 2 * 2 and stats["install_foundation"] == 2


def test_dry_run_resolves_fig10(paper_config):
    """Fig. 10: every strategy on the five benchmarks, each scored on its pretraining set (the OMat
    replay file's held-out structures made of its elements) through the target head, and the
    multihead ones through the replay head too; the foundation before fine-tuning on each."""
    stats = _dry_run("fig10")
    n = len(strategy_names(paper_config, "fig10"))
    multihead = sum(1 for s in strategy_names(paper_config, "fig10") if paper_config["strategies"][s].get("multihead"))
    assert multihead == 3  # replay, pseudolabel, replay + LoRA
    assert stats["finetune"] == 5 * n
    assert stats["split_pretraining_corpus"] == 1 and stats["derive_set"] == 5 and stats["evaluate_zeroshot"] == 5
    assert stats["evaluate_errors"] == 5 * n  # one job per run, the replay head's set in the same job
    # the pretraining sets through both heads, and (one evaluation job per run covers every set a
    # figure selects of it) the sets other figures select of the same runs
    assert stats["validate_evalset"] == 21
