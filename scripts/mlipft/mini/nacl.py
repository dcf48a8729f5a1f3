"""Aqueous NaCl benchmark of the mini world: one Na+/Cl- pair in a small periodic water box.

Stands for the paper's aqueous-NaCl benchmark (MP2 labels of O'Neill et al., niamhon/nacl-water;
Cl-O and Na-O radial distribution functions from MD, compared by the earth mover's distance to a
reference RDF). Here the target level is GFN2-xTB.

Protocol of :func:`generate` (all steps deterministic given the seed). ``n_walkers``
independent walkers, run in parallel processes (one OpenMP thread each, so the result is
bitwise reproducible and does not depend on the number of processes), each:

1. **Box.** ``n_water`` water molecules plus one Na and one Cl on a cubic grid (random
   orientations, clash-checked), cubic cell at ``density_g_cm3`` (ions included).
2. **Cheap pre-equilibration** at the foundation level (GFN1-xTB): ``relax_steps`` FIRE steps,
   then ``equil_steps_foundation`` Langevin steps.
3. **Target-level MD** (GFN2-xTB, Langevin NVT at ``temperature_K``): ``equil_steps_target``
   steps discarded, then ``prod_steps`` production steps. Every production step enters the
   reference RDF; every ``record_every``-th step is a labelled configuration (its GFN2 energy,
   forces and stress are those the MD computed: the same calculator settings as
   :func:`mlipft.xtb.label`, so no second evaluation is needed).
4. **Splits by time blocks** of each walker's labelled frames: ``train | gap | valid | gap |
   test`` (``gap_frames`` frames dropped between blocks; ``n_valid`` and ``n_test`` shared out
   over the walkers), so that test frames are not the time-neighbours of training frames.

Hydrogen mass: the MD uses ``hydrogen_mass_amu`` (2.0 by default, i.e. deuterium) so that a
1 fs time step is stable. Masses do not change the classical configurational (Boltzmann)
distribution, so static observables such as g(r) and the sampled configurations are those of
the light-water potential energy surface; only the dynamics (and so the decorrelation time in
steps) change. The workflow must run model MD with the same protocol: :func:`langevin_md` and
the ``md_*`` keys of ``md_start.xyz`` carry it.

Reference RDF and its cost: GFN2-xTB in a ~50-atom periodic cell costs ~1.3 s per MD step on
two cores (D4 dispersion and Ewald sums dominate; see ``generation_info.json``), so "a few ps"
at the target level (thousands of steps) is out of the mini budget. The mini reference RDF is
therefore **short** target-level trajectories (2 walkers x 0.21 ps, after 0.3 ps at GFN1-xTB). Their statistical noise is
measured and written out: ``rdf_noise_emd`` in ``generation_info.json`` is the EMD between the
RDFs of two independent halves of the data (half of the walkers against the other half);
differences between a model's EMD and this floor are the meaningful ones. Raise
``prod_steps`` or ``n_walkers`` for a better reference.

Files written by :func:`generate`:
- ``train.xyz``, ``valid.xyz``, ``test.xyz`` (GFN2-xTB labels: ``REF_energy``, ``REF_forces``,
  ``REF_stress``; ``info['walker']`` and ``info['time_fs']``, the time in its production run);
- ``isolated_atoms.xyz`` (GFN2 isolated H, O, Na, Cl);
- ``md_start.xyz``: the configuration (with momenta and masses) at the start of walker 0's
  target-level production run, with the MD protocol in ``info`` (``md_temperature_K``, ``md_timestep_fs``,
  ``md_friction_per_fs``, ``md_hydrogen_mass_amu``, ``md_prod_steps``, ``md_n_walkers``, ``rdf_r_max``,
  ``rdf_nbins``) for model MD;
- ``rdf_reference.csv`` (columns ``pair,r_angstrom,g_r``: bin centres and g(r) of ``Cl-O`` and
  ``Na-O`` from :func:`compute_rdf` on the production trajectory);
- ``generation_info.json``: timings (seconds per GFN1 and GFN2 MD step), box size, RDF noise
  floor, water integrity checks.

RDFs are computed with MDAnalysis ``InterRDF`` (:func:`compute_rdf`), for the reference and,
through the same function, for models. :func:`earth_movers_distance` compares two RDFs. The MD
protocol, the RDF and the EMD live in the analysis layer (:mod:`mlipft.analysis.md`,
:mod:`mlipft.analysis.rdf`), where model MD reaches them; this module re-exports them.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses

from .. import xtb
from ..analysis import md
from ..analysis.rdf import (compute_rdf, earth_movers_distance, max_rdf_range, read_rdf_csv,
                            trajectory_universe, write_rdf_csv)
from ..io import atomic_path, write_atomic
from ..keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, STRESS_KEY

log = logging.getLogger(__name__)

CARD = {
    "name": "nacl",
    "paper_counterpart": "aqueous NaCl (one ion pair in water, MP2 labels; niamhon/nacl-water), "
    "Cl-O and Na-O RDFs from MD compared by the earth mover's distance to a reference",
    "level": "GFN2-xTB (target level)",
    "elements": ["H", "O", "Na", "Cl"],
    "sizes": {
        "smoke": "16 H2O + NaCl (50 atoms; the mini box: 20-atom boxes gave GFN2 SCF failures), "
        "2 walkers x 3 GFN2 MD steps, 6 labelled frames (train 4 / valid 1 / test 1; ~20 s)",
        "mini": "16 H2O + NaCl (50 atoms, L = 8.32 A), 2 walkers x (300 GFN1 + 20 + 210 GFN2) "
        "MD steps of 1 fs, 140 labelled frames: train 100 / valid 14 / test 14 (~15 min on 2 "
        "cores, one walker per core; ~30 min on one core)",
    },
    "same": "one Na+/Cl- pair in periodic liquid water; configurations from NVT MD; Cl-O and "
    "Na-O RDFs from MD at the target level; EMD between model and reference RDFs; "
    "train/valid/test splits for subsampling (10 %, 100 %) downstream",
    "different": "GFN2-xTB instead of MP2; 16 instead of ~100 water molecules (the RDF reaches "
    "only L/2 ~ 4.1 A, the first solvation shells); the reference RDF is GFN2-xTB MD itself "
    "(2 x 0.21 ps) instead of a long Behler-Parrinello NN MD; the training frames come from those "
    "same GFN2 trajectories (time-block splits); deuterium masses for a 1 fs step",
}

FILES = ("train", "valid", "test", "isolated_atoms", "md_start")
EXTRA_FILES = ("rdf_reference.csv", "generation_info.json")
RDF_PAIRS = ("Cl-O", "Na-O")

# Parameters of generate(); DEFAULT_PARAMS is the "mini" size.
PARAM_DOCS = {
    "n_water": "water molecules in the box (the box also holds one Na and one Cl)",
    "density_g_cm3": "mass density of the cubic box, ions included (g/cm^3)",
    "temperature_K": "Langevin thermostat temperature of every MD stage (K)",
    "timestep_fs": "MD time step (fs)",
    "friction_per_fs": "Langevin friction coefficient (1/fs)",
    "hydrogen_mass_amu": "mass given to H in the MD (amu); 2.0 = deuterium, allows 1 fs steps",
    "n_walkers": "independent trajectories (own box, own equilibration, own seed stream)",
    "processes": "parallel processes for the walkers; null = min(n_walkers, available cores)",
    "relax_steps": "FIRE steps at GFN1-xTB on the initial grid box (fmax 0.5 eV/A)",
    "equil_steps_foundation": "Langevin steps at GFN1-xTB per walker (cheap pre-equilibration)",
    "equil_steps_target": "Langevin steps at GFN2-xTB per walker that are discarded",
    "prod_steps": "GFN2-xTB production steps per walker; all enter the reference RDF",
    "record_every": "a labelled configuration every this many production steps",
    "n_valid": "labelled frames in validation blocks (shared out over the walkers)",
    "n_test": "labelled frames in test blocks, the last frames of each walker (shared out)",
    "gap_frames": "labelled frames dropped between a walker's train/valid and valid/test blocks",
    "rdf_nbins": "histogram bins of the RDFs",
    "rdf_r_max": "upper edge of the RDFs (A); null = the largest minimum-image-safe value, "
    "half the smallest perpendicular width of the cell, rounded down to 0.05 A",
}

DEFAULT_PARAMS = {
    "n_water": 16,
    "density_g_cm3": 1.0,
    "temperature_K": 320.0,
    "timestep_fs": 1.0,
    "friction_per_fs": 0.02,
    "hydrogen_mass_amu": 2.0,
    "n_walkers": 2,
    "processes": None,
    "relax_steps": 30,
    "equil_steps_foundation": 300,
    "equil_steps_target": 20,
    "prod_steps": 210,
    "record_every": 3,
    "n_valid": 14,
    "n_test": 14,
    "gap_frames": 3,
    "rdf_nbins": 40,
    "rdf_r_max": None,
}

SIZES = {
    "smoke": {
        "n_water": 16,
        "n_walkers": 2,
        "relax_steps": 5,
        "equil_steps_foundation": 3,
        "equil_steps_target": 0,
        "prod_steps": 3,
        "record_every": 1,
        "n_valid": 1,
        "n_test": 1,
        "gap_frames": 0,
        "rdf_nbins": 20,
    },
    "mini": dict(DEFAULT_PARAMS),
}

WATER_OH = 0.9572  # A
WATER_HOH = 104.52  # degrees
_AMU_PER_A3_TO_G_CM3 = 1.0 / 0.602214076  # 1 amu/A^3 = 1.66054 g/cm^3


# ----------------------------------------------------------------------------- box building
def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix (from a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _water_template() -> np.ndarray:
    """O, H, H positions of a water molecule with O at the origin."""
    half = np.deg2rad(WATER_HOH) / 2
    return np.array([
        [0.0, 0.0, 0.0],
        [WATER_OH * np.sin(half), 0.0, WATER_OH * np.cos(half)],
        [-WATER_OH * np.sin(half), 0.0, WATER_OH * np.cos(half)],
    ])


def box_length(n_water: int, density_g_cm3: float) -> float:
    """Edge (A) of the cubic box of ``n_water`` H2O + NaCl at the given density."""
    mass = n_water * (2 * atomic_masses[1] + atomic_masses[8]) + atomic_masses[11] + atomic_masses[17]
    volume = mass * _AMU_PER_A3_TO_G_CM3 / density_g_cm3
    return float(volume ** (1.0 / 3.0))


def water_box(n_water: int, density_g_cm3: float, rng: np.random.Generator, n_orientations: int = 200) -> Atoms:
    """Cubic periodic box: Na, Cl and ``n_water`` randomly oriented waters on a grid.

    The ions sit on grid sites as far apart as the grid allows; waters take a random subset of
    the other sites; each orientation is redrawn (up to ``n_orientations`` times, keeping the
    best) until no H comes closer than 1.6 A to another molecule's H, 1.5 A to another O,
    1.8 A to Cl or 2.0 A to Na.
    """
    if n_water < 1:
        raise ValueError("n_water must be >= 1")
    length = box_length(n_water, density_g_cm3)
    n_grid = int(np.ceil((n_water + 2) ** (1.0 / 3.0) - 1e-9))
    spacing = length / n_grid
    sites = np.array([(i, j, k) for i in range(n_grid) for j in range(n_grid) for k in range(n_grid)])
    na_site = 0
    cl_site = int(np.flatnonzero((sites == n_grid // 2).all(axis=1))[0]) if n_grid > 1 else None
    if cl_site is None:
        raise ValueError("box too small for the grid construction")
    free = [s for s in range(len(sites)) if s not in (na_site, cl_site)]
    water_sites = rng.permutation(free)[:n_water]
    cell = np.eye(3) * length
    atoms = Atoms("NaCl", positions=[(sites[na_site] + 0.5) * spacing, (sites[cl_site] + 0.5) * spacing],
                  cell=cell, pbc=True)
    template = _water_template()
    min_dist = {"H": 1.6, "O": 1.5, "Cl": 1.8, "Na": 2.0}
    symbols = atoms.get_chemical_symbols()
    for s in water_sites:
        centre = (sites[s] + 0.5) * spacing
        best, best_score = None, -np.inf
        for _attempt in range(n_orientations):
            mol = template @ _random_rotation(rng).T + centre
            probe = atoms + Atoms("OH2", positions=mol)
            n0 = len(atoms)
            # score: smallest ratio of an H's distance to another molecule's atom over its minimum
            score = np.inf
            for h in (n0 + 1, n0 + 2):
                d = probe.get_distances(h, list(range(n0)), mic=True)
                score = min(score, min((dist / min_dist[sy] for dist, sy in zip(d, symbols)), default=np.inf))
            if score > best_score:
                best, best_score = mol, score
            if score >= 1.0:
                break
        atoms += Atoms("OH2", positions=best)
        symbols = atoms.get_chemical_symbols()
    atoms.info["charge"] = 0
    atoms.info["multiplicity"] = 1
    return atoms


def set_hydrogen_mass(atoms: Atoms, mass_amu: float) -> None:
    """Give every H the mass ``mass_amu`` (stored in ``atoms.arrays['masses']``)."""
    masses = atoms.get_masses()
    masses[atoms.numbers == 1] = mass_amu
    atoms.set_masses(masses)


def intact_waters(atoms: Atoms, cutoff: float = 1.25) -> float:
    """Fraction of O atoms with exactly two H within ``cutoff`` (minimum image)."""
    symbols = np.array(atoms.get_chemical_symbols())
    o_idx = np.flatnonzero(symbols == "O")
    h_idx = np.flatnonzero(symbols == "H")
    if len(o_idx) == 0:
        return 1.0
    n_ok = 0
    for o in o_idx:
        d = atoms.get_distances(o, h_idx, mic=True)
        n_ok += int((d < cutoff).sum() == 2)
    return n_ok / len(o_idx)


# ----------------------------------------------------------------------------- robust xTB
def robust_calculator(level: str, charge: int = 0, multiplicity: int = 1):
    """:func:`mlipft.xtb.calculator` with an SCF fallback for small periodic boxes.

    The parameters are exactly those of ``xtb.calculator`` (so converged results are the same
    as :func:`mlipft.xtb.label`'s); only when an SCF fails to converge (charge sloshing, seen
    for GFN2-xTB in 20-atom water boxes) is the point recomputed from a fresh guess with a
    smaller Broyden damping (0.2) and 1000 iterations, and the calculator keeps these settings
    from then on. They converge to the same solution (checked: energies agree to 1e-7 eV where
    both converge, and the damped SCF is no slower on a 50-atom box). The electronic
    temperature, which would change the answer, is never touched.
    """
    from ase.calculators.calculator import CalculationFailed, all_changes
    from tblite.ase import TBLite

    class _RobustTBLite(TBLite):
        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            try:
                super().calculate(atoms, properties, system_changes)
            except CalculationFailed as err:
                if self.parameters["mixer_damping"] == 0.2:
                    raise
                log.warning("SCF failed (%s); from now on mixer_damping 0.2, 1000 iterations", err)
                target = atoms.copy() if atoms is not None else self.atoms.copy()
                self._xtb, self._res = None, None
                self.set(mixer_damping=0.2, max_iterations=1000)  # sticky for this calculator
                super().calculate(target, properties, all_changes)

    base = xtb.calculator(level, charge, multiplicity)
    return _RobustTBLite(**dict(base.parameters))


def label_robust(configs: list[Atoms], level: str) -> list[Atoms]:
    """:func:`mlipft.xtb.label`, falling back to :func:`robust_calculator` for a configuration
    whose SCF does not converge with the default settings."""
    out = []
    for atoms in configs:
        try:
            out += xtb.label([atoms], level)
        except xtb.LabellingError:
            a = atoms.copy()
            a.calc = robust_calculator(level, int(a.info.get("charge", 0)), int(a.info.get("multiplicity", 1)))
            out.append(_labelled_copy(a, level))
    return out


# ----------------------------------------------------------------------------- MD
def _labelled_copy(atoms: Atoms, method: str) -> Atoms:
    """Copy of ``atoms`` with the calculator's current results as canonical REF_ labels."""
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    copy = atoms.copy()
    copy.calc = None
    copy.info[ENERGY_KEY] = float(energy)
    copy.arrays[FORCES_KEY] = np.array(forces, dtype=float)
    if atoms.pbc.all():
        copy.info[STRESS_KEY] = np.array(atoms.get_stress(voigt=False), dtype=float).reshape(3, 3)
    copy.info["level"] = xtb.method_for(method)
    return copy


