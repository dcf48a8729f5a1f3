"""The LPSC benchmark of the mini world: the lithium argyrodite Li6PS5Cl solid electrolyte.

Structure (one ordered model of the disordered argyrodite, documented because it matters):
space group F-43m (No. 216), conventional cubic cell, a = 9.85 A (Li6PS5Cl; Deiseroth et al.,
Angew. Chem. Int. Ed. 47, 755 (2008) report a ~ 9.86 A). Wyckoff positions, in a setting whose
origin puts the halide on 4a and the "free" S2- on 4c (Deiseroth's description has the free
S2- on 4d; the two are related by inversion, x -> 1 - x)::

    Cl  4a  (0, 0, 0)                 the halide sublattice (fcc)
    P   4b  (1/2, 1/2, 1/2)           centres of the PS4^3- tetrahedra
    S1  4c  (1/4, 1/4, 1/4)           free S2-, inside the Li cages
    S2  16e (x, x, x), x = 0.62       PS4 corners; P-S = 2.05 A
    Li  48h (x, x, z), x = 0.183, z = 0.024   half occupied (Li-S 2.41 A, Li-Cl 2.56 A)

Cl and S are fully ordered (Cl on 4a, S on 4c; the real material has some 4a/4c anti-site
disorder). The 48 48h sites form 24 "doublets" (pairs 1.87 A apart around a 24g site), six per
Li cage around each free S2-; one Li per doublet is occupied, giving Li24P4S20Cl4 (52 atoms).
Of the 2^6 choices that keep the F-centring (so the structure has a 13-atom primitive cell),
the one with the lowest Li-Li Coulomb sum is used (lexicographic tie-break); it is also the
lowest in GFN1-xTB energy among the 64 (-3078.62 eV against -3074.79 eV and above).

Configurations: frames of short Langevin MD driven by GFN1-xTB in the 13-atom primitive cell
(cheap: ~0.5 s per step) at ``temperatures``, tiled to the conventional cell and decorrelated by
a small random displacement of every atom (``decorrelate_sigma``); thermal rattles and cell
strains of the conventional cell. Each is labelled at the benchmark level (see LEVEL).

Why not the 13-atom cell for the main sets, at a quarter of every training step's cost (issue
16's lever)? tblite labels at the Gamma point only, and the primitive cell (6.96 A vectors)
samples the Brillouin zone far worse than the conventional one: four primitive test frames
labelled as they are and tiled to the conventional cell differ by 246-278 meV/atom in energy and
by 124-226 meV/A RMS in forces (force RMS 405-659 meV/A; measured with this module and
``mlipft.xtb``). Labels of the primitive cell are a different level of theory, and the held-out
sets, which need the conventional cell, would measure that mismatch instead of transfer. Held-out
sets: "other argyrodites" -- Cl-rich Li5.5PS4.5Cl1.5 = Li22P4S18Cl6 (two free-S2- 4c sites
replaced by Cl and one Li removed from each of their cages, a = 9.80 A) and Li5.75PS4.75Cl1.25
= Li23P4S19Cl5 (one site, a = 9.825 A); Li6PS5Br (a = 9.98 A) is built but left out by default
because GFN1-xTB returns nonsense for it (max force ~460 eV/A on the ideal cell; tblite's GFN1
misbehaves for Br next to S/O) -- and "non-argyrodites" (gamma-Li3PS4-like enargite-type cell,
anti-fluorite Li2S, rocksalt LiCl), all rattled and strained, at most 52 atoms.

LEVEL -- read this. The benchmark is meant to be labelled at the *target* level (GFN2-xTB). With
tblite 0.8.0, GFN2-xTB's SCF diverges (density error growing to 1e75) for almost every distorted
LPSC cell: the ideal 52-atom cell converges (93 cycles), but of 14 distorted cells tried (rattles
of 0.02-0.1 A of all atoms, of Li only, of the framework only; cells 1-4 % expanded) only 3
converged, and neither electronic temperatures up to 5000 K, smaller mixer damping, other mixer
memory, the eeq/eeqbc guesses, annealing, looser accuracy nor 1500 cycles rescued the 0.02 A
rattle (its SCF blows up after ~400 cycles). GFN2 therefore cannot label this benchmark;
:data:`LEVEL` is the foundation level (GFN1-xTB) until xtb.py offers a third method.
In the paper the LPSC reference is PBE, the functional of the MPtrj/OMat24 pretraining data,
so a same-functional benchmark is not foreign to the analogy (the averaged-vs-estimated E0
contrast remains: every LPSC training structure has the same composition, so "average" E0s are
not identifiable and fail on the other compositions of the held-out sets). Set
``params["level"] = "target"`` to try GFN2 anyway (failures are skipped and counted).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, make_supercell
from ase.geometry import get_distances
from ase.io import write
from ase.spacegroup import crystal

from .. import xtb
from ..keys import CONFIG_TYPE_KEY

log = logging.getLogger(__name__)

#: Level the benchmark is labelled at by default (see the module docstring for why not GFN2).
LEVEL = "foundation"

ELEMENTS = ("Li", "P", "S", "Cl")
HELDOUT_ELEMENTS = ("Li", "P", "S", "Cl")  # + Br when Li6PS5Br is chosen

CARD = {
    "name": "lpsc",
    "paper_counterpart": (
        "lithium argyrodite solid electrolyte Li6PS5Cl (LPSC; LPSC_600, PBE, Zenodo 15686940), "
        "with held-out 'other argyrodites' and 'non-argyrodites' sets"
    ),
    "level": f"{xtb.method_for(LEVEL)} ({LEVEL} level: GFN2-xTB's periodic SCF diverges for "
             "distorted LPSC cells, see the module docstring); params['level'] overrides",
    "sizes": {
        "smoke": "2/1/1 train/valid/test + 1 per held-out set, 3 GFN1 MD steps (~17 s)",
        "mini": "100/20/20 + 10 per held-out set (100 training cells: fractions over two decades), "
                "3 x 80 GFN1 MD steps in the primitive cell, 160 GFN1 labels of 32-52 atoms",
    },
    "elements": list(ELEMENTS),
    "heldout_elements": list(HELDOUT_ELEMENTS),
    "notes": (
        "Same: argyrodite F-43m structure (Li 48h half occupied, P 4b, S 16e + 4c, Cl 4a), "
        "thermal configurations of the conventional cell with energies, forces and stresses, "
        "held-out other argyrodites (Cl-rich Li5.5PS4.5Cl1.5 and Li5.75PS4.75Cl1.25) and "
        "non-argyrodites (Li3PS4, Li2S, LiCl). Not the same: no Li6PS5Br (GFN1 nonsense), "
        " one ordered 52-atom cell (no Li or Cl/S disorder, "
        "Gamma-point tblite, no k-points), MD driven by GFN1-xTB in the 13-atom primitive cell "
        "and tiled, tens instead of 600 structures, a gamma-Li3PS4-like idealised cell instead "
        "of the refined one, no Li7P3S11 (no reliable coordinates at hand), and the labels are "
        "GFN1-xTB (the foundation level) because GFN2-xTB's periodic SCF diverges for distorted "
        "LPSC cells in tblite 0.8.0 -- in the paper the LPSC labels are PBE like the "
        "pretraining data, so the benchmark is in-domain for the foundation, as LPSC is for "
        "OMat24."
    ),
}

A_LI6PS5CL = 9.85
A_LI6PS5BR = 9.98
A_CL_RICH = 9.80
#: held-out "other argyrodites" written by default (see :data:`OTHER_ARGYRODITES`)
DEFAULT_OTHER_ARGYRODITES = ["Li5.5PS4.5Cl1.5", "Li5.75PS4.75Cl1.25"]
WYCKOFF = {
    # symbol, Wyckoff letter, representative position
    "Cl": ("4a", (0.0, 0.0, 0.0)),
    "P": ("4b", (0.5, 0.5, 0.5)),
    "S_free": ("4c", (0.25, 0.25, 0.25)),
    "S_PS4": ("16e", (0.62, 0.62, 0.62)),
    "Li": ("48h", (0.183, 0.183, 0.024)),
}
_SPECIES_ORDER = {"Li": 0, "P": 1, "S": 2, "Cl": 3, "Br": 4}
_F_CENTRING = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
#: primitive (fcc) cell vectors in units of the conventional ones, and back
_TO_PRIMITIVE = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
_TO_CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])

#: extxyz files the generator writes (``<name>.xyz``); summary.json besides.
FILES = ("train", "valid", "test", "isolated_atoms", "heldout_other_argyrodites", "heldout_non_argyrodites")

#: Parameters (mini / smoke). Counts are configurations; failed labels are replaced by extra
#: candidates (up to ``max_attempt_factor`` times the number asked for).
#: ``n_train``/``n_valid``/``n_test``: main LPSC splits; ``n_heldout``: configurations in each
#: held-out file; ``md_steps``: Langevin steps per temperature (GFN1, primitive cell);
#: ``md_equil``: steps discarded before sampling; ``md_stride``: steps between frames;
#: ``md_timestep_fs``; ``friction_per_fs``; ``temperatures`` (K); ``decorrelate_sigma`` (A);
#: ``mode_fractions``: shares of md / rattle / strain configurations; ``level``: labelling
#: level ("foundation", "target" or a tblite method name).
PRESETS = {
    "smoke": {
        "n_train": 2, "n_valid": 1, "n_test": 1, "n_heldout": 1, "md_steps": 3, "md_equil": 1,
        "md_stride": 1, "temperatures": [600.0],
    },
    "mini": {
        "n_train": 100, "n_valid": 20, "n_test": 20, "n_heldout": 10, "md_steps": 80,
        "md_equil": 10, "md_stride": 2, "temperatures": [300.0, 600.0, 900.0],
    },
}
_DEFAULTS = {
    "n_train": 100, "n_valid": 20, "n_test": 20, "n_heldout": 10,
    "md_steps": 80, "md_equil": 10, "md_stride": 2, "md_timestep_fs": 2.0,
    "friction_per_fs": 0.02, "temperatures": [300.0, 600.0, 900.0],
    "decorrelate_sigma": 0.03, "mode_fractions": {"md": 0.6, "rattle": 0.25, "strain": 0.15},
    "level": LEVEL, "max_attempt_factor": 1.5,
    "other_argyrodites": DEFAULT_OTHER_ARGYRODITES,
}


# --------------------------------------------------------------------------- structures


def _cell(a: float) -> list[float]:
    return [a, a, a, 90.0, 90.0, 90.0]


def framework(a: float = A_LI6PS5CL, halide: str = "Cl") -> Atoms:
    """The anion/P framework: halide 4a, P 4b, free S 4c, PS4 S 16e (28 atoms)."""
    w = WYCKOFF
    return crystal([halide, "P", "S", "S"],
                   basis=[w["Cl"][1], w["P"][1], w["S_free"][1], w["S_PS4"][1]],
                   spacegroup=216, cellpar=_cell(a))


def li_sites(a: float = A_LI6PS5CL) -> Atoms:
    """All 48 Li 48h sites (each half occupied in the real material)."""
    return crystal(["Li"], basis=[WYCKOFF["Li"][1]], spacegroup=216, cellpar=_cell(a))


def parent_structure(a: float = A_LI6PS5CL) -> Atoms:
    """Framework plus all 48 Li sites (76 atoms, the full F-43m site set)."""
    return framework(a) + li_sites(a)


def _translation_class(frac: np.ndarray) -> tuple:
    keys = [tuple(np.round((frac + t) % 1.0, 4) % 1.0) for t in _F_CENTRING]
    return min(keys)


def li_doublets(a: float = A_LI6PS5CL) -> list[tuple[int, int]]:
    """The 24 pairs of 48h sites 1.87 A apart (indices into :func:`li_sites`)."""
    li = li_sites(a)
    _, d = get_distances(li.positions, cell=li.cell, pbc=True)
    np.fill_diagonal(d, np.inf)
    pairs = sorted({tuple(sorted((i, int(np.argmin(d[i]))))) for i in range(len(li))})
    assert len(pairs) == 24, pairs
    return pairs


def ordered_li_indices(a: float = A_LI6PS5CL) -> list[int]:
    """The occupied half of the 48h sites (see the module docstring for the rule)."""
    li = li_sites(a)
    frac = li.get_scaled_positions()
    cls = [_translation_class(f) for f in frac]
    classes = sorted(set(cls))
    cls_id = np.array([classes.index(c) for c in cls])
    pair_classes = sorted({tuple(sorted((int(cls_id[i]), int(cls_id[j])))) for i, j in li_doublets(a)})
    assert len(pair_classes) == 6, pair_classes
    best = None
    for choice in itertools.product((0, 1), repeat=len(pair_classes)):
        keep = {pair_classes[k][c] for k, c in enumerate(choice)}
        sel = [i for i in range(len(li)) if cls_id[i] in keep]
        _, d = get_distances(li.positions[sel], cell=li.cell, pbc=True)
        energy = float(np.sum(1.0 / d[np.triu_indices(len(sel), 1)]))
        key = (round(energy, 6), choice)
        if best is None or key < best[0]:
            best = (key, sel)
    return best[1]


def _sorted(atoms: Atoms) -> Atoms:
    """Atoms grouped by species (Li, P, S, Cl, Br), keeping only symbols, positions and cell
    (info is kept; the spacegroup tags of ase.spacegroup.crystal are dropped)."""
    order = sorted(range(len(atoms)),
                   key=lambda i: (_SPECIES_ORDER.get(atoms[i].symbol, 9), i))
    out = Atoms(atoms.numbers[order], positions=atoms.positions[order], cell=atoms.cell,
                pbc=atoms.pbc)
    out.info = {k: v for k, v in atoms.info.items() if k not in ("spacegroup", "unit_cell")}
    return out


def lpsc_cell(a: float = A_LI6PS5CL, halide: str = "Cl") -> Atoms:
    """The ordered conventional cell Li24P4X4S20 (52 atoms)."""
    atoms = framework(a, halide) + li_sites(a)[ordered_li_indices(a)]
    atoms = _sorted(atoms)
    atoms.info["structure"] = f"Li6PS5{halide}"
    return atoms


def primitive_cell(conv: Atoms) -> Atoms:
    """The 13-atom primitive (fcc) cell of an F-centred ordered conventional cell."""
    cell = _TO_PRIMITIVE @ conv.cell.array
    prim = Atoms(cell=cell, pbc=True)
    frac = np.linalg.solve(cell.T, conv.positions.T).T
    seen: list[np.ndarray] = []
    for i, f in enumerate(frac):
        g = f % 1.0
        if any(np.allclose((g - h + 0.5) % 1.0 - 0.5, 0.0, atol=1e-4) for h in seen):
            continue
        seen.append(g)
        prim += Atoms(conv[i].symbol, scaled_positions=[g], cell=cell, pbc=True)
    if len(prim) * 4 != len(conv):
        raise ValueError("the cell is not F-centred")
    prim.info = dict(conv.info)
    return prim


def conventional_from_primitive(prim: Atoms) -> Atoms:
    """Tile a primitive cell (as made by :func:`primitive_cell`) to the cubic cell."""
    conv = make_supercell(prim, _TO_CONVENTIONAL)
    conv = _sorted(conv)
    conv.info = dict(prim.info)
    return conv


def li6ps5br_cell() -> Atoms:
    return lpsc_cell(A_LI6PS5BR, "Br")


def cl_rich_cell(n_sub: int = 2) -> Atoms:
    """Cl-rich argyrodite Li(6-x)PS(5-x)Cl(1+x), x = n_sub/4, in the conventional cell:
    ``n_sub`` free-S2- (4c) sites become Cl and one Li of each of their cages is removed (the one
    whose removal leaves the lowest Li-Li Coulomb sum), which keeps the cell neutral.
    n_sub = 2: Li5.5PS4.5Cl1.5 = Li22P4S18Cl6 (50 atoms, a = 9.80 A);
    n_sub = 1: Li5.75PS4.75Cl1.25 = Li23P4S19Cl5 (51 atoms, a = 9.825 A)."""
    if n_sub not in (1, 2, 3, 4):
        raise ValueError("n_sub must be 1..4")
    a = A_LI6PS5CL + (A_CL_RICH - A_LI6PS5CL) * n_sub / 2.0
    atoms = lpsc_cell(a)
    sym = atoms.get_chemical_symbols()
    frac = atoms.get_scaled_positions()
    free_s = [i for i in range(len(atoms)) if sym[i] == "S"
              and np.allclose(((frac[i] - 0.25) * 2 + 0.5) % 1.0 - 0.5, 0.0, atol=1e-3)]
    assert len(free_s) == 4, free_s
    subst = free_s[:n_sub]
    li = [i for i in range(len(atoms)) if sym[i] == "Li"]
    _, d = get_distances(atoms.positions[li], atoms.positions[subst], cell=atoms.cell, pbc=True)
    removed: list[int] = []
    for k in range(len(subst)):
        cage = [li[j] for j in np.argsort(d[:, k], kind="stable")[:6]]  # the 6 Li of this cage
        best = None
        for cand in cage:
            keep = [i for i in li if i not in removed and i != cand]
            _, dl = get_distances(atoms.positions[keep], cell=atoms.cell, pbc=True)
            energy = round(float(np.sum(1.0 / dl[np.triu_indices(len(keep), 1)])), 6)
            if best is None or (energy, cand) < best:
                best = (energy, cand)
        removed.append(best[1])
    for i in subst:
        sym[i] = "Cl"
    atoms.set_chemical_symbols(sym)
    atoms = _sorted(atoms[[i for i in range(len(atoms)) if i not in removed]])
    x = n_sub / 4
    atoms.info["structure"] = f"Li{6 - x:g}PS{5 - x:g}Cl{1 + x:g}"
    return atoms


#: Held-out "other argyrodites" (name -> builder). Li6PS5Br is not among the defaults: GFN1-xTB
#: (tblite 0.8.0) returns nonsense for it (max force ~460 eV/A, P ~ -120 GPa on the ideal
#: cell); pass ``params["other_argyrodites"]`` to choose.
OTHER_ARGYRODITES = {
    "Li5.5PS4.5Cl1.5": lambda: cl_rich_cell(2),
    "Li5.75PS4.75Cl1.25": lambda: cl_rich_cell(1),
    "Li6PS5Br": lambda: li6ps5br_cell(),
}


def non_argyrodite_cells() -> dict[str, Atoms]:
    """Held-out non-argyrodite structures (<= 52 atoms)."""
    from .corpus import _li3ps4_gamma

    li3ps4 = _li3ps4_gamma().repeat((1, 1, 2))
    li2s = bulk("SLi2", "fluorite", a=5.71, cubic=True).repeat((2, 2, 1))
    licl = bulk("LiCl", "rocksalt", a=5.13, cubic=True).repeat((2, 2, 1))
    out = {"Li3PS4": li3ps4, "Li2S": li2s, "LiCl": licl}
    for name, atoms in out.items():
        atoms.info["structure"] = name
        out[name] = _sorted(atoms)
        out[name].info["structure"] = name
    return out


# --------------------------------------------------------------------------- configurations


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(key)))


def _strain(atoms: Atoms, rng: np.random.Generator, normal: float, shear: float) -> Atoms:
    eps = np.diag(rng.uniform(-normal, normal, 3))
    s = rng.uniform(-shear, shear, 3)
    eps[0, 1] = eps[1, 0] = s[0]
    eps[0, 2] = eps[2, 0] = s[1]
    eps[1, 2] = eps[2, 1] = s[2]
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return out


def _rattle(atoms: Atoms, rng: np.random.Generator, sigma: float, li_factor: float = 1.5) -> Atoms:
    out = atoms.copy()
    sig = np.where(np.array(atoms.get_chemical_symbols()) == "Li", sigma * li_factor, sigma)
    out.positions += rng.normal(size=(len(atoms), 3)) * sig[:, None]
    out.wrap()
    return out


def md_frames(prim: Atoms, temperature: float, p: dict, rng: np.random.Generator) -> list[Atoms]:
    """Langevin MD with GFN1-xTB in the primitive cell; frames after ``md_equil`` steps, every
    ``md_stride`` steps, tiled to the conventional cell."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = prim.copy()
    atoms.calc = xtb.calculator("foundation", 0, 1)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, timestep=float(p["md_timestep_fs"]) * units.fs,
                   temperature_K=temperature, friction=float(p["friction_per_fs"]) / units.fs,
                   fixcm=False, rng=rng)
    frames = []
    for step in range(1, int(p["md_steps"]) + 1):
        try:
            dyn.run(1)
        except Exception as err:  # an SCF failure ends this trajectory
            log.warning("LPSC MD at %.0f K stopped at step %d: %s", temperature, step, err)
            break
        if step > int(p["md_equil"]) and (step - int(p["md_equil"])) % int(p["md_stride"]) == 0:
            snap = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(),
                         cell=atoms.cell, pbc=True)
            snap.info = {"md_step": step}
            frames.append(snap)
    return frames


