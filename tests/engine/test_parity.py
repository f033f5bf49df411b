"""Parity with upstream: on the same weights our decoding computes what upstream's computes.

Nobody here can listen to real speech, so this is the guarantee that the engine is Chatterbox:
greedy T3 tokens equal those of upstream's ``T3.inference`` / ``inference_turbo`` for every
variant, and one S3Gen window's mel equals upstream's ``flow.inference`` given the same noise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from common.params import SynthesisParams
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from worker.engine.loading import LoadedModel, load_model
from worker.engine.s3gen_stream import S3GenStream, StreamConfig
from worker.engine.t3_stream import SPEECH_VOCAB, T3Stream

TOKENS = 60
TEXT = {Variant.MULTILINGUAL: ("Bonjour à tous, voici un essai.", "fr")}
DEFAULT_TEXT = ("Hello there, this is a parity test.", None)
VARIANTS = [Variant.ENGLISH, Variant.MULTILINGUAL, Variant.TURBO]


@pytest.fixture(scope="module", params=VARIANTS, ids=[v.value for v in VARIANTS])
def model(request: pytest.FixtureRequest, checkpoints: Checkpoints) -> LoadedModel:
    return load_model(checkpoints(request.param), device="cpu")


@contextlib.contextmanager
def only_speech_tokens(model: LoadedModel) -> Iterator[None]:
    """Random weights put mass on ids no real model samples (and rarely on EOS): push those
    far down in the shared speech head, for both sides alike, so both decode ``TOKENS`` tokens.
    A large finite value, not -inf: CFG subtracts logits, and -inf - -inf is NaN."""

    def hook(_: torch.nn.Module, __: object, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        logits[..., SPEECH_VOCAB:] = -1e4
        return logits

    handle = model.t3.speech_head.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def upstream_greedy(
    model: LoadedModel, text: str, language: str | None, monkeypatch: pytest.MonkeyPatch
) -> list[int]:
    """Greedy tokens from upstream's own loop, set up as its ``generate`` does."""
    t3, hp = model.t3, model.t3.hp
    assert model.builtin_voice is not None
    cond = model.builtin_voice.t3_cond_for(0.5, model.dtype)
    ids = torch.tensor([model.tokenize(text, language)], dtype=torch.long)
    if model.variant is Variant.TURBO:
        # top_k=1 is greedy; upstream applies its repetition penalty after top-k.
        tokens = t3.inference_turbo(cond, ids, temperature=1.0, top_k=1, top_p=1.0,
                                    repetition_penalty=1.0, max_gen_len=TOKENS - 1)  # fmt: skip
        return [int(t) for t in tokens[0]]
    ids = F.pad(F.pad(ids, (1, 0), value=hp.start_text_token), (0, 1), value=hp.stop_text_token)
    # No alignment analyzer: see test_greedy_t3_tokens_equal_upstreams.
    monkeypatch.setattr(type(hp), "is_multilingual", property(lambda _: False))
    # top_p=0 keeps only the most likely token: greedy.
    tokens = t3.inference(
        t3_cond=cond, text_tokens=torch.cat([ids, ids]), max_new_tokens=TOKENS,
        temperature=1.0, top_p=0.0, min_p=0.0, repetition_penalty=1.2, cfg_weight=0.5,
    )  # fmt: skip
    return [int(t) for t in tokens[0]]


def our_greedy(model: LoadedModel, text: str, language: str | None) -> list[int]:
    assert model.builtin_voice is not None
    turbo = model.variant is Variant.TURBO
    params = SynthesisParams(
        temperature=0.0, repetition_penalty=1.0 if turbo else 1.2, cfg_weight=0.5,
        fixed_token_count=TOKENS, language=language,
    )  # fmt: skip
    cond = model.builtin_voice.t3_cond_for(params.exaggeration, model.dtype)
    return T3Stream(model, cond, text, params, None).next_tokens(TOKENS)


def test_greedy_t3_tokens_equal_upstreams(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """English and multilingual against ``T3.inference``, Turbo against ``inference_turbo``.

    Upstream's multilingual ``T3.inference`` hooks an alignment analyzer into layers 9-13 (the
    tiny checkpoint has one layer) that may force an early EOS; the engine does not use it
    (docs/ENGINE.md), so it is switched off on upstream's side for the comparison.
    """
    text, language = TEXT.get(model.variant, DEFAULT_TEXT)
    with only_speech_tokens(model):
        theirs = upstream_greedy(model, text, language, monkeypatch)
        ours = our_greedy(model, text, language)
    assert len(theirs) == len(ours) == TOKENS
    assert ours == theirs


def test_one_s3gen_window_equals_upstreams_flow_inference(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert model.builtin_voice is not None
    voice = model.builtin_voice
    tokens = torch.randint(0, SPEECH_VOCAB, (1, 40), generator=torch.Generator().manual_seed(7))
    stream = S3GenStream(model, voice, StreamConfig(seed=3))
    stream.tokens = tokens[0].tolist()
    frames = 2 * tokens.shape[1]
    noise = torch.cat([stream.prompt_noise, stream.noise.frames(0, frames)], dim=2)
    with torch.inference_mode():
        ours = stream._mel(tokens, 0)
    # Upstream draws its starting noise with randn_like: hand it the same noise.
    monkeypatch.setattr(torch, "randn_like", lambda like, **_: noise.clone().to(like))
    gen = voice.gen
    theirs, _ = model.s3gen.flow.inference(
        token=tokens, token_len=torch.tensor([tokens.shape[1]]),
        prompt_token=gen["prompt_token"], prompt_token_len=gen["prompt_token_len"],
        prompt_feat=gen["prompt_feat"], prompt_feat_len=None, embedding=gen["embedding"],
        finalize=True, n_timesteps=2 if model.s3gen.meanflow else 10,
        meanflow=model.s3gen.meanflow,
    )  # fmt: skip
    assert theirs.shape == ours.shape == (1, 80, frames)
    assert torch.equal(ours, theirs)
