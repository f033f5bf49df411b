"""``python -m app``: read the settings, refuse unsafe ones, serve under uvicorn on ``PORT``.

``PORT_HEALTH`` (RunPod load-balancing endpoints) is served too when it differs.
``SERVICE_MODE=runpod-queue`` runs RunPod's queue handler instead (app/runpod_handler.py).

Exit codes: 0 after a clean shutdown (SIGTERM or Ctrl-C: in-flight requests finish first, up to
``SHUTDOWN_TIMEOUT_SECONDS``), 2 for a bad configuration (the message names the variable).
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from pydantic import ValidationError

from common.log_setup import configure_logging
from common.settings import Settings
from common.validation import every_problem

from .main import create_app
from .pool import WorkerPool
from .pool.workers import DeviceError
from .server import DrainingServer
from .web.auth import startup_problem

log = logging.getLogger("app")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        for problem in every_problem(error.errors(), upper=True):
            print(f"configuration error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> int:
    settings = load_settings()
    if settings.service_mode == "runpod-queue":
        from .runpod_handler import main as serve_queue

        return serve_queue(settings)
    configure_logging(settings.log_level, settings.log_format, "master")
    if problem := startup_problem(settings):
        print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    settings.export_environment()
    if not settings.api_keys:
        log.warning("API_KEY is not set: every request is accepted without a key")
    try:
        pool = WorkerPool(settings)
    except DeviceError as error:  # DEVICE=cuda:N beyond the GPUs the service may use
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        create_app(settings, pool),
        host=settings.host,
        port=settings.port,
        log_config=None,  # uvicorn's lines go through configure_logging's handler
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,  # requests have drained before uvicorn's shutdown starts
        ws_ping_interval=20,
        ws_max_size=settings.max_request_bytes,  # a larger message closes the socket (1009)
    )
    DrainingServer(config, pool, settings.shutdown_timeout_seconds).run(listen(config, settings))
    return 0


def listen(config: uvicorn.Config, settings: Settings) -> list[socket.socket]:
    """PORT, and PORT_HEALTH when it differs (RunPod's load balancer probes /ping there)."""
    sockets = [config.bind_socket()]
    if settings.port_health not in (None, settings.port):
        health = uvicorn.Config(
            config.app, host=settings.host, port=settings.port_health, log_config=None
        )
        sockets.append(health.bind_socket())
    return sockets


if __name__ == "__main__":
    sys.exit(main())
