"""What the rules need from the configuration: job specs, input lists and arguments.

The rule files stay thin (inputs, outputs, params, resources, log, benchmark, conda and a call
into the package); everything they compute from the config is here, where it is unit-tested.
Paths come from :class:`mlipft.paths.Paths`; Snakemake-only wrappers (``ancient``, ``unpack``)
stay in ``rules/common.smk``.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path

from . import config as cfg
from .paths import Paths, Run, split_selection
from .registry import epochs_factor, strategy_from_config, variant_entry


def scale(config: dict) -> dict:
    return config["scales"][config["scale"]]


def paths(config: dict) -> Paths:
    """The results root (``results_dir``, default ``results/<scale>``) and the data root
    (``data/<world>/<scale>``)."""
    return Paths(config.get("results_dir", f"results/{config['scale']}"),
                 f"data/{config['world']}/{config['scale']}")


# ---- fine-tunes ----

def run_of(wildcards) -> Run:
    """The run of a job's wildcards."""
    return Run(**{k: wildcards[k] for k in ("benchmark", "trainset", "fraction", "foundation", "strategy", "e0s",
                                             "variant", "seed")})


def finetune_inputs(config: dict, p: Paths, run: Run) -> dict[str, str]:
    """Training subset, validation file, E0s, foundation and (multihead) replay set of a run."""
    entry = variant_entry(config, run.strategy, run.variant)
    bench = config["benchmarks"][run.benchmark]
    inputs = {
        "train": p.trainset(run),
        "valid": set_file(config, p, run.benchmark, bench["validsets"][run.trainset]),
        "e0s": p.e0s(run),
        "foundation": p.foundation_model(run.foundation),
    }
    if entry.get("multihead"):
        inputs["replay"] = p.replay(run.benchmark, entry["replay"])
    return inputs


def finetune_epochs(config: dict, run: Run) -> int:
    """Epochs of a fine-tune: the scale's ``max_num_epochs``, or its ``epochs_by_strategy``
    entry for the run's strategy, times the variant's ``epochs_factor``."""
    sc = scale(config)["finetune"]
    base = (sc.get("epochs_by_strategy") or {}).get(run.strategy, sc["max_num_epochs"])
    return max(1, round(base * epochs_factor(config, run.variant)))


#: Cost of one epoch of a multihead fine-tune relative to a single-head one (the replay head's
#: periodic structures; benchmarks/profile_finetune.py measures 1.5-3x): a scheduling estimate.
MULTIHEAD_EPOCH_COST = 3


def finetune_priority(config: dict, run: Run) -> int:
    """Scheduling priority of a fine-tune: its expected cost (epochs, times the multihead
    factor), so that the longest jobs start first and no long job is left alone at the tail."""
    multihead = bool(variant_entry(config, run.strategy, run.variant).get("multihead"))
    return int(finetune_epochs(config, run) * (MULTIHEAD_EPOCH_COST if multihead else 1))


def finetune_spec(config: dict, run: Run, inputs) -> str:
    """The JSON spec of one fine-tune (mlipft.train): the strategy with the run's variant
    applied, its E0 mode, files, epochs (times the variant's factor) and shared settings."""
    entry = variant_entry(config, run.strategy, run.variant)
    strategy = strategy_from_config(run.strategy, entry)
    found = config["foundations"][run.foundation]
    sc = scale(config)["finetune"]
    epochs = finetune_epochs(config, run)
    start = ((config.get("variants") or {}).get(run.variant) or {}).get("stage_two_start_fraction")
    if start is not None:  # a Stage Two schedule whose start scales with the world's epochs
        entry = {**entry, "mace_args": {**entry.get("mace_args", {}), "stage_two": True,
                                        "start_stage_two": max(1, round(float(start) * epochs))}}
    return json.dumps({
        "strategy_name": run.strategy, "strategy": entry,
        "e0_mode": run.e0s, "name": run.strategy, "seed": int(run.seed),
        "train_file": inputs["train"], "valid_file": inputs["valid"],
        "foundation_model": inputs["foundation"] if strategy.uses_foundation else None,
        "replay_file": inputs.get("replay"),
        "num_samples_pt": sc.get("num_samples_pt"),
        "max_num_epochs": epochs, "batch_size": sc["batch_size"],
        "device": config["device"], "default_dtype": config["default_dtype"],
        "common": config["training"]["common"],
        "compute_stress": bool(config["benchmarks"][run.benchmark].get("compute_stress", False)),
        # a from-scratch model knows only the benchmark's elements (whose E0s it is given)
        "scratch_model": {k: v for k, v in found.get("model", {}).items() if k != "atomic_numbers"},
    })


