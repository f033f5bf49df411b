"""ElevenLabs' ``output_format`` and ``voice_settings`` in our terms.

``output_format`` is ElevenLabs' list (the ``elevenlabs`` SDKs' ``OutputFormat``), each made by
our encoders at its rate and bit rate: ``mp3_<rate>_<kbps>``, ``pcm_<rate>`` (raw s16le),
``wav_<rate>``, ``opus_48000_<kbps>`` (Ogg Opus), ``ulaw_8000`` and ``alaw_8000`` (bare 8 kHz
G.711). ``voice_settings``: ``speed`` is the tempo (pitch kept); ``style`` (0-1) sets
Chatterbox's ``exaggeration`` (0.25 + style, so ElevenLabs' default 0 is calm); ``stability``,
``similarity_boost`` and ``use_speaker_boost`` have no Chatterbox counterpart and are ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..audio.encoding import with_bit_rate
from ..audio.tempo import MAX_SPEED, MIN_SPEED

PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
KBPS = (32, 64, 96, 128, 192)
DEFAULT_FORMAT = "mp3_44100_128"


def _table() -> dict[str, tuple[str, int]]:
    """Every ElevenLabs output format: our format (with its bit rate) and sample rate."""
    table: dict[str, tuple[str, int]] = {
        "mp3_22050_32": (with_bit_rate("mp3", 32000), 22050),
        "mp3_24000_48": (with_bit_rate("mp3", 48000), 24000),
        "ulaw_8000": ("mulaw", 8000),
        "alaw_8000": ("alaw", 8000),
    }
    for kbps in KBPS:
        table[f"mp3_44100_{kbps}"] = (with_bit_rate("mp3", kbps * 1000), 44100)
        table[f"opus_48000_{kbps}"] = (with_bit_rate("ogg", kbps * 1000), 48000)
    for rate in PCM_RATES:
        table[f"pcm_{rate}"] = ("raw_pcm", rate)
        table[f"wav_{rate}"] = ("wav", rate)
    return table


OUTPUT_FORMATS = _table()


class BadSetting(ValueError):
    """A value a client sent that cannot be used; ``str()`` says which and why."""


def output_format(value: str | None) -> tuple[str, int]:
    """Our (format, sample_rate) for ElevenLabs' ``output_format``."""
    name = value or DEFAULT_FORMAT
    if name in OUTPUT_FORMATS:
        return OUTPUT_FORMATS[name]
    raise BadSetting(
        f"output_format {name[:40]!r} is not supported; use one of {', '.join(OUTPUT_FORMATS)}"
    )


class VoiceSettings(BaseModel):
    """ElevenLabs' ``voice_settings``: the fields with a Chatterbox counterpart, strictly typed;
    the others (``stability`` ...) are ignored."""

    model_config = ConfigDict(strict=True, frozen=True)

    style: float | None = Field(None, ge=0, le=1)
    speed: float | None = Field(None, ge=MIN_SPEED, le=MAX_SPEED)

    def params(self) -> dict[str, Any]:
        """Our synthesis parameters for them."""
        return {} if self.style is None else {"exaggeration": 0.25 + self.style}

    @property
    def tempo(self) -> float:
        return 1.0 if self.speed is None else self.speed
