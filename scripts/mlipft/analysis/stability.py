"""MD stability of a model: how many steps of a protocol its MD survives before it blows up.

The paper checks that fine-tuned models give stable MD (100 K NPT for 250 ps, and a 50 -> 800 K
ramp over 50 ps); MLIP Arena scores stability as the fraction of the target steps survived. Two
protocols, each a function of any ASE calculator and a start ``Atoms`` (not modified):

- :func:`hold`: constant temperature. NVT is ASE's ``Langevin``, the protocol of
  :func:`mlipft.analysis.md.langevin_md`. With ``npt=True`` and a start periodic in 3D it is ASE's
  ``LangevinBAOAB`` with ``hydrostatic=True``: a Langevin thermostat with the same friction
  (``T_tau = 1 / friction``) and noise from the same generator as the NVT runs, and a
  Langevin-Hoover barostat that scales the cell uniformly, so the cell keeps its shape: any cell
  (cubic, orthorhombic or triclinic) works, and a liquid, which has no shear stiffness, cannot
  shear its cell into a degenerate one. (``IsotropicMTKNPT`` would also keep the shape, but its
  Nose-Hoover chains are deterministic and take no generator, so replicas would differ only by
  their initial velocities, and the NVT and NPT thermostats would differ; ASE's ``NPT`` wants an
  upper-triangular cell.) A start not periodic in 3D runs NVT (with a warning in the log).
- :func:`ramp`: NVT ``Langevin`` whose target temperature goes linearly from ``start_K`` (step 0)
  to ``end_K`` (the last step), set before every step with ``Langevin.set_temperature``.

Both draw Maxwell-Boltzmann velocities at the first target temperature (``thermalize_momenta``)
and the thermostat noise from one ``numpy`` generator, so a seed gives the same numbers. The
dynamics run on a fresh copy of the start (its numbers, positions, masses, cell and pbc; no
labels, momenta or constraints).

A model that blows up is a result: the run stops at the first failure, which is one of

- ``non_finite``: a non-finite position, momentum, force, cell or energy (positions, momenta
  and forces are checked after every step, so that no NaN reaches the next step);
- ``calculator_error``: the calculator (or the integrator calling it) raised during the dynamics,
  e.g. a neighbour list overflowing or a model returning garbage; ``detail`` has the message;
- the detectors, checked every ``check_every`` steps and at the last step, in this order:
  ``min_distance`` (a pair of atoms, minimum image, closer than its pair's minimum; O(N^2) in
  memory, fine to a few thousand atoms), ``max_force`` (an atom's |F| above the bound, eV/A),
  ``temperature`` (instantaneous kinetic temperature above ``temperature_factor`` x the target,
  from ``temperature_grace_fs`` on: a start that is not at the model's minimum turns its excess
  potential energy into a short burst of heat, which the thermostat removes within ~1 / friction;
  a runaway is heat that stays) and ``density`` (periodic starts: density outside ``density_range`` x the start's density).

A detector set to ``None`` is off. At step 0 the start is evaluated too: a calculator error, a
non-finite result or a force above ``max_force`` on the start is a failure at step 0, while a
start that already violates ``min_distance`` is an input error (``ValueError``), as is any bad
argument: our errors are raised before the dynamics start. A failure seen at step ``s``
(``failure_step``) leaves ``steps_survived = max(s - 1, 0)``; detectors resolve a failure to
``check_every`` steps (use 1 for single-step resolution). ``time_to_failure_ps`` is
``failure_step`` x the time step (None when the run survived).

CLI::

    python -m mlipft.analysis.stability --model M.model --start start.xyz [--frame 0]
        [--protocols hold ramp] --params JSON|params.json|params.yaml [--replicas N] [--seed 0]
        [--device cpu|cuda|auto (cpu)] [--default-dtype float64] [--head NAME] [--threads 1]
        --output stability.csv [--trajectory traj.extxyz]

The model drives the dynamics through mace's ``MACECalculator``. ``--start`` with several frames
needs ``--frame``. ``--replicas`` defaults to the params' ``replicas``, else 1. Replica ``r``
(0-based) draws from ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(r,)))``, the
``r``-th child of ``SeedSequence(seed).spawn`` (each protocol run of the replica starts a fresh
generator of that seed), so replicas are independent streams and replica ``r`` does not depend
on ``--replicas``.

``--params`` (a JSON string, or a path to a JSON or YAML file), every key checked::

    {"timestep_fs": 0.5,            # required, > 0
     "friction_per_fs": 0.01,       # required, > 0 (Langevin friction; NPT: T_tau = 1 / friction)
     "check_every": 10,             # optional (10), >= 1: steps between detector checks
     "record_every": 50,            # optional (0 = none), >= 0: steps between trajectory frames
     "replicas": 3,                 # optional, >= 1: the default of --replicas (which must agree)
     "hold": {"temperature_K": 100, "steps": 500,          # required when hold runs
              "npt": false, "pressure_GPa": 0.0001,        # optional (false, 1e-4 GPa = 1 bar)
              "barostat_tau_fs": 2000},                    # optional (20 / friction_per_fs)
     "ramp": {"start_K": 50, "end_K": 800, "steps": 500},  # required when ramp runs
     "detectors": {                 # required, every key required; null turns a detector off
         "min_distance": {"default": 0.5, "H-H": 0.5, "O-H": 0.6},  # A; "A-B" pairs (either
                                    # order) and an optional "default" (else unlisted pairs
                                    # are not checked)
         "max_force": 50.0,         # eV/A
         "temperature_factor": 5.0,  # > 1
         "temperature_grace_fs": 100.0,  # optional (0), >= 0: the temperature detector is armed
                                    # from this time on (the start's transient is not a runaway)
         "density_range": [0.5, 2.0]}}

A block for a protocol that does not run is still checked. The output CSV has one row per
(protocol, replica): ``model,protocol,replica,ensemble,md_seed,timestep_fs,target_steps,
steps_survived,failure_step,time_to_failure_ps,survived_fraction,failed,detector,detail,
final_temperature_K`` (``md_seed`` is ``--seed``, from which each replica's stream derives;
``failure_step`` and ``time_to_failure_ps`` are empty when the run survived, ``detector`` and
``detail`` too; atom indices in ``detail`` are 0-based). ``--trajectory`` writes every recorded frame (and each
failure's last state) of every run as extxyz, with info ``protocol``, ``replica``, ``step``,
``time_fs``, ``temperature_K``, ``target_temperature_K`` (and ``failed``, ``detector`` on the
frame of a failure).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.data import atomic_numbers, chemical_symbols

from ..io import atomic_path, read_configs, write_atomic

log = logging.getLogger(__name__)

PROTOCOLS = ("hold", "ramp")
DETECTORS = ("non_finite", "calculator_error", "min_distance", "max_force", "temperature", "density")
COLUMNS = ("model", "protocol", "replica", "ensemble", "md_seed", "timestep_fs", "target_steps", "steps_survived",
           "failure_step", "time_to_failure_ps", "survived_fraction", "failed", "detector", "detail",
           "final_temperature_K")
AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660


# ----------------------------------------------------------------------------- detectors
@dataclass(frozen=True)
class Detectors:
    """Thresholds of the failure detectors; ``None`` turns one off (``non_finite`` is always on).

    ``min_distance``: ``{"A-B": A, ..., "default": A}`` (pairs in either order); ``max_force``:
    eV/A; ``temperature_factor``: x the target temperature, checked from ``temperature_grace_fs``
    (fs of simulated time) on; ``density_range``: ``(lo, hi)`` x the start's density."""

    min_distance: Mapping[str, float] | None = None
    max_force: float | None = None
    temperature_factor: float | None = None
    density_range: tuple[float, float] | None = None
    temperature_grace_fs: float = 0.0

    def __post_init__(self):
        if self.min_distance is not None:
            min_distance_table(self.min_distance)
        if self.max_force is not None:
            _positive(self.max_force, "detectors.max_force")
        if self.temperature_factor is not None:
            _positive(self.temperature_factor, "detectors.temperature_factor")
        grace = self.temperature_grace_fs
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not math.isfinite(grace) or grace < 0:
            raise ValueError(f"detectors.temperature_grace_fs: a number of fs >= 0, not {grace!r}")
        if self.density_range is not None:
            lo, hi = _range(self.density_range, "detectors.density_range")
            object.__setattr__(self, "density_range", (lo, hi))


