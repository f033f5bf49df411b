"""Text cleaning and chunking at sentence boundaries (torch-free).

Chunks are what T3 conditions on, one at a time, each a prompt of its own in a KV-cache slot.
Whole sentences are packed while the chunk fits its :class:`ChunkLimit`: at most
``text_processing_chunk_size`` characters, and its text tokens (counted with the model's own
tokenizer, which makes several per Hanzi) plus its speech budget within the slot. A sentence
that does not fit is split at clause marks, then after spaces, then between characters; only
text of which not even one character fits is refused.

Sentence ends: ``. ! ? …`` before whitespace (a full stop is also a decimal point or part of an
abbreviation), and ``。 ！ ？ ．`` (CJK, written without spaces), ``। ॥`` (Devanagari),
``؟ ۔`` (Arabic, Urdu) wherever they stand. Clause marks: ``, ; : — –`` before whitespace,
``， 、 ； ： ، ؛`` anywhere. Closing quotes and brackets after a mark stay with its sentence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidRequestError
from .budgets import token_budget
from .cleaning import clean_text

_CLOSERS = r"\"'”’)\]」』）】》〉"
SENTENCE_END = re.compile(rf"[.!?…]+[{_CLOSERS}]*\s+|[。！？．।॥؟۔]+[{_CLOSERS}]*\s*")
CLAUSE_END = re.compile(rf"[,;:—–]+[{_CLOSERS}]*\s+|[，、；：،؛]+[{_CLOSERS}]*\s*")
_WORD_END = re.compile(r"\s+")


class Chunk(str):
    """A chunk as the model reads it (``punc_norm``'s output), that also knows ``source``, its
    text before ``punc_norm`` (what the client sent, cleaned): timings are given for both."""

    source: str

    def __new__(cls, normalized: str, source: str) -> Chunk:
        chunk = super().__new__(cls, normalized)
        chunk.source = source
        return chunk


@dataclass(frozen=True)
class ChunkLimit:
    """What one chunk may hold: ``max_chars`` characters, and ``room`` KV positions for its
    text tokens (``count`` of the chunk as ``normalize`` leaves it) and its speech budget
    (:func:`budgets.token_budget`, at most ``model_limit``) together."""

    max_chars: int
    room: int
    count: Callable[[str], int]
    normalize: Callable[[str], str]
    model_limit: int

    def cost(self, chunk: str) -> int:
        """KV positions ``chunk`` takes beside its prompt's fixed part."""
        text = self.normalize(chunk)
        return self.count(text) + token_budget(text, self.model_limit)

    def fits(self, chunk: str) -> bool:
        chunk = chunk.strip()
        return not chunk or (len(chunk) <= self.max_chars and self.cost(chunk) <= self.room)


def speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def split_into_chunks(text: str, limit: ChunkLimit) -> list[str]:
    """Clean ``text`` and cut it into normalised chunks that fit ``limit``.

    Raises InvalidRequestError (``text``) if nothing in it is speakable or a part cannot fit.
    """
    cleaned = clean_text(text)
    if not speakable(cleaned):
        raise InvalidRequestError("text", "text must contain at least one letter or digit")
    return chunk_text(cleaned, limit)


def chunk_text(cleaned: str, limit: ChunkLimit) -> list[str]:
    """The normalised chunks of already cleaned text; none if nothing in it is speakable."""
    chunks = (piece.strip() for piece in pack(cleaned, limit))
    return [Chunk(limit.normalize(chunk), chunk) for chunk in chunks if speakable(chunk)]


def pack(text: str, limit: ChunkLimit) -> list[str]:
    """``text`` cut into consecutive parts that each fit ``limit`` and join back into it:
    sentences packed greedily, a sentence too long split at clauses, words, characters."""
    pieces = [p for s in split_after(text, SENTENCE_END) for p in _fitting(s, limit, 0)]
    parts: list[str] = []
    for piece in pieces:
        if parts and limit.fits(parts[-1] + piece):
            parts[-1] += piece
        else:
            parts.append(piece)
    return parts


def split_after(text: str, boundary: re.Pattern[str]) -> list[str]:
    """``text`` cut after each match of ``boundary`` (the parts join back into ``text``)."""
    parts, start = [], 0
    for match in boundary.finditer(text):
        parts.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


_FINER = (CLAUSE_END, _WORD_END)


def _fitting(piece: str, limit: ChunkLimit, level: int) -> list[str]:
    if limit.fits(piece):
        return [piece]
    if level == len(_FINER):
        return _cut_characters(piece, limit)
    return [
        p for part in split_after(piece, _FINER[level]) for p in _fitting(part, limit, level + 1)
    ]


def _cut_characters(word: str, limit: ChunkLimit) -> list[str]:
    """The last resort: ``word`` cut between characters (never before a combining mark).

    Each cut looks only at the next ``max_chars`` characters (no longer part can fit), so a
    long word costs time in proportion to its length."""
    parts: list[str] = []
    while not limit.fits(word):
        cut = _longest_fitting_prefix(word[: limit.max_chars + 1], limit)
        parts.append(word[:cut])
        word = word[cut:]
    return [*parts, word] if word else parts


def _longest_fitting_prefix(word: str, limit: ChunkLimit) -> int:
    """The longest prefix of ``word`` that fits and ends before a character (binary search)."""
    cuts = [i for i in range(1, len(word)) if unicodedata.category(word[i])[0] != "M"]
    low, high = 0, len(cuts)  # cuts[:low] fit; cuts[high:] do not
    while low < high:
        middle = (low + high) // 2
        if limit.fits(word[: cuts[middle]]):
            low = middle + 1
        else:
            high = middle
    if low == 0:
        first = word[: cuts[0]] if cuts else word
        raise InvalidRequestError(
            "text",
            f"{first.strip()!r} cannot be spoken: its text tokens and speech budget need "
            f"{limit.cost(first)} KV-cache positions beside the prompt, and a slot has "
            f"{limit.room} (raise KV_CACHE_TOKENS)",
        )
    return cuts[low - 1]
