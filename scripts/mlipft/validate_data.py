"""Validate dataset files before any expensive job, with a message naming file, frame and problem.

mace-torch is lenient with its inputs: a frame without forces is dropped silently (it trains on
23 of 24 frames), and a NaN energy passes subsampling and the E0 fit, so that a from-scratch run
trains a NaN model hours later. This module checks every file first and collects *all* the
problems of a file (the first ``MAX_LISTED`` are listed, with the total count) into one
:class:`DataError` whose message starts with the file's path, one ``frame <i>: <problem>`` line
each (``i`` is the 0-based index of the frame in the file, as ``ase.io.read(path, index=i)``).

Conventions (:mod:`mlipft.keys`): ``REF_energy`` (info, total energy, eV), ``REF_forces``
(arrays, eV/Angstrom, shape (n_atoms, 3)), ``REF_stress`` (info, eV/Angstrom^3, Voigt 6 or 3x3);
isolated-atom rows have ``config_type == "IsolatedAtom"`` and carry only an energy.

Rules of :func:`check_file` (``role`` is one of :data:`ROLES`):

1. The file exists and parses as extxyz (a parse error is re-raised as a :class:`DataError`
   naming the file, the frame and the line where reading failed: a count line that is not an
   integer, an atom line with another number of columns than the frame's first, the end of the
   file inside a frame, or else the line range of the frame ase's reader stopped at; a blank
   line between frames, where ase's reader stops without an error and drops the frames after
   it, is one too). A file of any role but ``isolated`` has at least one configuration that is
   not an isolated atom (an empty file, or one with isolated-atom rows only, trains or evaluates on
   nothing); an ``isolated`` file has at least one row, and every row is an isolated atom.
2. Every configuration (non-isolated frame) has a numeric, finite ``REF_energy`` and a finite
   numeric ``REF_forces`` of shape (n_atoms, 3). ``REF_stress``, where present (required with
   ``require_stress``), has 6 (Voigt) or 9 (3x3) finite components: mace reads it whenever it is
   there, so a malformed one breaks a run even where stress is not trained on.
3. Every isolated-atom row has exactly one atom and a numeric, finite ``REF_energy``; an element
   has at most one isolated-atom row per file (two would make the E0 ambiguous).
4. Elements: every element of the file is among ``elements`` (the foundation model's atomic
   numbers), and among ``isolated_elements`` (those with an isolated-atom energy), when given;
   one problem per missing element, at the first frame that has it, with the count of such frames.
   An ``isolated`` file is not held to ``elements``: an isolated-atom energy for an element the
   foundation lacks is never used, so it is harmless.
5. Unit sanity, per configuration, with the bounds below and their reasoning:

   - Binding energy per atom, ``(E - sum_i E_iso(Z_i)) / n_atoms``, within ``energy_bounds``
     (default :data:`ENERGY_BOUNDS` = (-20, +5) eV/atom). It needs isolated-atom energies:
     ``isolated_elements`` given as a mapping ``{Z or symbol: energy}`` (what
     :func:`mlipft.e0s.isolated_from_file` returns), completed by the file's own isolated-atom
     rows; frames with an element lacking one are skipped (rule 4 names them) and, with no
     energies at all, the check is skipped and the report says so. Raw energies per atom are
     not bounded: they depend on the code's reference (PAW energies near 0, all-electron ones
     thousands of eV per atom). Physically the most strongly bound solids have cohesive energies
     of 8-9 eV/atom (W 8.9, diamond 7.4), molecules less per atom (CO 5.6, N2 4.9); an approximate
     isolated-atom reference (spin, another code or level) shifts this by a few eV/atom; the
     committed mini data (GFN2-xTB) lie in -6.5 .. -4.0 eV/atom. So -20 leaves a 2x margin. A
     positive binding energy means less stable than the separated atoms: only strongly compressed
     frames get there, +5 eV/atom is far beyond any sensible training frame. What it catches:

     * kcal/mol written as eV (x23.06): with consistent isolated atoms the binding energy is
       multiplied by 23, so any configuration bound by more than 0.87 eV/atom lands below -20;
       with isolated atoms in eV the per-atom energy x23 is far below -20 for any |E|/n > 1 eV.
       kJ/mol (x96.5) a fortiori.
     * Hartree written as eV (/27.2) with isolated atoms in eV: the binding energy becomes
       about ``-0.963 * mean E_iso + b/27.2``, above +5 whenever the isolated-atom energies
       average below about -5.4 eV/atom, i.e. for all-electron, Gaussian-basis and xTB references
       (+39.6 eV/atom for the ice water here). Not caught: Hartree data with PAW-style
       isolated atoms near 0 eV, or data and isolated atoms both in Hartree (a binding of
       ~ -0.2 eV/atom is plausible for a weakly bound system). The reverse (isolated atoms in
       Hartree, data in eV) lands below -20 for the same references.

   - Per-atom force norm at most ``max_force`` (default :data:`MAX_FORCE` = 50 eV/Angstrom).
     Thermal MD and rattled frames have forces up to 10-20 eV/Angstrom (committed data: at most
     19.5, in lpsc's held-out argyrodites); 50 eV/Angstrom means overlapping cores.
     kcal/mol/Angstrom written as eV/Angstrom (x23.06) is caught in every frame whose true
     largest force exceeds 50/23.06 = 2.2 eV/Angstrom (most thermal frames: every committed file
     has such frames, except the relaxed torsion scans and NEB paths), kJ/mol/Angstrom (x96.5)
     above 0.52 eV/Angstrom. Hartree/Bohr written as eV/Angstrom (/51.4) makes forces smaller
     and is not caught.
   - Stress components at most ``max_stress`` in magnitude (default :data:`MAX_STRESS` = 5
     eV/Angstrom^3 = 801 GPa, twice the pressure at the Earth's centre; committed data: at most
     0.12 = 19 GPa). Catches kbar written as eV/Angstrom^3 (x1602) whenever the true largest
     component exceeds 0.003 eV/Angstrom^3 (0.5 GPa), GPa (x160.2) above 0.031 (5 GPa).

6. Geometry, per configuration: finite positions (and a finite cell), a periodic cell that is
   not singular (no periodic direction shorter than :data:`MIN_CELL_LENGTH`, no zero volume, or
   zero area for two periodic directions, :data:`CELL_SINGULAR_TOL`), and no two atoms closer than
   :data:`MIN_DISTANCE` (periodic images included; the closest pair is named, with the count of
   the others). A frame with non-finite positions is left out of the distance check and of the
   duplicate check below.

:func:`check_duplicates` (``--disjoint``): no configuration occurs in two files of different
roles among those given (e.g. train/valid/test: a test frame in the training set leaks the test);
identical means the same atomic numbers in the same order, positions within ``POSITION_TOL`` =
1e-8 Angstrom (the resolution extxyz writes: 8 decimals), the same cell (same tolerance) and pbc.
Isolated-atom rows are exempt, and two files of one role (train.xyz and its part train_Ih.xyz)
are not compared. Each pair is named by both files and frame indices. Frames are bucketed by a
hash of their atomic numbers and summed positions, so the check is linear in the frame count.

CLI, for a workflow rule that runs before any training::

    python -m mlipft.validate_data --file train=train.xyz --file valid=valid.xyz --file test=test.xyz \\
        [--stress train,valid,test] [--foundation model.model] [--isolated isolated_atoms.xyz] \\
        [--disjoint train,valid,test] --report report.json

It checks every file (the ``--isolated`` file too, role ``isolated``), writes the JSON report
(per file: role, frames, elements, energy/binding/force/stress ranges, problems, skipped checks,
seconds) atomically only when every check passes, and otherwise removes a stale report, prints
every file's message on stderr and exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import sys
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.cell import Cell
from ase.data import atomic_numbers, chemical_symbols
from ase.neighborlist import neighbor_list

from .io import read_configs, write_json, xyz_frame_sizes
from .keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY

ROLES = ("train", "valid", "test", "replay", "evalset", "isolated")
ENERGY_BOUNDS = (-20.0, 5.0)  # binding energy per atom, eV/atom (module docstring)
MAX_FORCE = 50.0  # eV/Angstrom, per-atom force norm
MAX_STRESS = 5.0  # eV/Angstrom^3 (801 GPa), largest stress component in magnitude
EV_PER_A3_IN_GPA = 160.21766208
MAX_LISTED = 20  # problems listed in a message (the total is always given)
POSITION_TOL = 1e-8  # Angstrom, for identical frames
#: Smallest distance between two atoms (Angstrom; periodic images included). mace's radial basis
#: is a Bessel function sin(n pi r / r_max) / r, NaN at r = 0 (two atoms at one position make the
#: whole model's energy and every gradient NaN), and its edge vectors are normalised by r; and no
#: real structure comes close: the shortest bond, H2's, is 0.74 A, and the committed mini data's
#: shortest distance is far above 0.1 A. Two atoms this close are a duplicated atom or a unit error.
MIN_DISTANCE = 0.1
#: Shortest periodic cell vector (Angstrom): a shorter one (a zero cell with pbc) makes the cell
#: singular; mace's neighbour list then pairs each atom with its own images at zero distance.
MIN_CELL_LENGTH = 1e-6
#: A periodic cell is singular when its volume (two periodic directions: its area) is below this
#: fraction of the product of its vector lengths (coplanar or parallel vectors): its inverse,
#: which wraps positions and builds the neighbour list, does not exist.
CELL_SINGULAR_TOL = 1e-6


class DataError(ValueError):
    """A dataset file breaks a rule; the message starts with the file's path. ``report`` is the
    file's :class:`Report` where :func:`check_file` got that far."""

    report: Report | None = None


