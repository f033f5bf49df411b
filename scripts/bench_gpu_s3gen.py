"""S3Gen at full size on random weights, measured where no GPU is needed: bf16 against float32
(mel L1, audio SNR) and the operators a window dispatches inside and outside the step.

    python scripts/bench_gpu_s3gen.py [--checkpoint DIR] [--windows 3] [--tokens 35] [--out FILE]

The full-size S3Gen is upstream's constructor (``S3Gen()``, random weights, seeded); the rest
(the voice's shapes, the runner's host side) is the tiny checkpoint's, with a voice prompt of
``--prompt-tokens`` (default 250 tokens, 500 mel frames: 10 s) drawn at random.
``S3GEN_DTYPE=bfloat16`` autocasts the encoder, the flow and the vocoder's convolutions; the
source and the STFTs stay float32.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chatterbox.models.s3gen import S3Gen  # noqa: E402

from worker.engine.model.loading import LoadedModel, load_model  # noqa: E402
from worker.engine.s3gen.runner import S3GenRunner, WindowInputs  # noqa: E402
from worker.engine.s3gen.stream import S3GenStream, StreamConfig, Window  # noqa: E402
from worker.engine.transfer_count import OperatorCounter  # noqa: E402


def full_size(tiny: LoadedModel, seed: int, prompt: int) -> LoadedModel:
    """The tiny model with a full-size random S3Gen and a voice prompt of ``prompt`` tokens."""
    torch.manual_seed(seed)
    s3gen = S3Gen().eval()
    assert tiny.builtin_voice is not None
    gen = dict(tiny.builtin_voice.gen)
    generator = torch.Generator().manual_seed(seed + 1)
    gen["prompt_token"] = torch.randint(0, 6561, (1, prompt), generator=generator)
    gen["prompt_token_len"] = torch.tensor([prompt])
    gen["prompt_feat"] = torch.randn(1, 2 * prompt, 80, generator=generator) * 2 - 6
    voice = dataclasses.replace(tiny.builtin_voice, gen=gen)
    return dataclasses.replace(tiny, s3gen=s3gen, builtin_voice=voice)


def window(model: LoadedModel, tokens: int, seed: int) -> WindowInputs:
    assert model.builtin_voice is not None
    stream = S3GenStream(model, model.builtin_voice, StreamConfig(seed=seed))
    generator = torch.Generator().manual_seed(seed)
    stream.tokens = torch.randint(0, 6561, (tokens,), generator=generator).tolist()
    return stream.inputs(Window(0, tokens, final=True))


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = float(np.sum((reference - other) ** 2))
    return 10 * np.log10(float(np.sum(reference**2)) / max(noise, 1e-30))


def compare(model: LoadedModel, windows: int, tokens: int) -> dict[str, Any]:
    """bf16 against float32 on the same windows (fresh inputs each: streams are stateful)."""
    exact, bf16 = S3GenRunner(model), S3GenRunner(model, dtype="bfloat16")
    rows = []
    for seed in range(windows):
        with torch.inference_mode():
            started = time.perf_counter()
            mel32 = exact._mels([window(model, tokens, seed)])[0]
            wav32 = exact.decode([window(model, tokens, seed)])[0]
            fp32_s = time.perf_counter() - started
            started = time.perf_counter()
            mel16 = bf16._mels([window(model, tokens, seed)])[0]
            wav16 = bf16.decode([window(model, tokens, seed)])[0]
            bf16_s = time.perf_counter() - started
        rows.append({
            "mel_l1": round(float((mel16 - mel32).abs().mean()), 4),
            "mel_mean_abs": round(float(mel32.abs().mean()), 3),
            "audio_snr_db": round(snr_db(wav32, wav16), 2),
            "audio_max_abs_diff": round(float(np.abs(wav16 - wav32).max()), 4),
            "cpu_s_float32": round(fp32_s, 1), "cpu_s_bfloat16": round(bf16_s, 1),
        })  # fmt: skip
        print(rows[-1], file=sys.stderr, flush=True)
    return {"windows": rows}


def operators(model: LoadedModel, tokens: int) -> dict[str, int]:
    """Operators one window dispatches: in all, and outside the step (static shapes)."""
    runner = S3GenRunner(model, static=True)
    runner.decode([window(model, tokens, 0)])  # the voice read once
    inside = [0]
    step = runner.graphs.step

    def counted(*args: Any) -> Any:
        before = counter.operators
        result = step(*args)
        inside[0] += counter.operators - before
        return result

    runner.graphs.step = counted  # type: ignore[assignment]
    with OperatorCounter() as counter:
        runner.decode([window(model, tokens, 1)])
    return {"total": counter.operators, "outside_the_step": counter.operators - inside[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(REPO / ".cache/checkpoints/chatterbox-tiny"))
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=35)
    parser.add_argument("--prompt-tokens", type=int, default=250, help="250: a 10 s voice")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = full_size(load_model(args.checkpoint, device="cpu"), 0, args.prompt_tokens)
    counted = operators(model, args.tokens)
    print(f"operators per window: {counted}", file=sys.stderr, flush=True)
    result = {
        "tokens": args.tokens, "prompt_tokens": args.prompt_tokens, "torch": torch.__version__,
        "operators_per_window": counted, **compare(model, args.windows, args.tokens),
    }  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
