"""Pretraining corpora of the mini world, labelled at the foundation level (GFN1-xTB).

Three corpora play the roles of the paper's pretraining data:

``mptrj``
    MPtrj-like: *near-equilibrium* structures -- short GFN1 relaxation trajectories
    (``relax`` mode), small thermal rattles (sigma 0.01-0.05 A, ``rattle``) and cell strains of
    at most +-2 % (``strain``), over the prototype set :func:`prototypes` ``("mptrj")``.
``omat``
    OMat24-like: the same kinds of structures (about 40 %) plus strongly rattled ones
    (sigma 0.08-0.25 A, ``rattle_strong``), "hot" ones (mass-weighted rattle plus a random cell
    shear, ``hot``), compressed (-5 to -10 % linear, ``compressed``) and stretched (+5 to +10 %,
    ``stretched``) ones, over a *broader* prototype set (the ``mptrj`` set plus surfaces, point
    defects, mixed-halide crystals and other polymorphs (CsCl-type, zincblende, fcc metals)).
``test``
    a common held-out test set at the foundation level: each structure is drawn from the
    ``mptrj`` or the ``omat`` distribution (probability ``omat_fraction``), with its own seed
    stream, so it shares no structure with either training corpus.

In the paper MACE-MP-0 (MPtrj, 1.6 M structures) < MACE-MPA-0 (MPtrj + sAlex) < MACE-OMat-0
(OMat24, 100 M, non-equilibrium). The mini analogues: "mp0" = the first N structures of the
``mptrj`` corpus (structures are i.i.d. in file order, so any prefix is a random subsample),
"mpa" = the whole ``mptrj`` corpus, "omat" = the ``omat`` corpus.

Every structure ``i`` is drawn from its own generator,
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(kind_code, i)))``, so the corpora are
deterministic given ``seed``, a smaller corpus is a prefix of a larger one with the same seed
(up to SCF failures), and the three kinds never share a random stream.

Families (``info['config_type']``): ``molecule`` (ase g2 closed-shell/doublet molecules of the 11
elements, Br analogues of the Cl molecules, Li/Na/Br/P/S extras), ``ion`` (small anions and
cations, ion-water clusters and X-...CH3Y complexes, ``info['charge'] != 0``, open boundaries),
``cluster`` (water clusters, alkali-halide clusters), ``liquid`` (periodic boxes of a few
molecules at liquid density), ``crystal`` (ionic, covalent, metallic and molecular crystals from
ase.build / ase.spacegroup), and for ``omat`` only ``surface`` and ``defect``. Each structure has
at most ``max_atoms`` atoms. ``info['prototype']`` names the prototype and ``info['mode']`` the
perturbation.

Caveat of the mini world: tblite evaluates periodic cells at the Gamma point only, so a small
cell's label carries a finite-size error (8-atom NaCl: ~80 meV/atom above the 64-atom cell).
Crystals are therefore built as the smallest diagonal supercell whose perpendicular widths reach
``min_width`` (within ``max_atoms``), and the label is what GFN1 says for that cell.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from ase.collections import g2
from ase.data import atomic_masses, atomic_numbers, covalent_radii
from ase.io import read, write
from ase.spacegroup import crystal

from .. import xtb
from ..keys import CONFIG_TYPE_KEY, ENERGY_KEY
from . import ELEMENTS  # defined in the package: the workflow reads it at parse time, without ase

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("mptrj", "omat", "test")
_KIND_CODE = {"mptrj": 101, "omat": 202, "test": 303}

#: Default parameters. ``n_structures``: labelled structures (train + valid, or test);
#: ``valid_fraction``: share written to valid.xyz (ignored for ``test``); ``relax_steps``: the
#: longest GFN1 FIRE trajectory of ``relax`` mode (0 turns relax mode into ``rattle``);
#: ``max_atoms``: largest structure; ``min_width``: target perpendicular width (A) of crystal
#: supercells; ``omat_fraction``: share of the ``test`` set drawn from the omat distribution;
#: ``max_attempt_factor``: at most ``factor * n_structures`` candidates are tried when SCF
#: failures are skipped; ``max_force`` (eV/A), ``max_stress`` (eV/A^3) and ``cohesive_range``
#: (eV/atom, energy above the GFN1 isolated atoms): labels outside these are treated as failed
#: (a GFN1 SCF that "converged" to a nonsense state, seen for Br near water);
#: ``family_weights`` / ``mode_weights``: optional overrides of :data:`FAMILY_WEIGHTS` /
#: :data:`MODE_WEIGHTS` for the kind.
PRESETS: dict[str, dict[str, dict]] = {
    "smoke": {
        "mptrj": {"n_structures": 12, "valid_fraction": 0.25, "relax_steps": 2, "max_atoms": 24},
        "omat": {"n_structures": 12, "valid_fraction": 0.25, "relax_steps": 2, "max_atoms": 24},
        "test": {"n_structures": 6, "relax_steps": 2, "max_atoms": 24},
    },
    "mini": {
        "mptrj": {"n_structures": 600, "valid_fraction": 0.1, "relax_steps": 4, "max_atoms": 40},
        "omat": {"n_structures": 600, "valid_fraction": 0.1, "relax_steps": 4, "max_atoms": 40},
        "test": {"n_structures": 150, "relax_steps": 4, "max_atoms": 40},
    },
}
_DEFAULTS = {
    "valid_fraction": 0.1,
    "relax_steps": 4,
    "max_atoms": 40,
    "min_width": 7.5,
    "omat_fraction": 0.5,
    "max_attempt_factor": 1.5,
    "max_force": 50.0,
    "max_stress": 1.0,
    "cohesive_range": (-12.0, 3.0),
}

FAMILY_WEIGHTS: dict[str, dict[str, float]] = {
    "mptrj": {"molecule": 0.28, "ion": 0.10, "cluster": 0.14, "liquid": 0.16, "crystal": 0.32},
    "omat": {
        "molecule": 0.22, "ion": 0.10, "cluster": 0.12, "liquid": 0.14, "crystal": 0.26,
        "surface": 0.08, "defect": 0.08,
    },
}
MODE_WEIGHTS: dict[str, dict[str, float]] = {
    "mptrj": {"relax": 0.30, "rattle": 0.45, "strain": 0.25},
    "omat": {
        "relax": 0.10, "rattle": 0.20, "strain": 0.10, "rattle_strong": 0.25, "hot": 0.15,
        "compressed": 0.10, "stretched": 0.10,
    },
}

# Ground-state triplets (even electron count, multiplicity 3); other open shells are doublets.
_TRIPLETS = {"O2", "S2", "SO", "NH", "CH2_s3B1d"}
_SKIP_G2 = {"H", "Li", "C", "N", "O", "F", "Na", "P", "S", "Cl"}  # single atoms


# --------------------------------------------------------------------------- prototypes


@dataclass(frozen=True)
class Prototype:
    """A named structure builder: ``build(rng) -> Atoms`` (random ones use ``rng``)."""

    name: str
    family: str
    build: Callable[[np.random.Generator], Atoms]
    periodic: bool = False


def _fixed(atoms: Atoms) -> Callable[[np.random.Generator], Atoms]:
    atoms = atoms.copy()
    return lambda rng: atoms.copy()


def _tag(atoms: Atoms, charge: int = 0, multiplicity: int | None = None) -> Atoms:
    """Set charge/multiplicity in place; drop every other info key and per-atom array (e.g. the
    spacegroup tags ase.spacegroup.crystal adds)."""
    for key in list(atoms.arrays):
        if key not in ("numbers", "positions"):
            del atoms.arrays[key]
    atoms.info = {}
    if charge:
        atoms.info["charge"] = int(charge)
    if multiplicity is not None:
        atoms.info["multiplicity"] = int(multiplicity)
    return atoms


def _g2(name: str) -> Atoms:
    atoms = Atoms(g2[name])
    atoms.info = {}
    atoms.set_initial_magnetic_moments(None)
    atoms.pbc = False
    atoms.cell = None
    return atoms


def _rcov(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


def _substitute_halogen(atoms: Atoms, old: str, new: str) -> Atoms:
    """Replace every ``old`` atom by ``new``, stretching its bond to its nearest neighbour."""
    out = atoms.copy()
    pos = atoms.positions
    sym = atoms.get_chemical_symbols()
    for i, s in enumerate(sym):
        if s != old:
            continue
        d = np.linalg.norm(pos - pos[i], axis=1)
        d[i] = np.inf
        j = int(np.argmin(d))
        sj = new if sym[j] == old else sym[j]
        r_old = _rcov(old) + _rcov(sym[j])
        r_new = _rcov(new) + _rcov(sj)
        if sym[j] == old:  # X2-type bond: stretch symmetrically about the midpoint
            mid = 0.5 * (pos[i] + pos[j])
            out.positions[i] = mid + (pos[i] - mid) * r_new / r_old
        else:
            out.positions[i] = pos[j] + (pos[i] - pos[j]) * r_new / r_old
    symbols = [new if s == old else s for s in sym]
    out.set_chemical_symbols(symbols)
    return out


def _multiplicity(name: str, atoms: Atoms) -> int | None:
    if name in _TRIPLETS:
        return 3
    return None  # xtb default: singlet or doublet from the electron count


def _molecule_prototypes() -> list[Prototype]:
    allowed = set(ELEMENTS)
    protos: list[Prototype] = []
    for name in g2.names:
        atoms = _g2(name)
        if name in _SKIP_G2 or len(atoms) < 2 or not set(atoms.get_chemical_symbols()) <= allowed:
            continue
        _tag(atoms, 0, _multiplicity(name, atoms))
        protos.append(Prototype(f"g2:{name}", "molecule", _fixed(atoms)))
        if "Cl" in atoms.get_chemical_symbols() and name != "NaCl":
            br = _tag(_substitute_halogen(atoms, "Cl", "Br"), 0, _multiplicity(name, atoms))
            protos.append(Prototype(f"g2br:{name}", "molecule", _fixed(br)))
    # Generated extras for elements g2 covers thinly (Li, Na, Br, P, S).
    extras = {
        "LiCl": Atoms("LiCl", positions=[[0, 0, 0], [0, 0, 2.02]]),
        "LiBr": Atoms("LiBr", positions=[[0, 0, 0], [0, 0, 2.17]]),
        "NaF": Atoms("NaF", positions=[[0, 0, 0], [0, 0, 1.93]]),
        "NaBr": Atoms("NaBr", positions=[[0, 0, 0], [0, 0, 2.50]]),
        "NaH": Atoms("NaH", positions=[[0, 0, 0], [0, 0, 1.89]]),
        "LiOH": Atoms("LiOH", positions=[[0, 0, 0], [0, 0, 1.58], [0, 0, 2.53]]),
        "NaOH": Atoms("NaOH", positions=[[0, 0, 0], [0, 0, 1.95], [0, 0, 2.91]]),
        "HBr": Atoms("HBr", positions=[[0, 0, 0], [0, 0, 1.41]]),
        "BrCl": Atoms("BrCl", positions=[[0, 0, 0], [0, 0, 2.14]]),
        "Li2S": Atoms("Li2S", positions=[[-1.75, 0.9, 0], [1.75, 0.9, 0], [0, 0, 0]]),
        "P4": Atoms(
            "P4",
            positions=np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * 0.7806,
        ),
        "PCl3": Atoms(
            "PCl3",
            positions=[[0, 0, 0.0], [2.04, 0, -0.65], [-1.02, 1.767, -0.65], [-1.02, -1.767, -0.65]],
        ),
        "POCl3": Atoms(
            "POCl3",
            positions=[[0, 0, 0], [0, 0, 1.45], [1.88, 0, -0.68], [-0.94, 1.628, -0.68],
                       [-0.94, -1.628, -0.68]],
        ),
        "H3PO4": Atoms(
            "PO4H3",
            positions=[[0, 0, 0], [0, 0, 1.48], [1.48, 0, -0.55], [-0.74, 1.28, -0.55],
                       [-0.74, -1.28, -0.55], [2.10, 0.0, 0.15], [-1.05, 1.82, 0.15],
                       [-1.05, -1.82, 0.15]],
        ),
        "H2S2": Atoms("S2H2", positions=[[0, 0, 0], [2.06, 0, 0], [-0.35, 1.30, 0.2],
                                         [2.41, -0.2, 1.30]]),
        "SF6": Atoms("SF6", positions=np.vstack([[0.0, 0.0, 0.0], 1.56 * np.eye(3), -1.56 * np.eye(3)])),
        "Li3PS4": _li3ps4_molecule(),
        "LiCH3": Atoms("LiCH3", positions=[[0, 0, 0], [0, 0, 2.00], [1.03, 0, 2.40],
                                           [-0.515, 0.892, 2.40], [-0.515, -0.892, 2.40]]),
    }
    for name, atoms in extras.items():
        protos.append(Prototype(f"extra:{name}", "molecule", _fixed(_tag(atoms))))
    return protos


_TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / math.sqrt(3)


def _tetra_h(symbol: str, bond: float) -> Atoms:
    """XH4 tetrahedron."""
    pos = np.vstack([[0.0, 0.0, 0.0], bond * _TETRA])
    return Atoms(symbol + "H4", positions=pos)


def _pyramid(symbol: str, bond: float, angle_deg: float) -> Atoms:
    """``symbol``H3 pyramid (C3v) with the given X-H bond length and H-X-H angle."""
    cos_t = math.sqrt((math.cos(math.radians(angle_deg)) + 0.5) / 1.5)
    sin_t = math.sqrt(1.0 - cos_t**2)
    pos = [[0.0, 0.0, 0.0]] + [
        [bond * sin_t * math.cos(phi), bond * sin_t * math.sin(phi), bond * cos_t]
        for phi in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
    ]
    return Atoms(symbol + "H3", positions=pos)


def _li3ps4_molecule() -> Atoms:
    """A neutral Li3PS4 unit: a PS4 tetrahedron (P-S 2.05 A) with Li capping three faces."""
    pos = np.vstack([[0.0, 0.0, 0.0], 2.05 * _TETRA, -2.35 * _TETRA[:3]])
    return Atoms("PS4Li3", positions=pos)


def _align(vec_from: np.ndarray, vec_to: np.ndarray) -> np.ndarray:
    """Rotation matrix turning unit vector ``vec_from`` onto unit vector ``vec_to``."""
    a = vec_from / np.linalg.norm(vec_from)
    b = vec_to / np.linalg.norm(vec_to)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-10:
        if c > 0:
            return np.eye(3)
        perp = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        perp /= np.linalg.norm(perp)
        return 2.0 * np.outer(perp, perp) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _solvate(core: Atoms, n_water: int, rng: np.random.Generator, r0: float,
             anion: bool | None = None) -> Atoms:
    """Add ``n_water`` water molecules with O at ~``r0`` (+0-0.6 A) from the centre of ``core``.
    Around a cation (``anion=False``) the H atoms point away, around an anion (``anion=True``)
    one O-H bond points at the ion; ``None``: random orientation."""
    water = molecule("H2O")  # O first
    water.translate(-water.positions[0])
    bisector = water.positions[1:].mean(axis=0)
    oh = water.positions[1]
    centre = core.get_center_of_mass()
    out = core.copy()
    for _ in range(n_water):
        for _attempt in range(60):
            v = rng.normal(size=3)
            v /= np.linalg.norm(v)
            w = water.copy()
            if anion is None:
                w.rotate(rng.uniform(0, 360), rng.normal(size=3) + 1e-9, center=(0, 0, 0))
            else:
                w.positions = w.positions @ _align(bisector if not anion else oh,
                                                   v if not anion else -v).T
                w.rotate(rng.uniform(0, 360), v, center=(0, 0, 0))
            w.translate(centre + v * (r0 + rng.uniform(0.0, 0.6)))
            if _min_dist_to(out, w) > 1.6:
                out += w
                break
    return out


def _min_dist_to(a: Atoms, b: Atoms) -> float:
    if len(a) == 0 or len(b) == 0:
        return np.inf
    d = np.linalg.norm(a.positions[:, None, :] - b.positions[None, :, :], axis=-1)
    return float(d.min())


def _ion_prototypes() -> list[Prototype]:
    protos: list[Prototype] = []

    def add(name, atoms, charge):
        protos.append(Prototype(f"ion:{name}", "ion", _fixed(_tag(atoms, charge))))

    add("OH-", _g2("OH"), -1)
    add("SH-", _g2("SH"), -1)
    add("CN-", _g2("CN"), -1)
    add("NO2-", _g2("NO2"), -1)
    add("CH3O-", _g2("CH3O"), -1)
    add("CH3S-", _g2("CH3S"), -1)
    add("NH4+", _tetra_h("N", 1.03), +1)
    add("H3O+", _pyramid("O", 0.98, 112.0), +1)
    add("PH4+", _tetra_h("P", 1.40), +1)
    hcoo = _g2("HCOOH")
    oxy = hcoo.positions[[i for i, x in enumerate(hcoo.get_chemical_symbols()) if x == "O"]]
    acidic = [i for i, x in enumerate(hcoo.get_chemical_symbols())
              if x == "H" and np.linalg.norm(oxy - hcoo.positions[i], axis=1).min() < 1.1]
    hcoo = hcoo[[i for i in range(len(hcoo)) if i not in acidic]]
    add("HCOO-", hcoo, -1)
    # Ion-water clusters (charged, open boundaries) and SN2-like ion-molecule complexes.
    for ion, charge in (("Na", 1), ("Li", 1), ("Cl", -1), ("F", -1), ("Br", -1)):
        for n in (1, 2, 4, 6):
            def build(rng, ion=ion, n=n, charge=charge):
                core = Atoms(ion, positions=[[0, 0, 0]])
                r0 = {"Na": 2.35, "Li": 1.95, "Cl": 3.15, "F": 2.65, "Br": 3.35}[ion]
                return _tag(_solvate(core, n, rng, r0, anion=charge < 0), charge)
            protos.append(Prototype(f"ion:{ion}(H2O){n}", "ion", build))
    for x in ("F", "Cl", "Br"):
        for y in ("F", "Cl", "Br"):
            def build(rng, x=x, y=y):
                m = _g2("CH3Cl")
                if y != "Cl":
                    m = _substitute_halogen(m, "Cl", y)
                ic = [i for i, s in enumerate(m.get_chemical_symbols()) if s == "C"][0]
                iy = [i for i, s in enumerate(m.get_chemical_symbols()) if s == y][0]
                axis = m.positions[ic] - m.positions[iy]
                axis /= np.linalg.norm(axis)
                dist = rng.uniform(2.6, 3.6) + 0.3 * (x == "Br")
                xa = Atoms(x, positions=[m.positions[ic] + axis * dist])
                return _tag(m + xa, -1)
            protos.append(Prototype(f"ion:{x}-...CH3{y}", "ion", build))
    return protos


# Packing radii (A): van der Waals radii, smaller for the alkali cations (they are ions here).
_PACK_RADIUS = {"H": 1.10, "Li": 1.15, "C": 1.70, "N": 1.55, "O": 1.52, "F": 1.47, "Na": 1.50,
                "P": 1.80, "S": 1.80, "Cl": 1.75, "Br": 1.85}
_PACK_FACTOR = 0.75


def _pack_ok(new: Atoms, old: Atoms, cell: np.ndarray | None) -> bool:
    """No new-old pair closer than ``_PACK_FACTOR`` times the sum of packing radii."""
    if len(old) == 0:
        return True
    from ase.geometry import get_distances

    if cell is not None:
        _, d = get_distances(new.positions, old.positions, cell=cell, pbc=True)
    else:
        _, d = get_distances(new.positions, old.positions)
    ra = np.array([_PACK_RADIUS[x] for x in new.get_chemical_symbols()])
    rb = np.array([_PACK_RADIUS[x] for x in old.get_chemical_symbols()])
    return bool((d >= _PACK_FACTOR * (ra[:, None] + rb[None, :])).all())


def _random_pack(units: Sequence[Atoms], cell: np.ndarray | None, rng: np.random.Generator,
                 box: float, tries: int = 400) -> Atoms:
    """Place molecules at random positions and orientations inside a cube of side ``box``,
    with no intermolecular pair closer than the packing rule (periodic when ``cell``)."""
    out = Atoms(cell=cell, pbc=cell is not None)
    for unit in units:
        for _attempt in range(tries):
            u = unit.copy()
            u.rotate(rng.uniform(0, 360), rng.normal(size=3) + 1e-9, center="COM")
            u.translate(rng.uniform(0, box, size=3) - u.get_center_of_mass())
            if _pack_ok(u, out, cell):
                out += u
                break
        else:
            raise RuntimeError("random packing failed")
    if cell is not None:
        out.wrap()
    return out


def _cluster_prototypes() -> list[Prototype]:
    protos: list[Prototype] = []
    for n in (2, 3, 4, 5, 6, 8):
        def build(rng, n=n):
            for grow in (1.0, 1.15, 1.3, 1.5, 1.8):
                try:
                    box = (2.6 * n ** (1 / 3) + 1.0) * grow
                    return _tag(_random_pack([molecule("H2O")] * n, None, rng, box))
                except RuntimeError:
                    continue
            raise RuntimeError("could not pack water cluster")
        protos.append(Prototype(f"cluster:(H2O){n}", "cluster", build))
    salts = {"NaCl": 5.64, "LiCl": 5.13, "LiF": 4.03, "NaBr": 5.97, "LiBr": 5.50, "NaF": 4.63}
    for salt, a in salts.items():
        for n in (2, 4, 6):
            def build(rng, salt=salt, a=a, n=n):
                return _tag(_rocksalt_fragment(salt, a, n, rng))
            protos.append(Prototype(f"cluster:({salt}){n}", "cluster", build))
    for salt in ("NaCl", "LiCl"):
        def build(rng, salt=salt):
            core = _rocksalt_fragment(salt, salts[salt], 1, rng)
            return _tag(_solvate(core, 4, rng, 2.9))
        protos.append(Prototype(f"cluster:{salt}(H2O)4", "cluster", build))
    return protos


def _rocksalt_fragment(salt: str, a: float, n_pairs: int, rng: np.random.Generator) -> Atoms:
    """``n_pairs`` cation-anion pairs cut from the rocksalt lattice around a random centre,
    contracted by 8 % (small clusters are denser than the bulk)."""
    big = bulk(salt, "rocksalt", a=a, cubic=True).repeat(3)
    centre = big.cell.sum(axis=0) / 2 + rng.uniform(-0.25, 0.25, 3) * a
    d = np.linalg.norm(big.positions - centre, axis=1)
    sym = np.array(big.get_chemical_symbols())
    cat = salt[:2]  # every salt here has a two-letter cation (Li, Na)
    cations = [i for i in np.argsort(d) if sym[i] == cat][:n_pairs]
    anions = [i for i in np.argsort(d) if sym[i] != cat][:n_pairs]
    frag = big[sorted(cations + anions)]
    frag.pbc = False
    frag.cell = None
    frag.positions = (frag.positions - frag.positions.mean(0)) * 0.92
    return frag


_LIQUIDS = {
    # name: (molecule builder, n_min, n_max, mass density g/cm^3)
    "water": (lambda: molecule("H2O"), 8, 12, 1.00),
    "methanol": (lambda: molecule("CH3OH"), 4, 6, 0.79),
    "acetonitrile": (lambda: molecule("CH3CN"), 4, 6, 0.79),
    "ammonia": (lambda: molecule("NH3"), 7, 10, 0.68),
    "H2S": (lambda: molecule("SH2"), 8, 12, 0.95),
    "PH3": (lambda: molecule("PH3"), 6, 9, 0.75),
    "HF": (lambda: molecule("HF"), 10, 16, 0.99),
    "CH3Cl": (lambda: molecule("CH3Cl"), 4, 7, 0.91),
    "CS2": (lambda: molecule("CS2"), 6, 10, 1.26),
}


def _liquid_prototypes(max_atoms: int = 40) -> list[Prototype]:
    protos: list[Prototype] = []
    for name, (make, n0, n1, rho) in _LIQUIDS.items():
        def build(rng, make=make, n0=n0, n1=n1, rho=rho):
            size = len(make())
            hi = max(2, min(n1, max_atoms // size))
            n = int(rng.integers(min(n0, hi), hi + 1))
            units = [make() for _ in range(n)]
            return _box(units, rho, rng)
        protos.append(Prototype(f"liquid:{name}", "liquid", build, periodic=True))
    # (no NaBr(aq): GFN1-xTB/tblite 0.8 returns nonsense (forces ~1e3 eV/A) for Br near water
    # in periodic boxes; Br enters through molecules, clusters and crystals instead)
    for salt in ("NaCl", "LiCl", "LiF"):
        def build(rng, salt=salt):
            cat = salt[:2]
            an = salt[2:]
            hi = max(2, min(9, (max_atoms - 2) // 3))
            n = int(rng.integers(min(6, hi), hi + 1))
            units = [Atoms(cat), Atoms(an)] + [molecule("H2O") for _ in range(n)]
            return _box(units, 1.10, rng)
        protos.append(Prototype(f"liquid:{salt}(aq)", "liquid", build, periodic=True))
    return protos


def _box(units: list[Atoms], rho: float, rng: np.random.Generator) -> Atoms:
    mass = sum(u.get_masses().sum() for u in units)  # amu
    volume = mass / rho / 0.602214  # A^3 (1 g/cm^3 = 0.602214 amu/A^3)
    length = volume ** (1 / 3)
    for scale in (1.0, 1.04, 1.08, 1.12, 1.16, 1.2, 1.25, 1.3):
        cell = np.eye(3) * length * scale
        try:
            return _tag(_random_pack(units, cell, rng, length * scale))
        except RuntimeError:
            continue
    raise RuntimeError("could not pack liquid box")


def _supercell(atoms: Atoms, min_width: float, max_atoms: int) -> Atoms:
    """Smallest diagonal repeat whose perpendicular widths reach ``min_width`` (A), growing the
    thinnest direction first and stopping before ``max_atoms`` is exceeded."""
    reps = np.array([1, 1, 1])
    cell = atoms.cell
    inv = np.linalg.inv(cell.array)
    widths = 1.0 / np.linalg.norm(inv, axis=0)
    while True:
        w = widths * reps
        k = int(np.argmin(w))
        if w[k] >= min_width:
            break
        trial = reps.copy()
        trial[k] += 1
        if len(atoms) * int(np.prod(trial)) > max_atoms:
            break
        reps = trial
    return atoms.repeat(tuple(int(r) for r in reps))


def _li3ps4_gamma() -> Atoms:
    """A gamma-Li3PS4-like (enargite-type, Pmn21) cell, 16 atoms: a wurtzite-derived
    2a x sqrt(3)a x c supercell (a = 3.77, c = 6.14 A) with P on 1/4 of the tetrahedral cation
    sites chosen so that every S has exactly one P neighbour (isolated PS4 tetrahedra).
    An idealised proxy, not the refined experimental structure."""
    a, c, u = 3.77, 6.14, 0.375
    # orthohexagonal wurtzite: 4 cations, 4 anions in a x sqrt(3) a x c
    cat = np.array([[0, 0, 0], [0.5, 0.5, 0], [0, 1 / 3, 0.5], [0.5, 5 / 6, 0.5]])
    ani = cat + np.array([0, 0, u])
    ortho = Atoms("Li4S4", scaled_positions=np.vstack([cat, ani]) % 1.0,
                  cell=[a, math.sqrt(3) * a, c], pbc=True)
    sc = ortho.repeat((2, 1, 1))
    sym = np.array(sc.get_chemical_symbols())
    cations = np.where(sym == "Li")[0]
    anions = np.where(sym == "S")[0]
    from ase.geometry import get_distances

    _, d = get_distances(sc.positions[cations], sc.positions[anions], cell=sc.cell, pbc=True)
    nbrs = [set(np.where(row < 2.6)[0]) for row in d]
    for i in range(len(cations)):
        for j in range(i + 1, len(cations)):
            if len(nbrs[i]) == 4 and len(nbrs[j]) == 4 and not (nbrs[i] & nbrs[j]):
                sym[cations[i]] = "P"
                sym[cations[j]] = "P"
                sc.set_chemical_symbols(list(sym))
                # contract P-S bonds from the wurtzite 2.3 A towards 2.05 A
                for p in (cations[i], cations[j]):
                    vecs, dists = get_distances(sc.positions[[p]], sc.positions[anions],
                                                cell=sc.cell, pbc=True)
                    for k, s in enumerate(anions):
                        if dists[0, k] < 2.6:
                            sc.positions[s] = sc.positions[p] + vecs[0, k] * (2.10 / dists[0, k])
                sc.wrap()
                return sc
    raise RuntimeError("no enargite-like ordering found")


def _crystal_builders() -> dict[str, Callable[[], Atoms]]:
    """Unit cells of the corpus crystals (experimental lattice constants)."""
    rs = {"LiF": 4.03, "LiCl": 5.13, "LiBr": 5.50, "NaF": 4.63, "NaCl": 5.64, "NaBr": 5.97,
          "LiH": 4.08, "NaH": 4.88}
    out: dict[str, Callable[[], Atoms]] = {}
    for name, a in rs.items():
        out[name] = lambda name=name, a=a: bulk(name, "rocksalt", a=a, cubic=True)
    anti = {"Li2S": ("S", "Li", 5.71), "Na2S": ("S", "Na", 6.54), "Li2O": ("O", "Li", 4.61),
            "Na2O": ("O", "Na", 5.55)}
    for name, (an, cat, a) in anti.items():
        # anti-fluorite: anion on the fcc site, cations on both tetrahedral sites
        out[name] = lambda an=an, cat=cat, a=a: bulk(an + cat + cat, "fluorite", a=a, cubic=True)
    out["Li"] = lambda: bulk("Li", "bcc", a=3.49, cubic=True)
    out["Na"] = lambda: bulk("Na", "bcc", a=4.23, cubic=True)
    out["C-diamond"] = lambda: bulk("C", "diamond", a=3.567, cubic=True)
    out["Li3N"] = lambda: crystal(["N", "Li", "Li"], basis=[(0, 0, 0), (0, 0, 0.5), (1 / 3, 2 / 3, 0)],
                                  spacegroup=191, cellpar=[3.65, 3.65, 3.88, 90, 90, 120])
    out["Li3P"] = lambda: crystal(["P", "Li", "Li"], basis=[(1 / 3, 2 / 3, 0.25), (0, 0, 0.25),
                                                            (1 / 3, 2 / 3, 0.583)],
                                  spacegroup=194, cellpar=[4.27, 4.27, 7.59, 90, 90, 120])
    out["LiOH"] = lambda: crystal(["Li", "O", "H"], basis=[(0, 0, 0), (0, 0.5, 0.194), (0, 0.5, 0.41)],
                                  spacegroup=129, setting=1, cellpar=[3.55, 3.55, 4.33, 90, 90, 90])
    out["Li3PS4-gamma"] = _li3ps4_gamma
    out["NaCN"] = lambda: _rocksalt_like_molecular("Na", "CN", 5.89, 1.17)
    out["P4-solid"] = lambda: _molecular_crystal(lambda: Atoms(
        "P4", positions=np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * 0.7806), 7.2)
    out["H2S-solid"] = lambda: _molecular_crystal(lambda: molecule("SH2"), 5.8)
    out["HCl-solid"] = lambda: _molecular_crystal(lambda: molecule("HCl"), 5.4)
    return out


def _omat_crystal_builders() -> dict[str, Callable[[], Atoms]]:
    """Extra crystals of the broader (OMat-like) corpus."""
    return {
        "NaCl-CsCl-type": lambda: bulk("NaCl", "cesiumchloride", a=3.40).repeat((1, 1, 1)),
        "LiCl-zincblende": lambda: bulk("LiCl", "zincblende", a=5.90, cubic=True),
        "NaBr-CsCl-type": lambda: bulk("NaBr", "cesiumchloride", a=3.60),
        "Li-fcc": lambda: bulk("Li", "fcc", a=4.33, cubic=True),
        "Na-fcc": lambda: bulk("Na", "fcc", a=5.30, cubic=True),
    }


def _rocksalt_like_molecular(cat: str, dimer: str, a: float, bond: float) -> Atoms:
    base = bulk(cat + "Cl", "rocksalt", a=a, cubic=True)
    out = Atoms(cell=base.cell, pbc=True)
    for atom in base:
        if atom.symbol == cat:
            out += Atoms(cat, positions=[atom.position])
        else:
            d = np.array([1, 1, 1]) / math.sqrt(3) * bond / 2
            out += Atoms(dimer, positions=[atom.position - d, atom.position + d])
    return out


def _molecular_crystal(make: Callable[[], Atoms], a: float) -> Atoms:
    """Four molecules on an fcc lattice (cubic cell ``a``), fixed orientations."""
    out = Atoms(cell=np.eye(3) * a, pbc=True)
    for k, site in enumerate(np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a):
        m = make()
        m.rotate(90 * k, "z", center="COM")
        m.translate(site - m.get_center_of_mass() + 0.25 * a)
        out += m
    out.wrap()
    return out


#: Linear scale factors that bring the experimental lattice constants of the corpus crystals to
#: (about) zero GFN1-xTB pressure in the cells the corpus uses, from
#: :func:`calibrate_lattice_scales` (tblite 0.8.0). Molecular crystals are not scaled.
GFN1_LATTICE_SCALE: dict[str, float] = {
    "LiF": 1.0695, "LiCl": 0.9701, "LiBr": 1.0033, "NaF": 1.0681, "NaCl": 0.973, "NaBr": 0.9992,
    "LiH": 1.1455, "NaH": 0.9815, "Li2S": 1.0275, "Na2S": 1.0435, "Li2O": 1.1209, "Na2O": 1.1306,
    "Li": 1.1693, "Na": 1.2, "C-diamond": 0.9949, "Li3N": 1.1221, "Li3P": 1.0745, "LiOH": 1.0468,
    "Li3PS4-gamma": 0.9849, "NaCl-CsCl-type": 0.9996, "LiCl-zincblende": 0.9245,
    "NaBr-CsCl-type": 1.0413, "Li-fcc": 1.1632, "Na-fcc": 1.2,
}  # > 1: GFN1 wants a larger cell than experiment (alkali metals, Li2O, Li3N, LiH most)
_MOLECULAR_CRYSTALS = {"P4-solid", "H2S-solid", "HCl-solid", "NaCN"}


def _apply_scale(atoms: Atoms, key: str) -> Atoms:
    scale = GFN1_LATTICE_SCALE.get(key, 1.0)
    if scale != 1.0:
        atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    return atoms


def _crystal_prototypes(builders: dict[str, Callable[[], Atoms]], family: str,
                        min_width: float, max_atoms: int) -> list[Prototype]:
    protos = []
    for name, make in builders.items():
        def build(rng, make=make, name=name):
            return _tag(_supercell(_apply_scale(make(), name), min_width, max_atoms))
        protos.append(Prototype(f"{family}:{name}", family, build, periodic=True))
    return protos


def calibrate_lattice_scales(names: Iterable[str] | None = None, max_atoms: int = 40,
                             min_width: float = 7.5, step: float = 0.02) -> dict[str, float]:
    """Recompute :data:`GFN1_LATTICE_SCALE`: for each (non-molecular) corpus crystal, the
    isotropic linear scale of its experimental cell at which the GFN1 pressure of the corpus
    supercell vanishes (secant on P(s) from s = 1 and s = 1 +- ``step``, two refinements).
    Expensive (~10 GFN1 evaluations of 16-40 atom cells per crystal); not run by the workflow."""
    builders = {**_crystal_builders(), **_omat_crystal_builders()}
    out: dict[str, float] = {}
    for name in (names or builders):
        if name in _MOLECULAR_CRYSTALS:
            continue
        base = _supercell(builders[name](), min_width, max_atoms)

        def pressure(scale: float) -> float:
            trial = base.copy()
            trial.set_cell(base.cell.array * scale, scale_atoms=True)
            lab = xtb.label([trial], "foundation")[0]
            return -float(np.trace(lab.info["REF_stress"])) / 3.0

        s0, p0 = 1.0, pressure(1.0)
        s1 = 1.0 + (step if p0 > 0 else -step)
        p1 = pressure(s1)
        for _ in range(2):
            if p1 == p0:
                break
            s2 = float(np.clip(s1 - p1 * (s1 - s0) / (p1 - p0), 0.85, 1.2))
            s0, p0, s1, p1 = s1, p1, s2, pressure(s2)
        out[name] = round(s1, 4)
        log.info("lattice scale %s: %.4f (P = %.2f GPa)", name, s1, p1 * 160.21766)
    return out


def _surface_prototypes(max_atoms: int) -> list[Prototype]:
    """Slabs with ~7 A of vacuum on each side (periodic in all three directions)."""
    protos = []
    for salt, a in (("NaCl", 5.64), ("LiF", 4.03), ("LiCl", 5.13), ("NaBr", 5.97)):
        def build(rng, salt=salt, a=a):
            slab = _apply_scale(bulk(salt, "rocksalt", a=a, cubic=True), salt)
            lat = 2 if a < 5 else 1  # lateral repeats of the conventional cell
            layers = 2 if 8 * lat * lat * 2 <= max_atoms else 1  # 4 or 2 atomic layers
            slab = slab.repeat((lat, lat, layers))
            slab.center(vacuum=7.0, axis=2)
            return _tag(slab)
        protos.append(Prototype(f"surface:{salt}(100)", "surface", build, periodic=True))
    for metal, a in (("Li", 3.49), ("Na", 4.23)):
        def build(rng, metal=metal, a=a):
            slab = _apply_scale(bulk(metal, "bcc", a=a, cubic=True), metal).repeat((2, 2, 2))
            slab.center(vacuum=6.0, axis=2)
            return _tag(slab)
        protos.append(Prototype(f"surface:{metal}(100)", "surface", build, periodic=True))
    return protos


def _defect_prototypes(min_width: float, max_atoms: int) -> list[Prototype]:
    """Point defects (Schottky pair vacancy, anion substitution) in small supercells."""
    protos = []
    pairs = (("NaCl", 5.64, "Br"), ("LiCl", 5.13, "Br"), ("NaBr", 5.97, "Cl"), ("LiF", 4.03, "Cl"))
    for salt, a, sub in pairs:
        def vac(rng, salt=salt, a=a):
            sc = _supercell(_apply_scale(bulk(salt, "rocksalt", a=a, cubic=True), salt),
                            min_width, max_atoms)
            sym = np.array(sc.get_chemical_symbols())
            cat = [i for i in range(len(sc)) if sym[i] == sym[0]]
            an = [i for i in range(len(sc)) if sym[i] != sym[0]]
            drop = {int(rng.choice(cat)), int(rng.choice(an))}
            return _tag(sc[[i for i in range(len(sc)) if i not in drop]])

        def subst(rng, salt=salt, a=a, sub=sub):
            sc = _supercell(_apply_scale(bulk(salt, "rocksalt", a=a, cubic=True), salt),
                            min_width, max_atoms)
            sym = sc.get_chemical_symbols()
            an = [i for i in range(len(sc)) if sym[i] != sym[0]]
            k = int(rng.integers(1, max(2, len(an) // 2)))
            for i in rng.choice(an, size=k, replace=False):
                sym[int(i)] = sub
            sc.set_chemical_symbols(sym)
            return _tag(sc)
        protos.append(Prototype(f"defect:{salt}-vacancy", "defect", vac, periodic=True))
        protos.append(Prototype(f"defect:{salt}-{sub}-substituted", "defect", subst, periodic=True))
    def li2s_vac(rng):
        sc = _supercell(_apply_scale(bulk("SLi2", "fluorite", a=5.71, cubic=True), "Li2S"),
                        min_width, max_atoms)
        sym = np.array(sc.get_chemical_symbols())
        li = np.where(sym == "Li")[0]
        drop = set(int(i) for i in rng.choice(li, size=2, replace=False))
        s = int(rng.choice(np.where(sym == "S")[0]))
        drop.add(s)
        return _tag(sc[[i for i in range(len(sc)) if i not in drop]])
    protos.append(Prototype("defect:Li2S-vacancy", "defect", li2s_vac, periodic=True))
    return protos


def _max_size(proto: Prototype) -> int:
    return len(proto.build(np.random.default_rng(0)))


def prototypes(kind: str, max_atoms: int = 40, min_width: float = 7.5) -> dict[str, list[Prototype]]:
    """The prototype builders of a corpus, by family. ``mptrj``: molecules, ions, clusters,
    liquids, crystals; ``omat`` (and ``test``): the same plus extra crystals, surfaces and
    defects."""
    if kind not in KINDS:
        raise ValueError(f"unknown corpus kind {kind!r}; expected one of {KINDS}")
    fams: dict[str, list[Prototype]] = {
        "molecule": _molecule_prototypes(),
        "ion": _ion_prototypes(),
        "cluster": _cluster_prototypes(),
        "liquid": _liquid_prototypes(max_atoms),
        "crystal": _crystal_prototypes(_crystal_builders(), "crystal", min_width, max_atoms),
    }
    # finite prototypes have fixed sizes: drop the ones above max_atoms
    for fam in ("ion", "cluster"):
        fams[fam] = [q for q in fams[fam] if _max_size(q) <= max_atoms]
    if kind in ("omat", "test"):
        fams["crystal"] += _crystal_prototypes(_omat_crystal_builders(), "crystal", min_width, max_atoms)
        fams["surface"] = _surface_prototypes(max_atoms)
        fams["defect"] = _defect_prototypes(min_width, max_atoms)
    return fams


# --------------------------------------------------------------------------- perturbations


def min_distance_ratio(atoms: Atoms) -> float:
    """Smallest ``d_ij / (r_cov,i + r_cov,j)`` over all pairs (minimum image when periodic)."""
    if len(atoms) < 2:
        return np.inf
    from ase.geometry import get_distances

    if atoms.pbc.any():
        _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    else:
        _, d = get_distances(atoms.positions)
    r = covalent_radii[atoms.numbers]
    ratio = d / (r[:, None] + r[None, :])
    np.fill_diagonal(ratio, np.inf)
    return float(ratio.min())


def _strain(atoms: Atoms, eps: np.ndarray) -> Atoms:
    """Apply the (symmetric) strain ``eps`` to a periodic cell, or to the coordinates about the
    centre of mass of a finite structure."""
    out = atoms.copy()
    f = np.eye(3) + eps
    if out.pbc.all():
        out.set_cell(out.cell.array @ f, scale_atoms=True)
    else:
        com = out.get_center_of_mass()
        out.positions = (out.positions - com) @ f + com
    return out


def _random_strain(rng: np.random.Generator, max_normal: float, max_shear: float) -> np.ndarray:
    e = np.diag(rng.uniform(-max_normal, max_normal, 3))
    s = rng.uniform(-max_shear, max_shear, 3)
    e[0, 1] = e[1, 0] = s[0]
    e[0, 2] = e[2, 0] = s[1]
    e[1, 2] = e[2, 1] = s[2]
    return e


def _rattle(atoms: Atoms, rng: np.random.Generator, sigma: float | np.ndarray,
            min_ratio: float, tries: int = 12) -> Atoms:
    """Gaussian displacements (per-atom ``sigma`` allowed); redraws with a smaller sigma until
    no pair is closer than ``min_ratio`` times the sum of covalent radii."""
    sig = np.broadcast_to(np.asarray(sigma, float), (len(atoms),)).copy()
    for _ in range(tries):
        out = atoms.copy()
        out.positions += rng.normal(size=(len(atoms), 3)) * sig[:, None]
        if min_distance_ratio(out) >= min_ratio:
            return out
        sig *= 0.8
    return atoms.copy()


def _relax_frame(atoms: Atoms, rng: np.random.Generator, max_steps: int) -> Atoms:
    """A frame of a GFN1 FIRE relaxation started from a strained and rattled structure (the
    MPtrj analogue: relaxation trajectories). Returns the structure after 0..max_steps steps."""
    from ase.optimize import FIRE

    start = _strain(atoms, _random_strain(rng, 0.03, 0.01))
    start = _rattle(start, rng, 0.08, 0.75)
    steps = int(rng.integers(0, max_steps + 1))
    if steps == 0:
        return start
    work = start.copy()
    charge = int(atoms.info.get("charge", 0))
    mult = atoms.info.get("multiplicity")
    if mult is None:
        mult = xtb._default_multiplicity(work, charge)
    work.calc = xtb.calculator("foundation", charge, int(mult))
    try:
        if work.pbc.all():
            from ase.filters import FrechetCellFilter

            opt = FIRE(FrechetCellFilter(work), logfile=None)
        else:
            opt = FIRE(work, logfile=None)
        opt.run(fmax=0.05, steps=steps)
    except Exception as err:  # SCF failure on the way: keep the starting structure
        log.info("relaxation of %s stopped: %s", atoms.info.get("prototype"), err)
        return start
    out = work.copy()
    out.calc = None
    out.info = dict(atoms.info)
    return out


def _perturb(atoms: Atoms, mode: str, rng: np.random.Generator, relax_steps: int) -> Atoms:
    periodic = bool(atoms.pbc.all())
    if mode == "relax" and relax_steps <= 0:
        mode = "rattle"
    if mode == "relax":
        out = _relax_frame(atoms, rng, relax_steps)
    elif mode == "rattle":
        out = _strain(atoms, _random_strain(rng, 0.02, 0.005)) if periodic else atoms
        out = _rattle(out, rng, rng.uniform(0.01, 0.05), 0.75)
    elif mode == "strain":
        out = _strain(atoms, _random_strain(rng, 0.02, 0.01))
        out = _rattle(out, rng, 0.01, 0.75)
    elif mode == "rattle_strong":
        out = _strain(atoms, _random_strain(rng, 0.03, 0.01)) if periodic else atoms
        out = _rattle(out, rng, rng.uniform(0.08, 0.25), 0.55)
    elif mode == "hot":
        # a thermal-like snapshot: displacements ~ sqrt(kT/m) (light atoms move most) and a
        # random cell shear, standing in for OMat24's high-temperature AIMD frames
        masses = atomic_masses[atoms.numbers]
        sigma = rng.uniform(0.06, 0.14) * np.sqrt(np.clip(12.0 / masses, 0.25, 3.0))
        out = _strain(atoms, _random_strain(rng, 0.03, 0.05)) if periodic else atoms
        out = _rattle(out, rng, sigma, 0.6)
    elif mode in ("compressed", "stretched"):
        s = rng.uniform(0.05, 0.10) * (-1 if mode == "compressed" else 1)
        out = _strain(atoms, np.eye(3) * s + _random_strain(rng, 0.0, 0.01))
        out = _rattle(out, rng, 0.03, 0.5)
    else:
        raise ValueError(f"unknown perturbation mode {mode!r}")
    out.info = dict(atoms.info)
    if periodic:
        out.wrap()
    return out


# --------------------------------------------------------------------------- sampling


def _params(kind: str, params: dict | None) -> dict:
    p = dict(_DEFAULTS)
    p.update(params or {})
    if "n_structures" not in p:
        raise ValueError("params must give n_structures")
    return p


def _rng(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(_KIND_CODE[kind], int(index))))


def _choose(rng: np.random.Generator, weights: dict[str, float], allowed: Iterable[str]) -> str:
    keys = [k for k in weights if k in set(allowed) and weights[k] > 0]
    w = np.array([weights[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def _distribution(kind: str, rng: np.random.Generator, p: dict) -> str:
    """``mptrj`` or ``omat``: the distribution a structure is drawn from (the first draw of its
    generator decides for ``test``)."""
    u = rng.random()
    if kind == "test":
        return "omat" if u < float(p["omat_fraction"]) else "mptrj"
    return kind


def sample_structure(kind: str, index: int, seed: int, params: dict | None = None,
                     cache: dict | None = None) -> Atoms:
    """Structure ``index`` of a corpus, *unlabelled* (GFN1 is only run in ``relax`` mode when
    ``params['relax_steps'] > 0``). Deterministic in ``(kind, index, seed, params)``.
    ``cache`` may hold ``{"mptrj"|"omat": prototypes(...)}`` to avoid rebuilding them."""
    if kind not in KINDS:
        raise ValueError(f"unknown corpus kind {kind!r}; expected one of {KINDS}")
    p = _params(kind, {"n_structures": 0, **(params or {})})
    rng = _rng(seed, kind, index)
    dist = _distribution(kind, rng, p)
    cache = {} if cache is None else cache
    if dist not in cache:
        cache[dist] = prototypes(dist, p["max_atoms"], p["min_width"])
    protos = cache[dist]
    fam_w = dict(FAMILY_WEIGHTS[dist])
    fam_w.update(p.get("family_weights") or {})
    mode_w = dict(MODE_WEIGHTS[dist])
    mode_w.update(p.get("mode_weights") or {})
    family = _choose(rng, fam_w, protos)
    pool = protos[family]
    proto = pool[int(rng.integers(len(pool)))]
    mode = _choose(rng, mode_w, mode_w)
    base = proto.build(rng)
    if len(base) > p["max_atoms"]:
        raise RuntimeError(f"{proto.name} has {len(base)} > max_atoms atoms")
    base.info[CONFIG_TYPE_KEY] = family
    base.info["prototype"] = proto.name
    base.info["mode"] = mode
    base.info["corpus"] = kind if kind != "test" else f"test:{dist}"
    out = _perturb(base, mode, rng, int(p["relax_steps"]))
    out.info["corpus_index"] = int(index)
    return out


def sample_structures(kind: str, n: int, seed: int, params: dict | None = None,
                      start: int = 0) -> list[Atoms]:
    """Structures ``start .. start+n-1`` of a corpus, unlabelled (cheap with relax_steps=0)."""
    cache: dict = {}
    return [sample_structure(kind, i, seed, params, cache) for i in range(start, start + n)]


# --------------------------------------------------------------------------- generation


def generate_corpus(kind: str, params: dict, seed: int, out_dir: Path | str) -> dict:
    """Generate and label (GFN1-xTB) a pretraining corpus; see the module docstring.

    Writes ``out_dir/train.xyz`` and ``out_dir/valid.xyz`` (``out_dir/test.xyz`` for
    ``kind="test"``), ``out_dir/isolated_atoms.xyz`` (GFN1 isolated atoms of all 11 elements) and
    ``out_dir/summary.json``. Structures whose SCF fails are skipped and replaced by the next
    index (at most ``max_attempt_factor * n_structures`` candidates are tried).

    Returns ``{file name: number of configurations, ..., "failed": n_failed,
    "seconds": wall time, "seconds_per_structure": ...}``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown corpus kind {kind!r}; expected one of {KINDS}")
    p = _params(kind, params)
    n = int(p["n_structures"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cache: dict = {}
    labelled: list[Atoms] = []
    failed: list[dict] = []
    isolated = xtb.isolated_atoms(ELEMENTS, "foundation")
    e0 = {a.get_chemical_symbols()[0]: a.info[ENERGY_KEY] for a in isolated}
    max_attempts = max(n, int(math.ceil(float(p["max_attempt_factor"]) * n)))
    index = 0
    while len(labelled) < n and index < max_attempts:
        atoms = sample_structure(kind, index, seed, p, cache)
        got = xtb.label([atoms], "foundation", skip_failed=True)
        reason = "scf" if not got else _implausible(got[0], p, e0)
        if reason is None:
            labelled.append(got[0])
        else:
            failed.append({"index": index, "prototype": atoms.info.get("prototype"),
                           "mode": atoms.info.get("mode"), "reason": reason})
        index += 1
    if len(labelled) < n:
        log.warning("corpus %s: only %d of %d structures labelled", kind, len(labelled), n)
    seconds = time.perf_counter() - t0

    files: dict[str, list[Atoms]] = {}
    if kind == "test":
        files["test.xyz"] = labelled
    else:
        n_valid = int(round(float(p["valid_fraction"]) * len(labelled)))
        n_valid = min(max(n_valid, 1 if len(labelled) > 1 else 0), len(labelled) - 1) if labelled else 0
        files["train.xyz"] = labelled[: len(labelled) - n_valid]
        files["valid.xyz"] = labelled[len(labelled) - n_valid:]
    files["isolated_atoms.xyz"] = isolated
    for name, configs in files.items():
        write(out_dir / name, configs, format="extxyz")

    summary = {name: len(configs) for name, configs in files.items()}
    summary.update({
        "failed": len(failed),
        "seconds": round(seconds, 2),
        "seconds_per_structure": round(seconds / max(index, 1), 4),
    })
    stats = {
        "kind": kind, "seed": int(seed), "params": {k: v for k, v in p.items()},
        "summary": summary, "failed_structures": failed,
        "families": _count(a.info.get(CONFIG_TYPE_KEY) for a in labelled),
        "modes": _count(a.info.get("mode") for a in labelled),
        "elements": _count(s for a in labelled for s in set(a.get_chemical_symbols())),
    }
    (out_dir / "summary.json").write_text(json.dumps(stats, indent=1, default=str))
    log.info("corpus %s: %s", kind, summary)
    return summary


def _implausible(atoms: Atoms, p: dict, e0: dict[str, float]) -> str | None:
    """Why a label looks wrong (huge forces or stress, absurd cohesive energy), or None."""
    from ..keys import ENERGY_KEY, FORCES_KEY, STRESS_KEY

    ecoh = (atoms.info[ENERGY_KEY] - sum(e0[s] for s in atoms.get_chemical_symbols())) / len(atoms)
    lo, hi = p["cohesive_range"]
    if not np.isfinite(ecoh) or not lo <= ecoh <= hi:
        return f"cohesive energy {ecoh:.3g} eV/atom"
    fmax = float(np.abs(atoms.arrays[FORCES_KEY]).max()) if len(atoms) else 0.0
    if not np.isfinite(fmax) or fmax > float(p["max_force"]):
        return f"max force {fmax:.3g} eV/A"
    if STRESS_KEY in atoms.info:
        smax = float(np.abs(atoms.info[STRESS_KEY]).max())
        if not np.isfinite(smax) or smax > float(p["max_stress"]):
            return f"max stress {smax:.3g} eV/A^3"
    return None


def _count(items: Iterable) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


# --------------------------------------------------------------------------- replay sets

def learnable(atoms: Atoms) -> bool:
    """Whether a corpus label is a function of the geometry alone, i.e. learnable by MACE, which
    sees neither total charge nor spin: neutral and closed-shell (even electron count, no
    multiplicity above 1). Periodic cells are always neutral here; tblite smears their
    occupations, so they count as learnable. Ions and radicals are kept in the corpus files (the
    record of what was generated) and dropped where a foundation is trained or scored
    (``corpus_filter: learnable`` in the config)."""
    if atoms.pbc.any():
        return True
    charge = int(atoms.info.get("charge", 0))
    electrons = int(atoms.numbers.sum()) - charge
    return charge == 0 and electrons % 2 == 0 and int(atoms.info.get("multiplicity", 1)) == 1


#: The world's ``corpus_filter`` choices: which corpus structures a foundation is trained and scored on.
CORPUS_FILTERS = {"learnable": learnable}


def apply_filter(configs: list[Atoms], corpus_filter: str | None) -> list[Atoms]:
    """The structures ``corpus_filter`` keeps (:data:`CORPUS_FILTERS`; None keeps all), in order."""
    if corpus_filter is None:
        return list(configs)
    if corpus_filter not in CORPUS_FILTERS:
        raise ValueError(f"unknown corpus filter {corpus_filter!r} (known: {', '.join(CORPUS_FILTERS)})")
    return [a for a in configs if CORPUS_FILTERS[corpus_filter](a)]


REPLAY_MODES = ("element_matched", "random")


def replay_subsample(corpus_xyz: Path | str | Sequence[Path | str], elements: Iterable[str],
                     n: int, seed: int, mode: str, out_path: Path | str | None = None
                     ) -> list[Atoms]:
    """A replay set drawn from a (labelled) corpus file or files.

    ``mode="element_matched"``: keep the structures whose elements are a subset of ``elements``
    (the target benchmark's elements), then draw ``n`` at random without replacement (all of
    them when fewer match). ``mode="random"``: ``n`` at random from the whole corpus.
    IsolatedAtom rows are never drawn. The draw (:func:`mlipft.replay.select`, the workflow's
    own) is deterministic in ``seed`` and keeps the corpus order. Writes ``out_path`` (extxyz) when given; returns the structures.
    """
    if mode not in REPLAY_MODES:
        raise ValueError(f"unknown replay mode {mode!r}; expected one of {REPLAY_MODES}")
    from ..replay import select

    paths = [corpus_xyz] if isinstance(corpus_xyz, (str, Path)) else list(corpus_xyz)
    configs = [a for path in paths for a in read(path, index=":", format="extxyz")]
    try:
        out = select(configs, set(elements), mode, int(n), seed)
    except ValueError:  # mode is valid, so: no structure has only these elements
        out = []
    if len(out) < n:
        log.warning("replay %s: only %d structures available (asked for %d)", mode, len(out), n)
    for a in out:
        a.info["replay_mode"] = mode
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        write(out_path, out, format="extxyz")
    return out


def combine_replay(replay_files: Sequence[Path | str], out_path: Path | str | None = None
                   ) -> list[Atoms]:
    """Concatenate replay files (e.g. element-matched omat + random mptrj, the paper's
    "combination"), dropping exact duplicates (same symbols, cell and positions). Writes
    ``out_path`` when given; returns the structures."""
    seen: set = set()
    out: list[Atoms] = []
    for path in replay_files:
        for a in read(path, index=":", format="extxyz"):
            key = (tuple(a.numbers), np.round(a.cell.array, 6).tobytes(),
                   np.round(a.positions, 6).tobytes())
            if key in seen:
                continue
            seen.add(key)
            out.append(a)
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        write(out_path, out, format="extxyz")
    return out
