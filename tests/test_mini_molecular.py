"""Mini-world benchmarks nacl, ice and spice: smoke-size generation, keys, splits, RDF and EMD.

Every GFN2-xTB call here is on a small system; the labelled generations are module-scoped
fixtures, run once (ice for two of its four phases; the structures of all four are checked
without labels). Expected ~45 s on two idle cores; 141 s measured on a 2-core machine under a
load average of 5.
"""

from __future__ import annotations

import collections
import csv

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from mlipft import xtb
from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY
from mlipft.mini import ice, nacl, spice

MODULES = (nacl, ice, spice)


@pytest.fixture(scope="module", autouse=True)
def _one_openmp_thread():
    """tblite on one OpenMP thread: these systems are tiny, and on a busy 2-core machine two
    threads wait on each other (measured: the whole file 32 s on one thread, 68 s on two)."""
    import tblite.interface  # noqa: F401  (threadpoolctl only limits libraries already loaded)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _read(path):
    if path.stat().st_size == 0:
        return []
    return read(path, index=":", format="extxyz")


def _check_labelled(configs, periodic: bool):
    """Canonical keys, eV / eV/A units (energies per atom far below Hartree magnitudes)."""
    assert configs
    for a in configs:
        e = a.info[ENERGY_KEY]
        assert isinstance(e, float) and np.isfinite(e)
        # GFN2 total energies are ~ -10 to -100 eV per atom; in Hartree they would be ~ -1 to -4.
        assert e / len(a) < -5.0
        f = a.arrays[FORCES_KEY]
        assert f.shape == (len(a), 3) and np.isfinite(f).all()
        assert np.abs(f).max() < 50.0  # eV/A; Hartree/Bohr-scaled forces would look tiny
        assert a.info["level"] == "GFN2-xTB"
        assert bool(a.pbc.all()) == periodic
        if periodic:
            s = np.asarray(a.info[STRESS_KEY])
            assert s.shape == (3, 3) and np.isfinite(s).all()
            assert np.allclose(s, s.T, atol=1e-6)


def _fingerprints(configs):
    return {tuple(np.round(a.positions.ravel(), 6)) for a in configs}


# ----------------------------------------------------------------------------- interface
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_card_params_and_sizes(module, tmp_path):
    for key in ("name", "paper_counterpart", "level", "elements", "sizes", "same", "different"):
        assert key in module.CARD
    assert set(module.CARD["sizes"]) == {"smoke", "mini"}
    assert set(module.PARAM_DOCS) == set(module.DEFAULT_PARAMS)
    for size in ("smoke", "mini"):
        assert set(module.SIZES[size]) <= set(module.DEFAULT_PARAMS)
    assert {"train", "valid", "test", "isolated_atoms"} <= set(module.FILES)
    with pytest.raises(ValueError, match="unknown"):
        module.generate({"no_such_key": 1}, 0, tmp_path)


# ----------------------------------------------------------------------------- RDF and EMD
def _frames_random(n_frames, counts, length, seed):
    rng = np.random.default_rng(seed)
    symbols = [s for s, n in counts.items() for _ in range(n)]
    return [Atoms(symbols, positions=rng.uniform(0, length, (len(symbols), 3)), cell=[length] * 3, pbc=True)
            for _ in range(n_frames)]


def test_rdf_ideal_gas_is_one():
    frames = _frames_random(40, {"Ar": 60, "Ne": 60}, 12.0, seed=1)
    for pair in ("Ar-Ne", "Ar-Ar"):
        r, g = nacl.compute_rdf(frames, pair, r_max=6.0, nbins=30)
        assert r.shape == g.shape == (30,)
        assert np.all(np.diff(r) > 0) and r[0] > 0 and r[-1] < 6.0
        assert abs(g[r > 2.0].mean() - 1.0) < 0.05


