"""One real service for every voice-agent client test: the tiny English checkpoint, a cloned
voice (anna.wav) in the library, and OpenAI's "alloy" mapped to it (Pipecat's OpenAI client
sends only OpenAI's names)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server
from tests.support.voices import clip_bytes

CLONE = "anna.wav"
MAX_CONTEXTS = 3  # ELEVENLABS_MAX_CONTEXTS: the Node test fills a socket's contexts within 4 slots


@pytest.fixture(scope="session")
def agent_server(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("agent-clients")
    service = Server(english_dir, workdir, openai_voice_map=f"alloy={CLONE}",
                     workers_per_device=1, concurrent_requests_per_worker=4,
                     elevenlabs_max_contexts=MAX_CONTEXTS)  # fmt: skip
    (service.preloaded_dir / CLONE).write_bytes(clip_bytes(workdir, seed=3))
    with service.running(log=workdir / "service.log"):
        yield service
