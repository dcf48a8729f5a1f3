"""A killed fine-tune resumes from mace's checkpoint only when its work directory holds the very
same run (mlipft.train.prepare with resume), and the resumed run completes every epoch once."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mlipft import train


def _spec(train_file: str, epochs: int = 3, **common) -> dict:
    return dict(strategy_name="scratch",
                strategy=dict(uses_foundation=False, multihead=False,
                              mace_args=dict(r_max=4.0, num_channels=8, max_L=0, num_interactions=2,
                                             correlation=2, lr=0.01, ema_decay=0.99)),
                e0_mode="isolated", e0s_json={"modes": {"isolated": {"1": -10.0, "6": -40.0, "17": -100.0}}},
                name="run", seed=0, train_file=train_file, valid_file=train_file, max_num_epochs=epochs,
                batch_size=2, device="cpu", default_dtype="float64",
                common=dict(loss="huber", huber_delta=0.01, **common))


@pytest.fixture()
def xyz(tmp_path):
    from ase import Atoms

    from mlipft.io import write_atomic

    atoms = [Atoms("CH3Cl", positions=[[0, 0, 0], [1.1, 0, 0], [-0.4, 1, 0], [-0.4, -0.5, 0.9], [0, 0, 1.8 + i / 10]])
             for i in range(4)]
    path = tmp_path / "train.xyz"
    write_atomic(path, atoms)
    return str(path)


def _fake_progress(work: Path, epochs: int) -> None:
    """What a killed mace leaves: checkpoints and a log reaching ``epochs``."""
    import torch

    (work / "checkpoints").mkdir()
    torch.save({"model": {}, "optimizer": {}, "lr_scheduler": {}}, work / "checkpoints" / "run_run-0_epoch-2.pt")
    (work / "results").mkdir()
    lines = [{"mode": "opt", "epoch": e, "loss": 1.0} for e in range(epochs)]
    lines += [{"mode": "eval", "epoch": e, "head": "Default", "loss": 1.0} for e in range(epochs)]
    (work / "results" / "run_run-0_train.txt").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_a_truncated_checkpoint_is_removed_not_resumed(tmp_path, xyz):
    """A kill during mace's checkpoint write leaves a truncated file, whose load mace's
    --restart_latest would swallow (and then start again from epoch 0, logging every epoch
    twice): the latest readable checkpoint is resumed instead, or the run starts afresh."""
    work = tmp_path / "mace"
    spec = _spec(xyz)
    train.prepare(spec, None, work, resume=True)
    _fake_progress(work, epochs=6)
    good = work / "checkpoints" / "run_run-0_epoch-2.pt"
    cut = work / "checkpoints" / "run_run-0_epoch-4.pt"
    cut.write_bytes(good.read_bytes()[:40])  # the first bytes of a zip archive, then the kill
    cmd = train.prepare(spec, None, work, resume=True)
    assert cmd[-1] == "--restart_latest" and not cut.exists() and good.exists()
    log = [json.loads(line) for line in (work / "results" / "run_run-0_train.txt").read_text().splitlines()]
    assert sorted({e["epoch"] for e in log}) == [0, 1]  # from the readable epoch-2 checkpoint
    good.write_bytes(b"")  # the only checkpoint unreadable: a fresh start, nothing kept
    cmd = train.prepare(spec, None, work, resume=True)
    assert "--restart_latest" not in cmd and not (work / "results").exists() and not good.exists()


def test_resume_only_the_same_run(tmp_path, xyz):
    work = tmp_path / "mace"
    spec = _spec(xyz)
    cmd = train.prepare(spec, None, work, resume=True)  # nothing to resume: a fresh start
    assert "--restart_latest" not in cmd and (work / train.FINGERPRINT).is_file()
    _fake_progress(work, epochs=4)
    cmd = train.prepare(spec, None, work, resume=True)
    assert cmd[-1] == "--restart_latest"
    log = [json.loads(line) for line in (work / "results" / "run_run-0_train.txt").read_text().splitlines()]
    assert sorted({e["epoch"] for e in log}) == [0, 1]  # epoch 2 (the checkpoint's) and later are retrained
    # a changed run (another learning rate) never continues the old one's checkpoint
    changed = _spec(xyz, lr_factor=0.5)
    cmd = train.prepare(changed, None, work, resume=True)
    assert "--restart_latest" not in cmd and not (work / "checkpoints").exists()
    # without resume every attempt starts afresh
    _fake_progress(work, epochs=4)
    assert "--restart_latest" not in train.prepare(changed, None, work, resume=False)
    assert not (work / "checkpoints").exists()


@pytest.mark.slow
def test_a_killed_fine_tune_resumes_and_completes(tmp_path, tiny_data):
    """mlipft.train killed after its first checkpoints, then run again with --resume: it
    continues (--restart_latest in its log), ends at the same final epoch with every epoch in the
    loss curves once, and writes every output; run once more, the finished run is not resumed."""
    epochs = 60
    out = tmp_path / "run"
    out.mkdir()
    from mlipft import e0s

    spec = _spec(tiny_data["train"], epochs)
    spec["e0s_json"] = {"modes": {"isolated": {str(z): e for z, e in
                                               e0s.isolated_from_file(tiny_data["iso_target"]).items()}}}
    cmd = [sys.executable, "-m", "mlipft.train", "--spec", json.dumps(spec),
           "--model", str(out / "model.model"), "--loss-curves", str(out / "loss.csv"),
           "--trainable", str(out / "trainable.json"), "--resume", "--log", str(out / "log")]
    env = {**os.environ, "PYTHONPATH": str(Path(train.__file__).parents[1])}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoints = out / "mace" / "checkpoints"
    deadline = time.time() + 300
    def latest():
        return max(checkpoints.glob("*_epoch-*.pt"), key=train.checkpoint_epoch, default=None)

    while time.time() < deadline and proc.poll() is None:
        last = latest()
        # a file that has just appeared may still be being written: wait until it reads
        if last is not None and train.checkpoint_epoch(last) >= 3 and train.checkpoint_error(last) is None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished (or failed) before it could be killed"
    proc.kill()
    proc.wait()
    assert not (out / "model.model").exists()
    last = latest()  # mace may have begun the next checkpoint (deleting this one) before the kill
    resumable = last is not None and train.checkpoint_error(last) is None
    subprocess.run(cmd, check=True, timeout=600, env=env, capture_output=True)
    assert ("--restart_latest" in (out / "log").read_text()) == resumable
    curves = pd.read_csv(out / "loss.csv")
    valid = curves[(curves.split == "valid") & (curves["head"] == "Default")]
    assert list(valid.epoch) == list(range(epochs))
    assert sorted(curves[curves.split == "train"].epoch) == list(range(epochs))
    assert (out / "model.model").stat().st_size > 0 and json.loads((out / "trainable.json").read_text())["trainable"] > 0
    # a finished run is never resumed: run again (a forced re-run), it starts from epoch 0
    assert not (out / "mace" / train.FINGERPRINT).exists()
    subprocess.run(cmd, check=True, timeout=600, env=env, capture_output=True)
    last = [line for line in (out / "log").read_text().splitlines() if line.startswith("$ ")][-1]
    assert "--restart_latest" not in last
    assert list(pd.read_csv(out / "loss.csv").query("split == 'valid'").epoch) == list(range(epochs))
