"""Random structure search (RSS) for holes in a model's potential energy surface.

The paper runs an AIRSS-style search (Pickard & Needs) with every fine-tuned model: random
crystals over several compositions of the benchmark's elements, each relaxed (cell and positions)
at a low and a high pressure with relax-rattle cycles, and counts the fraction of structures that
end up *unphysical* ("PES holes"). Three steps, each a subcommand:

- ``generate``: the random crystals (:func:`generate`). Compositions are integer combinations of
  neutral, even-electron *formula units* (``units``, parsed with ``ase.formula.Formula``; a unit
  with an odd number of electrons, an unknown element, or, with ``--elements``, an element
  outside them is an error naming it). Every distinct composition (element counts) with
  ``min_atoms``..``max_atoms`` atoms is a candidate; ``n_compositions`` of them are drawn without
  replacement from ``numpy.random.default_rng(seed)`` (candidates in Hill-formula order). Each gets
  ``structures_per_composition`` crystals from PyXtal (``pyxtal.from_random``, volume factor
  ``volume_factor``) in a space group drawn uniformly from those of 2..230 whose Wyckoff positions
  can hold the composition; structure ``i`` draws its space groups and hands PyXtal its generator
  ``numpy.random.default_rng([seed, i])`` (PyXtal 1.x draws everything from the generator it is
  given; numpy's and Python's global states are seeded from ``seed`` as well during generation,
  and restored afterwards). A failed attempt (PyXtal raised or gave an invalid crystal) draws a
  new space group; after ``max_tries`` failures the error names the composition. Every frame
  carries ``info``: ``structure_id`` (0..n-1, compositions in draw order), ``composition`` (Hill
  formula), ``spacegroup``, ``seed``. The same seed gives a byte-identical file.
- ``reference``: the relaxations with the reference level (an xTB level through tblite, one
  thread, or a MACE model standing in for it): the same table with the reference columns empty; it flags ``distance`` and ``cell``
  only, and it is the *reference table* whose lowest enthalpies are the ``energy`` floors.
- ``model``: the relaxations with a MACE model, a single point with the reference (an xTB level,
  or a MACE model: the paper world's stand-in) on every cycle's relaxed structure (not on diverged
  ones), the floors from ``--reference-table``, and all four criteria.

Relaxation (:func:`relax`): for each structure and each pressure of ``pressures_gpa`` (index
``k``), ``cycles`` relax-rattle cycles. A cycle relaxes the cell and positions with ASE's
``FrechetCellFilter(atoms, scalar_pressure=p GPa)`` and ``FIRE`` to ``fmax`` (eV/Å, forces and
the filter's cell gradient) or ``max_steps`` steps, and is recorded; the next cycle starts from it
rattled: Gaussian displacements of ``rattle_angstrom`` (Å, per component) and a symmetric Gaussian
strain of ``rattle_strain`` per component (cell -> cell (1 + ε), fractional coordinates kept),
drawn from ``numpy.random.default_rng([seed, structure_id, k, cycle])`` (``seed`` of the frame).
The status of a cycle: ``converged``; ``unconverged`` (``max_steps`` reached); ``diverged`` (a
non-finite energy, force, stress or position at any step; a volume per atom outside
[``volume_min``, ``volume_max``] or a volume ratio outside [``volume_ratio_min``,
``volume_ratio_max``] at any step after the first, so that a starting structure out of bounds is
relaxed and judged by its final volume; or a numerical exception of the optimizer); ``error`` (the calculator raised, e.g. an xTB
SCF failure: the message is kept). After a ``diverged`` or ``error`` cycle that structure stops at
that pressure. Any ASE calculator with energy, forces and stress works (mace's
``MACECalculator``, tblite's ``TBLite``, toy calculators).

Criteria (:func:`flags`; per row 1 flagged, 0 not, NaN not evaluable; the thresholds below are
parameters; rows of a ``diverged`` or ``error`` cycle are flagged by ``cell`` and NaN for the
other three):

1. ``distance``: an interatomic distance (minimum image, an atom's own periodic images included)
   below its pair's floor, ``floor_factor`` x the sum of the ASE covalent radii of the two
   elements, or ``pair_floors_angstrom["A-B"]`` (Å; either order) where given:
   ``min_distance_ratio`` (the smallest distance / floor) < 1. The floors act when a structure is
   measured (:func:`measure`); :func:`flags` re-applies the ratio.
2. ``energy``: the enthalpy per atom, H/N = (E + pV)/N, lies more than
   ``energy_margin_ev_per_atom`` below the floor: ``enthalpy_per_atom_ev <
   floor_enthalpy_per_atom_ev - margin``. The floor (:func:`floors`) is the lowest enthalpy per
   atom of the ``converged`` rows of that composition and pressure in the reference table (every
   structure and cycle), plus the reference shift per atom of the composition. No such row: NaN
   (not flagged; logged).
3. ``cell``: ``volume_per_atom_angstrom3`` < ``volume_min_angstrom3_per_atom`` or >
   ``volume_max_angstrom3_per_atom``, or ``volume_ratio`` (the volume / the generated structure's
   volume) < ``volume_ratio_min`` or > ``volume_ratio_max``; and every diverged or error row.
4. ``disagreement``: the reference single point on the relaxed structure disagrees:
   \\|E_model - E_ref\\|/N > ``disagreement_energy_ev_per_atom`` or the RMS over the 3N force
   components of F_model - F_ref > ``disagreement_force_ev_per_angstrom``. ``E_ref`` includes the
   reference shift (``--reference-shift``: element -> eV per atom of it added to the reference's
   energies, and so to the floors; default none), which puts a stand-in reference on the model's
   energy scale. No reference energy (none asked, or its calculation failed: logged): NaN.

``flagged`` is 1 when any criterion is 1, else 0. A structure at one pressure is flagged by a
criterion when any of its cycles is (:func:`structure_flags`); :func:`flagged_fractions` gives the
fractions per pressure.

Parameters (:data:`DEFAULTS`; ``--params`` is a JSON object or a JSON/YAML file over them, every
key checked, an unknown key or a bad value an error naming it):

- generation: ``units`` (["NaCl", "H2O", "NaOH", "HCl"]), ``n_compositions`` (3),
  ``structures_per_composition`` (2), ``min_atoms`` (4), ``max_atoms`` (12), ``volume_factor``
  (1.1, PyXtal's volume factor), ``max_tries`` (50, attempts per structure);
- relaxation: ``pressures_gpa`` ([0.1, 50.0]), ``cycles`` (3), ``fmax`` (0.05 eV/Å), ``max_steps``
  (300), ``rattle_angstrom`` (0.1), ``rattle_strain`` (0.02), ``xtb_electronic_temperature_k``
  (300 K, tblite's Fermi smearing of an xTB level: relaxations and single points; GFN2-xTB's SCF
  fails on many random crystals at 300 K and converges on more at a few thousand K);
- criteria: ``floor_factor`` (0.5), ``pair_floors_angstrom`` ({}), ``energy_margin_ev_per_atom``
  (0.5), ``volume_min_angstrom3_per_atom`` (3.0), ``volume_max_angstrom3_per_atom`` (80.0),
  ``volume_ratio_min`` (0.2), ``volume_ratio_max`` (5.0), ``disagreement_energy_ev_per_atom``
  (0.3), ``disagreement_force_ev_per_angstrom`` (2.0).

The CSV (:data:`COLUMNS`, one row per structure x pressure x cycle): ``structure_id``,
``composition`` (Hill), ``n_atoms``, ``pressure_gpa``, ``cycle`` (0-based), ``status``,
``message`` (why a cycle diverged or failed; a failed reference single point), ``steps`` (FIRE
steps of the cycle), ``energy_ev`` (the relaxing level's energy of the cycle's last structure),
``enthalpy_per_atom_ev``, ``volume_per_atom_angstrom3``, ``volume_ratio``,
``min_distance_angstrom``, ``min_distance_ratio``, ``closest_pair`` (the pair "A-B", by atomic
number, of the smallest ratio), ``reference_energy_ev`` (shifted), ``energy_diff_ev_per_atom``
((E_model - E_ref)/N, signed), ``force_rmse_ev_per_angstrom``, ``floor_enthalpy_per_atom_ev``,
``flag_distance``, ``flag_energy``, ``flag_cell``, ``flag_disagreement``, ``flagged`` (0/1, empty
when not evaluable), ``source`` (``--label`` of a model run, the xTB method of a reference run).

CLI::

    python -m mlipft.analysis.rss generate --elements Na Cl H O [--params JSON|file] [--seed 0]
        --output structures.extxyz
    python -m mlipft.analysis.rss reference --structures structures.extxyz (--level gfn2 | --model F.model
        [--head H] [--label reference] [--device cpu] [--default-dtype float64]) [--params JSON|file]
        [--threads 1] --output reference.csv
    python -m mlipft.analysis.rss model --model M.model [--head H] [--label model]
        --structures structures.extxyz --reference-table reference.csv
        (--reference-level gfn2 | --reference-model F.model [--reference-head H]
        [--reference-dtype float64]) [--reference-shift JSON|file | --reference-shift-e0s E0S.json
        [--e0-mode estimated]] [--params JSON|file]
        [--device cpu|cuda|auto] [--default-dtype float64] [--threads 1] --output rss.csv

``--level`` / ``--reference-level``: ``gfn1``, ``gfn2``, a tblite method (``GFN2-xTB``) or a
level of :mod:`mlipft.xtb` (``target``); xTB runs neutral and closed-shell (the units have even
electron counts) on ``--threads`` OpenMP threads (threadpoolctl: spinning threads on a busy
machine made xTB ~1000x slower). ``reference --model`` relaxes with a MACE model standing in for
the reference level (the paper world, where the reference cannot be computed; ``source`` is its
``--label``), the table a ``model`` run's ``--reference-model`` (the same model) is judged against.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

from ..io import atomic_path, read_configs, write_atomic
from .repulsion import (  # the repulsion analysis's xTB levels and pair names
    level_method,
    pair_name,
)

log = logging.getLogger(__name__)

COLUMNS = (
    "structure_id", "composition", "n_atoms", "pressure_gpa", "cycle", "status", "message", "steps", "energy_ev",
    "enthalpy_per_atom_ev", "volume_per_atom_angstrom3", "volume_ratio", "min_distance_angstrom",
    "min_distance_ratio", "closest_pair", "reference_energy_ev", "energy_diff_ev_per_atom",
    "force_rmse_ev_per_angstrom", "floor_enthalpy_per_atom_ev", "flag_distance", "flag_energy", "flag_cell",
    "flag_disagreement", "flagged", "source",
)
CRITERIA = ("distance", "energy", "cell", "disagreement")
FLAG_COLUMNS = tuple(f"flag_{c}" for c in CRITERIA) + ("flagged",)
STATUSES = ("converged", "unconverged", "diverged", "error")
FAILED = ("diverged", "error")  # statuses of a cycle that stopped its structure

#: Every parameter and its default (the module docstring says what each does).
DEFAULTS: dict = {
    # generation
    "units": ["NaCl", "H2O", "NaOH", "HCl"],   # neutral, even-electron formula units
    "n_compositions": 3,                       # distinct compositions drawn
    "structures_per_composition": 2,           # random crystals per composition
    "min_atoms": 4,                            # atoms per cell, at least
    "max_atoms": 12,                           # atoms per cell, at most
    "volume_factor": 1.1,                      # PyXtal's volume factor
    "max_tries": 50,                           # PyXtal attempts per structure
    # relaxation
    "pressures_gpa": [0.1, 50.0],              # each structure is relaxed at each
    "cycles": 3,                               # relax-rattle cycles
    "fmax": 0.05,                              # eV/Å
    "max_steps": 300,                          # FIRE steps per cycle
    "rattle_angstrom": 0.1,                    # Gaussian displacement between cycles, Å
    "rattle_strain": 0.02,                     # Gaussian symmetric strain between cycles
    "xtb_electronic_temperature_k": 300.0,     # tblite's electronic temperature (xTB levels), K
    # criteria
    "floor_factor": 0.5,                       # distance floor: x the sum of covalent radii
    "pair_floors_angstrom": {},                # {"H-H": 0.5}: floors of given pairs, Å
    "energy_margin_ev_per_atom": 0.5,          # below the reference floor by more: a hole
    "volume_min_angstrom3_per_atom": 3.0,      # collapse below
    "volume_max_angstrom3_per_atom": 80.0,     # explosion above
    "volume_ratio_min": 0.2,                   # final / initial volume below: collapse
    "volume_ratio_max": 5.0,                   # final / initial volume above: explosion
    "disagreement_energy_ev_per_atom": 0.3,    # |E_model - E_ref| / N above: disagreement
    "disagreement_force_ev_per_angstrom": 2.0,  # RMS force difference above: disagreement
}
_INTEGERS = {"n_compositions": 1, "structures_per_composition": 1, "min_atoms": 1, "max_atoms": 1,
             "max_tries": 1, "cycles": 1, "max_steps": 1}  # key: smallest value
_POSITIVE = ("volume_factor", "fmax", "floor_factor", "xtb_electronic_temperature_k")
_NON_NEGATIVE = ("rattle_angstrom", "rattle_strain", "energy_margin_ev_per_atom", "volume_min_angstrom3_per_atom",
                 "volume_max_angstrom3_per_atom", "volume_ratio_min", "volume_ratio_max",
                 "disagreement_energy_ev_per_atom", "disagreement_force_ev_per_angstrom")
_CHECKED = "_checked"  # the mark of a parameter dict that load_params returned


# ----------------------------------------------------------------------------- parameters
class ParamsError(ValueError):
    """A parameter of the RSS analysis is wrong; the message names the key (or the unit)."""


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamsError(f"rss params: {key} must be a finite number, not {value!r}")
    return float(value)


def parse_unit(unit: str, elements: Sequence[str] | None = None) -> dict[str, int]:
    """A formula unit -> ``{element: count}``; a unit that is not a formula of known elements,
    has an odd number of electrons (sum of atomic numbers), or, with ``elements``, has an element
    outside them is a :class:`ParamsError` naming it."""
    from ase.formula import Formula

    if not isinstance(unit, str) or not unit.strip():
        raise ParamsError(f"rss params: units: {unit!r} is not a chemical formula")
    try:
        count = dict(Formula(unit.strip()).count())
    except Exception as err:  # noqa: BLE001 -- ase raises ValueError and others on odd strings
        raise ParamsError(f"rss params: units: {unit!r} is not a chemical formula ({err})") from None
    unknown = sorted(e for e in count if e not in atomic_numbers or e == "X")
    if unknown or not count or any(n < 1 for n in count.values()):
        raise ParamsError(f"rss params: units: {unit!r} has unknown element(s) {unknown}" if unknown
                          else f"rss params: units: {unit!r} is not a chemical formula")
    electrons = sum(atomic_numbers[e] * n for e, n in count.items())
    if electrons % 2:
        raise ParamsError(f"rss params: units: {unit!r} has {electrons} electrons (odd): a unit must be a "
                          "neutral closed-shell formula unit with an even number of electrons")
    if elements is not None:
        foreign = sorted(set(count) - set(elements))
        if foreign:
            raise ParamsError(f"rss params: units: {unit!r} has element(s) {foreign} outside the elements "
                              f"{list(elements)}")
    return count


def parse_pair(pair: str, key: str = "pair_floors_angstrom") -> str:
    """``"Cl-Na"`` -> ``"Na-Cl"``: a pair of element symbols ordered by atomic number."""
    parts = pair.split("-") if isinstance(pair, str) else []
    if len(parts) != 2 or any(p not in atomic_numbers or p == "X" for p in parts):
        raise ParamsError(f"rss params: {key}: {pair!r} is not a pair of element symbols A-B (e.g. Na-Cl)")
    return pair_name(*parts)


def _given(params, what: str) -> dict:
    """A dict from a dict, a JSON string, a JSON/YAML file or None."""
    if params is None:
        return {}
    if isinstance(params, dict):
        return dict(params)
    text = str(params).strip()
    if not text.startswith("{") and Path(text).is_file():
        path = Path(text)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            given = yaml.safe_load(text) or {}
            if not isinstance(given, dict):
                raise ParamsError(f"{what}: expected a mapping (key: value), got {type(given).__name__}")
            return given
    try:
        given = json.loads(text)
    except json.JSONDecodeError as err:
        raise ParamsError(f"{what}: not a JSON object or a file: {err}") from None
    if not isinstance(given, dict):
        raise ParamsError(f"{what}: expected a JSON object (key: value), got {type(given).__name__}")
    return given


def load_params(params=None) -> dict:
    """:data:`DEFAULTS` overlaid with ``params`` (a dict, a JSON string, a JSON/YAML file or None),
    every key checked (:class:`ParamsError` names the key)."""
    given = {k: v for k, v in _given(params, "rss params").items() if k != _CHECKED}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ParamsError(f"rss params: unknown key(s) {unknown} (known: {sorted(DEFAULTS)})")
    out = {**DEFAULTS, **given}
    for key, lowest in _INTEGERS.items():
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ParamsError(f"rss params: {key} must be an integer >= {lowest}, not {value!r}")
    if out["max_atoms"] < out["min_atoms"]:
        raise ParamsError(f"rss params: max_atoms ({out['max_atoms']}) must be >= min_atoms ({out['min_atoms']})")
    for key in _POSITIVE:
        if _number(out[key], key) <= 0:
            raise ParamsError(f"rss params: {key} must be > 0, not {out[key]!r}")
        out[key] = float(out[key])
    for key in _NON_NEGATIVE:
        if _number(out[key], key) < 0:
            raise ParamsError(f"rss params: {key} must be >= 0, not {out[key]!r}")
        out[key] = float(out[key])
    if out["rattle_strain"] >= 0.5:
        raise ParamsError(f"rss params: rattle_strain must be < 0.5, not {out['rattle_strain']!r}")
    for lo, hi in (("volume_min_angstrom3_per_atom", "volume_max_angstrom3_per_atom"),
                   ("volume_ratio_min", "volume_ratio_max")):
        if not out[hi] > out[lo]:
            raise ParamsError(f"rss params: {hi} ({out[hi]:g}) must be > {lo} ({out[lo]:g})")
    if not isinstance(out["units"], (list, tuple)) or not out["units"]:
        raise ParamsError(f"rss params: units must be a non-empty list of formula units, not {out['units']!r}")
    out["units"] = [str(u).strip() for u in out["units"]]
    for unit in out["units"]:
        parse_unit(unit)
    if len(set(out["units"])) != len(out["units"]):
        raise ParamsError(f"rss params: units lists a unit twice: {out['units']}")
    pressures = out["pressures_gpa"]
    if not isinstance(pressures, (list, tuple)) or not pressures:
        raise ParamsError(f"rss params: pressures_gpa must be a non-empty list of numbers, not {pressures!r}")
    out["pressures_gpa"] = [_number(p, f"pressures_gpa[{i}]") for i, p in enumerate(pressures)]
    if len(set(out["pressures_gpa"])) != len(out["pressures_gpa"]):
        raise ParamsError(f"rss params: pressures_gpa lists a pressure twice: {out['pressures_gpa']}")
    floors_given = out["pair_floors_angstrom"] or {}
    if not isinstance(floors_given, dict):
        raise ParamsError(f"rss params: pair_floors_angstrom must be an object {{\"A-B\": Å}}, not {floors_given!r}")
    pair_floors = {}
    for pair, value in floors_given.items():
        name = parse_pair(pair)
        if name in pair_floors:
            raise ParamsError(f"rss params: pair_floors_angstrom gives {name} twice")
        if _number(value, f"pair_floors_angstrom[{pair}]") <= 0:
            raise ParamsError(f"rss params: pair_floors_angstrom[{pair}] must be > 0, not {value!r}")
        pair_floors[name] = float(value)
    out["pair_floors_angstrom"] = pair_floors
    out[_CHECKED] = True
    return out


def _checked(params) -> dict:
    """``params`` as :func:`load_params` returns it (checked once: its result is marked)."""
    return params if isinstance(params, dict) and params.get(_CHECKED) is True else load_params(params)


def load_shift(shift=None) -> dict[str, float]:
    """The reference shift, ``{element: eV per atom}``, from a dict, a JSON string, a JSON/YAML
    file or None (no shift); an unknown element or a non-number is a :class:`ParamsError`."""
    given = _given(shift, "reference shift")
    out = {}
    for element, value in given.items():
        if element not in atomic_numbers or element == "X":
            raise ParamsError(f"reference shift: {element!r} is not an element symbol")
        out[element] = _number(value, f"reference shift[{element}]")
    return out


def e0_shift(path, mode: str) -> dict[str, float]:
    """The shift that puts a foundation standing in as the reference on a fine-tuned run's energy
    scale: per element, the run's E0 (``mode`` of its E0 file, :mod:`mlipft.e0s`) minus the
    foundation's own (mode ``foundation``): a model fitted with those E0s predicts E_foundation
    + sum of these shifts for a structure the foundation already describes."""
    with open(path) as handle:
        modes = json.load(handle)["modes"]
    for name in (mode, "foundation"):
        if name not in modes:
            raise ParamsError(f"{path}: no E0 mode {name!r} (has {sorted(modes)})")
    return {chemical_symbols[int(z)]: float(modes[mode][z]) - float(modes["foundation"][z])
            for z in modes[mode] if z in modes["foundation"]}


def shift_of(symbols: Sequence[str] | dict, shift: dict[str, float] | None) -> float:
    """The total shift (eV) of a structure's symbols or an ``{element: count}``; an element
    without a shift adds nothing."""
    if not shift:
        return 0.0
    counts = symbols if isinstance(symbols, dict) else Counter(symbols)
    return float(sum(shift.get(e, 0.0) * n for e, n in counts.items()))


# ----------------------------------------------------------------------------- generation
def candidate_compositions(params=None) -> list[dict[str, int]]:
    """Every distinct composition (``{element: count}``) that is a non-negative integer
    combination of the units with ``min_atoms``..``max_atoms`` atoms, in Hill-formula order."""
    from ase.formula import Formula

    params = _checked(params)
    unit_counts = [parse_unit(u) for u in params["units"]]
    sizes = [sum(c.values()) for c in unit_counts]
    ranges = [range(params["max_atoms"] // s + 1) for s in sizes]
    found = {}
    for multipliers in itertools.product(*ranges):
        total = sum(m * s for m, s in zip(multipliers, sizes, strict=True))
        if not params["min_atoms"] <= total <= params["max_atoms"]:
            continue
        comp: Counter = Counter()
        for m, c in zip(multipliers, unit_counts, strict=True):
            for e, n in c.items():
                comp[e] += m * n
        comp = {e: n for e, n in comp.items() if n}
        found.setdefault(Formula.from_dict(comp).format("hill"), comp)
    return [found[k] for k in sorted(found)]


def draw_compositions(params=None, seed: int = 0) -> list[dict[str, int]]:
    """``n_compositions`` distinct candidates drawn without replacement from
    ``numpy.random.default_rng(seed)`` (an error when there are fewer)."""
    params = _checked(params)
    candidates = candidate_compositions(params)
    if len(candidates) < params["n_compositions"]:
        raise ParamsError(f"rss params: n_compositions {params['n_compositions']} but the units {params['units']} "
                          f"give only {len(candidates)} compositions of {params['min_atoms']}..{params['max_atoms']} "
                          "atoms")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(candidates), size=params["n_compositions"], replace=False)
    return [candidates[int(i)] for i in picks]


@contextlib.contextmanager
def _seeded_globals(seed: int):
    """numpy's and Python's global random states seeded from ``seed``, restored on exit."""
    import random

    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


_GROUPS: dict[tuple[int, ...], list[int]] = {}


def compatible_groups(counts: Sequence[int]) -> list[int]:
    """The space groups of 2..230 whose Wyckoff positions can hold ``counts`` atoms per species."""
    key = tuple(int(c) for c in counts)
    if key not in _GROUPS:
        from pyxtal.symmetry import Group

        _GROUPS[key] = [g for g in range(2, 231) if Group(g).check_compatible(list(key))[0]]
    return _GROUPS[key]


def random_crystal(composition: dict[str, int], rng: np.random.Generator, params=None) -> tuple[Atoms, int]:
    """One random crystal of ``composition`` and its space group, from PyXtal (see the module
    docstring); a :class:`RuntimeError` naming the composition after ``max_tries`` failures."""
    from ase.formula import Formula
    from pyxtal import pyxtal

    params = _checked(params)
    species = sorted(composition, key=lambda s: atomic_numbers[s])
    counts = [composition[s] for s in species]
    name = Formula.from_dict(composition).format("hill")
    groups = compatible_groups(counts)
    if not groups:
        raise RuntimeError(f"rss: no space group of 2..230 can hold the composition {name}")
    last = "no valid crystal"
    for _ in range(params["max_tries"]):
        group = int(rng.choice(groups))
        crystal = pyxtal()
        try:
            with contextlib.redirect_stdout(None):
                crystal.from_random(3, group, species, counts, factor=params["volume_factor"], random_state=rng,
                                    max_count=1)
            if not crystal.valid:
                continue
            atoms = crystal.to_ase(resort=True)
        except Exception as err:  # noqa: BLE001 -- pyxtal raises RuntimeError, ValueError, ...
            last = f"{type(err).__name__}: {err}"
            continue
        if len(atoms) == sum(counts) and atoms.get_volume() > 0:
            return atoms, int(crystal.group.number)
    raise RuntimeError(f"rss: PyXtal gave no crystal of the composition {name} in {params['max_tries']} tries "
                       f"(last: {last}); raise max_tries or volume_factor, or drop the composition's units")


def generate(params=None, seed: int = 0, elements: Sequence[str] | None = None) -> list[Atoms]:
    """The random crystals (see the module docstring): ``n_compositions`` x
    ``structures_per_composition`` frames with ``info`` ``structure_id``, ``composition``,
    ``spacegroup``, ``seed``. ``elements``: every unit must be made of them."""
    params = _checked(params)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParamsError(f"seed must be an integer >= 0, not {seed!r}")
    if elements is not None:
        unknown = [e for e in elements if e not in atomic_numbers or e == "X"]
        if unknown:
            raise ParamsError(f"elements: {unknown} are not element symbols")
        for unit in params["units"]:
            parse_unit(unit, elements)
    frames = []
    with _seeded_globals(seed):
        compositions = draw_compositions(params, seed)
        for composition in compositions:
            for _ in range(params["structures_per_composition"]):
                structure_id = len(frames)
                rng = np.random.default_rng([seed, structure_id])
                crystal, group = random_crystal(composition, rng, params)
                atoms = Atoms(crystal.numbers, positions=crystal.positions, cell=crystal.cell, pbc=True)
                atoms.wrap()
                atoms.info = {"structure_id": structure_id, "composition": atoms.get_chemical_formula(mode="hill"),
                              "spacegroup": group, "seed": int(seed)}
                frames.append(atoms)
    return frames


# ----------------------------------------------------------------------------- measuring
def pair_floor(a: str, b: str, params=None) -> float:
    """The distance floor of a pair (Å): ``pair_floors_angstrom`` or ``floor_factor`` x the sum of
    the two covalent radii."""
    params = _checked(params)
    name = pair_name(a, b)
    if name in params["pair_floors_angstrom"]:
        return params["pair_floors_angstrom"][name]
    return params["floor_factor"] * float(covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])


def _pair_distances(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, d)``: the minimum-image distance of every pair i < j and of every atom to its own
    nearest periodic image (i == j), Å."""
    n = len(atoms)
    i, j = np.triu_indices(n, 1)
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))[i, j] if n > 1 else np.zeros(0)
    if atoms.pbc.all():
        from ase.geometry import minkowski_reduce

        reduced, _ = minkowski_reduce(np.asarray(atoms.cell))
        shifts = np.array([s for s in itertools.product((-1, 0, 1), repeat=3) if any(s)])
        self_image = float(np.linalg.norm(shifts @ reduced, axis=1).min())
        i, j = np.concatenate([i, np.arange(n)]), np.concatenate([j, np.arange(n)])
        d = np.concatenate([d, np.full(n, self_image)])
    return i, j, d


