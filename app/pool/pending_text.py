"""One request's text on its way to a worker: kept in order, bounded, never dropped.

Pieces stay as the client sent them (the worker releases sentences piece by piece, so joining
two pieces could change where its chunks fall); only what changes nothing is merged: a flush or
end without text rides on the piece before it (not an end on a flush), and a flush with no text
since the last flush, like a keep-alive, is not sent at all. So each
piece waiting holds at least one character, or is the one flag-only piece at the head.

:meth:`PendingText.wait_for_room` is the backpressure: a client that sends faster than its
worker takes text waits there (its socket is not read meanwhile), while every other request
goes on. The bound is :data:`MAX_PIECES` pieces or :data:`MAX_CHARS` characters.
"""

from __future__ import annotations

import asyncio
from collections import deque

from common.protocol import TextPiece

MAX_PIECES = 256
MAX_CHARS = 65_536


class PendingText:
    def __init__(self) -> None:
        self.pieces: deque[TextPiece] = deque()
        self.chars = 0
        self.queued = False  # in its worker's outbox's turn (set by the outbox)
        self.discarded = False  # the request is over: nothing more will be sent
        self.flushed = False  # no text since the last flush (sent or not): another does nothing
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def full(self) -> bool:
        return len(self.pieces) >= MAX_PIECES or self.chars >= MAX_CHARS

    def add(self, piece: TextPiece) -> None:
        if self.discarded or not (piece.text or piece.end or (piece.flush and not self.flushed)):
            return  # nothing new: a keep-alive, or a flush with no text since the last one
        self.flushed = piece.flush or (self.flushed and not piece.text)
        last = self.pieces[-1] if self.pieces else None
        if last is not None and _rides_on(last, piece):
            flush = last.flush or piece.flush
            self.pieces[-1] = last.model_copy(update={"flush": flush, "end": piece.end})
        else:
            self.pieces.append(piece)
            self.chars += len(piece.text)
        if self.full:
            self._room.clear()

    def take(self) -> TextPiece | None:
        """The next piece to send, or None."""
        if not self.pieces:
            return None
        piece = self.pieces.popleft()
        self.chars -= len(piece.text)
        if not self.full:
            self._room.set()
        return piece

    def discard(self) -> None:
        """The request ended: drop what is left and let its sender go on (there is no room
        to wait for any more)."""
        self.discarded = True
        self.pieces.clear()
        self.chars = 0
        self._room.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()


def _rides_on(last: TextPiece, piece: TextPiece) -> bool:
    """Whether sending ``last`` with ``piece``'s flags does what sending both would: text after
    text keeps its own piece, and so does an end after a flush (the pause it marks stays)."""
    return not piece.text and not last.end and not (last.flush and piece.end)
