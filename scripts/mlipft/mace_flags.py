"""The command-line flags of the pinned ``mace_run_train`` (mace-torch 0.3.16).

``config/schemas/mace_run_train_flags.json`` is a snapshot of mace's own argument parser, one
entry per flag: its ``kind`` (``switch``: store_true, ``switch_off``: store_false, ``value``),
and for a value its ``type`` (the name of mace's argparse type function) and ``choices``. It is
committed so that validating a strategy does not import torch (importing ``mace.tools`` takes
seconds; the config check runs at every Snakemake start); ``tests/test_registry.py``
regenerates it from the installed mace and fails when the two disagree. Regenerate it with
``PYTHONPATH=scripts python -m mlipft.mace_flags``.

:data:`TYPES` reimplements each of mace's type functions (a value is checked exactly as
``argparse`` would convert it: ``TYPES[type](text)`` raises on a value mace refuses).
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parents[2] / "config" / "schemas" / "mace_run_train_flags.json"


def str2bool(value: str) -> bool:
    """mace.tools.arg_parser.str2bool."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise ValueError("Boolean value expected.")


def check_float_or_none(value: str) -> float | None:
    """mace.tools.arg_parser.check_float_or_none."""
    try:
        return float(value)
    except ValueError:
        if value != "None":
            raise
        return None


#: mace's argparse type functions by name (argparse's default, no ``type=``, is ``str``), and
#: how a message names them. ``read_yaml`` opens a file at mace's start: checked as a string.
TYPES = {"str": str, "int": int, "float": float, "str2bool": str2bool,
         "check_float_or_none": check_float_or_none, "read_yaml": str}
TYPE_NAMES = {"str": "string", "int": "int", "float": "float", "str2bool": "boolean (true/false)",
              "check_float_or_none": "float (or None)", "read_yaml": "YAML file name"}


def snapshot_from_parser() -> dict[str, dict]:
    """``{flag: {"kind": ..., "type": ..., "choices": [...]}}`` read from mace's parser."""
    from mace.tools import build_default_arg_parser

    parser = build_default_arg_parser()
    flags = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._StoreTrueAction):
            entry = {"kind": "switch"}
        elif isinstance(action, argparse._StoreFalseAction):
            entry = {"kind": "switch_off"}
        elif type(action) is argparse._StoreAction:
            type_name = "str" if action.type is None else getattr(action.type, "__name__", repr(action.type))
            if type_name not in TYPES:
                raise ValueError(f"--{action.dest}: mace type {type_name!r} unknown to mlipft.mace_flags.TYPES")
            entry = {"kind": "value", "type": type_name}
            if action.choices is not None:
                entry["choices"] = list(action.choices)
        else:
            raise ValueError(f"{action.option_strings}: argparse action {type(action).__name__} unknown to mlipft.mace_flags")
        for opt in action.option_strings:
            if opt.startswith("--"):
                flags[opt[2:]] = entry
    return dict(sorted(flags.items()))


@lru_cache(maxsize=None)
def _read(path: str) -> str:
    return Path(path).read_text()


def load_snapshot(path: Path = SNAPSHOT) -> dict[str, dict]:
    """The snapshot (a fresh copy: callers may change it)."""
    return json.loads(_read(str(path)))


def dumps(flags: dict[str, dict]) -> str:
    """One line per flag (a reviewable diff when mace changes)."""
    lines = [f" {json.dumps(name)}: {json.dumps(entry)}" for name, entry in flags.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


if __name__ == "__main__":
    SNAPSHOT.write_text(dumps(snapshot_from_parser()))
    print(f"wrote {SNAPSHOT}")
