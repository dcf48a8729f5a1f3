# Shared set-up: config validation (schema + cross-references), paths and input functions.
import importlib
import json
import os
import shlex
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
    corpus=r"[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*",  # a corpus, or a union a+b (its E0s only)
    replay=r"[A-Za-z0-9_]+",


def bench_file(benchmark, name):
    return f"{DATA}/benchmarks/{benchmark}/{name}.xyz"


def foundation_model(name):
    """Foundations are data: generated (mini world, committed) or downloaded (paper world)."""
    return f"{DATA}/foundations/{name}/model.model"


def run_dir(run):
    return f"{RES}/{run.path}"


def runs_of(figure):
    return cfg.runs_for_figure(config, figure)


def trainset_file(run):
    """The training subset a run of a figure is trained on (the subsample_trainset output)."""
    return f"{RES}/trainsets/{run.benchmark}/{run.trainset}/f{run.fraction}/seed{run.seed}.xyz"


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
        "train_file": list(input.train), "valid_file": list(input.valid), "corpus_fraction": found.get("corpus_fraction"),
        "corpus_filter": config.get("corpus_filter"),
        "max_num_epochs": SC["pretrain"]["max_num_epochs"], "batch_size": SC["pretrain"]["batch_size"],
        "device": config["device"], "default_dtype": config["default_dtype"],
        "common": {**config["training"]["common"], **config["training"].get("pretrain", {})},
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
        "compute_stress": bool(config["benchmarks"][w.benchmark].get("compute_stress", False)),
        # a from-scratch model knows only the benchmark's elements (whose E0s it is given)
        "scratch_model": {k: v for k, v in found.get("model", {}).items() if k != "atomic_numbers"},
    })


def neb_reactions(w):
    reactions = set()
    for name, fig in config["figures"].items():
        if fig["kind"] == "neb_profiles" and fig["benchmark"] == w.benchmark:
            reactions.update(fig["neb_reactions"])
    return " ".join(sorted(reactions))


def strategy_labels(figure):
    return json.dumps({s: STRATEGIES[s].label for s in cfg.strategy_names(config, figure)})


# ---- the mini world's generated artifacts (committed under data/mini/<scale>/) ----

if config["world"] == "mini":
    from mlipft.mini.corpus import ELEMENTS as MINI_ELEMENTS  # noqa: E402

    MINI_LEVELS = {"corpus": "GFN1-xTB (tblite)"}
    MINI_LEVELS.update({
        b: importlib.import_module(f"mlipft.mini.{spec['generator']}").CARD["level"].split(" (")[0]
        for b, spec in config["benchmarks"].items()
    })


def corpus_file(corpus, name):
    return f"{DATA}/corpora/{corpus}/{name}"


def foundation_corpus(w, name):
    """Pretraining inputs, one per corpus of the foundation (a list when it trains on a union);
    ancient(): committed artifacts keep arbitrary checkout mtimes."""
    return [ancient(corpus_file(c, name)) for c in cfg.corpus_parts(config["foundations"][w.foundation]["corpus"])]


def foundation_e0s(w):
    """The average E0s a foundation is pretrained with: its corpus's, or its union's."""
    return ancient(corpus_file(cfg.corpus_name(config["foundations"][w.foundation]["corpus"]), "e0s.json"))


def corpus_e0s_inputs(w):
    """Training files of a corpus, or of each part of a union ``a+b``, and the isolated atoms."""
    parts = cfg.corpus_parts(w.corpus)
    return {"train": [ancient(corpus_file(c, "train.xyz")) for c in parts],
            "isolated": ancient(corpus_file(parts[0], "isolated_atoms.xyz"))}


def mini_replay_inputs(w):
    rep = config["replay"][w.replay]
    bench = config["benchmarks"][w.benchmark]
    if "combine" in rep:
        return {"parts": [f"{RES}/replay/{w.benchmark}/{part}.xyz" for part in rep["combine"]]}
    return {"corpus": ancient(corpus_file(rep["corpus"], "train.xyz")),
            "target": bench_file(w.benchmark, bench["trainsets"][0])}


def mini_replay_args(w, input):
    rep = config["replay"][w.replay]
    if "combine" in rep:
        return f"--combine {' '.join(input.parts)}"
    return (f"--corpus {input.corpus} --target {input.target} --mode {rep['mode']} "
            f"--n {SC['finetune'].get('num_samples_pt', 100)} --seed {config['seed']}")


def benchmark_outputs(name):
    """Every file a mini benchmark generator writes: its FILES (extxyz) and EXTRA_FILES."""
    generator = importlib.import_module(f"mlipft.mini.{config['benchmarks'][name]['generator']}")
    outputs = {f: bench_file(name, f) for f in generator.FILES}
    outputs.update({Path(f).stem: f"{DATA}/benchmarks/{name}/{f}" for f in getattr(generator, "EXTRA_FILES", ())})
    return outputs


def quality_datasets(w):
    """The common foundation-level test set and each benchmark's target-level test set."""
    data = {"test": corpus_file(config["foundation_testset"], "test.xyz")}
    data.update({b: bench_file(b, spec["test"]) for b, spec in config["benchmarks"].items()})
    return {k: ancient(v) for k, v in data.items()}


def quality_args(w, input):
    levels = {b: MINI_LEVELS[b] for b in config["benchmarks"]}
    levels["test"] = MINI_LEVELS["corpus"]
    args = " ".join(f"--dataset {k}={v} --level-of {shlex.quote(f'{k}={levels[k]}')}"
                    for k, v in input.items() if k != "model")
    if config.get("corpus_filter"):
        args += f" --filter test={config['corpus_filter']}"
    return args


def mini_world_files():
    """Every committed artifact of the mini world at the current scale, with its level of
    theory and the rule that generates it (the manifest's rows)."""
    entries = {}
    for corpus in SC.get("corpora", {}):
        names = ["test.xyz"] if corpus == config.get("foundation_testset") else ["train.xyz", "valid.xyz", "e0s.json"]
        for name in [*names, "isolated_atoms.xyz", "summary.json"]:
            maker = "corpus_e0s" if name == "e0s.json" else (
                "generate_testset" if corpus == config.get("foundation_testset") else "generate_corpus")
            entries[corpus_file(corpus, name)] = (MINI_LEVELS["corpus"], maker)
    for bench in config["benchmarks"]:
        for path in [*benchmark_outputs(bench).values(), f"{DATA}/benchmarks/{bench}/summary.json"]:
            entries[path] = (MINI_LEVELS[bench], f"generate_benchmark_{bench}")
    for found, spec in config["foundations"].items():
        parts = cfg.corpus_parts(spec["corpus"])
        if len(parts) > 1:  # a union's average E0s
            entries[corpus_file(cfg.corpus_name(parts), "e0s.json")] = (MINI_LEVELS["corpus"], "corpus_e0s")
        level = f"MACE fitted to the {' + '.join(parts)} corpus ({MINI_LEVELS['corpus']})"
        for name in ("model.model", "loss_curves.csv", "trainable.json"):
            entries[f"{DATA}/foundations/{found}/{name}"] = (level, "pretrain_foundation")
        entries[f"{DATA}/foundations/{found}/quality.csv"] = ("evaluation", "foundation_quality")
    entries[f"{DATA}/foundation_quality.csv"] = ("evaluation", "foundation_quality_table")
    return entries


def manifest_entries(w, input):
    return json.dumps({str(Path(p).relative_to(DATA)): {"level": level, "command": f"snakemake {p} (rule {maker})"}
                       for p, (level, maker) in mini_world_files().items()})
