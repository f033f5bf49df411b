"""Turbo and multilingual stream too, each from its own tiny checkpoint."""

from __future__ import annotations

import pytest
import torch

from common.params import SynthesisParams
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from tests.support.engine import synthesize
from tests.support.t3 import Request, logits_after_one_step
from worker.engine.errors import InvalidRequestError
from worker.engine.model.conditioning import compute_conditioning
from worker.engine.model.loading import load_model
from worker.engine.model.random_checkpoint import reference_clip
from worker.engine.pipeline import StreamingEngine


async def test_turbo_streams_and_ends_with_silence_tokens(checkpoints: Checkpoints) -> None:
    model = load_model(checkpoints(Variant.TURBO), device="cpu")
    assert model.variant is Variant.TURBO and model.random_weights
    engine = StreamingEngine(model)
    try:
        pcm, chunks, stats = await synthesize(
            engine, "Turbo speaks quickly. Then it stops.", seed=1
        )
    finally:
        engine.close()
    assert len(chunks) >= 2
    assert len(pcm) == (stats.speech_tokens + 3) * 960  # upstream's three closing silence tokens


def test_turbo_needs_more_than_five_seconds_of_reference(checkpoints: Checkpoints) -> None:
    model = load_model(checkpoints(Variant.TURBO), device="cpu")
    with pytest.raises(InvalidRequestError, match="longer than 5 s"):
        compute_conditioning(model, reference_clip(4.0), 24000)
    voice = compute_conditioning(model, reference_clip(7.0), 24000)
    assert voice.t3.cond_prompt_speech_tokens.shape[1] <= 375


async def test_multilingual_speaks_the_language_asked_for(checkpoints: Checkpoints) -> None:
    model = load_model(checkpoints(Variant.MULTILINGUAL), device="cpu")
    engine = StreamingEngine(model)
    try:
        french, _, _ = await synthesize(engine, "Bonjour à tous.", seed=1, language="fr")
        for language in (None, "xx"):
            with pytest.raises(InvalidRequestError) as error:
                await engine.synthesize("Bonjour", SynthesisParams(language=language))
            assert error.value.field == "language"
    finally:
        engine.close()
    assert len(french) > 0
    # The language token reaches T3: the logits differ between languages.
    logits = [
        logits_after_one_step(
            model, Request("Bonjour à tous.", SynthesisParams(language=language, seed=1))
        )
        for language in ("fr", "de")
    ]
    assert not torch.allclose(logits[0], logits[1])
