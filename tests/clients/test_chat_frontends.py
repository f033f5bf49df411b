"""The requests chat front ends send, replayed exactly as their source builds them (URL, headers,
body), against the real service with a cloned voice: Open WebUI (its OpenAI engine and its
ElevenLabs engine pointed here), SillyTavern (its Chatterbox provider, which speaks
Chatterbox-TTS-Server's API from the browser, and its "OpenAI Compatible" provider, which its
server proxies) and Home Assistant's ``openai_tts`` integration.

Read from: Open WebUI ``backend/open_webui/routers/audio.py`` (0.6.x); SillyTavern
``public/scripts/extensions/tts/chatterbox.js`` (1.13.1's and the later one with "Streaming")
and ``src/endpoints/openai.js`` (``/custom/generate-voice``); sfortis/openai_tts
``openaitts_engine.py``. The service is set up as docs/API.md's Clients section says for
SillyTavern's Chatterbox provider: on this machine (loopback) without a key, with
``TTS_SERVER_ROUTES``, which every other client here works with too.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import av
import httpx
import pytest

from tests.support.server import Server
from tests.support.voices import clip_bytes, upload

CLONE = "clone.wav"  # uploaded: SillyTavern's "[Clone]" voices
PRESET = "anna.wav"  # preloaded: its "predefined" voices
BROWSER = "http://localhost:8000"  # SillyTavern's page, another origin
TEXT = "The keeper lit the lamp."


@pytest.fixture(scope="module")
def frontends(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("frontends")
    service = Server(english_dir, workdir, api_key="", tts_server_routes=True,
                     workers_per_device=1, concurrent_requests_per_worker=4)  # fmt: skip
    (service.preloaded_dir / PRESET).write_bytes(clip_bytes(workdir, seed=5))
    with service.running(log=workdir / "service.log"):
        assert upload(service, CLONE, clip_bytes(workdir, seed=6)).status_code == 201
        yield service


def decoded(data: bytes) -> tuple[str, int, float]:
    """(container, sample rate, seconds) of an audio file as PyAV reads it."""
    with av.open(io.BytesIO(data), mode="r") as container:
        frames = list(container.decode(container.streams.audio[0]))
        name = container.format.name
    rate = frames[0].sample_rate
    return name, rate, sum(f.samples for f in frames) / rate


def test_open_webui_openai_engine(frontends: Server) -> None:
    base = f"{frontends.url}/v1"  # TTS_OPENAI_API_BASE_URL
    # get_available_voices / get_available_models: requests.get, no headers, no key
    voices = httpx.get(f"{base}/audio/voices").json().get("voices", [])
    available = {voice["id"]: voice["name"] for voice in voices}
    assert available[CLONE] == CLONE  # the clone is offered in its menu
    models = httpx.get(f"{base}/audio/models").json().get("models", [])
    assert {"tts-1", "tts-1-hd"} <= {model["id"] for model in models}

    # speech(): the page's {input, voice}, model from TTS_MODEL, then TTS_OPENAI_PARAMS
    payload = {"input": TEXT, "voice": CLONE, "model": models[0]["id"], **{"seed": 3}}
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-anything"}
    response = httpx.post(f"{base}/audio/speech", json=payload, headers=headers, timeout=180)
    assert response.status_code == 200, response.text
    container, rate, seconds = decoded(response.content)  # cached by Open WebUI as .mp3
    assert (container, rate) == ("mp3", 24000) and seconds > 0.2


def test_open_webui_elevenlabs_engine(frontends: Server) -> None:
    base = frontends.url  # ELEVENLABS_API_BASE_URL
    key = {"xi-api-key": "AUDIO_TTS_API_KEY", "Content-Type": "application/json"}
    listed = httpx.get(f"{base}/v1/voices", headers=key).json()
    voices = {voice["voice_id"]: voice["name"] for voice in listed.get("voices", [])}
    assert CLONE in voices  # speech() refuses a voice not in this dict
    models = httpx.get(f"{base}/v1/models", headers=key, timeout=5).json()
    available = [{"name": model["name"], "id": model["model_id"]} for model in models]
    assert available and available[0]["id"]

    response = httpx.post(
        f"{base}/v1/text-to-speech/{CLONE}",
        json={"text": TEXT, "model_id": available[0]["id"],
              "voice_settings": {"stability": 0.5, "similarity_boost": 0.5}},
        headers={"Accept": "audio/mpeg", "Content-Type": "application/json",
                 "xi-api-key": "AUDIO_TTS_API_KEY"},
        timeout=180,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/mpeg"
    container, rate, seconds = decoded(response.content)
    assert (container, rate) == ("mp3", 44100) and seconds > 0.2  # mp3_44100_128, the default


def _sillytavern_voices(endpoint: str) -> list[dict[str, str]]:
    """fetchTtsVoiceObjects(): the browser's fetches (CORS), mapped as the provider maps them."""
    origin = {"Origin": BROWSER}
    predefined = httpx.get(f"{endpoint}/get_predefined_voices", headers=origin)
    assert predefined.headers["access-control-allow-origin"] in ("*", BROWSER)
    voices = [{"name": v["display_name"], "voice_id": v.get("voice_id") or v["filename"]}
              for v in predefined.json()]  # fmt: skip
    references = httpx.get(f"{endpoint}/get_reference_files", headers=origin).json()
    return voices + [{"name": f"[Clone] {f}", "voice_id": f"ref_{f}"} for f in references]


