"""Each model's own text normalisation (upstream's ``punc_norm``), applied to every chunk."""

from __future__ import annotations

from common.variants import Variant

_REPLACEMENTS = [
    ("...", ", "), ("…", ", "), (":", ","), (" - ", ", "), (";", ", "), ("—", "-"), ("–", "-"),
    (" ,", ","), ("“", '"'), ("”", '"'), ("‘", "'"), ("’", "'"),
]  # fmt: skip


def punc_norm(text: str, variant: Variant) -> str:
    """Capitalise, replace LLM punctuation, end with punctuation, as ``variant`` does upstream."""
    if text[:1].islower():
        text = text[0].upper() + text[1:]
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    text = text.rstrip(" ")
    if not text.endswith((".", "!", "?", "-", ",", "。", "！", "？")):
        text += "."
    return text
