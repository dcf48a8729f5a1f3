"""MD stability (mlipft.analysis.stability): protocols, failure detectors, seeds, params, CLI.

The protocols run with cheap ASE calculators: Lennard-Jones argon (32 atoms, fcc) is stable, and
``Broken`` wraps it to fail in one way each (collapse, huge forces, NaN, an exception, energy
injection, a wrong virial under NPT). One CLI run uses a committed mini foundation model
(``data/mini/mini/foundations/mp0``) with the committed NaCl MD start.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from mlipft.analysis import stability as st
from mlipft.io import read_configs, write_atomic


ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = ROOT / "data" / "mini" / "mini" / "foundations" / "mp0" / "model.model"
NACL_START = ROOT / "data" / "mini" / "mini" / "benchmarks" / "nacl" / "md_start.xyz"
DETECTORS = st.Detectors(min_distance={"default": 2.5}, max_force=50.0, temperature_factor=5.0,
                         density_range=(0.5, 2.0))
COMMON = {"timestep_fs": 5.0, "friction_per_fs": 0.01, "detectors": DETECTORS, "check_every": 1}
PARAMS = {"timestep_fs": 0.5, "friction_per_fs": 0.01, "check_every": 5, "record_every": 5,
          "hold": {"temperature_K": 100, "steps": 10, "npt": True, "pressure_GPa": 0.0001, "barostat_tau_fs": 100},
          "ramp": {"start_K": 50, "end_K": 800, "steps": 10},
          "detectors": {"min_distance": {"default": 0.5, "H-H": 0.5, "O-H": 0.6}, "max_force": 50.0,
                        "temperature_factor": 5.0, "density_range": [0.5, 2.0]}}


def lj() -> LennardJones:
    return LennardJones(sigma=3.4, epsilon=0.0104, rc=8.5, smooth=True)


def argon():
    return bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)  # 32 atoms, nearest neighbours 3.72 A


class Broken(Calculator):
    """Lennard-Jones argon that goes wrong after ``after`` calculations (one per MD step, one for
    the start): ``flip`` (energy and forces negated: atoms collapse), ``huge`` (1000 eV/A on atom
    0), ``nan`` (NaN forces on atom 3), ``raise``, ``heat`` (anti-friction forces pumping energy
    in) or ``stress`` (1.6 GPa of spurious outward pressure)."""

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, mode: str, after: int = 0):
        super().__init__()
        self.base, self.mode, self.after, self.calls = lj(), mode, after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        self.base.calculate(self.atoms, ["energy", "forces", "stress"], all_changes)
        r = self.base.results
        e, f, s = float(r["energy"]), r["forces"].copy(), r["stress"].copy()
        if self.calls > self.after:
            if self.mode == "flip":
                e, f = -e, -f
            elif self.mode == "huge":
                f[0] += 1e3
            elif self.mode == "nan":
                f[3] = np.nan
            elif self.mode == "raise":
                raise RuntimeError("model blew up")
            elif self.mode == "heat":
                f += 0.05 / units.fs * self.atoms.get_masses()[:, None] * self.atoms.get_velocities()
            elif self.mode == "stress":
                s[:3] -= 0.01
        self.results = {"energy": e, "free_energy": e, "forces": f, "stress": s}


# ----------------------------------------------------------------------------- protocols
def test_stable_argon_survives_both_protocols():
    start = argon()
    before = start.positions.copy()
    nvt = st.hold(start, lj(), temperature_K=40, n_steps=100, rng=np.random.default_rng(0), record_every=50, **COMMON)
    npt = st.hold(start, lj(), temperature_K=40, n_steps=100, rng=np.random.default_rng(0), npt=True,
                  barostat_tau_fs=200, record_every=50, **{**COMMON, "check_every": 10})
    up = st.ramp(start, lj(), start_K=50, end_K=800, n_steps=200, rng=np.random.default_rng(0), record_every=50,
                 **{**COMMON, "check_every": 7})
    for result, ensemble in ((nvt, "NVT"), (npt, "NPT"), (up, "NVT")):
        assert not result.failed and result.detector == "" and result.detail == ""
        assert result.ensemble == ensemble
        assert result.steps_survived == result.target_steps and result.survived_fraction == 1.0
        assert result.failure_step is None and result.time_to_failure_ps is None
        assert np.isfinite(result.final_temperature_K)
    assert [f.info["step"] for f in nvt.frames] == [50, 100]
    assert [f.info["time_fs"] for f in nvt.frames] == [250.0, 500.0]
    assert len({round(f.get_volume(), 6) for f in nvt.frames}) == 1
    assert npt.frames[-1].get_volume() != pytest.approx(start.get_volume(), rel=1e-6)  # the cell moved
    assert np.allclose(npt.frames[-1].cell.cellpar()[3:], 90.0)  # hydrostatic: the shape is kept
    assert [f.info["target_temperature_K"] for f in up.frames] == pytest.approx([237.5, 425.0, 612.5, 800.0])
    assert up.frames[-1].info["temperature_K"] > 300  # the thermostat follows the ramp
    assert np.array_equal(start.positions, before) and start.calc is None and not start.get_momenta().any()
    assert set(st.StabilityResult.__dataclass_fields__) - {"frames"} <= set(st.COLUMNS)
    cluster = argon()[:13]
    cluster.pbc = False
    gas = st.hold(cluster, lj(), temperature_K=40, n_steps=20, rng=np.random.default_rng(0), npt=True, **COMMON)
    assert gas.ensemble == "NVT" and not gas.failed  # NPT needs a periodic start: NVT, as documented


@pytest.mark.parametrize("mode, after, protocol, detector, step, detail", [
    ("flip", 0, "hold", "min_distance", None, r"atoms \d+ \(Ar\) and \d+ \(Ar\) [\d.]+ A apart \(< 2.5 A\)"),
    ("huge", 10, "hold", "max_force", 10, r"atom 0 \(Ar\) \|F\| = .* eV/A \(> 50 eV/A\)"),
    ("nan", 30, "hold", "non_finite", 30, r"non-finite forces on 1 atoms \(first: atom 3 \(Ar\)\)"),
    ("raise", 30, "hold", "calculator_error", 30, r"RuntimeError: model blew up"),
    ("raise", 0, "hold", "calculator_error", 0, r"RuntimeError: model blew up"),
    ("heat", 0, "ramp", "temperature", None, r"T = [\d.]+ K > 5 x target [\d.]+ K"),
    ("stress", 0, "npt", "density", None, r"density [\d.]+ g/cm3 = 0\.\d+ x start, outside \[0.5, 2\]"),
])
def test_a_broken_model_is_a_recorded_failure(mode, after, protocol, detector, step, detail, tmp_path):
    # collapse would heat up first: the temperature detector is off to see min_distance fire
    detectors = st.Detectors(min_distance={"Ar-Ar": 2.5}, max_force=50.0 if mode != "flip" else None,
                             temperature_factor=None if mode == "flip" else 5.0, density_range=(0.5, 2.0))
    kw = {**COMMON, "detectors": detectors, "rng": np.random.default_rng(1), "record_every": 4}
    if protocol == "ramp":
        result = st.ramp(argon(), Broken(mode, after), start_K=50, end_K=800, n_steps=300, **kw)
    else:
        result = st.hold(argon(), Broken(mode, after), temperature_K=40, n_steps=300, npt=protocol == "npt",
                         barostat_tau_fs=200, **kw)
    assert result.failed and result.detector == detector, result
    assert pytest.approx(result.time_to_failure_ps) == result.failure_step * 5.0 / 1000
    if step is not None:
        assert result.failure_step == step
    assert result.steps_survived == max(result.failure_step - 1, 0) < 300
    assert result.survived_fraction == result.steps_survived / 300
    assert re.fullmatch(detail, result.detail), result.detail
    last = result.frames[-1]  # the failure's last state closes the trajectory
    assert last.info["failed"] and last.info["detector"] == detector and last.info["step"] == result.failure_step
    assert all(f.info["step"] % 4 == 0 for f in result.frames[:-1])
    write_atomic(tmp_path / "traj.extxyz", result.frames)  # a failure's state (NaN and all) can be written
    back = read_configs(tmp_path / "traj.extxyz")
    assert len(back) == len(result.frames) and back[-1].info["detector"] == detector


def test_the_start_transient_is_not_a_runaway():
    """A disordered start releases its excess energy as a burst of heat (here ~300 K against a
    20 K target) that the thermostat removes: with no grace the temperature detector calls that a
    runaway at once; with ``temperature_grace_fs`` the run survives, and a model that keeps
    pumping heat in still fails on temperature, after the grace."""
    start = argon()
    start.positions += np.random.default_rng(3).normal(0, 0.25, start.positions.shape)

    def run(calc, grace):
        det = st.Detectors(min_distance={"Ar-Ar": 2.0}, max_force=50.0, temperature_factor=5.0,
                           density_range=(0.5, 2.0), temperature_grace_fs=grace)
        return st.hold(start, calc, temperature_K=20, n_steps=300, rng=np.random.default_rng(0), record_every=10,
                       **{**COMMON, "detectors": det})

    eager = run(lj(), 0.0)
    assert eager.failed and eager.detector == "temperature" and eager.failure_step < 10
    patient = run(lj(), 250.0)
    assert not patient.failed
    assert max(f.info["temperature_K"] for f in patient.frames) > 5 * 20 > patient.final_temperature_K
    heated = run(Broken("heat", after=60), 250.0)  # pumping from step 60 (300 fs) on
    assert heated.failed and heated.detector == "temperature" and heated.failure_step * 5.0 >= 250.0


def test_seed_reproduces_and_replicas_differ():
    def run(replica):
        return st.hold(argon(), lj(), temperature_K=40, n_steps=40, rng=st.replica_rng(7, replica), record_every=20,
                       replica=replica, **COMMON)

    a, b, c = run(0), run(0), run(1)
    assert a.row() == b.row() and c.replica == 1
    assert all(np.array_equal(x.positions, y.positions) and np.array_equal(x.get_momenta(), y.get_momenta())
               for x, y in zip(a.frames, b.frames))
    assert not np.allclose(a.frames[-1].positions, c.frames[-1].positions)
    assert a.final_temperature_K != c.final_temperature_K
    # replica r's stream is the r-th child of SeedSequence(seed), whatever the number of replicas
    child = np.random.default_rng(np.random.SeedSequence(7).spawn(2)[1])
    assert np.array_equal(child.random(3), st.replica_rng(7, 1).random(3))


def test_our_errors_are_raised_before_the_dynamics():
    calc = Broken("raise", after=0)  # any calculation would fail: none may happen
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_steps"):
        st.hold(argon(), calc, temperature_K=40, n_steps=0, rng=rng, **COMMON)
    with pytest.raises(ValueError, match="temperature_K"):
        st.hold(argon(), calc, temperature_K=-1, n_steps=5, rng=rng, **COMMON)
    with pytest.raises(ValueError, match="end_K"):
        st.ramp(argon(), calc, start_K=50, end_K=float("nan"), n_steps=5, rng=rng, **COMMON)
    with pytest.raises(TypeError, match="rng"):
        st.hold(argon(), calc, temperature_K=40, n_steps=5, rng=0, **COMMON)
    squeezed = argon()
    squeezed.positions[1] = squeezed.positions[0] + [1.0, 0, 0]
    with pytest.raises(ValueError, match=r"start already violates detectors.min_distance: atoms 0 \(Ar\) and 1"):
        st.hold(squeezed, calc, temperature_K=40, n_steps=5, rng=rng, **COMMON)

    class NoStress(LennardJones):
        implemented_properties: ClassVar[list[str]] = ["energy", "forces"]

    with pytest.raises(ValueError, match="stress"):
        st.hold(argon(), NoStress(), temperature_K=40, n_steps=5, rng=rng, npt=True, **COMMON)
    assert calc.calls == 0


# ----------------------------------------------------------------------------- params
def _mutate(path: str, value):
    params = json.loads(json.dumps(PARAMS))
    *parents, last = path.split(".")
    block = params
    for key in parents:
        block = block[key]
    if value is KeyError:
        del block[last]
    else:
        block[last] = value
    return params


@pytest.mark.parametrize("path, value, message", [
    ("timestep_fs", KeyError, r"missing key timestep_fs"),
    ("timestep_fs", 0, r"timestep_fs: must be > 0"),
    ("friction_per_fs", "fast", r"friction_per_fs: a number"),
    ("check_every", 0, r"check_every: an integer >= 1"),
    ("record_every", 1.5, r"record_every: an integer >= 0"),
    ("replicas", 0, r"replicas: an integer >= 1"),
    ("extra", 1, r"unknown key extra"),
    ("hold", KeyError, r"missing key hold"),
    ("hold.steps", KeyError, r"missing key hold\.steps"),
    ("hold.steps", 2.5, r"hold\.steps: an integer >= 1"),
    ("hold.npt", "yes", r"hold\.npt: true or false"),
    ("hold.temperature", 100, r"unknown key hold\.temperature"),
    ("hold.barostat_tau_fs", -5, r"hold\.barostat_tau_fs: must be > 0"),
    ("ramp.end_K", None, r"ramp\.end_K: a number"),
    ("detectors", KeyError, r"missing key detectors"),
    ("detectors.max_force", KeyError, r"missing key detectors\.max_force"),
    ("detectors.max_force", -1, r"detectors\.max_force: must be > 0"),
    ("detectors.temperature_factor", 0.5, r"detectors\.temperature_factor: must be > 1"),
    ("detectors.temperature_grace_fs", -1, r"detectors\.temperature_grace_fs: a number of fs >= 0"),
    ("detectors.temperature_grace_fs", None, r"detectors\.temperature_grace_fs: a number of fs >= 0"),
    ("detectors.density_range", [2.0, 0.5], r"detectors\.density_range: needs lo < 1 < hi"),
    ("detectors.density_range", 0.5, r"detectors\.density_range: a list"),
    ("detectors.min_distance.Xx-H", 0.5, r"detectors\.min_distance\.Xx-H: not a pair of element symbols"),
    ("detectors.min_distance.H-O", 0.7, r"detectors\.min_distance\.H-O: the pair is given twice"),
    ("detectors.min_distance.default", 0, r"detectors\.min_distance\.default: must be > 0"),
])
def test_bad_params_name_the_key(path, value, message):
    with pytest.raises(ValueError, match=message):
        st.parse_params(_mutate(path, value))


def test_params_defaults_disabled_detectors_and_files(tmp_path):
    raw = _mutate("detectors.density_range", None)
    del raw["check_every"], raw["record_every"], raw["hold"]["npt"], raw["hold"]["pressure_GPa"]
    del raw["ramp"]
    params = st.parse_params(raw, ["hold"])
    assert (params.check_every, params.record_every) == (10, 0)
    assert (params.hold["npt"], params.hold["pressure_GPa"]) == (False, 1e-4)
    assert params.ramp is None and params.detectors.density_range is None
    with pytest.raises(ValueError, match="missing key ramp"):
        st.parse_params(raw, ["hold", "ramp"])
    with pytest.raises(ValueError, match="unknown protocol 'melt'"):
        st.parse_params(raw, ["melt"])
    import yaml

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PARAMS))
    (tmp_path / "p.json").write_text(json.dumps(PARAMS))
    assert st.load_params(str(tmp_path / "p.yaml")) == st.load_params(str(tmp_path / "p.json")) == PARAMS
    assert st.load_params(json.dumps(PARAMS)) == PARAMS
    with pytest.raises(ValueError, match="neither an existing file nor JSON"):
        st.load_params(str(tmp_path / "absent.json"))
    (tmp_path / "bad.yaml").write_text("hold: [1\n")
    with pytest.raises(ValueError, match="cannot read .*bad.yaml as YAML"):
        st.load_params(str(tmp_path / "bad.yaml"))


# ----------------------------------------------------------------------------- CLI
def _cli(tmp_path, *extra, params=PARAMS, model=FOUNDATION, start=NACL_START):
    st.main(["--model", str(model), "--start", str(start), "--params", json.dumps(params),
             "--output", str(tmp_path / "stability.csv"), *extra])


def test_cli_input_errors_are_clear(tmp_path):
    two = read_configs(NACL_START) * 2
    write_atomic(tmp_path / "two.xyz", two)
    with pytest.raises(SystemExit, match="has 2 frames: give --frame"):
        _cli(tmp_path, start=tmp_path / "two.xyz")
    with pytest.raises(SystemExit, match="--frame 5: .* has 2 frames"):
        _cli(tmp_path, "--frame", "5", start=tmp_path / "two.xyz")
    with pytest.raises(SystemExit, match="model file not found: .*absent.model"):
        _cli(tmp_path, model=tmp_path / "absent.model")
    with pytest.raises(SystemExit, match="--start: dataset file not found"):
        _cli(tmp_path, start=tmp_path / "absent.xyz")
    with pytest.raises(SystemExit, match=r"--params: .*missing key ramp\.steps"):
        _cli(tmp_path, params=_mutate("ramp.steps", KeyError))
    with pytest.raises(SystemExit, match="--replicas must be >= 1"):
        _cli(tmp_path, "--replicas", "0")
    with pytest.raises(SystemExit, match="--replicas 2 disagrees with the params' replicas 3"):
        _cli(tmp_path, "--replicas", "2", params={**PARAMS, "replicas": 3})
    assert not (tmp_path / "stability.csv").exists()


def test_cli_runs_a_mace_model(tmp_path):
    """The committed mini foundation on the NaCl start: 10 steps of NPT hold and of the ramp."""
    from mlipft.figures.md_stability import COLUMNS as FIGURE_COLUMNS

    two = read_configs(NACL_START) * 2  # --frame picks one
    write_atomic(tmp_path / "two.xyz", two)
    _cli(tmp_path, "--frame", "1", "--seed", "3", "--trajectory", str(tmp_path / "traj.extxyz"),
         start=tmp_path / "two.xyz", params={**PARAMS, "replicas": 1})  # as the workflow passes it
    table = pd.read_csv(tmp_path / "stability.csv")
    assert list(table.columns) == list(st.COLUMNS) and set(FIGURE_COLUMNS) <= set(table.columns)
    assert list(table.protocol) == ["hold", "ramp"] and list(table.ensemble) == ["NPT", "NVT"]
    assert list(table.replica) == [0, 0] and list(table.target_steps) == [10, 10]
    assert (table.model == str(FOUNDATION)).all() and (table.md_seed == 3).all() and (table.timestep_fs == 0.5).all()
    assert table.survived_fraction.between(0, 1).all()
    survived = table[~table.failed]
    assert survived.time_to_failure_ps.isna().all() and (survived.steps_survived == 10).all()
    frames = read_configs(tmp_path / "traj.extxyz")
    assert {(f.info["protocol"], f.info["replica"]) for f in frames} == {("hold", 0), ("ramp", 0)}
    assert all({"step", "time_fs", "temperature_K", "target_temperature_K"} <= set(f.info) for f in frames)
    assert len(frames[0]) == len(two[1])


def test_a_broken_mace_model_is_detected_through_the_cli(tmp_path):
    """A real MACE model broken on purpose (the committed mp0 foundation with its interaction
    weights scaled 50x: forces far beyond any physical value) run as the workflow runs a
    fine-tuned model: the failure is a recorded result with its detector, not a failed job."""
    import torch

    model = torch.load(FOUNDATION, weights_only=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("interactions"):
                param.mul_(50.0)
    torch.save(model, tmp_path / "broken.model")
    _cli(tmp_path, "--protocols", "hold", model=tmp_path / "broken.model",
         params={**PARAMS, "check_every": 1})
    table = pd.read_csv(tmp_path / "stability.csv")
    assert table.failed.all(), table.to_string()
    assert set(table.detector) <= {"max_force", "min_distance", "non_finite", "temperature", "calculator_error"}
    assert (table.steps_survived < table.target_steps).all()
    # the intact model survives the same protocol
    _cli(tmp_path, "--protocols", "hold", params={**PARAMS, "check_every": 1})
    assert not pd.read_csv(tmp_path / "stability.csv").failed.any()
