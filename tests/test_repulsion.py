"""Short-range repulsion (mlipft.analysis.repulsion and the figure kind repulsion): the dimer grid,
the parameters, the metrics on curves whose answers are known by hand (a Morse well, a purely
repulsive wall, a curve with a hole), model curves from a tiny untrained MACE, the GFN2-xTB
reference of one cheap dimer (H-H) and NaN for points whose SCF fails (mocked), and the figure's
collect, plot and checks on synthetic run files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes
from mlipft.analysis import repulsion as rep
from mlipft.paths import Paths, Run

# ----------------------------------------------------------------------------- grid and params


def test_dimer_grid_follows_mlip_arena():
    """Homonuclear: 0.9 x the covalent radius to 3.1 x the Alvarez vdW radius (MLIP Arena's grid);
    a heteronuclear pair uses the pair's mean radii; the step is at most the spacing."""
    grid = rep.dimer_grid("H", "H")
    assert grid[0] == pytest.approx(0.9 * 0.31) and grid[-1] == pytest.approx(3.1 * 1.2)
    assert np.diff(grid).max() <= 0.01 + 1e-12 and np.diff(grid).min() > 0.0099
    grid = rep.dimer_grid("Cl", "Na", {"spacing_angstrom": 0.05})
    assert grid[0] == pytest.approx(0.9 * (1.66 + 1.02) / 2) and grid[-1] == pytest.approx(3.1 * (2.5 + 1.82) / 2)
    assert np.diff(grid).max() <= 0.05 + 1e-12
    assert rep.pair_name("Cl", "Na") == "Na-Cl" and rep.pair_name("O", "H") == "H-O"
    assert rep.element_pairs(["Cl", "H", "Na"], rep.load_params({})) == [
        ("H", "H"), ("H", "Na"), ("H", "Cl"), ("Na", "Na"), ("Na", "Cl"), ("Cl", "Cl")]
    assert rep.element_pairs(["Cl", "H", "Na"], rep.load_params({"pairs": ["Cl-Na"]})) == [("Na", "Cl")]
    with pytest.raises(rep.ParamsError, match="at least 5"):
        rep.dimer_grid("H", "H", {"spacing_angstrom": 2.0})
    with pytest.raises(rep.ParamsError, match="r_max_factor / r_min_factor"):
        rep.dimer_grid("H", "H", {"r_min_factor": 20.0})


def test_compression_scales_cell_or_about_the_centroid():
    box = Atoms("NaCl", positions=[[0, 0, 0], [2.8, 0, 0]], cell=[5.6, 5.6, 5.6], pbc=True, info={"charge": 0})
    small = rep.compressed(box, 0.8)
    assert np.allclose(small.cell.lengths(), 0.8 * 5.6) and np.allclose(small.get_scaled_positions(), box.get_scaled_positions())
    assert rep.shortest_distance(small) == pytest.approx(0.8 * 2.8) and small.info == {"charge": 0}
    mol = Atoms("HCl", positions=[[1, 1, 1], [1, 1, 2.3]], info={"charge": -1, "REF_energy": 1.0})
    squeezed = rep.compressed(mol, 0.5)
    assert np.allclose(squeezed.positions.mean(0), mol.positions.mean(0))
    assert rep.shortest_distance(squeezed) == pytest.approx(0.65) and squeezed.info == {"charge": -1}


@pytest.mark.parametrize("params, key", [
    ({"spacing": 0.1}, "spacing"),
    ({"spacing_angstrom": -0.1}, "spacing_angstrom"),
    ({"r_max_factor": "big"}, "r_max_factor"),
    ({"scales": []}, "scales"),
    ({"scales": [1.0, 0.0]}, "scales"),
    ({"scales": [0.9, 0.9]}, "scales"),
    ({"n_frames": 0}, "n_frames"),
    ({"n_frames": 1.5}, "n_frames"),
    ({"pairs": ["NaCl"]}, "pairs"),
    ({"pairs": ["Na-Cl", "Cl-Na"]}, "pairs"),
    ({"wall_thresholds_ev": [5, -1]}, "wall_thresholds_ev"),
    ({"force_threshold_ev_per_angstrom": -1}, "force_threshold_ev_per_angstrom"),
    ({"energy_threshold_ev": True}, "energy_threshold_ev"),
])
def test_params_errors_name_the_key(params, key):
    with pytest.raises(rep.ParamsError, match=key):
        rep.load_params(params)


def test_params_from_json_file_and_cli_errors(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"scales": [0.8, 0.9], "n_frames": 2}))
    params = rep.load_params(str(path))
    assert params["scales"] == [1.0, 0.9, 0.8] and params["n_frames"] == 2  # 1.0 added, descending
    assert rep.load_params('{"pairs": ["O-H"]}')["pairs"] == ["H-O"]
    curves = tmp_path / "c.csv"
    pd.DataFrame(columns=rep.COLUMNS).to_csv(curves, index=False)
    with pytest.raises(SystemExit, match="unknown key.*bogus"):
        rep.main(["metrics", "--curves", str(curves), "--params", '{"bogus": 1}', "--output", str(tmp_path / "m.csv")])
    xyz = tmp_path / "s.xyz"
    Atoms("HCl", positions=[[0, 0, 0], [0, 0, 1.3]]).write(xyz)
    with pytest.raises(SystemExit, match="pairs.*Na-Na"):
        rep.main(["reference", "--structures", str(xyz), "--params", '{"pairs": ["Na-Na"]}',
                  "--output", str(tmp_path / "r.csv")])
    with pytest.raises(SystemExit, match="--level"):
        rep.main(["reference", "--structures", str(xyz), "--level", "gfn3", "--output", str(tmp_path / "r.csv")])


