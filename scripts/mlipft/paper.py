"""The paper world: benchmark files, foundation models and replay sets from the downloaded sources.

The raw sources (``config/sources/paper.yaml``) are fetched by :mod:`mlipft.download` and turned
into canonical extxyz (``REF_*`` keys, eV, Angstrom) by :mod:`mlipft.convert`; this module builds
what the training and evaluation rules consume from those converted files:

``benchmark RECIPE``
    the files of one benchmark (``train.xyz``, ``train_rp.xyz``, ``valid.xyz`` ..., see
    :data:`RECIPES`), written atomically into one directory, plus a JSON summary;
``foundation``
    a downloaded foundation model put at the workflow's path, in the configured dtype (a
    float32 checkpoint is cast to float64 and vice versa: mace-torch 0.3.16 cannot fine-tune a
    model whose dtype differs from ``--default_dtype``, facts.md section 2);
``canonicalize``
    a replay file with whatever label keys it has (``energy``/``forces``/``stress``,
    ``REF_*``, ...) rewritten with the canonical keys, so that ``--pt_train_file`` is read with
    the same ``--energy_key`` as the target data.

SN2 (water-ice-group/organic_neb_mace, ``02_model_for_sn2_nebs``)
------------------------------------------------------------------
``r-mp2.xyz``, ``p-mp2.xyz`` and ``ts-mp2.xyz`` are aligned by index: frame *i* of each is the
reactant, product and transition state of one reaction (``make_sets.py`` of that repository
relies on it). The reactant and product rows carry ``rxn-id``, the transition states do not;
all three carry the substituents ``R1``..``R4``, ``lg`` and ``nu``, which are checked to agree.
A reaction is named ``rxn<rxn-id>`` (e.g. ``rxn17``: R4=CH3, Cl- leaving, F- attacking).

Two recipes build the benchmark:

``sn2_triplets`` (default)
    reactions split into train / valid / test by a seeded permutation; the NEB reactions of the
    figures are always put in the test split (never trained on). ``train`` = r + ts + p of the
    training reactions, ``train_rp`` = r + p only (the paper's "no transition-state region"
    training set, Fig. 6c), likewise ``valid``/``valid_rp``; ``test`` = r + ts + p of the test
    reactions.
``sn2_archive``
    the paper's own splits from its supplementary archive (``sn2/data/{train,valid,test}.xyz``;
    60 reaction structures each, train with 5 extra IsolatedAtom rows). ``train_rp``/``valid_rp``
    drop the rows that are transition states, recognised by their geometry in ``ts-mp2.xyz``.

Both write ``isolated_atoms.xyz`` (``e0s.xyz``: MP2 isolated atoms) and ``reference_neb.xyz``.
No public source holds MP2 nudged-elastic-band *paths* of these reactions (organic_neb_mace's
``nebs/neb-*.xyz`` are MACE bands whose ``mp2_energy`` is the first image's, copied; its one
ab-initio band, ``03_ethyl_cl_f_al/ab-initio-neb``, is DFT), so the reference profile of a
reaction is the three MP2 points that do exist: image 0 the reactant, image 1 the transition
state, image 2 the product. The model NEB (``mlipft.analysis.neb``) runs between the reference end
points, so its barrier is compared with the MP2 barrier E(ts) - E(r) of the same reaction.

Aqueous NaCl (niamhon/nacl-water, MP2): recipe ``nacl_runner``
--------------------------------------------------------------
One input, ``data``: a RuNNer ``input.data`` file converted by :mod:`mlipft.convert` (Bohr,
Hartree -> Angstrom, eV), e.g. ``data-sets/MP2/BP-NNP/gen2.data`` (164 configurations of 184
atoms in 11.8-13.2 A cubic cells: 2, 3, 4 or 6 NaCl pairs in 60 to 52 waters). The frames are
split into ``n_train`` / ``n_valid`` / ``n_test`` by a seeded permutation stratified by
composition, so every split holds every concentration in proportion (``n_train`` null: every
frame left over). ``md_start.xyz`` is one test frame without its labels, deuterated, carrying the
MD and RDF protocol (``md_temperature_K``, ``md_timestep_fs``, ``md_friction_per_fs``,
``md_hydrogen_mass_amu``, ``rdf_r_max``, ``rdf_nbins``) that :mod:`mlipft.analysis.md` and
:mod:`mlipft.analysis.rdf` read; the defaults are the original C-NNP simulations' (that
repository's ``input/nvt.inp``: NVT, 300 K, 1 fs, H mass 2 amu, CSVR with a 200 fs time constant,
here Langevin with friction 1/200 fs). No reference RDF file is published: the reference liquid
structure is a workflow product (a reference MLIP trained on the MP2 data, and its long MD).

Ice polymorphs (venkatkapil24/fine-tuning-MLPs-ice-polymorphs, DFT): recipe ``ice_phases``
------------------------------------------------------------------------------------------
Inputs ``train_<phase>`` and ``valid_<phase>`` for Ih, II, VI and VIII: upstream's
``training-set-energy-forces-stress-<N>.extxyz`` (N = 025 ... 400 configurations; the sizes are
nested prefixes of one another) and ``validation-set-energy-forces-stress.extxyz`` (100
configurations, none in the training files), ``REF_energy`` / ``REF_forces`` / ``REF_stress``.
Upstream has no test set: its own fine-tunes validate on a fraction of the training file and test
on the validation file. Here ``train_<phase>`` is the first ``n_train`` frames of the training
file, and the validation file is split (seeded: :func:`seeded_order`) into ``valid_<phase>`` (``n_valid``)
and ``test_<phase>`` (``n_test``); ``train``/``valid``/``test`` are the four phases together
(the single-phase and combined training sets of Fig. 5, 18 and 19). Frames carry ``phase`` and
``config_type`` (the phase). Upstream's VIII files are byte-identical to its VI files (the same
git blobs at ea66f0d; 80 waters in a 2x2x2 ice-VI cell): a structure found in two phases stops the
build naming both unless ``shared_frames: warn``.

Isolated atoms (NaCl, ice)
--------------------------
Neither source publishes isolated-atom energies at its level of theory (upstream's own
from-scratch ice models use ``--E0s average``), so both recipes write ``isolated_atoms.xyz`` as a
stand-in: per-element least-squares energies of the training split (mace-torch's
``compute_average_E0s``), ``config_type=IsolatedAtom`` rows marked ``e0_source=least_squares``.
The fine-tunes' ``estimated`` E0s need no isolated atoms; the ``isolated`` E0 mode (the
from-scratch baseline, the reference MLIP) then means mace's ``average`` E0s of the full training
split, and mlipft.validate_data's energy bounds check binding energies against that fit.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from .io import atomic_path, read_configs, write_atomic, write_json
from .keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY

log = logging.getLogger(__name__)

SUBSTITUENT_KEYS = ("R1", "R2", "R3", "R4", "lg", "nu")
REACTION_ID_KEY = "rxn-id"
REACTION_RE = re.compile(r"^rxn(\d+)$")
GEOMETRY_DECIMALS = 4  # Angstrom; rows of the archive are copies of the organic_neb_mace frames

SN2_FILES = ("train", "train_rp", "valid", "valid_rp", "test", "isolated_atoms", "reference_neb")
NACL_FILES = ("train", "valid", "test", "isolated_atoms", "md_start")
ICE_PHASES = ("Ih", "II", "VI", "VIII")
ICE_FILES = tuple(f"{kind}{suffix}" for kind in ("train", "valid", "test")
                  for suffix in ("", *(f"_{p}" for p in ICE_PHASES))) + ("isolated_atoms",)
# recipe -> (roles of its converted input files, files it writes (<name>.xyz), default parameters)
RECIPES = {
    "sn2_triplets": {
        "roles": ("reactants", "products", "transition_states", "isolated"),
        "files": SN2_FILES,
        "defaults": {"n_train": 20, "n_valid": 20, "n_test": 20},
    },
    "sn2_archive": {
        "roles": ("train", "valid", "test", "reactants", "products", "transition_states", "isolated"),
        "files": SN2_FILES,
        "defaults": {},
    },
    "nacl_runner": {
        "roles": ("data",),
        "files": NACL_FILES,
        # n_train null: every frame not in valid or test. The MD protocol is that of the original
        # C-NNP simulations (niamhon/nacl-water input/nvt.inp: NVT 300 K, 1 fs, H mass 2.0 amu,
        # CSVR thermostat with a 200 fs time constant; Langevin friction 1/200 fs is our analogue).
        "defaults": {"n_train": None, "n_valid": 16, "n_test": 32, "md_start_frame": 0,
                     "md_temperature_K": 300.0, "md_timestep_fs": 1.0, "md_friction_per_fs": 0.005,
                     "md_hydrogen_mass_amu": 2.0, "rdf_r_max": None, "rdf_bin_width": 0.1},
    },
    "ice_phases": {
        "roles": tuple(f"{kind}_{p}" for p in ICE_PHASES for kind in ("train", "valid")),
        "files": ICE_FILES,
        # per phase: n_train null = every frame of the training file; n_valid + n_test frames of the
        # upstream validation file; frames shared by two phases stop the build (shared_frames: error)
        # unless shared_frames is warn
        "defaults": {"n_train": None, "n_valid": 50, "n_test": 50, "shared_frames": "error"},
    },
}


class PaperDataError(ValueError):
    """Converted source files that do not fit together; the message names the file and frame."""


# ---------------------------------------------------------------------------------------------
# SN2 reactions


def reaction_name(rxn_id: int) -> str:
    return f"rxn{int(rxn_id)}"


def parse_reaction(name: str) -> int:
    """``rxn17`` -> 17; anything else is a ValueError naming the expected form."""
    match = REACTION_RE.match(str(name))
    if not match:
        raise ValueError(f"SN2 reaction {name!r} is not of the form rxn<rxn-id> (e.g. rxn17)")
    return int(match.group(1))


def _substituents(atoms: Atoms) -> tuple:
    return tuple(atoms.info.get(k) for k in SUBSTITUENT_KEYS)


def reaction_triplets(reactants: list[Atoms], products: list[Atoms],
                      transition_states: list[Atoms], where: str = "") -> dict[str, tuple[Atoms, Atoms, Atoms]]:
    """``{rxn<id>: (reactant, ts, product)}`` from the three index-aligned files.

    Raises :class:`PaperDataError` when the files differ in length, or frame *i* of the three
    differs in its reaction id (r, p), substituents or atom order.
    """
    if not len(reactants) == len(products) == len(transition_states):
        raise PaperDataError(f"{where}: {len(reactants)} reactants, {len(products)} products and "
                             f"{len(transition_states)} transition states; the files must be aligned by index")
    out: dict[str, tuple[Atoms, Atoms, Atoms]] = {}
    for i, (r, p, ts) in enumerate(zip(reactants, products, transition_states)):
        if REACTION_ID_KEY not in r.info or r.info.get(REACTION_ID_KEY) != p.info.get(REACTION_ID_KEY):
            raise PaperDataError(f"{where}: frame {i}: reactant rxn-id {r.info.get(REACTION_ID_KEY)!r} and "
                                 f"product rxn-id {p.info.get(REACTION_ID_KEY)!r} differ or are missing")
        if not _substituents(r) == _substituents(p) == _substituents(ts):
            raise PaperDataError(f"{where}: frame {i}: substituents {SUBSTITUENT_KEYS} differ between reactant "
                                 f"{_substituents(r)}, transition state {_substituents(ts)} and product {_substituents(p)}")
        if not list(r.numbers) == list(p.numbers) == list(ts.numbers):
            raise PaperDataError(f"{where}: frame {i}: reactant, transition state and product have "
                                 f"different atoms or atom order")
        name = reaction_name(r.info[REACTION_ID_KEY])
        if name in out:
            raise PaperDataError(f"{where}: frame {i}: duplicate reaction {name}")
        ts = ts.copy()
        ts.info[REACTION_ID_KEY] = r.info[REACTION_ID_KEY]
        out[name] = (r, ts, p)
    return out


def _tag(atoms: Atoms, region: str, reaction: str) -> Atoms:
    a = atoms.copy()
    a.info[CONFIG_TYPE_KEY] = region
    a.info["reaction"] = reaction
    return a


def split_reactions(names: Sequence[str], n_train: int, n_valid: int, n_test: int, seed: int,
                    held_out: Sequence[str] = ()) -> dict[str, list[str]]:
    """Seeded split of reaction names; ``held_out`` reactions are always in ``test``.

    ``test`` holds the held-out reactions plus random ones up to ``n_test`` in all; ``train``
    and ``valid`` are drawn from the rest. Each list is sorted by reaction id.
    """
    names = sorted(names, key=parse_reaction)
    missing = sorted(set(held_out) - set(names), key=parse_reaction)
    if missing:
        raise PaperDataError(f"NEB reactions {missing} are not in the SN2 data ({len(names)} reactions)")
    pool = [n for n in names if n not in set(held_out)]
    n_extra_test = max(0, n_test - len(held_out))
    if n_train < 1 or n_valid < 1 or n_train + n_valid + n_extra_test > len(pool):
        raise PaperDataError(f"cannot split {len(names)} reactions into {n_train} train, {n_valid} valid and "
                             f"{n_test} test reactions ({len(held_out)} of them held out for NEB)")
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    key = parse_reaction
    return {
        "train": sorted(order[:n_train], key=key),
        "valid": sorted(order[n_train:n_train + n_valid], key=key),
        "test": sorted(list(held_out) + order[n_train + n_valid:n_train + n_valid + n_extra_test], key=key),
    }


def reference_neb(triplets: dict[str, tuple[Atoms, Atoms, Atoms]], reactions: Sequence[str]) -> list[Atoms]:
    """Three-image MP2 reference profiles (r, ts, p) with ``reaction``, ``image`` and REF_energy."""
    out = []
    for reaction in reactions:
        if reaction not in triplets:
            raise PaperDataError(f"no reactant/transition-state/product triplet for NEB reaction {reaction}")
        for image, atoms in enumerate(triplets[reaction]):
            a = atoms.copy()
            a.info["reaction"] = reaction
            a.info["image"] = image
            out.append(a)
    return out


def build_sn2_triplets(inputs: dict[str, str], params: dict, seed: int, neb_reactions: Sequence[str]) -> dict:
    """The SN2 benchmark from the organic_neb_mace r/p/ts files: ``{file name: [Atoms]}``."""
    p = {**RECIPES["sn2_triplets"]["defaults"], **params}
    triplets = reaction_triplets(read_configs(inputs["reactants"]), read_configs(inputs["products"]),
                                 read_configs(inputs["transition_states"]),
                                 where=f"{inputs['reactants']}, {inputs['products']}, {inputs['transition_states']}")
    split = split_reactions(list(triplets), int(p["n_train"]), int(p["n_valid"]), int(p["n_test"]), seed,
                            held_out=neb_reactions)

    def frames(names, regions=("r", "ts", "p")):
        index = {"r": 0, "ts": 1, "p": 2}
        return [_tag(triplets[n][index[reg]], reg, n) for n in names for reg in regions]

    files = {
        "train": frames(split["train"]), "train_rp": frames(split["train"], ("r", "p")),
        "valid": frames(split["valid"]), "valid_rp": frames(split["valid"], ("r", "p")),
        "test": frames(split["test"]),
        "isolated_atoms": isolated_rows(read_configs(inputs["isolated"]), inputs["isolated"]),
        "reference_neb": reference_neb(triplets, neb_reactions),
    }
    return {"files": files, "reactions": split}


def isolated_rows(configs: list[Atoms], where: str) -> list[Atoms]:
    rows = [a for a in configs if a.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM and len(a) == 1]
    if not rows:
        raise PaperDataError(f"{where}: no single-atom config_type={ISOLATED_ATOM} rows")
    return rows


def _geometry_key(atoms: Atoms) -> tuple:
    return tuple(atoms.numbers.tolist()), tuple(np.round(atoms.positions, GEOMETRY_DECIMALS).ravel().tolist())


def build_sn2_archive(inputs: dict[str, str], params: dict, seed: int, neb_reactions: Sequence[str]) -> dict:
    """The paper's own SN2 splits (supplementary archive); r/p-only sets without the TS rows."""
    triplets = reaction_triplets(read_configs(inputs["reactants"]), read_configs(inputs["products"]),
                                 read_configs(inputs["transition_states"]),
                                 where=f"{inputs['reactants']}, {inputs['products']}, {inputs['transition_states']}")
    ts_geometries = {_geometry_key(t[1]) for t in triplets.values()}
    sets = {}
    for name in ("train", "valid", "test"):
        sets[name] = [a for a in read_configs(inputs[name]) if a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM]
        if not sets[name]:
            raise PaperDataError(f"{inputs[name]}: no reaction structures")
    rp = {}
    for name in ("train", "valid"):
        rp[name] = [a for a in sets[name] if _geometry_key(a) not in ts_geometries]
        if len(rp[name]) == len(sets[name]):
            raise PaperDataError(f"{inputs[name]}: no row matches a transition state of {inputs['transition_states']} "
                                 f"(to {GEOMETRY_DECIMALS} decimals); cannot build {name}_rp")
    trained = {_geometry_key(a) for a in sets["train"]}
    for reaction in neb_reactions:
        if reaction in triplets and any(_geometry_key(a) in trained for a in triplets[reaction]):
            raise PaperDataError(f"NEB reaction {reaction} is in the training set {inputs['train']}; "
                                 f"choose reactions of the test set")
    files = {
        "train": sets["train"], "train_rp": rp["train"], "valid": sets["valid"], "valid_rp": rp["valid"],
        "test": sets["test"],
        "isolated_atoms": isolated_rows(read_configs(inputs["isolated"]), inputs["isolated"]),
        "reference_neb": reference_neb(triplets, neb_reactions),
    }
    return {"files": files, "reactions": {}}


