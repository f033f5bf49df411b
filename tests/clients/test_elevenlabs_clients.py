"""Pipecat's ElevenLabsTTSService, LiveKit's elevenlabs.TTS and the elevenlabs SDK's realtime
client, unmodified, against the service's ElevenLabs WebSockets with the cloned voice: a reply
streamed in word by word, a barge-in that closes its context mid-reply (measured at a relay
between client and service), the next reply on the same socket, and the word times each client
derives from the alignment."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from elevenlabs import ElevenLabs
from livekit.agents import APIConnectOptions
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
from livekit.plugins import elevenlabs as livekit_elevenlabs
from pipecat.frames.frames import (
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
)
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

from tests.clients.conftest import CLONE
from tests.clients.pipecat_support import Step, run_pipeline
from tests.clients.ws_tap import Passed, Tap, tap
from tests.support.server import API_KEY, Server

INTERRUPTED = (
    "The keeper climbed the stairs every evening to light the lamp. He counted every step as he "
    "went, and the ships far out at sea waited for the beam. When the fog rolled in from the "
    "cold water he rang the bell until morning came."
)
NEXT = "Of course. The lamp is lit now."
BARGE_IN_S = 0.2


def tokens(text: str) -> list[str]:
    """The text as an LLM streams it: a word at a time, each after its space."""
    words = text.split()
    return [words[0], *(f" {word}" for word in words[1:])]


async def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def contexts_with_audio(relay: Tap) -> list[str]:
    """Context ids in the order their first audio reached the client."""
    return list(dict.fromkeys(p.context for p in relay.to_client() if p.context))


def finished(relay: Tap, context: str) -> bool:
    return any(p.data.get("isFinal") for p in relay.to_client(context, audio=False))


def mp3_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        rate = container.streams.audio[0].rate
        return sum(frame.samples for frame in container.decode(audio=0)) / rate


def audio_bytes(messages: list[Passed]) -> int:
    return sum(len(base64.b64decode(p.data["audio"])) for p in messages)


def pcm_seconds(messages: list[Passed]) -> float:
    """Seconds of 24 kHz 16-bit PCM in the audio messages."""
    return audio_bytes(messages) / 48000


def assert_stopped_at_the_close(relay: Tap, context: str) -> None:
    """The context's audio stopped within BARGE_IN_S of its (last) close reaching the service
    side of the relay, and the context was reported final."""
    close = [p for p in relay.sent("close_context") if p.context == context][-1]
    late = [p.at - close.at for p in relay.to_client(context) if p.at > close.at]
    assert max(late, default=0.0) < BARGE_IN_S, late
    assert finished(relay, context)


def assert_words_inside(times: list[tuple[float, float]], audio_s: float) -> None:
    """(start, end) seconds of each word: in order, and within the audio received."""
    assert times, "no word times"
    starts = [start for start, _ in times]
    assert starts == sorted(starts)
    assert all(start <= end for start, end in times)
    assert times[-1][1] <= audio_s + 0.001, (times[-1], audio_s)


class RecordingElevenLabs(ElevenLabsTTSService):
    """The client as released; the word times it derives are noted on their way to the
    pipeline (seconds from the context's first audio, per context)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.word_times: dict[str, list[tuple[str, float]]] = defaultdict(list)

    async def add_word_timestamps(
        self, word_times: list[tuple[str, float]], context_id: str | None = None, **kwargs: Any
    ) -> None:
        self.word_times[context_id or ""] += word_times
        await super().add_word_timestamps(word_times, context_id, **kwargs)


def streamed(text: str) -> list[Step]:
    """An LLM reply's frames, a word every 20 ms."""
    steps: list[Step] = []
    for token in tokens(text):
        steps += [LLMTextFrame(token), 0.02]
    return steps


async def test_pipecat_elevenlabs_times_the_words_and_stops_on_a_barge_in(
    agent_server: Server,
) -> None:
    async with tap(agent_server) as relay:
        ws_url = relay.url.replace("http://", "ws://")
        # A context silent for stop_frame_timeout_s (3 s by default) is ended by Pipecat: a
        # busy 2-core CPU can take longer than that to the first audio.
        tts = RecordingElevenLabs(api_key=API_KEY, url=ws_url, stop_frame_timeout_s=30,
                                  settings=ElevenLabsTTSService.Settings(voice=CLONE))  # fmt: skip

        def speaking() -> Awaitable[None]:  # and some of its words are timed
            return until(lambda: any(p.data.get("alignment") for p in relay.to_client()))

        def next_reply_done() -> Awaitable[None]:
            return until(lambda: len(contexts_with_audio(relay)) == 2
                         and finished(relay, contexts_with_audio(relay)[1]))  # fmt: skip

        steps: list[Step] = [
            LLMFullResponseStartFrame(), *streamed(INTERRUPTED), speaking, InterruptionFrame(),
            LLMFullResponseStartFrame(), *streamed(NEXT), LLMFullResponseEndFrame(),
            next_reply_done,
        ]  # fmt: skip
        arrivals = await run_pipeline(tts, steps)

    errors = [a.frame for a in arrivals if isinstance(a.frame, ErrorFrame)]
    assert not errors, errors
    interrupted, answered = contexts_with_audio(relay)
    assert relay.connections == 1  # both replies on one socket
    assert_stopped_at_the_close(relay, interrupted)

    played = [a.frame for a in arrivals if isinstance(a.frame, TTSAudioRawFrame)
              and a.frame.context_id == answered]  # fmt: skip
    assert sum(len(f.audio) for f in played) == audio_bytes(relay.to_client(answered))
    words = tts.word_times[answered]
    assert [w for w, _ in words] == NEXT.split()
    for context in (interrupted, answered):
        starts = [t for _, t in tts.word_times[context]]
        assert_words_inside([(s, s) for s in starts], pcm_seconds(relay.to_client(context)))


async def test_pipecat_elevenlabs_stops_a_finished_turn_on_a_barge_in(agent_server: Server) -> None:
    """The reply's text is over (flush and close_context sent: the service goes on to its end)
    when the user interrupts its audio: Pipecat closes the context again, and it stops."""
    async with tap(agent_server) as relay:
        ws_url = relay.url.replace("http://", "ws://")
        tts = ElevenLabsTTSService(api_key=API_KEY, url=ws_url, stop_frame_timeout_s=30,
                                   settings=ElevenLabsTTSService.Settings(voice=CLONE))  # fmt: skip

        def speaking_after_the_close() -> Awaitable[None]:
            return until(lambda: any(p.at > relay.sent("close_context")[0].at
                                     for p in relay.to_client()) if relay.sent("close_context")
                         else False)  # fmt: skip

        steps: list[Step] = [
            LLMFullResponseStartFrame(), *streamed(INTERRUPTED), LLMFullResponseEndFrame(),
            speaking_after_the_close, InterruptionFrame(), 0.5,
        ]  # fmt: skip
        arrivals = await run_pipeline(tts, steps)

    assert not [a.frame for a in arrivals if isinstance(a.frame, ErrorFrame)]
    (context,) = contexts_with_audio(relay)
    first, second = [p for p in relay.sent("close_context") if p.context == context]
    flushes = [p for p in relay.sent("flush") if p.context == context]
    assert flushes and flushes[-1].at <= first.at  # the turn's end, before the audio's
    assert_stopped_at_the_close(relay, context)  # the second close
    assert any(first.at < p.at < second.at for p in relay.to_client(context))


def timed_words(events: list[Any]) -> list[Any]:
    return [w for e in events for w in e.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])]


