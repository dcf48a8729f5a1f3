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


BUILDERS = {"sn2_triplets": build_sn2_triplets, "sn2_archive": build_sn2_archive}


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
            "reactions": built["reactions"], "neb_reactions": list(neb_reactions), "seed": seed, "params": params}


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
