"""Which voice each of OpenAI's voice names speaks here, and how ``/v1/audio/voices`` lists them.

A name in ``OPENAI_VOICE_MAP`` speaks its library voice while that voice exists; every other name
(and a mapped one whose voice is missing: uploaded later, or deleted) speaks
``OPENAI_DEFAULT_VOICE``, or the checkpoint's built-in voice when that is unset. The map is read
per request, so an upload takes effect at once; a missing voice is named in a warning at start
and in the listing's ``unavailable``.
"""

from __future__ import annotations

import logging
from typing import Any

from common.openai_voices import OPENAI_VOICES
from common.settings import Settings
from common.voices.errors import VoiceError
from common.voices.library import VoiceLibrary

log = logging.getLogger(__name__)
BUILT_IN = "the model's built-in voice"


def voice_for(name: str, settings: Settings, library: VoiceLibrary) -> str | None:
    """Our voice id for OpenAI's ``name`` (lower case); None: the built-in voice."""
    mapped = settings.openai_voice_aliases.get(name)
    if mapped is not None and _stored_id(mapped, library) is not None:
        return mapped
    return settings.openai_default_voice


def listing(settings: Settings, library: VoiceLibrary) -> list[dict[str, Any]]:
    """One entry per OpenAI name: ``alias_of`` the voice it speaks now."""
    default = settings.openai_default_voice or BUILT_IN
    aliases = settings.openai_voice_aliases
    entries = []
    for name in OPENAI_VOICES:
        entry: dict[str, Any] = {"voice_id": name, "name": name, "alias_of": default}
        if (mapped := aliases.get(name)) is not None:
            stored = _stored_id(mapped, library)
            if stored is None:
                entry["unavailable"] = mapped  # mapped, but no such voice: the default speaks
            else:
                entry["alias_of"] = stored
        entries.append(entry)
    return entries


def warn_about_missing(settings: Settings, library: VoiceLibrary) -> None:
    """Name each mapped voice that is not in the library, and what speaks instead."""
    fallback = settings.openai_default_voice or BUILT_IN
    for name, voice_id in settings.openai_voice_aliases.items():
        if _stored_id(voice_id, library) is None:
            log.warning(
                "OPENAI_VOICE_MAP: %s=%s names no voice in the library; %s speaks %s until a "
                "voice %s is uploaded",
                name, voice_id, name, fallback, voice_id,
            )  # fmt: skip


def _stored_id(voice_id: str, library: VoiceLibrary) -> str | None:
    try:
        return library.find(voice_id).voice_id
    except VoiceError:
        return None
