"""The streaming engine's contract, on a tiny random-weight checkpoint of the real classes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from common.audio import SAMPLE_RATE
from common.params import SynthesisParams
from tests.support.engine import BATCH_TOLERANCE, synthesize
from tests.support.t3 import Request, run
from worker.engine.errors import InvalidRequestError
from worker.engine.model.loading import LoadedModel
from worker.engine.pipeline import StreamingEngine
from worker.engine.s3gen.runner import S3GenRunner, WindowInputs
from worker.engine.s3gen.stream import CONTEXT_TOKENS, S3GenStream, StreamConfig
from worker.engine.text.budgets import MAX_WINDOW_GROWTH, window_size

THREE_SENTENCES = "The sun rose over the hills. Birds began to sing. A new day had started."


def speech_tokens(model: LoadedModel, count: int, seed: int = 1) -> list[int]:
    params = SynthesisParams(seed=seed, fixed_token_count=count)
    tokens = run(model, [Request("Hello there.", params)])[0]
    assert len(tokens) == count
    return tokens


def decode(
    model: LoadedModel, tokens: list[int], slice_size: int, config: StreamConfig
) -> tuple[np.ndarray, list[int]]:
    """Feed ``tokens`` to a fresh S3GenStream in slices; return the PCM and the join offsets."""
    assert model.builtin_voice is not None
    stream = S3GenStream(model, model.builtin_voice, config)
    pieces = [stream.push(tokens[i : i + slice_size]) for i in range(0, len(tokens), slice_size)]
    pieces.append(stream.push([], final=True))
    pieces = [p for p in pieces if len(p)]
    joins = list(np.cumsum([len(p) for p in pieces])[:-1])
    return np.concatenate(pieces), joins


def seam_ratio(pcm: np.ndarray, index: int) -> float:
    """Largest sample-to-sample jump within 2 samples of ``index``, over the median jump in the
    surrounding 20 ms: about 2 anywhere in a continuous signal, larger at a click."""
    jumps = np.abs(np.diff(pcm))
    local = jumps[max(0, index - 240) : index + 240]
    return float(jumps[max(0, index - 2) : index + 2].max() / (np.median(local) + 1e-9))


def seam_report(pcm: np.ndarray, joins: list[int]) -> tuple[float, float]:
    """(worst ratio at a join, 99th percentile of the ratio at 2000 random places)."""
    rng = np.random.default_rng(0)
    places = rng.integers(300, len(pcm) - 300, 2000)
    baseline = float(np.percentile([seam_ratio(pcm, int(i)) for i in places], 99))
    return max(seam_ratio(pcm, j) for j in joins), baseline


def test_streamed_audio_matches_offline_decode(english_model: LoadedModel) -> None:
    # Offline = one window over all tokens; streamed = 35-token slices. Measured on this
    # checkpoint: correlation 0.999, relative RMS error 0.033, equal length.
    tokens = speech_tokens(english_model, 200)
    config = StreamConfig(seed=5)
    offline, _ = decode(english_model, tokens, len(tokens), config)
    streamed, joins = decode(english_model, tokens, 35, config)
    assert len(joins) >= 4
    assert len(streamed) == len(offline) == len(tokens) * 960
    correlation = np.corrcoef(streamed, offline)[0, 1]
    relative_error = np.sqrt(np.mean((streamed - offline) ** 2) / np.mean(offline**2))
    assert correlation > 0.995
    assert relative_error < 0.06


def test_joins_have_no_seam(english_model: LoadedModel) -> None:
    tokens = speech_tokens(english_model, 200)
    pcm, joins = decode(english_model, tokens, 35, StreamConfig(seed=5))
    worst, baseline = seam_report(pcm, joins)
    assert worst <= baseline, (
        f"a join jumps {worst:.1f}x its surroundings (elsewhere {baseline:.1f}x)"
    )


def test_seam_measure_flags_a_hard_cut(english_model: LoadedModel) -> None:
    # The measure above must be able to fail: windows decoded with no shared context and
    # butted together without a crossfade do click.
    tokens = speech_tokens(english_model, 200)
    pcm, joins = decode(
        english_model, tokens, 35, StreamConfig(seed=5, overlap="zero", crossfade_ms=0)
    )
    worst, baseline = seam_report(pcm, joins)
    assert worst > baseline


async def test_first_audio_arrives_before_the_last_token(engine: StreamingEngine) -> None:
    _, chunks, stats = await synthesize(
        engine, THREE_SENTENCES, seed=3, text_processing_chunk_size=30
    )
    assert stats.text_chunks == 3
    assert len(chunks) >= 3
    assert stats.first_audio is not None and stats.last_token is not None
    assert stats.first_audio < stats.last_token


@pytest.mark.parametrize(("lead_ms", "trail_ms"), [(0, 0), (100, 60)])
async def test_tail_is_not_cut(engine: StreamingEngine, lead_ms: int, trail_ms: int) -> None:
    pcm, _, stats = await synthesize(
        engine,
        THREE_SENTENCES,
        seed=4,
        remove_leading_milliseconds=lead_ms,
        remove_trailing_milliseconds=trail_ms,
    )
    expected = stats.speech_tokens * 0.040 - (lead_ms + trail_ms) / 1000
    assert len(pcm) / SAMPLE_RATE >= expected - 1e-6
    assert len(pcm) / SAMPLE_RATE <= expected + 0.001


async def test_seed_reproduces_the_audio(engine: StreamingEngine) -> None:
    first, _, _ = await synthesize(engine, "Same seed, same sound.", seed=42)
    again, _, _ = await synthesize(engine, "Same seed, same sound.", seed=42)
    other, _, _ = await synthesize(engine, "Same seed, same sound.", seed=43)
    assert np.array_equal(first, again)
    assert len(other) != len(first) or not np.allclose(other, first)


async def test_concurrent_requests_do_not_disturb_each_other(engine: StreamingEngine) -> None:
    texts = ["First voice speaking now.", "A second request, running at the same time."]
    alone = [(await synthesize(engine, t, seed=i))[0] for i, t in enumerate(texts)]
    together = await asyncio.gather(*(synthesize(engine, t, seed=i) for i, t in enumerate(texts)))
    for solo, (mixed, _, _) in zip(alone, together, strict=True):
        assert len(solo) == len(mixed) and np.abs(solo - mixed).max() < BATCH_TOLERANCE


async def test_cfg_weight_zero_works(engine: StreamingEngine) -> None:
    pcm, _, stats = await synthesize(engine, "No guidance at all.", seed=1, cfg_weight=0.0)
    assert stats.speech_tokens > 0 and len(pcm) > 0 and np.isfinite(pcm).all()


@pytest.mark.parametrize("temperature", [0.0, 0.01, 5.0])
async def test_extreme_temperatures(engine: StreamingEngine, temperature: float) -> None:
    pcm, _, stats = await synthesize(engine, "Hot and cold.", seed=1, temperature=temperature)
    assert stats.speech_tokens > 0 and len(pcm) > 0 and np.isfinite(pcm).all()


@pytest.mark.parametrize("text", ["", "   \n\t ", "👋🎉 ✨"])
async def test_text_without_words_is_rejected_before_streaming(
    engine: StreamingEngine, text: str
) -> None:
    with pytest.raises(InvalidRequestError) as error:
        await engine.synthesize(text, SynthesisParams())
    assert error.value.field == "text"


async def test_unicode_and_emoji_are_spoken(engine: StreamingEngine) -> None:
    pcm, _, stats = await synthesize(engine, "Café déjà vu — naïve 👋 “quotes” …ok", seed=2)
    assert stats.speech_tokens > 0 and len(pcm) > 0


async def test_an_unsupported_language_is_rejected(engine: StreamingEngine) -> None:
    with pytest.raises(InvalidRequestError) as error:
        await engine.synthesize("Bonjour", SynthesisParams(language="fr"))
    assert error.value.field == "language"


async def test_token_budget_follows_the_text(engine: StreamingEngine) -> None:
    # Random weights never emit EOS: the budget (1 s + 1 s per 8 characters) must stop them.
    text = "Short one."
    _, _, stats = await synthesize(engine, text, seed=1)
    assert 0 < stats.speech_tokens <= 25 * (1 + len(text) / 8) + 1


async def test_long_text_is_chunked_with_bounded_windows(
    engine: StreamingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    windows: list[int] = []
    original = S3GenRunner.decode

    def recording(self: S3GenRunner, inputs: list[WindowInputs]) -> list[np.ndarray]:
        windows.extend(len(w.tokens) for w in inputs)  # the window's tokens, prompt excluded
        return original(self, inputs)

    monkeypatch.setattr(S3GenRunner, "decode", recording)
    sentence = "This sentence is repeated to make a very long text for the engine. "
    text = (sentence * 80)[:5000]
    pcm, _, stats = await synthesize(
        engine, text, seed=1, fixed_token_count=3, audio_tokens_per_slice=12
    )
    assert stats.text_chunks >= 5000 // 150
    assert stats.speech_tokens == 3 * stats.text_chunks
    assert len(pcm) == stats.speech_tokens * 960
    # Cost per window stays bounded however long the text: left context, the largest window,
    # the held-back lookahead and one T3 slice of overshoot.
    assert max(windows) <= CONTEXT_TOKENS + MAX_WINDOW_GROWTH * 12 + 3 + 3


async def test_abandoning_a_stream_stops_it(engine: StreamingEngine) -> None:
    stream = await engine.synthesize(THREE_SENTENCES, SynthesisParams(seed=1))
    async for _ in stream:
        break
    await stream.aclose()
    pcm, _, _ = await synthesize(engine, "Still working afterwards.", seed=1)
    assert len(pcm) > 0


async def test_a_request_shorter_than_the_first_slice_finishes(engine: StreamingEngine) -> None:
    # Regression: T3 used to wait for first audio that S3Gen would only make after 16 tokens.
    run = synthesize(engine, "Hi.", seed=1, fixed_token_count=5)
    pcm, _, stats = await asyncio.wait_for(run, timeout=120)
    assert stats.speech_tokens == 5 and len(pcm) == 5 * 960


def test_windows_grow_on_a_fixed_schedule() -> None:
    params = SynthesisParams(audio_tokens_per_slice=35)
    assert [window_size(params, k) for k in range(8)] == [16, 35, 70, 140, 140, 140, 140, 140]
    assert window_size(SynthesisParams(audio_tokens_per_slice=10), 0) == 10
