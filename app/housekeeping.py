"""The master's housekeeping of the voices volume: prepared data no voice uses is swept
(common.voices.sweep) at start-up and every ``PREPARED_SWEEP_INTERVAL_SECONDS``. Every master
on a shared volume sweeps; the sweep is safe against the others and against requests in flight.
"""

from __future__ import annotations

import asyncio
import logging

from common.settings import Settings
from common.voices.library import VoiceLibrary
from common.voices.sweep import sweep_prepared

log = logging.getLogger(__name__)


async def sweep_periodically(library: VoiceLibrary, settings: Settings) -> None:
    """Runs until cancelled (the app's lifespan ends); a failed sweep is retried next time."""
    while True:
        try:
            swept = await asyncio.to_thread(
                sweep_prepared, library, settings.prepared_sweep_grace_seconds
            )
        except OSError as error:  # e.g. a voice that cannot be read: nothing was removed
            log.warning("prepared voice data not swept: %s", error)
        else:
            if swept.marked or swept.removed:
                log.info(
                    "prepared voice data: %d entries unused since this sweep, %d removed",
                    swept.marked,
                    swept.removed,
                )
        await asyncio.sleep(settings.prepared_sweep_interval_seconds)
