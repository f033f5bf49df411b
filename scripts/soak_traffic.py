"""The soak's traffic: ``--clients`` simulated clients, each a closed loop (one exchange at a
time, a pause between) over a seeded random mix of every protocol, and one voice churner that
uploads a voice, speaks with it and deletes it again."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from functools import partial

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from scripts.soak_common import Client, Result, Tally
from scripts.soak_http import (
    delete_voice,
    elevenlabs_stream,
    generate_post,
    generate_stream,
    openai_speech,
    upload_voice,
)
from scripts.soak_ws import elevenlabs_multi, elevenlabs_single, tts_stream

Scenario = Callable[[Client], Awaitable[Result]]
# name: (exchange, weight). The weights keep every protocol in the mix at a few a minute.
MIX: dict[str, tuple[Scenario, float]] = {
    "tts_generate_post": (generate_post, 2),
    "tts_generate_stream": (generate_stream, 2),
    "tts_stream_ws": (tts_stream, 3),
    "openai_speech": (openai_speech, 2),
    "elevenlabs_http": (elevenlabs_stream, 1.5),
    "elevenlabs_multi_ws": (elevenlabs_multi, 2),
    "elevenlabs_single_ws": (elevenlabs_single, 1),
}
PAUSE_S = (0.3, 1.5)
PERMANENT_SEEDS = (1000, 1001)
CHURN_SEED = 2000


async def attempt(client: Client, scenario: Scenario, timeout_s: float) -> Result:
    """One exchange; past ``timeout_s`` it is a hang (named by the step it was at), and a
    connection the server broke or refused is an error."""
    client.step = "start"
    try:
        return await asyncio.wait_for(scenario(client), timeout_s)
    except (TimeoutError, httpx.TimeoutException):
        return Result("hang", f"not over in {timeout_s:.0f} s, at: {client.step}")
    except (httpx.TransportError, ConnectionClosed, InvalidHandshake, OSError) as failure:
        return Result("error", f"at {client.step}: {type(failure).__name__}: {failure}"[:300])


async def timed(
    tally: Tally, client: Client, name: str, scenario: Scenario, timeout_s: float
) -> Result:
    began = time.monotonic()
    result = await attempt(client, scenario, timeout_s)
    tally.add(name, began, result)
    return result


async def client_loop(client: Client, tally: Tally, deadline: float, timeout_s: float) -> None:
    names = list(MIX)
    weights = [weight for _, weight in MIX.values()]
    while time.monotonic() < deadline:
        name = client.rng.choices(names, weights)[0]
        await timed(tally, client, name, MIX[name][0], timeout_s)
        await asyncio.sleep(client.rng.uniform(*PAUSE_S))


async def churn_loop(
    client: Client, tally: Tally, deadline: float, timeout_s: float, every_s: float, contents: int
) -> int:
    """Every ``every_s``: a new voice id (its clip one of ``contents`` distinct ones, in turn),
    one exchange of the mix in it, then its deletion. Returns the number of ids churned."""
    churned = 0
    while time.monotonic() + every_s < deadline:
        await asyncio.sleep(every_s)
        voice_id = f"soak-churn-{churned}.wav"
        seed = CHURN_SEED + churned % contents
        churned += 1
        upload_it = partial(upload_voice, voice_id=voice_id, seed=seed)
        upload = await timed(tally, client, "voice_upload", upload_it, timeout_s)
        if upload.outcome != "ok":
            continue
        user = Client(client.url, client.http, client.rng, [voice_id])
        name = client.rng.choice(
            ["tts_generate_post", "tts_stream_ws", "openai_speech", "elevenlabs_multi_ws"]
        )
        await timed(tally, user, f"churn:{name}", MIX[name][0], timeout_s)
        delete_it = partial(delete_voice, voice_id=voice_id)
        await timed(tally, client, "voice_delete", delete_it, timeout_s)
    return churned


async def upload_permanent(url: str, http: httpx.AsyncClient) -> list[str]:
    """The voices every client speaks with besides the built-in one."""
    client = Client(url, http, random.Random(0), [])
    voices = []
    for seed in PERMANENT_SEEDS:
        voice_id = f"soak-{seed}.wav"
        result = await upload_voice(client, voice_id, seed)
        if result.outcome != "ok":
            raise SystemExit(f"uploading {voice_id} failed: {result.detail}")
        voices.append(voice_id)
    return voices
