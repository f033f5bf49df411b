"""Each model's own text normalisation (upstream's ``punc_norm``), applied to every chunk.

Upstream has three copies (``tts.py``, ``tts_turbo.py``, ``mtl_tts.py``; unchanged on GitHub main
since 0.1.7) that differ in two ways: Turbo (and Nano, its class) keeps "...", ";" and " - ",
which the others rewrite to commas, and the multilingual one accepts CJK punctuation as a final
mark. The steps and their order are upstream's: capitalising comes before the spaces are
collapsed, so text with leading whitespace is not capitalised, as upstream.
"""

from __future__ import annotations

from common.variants import Variant

EMPTY_TEXT = "You need to add some text for me to talk."  # upstream's answer to ""

_REPLACEMENTS = [
    ("...", ", "), ("…", ", "), (":", ","), (" - ", ", "), (";", ", "), ("—", "-"), ("–", "-"),
    (" ,", ","), ("“", '"'), ("”", '"'), ("‘", "'"), ("’", "'"),
]  # fmt: skip
_TURBO_KEEPS = ("...", " - ", ";")  # pauses Turbo was trained to read
_TURBO_REPLACEMENTS = [pair for pair in _REPLACEMENTS if pair[0] not in _TURBO_KEEPS]
_ENDS = (".", "!", "?", "-", ",")
_CJK_ENDS = ("、", "，", "。", "？", "！")


def punc_norm(text: str, variant: Variant) -> str:
    """``text`` as ``variant``'s upstream ``punc_norm`` leaves it: first letter capitalised,
    whitespace collapsed, LLM punctuation replaced, a full stop added if no final mark."""
    if not text:
        return EMPTY_TEXT
    if text[0].islower():
        text = text[0].upper() + text[1:]
    text = " ".join(text.split())
    for old, new in _TURBO_REPLACEMENTS if variant.turbo_family else _REPLACEMENTS:
        text = text.replace(old, new)
    text = text.rstrip(" ")
    ends = _ENDS + _CJK_ENDS if variant is Variant.MULTILINGUAL else _ENDS
    if not text.endswith(ends):
        text += "."
    return text