def closest_contact(atoms: Atoms, params=None) -> tuple[float, float, str]:
    """``(min_distance, min_distance_ratio, closest_pair)``: the shortest distance (Å), the
    smallest distance / pair floor and the pair "A-B" of that smallest ratio (NaN, NaN, "" for
    a single atom without a cell)."""
    params = _checked(params)
    i, j, d = _pair_distances(atoms)
    if len(d) == 0 or not np.all(np.isfinite(d)):
        return float("nan"), float("nan"), ""
    symbols = atoms.get_chemical_symbols()
    cache: dict[tuple[str, str], float] = {}
    floor = np.empty(len(d))
    for k, (a, b) in enumerate(zip(i, j, strict=True)):
        key = (symbols[a], symbols[b])
        if key not in cache:
            cache[key] = pair_floor(*key, params)
        floor[k] = cache[key]
    ratio = d / floor
    k = int(np.argmin(ratio))
    return float(d.min()), float(ratio[k]), pair_name(symbols[i[k]], symbols[j[k]])


def _cached_energy(atoms: Atoms) -> float:
    """The energy the calculator of ``atoms`` holds for them (NaN when none: nothing is computed)."""
    energy = None
    if atoms.calc is not None:
        with contextlib.suppress(Exception):
            energy = atoms.calc.get_property("energy", atoms, allow_calculation=False)
    return float(energy) if energy is not None and np.isfinite(energy) else float("nan")


