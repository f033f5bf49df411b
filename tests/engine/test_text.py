"""Text cleaning and chunking: sentence ends of every script, chunks that fit a KV-cache slot
in tokens of a tokenizer (a parameter here, so no model is needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from common.variants import Variant
from worker.engine.errors import InvalidRequestError
from worker.engine.text.budgets import token_budget
from worker.engine.text.chunking import ChunkLimit, split_into_chunks
from worker.engine.text.cleaning import clean_text
from worker.engine.text.punctuation import punc_norm

LIMIT = 10_000


def limit(
    max_chars: int = 150,
    room: int = 10**9,
    count: Callable[[str], int] = len,
    variant: Variant = Variant.ENGLISH,
) -> ChunkLimit:
    return ChunkLimit(max_chars, room, count, lambda text: punc_norm(text, variant), LIMIT)


def test_sentences_are_packed_up_to_the_chunk_size() -> None:
    text = "One two three. Four five six! Seven eight nine? Ten."
    chunks = split_into_chunks(text, limit(30))
    assert chunks == ["One two three. Four five six!", "Seven eight nine? Ten."]
    assert all(len(c) <= 30 for c in chunks)


def test_a_long_sentence_splits_at_clauses_then_words() -> None:
    sentence = "alpha beta gamma, delta epsilon zeta, " + "word " * 30
    chunks = split_into_chunks(sentence, limit(40))
    assert all(len(c) <= 41 for c in chunks)  # +1 for the full stop normalisation adds
    assert chunks[0].startswith("Alpha beta gamma,")
    assert " ".join(chunks).lower().count("word") == 30


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    chunks = split_into_chunks("x" * 95, limit(40))
    assert [len(c) for c in chunks] == [41, 41, 16]


def test_every_character_survives_chunking() -> None:
    text = "First sentence here. Second one follows, with a clause; and more. Third!"
    joined = " ".join(split_into_chunks(text, limit(25))).lower()
    assert [w.strip(".,;!") for w in joined.split()] == [
        w.strip(".,;!") for w in text.lower().split()
    ]


def test_a_full_stop_ends_a_sentence_only_before_whitespace() -> None:
    chunks = split_into_chunks("It costs 3.50 today. Really!", limit(25))
    assert chunks == ["It costs 3.50 today.", "Really!"]


def test_emoji_and_control_characters_are_dropped_format_characters_kept() -> None:
    """A zero-width space is text upstream passes on (tests/engine/test_text_upstream.py)."""
    assert clean_text("Hi 👋\x07 there\u200b ✨ friend") == "Hi there\u200b friend"


def test_accents_and_non_latin_scripts_are_kept() -> None:
    assert clean_text("Café  naïve\nПривет 你好") == "Café naïve Привет 你好"


def test_each_chunk_is_normalised_as_the_model_s_punc_norm() -> None:
    chunks = split_into_chunks(
        "well... I think so; maybe - maybe not", limit(variant=Variant.TURBO)
    )
    assert chunks == [punc_norm("well... I think so; maybe - maybe not", Variant.TURBO)]
    assert split_into_chunks("hello… world; yes", limit()) == ["Hello,  world,  yes."]  # upstream


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("你好吗？我很好。谢谢你！", ["你好吗？", "我很好。", "谢谢你！"]),
        ("「行くよ。」と彼は言った。", ["「行くよ。」", "と彼は言った。"]),  # the closer stays
        ("मैं ठीक हूँ। आप कैसे हैं?", ["मैं ठीक हूँ।", "आप कैसे हैं?"]),
        ("كيف حالك؟ أنا بخير.", ["كيف حالك؟", "أنا بخير."]),
        ("Ｎｏ．１です．次です。", ["Ｎｏ．", "１です．", "次です。"]),
    ],
)
def test_sentence_ends_of_every_script(text: str, sentences: list[str]) -> None:
    # A chunk can hold each sentence, never two. punc_norm adds "." after marks it does not
    # know (」 । ؟), as upstream's does.
    longest = max(len(s) for s in sentences)
    chunks = split_into_chunks(text, limit(longest, variant=Variant.MULTILINGUAL))
    assert chunks == [punc_norm(s, Variant.MULTILINGUAL) for s in sentences]


def test_unspaced_cjk_splits_at_clause_marks_before_characters() -> None:
    text = "今天天气很好，我们去公园散步、然后吃饭；最后回家"
    chunks = split_into_chunks(text, limit(12, variant=Variant.MULTILINGUAL))
    assert chunks == ["今天天气很好，", "我们去公园散步、", "然后吃饭；最后回家."]


def test_chunks_fit_in_tokens_and_budget_not_characters() -> None:
    # Three tokens per Hanzi, as a multilingual tokenizer makes several. A sentence takes
    # 22 tokens and a budget of 116 (1 s + 0.5 s per Hanzi): two fit in 300, three do not.
    def count(text: str) -> int:
        return sum(3 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in text)

    room = 300
    text = "我们明天去北京。" * 6
    chunk_limit = limit(150, room, count, Variant.MULTILINGUAL)
    chunks = split_into_chunks(text, chunk_limit)
    assert chunks == ["我们明天去北京。" * 2] * 3
    assert all(count(c) + token_budget(c, LIMIT) <= room for c in chunks)
    assert "".join(chunks) == text


def test_text_of_which_no_character_fits_is_refused_naming_text() -> None:
    # One digit's budget (1 s + 0.67 s + the full stop) is 45 tokens: 40 positions hold none.
    with pytest.raises(InvalidRequestError) as error:
        split_into_chunks("7", limit(room=40))
    assert error.value.field == "text" and "'7'" in str(error.value)
    assert split_into_chunks("a", limit(room=40)) == ["A."]


@pytest.mark.parametrize("text", ["", "   ", "🎉🎉", "... !!"])
def test_text_without_words_is_an_error(text: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        split_into_chunks(text, limit())
    assert error.value.field == "text"
