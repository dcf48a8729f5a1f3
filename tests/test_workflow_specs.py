"""mlipft.workflow: what the rules compute from the config (specs, inputs, arguments)."""

import json

import pytest

from mlipft import workflow as wf
from mlipft.paths import Run, split_selection


def test_finetune_spec_applies_the_variant(config):
    config["variants"]["long_mptrj"] = {"description": "d", "epochs_factor": 10, "replay": "mptrj_random",
                                        "mace_args": {"lr": 3e-4}}
    p = wf.paths(config)
    run = Run("sn2", "train", 1, "omat_medium", "pseudolabel", "estimated", "long_mptrj", 0)
    inputs = wf.finetune_inputs(config, p, run)
    assert inputs["replay"] == "results/mini/replay/sn2/mptrj_random.xyz"
    assert inputs["train"] == "results/mini/trainsets/sn2/train/f1/seed0.xyz"
    assert inputs["valid"] == "data/mini/mini/benchmarks/sn2/valid.xyz"
    spec = json.loads(wf.finetune_spec(config, run, inputs))
    finetune = config["scales"]["mini"]["finetune"]
    assert spec["max_num_epochs"] == 10 * finetune.get("epochs_by_strategy", {}).get("pseudolabel", finetune["max_num_epochs"])
    assert spec["strategy"]["mace_args"]["lr"] == 3e-4
    assert spec["strategy"]["mace_args"]["pseudolabel_replay"] is True  # the strategy's own flags stay
    assert spec["replay_file"].endswith("mptrj_random.xyz")
    base = json.loads(wf.finetune_spec(config, Run(*[*run.as_dict().values()][:6], "base", 0),
                                       wf.finetune_inputs(config, p, Run(*[*run.as_dict().values()][:6], "base", 0))))
    assert base["strategy"] == config["strategies"]["pseudolabel"]
    assert base["replay_file"].endswith("omat_matched.xyz")


def test_epochs_by_strategy(config):
    """A strategy named in the scale's epochs_by_strategy trains that many epochs (times its
    variant's factor); the others train max_num_epochs."""
    finetune = config["scales"]["mini"]["finetune"]
    finetune.update(max_num_epochs=7, epochs_by_strategy={"replay": 21})
    config["variants"]["twice"] = {"description": "d", "epochs_factor": 2}
    p = wf.paths(config)

    def epochs(strategy, variant="base"):
        run = Run("sn2", "train", 1, "omat_medium", strategy, "estimated", variant, 0)
        return json.loads(wf.finetune_spec(config, run, wf.finetune_inputs(config, p, run)))["max_num_epochs"]
    assert (epochs("naive"), epochs("replay"), epochs("replay", "twice"), epochs("naive", "twice")) == (7, 21, 42, 14)


def test_evalset_files_and_neb_reactions(config):
    p = wf.paths(config)
    assert wf.evalset_file(config, p, "lpsc", "other_argyrodites").endswith("lpsc/heldout_other_argyrodites.xyz")
    assert wf.evalset_file(config, p, "lpsc", "test").endswith("lpsc/test.xyz")
    config["benchmarks"]["sn2"]["evalsets"] = {"pretraining": {"corpus": "test"}}
    assert wf.evalset_file(config, p, "sn2", "pretraining") == "data/mini/mini/corpora/test/test.xyz"
    assert wf.neb_reactions(config, "sn2") == sorted(config["figures"]["fig06c"]["neb_reactions"])
    assert wf.neb_reactions(config, "nacl") == []


def test_figure_inputs_come_from_the_kind(config):
    p = wf.paths(config)
    inputs = wf.figure_inputs(config, p, "sn2_learning_curve")
    assert set(inputs) == {"errors", "trainable", "loss_curves", "trainsets"}
    assert len(inputs["errors"]) == 8 * 3 and len(inputs["trainsets"]) == 3
    assert all(f.endswith("/errors.csv::test") for f in inputs["errors"])
    files = wf.input_files(inputs)
    assert files["errors"] == [f[: -len("::test")] for f in inputs["errors"]] and files["trainsets"] == inputs["trainsets"]
    assert wf.figure_tables(config, p, "fig06c") == {"neb_profiles": "results/mini/tables/fig06c_neb_profiles.csv",
                                                   "neb_barriers": "results/mini/tables/fig06c_neb_barriers.csv"}
    assert wf.role_args({"a": ["x y", "z"]}) == "'a=x y' a=z"