def measure(atoms: Atoms, pressure_gpa: float, initial_volume: float, params=None) -> dict:
    """The geometry and energy columns of a relaxed structure (the energy its calculator holds
    for it; NaN when it holds none or a non-finite one)."""
    params = _checked(params)
    n = len(atoms)
    energy = _cached_energy(atoms)
    volume = float(abs(atoms.get_volume())) if atoms.pbc.all() and np.all(np.isfinite(atoms.cell)) else np.nan
    enthalpy = (energy + pressure_gpa * units.GPa * volume) / n
    distance, ratio, pair = (closest_contact(atoms, params) if np.all(np.isfinite(atoms.positions))
                             and np.isfinite(volume) and volume > 0 else (np.nan, np.nan, ""))
    return {"n_atoms": n, "energy_ev": energy, "enthalpy_per_atom_ev": enthalpy if np.isfinite(enthalpy) else np.nan,
            "volume_per_atom_angstrom3": volume / n, "volume_ratio": volume / initial_volume,
            "min_distance_angstrom": distance, "min_distance_ratio": ratio, "closest_pair": pair}


# ----------------------------------------------------------------------------- relaxation
class Diverged(RuntimeError):
    """A relaxation left the physical range (see the module docstring)."""


def _check_state(atoms: Atoms, initial_volume: float, params: dict, bounds: bool = True) -> None:
    """Raise :class:`Diverged` when the current step is non-finite or (``bounds``) out of the
    volume bounds."""
    energy = atoms.get_potential_energy()
    if not np.isfinite(energy):
        raise Diverged(f"non-finite energy {energy}")
    if not np.all(np.isfinite(atoms.get_forces())):
        raise Diverged("non-finite forces")
    if not np.all(np.isfinite(atoms.get_stress())):
        raise Diverged("non-finite stress")
    if not (np.all(np.isfinite(atoms.positions)) and np.all(np.isfinite(atoms.cell))):
        raise Diverged("non-finite positions or cell")
    if not bounds:
        return
    volume = abs(atoms.get_volume())
    per_atom, ratio = volume / len(atoms), volume / initial_volume
    if not params["volume_min_angstrom3_per_atom"] <= per_atom <= params["volume_max_angstrom3_per_atom"]:
        raise Diverged(f"volume {per_atom:.3g} Å^3/atom outside [{params['volume_min_angstrom3_per_atom']:g}, "
                       f"{params['volume_max_angstrom3_per_atom']:g}]")
    if not params["volume_ratio_min"] <= ratio <= params["volume_ratio_max"]:
        raise Diverged(f"volume ratio {ratio:.3g} outside [{params['volume_ratio_min']:g}, "
                       f"{params['volume_ratio_max']:g}]")


