"""Bad inputs are stopped before any job (issue 15): config defects and data defects in one table.

Config defects: a bad overlay is written to a tmp dir and checked exactly as the Snakefile does
(rules/common.smk: the config files re-read strictly, shared.yaml + config/config.yaml + the
overlay layered, then ``mlipft.config.check``); one real ``snakemake -n`` per class of defect
shows the message and that no job started (non-zero exit, no "Job stats", no results/).

Data defects: a committed benchmark's files are symlinked into a tmp data root, one file is
replaced by a defective copy, and the benchmark is validated as the ``validate_data`` and
``validate_evalset`` rules do (``mlipft.workflow.validation_files`` / ``validation_args``, then
``python -m mlipft.validate_data``): the message names the file and the frame. The DAG test
shows that every fine-tune depends on its benchmark's validation report, so a failing
validation starts no training job; one real run shows it.

Cases marked xfail(strict=True) are gaps: inputs that get through today (see their reason).
Nothing here writes outside pytest's tmp dirs: the committed data are only read (symlinks, or
a copy where Snakemake runs jobs).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mlipft import config as cfg
from mlipft import e0s, replay
from mlipft import validate_data as vd
from mlipft import workflow as wf
from mlipft.io import read_configs, write_atomic
from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY
from mlipft.paths import Paths, Run

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
WORLD = ROOT / "config" / "config.yaml"
PAPER = ROOT / "config" / "paper.yaml"
MINI = ROOT / "data" / "mini" / "mini"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
E = "config entry "
HARTREE = 27.211386245988  # eV
KCAL_PER_EV = 23.0605  # kcal/mol per eV
KBAR_PER_EV_A3 = 1602.1766


def gap(reason: str):
    return pytest.mark.xfail(strict=True, reason=f"gap: {reason}")


# ============================================================================= config defects
# (id, overlay YAML, fragments of the message; "{overlay}" is the overlay's path)

def C(name, overlay, *fragments, marks=()):
    return pytest.param(overlay, fragments, id=name, marks=marks)


ALL_FIGURES = ", ".join(f"{name}: not here" for name in cfg.load_world(WORLD)["figures"])

CONFIG_CASES = [
    # ---- the cases of issue 15's "Why"
    C("issue-lora_rank-four", "strategies:\n  lora:\n    mace_args: {lora_rank: four}\n",
      E + "strategies.lora.mace_args.lora_rank: 'four' is not a valid int (mace_run_train --lora_rank)"),
    C("issue-lr-negative", "strategies:\n  naive:\n    mace_args: {lr: -0.001}\n",
      E + "strategies.naive.mace_args.lr: -0.001 must be > 0"),
    C("issue-duplicate-yaml-key", "seed: 1\nscale: mini\nseed: 2\n",
      "config file {overlay}, line 3, column 1: duplicate key 'seed' (first at line 1; YAML would keep only the last one)"),
    C("issue-strategies-naive-naive", "figures:\n  sn2_test_errors:\n    strategies: [naive, naive]\n",
      E + "figures.sn2_test_errors.strategies: 'naive' is listed twice"),
    C("issue-fractions-0.1-0.10", "figures:\n  sn2_learning_curve:\n    fractions: [0.1, 0.10]\n",
      E + "figures.sn2_learning_curve.fractions: 0.1 is listed twice"),
    C("issue-empty-figures-block", "figures:\n", E + "figures: None is not of type 'object'"),
    C("issue-no-figure-left", "unavailable_figures: {" + ALL_FIGURES + "}\n",
      E + "figures: no figure to build (this world's unavailable_figures drops every one: ['fig01', "),
    C("issue-misspelt-top-level-key", "figure:\n  fig06c: {seeds: [0]}\n",
      E + "<top level>: unknown key(s) ['figure']; allowed: [", "(and x-* anchors); did you mean 'figures'?"),
    C("issue-yaml-syntax-error", "figures:\n  fig06c:\n    strategies: [naive, lora\n    seeds: [0]\n",
      "config file {overlay}, line 4, column 10: did not find expected ',' or ']' "
      "(while parsing a flow sequence at line 3, column 17)"),
    # ---- YAML files
    C("yaml-tab-indentation", "scale:\tmini\n\tseed: 1\n",
      "config file {overlay}, line 2, column 1: found a tab character that violates indentation"),
    C("duplicate-key-in-a-flow-mapping", "strategies:\n  naive:\n    mace_args: {lr: 0.001, lr: 0.01}\n",
      "config file {overlay}, line 3, column 28: duplicate key 'lr' (first at line 3"),
    C("config-file-is-a-list", "- scale: mini\n", "config file {overlay}: not a mapping of config keys (got list)"),
    C("config-file-is-empty", "", "config file {overlay}: not a mapping of config keys (got NoneType)"),
    # ---- misspelt keys
    C("misspelt-nested-key", "training:\n  comon: {lr: 0.1}\n",
      E + "training: unknown key(s) ['comon']; allowed: ['common', 'pretrain', 'scratch_model_from']; "
          "did you mean 'common'?"),
    C("misspelt-figure-key", "figures:\n  sn2_test_errors:\n    seed: [0]\n",
      E + "figures.sn2_test_errors: unknown key(s) ['seed'] for a figure of kind test_errors", "did you mean 'seeds'?"),
    C("unknown-mace-flag", "strategies:\n  naive:\n    mace_args: {learning_rate: 0.001}\n",
      E + "strategies.naive.learning_rate: not a mace_run_train (mace-torch 0.3.16) flag"),
    C("flag-owned-by-the-workflow", "strategies:\n  naive:\n    mace_args: {train_file: mine.xyz}\n",
      E + "strategies.naive.train_file: this flag is set by the workflow, not by a strategy"),
    # ---- mace flag values (mace's parser: type, choices; ranges it lacks)
    C("ema_decay-1.5", "strategies:\n  naive:\n    mace_args: {ema_decay: 1.5}\n",
      E + "strategies.naive.mace_args.ema_decay: 1.5 must be in (0, 1)"),
    C("lr-nan", "strategies:\n  naive:\n    mace_args: {lr: .nan}\n",
      E + "strategies.naive.mace_args.lr: nan is not finite (mace_run_train --lr)"),
    C("clip_grad-off", "strategies:\n  naive:\n    mace_args: {clip_grad: off}\n",
      E + "strategies.naive.mace_args.clip_grad: False is not a valid float (or None) (mace_run_train --clip_grad)"),
    C("loss-not-a-choice", "training:\n  common: {loss: l2}\n",
      E + "training.common.loss: 'l2' is not a choice of mace_run_train --loss (choices: ef, weighted, "),
    C("huber_delta-negative", "training:\n  common: {huber_delta: -0.01}\n",
      E + "training.common.huber_delta: -0.01 must be > 0"),
    C("r_max-negative", "foundations:\n  omat_medium:\n    model: {r_max: -4.5}\n",
      E + "foundations.omat_medium.model.r_max: -4.5 must be > 0"),
    C("variant-stage_two_lr-zero", "variants:\n  two_stage:\n    mace_args: {stage_two_lr: 0}\n",
      E + "variants.two_stage.mace_args.stage_two_lr: 0 must be > 0"),
    C("lr-infinite", "strategies:\n  naive:\n    mace_args: {lr: .inf}\n",
      E + "strategies.naive.mace_args.lr: inf is not finite (mace_run_train --lr)"),
    C("swa_lr-infinite-as-text", "strategies:\n  naive:\n    mace_args: {swa_lr: '1e999'}\n",
      E + "strategies.naive.mace_args.swa_lr: '1e999' is not finite (mace_run_train --swa_lr)"),
    C("atomic_numbers-not-a-list", "foundations:\n  omat_medium:\n    model: {atomic_numbers: '[1, 3, x]'}\n",
      E + "foundations.omat_medium.model.atomic_numbers: '[1, 3, x]' cannot be read by ast.literal_eval "
          "(mace_run_train --atomic_numbers is evaluated by mace in the training job; expected a list of atomic "
          "numbers, e.g. '[1, 6, 8]')"),
    C("atomic_numbers-not-an-element", "foundations:\n  omat_medium:\n    model: {atomic_numbers: '[1, 3, 200]'}\n",
      E + "foundations.omat_medium.model.atomic_numbers: '[1, 3, 200]': 200 is not an atomic number (an int in 1..118)"),
    C("radial_MLP-zero-width", "foundations:\n  omat_medium:\n    model: {radial_MLP: '[64, 0]'}\n",
      E + "foundations.omat_medium.model.radial_MLP: '[64, 0]': 0 is not a positive int (mace_run_train --radial_MLP: "
          "expected a list of layer widths, e.g. '[64, 64, 64]')"),
    # ---- cross-references
    C("unknown-strategy", "figures:\n  sn2_test_errors:\n    strategies: [naive, lroa]\n",
      E + "figures.sn2_test_errors.strategies: unknown strategy 'lroa' (defined: ['freeze5', "),
    C("unknown-benchmark", "figures:\n  sn2_test_errors:\n    benchmark: sn3\n",
      E + "figures.sn2_test_errors.benchmark: unknown benchmark 'sn3' (defined: ['ice', 'lpsc', 'nacl', 'sn2', 'spice'])"),
    C("unknown-foundation", "figures:\n  sn2_test_errors:\n    foundation: omat_large\n",
      E + "figures.sn2_test_errors.foundation: unknown foundation 'omat_large' (defined: ['mp0', 'mpa', "),
    C("unknown-variant", "figures:\n  sn2_test_errors:\n    variants: [base, lr_x1000]\n",
      E + "figures.sn2_test_errors.variants: unknown variant 'lr_x1000' (defined: ['base', "),
    C("trainset-of-another-benchmark", "figures:\n  sn2_test_errors:\n    trainset: train_Ih\n",
      E + "figures.sn2_test_errors.trainset: 'train_Ih' is not a training set of sn2 (defined: "),
    C("evalset-of-another-benchmark", "figures:\n  sn2_test_errors:\n    evalsets: [test_Ih]\n",
      E + "figures.sn2_test_errors.evalsets: 'test_Ih' is not an evaluation set of sn2"),
    C("unknown-figure-kind", "figures:\n  sn2_test_errors:\n    kind: test_error\n",
      E + "figures.sn2_test_errors.kind: 'test_error' is not a figure kind (schema branches: "),
    C("unknown-scale", "scale: huge\n", E + "scale: 'huge' is not one of ['mini', 'smoke']"),
    C("unknown-main_foundation", "main_foundation: omat_large\n",
      E + "main_foundation: unknown foundation 'omat_large'"),
    C("strategy-replay-set-unknown", "strategies:\n  replay:\n    replay: omat_matchd\n",
      E + "strategies.replay.replay: unknown replay set 'omat_matchd' (defined: ['combined', 'mptrj_random', 'omat_matched'])"),
    C("variant-replay-set-unknown", "variants:\n  replay_combined:\n    replay: combind\n",
      E + "variants.replay_combined.replay: unknown replay set 'combind'"),
    C("replay-combines-an-unknown-set", "replay:\n  combined: {combine: [omat_matched, nothing]}\n",
      E + "replay.combined.combine: ['nothing'] are not other, non-combined replay sets"),
    C("scale-overrides-an-unknown-figure", "scales:\n  mini:\n    figures:\n      fig99: {seeds: [1]}\n",
      E + "scales.mini.figures.fig99: no figure 'fig99' to override; did you mean 'fig19'?"),
    C("epochs_by_strategy-unknown-strategy", "scales:\n  mini:\n    finetune:\n      epochs_by_strategy: {lroa: 3}\n",
      E + "scales.mini.finetune.epochs_by_strategy.lroa: not a strategy", "did you mean 'lora'?"),
    C("trainset-without-validset", "benchmarks:\n  nacl:\n    trainsets: [train, train_hot]\n",
      E + "benchmarks.nacl.validsets: no validation set for training set 'train_hot'"),
    C("derived-set-from-unknown-file",
      "benchmarks:\n  sn2:\n    derived:\n      test_seen: {file: tset, match: {reaction: [Cl_Br]}, keep: others}\n",
      E + "benchmarks.sn2.derived.test_seen.file: 'tset' is not a training, validation, test or evaluation file of sn2"),
    C("generator-module-missing", "benchmarks:\n  sn2:\n    generator: sn3\n",
      E + "benchmarks.sn2.generator: no module mlipft.mini.sn3"),
    C("foundation-corpus-unknown", "foundations:\n  mp0:\n    corpus: mptrjj\n",
      E + "foundations.mp0.corpus: 'mptrjj' is not a training corpus of scale 'mini' (defined: ['mptrj', 'omat'])"),
    C("neb-reaction-unknown-halide", "figures:\n  fig06c:\n    neb_reactions: [Cl_Cl, Xx_Cl]\n",
      E + "figures.fig06c.neb_reactions: SN2 reaction 'Xx_Cl': 'Xx' is not one of ('F', 'Cl', 'Br')"),
    C("base-variant-with-overrides", "variants:\n  base:\n    mace_args: {lr: 0.1}\n",
      E + "variants.base: the base variant is the strategy as registered; it takes no overrides"),
    # ---- values: ranges, types, duplicates
    C("fraction-zero", "figures:\n  sn2_learning_curve:\n    fractions: [0.0, 1.0]\n",
      E + "figures.sn2_learning_curve.fractions: 0 is outside (0, 1]"),
    C("fraction-1.5", "figures:\n  sn2_learning_curve:\n    fractions: [0.5, 1.5]\n",
      E + "figures.sn2_learning_curve.fractions: 1.5 is outside (0, 1]"),
    C("seeds-0-0", "figures:\n  sn2_test_errors:\n    seeds: [0, 0]\n", E + "figures.sn2_test_errors.seeds: 0 is listed twice"),
    C("seed-negative", "figures:\n  sn2_test_errors:\n    seeds: [-1]\n",
      E + "figures.sn2_test_errors.seeds.0: -1 is less than the minimum of 0"),
    C("benchmark-listed-twice", "figures:\n  sn2_test_errors:\n    benchmark: [sn2, sn2]\n",
      E + "figures.sn2_test_errors.benchmark: 'sn2' is listed twice"),
    C("scale-override-lists-a-strategy-twice", "scales:\n  mini:\n    figures:\n      fig06c: {strategies: [naive, naive]}\n",
      E + "figures.fig06c.strategies: 'naive' is listed twice"),
    C("batch_size-zero", "scales:\n  mini:\n    finetune: {batch_size: 0}\n",
      E + "scales.mini.finetune.batch_size: 0 is less than the minimum of 1"),
    C("max_num_epochs-a-string", "scales:\n  mini:\n    finetune: {max_num_epochs: '30'}\n",
      E + "scales.mini.finetune.max_num_epochs: '30' is not of type 'integer'"),
    C("device-tpu", "device: tpu\n", E + "device: 'tpu' is not one of ['auto', 'cpu', 'cuda']"),
    C("threads-zero", "threads: 0\n", E + "threads: 0 is less than the minimum of 1"),
    C("results_dir-empty", "results_dir: ''\n", E + "results_dir: '' should be non-empty"),
    C("results_dir-blank", "results_dir: '  '\n", E + "results_dir: '  ' does not match "),
    C("trainsets-listed-twice", "benchmarks:\n  nacl:\n    trainsets: [train, train]\n",
      E + "benchmarks.nacl.trainsets: 'train' is listed twice"),
    C("replay-combines-a-set-twice", "replay:\n  combined: {combine: [omat_matched, omat_matched]}\n",
      E + "replay.combined.combine: 'omat_matched' is listed twice"),
]


def check_like_the_snakefile(overlay: Path, world: Path = WORLD) -> dict:
    """What rules/common.smk does before any job, for `--configfile <world> <overlay>`: re-read
    every config file strictly, layer them over shared.yaml, resolve and check the result."""
    cfg.check_files([cfg.SHARED, world, overlay])
    config = cfg.load_world(world, overlay)
    cfg.check(config, root=ROOT)
    return config


@pytest.mark.parametrize("overlay,fragments", CONFIG_CASES)
def test_config_defect_is_named(tmp_path, request, overlay, fragments):
    path = tmp_path / "overlay.yaml"
    path.write_text(overlay)
    with pytest.raises(cfg.ConfigError) as err:
        check_like_the_snakefile(path)
    message = str(err.value)
    print(f"\nCASE config/{request.node.callspec.id}: {message}")
    for fragment in fragments:
        assert fragment.format(overlay=path) in message, message
    assert "\n" not in message and "Failed validating" not in message  # one line, no schema dump


def test_http_source_in_the_paper_world_is_named(tmp_path):
    """A sources file with a plain-http URL stops the paper world's config check, by source id."""
    sources = cfg.load(PAPER)["sources"]
    text = (ROOT / sources).read_text()
    url = re.search(r"url: (https://\S+)", text).group(1)
    bad = tmp_path / "sources.yaml"
    bad.write_text(text.replace(url, url.replace("https://", "http://"), 1))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(f"sources: {bad}\n")
    with pytest.raises(cfg.ConfigError) as err:
        check_like_the_snakefile(overlay, PAPER)
    message = str(err.value)
    print(f"\nCASE config/http-source-in-paper-sources: {message}")
    assert message.startswith(f"config entry sources: {bad}: entry #1 (id '")
    assert f"url {url.replace('https://', 'http://')!r}: plain http is refused" in message


