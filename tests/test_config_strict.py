"""The config check catches, before any job, what would fail later: mace flag values (type,
choices, ranges mace does not check), duplicate YAML keys, YAML syntax errors, a value listed
twice on a figure's axis, an empty figure set, misspelt keys (with a "did you mean")."""

import subprocess
import sys

import pytest

from mlipft.config import ConfigError, check, check_files, load, load_world, resolve
from mlipft.mace_flags import load_snapshot
from mlipft.registry import _render

E = "config entry "
LOSSES = "ef, weighted, forces_only, virials, stress, dipole, dipole_polar, huber, universal, energy_forces_dipole, l1l2energyforces"


def _set(*path, value):
    def mutate(c):
        node = c
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _variant(c):
    c["variants"]["fast"] = {"description": "d", "mace_args": {"lr": 0}}


# ---- values of mace flags: mace's own type and choices, and the ranges its parser leaves out ----
@pytest.mark.parametrize("mutate,message", [
    (_set("strategies", "lora", "mace_args", "lora_rank", value="four"),
     E + "strategies.lora.mace_args.lora_rank: 'four' is not a valid int (mace_run_train --lora_rank)"),
    (_set("strategies", "lora", "mace_args", "lora_rank", value=2.5),
     E + "strategies.lora.mace_args.lora_rank: 2.5 is not a valid int (mace_run_train --lora_rank)"),
    (_set("strategies", "lora", "mace_args", "lora_rank", value=0),
     E + "strategies.lora.mace_args.lora_rank: 0 must be >= 1"),
    (_set("strategies", "naive", "mace_args", "lr", value=-0.001), E + "strategies.naive.mace_args.lr: -0.001 must be > 0"),
    (_set("strategies", "naive", "mace_args", "lr", value="fast"),
     E + "strategies.naive.mace_args.lr: 'fast' is not a valid float (mace_run_train --lr)"),
    (_set("strategies", "naive", "mace_args", "lr", value=True),
     E + "strategies.naive.mace_args.lr: True is not a valid float (mace_run_train --lr)"),
    (_set("strategies", "naive", "mace_args", "ema_decay", value=1.5),
     E + "strategies.naive.mace_args.ema_decay: 1.5 must be in (0, 1)"),
    (_set("strategies", "scratch", "mace_args", "ema_decay", value=0), E + "strategies.scratch.mace_args.ema_decay: 0 must be in (0, 1)"),
    (_set("strategies", "naive", "mace_args", "clip_grad", value=0), E + "strategies.naive.mace_args.clip_grad: 0 must be > 0"),
    (_set("strategies", "naive", "mace_args", "clip_grad", value="off"),
     E + "strategies.naive.mace_args.clip_grad: 'off' is not a valid float (or None) (mace_run_train --clip_grad)"),
    (_set("strategies", "lora", "mace_args", "lora_alpha", value=-1), E + "strategies.lora.mace_args.lora_alpha: -1 must be > 0"),
    (_set("strategies", "lora", "mace_args", "lora", value="maybe"),
     E + "strategies.lora.mace_args.lora: 'maybe' is not a valid boolean (true/false) (mace_run_train --lora)"),
    (_set("strategies", "freeze5", "mace_args", "freeze", value="all"),
     E + "strategies.freeze5.mace_args.freeze: 'all' is not a valid int (mace_run_train --freeze)"),
    (_set("strategies", "freeze5", "mace_args", "freeze", value=-1), E + "strategies.freeze5.mace_args.freeze: -1 must be >= 0"),
    (_set("foundations", "omat_medium", "model", "num_channels", value=0),
     E + "foundations.omat_medium.model.num_channels: 0 must be >= 1"),
    (_set("foundations", "omat_medium", "model", "max_L", value=-1), E + "foundations.omat_medium.model.max_L: -1 must be >= 0"),
    (_set("foundations", "omat_medium", "model", "r_max", value=0), E + "foundations.omat_medium.model.r_max: 0 must be > 0"),
    (_set("foundations", "omat_medium", "model", "num_interactions", value="two"),
     E + "foundations.omat_medium.model.num_interactions: 'two' is not a valid int (mace_run_train --num_interactions)"),
    (_set("training", "common", "energy_weight", value=-1), E + "training.common.energy_weight: -1 must be >= 0"),
    (_set("training", "common", "forces_weight", value=-10.0), E + "training.common.forces_weight: -10.0 must be >= 0"),
    (_set("training", "common", "loss", value="l2"),
     E + f"training.common.loss: 'l2' is not a choice of mace_run_train --loss (choices: {LOSSES})"),
    (_set("training", "common", "optimizer", value="sgd2"),
     E + "training.common.optimizer: 'sgd2' is not a choice of mace_run_train --optimizer (choices: adam, adamw, schedulefree)"),
    (_set("training", "common", "scheduler_patience", value="x"),
     E + "training.common.scheduler_patience: 'x' is not a valid int (mace_run_train --scheduler_patience)"),
    (_set("training", "common", "ema", value="no"), E + "training.common.ema: 'no' is not true or false (mace_run_train --ema is a switch)"),
    (_set("training", "pretrain", "start_stage_two", value=-1), E + "training.pretrain.start_stage_two: -1 must be >= 0"),
    (_set("training", "pretrain", "stage_two_lr", value=0), E + "training.pretrain.stage_two_lr: 0 must be > 0"),
    (_set("training", "pretrain", "stage_two_energy_weight", value=-1000.0),
     E + "training.pretrain.stage_two_energy_weight: -1000.0 must be >= 0"),
    (_variant, E + "variants.fast.mace_args.lr: 0 must be > 0"),
])
def test_mace_flag_values(config, mutate, message):
    mutate(config)
    with pytest.raises(ConfigError) as err:
        check(config)
    assert str(err.value) == message


