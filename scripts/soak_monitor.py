"""The soak's sampler: every few seconds, the service's active and queued requests and workers
(``/system-status``), and the memory (RSS), open file descriptors and threads of the master, its
fork server and each worker (psutil; workers found by the pids ``/system-status`` gives).
``growth_mb_per_h`` fits a straight line to a process's RSS over part of the run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import psutil

MB = 2**20


def process_figures(pid: int) -> dict[str, Any]:
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return {
                "pid": pid,
                "rss_mb": round(process.memory_info().rss / MB, 1),
                "fds": process.num_fds(),
                "threads": process.num_threads(),
            }
    except psutil.Error as error:  # gone (a worker restarting) or unreadable
        return {"pid": pid, "error": type(error).__name__}


def is_fork_server(process: psutil.Process) -> bool:
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return "forkserver" in command or "worker.preload" in command


class Sampler:
    """Samples into ``samples``, ``t`` in seconds from ``started`` (``time.monotonic``)."""

    def __init__(self, master_pid: int, url: str, http: httpx.AsyncClient, started: float):
        self.master = psutil.Process(master_pid)
        self.url = url
        self.http = http
        self.started = started
        self.samples: list[dict[str, Any]] = []

    async def status(self) -> dict[str, Any]:
        try:
            response = await self.http.get(f"{self.url}/system-status", timeout=10)
            return (
                dict(response.json())
                if response.status_code == 200
                else {"error": f"{response.status_code} {response.text[:200]}"}
            )
        except httpx.HTTPError as error:
            return {"error": f"{type(error).__name__}: {error}"}

    def pids(self, workers: list[dict[str, Any]]) -> dict[str, int]:
        """The processes to follow, by name: the master, the fork server, each worker."""
        named = {w["worker_id"]: int(w["pid"]) for w in workers if w.get("pid")}
        pids = {"master": self.master.pid}
        for child in self.master.children(recursive=True):
            if child.pid not in named.values() and is_fork_server(child):  # workers fork from it
                pids["fork-server"] = child.pid
        return {**pids, **named}

    async def sample(self) -> dict[str, Any]:
        status = await self.status()
        service = status.get("service", {})
        workers = status.get("workers", [])
        sample = {
            "t": round(time.monotonic() - self.started, 1),
            "active": service.get("active_requests"),
            "queued": service.get("queued_requests"),
            "workers": [
                {
                    key: w.get(key)
                    for key in ("worker_id", "state", "generation", "restarts", "active_requests")
                }
                for w in workers
            ],
            "processes": {name: process_figures(pid) for name, pid in self.pids(workers).items()},
            "descendants": len(self.master.children(recursive=True)),
        }
        if "error" in status:
            sample["status_error"] = status["error"]
        self.samples.append(sample)
        return sample

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        """Sample every ``every_s`` until ``stop`` is set."""
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def until_idle(self, limit_s: float) -> float | None:
        """Seconds until no request is active or queued; None if that takes over ``limit_s``."""
        began = time.monotonic()
        while time.monotonic() - began < limit_s:
            service = (await self.status()).get("service", {})
            if service.get("active_requests") == 0 and service.get("queued_requests") == 0:
                return round(time.monotonic() - began, 2)
            await asyncio.sleep(0.5)
        return None


def rss_points(
    samples: list[dict[str, Any]], name: str, since: float, until: float
) -> list[tuple[float, float]]:
    """(t, RSS MB) of ``name`` from ``since`` to ``until``, for its last pid only (a restarted
    worker is a new process)."""
    figures = [(s["t"], s["processes"].get(name, {})) for s in samples if since <= s["t"] <= until]
    figures = [(t, f) for t, f in figures if "rss_mb" in f]
    if not figures:
        return []
    pid = figures[-1][1]["pid"]
    return [(t, f["rss_mb"]) for t, f in figures if f["pid"] == pid]


def growth_mb_per_h(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of RSS over time, in MB per hour (None under 3 points)."""
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_m = sum(m for _, m in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    slope = sum((t - mean_t) * (m - mean_m) for t, m in points) / spread
    return round(slope * 3600, 1)


def floor_points(
    points: list[tuple[float, float]], window_s: float = 120.0
) -> list[tuple[float, float]]:
    """The lowest RSS of each ``window_s`` window, at that window's middle: what stays in use
    between requests. A sample's RSS also holds the requests in flight at that moment (several
    hundred MB with five at once), which hides a slow leak in noise; the floor does not."""
    if not points:
        return []
    start, windows = points[0][0], {}
    for t, rss in points:
        index = int((t - start) // window_s)
        windows[index] = min(windows.get(index, rss), rss)
    return [(start + (i + 0.5) * window_s, rss) for i, rss in sorted(windows.items())]