@dataclass
class Report:
    """What :func:`check_file` found in one file (the JSON report's entry for it)."""

    path: str
    role: str
    frames: int = 0
    isolated_frames: int = 0
    elements: list[str] = field(default_factory=list)
    energy_per_atom: list[float] | None = None  # [min, max], eV/atom, total energies
    binding_energy_per_atom: list[float] | None = None  # [min, max], eV/atom
    force_norm: list[float] | None = None  # [min, max] over atoms, eV/Angstrom
    stress_max_abs: float | None = None  # eV/Angstrom^3
    stress_frames: int = 0
    isolated_energies: dict[str, float] = field(default_factory=dict)  # symbol -> eV, own rows
    problems: list[str] = field(default_factory=list)  # the first MAX_LISTED
    n_problems: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _z(element: int | str) -> int:
    return atomic_numbers[element] if isinstance(element, str) else int(element)


def _symbols(numbers: Collection[int]) -> list[str]:
    return [chemical_symbols[z] for z in sorted(numbers)]


def _frames_have(n: int) -> str:
    return "1 frame has" if n == 1 else f"{n} frames have"


def _is_isolated(atoms: Atoms) -> bool:
    return atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM


def _range(values: list[float]) -> list[float] | None:
    return [float(np.min(values)), float(np.max(values))] if values else None


