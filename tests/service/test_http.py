"""The HTTP API through the real master and worker processes (tiny random checkpoint)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.audio_files import write_audio
from tests.support.server import API_KEY, OTHER_KEY, SAMPLES_PER_TOKEN, Server, parse_wav, pcm
from worker.engine.model.random_checkpoint import reference_clip


@pytest.fixture(autouse=True)
def idle(server: Server) -> None:
    server.wait_idle()


def generate(server: Server, method: str = "GET", **params: object) -> httpx.Response:
    kwargs: dict[str, object] = {"json": params} if method == "POST" else {"params": params}
    return httpx.request(
        method, f"{server.url}/tts/generate", headers=server.headers, timeout=120, **kwargs
    )


def test_health_ready_and_ping_answer_without_a_key(server: Server) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert [w["state"] for w in ready.json()["workers"]] == ["ready", "ready"]
    assert httpx.get(f"{server.url}/ping").status_code == 200


def test_get_streams_a_wav_of_the_requested_length(server: Server) -> None:
    response = generate(server, text="Hello there.", seed=1, fixed_token_count=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    rate, samples = parse_wav(response.content)
    assert rate == 24000 == int(response.headers["x-sample-rate"])
    assert len(samples) == 30 * SAMPLES_PER_TOKEN
    assert np.abs(samples).max() > 100  # real audio, not silence


def test_post_json_with_raw_pcm_gives_the_same_audio_for_the_same_seed(server: Server) -> None:
    wav = generate(server, text="Same seed, same sound.", seed=7, fixed_token_count=25)
    raw = generate(server, "POST", text="Same seed, same sound.", seed=7, fixed_token_count=25,
                   format="raw_pcm")  # fmt: skip
    assert raw.status_code == 200 and raw.headers["content-type"] == "audio/pcm"
    assert np.array_equal(parse_wav(wav.content)[1], pcm(raw.content))


def test_specification_parameter_names_are_accepted(server: Server) -> None:
    response = generate(
        server, "POST", text="All the knobs.", seed=3, fixed_token_count=20,
        cfg_guidance_weight=0.3, synthesis_temperature=0.7, text_processing_chunk_size=100,
        audio_tokens_per_slice=20, remove_trailing_milliseconds=40, remove_leading_milliseconds=40,
        chunk_overlap_method="zero", crossfade_duration_milliseconds=10, exaggeration=0.7,
        language="en",
    )  # fmt: skip
    assert response.status_code == 200, response.text
    trimmed = 20 * SAMPLES_PER_TOKEN - 2 * 40 * 24
    assert len(parse_wav(response.content)[1]) == trimmed


def test_the_key_may_come_in_the_query_string_as_for_an_audio_element(server: Server) -> None:
    params = {"text": "Play me.", "api_key": OTHER_KEY, "fixed_token_count": 10}
    response = httpx.get(f"{server.url}/tts/generate", params=params, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"


@pytest.mark.parametrize("path", ["/tts/generate?text=Hi", "/system-status"])
def test_missing_and_wrong_keys_are_refused(server: Server, path: str) -> None:
    missing = httpx.get(server.url + path)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = httpx.get(server.url + path, headers={"X-API-Key": API_KEY + "x"})
    assert wrong.status_code == 403
    assert "Traceback" not in wrong.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cfg_guidance_weight": 9}, "cfg_guidance_weight"),
        ({"synthesis_temperature": "hot"}, "synthesis_temperature"),
        ({"audio_tokens_per_slice": 2}, "audio_tokens_per_slice"),
        ({"chunk_overlap_method": "half"}, "chunk_overlap_method"),
        ({"format": "aiff"}, "format"),
        ({"format": "mulaw", "sample_rate": 16000}, "sample_rate"),
        ({"format": "mp3", "sample_rate": 9000}, "sample_rate"),
        ({"sample_rate": "fast"}, "sample_rate"),
        ({"speed": 2}, "speed"),
        ({"text": ""}, "text"),
        ({"text": "🙂"}, "text"),
        ({"language": "fr"}, "language"),  # known only to the worker: checked before streaming
        ({"voice_id": "../etc/passwd"}, "voice_id"),
    ],
)
def test_bad_parameters_get_422_naming_the_field(
    server: Server, params: dict[str, object], field: str
) -> None:
    response = generate(server, **{"text": "Hello.", **params})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["code"] == "invalid_request"
    assert field in error["message"] or field in ("text", "language", "voice_id")


def test_a_body_that_is_not_json_gets_422(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/tts/generate", content=b"text=hi", headers=server.headers, timeout=30
    )
    assert response.status_code == 422


def test_unknown_voice_gets_404(server: Server) -> None:
    response = generate(server, text="Hello.", voice_id="nobody.wav")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "voice_not_found",
        "message": "voice 'nobody.wav' not found",
        "field": "voice_id",
    }


def test_a_voice_clip_in_voices_dir_is_cloned(server: Server) -> None:
    write_audio(server.voices_dir / "anna.mp3", reference_clip(6.0, seed=5), 24000)
    by_name = generate(server, text="Cloned.", voice_id="anna.mp3", seed=2, fixed_token_count=10)
    by_stem = generate(server, text="Cloned.", voice_id="anna", seed=2, fixed_token_count=10)
    builtin = generate(server, text="Cloned.", seed=2, fixed_token_count=10)
    assert by_name.status_code == 200, by_name.text
    assert by_name.content == by_stem.content
    assert by_name.content != builtin.content


def test_an_unreadable_voice_clip_is_refused_before_streaming(server: Server) -> None:
    (server.voices_dir / "broken.wav").write_bytes(b"not audio at all")
    response = generate(server, text="Hello.", voice_id="broken.wav")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "voice_id"


def test_system_status_reports_cpu_memory_and_workers(server: Server) -> None:
    status = server.status()
    assert 0 <= status["cpu"]["utilization_percent"] <= 100
    assert status["cpu"]["ram_gb"]["total"] > 0
    assert status["gpus"] == []
    assert status["service"]["capacity"] == 8
    workers = status["workers"]
    assert [w["worker_id"] for w in workers] == ["cpu-w0", "cpu-w1"]
    assert all(w["pid"] and "random weights" in w["model"] for w in workers)


def test_cors_preflight_allows_the_configured_origins(server: Server) -> None:
    response = httpx.options(
        f"{server.url}/tts/generate",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-API-Key, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://app.example")


def test_unknown_paths_get_the_error_shape(server: Server, tmp_path: Path) -> None:
    response = httpx.get(f"{server.url}/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