# ---------------------------------------------------------------------------------------------
# checks and helpers shared by the periodic benchmarks (NaCl, ice)


def check_labelled(frames: Sequence[Atoms], where: str, stress: bool = False) -> None:
    """Every frame a labelled, periodic configuration: ``REF_energy`` (a finite number),
    ``REF_forces`` of shape (n_atoms, 3), a cell spanning a volume with full periodicity and, with
    ``stress``, a 3x3 (or Voigt-6) ``REF_stress``. :class:`PaperDataError` names the file and frame."""
    if not frames:
        raise PaperDataError(f"{where}: no frames")
    for i, atoms in enumerate(frames):
        info = atoms.info
        if ENERGY_KEY not in info:
            raise PaperDataError(f"{where}: frame {i}: no {ENERGY_KEY} (info keys {sorted(info)})")
        try:
            energy = float(info[ENERGY_KEY])
        except (TypeError, ValueError):
            raise PaperDataError(f"{where}: frame {i}: {ENERGY_KEY} is not a number: {info[ENERGY_KEY]!r}") from None
        if not np.isfinite(energy):
            raise PaperDataError(f"{where}: frame {i}: {ENERGY_KEY} is not finite")
        forces = atoms.arrays.get(FORCES_KEY)
        if forces is None or np.shape(forces) != (len(atoms), 3):
            raise PaperDataError(f"{where}: frame {i}: no {FORCES_KEY} of shape ({len(atoms)}, 3) "
                                 f"(arrays {sorted(set(atoms.arrays) - {'numbers', 'positions'})})")
        if not atoms.pbc.all() or atoms.cell.rank < 3 or abs(atoms.cell.volume) <= 0.0:
            raise PaperDataError(f"{where}: frame {i}: not periodic with a cell (pbc {atoms.pbc.tolist()}, "
                                 f"cell volume {abs(atoms.cell.volume):g} A^3)")
        if stress:
            value = info.get(STRESS_KEY)
            if value is None or np.shape(value) not in ((3, 3), (6,), (9,)):
                raise PaperDataError(f"{where}: frame {i}: no {STRESS_KEY} (3x3 or Voigt-6; "
                                     f"found {None if value is None else np.shape(value)})")


