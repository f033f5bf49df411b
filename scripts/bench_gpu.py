"""The GPU sweep (``make bench-gpu``): streams x models x CUDA graphs, in one call of a few minutes.

    python scripts/bench_gpu.py --device cuda --dtype bfloat16 \\
        --checkpoint chatterbox=DIR --checkpoint chatterbox-turbo=DIR \\
        [--streams 1,16,64] [--tokens 150] [--graphs on,off] [--budget-seconds 420] [--out FILE]

A checkpoint directory that does not exist (or is empty) is first written with random weights
(``make_random_checkpoint.py``, size ``--write-size``, all in parallel, the CPU's threads shared
out); one that holds files is used as it is, real weights too. Then per model and CUDA-graph
setting one engine (``StreamingEngine``, as many slots as the largest level), and per level of
concurrent streams: a short warm-up (CUDA graphs are captured there), one timed pass (every
stream asks for the same text with ``fixed_token_count=--tokens``, raw PCM, a seed of its own;
random weights never say EOS) and one short counting pass (syncs per model call, see
:mod:`call_probe`). Reported per configuration: T3 ms per decode step (median over the steps
that sampled every stream and prefilled none), S3Gen ms per window batch and per window, syncs
per T3 step and per S3Gen batch, time to first audio p50/p95, and the aggregate real-time
factor (seconds of audio of all streams per second of wall time). A level that would not end
within ``--budget-seconds`` (estimated from those already run) is skipped and named. JSON to
stdout and ``--out``; at the end a Markdown table, ready for docs/PERFORMANCE.md. On a CPU
(``--device cpu``) CUDA graphs are ignored and syncs are counted as a GPU would make them
(:mod:`worker.engine.transfer_count`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import machine  # noqa: E402
from bench_concurrency import SAMPLES_PER_TOKEN, engine_stream, one_run  # noqa: E402
from bench_service import report  # noqa: E402
from call_probe import Call, CallProbe  # noqa: E402

from common.variants import Variant  # noqa: E402
from worker.engine.model.loading import LoadedModel, load_model  # noqa: E402
from worker.engine.pipeline import StreamingEngine  # noqa: E402
from worker.engine.s3gen.stream import S3GenStream, StreamConfig  # noqa: E402

LABELS = {Variant.ENGLISH: "base", Variant.TURBO: "Turbo"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", action="append", required=True, metavar="VARIANT=DIR",
        help="a model to sweep (repeat); written first if DIR has no files",
    )  # fmt: skip
    parser.add_argument("--write-size", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", help="T3's dtype (MODEL_DTYPE)")
    parser.add_argument("--streams", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--tokens", type=int, default=150, help="fixed_token_count per stream")
    parser.add_argument("--warmup-tokens", type=int, default=40)
    parser.add_argument("--count-tokens", type=int, default=40, help="in the counting pass")
    parser.add_argument("--graphs", default="on,off", help="CUDA graph settings to sweep")
    parser.add_argument("--budget-seconds", type=float, default=420.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.models = [_checkpoint(text) for text in args.checkpoint]
    args.levels = [int(n) for n in args.streams.split(",")]
    args.graph_settings = [_on_off(word) for word in args.graphs.split(",")]
    return args


def _checkpoint(text: str) -> tuple[Variant, Path]:
    variant, sep, directory = text.partition("=")
    if not sep or variant not in {v.value for v in Variant}:
        raise SystemExit(f"--checkpoint {text!r}: give VARIANT=DIR, VARIANT one of "
                         f"{', '.join(v.value for v in Variant)}")  # fmt: skip
    return Variant(variant), Path(directory)


def _on_off(word: str) -> bool:
    if word not in ("on", "off"):
        raise SystemExit(f"--graphs: 'on' or 'off', not {word!r}")
    return word == "on"


def write_missing(models: list[tuple[Variant, Path]], size: str) -> dict[str, float]:
    """Write every checkpoint not there yet, in parallel; seconds each took (wall)."""
    missing = [(v, d) for v, d in models if not d.is_dir() or not any(d.iterdir())]
    if not missing:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // len(missing)))
    script = str(REPO / "scripts" / "make_random_checkpoint.py")
    started = time.perf_counter()
    writers = [
        (v, subprocess.Popen([sys.executable, script, "--variant", v.value, "--size", size, str(d)],
                             env={**os.environ, "OMP_NUM_THREADS": threads}))
        for v, d in missing
    ]  # fmt: skip
    took = {}
    for variant, writer in writers:
        if writer.wait() != 0:
            raise SystemExit(f"writing the {variant.value} checkpoint failed ({writer.returncode})")
        took[variant.value] = round(time.perf_counter() - started, 1)
    return took


class Budget:
    """Skip what would not end in time, estimated from what ran: the same level of another
    configuration, else the last level's time scaled by the number of streams."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.perf_counter()
        self.took: dict[int, float] = {}  # streams -> longest time of a level so far
        self.last: tuple[int, float] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def estimate(self, streams: int) -> float:
        if streams in self.took:
            return self.took[streams]
        if self.last is None:
            return 0.0
        level, took = self.last
        return took * max(1.0, streams / level)

    def refuses(self, streams: int, extra: float = 0.0) -> str | None:
        ends = self.elapsed() + extra + self.estimate(streams)
        if ends <= self.seconds:
            return None
        return f"would end at about {ends:.0f} s of the {self.seconds:.0f} s budget"

    def ran(self, streams: int, seconds: float) -> None:
        self.took[streams] = max(seconds, self.took.get(streams, 0.0))
        self.last = (streams, seconds)


