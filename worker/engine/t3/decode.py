"""One T3 decode step over a bucket of slots: device work only, so it can be captured.

The step reads the slot table the host staged (:mod:`.staging`), samples each sampling slot's
next token from the logits the previous step left, feeds it through the backbone (riders are
fed zeros, their results thrown away) and keeps the new logits. No host value is read and no
branch depends on a tensor's value; its shapes depend only on ``(slots, length)``, a bucket of
batch sizes and of attention lengths, so ``torch.compile(fullgraph=True)`` takes it whole and
CUDA replays it from a graph per bucket (:mod:`.graphs`).

A slot whose logits are not finite (NaN or inf anywhere after CFG), or whose drawn token is
neither a speech token (< 6561) nor an allowed EOS, gets :data:`INVALID` instead of a token and
is fed token 0: no out-of-range index ever reaches an embedding, on the device, and the host
ends that one request.

With alignment heads (:mod:`.alignment_probe`), the step also reads where each slot's speech is
in its text; the step returns (slots, 2): the token and that text position, one tensor, so the
host still reads back once.
"""

from __future__ import annotations

from typing import Any

import torch

from .alignment_probe import AlignmentProbe, Head
from .backbone import Attention, Backbone, KVCache
from .sampling import GREEDY_TEMPERATURE, BatchSampling, sample
from .staging import Column

SPEECH_VOCAB = 6561  # valid S3 speech tokens are < 6561
INVALID = -1  # the token of a slot whose logits were not finite


class DecodeStep:
    """``step(slots, length)``: (slots, 2), the token and the text position (``NO_POSITION``
    without alignment heads) of the first ``slots`` slots, attending over ``length`` cache
    positions. Holds references to the runner's device state only."""

    def __init__(
        self,
        t3: Any,
        backbone: Backbone,
        cache: KVCache,
        logits: torch.Tensor,
        seen: torch.Tensor,
        table: torch.Tensor,
        rows_per_slot: int,
        penalty_last: bool,
        alignment_heads: tuple[Head, ...] = (),
    ) -> None:
        self.t3, self.backbone, self.cache = t3, backbone, cache
        self.alignment_heads = alignment_heads
        self.logits, self.seen, self.table = logits, seen, table
        self.rows_per_slot = rows_per_slot
        self.penalty_last = penalty_last
        self.turbo = rows_per_slot == 1
        self.eos = int(t3.hp.stop_speech_token)
        vocab = logits.shape[-1]
        allowed = torch.arange(vocab, device=logits.device) < SPEECH_VOCAB
        self.speech_only = torch.where(allowed, 0.0, -float("inf"))  # EOS masked
        self.with_eos = self.speech_only.clone()
        self.with_eos[self.eos] = 0.0

    def __call__(self, slots: int, length: int, ranked: bool = True) -> torch.Tensor:
        table = self.table[:slots]
        sample_now = table[:, Column.SAMPLE] > 0
        tokens, valid = self._sample(table, slots, ranked)
        fed = torch.where(valid & sample_now, tokens, 0)
        self._remember(fed, valid & sample_now, slots)
        probe = AlignmentProbe(self.alignment_heads, self.rows_per_slot)
        self._feed(table, fed, sample_now, slots, length, probe)
        return torch.stack([torch.where(valid, tokens, INVALID), probe.positions(table)], dim=1)

    def _sample(
        self, table: torch.Tensor, slots: int, ranked: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.logits.view(-1, self.rows_per_slot, self.logits.shape[-1])[:slots]
        logits = rows[:, 0]
        if not self.turbo:  # CFG: cond + weight * (cond - uncond)
            logits = logits + table[:, Column.CFG_WEIGHT, None] * (logits - rows[:, 1])
        finite = torch.isfinite(logits).all(dim=-1)
        eos_allowed = table[:, Column.EOS_ALLOWED] > 0
        logits = logits + torch.where(eos_allowed[:, None], self.with_eos, self.speech_only)
        settings = self._settings(table, ranked)
        tokens = sample(logits, self.seen[:slots], settings, table[:, Column.UNIFORM])
        speech = (tokens >= 0) & (tokens < SPEECH_VOCAB)
        return tokens, finite & (speech | ((tokens == self.eos) & eos_allowed))

    def _settings(self, table: torch.Tensor, ranked: bool) -> BatchSampling:
        def column(name: Column) -> torch.Tensor:
            return table[:, name, None]

        return BatchSampling(
            temperature=column(Column.TEMPERATURE).clamp(min=GREEDY_TEMPERATURE),
            top_k=table[:, Column.TOP_K].long(),
            min_p=column(Column.MIN_P),
            top_p=column(Column.TOP_P),
            penalty=column(Column.PENALTY),
            greedy=table[:, Column.GREEDY] > 0,
            penalty_last=self.penalty_last,
            ranked=ranked,
        )

    def _remember(self, fed: torch.Tensor, taken: torch.Tensor, slots: int) -> None:
        """Mark each slot's new token as generated (the repetition penalty's memory)."""
        seen = self.seen[:slots]
        index = fed[:, None]
        seen.scatter_(1, index, seen.gather(1, index) | taken[:, None])

    def _feed(
        self, table: torch.Tensor, fed: torch.Tensor, sample_now: torch.Tensor, slots: int,
        length: int, probe: AlignmentProbe,
    ) -> None:  # fmt: skip
        per, rows = self.rows_per_slot, slots * self.rows_per_slot
        embeds = self.t3.speech_emb(fed)
        if not self.turbo:  # learned speech positions (Turbo's GPT-2 has its own)
            embeds = embeds + self.t3.speech_pos_emb.emb(table[:, Column.SPEECH_POSITION].long())
        embeds = (embeds * sample_now[:, None]).repeat_interleave(per, dim=0)[:, None]
        positions = table[:, Column.POSITION].long().repeat_interleave(per)[:, None]
        reach = torch.arange(length, device=positions.device)[None, :] <= positions
        attention = Attention(length, reach[:, None, None, :], causal=False, probe=probe)
        hidden = self.backbone(embeds, slice(0, rows), positions, self.cache, attention)
        fresh = self.t3.speech_head(hidden[:, -1]).float()
        update = sample_now.repeat_interleave(per)[:, None]
        self.logits[:rows] = torch.where(update, fresh, self.logits[:rows])
