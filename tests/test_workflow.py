"""The workflow end to end at the smoke scale (real xTB, real mace_run_train), and its lint."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def test_lint_is_clean(root):
    proc = subprocess.run(SNAKEMAKE + ["--lint"], cwd=root, capture_output=True, text=True, timeout=300)
    assert "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


#: The smoke run's results directory: a space, a semicolon and a command in it, so that every rule
#: of all_figures shows that no path or config string reaches a shell unquoted.
EVIL = "res dir;touch INJECTED;#"
#: An overlay adding one figure to the smoke run: a grid over foundations, E0s, strategies and
#: evaluation sets is a config edit (built with all_figures, not after it: issue 16's CI cost).
GRID_DEMO = Path(__file__).parent / "data" / "grid_demo.yaml"


def smoke_command(root: Path, work: Path, *args: str) -> list[str]:
    """A snakemake call on the smoke run's work directory, with the smoke run's configuration."""
    return SNAKEMAKE + ["-s", str(root / "Snakefile"), "-d", str(work), *args,
                        "--configfile", str(root / "config" / "config.yaml"), str(GRID_DEMO),
                        "--config", "scale=smoke", f"results_dir={EVIL}"]


@pytest.fixture(scope="module")
def smoke_run(root, tmp_path_factory):
    """all_figures at smoke scale plus the grid demo, under EVIL; returns the results directory
    (its parent is the work directory)."""
    work = tmp_path_factory.mktemp("smoke")
    (work / "config").symlink_to(root / "config")
    proc = subprocess.run(smoke_command(root, work, "all_figures", "--cores", "2"), capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return work / EVIL


REFERENCE = Path(__file__).parent / "data" / "reference_tables"


def same_machine(reference: Path) -> bool:
    """Whether this machine computes like the one that made the reference tables."""
    import json
    import platform

    import torch

    made = json.loads((reference / "machine.json").read_text())
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return made == {"cpu_model": model, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "torch": torch.__version__, "machine": platform.machine()}


def compare_to_reference(tables: Path, reference: Path, module) -> list[str]:
    """Every reference table equals the new one on the reference's columns (strings and integers
    exactly; benchmarks/compare_tables.py), floats to 1e-12 relative on a machine like the
    reference's (the same computation is deterministic there), 1e-3 on another CPU (its vector
    kernels round float32 differently, and training amplifies that;
    tests/data/reference_tables/README.md). ``module``: benchmarks/compare_tables.py.
    Returns the tables."""
    rtol = 1e-12 if same_machine(reference) else 1e-3
    rows = module.differences(reference, tables)
    worse = {name: worst for name, (_, worst, _) in rows.items() if worst > rtol}
    assert not worse, f"tables differ by more than {rtol} relative: {worse}"
    return list(rows)


def test_tables_equal_the_previous_version(smoke_run, benchmark_script):
    """Every existing figure's tables come out as the reference version's (a refactoring changes
    no number): tests/data/reference_tables/smoke, made by `snakemake all_figures --config
    scale=smoke` of the version that moved fine-tuning to float32 (session 5), on this kind of
    machine. A change meant to change numbers regenerates them and says so."""
    compared = compare_to_reference(smoke_run / "tables", REFERENCE / "smoke", benchmark_script("compare_tables"))
    assert len(compared) == 14


def test_a_grid_over_foundations_e0s_strategies_and_evalsets_is_a_config_edit(smoke_run):
    """tests/data/grid_demo.yaml (an overlay adding one figure) builds at smoke scale: two
    foundations x two E0s x two strategies on two evaluation sets. (That its runs shared with
    lpsc_test_errors and fig04a are not trained twice: tests/test_workflow_specs.py, a dry run.)"""
    table = pd.read_csv(smoke_run / "tables" / "grid_demo_errors.csv")
    assert len(table.groupby(["foundation", "e0s", "strategy", "evalset"])) == 16
    assert set(table.evalset) == {"test", "other_argyrodites"}
    assert (table.value > 0).all()
    assert (smoke_run / "figures" / "grid_demo.png").stat().st_size > 10_000


def test_report_shows_every_figure_with_its_caption(smoke_run, root, config):
    work = smoke_run.parent
    report = work / "report.html"
    proc = subprocess.run(smoke_command(root, work, "all_figures", "--report", str(report)), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    html = report.read_text()
    for fig, spec in config["figures"].items():  # each figure, with its caption rendered
        assert f"{fig}.png" in html and f"<strong>{fig}</strong>" in html and spec["description"] in html, fig
    assert "The paper&#39;s version:" in html or "The paper's version:" in html
    assert "scale smoke" in html


def test_no_config_string_reaches_a_shell_unquoted(smoke_run, root):
    """The smoke run's results_dir (EVIL) has a space, a semicolon and a command in it: every rule
    of all_figures ran under it, and none ran the command it names."""
    assert smoke_run.name == EVIL and (smoke_run / "tables" / "fig06c_neb_barriers.csv").stat().st_size > 0
    assert not list(smoke_run.parent.rglob("INJECTED")) and not (root / "INJECTED").exists()
    assert not (smoke_run.parent / "results").exists()  # nothing went to the default results_dir


def test_every_figure_is_made(smoke_run, config):
    for fig in config["figures"]:
        for ext in ("png", "pdf"):
            assert (smoke_run / "figures" / f"{fig}.{ext}").stat().st_size > 10_000


def test_error_table_has_every_strategy(smoke_run, config):
    table = pd.read_csv(smoke_run / "tables" / "sn2_test_errors_errors.csv")
    assert set(table.strategy) == set(config["strategies"])
    assert set(table.metric) == {"energy_rmse", "energy_mae", "force_rmse", "force_mae"}
    assert (table.value > 0).all() and table.value.notna().all()


def test_neb_table_compares_to_reference(smoke_run, smoke_config):
    from mlipft.config import grid

    barriers = pd.read_csv(smoke_run / "tables" / "fig06c_neb_barriers.csv")
    assert set(barriers.strategy) == set(grid(smoke_config, "fig06c")["strategy"])  # the smoke grid's three
    assert set(barriers.reaction) == set(smoke_config["figures"]["fig06c"]["neb_reactions"])
    assert (barriers.barrier_reference_ev > 0).all()


def test_second_run_has_nothing_to_do(smoke_run, root):
    proc = subprocess.run(smoke_command(root, smoke_run.parent, "all_figures", "-n"), capture_output=True, text=True,
                          timeout=300)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_replotting_reruns_no_training(smoke_run, root):
    """Touching the plotting code re-runs only the plot rules (showyourwork's separation)."""
    proc = subprocess.run(smoke_command(root, smoke_run.parent, "all_figures", "-n", "--forcerun", "plot_fig06c"),
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "plot_fig06c" in out and "finetune" not in out.split("Job stats:")[-1]


PERIODIC = {"nacl", "ice", "lpsc"}  # the mini world's periodic benchmarks (SN2 and SPICE: molecules)


def test_every_strategy_fine_tunes_on_a_molecular_and_a_periodic_benchmark(smoke_run, config):
    """The smoke run keeps every figure kind but not every grid point (issue 16): every strategy
    of the registry fine-tunes on SN2 and on at least one periodic benchmark; every benchmark's
    test-error figure has a single-head and a multihead strategy; every test-error run trained."""
    from mlipft.paths import parse_run

    assert PERIODIC < set(config["benchmarks"])
    trained = {}
    for model in (smoke_run / "runs").glob("*/*/*/*/*/*/*/*/model.model"):  # a run directory's model
        run = parse_run(model)
        trained.setdefault(run.strategy, set()).add(run.benchmark)
    assert set(trained) == set(config["strategies"])
    for strategy, benches in trained.items():
        assert "sn2" in benches and benches & PERIODIC, (strategy, benches)
    covered = {}
    for name, fig in config["figures"].items():
        if fig["kind"] != "test_errors":
            continue
        table = pd.read_csv(smoke_run / "tables" / f"{name}_errors.csv")
        covered.setdefault(fig["benchmark"], set()).update(table.strategy)
        trainable = pd.read_csv(smoke_run / "tables" / f"{name}_trainable.csv")
        assert (trainable.trainable > 0).all() and (trainable.trainable <= trainable.total_parameters).all(), name
    assert set(covered) == set(config["benchmarks"])
    multihead = {name for name, spec in config["strategies"].items() if spec.get("multihead")}
    for bench, strategies in covered.items():
        assert strategies & multihead and strategies - multihead, (bench, strategies)
    assert covered["sn2"] == set(config["strategies"])


@pytest.fixture
def smoke_config(root):
    """The configuration of the smoke run (its scale's figure overrides laid over the grids)."""
    from mlipft.config import load, merge, resolve

    return resolve(merge(merge(load(root / "config" / "shared.yaml"), load(root / "config" / "config.yaml")),
                         {"scale": "smoke"}))


def test_mini_world_smoke_artifacts(smoke_run, smoke_config):
    """The smoke mini world made every foundation the figures use, under data/, not results/."""
    config = smoke_config
    data = smoke_run.parent / "data" / "mini" / "smoke"
    from mlipft.config import grid

    used = {found for fig in config["figures"] for found in grid(config, fig)["foundation"]}
    for name in used:
        assert (data / "foundations" / name / "model.model").stat().st_size > 10_000
    for bench in config["benchmarks"]:
        assert (data / "benchmarks" / bench / "summary.json").exists(), bench


def _jobs(dry_run_output: str) -> set[str]:
    stats = dry_run_output.split("Job stats:")[1].split("\n\n")[0] if "Job stats:" in dry_run_output else ""
    return {line.split()[0] for line in stats.splitlines()[3:] if line.strip() and line.split()[0] != "total"}


def test_fresh_clone_never_regenerates_the_mini_world(root, tmp_path):
    """A clone of the committed repository (checkout mtimes scrambled on purpose) plans no
    corpus, benchmark, pretraining or data-card job for all_figures or mini_world."""
    import os
    import random

    head = subprocess.run(["git", "ls-files", "data/mini"], cwd=root, capture_output=True, text=True)
    if "MANIFEST.tsv" not in head.stdout:
        pytest.skip("no mini world committed in this repository yet")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True, timeout=300)
    rng = random.Random(0)
    for path in (clone / "data").rglob("*"):
        if path.is_file():
            t = 1.7e9 + rng.uniform(0, 1e6)
            os.utime(path, (t, t))
    for target in ("all_figures", "mini_world"):
        proc = subprocess.run(SNAKEMAKE + ["-n", target], cwd=clone, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        jobs = _jobs(proc.stdout + proc.stderr)
        generators = {j for j in jobs if j.startswith(("generate_", "pretrain_", "corpus_e0s", "foundation_quality",
                                                       "data_card"))}
        assert not generators, (target, generators)
