"""A voice's content hash follows its bytes, not its timestamps: a same-size overwrite that keeps
the mtime is seen, on any volume; a remembered hash costs no read (common.voices.identity)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from common.voices.clips import decode, float_wav_bytes, wav_bytes
from common.voices.identity import (
    RECHECK_SECONDS,
    WINDOW_SECONDS,
    ContentHashes,
    Identity,
    identity_of,
)
from common.voices.library import VoiceLibrary


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def tone(hertz: float) -> bytes:
    """A 2 s WAV: tones of different pitch are files of one size and different bytes."""
    t = np.arange(48_000, dtype=np.float32) / 24_000
    return wav_bytes((0.3 * np.sin(2 * np.pi * hertz * t)).astype(np.float32))


def overwrite_in_place(path: Path, data: bytes) -> None:
    """Write ``data`` over ``path`` (same inode) and set its mtime back, as ``cp -p`` does."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)  # fmt: skip


def frozen_timestamps(fd: int) -> Identity:
    """A volume whose timestamps did not move (one coarse tick, or no ctime kept at all)."""
    return identity_of(fd)._replace(mtime_ns=10**18, ctime_ns=10**18)


def truth(path: Path) -> str:
    """The hash a master that never saw the file before computes."""
    return ContentHashes(b"salt").read(path)[0]


def test_a_same_size_overwrite_that_keeps_the_mtime_is_prepared_and_named_anew(
    tmp_path: Path,
) -> None:
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    voice = library.add("anna.wav", tone(220), overwrite=False)
    _, old = library.prepared_clip(voice)
    overwrite_in_place(voice.path, tone(330))
    clip, new = library.prepared_clip(voice)
    assert new != old
    assert new == VoiceLibrary(library.voices_dir, library.preloaded_dir).content_hash(voice)
    assert clip.read_bytes() == float_wav_bytes(decode(tone(330)))  # prepared from the new bytes


def test_a_settled_hash_is_read_again_when_the_ctime_moves(tmp_path: Path) -> None:
    path = tmp_path / "anna.wav"
    path.write_bytes(tone(220))
    clock = Clock()
    clock.now += WINDOW_SECONDS  # hashed long after its last change: trusted while it holds
    hashes = ContentHashes(b"salt", clock)
    old = hashes.digest(path)
    time.sleep(0.05)  # past the kernel's timestamp tick (a jiffy)
    overwrite_in_place(path, tone(330))
    assert hashes.digest(path) == truth(path) != old


def test_within_the_window_every_request_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "anna.wav"
    path.write_bytes(tone(220))
    clock = Clock()
    hashes = ContentHashes(b"salt", clock, frozen_timestamps)
    clock.now = 10**9 + WINDOW_SECONDS - 0.5  # just after the frozen ctime: not settled
    old = hashes.digest(path)
    overwrite_in_place(path, tone(330))
    assert hashes.digest(path) == truth(path) != old


def test_with_timestamps_that_never_move_a_settled_hash_is_read_again_after_a_while(
    tmp_path: Path,
) -> None:
    path = tmp_path / "anna.wav"
    path.write_bytes(tone(220))
    clock = Clock()
    hashes = ContentHashes(b"salt", clock, frozen_timestamps)
    clock.now = 10**9 + WINDOW_SECONDS  # settled
    old = hashes.digest(path)
    overwrite_in_place(path, tone(330))
    assert hashes.digest(path) == old  # remembered: nothing was read (the cheap path)
    clock.now += RECHECK_SECONDS
    assert hashes.digest(path, recheck=False) == old  # what the sweep of every voice asks
    assert hashes.digest(path) == truth(path) != old
    clock.now -= 2 * RECHECK_SECONDS  # a clock set back does not keep a hash forever
    overwrite_in_place(path, tone(440))
    assert hashes.digest(path) == truth(path)