@pytest.mark.parametrize("key,value", [("clip_grad", "None"), ("lr", "1e-3"), ("lora", "yes"), ("gate", "None"),
                                      ("ema_decay", 0.5), ("freeze", 0), ("lora_rank", 1)])
def test_values_mace_accepts_pass(config, key, value):
    """What mace's parser reads is accepted: "None" for clip_grad, "1e-3" (YAML's string), "yes"."""
    config["strategies"]["lora"]["mace_args"][key] = value
    check(config)


def test_store_false_flags_render_as_the_bare_flag():
    """mace's store_false flags (foundation_model_readout) are switches: false writes the flag."""
    kinds = load_snapshot()
    assert kinds["foundation_model_readout"] == {"kind": "switch_off"}
    assert _render("foundation_model_readout", False, kinds) == ["--foundation_model_readout"]
    assert _render("foundation_model_readout", True, kinds) == []
    assert _render("lora", True, kinds) == ["--lora=True"] and _render("ema", True, kinds) == ["--ema"]


# ---- a value listed twice on a figure's axis ----
@pytest.mark.parametrize("figure,key,value,message", [
    ("fig06c", "strategies", ["naive", "naive"], "figures.fig06c.strategies: 'naive' is listed twice"),
    ("sn2_learning_curve", "fractions", [0.1, 0.10, 1.0], "figures.sn2_learning_curve.fractions: 0.1 is listed twice"),
    ("sn2_learning_curve", "fractions", [0.1, 1, 1.0],
     "figures.sn2_learning_curve.fractions: 1 and 1.0 are the same fraction (run directory f1), listed twice"),
    ("sn2_learning_curve", "fractions", [0.1, 0.1000001, 1.0],
     "figures.sn2_learning_curve.fractions: 0.1 and 0.1000001 are the same fraction (run directory f0.1), listed twice"),
    ("fig06c", "seeds", [0, 0], "figures.fig06c.seeds: 0 is listed twice"),
    ("fig06c", "foundation", ["mp0", "mpa", "mp0"], "figures.fig06c.foundation: 'mp0' is listed twice"),
    ("fig06c", "e0s", ["estimated", "estimated"], "figures.fig06c.e0s: 'estimated' is listed twice"),
    ("fig06c", "variants", ["base", "base"], "figures.fig06c.variants: 'base' is listed twice"),
    ("lpsc_test_errors", "evalsets", ["test", "test"], "figures.lpsc_test_errors.evalsets: 'test' is listed twice"),
    ("fig06c", "benchmark", ["sn2", "sn2"], "figures.fig06c.benchmark: 'sn2' is listed twice"),
    ("fig06c", "trainset", ["train_rp", "train_rp"], "figures.fig06c.trainset: 'train_rp' is listed twice"),
    ("fig06c", "neb_reactions", ["Cl_Cl", "Br_Br", "Cl_Cl"], "figures.fig06c.neb_reactions: 'Cl_Cl' is listed twice"),
])
def test_duplicates_in_list_axes(config, figure, key, value, message):
    config["figures"][figure][key] = value
    with pytest.raises(ConfigError) as err:
        check(config)
    assert str(err.value) == E + message


