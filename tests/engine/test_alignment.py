"""Timings from T3's attention (worker/engine/t3/alignment_probe.py, timings.py, chunk_timer.py).

Real weights cannot be heard here, so the mechanism is tested: alignment heads made to attend
where the test chooses come out as the chosen timings; on random weights the timings are
monotonic, cover every word once and end within the audio, through trims and flushes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from common.params import SynthesisParams
from worker.engine.model.loading import LoadedModel
from worker.engine.pipeline import StreamingEngine
from worker.engine.t3 import backbone as t3_backbone
from worker.engine.text.feed import TextFeed
from worker.engine.text.timings import ChunkTimings, char_tokens, monotonic_path, source_spans

HEADS = ((0, 3), (0, 7))
MS_PER_TOKEN = 40.0


@pytest.fixture
def attending(english_model: LoadedModel) -> Iterator[StreamingEngine]:
    engine = StreamingEngine(english_model, slots=2, alignment_heads=HEADS)
    yield engine
    engine.close()


async def speak(
    engine: StreamingEngine, text: str | TextFeed, **params: Any
) -> tuple[int, list[ChunkTimings]]:
    """Samples of audio and the timings of one request."""
    timings: list[ChunkTimings] = []
    stream = await engine.synthesize(
        text, SynthesisParams(seed=1, **params), on_timings=timings.append
    )
    samples = sum([len(chunk.pcm) async for chunk in stream])
    return samples, timings


def plant(monkeypatch: pytest.MonkeyPatch, text_start: int, path: list[int]) -> None:
    """Heads HEADS attend to text token ``path[t]`` at decode step ``t``: after the rotary
    embedding, their keys at text position j are one-hot e_j (large), all others zero, and their
    query at step t is e_path[t]."""
    real = t3_backbone.apply_rotary_pos_emb
    steps = iter(path)
    heads = [head for _, head in HEADS]

    def planted(query: torch.Tensor, key: torch.Tensor, *args: Any) -> Any:
        query, key = real(query, key, *args)
        query, key = query.clone(), key.clone()
        key[:, heads] = 0.0
        if query.shape[2] > 1:  # the prefill: plant the text's keys
            for j in range(key.shape[-1]):
                if text_start + j < key.shape[2]:
                    key[:, heads, text_start + j, j] = 1000.0
        else:
            query[:, heads] = 0.0
            query[:, heads, 0, next(steps)] = 1.0
        return query, key

    monkeypatch.setattr(t3_backbone, "apply_rotary_pos_emb", planted)


async def test_planted_attention_comes_out_as_the_planted_timings(
    attending: StreamingEngine, english_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "Hello there, my good friend."
    ids = english_model.tokenize(text, None)
    voice = english_model.builtin_voice
    assert voice is not None
    cond = 1 + 32 + 1 if english_model.t3.hp.use_perceiver_resampler else None
    assert cond is not None
    text_start = cond + 1  # after the conditioning and the start-of-text token
    path = [t // 2 for t in range(2 * len(ids))] + [len(ids) - 1] * 4  # 2 tokens each
    plant(monkeypatch, text_start, path)
    samples, (timings,) = await speak(attending, text, fixed_token_count=len(path))
    assert timings.source == "attention" and timings.text == text
    owners = char_tokens(lambda t: english_model.tokenize(t, None), text, len(ids))
    for word in timings.words:
        first, last = owners[word.char_start], owners[word.char_end - 1]
        assert word.start_ms == pytest.approx(2 * first * MS_PER_TOKEN)
        end_tokens = 2 * (last + 1) if last < len(ids) - 1 else len(path)
        assert word.end_ms == pytest.approx(end_tokens * MS_PER_TOKEN)
    assert timings.end_ms == pytest.approx(samples * 1000 / 24000)


def check(samples: int, timings: list[ChunkTimings], text: str) -> None:
    """Monotonic, every word once and in order, within the audio."""
    end = samples * 1000 / 24000
    previous = 0.0
    words: list[str] = []
    for chunk in timings:
        for starts, ends in (
            (chunk.char_start_ms, chunk.char_end_ms),
            (chunk.normalized_char_start_ms, chunk.normalized_char_end_ms),
        ):
            times = np.ravel(np.column_stack([starts, ends]))
            assert np.all(np.diff(times) >= 0) and times[0] >= previous - 1e-9
            assert times[-1] <= end + 1e-9
        assert [w.word for w in chunk.words] == chunk.text.split()
        previous = chunk.end_ms
        words.extend(w.word for w in chunk.words)
    assert [c.chunk for c in timings] == list(range(len(timings)))
    assert words == text.split()


TEXT = "The first sentence is here. And then a second one follows it, quite long: see?"


@pytest.mark.parametrize("trims", [(0, 0), (100, 300)])
async def test_random_weights_give_monotonic_timings_of_every_word_within_the_audio(
    attending: StreamingEngine, trims: tuple[int, int]
) -> None:
    lead, trail = trims
    params = dict(
        text_processing_chunk_size=40, remove_leading_milliseconds=lead,
        remove_trailing_milliseconds=trail, fixed_token_count=30,
    )  # fmt: skip
    samples, timings = await speak(attending, TEXT, **params)
    assert len(timings) >= 2 and {t.source for t in timings} == {"attention"}
    check(samples, timings, TEXT)
    assert timings[-1].end_ms == pytest.approx(samples * 1000 / 24000)


async def test_a_flush_starts_the_next_stream_at_the_audio_already_sent(
    attending: StreamingEngine,
) -> None:
    params = SynthesisParams(fixed_token_count=25)
    feed = attending.validate(None, params)
    feed.push("Before the flush.")
    feed.flush()
    feed.push(" After it comes more.")
    feed.close()
    samples, timings = await speak(attending, feed, fixed_token_count=25)
    check(samples, timings, "Before the flush. After it comes more.")
    assert timings[1].start_ms == pytest.approx(25 * MS_PER_TOKEN)


async def test_a_turbo_without_layer_4_head_6_is_estimated_by_speaking_rate(
    turbo_model: LoadedModel,
) -> None:
    """The tiny Turbo (2 layers of 4 heads) lacks Turbo's head: estimated, as any model without
    its heads (a deeper one reads it: tests/engine/test_turbo_alignment.py)."""
    engine = StreamingEngine(turbo_model, slots=1)
    try:
        samples, timings = await speak(engine, TEXT, fixed_token_count=40)
    finally:
        engine.close()
    assert {t.source for t in timings} == {"estimate"}
    check(samples, timings, TEXT)


def test_the_path_never_goes_back_nor_jumps_ahead() -> None:
    assert monotonic_path([0, 2, 1, 9, 9, 9, 0, 4], 10) == [0, 2, 2, 5, 8, 9, 9, 9]


def test_normalised_text_maps_back_to_the_client_text() -> None:
    spans = [(float(i), float(i + 1)) for i in range(len("A, b."))]
    back = source_spans("a - b", "A, b.", spans)
    # "a" is "A"; " -" shares the time of ","; " b" is " b"; the added "." has no source
    assert back == [(0.0, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0), (3.0, 4.0)]
