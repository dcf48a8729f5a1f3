"""Config validation: each bad input stops the run with a message naming the entry."""

import subprocess
import sys

import pytest
import yaml

from mlipft.config import ConfigError, check, runs_for_figure


def test_default_config_is_valid(config):
    check(config)


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["figures"]["fig06c"].update(strategies=["naive", "nieve"]),
     r"figures\.fig06c\.strategies: unknown strategy 'nieve'"),
    (lambda c: c["figures"]["fig06c"].update(benchmark="sn3"), r"figures\.fig06c\.benchmark: unknown benchmark 'sn3'"),
    (lambda c: c["figures"]["fig06c"].update(foundation="omat"), r"figures\.fig06c\.foundation: unknown foundation 'omat'"),
    (lambda c: c.update(main_foundation="omat"), r"config entry main_foundation: unknown foundation 'omat'"),
    (lambda c: c["figures"]["fig06c"].update(foundation=["mp0", "omat"]), r"figures\.fig06c\.foundation: unknown foundation 'omat'"),
    (lambda c: c["figures"]["fig06c"].update(e0s=["estimated", "averaged"]), r"figures\.fig06c\.e0s"),
    (lambda c: c["figures"]["fig06c"].update(variants=["lr_high"]), r"figures\.fig06c\.variants: unknown variant 'lr_high'"),
    (lambda c: c["figures"]["fig06c"].update(kind="violin"), r"figures\.fig06c\.kind: 'violin' is not a figure kind"),
    (lambda c: c["figures"]["fig06c"].update(seedz=[0]), r"figures\.fig06c: unknown key\(s\) \['seedz'\] for a figure of kind neb_profiles; allowed: \[.*'seeds'"),
    (lambda c: c["figures"]["sn2_test_errors"].update(neb_reactions=["Cl_Cl"]),
     r"figures\.sn2_test_errors: unknown key\(s\) \['neb_reactions'\] for a figure of kind test_errors"),
    (lambda c: c["figures"]["lpsc_test_errors"].update(evalsets=["test", "heldout"]),
     r"figures\.lpsc_test_errors\.evalsets: 'heldout' is not an evaluation set of lpsc"),
    (lambda c: c["benchmarks"]["sn2"].update(evalsets={"pre": {"corpus": "omat24"}}),
     r"benchmarks\.sn2\.evalsets\.pre\.corpus: 'omat24' is not a corpus"),
    (lambda c: c["variants"].update(fast={"description": "d", "mace_args": {"lrr": 0.1}}),
     r"variants\.fast\.mace_args\.lrr: not a mace_run_train .*did you mean 'lr'"),
    (lambda c: c["variants"].update(fast={"description": "d", "replay": "nope"}), r"variants\.fast\.replay: unknown replay set"),
    (lambda c: (c["variants"].update(mptrj={"description": "d", "replay": "mptrj_random"}),
                c["figures"]["fig06c"].update(variants=["mptrj"])),
     r"figures\.fig06c\.variants: mptrj on strategy scratch: variant mptrj sets a replay set, but strategy scratch is not multihead"),
    (lambda c: (c["variants"].update(hot={"description": "d", "mace_args": {"force_mh_ft_lr": False}}),
                c["figures"]["fig06c"].update(variants=["hot"])),
     r"figures\.fig06c\.variants: hot on strategy replay: .*force_mh_ft_lr"),
    (lambda c: c["variants"].update(base={"description": "d", "epochs_factor": 2}), r"variants\.base: the base variant"),
    (lambda c: c.update(unavailable_figures={"fig06c": "why"}), r"unavailable_figures\.fig06c: the figure is still defined"),
    (lambda c: c["figures"]["fig06c"].update(fractions=[0.5, 1.5]), r"figures\.fig06c\.fractions: 1\.5 is outside \(0, 1\]"),
    (lambda c: c["figures"]["fig06c"].update(fractions=[0]), r"figures\.fig06c\.fractions: 0 is outside"),
    (lambda c: c["figures"]["sn2_test_errors"].update(fractions=[0.1, 1.0]),
     r"figures\.sn2_test_errors\.fractions: a test_errors figure compares .* use kind: learning_curve"),
    (lambda c: c["figures"]["sn2_learning_curve"].update(fractions=[1.0]),
     r"figures\.sn2_learning_curve\.fractions: a learning_curve figure needs at least two different fractions"),
    (lambda c: c["figures"]["fig06c"].update(trainset="train_ts"), r"figures\.fig06c\.trainset: 'train_ts' is not a training set"),
    (lambda c: c["figures"]["fig06c"].update(neb_reactions=["Cl_I"]), r"figures\.fig06c\.neb_reactions"),
    (lambda c: c.update(scale="huge"), r"config entry scale: 'huge' is not one of"),
    (lambda c: c["scales"]["mini"]["finetune"].update(epochs_by_strategy={"relpay": 50}),
     r"scales\.mini\.finetune\.epochs_by_strategy\.relpay: not a strategy .*did you mean 'replay'"),
    (lambda c: c["scales"]["mini"]["finetune"].update(epochs_by_strategy={"replay": 0}),
     r"scales\.mini\.finetune\.epochs_by_strategy\.replay: 0 is less than the minimum"),
    (lambda c: c.update(default_dtype="float16"), r"config entry default_dtype: 'float16' is not one of"),
    (lambda c: c.update(pretrain_dtype="double"), r"config entry pretrain_dtype: 'double' is not one of"),
    (lambda c: c["training"].update(comon={}),
     r"config entry training: unknown key\(s\) \['comon'\]; allowed: \['common', 'pretrain', 'scratch_model_from'\]"),
    (lambda c: c["training"]["pretrain"].update(los="weighted"),
     r"config entry training\.pretrain\.los: not a mace_run_train .*did you mean 'loss'"),
    (lambda c: c["training"]["common"].update(energy_wieght=1.0), r"config entry training\.common\.energy_wieght: not a mace_run_train"),
    (lambda c: c["training"]["common"].update(max_num_epochs=5), r"training\.common\.max_num_epochs: this flag is set by the workflow"),
    (lambda c: c["foundations"]["omat_medium"]["model"].update(num_chanels=32),
     r"config entry foundations\.omat_medium\.model\.num_chanels: not a mace_run_train"),
    (lambda c: c["strategies"]["naive"].update(mutlihead=False), r"strategies\.naive: unknown key\(s\) \['mutlihead'\]"),
    (lambda c: c["strategies"]["lora"]["mace_args"].update(lora_rnak=4), r"strategies\.lora\.lora_rnak: not a mace_run_train"),
    (lambda c: c.update(world="moon"), r"config entry world: 'moon' is not one of"),
    (lambda c: c["figures"]["fig06c"].update(e0s="average"), r"figures\.fig06c: .*average E0s cannot be used with multihead"),
    (lambda c: c["figures"]["fig06c"].update(kind="neb_profiles", neb_reactions=[]), r"neb_reactions"),
    (lambda c: c["foundations"]["mp0"].update(corpus="omat24"), r"foundations\.mp0\.corpus: 'omat24' is not a training corpus"),
    (lambda c: c["foundations"]["omat_small"].update(corpus=["mptrj", "test"]),
     r"foundations\.omat_small\.corpus: 'test' is not a training corpus"),
    (lambda c: c["foundations"]["omat_small"].update(corpus=["mptrj", "omat"], corpus_fraction=0.5),
     r"foundations\.omat_small\.corpus_fraction: only a single corpus can be cut"),
    (lambda c: c["foundations"]["omat_small"].update(corpus=[]), r"foundations\.omat_small\.corpus: .* is not valid"),
    (lambda c: c["foundations"]["mp0"].update(corpus_fraction=1.5), r"foundations\.mp0\.corpus_fraction: 1\.5 is greater than"),
    (lambda c: c["replay"].update(both={"combine": ["omat_matched", "mptrj_rnd"]}),
     r"replay\.both\.combine: \['mptrj_rnd'\] are not other"),
    (lambda c: c["replay"].update(self={"combine": ["self", "omat_matched"]}), r"replay\.self\.combine: \['self'\]"),
    (lambda c: c["replay"].update(half={"corpus": "omat"}), r"config entry replay\.half: .*is not valid"),
    (lambda c: c.update(foundation_testset="tset"), r"foundation_testset: 'tset' is not a corpus"),
    (lambda c: c["benchmarks"]["nacl"].update(threads=0), r"benchmarks\.nacl\.threads: 0 is less than"),
    (lambda c: c.update(y_anchor={}), r"config entry <top level>: unknown key\(s\) \['y_anchor'\]; allowed: .* \(and x-\* anchors\)"),
    (lambda c: c["strategies"]["replay"].update(replay="nope"), r"strategies\.replay\.replay: unknown replay set 'nope'"),
    (lambda c: c.update(sources="config/sources/nowhere.yaml"), r"config entry sources: file not found"),
    (lambda c: c["variants"].update({"lr_1e-3": {"description": "x", "mace_args": {"lr": 0.001}}}),
     r"config entry variants\.lr_1e-3: the name 'lr_1e-3' becomes part of file paths and must match"),
    (lambda c: c["benchmarks"]["ice"].update(trainsets=["train", "train Ih"]),
     r"config entry benchmarks\.ice\.trainsets: the name 'train Ih' becomes part of file paths"),
    (lambda c: c["scales"]["mini"].update(figures={"fig_05": {"seeds": [1]}}),
     r"config entry scales\.mini\.figures\.fig_05: no figure 'fig_05' to override; did you mean 'fig05'\?"),
    (lambda c: c["variants"].update(late={"description": "x", "stage_two_start_fraction": 1.5}),
     r"variants\.late\.stage_two_start_fraction: 1\.5 is greater than or equal to the maximum of 1"),
])
def test_bad_inputs_name_the_entry(config, mutate, message):
    mutate(config)
    with pytest.raises(ConfigError, match=message):
        check(config)


