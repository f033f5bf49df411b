"""ElevenLabs' ``output_format`` and ``voice_settings`` in our terms.

``pcm_<rate>`` is raw s16le PCM, ``ulaw_8000`` bare 8 kHz µ-law, ``mp3_<rate>_<kbps>`` MP3 at
that rate (our encoder's own 64 kbps: the bit rate named is not honoured). ``voice_settings``:
``speed`` is the tempo (pitch kept); ``style`` (0-1) sets Chatterbox's ``exaggeration`` (0.25 +
style, so ElevenLabs' default 0 is calm); ``stability``, ``similarity_boost`` and
``use_speaker_boost`` have no Chatterbox counterpart and are ignored.
"""

from __future__ import annotations

from typing import Any

from ..audio.tempo import MAX_SPEED, MIN_SPEED

PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
MP3_RATES = (22050, 44100)
DEFAULT_FORMAT = "mp3_44100_128"


class BadSetting(ValueError):
    """A value a client sent that cannot be used; ``str()`` says which and why."""


def output_format(value: str | None) -> tuple[str, int]:
    """Our (format, sample_rate) for ElevenLabs' ``output_format``."""
    name = value or DEFAULT_FORMAT
    parts = name.split("_")
    rate = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if parts[0] == "pcm" and len(parts) == 2 and rate in PCM_RATES:
        return "raw_pcm", rate
    if name == "ulaw_8000":
        return "mulaw", 8000
    if parts[0] == "mp3" and len(parts) == 3 and parts[2].isdigit() and rate in MP3_RATES:
        return "mp3", rate
    pcm = ", ".join(f"pcm_{r}" for r in PCM_RATES)
    raise BadSetting(
        f"output_format {name!r} is not supported; use one of {pcm}, ulaw_8000, "
        "mp3_22050_32 or mp3_44100_<kbps>"
    )


def voice_settings(value: object) -> tuple[dict[str, Any], float]:
    """Our synthesis parameters and the tempo for ElevenLabs' ``voice_settings``."""
    if value is None:
        return {}, 1.0
    if not isinstance(value, dict):
        raise BadSetting("voice_settings must be an object")
    params: dict[str, Any] = {}
    style = value.get("style")
    if style is not None:
        if not isinstance(style, int | float) or not 0 <= style <= 1:
            raise BadSetting("voice_settings.style must be a number from 0 to 1")
        params["exaggeration"] = 0.25 + float(style)
    speed = value.get("speed", 1.0)
    if speed is None:
        speed = 1.0
    if not isinstance(speed, int | float) or not MIN_SPEED <= speed <= MAX_SPEED:
        raise BadSetting(f"voice_settings.speed must be from {MIN_SPEED} to {MAX_SPEED}")
    return params, float(speed)
