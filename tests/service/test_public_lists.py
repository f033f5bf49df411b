"""``PUBLIC_LISTS``: with a key set, voice and model lists answer without one when it is on
(Open WebUI lists without a key), and only then; speech needs the key either way. In process:
lists need no worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.pool import WorkerPool
from common.settings import Settings
from tests.support.voices import clip_bytes

LISTS = ("/v1/audio/voices", "/v1/audio/models", "/v1/models", "/v1/voices", "/v2/voices",
         "/v1/voices/anna.wav", "/get_predefined_voices", "/get_reference_files",
         "/api/ui/initial-data")  # fmt: skip
SPEECH = (
    ("/v1/audio/speech", {"input": "Hi."}),
    ("/tts", {"text": "Hi."}),
    ("/v1/text-to-speech/anna.wav", {"text": "Hi."}),
    ("/tts/generate", {"text": "Hi."}),
)


def _client(tmp_path: Path, public: bool) -> Iterator[TestClient]:
    (tmp_path / "voices").mkdir(exist_ok=True)
    (tmp_path / "preloaded").mkdir(exist_ok=True)
    (tmp_path / "preloaded" / "anna.wav").write_bytes(clip_bytes(tmp_path))
    settings = Settings(_env_file=None, api_key="k", public_lists=public, tts_server_routes=True,
                        voices_dir=tmp_path / "voices", preloaded_voices_dir=tmp_path / "preloaded")  # type: ignore[call-arg]  # fmt: skip
    pool = WorkerPool(settings, slots=[])
    try:
        yield TestClient(create_app(settings, pool))  # no lifespan: no worker is started
    finally:
        pool.transport.close()


@pytest.fixture
def public(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, public=True)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, public=False)


def test_lists_are_read_without_a_key_only_when_public(
    public: TestClient, keyed: TestClient
) -> None:
    for path in LISTS:
        assert public.get(path).status_code == 200, path
        assert keyed.get(path).status_code == 401, path
        assert keyed.get(path, headers={"X-API-Key": "k"}).status_code == 200, path
    assert "anna.wav" in {v["id"] for v in public.get("/v1/audio/voices").json()["voices"]}
    assert public.get("/v1/voices/ghost.wav").status_code == 404


def test_speech_needs_the_key_even_when_lists_are_public(public: TestClient) -> None:
    for path, body in SPEECH:
        assert public.post(path, json=body).status_code == 401, path
