"""OPENAI_VOICE_MAP through the real service: OpenAI's names reach cloned voices (what Pipecat's
OpenAITTSService, which sends only those names, needs), a missing one is named at start and
falls back, and an upload is reached at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from common.openai_voices import OPENAI_VOICES
from common.settings import Settings
from tests.support.server import Server
from tests.support.voices import clip_bytes, upload


@pytest.fixture(scope="module")
def mapped(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker; alloy speaks anna (preloaded), nova a voice not uploaded yet."""
    workdir = tmp_path_factory.mktemp("openai-voices")
    service = Server(english_dir, workdir, openai_voice_map="Alloy=anna, nova=ghost.wav")
    (service.preloaded_dir / "anna.wav").write_bytes(clip_bytes(workdir, seed=3))
    with service.running(log=workdir / "service.log"):
        yield service


def pcm(server: Server, voice: str) -> np.ndarray:
    body = {"input": "Mapped.", "voice": voice, "response_format": "pcm", "seed": 7,
            "fixed_token_count": 12}  # fmt: skip
    response = httpx.post(f"{server.url}/v1/audio/speech", json=body, headers=server.headers,
                          timeout=120)  # fmt: skip
    assert response.status_code == 200, response.text
    return np.frombuffer(response.content, dtype="<i2")


def listing(server: Server) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{server.url}/v1/audio/voices", headers=server.headers, timeout=10)
    return {v["voice_id"]: v for v in response.json()["voices"]}


def test_the_start_names_a_mapped_voice_that_is_missing(mapped: Server) -> None:
    log = (mapped.workdir / "service.log").read_text()
    assert "OPENAI_VOICE_MAP: nova=ghost.wav names no voice in the library" in log
    assert "alloy=anna names no voice" not in log


def test_a_mapped_name_speaks_its_clone_and_the_others_the_default(mapped: Server) -> None:
    alloy, anna, echo = pcm(mapped, "ALLOY"), pcm(mapped, "anna"), pcm(mapped, "echo")
    assert np.array_equal(alloy, anna)
    assert not np.array_equal(alloy, echo)  # echo: the checkpoint's built-in voice
    assert np.array_equal(pcm(mapped, "nova"), echo)  # mapped to a voice not there: fallback


def test_voices_lists_what_each_name_speaks(mapped: Server) -> None:
    voices = listing(mapped)
    assert [name for name in voices if name in OPENAI_VOICES] == list(OPENAI_VOICES)
    assert voices["alloy"]["alias_of"] == "anna.wav"
    assert voices["nova"] == {"id": "nova", "voice_id": "nova", "name": "nova",
                              "unavailable": "ghost.wav",
                              "alias_of": "the model's built-in voice"}  # fmt: skip
    assert voices["echo"]["alias_of"] == "the model's built-in voice"


def test_an_upload_is_reached_at_once(mapped: Server, tmp_path: Path) -> None:
    assert upload(mapped, "ghost.wav", clip_bytes(tmp_path, seed=4)).status_code == 201
    assert listing(mapped)["nova"]["alias_of"] == "ghost.wav"
    assert np.array_equal(pcm(mapped, "nova"), pcm(mapped, "ghost"))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [("bogus=anna", "'bogus' is not one of OpenAI's voices"),
     ("alloy", "'alloy' is not NAME=VOICE_ID"),
     ("alloy=a,ALLOY=b", "'alloy' is mapped twice")],
)  # fmt: skip
def test_a_bad_map_stops_the_start_naming_the_pair(raw: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, openai_voice_map=raw)
    assert "openai_voice_map" in str(refused.value) and problem in str(refused.value)


def test_the_map_reads_names_in_any_case() -> None:
    settings = Settings(_env_file=None, openai_voice_map=" Alloy = anna , nova=bob.wav,")
    assert settings.openai_voice_aliases == {"alloy": "anna", "nova": "bob.wav"}
