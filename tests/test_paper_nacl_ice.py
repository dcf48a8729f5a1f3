"""The paper world's aqueous NaCl and ice benchmarks: mlipft.paper's recipes nacl_runner and
ice_phases on the real samples of ../shared/paper-data (skipped when absent) and on small files
built from them, their refusals of bad inputs (naming the file and frame), and the offline dry run
of the paper world's NaCl and ice figures."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest

from mlipft import paper
from mlipft.config import ConfigError, check, load_world, strategy_names
from mlipft.convert import ConversionError, convert, read_ice, read_runner
from mlipft.io import read_configs
from mlipft.keys import (
    BOHR_TO_ANGSTROM,
    CONFIG_TYPE_KEY,
    ENERGY_KEY,
    FORCES_KEY,
    HARTREE_TO_EV,
    ISOLATED_ATOM,
    STRESS_KEY,
)
from test_paper_world import job_stats

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIG = ROOT / "config" / "paper.yaml"
PAPER_DATA = ROOT.parent / "shared" / "paper-data"
NACL_SAMPLE = PAPER_DATA / "nacl-water-mp2" / "gen2_first24.data"
ICE_SAMPLES = {p: PAPER_DATA / "ice-polymorphs" / f"{p}_train025_first6.extxyz" for p in paper.ICE_PHASES}
PROTOCOL_KEYS = ("md_temperature_K", "md_timestep_fs", "md_friction_per_fs", "md_hydrogen_mass_amu",
                 "rdf_r_max", "rdf_nbins")

needs_nacl = pytest.mark.skipif(not NACL_SAMPLE.exists(), reason=f"{NACL_SAMPLE} not present")
needs_ice = pytest.mark.skipif(not all(p.exists() for p in ICE_SAMPLES.values()), reason="ice samples not present")


# ---------------------------------------------------------------------------------------------
# aqueous NaCl


@pytest.fixture()
def nacl_data(tmp_path):
    """The 24 real MP2 configurations, converted (Angstrom, eV)."""
    out = tmp_path / "data.xyz"
    convert("runner", [NACL_SAMPLE], out)
    return str(out)


@pytest.mark.paperdata
@needs_nacl
def test_nacl_recipe_on_the_real_sample(nacl_data, tmp_path):
    params = {"n_valid": 4, "n_test": 6}
    summary = paper.build_benchmark("nacl_runner", {"data": nacl_data}, params, seed=0, neb_reactions=[],
                                    out_dir=tmp_path / "nacl")
    assert summary["files"] == {"train": 14, "valid": 4, "test": 6, "isolated_atoms": 4, "md_start": 1}
    files = {n: read_configs(tmp_path / "nacl" / f"{n}.xyz") for n in paper.NACL_FILES}
    # 2 NaCl pairs in 60 waters, 184 atoms, in every frame of the sample
    for name in ("train", "valid", "test"):
        for a in files[name]:
            assert len(a) == 184 and paper.composition(a) == (("Cl", 2), ("H", 120), ("Na", 2), ("O", 60))
            lengths = a.cell.lengths()  # cubic, 22.6-25.0 Bohr (the first frame's 23.74)
            assert a.pbc.all() and np.allclose(lengths, lengths[0]) and 11.5 < lengths[0] < 13.5
            e = a.info[ENERGY_KEY] / len(a)
            assert -171.2 < e < -171.1  # eV/atom (-1157 Hartree for 184 atoms)
            f = a.arrays[FORCES_KEY]
            assert f.shape == (184, 3) and 0.5 < np.abs(f).max() < 10.0  # eV/A, not Hartree/Bohr
    assert summary["energy_per_atom_eV"]["train"][0] >= -171.14 and summary["energy_per_atom_eV"]["train"][1] <= -171.12
    # forces are the RuNNer columns times Hartree/Bohr
    raw = read_runner(NACL_SAMPLE)
    first = files["train"][0]
    assert np.allclose(first.arrays[FORCES_KEY], raw[first.info["source_frame"]].arrays[FORCES_KEY])
    line = next(ln for ln in NACL_SAMPLE.read_text().splitlines() if ln.startswith("atom"))
    fx = float(line.split()[7])
    assert np.isclose(raw[0].arrays[FORCES_KEY][0, 0], fx * HARTREE_TO_EV / BOHR_TO_ANGSTROM)
    # disjoint splits covering every frame once
    frames = {n: [a.info["source_frame"] for a in files[n]] for n in ("train", "valid", "test")}
    assert sorted(frames["train"] + frames["valid"] + frames["test"]) == list(range(24))
    assert frames == summary["source_frames"]
    keys = {n: {paper.frame_key(a) for a in files[n]} for n in frames}
    assert not (keys["train"] & keys["valid"] or keys["train"] & keys["test"] or keys["valid"] & keys["test"])
    # seeded: the same seed gives the same split, another seed another
    again = paper.build_benchmark("nacl_runner", {"data": nacl_data}, params, 0, [], tmp_path / "again")
    other = paper.build_benchmark("nacl_runner", {"data": nacl_data}, params, 1, [], tmp_path / "other")
    assert again["source_frames"] == summary["source_frames"] != other["source_frames"]
    # isolated atoms: least-squares stand-ins, one row per element, that reproduce the training energies
    iso = files["isolated_atoms"]
    assert sorted(a.get_chemical_symbols()[0] for a in iso) == ["Cl", "H", "Na", "O"]
    assert all(a.info[CONFIG_TYPE_KEY] == ISOLATED_ATOM and a.info["e0_source"] == "least_squares" for a in iso)
    e0 = {a.get_chemical_symbols()[0]: a.info[ENERGY_KEY] for a in iso}
    assert e0 == pytest.approx(summary["isolated_atoms"]["e0s_eV"])
    predicted = [sum(e0[s] for s in a.get_chemical_symbols()) for a in files["train"]]
    assert np.mean(predicted) == pytest.approx(np.mean([a.info[ENERGY_KEY] for a in files["train"]]), abs=1e-6)
    # md_start: one unlabelled, deuterated test frame with the MD and RDF protocol
    (start,) = files["md_start"]
    assert start.info["source_frame"] == frames["test"][0] == summary["md_start"]["source_frame"]
    assert all(k in start.info for k in PROTOCOL_KEYS)
    assert (start.info["md_temperature_K"], start.info["md_timestep_fs"], start.info["md_friction_per_fs"]) == (300.0, 1.0, 0.005)
    assert not [k for k in (*start.info, *start.arrays) if k.startswith("REF_")]
    assert np.allclose(start.get_masses()[start.numbers == 1], 2.0)
    from mlipft.analysis.rdf import max_rdf_range

    assert 0.0 < start.info["rdf_r_max"] <= max_rdf_range(start) < start.info["rdf_r_max"] + 0.05
    assert start.info["rdf_r_max"] / start.info["rdf_nbins"] == pytest.approx(0.1, abs=0.002)  # 0.1 A bins


@pytest.mark.paperdata
@needs_nacl
def test_nacl_split_is_stratified_and_sized(nacl_data, tmp_path):
    """Every concentration in every split; n_train picks a subset of the rest; bad sizes are refused."""
    frames = read_configs(nacl_data)
    for a in frames[:8]:  # a second composition: one water replaced by an ion pair
        symbols = a.get_chemical_symbols()
        o = symbols.index("O")
        symbols[o] = "Na"
        a.set_chemical_symbols(symbols)
    mixed = tmp_path / "mixed.xyz"
    ase.io.write(mixed, frames, format="extxyz")
    summary = paper.build_benchmark("nacl_runner", {"data": str(mixed)}, {"n_train": 10, "n_valid": 4, "n_test": 8},
                                    seed=3, neb_reactions=[], out_dir=tmp_path / "b")
    assert summary["files"]["train"] == 10
    for name, counts in summary["compositions"].items():
        assert all(n > 0 for n in counts.values()), (name, counts)
    assert sum(summary["compositions"]["test"].values()) == 8
    with pytest.raises(paper.PaperDataError, match=r"cannot split 24 frames into 20 train, 4 valid and 8 test"):
        paper.build_benchmark("nacl_runner", {"data": nacl_data}, {"n_train": 20, "n_valid": 4, "n_test": 8}, 0, [],
                              tmp_path / "x")
    with pytest.raises(paper.PaperDataError, match=r"md_start_frame 6 is not a frame of the 6-frame test split"):
        paper.build_benchmark("nacl_runner", {"data": nacl_data}, {"n_valid": 4, "n_test": 6, "md_start_frame": 6},
                              0, [], tmp_path / "y")


@pytest.mark.paperdata
@needs_nacl
def test_nacl_cli_writes_the_summary(nacl_data, tmp_path):
    out = tmp_path / "cli"
    paper.main(["benchmark", "nacl_runner", "--input", f"data={nacl_data}", "--params", '{"n_valid": 3, "n_test": 3}',
                "--neb-reactions", "--seed", "0", "--out-dir", str(out), "--summary", str(out / "summary.json")])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"]["train"] == 18 and summary["md_start"]["md_temperature_K"] == 300.0
    assert all((out / f"{n}.xyz").exists() for n in paper.NACL_FILES)


@pytest.mark.paperdata
@needs_nacl
def test_nacl_bad_inputs_name_the_file_and_frame(nacl_data, tmp_path):
    frames = read_configs(nacl_data)
    broken = [a.copy() for a in frames]
    del broken[3].info[ENERGY_KEY]
    path = tmp_path / "no_energy.xyz"
    ase.io.write(path, broken, format="extxyz")
    with pytest.raises(paper.PaperDataError, match=rf"{re.escape(str(path))}: frame 3: no REF_energy"):
        paper.build_benchmark("nacl_runner", {"data": str(path)}, {"n_valid": 2, "n_test": 2}, 0, [], tmp_path / "a")
    broken = [a.copy() for a in frames]
    broken[5].pbc = False
    broken[5].cell = None
    path = tmp_path / "no_cell.xyz"
    ase.io.write(path, broken, format="extxyz")
    with pytest.raises(paper.PaperDataError, match=rf"{re.escape(str(path))}: frame 5: not periodic with a cell"):
        paper.build_benchmark("nacl_runner", {"data": str(path)}, {"n_valid": 2, "n_test": 2}, 0, [], tmp_path / "b")
    path = tmp_path / "repeated.xyz"
    ase.io.write(path, frames + frames[2:3], format="extxyz")
    with pytest.raises(paper.PaperDataError, match=rf"{re.escape(str(path))}: frame 24 repeats frame 2"):
        paper.build_benchmark("nacl_runner", {"data": str(path)}, {"n_valid": 2, "n_test": 2}, 0, [], tmp_path / "c")
    # the raw RuNNer file: a block without its energy line is refused by the converter, by line
    lines = NACL_SAMPLE.read_text().splitlines()
    second_energy = [i for i, ln in enumerate(lines) if ln.startswith("energy")][1]
    raw = tmp_path / "no_energy.data"
    raw.write_text("\n".join(lines[:second_energy] + lines[second_energy + 1:]) + "\n")
    with pytest.raises(ConversionError, match=rf"{re.escape(str(raw))}: line \d+: block at lines \d+-\d+: missing 'energy' line"):
        read_runner(raw)


# ---------------------------------------------------------------------------------------------
# ice polymorphs


@pytest.fixture()
def ice_inputs(tmp_path):
    """Per phase, the six real frames converted, split into a 3-frame training file and a 3-frame
    'validation' file (upstream's validation files are not among the samples)."""
    inputs = {}
    for phase, sample in ICE_SAMPLES.items():
        frames = read_ice(sample, phase=phase)
        for kind, part in (("train", frames[:3]), ("valid", frames[3:])):
            inputs[f"{kind}_{phase}"] = str(tmp_path / f"{kind}_{phase}.xyz")
            ase.io.write(inputs[f"{kind}_{phase}"], part, format="extxyz")
    return inputs


@pytest.mark.paperdata
@needs_ice
def test_ice_samples_of_VI_and_VIII_are_the_same_data(ice_inputs, tmp_path):
    """Upstream's VIII files are copies of its VI files: the recipe refuses them by default."""
    assert ICE_SAMPLES["VI"].read_bytes() == ICE_SAMPLES["VIII"].read_bytes()
    with pytest.raises(paper.PaperDataError, match=r"VI/VIII: 6 frame\(s\), first .*train_VI\.xyz frame 0 = "
                                                  r".*train_VIII\.xyz frame 0.*shared_frames: warn"):
        paper.build_benchmark("ice_phases", ice_inputs, {"n_valid": 1, "n_test": 2}, 0, [], tmp_path / "ice")


@pytest.mark.paperdata
@needs_ice
def test_ice_recipe_on_the_real_samples(ice_inputs, tmp_path):
    params = {"n_train": 2, "n_valid": 1, "n_test": 2, "shared_frames": "warn"}
    summary = paper.build_benchmark("ice_phases", ice_inputs, params, seed=0, neb_reactions=[], out_dir=tmp_path / "ice")
    assert summary["shared_frames"] == {"VI/VIII": 6}
    # the split ranks frames by structure: the two copies split alike, so no VI validation frame is a
    # "VIII" test frame (mlipft.validate_data's train / valid / test disjointness holds)
    for key in ("valid_source_frames", "test_source_frames"):
        assert summary["phases"]["VIII"][key] == summary["phases"]["VI"][key]
    counts = summary["files"]
    assert all(counts[f"train_{p}"] == 2 and counts[f"valid_{p}"] == 1 and counts[f"test_{p}"] == 2
               for p in paper.ICE_PHASES)
    assert (counts["train"], counts["valid"], counts["test"], counts["isolated_atoms"]) == (8, 4, 8, 2)
    files = {n: read_configs(tmp_path / "ice" / f"{n}.xyz") for n in paper.ICE_FILES}
    atoms_per_phase = {"Ih": 384, "II": 288, "VI": 240, "VIII": 240}
    for phase in paper.ICE_PHASES:
        for kind in ("train", "valid", "test"):
            for a in files[f"{kind}_{phase}"]:
                assert a.info["phase"] == a.info[CONFIG_TYPE_KEY] == phase and len(a) == atoms_per_phase[phase]
                assert -4.95 < a.info[ENERGY_KEY] / len(a) < -4.94  # eV/atom
                assert np.asarray(a.info[STRESS_KEY]).shape == (3, 3)  # eV/A^3, present on every frame
                assert np.abs(a.info[STRESS_KEY]).max() < 0.05
                assert 0.1 < np.abs(a.arrays[FORCES_KEY]).max() < 5.0  # eV/A
        # the training set is the first n_train frames of the training file
        assert [a.info["source_frame"] for a in files[f"train_{phase}"]] == [0, 1]
        valid = {a.info["source_frame"] for a in files[f"valid_{phase}"]}
        test = {a.info["source_frame"] for a in files[f"test_{phase}"]}
        assert not valid & test and len(valid | test) == 3
        assert {paper.frame_key(a) for a in files[f"train_{phase}"]}.isdisjoint(
            {paper.frame_key(a) for a in files[f"test_{phase}"]})
    # the combined sets are the phases together, in phase order
    for kind in ("train", "valid", "test"):
        assert [a.info["phase"] for a in files[kind]] == [p for p in paper.ICE_PHASES
                                                          for _ in files[f"{kind}_{p}"]]
    # seeded
    again = paper.build_benchmark("ice_phases", ice_inputs, params, 0, [], tmp_path / "again")
    other = paper.build_benchmark("ice_phases", ice_inputs, params, 5, [], tmp_path / "other")
    assert again["phases"] == summary["phases"]
    assert any(other["phases"][p]["test_source_frames"] != summary["phases"][p]["test_source_frames"]
               for p in paper.ICE_PHASES)
    # isolated atoms: H and O least-squares stand-ins
    iso = files["isolated_atoms"]
    assert sorted(a.get_chemical_symbols()[0] for a in iso) == ["H", "O"]
    assert all(a.info["e0_source"] == "least_squares" for a in iso)


@pytest.mark.paperdata
@needs_ice
def test_ice_bad_inputs_name_the_file_and_frame(ice_inputs, tmp_path):
    params = {"n_valid": 1, "n_test": 2, "shared_frames": "warn"}

    def build(inputs, extra=None, name="x"):
        return paper.build_benchmark("ice_phases", inputs, {**params, **(extra or {})}, 0, [], tmp_path / name)

    frames = read_configs(ice_inputs["train_II"])
    no_stress = [a.copy() for a in frames]
    del no_stress[1].info[STRESS_KEY]
    path = tmp_path / "no_stress.xyz"
    ase.io.write(path, no_stress, format="extxyz")
    with pytest.raises(paper.PaperDataError, match=rf"{re.escape(str(path))}: frame 1: no REF_stress"):
        build({**ice_inputs, "train_II": str(path)}, name="a")
    no_cell = [a.copy() for a in frames]
    no_cell[2].pbc = False
    no_cell[2].cell = None
    path = tmp_path / "no_cell.xyz"
    ase.io.write(path, no_cell, format="extxyz")
    with pytest.raises(paper.PaperDataError, match=rf"{re.escape(str(path))}: frame 2: not periodic with a cell"):
        build({**ice_inputs, "train_II": str(path)}, name="b")
    with pytest.raises(paper.PaperDataError, match=r"train_Ih\.xyz: n_train 4 is not between 1 and its 3 frames"):
        build(ice_inputs, {"n_train": 4}, name="c")
    with pytest.raises(paper.PaperDataError, match=r"valid_Ih\.xyz: 3 frames cannot give 2 valid and 2 test frames"):
        build(ice_inputs, {"n_valid": 2}, name="d")
    with pytest.raises(paper.PaperDataError, match=r"train_Ih\.xyz: frame 0 repeats frame 0 of .*train_Ih\.xyz "
                                                  r"\(training frame in the validation file\)"):
        build({**ice_inputs, "valid_Ih": ice_inputs["train_Ih"]}, name="e")
    with pytest.raises(paper.PaperDataError, match=r"shared_frames must be error or warn"):
        build(ice_inputs, {"shared_frames": "ignore"}, name="f")
    # the raw extxyz: the converter names the frame without stress, and the frame without a cell
    raw = ase.io.read(ICE_SAMPLES["Ih"], index=":")
    lines = ICE_SAMPLES["Ih"].read_text().splitlines(keepends=True)
    n = len(raw[0]) + 2
    header = lines[n + 1]
    start, end = header.index(" REF_stress="), header.index(" REF_free_energy=")
    no_stress = tmp_path / "no_stress.extxyz"
    no_stress.write_text("".join(lines[:n + 1] + [header[:start] + header[end:]] + lines[n + 2:]))
    with pytest.raises(ConversionError, match=rf"{re.escape(str(no_stress))}: frame 1: periodic frame without stress key"):
        read_ice(no_stress)


# ---------------------------------------------------------------------------------------------
# the paper config and the offline dry run of the NaCl and ice figures


@pytest.fixture()
def paper_config():
    return copy.deepcopy(load_world(PAPER_CONFIG))


def test_paper_config_declares_nacl_and_ice(paper_config):
    check(paper_config)
    nacl, ice = paper_config["benchmarks"]["nacl"], paper_config["benchmarks"]["ice"]
    assert (nacl["recipe"], nacl["format"], ice["recipe"], ice["format"]) == ("nacl_runner", "runner", "ice_phases", "ice")
    assert set(ice["sources"]) == set(paper.RECIPES["ice_phases"]["roles"]) and ice["compute_stress"] is True
    assert {v for k, v in ice["evalsets"].items() if k.startswith("test_")} == {f"test_{p}" for p in paper.ICE_PHASES}
    # the same trainsets / validsets / evalsets as the mini world's ice benchmark (its pretraining sets
    # too: the paper world draws them from a held-out part of the OMat replay file, scales.paper.corpora)
    mini = load_world(ROOT / "config" / "config.yaml")["benchmarks"]["ice"]
    assert ice["trainsets"] == mini["trainsets"] and ice["validsets"] == mini["validsets"]
    assert ice["evalsets"] == mini["evalsets"]
    for name in ("nacl_test_errors", "ice_test_errors", "fig05", "fig12", "fig19"):
        assert name in paper_config["figures"] and name not in (paper_config.get("unavailable_figures") or {})
    # MD: NaCl from its md_start.xyz, RDFs against the reference MLIP's; ice stability from an Ih test frame
    assert nacl["md"]["start"] in paper.NACL_FILES and nacl["md"]["pairs"] == ["Cl-O", "Na-O"]
    assert nacl["md"]["reference_rdf"].endswith(".csv")
    assert set(nacl["md"]["reference_trainsets"]) == {"train", "valid", "test"}
    assert ice["md"]["start"] in paper.ICE_FILES


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["benchmarks"]["ice"]["sources"].pop("valid_VIII"), r"benchmarks\.ice\.sources: recipe ice_phases needs"),
    (lambda c: c["benchmarks"]["nacl"]["sources"].update(data="nacl_mp2_gen3"), r"benchmarks\.nacl\.sources\.data: 'nacl_mp2_gen3'"),
    (lambda c: c["benchmarks"]["ice"]["validsets"].update(train_Ih="valid_Ic"),
     r"benchmarks\.ice: recipe ice_phases writes no valid_Ic\.xyz"),
])
def test_paper_config_errors_name_the_entry(paper_config, mutate, message):
    mutate(paper_config)
    with pytest.raises(ConfigError, match=message):
        check(paper_config)


