"""Replay sets for multihead fine-tuning, drawn from a pretraining corpus.

Modes (the paper's replay-set constructions, Fig. 15): ``element_matched`` keeps structures
whose elements all occur in the target benchmark, ``random`` draws from the whole corpus,
``full`` keeps everything. ``n`` caps the size: this is the replay sample's size, since
mace-torch 0.3.16 applies its ``--num_samples_pt`` only to the replay data it downloads itself
(mp, omat, ...), never to an explicit ``--pt_train_file`` such as this set.

The chosen structures are validated before the set is written (:func:`validate`: the rules of
:mod:`mlipft.validate_data` for a file of role ``replay``), so that a NaN energy or a missing
force in a corpus stops the replay_set job, naming the corpus file and the structure's frame in
it, and never reaches a multihead fine-tune.

The workflow does it in two jobs, so that a failing check never costs the replay set already
written (Snakemake removes a job's outputs before it reruns the job): rule select_replay chooses
and validates (``--selection``: a JSON of the chosen structures' corpus files and frame indices,
written only when every one passes), then rule replay_set writes those frames
(``--from-selection``). A bad corpus fails the selection; the previous replay set, and every
fine-tune built on it, stays. ``--corpus ... --output`` does both in one call. A union
(``--combine``) is made of sets validated when they were written.

    python -m mlipft.replay --corpus C.xyz [...] --target T.xyz --mode M [--n N] --seed S --selection SEL.json
    python -m mlipft.replay --from-selection SEL.json --output replay.xyz
    python -m mlipft.replay --corpus C.xyz [...] --target T.xyz --mode M [--n N] --seed S --output replay.xyz
    python -m mlipft.replay --combine A.xyz B.xyz --output union.xyz
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from .io import atomic_path, read_configs, write_atomic
from .keys import CONFIG_TYPE_KEY, ISOLATED_ATOM

MODES = ("element_matched", "random", "full")


def elements_of(configs) -> set[str]:
    return {s for a in configs for s in a.get_chemical_symbols()}


def select(corpus: list, elements: set[str], mode: str, n: int | None, seed: int) -> list:
    if mode not in MODES:
        raise ValueError(f"replay mode {mode!r} is not one of {MODES}")
    pool = [a for a in corpus if a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM]
    if mode == "element_matched":
        pool = [a for a in pool if set(a.get_chemical_symbols()) <= elements]
        if not pool:
            raise ValueError(f"no corpus structure has only the elements {sorted(elements)}")
    if mode == "full" or n is None or n >= len(pool):
        return pool
    order = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[i] for i in sorted(order)]


def validate(chosen: list, origin: list[tuple[str, int]]) -> None:
    """Check the chosen structures as :mod:`mlipft.validate_data` checks a ``replay`` file, per
    corpus file they come from (``origin``: each one's corpus file and frame index there), so a
    message names that file and frame. Raises :class:`mlipft.validate_data.DataError` with every
    file's problems.

    Every rule applies but the force bound (``MAX_FORCE``, 50 eV/A, a unit check for benchmark
    data): a corpus is the foundation's own pretraining data, with strongly rattled structures
    (the committed mini omat corpus reaches 69 eV/A, as OMat's rattled frames do by design);
    the binding-energy bounds need isolated-atom energies, which a replay set is not given."""
    from . import validate_data as vd

    by_file: dict[str, list[int]] = {}
    for k, (path, _) in enumerate(origin):
        by_file.setdefault(path, []).append(k)
    errors = []
    for path, members in by_file.items():
        try:
            vd.check_frames(path, "replay", [chosen[k] for k in members], frame_numbers=[origin[k][1] for k in members],
                            max_force=math.inf)
        except vd.DataError as err:
            errors.append(str(err))
    if errors:
        raise vd.DataError("\n\n".join(errors))


def choose(corpus_files: list[str], target: str, mode: str, n: int | None, seed: int, what: str) -> list[tuple[str, int]]:
    """The structures of a replay set drawn from corpus files, validated: ``[(file, frame), ...]``.
    Exits naming ``what`` (the set) and the file and frame of every structure that breaks a rule."""
    from .validate_data import DataError, read_file

    corpus, origin = [], []
    for path in corpus_files:
        try:
            frames = read_file(path, "replay")
        except DataError as err:
            sys.exit(f"{what} not written: {err}")
        corpus += frames
        origin += [(path, i) for i in range(len(frames))]
    chosen = select(corpus, elements_of(read_configs(target)), mode, n, seed)
    if not chosen:
        sys.exit(f"{', '.join(corpus_files)}: no structure to replay (mode {mode})")
    position = {id(atoms): k for k, atoms in enumerate(corpus)}  # select returns the corpus's own objects
    where = [origin[position[id(atoms)]] for atoms in chosen]
    try:
        validate(chosen, where)
    except DataError as err:
        sys.exit(f"{what} not written: its structures break the data rules (mlipft.validate_data):\n{err}")
    return where


def write_selection(path: str, where: list[tuple[str, int]], meta: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump({**meta, "n": len(where), "frames": [[f, i] for f, i in where]}, handle, indent=1)


def read_selection(path: str) -> list:
    """The frames a selection names, read from their corpus files."""
    with open(path) as handle:
        return frames_of([(f, i) for f, i in json.load(handle)["frames"]], path)


def frames_of(where: list[tuple[str, int]], what: str) -> list:
    """The frames ``[(file, frame), ...]`` (read as mlipft.validate_data reads a replay file);
    a missing file or frame exits naming ``what``."""
    from .validate_data import DataError, read_file

    files: dict[str, list] = {}
    chosen = []
    for file, index in where:
        if file not in files:
            try:
                files[file] = read_file(file, "replay")
            except DataError as err:
                sys.exit(f"{what}: {err}")
        if not 0 <= index < len(files[file]):
            sys.exit(f"{what}: {file} has no frame {index} (it has {len(files[file])}): the corpus changed "
                     f"after the selection; rerun rule select_replay")
        chosen.append(files[file][index])
    return chosen


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", nargs="+", help="corpus files (extxyz), concatenated")
    source.add_argument("--combine", nargs="+", help="replay sets to unite (duplicates dropped)")
    source.add_argument("--from-selection", help="a selection (--selection) whose frames are written")
    parser.add_argument("--target", help="benchmark training file whose elements are matched")
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--n", type=int)
    parser.add_argument("--seed", type=int)
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--output", help="the replay set (extxyz)")
    out.add_argument("--selection", help="with --corpus: only choose and validate; write the choice (JSON)")
    args = parser.parse_args(argv)
    if args.selection and not args.corpus:
        parser.error("--selection needs --corpus")
    if args.combine:
        from .mini.corpus import combine_replay

        with atomic_path(args.output) as tmp:
            combine_replay(args.combine, tmp)
        return
    if args.from_selection:
        chosen = read_selection(args.from_selection)
        write_atomic(args.output, chosen)
        print(f"replay set: {len(chosen)} structures of {args.from_selection} -> {args.output}")
        return
    missing = [f"--{k}" for k in ("target", "mode", "seed") if getattr(args, k) is None]
    if missing:
        parser.error(f"--corpus needs {' '.join(missing)}")
    what = f"replay set {args.output}" if args.output else f"replay selection {args.selection}"
    where = choose(args.corpus, args.target, args.mode, args.n, args.seed, what)
    if args.selection:
        write_selection(args.selection, where, {"corpus": args.corpus, "target": args.target, "mode": args.mode,
                                                "n_requested": args.n, "seed": args.seed})
        print(f"replay selection: {len(where)} structures from {', '.join(args.corpus)}, validated -> {args.selection}")
        return
    chosen = frames_of(where, what)
    write_atomic(args.output, chosen)
    print(f"replay set: {len(chosen)} structures from {', '.join(args.corpus)}, validated -> {args.output}")


if __name__ == "__main__":
    main()
