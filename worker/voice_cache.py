"""Each worker's cache of voice conditioning: memory (LRU) in front of the library's disk copy.

Keyed by the voice's content hash, so an overwritten voice is a different entry and a request
racing the overwrite gets the old voice or the new one, never a mix. Voices with the same
content share an entry, which is listed under each of their ids. On a miss the conditioning
is read from ``.prepared/<hash>/<variant>.pt`` if a worker (of any master on the volume) already
computed it, else computed from the prepared clip and saved there for the next restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path

from common.audio import SAMPLE_RATE, AudioDecodeError
from common.protocol import ErrorCode

from .engine.errors import InvalidRequestError
from .engine.model.conditioning import VoiceConditioning, compute_conditioning, load_reference
from .engine.model.loading import LoadedModel
from .engine.model_loop import ready_for_loops
from .memory import release_free_memory

log = logging.getLogger(__name__)


class VoiceUnavailableError(Exception):
    """The voice's file is gone or cannot be used; ``str()`` is fit for a client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class VoiceCache:
    def __init__(self, model: LoadedModel, max_voices: int = 32) -> None:
        self.model = model
        self.max_voices = max_voices
        # content hash -> (the voice ids it was asked for by, its conditioning)
        self._entries: OrderedDict[str, tuple[set[str], VoiceConditioning]] = OrderedDict()
        self._lock = asyncio.Lock()

    @property
    def voice_ids(self) -> list[str]:
        return sorted({voice_id for owners, _ in self._entries.values() for voice_id in owners})

    async def get(self, voice_id: str, clip: str, content_hash: str) -> VoiceConditioning:
        """The conditioning of the prepared ``clip``, computed (in a thread) at most once."""
        async with self._lock:  # one computation at a time; a second request waits and reuses it
            if content_hash in self._entries:
                self._entries.move_to_end(content_hash)
                owners, voice = self._entries[content_hash]
                owners.add(voice_id)
                return voice
            loop = asyncio.get_running_loop()
            voice = await loop.run_in_executor(None, self._load_or_compute, Path(clip))
            self._entries[content_hash] = ({voice_id}, voice)
            while len(self._entries) > self.max_voices:
                evicted, _ = self._entries.popitem(last=False)
                log.info("voice cache full (%d): dropped %s", self.max_voices, evicted[:12])
            return voice

    def invalidate(self, voice_id: str) -> None:
        """``voice_id`` was deleted or replaced: its entry goes, unless another voice has it."""
        for key, (owners, _) in list(self._entries.items()):
            owners.discard(voice_id)
            if not owners:
                del self._entries[key]

    def _load_or_compute(self, clip: Path) -> VoiceConditioning:
        voice = self._conditioning(clip)
        ready_for_loops(self.model.device)
        release_free_memory()  # what preparing it took, back to the system
        return voice

    def _conditioning(self, clip: Path) -> VoiceConditioning:
        stored = clip.parent / f"{self.model.variant.value}.pt"
        if stored.is_file():
            try:
                return VoiceConditioning.load(stored, self.model.device)
            except Exception as error:  # a file from another version: recompute it
                log.warning("could not load %s (%s); recomputing", stored, error)
        try:
            voice = compute_conditioning(self.model, load_reference(clip), SAMPLE_RATE)
        except FileNotFoundError as error:
            raise VoiceUnavailableError("voice_not_found", "the voice was deleted") from error
        except (AudioDecodeError, InvalidRequestError) as error:
            raise VoiceUnavailableError("voice_unreadable", f"voice unusable: {error}") from error
        try:
            voice.save(stored)  # atomic: concurrent workers write the same content
        except OSError as error:  # a read-only volume: the cache in memory still works
            log.warning("could not store %s: %s", stored, error)
        return voice
