"""S3Gen's batches on static shapes (worker/engine/s3gen/window_step.py), checked on this CPU.

- **Bucket parity**: a window padded to its bucket sounds as it does unpadded, within
  ``PADDING_TOLERANCE``, at every bucket edge (the last size of a bucket and the first of the
  next), English and Turbo.
- **Operators outside the step**: what the runner dispatches per window around the step (on a
  GPU, launches that no graph holds): a handful, against thousands inside.
- **Compiles whole** (English: its 10 Euler steps with CFG): ``torch.compile(fullgraph=True)`` of
  the step, once per bucket across 50 windows of mixed sizes and two voices, with the eager
  audio (in an interpreter of its own: Dynamo's state is the process's).
- The STFTs as convolutions equal torch's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from common.audio import SAMPLE_RATE
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from worker.engine.model.conditioning import VoiceConditioning, compute_conditioning
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.model.random_checkpoint import reference_clip
from worker.engine.s3gen.runner import S3GenRunner, WindowInputs
from worker.engine.s3gen.stream import S3GenStream, StreamConfig, Window
from worker.engine.s3gen.vocoder import Stft
from worker.engine.s3gen.window_step import PADDING_TOLERANCE, TOKEN_BUCKET, VOCODED_BUCKET
from worker.engine.transfer_count import OperatorCounter

VARIANTS = [Variant.ENGLISH, Variant.TURBO]
OPERATORS_PER_WINDOW = 50


@pytest.fixture(scope="module", params=VARIANTS, ids=[v.value for v in VARIANTS])
def model(request: pytest.FixtureRequest, checkpoints: Checkpoints) -> LoadedModel:
    return load_model(checkpoints(request.param), device="cpu")


def window(model: LoadedModel, tokens: int, seed: int, voice: VoiceConditioning | None = None,
           start: int = 0) -> WindowInputs:  # fmt: skip
    """A window of ``tokens`` speech tokens (the stream's from ``start``), as a stream plans it."""
    voice = voice or model.builtin_voice
    assert voice is not None
    stream = S3GenStream(model, voice, StreamConfig(seed=seed))
    ids = torch.randint(0, 6561, (start + tokens,), generator=torch.Generator().manual_seed(seed))
    stream.tokens = ids.tolist()
    return stream.inputs(Window(start, start + tokens, final=True))


def prompt_tokens(model: LoadedModel) -> int:
    assert model.builtin_voice is not None
    return int(model.builtin_voice.gen["prompt_token"].numel())


def edges(model: LoadedModel, largest: int = 130) -> list[int]:
    """Window sizes at every edge of the buckets a window of up to ``largest`` tokens meets:
    the last size of a bucket and the first of the next, of the tokens and the vocoded tokens
    (the edges repeat beyond: every 32 and 64 tokens)."""
    prompt = prompt_tokens(model)
    sizes = set()
    for edge in range(VOCODED_BUCKET, largest, VOCODED_BUCKET):
        sizes |= {edge, edge + 1}
    for edge in range(TOKEN_BUCKET, prompt + largest, TOKEN_BUCKET):
        sizes |= {edge - prompt, edge - prompt + 1}
    return sorted(n for n in sizes if 3 <= n <= largest)


@pytest.mark.timeout(900)  # 2 decodes per edge: ~10 s idle, minutes on a loaded machine
def test_a_padded_window_sounds_as_it_does_unpadded_at_every_bucket_edge(
    model: LoadedModel,
) -> None:
    exact, static = S3GenRunner(model, static=False), S3GenRunner(model, static=True)
    sizes = edges(model)
    assert len(sizes) >= 8
    for n in sizes:
        alone = exact.decode([window(model, n, seed=n)])[0]
        padded = static.decode([window(model, n, seed=n)])[0]
        assert alone.shape == padded.shape == (n * 960,)
        assert np.abs(padded - alone).max() < PADDING_TOLERANCE, n
    # rows that only fill the bucket (3 windows: 4 rows), and a stream's later window
    batch = [window(model, 30, 1), window(model, 70, 2, start=40), window(model, 12, 3)]
    apart = [exact.decode([w])[0] for w in batch]
    together = static.decode(batch)
    for a, b in zip(apart, together, strict=True):
        assert np.abs(a - b).max() < PADDING_TOLERANCE


def test_a_window_dispatches_a_handful_of_operators_outside_the_step(model: LoadedModel) -> None:
    """On a GPU the step is one graph replay; what the runner does around it is the host work
    and the launches left per window (22,005 operators per window eagerly at full size)."""
    runner = S3GenRunner(model, static=True)
    inside = [0]
    graphs = runner.graphs
    counter = OperatorCounter()

    def counted(step: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            before = counter.operators
            result = step(*args)
            inside[0] += counter.operators - before
            return result

        return call

    graphs.step = counted(graphs.step)  # type: ignore[assignment]
    runner.decode([window(model, 20, 9)])  # the voice's prompt read once
    for size in (1, 4):
        batch = [window(model, 20 + 7 * i, seed=i, start=16 * (i % 2)) for i in range(size)]
        inside[0] = counter.operators = 0
        with counter:
            runner.decode(batch)
        outside = counter.operators - inside[0]
        assert outside <= OPERATORS_PER_WINDOW * size, (size, outside)
        assert inside[0] > 20 * outside  # the count is of real work: the step's is thousands
    print(f"{model.variant.value}: {outside} operators outside the step for {size} windows, "
          f"{inside[0]} inside")  # fmt: skip


def test_the_stfts_as_convolutions_equal_torchs(model: LoadedModel) -> None:
    hift = model.s3gen.mel2wav
    S3GenRunner(model)  # its stft window on the device, as a buffer
    stft = Stft(hift)
    x = torch.randn(3, 4800, generator=torch.Generator().manual_seed(0))
    real, imaginary = hift._stft(x)
    assert (torch.cat([real, imaginary], dim=1) - stft.stft(x)).abs().max() < 1e-5
    magnitude, phase = torch.rand(3, 9, 200) * 3, torch.randn(3, 9, 200)
    assert (hift._istft(magnitude, phase) - stft.istft(magnitude, phase)).abs().max() < 1e-5


# --- torch.compile, in an interpreter of its own ----------------------------------------------

IN_OWN_PROCESS = "S3GEN_COMPILE_TEST_IN_OWN_PROCESS"


@pytest.mark.timeout(1500)
def test_the_compile_test_passes_in_an_interpreter_of_its_own() -> None:
    if os.environ.get(IN_OWN_PROCESS):
        pytest.skip("this is that interpreter")
    name = "test_the_step_compiles_whole_once_per_bucket_with_the_eager_audio"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{name}",
         "-k", "not turbo"],
        env={**os.environ, IN_OWN_PROCESS: "1"}, capture_output=True, text=True, timeout=1400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.skipif(not os.environ.get(IN_OWN_PROCESS), reason="run by the test above")
def test_the_step_compiles_whole_once_per_bucket_with_the_eager_audio(
    model: LoadedModel,
) -> None:
    other = compute_conditioning(model, reference_clip(7.0, seed=9), SAMPLE_RATE)
    voices = [model.builtin_voice, other]
    rng = np.random.default_rng(0)
    batches = [[window(model, int(rng.integers(20, 57)), seed=i * 2 + j, voice=voices[(i + j) % 2])
                for j in range(2)] for i in range(24)]  # fmt: skip
    batches.append([window(model, 44, seed=99, voice=other), window(model, 50, seed=98)])
    assert sum(len(b) for b in batches) == 50
    eager_runner = S3GenRunner(model, static=True)
    eager = [eager_runner.decode(batch) for batch in batches]
    runner = S3GenRunner(model, static=True)
    compiles: list[int] = []
    buckets = set()

    def backend(graph: torch.fx.GraphModule, inputs: list[Any]) -> Callable[..., Any]:
        compiles.append(len(graph.graph.nodes))  # runs the captured graph as it is
        return graph.forward

    compiled = torch.compile(runner.step.__call__, fullgraph=True, dynamic=False, backend=backend)

    def step(bucket: Any, flat: torch.Tensor, phase0: torch.Tensor) -> Any:
        buckets.add(bucket)
        # Dynamo builds its guards outside inference mode (inside it, a guard on a numpy stride
        # of HiFT's convolutions fails where it was made); the step writes no input in place.
        with torch.inference_mode(False), torch.no_grad():
            return compiled(bucket, flat, phase0)

    runner.graphs.step = step  # type: ignore[assignment]
    torch._dynamo.reset()
    for batch, audio in zip(batches, eager, strict=True):
        for ours, theirs in zip(runner.decode(batch), audio, strict=True):
            assert np.abs(ours - theirs).max() < 1e-6
    why = {key: dict(value) for key, value in torch._dynamo.utils.counters.items()}
    assert 2 <= len(buckets) <= 4
    assert len(compiles) == len(buckets), f"recompiled within a bucket, or not traced: {why}"