async def livekit_reply(stream: Any, text: str, barge_in: bool) -> list[Any]:
    """Push ``text`` word by word; the audio events: all of them, or (``barge_in``) those up to
    the first that carries word times, after which the stream is closed mid-reply."""
    for token in tokens(text):
        stream.push_text(token)
        await asyncio.sleep(0.02)
    if not barge_in:
        stream.end_input()
        return [event async for event in stream]
    events: list[Any] = []
    while not timed_words(events):
        events.append(await asyncio.wait_for(anext(stream), timeout=120))
    await stream.aclose()
    return events


async def test_livekit_elevenlabs_times_the_words_and_stops_on_a_barge_in(
    agent_server: Server,
) -> None:
    options = APIConnectOptions(max_retry=0, timeout=60)  # a busy CPU: 10 s may pass in silence
    async with aiohttp.ClientSession() as session, tap(agent_server) as relay:
        tts = livekit_elevenlabs.TTS(base_url=f"{relay.url}/v1", api_key=API_KEY, voice_id=CLONE,
                                     http_session=session)  # fmt: skip
        cut = await livekit_reply(tts.stream(conn_options=options), INTERRUPTED, barge_in=True)
        events = await livekit_reply(tts.stream(conn_options=options), NEXT, barge_in=False)
        await tts.aclose()

    interrupted, _ = contexts_with_audio(relay)
    assert relay.connections == 1
    assert_stopped_at_the_close(relay, interrupted)
    frames = [event.frame for event in events]
    assert frames and all(f.sample_rate == 22050 for f in frames)  # its default, mp3_22050_32
    words = timed_words(events)
    assert "".join(words).split() == NEXT.split()
    audio_s = sum(f.samples_per_channel for f in frames) / 22050
    assert_words_inside([(w.start_time, w.end_time) for w in words], audio_s)
    # the words it timed before the barge-in lie in the audio that reached it (its decoder
    # had not handed all of that audio on yet when the words came)
    words = timed_words(cut)
    audio = b"".join(base64.b64decode(p.data["audio"]) for p in relay.to_client(interrupted))
    assert_words_inside([(w.start_time, w.end_time) for w in words], mp3_seconds(audio))


def test_the_elevenlabs_sdk_streams_text_into_one_context(
    agent_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's realtime client (stream-input, wss only: a relay with a certificate the
    client is told to trust) sends text as it comes and reads audio until the socket closes."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))

    async def run() -> tuple[bytes, Tap]:
        async with tap(agent_server, tls_dir=tmp_path) as relay:
            client = ElevenLabs(base_url=relay.url, api_key=API_KEY)
            chunks = client.text_to_speech.convert_realtime(
                CLONE, text=iter(tokens(NEXT)), output_format="pcm_24000"
            )
            audio = await asyncio.to_thread(b"".join, chunks)
        return audio, relay

    audio, relay = asyncio.run(run())
    assert audio and len(audio) == audio_bytes(relay.to_client())
    chars = [c for p in relay.to_client(audio=False) if p.data.get("alignment")
             for c in p.data["alignment"]["chars"]]  # fmt: skip
    assert "".join(chars).split() == NEXT.split()
    assert relay.to_client(audio=False)[-1].data.get("isFinal")
