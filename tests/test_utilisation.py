"""benchmarks/utilisation.py on a fake results tree: benchmark TSVs in Snakemake's format at the
paths of mlipft.paths, with set mtimes; exact wall / CPU / utilisation numbers, the top-N order,
missing jobs reported (fast: no training, no Snakemake)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from mlipft.config import load_world
from mlipft.paths import Paths, Run

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
#: Figures kept from the mini world, made small (fig06c: 1 run, sn2_test_errors: 2 runs, one multihead).
FIGURES = {"fig06c": {"strategies": ["naive"]}, "sn2_test_errors": {"strategies": ["naive", "replay"]}}


@pytest.fixture(scope="module")
def util(benchmark_script):
    return benchmark_script("utilisation")


@pytest.fixture()
def world() -> dict:
    config = copy.deepcopy(load_world(ROOT / "config" / "config.yaml"))
    config["scale"] = "smoke"
    config["figures"] = {name: {**config["figures"][name], **entry} for name, entry in FIGURES.items()}
    return config


def write_bench(path: str, rows: list[tuple[float, float]], end: float) -> None:
    """A Snakemake benchmark TSV (header + one row per repetition: wall s, cpu_time), ending at ``end``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s:.4f}\t0:00:{int(s):02d}\t100.5\t200.1\t50.0\t60.0\t0.01\t0.02\t50.00\t{cpu:.2f}\n" for s, cpu in rows]
    Path(path).write_text(HEADER + "".join(lines))
    os.utime(path, (end, end))


def runs() -> dict[str, Run]:
    base = dict(benchmark="sn2", fraction="1.0", foundation="omat_medium", e0s="estimated", variant="base", seed=0)
    return {"rp": Run(trainset="train_rp", strategy="naive", **base),
            "naive": Run(trainset="train", strategy="naive", **base),
            "replay": Run(trainset="train", strategy="replay", **base)}


def jobs_of(p: Paths) -> dict[str, tuple[str, float, float, float]]:
    """name -> (benchmark file, wall s, cpu s, end - T0) of every job of the fake run."""
    r = runs()

    def bench(name, run, **keys):
        return p.pattern(name, **run.keys(), **keys)

    return {
        # fig06c: wall 172 - 8 = 164, sum wall 150, sum CPU 131
        "subsample_rp": (bench("benchmark:subsample_trainset@trainset", r["rp"]), 2, 1, 10),
        "e0s_rp": (bench("benchmark:fit_e0s@e0s", r["rp"]), 15, 14, 30),
        "finetune_rp": (bench("benchmark:finetune", r["rp"]), 100, 90, 130),
        "neb_rp": (bench("benchmark:run_neb", r["rp"]), 25, 20, 160),
        "collect_fig06c": (p.bench("collect", "fig06c"), 3, 2, 165),
        "plot_fig06c": (p.bench("plot", "fig06c"), 5, 4, 172),
        # sn2_test_errors: wall 220 - 0 = 220, sum wall 329, sum CPU 303.5; errors of `replay` missing
        "subsample": (bench("benchmark:subsample_trainset@trainset", r["naive"]), 1, 0.5, 5),
        "e0s": (bench("benchmark:fit_e0s@e0s", r["naive"]), 18, 17, 25),
        "select_replay": (p.bench("select_replay", "sn2/omat_matched"), 2, 1.5, 2),
        "replay_set": (p.bench("replay_set", "sn2/omat_matched"), 3, 2.5, 3),
        "finetune_naive": (bench("benchmark:finetune", r["naive"]), 120, 110, 145),
        "finetune_replay": (bench("benchmark:finetune", r["replay"]), 170, 160, 200),
        "errors_naive": (bench("benchmark:evaluate_errors@errors", r["naive"], evalset="test"), 5, 4, 150),
        "collect_errors": (p.bench("collect", "sn2_test_errors"), 4, 3, 210),
        "plot_errors": (p.bench("plot", "sn2_test_errors"), 6, 5, 220),
        # no figure's: the whole run starts at T0 - 100
        "corpus": (p.bench("generate_corpus", "mptrj"), 50, 40, -50),
    }


@pytest.fixture()
def tree(tmp_path) -> Paths:
    p = Paths(tmp_path / "results", "data/mini/smoke")
    for path, s, cpu, end in jobs_of(p).values():
        write_bench(path, [(s, cpu)], T0 + end)
    return p


