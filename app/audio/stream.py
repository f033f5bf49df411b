"""A request's PCM turned into the client's format as it arrives (HTTP and WebSocket alike).

Compressed formats are encoded in a small thread pool: libav releases the GIL while it encodes,
so the event loop keeps serving other clients; WAV and raw PCM are cheap enough to do inline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from .encoding import Encoder, PcmEncoder, make_encoder, output_rate
from .tempo import TempoEncoder

_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="encode")


def encoder_for(
    audio_format: str, requested_rate: int | None, source_rate: int, speed: float = 1.0
) -> Encoder:
    """The encoder for a request; with ``speed`` != 1 the tempo changes first (pitch kept)."""
    encoder = make_encoder(
        audio_format, source_rate, output_rate(audio_format, requested_rate, source_rate)
    )
    if speed != 1.0:
        return TempoEncoder(encoder, speed, source_rate)
    return encoder


async def encoded(pcm: AsyncIterable[bytes], encoder: Encoder) -> AsyncIterator[bytes]:
    """``pcm`` encoded, each piece as soon as the encoder has it."""
    inline = isinstance(encoder, PcmEncoder)
    loop = asyncio.get_running_loop()
    async for chunk in pcm:
        data = (
            encoder.encode(chunk)
            if inline
            else await loop.run_in_executor(_executor, encoder.encode, chunk)
        )
        if data:
            yield data
    tail = encoder.finish() if inline else await loop.run_in_executor(_executor, encoder.finish)
    if tail:
        yield tail
