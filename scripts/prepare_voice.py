"""Prepare a reference clip for a high-quality voice clone, offline, before uploading it.

    python scripts/prepare_voice.py interview.mp3 anna.wav
    python scripts/prepare_voice.py raw.flac anna.wav --seconds 12 --lufs -23

It decodes any audio file (wav, mp3, flac, ogg, m4a, webm, opus, aac ...) to mono 24 kHz as the
server and upstream's ``librosa.load`` do (channels averaged, soxr; common/audio.py), looks
past the leading and trailing silence, picks the best ``--seconds`` (default 10) of speech and
writes that window, at its own level (or at ``--lufs`` if given), as a 24 kHz mono 16-bit WAV. It
prints what it did and warns about what it cannot fix: a clip of 5 s or less (Turbo needs more
than 5 s), clipping, a noisy recording.

How the window is chosen. The clip is cut into 20 ms frames and each frame's level (RMS, in dB) is
compared with the clip's speech level, the 95th percentile of the frame levels (a percentile, not
the maximum, so that one click or cough does not set the scale). A frame is *active* when it is
within 30 dB of that level and, when the clip has a noise floor to speak of (its 10th percentile
lies 12 dB or more below the speech level), at least 6 dB above that floor; the others are
*pauses*. Every window of about ``--seconds`` (within 10%, at least 0.2 s either way)
that starts and ends in a pause is a candidate, as is every window of exactly ``--seconds`` that
starts on any frame (for speech without pauses). Each is scored

    active fraction x steadiness + 0.1 x (pause at the start) + 0.1 x (pause at the end)
    - 2 x (fraction of frames with clipped samples)

where steadiness is ``1 - spread / 30`` and the spread is the standard deviation, in dB, of the
active frames' levels: dense speech at an even level, cut between words or sentences rather than
mid-syllable, and away from clipping, wins; on a tie the earliest window. A clip no longer than
the window (plus its 10%) is kept whole. The server uses only the first 10 s of a clip for the
S3Gen reference and the first 6 s (Turbo: 15 s) for T3's prompt, so ``--seconds`` above 10 mostly
feeds the speaker embedding (which reads the whole clip).

The server stores an upload as it is (decoded to mono 24 kHz; upstream English and multilingual
use the reference unchanged, and Turbo and Nano normalise it to -27 LUFS when they compute the
voice), so what this script writes is what the model hears: the level is left alone unless
``--lufs`` asks otherwise, and the loudness is printed for reference. Exit status: 0 when
the clip was written (warnings included), 1 when the input cannot be decoded or has no sound, 2
for bad arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyloudnorm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.audio import SAMPLE_RATE as RATE  # noqa: E402
from common.audio import AudioDecodeError, decode_audio  # noqa: E402
from common.variants import TURBO_MIN_REFERENCE_SECONDS as TURBO_MIN_SECONDS  # noqa: E402
from common.voices.clips import trim_silence, wav_bytes  # noqa: E402
from common.voices.library import write_atomic  # noqa: E402

Audio = npt.NDArray[np.float32]
Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]
Indices = npt.NDArray[np.int64]
FRAME = RATE // 50  # 20 ms, as trim_silence
ACTIVE_BELOW_SPEECH_DB = 30.0  # active: within this many dB of the speech level
ACTIVE_ABOVE_FLOOR_DB = 6.0  # ... and at least this far above the noise floor
NO_PAUSES_DB = 12.0  # speech level - floor below this: no pauses to measure a floor from
SPREAD_SCALE_DB = 30.0  # steadiness = 1 - spread / this
EDGE_BONUS = 0.1  # per window edge that falls in a pause
CLIP_PENALTY = 2.0  # per fraction of frames holding clipped samples
CLIPPED = 0.999  # a sample this close to full scale counts as clipped
LOW_SNR_DB = 20.0


@dataclass(frozen=True)
class Window:
    start: int  # frames into the trimmed clip
    stop: int
    active: float  # fraction of active frames
    spread_db: float  # standard deviation of the active frames' levels
    paused_start: bool
    paused_end: bool

    @property
    def seconds(self) -> float:
        return (self.stop - self.start) * FRAME / RATE


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", type=Path, help="any audio file FFmpeg can read")
    parser.add_argument("output", type=Path, help="the prepared clip, a .wav file")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of the window to keep (default 10)"
    )
    parser.add_argument(
        "--lufs", type=float, default=None, help="loudness target (default: keep the level)"
    )
    args = parser.parse_args()
    if args.output.suffix.lower() != ".wav":
        parser.error("OUT must be a .wav file")
    if not 1.0 <= args.seconds <= 120.0:
        parser.error("--seconds must be between 1 and 120")
    if args.lufs is not None and not -70.0 <= args.lufs <= -5.0:
        parser.error("--lufs must be between -70 and -5")
    return args


def frame_levels(wav: Audio) -> Floats:
    """The RMS level of each 20 ms frame, in dB (full scale = 0 dB)."""
    frames = len(wav) // FRAME
    blocks = wav[: frames * FRAME].reshape(frames, FRAME).astype(np.float64)
    rms = np.sqrt(np.mean(np.square(blocks), axis=1))
    return np.asarray(20 * np.log10(rms + 1e-10), dtype=np.float64)


def clipped_frames(wav: Audio) -> Flags:
    frames = len(wav) // FRAME
    blocks = np.abs(wav[: frames * FRAME].reshape(frames, FRAME))
    return np.asarray((blocks >= CLIPPED).any(axis=1))


def best_window(wav: Audio, seconds: float) -> Window:
    """The best window of about ``seconds`` of ``wav`` (see the module docstring)."""
    levels = frame_levels(wav)
    frames = len(levels)
    speech, floor = np.percentile(levels, 95), np.percentile(levels, 10)
    threshold = speech - ACTIVE_BELOW_SPEECH_DB
    if speech - floor >= NO_PAUSES_DB:  # a real noise floor: keep noise out of "active"
        threshold = max(threshold, floor + ACTIVE_ABOVE_FLOOR_DB)
    active = levels >= threshold
    length = max(1, round(seconds * RATE / FRAME))
    tolerance = max(10, round(0.1 * length))
    if frames <= length + tolerance:
        return _best(levels, active, clipped_frames(wav), np.array([0]), np.array([frames]))

    # Candidates: pause-to-pause windows of length +- tolerance, and every fixed-length window.
    pauses = np.flatnonzero(~active)
    starts, stops = [np.arange(frames - length + 1)], [np.arange(length, frames + 1)]
    for size in range(length - tolerance, length + tolerance + 1):
        begin = pauses[pauses + size <= frames]
        end = begin + size
        keep = ~active[end - 1]
        starts.append(begin[keep])
        stops.append(end[keep])
    return _best(levels, active, clipped_frames(wav), np.concatenate(starts), np.concatenate(stops))


def _best(
    levels: Floats,
    active: Flags,
    clipped: Flags,
    starts: Indices,
    stops: Indices,
) -> Window:
    """Score the windows [start, stop) at once with cumulative sums; the best one."""

    def window_sum(values: Floats) -> Floats:
        total = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
        return np.asarray(total[stops] - total[starts])

    sizes = (stops - starts).astype(np.float64)
    count = window_sum(active.astype(np.float64))
    level_sum = window_sum(np.where(active, levels, 0.0))
    square_sum = window_sum(np.where(active, np.square(levels), 0.0))
    safe = np.maximum(count, 1.0)
    spread = np.sqrt(np.maximum(square_sum / safe - np.square(level_sum / safe), 0.0))
    fraction = count / sizes
    steadiness = np.clip(1.0 - spread / SPREAD_SCALE_DB, 0.0, 1.0)
    paused_start = ~active[starts]
    paused_end = ~active[stops - 1]
    score = (
        fraction * steadiness
        + EDGE_BONUS * (paused_start.astype(float) + paused_end.astype(float))
        - CLIP_PENALTY * window_sum(clipped.astype(np.float64)) / sizes
    )
    i = int(np.lexsort((starts, -score))[0])  # the best score; on a tie the earliest
    return Window(
        int(starts[i]),
        int(stops[i]),
        float(fraction[i]),
        float(spread[i]),
        bool(paused_start[i]),
        bool(paused_end[i]),
    )


def loudness(wav: Audio) -> float:
    """Integrated loudness in LUFS; -inf for silence or a clip under 0.4 s."""
    meter = pyloudnorm.Meter(RATE)
    if len(wav) <= meter.block_size * RATE:
        return -math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(meter.integrated_loudness(wav.astype(np.float64)))
    return value if math.isfinite(value) else -math.inf


def offset_in(view: Audio, base: Audio) -> int:
    """Where ``view`` (a slice of ``base``, as trim_silence returns) starts in ``base``."""
    if not len(view) or not np.shares_memory(view, base):
        return 0
    start = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    return int(start // base.itemsize)


def peak_db(wav: Audio) -> float:
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def describe(value: float, unit: str) -> str:
    return f"{value:.1f} {unit}" if math.isfinite(value) else "silent"


def main() -> int:
    args = parse_args()
    try:
        wav = decode_audio(args.input, RATE)
    except AudioDecodeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    notes: list[str] = []
    problems: list[str] = []
    total = len(wav) / RATE
    print(
        f"input: {args.input}, {total:.2f} s (decoded to mono {RATE} Hz), loudness "
        f"{describe(loudness(wav), 'LUFS')}, peak {describe(peak_db(wav), 'dBFS')}"
    )

    trimmed = trim_silence(wav)
    if not len(trimmed) or len(trimmed) < 2 * FRAME:
        print("error: the clip is silent (or nearly): record someone speaking", file=sys.stderr)
        return 1
    head = offset_in(trimmed, wav) / RATE
    tail = total - head - len(trimmed) / RATE
    print(f"trimmed silence: {head:.2f} s at the start, {tail:.2f} s at the end")

    levels = frame_levels(trimmed)
    snr = float(np.percentile(levels, 95) - np.percentile(levels, 10))
    if snr < NO_PAUSES_DB:
        problems.append(
            f"the quietest 10% of frames are only {snr:.0f} dB below the loudest 5%: the clip "
            "has no pauses, or noise or music fills them; if so, it will be cloned too"
        )
    elif snr < LOW_SNR_DB:
        problems.append(
            f"the estimated signal-to-noise ratio is only {snr:.0f} dB (loudest 5% of frames vs "
            "the quietest 10%): background noise or music will be cloned too; prefer a cleaner "
            "recording"
        )

    window = best_window(trimmed, args.seconds)
    begin, end = window.start * FRAME, window.stop * FRAME
    chosen = trimmed[begin:end]
    edges = [
        name for name, paused in (("starts", window.paused_start), ("ends", window.paused_end))
        if paused
    ]  # fmt: skip
    where = " and ".join(edges) + " in a pause" if edges else "no pause at either edge"
    print(
        f"chosen window: {head + begin / RATE:.2f} s to {head + end / RATE:.2f} s of the input "
        f"({window.seconds:.2f} s): {window.active:.0%} active frames, level spread "
        f"{window.spread_db:.1f} dB, {where}"
    )
    if len(trimmed) / RATE < args.seconds:
        notes.append(
            f"the clip has only {len(trimmed) / RATE:.1f} s of sound; --seconds {args.seconds:g} "
            "asked for more, so all of it is kept"
        )
    if window.active < 0.6:
        problems.append(
            f"only {window.active:.0%} of the chosen window is active speech: long pauses or "
            "very uneven levels"
        )

    clipped = int(np.count_nonzero(np.abs(wav) >= CLIPPED))
    in_window = int(np.count_nonzero(np.abs(chosen) >= CLIPPED))
    if in_window:
        problems.append(
            f"{in_window} samples of the chosen window are at full scale: the recording is "
            "clipped there, and the clone will copy the distortion; record again with less gain"
        )
    elif clipped:
        notes.append(f"{clipped} samples of the input are clipped; the chosen window has none")

    before = loudness(chosen)
    prepared = chosen
    if args.lufs is not None and math.isfinite(before):
        prepared = chosen * np.float32(10 ** ((args.lufs - before) / 20))
        peak = float(np.abs(prepared).max())
        if peak > 0.99:
            prepared = prepared * np.float32(0.99 / peak)
            notes.append(f"scaled down to keep the peak at -0.1 dBFS (short of {args.lufs:g})")
    after = loudness(prepared)
    print(f"loudness: {describe(before, 'LUFS')} -> {describe(after, 'LUFS')}")

    seconds = len(prepared) / RATE
    if seconds <= TURBO_MIN_SECONDS:
        problems.append(
            f"the prepared clip is {seconds:.1f} s: chatterbox-turbo needs more than "
            f"{TURBO_MIN_SECONDS:g} s (the server refuses it for Turbo); 10-20 s is best"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.output, wav_bytes(prepared))
    print(f"wrote {args.output}: {seconds:.2f} s, {RATE} Hz mono 16-bit WAV")
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"warning: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