def frame_key(atoms: Atoms) -> tuple:
    """Identity of a structure: species, positions and cell (to GEOMETRY_DECIMALS Angstrom)."""
    return (*_geometry_key(atoms), tuple(np.round(np.asarray(atoms.cell), GEOMETRY_DECIMALS).ravel().tolist()))


def seeded_order(frames: Sequence[Atoms], seed: int) -> list[int]:
    """Frame indices in a seeded order that depends on each frame's structure, not on its
    position in the file: sorted by sha256 of the seed and :func:`frame_key`. The same structure
    always lands at the same rank, so two copies of one file split alike (their test frames are
    the same, never one copy's validation frames)."""
    import hashlib

    ranks = [hashlib.sha256(f"{int(seed)}:{frame_key(a)!r}".encode()).hexdigest() for a in frames]
    return sorted(range(len(frames)), key=lambda i: (ranks[i], i))


def composition(atoms: Atoms) -> tuple:
    """``(("Cl", 2), ("H", 120), ...)``: element counts, sorted by symbol."""
    symbols = atoms.get_chemical_symbols()
    return tuple(sorted((s, symbols.count(s)) for s in set(symbols)))


def least_squares_e0s(frames: Sequence[Atoms], where: str) -> dict[str, float]:
    """Per-element energies fitted to total energies by least squares, as mace-torch's
    ``compute_average_E0s`` (``numpy.linalg.lstsq``; the minimum-norm solution when the element
    counts are collinear, e.g. water only: then only the per-formula-unit sum is determined)."""
    symbols = sorted({s for a in frames for s in a.get_chemical_symbols()})
    if not symbols:
        raise PaperDataError(f"{where}: no frames to fit E0s on")
    counts = np.array([[a.get_chemical_symbols().count(s) for s in symbols] for a in frames], float)
    energies = np.array([float(a.info[ENERGY_KEY]) for a in frames])
    e0 = np.linalg.lstsq(counts, energies, rcond=None)[0]
    return {s: float(e) for s, e in zip(symbols, e0)}


