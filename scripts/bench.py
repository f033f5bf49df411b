"""Benchmark the streaming engine against upstream's own non-streaming path, in one run.

Both sides run on the same checkpoint, the same voice and the same number of generated speech
tokens (random weights never say EOS, so the count is fixed). Upstream's path is its model's own
``generate``, called step by step so its 1000-token cap can be set: for English
(``ChatterboxTTS``) ``punc_norm`` -> tokenizer -> ``T3.inference`` -> drop invalid tokens ->
``S3Gen.inference``; for Turbo and Nano (``ChatterboxTurboTTS``) Turbo's ``punc_norm`` ->
tokenizer -> ``T3.inference_turbo`` -> drop invalid tokens -> three silence tokens ->
``S3Gen.inference`` in 2 meanflow steps. Its Perth watermark is left out on both sides (the
engine does not watermark).

    python scripts/bench.py --model-path DIR [--tokens 250] [--runs 3] [--out result.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from chatterbox.models.t3 import T3

from common.params import SynthesisParams
from common.variants import Variant
from worker.engine.model.conditioning import VoiceConditioning
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.pipeline import StreamingEngine, SynthesisStats

TEXT = (
    "Streaming speech should start at once. The listener hears the first words while the rest "
    "is still being made. Nobody should wait for the whole clip."
)
SPEECH_VOCAB = 6561  # speech ids a trained model emits; upstream drops the rest before S3Gen


async def run_ours(engine: StreamingEngine, tokens: int, seed: int) -> dict[str, float]:
    params = SynthesisParams(seed=seed, fixed_token_count=tokens, text_processing_chunk_size=400)
    stats = SynthesisStats()
    async for _ in await engine.synthesize(TEXT, params, stats=stats):
        pass
    end = time.perf_counter()
    assert stats.first_audio is not None
    return {
        "ttfa_s": stats.first_audio - stats.started,
        "total_s": end - stats.started,
        "audio_s": stats.audio_seconds,
        "tokens": stats.speech_tokens,
    }


@dataclass(frozen=True)
class S3GenInput:
    """What upstream's ``generate`` hands S3Gen after T3: the family's own steps in between."""

    tokens: torch.Tensor  # T3's tokens, invalid ids dropped (counted in upstream_s3gen_tokens)
    closing: tuple[int, ...] = ()  # appended after them (Turbo's trailing silence)
    cfm_steps: int | None = None  # S3Gen's flow steps, None for its default


@contextmanager
def never_stopping(t3: T3) -> Iterator[None]:
    """T3 with no stop token, so that random weights run exactly to the count asked for."""
    eos, t3.hp.stop_speech_token = t3.hp.stop_speech_token, -1
    try:
        yield
    finally:
        t3.hp.stop_speech_token = eos


def upstream_english_t3(model: LoadedModel, voice: VoiceConditioning, tokens: int) -> S3GenInput:
    """``ChatterboxTTS.generate`` up to S3Gen: English punc_norm, the text twice (CFG) between
    start and stop tokens, ``T3.inference`` with its defaults, ``drop_invalid_tokens``."""
    from chatterbox.models.s3tokenizer import drop_invalid_tokens
    from chatterbox.tts import punc_norm

    t3 = model.t3
    text_ids = torch.tensor([model.tokenize(punc_norm(TEXT), None)], device=model.device)
    text_ids = torch.cat([text_ids, text_ids])
    text_ids = torch.nn.functional.pad(text_ids, (1, 0), value=t3.hp.start_text_token)
    text_ids = torch.nn.functional.pad(text_ids, (0, 1), value=t3.hp.stop_text_token)
    with never_stopping(t3):
        speech = t3.inference(
            t3_cond=voice.t3_cond_for(0.5, model.dtype),
            text_tokens=text_ids,
            max_new_tokens=tokens,
            temperature=0.8,
            cfg_weight=0.5,
            repetition_penalty=1.2,
            min_p=0.05,
            top_p=1.0,
        )[0]
    speech = drop_invalid_tokens(speech)
    return S3GenInput(speech[speech < SPEECH_VOCAB].to(model.device))


def upstream_turbo_t3(model: LoadedModel, voice: VoiceConditioning, tokens: int) -> S3GenInput:
    """``ChatterboxTurboTTS.generate`` (Turbo and Nano) up to S3Gen: Turbo's punc_norm, the text
    alone, ``T3.inference_turbo`` with generate's defaults, ids >= 6561 dropped, three silence
    tokens appended, 2 meanflow steps. inference_turbo samples one token before its loop of
    ``max_gen_len`` steps, so ``tokens - 1`` makes ``tokens``."""
    from chatterbox.models.s3gen.const import S3GEN_SIL
    from chatterbox.tts_turbo import punc_norm

    t3 = model.t3
    text_ids = torch.tensor([model.tokenize(punc_norm(TEXT), None)], device=model.device)
    with never_stopping(t3):
        speech = t3.inference_turbo(
            t3_cond=voice.t3_cond_for(0.0, model.dtype),  # Turbo's T3 has no exaggeration
            text_tokens=text_ids,
            temperature=0.8,
            top_k=1000,
            top_p=0.95,
            repetition_penalty=1.2,
            max_gen_len=tokens - 1,
        )
    speech = speech[speech < SPEECH_VOCAB].to(model.device)
    return S3GenInput(speech, closing=(S3GEN_SIL,) * 3, cfm_steps=2)


@torch.inference_mode()
def run_upstream(model: LoadedModel, tokens: int, seed: int) -> dict[str, float]:
    assert model.builtin_voice is not None
    upstream_t3 = upstream_turbo_t3 if model.variant.turbo_family else upstream_english_t3
    torch.manual_seed(seed)
    start = time.perf_counter()
    s3gen_input = upstream_t3(model, model.builtin_voice, tokens)
    closing = torch.tensor(s3gen_input.closing, dtype=torch.long, device=model.device)
    wav, _ = model.s3gen.inference(
        speech_tokens=torch.cat([s3gen_input.tokens, closing]),
        ref_dict=dict(model.builtin_voice.gen),
        n_cfm_timesteps=s3gen_input.cfm_steps,
    )
    wav.cpu()
    total = time.perf_counter() - start
    return {"ttfa_s": total, "total_s": total, "audio_s": wav.shape[-1] / 24000,
            "tokens": tokens, "s3gen_tokens": int(s3gen_input.tokens.numel())}  # fmt: skip


def mask_invalid_tokens(model: LoadedModel) -> None:
    """Keep both sides' S3Gen work equal: no token a trained model never emits.

    Random weights put ~20% of the mass on ids >= 6561, which upstream drops (and truncates at a
    stray SOS) before S3Gen, while the engine never samples them. A hook on the shared speech
    head removes them for upstream's loop too, so both decode exactly ``--tokens`` tokens.
    """
    vocab = model.t3.hp.speech_tokens_dict_size
    mask = torch.zeros(vocab, device=model.device)
    mask[SPEECH_VOCAB:] = -1e4  # finite: CFG subtracts the rows, and inf - inf is nan

    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output + mask.to(output.dtype)

    model.t3.speech_head.register_forward_hook(hook)


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    total, audio = median(runs, "total_s"), median(runs, "audio_s")
    return {
        "ttfa_s": round(median(runs, "ttfa_s"), 4),
        "total_s": round(total, 4),
        "audio_s": round(audio, 3),
        "rtf": round(total / audio, 4) if audio else float("nan"),
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(),
                            "cores": os.cpu_count(), "torch": torch.__version__}  # fmt: skip
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = None
    return info


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default="float32")
    # 250 tokens = 10 s of audio, about how long the three sentences of TEXT take to say.
    parser.add_argument("--tokens", type=int, default=250)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_model(args.model_path, device=args.device, dtype=args.dtype)
    if model.variant is Variant.MULTILINGUAL:
        raise SystemExit(
            "bench.py compares against upstream's English and Turbo paths: use a chatterbox, "
            "chatterbox-turbo or chatterbox-nano checkpoint"
        )
    mask_invalid_tokens(model)
    engine = StreamingEngine(model, slots=1)
    await run_ours(engine, 30, 0)  # warm-up both paths once
    run_upstream(model, 30, 0)
    ours, upstream = [], []
    for i in range(args.runs):  # interleaved, so drifting machine load hits both alike
        ours.append(await run_ours(engine, args.tokens, i))
        upstream.append(run_upstream(model, args.tokens, i))
    mine, theirs = summary(ours), summary(upstream)
    result = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "model": model.describe(),
        "tokens": args.tokens,
        "runs": args.runs,
        "ours_streaming": mine,
        "upstream_non_streaming": theirs,
        "upstream_s3gen_tokens": [r["s3gen_tokens"] for r in upstream],
        "ratios": {
            "ours_ttfa_over_ours_total": round(mine["ttfa_s"] / mine["total_s"], 3),
            "ours_total_over_upstream_total": round(mine["total_s"] / theirs["total_s"], 3),
            "ours_ttfa_over_upstream_ttfa": round(mine["ttfa_s"] / theirs["ttfa_s"], 3),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    engine.close()


if __name__ == "__main__":
    asyncio.run(main())