# ----------------------------------------------------------------------------- metrics


def morse(r, depth=5.0, a=2.0, r_eq=1.0):
    x = np.exp(-a * (r - r_eq))
    return depth * (1 - x) ** 2 - depth, -2 * depth * a * (1 - x) * x  # E, F = -dE/dr


def test_metrics_of_a_morse_well():
    """A Morse well: Spearman -1 on the repulsive branch, one force and one energy-difference sign
    flip (the well itself) and no energy jump to speak of; wall radii r_eq - ln(1 + sqrt(D/De))/a."""
    r = np.linspace(0.5, 5.0, 4501)
    e, f = morse(r)
    e = e - e[-1]
    m = rep.dimer_metrics(r, e, f)
    assert m["spearman_repulsion"] == pytest.approx(-1.0)
    assert m["force_flips"] == 1 and m["energy_diff_flips"] == 1 and m["energy_jump_ev"] < 5e-3  # ~2 x the 1 meV threshold, at the well
    assert m["r_eq_angstrom"] == pytest.approx(1.0, abs=1e-3) and not m["collapsed"]
    for t in (1.0, 5.0, 10.0):
        exact = 1.0 - math.log(1 + math.sqrt(t / 5.0)) / 2.0
        assert m[f"wall_radius_{t:g}ev"] == pytest.approx(exact, abs=1e-4)
    # a purely repulsive wall: no flips, no jump, and no well to measure walls from
    wall = rep.dimer_metrics(r, 10 * np.exp(-3 * r), 30 * np.exp(-3 * r))
    assert wall["force_flips"] == 0 and wall["energy_diff_flips"] == 0 and wall["energy_jump_ev"] == 0
    # against a reference: the model's wall 0.1 Å further in (the same curve shifted), walls lost
    shifted = rep.dimer_metrics(r - 0.1, e, f)
    out = rep.compare(shifted, m, "dimer")
    assert out["wall_error_5ev"] == pytest.approx(-0.1, abs=1e-6) and out["walls_missing"] == 0
    soft = rep.dimer_metrics(r, np.minimum(e, e.min() + 3.0), f)  # a wall that stops at 3 eV above the well
    out = rep.compare(soft, m, "dimer")
    assert np.isfinite(out["wall_error_1ev"]) and np.isnan(out["wall_error_5ev"]) and out["walls_missing"] == 2


