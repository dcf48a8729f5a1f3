# Shared set-up: config layering and validation, constants, path helpers and thin wrappers over
# mlipft.workflow (the package computes every spec and input list; it is unit-tested there).
import json
import os
import sys
from pathlib import Path

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
from mlipft import figures as figure_kinds  # noqa: E402
from mlipft import paths as paths_module  # noqa: E402
from mlipft import workflow as wf  # noqa: E402

cfg.resolve(config)  # a world's unavailable_figures leave the grid
try:
    cfg.check_files(workflow.configfiles)  # strictly re-read: a duplicate key (Snakemake keeps the last) stops the run
    cfg.check(config, root=workflow.basedir)  # the schema (every key described), then cross-references
except cfg.ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

PATHS = wf.paths(config)
_problems = wf.verify_committed(config, PATHS)  # committed artifacts, checked when used
if _problems:
    raise WorkflowError(
        "the committed mini world does not match its manifest (data/mini/<scale>/MANIFEST.tsv):\n  "
        + "\n  ".join(_problems)
        + "\nRestore it with `git checkout -- data/mini`; if you changed it on purpose, rewrite the manifest and "
        "the data card with `snakemake mini_world --forcerun data_card --config verify_manifest=False`."
    )

SCALE = config["scale"]
SC = config["scales"][SCALE]
RES = PATHS.results
DATA = PATHS.data
FIGURES = list(config["figures"])
# each figure's inputs by role (its kind's `inputs`), once: the figure rules read them, and the
# evaluation sets every run's errors table must hold are gathered from them
FIGURE_INPUTS = {f: wf.figure_inputs(config, PATHS, f) for f in FIGURES}
RUN_EVALSETS = wf.run_evalsets(FIGURE_INPUTS)


wildcard_constraints:
    **paths_module.CONSTRAINTS,


def bench_file(benchmark, name):
    return PATHS.bench_file(benchmark, name)


def set_file(benchmark, name):
    """A named set of a benchmark: one of its files, or a derived set (mlipft.derive)."""
    return wf.set_file(config, PATHS, benchmark, name)


def md_entry(benchmark):
    """A benchmark's MD entry (start structure, RDF pairs, reference): benchmarks.<b>.md."""
    return wf.md_entry(config, benchmark)


def md_start(benchmark):
    return set_file(benchmark, md_entry(benchmark)["start"])


#: Benchmarks whose RDFs are compared with a reference MLIP's (benchmarks.<b>.md.reference_rdf).
REFERENCE_BENCHMARKS = [b for b, e in config["benchmarks"].items() if (e.get("md") or {}).get("reference_rdf")]


def foundation_model(name):
    """Foundations are data: generated (mini world, committed) or downloaded (paper world)."""
    return PATHS.foundation_model(name)


def corpus_file(corpus, name):
    return PATHS.corpus_file(corpus, name)


def run_log(rule):
    return PATHS.pattern(f"log:{rule}")


def run_benchmark(rule):
    return PATHS.pattern(f"benchmark:{rule}")


# ---- input functions and parameters of the rules (logic in mlipft.workflow) ----


def pretrain_spec(w, input):
    return wf.pretrain_spec(config, w.foundation, input.train, input.valid)


def finetune_inputs(w):
    return wf.finetune_inputs(config, PATHS, wf.run_of(w))


def finetune_spec(w, input):
    return wf.finetune_spec(config, wf.run_of(w), input)


def finetune_priority(w):
    return wf.finetune_priority(config, wf.run_of(w))


def _benchmark_data(files):
    """Benchmark files by role; ancient() in the mini world, whose committed files keep arbitrary
    checkout mtimes."""
    return {role: [ancient(p) if config["world"] == "mini" else p for p in paths] for role, paths in files.items()}


def validation_inputs(w):
    return _benchmark_data(wf.validation_files(config, PATHS, w.benchmark))