def min_distance_table(pairs: Mapping[str, float]) -> np.ndarray:
    """A symmetric (Z, Z) table of minimum distances from ``{"A-B": A, "default": A}``; NaN where
    a pair is not checked."""
    if not isinstance(pairs, Mapping) or not pairs:
        raise ValueError(f"detectors.min_distance: a non-empty mapping of 'A-B' pairs (and 'default') to "
                         f"distances in A, not {pairs!r}")
    n = len(chemical_symbols)
    default = pairs.get("default")
    table = np.full((n, n), np.nan if default is None else _positive(default, "detectors.min_distance.default"))
    seen: dict[tuple[int, int], float] = {}
    for key, value in pairs.items():
        if key == "default":
            continue
        where = f"detectors.min_distance.{key}"
        parts = str(key).split("-")
        if len(parts) != 2 or any(p not in atomic_numbers for p in parts):
            raise ValueError(f"{where}: not a pair of element symbols 'A-B' (e.g. 'O-H') or 'default'")
        a, b = sorted(atomic_numbers[p] for p in parts)
        d = _positive(value, where)
        if (a, b) in seen and seen[(a, b)] != d:
            raise ValueError(f"{where}: the pair is given twice with different distances ({seen[(a, b)]} and {d})")
        seen[(a, b)] = d
        table[a, b] = table[b, a] = d
    return table


