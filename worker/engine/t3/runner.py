"""The T3 model runner: executes a :class:`T3Step` over every slot of the batch at once.

It knows nothing of requests, queues or asyncio: it owns the device state (the KV cache, each
slot's latest logits and the tokens it has generated, for the repetition penalty) and turns a
step's plan into tokens. Per step: stage the plan in one upload (:mod:`.staging`), apply the
scheduler's slot moves, prefill the sequences that join, then one decode step
(:mod:`.decode`) samples the next token of every slot that runs (CFG rows combined per
sequence, each with its own settings and draw) and feeds those tokens through the backbone in
one call, replayed from a CUDA graph where it can be (:mod:`.graphs`). The drawn tokens, with
each slot's text position read from the alignment heads (:mod:`.alignment_probe`), are the
step's one read back to the host.

Inputs follow upstream ``T3.inference``: conditioning, text between its start and stop tokens
(not for Turbo), the start-of-speech token, and the second start-of-speech embedding at speech
position 0 that upstream appends (not for Turbo). With CFG every slot has two rows, conditional
and unconditional (text embeddings zeroed), fed the same sampled token and combined as
``cond + cfg_weight * (cond - uncond)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.conditioning import VoiceConditioning
from ..model.loading import LoadedModel
from .alignment_probe import NO_POSITION, Head, default_alignment_heads
from .backbone import Attention, KVCache, backbone_for
from .decode import INVALID, DecodeStep
from .graphs import GraphedDecode
from .sampling import needs_ranking
from .scheduler import SlotStep, T3Result, T3Sequence, T3Step
from .staging import Column, Staging

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
    """What a sequence is prefilled with: its voice and exaggeration (the runner makes the
    ``T3Cond``, a device tensor, in its own thread) and the chunk's text token ids."""

    voice: VoiceConditioning
    exaggeration: float
    text_ids: list[int]


