"""Streaming audio encoders: int16 mono PCM chunks in, bytes of the requested format out.

Every encoder emits whatever its codec and muxer have ready after each chunk, so the first bytes
leave with the first PCM chunk; ``finish()`` flushes the rest. PyAV (libav) does the encoding in
process, no ffmpeg subprocess; its output goes to an in-memory, non-seekable sink, which makes
the muxers write streamable files (fragmented MP4, live WebM, MP3 without a Xing header ...).
Resampling to ``sample_rate`` is soxr's streaming resampler, so chunk joins stay seamless.

Encoding runs in the master (docs/ARCHITECTURE.md has the measurement behind that choice), in a
thread pool: libav releases the GIL while it encodes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import Protocol

import av
import numpy as np
import soxr

from .headers import wav_header

MULAW_RATE = 8000  # mu-law and A-law: telephony's 8 kHz only
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True)
class Format:
    """One output format: its media type and how it is made."""

    name: str
    media_type: str
    container: str | None = None  # libav muxer; None: bytes written directly
    codec: str | None = None
    rates: tuple[int, ...] | None = None  # None: any rate from 8 kHz to 48 kHz
    muxer_options: dict[str, str] = field(default_factory=dict)
    bit_rate: int | None = None


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("wav", "audio/wav"),
        Format("raw_pcm", "audio/pcm"),
        Format("mulaw", "audio/basic", codec="pcm_mulaw", rates=(MULAW_RATE,)),
        Format("alaw", "audio/x-alaw-basic", codec="pcm_alaw", rates=(MULAW_RATE,)),
        Format(
            "mp3", "audio/mpeg", "mp3", "libmp3lame", _MP3_RATES,
            {"write_xing": "0", "id3v2_version": "0"}, bit_rate=64000,
        ),
        Format(
            "fmp4", 'audio/mp4; codecs="mp4a.40.2"', "mp4", "aac", _AAC_RATES,
            # Init segment (its edit list trims AAC's priming), then a fragment per ~100 ms for MSE.
            {
                "movflags": "empty_moov+default_base_moof+frag_keyframe+delay_moov",
                "frag_duration": "100000",
            },
            bit_rate=64000,
        ),
        Format(
            "webm", 'audio/webm; codecs="opus"', "webm", "libopus", _OPUS_RATES,
            {"live": "1", "cluster_time_limit": "100"}, bit_rate=48000,
        ),
        Format(
            "ogg", 'audio/ogg; codecs="opus"', "ogg", "libopus", _OPUS_RATES,
            {"page_duration": "100000"}, bit_rate=48000,
        ),
        Format("flac", "audio/flac", "flac", "flac"),
        Format("aac", "audio/aac", "adts", "aac", _AAC_RATES, bit_rate=64000),
    )
}  # fmt: skip


# A format may name a bit rate for its codec, as ``mp3@32000``: how adapters ask for
# ElevenLabs' ``mp3_44100_32`` without a field of their own (our API's ``format`` takes only
# the names above).
_BIT_RATE_SEPARATOR = "@"


def with_bit_rate(name: str, bit_rate: int) -> str:
    """``name`` encoded at ``bit_rate`` bits per second (a compressed format of FORMATS)."""
    return f"{name}{_BIT_RATE_SEPARATOR}{bit_rate}"


def format_spec(name: str) -> Format:
    """The Format ``name`` (``mp3``, or ``mp3@32000`` with its bit rate) stands for."""
    base, _, bit_rate = name.partition(_BIT_RATE_SEPARATOR)
    spec = FORMATS[base]
    if not bit_rate:
        return spec
    return replace(spec, bit_rate=int(bit_rate))


def output_rate(name: str, requested: int | None, source_rate: int) -> int:
    """The rate ``name`` is encoded at; raise ValueError (a message for the client) if invalid."""
    spec = format_spec(name)
    if spec.name in ("mulaw", "alaw"):
        if requested not in (None, MULAW_RATE):
            raise ValueError(f"{spec.name} is {MULAW_RATE} Hz only")
        return MULAW_RATE
    rate = source_rate if requested is None else requested
    if spec.rates is not None and rate not in spec.rates:
        allowed = ", ".join(str(r) for r in spec.rates)
        raise ValueError(f"{spec.name} supports sample rates {allowed}, not {rate}")
    if not 8000 <= rate <= 48000:
        raise ValueError(f"sample_rate must be between 8000 and 48000, not {rate}")
    return rate


class Encoder(Protocol):
    media_type: str

    def encode(self, pcm: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Sink(io.RawIOBase):
    """Where libav writes: collects bytes until taken. Not seekable, so muxers stream."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class _Resampler:
    """int16 bytes at ``source`` Hz -> int16 array at ``target`` Hz, across chunk boundaries."""

    def __init__(self, source: int, target: int) -> None:
        self.stream = (
            soxr.ResampleStream(source, target, 1, dtype="int16") if source != target else None
        )

    def __call__(self, pcm: bytes, last: bool = False) -> np.ndarray:
        samples = np.frombuffer(pcm, dtype="<i2")
        if self.stream is None:
            return samples
        return self.stream.resample_chunk(samples, last=last)


