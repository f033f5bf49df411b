"""Text that arrives in pieces, the way an LLM emits it, turned into T3 chunks (torch-free).

A complete sentence becomes a chunk as soon as the whitespace after its final punctuation
arrives; a run-on text becomes a chunk at the last space before ``max_chars``. ``flush()`` makes
whatever is buffered a chunk at once and marks a pause (:data:`FLUSH`), ``close()`` ends the feed.
A whole text is just a feed that is closed before it starts (:meth:`TextFeed.whole`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from .errors import InvalidRequestError
from .text import SENTENCE_END, split_into_chunks


class _Flush:
    def __repr__(self) -> str:
        return "FLUSH"


FLUSH: Final = _Flush()


class TextFeed:
    """An async source of text chunks, fed by :meth:`push` and ended by :meth:`close`."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._buffer = ""
        self._ready: deque[str | _Flush] = deque()
        self._closed = False
        self._changed = asyncio.Event()

    @classmethod
    def whole(cls, text: str, max_chars: int) -> TextFeed:
        """A feed holding all of ``text`` (raises InvalidRequestError if nothing is speakable)."""
        feed = cls(max_chars)
        feed._ready.extend(split_into_chunks(text, max_chars))
        feed._closed = True
        return feed

    @property
    def closed(self) -> bool:
        return self._closed

    def has_ready(self) -> bool:
        """True if :meth:`get` would return at once."""
        return bool(self._ready) or self._closed

    def push(self, text: str) -> None:
        if self._closed:
            raise InvalidRequestError("text", "text arrived after the end of the input")
        self._buffer += text
        self._release(complete_only=True)

    def flush(self) -> None:
        """Speak everything received so far now, then pause until more text comes."""
        self._release(complete_only=False)
        if self._ready and self._ready[-1] is not FLUSH:
            self._ready.append(FLUSH)
        self._changed.set()

    def close(self) -> None:
        self._release(complete_only=False)
        self._closed = True
        self._changed.set()

    async def get(self) -> str | _Flush | None:
        """The next chunk or :data:`FLUSH`; None once the feed is closed and drained."""
        while not self._ready:
            if self._closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        return self._ready.popleft()

    def _release(self, complete_only: bool) -> None:
        if complete_only:
            ends = list(SENTENCE_END.finditer(self._buffer))
            cut = ends[-1].end() if ends else 0
            if not cut and len(self._buffer) > self.max_chars:
                cut = self._buffer.rfind(" ", 0, self.max_chars) + 1 or self.max_chars
        else:
            cut = len(self._buffer)
        if not cut:
            return
        ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        try:
            chunks = split_into_chunks(ready, self.max_chars)
        except InvalidRequestError:
            chunks = []  # nothing speakable in this piece (emoji, punctuation): skip it
        self._ready.extend(chunks)
        if chunks:
            self._changed.set()
