# Shared set-up: config validation (schema + cross-references), paths and input functions.
import json
import os
import sys
from pathlib import Path

from snakemake.utils import validate

SCRIPTS = Path(workflow.basedir) / "scripts"
sys.path.insert(0, str(SCRIPTS))
# Jobs run `python -m mlipft.<module>` and mace's CLIs from this interpreter's environment
# (a conda env of a rule, activated by Snakemake, comes first on PATH and wins).
os.environ["PYTHONPATH"] = os.pathsep.join([str(SCRIPTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

from mlipft import config as cfg  # noqa: E402
from mlipft.registry import strategies_from_config  # noqa: E402

validate(config, schema="../config/schemas/config.schema.yaml")
try:
    cfg.check(config, root=workflow.basedir)
except cfg.ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

SCALE = config["scale"]
SC = config["scales"][SCALE]
RES = config.get("results_dir", f"results/{SCALE}")
DATA = f"data/{config['world']}/{SCALE}"
STRATEGIES = strategies_from_config(config)
FIGURES = list(config["figures"])


wildcard_constraints:
    benchmark=r"[A-Za-z0-9]+",
    trainset=r"[A-Za-z0-9_]+",
    fraction=r"[0-9.e-]+",
    foundation=r"[A-Za-z0-9_]+",
    strategy=r"[A-Za-z0-9_]+",
    e0s=r"average|estimated|foundation|isolated",
    seed=r"\d+",
    corpus=r"[A-Za-z0-9_]+",
    replay=r"[A-Za-z0-9_]+",


def bench_file(benchmark, name):
    return f"{DATA}/benchmarks/{benchmark}/{name}.xyz"


def foundation_model(name):
    return f"{RES}/foundations/{name}/model.model"


def run_dir(run):
    return f"{RES}/{run.path}"


def runs_of(figure):
    return cfg.runs_for_figure(config, figure)


def figure_outputs(figure):
    return [f"{RES}/figures/{figure}.png", f"{RES}/figures/{figure}.pdf"]
