"""``GET /metrics``: Prometheus' text format (the key is required, as for /system-status)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..metrics import Metrics
from ..web.dependencies import Authorized
from ..web.openapi import METRICS_TYPE, errors

router = APIRouter()
PROMETHEUS_TEXT = {
    200: {
        "description": "Prometheus' text exposition format",
        "content": {METRICS_TYPE: {"schema": {"type": "string"}}},
    },
    **errors(401, 403),
}


@router.get(
    "/metrics", dependencies=[Authorized], response_class=Response, responses=PROMETHEUS_TEXT
)
async def metrics(request: Request) -> Response:
    """Request counts, time to first audio, real-time factor, queue, workers, GPU memory."""
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
