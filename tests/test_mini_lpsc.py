"""The LPSC (lithium argyrodite Li6PS5Cl) benchmark of the mini world (mlipft.mini.lpsc):
crystal structure, ordered Li model, held-out sets, determinism, labelled smoke generation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ase.geometry import get_distances
from ase.io import read
from ase.neighborlist import neighbor_list
from ase.spacegroup import Spacegroup

from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, STRESS_KEY
from mlipft.mini import lpsc


def _maps_onto_itself(atoms, rotations, translations, tol=1e-4) -> bool:
    frac = atoms.get_scaled_positions()
    sym = np.array(atoms.get_chemical_symbols())
    for rot, trans in zip(rotations, translations):
        image = (frac @ rot.T + trans) % 1.0
        for s in set(sym):
            a, b = image[sym == s], frac[sym == s]
            diff = (a[:, None, :] - b[None, :, :] + 0.5) % 1.0 - 0.5
            if not (np.abs(diff).max(axis=2).min(axis=1) < tol).all():
                return False
    return True


def test_cell_composition_and_lattice():
    cell = lpsc.lpsc_cell()
    assert len(cell) == 52
    assert Counter(cell.get_chemical_symbols()) == {"Li": 24, "P": 4, "S": 20, "Cl": 4}
    assert np.allclose(cell.cell.array, np.eye(3) * 9.85)
    assert cell.pbc.all()


def test_wyckoff_multiplicities_and_space_group():
    parent = lpsc.parent_structure()
    assert Counter(parent.get_chemical_symbols()) == {"Li": 48, "P": 4, "S": 20, "Cl": 4}
    frac = parent.get_scaled_positions()
    sym = np.array(parent.get_chemical_symbols())
    free_s = [f for f, s in zip(frac, sym) if s == "S" and np.allclose((f * 4) % 2, 1.0, atol=1e-6)]
    assert len(free_s) == 4  # 4c; the other 16 S are on 16e
    sg = Spacegroup(216)
    rot, trans = sg.get_op()
    assert len(rot) == 96  # 24 point operations x 4 F-centring translations
    assert _maps_onto_itself(parent, rot, trans)
    # non-centrosymmetric: inversion through the origin does not map it (so not Fm-3m)
    assert not _maps_onto_itself(parent, [-np.eye(3)], [np.zeros(3)])


def test_space_group_with_spglib():
    spglib = pytest.importorskip("spglib")  # optional: not a dependency of the project
    parent = lpsc.parent_structure()
    cell = (parent.cell[:], parent.get_scaled_positions(), parent.numbers)
    dataset = spglib.get_symmetry_dataset(cell, symprec=1e-3)
    number = dataset.number if hasattr(dataset, "number") else dataset["number"]
    assert number == 216


def test_ordered_li_is_one_per_doublet_and_f_centred():
    sites = lpsc.li_sites()
    occupied = set(lpsc.ordered_li_indices())
    doublets = lpsc.li_doublets()
    assert len(doublets) == 24 and len(occupied) == 24
    assert all(len(occupied & set(pair)) == 1 for pair in doublets)
    _, d = get_distances(sites.positions[list(doublets[0])], cell=sites.cell, pbc=True)
    assert d[0, 1] == pytest.approx(1.87, abs=0.02)
    cell = lpsc.lpsc_cell()
    centring = [np.eye(3)] * 3
    translations = [np.array([0, 0.5, 0.5]), np.array([0.5, 0, 0.5]), np.array([0.5, 0.5, 0])]
    assert _maps_onto_itself(cell, centring, translations)
    prim = lpsc.primitive_cell(cell)
    assert Counter(prim.get_chemical_symbols()) == {"Li": 6, "P": 1, "S": 5, "Cl": 1}
    back = lpsc.conventional_from_primitive(prim)
    _, dd = get_distances(back.positions, cell.positions, cell=cell.cell, pbc=True)
    assert dd.min(axis=1).max() < 1e-6


def test_local_geometry_is_physical():
    cell = lpsc.lpsc_cell()
    i, j, d = neighbor_list("ijd", cell, 3.0)
    sym = np.array(cell.get_chemical_symbols())
    ps = d[(sym[i] == "P") & (sym[j] == "S")]
    assert len(ps) == 16 and np.allclose(ps, 2.05, atol=0.03)  # PS4 tetrahedra
    for k in np.where(sym == "Li")[0]:
        neigh = Counter(sym[j[(i == k) & (sym[j] != "Li")]])
        assert neigh == {"S": 3, "Cl": 1}  # tetrahedral Li: 3 S + 1 Cl
    li = cell.positions[sym == "Li"]
    _, dl = get_distances(li, cell=cell.cell, pbc=True)
    np.fill_diagonal(dl, np.inf)
    assert dl.min() > 2.1
    assert d.min() > 2.0


def test_heldout_compositions_are_disjoint_from_train():
    train = Counter(lpsc.lpsc_cell().get_chemical_symbols())
    train_ratio = {s: n / sum(train.values()) for s, n in train.items()}

    def ratio(atoms):
        c = Counter(atoms.get_chemical_symbols())
        return {s: n / len(atoms) for s, n in c.items()}

    br = lpsc.li6ps5br_cell()
    assert Counter(br.get_chemical_symbols()) == {"Li": 24, "P": 4, "S": 20, "Br": 4}
    rich = lpsc.cl_rich_cell(2)
    assert Counter(rich.get_chemical_symbols()) == {"Li": 22, "P": 4, "S": 18, "Cl": 6}
    rich1 = lpsc.cl_rich_cell(1)
    assert Counter(rich1.get_chemical_symbols()) == {"Li": 23, "P": 4, "S": 19, "Cl": 5}
    assert set(lpsc.DEFAULT_OTHER_ARGYRODITES) <= set(lpsc.OTHER_ARGYRODITES)
    others = [br, rich, rich1, *lpsc.non_argyrodite_cells().values()]
    for atoms in (rich, rich1):  # the Li removed next to the new Cl leave sane contacts
        i, j, d = neighbor_list("ijd", atoms, 3.0)
        assert d.min() > 2.0
    for atoms in others:
        assert ratio(atoms) != train_ratio
        assert len(atoms) <= 60
    names = {a.info["structure"] for a in lpsc.non_argyrodite_cells().values()}
    assert names == {"Li3PS4", "Li2S", "LiCl"}
    for kind in ("other_argyrodites", "non_argyrodites"):
        configs = lpsc.heldout_configs(kind, 4, seed=1)
        assert all(a.info[CONFIG_TYPE_KEY] == kind for a in configs)
        assert all(ratio(a) != train_ratio for a in configs)


# smaller than the smoke preset, to keep this file fast on a busy machine
TINY = dict(lpsc.PRESETS["smoke"], n_train=1, md_steps=2, md_equil=0)


def test_configs_are_deterministic():
    p = TINY
    a = lpsc.sample_configs(p, seed=4)
    b = lpsc.sample_configs(p, seed=4)
    assert len(a) == p["n_train"] + p["n_valid"] + p["n_test"]
    for x, y in zip(a, b):
        assert x.get_chemical_symbols() == y.get_chemical_symbols()
        assert np.allclose(x.positions, y.positions) and np.allclose(x.cell.array, y.cell.array)
    c = lpsc.sample_configs(p, seed=5)
    assert not all(np.allclose(x.positions, y.positions) for x, y in zip(a, c))
    h1 = lpsc.heldout_configs("non_argyrodites", 3, seed=4)
    h2 = lpsc.heldout_configs("non_argyrodites", 3, seed=4)
    assert all(np.allclose(x.positions, y.positions) for x, y in zip(h1, h2))


def test_card():
    for key in ("paper_counterpart", "level", "elements", "notes"):
        assert lpsc.CARD[key]
    assert set(lpsc.CARD["elements"]) == {"Li", "P", "S", "Cl"}


def test_tiny_generation(tmp_path):
    p = TINY
    summary = lpsc.generate(p, 0, tmp_path)
    expected = {"train.xyz": p["n_train"], "valid.xyz": p["n_valid"], "test.xyz": p["n_test"],
                "heldout_other_argyrodites.xyz": p["n_heldout"],
                "heldout_non_argyrodites.xyz": p["n_heldout"], "isolated_atoms.xyz": 4}
    for name, n in expected.items():
        assert summary[name] == n
        configs = read(tmp_path / name, ":")
        assert len(configs) == n
        for atoms in configs:
            assert np.isfinite(atoms.info[ENERGY_KEY])
            assert atoms.arrays[FORCES_KEY].shape == (len(atoms), 3)
            assert "spacegroup" not in atoms.info
            if name != "isolated_atoms.xyz":
                assert atoms.pbc.all()
                assert np.asarray(atoms.info[STRESS_KEY]).size in (6, 9)
    train = read(tmp_path / "train.xyz", ":")
    assert all(Counter(a.get_chemical_symbols()) == {"Li": 24, "P": 4, "S": 20, "Cl": 4}
               for a in train)
