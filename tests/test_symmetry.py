"""The symmetry check (mlipft.analysis.symmetry) and its figure kind symmetry_table: the random
transformations themselves, a tiny untrained float64 MACE passing every check, models broken on
purpose (a term in the absolute x coordinate; a term weighted by the atom's index) failing the
checks they break and only those, the command line, bad input, and the kind's collect, plot and
checks from per-run files at real run paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from mlipft import figures
from mlipft.analysis import symmetry
from mlipft.config import grid
from mlipft.figures import symmetry_table
from mlipft.io import write_atomic
from mlipft.paths import RUN_KEYS, Paths, Run
from test_analysis import _box, _mace, _molecules

KINDS = list(symmetry.TRANSFORMATIONS)


class Broken(torch.nn.Module):
    """A MACE model plus an energy term that breaks a symmetry, evaluated through the same path
    as the model (``predict`` calls ``model(batch.to_dict(), training=..., compute_force=...,
    compute_stress=...)`` and reads ``atomic_numbers``, ``r_max``, ``heads``); the term's forces
    (minus its gradient, by autograd) are added to the model's.

    ``position``: ``strength * sum_i x_i^2`` (absolute x coordinates: not invariant under
    translations, rotations or reflections; invariant under permutations).
    ``index``: ``strength * sum_i (i + 1) |r_i - centroid|^2``, i the atom's index in its
    structure (invariant under translations, rotations and reflections of a molecule; not under
    permutations)."""

    def __init__(self, model, mode: str, strength: float = 1e-3):
        super().__init__()
        self.model, self.mode, self.strength = model, mode, strength

    @property
    def atomic_numbers(self):
        return self.model.atomic_numbers

    @property
    def r_max(self):
        return self.model.r_max

    @property
    def heads(self):
        return self.model.heads

    def forward(self, data, training=False, compute_force=True, compute_stress=False, **kwargs):
        out = dict(self.model(data, training=training, compute_force=compute_force, compute_stress=compute_stress,
                              **kwargs))
        pos = data["positions"].detach().clone().requires_grad_(True)
        batch, ptr = data["batch"], data["ptr"]
        n_graphs = ptr.numel() - 1
        if self.mode == "position":
            per_atom = pos[:, 0] ** 2
        else:
            counts = (ptr[1:] - ptr[:-1]).to(pos.dtype)
            centroid = torch.zeros(n_graphs, 3, dtype=pos.dtype).index_add(0, batch, pos) / counts[:, None]
            index = torch.arange(len(pos)) - ptr[batch] + 1
            per_atom = index.to(pos.dtype) * ((pos - centroid[batch]) ** 2).sum(dim=1)
        extra = self.strength * torch.zeros(n_graphs, dtype=pos.dtype).index_add(0, batch, per_atom)
        (grad,) = torch.autograd.grad(extra.sum(), pos)
        out["energy"] = out["energy"] + extra.detach()
        if compute_force:
            out["forces"] = out["forces"] - grad
        return out


@pytest.fixture(scope="module")
def model():
    return _mace(None)


def _frames():
    return _molecules(2) + [_box(1)]


# ----------------------------------------------------------------------------- transformations
def test_transformations_are_isometries_that_forces_follow():
    rng = np.random.default_rng(3)
    for atoms in (_molecules(1)[0], _box(2)):
        for kind in KINDS:
            t = symmetry.transform(atoms, kind, rng)
            a = t.atoms
            assert a.calc is None and len(a) == len(atoms) and np.array_equal(a.pbc, atoms.pbc)
            # the same structure: sorted interatomic (minimum-image) distances and species
            d0 = np.sort(atoms.get_all_distances(mic=atoms.pbc.any()), axis=None)
            d1 = np.sort(a.get_all_distances(mic=a.pbc.any()), axis=None)
            assert np.allclose(d0, d1, atol=1e-10, rtol=0)
            assert sorted(a.numbers) == sorted(atoms.numbers)
            assert np.array_equal(a.numbers, atoms.numbers[t.permutation])
            det = np.linalg.det(t.matrix)
            assert det == pytest.approx(-1.0 if kind == "reflection" else 1.0)
            if kind in ("rotation", "reflection"):
                assert not np.allclose(t.matrix, np.eye(3) * np.sign(det))
                # positions follow the matrix (about the origin) and a periodic cell stays right-handed
                assert np.allclose(a.positions, atoms.positions @ t.matrix.T)
                if atoms.pbc.any():
                    assert a.cell.volume == pytest.approx(atoms.cell.volume) and np.linalg.det(a.cell.array) > 0
            if kind == "translation" and atoms.pbc.all():
                frac = a.get_scaled_positions(wrap=False)
                assert (frac >= -1e-12).all() and (frac < 1 + 1e-12).all()  # wrapped back
                assert np.allclose(a.cell.array, atoms.cell.array)
            if kind == "permutation":
                assert not np.array_equal(t.permutation, np.arange(len(atoms)))
                assert np.allclose(a.positions, atoms.positions[t.permutation])
            forces = rng.normal(size=(len(atoms), 3))
            assert np.allclose(t.expected_forces(forces), (forces @ t.matrix.T)[t.permutation])
    with pytest.raises(ValueError, match="unknown transformation 'shear'"):
        symmetry.transform(_box(), "shear", rng)


def test_select_frames_spreads_over_the_file():
    assert symmetry.select_frames(10, 3) == [0, 4, 9]  # 0, 4.5 -> 4 (round half to even), 9
    assert symmetry.select_frames(10, 1) == [0]
    assert symmetry.select_frames(2, 3) == [0, 1] and symmetry.select_frames(5, 0) == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------- models
def test_a_float64_mace_passes_every_check(model):
    per = symmetry.deviations(model, _frames(), n_transforms=3, seed=1, batch_size=16)
    assert len(per) == 3 * len(KINDS) * 3 and list(dict.fromkeys(per.transformation)) == KINDS
    table = symmetry.summary(per)
    assert list(table.columns) == symmetry.COLUMNS and list(table.transformation) == KINDS
    assert table.passed.all() and (table.n_structures == 3).all() and (table.n_transforms == 3).all()
    assert (table.max_energy_dev_ev_per_atom < 1e-12).all() and (table.max_force_dev_ev_per_angstrom < 1e-11).all()
    assert (table.mean_force_dev_ev_per_angstrom <= table.max_force_dev_ev_per_angstrom).all()
    assert (table.tolerance_energy == 1e-7).all() and (table.tolerance_force == 1e-5).all()
    # the same transformations from the same seed, whatever the batches
    again = symmetry.deviations(model, _frames(), n_transforms=3, seed=1, batch_size=None)
    assert np.allclose(again.max_force_dev_ev_per_angstrom, per.max_force_dev_ev_per_angstrom, atol=1e-11, rtol=0)


def test_a_model_with_a_term_in_absolute_positions_fails_translation_rotation_and_reflection(model):
    broken = Broken(model, "position")
    table = symmetry.symmetry_check(broken, _frames(), n_transforms=3).set_index("transformation")
    assert not table.loc[["rotation", "reflection", "translation"], "passed"].any()
    assert (table.loc[["rotation", "reflection", "translation"], "max_energy_dev_ev_per_atom"] > 1e-4).all()
    assert (table.loc[["rotation", "reflection"], "max_force_dev_ev_per_angstrom"] > 1e-4).all()
    assert table.loc["permutation", "passed"]  # a sum over atoms: any order
    # a translation moves sum x^2 but not its gradient's differences: forces shift by a constant
    assert table.loc["translation", "max_force_dev_ev_per_angstrom"] > 1e-4


def test_a_model_with_a_term_weighted_by_atom_index_fails_permutation_only(model):
    broken = Broken(model, "index")
    table = symmetry.symmetry_check(broken, _molecules(3), n_transforms=3).set_index("transformation")
    assert not table.loc["permutation", "passed"]
    assert table.loc["permutation", "max_energy_dev_ev_per_atom"] > 1e-5
    assert table.loc["permutation", "max_force_dev_ev_per_angstrom"] > 1e-4
    assert table.loc[["rotation", "reflection", "translation"], "passed"].all()


# ----------------------------------------------------------------------------- command line
def test_cli_writes_the_table_through_a_head(tmp_path):
    model = _mace(["Default", "pt_head"])
    torch.save(model, tmp_path / "m.model")
    torch.save(Broken(model, "position"), tmp_path / "broken.model")
    write_atomic(tmp_path / "s.xyz", _molecules(3) + [_box(1), _box(2)])
    out = tmp_path / "sub" / "symmetry.csv"
    args = ["--structures", str(tmp_path / "s.xyz"), "--n-frames", "3", "--n-transforms", "2", "--output", str(out)]
    symmetry.main(["--model", str(tmp_path / "m.model"), "--head", "pt_head", *args])
    table = pd.read_csv(out)
    assert list(table.columns) == symmetry.COLUMNS and list(table.transformation) == KINDS
    assert table.passed.all() and (table.n_structures == 3).all() and (table.n_transforms == 2).all()
    assert not list(out.parent.glob(".*.tmp*"))  # written atomically
    symmetry.main(["--model", str(tmp_path / "broken.model"), "--tolerance-energy", "1e-9",
                   "--tolerance-force", "1e-7", *args])
    table = pd.read_csv(out).set_index("transformation")
    assert list(table.passed) == [False, False, False, True]
    assert (table.tolerance_energy == 1e-9).all() and (table.tolerance_force == 1e-7).all()
    with pytest.raises(ValueError, match="no head 'nope'"):
        symmetry.main(["--model", str(tmp_path / "m.model"), "--head", "nope", *args])


def test_bad_input_names_the_file(tmp_path, model):
    torch.save(model, tmp_path / "m.model")
    out = tmp_path / "symmetry.csv"

    def run(structures, *extra):
        symmetry.main(["--model", str(tmp_path / "m.model"), "--structures", str(structures), *extra,
                       "--output", str(out)])

    with pytest.raises(FileNotFoundError, match="none.xyz"):
        run(tmp_path / "none.xyz")
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(ValueError, match=r"empty\.xyz: no frames"):
        run(tmp_path / "empty.xyz")
    write_atomic(tmp_path / "flat.xyz", [_box(), Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], pbc=True)])
    with pytest.raises(ValueError, match=r"flat\.xyz: frame 1 is periodic along \['a', 'b', 'c'\]"):
        run(tmp_path / "flat.xyz")
    write_atomic(tmp_path / "fe.xyz", [Atoms("FeH", positions=[[0, 0, 0], [1.5, 0, 0]])])
    with pytest.raises(ValueError, match=r"fe\.xyz.*elements \['Fe'\] are unknown to the model"):
        run(tmp_path / "fe.xyz")
    write_atomic(tmp_path / "ok.xyz", _molecules(1))
    with pytest.raises(SystemExit):
        run(tmp_path / "ok.xyz", "--n-transforms", "0")
    with pytest.raises(SystemExit):
        run(tmp_path / "ok.xyz", "--tolerance-force", "0")
    assert not out.exists()


# ----------------------------------------------------------------------------- the figure kind
STRATEGIES = {"naive": "Naive", "lora": "LoRA", "pseudolabel": "Multihead pseudolabel"}
RUNS = {"sn2": "1", "nacl": "0.2"}  # the mini world's runs: SN2 whole, NaCl a fifth


def _table(scale: float, fail: str | None = None) -> pd.DataFrame:
    rows = []
    for k, kind in enumerate(KINDS):
        energy, force = scale * 10.0 ** (-k), 10 * scale * 10.0 ** (-k)
        if kind == fail:
            energy, force = 3e-4, 2e-2
        rows.append({"transformation": kind, "n_structures": 3, "n_transforms": 10,
                     "max_energy_dev_ev_per_atom": energy if kind != "translation" else 0.0,
                     "max_force_dev_ev_per_angstrom": force, "mean_force_dev_ev_per_angstrom": force / 4,
                     "tolerance_energy": 1e-7, "tolerance_force": 1e-5,
                     "passed": energy <= 1e-7 and force <= 1e-5})
    return pd.DataFrame(rows, columns=symmetry.COLUMNS)


def _write_runs(root: Path, seeds=(0, 1)) -> list[str]:
    p = Paths(root / "results")
    files = []
    for bench, fraction in RUNS.items():
        for strategy in STRATEGIES:
            for seed in seeds:
                run = Run(bench, "train", fraction, "omat_medium", strategy, "estimated", "base", seed)
                path = Path(p.run_file(run, "symmetry"))
                path.parent.mkdir(parents=True, exist_ok=True)
                scale = (1e-13 if strategy == "naive" else 1e-10) * (1 + seed)
                fail = "rotation" if (strategy, bench, seed) == ("lora", "nacl", 1) else None
                _table(scale, fail).to_csv(path, index=False)
                files.append(str(path))
    return files


def _spec(entry=None, seeds=("0", "1")):
    axes = {"benchmark": list(RUNS), "trainset": ["train"], "fraction": ["1", "0.2"], "foundation": ["omat_medium"],
            "strategy": list(STRATEGIES), "e0s": ["estimated"], "variant": ["base"], "seed": list(seeds)}
    return {"figure": "symmetry_table", "kind": "symmetry_table", "entry": entry or {}, "axes": axes,
            "description": "Symmetry check of every model", "labels": STRATEGIES, "evalsets": ["test"],
            "world": "mini", "scale": "mini", "variant_labels": {"base": "base"},
            "reference_label": "GFN2-xTB reference"}


def test_collect_and_plot_from_run_paths(tmp_path, roundtrip):
    files = _write_runs(tmp_path)
    spec = _spec()
    tables = symmetry_table.collect({"symmetry": files}, spec)
    assert set(tables) == set(symmetry_table.TABLES)
    table = tables["symmetry"]
    assert len(table) == 2 * 3 * 2 * 4 and tuple(table.columns[:8]) == RUN_KEYS
    assert set(table.fraction.astype(str)) == {"1", "0.2"} and int((~table.passed).sum()) == 1
    tables = roundtrip(tables, tmp_path)
    rows = symmetry_table.rows(tables["symmetry"], spec)
    assert len(rows) == 2 * 3 * 4 and list(dict.fromkeys(rows.row))[:3] == ["Naive · sn2", "LoRA · sn2",
                                                                               "Multihead pseudolabel · sn2"]
    lora = rows[(rows.row == "LoRA · nacl")].set_index("transformation")
    assert lora.loc["rotation", "failed_max_force_dev_ev_per_angstrom"] and lora.n_seeds.max() == 2
    assert lora.loc["rotation", "max_energy_dev_ev_per_atom"] == 3e-4  # the worst seed
    assert not lora.loc["reflection", "failed_max_energy_dev_ev_per_atom"]
    assert rows.failed_max_energy_dev_ev_per_atom.sum() == 1
    out = [str(tmp_path / "symmetry_table.png"), str(tmp_path / "symmetry_table.pdf")]
    symmetry_table.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 20_000 and Path(out[1]).stat().st_size > 5_000

    # one benchmark, one seed, some transformations: no setting in the labels
    one = [f for f in files if "/sn2/" in f and f.endswith("seed0/symmetry.csv")]
    spec = _spec({"symmetry_transformations": ["rotation", "permutation"]}, seeds=("0",))
    spec["axes"]["benchmark"] = ["sn2"]
    tables = symmetry_table.collect({"symmetry": one}, spec)
    assert list(dict.fromkeys(tables["symmetry"].transformation)) == ["rotation", "permutation"]
    rows = symmetry_table.rows(tables["symmetry"], spec)
    assert list(dict.fromkeys(rows.row)) == list(STRATEGIES.values())
    symmetry_table.plot(roundtrip(tables, tmp_path), spec, [str(tmp_path / "one.png"), str(tmp_path / "one.pdf")])


def test_collect_names_a_bad_file(tmp_path):
    files = _write_runs(tmp_path, seeds=(0,))
    pd.read_csv(files[1]).drop(columns=["passed"]).to_csv(files[1], index=False)
    with pytest.raises(ValueError, match=rf"{files[1]}: no columns \['passed'\]"):
        symmetry_table.collect({"symmetry": files}, _spec())
    files = _write_runs(tmp_path, seeds=(0,))
    with pytest.raises(ValueError, match=r"symmetry_transformations \['shear'\] are in no run"):
        symmetry_table.collect({"symmetry": files}, _spec({"symmetry_transformations": ["shear"]}))


def _check(entry):
    config = {"world": "mini", "scale": "mini", "main_foundation": "omat_medium",
              "figures": {"x": {"kind": "symmetry_table", "description": "d", "benchmark": ["sn2", "nacl"],
                                "strategies": ["naive"], "e0s": "estimated", "fractions": [1.0], "seeds": [0],
                                **entry}}}
    return symmetry_table.check(config, "x", config["figures"]["x"], grid(config, "x"))


def test_check_and_kind():
    assert _check({}) is None and _check({"symmetry_transformations": ["rotation"]}) is None
    assert _check({"symmetry_transformations": ["shear"]}).startswith(".symmetry_transformations: ")
    assert _check({"symmetry_transformations": ["rotation", "rotation"]}).startswith(".symmetry_transformations: ")
    assert figures.kind("symmetry_table") is symmetry_table
    runs = [Run(b, "train", f, "omat_medium", "lora", "estimated", "base", 0) for b, f in RUNS.items()]
    files = symmetry_table.inputs({}, "x", runs, Paths("results"))
    assert list(files) == ["symmetry"] and files["symmetry"] == [
        "results/runs/sn2/train/f1/omat_medium/lora/e0-estimated/v-base/seed0/symmetry.csv",
        "results/runs/nacl/train/f0.2/omat_medium/lora/e0-estimated/v-base/seed0/symmetry.csv"]
