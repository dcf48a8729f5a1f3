"""The analysis layer: batched predictions, NEB, MD, RDF/EMD and torsion profiles.

The fast tests use small untrained MACE models built in process (one without heads, one with
``["Default", "pt_head"]``); only the MD command line needs a model file that mace's calculator
loads, the trained ``tiny_foundation`` (slow).
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from mlipft.analysis import md, neb, rdf, torsion
from mlipft.analysis.predict import load_model, predict, select_head
from mlipft.io import read_configs, write_atomic
from mlipft.keys import ENERGY_KEY

ELEMENTS = [1, 6, 8, 11, 17]  # H C O Na Cl


def _mace(heads):
    import torch
    from mace import modules  # before e3nn: mace sets up torch.load for e3nn's constants
    from e3nn import o3
    from mace.tools import torch_tools

    torch_tools.set_default_dtype("float64")
    torch.manual_seed(0)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    n = len(heads or ["Default"])
    e0s = -1.0 - np.arange(n)[:, None] * 0.5 - np.arange(len(ELEMENTS))[None, :]
    model = modules.MACE(
        r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=len(ELEMENTS),
        hidden_irreps=o3.Irreps("8x0e+8x1o"), MLP_irreps=o3.Irreps("8x0e"),
        atomic_energies=e0s if heads else e0s[0], avg_num_neighbors=4.0, atomic_numbers=ELEMENTS,
        correlation=2, gate=torch.nn.functional.silu, heads=heads)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``{name: (model, path)}`` of an untrained single-head and a two-head MACE."""
    import torch

    d = tmp_path_factory.mktemp("models")
    out = {}
    for name, heads in (("single", None), ("multi", ["Default", "pt_head"])):
        model = _mace(heads)
        torch.save(model, d / f"{name}.model")
        out[name] = (model, str(d / f"{name}.model"))
    return out


def _molecules(n, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0, 0], [1.09, 0, 0], [-0.36, 1.03, 0], [-0.36, -0.51, 0.89], [0, 0, -1.8]])
    return [Atoms("CHHHCl", positions=base + rng.normal(0, 0.05, base.shape)) for _ in range(n)]


def _box(seed=0):
    """Na, Cl and water-like O/H in a periodic 6 A cell."""
    rng = np.random.default_rng(seed)
    sites = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)], float) * 3.0 + 1.5
    positions = np.vstack([sites, sites[:2] + 1.2]) + rng.normal(0, 0.1, (10, 3))
    return Atoms("NaClOHHOHHHH", positions=positions, cell=[6.0, 6.2, 6.4], pbc=True)


def _calc(model, head=None):
    from mace.calculators import MACECalculator

    return MACECalculator(models=model, device="cpu", default_dtype="float64",
                          **({"head": head} if head else {}))


# ----------------------------------------------------------------------------- predict
def test_predict_matches_mace_calculator(models):
    model, _ = models["single"]
    atoms_list = _molecules(3) + [_box(1), _box(2)]
    pred = predict(model, atoms_list, batch_size=2, compute_stress=True)
    assert pred.head == "Default" and pred.energy.shape == (5,)
    calc = _calc(model)
    for a, e, f, s in zip(atoms_list, pred.energy, pred.forces, pred.stress):
        a = a.copy()
        a.calc = calc
        assert e == pytest.approx(a.get_potential_energy(), abs=1e-9)
        assert f.shape == (len(a), 3) and f == pytest.approx(a.get_forces(), abs=1e-9)
        if a.pbc.all():
            assert s.shape == (3, 3) and np.abs(s).max() > 0
            assert s == pytest.approx(a.get_stress(voigt=False), abs=1e-9)
    plain = predict(model, atoms_list, batch_size=None)
    assert plain.stress is None and np.allclose(plain.energy, pred.energy, atol=1e-10, rtol=0)
    assert predict(model, atoms_list, compute_force=False).forces is None