def _message(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _frechet_filter(atoms: Atoms, pressure_gpa: float):
    """ASE's ``FrechetCellFilter`` at ``pressure_gpa`` whose forces are computed once per geometry
    (an optimizer asks for them up to three times a step, and the matrix functions of the cell
    gradient cost more than a small model's energy)."""
    from ase.filters import FrechetCellFilter

    class CachedFrechetCellFilter(FrechetCellFilter):
        _key = None
        _cached = None

        def get_forces(self, **kwargs):
            key = (self.atoms.positions.tobytes(), np.asarray(self.atoms.cell).tobytes(), tuple(sorted(kwargs.items())))
            if key != self._key:
                self._cached = (super().get_forces(**kwargs), self.stress)
                self._key = key
            forces, self.stress = self._cached
            return forces.copy()

    return CachedFrechetCellFilter(atoms, scalar_pressure=pressure_gpa * units.GPa)


def relax_cycle(atoms: Atoms, calc, pressure_gpa: float, initial_volume: float, params=None) -> tuple[str, int, str]:
    """Relax ``atoms`` in place (cell and positions, FIRE, ``FrechetCellFilter`` at
    ``pressure_gpa``) with ``calc``: ``(status, steps, message)``; never raises for a diverging
    relaxation or a failing calculator."""
    from ase.optimize import FIRE

    params = _checked(params)
    atoms.calc = calc
    opt = None
    try:
        opt = FIRE(_frechet_filter(atoms, pressure_gpa), logfile=None)
        with np.errstate(all="ignore"):
            for converged in opt.irun(fmax=params["fmax"], steps=params["max_steps"]):
                _check_state(atoms, initial_volume, params, bounds=opt.nsteps > 0)
                if converged:
                    return "converged", int(opt.nsteps), ""
        return "unconverged", int(opt.nsteps), ""
    except Diverged as err:
        return "diverged", int(opt.nsteps) if opt else 0, str(err)
    except (np.linalg.LinAlgError, FloatingPointError, OverflowError, ZeroDivisionError) as err:
        return "diverged", int(opt.nsteps) if opt else 0, _message(err)
    except Exception as err:  # noqa: BLE001 -- the calculator raised (xTB SCF failure, ...)
        return "error", int(opt.nsteps) if opt else 0, _message(err)


def rattle(atoms: Atoms, rng: np.random.Generator, params=None) -> None:
    """Gaussian displacements (``rattle_angstrom``) and a symmetric Gaussian strain
    (``rattle_strain``) of ``atoms``, in place (the strain first, fractional coordinates kept)."""
    params = _checked(params)
    strain = rng.normal(0.0, params["rattle_strain"], (3, 3))
    strain = 0.5 * (strain + strain.T)
    atoms.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + strain), scale_atoms=True)
    atoms.positions = atoms.positions + rng.normal(0.0, params["rattle_angstrom"], (len(atoms), 3))


