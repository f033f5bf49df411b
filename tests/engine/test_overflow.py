"""Text that cannot fit a KV-cache slot fails its own request, clearly, and nobody else's: on an
engine whose slots hold 80 positions, a letter fits a chunk and a digit (1 s + 0.67 s of
budget) does not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from common.params import SynthesisParams
from tests.support.engine import BATCH_TOLERANCE, synthesize
from tests.support.t3 import record_batch_sizes
from worker.engine.errors import InvalidRequestError
from worker.engine.model.loading import LoadedModel
from worker.engine.pipeline import StreamingEngine

OTHERS = [("Hi.", 11), ("Ok.", 12)]  # (text, seed)
TOKENS = 20


@pytest.fixture(scope="module")
def small(english_model: LoadedModel) -> Iterator[StreamingEngine]:
    engine = StreamingEngine(english_model, slots=4, context=80, batch_invariant=True)
    yield engine
    engine.close()


async def test_whole_text_that_cannot_fit_is_refused_before_any_audio(
    small: StreamingEngine,
) -> None:
    with pytest.raises(InvalidRequestError) as error:
        await small.synthesize("Go. 7 more.", SynthesisParams(seed=1))
    assert error.value.field == "text" and "'7'" in str(error.value)
    assert "KV_CACHE_TOKENS" in str(error.value)


async def test_streamed_text_that_cannot_fit_ends_only_its_request(
    small: StreamingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = [(await synthesize(small, t, seed=s, fixed_token_count=TOKENS))[0] for t, s in OTHERS]

    batch_sizes = record_batch_sizes(monkeypatch)
    params = SynthesisParams(seed=9, fixed_token_count=TOKENS)
    feed = small.validate(None, params)
    feed.push("Go. ")
    feed.push("7 ")  # a digit's chunk needs 47 positions beside the prompt; a slot has 41
    spoken: list[np.ndarray] = []

    async def doomed() -> BaseException | None:
        try:
            async for chunk in await small.synthesize(feed, params):
                spoken.append(chunk.pcm)
        except InvalidRequestError as error:
            return error
        return None

    *together, error = await asyncio.gather(
        *(synthesize(small, t, seed=s, fixed_token_count=TOKENS) for t, s in OTHERS), doomed()
    )
    assert isinstance(error, InvalidRequestError) and error.field == "text"
    assert "'7'" in str(error)
    assert 0 < sum(len(p) for p in spoken) <= TOKENS * 960  # "Go." was spoken first
    assert max(batch_sizes) == 3  # it shared T3 steps with the others
    for (pcm, _, _), solo in zip(together, alone, strict=True):
        assert len(pcm) == len(solo) == TOKENS * 960
        assert float(np.max(np.abs(pcm - solo))) <= BATCH_TOLERANCE
