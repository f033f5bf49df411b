"""Soak the service: N minutes of mixed traffic on every protocol, watching memory and slots.

    python scripts/soak.py                 # 30 minutes on the tiny checkpoint (make soak)
    python scripts/soak.py --minutes 3     # a quick trial: reported, RSS growth not judged

Starts the service (``python -m app``, one CPU worker, voices in a temporary folder, its log in
``--log``), uploads two voices, then runs ``--clients`` simulated clients for ``--minutes``, each
one exchange at a time over a seeded random mix: ``/tts/generate`` (POST read whole; GET streamed,
some dropped at the first audio), ``WS /tts/stream`` (text word by word; some cancelled at the
first audio, some sockets aborted there), OpenAI's ``/v1/audio/speech`` (audio and SSE, with
``speed``), ElevenLabs' ``/stream`` and ``/stream/with-timestamps``, ``multi-stream-input``
(``close_context`` barge-ins while the next reply starts) and ``stream-input``. Every
``--churn-s`` a voice is uploaded under a new id, spoken with once and deleted (its clip one of
``--voice-clips`` distinct ones in turn). Each exchange has ``--timeout-s`` to complete (else it
is a hang) and is counted as ok, dropped (by the client, on purpose), 4xx, 5xx, hang or error (the
server broke it off). Every ``--sample-s`` the master's, fork server's and workers' RSS, file
descriptors and threads are sampled with the active requests of ``/system-status``.

At the end it waits for the pool to be idle, writes ``--out`` (JSON: summary, samples, every
exchange) and prints a table. Exit status 1 on any 5xx, hang or error, requests still active a
minute later, a restarted process, or (runs of 15 minutes or more) an RSS growth over
``--max-growth-mb-per-h`` fitted over the run after its first third (the warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.bench_service import KEY, start_service  # noqa: E402
from scripts.soak_common import Client, Tally  # noqa: E402
from scripts.soak_monitor import Sampler  # noqa: E402
from scripts.soak_report import barge_ins, log_findings, process_rows, table, verdict  # noqa: E402
from scripts.soak_traffic import PERMANENT_SEEDS, churn_loop, client_loop, upload_permanent  # noqa: E402

IDLE_LIMIT_S = 60.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model-path", default=str(REPO / ".cache/checkpoints/chatterbox-tiny"))
    add("--device", default="cpu")
    add("--workers", type=int, default=1, help="WORKERS_PER_DEVICE")
    add("--slots", type=int, default=8, help="CONCURRENT_REQUESTS_PER_WORKER")
    add("--minutes", type=float, default=30.0, help="of traffic (fractions for quick trials)")
    add("--clients", type=int, default=4, help="simulated clients at once")
    add("--seed", type=int, default=0)
    add("--timeout-s", type=float, default=120.0, help="an exchange not over by then is a hang")
    add("--sample-s", type=float, default=10.0, help="between samples of RSS, fds, requests")
    add("--churn-s", type=float, default=30.0, help="between voice uploads (each deleted)")
    add("--voice-clips", type=int, default=8, help="distinct clips the churned voices cycle")
    add("--max-growth-mb-per-h", type=float, default=20.0)
    add("--out", type=Path, default=REPO / ".cache/soak.json")
    add("--log", type=Path, default=REPO / ".cache/soak-server.log", help="the service's output")
    return parser.parse_args()


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Point this process's stdout and stderr at ``path`` while a child is started, so that
    the child writes there (it inherits them) and this process's own output stays readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


async def progress(tally: Tally, sampler: Sampler, stop: asyncio.Event) -> None:
    """A line a minute: outcomes so far, active requests, each process's RSS."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 60)
        except TimeoutError:
            last = sampler.samples[-1] if sampler.samples else {"processes": {}, "active": None}
            rss = ", ".join(f"{name} {p.get('rss_mb')} MB" for name, p in last["processes"].items())
            minute = round((time.monotonic() - tally.started) / 60)
            print(f"[{minute} min] {tally.counts()} active {last['active']}; {rss}", flush=True)


