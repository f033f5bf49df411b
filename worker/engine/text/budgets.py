"""How many tokens, where: each chunk's speech budget, the room a KV-cache slot has, the slices
T3 hands over and the windows S3Gen decodes. Counts only, never timings, so a seed reproduces a
request exactly, alone or beside others.

A chunk's budget is the most speech any natural reading of its text takes: 1 s, plus each
character's duration at **slow** speech in its script. The slow rates (characters per second)
and the natural rates they leave a margin over:

| characters | slow | natural | margin |
|---|---|---|---|
| Latin, Cyrillic, Greek, spaces, punctuation | 8 | ~14 (160 words/min) | 1.75x |
| Arabic, Hebrew (vowels mostly unwritten) | 6 | ~10 | 1.7x |
| Devanagari and the other Indic scripts (code points) | 7 | ~12 | 1.7x |
| Han (one syllable in Chinese, ~2 morae in Japanese) | 2 | 5 (zh), 4 (ja) | 2.5x, 2x |
| Kana (one mora) | 4 | ~8 | 2x |
| Hangul syllables and jamo | 3 | ~6 | 2x |
| digits and symbols (read out as words) | 1.5 | 0.25-0.6 s each | >1.1x |

Hallucinating or random-weight models otherwise run on to upstream's 1000 tokens (40 s).
"""

from __future__ import annotations

import bisect
import math
import unicodedata

from common.params import SynthesisParams

TOKENS_PER_SECOND = 25
BASE_SECONDS = 1.0
DEFAULT_CHARS_PER_SECOND = 8.0  # Latin, Cyrillic, Greek, whitespace, punctuation, the rest
SPOKEN_SYMBOLS_PER_SECOND = 1.5  # a digit or symbol may be read as a whole word
# (first code point, last code point, slow characters per second), sorted, not overlapping.
SCRIPT_RATES: tuple[tuple[int, int, float], ...] = (
    (0x0590, 0x05FF, 6.0),  # Hebrew
    (0x0600, 0x06FF, 6.0),  # Arabic
    (0x0700, 0x074F, 6.0),  # Syriac
    (0x0750, 0x077F, 6.0),  # Arabic supplement
    (0x0780, 0x07BF, 6.0),  # Thaana
    (0x08A0, 0x08FF, 6.0),  # Arabic extended-A
    (0x0900, 0x0DFF, 7.0),  # Devanagari ... Sinhala
    (0x1100, 0x11FF, 3.0),  # Hangul jamo
    (0x3040, 0x30FF, 4.0),  # Hiragana, Katakana
    (0x3130, 0x318F, 3.0),  # Hangul compatibility jamo
    (0x31F0, 0x31FF, 4.0),  # Katakana phonetic extensions
    (0x3400, 0x4DBF, 2.0),  # CJK extension A
    (0x4E00, 0x9FFF, 2.0),  # CJK unified ideographs
    (0xAC00, 0xD7AF, 3.0),  # Hangul syllables
    (0xF900, 0xFAFF, 2.0),  # CJK compatibility ideographs
    (0xFB1D, 0xFB4F, 6.0),  # Hebrew presentation forms
    (0xFB50, 0xFDFF, 6.0),  # Arabic presentation forms-A
    (0xFE70, 0xFEFF, 6.0),  # Arabic presentation forms-B
    (0xFF66, 0xFF9F, 4.0),  # half-width Katakana
    (0x20000, 0x3FFFF, 2.0),  # CJK extensions B-H
)
_STARTS = [start for start, _, _ in SCRIPT_RATES]
# The first slice is short so audio starts early; later slices use audio_tokens_per_slice.
FIRST_SLICE_TOKENS = 16
MAX_WINDOW_GROWTH = 4


def char_seconds(ch: str) -> float:
    """How long ``ch`` may take to say at slow speech (see the table above)."""
    if unicodedata.category(ch)[0] in "NS":
        return 1.0 / SPOKEN_SYMBOLS_PER_SECOND
    point = ord(ch)
    index = bisect.bisect_right(_STARTS, point) - 1
    if index >= 0 and point <= SCRIPT_RATES[index][1]:
        return 1.0 / SCRIPT_RATES[index][2]
    return 1.0 / DEFAULT_CHARS_PER_SECOND


def slow_seconds(text: str) -> float:
    """The longest natural reading of ``text``: 1 s plus each character at slow speech."""
    return BASE_SECONDS + sum(char_seconds(ch) for ch in text)


def token_budget(text: str, model_limit: int) -> int:
    """Most speech tokens ``text`` may take (its slow reading), at most ``model_limit``."""
    return max(1, min(math.ceil(slow_seconds(text) * TOKENS_PER_SECOND), model_limit))


def speech_room(context: int, prompt_length: int) -> int:
    """Speech tokens a slot of ``context`` positions holds after a prompt of ``prompt_length``
    (each generated token is fed back and takes a position; one position is kept spare)."""
    return context - prompt_length - 1


def slice_size(params: SynthesisParams, emitted_any: bool) -> int:
    if emitted_any:
        return params.audio_tokens_per_slice
    return min(params.audio_tokens_per_slice, FIRST_SLICE_TOKENS)


def window_size(params: SynthesisParams, window: int) -> int:
    """Tokens that S3Gen waits for before decoding window number ``window`` (from 0).

    Every window re-encodes the whole voice prompt (up to 10 s), a fixed cost per window. Once
    audio is flowing, playback has a growing lead, so windows double (up to 4x
    ``audio_tokens_per_slice``) and that cost is paid less often: 16, 35, 70, 140, 140 ...
    """
    if window == 0:
        return slice_size(params, emitted_any=False)
    growth = min(2 ** (window - 1), MAX_WINDOW_GROWTH)
    return params.audio_tokens_per_slice * growth
