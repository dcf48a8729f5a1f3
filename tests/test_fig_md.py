"""Kinds md_rdfs (the paper's Fig. 6a/b and 20: RDFs of model MD against the reference, and their
earth mover's distances against noise floors) and md_stability (time survived by model MD): their
tables from synthetic per-run files at real run paths, their plots and checks.

The RDFs are Gaussian peaks on a common grid: shifting a peak by dr moves the EMD by dr (up to a
fraction of a bin), so every EMD, noise floor and ``resolved`` flag below is known beforehand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlipft import figures
from mlipft.config import conditions, grid
from mlipft.figures import md_rdfs, md_stability
from mlipft.paths import Paths, Run

R = np.linspace(0.0125, 5.9875, 240)  # bin centres, 0.025 Å bins up to 6 Å
BIN = 0.025
#: A well-sampled Gaussian (sigma 6 bins) moved by dr has an EMD of dr to float precision, so the
#: tables are checked far inside the bin width.
TOL = 1e-4
PEAKS = {"Cl-O": 3.2, "Na-O": 2.4}
#: Shift (Å) of every model peak from the reference's, per strategy; conditions add their own.
SHIFT = {"naive": 0.30, "multihead": 0.025}
COND_SHIFT = {"10 % data": 0.0, "100 % data": 0.1, "100 % data, 10x epochs": 0.2}
REF_HALF = 0.01   # reference halves at -/+ 0.01 Å: its floor 0.02 Å
RUN_HALF = 0.02   # each run's halves at -/+ 0.02 Å: its floor 0.04 Å
REPLICA = 0.05    # replicas at -/+ 0.05 Å around the run's peak
LABELS = {"naive": "Naive fine-tuning", "multihead": "Multihead replay"}


@pytest.fixture(autouse=True)
def run_files(monkeypatch):
    """The per-run files of the two kinds (until paths.RUN_FILES registers them)."""
    import mlipft.paths

    monkeypatch.setitem(mlipft.paths.RUN_FILES, "rdf", "rdf.csv")
    monkeypatch.setitem(mlipft.paths.RUN_FILES, "stability", "stability.csv")


def gauss(mu, sigma=0.15):
    return 3.0 * np.exp(-0.5 * ((R - mu) / sigma) ** 2)


def rdf_frame(shift: float, half: float, replicas: int = 2, r=R) -> pd.DataFrame:
    """An RDF file of every pair: ``all`` shifted by ``shift``, halves at shift -/+ half, replicas
    at shift -/+ REPLICA."""
    rows = []
    parts = {"all": shift, "half1": shift - half, "half2": shift + half}
    parts.update({f"replica{i}": shift + (REPLICA if i % 2 else -REPLICA) for i in range(replicas)})
    for part, s in parts.items():
        for pair, peak in PEAKS.items():
            g = 3.0 * np.exp(-0.5 * ((r - peak - s) / 0.15) ** 2)
            rows.append(pd.DataFrame({"part": part, "pair": pair, "r_angstrom": np.round(r, 6), "g_r": g}))
    return pd.concat(rows, ignore_index=True)


def _axes(**over):
    base = {"benchmark": ["nacl"], "trainset": ["train"], "foundation": ["mpa"], "strategy": ["naive", "multihead"],
            "e0s": ["estimated"], "fraction": ["0.1", "1"], "variant": ["base"], "seed": [0, 1]}
    return {**base, **over}


#: Fig. 20's layout: the third condition's variant is not on the figure's own variants axis.
ENTRY = {"rdf_pairs": ["Cl-O", "Na-O"], "emd_panels": True,
         "conditions": [{"label": "10 % data", "fractions": [0.1]},
                        {"label": "100 % data", "fractions": [1.0]},
                        {"label": "100 % data, 10x epochs", "fractions": [1.0], "variants": ["long"]}]}


def _config(entry=None, md=None, kind="md_rdfs"):
    fig = {"kind": kind, "description": "Aqueous NaCl: RDFs of model MD against the reference", "benchmark": "nacl",
           "strategies": ["naive", "multihead"], "e0s": "estimated", "fractions": [0.1, 1.0], "seeds": [0, 1]}
    if kind == "md_rdfs":
        fig.update(ENTRY)
    fig.update(entry or {})
    return {"world": "mini", "scale": "smoke", "main_foundation": "mpa",
            "benchmarks": {"nacl": {"md": {"start": "md_start", "pairs": ["Cl-O", "Na-O"],
                                           "reference_rdf": "rdf_reference.csv"} if md is None else md},
                           "sn2": {}},
            "variants": {"long": {"description": "10x epochs", "label": "10x epochs"}},
            "figures": {"x": fig}}


def _spec(entry=None):
    """What mlipft.figures.spec gives the kind (its conditions from mlipft.config.conditions)."""
    config = _config(entry)
    return {"figure": "x", "kind": "md_rdfs", "description": config["figures"]["x"]["description"],
            "entry": config["figures"]["x"], "axes": grid(config, "x"), "labels": LABELS, "world": "mini",
            "scale": "smoke", "variant_labels": {"base": "as registered"}, "reference_label": "GFN2-xTB MD",
            "conditions": conditions(config, "x")}


def _write(path, frame):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return str(path)


def _loss(p, run, improving=False):
    curve = [1.0 - 0.04 * e for e in range(20)] if improving else [1.0 / (1 + e) ** 3 + 0.5 for e in range(20)]
    return _write(p.run_file(run, "loss_curves"), pd.DataFrame({"epoch": range(20), "head": "Default",
                                                               "split": "valid", "loss": curve}))


def _runs():
    """Every run of the grid: (strategy, fraction, variant, seed); (0.1, long) is in no condition."""
    return [Run("nacl", "train", f, "mpa", s, "estimated", v, seed)
            for s in ("naive", "multihead") for f in ("0.1", "1") for v in ("base", "long") for seed in (0, 1)]


def _cond(run):
    return {("0.1", "base"): "10 % data", ("1", "base"): "100 % data", ("1", "long"): "100 % data, 10x epochs"}.get(
        (run.fraction, run.variant))


def _inputs(tmp_path):
    p = Paths(tmp_path / "results", tmp_path / "data")
    ref = _write(p.bench_file("nacl", "rdf_reference.csv"), rdf_frame(0.0, REF_HALF, replicas=0))
    inputs = {"rdf": [], "reference": [ref], "loss_curves": []}
    for run in _runs():
        cond = _cond(run)
        shift = SHIFT[run.strategy] + (COND_SHIFT[cond] if cond and run.strategy == "naive" else 0.0) + 0.01 * run.seed
        inputs["rdf"].append(_write(p.run_file(run, "rdf"), rdf_frame(shift, RUN_HALF)))
        inputs["loss_curves"].append(_loss(p, run, improving=run.strategy == "multihead" and run.seed == 1))
    return inputs


def test_emd_of_a_shifted_peak_is_the_shift():
    from mlipft.analysis.rdf import earth_movers_distance

    for dr in (0.0, 0.01, 0.1, 0.333):
        assert earth_movers_distance(R, gauss(3.0), gauss(3.0 + dr)) == pytest.approx(dr, abs=BIN / 2)


def test_conditions_first_match():
    entry = {"conditions": [{"label": "small", "fractions": [0.1]}, {"label": "seed 1", "seeds": [1]},
                            {"label": "long", "variants": ["long"]}, {"label": "all"}]}
    conds = md_rdfs.conditions(_spec(entry))
    assert conds[0] == {"label": "small", "fraction": ["0.1"], "variant": ["base"], "seed": [0, 1]}
    assert conds[3]["fraction"] == ["0.1", "1"] and conds[2]["variant"] == ["long"]
    run = Run("nacl", "train", 0.1, "mpa", "naive", "estimated", "base", 1)
    assert md_rdfs.condition_of(run, conds) == "small"  # first match, though "seed 1" also contains it
    assert md_rdfs.condition_of({"fraction": "1.0", "variant": "base", "seed": "1"}, conds) == "seed 1"
    assert md_rdfs.condition_of({"fraction": 1, "variant": "long", "seed": 0}, conds) == "long"
    assert md_rdfs.condition_of({"fraction": 1, "variant": "base", "seed": 0}, conds) == "all"
    assert md_rdfs.condition_of({"fraction": 1, "variant": "base", "seed": 0}, conds[:3]) is None
    assert md_rdfs.condition_of({"fraction": 0.5, "variant": "base", "seed": 0}, conds) is None


def test_collect_emd_floors_and_resolved(tmp_path, roundtrip):
    spec = _spec()
    inputs = _inputs(tmp_path)
    tables = roundtrip(md_rdfs.collect(inputs, spec), tmp_path)
    assert set(tables) == set(md_rdfs.TABLES)
    emd, rdfs = tables["emd"], tables["rdfs"]
    # 2 strategies x 3 conditions x 2 seeds x 2 pairs; the (0.1, long) runs belong to no condition
    assert len(emd) == 24 and not ((emd.fraction == 0.1) & (emd.variant == "long")).any()
    for row in emd.itertuples():
        run = Run(row.benchmark, row.trainset, row.fraction, row.foundation, row.strategy, row.e0s, row.variant,
                  row.seed)
        assert row.condition == _cond(run)
        shift = SHIFT[row.strategy] + (COND_SHIFT[row.condition] if row.strategy == "naive" else 0.0) + 0.01 * row.seed
        assert row.emd_angstrom == pytest.approx(shift, abs=TOL)
        assert row.noise_floor_angstrom == pytest.approx(2 * RUN_HALF, abs=TOL)
        assert row.reference_floor_angstrom == pytest.approx(2 * REF_HALF, abs=TOL)
        assert row.floor_angstrom == pytest.approx(max(row.noise_floor_angstrom, row.reference_floor_angstrom))
        assert row.replica_emd_min == pytest.approx(abs(shift - REPLICA), abs=TOL)
        assert row.replica_emd_max == pytest.approx(shift + REPLICA, abs=TOL)
        assert row.n_replicas == 2
        # naive is 0.3 Å or more off (resolved); multihead 0.025-0.035 Å: above the reference floor (0.02 Å) but
        # under its own (0.04 Å), so not resolved
        assert bool(row.resolved) == (row.strategy == "naive")
    assert {"converged", "convergence"} <= set(emd.columns)
    assert set(emd[emd.convergence == "improving"].strategy) == {"multihead"}

    # the RDF table: part `all` of every run, and the reference once
    assert set(rdfs.source) == {"model", "reference"}
    ref = rdfs[rdfs.strategy == "reference"]
    assert len(ref) == 2 * len(R) and ref.condition.isna().all()
    model = rdfs[rdfs.source == "model"]
    assert len(model) == 12 * 2 * len(R) and set(model.condition) == set(COND_SHIFT)
    peak = model[(model.strategy == "naive") & (model.condition == "100 % data") & (model.seed == 0)
                 & (model.pair == "Cl-O")]
    assert peak.r_angstrom[peak.g_r.idxmax()] == pytest.approx(3.2 + 0.4, abs=BIN)

    # the panels start half an ångström before the first peak's onset (g = 0 below: no information)
    lo, hi = md_rdfs.window(ref[ref.pair == "Cl-O"])
    assert lo == 2.0 and hi == pytest.approx(R[-1] + 0.05, abs=1e-4)

    summary = md_rdfs.summary(emd, spec)
    row = summary[(summary.hue == "Naive fine-tuning") & (summary.condition == "10 % data") & (summary.pair == "Cl-O")]
    assert len(row) == 1 and row.emd_mean.iloc[0] == pytest.approx(0.305, abs=TOL)
    assert row.emd_lo.iloc[0] == pytest.approx(0.25, abs=TOL) and row.emd_hi.iloc[0] == pytest.approx(0.36, abs=TOL)
    assert summary[summary.hue == "Multihead replay"].resolved.eq(False).all()

    for emd_panels in (True, False):
        out = [str(tmp_path / f"md_rdfs_{emd_panels}.png"), str(tmp_path / f"md_rdfs_{emd_panels}.pdf")]
        md_rdfs.plot(tables, _spec({"emd_panels": emd_panels}), out)
        assert Path(out[0]).stat().st_size > 30_000 and Path(out[1]).stat().st_size > 5_000


def test_resolved_needs_the_emd_above_both_floors():
    """``resolved``: the model's EMD above the larger of the run's and the reference's noise floor."""
    ref = rdf_frame(0.0, 0.01, replicas=0)           # reference floor 0.02 Å
    for shift, half, resolved in ((0.03, 0.02, False),   # under the run's floor (0.04), over the reference's
                                  (0.03, 0.005, True),   # over both (0.01, 0.02)
                                  (0.015, 0.005, False)):  # over the run's floor (0.01), under the reference's
        row = md_rdfs.emd_rows(rdf_frame(shift, half, replicas=0), ref, "Cl-O", "run.csv", "ref.csv")
        assert row["emd_angstrom"] == pytest.approx(shift, abs=TOL)
        assert row["floor_angstrom"] == pytest.approx(max(2 * half, 0.02), abs=TOL)
        assert row["resolved"] is resolved
        assert np.isnan(row["replica_emd_min"]) and row["n_replicas"] == 0
    # without halves there is no floor: NaN floors, resolved when the EMD is above zero
    bare = rdf_frame(0.1, 0.0, replicas=0)
    bare = bare[bare.part == "all"]
    row = md_rdfs.emd_rows(bare, ref[ref.part == "all"], "Na-O", "run.csv", "ref.csv")
    assert np.isnan(row["noise_floor_angstrom"]) and np.isnan(row["reference_floor_angstrom"]) and row["resolved"]