def validation_args(w, input):
    return wf.validation_args(config, w.benchmark, {k: list(v) for k, v in input.items()}, w.get("evalset"))


def evalset_validation_inputs(w):
    return _benchmark_data(wf.evalset_validation_files(config, PATHS, w.benchmark, w.evalset))


def evalset_file(w):
    return wf.evalset_file(config, PATHS, w.benchmark, w.evalset)


def run_evalsets(w):
    """The evaluation sets of a run's errors table (every set a figure selects of it)."""
    return wf.evalsets_of_run(RUN_EVALSETS, PATHS, wf.run_of(w))


def run_evalset_inputs(w):
    """Each evaluation set of a run's errors table, and its validation report."""
    sets = run_evalsets(w)
    return {"configs": [wf.evalset_file(config, PATHS, w.benchmark, e) for e in sets],
            "validated": [PATHS.evalset_validation(w.benchmark, e) for e in sets]}


def run_evalset_args(w, input):
    """``--evalset NAME=FILE --head NAME=HEAD`` of each evaluation set of a run's errors table."""
    return wf.evalset_args(config, wf.run_of(w), run_evalsets(w), list(input.configs))


def neb_reactions(w):
    return " ".join(wf.neb_reactions(config, w.benchmark))


def run_keys(w):
    return json.dumps(wf.run_of(w).keys())


# ---- the mini world's generated artifacts (committed under data/mini/<scale>/; ancient():
# committed artifacts keep arbitrary checkout mtimes) ----


def foundation_corpus(w, name):
    return [ancient(p) for p in wf.corpus_inputs(config, PATHS, w.foundation, name)]


def foundation_e0s(w):
    return ancient(wf.foundation_e0s(config, PATHS, w.foundation))


def corpus_e0s_inputs(w):
    inputs = wf.corpus_e0s_inputs(PATHS, w.corpus)
    return {"train": [ancient(p) for p in inputs["train"]], "isolated": ancient(inputs["isolated"])}


def mini_replay_inputs(w):
    inputs = wf.replay_inputs(config, PATHS, w.benchmark, w.replay)
    return {k: (v if k == "parts" else ancient(v)) for k, v in inputs.items()}


def replay_sources(w):
    """A drawn replay set's corpus and target training file, or a union's parts: the mini world's
    committed corpus (ancient); the own world's REF_* file; the paper world's split corpus pool
    (disjoint from its held-out test set), else its converted replay file."""
    if config["world"] == "mini":
        return mini_replay_inputs(w)
    if config["world"] == "own":
        return own_lib.replay_inputs(config, PATHS, w.benchmark, w.replay)
    return wf.replay_inputs(config, PATHS, w.benchmark, w.replay,
                            lambda sid: paper_lib.replay_corpus_file(config, PATHS, sid))


def replay_set_inputs(w):
    """A union's parts, or a drawn set's selection (rule select_replay) and the corpus it names."""
    sources = replay_sources(w)
    if "parts" in sources:
        return sources
    return {"selection": PATHS.replay_selection(w.benchmark, w.replay), "corpus": sources["corpus"]}


def replay_set_args(w, input):
    if "parts" in input.keys():
        return wf.replay_args(config, w.replay, input)
    import shlex

    return f"--from-selection {shlex.quote(input.selection)}"


def replay_select_args(w, input):
    return wf.replay_args(config, w.replay, input)


def benchmark_outputs(name):
    return wf.benchmark_outputs(config, PATHS, name)


def quality_datasets(w):
    return {k: ancient(v) for k, v in wf.quality_datasets(config, PATHS).items()}


def quality_args(w, input):
    return wf.quality_args(config, dict(input.items()))


def mini_world_files():
    return wf.mini_world_files(config, PATHS)


def manifest_entries(w, input):
    return wf.manifest_entries(config, PATHS)


if config["world"] == "mini":
    from mlipft.mini import ELEMENTS as MINI_ELEMENTS  # noqa: E402