def test_fractions_compare_as_numbers_in_yaml(root, tmp_path):
    """0.1 and 0.10 in a world file are one fraction (one run directory)."""
    world = tmp_path / "world.yaml"
    world.write_text("figures:\n  sn2_learning_curve:\n    fractions: [0.1, 0.10, 1.0]\n")
    with pytest.raises(ConfigError) as err:
        check(load_world(root / "config" / "config.yaml", world))
    assert str(err.value) == E + "figures.sn2_learning_curve.fractions: 0.1 is listed twice"


def test_duplicate_list_outside_figures_names_the_value(config):
    config["foundations"]["omat_small"]["corpus"] = ["mptrj", "mptrj"]
    with pytest.raises(ConfigError) as err:
        check(config)
    assert str(err.value) == E + "foundations.omat_small.corpus: 'mptrj' is listed twice"


# ---- nothing to build ----
def test_empty_figures(config):
    config["figures"] = {}
    with pytest.raises(ConfigError) as err:
        check(config)
    assert str(err.value) == E + "figures: no figure to build (figures is empty)"


def test_every_figure_unavailable(config):
    config["unavailable_figures"] = {name: "not yet" for name in config["figures"]}
    resolve(config)
    assert config["figures"] == {}
    with pytest.raises(ConfigError, match=r"^config entry figures: no figure to build \(this world's "
                                          r"unavailable_figures drops every one: \['fig01', 'fig02', 'fig03a', "):
        check(config)


# ---- misspelt keys: one line, with a "did you mean" ----
def test_misspelt_top_level_key(config):
    config["figure"] = config.pop("figures")
    with pytest.raises(ConfigError) as err:
        check(config)
    message = str(err.value)
    assert message.startswith(E + "<top level>: unknown key(s) ['figure']; allowed: [")
    assert message.endswith("(and x-* anchors); did you mean 'figures'?") and "\n" not in message
    assert "required" not in message  # the misspelt key, not the missing `figures` it leaves


def test_misspelt_figure_key(config):
    config["figures"]["fig06c"]["seed"] = config["figures"]["fig06c"].pop("seeds")
    with pytest.raises(ConfigError) as err:
        check(config)
    assert str(err.value).startswith(E + "figures.fig06c: unknown key(s) ['seed'] for a figure of kind neb_profiles; allowed: [")
    assert str(err.value).endswith("; did you mean 'seeds'?")


def test_misspelt_nested_key(config):
    config["training"]["comon"] = config["training"].pop("common")
    with pytest.raises(ConfigError) as err:
        check(config)
    assert str(err.value) == (E + "training: unknown key(s) ['comon']; allowed: ['common', 'pretrain', "
                              "'scratch_model_from']; did you mean 'common'?")


# ---- YAML files: duplicate keys and syntax errors name the file, line and column ----
def test_duplicate_yaml_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("figures:\n  fig06c:\n    seeds: [0]\n    strategies: [naive]\n    seeds: [1]\n")
    with pytest.raises(ConfigError) as err:
        load(bad)
    assert str(err.value) == (f"config file {bad}, line 5, column 5: duplicate key 'seeds' (first at line 3; "
                              "YAML would keep only the last one)")


def test_duplicate_top_level_key_in_a_world(root, tmp_path):
    bad = tmp_path / "world.yaml"
    bad.write_text("scale: smoke\nseed: 1\nscale: mini\n")
    with pytest.raises(ConfigError, match=rf"^config file {bad}, line 3, column 1: duplicate key 'scale' \(first at line 1"):
        load_world(root / "config" / "config.yaml", bad)