def _params(params: dict | None) -> dict:
    p = dict(_DEFAULTS)
    p.update(params or {})
    return p


def sample_configs(params: dict | None, seed: int, n: int | None = None) -> list[Atoms]:
    """Unlabelled candidate configurations of the main LPSC set (MD frames, rattles, strains),
    in a deterministic shuffled order; ``n`` defaults to n_train + n_valid + n_test."""
    p = _params(params)
    n = int(n if n is not None else p["n_train"] + p["n_valid"] + p["n_test"])
    fr = p["mode_fractions"]
    total = sum(fr.values())
    n_md = int(round(n * fr.get("md", 0) / total))
    n_strain = int(round(n * fr.get("strain", 0) / total))
    n_rattle = n - n_md - n_strain
    conv = lpsc_cell()
    prim = primitive_cell(conv)
    configs: list[Atoms] = []

    temps = [float(t) for t in p["temperatures"]]
    md_pool: list[Atoms] = []
    if n_md > 0 and temps:
        for k, temp in enumerate(temps):
            rng = _rng(seed, 11, k)
            for frame in md_frames(prim, temp, p, rng):
                tiled = conventional_from_primitive(frame)
                tiled = _rattle(tiled, rng, float(p["decorrelate_sigma"]), li_factor=1.0)
                tiled.info.update({"mode": "md", "temperature": temp, "md_step": frame.info["md_step"]})
                md_pool.append(tiled)
        pick = _rng(seed, 12).permutation(len(md_pool))[:n_md]
        configs += [md_pool[i] for i in sorted(pick)]
        n_rattle += n_md - len(pick)  # not enough frames: more rattles
    rng = _rng(seed, 13)
    for _ in range(n_rattle):
        temp = float(rng.choice(temps)) if temps else 600.0
        sigma = 0.05 * math.sqrt(temp / 600.0)
        c = _strain(conv, rng, 0.01, 0.005)
        c = _rattle(c, rng, sigma)
        c.info.update({"mode": "rattle", "temperature": temp})
        configs.append(c)
    rng = _rng(seed, 14)
    for _ in range(n_strain):
        c = _strain(conv, rng, 0.03, 0.02)
        c = _rattle(c, rng, 0.03)
        c.info.update({"mode": "strain"})
        configs.append(c)
    order = _rng(seed, 15).permutation(len(configs))
    configs = [configs[i] for i in order]
    for c in configs:
        c.info[CONFIG_TYPE_KEY] = "LPSC"
        c.info["structure"] = "Li6PS5Cl"
    return configs


