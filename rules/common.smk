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
# These are set for the jobs, not required from the user (hence no `envvars:` directive).
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")])),
    PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
)

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


RUN = "runs/{benchmark}/{trainset}/f{fraction}/{foundation}/{strategy}/e0-{e0s}/seed{seed}"


# ---- input functions and parameters of the rules (kept here: rule files hold only rules) ----


def pretrain_spec(wildcards, input):
    found = config["foundations"][wildcards.foundation]
    entry = {"uses_foundation": False, "multihead": False, "mace_args": found["model"]}
    return json.dumps({
        "strategy_name": f"pretrain_{wildcards.foundation}", "strategy": entry,
        "e0_mode": "average", "name": wildcards.foundation, "seed": config["seed"],
        "train_file": input.train, "valid_file": input.valid,
        "max_num_epochs": SC["pretrain"]["max_num_epochs"], "batch_size": SC["pretrain"]["batch_size"],
        "device": config["device"], "default_dtype": config["default_dtype"],
        "common": config["training"]["common"],
    })


def finetune_inputs(w):
    strategy = STRATEGIES[w.strategy]
    bench = config["benchmarks"][w.benchmark]
    inputs = {
        "train": f"{RES}/trainsets/{w.benchmark}/{w.trainset}/f{w.fraction}/seed{w.seed}.xyz",
        "valid": bench_file(w.benchmark, bench["validsets"][w.trainset]),
        "e0s": f"{RES}/e0s/{w.benchmark}/{w.trainset}/f{w.fraction}/seed{w.seed}/{w.foundation}.json",
        "foundation": foundation_model(w.foundation),
    }
    if strategy.multihead:
        inputs["replay"] = f"{RES}/replay/{w.benchmark}/{strategy.replay}.xyz"
    return inputs


def finetune_spec(w, input):
    strategy = STRATEGIES[w.strategy]
    found = config["foundations"][w.foundation]
    return json.dumps({
        "strategy_name": w.strategy, "strategy": config["strategies"][w.strategy],
        "e0_mode": w.e0s, "name": w.strategy, "seed": int(w.seed),
        "train_file": input.train, "valid_file": input.valid,
        "foundation_model": input.foundation if strategy.uses_foundation else None,
        "replay_file": input.get("replay"),
        "num_samples_pt": SC["finetune"].get("num_samples_pt"),
        "max_num_epochs": SC["finetune"]["max_num_epochs"], "batch_size": SC["finetune"]["batch_size"],
        "device": config["device"], "default_dtype": config["default_dtype"],
        "common": config["training"]["common"],
        "scratch_model": found.get("model", {}),
    })


def neb_reactions(w):
    reactions = set()
    for name, fig in config["figures"].items():
        if fig["kind"] == "neb_profiles" and fig["benchmark"] == w.benchmark:
            reactions.update(fig["neb_reactions"])
    return " ".join(sorted(reactions))


def strategy_labels(figure):
    return json.dumps({s: STRATEGIES[s].label for s in cfg.strategy_names(config, figure)})
