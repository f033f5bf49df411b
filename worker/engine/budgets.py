"""How many tokens, where: each chunk's token budget, the slices T3 hands over, the windows
S3Gen decodes, and the longest text chunk a KV-cache slot holds. Counts only, never timings,
so a seed reproduces a request exactly, alone or beside others."""

from __future__ import annotations

import math

from common.params import SynthesisParams

TOKENS_PER_SECOND = 25
SLOWEST_CHARS_PER_SECOND = 8.0
# The first slice is short so audio starts early; later slices use audio_tokens_per_slice.
FIRST_SLICE_TOKENS = 16
MAX_WINDOW_GROWTH = 4


def token_budget(text: str, model_limit: int) -> int:
    """Most speech tokens a text may take: 1 s plus 1 s per 8 characters (slow speech).

    Hallucinating or random-weight models otherwise run on to upstream's 1000 tokens (40 s).
    """
    seconds = 1.0 + len(text) / SLOWEST_CHARS_PER_SECOND
    return max(1, min(math.ceil(seconds * TOKENS_PER_SECOND), model_limit))


def longest_chunk(context: int, prompt_overhead: int) -> int:
    """The most characters a text chunk may have so that its prompt (at most a token per
    character, plus ``prompt_overhead``) and its whole budget fit in ``context`` positions."""
    per_char = 1 + TOKENS_PER_SECOND / SLOWEST_CHARS_PER_SECOND
    return max(1, int((context - prompt_overhead - TOKENS_PER_SECOND) / per_char))


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