def _factory(calculator) -> Callable[[], object]:
    """A zero-argument maker of calculators from a calculator (always that one) or a maker."""
    if not isinstance(calculator, type) and hasattr(calculator, "calculate"):
        return lambda: calculator
    if callable(calculator):
        return calculator
    raise TypeError(f"not an ASE calculator nor a maker of one: {calculator!r}")


def single_point(atoms: Atoms, calculator, shift: dict[str, float] | None = None) -> tuple[float, np.ndarray | None, str]:
    """``(energy + shift, forces, message)`` of ``calculator`` on a copy of ``atoms``; a failure
    (or a non-finite result) is ``(nan, None, message)``."""
    copy = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    copy.calc = _factory(calculator)()
    try:
        energy = float(copy.get_potential_energy())
        forces = np.array(copy.get_forces(), dtype=float)
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise RuntimeError("non-finite energy or forces")
    except Exception as err:  # noqa: BLE001 -- xTB SCF failure, ...
        return float("nan"), None, _message(err)
    return energy + shift_of(copy.get_chemical_symbols(), shift), forces, ""


def relax(frame: Atoms, calculator, params=None, reference=None, shift: dict[str, float] | None = None,
          source: str = "model") -> list[dict]:
    """Every cycle of a structure at every pressure: the rows of the table (flag and floor columns
    empty: :func:`flags` fills them). ``calculator``: an ASE calculator or a zero-argument maker of
    one (called once per pressure: xTB's tblite keeps no usable state after a failure);
    ``reference`` likewise, for a single point on every relaxed (not diverged, not failed) cycle."""
    params = _checked(params)
    make = _factory(calculator)
    make_reference = _factory(reference) if reference is not None else None
    base = Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
    initial_volume = float(abs(base.get_volume()))
    structure_id = int(frame.info.get("structure_id", 0))
    seed = int(frame.info.get("seed", 0))
    composition = str(frame.info.get("composition", base.get_chemical_formula(mode="hill")))
    rows = []
    for k, pressure in enumerate(params["pressures_gpa"]):
        atoms, calc = base.copy(), make()
        for cycle in range(params["cycles"]):
            if cycle:
                rattle(atoms, np.random.default_rng([seed, structure_id, k, cycle]), params)
            status, steps, message = relax_cycle(atoms, calc, pressure, initial_volume, params)
            row = {"structure_id": structure_id, "composition": composition, "pressure_gpa": float(pressure),
                   "cycle": cycle, "status": status, "message": message, "steps": steps,
                   **measure(atoms, pressure, initial_volume, params), "reference_energy_ev": np.nan,
                   "energy_diff_ev_per_atom": np.nan, "force_rmse_ev_per_angstrom": np.nan, "source": source}
            if make_reference is not None and status not in FAILED:
                energy, forces, why = single_point(atoms, make_reference(), shift)
                if forces is None:
                    log.warning("structure %d (%s) at %g GPa, cycle %d: the reference failed (%s)", structure_id,
                                composition, pressure, cycle, why)
                    row["message"] = f"reference: {why}"
                else:
                    model_forces = atoms.get_forces()
                    row.update({"reference_energy_ev": energy,
                                "energy_diff_ev_per_atom": (row["energy_ev"] - energy) / len(atoms),
                                "force_rmse_ev_per_angstrom": float(np.sqrt(np.mean((model_forces - forces) ** 2)))})
            rows.append(row)
            if status in FAILED:
                log.info("structure %d (%s) at %g GPa: cycle %d %s (%s); its remaining cycles are skipped",
                         structure_id, composition, pressure, cycle, status, message)
                break
    return rows


