"""What the soak benchmark's traffic modules share (scripts/soak.py runs them): a simulated
client, the outcome of one exchange, the texts spoken and the reference clips uploaded."""

from __future__ import annotations

import io
import math
import random
import time
import wave
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from scripts.bench_service import KEY

OUTCOMES = ("ok", "dropped", "4xx", "5xx", "hang", "error")
# What fails the soak: a server error, no completion within the timeout, or the server breaking
# an exchange off (an aborted body, a socket closed without its final message).
FAILURES = ("5xx", "hang", "error")
# Error codes of the WebSocket protocols that an HTTP route would answer with a 5xx.
SERVER_ERROR_CODES = frozenset(
    {"not_ready", "overloaded", "worker_draining", "worker_crashed", "internal_error"}
)
SENTENCES = (
    "Hello there.",
    "The lamp is lit again tonight.",
    "Please hold on for a moment.",
    "I can help you with that.",
    "The train leaves at nine.",
    "Thanks, that is all I needed.",
    "Let me check the calendar.",
    "It looks like rain later.",
    "Your order is on its way.",
    "Could you say that once more?",
)
CLIP_SECONDS = 10.0
CLIP_RATE = 24000


@dataclass
class Result:
    """How one exchange ended; ``barge_in_ms`` times a cancel (or ``close_context``) to the
    server's last word on it (``done``, ``isFinal``)."""

    outcome: str
    detail: str = ""
    barge_in_ms: float | None = None


@dataclass
class Client:
    """One simulated client: its own random stream, and ``step`` naming what it is waiting
    for, so that a hang says where it hung."""

    url: str
    http: httpx.AsyncClient
    rng: random.Random
    voices: list[str | None]  # None: the checkpoint's built-in voice
    step: str = "start"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    def voice(self) -> str | None:
        return self.rng.choice(self.voices)

    def named_voice(self) -> str:
        """A library voice (the ElevenLabs routes name one in their path)."""
        return self.rng.choice([v for v in self.voices if v])

    def text(self, most: int = 3) -> str:
        return " ".join(self.rng.sample(SENTENCES, self.rng.randint(1, most)))

    def seed(self) -> int:
        return self.rng.randrange(2**31)


def status_result(status: int, body: bytes | str = b"") -> Result:
    """The outcome an HTTP status stands for (a WebSocket handshake's too)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    if status >= 500:
        return Result("5xx", f"{status} {text[:200]}")
    if status >= 400:
        return Result("4xx", f"{status} {text[:200]}")
    return Result("ok")


def error_result(code: str, message: str) -> Result:
    """The outcome of a WebSocket protocol's error message."""
    outcome = "5xx" if code in SERVER_ERROR_CODES else "4xx"
    return Result(outcome, f"{code}: {message[:200]}")


def voice_clip(seed: int) -> bytes:
    """A 10 s speech-like WAV (a gliding harmonic tone with syllable-rate bursts), its pitch
    and noise set by ``seed``. Made here rather than with the engine's ``reference_clip`` so
    that the client process does not import torch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(CLIP_SECONDS * CLIP_RATE)) / CLIP_RATE
    base = 110 + 60 * rng.random()
    f0 = base + 30 * np.sin(2 * math.pi * 0.7 * t) + 10 * np.sin(2 * math.pi * 3.1 * t)
    phase = 2 * math.pi * np.cumsum(f0) / CLIP_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * (3.5 + rng.random()) * t) ** 2
    clip = 0.2 * tone * envelope + 0.01 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(CLIP_RATE)
        out.writeframes((np.clip(clip, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


@dataclass
class Tally:
    """Every exchange's outcome, in the order they ended."""

    started: float = field(default_factory=time.monotonic)
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, scenario: str, began: float, result: Result) -> None:
        now = time.monotonic()
        record: dict[str, Any] = {
            "t": round(now - self.started, 2),
            "scenario": scenario,
            "outcome": result.outcome,
            "seconds": round(now - began, 3),
        }
        if result.detail:
            record["detail"] = result.detail
        if result.barge_in_ms is not None:
            record["barge_in_ms"] = round(result.barge_in_ms, 1)
        self.records.append(record)

    def counts(self) -> dict[str, int]:
        return {o: sum(r["outcome"] == o for r in self.records) for o in OUTCOMES}

    def by_scenario(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for record in self.records:
            row = table.setdefault(record["scenario"], dict.fromkeys(OUTCOMES, 0))
            row[record["outcome"]] += 1
        return dict(sorted(table.items()))

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["outcome"] in FAILURES]

    def barge_ins_ms(self) -> list[float]:
        return [r["barge_in_ms"] for r in self.records if "barge_in_ms" in r]


def headers() -> dict[str, str]:
    return {"X-API-Key": KEY}
