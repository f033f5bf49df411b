"""Command-line synthesis: stream one text to a WAV file, optionally reporting timings as JSON.

    python -m worker.synthesize --text "Hello." --out hello.wav [--voice ref.mp3]
        [--model-path DIR] [--variant chatterbox] [--json]

The WAV is written as chunks arrive (its header is fixed up at the end), so a long text never sits
in memory. Errors print one actionable line and exit with status 2 (bad input) or 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import wave
from pathlib import Path

from pydantic import ValidationError

from common.audio import SAMPLE_RATE, AudioDecodeError
from common.settings import Settings
from common.validation import every_problem


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker.synthesize", description=__doc__)
    parser.add_argument("--text", required=True)
    parser.add_argument("--out", required=True, type=Path, help="output .wav (24 kHz mono)")
    parser.add_argument(
        "--voice", type=Path, help="reference clip (wav/mp3/flac/ogg/m4a) or conds .pt"
    )
    parser.add_argument("--model-path", help="checkpoint directory (default: MODEL_PATH)")
    parser.add_argument(
        "--variant",
        help="chatterbox | chatterbox-turbo | chatterbox-nano | chatterbox-multilingual "
        "(default: MODEL_VARIANT; MODEL_REPO_ID and MULTILINGUAL_T3_MODEL apply too)",
    )
    parser.add_argument("--device", help="auto | cpu | cuda:N (default: DEVICE)")
    parser.add_argument("--language", help="language code for chatterbox-multilingual")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--exaggeration", type=float)
    parser.add_argument("--cfg-weight", type=float)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--json", action="store_true", help="print one JSON line of timings")
    args = parser.parse_args(argv)
    if not args.text.strip():  # said before the model loads, not after
        parser.error("text is empty")
    return args


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    # Imported here so that --help and argument errors answer without loading torch.
    from .engine.model.conditioning import VoiceConditioning, compute_conditioning, load_reference
    from .engine.pipeline import SynthesisStats
    from .engine_config import engine_config

    params = settings.synthesis_defaults(
        language=args.language, seed=args.seed, exaggeration=args.exaggeration,
        cfg_weight=args.cfg_weight, temperature=args.temperature,
    )  # fmt: skip
    config = engine_config(
        settings, model_path=args.model_path, variant=args.variant, device=args.device
    )
    model = config.load_model()
    voice = None
    if args.voice and args.voice.suffix == ".pt":
        voice = VoiceConditioning.load(args.voice, model.device)
    elif args.voice:
        voice = compute_conditioning(
            model, load_reference(args.voice), SAMPLE_RATE, params.exaggeration
        )
    engine = config.engine(model, slots=1)
    stats = SynthesisStats()
    chunks = await engine.synthesize(args.text, params, voice, stats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(args.out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        async for chunk in chunks:
            wav.writeframes(chunk.to_int16_bytes())
    done = time.perf_counter()
    engine.close()
    return {
        "ttfa_ms": round(((stats.first_audio or done) - stats.started) * 1000, 1),
        "total_ms": round((done - stats.started) * 1000, 1),
        "audio_s": round(stats.audio_seconds, 3),
        "chunks": stats.pcm_chunks,
        "text_chunks": stats.text_chunks,
        "speech_tokens": stats.speech_tokens,
        "model": model.variant.value,
        "weights": model.weights,
        "device": str(model.device),
        "out": str(args.out),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(message)s")
    try:
        settings = Settings()
    except ValidationError as error:
        print(
            f"error: invalid environment: {'; '.join(every_problem(error.errors(), upper=True))}",
            file=sys.stderr,
        )
        return 2
    try:
        report = asyncio.run(run(args, settings))
    except ValidationError as error:
        print(
            f"error: invalid parameter: {'; '.join(every_problem(error.errors()))}", file=sys.stderr
        )
        return 2
    except Exception as error:
        from .engine.errors import EngineError, InvalidRequestError

        if not isinstance(error, EngineError | AudioDecodeError):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, InvalidRequestError | AudioDecodeError) else 1
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"wrote {report['audio_s']} s to {args.out} (first audio after {report['ttfa_ms']} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
