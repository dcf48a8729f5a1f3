"""Shared fixtures: repository paths, the default config, and one tiny foundation model."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER_DATA = ROOT.parent / "shared" / "paper-data"


#: Fixtures that train a model or run the workflow: a test using one must be marked slow.
SLOW_FIXTURES = {"tiny_foundation", "smoke_run", "finetuned", "trained"}


def pytest_collection_modifyitems(config, items):
    """The fast tier must stay fast: a test that uses a training fixture without the slow
    marker is an error, not a silently slow default run."""
    for item in items:
        used = SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
        if used and item.get_closest_marker("slow") is None:
            raise pytest.UsageError(f"{item.nodeid} uses {sorted(used)} (training) but is not marked slow")


def write_errors(selection: str, frame) -> str:
    """Rows of one evaluation set written into a run's per-structure errors table, as the run's
    evaluation job writes them (``Paths.errors``' ``<run>/errors.csv::<evalset>``): the table is
    created or extended, rows of the same set replaced; returns the selection, what figures read."""
    import pandas as pd

    from mlipft.paths import split_selection

    file, evalset = split_selection(selection)
    frame = frame.assign(evalset=evalset)
    path = Path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = pd.read_csv(path)
        frame = pd.concat([old[old.evalset.astype(str) != evalset], frame], ignore_index=True)
    frame.to_csv(path, index=False)
    return selection


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script("utilisation")``: a script of ``benchmarks/`` (not a package) as a module."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture()
def config():
    from mlipft.config import load_world

    return copy.deepcopy(load_world(ROOT / "config" / "config.yaml"))


def _molecules(rng, n, symbols=("C", "H", "H", "H", "Cl", "Br"), charge=-1):
    from ase import Atoms

    base = np.array([[0, 0, 0], [1.03, 0, 0.36], [-0.51, 0.89, 0.36], [-0.51, -0.89, 0.36],
                     [0, 0, -1.8], [0, 0, 3.2]], float)
    out = []
    for _ in range(n):
        a = Atoms(symbols, positions=base + rng.normal(0, 0.06, base.shape))
        a.info["charge"] = charge
        out.append(a)
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A GFN1 'corpus' and a GFN2 'benchmark' of rattled CH3Cl...Br- complexes (seconds)."""
    from mlipft import xtb
    from mlipft.io import write_atomic

    d = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    corpus = xtb.label(_molecules(rng, 24), "foundation")
    target = xtb.label(_molecules(rng, 16), "target")
    files = {
        "corpus_train": corpus[:18], "corpus_valid": corpus[18:],
        "train": target[:10], "valid": target[10:13], "test": target[13:],
        "iso_foundation": xtb.isolated_atoms(["H", "C", "Cl", "Br"], "foundation"),
        "iso_target": xtb.isolated_atoms(["H", "C", "Cl", "Br"], "target"),
    }
    paths = {}
    for name, atoms in files.items():
        paths[name] = str(d / f"{name}.xyz")
        write_atomic(paths[name], atoms)
    paths["dir"] = str(d)
    return paths


@pytest.fixture(scope="session")
def tiny_foundation(tiny_data):
    """A MACE model pretrained for 2 epochs on the tiny corpus with mace_run_train."""
    from mlipft import e0s, train

    iso = e0s.isolated_from_file(tiny_data["iso_foundation"])
    spec = dict(
        strategy_name="pretrain",
        strategy=dict(uses_foundation=False, multihead=False,
                      mace_args=dict(r_max=4.0, num_channels=8, max_L=1, num_interactions=2,
                                     correlation=2, lr=0.01, ema_decay=0.99)),
        e0_mode="isolated", e0s_json={"modes": {"isolated": {str(z): e for z, e in iso.items()}}},
        name="foundation", seed=0, train_file=tiny_data["corpus_train"], valid_file=tiny_data["corpus_valid"],
        max_num_epochs=2, batch_size=6, device="cpu", default_dtype="float64",
        common=dict(loss="huber", huber_delta=0.01, energy_weight=10.0, forces_weight=10.0, weight_decay=0.0),
    )
    out = Path(tiny_data["dir"]) / "foundation"
    paths = {"model": str(out / "model.model"), "loss_curves": str(out / "loss.csv"),
             "trainable": str(out / "trainable.json")}
    train.run(spec, None, paths, threads=1, log_file=str(out.parent / "foundation.log"))
    return paths["model"]


@pytest.fixture(scope="session")
def roundtrip():
    """The figure kinds' tables as their plot step reads them: written to CSV by collect, read back
    by pandas (``roundtrip(tables, directory)``)."""
    import pandas as pd

    def read_back(tables: dict, directory: Path) -> dict:
        out = {}
        for name, table in tables.items():
            table.to_csv(directory / f"{name}.csv", index=False)
            out[name] = pd.read_csv(directory / f"{name}.csv")
        return out

    return read_back
