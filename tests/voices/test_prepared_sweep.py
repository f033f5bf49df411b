"""Prepared data of deleted and replaced voices is swept (common.voices.sweep): never while a
voice references it or a request may still read it, by any master sharing the volume."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.pool import WorkerPool
from common.settings import Settings
from common.voices.library import PREPARED, UNREFERENCED, VoiceLibrary
from common.voices.sweep import TRASH, sweep_prepared
from tests.support.voices import clip_bytes

GRACE = 1.5  # seconds; the default is an hour


def prepared(voices: Path) -> set[str]:
    root = voices / PREPARED
    return {entry.name for entry in root.iterdir()} if root.is_dir() else set()


def test_an_entry_is_marked_first_and_removed_only_after_the_grace_period(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    voice = library.add("gone.wav", clip_bytes(tmp_path, seed=1), overwrite=False)
    clip, _ = library.prepared_clip(voice)
    library.delete("gone.wav")
    first = sweep_prepared(library, grace_seconds=3600)
    assert (first.marked, first.removed) == (1, 0) and clip.is_file()  # a request may read it
    assert sweep_prepared(library, grace_seconds=3600).removed == 0
    assert sweep_prepared(library, grace_seconds=0).removed == 1
    assert prepared(library.voices_dir) == set()


def test_an_entry_in_use_again_loses_its_mark(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    data = clip_bytes(tmp_path, seed=2)
    voice = library.add("back.wav", data, overwrite=False)
    clip, _ = library.prepared_clip(voice)
    library.delete("back.wav")
    sweep_prepared(library, grace_seconds=0)
    assert (clip.parent / UNREFERENCED).is_file()
    library.prepared_clip(library.add("again.wav", data, overwrite=False))  # the same content
    assert not (clip.parent / UNREFERENCED).exists()
    assert sweep_prepared(library, grace_seconds=0).removed == 0 and clip.is_file()


def test_what_a_crashed_sweep_renamed_away_is_removed(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    leftover = library.voices_dir / PREPARED / f"{TRASH}0123" / "clip.wav"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"RIFF")
    sweep_prepared(library, grace_seconds=3600)
    assert prepared(library.voices_dir) == set()


@contextmanager
def master(voices: Path, preloaded: Path) -> Iterator[TestClient]:
    """A master (no workers) sweeping every 50 ms with a short grace period."""
    settings = Settings(_env_file=None, voices_dir=voices, preloaded_voices_dir=preloaded,  # type: ignore[call-arg]
                        prepared_sweep_interval_seconds=0.05,
                        prepared_sweep_grace_seconds=GRACE)  # fmt: skip
    preloaded.mkdir(parents=True, exist_ok=True)
    with TestClient(create_app(settings, WorkerPool(settings, slots=[]))) as client:
        yield client


def upload(client: TestClient, name: str, data: bytes, overwrite: bool = False) -> str:
    response = client.post("/voices", params={"overwrite": str(overwrite).lower()},
                           files={"file": (name, io.BytesIO(data))})  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["voice_id"])


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_two_masters_on_one_volume_sweep_what_neither_uses(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    with master(voices, tmp_path / "a") as one, master(voices, tmp_path / "b") as two:
        upload(one, "kept.wav", clip_bytes(tmp_path, seed=3))
        upload(two, "dropped.wav", clip_bytes(tmp_path, seed=4))
        before = prepared(voices)
        upload(two, "kept.wav", clip_bytes(tmp_path, seed=5), overwrite=True)  # replaced
        assert one.delete("/voices/dropped.wav").status_code == 200  # deleted
        library = VoiceLibrary(voices, tmp_path / "a")
        kept = library.content_hash(library.find("kept.wav"))
        unused = before - {kept}
        eventually(lambda: all((voices / PREPARED / e / UNREFERENCED).exists() for e in unused))
        assert before | {kept} <= prepared(voices)  # marked, kept for the grace period
        eventually(lambda: prepared(voices) == {kept})
        assert not (voices / PREPARED / kept / UNREFERENCED).exists()


def test_an_entry_another_masters_preloaded_voice_uses_stays_while_that_master_runs(
    tmp_path: Path,
) -> None:
    """Master one cannot see master two's preloaded voices: two's sweeps keep the entry."""
    voices = tmp_path / "voices"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "narrator.wav").write_bytes(clip_bytes(tmp_path, seed=6))
    with master(voices, tmp_path / "a"):
        with master(voices, tmp_path / "b") as two:
            assert two.get("/voices/narrator.wav").json()["usable"] is True  # prepared now
            entry = prepared(voices)
            time.sleep(3 * GRACE)
            assert prepared(voices) == entry and len(entry) == 1
        eventually(lambda: prepared(voices) == set())  # two is gone: one sweeps it
