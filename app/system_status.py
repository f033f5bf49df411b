"""The ``/system-status`` document: the specification's shape (cpu, gpus), extended."""

from __future__ import annotations

from typing import Any

import psutil

from . import gpus
from .pool import PoolStatus
from .speech.source_audio import conversion_refusal

GIB = 1024**3


def _model(pool: PoolStatus) -> dict[str, Any] | None:
    """Which model the workers serve, and whether it converts voices (speech to speech); None
    until one has loaded it."""
    model = pool.served_model
    if model is None:
        return None
    return {"label": model.label, "variant": model.variant, "repo_id": model.repo_id,
            "voice_conversion": conversion_refusal(model.variant) is None}  # fmt: skip


def system_status(pool: PoolStatus) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {
        "cpu": {
            # Since the previous call (psutil keeps the reference point), so it never blocks.
            "utilization_percent": psutil.cpu_percent(interval=None),
            "cores": psutil.cpu_count(),
            "ram_gb": {
                "total": round(memory.total / GIB, 2),
                "used": round(memory.used / GIB, 2),
                "free": round(memory.available / GIB, 2),
                "percent_used": memory.percent,
            },
        },
        "gpus": gpus.gpu_stats(),
        "service": {
            "ready": pool.ready,
            "reason": pool.reason,
            "capacity": pool.capacity,
            "active_requests": pool.active_requests,
            "queued_requests": pool.queued_requests,
        },
        "model": _model(pool),
        "workers": [worker.as_dict() for worker in pool.workers],
    }
