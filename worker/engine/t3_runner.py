"""The T3 model runner: executes a :class:`T3Step` over every slot of the batch at once.

It knows nothing of requests, queues or asyncio: it owns the device state (the KV cache, each
slot's latest logits and the tokens it has generated, for the repetition penalty) and turns a
step's plan into tokens. Per step: apply the scheduler's slot moves, prefill the sequences that
join, sample the next token of every slot that runs (CFG rows combined per sequence, each with
its own settings and generator), and feed those tokens through the backbone in one call.

Inputs follow upstream ``T3.inference``: conditioning, text between its start and stop tokens
(not for Turbo), the start-of-speech token, and the second start-of-speech embedding at speech
position 0 that upstream appends (not for Turbo). With CFG every slot has two rows, conditional
and unconditional (text embeddings zeroed), fed the same sampled token and combined as
``cond + cfg_weight * (cond - uncond)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from chatterbox.models.t3.modules.cond_enc import T3Cond

from .loading import LoadedModel
from .sampling import BatchSampling, sample
from .t3_backbone import Attention, KVCache, backbone_for
from .t3_scheduler import SlotStep, T3Result, T3Sequence, T3Step

SPEECH_VOCAB = 6561  # valid S3 speech tokens are < 6561
LENGTH_BUCKET = 64  # attention reads the cache in multiples of this many positions


def kv_bytes_per_slot(model: LoadedModel, context: int) -> int:
    """KV-cache bytes one slot takes: keys and values of every layer, ``context`` positions,
    one row (two with CFG), in the model's dtype."""
    backbone = backbone_for(model.t3.tfmr)
    rows = 1 if model.variant.turbo_family else 2
    values = 2 * backbone.layers * backbone.kv_heads * backbone.head_dim * context * rows
    return values * torch.tensor([], dtype=model.dtype).element_size()


@dataclass(frozen=True)
class T3Prompt:
    """What a sequence is prefilled with: a fresh ``T3Cond`` and the chunk's text token ids."""

    cond: T3Cond
    text_ids: list[int]


