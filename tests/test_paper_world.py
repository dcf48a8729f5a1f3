"""The paper world: mlipft.paper on synthetic files in the real formats (and on the real samples
of ../shared/paper-data when present), the paper config's checks, and the offline dry run of the
whole paper DAG against the experiment grid of mlipft.config.runs_for_figure."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlipft import paper
from mlipft.config import ConfigError, check, evalsets, load_world, runs_for_figure, strategy_names
from mlipft.convert import convert
from mlipft.io import read_configs
from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIG = ROOT / "config" / "paper.yaml"
SN2_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "paper-data" / "sn2-mp2"
MP2_E0 = {"H": -13.6005, "C": -1027.0945, "F": -2710.6145, "Cl": -12509.0815, "Br": -70007.0672}


@pytest.fixture()
def paper_config():
    return copy.deepcopy(load_world(PAPER_CONFIG))


# ---------------------------------------------------------------------------------------------
# synthetic organic_neb_mace files (mp2_energy / mp2_forces, R1..R4, lg, nu; rxn-id on r and p only)


def _write_organic(path: Path, frames: list[Atoms], with_id: bool) -> None:
    """Write frames as organic_neb_mace does: labels as plain info/arrays keys."""
    out = []
    for a in frames:
        b = a.copy()
        b.info = {k: v for k, v in a.info.items() if with_id or k != "rxn-id"}
        out.append(b)
    ase.io.write(path, out, format="extxyz")


def _sn2_triplet(rng, rxn_id: int, nu: str, lg: str) -> tuple[Atoms, Atoms, Atoms]:
    """Reactant, TS and product of X- + CH3Y with the same atom order (C, H, H, H, Y, X)."""
    frames = []
    for shift, energy in ((0.0, -0.2), (0.6, 0.4), (1.2, -0.3)):
        pos = np.array([[0, 0, 0], [1.03, 0, 0.36], [-0.51, 0.89, 0.36], [-0.51, -0.89, 0.36],
                        [0, 0, -1.8 - shift], [0, 0, 3.0 - shift]], float) + rng.normal(0, 0.02, (6, 3))
        a = Atoms(["C", "H", "H", "H", lg, nu], positions=pos)
        a.info.update({"R1": "H", "R2": "H", "R3": "H", "R4": "H", "lg": lg, "nu": nu, "rxn-id": rxn_id,
                       "mp2_energy": sum(MP2_E0[s] for s in a.get_chemical_symbols()) + energy + 0.01 * rxn_id})
        a.arrays["mp2_forces"] = rng.normal(0, 0.5, (6, 3))
        frames.append(a)
    return frames[0], frames[1], frames[2]


@pytest.fixture()
def organic_files(tmp_path):
    """Raw r/p/ts/e0s files of 12 reactions, and their converted (REF_*) versions."""
    rng = np.random.default_rng(3)
    halogens = ["F", "Cl", "Br"]
    triplets = [_sn2_triplet(rng, 10 + i, halogens[i % 3], halogens[(i // 3) % 3]) for i in range(12)]
    raw = {}
    for role, k, with_id in (("reactants", 0, True), ("transition_states", 1, False), ("products", 2, True)):
        raw[role] = tmp_path / f"raw_{role}.xyz"
        _write_organic(raw[role], [t[k] for t in triplets], with_id)
    e0s = []
    for sym, e in MP2_E0.items():
        a = Atoms(sym)
        a.info.update({"mp2_energy": e, "config_type": ISOLATED_ATOM})
        e0s.append(a)
    raw["isolated"] = tmp_path / "raw_e0s.xyz"
    ase.io.write(raw["isolated"], e0s, format="extxyz")
    converted = {}
    for role, path in raw.items():
        converted[role] = str(tmp_path / f"{role}.xyz")
        convert("sn2", [path], converted[role])
    return {"raw": raw, "converted": converted, "dir": tmp_path}


def _names(configs):
    return {a.info["reaction"] for a in configs}


def _check_sn2_files(out: Path, neb: list[str]):
    files = {name: read_configs(out / f"{name}.xyz") for name in paper.SN2_FILES}
    for name in ("train", "valid", "test"):
        regions = [a.info[CONFIG_TYPE_KEY] for a in files[name]]
        assert regions.count("ts") == regions.count("r") == regions.count("p") > 0
    for name in ("train_rp", "valid_rp"):
        assert {a.info[CONFIG_TYPE_KEY] for a in files[name]} == {"r", "p"}
        assert _names(files[name]) == _names(files[name.removesuffix("_rp")])
    train, valid, test = (_names(files[n]) for n in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert set(neb) <= test
    assert all(a.info[CONFIG_TYPE_KEY] == ISOLATED_ATOM and len(a) == 1 for a in files["isolated_atoms"])
    for a in [x for n in ("train", "test") for x in files[n]]:
        assert ENERGY_KEY in a.info and a.arrays[FORCES_KEY].shape == (len(a), 3)
    # the reference NEB file is what mlipft.analysis.neb reads: 3 images per reaction, r / ts / p energies
    from mlipft.analysis.neb import reference_profiles

    profiles = reference_profiles(out / "reference_neb.xyz", neb)
    assert list(profiles) == neb
    for reaction, images in profiles.items():
        assert [a.info["image"] for a in images] == [0, 1, 2]
        assert len({len(a) for a in images}) == 1
        assert images[1].info[ENERGY_KEY] > max(images[0].info[ENERGY_KEY], images[2].info[ENERGY_KEY]) - 5.0
    return files


def test_triplets_recipe_on_synthetic_files(organic_files, tmp_path):
    neb = ["rxn11", "rxn15"]
    out = tmp_path / "bench"
    summary = paper.build_benchmark("sn2_triplets", organic_files["converted"],
                                    {"n_train": 5, "n_valid": 3, "n_test": 4}, seed=1, neb_reactions=neb, out_dir=out)
    files = _check_sn2_files(out, neb)
    assert summary["files"]["train"] == 15 and summary["files"]["train_rp"] == 10
    assert summary["files"]["test"] == 12 and summary["files"]["reference_neb"] == 6
    assert len(files["isolated_atoms"]) == len(MP2_E0)
    # the transition state got its reaction from the index-aligned reactant
    ts = [a for a in files["test"] if a.info[CONFIG_TYPE_KEY] == "ts"]
    assert all(a.info["reaction"] == f"rxn{a.info['rxn-id']}" for a in ts)
    # deterministic for a seed, different for another
    again = paper.build_benchmark("sn2_triplets", organic_files["converted"],
                                  {"n_train": 5, "n_valid": 3, "n_test": 4}, seed=1, neb_reactions=neb,
                                  out_dir=tmp_path / "again")
    other = paper.build_benchmark("sn2_triplets", organic_files["converted"],
                                  {"n_train": 5, "n_valid": 3, "n_test": 4}, seed=2, neb_reactions=neb,
                                  out_dir=tmp_path / "other")
    assert again["reactions"] == summary["reactions"] != other["reactions"]


def test_cli_builds_the_benchmark(organic_files, tmp_path):
    conv = organic_files["converted"]
    args = ["benchmark", "sn2_triplets", "--input", *[f"{k}={v}" for k, v in conv.items()],
            "--params", '{"n_train": 4, "n_valid": 2, "n_test": 3}', "--neb-reactions", "rxn12",
            "--seed", "0", "--out-dir", str(tmp_path / "cli"), "--summary", str(tmp_path / "cli" / "summary.json")]
    paper.main(args)
    assert (tmp_path / "cli" / "summary.json").exists()
    _check_sn2_files(tmp_path / "cli", ["rxn12"])


def test_misaligned_triplets_are_refused(organic_files):
    conv = organic_files["converted"]
    r, p, ts = (read_configs(conv[k]) for k in ("reactants", "products", "transition_states"))
    with pytest.raises(paper.PaperDataError, match="aligned by index"):
        paper.reaction_triplets(r, p, ts[:-1])
    with pytest.raises(paper.PaperDataError, match="frame 0: substituents"):
        paper.reaction_triplets(r, p, ts[1:] + ts[:1])
    with pytest.raises(paper.PaperDataError, match="frame 0: reactant rxn-id"):
        paper.reaction_triplets(r, p[1:] + p[:1], ts)


def test_split_reactions():
    names = [f"rxn{i}" for i in range(30)]
    split = paper.split_reactions(names, 10, 5, 8, seed=0, held_out=["rxn3", "rxn29"])
    assert {"rxn3", "rxn29"} <= set(split["test"]) and len(split["test"]) == 8
    assert len(split["train"]) == 10 and len(split["valid"]) == 5
    assert len(set().union(*split.values())) == 23
    assert split == paper.split_reactions(list(reversed(names)), 10, 5, 8, seed=0, held_out=["rxn3", "rxn29"])
    with pytest.raises(paper.PaperDataError, match="cannot split"):
        paper.split_reactions(names, 20, 10, 5, seed=0)
    with pytest.raises(paper.PaperDataError, match=r"NEB reactions \['rxn99'\]"):
        paper.split_reactions(names, 5, 5, 5, seed=0, held_out=["rxn99"])
    with pytest.raises(ValueError, match="rxn<rxn-id>"):
        paper.parse_reaction("Cl_Br")


def test_archive_recipe_drops_transition_states(organic_files, tmp_path):
    """The paper's own splits: r/p-only sets found by matching the TS geometries."""
    conv = organic_files["converted"]
    r, p, ts = (read_configs(conv[k]) for k in ("reactants", "products", "transition_states"))
    iso = read_configs(conv["isolated"])
    archive = {"train": iso[:2] + [x for i in range(0, 4) for x in (r[i], ts[i], p[i])],
               "valid": [x for i in range(4, 7) for x in (r[i], ts[i], p[i])],
               "test": [x for i in range(7, 12) for x in (r[i], ts[i], p[i])]}
    inputs = dict(conv)
    for name, frames in archive.items():
        inputs[name] = str(tmp_path / f"archive_{name}.xyz")
        ase.io.write(inputs[name], frames, format="extxyz")
    out = tmp_path / "archive"
    summary = paper.build_benchmark("sn2_archive", inputs, {}, seed=0, neb_reactions=["rxn20"], out_dir=out)
    assert summary["files"] == {"train": 12, "train_rp": 8, "valid": 9, "valid_rp": 6, "test": 15,
                                "isolated_atoms": len(MP2_E0), "reference_neb": 3}
    assert not any(a.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM for a in read_configs(out / "train.xyz"))
    with pytest.raises(paper.PaperDataError, match="NEB reaction rxn10 is in the training set"):
        paper.build_benchmark("sn2_archive", inputs, {}, seed=0, neb_reactions=["rxn10"], out_dir=tmp_path / "x")


