"""What an S3Gen batch costs the host on a GPU, counted on this CPU (worker/engine/transfer_count).

Per batch: one upload (everything that changes per window, in one pinned buffer), one sync for
the audio of the whole batch, and one sync per voice the runner has not seen before (its prompt
tokens checked once). The bound asserted is the issue's: at most one sync per window plus two,
whatever the step count or the number of decoder blocks. Nothing on the event loop's side.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from worker.engine.errors import EngineError, InvalidCheckpointError
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.s3gen.flow import Levels, estimate
from worker.engine.s3gen.runner import S3GenRunner, WindowInputs
from worker.engine.s3gen.stream import S3GenStream, StreamConfig
from worker.engine.transfer_count import TransferCount, TransferCounter

VARIANTS = [Variant.ENGLISH, Variant.TURBO]
UPLOADS = 1


@pytest.fixture(scope="module", params=VARIANTS, ids=[v.value for v in VARIANTS])
def model(request: pytest.FixtureRequest, checkpoints: Checkpoints) -> LoadedModel:
    return load_model(checkpoints(request.param), device="cpu")


def windows(model: LoadedModel, count: int, tokens: int = 30) -> list[WindowInputs]:
    assert model.builtin_voice is not None
    planned = []
    for seed in range(count):
        stream = S3GenStream(model, model.builtin_voice, StreamConfig(seed=seed))
        work = stream.plan(list(range(100 + seed, 100 + seed + tokens + 7 * seed)), final=True)
        assert not isinstance(work, np.ndarray)
        planned.append(stream.inputs(work))
    return planned


def count_decode(runner: S3GenRunner, batch: list[WindowInputs]) -> TransferCount:
    with TransferCounter(runner.flow, runner.hift) as count:
        runner.decode(batch)
    return count


@pytest.mark.parametrize("size", [1, 2, 3])
def test_a_batch_syncs_once_per_window_plus_two_at_most(model: LoadedModel, size: int) -> None:
    runner = S3GenRunner(model)  # a voice it has not seen: its first batch checks the prompt
    for _ in range(2):
        count = count_decode(runner, windows(model, size))
        assert count.syncs <= size + 2, count.calls
        assert count.uploads <= UPLOADS, count.calls
    assert count.syncs == 1, count.calls  # the voice is known now: the audio alone


def test_the_count_does_not_grow_with_steps_or_blocks(model: LoadedModel) -> None:
    """More Euler steps, decoder blocks and encoder layers, the same transfers: nothing is
    read back per step or per block (upstream's mask check was, 142 times a batch)."""
    runner = S3GenRunner(model)
    batch = windows(model, 2)
    base = count_decode(runner, batch)
    deeper = dataclasses.replace(model, s3gen=copy.deepcopy(model.s3gen))
    estimator = deeper.s3gen.flow.decoder.estimator
    estimator.mid_blocks.append(copy.deepcopy(estimator.mid_blocks[0]))
    encoder = deeper.s3gen.flow.encoder
    encoder.encoders.append(copy.deepcopy(encoder.encoders[0]))
    bigger = S3GenRunner(deeper)
    bigger.timesteps = 2 * runner.timesteps
    count_decode(bigger, batch)  # the voice seen
    assert count_decode(bigger, batch).calls == count_decode(runner, batch).calls
    assert base.syncs <= len(batch) + 2


def test_the_counter_sees_what_upstreams_decoder_reads_back(model: LoadedModel) -> None:
    """The bound can fail: upstream's own ``flow.inference`` on one window reads back twice in
    the encoder and once per decoder level per estimator call (``.item()`` in inference mode)."""
    voice = model.builtin_voice
    assert voice is not None
    gen, steps = voice.gen, 2 if model.s3gen.meanflow else 10
    with TransferCounter(model.s3gen) as count, torch.inference_mode():
        model.s3gen.flow.inference(
            token=torch.arange(100, 130)[None], token_len=torch.tensor([30]),
            prompt_token=gen["prompt_token"], prompt_token_len=gen["prompt_token_len"],
            prompt_feat=gen["prompt_feat"], prompt_feat_len=None, embedding=gen["embedding"],
            finalize=True, n_timesteps=steps, meanflow=model.s3gen.meanflow,
        )  # fmt: skip
    estimator = model.s3gen.flow.decoder.estimator
    blocks = len(estimator.down_blocks) + len(estimator.mid_blocks) + len(estimator.up_blocks)
    assert count.calls.count("aten.item.default") >= 2 + blocks * steps
    assert count.syncs > 1 + 2


def test_the_event_loop_side_makes_no_transfer(model: LoadedModel) -> None:
    """Stream construction, planning and inputs run on the event loop: host work only."""
    assert model.builtin_voice is not None
    S3GenRunner(model)  # as the engine does when it starts
    with TransferCounter() as count:
        stream = S3GenStream(model, model.builtin_voice, StreamConfig(seed=1))
        for step in range(4):
            work = stream.plan(list(range(200, 240)), final=step == 3)
            if not isinstance(work, np.ndarray):
                stream.inputs(work)
    assert (count.syncs, count.uploads) == (0, 0), count.calls


def test_an_out_of_range_speech_token_is_refused_on_the_host(model: LoadedModel) -> None:
    assert model.builtin_voice is not None
    stream = S3GenStream(model, model.builtin_voice, StreamConfig())
    for bad in (6561, -1):
        with pytest.raises(EngineError, match=f"speech token {bad}, outside S3Gen's 6561"):
            stream.plan([10, bad, 12])
    assert stream.tokens == []
    stream.plan([10, 6560, 12])
    assert stream.tokens == [10, 6560, 12]


def test_a_voice_with_out_of_range_prompt_tokens_is_refused(model: LoadedModel) -> None:
    assert model.builtin_voice is not None
    voice = dataclasses.replace(model.builtin_voice, gen=dict(model.builtin_voice.gen))
    voice.gen["prompt_token"] = voice.gen["prompt_token"].clone()
    voice.gen["prompt_token"][0, 3] = 7000
    stream = S3GenStream(model, voice, StreamConfig())
    work = stream.plan(list(range(100, 130)), final=True)
    assert not isinstance(work, np.ndarray)
    with pytest.raises(EngineError, match=r"prompt tokens \(gen\['prompt_token'\]\)"):
        S3GenRunner(model).decode([stream.inputs(work)])


def test_a_flow_with_chunked_attention_is_refused(model: LoadedModel) -> None:
    chunked = dataclasses.replace(model, s3gen=copy.deepcopy(model.s3gen))
    chunked.s3gen.flow.encoder.static_chunk_size = 25
    with pytest.raises(InvalidCheckpointError, match=r"encoder\.static_chunk_size"):
        S3GenRunner(chunked)


def test_our_estimator_call_equals_upstreams_forward(model: LoadedModel) -> None:
    """Padded rows of different lengths: our block-by-block call with masks built once is
    bit for bit ``ConditionalDecoder.forward`` (which builds them per block)."""
    estimator = model.s3gen.flow.decoder.estimator
    gen = torch.Generator().manual_seed(0)
    x, mu, cond = (torch.randn(2, 80, 50, generator=gen) for _ in range(3))
    spks = torch.randn(2, 80, generator=gen)
    mask = torch.ones(2, 1, 50)
    mask[1, :, 37:] = 0.0
    t, r = torch.tensor([0.3, 0.3]), torch.tensor([0.8, 0.8])
    meanflow = {"r": r} if estimator.meanflow else {}
    with torch.inference_mode():
        theirs = estimator.forward(x, mask=mask, mu=mu, t=t, spks=spks, cond=cond, **meanflow)
        levels = Levels.of(mask, len(estimator.down_blocks))
        ours = estimate(estimator, x, levels, mu, t, spks, cond, **meanflow)
    assert torch.equal(ours, theirs)