class T3Runner:
    def __init__(
        self,
        model: LoadedModel,
        slots: int,
        context: int,
        batch_invariant: bool = False,
        cuda_graphs: bool = True,
    ) -> None:
        self.t3 = model.t3
        self.hp = model.t3.hp
        self.turbo = model.variant.turbo_family
        self.rows_per_slot = 1 if self.turbo else 2
        self.device = model.t3.device
        self.backbone = backbone_for(model.t3.tfmr)
        rows = slots * self.rows_per_slot
        self.cache = KVCache(
            self.backbone.layers, rows, self.backbone.kv_heads, context,
            self.backbone.head_dim, model.dtype, self.device,
        )  # fmt: skip
        vocab = self.hp.speech_tokens_dict_size
        self.logits = torch.zeros(rows, vocab, dtype=torch.float32, device=self.device)
        self.seen = torch.zeros(slots, vocab, dtype=torch.bool, device=self.device)
        mask = torch.full((2, vocab), -math.inf, device=self.device)
        mask[:, :SPEECH_VOCAB] = 0.0
        mask[0, self.hp.stop_speech_token] = 0.0
        self.token_masks = mask  # row 0: EOS allowed; row 1: EOS masked (a fixed token count)
        self.batch_invariant = batch_invariant
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"

    @torch.inference_mode()
    def step(self, plan: T3Step) -> T3Result:
        self._move(plan.moves)
        lengths = self._prefill(plan.prefill)
        sampling = [i for i, s in enumerate(plan.slots) if s.sample]
        tokens = self._sample(plan.slots, sampling)
        if sampling:
            positions = [lengths.get(i, s.position) for i, s in enumerate(plan.slots)]
            self._decode(plan.slots, sampling, positions, tokens)
        drawn = tokens.tolist()  # the step's one sync with the CPU
        return T3Result(tokens=dict(zip(sampling, drawn, strict=True)), prefill_lengths=lengths)

    # --- slots --------------------------------------------------------------------------------

    def _rows(self, slot: int) -> list[int]:
        return [slot * self.rows_per_slot + r for r in range(self.rows_per_slot)]

    def _move(self, moves: tuple[tuple[int, int], ...]) -> None:
        if not moves:
            return
        sources = [row for source, _ in moves for row in self._rows(source)]
        targets = [row for _, target in moves for row in self._rows(target)]
        self.cache.move_rows(sources, targets)
        self.logits[targets] = self.logits[sources]
        self.seen[[t for _, t in moves]] = self.seen[[s for s, _ in moves]]

    # --- prefill ------------------------------------------------------------------------------

    def _prefill(self, joining: tuple[tuple[int, T3Sequence], ...]) -> dict[int, int]:
        if not joining:
            return {}
        embeds = [self._prompt_embeds(sequence.prompt) for _, sequence in joining]
        lengths = [e.shape[1] for e in embeds]
        longest = self._bucket(max(lengths))
        batch = torch.cat([F.pad(e, (0, 0, 0, longest - e.shape[1])) for e in embeds])
        first = joining[0][0] * self.rows_per_slot
        rows = slice(first, first + batch.shape[0])
        positions = torch.arange(longest, device=self.device).expand(batch.shape[0], -1)
        causal = torch.ones(longest, longest, dtype=torch.bool, device=self.device).tril()
        attention = Attention(longest, causal[None, None], causal=False)
        hidden = self.backbone(batch, rows, positions, self.cache, attention)
        last = torch.tensor(
            [n - 1 for n in lengths for _ in range(self.rows_per_slot)], device=self.device
        )
        self.logits[rows] = self._head(hidden[torch.arange(batch.shape[0]), last])
        slots = [slot for slot, _ in joining]
        self.seen[slots] = False
        return dict(zip(slots, lengths, strict=True))

    def _prompt_embeds(self, prompt: T3Prompt) -> torch.Tensor:
        """The prefill embeddings of one sequence: (rows_per_slot, length, dim)."""
        hp, rows = self.hp, self.rows_per_slot
        text = torch.tensor([prompt.text_ids], dtype=torch.long, device=self.device)
        if not self.turbo:
            text = F.pad(F.pad(text, (1, 0), value=hp.start_text_token), (0, 1),
                         value=hp.stop_text_token)  # fmt: skip
        bos = torch.full((rows, 1), hp.start_speech_token, dtype=torch.long, device=self.device)
        embeds, _ = self.t3.prepare_input_embeds(
            t3_cond=prompt.cond, text_tokens=text.expand(rows, -1), speech_tokens=bos,
            cfg_weight=1.0 if rows == 2 else 0.0,  # the second row is the unconditional one
        )  # fmt: skip
        if not self.turbo:
            position = self.t3.speech_pos_emb.get_fixed_embedding(0)
            embeds = torch.cat(
                [embeds, (self.t3.speech_emb(bos[:1]) + position).expand(rows, -1, -1)], 1
            )
        return embeds

    # --- sampling -----------------------------------------------------------------------------

    def _sample(self, slots: tuple[SlotStep, ...], indices: list[int]) -> torch.Tensor:
        """The next token of each slot in ``indices`` (the slots that sample this step)."""
        if not indices:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        sampling = [slots[i] for i in indices]
        cond_rows = torch.tensor([i * self.rows_per_slot for i in indices], device=self.device)
        logits = self.logits[cond_rows]
        if self.rows_per_slot == 2:
            weights = torch.tensor([[s.sequence.cfg_weight] for s in sampling], device=self.device)
            logits = logits + weights * (logits - self.logits[cond_rows + 1])
        masks = [int(s.sequence.ignore_eos) for s in sampling]
        logits = logits + self.token_masks[masks]
        configs = [s.sequence.sampling for s in sampling]
        uniforms = torch.tensor(
            [0.0 if c.greedy else float(torch.rand((), generator=s.sequence.generator))
             for c, s in zip(configs, sampling, strict=True)],
            device=self.device,
        )  # fmt: skip
        seen = self.seen[indices]
        tokens = sample(logits, seen, BatchSampling.of(configs, self.device), uniforms)
        self.seen[indices, tokens] = True
        return tokens

    # --- decode -------------------------------------------------------------------------------

    def _decode(
        self, slots: tuple[SlotStep, ...], indices: list[int], positions: list[int],
        tokens: torch.Tensor,
    ) -> None:  # fmt: skip
        """Feed the token of each slot in ``indices`` (the other rows ride along with zeros; in
        the batch-invariant mode every row of the cache, at position 0 if its slot is free) and
        refresh those slots' logits."""
        rows = self.cache.rows if self.batch_invariant else len(slots) * self.rows_per_slot
        width = self.t3.dim
        embeds = torch.zeros(rows, 1, width, dtype=self.t3.speech_emb.weight.dtype,
                             device=self.device)  # fmt: skip
        fed = self.t3.speech_emb(tokens)
        if not self.turbo:
            speech_positions = torch.tensor(
                [slots[i].speech_position for i in indices], device=self.device
            )
            fed = fed + self.t3.speech_pos_emb.emb(speech_positions)
        sample_rows = torch.tensor(
            [i * self.rows_per_slot + r for i in indices for r in range(self.rows_per_slot)],
            device=self.device,
        )
        embeds[sample_rows, 0] = fed.repeat_interleave(self.rows_per_slot, dim=0)
        row_positions = [p for p in positions for _ in range(self.rows_per_slot)]
        row_positions += [0] * (rows - len(row_positions))
        where = torch.tensor(row_positions, device=self.device)[:, None]
        attention = self._attention(row_positions)
        hidden = self.backbone(embeds, slice(0, rows), where, self.cache, attention)
        self.logits[sample_rows] = self._head(hidden[:, -1])[sample_rows]

    # --- batch invariance ---------------------------------------------------------------------
    # Sampling has edges (the min_p and top_p cuts, the boundaries of the draw): a difference in
    # the last bit of a logit there picks another token, and a request then sounds different
    # beside others than alone. Attention rounds differently for other lengths and with or
    # without a mask, so it always masks, over lengths in multiples of LENGTH_BUCKET, which
    # round alike (free). Matrix products round differently for other row counts (BLAS picks
    # other kernels: on an AVX-512 Xeon a row differs by ~1e-6 between 1, 2-15 and 16+ rows),
    # so in the batch-invariant mode every product runs at one row count, all rows of the cache,
    # whichever are live; a lone stream then costs what a full batch does (measured on the tiny
    # checkpoint on a CPU: 4 ms -> 13 ms a step at 8 slots), so it is a setting.

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Speech logits (float32) of ``hidden`` (n, dim); batch-invariant: among all rows."""
        if not self.batch_invariant:
            return self.t3.speech_head(hidden).float()
        padded = hidden.new_zeros(self.cache.rows, hidden.shape[-1])
        padded[: hidden.shape[0]] = hidden
        logits: torch.Tensor = self.t3.speech_head(padded)[: hidden.shape[0]].float()
        return logits

    def _bucket(self, length: int) -> int:
        return min(self.cache.context, -(-length // LENGTH_BUCKET) * LENGTH_BUCKET)

    def _attention(self, positions: list[int]) -> Attention:
        """Each row reads up to its own position, masked, over a bucketed length."""
        length = self._bucket(max(positions) + 1)
        reach = (
            torch.arange(length, device=self.device)[None, :]
            <= torch.tensor(positions, device=self.device)[:, None]
        )
        return Attention(length, reach[:, None, None, :], causal=False)