def test_rdf_simple_cubic_coordination_number():
    a0 = 3.0
    lattice = Atoms("Ar", positions=[[0, 0, 0]], cell=[a0] * 3, pbc=True).repeat((4, 4, 4))
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(5):
        f = lattice.copy()
        f.positions += rng.normal(0, 0.05, f.positions.shape)
        frames.append(f)
    r, g = nacl.compute_rdf(frames, "Ar-Ar", r_max=6.0, nbins=120)
    dr = r[1] - r[0]
    rho = (len(lattice) - 1) / lattice.get_volume()  # same species: density of the *other* atoms
    shells = 4.0 / 3.0 * np.pi * ((r + dr / 2) ** 3 - (r - dr / 2) ** 3)  # InterRDF's bin volumes
    coordination = rho * np.cumsum(g * shells)
    assert coordination[r < 3.6][-1] == pytest.approx(6.0, abs=1e-6)   # 6 nearest neighbours
    assert coordination[r < 4.8][-1] == pytest.approx(18.0, abs=1e-6)   # + 12 at a*sqrt(2)
    assert g[r < 2.5].max() == 0.0
    assert abs(r[g > 0][0] - a0) < 0.3  # the first shell starts near the lattice constant


def test_rdf_rejects_range_beyond_half_cell():
    frames = _frames_random(2, {"Na": 2, "O": 4}, 8.0, seed=0)
    assert nacl.max_rdf_range(frames[0]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="half the cell"):
        nacl.compute_rdf(frames, "Na-O", r_max=4.5, nbins=10)
    with pytest.raises(ValueError):
        nacl.compute_rdf(frames, "Na-Xx", r_max=3.0, nbins=10)


def test_emd_zero_for_identical_and_grows_with_shift():
    r = np.linspace(0.0, 8.0, 801)

    def peak(centre):
        return np.exp(-0.5 * ((r - centre) / 0.15) ** 2)

    g = peak(3.0) + 0.5 * peak(5.0)
    assert nacl.earth_movers_distance(r, g, g) == pytest.approx(0.0, abs=1e-12)
    emds = [nacl.earth_movers_distance(r, g, peak(3.0 + d) + 0.5 * peak(5.0 + d)) for d in (0.05, 0.1, 0.3)]
    assert emds == pytest.approx([0.05, 0.1, 0.3], rel=1e-2)  # a rigid shift moves all mass by d
    assert nacl.earth_movers_distance(r, g, 2.0 * g) == pytest.approx(0.0, abs=1e-12)  # shape only
    with pytest.raises(ValueError):
        nacl.earth_movers_distance(r, g, -g)
    with pytest.raises(ValueError):
        nacl.earth_movers_distance(r[:-1], g, g)


# ----------------------------------------------------------------------------- NaCl
@pytest.fixture(scope="module")
def nacl_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("nacl")
    summary = nacl.generate(nacl.SIZES["smoke"], 0, out)
    return out, summary


def test_nacl_files_keys_units(nacl_dir):
    out, summary = nacl_dir
    for stem in nacl.FILES:
        assert (out / f"{stem}.xyz").exists()
    for name in nacl.EXTRA_FILES:
        assert (out / name).exists()
    for split in ("train", "valid", "test"):
        configs = _read(out / f"{split}.xyz")
        assert len(configs) == summary[f"{split}.xyz"]
        _check_labelled(configs, periodic=True)
        for a in configs:
            counts = collections.Counter(a.get_chemical_symbols())
            assert counts["Na"] == 1 and counts["Cl"] == 1 and counts["H"] == 2 * counts["O"]
            assert a.info[CONFIG_TYPE_KEY] == "nacl_aq"
            assert np.allclose(a.get_masses()[a.numbers == 1], 1.008, atol=1e-3)  # standard masses
    iso = _read(out / "isolated_atoms.xyz")
    assert sorted(a.get_chemical_symbols()[0] for a in iso) == ["Cl", "H", "Na", "O"]
    assert all(a.info[CONFIG_TYPE_KEY] == ISOLATED_ATOM for a in iso)