def pretrain_spec(config: dict, foundation: str, train: list[str], valid: list[str]) -> str:
    found = config["foundations"][foundation]
    entry = {"uses_foundation": False, "multihead": False, "mace_args": found["model"]}
    sc = scale(config)["pretrain"]
    return json.dumps({
        "strategy_name": f"pretrain_{foundation}", "strategy": entry,
        "e0_mode": "average", "name": foundation, "seed": config["seed"],
        "train_file": list(train), "valid_file": list(valid), "corpus_fraction": found.get("corpus_fraction"),
        "corpus_filter": config.get("corpus_filter"),
        "max_num_epochs": sc["max_num_epochs"], "batch_size": sc["batch_size"],
        "device": config["device"], "default_dtype": config["pretrain_dtype"],
        "common": {**config["training"]["common"], **config["training"].get("pretrain", {})},
    })


def md_entry(config: dict, benchmark: str, where: str = "") -> dict:
    """A benchmark's ``md`` entry (start structure, RDF pairs, reference); a clear error when absent."""
    entry = config["benchmarks"][benchmark].get("md")
    if not entry:
        raise KeyError(f"config entry benchmarks.{benchmark}.md is not set: {benchmark} declares no MD start "
                       f"structure{' (needed by ' + where + ')' if where else ''}")
    return entry


def reference_files(config: dict, p: Paths, benchmark: str) -> dict[str, str]:
    """The reference MLIP of a benchmark's liquid structure (the paper's Behler-Parrinello
    network, here a MACE model trained from scratch on every target-level frame), next to the
    benchmark's files: model, loss curves, trainable counts and the RDFs of its long MD."""
    return {"model": p.bench_file(benchmark, "reference_mlip.model"),
            "loss_curves": p.bench_file(benchmark, "reference_mlip_loss_curves.csv"),
            "trainable": p.bench_file(benchmark, "reference_mlip_trainable.json"),
            "e0s": p.bench_file(benchmark, "reference_mlip_e0s.json"),
            "rdf": p.bench_file(benchmark, md_entry(config, benchmark)["reference_rdf"])}


def reference_spec(config: dict, benchmark: str, train: list[str], valid: list[str]) -> str:
    """The JSON spec (mlipft.train) of a benchmark's reference MLIP: the registry's ``scratch``
    strategy with the main foundation's architecture, isolated-atom E0s, and the scale's
    ``reference`` epochs, trained on every given file."""
    found = config["foundations"][config["main_foundation"]]
    sc = scale(config)["reference"]
    return json.dumps({
        "strategy_name": "scratch", "strategy": config["strategies"]["scratch"],
        "e0_mode": "isolated", "name": "reference", "seed": int(config["seed"]),
        "train_file": list(train), "valid_file": list(valid),
        "max_num_epochs": sc["max_num_epochs"], "batch_size": sc["batch_size"],
        "device": config["device"], "default_dtype": config["default_dtype"],
        "common": config["training"]["common"],
        "compute_stress": bool(config["benchmarks"][benchmark].get("compute_stress", False)),
        "scratch_model": {k: v for k, v in found.get("model", {}).items() if k != "atomic_numbers"},
    })


# ---- data validation ----

def verify_committed(config: dict, p: Paths) -> list[str]:
    """Problems of the committed mini world against its manifest (sha256 of every file), one
    line each naming the file; empty when they match, in the paper world, when the scale has no
    manifest (the smoke world is generated, not committed) or with ``verify_manifest: false``."""
    from . import manifest

    path = Path(p.data_file("MANIFEST.tsv"))
    if config["world"] != "mini" or not config.get("verify_manifest", True) or not path.exists():
        return []
    return manifest.check(p.data, path)



