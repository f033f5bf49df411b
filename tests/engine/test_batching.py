"""Many requests on one engine, batched: each hears what it would alone, none waits for another."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from common.audio import SAMPLE_RATE
from common.params import SynthesisParams
from tests.engine.test_streaming import seam_report
from tests.support.engine import BATCH_TOLERANCE, synthesize
from tests.support.t3 import record_batch_sizes
from worker.engine.model.conditioning import VoiceConditioning, compute_conditioning
from worker.engine.model.loading import LoadedModel
from worker.engine.model.random_checkpoint import reference_clip
from worker.engine.pipeline import StreamingEngine

SAMPLES_PER_TOKEN = 960


@pytest.fixture(scope="module")
def cloned(english_model: LoadedModel) -> VoiceConditioning:
    return compute_conditioning(english_model, reference_clip(9.0, seed=11), SAMPLE_RATE)


def mixed_requests(cloned: VoiceConditioning) -> list[tuple[str, VoiceConditioning | None, dict]]:
    """Eight requests unlike each other: voices, lengths, sampling, guidance, chunking."""
    texts = ["Short one.", "A somewhat longer sentence to say. And a second one after it."]
    settings: list[dict[str, object]] = [
        {"fixed_token_count": 20},
        {"fixed_token_count": 45, "cfg_weight": 0.0},
        {"fixed_token_count": 60, "temperature": 1.2, "top_k": 40},
        {"fixed_token_count": 30, "exaggeration": 1.5, "audio_tokens_per_slice": 12},
        {"fixed_token_count": 25, "temperature": 0.0},
        {"fixed_token_count": 50, "top_p": 0.8, "repetition_penalty": 1.5},
        {"fixed_token_count": 35, "text_processing_chunk_size": 30},
        {"fixed_token_count": 40, "min_p": 0.2, "cfg_weight": 1.5},
    ]
    return [
        (texts[i % 2], cloned if i % 3 == 0 else None, {"seed": 100 + i, **values})
        for i, values in enumerate(settings)
    ]


async def test_eight_different_requests_each_get_exactly_their_audio(
    engine: StreamingEngine, cloned: VoiceConditioning, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_sizes = record_batch_sizes(monkeypatch)
    requests = mixed_requests(cloned)
    results = await asyncio.gather(
        *(synthesize(engine, text, voice, **params) for text, voice, params in requests)
    )
    assert max(batch_sizes) == 8  # one step for every request
    for (_, _, params), (pcm, chunks, stats) in zip(requests, results, strict=True):
        assert stats.speech_tokens == params["fixed_token_count"] * stats.text_chunks
        assert len(pcm) == stats.speech_tokens * SAMPLES_PER_TOKEN
        joins = list(np.cumsum([len(c) for c in chunks])[:-1])
        if len(pcm) > 2 * SAMPLE_RATE // 2 and joins:
            worst, baseline = seam_report(pcm, [j for j in joins if 300 < j < len(pcm) - 300])
            assert worst <= baseline
    for index in (0, 5):  # batched or alone, the same audio
        text, voice, params = requests[index]
        alone, _, _ = await synthesize(engine, text, voice, **params)
        assert np.abs(alone - results[index][0]).max() < BATCH_TOLERANCE


async def test_a_request_joining_and_one_cancelled_leave_the_others_unchanged(
    engine: StreamingEngine, cloned: VoiceConditioning
) -> None:
    text = "The steady one keeps talking. It has plenty more to say."
    params = {"seed": 7, "fixed_token_count": 60}
    alone, _, _ = await synthesize(engine, text, None, **params)

    async def leaves_early() -> None:
        stream = await engine.synthesize("I will hang up soon.", SynthesisParams(seed=8), cloned)
        async for _ in stream:
            break
        await stream.aclose()

    async def joins_late() -> None:
        await asyncio.sleep(0.3)
        await synthesize(engine, "Late arrival.", cloned, seed=9, fixed_token_count=30)

    steady, _, _ = (
        await asyncio.gather(synthesize(engine, text, None, **params), leaves_early(), joins_late())
    )[0]
    assert len(steady) == len(alone)
    assert np.abs(steady - alone).max() < BATCH_TOLERANCE


async def test_a_stalled_listener_does_not_slow_the_others(engine: StreamingEngine) -> None:
    text, params = "Nobody waits for the slow one.", {"seed": 3, "fixed_token_count": 80}
    started = time.perf_counter()
    await synthesize(engine, text, None, **params)
    unstalled = time.perf_counter() - started

    stalled = await engine.synthesize(
        "I read one chunk, then nothing for a while.",
        SynthesisParams(seed=4, fixed_token_count=150),
    )
    async for _ in stalled:
        break  # read once, then stall
    started = time.perf_counter()
    await synthesize(engine, text, None, **params)
    beside_stalled = time.perf_counter() - started
    rest = [chunk.pcm async for chunk in stalled]  # the stalled one still finishes whole
    assert sum(len(c) for c in rest) > 0
    # Generous: the stalled request holds a slot and rides along in the T3 batch.
    assert beside_stalled < 2 * unstalled + 1.0


async def test_a_seed_reproduces_a_request_exactly(engine: StreamingEngine) -> None:
    first, _, _ = await synthesize(engine, "Once more with feeling.", seed=21, temperature=1.0)
    again, _, _ = await synthesize(engine, "Once more with feeling.", seed=21, temperature=1.0)
    assert np.array_equal(first, again)


async def test_a_first_window_without_audio_holds_nobody_up(engine: StreamingEngine) -> None:
    # With 8-token slices and a 200 ms crossfade, the first window emits nothing: the requests
    # paused for it must run again once it is decoded, not wait for audio that comes later.
    odd = {"audio_tokens_per_slice": 8, "crossfade_duration_milliseconds": 200}
    both = asyncio.gather(
        synthesize(engine, "An odd one.", None, seed=1, fixed_token_count=40, **odd),
        synthesize(engine, "A plain one.", None, seed=2, fixed_token_count=40),
    )
    (odd_pcm, _, _), (plain_pcm, _, _) = await asyncio.wait_for(both, timeout=120)
    assert len(odd_pcm) == len(plain_pcm) == 40 * SAMPLES_PER_TOKEN
