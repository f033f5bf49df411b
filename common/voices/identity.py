"""A voice file's content hash, remembered so that a request reads the file only when it may
have changed, yet never trusts a stale hash because a timestamp did not move.

Every synthesis request resolves its voice's hash (the key of the prepared clip and of the
workers' conditioning), and hashing a clip of several MB per request is too slow, so the hash is
remembered with the file's identity: device, inode, size, mtime and ctime, read with ``fstat``
from a fresh ``open`` (on NFS, opening is what makes the client ask the server: close-to-open
consistency). Nothing else is trusted, because of what each kind of replacement changes:

- an atomic replace (an upload, ``rsync``, ``mv``) makes a new inode, and sets the ctime;
- a copy over the file in place that keeps the mtime (``cp -p``) or an ``os.utime`` still sets the
  ctime, which no program can choose: the kernel (the server, on a network volume) sets it to
  "now" on every write, rename and timestamp change;
- but a volume with coarse timestamps (1 or 2 s) can give two versions written within one tick
  the same ctime and size. So a hash is trusted only once it was read ``WINDOW_SECONDS`` after
  the file's last change (git's "racily clean" rule): until then every request hashes the file
  again, which only a just-written voice costs. A file being written has a ctime of now, so a
  torn read is never trusted either.

Left to ``RECHECK_SECONDS``: a volume that does not keep ctime at all (some FUSE mounts of object
stores report the mtime as ctime), or one with coarse timestamps whose server's clock is more
than ``WINDOW_SECONDS`` behind this master's. There, a same-size overwrite that keeps the mtime
is seen when the hash is next re-read, at most ``RECHECK_SECONDS`` after it was last read.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# Above the coarsest timestamps in use (FAT's 2 s) with room for a file server's clock skew.
WINDOW_SECONDS = 5.0
RECHECK_SECONDS = 60.0
MAX_REMEMBERED = 10_000


class Identity(NamedTuple):
    """What ``fstat`` tells of a file's version."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


def identity_of(fd: int) -> Identity:
    stat = os.fstat(fd)
    return Identity(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@dataclass(frozen=True)
class _Hashed:
    identity: Identity
    digest: str
    read_at: float  # the clock when the file was opened to be hashed

    def settled(self) -> bool:
        """The file's last change was long enough before the read for any later change to show
        in its ctime, whatever the volume's timestamp resolution."""
        return self.read_at - self.identity.ctime_ns / 1e9 >= WINDOW_SECONDS

    def valid(self, identity: Identity, now: float, recheck: bool) -> bool:
        age = now - self.read_at
        fresh = not recheck or 0 <= age < RECHECK_SECONDS  # a clock set back counts as stale
        return identity == self.identity and self.settled() and fresh


class ContentHashes:
    """SHA-256 of ``salt``, a zero byte and a file's bytes, by path, remembered (see above).

    ``clock`` and ``identify`` are the wall clock and ``identity_of``; tests replace them to
    stand for a volume with coarse timestamps. Safe to call from several threads.
    """

    def __init__(
        self,
        salt: bytes,
        clock: Callable[[], float] = time.time,
        identify: Callable[[int], Identity] = identity_of,
    ) -> None:
        self.salt = salt
        self.clock = clock
        self.identify = identify
        self._hashed: dict[str, _Hashed] = {}

    def digest(self, path: Path, recheck: bool = True) -> str:
        """The file's hash: one open and fstat when remembered, else a read of the file too.

        ``recheck=False`` keeps a hash past ``RECHECK_SECONDS`` (still not past a change that
        ``fstat`` shows), for a caller that looks at every voice, where re-reading them all
        would cost more than a hash a minute stale.
        """
        now = self.clock()
        fd = os.open(path, os.O_RDONLY)
        try:
            identity = self.identify(fd)
            known = self._hashed.get(str(path))
            if known is not None and known.valid(identity, now, recheck):
                return known.digest
            return self._hash(path, fd, identity, now)[0]
        finally:
            os.close(fd)

    def read(self, path: Path) -> tuple[str, bytes]:
        """The file's bytes and their hash, from one read (what is prepared is what is named)."""
        now = self.clock()
        fd = os.open(path, os.O_RDONLY)
        try:
            return self._hash(path, fd, self.identify(fd), now)
        finally:
            os.close(fd)

    def _hash(self, path: Path, fd: int, identity: Identity, now: float) -> tuple[str, bytes]:
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read()
        digest = hashlib.sha256(self.salt + b"\0" + data).hexdigest()
        if len(self._hashed) >= MAX_REMEMBERED:
            self._hashed.clear()
        self._hashed[str(path)] = _Hashed(identity, digest, now)
        return digest, data
