"""Short-range repulsion of a model: dimer curves of every element pair of a benchmark and
compression curves of its structures, against a reference level, and their metrics.

The paper's claim: only multihead replay keeps the foundation's many-body short-range repulsion;
naive fine-tuning, freezing and LoRA lose it. Two probes, each a set of curves:

- **dimer curves** (``kind=dimer``, ``system`` ``A-B``, elements ordered by atomic number): two
  atoms in vacuum (non-periodic, no cell) at distances ``r`` on the MLIP Arena /
  matbench-discovery grid (``flows/diatomics.py``; ``metrics/diatomics/``): from
  ``r_min_factor`` (0.9) x the pair's mean covalent radius to ``r_max_factor`` (3.1) x its mean
  van der Waals radius (Alvarez, ``ase.data.vdw_alvarez``; ``r_max_fallback_angstrom``, 6 Å, when
  an element has none), every ``spacing_angstrom`` (0.01 Å; the grid is ``numpy.linspace`` over
  that range with the smallest number of points whose step is at most the spacing). For a
  homonuclear pair this is MLIP Arena's grid exactly (0.9 x the covalent radius of the element,
  i.e. 0.45 x the covalent bond length: the walls of the 1, 5 and 10 eV thresholds lie inside it,
  which they would not from 0.9 x the covalent radius *sum*). Energies are shifted so that the
  energy at the largest distance is zero (at the largest distance with a finite energy when the
  reference failed there: logged); ``force_ev_per_angstrom`` is the force on the second atom along
  the axis from the first, F·r̂ (positive: repulsive; -dE/dr for a conservative model).
- **compression curves** (``kind=compression``, ``system`` ``frame<i>``): the first ``n_frames``
  structures of a file scaled isotropically by each factor of ``scales`` (1.0 is always added):
  a periodic structure with its cell (fractional coordinates kept), a non-periodic one about its
  centroid. ``energy_ev`` is the energy per atom relative to the unscaled structure (eV/atom),
  ``force_ev_per_angstrom`` the RMS atomic force of the scaled structure, ``r_angstrom`` its
  shortest interatomic distance (minimum image), ``scale`` the factor.

The CSV (long format) has the columns :data:`COLUMNS`: ``kind,system,r_angstrom,scale,energy_ev,
force_ev_per_angstrom,source`` (``scale`` empty on dimer rows; ``source``: ``model`` or the
``--label`` of the model subcommand, or the xTB method of the reference). A point the reference
could not compute (xTB's SCF not converging, e.g. GFN2-xTB radicals such as O-H or Na-O at long
range) is a row with empty energy and force: it is recorded, never fatal, and metrics skip it.

Model curves come from the project's batched predictor (:func:`mlipft.analysis.predict.predict`);
the mini world's reference from tblite's GFN-xTB (:func:`mlipft.xtb.calculator`, charge and
multiplicity as :func:`mlipft.xtb.label` reads them from ``atoms.info``; a neutral dimer in its
lowest spin state): each curve is one calculator walked along the grid (dimers from short to long
distance, compressions from 1.0 down), each point starting from the previous point's converged
wavefunction, as MLIP Arena scans; after a failed point the calculator starts afresh (tblite
keeps no usable state after a failure). Run xTB on one thread (``--threads``; OpenMP threads
spinning on a busy machine made points ~1000x slower). In the paper world the reference is the
main foundation, through the ``model`` subcommand with ``--label``.

Metrics (:func:`metrics_table`; per system, on our curves, points with a non-finite energy
dropped), after MLIP Arena's ``flows/diatomics.py`` and matbench-discovery's ``metrics/diatomics``:

- dimers: ``force_flips`` (sign changes of F along r after zeroing \\|F\\| below
  ``force_threshold_ev_per_angstrom``, 0.01 eV/Å), ``energy_diff_flips`` and ``energy_jump_ev``
  (sign changes of dE between neighbouring points after zeroing \\|dE\\| below
  ``energy_threshold_ev``, 1 meV; the jump sums \\|dE\\| on both sides of every flip, as both
  sources do), ``spearman_repulsion`` (Spearman ρ of E against r on the repulsive branch, the
  points at and below the distance of the energy minimum; ideal -1; NaN with fewer than three
  points), ``r_eq_angstrom`` and ``well_depth_ev`` (distance and energy of the minimum),
  ``collapsed`` (the minimum lies at the shortest distance of the grid: no wall at all), and for
  each threshold Δ of ``wall_thresholds_ev`` (1, 5, 10 eV) ``wall_radius_<Δ>ev`` (where the
  repulsive branch, walked inward from the minimum with its running maximum, first reaches
  E_min + Δ, linear interpolation; NaN when it never does on the grid); with a reference
  ``wall_error_<Δ>ev`` (model minus reference, Å; NaN when either has no crossing) and
  ``walls_missing`` (thresholds the reference's wall reaches and the model's does not).
- compressions: ``monotonic`` (the energy never falls by more than
  ``monotonic_tolerance_ev_per_atom``, 1 meV/atom, from one scale to the next smaller one),
  ``rise_ev_per_atom`` (energy at the most compressed scale); with a reference
  ``rise_reference_ev_per_atom`` and ``rise_ratio`` (model / reference at the most compressed
  scale both have: 1 ideal, below 1 a soft wall, negative a collapse), ``rise_scale`` (that scale).

CLI::

    python -m mlipft.analysis.repulsion model --model M.model --structures test.xyz [--head Default]
        [--params JSON|file] [--elements Na Cl ...] [--label model] [--device cpu|cuda|auto]
        [--default-dtype float64] [--batch-size 64] [--threads 1] --output curves.csv
    python -m mlipft.analysis.repulsion reference --structures test.xyz --level gfn2 [--params JSON|file]
        [--elements ...] [--threads 1] --output reference.csv
    python -m mlipft.analysis.repulsion metrics --curves curves.csv [--reference reference.csv]
        [--params JSON|file] --output metrics.csv

The elements are those of every frame of ``--structures`` (or ``--elements``); ``--level`` is
``gfn1``, ``gfn2``, a tblite method (``GFN2-xTB``) or a level of :mod:`mlipft.xtb` (``target``).
``--params`` is a JSON object (or a JSON/YAML file) over :data:`DEFAULTS`; every key is checked,
an unknown one is an error naming it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols, covalent_radii
from ase.data.vdw_alvarez import vdw_radii as vdw_alvarez

from ..io import atomic_path, read_configs

log = logging.getLogger(__name__)

COLUMNS = ("kind", "system", "r_angstrom", "scale", "energy_ev", "force_ev_per_angstrom", "source")
KINDS = ("dimer", "compression")

#: Every parameter and its default (MLIP Arena's grid and thresholds, matbench-discovery's walls).
DEFAULTS: dict = {
    "spacing_angstrom": 0.01,                 # dimer grid step (upper bound), Å
    "r_min_factor": 0.9,                      # x the pair's mean covalent radius
    "r_max_factor": 3.1,                      # x the pair's mean (Alvarez) vdW radius
    "r_max_fallback_angstrom": 6.0,           # r_max when an element has no vdW radius
    "pairs": None,                            # dimer pairs to compute ("A-B"); null: every pair
    "scales": [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6],  # compression factors (1.0 added)
    "n_frames": 3,                            # compressed structures: the first n of the file
    "force_threshold_ev_per_angstrom": 0.01,  # |F| below: zero, for force flips
    "energy_threshold_ev": 0.001,             # |dE| below: zero, for energy flips and jumps
    "wall_thresholds_ev": [1.0, 5.0, 10.0],   # wall radii at E_min + these
    "monotonic_tolerance_ev_per_atom": 0.001,  # a compression curve may fall this much per step
}
POSITIVE = ("spacing_angstrom", "r_min_factor", "r_max_factor", "r_max_fallback_angstrom")
NON_NEGATIVE = ("force_threshold_ev_per_angstrom", "energy_threshold_ev", "monotonic_tolerance_ev_per_atom")
LEVELS = {"gfn1": "GFN1-xTB", "gfn2": "GFN2-xTB"}
_CHECKED = "_checked"  # the mark of a parameter dict that load_params returned


# ----------------------------------------------------------------------------- parameters
class ParamsError(ValueError):
    """A parameter of the repulsion analysis is wrong; the message names the key."""


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamsError(f"repulsion params: {key} must be a finite number, not {value!r}")
    return float(value)


def _numbers(value, key: str, lo: float, hi: float | None = None) -> list[float]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ParamsError(f"repulsion params: {key} must be a non-empty list of numbers, not {value!r}")
    out = [_number(v, f"{key}[{i}]") for i, v in enumerate(value)]
    bad = [v for v in out if v <= lo or (hi is not None and v > hi)]
    if bad:
        where = f"in ({lo:g}, {hi:g}]" if hi is not None else f"> {lo:g}"
        raise ParamsError(f"repulsion params: {key} must all be {where}; got {bad}")
    if len(set(out)) != len(out):
        raise ParamsError(f"repulsion params: {key} lists a value twice: {sorted({v for v in out if out.count(v) > 1})}")
    return out


def parse_pair(pair: str, key: str = "pairs") -> tuple[str, str]:
    """``"Cl-Na"`` -> ``("Na", "Cl")``: two element symbols, ordered by atomic number."""
    parts = pair.split("-") if isinstance(pair, str) else []
    if len(parts) != 2 or any(p not in atomic_numbers or p == "X" for p in parts):
        raise ParamsError(f"repulsion params: {key}: {pair!r} is not a pair of element symbols A-B (e.g. Na-Cl)")
    a, b = sorted(parts, key=lambda s: atomic_numbers[s])
    return a, b


def pair_name(a: str, b: str) -> str:
    """The system name of a dimer: the two symbols ordered by atomic number (``Na-Cl``, ``H-O``)."""
    a, b = sorted((a, b), key=lambda s: atomic_numbers[s])
    return f"{a}-{b}"


def load_params(params=None) -> dict:
    """:data:`DEFAULTS` overlaid with ``params`` (a dict, a JSON string, a JSON/YAML file or None),
    every key checked (:class:`ParamsError` names the key)."""
    if params is None:
        given = {}
    elif isinstance(params, dict):
        given = dict(params)
    else:
        text = str(params).strip()
        if not text.startswith("{") and Path(text).is_file():
            path = Path(text)
            text = path.read_text()
            if path.suffix in (".yaml", ".yml"):
                import yaml

                given = yaml.safe_load(text) or {}
                text = None
        if text is not None:
            try:
                given = json.loads(text)
            except json.JSONDecodeError as err:
                raise ParamsError(f"repulsion params: not a JSON object or a file: {err}") from None
    if not isinstance(given, dict):
        raise ParamsError(f"repulsion params: expected a JSON object (key: value), got {type(given).__name__}")
    given = {k: v for k, v in given.items() if k != _CHECKED}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ParamsError(f"repulsion params: unknown key(s) {unknown} (known: {sorted(DEFAULTS)})")
    out = {**DEFAULTS, **given}
    for key in POSITIVE:
        if _number(out[key], key) <= 0:
            raise ParamsError(f"repulsion params: {key} must be > 0, not {out[key]!r}")
        out[key] = float(out[key])
    for key in NON_NEGATIVE:
        if _number(out[key], key) < 0:
            raise ParamsError(f"repulsion params: {key} must be >= 0, not {out[key]!r}")
        out[key] = float(out[key])
    if isinstance(out["n_frames"], bool) or not isinstance(out["n_frames"], int) or out["n_frames"] < 1:
        raise ParamsError(f"repulsion params: n_frames must be an integer >= 1, not {out['n_frames']!r}")
    out["scales"] = sorted(_numbers(out["scales"], "scales", 0.0, 2.0), reverse=True)
    if 1.0 not in out["scales"]:
        out["scales"] = sorted([1.0, *out["scales"]], reverse=True)
    out["wall_thresholds_ev"] = sorted(_numbers(out["wall_thresholds_ev"], "wall_thresholds_ev", 0.0))
    if out["pairs"] is not None:
        if not isinstance(out["pairs"], (list, tuple)) or not out["pairs"]:
            raise ParamsError(f"repulsion params: pairs must be a non-empty list of A-B pairs or null, not {out['pairs']!r}")
        names = [pair_name(*parse_pair(p)) for p in out["pairs"]]
        if len(set(names)) != len(names):
            raise ParamsError(f"repulsion params: pairs lists a pair twice: {sorted({n for n in names if names.count(n) > 1})}")
        out["pairs"] = names
    out[_CHECKED] = True
    return out


def _checked(params) -> dict:
    """``params`` as :func:`load_params` returns it (checked once: its result is marked)."""
    return params if isinstance(params, dict) and params.get(_CHECKED) is True else load_params(params)


def threshold_name(value: float) -> str:
    """Column suffix of a wall threshold: ``5.0`` -> ``5ev``, ``0.5`` -> ``0.5ev``."""
    return f"{value:g}ev"


# ----------------------------------------------------------------------------- geometries
def element_pairs(elements: Sequence[str], params: dict | None = None) -> list[tuple[str, str]]:
    """Every unordered pair (with both atoms the same) of ``elements``, by atomic number; with
    ``params['pairs']`` only those (each must be made of ``elements``)."""
    params = _checked(params)
    symbols = sorted(set(elements), key=lambda s: atomic_numbers[s])
    pairs = [(a, b) for i, a in enumerate(symbols) for b in symbols[i:]]
    if params["pairs"] is None:
        return pairs
    wanted = [parse_pair(p) for p in params["pairs"]]
    foreign = [pair_name(*p) for p in wanted if p not in pairs]
    if foreign:
        raise ParamsError(f"repulsion params: pairs {foreign} are not made of the structures' elements {symbols}")
    return wanted


def dimer_range(a: str, b: str, params: dict) -> tuple[float, float]:
    """``(r_min, r_max)`` of a pair's grid, Å (see the module docstring)."""
    za, zb = atomic_numbers[a], atomic_numbers[b]
    r_min = params["r_min_factor"] * 0.5 * (covalent_radii[za] + covalent_radii[zb])
    vdw = [vdw_alvarez[z] if z < len(vdw_alvarez) else np.nan for z in (za, zb)]
    r_max = params["r_max_factor"] * 0.5 * sum(vdw) if np.all(np.isfinite(vdw)) else params["r_max_fallback_angstrom"]
    if not r_max > r_min:
        raise ParamsError(f"repulsion params: r_max_factor / r_min_factor give an empty grid for {a}-{b} "
                          f"(r_min {r_min:.3f} Å >= r_max {r_max:.3f} Å)")
    return float(r_min), float(r_max)


