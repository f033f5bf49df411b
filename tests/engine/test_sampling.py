"""Next-token sampling: upstream's processors, reproducible with a generator."""

from __future__ import annotations

import torch

from common.params import SynthesisParams
from common.variants import Variant
from worker.engine.sampling import SamplingConfig, apply_repetition_penalty, sample_next
from worker.engine.t3_stream import sampling_config

PLAIN = SamplingConfig(temperature=1.0, top_p=1.0, min_p=0.0, repetition_penalty=1.0)


def draws(logits: torch.Tensor, config: SamplingConfig, n: int = 400) -> set[int]:
    seen = torch.zeros_like(logits, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    return {int(sample_next(logits, seen, config, gen)) for _ in range(n)}


def test_top_p_keeps_the_smallest_set_reaching_the_mass() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    config = SamplingConfig(1.0, top_p=0.8, min_p=0.0, repetition_penalty=1.0)
    assert draws(logits, config) == {0, 1}


def test_min_p_drops_tokens_far_below_the_best() -> None:
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]]))
    config = SamplingConfig(1.0, top_p=1.0, min_p=0.2, repetition_penalty=1.0)
    assert draws(logits, config) == {0, 1}


def test_zero_temperature_is_greedy() -> None:
    logits = torch.tensor([[0.1, 2.0, 1.9]])
    config = SamplingConfig(0.0, 1.0, 0.0, 1.0)
    assert draws(logits, config, 20) == {1}


def test_repetition_penalty_matches_upstream_rule() -> None:
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 2.0, -2.0]]


def test_a_seeded_generator_reproduces_the_draws() -> None:
    logits = torch.randn(1, 50)
    seen = torch.zeros_like(logits, dtype=torch.bool)
    a = [int(sample_next(logits, seen, PLAIN, torch.Generator().manual_seed(7))) for _ in range(5)]
    b = [int(sample_next(logits, seen, PLAIN, torch.Generator().manual_seed(7))) for _ in range(5)]
    assert a == b


def test_top_k_keeps_the_k_best() -> None:
    logits = torch.tensor([[3.0, 2.9, 0.5, 0.4]])
    config = SamplingConfig(1.0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, top_k=2)
    assert draws(logits, config) == {0, 1}


def test_each_variant_gets_its_upstream_defaults_unless_asked_otherwise() -> None:
    turbo = sampling_config(Variant.TURBO, SynthesisParams())
    assert (turbo.top_p, turbo.top_k, turbo.min_p, turbo.repetition_penalty) == (
        0.95,
        1000,
        0.0,
        1.2,
    )
    multilingual = sampling_config(Variant.MULTILINGUAL, SynthesisParams())
    assert multilingual.repetition_penalty == 2.0
    english = sampling_config(Variant.ENGLISH, SynthesisParams(min_p=0.1, temperature=0.3))
    assert (english.min_p, english.temperature, english.top_p) == (0.1, 0.3, 1.0)
