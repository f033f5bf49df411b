"""Every model of the family streams speech through ``python -m app``, and the service says which
model it runs (/system-status and /v1/models). One service start per model (~25 s each here), one
short request each; English uses the session's service."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from tests.support.server import Server, parse_wav

# (variant, MULTILINGUAL_T3_MODEL, the label the service must report, a text, its language)
OTHERS = [
    (Variant.TURBO, None, "chatterbox-turbo", "Turbo speaks.", None),
    (Variant.NANO, None, "chatterbox-nano", "Nano speaks.", None),
    (Variant.MULTILINGUAL, "v2", "chatterbox-multilingual v2", "你好，世界。", "zh"),
    (Variant.MULTILINGUAL, "v3", "chatterbox-multilingual v3", "Hola, mundo.", "es"),
]


def test_english_streams_and_is_named(server: Server) -> None:
    _speaks_and_names(server, "chatterbox", "Hello there.", None)


@pytest.mark.parametrize(("variant", "t3_model", "label", "text", "language"), OTHERS)
def test_each_model_streams_and_is_named(
    checkpoints: Checkpoints,
    tmp_path: Path,
    variant: Variant,
    t3_model: str | None,
    label: str,
    text: str,
    language: str | None,
) -> None:
    settings = {"model_variant": variant.value, "concurrent_requests_per_worker": 1}
    if t3_model:
        settings["multilingual_t3_model"] = t3_model
    service = Server(checkpoints(variant), tmp_path, **settings)
    with service.running(log=tmp_path / "service.log"):
        _speaks_and_names(service, label, text, language)


def _speaks_and_names(server: Server, label: str, text: str, language: str | None) -> None:
    params = {"text": text, "seed": 1, "fixed_token_count": 20}
    if language:
        params["language"] = language
    response = httpx.get(
        f"{server.url}/tts/generate", params=params, headers=server.headers, timeout=120
    )
    assert response.status_code == 200, response.text
    rate, samples = parse_wav(response.content)
    assert rate == 24000 and samples.size > 0 and np.abs(samples).max() > 0
    model = server.status()["model"]
    assert model["label"] == label
    assert model["repo_id"].startswith("ResembleAI/")
    listed = httpx.get(f"{server.url}/v1/models", headers=server.headers, timeout=10).json()
    assert listed["data"][0]["name"] == label
    assert listed["data"][0]["repo_id"] == model["repo_id"]
