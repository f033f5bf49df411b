"""What hostile clients send to the HTTP routes (tests/service/test_hostile_protocols.py runs
each case against each route, then checks the service after it): every answer is a 4xx in the
route's own error shape naming what is wrong, never a 5xx."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.hostile_sockets import VOICE
from tests.support.hostile_ws_cases import BIG, DEEP, SENTENCES
from tests.support.server import API_KEY, Server

TIMEOUT = httpx.Timeout(60.0)


@dataclass(frozen=True)
class Route:
    name: str
    paths: tuple[str, ...]  # the first takes every case, the others a dropped client too
    long: dict[str, Any]  # a body whose audio goes on for a while
    wrong: list[tuple[str, dict[str, Any], str]]  # (query, body, the parameter its error names)

    @property
    def path(self) -> str:
        return self.paths[0]

    def param(self, response: httpx.Response) -> str | None:
        """The parameter the error names, checking the route's error shape."""
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        body = response.json()
        if self.name == "openai_speech":
            assert set(body["error"]) == {"message", "type", "param", "code"}, body
            return str(body["error"]["param"]) if body["error"]["param"] else None
        if self.name.startswith("elevenlabs"):
            assert set(body["detail"]) == {"status", "message", "param"}, body
            assert "validation error for" not in body["detail"]["message"], body
            return str(body["detail"]["param"]) if body["detail"]["param"] else None
        assert {"code", "message"} <= set(body["error"]), body
        return body["error"].get("field")


TEXTS: list[Any] = [5, True, {}, ["a"], None, "Hi \ud800"]
OPENAI = Route(
    "openai_speech", ("/v1/audio/speech",),
    {"input": SENTENCES, "response_format": "pcm", "fixed_token_count": 2000},
    [
        *(("", {"input": bad}, "input") for bad in TEXTS),
        ("", {"input": ""}, "input"),
        *(("", {"input": "Hi.", name: {}}, name) for name in (
            "model", "voice", "response_format", "speed", "stream_format", "instructions",
            "seed", "exaggeration", "language")),
        ("", {"input": "Hi.", "speed": "fast"}, "speed"),
        ("", {"input": "Hi.", "response_format": "wma"}, "response_format"),
        *(("", {"input": "Hi.", "voice": bad}, "voice") for bad in (
            {"id": 5}, {"name": "anna.wav"}, {"id": "anna.wav", "x": 1}, {"id": "../x"})),
    ],
)  # fmt: skip
OURS = Route(
    "tts_generate", ("/tts/generate",),
    {"text": SENTENCES, "format": "raw_pcm", "fixed_token_count": 2000},
    [
        *(("", {"text": bad}, "text") for bad in TEXTS),
        *(("", {"text": "Hi.", name: {}}, name) for name in (
            "voice_id", "format", "sample_rate", "seed", "language", "exaggeration",
            "cfg_weight", "temperature")),
        ("", {"text": "Hi.", "sample_rate": "fast"}, "sample_rate"),
        ("", {"text": "Hi.", "unheard_of": 1}, "unheard_of"),
    ],
)  # fmt: skip
ELEVENLABS = Route(
    "elevenlabs_stream",
    (f"/v1/text-to-speech/{VOICE}/stream", f"/v1/text-to-speech/{VOICE}/stream/with-timestamps"),
    {"text": SENTENCES},
    [
        *(("", {"text": bad}, "text") for bad in TEXTS),
        ("?output_format=pcm_\u00b2", {"text": "Hi."}, "output_format"),
        ("?output_format=mp3_44100_\u00b2", {"text": "Hi."}, "output_format"),
        ("?output_format=pcm_" + "9" * 5000, {"text": "Hi."}, "output_format"),
        *(("", {"text": "Hi.", "voice_settings": bad}, "voice_settings") for bad in (
            5, "x", [], {"speed": "fast"}, {"speed": 9}, {"style": 7}, {"style": True})),
        *(("", {"text": "Hi.", "seed": bad}, "seed") for bad in ("x", -1, 2**70, 1.5, True)),
        *(("", {"text": "Hi.", "language_code": bad}, "language_code") for bad in (
            5, "x", {}, "de")),
    ],
)  # fmt: skip
ELEVENLABS_WHOLE = Route(
    "elevenlabs_convert",
    (f"/v1/text-to-speech/{VOICE}", f"/v1/text-to-speech/{VOICE}/with-timestamps"),
    ELEVENLABS.long, ELEVENLABS.wrong,
)  # fmt: skip
TTS_SERVER = Route(
    "tts_server", ("/tts",),
    {"text": SENTENCES, "predefined_voice_id": VOICE},
    [
        *(("", {"text": bad, "predefined_voice_id": VOICE}, "text") for bad in TEXTS),
        *(("", {"text": "Hi.", "predefined_voice_id": VOICE, name: {}}, name) for name in (
            "voice_mode", "output_format", "split_text", "chunk_size", "temperature",
            "exaggeration", "cfg_weight", "seed", "speed_factor", "language")),
        ("", {"text": "Hi."}, "predefined_voice_id"),
        ("", {"text": "Hi.", "voice_mode": "clone"}, "reference_audio_filename"),
        ("", {"text": "Hi.", "predefined_voice_id": 5}, "predefined_voice_id"),
        ("", {"text": "Hi.", "predefined_voice_id": "../x.wav"}, "predefined_voice_id"),
        ("", {"text": "Hi.", "predefined_voice_id": VOICE, "output_format": "flac"},
         "output_format"),
        ("", {"text": "Hi.", "predefined_voice_id": VOICE, "chunk_size": 5}, "chunk_size"),
        ("", {"text": "Hi.", "predefined_voice_id": VOICE, "speed_factor": 9}, "speed_factor"),
        ("", {"text": "Hi.", "predefined_voice_id": VOICE, "exaggeration": 9}, "exaggeration"),
        ("", {"text": "Hi.", "predefined_voice_id": VOICE, "language": "de"}, "language"),
    ],
)  # fmt: skip
ROUTES = (OPENAI, OURS, ELEVENLABS, ELEVENLABS_WHOLE, TTS_SERVER)


