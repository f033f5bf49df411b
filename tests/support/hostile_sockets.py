"""The WebSocket protocols as a hostile client sees them, for tests/service/test_hostile_*.py:
where each is, a message it must always answer, and how it words an error."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from tests.support.server import API_KEY, Server

VOICE = "anna.wav"
Reply = dict[str, Any] | bytes
TIMEOUT = 60.0  # generous: the suite may run beside a CPU-bound process


@dataclass(frozen=True)
class Protocol:
    name: str
    path: str
    probe: dict[str, Any]  # always answered with an error: proves the socket is still open

    @property
    def ours(self) -> bool:
        return self.name == "tts_stream"

    @property
    def multi(self) -> bool:
        return self.name == "multi_stream_input"

    def url(self, server: Server, query: str = "output_format=pcm_24000") -> str:
        base = f"ws://127.0.0.1:{server.port}{self.path}"
        return base if self.ours else f"{base}?{query}"

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY} if self.ours else {"xi-api-key": API_KEY}

    def is_error(self, reply: Reply) -> bool:
        if isinstance(reply, bytes):
            return False
        return reply.get("type") == "error" if self.ours else "error" in reply

    def check_error(
        self, reply: Reply, field: str | None = None, context: str | None = None
    ) -> dict[str, Any]:
        """``reply`` is this protocol's error naming ``field`` (ElevenLabs' shape has no field:
        its message names it); on multi-stream-input, one naming ``context`` (``contextId`` and
        ``context_id``) ends it: ``isFinal``."""
        assert isinstance(reply, dict) and self.is_error(reply), reply
        assert "Traceback" not in reply["message"] and reply["message"], reply
        if self.ours:
            assert set(reply) <= {"type", "code", "message", "field", "request_id"}, reply
            assert reply.get("field") == field, reply
        else:
            assert set(reply) <= {"error", "message", "contextId", "context_id", "isFinal"}, reply
            assert field is None or field in reply["message"], reply
            named = context if self.multi else None
            assert reply.get("contextId") == named and reply.get("context_id") == named, reply
            assert reply.get("isFinal") is (True if named is not None else None), reply
        return reply


OURS = Protocol("tts_stream", "/tts/stream", {"type": "cancel"})
MULTI = Protocol(
    "multi_stream_input",
    f"/v1/text-to-speech/{VOICE}/multi-stream-input",
    {"context_id": "p", "flush": True},
)
SINGLE = Protocol("stream_input", f"/v1/text-to-speech/{VOICE}/stream-input", {"flush": True})
SOCKETS = (OURS, MULTI, SINGLE)


class Session:
    """One socket, its replies read as they come (JSON decoded, audio as bytes) so that the
    server is never held up by an unread socket."""

    def __init__(self, protocol: Protocol, ws: ClientConnection) -> None:
        self.protocol = protocol
        self.ws = ws
        self.replies: asyncio.Queue[Reply | None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.replies.put_nowait(
                    message if isinstance(message, bytes) else json.loads(message)
                )
        except websockets.ConnectionClosed:
            pass
        finally:
            self.replies.put_nowait(None)

    async def send(self, *messages: dict[str, Any] | str | bytes) -> None:
        for message in messages:
            await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def next(self, wanted: Callable[[Reply], bool] = lambda _: True) -> Reply:
        """The next reply ``wanted`` (others are skipped); fails if the socket closes first."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = await asyncio.wait_for(self.replies.get(), deadline - time.monotonic())
            assert reply is not None, f"closed ({self.ws.close_code} {self.ws.close_reason})"
            if wanted(reply):
                return reply

    async def error(self, field: str | None = None, context: str | None = None) -> dict[str, Any]:
        return self.protocol.check_error(await self.next(self.protocol.is_error), field, context)

    async def ask(
        self, message: dict[str, Any] | str | bytes, field: str | None = None,
        context: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Send ``message``, and its error (naming ``field``, and ``context`` on multi)."""
        await self.send(message)
        return await self.error(field, context)

    async def still_open(self) -> None:
        await self.ask(self.protocol.probe, context="p")

    async def closed(self) -> tuple[int | None, str | None]:
        """Wait for the server to close the socket: its code and reason."""
        while await asyncio.wait_for(self.replies.get(), TIMEOUT) is not None:
            pass
        received = self.ws.protocol.close_rcvd
        return (received.code, received.reason) if received else (None, None)


def connect(server: Server, protocol: Protocol, query: str | None = None, **options: Any) -> Any:
    url = protocol.url(server) if query is None else protocol.url(server, query)
    return websockets.connect(url, additional_headers=protocol.headers(), **options)


def final(context: str) -> Callable[[Reply], bool]:
    return lambda reply: (
        isinstance(reply, dict)
        and reply.get("isFinal") is True
        and (reply.get("contextId", context) == context)
    )


def event(kind: str) -> Callable[[Reply], bool]:
    return lambda reply: isinstance(reply, dict) and reply.get("type") == kind


def audio(reply: Reply) -> bool:
    return isinstance(reply, bytes) or (isinstance(reply, dict) and bool(reply.get("audio")))
