"""TextFeed: text arriving in pieces becomes T3 chunks as soon as sentences are complete."""

from __future__ import annotations

import asyncio
import time

import pytest

from common.variants import Variant
from tests.engine.test_text import limit
from worker.engine.errors import InvalidRequestError
from worker.engine.text.feed import FLUSH, TextFeed


def ready(feed: TextFeed) -> list[object]:
    items = []
    while feed.has_ready() and not (feed.closed and not feed._ready):
        items.append(asyncio.run(feed.get()))
    return items


def test_a_sentence_is_released_when_the_space_after_it_arrives() -> None:
    feed = TextFeed(limit(150))
    for piece in ["Hel", "lo the", "re."]:
        feed.push(piece)
        assert not feed.has_ready()
    feed.push(" How")
    assert ready(feed) == ["Hello there."]
    feed.push(" are you?")
    assert not feed.has_ready()
    feed.close()
    assert ready(feed) == ["How are you?"]
    assert asyncio.run(feed.get()) is None


def test_flush_releases_an_unfinished_sentence_and_marks_a_pause() -> None:
    feed = TextFeed(limit(150))
    feed.push("no full stop")
    feed.flush()
    assert ready(feed) == ["No full stop.", FLUSH]
    feed.flush()  # nothing new: no second pause
    assert not feed.has_ready()


def test_run_on_text_is_cut_at_a_space_before_the_limit() -> None:
    feed = TextFeed(limit(30))
    feed.push("word " * 10)
    chunks = ready(feed)
    assert chunks and all(isinstance(c, str) and len(c) <= 31 for c in chunks)


def test_unspeakable_pieces_are_skipped_and_text_after_close_is_refused() -> None:
    feed = TextFeed(limit(150))
    feed.push("🙂🙂. ")
    assert not feed.has_ready()
    feed.close()
    with pytest.raises(InvalidRequestError):
        feed.push("late")


def test_get_waits_for_text() -> None:
    async def scenario() -> object:
        feed = TextFeed(limit(150))
        waiting = asyncio.create_task(feed.get())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        feed.push("Now. ")
        return await asyncio.wait_for(waiting, 1)

    assert asyncio.run(scenario()) == "Now."


def test_a_cjk_sentence_ends_at_its_mark_once_the_next_character_shows_no_closer_follows() -> None:
    feed = TextFeed(limit(150, variant=Variant.MULTILINGUAL))
    feed.push("「行くよ。")
    assert not feed.has_ready()  # a closing bracket may still come
    feed.push("」")
    assert not feed.has_ready()
    feed.push("と")
    assert ready(feed) == ["「行くよ。」."]  # punc_norm's "." after 」, as upstream's
    feed.push("彼は言った。今")
    assert ready(feed) == ["と彼は言った。"]


def test_run_on_cjk_text_is_released_at_a_clause_once_it_no_longer_fits() -> None:
    feed = TextFeed(limit(12, variant=Variant.MULTILINGUAL))
    for ch in "今天天气很好，我们去公园散步、然后":
        feed.push(ch)
    assert ready(feed) == ["今天天气很好，"]
    feed.close()
    assert ready(feed) == ["我们去公园散步、然后."]


def test_text_that_cannot_fit_ends_the_feed_after_the_chunks_before_it() -> None:
    feed = TextFeed(limit(room=40))  # a letter fits, a digit (45 positions) does not
    feed.push("A. B. ")
    feed.push("7 ")
    assert feed.closed
    assert [asyncio.run(feed.get()) for _ in range(2)] == ["A.", "B."]
    with pytest.raises(InvalidRequestError) as error:
        asyncio.run(feed.get())
    assert error.value.field == "text" and "'7'" in str(error.value)


def _seconds_to_push(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        feed = TextFeed(limit(300))
        started = time.perf_counter()
        feed.push(text)
        feed.close()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("unit", ["🙂", "a", "日本"])
def test_text_work_grows_in_proportion_to_its_length(unit: str) -> None:
    """A run with no break to cut at (emoji, a letter, Hanzi) was cut in quadratic time: 40,000
    emoji took 1.6 s, on the worker's event loop. Four times the text: about four times the
    time (quadratic would be sixteen)."""
    short = _seconds_to_push(unit * (5_000 // len(unit)))
    long = _seconds_to_push(unit * (20_000 // len(unit)))
    assert long < 8 * short + 0.05, f"20k: {short:.3f} s, 80k: {long:.3f} s"
