"""A source recording as S3Gen's speech tokens, piece by piece, equal to upstream's one call.

Upstream's ``ChatterboxVC.generate`` calls ``s3gen.tokenizer(audio_16k)`` once. That tokenizer
(``S3TokenizerV2.quantize``) attends over at most 30 s (3000 mel frames): a longer source is cut
into 30 s pieces every 26 s (4 s of overlap), all encoded in one padded batch, and stitched by
dropping 2 s (50 tokens) at each inner edge (``s3tokenizer.utils.merge_tokenized_segments``).
Here the same pieces are encoded one at a time, so the first piece's tokens can be decoded
while the next are still to be made; the stitching is upstream's, so the tokens are upstream's
(a piece alone rather than in a batch: the same arithmetic but for the BLAS kernel a batch
size picks; measured equal on the tiny checkpoint, tests/engine/test_vc.py).

The log-mel is computed once over the whole source, as upstream does: its floor is 8 (log10)
below the loudest frame of the *whole* source, so a piece's own mel would differ. It is cheap
(one STFT); the encoder is the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..model.loading import LoadedModel

SOURCE_RATE = 16000  # S3_SR: the tokenizer's input rate
MEL_HOP = 160  # samples per mel frame (100 a second)
PIECE_FRAMES = 3000  # 30 s: the most the tokenizer attends over
STRIDE_FRAMES = 2600  # a piece every 26 s: 4 s of overlap
OVERLAP_DROP_TOKENS = 50  # 2 s at 25 tokens a second, dropped at each inner edge


@dataclass(frozen=True)
class Piece:
    """Mel frames [start, stop) encoded together; of their tokens, [keep_from, keep_to) kept."""

    start: int
    stop: int
    keep_from: int
    keep_to: int | None  # None: to the end (the last piece)
    padded: bool  # padded to PIECE_FRAMES as upstream pads the pieces of a long source


def plan(frames: int) -> list[Piece]:
    """The pieces of a source of ``frames`` mel frames, as upstream's ``quantize`` cuts it."""
    if frames <= PIECE_FRAMES:
        return [Piece(0, frames, 0, None, padded=False)]
    starts = list(range(0, frames, STRIDE_FRAMES))
    return [
        Piece(
            start,
            min(start + PIECE_FRAMES, frames),
            0 if i == 0 else OVERLAP_DROP_TOKENS,
            None if i == len(starts) - 1 else -OVERLAP_DROP_TOKENS,
            padded=True,
        )
        for i, start in enumerate(starts)
    ]


class SourceTokenizer:
    """S3Gen's tokenizer over one source; call from the S3Gen loop's thread."""

    def __init__(self, model: LoadedModel) -> None:
        self.tokenizer = model.s3gen.tokenizer
        self.device = model.device

    @torch.inference_mode()
    def mel(self, source: np.ndarray) -> torch.Tensor:
        """The whole source's log-mel (128, frames), on the device (as upstream's ``forward``)."""
        wav = torch.from_numpy(np.ascontiguousarray(source, dtype=np.float32)).to(self.device)
        return self.tokenizer.log_mel_spectrogram(wav[None])[0]

    @torch.inference_mode()
    def tokens(self, mel: torch.Tensor, piece: Piece) -> list[int]:
        """The kept tokens of ``piece``: one encoder pass, one read-back."""
        part = mel[:, piece.start : piece.stop]
        if piece.padded:
            part = F.pad(part, (0, PIECE_FRAMES - part.shape[1]))
        length = torch.tensor([piece.stop - piece.start], device=mel.device)
        hidden, lengths = self.tokenizer.encoder(part[None], length)
        codes = self.tokenizer.quantizer.encode(hidden)
        # One read-back: the codes and their count together.
        host = torch.cat([codes[0].long(), lengths.long()]).cpu().tolist()
        ids = host[: host[-1]]
        return ids[piece.keep_from : piece.keep_to]


def frames_of(samples: int) -> int:
    """Mel frames of ``samples`` at 16 kHz (a centred STFT, its last frame dropped)."""
    return samples // MEL_HOP