def langevin_md(atoms: Atoms, calc, n_steps: int, *, label_level: str | None = None, **kwargs) -> list[Atoms]:
    """:func:`mlipft.analysis.md.langevin_md` (same arguments); with ``label_level`` the frames
    carry the calculator's energy/forces/stress as canonical ``REF_`` labels of that level."""
    snapshot = None if label_level is None else (lambda a: _labelled_copy(a, label_level))
    return md.langevin_md(atoms, calc, n_steps, snapshot=snapshot, **kwargs)


# ----------------------------------------------------------------------------- generate
def _split_counts(total: int, n_walkers: int) -> list[int]:
    base, extra = divmod(int(total), n_walkers)
    return [base + (1 if w < extra else 0) for w in range(n_walkers)]


def _time_block_split(frames: list[Atoms], n_valid: int, n_test: int, gap: int):
    n = len(frames)
    n_train = n - n_test - n_valid - 2 * gap
    if n_train < 1 or n_valid < 0 or n_test < 0:
        raise ValueError(
            f"{n} labelled frames of a walker cannot hold n_valid={n_valid}, n_test={n_test} and "
            f"gaps of {gap} with at least one training frame; raise prod_steps or lower record_every"
        )
    train = frames[:n_train]
    valid = frames[n_train + gap : n_train + gap + n_valid]
    test = frames[n - n_test :] if n_test else []
    return train, valid, test


