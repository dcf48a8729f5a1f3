"""Ice-polymorph benchmark of the mini world: ice Ih, II, VI and VIII at GFN2-xTB, with stress.

Stands for the paper's ice benchmark (DFT energies, forces and stresses of ice Ih, II, VI and
VIII; venkatkapil24/fine-tuning-MLPs-ice-polymorphs), used for single-phase and combined
("cross-phase") fine-tuning.

Structures come from GenIce2 (Python API, lattice plugins ``1h``, ``2``, ``6``, ``8``; TIP3P
geometry of the water molecule; proton disorder with zero net dipole, ``depol='strict'``):

=====  =================  ===========  ========================================================
phase  GenIce2 lattice    atoms        cell
=====  =================  ===========  ========================================================
Ih     ``1h``             48 (16 H2O)  orthorhombic, the smallest common proton-disordered cell
II     ``2``              36 (12 H2O)  rhombohedral primitive cell (R-3), proton ordered
VI     ``6``              30 (10 H2O)  tetragonal unit cell, proton disordered
VIII   ``8``              24 (8 H2O)   tetragonal conventional cell (I4_1/amd), proton ordered
=====  =================  ===========  ========================================================

GenIce2's ice-VIII plugin builds a 2x2x2 supercell (192 atoms) for its own bond search; this
module cuts it back to the 8-molecule conventional cell and checks that the cut cell reproduces
the supercell by translation (:func:`reduce_supercell`), so every phase is <= 48 atoms.

Configurations ("thermal" sampling, cheap calculator, then target-level labels): for each phase,
``n_disorder`` proton-disorder realisations (different GenIce2 seeds; ordered phases II and VIII
have one) share ``md_steps`` Langevin NVT steps at ``temperature_K`` with GFN1-xTB
(foundation level, deuterium masses, 1 fs), recorded every ``md_record_every`` steps; each
configuration is a distinct recorded frame (frames are reused only when there are fewer frames
than ``n_per_phase``) with a random symmetric cell strain (components uniform in
+-``strain_max``, atoms scaled with the cell) and a Gaussian rattle (``rattle_std`` A), labelled
at GFN2-xTB with ``REF_energy``, ``REF_forces`` and ``REF_stress``.

Files written by :func:`generate` (``info['phase']`` and ``config_type`` = phase on every
configuration; per-phase random splits, so every split holds every phase):
- ``train.xyz``, ``valid.xyz``, ``test.xyz`` (all phases);
- ``train_Ih.xyz``, ``train_II.xyz``, ``train_VI.xyz``, ``train_VIII.xyz`` (single phase), and
  ``valid_<phase>.xyz``, ``test_<phase>.xyz``;
- ``isolated_atoms.xyz`` (GFN2 isolated H and O);
- ``generation_info.json`` (atom counts, timings per GFN2 evaluation for each phase).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from .. import xtb
from ..io import atomic_path, write_atomic
from ..keys import CONFIG_TYPE_KEY
from .nacl import label_robust, langevin_md, robust_calculator, set_hydrogen_mass

log = logging.getLogger(__name__)

PHASES = ("Ih", "II", "VI", "VIII")
GENICE_LATTICE = {"Ih": "1h", "II": "2", "VI": "6", "VIII": "8"}
PROTON_ORDERED = {"II", "VIII"}
# Supercell of the GenIce2 plugin to cut back to the proper cell (checked by reduce_supercell).
GENICE_SUPERCELL = {"VIII": (2, 2, 2)}

CARD = {
    "name": "ice",
    "paper_counterpart": "ice polymorphs Ih, II, VI, VIII (DFT energies, forces, stresses; "
    "venkatkapil24/fine-tuning-MLPs-ice-polymorphs), single-phase and combined training",
    "level": "GFN2-xTB (target level), with stress",
    "elements": ["H", "O"],
    "atoms_per_cell": {"Ih": 48, "II": 36, "VI": 30, "VIII": 24},
    "sizes": {
        "smoke": "3 configurations per phase (train/valid/test 1/1/1), 3 GFN1 MD steps per "
        "phase, 12 GFN2 evaluations (~30 s on one core)",
        "mini": "40 configurations per phase (train 28 / valid 6 / test 6), 120 GFN1 MD steps "
        "per phase, 160 GFN2 evaluations with stress (~9 min on one core)",
    },
    "same": "the four phases Ih, II, VI, VIII; thermal configurations in periodic cells with "
    "cell deformations; energies, forces and stresses; per-phase training sets and a "
    "combined set; phase recorded on every configuration",
    "different": "GFN2-xTB instead of DFT; GenIce2 cells of 24-48 atoms (the paper's are larger "
    "supercells); classical GFN1-xTB MD plus strain and rattle instead of path-integral MD; "
    "28 training configurations per phase at mini size (paper: 25-160)",
}

FILES = (
    "train", "valid", "test", "isolated_atoms",
    *(f"{split}_{phase}" for split in ("train", "valid", "test") for phase in PHASES),
)
EXTRA_FILES = ("generation_info.json",)

PARAM_DOCS = {
    "phases": "phases to generate, a subset of Ih, II, VI, VIII",
    "n_per_phase": "labelled configurations per phase",
    "n_disorder": "proton-disorder realisations (GenIce2 seeds) of Ih and VI; II and VIII have 1",
    "md_steps": "GFN1-xTB Langevin steps per phase, shared equally by its realisations "
    "(0: the GenIce2 structures only)",
    "md_record_every": "an MD frame every this many steps",
    "temperature_K": "temperature of the GFN1-xTB MD (K)",
    "timestep_fs": "MD time step (fs)",
    "friction_per_fs": "Langevin friction (1/fs)",
    "hydrogen_mass_amu": "H mass in the MD (amu); masses do not change the sampled configurations",
    "strain_max": "largest component of the random symmetric strain applied to each configuration",
    "rattle_std": "standard deviation of the Gaussian rattle of each configuration (A)",
    "valid_fraction": "fraction of each phase's configurations in valid (at least 1)",
    "test_fraction": "fraction of each phase's configurations in test (at least 1)",
}

DEFAULT_PARAMS = {
    "phases": list(PHASES),
    "n_per_phase": 40,
    "n_disorder": 2,
    "md_steps": 120,
    "md_record_every": 3,
    "temperature_K": 250.0,
    "timestep_fs": 1.0,
    "friction_per_fs": 0.02,
    "hydrogen_mass_amu": 2.0,
    "strain_max": 0.02,
    "rattle_std": 0.02,
    "valid_fraction": 0.15,
    "test_fraction": 0.15,
}

SIZES = {
    "smoke": {"n_per_phase": 3, "n_disorder": 1, "md_steps": 3, "md_record_every": 1},
    "mini": dict(DEFAULT_PARAMS),
}


# ----------------------------------------------------------------------------- structures
@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """Seed numpy's legacy global RNG (GenIce2 uses it) and restore its state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _quiet_genice():
    """GenIce2 and genice_core log at INFO/WARNING through the root logger; silence them."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _parse_genice_exyz(text: str) -> Atoms:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    n_atoms = int(lines[0])
    symbols, positions = [], []
    for line in lines[2 : 2 + n_atoms]:
        cols = line.split()
        symbols.append(cols[0])
        positions.append([float(x) for x in cols[1:4]])
    cell = [[float(x) for x in line.split()[1:4]] for line in lines[2 + n_atoms :] if line.startswith("Vector")]
    if len(cell) != 3:
        raise RuntimeError("could not read the cell from GenIce2's exyz output")
    return Atoms(symbols, positions=positions, cell=cell, pbc=True)


def reduce_supercell(atoms: Atoms, reps: tuple[int, int, int], tol: float = 0.05) -> Atoms:
    """Cut a ``reps`` supercell back to its primitive block, after checking periodicity.

    Keeps the atoms whose fractional coordinates (wrapped) are < 1/rep along each axis, with
    the cell divided by ``reps``, and verifies that translating the kept block by every
    sub-cell vector reproduces every atom of ``atoms`` (same element, within ``tol`` A), i.e.
    that ``atoms`` really is a ``reps`` supercell. Raises ``ValueError`` otherwise.
    Molecules are kept whole (atoms are assigned through their O, the first atom of each
    O-H-H triple as GenIce2 writes them).
    """
    reps_arr = np.asarray(reps, dtype=int)
    n_blocks = int(np.prod(reps_arr))
    if len(atoms) % n_blocks:
        raise ValueError(f"{len(atoms)} atoms cannot be a {reps} supercell")
    symbols = atoms.get_chemical_symbols()
    if len(atoms) % 3 or any(symbols[i : i + 3] != ["O", "H", "H"] for i in range(0, len(atoms), 3)):
        raise ValueError("expected water molecules written as O, H, H")
    frac_o = atoms.get_scaled_positions(wrap=True)[0::3]
    inside = np.all(frac_o * reps_arr < 1.0 - 1e-8, axis=1)
    keep = np.flatnonzero(np.repeat(inside, 3))
    if len(keep) * n_blocks != len(atoms):
        raise ValueError("the supercell's blocks hold different numbers of molecules")
    small_cell = np.asarray(atoms.cell) / reps_arr[:, None]
    block = Atoms([symbols[i] for i in keep], positions=atoms.positions[keep], cell=small_cell, pbc=True)
    # Check: every atom of the supercell is an image of a block atom (minimum image in the supercell).
    big = atoms.copy()
    for shift in np.ndindex(*reps):
        moved = block.positions + np.asarray(shift) @ small_cell
        for sym, pos in zip(block.get_chemical_symbols(), moved):
            probe = big + Atoms(sym, positions=[pos])
            d = probe.get_distances(len(big), list(range(len(big))), mic=True)
            j = int(np.argmin(d))
            if d[j] > tol or symbols[j] != sym:
                raise ValueError(f"not a {reps} supercell: no image of a block atom within {tol} A")
    return block


def genice_structure(phase: str, seed: int) -> Atoms:
    """The GenIce2 cell of ``phase`` (see the module table), proton arrangement from ``seed``.

    Atoms are ordered O, H, H per molecule; ``info['phase']`` is set. Deterministic given seed.
    """
    if phase not in GENICE_LATTICE:
        raise ValueError(f"unknown ice phase {phase!r}; expected one of {PHASES}")
    from genice2.genice import GenIce
    from genice2.plugin import Format, Lattice, Molecule

    with _quiet_genice(), _numpy_global_seed(seed):
        ice = GenIce(Lattice(GENICE_LATTICE[phase]))
        text = ice.generate_ice(Format("exyz"), water=Molecule("tip3p"), depol="strict")
    atoms = _parse_genice_exyz(text)
    if phase in GENICE_SUPERCELL:
        atoms = reduce_supercell(atoms, GENICE_SUPERCELL[phase])
    atoms.info["phase"] = phase
    atoms.info["charge"] = 0
    atoms.info["multiplicity"] = 1
    return atoms


def random_strain(atoms: Atoms, strain_max: float, rng: np.random.Generator) -> Atoms:
    """Copy of ``atoms`` with the cell deformed by (1 + e), e symmetric with components in
    [-strain_max, strain_max]; atoms follow the cell (scaled positions kept)."""
    e = rng.uniform(-strain_max, strain_max, size=(3, 3))
    e = 0.5 * (e + e.T)
    strained = atoms.copy()
    strained.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + e), scale_atoms=True)
    return strained


def sample_phase(phase: str, params: dict, rng: np.random.Generator) -> tuple[list[Atoms], dict]:
    """Unlabelled configurations of one phase and a few facts (atoms, GFN1 cost)."""
    n_real = 1 if phase in PROTON_ORDERED else max(1, int(params["n_disorder"]))
    frames: list[Atoms] = []
    gfn1_time, gfn1_steps = 0.0, 0
    n_atoms = None
    steps_each = int(params["md_steps"]) // n_real
    for _ in range(n_real):
        structure = genice_structure(phase, int(rng.integers(0, 2**31 - 1)))
        n_atoms = len(structure)
        if steps_each > 0:
            md_atoms = structure.copy()
            set_hydrogen_mass(md_atoms, params["hydrogen_mass_amu"])
            t0 = time.perf_counter()
            recorded = langevin_md(
                md_atoms, robust_calculator("foundation", 0, 1), steps_each,
                temperature_K=params["temperature_K"], timestep_fs=params["timestep_fs"],
                friction_per_fs=params["friction_per_fs"], rng=rng,
                record_every=params["md_record_every"],
            )
            gfn1_time += time.perf_counter() - t0
            gfn1_steps += steps_each
            for f in recorded:
                f.arrays.pop("masses", None)
                f.arrays.pop("momenta", None)
            frames += recorded
        else:
            frames.append(structure)
    n = int(params["n_per_phase"])
    picks = np.linspace(0, len(frames) - 1, n).round().astype(int) if len(frames) < n else \
        np.sort(rng.choice(len(frames), n, replace=False))
    configs = []
    for k in picks:
        a = random_strain(frames[int(k)], params["strain_max"], rng)
        a.positions = a.positions + rng.normal(0.0, params["rattle_std"], a.positions.shape)
        a.info = {"phase": phase, CONFIG_TYPE_KEY: phase, "charge": 0, "multiplicity": 1}
        configs.append(a)
    facts = {"n_atoms": n_atoms, "n_realisations": n_real, "n_md_frames": len(frames)}
    if gfn1_steps:
        facts["gfn1_seconds_per_md_step"] = gfn1_time / gfn1_steps
    return configs, facts


def _split_phase(configs: list[Atoms], valid_fraction: float, test_fraction: float, rng: np.random.Generator):
    n = len(configs)
    if n < 3:
        raise ValueError("n_per_phase must be >= 3 (one configuration in each split)")
    n_test = max(1, int(round(test_fraction * n)))
    n_valid = max(1, int(round(valid_fraction * n)))
    if n_test + n_valid >= n:
        raise ValueError("valid_fraction + test_fraction leave no training configuration")
    order = rng.permutation(n)
    test = [configs[i] for i in sorted(order[:n_test])]
    valid = [configs[i] for i in sorted(order[n_test : n_test + n_valid])]
    train = [configs[i] for i in sorted(order[n_test + n_valid :])]
    return train, valid, test


def generate(params: dict, seed: int, out_dir: Path) -> dict:
    """Write the ice benchmark files into ``out_dir``; return ``{file: n_configs}``.

    ``params`` override :data:`DEFAULT_PARAMS` (keys in :data:`PARAM_DOCS`).
    """
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown ice parameters {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
    p = {**DEFAULT_PARAMS, **params}
    phases = list(p["phases"])
    for phase in phases:
        if phase not in PHASES:
            raise ValueError(f"unknown ice phase {phase!r}; expected some of {PHASES}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits: dict[str, dict[str, list[Atoms]]] = {"train": {}, "valid": {}, "test": {}}
    facts = {}
    for phase in phases:
        configs, phase_facts = sample_phase(phase, p, rng)
        t0 = time.perf_counter()
        labelled = label_robust(configs, "target")
        phase_facts["gfn2_seconds_per_eval"] = (time.perf_counter() - t0) / len(configs)
        facts[phase] = phase_facts
        log.info("ice %s: %s", phase, phase_facts)
        train, valid, test = _split_phase(labelled, p["valid_fraction"], p["test_fraction"], rng)
        splits["train"][phase], splits["valid"][phase], splits["test"][phase] = train, valid, test

    files: dict[str, list[Atoms]] = {}
    for split in ("train", "valid", "test"):
        files[f"{split}.xyz"] = [a for phase in phases for a in splits[split][phase]]
    files["isolated_atoms.xyz"] = xtb.isolated_atoms(CARD["elements"], "target")
    for split in ("train", "valid", "test"):
        for phase in PHASES:
            # Phases left out by params still get (empty) files, so FILES is always complete.
            files[f"{split}_{phase}.xyz"] = splits[split].get(phase, [])
    for name, atoms_list in files.items():
        write_atomic(out_dir / name, atoms_list)
    info = {"seed": seed, "params": p, "phases": facts}
    with atomic_path(out_dir / "generation_info.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return {name: len(v) for name, v in files.items()}


__all__ = [
    "CARD", "DEFAULT_PARAMS", "PARAM_DOCS", "SIZES", "FILES", "EXTRA_FILES", "PHASES",
    "generate", "genice_structure", "reduce_supercell", "random_strain", "sample_phase",
]