class PcmEncoder:
    """wav (a header for unknown length, then samples) and raw_pcm: s16le, resampled if asked."""

    def __init__(self, name: str, source_rate: int, rate: int) -> None:
        self.media_type = format_spec(name).media_type
        self.resample = _Resampler(source_rate, rate)
        self._header = wav_header(rate) if name == "wav" else b""

    def encode(self, pcm: bytes) -> bytes:
        header, self._header = self._header, b""
        return header + self.resample(pcm).astype("<i2").tobytes()

    def finish(self) -> bytes:
        header, self._header = self._header, b""
        return header + self.resample(b"", last=True).astype("<i2").tobytes()


class AvEncoder:
    """A libav codec, in a container (mp3, fmp4, webm, ogg, flac) or bare (mulaw, alaw)."""

    def __init__(self, name: str, source_rate: int, rate: int) -> None:
        spec = format_spec(name)
        assert spec.codec is not None
        self.media_type = spec.media_type
        self.rate = rate
        self.resample = _Resampler(source_rate, rate)
        self.pts = 0
        self.sink = _Sink()
        self.container: av.container.OutputContainer | None = None
        self.codec: av.AudioCodecContext
        if spec.container is None:
            self.codec = av.CodecContext.create(spec.codec, "w")  # type: ignore[assignment]
            self._encode_frame = self.codec.encode
        else:
            options = {"flush_packets": "1", **spec.muxer_options}
            self.container = av.open(self.sink, mode="w", format=spec.container, options=options)
            stream: av.AudioStream = self.container.add_stream(spec.codec, rate=rate)  # type: ignore[assignment]
            self.codec = stream.codec_context
            self._encode_frame = stream.encode
        self.codec.sample_rate = rate
        self.codec.layout = "mono"
        if spec.bit_rate:
            self.codec.bit_rate = spec.bit_rate
        if spec.container is None:
            self.codec.format = "s16"
            self.codec.open()

    def encode(self, pcm: bytes) -> bytes:
        return self._encode(self.resample(pcm))

    def finish(self) -> bytes:
        data = self._encode(self.resample(b"", last=True))
        data += self._write(self._encode_frame(None))
        if self.container is not None:
            self.container.close()
            data += self.sink.take()
        return data

    def _encode(self, samples: np.ndarray) -> bytes:
        if not len(samples):
            return b""
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1),
            format="s16",
            layout="mono",
        )
        frame.sample_rate = self.rate
        frame.pts = self.pts
        self.pts += len(samples)
        return self._write(self._encode_frame(frame))

    def _write(self, packets: list[av.Packet]) -> bytes:
        if self.container is None:
            return b"".join(bytes(p) for p in packets)
        self.container.mux(packets)
        return self.sink.take()


def make_encoder(name: str, source_rate: int, rate: int) -> Encoder:
    if name in ("wav", "raw_pcm"):
        return PcmEncoder(name, source_rate, rate)
    return AvEncoder(name, source_rate, rate)
