"""Kind benchmarks_overview (the paper's Fig. 2): each benchmark's files and the foundation's
zero-shot errors on its test set, in a synthetic two-benchmark world (one molecular, one
periodic): the inputs, the table (counts without isolated atoms, elements, periodicity, levels,
zero-shot RMSEs, the order by force RMSE), the representative frame, the plot and the checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.io import write
from mlipft import figures
from mlipft.analysis.errors import write_table
from mlipft.figures import benchmarks_overview as bo
from mlipft.keys import (
    CONFIG_TYPE_KEY,
    ENERGY_KEY,
    FORCES_KEY,
    ISOLATED_ATOM,
    PRED_PREFIX,
)
from mlipft.paths import Paths

FOUNDATION = "found"
#: Grid order: the molecular benchmark first; its zero-shot force error is the larger one, so the
#: table puts the periodic benchmark first.
BENCHMARKS = ["mol", "bulk"]
#: Zero-shot errors the synthetic predictions carry: force error per component (eV/Å) and
#: energy error per atom (eV).
FORCE_ERROR = {"mol": 0.2, "bulk": 0.05}
ENERGY_ERROR = {"mol": 0.003, "bulk": 0.004}


def _labelled(atoms: Atoms, rng, config_type: str, level: str | None = None, energy: float | None = None) -> Atoms:
    atoms.info[ENERGY_KEY] = float(energy if energy is not None else -3.0 * len(atoms) + rng.normal(0, 0.1))
    atoms.arrays[FORCES_KEY] = rng.normal(0, 0.5, (len(atoms), 3))
    atoms.info[CONFIG_TYPE_KEY] = config_type
    if level:
        atoms.info["level"] = level
    return atoms


def _molecule(rng, symbols="CH3ClF", config_type="r", energy=None) -> Atoms:
    base = np.array([[0, 0, 0], [1.03, 0, 0.36], [-0.51, 0.89, 0.36], [-0.51, -0.89, 0.36], [0, 0, -1.8],
                     [0, 0, 2.2]], float)
    atoms = Atoms(symbols, positions=base[: len(Atoms(symbols))] + rng.normal(0, 0.05, (len(Atoms(symbols)), 3)))
    return _labelled(atoms, rng, config_type, "GFN2-xTB", energy)


def _rocksalt(rng, repeat=1) -> Atoms:
    a = 5.64
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    na = frac * a
    atoms = Atoms("Na4Cl4", positions=np.vstack([na, na + [a / 2, 0, 0]]), cell=[a, a, a], pbc=True)
    atoms = atoms.repeat((repeat, 1, 1))
    atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
    return _labelled(atoms, rng, "bulk")  # no level in the frames: summary.json names it


def _isolated(symbol: str) -> Atoms:
    atoms = Atoms(symbol, pbc=False)
    atoms.info[ENERGY_KEY] = -1.0
    atoms.arrays[FORCES_KEY] = np.zeros((1, 3))
    atoms.info[CONFIG_TYPE_KEY] = ISOLATED_ATOM
    return atoms


def _zeroshot(paths: Paths, bench: str, frames: list[Atoms], tmp_path: Path) -> str:
    """The per-structure errors of mlipft.analysis.errors from predictions off by fixed amounts."""
    pred = []
    for atoms in frames:
        a = atoms.copy()
        a.info[PRED_PREFIX + "energy"] = a.info[ENERGY_KEY] + ENERGY_ERROR[bench] * len(a)
        a.arrays[PRED_PREFIX + "forces"] = a.arrays[FORCES_KEY] + FORCE_ERROR[bench]
        pred.append(a)
    pred_file = tmp_path / f"{bench}_pred.xyz"
    write(pred_file, pred, format="extxyz")
    out = paths.zeroshot(bench, FOUNDATION, "test")
    write_table(pred_file, {"benchmark": bench, "foundation": FOUNDATION}, "test", out)
    return out


@pytest.fixture()
def world(tmp_path):
    """Two benchmarks under tmp_path/data/benchmarks and their zero-shot CSVs under results/."""
    rng = np.random.default_rng(0)
    paths = Paths(tmp_path / "results", tmp_path / "data")
    files = {
        "mol": {
            # an isolated atom in the training file: not a configuration
            "train": [_isolated("C")] + [_molecule(rng) for _ in range(5)] + [_molecule(rng, "CH3Cl", "p")],
            "valid": [_molecule(rng) for _ in range(2)],
            # frame 2 is the transition state (shown); frame 3 has more atoms but is no TS
            "test": [_molecule(rng, "CH3F", "r"), _molecule(rng, "CH3Cl", "p"), _molecule(rng, "CH3ClF", "ts"),
                     _molecule(rng, "CH3ClF", "path")],
        },
        "bulk": {
            "train": [_rocksalt(rng) for _ in range(3)] + [_rocksalt(rng, repeat=2)],
            "valid": [_rocksalt(rng)],
            "test": [_rocksalt(rng) for _ in range(2)] + [_isolated("Na")],
        },
    }
    for bench, sets in files.items():
        for name, frames in sets.items():
            path = Path(paths.bench_file(bench, name))
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path, frames, format="extxyz")
        _zeroshot(paths, bench, sets["test"], tmp_path)
    # summary.json as the two worlds may write it: the mini generators' counts, or anything else
    Path(paths.bench_file("mol", "summary.json")).write_text(json.dumps({"files": {"train.xyz": 7}, "seed": 0}))
    Path(paths.bench_file("bulk", "summary.json")).write_text(json.dumps({"params": {"level": "PBE"}}))
    config = {"benchmarks": {b: {"trainsets": ["train"], "validsets": {"train": "valid"}, "test": "test"}
                             for b in BENCHMARKS},
              "foundations": {FOUNDATION: {}, "other": {}}, "main_foundation": FOUNDATION,
              "figures": {"fig02": {"kind": "benchmarks_overview", "description": "Fig. 2: the benchmarks",
                                    "benchmark": list(BENCHMARKS)}}}
    return config, paths, files


def _spec(config, name="fig02"):
    fig = config["figures"][name]
    return {"figure": name, "kind": fig["kind"], "description": fig["description"], "entry": fig,
            "axes": bo.figure_axes(config, name), "world": "mini", "scale": "smoke"}


def test_inputs_one_file_per_benchmark_in_grid_order(world):
    config, paths, _ = world
    inputs = bo.inputs(config, "fig02", runs=["ignored"], paths=paths)
    assert set(inputs) == {"structures", "trainsets", "validsets", "tests", "summaries", "zeroshot"}
    assert inputs["trainsets"] == [paths.bench_file(b, "train") for b in BENCHMARKS]
    assert inputs["validsets"] == [paths.bench_file(b, "valid") for b in BENCHMARKS]
    assert inputs["structures"] == inputs["tests"] == [paths.bench_file(b, "test") for b in BENCHMARKS]
    assert inputs["summaries"] == [paths.bench_file(b, "summary.json") for b in BENCHMARKS]
    assert inputs["zeroshot"] == [paths.zeroshot(b, FOUNDATION, "test") for b in BENCHMARKS]
    assert all(Path(f).exists() for files in inputs.values() for f in files)
    config["figures"]["fig02"]["foundation"] = "other"
    assert bo.inputs(config, "fig02", [], paths)["zeroshot"][0].endswith("zeroshot/mol/other/test.csv")


def test_collect_counts_elements_periodicity_and_order_by_force_rmse(world, tmp_path, roundtrip):
    config, paths, files = world
    tables = roundtrip(bo.collect(bo.inputs(config, "fig02", [], paths), _spec(config)), tmp_path)
    assert set(tables) == set(bo.TABLES)
    table = tables["benchmarks"]
    assert list(table.columns) == list(bo.COLUMNS)
    assert list(table.benchmark) == ["bulk", "mol"]  # by zero-shot force RMSE, not the grid's order
    mol, bulk = (table.set_index("benchmark").loc[b] for b in ("mol", "bulk"))

    assert (mol.n_train, mol.n_valid, mol.n_test) == (6, 2, 4)  # the isolated C is no configuration
    assert (bulk.n_train, bulk.n_valid, bulk.n_test) == (4, 1, 2)  # nor the isolated Na
    assert (mol.atoms_min, mol.atoms_max) == (5, 6) and (bulk.atoms_min, bulk.atoms_max) == (8, 16)
    assert mol.elements == "H C F Cl" and bulk.elements == "Na Cl"  # by atomic number
    assert not mol.periodic and bulk.periodic
    assert mol.level == "GFN2-xTB"  # the frames' own level
    assert bulk.level == "PBE"  # none in the frames: summary.json's
    assert (mol.trainset, mol.validset, mol.testset) == ("train", "valid", "test")
    assert (table.foundation == FOUNDATION).all()

    assert mol.zeroshot_force_rmse == pytest.approx(1000 * FORCE_ERROR["mol"])
    assert bulk.zeroshot_force_rmse == pytest.approx(1000 * FORCE_ERROR["bulk"])
    assert mol.zeroshot_energy_rmse == pytest.approx(1000 * ENERGY_ERROR["mol"])
    assert bulk.zeroshot_energy_rmse == pytest.approx(1000 * ENERGY_ERROR["bulk"])
    assert (mol.zeroshot_n_configs, bulk.zeroshot_n_configs) == (4, 2)

    assert mol.representative_index == 2 and mol.representative_config_type == "ts"
    shown = bo.structure_atoms(mol.structure)
    assert shown.get_chemical_formula() == files["mol"]["test"][2].get_chemical_formula()
    assert np.allclose(shown.positions, files["mol"]["test"][2].positions, atol=1e-3)
    cell = bo.structure_atoms(bulk.structure)
    assert cell.pbc.all() and cell.cell.volume == pytest.approx(5.64**3, rel=1e-3)

    out = [str(tmp_path / "fig02.png"), str(tmp_path / "fig02.pdf")]
    bo.plot(tables, _spec(config), out)
    assert Path(out[0]).stat().st_size > 20_000 and Path(out[1]).stat().st_size > 5_000


def test_collect_and_plot_through_the_registry_cli(world, tmp_path):
    """``python -m mlipft.figures collect/plot`` with role=path arguments, as the rules call it."""
    config, paths, _ = world
    spec = json.dumps(_spec(config))
    inputs = [f"{role}={f}" for role, fs in bo.inputs(config, "fig02", [], paths).items() for f in fs]
    table = tmp_path / "tables" / "fig02_benchmarks.csv"
    figures.main(["collect", "--spec", spec, "--inputs", *inputs, "--outputs", f"benchmarks={table}"])
    assert list(pd.read_csv(table).benchmark) == ["bulk", "mol"]
    out = [str(tmp_path / "figures" / "fig02.png"), str(tmp_path / "figures" / "fig02.pdf")]
    figures.main(["plot", "--spec", spec, "--tables", f"benchmarks={table}", "--outputs", *out])
    assert all(Path(o).stat().st_size > 5_000 for o in out)


def test_representative_frame_choice_and_override(world):
    config, paths, _ = world
    rng = np.random.default_rng(1)
    # no transition state: most distinct elements, then most atoms, then lowest energy per atom
    frames = [_isolated("C"), _molecule(rng, "CH3Cl", "p"), _molecule(rng, "CH3ClF", "r", energy=-10.0),
              _molecule(rng, "CH3ClF", "r", energy=-12.0), _molecule(rng, "CH3F", "r")]
    assert bo.representative(frames) == 3
    assert bo.representative(frames, 1) == 1
    with pytest.raises(ValueError, match="not a configuration"):
        bo.representative(frames, 0)  # the isolated atom
    with pytest.raises(ValueError, match="not a configuration"):
        bo.representative(frames, 9)
    config["figures"]["fig02"]["representative"] = {"mol": 1}
    table = bo.collect(bo.inputs(config, "fig02", [], paths), _spec(config))["benchmarks"].set_index("benchmark")
    assert table.loc["mol", "representative_index"] == 1 and table.loc["mol", "representative_config_type"] == "p"


def test_summary_json_is_optional_and_read_defensively(world, tmp_path):
    """A summary.json that is missing, not JSON or without a level changes nothing but the
    level's fallback (which then says the level is not recorded)."""
    config, paths, _ = world
    Path(paths.bench_file("bulk", "summary.json")).write_text("not json")
    inputs = bo.inputs(config, "fig02", [], paths)
    table = bo.collect(inputs, _spec(config))["benchmarks"].set_index("benchmark")
    assert table.loc["bulk", "level"] == "not recorded" and table.loc["bulk", "n_train"] == 4
    del inputs["summaries"]
    assert bo.collect(inputs, _spec(config))["benchmarks"].benchmark.tolist() == ["bulk", "mol"]