def test_nacl_splits_are_disjoint_time_blocks(nacl_dir):
    out, _ = nacl_dir
    walkers = {int(a.info["walker"]) for s in ("train", "valid", "test") for a in _read(out / f"{s}.xyz")}
    assert walkers == set(range(nacl.SIZES["smoke"]["n_walkers"]))
    for w in walkers:
        times = {s: [a.info["time_fs"] for a in _read(out / f"{s}.xyz") if a.info["walker"] == w]
                 for s in ("train", "valid", "test")}
        assert times["train"]
        if times["valid"]:
            assert max(times["train"]) < min(times["valid"])
        if times["test"]:
            assert max(times["train"] + times["valid"]) < min(times["test"])
    fps = {s: _fingerprints(_read(out / f"{s}.xyz")) for s in ("train", "valid", "test")}
    assert not (fps["train"] & fps["valid"]) and not (fps["train"] & fps["test"]) and not (fps["valid"] & fps["test"])


def test_nacl_md_start_and_rdf_reference(nacl_dir):
    out, _ = nacl_dir
    (start,) = _read(out / "md_start.xyz")
    p = {**nacl.DEFAULT_PARAMS, **nacl.SIZES["smoke"]}
    assert np.allclose(start.get_masses()[start.numbers == 1], p["hydrogen_mass_amu"])
    assert start.get_momenta().any()
    for key in ("md_temperature_K", "md_timestep_fs", "md_friction_per_fs", "md_hydrogen_mass_amu",
                "md_n_walkers", "rdf_r_max", "rdf_nbins"):
        assert key in start.info
    with open(out / "rdf_reference.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["pair", "r_angstrom", "g_r"]
    rdfs = nacl.read_rdf_csv(out / "rdf_reference.csv")
    assert set(rdfs) == set(nacl.RDF_PAIRS)
    for r, g in rdfs.values():
        assert len(r) == start.info["rdf_nbins"]
        assert np.all(np.diff(r) > 0) and r[-1] < start.info["rdf_r_max"] <= nacl.max_rdf_range(start)
        assert (g >= 0).all() and g.sum() > 0
        assert g[r < 1.5].max() == 0.0  # no ion-oxygen contacts below 1.5 A
    # The workflow computes model RDFs with the same function: the reference is reproducible.
    frames = [start, start]
    r, g = nacl.compute_rdf(frames, "Na-O", start.info["rdf_r_max"], start.info["rdf_nbins"])
    assert np.allclose(r, rdfs["Na-O"][0], atol=1e-5)


def test_nacl_box_and_md_are_deterministic():
    a = nacl.water_box(6, 1.0, np.random.default_rng(3))
    b = nacl.water_box(6, 1.0, np.random.default_rng(3))
    c = nacl.water_box(6, 1.0, np.random.default_rng(4))
    assert np.array_equal(a.positions, b.positions) and not np.allclose(a.positions, c.positions)
    assert a.get_volume() * 0.602214076 == pytest.approx(a.get_masses().sum() / 1.0, rel=1e-6)  # 1 g/cm3
    assert nacl.intact_waters(a) == 1.0
    runs = []
    for _ in range(2):
        atoms = a.copy()
        nacl.set_hydrogen_mass(atoms, 2.0)
        frames = nacl.langevin_md(atoms, xtb.calculator("foundation", 0, 1), 2, temperature_K=300.0,
                                  timestep_fs=1.0, friction_per_fs=0.02, rng=np.random.default_rng(5),
                                  label_level="foundation")
        runs.append(frames)
    assert [f.info["step"] for f in runs[0]] == [1, 2]
    for f0, f1 in zip(*runs):
        assert np.allclose(f0.positions, f1.positions, atol=1e-10)
        assert f0.info[ENERGY_KEY] == pytest.approx(f1.info[ENERGY_KEY], abs=1e-8)
        assert f0.info["level"] == "GFN1-xTB"


# ----------------------------------------------------------------------------- ice
def test_ice_structures_all_phases():
    expected = {"Ih": 48, "II": 36, "VI": 30, "VIII": 24}
    assert ice.CARD["atoms_per_cell"] == expected
    for phase, n_atoms in expected.items():
        a = ice.genice_structure(phase, 7)
        assert len(a) == n_atoms and a.info["phase"] == phase
        assert nacl.intact_waters(a) == 1.0
        b = ice.genice_structure(phase, 7)
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell, b.cell)
    # proton-disordered phases change with the seed, ordered ones do not
    assert not np.allclose(ice.genice_structure("Ih", 1).positions, ice.genice_structure("Ih", 2).positions)
    assert np.allclose(ice.genice_structure("VIII", 1).positions, ice.genice_structure("VIII", 2).positions)


