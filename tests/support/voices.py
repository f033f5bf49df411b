"""Voices in tests: reference clips as file bytes, uploading them, speaking with them."""

from __future__ import annotations

import io
from pathlib import Path

import httpx

from common.audio import SAMPLE_RATE
from tests.support.audio_files import write_audio
from tests.support.server import Server
from worker.engine.model.random_checkpoint import reference_clip


def clip_bytes(tmp_path: Path, seconds: float = 6.0, seed: int = 1, suffix: str = ".wav") -> bytes:
    path = tmp_path / f"clip-{seed}-{seconds}{suffix}"
    write_audio(path, reference_clip(seconds, seed=seed), SAMPLE_RATE)
    return path.read_bytes()


def upload(server: Server, name: str, data: bytes, **form: str) -> httpx.Response:
    return httpx.post(f"{server.url}/voices", headers=server.headers, timeout=60,
                      files={"file": (name, io.BytesIO(data))}, data=form)  # fmt: skip


def speak(server: Server, voice_id: str, tokens: int = 10) -> httpx.Response:
    params = {"text": "Cloned.", "voice_id": voice_id, "seed": 1, "fixed_token_count": tokens}
    return httpx.get(f"{server.url}/tts/generate", params=params, headers=server.headers,
                     timeout=120)  # fmt: skip
