"""How many requests a worker serves at once: its T3 batch slots.

``CONCURRENT_REQUESTS_PER_WORKER`` says it outright; unset (or ``auto``) the worker decides from
its device. On a GPU, each slot's KV cache is allocated up front, so the slots are what fits in
the memory left once the model is loaded, after a reserve for S3Gen's batched windows; on a CPU,
where more requests only share the same cores, a fixed number measured on the benchmark machine
(docs/PERFORMANCE.md). The worker reports the result in its heartbeat; the master dispatches by it.
"""

from __future__ import annotations

import logging

import torch

from .engine.loading import LoadedModel
from .engine.t3_runner import kv_bytes_per_slot

log = logging.getLogger(__name__)

CPU_SLOTS = 8
MAX_SLOTS = 256
GIB = 1024**3
# S3Gen's working memory per window in a batch (full-size model, a 10 s voice prompt and a
# 140-token window: under 256 MiB), and a margin for the allocator and everything else.
S3GEN_BYTES_PER_WINDOW = GIB // 4
MARGIN_BYTES = GIB


def slots_that_fit(free_bytes: int, per_slot: int, windows: int) -> int:
    """Slots whose KV caches fit in ``free_bytes`` beside S3Gen's batch of ``windows``."""
    room = free_bytes - windows * S3GEN_BYTES_PER_WINDOW - MARGIN_BYTES
    return max(1, min(MAX_SLOTS, room // per_slot))


def choose_slots(requested: int | None, model: LoadedModel, context: int, windows: int) -> int:
    if requested is not None:
        return requested
    if model.device.type != "cuda":
        return CPU_SLOTS
    free, total = torch.cuda.mem_get_info(model.device)
    per_slot = kv_bytes_per_slot(model, context)
    slots = slots_that_fit(free, per_slot, windows)
    log.info(
        "%d slots: %.1f of %.1f GiB free, %.0f MiB of KV cache per slot", slots, free / GIB,
        total / GIB, per_slot / 2**20,
    )  # fmt: skip
    return slots