def test_one_pair_one_seed_plot(tmp_path, roundtrip):
    """Fig. 6a/b: one pair (Cl-O), one seed, two conditions: no shading, EMD panels below."""
    spec = _spec({"rdf_pairs": ["Cl-O"], "conditions": ENTRY["conditions"][:2], "seeds": [0], "emd_panels": True})
    inputs = _inputs(tmp_path)
    keep = [i for i, f in enumerate(inputs["rdf"]) if "/seed0/" in f]
    inputs = {**inputs, "rdf": [inputs["rdf"][i] for i in keep], "loss_curves": [inputs["loss_curves"][i] for i in keep]}
    tables = roundtrip(md_rdfs.collect(inputs, spec), tmp_path)
    assert len(tables["emd"]) == 2 * 2 and set(tables["emd"].pair) == {"Cl-O"}
    assert set(tables["rdfs"].pair) == {"Cl-O"}
    out = [str(tmp_path / "fig6.png"), str(tmp_path / "fig6.pdf")]
    md_rdfs.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 20_000


def test_different_r_grids_are_an_error_naming_both_files(tmp_path):
    p = Paths(tmp_path / "results", tmp_path / "data")
    ref = _write(p.bench_file("nacl", "rdf_reference.csv"), rdf_frame(0.0, REF_HALF, replicas=0))
    run = Run("nacl", "train", 0.1, "mpa", "naive", "estimated", "base", 0)
    coarse = np.linspace(0.025, 5.975, 120)
    path = _write(p.run_file(run, "rdf"), rdf_frame(0.1, RUN_HALF, r=coarse))
    with pytest.raises(ValueError, match="same r grid") as err:
        md_rdfs.collect({"rdf": [path], "reference": [ref]}, _spec())
    assert path in str(err.value) and ref in str(err.value)
    # a pair the run lacks is named too
    with pytest.raises(ValueError, match="Br-O"):
        md_rdfs.collect({"rdf": [path], "reference": [ref]}, _spec({"rdf_pairs": ["Br-O"]}))