def test_merge_key_may_be_overridden(tmp_path):
    """`{<<: *anchor, max_L: 1}` (config/config.yaml's omat_medium) overrides, it does not repeat."""
    ok = tmp_path / "ok.yaml"
    ok.write_text("x: &m {a: 1, b: 2}\ny: {<<: *m, b: 3}\nz:\n  <<: *m\n  a: 5\n")
    assert load(ok) == {"x": {"a": 1, "b": 2}, "y": {"a": 1, "b": 3}, "z": {"a": 5, "b": 2}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("x: &m {a: 1}\nz:\n  <<: *m\n  a: 5\n  a: 6\n")
    with pytest.raises(ConfigError, match=r"line 5, column 3: duplicate key 'a' \(first at line 4"):
        load(bad)


def test_yaml_syntax_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("figures:\n  fig06c:\n    strategies: [naive, lora\n    seeds: [0]\n")
    with pytest.raises(ConfigError) as err:
        load(bad)
    assert str(err.value) == (f"config file {bad}, line 4, column 10: did not find expected ',' or ']' "
                              "(while parsing a flow sequence at line 3, column 17)")


def test_yaml_tab_indentation(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scale:\tmini\n\tseed: 1\n")
    with pytest.raises(ConfigError, match=rf"^config file {bad}, line 2, column 1: found a tab character"):
        load(bad)


def test_check_files(root, tmp_path):
    committed = [root / "config" / name for name in ("shared.yaml", "config.yaml", "paper.yaml")]
    check_files(committed)
    bad = tmp_path / "bad.yaml"
    bad.write_text("figures:\n  fig06c:\n    neb_reactions: [Cl_Cl]\n    neb_reactions: [Br_Br]\n")
    with pytest.raises(ConfigError, match=rf"^config file {bad}, line 4, column 5: duplicate key 'neb_reactions'"):
        check_files([*committed, bad])
    top = tmp_path / "list.yaml"
    top.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"not a mapping of config keys \(got list\)"):
        check_files([top])


# ---- the committed worlds pass; Snakemake stops at parse time ----
def test_committed_worlds_pass(root):
    for world in ("config.yaml", "paper.yaml"):
        check(load_world(root / "config" / world), root=root)


@pytest.mark.parametrize("text,message", [
    ("figures:\n  fig06c:\n    seeds: [0]\n    seeds: [1]\n",
     "line 4, column 5: duplicate key 'seeds' (first at line 3; YAML would keep only the last one)"),
    ("strategies:\n  lora:\n    mace_args: {lora_rank: four}\n",
     "config entry strategies.lora.mace_args.lora_rank: 'four' is not a valid int (mace_run_train --lora_rank)"),
])
def test_snakemake_stops_before_any_job(root, tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "fig06c", "--configfile",
                           str(root / "config" / "config.yaml"), str(bad)],
                          cwd=root, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"invalid configuration: {message if message.startswith('config entry') else f'config file {bad}, {message}'}" in out
    assert "Failed validating" not in out and "Job stats" not in out  # no schema dump, no job


# ---- `python -m mlipft.config FILE...`: the check of the Snakefile, before Snakemake parses the files ----

def test_config_cli_passes_the_committed_worlds(capsys):
    from mlipft.config import ROOT, main

    assert main([]) == 0 and capsys.readouterr().out == "ok\n"
    assert main([str(ROOT / "config" / "config.yaml")]) == 0


@pytest.mark.parametrize("text,message", [
    ("figures:\n  fig06c:\n    strategies: [naive, lora\n    seeds: [0]\n",
     "line 4, column 10: did not find expected ',' or ']' (while parsing a flow sequence at line 3, column 17)"),
    ("seed: 1\nseed: 2\n", "line 2, column 1: duplicate key 'seed' (first at line 1; YAML would keep only the last one)"),
    ("scale:\tmini\n\tseed: 1\n",
     "line 2, column 1: found a tab character that violates indentation (while scanning a plain scalar at line 1, column 8)"),
])
def test_config_cli_names_file_line_and_column(tmp_path, capsys, text, message):
    from mlipft.config import ROOT, main

    overlay = tmp_path / "mine.yaml"
    overlay.write_text(text)
    assert main([str(ROOT / "config" / "config.yaml"), str(overlay)]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"invalid configuration: config file {overlay}, {message}\n"


def test_config_cli_names_a_config_entry(tmp_path, capsys):
    from mlipft.config import ROOT, main

    overlay = tmp_path / "mine.yaml"
    overlay.write_text("strategies:\n  naive:\n    mace_args: {lr: .inf}\n")
    assert main([str(ROOT / "config" / "config.yaml"), str(overlay)]) == 1
    assert capsys.readouterr().err == ("invalid configuration: config entry strategies.naive.mace_args.lr: inf is not "
                                       "finite (mace_run_train --lr)\n")