def test_metrics_of_a_curve_with_a_hole():
    """Hand-computed: E = [10, 4, 6, 1, 0, 0] at r = 1..6 (a hole at r = 2).

    dE = [-6, 2, -5, -1, 0] -> the 0 dropped, signs - + - -: two flips, jump (6 + 2) + (2 + 5) = 15.
    F = [5, -1, 2, 0.005, 0.5, -0.2] -> 0.005 zeroed, signs + - + + -: three flips.
    Repulsive branch r <= 5 (the first minimum): Spearman 1 - 6 * 38 / 120 = -0.9.
    Wall inward from r = 5 with the running maximum 0, 1, 6, 6, 10 at r = 5, 4, 3, 2, 1: 5 eV at
    3.2 Å, 8 eV at 2.0 Å, 11 eV never."""
    r = np.arange(1.0, 7.0)
    e = np.array([10.0, 4.0, 6.0, 1.0, 0.0, 0.0])
    f = np.array([5.0, -1.0, 2.0, 0.005, 0.5, -0.2])
    m = rep.dimer_metrics(r, e, f, {"wall_thresholds_ev": [5.0, 8.0, 11.0]})
    assert (m["energy_diff_flips"], m["energy_jump_ev"], m["force_flips"]) == (2, 15.0, 3)
    assert m["spearman_repulsion"] == pytest.approx(-0.9)
    assert m["wall_radius_5ev"] == pytest.approx(3.2) and m["wall_radius_8ev"] == pytest.approx(2.0)
    assert np.isnan(m["wall_radius_11ev"])
    # the order of the rows and NaN points do not matter
    shuffled = rep.dimer_metrics(np.r_[r[::-1], 7.0], np.r_[e[::-1], np.nan], np.r_[f[::-1], 1.0],
                                 {"wall_thresholds_ev": [5.0, 8.0, 11.0]})
    assert pd.Series(shuffled).equals(pd.Series(m))
    # a collapse: the lowest energy at the shortest distance
    collapsed = rep.dimer_metrics(r, r - 10.0, f)
    assert collapsed["collapsed"] and np.isnan(collapsed["wall_radius_1ev"]) and np.isnan(collapsed["spearman_repulsion"])


def test_compression_metrics_and_table():
    scales = [1.0, 0.9, 0.8, 0.7]
    ref = pd.DataFrame({"kind": "compression", "system": "frame0", "r_angstrom": np.nan, "scale": scales,
                        "energy_ev": [0.0, 0.2, 1.0, 4.0], "force_ev_per_angstrom": 1.0, "source": "ref"})
    model = ref.assign(energy_ev=[0.0, 0.2, 0.5, -1.0], source="model")
    table = rep.metrics_table(model, ref).iloc[0]
    assert not table.monotonic and table.monotonic_reference
    assert table.rise_ev_per_atom == -1.0 and table.rise_reference_ev_per_atom == 4.0 and table.rise_ratio == -0.25
    # the reference failed at the most compressed scale: the ratio at the most compressed both have
    table = rep.metrics_table(model, ref.assign(energy_ev=[0.0, 0.2, 1.0, np.nan])).iloc[0]
    assert table.rise_scale == 0.8 and table.rise_ratio == 0.5 and table.n_failed == 0


