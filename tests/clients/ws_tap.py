"""A WebSocket relay between a real client and the service that notes when each message passes
it: what arrives at the client, and when, without touching the client. Optionally TLS (the
ElevenLabs SDK's realtime client only speaks ``wss``), with a throwaway certificate the client
is told to trust through ``SSL_CERT_FILE``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import ServerConnection, serve

from tests.support.server import Server


@dataclass
class Passed:
    at: float  # time.monotonic() as it passed the relay
    to_client: bool
    data: dict[str, Any]

    @property
    def context(self) -> str | None:
        return self.data.get("contextId") or self.data.get("context_id")


class Tap:
    def __init__(self, url: str) -> None:
        self.url = url  # http(s)://127.0.0.1:port, the service's base as a client is given it
        self.passed: list[Passed] = []
        self.connections = 0

    def to_client(self, context: str | None = None, audio: bool = True) -> list[Passed]:
        """Server messages (with audio, if ``audio``) for ``context`` (None: any), in order."""
        return [p for p in self.passed if p.to_client and (context is None or p.context == context)
                and (not audio or p.data.get("audio"))]  # fmt: skip

    def sent(self, key: str) -> list[Passed]:
        """Client messages carrying ``key`` (e.g. close_context), in order."""
        return [p for p in self.passed if not p.to_client and p.data.get(key)]


@asynccontextmanager
async def tap(server: Server, tls_dir: Path | None = None) -> AsyncIterator[Tap]:
    """A relay to ``server``'s WebSockets on a free port (TLS when ``tls_dir`` is given: its
    certificate is written there as cert.pem)."""
    upstream = server.ws_url.rsplit("/tts/stream", 1)[0]
    context = _tls(tls_dir) if tls_dir is not None else None
    relay = None

    async def handle(client: ServerConnection) -> None:
        assert client.request is not None and relay is not None
        relay.connections += 1
        headers = {k: v for k, v in client.request.headers.raw_items() if k.lower() == "xi-api-key"}
        async with websockets.connect(upstream + client.request.path, additional_headers=headers,
                                      max_size=None) as service:  # fmt: skip
            pumps = [
                asyncio.create_task(_pump(service, client, relay, True)),
                asyncio.create_task(_pump(client, service, relay, False)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            for closing in (client, service):
                with contextlib.suppress(Exception):
                    await closing.close()

    async with serve(handle, "127.0.0.1", 0, ssl=context, max_size=None) as listening:
        port = next(iter(listening.sockets)).getsockname()[1]
        relay = Tap(f"{'https' if context else 'http'}://127.0.0.1:{port}")
        yield relay


async def _pump(source: Any, sink: Any, relay: Tap, to_client: bool) -> None:
    try:
        async for message in source:
            if isinstance(message, str):
                relay.passed.append(Passed(time.monotonic(), to_client, json.loads(message)))
            await sink.send(message)
    except websockets.ConnectionClosed:
        pass
    closed = source.close_rcvd
    with contextlib.suppress(Exception):
        await sink.close(closed.code if closed else 1000, closed.reason if closed else "")


def _tls(directory: Path) -> ssl.SSLContext:
    """A server context for 127.0.0.1 with a self-signed certificate (directory/cert.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    local = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(local, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context