def _energy(atoms: Atoms) -> tuple[float | None, str | None]:
    """``(energy, None)`` or ``(None, problem)``."""
    if ENERGY_KEY not in atoms.info:
        return None, f"no {ENERGY_KEY}"
    value = atoms.info[ENERGY_KEY]
    try:
        energy = float(value)
    except (TypeError, ValueError):
        return None, f"{ENERGY_KEY} is not a number: {str(value)[:40]!r}"
    if not math.isfinite(energy):
        return None, f"{ENERGY_KEY} is not finite ({energy})"
    return energy, None


def _nonfinite(values: np.ndarray) -> str:
    bad = values[~np.isfinite(values)]
    return f"{bad.size} non-finite value(s) ({', '.join(sorted({str(v) for v in bad}))})"


def _forces(atoms: Atoms) -> tuple[np.ndarray | None, str | None]:
    if FORCES_KEY not in atoms.arrays:
        return None, f"no {FORCES_KEY}"
    forces = atoms.arrays[FORCES_KEY]
    if forces.shape != (len(atoms), 3):
        return None, f"{FORCES_KEY} has shape {forces.shape}, expected ({len(atoms)}, 3)"
    if not np.issubdtype(forces.dtype, np.number):
        return None, f"{FORCES_KEY} is not numeric (dtype {forces.dtype})"
    if not np.isfinite(forces).all():
        return None, f"{FORCES_KEY} has {_nonfinite(forces)}"
    return forces, None


def _stress(atoms: Atoms, required: bool) -> tuple[np.ndarray | None, str | None]:
    if STRESS_KEY not in atoms.info:
        return None, (f"no {STRESS_KEY} (required for this file)" if required else None)
    try:
        stress = np.asarray(atoms.info[STRESS_KEY], dtype=float)
    except (TypeError, ValueError):
        return None, f"{STRESS_KEY} is not numeric: {str(atoms.info[STRESS_KEY])[:40]!r}"
    if stress.size not in (6, 9):
        return None, f"{STRESS_KEY} has {stress.size} components, expected 6 (Voigt) or 9 (3x3)"
    if not np.isfinite(stress).all():
        return None, f"{STRESS_KEY} has {_nonfinite(stress)}"
    return stress, None


def _finite_geometry(atoms: Atoms) -> bool:
    return bool(np.isfinite(atoms.positions).all() and np.isfinite(atoms.cell.array).all())


