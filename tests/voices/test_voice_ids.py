"""One rule for voice ids (common.voices.library.check_voice_id), in characters and in bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.voices.errors import VoiceError
from common.voices.library import MAX_ID_BYTES, VoiceLibrary, check_voice_id, sanitize_voice_id


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("maria.wav", "maria.wav"),
        ("Zoë Ångström.mp3", "Zoë Ångström.mp3"),
        ("Zoe\u0308.wav", "Zoë.wav"),  # decomposed: looked up as stored (NFC)
        ("हिन्दी", "हिन्दी"),  # combining marks after a letter
        ("  padded.wav ", "padded.wav"),
        ("_(take 2), + more's-best.flac", "_(take 2), + more's-best.flac"),
    ],
)
def test_plain_names_in_any_script_are_ids(given: str, stored: str) -> None:
    assert check_voice_id(given) == stored


@pytest.mark.parametrize(
    ("voice_id", "reason"),
    [
        ("\u0301" * 210, "210 characters"),  # the case: 420 bytes
        ("語" * 100, "300 bytes"),  # under 128 characters, over NAME_MAX (255 bytes)
        ("é" * (MAX_ID_BYTES // 2 + 1), f"the limit is {MAX_ID_BYTES}"),
        ("a\x00b", "U+0000"),
        ("bell\a", "U+0007"),
        ("\u202eevil.wav", "U+202E"),  # a format character (right-to-left override)
        ("half\ud800", "U+D800"),  # an unpaired surrogate
        ("../escape.wav", "U+002F"),
        ("a\\b", "U+005C"),
        (".hidden.wav", "start with a letter"),
        ("\u0301x", "start with a letter"),
        ("a..b", "'..'"),
        ("what?.wav", "U+003F"),
        ("", "empty"),
    ],
)
def test_everything_else_is_refused_saying_why(voice_id: str, reason: str) -> None:
    with pytest.raises(VoiceError) as refused:
        check_voice_id(voice_id)
    assert refused.value.kind == "invalid_id" and reason in str(refused.value)


def test_an_upload_name_gets_a_suffix_and_stays_within_the_limits() -> None:
    assert sanitize_voice_id("plain", ".mp3") == "plain.mp3"
    assert sanitize_voice_id("plain", "clip.flac") == "plain.flac"
    assert sanitize_voice_id("plain") == "plain.wav"
    with pytest.raises(VoiceError):
        sanitize_voice_id("x" * 126)  # 130 characters with ".wav"


def test_lookups_of_ids_too_long_for_the_file_system_are_refused_not_crashed(
    tmp_path: Path,
) -> None:
    """The library never hands the file system a name it cannot take (OSError: File name too
    long was a 500 on GET, DELETE and /audio)."""
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    for voice_id in ("\u0301" * 210, "語" * 100):
        for call in (library.find, library.delete):
            with pytest.raises(VoiceError) as refused:
                call(voice_id)
            assert refused.value.kind == "invalid_id"


def test_files_whose_names_are_not_ids_are_not_listed(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    library.voices_dir.mkdir()
    for name in ("good.wav", "what?.wav", "Zoe\u0308.wav", ".hidden.wav", "notes.txt"):
        (library.voices_dir / name).write_bytes(b"RIFF")
    assert [v.voice_id for v in library.voices()] == ["good.wav"]