def _run_walker(p: dict, rng: np.random.Generator, walker: int) -> dict:
    """One independent trajectory: box, GFN1 relax + equilibration, GFN2 equilibration and
    production. Returns the labelled production frames (every step), md_start and timings."""
    from ase.optimize import FIRE

    md = dict(temperature_K=p["temperature_K"], timestep_fs=p["timestep_fs"], friction_per_fs=p["friction_per_fs"])
    timings: dict[str, float] = {}
    atoms = water_box(p["n_water"], p["density_g_cm3"], rng)
    set_hydrogen_mass(atoms, p["hydrogen_mass_amu"])
    log.info("walker %d: NaCl box of %d atoms, L = %.3f A", walker, len(atoms), atoms.cell[0, 0])

    t0 = time.perf_counter()
    atoms.calc = robust_calculator("foundation", 0, 1)
    if p["relax_steps"] > 0:
        FIRE(atoms, logfile=None).run(fmax=0.5, steps=p["relax_steps"])
    t1 = time.perf_counter()
    langevin_md(atoms, robust_calculator("foundation", 0, 1), p["equil_steps_foundation"], rng=rng, **md)
    t2 = time.perf_counter()
    timings["foundation_relax_s"] = t1 - t0
    timings["foundation_equil_s"] = t2 - t1
    if p["equil_steps_foundation"] > 0:
        timings["gfn1_seconds_per_md_step"] = (t2 - t1) / p["equil_steps_foundation"]

    target_calc = robust_calculator("target", 0, 1)
    t0 = time.perf_counter()
    langevin_md(atoms, target_calc, p["equil_steps_target"], rng=rng, init_velocities=False, **md)
    md_start = atoms.copy()
    md_start.calc = None
    every_step = langevin_md(atoms, target_calc, p["prod_steps"], rng=rng, init_velocities=False,
                             record_every=1, label_level="target", **md)
    t1 = time.perf_counter()
    n_target_steps = p["equil_steps_target"] + p["prod_steps"]
    timings["target_md_s"] = t1 - t0
    if n_target_steps > 0:
        timings["gfn2_seconds_per_md_step"] = (t1 - t0) / n_target_steps
    for frame in every_step:
        frame.info["walker"] = walker
        frame.info["time_fs"] = frame.info["step"] * p["timestep_fs"]
        frame.info[CONFIG_TYPE_KEY] = "nacl_aq"
        frame.info["charge"] = 0
        frame.info["multiplicity"] = 1
        frame.arrays.pop("masses", None)  # labelled data carry standard masses
        frame.arrays.pop("momenta", None)
    return {"every_step": every_step, "md_start": md_start, "timings": timings}


