"""Turbo's timings from its alignment head, layer 4 head 6 (upstream pull request #563), and the
per-chunk fallback to the estimate when the attention path is degenerate.

The tiny Turbo checkpoint has 2 layers of 4 heads, so these tests use a copy of it with a deeper,
wider GPT-2 (5 layers of 8 heads: layer 4 head 6 exists, as in the real 24 x 16), which takes the
default heads like a real Turbo. Head (4, 6) is made to attend where the test chooses: its keys
at text position j are one-hot e_j (large), its query at step t is e_path[t]; the other heads
are left random, so reading any other head gives other times."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from common.params import SynthesisParams
from common.variants import FILES, RANDOM_MARKER, Variant
from tests.engine.test_alignment import MS_PER_TOKEN, check, speak
from tests.support.checkpoints import Checkpoints, linked_copy
from tests.support.t3 import Request, run
from worker.engine.model.architecture import build_t3
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.pipeline import StreamingEngine
from worker.engine.t3.alignment_probe import TURBO_ALIGNMENT_HEADS, default_alignment_heads
from worker.engine.t3.runner import T3Runner
from worker.engine.t3.scheduler import T3Result, T3Step
from worker.engine.text.timings import char_tokens, estimated_char_spans, usable
from worker.engine.transfer_count import TransferCounter

LAYER, HEAD = 4, 6
DEEP = {"num_hidden_layers": 5, "num_attention_heads": 8}  # hidden 256: 32 per head


@pytest.fixture(scope="module")
def deep_turbo(checkpoints: Checkpoints, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The tiny Turbo checkpoint with a T3 of DEEP (its S3Gen, voice and tokenizer shared)."""
    tiny, t3_file = checkpoints(Variant.TURBO), FILES[Variant.TURBO].t3
    out = tmp_path_factory.mktemp("turbo") / "deep"
    linked_copy(tiny, out, leave_out=(t3_file, RANDOM_MARKER))
    marker = json.loads((tiny / RANDOM_MARKER).read_text())
    spec = marker["architecture"]["t3"]
    spec["backbone"] = {**spec["backbone"], **DEEP}
    torch.manual_seed(0)
    save_file(build_t3(Variant.TURBO, spec).state_dict(), str(out / t3_file))
    (out / RANDOM_MARKER).write_text(json.dumps(marker))
    model = load_model(out, device="cpu")
    assert (model.t3.tfmr.config.n_layer, model.t3.tfmr.config.n_head) == (5, 8)
    return model


@pytest.fixture
def engine(deep_turbo: LoadedModel) -> Iterator[StreamingEngine]:
    engine = StreamingEngine(deep_turbo, slots=1)  # the default heads
    yield engine
    engine.close()


def text_start(model: LoadedModel) -> int:
    """The cache position of a Turbo prompt's first text token: after the conditioning."""
    voice = model.builtin_voice
    assert voice is not None
    with torch.inference_mode():
        cond = model.t3.prepare_conditioning(voice.t3_cond_for(0.0, model.dtype))
    return int(cond.shape[1])


def plant(model: LoadedModel, paths: list[list[int]]) -> Callable[[], None]:
    """Head (LAYER, HEAD) attends to text token ``paths[c][t]`` at step t of chunk c (one slot:
    each prefill starts the next chunk). Returns the hook's remover."""
    block: Any = model.t3.tfmr.h[LAYER]
    width = int(model.t3.tfmr.config.n_embd)
    dim = width // int(model.t3.tfmr.config.n_head)
    query, key = HEAD * dim, width + HEAD * dim  # the head's columns of c_attn's output
    start = text_start(model)
    chunks = iter(paths)
    steps: Iterator[int] = iter(())

    def planted(_module: Any, _args: Any, out: torch.Tensor) -> torch.Tensor:
        nonlocal steps
        out = out.clone()
        if out.shape[1] > 1:  # a prefill: the text's keys
            steps = iter(next(chunks))
            out[:, :, key : key + dim] = 0.0
            for j in range(min(dim, out.shape[1] - start)):
                out[:, start + j, key + j] = 1000.0
        else:
            out[:, :, query : query + dim] = 0.0
            out[:, 0, query + next(steps)] = 1.0
        return out

    return block.attn.c_attn.register_forward_hook(planted).remove