SAMPLES = ("r-mp2_first30.xyz", "p-mp2_first30.xyz", "ts-mp2_first30.xyz", "e0s.xyz")


@pytest.mark.paperdata
@pytest.mark.skipif(not all((SN2_SAMPLES / f).exists() for f in SAMPLES), reason=f"{SN2_SAMPLES} not present")
def test_triplets_recipe_on_real_samples(tmp_path):
    """The first 30 reactions of organic_neb_mace: aligned triplets, MP2 barriers, NEB file."""
    conv = {}
    for role, name in zip(("reactants", "products", "transition_states", "isolated"), SAMPLES):
        conv[role] = str(tmp_path / f"{role}.xyz")
        convert("sn2", [SN2_SAMPLES / name], conv[role])
    triplets = paper.reaction_triplets(*(read_configs(conv[k]) for k in ("reactants", "products", "transition_states")))
    assert len(triplets) == 30 and "rxn17" in triplets
    r, ts, p = triplets["rxn17"]  # ethyl chloride + F-
    assert (r.info["R4"], r.info["lg"]) == ("CH3", "Cl") and 0.0 < ts.info[ENERGY_KEY] - r.info[ENERGY_KEY] < 1.0
    neb = ["rxn1", "rxn6", "rxn17", "rxn18"]  # the reactions of config/paper.yaml's fig06c
    summary = paper.build_benchmark("sn2_triplets", conv, {"n_train": 12, "n_valid": 6, "n_test": 8}, seed=0,
                                    neb_reactions=neb, out_dir=tmp_path / "bench")
    assert summary["files"]["train"] == 36 and summary["files"]["isolated_atoms"] == 7
    _check_sn2_files(tmp_path / "bench", neb)