def heldout_configs(kind: str, n: int, seed: int, others: list[str] | None = None
                    ) -> list[Atoms]:
    """Unlabelled held-out configurations: ``kind`` = "other_argyrodites" (the structures named
    in ``others``, default :data:`DEFAULT_OTHER_ARGYRODITES`, in turn) or "non_argyrodites"
    (Li3PS4, Li2S, LiCl in turn); each a thermal rattle (sigma 0.02-0.06 A, Li x1.5) of a cell
    strained by up to 2 %."""
    if kind == "other_argyrodites":
        bases = [OTHER_ARGYRODITES[name]() for name in (others or DEFAULT_OTHER_ARGYRODITES)]
        code = 21
    elif kind == "non_argyrodites":
        bases = list(non_argyrodite_cells().values())
        code = 22
    else:
        raise ValueError(f"unknown held-out set {kind!r}")
    rng = _rng(seed, code)
    out = []
    for i in range(n):
        base = bases[i % len(bases)]
        c = _rattle(_strain(base, rng, 0.02, 0.01), rng, rng.uniform(0.02, 0.06))
        c.info.update(base.info)
        c.info.update({"mode": "rattle", CONFIG_TYPE_KEY: kind})
        out.append(c)
    return out


# --------------------------------------------------------------------------- generation