def diagonal(text_tokens: int, tail: int = 4) -> list[int]:
    """Two speech tokens per text token, then ``tail`` on the last."""
    return [t // 2 for t in range(2 * text_tokens)] + [text_tokens - 1] * tail


def test_turbo_reads_layer_4_head_6_nano_none() -> None:
    assert TURBO_ALIGNMENT_HEADS == ((LAYER, HEAD),)
    assert default_alignment_heads(24, 16, Variant.TURBO) == ((4, 6),)  # GPT-2 medium
    assert default_alignment_heads(12, 12, Variant.NANO) == ()  # GPT-2 small: none published
    assert default_alignment_heads(2, 4, Variant.TURBO) == ()  # the tiny checkpoint
    assert default_alignment_heads(5, 8, Variant.TURBO) == ((4, 6),)


async def test_planted_attention_in_layer_4_head_6_comes_out_as_the_planted_timings(
    engine: StreamingEngine, deep_turbo: LoadedModel
) -> None:
    assert engine.t3.runner.alignment_heads == ((LAYER, HEAD),)
    text = "Hello there, my good friend."
    tokenize = lambda t: deep_turbo.tokenize(t, None)  # noqa: E731
    ids = tokenize(text)
    assert len(ids) <= 32  # one key dimension per text token
    path = diagonal(len(ids))
    remove = plant(deep_turbo, [path])
    try:
        _, (timings,) = await speak(engine, text, fixed_token_count=len(path))
    finally:
        remove()
    assert timings.source == "attention" and timings.text == text
    owners = char_tokens(tokenize, text, len(ids))
    for word in timings.words:
        first, last = owners[word.char_start], owners[word.char_end - 1]
        assert word.start_ms == pytest.approx(2 * first * MS_PER_TOKEN)
        end_tokens = 2 * (last + 1) if last < len(ids) - 1 else len(path)
        assert word.end_ms == pytest.approx(end_tokens * MS_PER_TOKEN)


CHUNKS = ["Read it well.", "Stuck on this.", "Half of it read."]


async def test_a_degenerate_path_falls_back_to_the_estimate_for_its_chunk_only(
    engine: StreamingEngine, deep_turbo: LoadedModel
) -> None:
    """Chunk 0 follows its text; chunk 1's path never leaves its first token; chunk 2's stops
    half way. Each chunk says which source it used; the estimated ones are spread by speaking
    rate over their own audio."""
    tokens = 40
    lengths = [len(deep_turbo.tokenize(c, None)) for c in CHUNKS]
    paths = [
        diagonal(lengths[0], tokens - 2 * lengths[0]),
        [0] * tokens,
        [min(t // 2, lengths[2] // 2) for t in range(tokens)],
    ]
    remove = plant(deep_turbo, paths)
    try:
        samples, timings = await speak(
            engine, " ".join(CHUNKS), fixed_token_count=tokens, text_processing_chunk_size=20
        )
    finally:
        remove()
    assert [t.text for t in timings] == CHUNKS
    assert [t.source for t in timings] == ["attention", "estimate", "estimate"]
    check(samples, timings, " ".join(CHUNKS))
    for timing in timings[1:]:
        offset = timing.start_ms
        spans = estimated_char_spans(timing.normalized_text, tokens * 960)
        assert timing.normalized_char_end_ms == pytest.approx(
            [offset + end * 1000 / 24000 for _, end in spans]
        )


def test_the_guard_takes_a_path_that_advances_and_reaches_the_end() -> None:
    assert usable([0, 1, 2, 5, 7], last=9)  # within 3 tokens of the last character's
    assert not usable([0, 1, 2, 4, 5], last=9)  # ends far from it
    assert not usable([0, 0, 0], last=2)  # never advances
    assert usable([0, 0], last=0)  # one text token: nothing to advance over
    assert not usable([], last=0)


async def test_nano_stays_estimated(checkpoints: Checkpoints) -> None:
    nano = load_model(checkpoints(Variant.NANO), device="cpu")
    engine = StreamingEngine(nano, slots=1)
    try:
        assert engine.t3.runner.alignment_heads == ()
        text = "Nano has no head. It is estimated."
        samples, timings = await speak(engine, text, fixed_token_count=20)
    finally:
        engine.close()
    assert {t.source for t in timings} == {"estimate"}
    check(samples, timings, text)


@pytest.mark.parametrize("heads", [(), None], ids=["no heads", "head (4, 6)"])
def test_reading_the_head_costs_no_transfer(
    deep_turbo: LoadedModel, heads: tuple[()] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Turbo step reads back once and uploads once, with the head read or not."""
    counts: list[tuple[bool, int, int]] = []
    read: list[tuple[tuple[int, int], ...]] = []
    step = T3Runner.step
    made = T3Runner.__init__

    def init(self: T3Runner, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **{**kwargs, "alignment_heads": heads})
        read.append(self.alignment_heads)

    def counted(self: T3Runner, plan: T3Step) -> T3Result:
        with TransferCounter() as count:
            result = step(self, plan)
        counts.append((any(s.sample for s in plan.slots), count.syncs, count.uploads))
        return result

    monkeypatch.setattr(T3Runner, "__init__", init)
    monkeypatch.setattr(T3Runner, "step", counted)
    texts = ["Hello there.", "A second voice joins."]
    params = SynthesisParams(seed=1, fixed_token_count=10)
    run(deep_turbo, [Request(t, params, join_at=2 * i) for i, t in enumerate(texts)], slots=2)
    assert read == [() if heads == () else ((LAYER, HEAD),)]
    assert counts and all((s, u) == (int(sampled), 1) for sampled, s, u in counts)
