"""A real one-epoch mace_run_train per strategy: what each one trains.

Each strategy runs through the command line the workflow's rules use (``python -m mlipft.train``,
mace in the wrapper's own interpreter); the library call (mace as a child process) is what
``tiny_foundation`` and the failure test use."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlipft import e0s, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def e0_file(tiny_data, tiny_foundation, tmp_path_factory):
    out = tmp_path_factory.mktemp("e0") / "e0s.json"
    from mlipft.io import write_json

    write_json(out, e0s.fit(tiny_data["train"], tiny_foundation, tiny_data["iso_target"]))
    return str(out)


@pytest.fixture(scope="module")
def trained(config, tiny_data, tiny_foundation, e0_file, tmp_path_factory):
    """Train every strategy of the registry for one epoch with ``python -m mlipft.train``;
    return {name: trainable.json + loss curves, model path and log}."""
    root = tmp_path_factory.mktemp("runs")
    scratch = dict(r_max=4.0, num_channels=8, max_L=1, num_interactions=2, correlation=2)
    results = {}
    for name, entry in config["strategies"].items():
        spec = dict(strategy_name=name, strategy=entry, e0_mode=entry.get("e0s") or "estimated", name=name,
                    seed=0, train_file=tiny_data["train"], valid_file=tiny_data["valid"], max_num_epochs=1,
                    batch_size=5, device="cpu", default_dtype="float64", foundation_model=tiny_foundation,
                    replay_file=tiny_data["corpus_train"], num_samples_pt=8,
                    common=config["training"]["common"], scratch_model=scratch)
        out = root / name
        paths = {"model": str(out / "model.model"), "loss_curves": str(out / "loss_curves.csv"),
                 "trainable": str(out / "trainable.json")}
        log = root / f"{name}.log"
        _cli(spec, e0_file, paths, log, check=True)
        results[name] = {**json.loads(Path(paths["trainable"]).read_text()),
                         "curves": pd.read_csv(paths["loss_curves"]), "model": paths["model"], "log": log}
    return results


def _cli(spec, e0_file, paths, log, check=False):
    """The finetune rule's shell command (stderr appended to the log)."""
    cmd = [sys.executable, "-m", "mlipft.train", "--spec", json.dumps(spec), "--model", paths["model"],
           "--threads", "1", "--log", str(log)]
    if e0_file:
        cmd += ["--e0s", e0_file]
    for key in ("loss_curves", "trainable"):
        if key in paths:
            cmd += [f"--{key.replace('_', '-')}", paths[key]]
    scripts = str(Path(train.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [scripts, os.environ.get("PYTHONPATH")]))}
    with open(log, "a") as stderr:
        return subprocess.run(cmd, stderr=stderr, env=env, check=check)


@pytest.fixture(scope="module")
def config():
    from mlipft.config import ROOT, load_world

    return load_world(ROOT / "config" / "config.yaml")


def test_every_strategy_produces_a_model(trained, config):
    assert set(trained) == set(config["strategies"])
    for name, info in trained.items():
        assert Path(info["model"]).stat().st_size > 0, name


def test_freeze_trains_fewer_than_naive(trained):
    naive = trained["naive"]["trainable"]
    assert trained["freeze5"]["trainable"] < naive
    assert trained["freeze6"]["trainable"] < trained["freeze5"]["trainable"]


def test_lora_trains_far_fewer(trained):
    assert trained["lora"]["trainable"] < 0.35 * trained["naive"]["trainable"]
    assert trained["replay_lora"]["trainable"] < 0.35 * trained["replay"]["trainable"]


def test_naive_and_scratch_train_everything(trained):
    assert trained["scratch"]["fraction"] == pytest.approx(1.0)
    assert trained["naive"]["fraction"] > 0.99


def test_multihead_models_carry_a_replay_head(trained):
    for name in ("replay", "pseudolabel", "replay_lora"):
        assert trained[name]["heads"] == ["pt_head", "Default"], name
    for name in ("scratch", "naive", "freeze5", "freeze6", "lora"):
        assert trained[name]["heads"] == ["Default"], name


def test_loss_curves_of_every_head(trained):
    curves = trained["replay"]["curves"]
    valid_heads = set(curves[curves.split == "valid"]["head"])
    assert {"Default", "pt_head"} <= valid_heads
    assert set(trained["naive"]["curves"][lambda c: c.split == "valid"]["head"]) == {"Default"}


def test_failed_training_leaves_no_model(config, tiny_data, tmp_path):
    spec = dict(strategy_name="naive", strategy=config["strategies"]["naive"], e0_mode="isolated", name="x",
                seed=0, train_file=tiny_data["train"], valid_file=tiny_data["valid"], max_num_epochs=1,
                batch_size=5, device="cpu", default_dtype="float64",
                foundation_model=str(tmp_path / "missing.model"),
                e0s_json={"modes": {"isolated": {"1": -1.0, "6": -2.0, "17": -3.0, "35": -4.0}}})
    # the foundation is opened (to match its dtype to the run's) before mace starts: a clear error
    with pytest.raises(FileNotFoundError, match="foundation model not found: .*missing.model"):
        train.run(spec, None, {"model": str(tmp_path / "m" / "model.model")}, log_file=str(tmp_path / "log"))
    assert not (tmp_path / "m" / "model.model").exists()


