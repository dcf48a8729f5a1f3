"""SPICE-like benchmark of the mini world: small drug-like molecules and dipeptides at GFN2-xTB.

Stands for the paper's SPICE benchmark (wB97M-D3BJ labels of the SPICE dataset, the MACE-OFF
cleaned split), with its "one configuration per molecule" training set and its torsion scans.

Molecules (:data:`MOLECULES`, name -> SMILES) cover H, C, N, O, F, S, Cl, Br: alcohols, acids,
amides, the alanine and glycine dipeptides, thiols and sulfides, a sulfoxide, aromatics and
haloalkanes. For each molecule RDKit embeds ``n_conformers`` conformers (ETKDGv3, fixed
``randomSeed`` drawn from the seed). As in SPICE, half the conformers are "thermal" and half
"low energy": even-numbered conformers are run for ``md_steps`` Langevin steps at
``md_temperature_K`` with GFN1-xTB (foundation level), odd-numbered ones get ``min_steps`` FIRE
steps at GFN1-xTB (a partial minimisation). Every configuration is labelled at GFN2-xTB.

Splits: each molecule's conformers are shuffled; the first ``n_train_conformers`` go to
``train_all.xyz`` (the training set subsampled over two decades of fractions), and the first of
them alone to ``train.xyz``: exactly one conformer per molecule, as in the paper's
1-configuration-per-molecule training (``train.xyz`` is a subset of ``train_all.xyz``). The other
conformers go to ``valid.xyz`` and ``test.xyz`` (a random ``valid_fraction`` of each molecule's
remaining conformers to valid, the rest to test), disjoint from both training sets. ``info['molecule']``, ``info['smiles']``, ``info['conformer']`` and
``info['sampling']`` are set on every configuration.

Torsion scans (``torsions.xyz``): for each ``(molecule, [i, j, k, l])`` of ``torsions`` a
**relaxed** scan at GFN2-xTB: the GFN2-minimised conformer is rotated about the j-k bond (the
l side moves) to each of ``torsion_n_angles`` equally spaced angles from -180 deg, and relaxed
with that dihedral fixed (ASE ``FixInternals``, BFGS to ``torsion_fmax`` or
``torsion_steps``), each angle starting from the previous relaxed geometry; the sweep is done
forward (-180 -> 180) and then backward, and the lower-energy structure is kept at each angle
(a relaxed scan can jump between basins; two directions remove most of that hysteresis).
Compare models on these fixed geometries (single points). Rows carry
``info['molecule']``, ``info['dihedral_atoms']`` (0-based indices into the molecule with
explicit H, heavy atoms numbered as in the SMILES), ``info['angle_deg']`` (target, in
[-180, 180)), ``info['angle_measured_deg']``, ``REF_energy`` (and ``REF_forces``, which are not
zero along the constrained coordinate).

Files: ``train.xyz``, ``train_all.xyz``, ``valid.xyz``, ``test.xyz``, ``torsions.xyz``, ``isolated_atoms.xyz``
(GFN2 isolated atoms of every element present), ``generation_info.json`` (timings).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from .. import xtb
from ..analysis.md import langevin_md
from ..analysis.torsion import relax, relaxed_scan
from ..io import atomic_path, write_atomic
from ..keys import CONFIG_TYPE_KEY

log = logging.getLogger(__name__)

MOLECULES = {
    "ethanol": "CCO",
    "acetic_acid": "CC(=O)O",
    "n_methylacetamide": "CC(=O)NC",
    "alanine_dipeptide": "CC(=O)N[C@@H](C)C(=O)NC",
    "glycine_dipeptide": "CC(=O)NCC(=O)NC",
    "methanethiol": "CS",
    "dimethyl_sulfide": "CSC",
    "dimethyl_sulfoxide": "CS(C)=O",
    "chlorobenzene": "Clc1ccccc1",
    "fluoromethane": "CF",
    "bromoethane": "CCBr",
    "butane": "CCCC",
    "fluoroethanol": "OCCF",
    "phenol": "Oc1ccccc1",
    "pyridine": "c1ccncc1",
    "ethylamine": "CCN",
    "chloroacetic_acid": "OC(=O)CCl",
    "bromobenzene": "Brc1ccccc1",
}

# Dihedrals (indices of the molecule with explicit H; heavy atoms in SMILES order).
TORSIONS = {
    "butane_CCCC": ("butane", (0, 1, 2, 3)),
    "fluoroethanol_OCCF": ("fluoroethanol", (0, 1, 2, 3)),
    "alanine_dipeptide_phi": ("alanine_dipeptide", (1, 3, 4, 6)),
    "alanine_dipeptide_psi": ("alanine_dipeptide", (3, 4, 6, 8)),
}

CARD = {
    "name": "spice",
    "paper_counterpart": "SPICE drug-like molecules and dipeptides (wB97M-D3BJ; MACE-OFF cleaned "
    "split), 1-configuration-per-molecule training, torsion scans",
    "level": "GFN2-xTB (target level)",
    "elements": ["H", "C", "N", "O", "F", "S", "Cl", "Br"],
    "sizes": {
        "smoke": "4 molecules x 3 conformers, one 4-angle torsion scan (~5 s)",
        "mini": "18 molecules x 16 conformers (train 18 = one per molecule; train_all 144 = eight per "
        "molecule; valid 72 / test 72), 3 relaxed "
        "torsion scans x 24 angles, two directions (~1.5 min on one core)",
    },
    "same": "small organic molecules and dipeptides with H C N O F S Cl Br; conformers from "
    "RDKit, half thermal (high-temperature MD) and half partially minimised; exactly one "
    "configuration per molecule for training; relaxed torsion scans as a transferability test",
    "different": "GFN2-xTB instead of wB97M-D3BJ; 18 molecules instead of ~1,000s; neutral "
    "molecules only; short GFN1-xTB MD (tens of fs) instead of 100 ps OpenMM MD",
}

FILES = ("train", "train_all", "valid", "test", "torsions", "isolated_atoms")
EXTRA_FILES = ("generation_info.json",)

PARAM_DOCS = {
    "molecules": "names of MOLECULES to include (each gets n_conformers configurations)",
    "n_conformers": "conformers per molecule (>= n_train_conformers + 2: train_all, then valid/test)",
    "n_train_conformers": "conformers per molecule in train_all.xyz (the first of them is train.xyz's)",
    "md_steps": "GFN1-xTB Langevin steps of the thermal (even-numbered) conformers",
    "md_temperature_K": "temperature of that MD (K); SPICE used 500 K",
    "md_timestep_fs": "MD time step (fs), real masses",
    "md_friction_per_fs": "Langevin friction (1/fs)",
    "min_steps": "GFN1-xTB FIRE steps of the low-energy (odd-numbered) conformers",
    "valid_fraction": "fraction of each molecule's non-training conformers in valid (rest: test)",
    "torsions": "names of TORSIONS to scan",
    "torsion_n_angles": "angles per scan, equally spaced from -180 deg",
    "torsion_fmax": "force threshold of the constrained relaxations (eV/A)",
    "torsion_steps": "largest number of BFGS steps per angle",
}

DEFAULT_PARAMS = {
    "molecules": list(MOLECULES),
    "n_conformers": 16,
    "n_train_conformers": 8,
    "md_steps": 100,
    "md_temperature_K": 500.0,
    "md_timestep_fs": 0.5,
    "md_friction_per_fs": 0.02,
    "min_steps": 5,
    "valid_fraction": 0.5,
    "torsions": ["butane_CCCC", "fluoroethanol_OCCF", "alanine_dipeptide_phi"],
    "torsion_n_angles": 24,
    "torsion_fmax": 0.05,
    "torsion_steps": 200,
}

SIZES = {
    "smoke": {
        "molecules": ["ethanol", "fluoromethane", "bromoethane", "butane"],
        "n_conformers": 3,
        "n_train_conformers": 1,
        "md_steps": 5,
        "min_steps": 2,
        "torsions": ["butane_CCCC"],
        "torsion_n_angles": 4,
        "torsion_steps": 30,
    },
    "mini": dict(DEFAULT_PARAMS),
}


# ----------------------------------------------------------------------------- molecules
def _rdkit_mol(name: str):
    from rdkit import Chem

    if name not in MOLECULES:
        raise ValueError(f"unknown molecule {name!r}; known: {sorted(MOLECULES)}")
    mol = Chem.MolFromSmiles(MOLECULES[name])
    return Chem.AddHs(mol)


def embed_conformers(name: str, n_conformers: int, random_seed: int) -> list[Atoms]:
    """ETKDGv3 conformers of a molecule (RDKit, ``randomSeed``, one thread: deterministic)."""
    from rdkit.Chem import AllChem

    mol = _rdkit_mol(name)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(random_seed)
    params.numThreads = 1
    cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=int(n_conformers), params=params))
    if len(cids) < n_conformers:
        raise RuntimeError(f"RDKit embedded {len(cids)} of {n_conformers} conformers of {name}")
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    out = []
    for k, cid in enumerate(cids):
        atoms = Atoms(symbols, positions=mol.GetConformer(cid).GetPositions(), pbc=False)
        atoms.info.update({"molecule": name, "smiles": MOLECULES[name], "conformer": k,
                           "charge": 0, "multiplicity": 1})
        out.append(atoms)
    return out


def molecule_bonds(name: str) -> list[tuple[int, int]]:
    """Bonds (index pairs) of the molecule with explicit H."""
    mol = _rdkit_mol(name)
    return [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]


def moving_side(name: str, j: int, k: int) -> list[int]:
    """Atoms on the k side of the j-k bond (k included); the bond must not be in a ring."""
    bonds = molecule_bonds(name)
    if (j, k) not in bonds and (k, j) not in bonds:
        raise ValueError(f"{name}: atoms {j} and {k} are not bonded")
    neighbours: dict[int, set[int]] = {}
    for a, b in bonds:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    seen, stack = {k}, [k]
    while stack:
        a = stack.pop()
        for b in neighbours[a]:
            if a == k and b == j:
                continue
            if b == j:
                raise ValueError(f"{name}: bond {j}-{k} is in a ring; cannot scan it")
            if b not in seen:
                seen.add(b)
                stack.append(b)
    return sorted(seen)


def _thermalise(atoms: Atoms, params: dict, rng: np.random.Generator) -> Atoms:
    a = atoms.copy()
    frames = langevin_md(
        a, xtb.calculator("foundation", 0, 1), params["md_steps"],
        temperature_K=params["md_temperature_K"], timestep_fs=params["md_timestep_fs"],
        friction_per_fs=params["md_friction_per_fs"], rng=rng, record_every=max(1, params["md_steps"]),
    )
    out = frames[-1] if frames else a.copy()
    out.calc = None
    out.arrays.pop("momenta", None)
    out.info = dict(atoms.info)
    return out


def _partial_minimise(atoms: Atoms, steps: int) -> Atoms:
    from ase.optimize import FIRE

    a = atoms.copy()
    if steps > 0:
        a.calc = xtb.calculator("foundation", 0, 1)
        FIRE(a, logfile=None).run(fmax=0.01, steps=steps)
    a.calc = None
    a.info = dict(atoms.info)
    return a


def sample_molecule(name: str, params: dict, rng: np.random.Generator) -> list[Atoms]:
    """Unlabelled conformers of one molecule: even ones thermal, odd ones partially minimised."""
    conformers = embed_conformers(name, params["n_conformers"], int(rng.integers(0, 2**31 - 1)))
    out = []
    for k, conf in enumerate(conformers):
        if k % 2 == 0:
            a = _thermalise(conf, params, rng)
            a.info["sampling"] = "thermal"
        else:
            a = _partial_minimise(conf, params["min_steps"])
            a.info["sampling"] = "minimised"
        a.info[CONFIG_TYPE_KEY] = "spice"
        out.append(a)
    return out


# ----------------------------------------------------------------------------- torsions
def _target_calculator():
    return xtb.calculator("target", 0, 1)


def torsion_scan(torsion: str, n_angles: int, fmax: float, steps: int, random_seed: int) -> list[Atoms]:
    """Relaxed GFN2-xTB scan of one of :data:`TORSIONS` (see the module docstring): the
    molecule's setup here, the scan itself :func:`mlipft.analysis.torsion.relaxed_scan`."""
    if torsion not in TORSIONS:
        raise ValueError(f"unknown torsion {torsion!r}; known: {sorted(TORSIONS)}")
    name, (i, j, k, l) = TORSIONS[torsion]
    side = moving_side(name, j, k)
    start = embed_conformers(name, 1, random_seed)[0]
    current = relax(start, _target_calculator, fmax, steps)
    angles = -180.0 + 360.0 * np.arange(n_angles) / n_angles
    best, _ = relaxed_scan(current, (i, j, k, l), side, angles, _target_calculator, fmax, steps)
    out = []
    for angle, relaxed in zip(angles, best):
        relaxed = relaxed.copy()
        measured = relaxed.get_dihedral(i, j, k, l)
        measured = (measured + 180.0) % 360.0 - 180.0
        relaxed.info = {
            "molecule": name, "smiles": MOLECULES[name], "torsion": torsion,
            "dihedral_atoms": np.array([i, j, k, l], dtype=int),
            "angle_deg": float(angle), "angle_measured_deg": float(measured),
            CONFIG_TYPE_KEY: "torsion", "charge": 0, "multiplicity": 1,
        }
        out.append(relaxed)
    return xtb.label(out, "target")


