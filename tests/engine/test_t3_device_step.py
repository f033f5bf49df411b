"""The T3 step as a GPU sees it, checked on the CPU: what crosses between host and device per
step (counted by worker/engine/transfer_count.py), a decode step that compiles whole and once
per bucket, and logits that are not finite ending only their own request."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from common.params import SynthesisParams
from common.variants import Variant
from tests.support.checkpoints import CHECKPOINTS_ENV, Checkpoints
from tests.support.engine import BATCH_TOLERANCE, synthesize
from tests.support.t3 import Request, run
from worker.engine.errors import InvalidRequestError, NonFiniteLogitsError
from worker.engine.model.loading import LoadedModel
from worker.engine.pipeline import StreamingEngine
from worker.engine.t3 import runner as t3_runner
from worker.engine.t3.prompts import check_text_ids
from worker.engine.t3.runner import T3Runner
from worker.engine.t3.scheduler import T3Result, T3Step
from worker.engine.transfer_count import TransferCounter

TEXTS = ["Hello there.", "A second voice joins.", "Third.", "And a fourth, later on."]


def requests(tokens: int = 12) -> list[Request]:
    """Four requests that join at different steps, one cancelled: joins, leaves and moves."""
    made = [
        Request(text, SynthesisParams(seed=i, fixed_token_count=tokens), join_at=2 * i)
        for i, text in enumerate(TEXTS)
    ]
    made[1].cancel_at = 7
    made[2].params = SynthesisParams(seed=2, fixed_token_count=tokens, top_p=0.9)  # sorts
    return made


@pytest.fixture(params=["english", "english+alignment", "turbo"])
def model(
    request: pytest.FixtureRequest, english_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> LoadedModel:
    if request.param == "english+alignment":  # the tiny T3 has no layer 9: heads of layer 0
        monkeypatch.setattr(t3_runner, "default_alignment_heads", lambda *_: ((0, 3), (0, 7)))
    if request.param.startswith("english"):
        return english_model
    turbo: LoadedModel = request.getfixturevalue("turbo_model")
    return turbo


def counting_steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[T3Step, int, int]]:
    """Every T3Runner.step from now on, with its (plan, syncs, uploads)."""
    seen: list[tuple[T3Step, int, int]] = []
    original = T3Runner.step

    def counted(self: T3Runner, plan: T3Step) -> T3Result:
        with TransferCounter() as count:
            result = original(self, plan)
        seen.append((plan, count.syncs, count.uploads))
        return result

    monkeypatch.setattr(T3Runner, "step", counted)
    return seen


def test_a_step_reads_back_once_and_uploads_once_whatever_joins_or_moves(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = counting_steps(monkeypatch)
    run(model, requests(), slots=4)
    assert any(plan.moves for plan, _, _ in steps) and sum(bool(p.prefill) for p, _, _ in steps) > 2
    for plan, syncs, uploads in steps:
        sampling = any(s.sample for s in plan.slots)
        assert (syncs, uploads) == (int(sampling), 1), plan


# Dynamo's state is the process's: in full-suite runs (never alone) it has traced nothing at all
# for this test ("not traced: {}"), so the test runs in an interpreter of its own.
IN_OWN_PROCESS = "T3_COMPILE_TEST_IN_OWN_PROCESS"


def test_the_compile_test_passes_in_an_interpreter_of_its_own(checkpoints: Checkpoints) -> None:
    if os.environ.get(IN_OWN_PROCESS):
        pytest.skip("this is that interpreter")
    for variant in (Variant.ENGLISH, Variant.TURBO):
        checkpoints(variant)  # built here, used there
    name = "test_the_decode_step_compiles_whole_once_per_bucket_and_draws_the_eager_tokens"
    test = f"{__file__}::{name}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        env={**os.environ, IN_OWN_PROCESS: "1", CHECKPOINTS_ENV: str(checkpoints.root)},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.skipif(not os.environ.get(IN_OWN_PROCESS), reason="run by the test above")
def test_the_decode_step_compiles_whole_once_per_bucket_and_draws_the_eager_tokens(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager = run(model, requests(tokens=50), slots=4)
    compiles: list[tuple[int, int]] = []
    buckets: set[tuple[int, int, bool]] = set()
    original = T3Runner.__init__

    def compiled(self: T3Runner, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        step = torch.compile(
            self.decode.step.__call__, fullgraph=True, dynamic=False, backend=counting(compiles)
        )

        def decode(slots: int, length: int, ranked: bool) -> torch.Tensor:
            buckets.add((slots, length, ranked))
            return step(slots, length, ranked)

        self.decode = decode  # type: ignore[assignment]

    monkeypatch.setattr(T3Runner, "__init__", compiled)
    torch._dynamo.reset()
    assert run(model, requests(tokens=50), slots=4) == eager
    assert len(buckets) >= 3  # slots 1, 2, 4 at least: sequences joined and left
    # Dynamo's own counters say why, should it ever trace nothing (frames skipped, and how).
    why = {key: dict(value) for key, value in torch._dynamo.utils.counters.items()}
    assert len(compiles) == len(buckets), f"recompiled within a bucket, or not traced: {why}"


def counting(compiles: list[tuple[int, int]]) -> Callable[..., Any]:
    """A torch.compile backend that runs the captured graph as it is, counting captures."""

    def backend(graph: torch.fx.GraphModule, inputs: list[Any]) -> Callable[..., Any]:
        compiles.append((len(graph.graph.nodes), len(inputs)))
        return graph.forward

    return backend


# --- logits that are not finite ------------------------------------------------------------

SPOILED = 0.77  # the temperature that marks the request whose logits are spoiled


def spoil(engine: StreamingEngine, monkeypatch: pytest.MonkeyPatch, value: float) -> None:
    """After its 5th token, plant ``value`` in the logits of the request sampled at SPOILED."""
    runner = engine.t3.runner
    decode = runner.decode

    def planted(slots: int, length: int, ranked: bool) -> torch.Tensor:
        for slot, sequence in enumerate(engine.t3.scheduler.slots):
            if sequence.sampling.temperature == SPOILED and sequence.generated == 5:
                row = slot * runner.rows_per_slot
                if np.isnan(value):
                    runner.logits[row] = value
                else:
                    runner.logits[row, 100] = value
        return decode(slots, length, ranked)

    monkeypatch.setattr(runner, "decode", planted)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
async def test_non_finite_logits_end_only_their_request_and_the_others_are_unchanged(
    engine: StreamingEngine, monkeypatch: pytest.MonkeyPatch, value: float
) -> None:
    others = [("The first one.", 1), ("And the second.", 2)]
    alone = [(await synthesize(engine, t, seed=s, fixed_token_count=30))[0] for t, s in others]
    spoil(engine, monkeypatch, value)

    async def spoiled() -> BaseException | None:
        try:
            await synthesize(engine, "Spoiled.", seed=3, fixed_token_count=30, temperature=SPOILED)
        except NonFiniteLogitsError as error:
            return error
        return None

    *together, error = await asyncio.gather(
        *(synthesize(engine, t, seed=s, fixed_token_count=30) for t, s in others), spoiled()
    )
    assert isinstance(error, NonFiniteLogitsError) and "other requests" in str(error)
    for (pcm, _, _), reference in zip(together, alone, strict=True):
        np.testing.assert_allclose(pcm, reference, atol=BATCH_TOLERANCE)


def test_text_ids_outside_the_vocabulary_are_refused_on_the_host() -> None:
    check_text_ids([0, 703], vocab=704)
    with pytest.raises(InvalidRequestError) as error:
        check_text_ids([5, 704], vocab=704)
    assert error.value.field == "text" and "704" in str(error.value)


async def test_the_event_loop_makes_no_transfer(engine: StreamingEngine) -> None:
    """Requests, chunking, T3 sequences and S3Gen windows are planned on the event loop, on the
    host (the counter's modes watch this thread only); the model loops' threads do the device
    work, on their own streams."""
    with TransferCounter() as count:
        pcm, _, _ = await synthesize(engine, "On the host. Twice.", seed=4, fixed_token_count=40)
    assert len(pcm) > 0
    assert (count.syncs, count.uploads) == (0, 0), count.calls
