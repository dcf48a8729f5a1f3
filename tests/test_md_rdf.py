"""Model MD with replicas, the RDF parts behind the noise floors, figure conditions and the
reference MLIP's spec (issue 11: Fig. 6a/b, Fig. 20)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from mlipft import config as cfg
from mlipft import workflow as wf
from mlipft.analysis import md, rdf
from mlipft.io import read_configs, write_atomic
from test_analysis import _box, _mace

PROTOCOL = dict(temperature_K=300.0, timestep_fs=0.5, friction_per_fs=0.02)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("md") / "single.model"
    torch.save(_mace(None), path)
    return str(path)


def test_replicas_are_reproducible_independent_and_numbered(tiny_model):
    start = _box()
    kwargs = dict(n_steps=4, seed=5, record_every=2, equil_steps=2, replicas=2, default_dtype="float64", **PROTOCOL)
    a = md.model_md(tiny_model, start, **kwargs)
    b = md.model_md(tiny_model, start, **kwargs)
    assert [(f.info["replica"], f.info["step"]) for f in a] == [(0, 2), (0, 4), (1, 2), (1, 4)]
    assert [f.info["time_fs"] for f in a[:2]] == pytest.approx([1.0, 2.0])  # production time
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.positions, fb.positions)  # same seed, same bits
    assert not np.allclose(a[1].positions, a[3].positions)  # replicas draw their own noise
    # replica k alone (first_replica=k) is replica k of the whole: how the processes split them
    alone = md.model_md(tiny_model, start, **{**kwargs, "replicas": 1}, first_replica=1)
    np.testing.assert_array_equal(alone[-1].positions, a[-1].positions)
    np.testing.assert_array_equal(start.positions, _box().positions)  # the start is not modified


def test_trajectory_is_read_by_ase_and_mdanalysis(tiny_model, tmp_path):
    import MDAnalysis as mda

    frames = md.model_md(tiny_model, _box(), 4, seed=0, record_every=1, default_dtype="float64", **PROTOCOL)
    write_atomic(tmp_path / "md.extxyz", frames)
    back = read_configs(tmp_path / "md.extxyz")
    u = mda.Universe(str(tmp_path / "md.extxyz"), format="XYZ")
    assert len(u.trajectory) == len(back) == 4
    u.trajectory[2]
    np.testing.assert_allclose(u.atoms.positions, back[2].positions, atol=1e-4)
    assert list(u.atoms.names) == back[0].get_chemical_symbols()
    assert back[0].cell.lengths() == pytest.approx([6.0, 6.2, 6.4])  # the cell (MDAnalysis's XYZ has none): ASE's


def _frames(n_per_replica, replicas, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for r in range(replicas):
        for i in range(n_per_replica):
            a = _box(seed)
            a.positions += rng.normal(0, 0.2, a.positions.shape)
            a.info.update(replica=r, step=i + 1)
            out.append(a)
    return out


def test_parts_split_each_replica_in_halves():
    frames = _frames(5, 2)
    parts = rdf.split_parts(frames)
    assert sorted(parts) == ["all", "half1", "half2", "replica0", "replica1"]
    assert len(parts["all"]) == 10 and len(parts["half1"]) == len(parts["half2"]) == 4  # the odd frame left out
    assert [f.info["step"] for f in parts["half1"]] == [1, 2, 1, 2]
    assert [(f.info["replica"], f.info["step"]) for f in parts["half2"]] == [(0, 3), (0, 4), (1, 3), (1, 4)]
    with pytest.raises(ValueError, match="replica 1 has 1 frame"):
        rdf.split_parts(frames[:5] + frames[5:6])


def test_rdf_parts_csv_roundtrip_and_noise_floor(tmp_path):
    frames = _frames(6, 2)
    parts = rdf.rdf_parts(frames, ["Cl-O", "Na-O"], r_max=3.0, nbins=15)
    rdf.write_rdf_parts_csv(tmp_path / "rdf.csv", parts)
    back = rdf.read_rdf_parts(tmp_path / "rdf.csv")
    assert sorted(back) == sorted(parts)
    r, g = back["all"]["Cl-O"]
    np.testing.assert_allclose(g, parts["all"]["Cl-O"][1], atol=1e-7)
    assert len(r) == 15
    # the halves of one trajectory differ (noise), and the whole equals itself
    emd = rdf.rdf_emds(back["half1"], back["half2"])
    assert all(v > 0 for v in emd.values())
    assert rdf.rdf_emds(back["all"], back["all"]) == {"Cl-O": 0.0, "Na-O": 0.0}
    # an RDF CSV of the old format (no part column) is the part `all`
    rdf.write_rdf_csv(tmp_path / "old.csv", parts["all"])
    assert list(rdf.read_rdf_parts(tmp_path / "old.csv")) == ["all"]
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad\.csv: not an RDF CSV"):
        rdf.read_rdf_parts(tmp_path / "bad.csv")


def test_rdf_cli_parts_names_the_trajectory_on_a_bad_split(tmp_path):
    frames = _frames(1, 1)  # one frame: no halves
    for f in frames:
        f.info.update(rdf_r_max=3.0, rdf_nbins=10)
    write_atomic(tmp_path / "md.extxyz", frames)
    with pytest.raises(SystemExit, match=r"md\.extxyz: replica 0 has 1 frame"):
        rdf.main(["rdf", "--trajectory", str(tmp_path / "md.extxyz"), "--pairs", "Cl-O", "--parts",
                  "--output", str(tmp_path / "rdf.csv")])


# ------------------------------------------------------------------ conditions and the reference
def test_conditions_make_the_union_of_their_grids(config):
    runs = cfg.runs_for_figure(config, "fig20")
    n_strategies = len(config["strategies"])
    assert len(runs) == n_strategies * (3 + 1 + 1)  # 10 % x 3 seeds, 10 % x 10 epochs, 100 %
    assert {(r.fraction, r.variant, r.seed) for r in runs} == {
        ("0.1", "base", 0), ("0.1", "base", 1), ("0.1", "base", 2), ("0.1", "epochs_x10", 0), ("1", "base", 0)}
    conds = cfg.conditions(config, "fig20")
    assert [c["label"] for c in conds] == ["10 %", "10 %, 10x epochs", "100 %"]
    assert conds[1] == {"label": "10 %, 10x epochs", "strategy": list(config["strategies"]), "fraction": ["0.1"],
                        "variant": ["epochs_x10"], "seed": [0]}
    # fig06a/b are fig20's runs: nothing trained twice
    assert set(cfg.runs_for_figure(config, "fig06a")) | set(cfg.runs_for_figure(config, "fig06b")) <= set(runs)
    # a figure without conditions is one condition of its whole grid
    assert cfg.conditions(config, "sn2_test_errors") == [
        {"label": "", "strategy": list(config["strategies"]), "fraction": ["1"], "variant": ["base"], "seed": [0]}]
    # a condition may take some of the figure's strategies (fig16: replay sets on the multihead one)
    assert [(c["strategy"], c["variant"]) for c in cfg.conditions(config, "fig16")] == [
        (["scratch", "naive", "pseudolabel"], ["base"]), (["pseudolabel"], ["replay_mptrj_random", "replay_combined"])]
    # the epochs factor reaches the fine-tune
    x10 = next(r for r in runs if r.variant == "epochs_x10")
    assert wf.finetune_epochs(config, x10) == 10 * config["scales"][config["scale"]]["finetune"]["max_num_epochs"]


def test_condition_with_an_unknown_variant_is_named(config):
    config["figures"]["fig20"]["conditions"][1]["variants"] = ["epochs_x100"]
    with pytest.raises(cfg.ConfigError, match=r"figures\.fig20\.conditions\[1\]\.variants: unknown variant 'epochs_x100'"):
        cfg.check(config)


def test_reference_mlip_spec_trains_scratch_on_every_frame(config):
    p = wf.paths(config)
    files = wf.reference_files(config, p, "nacl")
    assert files["rdf"].endswith("benchmarks/nacl/rdf_reference_mlip.csv")
    assert files["model"].endswith("benchmarks/nacl/reference_mlip.model")
    train = [p.bench_file("nacl", f) for f in config["benchmarks"]["nacl"]["md"]["reference_trainsets"]]
    spec = json.loads(wf.reference_spec(config, "nacl", train, [p.bench_file("nacl", "valid")]))
    assert spec["strategy"]["uses_foundation"] is False and spec["e0_mode"] == "isolated"
    assert spec["train_file"] == train and len(train) == 3
    assert spec["max_num_epochs"] == config["scales"][config["scale"]]["reference"]["max_num_epochs"]
    assert spec["scratch_model"]["num_channels"] == config["foundations"][config["main_foundation"]]["model"]["num_channels"]
    # a benchmark without an md entry is named
    with pytest.raises(KeyError, match=r"benchmarks\.sn2\.md is not set"):
        wf.md_entry(config, "sn2", "fig20")
    # the committed mini world lists the reference in its manifest
    entries = wf.mini_world_files(config, p)
    assert entries[files["rdf"]][1] == "reference_rdf_nacl" and entries[files["model"]][1] == "reference_mlip_nacl"


def test_md_start_protocol_is_that_of_the_committed_start(root):
    start = read_configs(root / "data/mini/mini/benchmarks/nacl/md_start.xyz")
    assert len(start) == 1 and isinstance(start[0], Atoms)
    for key in ("md_temperature_K", "md_timestep_fs", "md_friction_per_fs", "rdf_r_max", "rdf_nbins"):
        assert key in start[0].info, key
