"""A new figure kind is one module of mlipft.figures plus one branch of the schema: nothing in
rules/ changes. The test adds a kind to a copy of the workflow and plans (fast tier) or builds
(slow tier, on the smoke run's trained models) a figure of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

SNAKEMAKE = [sys.executable, "-m", "snakemake"]

KIND = '''"""Histogram of per-structure energy errors, one line per strategy (a test kind)."""
import pandas as pd

from .common import collect_runs, pyplot, save

DESCRIPTION = "histogram of per-structure energy errors (meV/atom) per strategy"
TABLES = ("structures",)


def check(config, name, fig, axes):
    return None


def inputs(config, name, runs, paths):
    from ..config import evalsets

    return {"errors": [paths.errors(r, e) for r in runs for e in evalsets(config, name)]}


def collect(inputs, spec):
    return {"structures": collect_runs(inputs["errors"])}


def plot(tables, spec, outputs):
    plt = pyplot()
    fig, ax = plt.subplots()
    for strategy, sub in tables["structures"].groupby("strategy"):
        ax.hist(sub.energy_error, histtype="step", label=spec["labels"][strategy])
    ax.set_xlabel("Energy error (meV/atom)")
    ax.legend()
    save(fig, outputs)
'''

BRANCH = {
    "description": "kind error_histogram: per-structure energy errors per strategy",
    "allOf": [{"$ref": "#/$defs/figure_grid"}],
    "properties": {"kind": {"const": "error_histogram"}},
    "unevaluatedProperties": False,
}

FIGURE = {"figures": {"sn2_histogram": {
    "kind": "error_histogram", "description": "SN2 per-structure energy errors", "benchmark": "sn2",
    "strategies": ["naive", "lora"], "e0s": "estimated", "fractions": [1.0], "seeds": [0]}}}


def workflow_with_new_kind(root: Path, dest: Path) -> Path:
    """A copy of the workflow's code with the kind module and its schema branch added, and an
    overlay with one figure of it. Returns the overlay's path."""
    for name in ("Snakefile", "rules", "scripts", "config", "report", "profiles"):
        src = root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    (dest / "data").symlink_to(root / "data")
    (dest / "scripts" / "mlipft" / "figures" / "error_histogram.py").write_text(KIND)
    schema_path = dest / "config" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    schema["$defs"]["figure_error_histogram"] = BRANCH
    schema["properties"]["figures"]["additionalProperties"]["oneOf"].append({"$ref": "#/$defs/figure_error_histogram"})
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False, allow_unicode=True))
    overlay = dest / "histogram.yaml"
    overlay.write_text(yaml.safe_dump(FIGURE))
    return overlay


def test_new_kind_is_a_module_and_a_schema_branch(root, tmp_path):
    overlay = workflow_with_new_kind(root, tmp_path)
    for rules in (root / "rules").iterdir():
        assert (tmp_path / "rules" / rules.name).read_text() == rules.read_text()
    proc = subprocess.run(SNAKEMAKE + ["-n", "sn2_histogram", "--configfile", "config/config.yaml", str(overlay)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "collect_sn2_histogram" in out and "plot_sn2_histogram" in out
    # without its schema branch the kind is refused, naming the entry
    schema_path = tmp_path / "config" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    schema["properties"]["figures"]["additionalProperties"]["oneOf"].pop()
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False, allow_unicode=True))
    proc = subprocess.run(SNAKEMAKE + ["-n", "sn2_histogram", "--configfile", "config/config.yaml", str(overlay)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "figures.sn2_histogram.kind: 'error_histogram' is not a figure kind" in proc.stdout + proc.stderr
