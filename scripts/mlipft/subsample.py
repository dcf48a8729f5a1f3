"""Training-set fractions: a deterministic random subsample (isolated-atom rows removed)."""

from __future__ import annotations

import argparse
import math

import numpy as np

from .io import read_configs, write_atomic
from .keys import CONFIG_TYPE_KEY, ISOLATED_ATOM


def subsample(configs: list, fraction: float, seed: int) -> list:
    """The first ``ceil(fraction * n)`` configurations of a seeded permutation (at least one).

    Nested by construction: for one seed, a smaller fraction is a subset of a larger one.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is outside (0, 1]")
    configs = [a for a in configs if a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM]
    n = max(1, math.ceil(fraction * len(configs)))
    order = np.random.default_rng(seed).permutation(len(configs))
    return [configs[i] for i in sorted(order[:n])]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--fraction", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    write_atomic(args.output, subsample(read_configs(args.input), args.fraction, args.seed))


if __name__ == "__main__":
    main()