def test_a_run_is_evaluated_once_on_every_set_its_figures_select(config):
    """One evaluation job per run: the sets of its errors table are the union over figures."""
    p = wf.paths(config)
    run = Run("sn2", "train", 1, "omat_medium", "naive", "estimated", "base", 0)
    file = p.run_file(run, "errors")
    index = wf.run_evalsets({"a": {"errors": [p.errors(run, "test"), p.errors(run, "test_seen")]},
                             "b": {"errors": [p.errors(run, "test")], "neb": [p.run_file(run, "neb")]},
                             "c": {"errors": p.errors(run, "pretraining")}})
    assert index == {file: ["pretraining", "test", "test_seen"]}
    assert wf.evalsets_of_run(index, p, run) == ["pretraining", "test", "test_seen"]
    with pytest.raises(ValueError, match="no configured figure reads errors of this run"):
        wf.evalsets_of_run(index, p, Run("sn2", "train", 1, "omat_medium", "lora", "estimated", "base", 0))
    # the committed config: every error-reading figure's runs are in the index, with at least its sets
    full = wf.run_evalsets({f: wf.figure_inputs(config, p, f) for f in config["figures"]})
    for f in ("sn2_test_errors", "fig07", "fig10"):
        for sel in wf.figure_inputs(config, p, f)["errors"]:
            file, evalset = split_selection(sel)
            assert evalset in full[file]


def test_evalset_args_name_each_set_and_its_head(config):
    multi = Run("sn2", "train", 1, "omat_medium", "replay", "estimated", "base", 0)
    single = Run("sn2", "train", 1, "omat_medium", "naive", "estimated", "base", 0)
    files = ["a/pre.xyz", "b c/test.xyz"]
    assert wf.evalset_args(config, multi, ["pretraining_pt", "test"], files) == (
        "--evalset pretraining_pt=a/pre.xyz --evalset 'test=b c/test.xyz' "
        "--head pretraining_pt=pt_head --head test=Default")
    assert "--head pretraining_pt=Default" in wf.evalset_args(config, single, ["pretraining_pt", "test"], files)
    with pytest.raises(ValueError, match="2 evaluation sets but 1 files"):
        wf.evalset_args(config, single, ["pretraining_pt", "test"], files[:1])


def test_mini_world_files_cover_every_committed_artifact(config, root):
    """The manifest's rows: every file listed exists in the committed mini world."""
    files = wf.mini_world_files(config, wf.paths(config))
    assert len(files) > 60
    missing = [f for f in files if not (root / f).exists()]
    assert not missing
    manifest = (root / "data" / "mini" / "mini" / "MANIFEST.tsv").read_text()
    for path in files:
        assert path.removeprefix("data/mini/mini/") in manifest, path


def test_validation_covers_training_files_independently_of_the_figures(config):
    p = wf.paths(config)
    files = wf.validation_files(config, p, "sn2")
    assert files["train"] == sorted(p.bench_file("sn2", t) for t in ("train", "train_rp"))
    assert files["valid"] == sorted(p.bench_file("sn2", t) for t in ("valid", "valid_rp"))
    assert files["isolated"] == [p.bench_file("sn2", "isolated_atoms")] and "evalset" not in files
    config["figures"]["lpsc_test_errors"]["evalsets"] = ["test", "other_argyrodites"]
    assert wf.validation_files(config, p, "lpsc") == wf.validation_files(wf.cfg.load_world(wf.cfg.ROOT / "config" / "config.yaml"), p, "lpsc")
    args = wf.validation_args(config, "lpsc", wf.validation_files(config, p, "lpsc"))
    assert "--stress train,valid,test" in args and "--disjoint train,valid,test" in args
    one = wf.evalset_validation_files(config, p, "lpsc", "other_argyrodites")
    assert one["evalset"] == [p.bench_file("lpsc", "heldout_other_argyrodites")]
    assert "--disjoint" not in wf.validation_args(config, "lpsc", one)