E0_STANDIN_NOTE = ("least-squares per-element energies of the training split (mace-torch's average E0s), "
                   "NOT isolated-atom energies: the source holds none")


def e0_standin_rows(e0s: dict[str, float], level: str) -> list[Atoms]:
    """``isolated_atoms.xyz`` of a benchmark whose source has no isolated-atom energies: one
    ``config_type=IsolatedAtom`` row per element carrying the least-squares E0 (:func:`least_squares_e0s`),
    marked ``e0_source=least_squares`` so that no reader takes it for an isolated-atom calculation.
    What reads the file (mlipft.e0s ``isolated`` mode: the from-scratch baseline and the reference
    MLIP; mlipft.validate_data's energy bounds) then gets mace's ``--E0s average`` of the full
    training split, the E0s the upstream from-scratch models of these data sets used."""
    rows = []
    for symbol, energy in sorted(e0s.items()):
        a = Atoms(symbol, pbc=False)
        a.info[CONFIG_TYPE_KEY] = ISOLATED_ATOM
        a.info[ENERGY_KEY] = energy
        a.info["e0_source"] = "least_squares"
        a.info["level"] = level
        a.arrays[FORCES_KEY] = np.zeros((1, 3))
        rows.append(a)
    return rows


def _largest_remainder(total: int, sizes: Sequence[int]) -> list[int]:
    """``total`` split over groups in proportion to ``sizes`` (largest remainder; never above a size)."""
    n = sum(sizes)
    if total > n:
        raise ValueError(f"{total} > {n}")
    quotas = [total * s / n for s in sizes] if n else [0.0] * len(sizes)
    alloc = [min(int(np.floor(q)), s) for q, s in zip(quotas, sizes)]
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - np.floor(quotas[i])), i))
    while sum(alloc) < total:
        for i in order:
            if sum(alloc) < total and alloc[i] < sizes[i]:
                alloc[i] += 1
    return alloc