def _close_pairs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, d)``: the pairs of atoms closer than ``cutoff`` (Angstrom), each once (``i < j``,
    or ``i == j`` for an atom and one of its own periodic images), periodic images included: what
    ``ase.neighborlist.neighbor_list`` finds, from a k-d tree over the wrapped atoms and their 26
    neighbouring images (ase's binning costs ~5 ms on a 48-atom periodic frame, this ~0.3 ms);
    ase's own search where one layer of images is not enough (a lattice plane spacing below
    ``cutoff``). The cell must be finite and, in its periodic directions, not singular."""
    from scipy.spatial import cKDTree

    pos = atoms.positions
    periodic = np.flatnonzero(atoms.pbc)
    if periodic.size == 0:
        pairs = cKDTree(pos).query_pairs(cutoff, output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        return i, j, np.linalg.norm(pos[j] - pos[i], axis=1)
    cell = atoms.cell.array.copy()
    cell[~atoms.pbc] = 0.0  # a non-periodic direction's vector plays no part: an orthogonal unit vector
    cell = np.asarray(Cell(cell).complete())
    inverse = np.linalg.inv(cell)
    spacing = 1.0 / np.linalg.norm(inverse, axis=0)  # distance between lattice planes, per direction
    if (spacing[periodic] <= cutoff).any():
        i, j, d, shift = neighbor_list("ijdS", atoms, cutoff)
        first = shift[np.arange(len(shift)), np.argmax(shift != 0, axis=1)]  # the first nonzero component
        keep = (i < j) | ((i == j) & (first > 0))  # a pair once, an atom and an image once (not also -S)
        return i[keep], j[keep], d[keep]
    frac = pos @ inverse
    frac[:, periodic] %= 1.0
    wrapped = frac @ cell
    shifts = np.zeros((3 ** periodic.size, 3))
    shifts[:, periodic] = list(itertools.product((-1, 0, 1), repeat=periodic.size))
    images = (wrapped[None, :, :] + (shifts @ cell)[:, None, :]).reshape(-1, 3)
    found = cKDTree(wrapped).sparse_distance_matrix(cKDTree(images), cutoff, output_type="ndarray")
    n, middle = len(atoms), len(shifts) // 2  # the middle shift is (0, 0, 0)
    i, j, s = found["i"], found["j"] % n, found["j"] // n
    keep = (i < j) | ((i == j) & (s > middle))  # shifts past the middle: one of S and -S
    return i[keep], j[keep], found["v"][keep]


def _geometry(atoms: Atoms) -> list[str]:
    """Problems of a configuration's positions and cell (rule 6)."""
    positions, cell = atoms.positions, atoms.cell.array
    problems = []
    if not np.isfinite(positions).all():
        problems.append(f"positions have {_nonfinite(positions)}")
    if not np.isfinite(cell).all():
        problems.append(f"cell has {_nonfinite(cell)}")
    if problems:
        return problems
    periodic = np.flatnonzero(atoms.pbc)
    lengths = np.linalg.norm(cell, axis=1)
    short = [int(k) for k in periodic if lengths[k] < MIN_CELL_LENGTH]
    if short:
        directions = f"periodic direction{'s' * (len(short) > 1)} {', '.join(map(str, short))}"
        shown = ", ".join(f"{lengths[k]:.3g}" for k in short)
        return [(f"singular periodic cell: {directions} with a cell vector shorter than {MIN_CELL_LENGTH:g} A "
                 f"(length {shown} A; pbc {atoms.pbc.tolist()})")]
    if len(periodic) >= 2:
        unit = cell[periodic] / lengths[periodic, None]
        measure = math.sqrt(max(float(np.linalg.det(unit @ unit.T)), 0.0))  # |volume| / product of lengths
        if measure < CELL_SINGULAR_TOL:
            if len(periodic) == 3:
                volume = abs(float(np.linalg.det(cell)))
                return [f"singular periodic cell: volume {volume:.3g} A^3 (its vectors are coplanar)"]
            a, b = (int(k) for k in periodic)
            return [f"singular periodic cell: the cell vectors of periodic directions {a} and {b} are parallel (zero area)"]
    i, j, d = _close_pairs(atoms, MIN_DISTANCE)
    if d.size:
        k = int(np.argmin(d))
        pair = (f"atom {i[k]} is {d[k]:.3g} A from its own periodic image" if i[k] == j[k]
                else f"atoms {i[k]} and {j[k]} are {d[k]:.3g} A apart")
        others = len(d) - 1
        problems.append(f"{pair} (below {MIN_DISTANCE:g} A)" + (f" and {others} more pair{'s' * (others > 1)}"
                                                                 if others else ""))
    return problems


class _Problems:
    """Problems of one file, in the order found; ``frame`` None for file-level ones. ``numbers``:
    the frame index written for each position of the frames checked (default: the position)."""

    def __init__(self, numbers: Sequence[int] | None = None) -> None:
        self.lines: list[str] = []
        self.numbers = numbers

    def add(self, frame: int | None, problem: str) -> None:
        if frame is not None and self.numbers is not None:
            frame = self.numbers[frame]
        self.lines.append(problem if frame is None else f"frame {frame}: {problem}")

    def raise_if_any(self, path: Path, role: str, report: Report) -> None:
        report.n_problems = len(self.lines)
        report.problems = self.lines[:MAX_LISTED]
        if not self.lines:
            return
        n = len(self.lines)
        listed = "\n".join(f"  {line}" for line in report.problems)
        more = f"\n  ... and {n - MAX_LISTED} more ({n} problems in total)" if n > MAX_LISTED else ""
        error = DataError(f"{path}: {n} problem{'s' * (n != 1)} in this {role} file:\n{listed}{more}")
        error.report = report
        raise error


