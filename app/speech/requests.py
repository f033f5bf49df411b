"""Request bodies and query strings, validated before any response starts (torch-free).

The synthesis parameters are the engine's own :class:`SynthesisParams` (names and aliases of the
specification), filled with this deployment's ``TTS_*`` defaults; this module adds what only the
HTTP/WebSocket layer knows (text, voice, format) and turns pydantic errors into one message that
names the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ValidationError
from pydantic_core import PydanticCustomError

from common.audio import SAMPLE_RATE
from common.params import SynthesisParams, field_aliases
from common.settings import Settings
from common.validation import first_problem
from common.voices.errors import VoiceError
from common.voices.library import check_voice_id

from ..audio.encoding import FORMATS, output_rate

REQUEST_FIELDS = ("text", "voice_id", "format", "sample_rate", "api_key", "type")


class InvalidRequest(Exception):
    """A 422: ``field`` is the parameter at fault, ``str()`` says what is wrong with it."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


class SpeechRequest:
    """A validated synthesis request: text (None when it will stream in) or a source to convert,
    voice, format, params."""

    def __init__(
        self,
        text: str | None,
        voice_id: str | None,
        audio_format: str,
        sample_rate: int | None,
        params: SynthesisParams,
        source: bytes | None = None,
    ) -> None:
        """``source``: a voice conversion's recording, mono float32 at 16 kHz (no text then)."""
        self.text = text
        self.source = source
        self.voice_id = voice_id
        self.format = audio_format
        self.sample_rate = sample_rate  # None: the model's own rate (mulaw: 8000)
        self.params = params


def parse_speech_request(
    data: dict[str, Any], settings: Settings, text_required: bool = True
) -> SpeechRequest:
    """Validate a query string or JSON body; raise InvalidRequest naming the first bad field."""
    text = data.get("text")
    if text_required or text is not None:
        text = _text(text, settings.max_text_chars)
    voice_id = _voice_id(_given(data.get("voice_id")))
    audio_format = _format(_given(data.get("format"), "wav"))
    sample_rate = _sample_rate(audio_format, data.get("sample_rate"))
    overrides = {k: v for k, v in data.items() if k not in REQUEST_FIELDS}
    for key, value in overrides.items():
        if value == "":
            raise InvalidRequest(key, f"{key} is empty")
    try:
        params = settings.synthesis_defaults(**overrides)
    except ValidationError as error:
        field, message = first_problem(error.errors())
        given = {name: alias for alias, name in field_aliases().items() if alias in overrides}
        if field in given:  # name it as the client did (synthesis_temperature, not temperature)
            field = given[field]
            message = f"{field}: {error.errors()[0]['msg']}"
        if error.errors()[0]["type"] == "extra_forbidden":
            message = f"{field}: unknown parameter {field!r}"
        raise InvalidRequest(field, message) from None
    return SpeechRequest(text, voice_id, audio_format, sample_rate, params)


def text_piece(text: object) -> str:
    """Text as it may go to a worker: a string that UTF-8 can encode."""
    if not isinstance(text, str):
        raise InvalidRequest("text", "text must be a string")
    if problem := _unencodable(text):
        raise InvalidRequest("text", f"text {problem}")
    return text


def _unencodable(text: str) -> str | None:
    """What keeps ``text`` from UTF-8 (JSON's ``\\ud800`` escapes can make such a string), or
    None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return (
            f"has an unpaired surrogate (U+{ord(text[error.start]):04X}) at character "
            f"{error.start}: send Unicode characters, not half of a UTF-16 pair"
        )
    return None


def _encodable(text: str) -> str:
    if problem := _unencodable(text):
        raise PydanticCustomError("unpaired_surrogate", "{problem}", {"problem": problem})
    return text


# A text field of a pydantic model, as :func:`text_piece` checks it.
SpeakableText = Annotated[str, AfterValidator(_encodable)]


def _text(text: object, limit: int) -> str:
    if text is None:
        raise InvalidRequest("text", "text is required")
    text = text_piece(text)
    if not any(ch.isalnum() for ch in text):
        raise InvalidRequest("text", "text must contain at least one letter or digit")
    if len(text) > limit:
        raise InvalidRequest(
            "text", f"text is {len(text)} characters; the limit is {limit} (MAX_TEXT_CHARS)"
        )
    return text


def _given(value: object, default: object = None) -> object:
    """``value``, or ``default`` when it was left out (None, or a query string's empty value):
    other falsy values (``0``, ``{}``) are wrong, not absent."""
    return default if value is None or value == "" else value


def _voice_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest("voice_id", "voice_id must be a string")
    try:
        return check_voice_id(value)
    except VoiceError as error:
        raise InvalidRequest("voice_id", str(error)) from None


def _format(value: object) -> str:
    if isinstance(value, str) and value in FORMATS:
        return value
    raise InvalidRequest(
        "format", f"format {value!r} is not supported; use one of {', '.join(FORMATS)}"
    )


def _sample_rate(audio_format: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        rate = int(str(value))
    except ValueError:
        raise InvalidRequest("sample_rate", "sample_rate must be a whole number of Hz") from None
    if rate <= 0:
        raise InvalidRequest("sample_rate", "sample_rate must be a positive number of Hz")
    try:
        output_rate(audio_format, rate, SAMPLE_RATE)
    except ValueError as error:
        raise InvalidRequest("sample_rate", f"sample_rate: {error}") from None
    return rate
