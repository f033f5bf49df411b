"""Removing prepared data that no voice uses any more: the ``.prepared/<hash>/`` entries of
deleted and replaced voices (common.voices.library has the layout).

Several masters may share the volume, each knowing only its own preloaded voices, and a request
may still be reading an entry after its voice went away (a worker reads the clip and the
conditioning when the request starts, which may be a queue wait later). So an entry is removed
only after it has gone unreferenced and unused for the whole grace period, in two sweeps:

1. A sweep that finds an entry no voice of its library references marks it: a file
   ``.unreferenced`` whose modification time says since when. An entry that is referenced, or
   used by any master (``VoiceLibrary.prepared_clip`` removes the mark), loses its mark.
2. A later sweep that finds the mark older than the grace period checks the references once more,
   renames the entry out of the way (atomic: a reader finds the whole entry or none of it) and
   then deletes it. Entries renamed away by a sweep that crashed are deleted by the next.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .library import PREPARED, UNREFERENCED, VoiceLibrary

TRASH = ".trash-"
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass
class Swept:
    marked: int = 0
    removed: int = 0


def sweep_prepared(library: VoiceLibrary, grace_seconds: float) -> Swept:
    """One sweep of ``library``'s prepared entries; OSError if it cannot tell what is in use
    (then nothing is removed)."""
    root = library.voices_dir / PREPARED
    if not root.is_dir():
        return Swept()
    entries = [entry for entry in root.iterdir() if _HASH.fullmatch(entry.name)]
    for trash in root.glob(f"{TRASH}*"):
        shutil.rmtree(trash, ignore_errors=True)
    referenced = references(library)
    swept, expired = Swept(), []
    for entry in entries:
        mark = entry / UNREFERENCED
        if entry.name in referenced:
            mark.unlink(missing_ok=True)
        elif (marked := _mtime(mark)) is None:
            swept.marked += _mark(mark)
        elif time.time() - marked >= grace_seconds:
            expired.append(entry)
    if expired:  # look again: a voice may have taken an entry meanwhile
        referenced = references(library)
    for entry in expired:
        if entry.name not in referenced and _mtime(entry / UNREFERENCED) is not None:
            swept.removed += _discard(entry, root)
    return swept


def references(library: VoiceLibrary) -> set[str]:
    """The content hashes of the library's voices (the entries they use). Not re-read every
    minute: a hash that is stale on a volume without ctime only delays a removal, or marks an
    entry that its next use unmarks (and one removed is prepared again when next used)."""
    return {library.content_hash(voice, recheck=False) for voice in library.voices()}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _mark(mark: Path) -> int:
    try:
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except (FileExistsError, FileNotFoundError):  # marked meanwhile, or the entry is gone
        return 0
    return 1


def _discard(entry: Path, root: Path) -> int:
    """Rename ``entry`` away, then delete it; 0 if another sweep took it first."""
    trash = root / f"{TRASH}{uuid.uuid4().hex}"
    try:
        entry.rename(trash)
    except FileNotFoundError:
        return 0
    shutil.rmtree(trash, ignore_errors=True)
    return 1
