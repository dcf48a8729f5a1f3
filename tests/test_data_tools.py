"""Training-set fractions, replay sets and atomic writes."""

import os

import numpy as np
import pytest
from ase import Atoms

from mlipft import replay, subsample
from mlipft.io import atomic_path
from mlipft.keys import CONFIG_TYPE_KEY, ISOLATED_ATOM


def _configs(n, symbols="CH4"):
    out = []
    for i in range(n):
        a = Atoms(symbols, positions=np.random.default_rng(i).normal(size=(len(Atoms(symbols)), 3)))
        a.info["index"] = i
        out.append(a)
    return out


def test_subsample_is_nested_deterministic_and_drops_isolated_atoms():
    configs = _configs(50)
    iso = Atoms("H")
    iso.info[CONFIG_TYPE_KEY] = ISOLATED_ATOM
    configs.append(iso)
    small = {a.info["index"] for a in subsample.subsample(configs, 0.1, seed=3)}
    large = {a.info["index"] for a in subsample.subsample(configs, 0.5, seed=3)}
    assert len(small) == 5 and len(large) == 25 and small <= large
    assert small == {a.info["index"] for a in subsample.subsample(configs, 0.1, seed=3)}
    assert small != {a.info["index"] for a in subsample.subsample(configs, 0.1, seed=4)}
    assert len(subsample.subsample(configs, 1.0, 0)) == 50
    assert len(subsample.subsample(configs, 0.001, 0)) == 1


@pytest.mark.parametrize("fraction", [0.0, 1.5, -1])
def test_subsample_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="outside"):
        subsample.subsample(_configs(3), fraction, 0)


def test_replay_element_matching():
    corpus = _configs(5, "CH4") + _configs(5, "NH3") + _configs(5, "CH3Cl")
    matched = replay.select(corpus, {"C", "H", "Cl"}, "element_matched", None, 0)
    assert len(matched) == 10 and all("N" not in a.get_chemical_symbols() for a in matched)
    assert len(replay.select(corpus, {"C", "H"}, "random", 4, 0)) == 4
    with pytest.raises(ValueError, match="no corpus structure"):
        replay.select(corpus, {"Br"}, "element_matched", None, 0)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("precious\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("job died")
    assert target.read_text() == "precious\n"
    assert os.listdir(tmp_path) == ["out.csv"]
    with atomic_path(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n" and oct(target.stat().st_mode)[-3:] == "644"


def test_learnable_keeps_neutral_closed_shell_and_periodic():
    from mlipft.mini.corpus import learnable

    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    assert learnable(water)
    hydroxide = water[:2]
    hydroxide.info["charge"] = -1
    assert not learnable(hydroxide)  # OH-: 10 electrons, closed shell, but charged
    radical = Atoms("CH", positions=[[0, 0, 0], [1.1, 0, 0]])  # 7 electrons
    assert not learnable(radical)
    oxygen = Atoms("O2", positions=[[0, 0, 0], [1.2, 0, 0]])
    oxygen.info["multiplicity"] = 3
    assert not learnable(oxygen)
    metal = Atoms("Na", cell=[4, 4, 4], pbc=True)  # odd electrons, periodic: smeared, kept
    assert learnable(metal)


def test_corpus_prefix_filters_then_takes_the_prefix(tmp_path):
    from ase.io import read, write

    from mlipft.io import xyz_frame_sizes
    from mlipft.train import corpus_prefix

    configs = []
    for i in range(8):
        a = Atoms("CH", positions=[[0, 0, 0], [1.1 + 0.01 * i, 0, 0]]) if i % 2 else \
            Atoms("H2", positions=[[0, 0, 0], [0.74 + 0.01 * i, 0, 0]])
        a.info["REF_energy"] = float(i)
        configs.append(a)
    src = tmp_path / "corpus.xyz"
    write(src, configs, format="extxyz")
    assert len(xyz_frame_sizes(src)) == 8
    out = corpus_prefix(str(src), 0.5, tmp_path / "out.xyz", "learnable")
    kept = read(out, ":")
    assert [a.info["REF_energy"] for a in kept] == [0.0, 2.0]  # H2 only, first half of the 4
    assert len(read(corpus_prefix(str(src), 0.5, tmp_path / "all.xyz"), ":")) == 4
    with pytest.raises(ValueError, match="unknown corpus filter 'neutral'"):
        corpus_prefix(str(src), 1.0, tmp_path / "x.xyz", "neutral")
    # a union of corpora (the omat foundations train on mptrj + omat): the files in order, then the filter
    second = tmp_path / "second.xyz"
    write(second, configs[:2], format="extxyz")
    union = read(corpus_prefix([str(src), str(second)], 1.0, tmp_path / "union.xyz", "learnable"), ":")
    assert [a.info["REF_energy"] for a in union] == [0.0, 2.0, 4.0, 6.0, 0.0]


def test_replay_combine_cli_drops_duplicates(tmp_path):
    from ase.io import read, write

    a = [Atoms("H2", positions=[[0, 0, 0], [0.74 + 0.01 * i, 0, 0]]) for i in range(3)]
    write(tmp_path / "one.xyz", a[:2], format="extxyz")
    write(tmp_path / "two.xyz", a[1:], format="extxyz")
    replay.main(["--combine", str(tmp_path / "one.xyz"), str(tmp_path / "two.xyz"), "--output",
                 str(tmp_path / "both.xyz")])
    assert len(read(tmp_path / "both.xyz", ":")) == 3
    with pytest.raises(SystemExit):
        replay.main(["--corpus", str(tmp_path / "one.xyz"), "--output", str(tmp_path / "x.xyz")])