def samples_per_stream(model: LoadedModel, tokens: int) -> int:
    """The samples a stream of ``tokens`` speech tokens gets (Turbo's closing silence too)."""
    assert model.builtin_voice is not None
    closing = S3GenStream(model, model.builtin_voice, StreamConfig()).closing_tokens
    return (tokens + len(closing)) * SAMPLES_PER_TOKEN


async def level(engine: StreamingEngine, probe: CallProbe, streams: int, args: Any) -> dict:
    """Warm up, time one pass, count the syncs of another; the level's figures."""
    await one_run(engine_stream(engine, args.warmup_tokens), streams, 1, 0)
    probe.take()
    samples = samples_per_stream(engine.model, args.tokens)
    speed, firsts, complete = await one_run(
        engine_stream(engine, args.tokens), streams, 100, samples
    )
    t3, s3gen, _ = probe.take()
    with probe.count_syncs():
        await one_run(engine_stream(engine, args.count_tokens), streams, 200, 0)
    t3_counted, s3gen_counted, outside = probe.take()
    return {
        "streams": streams,
        **t3_figures(t3, t3_counted, streams),
        **s3gen_figures(s3gen, s3gen_counted),
        "syncs_outside_model_calls": outside if probe.cuda else None,
        "first_audio_p50_s": round(float(np.percentile(firsts, 50)), 3),
        "first_audio_p95_s": round(float(np.percentile(firsts, 95)), 3),
        "x_real_time": round(speed, 3),
        "every_stream_complete": complete,
    }


def t3_figures(timed: list[Call], counted: list[Call], streams: int) -> dict[str, Any]:
    """Decode steps are those that prefilled nobody; the median is taken at the level's batch
    (every stream sampling), else at the most common batch, which ``t3_batch`` names."""
    decode = [c for c in timed if c.joined == 0 and c.batch > 0]
    batches = [c.batch for c in decode]
    batch = streams if streams in batches else max(set(batches), key=batches.count, default=0)
    at_batch = [c.ms for c in decode if c.batch == batch]
    syncs = [c.syncs for c in counted if c.joined == 0 and c.batch > 0 and c.syncs is not None]
    prefill = [c.syncs for c in counted if c.joined > 0 and c.syncs is not None]
    return {
        "t3_step_ms_p50": _median(at_batch),
        "t3_batch": batch,
        "t3_decode_steps": len(at_batch),
        "t3_prefill_ms_max": _max([c.ms for c in timed if c.joined > 0]),
        "t3_syncs_per_step_p50": _median(syncs),
        "t3_syncs_per_step_max": _max(syncs),
        "t3_syncs_per_prefill_step_max": _max(prefill),
    }


def s3gen_figures(timed: list[Call], counted: list[Call]) -> dict[str, Any]:
    syncs = [c.syncs for c in counted if c.syncs is not None]
    return {
        "s3gen_batch_ms_p50": _median([c.ms for c in timed]),
        "s3gen_windows_per_batch_p50": _median([c.batch for c in timed]),
        "s3gen_window_ms_p50": _median([c.ms / c.batch for c in timed if c.batch]),
        "s3gen_batches": len(timed),
        "s3gen_syncs_per_batch_p50": _median(syncs),
        "s3gen_syncs_per_batch_max": _max(syncs),
        "s3gen_syncs_per_window_max": _max(
            [c.syncs / c.batch for c in counted if c.syncs is not None and c.batch]
        ),
    }


def _median(values: list[float] | list[int]) -> float | None:
    return round(float(statistics.median(values)), 2) if values else None


def _max(values: list[float] | list[int]) -> float | None:
    return round(float(max(values)), 2) if values else None


