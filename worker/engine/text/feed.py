"""Text that arrives in pieces, the way an LLM emits it, turned into T3 chunks (torch-free).

A complete sentence becomes a chunk as soon as its end has arrived: the whitespace after
``. ! ? …``, or, after a mark that ends a sentence wherever it stands (``。 ！ ？ ． । ؟ ۔``),
the next character (so closing quotes and brackets stay with their sentence). A run-on text
that no longer fits one chunk is released at its last boundary that fits (clause, word,
character), keeping the unfinished tail. ``flush()`` makes whatever is buffered a chunk at once
and marks a pause (:data:`FLUSH`), ``close()`` ends the feed. A whole text is just a feed that
is closed before it starts (:meth:`TextFeed.whole`).

Two halves: a :class:`TextCutter` does the text work (pure, linear in the text's length, safe
to run in another thread, one call at a time), and the :class:`TextFeed` is the queue of its
results that T3 reads on the event loop. ``push``/``flush``/``close`` on the feed do both at
once; a worker with text arriving from clients cuts off the loop, then calls
:meth:`TextFeed.put`.

Text that cannot be spoken in any chunk (not even one character fits the KV context) ends the
feed: :meth:`TextFeed.get` raises its InvalidRequestError after the chunks before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Final

from ..errors import InvalidRequestError
from .chunking import SENTENCE_END, ChunkLimit, chunk_text, pack, split_into_chunks
from .cleaning import clean_text


class _Flush:
    def __repr__(self) -> str:
        return "FLUSH"


FLUSH: Final = _Flush()
Item = str | _Flush | InvalidRequestError


class TextCutter:
    """Raw text in, chunks out; remembers the unfinished tail. Each call returns the items it
    released, in order."""

    def __init__(self, limit: ChunkLimit) -> None:
        self.limit = limit
        self._buffer = ""
        self.closed = False

    def push(self, text: str) -> list[Item]:
        if self.closed:
            raise InvalidRequestError("text", "text arrived after the end of the input")
        self._buffer += text
        return self._release(complete_only=True)

    def flush(self) -> list[Item]:
        """Everything received so far, then a pause (the feed keeps one pause in a row)."""
        return [*self._release(complete_only=False), FLUSH]

    def close(self) -> list[Item]:
        items = self._release(complete_only=False)
        self.closed = True
        return items

    def _release(self, complete_only: bool) -> list[Item]:
        cut = self._sentences_end() if complete_only else len(self._buffer)
        items = self._emit(cut)
        if complete_only and not self.closed and not self.limit.fits(self._buffer):
            try:
                parts = pack(self._buffer, self.limit)
            except InvalidRequestError as error:
                return [*items, self._fail(error)]
            items += self._emit(len(self._buffer) - len(parts[-1]))
        return items

    def _sentences_end(self) -> int:
        """Where the last sentence whose end has arrived ends (0: none has)."""
        cut, buffer = 0, self._buffer
        for match in SENTENCE_END.finditer(buffer):
            if match.end() < len(buffer) or buffer[match.end() - 1].isspace():
                cut = match.end()
        return cut

    def _emit(self, cut: int) -> list[Item]:
        """Chunks of the first ``cut`` characters of the buffer."""
        if not cut:
            return []
        ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        try:
            return list(chunk_text(clean_text(ready), self.limit))  # none if nothing is speakable
        except InvalidRequestError as error:
            return [self._fail(error)]

    def _fail(self, error: InvalidRequestError) -> InvalidRequestError:
        """Text that cannot be spoken: it ends the input (the chunks before it still go)."""
        self._buffer = ""
        self.closed = True
        return error


class TextFeed:
    """An async source of text chunks, fed by :meth:`push` (or :meth:`put`) and ended by
    :meth:`close`."""

    def __init__(self, limit: ChunkLimit) -> None:
        self.cutter = TextCutter(limit)
        self._ready: deque[Item] = deque()
        self._closed = False
        self._changed = asyncio.Event()

    @classmethod
    def whole(cls, text: str, limit: ChunkLimit) -> TextFeed:
        """A feed holding all of ``text`` (raises InvalidRequestError if nothing is speakable
        or a part of it cannot fit a chunk)."""
        feed = cls(limit)
        feed._ready.extend(split_into_chunks(text, limit))
        feed._closed = feed.cutter.closed = True
        return feed

    @property
    def closed(self) -> bool:
        return self._closed

    def has_ready(self) -> bool:
        """True if :meth:`get` would return at once."""
        return bool(self._ready) or self._closed

    def push(self, text: str) -> None:
        self.put(self.cutter.push(text))

    def flush(self) -> None:
        """Speak everything received so far now, then pause until more text comes."""
        self.put(self.cutter.flush())

    def close(self) -> None:
        self.put(self.cutter.close())

    def put(self, items: Iterable[Item]) -> None:
        """What the cutter released (on the event loop, after the cutter's call returned)."""
        for item in items:
            if item is FLUSH and (not self._ready or self._ready[-1] is FLUSH):
                continue  # nothing new since the last pause
            self._ready.append(item)
        self._closed = self.cutter.closed
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
