"""Write test audio in real container formats with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

CODECS = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".flac": "flac", ".ogg": "libopus",
          ".m4a": "aac"}  # fmt: skip


def write_audio(path: Path, pcm: np.ndarray, sample_rate: int) -> Path:
    """Encode mono float PCM to ``path``; the codec follows the suffix."""
    codec = CODECS[path.suffix]
    rate = 48000 if codec == "libopus" else sample_rate
    if rate != sample_rate:
        from common.audio import resample

        pcm = resample(pcm, sample_rate, rate)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        fmt = stream.codec_context.codec.audio_formats[0].name
        samples = pcm.astype(np.float32)
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, len(samples), frame_size):
            block = samples[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
            frame.sample_rate = rate
            if fmt != "flt":
                frame = av.AudioResampler(format=fmt, layout="mono", rate=rate).resample(frame)[0]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
