"""The SLURM profiles against the workflow's real DAGs (mini and paper world): what each job would
ask sbatch for, computed by snakemake-executor-plugin-slurm's own functions.

The DAG is built by Snakemake itself (``--dag --forceall``, every job, no file is touched) with the
profile loaded as for a real run (no ``--cores``, so ``threads:`` are not capped as in a dry run);
each job's resources are evaluated at attempt 1 and 2 and turned into the plugin's
``--cpus-per-task`` and ``--gpus``/``--gres`` options."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"slurm": ROOT / "profiles" / "slurm", "local": ROOT / "profiles" / "slurm-local-test"}
WORLDS = {"mini": [], "paper": ["--configfile=config/paper.yaml"]}

#: Rules that load a model and compute with it: on the GPU profile each gets a GPU.
MODEL_RULES = {"finetune", "fit_e0s", "evaluate_errors", "evaluate_zeroshot", "run_neb", "run_torsions",
               "run_md", "run_stability", "run_symmetry", "run_repulsion", "repulsion_foundation", "repulsion_reference",
               "run_rss", "rss_foundation", "rss_reference",
               "pretrain_foundation", "foundation_quality"}
#: ... and the rules generated per benchmark with these prefixes.
MODEL_RULE_PREFIXES = ("reference_mlip_", "reference_rdf_")

# Run inside Snakemake's own command line: `--dag` builds the DAG, then, instead of printing it,
# every non-local job is written out with the sbatch options the plugin would derive from it.
_DUMP = r"""
import json, sys
import snakemake.api  # noqa: F401  (imported first: snakemake.workflow needs it)
from snakemake import workflow as wfm

def dump(self):
    from snakemake_executor_plugin_slurm.submit_string import get_cpu_setting
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    self._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
    self._build_dag()
    rows = []
    for job in self.dag.jobs:
        if job.rule.norun or job.rule.name in self._localrules:
            continue
        gpu = bool(job.resources.get("gpu")) or "gpu" in str(job.resources.get("gres") or "")
        later = job.rule.expand_resources(job.wildcards_dict, job.input, attempt=2)
        declared = set(job.rule.resources.keys())
        rows.append({
            "rule": job.rule.name, "wildcards": dict(job.wildcards_dict), "threads": job.threads,
            "cpus": get_cpu_setting(job, gpu), "gpus": set_gres_string(job).strip(),
            "runtime": [job.resources.get("runtime"), later.get("runtime")],
            "mem_mb": [job.resources.get("mem_mb"), later.get("mem_mb")],
            "partition": job.resources.get("slurm_partition"), "account": job.resources.get("slurm_account"),
            "cpu_resources": sorted(declared & {"cpus_per_task", "cpus_per_gpu"}),
            # a rule given a device (config `device`) or training with mlipft.train runs a model
            "runs_model": "device" in job.rule.params.keys() or "mlipft.train" in (job.rule.shellcmd or ""),
        })
    with open(sys.argv[1], "w") as fh:
        json.dump({"rules": sorted(rule.name for rule in self.rules), "jobs": rows}, fh, default=str)

wfm.Workflow.printdag = dump
from snakemake.cli import main
main(sys.argv[2:])
"""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SNAKEMAKE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "scripts"), env.get("PYTHONPATH")]))
    return env


def _dump(profile: Path, args: list[str], cwd: Path, out: Path, snakefile: Path | None = None) -> dict:
    """{"rules": every rule of the workflow, "jobs": one row per non-local job of the DAG}"""
    cmd = [sys.executable, "-c", _DUMP, str(out), "--profile", str(profile), "--workflow-profile", "none",
           *(["--snakefile", str(snakefile)] if snakefile else []), *args, "--dag"]
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@lru_cache(maxsize=None)
def _workflow(profile: str, world: str) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dump = _dump(PROFILES[profile], ["all_figures", *WORLDS[world]], ROOT, Path(tmp) / "jobs.json")
    assert dump["jobs"] and dump["rules"], (profile, world)
    return dump


@pytest.fixture(scope="module", params=sorted(WORLDS))
def gpu_jobs(request):
    return request.param, _workflow("slurm", request.param)["jobs"]


@pytest.fixture(scope="module")
def local_jobs():
    """The mini world (what tests/slurm_smoke.sh runs) under the test cluster's profile."""
    return "mini", _workflow("local", "mini")["jobs"]