def _label(configs: list[Atoms], level: str, n_wanted: int, more=None) -> tuple[list[Atoms], int]:
    """Label ``configs`` one by one until ``n_wanted`` succeeded; ``more(k)`` supplies extra
    candidates when too many fail. Returns (labelled, number failed)."""
    out: list[Atoms] = []
    failed = 0
    queue = list(configs)
    while len(out) < n_wanted and queue:
        c = queue.pop(0)
        got = xtb.label([c], level, skip_failed=True)
        if got:
            out.append(got[0])
        else:
            failed += 1
            if not queue and more is not None:
                queue = more(n_wanted - len(out))
    return out, failed


def generate(params: dict | None, seed: int, out_dir: Path | str) -> dict:
    """Write train/valid/test.xyz, isolated_atoms.xyz, heldout_other_argyrodites.xyz,
    heldout_non_argyrodites.xyz and summary.json into ``out_dir``; return
    ``{file: n_configs, ..., "failed": n, "seconds": t, "seconds_per_label": t_label}``."""
    p = _params(params)
    level = p["level"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_main = int(p["n_train"] + p["n_valid"] + p["n_test"])
    cap = int(math.ceil(float(p["max_attempt_factor"]) * n_main))
    candidates = sample_configs(p, seed)
    t_sample = time.perf_counter() - t0
    extra = {"n": 0}

    def more(k):  # extra rattles/strains, from a separate stream, until the cap is reached
        k = min(k, cap - n_main - extra["n"])
        if k <= 0:
            return []
        extra["n"] += k
        q = dict(p, mode_fractions={"rattle": 0.7, "strain": 0.3})
        return sample_configs(q, seed + 7919 * extra["n"], n=k)

    t1 = time.perf_counter()
    main, failed = _label(candidates, level, n_main, more)
    n_labels = len(main) + failed
    n_tr, n_va = int(p["n_train"]), int(p["n_valid"])
    files = {
        "train.xyz": main[:n_tr],
        "valid.xyz": main[n_tr:n_tr + n_va],
        "test.xyz": main[n_tr + n_va:],
    }
    for name, kind in (("heldout_other_argyrodites.xyz", "other_argyrodites"),
                       ("heldout_non_argyrodites.xyz", "non_argyrodites")):
        n_h = int(p["n_heldout"])
        cands = heldout_configs(kind, int(math.ceil(float(p["max_attempt_factor"]) * n_h)), seed,
                                p["other_argyrodites"])
        got, f = _label(cands, level, n_h)
        files[name] = got
        failed += f
        n_labels += len(got) + f
    t_label = time.perf_counter() - t1
    elements = set(HELDOUT_ELEMENTS)
    for configs in files.values():
        for c in configs:
            elements |= set(c.get_chemical_symbols())
    files["isolated_atoms.xyz"] = xtb.isolated_atoms(sorted(elements), level)
    for name, configs in files.items():
        write(out_dir / name, configs, format="extxyz")
    seconds = time.perf_counter() - t0
    summary = {name: len(c) for name, c in files.items()}
    summary.update({
        "failed": failed, "seconds": round(seconds, 1),
        "seconds_md_and_sampling": round(t_sample, 1),
        "seconds_per_label": round(t_label / max(n_labels, 1), 2),
    })
    if len(main) < n_main:
        log.warning("LPSC: only %d of %d main configurations labelled", len(main), n_main)
    stats = {"seed": int(seed), "params": p, "level": xtb.method_for(level), "summary": summary,
             "modes": _count(c.info.get("mode") for c in main)}
    (out_dir / "summary.json").write_text(json.dumps(stats, indent=1, default=str))
    return summary


def _count(items) -> dict:
    out: dict = {}
    for x in items:
        out[str(x)] = out.get(str(x), 0) + 1
    return out
