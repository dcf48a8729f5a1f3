"""The command-line flags of the pinned ``mace_run_train`` (mace-torch 0.3.16).

``config/schemas/mace_run_train_flags.json`` is a snapshot of mace's own argument parser (name ->
kind), committed so that validating a strategy does not import torch; ``tests/test_registry.py``
regenerates it from the installed mace and fails when the two disagree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parents[2] / "config" / "schemas" / "mace_run_train_flags.json"


def snapshot_from_parser() -> dict[str, str]:
    """``{flag: kind}`` read from mace's parser; kind is ``switch`` (store_true) or ``value``."""
    from mace.tools import build_default_arg_parser

    parser = build_default_arg_parser()
    flags = {}
    for action in parser._actions:
        for opt in action.option_strings:
            if not opt.startswith("--"):
                continue
            if isinstance(action, argparse._HelpAction):
                continue
            kind = "switch" if isinstance(action, argparse._StoreTrueAction) else "value"
            flags[opt[2:]] = kind
    return dict(sorted(flags.items()))


def load_snapshot(path: Path = SNAPSHOT) -> dict[str, str]:
    return json.loads(Path(path).read_text())


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(snapshot_from_parser(), indent=1) + "\n")
    print(f"wrote {SNAPSHOT}")
