"""cuEquivariance: ``--enable_cueq True`` exactly when the run trains on CUDA with cuEquivariance
installed (mlipft.train.cueq_choice), and the run's log says whether it is on. No GPU needed: the
command line is built for device ``cuda`` without running it."""

from __future__ import annotations

import logging

import pytest

from mlipft import train

BOTH = set(train.CUEQ_MODULES)


def installed(*modules):
    return lambda name: name in modules


@pytest.mark.parametrize("device,args,requested,present,expected,why", [
    ("cuda", {}, None, BOTH, True, "CUDA with cuequivariance-torch"),
    ("cpu", {}, None, BOTH, False, "device cpu"),
    ("cuda", {}, None, {"cuequivariance_torch"}, False, "not installed: cuequivariance_ops_torch"),
    ("cuda", {}, None, set(), False, "not installed: cuequivariance_torch, cuequivariance_ops_torch"),
    ("cuda", {"lora": True, "lora_rank": 4}, None, BOTH, False, "LoRA"),
    ("cuda", {}, False, BOTH, False, "enable_cueq: false in the run spec"),
    ("cpu", {"enable_cueq": True}, None, set(), True, "set in the mace arguments"),
    ("cuda", {"enable_cueq": "False"}, None, BOTH, False, "set in the mace arguments"),
])
def test_cueq_choice(device, args, requested, present, expected, why):
    on, reason = train.cueq_choice(device, args, requested, installed=installed(*present))
    assert on is expected and why in reason


def test_the_modules_are_looked_up_by_import_name(monkeypatch):
    seen = []
    monkeypatch.setattr(train, "_importable", lambda name: seen.append(name) or True)
    assert train.cueq_choice("cuda", {}) == (True, "CUDA with cuequivariance-torch and its CUDA kernels")
    assert seen == ["cuequivariance_torch", "cuequivariance_ops_torch"]
    # the pip packages (envs/requirements-cuda*.txt) install these modules
    assert train.CUEQ_MODULES == ("cuequivariance_torch", "cuequivariance_ops_torch")


@pytest.fixture
def xyz(tmp_path):
    import ase.build
    import ase.io

    frames = [ase.build.molecule("CH3Cl") for _ in range(3)]
    path = tmp_path / "train.xyz"
    ase.io.write(path, frames, format="extxyz")
    return str(path)


def _spec(xyz, device, **strategy_args):
    """A run spec; with LoRA a fine-tune of a foundation (never opened: see the test)."""
    lora = "lora" in strategy_args
    return dict(strategy_name="lora" if lora else "scratch",
                strategy={"label": "x", "uses_foundation": lora, "multihead": False, "e0s": "isolated",
                          "mace_args": {"lr": 0.01, **strategy_args}},
                e0_mode="isolated", name="x", seed=0, train_file=xyz, valid_file=xyz, max_num_epochs=1,
                batch_size=2, device=device, default_dtype="float64",
                foundation_model=xyz.replace("train.xyz", "foundation.model") if lora else None,
                e0s_json={"modes": {"isolated": {"1": -1.0, "6": -2.0, "17": -3.0}}},
                common={"ema": True}, scratch_model={"num_channels": 8, "max_L": 1})


@pytest.mark.parametrize("device,strategy_args,present,flag,line", [
    ("cuda", {}, BOTH, True, "cuEquivariance: on (CUDA with cuequivariance-torch and its CUDA kernels)"),
    ("cuda", {}, set(), False, "cuEquivariance: off (not installed: cuequivariance_torch, cuequivariance_ops_torch"),
    ("cpu", {}, BOTH, False, "cuEquivariance: off (device cpu)"),
    ("cuda", {"lora": True, "lora_rank": 2, "lora_alpha": 1.0}, BOTH, False, "cuEquivariance: off (LoRA"),
])
def test_command_and_log(xyz, tmp_path, monkeypatch, caplog, device, strategy_args, present, flag, line):
    monkeypatch.setattr(train, "_importable", installed(*present))
    monkeypatch.setattr(train, "foundation_in_dtype", lambda path, dtype, work: path)  # no model to cast
    spec = _spec(xyz, device, **strategy_args)
    before = repr(spec)
    with caplog.at_level(logging.INFO, logger=train.log.name):
        cmd = train.prepare(spec, None, tmp_path / "work")
    assert ("--enable_cueq=True" in cmd) is flag, cmd
    assert not any(a.startswith("--enable_cueq") for a in cmd) or flag
    assert f"--device={device}" in cmd
    assert any(r.getMessage().startswith(line) for r in caplog.records), caplog.text
    assert repr(spec) == before  # the spec (and so the resume fingerprint) is left alone
