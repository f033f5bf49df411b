"""Text normalisation and chunking at sentence boundaries (torch-free).

Chunks are what T3 conditions on, one at a time: whole sentences packed up to
``text_processing_chunk_size`` characters, a long sentence split at clause marks, then spaces.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidRequestError

SENTENCE_END = re.compile(r"(?<=[.!?。！？…])[\"'”’)\]]*\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:，；：—–])\s+")
# Emoji, pictographs, private-use and unassigned code points say nothing a TTS model can speak.
_UNSPEAKABLE = {"So", "Sk", "Co", "Cn", "Cs", "Cc", "Cf"}

PUNCTUATION = [
    ("...", ", "), ("…", ", "), (":", ","), (" - ", ", "), (";", ", "), ("—", "-"), ("–", "-"),
    (" ,", ","), ("“", '"'), ("”", '"'), ("‘", "'"), ("’", "'"),
]  # fmt: skip


def clean_text(text: str) -> str:
    """NFC-normalise, drop unspeakable symbols and control characters, collapse whitespace."""
    text = unicodedata.normalize("NFC", text)
    kept = [
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _UNSPEAKABLE
    ]
    return " ".join("".join(kept).split())


def normalize_chunk(chunk: str) -> str:
    """Upstream's ``punc_norm``: capitalise, replace LLM punctuation, end with punctuation."""
    if chunk[:1].islower():
        chunk = chunk[0].upper() + chunk[1:]
    for old, new in PUNCTUATION:
        chunk = chunk.replace(old, new)
    chunk = chunk.rstrip(" ")
    if not chunk.endswith((".", "!", "?", "-", ",", "。", "！", "？")):
        chunk += "."
    return chunk


def split_into_chunks(text: str, max_chars: int) -> list[str]:
    """Clean ``text`` and pack its sentences into chunks of at most ``max_chars`` characters."""
    cleaned = clean_text(text)
    if not any(ch.isalnum() for ch in cleaned):
        raise InvalidRequestError("text", "text must contain at least one letter or digit")
    pieces: list[str] = []
    for sentence in SENTENCE_END.split(cleaned):
        pieces.extend(_split_long(sentence, max_chars))
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= max_chars:
            chunks[-1] = f"{chunks[-1]} {piece}"
        else:
            chunks.append(piece)
    return [normalize_chunk(c) for c in chunks if any(ch.isalnum() for ch in c)]


def _split_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    parts: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        if len(clause) <= max_chars:
            parts.append(clause)
            continue
        line = ""
        for word in clause.split(" "):
            while len(word) > max_chars:
                if line:
                    parts.append(line)
                    line = ""
                parts.append(word[:max_chars])
                word = word[max_chars:]
            if line and len(line) + 1 + len(word) > max_chars:
                parts.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            parts.append(line)
    return parts
