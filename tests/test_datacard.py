"""mlipft.datacard: the Markdown data card of a mini-world scale, every number read from files."""

from __future__ import annotations

import importlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import molecule
from ase.io import read

from mlipft import datacard, manifest, xtb
from mlipft.io import read_configs, write_atomic, write_json
from mlipft.keys import CONFIG_TYPE_KEY

BENCHMARKS = {"sn2": {"generator": "sn2", "test": "test"}, "nacl": {"generator": "nacl", "test": "test.xyz"},
              "ice": {"generator": "ice", "test": "test"}, "spice": {"generator": "spice", "test": "test"},
              "lpsc": {"generator": "lpsc", "test": "test"}}
FOUNDATIONS = {
    "mp0": {"kind": "pretrain", "corpus": "mptrj", "corpus_fraction": 0.25, "description": "MP-0 | analogue",
            "model": {"r_max": 4.5, "num_channels": 8, "max_L": 0, "lr": 0.01}},
    "omat_medium": {"kind": "pretrain", "corpus": "omat", "model": {"r_max": 4.5, "num_channels": 8, "max_L": 1}},
}


@pytest.fixture(scope="module")
def labelled():
    """Tiny GFN2-labelled molecules of different sizes (H2O, CH4, C2H6, HCl) and isolated atoms."""
    mols = [molecule(name) for name in ("H2O", "CH4", "C2H6", "HCl", "H2O", "CH4")]
    rng = np.random.default_rng(1)
    for m in mols:
        m.positions += rng.normal(0, 0.03, m.positions.shape)
    return xtb.label(mols, "target"), xtb.isolated_atoms(["H", "C", "O", "Cl"], "target")


def _tables(text: str, heading: str) -> list[list[dict]]:
    """The Markdown tables after ``heading`` (up to the next heading of the same or higher level)."""
    level = heading.split()[0]
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")
                and len(lines[i].split()[0]) <= len(level)), len(lines))
    tables, current = [], []
    for line in lines[start:end] + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip("|").split(" | ")])
        elif current:
            header, rows = current[0], current[2:]
            tables.append([dict(zip(header, r)) for r in rows])
            current = []
    return tables