def _check(module, config):
    return module.check(config, "x", config["figures"]["x"], grid(config, "x"))


def test_check_md_rdfs():
    assert _check(md_rdfs, _config()) is None
    # a condition may take a fraction or variant off the figure's own axes (Fig. 20's 10x epochs)
    assert _check(md_rdfs, _config({"conditions": [{"label": "a", "fractions": [0.5], "variants": ["long"]}]})) is None
    assert _check(md_rdfs, _config({"conditions": []})).startswith(".conditions: ")
    assert _check(md_rdfs, _config({"conditions": [{"label": "a"}, {"label": "a"}]})).startswith(".conditions: ")
    assert _check(md_rdfs, _config({"conditions": [{"fractions": [0.1]}]})).startswith(".conditions: ")
    assert _check(md_rdfs, _config({"conditions": [{"label": "a", "seeds": []}]})).startswith(".conditions[0].seeds: ")
    assert _check(md_rdfs, _config({"rdf_pairs": []})).startswith(".rdf_pairs: ")
    assert _check(md_rdfs, _config({"rdf_pairs": ["ClO"]})).startswith(".rdf_pairs: ")
    assert _check(md_rdfs, _config({"rdf_pairs": ["Cl-O-H"]})).startswith(".rdf_pairs: ")
    assert _check(md_rdfs, _config({"rdf_pairs": ["Cl-O", "Cl-O"]})).startswith(".rdf_pairs: ")
    assert "md.pairs" in _check(md_rdfs, _config({"rdf_pairs": ["O-O"]}))  # the benchmark's MD computes Cl-O, Na-O
    assert _check(md_rdfs, _config({"rdf_pairs": ["O-O"]}, md={"start": "s", "reference_rdf": "r.csv"})) is None
    assert _check(md_rdfs, _config({"benchmark": ["nacl", "sn2"]})).startswith(".benchmark: ")
    assert "reference_rdf" in _check(md_rdfs, _config(md={"start": "md_start"}))
    assert "reference_rdf" in _check(md_rdfs, _config({"benchmark": "sn2"}))


