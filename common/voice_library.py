"""The voice library on disk: originals, prepared clips and conditioning (torch-free).

Layout, all under ``VOICES_DIR`` (the persistent volume; ``PRELOADED_VOICES_DIR`` is read-only
and holds originals only)::

    <voice_id>                      the uploaded original, as uploaded; its name is the voice id
    .prepared/<sha256>/clip.wav     the clip used for cloning: mono 24 kHz, loudness-normalized,
                                    leading and trailing silence trimmed
    .prepared/<sha256>/<variant>.pt the conditioning for one model variant (written by workers)

Prepared files are addressed by the SHA-256 of the original's bytes, so they are immutable: an
overwrite makes a new directory, a request that raced it still reads the old one whole, and a
restart (or another master on the same volume) finds the work already done. Every file is
written to a temporary name in the same directory, fsynced and renamed into place, so a crash
never leaves half a file; a new id is linked into place (``os.link`` fails if it exists), so two
concurrent uploads of one id cannot both win.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import unicodedata
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyloudnorm

from .audio import AudioDecodeError, decode_audio

RATE = 24000
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".webm", ".opus", ".aac")
PREPARED = ".prepared"
TARGET_LUFS = -27.0  # upstream Turbo's reference level
SILENCE_DB = -40.0  # trim what is this far below the clip's loudest 20 ms
MODEL_USES_SECONDS = 10.0  # S3Gen's reference window; T3 reads less
_MAX_ID = 128


class VoiceError(Exception):
    """A client's mistake about a voice: ``status`` is the HTTP status, ``str()`` the reason."""

    def __init__(self, status: int, message: str, field: str = "voice_id") -> None:
        super().__init__(message)
        self.status = status
        self.field = field


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


def sanitize_voice_id(name: str, suffix_from: str | None = None) -> str:
    """The voice id for a file name; VoiceError(400) for anything that is not a plain name."""
    name = unicodedata.normalize("NFC", name).strip()
    bad = (
        not name
        or name.startswith(".")
        or any(ch in name for ch in "/\\\0")
        or ".." in name
        or any(unicodedata.category(ch)[0] == "C" for ch in name)
        or len(name) > _MAX_ID
        or not re.fullmatch(r"[\w][\w .()+,'-]*", name)
    )
    if bad:
        raise VoiceError(
            400,
            f"voice id {name[:40]!r} is not allowed: use a plain file name (letters, digits, "
            f"spaces, . _ - ( ) + , '), not starting with a dot, at most {_MAX_ID} characters",
        )
    if not name.lower().endswith(AUDIO_SUFFIXES):
        hint = suffix_from or ""
        suffix = (Path(hint).suffix or (hint if hint.startswith(".") else "")).lower()
        name += suffix if suffix in AUDIO_SUFFIXES else ".wav"
    return name


class VoiceLibrary:
    def __init__(self, voices_dir: Path, preloaded_dir: Path) -> None:
        self.voices_dir = voices_dir
        self.preloaded_dir = preloaded_dir
        self._hashes: dict[tuple[str, int, int], str] = {}
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
        """The voice ``voice_id`` (the extension may be left out); VoiceError 404 if none."""
        if not _is_plain(voice_id) or any(unicodedata.category(c)[0] == "C" for c in voice_id):
            raise VoiceError(422, f"voice_id {voice_id[:40]!r} is not a valid voice id")
        for directory, preloaded in ((self.voices_dir, False), (self.preloaded_dir, True)):
            for name in (voice_id, *(voice_id + suffix for suffix in AUDIO_SUFFIXES)):
                if (directory / name).is_file():
                    return Voice(name, directory / name, preloaded)
        raise VoiceError(404, f"voice {voice_id!r} not found")

    def content_hash(self, voice: Voice) -> str:
        stat = voice.path.stat()
        key = (str(voice.path), stat.st_mtime_ns, stat.st_size)
        if key not in self._hashes:
            if len(self._hashes) > 10_000:
                self._hashes.clear()
            self._hashes[key] = hashlib.sha256(voice.path.read_bytes()).hexdigest()
        return self._hashes[key]

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
                return clip, digest
        if prepared is None:
            prepared = prepare_clip(decode(voice.path.read_bytes()))
        data = wav_bytes(prepared)
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
        """Store ``data`` as ``voice_id`` atomically; VoiceError 409 if it exists."""
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
            raise VoiceError(403, f"voice {voice.voice_id!r} is preloaded (read-only)")
        voice.path.unlink(missing_ok=True)
        _fsync_dir(self.voices_dir)
        return voice


def _link_new(temporary: Path, target: Path, voice_id: str) -> None:
    """Put ``temporary`` at ``target`` unless it exists (VoiceError 409)."""
    taken = VoiceError(409, f"voice {voice_id!r} already exists; add overwrite=true to replace it")
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


def decode(data: bytes) -> np.ndarray:
    """Mono float32 at 24 kHz; VoiceError 415 if the bytes are not audio."""
    try:
        return decode_audio(io.BytesIO(data), RATE)
    except AudioDecodeError:
        raise VoiceError(
            415,
            "the file is not audio that can be read (send WAV, MP3, FLAC, Ogg/Opus, M4A or WebM)",
            "file",
        ) from None


def sniff_suffix(data: bytes) -> str:
    """The file suffix for the container ``data`` is in (for uploads named without one)."""
    try:
        with av.open(io.BytesIO(data)) as container:
            names = container.format.name.split(",")
    except (av.FFmpegError, ValueError):
        return ".wav"
    for name, suffix in (("wav", ".wav"), ("mp3", ".mp3"), ("flac", ".flac"), ("ogg", ".ogg"),
                         ("mp4", ".m4a"), ("m4a", ".m4a"), ("webm", ".webm"),
                         ("matroska", ".webm")):  # fmt: skip
        if name in names:
            return suffix
    return ".wav"


def prepare_clip(wav: np.ndarray) -> np.ndarray:
    """Trim leading and trailing silence, normalize loudness to TARGET_LUFS."""
    wav = trim_silence(wav)
    meter = pyloudnorm.Meter(RATE)
    if len(wav) > meter.block_size * RATE:
        loudness = meter.integrated_loudness(wav.astype(np.float64))
        if np.isfinite(loudness):
            wav = pyloudnorm.normalize.loudness(wav.astype(np.float64), loudness, TARGET_LUFS)
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak > 0.99:
        wav = wav * (0.99 / peak)
    return np.asarray(wav, dtype=np.float32)


def trim_silence(wav: np.ndarray) -> np.ndarray:
    frame = RATE // 50
    frames = len(wav) // frame
    if frames < 2:
        return wav
    energy = np.sqrt(np.mean(np.square(wav[: frames * frame].reshape(frames, frame)), axis=1))
    loud = np.flatnonzero(energy > energy.max() * 10 ** (SILENCE_DB / 20))
    if not len(loud):
        return wav[:0]  # digital silence
    start, stop = max(0, loud[0] - 2) * frame, min(frames, loud[-1] + 3) * frame
    return wav[start:stop]


def level_db(wav: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    return 20 * np.log10(rms) if rms > 0 else -np.inf


def wav_bytes(wav: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


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
        if path.is_file() and _is_plain(name) and name.lower().endswith(AUDIO_SUFFIXES):
            yield path


def _is_plain(name: str) -> bool:
    return "/" not in name and "\\" not in name and ".." not in name and not name.startswith(".")
