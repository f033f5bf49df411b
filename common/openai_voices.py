"""OpenAI's voice names, and ``OPENAI_VOICE_MAP``: which library voice each of them speaks.

Some clients (Pipecat's ``OpenAITTSService``) refuse any voice outside OpenAI's names before a
request leaves them, so a cloned voice is reachable from them only through one of those names.
The map is checked when the settings are read (a name OpenAI does not have, or a malformed
pair, stops the start); whether its voices exist is the master's business, since voices come
and go while it runs.
"""

from __future__ import annotations

OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage",
                 "shimmer", "verse", "marin", "cedar")  # fmt: skip


def parse_voice_map(raw: str) -> dict[str, str]:
    """``"alloy=anna,nova=bob.wav"`` as ``{"alloy": "anna", "nova": "bob.wav"}``.

    Names are OpenAI's (any case); values are voice ids (the extension may be left out). Raises
    ValueError naming the pair at fault.
    """
    mapping: dict[str, str] = {}
    for pair in (part.strip() for part in raw.split(",")):
        if not pair:
            continue
        name, sep, voice = (text.strip() for text in pair.partition("="))
        if not sep or not name or not voice:
            raise ValueError(f"{pair!r} is not NAME=VOICE_ID (e.g. alloy=anna.wav)")
        name = name.lower()
        if name not in OPENAI_VOICES:
            raise ValueError(f"{name!r} is not one of OpenAI's voices: {', '.join(OPENAI_VOICES)}")
        if name in mapping:
            raise ValueError(f"{name!r} is mapped twice")
        mapping[name] = voice
    return mapping
