"""First audio before anything else: how T3's work yields to S3Gen's first windows. Plain
Python, testable without a model.

Once a request has its first window's tokens, T3 pauses it, and pauses every request past its
first window, until every such first window is decoded; S3Gen then has the device to itself for
those windows. A request still short of its first window's tokens runs on: it races to its own
first audio. The rule reaches T3's scheduler as each sequence's ``runnable``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(eq=False)
class FirstWindow:
    """One request's first S3Gen window: ``decoded`` once S3Gen has decoded (or skipped) it."""

    decoded: bool = False


class FirstWindowPriority:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake  # T3's loop: paused sequences may run again
        self._awaiting: set[FirstWindow] = set()  # tokens out, not decoded yet

    def tokens_out(self, window: FirstWindow, tokens: int, window_tokens: int) -> None:
        """The request has handed on ``tokens`` speech tokens; its first window takes
        ``window_tokens``."""
        if tokens >= window_tokens and not window.decoded:
            self._awaiting.add(window)

    def may_run(self, window: FirstWindow) -> bool:
        """Whether T3 may step the request's sequence now."""
        if window.decoded:
            return not self._awaiting
        return window not in self._awaiting

    def decoded(self, window: FirstWindow) -> None:
        """S3Gen has decoded (or will never decode) ``window``: whoever it held back runs."""
        window.decoded = True
        if window in self._awaiting:
            self._awaiting.discard(window)
            self._wake()