def test_collect_benchmarks(util, tree):
    jobs = util.collect_benchmarks(tree.results)
    assert list(jobs.columns) == ["rule", "key", "path", "s", "cpu_time", "end", "start"]
    assert len(jobs) == len(jobs_of(tree))
    first = jobs.iloc[0]
    assert (first.rule, first.key, first.s, first.cpu_time, first.end, first.start) == \
        ("generate_corpus", "mptrj", 50.0, 40.0, T0 - 50, T0 - 100)
    assert list(jobs.start) == sorted(jobs.start)
    ft = jobs[jobs.rule == "finetune"].set_index("key")
    assert ft.loc[runs()["replay"].path, "end"] == T0 + 200
    errors = jobs[jobs.rule == "evaluate_errors"].key.tolist()
    assert errors == [f"{runs()['naive'].path}/errors"]


def test_figure_jobs(util, world, tree):
    names = jobs_of(tree)
    expected = {
        "fig06c": ["subsample_rp", "e0s_rp", "finetune_rp", "neb_rp", "collect_fig06c", "plot_fig06c"],
        "sn2_test_errors": ["subsample", "e0s", "finetune_naive", "select_replay", "replay_set", "finetune_replay", "errors_naive",
                            None, "collect_errors", "plot_errors"],
    }
    missing = tree.pattern("benchmark:evaluate_errors@errors", **runs()["replay"].keys(), evalset="test")
    for figure, jobs in expected.items():
        want = [os.path.normpath(names[j][0] if j else missing) for j in jobs]
        assert util.figure_jobs(world, tree, figure) == want
    with pytest.raises(util.ReportError, match="no figure 'nope'"):
        util.figure_jobs(world, tree, "nope")


def test_figure_table_and_missing(util, world, tree):
    jobs = util.collect_benchmarks(tree.results)
    table, missing = util.figure_table(jobs, world, tree)
    table = table.set_index("figure")
    assert table.loc["fig06c"].to_dict() == {"kind": "neb_profiles", "found": 6, "expected": 6, "missing": 0,
                                            "wall_s": 164.0, "sum_wall_s": 150.0, "sum_cpu_s": 131.0,
                                            "concurrency": 150 / 164}
    assert table.loc["sn2_test_errors"].to_dict() == {"kind": "test_errors", "found": 9, "expected": 10, "missing": 1,
                                                      "wall_s": 220.0, "sum_wall_s": 329.0, "sum_cpu_s": 303.5,
                                                      "concurrency": 329 / 220}
    replay = runs()["replay"]
    assert missing == {"fig06c": [], "sn2_test_errors": [os.path.normpath(
        tree.pattern("benchmark:evaluate_errors@errors", **replay.keys(), evalset="test"))]}


def test_run_summary(util, tree):
    jobs = util.collect_benchmarks(tree.results)
    summary = util.run_summary(jobs, cores=2)
    assert summary == {"jobs": 16, "first_start": T0 - 100, "last_end": T0 + 220, "wall_s": 320.0,
                       "cpu_s": 474.5, "sum_wall_s": 529.0, "cores": 2,
                       "utilisation": 474.5 / 640, "packing": 529 / 640}
    assert util.run_summary(jobs, cores=4)["utilisation"] == 474.5 / 1280
    with pytest.raises(util.ReportError, match="cores"):
        util.run_summary(jobs, cores=0)


def test_top_jobs_and_rules(util, tree):
    jobs = util.collect_benchmarks(tree.results)
    top = util.top_jobs(jobs, 4)
    r = runs()
    assert top.to_dict("records") == [
        {"rule": "finetune", "key": r["replay"].path, "wall_s": 170.0, "cpu_s": 160.0},
        {"rule": "finetune", "key": r["naive"].path, "wall_s": 120.0, "cpu_s": 110.0},
        {"rule": "finetune", "key": r["rp"].path, "wall_s": 100.0, "cpu_s": 90.0},
        {"rule": "generate_corpus", "key": "mptrj", "wall_s": 50.0, "cpu_s": 40.0},
    ]
    rules = util.rule_table(jobs).set_index("rule")
    assert rules.index[0] == "finetune"
    assert rules.loc["finetune"].to_dict() == {"jobs": 3, "total_wall_s": 390.0, "median_wall_s": 120.0,
                                               "max_wall_s": 170.0, "total_cpu_s": 360.0}
    assert rules.loc["collect"].to_dict() == {"jobs": 2, "total_wall_s": 7.0, "median_wall_s": 3.5,
                                              "max_wall_s": 4.0, "total_cpu_s": 5.0}


