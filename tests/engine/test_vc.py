"""Voice conversion (upstream's ``ChatterboxVC``, streamed) on the tiny random checkpoints.

The source's tokens are upstream's one ``s3gen.tokenizer`` call exactly, though made a 30 s
piece at a time; the converted audio equals upstream's ``ChatterboxVC.generate`` (watermark off,
its random draws replaced by the stream's own noise) within the tolerance streamed speech keeps
against one window (tests/engine/test_streaming.py); a VC request and a speech request share S3Gen
batches without either's audio changing; the first audio of a 60 s source comes before its
last piece is tokenized.
"""

from __future__ import annotations

import asyncio
import math
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from chatterbox.models.s3gen import hifigan
from chatterbox.vc import ChatterboxVC

from common.params import SynthesisParams
from tests.support.engine import BATCH_TOLERANCE, synthesize
from worker.engine.errors import InvalidRequestError
from worker.engine.model.loading import LoadedModel
from worker.engine.model.random_checkpoint import reference_clip
from worker.engine.pipeline import StreamingEngine, SynthesisStats
from worker.engine.s3gen.noise import PositionalNoise, SineSource
from worker.engine.vc.source_tokens import SOURCE_RATE, SourceTokenizer, plan

SEED = 11


def source(seconds: float, seed: int = 3) -> np.ndarray:
    return reference_clip(seconds, SOURCE_RATE, seed=seed)


def our_tokens(model: LoadedModel, wav: np.ndarray) -> list[int]:
    tokenizer = SourceTokenizer(model)
    mel = tokenizer.mel(wav)
    return [t for piece in plan(mel.shape[1]) for t in tokenizer.tokens(mel, piece)]


def upstream_tokens(model: LoadedModel, wav: np.ndarray) -> list[int]:
    with torch.inference_mode():
        tokens, _ = model.s3gen.tokenizer(torch.from_numpy(wav)[None])
    return [int(t) for t in tokens[0]]