def validation_files(config: dict, p: Paths, benchmark: str) -> dict[str, list[str]]:
    """The files of a benchmark that training reads, by role of mlipft.validate_data: every
    training and validation set it declares, its test set and its isolated atoms. They do not
    depend on the figures, so adding a figure never re-runs the validation (nor what follows it);
    evaluation sets are checked one by one (:func:`evalset_validation_files`)."""
    bench = config["benchmarks"][benchmark]
    derived = bench.get("derived") or {}  # subsets of files checked here (mlipft.derive)
    files = {"train": sorted({p.bench_file(benchmark, t) for t in bench["trainsets"] if t not in derived}),
             "valid": sorted({p.bench_file(benchmark, v) for v in bench["validsets"].values() if v not in derived}),
             "test": [p.bench_file(benchmark, bench["test"])],
             "isolated": [p.bench_file(benchmark, "isolated_atoms")]}
    return files


def evalset_validation_files(config: dict, p: Paths, benchmark: str, evalset: str) -> dict[str, list[str]]:
    """One evaluation set of a benchmark (checked before a model is evaluated on it), with the
    benchmark's isolated atoms for the unit bounds."""
    return {"evalset": [evalset_file(config, p, benchmark, evalset)],
            "isolated": [evalset_isolated(config, p, benchmark, evalset)]}


def evalset_isolated(config: dict, p: Paths, benchmark: str, evalset: str) -> str:
    """The isolated atoms an evaluation set's unit bounds are checked against: its corpus's for
    a corpus test set or a set drawn from one (another level of theory), else the benchmark's."""
    corpus = evalset_corpus(config, benchmark, evalset)
    if corpus is not None:
        return p.corpus_file(corpus, "isolated_atoms.xyz")
    return p.bench_file(benchmark, "isolated_atoms")


def evalset_corpus(config: dict, benchmark: str, evalset: str) -> str | None:
    """The pretraining corpus an evaluation set comes from (a corpus test set, or a derived set
    drawn from one), or None for a set of the benchmark's own data."""
    spec = cfg.benchmark_evalsets(config, benchmark)[evalset]
    corpus = spec.get("corpus")
    if corpus is None and "file" in spec:
        corpus = ((config["benchmarks"][benchmark].get("derived") or {}).get(spec["file"]) or {}).get("corpus")
    return corpus


def validation_args(config: dict, benchmark: str, inputs: dict[str, list[str]], evalset: str | None = None) -> str:
    """Arguments of ``python -m mlipft.validate_data`` for a benchmark, or one of its evaluation
    sets (shell-quoted). A set drawn from a pretraining corpus keeps every rule but the force
    bound, as replay sets do (mlipft.replay): the corpora's rattled structures reach 60-70 eV/A
    in eV/A by construction."""
    args = [f"--file {shlex.quote(f'{role}={path}')}" for role, paths in inputs.items() if role != "isolated"
            for path in paths]
    args.append(f"--isolated {shlex.quote(inputs['isolated'][0])}")
    if evalset is not None and evalset_corpus(config, benchmark, evalset) is not None:
        args.append("--max-force inf")
    if config["benchmarks"][benchmark].get("compute_stress"):
        args.append("--stress train,valid,test")
    if "train" in inputs:
        args.append("--disjoint train,valid,test")
    return " ".join(args)


# ---- analyses ----

def evalset_file(config: dict, p: Paths, benchmark: str, evalset: str) -> str:
    """The extxyz of a benchmark's evaluation set (mlipft.config.benchmark_evalsets)."""
    spec = cfg.benchmark_evalsets(config, benchmark)[evalset]
    if "corpus" in spec:
        return p.corpus_file(spec["corpus"], "test.xyz")
    return set_file(config, p, benchmark, spec["file"])


def set_file(config: dict, p: Paths, benchmark: str, name: str) -> str:
    """The extxyz of a named set of a benchmark: a derived set (``benchmarks.<b>.derived``,
    written under results/ by mlipft.derive) or a file of the benchmark itself."""
    if name in (config["benchmarks"][benchmark].get("derived") or {}):
        return p.derived(benchmark, name)
    return p.bench_file(benchmark, name)


def derive_inputs(config: dict, p: Paths, benchmark: str, name: str) -> dict[str, str]:
    """The files a derived set is drawn from: ``data`` (a file of the benchmark, or a corpus's
    test file) and, for an element-matched set, ``elements`` (the benchmark file whose elements
    it keeps)."""
    entry = config["benchmarks"][benchmark]["derived"][name]
    if "corpus" in entry:
        return {"data": p.corpus_file(entry["corpus"], "test.xyz"),
                "elements": p.bench_file(benchmark, entry["elements_of"])}
    return {"data": p.bench_file(benchmark, entry["file"])}