@pytest.fixture()
def scale(tmp_path, labelled):
    labelled, isolated = labelled
    root = tmp_path / "mini"
    sn2 = root / "benchmarks" / "sn2"
    files = {"train": labelled[:4], "train_rp": labelled[:2], "valid": labelled[4:], "valid_rp": labelled[4:5],
             "test": labelled[2:], "reference_neb": labelled[:1],
             "isolated_atoms": isolated}
    for name, frames in files.items():
        write_atomic(sn2 / f"{name}.xyz", frames)
    write_json(sn2 / "summary.json", {"files": {}, "seconds": 43.57, "seed": 3})
    nacl = root / "benchmarks" / "nacl"  # md_start.xyz left out: the card says "missing"
    for name in ("train", "valid", "test", "isolated_atoms"):
        write_atomic(nacl / f"{name}.xyz", labelled[:3])
    pd.DataFrame({"r": [1.0, 2.0], "g_Cl-O": [0.0, 1.2]}).to_csv(nacl / "rdf_reference.csv", index=False)
    write_json(nacl / "generation_info.json", {"a": 1, "b": 2})
    write_atomic(root / "benchmarks" / "lpsc" / "heldout_other_argyrodites.xyz", labelled[1:3])
    write_atomic(root / "benchmarks" / "lpsc" / "zz_extra.xyz", labelled[:1])  # not in FILES: listed last
    corpus = []
    for i, a in enumerate(labelled):
        a = a.copy()
        a.info[CONFIG_TYPE_KEY] = ["molecule", "cluster"][i % 2]
        a.info["mode"] = ["rattle", "relax", "strain"][i % 3]
        corpus.append(a)
    for kind, fam in (("mptrj", None), ("omat", {"surface": 7, "defect": 2})):
        write_atomic(root / "corpora" / kind / "train.xyz", corpus[:5])
        write_atomic(root / "corpora" / kind / "valid.xyz", corpus[5:])
        summary = {"files": {"train.xyz": 5, "valid.xyz": 1, "failed": 2}, "seconds": 246.7, "seed": 0}
        if fam:
            summary["families"] = fam
        write_json(root / "corpora" / kind / "summary.json", summary)
    write_atomic(root / "corpora" / "test" / "test.xyz", corpus[1:4])
    found = root / "foundations" / "mp0"
    found.mkdir(parents=True)
    import torch

    torch.save(torch.nn.Linear(2, 3), found / "model.model")
    write_json(found / "trainable.json", {"trainable": 1234, "total": 5678, "fraction": 0.2, "heads": ["Default"]})
    pd.DataFrame({"epoch": [0.0, 1.0, 29.0], "split": "valid", "loss": [3.0, 2.0, 1.0]}).to_csv(
        found / "loss_curves.csv", index=False)
    rng = np.random.default_rng(0)
    rows = []
    for f in ("mp0", "omat_medium"):
        for dataset, level in (("test", "GFN1-xTB"), ("sn2", "GFN2-xTB"), ("nacl/test", "GFN2-xTB"),
                               ("lpsc", "GFN1-xTB"), ("unrelated", "")):
            rows.append({"foundation": f, "dataset": dataset, "level": level, "n_configs": 3, "n_atoms": 20,
                         "energy_rmse_mev_per_atom": rng.uniform(100, 3000),
                         "energy_rmse_refit_mev_per_atom": rng.uniform(1, 90),
                         "refit_rank": 3 if dataset == "lpsc" else 2, "n_elements": 3,
                         "force_rmse_mev_per_A": rng.uniform(100, 900), "force_mae_mev_per_A": rng.uniform(50, 500)})
    pd.DataFrame(rows).to_csv(tmp_path / "quality.csv", index=False)
    entries = {"benchmarks/*/*": {"level": "GFN2-xTB", "command": "python -m mlipft.mini.build benchmark"},
               "corpora/**/*": {"level": "GFN1-xTB", "command": "python -m mlipft.mini.build corpus"},
               "foundations/*/*": {"level": "GFN1-xTB", "command": "python -m mlipft.train | x"}}
    manifest.write(manifest.build(root, entries), root / "MANIFEST.tsv")
    return root, tmp_path / "quality.csv"


def _render(root, quality, tmp_path) -> str:
    (tmp_path / "f.json").write_text(json.dumps(FOUNDATIONS))
    datacard.main(["--data-dir", str(root), "--foundations", f"@{tmp_path / 'f.json'}",
                   "--benchmarks", json.dumps(BENCHMARKS), "--quality", str(quality),
                   "--manifest", str(root / "MANIFEST.tsv"), "--output", str(root / "README.md")])
    return (root / "README.md").read_text()