def test_predict_takes_mace_configurations_and_names_unknown_elements(models):
    from mace import data

    model, _ = models["single"]
    atoms_list = _molecules(2)
    configs = [data.config_from_atoms(a, head_name="whatever") for a in atoms_list]
    assert np.array_equal(predict(model, configs).energy, predict(model, atoms_list).energy)
    empty = predict(model, [])
    assert empty.energy.shape == (0,) and empty.forces == []
    with pytest.raises(ValueError, match=r"configuration 1: elements \['Ar'\] are unknown"):
        predict(model, [atoms_list[0], Atoms("Ar", positions=[[0, 0, 0]])])


def test_head_selection(models):
    assert select_head(types.SimpleNamespace()) == "Default"  # a model without heads
    assert select_head(types.SimpleNamespace(heads=["mp", "omat"])) == "omat"
    single, _ = models["single"]
    multi, _ = models["multi"]
    assert select_head(single) == "Default" and select_head(multi) == "Default"
    with pytest.raises(ValueError, match=r"no head 'pt_head' \(its heads: \['Default'\]\)"):
        predict(single, _molecules(1), head="pt_head")
    atoms_list = _molecules(2)
    by_head = {h: predict(multi, atoms_list, head=h) for h in (None, "Default", "pt_head")}
    assert by_head[None].head == "Default"
    assert np.array_equal(by_head[None].energy, by_head["Default"].energy)
    assert not np.allclose(by_head["Default"].energy, by_head["pt_head"].energy)
    for head in ("Default", "pt_head"):
        calc = _calc(multi, head)
        for a, e in zip(atoms_list, by_head[head].energy):
            assert e == pytest.approx(calc.get_potential_energy(a.copy()), abs=1e-9)


# ----------------------------------------------------------------------------- NEB
def test_neb_cli_batches_images_through_the_default_head(models, tmp_path):
    _, path = models["multi"]
    multi = load_model(path)
    images = _molecules(3, seed=4)
    batched = neb.BatchedMACE(path)
    assert batched.head == "Default"
    got = batched.evaluate(images)
    expected = predict(multi, images, batch_size=None)
    assert [e for _, e, _ in got] == list(expected.energy) and batched.n_batches == 1
    for a, e in zip(images, expected.energy):
        a.info.update({"reaction": "Cl_Cl", ENERGY_KEY: float(e)})
    for i, a in enumerate(images):
        a.info["image"] = i
    write_atomic(tmp_path / "ref.xyz", images)
    neb.main(["--model", path, "--reference", str(tmp_path / "ref.xyz"), "--reactions", "Cl_Cl",
              "--n-images", "1", "--steps", "2", "--output", str(tmp_path / "neb.csv")])
    frame = pd.read_csv(tmp_path / "neb.csv")
    assert list(frame.source) == ["reference"] * 3 + ["model"] * 3
    assert frame.energy_ev.iloc[0] == 0.0 and frame.reaction_coordinate.iloc[-1] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- RDF and EMD
def _rock_salt(n_frames=3, a0=4.0, seed=0):
    from ase.build import bulk

    lattice = bulk("NaCl", "rocksalt", a=a0, cubic=True).repeat((2, 2, 2))
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        f = lattice.copy()
        f.positions += rng.normal(0, 0.03, f.positions.shape)
        frames.append(f)
    return frames


