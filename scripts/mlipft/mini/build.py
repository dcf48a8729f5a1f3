"""Command line of the mini-world generators: ``python -m mlipft.mini.build {corpus,benchmark}``."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import time
from pathlib import Path

from ..io import write_json


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["corpus", "benchmark"])
    parser.add_argument("name", help="corpus kind (mptrj, omat, test) or benchmark module (sn2, ...)")
    parser.add_argument("--params", default="{}", help="JSON of the generator's parameters")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--summary", help="JSON summary to write ({file: n_configs, seconds})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = json.loads(args.params)
    start = time.perf_counter()
    if args.what == "corpus":
        from .corpus import generate_corpus

        summary = generate_corpus(args.name, params, args.seed, Path(args.out_dir))
    else:
        module = importlib.import_module(f"mlipft.mini.{args.name}")
        summary = module.generate(params, args.seed, Path(args.out_dir))
    summary = {"files": summary, "seconds": round(time.perf_counter() - start, 1), "seed": args.seed,
               "params": params}
    logging.info("%s %s: %s", args.what, args.name, summary)
    if args.summary:
        write_json(args.summary, summary)


if __name__ == "__main__":
    main()
