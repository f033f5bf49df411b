"""Next-token sampling: upstream's processors, each row of a batch with its own settings."""

from __future__ import annotations

import torch

from common.params import SynthesisParams
from common.variants import Variant
from worker.engine.sampling import (
    BatchSampling,
    SamplingConfig,
    apply_repetition_penalty,
    sample,
    sampling_config,
)

PLAIN = SamplingConfig(temperature=1.0, top_p=1.0, min_p=0.0, repetition_penalty=1.0)


def draws(logits: torch.Tensor, config: SamplingConfig, n: int = 400) -> set[int]:
    """The tokens ``n`` draws give, the draws' uniforms spread over [0, 1)."""
    rows = logits.expand(n, -1)
    seen = torch.zeros_like(rows, dtype=torch.bool)
    batch = BatchSampling.of([config] * n, torch.device("cpu"))
    uniforms = torch.rand(n, generator=torch.Generator().manual_seed(0))
    return set(sample(rows, seen, batch, uniforms).tolist())


def test_top_p_keeps_the_smallest_set_reaching_the_mass() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    config = SamplingConfig(1.0, top_p=0.8, min_p=0.0, repetition_penalty=1.0)
    assert draws(logits, config) == {0, 1}


def test_a_tiny_top_p_still_keeps_the_most_likely_token() -> None:
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    config = SamplingConfig(1.0, top_p=0.0, min_p=0.0, repetition_penalty=1.0)
    assert draws(logits, config) == {1}


def test_min_p_drops_tokens_far_below_the_best() -> None:
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]]))
    config = SamplingConfig(1.0, top_p=1.0, min_p=0.2, repetition_penalty=1.0)
    assert draws(logits, config) == {0, 1}


def test_zero_temperature_is_greedy() -> None:
    logits = torch.tensor([[0.1, 2.0, 1.9]])
    config = SamplingConfig(0.0, 1.0, 0.0, 1.0)
    assert draws(logits, config, 20) == {1}


def test_plain_sampling_follows_the_probabilities() -> None:
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    rows = logits.expand(2000, -1)
    uniforms = torch.rand(2000, generator=torch.Generator().manual_seed(1))
    drawn = sample(rows, torch.zeros_like(rows, dtype=torch.bool),
                   BatchSampling.of([PLAIN] * 2000, torch.device("cpu")), uniforms)  # fmt: skip
    shares = torch.bincount(drawn, minlength=3).float() / 2000
    assert torch.allclose(shares, torch.tensor([0.7, 0.2, 0.1]), atol=0.03)


def test_each_row_has_its_own_settings() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(3, -1)
    configs = [
        SamplingConfig(0.0, 1.0, 0.0, 1.0),  # greedy
        SamplingConfig(1.0, 1.0, 0.0, 1.0, top_k=2),
        PLAIN,
    ]
    uniforms = torch.tensor([0.99, 0.99, 0.99])  # the top end of each row's distribution
    tokens = sample(logits, torch.zeros_like(logits, dtype=torch.bool),
                    BatchSampling.of(configs, torch.device("cpu")), uniforms)  # fmt: skip
    assert tokens.tolist() == [0, 1, 3]


def test_repetition_penalty_matches_upstream_rule() -> None:
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(logits, seen, torch.tensor([[2.0]]))
    assert out.tolist() == [[1.0, -4.0, 2.0, -2.0]]


def test_the_same_uniforms_give_the_same_tokens() -> None:
    logits = torch.randn(4, 50)
    seen = torch.zeros_like(logits, dtype=torch.bool)
    batch = BatchSampling.of([PLAIN] * 4, torch.device("cpu"))
    uniforms = torch.rand(4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(sample(logits, seen, batch, uniforms), sample(logits, seen, batch, uniforms))


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
