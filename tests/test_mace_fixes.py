"""mlipft.mace_fixes: a fix is applied once, and refused loudly on code it was not written for."""

import importlib.util
import textwrap

import pytest

from mlipft import mace_fixes


def _module(tmp_path, body):
    path = tmp_path / "fake_train.py"
    path.write_text(textwrap.dedent(body))
    spec = importlib.util.spec_from_file_location("fake_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUGGY = """
    import torch

    def train(distributed, stop_after, max_num_epochs=10):
        device = "cpu"
        exit_now = torch.zeros(1, device=device) if distributed else None
        epoch = 0
        while epoch < max_num_epochs:
            if epoch == stop_after and exit_now is not None:
                exit_now.fill_(1)
            if distributed:
                pass
            if exit_now is not None:
                torch.distributed.broadcast(exit_now, src=0)
                if exit_now == 1:
                    break

            epoch += 1
        return epoch
"""


def test_the_fix_makes_a_serial_run_stop_and_is_applied_once(tmp_path, monkeypatch):
    module = _module(tmp_path, BUGGY)
    monkeypatch.setattr(mace_fixes, "_train_module", lambda: module)
    before = module.train
    assert module.train(False, 3) == 10  # the bug: a serial run ignores the stop signal
    assert mace_fixes.fix_serial_early_stopping() is True
    assert module.train is before and module.train(False, 3) == 3  # same object, fixed code
    assert mace_fixes.fix_serial_early_stopping() is False


def test_other_code_is_refused_with_the_reason(tmp_path, monkeypatch):
    module = _module(tmp_path, BUGGY.replace("if distributed else None", ""))
    monkeypatch.setattr(mace_fixes, "_train_module", lambda: module)
    with pytest.raises(mace_fixes.MaceFixError, match=r"ACEsuit/mace#1384.*PR #1502"):
        mace_fixes.fix_serial_early_stopping()


def test_the_installed_mace_is_the_code_the_fix_is_for():
    """The pinned mace-torch (0.3.16) holds the bug; the fix applies (or already did)."""
    mace_fixes.fix_serial_early_stopping()
    assert getattr(mace_fixes._train_module().train, mace_fixes._MARK)
