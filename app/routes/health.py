"""Liveness, readiness, RunPod's ``/ping`` and ``/system-status``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..system_status import system_status
from ..web.dependencies import Authorized, PoolDep
from ..web.openapi import errors, json_body

router = APIRouter()


class WorkerReadiness(BaseModel):
    worker_id: str
    state: str


class Readiness(BaseModel):
    ready: bool
    reason: str | None
    workers: list[WorkerReadiness]


class PingStatus(BaseModel):
    status: Literal["healthy", "draining"]


READY = {
    **json_body(Readiness, "Every worker has loaded the model"),
    **json_body(Readiness, "Not ready yet (reason says why), or shutting down", 503),
}
PING = {
    **json_body(PingStatus, "Ready"),
    204: {"description": "Starting: the workers are loading the model"},
    **json_body(PingStatus, "Shutting down (draining)", 503),
}


@router.get("/health")
async def health() -> dict[str, str]:
    """The master answers: it is alive (workers may still be loading)."""
    return {"status": "ok"}


@router.get("/ready", responses=READY)
async def ready(pool: PoolDep) -> JSONResponse:
    """200 once every worker has loaded the model; 503 with the reason until then."""
    status = pool.status()
    workers = [WorkerReadiness(worker_id=w.worker_id, state=w.state) for w in status.workers]
    body = Readiness(ready=status.ready, reason=status.reason, workers=workers)
    return JSONResponse(body.model_dump(), status_code=200 if status.ready else 503)


@router.get("/ping", responses=PING)
async def ping(pool: PoolDep) -> Response:
    """RunPod load-balancer health: 204 while initializing, 200 when ready, 503 when draining."""
    status = pool.status()
    if status.draining:
        return JSONResponse(PingStatus(status="draining").model_dump(), status_code=503)
    if status.ready:
        return JSONResponse(PingStatus(status="healthy").model_dump())
    return Response(status_code=204)


@router.get("/system-status", dependencies=[Authorized], responses=errors(401, 403))
async def status(pool: PoolDep) -> dict[str, Any]:
    """CPU, RAM, per-GPU utilisation and memory, the model served, and each worker's state."""
    return system_status(pool.status())
