"""The FastAPI application: ``create_app(settings)`` wires settings, pool, routes and CORS.

The pool starts in the lifespan, so the master answers ``/health`` within a second while the
workers load their models; it drains on shutdown (uvicorn's SIGTERM handling ends here). The
lifespan also runs the volume's housekeeping (app/housekeeping.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from common.settings import Settings
from common.voices.library import VoiceLibrary

from .housekeeping import sweep_periodically
from .metrics import Metrics, RequestCounter
from .pool import WorkerPool
from .protocols import (
    elevenlabs_http,
    elevenlabs_voices,
    elevenlabs_ws,
    openai_speech,
    speech_to_speech,
    tts_http,
    tts_server,
    tts_websocket,
)
from .routes import console, health, metrics, voices
from .web import openapi
from .web.body_limit import BodyLimit
from .web.errors import install_error_handlers
from .web.request_ids import RequestIdMiddleware

EXPOSED_HEADERS = [
    "X-Request-Id",
    "X-Worker-Id",
    "X-Sample-Rate",
    "X-Audio-Channels",
]


def create_app(settings: Settings | None = None, pool: WorkerPool | None = None) -> FastAPI:
    settings = settings or Settings()
    pool = pool or WorkerPool(settings)

    library = VoiceLibrary(settings.voices_dir, settings.preloaded_voices_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.start()
        sweeping = asyncio.create_task(sweep_periodically(library, settings))
        try:
            yield
        finally:
            sweeping.cancel()
            await pool.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping

    app = FastAPI(
        title="Chatterbox TTS",
        description="Streaming text-to-speech with cloned voices (Resemble AI's Chatterbox).",
        version="0.3.0",
        lifespan=lifespan,
        debug=settings.debug,
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.library = library
    app.state.metrics = Metrics(pool)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS,
    )
    # Added last, so they run first: every response, CORS and errors included, is counted and
    # carries the request id.
    app.add_middleware(RequestCounter, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    for module in (
        health,
        tts_http,
        tts_websocket,
        elevenlabs_ws,
        elevenlabs_http,
        elevenlabs_voices,
        speech_to_speech,
        voices,
        metrics,
    ):
        app.include_router(module.router)
    openai_speech.install(app)
    if settings.tts_server_routes:
        app.include_router(tts_server.router)
    console.install(app)
    openapi.install(app)
    return app
