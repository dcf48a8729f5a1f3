# The paper world's paths, source look-ups and input functions (the rules are in paper_world.smk;
# the linter wants rules and functions in separate files).
import re
import shlex

from mlipft.download import load_sources
from mlipft.paper import RECIPES

SOURCES_FILE = str(Path(workflow.basedir) / config["sources"])
LOCK_FILE = str(Path(workflow.basedir) / config["sources_lock"])
SOURCES = load_sources(SOURCES_FILE)
DEST_TO_ID = {src.dest: sid for sid, src in SOURCES.items()}
DEST_PATTERN = "|".join(re.escape(dest) for dest in sorted(DEST_TO_ID))
REPLAY_SOURCE_PATTERN = "|".join(sorted({re.escape(rep["corpus"]) for rep in config["replay"].values() if "corpus" in rep}))

# command-line pieces of mlipft.download and mlipft.replay, from the config
LOCAL_DIR_ARGS = " ".join(f"--local-dir {shlex.quote(d)}" for d in config.get("local_data_dirs", []))
ACCEPT_ARG = "--accept-licences" if config.get("accept_licences", False) else ""


def raw_file(source_id):
    """Where the download rule puts a source."""
    return PATHS.raw(config["world"], SOURCES[source_id].dest)


def raw_root(wildcards, output):
    """The destination root of mlipft.download: the output path without the source's dest."""
    return str(output[0])[: -len(wildcards.dest)].rstrip("/")


def converted_file(benchmark, role):
    """One input of a benchmark's recipe, converted to canonical extxyz by mlipft.convert."""
    return PATHS.converted(benchmark, role)


def convert_input(wildcards):
    return raw_file(config["benchmarks"][wildcards.benchmark]["sources"][wildcards.role])


def bench_neb_reactions(benchmark):
    """The reactions of every neb_profiles figure of a benchmark (its reference_neb.xyz)."""
    return wf.neb_reactions(config, benchmark)


def recipe_inputs(benchmark):
    """ROLE=PATH arguments of `python -m mlipft.paper benchmark`."""
    roles = RECIPES[config["benchmarks"][benchmark]["recipe"]]["roles"]
    return " ".join(shlex.quote(f"{role}={converted_file(benchmark, role)}") for role in roles)


def foundation_source_file(wildcards):
    return raw_file(config["foundations"][wildcards.foundation]["source"])


def replay_source_file(source_id):
    """A replay file rewritten with REF_* keys."""
    return PATHS.replay_source(source_id)