def _dry_run(target: str) -> dict[str, int]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--nolock", target, "--configfile", str(PAPER_CONFIG),
           "--quiet", "rules"]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return job_stats(out)


def test_dry_run_resolves_nacl_test_errors(paper_config):
    """Every strategy on NaCl: the MP2 file, the main foundation and the replay file are downloaded
    offline-resolvable, one conversion, one benchmark build, one fine-tune and one evaluation per
    strategy. The runs are Fig. 10's too, and a run's evaluation covers every set a figure selects
    of it (one job per model), so the pretraining set is resolved as well: its corpus's test split
    (the fourth download)."""
    stats = _dry_run("nacl_test_errors")
    n = len(strategy_names(paper_config, "nacl_test_errors"))
    assert stats["download"] == 4 and stats["convert_source"] == 1 and stats["build_benchmark_nacl"] == 1
    assert stats["split_pretraining_corpus"] == 1 and stats["derive_set"] == 1
    assert stats["finetune"] == stats["evaluate_errors"] == n


def test_dry_run_resolves_ice_test_errors(paper_config):
    """Every strategy on the four ice phases together: eight ice files (training and validation file
    per phase), the main foundation and the replay file are downloaded; as for NaCl, the pretraining
    set of Fig. 10 (the eleventh download), and the per-phase test sets of Fig. 5, which select
    them of the same runs: seven evaluation sets validated, one evaluation job per run."""
    stats = _dry_run("ice_test_errors")
    n = len(strategy_names(paper_config, "ice_test_errors"))
    assert stats["download"] == 11 and stats["convert_source"] == 8 and stats["build_benchmark_ice"] == 1
    assert stats["validate_evalset"] == 7
    assert stats["finetune"] == stats["evaluate_errors"] == n