def _client(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT,
                             headers={"X-API-Key": API_KEY})  # fmt: skip


async def non_json(server: Server, route: Route) -> None:
    async with _client(server) as client:
        for body in (b"not json", b"{", b"", b"[1, 2]", b"null", b'"text"', b"\xff\xfe{}",
                     b"\x00\x01\x02binary", b'{"text": 1e999999}'):  # fmt: skip
            route.param(await client.post(route.path, content=body))


async def deep_json(server: Server, route: Route) -> None:
    async with _client(server) as client:
        for body in DEEP:
            response = await client.post(route.path, content=body.encode())
            assert route.param(response) in (None, "body"), response.text


async def huge_body(server: Server, route: Route) -> None:
    async with _client(server) as client:
        response = await client.post(route.path, content=b'{"text": "' + b"a" * BIG + b'"}')
        assert response.status_code == 413, response.text
        route.param(response)


async def wrong_types(server: Server, route: Route) -> None:
    async with _client(server) as client:
        for query, body, param in route.wrong:
            content = json.dumps(body).encode()  # \ud800 escaped, as httpx's json= cannot
            response = await client.post(route.path + query, content=content)
            assert route.param(response) == param, (body, response.text)


async def drop_mid_audio(server: Server, route: Route) -> None:
    async with _client(server) as client:
        for path in (route.path, route.path + "/with-timestamps")[
            : 2 if route is ELEVENLABS else 1
        ]:
            async with client.stream("POST", path, json=route.long) as response:
                assert response.status_code == 200, await response.aread()
                async for _ in response.aiter_raw():
                    break  # the first bytes, then the connection is dropped


CASES = [(route, case) for case in (non_json, deep_json, huge_body, wrong_types, drop_mid_audio)
         for route in ROUTES]  # fmt: skip
