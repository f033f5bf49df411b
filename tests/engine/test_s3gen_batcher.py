"""Which S3Gen windows go in the next batch: plain Python, no model."""

from __future__ import annotations

import asyncio

from worker.engine.s3gen.batcher import WindowJob, pick
from worker.engine.stats import SynthesisStats


def job(arrival: float, first_audio: float | None = None, audio_seconds: float = 0.0) -> WindowJob:
    stats = SynthesisStats()
    stats.first_audio = first_audio
    stats.samples = int(audio_seconds * 24000)
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    return WindowJob(inputs=None, progress=stats, future=future, arrival=arrival)  # type: ignore[arg-type]


async def test_windows_of_requests_without_audio_go_first_in_arrival_order() -> None:
    playing = job(arrival=0.0, first_audio=1.0, audio_seconds=0.5)  # runs dry at 1.5
    late, early = job(arrival=5.0), job(arrival=4.0)
    assert pick([playing, late, early], limit=8, first_limit=8) == [early, late]
    assert pick([playing, late, early], limit=8, first_limit=1) == [early]


async def test_then_the_listeners_who_run_dry_soonest() -> None:
    comfortable = job(arrival=0.0, first_audio=1.0, audio_seconds=9.0)  # dry at 10
    hungry = job(arrival=1.0, first_audio=2.0, audio_seconds=1.0)  # dry at 3
    middle = job(arrival=2.0, first_audio=1.0, audio_seconds=4.0)  # dry at 5
    assert pick([comfortable, hungry, middle], limit=2, first_limit=8) == [hungry, middle]


async def test_windows_of_requests_that_went_away_are_left_out() -> None:
    gone, waiting = job(arrival=0.0), job(arrival=1.0)
    gone.future.cancel()
    assert pick([gone, waiting], limit=8, first_limit=8) == [waiting]
