"""What hostile clients do on the WebSocket protocols (tests/service/test_hostile_protocols.py
runs each against each protocol it applies to, then checks the service after it). Each case
returns once its client has left, having checked every answer it got on the way."""

from __future__ import annotations

import contextlib
from typing import Any

import websockets

from tests.support.hostile_sockets import (
    MULTI,
    OURS,
    SINGLE,
    Protocol,
    Session,
    audio,
    connect,
    event,
    final,
)
from tests.support.server import Server

FLOOD = 10_000
CYCLES = 500
BIG = 10_000_000
DEEP = (
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 50_000 + "1" + "}" * 50_000,
    '{"text": ' + '{"t": ' * 3000 + '"x"' + "}" * 3001,
)
SPEAK = {"type": "start", "format": "raw_pcm", "fixed_token_count": 2}  # ours: short audio
LONG = {"type": "start", "format": "raw_pcm", "fixed_token_count": 2000}
SENTENCES = "The keeper climbed the stairs to light the lamp. " * 3


async def binary(server: Server, protocol: Protocol) -> None:
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        await session.ask(b"\x00\x01binary")
        await session.ask(b"")
        await session.still_open()


async def non_json(server: Server, protocol: Protocol) -> None:
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        for message in ("not json", "{", "", "[1, 2]", '"text"', "null", "1e999999", "\ud800"):
            await session.ask(message.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
        await session.still_open()


async def deep_json(server: Server, protocol: Protocol) -> None:
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        for message in DEEP:
            reply = await session.ask(message)
            assert "levels deep" in reply["message"], reply
        await session.still_open()


async def huge_frame(server: Server, protocol: Protocol) -> None:
    """Over MAX_REQUEST_BYTES: closed with 1009 and a reason, as soon as the frame's header is
    read (compressed or not: the limit counts what it inflates to)."""
    for compression in (None, "deflate"):
        async with connect(server, protocol, compression=compression) as ws:
            session = Session(protocol, ws)
            with contextlib.suppress(websockets.ConnectionClosed):  # closed mid-frame
                await session.send("a" * BIG)
            code, reason = await session.closed()
            assert code == 1009 and reason and "limit" in reason, (code, reason)


async def bad_utf8(server: Server, protocol: Protocol) -> None:
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        await ws.send(b'{"text": "\xff\xfe"}', text=True)
        code, _ = await session.closed()
        assert code == 1007, code


WRONG_OURS: list[tuple[dict[str, Any], str]] = [
    ({"type": 5}, "type"),
    ({"type": None}, "type"),
    *(({"text": bad}, "text") for bad in (5, True, {}, [], None, {"text": "x"})),
    *(({"type": "text", "text": bad}, "text") for bad in (5, False, {"a": 1}, ["a"], None)),
    *(({"type": "start", "text": bad}, "text") for bad in (5, True, {}, ["a"])),
    ({"text": "Hi \ud800"}, "text"),
    ({"type": "start", "timings": "yes"}, "timings"),
    ({"type": "start", "timings": 1}, "timings"),
    ({"type": "start", "voice_id": 5}, "voice_id"),
    ({"type": "start", "voice_id": {}}, "voice_id"),
    ({"type": "start", "format": 5}, "format"),
    ({"type": "start", "format": ["wav"]}, "format"),
    ({"type": "start", "sample_rate": "fast"}, "sample_rate"),
    ({"type": "start", "sample_rate": {}}, "sample_rate"),
    ({"type": "start", "seed": "x"}, "seed"),
    ({"type": "start", "seed": 2**70}, "seed"),
    ({"type": "start", "language": 5}, "language"),
    ({"type": "start", "exaggeration": {}}, "exaggeration"),
    ({"type": "start", "cfg_weight": "high"}, "cfg_weight"),
    ({"type": "start", "temperature": []}, "temperature"),
    ({"type": "start", "unheard_of": 1}, "unheard_of"),
]
# ElevenLabs' messages: (message, the field its error names, the contextId it carries)
WRONG_ELEVENLABS: list[tuple[dict[str, Any], str, str | None]] = [
    *(({"text": bad, "context_id": "w"}, "text", "w") for bad in (5, True, {}, [], {"t": 1})),
    ({"text": "Hi \ud800", "context_id": "w"}, "text", "w"),
    *(({"text": " ", "context_id": bad}, "context_id", None) for bad in ({}, 5, ["w"], True)),
    ({"context_id": "w", "flush": "yes"}, "flush", "w"),
    ({"context_id": "w", "flush": 1}, "flush", "w"),
    ({"context_id": "w", "close_context": "true"}, "close_context", "w"),
    ({"close_socket": "yes"}, "close_socket", None),
    ({"text": " ", "context_id": "w", "voice_settings": 5}, "voice_settings", "w"),
    ({"text": " ", "context_id": "w", "voice_settings": {"speed": "fast"}}, "speed", "w"),
    ({"text": " ", "context_id": "w", "voice_settings": {"speed": 9}}, "speed", "w"),
    ({"text": " ", "context_id": "w", "voice_settings": {"style": True}}, "style", "w"),
    ({"text": " ", "context_id": "w", "voice_settings": {"style": 7}}, "style", "w"),
]


async def wrong_types(server: Server, protocol: Protocol) -> None:
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        if protocol.ours:
            for message, field in WRONG_OURS:
                reply = await session.ask(message, field)
                assert reply["code"] == "invalid_request" or field == "type", reply
        else:
            for message, field, context in WRONG_ELEVENLABS:
                await session.ask(message, field, context)
        await session.still_open()
    assert server.status()["service"]["active_requests"] == 0, "a refused message took a slot"


async def unopened(server: Server, protocol: Protocol) -> None:
    """Messages for what is not open: an utterance not started, a context never opened."""
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        if protocol.ours:
            for kind in ("text", "flush", "end", "cancel"):
                await session.ask({"type": kind, "text": "orphan"})
            return
        await session.ask({"context_id": "zz", "flush": True}, context="zz")
        await session.send({"context_id": "zz", "close_context": True})  # closed already: no-op
        if protocol.multi:
            await session.send({"text": "", "context_id": "zz"})  # a keep-alive
        await session.still_open()


async def flood_text(server: Server, protocol: Protocol) -> None:
    """10,000 small texts as fast as they go, then a cancel (a barge-in) that is answered."""
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        if protocol.ours:
            await session.send(SPEAK, *[{"type": "text", "text": "a "}] * FLOOD)
            await session.send({"type": "cancel"})
            await session.next(event("done"))
            return
        text = [{"text": "a ", "context_id": "f"}] * FLOOD
        await session.send({"text": " ", "context_id": "f"}, *text)
        await session.send({"context_id": "f", "close_context": True})  # after text: stops
        await session.next(final("f"))


async def flood_flush(server: Server, protocol: Protocol) -> None:
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        if protocol.ours:
            await session.send(SPEAK, {"type": "text", "text": "Hi"}, *[{"type": "flush"}] * FLOOD)
            await session.send({"type": "end"})
            await session.next(event("done"))
            return
        flushes = [{"context_id": "f", "flush": True}] * FLOOD
        await session.send({"text": "Hi", "context_id": "f"}, *flushes)
        await session.send({"context_id": "f", "close_context": True})  # after a flush: ends
        await session.next(final("f"))


async def flood_keepalive(server: Server, protocol: Protocol) -> None:
    """multi-stream-input's keep-alive, 10,000 times; on ours the nearest thing, a message that
    is refused, 10,000 times (each answered)."""
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        if protocol.ours:
            await session.send(*[{"type": "flush"}] * FLOOD)
            for _ in range(FLOOD):
                await session.error()
        else:
            await session.send(*[{"text": ""}] * FLOOD)
        await session.still_open()


async def cycles(server: Server, protocol: Protocol) -> None:
    """500 utterances or contexts opened and closed on one socket, sent without waiting."""
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        if protocol.ours:
            await session.send(*[m for _ in range(CYCLES) for m in (SPEAK, {"type": "cancel"})])
            for _ in range(CYCLES):
                assert (await session.next(event("done")))["cancelled"] is True
            return
        for i in range(CYCLES):
            context = f"c{i}" if protocol.multi else ""
            await session.send({"text": " ", "context_id": context},
                               {"context_id": context, "close_context": True})  # fmt: skip
        for i in range(CYCLES):
            await session.next(final(f"c{i}" if protocol.multi else ""))


async def contexts(server: Server, protocol: Protocol) -> None:
    """More contexts than a socket may hold: the sixth is refused (naming it), close_socket ends
    the five and the socket (stream-input has one context, whatever the ids say)."""
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        names = "abcdefg" if protocol.multi else "ab"
        await session.send(*[{"text": " ", "context_id": name} for name in names])
        if protocol.multi:
            for name in "fg":
                reply = await session.error(context=name)
                assert "at most 5 contexts" in reply["message"], reply
        await session.send({"close_socket": True})
        for name in names[:5] if protocol.multi else [""]:
            await session.next(final(name))
        assert (await session.closed())[0] == 1000


async def drop_mid_audio(server: Server, protocol: Protocol) -> None:
    """The client vanishes (no close handshake) while its audio streams."""
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        if protocol.ours:
            await session.send(LONG, {"type": "text", "text": SENTENCES})
        else:
            await session.send({"text": SENTENCES, "context_id": "d", "flush": True})
        await session.next(audio)
        ws.transport.abort()


async def empty_first(server: Server, protocol: Protocol) -> None:
    """stream-input's end of text with no text before it: answered, and the socket closed."""
    async with connect(server, protocol) as ws:
        session = Session(protocol, ws)
        await session.send({"text": ""})
        await session.next(final(""))
        assert (await session.closed())[0] == 1000


async def bad_handshake(server: Server, protocol: Protocol) -> None:
    """A query the socket cannot serve: an error naming it, then close code 1008."""
    for query in ("output_format=pcm_\u00b2", "output_format=pcm_" + "9" * 5000):
        async with connect(server, protocol, query) as ws:
            session = Session(protocol, ws)
            reply = await session.next()
            assert isinstance(reply, dict) and "output_format" in reply["message"], reply
            assert (await session.closed())[0] == 1008


ALL = (OURS, MULTI, SINGLE)
ELEVENLABS = (MULTI, SINGLE)
CASES = [
    *((p, case) for case in (binary, non_json, deep_json, huge_frame, bad_utf8) for p in ALL),
    *((p, case) for case in (wrong_types, unopened, flood_text, flood_flush) for p in ALL),
    (OURS, flood_keepalive), (MULTI, flood_keepalive),
    *((p, case) for case in (cycles, drop_mid_audio) for p in ALL),
    *((p, case) for case in (contexts, bad_handshake) for p in ELEVENLABS),
    (SINGLE, empty_first),
]  # fmt: skip