def test_rdf_cli_of_a_tiny_trajectory(tmp_path):
    frames = _rock_salt()
    for f in frames:
        f.info.update({"rdf_r_max": 3.9, "rdf_nbins": 39})
    write_atomic(tmp_path / "a.extxyz", frames[:2])
    write_atomic(tmp_path / "b.extxyz", frames[2:])
    rdf.main(["rdf", "--trajectory", str(tmp_path / "a.extxyz"), str(tmp_path / "b.extxyz"),
              "--pairs", "Na-Cl", "Na-Na", "--output", str(tmp_path / "rdf.csv")])
    table = pd.read_csv(tmp_path / "rdf.csv")
    assert list(table.columns) == ["pair", "r_angstrom", "g_r"]
    assert list(table.pair.unique()) == ["Na-Cl", "Na-Na"] and len(table) == 2 * 39
    got = rdf.read_rdf_csv(tmp_path / "rdf.csv")
    r, g = rdf.compute_rdf(frames, "Na-Cl", 3.9, 39)
    assert np.allclose(got["Na-Cl"][0], r, atol=1e-6) and np.allclose(got["Na-Cl"][1], g, atol=1e-7)
    # rock salt, a = 4 A: Na-Cl first shell at a/2 = 2 A, Na-Na at a/sqrt(2) = 2.83 A
    assert abs(r[np.argmax(g)] - 2.0) < 0.15
    r_nn, g_nn = got["Na-Na"]
    assert g_nn[r_nn < 2.5].max() == 0.0 and abs(r_nn[np.argmax(g_nn)] - 2.83) < 0.15
    with pytest.raises(SystemExit, match="--r-max"):
        write_atomic(tmp_path / "plain.extxyz", _rock_salt(1))
        rdf.main(["rdf", "--trajectory", str(tmp_path / "plain.extxyz"), "--pairs", "Na-Cl",
                  "--output", str(tmp_path / "x.csv")])


def test_emd_of_identical_rdfs_is_zero_and_of_shifted_ones_the_shift(tmp_path):
    r = 0.025 + 0.05 * np.arange(80)  # bin centres of 80 bins on [0, 4] A

    def peaks(shift_bins):
        g = np.zeros_like(r)
        g[20 + shift_bins] = 2.0
        g[40 + shift_bins: 45 + shift_bins] = [0.2, 0.8, 1.0, 0.8, 0.2]
        return g

    rdf.write_rdf_csv(tmp_path / "ref.csv", {"Cl-O": (r, peaks(0)), "Na-O": (r, peaks(0))})
    rdf.write_rdf_csv(tmp_path / "model.csv", {"Cl-O": (r, peaks(0)), "Na-O": (r, peaks(6))})
    rdf.main(["emd", "--reference", str(tmp_path / "ref.csv"), "--model", str(tmp_path / "model.csv"),
              "--output", str(tmp_path / "emd.csv")])
    table = pd.read_csv(tmp_path / "emd.csv")
    assert list(table.columns) == ["pair", "emd_angstrom"] and list(table.pair) == ["Cl-O", "Na-O"]
    assert table.emd_angstrom.iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert table.emd_angstrom.iloc[1] == pytest.approx(6 * 0.05, rel=1e-9)  # every bin moved by 0.3 A
    coarse = {"Na-O": (r[::2], peaks(0)[::2])}
    with pytest.raises(ValueError, match="not on the same r grid"):
        rdf.rdf_emds(rdf.read_rdf_csv(tmp_path / "ref.csv"), coarse, ["Na-O"])
    with pytest.raises(ValueError, match=r"RDF pairs \['Cl-O'\] missing"):
        rdf.rdf_emds(rdf.read_rdf_csv(tmp_path / "ref.csv"), coarse)


# ----------------------------------------------------------------------------- torsion
def _chain():
    """A zig-zag four-atom chain (the dihedral 0-1-2-3 is anti, 180 deg)."""
    return Atoms("CCCC", positions=[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.3, 0.0, 0.0], [1.3, -1.0, 0.0]])


