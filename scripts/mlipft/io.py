"""Small I/O helpers: atomic writes, so that a failing job never leaves a partial file."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ase is imported where it is used: the workflow imports this module at parse time
    from ase import Atoms


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def named_values(items: list[str] | None, option: str) -> dict[str, str]:
    """Command-line ``NAME=VALUE`` items of a repeated option as a dict; a malformed or repeated
    name exits with a message naming the option."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"{option} {item!r} is not of the form NAME=VALUE")
        if name in out:
            raise SystemExit(f"{option} {name!r} given twice")
        out[name] = value
    return out


def path_list(paths: str | Path | list) -> list:
    """One file or several (e.g. the corpora a foundation trains on together), as a list."""
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def write_atomic(path: str | Path, atoms_list: list[Atoms]) -> None:
    """Write configurations as extxyz, atomically, without calculator results."""
    from ase.io import write

    clean = []
    for atoms in atoms_list:
        a = atoms.copy()
        a.calc = None
        clean.append(a)
    with atomic_path(path) as tmp:
        write(tmp, clean, format="extxyz")


def read_configs(path: str | Path) -> list[Atoms]:
    """Read every frame of an extxyz file (a clear error names the file)."""
    from ase.io import read

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        return read(path, index=":", format="extxyz")
    except Exception as err:
        raise ValueError(f"cannot read {path} as extxyz: {err}") from err


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def xyz_frame_sizes(path: str | Path) -> list[int]:
    """Atoms per frame of an (ext)xyz file, from the count lines only (the atom lines are skipped)."""
    sizes = []
    with open(path) as handle:
        for line in handle:
            if not line.strip():  # trailing blank lines
                continue
            try:
                n = int(line.split()[0])
            except ValueError:
                raise ValueError(f"{path}: frame {len(sizes)} does not start with an atom count: "
                                 f"{line[:60]!r}") from None
            skipped = sum(1 for _ in itertools.islice(handle, n + 1))
            if skipped != n + 1:
                raise ValueError(f"{path}: frame {len(sizes)} is truncated ({skipped} of {n + 1} lines)")
            sizes.append(n)
    return sizes
