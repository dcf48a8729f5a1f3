"""Compare a run's figure tables with reference tables of an earlier version, and print, per
table, its rows and the largest relative difference of its float columns ("bit-exact" when
there is none). Strings and integers must be equal; `testset` (the previous version's name) is
read as `evalset`, and a `variant` column, new since, must be `base` throughout.

    python benchmarks/compare_tables.py tests/data/reference_tables/mini results/mini/tables
    python benchmarks/compare_tables.py REF TABLES --pattern 'fig06c_*.csv' --rtol 1e-3   # exit 1 above

With ``--rtol`` it exits 1 when a table differs by more (tests/slurm_smoke.sh: the SLURM run's
tables against the smoke references).

The mini-scale references (commit 7d536e3's `snakemake fig06c sn2_test_errors`) are too slow for
CI (about 13 min); the smoke-scale ones are checked by tests/test_workflow.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

RENAMED = {"testset": "evalset"}
#: Magnitudes below this are zero up to round-off (in any unit of the tables: eV, meV, A,
#: fractions). A relative energy of a symmetric reaction's end image, E(product) - E(reactant)
#: of two ~360 eV totals, is a few ulp: -2.8e-13 eV on one CPU, +3.4e-13 on another. Relative to
#: itself that is a difference of 2.2, relative to this floor 6e-5.
ZERO = 1e-8


def differences(reference: Path, tables: Path, pattern: str = "*.csv") -> dict[str, tuple[int, float, bool]]:
    """Per reference table: rows, largest relative float difference (relative to the reference
    value, or to :data:`ZERO` when it is smaller: round-off around zero is not a difference),
    bit-exact. Raises
    AssertionError on a missing table, another row count, or unequal strings/integers."""
    out = {}
    for ref_path in sorted(Path(reference).glob(pattern)):
        ref = pd.read_csv(ref_path).rename(columns=RENAMED)
        new = pd.read_csv(Path(tables) / ref_path.name)
        assert len(new) == len(ref), f"{ref_path.name}: {len(new)} rows, reference {len(ref)}"
        if "variant" in new.columns:
            assert set(new.variant) == {"base"}, ref_path.name
        worst, exact = 0.0, True
        for col in ref.columns:
            a, b = ref[col], new[col]
            if pd.api.types.is_float_dtype(a.dtype):
                x, y = a.to_numpy(), b.to_numpy(float)
                if len(x):
                    worst = max(worst, float(np.nanmax(np.abs(x - y) / np.maximum(np.abs(x), ZERO))))
                exact &= bool(np.array_equal(x, y, equal_nan=True))
            else:
                assert a.astype(str).tolist() == b.astype(str).tolist(), f"{ref_path.name}: column {col} differs"
        out[ref_path.name] = (len(ref), worst, exact)
    if not out:
        raise AssertionError(f"no reference tables {pattern} in {reference}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("tables", type=Path)
    parser.add_argument("--pattern", default="*.csv", help="reference tables to compare (a glob; default all)")
    parser.add_argument("--rtol", type=float, help="exit 1 when a table differs by more than this (relative)")
    args = parser.parse_args(argv)
    try:
        rows = differences(args.reference, args.tables, args.pattern)
    except AssertionError as err:
        sys.exit(f"differ: {err}")
    for name, (n, worst, exact) in rows.items():
        print(f"{name:36s} rows {n:5d}  max relative difference {worst:.2e}{'  bit-exact' if exact else ''}")
    worse = sorted(name for name, (_, worst, _) in rows.items() if args.rtol is not None and worst > args.rtol)
    if worse:
        sys.exit(f"differ by more than {args.rtol} relative: {', '.join(worse)}")


if __name__ == "__main__":
    main()