def test_inputs_are_the_conditions_runs_and_the_reference():
    config = _config()
    files = md_rdfs.inputs(config, "x", _runs(), Paths("results", "data/mini"))
    assert set(files) == {"rdf", "reference", "loss_curves"}
    assert files["reference"] == ["data/mini/benchmarks/nacl/rdf_reference.csv"]
    assert len(files["rdf"]) == 12 and all(f.endswith("/rdf.csv") for f in files["rdf"])
    assert files["rdf"] == [f for f in files["rdf"] if "/v-long/" not in f or "/f1/" in f]
    assert not any("/f0.1/" in f and "/v-long/" in f for f in files["rdf"])


def test_is_a_kind():
    assert figures.kind("md_rdfs") is md_rdfs and figures.kind("md_stability") is md_stability
    assert md_rdfs.TABLES == ("rdfs", "emd") and md_stability.TABLES == ("stability",)


# ---- md_stability ----

DT_PS = 0.0005  # 0.5 fs
TARGET = 2000   # steps: 1 ps
#: (strategy, protocol) -> steps survived by replicas 0, 1, 2 (TARGET: survived), the same for each seed
SURVIVAL = {("naive", "nvt_300K"): (TARGET, 400, TARGET), ("naive", "nvt_600K"): (100, 300, 200),
            ("multihead", "nvt_300K"): (TARGET, TARGET, TARGET), ("multihead", "nvt_600K"): (TARGET, 1000, TARGET)}
