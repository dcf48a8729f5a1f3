"""Derived sets (mlipft.derive) and the transfer kinds built on them: phase_blocks (single-phase
against combined ice fine-tuning, the paper's Fig. 19) and near_transfer (seen against held-out
SN2 reactions, Fig. 7): tables from per-run files at real run paths, hand-computed values, plots
and the configuration checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from mlipft import derive
from mlipft.config import ConfigError, check
from mlipft.figures import near_transfer, phase_blocks
from mlipft.io import read_configs, write_atomic
from mlipft.keys import CONFIG_TYPE_KEY, ENERGY_KEY, ISOLATED_ATOM
from mlipft.paths import Paths, Run
from conftest import write_errors

# ---------------------------------------------------------------------------------------
# derived sets


def _frames():
    out = []
    for n, reaction in enumerate(["Cl_Cl", "Cl_Br", "Br_Br", "Br_Cl", "Cl_Cl"]):
        a = Atoms("HCl", positions=[[0, 0, 0], [0, 0, 1.3 + 0.01 * n]])
        a.info.update(reaction=reaction, **{ENERGY_KEY: -1.0 * n})
        out.append(a)
    iso = Atoms("H")
    iso.info[CONFIG_TYPE_KEY] = ISOLATED_ATOM
    return out + [iso]


def test_derive_keeps_the_matching_or_the_other_frames_in_file_order():
    frames = _frames()
    held = derive.derive(frames, {"reaction": ["Cl_Br", "Br_Cl"]}, "matching")
    seen = derive.derive(frames, {"reaction": ["Cl_Br", "Br_Cl"]}, "others")
    assert [a.info["reaction"] for a in held] == ["Cl_Br", "Br_Cl"]
    assert [a.info.get("reaction") for a in seen] == ["Cl_Cl", "Br_Br", "Cl_Cl", None]  # isolated atom follows
    # any key matches; values compared as strings
    assert len(derive.derive(frames, {"nope": ["x"], "reaction": ["Br_Br"]}, "matching")) == 1


def test_derive_refuses_a_match_that_selects_nothing_and_names_the_values(tmp_path):
    with pytest.raises(derive.DeriveError, match=r"test.xyz: no frame matches .*Br_Cl.*Cl_Cl"):
        derive.derive(_frames(), {"reaction": ["Cl_I"]}, "others", where="test.xyz")
    only = [a for a in _frames() if a.info.get("reaction") == "Cl_Cl"]
    with pytest.raises(derive.DeriveError, match="leaves no configuration"):
        derive.derive(only, {"reaction": ["Cl_Cl"]}, "others")
    src = tmp_path / "test.xyz"
    write_atomic(src, _frames())
    derive.main(["--input", str(src), "--match", json.dumps({"reaction": ["Cl_Br"]}), "--keep", "matching",
                 "--output", str(tmp_path / "out.xyz")])
    assert [a.info["reaction"] for a in read_configs(tmp_path / "out.xyz")] == ["Cl_Br"]


def test_within_elements_keeps_structures_of_the_benchmarks_elements():
    frames = [Atoms("HCl", positions=[[0, 0, 0], [0, 0, 1.3]]), Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 2.4]]),
              Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])]
    kept = derive.within_elements(frames, _frames())  # H and Cl (the isolated H is ignored)
    assert [a.get_chemical_formula() for a in kept] == ["HCl", "H2"]
    with pytest.raises(derive.DeriveError, match=r"corpus.xyz: no structure made only of the elements \['Br'\]"):
        derive.within_elements(frames, [Atoms("Br")], where="corpus.xyz")


def test_a_derived_set_must_come_from_a_file_of_its_benchmark(config):
    config["benchmarks"]["sn2"]["derived"]["train_seen"]["file"] = "trian"
    with pytest.raises(ConfigError, match=r"benchmarks.sn2.derived.train_seen.file: 'trian' is not a training"):
        check(config)


def test_derived_sets_are_read_from_results_and_not_validated_as_benchmark_files(config):
    from mlipft import workflow as wf

    p = Paths("results/mini", "data/mini/mini")
    assert wf.set_file(config, p, "sn2", "train_seen") == "results/mini/derived/sn2/train_seen.xyz"
    assert wf.set_file(config, p, "sn2", "train") == "data/mini/mini/benchmarks/sn2/train.xyz"
    files = wf.validation_files(config, p, "sn2")
    assert not any("derived" in f or "seen" in f for role in files.values() for f in role)
    run = Run("sn2", "train_seen", 1.0, "omat_medium", "naive", "estimated", "base", 0)
    assert wf.finetune_inputs(config, p, run)["valid"] == "results/mini/derived/sn2/valid_seen.xyz"
    assert wf.evalset_file(config, p, "sn2", "test_heldout") == "results/mini/derived/sn2/test_heldout.xyz"
    inputs = wf.derive_inputs(config, p, "sn2", "test_heldout")
    assert inputs == {"data": "data/mini/mini/benchmarks/sn2/test.xyz"}
    assert wf.derive_args(config, "sn2", "test_heldout", inputs) == (
        """--match '{"reaction": ["Cl_Br", "Br_Cl"]}' --keep matching""")
    # the foundation-level test structures made of the benchmark's elements (Fig. 10)
    inputs = wf.derive_inputs(config, p, "sn2", "pretraining")
    assert inputs == {"data": "data/mini/mini/corpora/test/test.xyz",
                      "elements": "data/mini/mini/benchmarks/sn2/train.xyz"}
    assert wf.derive_args(config, "sn2", "pretraining", inputs) == (
        "--elements-of data/mini/mini/benchmarks/sn2/train.xyz --filter learnable")


# ---------------------------------------------------------------------------------------
# per-run files


def _errors_file(p: Paths, run: Run, evalset: str, force: float, energy: float, n: int = 2) -> str:
    """Per-structure errors of one run on one set: every force component off by ``force`` meV/Å,
    every energy by ``energy`` meV/atom."""
    return write_errors(p.errors(run, evalset), pd.DataFrame(
        {"evalset": evalset, "index": range(n), "n_atoms": 3, "energy_error": energy,
         "force_sq_sum": 9 * force ** 2, "force_abs_sum": 9 * force, "n_force_components": 9}))


def _run_meta(p: Paths, run: Run) -> tuple[str, str]:
    trainable = Path(p.run_file(run, "trainable"))
    trainable.parent.mkdir(parents=True, exist_ok=True)
    trainable.write_text(json.dumps({"trainable": 10, "total": 10, "fraction": 1.0, "heads": ["Default"]}))
    loss = Path(p.run_file(run, "loss_curves"))
    pd.DataFrame({"epoch": range(20), "head": "Default", "split": "valid",
                  "loss": [1.0 / (1 + e) ** 3 + 0.5 for e in range(20)]}).to_csv(loss, index=False)
    return str(trainable), str(loss)


def _spec(kind, axes, evalsets, entry, labels):
    base = {"benchmark": ["ice"], "trainset": ["train"], "foundation": ["omat_medium"], "strategy": list(labels),
            "e0s": ["estimated"], "fraction": ["1"], "variant": ["base"], "seed": ["0"]}
    return {"figure": "x", "kind": kind, "description": "a test figure", "entry": entry, "axes": {**base, **axes},
            "labels": labels, "evalsets": evalsets, "world": "mini", "scale": "smoke", "variant_labels": {},
            "reference_label": "reference", "derived": {}, "evalset_files": {e: e for e in evalsets}}


# ---------------------------------------------------------------------------------------
# phase_blocks (Fig. 19)

PHASES = ("Ih", "VIII")
LABELS = {"naive": "Naive", "lora": "LoRA"}


def test_phase_blocks_pairs_each_single_phase_run_with_its_phase_and_the_combined_run_with_all(tmp_path, roundtrip):
    p = Paths(tmp_path / "results")
    spec = _spec("phase_blocks", {"trainset": ["train_Ih", "train_VIII", "train"]}, ["test_Ih", "test_VIII"],
                 {"combined_trainset": "train"}, LABELS)
    inputs = {"errors": [], "trainable": [], "loss_curves": []}
    for k, strategy in enumerate(LABELS):
        for trainset in spec["axes"]["trainset"]:
            run = Run("ice", trainset, 1.0, "omat_medium", strategy, "estimated", "base", 0)
            for evalset in spec["evalsets"]:
                same = trainset == "train" or trainset[len("train_"):] == evalset[len("test_"):]
                # in-phase 10 (+1 per strategy), combined 20 (+1), cross-phase 500 (never plotted)
                force = (20.0 if trainset == "train" else 10.0 if same else 500.0) + k
                inputs["errors"].append(_errors_file(p, run, evalset, force, force / 10))
            t, loss = _run_meta(p, run)
            inputs["trainable"].append(t)
            inputs["loss_curves"].append(loss)
    tables = roundtrip(phase_blocks.collect(inputs, spec), tmp_path)
    bars = phase_blocks.bars(tables["errors"], spec, "force_rmse")
    assert list(bars.block) == ["single-phase"] * 4 + ["combined"] * 4
    assert list(bars.phase) == ["Ih", "Ih", "VIII", "VIII"] * 2
    assert list(bars.strategy) == ["naive", "lora"] * 4
    assert list(bars["mean"]) == pytest.approx([10, 11, 10, 11, 20, 21, 20, 21])
    energy = phase_blocks.bars(tables["errors"], spec, "energy_rmse")
    assert energy["mean"].iloc[0] == pytest.approx(1.0)
    out = [str(tmp_path / "f19.png"), str(tmp_path / "f19.pdf")]
    phase_blocks.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 10_000 and Path(out[1]).exists()


def test_phase_blocks_checks(config):
    fig = config["figures"]["fig19"]
    fig["combined_trainset"] = "train_all"
    with pytest.raises(ConfigError, match=r"figures.fig19.combined_trainset: 'train_all' is not in"):
        check(config)
    fig["combined_trainset"] = "train"
    fig["evalsets"] = ["test_Ih", "test_II"]
    with pytest.raises(ConfigError, match=r"fig19.evalsets: .*train_VI"):
        check(config)


# ---------------------------------------------------------------------------------------
# near_transfer (Fig. 7)


def _neb(p: Paths, run: Run, offsets: dict[str, float]) -> str:
    """A 3-image path per reaction: reference barrier 0.5 eV, the model's off by ``offsets``."""
    rows = []
    for reaction, off in offsets.items():
        for source, top in (("reference", 0.5), ("model", 0.5 + off)):
            for image, e in enumerate((0.0, top, 0.1)):
                rows.append({"reaction": reaction, "source": source, "image": image,
                             "reaction_coordinate": image / 2, "energy_ev": e, "converged": True})
    path = Path(p.run_file(run, "neb"))
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_near_transfer_splits_errors_and_barriers_by_the_held_out_match(tmp_path, roundtrip):
    p = Paths(tmp_path / "results")
    reference = tmp_path / "reference_neb.xyz"
    write_atomic(reference, [f for f in _frames() if "reaction" in f.info])
    labels = {"naive": "Naive", "lora": "LoRA"}
    match = {"reaction": ["Cl_Br", "Br_Cl"]}
    spec = _spec("near_transfer", {"benchmark": ["sn2"], "trainset": ["train_seen"]}, ["test_seen", "test_heldout"],
                 {"heldout_evalset": "test_heldout", "neb_reactions": ["Cl_Cl", "Br_Br", "Cl_Br", "Br_Cl"]}, labels)
    spec["derived"] = {"test_heldout": {"file": "test", "match": match, "keep": "matching"}}
    inputs = {"errors": [], "trainable": [], "loss_curves": [], "neb": [], "reference_neb": [str(reference)]}
    for k, strategy in enumerate(labels):
        run = Run("sn2", "train_seen", 1.0, "omat_medium", strategy, "estimated", "base", 0)
        inputs["errors"] += [_errors_file(p, run, "test_seen", 10.0 + k, 1.0),
                             _errors_file(p, run, "test_heldout", 50.0 + k, 5.0)]
        t, loss = _run_meta(p, run)
        inputs["trainable"].append(t)
        inputs["loss_curves"].append(loss)
        # seen barriers off by 0.01 and -0.03 eV, held-out ones by 0.2 and 0.1 eV (plus 0.1 eV for lora)
        inputs["neb"].append(_neb(p, run, {"Cl_Cl": 0.01, "Br_Br": -0.03, "Cl_Br": 0.2 + 0.1 * k,
                                           "Br_Cl": 0.1 + 0.1 * k, "F_F": 9.0}))
    tables = roundtrip(near_transfer.collect(inputs, spec), tmp_path)
    barrier = tables["neb_barriers"]
    assert set(barrier.reaction) == {"Cl_Cl", "Br_Br", "Cl_Br", "Br_Cl"}  # F_F is no figure reaction
    assert dict(zip(barrier.reaction, barrier.split))["Cl_Br"] == "held-out"
    table = near_transfer.bars(tables["errors"], barrier, "barrier_mae").set_index(["strategy", "split"])["mean"]
    assert table["naive", "seen"] == pytest.approx(20.0) and table["naive", "held-out"] == pytest.approx(150.0)
    assert table["lora", "held-out"] == pytest.approx(250.0)
    force = near_transfer.bars(tables["errors"], barrier, "force_rmse").set_index(["strategy", "split"])["mean"]
    assert force["lora", "held-out"] == pytest.approx(51.0) and force["naive", "seen"] == pytest.approx(10.0)
    out = [str(tmp_path / "f07.png"), str(tmp_path / "f07.pdf")]
    near_transfer.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 10_000


