"""Load ``torch._dynamo``, which mace imports and the workflow's jobs never use, on first use.

Every training and evaluation job is its own Python process, and importing mace costs a job
3-4 s of CPU before it does any work (``python -X importtime -c "import mace.cli.run_train"``).
About 1 s of that is ``torch._dynamo`` (1.17 s, ``benchmarks/import_time.py``), which ``mace.tools.compile`` imports at mace's top
level for ``torch.compile``; the workflow never compiles (mace's ``--compile`` stays off), and
nothing else on our jobs' paths touches it. (The other large imports cannot be deferred this way:
``scipy.signal`` via ``e3nn.io`` and ``matplotlib.pyplot`` via mace's plotting are both used by
``torchmetrics`` at its import, and mace subclasses ``torchmetrics.Metric`` at import.)

:func:`install` puts a finder in front of ``sys.meta_path`` that gives them the standard
library's :class:`importlib.util.LazyLoader`: the module object exists at once and runs its code
on the first attribute access (or a second ``import`` statement of it), so code that does use it
gets the real module, only later.
Nothing is imported by :func:`install` itself (Snakemake's parse imports :mod:`mlipft` and must
stay free of torch). ``MLIPFT_EAGER_IMPORTS=1`` in the environment switches it off.
``benchmarks/import_time.py`` measures the saving.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

#: The modules loaded on first use (see the module docstring for why it is safe to defer).
LAZY_MODULES: tuple[str, ...] = ("torch._dynamo",)

ENV_OFF = "MLIPFT_EAGER_IMPORTS"


class _LazyFinder(importlib.abc.MetaPathFinder):
    """Finds ``names`` as the file-system finder does, then wraps the loader in a LazyLoader."""

    def __init__(self, names: tuple[str, ...]):
        self.names = frozenset(names)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def install() -> bool:
    """Defer :data:`LAZY_MODULES` to their first use in this process; True when the finder is
    (now) active. A module already imported stays as it is. Idempotent."""
    if os.environ.get(ENV_OFF, "") not in ("", "0"):
        return False
    if any(isinstance(finder, _LazyFinder) for finder in sys.meta_path):
        return True
    sys.meta_path.insert(0, _LazyFinder(LAZY_MODULES))
    return True


def is_loaded(name: str) -> bool:
    """Whether ``name`` has been imported and its code has run (not a pending lazy module).

    Reads the module's type only, which does not trigger a lazy load."""
    module = sys.modules.get(name)
    return module is not None and type(module) is types.ModuleType