def _energy_range(frames: Sequence[Atoms]) -> list[float]:
    per_atom = [float(a.info[ENERGY_KEY]) / len(a) for a in frames]
    return [round(min(per_atom), 6), round(max(per_atom), 6)] if per_atom else []


def _stamp(atoms: Atoms, **info) -> Atoms:
    a = atoms.copy()
    a.calc = None
    a.info.update(info)
    return a


# ---------------------------------------------------------------------------------------------
# aqueous NaCl (niamhon/nacl-water, MP2, RuNNer input.data converted by mlipft.convert runner)


def split_stratified(groups: dict, n_valid: int, n_test: int, n_train: int | None, seed: int,
                     where: str) -> dict[str, list[int]]:
    """Seeded train / valid / test split of frame indices, stratified by group (``{key: [index]}``):
    every split gets each group in proportion to its size (largest remainder). ``n_train`` None:
    every frame left over. Lists are sorted."""
    keys = sorted(groups)
    sizes = [len(groups[k]) for k in keys]
    total = sum(sizes)
    rest = total - n_valid - n_test
    if n_valid < 1 or n_test < 1 or rest < 1 or (n_train is not None and not 1 <= n_train <= rest):
        raise PaperDataError(f"{where}: cannot split {total} frames into {n_train if n_train is not None else 'the rest'} "
                             f"train, {n_valid} valid and {n_test} test frames")
    rng = np.random.default_rng(seed)
    order = {k: [groups[k][i] for i in rng.permutation(len(groups[k]))] for k in keys}
    test = _largest_remainder(n_test, sizes)
    valid = _largest_remainder(n_valid, [s - t for s, t in zip(sizes, test)])
    left = [s - t - v for s, t, v in zip(sizes, test, valid)]
    train = left if n_train is None else _largest_remainder(n_train, left)
    out = {"train": [], "valid": [], "test": []}
    for k, t, v, tr in zip(keys, test, valid, train):
        out["test"] += order[k][:t]
        out["valid"] += order[k][t:t + v]
        out["train"] += order[k][t + v:t + v + tr]
    return {name: sorted(idx) for name, idx in out.items()}


