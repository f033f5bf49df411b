"""Prometheus metrics: what ``GET /metrics`` exposes.

Three sources. An ASGI middleware counts answered requests by route template
(``/voices/{voice_id}``, not the raw path, so the label set stays bounded) and status. The
pool reports each request's first audio and its end (time to first audio, real-time factor,
audio produced). The pool's and the GPUs' state are read at scrape time by a collector, so they
are never stale.

Each app has its own registry (tests run several apps in one process).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.protocol import WORKER_STATES, Done, Failed

from . import gpus
from .pool import WorkerPool
from .pool.streams import AudioChunk, Event, RequestStream

TTFA_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    """The registry of one app and the instruments the middleware and the pool update."""

    def __init__(self, pool: WorkerPool) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tts_http_requests",
            "HTTP requests answered and WebSocket sessions, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.time_to_first_audio = Histogram(
            "tts_time_to_first_audio_seconds",
            "From a synthesis request's arrival to its first audio (queueing included)",
            buckets=TTFA_BUCKETS,
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "tts_real_time_factor",
            "Synthesis time divided by the audio's duration, per finished request (<1: faster "
            "than real time)",
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "tts_audio_seconds", "Seconds of audio synthesized", registry=self.registry
        )
        self.outcomes = Counter(
            "tts_synthesis_requests",
            "Synthesis requests ended, by outcome (done, cancelled or the failure's code)",
            ["outcome"],
            registry=self.registry,
        )
        self.registry.register(PoolCollector(pool))
        pool.observers.append(self.observe)

    def observe(self, stream: RequestStream, event: Event) -> None:
        if isinstance(event, AudioChunk) and stream.first_audio_at is None:
            stream.first_audio_at = event_time = time.perf_counter()
            self.time_to_first_audio.observe(event_time - stream.created)
        elif isinstance(event, Done):
            self.outcomes.labels("cancelled" if event.cancelled else "done").inc()
            self.audio_seconds.inc(event.audio_seconds)
            if event.audio_seconds > 0 and not event.cancelled:
                self.real_time_factor.observe(event.total_ms / 1000 / event.audio_seconds)
        elif isinstance(event, Failed):
            self.outcomes.labels(event.code).inc()


class PoolCollector(Collector):
    """Queue depth, streams, capacity, each worker's state and load, GPU memory: read live."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self.pool.status()
        yield _gauge("tts_queue_depth", "Requests waiting for a worker slot", pool.queued_requests)
        yield _gauge("tts_active_streams", "Requests holding a worker slot", pool.in_use)
        yield _gauge("tts_capacity", "Slots of the workers that are ready", pool.ready_capacity)
        yield CounterMetricFamily(
            "tts_undelivered_messages",
            "Messages for a worker discarded when it was lost (each failed its request)",
            value=pool.undelivered_messages,
        )
        state = GaugeMetricFamily(
            "tts_worker_state", "1 for the state each worker is in", labels=["worker_id", "state"]
        )
        active = GaugeMetricFamily(
            "tts_worker_active_requests", "Requests each worker is serving", labels=["worker_id"]
        )
        restarts = GaugeMetricFamily(
            "tts_worker_restarts", "Times each worker was restarted", labels=["worker_id"]
        )
        for worker in pool.workers:
            for name in WORKER_STATES:
                state.add_metric([worker.worker_id, name], float(worker.state == name))
            active.add_metric([worker.worker_id], worker.active_requests)
            restarts.add_metric([worker.worker_id], worker.restarts)
        yield from (state, active, restarts)
        yield from _gpu_memory()


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _gpu_memory() -> Iterator[Metric]:
    used = GaugeMetricFamily(
        "tts_gpu_memory_used_bytes", "GPU memory in use (NVML)", labels=["gpu", "name"]
    )
    total = GaugeMetricFamily(
        "tts_gpu_memory_total_bytes", "GPU memory in all (NVML)", labels=["gpu", "name"]
    )
    for index, name, in_use, size in gpus.memory_bytes():
        used.add_metric([str(index), name], in_use)
        total.add_metric([str(index), name], size)
    yield from (used, total)


class RequestCounter:
    """ASGI middleware counting each HTTP response and WebSocket session once it has a status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        outcome: dict[str, str] = {}

        async def watch(message: Message) -> None:
            if "status" not in outcome and (status := _status_of(message)):
                outcome["status"] = status
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            status = outcome.get("status") or ("500" if scope["type"] == "http" else "closed")
            method = scope.get("method", "WEBSOCKET")
            self.metrics.requests.labels(_route_of(scope), method, status).inc()


def _status_of(message: Message) -> str:
    kind = message["type"]
    if kind == "http.response.start":
        return str(message["status"])
    if kind == "websocket.accept":
        return "101"
    if kind == "websocket.http.response.start":
        return str(message["status"])
    return "403" if kind == "websocket.close" else ""


def _route_of(scope: Scope) -> str:
    """The matched route's template; a mount (the console's files) by its prefix."""
    route: Any = scope.get("route")
    return str(getattr(route, "path", None) or scope.get("root_path") or "unmatched")
