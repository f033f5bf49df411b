"""Driving the streaming engine in tests."""

from __future__ import annotations

import numpy as np

from common.params import SynthesisParams
from worker.engine.pipeline import StreamingEngine, SynthesisStats

# A request decoded beside others against alone: batched matrix products may differ in the last
# bits (measured on the tiny checkpoints: mel 2.3e-6, audio 1.4e-7 at most).
BATCH_TOLERANCE = 2e-5


async def synthesize(
    engine: StreamingEngine, text: str, voice: object = None, **params: object
) -> tuple[np.ndarray, list[np.ndarray], SynthesisStats]:
    """Run one request to the end: (all PCM, the chunks, the stats)."""
    stats = SynthesisStats()
    chunks = [
        c.pcm
        async for c in await engine.synthesize(
            text,
            SynthesisParams(**params),
            voice,
            stats,  # type: ignore[arg-type]
        )
    ]
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return pcm, chunks, stats
