"""GPU discovery and statistics through NVML (nvidia-ml-py), without torch or CUDA.

The master uses it to decide how many workers to start and to report utilisation; on a machine
without an NVIDIA driver every function answers "no GPUs" instead of failing.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

try:
    import pynvml
except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency, but stay robust
    pynvml = None

_initialised: bool | None = None
GIB = 1024**3


def _init() -> bool:
    global _initialised
    if _initialised is None:
        try:
            if pynvml is None:
                raise RuntimeError("nvidia-ml-py is not installed")
            pynvml.nvmlInit()
            _initialised = True
        except Exception as error:  # no driver, no GPU, container without NVML
            log.debug("NVML unavailable: %s", error)
            _initialised = False
    return _initialised


def gpu_count() -> int:
    if not _init():
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:
        return 0


def _read(index: int) -> tuple[str, Any, Any]:
    """GPU ``index``'s name, utilisation and memory from NVML (raises if unreadable)."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = pynvml.nvmlDeviceGetName(handle)
    label = name.decode() if isinstance(name, bytes) else str(name)
    util = pynvml.nvmlDeviceGetUtilizationRates(handle)
    return label, util, pynvml.nvmlDeviceGetMemoryInfo(handle)


def gpu_stats() -> list[dict[str, Any]]:
    """Per GPU: utilisation and memory, in the specification's /system-status shape."""
    stats = []
    for index in range(gpu_count()):
        try:
            name, util, memory = _read(index)
        except Exception as error:
            stats.append({"device_id": index, "error": str(error)})
            continue
        stats.append(
            {
                "device_id": index,
                "name": name,
                "utilization_percent": {"gpu": util.gpu, "memory": util.memory},
                "memory_gb": {
                    "total": round(memory.total / GIB, 2),
                    "used": round(memory.used / GIB, 2),
                    "free": round(memory.free / GIB, 2),
                },
            }
        )
    return stats


def memory_bytes() -> list[tuple[int, str, int, int]]:
    """Per GPU: (index, name, bytes used, bytes total) for the metrics; unreadable ones left out."""
    found = []
    for index in range(gpu_count()):
        try:
            name, _, memory = _read(index)
        except Exception:
            continue
        found.append((index, name, int(memory.used), int(memory.total)))
    return found
