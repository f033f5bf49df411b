"""Keeping a worker's resident memory flat under glibc's malloc.

glibc gives each thread that allocates an arena of its own (up to eight per core), and memory
freed inside an arena stays mapped until the arena's top is free. A worker allocates large,
short-lived buffers of changing sizes from several threads (voice preparation, text cutting and
token decoding in pool threads, the model loop in its own), so without care its RSS creeps up
as those arenas fragment: 2.05 to 2.18 GB over the last 20 minutes of a 30-minute soak on the
tiny checkpoint (docs/PERFORMANCE.md, "Soak"). Two measures, both no-ops off glibc:

- :func:`limit_arenas`: at most :data:`ARENAS` arenas (``M_ARENA_MAX``), set as the worker starts;
- :func:`release_free_memory`: ``malloc_trim(0)``, which hands every free page back to the
  system, run after a voice is prepared (the largest short-lived allocation) and when the
  worker falls idle, never on the event loop (it locks each arena while it walks it).
"""

from __future__ import annotations

import ctypes
import logging
import sys
from functools import cache

log = logging.getLogger(__name__)
ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, for one): its allocator has no arenas to tame
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_arenas(count: int = ARENAS) -> None:
    if (libc := _glibc()) is not None and not libc.mallopt(_M_ARENA_MAX, count):
        log.warning("could not limit malloc's arenas to %d", count)


def release_free_memory() -> None:
    if (libc := _glibc()) is not None:
        libc.malloc_trim(0)
