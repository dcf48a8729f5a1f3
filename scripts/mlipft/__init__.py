"""mlipft: the importable logic behind the fine-tuning workflow.

Rules in ``rules/*.smk`` are thin wrappers that call ``python -m mlipft.<module>``;
every module here also runs without Snakemake and is unit-tested in ``tests/``.
"""