DETECTORS = {400: "max_force", 100: "temperature", 300: "min_distance", 200: "temperature", 1000: "min_distance"}


def _stability_inputs(tmp_path, benchmarks=("nacl",)):
    p = Paths(tmp_path / "results")
    inputs = {"stability": [], "loss_curves": []}
    for bench in benchmarks:
        for strategy in ("naive", "multihead"):
            for seed in (0, 1):
                run = Run(bench, "train", 1.0, "mpa", strategy, "estimated", "base", seed)
                rows = []
                for protocol in ("nvt_300K", "nvt_600K"):
                    for replica, steps in enumerate(SURVIVAL[(strategy, protocol)]):
                        failed = steps < TARGET
                        # as mlipft.analysis.stability writes it: a failure seen at step s leaves s - 1 survived
                        rows.append({"model": "model.model", "protocol": protocol, "replica": replica,
                                     "ensemble": "nvt", "md_seed": seed, "timestep_fs": DT_PS * 1000,
                                     "target_steps": TARGET, "steps_survived": steps,
                                     "failure_step": steps + 1 if failed else None,
                                     "time_to_failure_ps": (steps + 1) * DT_PS if failed else None,
                                     "survived_fraction": steps / TARGET, "failed": failed,
                                     "detector": DETECTORS[steps] if failed else None,
                                     "detail": "max |F| 52 eV/Å" if failed else None,
                                     "final_temperature_K": 900.0 if failed else 305.0})
                inputs["stability"].append(_write(p.run_file(run, "stability"), pd.DataFrame(rows)))
                inputs["loss_curves"].append(_loss(p, run, improving=strategy == "naive"))
    return inputs