def test_zeroshot_of_another_benchmark_is_an_error(world):
    config, paths, _ = world
    inputs = bo.inputs(config, "fig02", [], paths)
    inputs["zeroshot"] = inputs["zeroshot"][::-1]
    with pytest.raises(ValueError, match="expected mol"):
        bo.collect(inputs, _spec(config))
    inputs["zeroshot"] = inputs["zeroshot"][:1]
    with pytest.raises(ValueError, match="one per benchmark"):
        bo.collect(inputs, _spec(config))


def test_molecule_view_separates_atoms():
    """The chosen camera of a linear X-C-Y complex shows its three hydrogens apart."""
    rng = np.random.default_rng(0)
    atoms = bo.aligned(_molecule(rng, "CH3ClF", "ts"))
    r = bo.radii(atoms.numbers, False)
    xy = (atoms.positions @ bo.best_view(atoms.positions, r).T)[:, :2]
    h = xy[[1, 2, 3]]
    assert min(np.linalg.norm(h[i] - h[j]) for i, j in ((0, 1), (0, 2), (1, 2))) > 2 * r[1]


def _check(entry, main="found"):
    config = {"figures": {"x": {"kind": "benchmarks_overview", "description": "d", **entry}},
              "foundations": {"found": {}, "other": {}}, "main_foundation": main}
    fig = config["figures"]["x"]
    return bo.check(config, "x", fig, bo.figure_axes(config, "x"))


def test_check_needs_benchmarks_and_one_foundation():
    assert _check({"benchmark": ["mol", "bulk"]}) is None
    assert _check({"benchmark": "mol", "foundation": "other"}) is None
    assert _check({"benchmark": ["mol"], "representative": {"mol": 3}}) is None
    assert _check({"benchmark": []}).startswith(".benchmark: ")
    assert _check({}).startswith(".benchmark: ")
    assert _check({"benchmark": "mol", "foundation": ["found", "other"]}).startswith(".foundation: ")
    assert _check({"benchmark": "mol", "foundation": "all"}).startswith(".foundation: ")
    assert _check({"benchmark": "mol"}, main=None).startswith(".foundation: ")
    assert _check({"benchmark": "mol", "trainset": ["train", "train_rp"]}).startswith(".trainset: ")
    assert _check({"benchmark": "mol", "representative": {"ice": 0}}).startswith(".representative: ")


def test_is_a_kind():
    assert figures.kind("benchmarks_overview") is bo
    assert bo.TABLES == ("benchmarks",)
