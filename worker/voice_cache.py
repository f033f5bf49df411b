"""Each worker's cache of voice conditioning, computed once per voice file and kept on device.

Keyed by voice id and the file's size and modification time, so a replaced file is never served
stale even if an invalidation message was missed; bounded (least recently used goes first) so
many voices cannot exhaust GPU memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path

from .engine.conditioning import VoiceConditioning, compute_conditioning, load_reference
from .engine.errors import AudioDecodeError, InvalidRequestError
from .engine.loading import LoadedModel
from .engine.s3gen_stream import SAMPLE_RATE
from .messages import ErrorCode

log = logging.getLogger(__name__)
Key = tuple[str, str, int, int]


class VoiceUnavailableError(Exception):
    """The voice's file is gone or cannot be used; ``str()`` is fit for a client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class VoiceCache:
    def __init__(self, model: LoadedModel, max_voices: int = 64) -> None:
        self.model = model
        self.max_voices = max_voices
        self._entries: OrderedDict[Key, VoiceConditioning] = OrderedDict()
        self._lock = asyncio.Lock()

    async def get(self, voice_id: str, path: str) -> VoiceConditioning:
        """The conditioning of the voice in ``path``, computed in a thread on first use."""
        try:
            stat = Path(path).stat()
        except OSError as error:
            message = f"voice {voice_id!r} does not exist"
            raise VoiceUnavailableError("voice_not_found", message) from error
        key = (voice_id, path, stat.st_mtime_ns, stat.st_size)
        async with self._lock:  # one computation at a time; a second request waits and reuses it
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            voice = await asyncio.get_running_loop().run_in_executor(None, self._compute, path)
            self._forget(voice_id)
            self._entries[key] = voice
            while len(self._entries) > self.max_voices:
                self._entries.popitem(last=False)
            return voice

    def invalidate(self, voice_id: str) -> None:
        self._forget(voice_id)

    def _forget(self, voice_id: str) -> None:
        for key in [k for k in self._entries if k[0] == voice_id]:
            del self._entries[key]

    def _compute(self, path: str) -> VoiceConditioning:
        try:
            if path.endswith(".pt"):
                return VoiceConditioning.load(path, self.model.device)
            return compute_conditioning(self.model, load_reference(path), SAMPLE_RATE)
        except (AudioDecodeError, InvalidRequestError) as error:
            raise VoiceUnavailableError("voice_unreadable", f"voice unusable: {error}") from error