def md_start_frame(atoms: Atoms, params: dict, where: str) -> Atoms:
    """The MD start structure: the frame without its labels, hydrogen at ``md_hydrogen_mass_amu``
    (the original simulations are deuterated), and the MD and RDF protocol in ``info``
    (``md_temperature_K``, ``md_timestep_fs``, ``md_friction_per_fs``, ``md_hydrogen_mass_amu``,
    ``rdf_r_max``: half the smallest cell width floored to 0.05 A unless given, ``rdf_nbins``:
    ``rdf_r_max / rdf_bin_width``), read by mlipft.analysis.md and mlipft.analysis.rdf."""
    start = atoms.copy()
    start.calc = None
    for key in [k for k in start.info if k.startswith("REF_")]:
        del start.info[key]
    for key in [k for k in start.arrays if k.startswith("REF_")]:
        del start.arrays[key]
    masses = start.get_masses()
    masses[start.numbers == 1] = float(params["md_hydrogen_mass_amu"])
    start.set_masses(masses)
    cell = np.asarray(start.cell)
    widths = [abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
              for i in range(3)]
    limit = min(widths) / 2.0
    r_max = params["rdf_r_max"]
    r_max = round(float(np.floor(limit / 0.05 + 1e-9) * 0.05) if r_max is None else float(r_max), 6)
    if not 0.0 < r_max <= limit + 1e-9:
        raise PaperDataError(f"{where}: rdf_r_max {r_max} A is outside (0, {limit:.3f}] A, half the smallest "
                             f"cell width of the MD start frame")
    width = float(params["rdf_bin_width"])
    if width <= 0.0:
        raise PaperDataError(f"{where}: rdf_bin_width must be positive, got {width}")
    start.info.update({
        "md_temperature_K": float(params["md_temperature_K"]), "md_timestep_fs": float(params["md_timestep_fs"]),
        "md_friction_per_fs": float(params["md_friction_per_fs"]),
        "md_hydrogen_mass_amu": float(params["md_hydrogen_mass_amu"]),
        "rdf_r_max": r_max, "rdf_nbins": max(1, int(np.floor(r_max / width + 0.5 + 1e-9))),
    })
    return start


def build_nacl_runner(inputs: dict[str, str], params: dict, seed: int, neb_reactions: Sequence[str]) -> dict:
    """Aqueous NaCl from the converted MP2 RuNNer data: a seeded split stratified by composition
    (the number of ion pairs), least-squares stand-in E0s (the data set has no isolated atoms) and
    the MD start structure (frame ``md_start_frame`` of the test split)."""
    p = {**RECIPES["nacl_runner"]["defaults"], **params}
    where = inputs["data"]
    frames = read_configs(where)
    check_labelled(frames, where)
    groups: dict[tuple, list[int]] = {}
    seen: dict[tuple, int] = {}
    for i, atoms in enumerate(frames):
        key = frame_key(atoms)
        if key in seen:
            raise PaperDataError(f"{where}: frame {i} repeats frame {seen[key]} (same species, positions and cell)")
        seen[key] = i
        groups.setdefault(composition(atoms), []).append(i)
    n_train = None if p["n_train"] is None else int(p["n_train"])
    split = split_stratified(groups, int(p["n_valid"]), int(p["n_test"]), n_train, seed, where)
    sets = {name: [_stamp(frames[i], source_frame=i) for i in idx] for name, idx in split.items()}
    e0s = least_squares_e0s(sets["train"], f"{where} (train split)")
    k = int(p["md_start_frame"])
    if not 0 <= k < len(sets["test"]):
        raise PaperDataError(f"{where}: md_start_frame {k} is not a frame of the {len(sets['test'])}-frame test split")
    start = md_start_frame(sets["test"][k], p, f"{where} frame {split['test'][k]}")
    files = {**sets, "isolated_atoms": e0_standin_rows(e0s, "MP2"), "md_start": [start]}
    summary = {
        "source_frames": split,
        "compositions": {name: {"".join(f"{s}{n}" for s, n in c): sum(1 for i in idx if composition(frames[i]) == c)
                                for c in sorted(groups)} for name, idx in split.items()},
        "energy_per_atom_eV": {name: _energy_range(sets[name]) for name in sets},
        "isolated_atoms": {"note": E0_STANDIN_NOTE, "e0s_eV": e0s},
        "md_start": {"test_frame": k, "source_frame": split["test"][k],
                     **{key: start.info[key] for key in ("md_temperature_K", "md_timestep_fs", "md_friction_per_fs",
                                                         "md_hydrogen_mass_amu", "rdf_r_max", "rdf_nbins")}},
    }
    return {"files": files, "reactions": {}, "summary": summary}


# ---------------------------------------------------------------------------------------------
# ice polymorphs (venkatkapil24/fine-tuning-MLPs-ice-polymorphs, DFT; REF_* keys, stress)


