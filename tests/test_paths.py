"""The paths module: every run, trainset, evaluation and table path formatted and parsed back."""

import pytest

from mlipft.paths import Paths, Run, parse_run, parse_trainset, split_selection


def test_run_path_names_every_axis_and_parses_back():
    run = Run("sn2", "train_rp", 0.10, "omat_medium", "replay_lora", "estimated", "lr_low", 3)
    assert run.path == "runs/sn2/train_rp/f0.1/omat_medium/replay_lora/e0-estimated/v-lr_low/seed3"
    p = Paths("results/mini")
    for path in (p.run_dir(run), p.run_file(run, "model"), p.errors(run, "other_argyrodites"),
                 p.run_file(run, "neb"), "/abs/prefix/" + p.run_file(run, "trainable")):
        assert parse_run(path) == run


def test_patterns_and_concrete_paths_agree():
    run = Run("ice", "train", 1, "mpa", "naive", "average", "base", 0)
    p = Paths("res", "data/mini/smoke")
    assert p.pattern("errors").format(**run.as_dict()) == p.run_file(run, "errors")
    assert p.errors(run, "test_Ih") == p.run_file(run, "errors") + "::test_Ih"
    assert split_selection(p.errors(run, "test_Ih")) == (p.run_file(run, "errors"), "test_Ih")
    assert split_selection(p.run_file(run, "errors")) == (p.run_file(run, "errors"), None)
    with pytest.raises(ValueError, match="no evaluation set"):
        split_selection(p.run_file(run, "errors") + "::")
    assert p.pattern("trainset").format(**run.as_dict()) == p.trainset(run)
    assert p.pattern("e0s").format(**run.as_dict()) == p.e0s(run)
    assert p.pattern("log:finetune").startswith("res/logs/finetune/runs/{benchmark}/")
    assert p.pattern("log:fit_e0s@e0s").endswith("/{foundation}.log")
    assert parse_trainset(p.trainset(run)) == {"benchmark": "ice", "trainset": "train", "fraction": "1", "seed": "0"}
    assert p.bench_file("ice", "test") == "data/mini/smoke/benchmarks/ice/test.xyz"
    assert p.bench_file("nacl", "rdf_reference.csv").endswith("nacl/rdf_reference.csv")
    assert p.table("fig06c", "neb_barriers") == "res/tables/fig06c_neb_barriers.csv"


def test_paths_outside_the_layout_are_refused():
    with pytest.raises(ValueError, match="not under a runs/ folder"):
        parse_run("results/x/model.model")
    with pytest.raises(ValueError, match="does not match"):
        parse_run("results/runs/sn2/train/f1/found/naive/e0-estimated/seed0/model.model")  # no variant
    with pytest.raises(KeyError):
        Paths("r").pattern("nothing")


def test_log_and_benchmark_names_drop_the_output_suffix():
    p = Paths("res")
    assert p.pattern("benchmark:evaluate_errors@errors").endswith("/seed{seed}/errors.tsv")
    assert p.pattern("log:validate_data@validation") == "res/logs/validate_data/validation/{benchmark}.log"
    assert p.validation("sn2") == "res/validation/sn2.json"
