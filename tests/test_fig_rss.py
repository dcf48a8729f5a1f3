"""Kind rss (the paper's Fig. 11 and Fig. 16: holes in the potential energy surface found by random
structure search): collect from synthetic per-run tables at real run paths (fractions by hand,
max over relax-rattle cycles, empty flags, the change from the foundation), plot in both layouts
(several training-data fractions: one heat map per pressure; one fraction: the pressures as
columns) and the checks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlipft import paths as mlipft_paths
from mlipft.config import conditions, grid
from mlipft.figures import rss as kind
from mlipft.paths import Paths, Run

LABELS = {"scratch": "Scratch", "naive": "Naive", "replay": "Multihead replay", "pseudolabel": "Pseudolabel replay"}
VARIANT_LABELS = {"base": "as registered", "replay_mptrj_random": "random MPtrj",
                  "replay_combined": "element-matched + random MPtrj"}
STRUCTURES, PRESSURES, CYCLES = ("s0", "s1", "s2"), (0.1, 50.0), (0, 1)
#: The foundation's holes: (structure, pressure, cycle, criterion) flagged. At 0.1 GPa s1 is
#: flagged in its second cycle only (max over cycles: flagged), at 50 GPa s0 in its first.
FOUNDATION_HITS = {("s1", 0.1, 1, "distance"), ("s0", 50.0, 0, "energy")}


def _table(hits=(), nan=(), diverged=()) -> pd.DataFrame:
    """A per-run RSS table: 3 structures x 2 pressures x 2 cycles; ``hits`` (structure, pressure,
    cycle, criterion) flagged, ``nan`` not evaluable (criterion ``*``: every one), ``diverged``
    (structure, pressure, cycle) a diverged relaxation."""
    rows = []
    for sid in STRUCTURES:
        for p in PRESSURES:
            for c in CYCLES:
                flags = {}
                for crit in kind.CRITERIA:
                    if (sid, p, c, crit) in nan or (sid, p, c, "*") in nan:
                        flags[f"flag_{crit}"] = np.nan
                    else:
                        flags[f"flag_{crit}"] = 1.0 if (sid, p, c, crit) in hits else 0.0
                values = [v for v in flags.values() if not math.isnan(v)]
                rows.append({"structure_id": sid, "composition": {"s0": "NaCl", "s1": "Na2Cl2", "s2": "NaCl3"}[sid],
                             "n_atoms": 8, "pressure_gpa": p, "cycle": c,
                             "status": "diverged" if (sid, p, c) in diverged else "converged", "message": "",
                             "steps": 40, "energy_ev": -3.0, "enthalpy_per_atom_ev": -0.4,
                             "volume_per_atom_angstrom3": 20.0, "volume_ratio": 1.0, "min_distance_angstrom": 2.4,
                             "min_distance_ratio": 0.9, "closest_pair": "Na-Cl", "reference_energy_ev": -3.1,
                             "energy_diff_ev_per_atom": 0.01, "force_rmse_ev_per_angstrom": 0.1,
                             "floor_enthalpy_per_atom_ev": -1.0, **flags,
                             "flagged": max(values) if values else np.nan, "source": "model"})
    return pd.DataFrame(rows)


def _hits(run: Run) -> tuple[set, set, set]:
    """The holes of a run: naive adds a collapsed cell (s0 at 0.1 GPa, first cycle) and a too-short
    distance (s1 at 0.1 GPa, both cycles) to the foundation's, and at 10 % of the data an energy
    hole at 50 GPa (s2, first cycle); its disagreement is not evaluable for s2 at 0.1 GPa and for
    nothing at 50 GPa, where s2's second cycle diverged. Multihead replay keeps the foundation's
    holes, seed 1 loses its 0.1 GPa one."""
    if run.strategy in ("naive", "scratch"):
        hits = FOUNDATION_HITS | {("s0", 0.1, 0, "cell"), ("s1", 0.1, 0, "distance")}
        if run.fraction == "0.1":
            hits |= {("s2", 50.0, 0, "energy")}
        nan = {("s2", 0.1, c, "disagreement") for c in CYCLES} | {(s, 50.0, c, "disagreement")
                                                                  for s in STRUCTURES for c in CYCLES}
        return hits, nan | {("s2", 50.0, 1, "*")}, {("s2", 50.0, 1)}
    hits = set(FOUNDATION_HITS)
    if run.seed == 1:
        hits.discard(("s1", 0.1, 1, "distance"))
    if run.variant == "replay_mptrj_random":
        hits |= {("s2", 0.1, 0, "energy")}
    return hits, set(), set()


def _config(**entry):
    fig = {"kind": "rss", "description": "Random structure search summary for fine-tuned NaCl models",
           "benchmark": "nacl", "strategies": ["naive", "replay"], "e0s": "estimated", "fractions": [0.1, 1.0],
           "seeds": [0, 1], **entry}
    return {"world": "mini", "scale": "smoke", "main_foundation": "omat_medium",
            "scales": {"smoke": {"rss": {}}},
            "benchmarks": {"nacl": {"test": "test", "rss": {"units": [1, 2]}}, "sn2": {"test": "test"}},
            "figures": {"x": fig}}


def _fig16_config():
    return _config(description="Replay-strategy comparison on NaCl PES holes",
                   strategies=["scratch", "naive", "pseudolabel"], fractions=[1.0], seeds=[0],
                   variants=["base", "replay_mptrj_random", "replay_combined"],
                   variant_labels={"base": "element-matched"})


def _spec(config):
    fig = config["figures"]["x"]
    axes = grid(config, "x")
    return {"figure": "x", "kind": "rss", "description": fig["description"], "entry": fig, "axes": axes,
            "labels": {s: LABELS[s] for s in LABELS if s in axes["strategy"]}, "world": "mini", "scale": "smoke",
            "variant_labels": {v: (fig.get("variant_labels") or {}).get(v) or VARIANT_LABELS[v] for v in axes["variant"]},
            "reference_label": "GFN2-xTB reference", "conditions": conditions(config, "x")}


def _inputs(tmp_path, config, runs, monkeypatch):
    p = Paths(tmp_path / "results")
    files = kind.inputs(config, "x", runs, p)
    assert files["rss"][0] == f"{p.run_dir(runs[0])}/rss.csv" and len(files["rss"]) == len(runs)
    assert files["foundation"] == [f"{p.results}/rss/nacl/foundation-omat_medium.csv"]
    assert kind.foundation_file(config, "nacl", "omat_medium", p) == files["foundation"][0]
    for run, path in zip(runs, files["rss"]):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        hits, nan, diverged = _hits(run)
        _table(hits, nan, diverged).to_csv(path, index=False)
    for run, path in zip(runs, files["loss_curves"]):
        curve = [1.0 - 0.04 * e for e in range(20)] if run.strategy == "naive" else [1 / (1 + e) ** 3 + 0.5 for e in range(20)]
        pd.DataFrame({"epoch": range(20), "head": "Default", "split": "valid", "loss": curve}).to_csv(path, index=False)
    Path(files["foundation"][0]).parent.mkdir(parents=True)
    _table(FOUNDATION_HITS).assign(source="foundation omat_medium").to_csv(files["foundation"][0], index=False)
    return files


def _fig11_runs():
    return [Run("nacl", "train", f, "omat_medium", s, "estimated", "base", seed)
            for s in ("naive", "replay") for f in ("0.1", "1") for seed in (0, 1)]


def _fig16_runs():
    runs = [Run("nacl", "train", "1", "omat_medium", s, "isolated" if s == "scratch" else "estimated", "base", 0)
            for s in ("scratch", "naive")]
    return runs + [Run("nacl", "train", "1", "omat_medium", "pseudolabel", "estimated", v, 0)
                   for v in ("base", "replay_mptrj_random", "replay_combined")]


def _row(frame, **keys):
    sel = frame
    for k, v in keys.items():
        sel = sel[sel[k].astype(str) == str(v)]
    assert len(sel) == 1, keys
    return sel.iloc[0]


def test_collect_by_hand(tmp_path, monkeypatch, roundtrip):
    config = _config()
    spec = _spec(config)
    tables = kind.collect(_inputs(tmp_path, config, _fig11_runs(), monkeypatch), spec)
    assert set(tables) == set(kind.TABLES)
    structures, fractions = tables["structures"], tables["fractions"]
    assert list(structures.columns[:9]) == list(mlipft_paths.RUN_KEYS) + ["role"]
    assert len(structures) == (8 + 1) * 3 * 2 and set(structures.n_cycles) == {2}
    found = structures[structures.role == "foundation"]
    assert found.strategy.isna().all() and set(found.foundation) == {"omat_medium"}
    # max over the cycles: s1 flagged by distance in its second cycle only
    s1 = _row(found, structure_id="s1", pressure_gpa=0.1)
    assert s1.flag_distance == 1 and s1.flagged == 1 and s1.flag_energy == 0
    # empty flags: s2 of naive at 0.1 GPa has no disagreement in any cycle; at 50 GPa its second
    # cycle diverged (every flag empty) while its first was judged: the max skips the empty one
    naive = structures[(structures.strategy == "naive") & (structures.fraction == "1") & (structures.seed == "0")]
    s2 = _row(naive, structure_id="s2", pressure_gpa=0.1)
    assert np.isnan(s2.flag_disagreement) and s2.flag_distance == 0 and s2.status == "converged"
    s2 = _row(naive, structure_id="s2", pressure_gpa=50.0)
    assert s2.status == "diverged" and s2.flag_energy == 0 and s2.flagged == 0
    naive10 = structures[(structures.strategy == "naive") & (structures.fraction == "0.1") & (structures.seed == "0")]
    assert _row(naive10, structure_id="s2", pressure_gpa=50.0).flag_energy == 1

    f = fractions
    assert len(f) == (8 + 1) * 2 and set(f.n_structures) == {3}
    base = _row(f[f.role == "foundation"], pressure_gpa=0.1)
    assert base.flagged == pytest.approx(1 / 3) and base.distance == pytest.approx(1 / 3) and base.energy == 0
    assert np.isnan(base.delta_flagged) and base.n_flagged == 1
    # naive, all the data, seed 0, 0.1 GPa: s0 (cell) and s1 (distance) flagged, s2 not: 2/3, +1/3
    one = _row(f, strategy="naive", fraction="1", seed="0", pressure_gpa=0.1)
    assert one.flagged == pytest.approx(2 / 3) and one.delta_flagged == pytest.approx(1 / 3)
    assert one.cell == pytest.approx(1 / 3) and one.distance == pytest.approx(1 / 3) and one.energy == 0
    assert one.disagreement == 0  # s2 not judged counts as not flagged, out of all 3 structures
    assert one.n_flagged == 2 and one.n_diverged == 0
    assert one.n_evaluated_disagreement == 2 and one.n_evaluated_distance == 3
    high = _row(f, strategy="naive", fraction="1", seed="0", pressure_gpa=50.0)
    assert np.isnan(high.disagreement) and high.n_evaluated_disagreement == 0  # none judged: no fraction
    assert high.flagged == pytest.approx(1 / 3) and high.delta_flagged == pytest.approx(0) and high.n_diverged == 1
    high10 = _row(f, strategy="naive", fraction="0.1", seed="0", pressure_gpa=50.0)
    assert high10.flagged == pytest.approx(2 / 3) and high10.delta_flagged == pytest.approx(1 / 3)
    replay = _row(f, strategy="replay", fraction="1", seed="1", pressure_gpa=0.1)
    assert replay.flagged == 0 and replay.delta_flagged == pytest.approx(-1 / 3)
    assert set(f[f.role == "model"].convergence.dropna()) == {"improving", "plateau"}
    assert f[f.role == "model"].n_structures.dtype.kind == "i"

    tables = roundtrip(tables, tmp_path)
    cells = kind.cells(tables["fractions"], spec)
    assert list(cells.drop_duplicates("row").sort_values("row").label) == [
        "foundation (before fine-tuning)", "Naive", "Multihead replay"]
    mean = _row(cells, label="Multihead replay", fraction="1", pressure_gpa=0.1)
    assert mean.flagged == pytest.approx(1 / 6) and mean.n_seeds == 2  # mean of 1/3 and 0
    assert mean.delta_flagged == pytest.approx(-1 / 6)
    assert _row(cells, role="foundation", pressure_gpa=50.0).fraction == ""


@pytest.mark.parametrize("layout", ["fig11", "fig16"])
def test_plot_writes_png_and_pdf(tmp_path, monkeypatch, roundtrip, layout):
    config = _config() if layout == "fig11" else _fig16_config()
    runs = _fig11_runs() if layout == "fig11" else _fig16_runs()
    spec = _spec(config)
    tables = roundtrip(kind.collect(_inputs(tmp_path, config, runs, monkeypatch), spec), tmp_path)
    outputs = [str(tmp_path / "fig.png"), str(tmp_path / "fig.pdf")]
    kind.plot(tables, spec, outputs)
    assert all(Path(o).stat().st_size > 10_000 for o in outputs)


def test_fig16_rows_are_strategies_and_variants(tmp_path, monkeypatch, roundtrip):
    config = _fig16_config()
    spec = _spec(config)
    tables = roundtrip(kind.collect(_inputs(tmp_path, config, _fig16_runs(), monkeypatch), spec), tmp_path)
    cells = kind.cells(tables["fractions"], spec)
    assert list(cells.drop_duplicates("row").sort_values("row").label) == [
        "foundation (before fine-tuning)", "Scratch", "Naive", "Pseudolabel replay (element-matched)",
        "Pseudolabel replay (random MPtrj)", "Pseudolabel replay (element-matched + random MPtrj)"]
    random = _row(cells, label="Pseudolabel replay (random MPtrj)", pressure_gpa=0.1)
    assert random.flagged == pytest.approx(2 / 3) and random.delta_flagged == pytest.approx(1 / 3)
    assert set(cells[cells.role == "model"].n_seeds) == {1}


def test_figure_checks():
    def check(config):
        return kind.check(config, "x", config["figures"]["x"], grid(config, "x"))

    assert check(_config()) is None
    assert check(_fig16_config()) is None
    config = _config(benchmark=["nacl", "sn2"])
    assert check(config).startswith(".benchmark: ['sn2']")
    config = _config()
    config["benchmarks"]["nacl"]["rss"] = {}
    assert check(config).startswith(".benchmark:")
    config = _config()
    del config["scales"]["smoke"]["rss"]
    message = check(config)
    assert message.startswith(".kind:") and "scales.smoke.rss" in message
