"""Text cleaning and sentence chunking."""

from __future__ import annotations

import pytest

from worker.engine.errors import InvalidRequestError
from worker.engine.text import clean_text, normalize_chunk, split_into_chunks


def test_sentences_are_packed_up_to_the_chunk_size() -> None:
    text = "One two three. Four five six! Seven eight nine? Ten."
    chunks = split_into_chunks(text, 30)
    assert chunks == ["One two three. Four five six!", "Seven eight nine? Ten."]
    assert all(len(c) <= 30 for c in chunks)


def test_a_long_sentence_splits_at_clauses_then_words() -> None:
    sentence = "alpha beta gamma, delta epsilon zeta, " + "word " * 30
    chunks = split_into_chunks(sentence, 40)
    assert all(len(c) <= 41 for c in chunks)  # +1 for the full stop normalisation adds
    assert chunks[0].startswith("Alpha beta gamma,")
    assert " ".join(chunks).lower().count("word") == 30


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    chunks = split_into_chunks("x" * 95, 40)
    assert [len(c) for c in chunks] == [41, 41, 16]


def test_every_character_survives_chunking() -> None:
    text = "First sentence here. Second one follows, with a clause; and more. Third!"
    joined = " ".join(split_into_chunks(text, 25)).lower()
    assert [w.strip(".,;!") for w in joined.split()] == [
        w.strip(".,;!") for w in text.lower().split()
    ]


def test_emoji_and_control_characters_are_dropped() -> None:
    assert clean_text("Hi 👋\x07 there\u200b ✨ friend") == "Hi there friend"


def test_accents_and_non_latin_scripts_are_kept() -> None:
    assert clean_text("Café  naïve\nПривет 你好") == "Café naïve Привет 你好"


def test_normalisation_follows_upstream_punc_norm() -> None:
    assert normalize_chunk("hello… world; yes") == "Hello,  world,  yes."
    assert normalize_chunk("Done!") == "Done!"


@pytest.mark.parametrize("text", ["", "   ", "🎉🎉", "... !!"])
def test_text_without_words_is_an_error(text: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        split_into_chunks(text, 150)
    assert error.value.field == "text"
