"""How many requests a worker serves at once: its T3 batch slots.

``CONCURRENT_REQUESTS_PER_WORKER`` says it outright; unset (or ``auto``) the worker decides from
its device. On a CPU, where more requests only share the same cores, a fixed number measured on
the benchmark machine (docs/PERFORMANCE.md). On a GPU each slot's KV cache is allocated up
front, so the slots are what fits in this worker's share of the card: ``total /
WORKERS_PER_DEVICE``, less its own model, S3Gen's working memory for a full batch of windows and
a margin. The share comes from the card's *total* memory, not from what is free when the worker
looks: free memory changes as the other workers of the card load, allocate and run S3Gen, so
sizing from it let the second worker take the reserve the first kept back, and two workers
measuring at once both over-allocate. What is free still caps it (with a warning), in case
something else holds memory. The worker reports its slots in its heartbeat; the master
dispatches by them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .engine.model.loading import LoadedModel
from .engine.t3.runner import kv_bytes_per_slot

log = logging.getLogger(__name__)

CPU_SLOTS = 8
MAX_SLOTS = 256
GIB = 1024**3
MIB = 1024**2
# S3Gen's working memory per window in a batch (full-size model, a 10 s voice prompt and a
# 140-token window: under 256 MiB).
S3GEN_BYTES_PER_WINDOW = GIB // 4
# Per worker, beside its model: the CUDA context (outside torch's allocator, and already taken
# when the worker measures free memory), then cuBLAS/cuDNN workspaces and allocator slack.
CONTEXT_BYTES = 768 * MIB
SLACK_BYTES = 256 * MIB


@dataclass(frozen=True)
class GpuMemory:
    """A worker's view of its GPU once its model is loaded, in bytes."""

    total: int
    free: int
    model: int  # what this worker's model holds on the device (its allocator's reserve)


def slots_that_fit(memory: GpuMemory, share: int, per_slot: int, windows: int) -> int:
    """Slots whose KV caches fit in this worker's ``1/share`` of the GPU and in what is free."""
    reserve = windows * S3GEN_BYTES_PER_WINDOW
    budget = memory.total // share - memory.model - reserve - CONTEXT_BYTES - SLACK_BYTES
    available = memory.free - reserve - SLACK_BYTES  # this worker's context is already out
    room = min(budget, available)
    slots = max(1, min(MAX_SLOTS, room // per_slot))
    figures = (
        f"{memory.total / GIB:.1f} GiB total / {share} worker(s) - {memory.model / GIB:.2f} GiB "
        f"model - {reserve / GIB:.2f} GiB S3Gen ({windows} windows) - "
        f"{(CONTEXT_BYTES + SLACK_BYTES) / GIB:.2f} GiB margin = {budget / GIB:.2f} GiB budget; "
        f"{memory.free / GIB:.2f} GiB free; {per_slot / MIB:.0f} MiB KV cache per slot"
    )
    if available < budget:
        log.warning(
            "%d slots, fewer than this worker's share holds: only %.2f GiB of the %.2f GiB "
            "budget is free beside S3Gen's reserve (%s). Something else holds memory on this "
            "GPU: another process, or a worker of this GPU that took more than its share; set "
            "CONCURRENT_REQUESTS_PER_WORKER to choose the slots yourself.",
            slots, available / GIB, budget / GIB, figures,
        )  # fmt: skip
    else:
        log.info("%d slots: %s", slots, figures)
    return slots


def choose_slots(
    requested: int | None, model: LoadedModel, context: int, windows: int, share: int = 1
) -> int:
    """The setting if given; else what fits on the device, ``share`` workers to a GPU."""
    if requested is not None:
        return requested
    if model.device.type != "cuda":
        return CPU_SLOTS
    free, total = torch.cuda.mem_get_info(model.device)
    memory = GpuMemory(total, free, torch.cuda.memory_reserved(model.device))
    return slots_that_fit(memory, share, kv_bytes_per_slot(model, context), windows)
