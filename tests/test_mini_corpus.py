"""The mini world's pretraining corpora (mlipft.mini.corpus): builders, determinism, labels,
breadth of omat over mptrj, replay subsampling. Fast: smoke sizes only."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write

from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, STRESS_KEY
from mlipft.mini import corpus

UNLABELLED = {"relax_steps": 0}  # no GFN1 call at all when sampling


def _same(a: Atoms, b: Atoms) -> bool:
    return (
        a.get_chemical_symbols() == b.get_chemical_symbols()
        and np.allclose(a.cell.array, b.cell.array)
        and np.allclose(a.positions, b.positions)
        and a.info.get("charge", 0) == b.info.get("charge", 0)
    )


@pytest.fixture(scope="module")
def samples():
    return {kind: corpus.sample_structures(kind, 150, seed=11, params=UNLABELLED)
            for kind in ("mptrj", "omat")}


@pytest.mark.parametrize("kind", ["mptrj", "omat", "test"])
def test_prototypes_cover_all_elements(kind):
    protos = corpus.prototypes(kind)
    rng = np.random.default_rng(0)
    seen = set()
    for fam, items in protos.items():
        assert items, fam
        for proto in items:
            atoms = proto.build(rng)
            assert 1 < len(atoms) <= 40, proto.name
            assert corpus.min_distance_ratio(atoms) > 0.7, proto.name
            seen |= set(atoms.get_chemical_symbols())
    assert seen == set(corpus.ELEMENTS)


def test_samples_cover_all_elements(samples):
    for kind, structures in samples.items():
        seen = {s for a in structures for s in a.get_chemical_symbols()}
        assert seen == set(corpus.ELEMENTS), kind
        families = {a.info[CONFIG_TYPE_KEY] for a in structures}
        assert {"molecule", "ion", "cluster", "liquid", "crystal"} <= families
        if kind == "omat":
            assert {"surface", "defect"} <= families
        else:
            assert not {"surface", "defect"} & families
        assert all(len(a) <= 40 for a in structures)
        assert all(a.info.get("charge", 0) == 0 for a in structures if a.pbc.any())


def test_sampling_is_deterministic_and_prefix_stable():
    a = corpus.sample_structures("omat", 12, seed=5, params=UNLABELLED)
    b = corpus.sample_structures("omat", 12, seed=5, params=UNLABELLED)
    assert all(_same(x, y) for x, y in zip(a, b))
    longer = corpus.sample_structures("omat", 20, seed=5, params=UNLABELLED)
    assert all(_same(x, y) for x, y in zip(a, longer[:12]))
    other = corpus.sample_structures("omat", 12, seed=6, params=UNLABELLED)
    assert not all(_same(x, y) for x, y in zip(a, other))


def test_omat_is_broader_than_mptrj(samples):
    ratio = {k: np.array([corpus.min_distance_ratio(a) for a in v]) for k, v in samples.items()}
    # strongly rattled / compressed structures reach shorter contacts ...
    assert np.percentile(ratio["omat"], 10) < np.percentile(ratio["mptrj"], 10) - 0.03
    assert ratio["omat"].min() < ratio["mptrj"].min()
    # ... and the perturbation modes of omat include the non-equilibrium ones
    modes = {k: {a.info["mode"] for a in v} for k, v in samples.items()}
    assert modes["mptrj"] <= {"relax", "rattle", "strain"}
    assert {"rattle_strong", "hot", "compressed", "stretched"} <= modes["omat"]
    # and more prototypes
    n_protos = {k: sum(len(v) for v in corpus.prototypes(k).values()) for k in ("mptrj", "omat")}
    assert n_protos["omat"] > n_protos["mptrj"]


def test_test_set_is_a_disjoint_mixture():
    test = corpus.sample_structures("test", 40, seed=11, params=UNLABELLED)
    dists = {a.info["corpus"] for a in test}
    assert dists == {"test:mptrj", "test:omat"}
    train = (corpus.sample_structures("mptrj", 40, seed=11, params=UNLABELLED)
             + corpus.sample_structures("omat", 40, seed=11, params=UNLABELLED))
    assert not any(_same(t, s) for t in test for s in train)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    out = {}
    for kind in ("mptrj", "test"):
        out[kind] = (corpus.generate_corpus(kind, corpus.PRESETS["smoke"][kind], 3, root / kind),
                     root / kind)
    return out


def test_smoke_files_and_keys(smoke):
    summary, path = smoke["mptrj"]
    p = corpus.PRESETS["smoke"]["mptrj"]
    assert summary["train.xyz"] + summary["valid.xyz"] == p["n_structures"]
    assert summary["valid.xyz"] >= 1 and summary["failed"] >= 0
    assert (path / "summary.json").exists()
    for name in ("train.xyz", "valid.xyz"):
        for atoms in read(path / name, ":"):
            assert np.isfinite(atoms.info[ENERGY_KEY])
            assert atoms.arrays[FORCES_KEY].shape == (len(atoms), 3)
            assert atoms.info["level"] == "GFN1-xTB"
            if atoms.pbc.all():
                assert np.asarray(atoms.info[STRESS_KEY]).size in (6, 9)
            else:
                assert STRESS_KEY not in atoms.info
    iso = read(path / "isolated_atoms.xyz", ":")
    assert sorted(a.get_chemical_symbols()[0] for a in iso) == sorted(corpus.ELEMENTS)
    assert all(a.info[CONFIG_TYPE_KEY] == "IsolatedAtom" for a in iso)
    summary_t, path_t = smoke["test"]
    assert summary_t["test.xyz"] == corpus.PRESETS["smoke"]["test"]["n_structures"]
    assert not (path_t / "train.xyz").exists()


def test_generation_is_deterministic(smoke, tmp_path):
    _, path = smoke["mptrj"]
    corpus.generate_corpus("mptrj", corpus.PRESETS["smoke"]["mptrj"], 3, tmp_path)
    for name in ("train.xyz", "valid.xyz"):
        a, b = read(path / name, ":"), read(tmp_path / name, ":")
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert _same(x, y)
            assert x.info[ENERGY_KEY] == pytest.approx(y.info[ENERGY_KEY], abs=1e-8)


def _fake_corpus(path):
    rng = np.random.default_rng(0)
    configs = []
    for formula in ["LiCl", "Li2S", "PS4Li3", "NaCl", "H2O", "LiF", "ClLi", "SNa2", "PH3", "Cl2"] * 3:
        a = Atoms(formula, positions=rng.normal(size=(len(Atoms(formula)), 3)) * 2)
        a.info[ENERGY_KEY] = float(rng.normal())
        configs.append(a)
    iso = Atoms("Li")
    iso.info[CONFIG_TYPE_KEY] = "IsolatedAtom"
    configs.append(iso)
    write(path, configs, format="extxyz")
    return configs


def test_replay_subsample_element_matched_and_random(tmp_path):
    src = tmp_path / "corpus.xyz"
    _fake_corpus(src)
    lpsc_elements = ["Li", "P", "S", "Cl"]
    em = corpus.replay_subsample(src, lpsc_elements, 8, 1, "element_matched", tmp_path / "em.xyz")
    assert len(em) == 8
    assert all(set(a.get_chemical_symbols()) <= set(lpsc_elements) for a in em)
    assert len(read(tmp_path / "em.xyz", ":")) == 8
    # asking for more than match returns all matches (LiCl, Li2S, Li3PS4, ClLi, Cl2: 5 x 3)
    assert len(corpus.replay_subsample(src, lpsc_elements, 100, 1, "element_matched")) == 15
    rnd = corpus.replay_subsample(src, lpsc_elements, 10, 1, "random", tmp_path / "rnd.xyz")
    assert len(rnd) == 10
    assert all(a.info.get(CONFIG_TYPE_KEY) != "IsolatedAtom" for a in rnd)
    again = corpus.replay_subsample(src, lpsc_elements, 10, 1, "random")
    assert all(_same(x, y) for x, y in zip(rnd, again))
    combined = corpus.combine_replay([tmp_path / "em.xyz", tmp_path / "rnd.xyz"], tmp_path / "c.xyz")
    overlap = sum(any(_same(x, y) for y in rnd) for x in em)
    assert len(combined) == len(em) + len(rnd) - overlap
    with pytest.raises(ValueError):
        corpus.replay_subsample(src, lpsc_elements, 3, 1, "bogus")