def run_rss(frames: Sequence[Atoms], calculator, params=None, reference=None, floors_table=None,
            shift: dict[str, float] | None = None, source: str = "model"):
    """The table of :data:`COLUMNS` of every structure (:func:`relax`), flagged by :func:`flags`
    with ``floors_table`` (:func:`floors`; None: the energy criterion is NaN)."""
    import pandas as pd

    params = _checked(params)
    rows = []
    for frame in frames:
        start = time.perf_counter()
        mine = relax(frame, calculator, params, reference, shift, source)
        rows.extend(mine)
        statuses = Counter(r["status"] for r in mine)
        log.info("structure %s (%s, %d atoms): %s in %.1f s", frame.info.get("structure_id", "?"),
                 mine[0]["composition"], len(frame), ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())),
                 time.perf_counter() - start)
    table = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in table.columns:
            table[column] = np.nan
    return flags(table[list(COLUMNS)], floors_table, params)


# ----------------------------------------------------------------------------- criteria
def floors(reference_table, shift: dict[str, float] | None = None):
    """The energy floors: per (composition, pressure_gpa) the lowest ``enthalpy_per_atom_ev`` of
    the ``converged`` rows of ``reference_table``, plus the reference shift per atom of the
    composition: columns ``composition, pressure_gpa, floor_enthalpy_per_atom_ev``."""
    import pandas as pd
    from ase.formula import Formula

    ok = reference_table[(reference_table.status == "converged")
                         & np.isfinite(reference_table.enthalpy_per_atom_ev.astype(float))]
    out = (ok.groupby(["composition", "pressure_gpa"], sort=True).enthalpy_per_atom_ev.min()
           .rename("floor_enthalpy_per_atom_ev").reset_index())
    if shift and len(out):
        per_atom = []
        for name in out.composition:
            count = Formula(name).count()
            per_atom.append(shift_of(count, shift) / sum(count.values()))
        out["floor_enthalpy_per_atom_ev"] += np.asarray(per_atom)
    return pd.DataFrame(out, columns=["composition", "pressure_gpa", "floor_enthalpy_per_atom_ev"])