def _stability_spec(benchmarks=("nacl",)):
    return {"figure": "s", "kind": "md_stability", "description": "MD stability of the fine-tuned models",
            "entry": {}, "axes": _axes(benchmark=list(benchmarks), fraction=["1"], variant=["base"]),
            "labels": LABELS, "world": "mini", "scale": "smoke", "variant_labels": {"base": "as registered"},
            "reference_label": "reference"}


def test_stability_table_and_summary(tmp_path, roundtrip):
    spec = _stability_spec()
    tables = roundtrip(md_stability.collect(_stability_inputs(tmp_path), spec), tmp_path)
    frame = tables["stability"]
    assert len(frame) == 2 * 2 * 2 * 3 and {"time_survived_ps", "target_time_ps", "convergence"} <= set(frame.columns)
    assert frame.target_time_ps.to_numpy() == pytest.approx(np.full(len(frame), TARGET * DT_PS))
    steps = frame.steps_survived.to_numpy()
    assert frame.time_survived_ps.to_numpy() == pytest.approx(np.where(frame.failed, steps + 1, steps) * DT_PS)
    summary = md_stability.summary(frame, spec)
    assert len(summary) == 4 and set(summary.unit) == {"ps"}
    row = summary[(summary.hue == "Naive fine-tuning") & (summary.protocol == "nvt_300K")].iloc[0]
    assert row.survived_mean == pytest.approx((2 * TARGET + 401) / 3 * DT_PS)
    assert (row.n_replicas, row.n_failed, row.n_seeds, row.detectors) == (6, 2, 2, "max_force")
    row = summary[(summary.hue == "Naive fine-tuning") & (summary.protocol == "nvt_600K")].iloc[0]
    assert row.n_failed == 6 and row.detectors == "min_distance;temperature" and row.survived_max == pytest.approx(0.1505)
    row = summary[(summary.hue == "Multihead replay") & (summary.protocol == "nvt_300K")].iloc[0]
    assert row.n_failed == 0 and row.survived_mean == pytest.approx(1.0) and row.target == pytest.approx(1.0)
    out = [str(tmp_path / "stability.png"), str(tmp_path / "stability.pdf")]
    md_stability.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 20_000


def test_stability_two_benchmarks_and_a_protocol_subset(tmp_path, roundtrip):
    spec = _stability_spec(("nacl", "ice"))
    spec["entry"] = {"stability_protocols": ["nvt_600K"]}
    tables = roundtrip(md_stability.collect(_stability_inputs(tmp_path, ("nacl", "ice")), spec), tmp_path)
    assert set(tables["stability"].protocol) == {"nvt_600K"} and set(tables["stability"].benchmark) == {"nacl", "ice"}
    out = [str(tmp_path / "stability2.png"), str(tmp_path / "stability2.pdf")]
    md_stability.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 20_000
    spec["entry"] = {"stability_protocols": ["nve"]}
    with pytest.raises(ValueError, match="nve"):
        md_stability.collect(_stability_inputs(tmp_path, ("nacl",)), spec)


def test_stability_time_step_from_a_column_or_unknown():
    frame = pd.DataFrame({"protocol": ["a", "a", "b"], "steps_survived": [10, 20, 5],
                          "time_to_failure_ps": [None, None, None]})
    assert md_stability.timesteps_ps(frame.assign(timestep_fs=[1.0, 1.0, 2.0])).tolist() == [0.001, 0.001, 0.002]
    assert md_stability.timesteps_ps(frame).isna().all()  # no failure, no column: steps, not ps
    failed = frame.assign(time_to_failure_ps=[0.011, None, None], failure_step=[11, None, None])
    assert md_stability.timesteps_ps(failed).tolist()[:2] == pytest.approx([0.001, 0.001])


def test_check_md_stability():
    assert _check(md_stability, _config(kind="md_stability")) is None
    assert _check(md_stability, _config({"benchmark": "sn2"}, kind="md_stability")).startswith(".benchmark: ")
    assert _check(md_stability, _config({"stability_protocols": ["a", "a"]}, kind="md_stability")).startswith(
        ".stability_protocols: ")