def test_runs_for_figure(config):
    runs = runs_for_figure(config, "fig06c")
    assert [r.strategy for r in runs] == list(config["strategies"])
    scratch = next(r for r in runs if r.strategy == "scratch")
    assert scratch.e0s == "isolated" and runs[1].e0s == "estimated"
    assert runs[1].path == "runs/sn2/train_rp/f1/omat_medium/naive/e0-estimated/v-base/seed0"


def test_grid_is_the_product_of_its_axes(config):
    """Every axis may be a list; the runs are their product, a strategy's own E0 mode folding
    from-scratch runs onto isolated E0s (no repeats)."""
    config["variants"]["lr_low"] = {"description": "d", "mace_args": {"lr": 1e-4}}
    config["figures"]["grid"] = {
        "kind": "test_errors", "description": "d", "benchmark": "lpsc", "foundation": ["mpa", "omat_medium"],
        "strategies": ["scratch", "naive", "lora"], "e0s": ["estimated", "average"], "fractions": [1.0],
        "variants": ["base", "lr_low"], "seeds": [0, 1], "evalsets": ["test", "other_argyrodites"]}
    check(config)
    runs = runs_for_figure(config, "grid")
    # naive and lora: 2 foundations x 2 E0 modes x 2 variants x 2 seeds; scratch: E0s fold to isolated
    assert len(runs) == 2 * (2 * 2 * 2 * 2) + 2 * 2 * 2 == len(set(runs)) == 40
    assert {r.e0s for r in runs if r.strategy == "scratch"} == {"isolated"}
    assert {r.variant for r in runs} == {"base", "lr_low"}
    assert all(f"/v-{r.variant}/" in r.path for r in runs)


