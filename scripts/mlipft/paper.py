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
    the same ``--energy_key`` as the target data;
``extract``
    the ``.xyz``/``.extxyz`` members of a tarball source (the MACE-OFF split) concatenated into
    one file, streamed, before conversion (:func:`extract_xyz`);
``split-corpus``
    a canonical replay file split into a held-out pretraining-distribution test set and the pool
    every replay set of that file is drawn from (:func:`split_corpus`; Fig. 10).

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

SPICE (the MACE-OFF cleaned split, wB97M-D3BJ): recipe ``spice_maceoff``
-------------------------------------------------------------------------
Inputs ``train`` and ``test``: ``train_large_neut_no_bad_clean.tar.gz`` and
``test_large_neut_all.tar.gz`` of the Apollo record (manual downloads), their extxyz members
concatenated (rule extract_archive: :func:`extract_xyz`; the member names are not known offline)
and converted (``energy``/``forces``). Frames are grouped into molecules by ``molecule_key``:
``auto`` takes the first of :data:`MOLECULE_KEYS` (``molecule``, ``smiles``, ``mol_id``, ``name``)
that every frame carries (the mini world's generator writes ``molecule`` and ``smiles``), else the
atom-ordered species sequence (conformers of one SPICE molecule share their atom order; isomers that
happened to share it would count as one molecule). Which keys the MACE-OFF files carry is not
confirmed offline; ``summary.json`` records the key used. Of every molecule (``n_molecules``: a
seeded subset of them, null all) the first conformer in :func:`seeded_order` is ``train.xyz`` (one
configuration per molecule, the paper's Fig. 8 training set); ``n_valid`` of the remaining
conformers (seeded) are ``valid.xyz``; ``train_all.xyz`` is every training-molecule frame but the
validation ones (``train.xyz`` is a subset). ``test.xyz`` is the MACE-OFF test split (``n_test``: a
seeded subset), none of whose frames may be a training frame. Frames must be neutral
(``total_charge``/``charge`` 0). ``isolated_atoms.xyz``: the training split's ``IsolatedAtom`` rows
when they cover every element, else least-squares stand-ins (as NaCl). No source of reference
torsion scans is known (the record holds the split; the archive's known paths none): the recipe
writes no ``torsions.xyz`` and Fig. 9 is unavailable in the paper world.

LPSC (Li6PS5Cl argyrodite, PBE; the archive's ``li/`` folder): recipe ``lpsc_archive``
--------------------------------------------------------------------------------------
Input ``data``: ``li/data/LPSC_600.extxyz`` (``ref_energy``/``ref_forces``/``stress``), split by a
seeded permutation stratified by composition (:func:`split_stratified`, as NaCl) into ``n_valid``,
``n_test`` and ``n_train`` (null: the rest) frames. Inputs ``other_argyrodites`` and
``non_argyrodites``: the paper's two held-out sets, somewhere in the archive's ``li/`` folder (their
paths are not confirmed: config/sources/paper.yaml declares them as manual downloads whose fetch
stops naming the entry and what to check), written whole as ``heldout_other_argyrodites.xyz`` and
``heldout_non_argyrodites.xyz``; a held-out structure found in the data or in the other held-out file
stops the build, and frames with an element the training split lacks are dropped (a fine-tuned model
knows only its training elements; ``foreign_elements: error`` stops instead). Every frame periodic,
with stress. ``isolated_atoms.xyz``: least-squares stand-ins of the training split, which has one
composition (the minimum-norm solution: averaged E0s are not identifiable there, the paper's point).

The held-out pretraining-distribution test sets (Fig. 10): :func:`split_corpus`
-------------------------------------------------------------------------------
A replay file named under ``scales.<scale>.corpora`` (by source id) is split: a structure is held out
when a sha256 of the seed and the structure (:func:`frame_key`; or of ``info[group_key]``, all frames
of a group together) falls below ``test_fraction``, so identical structures always land on the same
side and the decision does not depend on file order. The held-out part is ``corpora/<id>/test.xyz``;
the rest, ``corpora/<id>/train.xyz``, is the file every replay set of that source is drawn from
(:func:`replay_corpus_file`): no replay set drawn from the file shares a structure with its test set.
A benchmark's ``pretraining`` set is the derived set ``{corpus: <id>, elements_of: train}``: the
held-out structures made of its elements (mlipft.derive), scored through the target head
(``pretraining``) and, for multihead fine-tunes, the replay head (``pretraining_pt``).
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
# the mini world's spice files less torsions.xyz: no known source holds SPICE torsion scans
SPICE_FILES = ("train", "train_all", "valid", "test", "isolated_atoms")
LPSC_HELDOUT = ("other_argyrodites", "non_argyrodites")
LPSC_FILES = ("train", "valid", "test", *(f"heldout_{h}" for h in LPSC_HELDOUT), "isolated_atoms")
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
    "spice_maceoff": {
        "roles": ("train", "test"),
        "files": SPICE_FILES,
        # molecule_key auto: the first info key of MOLECULE_KEYS every frame has, else the atom-ordered
        # species sequence; n_molecules null: every molecule of the training split; n_valid frames
        # (conformers that are not a molecule's first) for validation; n_test null: the whole test split
        "defaults": {"molecule_key": "auto", "n_molecules": None, "n_valid": 1000, "n_test": None},
        "mem_mb": 64000,  # ~950,000 configurations of the MACE-OFF training split held in memory
    },
    "lpsc_archive": {
        "roles": ("data", *LPSC_HELDOUT),
        "files": LPSC_FILES,
        # n_train null: every frame of the data not in valid or test; held-out frames with an element
        # absent from the training split are dropped (foreign_elements: drop) or stop the build (error)
        "defaults": {"n_train": None, "n_valid": 50, "n_test": 100, "foreign_elements": "drop"},
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


def unique_groups(frames: list[Atoms], group_of, where, index: list[int] | None = None,
                  what: str = "same species, positions and cell") -> tuple[dict, dict]:
    """Frames grouped by ``group_of(k, atoms)`` (a recipe's stratification: composition, molecule),
    refusing a frame that repeats an earlier one (:func:`frame_key`). Returns ``(groups, seen)``:
    group -> frame numbers, and frame key -> its frame number. ``index`` maps a frame number to
    the one the message names (e.g. counting IsolatedAtom rows of the file)."""
    index = index if index is not None else list(range(len(frames)))
    groups: dict = {}
    seen: dict[tuple, int] = {}
    for k, atoms in enumerate(frames):
        key = frame_key(atoms)
        if key in seen:
            raise PaperDataError(f"{where}: frame {index[k]} repeats frame {index[seen[key]]} ({what})")
        seen[key] = k
        groups.setdefault(group_of(k, atoms), []).append(k)
    return groups, seen


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
    groups, _ = unique_groups(frames, lambda i, atoms: composition(atoms), where)
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

        def tag(atoms, i, phase=phase):
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


# ---------------------------------------------------------------------------------------------
# SPICE (the MACE-OFF cleaned split, wB97M-D3BJ; energy / forces converted by mlipft.convert spice)

#: info keys that name a SPICE molecule, tried in this order by ``molecule_key: auto``
MOLECULE_KEYS = ("molecule", "smiles", "mol_id", "name")
SPECIES_SEQUENCE = "species_sequence"


def _species_sequence_id(atoms: Atoms) -> str:
    """A molecule id from the atom-ordered species (conformers of one SPICE molecule share their
    atom order): the formula and a short digest of the sequence, e.g. ``C2H6O#1a2b3c4d``."""
    import hashlib

    seq = " ".join(atoms.get_chemical_symbols())
    return f"{atoms.get_chemical_formula()}#{hashlib.sha256(seq.encode()).hexdigest()[:8]}"


def molecule_ids(frames: Sequence[Atoms], key: str, where: str) -> tuple[list[str], str]:
    """The molecule of every frame and the key it was read from. ``key`` ``auto``: the first of
    :data:`MOLECULE_KEYS` that every frame carries, else ``species_sequence`` (the atom-ordered
    species: isomers that share an atom order would count as one molecule); an explicit info key
    missing from a frame is an error naming the file and frame."""
    if key == "auto":
        key = next((k for k in MOLECULE_KEYS if frames and all(k in a.info for a in frames)), SPECIES_SEQUENCE)
    if key == SPECIES_SEQUENCE:
        return [_species_sequence_id(a) for a in frames], key
    for i, atoms in enumerate(frames):
        if key not in atoms.info:
            raise PaperDataError(f"{where}: frame {i}: no info key {key!r} naming its molecule "
                                 f"(info keys {sorted(atoms.info)}; molecule_key: auto or {SPECIES_SEQUENCE} "
                                 f"needs none)")
    return [str(a.info[key]) for a in frames], key


def check_molecular(frames: Sequence[Atoms], where: str) -> None:
    """Every frame a labelled, neutral configuration: ``REF_energy`` (finite), ``REF_forces`` of
    shape (n_atoms, 3) and no non-zero ``total_charge`` / ``charge`` (MACE sees no charge; the
    MACE-OFF split used here is the neutral one). Names the file and frame."""
    _check_molecular_at(frames, list(range(len(frames))), where)


def _check_molecular_at(frames: Sequence[Atoms], numbers: Sequence[int], where: str) -> None:
    """:func:`check_molecular` of frames whose numbers in the file are ``numbers``."""
    if not frames:
        raise PaperDataError(f"{where}: no configurations")
    for i, atoms in zip(numbers, frames):
        try:
            energy = float(atoms.info[ENERGY_KEY])
        except KeyError:
            raise PaperDataError(f"{where}: frame {i}: no {ENERGY_KEY} (info keys {sorted(atoms.info)})") from None
        except (TypeError, ValueError):
            raise PaperDataError(f"{where}: frame {i}: {ENERGY_KEY} is not a number: {atoms.info[ENERGY_KEY]!r}") from None
        if not np.isfinite(energy):
            raise PaperDataError(f"{where}: frame {i}: {ENERGY_KEY} is not finite")
        forces = atoms.arrays.get(FORCES_KEY)
        if forces is None or np.shape(forces) != (len(atoms), 3):
            raise PaperDataError(f"{where}: frame {i}: no {FORCES_KEY} of shape ({len(atoms)}, 3)")
        for key in ("total_charge", "charge"):
            if key in atoms.info:
                try:
                    charge = float(atoms.info[key])
                except (TypeError, ValueError):
                    raise PaperDataError(f"{where}: frame {i}: {key} is not a number: {atoms.info[key]!r}") from None
                if charge != 0.0:
                    raise PaperDataError(f"{where}: frame {i}: {key} {charge:g}: a charged configuration "
                                         f"(MACE sees no charge; the SPICE benchmark takes the neutral split)")


def _split_isolated(frames: list[Atoms]) -> tuple[list[Atoms], list[int], list[tuple[int, Atoms]]]:
    """Configurations, their frame numbers in the file, and the single-atom ``IsolatedAtom`` rows
    with theirs."""
    configs, index, isolated = [], [], []
    for i, atoms in enumerate(frames):
        if atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM and len(atoms) == 1:
            isolated.append((i, atoms))
        else:
            configs.append(atoms)
            index.append(i)
    return configs, index, isolated


def _isolated_or_standin(rows: list[tuple[int, Atoms]], elements: set[str], train: Sequence[Atoms],
                         level: str, where: str) -> tuple[list[Atoms], dict]:
    """The source's own isolated-atom rows when they cover ``elements`` (one energy per element;
    two rows of one element that disagree name both frames), else least-squares stand-ins fitted
    on ``train`` (:func:`e0_standin_rows`) and a note of the elements the rows lacked."""
    by_element: dict[str, tuple[int, Atoms]] = {}
    for i, atoms in rows:
        symbol = atoms.get_chemical_symbols()[0]
        if symbol in by_element:
            j, first = by_element[symbol]
            if not np.isclose(float(first.info[ENERGY_KEY]), float(atoms.info[ENERGY_KEY]), rtol=0.0, atol=1e-6):
                raise PaperDataError(f"{where}: frames {j} and {i}: two IsolatedAtom rows of {symbol} with different "
                                     f"energies ({first.info[ENERGY_KEY]} and {atoms.info[ENERGY_KEY]} eV)")
            continue
        by_element[symbol] = (i, atoms)
    missing = sorted(elements - set(by_element))
    if rows and not missing:
        out = [_stamp(by_element[s][1], source_frame=by_element[s][0]) for s in sorted(by_element)]
        return out, {"source": "isolated-atom rows of the source", "file": where,
                     "e0s_eV": {s: float(a.info[ENERGY_KEY]) for s, (_, a) in sorted(by_element.items())}}
    e0s = least_squares_e0s(train, f"{where} (training frames)")
    note = {"note": E0_STANDIN_NOTE, "e0s_eV": e0s}
    if rows:
        note["isolated_rows_lack"] = missing
        log.warning("%s: IsolatedAtom rows lack %s; isolated_atoms.xyz holds least-squares stand-ins", where, missing)
    return e0_standin_rows(e0s, level), note


def build_spice_maceoff(inputs: dict[str, str], params: dict, seed: int, neb_reactions: Sequence[str]) -> dict:
    """SPICE from the MACE-OFF split (module docstring): one conformer per molecule for ``train``,
    every other frame of the training molecules but the validation ones for ``train_all``, ``n_valid``
    further conformers for ``valid``, the MACE-OFF test split for ``test``."""
    p = {**RECIPES["spice_maceoff"]["defaults"], **params}
    train_path, test_path = inputs["train"], inputs["test"]
    # index / test_index: each configuration's frame number in its file (IsolatedAtom rows counted,
    # as ase.io.read counts them), the frame every message names
    frames, index, isolated = _split_isolated(read_configs(train_path))
    _check_molecular_at(frames, index, train_path)
    test_frames, test_index, _ = _split_isolated(read_configs(test_path))
    _check_molecular_at(test_frames, test_index, test_path)
    ids, key = molecule_ids(frames, str(p["molecule_key"]), train_path)
    groups, seen = unique_groups(frames, lambda k, atoms: ids[k], train_path, index=index,
                                 what="same species and positions")
    import hashlib

    molecules = sorted(groups, key=lambda m: (hashlib.sha256(f"{int(seed)}:{m}".encode()).hexdigest(), m))
    if p["n_molecules"] is not None:
        n_mol = int(p["n_molecules"])
        if not 1 <= n_mol <= len(molecules):
            raise PaperDataError(f"{train_path}: n_molecules {n_mol} is not between 1 and its {len(molecules)} molecules")
        molecules = molecules[:n_mol]
    train_idx, rest = [], []
    for m in molecules:
        order = [groups[m][j] for j in seeded_order([frames[k] for k in groups[m]], seed)]
        train_idx.append(order[0])
        rest += order[1:]
    n_valid = int(p["n_valid"])
    if not 1 <= n_valid <= len(rest):
        raise PaperDataError(f"{train_path}: {len(rest)} conformers besides one per molecule ({len(molecules)} molecules) "
                             f"cannot give n_valid {n_valid} validation frames")
    valid_idx = sorted(rest[j] for j in seeded_order([frames[k] for k in rest], seed)[:n_valid])
    valid_set = set(valid_idx)
    train_all_idx = sorted(k for m in molecules for k in groups[m] if k not in valid_set)
    train_idx = sorted(train_idx)
    if p["n_test"] is None:
        test_idx = list(range(len(test_frames)))
    else:
        n_test = int(p["n_test"])
        if not 1 <= n_test <= len(test_frames):
            raise PaperDataError(f"{test_path}: n_test {n_test} is not between 1 and its {len(test_frames)} configurations")
        test_idx = sorted(seeded_order(test_frames, seed)[:n_test])
    for k in test_idx:
        other = seen.get(frame_key(test_frames[k]))
        if other is not None:
            raise PaperDataError(f"{test_path}: frame {test_index[k]} repeats frame {index[other]} of {train_path} "
                                 f"(a test configuration in the training split)")

    def tag(atoms, i, molecule=None):
        extra = {} if molecule is None else {"molecule": molecule}
        return _stamp(atoms, source_frame=i, **extra)

    files = {
        "train": [tag(frames[k], index[k], ids[k]) for k in train_idx],
        "train_all": [tag(frames[k], index[k], ids[k]) for k in train_all_idx],
        "valid": [tag(frames[k], index[k], ids[k]) for k in valid_idx],
        "test": [tag(test_frames[k], test_index[k]) for k in test_idx],
    }
    elements = {s for name in ("train_all", "valid", "test") for a in files[name] for s in a.get_chemical_symbols()}
    files["isolated_atoms"], e0_note = _isolated_or_standin(isolated, elements, files["train_all"], "wB97M-D3BJ",
                                                            train_path)
    summary = {
        "molecule_key": key, "molecules": len(molecules), "molecules_in_source": len(groups),
        "source_frames": {"train": [index[k] for k in train_idx], "valid": [index[k] for k in valid_idx],
                          "test": [test_index[k] for k in test_idx]},
        "energy_per_atom_eV": {name: _energy_range(files[name]) for name in ("train", "train_all", "valid", "test")},
        "isolated_atoms": e0_note,
        "torsions": "no torsion scans: no known source (MACE-OFF record, the archive's known paths) holds them",
    }
    return {"files": files, "reactions": {}, "summary": summary}


# ---------------------------------------------------------------------------------------------
# LPSC (Li6PS5Cl argyrodite, PBE; the archive's li/ folder; ref_energy / ref_forces / stress)


def build_lpsc_archive(inputs: dict[str, str], params: dict, seed: int, neb_reactions: Sequence[str]) -> dict:
    """LPSC_600: a seeded train / valid / test split stratified by composition (as NaCl), and the
    two held-out sets (other argyrodites, non-argyrodites) copied whole, checked: labelled with
    stress, periodic, no structure of the LPSC data among them, none in both. Held-out frames with
    an element the training split lacks are dropped (``foreign_elements: drop``; a fine-tune knows
    only its training elements) or stop the build (``error``). ``isolated_atoms.xyz``: least-squares
    stand-ins of the training split (one composition: not identifiable, the minimum-norm solution;
    the paper's point about averaged E0s)."""
    p = {**RECIPES["lpsc_archive"]["defaults"], **params}
    if p["foreign_elements"] not in ("drop", "error"):
        raise PaperDataError(f"lpsc_archive: foreign_elements must be drop or error, got {p['foreign_elements']!r}")
    where = inputs["data"]
    frames = read_configs(where)
    check_labelled(frames, where, stress=True)
    groups, first = unique_groups(frames, lambda i, atoms: composition(atoms), where)
    seen: dict[tuple, tuple[str, int]] = {key: (where, i) for key, i in first.items()}
    n_train = None if p["n_train"] is None else int(p["n_train"])
    split = split_stratified(groups, int(p["n_valid"]), int(p["n_test"]), n_train, seed, where)
    files = {name: [_stamp(frames[i], source_frame=i) for i in idx] for name, idx in split.items()}
    train_elements = {s for a in files["train"] for s in a.get_chemical_symbols()}
    summary: dict = {"source_frames": split, "heldout": {}}
    for name in LPSC_HELDOUT:
        path = inputs[name]
        held = read_configs(path)
        check_labelled(held, path, stress=True)
        kept, dropped = [], []
        for i, atoms in enumerate(held):
            key = frame_key(atoms)
            if key in seen:
                other_path, j = seen[key]
                raise PaperDataError(f"{path}: frame {i} repeats frame {j} of {other_path} "
                                     f"(a held-out structure must be in no other set)")
            seen[key] = (path, i)
            foreign = sorted(set(atoms.get_chemical_symbols()) - train_elements)
            if foreign:
                if p["foreign_elements"] == "error":
                    raise PaperDataError(f"{path}: frame {i}: elements {foreign} are not in the training split "
                                         f"({sorted(train_elements)}); a fine-tuned model cannot be scored on them "
                                         f"(foreign_elements: drop leaves such frames out)")
                dropped.append(i)
                continue
            kept.append(_stamp(atoms, source_frame=i, heldout_set=name))
        if not kept:
            raise PaperDataError(f"{path}: no held-out frame left (of {len(held)}; {len(dropped)} with elements "
                                 f"outside the training split {sorted(train_elements)})")
        if dropped:
            log.warning("%s: %d of %d frames dropped (elements outside the training split %s), first frame %d",
                        path, len(dropped), len(held), sorted(train_elements), dropped[0])
        files[f"heldout_{name}"] = kept
        summary["heldout"][name] = {
            "frames": len(kept), "dropped_foreign_element_frames": dropped,
            "compositions": sorted({atoms.get_chemical_formula() for atoms in kept}),
            "energy_per_atom_eV": _energy_range(kept)}
    e0s = least_squares_e0s(files["train"], f"{where} (train split)")
    files["isolated_atoms"] = e0_standin_rows(e0s, "PBE")
    summary["compositions"] = sorted({frames[i].get_chemical_formula() for i in range(len(frames))})
    summary["energy_per_atom_eV"] = {name: _energy_range(files[name]) for name in ("train", "valid", "test")}
    summary["isolated_atoms"] = {"note": E0_STANDIN_NOTE, "e0s_eV": e0s}
    return {"files": files, "reactions": {}, "summary": summary}


BUILDERS = {"sn2_triplets": build_sn2_triplets, "sn2_archive": build_sn2_archive,
            "nacl_runner": build_nacl_runner, "ice_phases": build_ice_phases,
            "spice_maceoff": build_spice_maceoff, "lpsc_archive": build_lpsc_archive}


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
# tarballs (the MACE-OFF split) and the held-out pretraining-distribution test sets

#: dest suffixes of sources that are tar archives of extxyz files, extracted by rule extract_archive
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")
XYZ_SUFFIXES = (".xyz", ".extxyz")


def is_tarball(dest: str) -> bool:
    return str(dest).endswith(TARBALL_SUFFIXES)


def extracted_dest(dest: str) -> str:
    """Where (relative to the raw folder) the extxyz members of a tarball source are put, one
    file: ``spice-maceoff/train.tar.gz`` -> ``extracted/spice-maceoff/train.xyz``."""
    suffix = next(s for s in TARBALL_SUFFIXES if str(dest).endswith(s))
    return f"extracted/{str(dest)[: -len(suffix)]}.xyz"


def source_input_dest(dest: str) -> str:
    """The raw file a benchmark input is converted from: a tarball's extracted members, else the
    downloaded file itself."""
    return extracted_dest(dest) if is_tarball(dest) else str(dest)


def extract_xyz(tarball: str | Path, output: str | Path) -> dict:
    """Concatenate every ``.xyz`` / ``.extxyz`` member of a tar archive (in archive order) into
    ``output``, atomically, streamed (nothing else is unpacked: no member is written under its own
    name). A file that is not a tar archive, or one without such a member, is an error naming the
    file (and its members). Returns the members taken and skipped."""
    import tarfile
    import zlib

    tarball = Path(tarball)
    if not tarball.is_file() or not tarfile.is_tarfile(tarball):
        raise PaperDataError(f"{tarball}: not a readable tar archive")
    taken, skipped = [], []
    with tarfile.open(tarball, mode="r:*") as archive, atomic_path(output) as tmp:
        member = None
        try:
            with open(tmp, "wb") as out:
                for member in archive:
                    if not member.isfile():
                        continue
                    if not member.name.endswith(XYZ_SUFFIXES) or Path(member.name).name.startswith("."):
                        skipped.append(member.name)
                        continue
                    with archive.extractfile(member) as handle:
                        last = b"\n"
                        while chunk := handle.read(1 << 20):
                            out.write(chunk)
                            last = chunk[-1:]
                    if last != b"\n":  # the next member's count line must start a line
                        out.write(b"\n")
                    taken.append({"member": member.name, "bytes": member.size})
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise PaperDataError(f"{tarball}: corrupt or truncated tar archive (at member "
                                 f"{getattr(member, 'name', None)!r}): {err}") from None
        if not taken:
            raise PaperDataError(f"{tarball}: no .xyz / .extxyz member (members: {skipped[:20]}"
                                 f"{' ...' if len(skipped) > 20 else ''})")
    info = {"tarball": str(tarball), "members": taken, "skipped": skipped}
    log.info("%s: %d extxyz member(s) -> %s (skipped %d)", tarball, len(taken), output, len(skipped))
    return info


#: parameters of a pretraining corpus split (scales.<scale>.corpora.<replay source id>)
CORPUS_DEFAULTS = {"test_fraction": 0.05, "group_key": None}


def check_corpus_params(params: dict, where: str) -> dict:
    """The split parameters with defaults; unknown keys and a fraction outside (0, 1) are errors."""
    unknown = sorted(set(params) - set(CORPUS_DEFAULTS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} (known: {sorted(CORPUS_DEFAULTS)})")
    p = {**CORPUS_DEFAULTS, **params}
    if not isinstance(p["test_fraction"], (int, float)) or not 0.0 < float(p["test_fraction"]) < 1.0:
        raise ValueError(f"{where}.test_fraction: {p['test_fraction']!r} is not a number in (0, 1)")
    if p["group_key"] is not None and not (isinstance(p["group_key"], str) and p["group_key"]):
        raise ValueError(f"{where}.group_key: {p['group_key']!r} is not an info key (a string) or null")
    return p


def _unit_hash(seed: int, key) -> float:
    """A number in [0, 1) fixed by the seed and the key (sha256): the same structure (or group)
    always falls on the same side of a fraction, whatever file or position it is in."""
    import hashlib

    digest = hashlib.sha256(f"{int(seed)}:{key!r}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def held_out(atoms: Atoms, seed: int, fraction: float, group_key: str | None = None, where: str = "") -> bool:
    """Whether a corpus structure belongs to the held-out pretraining test set: by its structure
    (:func:`frame_key`), or by ``info[group_key]`` (e.g. a material id: all its frames together).
    Isolated-atom rows never do."""
    if atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM:
        return False
    if group_key is None:
        return _unit_hash(seed, frame_key(atoms)) < fraction
    if group_key not in atoms.info:
        raise PaperDataError(f"{where}: no info key {group_key!r} (group_key of the corpus split; info keys "
                             f"{sorted(atoms.info)})")
    return _unit_hash(seed, ("group", str(atoms.info[group_key]))) < fraction


def split_corpus(path: str | Path, pool: str | Path, test: str | Path, isolated: str | Path, params: dict,
                 seed: int) -> dict:
    """Split a (canonical, REF_* keyed) replay file into a held-out pretraining-distribution test
    set (``test``: the structures :func:`held_out` picks, about ``test_fraction`` of them) and the
    rest (``pool``), from which every replay set of this file is drawn: the two never share a
    structure (nor a group, with ``group_key``), and identical structures always fall on the same
    side. Streamed (a replay file can hold 1.5 million structures). ``isolated``: least-squares
    per-element stand-in energies of the whole file, the reference of the test set's unit bounds
    (mlipft.validate_data; replay files carry no isolated atoms). Every frame needs REF_energy and
    REF_forces; a frame without them is named by file and frame."""
    import ase.io

    p = check_corpus_params(params, "corpus split")
    fraction, group_key = float(p["test_fraction"]), p["group_key"]
    path = Path(path)
    n_pool = n_test = 0
    ata = np.zeros((119, 119))
    atb = np.zeros(119)
    elements_test: set[str] = set()
    with atomic_path(pool) as tmp_pool, atomic_path(test) as tmp_test:
        with open(tmp_pool, "w") as out_pool, open(tmp_test, "w") as out_test:
            for i, atoms in enumerate(ase.io.iread(path, index=":", format="extxyz")):
                where = f"{path}: frame {i}"
                try:
                    energy = float(atoms.info[ENERGY_KEY])
                except (KeyError, TypeError, ValueError):
                    energy = float("nan")
                if not np.isfinite(energy):
                    raise PaperDataError(f"{where}: no finite {ENERGY_KEY} (info keys {sorted(atoms.info)})")
                isolated_row = atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM and len(atoms) == 1
                if not isolated_row and np.shape(atoms.arrays.get(FORCES_KEY)) != (len(atoms), 3):
                    raise PaperDataError(f"{where}: no {FORCES_KEY} of shape ({len(atoms)}, 3)")
                if not isolated_row:
                    counts = np.bincount(atoms.numbers, minlength=119).astype(float)
                    ata += np.outer(counts, counts)
                    atb += counts * energy
                atoms.calc = None
                if held_out(atoms, seed, fraction, group_key, where):
                    ase.io.write(out_test, atoms, format="extxyz")
                    n_test += 1
                    elements_test.update(atoms.get_chemical_symbols())
                else:
                    ase.io.write(out_pool, atoms, format="extxyz")
                    n_pool += 1
        if n_test == 0 or n_pool == 0:
            raise PaperDataError(f"{path}: test_fraction {fraction} of its {n_test + n_pool} frames leaves "
                                 f"{n_test} held-out and {n_pool} replay structures; both must be non-empty")
        present = np.flatnonzero(np.diag(ata) > 0)
        e0 = np.linalg.pinv(ata[np.ix_(present, present)]) @ atb[present]
        from ase.data import chemical_symbols

        e0s = {chemical_symbols[z]: float(e) for z, e in zip(present, e0)}
        write_atomic(isolated, e0_standin_rows(e0s, f"replay file {path.name}"))
    info = {"source": str(path), "seed": int(seed), "test_fraction": fraction, "group_key": group_key,
            "frames": n_test + n_pool, "test": n_test, "pool": n_pool, "test_elements": sorted(elements_test),
            "isolated_atoms": {"note": ("least-squares per-element energies of the whole replay file, NOT isolated-"
                                        "atom energies: the reference of the held-out set's unit bounds only"),
                               "e0s_eV": e0s}}
    log.info("%s: %d held-out (pretraining test) and %d replay-pool structures", path, n_test, n_pool)
    return info


def replay_corpus_file(config: dict, paths, source_id: str) -> str:
    """The file replay sets of a replay source are drawn from: its pool (``corpora/<id>/train.xyz``)
    when the scale splits a pretraining test set off it (``scales.<scale>.corpora.<id>``), else the
    whole converted file."""
    corpora = config["scales"][config["scale"]].get("corpora") or {}
    return paths.corpus_file(source_id, "train.xyz") if source_id in corpora else paths.replay_source(source_id)


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
    extract = sub.add_parser("extract", help="concatenate the extxyz members of a tar archive into one file")
    extract.add_argument("--input", required=True)
    extract.add_argument("--output", required=True)
    extract.add_argument("--summary", help="JSON of the members taken and skipped")
    split = sub.add_parser("split-corpus", help="split a replay file into a held-out pretraining test set and "
                           "the pool replay sets are drawn from")
    split.add_argument("--input", required=True, help="the replay file with REF_* keys (convert_replay)")
    split.add_argument("--params", default="{}", help=f"JSON of {sorted(CORPUS_DEFAULTS)}")
    split.add_argument("--seed", type=int, required=True)
    split.add_argument("--pool", required=True)
    split.add_argument("--test", required=True)
    split.add_argument("--isolated", required=True)
    split.add_argument("--summary")
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
    elif args.command == "extract":
        info = extract_xyz(args.input, args.output)
        if args.summary:
            write_json(args.summary, info)
    elif args.command == "split-corpus":
        info = split_corpus(args.input, args.pool, args.test, args.isolated, json.loads(args.params), args.seed)
        if args.summary:
            write_json(args.summary, info)
    else:
        canonicalize(args.input, args.output)


if __name__ == "__main__":
    main()
