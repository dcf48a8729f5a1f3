"""SN2 benchmark of the mini world: X- + CH3Y -> XCH3 + Y-, X, Y in {F, Cl, Br}, at GFN2-xTB.

Stands for the paper's SN2 benchmark (MP2 labels, organic_neb_mace). For each of the nine
reactions we relax the reactant and product ion-dipole complexes, compute a climbing-image NEB
at the target level (the reference path), and sample configurations around the reactant (r),
product (p), transition state (ts) and along the path (path) by Gaussian rattling.

Files written by :func:`generate`:
- ``train.xyz`` (r, p, path and ts configurations), ``train_rp.xyz`` (r and p only: the
  paper's "no transition-state region" training set), ``valid.xyz``, ``valid_rp.xyz``,
  ``test.xyz`` (all regions);
- ``isolated_atoms.xyz`` (GFN2 isolated atoms);
- ``reference_neb.xyz``: the converged reference NEB images of every reaction, with
  ``info['reaction']``, ``info['image']`` and ``REF_energy``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase import Atoms

from .. import xtb
from ..io import write_atomic
from ..keys import CONFIG_TYPE_KEY, ENERGY_KEY
from ..analysis.neb import neb_path

log = logging.getLogger(__name__)

HALOGENS = ("F", "Cl", "Br")
C_X_BOND = {"F": 1.39, "Cl": 1.79, "Br": 1.95}  # Angstrom, CH3X equilibrium (approx.)
COMPLEX_DISTANCE = {"F": 2.6, "Cl": 3.2, "Br": 3.4}  # X-...C in the ion-dipole complex
C_H = 1.09
COS_TETRA = np.cos(np.deg2rad(109.47))

CARD = {
    "name": "sn2",
    "paper_counterpart": "SN2 reactions X- + CH3Y (MP2, organic_neb_mace; 1,778 substituted reactions)",
    "level": "GFN2-xTB (target level)",
    "elements": ["H", "C", "F", "Cl", "Br"],
    "same": "reaction family, r/p/ts/path regions, NEB reference paths, r/p-only training split",
    "different": "9 unsubstituted reactions instead of 1,778 substituted ones; GFN2-xTB instead "
    "of MP2; gas-phase anionic complexes with total charge -1 (MACE sees no charge)",
}

FILES = ("train", "train_rp", "valid", "valid_rp", "test", "isolated_atoms", "reference_neb")

DEFAULT_PARAMS = {
    "reactions": [f"{x}_{y}" for x in HALOGENS for y in HALOGENS],
    "n_images": 5,
    "neb_fmax": 0.05,
    "neb_steps": 200,
    "rattle_r": 0.04,
    "rattle_ts": 0.04,
    "per_reaction": {"r": 8, "p": 8, "path": 8, "ts": 4},
    "valid_fraction": 0.15,
    "test_fraction": 0.25,
}


def reaction_name(nucleophile: str, leaving: str) -> str:
    return f"{nucleophile}_{leaving}"


def parse_reaction(name: str) -> tuple[str, str]:
    try:
        x, y = name.split("_")
    except ValueError:
        raise ValueError(f"SN2 reaction {name!r} is not of the form X_Y") from None
    for h in (x, y):
        if h not in HALOGENS:
            raise ValueError(f"SN2 reaction {name!r}: {h!r} is not one of {HALOGENS}")
    return x, y


def complex_geometry(nucleophile: str, leaving: str) -> Atoms:
    """Collinear X- ... CH3-Y ion-dipole complex along z (C3v), charge -1.

    The product complex of X_Y is the mirror image of the reactant complex of Y_X, so the
    same builder with the roles swapped gives both ends of a reaction.
    """
    z_h = -C_H * COS_TETRA  # hydrogens lean away from the leaving group, towards X
    r_h = C_H * np.sin(np.deg2rad(109.47))
    hs = [[r_h * np.cos(a), r_h * np.sin(a), z_h] for a in np.deg2rad([0.0, 120.0, 240.0])]
    atoms = Atoms(
        ["C", "H", "H", "H", leaving, nucleophile],
        positions=[[0, 0, 0], *hs, [0, 0, -C_X_BOND[leaving]], [0, 0, COMPLEX_DISTANCE[nucleophile]]],
    )
    atoms.info["charge"] = -1
    return atoms


def _relax(atoms: Atoms, ion_index: int, fmax: float, steps: int) -> Atoms:
    """Relax with the free halide held at its complex distance from carbon.

    Without the constraint GFN2-xTB lets F- react without a barrier (the F- + CH3Cl complex
    is not a minimum), and the two ends of the path would collapse onto one structure.
    """
    from ase.constraints import FixBondLength
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.set_constraint(FixBondLength(0, ion_index))
    atoms.calc = xtb.calculator("target", charge=-1)
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    atoms.calc = None
    atoms.set_constraint()
    return atoms


def endpoints(reaction: str, fmax: float = 0.01, steps: int = 300) -> tuple[Atoms, Atoms]:
    """Relaxed reactant and product complexes with the same atom ordering."""
    x, y = parse_reaction(reaction)
    reactant = _relax(complex_geometry(x, y), 5, fmax, steps)
    # Product: X bonded to C, Y- departing; same atom order (C, H, H, H, Y, X).
    product = complex_geometry(y, x)
    product.positions[[4, 5]] = product.positions[[5, 4]]
    product.numbers[[4, 5]] = product.numbers[[5, 4]]
    product.positions[:, 2] *= -1  # put Y on -z and X on +z as in the reactant
    product = _relax(product, 4, fmax, steps)
    return reactant, product


def reference_neb(reaction: str, n_images: int, fmax: float, steps: int) -> list[Atoms]:
    """Climbing-image NEB at the target level between relaxed complexes."""
    reactant, product = endpoints(reaction)
    images, _, converged = neb_path(reactant, product, n_images,
                                    lambda _atoms: xtb.calculator("target", charge=-1), fmax, steps)
    if not converged:
        log.warning("reference NEB of %s did not converge in %d steps", reaction, steps)
    labelled = xtb.label(images, "target")
    for i, atoms in enumerate(labelled):
        atoms.info["reaction"] = reaction
        atoms.info["image"] = i
    return labelled


def _rattled(base: Atoms, n: int, sigma: float, rng: np.random.Generator, region: str, reaction: str) -> list[Atoms]:
    out = []
    for _ in range(n):
        a = base.copy()
        a.positions = a.positions + rng.normal(0.0, sigma, a.positions.shape)
        a.info = {"charge": -1, CONFIG_TYPE_KEY: region, "reaction": reaction}
        out.append(a)
    return out


def sample_reaction(path: list[Atoms], params: dict, rng: np.random.Generator) -> list[Atoms]:
    """Unlabelled configurations around the r, p, ts and intermediate images of one path."""
    reaction = path[0].info["reaction"]
    counts = params["per_reaction"]
    energies = [a.info[ENERGY_KEY] for a in path]
    i_ts = int(np.argmax(energies))
    inner = [a for i, a in enumerate(path[1:-1], start=1) if i != i_ts]
    configs = _rattled(path[0], counts["r"], params["rattle_r"], rng, "r", reaction)
    configs += _rattled(path[-1], counts["p"], params["rattle_r"], rng, "p", reaction)
    configs += _rattled(path[i_ts], counts["ts"], params["rattle_ts"], rng, "ts", reaction)
    picks = rng.integers(0, len(inner), counts["path"]) if inner else []
    for k in picks:
        configs += _rattled(inner[int(k)], 1, params["rattle_ts"], rng, "path", reaction)
    return configs


def split(configs: list[Atoms], valid_fraction: float, test_fraction: float, rng: np.random.Generator):
    """Random train/valid/test split (stratified by nothing; deterministic given rng)."""
    order = rng.permutation(len(configs))
    n_test = int(round(test_fraction * len(configs)))
    n_valid = int(round(valid_fraction * len(configs)))
    test = [configs[i] for i in order[:n_test]]
    valid = [configs[i] for i in order[n_test : n_test + n_valid]]
    train = [configs[i] for i in order[n_test + n_valid :]]
    return train, valid, test


def generate(params: dict, seed: int, out_dir: Path) -> dict:
    """Write the SN2 benchmark files into ``out_dir``; return ``{file: n_configs}``."""
    params = {**DEFAULT_PARAMS, **params}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, configs = [], []
    for reaction in params["reactions"]:
        log.info("reference NEB of %s", reaction)
        path = reference_neb(reaction, params["n_images"], params["neb_fmax"], params["neb_steps"])
        paths += path
        configs += sample_reaction(path, params, rng)
    labelled = xtb.label(configs, "target")
    train, valid, test = split(labelled, params["valid_fraction"], params["test_fraction"], rng)
    rp = ("r", "p")
    files = {
        "train.xyz": train,
        "train_rp.xyz": [a for a in train if a.info[CONFIG_TYPE_KEY] in rp],
        "valid.xyz": valid,
        "valid_rp.xyz": [a for a in valid if a.info[CONFIG_TYPE_KEY] in rp],
        "test.xyz": test,
        "isolated_atoms.xyz": xtb.isolated_atoms(CARD["elements"], "target"),
        "reference_neb.xyz": paths,
    }
    for name, atoms_list in files.items():
        write_atomic(out_dir / name, atoms_list)
    return {name: len(v) for name, v in files.items()}


__all__ = ["CARD", "DEFAULT_PARAMS", "generate", "reference_neb", "endpoints"]