def test_benchmark_cards_and_files(scale, tmp_path):
    root, quality = scale
    text = _render(root, quality, tmp_path)
    for name in BENCHMARKS:
        card = importlib.import_module(f"mlipft.mini.{name}").CARD
        assert f"### {name}" in text
        assert f"**Stands for (paper):** {card['paper_counterpart']}" in text
        assert f"**Level of theory:** {card['level']}" in text
        assert f"**Elements:** {', '.join(card['elements'])}" in text
        for key in ("same", "different", "notes"):
            if key in card:
                assert card[key] in text
        if "mini" in card.get("sizes", {}):
            assert card["sizes"]["mini"] in text  # the scale's own size line
    assert "Ih: 48; II: 36; VI: 30; VIII: 24" in text  # ice's atoms_per_cell, a dict
    rows = {r["file"]: r for r in _tables(text, "### sn2")[0]}
    sn2 = importlib.import_module("mlipft.mini.sn2")
    assert list(rows) == [f"`{f}.xyz`" for f in sn2.FILES]
    for f in sn2.FILES:
        sizes = [len(a) for a in read(root / "benchmarks" / "sn2" / f"{f}.xyz", index=":")]
        row = rows[f"`{f}.xyz`"]
        assert int(row["count"]) == len(sizes)
        expected = str(min(sizes)) if min(sizes) == max(sizes) else f"{min(sizes)}–{max(sizes)}"
        assert row["atoms per configuration"] == expected
    assert rows["`train.xyz`"]["atoms per configuration"] == "2–8"  # HCl .. C2H6
    assert "**Generated in:** 43.6 s, seed 3 (summary.json)" in text
    assert "**Level (`level` of the xyz files):** GFN2-xTB\n" in text
    nacl = {r["file"]: r for r in _tables(text, "### nacl")[0]}
    assert nacl["`md_start.xyz`"]["atoms per configuration"] == "missing"
    assert nacl["`rdf_reference.csv`"]["count"] == "2" and nacl["`rdf_reference.csv`"]["unit"] == "data rows"
    assert nacl["`generation_info.json`"]["count"] == "2"
    assert "**Zero-shot test file:** `test.xyz`" in text
    lpsc = _tables(text, "### lpsc")[0]
    assert lpsc[-1]["file"] == "`zz_extra.xyz`" and lpsc[-1]["count"] == "1"
    assert {r["file"]: r["count"] for r in lpsc}["`heldout_other_argyrodites.xyz`"] == "2"
    assert all(r["atoms per configuration"] == "missing" for r in _tables(text, "### ice")[0]
               if r["file"].endswith(".xyz`"))


def test_generator_without_files(scale, tmp_path, monkeypatch):
    root, quality = scale
    monkeypatch.delattr(importlib.import_module("mlipft.mini.sn2"), "FILES")
    text = _render(root, quality, tmp_path)
    rows = _tables(text, "### sn2")[0]
    assert [r["file"] for r in rows] == sorted(f"`{p.name}`" for p in (root / "benchmarks" / "sn2").glob("*.xyz"))


def test_corpora_and_foundations(scale, tmp_path):
    root, quality = scale
    text = _render(root, quality, tmp_path)
    train = read_configs(root / "corpora" / "mptrj" / "train.xyz")
    rows = {r["file"]: r for r in _tables(text, "### mptrj")[0]}
    assert int(rows["`train.xyz`"]["configurations"]) == len(train)
    assert rows["`train.xyz`"]["atoms per configuration"] == f"{min(map(len, train))}–{max(map(len, train))}"
    valid = read_configs(root / "corpora" / "mptrj" / "valid.xyz")
    fams = pd.Series([a.info[CONFIG_TYPE_KEY] for a in train + valid]).value_counts().sort_index()
    assert ("**Families** (`config_type` of the xyz files): "
            + ", ".join(f"{k} {v}" for k, v in fams.items())) in text
    assert "**Families** (summary.json): defect 2, surface 7" in text  # omat's summary wins
    assert "**Failed labels (skipped and replaced):** 2 (summary.json)" in text
    assert "**Generated in:** 246.7 s, seed 0" in text
    found = {r["foundation"]: r for r in _tables(text, "## Foundations")[0]}
    assert found["mp0"]["trainable parameters"] == "1234" and found["mp0"]["total parameters"] == "5678"
    assert found["mp0"]["last epoch"] == "29"
    assert found["mp0"]["corpus"] == "mptrj (first 25% of train.xyz)"
    assert found["mp0"]["architecture"] == "r_max=4.5, num_channels=8, max_L=0"  # lr is not architecture
    assert found["omat_medium"]["model.model"] == "missing" and found["omat_medium"]["total parameters"] == "—"
    assert "- **mp0**: MP-0 | analogue" in text