def test_curves_frame_shifts_and_records_failed_points():
    """Dimers: zero at r_max (at the largest finite distance when r_max failed); compressions:
    per atom relative to the unscaled structure; a failed point stays, empty."""
    points = [{"kind": "dimer", "system": "H-H", "r_angstrom": r, "scale": np.nan, "atoms": rep.dimer("H", "H", r)}
              for r in (0.5, 1.0, 2.0, 3.0)]
    mol = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])
    points += [{"kind": "compression", "system": "frame0", "r_angstrom": 0.7 * s, "scale": s,
                "atoms": rep.compressed(mol, s)} for s in (1.0, 0.5)]
    forces = [np.array([[-1.0, 0, 0], [1.0, 0, 0]])] * 3 + [None] + [np.array([[0, 0, -3.0], [0, 0, 4.0]])] * 2
    frame = rep.curves_frame(points, [5.0, 1.0, 2.0, np.nan, -10.0, -6.0], forces, "test")
    assert list(frame.columns) == list(rep.COLUMNS)
    assert np.allclose(frame.energy_ev[:3], [3.0, -1.0, 0.0])  # r_max (3 Å) failed: zero at 2 Å
    assert np.isnan(frame.energy_ev[3]) and np.isnan(frame.force_ev_per_angstrom[3])
    assert frame.force_ev_per_angstrom[0] == 1.0  # repulsive: pushes the second atom away
    assert np.allclose(frame.energy_ev[4:], [0.0, 2.0]) and frame.force_ev_per_angstrom[4] == pytest.approx(math.sqrt(12.5))


