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