# ---------------------------------------------------------------------------------------------
# foundations and replay files


@pytest.mark.parametrize("saved,wanted", [("float32", "float64"), ("float64", "float64"), ("float64", "float32")])
def test_install_foundation_sets_the_dtype(tmp_path, saved, wanted):
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)).to(getattr(torch, saved))
    source = tmp_path / "downloaded.model"
    torch.save(model, source)
    out = tmp_path / "foundations" / "x" / "model.model"
    info = paper.install_foundation(source, out, wanted)
    loaded = torch.load(out, weights_only=False)
    assert {p.dtype for p in loaded.parameters()} == {getattr(torch, wanted)}
    assert info["cast"] == (saved != wanted)
    if saved == wanted:
        assert out.read_bytes() == source.read_bytes()


def test_canonicalize_replay_keys(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for i in range(3):
        a = Atoms("NaCl", positions=[[0, 0, 0], [1.4, 1.4, 1.4]], cell=np.eye(3) * 2.8, pbc=True)
        a.calc = SinglePointCalculator(a, energy=-7.0 + i, forces=rng.normal(0, 60, (2, 3)),
                                       stress=rng.normal(0, 0.01, 6))
        frames.append(a)
    raw = tmp_path / "mp_traj_like.xyz"
    ase.io.write(raw, frames, format="extxyz")  # keys energy / forces / stress, as the MPtrj replay
    assert paper.detect_label_keys(raw) == ("energy", "forces", "stress")
    assert paper.canonicalize(raw, tmp_path / "out.xyz") == 3
    out = read_configs(tmp_path / "out.xyz")
    assert [a.info[ENERGY_KEY] for a in out] == [-7.0, -6.0, -5.0]
    assert out[0].info[STRESS_KEY].shape == (3, 3) and out[0].arrays[FORCES_KEY].shape == (2, 3)
    # already canonical: unchanged labels
    paper.main(["canonicalize", "--input", str(tmp_path / "out.xyz"), "--output", str(tmp_path / "again.xyz")])
    assert [a.info[ENERGY_KEY] for a in read_configs(tmp_path / "again.xyz")] == [-7.0, -6.0, -5.0]
    bare = tmp_path / "bare.xyz"
    ase.io.write(bare, Atoms("H"), format="extxyz")
    with pytest.raises(paper.PaperDataError, match="none of the energy keys"):
        paper.detect_label_keys(bare)


# ---------------------------------------------------------------------------------------------
# the paper config


def test_paper_config_is_valid(paper_config):
    check(paper_config)
    assert paper_config["world"] == paper_config["scale"] == "paper"
    assert paper_config["accept_licences"] is False and paper_config["local_data_dirs"] == []
    assert {f["source"] for f in paper_config["foundations"].values()} == {
        "mace_mp_0_small", "mace_mp_0_medium", "mace_mp_0b3_medium", "mace_mpa_0_medium",
        "mace_omat_0_small", "mace_omat_0_medium"}
    mini = load_world(ROOT / "config" / "config.yaml")
    assert paper_config["strategies"] == mini["strategies"]
    # every paper-world figure exists in the mini world with the same kind; every mini figure is in
    # the paper world but those it declares unavailable (fig09: no SPICE torsion scans)
    assert set(paper_config["figures"]) <= set(mini["figures"])
    assert set(mini["figures"]) - set(paper_config["figures"]) == set(paper_config["unavailable_figures"]) == {"fig09"}
    for name, fig in paper_config["figures"].items():
        assert fig["kind"] == mini["figures"][name]["kind"], name


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["foundations"]["mace_mp_0_small"].update(source="mace_mp_0_tiny"),
     r"foundations\.mace_mp_0_small\.source: 'mace_mp_0_tiny' is not a source id"),
    (lambda c: c["foundations"]["mace_mp_0_small"].update(source="sn2_train"),
     r"foundations\.mace_mp_0_small\.source: source 'sn2_train' is of kind 'archive', expected foundation"),
    (lambda c: c["replay"]["omat_matched"].update(corpus="omat_replay"), r"replay\.omat_matched\.corpus: 'omat_replay'"),
    (lambda c: c["benchmarks"]["sn2"].update(recipe="sn2_magic"), r"benchmarks\.sn2\.recipe: 'sn2_magic'"),
    (lambda c: c["benchmarks"]["sn2"]["sources"].pop("isolated"), r"benchmarks\.sn2\.sources: recipe sn2_triplets needs"),
    (lambda c: c["benchmarks"]["sn2"]["sources"].update(isolated="sn2_e0"), r"benchmarks\.sn2\.sources\.isolated: 'sn2_e0'"),
    (lambda c: c["benchmarks"]["sn2"]["validsets"].update(train_rp="valid_ts"),
     r"benchmarks\.sn2: recipe sn2_triplets writes no valid_ts\.xyz"),
    (lambda c: c["figures"]["fig06c"].update(neb_reactions=["Cl_Br"]), r"figures\.fig06c\.neb_reactions: .*rxn<rxn-id>"),
    (lambda c: c["benchmarks"]["sn2"].pop("recipe"), r"benchmarks\.sn2: 'recipe' is a required property"),
    (lambda c: c["foundations"].update(mini={"kind": "pretrain", "description": "x", "corpus": "mptrj", "model": {}}),
     r"foundations\.mini"),
])
def test_paper_config_errors_name_the_entry(paper_config, mutate, message):
    mutate(paper_config)
    with pytest.raises(ConfigError, match=message):
        check(paper_config)