def test_unique_fine_tunes_over_all_figures(config):
    """A run shared by figures is trained once: fig06c's 8 (reactant/product set), SN2's 8 full
    runs shared by sn2_test_errors and the learning curve's largest fraction, 16 more for its two
    smaller fractions, and 8 per other benchmark."""
    from mlipft.config import unique_runs

    per_figure = sum(len(runs_for_figure(config, f)) for f in config["figures"])
    seven = 8 + 8 + 24 + 4 * 8  # fig06c, SN2 test errors and learning curve, the other four benchmarks
    # fig03a/b, fig04a/b, fig05, fig12, fig13, fig14, fig15, fig17, fig18
    prerequisites = 4 + 4 + 4 + 4 + 8 + 3 + 3 + 6 + 3 + 16 + 8
    # fig01 (the SN2 runs), fig02 (no fine-tune), fig07 (8 on the seen reactions), fig09 (fig08's SPICE
    # runs), fig19 (3 strategies x 5 training sets)
    overview = 8 + 0 + 8 + 8 + 15
    preservation = 5 * 8  # fig10: every strategy on each benchmark at the periodic benchmarks' fifth
    # fig06a (10 % x 3 seeds), fig06b (100 %), fig20 (both, and 10 % x 10 epochs), md_stability (NaCl, ice)
    narrow = 8 * 3 + 8 + 8 * 5 + 2 * 8
    symmetry = 8 + 8  # symmetry_table (SN2) and symmetry_table_nacl: the test-error runs, checked
    repulsion = 8 + 8  # NaCl and SN2 at a fifth: the NaCl test-error runs and fig10's SN2 runs
    # fig11 (every strategy at 10 % and 100 %), fig16 (scratch, naive, pseudolabel, and pseudolabel on two
    # more replay sets, at 100 %)
    rss = 16 + 5
    # spread_foundation (fig17's), spread_e0s (fig04a's), spread_seeds (fig06a's)
    spreads = 16 + 4 + 24
    expected = seven + prerequisites + overview + preservation + narrow + symmetry + repulsion + rss + spreads
    assert per_figure == expected == 399
    # shared: each figure's omat_medium/base/estimated run of the main grids (fig03a: the LPSC
    # pseudolabel run, fig03b: fig06c's, fig04a/b: naive and LoRA, fig12: fig05's Ih, fig13/fig15:
    # fig03a's, fig14: sn2_test_errors', fig17: lpsc_test_errors' eight and fig03a's mp0, fig18: fig05's)
    assert len(unique_runs(config)) == 8 + 8 + 16 + 4 * 8 + 3 + 3 + 2 + 2 + 8 + 2 + 2 + 5 + 2 + 7 + 4 + 8 + 11 + 16 + 40 + 2 == 181
    # fig07: all new (a training set without the held-out reactions); fig19: its naive single-phase runs
    # are fig05's, LoRA and pseudolabel on each phase (8) and the three on all phases are new; fig01 and
    # fig09 add analyses of existing runs only; fig10: SN2 and SPICE at a fifth are new (16), the periodic
    # benchmarks' runs are their test-error figures; fig20's 40 NaCl runs are new (fig06a/b are some of
    # them), md_stability's are the NaCl and ice test-error runs; fig11's are fig20's (seed 0), fig16 adds
    # pseudolabel on the random and combined replay sets (2); the spreads add error evaluations only