def _sillytavern_body(settings: dict[str, object], text: str, voice_id: str) -> dict[str, object]:
    """_fetchSingleTts()'s body for ``voice_id`` (``ref_`` + a file: a clone)."""
    reference = voice_id.startswith("ref_")
    seed = settings["seed"]
    body: dict[str, object] = {
        "text": text, "voice_mode": "clone" if reference else "predefined",
        "temperature": settings["temperature"], "exaggeration": settings["exaggeration"],
        "cfg_weight": settings["cfg_weight"],
        "seed": seed if isinstance(seed, int) and seed >= 0 else random.randrange(2147483648),
        "speed_factor": settings["speed_factor"], "language": settings["language"],
        "split_text": settings["split_text"], "chunk_size": settings["chunk_size"],
        "output_format": settings["output_format"],
    }  # fmt: skip
    if reference:
        body["reference_audio_filename"] = voice_id[4:]
    else:
        body["predefined_voice_id"] = voice_id or "S1"
    return body


# The provider's defaults (its constructor), as a new user has them.
SILLYTAVERN = {"temperature": 0.8, "exaggeration": 0.5, "cfg_weight": 0.5, "seed": -1,
               "speed_factor": 1.0, "language": "en", "split_text": True, "chunk_size": 120,
               "output_format": "wav"}  # fmt: skip


def test_sillytavern_chatterbox_provider(frontends: Server) -> None:
    endpoint = frontends.url  # provider_endpoint
    # checkReady(): 1.13.1 reads /api/ui/initial-data, later versions the endpoint itself
    assert httpx.get(f"{endpoint}/api/ui/initial-data", headers={"Origin": BROWSER}).json()
    assert httpx.get(endpoint, headers={"Origin": BROWSER}).is_success
    voices = _sillytavern_voices(endpoint)
    clone = next(v for v in voices if v["name"] == f"[Clone] {CLONE}")
    assert {"name": "Anna", "voice_id": PRESET} in voices

    for voice_id, output_format, container in ((clone["voice_id"], "wav", "wav"),
                                               (PRESET, "opus", "ogg")):  # fmt: skip
        body = _sillytavern_body({**SILLYTAVERN, "output_format": output_format}, TEXT, voice_id)
        headers = {"Content-Type": "application/json", "Cache-Control": "no-cache"}
        preflight = httpx.options(f"{endpoint}/tts", headers={
            "Origin": BROWSER, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "cache-control,content-type"})  # fmt: skip
        assert preflight.status_code == 200, preflight.text
        response = httpx.post(f"{endpoint}/tts", content=json.dumps(body),
                              headers={**headers, "Origin": BROWSER}, timeout=180)  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] in ("*", BROWSER)
        name, rate, seconds = decoded(response.content)
        assert (name, rate) == (container, 24000 if container == "wav" else 48000), name
        assert seconds > 0.2


def test_sillytavern_chatterbox_streaming_method(frontends: Server) -> None:
    """generateTts() with "Streaming": the audio element plays a GET URL (seed -1: random)."""
    settings = SILLYTAVERN
    params = {"text": TEXT, "voice_mode": "clone", "temperature": settings["temperature"],
              "exaggeration": settings["exaggeration"], "cfg_weight": settings["cfg_weight"],
              "seed": -1, "speed_factor": settings["speed_factor"],
              "language": settings["language"], "output_format": "wav",
              "reference_audio_filename": CLONE}  # fmt: skip
    url = f"{frontends.url}/tts-stream?{urlencode(params)}"  # URLSearchParams: spaces as +
    with httpx.stream("GET", url, headers={"Origin": BROWSER}, timeout=180) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        data = response.read()
    assert decoded(data)[2] > 0.2
    wrong = httpx.post(f"{frontends.url}/tts", json={"text": TEXT, "predefined_voice_id": "S1"})
    assert wrong.status_code == 404 and wrong.json()["error"]["field"] == "predefined_voice_id"


def test_sillytavern_openai_compatible_provider(frontends: Server) -> None:
    """Its server's /api/openai/custom/generate-voice forwards this. No key saved: it builds
    'Bearer ', which Node's fetch sends trimmed (the Fetch standard normalizes header values)."""
    response = httpx.post(
        f"{frontends.url}/v1/audio/speech",  # provider_endpoint
        headers={"Content-Type": "application/json", "Authorization": "Bearer"},
        content=json.dumps({"input": TEXT, "response_format": "mp3", "voice": CLONE,
                            "speed": 1, "model": "tts-1"}),
        timeout=180,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert decoded(response.content)[:2] == ("mp3", 24000)


@pytest.mark.parametrize(("response_format", "container"), [("mp3", "mp3"), ("opus", "ogg")])
def test_home_assistant_openai_tts(frontends: Server, response_format: str, container: str) -> None:
    """get_tts (mp3) and async_get_tts_stream (opus), with an extra_payload for our parameters."""
    payload: dict[str, object] = {"model": "tts-1", "input": TEXT, "voice": CLONE,
                                  "response_format": response_format, "speed": 1.0}  # fmt: skip
    payload.update(json.loads('{"seed": 7, "exaggeration": 0.6}'))  # extra_payload
    headers = {"Content-Type": "application/json", "User-Agent": "HomeAssistant-OpenAI-TTS",
               "Authorization": "Bearer ha-key"}  # fmt: skip
    response = httpx.post(f"{frontends.url}/v1/audio/speech", content=json.dumps(payload),
                          headers=headers, timeout=60)  # fmt: skip
    assert response.status_code == 200, response.text
    assert decoded(response.content)[0] == container
