"""A text chunk's T3 prompt as the runner lays it out: its length, and its ids checked."""

from __future__ import annotations

from ..errors import InvalidRequestError
from ..model.conditioning import VoiceConditioning
from ..model.loading import LoadedModel


def prompt_overhead(model: LoadedModel, voice: VoiceConditioning | None = None) -> int:
    """KV positions a chunk's prompt takes beside its text tokens, as the runner lays it out:
    conditioning (speaker, ``voice``'s prompt speech tokens or their perceiver summary,
    exaggeration), then the text's start and stop and two start-of-speech (Turbo and Nano:
    one start-of-speech). Without a voice: for the longest voice prompt the model takes."""
    hp = model.t3.hp
    if hp.use_perceiver_resampler:
        prompt = 32
    elif voice is None:
        prompt = hp.speech_cond_prompt_len
    else:
        prompt = voice.t3.cond_prompt_speech_tokens.shape[1]
    conditioning = 1 + prompt + int(hp.emotion_adv)
    return conditioning + (1 if model.variant.turbo_family else 4)


def check_text_ids(ids: list[int], vocab: int) -> None:
    """On the host, before T3's embedding sees them (an index out of range there is a
    device-side assert that ends every request of the worker): a tokenizer that does not match
    the checkpoint fails this one request, saying so."""
    bad = next((i for i in ids if not 0 <= i < vocab), None)
    if bad is not None:
        raise InvalidRequestError(
            "text",
            f"the tokenizer gave token id {bad}, outside the model's {vocab} text tokens: the "
            "checkpoint's tokenizer does not match its T3 weights",
        )