def test_near_transfer_checks(config):
    fig = config["figures"]["fig07"]
    fig["trainset"] = "train"
    with pytest.raises(ConfigError, match=r"figures.fig07.trainset: 'train' is not a derived set"):
        check(config)
    fig["trainset"] = "train_seen"
    fig["heldout_evalset"] = "test"
    with pytest.raises(ConfigError, match=r"fig07.heldout_evalset: 'test' is not one of"):
        check(config)


# ---------------------------------------------------------------------------------------
# preservation (Fig. 10)


def test_preservation_scores_both_heads_against_the_foundation(tmp_path, roundtrip):
    from mlipft.figures import preservation

    p = Paths(tmp_path / "results")
    labels = {"naive": "Naive", "replay": "Multihead replay"}
    spec = _spec("preservation", {"benchmark": ["sn2", "nacl"], "trainset": ["train"]},
                 ["pretraining", "pretraining_pt"], {}, labels)
    inputs = {"errors": [], "zeroshot": [], "trainable": [], "loss_curves": []}
    for bench in ("sn2", "nacl"):
        zs = Path(p.zeroshot(bench, "omat_medium", "pretraining"))
        zs.parent.mkdir(parents=True)
        # the foundation: 100 meV/Å, 10 meV/atom on both benchmarks' structures
        pd.DataFrame({"benchmark": bench, "foundation": "omat_medium", "evalset": "pretraining", "index": [0, 1],
                      "n_atoms": 3, "energy_error": 10.0, "force_sq_sum": 9 * 100.0 ** 2, "force_abs_sum": 900.0,
                      "n_force_components": 9}).to_csv(zs, index=False)
        inputs["zeroshot"].append(str(zs))
        for strategy in labels:
            run = Run(bench, "train", 1.0, "omat_medium", strategy, "estimated", "base", 0)
            # naive forgets (400), replay's target head 200, its replay head keeps 100
            inputs["errors"].append(_errors_file(p, run, "pretraining", 400.0 if strategy == "naive" else 200.0, 50.0))
            if strategy == "replay":
                inputs["errors"].append(_errors_file(p, run, "pretraining_pt", 100.0, 10.0))
            t, loss = _run_meta(p, run)
            inputs["trainable"].append(t)
            inputs["loss_curves"].append(loss)
    tables = roundtrip(preservation.collect(inputs, spec), tmp_path)
    rows, values, ratio = preservation.matrix(tables["errors"], spec, "force_rmse")
    assert [r for r, _ in rows] == ["zeroshot", "naive", "replay", "replay:pt_head"]
    assert list(values.columns) == ["sn2", "nacl"]
    assert values.loc["zeroshot", "sn2"] == pytest.approx(100.0)
    assert ratio.loc["naive", "nacl"] == pytest.approx(4.0) and ratio.loc["replay", "sn2"] == pytest.approx(2.0)
    assert ratio.loc["replay:pt_head", "sn2"] == pytest.approx(1.0)
    out = [str(tmp_path / "f10.png"), str(tmp_path / "f10.pdf")]
    preservation.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 10_000


