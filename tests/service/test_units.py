"""Plumbing of the master that needs no processes: keys, request parsing (the worker plan:
tests/deployment/test_gpu_pinning.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.audio.headers import format_from_accept
from app.speech.errors import SpeechError
from app.speech.requests import InvalidRequest, SpeechRequest, parse_speech_request
from app.speech.utterance import Utterance
from app.web.auth import key_matches, startup_problem
from app.web.errors import speech_api_error
from app.web.json_body import InvalidJson, parse_json_object
from common.log_setup import redact
from common.params import SynthesisParams
from common.settings import Settings
from common.voices.library import VoiceLibrary


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_any_configured_key_matches_and_nothing_else() -> None:
    keys = Settings(_env_file=None, api_key=" a1 , b2 ").api_keys  # type: ignore[call-arg]
    assert keys == ["a1", "b2"]
    assert key_matches("b2", keys) and not key_matches("b", keys)
    assert not key_matches("a1 ", keys)


def test_running_open_needs_loopback_or_an_explicit_choice() -> None:
    assert startup_problem(settings(host="0.0.0.0")) is not None
    assert startup_problem(settings(host="127.0.0.1")) is None
    assert startup_problem(settings(host="0.0.0.0", api_key="k")) is None
    assert startup_problem(settings(host="0.0.0.0", allow_unauthenticated=True)) is None


def test_deployment_defaults_fill_what_a_request_leaves_out() -> None:
    request = parse_speech_request(
        {"text": "Hi.", "synthesis_temperature": "0.6"}, settings(tts_cfg_guidance_weight=0.9)
    )
    assert request.params.temperature == 0.6 and request.params.cfg_weight == 0.9
    assert request.format == "wav" and request.voice_id is None


def test_a_streaming_start_may_come_without_text_but_a_request_may_not() -> None:
    assert parse_speech_request({}, settings(), text_required=False).text is None
    with pytest.raises(InvalidRequest) as error:
        parse_speech_request({}, settings())
    assert error.value.field == "text"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 5000 + b"]" * 5000, "levels deep"),  # RecursionError in the parser
        (b'{"a": ' + b"[" * 16 + b"]" * 16 + b"}", "levels deep"),  # 17 levels: over the bound
        (b'{"seed": ' + b"9" * 5000 + b"}", "4300 digits"),  # ValueError in int()
        (b"\xff{}", "must be a JSON object"),
        (b"[1, 2]", "not list"),
        (b"{", "line 1, column 2"),
    ],
)
def test_json_bodies_are_parsed_within_bounds(body: bytes, problem: str) -> None:
    with pytest.raises(InvalidJson) as refused:
        parse_json_object(body)
    assert problem in str(refused.value)
    assert parse_json_object(b'{"a": ' + b"[" * 15 + b"]" * 15 + b"}")  # 16 levels: allowed


def test_accept_q_values_outside_zero_to_one_exclude_the_type() -> None:
    assert format_from_accept("audio/wav;q=nan, audio/mpeg;q=1e999, audio/flac;q=0.5") == "flac"
    assert format_from_accept("audio/wav;q=-1") is None


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        ('1.2.3.4:5 - "WebSocket /tts/stream?api_key=k%20y&x=1" [accepted]',
         '1.2.3.4:5 - "WebSocket /tts/stream?api_key=***&x=1" [accepted]'),
        ("/p?XI-API-KEY=k;token=t&key=k&Authorization=Bearer%20k",
         "/p?XI-API-KEY=***;token=***&key=***&Authorization=***"),
        ('{"message": "\\"GET /v1?xi_api_key=k HTTP/1.1\\" 401"}',  # a JSON line stays JSON
         '{"message": "\\"GET /v1?xi_api_key=*** HTTP/1.1\\" 401"}'),
        ("Authorization: Bearer sk-1", "Authorization: Bearer ***"),
        ("monkey=1 hotkey=2 keys=3", "monkey=1 hotkey=2 keys=3"),  # not key parameters
    ],
)  # fmt: skip
def test_log_lines_lose_every_key(line: str, redacted: str) -> None:
    assert redact(line) == redacted


async def test_a_voice_deleted_while_its_request_starts_is_a_404_naming_it(
    tmp_path: Path,
) -> None:
    """Found, then gone before its clip was read (another master deleted it): a 500 before."""
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    clip = tmp_path / "voices" / "gone.wav"
    clip.parent.mkdir(exist_ok=True)
    clip.write_bytes(b"RIFF")  # found by name; deleted below before it is read
    voice = library.find("gone.wav")
    clip.unlink()
    library.find = lambda voice_id: voice  # type: ignore[method-assign]
    request = SpeechRequest("Hi.", "gone.wav", "wav", None, SynthesisParams())
    with pytest.raises(SpeechError) as refused:
        await Utterance.begin(request, pool=None, library=library)  # type: ignore[arg-type]
    error = speech_api_error(refused.value)
    assert error.status == 404 and error.field == "voice_id"
    assert "deleted" in error.message