def test_ice_reduce_supercell_checks_periodicity():
    cell = ice.genice_structure("VI", 0)
    block = ice.reduce_supercell(cell.repeat((2, 1, 1)), (2, 1, 1))
    assert len(block) == len(cell) and np.allclose(block.cell, cell.cell)
    broken = cell.repeat((2, 1, 1))
    broken.positions[-1] += 0.5
    with pytest.raises(ValueError, match="supercell"):
        ice.reduce_supercell(broken, (2, 1, 1))


@pytest.fixture(scope="module")
def ice_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ice")
    params = {**ice.SIZES["smoke"], "phases": ["Ih", "VIII"]}  # two phases keep the test short
    return out, ice.generate(params, 0, out), params


def test_ice_phases_stress_and_splits(ice_dir):
    out, summary, params = ice_dir
    for stem in ice.FILES:
        assert (out / f"{stem}.xyz").exists()
    splits = {}
    for split in ("train", "valid", "test"):
        configs = _read(out / f"{split}.xyz")
        _check_labelled(configs, periodic=True)
        assert {a.info["phase"] for a in configs} == set(params["phases"])
        assert all(a.info[CONFIG_TYPE_KEY] == a.info["phase"] for a in configs)
        assert all(STRESS_KEY in a.info for a in configs)
        splits[split] = _fingerprints(configs)
        for phase in ice.PHASES:
            single = _read(out / f"{split}_{phase}.xyz")
            assert all(a.info["phase"] == phase for a in single)
            assert len(single) == sum(a.info["phase"] == phase for a in configs)
    assert sum(len(splits[s]) for s in splits) == params["n_per_phase"] * len(params["phases"])
    assert not (splits["train"] & splits["valid"]) and not (splits["train"] & splits["test"])
    assert not (splits["valid"] & splits["test"])
    assert summary["train_II.xyz"] == 0  # phases left out still get (empty) files
    iso = _read(out / "isolated_atoms.xyz")
    assert sorted(a.get_chemical_symbols()[0] for a in iso) == ["H", "O"]


def test_ice_sampling_is_deterministic():
    params = {**ice.DEFAULT_PARAMS, **ice.SIZES["smoke"]}
    a, _ = ice.sample_phase("VIII", params, np.random.default_rng(11))
    b, _ = ice.sample_phase("VIII", params, np.random.default_rng(11))
    assert len(a) == params["n_per_phase"]
    for x, y in zip(a, b):
        assert np.allclose(x.positions, y.positions, atol=1e-10) and np.allclose(x.cell, y.cell)
    # strained cells: not all equal to the GenIce2 cell
    ref = ice.genice_structure("VIII", 0).cell
    assert not all(np.allclose(x.cell, ref) for x in a)


# ----------------------------------------------------------------------------- SPICE
@pytest.fixture(scope="module")
def spice_dirs(tmp_path_factory):
    out = [tmp_path_factory.mktemp(f"spice{i}") for i in range(2)]
    summaries = [spice.generate(spice.SIZES["smoke"], 0, d) for d in out]
    return out, summaries


