"""The voice library through the real service: upload, list, use, overwrite, delete, share."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.audio_files import write_audio
from tests.support.server import SAMPLES_PER_TOKEN, Server, parse_wav
from tests.support.voices import clip_bytes, speak, upload


@pytest.fixture(autouse=True)
def idle(server: Server) -> None:
    server.wait_idle()


def test_upload_list_inspect_use_download_and_delete(server: Server, tmp_path: Path) -> None:
    data = clip_bytes(tmp_path, 12.0)
    created = upload(server, "maria.wav", data)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["voice_id"] == "maria.wav" and body["message"] == "Voice uploaded successfully."
    assert "first 10 s" in body["notes"][0]  # the model uses only the start of a long clip
    listed = httpx.get(f"{server.url}/voices", headers=server.headers).json()
    assert "maria.wav" in listed
    assert speak(server, "maria.wav").status_code == 200
    detail = httpx.get(f"{server.url}/voices/maria.wav", headers=server.headers).json()
    assert detail["preloaded"] is False and detail["size_bytes"] == len(data)
    assert 11.0 < detail["duration_seconds"] <= 12.0 and detail["sample_rate"] == 24000
    assert detail["prepared_for"] == ["chatterbox"]  # stored beside the voice after first use
    details = httpx.get(f"{server.url}/voices", params={"details": "true"},
                        headers=server.headers).json()  # fmt: skip
    assert any(v["voice_id"] == "maria.wav" for v in details)
    audio = httpx.get(f"{server.url}/voices/maria.wav/audio", headers=server.headers)
    assert audio.content == data and audio.headers["content-type"] == "audio/wav"
    deleted = httpx.delete(f"{server.url}/voices/maria.wav", headers=server.headers)
    assert deleted.json() == {"message": "Voice 'maria.wav' deleted successfully."}
    assert httpx.get(f"{server.url}/voices/maria.wav", headers=server.headers).status_code == 404
    assert speak(server, "maria.wav").status_code == 404


def test_an_existing_id_needs_overwrite_and_then_speaks_with_the_new_clip(
    server: Server, tmp_path: Path
) -> None:
    assert upload(server, "ben.wav", clip_bytes(tmp_path, seed=1)).status_code == 201
    before = speak(server, "ben.wav").content
    conflict = upload(server, "ben.wav", clip_bytes(tmp_path, seed=2))
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    replaced = upload(server, "ben.wav", clip_bytes(tmp_path, seed=2), overwrite="true")
    assert replaced.status_code == 201
    after = speak(server, "ben.wav").content
    assert after != before


def test_preloaded_voices_are_listed_and_read_only(server: Server, tmp_path: Path) -> None:
    (server.preloaded_dir / "narrator.wav").write_bytes(clip_bytes(tmp_path, seed=3))
    detail = httpx.get(f"{server.url}/voices/narrator.wav", headers=server.headers).json()
    assert detail["preloaded"] is True
    assert speak(server, "narrator").status_code == 200
    refused = httpx.delete(f"{server.url}/voices/narrator.wav", headers=server.headers)
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("name", "make", "status"),
    [
        ("text.wav", lambda tmp: b"this is not audio at all" * 10, 415),
        ("empty.wav", lambda tmp: b"", 415),
        ("short.wav", lambda tmp: clip_bytes(tmp, 0.6), 422),
        ("silent.wav", lambda tmp: silence(tmp), 422),
        ("long.mp3", lambda tmp: clip_bytes(tmp, 31.0, suffix=".mp3"), 422),
        ("huge.wav", lambda tmp: b"\0" * 2_100_000, 413),
        ("../escape.wav", lambda tmp: clip_bytes(tmp), 400),
        (".hidden.wav", lambda tmp: clip_bytes(tmp), 400),
        ("bell\a.wav", lambda tmp: clip_bytes(tmp), 400),
        ("\u202eevil.wav", lambda tmp: clip_bytes(tmp), 400),
        ("x" * 200 + ".wav", lambda tmp: clip_bytes(tmp), 400),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_written(
    server: Server, tmp_path: Path, name: str, make: object, status: int
) -> None:
    before = sorted(p.name for p in server.voices_dir.iterdir())
    response = httpx.post(f"{server.url}/voices", headers=server.headers, timeout=60,
                          files={"file": ("upload.wav", io.BytesIO(make(tmp_path)))},  # type: ignore[operator]
                          data={"voice_id": name})  # fmt: skip
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    assert sorted(p.name for p in server.voices_dir.iterdir()) == before


def silence(tmp_path: Path) -> bytes:
    path = tmp_path / "silence.wav"
    write_audio(path, np.zeros(24000 * 3, dtype=np.float32), 24000)
    return path.read_bytes()


def test_a_unicode_name_is_a_valid_voice_id(server: Server, tmp_path: Path) -> None:
    response = upload(server, "Zoë Ångström.mp3", clip_bytes(tmp_path, suffix=".mp3"))
    assert response.status_code == 201
    assert response.json()["voice_id"] == "Zoë Ångström.mp3"
    assert speak(server, "Zoë Ångström").status_code == 200


def test_deleting_a_voice_that_is_speaking_lets_the_stream_finish(
    server: Server, tmp_path: Path
) -> None:
    assert upload(server, "leaving.wav", clip_bytes(tmp_path, seed=4)).status_code == 201
    params = {"text": "Goodbye.", "voice_id": "leaving.wav", "fixed_token_count": 150}
    with httpx.stream("GET", f"{server.url}/tts/generate", params=params,
                      headers=server.headers, timeout=120) as response:  # fmt: skip
        chunks = response.iter_bytes()
        body = next(chunks)
        deleted = httpx.delete(f"{server.url}/voices/leaving.wav", headers=server.headers)
        assert deleted.status_code == 200
        body += b"".join(chunks)
    assert len(parse_wav(body)[1]) == 150 * SAMPLES_PER_TOKEN


async def test_deleting_a_voice_reaches_every_workers_cache(server: Server, tmp_path: Path) -> None:
    assert upload(server, "shared.wav", clip_bytes(tmp_path, seed=5)).status_code == 201
    params = {"text": "Both of us.", "voice_id": "shared.wav", "fixed_token_count": 60}
    async with httpx.AsyncClient(headers=server.headers, timeout=120) as client:
        responses = await asyncio.gather(
            *(client.get(f"{server.url}/tts/generate", params=params) for _ in range(2))
        )
    assert {r.headers["x-worker-id"] for r in responses} == {"cpu-w0", "cpu-w1"}
    assert all("shared.wav" in w["cached_voices"] for w in cached(server))
    httpx.delete(f"{server.url}/voices/shared.wav", headers=server.headers)
    deadline = time.monotonic() + 5
    while any("shared.wav" in w["cached_voices"] for w in cached(server)):
        assert time.monotonic() < deadline, "a worker kept the deleted voice"
        await asyncio.sleep(0.1)


def cached(server: Server) -> list[dict[str, object]]:
    time.sleep(1.1)  # a heartbeat carries the worker's cache
    return list(server.status()["workers"])


def test_a_name_without_extension_gets_the_uploads_real_format(
    server: Server, tmp_path: Path
) -> None:
    data = clip_bytes(tmp_path, seed=6, suffix=".mp3")
    response = upload(server, "blob", data, voice_id="plain")
    assert response.status_code == 201 and response.json()["voice_id"] == "plain.mp3"


def test_a_stray_file_in_the_volume_does_not_break_listing(server: Server) -> None:
    (server.voices_dir / "notes.txt").write_text("not a voice")
    (server.voices_dir / "bad.wav").write_bytes(b"not audio either")
    listed = httpx.get(f"{server.url}/voices", params={"details": "true"}, headers=server.headers)
    assert listed.status_code == 200
    by_id = {v["voice_id"]: v for v in listed.json()}
    assert "notes.txt" not in by_id and by_id["bad.wav"]["usable"] is False