def dimer_grid(a: str, b: str, params: dict | None = None) -> np.ndarray:
    """Distances (Å, ascending) of a pair's dimer curve: ``linspace(r_min, r_max, n)`` with the
    fewest points whose step is at most ``spacing_angstrom``."""
    params = _checked(params)
    r_min, r_max = dimer_range(a, b, params)
    n = math.ceil((r_max - r_min) / params["spacing_angstrom"] - 1e-9) + 1
    if n < 5:
        raise ParamsError(f"repulsion params: spacing_angstrom {params['spacing_angstrom']:g} leaves {n} points on "
                          f"the {a}-{b} grid ({r_min:.3f}-{r_max:.3f} Å); at least 5 are needed")
    return np.linspace(r_min, r_max, n)


def dimer(a: str, b: str, r: float) -> Atoms:
    """Two atoms ``r`` apart on the x axis, in vacuum (no cell, not periodic)."""
    return Atoms([a, b], positions=[[0.0, 0.0, 0.0], [float(r), 0.0, 0.0]], pbc=False)


def compressed(atoms: Atoms, scale: float) -> Atoms:
    """``atoms`` scaled isotropically by ``scale``: a structure periodic in any direction with its
    cell (fractional coordinates kept), else about its centroid. Labels and calculator dropped;
    ``info`` (charge, multiplicity) kept."""
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info.update({k: v for k, v in atoms.info.items() if k in ("charge", "multiplicity")})
    if atoms.pbc.any():
        out.set_cell(np.asarray(atoms.cell) * scale, scale_atoms=True)
    else:
        centre = atoms.positions.mean(axis=0)
        out.positions = centre + (atoms.positions - centre) * scale
    return out


