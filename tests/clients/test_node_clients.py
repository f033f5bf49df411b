"""The Node clients, unmodified, against the service with the cloned voice: the ElevenLabs SDK
(@elevenlabs/elevenlabs-js), LiveKit Agents for Node's ElevenLabs and OpenAI plugins and the
OpenAI SDK (pinned in tests/clients/node/package-lock.json, installed by `make install`).

One node process (tests/clients/node/checks.mjs) runs every check once per session, its
WebSocket clients through a relay that notes what passes; each test here asserts on one check's
report and on what the relay saw."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import CLONE, MAX_CONTEXTS
from tests.clients.test_elevenlabs_clients import (
    NEXT,
    assert_stopped_at_the_close,
    assert_words_inside,
    audio_bytes,
    finished,
)
from tests.clients.ws_tap import Tap, tap
from tests.support.server import API_KEY, Server

NODE_DIR = Path(__file__).parent / "node"
SHORT = "The lamp is lit."  # the HTTP clients' text in checks.mjs
TIMEOUT_S = 180  # every check has 60 s of its own; a busy CPU is slow


@dataclass
class NodeRun:
    results: dict[str, Any]  # each check's report, and what escaped them ('uncaught')
    relay: Tap
    seconds: float

    def check(self, name: str) -> dict[str, Any]:
        result = self.results.get(name)
        assert result is not None, f"{name} did not run: {self.results['uncaught']}"
        assert result["ok"], result["error"]
        assert not self.results["uncaught"], self.results["uncaught"]
        return result


@pytest.fixture(scope="session")
def node_run(agent_server: Server, tmp_path_factory: pytest.TempPathFactory) -> NodeRun:
    node = shutil.which("node")
    assert node and (NODE_DIR / "node_modules").is_dir(), "Node 20+ and `make install` needed"
    workdir = tmp_path_factory.mktemp("node")
    results, log = workdir / "results.json", workdir / "node.log"

    async def run() -> Tap:
        async with tap(agent_server) as relay:
            env = {
                **os.environ, "SERVICE_URL": agent_server.url, "RELAY_URL": relay.url,
                "API_KEY": API_KEY, "VOICE": CLONE, "MAX_CONTEXTS": str(MAX_CONTEXTS),
            }  # fmt: skip
            with log.open("wb") as output:
                process = await asyncio.create_subprocess_exec(
                    node, "checks.mjs", str(results), cwd=NODE_DIR, env=env, stdout=output,
                    stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                try:
                    await asyncio.wait_for(process.wait(), TIMEOUT_S)
                finally:
                    if process.returncode is None:
                        process.kill()
            return relay

    started = time.perf_counter()
    relay = asyncio.run(run())
    seconds = time.perf_counter() - started
    print(f"the Node clients ran in {seconds:.1f} s")  # their budget: 60 s
    assert results.exists(), log.read_text(errors="replace")[-3000:]
    return NodeRun(json.loads(results.read_text()), relay, seconds)


def test_elevenlabs_sdk_convert_gets_the_whole_mp3(node_run: NodeRun) -> None:
    result = node_run.check("elevenlabs_convert")
    head = bytes.fromhex(result["head"])
    assert head[:3] == b"ID3" or (head[0] == 0xFF and head[1] >= 0xE0), result  # an MPEG frame
    assert result["bytes"] > 1000, result


def test_elevenlabs_sdk_streams_pcm(node_run: NodeRun) -> None:
    result = node_run.check("elevenlabs_stream")
    assert result["bytes"] >= 2 * 960 and result["bytes"] % 2 == 0, result  # a speech token


def test_elevenlabs_sdk_streams_with_timestamps(node_run: NodeRun) -> None:
    result = node_run.check("elevenlabs_stream_with_timestamps")
    assert result["text"].split() == SHORT.split(), result
    assert result["starts"] == sorted(result["starts"]), result
    assert result["starts"][-1] <= result["bytes"] / 48000, result  # 24 kHz, 16 bits


def test_elevenlabs_sdk_lists_the_clone(node_run: NodeRun) -> None:
    assert CLONE in node_run.check("elevenlabs_voices")["voice_ids"]


def test_livekit_elevenlabs_stops_on_a_barge_in(node_run: NodeRun) -> None:
    """A reply closed mid-reply (its text not over): the plugin sends close_context, and the
    audio stops at once; the words it timed lie in the audio that reached it."""
    result = node_run.check("livekit_elevenlabs_barge_in")
    context = result["context"]
    assert_stopped_at_the_close(node_run.relay, context)
    assert not result["errors"], result
    audio_s = audio_bytes(node_run.relay.to_client(context)) / 2 / 22050  # its pcm_22050
    assert_words_inside([(s, e) for _, s, e in result["words"]], audio_s)


def test_livekit_elevenlabs_times_a_reply_word_by_word(node_run: NodeRun) -> None:
    """The next reply on the barged-in socket: every word timed, inside its audio."""
    result = node_run.check("livekit_elevenlabs_reply")
    assert node_run.relay.connections == 2  # the barge-in's socket and reply's, the refusal's
    assert finished(node_run.relay, result["context"])
    assert result["sample_rates"] == [22050], result  # its default, pcm_22050
    assert "".join(w for w, _, _ in result["words"]).split() == NEXT.split(), result
    audio_s = result["samples"] / 22050
    assert_words_inside([(s, e) for _, s, e in result["words"]], audio_s)
    assert audio_bytes(node_run.relay.to_client(result["context"]))


def test_livekit_elevenlabs_fails_a_refused_context_at_once(node_run: NodeRun) -> None:
    """One context more than the socket may hold: the error names it, and the plugin ends that
    stream with an error instead of waiting."""
    result = node_run.check("livekit_elevenlabs_refused")
    assert result["frames"] == 0 and result["errors"], result
    assert result["ended_ms"] < 1000, result
    errors = [p.data for p in node_run.relay.to_client(result["context"], audio=False)]
    assert errors and all(f"at most {MAX_CONTEXTS} contexts" in e["message"] for e in errors)
    assert all(e["context_id"] == result["context"] and e["isFinal"] for e in errors), errors


def test_livekit_openai_speaks_the_clone(node_run: NodeRun) -> None:
    result = node_run.check("livekit_openai")
    assert not result["errors"], result
    assert result["sample_rates"] == [24000] and result["samples"] >= 960, result


def test_openai_sdk_sends_the_voice_as_an_object(node_run: NodeRun) -> None:
    result = node_run.check("openai_voice_object")
    assert bytes.fromhex(result["head"]) == b"RIFF" and result["bytes"] > 44 + 2 * 960, result


def test_the_lock_records_no_download_addresses() -> None:
    """Pinned by version and integrity only (tests/clients/node/.npmrc): `npm ci` fetches from
    whichever registry npm is configured with."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    packages = {k: v for k, v in lock["packages"].items() if k}
    assert packages and all(v.get("version") and v.get("integrity") for v in packages.values()
                            if not v.get("link"))  # fmt: skip
    text = (NODE_DIR / "package-lock.json").read_text()
    assert '"resolved"' not in text and "registry" not in text and "npmjs" not in text
