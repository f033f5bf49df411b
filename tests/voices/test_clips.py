"""Checking an uploaded clip without trusting it: common.voices.clips.check_upload."""

from __future__ import annotations

import io
import tracemalloc

import av
import numpy as np
import pytest

from common.variants import Variant
from common.voices.clips import check_upload
from common.voices.errors import VoiceError


def silence_flac(hours: float, rate: int = 8000) -> bytes:
    """Compressed silence: an hour is about 650 KB, 345 MB once decoded at 24 kHz."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        block = np.zeros((1, rate * 10), dtype=np.int16)
        for _ in range(int(hours * 360)):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def test_a_clip_too_long_is_refused_as_soon_as_decoding_passes_the_limit() -> None:
    bomb = silence_flac(hours=1)
    assert len(bomb) < 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(VoiceError) as refused:
            check_upload(bomb, max_bytes=2_000_000, max_seconds=30, variant=Variant.ENGLISH)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.kind == "unusable_audio" and "over 30 s" in str(refused.value)
    assert peak < 50_000_000  # decoded whole, it would be 345 MB