def test_log_holds_the_bare_command_and_mace_output_once(trained):
    """In-process mace: its output reaches the job's log, once, after the bare-equivalent command."""
    text = trained["naive"]["log"].read_text()
    commands = [line for line in text.splitlines() if line.startswith("$ ")]
    assert len(commands) == 1 and commands[0].split()[1].endswith("mace_run_train")
    assert text.count("===========VERIFYING SETTINGS===========") == 1
    assert text.index(commands[0]) < text.index("VERIFYING SETTINGS")
    assert "trained naive in" in text


def test_failed_cli_exits_nonzero_without_model(config, tiny_data, tmp_path):
    spec = dict(strategy_name="naive", strategy=config["strategies"]["naive"], e0_mode="isolated", name="x",
                seed=0, train_file=tiny_data["train"], valid_file=tiny_data["valid"], max_num_epochs=1,
                batch_size=5, device="cpu", default_dtype="float64",
                foundation_model=str(tmp_path / "missing.model"),
                e0s_json={"modes": {"isolated": {"1": -1.0, "6": -2.0, "17": -3.0, "35": -4.0}}})
    paths = {"model": str(tmp_path / "m" / "model.model"), "trainable": str(tmp_path / "m" / "trainable.json")}
    proc = _cli(spec, None, paths, tmp_path / "log")
    assert proc.returncode != 0
    assert not (tmp_path / "m" / "model.model").exists() and not (tmp_path / "m" / "trainable.json").exists()
    text = (tmp_path / "log").read_text()
    assert "Traceback" in text and "foundation model not found" in text


def test_in_process_mace_restores_the_caller(tmp_path):
    """A failing in-process call (bad flag: argparse exits 2) gives the status back and leaves
    cwd, argv, the standard streams and the root logger as they were."""
    root = logging.getLogger()
    before = (os.getcwd(), list(sys.argv), list(root.handlers), list(root.filters), root.level)
    with open(tmp_path / "log", "a") as handle:
        code = train.run_mace_in_process(["--no_such_flag"], handle, tmp_path)
    assert code == 2
    assert (os.getcwd(), list(sys.argv), list(root.handlers), list(root.filters), root.level) == before
    assert "mace_run_train: error" in (tmp_path / "log").read_text()


def test_pretraining_with_stage_two_keeps_the_stage_two_model(config, tiny_data, tmp_path):
    """The config's pretraining block (MSE, then Stage Two) reaches mace; the collected model is
    mace's final ``<name>_stagetwo.model``, not the stage-one ``<name>.model`` saved beside it."""
    import filecmp

    common = {**config["training"]["common"], **config["training"]["pretrain"], "start_stage_two": 1}
    entry = {"uses_foundation": False, "multihead": False,
             "mace_args": dict(r_max=4.0, num_channels=8, max_L=0, num_interactions=2, correlation=2)}
    spec = dict(strategy_name="pretrain_x", strategy=entry, e0_mode="isolated", name="x", seed=0,
                train_file=tiny_data["train"], valid_file=tiny_data["valid"], max_num_epochs=2, batch_size=5,
                device="cpu", default_dtype="float64", common=common,
                e0s_json={"modes": {"isolated": {"1": -1.0, "6": -2.0, "17": -3.0, "35": -4.0}}})
    work, model = tmp_path / "work", tmp_path / "out" / "model.model"
    train.run(spec, None, {"model": str(model)}, log_file=str(tmp_path / "log"), work_dir=str(work))
    log = (tmp_path / "log").read_text()
    assert "--loss=weighted" in log and "--stage_two" in log and "Stage Two" in log
    assert (work / "x.model").exists() and filecmp.cmp(model, work / "x_stagetwo.model", shallow=False)
    assert not filecmp.cmp(work / "x.model", work / "x_stagetwo.model", shallow=False)



@pytest.mark.parametrize("mode", ["cli", "library"])
def test_patience_stops_a_serial_run(config, tiny_data, tiny_foundation, e0_file, tmp_path, mode):
    """mace-torch 0.3.16 ignores --patience off a cluster (ACEsuit/mace#1384); with
    mlipft.mace_fixes a run stops when mace says so, in process (the rules' CLI) and as a child
    process (the library call). A learning rate of 1 with an EMA of 0.5 throws the weights about
    so that the validation loss soon stops setting records: mace logs "Stopping optimization"
    once and no epoch follows."""
    strategy = {**config["strategies"]["naive"]}
    strategy["mace_args"] = {**strategy["mace_args"], "lr": 1.0, "ema_decay": 0.5, "clip_grad": 100.0}
    spec = dict(strategy_name="naive", strategy=strategy, e0_mode="estimated", name="naive", seed=0,
                train_file=tiny_data["train"], valid_file=tiny_data["valid"], max_num_epochs=25, batch_size=5,
                device="cpu", default_dtype="float64", foundation_model=tiny_foundation,
                common={**config["training"]["common"], "patience": 2})
    paths = {"model": str(tmp_path / "model.model"), "loss_curves": str(tmp_path / "loss_curves.csv")}
    if mode == "cli":
        _cli(spec, e0_file, paths, tmp_path / "log", check=True)
    else:
        train.run(spec, e0_file, paths, log_file=str(tmp_path / "log"))
    curves = pd.read_csv(paths["loss_curves"])
    last = max(curves[curves.split == "valid"]["epoch"])
    text = (tmp_path / "log").read_text()
    assert Path(paths["model"]).exists()
    assert text.count("Stopping optimization after 2 epochs without improvement") == 1, text[-3000:]
    assert last < 24  # without the fix every epoch up to max_num_epochs runs, logging the stop each time
    assert f"Epoch {last + 1}:" not in text