def test_layered_config_writes_the_registry_once(root):
    """config/shared.yaml holds the registry, training defaults and grids; both worlds get them."""
    from mlipft.config import load, load_world

    shared = load(root / "config" / "shared.yaml")
    for world in ("config.yaml", "paper.yaml"):
        assert "strategies" not in load(root / "config" / world) and "common" not in load(root / "config" / world).get("training", {})
        merged = load_world(root / "config" / world)
        assert merged["strategies"] == shared["strategies"]
        assert merged["training"]["common"] == shared["training"]["common"]
        check(merged)
    paper = load_world(root / "config" / "paper.yaml")
    assert paper["figures"]["sn2_test_errors"]["seeds"] == [0, 1, 2]
    assert paper["figures"]["fig06c"]["neb_reactions"] == ["rxn1", "rxn6", "rxn17", "rxn18"]
    assert "nacl_test_errors" in paper["figures"]  # NaCl has a paper-world recipe
    assert "fig09" not in paper["figures"]  # unavailable_figures (no public torsion scans), with the reason


def test_snakemake_stops_before_any_job(config, root, tmp_path):
    """A bad config file stops `snakemake` at parse time with the entry in the message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"figures": {"fig06c": {"strategies": ["naive", "nieve"]}}}))
    snakemake = [sys.executable, "-m", "snakemake"]
    proc = subprocess.run(snakemake + ["-n", "fig06c", "--configfile", str(root / "config" / "config.yaml"), str(bad)], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "figures.fig06c.strategies: unknown strategy 'nieve'" in proc.stdout + proc.stderr
    assert not (root / "results" / "mini" / "runs" / "sn2" / "train_rp" / "f1" / "mini" / "nieve").exists()


@pytest.mark.parametrize("overlay", ["science.yaml", "architecture.yaml"])
def test_benchmark_overlays_are_valid(root, overlay):
    """The overlays of benchmarks/ (the science check's runs, the architecture lever's probe) lay
    over the mini world and pass its validation; the probe adds a foundation and two figures."""
    from mlipft.config import load_world

    config = load_world(root / "config" / "config.yaml", root / "benchmarks" / overlay)
    check(config, root)
    if overlay == "architecture.yaml":
        fast, medium = config["foundations"]["omat_medium_fast"]["model"], config["foundations"]["omat_medium"]["model"]
        changed = ("r_max", "max_ell", "radial_MLP")
        assert {k: v for k, v in fast.items() if k not in changed} == {k: v for k, v in medium.items() if k not in changed}
        assert fast["r_max"] < medium["r_max"]
        assert {run.foundation for run in runs_for_figure(config, "arch_probe")} == {"omat_medium", "omat_medium_fast"}