def _walker_job(args) -> dict:
    """One walker on one OpenMP thread (bitwise reproducible)."""
    p, seed_sequence, walker = args
    import tblite.interface  # noqa: F401  (threadpoolctl only limits libraries already loaded)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return _run_walker(p, np.random.default_rng(seed_sequence), walker)


def run_walkers(p: dict, seed: int) -> list[dict]:
    """Run ``p['n_walkers']`` independent walkers, in parallel processes where allowed.

    Walker w draws from ``np.random.SeedSequence(seed).spawn(n_walkers)[w]`` and runs tblite on
    one OpenMP thread, so the result does not depend on ``processes`` or on the machine's
    thread count: it is bitwise reproducible (two OpenMP threads are not: their reductions
    change the last digits, and a long MD trajectory amplifies them). Parallel walkers run as
    child processes ``python -m mlipft.mini.nacl IN.pkl OUT.pkl`` (not multiprocessing, whose
    spawn mode re-runs an unguarded caller script and whose fork mode is unsafe after OpenMP
    has been used), with the parent's ``sys.path`` and ``OMP_NUM_THREADS=1``.
    """
    import os
    import pickle
    import subprocess
    import sys
    import tempfile

    n_walkers = int(p["n_walkers"])
    if n_walkers < 1:
        raise ValueError("n_walkers must be >= 1")
    seeds = np.random.SeedSequence(seed).spawn(n_walkers)
    jobs = [(p, seeds[w], w) for w in range(n_walkers)]
    processes = p["processes"] or min(n_walkers, len(os.sched_getaffinity(0)))
    processes = max(1, min(int(processes), n_walkers))
    if processes == 1:
        return [_walker_job(job) for job in jobs]
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    results: list[dict | None] = [None] * n_walkers
    with tempfile.TemporaryDirectory(prefix="nacl_walkers_") as tmp:
        for first in range(0, n_walkers, processes):
            running = []
            for w in range(first, min(first + processes, n_walkers)):
                job_in, job_out = Path(tmp) / f"in_{w}.pkl", Path(tmp) / f"out_{w}.pkl"
                job_in.write_bytes(pickle.dumps(jobs[w]))
                cmd = [sys.executable, "-m", "mlipft.mini.nacl", str(job_in), str(job_out)]
                running.append((w, job_out, subprocess.Popen(cmd, env=env)))
            for w, job_out, proc in running:
                if proc.wait() != 0:
                    for _, _, other in running:
                        other.kill()
                    raise RuntimeError(f"NaCl walker {w} failed (exit code {proc.returncode})")
                results[w] = pickle.loads(job_out.read_bytes())
    return results


