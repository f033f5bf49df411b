"""Each model's punc_norm equals upstream's own function on awkward text."""

from __future__ import annotations

import pytest
from chatterbox import mtl_tts, tts, tts_turbo

from common.variants import Variant
from worker.engine.text.punctuation import punc_norm

UPSTREAM = {
    Variant.ENGLISH: tts.punc_norm,
    Variant.TURBO: tts_turbo.punc_norm,
    Variant.NANO: tts_turbo.punc_norm,  # Nano is Turbo's class upstream
    Variant.MULTILINGUAL: mtl_tts.punc_norm,
}

CORPUS = [
    "Well... I think so; maybe - maybe not",
    "wait…what?",
    "Time: 10:30 - or 11:00; depends",
    "Em—dash and en–dash, and a - spaced one",
    "“Curly” quotes and ‘single’ ones’",
    "it costs $3,141.59 , roughly",
    "The year 2024 , the 3rd of May",
    "Emoji 🎉🎉 at the end 😀",
    "😀",
    "你好，世界",
    "你好，世界。",
    "今天天气很好、",
    "こんにちは！",
    "本当？",
    "مرحبا بالعالم؟",
    "नमस्ते दुनिया।",
    "",
    " ",
    "   ",
    ".",
    "...",
    "a",
    "lowercase start",
    "  leading spaces, then lowercase",
    "trailing spaces   ",
    "tabs\tand\nnewlines\r\nin  between",
    "ends with a dash -",
    "ends with a comma,",
    "ends with ellipsis...",
    "ends with a colon:",
    "ends with a semicolon;",
    "ß is lowercase with no single uppercase",
    "ǆ digraph",
    "Already fine.",
    "Question?!",
    "ideographic\u3000space",
    "non\u00a0breaking space",
    " - ",
    "a ... b",
    "x ;y",
]


@pytest.mark.parametrize("variant", list(UPSTREAM))
def test_punc_norm_equals_upstreams(variant: Variant) -> None:
    upstream = UPSTREAM[variant]
    for text in CORPUS:
        assert punc_norm(text, variant) == upstream(text), text


def test_turbo_keeps_the_pauses_english_rewrites() -> None:
    text = "Well... I think so; maybe - maybe not"
    assert punc_norm(text, Variant.TURBO) == "Well... I think so; maybe - maybe not."
    assert punc_norm(text, Variant.ENGLISH) == "Well,  I think so,  maybe, maybe not."  # sic


def test_only_multilingual_accepts_cjk_final_marks() -> None:
    assert punc_norm("你好。", Variant.MULTILINGUAL) == "你好。"
    assert punc_norm("你好。", Variant.ENGLISH) == "你好。."
