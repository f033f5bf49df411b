"""Each T3 sequence's token buffer: how a request reads its tokens, and how a slow reader
pauses its sequence (the buffer full, the sequence rides along in the batch)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from common.variants import Variant


def drops_token_before_eos(variant: Variant) -> bool:
    """Whether a chunk ended by EOS loses its last speech token: multilingual, as upstream's
    GitHub main drops its audio (``wav[: (n_tokens - 1) * 960]``; the token just before EOS
    decodes to ~40 ms of noise). 0.1.7 keeps it, and so do English, Turbo and Nano."""
    return variant is Variant.MULTILINGUAL


class TokenBuffer:
    """The tokens a sequence has generated and its reader has not taken yet.

    With ``drop_before_eos`` the newest token is held back until the next one comes or the
    sequence ends, and dropped (unless it is the only one, as upstream keeps one) if EOS ended
    the sequence; an end by budget keeps every token. The scheduler hands on no EOS token and a
    budget's end comes with its last token, so a sequence that ends with an empty push after
    tokens ended at EOS.
    """

    def __init__(self, room: int, on_room: Callable[[], None], drop_before_eos: bool = False):
        self.room = room  # the sequence pauses once this many tokens wait here
        self.on_room = on_room
        self.held = int(drop_before_eos)  # newest tokens kept from the reader until the end
        self.tokens: list[int] = []
        self.received = 0
        self.done = False
        self.error: BaseException | None = None
        self._changed = asyncio.Event()

    def push(self, tokens: list[int], finished: bool) -> None:
        self.tokens.extend(tokens)
        self.received += len(tokens)
        if finished and not tokens and self.held and self.received > 1 and not self.done:
            self.tokens.pop()  # ended at EOS: its last token (held back, so not taken yet)
        self.done = self.done or finished
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True
        self._changed.set()

    def wanted(self) -> bool:
        return len(self.tokens) < self.room + self.held

    def _ready(self) -> int:
        return len(self.tokens) if self.done else max(0, len(self.tokens) - self.held)

    async def take(self, count: int) -> list[int] | None:
        """Up to ``count`` tokens, once ``count`` are there or the sequence ended; None at the
        end. Raises the error that ended the sequence, if one did."""
        while self._ready() < count and not self.done:
            self._changed.clear()
            await self._changed.wait()
        if self.error is not None:
            raise self.error
        if not self.tokens:
            return None
        taken, self.tokens = self.tokens[:count], self.tokens[count:]
        self.on_room()
        return taken