class Record:
    """What the sweep has found so far, saved to ``out`` after every level: a run cut short
    (the device call's limit) still leaves its figures."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.results: list[dict] = []
        self.skipped: list[dict] = []
        self.load_s: dict[str, float] = {}

    def skip(self, where: dict[str, Any], reason: str) -> None:
        self.skipped.append({**where, "reason": reason})
        print(f"skipped {where}: {reason}", file=sys.stderr)
        self.save()

    def add(self, result: dict[str, Any]) -> None:
        self.results.append(result)
        print(result, file=sys.stderr)
        self.save()

    def figures(self) -> dict[str, Any]:
        return {"results": self.results, "skipped": self.skipped, "load_s": self.load_s}

    def save(self) -> None:
        if self.out:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps({"partial": True, **self.figures()}, indent=2))


async def configuration(
    model: LoadedModel, where: dict[str, Any], args: Any, budget: Budget, record: Record
) -> None:
    """Every level on one engine. A level that fails ends its configuration (the engine may
    be broken), named with its error; the sweep goes on with the next."""
    engine = StreamingEngine(model, slots=max(args.levels), cuda_graphs=where["cuda_graphs"])
    probe = CallProbe(engine)
    try:
        for streams in args.levels:
            here = {**where, "streams": streams}
            reason = budget.refuses(streams)
            if reason:
                record.skip(here, reason)
                continue
            started = time.perf_counter()
            try:
                figures = await level(engine, probe, streams, args)
            except Exception as error:  # report it and go on: the call is the only one
                record.skip(here, f"failed: {error!r}")
                return
            took = round(time.perf_counter() - started, 1)
            budget.ran(streams, took)
            record.add({**here, **figures, "level_s": took, "gpu_peak_gib": _peak_gib(model)})
    finally:
        engine.close()
        await asyncio.sleep(0)  # let the closed loops' tasks end, so the engine can be freed


async def sweep(args: argparse.Namespace, budget: Budget, record: Record) -> None:
    for variant, directory in args.models:
        label = LABELS.get(variant, variant.value)
        reason = budget.refuses(min(args.levels), extra=max(record.load_s.values(), default=0))
        if reason:
            record.skip({"model": label, "cuda_graphs": None, "streams": None}, reason)
            continue
        started = time.perf_counter()
        model = load_model(directory, device=args.device, dtype=args.dtype)
        record.load_s[label] = round(time.perf_counter() - started, 1)
        for graphs in args.graph_settings:
            if model.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            await configuration(
                model, {"model": label, "cuda_graphs": graphs}, args, budget, record
            )
            _free()
        del model
        _free()


def _free() -> None:
    """Give the device back what the last engine (or model) held."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _peak_gib(model: LoadedModel) -> float | None:
    if model.device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 1)


def markdown(result: dict[str, Any]) -> str:
    """The table for docs/PERFORMANCE.md, with what it was measured on."""
    info = result["machine"]
    lines = [
        f"{info.get('gpu') or info['cpu']}, torch {info['torch']}, commit {info['commit']}, "
        f"{result['date']}; T3 {result['dtype']}, {result['tokens']} tokens per stream, "
        f"sweep {result['sweep_s']} s (checkpoints written: {result['checkpoints_written_s']}).",
        "",
        "| model | CUDA graphs | streams | T3 ms/step (batch) | S3Gen ms/batch (windows) "
        "| S3Gen ms/window | syncs/T3 step (max) | syncs/S3Gen batch (max) | first audio p50 "
        "| first audio p95 | x real time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        lines.append(
            f"| {r['model']} | {'on' if r['cuda_graphs'] else 'off'} | {r['streams']} "
            f"| {r['t3_step_ms_p50']} ({r['t3_batch']}) "
            f"| {r['s3gen_batch_ms_p50']} ({r['s3gen_windows_per_batch_p50']}) "
            f"| {r['s3gen_window_ms_p50']} "
            f"| {r['t3_syncs_per_step_p50']} ({r['t3_syncs_per_step_max']}) "
            f"| {r['s3gen_syncs_per_batch_p50']} ({r['s3gen_syncs_per_batch_max']}) "
            f"| {r['first_audio_p50_s']} s | {r['first_audio_p95_s']} s | {r['x_real_time']} |"
        )
    for s in result["skipped"]:
        what = (
            "every configuration"
            if s["streams"] is None
            else (f"graphs {'on' if s['cuda_graphs'] else 'off'}, {s['streams']} streams")
        )
        lines.append(f"\nSkipped: {s['model']}, {what}: {s['reason']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    budget = Budget(args.budget_seconds)
    written = write_missing(args.models, args.write_size)
    record = Record(args.out)
    asyncio.run(sweep(args, budget, record))
    info = machine()  # a copy of the tree without .git names its commit in BENCH_COMMIT
    info["commit"] = info["commit"] or os.environ.get("BENCH_COMMIT")
    result = {
        "machine": info,
        "device": args.device,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "dtype": args.dtype,
        "tokens": args.tokens,
        "checkpoints": {v.value: str(d) for v, d in args.models},
        "checkpoints_written_s": written,
        **record.figures(),
        "sweep_s": round(budget.elapsed(), 1),
    }
    report(result, args.out)
    print("\n" + markdown(result))
    return result


if __name__ == "__main__":
    main()
