"""Per-character and per-word times of one text chunk, from where T3's attention was per token.

Host work, plain Python. For a chunk of ``n`` text tokens spoken as ``T`` speech tokens (40 ms,
960 samples each), the decode step read, for each speech token, the text token its alignment
heads attended to most (:mod:`..t3.alignment_probe`). That reading is noisy (a head glances back, or
ahead at the end), so it is made a **monotonic path** by a bounded running maximum: the path
starts at text token 0, never goes back, and moves forward by at most :data:`MAX_ADVANCE` text
tokens per speech token (a glance far ahead is followed only as fast as speech can go; speech
runs at well under one text token per 40 ms). Text token ``j`` then starts at the first speech
token whose path position reaches ``j`` and ends where token ``j + 1`` starts (the last ends with
the chunk); a token the path skips gets no time, at the point where it was skipped. A text
token's characters (found by tokenizing prefixes of the text) share its time equally.

A path can be **degenerate**: it never leaves the first text token, or it ends more than
:data:`END_SLACK` tokens short of the token of the chunk's last character (the heads lost the
text, or the speech stopped early). Such a chunk, and a chunk read without attention (Nano, or
no alignment heads), is **estimated** instead: its time spread over its characters in proportion
to how long each takes to say in its script (:func:`budgets.char_seconds`). Each chunk says which
it got (``source``), so one chunk may fall back while the next is read from attention.

Times are made for the text the model read (``punc_norm``'s output) and mapped back to the
text the client sent (before ``punc_norm``) by a character alignment of the two (difflib,
ignoring case): a replaced stretch shares the time of what replaced it, a removed character gets
no time where it was removed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate, groupby

from common.audio import SAMPLE_RATE
from common.timings import ChunkTimings, Source, TimedWord

from .budgets import char_seconds

MAX_ADVANCE = 3  # text tokens the path may move forward per speech token
# How far short of the last character's token a path may end and still be used: upstream's
# alignment analyzer (0.1.7) took the text as read once within 3 tokens of its end.
END_SLACK = 3
Span = tuple[float, float]  # [start, end) in samples from the chunk's first sample


def monotonic_path(positions: list[int], text_tokens: int) -> list[int]:
    """Each speech token's text token: the readings as a bounded running maximum."""
    path, at = [], 0
    for reading in positions:
        at = min(max(at, reading), at + MAX_ADVANCE, text_tokens - 1)
        path.append(at)
    return path


def token_spans(path: list[int], text_tokens: int) -> list[tuple[int, int]]:
    """Each text token's [start, end) in speech tokens, along ``path``."""
    starts = [0]
    for j in range(1, text_tokens):
        starts.append(next((t for t, at in enumerate(path) if at >= j), len(path)))
    return list(zip(starts, [*starts[1:], len(path)], strict=True))


def char_tokens(tokenize: Callable[[str], list[int]], text: str, text_tokens: int) -> list[int]:
    """The text token each character of ``text`` ends up in: character ``k`` belongs to the last
    token of ``text[: k + 1]``, kept non-decreasing."""
    owners, last = [], 0
    for k in range(1, len(text) + 1):
        last = max(last, min(len(tokenize(text[:k])) - 1, text_tokens - 1))
        owners.append(last)
    return owners


def usable(path: list[int], last: int) -> bool:
    """Whether ``path`` may time a chunk whose last character is in text token ``last``: it
    advances (unless the text is one token) and ends within :data:`END_SLACK` of ``last``."""
    if not path:
        return False
    end = path[-1]  # the path never goes back: its furthest point
    return (end > 0 or last == 0) and end >= last - END_SLACK


def attention_char_spans(
    path: list[int], owners: list[int], text_tokens: int, samples_per_token: int
) -> list[Span]:
    """The normalised text's character spans, along the monotonic ``path``."""
    spans = token_spans(path, text_tokens)
    chars: list[Span] = []
    for owner, group in groupby(owners):  # owners never decrease: a token's chars are a run
        count = len(list(group))
        start, end = (s * samples_per_token for s in spans[owner])
        step = (end - start) / count
        chars.extend((start + step * k, start + step * (k + 1)) for k in range(count))
    return chars