def _flag(condition, evaluable):
    return np.where(evaluable, np.where(condition, 1.0, 0.0), np.nan)


def flags(table, floors_table=None, params=None):
    """A copy of ``table`` with the four flag columns and ``flagged`` (re)computed from its
    numeric columns and the thresholds of ``params`` (see the module docstring), and the
    ``floor_enthalpy_per_atom_ev`` column from ``floors_table`` (:func:`floors`; None keeps the
    table's). A composition/pressure without a floor is logged."""
    import pandas as pd

    params = _checked(params)
    out = table.copy()
    num = {c: pd.to_numeric(out[c], errors="coerce").to_numpy(dtype=float) for c in (
        "n_atoms", "energy_ev", "enthalpy_per_atom_ev", "volume_per_atom_angstrom3", "volume_ratio",
        "min_distance_ratio", "reference_energy_ev", "force_rmse_ev_per_angstrom")}
    if floors_table is not None:
        key = list(zip(out.composition.astype(str), np.round(out.pressure_gpa.astype(float), 6), strict=True))
        lookup = {(str(c), round(float(p), 6)): float(f) for c, p, f in zip(
            floors_table.composition, floors_table.pressure_gpa, floors_table.floor_enthalpy_per_atom_ev, strict=True)}
        out["floor_enthalpy_per_atom_ev"] = [lookup.get(k, np.nan) for k in key]
        missing = sorted({k for k in key if k not in lookup})
        if missing:
            log.warning("no converged reference structure (no energy floor) for %s: the energy criterion is NaN there",
                        ", ".join(f"{c} at {p:g} GPa" for c, p in missing))
    floor = pd.to_numeric(out["floor_enthalpy_per_atom_ev"], errors="coerce").to_numpy(dtype=float)
    ok = ~out.status.isin(FAILED).to_numpy()
    ratio = num["min_distance_ratio"]
    out["flag_distance"] = _flag(ratio < 1.0, ok & np.isfinite(ratio))
    h = num["enthalpy_per_atom_ev"]
    out["flag_energy"] = _flag(h < floor - params["energy_margin_ev_per_atom"], ok & np.isfinite(h) & np.isfinite(floor))
    v, r = num["volume_per_atom_angstrom3"], num["volume_ratio"]
    with np.errstate(invalid="ignore"):
        bad_cell = ((v < params["volume_min_angstrom3_per_atom"]) | (v > params["volume_max_angstrom3_per_atom"])
                    | (r < params["volume_ratio_min"]) | (r > params["volume_ratio_max"]))
    out["flag_cell"] = np.where(ok, _flag(bad_cell, np.isfinite(v) & np.isfinite(r)), 1.0)
    diff = (num["energy_ev"] - num["reference_energy_ev"]) / num["n_atoms"]
    out["energy_diff_ev_per_atom"] = diff
    rmse = num["force_rmse_ev_per_angstrom"]
    with np.errstate(invalid="ignore"):
        disagree = (np.abs(diff) > params["disagreement_energy_ev_per_atom"]) | (
            rmse > params["disagreement_force_ev_per_angstrom"])
    out["flag_disagreement"] = _flag(disagree, ok & np.isfinite(diff) & np.isfinite(rmse))
    criteria = out[[f"flag_{c}" for c in CRITERIA]].to_numpy(dtype=float)
    out["flagged"] = np.where((criteria == 1).any(axis=1), 1.0, np.where(np.isfinite(criteria).any(axis=1), 0.0, np.nan))
    return out


