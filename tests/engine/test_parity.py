"""Parity with upstream: on the same weights our decoding computes what upstream's computes.

Nobody here can listen to real speech, so this is the guarantee that the engine is Chatterbox:
greedy T3 tokens equal those of upstream's ``T3.inference`` / ``inference_turbo`` for every
variant, and one S3Gen window's mel equals upstream's ``flow.inference`` given the same noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.audio import SAMPLE_RATE
from common.params import SynthesisParams
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from tests.support.engine import BATCH_TOLERANCE
from tests.support.reference import upstream_mel
from tests.support.t3 import Request, run
from worker.engine.model.conditioning import VoiceConditioning, compute_conditioning
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.model.random_checkpoint import reference_clip
from worker.engine.s3gen.runner import S3GenRunner, WindowInputs
from worker.engine.s3gen.stream import S3GenStream, StreamConfig, Window
from worker.engine.t3.decode import SPEECH_VOCAB

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


def greedy(model: LoadedModel, text: str, language: str | None, **changes: object) -> Request:
    turbo = model.variant is Variant.TURBO
    values: dict[str, object] = {
        "temperature": 0.0, "repetition_penalty": 1.0 if turbo else 1.2, "cfg_weight": 0.5,
        "fixed_token_count": TOKENS, "language": language, **changes,
    }  # fmt: skip
    return Request(text, SynthesisParams.model_validate(values))


def our_greedy(model: LoadedModel, text: str, language: str | None) -> list[int]:
    return run(model, [greedy(model, text, language)])[0]


def others(model: LoadedModel, language: str | None) -> list[Request]:
    """Company for a request in the batch: another voice, other lengths and parameters, one
    joining late and one cancelled half-way."""
    voice = compute_conditioning(model, reference_clip(7.0, seed=9), SAMPLE_RATE)
    text = "Another request with a much longer text, to make the prompts differ in length."
    return [
        Request(text, SynthesisParams(seed=3, fixed_token_count=80, language=language), voice),
        Request("Short.", SynthesisParams(seed=4, temperature=1.3, top_k=50, cfg_weight=0.0,
                                          fixed_token_count=20, language=language)),
        Request(text, SynthesisParams(seed=5, exaggeration=1.2, fixed_token_count=70,
                                      language=language), voice, join_at=17),
        Request("Cancelled soon.", SynthesisParams(seed=6, fixed_token_count=90, language=language),
                cancel_at=25),
    ]  # fmt: skip


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


def window(model: LoadedModel, voice: VoiceConditioning, tokens: int, seed: int) -> WindowInputs:
    """One window over ``tokens`` random speech tokens from position 0, as a stream plans it."""
    stream = S3GenStream(model, voice, StreamConfig(seed=seed))
    ids = torch.randint(0, SPEECH_VOCAB, (tokens,), generator=torch.Generator().manual_seed(seed))
    stream.tokens = ids.tolist()
    return stream.inputs(Window(0, tokens, final=True))


def test_one_s3gen_window_equals_upstreams_flow_inference(model: LoadedModel) -> None:
    assert model.builtin_voice is not None
    inputs = window(model, model.builtin_voice, 40, seed=3)
    with torch.inference_mode():
        ours = S3GenRunner(model)._mels([inputs])[0]
    theirs = upstream_mel(model, model.builtin_voice, inputs)
    assert theirs.shape == ours.shape == (80, 80)
    assert torch.equal(ours, theirs)


def test_greedy_tokens_are_the_same_in_a_busy_batch(model: LoadedModel) -> None:
    """The batched step gives a request the tokens it gets alone, whoever else is in the batch
    (other voices, lengths and parameters, a request joining late, one cancelled half-way)."""
    text, language = TEXT.get(model.variant, DEFAULT_TEXT)
    alone = run(model, [greedy(model, text, language)])[0]
    company = others(model, language)
    busy = run(
        model,
        [company[0], dataclasses.replace(greedy(model, text, language), join_at=3), *company[1:]],
    )
    assert busy[1] == alone
    assert len(busy[0]) == 80 and len(busy[2]) == 20 and len(busy[3]) == 70
    assert 0 < len(busy[4]) < 90  # cancelled half-way


def test_s3gen_windows_decoded_together_match_alone(model: LoadedModel) -> None:
    """Padding and masking keep a window's mel and audio what they are alone, to float
    rounding."""
    assert model.builtin_voice is not None
    other_voice = compute_conditioning(model, reference_clip(7.0, seed=9), SAMPLE_RATE)
    target = window(model, model.builtin_voice, 30, seed=3)
    company = [window(model, other_voice, 60, seed=4), window(model, model.builtin_voice, 12, 5)]
    runner = S3GenRunner(model)
    with torch.inference_mode():
        alone_mel, alone_wav = runner._mels([target])[0], runner.decode([target])[0]
        batch = [company[0], target, company[1]]
        busy_mel, busy_wav = runner._mels(batch)[1], runner.decode(batch)[1]
    assert (busy_mel - alone_mel).abs().max() < BATCH_TOLERANCE
    assert np.abs(busy_wav - alone_wav).max() < BATCH_TOLERANCE
