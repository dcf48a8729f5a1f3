"""mlipft.allocator: freed blocks stay in the heap, so a job that allocates and frees arrays of
100 kB-4 MB step after step (as a MACE step does) stops faulting the same memory in again."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
LOOP = f"""
import resource, sys
sys.path.insert(0, {str(SCRIPTS)!r})
import numpy as np
if sys.argv[1] == "tuned":
    from mlipft import allocator
    assert allocator.tune()
sizes = np.random.default_rng(0).integers(100_000, 4_000_000, size=50)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    arrays = [np.ones(int(s) // 8) for s in sizes]
    del arrays
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tuned_allocator_stops_the_page_faults():
    faults = {mode: int(subprocess.run([sys.executable, "-c", LOOP, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "tuned")}
    assert faults["tuned"] * 5 < faults["default"], faults
