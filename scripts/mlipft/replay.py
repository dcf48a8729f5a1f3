"""Replay sets for multihead fine-tuning, drawn from a pretraining corpus.

Modes (the paper's replay-set constructions, Fig. 15): ``element_matched`` keeps structures
whose elements all occur in the target benchmark, ``random`` draws from the whole corpus,
``full`` keeps everything. ``n`` caps the size (mace then draws ``--num_samples_pt`` of them).
"""

from __future__ import annotations

import argparse

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", nargs="+", help="corpus files (extxyz), concatenated")
    source.add_argument("--combine", nargs="+", help="replay sets to unite (duplicates dropped)")
    parser.add_argument("--target", help="benchmark training file whose elements are matched")
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--n", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    if args.combine:
        from .mini.corpus import combine_replay

        with atomic_path(args.output) as tmp:
            combine_replay(args.combine, tmp)
        return
    missing = [f"--{k}" for k in ("target", "mode", "seed") if getattr(args, k) is None]
    if missing:
        parser.error(f"--corpus needs {' '.join(missing)}")
    corpus = [a for path in args.corpus for a in read_configs(path)]
    chosen = select(corpus, elements_of(read_configs(args.target)), args.mode, args.n, args.seed)
    write_atomic(args.output, chosen)


if __name__ == "__main__":
    main()