def build_ice_phases(inputs: dict[str, str], params: dict, seed: int, neb_reactions: Sequence[str]) -> dict:
    """Ice Ih / II / VI / VIII: per phase, the first ``n_train`` frames of its training file
    (upstream's size-labelled files are nested prefixes) and a seeded split of its validation file
    into ``n_valid`` validation and ``n_test`` test frames; the combined ``train``/``valid``/``test``
    are the per-phase sets together. Frames are tagged ``phase`` and ``config_type`` (the phase).
    A structure found in two phases' inputs stops the build (``shared_frames: error``, naming both)
    or is reported (``warn``); one in a phase's training and validation files always stops it."""
    p = {**RECIPES["ice_phases"]["defaults"], **params}
    if p["shared_frames"] not in ("error", "warn"):
        raise PaperDataError(f"ice_phases: shared_frames must be error or warn, got {p['shared_frames']!r}")
    n_valid, n_test = int(p["n_valid"]), int(p["n_test"])
    if n_valid < 1 or n_test < 1:
        raise PaperDataError(f"ice_phases: n_valid and n_test must be >= 1, got {n_valid} and {n_test}")
    raw = {}
    owner: dict[tuple, tuple[str, str, int]] = {}  # frame key -> (phase, role, frame)
    shared: dict[str, str] = {}  # "VI/VIII" -> the first shared frame, named
    report: dict[str, int] = {}  # "VI/VIII" -> how many frames
    for phase in ICE_PHASES:
        for kind in ("train", "valid"):
            role = f"{kind}_{phase}"
            path = inputs[role]
            frames = read_configs(path)
            check_labelled(frames, path, stress=True)
            raw[role] = frames
            for i, atoms in enumerate(frames):
                key = frame_key(atoms)
                if key not in owner:
                    owner[key] = (phase, role, i)
                    continue
                other_phase, other_role, j = owner[key]
                if other_phase == phase:
                    raise PaperDataError(f"{path}: frame {i} repeats frame {j} of {inputs[other_role]} "
                                         f"({'within one file' if other_role == role else 'training frame in the validation file'})")
                pair = f"{other_phase}/{phase}"
                shared.setdefault(pair, f"{inputs[other_role]} frame {j} = {path} frame {i}")
                report[pair] = report.get(pair, 0) + 1
    if shared:
        detail = "; ".join(f"{pair}: {n} frame(s), first {shared[pair]}" for pair, n in report.items())
        message = (f"ice phases share identical structures ({detail}): a phase's data are another's copy "
                   f"(upstream @ea66f0d stores dft_data/VIII/* as the same git blobs as dft_data/VI/*); "
                   f"cross-phase errors would compare a phase with itself. Point the sources at distinct "
                   f"data, or set shared_frames: warn in the scale's ice block to build anyway")
        if p["shared_frames"] == "error":
            raise PaperDataError(message)
        log.warning("%s", message)
    files: dict[str, list[Atoms]] = {}
    summary = {"phases": {}, "shared_frames": report}
    for phase in ICE_PHASES:
        train_path, valid_path = inputs[f"train_{phase}"], inputs[f"valid_{phase}"]
        train_raw, valid_raw = raw[f"train_{phase}"], raw[f"valid_{phase}"]
        n_train = len(train_raw) if p["n_train"] is None else int(p["n_train"])
        if not 1 <= n_train <= len(train_raw):
            raise PaperDataError(f"{train_path}: n_train {n_train} is not between 1 and its {len(train_raw)} frames")
        if n_valid + n_test > len(valid_raw):
            raise PaperDataError(f"{valid_path}: {len(valid_raw)} frames cannot give {n_valid} valid and {n_test} test frames")
        order = seeded_order(valid_raw, seed)
        idx_test, idx_valid = sorted(order[:n_test]), sorted(order[n_test:n_test + n_valid])

        def tag(atoms, i):
            return _stamp(atoms, phase=phase, **{CONFIG_TYPE_KEY: phase}, source_frame=i)

        files[f"train_{phase}"] = [tag(a, i) for i, a in enumerate(train_raw[:n_train])]
        files[f"valid_{phase}"] = [tag(valid_raw[i], i) for i in idx_valid]
        files[f"test_{phase}"] = [tag(valid_raw[i], i) for i in idx_test]
        summary["phases"][phase] = {
            "atoms": sorted({len(a) for a in train_raw}), "train_frames": [0, n_train],
            "valid_source_frames": idx_valid, "test_source_frames": idx_test,
            "energy_per_atom_eV": {kind: _energy_range(files[f"{kind}_{phase}"]) for kind in ("train", "valid", "test")},
        }
    for kind in ("train", "valid", "test"):
        files[kind] = [a for phase in ICE_PHASES for a in files[f"{kind}_{phase}"]]
    e0s = least_squares_e0s(files["train"], "ice training sets")
    files["isolated_atoms"] = e0_standin_rows(e0s, "DFT")
    summary["isolated_atoms"] = {"note": E0_STANDIN_NOTE, "e0s_eV": e0s}
    return {"files": files, "reactions": {}, "summary": summary}


BUILDERS = {"sn2_triplets": build_sn2_triplets, "sn2_archive": build_sn2_archive,
            "nacl_runner": build_nacl_runner, "ice_phases": build_ice_phases}


