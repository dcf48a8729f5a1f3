"""mlipft: the importable logic behind the fine-tuning workflow.

Rules in ``rules/*.smk`` are thin wrappers that call ``python -m mlipft.<module>``;
every module here also runs without Snakemake and is unit-tested in ``tests/``.
"""

from . import lazy_imports as _lazy_imports

# Every job process starts by importing mlipft: defer what mace imports and no job uses
# (``torch._dynamo``: ~1 s of every evaluation job's start-up; mlipft.lazy_imports). Imports nothing.
_lazy_imports.install()
