"""The workflow end to end at the smoke scale (real xTB, real mace_run_train), and its lint."""

import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def test_lint_is_clean(root):
    proc = subprocess.run(SNAKEMAKE + ["--lint"], cwd=root, capture_output=True, text=True, timeout=300)
    assert "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def smoke_run(root, tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    (work / "config").symlink_to(root / "config")
    cmd = SNAKEMAKE + ["-s", str(root / "Snakefile"), "-d", str(work), "all_figures", "--cores", "2",
                       "--config", "scale=smoke"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return work / "results" / "smoke"


def test_every_figure_is_made(smoke_run, config):
    for fig in config["figures"]:
        for ext in ("png", "pdf"):
            assert (smoke_run / "figures" / f"{fig}.{ext}").stat().st_size > 10_000


def test_error_table_has_every_strategy(smoke_run, config):
    table = pd.read_csv(smoke_run / "tables" / "sn2_test_errors_errors.csv")
    assert set(table.strategy) == set(config["strategies"])
    assert set(table.metric) == {"energy_rmse", "energy_mae", "force_rmse", "force_mae"}
    assert (table.value > 0).all() and table.value.notna().all()


def test_neb_table_compares_to_reference(smoke_run, config):
    barriers = pd.read_csv(smoke_run / "tables" / "fig06_neb_barriers.csv")
    assert set(barriers.strategy) == set(config["strategies"])
    assert set(barriers.reaction) == set(config["figures"]["fig06"]["neb_reactions"])
    assert (barriers.barrier_reference_ev > 0).all()


def test_second_run_has_nothing_to_do(smoke_run, root):
    work = smoke_run.parent.parent
    proc = subprocess.run(SNAKEMAKE + ["-s", str(root / "Snakefile"), "-d", str(work), "all_figures", "-n",
                                       "--config", "scale=smoke"], capture_output=True, text=True, timeout=300)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_replotting_reruns_no_training(smoke_run, root):
    """Touching the plotting code re-runs only the plot rules (showyourwork's separation)."""
    work = smoke_run.parent.parent
    proc = subprocess.run(SNAKEMAKE + ["-s", str(root / "Snakefile"), "-d", str(work), "all_figures", "-n",
                                       "--forcerun", "plot_fig06", "--config", "scale=smoke"],
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "plot_fig06" in out and "finetune" not in out.split("Job stats:")[-1]
