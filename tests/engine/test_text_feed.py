"""TextFeed: text arriving in pieces becomes T3 chunks as soon as sentences are complete."""

from __future__ import annotations

import asyncio

import pytest

from worker.engine.errors import InvalidRequestError
from worker.engine.text_feed import FLUSH, TextFeed


def ready(feed: TextFeed) -> list[object]:
    items = []
    while feed.has_ready() and not (feed.closed and not feed._ready):
        items.append(asyncio.run(feed.get()))
    return items


def test_a_sentence_is_released_when_the_space_after_it_arrives() -> None:
    feed = TextFeed(150)
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
    feed = TextFeed(150)
    feed.push("no full stop")
    feed.flush()
    assert ready(feed) == ["No full stop.", FLUSH]
    feed.flush()  # nothing new: no second pause
    assert not feed.has_ready()


def test_run_on_text_is_cut_at_a_space_before_the_limit() -> None:
    feed = TextFeed(30)
    feed.push("word " * 10)
    chunks = ready(feed)
    assert chunks and all(isinstance(c, str) and len(c) <= 31 for c in chunks)


def test_unspeakable_pieces_are_skipped_and_text_after_close_is_refused() -> None:
    feed = TextFeed(150)
    feed.push("🙂🙂. ")
    assert not feed.has_ready()
    feed.close()
    with pytest.raises(InvalidRequestError):
        feed.push("late")


def test_get_waits_for_text() -> None:
    async def scenario() -> object:
        feed = TextFeed(150)
        waiting = asyncio.create_task(feed.get())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        feed.push("Now. ")
        return await asyncio.wait_for(waiting, 1)

    assert asyncio.run(scenario()) == "Now."