def read_file(path: str | Path, role: str) -> list[Atoms]:
    """Every frame of ``path``; a missing or unparsable file is a :class:`DataError` naming it
    (and where parsing failed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {role} file not found")
    try:
        frames = read_configs(path)
    except ValueError as err:  # read_configs wraps every parse error of ase
        raise DataError(f"{path}: cannot be parsed as extxyz ({role} file): {_parse_failure(path)}: "
                        f"{err.__cause__ or err}") from err
    try:  # ase's reader stops at a blank line between frames without a word: the rest is lost
        complete = len(xyz_frame_sizes(path)) == len(frames)
    except ValueError:
        complete = False
    if not complete:
        raise DataError(f"{path}: cannot be parsed as extxyz ({role} file): {_parse_failure(path, len(frames))}: "
                        f"ase's reader stops there without an error, after {len(frames)} frame(s)")
    return frames


def _parse_failure(path: Path, read: int | None = None) -> str:
    """Where reading ``path`` fails: ``frame <i>, line <n>: <why>`` for the first defect of the
    file's layout (a count line, a blank line between frames, an atom line of another width than
    the frame's first, the file ending inside a frame), else the frame ase's reader stopped at
    (``read``: the frames it read; counted here when not given), ``frame <i> (lines <a>-<b>)``;
    lines count from 1."""
    if read is None:
        from ase.io import iread

        read = 0
        with contextlib.suppress(Exception):  # any complaint of ase: the frames before it were read
            for _ in iread(str(path), index=":", format="extxyz"):
                read += 1
    lines = path.read_text(errors="replace").splitlines()
    spans = []  # (first line, last line) of each frame, from 1
    start = 0
    while start < len(lines):
        frame = len(spans)
        if not lines[start].strip():
            if not any(line.strip() for line in lines[start:]):
                break  # trailing blank lines
            return f"frame {frame}, line {start + 1}: a blank line where the frame's atom count is expected"
        try:
            n = int(lines[start].split()[0])
        except ValueError:
            return f"frame {frame}, line {start + 1}: not an atom count: {lines[start][:40]!r}"
        atom_lines = lines[start + 2:start + 2 + n]
        widths = [len(line.split()) for line in atom_lines]
        odd = next((k for k, w in enumerate(widths) if w != widths[0]), None)
        ends = start + 2 + n > len(lines)
        end_note = f"the file ends inside this frame ({len(atom_lines)} of {n} atom lines)"
        if odd is not None:
            return (f"frame {frame}, line {start + 3 + odd}: {widths[odd]} columns where the frame's first atom line "
                    f"has {widths[0]}" + (f"; {end_note}" if ends else ""))
        if ends:
            return f"frame {frame}, line {len(lines)}: {end_note}"
        spans.append((start + 1, start + 2 + n))
        start += n + 2
    if read < len(spans):
        return f"frame {read} (lines {spans[read][0]}-{spans[read][1]})"
    return f"frame {read}"


def check_file(path: str | Path, role: str, *, require_stress: bool = False,
               elements: Collection[int | str] | None = None,
               isolated_elements: Mapping[int | str, float] | Collection[int | str] | None = None,
               energy_bounds: tuple[float, float] = ENERGY_BOUNDS, max_force: float = MAX_FORCE,
               max_stress: float = MAX_STRESS) -> Report:
    """Check one dataset file against every rule of the module docstring; return its report.

    ``elements``: the foundation's atomic numbers (or symbols); ``isolated_elements``: the
    elements with an isolated-atom energy, as a collection, or as a mapping ``{element: eV}``
    which also enables the binding-energy bounds. Raises :class:`DataError` listing every problem.
    """
    start = time.perf_counter()
    frames = read_file(path, role)
    return _check_frames(Path(path), role, frames, require_stress=require_stress, elements=elements,
                         isolated_elements=isolated_elements, energy_bounds=energy_bounds,
                         max_force=max_force, max_stress=max_stress, start=start)


def check_frames(path: str | Path, role: str, frames: Sequence[Atoms], *, frame_numbers: Sequence[int] | None = None,
                 require_stress: bool = False, elements: Collection[int | str] | None = None,
                 isolated_elements: Mapping[int | str, float] | Collection[int | str] | None = None,
                 energy_bounds: tuple[float, float] = ENERGY_BOUNDS, max_force: float = MAX_FORCE,
                 max_stress: float = MAX_STRESS) -> Report:
    """:func:`check_file` for frames already read: ``frames`` of ``path`` (some of them, where
    ``frame_numbers`` gives each one's index in the file: a replay set drawn from a corpus is
    checked before it is written, its problems named by the corpus file and frame)."""
    return _check_frames(Path(path), role, frames, require_stress=require_stress, elements=elements,
                         isolated_elements=isolated_elements, energy_bounds=energy_bounds, max_force=max_force,
                         max_stress=max_stress, start=time.perf_counter(), frame_numbers=frame_numbers)


def _check_frames(path: Path, role: str, frames: Sequence[Atoms], *, require_stress: bool,
                  elements: Collection[int | str] | None,
                  isolated_elements: Mapping[int | str, float] | Collection[int | str] | None,
                  energy_bounds: tuple[float, float], max_force: float, max_stress: float,
                  start: float, frame_numbers: Sequence[int] | None = None) -> Report:
    """``frame_numbers``: each frame's index in ``path`` where ``frames`` are some of its frames
    (default: all of them, in order)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    lo, hi = energy_bounds
    report = Report(path=str(path), role=role, frames=len(frames))
    problems = _Problems(frame_numbers)
    frame_lines = _Problems(frame_numbers)

    # isolated-atom rows first: their energies complete the binding-energy reference
    own_isolated: dict[int, tuple[int, float]] = {}  # Z -> (frame, energy)
    for i, atoms in enumerate(frames):
        if not _is_isolated(atoms):
            if role == "isolated":
                frame_lines.add(i, f"not an isolated-atom row ({CONFIG_TYPE_KEY}="
                                   f"{atoms.info.get(CONFIG_TYPE_KEY)!r}, {len(atoms)} atoms)")
            continue
        report.isolated_frames += 1
        if len(atoms) != 1:
            frame_lines.add(i, f"isolated atom has {len(atoms)} atoms ({atoms.get_chemical_formula()}), expected 1")
            continue
        energy, problem = _energy(atoms)
        if problem:
            frame_lines.add(i, f"isolated atom {atoms.get_chemical_symbols()[0]}: {problem}")
            continue
        z = int(atoms.numbers[0])
        if z in own_isolated:
            first = own_isolated[z][0] if frame_numbers is None else frame_numbers[own_isolated[z][0]]
            frame_lines.add(i, f"second isolated-atom row for {chemical_symbols[z]} (first: frame {first})")
            continue
        own_isolated[z] = (i, energy)
    report.isolated_energies = {chemical_symbols[z]: e for z, (_, e) in sorted(own_isolated.items())}

    n_configs = len(frames) - report.isolated_frames
    if role == "isolated" and not frames:
        problems.add(None, "no isolated-atom rows (empty file)")
    elif role != "isolated" and not frames:
        problems.add(None, "no configurations (empty file)")
    elif role != "isolated" and n_configs == 0:
        problems.add(None, f"only isolated-atom rows ({report.isolated_frames}), no configuration")

    # rule 4: elements, one problem per missing element at its first frame
    first_frame: dict[int, int] = {}
    frame_count: dict[int, int] = {}
    for i, atoms in enumerate(frames):
        for z in np.unique(atoms.numbers).tolist():
            first_frame.setdefault(z, i)
            frame_count[z] = frame_count.get(z, 0) + 1
    report.elements = _symbols(first_frame)
    allowed = []
    if elements is not None and role != "isolated":
        allowed.append(({_z(e) for e in elements}, "is not among the foundation model's elements"))
    if isolated_elements is not None:
        allowed.append(({_z(e) for e in isolated_elements}, "has no isolated-atom energy"))
    for known, what in allowed:
        for z in sorted(set(first_frame) - known, key=first_frame.get):
            problems.add(first_frame[z], f"element {chemical_symbols[z]} {what} "
                                         f"({_frames_have(frame_count[z])} it)")

    # binding-energy reference: given energies take precedence over the file's own rows
    reference = {z: e for z, (_, e) in own_isolated.items()}
    if isinstance(isolated_elements, Mapping):
        reference.update({_z(e): float(v) for e, v in isolated_elements.items()})
    table = np.full(len(chemical_symbols), np.nan)
    for z, e in reference.items():
        table[z] = e
    if role == "isolated":
        report.skipped.append("binding energy, forces, stress: not for isolated atoms")
    elif not reference:
        report.skipped.append("binding-energy bounds: no isolated-atom energies")

    energies, bindings, force_norms, stress_max = [], [], [], []
    for i, atoms in enumerate(frames):
        if _is_isolated(atoms) or role == "isolated":
            continue
        if len(atoms) == 0:
            frame_lines.add(i, "no atoms")
            continue
        for problem in _geometry(atoms):
            frame_lines.add(i, problem)
        energy, problem = _energy(atoms)
        if problem:
            frame_lines.add(i, problem)
        forces, problem = _forces(atoms)
        if problem:
            frame_lines.add(i, problem)
        stress, problem = _stress(atoms, require_stress)
        if problem:
            frame_lines.add(i, problem)
        n = len(atoms)
        if energy is not None:
            energies.append(energy / n)
            e_iso = table[atoms.numbers].sum()
            if np.isfinite(e_iso):
                binding = (energy - e_iso) / n
                bindings.append(binding)
                if not lo <= binding <= hi:
                    frame_lines.add(i, f"binding energy {binding:.4g} eV/atom ({ENERGY_KEY} minus isolated "
                                       f"atoms, per atom) outside [{lo:g}, {hi:g}]: energies not in eV? "
                                       f"(kcal/mol are x23.06, kJ/mol x96.5, Hartree x1/27.2)")
        if forces is not None:
            norms = np.linalg.norm(forces, axis=1)
            force_norms.extend((norms.min(), norms.max()))
            if norms.max() > max_force:
                frame_lines.add(i, f"largest force {norms.max():.4g} eV/A (atom {int(norms.argmax())}) above "
                                   f"{max_force:g} eV/A: forces not in eV/A? (kcal/mol/A are x23.06)")
        if stress is not None:
            report.stress_frames += 1
            largest = float(np.abs(stress).max())
            stress_max.append(largest)
            if largest > max_stress:
                frame_lines.add(i, f"largest {STRESS_KEY} component {largest:.4g} eV/A^3 above {max_stress:g} "
                                   f"eV/A^3 ({max_stress * EV_PER_A3_IN_GPA:.0f} GPa): stress not in eV/A^3? "
                                   f"(kbar are x1602, GPa x160.2)")
    report.energy_per_atom = _range(energies)
    report.binding_energy_per_atom = _range(bindings)
    report.force_norm = _range(force_norms)
    report.stress_max_abs = float(max(stress_max)) if stress_max else None

    problems.lines += frame_lines.lines  # file-level and element problems first: they are few
    report.seconds = time.perf_counter() - start
    problems.raise_if_any(path, role, report)
    return report


