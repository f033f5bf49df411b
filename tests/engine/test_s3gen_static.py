"""S3Gen's batches on static shapes (worker/engine/s3gen/window_step.py), checked on this CPU.

- **Bucket parity**: a window padded to its bucket sounds as it does unpadded, within
  ``PADDING_TOLERANCE``, at each kind of bucket edge once (the last size of a bucket and the
  first of the next, of the tokens and of the vocoded tokens; rows that only fill a bucket),
  English and Turbo; the edges repeat every ``TOKEN_BUCKET``/``VOCODED_BUCKET`` tokens.
- **A prompt mel of 2n + 1 frames** (upstream's ``embed_ref`` can give one for n prompt tokens):
  it conditions whole, the window is placed by the prompt's tokens, padded or not, and the mel
  is upstream's ``flow.inference``'s.
- **Operators outside the step**: what the runner dispatches per window around the step (on a
  GPU, launches that no graph holds): a handful, against thousands inside.
- **Compiles whole** (English: its 10 Euler steps with CFG): ``torch.compile(fullgraph=True)``
  of the step traces once for 50 windows of mixed sizes and three voices that share a bucket,
  and gives the eager audio. Dynamo's tracing is what finds graph breaks, recompiles and
  values it would read at run time (upstream's numpy-integer strides in HiFT failed here until
  made plain integers), so its backend here runs the traced graph as it is. Inductor compiles
  the same step too, with the eager audio (6e-8), but its code generation for the ~4,000
  operators of one tiny step took 343 s on this loaded 2-core machine: more than this file
  may (docs/PERFORMANCE.md).
- The STFTs as convolutions equal torch's.

Windows use a 50-token prompt cut from the built-in voice (a 10 s prompt is 200 tokens, and the
attention over it is most of a tiny window's time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from common.variants import Variant
from tests.support.reference import upstream_mel
from worker.engine.model.conditioning import VoiceConditioning
from worker.engine.model.loading import LoadedModel
from worker.engine.s3gen.runner import S3GenRunner, WindowInputs
from worker.engine.s3gen.stream import S3GenStream, StreamConfig, Window
from worker.engine.s3gen.vocoder import Stft
from worker.engine.s3gen.window_step import PADDING_TOLERANCE, TOKEN_BUCKET, VOCODED_BUCKET, Bucket
from worker.engine.transfer_count import OperatorCounter

VARIANTS = {Variant.ENGLISH: "english_model", Variant.TURBO: "turbo_model"}
OPERATORS_PER_WINDOW = 50
PROMPT_TOKENS = 50


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread for this module: on tiny shapes a second one gains little, and
    beside other work on 2 cores it made the compile test 8x slower (277 s against 34 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=list(VARIANTS), ids=[v.value for v in VARIANTS])
def model(request: pytest.FixtureRequest) -> LoadedModel:
    loaded: LoadedModel = request.getfixturevalue(VARIANTS[request.param])
    return loaded


def cut_voice(model: LoadedModel, tokens: int, extra_frame: bool = False) -> VoiceConditioning:
    """The built-in voice's S3Gen prompt cut to ``tokens`` tokens and their 2 mel frames each,
    plus the next frame with ``extra_frame`` (a prompt mel of 2n + 1 frames)."""
    voice = model.builtin_voice
    assert voice is not None
    gen = dict(voice.gen)
    frames = 2 * tokens + int(extra_frame)
    assert gen["prompt_feat"].shape[1] >= frames
    gen["prompt_token"] = gen["prompt_token"][:, :tokens]
    gen["prompt_token_len"] = torch.tensor([tokens])
    gen["prompt_feat"] = gen["prompt_feat"][:, :frames]
    return VoiceConditioning(voice.t3, gen)


def window(
    model: LoadedModel, voice: VoiceConditioning, tokens: int, seed: int, start: int = 0
) -> WindowInputs:
    """A window of ``tokens`` speech tokens (the stream's from ``start``), as a stream plans it."""
    stream = S3GenStream(model, voice, StreamConfig(seed=seed))
    ids = torch.randint(0, 6561, (start + tokens,), generator=torch.Generator().manual_seed(seed))
    stream.tokens = ids.tolist()
    return stream.inputs(Window(start, start + tokens, final=True))


def assert_same_audio(exact: S3GenRunner, static: S3GenRunner, batch: list[WindowInputs]) -> None:
    apart = [exact.decode([w])[0] for w in batch]
    together = static.decode(batch)
    for w, a, b in zip(batch, apart, together, strict=True):
        assert a.shape == b.shape == (w.emit_frames * 480,)
        assert np.abs(a - b).max() < PADDING_TOLERANCE, len(w.tokens)


def test_a_padded_window_sounds_as_it_does_unpadded_at_the_bucket_edges(
    model: LoadedModel,
) -> None:
    exact, static = S3GenRunner(model, static=False), S3GenRunner(model, static=True)
    voice = cut_voice(model, PROMPT_TOKENS)
    full = TOKEN_BUCKET - PROMPT_TOKENS  # prompt + window fill the token bucket exactly
    for n in (full, full + 1, VOCODED_BUCKET, VOCODED_BUCKET + 1):
        assert_same_audio(exact, static, [window(model, voice, n, seed=n)])
    sizes = [bucket_of(static, window(model, voice, n, 0)) for n in (full, full + 1, 33)]
    assert [(b.tokens, b.vocoded) for b in sizes] == [(64, 32), (128, 32), (128, 64)]
    # rows that only fill the bucket (3 windows: 4 rows), and a stream's later window
    batch = [window(model, voice, 30, 1), window(model, voice, 40, 2, start=24)]
    assert_same_audio(exact, static, [*batch, window(model, voice, 12, 3)])


def bucket_of(runner: S3GenRunner, inputs: WindowInputs) -> Bucket:
    return runner.bucket([inputs], [runner.prompts[inputs.voice]])


def test_a_prompt_mel_of_2n_plus_1_frames_conditions_whole_padded_or_not(
    model: LoadedModel,
) -> None:
    """Upstream's flow conditions on the whole prompt mel and returns the frames after it; the
    engine places the window by the prompt's tokens (2 frames each), as its noise and tokens
    are, so its mel has one frame more at the start, and the rest is upstream's."""
    exact, static = S3GenRunner(model, static=False), S3GenRunner(model, static=True)
    odd = cut_voice(model, PROMPT_TOKENS, extra_frame=True)
    full = TOKEN_BUCKET - PROMPT_TOKENS
    for n in (full, full + 1):
        assert_same_audio(exact, static, [window(model, odd, n, seed=n)])
    inputs = window(model, odd, 20, seed=5)
    with torch.inference_mode():
        ours = exact._mels([inputs])[0]
        padded = static._mels([inputs])[0]
    theirs = upstream_mel(model, odd, inputs)
    assert ours.shape == padded.shape == (80, 40) and theirs.shape == (80, 39)
    assert torch.equal(ours[:, 1:], theirs)
    assert (padded - ours).abs().max() < PADDING_TOLERANCE


def test_a_window_dispatches_a_handful_of_operators_outside_the_step(model: LoadedModel) -> None:
    """On a GPU the step is one graph replay; what the runner does around it is the host work
    and the launches left per window (22,005 operators per window eagerly at full size)."""
    runner = S3GenRunner(model, static=True)
    voice = cut_voice(model, PROMPT_TOKENS)
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
    runner.decode([window(model, voice, 20, 9)])  # the voice's prompt read once
    for size in (1, 4):
        batch = [window(model, voice, 20 + 7 * i, seed=i, start=16 * (i % 2)) for i in range(size)]
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


# --- torch.compile -------------------------------------------------------------------------------


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    """Dynamo's caches and counters are the process's: empty before, emptied after."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_the_step_traces_whole_once_for_50_windows_with_the_eager_audio(
    english_model: LoadedModel, fresh_dynamo: None
) -> None:
    """English only: its step (10 Euler steps with CFG) holds Turbo's (2, without CFG)."""
    model = english_model
    # Three prompts (2n, 2n + 1 and 2n frames) and windows of 17 to 32 tokens, two a batch:
    # every batch is in the bucket of 2 rows, 64 tokens, 32 vocoded tokens.
    voices = [cut_voice(model, 20), cut_voice(model, 25, True), cut_voice(model, 30)]
    rng = np.random.default_rng(0)
    batches = [
        [window(model, voices[(i + j) % 3], int(rng.integers(17, 33)), seed=2 * i + j,
                start=int(rng.integers(0, 20))) for j in range(2)]
        for i in range(25)
    ]  # fmt: skip
    eager_runner = S3GenRunner(model, static=True)
    eager = [eager_runner.decode(batch) for batch in batches]
    runner = S3GenRunner(model, static=True)
    traced: list[int] = []
    buckets: set[Bucket] = set()

    def backend(graph: torch.fx.GraphModule, inputs: list[Any]) -> Callable[..., Any]:
        traced.append(len(graph.graph.nodes))
        return graph.forward  # the traced graph, run as it is

    compiled = torch.compile(runner.step.__call__, fullgraph=True, dynamic=False, backend=backend)

    def step(bucket: Bucket, flat: torch.Tensor, phase0: torch.Tensor) -> Any:
        buckets.add(bucket)
        return compiled(bucket, flat, phase0)  # in the runner's inference mode

    runner.graphs.step = step  # type: ignore[assignment]
    for batch, audio in zip(batches, eager, strict=True):
        for ours, theirs in zip(runner.decode(batch), audio, strict=True):
            assert np.abs(ours - theirs).max() < 1e-6
    assert sum(len(b) for b in batches) == 50
    assert buckets == {Bucket(2, 64, 32, runner.harmonics)}
    why = {key: dict(value) for key, value in torch._dynamo.utils.counters.items()}
    assert len(traced) == 1, f"retraced for another window of the same bucket: {why}"
    assert traced[0] > 1000  # the whole step: encoder, 10 steps with CFG, HiFT