def shortest_distance(atoms: Atoms) -> float:
    """The shortest interatomic distance (minimum image for a periodic structure), Å."""
    if len(atoms) < 2:
        return float("nan")
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    return float(d[np.triu_indices(len(atoms), 1)].min())


def elements_of(frames: Sequence[Atoms]) -> list[str]:
    """The elements of some structures, by atomic number."""
    return sorted({s for a in frames for s in a.get_chemical_symbols()}, key=lambda s: atomic_numbers[s])


def curve_points(frames: Sequence[Atoms], params: dict, elements: Sequence[str] | None = None) -> list[dict]:
    """Every point of the curves: ``{"kind", "system", "r_angstrom", "scale", "atoms"}``, each curve's
    points in the order a reference walks them (dimers from short to long distance, compressions
    from 1.0 down)."""
    points = []
    for a, b in element_pairs(elements if elements else elements_of(frames), params):
        for r in dimer_grid(a, b, params):
            points.append({"kind": "dimer", "system": pair_name(a, b), "r_angstrom": float(r), "scale": np.nan,
                           "atoms": dimer(a, b, r)})
    for i, frame in enumerate(frames[:params["n_frames"]]):
        for s in params["scales"]:
            atoms = compressed(frame, s)
            points.append({"kind": "compression", "system": f"frame{i}", "r_angstrom": shortest_distance(atoms),
                           "scale": float(s), "atoms": atoms})
    return points