def test_report_text_and_markdown(util, world, tree):
    text = util.report(world, tree, cores=2, top=2)
    for line in ["fig06c neb_profiles     6        6       0  164.0      150.0     131.0       0.915",
                 "utilisation = CPU / (wall x cores)               0.741",
                 "packing = job wall sum / (wall x cores)               0.827", "Longest jobs (top 2)",
                 "sn2_test_errors: 1 of 10 expected jobs have no benchmark file",
                 f"  benchmarks/evaluate_errors/{runs()['replay'].path}/errors.tsv"]:
        assert line in text, line
    longest = text.split("Longest jobs (top 2)")[1].split("Per rule")[0].strip().splitlines()
    assert [line.split()[:2] for line in longest[2:]] == [["finetune", runs()["replay"].path],
                                                          ["finetune", runs()["naive"].path]]
    md = util.report(world, tree, cores=2, top=2, markdown=True)
    assert "### Whole run" in md
    assert "| figure | kind | found | expected | missing | wall_s | sum_wall_s | sum_cpu_s | concurrency |" in md
    assert "|---|---|---:|---:|---:|---:|---:|---:|---:|" in md
    assert "| fig06c | neb_profiles | 6 | 6 | 0 | 164.0 | 150.0 | 131.0 | 0.915 |" in md
    assert f"- `benchmarks/evaluate_errors/{runs()['replay'].path}/errors.tsv`" in md


def test_cli(util, tree, tmp_path, capsys):
    overlay = tmp_path / "small.yaml"
    world = load_world(ROOT / "config" / "config.yaml")
    dropped = {name: "not in this test" for name in world["figures"] if name not in FIGURES}
    overlay.write_text(yaml.safe_dump({"figures": FIGURES, "unavailable_figures": dropped}))
    argv = ["--configfile", str(ROOT / "config" / "config.yaml"), "--configfile", str(overlay),
            "--config", "scale=smoke", "--results", tree.results, "--cores", "2", "--top", "3"]
    assert util.main(argv) == 0
    out = capsys.readouterr().out
    assert "sn2_test_errors" in out and "0.741" in out and "nacl_test_errors" not in out
    assert util.main(argv + ["--markdown"]) == 0
    assert "| jobs | 16 |" in capsys.readouterr().out
    assert util.main(["--config", "scale=nope", "--results", tree.results]) == 2
    assert "scale 'nope' is not one of" in capsys.readouterr().err
    assert util.main(["--results", str(tmp_path / "empty")]) == 2
    assert "no benchmark folder" in capsys.readouterr().err


def test_read_benchmark(util, tmp_path):
    path = tmp_path / "repeat.tsv"
    write_bench(str(path), [(2.5, 1.25), (3.5, 1.75)], T0)
    assert util.read_benchmark(path) == (6.0, 3.0)  # repetitions add up
    bad = tmp_path / "bad.tsv"
    bad.write_text("s\th:m:s\n1.0\t0:00:01\n")
    with pytest.raises(util.ReportError, match="no column cpu_time"):
        util.read_benchmark(bad)
    empty = tmp_path / "empty.tsv"
    empty.write_text(HEADER)
    with pytest.raises(util.ReportError, match="no rows"):
        util.read_benchmark(empty)
    (tmp_path / "none" / "benchmarks").mkdir(parents=True)
    jobs = util.collect_benchmarks(tmp_path / "none")
    assert jobs.empty and list(jobs.columns) == util.COLUMNS


def test_every_run_file_a_figure_reads_has_its_jobs(util, tmp_path, capsys):
    """Every per-run file of every figure of the smoke world (RDFs, stability, torsions, symmetry,
    repulsion, RSS, ...) maps to the jobs that write it: no figure's jobs go uncounted, and a
    figure reading RDFs counts both its MD and its RDF jobs."""
    config = load_world(ROOT / "config" / "config.yaml")
    config = copy.deepcopy(config)
    config["scale"] = "smoke"
    p = Paths(tmp_path / "results", "data/mini/smoke")
    jobs = {name: util.figure_jobs(config, p, name) for name in config["figures"]}
    assert "a run file no rule of RUN_FILE_RULES writes" not in capsys.readouterr().err
    assert any("/run_md/" in j for j in jobs["fig20"]) and any("/rdf/" in j for j in jobs["fig20"])
    assert any("/run_stability/" in j for j in jobs["md_stability"])
    assert any("/select_replay/" in j for j in jobs["fig16"])
