"""The soak's summary: outcomes by exchange, barge-in times, each process's memory, descriptors
and threads (RSS at the warm-up's end, at the traffic's end and once idle, and its growth fitted
over the run after the warm-up: of each two-minute window's lowest RSS, and of every sample),
and the verdict with the reasons it fails."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from scripts.soak_common import FAILURES, OUTCOMES, Tally
from scripts.soak_monitor import floor_points, growth_mb_per_h, rss_points

# Below this many minutes the growth is reported but not judged: too short a line to fit.
JUDGED_MINUTES = 15


def process_rows(samples: list[dict[str, Any]], warmup: float, end: float) -> dict[str, Any]:
    names = dict.fromkeys(n for s in samples for n in s["processes"])
    return {name: process_row(samples, name, warmup, end) for name in names}


def process_row(
    samples: list[dict[str, Any]], name: str, warmup: float, end: float
) -> dict[str, Any]:
    figures = [s["processes"][name] for s in samples if "rss_mb" in s["processes"].get(name, {})]
    after = rss_points(samples, name, warmup, end)
    return {
        "pids": sorted({f["pid"] for f in figures}),
        "rss_mb_warmup_end": after[0][1] if after else None,
        "rss_mb_end": after[-1][1] if after else None,
        "rss_mb_idle": figures[-1]["rss_mb"] if figures else None,
        "rss_mb_peak": max((f["rss_mb"] for f in figures), default=None),
        "growth_mb_per_h": growth_mb_per_h(floor_points(after)),  # judged
        "sample_growth_mb_per_h": growth_mb_per_h(after),  # requests in flight included
        "fds_first_last": [figures[0]["fds"], figures[-1]["fds"]] if figures else None,
        "threads_first_last": [figures[0]["threads"], figures[-1]["threads"]] if figures else None,
    }


def barge_ins(tally: Tally) -> dict[str, Any]:
    times = tally.barge_ins_ms()
    if not times:
        return {"count": 0}
    return {
        "count": len(times),
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
    }


def verdict(summary: dict[str, Any], minutes: float, max_growth: float) -> list[str]:
    """Why the soak fails; empty when it passes."""
    reasons = [f"{summary['outcomes'][o]} {o}" for o in FAILURES if summary["outcomes"][o]]
    if summary["idle_after_s"] is None:
        left = summary["active_at_the_end"]
        reasons.append(f"{left} requests still active a minute after the traffic stopped")
    for name, row in summary["processes"].items():
        if len(row["pids"]) > 1:
            reasons.append(f"{name} restarted (pids {row['pids']})")
        growth = row["growth_mb_per_h"]
        if minutes >= JUDGED_MINUTES and growth is not None and growth > max_growth:
            reasons.append(f"{name} RSS grew {growth} MB/h after the warm-up (> {max_growth})")
    return reasons


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'exchange':<34}" + "".join(f"{o:>8}" for o in OUTCOMES)]
    rows = {**summary["by_scenario"], "total": summary["outcomes"]}
    lines += [
        f"{name:<34}" + "".join(f"{row[o]:>8}" for o in OUTCOMES) for name, row in rows.items()
    ]
    barge = summary["barge_ins"]
    if barge["count"]:
        lines.append(
            f"barge-ins: {barge['count']}, to done/isFinal median {barge['median_ms']} "
            f"ms, max {barge['max_ms']} ms"
        )
    lines.append("")
    lines.append(
        f"{'process':<13}{'RSS MB: warm-up end':>20}{'end':>8}{'idle':>8}{'peak':>8}"
        f"{'growth MB/h':>13}{'fds first/last':>16}{'threads':>10}"
    )
    for name, row in summary["processes"].items():
        fds = "/".join(map(str, row["fds_first_last"] or []))
        threads = "/".join(map(str, row["threads_first_last"] or []))
        lines.append(
            f"{name:<13}{row['rss_mb_warmup_end']!s:>20}{row['rss_mb_end']!s:>8}"
            f"{row['rss_mb_idle']!s:>8}{row['rss_mb_peak']!s:>8}"
            f"{row['growth_mb_per_h']!s:>13}{fds:>16}{threads:>10}"
        )
    lines.append("")
    idle = summary["idle_after_s"]
    idle_text = f"idle {idle} s" if idle is not None else f"{summary['active_at_the_end']} active"
    lines.append(
        f"max active requests {summary['max_active']}, {idle_text} "
        f"after the traffic; voices churned {summary['voices']['churned_ids']} ids over "
        f"{summary['voices']['distinct_clips']} distinct clips"
    )
    return "\n".join(lines)


def log_findings(path: Path, keep: int = 20) -> dict[str, Any]:
    """Counts of the service log's warnings, errors and tracebacks, and its first such lines."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    marks = {
        "WARNING": " WARNING ",
        "ERROR": " ERROR ",
        "CRITICAL": " CRITICAL ",
        "Traceback": "Traceback",
    }
    counts = {name: sum(mark in line for line in lines) for name, mark in marks.items()}
    notable = [line[:300] for line in lines if any(mark in line for mark in marks.values())]
    return {"counts": counts, "first_lines": notable[:keep]}