def _profile(path: Path) -> dict:
    """The profile as Snakemake reads it (YTE evaluated): key -> value or list of `k=v` items."""
    from snakemake.profiles import ProfileConfigFileParser

    with open(path / "config.yaml") as fh:
        return dict(ProfileConfigFileParser().parse(fh))


def _set_resources(path: Path) -> dict[str, dict[str, str]]:
    rules: dict[str, dict[str, str]] = {}
    for item in _profile(path).get("set-resources", []):
        rule, assign = item.split(":", 1)
        name, value = assign.split("=", 1)
        rules.setdefault(rule, {})[name] = value
    return rules


def _definitions(path: Path) -> dict:
    """The Python definitions (site settings) of a YTE profile."""
    import yaml

    namespace: dict = {}
    for block in yaml.safe_load((path / "config.yaml").read_text()).get("__definitions__", []):
        exec(block, namespace)  # noqa: S102 - our own profile
    return namespace


def _rule_names() -> frozenset[str]:
    """Every rule of both worlds (what `snakemake --list-rules [--configfile ...]` lists)."""
    return frozenset(name for world in WORLDS for name in _workflow("slurm", world)["rules"])


def _is_model_rule(name: str) -> bool:
    return name in MODEL_RULES or name.startswith(MODEL_RULE_PREFIXES)


# --------------------------------------------------------------------------- the profiles' entries


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_set_resources_key_is_a_rule(profile):
    names = _rule_names()
    assert {"finetune", "all_figures", "download", "generate_corpus"} <= names  # both worlds listed
    unknown = sorted(set(_set_resources(PROFILES[profile])) - names)
    assert not unknown, f"profiles/{PROFILES[profile].name} sets resources of rules that do not exist: {unknown}"


def test_model_rules_exist():
    names = _rule_names()
    assert MODEL_RULES <= names, sorted(MODEL_RULES - names)
    assert all(any(n.startswith(p) for n in names) for p in MODEL_RULE_PREFIXES)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_no_profile_sets_cpus(profile):
    """CPUs come from each rule's `threads:` (the plugin's default), never from a profile value
    that goes stale when the threads change."""
    text = (PROFILES[profile] / "config.yaml").read_text()
    assert not re.search(r"^\s*(cpus_per_task|cpus_per_gpu)\s*:", text, re.M)
    parsed = _profile(PROFILES[profile])
    items = parsed.get("default-resources", []) + parsed.get("set-resources", [])
    assert not [i for i in items if re.search(r"(^|:)(cpus_per_task|cpus_per_gpu)=", i)]


def test_no_gpu_through_slurm_extra():
    for profile in PROFILES.values():
        assert "slurm_extra" not in (profile / "config.yaml").read_text()


# --------------------------------------------------------------------------- the jobs of the DAG


def test_cpus_per_task_equals_threads(gpu_jobs):
    world, jobs = gpu_jobs
    wrong = {(j["rule"], j["threads"], j["cpus"]) for j in jobs if j["cpus"] != f"--cpus-per-task={j['threads']}"}
    assert not wrong, wrong
    assert not [j["rule"] for j in jobs if j["cpu_resources"]]
    if world == "paper":  # config/paper.yaml threads: 4
        assert {j["threads"] for j in jobs if j["rule"] in ("finetune", "fit_e0s", "evaluate_errors")} == {4}


def test_every_model_job_gets_a_gpu_and_no_other(gpu_jobs):
    world, jobs = gpu_jobs
    defs = _definitions(PROFILES["slurm"])
    gpu_partition = defs["GPU_PARTITION"]
    for job in jobs:
        if _is_model_rule(job["rule"]):
            assert job["gpus"] == "--gpus=1", (world, job)
            assert job["partition"] == gpu_partition, (world, job)
        else:
            assert job["gpus"] == "", (world, job)
            assert job["partition"] == defs["CPU_PARTITION"], (world, job)
        assert job["account"] == defs["ACCOUNT"], (world, job)
    ran = {j["rule"] for j in jobs if _is_model_rule(j["rule"])}
    expected = {"finetune", "fit_e0s", "evaluate_errors", "evaluate_zeroshot", "run_neb", "run_md", "run_stability"}
    assert expected <= ran, (world, sorted(expected - ran))


def test_every_rule_that_runs_a_model_is_known(gpu_jobs):
    """A new rule with a `device` param (or one that trains) must get a GPU entry in profiles/slurm
    (and a `gpu: 0` one in profiles/slurm-local-test) and join MODEL_RULES."""
    world, jobs = gpu_jobs
    unknown = sorted({j["rule"] for j in jobs if j["runs_model"] and not _is_model_rule(j["rule"])})
    assert not unknown, f"{world}: rules that run a model without a GPU entry: {unknown}"
    assert any(j["runs_model"] for j in jobs)


