"""One request as the pool sees it: what to run, where it runs, and the events coming back.

The single result receiver (``app.pool``) puts each worker message into its request's
:class:`RequestStream`; the speech core (``app.speech``) that submitted it reads them. Each audio
chunk read returns one credit to the worker, so what waits here is bounded by ``Job.credit``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from common.log_setup import new_request_id
from common.params import SynthesisParams
from common.protocol import Done, Failed, Job, Started, Timings


class StreamFailed(Exception):
    """The request ended with an error; ``failed`` says which, in words fit for a client."""

    def __init__(self, failed: Failed) -> None:
        super().__init__(failed.message)
        self.failed = failed


@dataclass
class AudioChunk:
    seq: int
    pcm: bytes


Event = Started | AudioChunk | Timings | Done | Failed


@dataclass
class RequestStream:
    """The master's end of one request: what to run (set once, by its submitter), then the
    worker's events (written by dispatch), read by its one consumer."""

    text: str | None
    params: SynthesisParams
    voice_id: str | None = None
    voice_path: str | None = None
    voice_hash: str | None = None
    request_id: str = field(default_factory=new_request_id)
    want_timings: bool = False  # sent as Job.timings: the worker sends a Timings per text chunk
    source: bytes | None = None  # a voice conversion's source: float32 at 16 kHz, sent with the Job
    created: float = field(default_factory=time.perf_counter)
    # Dispatch's: the worker it runs on, what returns a credit, its being assigned.
    worker_id: str | None = None
    on_consumed: Callable[[RequestStream], None] | None = None
    assigned: asyncio.Event = field(default_factory=asyncio.Event)
    first_audio_at: float | None = None  # the metrics' (time to first audio)
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    finished: bool = False  # Done or Failed was received
    # The consumer's: what it has read.
    pcm_bytes: int = 0  # audio handed on so far
    timings: list[Timings] = field(default_factory=list)  # as they came (asked with Job.timings)

    def job(self, credit: int) -> Job:
        """What its worker is sent to start it."""
        return Job(
            request_id=self.request_id,
            text=self.text,
            params=self.params,
            voice_id=self.voice_id,
            voice_path=self.voice_path,
            voice_hash=self.voice_hash,
            credit=credit,
            timings=self.want_timings,
            source_samples=None if self.source is None else len(self.source) // 4,
        )

    def deliver(self, event: Event) -> None:
        if isinstance(event, Done | Failed):
            self.finished = True
        self.events.put_nowait(event)

    async def started(self) -> Started:
        """Wait for the worker to accept the request; raise StreamFailed if it refused."""
        event = await self.events.get()
        if isinstance(event, Failed):
            raise StreamFailed(event)
        if not isinstance(event, Started):
            raise RuntimeError(f"protocol error: {type(event).__name__} before Started")
        return event

    async def audio(self) -> AsyncIterator[bytes]:
        """PCM bytes as they come; ends at Done, raises StreamFailed on Failed."""
        async for event in self._until_end():
            self.pcm_bytes += len(event.pcm)
            yield event.pcm

    async def _until_end(self) -> AsyncIterator[AudioChunk]:
        while True:
            event = await self.events.get()
            if isinstance(event, AudioChunk):
                yield event
                # The consumer is back for more, so the chunk went out: the worker may send one.
                if self.on_consumed is not None:
                    self.on_consumed(self)
            elif isinstance(event, Timings):
                self.timings.append(event)
            elif isinstance(event, Done):
                return
            elif isinstance(event, Failed):
                raise StreamFailed(event)
