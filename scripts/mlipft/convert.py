"""Converters from the paper's raw data formats to the workflow's canonical extxyz.

Every reader returns a list of :class:`ase.Atoms` without a calculator, carrying

- ``info['REF_energy']``: total energy, eV;
- ``arrays['REF_forces']``: forces, eV/Angstrom, shape ``(n_atoms, 3)``;
- ``info['REF_stress']``: stress, eV/Angstrom^3, 3x3, ASE sign convention (periodic data only);
- positions and cell in Angstrom; isolated-atom rows keep ``config_type=IsolatedAtom``.

Formats (see ``../shared/paper-data/README.md`` for real samples):

``runner``
    RuNNer ``input.data`` (NaCl in water, MP2): ``begin`` / ``comment`` / ``lattice`` x3 /
    ``atom x y z element charge energy fx fy fz`` / ``energy`` / ``charge`` / ``end``, in Bohr,
    Hartree and Hartree/Bohr. The block's total charge goes to ``info['charge']`` (the key
    :mod:`mlipft.xtb` reads); the per-atom charge and energy columns are validated and dropped.
``ice``
    Ice-polymorph extxyz already in ``REF_*`` keys; validated, stress reshaped to 3x3.
``sn2``
    organic_neb_mace xyz: ``mp2_energy`` / ``mp2_forces`` renamed, other info kept.
``spice``
    MACE-OFF cleaned SPICE split: ``energy`` / ``forces`` renamed, other info kept.
``lpsc``
    LPSC_600.extxyz: ``ref_energy`` / ``ref_forces`` / ``stress`` renamed; stress (Voigt-6 in
    the order xx yy zz yz xz xy, or 9 values, or 3x3) is taken to be in eV/Angstrom^3 and the ASE
    sign convention already, and is only reshaped.

Your own data (``world: own``) is any extxyz file read by :func:`read_keyed` with the label keys
and units its benchmark entry gives (eV, meV, Hartree, Ry, kcal/mol, kJ/mol; Angstrom, Bohr, nm).

Source keys are read from ``atoms.info`` / ``atoms.arrays`` or, where ASE's extxyz reader moved
them there (keys named ``energy``, ``forces``, ``stress``, ...), from the calculator it
attached. Other calculator results are discarded, so only ``REF_*`` labels are written.

Malformed input raises :class:`ConversionError` naming the file and the line (RuNNer) or
frame (extxyz, counted from 0 as in ``ase.io.read(path, index=i)``).

Command line::

    python -m mlipft.convert FORMAT OUTPUT INPUT [INPUT ...] [--phase PHASE]
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.io.extxyz import key_val_str_to_dict
from ase.stress import voigt_6_to_full_3x3_stress

from .io import write_atomic
from .keys import (
    BOHR_TO_ANGSTROM,
    CONFIG_TYPE_KEY,
    ENERGY_KEY,
    FORCES_KEY,
    HARTREE_TO_EV,
    ISOLATED_ATOM,
    STRESS_KEY,
)

log = logging.getLogger(__name__)

# check_units limits: far above any physical configuration, far below a missed unit conversion.
MAX_FORCE_COMPONENT = 50.0  # eV/Angstrom
MAX_ENERGY_PER_ATOM = 1e5  # eV

RUNNER_ATOM_FIELDS = "atom x y z element charge energy fx fy fz"
_STRESS_PLACEHOLDER = "_mlipft_stress"  # see _parse_comment_line


class ConversionError(ValueError):
    """Malformed input; the message names the file, the line or frame, and the fault."""


# --------------------------------------------------------------------------------------------
# RuNNer input.data


def read_runner(path: str | Path) -> list[Atoms]:
    """Read a RuNNer ``input.data`` file (Bohr, Hartree) into canonical Atoms (Angstrom, eV).

    A block with three ``lattice`` lines is periodic with that cell; a block without any is
    non-periodic. ``comment`` lines inside a block are joined into ``info['comment']``;
    those outside a block are ignored.
    """
    path = Path(path)
    frames: list[Atoms] = []
    block: _RunnerBlock | None = None
    with open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            keyword = fields[0].lower()
            if keyword == "begin":
                if block is not None:
                    raise _line_error(
                        path, lineno, f"'begin' inside the block opened at line {block.start} (missing 'end')"
                    )
                block = _RunnerBlock(path, lineno)
            elif keyword == "comment":
                if block is not None:
                    block.comments.append(line.strip()[len("comment"):].strip())
            elif block is None:
                raise _line_error(path, lineno, f"{fields[0]!r} outside a begin/end block")
            elif keyword == "end":
                frames.append(block.to_atoms(lineno))
                block = None
            else:
                block.add(keyword, fields, lineno)
    if block is not None:
        raise _line_error(
            path, block.start, f"truncated block: no 'end' before the end of the file ({block.summary()})"
        )
    if not frames:
        raise ConversionError(f"{path}: no 'begin'/'end' blocks found")
    check_units(frames, path)
    return frames


class _RunnerBlock:
    """The lines of one ``begin``/``end`` block, accumulated in RuNNer units."""

    def __init__(self, path: Path, start: int):
        self.path = path
        self.start = start
        self.comments: list[str] = []
        self.lattice: list[list[float]] = []
        self.symbols: list[str] = []
        self.positions: list[list[float]] = []
        self.forces: list[list[float]] = []
        self.energy: float | None = None
        self.charge: float | None = None

    def summary(self) -> str:
        energy = "an" if self.energy is not None else "no"
        return f"found {len(self.lattice)} lattice, {len(self.symbols)} atom and {energy} energy line(s)"

    def add(self, keyword: str, fields: list[str], lineno: int) -> None:
        if keyword == "lattice":
            self.lattice.append(self._numbers(fields, 3, lineno))
        elif keyword == "atom":
            if len(fields) != 10:
                raise _line_error(
                    self.path, lineno,
                    f"'atom' line has {len(fields)} fields, expected 10 ({RUNNER_ATOM_FIELDS})",
                )
            symbol = fields[4]
            if atomic_numbers.get(symbol, 0) == 0:
                raise _line_error(self.path, lineno, f"unknown element {symbol!r} in 'atom' line")
            values = self._numbers(fields[:4] + fields[5:], 8, lineno)
            self.symbols.append(symbol)
            self.positions.append(values[0:3])
            self.forces.append(values[5:8])
        elif keyword in ("energy", "charge"):
            if getattr(self, keyword) is not None:
                raise _line_error(
                    self.path, lineno, f"second {keyword!r} line in the block opened at line {self.start}"
                )
            setattr(self, keyword, self._numbers(fields, 1, lineno)[0])
        else:
            raise _line_error(self.path, lineno, f"unknown keyword {fields[0]!r}")

    def _numbers(self, fields: list[str], count: int, lineno: int) -> list[float]:
        """The ``count`` numbers after the keyword in ``fields``."""
        if len(fields) != count + 1:
            raise _line_error(
                self.path, lineno, f"{fields[0]!r} line has {len(fields) - 1} values, expected {count}"
            )
        try:
            values = [float(token) for token in fields[1:]]
        except ValueError as err:
            raise _line_error(self.path, lineno, f"non-numeric value in {fields[0]!r} line: {err}") from None
        if not np.all(np.isfinite(values)):
            raise _line_error(self.path, lineno, f"non-finite value in {fields[0]!r} line")
        return values

    def to_atoms(self, end_line: int) -> Atoms:
        where = f"block at lines {self.start}-{end_line}"
        if self.energy is None:
            raise _line_error(self.path, self.start, f"{where}: missing 'energy' line ({self.summary()})")
        if not self.symbols:
            raise _line_error(self.path, self.start, f"{where}: no 'atom' lines")
        if len(self.lattice) not in (0, 3):
            raise _line_error(
                self.path, self.start, f"{where}: {len(self.lattice)} 'lattice' lines, expected 3 or none"
            )
        periodic = bool(self.lattice)
        atoms = Atoms(
            symbols=self.symbols,
            positions=np.array(self.positions) * BOHR_TO_ANGSTROM,
            cell=np.array(self.lattice) * BOHR_TO_ANGSTROM if periodic else None,
            pbc=periodic,
        )
        if periodic and atoms.cell.volume <= 0.0:
            raise _line_error(self.path, self.start, f"{where}: lattice vectors span no volume")
        atoms.info[ENERGY_KEY] = self.energy * HARTREE_TO_EV
        atoms.arrays[FORCES_KEY] = np.array(self.forces) * (HARTREE_TO_EV / BOHR_TO_ANGSTROM)
        if self.charge is not None:
            atoms.info["charge"] = int(self.charge) if self.charge.is_integer() else self.charge
        if self.comments:
            atoms.info["comment"] = " | ".join(self.comments)
        return atoms


def _line_error(path: Path, lineno: int, message: str) -> ConversionError:
    return ConversionError(f"{path}: line {lineno}: {message}")


# --------------------------------------------------------------------------------------------
# extxyz-based formats


def read_ice(path: str | Path, phase: str | None = None) -> list[Atoms]:
    """Validate an ice-polymorph extxyz file (``REF_*`` keys) and normalise its stress to 3x3.

    Every frame must be fully periodic and carry ``REF_energy``, ``REF_forces`` and
    ``REF_stress``; other info (``REF_free_energy``) is kept. ``phase`` (e.g. ``"Ih"``),
    when given, is recorded in ``info['phase']``.
    """
    path = Path(path)
    frames = _read_labelled(path, energy_key=ENERGY_KEY, forces_key=FORCES_KEY, stress_key=STRESS_KEY)
    for index, atoms in enumerate(frames):
        if not atoms.pbc.all() or atoms.cell.volume <= 0.0:
            raise _frame_error(
                path, index,
                f"ice frames must be periodic with a cell; found pbc={atoms.pbc.tolist()}, "
                f"cell volume {atoms.cell.volume:g} A^3",
            )
        if phase is not None:
            atoms.info["phase"] = phase
    return frames


def read_sn2(path: str | Path) -> list[Atoms]:
    """Read an organic_neb_mace SN2 file (``mp2_energy``, ``mp2_forces``; eV, eV/Angstrom).

    Info such as ``R1``..``R4``, ``lg``, ``nu``, ``rxn-id`` and ``config_type`` is kept;
    isolated-atom rows (``e0s.xyz``, no forces) get zero forces, exact by symmetry.
    ASE's extxyz reader parses the bare value ``F`` (fluorine, e.g. ``lg=F``) as ``False``; it is
    left so, as any ASE read of the written file would give it.
    """
    return _read_labelled(Path(path), energy_key="mp2_energy", forces_key="mp2_forces")


def read_spice(path: str | Path) -> list[Atoms]:
    """Read a MACE-OFF SPICE extxyz file (``energy``, ``forces``; eV, eV/Angstrom).

    Other info (``total_charge``, ``config_type``, ...) is kept.
    """
    return _read_labelled(Path(path), energy_key="energy", forces_key="forces")


def read_lpsc(path: str | Path) -> list[Atoms]:
    """Read LPSC_600.extxyz (``ref_energy``, ``ref_forces``, ``stress``; eV, eV/Angstrom, eV/Angstrom^3).

    Stress is required on periodic frames and reshaped to 3x3 (see the module docstring).
    """
    return _read_labelled(Path(path), energy_key="ref_energy", forces_key="ref_forces", stress_key="stress")


def _read_raw_extxyz(path: Path) -> list[Atoms]:
    """Every frame of an extxyz file as ASE reads it (labels untouched); an unreadable or empty
    file is a :class:`ConversionError` naming it."""
    with open(path) as fh:
        try:
            raw = ase.io.read(fh, index=":", format="extxyz", properties_parser=_parse_comment_line)
        except Exception as err:  # ASE raises many types for malformed extxyz
            raise ConversionError(f"{path}: not a readable extxyz file: {err}") from err
    if not raw:
        raise ConversionError(f"{path}: no frames found")
    return raw


def _read_labelled(
    path: Path, energy_key: str, forces_key: str, stress_key: str | None = None
) -> list[Atoms]:
    """Read every frame of ``path`` and rename its labels to the canonical keys."""
    raw = _read_raw_extxyz(path)
    frames = [
        _relabel(path, index, atoms, energy_key, forces_key, stress_key) for index, atoms in enumerate(raw)
    ]
    check_units(frames, path)
    return frames


def _parse_comment_line(line: str) -> dict:
    """ASE's extxyz comment-line parser, but accepting a Voigt-6 ``stress=`` as well as 9 numbers.

    ASE rejects a ``stress`` that is not 9 numbers; the key is parsed under a placeholder name
    and put back (9 numbers as ASE would: 3x3 in Fortran order), so that ASE still moves it into
    the calculator, which holds stress as Voigt-6.
    """
    info = key_val_str_to_dict(re.sub(r"(?<!\S)stress=", f"{_STRESS_PLACEHOLDER}=", line))
    if _STRESS_PLACEHOLDER in info:
        stress = info.pop(_STRESS_PLACEHOLDER)
        info["stress"] = stress.reshape((3, 3), order="F") if np.shape(stress) == (9,) else stress
    return info


def _relabel(
    path: Path, index: int, atoms: Atoms, energy_key: str, forces_key: str, stress_key: str | None
) -> Atoms:
    """A copy of ``atoms`` with canonical labels, no calculator and the source keys removed.

    Forces may be absent only on single-atom ``IsolatedAtom`` rows (then zero); stress, when
    ``stress_key`` is given, is required on fully periodic frames and optional elsewhere.
    """
    results = atoms.calc.results if atoms.calc is not None else {}
    energy = _lookup(atoms, results, energy_key)
    if energy is None:
        raise _frame_error(path, index, f"missing energy key {energy_key!r}; {_found_keys(atoms)}")
    forces = _lookup(atoms, results, forces_key)
    isolated = atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM and len(atoms) == 1
    if forces is None and not isolated:
        raise _frame_error(path, index, f"missing forces key {forces_key!r}; {_found_keys(atoms)}")
    stress = _lookup(atoms, results, stress_key) if stress_key is not None else None
    if stress_key is not None and stress is None and atoms.pbc.all():
        raise _frame_error(
            path, index, f"periodic frame without stress key {stress_key!r}; {_found_keys(atoms)}"
        )
    labels = (
        (energy_key, ENERGY_KEY, energy), (forces_key, FORCES_KEY, forces), (stress_key, STRESS_KEY, stress)
    )
    for source, target, value in labels:
        if value is not None and source != target and (target in atoms.info or target in atoms.arrays):
            raise _frame_error(
                path, index, f"has both {source!r} and {target!r}; refusing to overwrite {target!r}"
            )

    out = atoms.copy()  # copies info and arrays, not the calculator
    for key in (energy_key, forces_key, stress_key):
        out.info.pop(key, None)
        out.arrays.pop(key, None)
    out.info[ENERGY_KEY] = _energy_value(path, index, energy_key, energy)
    out.arrays[FORCES_KEY] = (
        np.zeros((1, 3)) if forces is None else _forces_array(path, index, forces_key, forces, len(atoms))
    )
    if stress is not None:
        out.info[STRESS_KEY] = _stress_3x3(path, index, stress_key, stress)
    return out


def _lookup(atoms: Atoms, results: dict, key: str):
    """``key`` from info, arrays or the calculator ASE attached; ``None`` when absent."""
    for source in (atoms.info, atoms.arrays, results):
        if key in source:
            return source[key]
    return None


def _found_keys(atoms: Atoms) -> str:
    arrays = sorted(set(atoms.arrays) - {"numbers", "positions"})
    results = sorted(atoms.calc.results) if atoms.calc is not None else []
    return f"found info keys {sorted(atoms.info)}, arrays {arrays}, calculator results {results}"


def _energy_value(path: Path, index: int, key: str, value) -> float:
    array = np.asarray(value)
    if array.shape != () or array.dtype.kind not in "iuf":
        raise _frame_error(path, index, f"energy {key!r} is not a number: {value!r}")
    energy = float(array)
    if not np.isfinite(energy):
        raise _frame_error(path, index, f"energy {key!r} is not finite: {energy}")
    return energy


def _forces_array(path: Path, index: int, key: str, value, n_atoms: int) -> np.ndarray:
    forces = np.asarray(value)
    if forces.shape != (n_atoms, 3) or forces.dtype.kind not in "iuf":
        raise _frame_error(
            path, index,
            f"forces {key!r} have shape {forces.shape} ({forces.dtype}), expected ({n_atoms}, 3) numbers",
        )
    return forces.astype(float)


def _stress_3x3(path: Path, index: int, key: str, value) -> np.ndarray:
    stress = np.asarray(value)
    if stress.dtype.kind not in "iuf" or stress.shape not in ((6,), (9,), (3, 3)):
        raise _frame_error(
            path, index,
            f"stress {key!r} has shape {stress.shape} ({stress.dtype}), expected 6 (Voigt), 9 or 3x3 numbers",
        )
    stress = stress.astype(float)
    return voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)


def _frame_error(path: Path, index: int, message: str) -> ConversionError:
    return ConversionError(f"{path}: frame {index}: {message}")


# --------------------------------------------------------------------------------------------
# checks, registry, driver


def check_units(atoms_list: Sequence[Atoms], path: str | Path) -> None:
    """Raise :class:`ConversionError` on labels no eV / Angstrom data can have.

    A force component above ``MAX_FORCE_COMPONENT`` (50 eV/Angstrom), an energy per atom
    above ``MAX_ENERGY_PER_ATOM`` (1e5 eV) in magnitude, or a non-finite label means a unit
    conversion was missed (or the data are broken). Frames are counted from 0.
    """
    for index, atoms in enumerate(atoms_list):
        energy = atoms.info[ENERGY_KEY]
        per_atom = energy / len(atoms)
        if not np.isfinite(energy) or abs(per_atom) > MAX_ENERGY_PER_ATOM:
            raise _frame_error(
                Path(path), index,
                f"energy {energy:g} eV ({per_atom:g} eV/atom) exceeds {MAX_ENERGY_PER_ATOM:g} eV/atom "
                f"in magnitude; missed unit conversion?",
            )
        forces = atoms.arrays[FORCES_KEY]
        if not np.all(np.isfinite(forces)):
            raise _frame_error(Path(path), index, "non-finite force components")
        largest = float(np.abs(forces).max())
        if largest > MAX_FORCE_COMPONENT:
            atom = int(np.abs(forces).max(axis=1).argmax())
            raise _frame_error(
                Path(path), index,
                f"force component {largest:g} eV/A on atom {atom} exceeds {MAX_FORCE_COMPONENT:g} eV/A; "
                f"missed unit conversion?",
            )


#: eV per unit of the energies of a file (``read_keyed``): CODATA 2018 Hartree (as ``runner``),
#: the Rydberg half of it, and kcal/mol, kJ/mol through the Faraday constant (SI 2019, exact).
_FARADAY = 96485.33212331001  # C/mol: eV per (J/mol) = 1 / F
ENERGY_UNITS = {"eV": 1.0, "meV": 1e-3, "hartree": HARTREE_TO_EV, "Ry": HARTREE_TO_EV / 2,
                "kcal/mol": 4184.0 / _FARADAY, "kJ/mol": 1000.0 / _FARADAY}
#: Angstrom per unit of the positions and cell of a file (``read_keyed``).
LENGTH_UNITS = {"angstrom": 1.0, "bohr": BOHR_TO_ANGSTROM, "nm": 10.0}


def read_keyed(path: str | Path, energy_key: str = ENERGY_KEY, forces_key: str = FORCES_KEY,
               stress_key: str | None = STRESS_KEY, *, energy_unit: str = "eV", length_unit: str = "angstrom",
               require_stress: bool = False, isolated_atoms: bool = False, check: bool = True) -> list[Atoms]:
    """Read any extxyz file whose labels are under the given keys and in the given units, into
    canonical Atoms (``REF_*`` keys, eV, Angstrom): your own data (``world: own``).

    Energies are multiplied by ``ENERGY_UNITS[energy_unit]``, positions and cell by
    ``LENGTH_UNITS[length_unit]``, forces by their ratio and a stress by energy / length^3 (the
    ASE sign convention is assumed). A stress is converted where a frame has ``stress_key``, and
    required on periodic frames with ``require_stress``. ``isolated_atoms``: every frame is an
    isolated atom (one atom, ``config_type=IsolatedAtom`` set where absent; no forces needed).
    ``check``: :func:`check_units` on the result (off to diagnose units another way first).
    A missing label names the file, the frame and the keys found there."""
    if energy_unit not in ENERGY_UNITS or length_unit not in LENGTH_UNITS:
        raise ValueError(f"unknown unit {energy_unit!r} / {length_unit!r}: energy one of {sorted(ENERGY_UNITS)}, "
                         f"length one of {sorted(LENGTH_UNITS)}")
    path = Path(path)
    energy_factor, length_factor = ENERGY_UNITS[energy_unit], LENGTH_UNITS[length_unit]
    raw = _read_raw_extxyz(path)
    frames = []
    for index, atoms in enumerate(raw):
        if isolated_atoms:
            if len(atoms) != 1:
                raise _frame_error(path, index, f"an isolated-atom file holds single atoms; this frame has {len(atoms)}")
            atoms.info.setdefault(CONFIG_TYPE_KEY, ISOLATED_ATOM)
        results = atoms.calc.results if atoms.calc is not None else {}
        has_stress = stress_key is not None and _lookup(atoms, results, stress_key) is not None
        out = _relabel(path, index, atoms, energy_key, forces_key,
                       stress_key if (require_stress or has_stress) else None)
        if length_factor != 1.0:
            out.set_cell(out.cell.array * length_factor, scale_atoms=False)
            out.positions = out.positions * length_factor
        out.info[ENERGY_KEY] = out.info[ENERGY_KEY] * energy_factor
        out.arrays[FORCES_KEY] = out.arrays[FORCES_KEY] * (energy_factor / length_factor)
        if STRESS_KEY in out.info:
            out.info[STRESS_KEY] = np.asarray(out.info[STRESS_KEY]) * (energy_factor / length_factor**3)
        frames.append(out)
    if check:
        check_units(frames, path)
    return frames


FORMATS: dict[str, Callable[..., list[Atoms]]] = {
    "runner": read_runner,
    "ice": read_ice,
    "sn2": read_sn2,
    "spice": read_spice,
    "lpsc": read_lpsc,
}


def convert(fmt: str, inputs: Sequence[str | Path], output: str | Path, **kwargs) -> int:
    """Read ``inputs`` in format ``fmt``, write them to ``output`` as one canonical extxyz.

    ``kwargs`` go to the reader (``phase`` for ``ice``). The output is written atomically:
    nothing appears under its name unless every input converted. Returns the frame count.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
    if not inputs:
        raise ValueError("no input files given")
    frames = [atoms for path in inputs for atoms in FORMATS[fmt](path, **kwargs)]
    write_atomic(output, frames)
    log.info("wrote %d configurations from %d file(s) to %s", len(frames), len(inputs), output)
    return len(frames)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mlipft.convert",
        description="Convert paper data (RuNNer, ice, SN2, SPICE, LPSC) to canonical extxyz "
        "(REF_* keys, eV, Angstrom).",
    )
    parser.add_argument("format", choices=sorted(FORMATS), help="input format")
    parser.add_argument("output", type=Path, help="extxyz file to write")
    parser.add_argument("inputs", type=Path, nargs="+", help="input file(s), concatenated in order")
    parser.add_argument("--phase", help="ice only: phase name recorded in info['phase']")
    args = parser.parse_args(argv)
    kwargs = {}
    if args.phase is not None:
        if args.format != "ice":
            parser.error("--phase applies only to the ice format")
        kwargs["phase"] = args.phase
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        convert(args.format, args.inputs, args.output, **kwargs)
    except ConversionError as err:
        sys.exit(f"{parser.prog}: error: {err}")


if __name__ == "__main__":
    main()