def test_relaxed_scan_holds_the_dihedral_and_keeps_the_lower_energy():
    from ase.calculators.lj import LennardJones

    calls = []

    def make_calc():
        calls.append(1)
        return LennardJones(sigma=1.0, epsilon=1.0, rc=3.0)

    angles = -180.0 + 360.0 * np.arange(4) / 4
    images, energies = torsion.relaxed_scan(_chain(), (0, 1, 2, 3), [3], angles, make_calc, 0.05, 50)
    assert len(images) == len(energies) == 4 and len(calls) == 2 * 2 * 4  # relax + single point, both sweeps
    for angle, a, e in zip(angles, images, energies):
        assert a.calc is None and not a.constraints
        assert abs((a.get_dihedral(0, 1, 2, 3) - angle + 180.0) % 360.0 - 180.0) < 0.5
        a.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=3.0)
        assert a.get_potential_energy() == pytest.approx(e, abs=1e-12)
    assert energies[0] < energies[2]  # anti below syn: the 1-4 pair is far from contact at 180 deg


def test_torsion_profiles_cli_on_a_tiny_scan(models, tmp_path):
    model, path = models["single"]
    frames = []
    for torsion_name in ("chain_a", "chain_b"):
        for angle in (-180.0, -90.0, 0.0, 90.0):
            a = _chain()
            a.set_dihedral(0, 1, 2, 3, angle % 360.0, indices=[3])
            a.info.update({"torsion": torsion_name, "angle_deg": angle})
            if torsion_name == "chain_a":
                a.info[ENERGY_KEY] = 0.01 * angle
            frames.append(a)
    write_atomic(tmp_path / "scan.xyz", frames)
    torsion.main(["--model", path, "--scan", str(tmp_path / "scan.xyz"), "--output", str(tmp_path / "t.csv")])
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == torsion.COLUMNS
    assert list(table.groupby(["torsion", "source"], sort=False).size().items()) == [
        (("chain_a", "reference"), 4), (("chain_a", "model"), 4), (("chain_b", "model"), 4)]
    model_rows = table[table.source == "model"]
    assert np.allclose(model_rows.energy_ev, predict(model, frames).energy, atol=1e-12, rtol=0)
    ref = table[table.source == "reference"]
    assert list(ref.relative_energy_ev) == pytest.approx([0.0, 0.9, 1.8, 2.7])
    assert (table.groupby(["torsion", "source"]).relative_energy_ev.min() == 0.0).all()
    only_b = torsion.torsion_profiles(model, frames, torsions=["chain_b"])
    assert set(only_b.torsion) == {"chain_b"}
    del frames[2].info["angle_deg"]
    with pytest.raises(ValueError, match=r"frame 2 has no info\['angle_deg'\]"):
        torsion.torsion_profiles(model, frames)


# ----------------------------------------------------------------------------- MD
@pytest.mark.slow
def test_md_cli_writes_a_readable_reproducible_trajectory(tiny_foundation, tiny_data, tmp_path):
    start = read_configs(tiny_data["test"])[0]
    start.info.update({"md_temperature_K": 300.0, "md_timestep_fs": 0.5, "md_friction_per_fs": 0.02})
    write_atomic(tmp_path / "start.xyz", [start])
    for name in ("a", "b"):
        md.main(["--model", tiny_foundation, "--start", str(tmp_path / "start.xyz"), "--steps", "4",
                 "--record-every", "2", "--seed", "3", "--output", str(tmp_path / f"{name}.extxyz")])
    frames = read_configs(tmp_path / "a.extxyz")
    assert [f.info["step"] for f in frames] == [2, 4]
    assert [f.info["time_fs"] for f in frames] == pytest.approx([1.0, 2.0])
    assert all(np.isfinite(f.info["model_energy"]) for f in frames)
    assert not np.allclose(frames[-1].positions, start.positions)
    assert frames[0].get_momenta().any() and ENERGY_KEY not in frames[0].info
    assert (tmp_path / "a.extxyz").read_text() == (tmp_path / "b.extxyz").read_text()  # same seed, same bits
    with pytest.raises(SystemExit, match="--temperature"):
        del start.info["md_temperature_K"]
        write_atomic(tmp_path / "bare.xyz", [start])
        md.main(["--model", tiny_foundation, "--start", str(tmp_path / "bare.xyz"), "--steps", "1",
                 "--output", str(tmp_path / "c.extxyz")])