# ----------------------------------------------------------------------------- curves
def axial_force(atoms: Atoms, forces: np.ndarray) -> float:
    """Force on the second atom of a dimer along the axis from the first (positive: repulsive)."""
    axis = atoms.positions[1] - atoms.positions[0]
    return float(np.dot(forces[1], axis / np.linalg.norm(axis)))


def rms_force(forces: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(np.asarray(forces) ** 2, axis=1))))


def curves_frame(points: list[dict], energies: Sequence[float], forces: Sequence[np.ndarray | None],
                 source: str):
    """The long-format table of :data:`COLUMNS` from raw total energies and forces of ``points``
    (NaN energy: a failed point): dimer energies shifted to zero at the largest distance with a
    finite energy, compression energies per atom relative to the unscaled structure."""
    import pandas as pd

    rows = []
    for point, energy, force in zip(points, energies, forces, strict=True):
        ok = energy is not None and np.isfinite(energy) and force is not None
        if point["kind"] == "dimer":
            f = axial_force(point["atoms"], force) if ok else np.nan
        else:
            f = rms_force(force) if ok else np.nan
        rows.append({"kind": point["kind"], "system": point["system"], "r_angstrom": point["r_angstrom"],
                     "scale": point["scale"], "energy_ev": float(energy) if ok else np.nan,
                     "force_ev_per_angstrom": f, "n_atoms": len(point["atoms"])})
    frame = pd.DataFrame(rows)
    for (kind, system), sub in frame.groupby(["kind", "system"], sort=False):
        finite = sub[np.isfinite(sub.energy_ev)]
        if finite.empty:
            log.warning("%s %s: no point has a finite energy", kind, system)
            continue
        if kind == "dimer":
            far = finite.loc[finite.r_angstrom.idxmax()]
            if far.r_angstrom < sub.r_angstrom.max():
                log.warning("dimer %s: no energy at r_max %.3f Å; shifted to zero at %.3f Å instead",
                            system, sub.r_angstrom.max(), far.r_angstrom)
            frame.loc[sub.index, "energy_ev"] = sub.energy_ev - far.energy_ev
        else:
            unscaled = sub[sub.scale == 1.0].energy_ev
            e0 = float(unscaled.iloc[0]) if len(unscaled) else np.nan
            if not np.isfinite(e0):
                log.warning("compression %s: no energy of the unscaled structure; its curve is empty", system)
            frame.loc[sub.index, "energy_ev"] = (sub.energy_ev - e0) / sub.n_atoms
    frame["source"] = source
    return frame[list(COLUMNS)]