# ---------------------------------------------------------------------------------------------
# the offline dry run of the whole paper DAG


def job_stats(output: str) -> dict[str, int]:
    """The "Job stats" table of a snakemake dry run as {rule: count}."""
    table = output.split("Job stats:")[-1]
    counts = {}
    for line in table.splitlines():
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if match and match.group(1) == "total":
            assert int(match.group(2)) == sum(counts.values())
            return counts
        if match:
            counts[match.group(1)] = int(match.group(2))
    raise AssertionError(f"no Job stats table with a total in:\n{output[-3000:]}")


def expected_jobs(config: dict) -> dict[str, int]:
    """Jobs per rule that the figures' experiment grid implies."""
    from mlipft.config import grid
    from mlipft.download import load_sources
    from mlipft.paper import RECIPES, is_tarball
    from mlipft.registry import variant_entry

    runs = {r for fig in config["figures"] for r in runs_for_figure(config, fig)}
    # the kinds that read error files
    error_kinds = ("test_errors", "learning_curve", "violins", "cross_phase", "phase_blocks", "near_transfer",
                   "axis_spread")
    evaluations = {(r, e) for fig, spec in config["figures"].items() if spec["kind"] in error_kinds
                   for r in runs_for_figure(config, fig) for e in evalsets(config, fig)}
    # preservation (Fig. 10): every run through the target head, multihead runs through the replay head too
    for fig, spec in config["figures"].items():
        if spec["kind"] == "preservation":
            target, replay = evalsets(config, fig)
            for r in runs_for_figure(config, fig):
                evaluations.add((r, target))
                if variant_entry(config, r.strategy, r.variant).get("multihead"):
                    evaluations.add((r, replay))
    nebs = {r for fig, spec in config["figures"].items() if spec["kind"] in ("neb_profiles", "near_transfer")
            for r in runs_for_figure(config, fig)}
    # MD of the models (RDF figures: one MD and its RDFs per run), MD stability, and the reference
    # MLIP (and its RDFs) of each benchmark an RDF figure compares with
    mds = {r for fig, spec in config["figures"].items() if spec["kind"] == "md_rdfs" for r in runs_for_figure(config, fig)}
    stability = {r for fig, spec in config["figures"].items() if spec["kind"] == "md_stability"
                 for r in runs_for_figure(config, fig)}
    references = {r.benchmark for r in mds}
    # the symmetry check and the repulsion curves of every run of their figures; the repulsion
    # reference (paper world: the main foundation) once per benchmark, the foundations before
    # fine-tuning once per benchmark and foundation where a figure asks for them
    symmetry = {r for fig, spec in config["figures"].items() if spec["kind"] == "symmetry_table"
                for r in runs_for_figure(config, fig)}
    repulsion = {r for fig, spec in config["figures"].items() if spec["kind"] == "repulsion"
                 for r in runs_for_figure(config, fig)}
    # random structure search: every run of its figures, the foundations of their grids, one set of
    # random crystals and one reference search (paper world: the main foundation) per benchmark
    rss = {r for fig, spec in config["figures"].items() if spec["kind"] == "rss" for r in runs_for_figure(config, fig)}
    rss_foundations = {(b, f) for fig, spec in config["figures"].items() if spec["kind"] == "rss"
                       for b in grid(config, fig)["benchmark"] for f in grid(config, fig)["foundation"]}
    repulsion_foundations = {(r.benchmark, r.foundation) for fig, spec in config["figures"].items()
                             if spec["kind"] == "repulsion" and spec.get("repulsion_foundation")
                             for r in runs_for_figure(config, fig)}
    zeroshot = {(b, config["main_foundation"], "test") for spec in config["figures"].values()
                if spec["kind"] == "benchmarks_overview" for b in spec["benchmark"]}
    for fig, spec in config["figures"].items():  # the foundations before fine-tuning of Fig. 10 and 17
        axes = grid(config, fig)
        if spec["kind"] == "preservation":
            zeroshot |= {(b, f, evalsets(config, fig)[0]) for b in axes["benchmark"] for f in axes["foundation"]}
        if spec["kind"] == "violins" and spec.get("zeroshot"):
            zeroshot |= {(b, f, e) for b in axes["benchmark"] for f in axes["foundation"] for e in evalsets(config, fig)}
    derived = {(r.benchmark, name) for r in runs for name in
               (r.trainset, config["benchmarks"][r.benchmark]["validsets"][r.trainset])
               if name in (config["benchmarks"][r.benchmark].get("derived") or {})}

    def evalset_name(benchmark, evalset):
        spec = (config["benchmarks"][benchmark].get("evalsets") or {}).get(evalset)
        return spec if isinstance(spec, str) else (spec or {}).get("file")

    derived |= {(b, evalset_name(b, e)) for b, e in {(r.benchmark, e) for r, e in evaluations} | {(b, e) for b, _, e in zeroshot}
                if evalset_name(b, e) in (config["benchmarks"][b].get("derived") or {})}
    benchmarks = {r.benchmark for r in runs}
    replays = set()
    for r in runs:
        entry = variant_entry(config, r.strategy, r.variant)
        if entry.get("multihead"):
            name = entry["replay"]
            replays |= {(r.benchmark, name)} | {(r.benchmark, part) for part in config["replay"][name].get("combine", [])}
    replay_sources = {config["replay"][name]["corpus"] for _, name in replays if "corpus" in config["replay"][name]}
    # replay files split into a held-out pretraining test set and the replay pool: those a replay set
    # is drawn from, and those a derived pretraining set is drawn from
    corpora = config["scales"][config["scale"]].get("corpora") or {}
    split = ({c for c in replay_sources if c in corpora}
             | {config["benchmarks"][b]["derived"][name]["corpus"] for b, name in derived
                if "corpus" in config["benchmarks"][b]["derived"][name]})
    foundations = {r.foundation for r in runs}
    bench_sources = {sid for b in benchmarks for sid in config["benchmarks"][b]["sources"].values()}
    sources = {config["foundations"][f]["source"] for f in foundations} | replay_sources | split | bench_sources
    known = load_sources(ROOT / config["sources"])
    assert sources <= set(known)
    jobs = {
        "download": len(sources),
        "extract_archive": len({sid for sid in bench_sources if is_tarball(known[sid].dest)}),
        "convert_source": sum(len(RECIPES[config["benchmarks"][b]["recipe"]]["roles"]) for b in benchmarks),
        "convert_replay": len(replay_sources | split),
        "split_pretraining_corpus": len(split),
        "install_foundation": len(foundations),
        "replay_set": len(replays),
        "select_replay": len([1 for _, name in replays if "combine" not in config["replay"][name]]),  # drawn sets
        "validate_data": len(benchmarks),  # every benchmark's files checked before any job reads them
        "validate_evalset": len({(r.benchmark, e) for r, e in evaluations} | {(b, e) for b, _, e in zeroshot}),
        "derive_set": len(derived),
        "evaluate_zeroshot": len(zeroshot),
        "subsample_trainset": len({(r.benchmark, r.trainset, r.fraction, r.seed) for r in runs}),
        "fit_e0s": len({(r.benchmark, r.trainset, r.fraction, r.seed, r.foundation) for r in runs}),
        "finetune": len(runs),
        "evaluate_errors": len({r for r, _ in evaluations}),  # one job per run, every set its figures select
        "run_neb": len(nebs),
        "run_md": len(mds),
        "rdf": len(mds),
        "run_stability": len(stability),
        "run_symmetry": len(symmetry),
        "run_repulsion": len(repulsion),
        "repulsion_reference": len({r.benchmark for r in repulsion}),
        "repulsion_foundation": len(repulsion_foundations),
        "run_rss": len(rss),
        "rss_foundation": len(rss_foundations),
        "rss_structures": len({b for b, _ in rss_foundations}),
        "rss_reference": len({b for b, _ in rss_foundations}),  # the main foundation stands in for both levels
        "all_figures": 1,
    }
    jobs.update({f"build_benchmark_{b}": 1 for b in benchmarks})
    jobs.update({f"{rule}_{b}": 1 for b in references for rule in ("reference_mlip", "reference_rdf")})
    for fig in config["figures"]:
        jobs[f"collect_{fig}"] = jobs[f"plot_{fig}"] = 1
    return {rule: n for rule, n in jobs.items() if n}  # a rule without jobs is not in the table


