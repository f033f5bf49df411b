"""T3 decoding in our own loop: KV cache, CFG as a batch of two, no per-token CPU sync.

Upstream's ``T3.inference`` asks the backbone for attentions and hidden states on every step,
syncs to the CPU for the EOS check on every token, cannot run with ``cfg_weight=0`` and has no
budget but 1000 tokens. This loop keeps upstream's input layout (conditioning, text, BOS, and the
second BOS embedding upstream appends), its processors and its CFG formula, and differs in what
it does not do. All state lives in the :class:`T3Stream` object of one request.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from chatterbox.models.t3.modules.cond_enc import T3Cond

from common.params import SynthesisParams
from common.variants import Variant

from .loading import LoadedModel
from .sampling import SamplingConfig, sample_next

SPEECH_VOCAB = 6561  # valid S3 speech tokens are < 6561
TOKENS_PER_SECOND = 25
SLOWEST_CHARS_PER_SECOND = 8.0

# Upstream generate() defaults per variant: (top_p, top_k, min_p, repetition_penalty).
VARIANT_SAMPLING: dict[Variant, tuple[float, int, float, float]] = {
    Variant.ENGLISH: (1.0, 0, 0.05, 1.2),
    Variant.TURBO: (0.95, 1000, 0.0, 1.2),
    Variant.MULTILINGUAL: (1.0, 0, 0.05, 2.0),
}


def sampling_config(variant: Variant, params: SynthesisParams) -> SamplingConfig:
    """The request's sampling settings, the variant's upstream defaults where it gave none."""
    top_p, top_k, min_p, penalty = VARIANT_SAMPLING[variant]
    return SamplingConfig(
        temperature=params.temperature,
        top_p=top_p if params.top_p is None else params.top_p,
        top_k=top_k if params.top_k is None else params.top_k,
        min_p=min_p if params.min_p is None else params.min_p,
        repetition_penalty=penalty
        if params.repetition_penalty is None
        else params.repetition_penalty,
    )


def token_budget(text: str, model_limit: int) -> int:
    """Most speech tokens a text may take: 1 s plus 1 s per 8 characters (slow speech).

    Hallucinating or random-weight models otherwise run on to upstream's 1000 tokens (40 s).
    """
    seconds = 1.0 + len(text) / SLOWEST_CHARS_PER_SECOND
    return max(1, min(math.ceil(seconds * TOKENS_PER_SECOND), model_limit))


class T3Stream:
    """Generates the speech tokens of one text chunk, a slice at a time."""

    def __init__(
        self,
        model: LoadedModel,
        cond: T3Cond,
        text: str,
        params: SynthesisParams,
        generator: torch.Generator | None,
    ) -> None:
        self.t3 = model.t3
        self.hp = model.t3.hp
        self.is_turbo = model.variant is Variant.TURBO
        self.cfg_weight = 0.0 if self.is_turbo else params.cfg_weight
        self.batch = 2 if self.cfg_weight > 0 else 1
        self.generator = generator
        self.sampling = sampling_config(model.variant, params)
        limit = self.hp.max_speech_tokens - 4
        self.budget = min(params.fixed_token_count or token_budget(text, limit), limit)
        self.ignore_eos = params.fixed_token_count is not None
        self.generated = 0
        self.done = False
        device = model.t3.device
        self.seen = torch.zeros(1, self.hp.speech_tokens_dict_size, dtype=torch.bool, device=device)
        self.token_mask = self._token_mask(device)
        text_ids = model.tokenize(text, params.language)
        self._prefill(cond, text_ids)

    def _token_mask(self, device: torch.device) -> torch.Tensor:
        """Additive mask: only valid speech tokens, plus EOS unless a fixed count is asked for."""
        mask = torch.full((1, self.hp.speech_tokens_dict_size), -math.inf, device=device)
        mask[:, :SPEECH_VOCAB] = 0.0
        if not self.ignore_eos:
            mask[:, self.hp.stop_speech_token] = 0.0
        return mask

    @torch.inference_mode()
    def _prefill(self, cond: T3Cond, text_ids: list[int]) -> None:
        device = self.t3.device
        text = torch.tensor([text_ids], dtype=torch.long, device=device)
        if not self.is_turbo:
            text = F.pad(text, (1, 0), value=self.hp.start_text_token)
            text = F.pad(text, (0, 1), value=self.hp.stop_text_token)
        text = text.expand(self.batch, -1)
        bos = torch.full(
            (self.batch, 1), self.hp.start_speech_token, dtype=torch.long, device=device
        )
        embeds, _ = self.t3.prepare_input_embeds(
            t3_cond=cond, text_tokens=text, speech_tokens=bos, cfg_weight=self.cfg_weight
        )
        if not self.is_turbo:
            # Upstream's inference appends a second BOS embedding (position 0) after the inputs.
            embeds = torch.cat([embeds, self._speech_embed(bos[:1], 0)], dim=1)
        out = self.t3.tfmr(inputs_embeds=embeds, use_cache=True)
        self.past = out.past_key_values
        self.logits = self.t3.speech_head(out.last_hidden_state[:, -1, :])

    def _speech_embed(self, token: torch.Tensor, position: int) -> torch.Tensor:
        embed = self.t3.speech_emb(token)
        if self.t3.speech_pos_emb is not None and not self.is_turbo:
            embed = embed + self.t3.speech_pos_emb.get_fixed_embedding(position)
        return embed.expand(self.batch, -1, -1)

    def _guided_logits(self) -> torch.Tensor:
        logits = self.logits.float()
        if self.batch == 2:
            cond, uncond = logits[0:1], logits[1:2]
            logits = cond + self.cfg_weight * (cond - uncond)
        return logits + self.token_mask

    @torch.inference_mode()
    def next_tokens(self, count: int) -> list[int]:
        """Up to ``count`` more valid speech tokens; sets ``done`` at EOS or the budget.

        Tokens stay on the device until the end of the call: one CPU sync per slice.
        """
        steps = min(count, self.budget - self.generated)
        if self.done or steps <= 0:
            self.done = True
            return []
        drawn = []
        for _ in range(steps):
            token = sample_next(self._guided_logits(), self.seen, self.sampling, self.generator)
            drawn.append(token)
            self.seen.scatter_(1, token, True)
            self.generated += 1
            if self.generated >= self.budget:
                break  # the budget's last token: no step will read its logits
            out = self.t3.tfmr(
                inputs_embeds=self._speech_embed(token, self.generated),
                past_key_values=self.past,
                use_cache=True,
            )
            self.past = out.past_key_values
            self.logits = self.t3.speech_head(out.last_hidden_state[:, -1, :])
        tokens = torch.cat(drawn, dim=1)[0].tolist()
        if self.hp.stop_speech_token in tokens:
            tokens = tokens[: tokens.index(self.hp.stop_speech_token)]
            self.done = True
        if self.generated >= self.budget:
            self.done = True
        if self.done:
            self.past = None
        return tokens
