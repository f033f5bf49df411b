"""The voice library on disk: originals, prepared clips and conditioning (torch-free).

Layout, all under ``VOICES_DIR`` (the persistent volume; ``PRELOADED_VOICES_DIR`` is read-only
and holds originals only)::

    <voice_id>                      the uploaded original, as uploaded; its name is the voice id
    .prepared/<sha256>/clip.wav     the clip used for cloning: the original decoded to mono 24 kHz
                                    as upstream's librosa.load reads it, 32-bit float
                                    (common.voices.clips says why nothing else is done to it)
    .prepared/<sha256>/<variant>.pt the conditioning for one model variant (written by workers)
    .prepared/<sha256>/.unreferenced  since when no voice has used the entry (common.voices.sweep)

Prepared files are addressed by the SHA-256 of the original's bytes (after ``clips.PREPARATION``,
so that an entry prepared another way, by an older release, is never reused), so they are
immutable: an overwrite makes a new directory, a request that raced it still reads the old one
whole, and a restart (or another master on the same volume) finds the work already done. Every
file is written to a temporary name in the same directory, fsynced and renamed into place, so a
crash never leaves half a file; a new id is linked into place (``os.link`` fails if it exists),
so two concurrent uploads of one id cannot both win.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clips import PREPARATION, decode, float_wav_bytes
from .errors import VoiceError
from .identity import ContentHashes

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".webm", ".opus", ".aac")
PREPARED = ".prepared"
UNREFERENCED = ".unreferenced"
MAX_ID_CHARS = 128
# UTF-8 bytes. A file name may have 255 bytes on the usual file systems; an id is stored under a
# temporary name of 38 more bytes first (see _write_temporary) and looked up with a suffix added.
MAX_ID_BYTES = 200
_ID_PUNCTUATION = " .()+,'-_"


@dataclass(frozen=True)
class Voice:
    voice_id: str
    path: Path
    preloaded: bool

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def created(self) -> float:
        return self.path.stat().st_mtime


def check_voice_id(voice_id: str) -> str:
    """``voice_id`` as voices are stored (NFC, trimmed); VoiceError(invalid_id) unless a voice
    could have it. The one rule for every id: uploads, lookups, deletions, synthesis, listings.
    """
    name = unicodedata.normalize("NFC", voice_id).strip()
    problem = _id_problem(name)
    if problem:
        raise VoiceError("invalid_id", f"voice id {name[:40]!r} is not allowed: {problem}")
    return name


def _id_problem(name: str) -> str | None:
    size = len(name.encode("utf-8", "surrogatepass"))
    bad = next((ch for ch in name if not _id_character(ch)), None)
    if not name:
        return "it is empty"
    if len(name) > MAX_ID_CHARS:
        return f"it has {len(name)} characters; the limit is {MAX_ID_CHARS}"
    if size > MAX_ID_BYTES:
        return f"it has {size} bytes in UTF-8; the limit is {MAX_ID_BYTES}"
    if bad is not None:
        return (
            f"it contains {bad!r} (U+{ord(bad):04X}); use letters, digits, combining marks, "
            "spaces and . _ - ( ) + , '"
        )
    if not (name[0].isalnum() or name[0] == "_"):
        return "it must start with a letter, a digit or _ (no dot files, no paths)"
    if ".." in name:
        return "it contains '..'"
    return None


def _id_character(ch: str) -> bool:
    """Letters and digits of any script, their combining marks, and a little punctuation: never
    a path separator, a control or format character, or half a surrogate pair."""
    return ch.isalnum() or ch in _ID_PUNCTUATION or unicodedata.category(ch)[0] == "M"


def sanitize_voice_id(name: str, suffix_from: str | None = None) -> str:
    """The voice id for an uploaded file's name: checked, with an audio suffix (the upload's,
    else .wav) added if it has none; VoiceError(invalid_id) if it is not allowed."""
    name = check_voice_id(name)
    if not name.lower().endswith(AUDIO_SUFFIXES):
        hint = suffix_from or ""
        suffix = (Path(hint).suffix or (hint if hint.startswith(".") else "")).lower()
        name = check_voice_id(name + (suffix if suffix in AUDIO_SUFFIXES else ".wav"))
    return name


class VoiceLibrary:
    def __init__(self, voices_dir: Path, preloaded_dir: Path) -> None:
        self.voices_dir = voices_dir
        self.preloaded_dir = preloaded_dir
        self._hashes = ContentHashes(PREPARATION.encode())
        # Where prepared clips go when VOICES_DIR is read-only (a volume mounted that way).
        self.fallback_dir = Path(tempfile.gettempdir()) / "chatterbox-prepared"

    # --- reading ------------------------------------------------------------------------------

    def voices(self) -> list[Voice]:
        """Every voice, uploaded ones first; an uploaded voice hides a preloaded one of its id."""
        found: dict[str, Voice] = {}
        for directory, preloaded in ((self.voices_dir, False), (self.preloaded_dir, True)):
            for path in _audio_files(directory):
                found.setdefault(path.name, Voice(path.name, path, preloaded))
        return sorted(found.values(), key=lambda v: v.voice_id)

    def find(self, voice_id: str) -> Voice:
        """The voice ``voice_id`` (the extension may be left out); VoiceError(not_found) if none."""
        voice_id = check_voice_id(voice_id)
        for directory, preloaded in ((self.voices_dir, False), (self.preloaded_dir, True)):
            for name in (voice_id, *(voice_id + suffix for suffix in AUDIO_SUFFIXES)):
                if (directory / name).is_file():
                    return Voice(name, directory / name, preloaded)
        raise VoiceError("not_found", f"voice {voice_id!r} not found")

    def content_hash(self, voice: Voice, recheck: bool = True) -> str:
        """The voice's content hash: an open and fstat when remembered, the file hashed again
        whenever it may have changed, whatever the volume's timestamps (common.voices.identity;
        ``recheck`` is ``ContentHashes.digest``'s)."""
        return self._hashes.digest(voice.path, recheck)

    def prepared_dir(self, content_hash: str) -> Path:
        return self.voices_dir / PREPARED / content_hash

    def prepared_clip(self, voice: Voice, prepared: np.ndarray | None = None) -> tuple[Path, str]:
        """(the clip used for cloning, the content hash), preparing the clip if need be.

        ``prepared``: the clip already made from this voice's file (an upload has just
        validated it), so it is not decoded and prepared a second time.
        """
        digest = self.content_hash(voice)
        for root in (self.voices_dir / PREPARED, self.fallback_dir):
            clip = root / digest / "clip.wav"
            if clip.is_file():
                _unmark(clip.parent)
                return clip, digest
        if prepared is None:  # hash what is decoded, in case the file changed since
            digest, original = self._hashes.read(voice.path)
            prepared = decode(original)
        data = float_wav_bytes(prepared)
        clip = self.prepared_dir(digest) / "clip.wav"
        try:
            write_atomic(clip, data)
        except OSError:  # a read-only volume: prepare into the local fallback instead
            clip = self.fallback_dir / digest / "clip.wav"
            write_atomic(clip, data)
        return clip, digest

    def variants_prepared(self, voice: Voice) -> list[str]:
        directory = self.prepared_dir(self.content_hash(voice))
        return sorted(p.stem for p in directory.glob("*.pt")) if directory.is_dir() else []

    # --- writing ------------------------------------------------------------------------------

    def add(self, voice_id: str, data: bytes, overwrite: bool) -> Voice:
        """Store ``data`` as ``voice_id`` atomically; VoiceError(exists) if it exists."""
        target = self.voices_dir / voice_id
        self.voices_dir.mkdir(parents=True, exist_ok=True)
        temporary = _write_temporary(target, data)
        try:
            if overwrite:
                os.replace(temporary, target)
            else:
                _link_new(temporary, target, voice_id)
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_dir(self.voices_dir)
        return Voice(voice_id, target, preloaded=False)

    def delete(self, voice_id: str) -> Voice:
        voice = self.find(voice_id)
        if voice.preloaded:
            raise VoiceError("read_only", f"voice {voice.voice_id!r} is preloaded (read-only)")
        voice.path.unlink(missing_ok=True)
        _fsync_dir(self.voices_dir)
        return voice


