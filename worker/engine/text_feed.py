"""Text that arrives in pieces, the way an LLM emits it, turned into T3 chunks (torch-free).

A complete sentence becomes a chunk as soon as its end has arrived: the whitespace after
``. ! ? …``, or, after a mark that ends a sentence wherever it stands (``。 ！ ？ ． । ؟ ۔``),
the next character (so closing quotes and brackets stay with their sentence). A run-on text
that no longer fits one chunk is released at its last boundary that fits (clause, word,
character), keeping the unfinished tail. ``flush()`` makes whatever is buffered a chunk at once
and marks a pause (:data:`FLUSH`), ``close()`` ends the feed. A whole text is just a feed that
is closed before it starts (:meth:`TextFeed.whole`).

Text that cannot be spoken in any chunk (not even one character fits the KV context) ends the
feed: :meth:`TextFeed.get` raises its InvalidRequestError after the chunks before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from .errors import InvalidRequestError
from .text import SENTENCE_END, ChunkLimit, chunk_text, clean_text, pack, split_into_chunks


class _Flush:
    def __repr__(self) -> str:
        return "FLUSH"


FLUSH: Final = _Flush()


class TextFeed:
    """An async source of text chunks, fed by :meth:`push` and ended by :meth:`close`."""

    def __init__(self, limit: ChunkLimit) -> None:
        self.limit = limit
        self._buffer = ""
        self._ready: deque[str | _Flush | InvalidRequestError] = deque()
        self._closed = False
        self._changed = asyncio.Event()

    @classmethod
    def whole(cls, text: str, limit: ChunkLimit) -> TextFeed:
        """A feed holding all of ``text`` (raises InvalidRequestError if nothing is speakable
        or a part of it cannot fit a chunk)."""
        feed = cls(limit)
        feed._ready.extend(split_into_chunks(text, limit))
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
        """The next chunk or :data:`FLUSH`; None once the feed is closed and drained. Raises
        the InvalidRequestError of text that cannot be spoken."""
        while not self._ready:
            if self._closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        item = self._ready.popleft()
        if isinstance(item, InvalidRequestError):
            raise item
        return item

    def _release(self, complete_only: bool) -> None:
        cut = self._sentences_end() if complete_only else len(self._buffer)
        self._emit(cut)
        if complete_only and not self.limit.fits(self._buffer):
            try:
                parts = pack(self._buffer, self.limit)
            except InvalidRequestError as error:
                self._fail(error)
                return
            self._emit(len(self._buffer) - len(parts[-1]))

    def _sentences_end(self) -> int:
        """Where the last sentence whose end has arrived ends (0: none has)."""
        cut, buffer = 0, self._buffer
        for match in SENTENCE_END.finditer(buffer):
            if match.end() < len(buffer) or buffer[match.end() - 1].isspace():
                cut = match.end()
        return cut

    def _emit(self, cut: int) -> None:
        """Make chunks of the first ``cut`` characters of the buffer."""
        if not cut:
            return
        ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        try:
            chunks = chunk_text(clean_text(ready), self.limit)  # none if nothing is speakable
        except InvalidRequestError as error:
            self._fail(error)
            return
        self._ready.extend(chunks)
        if chunks:
            self._changed.set()

    def _fail(self, error: InvalidRequestError) -> None:
        """Text that cannot be spoken: the chunks before it, then the error, end the feed."""
        self._ready.append(error)
        self._buffer = ""
        self._closed = True
        self._changed.set()