def derive_args(config: dict, benchmark: str, name: str, inputs) -> str:
    """Arguments of ``python -m mlipft.derive`` for a derived set, less --input/--output
    (shell-quoted)."""
    entry = config["benchmarks"][benchmark]["derived"][name]
    if "corpus" in entry:
        args = ["--elements-of", shlex.quote(str(inputs["elements"]))]
        if config.get("corpus_filter"):
            args += ["--filter", shlex.quote(config["corpus_filter"])]
        return " ".join(args)
    return f"--match {shlex.quote(json.dumps(entry['match'], sort_keys=True))} --keep {shlex.quote(entry['keep'])}"


def eval_head(config: dict, run: Run, evalset: str) -> str:
    """The model head an evaluation reads: the evaluation set's ``head`` (``pt_head``: the replay
    head) for a multihead run, else ``Default`` (a single-head model has no other)."""
    spec = cfg.benchmark_evalsets(config, run.benchmark).get(evalset, {})
    if spec.get("head") and variant_entry(config, run.strategy, run.variant).get("multihead"):
        return spec["head"]
    return "Default"


def evalsets_of_run(index: dict[str, list[str]], p: Paths, run: Run) -> list[str]:
    """The evaluation sets of a run's errors table in :func:`run_evalsets`' index; an error
    naming the file when no configured figure reads the run's errors."""
    file = p.run_file(run, "errors")
    if file not in index:
        raise ValueError(f"{file}: no configured figure reads errors of this run, so it has no evaluation set "
                         f"(the sets of a run's errors table are those its figures select: add the run to a "
                         f"figure's grid)")
    return index[file]


def evalset_args(config: dict, run: Run, evalsets: list[str], files: list[str]) -> str:
    """Arguments of ``python -m mlipft.analysis.errors`` for a run's evaluation sets and their
    files (in the same order): ``--evalset NAME=FILE`` each, and ``--head NAME=HEAD`` where the
    set reads another head than the default (:func:`eval_head`), shell-quoted."""
    if len(evalsets) != len(files):
        raise ValueError(f"{len(evalsets)} evaluation sets but {len(files)} files")
    args = [f"--evalset {shlex.quote(f'{e}={f}')}" for e, f in zip(evalsets, files)]
    args += [f"--head {shlex.quote(f'{e}={eval_head(config, run, e)}')}" for e in evalsets]
    return " ".join(args)


def neb_reactions(config: dict, benchmark: str) -> list[str]:
    """Every reaction some NEB figure asks of this benchmark (each run computes them all once)."""
    reactions = set()
    for name, fig in config["figures"].items():
        if fig.get("neb_reactions") and benchmark in cfg.as_list(fig["benchmark"]):
            reactions.update(fig["neb_reactions"])
    return sorted(reactions)


# ---- figures ----

def foundation_dtype(config: dict, foundation: str) -> str:
    """The dtype a foundation is stored in: ``pretrain_dtype`` for one pretrained here (the mini
    world's), else the world's ``default_dtype`` (the paper world installs downloads in it)."""
    if config["foundations"][foundation].get("kind") == "pretrain":
        return config.get("pretrain_dtype", "float64")
    return config["default_dtype"]


def figure_inputs(config: dict, p: Paths, figure: str) -> dict[str, list[str]]:
    from . import figures

    kind = figures.kind(config["figures"][figure]["kind"])
    return kind.inputs(config, figure, cfg.runs_for_figure(config, figure), p)


def figure_tables(config: dict, p: Paths, figure: str) -> dict[str, str]:
    from . import figures

    return {t: p.table(figure, t) for t in figures.kind(config["figures"][figure]["kind"]).TABLES}


def input_files(files: dict[str, list[str] | str]) -> dict[str, list[str]]:
    """The files of a figure's inputs, for the rule's ``input:``: each selection of a per-run
    table (``<run>/errors.csv::<evalset>``, :func:`mlipft.paths.split_selection`) as its file,
    each file once per role, in order."""
    return {role: list(dict.fromkeys(split_selection(f)[0] for f in ([paths] if isinstance(paths, str) else paths)))
            for role, paths in files.items()}