def char_spans(
    text: str, text_tokens: int, positions: list[int], tokens: int,
    tokenize: Callable[[str], list[int]], samples_per_token: int,
) -> tuple[list[Span], Source]:  # fmt: skip
    """The spans of ``text``'s characters in its ``tokens`` speech tokens, and how they were
    found: from the attention readings ``positions`` (one per speech token), unless there are
    none or their path is degenerate; then estimated."""
    if positions and text:
        owners = char_tokens(tokenize, text, text_tokens)
        path = monotonic_path(positions[:tokens], text_tokens)
        if usable(path, owners[-1]):
            return attention_char_spans(path, owners, text_tokens, samples_per_token), "attention"
    return estimated_char_spans(text, tokens * samples_per_token), "estimate"


def estimated_char_spans(text: str, samples: int) -> list[Span]:
    """The characters' spans when ``samples`` of speech are spread by speaking time."""
    weights = [char_seconds(ch) for ch in text]
    total = sum(weights)
    ends = [samples * w / total for w in accumulate(weights)]
    return list(zip([0.0, *ends[:-1]], ends, strict=True))


def source_spans(source: str, normalized: str, spans: list[Span]) -> list[Span]:
    """``spans`` of the normalised text carried back to the characters of ``source``."""
    out: list[Span] = []

    def folded(text: str) -> list[str]:  # one item per character, case ignored
        return [ch.lower() for ch in text]

    matcher = difflib.SequenceMatcher(None, folded(source), folded(normalized), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "insert":
            continue
        if tag == "equal":
            out.extend(spans[j1:j2])
            continue
        if tag == "delete" or j1 == j2:
            at = spans[j1][0] if j1 < len(spans) else spans[-1][1]
            out.extend([(at, at)] * (i2 - i1))
            continue
        start, end = spans[j1][0], spans[j2 - 1][1]
        step = (end - start) / (i2 - i1)
        out.extend((start + step * k, start + step * (k + 1)) for k in range(i2 - i1))
    return out


def words_of(text: str, starts: list[float], ends: list[float]) -> list[TimedWord]:
    """``text`` split on whitespace, each word from its first character's start to its last
    character's end."""
    words, k = [], 0
    for word in text.split():
        k = text.index(word, k)
        stop = k + len(word)
        words.append(
            TimedWord(
                word=word, start_ms=starts[k], end_ms=ends[stop - 1], char_start=k, char_end=stop
            )
        )
        k = stop
    return words


@dataclass(frozen=True)
class Placement:
    """Where a chunk's audio lies in the request's: its first speech token at ``offset``
    samples (may be negative: a leading trim), nothing before ``floor`` or after ``ceiling``."""

    offset: float
    floor: float
    ceiling: float

    def ms(self, samples: float) -> float:
        clamped = min(max(self.offset + samples, self.floor), self.ceiling)
        return clamped * 1000.0 / SAMPLE_RATE


def chunk_timings(
    chunk: int, source: str, normalized: str, spans: list[Span], placement: Placement,
    found_by: Source,
) -> ChunkTimings:  # fmt: skip
    """The chunk's times for the client's text and the model's, placed in the request's
    audio; ``found_by``: how ``spans`` were found."""
    back = source_spans(source, normalized, spans)
    starts, ends = ([placement.ms(s[i]) for s in back] for i in (0, 1))
    normalized_starts = [placement.ms(s) for s, _ in spans]
    normalized_ends = [placement.ms(e) for _, e in spans]
    return ChunkTimings(
        chunk=chunk,
        source=found_by,
        text=source,
        char_start_ms=starts,
        char_end_ms=ends,
        normalized_text=normalized,
        normalized_char_start_ms=normalized_starts,
        normalized_char_end_ms=normalized_ends,
        words=words_of(source, starts, ends),
        start_ms=normalized_starts[0],
        end_ms=normalized_ends[-1],
    )
