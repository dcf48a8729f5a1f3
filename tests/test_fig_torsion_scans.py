"""Kind torsion_scans (the paper's Fig. 9) and the model-relaxed mode of mlipft.analysis.torsion
behind it: constrained relaxations of scan frames (Lennard-Jones chains, a tiny untrained MACE),
the per-torsion MAE, collect from per-run files at real run paths, plot and checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from mlipft import figures
from mlipft.analysis import torsion
from mlipft.config import grid
from mlipft.figures import torsion_scans
from mlipft.io import read_configs, write_atomic
from mlipft.keys import ENERGY_KEY
from mlipft.paths import Paths, Run

STRATEGIES = {"naive": "Naive", "lora": "LoRA", "pseudolabel": "Multihead pseudolabel"}


def _lj():
    return LennardJones(sigma=1.0, epsilon=1.0, rc=3.0)


def _chain(angle: float) -> Atoms:
    """A four-atom zig-zag chain with its dihedral 0-1-2-3 set to ``angle`` (degrees)."""
    a = Atoms("CCCC", positions=[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.3, 0.0, 0.0], [1.3, -1.0, 0.0]])
    a.set_dihedral(0, 1, 2, 3, angle % 360.0, indices=[3])
    return a


def _scan(names=("chain_a", "chain_b"), angles=(-180.0, -90.0, 0.0, 90.0), reference=("chain_a",)):
    frames = []
    for name in names:
        for angle in angles:
            a = _chain(angle)
            a.info.update({"torsion": name, "angle_deg": angle, "dihedral_atoms": np.array([0, 1, 2, 3])})
            if name in reference:
                a.info[ENERGY_KEY] = -1.0 + 0.001 * abs(angle)
            frames.append(a)
    return frames


def _dihedral_error(a: Atoms, angle: float) -> float:
    return abs((a.get_dihedral(0, 1, 2, 3) - angle + 180.0) % 360.0 - 180.0)


# ----------------------------------------------------------------------------- the relaxed mode
def test_relax_together_takes_the_steps_of_relax():
    """Lock step changes the order of the work, not the relaxations: each structure ends where
    relax() (BFGS.run) takes it, with the same number of steps."""
    from ase.constraints import FixInternals

    def fix(angle):
        return FixInternals(dihedrals_deg=[[angle % 360.0, [0, 1, 2, 3]]])

    angles = [-150.0, -60.0, 30.0, 120.0]
    items = [(_chain(a), fix(a)) for a in angles]
    results = torsion.relax_together(items, _lj, 0.01, 40)
    for angle, result in zip(angles, results):
        alone = torsion.relax(_chain(angle), _lj, 0.01, 40, constraint=fix(angle))
        assert np.allclose(result["atoms"].positions, alone.positions, atol=1e-12, rtol=0)
        assert result["atoms"].calc is None and not result["atoms"].constraints
        assert _dihedral_error(result["atoms"], angle) < 1e-3
        a = result["atoms"].copy()
        a.calc = _lj()
        assert result["energy"] == pytest.approx(a.get_potential_energy(), abs=1e-12)
        start = _chain(angle)
        start.calc = _lj()
        assert result["start_energy"] == pytest.approx(start.get_potential_energy(), abs=1e-12)
        assert result["energy"] < result["start_energy"]
        assert 0 < result["steps"] <= 40 and result["converged"] == (result["fmax"] < 0.01)
    few = torsion.relax_together(items[:1], _lj, 1e-6, 2)[0]
    assert few["steps"] == 2 and not few["converged"] and few["fmax"] > 1e-6


def test_relaxed_profiles_fix_each_dihedral_and_report_the_relaxation():
    frames = _scan()
    rounds = []

    def prefetch(atoms_list):  # what a batched model does: results in every calculator before the forces
        rounds.append(len(atoms_list))
        for a in atoms_list:
            if a.calc.calculation_required(a, ["energy", "forces"]):
                a.calc.calculate(a, ["energy", "forces"])
                a.calc.atoms = a.copy()

    table = torsion.relaxed_profiles(frames, _lj, fmax=0.01, steps=60, where="scan.xyz", prefetch=prefetch)
    assert list(table.columns) == torsion.COLUMNS + torsion.RELAXED_COLUMNS
    assert list(table.groupby(["torsion", "source"], sort=False).size().items()) == [
        (("chain_a", "reference"), 4), (("chain_a", "model"), 4), (("chain_b", "model"), 4)]
    assert rounds[0] == 8 and rounds == sorted(rounds, reverse=True)  # every frame, then those still relaxing
    ref = table[table.source == "reference"]
    assert list(ref.relative_energy_ev) == pytest.approx([0.18, 0.09, 0.0, 0.09])
    assert ref[torsion.RELAXED_COLUMNS].isna().all().all()
    model = table[(table.source == "model") & (table.torsion == "chain_a")]
    assert list(model.angle_deg) == [-180.0, -90.0, 0.0, 90.0]
    assert model.relative_energy_ev.min() == 0.0
    assert (model.energy_ev <= model.single_point_energy_ev + 1e-12).all()
    assert (model.rmsd_to_reference_A > 0).all() and (model.relax_steps > 0).all() and (model.relax_status == "converged").all()
    # the model energy is the calculator's energy of the geometry relaxed with the dihedral fixed
    for (_, row), frame in zip(model.iterrows(), frames[:4]):
        from ase.constraints import FixInternals

        fix = FixInternals(dihedrals_deg=[[row.angle_deg % 360.0, [0, 1, 2, 3]]])
        relaxed = torsion.relax(frame, _lj, 0.01, 60, constraint=fix)
        assert _dihedral_error(relaxed, row.angle_deg) < 1e-3
        relaxed.calc = _lj()
        assert row.energy_ev == pytest.approx(relaxed.get_potential_energy(), abs=1e-12)
        assert row.rmsd_to_reference_A == pytest.approx(torsion.aligned_rmsd(relaxed, frame), abs=1e-12)
    # the same without prefetch (each calculator on its own)
    alone = torsion.relaxed_profiles(frames, _lj, fmax=0.01, steps=60)
    pd.testing.assert_frame_equal(alone, table)
    only_b = torsion.relaxed_profiles(frames, _lj, fmax=0.01, steps=60, torsions=["chain_b"])
    assert set(only_b.torsion) == {"chain_b"} and set(only_b.source) == {"model"}


def test_aligned_rmsd_ignores_rigid_motion():
    a = _chain(60.0)
    b = a.copy()
    b.rotate(37.0, "z")
    b.translate([1.0, -2.0, 0.5])
    assert torsion.aligned_rmsd(b, a) == pytest.approx(0.0, abs=1e-10)
    b.positions[3] += [0.0, 0.0, 0.4]
    assert 0.0 < torsion.aligned_rmsd(b, a) < 0.4 / 2


def test_a_frame_without_dihedral_atoms_names_the_file_and_frame(tmp_path):
    frames = _scan()
    del frames[5].info["dihedral_atoms"]
    with pytest.raises(ValueError, match=r"scan\.xyz: frame 5 has no info\['dihedral_atoms'\]"):
        torsion.relaxed_profiles(frames, _lj, where="scan.xyz")
    # the command line checks every frame before it loads the model (none exists here)
    write_atomic(tmp_path / "scan.xyz", frames)
    scan = str(tmp_path / "scan.xyz")
    with pytest.raises(ValueError, match=rf"{scan}: frame 5 has no info\['dihedral_atoms'\]"):
        torsion.main(["--model", str(tmp_path / "none.model"), "--scan", scan, "--relax",
                      "--output", str(tmp_path / "t.csv")])
    assert not (tmp_path / "t.csv").exists()
    # single points need no dihedral: that path reaches the (missing) model
    with pytest.raises(FileNotFoundError, match="MACE model not found"):
        torsion.main(["--model", str(tmp_path / "none.model"), "--scan", scan, "--output", str(tmp_path / "t.csv")])


@pytest.mark.parametrize("value,ok", [("0 1 2 3", True), ([3, 2, 1, 0], True), (np.array([0, 1, 2, 3]), True),
                                      ("0 1 2", False), ("0 1 1 3", False), ("0 1 2 9", False),
                                      ("a b c d", False), ([0, 1, 2, 3.5], False)])
def test_dihedral_atoms_are_four_distinct_indices_of_the_frame(value, ok):
    a = _chain(0.0)
    a.info["dihedral_atoms"] = value
    if ok:
        assert sorted(torsion.dihedral_atoms(a, 7, "s.xyz")) == [0, 1, 2, 3]
    else:
        with pytest.raises(ValueError, match=r"s\.xyz: frame 7: info\['dihedral_atoms'\]"):
            torsion.dihedral_atoms(a, 7, "s.xyz")


def _mace(heads=None):
    """A tiny untrained MACE of H, C and O (as tests/test_analysis.py builds them)."""
    import torch
    from e3nn import o3
    from mace import (
        modules,  # before e3nn: mace sets up torch.load for e3nn's constants
    )
    from mace.tools import torch_tools

    torch_tools.set_default_dtype("float64")
    torch.manual_seed(0)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    n = len(heads or ["Default"])
    e0s = -1.0 - np.arange(n)[:, None] * 0.5 - np.arange(3)[None, :]
    model = modules.MACE(
        r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=3,
        hidden_irreps=o3.Irreps("8x0e+8x1o"), MLP_irreps=o3.Irreps("8x0e"),
        atomic_energies=e0s if heads else e0s[0], avg_num_neighbors=4.0, atomic_numbers=[1, 6, 8],
        correlation=2, gate=torch.nn.functional.silu, heads=heads)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    return model


def test_relaxed_cli_with_a_mace_model(tmp_path):
    """The workflow's command on a tiny scan: the model-relaxed energies are those of the batched
    evaluator, equal to one structure at a time (ModelCalculator alone) and to predict()."""
    import torch
    from mlipft.analysis.predict import predict

    model = _mace(["Default", "pt_head"])
    torch.save(model, tmp_path / "m.model")
    frames = _scan(angles=(-180.0, -60.0, 60.0))
    write_atomic(tmp_path / "scan.xyz", frames)
    torsion.main(["--model", str(tmp_path / "m.model"), "--scan", str(tmp_path / "scan.xyz"), "--relax",
                  "--fmax", "0.05", "--steps", "4", "--output", str(tmp_path / "t.csv")])
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == torsion.COLUMNS + torsion.RELAXED_COLUMNS
    model_rows = table[table.source == "model"]
    assert len(model_rows) == 6 and (model_rows.relax_steps <= 4).all()
    evaluator = torsion.ModelEvaluator(model)
    assert evaluator.head == "Default"
    alone = torsion.relaxed_profiles(read_configs(tmp_path / "scan.xyz"), evaluator, 0.05, 4)
    assert np.allclose(alone.energy_ev, table.energy_ev, atol=1e-9, rtol=0)
    start = predict(model, frames, head="Default").energy
    assert np.allclose(model_rows.single_point_energy_ev, start, atol=1e-9, rtol=0)


# ----------------------------------------------------------------------------- the figure kind
def _profiles(run_keys: dict, offsets: dict[str, list[float]], angles=(-180.0, -60.0, 60.0)) -> pd.DataFrame:
    """A per-run torsions.csv: reference relative energies 0, 100, 50 meV per torsion; the model's
    the reference's plus ``offsets`` (meV, before re-referencing to the model's minimum)."""
    rows = []
    for name, offset in offsets.items():
        ref = np.array([0.0, 0.1, 0.05])
        model = ref + np.array(offset) / 1000.0
        for source, values in (("reference", ref), ("model", model)):
            for angle, v, in zip(angles, values):
                rows.append({"torsion": name, "angle_deg": angle, "source": source, "energy_ev": -10.0 + v,
                             "relative_energy_ev": v - values.min(),
                             **({"single_point_energy_ev": -10.0 + v, "rmsd_to_reference_A": 0.1,
                                 "relax_steps": 5, "relax_status": "converged" if angle != 60.0 else "step_limit",
                                 "relax_fmax_ev_A": 0.01}
                                if source == "model" else {})})
    return pd.DataFrame(rows, columns=torsion.COLUMNS + torsion.RELAXED_COLUMNS)


def _spec(strategies=("naive", "lora"), seeds=("0",), entry=None):
    axes = {"benchmark": ["spice"], "trainset": ["train"], "fraction": ["1"], "foundation": ["omat_medium"],
            "strategy": list(strategies), "e0s": ["estimated"], "variant": ["base"], "seed": list(seeds)}
    return {"figure": "fig09", "kind": "torsion_scans", "entry": entry or {}, "axes": axes,
            "description": "SPICE torsion accuracy across training methods",
            "labels": {s: STRATEGIES[s] for s in STRATEGIES if s in strategies}, "evalsets": ["test"],
            "world": "mini", "scale": "mini", "variant_labels": {"base": "base"},
            "reference_label": "GFN2-xTB reference"}


def test_mae_of_relative_energies_by_hand():
    """Model = reference + (0, 30, -10) meV: relative to its own minimum (angle -180) the model is
    (0, 130, 40) against (0, 100, 50): errors 0, 30, 10, MAE 40/3; + (20, 20, 20): errors 0."""
    keys = {"strategy": "naive", "seed": 0}
    profiles = _profiles(keys, {"t1": [0.0, 30.0, -10.0], "t2": [20.0, 20.0, 20.0]}).assign(**keys)
    mae = torsion_scans.errors(profiles)
    assert list(mae.torsion) == ["t1", "t2", "overall"]
    by = mae.set_index("torsion")
    assert by.loc["t1", "mae_mev"] == pytest.approx(40.0 / 3) and by.loc["t1", "max_error_mev"] == pytest.approx(30.0)
    assert by.loc["t2", "mae_mev"] == pytest.approx(0.0, abs=1e-9)
    assert by.loc["overall", "mae_mev"] == pytest.approx(20.0 / 3) and by.loc["overall", "n_angles"] == 6
    assert by.loc["t1", "converged_fraction"] == pytest.approx(2 / 3) and by.loc["t1", "rmsd_mean_A"] == pytest.approx(0.1)
    broken = profiles[~((profiles.source == "reference") & (profiles.torsion == "t2"))]
    with pytest.raises(ValueError, match="no reference energy"):
        torsion_scans.errors(broken)


def _write_runs(tmp_path, strategies, seeds=(0,)):
    p = Paths(tmp_path / "results")
    files = []
    for k, strategy in enumerate(strategies):
        for seed in seeds:
            run = Run("spice", "train", "1", "omat_medium", strategy, "estimated", "base", seed)
            path = Path(p.run_file(run, "torsions"))
            path.parent.mkdir(parents=True, exist_ok=True)
            wobble = 5.0 * (k + 1) * (1 + seed)
            _profiles({}, {"butane_CCCC": [0.0, wobble, -wobble], "fluoroethanol_OCCF": [0.0, 2 * wobble, 0.0],
                           "alanine_dipeptide_phi": [0.0, -3 * wobble, 40.0]}).to_csv(path, index=False)
            files.append(str(path))
    return files


def test_collect_and_plot_from_run_paths(tmp_path, roundtrip):
    strategies = ("naive", "lora", "pseudolabel")
    spec = _spec(strategies, seeds=("0", "1"))
    files = _write_runs(tmp_path, strategies, seeds=(0, 1))
    tables = torsion_scans.collect({"torsions": files}, spec)
    assert set(tables) == set(torsion_scans.TABLES)
    mae = tables["mae"]
    assert len(mae) == 3 * 2 * 4  # strategies x seeds x (3 torsions + overall)
    assert {"benchmark", "strategy", "seed", "torsion", "mae_mev", "n_angles"} <= set(mae.columns)
    naive0 = mae[(mae.strategy == "naive") & (mae.seed.astype(str) == "0")].set_index("torsion")
    assert naive0.loc["butane_CCCC", "mae_mev"] == pytest.approx(10.0 / 3)  # (0, +5, -5) meV, minimum unchanged
    tables = roundtrip(tables, tmp_path)
    out = [str(tmp_path / "fig09.png"), str(tmp_path / "fig09.pdf")]
    torsion_scans.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 20_000 and Path(out[1]).stat().st_size > 5_000

    # a figure of fewer scans than the runs computed
    spec = _spec(strategies, seeds=("0", "1"), entry={"torsions": ["butane_CCCC"]})
    tables = torsion_scans.collect({"torsions": files}, spec)
    assert set(tables["profiles"].torsion) == {"butane_CCCC"} and set(tables["mae"].torsion) == {"butane_CCCC",
                                                                                                "overall"}
    torsion_scans.plot(roundtrip(tables, tmp_path), spec, [str(tmp_path / "one.png"), str(tmp_path / "one.pdf")])
    with pytest.raises(ValueError, match=r"torsion scans \['psi'\] are in no run"):
        torsion_scans.collect({"torsions": files}, _spec(strategies, entry={"torsions": ["psi"]}))


def test_torsion_labels():
    assert torsion_scans.torsion_label("butane_CCCC") == "butane C-C-C-C"
    assert torsion_scans.torsion_label("alanine_dipeptide_phi") == "alanine dipeptide φ"
    assert torsion_scans.torsion_label("scan") == "scan"


def _check(entry, scale_torsions=("butane_CCCC", "fluoroethanol_OCCF")):
    config = {"world": "mini", "scale": "mini", "main_foundation": "omat_medium",
              "scales": {"mini": {"benchmarks": {"spice": {"torsions": list(scale_torsions)}}}},
              "figures": {"x": {"kind": "torsion_scans", "description": "d", "benchmark": "spice",
                                "strategies": ["naive"], "e0s": "estimated", "fractions": [1.0], "seeds": [0],
                                **entry}}}
    return torsion_scans.check(config, "x", config["figures"]["x"], grid(config, "x"))


def test_check_needs_one_benchmark_with_torsion_scans():
    assert _check({}) is None
    assert _check({"torsions": ["butane_CCCC"]}) is None
    assert _check({"benchmark": "sn2"}).startswith(".benchmark: ")
    assert _check({"benchmark": ["spice", "sn2"]}).startswith(".benchmark: ")
    assert _check({"torsions": ["alanine_dipeptide_psi"]}).startswith(".torsions: ")
    assert _check({"torsions": ["butane_CCCC", "butane_CCCC"]}).startswith(".torsions: ")


def test_is_a_kind():
    assert figures.kind("torsion_scans") is torsion_scans
    assert set(torsion_scans.TABLES) == {"profiles", "mae"}
    config = {"world": "mini", "scale": "mini", "main_foundation": "omat_medium",
              "figures": {"x": {"kind": "torsion_scans", "description": "d", "benchmark": "spice",
                                "strategies": ["naive", "lora"], "e0s": "estimated", "fractions": [1.0],
                                "seeds": [0]}}}
    runs = [Run("spice", "train", "1", "omat_medium", s, "estimated", "base", 0) for s in ("naive", "lora")]
    files = torsion_scans.inputs(config, "x", runs, Paths("results"))
    assert list(files) == ["torsions"] and all(f.endswith("/torsions.csv") for f in files["torsions"])
    assert "/naive/" in files["torsions"][0] and "/lora/" in files["torsions"][1]