def run_evalsets(figure_inputs: dict[str, dict[str, list[str] | str]]) -> dict[str, list[str]]:
    """The evaluation sets each per-run errors table must hold: ``{file: [evalset, ...]}``, every
    set some figure selects of it (sorted), from every figure's :func:`figure_inputs`. A run's
    evaluation job evaluates its model on all of them at once (one interpreter, one import of
    mace), so a set is evaluated once per run whichever figures read it."""
    sets: dict[str, set[str]] = {}
    for inputs in figure_inputs.values():
        for paths in inputs.values():
            for path in [paths] if isinstance(paths, str) else paths:
                file, evalset = split_selection(path)
                if evalset is not None:
                    sets.setdefault(file, set()).add(evalset)
    return {file: sorted(names) for file, names in sets.items()}


def role_args(files: dict[str, list[str] | str]) -> str:
    """``role=path`` arguments of ``python -m mlipft.figures`` (shell-quoted)."""
    return " ".join(shlex.quote(f"{role}={path}") for role, paths in files.items()
                    for path in ([paths] if isinstance(paths, str) else paths))


# ---- the mini world ----

def corpus_inputs(config: dict, p: Paths, foundation: str, name: str) -> list[str]:
    """A foundation's pretraining files, one per corpus (a list when it trains on a union)."""
    return [p.corpus_file(c, name) for c in cfg.corpus_parts(config["foundations"][foundation]["corpus"])]


def foundation_e0s(config: dict, p: Paths, foundation: str) -> str:
    """The average E0s a foundation is pretrained with: its corpus's, or its union's."""
    return p.corpus_file(cfg.corpus_name(config["foundations"][foundation]["corpus"]), "e0s.json")


def corpus_e0s_inputs(p: Paths, corpus: str) -> dict:
    """Training files of a corpus, or of each part of a union ``a+b``, and the isolated atoms."""
    parts = cfg.corpus_parts(corpus)
    return {"train": [p.corpus_file(c, "train.xyz") for c in parts],
            "isolated": p.corpus_file(parts[0], "isolated_atoms.xyz")}


def replay_inputs(config: dict, p: Paths, benchmark: str, replay: str, corpus_file=None) -> dict:
    """Inputs of a replay set: its parts (``combine``), or the corpus it is drawn from and the
    benchmark's first training file. ``corpus_file(name)``: where a corpus lives (default: the
    mini world's corpus train.xyz; the paper world passes its converted replay sources)."""
    rep = config["replay"][replay]
    if "combine" in rep:
        return {"parts": [p.replay(benchmark, part) for part in rep["combine"]]}
    bench = config["benchmarks"][benchmark]
    corpus = corpus_file(rep["corpus"]) if corpus_file else p.corpus_file(rep["corpus"], "train.xyz")
    return {"corpus": corpus, "target": p.bench_file(benchmark, bench["trainsets"][0])}


def replay_args(config: dict, replay: str, inputs) -> str:
    """mlipft.replay's arguments for a replay set (less --output): ``--combine`` its parts, or
    the corpus, target, mode, sample count (``num_samples_pt``; all when unset) and seed."""
    rep = config["replay"][replay]
    if "combine" in rep:
        return f"--combine {' '.join(shlex.quote(p) for p in inputs['parts'])}"
    n = scale(config)["finetune"].get("num_samples_pt")
    return (f"--corpus {shlex.quote(inputs['corpus'])} --target {shlex.quote(inputs['target'])} --mode {rep['mode']}"
            + (f" --n {int(n)}" if n else "") + f" --seed {config['seed']}")


def generator(config: dict, benchmark: str):
    return importlib.import_module(f"mlipft.mini.{config['benchmarks'][benchmark]['generator']}")


def mini_levels(config: dict) -> dict[str, str]:
    """Level of theory of the corpora and of each benchmark (from its generator's CARD)."""
    levels = {"corpus": "GFN1-xTB (tblite)"}
    levels.update({b: generator(config, b).CARD["level"].split(" (")[0] for b in config["benchmarks"]})
    return levels