def _all_distances(atoms: Atoms) -> np.ndarray:
    return atoms.get_all_distances(mic=bool(atoms.pbc.any()))


def check_min_distance(atoms: Atoms, table: np.ndarray) -> str | None:
    """Detail of the closest pair below its minimum (0-based atom indices), else None."""
    if len(atoms) < 2:
        return None
    z = atoms.numbers
    d = _all_distances(atoms)
    limit = table[z[:, None], z[None, :]]
    iu = np.triu_indices(len(atoms), k=1)
    dd, ll = d[iu], limit[iu]
    bad = np.flatnonzero(np.isfinite(ll) & (dd < ll))
    if bad.size == 0:
        return None
    k = bad[np.argmin(dd[bad])]
    i, j = int(iu[0][k]), int(iu[1][k])
    return (f"atoms {i} ({chemical_symbols[z[i]]}) and {j} ({chemical_symbols[z[j]]}) {dd[k]:.3f} A apart "
            f"(< {ll[k]:g} A)")


def density_g_cm3(atoms: Atoms) -> float:
    return float(atoms.get_masses().sum() / atoms.get_volume() * AMU_PER_A3_TO_G_PER_CM3)


# ----------------------------------------------------------------------------- result
@dataclass
class StabilityResult:
    """One protocol run. ``frames``: the recorded frames (and the failure's last state)."""

    protocol: str
    replica: int
    ensemble: str
    timestep_fs: float
    target_steps: int
    steps_survived: int
    failure_step: int | None
    time_to_failure_ps: float | None
    survived_fraction: float
    failed: bool
    detector: str
    detail: str
    final_temperature_K: float
    frames: list[Atoms] = field(default_factory=list, repr=False)

    def row(self) -> dict:
        """The CSV columns of the result (no frames)."""
        row = asdict(self)
        row.pop("frames")
        return row


@dataclass(frozen=True)
class _Failure:
    step: int
    detector: str
    detail: str