def read_table(path):
    """An RSS CSV (:data:`COLUMNS`), with a clear error naming the file and the missing columns;
    flags as floats (NaN where not evaluable)."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=True)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: an RSS table needs the columns {list(COLUMNS)}; missing {missing}")
    bad = sorted(set(frame.status.astype(str)) - set(STATUSES))
    if bad:
        raise ValueError(f"{path}: unknown status(es) {bad} (expected {list(STATUSES)})")
    frame["message"] = frame.message.fillna("").astype(str)
    frame["closest_pair"] = frame.closest_pair.fillna("").astype(str)
    return frame.astype({"composition": str, "status": str, "source": str,
                         **{c: float for c in FLAG_COLUMNS}})


def structure_flags(table):
    """One row per (structure_id, composition, pressure_gpa): each criterion's flag and
    ``flagged``, the maximum over the cycles (NaN only when every cycle is NaN), and
    ``n_cycles``."""
    keys = ["structure_id", "composition", "pressure_gpa"]
    grouped = table.groupby(keys, sort=True)
    out = grouped[list(FLAG_COLUMNS)].max()
    out["n_cycles"] = grouped.size()
    return out.reset_index().rename(columns={f"flag_{c}": c for c in CRITERIA})


def flagged_fractions(table):
    """Per ``pressure_gpa``: ``n_structures``, the fraction of structures flagged by each
    criterion and by any (``distance, energy, cell, disagreement, flagged``; a structure whose
    flag is NaN counts as not flagged) and ``n_evaluated_<criterion>`` (structures with a flag)."""
    import pandas as pd

    per = structure_flags(table)
    rows = []
    for pressure, sub in per.groupby("pressure_gpa", sort=True):
        row = {"pressure_gpa": float(pressure), "n_structures": len(sub)}
        for c in (*CRITERIA, "flagged"):
            row[c] = float((sub[c] == 1).sum() / len(sub))
        for c in (*CRITERIA, "flagged"):
            row[f"n_evaluated_{c}"] = int(sub[c].notna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- CLI
def xtb_maker(method: str, electronic_temperature: float = 300.0) -> Callable[[], object]:
    """A maker of fresh neutral closed-shell tblite calculators of ``method`` (electronic
    temperature in K)."""
    from .. import xtb

    return lambda: xtb.calculator(method, 0, 1, electronic_temperature=electronic_temperature)


def _write(table, path) -> None:
    out = table[list(COLUMNS)].copy()
    for c in FLAG_COLUMNS:
        out[c] = out[c].astype("Int64")  # 0/1, empty where not evaluable
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)


def _structures(path) -> list[Atoms]:
    frames = read_configs(path)
    if not frames:
        raise SystemExit(f"{path}: no structures")
    lacking = [i for i, a in enumerate(frames) if "structure_id" not in a.info or not a.pbc.all()]
    if lacking:
        raise SystemExit(f"{path}: frames {lacking[:5]} lack info structure_id or a periodic cell (write them with "
                         "`python -m mlipft.analysis.rss generate`)")
    return frames


def _mace(model: str, device: str, dtype: str, head: str | None, frames: Sequence[Atoms], what: str):
    from .md import mace_calculator

    if not Path(model).exists():
        raise SystemExit(f"{what}: MACE model not found: {model}")
    calc = mace_calculator(model, device=device, default_dtype=dtype, head=head)
    known = {int(z) for z in getattr(calc.models[0], "atomic_numbers", [])}
    needed = {int(z) for a in frames for z in a.numbers}
    if known and needed - known:
        raise SystemExit(f"{what} {model} has no element(s) {[chemical_symbols[z] for z in sorted(needed - known)]} "
                         "of the structures")
    return calc


def _summary(table, what: str, seconds: float, output) -> None:
    statuses = Counter(table.status)
    fractions = flagged_fractions(table)
    log.info("%s: %d structures x %d pressures, %d cycles (%s) in %.1f s -> %s", what, table.structure_id.nunique(),
             table.pressure_gpa.nunique(), len(table), ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())),
             seconds, output)
    for _, row in fractions.iterrows():
        log.info("  %g GPa: flagged %.0f%% of %d (distance %.0f%%, energy %.0f%% of %d evaluated, cell %.0f%%, "
                 "disagreement %.0f%% of %d evaluated)", row.pressure_gpa, 100 * row.flagged, row.n_structures,
                 100 * row.distance, 100 * row.energy, row.n_evaluated_energy, 100 * row.cell,
                 100 * row.disagreement, row.n_evaluated_disagreement)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.rss",
                                     description="Random structure search for holes in a model's energy surface")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", help="JSON object or JSON/YAML file over the defaults (module docstring)")
    g = sub.add_parser("generate", parents=[common], help="random crystals (PyXtal)")
    g.add_argument("--elements", nargs="+", help="the benchmark's elements: every unit must be made of them")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--output", required=True, help="extxyz to write")
    relaxing = argparse.ArgumentParser(add_help=False, parents=[common])
    relaxing.add_argument("--structures", required=True, help="extxyz written by generate")
    relaxing.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads")
    relaxing.add_argument("--output", required=True, help="CSV to write")
    r = sub.add_parser("reference", parents=[relaxing], help="relaxations at the reference level (the reference "
                                                             "table): an xTB level, or a MACE stand-in")
    level = r.add_mutually_exclusive_group()
    level.add_argument("--level", help="gfn1, gfn2, GFN2-xTB, target, foundation (default: gfn2)")
    level.add_argument("--model", help="a MACE model standing in for the reference (the paper world)")
    r.add_argument("--head", help="head of a multihead --model (default: Default)")
    r.add_argument("--label", help="the source column of a --model run (default: reference)")
    r.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    r.add_argument("--default-dtype", default="float64")
    m = sub.add_parser("model", parents=[relaxing], help="relaxations with a MACE model, flagged against a reference")
    m.add_argument("--model", required=True)
    m.add_argument("--head", help="head of a multihead model (default: Default)")
    m.add_argument("--label", default="model", help="the source column")
    m.add_argument("--reference-table", required=True, help="CSV of the reference's relaxations (the energy floors)")
    ref = m.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference-level", help="single points at this xTB level (gfn1, gfn2, ...)")
    ref.add_argument("--reference-model", help="single points with this MACE model (the paper world's stand-in)")
    m.add_argument("--reference-head")
    m.add_argument("--reference-dtype", default="float64")
    shifts = m.add_mutually_exclusive_group()
    shifts.add_argument("--reference-shift", help="JSON object or file: element -> eV per atom added to the reference")
    shifts.add_argument("--reference-shift-e0s", help="a run's E0 file (mlipft.e0s): the shift is its --e0-mode E0s "
                                                      "minus its foundation's (a stand-in foundation on the run's scale)")
    m.add_argument("--e0-mode", default="estimated", help="with --reference-shift-e0s: the run's E0 mode")
    m.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    m.add_argument("--default-dtype", default="float64")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        params = load_params(args.params)
    except ParamsError as err:
        raise SystemExit(str(err)) from None
    start = time.perf_counter()
    if args.command == "generate":
        try:
            frames = generate(params, args.seed, args.elements)
        except (ParamsError, RuntimeError) as err:
            raise SystemExit(str(err)) from None
        write_atomic(args.output, frames)
        log.info("%d structures of %s in %.1f s -> %s", len(frames),
                 ", ".join(dict.fromkeys(a.info["composition"] for a in frames)), time.perf_counter() - start,
                 args.output)
        return
    frames = _structures(args.structures)
    from threadpoolctl import threadpool_limits

    reference_run = args.command == "reference"
    level = (args.level or (None if args.model else "gfn2")) if reference_run else args.reference_level
    try:
        method = level_method(level) if level else None
    except ValueError as err:
        raise SystemExit(f"--{'level' if reference_run else 'reference-level'}: {err}") from None
    if method:
        import tblite.ase  # noqa: F401  (loads its OpenMP runtime, which threadpool_limits then sets)
    label = method if reference_run and method else (args.label or "reference")
    with threadpool_limits(limits=args.threads):
        if method and reference_run:
            table = run_rss(frames, xtb_maker(method, params["xtb_electronic_temperature_k"]), params, source=label)
        else:
            import torch

            from ..train import resolve_device

            torch.set_num_threads(args.threads)
            device = resolve_device(args.device)
            calc = _mace(args.model, device, args.default_dtype, args.head, frames, "--model")
            if reference_run:  # a MACE stand-in relaxes as the reference
                table = run_rss(frames, calc, params, source=label)
            else:
                try:
                    shift = (e0_shift(args.reference_shift_e0s, args.e0_mode) if args.reference_shift_e0s
                             else load_shift(args.reference_shift))
                except ParamsError as err:
                    raise SystemExit(str(err)) from None
                reference_table = read_table(args.reference_table)
                reference = (xtb_maker(method, params["xtb_electronic_temperature_k"]) if method else
                             _mace(args.reference_model, device, args.reference_dtype, args.reference_head, frames,
                                   "--reference-model"))
                table = run_rss(frames, calc, params, reference, floors(reference_table, shift), shift, label)
    _write(table, args.output)
    _summary(table, f"{args.command} {label}", time.perf_counter() - start, args.output)


__all__ = [
    "COLUMNS",
    "CRITERIA",
    "DEFAULTS",
    "FLAG_COLUMNS",
    "STATUSES",
    "Diverged",
    "ParamsError",
    "candidate_compositions",
    "closest_contact",
    "compatible_groups",
    "draw_compositions",
    "e0_shift",
    "flagged_fractions",
    "flags",
    "floors",
    "generate",
    "level_method",
    "load_params",
    "load_shift",
    "main",
    "measure",
    "pair_floor",
    "pair_name",
    "parse_pair",
    "parse_unit",
    "random_crystal",
    "rattle",
    "read_table",
    "relax",
    "relax_cycle",
    "run_rss",
    "shift_of",
    "single_point",
    "structure_flags",
    "xtb_maker",
]


if __name__ == "__main__":
    main()
