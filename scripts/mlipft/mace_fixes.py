"""Fixes of mace-torch 0.3.16 bugs that change what a run computes, applied where mace runs in
our interpreter (``mlipft.train.run_mace_in_process``), each a minimal, checked edit of mace's
own code that mirrors the upstream fix, and each refused loudly when mace's code is not the
code it was written for (another mace version: drop the fix, or port it).

- **Early stopping in serial runs** (ACEsuit/mace#1384; upstream fix PR #1502, unreleased in
  0.3.16). ``mace.tools.train.train`` keeps its stop signal ``exit_now`` as ``None`` unless the
  run is distributed, so a serial run that reaches ``--patience`` epochs without a better
  validation loss logs "Stopping optimization after N epochs without improvement" and trains on
  to ``--max_num_epochs``. The fix keeps ``exit_now`` a tensor in every run and broadcasts it
  only in distributed ones. With the fix a serial run stops as the log says; without it
  ``--patience`` is a no-op off a cluster, so the same config stopped runs under ``torchrun`` and
  not on a laptop.

:func:`apply` edits the code object of the function in place, so every reference to it (the
``mace.tools`` package attribute that ``run_train`` calls, the submodule's own name) runs the
fixed code. It is idempotent.
"""

from __future__ import annotations

import inspect
import sys

#: (what is replaced, what replaces it) in ``mace.tools.train.train``: PR #1502's change
EARLY_STOP_EDITS = (
    ("    exit_now = torch.zeros(1, device=device) if distributed else None\n",
     "    exit_now = torch.zeros(1, device=device)\n"),
    ("        if exit_now is not None:\n            torch.distributed.broadcast(exit_now, src=0)\n",
     "        if exit_now is not None:\n            if distributed:\n"
     "                torch.distributed.broadcast(exit_now, src=0)\n"),
)
_MARK = "_mlipft_fixed"


class MaceFixError(RuntimeError):
    """mace's code is not the code a fix was written for."""


def _train_module():
    import mace.tools  # noqa: F401  (imports the submodule)

    return sys.modules["mace.tools.train"]


def fix_serial_early_stopping() -> bool:
    """Make ``--patience`` stop a serial run (see the module docstring). Returns True when the
    code was edited now, False when it already was; raises :class:`MaceFixError` when mace's
    ``train`` is not the 0.3.16 code the edit is for."""
    module = _train_module()
    fn = module.train
    if getattr(fn, _MARK, False):
        return False
    lines, first = inspect.getsourcelines(fn)
    source = "".join(lines)
    for old, _new in EARLY_STOP_EDITS:
        if source.count(old) != 1:
            import mace

            raise MaceFixError(
                f"mace-torch {getattr(mace, '__version__', '?')}: mace/tools/train.py's train() does not hold "
                f"the line(s) {old.strip()!r} of 0.3.16's serial early-stopping bug (ACEsuit/mace#1384); "
                "mlipft.mace_fixes.fix_serial_early_stopping is written for 0.3.16: drop it if this mace "
                "has the upstream fix (PR #1502), or port it")
    for old, new in EARLY_STOP_EDITS:
        source = source.replace(old, new)
    namespace: dict = {}
    # blank lines first: tracebacks name mace's own file and line numbers (the edit adds one line)
    code = compile("\n" * (first - 1) + source, inspect.getsourcefile(fn) or "<mace.tools.train>", "exec")
    exec(code, module.__dict__, namespace)  # noqa: S102  (mace's own function, two lines edited)
    fn.__code__ = namespace["train"].__code__
    setattr(fn, _MARK, True)
    return True


def apply() -> list[str]:
    """Every fix of this module; returns the names of those applied now."""
    return ["serial early stopping (ACEsuit/mace#1384)"] if fix_serial_early_stopping() else []


def main(argv: list[str] | None = None) -> None:
    """``mace_run_train`` with the fixes (``python -m mlipft.mace_fixes <mace_run_train args>``):
    what :func:`mlipft.train.run` runs as a child process."""
    apply()
    sys.argv = ["mace_run_train", *(sys.argv[1:] if argv is None else argv)]
    from mace.cli.run_train import main as mace_main

    mace_main()


if __name__ == "__main__":
    main()