# ----------------------------------------------------------------------------- generate
def generate(params: dict, seed: int, out_dir: Path) -> dict:
    """Write the SPICE-like benchmark files into ``out_dir``; return ``{file: n_configs}``.

    ``params`` override :data:`DEFAULT_PARAMS` (keys in :data:`PARAM_DOCS`). tblite runs on one
    OpenMP thread here: for molecules of < 30 atoms, thread start-up and barriers cost more than
    the work (15 GFN2 labels of butane: 0.04 s on one thread, up to 9 s on two busy cores).
    """
    import tblite.interface  # noqa: F401  (load libgomp first: threadpoolctl limits loaded libraries)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return _generate(params, seed, out_dir)


def _generate(params: dict, seed: int, out_dir: Path) -> dict:
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown spice parameters {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
    p = {**DEFAULT_PARAMS, **params}
    n_train = int(p["n_train_conformers"])
    if n_train < 1 or p["n_conformers"] < n_train + 2:
        raise ValueError(f"spice parameters: n_conformers ({p['n_conformers']}) must be >= n_train_conformers "
                         f"({n_train}) + 2, and n_train_conformers >= 1 (training, then at least one valid "
                         f"and one test conformer per molecule)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train, train_all, valid, test = [], [], [], []
    timings: dict[str, dict] = {}
    for name in p["molecules"]:
        t0 = time.perf_counter()
        configs = sample_molecule(name, p, rng)
        t1 = time.perf_counter()
        labelled = xtb.label(configs, "target")
        t2 = time.perf_counter()
        timings[name] = {"n_atoms": len(configs[0]), "sampling_s": t1 - t0,
                         "gfn2_seconds_per_eval": (t2 - t1) / len(labelled)}
        order = rng.permutation(len(labelled))
        train.append(labelled[order[0]])
        train_all += [labelled[m] for m in order[:n_train]]
        rest = order[n_train:]
        n_valid = min(len(rest) - 1, max(1, int(round(p["valid_fraction"] * len(rest)))))
        valid += [labelled[m] for m in sorted(rest[:n_valid])]
        test += [labelled[m] for m in sorted(rest[n_valid:])]
    torsions = []
    t0 = time.perf_counter()
    for torsion in p["torsions"]:
        torsions += torsion_scan(torsion, p["torsion_n_angles"], p["torsion_fmax"], p["torsion_steps"],
                                 int(rng.integers(0, 2**31 - 1)))
    torsion_s = time.perf_counter() - t0
    elements = sorted({s for a in train_all + valid + test + torsions for s in a.get_chemical_symbols()})
    files = {
        "train.xyz": train,
        "train_all.xyz": train_all,
        "valid.xyz": valid,
        "test.xyz": test,
        "torsions.xyz": torsions,
        "isolated_atoms.xyz": xtb.isolated_atoms(elements, "target"),
    }
    for name, atoms_list in files.items():
        write_atomic(out_dir / name, atoms_list)
    info = {"seed": seed, "params": p, "molecules": timings, "torsion_scans_s": torsion_s}
    with atomic_path(out_dir / "generation_info.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return {name: len(v) for name, v in files.items()}


__all__ = [
    "CARD", "DEFAULT_PARAMS", "PARAM_DOCS", "SIZES", "FILES", "EXTRA_FILES", "MOLECULES",
    "TORSIONS", "generate", "embed_conformers", "sample_molecule", "torsion_scan", "moving_side",
]
