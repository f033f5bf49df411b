"""The GPU sweep itself (run by scripts/bench_gpu.py, which documents the command).

Per model and CUDA-graph setting one engine (``StreamingEngine``, as many slots as the largest
level), and per level of concurrent streams:

1. **warm-up**: the same pass as the timed one (every stream asks for the same text with
   ``fixed_token_count=--tokens``), then a short one as the counting pass makes, then every
   S3Gen bucket the warm-up used at every batch size up to the level's
   (``S3GenRunner.prepare``), so that the timed pass captures nothing: a capture synchronizes
   the device and empties the allocator's cache, which must not fall inside a measurement;
2. **timed pass**: T3 steps and S3Gen batches timed with CUDA events (wall clock on a CPU, see
   :mod:`call_probe`); graphs captured during it are counted (``captured_while_timed``: 0 when
   the warm-up did its job);
3. **counting pass** (``--count-tokens``): syncs per model call, real ones on CUDA; on a CPU what
   a GPU would sync on, strictly (``TransferCounter(strict=True)``: ``istft``'s window check,
   0-dim tensors from Python data, ``nonzero``, boolean indexing too).

Each row records the graphs each stage holds and whether one fell back to eager. A level that
would not end within ``--budget-seconds`` (from the script's start) is skipped and named; a
level that fails ends its configuration only, named with its error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench import machine
from bench_concurrency import SAMPLES_PER_TOKEN, engine_stream, one_run
from bench_gpu_record import Record, markdown, write_atomically
from call_probe import Call, CallProbe

from common.variants import Variant
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.pipeline import StreamingEngine
from worker.engine.s3gen.stream import S3GenStream, StreamConfig

REPO = Path(__file__).resolve().parent.parent
LABELS = {Variant.ENGLISH: "base", Variant.TURBO: "Turbo"}
PASSES = 3  # a level runs its pass about three times: warm-up, timed, counting


def write_missing(models: list[tuple[str, Path]], size: str) -> dict[str, float]:
    """Write every checkpoint not there yet, in parallel; seconds each took (wall)."""
    missing = [(v, d) for v, d in models if not d.is_dir() or not any(d.iterdir())]
    if not missing:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // len(missing)))
    script = str(REPO / "scripts" / "make_random_checkpoint.py")
    started = time.perf_counter()
    writers = [
        (v, subprocess.Popen([sys.executable, script, "--variant", v, "--size", size, str(d)],
                             env={**os.environ, "OMP_NUM_THREADS": threads}))
        for v, d in missing
    ]  # fmt: skip
    took = {}
    for variant, writer in writers:
        if writer.wait() != 0:
            raise SystemExit(f"writing the {variant} checkpoint failed ({writer.returncode})")
        took[variant] = round(time.perf_counter() - started, 1)
    return took


class Budget:
    """Skip what would not end in time. A level is estimated from its timed pass, never from a
    cold one (CUDA's start-up, captures): the same level measured in another configuration,
    else the last level's timed pass times ``PASSES``, scaled by the square root of the growth
    in streams (on a GPU a batch of more streams costs less than its share)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.perf_counter()
        self.took: dict[int, float] = {}  # streams -> longest timed pass of that level so far
        self.last: tuple[int, float] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def estimate(self, streams: int) -> float:
        if streams in self.took:
            return PASSES * self.took[streams]
        if self.last is None:
            return 0.0
        level, timed = self.last
        return PASSES * timed * math.sqrt(max(1.0, streams / level))

    def refuses(self, streams: int, extra: float = 0.0) -> str | None:
        ends = self.elapsed() + extra + self.estimate(streams)
        if ends <= self.seconds:
            return None
        return f"would end at about {ends:.0f} s of the {self.seconds:.0f} s budget"

    def ran(self, streams: int, timed_s: float) -> None:
        self.took[streams] = max(timed_s, self.took.get(streams, 0.0))
        self.last = (streams, timed_s)


def samples_per_stream(model: LoadedModel, tokens: int) -> int:
    """The samples a stream of ``tokens`` speech tokens gets (Turbo's closing silence too)."""
    assert model.builtin_voice is not None
    closing = S3GenStream(model, model.builtin_voice, StreamConfig()).closing_tokens
    return (tokens + len(closing)) * SAMPLES_PER_TOKEN


def graph_state(engine: StreamingEngine, wanted: bool) -> dict[str, Any]:
    """How many graphs each stage holds, and which stage fell back to eager."""
    t3, s3gen = engine.t3.runner.decode, engine.s3gen.runner.graphs
    stages = {"t3": t3, "s3gen": s3gen}
    on_cuda = engine.model.device.type == "cuda"
    return {
        **{f"{name}_graphs": len(getattr(g, "graphs", {}) or {}) for name, g in stages.items()},
        "graphs_fell_back": [
            name for name, g in stages.items()
            if wanted and on_cuda and g is not None and not getattr(g, "enabled", True)
        ],
    }  # fmt: skip


async def warm(engine: StreamingEngine, streams: int, args: Any) -> None:
    """Every bucket the timed and counting passes will use, captured before them."""
    await one_run(engine_stream(engine, args.tokens), streams, 1, 0)
    if args.count_tokens != args.tokens:
        await one_run(engine_stream(engine, args.count_tokens), streams, 1, 0)
    largest = min(streams, engine.s3gen.max_windows)
    await engine.s3gen.call(engine.s3gen.runner.prepare, largest)


async def level(engine: StreamingEngine, probe: CallProbe, streams: int, args: Any) -> dict:
    """Warm up, time one pass, count the syncs of another; the level's figures."""
    await warm(engine, streams, args)
    probe.take()
    samples = samples_per_stream(engine.model, args.tokens)
    before = graph_state(engine, True)
    started = time.perf_counter()
    speed, firsts, complete = await one_run(
        engine_stream(engine, args.tokens), streams, 100, samples
    )
    timed_s = time.perf_counter() - started
    after = graph_state(engine, True)
    t3, s3gen, _ = probe.take()
    with probe.count_syncs():
        await one_run(engine_stream(engine, args.count_tokens), streams, 200, 0)
    t3_counted, s3gen_counted, outside = probe.take()
    return {
        "streams": streams,
        **t3_figures(t3, t3_counted, streams),
        **s3gen_figures(s3gen, s3gen_counted),
        "captured_while_timed": sum(after[k] - before[k] for k in ("t3_graphs", "s3gen_graphs")),
        "syncs_outside_model_calls": outside if probe.cuda else None,
        "first_audio_p50_s": round(float(np.percentile(firsts, 50)), 3),
        "first_audio_p95_s": round(float(np.percentile(firsts, 95)), 3),
        "x_real_time": round(speed, 3),
        "every_stream_complete": complete,
        "timed_s": round(timed_s, 2),
    }


def t3_figures(timed: list[Call], counted: list[Call], streams: int) -> dict[str, Any]:
    """Decode steps are those that prefilled nobody; the median is taken at the level's batch
    (every stream sampling), else at the most common batch, which ``t3_batch`` names."""
    decode = [c for c in timed if c.joined == 0 and c.batch > 0]
    batches = [c.batch for c in decode]
    batch = streams if streams in batches else max(set(batches), key=batches.count, default=0)
    at_batch = [c for c in decode if c.batch == batch]
    syncs = [c.syncs for c in counted if c.joined == 0 and c.batch > 0 and c.syncs is not None]
    prefill = [c.syncs for c in counted if c.joined > 0 and c.syncs is not None]
    return {
        "t3_step_ms_p50": _median([c.ms for c in at_batch]),
        "t3_step_wall_ms_p50": _median([c.wall_ms for c in at_batch]),
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
        "s3gen_batch_wall_ms_p50": _median([c.wall_ms for c in timed]),
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


async def configuration(
    model: LoadedModel, where: dict[str, Any], args: Any, budget: Budget, record: Record
) -> None:
    """Every level on one engine. A level that fails ends its configuration (the engine may
    be broken), named with its error; the sweep goes on with the next."""
    engine = StreamingEngine(
        model, slots=max(args.levels), cuda_graphs=where["cuda_graphs"],
        s3gen_dtype=args.s3gen_dtype,
    )  # fmt: skip
    probe = CallProbe(engine)
    try:
        for streams in args.levels:
            here = {**where, "streams": streams}
            reason = budget.refuses(streams)
            if reason:
                record.skip(here, reason)
                continue
            record.at(f"{where['model']}, graphs {where['cuda_graphs']}, {streams} streams")
            started = time.perf_counter()
            try:
                figures = await level(engine, probe, streams, args)
            except Exception as error:  # report it and go on: the call is the only one
                record.skip(here, f"failed: {error!r}")
                return
            budget.ran(streams, figures["timed_s"])
            record.add({
                **here, **figures, **graph_state(engine, where["cuda_graphs"]),
                "level_s": round(time.perf_counter() - started, 1), "gpu_peak_gib": _peak(model),
            })  # fmt: skip
    finally:
        engine.close()
        await asyncio.sleep(0)  # let the closed loops' tasks end, so the engine can be freed


async def sweep(args: argparse.Namespace, budget: Budget, record: Record) -> None:
    for variant, directory in args.models:
        label = LABELS.get(Variant(variant), variant)
        reason = budget.refuses(min(args.levels), extra=max(record.load_s.values(), default=0))
        if reason:
            record.skip({"model": label, "cuda_graphs": None, "streams": None}, reason)
            continue
        record.at(f"loading {label} from {directory}")
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
    """Give the device back what the last engine (or model) held (between configurations)."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _peak(model: LoadedModel) -> float | None:
    if model.device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    budget = Budget(args.budget_seconds)
    info = machine()  # a copy of the tree without .git names its commit in BENCH_COMMIT
    info["commit"] = info["commit"] or os.environ.get("BENCH_COMMIT")
    header = {
        "machine": info, "device": args.device, "dtype": args.dtype,
        "s3gen_dtype": args.s3gen_dtype, "tokens": args.tokens,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "checkpoints": {v: str(d) for v, d in args.models},
    }  # fmt: skip
    record = Record(args.out, header)
    record.at("writing missing checkpoints")
    header["checkpoints_written_s"] = write_missing(args.models, args.write_size)
    asyncio.run(sweep(args, budget, record))
    record.at("done")
    result = {**record.figures(), "sweep_s": round(budget.elapsed(), 1)}
    record.header["sweep_s"] = result["sweep_s"]
    record.save(partial=False)
    table = markdown(result)
    write_atomically(args.out / "bench_gpu.md", table + "\n")
    print("\n" + table, flush=True)
    return result
