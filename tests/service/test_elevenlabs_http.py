"""ElevenLabs' HTTP text-to-speech and voice lists through the real processes, driven by the
unmodified ``elevenlabs`` SDK: ``text_to_speech.stream``, ``stream_with_timestamps``,
``convert``, ``convert_with_timestamps``, ``voices.get_all``, ``search`` and ``get``; and every
``output_format`` of ElevenLabs' list, decoded."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, get_args

import av
import httpx
import pytest
from elevenlabs import ElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.text_to_speech.types import TextToSpeechConvertRequestOutputFormat as ConvertFormat

from app.protocols.elevenlabs_formats import OUTPUT_FORMATS
from tests.support.server import API_KEY, Server
from tests.support.voices import clip_bytes, upload

TEXT = "The keeper lit the lamp. Ships saw the beam."


@pytest.fixture
def client(server: Server, tmp_path: Path) -> ElevenLabs:
    upload(server, "eleven-http.wav", clip_bytes(tmp_path, seed=9))
    return ElevenLabs(base_url=server.url, api_key=API_KEY)


def test_the_sdk_streams_audio_and_audio_with_timestamps(client: ElevenLabs) -> None:
    audio = b"".join(client.text_to_speech.stream("eleven-http.wav", text=TEXT,
                                                  output_format="pcm_24000", seed=3))  # fmt: skip
    assert len(audio) > 2 * 960 and len(audio) % 2 == 0

    chunks = list(client.text_to_speech.stream_with_timestamps(
        "eleven-http.wav", text=TEXT, output_format="pcm_24000", seed=3))  # fmt: skip
    timed = b"".join(base64.b64decode(c.audio_base_64) for c in chunks)
    assert timed == audio  # the same seed, the same speech; timings change nothing
    chars, starts, ends = [], [], []
    for chunk in chunks:
        if chunk.alignment is not None:
            chars += chunk.alignment.characters
            starts += chunk.alignment.character_start_times_seconds
            ends += chunk.alignment.character_end_times_seconds
    assert "".join(chars).split() == TEXT.split()  # every character once, in order
    assert starts == sorted(starts) and all(s <= e for s, e in zip(starts, ends, strict=True))
    assert ends[-1] <= len(audio) / 2 / 24000 + 0.001  # seconds from the first sample


@pytest.mark.parametrize(
    ("voice", "query", "body", "status", "param"),
    [
        ("ghost.wav", "", {"text": TEXT}, 404, "voice_id"),
        ("eleven-http.wav", "?output_format=pcm_12345", {"text": TEXT}, 422, "output_format"),
        ("eleven-http.wav", "", {"text": "..."}, 422, "text"),
        ("eleven-http.wav", "", {"text": TEXT, "voice_settings": {"speed": 9}}, 422,
         "voice_settings"),
    ],
)  # fmt: skip
def test_refusals_are_elevenlabs_errors_naming_the_field(
    client: ElevenLabs, server: Server, voice: str, query: str, body: dict[str, object],
    status: int, param: str,
) -> None:  # fmt: skip
    url = f"{server.url}/v1/text-to-speech/{voice}/stream/with-timestamps{query}"
    response = httpx.post(url, json=body, headers={"xi-api-key": API_KEY}, timeout=60)
    assert response.status_code == status
    assert response.json()["detail"]["param"] == param
    if status == 404:  # the SDK sees it as ElevenLabs would send it
        with pytest.raises(ApiError) as raised:
            b"".join(client.text_to_speech.stream(voice, text=TEXT))
        assert raised.value.status_code == 404
    unauthorised = httpx.post(url, json=body, timeout=60)
    assert unauthorised.status_code == 401 and "API key" in unauthorised.json()["detail"]["message"]


def test_the_sdk_converts_whole_audio_and_audio_with_timestamps(client: ElevenLabs) -> None:
    speech: dict[str, Any] = {"text": TEXT, "output_format": "pcm_24000", "seed": 4}
    streamed = b"".join(client.text_to_speech.stream("eleven-http.wav", **speech))
    whole = b"".join(client.text_to_speech.convert("eleven-http.wav", **speech))
    assert whole == streamed  # the same request, the same speech, whichever route

    timed = client.text_to_speech.convert_with_timestamps("eleven-http.wav", **speech)
    assert base64.b64decode(timed.audio_base_64) == whole
    alignment = timed.alignment
    assert alignment is not None and timed.normalized_alignment is not None
    assert "".join(alignment.characters).split() == TEXT.split()
    starts, ends = alignment.character_start_times_seconds, alignment.character_end_times_seconds
    assert starts == sorted(starts) and all(s <= e for s, e in zip(starts, ends, strict=True))
    assert ends[-1] <= len(whole) / 2 / 24000 + 0.001


def test_the_sdk_lists_searches_and_reads_voices(client: ElevenLabs, server: Server) -> None:
    listed = client.voices.get_all()
    assert "eleven-http.wav" in {voice.voice_id for voice in listed.voices}
    one = client.voices.get("eleven-http.wav")
    assert (one.voice_id, one.name, one.category) == ("eleven-http.wav",) * 2 + ("cloned",)

    everything = client.voices.search(page_size=100)
    assert everything.total_count == len(listed.voices) and not everything.has_more
    found = client.voices.search(search="ELEVEN-HTTP", page_size=1)
    assert [v.voice_id for v in found.voices] == ["eleven-http.wav"]
    pages, token = [], None
    while True:  # page by page, as the SDK's caller follows next_page_token
        page = client.voices.search(page_size=1, next_page_token=token, sort="name",
                                    sort_direction="desc")  # fmt: skip
        pages += [v.voice_id for v in page.voices]
        token = page.next_page_token
        assert page.has_more == (token is not None)
        if token is None:
            break
    assert pages == sorted((v.voice_id for v in listed.voices), reverse=True)

    with pytest.raises(ApiError) as missing:
        client.voices.get("ghost.wav")
    assert missing.value.status_code == 404
    bad = httpx.get(f"{server.url}/v2/voices", params={"page_size": 0}, headers=server.headers)
    assert bad.status_code == 422 and bad.json()["detail"]["param"] == "page_size"
    assert httpx.get(f"{server.url}/v1/voices").status_code == 401  # PUBLIC_LISTS is off


BARE = {"raw_pcm": ("s16le", 2), "mulaw": ("mulaw", 1), "alaw": ("alaw", 1)}


def _decoded(data: bytes, our_format: str, rate: int) -> tuple[int, int, float]:
    """(rate, channels, seconds) of ``data`` as PyAV decodes it. The bare formats carry no
    header: PyAV is told their layout, and their length must be whole samples at ``rate``."""
    demuxer, width = BARE.get(our_format, (None, 0))
    options = {"sample_rate": str(rate), "ch_layout": "mono"} if demuxer else {}
    with av.open(io.BytesIO(data), mode="r", format=demuxer, options=options) as container:
        frames = list(container.decode(container.streams.audio[0]))
    samples = sum(frame.samples for frame in frames)
    if demuxer:
        assert samples * width == len(data)
    first = frames[0]
    return first.sample_rate, len(first.layout.channels), samples / first.sample_rate


def _spoken(server: Server, name: str) -> tuple[str, int, tuple[int, int, float]]:
    url = f"{server.url}/v1/text-to-speech/eleven-http.wav?output_format={name}"
    response = httpx.post(url, json={"text": "Hi there.", "seed": 2},
                          headers={"xi-api-key": API_KEY}, timeout=180)  # fmt: skip
    assert response.status_code == 200, (name, response.text)
    our_format, rate = OUTPUT_FORMATS[name]
    return name, rate, _decoded(response.content, our_format.split("@")[0], rate)


def test_every_output_format_of_elevenlabs_list_decodes_at_its_rate(
    client: ElevenLabs, server: Server
) -> None:
    assert set(OUTPUT_FORMATS) >= set(get_args(get_args(ConvertFormat)[0]))  # the SDK's list
    with ThreadPoolExecutor(max_workers=6) as pool:  # the server's slots, not one at a time
        results = list(pool.map(lambda name: _spoken(server, name), sorted(OUTPUT_FORMATS)))
    for name, rate, (decoded_rate, channels, seconds) in results:
        assert (decoded_rate, channels) == (rate, 1), name
        assert 0.1 < seconds < 60, (name, seconds)


def test_a_format_outside_the_list_is_refused_by_name(server: Server) -> None:
    for name in ("mp3_44100_320", "opus_24000_64", "pcm_11025", "flac"):
        url = f"{server.url}/v1/text-to-speech/eleven-http.wav?output_format={name}"
        response = httpx.post(url, json={"text": "Hi."}, headers={"xi-api-key": API_KEY})
        detail = response.json()["detail"]
        assert response.status_code == 422 and detail["param"] == "output_format"
        assert name in detail["message"]
