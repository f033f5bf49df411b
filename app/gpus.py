"""GPU discovery and statistics through NVML (nvidia-ml-py), without torch or CUDA.

The master uses it to decide which GPUs get workers and to report them; on a machine without an
NVIDIA driver every function answers "no GPUs" instead of failing.

Which GPUs are the service's: every GPU NVML sees, or, when the environment has
``CUDA_VISIBLE_DEVICES`` (a scheduler's ``2,3``, or GPU UUIDs), only those it lists, in its
order. An index entry is NVML's index (PCI bus order, as ``nvidia-smi`` numbers them), which is
what a worker's CUDA reads it as too, because every worker runs with
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (CUDA's own default orders the fastest first). A UUID entry may
be shortened to any unique prefix, with or without ``GPU-``. As CUDA does, an entry that names no
GPU hides itself and every entry after it (logged).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

try:
    import pynvml
except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency, but stay robust
    pynvml = None

_initialised: bool | None = None
_warned: set[str] = set()  # CUDA_VISIBLE_DEVICES values already warned about (read per scrape)
GIB = 1024**3


@dataclass(frozen=True)
class Gpu:
    """One physical GPU as NVML names it, and how a worker's ``CUDA_VISIBLE_DEVICES`` names it."""

    index: int  # NVML's index: PCI bus order, nvidia-smi's number
    name: str
    uuid: str
    visible_as: str  # the CUDA_VISIBLE_DEVICES entry that shows a worker this GPU alone


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


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _all_gpus() -> list[Gpu]:
    """Every GPU NVML sees, in its (PCI bus) order; none without a driver."""
    if not _init():
        return []
    found = []
    try:
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = _text(pynvml.nvmlDeviceGetName(handle))
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            found.append(Gpu(index, name, uuid, str(index)))
    except Exception as error:
        log.warning("NVML could not list the GPUs: %s", error)
    return found


def _resolve(entry: str, every: list[Gpu]) -> Gpu | None:
    """The GPU a ``CUDA_VISIBLE_DEVICES`` entry names: an NVML index or a unique UUID prefix."""
    if entry.isdigit():
        return next((g for g in every if g.index == int(entry)), None)
    wanted = entry.lower().removeprefix("gpu-")
    matches = [g for g in every if g.uuid.lower().removeprefix("gpu-").startswith(wanted)]
    return matches[0] if wanted and len(matches) == 1 else None


def visible_gpus(environ: Mapping[str, str] = os.environ) -> list[Gpu]:
    """The GPUs the service may use: NVML's, limited to those ``CUDA_VISIBLE_DEVICES`` lists."""
    every = _all_gpus()
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return every
    if not listed.strip():
        return []  # set empty: no GPU at all, as for CUDA
    chosen: list[Gpu] = []
    for entry in (part.strip() for part in listed.split(",")):
        gpu = _resolve(entry, every)
        if gpu is None:
            if every and listed not in _warned:
                _warned.add(listed)
                log.warning(
                    "CUDA_VISIBLE_DEVICES=%r: %r names none of NVML's GPUs (%s); it and the "
                    "entries after it are ignored, as CUDA does",
                    listed, entry, ", ".join(f"{g.index}: {g.uuid}" for g in every),
                )  # fmt: skip
            break
        if gpu.index not in (g.index for g in chosen):
            chosen.append(Gpu(gpu.index, gpu.name, gpu.uuid, entry))
    return chosen


def _usage(index: int) -> tuple[Any, Any]:
    """GPU ``index``'s utilisation and memory from NVML (raises if unreadable)."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    return pynvml.nvmlDeviceGetUtilizationRates(handle), pynvml.nvmlDeviceGetMemoryInfo(handle)


def gpu_stats() -> list[dict[str, Any]]:
    """Per GPU of the service: utilisation and memory, in /system-status's shape."""
    stats = []
    for gpu in visible_gpus():
        named = {"device_id": gpu.index, "name": gpu.name, "uuid": gpu.uuid}
        try:
            util, memory = _usage(gpu.index)
        except Exception as error:
            stats.append({**named, "error": str(error)})
            continue
        stats.append(
            {
                **named,
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
    """Per GPU of the service: (index, name, bytes used, bytes total); unreadable ones left out."""
    found = []
    for gpu in visible_gpus():
        try:
            _, memory = _usage(gpu.index)
        except Exception:
            continue
        found.append((gpu.index, gpu.name, int(memory.used), int(memory.total)))
    return found
