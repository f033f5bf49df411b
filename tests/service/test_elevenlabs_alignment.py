"""Our chunk Timings as ElevenLabs' per-message alignment, read back by the clients' own
word-timing functions (Pipecat's calculate_word_times, LiveKit's _to_timed_words)."""

from __future__ import annotations

import itertools
from typing import Any

from livekit.plugins.elevenlabs.tts import _to_timed_words
from pipecat.services.elevenlabs.tts_base import calculate_word_times

from app.protocols.elevenlabs_alignment import Aligner
from common.protocol import Timings

CHUNKS = ["The keeper climbed.", "Every evening he lit it."]
CHAR_MS = 50.0
GAP_MS = 300.0  # the pause between the two chunks' audio


def timings() -> list[Timings]:
    """Each character CHAR_MS long; the second chunk starts GAP_MS after the first ends."""
    out, clock = [], 0.0
    for index, text in enumerate(CHUNKS):
        starts = [clock + CHAR_MS * i for i in range(len(text))]
        ends = [s + CHAR_MS for s in starts]
        out.append(Timings(request_id="r", chunk=index, source="attention", text=text,
                           char_start_ms=starts, char_end_ms=ends, normalized_text=text,
                           normalized_char_start_ms=starts, normalized_char_end_ms=ends,
                           words=[], start_ms=starts[0], end_ms=ends[-1]))  # fmt: skip
        clock = ends[-1] + GAP_MS
    return out


def expected_words() -> list[tuple[str, float]]:
    """Each word and its start in seconds, from the planted times."""
    words, clock = [], 0.0
    for text in CHUNKS:
        position = 0
        for word in text.split(" "):
            words.append((word, (clock + CHAR_MS * position) / 1000))
            position += len(word) + 1
        clock += CHAR_MS * len(text) + GAP_MS
    return words


def messages(relative: bool, cuts_ms: list[float | None]) -> list[dict[str, Any]]:
    """The alignments of audio messages ending at ``cuts_ms`` (None: the context's end)."""
    aligner = Aligner(speed=1.0, relative=relative)
    aligner.feed(timings())
    sent = [aligner.message(cut)["alignment"] for cut in cuts_ms]
    return [alignment for alignment in sent if alignment]


CUTS = [120.0, 1000.0, 1500.0, 2000.0, None]  # mid-word, between chunks, and the rest


def test_pipecat_reads_every_word_at_its_time_from_relative_alignment() -> None:
    """Pipecat adds each message's span to a running clock and needs a space after a word to
    time it: the last word of each chunk (and of the context) is timed too."""
    words: list[tuple[str, float]] = []
    clock, partial, partial_start = 0.0, "", 0.0
    for alignment in messages(relative=True, cuts_ms=CUTS):
        found, partial, partial_start = calculate_word_times(alignment, clock, partial,
                                                             partial_start)  # fmt: skip
        words += found
        clock += (alignment["charStartTimesMs"][-1] + alignment["charDurationsMs"][-1]) / 1000
    assert partial == ""
    assert [w for w, _ in words] == [w for w, _ in expected_words()]
    for (_, got), (_, planted) in zip(words, expected_words(), strict=True):
        assert abs(got - planted) <= 0.002  # milliseconds are rounded per message


def test_livekit_reads_every_word_at_its_time_from_absolute_alignment() -> None:
    text, starts, durations, words = "", [], [], []
    for alignment in messages(relative=False, cuts_ms=CUTS):
        text += "".join(alignment["chars"])
        starts += alignment["charStartTimesMs"]
        durations += alignment["charDurationsMs"]
        found, text = _to_timed_words(text, starts, durations)
        starts, durations = starts[-len(text) :], durations[-len(text) :]
        words += found
    found, _ = _to_timed_words(text, starts, durations, flush=True)  # at isFinal
    words += found
    assert [w.strip() for w in words] == [w for w, _ in expected_words()]
    assert [w.start_time for w in words] == [t for _, t in expected_words()]
    assert all(a.end_time <= b.start_time for a, b in itertools.pairwise(words))


def test_a_character_goes_out_with_the_audio_that_reaches_it() -> None:
    sent = messages(relative=False, cuts_ms=[120.0, 120.0, None])
    assert sent[0]["chars"] == list("The")  # starts 0, 50, 100 ms: before 120
    assert "".join(sent[1]["chars"]) == " keeper climbed. Every evening he lit it. "