def _unmark(entry: Path) -> None:
    """The entry is in use: a sweep must not remove it (common.voices.sweep)."""
    with contextlib.suppress(OSError):  # unmarked (the usual case), or a read-only volume
        (entry / UNREFERENCED).unlink()


def _link_new(temporary: Path, target: Path, voice_id: str) -> None:
    """Put ``temporary`` at ``target`` unless it exists (VoiceError(exists))."""
    taken = VoiceError(
        "exists", f"voice {voice_id!r} already exists; add overwrite=true to replace it"
    )
    try:
        os.link(temporary, target)  # atomic, and fails if the id is taken
    except FileExistsError:
        raise taken from None
    except OSError:  # a filesystem without hard links: exclusive create, then replace
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise taken from None
        os.replace(temporary, target)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _write_temporary(path, data)
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _write_temporary(path: Path, data: bytes) -> Path:
    temporary = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _audio_files(directory: Path) -> Iterator[Path]:
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        name = path.name
        if name.lower().endswith(AUDIO_SUFFIXES) and _is_voice_id(name) and path.is_file():
            yield path


def _is_voice_id(name: str) -> bool:
    """A file is a voice if its name is a voice id as it stands (a file copied in by hand may
    not be: ``check_voice_id`` would refuse it, or normalize it to a name that is not there)."""
    try:
        return check_voice_id(name) == name
    except VoiceError:
        return False