# ----------------------------------------------------------------------------- model curves


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained MACE (H C O Na Cl, r_max 4 Å) and its file."""
    import torch
    from test_analysis import _mace

    model = _mace(None)
    path = tmp_path_factory.mktemp("model") / "tiny.model"
    torch.save(model, path)
    return model, str(path)


FAST = {"spacing_angstrom": 0.1, "scales": [1.0, 0.9, 0.8], "n_frames": 2}


def _frames():
    box = Atoms("NaCl", positions=[[0, 0, 0], [2.8, 0.1, 0]], cell=[5.6, 5.6, 5.6], pbc=True)
    mol = Atoms("HCl", positions=[[0, 0, 0], [0, 0.2, 1.3]], info={"charge": 0})
    return [box, mol, mol.copy()]


def test_model_curves_of_a_tiny_mace(tiny, tmp_path):
    """Every pair of the structures' elements and the first n_frames compressions; the dimer
    energies zero at r_max and the axial force -dE/dr (a conservative model)."""
    model, path = tiny
    frame = rep.model_curves(model, _frames(), FAST, batch_size=16)
    dimers = frame[frame.kind == "dimer"]
    assert list(dict.fromkeys(dimers.system)) == ["H-H", "H-Na", "H-Cl", "Na-Na", "Na-Cl", "Cl-Cl"]
    assert frame.energy_ev.notna().all() and set(frame.source) == {"model"}
    for _, sub in dimers.groupby("system"):
        assert sub.energy_ev.iloc[-1] == 0.0
        r, e, f = sub.r_angstrom.to_numpy(), sub.energy_ev.to_numpy(), sub.force_ev_per_angstrom.to_numpy()
        mid = (r[1:] + r[:-1]) / 2
        assert np.allclose(-np.diff(e) / np.diff(r), np.interp(mid, r, f), atol=0.1 * np.abs(f).max() + 1e-3)  # 0.1 Å steps
    comp = frame[frame.kind == "compression"]
    assert sorted(set(comp.system)) == ["frame0", "frame1"] and comp.scale.tolist()[:3] == [1.0, 0.9, 0.8]
    assert comp[comp.scale == 1.0].energy_ev.eq(0).all()
    assert comp.r_angstrom.iloc[1] == pytest.approx(0.9 * comp.r_angstrom.iloc[0])
    # the command line: the same numbers, with a label
    xyz = tmp_path / "s.xyz"
    from mlipft.io import write_atomic

    write_atomic(xyz, _frames())
    out = tmp_path / "curves.csv"
    rep.main(["model", "--model", path, "--structures", str(xyz), "--params", json.dumps(FAST), "--label",
              "foundation tiny", "--output", str(out)])
    cli = pd.read_csv(out)
    assert set(cli.source) == {"foundation tiny"} and len(cli) == len(frame)
    assert np.allclose(cli.energy_ev, frame.energy_ev, atol=1e-8)
    rep.main(["metrics", "--curves", str(out), "--reference", str(out), "--output", str(tmp_path / "m.csv")])
    metrics = pd.read_csv(tmp_path / "m.csv")
    assert len(metrics) == 8 and (metrics.walls_missing.dropna() == 0).all()
    assert np.allclose(metrics.wall_error_1ev.dropna(), 0.0)


# ----------------------------------------------------------------------------- the xTB reference


def test_xtb_reference_of_h2():
    """GFN2-xTB H-H: a well near 0.74 Å, a repulsive wall of > 10 eV at 0.28 Å, zero at r_max;
    the compression of H2 from the bond length rises."""
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    frame = rep.reference_curves([h2], "gfn2", {"spacing_angstrom": 0.05, "scales": [1.0, 0.8], "n_frames": 1})
    assert set(frame.source) == {"GFN2-xTB"} and frame.energy_ev.notna().all()
    dimer = frame[frame.kind == "dimer"]
    m = rep.dimer_metrics(dimer.r_angstrom, dimer.energy_ev, dimer.force_ev_per_angstrom)
    assert 0.65 < m["r_eq_angstrom"] < 0.85 and m["well_depth_ev"] < -3.0
    assert m["spearman_repulsion"] == -1.0 and m["force_flips"] == 1
    assert dimer.energy_ev.iloc[0] - m["well_depth_ev"] > 10.0 and dimer.energy_ev.iloc[-1] == 0.0
    assert frame[frame.kind == "compression"].energy_ev.iloc[1] > 0.0


class _FlakyLJ(Calculator):
    """A Lennard-Jones pair whose 'SCF' fails below 0.8 Å (an xTB calculator stand-in)."""

    implemented_properties = ("energy", "forces")
    made = 0

    def __init__(self, method, charge=0, multiplicity=1):
        super().__init__()
        type(self).made += 1

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[1] - self.atoms.positions[0]
        r = np.linalg.norm(d)
        if r < 0.8:
            raise CalculationFailed("SCF not converged in 250 cycles")
        e = 4 * ((1 / r) ** 12 - (1 / r) ** 6)
        f = 4 * (12 / r**13 - 6 / r**7) * d / r
        self.results = {"energy": e, "forces": np.array([-f, f])}


def test_reference_records_nan_where_the_scf_fails(monkeypatch):
    """Non-converged points are NaN rows (never an error), the calculator is remade after each
    failure, and the metrics skip them."""
    from mlipft import xtb

    monkeypatch.setattr(xtb, "calculator", _FlakyLJ)
    _FlakyLJ.made = 0
    frame = rep.reference_curves([Atoms("H2", positions=[[0, 0, 0], [0, 0, 1.1]])], "gfn2",
                                 {"pairs": ["H-H"], "spacing_angstrom": 0.05, "n_frames": 1, "scales": [1.0, 0.6]})
    dimer = frame[frame.kind == "dimer"]
    failed = dimer.energy_ev.isna()
    assert failed.any() and (dimer.r_angstrom[failed] < 0.8).all() and (dimer.r_angstrom[~failed] >= 0.8).all()
    assert dimer.force_ev_per_angstrom[failed].isna().all()
    comp = frame[frame.kind == "compression"]
    assert comp.energy_ev.iloc[0] == 0.0 and np.isnan(comp.energy_ev.iloc[1])  # 1.1 Å x 0.6 < 0.8 Å
    assert _FlakyLJ.made == failed.sum() + 2  # one per curve, a fresh one after every failure
    m = rep.metrics_table(frame).set_index("system")
    assert m.loc["H-H", "n_failed"] == failed.sum() and m.loc["H-H", "r_eq_angstrom"] == pytest.approx(2 ** (1 / 6), abs=0.03)
    assert m.loc["H-H", "spearman_repulsion"] == -1.0


# ----------------------------------------------------------------------------- the figure kind

LABELS = {"naive": "Naive fine-tuning", "replay": "Multihead replay"}
#: How much of the reference's wall each strategy keeps (1: all; the naive model's wall is soft).
KEEP = {"naive": 0.05, "replay": 1.0}


def _curves(keep: float, source: str, noise: float = 0.0) -> pd.DataFrame:
    rows = []
    for pair, r_eq in (("H-H", 0.75), ("H-Cl", 1.3), ("Cl-Cl", 2.0)):
        r = np.round(np.linspace(0.4 * r_eq, 3 * r_eq, 120), 6)
        e, f = morse(r, depth=4.0, a=3.0 / r_eq, r_eq=r_eq)  # the reference's wall: ~100 eV at 0.4 r_eq
        wall = e > 0
        e, f = np.where(wall, keep * e, e) + noise, np.where(wall, keep * f, f)
        rows.append(pd.DataFrame({"kind": "dimer", "system": pair, "r_angstrom": r, "scale": np.nan,
                                  "energy_ev": e - e[-1], "force_ev_per_angstrom": f}))
    for i in range(2):
        s = np.array([1.0, 0.9, 0.8, 0.7, 0.6])
        e = 20 * (1 - s) ** 2 * (keep if keep == 1 else 1) - (0 if keep == 1 else 60 * (1 - s) ** 3)  # the soft model turns over
        rows.append(pd.DataFrame({"kind": "compression", "system": f"frame{i}", "r_angstrom": 0.9 * s, "scale": s,
                                  "energy_ev": e, "force_ev_per_angstrom": 1.0}))
    return pd.concat(rows, ignore_index=True).assign(source=source)


def _config(**entry):
    fig = {"kind": "repulsion", "description": "Short-range repulsion of every strategy", "benchmark": "nacl",
           "strategies": ["naive", "replay"], "e0s": "estimated", "fractions": [0.2], "seeds": [0, 1], **entry}
    return {"world": "mini", "scale": "smoke", "main_foundation": "omat_medium",
            "scales": {"smoke": {"repulsion": {"spacing_angstrom": 0.05}}},
            "benchmarks": {"nacl": {"test": "test"}, "sn2": {"test": "test"}}, "figures": {"x": fig}}


def _spec(config):
    from mlipft.config import conditions, grid

    return {"figure": "x", "kind": "repulsion", "description": config["figures"]["x"]["description"],
            "entry": config["figures"]["x"], "axes": grid(config, "x"), "labels": LABELS, "world": "mini",
            "scale": "smoke", "variant_labels": {"base": "as registered"}, "reference_label": "GFN2-xTB reference",
            "conditions": conditions(config, "x")}


def _inputs(tmp_path, config):
    from mlipft.figures import repulsion as kind

    p = Paths(tmp_path / "results")
    runs = [Run("nacl", "train", "0.2", "omat_medium", s, "estimated", "base", seed)
            for s in ("naive", "replay") for seed in (0, 1)]
    files = kind.inputs(config, "x", runs, p)
    assert files["repulsion"][0] == p.run_file(runs[0], "repulsion") and len(files["repulsion"]) == 4
    assert files["reference"] == [f"{p.results}/repulsion/nacl/reference.csv"]
    for run, path in zip(runs, files["repulsion"]):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _curves(KEEP[run.strategy], "model", noise=0.001 * run.seed).to_csv(path, index=False)
    for run, path in zip(runs, files["loss_curves"]):
        curve = [1.0 - 0.04 * e for e in range(20)] if run.strategy == "naive" else [1 / (1 + e) ** 3 + 0.5 for e in range(20)]
        pd.DataFrame({"epoch": range(20), "head": "Default", "split": "valid", "loss": curve}).to_csv(path, index=False)
    Path(files["reference"][0]).parent.mkdir(parents=True)
    _curves(1.0, "GFN2-xTB").to_csv(files["reference"][0], index=False)
    for path in files.get("foundation", []):
        _curves(0.8, "foundation omat_medium").to_csv(path, index=False)
    return files


def test_figure_collect_and_plot(tmp_path, roundtrip):
    from mlipft.figures import repulsion as kind

    config = _config(repulsion_foundation=True)
    spec = _spec(config)
    tables = kind.collect(_inputs(tmp_path, config), spec)
    assert set(tables) == set(kind.TABLES)
    curves, metrics = tables["curves"], tables["metrics"]
    assert set(curves.role) == {"model", "reference", "foundation"}
    assert curves[curves.role == "reference"].strategy.isna().all()
    assert set(curves[curves.role == "foundation"].foundation) == {"omat_medium"}
    found = metrics[metrics.role == "foundation"]
    assert len(found) == 5 and (found[found.kind == "dimer"].walls_missing == 0).all()
    models = metrics[metrics.role == "model"]
    assert len(models) == 4 * 5 and len(metrics[metrics.role == "reference"]) == 5  # runs x (3 pairs + 2 frames)
    naive = models[(models.strategy == "naive") & (models.kind == "dimer")]
    replay = models[(models.strategy == "replay") & (models.kind == "dimer")]
    assert (naive.walls_missing > 0).all() and (replay.walls_missing == 0).all()
    assert np.allclose(replay.wall_error_5ev, 0.0, atol=1e-9)
    comp = models[models.kind == "compression"]
    assert (comp[comp.strategy == "replay"].rise_ratio == 1.0).all() and (comp[comp.strategy == "naive"].rise_ratio < 0).all()
    assert not comp[comp.strategy == "naive"].monotonic.astype(bool).any()
    assert set(models[models.strategy == "naive"].convergence) == {"improving"}
    tables = roundtrip(tables, tmp_path)
    # the pairs whose walls the models miss most first (the errors grow with the pair's r_eq here)
    assert kind.relevant_pairs(tables["metrics"], "nacl", []) == ["Cl-Cl", "H-Cl", "H-H"]
    assert kind.relevant_pairs(tables["metrics"], "nacl", [], n=1) == ["Cl-Cl"]
    assert kind.relevant_pairs(tables["metrics"], "nacl", ["Cl-H", "Na-O"]) == ["H-Cl"]
    heat = kind.heat_values(tables["metrics"].assign(hue=kind.hues(tables["metrics"], spec)), "nacl",
                            ["Naive fine-tuning", "Multihead replay"], "reference")
    assert heat.loc["Multihead replay", "walls\nlost"] == 0 and heat.loc["Naive fine-tuning", "walls\nlost"] > 0
    assert heat.loc["reference", "Spearman ρ\nrepulsive"] == pytest.approx(-1.0)
    assert list(heat.index[:2]) == ["reference", "foundation omat_medium"]
    colour = kind.badness(heat)
    assert colour.loc["Multihead replay"].max() < 0.1 and colour.loc["Naive fine-tuning", "walls\nlost"] == 1.0
    outputs = [str(tmp_path / "fig.png"), str(tmp_path / "fig.pdf")]
    kind.plot(tables, spec, outputs)
    assert all(Path(o).stat().st_size > 10_000 for o in outputs)


def test_figure_checks():
    from mlipft.config import grid
    from mlipft.figures import repulsion as kind

    def check(config):
        return kind.check(config, "x", config["figures"]["x"], grid(config, "x"))

    assert check(_config()) is None
    assert check(_config(repulsion_pairs=["Na-Cl", "O-H"])) is None
    assert check(_config(repulsion_pairs=["NaCl"])).startswith(".repulsion_pairs:")
    assert check(_config(repulsion_pairs=["Na-Cl", "Cl-Na"])).startswith(".repulsion_pairs: listed twice")
    config = _config()
    config["benchmarks"]["nacl"] = {}
    assert check(config).startswith(".benchmark:")
    config = _config()
    del config["scales"]["smoke"]["repulsion"]
    assert "scales.smoke.repulsion" in check(config)
    config = _config()
    config["scales"]["smoke"]["repulsion"] = {"spacing": 1}
    assert "spacing" in check(config)