class T3Runner:
    def __init__(
        self,
        model: LoadedModel,
        slots: int,
        context: int,
        batch_invariant: bool = False,
        cuda_graphs: bool = True,
        alignment_heads: tuple[Head, ...] | None = None,
    ) -> None:
        """``alignment_heads``: the (layer, head) pairs whose attention places each token in
        its text; None: the variant's published ones, where the model has them
        (:func:`default_alignment_heads`); (): none, so no text positions."""
        self.t3 = model.t3
        self.hp = model.t3.hp
        self.dtype = model.dtype
        self.turbo = model.variant.turbo_family
        self.rows_per_slot = 1 if self.turbo else 2
        self.device = model.t3.device
        self.backbone = backbone_for(model.t3.tfmr)
        self.capacity = slots
        self.cache = KVCache(
            self.backbone.layers, slots * self.rows_per_slot, self.backbone.kv_heads, context,
            self.backbone.head_dim, model.dtype, self.device,
        )  # fmt: skip
        vocab = self.hp.speech_tokens_dict_size
        self.logits = torch.zeros(self.cache.rows, vocab, dtype=torch.float32, device=self.device)
        self.seen = torch.zeros(slots, vocab, dtype=torch.bool, device=self.device)
        self.staging = Staging(slots, context, self.device)
        self.batch_invariant = batch_invariant
        if alignment_heads is None:
            heads = int(model.t3.tfmr.config.num_attention_heads)
            layers = self.backbone.layers
            alignment_heads = default_alignment_heads(layers, heads, model.variant)
        self.alignment_heads = alignment_heads
        step = DecodeStep(
            self.t3, self.backbone, self.cache, self.logits, self.seen, self.staging.table,
            self.rows_per_slot, penalty_last=self.turbo, alignment_heads=alignment_heads,
        )  # fmt: skip
        self.decode = GraphedDecode(step, enabled=cuda_graphs and self.device.type == "cuda")

    @torch.inference_mode()
    def step(self, plan: T3Step) -> T3Result:
        self._stage(plan.slots)
        moves = self.staging.put([i for move in plan.moves for i in move])
        texts = [self.staging.put(sequence.prompt.text_ids) for _, sequence in plan.prefill]
        self.staging.upload()
        self._move(len(plan.moves), moves)
        lengths = self._prefill(plan.prefill, texts)
        sampling = [i for i, s in enumerate(plan.slots) if s.sample]
        if not sampling:
            return T3Result(tokens={}, prefill_lengths=lengths)
        length = self._bucket(max(s.position for s in plan.slots) + 1)
        ranked = needs_ranking([s.sequence.sampling for s in plan.slots])
        read = self.decode(self._slot_bucket(len(plan.slots)), length, ranked).tolist()  # 1 sync
        drawn = {i: read[i][0] for i in sampling}
        return T3Result(
            tokens={i: token for i, token in drawn.items() if token != INVALID},
            prefill_lengths=lengths,
            invalid=frozenset(i for i, token in drawn.items() if token == INVALID),
            text_positions={i: read[i][1] for i in drawn if read[i][1] != NO_POSITION},
        )

    # --- staging ------------------------------------------------------------------------------

    def _stage(self, slots: tuple[SlotStep, ...]) -> None:
        table = self.staging.begin()
        if slots:
            table[: len(slots)] = [_table_row(slot, self.turbo) for slot in slots]

    # --- slots --------------------------------------------------------------------------------

    def _move(self, count: int, offset: int) -> None:
        """Apply ``count`` slot moves staged at ``offset`` as (source, target) pairs."""
        if not count:
            return
        pairs = self.staging.region(offset, 2 * count).view(count, 2)
        sources, targets = self._rows(pairs[:, 0]), self._rows(pairs[:, 1])
        self.cache.move_rows(sources, targets)
        self.logits[targets] = self.logits[sources]
        self.seen[pairs[:, 1]] = self.seen[pairs[:, 0]]

    def _rows(self, slots: torch.Tensor) -> torch.Tensor:
        per = self.rows_per_slot
        return (slots[:, None] * per + torch.arange(per, device=self.device)).reshape(-1)

    # --- prefill ------------------------------------------------------------------------------

    def _prefill(
        self, joining: tuple[tuple[int, T3Sequence], ...], texts: list[int]
    ) -> dict[int, int]:
        if not joining:
            return {}
        embeds = [
            self._prompt_embeds(
                sequence.prompt, self.staging.region(at, len(sequence.prompt.text_ids))
            )
            for (_, sequence), at in zip(joining, texts, strict=True)
        ]
        lengths = [e.shape[1] for e in embeds]
        for (_, sequence), length in zip(joining, lengths, strict=True):
            if length != sequence.prompt_length:  # the scheduler placed its first token there
                raise RuntimeError(
                    f"a prompt of {length} positions was planned as {sequence.prompt_length}"
                )
        longest = self._bucket(max(lengths))
        batch = torch.cat([F.pad(e, (0, 0, 0, longest - e.shape[1])) for e in embeds])
        first = joining[0][0] * self.rows_per_slot
        rows = slice(first, first + batch.shape[0])
        positions = torch.arange(longest, device=self.device).expand(batch.shape[0], -1)
        causal = torch.ones(longest, longest, dtype=torch.bool, device=self.device).tril()
        attention = Attention(longest, causal[None, None], causal=False)
        hidden = self.backbone(batch, rows, positions, self.cache, attention)
        last = [
            hidden[r, n - 1]
            for r, n in enumerate(n for n in lengths for _ in range(self.rows_per_slot))
        ]
        self.logits[rows] = self._head(torch.stack(last))
        slots = [slot for slot, _ in joining]
        self.seen[slots[0] : slots[-1] + 1] = False  # joining slots are consecutive
        return dict(zip(slots, lengths, strict=True))

    def _prompt_embeds(self, prompt: T3Prompt, text: torch.Tensor) -> torch.Tensor:
        """The prefill embeddings of one sequence: (rows_per_slot, length, dim)."""
        hp, rows = self.hp, self.rows_per_slot
        text = text[None]
        if not self.turbo:
            text = F.pad(F.pad(text, (1, 0), value=hp.start_text_token), (0, 1),
                         value=hp.stop_text_token)  # fmt: skip
        bos = torch.full((rows, 1), hp.start_speech_token, dtype=torch.long, device=self.device)
        embeds, _ = self.t3.prepare_input_embeds(
            t3_cond=prompt.voice.t3_cond_for(prompt.exaggeration, self.dtype),
            text_tokens=text.expand(rows, -1), speech_tokens=bos,
            cfg_weight=1.0 if rows == 2 else 0.0,  # the second row is the unconditional one
        )  # fmt: skip
        if not self.turbo:
            position = self.t3.speech_pos_emb.get_fixed_embedding(0)
            embeds = torch.cat(
                [embeds, (self.t3.speech_emb(bos[:1]) + position).expand(rows, -1, -1)], 1
            )
        return embeds

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
    # Otherwise a step runs over the live slots rounded up to a power of two, so that the shapes
    # a step can take, and the CUDA graphs captured for them, are few.

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Speech logits (float32) of ``hidden`` (n, dim); batch-invariant: among all rows."""
        if not self.batch_invariant:
            return self.t3.speech_head(hidden).float()
        padded = hidden.new_zeros(self.cache.rows, hidden.shape[-1])
        padded[: hidden.shape[0]] = hidden
        logits: torch.Tensor = self.t3.speech_head(padded)[: hidden.shape[0]].float()
        return logits

    def _slot_bucket(self, live: int) -> int:
        if self.batch_invariant:
            return self.capacity
        return min(self.capacity, 1 << max(0, live - 1).bit_length())

    def _bucket(self, length: int) -> int:
        return min(self.cache.context, -(-length // LENGTH_BUCKET) * LENGTH_BUCKET)


def _table_row(slot: SlotStep, turbo: bool) -> list[float]:
    """One slot's row of the staged table."""
    sequence, config = slot.sequence, slot.sequence.sampling
    text = len(sequence.prompt.text_ids)
    # The prompt ends with the text, then (Llama) its stop token and two start-of-speech, or
    # (GPT-2) one start-of-speech: see _prompt_embeds.
    text_start = sequence.prompt_length - text - (1 if turbo else 3)
    row = [0.0] * len(Column)
    row[Column.UNIFORM] = slot.uniform
    row[Column.SAMPLE] = slot.sample
    row[Column.POSITION] = slot.position
    row[Column.SPEECH_POSITION] = slot.speech_position
    row[Column.TEMPERATURE] = config.temperature
    row[Column.TOP_K] = config.top_k
    row[Column.MIN_P] = config.min_p
    row[Column.TOP_P] = config.top_p
    row[Column.PENALTY] = config.repetition_penalty
    row[Column.GREEDY] = config.greedy
    row[Column.CFG_WEIGHT] = sequence.cfg_weight
    row[Column.EOS_ALLOWED] = not sequence.ignore_eos
    row[Column.TEXT_START] = text_start
    row[Column.TEXT_LENGTH] = text
    return row