def benchmark_outputs(config: dict, p: Paths, benchmark: str) -> dict[str, str]:
    """Every file a mini benchmark generator writes: its FILES (extxyz) and EXTRA_FILES."""
    gen = generator(config, benchmark)
    outputs = {f: p.bench_file(benchmark, f) for f in gen.FILES}
    outputs.update({Path(f).stem: p.bench_file(benchmark, f) for f in getattr(gen, "EXTRA_FILES", ())})
    return outputs


def quality_datasets(config: dict, p: Paths) -> dict[str, str]:
    """The common foundation-level test set and each benchmark's target-level test set."""
    data = {"test": p.corpus_file(config["foundation_testset"], "test.xyz")}
    data.update({b: p.bench_file(b, spec["test"]) for b, spec in config["benchmarks"].items()})
    return data


def quality_args(config: dict, inputs: dict[str, str]) -> str:
    levels_all = mini_levels(config)
    levels = {b: levels_all[b] for b in config["benchmarks"]}
    levels["test"] = levels_all["corpus"]
    args = " ".join(f"--dataset {shlex.quote(f'{k}={v}')} --level-of {shlex.quote(f'{k}={levels[k]}')}"
                    for k, v in inputs.items() if k != "model")
    if config.get("corpus_filter"):
        args += f" --filter test={config['corpus_filter']}"
    return args


def mini_world_files(config: dict, p: Paths) -> dict[str, tuple[str, str]]:
    """Every committed artifact of the mini world at the current scale, with its level of
    theory and the rule that generates it (the manifest's rows)."""
    levels = mini_levels(config)
    entries = {}
    testset = config.get("foundation_testset")
    for corpus in scale(config).get("corpora", {}):
        names = ["test.xyz"] if corpus == testset else ["train.xyz", "valid.xyz", "e0s.json"]
        for name in [*names, "isolated_atoms.xyz", "summary.json"]:
            maker = "corpus_e0s" if name == "e0s.json" else ("generate_testset" if corpus == testset else "generate_corpus")
            entries[p.corpus_file(corpus, name)] = (levels["corpus"], maker)
    for bench in config["benchmarks"]:
        for path in [*benchmark_outputs(config, p, bench).values(), p.bench_file(bench, "summary.json")]:
            entries[path] = (levels[bench], f"generate_benchmark_{bench}")
    for found, spec in config["foundations"].items():
        parts = cfg.corpus_parts(spec["corpus"])
        if len(parts) > 1:  # a union's average E0s
            entries[p.corpus_file(cfg.corpus_name(parts), "e0s.json")] = (levels["corpus"], "corpus_e0s")
        level = f"MACE fitted to the {' + '.join(parts)} corpus ({levels['corpus']})"
        folder = str(Path(p.foundation_model(found)).parent)
        for name in ("model.model", "loss_curves.csv", "trainable.json"):
            entries[f"{folder}/{name}"] = (level, "pretrain_foundation")
        entries[f"{folder}/quality.csv"] = ("evaluation", "foundation_quality")
    entries[f"{p.data}/foundation_quality.csv"] = ("evaluation", "foundation_quality_table")
    for bench, spec in config["benchmarks"].items():
        if (spec.get("md") or {}).get("reference_rdf"):
            level = f"MACE trained from scratch on the {bench} benchmark ({levels[bench]}): its reference MLIP"
            for role, path in reference_files(config, p, bench).items():
                entries[path] = (level if role != "rdf" else f"MD of the {bench} reference MLIP",
                                 f"reference_{'rdf' if role == 'rdf' else 'mlip'}_{bench}")
    return entries


def manifest_entries(config: dict, p: Paths) -> str:
    return json.dumps({str(Path(path).relative_to(p.data)): {"level": level, "command": f"snakemake {path} (rule {maker})"}
                       for path, (level, maker) in mini_world_files(config, p).items()})


# ---- figure targets ----

#: A panel figure's name: a figure number and a panel letter (``fig03a``).
PANEL = re.compile(r"(fig\d+)([a-z])")


def figure_groups(figures) -> dict[str, list[str]]:
    """Targets of figures made of panels: ``fig03`` -> ``[fig03a, fig03b]`` (every figure named
    ``fig<N><letter>`` whose ``fig<N>`` is not itself a figure), in the order given."""
    groups: dict[str, list[str]] = {}
    for name in figures:
        match = PANEL.fullmatch(name)
        if match and match.group(1) not in figures:
            groups.setdefault(match.group(1), []).append(name)
    return groups
