"""Write test audio in real container formats with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

CODECS = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".flac": "flac", ".ogg": "libopus",
          ".m4a": "aac"}  # fmt: skip


LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def write_audio(path: Path, pcm: np.ndarray, sample_rate: int, codec: str | None = None) -> Path:
    """Encode float PCM to ``path``: mono (samples,) or (channels, samples) for 1, 2 or 6
    channels; the codec follows the suffix unless named."""
    codec = codec or CODECS[path.suffix]
    samples = np.atleast_2d(pcm).astype(np.float32)
    rate = 48000 if codec == "libopus" else sample_rate
    if rate != sample_rate:
        from common.audio import resample

        samples = np.stack([resample(channel, sample_rate, rate) for channel in samples])
    layout = LAYOUTS[len(samples)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        fmt = stream.codec_context.codec.audio_formats[0].name
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, samples.shape[1], frame_size):
            block = np.ascontiguousarray(samples[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = rate
            if fmt != "fltp":
                frame = av.AudioResampler(format=fmt, layout=layout, rate=rate).resample(frame)[0]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