# ---- end to end: one `snakemake -n` per class of config defect; no job starts ----

@pytest.fixture(scope="module")
def data_copy(tmp_path_factory) -> Path:
    """A copy of data/ (5.6 MB): Snakemake runs here can never write into the repository."""
    d = tmp_path_factory.mktemp("data") / "data"
    shutil.copytree(ROOT / "data", d)
    return d


def workdir(tmp_path: Path, data: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "config").symlink_to(ROOT / "config")
    (work / "data").symlink_to(data)
    return work


def snakemake(work: Path, *args: str, timeout: float = 300) -> tuple[int, str]:
    proc = subprocess.run([*SNAKEMAKE, "-s", str(SNAKEFILE), "-d", str(work), *args],
                          cwd=work, capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def no_job_started(work: Path, out: str) -> None:
    assert "Job stats" not in out and "Building DAG" not in out, out[-3000:]
    assert not (work / "results").exists()


E2E_CASES = [
    pytest.param("figures:\n  fig06c:\n    strategies: [naive, lora\n    seeds: [0]\n",
                 "config file {overlay}, line 4, column 10: did not find expected ',' or ']'", id="yaml-syntax-error",
                 marks=gap("Snakemake parses --configfile itself (snakemake/settings/types.py) before the Snakefile "
                           "runs; its WorkflowError 'Config file is not valid JSON or YAML' names no file and no line. "
                           "`python -m mlipft.config FILE...` names them (test_config_cli_names_the_yaml_error)")),
    pytest.param("figures:\n  fig06c:\n    seeds: [0]\n    seeds: [1]\n",
                 "config file {overlay}, line 4, column 5: duplicate key 'seeds' (first at line 3; YAML would keep "
                 "only the last one)", id="duplicate-yaml-key"),
    pytest.param("figure:\n  fig06c: {seeds: [0]}\n",
                 E + "<top level>: unknown key(s) ['figure']; allowed: [", id="misspelt-top-level-key"),
    pytest.param("strategies:\n  naive:\n    mace_args: {lr: -0.001}\n",
                 E + "strategies.naive.mace_args.lr: -0.001 must be > 0", id="mace-flag-range"),
    pytest.param("figures:\n  sn2_learning_curve:\n    fractions: [0.1, 0.10]\n",
                 E + "figures.sn2_learning_curve.fractions: 0.1 is listed twice", id="list-entry-twice"),
    pytest.param("unavailable_figures: {" + ALL_FIGURES + "}\n",
                 E + "figures: no figure to build (this world's unavailable_figures drops every one", id="no-figure"),
    pytest.param("figures:\n  sn2_test_errors:\n    strategies: [naive, lroa]\n",
                 E + "figures.sn2_test_errors.strategies: unknown strategy 'lroa'", id="unknown-reference"),
]


@pytest.mark.parametrize("overlay,message", E2E_CASES)
def test_snakemake_stops_before_any_job(tmp_path, data_copy, overlay, message):
    work = workdir(tmp_path, data_copy)
    path = tmp_path / "overlay.yaml"
    path.write_text(overlay)
    rc, out = snakemake(work, "-n", "all_figures", "--configfile", str(WORLD), str(path))
    assert rc != 0
    assert f"invalid configuration: {message.format(overlay=path)}" in out, out[-3000:]
    assert "Failed validating" not in out  # our message, not Snakemake's schema dump
    assert len(out.splitlines()) < 40, out
    no_job_started(work, out)


def test_config_cli_names_the_yaml_error(tmp_path):
    """What Snakemake cannot say (the xfail above): `python -m mlipft.config` checks the files given
    to --configfile as the Snakefile does, and names the file, line and column of a syntax error."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(E2E_CASES[0].values[0])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
    proc = subprocess.run([sys.executable, "-m", "mlipft.config", str(WORLD), str(overlay)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (f"invalid configuration: config file {overlay}, line 4, column 10: did not find expected "
                           "',' or ']' (while parsing a flow sequence at line 3, column 17)\n")
    overlay.write_text("seed: 3\n")
    proc = subprocess.run([sys.executable, "-m", "mlipft.config", str(WORLD), str(overlay)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok\n", "")


def test_snakemake_verbose_names_the_yaml_error(tmp_path, data_copy):
    """The xfail above, as a user can still get it from Snakemake itself: with --verbose its
    traceback ends in PyYAML's error, which names the file, line and column; no job starts."""
    work = workdir(tmp_path, data_copy)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(E2E_CASES[0].values[0])
    rc, out = snakemake(work, "-n", "all_figures", "--configfile", str(WORLD), str(overlay), "--verbose")
    print(f"\nCASE config/yaml-syntax-error (--verbose): {out[out.find('yaml.parser'):][:300]}")
    assert rc != 0
    assert f'in "{overlay}", line 4, column 10' in out and "expected ',' or ']'" in out, out[-3000:]
    no_job_started(work, out)


def test_corrupted_committed_file_stops_every_invocation(tmp_path):
    """A committed benchmark file that no longer matches the manifest: named, with the cure."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    bad = data / "mini" / "mini" / "benchmarks" / "sn2" / "test.xyz"
    bad.write_text(bad.read_text().replace("REF_energy=-", "REF_energy=+", 1))
    work = workdir(tmp_path, data)
    rc, out = snakemake(work, "-n", "all_figures")
    message = out[out.find("the committed mini world"):].strip()
    print(f"\nCASE data/corrupted-committed-file: {message[:400]}")
    assert rc != 0
    assert "the committed mini world does not match its manifest (data/mini/<scale>/MANIFEST.tsv)" in out
    assert "benchmarks/sn2/test.xyz: sha256 mismatch" in out and "git checkout -- data/mini" in out
    no_job_started(work, out)


def test_shell_injection_in_results_dir_runs_nothing(tmp_path, data_copy):
    """`results_dir` with a space and `;touch INJECTED;#`: a real (cheap) validation job runs with
    the path quoted, and the command in it never runs."""
    work = workdir(tmp_path, data_copy)
    evil = "res dir;touch INJECTED;#"
    rc, out = snakemake(work, f"{evil}/validation/sn2.json", "--cores", "1", "--config", f"results_dir={evil}")
    assert rc == 0, out[-3000:]
    assert (work / evil / "validation" / "sn2.json").is_file()
    assert not list(tmp_path.rglob("INJECTED")) and not (ROOT / "INJECTED").exists()


# ============================================================================= data defects

BENCH_FILES = {folder.name: sorted(p.name for p in folder.iterdir())
               for folder in sorted((MINI / "benchmarks").iterdir()) if folder.is_dir()}


def bench_copy(tmp_path: Path, benchmark: str) -> Paths:
    """A tmp data root whose benchmark folder links every committed file (replaced when edited)."""
    folder = tmp_path / "data" / "benchmarks" / benchmark
    folder.mkdir(parents=True)
    for name in BENCH_FILES[benchmark]:
        (folder / name).symlink_to(MINI / "benchmarks" / benchmark / name)
    return Paths(tmp_path / "results", tmp_path / "data")


def validate(config: dict, p: Paths, benchmark: str, evalset: str | None = None) -> tuple[int, str, Path]:
    """The validate_data (or validate_evalset) rule's command, in process: (status, stderr, report)."""
    if evalset is None:
        files, report = wf.validation_files(config, p, benchmark), Path(p.validation(benchmark))
    else:
        files = wf.evalset_validation_files(config, p, benchmark, evalset)
        report = Path(p.evalset_validation(benchmark, evalset))
    argv = shlex.split(wf.validation_args(config, benchmark, files)) + ["--report", str(report)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = vd.main(argv)
    return status, err.getvalue(), report


@pytest.fixture(scope="module")
def world() -> dict:
    return cfg.load_world(WORLD)


# ---- defects: each edits one file of a benchmark; (frames, text) -> frames or new text ----

def at(i, fn):
    def edit(frames, text):
        fn(frames[i])
        return frames
    return edit


def pop_array(key):
    return lambda a: a.arrays.pop(key)


def pop_info(key):
    return lambda a: a.info.pop(key)


def set_info(key, value):
    return lambda a: a.info.__setitem__(key, value)


def scale_info(key, factor):
    return lambda a: a.info.__setitem__(key, np.asarray(a.info[key]) * factor)


def scale_forces(factor):
    return lambda a: a.arrays.__setitem__(FORCES_KEY, a.arrays[FORCES_KEY] * factor)


def forces_of_shape_n2(a):
    a.arrays[FORCES_KEY] = np.zeros((len(a), 2))


def inf_force(a):
    a.arrays[FORCES_KEY][1, 2] = np.inf


def element(z):
    return lambda a: a.numbers.__setitem__(0, z)


def ase_keys(a):  # labels under ase's own names: read back as a calculator, not as REF_*
    a.info["energy"] = a.info.pop(ENERGY_KEY)
    a.arrays["forces"] = a.arrays.pop(FORCES_KEY)


def nan_position(a):
    a.positions[1, 0] = np.nan


def nan_cell(a):
    cell = a.cell.array.copy()
    cell[2, 2] = np.nan
    a.cell = cell


def on_a_periodic_image(a):  # atom 1 onto atom 0's image one cell vector away
    a.positions[1] = a.positions[0] + a.cell.array[1]


def coplanar_cell(a):
    cell = a.cell.array.copy()
    cell[2] = cell[0] + cell[1]
    a.cell = cell


def coincident_atoms(a):
    a.positions[1] = a.positions[0]


def zero_cell(a):
    a.cell = np.zeros((3, 3))


def empty(frames, text):
    return ""


def truncation(text: str) -> tuple[int, int]:
    """Where :func:`truncated` cuts an extxyz text: (line, frame): the second atom line of the
    first frame that starts in the second half of the file."""
    lines = text.splitlines()
    start = frame = 0
    while start < len(lines) // 2:
        start += 2 + int(lines[start].split()[0])
        frame += 1
    return start + 3, frame


def truncated(frames, text):
    """The file cut in the middle of an atom line, halfway through (a copy interrupted mid-write)."""
    lines = text.splitlines(keepends=True)
    cut, _ = truncation(text)
    return "".join(lines[:cut]) + " ".join(lines[cut].split()[:2]) + "\n"


class NeedsPaths:
    """An edit that reads other files of the benchmark: ``factory(paths) -> edit``."""

    def __init__(self, factory):
        self.factory = factory


def isolated_only(benchmark):
    return NeedsPaths(lambda p: lambda frames, text: read_configs(p.bench_file(benchmark, "isolated_atoms")))


def duplicate_from(benchmark, stem, i, j):
    """Frame ``i`` of another file of the benchmark becomes frame ``j`` of this one."""
    def factory(p):
        def edit(frames, text):
            frames[j] = read_configs(p.bench_file(benchmark, stem))[i]
            return frames
        return edit
    return NeedsPaths(factory)


def second_isolated_row(frames, text):
    extra = frames[0].copy()
    extra.info[ENERGY_KEY] = float(frames[0].info[ENERGY_KEY]) + 0.1
    return frames + [extra]


def molecule_in_isolated_file(benchmark):
    return NeedsPaths(lambda p: lambda frames, text: frames + [read_configs(p.bench_file(benchmark, "train"))[0]])


def silicon_not_in_foundation(i):
    """Si (no mini foundation has it) in train frame ``i``, with an isolated-atom row whose energy is
    that of the element it replaces: only the foundation lacks it."""
    def factory(p):
        def edit(frames, text):
            z_old = int(frames[i].numbers[0])
            frames[i].numbers[0] = 14
            path = Path(p.bench_file("sn2", "isolated_atoms"))
            rows = read_configs(path)
            si = Atoms("Si")
            si.info.update({ENERGY_KEY: next(float(r.info[ENERGY_KEY]) for r in rows if r.numbers[0] == z_old),
                            CONFIG_TYPE_KEY: ISOLATED_ATOM})
            path.unlink()  # the link
            write_atomic(path, rows + [si])
            return frames
        return edit
    return NeedsPaths(factory)


def largest_force_frame(benchmark, stem) -> int:
    frames = read_configs(MINI / "benchmarks" / benchmark / f"{stem}.xyz")
    return int(np.argmax([np.linalg.norm(a.arrays[FORCES_KEY], axis=1).max() for a in frames]))


def largest_stress_frame(benchmark, stem) -> int:
    frames = read_configs(MINI / "benchmarks" / benchmark / f"{stem}.xyz")
    return int(np.argmax([np.abs(a.info[STRESS_KEY]).max() for a in frames]))


CUT_LINE, CUT_FRAME = truncation((MINI / "benchmarks" / "sn2" / "valid.xyz").read_text())
CUT_LINE += 1  # counted from 1
F_KCAL = largest_force_frame("sn2", "test")  # its largest force is 9.7 eV/A: x23 is far above 50
S_KBAR = largest_stress_frame("ice", "test")


def D(name, benchmark, stem, edit, *fragments, evalset=None, marks=()):
    """``edit``: (frames, text) -> frames | text, or a :class:`NeedsPaths`."""
    return pytest.param(benchmark, stem, edit, fragments, evalset, id=name, marks=marks)


DATA_CASES = [
    # ---- the cases of issue 15's "Why"
    D("issue-frame-without-forces", "sn2", "train", at(3, pop_array(FORCES_KEY)), "frame 3: no REF_forces"),
    D("issue-nan-energy", "sn2", "train", at(5, set_info(ENERGY_KEY, np.nan)), "frame 5: REF_energy is not finite (nan)"),
    # ---- labels
    D("forces-of-shape-n-2", "sn2", "valid", at(1, forces_of_shape_n2), "frame 1: REF_forces has shape (", ", 2), expected ("),
    D("infinite-force", "sn2", "valid_rp", at(0, inf_force), "frame 0: REF_forces has 1 non-finite value(s) (inf)"),
    D("no-energy", "sn2", "test", at(2, pop_info(ENERGY_KEY)), "frame 2: no REF_energy"),
    D("energy-as-text", "sn2", "test", at(3, set_info(ENERGY_KEY, "n/a")), "frame 3: REF_energy is not a number: 'n/a'"),
    D("labels-under-ase-keys", "sn2", "train_rp", at(4, ase_keys), "frame 4: no REF_energy", "frame 4: no REF_forces"),
    D("stress-missing-where-computed", "ice", "train_Ih", at(3, pop_info(STRESS_KEY)),
      "frame 3: no REF_stress (required for this file)"),
    D("stress-of-5-components", "ice", "valid_Ih", at(2, set_info(STRESS_KEY, np.arange(5.0))),
      "frame 2: REF_stress has 5 components, expected 6 (Voigt) or 9 (3x3)"),
    D("stress-nan", "ice", "valid", at(0, set_info(STRESS_KEY, np.array([0.0, 0.0, np.nan, 0.0, 0.0, 0.0]))),
      "frame 0: REF_stress has 1 non-finite value(s) (nan)"),
    # ---- units
    D("energy-in-hartree", "sn2", "train_rp", at(0, scale_info(ENERGY_KEY, 1 / HARTREE)),
      "frame 0: binding energy ", "outside [-20, 5]: energies not in eV?"),
    D("energy-in-kcal-per-mol", "sn2", "valid_rp", at(2, scale_info(ENERGY_KEY, KCAL_PER_EV)),
      "frame 2: binding energy -", "outside [-20, 5]: energies not in eV?"),
    D("forces-in-kcal-per-mol-per-A", "sn2", "test", at(F_KCAL, scale_forces(KCAL_PER_EV)),
      f"frame {F_KCAL}: largest force ", "above 50 eV/A: forces not in eV/A? (kcal/mol/A are x23.06)"),
    D("stress-in-kbar", "ice", "test", at(S_KBAR, scale_info(STRESS_KEY, KBAR_PER_EV_A3)),
      f"frame {S_KBAR}: largest REF_stress component ", "above 5 eV/A^3 (801 GPa): stress not in eV/A^3?"),
    # ---- elements, splits
    D("element-without-isolated-atom", "sn2", "valid", at(4, element(7)),
      "frame 4: element N has no isolated-atom energy (1 frame has it)"),
    D("train-frame-in-test", "sn2", "test", duplicate_from("sn2", "train", 2, 1),
      "configuration", "in two of the train, valid, test files", "train.xyz frame 2 (train) = ", "test.xyz frame 1 (test)"),
    # ---- files
    D("empty-file", "sn2", "test", empty, "no configurations (empty file)"),
    D("unparsable-file", "sn2", "valid", truncated, "cannot be parsed as extxyz (valid file)"),
    D("unparsable-file-names-the-frame", "sn2", "valid", truncated,
      f"cannot be parsed as extxyz (valid file): frame {CUT_FRAME}, line {CUT_LINE}: 2 columns where the frame's "
      "first atom line has 7; the file ends inside this frame (2 of 6 atom lines): "),
    D("train-file-of-isolated-atoms-only", "sn2", "train_rp", isolated_only("sn2"),
      "only isolated-atom rows (5), no configuration"),
    D("isolated-atom-energy-nan", "sn2", "isolated_atoms", at(3, set_info(ENERGY_KEY, np.nan)),
      "frame 3: isolated atom Cl: REF_energy is not finite (nan)"),
    D("isolated-atom-listed-twice", "sn2", "isolated_atoms", second_isolated_row,
      "frame 5: second isolated-atom row for H (first: frame 0)"),
    D("molecule-in-isolated-atom-file", "sn2", "isolated_atoms", molecule_in_isolated_file("sn2"),
      "frame 5: not an isolated-atom row"),
    D("evalset-frame-without-forces", "ice", "test_VI", at(0, pop_array(FORCES_KEY)), "frame 0: no REF_forces",
      evalset="test_VI"),
    # ---- geometry
    D("nan-coordinate", "sn2", "train", at(2, nan_position), "frame 2: positions have 1 non-finite value(s) (nan)"),
    D("nan-cell", "ice", "valid_Ih", at(3, nan_cell), "frame 3: cell has 1 non-finite value(s) (nan)"),
    D("two-atoms-at-one-position", "sn2", "valid", at(1, coincident_atoms),
      "frame 1: atoms 0 and 1 are 0 A apart (below 0.1 A)"),
    D("atom-on-a-periodic-image", "ice", "test", at(4, on_a_periodic_image),  # 5e-9 A: the file's 8 decimals
      "frame 4: atoms 0 and 1 are ", " A apart (below 0.1 A)"),
    D("periodic-frame-with-zero-cell", "ice", "train_Ih", at(1, zero_cell),
      "frame 1: singular periodic cell: periodic directions 0, 1, 2 with a cell vector shorter than 1e-06 A"),
    D("periodic-frame-with-coplanar-cell", "ice", "train", at(5, coplanar_cell),
      "frame 5: singular periodic cell: volume ", "A^3 (its vectors are coplanar)"),
]


def apply(p: Paths, benchmark: str, stem: str, edit) -> Path:
    if isinstance(edit, NeedsPaths):
        edit = edit.factory(p)
    path = Path(p.bench_file(benchmark, stem))
    text = path.read_text()
    frames = read_configs(path)
    new = edit(frames, text)
    path.unlink()  # the link: the committed file is never written
    if isinstance(new, str):
        path.write_text(new)
    else:
        write_atomic(path, new)
    return path


@pytest.mark.parametrize("benchmark", ["sn2", "ice"])
def test_unedited_copies_pass(tmp_path, world, benchmark):
    status, err, report = validate(world, bench_copy(tmp_path, benchmark), benchmark)
    assert status == 0 and report.is_file(), err


@pytest.mark.parametrize("benchmark,stem,edit,fragments,evalset", DATA_CASES)
def test_data_defect_is_named_with_file_and_frame(tmp_path, request, world, benchmark, stem, edit, fragments, evalset):
    p = bench_copy(tmp_path, benchmark)
    path = apply(p, benchmark, stem, edit)
    status, err, report = validate(world, p, benchmark, evalset)
    print(f"\nCASE data/{request.node.callspec.id}: {err.strip()}")
    assert status == 1, f"not caught: the validation passes\n{err}"
    assert not report.exists()  # no report: nothing downstream of the validation can run
    block = next((b for b in err.split("\n\n") if b.startswith(f"{path}: ") or f" = {path} frame" in b), None)
    assert block is not None, f"no message names {path}:\n{err}"
    for fragment in fragments:
        assert fragment in block, block


def test_element_not_in_foundation_is_named_by_the_e0_fit(tmp_path, world):
    """Si (no mini foundation has it) in train frame 6, with an isolated-atom energy: the benchmark's
    validation has no foundation to compare with (validation_args passes none: a benchmark serves
    every foundation), so fit_e0s, the first job that loads the run's foundation, stops, naming the
    foundation, the element, the training file and the first frame that has it."""
    p = bench_copy(tmp_path, "sn2")
    train = apply(p, "sn2", "train", silicon_not_in_foundation(6))
    status, err, _ = validate(world, p, "sn2")
    assert status == 0, err
    foundation = ROOT / wf.paths(world).foundation_model(world["main_foundation"])
    output = tmp_path / "e0s.json"
    with pytest.raises(ValueError) as err:
        e0s.main(["--train", str(train), "--foundation", str(foundation), "--isolated", p.bench_file("sn2", "isolated_atoms"),
                  "--cover", p.bench_file("sn2", "valid"), "--default-dtype", world["default_dtype"],
                  "--fill", world["e0_fill"], "--output", str(output)])
    print(f"\nCASE data/element-not-in-foundation: {err.value}")
    assert str(err.value) == (f"foundation {foundation} has no E0s for ['Si'] (it cannot be fine-tuned on them): "
                              f"element Si: {train} frame 6")
    assert not output.exists()


# ---- replay sets: validated by mlipft.replay before they are written ----

def corpus_copy(p: Paths, corpus: str) -> None:
    """Link a committed corpus's files into the tmp data root (replaced when edited)."""
    folder = Path(p.corpus_file(corpus, "x")).parent
    folder.mkdir(parents=True)
    for path in (MINI / "corpora" / corpus).iterdir():
        (folder / path.name).symlink_to(path)


def replay_step(world: dict, p: Paths, benchmark: str, replay_set: str) -> tuple[list[str], dict]:
    """The replay_set rule's arguments (mlipft.workflow.replay_args) and inputs."""
    inputs = wf.replay_inputs(world, p, benchmark, replay_set)
    return shlex.split(wf.replay_args(world, replay_set, inputs)) + ["--output", p.replay(benchmark, replay_set)], inputs


@pytest.mark.parametrize("benchmark", sorted(cfg.load_world(WORLD)["benchmarks"]))
def test_committed_corpora_pass_the_replay_check(tmp_path, world, benchmark):
    """Every replay set of the mini world, drawn from the committed corpora, passes its validation."""
    p = bench_copy(tmp_path, benchmark)
    for corpus in {rep["corpus"] for rep in world["replay"].values() if "corpus" in rep}:
        corpus_copy(p, corpus)
    for name in sorted(world["replay"], key=lambda r: "combine" in world["replay"][r]):  # the unions last
        argv, _ = replay_step(world, p, benchmark, name)
        with contextlib.redirect_stdout(io.StringIO()):
            replay.main(argv)
        assert read_configs(p.replay(benchmark, name)), name


def test_selection_then_write_is_the_one_shot_replay_set(tmp_path, world):
    """The two jobs (select_replay: --selection; replay_set: --from-selection) write the same set
    as one call; a selection naming a frame the corpus no longer has is refused."""
    p = bench_copy(tmp_path, "sn2")
    corpus_copy(p, "omat")
    argv, _ = replay_step(world, p, "sn2", "omat_matched")
    selection = tmp_path / "sel.json"
    two = tmp_path / "two.xyz"
    with contextlib.redirect_stdout(io.StringIO()):
        replay.main(argv)
        replay.main(argv[:argv.index("--output")] + ["--selection", str(selection)])
        replay.main(["--from-selection", str(selection), "--output", str(two)])
    assert two.read_bytes() == Path(p.replay("sn2", "omat_matched")).read_bytes()
    doc = json.loads(selection.read_text())
    doc["frames"][0][1] = 10**6
    selection.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as exc:
        replay.main(["--from-selection", str(selection), "--output", str(tmp_path / "x.xyz")])
    assert f"has no frame {10**6}" in str(exc.value.code) and "rerun rule select_replay" in str(exc.value.code)


def nan_in_a_drawn_frame(world: dict, corpus: Path, target: str, replay_set: str) -> tuple[int, list]:
    """Write ``corpus`` (a link to a committed corpus, replaced) with a NaN energy in the third
    structure the replay set draws; its frame index there, and the structures drawn."""
    frames = read_configs(corpus)
    rep = world["replay"][replay_set]
    chosen = replay.select(frames, replay.elements_of(read_configs(target)), rep["mode"],
                           wf.scale(world)["finetune"].get("num_samples_pt"), world["seed"])
    k = next(i for i, a in enumerate(frames) if a is chosen[2])
    frames[k].info[ENERGY_KEY] = np.nan
    corpus.unlink()
    write_atomic(corpus, frames)
    return k, chosen


def test_replay_source_with_nan_energy_stops_the_replay_set(tmp_path, world):
    """A NaN energy in a corpus structure that a replay set draws: the replay_set step exits naming
    the corpus file and the structure's frame there, and the previous replay set stays as it was."""
    p = bench_copy(tmp_path, "sn2")
    corpus_copy(p, "omat")
    argv, inputs = replay_step(world, p, "sn2", "omat_matched")
    corpus = Path(inputs["corpus"])
    k, chosen = nan_in_a_drawn_frame(world, corpus, inputs["target"], "omat_matched")
    output = Path(p.replay("sn2", "omat_matched"))
    write_atomic(output, chosen[:3])  # a previous, good replay set
    before = output.read_bytes()
    with pytest.raises(SystemExit) as exc:
        replay.main(argv)
    message = str(exc.value.code)
    print(f"\nCASE data/replay-source-nan-energy: {message}")
    assert message == (f"replay set {output} not written: its structures break the data rules (mlipft.validate_data):\n"
                       f"{corpus}: 1 problem in this replay file:\n  frame {k}: REF_energy is not finite (nan)")
    assert output.read_bytes() == before and [f.name for f in output.parent.iterdir()] == [output.name]


def test_replay_source_with_nan_energy_fails_the_selection_and_keeps_the_replay_set(tmp_path, world):
    """The same defect in a real run, after a good replay set was written: the select_replay job
    fails, its log names the corpus file and frame, and the replay set written before stays, byte
    for byte (it is written by a second job, replay_set, which never starts)."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    work = workdir(tmp_path, data)
    p = wf.paths(world)
    target = p.replay("sn2", "omat_matched")
    rc, out = snakemake(work, target, "--cores", "1", "--config", "verify_manifest=False")
    assert rc == 0, out[-3000:]
    before = (work / target).read_bytes()
    corpus = data / "mini" / "mini" / "corpora" / "omat" / "train.xyz"
    k, _ = nan_in_a_drawn_frame(world, corpus, MINI / "benchmarks" / "sn2" / "train.xyz", "omat_matched")
    # the committed corpora are ancient() inputs (a checkout's mtimes mean nothing): force the check
    rc, out = snakemake(work, target, "--cores", "1", "--config", "verify_manifest=False", "--forcerun",
                        "select_replay")
    assert rc != 0 and "Error in rule select_replay" in out and "rule replay_set:" not in out, out[-3000:]
    log = work / p.log("select_replay", "sn2/omat_matched")
    assert (f"data/mini/mini/corpora/omat/train.xyz: 1 problem in this replay file:\n  frame {k}: REF_energy is not "
            "finite (nan)") in log.read_text()
    assert (work / target).read_bytes() == before


# ---- every fine-tune depends on its benchmark's validation: a failing one starts no training ----

def dag(work: Path, target: str = "all_figures") -> tuple[dict[int, list[str]], dict[int, set[int]]]:
    """Jobs (label lines: rule, then `wildcard: value`s) and each job's dependencies, from --dag."""
    rc, out = snakemake(work, target, "--forceall", "--dag")
    assert rc == 0, out[-3000:]
    nodes = {int(i): label.split("\\n") for i, label in re.findall(r"^\s*(\d+)\[label = \"([^\"]*)\"", out, re.MULTILINE)}
    deps: dict[int, set[int]] = {i: set() for i in nodes}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", out, re.MULTILINE):
        deps[int(b)].add(int(a))
    return nodes, deps


def ancestors(deps: dict[int, set[int]], job: int) -> set[int]:
    seen, todo = set(), [job]
    while todo:
        for d in deps[todo.pop()] - seen:
            seen.add(d)
            todo.append(d)
    return seen


def test_every_finetune_depends_on_its_benchmarks_validation(tmp_path, data_copy, world):
    nodes, deps = dag(workdir(tmp_path, data_copy))
    finetunes = [i for i, label in nodes.items() if label[0] == "finetune"]
    assert len(finetunes) == len(cfg.unique_runs(world)) > 100
    validations = {i: label[1] for i, label in nodes.items() if label[0] == "validate_data"}
    assert sorted(validations.values()) == [f"benchmark: {b}" for b in sorted(world["benchmarks"])]
    for job in finetunes:
        up = ancestors(deps, job) | {job}
        benchmarks = {line for i in up for line in nodes[i][1:] if line.startswith("benchmark: ")}
        assert len(benchmarks) == 1, (nodes[job], benchmarks)  # the job's own benchmark
        assert {validations[i] for i in up if i in validations} == benchmarks, nodes[job]
    for job in (i for i, label in nodes.items() if label[0] in ("evaluate_errors", "evaluate_zeroshot")):
        assert any(nodes[i][0] == "validate_evalset" for i in ancestors(deps, job)), nodes[job]


def test_bad_data_starts_no_training_job(tmp_path, world):
    """The issue's case end to end: a frame without forces in the training file. The validation job
    fails naming the file and frame; no fine-tune starts and no model is written."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    train = data / "mini" / "mini" / "benchmarks" / "sn2" / "train.xyz"
    frames = read_configs(train)
    frames[3].arrays.pop(FORCES_KEY)
    train.unlink()
    write_atomic(train, frames)
    work = workdir(tmp_path, data)
    run = Run("sn2", "train", "1", "omat_medium", "naive", "estimated", "base", 0)
    model = wf.paths(world).run_file(run, "model")
    rc, out = snakemake(work, model, "--cores", "1", "--config", "verify_manifest=False")
    assert rc != 0
    assert "data/mini/mini/benchmarks/sn2/train.xyz: 1 problem in this train file:\n  frame 3: no REF_forces" in out, out
    assert "Error in rule validate_data" in out
    assert "Fine-tune " not in out and not re.search(r"^\s*rule (finetune|fit_e0s|subsample_trainset):", out, re.MULTILINE)
    assert not (work / model).exists() and not (work / wf.paths(world).run_dir(run)).exists()