def model_curves(model, frames: Sequence[Atoms], params=None, device: str = "cpu", batch_size: int | None = 64,
                 head: str | None = None, elements: Sequence[str] | None = None, source: str = "model"):
    """The curves of a loaded MACE model (:func:`mlipft.analysis.predict.load_model`) through
    :func:`mlipft.analysis.predict.predict`."""
    from .predict import predict

    params = _checked(params)
    points = curve_points(frames, params, elements)
    pred = predict(model, [p["atoms"] for p in points], device=device, batch_size=batch_size, head=head)
    log.info("%d points (%d dimer, %d compression) through head %s", len(points),
             sum(p["kind"] == "dimer" for p in points), sum(p["kind"] == "compression" for p in points), pred.head)
    return curves_frame(points, pred.energy, pred.forces, source)


def level_method(level: str) -> str:
    """``gfn1``/``gfn2`` (any case), a tblite method or an :mod:`mlipft.xtb` level -> the method."""
    from .. import xtb

    return xtb.method_for(LEVELS.get(level.lower(), level))


def xtb_points(points: list[dict], method: str, calculator: Callable | None = None):
    """Energies (eV) and forces of ``points`` with GFN-xTB: one calculator per curve, walked in the
    order of the points (each SCF from the previous point's wavefunction), a fresh one after a
    failure. A point whose SCF fails is NaN energy and None forces (logged), never an error."""
    from .. import xtb

    make = calculator or xtb.calculator
    energies, forces = [], []
    calc, current, failed = None, None, 0
    for point in points:
        atoms = point["atoms"].copy()
        charge = int(atoms.info.get("charge", 0))
        multiplicity = int(atoms.info.get("multiplicity", xtb._default_multiplicity(atoms, charge)))
        key = (point["kind"], point["system"], charge, multiplicity)
        if calc is None or key != current:
            calc, current = make(method, charge, multiplicity), key
        atoms.calc = calc
        try:
            energy = float(atoms.get_potential_energy())
            force = np.array(atoms.get_forces(), dtype=float)
            if not np.isfinite(energy) or not np.all(np.isfinite(force)):
                raise RuntimeError("non-finite energy or forces")
        except Exception as err:  # noqa: BLE001 -- tblite: CalculationFailed (SCF not converged, sygvd failed)
            failed += 1
            where = (f"r = {point['r_angstrom']:.3f} Å" if point["kind"] == "dimer" else f"scale {point['scale']:g}")
            log.warning("%s %s at %s: %s failed (%s); recorded as NaN", point["kind"], point["system"], where,
                        method, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
            energies.append(np.nan)
            forces.append(None)
            calc = None  # tblite keeps no usable state after a failed SCF
            continue
        energies.append(energy)
        forces.append(force)
    if failed:
        log.warning("%s did not converge at %d of %d points", method, failed, len(points))
    return energies, forces


def reference_curves(frames: Sequence[Atoms], level: str = "gfn2", params=None,
                     elements: Sequence[str] | None = None, calculator: Callable | None = None):
    """The curves at an xTB level (``source`` is the method, e.g. ``GFN2-xTB``)."""
    params = _checked(params)
    method = level_method(level)
    points = curve_points(frames, params, elements)
    energies, forces = xtb_points(points, method, calculator)
    return curves_frame(points, energies, forces, method)


# ----------------------------------------------------------------------------- metrics
def _sorted_finite(x, y, *more):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    for m in more:
        keep &= np.isfinite(np.asarray(m, dtype=float))
    order = np.argsort(x[keep], kind="stable")
    return (x[keep][order], y[keep][order], *(np.asarray(m, dtype=float)[keep][order] for m in more))


def sign_flips(values, threshold: float) -> int:
    """Sign changes of ``values`` after zeroing those with \\|v\\| < ``threshold`` (zeros skipped)."""
    v = np.asarray(values, dtype=float)
    signs = np.sign(np.where(np.abs(v) < threshold, 0.0, v))
    signs = signs[signs != 0]
    return int(np.sum(np.diff(signs) != 0))


def energy_flips_and_jump(r, energy, threshold: float = 0.001) -> tuple[int, float]:
    """Sign flips of dE along ascending r after zeroing \\|dE\\| < ``threshold``, and the energy jump:
    \\|dE\\| on both sides of every flip, summed (MLIP Arena, matbench-discovery)."""
    _, e = _sorted_finite(r, energy)
    de = np.diff(e)
    de[np.abs(de) < threshold] = 0.0
    keep = de != 0
    de, signs = de[keep], np.sign(de[keep])
    flip = np.diff(signs) != 0
    return int(flip.sum()), float(np.abs(de[:-1][flip]).sum() + np.abs(de[1:][flip]).sum())


def spearman_repulsion(r, energy) -> float:
    """Spearman ρ of E against r on the repulsive branch (r at and below the energy minimum;
    ideal -1); NaN with fewer than three points there."""
    from scipy.stats import spearmanr

    r, e = _sorted_finite(r, energy)
    if len(e) == 0:
        return float("nan")
    branch = slice(0, int(np.argmin(e)) + 1)
    if len(e[branch]) < 3 or np.ptp(e[branch]) == 0:
        return float("nan")
    return float(spearmanr(r[branch], e[branch]).statistic)


def wall_radius(r, energy, threshold_ev: float) -> float:
    """Where the repulsive branch reaches E_min + ``threshold_ev``: walked inward from the minimum
    with its running maximum (so a hole inside the wall does not move the crossing outward),
    linearly interpolated; NaN when the branch never gets that high (matbench-discovery)."""
    r, e = _sorted_finite(r, energy)
    if len(e) < 2:
        return float("nan")
    i_min = int(np.argmin(e))
    if i_min == 0:
        return float("nan")
    inward_r = r[i_min::-1]
    rise = np.maximum.accumulate(e[i_min::-1] - e[i_min])
    levels, first = np.unique(rise, return_index=True)
    if len(levels) < 2 or threshold_ev > levels[-1]:
        return float("nan")
    return float(np.interp(threshold_ev, levels, inward_r[first]))


def dimer_metrics(r, energy, force, params=None) -> dict:
    """The self-consistency metrics of one dimer curve (see the module docstring)."""
    params = _checked(params)
    r, e, f = _sorted_finite(r, energy, force)
    out = {"n_points": len(e)}
    if len(e) < 2:
        return out
    i_min = int(np.argmin(e))
    flips, jump = energy_flips_and_jump(r, e, params["energy_threshold_ev"])
    out.update({"force_flips": sign_flips(f, params["force_threshold_ev_per_angstrom"]),
                "energy_diff_flips": flips, "energy_jump_ev": jump,
                "spearman_repulsion": spearman_repulsion(r, e),
                "r_eq_angstrom": float(r[i_min]), "well_depth_ev": float(e[i_min]), "collapsed": bool(i_min == 0)})
    for t in params["wall_thresholds_ev"]:
        out[f"wall_radius_{threshold_name(t)}"] = wall_radius(r, e, t)
    return out


def compression_metrics(scale, energy, params=None) -> dict:
    """Monotonicity and energy rise of one compression curve (energies per atom relative to 1.0)."""
    params = _checked(params)
    s, e = _sorted_finite(scale, energy)
    out = {"n_points": len(e)}
    if len(e) < 2:
        return out
    falling = np.diff(e[::-1])  # from 1.0 towards the most compressed scale
    out.update({"monotonic": bool(np.all(falling >= -params["monotonic_tolerance_ev_per_atom"])),
                "rise_ev_per_atom": float(e[0]), "rise_scale": float(s[0])})
    return out


def compare(model: dict, reference: dict | None, kind: str, model_curve=None, reference_curve=None,
            params=None) -> dict:
    """Reference-relative metrics of one system: wall errors of a dimer, the rise ratio of a
    compression (at the most compressed scale both curves have)."""
    params = _checked(params)
    out = {}
    if reference is None:
        return out
    if kind == "dimer":
        missing = 0
        for t in params["wall_thresholds_ev"]:
            name = threshold_name(t)
            mine, ref = model.get(f"wall_radius_{name}", np.nan), reference.get(f"wall_radius_{name}", np.nan)
            out[f"wall_radius_reference_{name}"] = ref
            out[f"wall_error_{name}"] = mine - ref if np.isfinite(mine) and np.isfinite(ref) else np.nan
            missing += int(np.isfinite(ref) and not np.isfinite(mine))
        out["walls_missing"] = missing
    elif model_curve is not None and reference_curve is not None:
        m = model_curve[np.isfinite(model_curve.energy_ev)].set_index("scale").energy_ev
        ref = reference_curve[np.isfinite(reference_curve.energy_ev)].set_index("scale").energy_ev
        common = sorted(set(m.index) & set(ref.index))
        if common:
            s = common[0]
            out.update({"rise_scale": float(s), "rise_ev_per_atom": float(m[s]),
                        "rise_reference_ev_per_atom": float(ref[s]),
                        "rise_ratio": float(m[s] / ref[s]) if ref[s] != 0 else np.nan})
    return out


METRIC_COLUMNS = ("n_points", "force_flips", "energy_diff_flips", "energy_jump_ev", "spearman_repulsion",
                  "r_eq_angstrom", "well_depth_ev", "collapsed")


def metrics_table(curves, reference=None, params=None):
    """One row per (kind, system) of ``curves``: its own metrics and, with a ``reference`` table
    (same format), the reference-relative ones; columns absent for a kind are empty."""
    import pandas as pd

    params = _checked(params)
    rows = []
    for (kind, system), sub in curves.groupby(["kind", "system"], sort=False):
        ref = None
        if reference is not None:
            ref = reference[(reference.kind == kind) & (reference.system == system)]
            ref = ref if len(ref) else None
        if kind == "dimer":
            mine = dimer_metrics(sub.r_angstrom, sub.energy_ev, sub.force_ev_per_angstrom, params)
            theirs = (dimer_metrics(ref.r_angstrom, ref.energy_ev, ref.force_ev_per_angstrom, params)
                      if ref is not None else None)
        elif kind == "compression":
            mine = compression_metrics(sub.scale, sub.energy_ev, params)
            theirs = compression_metrics(ref.scale, ref.energy_ev, params) if ref is not None else None
        else:
            raise ValueError(f"unknown curve kind {kind!r} (expected one of {KINDS})")
        row = {"kind": kind, "system": system, "n_failed": int((~np.isfinite(sub.energy_ev.astype(float))).sum()),
               **mine, **compare(mine, theirs, kind, sub, ref, params)}
        if kind == "compression" and theirs is not None:
            row["monotonic_reference"] = theirs.get("monotonic")
        rows.append(row)
    if not rows:
        raise ValueError("no curves to compute metrics of")
    return pd.DataFrame(rows)


def read_curves(path):
    """A curves CSV (:data:`COLUMNS`; ``source`` optional), with a clear error for a wrong file."""
    import pandas as pd

    frame = pd.read_csv(path)
    missing = set(COLUMNS) - {"source"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: a repulsion curves file needs the columns {list(COLUMNS)}; missing {sorted(missing)}")
    bad = sorted(set(frame.kind) - set(KINDS))
    if bad:
        raise ValueError(f"{path}: unknown kind(s) {bad} (expected {list(KINDS)})")
    if "source" not in frame.columns:
        frame["source"] = ""
    return frame.astype({"kind": str, "system": str, "source": str})


# ----------------------------------------------------------------------------- CLI
def _write(frame, path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _structures(args):
    frames = read_configs(args.structures)
    if not frames:
        raise SystemExit(f"{args.structures}: no structures")
    if args.elements:
        unknown = [e for e in args.elements if e not in chemical_symbols]
        if unknown:
            raise SystemExit(f"--elements: {unknown} are not element symbols")
    return frames


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.repulsion",
                                     description="Dimer and compression curves of a model or a reference; their metrics")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", help="JSON object or JSON/YAML file over the defaults (module docstring)")
    common.add_argument("--output", required=True, help="CSV to write")
    curves = argparse.ArgumentParser(add_help=False, parents=[common])
    curves.add_argument("--structures", required=True, help="extxyz: its elements make the pairs; its first "
                                                            "n_frames structures are compressed")
    curves.add_argument("--elements", nargs="+", help="the dimers' elements (default: those of --structures)")
    curves.add_argument("--threads", type=int, default=1)
    m = sub.add_parser("model", parents=[curves], help="curves of a MACE model")
    m.add_argument("--model", required=True)
    m.add_argument("--head", help="head of a multihead model (default: Default, else the last)")
    m.add_argument("--label", default="model", help="the source column (e.g. 'foundation mace-mpa-0')")
    m.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    m.add_argument("--default-dtype", default="float64")
    m.add_argument("--batch-size", type=int, default=64)
    r = sub.add_parser("reference", parents=[curves], help="curves at an xTB level (the mini world's reference)")
    r.add_argument("--level", default="gfn2", help="gfn1, gfn2, GFN2-xTB, target, foundation")
    x = sub.add_parser("metrics", parents=[common], help="metrics of curves (against a reference)")
    x.add_argument("--curves", required=True)
    x.add_argument("--reference", help="reference curves (the same grid)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        params = load_params(args.params)
    except ParamsError as err:
        raise SystemExit(str(err)) from None
    import time

    start = time.perf_counter()
    if args.command == "metrics":
        reference = read_curves(args.reference) if args.reference else None
        table = metrics_table(read_curves(args.curves), reference, params)
        _write(table, args.output)
        log.info("metrics of %d curves -> %s", len(table), args.output)
        return
    frames = _structures(args)
    try:
        element_pairs(args.elements or elements_of(frames), params)
    except ParamsError as err:
        raise SystemExit(str(err)) from None
    if args.command == "model":
        import torch

        from ..train import resolve_device
        from .predict import load_model

        torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        model = load_model(args.model, device, args.default_dtype)
        table = model_curves(model, frames, params, device, args.batch_size, args.head, args.elements, args.label)
    else:
        try:
            method = level_method(args.level)
        except ValueError as err:
            raise SystemExit(f"--level: {err}") from None
        import tblite.ase  # noqa: F401  (loads its OpenMP runtime, which threadpool_limits then sets)
        from threadpoolctl import threadpool_limits

        # tblite's OpenMP threads: spinning threads on a busy machine made each point ~1000x slower
        with threadpool_limits(limits=args.threads):
            table = reference_curves(frames, method, params, args.elements)
    _write(table, args.output)
    failed = int(table.energy_ev.isna().sum())
    log.info("%s curves of %s: %d points (%d without energy) in %.1f s -> %s", args.command, args.structures,
             len(table), failed, time.perf_counter() - start, args.output)


__all__ = [
    "COLUMNS", "DEFAULTS", "ParamsError", "compare", "compressed", "compression_metrics", "curve_points",
    "curves_frame", "dimer", "dimer_grid", "dimer_metrics", "dimer_range", "element_pairs", "elements_of",
    "energy_flips_and_jump", "load_params", "metrics_table", "model_curves", "pair_name", "read_curves",
    "reference_curves", "shortest_distance", "sign_flips", "spearman_repulsion", "wall_radius", "xtb_points",
]


if __name__ == "__main__":
    main()

