"""ElevenLabs' ``output_format`` and ``voice_settings`` in our terms.

``pcm_<rate>`` is raw s16le PCM, ``ulaw_8000`` bare 8 kHz µ-law, ``mp3_<rate>_<kbps>`` MP3 at
that rate (our encoder's own 64 kbps: the bit rate named is not honoured). ``voice_settings``:
``speed`` is the tempo (pitch kept); ``style`` (0-1) sets Chatterbox's ``exaggeration`` (0.25 +
style, so ElevenLabs' default 0 is calm); ``stability``, ``similarity_boost`` and
``use_speaker_boost`` have no Chatterbox counterpart and are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..audio.tempo import MAX_SPEED, MIN_SPEED

PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
MP3_RATES = (22050, 44100)
DEFAULT_FORMAT = "mp3_44100_128"
# A few ASCII digits: str.isdigit() takes "²" and int() 4300 digits, neither of which int() can
# turn into a rate.
_PCM = re.compile(r"pcm_([0-9]{1,6})")
_MP3 = re.compile(r"mp3_([0-9]{1,6})_[0-9]{1,6}")


class BadSetting(ValueError):
    """A value a client sent that cannot be used; ``str()`` says which and why."""


def output_format(value: str | None) -> tuple[str, int]:
    """Our (format, sample_rate) for ElevenLabs' ``output_format``."""
    name = value or DEFAULT_FORMAT
    if (pcm := _PCM.fullmatch(name)) and int(pcm[1]) in PCM_RATES:
        return "raw_pcm", int(pcm[1])
    if name == "ulaw_8000":
        return "mulaw", 8000
    if (mp3 := _MP3.fullmatch(name)) and int(mp3[1]) in MP3_RATES:
        return "mp3", int(mp3[1])
    pcm_names = ", ".join(f"pcm_{r}" for r in PCM_RATES)
    raise BadSetting(
        f"output_format {name[:40]!r} is not supported; use one of {pcm_names}, ulaw_8000, "
        "mp3_22050_32 or mp3_44100_<kbps>"
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