def test_quality_tables_equal_the_csv(scale, tmp_path):
    root, quality = scale
    text = _render(root, quality, tmp_path)
    q = pd.read_csv(quality, keep_default_na=False).set_index(["foundation", "dataset"])
    (a,) = _tables(text, "#### (a) Common test set (`corpora/test/test.xyz`, dataset `test`)")
    assert [r["foundation"] for r in a] == ["mp0", "omat_medium"]
    for r in a:
        src = q.loc[(r["foundation"], "test")]
        assert r["E RMSE raw (meV/atom)"] == f"{src['energy_rmse_mev_per_atom']:.1f}"
        assert r["E RMSE, E0s refitted (meV/atom)"] == f"{src['energy_rmse_refit_mev_per_atom']:.1f}"
        assert r["F RMSE (meV/Å)"] == f"{src['force_rmse_mev_per_A']:.1f}"
        assert r["F MAE (meV/Å)"] == f"{src['force_mae_mev_per_A']:.1f}"
    (b,) = _tables(text, "#### (b) Benchmark test files")
    got = [(r["benchmark"], r["foundation"]) for r in b]
    assert got == [(x, f) for x in ("sn2", "nacl", "lpsc") for f in ("mp0", "omat_medium")]
    for r in b:
        dataset = "nacl/test" if r["benchmark"] == "nacl" else r["benchmark"]
        src = q.loc[(r["foundation"], dataset)]
        assert r["level"] == src["level"]
        assert r["E RMSE raw (meV/atom)"] == f"{src['energy_rmse_mev_per_atom']:.1f}"
        refit = f"{src['energy_rmse_refit_mev_per_atom']:.1f}"
        assert r["E RMSE, E0s refitted (meV/atom)"] == (refit + " *" if dataset == "lpsc" else refit)
        assert r["F MAE (meV/Å)"] == f"{src['force_mae_mev_per_A']:.1f}"
    assert "unrelated" not in text


def test_manifest_section_reports_the_check(scale, tmp_path):
    root, quality = scale
    text = _render(root, quality, tmp_path)
    frame = manifest.read(root / "MANIFEST.tsv")
    assert f"all {len(frame)} files match `MANIFEST.tsv`" in text
    (rows,) = _tables(text, "## Manifest")
    assert [r["file"] for r in rows] == [f"`{f}`" for f in frame["file"]]
    model = next(r for r in rows if r["file"] == "`foundations/mp0/model.model`")
    assert model["count"] == "9" and model["command"] == "[3]"  # nn.Linear(2, 3): 6 + 3 parameters
    assert "3. `python -m mlipft.train | x`" in text
    assert manifest.check(root, root / "MANIFEST.tsv", strict=True) == []  # README.md is not "unlisted"
    path = root / "benchmarks" / "sn2" / "valid_rp.xyz"
    lines = path.read_text().splitlines(keepends=True)
    i = next(i for i, c in enumerate(lines[2]) if c.isdigit())
    lines[2] = lines[2][:i] + str((int(lines[2][i]) + 1) % 10) + lines[2][i + 1:]  # one byte
    path.write_text("".join(lines))
    shutil.copy(path, root / "benchmarks" / "sn2" / "new.xyz")
    text = _render(root, quality, tmp_path)
    assert "2 problem(s): benchmarks/sn2/valid_rp.xyz: sha256 mismatch" in text
    assert "benchmarks/sn2/new.xyz: present under" in text


def test_markdown_table_escapes_and_formats():
    table = datacard.markdown_table(["a", "b", "c"], [["x|y", 1.25, None], [np.int64(3), float("nan"), "z"]])
    assert table.splitlines() == ["| a | b | c |", "| --- | --- | --- |", "| x\\|y | 1.2 | — |", "| 3 | — | z |"]
    atoms = Atoms("H")
    assert datacard.fmt(len(atoms)) == "1" and datacard.fmt(np.float64(2.346), 2) == "2.35"
