"""What the GPU sweep has found so far, on disk after every level (scripts/bench_gpu.py).

Every write is a temporary file renamed over the old one, so whenever the run is killed (the
device call's time limit) the JSON on disk is whole: the last level's, or the run's end.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class Record:
    """The sweep's rows, skipped levels and load times, saved to ``out/bench_gpu.json``."""

    def __init__(self, out: Path, header: dict[str, Any]) -> None:
        self.path = out / "bench_gpu.json"
        self.header = header
        self.results: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.load_s: dict[str, float] = {}
        self.stage = "starting"

    def at(self, stage: str) -> None:
        """Where the run is (kept in the JSON: a killed run says what it was doing)."""
        self.stage = stage
        print(f"bench_gpu: {stage}", file=sys.stderr, flush=True)
        self.save()

    def skip(self, where: dict[str, Any], reason: str) -> None:
        self.skipped.append({**where, "reason": reason})
        print(f"bench_gpu: skipped {where}: {reason}", file=sys.stderr, flush=True)
        self.save()

    def add(self, result: dict[str, Any]) -> None:
        self.results.append(result)
        print(f"bench_gpu: {json.dumps(result)}", file=sys.stderr, flush=True)
        self.save()

    def figures(self) -> dict[str, Any]:
        return {
            **self.header, "stage": self.stage, "load_s": self.load_s,
            "results": self.results, "skipped": self.skipped,
        }  # fmt: skip

    def save(self, partial: bool = True) -> None:
        write_atomically(self.path, json.dumps({"partial": partial, **self.figures()}, indent=2))


def markdown(result: dict[str, Any]) -> str:
    """The table for docs/PERFORMANCE.md, with what it was measured on."""
    info = result["machine"]
    lines = [
        f"{info.get('gpu') or info['cpu']}, torch {info['torch']}, commit {info['commit']}, "
        f"{result['date']}; T3 {result['dtype']}, S3Gen {result['s3gen_dtype']}, "
        f"{result['tokens']} tokens per stream, sweep {result['sweep_s']} s (checkpoints "
        f"written: {result['checkpoints_written_s']}). Times from CUDA events on a GPU.",
        "",
        "| model | graphs | streams | T3 ms/step (batch) | S3Gen ms/batch (windows) "
        "| S3Gen ms/window | graphs T3/S3Gen (fell back) | captured while timed "
        "| syncs/T3 step (max) | syncs/S3Gen batch (max) | first audio p50 / p95 | x real time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        fell = ", ".join(r["graphs_fell_back"]) or "no"
        lines.append(
            f"| {r['model']} | {'on' if r['cuda_graphs'] else 'off'} | {r['streams']} "
            f"| {r['t3_step_ms_p50']} ({r['t3_batch']}) "
            f"| {r['s3gen_batch_ms_p50']} ({r['s3gen_windows_per_batch_p50']}) "
            f"| {r['s3gen_window_ms_p50']} | {r['t3_graphs']}/{r['s3gen_graphs']} ({fell}) "
            f"| {r['captured_while_timed']} "
            f"| {r['t3_syncs_per_step_p50']} ({r['t3_syncs_per_step_max']}) "
            f"| {r['s3gen_syncs_per_batch_p50']} ({r['s3gen_syncs_per_batch_max']}) "
            f"| {r['first_audio_p50_s']} / {r['first_audio_p95_s']} s | {r['x_real_time']} |"
        )
    for s in result["skipped"]:
        what = (
            "every configuration"
            if s["streams"] is None
            else (f"graphs {'on' if s['cuda_graphs'] else 'off'}, {s['streams']} streams")
        )
        lines.append(f"\nSkipped: {s['model']}, {what}: {s['reason']}.")
    return "\n".join(lines)
