"""Reading an ElevenLabs WebSocket while the soak writes to it: per context, the audio received,
its first audio and its ``isFinal``; an error message or a socket closed before ``close_socket``
ends every wait with the outcome it stands for."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosedError

from scripts.soak_common import Result, error_result


class Stopped(Exception):
    """The socket ended what was being waited for: an error message, or the connection lost."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.detail)
        self.result = result


class Contexts:
    """Messages by ``contextId`` (``""`` on ``stream-input``, which names none)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.audio: defaultdict[str, int] = defaultdict(int)
        self.first_audio: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.final: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.final_at: dict[str, float] = {}  # time.perf_counter() of each isFinal
        self.stopped = asyncio.Event()  # a failure, or the socket's end
        self.failure: Result | None = None
        self.reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._take(json.loads(raw))
        except ConnectionClosedError as closed:
            self._fail(Result("error", f"socket closed: {closed}"))
        self.stopped.set()

    def _take(self, message: dict[str, object]) -> None:
        context = str(message.get("contextId", ""))
        if "error" in message:
            self._fail(error_result(str(message["error"]), str(message.get("message"))))
        if message.get("audio"):
            self.audio[context] += len(str(message["audio"]))
            self.first_audio[context].set()
        if message.get("isFinal"):
            self.final_at[context] = time.perf_counter()
            self.final[context].set()

    def _fail(self, failure: Result) -> None:
        self.failure = self.failure or failure
        self.stopped.set()

    async def until(self, event: asyncio.Event) -> None:
        """Wait for ``event``; raise ``Stopped`` if the socket fails or ends first."""
        waits = [asyncio.create_task(event.wait()), asyncio.create_task(self.stopped.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if not event.is_set():
            raise Stopped(self.failure or Result("error", "socket closed before it was over"))

    async def until_closed(self) -> None:
        """Wait for the server to close the socket (after ``close_socket``) without a failure."""
        await asyncio.shield(self.reader)
        if self.failure:
            raise Stopped(self.failure)

    def close(self) -> None:
        self.reader.cancel()