def test_a_multihead_run_is_evaluated_through_the_evalsets_head(config):
    from mlipft import workflow as wf

    replay = Run("sn2", "train", 1.0, "omat_medium", "replay", "estimated", "base", 0)
    naive = Run("sn2", "train", 1.0, "omat_medium", "naive", "estimated", "base", 0)
    assert wf.eval_head(config, replay, "pretraining_pt") == "pt_head"
    assert wf.eval_head(config, replay, "pretraining") == "Default"
    assert wf.eval_head(config, naive, "pretraining_pt") == "Default"  # one head only
    p = Paths("results/mini", "data/mini/mini")
    # the unit bounds of a set drawn from the GFN1 corpus use the corpus's isolated atoms
    assert wf.evalset_isolated(config, p, "sn2", "pretraining") == "data/mini/mini/corpora/test/isolated_atoms.xyz"
    assert wf.evalset_isolated(config, p, "sn2", "test_heldout") == "data/mini/mini/benchmarks/sn2/isolated_atoms.xyz"
    # and its force bound is off, as for replay sets (the corpora's rattled structures reach 60-70 eV/A)
    files = wf.evalset_validation_files(config, p, "sn2", "pretraining")
    assert "--max-force inf" in wf.validation_args(config, "sn2", files, "pretraining")
    assert "--max-force" not in wf.validation_args(config, "sn2", wf.evalset_validation_files(config, p, "sn2", "test"),
                                                   "test")