def test_committed_benchmarks_pass_validation(config, tmp_path):
    """Every file the mini figures use passes mlipft.validate_data (what the workflow runs first)."""
    import shlex

    from mlipft import validate_data

    p = wf.paths(config)
    for bench in config["benchmarks"]:
        args = shlex.split(wf.validation_args(config, bench, wf.validation_files(config, p, bench)))
        assert validate_data.main([*args, "--report", str(tmp_path / f"{bench}.json")]) == 0, bench
        derived = config["benchmarks"][bench].get("derived") or {}
        for evalset, spec in wf.cfg.benchmark_evalsets(config, bench).items():
            if spec.get("file") in derived:  # written under results/ by the workflow, validated there
                continue
            files = wf.evalset_validation_files(config, p, bench, evalset)
            args = shlex.split(wf.validation_args(config, bench, files, evalset))
            assert validate_data.main([*args, "--report", str(tmp_path / f"{bench}_{evalset}.json")]) == 0, evalset


def test_committed_mini_world_is_verified_when_used(config, root, tmp_path):
    """Every committed file is checked against MANIFEST.tsv at each Snakemake start; a corrupted
    one stops the run before any job, naming the file and how to restore or regenerate it."""
    import shutil
    import subprocess
    import sys

    assert wf.verify_committed(config, wf.paths(config)) == []
    for name in ("Snakefile", "rules", "scripts", "config", "report", "profiles"):
        src = root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    shutil.copytree(root / "data" / "mini" / "mini", tmp_path / "data" / "mini" / "mini")
    bad = tmp_path / "data" / "mini" / "mini" / "benchmarks" / "sn2" / "test.xyz"
    bad.write_text(bad.read_text().replace("Cl", "Br", 1))
    snakemake = [sys.executable, "-m", "snakemake", "-n", "fig06c"]
    proc = subprocess.run(snakemake, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "benchmarks/sn2/test.xyz: sha256 mismatch" in out and "snakemake mini_world" in out
    assert "Job stats" not in out
    proc = subprocess.run(snakemake + ["--config", "verify_manifest=False"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_finetune_priority_puts_the_longest_jobs_first(config):
    """A multihead fine-tune (replay head) and a longer variant are scheduled before a naive one
    of the same epochs; equal runs get equal priority."""
    config["variants"]["twice"] = {"description": "d", "epochs_factor": 2}

    def priority(strategy, variant="base"):
        return wf.finetune_priority(config, Run("sn2", "train", 1, "omat_medium", strategy, "estimated", variant, 0))
    assert priority("replay") > priority("naive") == priority("lora") == priority("freeze5")
    assert priority("naive", "twice") == 2 * priority("naive")
    assert priority("pseudolabel", "twice") > priority("pseudolabel")


def test_a_grid_overlay_trains_only_its_new_runs(root, tmp_path):
    """tests/data/grid_demo.yaml (built with the smoke run, tests/test_workflow.py) adds 8 runs to
    the smoke all_figures, of which omat_medium's naive and LoRA with estimated and averaged E0s
    are lpsc_test_errors' and fig04a's: the dry run plans 4 more fine-tunes, not 8."""
    import subprocess
    import sys

    from test_paper_world import job_stats

    def finetunes(*configfiles):
        cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "-d", str(tmp_path), "-n", "--nolock",
               "all_figures", "--configfile", str(root / "config" / "config.yaml"), *map(str, configfiles),
               "--config", "scale=smoke"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        return job_stats(proc.stdout)["finetune"]

    (tmp_path / "config").symlink_to(root / "config")
    assert finetunes(root / "tests" / "data" / "grid_demo.yaml") - finetunes() == 4