@pytest.mark.parametrize("seconds", [7.3, 45.5])
def test_source_tokens_equal_upstreams_one_call(english_model: LoadedModel, seconds: float) -> None:
    """7.3 s: one piece; 45.5 s: two 30 s pieces stitched (upstream batches them)."""
    wav = source(seconds)
    assert len(plan(len(wav) // 160)) == (1 if seconds < 30 else 2)
    theirs = upstream_tokens(english_model, wav)
    assert len(theirs) == math.ceil(seconds * 25)
    assert our_tokens(english_model, wav) == theirs


def test_pieces_of_a_long_source_are_upstreams() -> None:
    pieces = plan(6000)  # 60 s
    assert [(p.start, p.stop) for p in pieces] == [(0, 3000), (2600, 5600), (5200, 6000)]
    assert [(p.keep_from, p.keep_to) for p in pieces] == [(0, -50), (50, -50), (50, None)]
    assert plan(3000)[0].padded is False and len(plan(3001)) == 2


async def convert(
    engine: StreamingEngine, wav: np.ndarray, voice: Any = None, **params: Any
) -> tuple[np.ndarray, SynthesisStats]:
    stats = SynthesisStats()
    stream = engine.convert(wav, SynthesisParams(**params), voice, stats)
    chunks = [chunk.pcm async for chunk in stream]
    return np.concatenate(chunks), stats


@pytest.fixture
def upstream_noise(english_model: LoadedModel) -> Iterator[None]:
    """Upstream's random draws as the stream's: the flow's starting noise per mel frame (the
    voice prompt's, then the source's), the vocoder source's harmonic phases and noise."""
    model = english_model
    assert model.builtin_voice is not None
    noise = PositionalNoise(SEED, 80, 64)
    prompt_frames = model.builtin_voice.gen["prompt_feat"].shape[1]
    prompt = noise.frames(-prompt_frames - noise.BLOCK, -noise.BLOCK)
    sine = SineSource(model.s3gen.mel2wav, SEED)
    real_randn_like = torch.randn_like

    def randn_like(like: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if like.dim() == 3 and like.shape[1] == 80:  # the flow's z
            frames = noise.frames(0, like.shape[2] - prompt_frames)
            return torch.from_numpy(np.concatenate([prompt, frames], axis=1))[None].to(like)
        if like.dim() == 3 and like.shape[1] == sine.harmonics:  # SineGen's noise
            return torch.from_numpy(sine.noise.frames(0, like.shape[2]))[None].to(like)
        return real_randn_like(like, **kwargs)

    phases = torch.from_numpy(sine.phases)[None]
    uniform = types.SimpleNamespace(sample=lambda sample_shape: phases.clone())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "randn_like", randn_like)
        patch.setattr(hifigan, "Uniform", lambda **_: uniform)
        yield


def upstream_vc(model: LoadedModel, wav: np.ndarray, path: Path) -> np.ndarray:
    """``ChatterboxVC.generate`` on the file, the built-in voice as its target, no watermark."""
    soundfile.write(path, wav, SOURCE_RATE, subtype="FLOAT")
    assert model.builtin_voice is not None
    vc = object.__new__(ChatterboxVC)  # skips the watermarker's construction
    vc.sr, vc.s3gen, vc.device = 24000, model.s3gen, "cpu"
    vc.ref_dict = dict(model.builtin_voice.gen)  # upstream casts the dict's entries in place
    vc.watermarker = types.SimpleNamespace(apply_watermark=lambda wav, sample_rate: wav)
    return vc.generate(str(path))[0].numpy()


async def test_converted_audio_equals_upstream_vc(
    engine: StreamingEngine, upstream_noise: None, tmp_path: Path
) -> None:
    wav = source(6.0, seed=5)
    theirs = upstream_vc(engine.model, wav, tmp_path / "source.wav")
    ours, stats = await convert(engine, wav, seed=SEED)
    assert stats.speech_tokens == len(upstream_tokens(engine.model, wav)) == 150
    assert len(ours) == len(theirs) == 150 * 960
    correlation = np.corrcoef(ours, theirs)[0, 1]
    relative_error = np.sqrt(np.mean((ours - theirs) ** 2) / np.mean(theirs**2))
    assert correlation > 0.995, correlation
    assert relative_error < 0.06, relative_error


async def test_first_audio_comes_before_a_long_source_is_tokenized(
    engine: StreamingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 s: three pieces; the first audio is out before the third is tokenized."""
    tokenizer = engine._source_stage.tokenizer
    finished: list[float] = []

    def timed(*args: Any) -> list[int]:
        tokens = SourceTokenizer.tokens(tokenizer, *args)
        finished.append(time.perf_counter())
        return tokens

    monkeypatch.setattr(tokenizer, "tokens", timed)
    stats = SynthesisStats()
    stream = engine.convert(source(60.0), SynthesisParams(seed=1), None, stats)
    async for _ in stream:
        if len(finished) == 3:
            break  # no need to decode the rest
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(finished) == 3 and stats.first_audio is not None
    assert stats.first_audio < finished[1] < finished[2]


async def test_conversion_and_speech_share_batches_unchanged(
    engine: StreamingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    wav = source(4.0, seed=8)
    text = "Speech beside a conversion, in the same batches."
    converted_alone, _ = await convert(engine, wav, seed=2)
    spoken_alone, _, _ = await synthesize(engine, text, seed=4, fixed_token_count=100)
    batcher, runner = engine.s3gen, engine.s3gen.runner
    sizes: list[int] = []
    decode, has_work = runner.decode, batcher.has_work
    ended: list[bool] = []

    def counted(windows: list[Any]) -> Any:
        sizes.append(len(windows))
        return decode(windows)

    def both_waiting() -> bool:
        """A batch starts only once both requests have a window waiting (or one has ended):
        on a loaded CPU T3 may otherwise never have a window ready while S3Gen works."""
        streams = {id(job.inputs.source) for job in batcher.waiting}
        return has_work() and (len(streams) >= 2 or bool(ended))

    async def until_done(work: Any) -> Any:
        result = await work
        ended.append(True)
        batcher.wake()
        return result

    monkeypatch.setattr(runner, "decode", counted)
    monkeypatch.setattr(batcher, "has_work", both_waiting)
    (converted, _), (spoken, _, _) = await asyncio.gather(
        until_done(convert(engine, wav, seed=2)),
        until_done(synthesize(engine, text, seed=4, fixed_token_count=100)),
    )
    assert max(sizes) >= 2, sizes  # they did share a batch
    assert np.abs(converted - converted_alone).max() < BATCH_TOLERANCE
    assert np.abs(spoken - spoken_alone).max() < BATCH_TOLERANCE


def test_turbo_refuses_to_convert(turbo_model: LoadedModel) -> None:
    engine = StreamingEngine(turbo_model)
    try:
        with pytest.raises(InvalidRequestError, match="cannot convert voices") as refused:
            engine.convert(source(2.0))
        assert refused.value.field == "model"
    finally:
        engine.close()
