"""Derived sets: a subset of one of a benchmark's files chosen by frame keys, the splits of a
transfer test (the paper's Fig. 7: fine-tune on some reactions of a family, test on held-out
ones). A derived set is declared under ``benchmarks.<b>.derived`` and used by name like any
file of the benchmark (a training, validation or evaluation set)::

    derived:
      train_seen: {file: train, match: {reaction: [Cl_Br, Br_Cl]}, keep: others}
      test_heldout: {file: test, match: {reaction: [Cl_Br, Br_Cl]}, keep: matching}

or, for the foundation-level test structures a benchmark's models can be scored on (the paper's
pretraining-distribution preservation, Fig. 10)::

      pretraining: {corpus: test, elements_of: train}

the structures of a corpus's test file whose elements all occur in the benchmark's ``train``
file (fine-tuned MACE models know only the elements they were fine-tuned on), after the world's
``corpus_filter`` (``learnable``: neutral, closed-shell; what the foundations were trained on).

A frame *matches* when, for any key of ``match``, its ``info[key]`` is one of the listed values
(compared as strings); ``keep: matching`` keeps the matching frames, ``keep: others`` the rest
(frames without the key among them). Isolated-atom rows follow the source file into an
``others`` set and are dropped from a ``matching`` one. A ``match`` that selects no frame of the
source file at all, or leaves an empty set, is an error naming the file, the keys and the values
found there (a typo must not silently turn a held-out split into the whole set).

    python -m mlipft.derive --input test.xyz --match '{"reaction": ["Cl_Br"]}' --keep matching \
        --output derived/sn2/test_heldout.xyz
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence

from .io import read_configs, write_atomic
from .keys import CONFIG_TYPE_KEY, ISOLATED_ATOM

KEEP = ("matching", "others")


class DeriveError(ValueError):
    pass


def matches(atoms, match: Mapping[str, Sequence]) -> bool:
    return any(key in atoms.info and str(atoms.info[key]) in {str(v) for v in values}
               for key, values in match.items())


def derive(frames: list, match: Mapping[str, Sequence], keep: str, where: str = "input") -> list:
    """The frames of a derived set (module docstring), in file order."""
    if keep not in KEEP:
        raise DeriveError(f"keep must be one of {KEEP}, got {keep!r}")
    if not match or not all(values for values in match.values()):
        raise DeriveError(f"{where}: `match` needs at least one key with at least one value, got {dict(match)}")
    hits = [matches(a, match) for a in frames]
    if not any(hits):
        found = {key: sorted({str(a.info[key]) for a in frames if key in a.info}) for key in match}
        raise DeriveError(f"{where}: no frame matches {dict(match)}; values of these keys in the file: {found}")
    if keep == "matching":
        out = [a for a, hit in zip(frames, hits) if hit and a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM]
    else:
        out = [a for a, hit in zip(frames, hits) if not hit]
    if not [a for a in out if a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM]:
        raise DeriveError(f"{where}: keep {keep} of {dict(match)} leaves no configuration")
    return out


def within_elements(frames: list, elements_file: list, corpus_filter: str | None = None, where: str = "input") -> list:
    """The frames whose elements all occur in ``elements_file``'s frames (isolated atoms aside),
    after ``corpus_filter`` (``learnable``: :func:`mlipft.mini.corpus.learnable`); an empty
    result is an error naming the file and the elements."""
    from .mini.corpus import apply_filter
    from .replay import elements_of, select

    elements = elements_of(a for a in elements_file if a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM)
    try:
        frames = apply_filter(frames, corpus_filter)
    except ValueError as err:
        raise DeriveError(str(err)) from None
    try:  # the element matching of replay sets, every structure kept
        return select(frames, elements, "element_matched", None, 0)
    except ValueError:
        raise DeriveError(f"{where}: no structure made only of the elements {sorted(elements)}") from None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlipft.derive", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="the benchmark file the set is drawn from (extxyz)")
    parser.add_argument("--match", help="JSON {info key: [values]}")
    parser.add_argument("--keep", choices=KEEP)
    parser.add_argument("--elements-of", help="instead of --match: keep the structures made of this file's elements")
    parser.add_argument("--filter", help="with --elements-of: a corpus filter (learnable)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    if args.elements_of:
        frames = within_elements(read_configs(args.input), read_configs(args.elements_of), args.filter,
                                 where=args.input)
        what = f"made of the elements of {args.elements_of}"
    else:
        if not (args.match and args.keep):
            parser.error("--match and --keep (or --elements-of)")
        frames = derive(read_configs(args.input), json.loads(args.match), args.keep, where=args.input)
        what = f"{args.keep} {args.match}"
    write_atomic(args.output, frames)
    print(f"{args.output}: {len(frames)} of the frames of {args.input} ({what})")


if __name__ == "__main__":
    try:
        main()
    except DeriveError as err:
        raise SystemExit(f"mlipft.derive: {err}") from None
