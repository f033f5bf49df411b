"""Liveness, readiness, RunPod's ``/ping`` and ``/system-status``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ..dependencies import Authorized, PoolDep
from ..system_status import system_status

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """The master answers: it is alive (workers may still be loading)."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(pool: PoolDep) -> JSONResponse:
    """200 once every worker has loaded the model; 503 with the reason until then."""
    status = pool.status()
    workers = [{"worker_id": w.worker_id, "state": w.state} for w in status.workers]
    body = {"ready": status.ready, "reason": status.reason, "workers": workers}
    return JSONResponse(body, status_code=200 if status.ready else 503)


@router.get("/ping")
async def ping(pool: PoolDep) -> Response:
    """RunPod load-balancer health: 204 while initializing, 200 when ready, 503 when draining."""
    status = pool.status()
    if status.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if status.ready:
        return JSONResponse({"status": "healthy"})
    return Response(status_code=204)


@router.get("/system-status", dependencies=[Authorized])
async def status(pool: PoolDep) -> dict[str, Any]:
    """CPU, RAM, per-GPU utilisation and memory, and each worker's state."""
    return system_status(pool.status())
