"""A Single Language Pack streams speech through ``python -m app``, its files read from a
stand-in Hub cache (the pack's repository and the base one), with the Hub offline and no
MODEL_PATH: the way a deployment with MODEL_REPO_ID=zh-cmn starts after the download."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from tests.support.server import Server, parse_wav
from worker.engine.model.random_pack import LanguagePack


def test_a_pack_streams_speech_from_the_hub_cache(
    language_pack: LanguagePack, tmp_path: Path
) -> None:
    service = Server(
        tmp_path / "no-model-path",
        tmp_path,
        model_repo_id="zh-cmn",
        hf_home=language_pack.hf_home,
        hf_hub_cache=language_pack.hf_home / "hub",  # over one the environment may set
        pkuseg_home=language_pack.pkuseg_home,
        concurrent_requests_per_worker=1,
    )
    with service.running(log=tmp_path / "service.log"):
        response = httpx.get(
            f"{service.url}/tts/generate",
            params={"text": "你好，世界。", "language": "zh", "seed": 1, "fixed_token_count": 20},
            headers=service.headers,
            timeout=120,
        )
        assert response.status_code == 200, response.text
        rate, samples = parse_wav(response.content)
        assert rate == 24000 and samples.size > 0 and np.abs(samples).max() > 0
        model = service.status()["model"]
    assert model["label"] == f"chatterbox-multilingual ({language_pack.repo_id})"
    assert model["repo_id"] == language_pack.repo_id
