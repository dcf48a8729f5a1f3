"""glibc malloc settings for PyTorch training and inference on CPU.

A MACE step on periodic cells of 30-50 atoms allocates and frees tensors of a few hundred
kilobytes to megabytes. glibc serves those above its mmap threshold (128 KiB at start, raised
dynamically only up to the largest block freed) with fresh ``mmap`` pages and gives memory back
to the system when the heap top exceeds the trim threshold, so every step faults the same
memory in again: one NaCl fine-tune of 2 epochs took 3.2 million minor page faults and 4.6 s of
system time beside 33 s of user time (``benchmarks/profile_finetune.py``). With the thresholds
below, freed blocks stay in the heap for the next step: 0.55 million faults and 0.9 s.

:func:`tune` sets them with ``mallopt`` in the running process (the ``MALLOC_*_`` environment
variables would have to be set before the interpreter starts); it is a no-op on other C
libraries. Memory that a job has once used stays with it until it exits (at most
``trim_threshold`` more than it needs), which the workflow's jobs can afford.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MIB = 1 << 20


def tune(mmap_threshold: int = 32 * MIB, trim_threshold: int = 1024 * MIB, top_pad: int = 256 * MIB) -> bool:
    """Keep freed blocks up to ``mmap_threshold`` in the heap, and up to ``trim_threshold`` of
    free memory at its top (growing it ``top_pad`` at a time). True when glibc took them."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = all(mallopt(param, value) == 1 for param, value in
               ((M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, trim_threshold), (M_TOP_PAD, top_pad)))
    if not done:
        log.info("malloc thresholds not set (mallopt refused them)")
    return done
