"""mlipft.lazy_imports: a deferred module runs on first use, and importing mace leaves dynamo unrun."""

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from mlipft import lazy_imports

SCRIPTS = str(Path(lazy_imports.__file__).resolve().parents[1])


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package ``lazyprobe`` whose submodule ``heavy`` counts its executions in ``lazyprobe.RUNS``."""
    pkg = tmp_path / "lazyprobe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("RUNS = []\n")
    (pkg / "heavy.py").write_text("import lazyprobe\nlazyprobe.RUNS.append(1)\nVALUE = 42\n")
    (pkg / "user.py").write_text("import lazyprobe.heavy as heavy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = lazy_imports._LazyFinder(("lazyprobe.heavy",))
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    yield
    for name in [n for n in sys.modules if n == "lazyprobe" or n.startswith("lazyprobe.")]:
        del sys.modules[name]


def test_a_deferred_module_runs_on_first_attribute_access_only(fake_package):
    import lazyprobe
    import lazyprobe.user

    assert lazyprobe.RUNS == []
    assert not lazy_imports.is_loaded("lazyprobe.heavy")
    assert lazyprobe.user.heavy.VALUE == 42  # the real module, once used
    assert lazyprobe.RUNS == [1]
    assert lazy_imports.is_loaded("lazyprobe.heavy")
    assert lazyprobe.user.heavy.VALUE == 42 and lazyprobe.RUNS == [1]  # and only once


def test_other_modules_are_imported_as_usual(fake_package):
    import lazyprobe.user

    assert lazy_imports.is_loaded("lazyprobe.user")
    assert type(sys.modules["lazyprobe"]) is types.ModuleType


def test_install_is_idempotent_and_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    before = sum(isinstance(f, lazy_imports._LazyFinder) for f in sys.meta_path)
    assert lazy_imports.install() and lazy_imports.install()
    assert sum(isinstance(f, lazy_imports._LazyFinder) for f in sys.meta_path) == max(before, 1)
    monkeypatch.setenv(lazy_imports.ENV_OFF, "1")
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, lazy_imports._LazyFinder)])
    assert not lazy_imports.install()
    assert not any(isinstance(f, lazy_imports._LazyFinder) for f in sys.meta_path)


def _probe(code: str, eager: bool = False) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SCRIPTS, os.environ.get("PYTHONPATH")]))}
    env.pop(lazy_imports.ENV_OFF, None)
    if eager:
        env[lazy_imports.ENV_OFF] = "1"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()[-3:]  # the probe's own lines (mace prints a notice on import)


def test_an_evaluation_job_imports_mace_without_running_dynamo():
    """What an evaluation job imports (mlipft, then mace's evaluation and calculator modules) leaves
    torch._dynamo unrun; a use of it still gets the real module; eager mode runs it at import."""
    code = """
        from mlipft import lazy_imports as L
        import mace.cli.eval_configs, mace.calculators
        loaded = L.is_loaded("torch._dynamo")
        import torch._dynamo
        print(loaded, torch._dynamo.config.cache_size_limit > 0, L.is_loaded("torch._dynamo"))
    """
    assert _probe(code) == ["False", "True", "True"]
    assert _probe(code, eager=True) == ["True", "True", "True"]
