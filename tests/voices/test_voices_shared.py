"""Voices survive a restart and are shared by masters on one volume (RunPod serverless)."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from common.voices.identity import WINDOW_SECONDS
from common.voices.library import VoiceLibrary
from tests.support.server import Server, parse_wav
from tests.support.voices import clip_bytes, speak, upload
from worker.engine.model.conditioning import compute_conditioning, load_reference
from worker.engine.model.loading import LoadedModel
from worker.voice_cache import VoiceCache


def prepared_conditioning(server: Server, voice_id: str) -> Path:
    library = VoiceLibrary(server.voices_dir, server.preloaded_dir)
    clip, _ = library.prepared_clip(library.find(voice_id))
    return clip.parent / "chatterbox.pt"


@pytest.fixture(scope="module")
def second(server: Server, english_dir: Path, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Server]:  # fmt: skip
    """Another master (one worker) on the same voices volume, pre-caching every voice at start.

    Started after a voice was used through the first master, it is also that voice's restart.
    """
    tmp = tmp_path_factory.mktemp("second")
    assert upload(server, "kept.wav", clip_bytes(tmp, seed=7)).status_code in (201, 409)
    assert speak(server, "kept.wav").status_code == 200
    stored = prepared_conditioning(server, "kept.wav")
    assert stored.is_file()
    other = Server(english_dir, tmp, voices_dir=server.voices_dir, precache_voices="true")
    other.stored_mtime = stored.stat().st_mtime_ns  # type: ignore[attr-defined]
    with other.running(log=tmp / "second.log"):
        yield other


def why_not_cached(server: Server) -> str:
    """The workers' status and the log's lines about voices, workers and errors."""
    assert server.log is not None
    lines = server.log.read_text(errors="replace").splitlines()
    found = [line for line in lines if any(word in line.lower() for word in
             ("voice", "worker", "error", "traceback", "warning"))]  # fmt: skip
    return f"{server.status()['workers']}\n" + "\n".join(found[-40:])


def test_a_restart_finds_voices_ready_without_recomputing(second: Server, server: Server) -> None:
    def cached() -> bool:
        return all("kept.wav" in w["cached_voices"] for w in second.status()["workers"])

    deadline = time.monotonic() + 60  # pre-cached at start-up, beside serving (slow when busy)
    while not cached() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cached(), why_not_cached(second)
    stored = prepared_conditioning(server, "kept.wav")
    assert stored.stat().st_mtime_ns == second.stored_mtime  # type: ignore[attr-defined]
    here, there = (parse_wav(speak(s, "kept.wav").content)[1] for s in (second, server))
    # The same conditioning (loaded, not recomputed); only torch's thread count differs.
    assert len(here) == len(there)
    assert np.corrcoef(here.astype(float), there.astype(float))[0, 1] > 0.99


def test_a_voice_added_through_one_master_speaks_through_the_other(
    second: Server, server: Server, tmp_path: Path
) -> None:
    assert upload(second, "from-b.wav", clip_bytes(tmp_path, seed=8)).status_code == 201
    assert "from-b.wav" in httpx.get(f"{server.url}/voices", headers=server.headers).json()
    assert speak(server, "from-b.wav").status_code == 200


def test_a_voice_replaced_through_one_master_is_spoken_anew_by_the_other_whatever_its_mtime(
    second: Server, server: Server, tmp_path: Path
) -> None:
    """The second master has served the old version, long enough ago to trust its hash; the
    first replaces it with one of the same size and sets the mtime back (a coarse-mtime volume,
    a copy that keeps it). The second's next request uses the new clip: its worker computes the
    new content's conditioning, which nothing else does (the first does not pre-cache)."""
    old, new = clip_bytes(tmp_path, seed=13), clip_bytes(tmp_path, seed=14)
    assert len(old) == len(new) and old != new
    assert upload(server, "replaced.wav", old).status_code == 201
    settled = time.monotonic() + WINDOW_SECONDS
    path = server.voices_dir / "replaced.wav"
    before = path.stat()
    time.sleep(max(0.0, settled - time.monotonic()))
    assert speak(second, "replaced.wav").status_code == 200
    assert upload(server, "replaced.wav", new, overwrite="true").status_code == 201
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert speak(second, "replaced.wav").status_code == 200
    library = VoiceLibrary(server.voices_dir, server.preloaded_dir)  # never saw the old one
    digest = library.content_hash(library.find("replaced.wav"))
    assert (library.prepared_dir(digest) / "chatterbox.pt").is_file()


async def test_concurrent_uploads_of_one_id_cannot_both_win(
    second: Server, server: Server, tmp_path: Path
) -> None:
    one, two = clip_bytes(tmp_path, seed=9), clip_bytes(tmp_path, seed=10)

    async def post(target: Server, data: bytes) -> int:
        async with httpx.AsyncClient(headers=target.headers, timeout=60) as client:
            files = {"file": ("race.wav", io.BytesIO(data))}
            return (await client.post(f"{target.url}/voices", files=files)).status_code

    statuses = await asyncio.gather(post(server, one), post(second, two))
    assert sorted(statuses) == [201, 409]
    assert (server.voices_dir / "race.wav").read_bytes() in (one, two)  # whole, never mixed


async def test_the_worker_cache_evicts_the_least_recently_used_voice(
    english_model: LoadedModel, tmp_path: Path
) -> None:
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    cache = VoiceCache(english_model, max_voices=2)
    for seed in (1, 2, 3):
        voice = library.add(f"v{seed}.wav", clip_bytes(tmp_path, seed=seed), overwrite=False)
        clip, digest = library.prepared_clip(voice)
        await cache.get(voice.voice_id, str(clip), digest)
        if seed == 2:
            first = library.find("v1.wav")
            await cache.get("v1.wav", str(library.prepared_clip(first)[0]),
                            library.content_hash(first))  # fmt: skip
    assert cache.voice_ids == ["v1.wav", "v3.wav"]  # v2 was the least recently used


async def test_voices_of_the_same_content_share_an_entry_listed_under_each_id(
    english_model: LoadedModel, tmp_path: Path
) -> None:
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    data = clip_bytes(tmp_path, seed=12)
    cache = VoiceCache(english_model, max_voices=2)
    for voice_id in ("one.wav", "two.wav"):
        clip, digest = library.prepared_clip(library.add(voice_id, data, overwrite=False))
        await cache.get(voice_id, str(clip), digest)
    assert cache.voice_ids == ["one.wav", "two.wav"]
    cache.invalidate("one.wav")  # replaced or deleted: the other still has the entry
    assert cache.voice_ids == ["two.wav"]
    cache.invalidate("two.wav")
    assert cache.voice_ids == []


def test_a_prepared_clip_is_what_conditioning_is_computed_from(
    english_model: LoadedModel, tmp_path: Path
) -> None:
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    voice = library.add("p.wav", clip_bytes(tmp_path, seed=11), overwrite=False)
    clip, digest = library.prepared_clip(voice)
    assert clip.parent.name == digest and len(digest) == 64
    conditioning = compute_conditioning(english_model, load_reference(clip), 24000)
    assert conditioning.gen["prompt_feat"].shape[1] > 0
