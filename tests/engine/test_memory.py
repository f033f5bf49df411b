"""The worker's malloc settings (worker/memory.py): freed memory goes back to the system."""

from __future__ import annotations

import subprocess
import sys

import pytest

from worker.memory import _glibc

# Eight threads allocate buffers of changing sizes (as voice preparation and S3Gen windows do)
# while keeping small objects alive, which pins each arena's top; then the buffers are freed.
SCRIPT = """
import sys, threading
import numpy as np
from worker.memory import limit_arenas, release_free_memory

def churn(seed, kept_small):
    buffers = []
    for i in range(4000):
        buffers.append(np.ones(2_000 + (i * 7919 + seed) % 60_000))
        kept_small.append(np.ones(50))
        if len(buffers) > 40:
            buffers.pop(0)
        if len(kept_small) > 2000:
            kept_small.pop(0)

limit_arenas()
kept = [[] for _ in range(8)]
threads = [threading.Thread(target=churn, args=(s, kept[s])) for s in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys.argv[1] == "trim":
    release_free_memory()
print(int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20)
"""


def rss_mb(step: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, step], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")
def test_freed_memory_is_handed_back_to_the_system() -> None:
    kept, trimmed = rss_mb("keep"), rss_mb("trim")
    assert trimmed < 0.6 * kept, f"{kept:.0f} MB without a trim, {trimmed:.0f} MB after"
