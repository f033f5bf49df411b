"""Next-token sampling: upstream's processors, each row of a batch with its own settings.

The sampled distribution must equal upstream's: transformers' processors, built as upstream's
``T3.inference`` (English, multilingual) and ``T3.inference_turbo`` (Turbo, Nano) build them,
applied to the same logits and generated tokens; and the draw must follow that distribution."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from common.params import SynthesisParams
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from tests.support.t3 import Request, run
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.t3.sampling import (
    BatchSampling,
    SamplingConfig,
    apply_repetition_penalty,
    probabilities,
    processed_logits,
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
    assert sampling_config(Variant.NANO, SynthesisParams()) == turbo
    assert turbo.penalty_last
    multilingual = sampling_config(Variant.MULTILINGUAL, SynthesisParams())
    assert multilingual.repetition_penalty == 1.2  # upstream main (0.1.7: 2.0)
    assert not multilingual.penalty_last
    assert sampling_config(Variant.TURBO, SynthesisParams(min_p=0.3)).min_p == 0.0  # ignored
    english = sampling_config(Variant.ENGLISH, SynthesisParams(min_p=0.1, temperature=0.3))
    assert (english.min_p, english.temperature, english.top_p) == (0.1, 0.3, 1.0)


# --- the distribution, against upstream's processors ---------------------------------------

VOCAB = 64
CPU = torch.device("cpu")


def upstream_inference(logits: torch.Tensor, ids: torch.Tensor, c: SamplingConfig) -> torch.Tensor:
    """``T3.inference``'s step: penalty, temperature (if not 1), min_p, top_p, softmax."""
    logits = RepetitionPenaltyLogitsProcessor(penalty=float(c.repetition_penalty))(ids, logits)
    if c.temperature != 1.0:
        logits = logits / c.temperature
    logits = MinPLogitsWarper(min_p=c.min_p)(ids, logits)
    logits = TopPLogitsWarper(top_p=c.top_p)(ids, logits)
    return torch.softmax(logits, dim=-1)


def upstream_inference_turbo(
    logits: torch.Tensor, ids: torch.Tensor, c: SamplingConfig
) -> torch.Tensor:
    """``T3.inference_turbo``'s processor list (same conditions), then softmax."""
    processors = LogitsProcessorList()
    if c.temperature > 0 and c.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(c.temperature))
    if c.top_k > 0:
        processors.append(TopKLogitsWarper(c.top_k))
    if c.top_p < 1.0:
        processors.append(TopPLogitsWarper(c.top_p))
    if c.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(c.repetition_penalty))
    return torch.softmax(processors(ids, logits), dim=-1)


ENGLISH_SETTINGS = [  # (temperature, top_p, min_p, penalty)
    (0.8, 1.0, 0.05, 1.2),
    (0.8, 1.0, 0.05, 2.0),
    (1.0, 0.9, 0.0, 1.0),
    (0.5, 0.7, 0.1, 1.5),
    (1.3, 0.95, 0.02, 1.2),
]
TURBO_SETTINGS = [  # (temperature, top_p, top_k, penalty)
    (0.8, 0.95, 1000, 1.2),
    (0.8, 0.95, 10, 1.2),
    (1.0, 1.0, 0, 1.5),
    (0.5, 0.8, 20, 2.0),
    (1.2, 0.6, 0, 1.2),
]


