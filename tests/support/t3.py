"""Driving the batched T3 loop synchronously in tests: the real scheduler and runner, no asyncio."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
import torch

from common.params import SynthesisParams
from common.variants import Variant
from worker.engine.model.conditioning import VoiceConditioning
from worker.engine.model.loading import LoadedModel
from worker.engine.t3.prompts import prompt_overhead
from worker.engine.t3.runner import T3Prompt, T3Runner
from worker.engine.t3.sampling import sampling_config
from worker.engine.t3.scheduler import T3Result, T3Scheduler, T3Sequence, T3Step


@dataclass
class Request:
    """One sequence to run: its text, parameters and voice; when it joins and leaves."""

    text: str
    params: SynthesisParams
    voice: VoiceConditioning | None = None  # None: the checkpoint's built-in voice
    join_at: int = 0  # step at which it is added
    cancel_at: int | None = None  # step at which it is cancelled
    tokens: list[int] = field(default_factory=list)
    finished: bool = False


def sequence(model: LoadedModel, request: Request, seed: int = 0) -> T3Sequence:
    voice = request.voice or model.builtin_voice
    assert voice is not None
    params = request.params
    budget = params.fixed_token_count or 100
    ids = model.tokenize(request.text, params.language)

    def on_tokens(tokens: list[int], finished: bool) -> None:
        request.tokens.extend(tokens)
        request.finished = request.finished or finished

    def on_error(error: BaseException) -> None:
        raise error

    return T3Sequence(
        prompt=T3Prompt(voice, params.exaggeration, ids),
        prompt_length=prompt_overhead(model, voice) + len(ids),
        budget=budget,
        sampling=sampling_config(model.variant, params),
        cfg_weight=0.0 if model.variant is Variant.TURBO else params.cfg_weight,
        ignore_eos=params.fixed_token_count is not None,
        generator=random.Random(params.seed if params.seed is not None else seed),
        on_tokens=on_tokens,
        on_error=on_error,
    )


def run(
    model: LoadedModel, requests: list[Request], slots: int = 8, context: int = 1024
) -> list[list[int]]:
    """Step every request's sequence in one batch until all are done; their tokens."""
    scheduler = T3Scheduler(slots, context, model.t3.hp.stop_speech_token)
    runner = T3Runner(model, slots, context)
    sequences = [sequence(model, r, seed=i) for i, r in enumerate(requests)]
    step = 0
    while True:
        for request, seq in zip(requests, sequences, strict=True):
            if request.join_at == step:
                scheduler.add(seq)
            if request.cancel_at == step:
                scheduler.cancel(seq)
        pending = any(r.join_at > step for r in requests)
        if scheduler.idle and not pending:
            return [r.tokens for r in requests]
        if not scheduler.idle:
            plan = scheduler.plan()
            scheduler.commit(plan, runner.step(plan))
        step += 1


def logits_after_one_step(model: LoadedModel, request: Request) -> torch.Tensor:
    """The logits (conditional row) a sequence has after its prefill and first token."""
    scheduler = T3Scheduler(1, 1024, model.t3.hp.stop_speech_token)
    runner = T3Runner(model, 1, 1024)
    scheduler.add(sequence(model, request))
    plan = scheduler.plan()
    scheduler.commit(plan, runner.step(plan))
    return runner.logits[0].clone()


def record_batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, how many sequences sampled in each T3 step (appended as the steps run)."""
    sizes: list[int] = []
    step = T3Runner.step

    def recording(self: T3Runner, plan: T3Step) -> T3Result:
        sizes.append(sum(slot.sample for slot in plan.slots))
        return step(self, plan)

    monkeypatch.setattr(T3Runner, "step", recording)
    return sizes