class _Run:
    """The state of one protocol run: the atoms, the detector thresholds, the frames."""

    def __init__(self, atoms: Atoms, detectors: Detectors, check_every: int, record_every: int, timestep_fs: float):
        self.atoms = atoms
        self.detectors = detectors
        self.table = None if detectors.min_distance is None else min_distance_table(detectors.min_distance)
        self.check_every, self.record_every, self.timestep_fs = check_every, record_every, timestep_fs
        self.start_density = density_g_cm3(atoms) if atoms.pbc.all() and atoms.cell.rank == 3 else None
        self.frames: list[Atoms] = []

    def evaluate(self, step: int, with_stress: bool = False) -> tuple[float, np.ndarray] | _Failure:
        """Energy and forces from the calculator (cached after a step), or the failure it raised."""
        try:
            energy = float(self.atoms.get_potential_energy())
            forces = np.asarray(self.atoms.get_forces())
            if with_stress:
                self.atoms.get_stress()
        except Exception as err:  # noqa: BLE001 -- the model's failure, not ours: recorded
            return _Failure(step, "calculator_error", f"{type(err).__name__}: {err}")
        return energy, forces

    def non_finite(self, step: int, forces: np.ndarray | None = None, energy: float | None = None) -> _Failure | None:
        a = self.atoms
        for name, values in (("forces", forces), ("positions", a.positions), ("momenta", a.get_momenta())):
            if values is None:
                continue
            bad = ~np.isfinite(values).all(axis=1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                return _Failure(step, "non_finite", f"non-finite {name} on {int(bad.sum())} atoms (first: atom {i} "
                                                    f"({a.get_chemical_symbols()[i]}))")
        if not np.isfinite(np.asarray(a.cell)).all():
            return _Failure(step, "non_finite", "non-finite cell")
        if energy is not None and not math.isfinite(energy):
            return _Failure(step, "non_finite", f"non-finite energy ({energy})")
        return None

    def check(self, step: int, target_K: float, full: bool) -> _Failure | None:
        """``non_finite`` after every step; the detectors when ``full``."""
        try:
            forces = np.asarray(self.atoms.get_forces())
        except Exception as err:  # noqa: BLE001 -- the model's failure
            return _Failure(step, "calculator_error", f"{type(err).__name__}: {err}")
        failure = self.non_finite(step, forces)
        if failure is not None or not full:
            return failure
        evaluated = self.evaluate(step)
        if isinstance(evaluated, _Failure):
            return evaluated
        energy, forces = evaluated
        return self.non_finite(step, forces, energy) or self.detect(step, forces, target_K)

    def detect(self, step: int, forces: np.ndarray, target_K: float | None) -> _Failure | None:
        det, a = self.detectors, self.atoms
        if self.table is not None:
            detail = check_min_distance(a, self.table)
            if detail is not None:
                return _Failure(step, "min_distance", detail)
        if det.max_force is not None:
            norms = np.linalg.norm(forces, axis=1)
            i = int(np.argmax(norms))
            if norms[i] > det.max_force:
                return _Failure(step, "max_force", f"atom {i} ({a.get_chemical_symbols()[i]}) |F| = {norms[i]:.4g} "
                                                   f"eV/A (> {det.max_force:g} eV/A)")
        if (det.temperature_factor is not None and target_K is not None
                and step * self.timestep_fs >= det.temperature_grace_fs):
            t = float(a.get_temperature())
            if t > det.temperature_factor * target_K:
                return _Failure(step, "temperature", f"T = {t:.1f} K > {det.temperature_factor:g} x target "
                                                     f"{target_K:.1f} K")
        if det.density_range is not None and self.start_density is not None:
            rho = density_g_cm3(a)
            ratio = rho / self.start_density
            lo, hi = det.density_range
            if not lo <= ratio <= hi:
                return _Failure(step, "density", f"density {rho:.4g} g/cm3 = {ratio:.3f} x start, outside "
                                                 f"[{lo:g}, {hi:g}]")
        return None

    def record(self, step: int, target_K: float, failure: _Failure | None = None) -> None:
        frame = self.atoms.copy()
        frame.calc = None
        frame.info.update({"step": int(step), "time_fs": step * self.timestep_fs,
                           "temperature_K": float(self.atoms.get_temperature()),
                           "target_temperature_K": float(target_K)})
        if failure is not None:
            frame.info.update({"failed": True, "detector": failure.detector})
        self.frames.append(frame)


def _fresh(start: Atoms) -> Atoms:
    if not isinstance(start, Atoms) or len(start) == 0:
        raise ValueError("the start is not an ase.Atoms with atoms")
    return Atoms(numbers=start.numbers, positions=start.positions, masses=start.get_masses(), cell=start.cell,
                 pbc=start.pbc)


def _simulate(protocol: str, start: Atoms, calc, *, ensemble: str, make_dyn: Callable[[Atoms], object],
              target: Callable[[int], float], set_target: Callable[[object, float], None] | None, n_steps: int,
              timestep_fs: float, rng: np.random.Generator, detectors: Detectors, check_every: int,
              record_every: int, replica: int) -> StabilityResult:
    """The loop shared by :func:`hold` and :func:`ramp` (arguments checked by them)."""
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = _fresh(start)
    run = _Run(atoms, detectors, check_every, record_every, timestep_fs)
    if run.table is not None:
        detail = check_min_distance(atoms, run.table)
        if detail is not None:
            raise ValueError(f"the start already violates detectors.min_distance: {detail}; the thresholds are "
                             f"too large for this structure (or the start is broken)")
    thermalize_momenta(atoms, target(0), rng=rng)
    atoms.calc = calc
    evaluated = run.evaluate(0, with_stress=ensemble == "NPT")
    failure = evaluated if isinstance(evaluated, _Failure) else (
        run.non_finite(0, evaluated[1], evaluated[0]) or run.detect(0, evaluated[1], None))
    step = 0
    if failure is None:
        dyn = make_dyn(atoms)  # the calculator's results are cached: the integrator does not call it here
        for step in range(1, n_steps + 1):
            if set_target is not None:
                set_target(dyn, target(step))
            try:
                dyn.step()
            except Exception as err:  # noqa: BLE001 -- the calculator's (or the integrator's on its output)
                failure = _Failure(step, "calculator_error", f"{type(err).__name__}: {err}")
            else:
                dyn.nsteps += 1
                failure = run.check(step, target(step), full=step % check_every == 0 or step == n_steps)
            if record_every and step % record_every == 0 and failure is None:
                run.record(step, target(step))
            if failure is not None:
                break
            if step % 1000 == 0:
                log.info("%s replica %d: step %d of %d", protocol, replica, step, n_steps)
    if failure is not None:
        run.record(failure.step, target(failure.step), failure)
        survived = max(failure.step - 1, 0)
    else:
        survived = n_steps
    result = StabilityResult(
        protocol=protocol, replica=int(replica), ensemble=ensemble, timestep_fs=float(timestep_fs),
        target_steps=int(n_steps), steps_survived=int(survived),
        failure_step=None if failure is None else int(failure.step),
        time_to_failure_ps=None if failure is None else failure.step * timestep_fs / 1000.0,
        survived_fraction=survived / n_steps, failed=failure is not None,
        detector="" if failure is None else failure.detector, detail="" if failure is None else failure.detail,
        final_temperature_K=float(atoms.get_temperature()), frames=run.frames)
    atoms.calc = None
    return result


def _check_common(start, n_steps, timestep_fs, friction_per_fs, check_every, record_every, rng, detectors) -> None:
    _fresh(start)
    if not isinstance(n_steps, (int, np.integer)) or isinstance(n_steps, bool) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, not {n_steps!r}")
    _positive(timestep_fs, "timestep_fs")
    _positive(friction_per_fs, "friction_per_fs")
    _integer(check_every, "check_every", 1)
    _integer(record_every, "record_every", 0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    if not isinstance(detectors, Detectors):
        raise TypeError(f"detectors must be a Detectors, not {type(detectors).__name__}")


def hold(start: Atoms, calc, *, temperature_K: float, n_steps: int, timestep_fs: float, friction_per_fs: float,
         rng: np.random.Generator, detectors: Detectors, check_every: int = 10, record_every: int = 0,
         npt: bool = False, pressure_GPa: float = 1e-4, barostat_tau_fs: float | None = None,
         replica: int = 0) -> StabilityResult:
    """Hold ``temperature_K`` for ``n_steps``: NVT ``Langevin``, or with ``npt`` (and a start
    periodic in 3D) ``LangevinBAOAB`` at ``pressure_GPa`` with a hydrostatic barostat of time
    constant ``barostat_tau_fs`` (default 20 / ``friction_per_fs``). See the module's docstring."""
    _check_common(start, n_steps, timestep_fs, friction_per_fs, check_every, record_every, rng, detectors)
    temperature_K = _positive(temperature_K, "temperature_K")
    if not isinstance(npt, bool):
        raise ValueError(f"npt must be true or false, not {npt!r}")
    periodic = bool(np.asarray(start.pbc).all()) and start.cell.rank == 3
    if npt and not periodic:
        log.warning("hold: npt requested but the start is not periodic in 3D; running NVT")
    ensemble = "NPT" if npt and periodic else "NVT"
    if ensemble == "NPT":
        pressure_GPa = _finite(pressure_GPa, "pressure_GPa")
        tau_fs = 20.0 / friction_per_fs if barostat_tau_fs is None else _positive(barostat_tau_fs, "barostat_tau_fs")
        if "stress" not in getattr(calc, "implemented_properties", ()):
            raise ValueError(f"hold with npt needs a calculator that computes the stress; "
                             f"{type(calc).__name__} does not")

    def make_dyn(atoms: Atoms):
        if ensemble == "NVT":
            from ase.md.langevin import Langevin

            return Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=temperature_K,
                            friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
        from ase.md.langevinbaoab import LangevinBAOAB

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using heuristic P_mass")
            return LangevinBAOAB(atoms, timestep=timestep_fs * units.fs, temperature_K=temperature_K,
                                 externalstress=-pressure_GPa * units.GPa, hydrostatic=True,
                                 T_tau=units.fs / friction_per_fs, P_tau=tau_fs * units.fs, rng=rng)

    return _simulate("hold", start, calc, ensemble=ensemble, make_dyn=make_dyn, target=lambda step: temperature_K,
                     set_target=None, n_steps=n_steps, timestep_fs=timestep_fs, rng=rng, detectors=detectors,
                     check_every=check_every, record_every=record_every, replica=replica)


def ramp(start: Atoms, calc, *, start_K: float, end_K: float, n_steps: int, timestep_fs: float,
         friction_per_fs: float, rng: np.random.Generator, detectors: Detectors, check_every: int = 10,
         record_every: int = 0, replica: int = 0) -> StabilityResult:
    """NVT ``Langevin`` with the target temperature ``start_K + (end_K - start_K) * step / n_steps``
    (set before each step). See the module's docstring."""
    from ase.md.langevin import Langevin

    _check_common(start, n_steps, timestep_fs, friction_per_fs, check_every, record_every, rng, detectors)
    start_K, end_K = _positive(start_K, "start_K"), _positive(end_K, "end_K")

    def target(step: int) -> float:
        return start_K + (end_K - start_K) * step / n_steps

    def make_dyn(atoms: Atoms):
        return Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=start_K,
                        friction=friction_per_fs / units.fs, fixcm=False, rng=rng)

    return _simulate("ramp", start, calc, ensemble="NVT", make_dyn=make_dyn, target=target,
                     set_target=lambda dyn, t: dyn.set_temperature(temperature_K=t), n_steps=n_steps,
                     timestep_fs=timestep_fs, rng=rng, detectors=detectors, check_every=check_every,
                     record_every=record_every, replica=replica)


# ----------------------------------------------------------------------------- parameters
def _finite(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: a number, not {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{where}: a finite number, not {value!r}")
    return float(value)


def _positive(value, where: str) -> float:
    value = _finite(value, where)
    if value <= 0:
        raise ValueError(f"{where}: must be > 0, not {value:g}")
    return value


def _integer(value, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: an integer >= {minimum}, not {value!r}")
    return int(value)


def _range(value, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{where}: a list [lo, hi], not {value!r}")
    lo, hi = _positive(value[0], f"{where}[0]"), _positive(value[1], f"{where}[1]")
    if not lo < 1.0 < hi:
        raise ValueError(f"{where}: needs lo < 1 < hi (factors of the start's density), not [{lo:g}, {hi:g}]")
    return lo, hi


def _block(raw, where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: a mapping, not {raw!r}")
    unknown = [k for k in raw if k not in required + optional]
    if unknown:
        raise ValueError(f"{where}: unknown key {where + '.' if where != 'params' else ''}{unknown[0]} "
                         f"(known: {', '.join(required + optional)})")
    missing = [k for k in required if k not in raw]
    if missing:
        prefix = "" if where == "params" else where + "."
        raise ValueError(f"{where}: missing key {prefix}{missing[0]}")
    return dict(raw)


@dataclass(frozen=True)
class StabilityParams:
    """The checked ``--params`` (see the module's docstring)."""

    timestep_fs: float
    friction_per_fs: float
    check_every: int
    record_every: int
    detectors: Detectors
    hold: dict | None
    ramp: dict | None
    replicas: int | None = None

    def run(self, protocol: str, start: Atoms, calc, rng: np.random.Generator, replica: int = 0) -> StabilityResult:
        common = {"timestep_fs": self.timestep_fs, "friction_per_fs": self.friction_per_fs, "rng": rng,
                  "detectors": self.detectors, "check_every": self.check_every,
                  "record_every": self.record_every, "replica": replica}
        if protocol == "hold" and self.hold is not None:
            h = self.hold
            return hold(start, calc, temperature_K=h["temperature_K"], n_steps=h["steps"], npt=h["npt"],
                        pressure_GPa=h["pressure_GPa"], barostat_tau_fs=h["barostat_tau_fs"], **common)
        if protocol == "ramp" and self.ramp is not None:
            r = self.ramp
            return ramp(start, calc, start_K=r["start_K"], end_K=r["end_K"], n_steps=r["steps"], **common)
        raise ValueError(f"params: no block for protocol {protocol!r} (give params.{protocol})")


def parse_params(raw, protocols: tuple[str, ...] | list[str] = PROTOCOLS) -> StabilityParams:
    """Check ``raw`` (the ``--params`` mapping) key by key; ``protocols`` need their blocks.
    A ``ValueError`` names the offending key."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol {unknown[0]!r} (known: {', '.join(PROTOCOLS)})")
    p = _block(raw, "params", ("timestep_fs", "friction_per_fs", "detectors"),
               ("check_every", "record_every", "replicas", "hold", "ramp"))
    for name in protocols:
        if name not in p:
            raise ValueError(f"params: missing key {name} (the {name} protocol runs)")
    d = _block(p["detectors"], "detectors", ("min_distance", "max_force", "temperature_factor", "density_range"),
               ("temperature_grace_fs",))
    md = d["min_distance"]
    if md is not None and not isinstance(md, Mapping):
        raise ValueError(f"detectors.min_distance: a mapping of 'A-B' pairs to A (or null), not {md!r}")
    detectors = Detectors(
        min_distance=(None if md is None
                      else {str(k): _positive(v, f"detectors.min_distance.{k}") for k, v in md.items()}),
        max_force=None if d["max_force"] is None else _positive(d["max_force"], "detectors.max_force"),
        temperature_factor=(None if d["temperature_factor"] is None
                            else _positive(d["temperature_factor"], "detectors.temperature_factor")),
        density_range=None if d["density_range"] is None else _range(d["density_range"], "detectors.density_range"),
        temperature_grace_fs=d.get("temperature_grace_fs", 0.0))
    if detectors.temperature_factor is not None and detectors.temperature_factor <= 1:
        raise ValueError(f"detectors.temperature_factor: must be > 1 (a multiple of the target temperature), "
                         f"not {detectors.temperature_factor:g}")
    hold_block = ramp_block = None
    if "hold" in p:
        h = _block(p["hold"], "hold", ("temperature_K", "steps"), ("npt", "pressure_GPa", "barostat_tau_fs"))
        npt = h.get("npt", False)
        if not isinstance(npt, bool):
            raise ValueError(f"hold.npt: true or false, not {npt!r}")
        tau = h.get("barostat_tau_fs")
        hold_block = {"temperature_K": _positive(h["temperature_K"], "hold.temperature_K"),
                      "steps": _integer(h["steps"], "hold.steps", 1), "npt": npt,
                      "pressure_GPa": _finite(h.get("pressure_GPa", 1e-4), "hold.pressure_GPa"),
                      "barostat_tau_fs": None if tau is None else _positive(tau, "hold.barostat_tau_fs")}
    if "ramp" in p:
        r = _block(p["ramp"], "ramp", ("start_K", "end_K", "steps"), ())
        ramp_block = {"start_K": _positive(r["start_K"], "ramp.start_K"), "end_K": _positive(r["end_K"], "ramp.end_K"),
                      "steps": _integer(r["steps"], "ramp.steps", 1)}
    return StabilityParams(timestep_fs=_positive(p["timestep_fs"], "timestep_fs"),
                           friction_per_fs=_positive(p["friction_per_fs"], "friction_per_fs"),
                           check_every=_integer(p.get("check_every", 10), "check_every", 1),
                           record_every=_integer(p.get("record_every", 0), "record_every", 0),
                           detectors=detectors, hold=hold_block, ramp=ramp_block,
                           replicas=None if p.get("replicas") is None else _integer(p["replicas"], "replicas", 1))


def load_params(text: str):
    """``--params``: a path to a JSON or YAML file, else a JSON string."""
    path = Path(text)
    if text.strip()[:1] not in ("{", "[") and path.exists():
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                return yaml.safe_load(path.read_text())
            return json.loads(path.read_text())
        except Exception as err:  # noqa: BLE001 -- any parse error, with the file's name
            raise ValueError(f"cannot read {path} as {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                             f"{err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--params is neither an existing file nor JSON ({err}): {text[:80]!r}") from None


def replica_rng(seed: int, replica: int) -> np.random.Generator:
    """The generator of replica ``replica``: the ``replica``-th child of ``SeedSequence(seed)``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(replica),)))


def run_all(start: Atoms, calc, params: StabilityParams, protocols, replicas: int, seed: int) -> list[StabilityResult]:
    """Every protocol for every replica (replica-major order)."""
    results = []
    for replica in range(replicas):
        for protocol in protocols:
            result = params.run(protocol, start, calc, replica_rng(seed, replica), replica=replica)
            log.info("%s replica %d (%s): %s after %d of %d steps%s", protocol, replica, result.ensemble,
                     "FAILED" if result.failed else "survived", result.steps_survived, result.target_steps,
                     f" [{result.detector}: {result.detail}]" if result.failed else "")
            results.append(result)
    return results


def write_results(path, results: list[StabilityResult], model: str, seed: int) -> None:
    """The CSV of :data:`COLUMNS`, one row per result, written atomically."""
    import pandas as pd

    rows = [{"model": model, "md_seed": int(seed), **r.row()} for r in results]
    frame = pd.DataFrame(rows, columns=list(COLUMNS)).astype({"failure_step": "Int64"})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def main(argv=None) -> None:
    from .. import allocator

    allocator.tune()  # no page faults on every step (mlipft.allocator)
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.stability",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="MACE model (.model)")
    parser.add_argument("--start", required=True, help="extxyz: the start structure")
    parser.add_argument("--frame", type=int, help="frame of --start (required when it has several)")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--params", required=True, help="JSON, or a path to a JSON/YAML file (see the docstring)")
    parser.add_argument("--replicas", type=int, help="default: the params' replicas, else 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--default-dtype", default="float64")
    parser.add_argument("--head", help="head of a multihead model (default: mace's choice)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", required=True, help="CSV, one row per protocol and replica")
    parser.add_argument("--trajectory", help="extxyz of the recorded frames of every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    # our errors first, before the model is loaded and any dynamics start
    if args.replicas is not None and args.replicas < 1:
        raise SystemExit(f"--replicas must be >= 1, not {args.replicas}")
    if len(set(args.protocols)) != len(args.protocols):
        raise SystemExit(f"--protocols: listed twice: {args.protocols}")
    try:
        params = parse_params(load_params(args.params), args.protocols)
    except ValueError as err:
        raise SystemExit(f"--params: {err}") from None
    if args.replicas is not None and params.replicas is not None and args.replicas != params.replicas:
        raise SystemExit(f"--replicas {args.replicas} disagrees with the params' replicas {params.replicas}")
    replicas = args.replicas or params.replicas or 1
    if not Path(args.model).is_file():
        raise SystemExit(f"--model: model file not found: {args.model}")
    try:
        starts = read_configs(args.start)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"--start: {err}") from None
    if args.frame is None and len(starts) != 1:
        raise SystemExit(f"--start {args.start} has {len(starts)} frames: give --frame")
    frame = 0 if args.frame is None else args.frame
    if not -len(starts) <= frame < len(starts):
        raise SystemExit(f"--frame {frame}: {args.start} has {len(starts)} frames")
    start = starts[frame]

    import torch
    from mace.calculators import MACECalculator

    from ..train import resolve_device

    torch.set_num_threads(args.threads)
    calc = MACECalculator(model_paths=str(args.model), device=resolve_device(args.device),
                          default_dtype=args.default_dtype, **({"head": args.head} if args.head is not None else {}))
    results = run_all(start, calc, params, args.protocols, replicas, args.seed)
    write_results(args.output, results, str(args.model), args.seed)
    if args.trajectory:
        frames = []
        for result in results:
            for f in result.frames:
                f.info.update({"protocol": result.protocol, "replica": result.replica})
                frames.append(f)
        write_atomic(args.trajectory, frames)
    failed = sum(r.failed for r in results)
    log.info("%d runs of %s from %s (frame %d): %d failed -> %s", len(results), args.model, args.start, frame, failed,
             args.output)


__all__ = ["Detectors", "StabilityParams", "StabilityResult", "check_min_distance", "density_g_cm3", "hold",
           "load_params", "main", "min_distance_table", "parse_params", "ramp", "replica_rng", "run_all",
           "write_results"]


if __name__ == "__main__":
    main()