def test_runtime_grows_with_attempt_up_to_the_limit(gpu_jobs):
    world, jobs = gpu_jobs
    defs = _definitions(PROFILES["slurm"])
    for job in jobs:
        limit = defs["MAX_GPU_MINUTES"] if _is_model_rule(job["rule"]) else defs["MAX_CPU_MINUTES"]
        first, second = job["runtime"]
        assert isinstance(first, int) and 0 < first <= limit, (world, job)
        assert second > first or second == first == limit, (
            f"{world}: {job['rule']}: runtime {first} min at attempt 1, {second} at attempt 2: give the rule a "
            f"`runtime: ?minutes(...)` entry in profiles/slurm/config.yaml")
        if _is_model_rule(job["rule"]):
            assert job["mem_mb"][1] == 2 * job["mem_mb"][0], job


def test_finetune_runtime_by_benchmark_and_strategy(gpu_jobs):
    world, jobs = gpu_jobs
    limit = _definitions(PROFILES["slurm"])["MAX_GPU_MINUTES"]
    fine = [j for j in jobs if j["rule"] == "finetune"]
    assert fine
    for job in fine:
        w = job["wildcards"]
        if w["strategy"] in ("replay", "pseudolabel", "replay_lora"):
            assert job["runtime"] == [limit, limit], job
        elif w["benchmark"] == "sn2":
            assert job["runtime"] == [60, 120], job
    retries = int(_profile(PROFILES["slurm"])["retries"])
    assert retries >= 3  # a fine-tune at the limit continues from its checkpoint on the next attempts


def test_local_test_profile_asks_for_no_gpu(local_jobs):
    world, jobs = local_jobs
    for job in jobs:
        assert job["gpus"] == "", (world, job)
        assert job["partition"] == "local", (world, job)
        assert job["cpus"] == f"--cpus-per-task={job['threads']}", (world, job)


# --------------------------------------------------------------------------- site settings


TOY = ROOT / "tests" / "slurm_toy"


def _toy_jobs(tmp_path: Path, edits: dict[str, str]) -> dict[str, dict]:
    """The toy workflow's jobs under a copy of the GPU profile with some site settings changed."""
    profile = tmp_path / "profile"
    profile.mkdir()
    text = (PROFILES["slurm"] / "config.yaml").read_text()
    for name, value in edits.items():
        text, n = re.subn(rf"^(\s*){name} = .*$", rf"\g<1>{name} = {value}", text, count=1, flags=re.M)
        assert n == 1, name
    (profile / "config.yaml").write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    rows = _dump(profile, [], work, tmp_path / "jobs.json", snakefile=TOY / "Snakefile")["jobs"]
    return {row["rule"]: row for row in rows}


def test_site_settings_reach_every_job(tmp_path):
    jobs = _toy_jobs(tmp_path, {"CPU_PARTITION": '"all"', "GPU_PARTITION": '"a100-queue"',
                                "ACCOUNT": '"project-42"', "GPU_MODEL": '"a100"'})
    assert jobs["finetune"]["gpus"] == "--gpus=a100:1" and jobs["finetune"]["partition"] == "a100-queue"
    # a partition named like a Python builtin stays a name
    assert jobs["prepare"]["gpus"] == "" and jobs["prepare"]["partition"] == "all"
    assert {j["account"] for j in jobs.values()} == {"project-42"}


def test_gres_replaces_the_gpus_option(tmp_path):
    jobs = _toy_jobs(tmp_path, {"GPU_GRES": '"gpu:h100:1"'})
    assert jobs["finetune"]["gpus"] == "--gres=gpu:h100:1"


def test_no_partition_and_no_account_by_default():
    """"" leaves -p and -A out: the site's default partition; the plugin's account guess."""
    defs = _definitions(PROFILES["slurm"])
    assert defs["CPU_PARTITION"] == "" and defs["ACCOUNT"] == ""
    assert isinstance(defs["MAX_GPU_MINUTES"], int) and isinstance(defs["MAX_CPU_MINUTES"], int)


def test_profile_symlink_points_at_the_gpu_profile():
    link = ROOT / "slurm"
    if link.is_symlink():
        assert link.resolve() == PROFILES["slurm"].resolve()