async def soak(args: argparse.Namespace, master_pid: int, url: str) -> dict[str, Any]:
    """Upload the voices, run the traffic while sampling, then wait for the pool to be idle."""
    timeout = httpx.Timeout(args.timeout_s + 5)  # past the hang limit: a hang is not a timeout
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=timeout) as http:
        voices: list[str | None] = [*await upload_permanent(url, http), None]
        tally = Tally()
        sampler = Sampler(master_pid, url, http, tally.started)
        stop = asyncio.Event()
        watchers = [
            asyncio.create_task(sampler.run(stop, args.sample_s)),
            asyncio.create_task(progress(tally, sampler, stop)),
        ]
        churned = await traffic(args, url, http, tally, voices)
        traffic_s = time.monotonic() - tally.started
        stop.set()
        await asyncio.gather(*watchers)
        idle_after_s = await sampler.until_idle(IDLE_LIMIT_S)
        await sampler.sample()  # once idle (or given up on)
    return summarize(args, tally, sampler.samples, traffic_s, idle_after_s, churned)


async def traffic(
    args: argparse.Namespace,
    url: str,
    http: httpx.AsyncClient,
    tally: Tally,
    voices: list[str | None],
) -> int:
    """The clients and the voice churner until ``--minutes`` are over; the ids churned."""
    deadline = tally.started + args.minutes * 60
    rng = random.Random(args.seed)
    clients = [Client(url, http, random.Random(rng.random()), voices) for _ in range(args.clients)]
    churner = Client(url, http, random.Random(rng.random()), [])
    churning = asyncio.create_task(
        churn_loop(churner, tally, deadline, args.timeout_s, args.churn_s, args.voice_clips)
    )
    await asyncio.gather(*(client_loop(c, tally, deadline, args.timeout_s) for c in clients))
    return await churning


def summarize(
    args: argparse.Namespace,
    tally: Tally,
    samples: list[dict[str, Any]],
    traffic_s: float,
    idle_after_s: float | None,
    churned: int,
) -> dict[str, Any]:
    warmup_s = traffic_s / 3
    summary = {
        "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "cores": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "minutes": args.minutes,
        "clients": args.clients,
        "seed": args.seed,
        "slots": args.slots,
        "traffic_s": round(traffic_s, 1),
        "warmup_s": round(warmup_s, 1),
        "outcomes": tally.counts(),
        "by_scenario": tally.by_scenario(),
        "barge_ins": barge_ins(tally),
        "processes": process_rows(samples, warmup_s, traffic_s),
        "max_active": max((s["active"] or 0 for s in samples), default=None),
        "idle_after_s": idle_after_s,
        "active_at_the_end": samples[-1]["active"],
        "voices": {
            "churned_ids": churned,
            "distinct_clips": len(PERMANENT_SEEDS) + min(churned, args.voice_clips),
        },
        "failures": tally.failures(),
    }
    return {"summary": summary, "samples": samples, "exchanges": tally.records}


def commit() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def serve(args: argparse.Namespace) -> tuple[dict[str, Any], int | None]:
    """The soak's result and the service's exit status after SIGTERM (None: it had to be
    killed)."""
    voices_dir = tempfile.mkdtemp(prefix="soak-voices-")
    os.environ["VOICES_DIR"] = voices_dir  # start_service hands the environment on
    with output_to(args.log):
        process, url = start_service(args)
    try:
        result = asyncio.run(soak(args, process.pid, url))
    finally:
        exit_code = stop(process)
        shutil.rmtree(voices_dir, ignore_errors=True)
    return result, exit_code


def stop(process: subprocess.Popen[bytes]) -> int | None:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        return None


def main() -> None:
    args = parse_args()
    result, exit_code = serve(args)
    summary = result["summary"]
    summary.update(commit=commit(), service_exit_code=exit_code, log=log_findings(args.log))
    reasons = verdict(summary, args.minutes, args.max_growth_mb_per_h)
    if exit_code != 0:
        reasons.append(f"the service's exit status after SIGTERM was {exit_code}")
    summary["verdict"] = reasons or "pass"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(summary))
    print(f"server log {args.log}: {summary['log']['counts']}; JSON in {args.out}")
    print("FAIL: " + "; ".join(reasons) if reasons else "PASS")
    raise SystemExit(1 if reasons else 0)


if __name__ == "__main__":
    main()