def _hash_keys(atoms: Atoms, tol: float) -> tuple[tuple, tuple]:
    """Two keys, on grids offset by half a cell, of the sum of the positions: frames whose
    positions agree within ``tol`` have sums within ``3 n tol`` = a quarter cell, so they share
    at least one key (the candidates are then compared in full)."""
    cell = 4.0 * max(atoms.positions.size, 1) * (tol + 1e-12)
    s = float(atoms.positions.sum()) / cell
    head = atoms.numbers.tobytes()
    return (head, 0, math.floor(s)), (head, 1, math.floor(s + 0.5))


def _same(a: Atoms, b: Atoms, tol: float) -> bool:
    """Identical frames; ``tol`` gets a 1e-12 slack for float parsing: two values 1e-8 apart as
    written by extxyz (8 decimals) parse to a difference of 1e-8 give or take 1e-15."""
    atol = tol + 1e-12
    return (np.array_equal(a.numbers, b.numbers) and np.array_equal(a.pbc, b.pbc)
            and np.allclose(a.positions, b.positions, rtol=0.0, atol=atol)
            and np.allclose(a.cell.array, b.cell.array, rtol=0.0, atol=atol))


def _check_duplicates(files: Sequence[tuple[str, Path, Sequence[Atoms]]], tol: float = POSITION_TOL) -> int:
    """``files``: ``(role, path, frames)``; every pair of files of different roles is compared
    (two files of one role, train.xyz and its per-phase part train_Ih.xyz, may share frames).
    Returns the number of configurations compared; raises :class:`DataError` naming every pair."""
    index = []
    for _, _, frames in files:
        grid: dict[tuple, list[int]] = {}
        for j, atoms in enumerate(frames):
            if not _is_isolated(atoms) and _finite_geometry(atoms):  # rule 6 names the others
                for key in _hash_keys(atoms, tol):
                    grid.setdefault(key, []).append(j)
        index.append(grid)
    lines = []
    for a, b in itertools.combinations(range(len(files)), 2):
        (role_a, path_a, frames_a), (role_b, path_b, frames_b) = files[a], files[b]
        if role_a == role_b:
            continue
        for i, atoms in enumerate(frames_a):
            if _is_isolated(atoms) or not _finite_geometry(atoms):
                continue
            candidates = sorted({j for key in _hash_keys(atoms, tol) for j in index[b].get(key, ())})
            lines += [f"{path_a} frame {i} ({role_a}) = {path_b} frame {j} ({role_b})" for j in candidates
                      if _same(atoms, frames_b[j], tol)]
    if lines:
        n = len(lines)
        listed = "\n".join(f"  {line}" for line in lines[:MAX_LISTED])
        more = f"\n  ... and {n - MAX_LISTED} more ({n} in total)" if n > MAX_LISTED else ""
        roles = ", ".join(dict.fromkeys(role for role, _, _ in files))
        raise DataError(f"{lines[0].split(' frame ')[0]}: {n} configuration{'s' * (n != 1)} in two of the "
                        f"{roles} files (same numbers, positions and cell within {tol:g} A; a frame of one split "
                        f"in another leaks it):\n{listed}{more}")
    return sum(not _is_isolated(a) for _, _, frames in files for a in frames)