def build_benchmark(recipe: str, inputs: dict[str, str], params: dict, seed: int,
                    neb_reactions: Sequence[str], out_dir: str | Path) -> dict:
    """Build and write one benchmark's files into ``out_dir``; returns the summary."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {sorted(RECIPES)}")
    wanted = set(RECIPES[recipe]["roles"])
    if set(inputs) != wanted:
        raise ValueError(f"recipe {recipe} needs the inputs {sorted(wanted)}, got {sorted(inputs)}")
    for reaction in neb_reactions:
        parse_reaction(reaction)
    built = BUILDERS[recipe](inputs, params, seed, list(neb_reactions))
    out_dir = Path(out_dir)
    for name in RECIPES[recipe]["files"]:
        write_atomic(out_dir / f"{name}.xyz", built["files"][name])
    return {"recipe": recipe, "files": {n: len(built["files"][n]) for n in RECIPES[recipe]["files"]},
            "reactions": built["reactions"], "neb_reactions": list(neb_reactions), "seed": seed, "params": params,
            **built.get("summary", {})}


# ---------------------------------------------------------------------------------------------
# foundation models and replay files


def install_foundation(source: str | Path, output: str | Path, dtype: str = "float64") -> dict:
    """Put a downloaded model at ``output`` in ``dtype``; a copy when it already has that dtype."""
    import torch

    target = {"float32": torch.float32, "float64": torch.float64}[dtype]
    model = torch.load(str(source), map_location="cpu", weights_only=False)
    params = list(model.parameters())
    current = params[0].dtype if params else target
    with atomic_path(output) as tmp:
        if current == target:
            shutil.copyfile(source, tmp)
        else:
            torch.save(model.to(target), tmp)
    info = {"source": str(source), "source_dtype": str(current).replace("torch.", ""), "dtype": dtype,
            "cast": current != target}
    log.info("foundation %s -> %s: %s", source, output, info)
    return info


# label keys found in replay / pretraining files, tried in this order
LABEL_KEYS = (
    (ENERGY_KEY, FORCES_KEY, STRESS_KEY),
    ("energy", "forces", "stress"),
    ("mp2_energy", "mp2_forces", None),
    ("ref_energy", "ref_forces", "stress"),
)


def detect_label_keys(path: str | Path) -> tuple[str, str, str | None]:
    """The (energy, forces, stress) keys of the first frame of an extxyz file."""
    import ase.io

    first = ase.io.read(path, index=0, format="extxyz")
    results = first.calc.results if first.calc is not None else {}
    for energy, forces, stress in LABEL_KEYS:
        if any(energy in d for d in (first.info, first.arrays, results)):
            return energy, forces, stress
    raise PaperDataError(f"{path}: frame 0 has none of the energy keys {[k[0] for k in LABEL_KEYS]}; "
                         f"found info {sorted(first.info)}, calculator results {sorted(results)}")


def canonicalize(path: str | Path, output: str | Path) -> int:
    """Rewrite an extxyz file with canonical REF_* labels (keys detected from its first frame).

    Every frame is relabelled as :mod:`mlipft.convert` does (missing labels name the frame), but
    without its unit plausibility check: replay sets are the MACE team's eV / Angstrom files, and
    rattled pretraining structures can carry forces above that check's 50 eV/Angstrom.
    """
    import ase.io

    from .convert import _parse_comment_line, _relabel

    path = Path(path)
    energy, forces, stress = detect_label_keys(path)
    frames = [_relabel(path, i, atoms, energy, forces, stress)
              for i, atoms in enumerate(ase.io.iread(path, index=":", format="extxyz",
                                                     properties_parser=_parse_comment_line))]
    if not frames:
        raise PaperDataError(f"{path}: no frames")
    write_atomic(output, frames)
    fmax = max(float(np.abs(a.arrays[FORCES_KEY]).max()) for a in frames)
    log.info("%s: %d frames, keys %s -> canonical; largest force component %.3g eV/A",
             path, len(frames), (energy, forces, stress), fmax)
    return len(frames)


# ---------------------------------------------------------------------------------------------
# command line


def _pairs(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in values:
        role, sep, path = item.partition("=")
        if not sep or not role or not path:
            raise argparse.ArgumentTypeError(f"expected ROLE=PATH, got {item!r}")
        out[role] = path
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlipft.paper", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("benchmark", help="build one benchmark's files from converted sources")
    bench.add_argument("recipe", choices=sorted(RECIPES))
    bench.add_argument("--input", nargs="+", required=True, metavar="ROLE=PATH", help="converted input files")
    bench.add_argument("--params", default="{}", help="JSON of the recipe's parameters")
    bench.add_argument("--neb-reactions", nargs="*", default=[], help="reactions of reference_neb.xyz (rxn<id>)")
    bench.add_argument("--seed", type=int, required=True)
    bench.add_argument("--out-dir", required=True)
    bench.add_argument("--summary", help="JSON summary to write")
    found = sub.add_parser("foundation", help="put a downloaded foundation model in place, in the given dtype")
    found.add_argument("--source", required=True)
    found.add_argument("--output", required=True)
    found.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    canon = sub.add_parser("canonicalize", help="rewrite an extxyz file with REF_* label keys")
    canon.add_argument("--input", required=True)
    canon.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "benchmark":
        start = time.perf_counter()
        summary = build_benchmark(args.recipe, _pairs(args.input), json.loads(args.params), args.seed,
                                  args.neb_reactions, args.out_dir)
        summary["seconds"] = round(time.perf_counter() - start, 1)
        log.info("benchmark %s: %s", args.recipe, summary["files"])
        if args.summary:
            write_json(args.summary, summary)
    elif args.command == "foundation":
        install_foundation(args.source, args.output, args.dtype)
    else:
        canonicalize(args.input, args.output)


if __name__ == "__main__":
    main()