def test_dry_run_resolves_the_paper_dag(paper_config):
    """`snakemake -n all_figures --configfile config/paper.yaml`: every figure reaches every raw
    source through download rules, offline, with one job per cell of the experiment grid. The
    paper world is config/shared.yaml with config/paper.yaml over it; config/config.yaml (the mini
    world) is not loaded when a config file is given."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--nolock", "all_figures", "--configfile", str(PAPER_CONFIG),
           "--quiet", "rules"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    stats = job_stats(out)
    assert stats == expected_jobs(paper_config), out[-3000:]
    # the grid of config/paper.yaml, spelled out: 8 strategies x (1 NEB run + 3 fractions x 3 seeds;
    # sn2_test_errors' full-training-set runs are the learning curve's largest fraction)
    # fig03b: the five other foundations' pseudolabel runs; fig04b: naive and LoRA with averaged E0s;
    # fig14: five more (learning rate x replay set) variants of the pseudolabel run
    n_strategies = len(strategy_names(paper_config, "sn2_test_errors"))
    # fig07: every strategy once more, on the training set without the held-out reactions (fig01 reads
    # sn2_test_errors' runs)
    sn2 = n_strategies * (1 + 3 * 3) + 5 + 2 + 5 + n_strategies
    # NaCl: every strategy at 10 % of the data (three seeds, and once with 10x epochs) and at 100 %
    # (fig06a/b, fig20; the 100 % runs are nacl_test_errors' and md_stability's). Ice: every strategy on
    # the combined set (ice_test_errors, md_stability); fig19: naive, LoRA and pseudolabel on the four
    # single phases (on the combined set they are ice_test_errors'); fig05: naive with averaged E0s on
    # each phase (the estimated ones are fig19's); fig12: two more loss-weight variants of naive on Ih
    # fig18: naive fine-tunes of MACE-OMat-0 small on the four single phases (medium's are fig19's)
    # fig11's runs are these (seed 0); fig16 adds pseudolabel on the random and combined replay sets
    nacl = n_strategies * (3 + 1 + 1) + 2
    ice = n_strategies + 3 * 4 + 4 + 2 + 4
    # LPSC: every strategy (lpsc_test_errors; fig10's LPSC runs are these), and again from MACE-MP-0
    # medium (fig17); fig03a: pseudolabel from the four foundations not yet counted; fig04a: naive
    # and LoRA with averaged E0s; fig13: two learning rates; fig15: two more replay sets. SPICE: every
    # strategy with one configuration per molecule (fig08, fig10's SPICE runs)
    lpsc = 2 * n_strategies + 4 + 2 + 2 + 2
    spice = n_strategies
    assert stats["finetune"] == sn2 + nacl + ice + lpsc + spice == 206
    assert stats["run_md"] == stats["rdf"] == nacl - 2 and stats["run_stability"] == 2 * n_strategies
    assert stats["reference_mlip_nacl"] == stats["reference_rdf_nacl"] == 1
    # SN2: r, p, ts, e0s, the SN2 replay file, the six foundations, the MPtrj replay file (fig14's
    # combined set); NaCl: the MP2 data; ice: a training and a validation file per phase; SPICE: the
    # two MACE-OFF tarballs (each unpacked); LPSC: LPSC_600 and the two held-out files; Fig. 10: the
    # OMat replay file, whose held-out part is every benchmark's pretraining set
    assert stats["download"] == 12 + 1 + 8 + 2 + 3 + 1
    assert stats["extract_archive"] == 2
    # the two replay files split into a held-out pretraining test set and a replay pool: MPtrj (the
    # random and combined replay sets are drawn from its pool) and the OMat one (the pretraining sets)
    assert stats["split_pretraining_corpus"] == 2 and stats["convert_replay"] == 3
    # derived sets: SN2's four near-transfer sets (fig07) and each benchmark's pretraining set (fig10);
    # foundations before fine-tuning: on the five test sets (fig02), the five pretraining sets (fig10)
    # and, for MP-0 and OMat-0 medium, the two LPSC held-out sets (fig17)
    assert stats["derive_set"] == 4 + 5 and stats["evaluate_zeroshot"] == 5 + 5 + 2 * 2