def case(seed: int, rows: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random logits, each row's generated ids (with repeats) and the same as a seen mask."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, VOCAB, generator=generator) * 3
    ids = torch.randint(0, VOCAB, (rows, 12), generator=generator)
    seen = torch.zeros(rows, VOCAB, dtype=torch.bool).scatter(1, ids, True)
    return logits, ids, seen


def english(t: float, top_p: float, min_p: float, penalty: float) -> SamplingConfig:
    return SamplingConfig(t, top_p=top_p, min_p=min_p, repetition_penalty=penalty)


def turbo(t: float, top_p: float, top_k: int, penalty: float) -> SamplingConfig:
    return SamplingConfig(
        t, top_p=top_p, min_p=0.0, repetition_penalty=penalty, top_k=top_k, penalty_last=True
    )


def ours(logits: torch.Tensor, seen: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    return probabilities(logits, seen, BatchSampling.of([config] * len(logits), CPU))


@pytest.mark.parametrize("settings", ENGLISH_SETTINGS)
def test_english_and_multilingual_distribution_equals_upstream(settings: tuple) -> None:
    config = english(*settings)
    for seed in range(4):
        logits, ids, seen = case(seed)
        expected = upstream_inference(logits.clone(), ids, config)
        assert torch.allclose(ours(logits, seen, config), expected, atol=1e-6), seed


@pytest.mark.parametrize("settings", TURBO_SETTINGS)
def test_turbo_and_nano_distribution_equals_upstream(settings: tuple) -> None:
    config = turbo(*settings)
    for seed in range(4):
        logits, ids, seen = case(seed)
        expected = upstream_inference_turbo(logits.clone(), ids, config)
        assert torch.allclose(ours(logits, seen, config), expected, atol=1e-6), seed


def test_the_order_matters_so_these_tests_can_fail() -> None:
    logits, ids, seen = case(0)
    config = turbo(0.8, 0.8, 20, 2.0)
    in_english_order = upstream_inference(logits.clone(), ids, english(0.8, 0.8, 0.0, 2.0))
    gap = (ours(logits, seen, config) - in_english_order).abs().sum(dim=-1) / 2
    assert gap.max() > 0.05  # total-variation distance between the two orders


def test_rows_with_different_settings_each_get_their_own_distribution() -> None:
    logits, ids, seen = case(5, rows=len(ENGLISH_SETTINGS))
    configs = [english(*s) for s in ENGLISH_SETTINGS]
    got = probabilities(logits, seen, BatchSampling.of(configs, CPU))
    for row, config in enumerate(configs):
        expected = upstream_inference(logits[row : row + 1].clone(), ids[row : row + 1], config)
        assert torch.allclose(got[row], expected[0], atol=1e-6), row


def test_a_batch_holds_one_order() -> None:
    with pytest.raises(ValueError, match="penalty_last"):
        BatchSampling.of([english(0.8, 1.0, 0.0, 1.2), turbo(0.8, 1.0, 0, 1.2)], CPU)


@pytest.mark.parametrize("config", [english(0.8, 0.9, 0.05, 1.5), turbo(0.8, 0.9, 10, 1.5)])
def test_the_draw_gives_each_token_its_probability(config: SamplingConfig) -> None:
    """Inverse CDF: uniforms spread evenly over [0, 1) land on each token in its share."""
    logits, _, seen = case(3, rows=1)
    n = 20_000
    uniforms = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    batch = BatchSampling.of([config] * n, CPU)
    drawn = sample(logits.expand(n, -1), seen.expand(n, -1), batch, uniforms.float())
    shares = torch.bincount(drawn, minlength=VOCAB).double() / n
    assert torch.allclose(shares, ours(logits, seen, config)[0].double(), atol=2 / n)


def test_a_uniform_at_the_top_never_draws_a_filtered_token() -> None:
    logits = torch.tensor([[5.0, 4.0, -float("inf"), -float("inf")]])
    config = english(1.0, 1.0, 0.0, 1.0)
    batch = BatchSampling.of([config], CPU)
    seen = torch.zeros_like(logits, dtype=torch.bool)
    assert sample(logits, seen, batch, torch.tensor([1.0])).item() == 1


def test_a_row_without_top_k_or_top_p_samples_alike_whether_its_batch_sorts_or_not() -> None:
    """A batch sorts when any row asks for top_k or top_p: the other rows must not notice, or a
    seed would give another token beside such a request than alone."""
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(6, VOCAB, generator=generator) * 3
    seen = torch.rand(6, VOCAB, generator=generator) < 0.01
    uniforms = torch.rand(6, generator=generator)
    for config in (english(0.8, 1.0, 0.05, 1.2), turbo(0.8, 1.0, 0, 1.2)):
        plain = BatchSampling.of([config] * 6, CPU)
        assert not plain.ranked
        sorted_too = dataclasses.replace(plain, ranked=True)
        assert torch.equal(
            processed_logits(logits, seen, plain), processed_logits(logits, seen, sorted_too)
        )
        assert torch.equal(
            sample(logits, seen, plain, uniforms), sample(logits, seen, sorted_too, uniforms)
        )


@pytest.fixture(scope="module", params=list(Variant), ids=[v.value for v in Variant])
def any_model(request: pytest.FixtureRequest, checkpoints: Checkpoints) -> LoadedModel:
    return load_model(checkpoints(request.param), device="cpu")


def test_temperature_zero_is_greedy_and_deterministic_for_every_model(
    any_model: LoadedModel,
) -> None:
    """Temperature 0 takes the most likely token at every step (the limit of upstream's
    sampling as the temperature goes to 0), whatever the seed. Upstream differs: English and
    multilingual divide the logits by 0 and fail ("probability tensor contains either inf, nan
    or element < 0"); Turbo and Nano skip the temperature warper at 0 and sample at 1."""
    model = any_model
    turbo = model.variant.turbo_family

    def tokens(**values: object) -> list[int]:
        params = SynthesisParams.model_validate({
            "fixed_token_count": 12, "cfg_weight": 0.0 if turbo else 0.5,
            "language": "en" if model.variant is Variant.MULTILINGUAL else None, **values,
        })  # fmt: skip
        return run(model, [Request("Greedy at zero.", params)])[0]

    zero = tokens(temperature=0.0, seed=1)
    assert len(zero) == 12
    assert tokens(temperature=0.0, seed=2) == zero  # no draw: the seed changes nothing
    # The draw itself, left only the most likely token (top_k 1): the same tokens.
    assert tokens(temperature=1.0, top_k=1, seed=3) == zero
    assert tokens(temperature=1.0, seed=4) != zero  # sampling does draw (so this can fail)