def generate(params: dict, seed: int, out_dir: Path) -> dict:
    """Write the NaCl(aq) benchmark files into ``out_dir``; return ``{file: n_configs}``.

    ``params`` override :data:`DEFAULT_PARAMS` (keys in :data:`PARAM_DOCS`); see the module
    docstring for the protocol and the files.
    """
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown nacl parameters {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
    p = {**DEFAULT_PARAMS, **params}
    if p["n_valid"] < 1 or p["n_test"] < 1:
        raise ValueError("n_valid and n_test must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    walkers = run_walkers(p, seed)
    t_walkers = time.perf_counter() - t_start

    train, valid, test, labelled = [], [], [], []
    for w, (result, n_valid, n_test) in enumerate(zip(
        walkers, _split_counts(p["n_valid"], len(walkers)), _split_counts(p["n_test"], len(walkers))
    )):
        frames = [f for f in result["every_step"] if f.info["step"] % p["record_every"] == 0]
        labelled += frames
        tr, va, te = _time_block_split(frames, n_valid, n_test, p["gap_frames"])
        train += tr
        valid += va
        test += te

    # Reference RDFs from every production frame of every walker.
    md_start = walkers[0]["md_start"]
    r_max = p["rdf_r_max"]
    if r_max is None:
        r_max = np.floor(max_rdf_range(md_start) / 0.05) * 0.05
    all_frames = [f for result in walkers for f in result["every_step"]]
    rdfs = {pair: compute_rdf(all_frames, pair, r_max, p["rdf_nbins"]) for pair in RDF_PAIRS}
    # Noise floor: EMD between the RDFs of two independent halves of the data (walkers
    # 0..W/2-1 against the others; the two halves of the run with one walker).
    if len(walkers) >= 2:
        half = len(walkers) // 2
        part_a = [f for result in walkers[:half] for f in result["every_step"]]
        part_b = [f for result in walkers[half:] for f in result["every_step"]]
    else:
        half = len(all_frames) // 2
        part_a, part_b = all_frames[:half], all_frames[half:]
    noise = {}
    for pair in RDF_PAIRS:
        try:
            r, g_a = compute_rdf(part_a, pair, r_max, p["rdf_nbins"])
            _, g_b = compute_rdf(part_b, pair, r_max, p["rdf_nbins"])
            noise[pair] = earth_movers_distance(r, g_a, g_b)
        except ValueError:
            noise[pair] = None

    md_start.info.update({
        "charge": 0,
        "multiplicity": 1,
        "md_temperature_K": p["temperature_K"],
        "md_timestep_fs": p["timestep_fs"],
        "md_friction_per_fs": p["friction_per_fs"],
        "md_hydrogen_mass_amu": p["hydrogen_mass_amu"],
        "md_prod_steps": p["prod_steps"],
        "md_n_walkers": int(p["n_walkers"]),
        "rdf_r_max": float(r_max),
        "rdf_nbins": int(p["rdf_nbins"]),
    })

    files = {
        "train.xyz": train,
        "valid.xyz": valid,
        "test.xyz": test,
        "isolated_atoms.xyz": xtb.isolated_atoms(CARD["elements"], "target"),
        "md_start.xyz": [md_start],
    }
    for name, atoms_list in files.items():
        write_atomic(out_dir / name, atoms_list)
    write_rdf_csv(out_dir / "rdf_reference.csv", rdfs)
    info = {
        "seed": seed,
        "params": p,
        "n_atoms": len(md_start),
        "box_length_angstrom": float(md_start.cell[0, 0]),
        "rdf_r_max": float(r_max),
        "rdf_noise_emd": noise,
        "intact_water_fraction_start": min(intact_waters(result["md_start"]) for result in walkers),
        "intact_water_fraction_min": min((intact_waters(f) for f in labelled), default=None),
        "walltime_walkers_s": t_walkers,
        "timings": [result["timings"] for result in walkers],
    }
    with atomic_path(out_dir / "generation_info.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    if info["intact_water_fraction_min"] is not None and info["intact_water_fraction_min"] < 1.0:
        log.warning("some labelled frames have a broken water molecule (proton transfer)")
    summary = {name: len(v) for name, v in files.items()}
    summary["rdf_reference.csv"] = sum(len(r) for r, _ in rdfs.values())
    return summary


__all__ = [
    "CARD", "DEFAULT_PARAMS", "PARAM_DOCS", "SIZES", "FILES", "EXTRA_FILES", "RDF_PAIRS",
    "generate", "water_box", "langevin_md", "compute_rdf", "earth_movers_distance",
    "max_rdf_range", "trajectory_universe", "read_rdf_csv", "write_rdf_csv", "set_hydrogen_mass",
    "intact_waters", "robust_calculator", "label_robust", "run_walkers",
]


def _main(argv: list[str]) -> None:
    """Child-process entry point of :func:`run_walkers`: ``python -m mlipft.mini.nacl IN OUT``."""
    import pickle

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    job_in, job_out = argv
    result = _walker_job(pickle.loads(Path(job_in).read_bytes()))
    Path(job_out).write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