def test_spice_one_conformer_per_molecule(spice_dirs):
    out, summaries = spice_dirs[0][0], spice_dirs[1]
    molecules = spice.SIZES["smoke"]["molecules"]
    train = _read(out / "train.xyz")
    assert sorted(a.info["molecule"] for a in train) == sorted(molecules)
    valid, test = _read(out / "valid.xyz"), _read(out / "test.xyz")
    for configs in (train, valid, test):
        _check_labelled(configs, periodic=False)
        assert all(a.info[CONFIG_TYPE_KEY] == "spice" for a in configs)
    train_all = _read(out / "train_all.xyz")  # smoke: one training conformer, so train_all == train
    assert [a.info["conformer"] for a in train_all] == [a.info["conformer"] for a in train]
    seen = collections.defaultdict(list)
    for a in train + valid + test:
        seen[a.info["molecule"]].append(int(a.info["conformer"]))
    for name in molecules:
        assert sorted(seen[name]) == list(range(spice.SIZES["smoke"]["n_conformers"]))  # disjoint, complete
    assert summaries[0]["valid.xyz"] >= len(molecules) and summaries[0]["test.xyz"] >= len(molecules)
    iso = {a.get_chemical_symbols()[0] for a in _read(out / "isolated_atoms.xyz")}
    assert iso == {s for a in train + valid + test for s in a.get_chemical_symbols()}


def test_spice_train_all_nests_train_and_is_disjoint_from_valid_test(tmp_path):
    params = {**spice.SIZES["smoke"], "molecules": ["ethanol", "fluoromethane"], "n_conformers": 5,
              "n_train_conformers": 3, "torsions": []}
    summary = spice.generate(params, 1, tmp_path)
    assert summary["train_all.xyz"] == 6 and summary["train.xyz"] == 2
    key = lambda a: (a.info["molecule"], int(a.info["conformer"]))  # noqa: E731
    train, train_all = {key(a) for a in _read(tmp_path / "train.xyz")}, {key(a) for a in _read(tmp_path / "train_all.xyz")}
    held = {key(a) for f in ("valid.xyz", "test.xyz") for a in _read(tmp_path / f)}
    assert train < train_all and not train_all & held and len(train_all | held) == 10
    with pytest.raises(ValueError, match=r"n_conformers \(3\) must be >= n_train_conformers \(2\) \+ 2"):
        spice.generate({**params, "n_conformers": 3, "n_train_conformers": 2}, 1, tmp_path / "bad")


def test_spice_deterministic(spice_dirs):
    (d0, d1), (s0, s1) = spice_dirs
    assert s0 == s1
    for stem in spice.FILES:
        a, b = _read(d0 / f"{stem}.xyz"), _read(d1 / f"{stem}.xyz")
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert np.allclose(x.positions, y.positions, atol=1e-8)
            assert x.info[ENERGY_KEY] == pytest.approx(y.info[ENERGY_KEY], abs=1e-7)


def test_spice_torsion_scan(spice_dirs):
    out = spice_dirs[0][0]
    rows = _read(out / "torsions.xyz")
    n = spice.SIZES["smoke"]["torsion_n_angles"]
    assert len(rows) == n * len(spice.SIZES["smoke"]["torsions"])
    name, atoms_idx = spice.TORSIONS["butane_CCCC"]
    assert [r.info["angle_deg"] for r in rows] == pytest.approx(list(-180.0 + 360.0 * np.arange(n) / n))
    for r in rows:
        assert r.info["molecule"] == name
        assert list(r.info["dihedral_atoms"]) == list(atoms_idx)
        assert np.isfinite(r.info[ENERGY_KEY])
        diff = (r.info["angle_measured_deg"] - r.info["angle_deg"] + 180.0) % 360.0 - 180.0
        assert abs(diff) < 0.5
        i, j, k, l = atoms_idx
        measured = (r.get_dihedral(i, j, k, l) + 180.0) % 360.0 - 180.0
        assert abs((measured - r.info["angle_deg"] + 180.0) % 360.0 - 180.0) < 0.5
    energies = {r.info["angle_deg"]: r.info[ENERGY_KEY] for r in rows}
    assert energies[-180.0] < energies[0.0]  # butane: anti below the syn (eclipsed) barrier


def test_spice_rejects_ring_torsions():
    with pytest.raises(ValueError, match="ring"):
        spice.moving_side("chlorobenzene", 1, 2)
    assert spice.moving_side("butane", 1, 2)[0] == 2