# ---- repulsion (rules/analysis_repulsion.smk) ----


def repulsion_structures(w):
    return set_file(w.benchmark, config["benchmarks"][w.benchmark]["test"])


def repulsion_reference_inputs(w):
    """The test structures, and in the paper world the main foundation that is the reference."""
    inputs = {"structures": repulsion_structures(w)}
    if config["world"] != "mini":
        inputs["model"] = foundation_model(config["main_foundation"])
    return inputs


def repulsion_reference_args(w, input, threads):
    """The subcommand of the reference: `reference --level <the benchmark's xTB level>` (mini),
    else `model` on the main foundation, as it is stored, labelled as the reference."""
    import shlex

    if config["world"] == "mini":
        return f"reference --level {shlex.quote(wf.mini_levels(config)[w.benchmark])}"
    name = config["main_foundation"]
    return (f"model --model {shlex.quote(input.model)} --label {shlex.quote(f'foundation {name}')} "
            f"--default-dtype {wf.foundation_dtype(config, name)} --device {config['device']} --threads {threads}")


# ---- random structure search (rules/analysis_rss.smk) ----


def rss_params(benchmark):
    """The search's parameters: scales.<scale>.rss with the benchmark's own rss block (its units)."""
    return json.dumps({**(SC.get("rss") or {}), **(config["benchmarks"][benchmark].get("rss") or {})}, sort_keys=True)


def rss_level(benchmark, role):
    """The level a model is judged against: a fine-tuned one (role target) against the benchmark's
    level, a foundation against the foundation level (mini: gfn2 and gfn1, from the generators'
    cards); in the paper and own worlds the main foundation stands in for both (main)."""
    if config["world"] != "mini":
        return "main"
    levels = wf.mini_levels(config)
    name = levels[benchmark] if role == "target" else levels["corpus"].split(" (")[0]
    return {"GFN1-xTB": "gfn1", "GFN2-xTB": "gfn2"}[name]


def rss_reference_table(benchmark, role):
    return f"{RES}/rss/{benchmark}/reference-{rss_level(benchmark, role)}.csv"


def rss_reference_model(w):
    """The stand-in reference model of the paper and own worlds (none in the mini world)."""
    return [] if config["world"] == "mini" else [foundation_model(config["main_foundation"])]


def rss_reference_inputs(w):
    return {"structures": f"{RES}/rss/{w.benchmark}/structures.extxyz", "model": rss_reference_model(w)}


def rss_reference_args(w, input, threads):
    """`reference --level <xTB level>` (mini), or `reference --model <main foundation>` as stored."""
    import shlex

    if w.level != "main":
        return f"reference --level {shlex.quote(w.level)}"
    name = config["main_foundation"]
    return (f"reference --model {shlex.quote(input.model[0])} --label {shlex.quote(f'foundation {name}')} "
            f"--default-dtype {wf.foundation_dtype(config, name)} --device {config['device']}")


def rss_run_e0s(w):
    """Paper and own worlds: the run's E0 file, whose E0s minus the foundation's put the stand-in
    reference (the main foundation) on the fine-tuned model's energy scale."""
    return [] if config["world"] == "mini" else [PATHS.pattern("e0s", **dict(w.items()))]


def rss_single_points(w, role, input):
    """The reference single points on every relaxed structure: an xTB level (mini) or the main
    foundation (paper, own), shifted onto a fine-tuned run's energy scale by its E0s."""
    import shlex

    level = rss_level(w.benchmark, role)
    if level != "main":
        return f"--reference-level {level}"
    name = config["main_foundation"]
    args = (f"--reference-model {shlex.quote(input.reference_model[0])} "
            f"--reference-dtype {wf.foundation_dtype(config, name)}")
    if role == "target":
        args += f" --reference-shift-e0s {shlex.quote(input.e0s[0])} --e0-mode {shlex.quote(w.e0s)}"
    return args
