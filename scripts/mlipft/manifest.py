"""Manifest of committed artifacts: one TSV row per file with its sha256, size, count and origin.

Columns (TSV, sorted by ``file``): ``file`` (path relative to the root), ``sha256``, ``bytes``,
``count``, ``level``, ``command``. ``count`` is the number of configurations of an ``.xyz``
file (read from the extxyz frame headers), the data rows of a ``.csv``, the top-level keys (or
items) of a ``.json`` and the parameters of a ``.model``; empty for other files.

:func:`check` compares a root with its manifest: missing files, sha256 mismatches and, with
``strict=True``, files under the root the manifest does not list. The manifest itself, the data
card rendered from it (``README.md``, see :mod:`mlipft.datacard`) and hidden files (dot files,
e.g. the temporary files of :func:`mlipft.io.atomic_path`) are never "unlisted".

CLI::

    python -m mlipft.manifest build --root DIR --entries JSON_OR_@FILE --output MANIFEST.tsv
    python -m mlipft.manifest check --root DIR --manifest MANIFEST.tsv [--strict] [--ignore GLOB ...]

``--entries`` maps paths relative to the root (or glob patterns, e.g. ``benchmarks/sn2/*.xyz``;
a pattern never matches the top-level ``MANIFEST.tsv``/``README.md`` or hidden files; a later
key overrides an earlier one for the same file) to ``{"level": ..., "command": ...}``;
``@file.json`` reads it from a file. ``check`` exits 1
and prints one line per problem, naming the file.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import glob
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd

from .io import atomic_path, xyz_frame_sizes

COLUMNS = ["file", "sha256", "bytes", "count", "level", "command"]
ALWAYS_IGNORED = ("MANIFEST.tsv", "README.md")


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def count(path: str | Path) -> int | None:
    """Configurations (.xyz), data rows (.csv), top-level keys (.json), parameters (.model)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xyz", ".extxyz"):
        return len(xyz_frame_sizes(path))
    if suffix == ".csv":
        with open(path, newline="") as handle:
            rows = sum(1 for row in csv.reader(handle) if row)
        return max(rows - 1, 0)
    if suffix == ".json":
        obj = json.loads(path.read_text())
        return len(obj) if isinstance(obj, dict | list) else 1
    if suffix == ".model":
        import torch

        model = torch.load(str(path), map_location="cpu", weights_only=False)
        return int(sum(p.numel() for p in model.parameters()))
    return None


def expand(root: str | Path, entries: dict[str, dict]) -> dict[str, dict]:
    """Entries with glob patterns replaced by the files they match (relative to ``root``)."""
    root = Path(root)
    out: dict[str, dict] = {}
    for key, meta in entries.items():
        if isinstance(meta, str):
            meta = {"level": meta}
        if glob.has_magic(key):
            matches = sorted(rel for rel in (Path(p).relative_to(root).as_posix()
                                             for p in glob.glob(str(root / key), recursive=True) if Path(p).is_file())
                             if not _ignored(rel, ALWAYS_IGNORED))
            if not matches:
                raise FileNotFoundError(f"manifest entry {key!r} matches no file under {root}")
        else:
            matches = [Path(key).as_posix()]
        for rel in matches:
            out[rel] = meta  # an explicit entry after a pattern overrides it
    return out


def build(root: str | Path, entries: dict[str, dict]) -> pd.DataFrame:
    """The manifest of ``entries`` (``{relative path or glob: {"level", "command"}}``)."""
    root = Path(root)
    rows = []
    for rel, meta in expand(root, entries).items():
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(f"manifest entry {rel!r}: no file {path}")
        rows.append({"file": rel, "sha256": sha256(path), "bytes": path.stat().st_size, "count": count(path),
                     "level": str(meta.get("level", "")), "command": str(meta.get("command", ""))})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["count"] = frame["count"].astype("Int64")
    return frame.sort_values("file").reset_index(drop=True)


def write(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def read(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a manifest (no columns {missing})")
    return frame


def _ignored(rel: str, patterns) -> bool:
    parts = rel.split("/")
    return any(p.startswith(".") for p in parts) or any(fnmatch.fnmatch(rel, pat) for pat in patterns)


def check(root: str | Path, manifest_path: str | Path, strict: bool = False,
          ignore: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Problems of ``root`` against its manifest, one line each, naming the file."""
    root = Path(root)
    manifest_path = Path(manifest_path)
    frame = read(manifest_path)
    problems = []
    for rel in frame.loc[frame["file"].duplicated(), "file"]:
        problems.append(f"{rel}: listed twice in {manifest_path}")
    for row in frame.itertuples(index=False):
        path = root / row.file
        if not path.is_file():
            problems.append(f"{row.file}: missing (listed in {manifest_path})")
            continue
        digest = sha256(path)
        if digest != row.sha256:
            problems.append(f"{row.file}: sha256 mismatch ({digest[:12]}... is not the manifest's "
                            f"{row.sha256[:12]}...; {path.stat().st_size} bytes, manifest {row.bytes})")
    if strict:
        listed = set(frame["file"])
        patterns = [*ALWAYS_IGNORED, *ignore]
        try:
            patterns.append(manifest_path.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            pass
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if rel not in listed and not _ignored(rel, patterns):
                problems.append(f"{rel}: present under {root} but not in the manifest {manifest_path}")
    return problems


def _entries(text: str) -> dict:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    entries = json.loads(text)
    if not isinstance(entries, dict):
        raise SystemExit("--entries must be a JSON object {path: {level, command}}")
    return entries


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="write the manifest of the given files")
    b.add_argument("--root", required=True)
    b.add_argument("--entries", required=True, help="JSON {path or glob: {level, command}} or @file.json")
    b.add_argument("--output", required=True)
    c = sub.add_parser("check", help="check files against a manifest (exit 1 on problems)")
    c.add_argument("--root", required=True)
    c.add_argument("--manifest", required=True)
    c.add_argument("--strict", action="store_true", help="files under --root must all be listed")
    c.add_argument("--ignore", action="append", default=[], help="glob of files --strict does not require")
    args = parser.parse_args(argv)
    if args.action == "build":
        frame = build(args.root, _entries(args.entries))
        write(frame, args.output)
        print(f"{args.output}: {len(frame)} files")
        return
    problems = check(args.root, args.manifest, strict=args.strict, ignore=args.ignore)
    for line in problems:
        print(line)
    if problems:
        sys.exit(1)
    print(f"{args.manifest}: all files under {args.root} match")


if __name__ == "__main__":
    main()
