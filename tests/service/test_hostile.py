"""Hostile input through the real service: every answer is a 4xx that names what is wrong,
never a 500 (nor a dropped connection)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import websockets

from tests.support.server import API_KEY, Server

DEEP = b"[" * 5000 + b"]" * 5000  # a RecursionError in json.loads: 500 before
COMBINING = "\u0301" * 210  # 210 characters, 420 bytes: OSError: File name too long before
NO_BOUNDARY = {"content-type": "multipart/form-data"}
WIDE = "語" * 100  # 100 characters (under the limit), 300 bytes (over every file system's)


@pytest.fixture(autouse=True)
def idle(server: Server) -> None:
    server.wait_idle()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


def test_a_deeply_nested_body_is_refused_naming_the_body(server: Server) -> None:
    for body in (DEEP, b'{"text": ' * 3000 + b'"x"' + b"}" * 3000):
        response = httpx.post(f"{server.url}/tts/generate", content=body, headers=server.headers)
        error = error_of(response, 422)
        assert error["field"] == "body" and "levels deep" in error["message"]
    openai = httpx.post(f"{server.url}/v1/audio/speech", content=DEEP, headers=server.headers)
    assert error_of(openai, 400)["code"] == "invalid_json"


@pytest.mark.parametrize("voice_id", [COMBINING, WIDE, "a\x00b", ".prepared", "x\u202e.wav"])
@pytest.mark.parametrize(("method", "path"), [("GET", ""), ("DELETE", ""), ("GET", "/audio")])
def test_a_bad_voice_id_in_the_path_is_a_400_naming_it(
    server: Server, voice_id: str, method: str, path: str
) -> None:
    url = f"{server.url}/voices/{quote(voice_id, safe='')}{path}"
    error = error_of(httpx.request(method, url, headers=server.headers), 400)
    assert error["code"] == "invalid_voice_id" and error["field"] == "voice_id"


@pytest.mark.parametrize("voice_id", [COMBINING, WIDE])
def test_a_bad_voice_id_is_refused_wherever_an_id_is_taken(server: Server, voice_id: str) -> None:
    speech = httpx.post(f"{server.url}/tts/generate", headers=server.headers,
                        json={"text": "Hi.", "voice_id": voice_id})  # fmt: skip
    assert error_of(speech, 422)["field"] == "voice_id"
    openai = httpx.post(f"{server.url}/v1/audio/speech", headers=server.headers,
                        json={"input": "Hi.", "voice": voice_id})  # fmt: skip
    assert error_of(openai, 400)["param"] == "voice"
    upload = httpx.post(f"{server.url}/voices", headers=server.headers, data={"voice_id": voice_id},
                        files={"file": ("a.wav", b"RIFF")})  # fmt: skip
    assert error_of(upload, 400)["field"] == "voice_id"


def test_bodies_over_the_limit_are_refused_before_they_are_read_whole(server: Server) -> None:
    big = json.dumps({"text": "a" * 1_100_000}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield from (big[i : i + 65536] for i in range(0, len(big), 65536))

    for content in (big, chunks()):
        response = httpx.post(f"{server.url}/tts/generate", content=content, headers=server.headers)
        error = error_of(response, 413)
        assert error["code"] == "too_large" and "MAX_REQUEST_BYTES" in error["message"]
    openai = httpx.post(f"{server.url}/v1/audio/speech", content=big, headers=server.headers)
    assert "MAX_REQUEST_BYTES" in error_of(openai, 413)["message"]
    upload = httpx.post(f"{server.url}/voices", headers=server.headers,
                        files={"file": ("big.wav", b"\0" * 2_100_000)})  # fmt: skip
    assert "MAX_VOICE_UPLOAD_BYTES" in error_of(upload, 413)["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"text": "Hi \\ud800 there"}', "text"),  # would not encode for the worker
        (b'{"text": "Hi", "seed": ' + b"9" * 5000 + b"}", "body"),  # int() refuses 4300+ digits
        (b'{"text": "Hi", "\\udc00": 1}', None),  # a key the error message must quote
        (b"\xff\xfe{}", "body"),
    ],
)
def test_text_the_codecs_refuse_is_a_422(server: Server, body: bytes, field: str | None) -> None:
    response = httpx.post(f"{server.url}/tts/generate", content=body, headers=server.headers)
    assert error_of(response, 422).get("field") == field


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"method": "GET", "url": "/voices/%ED%A0%80"}, 400),  # not UTF-8
        ({"method": "GET", "url": "/tts/generate?text=hi&voice_id=%ED%A0%80"}, 422),
        ({"method": "GET", "url": "/tts/generate?text=hi&sample_rate=" + "9" * 5000}, 422),
        ({"method": "GET", "url": "/tts/generate?text=hi&seed=" + "9" * 5000}, 422),
        ({"method": "POST", "url": "/voices", "content": b"--x", "headers": NO_BOUNDARY}, 400),
        ({"method": "POST", "url": "/voices", "files": {"file": ("a\0.wav", b"RIFF")}}, 400),
    ],
)
def test_other_malformed_requests_are_4xx(
    server: Server, request_args: dict[str, Any], status: int
) -> None:
    headers = {**server.headers, **request_args.pop("headers", {})}
    url = server.url + request_args.pop("url")
    response = httpx.request(**request_args, url=url, headers=headers)
    assert response.status_code == status, response.text
    assert "error" in response.json()


async def test_a_websocket_refuses_hostile_messages_and_stays_open(server: Server) -> None:
    async with websockets.connect(f"{server.ws_url}?api_key={API_KEY}") as ws:
        for message, code, field in [
            (DEEP.decode(), "invalid_message", None),
            (json.dumps({"type": "start", "voice_id": WIDE}), "invalid_request", "voice_id"),
            ('{"text": "Hi \\ud800"}', "invalid_request", "text"),
        ]:
            await ws.send(message)
            event = json.loads(await ws.recv())
            assert (event["type"], event["code"], event.get("field")) == ("error", code, field)


async def test_a_websocket_message_over_max_request_bytes_closes_the_connection(
    server: Server,
) -> None:
    async with websockets.connect(f"{server.ws_url}?api_key={API_KEY}") as ws:
        await ws.send(json.dumps({"type": "text", "text": "a" * 1_100_000}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