def check_duplicates(files: Mapping[str, str | Path] | Iterable[tuple[str, str | Path]],
                     tol: float = POSITION_TOL) -> int:
    """No configuration in two of ``files`` (``{role: path}``, e.g. train/valid/test, or
    ``(role, path)`` pairs where a role has several files: only files of different roles are
    compared); the message names both files and frame indices. Returns the number of
    configurations compared."""
    pairs = files.items() if isinstance(files, Mapping) else files
    return _check_duplicates([(role, Path(p), read_file(p, role)) for role, p in pairs], tol)


def foundation_elements(path: str | Path) -> list[int]:
    """The atomic numbers of a torch-saved MACE model (torch and mace are imported here only)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: foundation model not found")
    import torch

    try:
        numbers = torch.load(path, map_location="cpu", weights_only=False).atomic_numbers
    except Exception as err:
        raise DataError(f"{path}: cannot read the atomic numbers of this foundation model: {err}") from err
    return [int(z) for z in numbers]


def _roles(text: str, parser: argparse.ArgumentParser, option: str) -> set[str]:
    roles = {r for r in text.split(",") if r}
    if roles - set(ROLES):
        parser.error(f"{option}: unknown role(s) {sorted(roles - set(ROLES))}; expected {', '.join(ROLES)}")
    return roles


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (module docstring); returns the exit status (0 ok, 1 a rule broken)."""
    parser = argparse.ArgumentParser(prog="python -m mlipft.validate_data",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--file", action="append", required=True, metavar="ROLE=PATH",
                        help=f"a file to check and its role ({', '.join(ROLES)}); repeat")
    parser.add_argument("--stress", default="", metavar="ROLE,...", help="roles whose files must have REF_stress")
    parser.add_argument("--foundation", help="foundation model (.model): every element must be among its own")
    parser.add_argument("--isolated", help="extxyz of IsolatedAtom rows: every element needs one, and their "
                        "energies enable the binding-energy bounds")
    parser.add_argument("--disjoint", default="", metavar="ROLE,...",
                        help="roles whose files must share no configuration (e.g. train,valid,test)")
    parser.add_argument("--energy-bounds", nargs=2, type=float, default=ENERGY_BOUNDS, metavar=("LO", "HI"),
                        help="binding energy per atom bounds, eV/atom (default %(default)s)")
    parser.add_argument("--max-force", type=float, default=MAX_FORCE, help="eV/A (default %(default)s)")
    parser.add_argument("--max-stress", type=float, default=MAX_STRESS, help="eV/A^3 (default %(default)s)")
    parser.add_argument("--report", required=True, help="JSON report, written only when every check passes")
    args = parser.parse_args(argv)
    files = []
    for item in args.file:
        role, sep, path = item.partition("=")
        if not sep or not path:
            parser.error(f"--file {item!r}: expected ROLE=PATH")
        _roles(role, parser, "--file")
        files.append((role, Path(path)))
    stress_roles = _roles(args.stress, parser, "--stress")
    disjoint = _roles(args.disjoint, parser, "--disjoint")

    start = time.perf_counter()
    errors: list[str] = []
    limits = dict(energy_bounds=tuple(args.energy_bounds), max_force=args.max_force, max_stress=args.max_stress)
    elements = None
    if args.foundation:
        try:
            elements = foundation_elements(args.foundation)
        except DataError as err:
            errors.append(str(err))
    isolated, isolated_report = None, None
    if args.isolated:
        try:
            isolated_report = check_file(args.isolated, "isolated", **limits)
            isolated = isolated_report.isolated_energies
        except DataError as err:
            errors.append(str(err))
    reports, disjoint_files = [], []
    for role, path in files:
        t0 = time.perf_counter()
        try:
            frames = read_file(path, role)
            if role in disjoint:  # a file with other problems is still compared
                disjoint_files.append((role, path, frames))
            reports.append(_check_frames(path, role, frames, require_stress=role in stress_roles,
                                         elements=elements, isolated_elements=isolated, start=t0, **limits))
        except DataError as err:
            errors.append(str(err))
    try:
        _check_duplicates(disjoint_files)
    except DataError as err:
        errors.append(str(err))
    if errors:
        Path(args.report).unlink(missing_ok=True)
        print("\n\n".join(errors), file=sys.stderr)
        return 1
    write_json(args.report, {
        "files": [r.to_dict() for r in reports],
        "isolated": isolated_report.to_dict() if isolated_report else None,
        "foundation": {"path": args.foundation, "elements": _symbols(elements)} if elements is not None else None,
        "disjoint": sorted(disjoint),
        "bounds": {"binding_energy_per_atom_eV": list(args.energy_bounds), "max_force_eV_per_A": args.max_force,
                   "max_stress_eV_per_A3": args.max_stress},
        "seconds": time.perf_counter() - start,
    })
    print(f"validated {len(reports)} file(s), {sum(r.frames for r in reports)} frames, in "
          f"{time.perf_counter() - start:.2f} s -> {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
