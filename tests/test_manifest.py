"""mlipft.manifest: sha256/count manifest of committed artifacts and its check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.io import read

from mlipft import manifest
from mlipft.io import write_atomic, write_json, xyz_frame_sizes
from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY

ROOT = Path(__file__).resolve().parents[1]


def _frames(n: int, seed: int = 0) -> list[Atoms]:
    """Labelled frames of varied size and kind: molecules, a periodic cell with stress, isolated atoms."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 1 + (i * 7) % 12
        a = Atoms(["C", "H", "O"][i % 3] + f"H{k}", positions=rng.normal(0, 2, (k + 1, 3)))
        if i % 4 == 1:
            a.cell, a.pbc = np.eye(3) * 9.0, True
            a.info[STRESS_KEY] = rng.normal(0, 0.01, 6)
        if i % 5 == 4:
            a = Atoms("O")
            a.info[CONFIG_TYPE_KEY] = ISOLATED_ATOM
        a.info[ENERGY_KEY] = float(rng.normal())
        a.info["note"] = f"frame {i} with 2 words"
        a.arrays[FORCES_KEY] = rng.normal(size=(len(a), 3))
        out.append(a)
    return out


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "scale"
    write_atomic(root / "benchmarks" / "b" / "test.xyz", _frames(11))
    write_atomic(root / "benchmarks" / "b" / "train.xyz", _frames(4, 1))
    write_atomic(root / "corpora" / "c" / "empty.xyz", [])
    write_json(root / "benchmarks" / "b" / "summary.json", {"files": {"test.xyz": 11}, "seconds": 1.5, "seed": 0})
    rdf = pd.DataFrame({"r": [0.1, 0.2, 0.3], "g": [0.0, 1.0, 2.0]})
    rdf.to_csv(root / "benchmarks" / "b" / "rdf.csv", index=False)
    entries = {
        "benchmarks/b/*.xyz": {"level": "GFN2-xTB", "command": "python -m mlipft.mini.build benchmark b"},
        "benchmarks/b/summary.json": {"level": "", "command": "python -m mlipft.mini.build benchmark b"},
        "benchmarks/b/rdf.csv": {"level": "GFN2-xTB", "command": "x\ty"},
        "corpora/c/empty.xyz": {"level": "GFN1-xTB", "command": "c"},
    }
    return root, entries


def _ase_sizes(path: Path) -> list[int]:
    return [len(a) for a in read(path, index=":", format="extxyz")] if path.stat().st_size else []


def test_frame_counts_equal_ase(tree):
    root, _ = tree
    for path in root.rglob("*.xyz"):
        assert xyz_frame_sizes(path) == _ase_sizes(path), path
    assert len(xyz_frame_sizes(root / "benchmarks/b/test.xyz")) == 11


def test_frame_counts_of_committed_files():
    files = sorted((ROOT / "data").glob("mini/*/*/*/*.xyz"))[:8]
    if not files:
        pytest.skip("no committed mini-world xyz file yet")
    for path in files:
        assert xyz_frame_sizes(path) == _ase_sizes(path), path


def test_truncated_xyz_is_an_error(tmp_path):
    write_atomic(tmp_path / "a.xyz", _frames(3))
    lines = (tmp_path / "a.xyz").read_text().splitlines(keepends=True)
    (tmp_path / "a.xyz").write_text("".join(lines[:-1]))
    with pytest.raises(ValueError, match=r"a\.xyz: frame 2 is truncated"):
        xyz_frame_sizes(tmp_path / "a.xyz")


def test_build_columns_counts_and_roundtrip(tree):
    import torch

    root, entries = tree
    foundation = root / "foundations" / "f" / "model.model"
    foundation.parent.mkdir(parents=True)
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)), foundation)  # 21 parameters
    entries["foundations/f/model.model"] = {"level": "GFN1-xTB", "command": "mace_run_train"}
    frame = manifest.build(root, entries)
    assert list(frame.columns) == manifest.COLUMNS
    assert list(frame["file"]) == sorted(frame["file"])
    counts = dict(zip(frame["file"], frame["count"]))
    assert counts == {
        "benchmarks/b/rdf.csv": 3, "benchmarks/b/summary.json": 3, "benchmarks/b/test.xyz": 11,
        "benchmarks/b/train.xyz": 4, "corpora/c/empty.xyz": 0,
        "foundations/f/model.model": 3 * 4 + 4 + 4 * 1 + 1,
    }
    row = frame.set_index("file").loc["benchmarks/b/test.xyz"]
    assert row["bytes"] == (root / "benchmarks/b/test.xyz").stat().st_size
    assert row["sha256"] == manifest.sha256(root / "benchmarks/b/test.xyz")
    assert row["level"] == "GFN2-xTB"
    out = root / "MANIFEST.tsv"
    manifest.write(frame, out)
    back = manifest.read(out)
    assert list(back["command"]) == list(frame["command"])  # a tab inside a command survives
    assert manifest.check(root, out, strict=True) == []


def test_one_byte_change_is_named(tree):
    root, entries = tree
    manifest.write(manifest.build(root, entries), root / "MANIFEST.tsv")
    target = root / "benchmarks/b/train.xyz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    problems = manifest.check(root, root / "MANIFEST.tsv")
    assert len(problems) == 1 and problems[0].startswith("benchmarks/b/train.xyz: sha256 mismatch")


def test_missing_and_unlisted_files(tree, capsys):
    root, entries = tree
    manifest.main(["build", "--root", str(root), "--entries", json.dumps(entries),
                   "--output", str(root / "MANIFEST.tsv")])
    (root / "benchmarks/b/rdf.csv").unlink()
    (root / "benchmarks/b/extra.xyz").write_text("")
    (root / "README.md").write_text("data card\n")  # rendered from the manifest: never required
    (root / "benchmarks/b/.test.xyz.123.tmp").write_text("")  # hidden: never required
    listed_in = root / "MANIFEST.tsv"
    assert manifest.check(root, root / "MANIFEST.tsv") == [f"benchmarks/b/rdf.csv: missing (listed in {listed_in})"]
    strict = manifest.check(root, root / "MANIFEST.tsv", strict=True)
    assert [p.split(":")[0] for p in strict] == ["benchmarks/b/rdf.csv", "benchmarks/b/extra.xyz"]
    assert manifest.check(root, root / "MANIFEST.tsv", strict=True, ignore=["*/extra.xyz"])[1:] == []
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        manifest.main(["check", "--root", str(root), "--manifest", str(root / "MANIFEST.tsv"), "--strict"])
    assert exc.value.code == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["benchmarks/b/rdf.csv", "benchmarks/b/extra.xyz"]


def test_entries_from_file_and_bad_entries(tree, tmp_path):
    root, entries = tree
    (tmp_path / "entries.json").write_text(json.dumps(entries))
    manifest.main(["build", "--root", str(root), "--entries", f"@{tmp_path / 'entries.json'}",
                   "--output", str(tmp_path / "m.tsv")])
    assert len(manifest.read(tmp_path / "m.tsv")) == 5
    with pytest.raises(FileNotFoundError, match="nothing.xyz"):
        manifest.build(root, {"nothing.xyz": {"level": "", "command": ""}})
    with pytest.raises(FileNotFoundError, match="matches no file"):
        manifest.build(root, {"nothing/*.xyz": {"level": "", "command": ""}})


def test_committed_manifest():
    manifests = sorted((ROOT / "data" / "mini").glob("*/MANIFEST.tsv"))
    if not manifests:
        pytest.skip("no data/mini/*/MANIFEST.tsv committed yet")
    for path in manifests:
        assert manifest.check(path.parent, path, strict=True) == [], path
